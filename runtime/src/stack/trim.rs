//! Trimming: an idle pool gives its stacks' memory back to the kernel.
//!
//! A finished stack keeps its top page resident, so after a
//! burst of 10^6 coroutines the global free lists hold 10^6 such pages, 4 GiB
//! on 4 KiB pages, that nobody may ever ask for again. Go's scavenger returns
//! unused heap and stack memory in the background; spindle does it on the
//! way to sleep. When a worker is about to sleep and the global free lists
//! have seen no traffic (no stack taken or given back) for [`TRIM_AFTER`],
//! it releases every stack beyond [`RESERVE`] per size class *whole*, top
//! page included, with `MADV_DONTNEED` in batches (`release.rs`), and keeps
//! it as a **bare slot**: address space and a guard (which survive the
//! release), nothing resident. Once the free lists are trimmed, the pages of
//! the bare slots' labels go too (48 bytes a slot in the slabs' side tables:
//! 61 MiB after a burst of 10^6); the pool keeps each bare slot's top
//! instead, and its label is written again when the slot is handed out,
//! which happens before any new slot is carved.
//!
//! After a burst of spawns, a worker on its way to sleep also asks malloc
//! to give back the free pages the burst left in its arenas, once no task
//! was spawned for a few milliseconds ([`StackPool::return_heap_after_burst`]).
//!
//! Invariants: the hot paths pay nothing (a worker's own cache, at most
//! `LOCAL_MAX` one-page stacks, is never trimmed; the check runs only on the
//! way to sleep); a busy pool is never trimmed (its traffic keeps moving);
//! and an idle one is trimmed even if nothing wakes its workers, because a
//! worker that leaves stacks to trim sleeps at most until the trim is due.
//! The pool's lock is held only to move a chunk of [`CHUNK`] stacks out and
//! back, and the trim stops as soon as the worker has work again. Figures:
//! `docs/notes/runtime-figures.md`.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::pool::{LocalStacks, StackPool, BATCH};
use super::release::release_ranges;

/// How long the global free lists must see no traffic before they are
/// trimmed.
pub(crate) const TRIM_AFTER: Duration = Duration::from_millis(200);
/// Stacks per size class that stay warm: a refill's worth for each of a few
/// workers.
const RESERVE: usize = 4 * BATCH;
/// Stacks released per hold of the pool's lock.
const CHUNK: usize = 4096;

/// A worker's view of the pool's traffic when it last went to sleep.
#[derive(Default)]
pub(crate) struct TrimClock {
    seen: Option<(usize, Instant)>,
}

impl StackPool {
    /// What a worker does on its way to sleep: release its dirty stacks
    /// and those other workers left unverified (`pool.rs`), carve fresh
    /// slots ahead if spawns are waiting for them (`carve.rs`),
    /// and trim the global free lists if they have been quiet for
    /// [`TRIM_AFTER`] (stopping early once `keep_going` says no). Returns
    /// how long the worker may sleep before it should come back to trim
    /// (`None`: nothing to trim).
    pub fn before_sleep(
        &self,
        local: &mut LocalStacks,
        keep_going: impl Fn() -> bool,
    ) -> Option<Duration> {
        self.release_dirty(local);
        // Finished stacks other workers left unverified (`pool.rs`): their
        // release is this worker's idle work, as long as it has no other.
        if !self.verify_deferred(&keep_going) {
            return None;
        }
        self.carve_ahead(&keep_going);
        let Some(traffic) = self.traffic_if_trimmable(RESERVE) else {
            local.trim.seen = None;
            return None;
        };
        match local.trim.seen {
            Some((seen, since)) if seen == traffic => {
                let quiet = since.elapsed();
                if quiet < TRIM_AFTER {
                    return Some(TRIM_AFTER - quiet);
                }
                local.trim.seen = None;
                self.trim(keep_going);
                None
            }
            _ => {
                local.trim.seen = Some((traffic, Instant::now()));
                Some(TRIM_AFTER)
            }
        }
    }

    /// Release all but [`RESERVE`] stacks of every global free list, whole,
    /// and keep them as bare slots. The lock is held only to take a chunk
    /// and to put it back, so a spawn never waits for a stack's release
    /// (it may wait for the labels' release at the end, see below), and
    /// several sleeping workers trim in parallel; a chunk in transit is
    /// counted in its class's `trimming`, so that `pooled` never misses it.
    fn trim(&self, keep_going: impl Fn() -> bool) {
        loop {
            let (index, mut chunk) = {
                let mut classes = self.lock_classes();
                let Some(index) = classes.iter().position(|c| c.free.len() > RESERVE) else {
                    // Done: the bare slots' labels go too, where slots
                    // became bare since the last time. Under the lock,
                    // because a spawn that takes a bare slot rewrites its
                    // label under it (`pool.rs`, `take`): at 10^6 bare slots
                    // the sort and the `madvise`s (one per slab's table)
                    // hold it about 40 ms, once after a burst. (Taking the
                    // list out instead left 29-44 MiB behind instead of 28:
                    // concurrent trims split it, so fewer pages were whole.)
                    for class in classes.iter_mut().filter(|c| c.labels_due) {
                        release_bare_labels(&mut class.bare);
                        class.labels_due = false;
                    }
                    drop(classes);
                    return_heap();
                    return;
                };
                let class = &mut classes[index];
                let n = (class.free.len() - RESERVE).min(CHUNK);
                class.trimming += n;
                (index, class.free.split_off(class.free.len() - n))
            };
            chunk.sort_unstable_by_key(|s| s.top());
            let runs = runs(&chunk);
            let ranges: Vec<(usize, usize)> = runs.iter().map(|r| r.range).collect();
            let failed = release_ranges(&ranges).err().unwrap_or_default();
            let n = chunk.len();
            let mut bare = Vec::with_capacity(n);
            let mut stacks = chunk.into_iter();
            for (i, run) in runs.iter().enumerate() {
                let run_stacks = stacks.by_ref().take(run.stacks);
                if failed.contains(&i) {
                    // Part of its memory may be gone: forget it (its slot
                    // stays mapped, unused), as `release_all` does.
                    run_stacks.for_each(std::mem::forget);
                } else {
                    bare.extend(run_stacks.map(|s| {
                        let top = s.top();
                        (s.into_label().as_ptr() as usize, top)
                    }));
                }
            }
            let mut classes = self.lock_classes();
            let class = &mut classes[index];
            class.labels_due = true;
            class.bare.append(&mut bare);
            class.trimming -= n;
            drop(classes);
            if !keep_going() {
                return;
            }
        }
    }
}

/// Give back the label pages of a class's bare slots: sorted by label
/// address, one call per stretch of consecutive labels (a slab's slots have
/// consecutive labels), whole pages only. Called with the pool's lock held.
/// A failure only leaves those labels resident; a page given back before
/// costs a system call that finds nothing to do.
fn release_bare_labels(bare: &mut [(usize, usize)]) {
    bare.sort_unstable();
    let size = std::mem::size_of::<super::slab::Label>();
    let mut i = 0;
    while i < bare.len() {
        let mut j = i + 1;
        while j < bare.len() && bare[j].0 == bare[j - 1].0 + size {
            j += 1;
        }
        let first = NonNull::new(bare[i].0 as *mut super::slab::Label).expect("non-null");
        // SAFETY: labels `i..j` lie back to back, so the range holds
        // nothing but them (live slabs' label tables; two tables mapped next
        // to each other may both contribute), all of bare slots: no Stack
        // describes them, and a hand-out, which rewrites a label
        // (`Stack::from_trimmed_slot`), needs the lock our caller holds.
        let _ = unsafe { super::slab::release_labels(first, j - i) };
        i = j;
    }
}

/// Stacks next to each other in one slab, released with one range.
struct Run {
    /// From above the first stack's guard to the last stack's top: the
    /// guards inside stay guards (`MADV_DONTNEED` keeps guard regions and
    /// does not touch an `mprotect`ed page's protection).
    range: (usize, usize),
    stacks: usize,
}

/// Group `sorted` (by address) into runs of adjacent slots.
fn runs(sorted: &[super::Stack]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for stack in sorted {
        let (from, len) = stack.whole_range();
        match runs.last_mut() {
            // The previous run ends at this slot's guard page.
            Some(run) if run.range.0 + run.range.1 + super::page::page_size() == from => {
                run.range.1 += super::page::page_size() + len;
                run.stacks += 1;
            }
            _ => runs.push(Run {
                range: (from, len),
                stacks: 1,
            }),
        }
    }
    runs
}

/// Spawns after which the allocator's free pages are given back once the
/// runtime is quiet ([`StackPool::return_heap_after_burst`]).
const HEAP_RETURN_SPAWNS: u64 = 1 << 16;
/// How long no task may be spawned before a burst counts as over.
const HEAP_QUIET: Duration = Duration::from_millis(10);

impl StackPool {
    /// A worker on its way to sleep, `spawned` tasks into the runtime's
    /// life: once [`HEAP_RETURN_SPAWNS`] were spawned since the last time
    /// and then none for [`HEAP_QUIET`], give the allocator's free pages
    /// back to the kernel, without waiting for [`TRIM_AFTER`] of quiet in
    /// the pool. A burst leaves free memory inside malloc's arenas that no
    /// trim of ours gives back: the buffers that a big queue or list left
    /// behind each time it doubled (a channel's wait queue, the workers'
    /// task registries and run queues, the pool's free lists). Once glibc
    /// has freed one `mmap`ed block, it serves blocks up to that size from
    /// its arenas (its dynamic `mmap` threshold), so those buffers stay
    /// resident: 36 to 70 bytes per parked coroutine after a burst of 10^6
    /// (`mem --breakdown`, figures in `docs/notes/runtime-figures.md`).
    /// Once per burst, on the idle path: the hot paths pay nothing.
    /// Returns how long the worker may sleep before it should come back
    /// (`None`: nothing due).
    pub fn return_heap_after_burst(
        &self,
        local: &mut LocalStacks,
        spawned: u64,
    ) -> Option<Duration> {
        let last = self.heap_returned_at.load(Ordering::Relaxed);
        if spawned.wrapping_sub(last) < HEAP_RETURN_SPAWNS {
            local.heap_seen = None;
            return None;
        }
        match local.heap_seen {
            Some((seen, since)) if seen == spawned => {
                let quiet = since.elapsed();
                if quiet < HEAP_QUIET {
                    return Some(HEAP_QUIET - quiet);
                }
                local.heap_seen = None;
                // One worker does it; the others see the new count.
                if self
                    .heap_returned_at
                    .compare_exchange(last, spawned, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    return_heap();
                }
                None
            }
            _ => {
                local.heap_seen = Some((spawned, Instant::now()));
                Some(HEAP_QUIET)
            }
        }
    }
}

/// Ask the allocator to give its free pages back too: the task blocks of a
/// burst are freed by then, but glibc keeps freed memory in its arenas.
/// (The task-block cache calls it too, after its own trim.)
pub(crate) fn return_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::guard;
    use crate::stack::page::page_size;

    /// A trim gives back the slots and the pages of their labels; a slot
    /// handed out again gets its label's geometry back.
    #[test]
    fn a_trim_releases_labels_and_reuse_restores_them() {
        let page = page_size();
        let pool = StackPool::new(16 * page, guard::mode().unwrap());
        // Enough slots for several pages of labels beyond the reserve.
        let n = RESERVE + 8 * page / std::mem::size_of::<super::super::slab::Label>();
        let stacks: Vec<_> = (0..n)
            .map(|_| pool.get(None, pool.default_size()).unwrap())
            .collect();
        let mut tops: Vec<usize> = stacks.iter().map(|s| s.top()).collect();
        for s in stacks {
            pool.put(None, s);
        }
        let label_pages = |pool: &StackPool| {
            let classes = pool.lock_classes();
            let slab = &classes[0].slabs[0];
            let first = slab.label(0).as_ptr() as usize;
            let len = (slab.count() * std::mem::size_of::<super::super::slab::Label>())
                .next_multiple_of(page);
            crate::stack::resident_bytes(first, len).unwrap() / page
        };
        let before = label_pages(&pool);
        pool.trim(|| true);
        let classes = pool.lock_classes();
        assert_eq!(classes[0].free.len(), RESERVE);
        assert_eq!(classes[0].bare.len(), n - RESERVE);
        drop(classes);
        let after = label_pages(&pool);
        assert!(
            after + 4 <= before,
            "label pages resident: {before} before, {after} after"
        );
        // Every slot comes back with its own top and size.
        let again: Vec<_> = (0..n)
            .map(|_| pool.get(None, pool.default_size()).unwrap())
            .collect();
        let mut back: Vec<usize> = again.iter().map(|s| s.top()).collect();
        assert!(again.iter().all(|s| s.size() == pool.default_size()));
        tops.sort_unstable();
        back.sort_unstable();
        assert_eq!(tops, back, "slots came back with other geometry");
        for s in again {
            pool.put(None, s);
        }
    }
}
