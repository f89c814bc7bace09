//! Channels: Go's `chan T`, bounded, multi-producer multi-consumer.
//!
//! `bounded(cap)` gives a `(Sender, Receiver)` pair. With `cap == 0` every
//! send waits for a receiver: the value is handed over directly (a
//! *rendezvous*). Both ends clone. A channel is closed when every `Sender` is
//! dropped (receivers drain the buffer, then get `RecvError`) or every
//! `Receiver` is dropped (senders get their value back in `SendError`).
//!
//! The design is Go's `runtime/chan.go`: one lock (a spin lock, `lock.rs`)
//! around a ring buffer and two FIFO queues of parked parties, `recvq` and
//! `sendq`.
//!
//! * A sender that finds a parked receiver writes the value straight into the
//!   receiver's [`WaitCell`](crate::wait_cell) and wakes it; the buffer is skipped.
//! * A receiver that finds a parked sender takes the sender's value from its
//!   cell (for a buffered channel it takes the oldest buffered value instead
//!   and moves the sender's value into the buffer, keeping FIFO order).
//! * Otherwise the party parks in its queue until served or closed.
//!
//! Wake-ups happen after the lock is released. Invariants under the lock:
//! `recvq` is non-empty only if the buffer is empty and no sender is parked;
//! `sendq` is non-empty only if the buffer is full. Every party in a queue has
//! its cell in the `WAITING` state; only the party that dequeues it may touch
//! the cell. Nothing points into a parked coroutine's stack: cells live in the
//! task's heap header or in the thread's parker.
//!
//! The same code serves coroutines (they park) and OS threads (they block).

mod error;
mod lock;

use std::collections::VecDeque;

use crate::loom_shim::Arc;
use crate::park::{Caller, Waiter};
use crate::wait_cell::Outcome;
pub use error::{RecvError, SendError, TryRecvError, TrySendError};
use lock::SpinLock;

/// Create a channel with room for `cap` buffered values (0: rendezvous).
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        inner: SpinLock::new(Inner {
            buf: VecDeque::with_capacity(cap.min(1024)),
            cap,
            recvq: VecDeque::new(),
            sendq: VecDeque::new(),
            senders: 1,
            receivers: 1,
        }),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

struct Chan<T> {
    inner: SpinLock<Inner<T>>,
}

struct Inner<T> {
    buf: VecDeque<T>,
    cap: usize,
    recvq: VecDeque<Waiter>,
    sendq: VecDeque<Waiter>,
    senders: usize,
    receivers: usize,
}

/// The sending end. Clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving end. Clone it for more consumers.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Send `value`, waiting while the channel is full (or, for a rendezvous
    /// channel, until a receiver takes it). Fails, returning the value, once
    /// every receiver is gone.
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut inner = self.chan.inner.lock();
        if inner.receivers == 0 {
            return Err(SendError(value));
        }
        if let Some(receiver) = inner.recvq.pop_front() {
            drop(inner);
            deliver(receiver, value);
            return Ok(());
        }
        if inner.buf.len() < inner.cap {
            inner.buf.push_back(value);
            return Ok(());
        }
        let me = Caller::get();
        me.cell().prepare();
        // SAFETY: our cell is WAITING and not yet visible to anyone.
        unsafe { me.cell().put(value) };
        inner.sendq.push_back(me.to_waiter());
        drop(inner);
        match me.wait() {
            Outcome::Taken => Ok(()),
            // SAFETY: CLOSED means nobody took the value; the cell is ours again.
            _ => Err(SendError(unsafe { me.cell().take() })),
        }
    }

    /// Send without waiting. A failure is a scheduling point: other
    /// coroutines ready on this worker run first (see the crate docs).
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut inner = self.chan.inner.lock();
        if inner.receivers == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        if let Some(receiver) = inner.recvq.pop_front() {
            drop(inner);
            deliver(receiver, value);
            return Ok(());
        }
        if inner.buf.len() < inner.cap {
            inner.buf.push_back(value);
            return Ok(());
        }
        drop(inner);
        crate::sched::yield_if_others_ready();
        Err(TrySendError::Full(value))
    }
}

/// Hand `value` to a dequeued, parked receiver and wake it.
fn deliver<T>(receiver: Waiter, value: T) {
    // SAFETY: we dequeued the receiver under the channel lock, so we own its
    // WAITING cell; it reads the value only after seeing DELIVERED.
    unsafe { receiver.cell().put(value) };
    receiver.cell().finish(Outcome::Delivered);
    receiver.wake();
}

impl<T> Receiver<T> {
    /// Receive a value, waiting while the channel is empty. Fails once the
    /// channel is empty and every sender is gone.
    #[inline]
    pub fn recv(&self) -> Result<T, RecvError> {
        let mut inner = self.chan.inner.lock();
        if let Some(taken) = inner.take_one() {
            drop(inner);
            return Ok(received(taken));
        }
        if inner.senders == 0 {
            return Err(RecvError);
        }
        let me = Caller::get();
        me.cell().prepare();
        inner.recvq.push_back(me.to_waiter());
        drop(inner);
        match me.wait() {
            // SAFETY: DELIVERED means a sender put a T into our cell.
            Outcome::Delivered => Ok(unsafe { me.cell().take() }),
            _ => Err(RecvError),
        }
    }

    /// Receive without waiting. A failure is a scheduling point: other
    /// coroutines ready on this worker run first (see the crate docs).
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut inner = self.chan.inner.lock();
        match inner.take_one() {
            Some(taken) => {
                drop(inner);
                Ok(received(taken))
            }
            None if inner.senders == 0 => Err(TryRecvError::Disconnected),
            None => {
                drop(inner);
                crate::sched::yield_if_others_ready();
                Err(TryRecvError::Empty)
            }
        }
    }

    /// An iterator that receives until the channel is closed and drained.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }
}

impl<T> Inner<T> {
    /// Take the next value without waiting: the oldest buffered one, or a
    /// parked sender's. A sender served this way is returned, already marked
    /// `TAKEN`, for the caller to wake once the lock is released.
    fn take_one(&mut self) -> Option<(T, Option<Waiter>)> {
        let sender = self.sendq.pop_front();
        let value = match (self.buf.pop_front(), sender.as_ref()) {
            (Some(oldest), Some(s)) => {
                // SAFETY: we dequeued `s` under the lock: its cell is ours.
                self.buf.push_back(unsafe { s.cell().take() });
                oldest
            }
            (Some(oldest), None) => oldest,
            // SAFETY: as above.
            (None, Some(s)) => unsafe { s.cell().take() },
            (None, None) => return None,
        };
        if let Some(s) = &sender {
            s.cell().finish(Outcome::Taken);
        }
        Some((value, sender))
    }
}

/// Finish a receive that found a value: wake the sender it freed, if any.
fn received<T>(taken: (T, Option<Waiter>)) -> T {
    let (value, sender) = taken;
    if let Some(s) = sender {
        s.wake();
    }
    value
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.inner.lock().senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.inner.lock().receivers += 1;
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut inner = self.chan.inner.lock();
        inner.senders -= 1;
        if inner.senders > 0 {
            return;
        }
        // Closed for receiving: everyone parked in recv gets RecvError.
        let parked: Vec<Waiter> = inner.recvq.drain(..).collect();
        drop(inner);
        for w in parked {
            w.cell().finish(Outcome::Closed);
            w.wake();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut inner = self.chan.inner.lock();
        inner.receivers -= 1;
        if inner.receivers > 0 {
            return;
        }
        // Closed for sending: parked senders get their values back, and the
        // buffered values are dropped (outside the lock: their Drop may block).
        let parked: Vec<Waiter> = inner.sendq.drain(..).collect();
        let buffered = std::mem::take(&mut inner.buf);
        drop(inner);
        for w in parked {
            w.cell().finish(Outcome::Closed);
            w.wake();
        }
        drop(buffered);
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sender { .. }")
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Receiver { .. }")
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
