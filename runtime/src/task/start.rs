//! Deferred start: a task takes its stack when it first runs, not when it
//! is spawned.
//!
//! A task spawned with the default options is created *without* a stack.
//! Until it first runs, its function waits in the task's hand-off slot
//! (inline if it fits two words, boxed otherwise: the same storage its
//! result uses later) and the task's [`Body`] holds a [`StartFn`], the one
//! piece of code that knows the function's type. The worker that first runs
//! the task takes a stack from *its own* cache and calls
//! [`TaskRef::start`], which moves the function onto that stack as a new
//! coroutine.
//!
//! Why (issue #11, fan-out): a spawner that never blocks can queue
//! hundreds of thousands of children before the worker that runs them
//! catches up. If every queued child already held a stack, every one of
//! them needed a slot of its own (peak live coroutines = slots carved, and
//! each slot a cold page). Taken at first run, a stack is held only by
//! coroutines that have started: the runner reuses the stacks of the
//! children it just finished, LIFO from its own cache, still warm in its
//! cache and TLB, and an unstarted task costs only its small heap block,
//! as a queued goroutine does in Go.
//!
//! The hand-off slot is free before the first run: a task waits (and so
//! receives values) only while it runs, and stores its result only when it
//! returns. An unstarted task may still move between workers (it is stolen
//! before it starts); once started it is pinned as before.
//!
//! If no stack can be had at first run, there is no caller to return the
//! error to: the task finishes at once, as if its function had panicked
//! with the error, so `join` returns `Err` with that message.
//! `Builder::spawn*`, which promise the error at spawn, keep taking the
//! stack at spawn (`sched/spawn.rs`), but they too are deferred: the stack
//! waits in the hand-off slot with the function ([`Start::Own`]), and the
//! coroutine is built on it at first run, so the first touch of its top
//! page (a page fault on a fresh slot) is paid by the worker that runs the
//! task, not by the spawner.

use std::io;

use super::{Body, TaskPtr, TaskRef};
use crate::coroutine::Coroutine;
use crate::stack::Stack;

/// What a first run asks of a task's [`StartFn`].
pub(crate) enum Start {
    /// Build the coroutine on this stack.
    Run(Stack),
    /// No stack could be had: drop the function and store this error as
    /// the task's (panic) result.
    Fail(io::Error),
    /// Drop the function without running it (a cancelled or dropped task).
    Drop,
    /// Build the coroutine on the stack the task took at spawn, if it took
    /// one: `None` (and the function left in the slot) if it did not.
    Own,
}

/// The type-aware half of a deferred task (written by the scheduler, which
/// knows the function's type): takes the function out of the hand-off slot
/// and acts on [`Start`]. Returns the coroutine for [`Start::Run`], and for
/// [`Start::Own`] if the task took its stack at spawn (else it returns
/// `None` and leaves the slot as it was).
///
/// # Safety
/// The task's hand-off slot holds the function, put there at spawn, and
/// the caller holds the task the way [`TaskRef::resume`] requires; the
/// function is taken once.
pub(crate) type StartFn = unsafe fn(TaskPtr, Start) -> Option<Coroutine>;

impl TaskRef {
    /// Allocate a deferred task with two references (run queue and join
    /// handle), its function `f` in the hand-off slot.
    #[inline]
    pub fn new_deferred<F: Send + 'static>(start: StartFn, f: F) -> (TaskRef, TaskRef) {
        let (run, handle) = TaskRef::alloc(Body::NoCoroutine(Some(start)));
        // SAFETY: the task is new and unshared: its hand-off slot is empty
        // and nobody waits on it.
        unsafe { run.cell().put(f) };
        (run, handle)
    }

    /// Does the task still wait for a stack?
    #[inline]
    pub fn is_deferred(&self) -> bool {
        // SAFETY: read by the worker that holds the task (see `body`).
        matches!(
            unsafe { &*self.task().body.get() },
            Body::NoCoroutine(Some(_))
        )
    }

    /// First run of a deferred task: build its coroutine on `stack`.
    ///
    /// # Safety
    /// As for [`resume`](Self::resume), and the task is deferred.
    #[inline]
    pub unsafe fn start(&self, stack: Stack) {
        // SAFETY: as stated, passed on.
        let co = unsafe { self.run_start(Start::Run(stack)) };
        // SAFETY: only the worker holding the task touches its body.
        let body = unsafe { &mut *self.task().body.get() };
        *body = Body::Coroutine(co.expect("a start with a stack builds the coroutine"));
    }

    /// First run of a deferred task that took its stack at spawn: build
    /// its coroutine on it. False if the task has no stack of its own: it
    /// is still deferred, to be started with [`start`](Self::start).
    ///
    /// # Safety
    /// As for [`start`](Self::start).
    #[inline]
    pub unsafe fn start_own(&self) -> bool {
        // SAFETY: only the worker holding the task touches its body.
        let body = unsafe { &mut *self.task().body.get() };
        let Body::NoCoroutine(Some(start)) = *body else {
            unreachable!("started a task that was not deferred")
        };
        // Not deferred while the start runs: if it took the function and
        // then unwound, nothing may take the function again.
        *body = Body::DONE;
        // SAFETY: a deferred body means the function is still in the slot,
        // and the caller holds the task; with `Own`, a start either takes
        // it (and returns the coroutine) or leaves it untouched.
        match unsafe { start(TaskPtr(self.task()), Start::Own) } {
            Some(co) => {
                *body = Body::Coroutine(co);
                true
            }
            None => {
                *body = Body::NoCoroutine(Some(start));
                false
            }
        }
    }

    /// First run of a deferred task that could get no stack: it finishes
    /// at once with the error as its (panic) result.
    ///
    /// # Safety
    /// As for [`start`](Self::start).
    #[cold]
    pub unsafe fn fail_start(&self, error: io::Error) {
        // SAFETY: as stated, passed on; the body was set to DONE.
        unsafe { self.run_start(Start::Fail(error)) };
    }

    /// Call the task's [`StartFn`], leaving the body `DONE` (the caller
    /// puts the coroutine there, if there is one).
    ///
    /// # Safety
    /// As for [`start`](Self::start).
    #[inline]
    unsafe fn run_start(&self, how: Start) -> Option<Coroutine> {
        // SAFETY: only the worker holding the task touches its body.
        let body = unsafe { &mut *self.task().body.get() };
        let Body::NoCoroutine(Some(start)) = *body else {
            unreachable!("started a task that was not deferred")
        };
        *body = Body::DONE;
        // SAFETY: a deferred body means the function is still in the slot,
        // and the caller holds the task; it is taken once (the body is no
        // longer deferred).
        unsafe { start(TaskPtr(self.task()), how) }
    }
}
