//! Runtime statistics: the numbers `spindle-bench` uses to explain memory.
//!
//! Counters are sharded per worker and written only by their owner (a plain
//! load and store, no locked instruction), so counting costs the hot paths
//! almost nothing. Reading them sums the shards; a snapshot taken while the
//! runtime runs is therefore approximate, one taken while it is quiet is exact.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

use crate::stack::guard::GuardMode;

/// One worker's counters.
#[derive(Default)]
pub(crate) struct WorkerCounters {
    spawned: AtomicU64,
    finished: AtomicU64,
    switches: AtomicU64,
    steals: AtomicU64,
    parks: AtomicU64,
    sleeps: AtomicU64,
    compactions: AtomicU64,
    restores: AtomicU64,
    /// Bytes in compaction buffers (wrapping: a signed sum).
    compact_bytes: AtomicU64,
}

fn bump(c: &AtomicU64) {
    // Single writer: no need for an atomic read-modify-write.
    c.store(c.load(Relaxed) + 1, Relaxed);
}

impl WorkerCounters {
    pub fn add_spawned(&self) {
        bump(&self.spawned)
    }
    pub fn add_finished(&self) {
        bump(&self.finished)
    }
    pub fn add_switch(&self) {
        bump(&self.switches)
    }
    pub fn add_steal(&self) {
        bump(&self.steals)
    }
    pub fn add_park(&self) {
        bump(&self.parks)
    }
    pub fn add_sleep(&self) {
        bump(&self.sleeps)
    }
    /// What a compaction pass or a restore did (`sched/compact.rs`).
    pub fn add_compaction(&self, out: &crate::sched::compact::Outcome) {
        let add = |c: &AtomicU64, v: u64| c.store(c.load(Relaxed).wrapping_add(v), Relaxed);
        add(&self.compactions, out.compacted);
        add(&self.restores, out.restored);
        add(&self.compact_bytes, out.bytes as u64);
    }
}

pub(crate) struct Counters {
    per_worker: Box<[CachePadded<WorkerCounters>]>,
    /// Spawns from threads outside the runtime (many writers: atomic add).
    external_spawned: AtomicU64,
    /// Tasks cancelled outside any worker (a spawn that raced shutdown).
    external_finished: AtomicU64,
}

impl Counters {
    pub fn new(workers: usize) -> Counters {
        Counters {
            per_worker: (0..workers).map(|_| CachePadded::default()).collect(),
            external_spawned: AtomicU64::new(0),
            external_finished: AtomicU64::new(0),
        }
    }

    pub fn worker(&self, index: usize) -> &WorkerCounters {
        &self.per_worker[index]
    }

    pub fn external_spawned(&self) {
        self.external_spawned.fetch_add(1, Relaxed);
    }

    pub fn external_finished(&self) {
        self.external_finished.fetch_add(1, Relaxed);
    }

    fn sum(&self, f: impl Fn(&WorkerCounters) -> &AtomicU64) -> u64 {
        self.per_worker.iter().map(|w| f(w).load(Relaxed)).sum()
    }

    pub fn spawned(&self) -> u64 {
        self.sum(|w| &w.spawned) + self.external_spawned.load(Relaxed)
    }

    pub fn finished(&self) -> u64 {
        self.sum(|w| &w.finished) + self.external_finished.load(Relaxed)
    }

    pub fn switches(&self) -> u64 {
        self.sum(|w| &w.switches)
    }

    pub fn steals(&self) -> u64 {
        self.sum(|w| &w.steals)
    }

    pub fn parks(&self) -> u64 {
        self.sum(|w| &w.parks)
    }

    pub fn sleeps(&self) -> u64 {
        self.sum(|w| &w.sleeps)
    }

    pub fn compactions(&self) -> u64 {
        self.sum(|w| &w.compactions)
    }

    pub fn restores(&self) -> u64 {
        self.sum(|w| &w.restores)
    }

    pub fn compact_bytes(&self) -> u64 {
        self.per_worker
            .iter()
            .fold(0u64, |a, w| a.wrapping_add(w.compact_bytes.load(Relaxed)))
    }
}

/// A snapshot of one runtime, from [`Runtime::stats`](crate::Runtime::stats).
#[derive(Clone, Debug)]
pub struct Stats {
    /// Worker threads.
    pub workers: usize,
    /// Coroutines spawned and not yet finished.
    pub live: u64,
    /// Coroutines ever spawned.
    pub spawned: u64,
    /// Coroutines that returned (or panicked).
    pub finished: u64,
    /// Coroutine resumes (each one is a switch in and a switch out).
    pub switches: u64,
    /// Successful steals from another worker's queue.
    pub steals: u64,
    /// Times a coroutine parked (blocked in recv, send, join, sleep, wait).
    pub parks: u64,
    /// Times a worker thread went to sleep for lack of work.
    pub worker_sleeps: u64,
    /// Parked coroutines whose stacks are compacted right now
    /// (`RuntimeBuilder::compact_after` and `compact_idle_sockets`; 0 when
    /// both are off).
    pub compacted: u64,
    /// Compactions so far.
    pub compactions: u64,
    /// Heap bytes holding compacted stacks right now.
    pub compacted_bytes: u64,
    /// Stack slots ever carved out of slabs.
    pub slots: usize,
    /// Stacks waiting in the pools for reuse.
    pub pooled_stacks: usize,
    /// Finished stacks whose deep pages were released with `MADV_DONTNEED`.
    pub stacks_released: usize,
    /// Finished stacks found clean without a system call: no page fault in
    /// the process since they were handed out (`stack/release.rs`).
    pub stacks_verified_clean: usize,
    /// How guard pages are made in this process.
    pub guard_mode: GuardMode,
    /// Default slot size (`stack_max`), guard page included.
    pub stack_max: usize,
    /// Address space reserved for stacks.
    pub reserved_bytes: usize,
    /// Stack memory actually resident (by `mincore`), over all slots; 0 if
    /// `mincore` failed (`Runtime::resident_stack_bytes` gives the error).
    pub resident_stack_bytes: usize,
}
