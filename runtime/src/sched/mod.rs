//! The M:N scheduler: many coroutines multiplexed onto a few worker threads.
//!
//! Compared with Go's G/M/P model (runtime/proc.go):
//!
//! | Go | spindle |
//! |----|---------|
//! | G (goroutine) | [`TaskRef`]: a task and its coroutine |
//! | M + P (thread with its run queue) | [`worker::Worker`] and its [`worker::RunQueue`] |
//! | `runnext` | `RunQueue::runnext` |
//! | global run queue | [`Shared::injector`] |
//! | `pidle`, `nmspinning` | [`idle::Idle`] |
//! | `gopark` / `goready` | [`park_current`] / [`wake`] |
//!
//! [`Shared`] is everything the workers of one runtime have in common. Tasks
//! point back to it so that a wake from *outside* the runtime (an OS thread
//! sending on a channel) knows where to queue the task.

pub(crate) mod context;
pub(crate) mod idle;
pub(crate) mod runtime;
pub(crate) mod timer;
pub(crate) mod worker;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_deque::{Injector, Stealer};

use crate::park::Waiter;
use crate::stack::pool::StackPool;
use crate::stats::Counters;
use crate::task::join::JoinHandle;
use crate::task::{new_task, Suspend, TaskRef};

pub(crate) struct Shared {
    pub injector: Injector<TaskRef>,
    pub stealers: Box<[Stealer<TaskRef>]>,
    pub idle: idle::Idle,
    pub timers: timer::Timers,
    pub pool: StackPool,
    pub counters: Counters,
    pub shutdown: AtomicBool,
    pub next_id: AtomicU64,
}

/// What a spawn asks for beyond the function itself.
pub(crate) struct SpawnOptions<'a> {
    pub name: Option<&'a str>,
    pub stack_max: Option<usize>,
}

impl Shared {
    /// Create a task and queue it, from whichever thread calls.
    pub fn spawn<F, T>(self: &Arc<Self>, opts: SpawnOptions<'_>, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        context::with_worker(|w| {
            let local = w.filter(|w| Arc::ptr_eq(&w.shared, self));
            self.spawn_from(local, opts, f)
        })
    }

    /// Create a task and queue it. From `local`, one of this runtime's
    /// workers, the new task goes to `runnext` (as Go's `newproc` does);
    /// from anywhere else (`None`) it goes to the injector and an idle
    /// worker is woken.
    fn spawn_from<F, T>(
        self: &Arc<Self>,
        local: Option<&worker::Worker>,
        opts: SpawnOptions<'_>,
        f: F,
    ) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let size = match opts.stack_max {
            Some(bytes) => crate::stack_size_for(bytes)?,
            None => self.pool.default_size(),
        };
        let (stack, id) = match local {
            Some(w) => (
                self.pool.get(Some(&mut w.stacks.borrow_mut()), size)?,
                w.next_id(),
            ),
            None => (
                self.pool.get(None, size)?,
                self.next_id.fetch_add(1, Ordering::Relaxed),
            ),
        };
        let (run, handle) = new_task(self, stack, id, opts.name, f);
        match local {
            Some(w) => {
                self.counters.worker(w.index).add_spawned();
                w.push_runnext(run);
            }
            None => {
                self.counters.external_spawned();
                self.injector.push(run);
                self.idle.notify_one();
            }
        }
        Ok(JoinHandle::new(handle))
    }
}

/// Spawn on the runtime of the calling worker (`spindle::spawn`).
///
/// # Panics
/// If the caller is not on a spindle worker.
pub(crate) fn spawn_here<F, T>(opts: SpawnOptions<'_>, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    context::with_worker(|w| {
        let w = w.expect(
            "spindle::spawn called outside a spindle runtime; use Runtime::spawn or Runtime::block_on",
        );
        // Borrowing the worker's Arc (no clone) is fine: spawn does not suspend.
        w.shared.spawn_from(Some(w), opts, f)
    })
}

/// Make a parked task runnable. On one of its runtime's workers it runs next
/// on that worker; from anywhere else it goes through the injector.
pub(crate) fn wake(task: TaskRef) {
    if !task.header().state.wake() {
        return;
    }
    let shared = task.shared();
    context::with_worker(|w| match w {
        Some(w) if std::ptr::eq(Arc::as_ptr(&w.shared), shared) => w.push_runnext(task),
        _ => {
            // SAFETY: a task that can still be woken keeps its runtime's
            // Shared alive (Runtime::drop leaks it while tasks remain).
            let shared = unsafe { &*shared };
            shared.injector.push(task);
            shared.idle.notify_one();
        }
    });
}

/// Park the calling coroutine until someone wakes it (may return spuriously).
#[inline(always)]
pub(crate) fn park_current() {
    let suspended = context::suspend(Suspend::Park);
    debug_assert!(suspended, "park_current called outside a coroutine");
}

/// Let other coroutines run; the caller goes to the back of its worker's
/// queue. Outside a coroutine this is `std::thread::yield_now`.
#[inline]
pub fn yield_now() {
    if !context::suspend(Suspend::Yield) {
        std::thread::yield_now();
    }
}

/// Put the calling coroutine to sleep for at least `duration`, without
/// blocking its worker. Outside a coroutine this is `std::thread::sleep`.
pub fn sleep(duration: Duration) {
    let Some(task) = context::current_task() else {
        std::thread::sleep(duration);
        return;
    };
    if duration.is_zero() {
        yield_now();
        return;
    }
    // SAFETY: the running task keeps its runtime alive.
    let shared = unsafe { &*task.shared() };
    let me = Waiter::task(task);
    me.cell().prepare();
    if shared.timers.add(duration, me.clone()) {
        // A worker asleep without a timeout would not see this deadline
        // (Go's `wakeNetPoller` does the same).
        shared.idle.notify_one();
    }
    me.wait();
}
