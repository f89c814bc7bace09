//! `chan::after`, `at`, `tick` and `never`, in coroutines and on threads.
//!
//! What crossbeam-channel's `after.rs`, `tick.rs` and `never.rs` check,
//! written for spindle: a message no earlier than due, carrying the due time;
//! one message for `after`/`at`, a stream for `tick` that drops what a slow
//! receiver missed; `never` never ready; `len`/`capacity`/`is_full`; clock
//! channels in `select!` as timeouts. Time assertions only bound from below
//! (the machine may be slow); upper bounds are generous.

use std::time::{Duration, Instant};

use spindle::chan::{self, after, at, bounded, never, tick, RecvTimeoutError, TryRecvError};
use spindle::Runtime;

const MS: Duration = Duration::from_millis(1);

fn in_coroutine<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    Runtime::builder().workers(2).build().unwrap().block_on(f)
}

fn after_delivers_once(d: Duration) {
    let t0 = Instant::now();
    let rx = after(d);
    assert_eq!(rx.capacity(), Some(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert!(rx.is_empty() && !rx.is_full());
    let when = rx.recv().unwrap();
    assert!(when >= t0 + d, "delivered early");
    assert!(Instant::now() >= when);
    assert!(t0.elapsed() < Duration::from_secs(10));
    // Only one message, ever.
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(
        rx.recv_timeout(20 * MS),
        Err(RecvTimeoutError::Timeout),
        "a spent after() stays empty"
    );
}

#[test]
fn after_in_a_coroutine_and_on_a_thread() {
    in_coroutine(|| after_delivers_once(30 * MS));
    after_delivers_once(30 * MS);
}

#[test]
fn after_zero_is_ready_at_once_and_len_shows_it() {
    let rx = after(Duration::ZERO);
    assert_eq!(rx.len(), 1);
    assert!(rx.is_full());
    assert!(rx.try_recv().is_ok());
    assert_eq!(rx.len(), 0);
}

#[test]
fn at_delivers_the_due_instant() {
    in_coroutine(|| {
        let due = Instant::now() + 20 * MS;
        let rx = at(due);
        assert_eq!(rx.recv(), Ok(due));
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(at(past).try_recv(), Ok(past));
    });
}

#[test]
fn clones_share_the_one_message() {
    let rx = after(Duration::ZERO);
    let rx2 = rx.clone();
    assert!(rx.same_channel(&rx2));
    assert!(!rx.same_channel(&after(Duration::ZERO)));
    let a = rx.try_recv().is_ok() as u32;
    let b = rx2.try_recv().is_ok() as u32;
    assert_eq!(a + b, 1);
}

#[test]
fn tick_delivers_a_stream_spaced_by_the_period() {
    in_coroutine(|| {
        let period = 15 * MS;
        let t0 = Instant::now();
        let rx = tick(period);
        let mut last = t0;
        for i in 1..=5u32 {
            let when = rx.recv().unwrap();
            assert!(when >= t0 + period * i, "tick {i} early");
            assert!(when >= last);
            last = when;
        }
    });
}

#[test]
fn tick_drops_ticks_a_slow_receiver_missed() {
    let period = 10 * MS;
    let rx = tick(period);
    std::thread::sleep(period * 8);
    assert_eq!(rx.len(), 1, "at most one tick is held");
    let before = Instant::now();
    assert!(rx.try_recv().is_ok());
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Empty),
        "the missed ticks are gone"
    );
    // The next one comes a period after that receive, not earlier.
    let next = rx.recv().unwrap();
    assert!(
        next >= before + period,
        "next tick scheduled from the receive"
    );
}

#[test]
fn tick_in_select_with_other_work() {
    in_coroutine(|| {
        let (tx, rx) = bounded::<u32>(0);
        let producer = spindle::spawn(move || {
            for i in 0..20 {
                spindle::sleep(2 * MS);
                tx.send(i).unwrap();
            }
        });
        let ticker = tick(10 * MS);
        let (mut values, mut ticks) = (0, 0);
        while values < 20 {
            spindle::select! {
                recv(rx) -> m => { m.unwrap(); values += 1; }
                recv(ticker) -> t => { t.unwrap(); ticks += 1; }
            }
        }
        producer.join().unwrap();
        assert!(ticks >= 1, "40 ms of work saw no 10 ms tick");
    });
}

#[test]
fn never_is_never_ready() {
    in_coroutine(|| {
        let rx = never::<String>();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(rx.recv_timeout(10 * MS), Err(RecvTimeoutError::Timeout));
        assert_eq!((rx.len(), rx.capacity()), (0, Some(0)));
        assert!(rx.is_empty() && rx.is_full());
        assert!(rx.same_channel(&never()));
        let r = spindle::select! {
            recv(rx) -> _ => "never",
            recv(after(10 * MS)) -> _ => "after",
        };
        assert_eq!(r, "after");
        // A channel switched off by replacing it with never(), Go's nil
        // channel idiom.
        let (tx, real) = bounded::<u32>(1);
        tx.send(1).unwrap();
        let off = never();
        let pick = |on: bool| if on { real.clone() } else { off.clone() };
        let r = spindle::select! {
            recv(pick(false)) -> _ => 0,
            default(10 * MS) => 1,
        };
        assert_eq!(r, 1);
        let r = spindle::select! { recv(pick(true)) -> m => m.unwrap(), default => 0 };
        assert_eq!(r, 1);
    });
}

#[test]
fn after_as_a_select_timeout_from_a_thread() {
    let (_tx, rx) = bounded::<u32>(0);
    let t0 = Instant::now();
    let timeout = after(20 * MS);
    let r = spindle::select! {
        recv(rx) -> _ => None,
        recv(timeout) -> t => Some(t.unwrap()),
    };
    let when = r.expect("the timeout fired");
    assert!(when >= t0 + 20 * MS && t0.elapsed() >= 20 * MS);
}

#[test]
fn many_coroutines_wait_on_clocks_at_once() {
    // 200 coroutines each wait for their own `after` in a select with a
    // never-ready channel: every one wakes, none early.
    in_coroutine(|| {
        let (_tx, rx) = bounded::<u32>(0);
        let handles: Vec<_> = (0..200u64)
            .map(|i| {
                let rx = rx.clone();
                spindle::spawn(move || {
                    let d = Duration::from_millis(1 + i % 25);
                    let t0 = Instant::now();
                    spindle::select! {
                        recv(rx) -> _ => panic!("nothing is sent"),
                        recv(chan::after(d)) -> _ => {}
                    }
                    assert!(t0.elapsed() >= d);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}
