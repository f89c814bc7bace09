//! The compaction pass of one worker (`RuntimeBuilder::compact_after` and
//! `compact_idle_sockets`).
//!
//! A coroutine that stays parked longer than `after` has its stack
//! compacted by its home worker (`stack/compact/`: the live bytes go to a
//! heap buffer, the pages go back to the kernel, the range faults until the
//! bytes are back). The worker is the right place: a started coroutine only
//! ever runs there (it is pinned), so between two resumes nothing else runs
//! on that stack, and the same worker restores it before the next resume.
//!
//! **Who is queued.** With `compact_after`, every coroutine that parks.
//! Otherwise (the default, `compact_idle_sockets`), only one that parks on
//! a socket (`Suspend::ParkOnSocket`): a wait of unknown length, often
//! seconds or hours for an idle connection, while a channel or lock wait in
//! a busy program is short and would pay for the queueing for nothing.
//!
//! **Who is old enough.** When a coroutine of this worker parks, the worker
//! writes a *stamp* (milliseconds since the compactor started, never 0,
//! below bit 31) into the task's compaction word and queues the task with
//! it. The queue is in park order, so the pass only looks at its front: a
//! task whose stamp is older than `after` is compacted if it is still
//! parked with that same stamp (a task that ran since has a new stamp or
//! none). A compacted task's word is [`COMPACTED`] plus its slot's key in
//! the side table (`stack/compact/table.rs`). Stamps are milliseconds, so a
//! task that parks, wakes and parks again within one is queued twice with
//! the same stamp: the pass clears the word as it takes the first entry,
//! and the second no longer matches. (Compacting one stack twice would
//! copy out the zeros the first compaction left, and the coroutine would
//! resume on them.)
//!
//! **Hot path.** With compaction off the worker has no compactor and
//! nothing here runs. With it on, a queued park costs a clock read, a
//! reference count and a queue push (with sockets only, a channel park
//! costs one test of the policy); a resume costs one load of the compaction
//! word.
//!
//! **When the pass runs.** Every `GLOBAL_POLL_INTERVAL` rounds of a busy
//! worker (at most [`BUSY_BATCH`] compactions then, so running coroutines
//! wait little), and before a worker sleeps (until nothing is due or work
//! arrives); a sleeping worker sets its timeout to the next due compaction.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::CompactPolicy;
use crate::stack::compact::pages::{self, SlotPages};
use crate::stack::compact::{self as protocol, table};
use crate::stack::guard::GuardMode;
use crate::stack::page::page_size;
use crate::stack::shrink;
use crate::task::TaskRef;

/// Compaction word flag: the task's stack is compacted; the low bits are
/// its slot key.
pub(crate) const COMPACTED: u32 = 1 << 31;
/// Stamps wrap below this (about 24 days of milliseconds).
const STAMP_MOD: u64 = (1 << 31) - 1;
/// Most compactions per pass on a busy worker (every 61 rounds: enough
/// to keep up with a coroutine parking every round).
pub(crate) const BUSY_BATCH: usize = 128;
/// Most compactions per pass on a worker about to sleep (it checks for
/// work between passes).
pub(crate) const IDLE_BATCH: usize = 256;

/// Bytes kept below the recorded stack pointer: what the switch writes
/// there (its saved registers, read back at resume). `shrink::MARGIN`
/// (2 KiB) covers a debug build, where `Yielder::suspend` is not inlined;
/// a release build writes 24 bytes on x86_64 (`stack/shrink.rs`), so it
/// keeps 128. The unit test below measures the real depth in the profile
/// under test (CI runs it in release, on x86_64 and aarch64).
pub(crate) const MARGIN: usize = if cfg!(debug_assertions) {
    shrink::MARGIN
} else {
    128
};

/// What a worker's counters learn from a pass or a restore.
#[derive(Default)]
pub(crate) struct Outcome {
    pub compacted: u64,
    pub restored: u64,
    /// Buffer bytes (encoded, `stack/compact/words.rs`) allocated minus freed.
    pub bytes: i64,
}

pub(crate) struct Compactor {
    after_ms: u64,
    /// Every park is queued (`compact_after`), or only parks on a socket
    /// (`compact_idle_sockets`).
    every_park: bool,
    started: Instant,
    mode: GuardMode,
    /// Tasks of this worker in park order, with the stamp they parked with.
    parked: RefCell<VecDeque<(TaskRef, u32)>>,
    /// Stamp of the last clock read, to spare a read per park in a burst.
    now_ms: Cell<u64>,
    /// The slabs of this worker's stacks, for their side-table keys.
    slabs: RefCell<table::SlabCache>,
}

impl Compactor {
    pub fn new(policy: CompactPolicy) -> Compactor {
        Compactor {
            after_ms: (policy.after.as_millis() as u64).max(1),
            every_park: policy.every_park,
            started: Instant::now(),
            mode: pages::mode(),
            parked: RefCell::new(VecDeque::new()),
            now_ms: Cell::new(0),
            slabs: RefCell::new(table::SlabCache::default()),
        }
    }

    fn clock_ms(&self) -> u64 {
        let ms = self.started.elapsed().as_millis() as u64;
        self.now_ms.set(ms);
        ms
    }

    fn stamp(ms: u64) -> u32 {
        (ms % STAMP_MOD) as u32 + 1
    }

    /// How long ago (ms) a stamp was taken, given the clock now.
    fn age(&self, stamp: u32, now_ms: u64) -> u64 {
        (Self::stamp(now_ms) as u64 + STAMP_MOD - stamp as u64) % STAMP_MOD
    }

    /// Whether every park is queued, or only parks on a socket.
    #[inline(always)]
    pub fn every_park(&self) -> bool {
        self.every_park
    }

    /// A task of this worker has just parked.
    pub fn parked(&self, task: &TaskRef) {
        let stamp = Self::stamp(self.clock_ms());
        task.task().set_compact_word(stamp);
        self.parked.borrow_mut().push_back((task.clone(), stamp));
    }

    /// Time until the oldest parked task is due, if any is queued.
    pub fn due_in(&self) -> Option<Duration> {
        let parked = self.parked.borrow();
        let &(_, stamp) = parked.front()?;
        let age = self.age(stamp, self.clock_ms());
        Some(Duration::from_millis(self.after_ms.saturating_sub(age)))
    }

    /// Compact up to `budget` due tasks, in one batch. Returns what it
    /// did, and whether more are due right now.
    pub fn pass(&self, budget: usize) -> (Outcome, bool) {
        if self.parked.borrow().is_empty() {
            // Nothing queued (the usual case when only sockets are
            // compacted): spare the clock read.
            return (Outcome::default(), false);
        }
        let now = self.clock_ms();
        let mut batch: Vec<(TaskRef, u32, SlotPages<'static>)> = Vec::new();
        let more = loop {
            let (task, stamp) = {
                let mut parked = self.parked.borrow_mut();
                match parked.front() {
                    Some(&(_, stamp)) if self.age(stamp, now) >= self.after_ms => {}
                    _ => break false,
                }
                if batch.len() == budget {
                    break true;
                }
                parked.pop_front().expect("front was just seen")
            };
            let t = task.task();
            if t.compact_word() != stamp || !t.state.is_parked() {
                continue; // ran since, or is about to
            }
            // Taken: a task that parked twice within one millisecond is
            // queued twice with the same stamp, and its second entry must
            // not match (both would land in this batch, and a second copy
            // out would save the zeros of the pages the first released).
            // The word becomes `COMPACTED | key` below, or stays 0.
            t.set_compact_word(0);
            if let Some((key, mem)) = self.slot_of(&task) {
                batch.push((task, key, mem));
            }
        };
        let mut out = Outcome::default();
        if batch.is_empty() {
            return (out, more);
        }
        let slots: Vec<SlotPages<'static>> = batch.iter().map(|b| b.2.clone()).collect();
        let done = protocol::compact_many(&slots);
        for ((task, key, mem), ok) in batch.into_iter().zip(done) {
            if ok {
                task.task().set_compact_word(COMPACTED | key);
                out.compacted += 1;
                out.bytes += mem.record.buf_len.load(Ordering::Relaxed) as i64;
            }
        }
        (out, more)
    }

    /// Where a parked task's live stack is, ready to compact: its slot's
    /// key and pages. `None` if there is nothing sensible to compact.
    fn slot_of(&self, task: &TaskRef) -> Option<(u32, SlotPages<'static>)> {
        // The shrink word is the stack pointer at the switch out, 16-byte
        // aligned, with flags in its low 4 bits (`stack/shrink.rs`).
        let sp = shrink::stack_pointer_of(task.task().shrink_word());
        if sp == 0 {
            return None;
        }
        let (key, slot_base, top) = self.slabs.borrow_mut().locate(sp)?;
        let record = table::record(key);
        let lo = sp.checked_sub(MARGIN)? & !15;
        if lo >= top || lo < slot_base + page_size() {
            return None;
        }
        let mem = SlotPages {
            record,
            top,
            lo,
            slot_base,
            mode: self.mode,
        };
        // A buffer a faulting thread left behind (it cannot be here: the
        // resume that followed freed it).
        protocol::reclaim(&record.state, &mem);
        Some((key, mem))
    }
}

/// Before `task` runs (or is unwound) on its home worker: if its stack is
/// compacted, put it back. Returns what it did, for the counters.
#[inline]
pub(crate) fn ensure_resident(task: &TaskRef) -> Option<Outcome> {
    let word = task.task().compact_word();
    if word & COMPACTED == 0 {
        return None;
    }
    Some(restore(task, word))
}

#[cold]
fn restore(task: &TaskRef, word: u32) -> Outcome {
    let t = task.task();
    let record = table::record(word & !COMPACTED);
    let held = record.buf_len.load(std::sync::atomic::Ordering::Relaxed);
    let mem = SlotPages {
        record,
        top: table::top(word & !COMPACTED).expect("a compacted slot's slab is registered"),
        lo: 0,
        slot_base: 0,
        mode: pages::mode(),
    };
    protocol::restore_for_resume(&record.state, &mem);
    t.set_compact_word(0);
    Outcome {
        compacted: 0,
        restored: 1,
        bytes: -(held as i64),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The switch out writes no deeper than [`MARGIN`] below the recorded
    /// stack pointer, in the profile under test (the same measurement as
    /// `shrink.rs`, against compaction's smaller release margin).
    #[test]
    #[cfg_attr(spindle_asan, ignore = "ASan's fake stacks change the frames")]
    fn the_switch_writes_within_the_compaction_margin() {
        let Some(depth) = shrink::tests::switch_write_depth() else {
            return; // an architecture we do not read: nothing is compacted
        };
        assert!(depth <= MARGIN, "{depth} > MARGIN ({MARGIN})");
    }

    #[test]
    fn stamps_age_across_the_wrap() {
        let c = Compactor::new(CompactPolicy {
            after: Duration::from_millis(10),
            every_park: true,
        });
        assert_eq!(c.age(Compactor::stamp(5), 15), 10);
        let wrap = STAMP_MOD;
        assert_eq!(c.age(Compactor::stamp(wrap - 3), wrap + 7), 10);
        assert!(Compactor::stamp(wrap - 1) < COMPACTED && Compactor::stamp(wrap) != 0);
    }
}
