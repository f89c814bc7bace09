//! The M:N scheduler: many coroutines multiplexed onto a few worker threads.
//!
//! Compared with Go's G/M/P model (runtime/proc.go):
//!
//! | Go | spindle |
//! |----|---------|
//! | G (goroutine) | [`TaskRef`]: a task and its coroutine |
//! | `newproc` | [`spawn`](spawn::spawn_here) (`spawn.rs`) |
//! | M + P (thread with its run queue) | [`worker::Worker`] and its [`worker::RunQueue`] |
//! | `runnext` | `RunQueue::runnext` |
//! | global run queue | [`Scheduler::injector`] |
//! | `pidle`, `nmspinning` | [`idle::Idle`] |
//! | `gopark` / `goready` | [`park`] / [`wake`] |
//!
//! [`Scheduler`] is everything the workers of one runtime have in common.
//! Tasks point back to it (opaquely, `Task::scheduler`) so that a wake from
//! *outside* the runtime (an OS thread sending on a channel) knows where to
//! queue the task.
//!
//! Parking, one word per step: the coroutine calls [`park`] (it switches
//! out with `Suspend::Park`); its worker commits the park
//! (`TaskRef::commit_park`: `RUNNABLE → PARKED`, or a requeue if a wake came
//! first); a waker calls [`wake`] (`PARKED → RUNNABLE`, and enqueues).

pub(crate) mod context;
pub(crate) mod idle;
pub(crate) mod spawn;
pub(crate) mod timer;
pub(crate) mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_deque::{Injector, Stealer};

use crate::coroutine::Suspend;
use crate::park::Caller;
use crate::stack::pool::StackPool;
use crate::stats::Counters;
use crate::task::{Task, TaskRef};

pub(crate) struct Scheduler {
    pub injector: Injector<TaskRef>,
    pub stealers: Box<[Stealer<TaskRef>]>,
    pub idle: idle::Idle,
    pub timers: timer::Timers,
    pub pool: StackPool,
    pub counters: Counters,
    pub shutdown: AtomicBool,
    /// Spawns from outside admitted but not yet queued (`handle.rs`).
    pub spawns_in_flight: AtomicUsize,
    pub next_id: AtomicU64,
}

/// The scheduler a task belongs to (tasks keep it as an opaque pointer).
fn scheduler_of(task: &Task) -> *const Scheduler {
    task.scheduler().cast()
}

/// Make a parked task runnable. On one of its runtime's workers it runs next
/// on that worker; from anywhere else it goes through the injector.
pub(crate) fn wake(task: TaskRef) {
    if !task.task().state.wake() {
        return;
    }
    let scheduler = scheduler_of(task.task());
    context::with_worker(|w| match w {
        Some(w) if std::ptr::eq(Arc::as_ptr(&w.scheduler), scheduler) => w.push_runnext(task),
        _ => {
            // SAFETY: a task that can still be woken keeps its runtime's
            // Scheduler alive (Runtime::drop leaks it while tasks remain).
            let scheduler = unsafe { &*scheduler };
            scheduler.injector.push(task);
            scheduler.idle.notify_one();
        }
    });
}

/// Park the calling coroutine until someone wakes it (may return spuriously).
#[inline(always)]
pub(crate) fn park() {
    let suspended = context::suspend(Suspend::Park);
    debug_assert!(suspended, "park called outside a coroutine");
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
    let Some(task) = context::current() else {
        std::thread::sleep(duration);
        return;
    };
    if duration.is_zero() {
        yield_now();
        return;
    }
    // SAFETY: the running task is alive while it runs, and keeps its
    // runtime's Scheduler alive.
    let scheduler = unsafe { &*scheduler_of(task.as_ref()) };
    let me = Caller::get();
    me.cell().prepare();
    if scheduler.timers.add(duration, me.to_waiter()) {
        // A worker asleep without a timeout would not see this deadline
        // (Go's `wakeNetPoller` does the same).
        scheduler.idle.notify_one();
    }
    me.wait();
}
