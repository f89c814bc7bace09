//! Shutdown: every coroutine that has not finished is cancelled.
//!
//! When a [`Runtime`](crate::Runtime) is dropped, each worker leaves its
//! loop and cancels the tasks of its home, on its own thread:
//!
//! * an **unstarted** task (in a queue, the spawn slot or the injector) is
//!   dropped without running: its function, and what it captured, is dropped;
//! * a **started** task (in the worker's registry) is *unwound*: corosensei
//!   resumes it with a panic of its own at the point where it suspended, so
//!   its destructors run, on its own stack and home thread, up to the
//!   coroutine's root. Its `Sender`s and `Receiver`s close their channels.
//!
//! Then its stack goes back to the pool, and its join handle sees
//! [`Cancelled`](crate::Cancelled). During the unwind the coroutine is no
//! longer *current* (`context.rs`), so it cannot suspend again: a blocking
//! call in a destructor blocks the worker thread like a plain thread's call
//! (it returns once the other side acts), `yield_now` yields the thread, and
//! `spawn` fails.
//!
//! A started task can be cancelled only once the worker holds it: parked
//! (the worker claims it by closing its remote word, `IDLE → CLOSED`, so
//! that no waker on another thread queues it any more: `task/state.rs`),
//! or in one of its queues. A parked task whose remote word is `QUEUED` is
//! being woken from another thread right now; the worker waits until it
//! arrives in the inbox, because that waker still needs the scheduler
//! (`wake_remote` in `mod.rs`), which this worker keeps alive. For the same
//! reason it waits for the inbox entries owed by tasks that finished after
//! a remote wake queued them (`Worker::owed`).

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};

use super::context;
use super::worker::{complete, Worker};
use super::Scheduler;
use crate::stack::pool::LocalStacks;
use crate::task::{Task, TaskRef};

impl Worker {
    /// Cancel every task of this home, and every unstarted task in reach.
    pub(super) fn shutdown(&self) {
        loop {
            let mut held = HashSet::new();
            let queued = self.queue().drain().into_iter();
            let inbox = std::iter::from_fn(|| self.home().pop_inbox());
            let spawned = self.home().take_spawned();
            let injected = std::iter::from_fn(|| self.scheduler.injector.steal().success());
            // Entries taken from the inbox are remote wakes: applied to the
            // task's state, as `Worker::pop_inbox` does (an entry for a
            // finished task is dropped, and counted as arrived).
            let inbox = inbox.filter(|t| self.apply_inbox_entry(t) || !t.task().state.is_done());
            for task in queued.chain(inbox).chain(spawned).chain(injected) {
                if task.task().home().is_null() {
                    self.cancel(task);
                } else {
                    held.insert(task.task() as *const Task);
                    // The registry holds its own reference.
                    drop(task);
                }
            }
            let registry = std::mem::take(&mut *self.registry().borrow_mut());
            let mut pending = Vec::new();
            for task in registry {
                let t = task.task();
                if t.state.is_done() {
                    continue;
                }
                if held.contains(&(t as *const Task)) || t.state.claim_for_cancel() {
                    self.cancel(task);
                } else {
                    pending.push(task);
                }
            }
            if pending.is_empty() && self.owed() == 0 {
                break;
            }
            // Wakes in flight to our inbox (also for tasks that finished:
            // `owed`), or tasks that a cancellation just woke into our
            // queues: look again.
            *self.registry().borrow_mut() = pending;
            std::thread::yield_now();
        }
        self.scheduler
            .pool
            .drain_local(&mut self.stacks.borrow_mut());
    }

    /// Cancel `task`, which this worker holds: unwind it (or drop its
    /// function), return its stack, and complete its join as cancelled.
    fn cancel(&self, task: TaskRef) {
        let owed = cancel(&self.scheduler, task, Some(&mut self.stacks.borrow_mut()));
        self.finished(owed);
        self.scheduler.counters.worker(self.index).add_finished();
    }
}

impl Scheduler {
    /// Cancel the unstarted tasks left in the injector, from any thread
    /// (after the workers are gone, or a spawn that raced the shutdown).
    pub(crate) fn cancel_injected(&self) {
        while let Some(task) = self.injector.steal().success() {
            debug_assert!(task.task().home().is_null());
            // Never started: no waker ever had it, nothing is owed.
            let owed = cancel(self, task, None);
            debug_assert!(!owed);
            self.counters.external_finished();
        }
    }
}

/// Returns whether a remote wake still owes the task's home an inbox entry
/// (`SchedState::finish`).
fn cancel(scheduler: &Scheduler, task: TaskRef, local: Option<&mut LocalStacks>) -> bool {
    // A compacted stack comes back before it is unwound (the caller is its
    // home worker, or it never started and has nothing compacted).
    super::compact::ensure_resident(&task);
    context::set_cancelling(true);
    // SAFETY: the caller holds the task: unstarted, or a started task of its
    // own home that is neither running nor parked (see the module docs), so
    // only it touches the coroutine.
    let unwound = panic::catch_unwind(AssertUnwindSafe(|| unsafe { task.force_unwind() }));
    context::set_cancelling(false);
    if let Err(payload) = unwound {
        // A destructor panicked during the unwind (not nested in it, or the
        // process would have aborted). Nobody can receive this panic: drop
        // it, and a panicking destructor of the payload too.
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
    }
    drop(task.take_spare());
    // SAFETY: as above, and force_unwind ran the coroutine to its end.
    if let Some(stack) = unsafe { task.take_stack() } {
        scheduler.pool.put(local, stack);
    }
    let owed = task.task().state.finish();
    complete(&task, true);
    owed
}
