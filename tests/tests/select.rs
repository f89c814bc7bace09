//! `select!` and `chan::Select`: behaviour, in coroutines and on threads.
//!
//! Checks what crossbeam-channel's `select.rs`, `select_macro.rs` and
//! `ready.rs` check, written for spindle: the chosen case, `default` and
//! `default(timeout)`, closed channels counting as ready, lazy send values,
//! fairness among ready cases, a select on both ends of one channel not
//! pairing with itself, two selects meeting on a rendezvous channel, the
//! builder's indices and `remove`, `ready`, and the panics of misuse.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle::chan::{self, bounded, Select, SendError};
use spindle::Runtime;

fn rt() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

/// Run `f` inside a coroutine on a 2-worker runtime.
fn in_coroutine<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    rt().block_on(f)
}

const SHORT: Duration = Duration::from_millis(20);

#[test]
fn chooses_the_ready_receive() {
    in_coroutine(|| {
        let (tx1, rx1) = bounded::<u32>(1);
        let (_tx2, rx2) = bounded::<u32>(1);
        tx1.send(1).unwrap();
        let got = spindle::select! {
            recv(rx1) -> m => m.unwrap(),
            recv(rx2) -> _ => panic!("rx2 is empty"),
        };
        assert_eq!(got, 1);
    });
}

#[test]
fn waits_for_a_later_send_on_either_channel() {
    in_coroutine(|| {
        for which in [0, 1] {
            let (tx1, rx1) = bounded::<u32>(0);
            let (tx2, rx2) = bounded::<u32>(0);
            let sender = spindle::spawn(move || {
                spindle::sleep(SHORT);
                if which == 0 {
                    tx1.send(10).unwrap();
                } else {
                    tx2.send(20).unwrap();
                }
            });
            let got = spindle::select! {
                recv(rx1) -> m => m.unwrap(),
                recv(rx2) -> m => m.unwrap(),
            };
            assert_eq!(got, [10, 20][which]);
            sender.join().unwrap();
        }
    });
}

#[test]
fn default_runs_when_nothing_is_ready() {
    in_coroutine(|| {
        let (tx, rx) = bounded::<u32>(0);
        let ran = spindle::select! {
            recv(rx) -> _ => panic!("nothing to receive"),
            send(tx, 1) -> _ => panic!("nobody receives"),
            default => true,
        };
        assert!(ran);
        // An empty select with only a default.
        assert_eq!(spindle::select! { default => 5 }, 5);
    });
}

#[test]
fn default_timeout_waits_then_gives_up() {
    in_coroutine(|| {
        let (_tx, rx) = bounded::<u32>(1);
        let t0 = Instant::now();
        let r = spindle::select! {
            recv(rx) -> _ => "received",
            default(SHORT) => "timed out",
        };
        assert_eq!(r, "timed out");
        assert!(t0.elapsed() >= SHORT);
    });
}

#[test]
fn default_timeout_is_not_taken_when_a_value_arrives() {
    in_coroutine(|| {
        let (tx, rx) = bounded::<u32>(0);
        let sender = spindle::spawn(move || {
            spindle::sleep(SHORT);
            tx.send(3).unwrap();
        });
        let r = spindle::select! {
            recv(rx) -> m => m.unwrap(),
            default(Duration::from_secs(30)) => 0,
        };
        assert_eq!(r, 3);
        sender.join().unwrap();
    });
}

#[test]
fn closed_channels_are_ready_with_errors() {
    in_coroutine(|| {
        let (tx, rx) = bounded::<u32>(0);
        drop(tx);
        let r = spindle::select! { recv(rx) -> m => m };
        assert_eq!(r, Err(chan::RecvError));

        let (tx, rx) = bounded::<String>(0);
        drop(rx);
        let r = spindle::select! { send(tx, "back".to_string()) -> r => r };
        assert_eq!(r, Err(SendError("back".to_string())));
    });
}

#[test]
fn a_close_wakes_a_blocked_select() {
    in_coroutine(|| {
        let (tx1, rx1) = bounded::<u32>(0);
        let (_tx2, rx2) = bounded::<u32>(0);
        let closer = spindle::spawn(move || {
            spindle::sleep(SHORT);
            drop(tx1);
        });
        let r = spindle::select! {
            recv(rx1) -> m => m.is_err(),
            recv(rx2) -> _ => false,
        };
        assert!(r, "the close of rx1's channel chose rx1 with RecvError");
        closer.join().unwrap();
    });
}

#[test]
fn send_value_is_evaluated_only_when_chosen() {
    in_coroutine(|| {
        let evaluated = AtomicUsize::new(0);
        let make = |v: u32| {
            evaluated.fetch_add(1, Ordering::SeqCst);
            v
        };
        let (tx_full, _rx_full) = bounded::<u32>(0);
        let (tx_room, rx_room) = bounded::<u32>(1);
        spindle::select! {
            send(tx_full, make(1)) -> _ => panic!("nobody receives"),
            send(tx_room, make(2)) -> r => r.unwrap(),
        }
        assert_eq!(evaluated.load(Ordering::SeqCst), 1);
        assert_eq!(rx_room.try_recv(), Ok(2));
    });
}

#[test]
fn a_failed_over_rendezvous_send_keeps_its_value() {
    // A receiver parks on a rendezvous channel after the select gave up:
    // it must not get the value the select did not send.
    in_coroutine(|| {
        let (tx, rx) = bounded::<u32>(0);
        let mut sel = Select::new();
        sel.send(&tx);
        assert!(sel.try_select().is_err());
        assert!(sel.select_timeout(SHORT).is_err());
        assert_eq!(rx.try_recv(), Err(chan::TryRecvError::Empty));
        let receiver = spindle::spawn(move || rx.recv_timeout(SHORT));
        assert_eq!(
            receiver.join().unwrap(),
            Err(chan::RecvTimeoutError::Timeout)
        );
    });
}

/// Choose among `ready` ready receives `n` times; each count must be near
/// n / ready (a binomial spread of 4 standard deviations, far from flaky).
fn fairness(ready: usize, n: usize) -> Vec<usize> {
    let chans: Vec<_> = (0..ready).map(|_| bounded::<usize>(1)).collect();
    let mut counts = vec![0; ready];
    for _ in 0..n {
        for (i, (tx, _)) in chans.iter().enumerate() {
            let _ = tx.try_send(i);
        }
        let mut sel = Select::new();
        for (_, rx) in &chans {
            sel.recv(rx);
        }
        let oper = sel.select();
        let i = oper.index();
        assert_eq!(oper.recv(&chans[i].1), Ok(i));
        counts[i] += 1;
    }
    let p = 1.0 / ready as f64;
    let (mean, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
    for (i, &c) in counts.iter().enumerate() {
        assert!(
            (c as f64 - mean).abs() < 4.5 * sd,
            "case {i} chosen {c} times of {n}, expected about {mean:.0}: {counts:?}"
        );
    }
    counts
}

#[test]
fn ready_cases_are_chosen_uniformly() {
    in_coroutine(|| {
        fairness(2, 20_000);
        // Three: a rotating start would favour the case after a gap.
        fairness(3, 30_000);
        fairness(5, 25_000);
    });
}

#[test]
fn macro_is_fair_too() {
    in_coroutine(|| {
        let (tx1, rx1) = bounded::<()>(1);
        let (tx2, rx2) = bounded::<()>(1);
        let mut first = 0;
        let n = 10_000;
        for _ in 0..n {
            let _ = tx1.try_send(());
            let _ = tx2.try_send(());
            spindle::select! {
                recv(rx1) -> _ => first += 1,
                recv(rx2) -> _ => {}
            }
        }
        // sd = 50: 4000..6000 is 20 standard deviations wide.
        assert!((4000..6000).contains(&first), "{first} of {n}");
    });
}

#[test]
fn a_select_on_both_ends_does_not_pair_with_itself() {
    in_coroutine(|| {
        let (tx, rx) = bounded::<u32>(0);
        let r = spindle::select! {
            send(tx, 1) -> _ => "sent",
            recv(rx) -> _ => "received",
            default(SHORT) => "timed out",
        };
        assert_eq!(r, "timed out");
        // With a buffer, the send is ready.
        let (tx, rx) = bounded::<u32>(1);
        let r = spindle::select! {
            send(tx, 1) -> r => r.map(|_| "sent"),
            recv(rx) -> _ => Ok("received"),
        };
        assert_eq!(r, Ok("sent"));
    });
}

#[test]
fn two_selects_meet_on_a_rendezvous_channel() {
    // Each side selects a send on one channel and a receive on the other,
    // so both may park registered on both, and a select must hand its value
    // to another select (the sender learns its partner, then sends).
    in_coroutine(|| {
        for round in 0..200u32 {
            let (a_tx, a_rx) = bounded::<u32>(0);
            let (b_tx, b_rx) = bounded::<u32>(0);
            let other = spindle::spawn(move || {
                spindle::select! {
                    send(a_tx, round) -> r => { r.unwrap(); None },
                    recv(b_rx) -> m => Some(m.unwrap()),
                }
            });
            let mine = spindle::select! {
                recv(a_rx) -> m => Some(m.unwrap()),
                send(b_tx, round + 1000) -> r => { r.unwrap(); None },
            };
            let theirs = other.join().unwrap();
            match (mine, theirs) {
                (Some(v), None) => assert_eq!(v, round),
                (None, Some(v)) => assert_eq!(v, round + 1000),
                other => panic!("round {round}: exactly one transfer expected, got {other:?}"),
            }
        }
    });
}

#[test]
fn builder_indices_and_remove() {
    in_coroutine(|| {
        let (tx1, rx1) = bounded::<u32>(1);
        let (tx2, rx2) = bounded::<u32>(1);
        let mut sel = Select::new();
        let i1 = sel.recv(&rx1);
        let i2 = sel.recv(&rx2);
        let i3 = sel.send(&tx1);
        assert_eq!((i1, i2, i3), (0, 1, 2));
        sel.remove(i3); // the send on tx1 would be ready
        tx2.send(5).unwrap();
        let oper = sel.select();
        assert_eq!(oper.index(), i2);
        assert_eq!(oper.recv(&rx2), Ok(5));
        sel.remove(i2);
        assert!(sel.try_select().is_err(), "rx1 is empty");
        tx1.send(6).unwrap();
        let oper = sel.try_select().unwrap();
        assert_eq!(oper.index(), i1);
        assert_eq!(oper.recv(&rx1), Ok(6));
    });
}

#[test]
fn select_deadline_in_the_past_only_polls() {
    in_coroutine(|| {
        let (tx, rx) = bounded::<u32>(1);
        let mut sel = Select::new();
        sel.recv(&rx);
        let past = Instant::now();
        assert!(sel.select_deadline(past).is_err());
        tx.send(1).unwrap();
        let oper = sel.select_deadline(past).unwrap();
        assert_eq!(oper.recv(&rx), Ok(1));
    });
}

#[test]
fn ready_reports_without_taking() {
    in_coroutine(|| {
        let (tx1, rx1) = bounded::<u32>(1);
        let (tx2, rx2) = bounded::<u32>(0);
        let mut sel = Select::new();
        let i1 = sel.recv(&rx1);
        let i2 = sel.send(&tx2);
        assert!(sel.try_ready().is_err());
        assert!(sel.ready_timeout(SHORT).is_err());
        tx1.send(1).unwrap();
        assert_eq!(sel.ready(), i1);
        assert_eq!(rx1.try_recv(), Ok(1), "ready() took nothing");
        // A receiver that arrives later makes the rendezvous send ready.
        let receiver = spindle::spawn(move || rx2.recv());
        assert_eq!(sel.ready_timeout(Duration::from_secs(30)), Ok(i2));
        tx2.send(2).unwrap();
        assert_eq!(receiver.join().unwrap(), Ok(2));
    });
}

#[test]
fn ready_wakes_on_a_buffered_send_and_on_close() {
    in_coroutine(|| {
        let (tx, rx) = bounded::<u32>(4);
        let sender = spindle::spawn(move || {
            spindle::sleep(SHORT);
            tx.send(1).unwrap();
            tx
        });
        let mut sel = Select::new();
        sel.recv(&rx);
        assert_eq!(sel.ready(), 0);
        assert_eq!(rx.recv(), Ok(1));
        let tx = sender.join().unwrap();
        let closer = spindle::spawn(move || {
            spindle::sleep(SHORT);
            drop(tx);
        });
        assert_eq!(sel.ready(), 0);
        assert!(rx.recv().is_err());
        closer.join().unwrap();
    });
}

#[test]
fn dropping_a_selected_operation_panics_and_frees_its_partner() {
    in_coroutine(|| {
        // A receiver waits on a rendezvous channel; a select chooses the
        // send (securing that receiver) and then drops the operation.
        let (tx, rx) = bounded::<u32>(0);
        let receiver = spindle::spawn(move || rx.recv());
        spindle::sleep(SHORT);
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut sel = Select::new();
            sel.send(&tx);
            let _oper = sel.select();
        }));
        let msg = spindle_tests::panic_message(&*dropped.unwrap_err());
        assert!(msg.contains("without completing"), "{msg}");
        // The receiver was given back: it still gets a later send.
        tx.send(9).unwrap();
        assert_eq!(receiver.join().unwrap(), Ok(9));

        // A reserved buffer slot is given back too.
        let (tx, rx) = bounded::<u32>(1);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut sel = Select::new();
            sel.send(&tx);
            let _oper = sel.select();
        }));
        tx.try_send(1).expect("the slot was released");
        assert_eq!(rx.recv(), Ok(1));
    });
}

#[test]
fn completing_with_the_wrong_end_panics() {
    let (tx1, rx1) = bounded::<u32>(1);
    let (_tx2, rx2) = bounded::<u32>(1);
    tx1.send(1).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut sel = Select::new();
        sel.recv(&rx1);
        let oper = sel.select();
        let _ = oper.recv(&rx2);
    }));
    let msg = spindle_tests::panic_message(&*r.unwrap_err());
    assert!(msg.contains("wasn't selected"), "{msg}");
}

#[test]
fn selects_work_from_plain_threads_against_coroutines() {
    let rt = rt();
    let (tx1, rx1) = bounded::<u32>(0);
    let (tx2, rx2) = bounded::<u32>(0);
    let a = rt.spawn(move || {
        for i in 0..500 {
            tx1.send(i).unwrap();
        }
    });
    let b = rt.spawn(move || {
        for i in 0..500 {
            tx2.send(1000 + i).unwrap();
        }
    });
    // This thread is no coroutine: it blocks on its parker.
    let (mut from1, mut from2) = (Vec::new(), Vec::new());
    while from1.len() + from2.len() < 1000 {
        // A channel whose sender finished is ready with an error.
        spindle::select! {
            recv(rx1) -> m => from1.extend(m.ok()),
            recv(rx2) -> m => from2.extend(m.ok()),
        }
    }
    assert_eq!(from1, (0..500).collect::<Vec<_>>());
    assert_eq!(from2, (1000..1500).collect::<Vec<_>>());
    a.join().unwrap();
    b.join().unwrap();
    // And a thread's select times out on its condition variable.
    let r = spindle::select! { recv(rx1) -> m => m.is_err(), default(SHORT) => false };
    assert!(r, "rx1's senders are gone: ready with an error");
    let (_tx, rx) = bounded::<u32>(0);
    let t0 = Instant::now();
    spindle::select! { recv(rx) -> _ => panic!("empty"), default(SHORT) => {} }
    assert!(t0.elapsed() >= SHORT);
}

#[test]
fn body_control_flow_and_temporaries() {
    in_coroutine(|| {
        let (tx, rx) = bounded::<u32>(8);
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        drop(tx);
        let mut sum = 0;
        loop {
            spindle::select! {
                recv(rx) -> m => match m {
                    Ok(v) => sum += v,
                    Err(_) => break,
                },
                // A temporary receiver lives for the whole select.
                recv(chan::after(Duration::from_secs(30))) -> _ => unreachable!(),
            }
        }
        assert_eq!(sum, 10);
        let counter = Arc::new(AtomicUsize::new(0));
        let c = counter.clone();
        let f = move || -> u32 {
            let (tx, rx) = bounded::<u32>(1);
            tx.send(4).unwrap();
            loop {
                spindle::select! {
                    recv(rx) -> m => { c.fetch_add(1, Ordering::SeqCst); return m.unwrap() * 2; }
                    default(SHORT) => continue,
                }
            }
        };
        assert_eq!(f(), 8);
        assert_eq!(counter.load(Ordering::SeqCst), 1);
    });
}
