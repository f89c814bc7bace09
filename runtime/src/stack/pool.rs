//! The stack pool: where finished stacks wait for the next coroutine.
//!
//! Two levels, like Go's per-P `stackcache` in front of the global `stackpool`:
//!
//! * a [`LocalStacks`] cache per worker, touched only by its owner thread, so
//!   the common spawn and exit paths take no lock and make no system call;
//! * a global, mutex-protected [`StackPool`] with one free list per slot size,
//!   which also carves fresh slots out of slabs.
//!
//! Invariant: every stack in either level has at most `page::start_window()`
//! bytes resident (its deep pages were released when it came back), its guard
//! page is installed, and its label is stale (rewritten at hand-out).
//!
//! Slabs are never unmapped while the pool lives; a stack leaked by a coroutine
//! that never finished therefore stays valid memory.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::guard::{self, GuardMode};
use super::page::page_size;
use super::slab::Slab;
use super::Stack;

/// Most stacks a worker keeps for itself before handing half to the global pool.
const LOCAL_MAX: usize = 64;
/// How many stacks move between the levels at once.
const BATCH: usize = LOCAL_MAX / 2;
/// Reservation per slab: big enough that 10^6 stacks need only a few thousand
/// slabs, small enough that a tiny runtime does not reserve much.
const SLAB_BYTES: usize = 64 << 20;

/// Counters read by `Runtime::stats`.
#[derive(Default)]
pub(crate) struct PoolStats {
    pub slots: AtomicUsize,
    pub pooled: AtomicUsize,
    pub reserved_bytes: AtomicUsize,
}

pub(crate) struct StackPool {
    mode: GuardMode,
    default_size: usize,
    classes: Mutex<Vec<SizeClass>>,
    /// VMA accounting for mprotect mode: maps counted at the last slab, plus
    /// what we added since.
    vmas: Mutex<(usize, usize)>,
    pub stats: Arc<PoolStats>,
}

struct SizeClass {
    slot_size: usize,
    free: Vec<Stack>,
    slabs: Vec<Slab>,
    /// Next never-used slot in the last slab.
    next_fresh: usize,
}

/// A worker's private stack cache (default slot size only).
pub(crate) struct LocalStacks {
    stacks: Vec<Stack>,
}

impl LocalStacks {
    pub fn new() -> Self {
        LocalStacks {
            stacks: Vec::with_capacity(LOCAL_MAX),
        }
    }
}

impl StackPool {
    pub fn new(default_size: usize, mode: GuardMode) -> StackPool {
        StackPool {
            mode,
            default_size,
            classes: Mutex::new(Vec::new()),
            vmas: Mutex::new((0, 0)),
            stats: Arc::new(PoolStats::default()),
        }
    }

    pub fn mode(&self) -> GuardMode {
        self.mode
    }

    pub fn default_size(&self) -> usize {
        self.default_size
    }

    /// A stack of `size` bytes (a multiple of the page size).
    pub fn get(&self, local: Option<&mut LocalStacks>, size: usize) -> io::Result<Stack> {
        match local {
            Some(local) if size == self.default_size => {
                if let Some(stack) = local.stacks.pop() {
                    self.stats.pooled.fetch_sub(1, Ordering::Relaxed);
                    return Ok(stack);
                }
                let mut batch = self.take_batch(size, BATCH)?;
                let stack = batch.pop().expect("take_batch returns at least one");
                local.stacks.append(&mut batch);
                self.stats.pooled.fetch_sub(1, Ordering::Relaxed);
                Ok(stack)
            }
            _ => {
                let mut one = self.take_batch(size, 1)?;
                self.stats.pooled.fetch_sub(1, Ordering::Relaxed);
                Ok(one.pop().expect("take_batch returns at least one"))
            }
        }
    }

    /// Return a stack whose coroutine has finished.
    pub fn put(&self, local: Option<&mut LocalStacks>, stack: Stack) {
        if stack.release_deep_pages().is_err() {
            // The slot keeps its pages; forget it rather than break invariant 2.
            return;
        }
        self.stats.pooled.fetch_add(1, Ordering::Relaxed);
        match local {
            Some(local) if stack.size() == self.default_size => {
                local.stacks.push(stack);
                if local.stacks.len() > LOCAL_MAX {
                    let spill = local.stacks.split_off(LOCAL_MAX - BATCH);
                    self.give_back(spill);
                }
            }
            _ => self.give_back(vec![stack]),
        }
    }

    /// Move a worker's cache back to the global pool (worker shutdown).
    pub fn drain_local(&self, local: &mut LocalStacks) {
        let all = std::mem::take(&mut local.stacks);
        self.give_back(all);
    }

    fn give_back(&self, stacks: Vec<Stack>) {
        if stacks.is_empty() {
            return;
        }
        let mut classes = self.classes.lock().unwrap_or_else(|e| e.into_inner());
        let size = stacks[0].size();
        let class = class_for(&mut classes, size);
        class.free.extend(stacks);
    }

    /// Up to `want` pooled stacks, carving fresh slots if none are free.
    /// Each returned stack is already counted in `stats.pooled`.
    fn take_batch(&self, size: usize, want: usize) -> io::Result<Vec<Stack>> {
        let mut classes = self.classes.lock().unwrap_or_else(|e| e.into_inner());
        let class = class_for(&mut classes, size);
        if !class.free.is_empty() {
            let at = class.free.len().saturating_sub(want);
            return Ok(class.free.split_off(at));
        }
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            match self.carve(class) {
                Ok(stack) => out.push(stack),
                Err(e) if out.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        self.stats.pooled.fetch_add(out.len(), Ordering::Relaxed);
        Ok(out)
    }

    /// A never-used slot: install its guard and hand it out.
    fn carve(&self, class: &mut SizeClass) -> io::Result<Stack> {
        let page = page_size();
        let need_slab = class
            .slabs
            .last()
            .is_none_or(|s| class.next_fresh == s.count());
        if need_slab {
            let count = (SLAB_BYTES / class.slot_size).max(16);
            if self.mode == GuardMode::Mprotect {
                let mut vmas = self.vmas.lock().unwrap_or_else(|e| e.into_inner());
                *vmas = (guard::current_map_count(), 0);
                guard::check_vma_budget(vmas.0, 1)?;
            }
            let slab = Slab::reserve(class.slot_size, count)?;
            self.stats
                .reserved_bytes
                .fetch_add(slab.reserved_bytes(), Ordering::Relaxed);
            class.slabs.push(slab);
            class.next_fresh = 0;
        }
        let slab = class.slabs.last().expect("a slab was just ensured");
        if self.mode == GuardMode::Mprotect {
            let mut vmas = self.vmas.lock().unwrap_or_else(|e| e.into_inner());
            guard::check_vma_budget(vmas.0 + vmas.1, 2)?;
            vmas.1 += 2;
        }
        let base = slab.slot_base(class.next_fresh);
        // SAFETY: `base` is the first page of a never-used slot of our slab.
        unsafe { guard::install(self.mode, base, page)? };
        class.next_fresh += 1;
        self.stats.slots.fetch_add(1, Ordering::Relaxed);
        let top = NonNull::new(base.wrapping_add(class.slot_size)).expect("non-null");
        // SAFETY: the slot is inside a live slab, guarded, and handed out once.
        Ok(unsafe { Stack::from_fresh_slot(top, class.slot_size) })
    }

    /// Resident bytes over every slot ever carved, by `mincore(2)`.
    pub fn resident_bytes(&self) -> io::Result<usize> {
        let classes = self.classes.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = 0;
        for class in classes.iter() {
            for (i, slab) in class.slabs.iter().enumerate() {
                let used = if i + 1 == class.slabs.len() {
                    class.next_fresh
                } else {
                    slab.count()
                };
                if used == 0 {
                    continue;
                }
                // One call for the whole run of slots; if the platform refuses
                // the guard pages in it (qemu-user), go slot by slot.
                let base = slab.base() as usize;
                total += match super::resident_bytes(base, used * class.slot_size) {
                    Ok(bytes) => bytes,
                    Err(_) => (0..used)
                        .map(|i| {
                            super::slot_resident_bytes(base + i * class.slot_size, class.slot_size)
                        })
                        .sum::<io::Result<usize>>()?,
                };
            }
        }
        Ok(total)
    }
}

fn class_for(classes: &mut Vec<SizeClass>, slot_size: usize) -> &mut SizeClass {
    let i = match classes.iter().position(|c| c.slot_size == slot_size) {
        Some(i) => i,
        None => {
            classes.push(SizeClass {
                slot_size,
                free: Vec::new(),
                slabs: Vec::new(),
                next_fresh: 0,
            });
            classes.len() - 1
        }
    };
    &mut classes[i]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::page::start_window;

    fn pool() -> StackPool {
        StackPool::new(64 * page_size(), guard::mode().unwrap())
    }

    #[test]
    fn returned_stack_keeps_only_its_start_window() {
        let pool = pool();
        let page = page_size();
        let mut local = LocalStacks::new();
        let stack = pool.get(Some(&mut local), pool.default_size()).unwrap();
        // Only the top page (the label) of a fresh slot has been written.
        assert_eq!(stack.resident_bytes().unwrap(), page, "fresh slot");
        // Touch 39 more pages below the top, as a deep recursion would.
        for i in 2..=40 {
            // SAFETY: inside the slot, above the guard (slot has 64 pages).
            unsafe { ((stack.top() - i * page) as *mut u8).write_volatile(1) };
        }
        assert_eq!(stack.resident_bytes().unwrap(), 40 * page);
        let top = stack.top();
        pool.put(Some(&mut local), stack);
        let again = pool.get(Some(&mut local), pool.default_size()).unwrap();
        assert_eq!(again.top(), top, "warm reuse is LIFO");
        assert!(again.resident_bytes().unwrap() <= start_window());
    }

    #[test]
    fn pooled_and_slot_counters_track_stacks() {
        let pool = pool();
        let a = pool.get(None, pool.default_size()).unwrap();
        let b = pool.get(None, 2 * pool.default_size()).unwrap();
        assert_eq!(pool.stats.slots.load(Ordering::Relaxed), 2);
        assert_eq!(pool.stats.pooled.load(Ordering::Relaxed), 0);
        pool.put(None, a);
        pool.put(None, b);
        assert_eq!(pool.stats.pooled.load(Ordering::Relaxed), 2);
        assert!(pool.stats.reserved_bytes.load(Ordering::Relaxed) >= 3 * pool.default_size());
    }
}
