//! The join state of one task: who drops the result, who wakes the joiner.
//!
//! Three bits decide who does what:
//!
//! * `COMPLETE`: set by the worker once the result is stored and the stack is
//!   back in the pool;
//! * `JOIN_WAITER`: set by the join handle once it has written its waiter
//!   into the task;
//! * `JOIN_INTEREST`: set while a `JoinHandle` exists;
//! * `CANCELLED`: set together with `COMPLETE` when the runtime shut down
//!   before the coroutine returned: there is no result, `join` reports the
//!   cancellation.
//!
//! The joiner writes its waiter *before* setting `JOIN_WAITER`; the finisher
//! reads it only *after* its `fetch_or(COMPLETE)` saw `JOIN_WAITER`. Whichever
//! of the two read-modify-writes comes second sees the other's bit, so the
//! joiner is either woken or never needed to sleep. The result is dropped by
//! exactly one side: by the finisher if the handle was already gone when it
//! set `COMPLETE`, otherwise by the handle. This is the protocol of tokio's
//! `JoinHandle`. The methods here only decide; the callers (`join.rs`, the
//! worker's `finish`) act on the decision.

use std::sync::atomic::Ordering::{AcqRel, Acquire};

use crate::loom_shim::AtomicU8;

const COMPLETE: u8 = 1;
const JOIN_WAITER: u8 = 2;
const JOIN_INTEREST: u8 = 4;
const CANCELLED: u8 = 8;

pub(crate) struct JoinState(AtomicU8);

/// What the finisher must do after publishing `COMPLETE`.
pub(crate) enum Completion {
    /// The handle is gone: drop the result.
    DropResult,
    /// A joiner waits: take it from the task and wake it.
    WakeJoiner,
    /// The handle will take the result when it looks.
    Nothing,
}

impl JoinState {
    pub fn new() -> JoinState {
        JoinState(AtomicU8::new(JOIN_INTEREST))
    }

    pub fn is_complete(&self) -> bool {
        self.0.load(Acquire) & COMPLETE != 0
    }

    /// Did the runtime cancel the task? (Meaningful once complete.)
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Acquire) & CANCELLED != 0
    }

    /// Finisher side: publish completion; `cancelled` if there is no result.
    pub fn complete(&self, cancelled: bool) -> Completion {
        let bits = if cancelled {
            COMPLETE | CANCELLED
        } else {
            COMPLETE
        };
        let prev = self.0.fetch_or(bits, AcqRel);
        if prev & JOIN_INTEREST == 0 {
            if cancelled {
                Completion::Nothing
            } else {
                Completion::DropResult
            }
        } else if prev & JOIN_WAITER != 0 {
            Completion::WakeJoiner
        } else {
            Completion::Nothing
        }
    }

    /// Joiner side, after writing its waiter: announce it. Returns `false`
    /// if `COMPLETE` won the race (the finisher never saw the waiter, so it
    /// is still the joiner's to clear).
    pub fn announce_waiter(&self) -> bool {
        self.0.fetch_or(JOIN_WAITER, AcqRel) & COMPLETE == 0
    }

    /// Handle side, on drop: withdraw interest. Returns `true` if the task
    /// had completed with a result, so the handle must drop the result.
    pub fn detach(&self) -> bool {
        self.0.fetch_and(!JOIN_INTEREST, AcqRel) & (COMPLETE | CANCELLED) == COMPLETE
    }
}
