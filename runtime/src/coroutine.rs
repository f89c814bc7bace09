//! What a coroutine is to `corosensei`: a function running on a spindle
//! [`Stack`], that can switch back to its worker with a [`Suspend`] reason
//! and finishes by returning (its result stays in the task, see
//! `task/join_state.rs`).
//!
//! These are types only, no behaviour: the task (`task/`) stores a
//! [`Coroutine`], the scheduler (`sched/`) creates, resumes and suspends it.
//! Keeping the types in a leaf lets the task stay below the scheduler: a
//! task knows *what* its coroutine is, not who schedules it.

use crate::stack::Stack;

/// Why a coroutine switched back to its worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Suspend {
    /// `yield_now`: requeue me.
    Yield,
    /// I am waiting for something; park me unless a wake already arrived.
    Park,
    /// The same, waiting on a socket, where a wait may last hours: my
    /// worker may compact me if it does (`sched/compact.rs`).
    ParkOnSocket,
}

pub(crate) type Coroutine = corosensei::Coroutine<(), Suspend, (), Stack>;

/// The coroutine's end of the switch: lives at the base of its own stack.
pub(crate) type Yielder = corosensei::Yielder<(), Suspend>;
