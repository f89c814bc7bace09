//! Model-checking the channel wake protocol with loom (threads stand in for
//! coroutines: both go through the same `Waiter`/`WaitCell` code).

use super::*;
use loom::thread;

/// Rendezvous: a blocked sender and a blocked receiver always meet; the
/// value arrives exactly once and nobody sleeps forever.
#[test]
fn loom_rendezvous_hand_off() {
    loom::model(|| {
        let (tx, rx) = bounded::<u32>(0);
        let t = thread::spawn(move || tx.send(7).unwrap());
        assert_eq!(rx.recv(), Ok(7));
        t.join().unwrap();
    });
}

/// Closing (dropping the last sender) wakes a parked receiver.
#[test]
fn loom_close_wakes_receiver() {
    loom::model(|| {
        let (tx, rx) = bounded::<u32>(1);
        let t = thread::spawn(move || rx.recv());
        drop(tx);
        assert_eq!(t.join().unwrap(), Err(RecvError));
    });
}

/// A full buffered channel: the parked sender's value lands behind the
/// buffered one (FIFO) when a receiver frees a slot.
#[test]
fn loom_buffered_fifo_with_parked_sender() {
    loom::model(|| {
        let (tx, rx) = bounded::<u32>(1);
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
        });
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.recv(), Ok(2));
        t.join().unwrap();
        assert_eq!(rx.recv(), Err(RecvError));
    });
}

/// Dropping the receiver hands a parked sender its value back.
#[test]
fn loom_receiver_drop_returns_value() {
    loom::model(|| {
        let (tx, rx) = bounded::<u32>(0);
        let t = thread::spawn(move || tx.send(5));
        drop(rx);
        assert_eq!(t.join().unwrap().map_err(|e| e.0), Err(5));
    });
}

/// Run `f` under loom with at most `bound` preemptions. The three-thread
/// models need this: with two parties spinning on the channel's spin lock
/// while a preempted third holds it, loom can alternate the two spinners'
/// `yield_now`s forever (no fairness), so any bound of 2 or more, or none,
/// hits loom's branch limit. A bound of 1 still lets a party be preempted
/// once anywhere, e.g. between a waker's `finish` and its `wake`.
fn model_bounded<F: Fn() + Sync + Send + 'static>(bound: usize, f: F) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    builder.check(f);
}

/// A value that records its own drop in a shared log, to check that every
/// value sent ends up somewhere exactly once (received, returned in
/// `SendError`, or dropped with the buffer) — never lost, never duplicated.
/// The log is a `std` mutex on purpose: it is bookkeeping, not part of the
/// protocol, and no loom operation runs while it is held.
struct Tracked(u32, std::sync::Arc<std::sync::Mutex<Vec<u32>>>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.1.lock().unwrap().push(self.0);
    }
}

fn drop_log() -> std::sync::Arc<std::sync::Mutex<Vec<u32>>> {
    std::sync::Arc::new(std::sync::Mutex::new(Vec::new()))
}

fn sorted(log: &std::sync::Mutex<Vec<u32>>) -> Vec<u32> {
    let mut v = log.lock().unwrap().clone();
    v.sort_unstable();
    v
}

/// Rendezvous with two senders and one receiver: both values arrive exactly
/// once, both senders return, and the channel reports closed once both
/// senders are gone.
#[test]
fn loom_rendezvous_two_senders() {
    model_bounded(1, || {
        let (tx1, rx) = bounded::<u32>(0);
        let tx2 = tx1.clone();
        let t1 = thread::spawn(move || tx1.send(1).unwrap());
        let t2 = thread::spawn(move || tx2.send(2).unwrap());
        let mut got = [rx.recv().unwrap(), rx.recv().unwrap()];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(rx.recv(), Err(RecvError));
    });
}

/// A sender blocked on a full channel (cap 1, one value buffered) races the
/// drop of the last receiver. If the receiver drops without receiving, the
/// sender always gets its value back. If it receives once first, the
/// sender's value is either accepted (and then dropped with the buffer) or
/// returned. Either way every value is delivered, returned or dropped
/// exactly once, and the sender never sleeps forever.
#[test]
fn loom_send_races_receiver_drop() {
    for receive_first in [false, true] {
        loom::model(move || {
            let log = drop_log();
            let (tx, rx) = bounded::<Tracked>(1);
            tx.send(Tracked(1, log.clone())).unwrap();
            let l2 = log.clone();
            let t = thread::spawn(move || tx.send(Tracked(2, l2)).map_err(|e| e.0 .0));
            let got = receive_first.then(|| rx.recv().unwrap().0);
            drop(rx);
            let sent = t.join().unwrap();
            if receive_first {
                assert_eq!(got, Some(1));
            } else {
                assert_eq!(sent, Err(2), "nobody received: the value must come back");
            }
            assert_eq!(sorted(&log), [1, 2]);
        });
    }
}

/// A receiver races the drop of the last sender while a value is in flight
/// (buffered for cap 1, handed over for cap 0): it gets the value, then
/// `RecvError`; the value is never lost and the receiver never hangs.
#[test]
fn loom_recv_races_last_sender_drop() {
    for cap in [0, 1] {
        loom::model(move || {
            let log = drop_log();
            let (tx, rx) = bounded::<Tracked>(cap);
            let l2 = log.clone();
            let t = thread::spawn(move || {
                tx.send(Tracked(9, l2)).map_err(|_| ()).unwrap();
                drop(tx);
            });
            assert_eq!(rx.recv().map(|v| v.0), Ok(9));
            assert_eq!(rx.recv().map(|v| v.0), Err(RecvError));
            t.join().unwrap();
            assert_eq!(sorted(&log), [9]);
        });
    }
}

/// Two receivers, one sender, cap 1: each value is received exactly once,
/// and both receivers see the close after the sender is dropped.
#[test]
fn loom_two_receivers_buffered() {
    model_bounded(1, || {
        let (tx, rx1) = bounded::<u32>(1);
        let rx2 = rx1.clone();
        let t1 = thread::spawn(move || rx1.iter().collect::<Vec<_>>());
        let t2 = thread::spawn(move || rx2.iter().collect::<Vec<_>>());
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        drop(tx);
        let mut got = t1.join().unwrap();
        got.extend(t2.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}
