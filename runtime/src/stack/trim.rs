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
//! release), nothing resident, its label kept in the slab's side table. A
//! bare slot is handed out again before any new slot is carved.
//!
//! Invariants: the hot paths pay nothing (a worker's own cache, at most
//! `LOCAL_MAX` one-page stacks, is never trimmed; the check runs only on the
//! way to sleep); a busy pool is never trimmed (its traffic keeps moving);
//! and an idle one is trimmed even if nothing wakes its workers, because a
//! worker that leaves stacks to trim sleeps at most until the trim is due.
//! The pool's lock is held only to move a chunk of [`CHUNK`] stacks out and
//! back, and the trim stops as soon as the worker has work again. Figures:
//! `docs/notes/runtime-figures.md`.

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
    /// What a worker does on its way to sleep: release its dirty stacks,
    /// carve fresh slots ahead if spawns are waiting for them (`carve.rs`),
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
    /// and to put it back, so a spawn never waits for a release, and
    /// several sleeping workers trim in parallel; a chunk in transit is
    /// counted in its class's `trimming`, so that `pooled` never misses it.
    fn trim(&self, keep_going: impl Fn() -> bool) {
        loop {
            let (index, mut chunk) = {
                let mut classes = self.lock_classes();
                let Some(index) = classes.iter().position(|c| c.free.len() > RESERVE) else {
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
                    bare.extend(run_stacks.map(|s| s.into_label().as_ptr() as usize));
                }
            }
            let mut classes = self.lock_classes();
            let class = &mut classes[index];
            class.bare.append(&mut bare);
            class.trimming -= n;
            drop(classes);
            if !keep_going() {
                return;
            }
        }
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
