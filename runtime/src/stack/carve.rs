//! Carving: turning never-used slab slots into stacks, in batches, outside
//! the pool's lock, and ahead of time by workers with nothing to do.
//!
//! A fresh slot costs the kernel work no warm spawn pays: its guard
//! (`guard.rs`; a page-table walk per slot, even in one batched call) and
//! the page fault that makes its top page resident when the coroutine
//! first runs. Together that is most of a cold spawn (figures:
//! `docs/notes/cold-paths.md`). Two things keep it off the critical path:
//!
//! * **Outside the lock.** The pool's lock is held only to *reserve* a run
//!   of slot indices ([`StackPool::reserve_fresh`]); guards and labels are
//!   done after it is dropped ([`StackPool::prepare_fresh`]), so several
//!   workers carve in parallel and a warm refill never waits behind one.
//! * **Ahead of time.** When a refill had to carve, spawns are outrunning
//!   the pool: a worker on its way to sleep then carves a batch into the
//!   global free list ([`StackPool::carve_ahead`]), so the spawning worker
//!   finds stacks ready and the two cores share the kernel work, as Go's
//!   do. It stops when the free list holds [`AHEAD`] stacks, and as soon
//!   as the worker has work again.
//!
//! Invariant: a reserved slot belongs to the carver alone until it is
//! handed out (nothing else knows its index), and it is handed out only
//! with its guard installed. Its label lives in the slab's side table
//! (`slab.rs`), written when the slab was reserved.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use super::guard::{self, GuardMode};
use super::page::page_size;
use super::pool::{class_for, slots_per_slab, SizeClass, StackPool, BATCH};
use super::slab::{Label, Slab};
use super::vma_budget;
use super::Stack;

/// Most stacks carved ahead into the global free list, in all: two
/// refills' worth, which the trim leaves alone (`trim.rs`).
pub const AHEAD: usize = 2 * BATCH;

/// Slots reserved under the lock, to be made stacks outside it.
pub(super) struct Reserved {
    /// Each slot's lowest address (its guard page).
    bases: Vec<usize>,
    /// Each slot's label in its slab's side table, in the same order.
    labels: Vec<NonNull<Label>>,
}

impl StackPool {
    /// Reserve up to `want` never-used slots of `class` (at least one, or
    /// an error), reserving a new slab when the last one is used up. The
    /// caller holds the `classes` lock.
    pub(super) fn reserve_fresh(&self, class: &mut SizeClass, want: usize) -> io::Result<Reserved> {
        let mut reserved = Reserved {
            bases: Vec::with_capacity(want),
            labels: Vec::with_capacity(want),
        };
        while reserved.bases.len() < want {
            match self.reserve_some(class, want - reserved.bases.len(), &mut reserved) {
                Ok(()) => {}
                Err(e) if reserved.bases.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(reserved)
    }

    /// Reserve at most `want` slots from the last slab (a new one if it is
    /// full), appending them to `reserved`.
    fn reserve_some(
        &self,
        class: &mut SizeClass,
        want: usize,
        reserved: &mut Reserved,
    ) -> io::Result<()> {
        let full = class
            .slabs
            .last()
            .is_none_or(|s| class.next_fresh == s.count());
        if full {
            if self.mode() == GuardMode::Mprotect {
                // The slab and its label table (`slab.rs`): a map each.
                vma_budget::reserve(2)?;
            }
            let slab = Slab::reserve(class.slot_size, slots_per_slab(class.slot_size))?;
            self.stats
                .reserved_bytes
                .fetch_add(slab.reserved_bytes(), Ordering::Relaxed);
            class.slabs.push(slab);
            class.next_fresh = 0;
        }
        let slab = class.slabs.last().expect("a slab was just ensured");
        let n = want.min(slab.count() - class.next_fresh);
        for _ in 0..n {
            if self.mode() == GuardMode::Mprotect {
                // Each guarded slot splits the slab: two more VMAs.
                vma_budget::reserve(2)?;
            }
            reserved
                .bases
                .push(slab.slot_base(class.next_fresh) as usize);
            reserved.labels.push(slab.label(class.next_fresh));
            class.next_fresh += 1;
            self.stats.slots.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Install the guards of `reserved` (one system call for up to 64
    /// where the kernel allows it) and make them stacks; called without the
    /// lock. If a guard cannot be installed, the slots are given up (they
    /// stay reserved, unused) and the error returned.
    pub(super) fn prepare_fresh(&self, reserved: Reserved) -> io::Result<Vec<Stack>> {
        let page = page_size();
        match self.mode() {
            GuardMode::Regions => {
                let ranges: Vec<(usize, usize)> =
                    reserved.bases.iter().map(|&base| (base, page)).collect();
                // SAFETY: the first page of never-used slots of our slabs,
                // reserved by us alone.
                unsafe { guard::install_regions(&ranges)? };
            }
            GuardMode::Mprotect => {
                for &base in &reserved.bases {
                    // SAFETY: as above, for one slot.
                    unsafe { guard::install(GuardMode::Mprotect, base as *mut u8, page)? };
                }
            }
        }
        Ok(reserved
            .labels
            .into_iter()
            .map(|label| {
                // SAFETY: the slot is inside a live slab, guarded, ours
                // alone, and becomes this one Stack.
                unsafe { Stack::from_bare_slot(label) }
            })
            .collect())
    }

    /// On the way to sleep: if spawns lately waited for fresh slots, carve
    /// batches of the default size into the global free list until it
    /// holds [`AHEAD`] stacks or `keep_going` says stop.
    pub(super) fn carve_ahead(&self, keep_going: &impl Fn() -> bool) {
        while self.fresh_wanted.load(Ordering::Relaxed) && keep_going() {
            let reserved = {
                let mut classes = self.lock_classes();
                let class = class_for(&mut classes, self.default_size());
                let ready = class.free.len() + class.bare.len();
                if ready >= AHEAD {
                    self.fresh_wanted.store(false, Ordering::Relaxed);
                    return;
                }
                match self.reserve_fresh(class, BATCH.min(AHEAD - ready)) {
                    Ok(reserved) => {
                        // In transit to the free list: pooled, for the
                        // count (`SizeClass::carving`).
                        class.carving += reserved.bases.len();
                        reserved
                    }
                    Err(_) => return,
                }
            };
            let n = reserved.bases.len();
            let prepared = self.prepare_fresh(reserved);
            let mut classes = self.lock_classes();
            let class = class_for(&mut classes, self.default_size());
            class.carving -= n;
            match prepared {
                Ok(stacks) => {
                    class.free.extend(stacks);
                    self.traffic.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carving_ahead_fills_the_free_list_only_when_fresh_slots_were_wanted() {
        let pool = StackPool::new(16 * page_size(), guard::mode().unwrap());
        pool.carve_ahead(&|| true);
        assert_eq!(pool.pooled(), 0, "nobody wanted fresh slots");
        // A worker's cache runs dry on a fresh pool: its refill carves.
        let mut local = pool.new_local();
        let _first = pool.get(Some(&mut local), pool.default_size()).unwrap();
        assert!(pool.fresh_wanted.load(Ordering::Relaxed));
        pool.carve_ahead(&|| true);
        assert_eq!(
            pool.pooled(),
            (BATCH - 1) + AHEAD,
            "cache plus carved ahead"
        );
        assert!(!pool.fresh_wanted.load(Ordering::Relaxed), "satisfied");
        // Stacks carved ahead are fresh slots: guard in place, nothing
        // resident yet (the label lives in the slab's side table).
        let page = page_size();
        let mut got = Vec::new();
        for _ in 0..AHEAD + BATCH {
            got.push(pool.get(Some(&mut local), pool.default_size()).unwrap());
        }
        for s in &got {
            assert_eq!(s.size(), 16 * page);
            assert_eq!(s.resident_bytes().unwrap(), 0);
        }
        assert_eq!(
            pool.stats.slots.load(Ordering::Relaxed),
            BATCH + AHEAD + BATCH,
            "the last refill carved again"
        );
    }

    #[test]
    fn carving_ahead_stops_when_the_worker_has_work() {
        let pool = StackPool::new(16 * page_size(), guard::mode().unwrap());
        let mut local = pool.new_local();
        let _s = pool.get(Some(&mut local), pool.default_size()).unwrap();
        pool.carve_ahead(&|| false);
        assert_eq!(pool.pooled(), BATCH - 1, "nothing carved ahead");
    }
}
