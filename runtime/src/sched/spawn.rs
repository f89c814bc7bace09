//! Spawning: how a function becomes a queued coroutine, and what the
//! coroutine runs first.
//!
//! [`Scheduler::spawn`] takes a stack from the pool, allocates the task
//! (`task/`), builds its coroutine around [`coroutine_main`], and queues it
//! where any worker may take it, since it has not started: on one of this
//! runtime's workers into its spawn slot (`home.rs`; Go's `runnext` for
//! `newproc`), from anywhere else into the injector. Either way an idle
//! worker is woken, so a new coroutine never waits behind a busy one while
//! a worker sleeps. After shutdown has begun, spawning fails.
//!
//! [`coroutine_main`] is the first code that runs on the new stack, the
//! first time a worker resumes the task: it publishes the coroutine as this
//! thread's current one, runs the user's function (catching a panic), and
//! stores the result in the task's wait cell for `join`; if the join handle
//! is already gone, it drops the result itself, still current, so that the
//! result's destructor runs as part of the coroutine (it may park, and a
//! panic in it is caught), never on the bare worker thread.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::context;
use super::worker::Worker;
use super::Scheduler;
use crate::coroutine::{Coroutine, Yielder};
use crate::stack::Stack;
use crate::task::join_state::Stored;
use crate::task::{TaskPtr, TaskRef};

/// What a spawn asks for beyond the function itself.
#[derive(Default)]
pub(crate) struct SpawnOptions<'a> {
    pub name: Option<&'a str>,
    pub stack_max: Option<usize>,
}

impl Scheduler {
    /// Create a task and queue it, from whichever thread calls. Returns the
    /// join handle's reference.
    pub fn spawn<F, T>(self: &Arc<Self>, opts: SpawnOptions<'_>, f: F) -> io::Result<TaskRef>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        context::with_worker(|w| {
            let local = w.filter(|w| Arc::ptr_eq(&w.scheduler, self));
            self.spawn_from(local, opts, f)
        })
    }

    /// Create a task and queue it. From `local`, one of this runtime's
    /// workers, the new task goes to its spawn slot (the task it displaces
    /// to its stealable queue); from anywhere else (`None`) it goes to the
    /// injector. Either way an idle worker is woken.
    fn spawn_from<F, T>(
        self: &Arc<Self>,
        local: Option<&Worker>,
        opts: SpawnOptions<'_>,
        f: F,
    ) -> io::Result<TaskRef>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.shutdown.load(Ordering::Acquire) {
            return Err(shut_down());
        }
        let size = match opts.stack_max {
            Some(bytes) => crate::stack_size_for(bytes)?,
            None => self.pool.default_size(),
        };
        let (mut stack, id) = match local {
            Some(w) => (
                self.pool.get(Some(&mut w.stacks.borrow_mut()), size)?,
                w.next_id(),
            ),
            None => (
                self.pool.get(None, size)?,
                self.next_id.fetch_add(1, Ordering::Relaxed),
            ),
        };
        crate::stack::asan::forget_stale_poison(&stack);
        stack.set_label(id, opts.name);
        let (run, handle) = TaskRef::new(|me| new_coroutine(me, stack, f));
        match local {
            Some(w) => {
                self.counters.worker(w.index).add_spawned();
                w.push_spawned(run);
            }
            None => {
                self.counters.external_spawned();
                self.injector.push(run);
                if self.shutdown.load(Ordering::SeqCst) {
                    // The workers may have emptied the injector for the last
                    // time before our push: cancel what is left ourselves.
                    self.cancel_injected();
                    return Err(shut_down());
                }
            }
        }
        self.idle.notify_one();
        Ok(handle)
    }
}

pub(crate) fn shut_down() -> io::Error {
    io::Error::other("spindle: cannot spawn: the runtime has shut down")
}

/// Spawn on the runtime of the calling worker (`spindle::spawn`). Returns
/// the join handle's reference.
///
/// # Panics
/// If the caller is not on a spindle worker.
pub(crate) fn spawn_here<F, T>(opts: SpawnOptions<'_>, f: F) -> io::Result<TaskRef>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    context::with_worker(|w| {
        let w = w.expect(
            "spindle::spawn called outside a spindle runtime; use Runtime::spawn or Runtime::block_on",
        );
        // Borrowing the worker's Arc (no clone) is fine: spawn does not suspend.
        w.scheduler.spawn_from(Some(w), opts, f)
    })
}

/// The coroutine of task `me`: [`coroutine_main`] running `f` on `stack`.
fn new_coroutine<F, T>(me: TaskPtr, stack: Stack, f: F) -> Coroutine
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Coroutine::with_stack(stack, move |yielder, ()| coroutine_main(me, yielder, f))
}

/// The first code a new coroutine runs, on its own stack, and its last.
fn coroutine_main<F, T>(me: TaskPtr, yielder: &Yielder, f: F)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    context::enter(me.as_ptr(), yielder);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    // The runtime is cancelling us (sched/shutdown.rs): this is corosensei's
    // forced unwind, not a panic of `f`. Let it reach the coroutine's root;
    // there is no result.
    let result = match result {
        Err(payload) if context::cancelling() => panic::resume_unwind(payload),
        result => result,
    };
    // SAFETY: the task is alive (its worker holds a reference while it
    // runs), it is not waiting on anything, so its hand-off slot is free,
    // and nobody reads the result before STORED is published.
    unsafe { me.cell().put(result) };
    // SAFETY: (task alive, as above.)
    if unsafe { &*me.as_ptr() }.join.store() == Stored::Detached {
        // SAFETY: the handle was gone when we set STORED, so the result is
        // ours alone (task/join_state.rs); taking it frees the hand-off slot
        // for any wait its destructor makes.
        let result = unsafe { me.cell().take::<std::thread::Result<T>>() };
        // Still current: a destructor that blocks parks this coroutine.
        crate::join::drop_detached(result);
    }
    context::leave();
}
