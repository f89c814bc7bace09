//! Model-checking the select claim with loom (threads stand in for
//! coroutines: both go through the same `Waiter`/`WaitCell` code).
//!
//! The first models drive the claim protocol of `queue.rs` directly: one
//! selection queued on two channels, both firing, and the selector's own
//! deadline claim racing them. The others run whole selects.
//!
//! Mutation checks (done by hand for issue #13): replacing the
//! compare-and-swap in `Selection::claim` by a plain store makes
//! `loom_two_channels_and_a_deadline_race_for_one_selection`,
//! `loom_select_two_senders_fire_at_once`, `loom_close_races_a_send_into_a_select`
//! and `loom_two_selects_meet` fail; doing the same to `Selection::give_up`
//! makes the first fail ("timed out, yet delivered").

use super::lock::SpinLock;
use super::queue::{Entry, Selection, WaitQueue};
use super::select::wait_chosen;
use super::*;
use crate::loom_shim::Arc;
use crate::park::Caller;
use crate::wait_cell::Outcome;
use loom::thread;

fn model_bounded<F: Fn() + Sync + Send + 'static>(bound: usize, f: F) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    builder.check(f);
}

/// A "channel" reduced to its queue: claim the first party and deliver
/// `value` to it. Returns whether it delivered.
fn fire(q: &SpinLock<WaitQueue>, value: u32) -> bool {
    let party = q.lock().claim();
    match party {
        Some(p) => {
            super::channel::deliver(p, value);
            true
        }
        None => false,
    }
}

/// One selection sits in two queues; both channels fire while the selector's
/// deadline passes. Exactly one of the three claims wins: the selector gets
/// the value of the channel that won (or times out, and nobody delivered).
#[test]
fn loom_two_channels_and_a_deadline_race_for_one_selection() {
    model_bounded(3, || {
        let me = Caller::get();
        me.cell().prepare();
        let sel = Selection::new(me.to_waiter(), false);
        let q1 = Arc::new(SpinLock::new(WaitQueue::default()));
        let q2 = Arc::new(SpinLock::new(WaitQueue::default()));
        q1.lock().push(Entry::Select(sel.clone(), 0));
        q2.lock().push(Entry::Select(sel.clone(), 1));
        let (a, b) = (q1.clone(), q2.clone());
        let t1 = thread::spawn(move || fire(&a, 10));
        let t2 = thread::spawn(move || fire(&b, 20));
        // The deadline has passed: give up unless a channel got there first.
        let chosen = wait_chosen(&me, &sel, Some(std::time::Instant::now()));
        let fired = [t1.join().unwrap(), t2.join().unwrap()];
        match chosen {
            None => assert_eq!(fired, [false, false], "timed out, yet delivered"),
            Some(case) => {
                assert_eq!(me.cell().outcome(), Outcome::Delivered);
                // SAFETY: DELIVERED: the winner put a u32 in our cell.
                let v: u32 = unsafe { me.cell().take() };
                assert_eq!(v, [10, 20][case]);
                let mut expect = [false, false];
                expect[case] = true;
                assert_eq!(fired, expect, "exactly the chosen channel delivered");
            }
        }
    });
}

/// A select on two rendezvous channels while both senders send: the select
/// takes exactly one value; the other comes back to its sender when the
/// receivers are dropped. Nothing is lost, nothing delivered twice.
#[test]
fn loom_select_two_senders_fire_at_once() {
    model_bounded(2, || {
        let (tx1, rx1) = bounded::<u32>(0);
        let (tx2, rx2) = bounded::<u32>(0);
        let t1 = thread::spawn(move || tx1.send(1).map_err(|e| e.0));
        let t2 = thread::spawn(move || tx2.send(2).map_err(|e| e.0));
        let got = crate::select! {
            recv(rx1) -> m => m.unwrap(),
            recv(rx2) -> m => m.unwrap(),
        };
        drop((rx1, rx2));
        let r = [t1.join().unwrap(), t2.join().unwrap()];
        match got {
            1 => assert_eq!(r, [Ok(()), Err(2)]),
            2 => assert_eq!(r, [Err(1), Ok(())]),
            v => panic!("got {v}"),
        }
    });
}

/// A select registered on a channel that closes while another channel
/// delivers: the select gets the value or the close, once; a value it did
/// not take is still there for a plain receive.
#[test]
fn loom_close_races_a_send_into_a_select() {
    model_bounded(2, || {
        let (tx1, rx1) = bounded::<u32>(1);
        let (tx2, rx2) = bounded::<u32>(0);
        let t1 = thread::spawn(move || tx1.send(7).unwrap());
        let t2 = thread::spawn(move || drop(tx2));
        let got = crate::select! {
            recv(rx1) -> m => m.ok(),
            recv(rx2) -> m => { assert_eq!(m, Err(RecvError)); None },
        };
        t1.join().unwrap();
        t2.join().unwrap();
        match got {
            Some(v) => assert_eq!(v, 7),
            None => assert_eq!(rx1.recv(), Ok(7), "the value the select skipped"),
        }
    });
}

/// A selecting sender meets a plain receiver on a rendezvous channel,
/// whichever arrives first (a parked receiver becomes the send's partner; a
/// parked select is paired by the receiver): the value arrives once.
#[test]
fn loom_select_send_meets_plain_receiver() {
    model_bounded(3, || {
        let (tx, rx) = bounded::<u32>(0);
        let t = thread::spawn(move || rx.recv());
        let mut sel = Select::new();
        sel.send(&tx);
        let oper = sel.select();
        assert_eq!(oper.send(&tx, 5), Ok(()));
        assert_eq!(t.join().unwrap(), Ok(5));
    });
}

/// Two selects meet: one sends on `a` or receives on `b`, the other the
/// mirror image. Exactly one transfer happens, whatever the interleaving.
#[test]
fn loom_two_selects_meet() {
    model_bounded(2, || {
        let (a_tx, a_rx) = bounded::<u32>(0);
        let (b_tx, b_rx) = bounded::<u32>(0);
        let t = thread::spawn(move || {
            crate::select! {
                send(a_tx, 1) -> r => { r.unwrap(); None },
                recv(b_rx) -> m => Some(m.unwrap()),
            }
        });
        let mine = crate::select! {
            recv(a_rx) -> m => Some(m.unwrap()),
            send(b_tx, 2) -> r => { r.unwrap(); None },
        };
        match (mine, t.join().unwrap()) {
            (Some(1), None) | (None, Some(2)) => {}
            other => panic!("exactly one transfer expected: {other:?}"),
        }
    });
}

/// A buffered channel, full: a selecting sender is parked on it when a
/// receiver frees the slot. The slot is reserved for the select, which then
/// sends; both values arrive, in order.
#[test]
fn loom_reserved_slot_after_a_receive() {
    model_bounded(3, || {
        let (tx, rx) = bounded::<u32>(1);
        tx.send(1).unwrap();
        let t = thread::spawn(move || {
            let a = rx.recv().unwrap();
            let b = rx.recv().unwrap();
            [a, b]
        });
        let mut sel = Select::new();
        sel.send(&tx);
        let oper = sel.select();
        oper.send(&tx, 2).unwrap();
        assert_eq!(t.join().unwrap(), [1, 2]);
    });
}
