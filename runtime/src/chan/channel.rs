//! The channel core: one lock around a ring buffer and two wait queues.
//!
//! The design is Go's `runtime/chan.go`; `mod.rs` tells the story. This file
//! holds the state and every transition, including the ones a select makes
//! (`select.rs` drives them through the [`Operation`](super::select) trait).
//!
//! Invariants under the lock (stale select entries and watchers aside):
//!
//! 1. `buf.len() + reserved <= cap`, where `reserved` counts slots promised
//!    to selecting senders that have not sent yet;
//! 2. `recvq` holds a party only if `buf` is empty;
//! 3. `sendq` holds a party only if `buf.len() + reserved == cap`.
//!
//! Every party in a queue has its cell `WAITING`; only the one that takes it
//! out (and, for a select, claims it) may touch the cell. Wake-ups happen
//! after the lock is released, except for `ready` watchers (`queue.rs`).
//! A wait that unwinds (its coroutine cancelled at shutdown) withdraws its
//! entry first, as a timed-out one does ([`Parked`], `select.rs`).
//!
//! A rendezvous hand-off costs one locked instruction on each side, the
//! lock's compare-and-swap; why a lock-free slot would not cost fewer:
//! `docs/notes/runtime-figures.md` (*The rendezvous hand-off's last two
//! locked instructions*).

use std::collections::VecDeque;

use super::lock::{SpinGuard, SpinLock};
use super::queue::{Entry, Party, Selection, WaitQueue};
use crate::loom_shim::Arc;
use crate::park::Caller;
use crate::wait_cell::Outcome;

pub(crate) struct Chan<T> {
    inner: SpinLock<Inner<T>>,
}

struct Inner<T> {
    buf: VecDeque<T>,
    cap: usize,
    reserved: usize,
    recvq: WaitQueue,
    sendq: WaitQueue,
    senders: usize,
    receivers: usize,
}

/// What a receive found without waiting.
enum Take<T> {
    /// A value, and maybe a sender to finish (outside the lock).
    Value(T, Option<(Party, Outcome)>),
    /// Rendezvous with a *selecting* sender: it has no value yet. The caller
    /// hands it a waiter to deliver to (`PAIRED`).
    Pair(Party),
    Empty,
}

/// A send that a select chose, not yet done: how it will complete.
pub(crate) enum SendToken {
    /// Hand the value to this receiver (it waits for it).
    Partner(Party),
    /// A buffer slot is reserved for the value.
    Slot,
    /// Every receiver is gone: the value comes back.
    Closed,
}

/// What a receive that a select chose found.
pub(crate) enum RecvToken<T> {
    Value(T),
    Closed,
}

/// Deferred `finish`es and deliveries, done after the lock is released.
enum Done<T> {
    Finish(Party, Outcome),
    Deliver(Party, T),
}

impl<T> Done<T> {
    fn run(self) {
        match self {
            Done::Finish(p, o) => p.finish(o),
            Done::Deliver(p, v) => deliver(p, v),
        }
    }
}

/// Hand `value` to a party taken from `recvq` and wake it.
pub(crate) fn deliver<T>(receiver: Party, value: T) {
    // SAFETY: the receiver was taken (and claimed) by us, so we own its
    // WAITING cell; it reads the value only after seeing DELIVERED.
    unsafe { receiver.cell().put(value) };
    receiver.finish(Outcome::Delivered);
}

impl<T> Chan<T> {
    pub fn new(cap: usize) -> Chan<T> {
        Chan {
            inner: SpinLock::new(Inner {
                buf: VecDeque::with_capacity(cap.min(1024)),
                cap,
                reserved: 0,
                recvq: WaitQueue::default(),
                sendq: WaitQueue::default(),
                senders: 1,
                receivers: 1,
            }),
        }
    }

    #[inline(always)]
    pub fn send(&self, value: T) -> Result<(), T> {
        let mut inner = self.inner.lock();
        if inner.receivers == 0 {
            return Err(value);
        }
        let value = match inner.offer(value) {
            Ok(receiver) => {
                delivered(inner, receiver);
                return Ok(());
            }
            Err(value) => value,
        };
        let me = Caller::get();
        me.cell().prepare();
        // SAFETY: our cell is WAITING and not yet visible to anyone.
        unsafe { me.cell().put(value) };
        inner.sendq.push(Entry::Plain(me.to_waiter()));
        drop(inner);
        match self.wait_queued(&me, true) {
            Outcome::Taken => Ok(()),
            // SAFETY: CLOSED means nobody took the value; the cell is ours again.
            _ => Err(unsafe { me.cell().take() }),
        }
    }

    /// Send without waiting: `Err((value, disconnected))` if it cannot.
    pub fn try_send(&self, value: T) -> Result<(), (T, bool)> {
        let mut inner = self.inner.lock();
        if inner.receivers == 0 {
            return Err((value, true));
        }
        match inner.offer(value) {
            Ok(receiver) => {
                delivered(inner, receiver);
                Ok(())
            }
            Err(value) => Err((value, false)),
        }
    }

    /// Receive, waiting while empty; `None` once empty and closed.
    #[inline(always)]
    pub fn recv(&self) -> Option<T> {
        let mut inner = self.inner.lock();
        if inner.cap == 0 {
            // A rendezvous receive, spelled out rather than through
            // `take_one`: the hot path of every hand-off, and building and
            // matching a `Take` cost it a handful of instructions.
            match inner.sendq.claim() {
                Some(Party::Plain(w)) => {
                    // SAFETY: as in `take_one`: we took `w` under the lock,
                    // and a plain sender parks with its value in its cell.
                    let value = unsafe { w.cell().take() };
                    drop(inner);
                    Party::Plain(w).finish(Outcome::Taken);
                    return Some(value);
                }
                Some(selecting) => return self.recv_paired(inner, selecting),
                None => {}
            }
        } else {
            match inner.take_one() {
                Take::Value(value, sender) => return Some(received(inner, value, sender)),
                Take::Pair(sender) => return self.recv_paired(inner, sender),
                Take::Empty => {}
            }
        }
        if inner.senders == 0 {
            return None;
        }
        let me = Caller::get();
        me.cell().prepare();
        inner.recvq.push(Entry::Plain(me.to_waiter()));
        drop(inner);
        match self.wait_queued(&me, false) {
            // SAFETY: DELIVERED means a sender put a T into our cell.
            Outcome::Delivered => Some(unsafe { me.cell().take() }),
            Outcome::Closed => None,
            _ => self.recv_again(),
        }
    }

    /// Wait for the outcome of a plain wait that `me` queued (in `sendq` if
    /// `send`), withdrawing it if the wait unwinds (see [`Parked`]).
    #[inline(always)]
    fn wait_queued(&self, me: &Caller, send: bool) -> Outcome {
        let parked = Parked {
            chan: self,
            me,
            send,
        };
        let outcome = me.wait();
        std::mem::forget(parked);
        outcome
    }

    /// A select chose us for its send and then dropped the operation
    /// (`RETRY`): receive again.
    #[cold]
    fn recv_again(&self) -> Option<T> {
        self.recv()
    }

    /// A plain receive met a selecting sender on a rendezvous channel: give
    /// it our waiter, wait for the value, or start again if it gave up.
    #[cold]
    fn recv_paired(&self, inner: SpinGuard<'_, Inner<T>>, sender: Party) -> Option<T> {
        match pair(inner, sender) {
            Some(v) => Some(v),
            None => self.recv(),
        }
    }

    /// Receive without waiting: `Err(disconnected)` if nothing is there.
    pub fn try_recv(&self) -> Result<T, bool> {
        let mut inner = self.inner.lock();
        match inner.take_one() {
            Take::Value(value, sender) => Ok(received(inner, value, sender)),
            // A selecting sender is committed to us once paired; wait the
            // short while until it sends (crossbeam does the same).
            Take::Pair(sender) => pair(inner, sender).ok_or(false),
            Take::Empty => Err(inner.senders == 0),
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().buf.len()
    }

    pub fn capacity(&self) -> usize {
        self.inner.lock().cap
    }

    pub fn add_sender(&self) {
        self.inner.lock().senders += 1;
    }

    pub fn add_receiver(&self) {
        self.inner.lock().receivers += 1;
    }

    /// One sender fewer; the last one closes the channel for receiving:
    /// everyone parked in a receive gets `CLOSED`, each woken at the back
    /// of its home's line (`Party::finish_queued`: a close wakes them all
    /// at once).
    pub fn drop_sender(&self) {
        let mut inner = self.inner.lock();
        inner.senders -= 1;
        if inner.senders > 0 {
            return;
        }
        let parked = inner.recvq.drain();
        drop(inner);
        for p in parked {
            p.finish_queued(Outcome::Closed);
        }
    }

    /// One receiver fewer; the last one closes the channel for sending:
    /// parked senders get their values back, buffered values are dropped
    /// (outside the lock: their `Drop` may block).
    pub fn drop_receiver(&self) {
        let mut inner = self.inner.lock();
        inner.receivers -= 1;
        if inner.receivers > 0 {
            return;
        }
        let parked = inner.sendq.drain();
        let buffered = std::mem::take(&mut inner.buf);
        drop(inner);
        for p in parked {
            p.finish(Outcome::Closed);
        }
        drop(buffered);
    }

    // ---- the select side (see select.rs) ----

    /// Try a receive for a select: `None` if it would block.
    pub fn start_recv(&self) -> Option<RecvToken<T>> {
        match self.try_recv() {
            Ok(v) => Some(RecvToken::Value(v)),
            Err(true) => Some(RecvToken::Closed),
            Err(false) => None,
        }
    }

    /// Try to secure a send for a select, without its value: a waiting
    /// receiver, a reserved slot, or "closed". `None` if it would block.
    pub fn start_send(&self) -> Option<SendToken> {
        let mut inner = self.inner.lock();
        if inner.receivers == 0 {
            return Some(SendToken::Closed);
        }
        if let Some(receiver) = inner.recvq.claim() {
            return Some(SendToken::Partner(receiver));
        }
        if inner.has_room() {
            inner.reserved += 1;
            return Some(SendToken::Slot);
        }
        None
    }

    /// Would a receive (`send == false`) or a send proceed now? Counts no
    /// entry of `me` as a partner.
    pub fn ready(&self, send: bool, me: Option<&Selection>) -> bool {
        self.inner.lock().ready(send, me)
    }

    /// Queue `me` for `case` unless the operation looks ready (then `true`
    /// and nothing is queued).
    pub fn register(&self, send: bool, me: &Arc<Selection>, case: usize) -> bool {
        let mut inner = self.inner.lock();
        if inner.ready(send, Some(me)) {
            return true;
        }
        let q = if send {
            &mut inner.sendq
        } else {
            &mut inner.recvq
        };
        let case = u32::try_from(case).expect("a select has fewer than 2^32 operations");
        q.push(Entry::Select(me.clone(), case));
        false
    }

    /// Unlink `me`'s entries (its wait is over).
    pub fn unregister(&self, send: bool, me: &Selection) {
        self.withdraw(send, me.addr());
    }

    /// Unlink the entries of the waiter `me` ([`Entry`]'s owner) from the
    /// send or receive queue: `true` if one was there, so nobody took it.
    fn withdraw(&self, send: bool, me: *const ()) -> bool {
        let mut inner = self.inner.lock();
        let q = if send {
            &mut inner.sendq
        } else {
            &mut inner.recvq
        };
        q.remove(me)
    }

    /// Send `value` into a slot [`start_send`](Self::start_send) reserved.
    pub fn send_reserved(&self, value: T) -> Result<(), T> {
        let mut done = Vec::new();
        let mut inner = self.inner.lock();
        inner.reserved -= 1;
        if inner.receivers == 0 {
            return Err(value);
        }
        match inner.recvq.claim() {
            Some(receiver) => done.push(Done::Deliver(receiver, value)),
            None => inner.buf.push_back(value),
        }
        inner.refill(&mut done);
        drop(inner);
        done.into_iter().for_each(Done::run);
        Ok(())
    }

    /// Give back a reserved slot that was never used.
    pub fn release_reserved(&self) {
        let mut done = Vec::new();
        let mut inner = self.inner.lock();
        inner.reserved -= 1;
        inner.refill(&mut done);
        drop(inner);
        done.into_iter().for_each(Done::run);
    }

    #[cfg(all(test, not(loom)))]
    pub fn queued(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.recvq.len(), inner.sendq.len())
    }
}

/// A plain `send` or `recv` parked in a queue. Forgotten when the wait
/// returns; dropped only if the wait unwinds (the runtime cancels the
/// coroutine at shutdown, `sched/shutdown.rs`): then it withdraws the entry,
/// so that the channel, still open through other handles, never serves a
/// dead party.
struct Parked<'a, T> {
    chan: &'a Chan<T>,
    me: &'a Caller,
    send: bool,
}

impl<T> Drop for Parked<'_, T> {
    #[cold]
    fn drop(&mut self) {
        let me = self.me;
        let outcome = if self.chan.withdraw(self.send, me.addr()) {
            Outcome::Waiting // nobody took us: the cell is ours again
        } else {
            // Taken out of the queue before we withdrew: the hand-off
            // happened before the cancellation, and its taker finishes our
            // cell soon. We cannot park (the coroutine is no longer current).
            until_finished(me)
        };
        // A sender's value still in its cell (withdrawn, or the channel
        // closed), or a value delivered to a receiver, is dropped here.
        let value_in_cell = match outcome {
            Outcome::Waiting | Outcome::Closed => self.send,
            Outcome::Delivered => !self.send,
            _ => false,
        };
        if value_in_cell {
            // SAFETY: the cell holds a T (put by us or by a sender that took
            // us), and no one else owns this wait any more.
            drop(unsafe { me.cell().take::<T>() });
        }
    }
}

/// Spin until a party that took `me` from a queue finishes its cell (it
/// does so right after releasing the channel lock); the outcome.
#[cold]
pub(crate) fn until_finished(me: &Caller) -> Outcome {
    loop {
        let outcome = me.cell().outcome();
        if outcome != Outcome::Waiting {
            return outcome;
        }
        std::thread::yield_now();
    }
}

/// Finish a send that did not wait: unlock, then hand the value to the
/// receiver [`Inner::offer`] found, if any.
#[inline(always)]
fn delivered<T>(inner: SpinGuard<'_, Inner<T>>, receiver: Option<(Party, T)>) {
    drop(inner);
    if let Some((receiver, value)) = receiver {
        deliver(receiver, value);
    }
}

/// Finish a receive that did not wait: unlock, then wake the sender it
/// freed, if any.
#[inline(always)]
fn received<T>(inner: SpinGuard<'_, Inner<T>>, value: T, sender: Option<(Party, Outcome)>) -> T {
    drop(inner);
    if let Some((sender, outcome)) = sender {
        sender.finish(outcome);
    }
    value
}

/// Hand a selecting sender (taken from `sendq`) our waiter, release the
/// lock, and wait for its value. `None` if it gave up (`RETRY`).
fn pair<T>(inner: SpinGuard<'_, Inner<T>>, sender: Party) -> Option<T> {
    let me = Caller::get();
    me.cell().prepare();
    // SAFETY: we claimed the sender, so we own its cell; it reads the waiter
    // only after seeing PAIRED.
    unsafe { sender.cell().put(me.to_waiter()) };
    drop(inner);
    sender.finish(Outcome::Paired);
    match me.wait() {
        // SAFETY: DELIVERED means the sender put a T into our cell.
        Outcome::Delivered => Some(unsafe { me.cell().take() }),
        _ => None,
    }
}

impl<T> Inner<T> {
    #[inline(always)]
    fn has_room(&self) -> bool {
        self.buf.len() + self.reserved < self.cap
    }

    /// Send without waiting (the caller checked `receivers`): to a waiting
    /// receiver, returned with the value to deliver once unlocked, or into
    /// the buffer. `Err` gives the value back if neither is possible.
    #[inline(always)]
    fn offer(&mut self, value: T) -> Result<Option<(Party, T)>, T> {
        if let Some(receiver) = self.recvq.claim() {
            return Ok(Some((receiver, value)));
        }
        if self.has_room() {
            self.buf.push_back(value);
            return Ok(None);
        }
        Err(value)
    }

    /// Take the next value without waiting.
    #[inline(always)]
    fn take_one(&mut self) -> Take<T> {
        if self.cap == 0 {
            return match self.sendq.claim() {
                None => Take::Empty,
                Some(Party::Plain(w)) => {
                    // SAFETY: we took `w` under the lock: its cell is ours,
                    // and a plain sender parks with its value in it.
                    let value = unsafe { w.cell().take() };
                    Take::Value(value, Some((Party::Plain(w), Outcome::Taken)))
                }
                Some(selecting) => Take::Pair(selecting),
            };
        }
        let Some(value) = self.buf.pop_front() else {
            return Take::Empty;
        };
        // The slot we freed goes to the first parked sender, if any (by
        // invariant 2 nobody waits in `recvq` now, so it goes to `buf`).
        let sender = self.has_room().then(|| self.sendq.claim()).flatten();
        let sender = sender.map(|s| self.fill(s));
        Take::Value(value, sender)
    }

    /// Move a sender taken from `sendq` into a free slot: its value into
    /// `buf` (a plain sender) or a reservation (a selecting one).
    fn fill(&mut self, sender: Party) -> (Party, Outcome) {
        match sender {
            Party::Plain(w) => {
                // SAFETY: as in `take_one`.
                self.buf.push_back(unsafe { w.cell().take() });
                (Party::Plain(w), Outcome::Taken)
            }
            selecting => {
                self.reserved += 1;
                (selecting, Outcome::Reserved)
            }
        }
    }

    /// Restore invariant 3 after slots were freed while receivers may wait:
    /// move parked senders into the room, straight to a waiting receiver
    /// when there is one.
    fn refill(&mut self, done: &mut Vec<Done<T>>) {
        while self.has_room() {
            let Some(sender) = self.sendq.claim() else {
                return;
            };
            let (sender, o) = self.fill(sender);
            if o == Outcome::Taken && self.buf.len() == 1 {
                if let Some(receiver) = self.recvq.claim() {
                    let value = self.buf.pop_front().expect("just pushed");
                    done.push(Done::Deliver(receiver, value));
                }
            }
            done.push(Done::Finish(sender, o));
        }
    }

    fn ready(&self, send: bool, me: Option<&Selection>) -> bool {
        if send {
            self.receivers == 0 || self.has_room() || self.recvq.has_party(me)
        } else {
            self.senders == 0 || !self.buf.is_empty() || (self.cap == 0 && self.sendq.has_party(me))
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::{bounded, Select};
    use std::time::Duration;

    const SHORT: Duration = Duration::from_millis(5);

    /// A timed-out wait unlinks itself: nothing is left in either queue
    /// (these run on a plain thread, which times out on its condvar).
    #[test]
    fn timed_out_waits_leave_no_trace() {
        let (tx, rx) = bounded::<u32>(0);
        for _ in 0..3 {
            assert!(rx.recv_timeout(SHORT).is_err());
            assert!(tx.send_timeout(1, SHORT).is_err());
        }
        let Some(super::super::Flavor::Chan(chan)) = Some(&rx.flavor) else {
            unreachable!()
        };
        assert_eq!(chan.queued(), (0, 0));
    }

    /// Parked senders are served in the order they queued, also after the
    /// first one (a timed send: a select entry, at the queue's inline head)
    /// withdrew and the next one moved up.
    #[test]
    fn parked_senders_keep_their_order_when_the_head_withdraws() {
        let (tx, rx) = bounded::<u32>(0);
        let Some(super::super::Flavor::Chan(chan)) = Some(&rx.flavor) else {
            unreachable!()
        };
        let until_queued = |n: usize| {
            while chan.queued().1 != n {
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let timed = {
            let tx = tx.clone();
            std::thread::spawn(move || tx.send_timeout(1, Duration::from_millis(50)).is_err())
        };
        until_queued(1);
        let mut plain = Vec::new();
        for v in [2, 3] {
            let tx = tx.clone();
            plain.push(std::thread::spawn(move || tx.send(v).unwrap()));
            until_queued(plain.len() + 1);
        }
        assert!(timed.join().unwrap(), "the timed send gave up");
        until_queued(2);
        assert_eq!((rx.recv(), rx.recv()), (Ok(2), Ok(3)));
        for t in plain {
            t.join().unwrap();
        }
        assert_eq!(chan.queued(), (0, 0));
    }

    /// A select registered on two channels and served by one leaves no
    /// entry in the other.
    #[test]
    fn a_served_select_unlinks_from_the_other_channel() {
        let (tx1, rx1) = bounded::<u32>(0);
        let (_tx2, rx2) = bounded::<u32>(0);
        let t = std::thread::spawn(move || {
            std::thread::sleep(SHORT);
            tx1.send(1).unwrap();
        });
        let mut sel = Select::new();
        sel.recv(&rx1);
        sel.recv(&rx2);
        let oper = sel.select();
        assert_eq!(oper.recv(&rx1), Ok(1));
        t.join().unwrap();
        let super::super::Flavor::Chan(chan) = &rx2.flavor else {
            unreachable!()
        };
        assert_eq!(chan.queued(), (0, 0));
    }
}
