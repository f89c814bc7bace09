//! # spindle: a hand-rolled M:N green-thread runtime
//!
//! spindle runs many stackful coroutines on a few OS threads, the way Go runs
//! goroutines. It exists to be read and measured: every mechanism is short,
//! and the companion `spindle-bench` CLI measures what each one costs.
//!
//! ```
//! let rt = spindle::Runtime::builder().workers(2).build().unwrap();
//! let sum = rt.block_on(|| {
//!     let (tx, rx) = spindle::chan::bounded(0);
//!     let producer = spindle::spawn(move || {
//!         for i in 1..=10u64 {
//!             tx.send(i).unwrap();
//!         }
//!     });
//!     let sum: u64 = std::iter::from_fn(|| rx.recv().ok()).sum();
//!     producer.join().unwrap();
//!     sum
//! });
//! assert_eq!(sum, 55);
//! ```
//!
//! ## The life of a coroutine
//!
//! Read these in order (paths under `runtime/src/`; a test checks that each
//! function exists where named):
//!
//! 1. **Spawn.** `lib.rs::spawn` calls `sched/spawn.rs::spawn_from`: a task
//!    from `task/start.rs::new_deferred`, with no stack yet (its function
//!    waits in the task), queued by
//!    `sched/worker.rs::push_spawned` in the worker's spawn slot, where an
//!    idle worker may still take it (`sched/worker.rs::steal_spawned`).
//! 2. **First switch.** `sched/worker.rs::run` loops over
//!    `sched/worker.rs::find_task` and `sched/worker.rs::run_task`;
//!    `sched/worker.rs::adopt` makes this worker the task's home for good,
//!    `sched/worker.rs::start` takes a stack from this worker's cache and
//!    builds the coroutine on it (`sched/spawn.rs::start_deferred`), and
//!    `sched/worker.rs::resume` names it this thread's current coroutine
//!    and calls `task/mod.rs::resume`, which switches to the new stack,
//!    where `sched/spawn.rs::coroutine_main` calls `sched/context.rs::start`
//!    and the user's function.
//! 3. **Park on `recv`.** `chan/mod.rs::recv` calls
//!    `chan/channel.rs::recv`, which finds no value, queues the caller and
//!    calls `park/mod.rs::wait`, which calls
//!    `sched/context.rs::suspend_running`: the switch back. The worker, in
//!    `run_task`, commits the park with `task/spare.rs::commit_park` and
//!    `task/state.rs::commit_park`.
//! 4. **Wake by `send`.** `chan/channel.rs::send` dequeues the receiver
//!    (`chan/queue.rs::claim`), `chan/channel.rs::deliver` writes the value
//!    into its wait cell and, through `chan/queue.rs::finish`, calls
//!    `park/mod.rs::wake`, then `sched/mod.rs::wake`: on the home worker
//!    `task/state.rs::wake_local` decides and `sched/worker.rs::push_runnext`
//!    queues it; from any other thread `sched/mod.rs::wake_remote` claims
//!    it (`task/state.rs::wake_remote`), puts it in the home's inbox
//!    (`sched/home.rs::push_inbox`) and wakes that worker
//!    (`sched/idle.rs::notify_worker`), which applies the wake when it takes
//!    the entry out (`sched/worker.rs::pop_inbox_entries`,
//!    `task/state.rs::take_inbox_entry`). When `run_task` resumes it,
//!    `suspend_running` returns and `wait` sees the outcome.
//! 5. **Finish.** `coroutine_main` stores the result, and
//!    `task/join_state.rs::store` decides whether the coroutine drops it
//!    (the handle is gone: `join.rs::drop_detached`, still inside the
//!    coroutine) or leaves it to the handle; then it returns.
//!    `sched/worker.rs::finish` returns the stack, and
//!    `sched/worker.rs::complete` wakes the joiner in `join.rs::join`, as
//!    `task/join_state.rs::complete` decides.
//! 6. **Or shutdown.** If the runtime is dropped first,
//!    `sched/shutdown.rs::shutdown` finds the task (parked, queued, or not
//!    started) and `sched/shutdown.rs::cancel` unwinds it with
//!    `task/mod.rs::force_unwind`.
//!
//! ## Where to start reading
//!
//! * [`stack`]: how a coroutine gets a stack (slabs, guard pages, demand
//!   paging, the pool) and how an overflow is reported.
//! * `wait_cell.rs` and `coroutine.rs`: two leaves, the types that the task
//!   and the scheduler share (a wait's outcome and hand-off slot; what a
//!   coroutine yields and returns).
//! * `task`: the heap control block of a coroutine and its state machines
//!   (park/wake, join), below the scheduler.
//! * `sched`: spawning, workers, run queues, `runnext`, stealing, idle
//!   workers, timers, and the thread-local "current coroutine".
//! * `park`: how a blocked party (coroutine or thread) waits and is woken;
//!   the scheduler's `park`/`wake` underneath, the channels' `Waiter` above.
//!   It and `sched` call each other, the one cycle between modules (as Go's
//!   `gopark`/`goready` live in proc.go).
//! * [`net`]: TCP and UDP sockets shaped like `std::net` (`TcpListener`,
//!   `TcpStream`, `UdpSocket`). A coroutine whose `accept`, `connect`,
//!   `read` or `write` would block **parks** instead of blocking its worker:
//!   the runtime's netpoller (one epoll per runtime; idle workers sleep in
//!   it) wakes it when the socket is ready, and the worker runs other
//!   coroutines meanwhile. So a server can give every connection its own
//!   coroutine, written as plain blocking code, and hold tens of thousands
//!   of them on a few threads. On a plain thread the same calls block like
//!   `std::net`'s. (`std::net` itself, called inside a coroutine, still
//!   blocks the whole worker.) Underneath is the non-blocking `Socket` that
//!   parks a coroutine on `EAGAIN`.
//! * [`chan`]: Go-style channels; [`sync`]: `WaitGroup`; [`JoinHandle`];
//!   [`Runtime`]; [`Handle`], to spawn from where no `&Runtime` is at hand.
//!
//! ## Where a coroutine runs: thread-locals and `!Send` values
//!
//! A coroutine that has started **never changes worker thread**. Work
//! stealing moves only coroutines that have not started yet, and a wake-up
//! sends a coroutine back to its own worker (its *home*). So inside a
//! coroutine a `thread_local!` is the same variable before and after every
//! blocking call (`recv`, `join`, `sleep`, `yield_now`), and `!Send` values
//! tied to a thread (an `Rc` also kept in a thread-local, std's stdout lock,
//! a `MutexGuard`) stay on their thread: the compiler's assumption that a
//! thread-local's address is constant within a function holds. Coroutines
//! of the same worker do share its thread-locals, as the tasks of one
//! thread would: keep per-coroutine state in the closure.
//!
//! The price: a started coroutine may wait for its own worker. A coroutine
//! that computes without blocking keeps the other coroutines *of its
//! worker* waiting (woken ones included) even while other workers are idle;
//! only coroutines that have not started can move to an idle worker.
//! **Yield in long loops** (`yield_now`): every blocking call, every
//! `yield_now` and every failed `try_send`/`try_recv` (which yields if
//! something else is ready on this worker) is a point where the others run.
//! `docs/notes/soundness.md` measures the cost and compares other runtimes.
//!
//! The runtime's own thread-locals are in seven files: `sched/context.rs`
//! (the worker, the current coroutine, the cancellation flag),
//! `park/thread_parker.rs` (a plain thread's parker), `stack/overflow.rs`
//! (the signal stack and the fault report), `chan/select.rs` (the random
//! generator that shuffles a select's cases), `task/cache.rs` (the
//! thread's free task blocks), `stack/compact/mod.rs` (the fault handler's
//! retry count) and `stack/compact/pages.rs` (a worker's copy-out
//! buffer); each is read behind a function that does not suspend.
//!
//! ## Shutdown: cancellation
//!
//! Dropping a [`Runtime`] cancels every coroutine that has not finished
//! (`sched/shutdown.rs`). One that has not started is dropped without
//! running. One that has started is *unwound* on its own worker thread: it
//! resumes from its blocking call with a panic of corosensei's, so its
//! destructors run and its channels close (a `send` to it returns
//! `Err(value)`, a `recv` from it returns `Err`). Its [`JoinHandle::join`]
//! returns `Err` with a [`Cancelled`] payload, and its stack goes back to
//! the operating system. Dropped from a plain thread, the drop returns when
//! all of that is done; dropped from inside one of its own coroutines, it
//! returns at once and the workers finish the shutdown.
//!
//! A coroutine can tell that it is being cancelled the way any Rust code
//! tells it is being unwound: its `Drop` guards run, with
//! `std::thread::panicking()` true. During that unwind it is no longer a
//! running coroutine and cannot suspend again: a blocking call in a
//! destructor blocks the worker thread until the other side acts (fine
//! toward a plain thread, or toward a coroutine that is being cancelled too,
//! whose channel ends close; a wait on a live coroutine of the same worker
//! never ends, and neither does the shutdown), `yield_now` yields the
//! thread, and spawning fails (`Builder::spawn` returns the error,
//! `spindle::spawn` panics, which during an unwind aborts). A destructor
//! that panics during the unwind aborts the process, as anywhere in Rust.
//! A coroutine that catches the unwind (`catch_unwind`) and returns has its
//! result discarded: its handle still says `Cancelled`.
//!
//! ## Guard mode
//!
//! Guard pages use `MADV_GUARD_INSTALL` where the kernel supports it (Linux
//! 6.13+), and fall back to `mprotect`, which costs two VMAs per stack. The
//! environment variable `SPINDLE_GUARD` (`auto`, `regions`, `mprotect`)
//! overrides the choice for the whole process; see [`stack::guard`].

#![deny(unsafe_op_in_unsafe_fn)]

pub mod chan;
mod coroutine;
mod handle;
mod join;
mod loom_shim;
pub mod net;
mod park;
mod runtime;
mod sched;
pub mod stack;
mod stats;
pub mod sync;
mod task;
mod wait_cell;

use std::io;

use sched::spawn::SpawnOptions;

pub use handle::{Handle, TryCurrentError};
pub use join::{Cancelled, JoinHandle};
pub use runtime::{
    Runtime, RuntimeBuilder, DEFAULT_SOCKET_COMPACT_AFTER, DEFAULT_STACK_MAX, MAX_WORKERS,
};
pub use sched::{sleep, yield_now};
pub use stack::guard::GuardMode;
pub use stats::Stats;

/// Spawn a coroutine on the current runtime.
///
/// The coroutine gets its stack when it first runs, from the worker that
/// runs it, so a burst of spawns that outruns the workers holds no stacks
/// while it waits. If no stack can be had then (address space or
/// `vm.max_map_count`), the coroutine never runs: its function is dropped
/// and [`JoinHandle::join`] returns `Err` with the error as the panic
/// message (also printed to stderr). [`Builder::spawn`] takes the stack
/// at spawn and returns that error instead.
///
/// # Panics
/// If called outside a spindle coroutine or worker (use
/// [`Runtime::spawn`] or [`Runtime::block_on`] there), or after the runtime
/// has shut down.
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    expect_spawned(sched::spawn::spawn_here(SpawnOptions::default(), f))
}

/// The join handle of a spawn that the caller asked to panic on failure.
pub(crate) fn expect_spawned<T: Send + 'static>(
    spawned: io::Result<task::TaskRef>,
) -> JoinHandle<T> {
    match spawned {
        Ok(task) => JoinHandle::new(task),
        Err(e) => panic!("spindle: failed to spawn coroutine: {e}"),
    }
}

/// Spawn options, like `std::thread::Builder`.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_max: Option<usize>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Name the coroutine (shown in the stack-overflow report, which keeps
    /// its first 16 bytes, escaped: like a Linux thread name, a short tag).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Stack reservation for this coroutine, guard page included, rounded up
    /// to whole pages. Default: the runtime's `stack_max`.
    pub fn stack_max(mut self, bytes: usize) -> Builder {
        self.stack_max = Some(bytes);
        self
    }

    /// Spawn on the current runtime.
    ///
    /// # Panics
    /// If called outside a spindle runtime.
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        sched::spawn::spawn_here(self.options(), f).map(JoinHandle::new)
    }

    /// Spawn on `rt`, from any thread.
    pub fn spawn_on<F, T>(self, rt: &Runtime, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        rt.scheduler().spawn(self.options(), f).map(JoinHandle::new)
    }

    /// Spawn on the runtime of `handle`, from any thread. Fails with
    /// "runtime has shut down" once that runtime was dropped.
    pub fn spawn_on_handle<F, T>(self, handle: &Handle, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        handle.spawn_with(self.options(), f).map(JoinHandle::new)
    }

    fn options(&self) -> SpawnOptions<'_> {
        SpawnOptions {
            name: self.name.as_deref(),
            stack_max: self.stack_max,
            stack_at_spawn: true,
        }
    }
}

/// Smallest `stack_max` accepted.
pub const MIN_STACK_MAX: usize = 16 << 10;
/// Largest `stack_max` accepted (Go's limit on 64-bit systems is 1 GB).
pub const MAX_STACK_MAX: usize = 1 << 30;

/// Validate a requested `stack_max` and round it up to whole pages.
pub(crate) fn stack_size_for(bytes: usize) -> io::Result<usize> {
    let min = MIN_STACK_MAX.max(4 * stack::page::page_size());
    if !(min..=MAX_STACK_MAX).contains(&bytes) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "stack_max must be between {} KiB and {} MiB, got {bytes} bytes",
                min >> 10,
                MAX_STACK_MAX >> 20
            ),
        ));
    }
    Ok(stack::page::round_up(bytes))
}
