//! `Handle`: a counted reference to a runtime's scheduler, to spawn from
//! where no `&Runtime` is at hand.
//!
//! [`Handle::current`] returns the handle of the runtime whose coroutine
//! calls it. The handle is `Clone + Send + Sync`, so a plain thread that a
//! coroutine started can take one along and spawn back onto the runtime
//! (`spindle::spawn` there would panic: the thread is not a worker).
//!
//! A handle keeps the runtime's shared state (its [`Scheduler`]) alive, not
//! the runtime: dropping the `Runtime` still shuts it down. From then on
//! [`Handle::spawn`] refuses with "runtime has shut down" and the function
//! never runs.
//!
//! **The race with shutdown.** A spawn that checked the flag just before
//! `Runtime::drop` set it could queue its task after the drop looked at the
//! queues for the last time, and that task would never run nor be cancelled.
//! So an outside spawn is *admitted*: it counts itself in
//! `Scheduler::spawns_in_flight`, then reads the flag; the drop sets the
//! flag, then waits for the count to reach zero ([`close`]). Both sides use
//! `SeqCst`, so at least one of them sees the other: either the spawn sees
//! the flag and refuses, or the drop waits until the task is queued.

use std::fmt;
use std::io;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use crate::join::JoinHandle;
use crate::sched::spawn::SpawnOptions;
use crate::sched::{context, Scheduler};
use crate::task::TaskRef;

/// A handle to a spindle runtime: spawn onto it from any thread.
///
/// Like `tokio::runtime::Handle`. Get one with [`Handle::current`] inside a
/// coroutine, or [`Runtime::handle`](crate::Runtime::handle).
#[derive(Clone)]
pub struct Handle {
    scheduler: Arc<Scheduler>,
}

/// [`Handle::try_current`] was called outside a spindle runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TryCurrentError(());

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not inside a spindle runtime (no coroutine or worker runs on this thread)")
    }
}

impl std::error::Error for TryCurrentError {}

impl Handle {
    pub(crate) fn new(scheduler: Arc<Scheduler>) -> Handle {
        Handle { scheduler }
    }

    /// The handle of the runtime the caller runs on.
    ///
    /// # Panics
    /// Outside a spindle coroutine or worker thread (a plain thread, even one
    /// a coroutine started, has no current runtime: take a handle along).
    /// [`try_current`](Self::try_current) returns an error instead.
    pub fn current() -> Handle {
        Handle::try_current().unwrap_or_else(|e| panic!("spindle::Handle::current: {e}"))
    }

    /// The handle of the runtime the caller runs on, or an error outside one.
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        context::with_worker(|w| w.map(|w| Handle::new(w.scheduler.clone())))
            .ok_or(TryCurrentError(()))
    }

    /// Spawn a coroutine onto this handle's runtime, from any thread.
    ///
    /// The stack is taken when the coroutine first runs (see
    /// [`spawn`](crate::spawn)).
    ///
    /// # Panics
    /// If the runtime has shut down;
    /// [`Builder::spawn_on_handle`](crate::Builder::spawn_on_handle) returns
    /// that error instead, and the error of a missing stack at spawn.
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        crate::expect_spawned(self.spawn_with(SpawnOptions::default(), f))
    }

    /// Spawn unless the runtime has shut down (see the module docs for the
    /// race this closes). Returns the join handle's reference.
    pub(crate) fn spawn_with<F, T>(&self, opts: SpawnOptions<'_>, f: F) -> io::Result<TaskRef>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let s = &self.scheduler;
        s.spawns_in_flight.fetch_add(1, SeqCst);
        let result = if s.shutdown.load(SeqCst) {
            Err(crate::sched::spawn::shut_down())
        } else {
            s.spawn(opts, f)
        };
        s.spawns_in_flight.fetch_sub(1, SeqCst);
        result
    }
}

/// Shutdown's side of the admission (module docs): refuse new outside
/// spawns, and wait for those already admitted to queue their task.
pub(crate) fn close(scheduler: &Scheduler) {
    scheduler.shutdown.store(true, SeqCst);
    while scheduler.spawns_in_flight.load(SeqCst) != 0 {
        std::thread::yield_now();
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.scheduler.stealers.len())
            .field("shut_down", &self.scheduler.shutdown.load(SeqCst))
            .finish()
    }
}
