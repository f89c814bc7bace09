//! MPMC channels: exactly-once delivery and per-sender order under contention.
//!
//! Many senders and many receivers share one channel on a 2-worker runtime,
//! for capacities 0 (rendezvous), 1 and 64. Every value is tagged with its
//! sender and sequence number, so the test can check that each value arrives
//! exactly once (nothing lost in a hand-off, nothing duplicated by a racing
//! wake-up), and that every receiver sees each sender's values in the order
//! they were sent (the channel's queues are FIFO). The same checks run with
//! coroutines and OS threads mixed on both sides of one channel, since the two
//! kinds of party park differently, and with values too big for the inline
//! hand-off slot (they travel boxed).

use std::collections::HashMap;

use spindle::chan::{self, Receiver, Sender};
use spindle::Runtime;
use spindle_tests::{by_mode, watchdog, Progress};

/// A value tagged with its origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Tagged {
    sender: u32,
    seq: u32,
}

fn send_all(tx: Sender<Tagged>, sender: u32, per_sender: u32, progress: &Progress) {
    for seq in 0..per_sender {
        tx.send(Tagged { sender, seq })
            .unwrap_or_else(|_| panic!("sender {sender}: receivers vanished at {seq}"));
        if seq % 256 == 0 {
            progress.tick();
        }
    }
}

fn recv_all(rx: Receiver<Tagged>) -> Vec<Tagged> {
    rx.iter().collect()
}

/// Check exactly-once delivery of `senders * per_sender` values, and that
/// each receiver saw each sender's sequence numbers strictly increasing.
fn check(received: &[Vec<Tagged>], senders: u32, per_sender: u32, what: &str) {
    let mut count: HashMap<Tagged, u32> = HashMap::new();
    for (r, values) in received.iter().enumerate() {
        let mut last: HashMap<u32, u32> = HashMap::new();
        for v in values {
            assert!(
                v.sender < senders && v.seq < per_sender,
                "{what}: bogus value {v:?}"
            );
            if let Some(prev) = last.insert(v.sender, v.seq) {
                assert!(
                    prev < v.seq,
                    "{what}: receiver {r} got sender {}'s #{} after #{prev}: FIFO broken",
                    v.sender,
                    v.seq
                );
            }
            *count.entry(*v).or_default() += 1;
        }
    }
    let dups: Vec<_> = count.iter().filter(|(_, &c)| c > 1).take(5).collect();
    assert!(dups.is_empty(), "{what}: values delivered twice: {dups:?}");
    let total: usize = received.iter().map(Vec::len).sum();
    let expected = (senders * per_sender) as usize;
    assert_eq!(total, expected, "{what}: {} values lost", expected - total);
}

/// 8 coroutine senders and 8 coroutine receivers on 2 workers.
fn coroutines_exactly_once(cap: usize) {
    const SENDERS: u32 = 8;
    const RECEIVERS: usize = 8;
    let per_sender = by_mode(20_000, 2_000) as u32;
    let what = format!("cap {cap}");
    let rt = Runtime::builder().workers(2).build().unwrap();
    let received = watchdog(&what, move |progress| {
        let (tx, rx) = chan::bounded::<Tagged>(cap);
        let receivers: Vec<_> = (0..RECEIVERS)
            .map(|_| {
                let rx = rx.clone();
                rt.spawn(move || recv_all(rx))
            })
            .collect();
        drop(rx);
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let tx = tx.clone();
                let progress = progress.clone();
                rt.spawn(move || send_all(tx, s, per_sender, &progress))
            })
            .collect();
        drop(tx);
        for s in senders {
            s.join().expect("sender panicked");
        }
        let received: Vec<Vec<Tagged>> = receivers
            .into_iter()
            .map(|r| r.join().expect("receiver panicked"))
            .collect();
        let stats = rt.stats();
        assert_eq!(stats.live, 0, "{stats:?}");
        received
    });
    check(&received, SENDERS, per_sender, &what);
}

#[test]
fn exactly_once_rendezvous() {
    coroutines_exactly_once(0);
}

#[test]
fn exactly_once_cap_1() {
    coroutines_exactly_once(1);
}

#[test]
fn exactly_once_cap_64() {
    coroutines_exactly_once(64);
}

/// Coroutines and OS threads on both sides of the same channel: 4 + 4
/// senders, 4 + 4 receivers. Threads block on a condition variable,
/// coroutines park; a hand-off between the two kinds must work both ways.
fn mixed_exactly_once(cap: usize) {
    const EACH: u32 = 4;
    let per_sender = by_mode(10_000, 1_000) as u32;
    let what = format!("mixed, cap {cap}");
    let rt = Runtime::builder().workers(2).build().unwrap();
    let received = watchdog(&what, move |progress| {
        let (tx, rx) = chan::bounded::<Tagged>(cap);
        let co_receivers: Vec<_> = (0..EACH)
            .map(|_| {
                let rx = rx.clone();
                rt.spawn(move || recv_all(rx))
            })
            .collect();
        let thread_receivers: Vec<_> = (0..EACH)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || recv_all(rx))
            })
            .collect();
        drop(rx);
        let co_senders: Vec<_> = (0..EACH)
            .map(|s| {
                let (tx, progress) = (tx.clone(), progress.clone());
                rt.spawn(move || send_all(tx, s, per_sender, &progress))
            })
            .collect();
        let thread_senders: Vec<_> = (EACH..2 * EACH)
            .map(|s| {
                let (tx, progress) = (tx.clone(), progress.clone());
                std::thread::spawn(move || send_all(tx, s, per_sender, &progress))
            })
            .collect();
        drop(tx);
        for s in co_senders {
            s.join().expect("coroutine sender panicked");
        }
        for s in thread_senders {
            s.join().expect("thread sender panicked");
        }
        let mut received = Vec::new();
        for r in co_receivers {
            received.push(r.join().expect("coroutine receiver panicked"));
        }
        for r in thread_receivers {
            received.push(r.join().expect("thread receiver panicked"));
        }
        received
    });
    check(&received, 2 * EACH, per_sender, &what);
}

#[test]
fn mixed_threads_and_coroutines_rendezvous() {
    mixed_exactly_once(0);
}

#[test]
fn mixed_threads_and_coroutines_cap_1() {
    mixed_exactly_once(1);
}

#[test]
fn mixed_threads_and_coroutines_cap_64() {
    mixed_exactly_once(64);
}

/// Values bigger than the inline hand-off slot (a `String` plus a tag) and a
/// zero-sized one go through the same paths: each arrives once, intact.
#[test]
fn boxed_and_zero_sized_values_arrive_intact() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let n = by_mode(2_000, 500);
    let (texts, units) = watchdog("boxed values", move |progress| {
        rt.block_on(move || {
            let (tx, rx) = chan::bounded::<(String, [u64; 4])>(0);
            let receivers: Vec<_> = (0..4)
                .map(|_| {
                    let rx = rx.clone();
                    spindle::spawn(move || rx.iter().collect::<Vec<_>>())
                })
                .collect();
            drop(rx);
            for i in 0..n {
                let v = i as u64;
                tx.send((format!("value {i}"), [v, v + 1, v + 2, v + 3]))
                    .unwrap();
                progress.tick();
            }
            drop(tx);
            let mut texts: Vec<(String, [u64; 4])> = Vec::new();
            for r in receivers {
                texts.extend(r.join().unwrap());
            }

            let (tx, rx) = chan::bounded::<()>(0);
            let counter = spindle::spawn(move || rx.iter().count());
            for _ in 0..n {
                tx.send(()).unwrap();
            }
            drop(tx);
            (texts, counter.join().unwrap())
        })
    });
    assert_eq!(units, n);
    assert_eq!(texts.len(), n);
    let mut texts = texts;
    texts.sort_by_key(|(_, a)| a[0]);
    for (i, (s, a)) in texts.iter().enumerate() {
        let v = i as u64;
        assert_eq!(s, &format!("value {i}"));
        assert_eq!(a, &[v, v + 1, v + 2, v + 3]);
    }
}

/// Closing from the receiving side: parked senders (coroutines and threads)
/// get their own value back in `SendError`, and nothing is lost or doubled:
/// every value was either received or returned.
#[test]
fn dropping_all_receivers_returns_values_to_parked_senders() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let per_sender = by_mode(1_000, 300) as u32;
    let received = watchdog("receiver-side close", move |progress| {
        let (tx, rx) = chan::bounded::<Tagged>(1);
        // Senders keep sending until the channel closes, and report what
        // came back in SendError.
        let send_until_closed = move |tx: Sender<Tagged>, sender: u32, progress: Progress| {
            let mut sent = Vec::new();
            let mut returned = None;
            for seq in 0..u32::MAX {
                match tx.send(Tagged { sender, seq }) {
                    Ok(()) => sent.push(seq),
                    Err(e) => {
                        returned = Some(e.0);
                        break;
                    }
                }
                progress.tick();
            }
            (sent, returned)
        };
        let co: Vec<_> = (0..4)
            .map(|s| {
                let (tx, p) = (tx.clone(), progress.clone());
                rt.spawn(move || send_until_closed(tx, s, p))
            })
            .collect();
        let th: Vec<_> = (4..8)
            .map(|s| {
                let (tx, p) = (tx.clone(), progress.clone());
                std::thread::spawn(move || send_until_closed(tx, s, p))
            })
            .collect();
        drop(tx);
        // Receive a fixed number, then drop the only receiver.
        let total = 8 * per_sender as usize;
        let got: Vec<Tagged> = (0..total).map(|_| rx.recv().unwrap()).collect();
        drop(rx);
        let mut outcomes = Vec::new();
        for h in co {
            outcomes.push(h.join().unwrap());
        }
        for h in th {
            outcomes.push(h.join().unwrap());
        }
        (got, outcomes)
    });
    let (got, outcomes) = received;
    for (s, (sent, returned)) in outcomes.iter().enumerate() {
        let returned = returned.unwrap_or_else(|| panic!("sender {s} never saw the close"));
        assert_eq!(returned.sender, s as u32);
        assert_eq!(
            returned.seq as usize,
            sent.len(),
            "sender {s}: the value returned is the one after the last accepted"
        );
        // Accepted values were received, or were dropped with the buffer
        // (capacity 1) when the receiver went away: at most one per channel.
        let from_s: Vec<u32> = got
            .iter()
            .filter(|t| t.sender == s as u32)
            .map(|t| t.seq)
            .collect();
        assert!(
            from_s.windows(2).all(|w| w[0] < w[1]),
            "sender {s}: out of order"
        );
        assert!(
            from_s.iter().all(|q| (*q as usize) < sent.len()),
            "sender {s}: received a value it was told was refused"
        );
    }
    let accepted: usize = outcomes.iter().map(|(s, _)| s.len()).sum();
    assert!(
        accepted == got.len() || accepted == got.len() + 1,
        "accepted {accepted}, received {}: more than the one buffered value vanished",
        got.len()
    );
}
