//! Channels: Go's `chan T`, bounded, multi-producer multi-consumer, with the
//! API of crossbeam-channel (`select!`, timeouts, `after`/`tick`, iterators).
//!
//! `bounded(cap)` gives a `(Sender, Receiver)` pair. With `cap == 0` every
//! send waits for a receiver: the value is handed over directly (a
//! *rendezvous*). Both ends clone. A channel is closed when every `Sender` is
//! dropped (receivers drain the buffer, then get `RecvError`) or every
//! `Receiver` is dropped (senders get their value back in `SendError`).
//! There is no unbounded channel: Go has none, and the bound is the lesson.
//!
//! The design is Go's `runtime/chan.go`: one lock (a spin lock, `lock.rs`)
//! around a ring buffer and two FIFO queues of parked parties, `recvq` and
//! `sendq` (`channel.rs`).
//!
//! * A sender that finds a parked receiver writes the value straight into the
//!   receiver's [`WaitCell`](crate::wait_cell) and wakes it; the buffer is skipped.
//! * A receiver that finds a parked sender takes the sender's value from its
//!   cell (for a buffered channel it takes the oldest buffered value instead
//!   and moves the sender's value into the buffer, keeping FIFO order).
//! * Otherwise the party parks in its queue until served or closed.
//!
//! A `select` parks one party in the queues of several channels at once;
//! `queue.rs` explains the claim that makes exactly one of them win, and
//! `select.rs` the select loop. Timed waits (`recv_timeout`, ...) are selects
//! of one operation with a deadline. Nothing points into a parked
//! coroutine's stack: cells live in the task (heap memory) or in the thread's
//! parker. The same code serves coroutines (they park) and OS threads (they
//! block).

mod channel;
mod clock;
mod error;
mod iter;
mod lock;
mod macros;
mod queue;
mod select;
mod stash;

use std::time::{Duration, Instant};

use crate::loom_shim::Arc;
use crate::park::Caller;
use crate::wait_cell::Outcome;
use channel::{Chan, RecvToken};
use clock::Clock;
pub use clock::{after, at, never, tick};
pub use error::{
    ReadyTimeoutError, RecvError, RecvTimeoutError, SelectTimeoutError, SendError,
    SendTimeoutError, TryReadyError, TryRecvError, TrySelectError, TrySendError,
};
pub use iter::{IntoIter, Iter, TryIter};
use queue::Selection;
use select::{Operation, Token};
pub use select::{Select, SelectedOperation};
use stash::Stash;

/// Create a channel with room for `cap` buffered values (0: rendezvous).
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(cap));
    (Sender { chan: chan.clone() }, Receiver::chan(chan))
}

/// The sending end. Clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving end. Clone it for more consumers.
pub struct Receiver<T> {
    flavor: Flavor<T>,
}

/// What is behind a receiver: a channel, or a clock (`after`, `at`, `tick`)
/// with the conversion from its `Instant` (the identity: those are only ever
/// `Receiver<Instant>`; the function keeps that fact checked by the compiler
/// instead of a transmute), or nothing (`never`).
enum Flavor<T> {
    Chan(Arc<Chan<T>>),
    Clock(Arc<Clock>, fn(Instant) -> T),
    Never,
}

/// `None` when a deadline would overflow `Instant`: wait forever.
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

impl<T> Sender<T> {
    /// Send `value`, waiting while the channel is full (or, for a rendezvous
    /// channel, until a receiver takes it). Fails, returning the value, once
    /// every receiver is gone.
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.chan.send(value).map_err(SendError)
    }

    /// Send without waiting. A failure is a scheduling point: other
    /// coroutines ready on this worker run first (see the crate docs).
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let result = self.try_send_now(value);
        if matches!(result, Err(TrySendError::Full(_))) {
            crate::sched::yield_if_others_ready();
        }
        result
    }

    /// [`try_send`](Self::try_send) without the scheduling point, for the
    /// first attempt of a timed send (which parks if it fails).
    fn try_send_now(&self, value: T) -> Result<(), TrySendError<T>> {
        self.chan
            .try_send(value)
            .map_err(|(v, closed)| match closed {
                true => TrySendError::Disconnected(v),
                false => TrySendError::Full(v),
            })
    }

    /// Send, waiting at most `timeout`.
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        match deadline_after(timeout) {
            Some(deadline) => self.send_deadline(value, deadline),
            None => self.send(value).map_err(SendTimeoutError::from),
        }
    }

    /// Send, waiting until `deadline` at most.
    pub fn send_deadline(&self, value: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        let value = match self.try_send_now(value) {
            Err(TrySendError::Full(v)) => v,
            other => return other.map_err(|e| SendTimeoutError::Disconnected(e.into_inner())),
        };
        let mut sel = Select::new();
        sel.send(self);
        match sel.select_deadline(deadline) {
            Ok(oper) => oper.send(self, value).map_err(SendTimeoutError::from),
            Err(_) => Err(SendTimeoutError::Timeout(value)),
        }
    }

    /// Values buffered now.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is the buffer full? (Always, for a rendezvous channel.)
    pub fn is_full(&self) -> bool {
        self.len() == self.chan.capacity()
    }

    /// The capacity `bounded` was given (always `Some`: no channel here is
    /// unbounded; crossbeam's `None` means unbounded).
    pub fn capacity(&self) -> Option<usize> {
        Some(self.chan.capacity())
    }

    /// Are both senders ends of the same channel?
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }

    fn addr(&self) -> usize {
        Arc::as_ptr(&self.chan) as *const u8 as usize
    }
}

impl<T> Receiver<T> {
    fn chan(chan: Arc<Chan<T>>) -> Receiver<T> {
        Receiver {
            flavor: Flavor::Chan(chan),
        }
    }

    pub(crate) fn clock(clock: Clock, convert: fn(Instant) -> T) -> Receiver<T> {
        Receiver {
            flavor: Flavor::Clock(Arc::new(clock), convert),
        }
    }

    pub(crate) fn never() -> Receiver<T> {
        Receiver {
            flavor: Flavor::Never,
        }
    }

    /// Receive a value, waiting while the channel is empty. Fails once the
    /// channel is empty and every sender is gone.
    #[inline]
    pub fn recv(&self) -> Result<T, RecvError> {
        match &self.flavor {
            Flavor::Chan(chan) => chan.recv().ok_or(RecvError),
            Flavor::Clock(clock, convert) => Ok(convert(clock.recv())),
            Flavor::Never => clock::block_forever(),
        }
    }

    /// Receive without waiting. A failure is a scheduling point: other
    /// coroutines ready on this worker run first (see the crate docs).
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let result = self.try_recv_now();
        if matches!(result, Err(TryRecvError::Empty)) {
            crate::sched::yield_if_others_ready();
        }
        result
    }

    /// [`try_recv`](Self::try_recv) without the scheduling point, for the
    /// first attempt of a timed receive (which parks if it fails).
    fn try_recv_now(&self) -> Result<T, TryRecvError> {
        match &self.flavor {
            Flavor::Chan(chan) => chan.try_recv().map_err(|closed| match closed {
                true => TryRecvError::Disconnected,
                false => TryRecvError::Empty,
            }),
            Flavor::Clock(clock, convert) => {
                clock.try_take().map(convert).ok_or(TryRecvError::Empty)
            }
            Flavor::Never => Err(TryRecvError::Empty),
        }
    }

    /// Receive, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        match deadline_after(timeout) {
            Some(deadline) => self.recv_deadline(deadline),
            None => self.recv().map_err(RecvTimeoutError::from),
        }
    }

    /// Receive, waiting until `deadline` at most.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        match self.try_recv_now() {
            Ok(v) => return Ok(v),
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        let mut sel = Select::new();
        sel.recv(self);
        match sel.select_deadline(deadline) {
            Ok(oper) => oper.recv(self).map_err(RecvTimeoutError::from),
            Err(_) => Err(RecvTimeoutError::Timeout),
        }
    }

    /// An iterator that receives until the channel is closed and drained.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the values that can be received without waiting.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Values buffered now (0 or 1 for `after`/`tick`).
    pub fn len(&self) -> usize {
        match &self.flavor {
            Flavor::Chan(chan) => chan.len(),
            Flavor::Clock(clock, _) => clock.len(),
            Flavor::Never => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is the buffer full? (Always, for a rendezvous channel and `never`.)
    pub fn is_full(&self) -> bool {
        Some(self.len()) == self.capacity()
    }

    /// The capacity: `bounded`'s, 1 for `after`/`at`/`tick`, 0 for `never`
    /// (always `Some`: crossbeam's `None` means unbounded).
    pub fn capacity(&self) -> Option<usize> {
        Some(match &self.flavor {
            Flavor::Chan(chan) => chan.capacity(),
            Flavor::Clock(..) => 1,
            Flavor::Never => 0,
        })
    }

    /// Are both receivers ends of the same channel? (All `never`s are.)
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        match (&self.flavor, &other.flavor) {
            (Flavor::Chan(a), Flavor::Chan(b)) => Arc::ptr_eq(a, b),
            (Flavor::Clock(a, _), Flavor::Clock(b, _)) => Arc::ptr_eq(a, b),
            (Flavor::Never, Flavor::Never) => true,
            _ => false,
        }
    }

    fn addr(&self) -> usize {
        match &self.flavor {
            Flavor::Chan(chan) => Arc::as_ptr(chan) as *const u8 as usize,
            Flavor::Clock(clock, _) => Arc::as_ptr(clock) as *const u8 as usize,
            Flavor::Never => 0,
        }
    }

    /// Take a message a select received on this receiver out of its stash.
    ///
    /// # Safety
    /// The stash was made by this receiver's [`Operation`] (`start` or
    /// `accept`): a `T` for a channel, an `Instant` for a clock.
    unsafe fn unstash(&self, stash: Stash) -> T {
        match &self.flavor {
            // SAFETY: the caller's promise.
            Flavor::Chan(_) => unsafe { stash.take::<T>() },
            // SAFETY: the caller's promise.
            Flavor::Clock(_, convert) => convert(unsafe { stash.take::<Instant>() }),
            Flavor::Never => unreachable!("never() is never selected"),
        }
    }
}

impl<T> Operation for Receiver<T> {
    fn id(&self) -> (usize, bool) {
        (self.addr(), false)
    }

    fn start(&self) -> Option<Token> {
        let value = match &self.flavor {
            Flavor::Chan(chan) => match chan.start_recv()? {
                RecvToken::Value(v) => Some(Stash::new(v)),
                RecvToken::Closed => None,
            },
            Flavor::Clock(clock, _) => Some(Stash::new(clock.try_take()?)),
            Flavor::Never => return None,
        };
        Some(Token::Recv(value))
    }

    fn ready(&self, me: Option<&Selection>) -> bool {
        match &self.flavor {
            Flavor::Chan(chan) => chan.ready(false, me),
            Flavor::Clock(clock, _) => clock.len() > 0,
            Flavor::Never => false,
        }
    }

    fn register(&self, me: &Arc<Selection>, case: usize) -> bool {
        match &self.flavor {
            Flavor::Chan(chan) => chan.register(false, me, case),
            // Nothing to queue on: the select waits until `deadline`.
            Flavor::Clock(clock, _) => clock.len() > 0,
            Flavor::Never => false,
        }
    }

    fn unregister(&self, me: &Selection) {
        if let Flavor::Chan(chan) = &self.flavor {
            chan.unregister(false, me);
        }
    }

    fn accept(&self, me: &Caller, outcome: Outcome) -> Option<Token> {
        match outcome {
            // SAFETY: DELIVERED means a sender put a T into our cell (only a
            // channel queues us, so this is a channel receiver).
            Outcome::Delivered => Some(Token::Recv(Some(Stash::new(unsafe {
                me.cell().take::<T>()
            })))),
            Outcome::Closed => Some(Token::Recv(None)),
            _ => None, // RETRY: the sender we paired with gave up
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match &self.flavor {
            Flavor::Clock(clock, _) => clock.next(),
            _ => None,
        }
    }
}

impl<T> Operation for Sender<T> {
    fn id(&self) -> (usize, bool) {
        (self.addr(), true)
    }

    fn start(&self) -> Option<Token> {
        self.chan.start_send().map(Token::Send)
    }

    fn ready(&self, me: Option<&Selection>) -> bool {
        self.chan.ready(true, me)
    }

    fn register(&self, me: &Arc<Selection>, case: usize) -> bool {
        self.chan.register(true, me, case)
    }

    fn unregister(&self, me: &Selection) {
        self.chan.unregister(true, me);
    }

    fn accept(&self, me: &Caller, outcome: Outcome) -> Option<Token> {
        select::accept_send(me, outcome)
    }

    fn release_slot(&self) {
        self.chan.release_reserved();
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.add_sender();
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        let flavor = match &self.flavor {
            Flavor::Chan(chan) => {
                chan.add_receiver();
                Flavor::Chan(chan.clone())
            }
            Flavor::Clock(clock, convert) => Flavor::Clock(clock.clone(), *convert),
            Flavor::Never => Flavor::Never,
        };
        Receiver { flavor }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if let Flavor::Chan(chan) = &self.flavor {
            chan.drop_receiver();
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("Sender { .. }")
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("Receiver { .. }")
    }
}

#[cfg(all(test, loom))]
mod loom_select;
#[cfg(all(test, loom))]
mod loom_tests;
