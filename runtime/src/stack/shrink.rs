//! Shrinking: a parked coroutine gives back the stack pages below its frames.
//!
//! A stack grows by demand paging and, until now, shrank only when its
//! coroutine finished. A long-lived coroutine that once recursed 200 KiB
//! deep kept 200 KiB while it waited. But everything below a parked
//! coroutine's stack pointer is dead: nothing may read it before the
//! coroutine runs again, and when it does, its next frames overwrite it. So
//! those pages can be released with `MADV_DONTNEED`; the next touch gets a
//! fresh zero page (Go shrinks stacks too, at GC time, by copying them to a
//! smaller one; spindle cannot move a stack, so it releases the dead part).
//!
//! **Where the stack pointer is.** corosensei keeps the stack pointer of a
//! suspended coroutine to itself. So the coroutine records it just before
//! it switches out (`sched/context.rs`, `suspend`): one inline read of the
//! `rsp`/`sp` register ([`stack_pointer`]) and one plain store into its
//! heap task state (no system call, no locked instruction). The switch
//! itself then writes a little below that point: the frame of corosensei's
//! `Yielder::suspend` if it is not inlined, and the registers its
//! `switch_yield` saves: `push rbp; push rbx; push rax` (24 bytes) on
//! x86_64 (corosensei 0.3.4, `src/arch/x86_64.rs`), `stp x19, x29, [sp,
//! #-32]!` (32 bytes) on aarch64 (`src/arch/aarch64.rs`). [`MARGIN`] keeps
//! 2 KiB below the recorded point on both; the unit test below measures
//! how deep the switch really writes and fails if that is more.
//!
//! **The word.** The task keeps one *shrink word*: the recorded stack
//! pointer, with two flag bits in its low bits (it is 16-byte aligned when
//! stored): [`SEEN`] (a shrink pass has seen the coroutine parked at this
//! point once) and [`SHRUNK`] (its dead pages are released). Every switch
//! out writes a fresh word with both bits clear. Only the home worker
//! writes or reads it: the coroutine writes it while running there (a
//! started coroutine never leaves its home, `sched/worker.rs`), and the
//! home worker's pass reads and flags it between two coroutines, when none
//! of them runs. So the word needs no synchronisation at all.
//!
//! **The pass** ([`ShrinkPass`]) is Go's scavenger in miniature, run by
//! each worker for its own coroutines: a started coroutine runs only on its
//! home worker, so while that worker runs the pass, none of its coroutines
//! runs, and no wake-up needs to be synchronised with it (a waker only
//! queues the task; the worker resumes it after the pass). The worker runs
//! it on its way to sleep and, so that a worker that never sleeps shrinks
//! too, every 61st scheduling round after a clock check; at most once per
//! [`INTERVAL`], and after a long pass (a worker with 10^5 coroutines takes
//! milliseconds to look at them all) only after [`DUTY`] times its
//! duration, so the passes cost at most about 2% of a busy worker's time.
//! Between passes the worker looks only if a coroutine ran since the last
//! one. A pass looks at every started task's word (up to a
//! budget): a fresh word gets [`SEEN`]; a word still `SEEN` a pass later
//! (parked for at least one interval, and not resumed since, or the word
//! would be fresh) has the pages from above the guard up to the page below
//! `sp - MARGIN` released, batched into one `process_madvise` per 64
//! ranges, and gets [`SHRUNK`], so it costs nothing more until the
//! coroutine runs again. Pages at and above that point stay: they hold the
//! live frames. A shrunk stack's dead pages come back as zero pages, on
//! demand, when the coroutine calls deeper again.
//!
//! **Release bookkeeping.** The pool skips the release of a finished stack
//! when the process's page-fault count has not moved since its hand-out
//! (`release.rs`): then nothing below its top page can be resident. A
//! shrink only removes pages, and every page touched again arrives by a
//! fault that moves the count, so that reasoning still holds.
//!
//! The slot of a recorded stack pointer is found from the slab registry
//! (`slab.rs`), copied and sorted once per pass. Figures:
//! `docs/notes/shrink.md`.

/// Bytes below the recorded stack pointer that the switch may still write
/// (see the module docs): 24 measured in a release build, 616 in a debug
/// build on x86_64 (where `Yielder::suspend` is not inlined), 32 in a
/// release build on aarch64 (under qemu-user). A multiple of
/// 16, so that the flags fit below it.
pub(crate) const MARGIN: usize = 2048;

/// How often a worker's pass may run, at most, and so how long a coroutine
/// must stay parked (seen by one pass, still parked at the same point at
/// the next) before its pages go: between one and two intervals.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);
/// A pass waits at least this many times its own duration before the next
/// one, so that the passes take at most about 2% of a busy worker's time,
/// however many coroutines it has to look at.
const DUTY: u32 = 50;
/// Most coroutines one pass looks at; the next pass goes on from there, so
/// a worker with 10^6 parked coroutines spreads the walk over many passes.
const BUDGET: usize = 1 << 16;
/// A pass that has looked at [`MIN_SLICE`] coroutines asks, every
/// [`SLICE`], whether its worker has work waiting, and if so stops there
/// (the next pass goes on): a pass that releases a range for each of 65,536
/// coroutines takes a good part of a second, which a wake-up must not wait.
const SLICE: usize = 64;
const MIN_SLICE: usize = 1024;

/// Shrink word flag: a pass has seen the coroutine parked at this point.
pub(crate) const SEEN: usize = 1;
/// Shrink word flag: its pages below the recorded point are released.
pub(crate) const SHRUNK: usize = 2;
const FLAGS: usize = 15;

/// The shrink word a coroutine stores when it switches out with its stack
/// pointer at `sp`: `sp` rounded down to 16 bytes, flags clear. Zero means
/// "not recorded" (and is what an architecture without a reader stores).
#[inline(always)]
pub(crate) fn word_for(sp: usize) -> usize {
    sp & !FLAGS
}

/// The stack pointer recorded in a shrink word (its flags cleared); zero if
/// none was recorded.
#[inline(always)]
pub(crate) fn stack_pointer_of(word: usize) -> usize {
    word & !FLAGS
}

/// One worker's shrink pass: when it is due, and what it found last time.
/// Lives in the worker, used only by its thread.
pub(crate) struct ShrinkPass {
    /// When the last pass ran (`None`: never).
    last: Option<Instant>,
    /// Time from one pass to the next: [`INTERVAL`], or [`DUTY`] times the
    /// last pass's duration if that is longer.
    interval: Duration,
    /// The worker's scheduling tick at the last pass: if it has not moved,
    /// no coroutine ran since, and only `pending` ones need another look.
    tick: u32,
    /// Some coroutine was seen parked but not shrunk yet, or the last pass
    /// stopped at its budget: the next pass has work.
    pending: bool,
    /// Where the next pass starts in the worker's list of tasks.
    cursor: usize,
    /// Slabs by address, for finding a stack pointer's slot.
    slabs: Vec<(usize, usize, usize)>,
    /// Ranges waiting for one batched release.
    ranges: Vec<(usize, usize)>,
}

impl ShrinkPass {
    pub fn new() -> ShrinkPass {
        ShrinkPass {
            last: None,
            interval: INTERVAL,
            tick: 0,
            pending: false,
            cursor: 0,
            slabs: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// Should a pass run now? `tick` is the worker's scheduling tick.
    pub fn due(&self, now: Instant, tick: u32) -> bool {
        (self.pending || tick != self.tick) && self.last.is_none_or(|t| now - t >= self.interval)
    }

    /// How long a worker about to sleep may wait before the next pass has
    /// work to do (`None`: no pass needed until a coroutine runs).
    pub fn sleep_for(&self, now: Instant) -> Option<Duration> {
        if !self.pending {
            return None;
        }
        Some(
            self.last
                .map_or(Duration::ZERO, |t| self.interval.saturating_sub(now - t)),
        )
    }

    /// Run a pass over `tasks` (a worker's started tasks): `word` reads a
    /// task's shrink word (`None` if the task has finished), `set` writes
    /// one back, `keep_going` says whether the worker has no work waiting.
    ///
    /// # Safety
    /// The caller is the home worker of every task in `tasks`, between two
    /// coroutines (none of them is running), and every word `word` returns
    /// is what a started, unfinished coroutine that still owns its stack
    /// stored when it last switched out ([`word_for`]), or that word as an
    /// earlier pass flagged it (or zero).
    pub unsafe fn run<T>(
        &mut self,
        now: Instant,
        tick: u32,
        tasks: &[T],
        word: impl Fn(&T) -> Option<usize>,
        set: impl Fn(&T, usize),
        keep_going: impl Fn() -> bool,
    ) {
        self.last = Some(now);
        self.tick = tick;
        self.pending = false;
        super::slab::registry::snapshot(&mut self.slabs);
        if self.cursor >= tasks.len() {
            self.cursor = 0;
        }
        let start = self.cursor;
        let mut end = tasks.len().min(start + BUDGET);
        for (i, task) in tasks.iter().enumerate().take(end).skip(start) {
            if (i - start) % SLICE == 0 && i - start >= MIN_SLICE && !keep_going() {
                end = i;
                break;
            }
            let Some(old) = word(task) else { continue };
            let new = self.visit(old);
            if new != old {
                set(task, new);
            }
            if self.ranges.len() >= super::release::MAX_BATCH {
                self.flush();
            }
        }
        self.flush();
        if end < tasks.len() {
            self.pending = true;
        }
        self.cursor = end;
        self.interval = INTERVAL.max(now.elapsed() * DUTY);
    }

    /// Age one coroutine's word by a pass, queueing its release when it has
    /// stayed parked at the same point since the previous pass.
    fn visit(&mut self, word: usize) -> usize {
        let sp = word & !FLAGS;
        if sp == 0 || word & SHRUNK != 0 {
            return word;
        }
        if word & SEEN == 0 {
            self.pending = true;
            return word | SEEN;
        }
        if let Some(range) = self.dead_range(sp) {
            self.ranges.push(range);
        }
        word | SHRUNK
    }

    /// The dead pages of the slot holding `sp`: from above its guard page
    /// up to the page boundary at or below `sp - MARGIN`.
    fn dead_range(&self, sp: usize) -> Option<(usize, usize)> {
        let i = self.slabs.partition_point(|&(base, _, _)| base <= sp);
        let &(base, len, slot_size) = self.slabs.get(i.checked_sub(1)?)?;
        if sp - base >= len {
            return None;
        }
        let page = page_size();
        let slot = base + (sp - base) / slot_size * slot_size;
        let from = slot + page;
        let to = sp.saturating_sub(MARGIN) / page * page;
        (to > from).then_some((from, to - from))
    }

    /// Release the queued ranges, many per system call (`release.rs`). A
    /// range that cannot be released just stays resident.
    fn flush(&mut self) {
        let _ = super::release::release_ranges(&self.ranges);
        self.ranges.clear();
    }
}

/// The calling function's stack pointer, or 0 on an architecture whose
/// register we do not read (then nothing is ever shrunk).
#[inline(always)]
pub(crate) fn stack_pointer() -> usize {
    #[allow(unused_mut)]
    let mut sp = 0usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: copies a register; touches no memory, no flags, no stack.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    sp
}

use std::time::{Duration, Instant};

use super::page::page_size;

#[cfg(all(test, not(loom)))]
pub(crate) mod tests {
    use super::*;
    use crate::coroutine::Suspend;
    use corosensei::stack::DefaultStack;
    use corosensei::{Coroutine, CoroutineResult};

    const PATTERN: u8 = 0xA5;
    const PROBE: usize = 4096;

    /// How far below the recorded stack pointer a switch out writes, in
    /// bytes; `None` on an architecture whose stack pointer we do not read
    /// (where nothing is shrunk or compacted). The coroutine fills the 4 KiB
    /// below its stack pointer with a pattern, records it and suspends as
    /// `context::suspend` does; the parent then looks for the lowest byte
    /// the switch changed. Checked against this file's [`MARGIN`] below and
    /// against compaction's (`sched/compact.rs`).
    pub(crate) fn switch_write_depth() -> Option<usize> {
        if stack_pointer() == 0 {
            return None;
        }
        let mut co: Coroutine<(), Suspend, (), DefaultStack> = Coroutine::new(|yielder, ()| {
            let sp = std::hint::black_box(stack_pointer());
            SP.with(|c| c.set(sp));
            for a in sp - PROBE..sp {
                // SAFETY: dead memory of this coroutine's stack, below its
                // stack pointer; no call runs between this and the switch.
                unsafe { (a as *mut u8).write_volatile(PATTERN) };
            }
            yielder.suspend(Suspend::Park);
        });
        thread_local! { static SP: std::cell::Cell<usize> = const { std::cell::Cell::new(0) }; }
        assert!(matches!(
            co.resume(()),
            CoroutineResult::Yield(Suspend::Park)
        ));
        let sp = SP.with(|c| c.get());
        let lowest = (sp - PROBE..sp)
            // SAFETY: the coroutine's stack is mapped while `co` lives.
            .find(|&a| unsafe { (a as *const u8).read_volatile() } != PATTERN)
            .expect("the switch saved something below the stack pointer");
        assert!(matches!(co.resume(()), CoroutineResult::Return(())));
        Some(sp - lowest)
    }

    #[test]
    fn the_switch_writes_within_the_margin() {
        let Some(depth) = switch_write_depth() else {
            return; // an architecture we do not read: nothing is shrunk
        };
        eprintln!("the switch wrote {depth} bytes below the recorded stack pointer");
        assert!(depth <= MARGIN, "{depth} > MARGIN ({MARGIN})");
    }

    #[test]
    fn a_pass_ages_then_releases_the_dead_pages() {
        use crate::stack::pool::StackPool;
        use std::cell::Cell;
        let page = page_size();
        let pool = StackPool::new(64 * page, crate::stack::guard::mode().unwrap());
        let stack = pool.get(None, pool.default_size()).unwrap();
        let top = stack.top();
        for i in 1..=60 {
            // SAFETY: inside the slot, above the guard (the slot has 64 pages).
            unsafe { ((top - i * page) as *mut u8).write_volatile(1) };
        }
        assert_eq!(stack.resident_bytes().unwrap(), 60 * page);
        // A coroutine parked 3 pages below the top (and 40 bytes more).
        let words = [Cell::new(word_for(top - 3 * page - 40)), Cell::new(0)];
        let mut pass = ShrinkPass::new();
        let t0 = Instant::now();
        let run = |pass: &mut ShrinkPass, at: Instant| {
            // SAFETY: no coroutine runs; the words describe our own stack.
            unsafe { pass.run(at, 1, &words, |w| Some(w.get()), |w, v| w.set(v), || true) }
        };
        run(&mut pass, t0);
        assert_eq!(words[0].get() & FLAGS, SEEN, "the first pass only ages it");
        assert_eq!(stack.resident_bytes().unwrap(), 60 * page);
        // (The interval is INTERVAL unless this machine made the pass slow.)
        let t1 = t0 + pass.interval;
        assert!(pass.interval >= INTERVAL);
        assert!(pass.due(t1, 1), "a seen coroutine brings the pass back");
        assert!(!pass.due(t0 + pass.interval / 2, 1));
        run(&mut pass, t1);
        assert_eq!(words[0].get() & FLAGS, SEEN | SHRUNK);
        // Kept: the page holding the stack pointer, what lies within MARGIN
        // below it, and everything above.
        let kept = (top - (top - 3 * page - 48 - MARGIN) / page * page) / page;
        assert_eq!(stack.resident_bytes().unwrap(), kept * page);
        assert_eq!(words[1].get(), 0, "an unrecorded word is left alone");
        let t2 = t1 + pass.interval;
        assert!(!pass.due(t2, 1), "nothing ran, nothing pending");
        assert!(pass.due(t2, 2), "something ran");
        pool.put(None, stack);
    }
}
