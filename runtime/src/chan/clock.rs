//! Channels driven by the clock: `after`, `at`, `tick`, and `never`.
//!
//! As in crossbeam-channel they are `Receiver<Instant>`s with no sender
//! behind them. Nothing fires a timer to fill them: a receive looks at the
//! clock. Ready means "the next delivery time has passed"; the message is
//! that time. A blocking `recv` sleeps until then (a coroutine on the
//! runtime's timers, a thread with `thread::sleep`), and a `select` over one
//! simply waits no longer than its delivery time (`Operation::deadline`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Receiver;
use crate::loom_shim::lock_std as lock;
use crate::park::Caller;

/// The state of one `after`/`at` (one message) or `tick` (one per period).
pub(crate) struct Clock {
    /// When the next message is due; `None`: no more messages.
    next: Mutex<Option<Instant>>,
    /// `tick`'s period; `None` for a one-shot channel.
    period: Option<Duration>,
}

impl Clock {
    pub fn new(first: Option<Instant>, period: Option<Duration>) -> Clock {
        Clock {
            next: Mutex::new(first),
            period,
        }
    }

    /// Take the message if it is due. A tick schedules the next one a period
    /// after now: ticks a slow receiver missed are dropped, not queued.
    pub fn try_take(&self) -> Option<Instant> {
        let mut next = lock(&self.next);
        let due = (*next)?;
        let now = Instant::now();
        if now < due {
            return None;
        }
        *next = self.period.and_then(|p| now.checked_add(p));
        Some(due)
    }

    /// When the next message is due, if ever.
    pub fn next(&self) -> Option<Instant> {
        *lock(&self.next)
    }

    /// Messages waiting: 0 or 1.
    pub fn len(&self) -> usize {
        self.next().is_some_and(|t| Instant::now() >= t) as usize
    }

    /// Wait for the message.
    pub fn recv(&self) -> Instant {
        loop {
            if let Some(t) = self.try_take() {
                return t;
            }
            match self.next() {
                Some(t) => crate::sleep(t.saturating_duration_since(Instant::now())),
                None => block_forever(),
            }
        }
    }
}

/// Wait for what can never happen (`never()`, or a spent `after`): park with
/// a prepared cell that no queue knows about.
pub(crate) fn block_forever() -> ! {
    let me = Caller::get();
    me.cell().prepare();
    loop {
        me.park();
    }
}

fn clock(first: Option<Instant>, period: Option<Duration>) -> Receiver<Instant> {
    Receiver::clock(Clock::new(first, period), |t| t)
}

/// A channel that delivers one message, the time it was due, once
/// `duration` has passed.
pub fn after(duration: Duration) -> Receiver<Instant> {
    clock(Instant::now().checked_add(duration), None)
}

/// A channel that delivers one message at `when`.
pub fn at(when: Instant) -> Receiver<Instant> {
    clock(Some(when), None)
}

/// A channel that delivers a message every `duration`, the first one
/// `duration` from now. It holds at most one: ticks nobody received in time
/// are dropped.
pub fn tick(duration: Duration) -> Receiver<Instant> {
    clock(Instant::now().checked_add(duration), Some(duration))
}

/// A channel that never delivers: a select case that is never chosen (Go's
/// nil channel).
pub fn never<T>() -> Receiver<T> {
    Receiver::never()
}
