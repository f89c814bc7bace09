//! `Runtime`: start the workers, run a coroutine from a thread, shut down.
//!
//! A runtime owns N worker threads (default: the available parallelism), one
//! stack pool and one timer heap. `block_on` is the bridge from ordinary code:
//! it spawns the function as a coroutine and blocks the calling thread on its
//! join handle.
//!
//! Shutdown (dropping the `Runtime`) stops the workers soon (a worker looks
//! at the flag when it runs out of work, every 61st round, and before a
//! task's first run, so no task starts once it is set) and *cancels* every
//! coroutine that has not finished
//! (`sched/shutdown.rs`): started ones are unwound on their own worker, so
//! their destructors run and their channels close; unstarted ones are
//! dropped without running. Their join handles return `Err` with a
//! [`Cancelled`](crate::Cancelled) payload, and their stacks go back to the
//! operating system with the runtime's stack pool.
//!
//! Dropped from a plain thread, the drop returns when all of that is done.
//! Dropped from inside one of its own coroutines (the last `Arc` of a shared
//! runtime, say), it cannot wait for its own worker thread: it starts the
//! shutdown and returns, and the workers finish it on their own, the calling
//! coroutine's worker once that coroutine switches out. The scheduler's
//! state is freed by whoever lets go of it last.

use std::io;
use std::panic;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_deque::Injector;

use crate::handle::{self, Handle};
use crate::join::JoinHandle;
use crate::net::poller::Poller;
use crate::sched::home::Home;
use crate::sched::idle::Idle;
use crate::sched::spawn::SpawnOptions;
use crate::sched::timer::Timers;
use crate::sched::worker::{RunQueue, Worker};
use crate::sched::{context, CompactPolicy, Scheduler};
use crate::stack::{guard, overflow, pool::StackPool};
use crate::stats::{Counters, Stats};

/// Default `stack_max`: 256 KiB per coroutine, guard page included.
pub const DEFAULT_STACK_MAX: usize = 256 << 10;

/// Default [`RuntimeBuilder::compact_idle_sockets`]: a coroutine parked on
/// a socket for a second is compacted (where guard regions are available).
pub const DEFAULT_SOCKET_COMPACT_AFTER: Duration = Duration::from_secs(1);

/// Most worker threads a runtime accepts: Go's cap on `GOMAXPROCS`
/// (`_MaxGomaxprocs` in runtime/proc.go). Far above any useful count, and
/// low enough that the per-worker tables are never an absurd allocation.
pub const MAX_WORKERS: usize = 1024;

/// A spindle runtime: worker threads, their queues, and a stack pool.
pub struct Runtime {
    scheduler: Arc<Scheduler>,
    threads: Vec<thread::JoinHandle<()>>,
}

/// Configure a [`Runtime`]: `Runtime::builder().workers(2).build()`.
#[derive(Clone, Debug)]
pub struct RuntimeBuilder {
    workers: Option<usize>,
    stack_max: usize,
    compact_after: Option<Duration>,
    compact_sockets: Option<Duration>,
}

impl RuntimeBuilder {
    /// Number of worker threads, 1 to [`MAX_WORKERS`]; `build` rejects
    /// others. Default: available parallelism (at most `MAX_WORKERS`).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Default stack reservation per coroutine, in bytes, guard page
    /// included; rounded up to whole pages. Default 256 KiB.
    pub fn stack_max(mut self, bytes: usize) -> Self {
        self.stack_max = bytes;
        self
    }

    /// Compact coroutines parked longer than `after` (off by default): the
    /// live part of such a coroutine's stack moves to a heap buffer sized to
    /// fit, and all its stack pages go back to the kernel; when it is woken
    /// the bytes are copied back to the same addresses before it runs. A
    /// parked coroutine then costs its buffer instead of a page.
    ///
    /// What it costs: a woken compacted coroutine pays a few system calls
    /// before it runs; another thread touching a compacted stack through a
    /// reference (`std::thread::scope`) takes a fault that restores it; a
    /// system call from another thread that reads or writes a compacted
    /// stack fails with `EFAULT` instead (it is not retried). Needs
    /// `/proc/self/mem` access to protected pages, and guard regions
    /// (Linux 6.13+) except on x86_64, where the mprotect fallback is tested
    /// too (`GuardMode::compacts`): `build` fails with the reason where
    /// either is missing. Design: `docs/notes/compact.md`.
    pub fn compact_after(mut self, after: Duration) -> Self {
        self.compact_after = Some(after);
        self
    }

    /// Compact coroutines parked on a socket (`spindle::net`) longer than
    /// `after`; `None` turns it off. On by default, after
    /// [`DEFAULT_SOCKET_COMPACT_AFTER`], wherever compaction works without
    /// a VMA cost (guard regions, Linux 6.13+), and silently off elsewhere
    /// or if the system refuses it. This is spindle's counterpart of Go
    /// shrinking idle goroutines' stacks at every GC: a server's idle
    /// connections are most of its coroutines, and a compacted one costs
    /// its live bytes (a few hundred) instead of a 4 KiB page. A coroutine
    /// parked anywhere else (a channel, a lock, `sleep`) is compacted only
    /// with [`compact_after`](Self::compact_after), which, when set, also
    /// applies to sockets. The costs are those of `compact_after`, paid
    /// only by a connection that was quiet for `after`.
    pub fn compact_idle_sockets(mut self, after: Option<Duration>) -> Self {
        self.compact_sockets = after;
        self
    }

    /// Start the runtime.
    pub fn build(self) -> io::Result<Runtime> {
        let workers = match self.workers {
            Some(n) if !(1..=MAX_WORKERS).contains(&n) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                    "workers must be between 1 and {MAX_WORKERS} (spindle::MAX_WORKERS), got {n}"
                ),
                ))
            }
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS)),
        };
        let stack_max = crate::stack_size_for(self.stack_max)?;
        let mode = guard::mode()?;
        overflow::install_handler();
        if self.compact_after.is_some() {
            crate::stack::compact::pages::enable(mode)?;
        }
        let compact = match (self.compact_after, self.compact_sockets) {
            (Some(after), _) => Some(CompactPolicy {
                after,
                every_park: true,
            }),
            // The default for sockets: only where it costs no mappings,
            // and only if the system lets us (else off, without an error).
            // Not under AddressSanitizer: the pass reads whole frames,
            // redzones included, which ASan reports. Only on x86_64, the
            // one architecture where compaction was tested on hardware
            // (aarch64 ran only under qemu-user, docs/notes/compact.md).
            (None, Some(after))
                if !cfg!(spindle_asan)
                    && cfg!(target_arch = "x86_64")
                    && mode == guard::GuardMode::Regions
                    && crate::stack::compact::pages::enable(mode).is_ok() =>
            {
                Some(CompactPolicy {
                    after,
                    every_park: false,
                })
            }
            (None, _) => None,
        };

        let poller = Arc::new(Poller::new()?);
        let queues: Vec<RunQueue> = (0..workers).map(|_| RunQueue::new()).collect();
        let scheduler = Arc::new_cyclic(|me| Scheduler {
            homes: (0..workers).map(|i| Home::new(i, me.as_ptr())).collect(),
            injector: Injector::new(),
            stealers: queues.iter().map(|q| q.stealer()).collect(),
            idle: Idle::new(workers, poller.kick_handle()),
            timers: Timers::new(),
            poller,
            pool: StackPool::new(stack_max, mode),
            counters: Counters::new(workers),
            shutdown: AtomicBool::new(false),
            spawns_in_flight: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            compact,
        });
        let mut rt = Runtime {
            scheduler: scheduler.clone(),
            threads: Vec::with_capacity(workers),
        };
        for (index, queue) in queues.into_iter().enumerate() {
            let scheduler = scheduler.clone();
            let spawned = thread::Builder::new()
                .name(format!("spindle-worker-{index}"))
                .stack_size(256 << 10)
                .spawn(move || {
                    overflow::ensure_altstack();
                    Worker::new(index, scheduler, queue).run();
                });
            match spawned {
                Ok(handle) => rt.threads.push(handle),
                // Dropping `rt` stops the workers started so far.
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot start worker thread {index} of {workers}: {e}"),
                    ))
                }
            }
        }
        Ok(rt)
    }
}

impl Runtime {
    /// A runtime with default settings.
    pub fn new() -> io::Result<Runtime> {
        Runtime::builder().build()
    }

    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            workers: None,
            stack_max: DEFAULT_STACK_MAX,
            compact_after: None,
            compact_sockets: Some(DEFAULT_SOCKET_COMPACT_AFTER),
        }
    }

    /// Run `f` as a coroutine and block the calling thread until it returns.
    /// A panic in `f` resumes on the caller.
    ///
    /// # Panics
    /// If called from inside a coroutine (it would block a worker thread):
    /// spawn and `join` instead.
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        assert!(
            !context::in_coroutine(),
            "spindle: Runtime::block_on called from inside a coroutine; spawn it and join instead"
        );
        match self.spawn(f).join() {
            Ok(v) => v,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Spawn a coroutine onto this runtime from any thread.
    ///
    /// The stack is taken when the coroutine first runs; if none can be had
    /// then (address space or `vm.max_map_count`), `join` returns that error
    /// as the panic payload (see [`spawn`](crate::spawn)). Use
    /// [`Builder::spawn_on`](crate::Builder::spawn_on) to get the error at
    /// spawn instead.
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        crate::expect_spawned(self.scheduler.spawn(SpawnOptions::default(), f))
    }

    /// A handle to this runtime, to spawn onto it from anywhere (see
    /// [`Handle`]). It outlives the runtime, but spawns through it fail once
    /// the runtime is dropped.
    pub fn handle(&self) -> Handle {
        Handle::new(self.scheduler.clone())
    }

    pub(crate) fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }

    /// Stack memory actually resident, over every slot ever carved, by
    /// `mincore(2)`: milliseconds for 10^6 stacks, and holds the pool's lock
    /// meanwhile. [`stats`](Self::stats) includes it, as 0 if this fails.
    pub fn resident_stack_bytes(&self) -> io::Result<usize> {
        self.scheduler.pool.resident_bytes()
    }

    /// A snapshot of the counters, plus resident stack memory by `mincore`
    /// (see [`resident_stack_bytes`](Self::resident_stack_bytes), which also
    /// reports the error that makes this field 0).
    pub fn stats(&self) -> Stats {
        let c = &self.scheduler.counters;
        let pool = &self.scheduler.pool;
        let spawned = c.spawned();
        let finished = c.finished();
        let (slots, pooled_stacks) = pool.slots_and_pooled();
        Stats {
            workers: self.threads.len(),
            live: spawned.saturating_sub(finished),
            spawned,
            finished,
            switches: c.switches(),
            steals: c.steals(),
            parks: c.parks(),
            worker_sleeps: c.sleeps(),
            compacted: c.compactions().saturating_sub(c.restores()),
            compactions: c.compactions(),
            compacted_bytes: c.compact_bytes(),
            slots,
            pooled_stacks,
            stacks_released: pool.stats.released.load(Ordering::Relaxed),
            stacks_verified_clean: pool.stats.verified_clean.load(Ordering::Relaxed),
            guard_mode: pool.mode(),
            stack_max: pool.default_size(),
            reserved_bytes: pool.stats.reserved_bytes.load(Ordering::Relaxed),
            resident_stack_bytes: pool.resident_bytes().unwrap_or(0),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let scheduler = &self.scheduler;
        // Set the shutdown flag; wait for outside spawns already admitted
        // (handle.rs).
        handle::close(scheduler);
        scheduler.idle.notify_all();
        let inside =
            context::with_worker(|w| w.is_some_and(|w| Arc::ptr_eq(&w.scheduler, scheduler)));
        if inside {
            // One of our own workers: it cannot join itself, and need not
            // join the others (they do not wait for it). Detach them all;
            // each cancels its tasks and exits, this one after the current
            // coroutine switches out.
            self.threads.clear();
            return;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // A spawn from outside may have raced the workers' last look.
        scheduler.cancel_injected();
        scheduler.timers.clear();
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.threads.len())
            .finish()
    }
}
