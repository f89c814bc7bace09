//! `recv_timeout`, `recv_deadline`, `send_timeout`, `send_deadline`.
//!
//! Behaviour from coroutines and plain threads: a timeout when nothing
//! happens (never early), success when the partner comes in time,
//! `Disconnected` on a closed channel, and the race that matters: timers
//! firing while values are handed over. Every value offered is counted, so a
//! wait that both timed out and took a value (or a value lost between the
//! timer and the channel) shows up as a wrong total.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle::chan::{bounded, RecvTimeoutError, SendTimeoutError};
use spindle::Runtime;
use spindle_tests::watchdog;

const MS: Duration = Duration::from_millis(1);

fn rt() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

fn timeouts_basic() {
    let (tx, rx) = bounded::<u32>(0);
    let t0 = Instant::now();
    assert_eq!(rx.recv_timeout(20 * MS), Err(RecvTimeoutError::Timeout));
    assert!(t0.elapsed() >= 20 * MS, "timed out early");
    let t0 = Instant::now();
    assert_eq!(
        tx.send_timeout(5, 20 * MS),
        Err(SendTimeoutError::Timeout(5))
    );
    assert!(t0.elapsed() >= 20 * MS, "timed out early");
    let past = Instant::now();
    assert_eq!(rx.recv_deadline(past), Err(RecvTimeoutError::Timeout));
    assert_eq!(tx.send_deadline(6, past), Err(SendTimeoutError::Timeout(6)));
    // A huge timeout does not overflow: it waits like a plain recv.
    let (tx2, rx2) = bounded::<u32>(1);
    tx2.send(1).unwrap();
    assert_eq!(rx2.recv_timeout(Duration::MAX), Ok(1));
    assert_eq!(tx2.send_timeout(2, Duration::MAX), Ok(()));
    drop(tx);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)),
        Err(RecvTimeoutError::Disconnected)
    );
    let (tx, rx) = bounded::<u32>(0);
    drop(rx);
    assert_eq!(
        tx.send_timeout(3, Duration::from_secs(30)),
        Err(SendTimeoutError::Disconnected(3))
    );
}

#[test]
fn timeouts_in_a_coroutine() {
    rt().block_on(timeouts_basic);
}

#[test]
fn timeouts_on_a_thread() {
    timeouts_basic();
}

#[test]
fn a_partner_in_time_wins_over_the_timeout() {
    let rt = rt();
    rt.block_on(|| {
        for cap in [0, 1] {
            let (tx, rx) = bounded::<u32>(cap);
            let sender = spindle::spawn(move || {
                spindle::sleep(10 * MS);
                tx.send(1).unwrap();
                tx
            });
            assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(1));
            let tx = sender.join().unwrap();
            // And the other direction: a full channel that a receiver drains.
            if cap == 1 {
                tx.send(2).unwrap();
            }
            let receiver = spindle::spawn(move || {
                spindle::sleep(10 * MS);
                let a = rx.recv().unwrap();
                if cap == 1 {
                    (a, rx.recv().unwrap())
                } else {
                    (a, 0)
                }
            });
            assert_eq!(tx.send_timeout(3, Duration::from_secs(30)), Ok(()));
            let got = receiver.join().unwrap();
            assert_eq!(got, if cap == 1 { (2, 3) } else { (3, 0) });
        }
    });
}

#[test]
fn a_thread_times_out_against_coroutines() {
    let rt = rt();
    let (tx, rx) = bounded::<u32>(0);
    let h = rt.spawn(move || {
        spindle::sleep(30 * MS);
        tx.send(9).unwrap();
    });
    // The first wait is too short, the second long enough.
    assert_eq!(rx.recv_timeout(MS), Err(RecvTimeoutError::Timeout));
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(9));
    h.join().unwrap();
}

/// Senders offer values with short timeouts while receivers take them with
/// short timeouts, so timers fire all the time, often just as a hand-off
/// happens. Every value a sender saw accepted must be received exactly once.
fn racing_timeouts(cap: usize, threads: bool) {
    let rt = rt();
    let sent = Arc::new(AtomicU64::new(0));
    let sum_sent = Arc::new(AtomicU64::new(0));
    let (tx, rx) = bounded::<u64>(cap);
    let per_sender = 3_000u64;
    let senders: Vec<_> = (0..3u64)
        .map(|s| {
            let (tx, sent, sum_sent) = (tx.clone(), sent.clone(), sum_sent.clone());
            let body = move || {
                for i in 0..per_sender {
                    let v = s * 1_000_000 + i;
                    match tx.send_timeout(v, Duration::from_micros(50 + i % 200)) {
                        Ok(()) => {
                            sent.fetch_add(1, Ordering::Relaxed);
                            sum_sent.fetch_add(v, Ordering::Relaxed);
                        }
                        Err(SendTimeoutError::Timeout(back)) => assert_eq!(back, v),
                        Err(e) => panic!("{e}"),
                    }
                }
            };
            if threads && s == 0 {
                std::thread::spawn(body).join().ok();
                None
            } else {
                Some(rt.spawn(body))
            }
        })
        .collect();
    drop(tx);
    let receivers: Vec<_> = (0..3)
        .map(|_| {
            let rx = rx.clone();
            rt.spawn(move || {
                let (mut n, mut sum) = (0u64, 0u64);
                loop {
                    match rx.recv_timeout(Duration::from_micros(70)) {
                        Ok(v) => {
                            n += 1;
                            sum += v;
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return (n, sum),
                    }
                }
            })
        })
        .collect();
    for s in senders.into_iter().flatten() {
        s.join().unwrap();
    }
    let (mut n, mut sum) = (0, 0);
    for r in receivers {
        let (a, b) = r.join().unwrap();
        n += a;
        sum += b;
    }
    // What is left in the buffer was accepted too.
    for v in rx.try_iter() {
        n += 1;
        sum += v;
    }
    assert_eq!(
        n,
        sent.load(Ordering::Relaxed),
        "values received vs accepted"
    );
    assert_eq!(sum, sum_sent.load(Ordering::Relaxed));
}

#[test]
fn timers_racing_hand_offs_lose_and_duplicate_nothing() {
    watchdog("racing timeouts", |_| {
        racing_timeouts(0, false);
        racing_timeouts(1, false);
        racing_timeouts(8, true);
    });
}
