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
