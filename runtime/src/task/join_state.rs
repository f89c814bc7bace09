//! The join state of one task: who drops the result, who wakes the joiner.
//!
//! Four bits decide who does what:
//!
//! * `STORED`: set by the coroutine itself, on its own stack, once its result
//!   is in the task's hand-off slot;
//! * `COMPLETE`: set by the worker once the coroutine has returned and its
//!   stack is back in the pool;
//! * `JOIN_WAITER`: set by the join handle once it has written its waiter
//!   into the task;
//! * `JOIN_INTEREST`: set while a `JoinHandle` exists;
//! * `CANCELLED`: set together with `COMPLETE` when the runtime shut down
//!   before the coroutine returned: there is no result, `join` reports the
//!   cancellation.
//!
//! **Who drops the result** is decided between `STORED` and `JOIN_INTEREST`,
//! by exactly one side: the coroutine, if the handle was already gone when
//! it set `STORED` ([`store`](JoinState::store) returns `Detached`); otherwise
//! the handle, which takes it in `join` or drops it when it is dropped. So a
//! detached result is dropped by its own coroutine, while that coroutine is
//! still current on its worker: a `Drop` that blocks on a channel parks the
//! coroutine instead of the worker thread, and one that panics is caught in
//! the coroutine (`sched/spawn.rs`). The worker itself never runs the
//! result's destructor.
//!
//! **Who wakes the joiner** is decided between `COMPLETE` and `JOIN_WAITER`:
//! the joiner writes its waiter *before* setting `JOIN_WAITER`; the finisher
//! reads it only *after* its `fetch_or(COMPLETE)` saw `JOIN_WAITER`. Whichever
//! of the two read-modify-writes comes second sees the other's bit, so the
//! joiner is either woken or never needed to sleep. `join` waits for
//! `COMPLETE`, not `STORED`, so a joined coroutine's stack is already back in
//! the pool when `join` returns.
//!
//! This is the protocol of tokio's `JoinHandle`. The methods here only
//! decide; the callers (`join.rs`, `coroutine_main` and the worker's
//! `finish`) act on the decision.

use std::sync::atomic::Ordering::{AcqRel, Acquire};

use crate::loom_shim::AtomicU8;

const COMPLETE: u8 = 1;
const JOIN_WAITER: u8 = 2;
const JOIN_INTEREST: u8 = 4;
const STORED: u8 = 8;
const CANCELLED: u8 = 16;

pub(crate) struct JoinState(AtomicU8);

/// What the coroutine must do with its result after publishing `STORED`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The handle is gone: take the result back and drop it.
    Detached,
    /// The handle will take the result, or drop it.
    Kept,
}

impl JoinState {
    pub fn new() -> JoinState {
        JoinState(AtomicU8::new(JOIN_INTEREST))
    }

    pub fn is_complete(&self) -> bool {
        self.0.load(Acquire) & COMPLETE != 0
    }

    /// Did the runtime cancel the task? (Meaningful once complete.) A
    /// cancelled task never stored a result for the handle.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Acquire) & CANCELLED != 0
    }

    /// Coroutine side: publish that the result is stored.
    pub fn store(&self) -> Stored {
        if self.0.fetch_or(STORED, AcqRel) & JOIN_INTEREST == 0 {
            Stored::Detached
        } else {
            Stored::Kept
        }
    }

    /// Finisher side: publish completion (the stack is back); `cancelled`
    /// if the runtime unwound the coroutine before it returned. Returns
    /// `true` if a joiner waits: the finisher must take it from the task and
    /// wake it.
    pub fn complete(&self, cancelled: bool) -> bool {
        let bits = if cancelled {
            COMPLETE | CANCELLED
        } else {
            COMPLETE
        };
        self.0.fetch_or(bits, AcqRel) & JOIN_WAITER != 0
    }

    /// Joiner side, after writing its waiter: announce it. Returns `false`
    /// if `COMPLETE` won the race (the finisher never saw the waiter, so it
    /// is still the joiner's to clear).
    pub fn announce_waiter(&self) -> bool {
        self.0.fetch_or(JOIN_WAITER, AcqRel) & COMPLETE == 0
    }

    /// Handle side, on drop: withdraw interest. Returns `true` if the result
    /// was stored, so the handle must drop it.
    pub fn detach(&self) -> bool {
        self.0.fetch_and(!JOIN_INTEREST, AcqRel) & STORED != 0
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// The coroutine stores its result while the handle is dropped: exactly
    /// one side drops it, in every interleaving.
    #[test]
    fn loom_detached_result_is_dropped_once() {
        loom::model(|| {
            let state = Arc::new(JoinState::new());
            let s2 = state.clone();
            let handle = loom::thread::spawn(move || s2.detach() as u32);
            let by_coroutine = (state.store() == Stored::Detached) as u32;
            state.complete(false);
            assert_eq!(by_coroutine + handle.join().unwrap(), 1);
        });
    }
}
