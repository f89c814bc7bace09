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
//! Each task points to its *home* worker ([`home::Home`], opaquely through
//! `Task::home`): a started coroutine runs only there, so a wake from
//! another thread (another worker, or an OS thread sending on a channel)
//! queues it in that worker's inbox and wakes that worker. Only coroutines
//! that have not started yet are stolen by idle workers.
//!
//! Parking, one word per step: the coroutine calls [`park`] (it switches
//! out with `Suspend::Park`); its worker commits the park
//! (`TaskRef::commit_park`: `RUNNABLE → PARKED`, or a requeue if a wake came
//! first); a waker calls [`wake`] (`PARKED → RUNNABLE`, and enqueues). On
//! the task's home thread these are plain loads and stores; a waker on
//! another thread goes through the inbox (`task/state.rs`).

pub(crate) mod compact;
pub(crate) mod context;
pub(crate) mod home;
pub(crate) mod idle;
mod pinned;
mod shutdown;
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
    /// One per worker, in worker order.
    pub homes: Box<[home::Home]>,
    /// Unstarted tasks spawned from outside the runtime.
    pub injector: Injector<TaskRef>,
    pub stealers: Box<[Stealer<TaskRef>]>,
    pub idle: idle::Idle,
    pub timers: timer::Timers,
    /// The netpoller (`net/`): shared with the sockets registered in it.
    pub poller: Arc<crate::net::poller::Poller>,
    pub pool: StackPool,
    pub counters: Counters,
    pub shutdown: AtomicBool,
    /// Spawns from outside admitted but not yet queued (`handle.rs`).
    pub spawns_in_flight: AtomicUsize,
    pub next_id: AtomicU64,
    /// Which parked coroutines the workers compact (`compact.rs`), if any.
    pub compact: Option<CompactPolicy>,
}

/// `RuntimeBuilder::compact_after` and `compact_idle_sockets`, resolved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CompactPolicy {
    /// How long a coroutine stays parked before it is compacted.
    pub after: std::time::Duration,
    /// Every park (`compact_after`), or only parks on a socket.
    pub every_park: bool,
}

/// The home worker of a started task (tasks keep it as an opaque pointer).
#[inline]
pub(crate) fn home_of(task: &Task) -> *const home::Home {
    let home = task.home().cast::<home::Home>();
    debug_assert!(!home.is_null(), "a task that never ran has no home");
    home
}

/// Make a parked task runnable, on its home worker: on that worker itself
/// it runs next; from any other thread it goes to that worker's inbox.
// Always inlined: its callers (`Waiter::wake`, the netpoller's dispatch) may
// sit in another codegen unit, or another crate (an out-of-line call here
// cost the hand-off 6 instructions).
#[inline(always)]
pub(crate) fn wake(task: TaskRef) {
    // The home was written before the task first ran, and whoever holds a
    // waiter of it got it from the running task, through the structure it
    // waited on (its lock, or its queue): that orders the write before this
    // read.
    let home = home_of(task.task());
    context::with_worker(move |w| match w {
        // On the home thread: the local word (task/state.rs), no
        // read-modify-write.
        Some(w) if std::ptr::eq(w.home(), home) => {
            if task.task().state.wake_local() {
                w.push_runnext(task);
            }
        }
        _ => wake_remote(home, task),
    });
}

/// Make a parked task runnable at the *back* of its home's line: its
/// home's inbox, even on the home worker itself, where [`wake`] would use
/// `runnext`. For the netpoller (`net/poller.rs`), which wakes a batch at a
/// time: in FIFO order, as Go's `injectglist`, none displacing the last.
/// The inbox entry goes through the remote word even on the home thread
/// (`task/state.rs`): the worker applies it when it takes it out.
pub(crate) fn wake_queued(task: TaskRef) {
    let home = home_of(task.task());
    context::with_worker(|w| match w {
        // Its own worker is awake: no ring needed.
        Some(w) if std::ptr::eq(w.home(), home) => {
            if task.task().state.wake_remote() {
                w.home().push_inbox(task);
            }
        }
        _ => wake_remote(home, task),
    });
}

/// The netpoller's wake, from the loop of `worker`, the worker that
/// polled the event (`net/poller.rs`): a task of that worker's own home
/// goes to the back of its pinned queue through the local word, as
/// [`wake`] does on the home thread, without the inbox's remote word,
/// push, pop and second compare-and-swap; a task of another home goes to
/// that home's inbox, as [`wake_queued`] sends it. The back of the line
/// for both: a batch stays FIFO.
///
/// On the home thread the local word is safe to use here for the reason
/// it is in [`wake`]: only this thread touches it, and no coroutine of this
/// home is half-way into a park, because the worker is in its own loop
/// (a `&Worker` exists only on its own thread).
pub(crate) fn wake_polled(worker: &worker::Worker, task: TaskRef) {
    let home = home_of(task.task());
    if std::ptr::eq(worker.home(), home) {
        if task.task().state.wake_local() {
            worker.push_polled(task);
        }
    } else {
        wake_remote(home, task);
    }
}

/// The cross-thread half of [`wake`]: claim the task's remote word, queue
/// `task` in its home's inbox and wake that worker if it sleeps.
#[inline(never)]
fn wake_remote(home: *const home::Home, task: TaskRef) {
    if !task.task().state.wake_remote() {
        return;
    }
    // SAFETY: we just moved the task's remote word from IDLE to QUEUED, so
    // it was not CLOSED: it had not finished, and its home worker keeps
    // its own reference to the Scheduler, which owns the Home, until our
    // entry has arrived in the inbox (it counts the entries owed by tasks
    // that finish meanwhile, `Worker::owed`, and shutdown waits for them
    // and for tasks it cannot claim, `sched/shutdown.rs`).
    let home = unsafe { &*home };
    // SAFETY: as above, the Scheduler is alive now. Our own reference keeps
    // it alive through the notify, even if the task then finishes at once
    // and the runtime shuts down: the last reference may be this one.
    let scheduler = unsafe {
        Arc::increment_strong_count(home.scheduler);
        Arc::from_raw(home.scheduler)
    };
    home.push_inbox(task);
    scheduler.idle.notify_worker(home.index);
}

/// A failed non-blocking attempt (`try_recv`, `try_send`) is a scheduling
/// point: if another coroutine is ready on this worker, let it run, so that
/// a coroutine polling in a loop cannot starve the one it waits for when
/// both live on the same worker.
pub(crate) fn yield_if_others_ready() {
    if context::with_worker(|w| w.is_some_and(|w| w.has_local_work())) && context::in_coroutine() {
        yield_now();
    }
}

/// Park the calling coroutine until someone wakes it (may return spuriously).
#[inline(always)]
pub(crate) fn park() {
    let suspended = context::suspend(Suspend::Park);
    debug_assert!(suspended, "park called outside a coroutine");
}

/// [`park`] on a socket: a wait of unknown length, after which the home
/// worker may compact the coroutine (`RuntimeBuilder::compact_idle_sockets`).
pub(crate) fn park_on_socket() {
    let suspended = context::suspend(Suspend::ParkOnSocket);
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
    // SAFETY: the running task is alive while it runs, it has started so it
    // has a home, and its worker keeps the Scheduler that owns it alive.
    let scheduler = unsafe { &*(*home_of(task.as_ref())).scheduler };
    let me = Caller::get();
    me.cell().prepare();
    if scheduler.timers.add(duration, me.to_waiter()) {
        // A worker asleep without a timeout would not see this deadline
        // (Go's `wakeNetPoller` does the same).
        scheduler.idle.notify_one();
    }
    me.wait();
}
