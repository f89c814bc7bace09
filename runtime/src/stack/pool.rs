//! The stack pool: where finished stacks wait for the next coroutine.
//!
//! Two levels, like Go's per-P `stackcache` in front of the global `stackpool`:
//!
//! * a [`LocalStacks`] cache per worker, touched only by its owner thread, so
//!   the common spawn path takes no lock and makes no system call;
//! * a global, mutex-protected [`StackPool`] with one free list per slot size,
//!   which also carves fresh slots out of slabs.
//!
//! Invariant: every stack *handed out* has at most one page resident (its
//! top page), its guard page installed, and a label (in its slab's side
//! table, `slab.rs`) that is rewritten at hand-out.
//!
//! Releasing a finished stack's deep pages (`MADV_DONTNEED` below the top
//! page) is a system call that costs about as much as everything else in a
//! spawn and join together, and spindle cannot know cheaply whether a stack
//! grew (its growth is invisible demand paging; Go knows because it grows by
//! copying). So a worker keeps finished stacks on a short *dirty* list and
//! releases them in batches, one `process_madvise(2)` for up to
//! [`DIRTY_MAX`] stacks, when its clean list runs dry, when the dirty list is
//! full, and before it goes to sleep. Dirty stacks are never handed out, so
//! the invariant holds; a worker pins at most `DIRTY_MAX` unreleased stacks.
//! A full dirty list that would overflow the worker's cache once released
//! (which then gave the excess to the global free list) goes to the global
//! pool *unverified* instead, if the process took fewer page faults since
//! the last full list than the list holds stacks (so most of them touched
//! no new page, and a release would only verify them): a worker that
//! finishes many coroutines and spawns none (the release of a burst) does
//! not need those stacks, so their release waits for the first worker that
//! does (a refill verifies a batch before it uses it) or that goes idle
//! (`trim.rs`), and the finishing worker gets on with its coroutines
//! (figures: `docs/notes/cold-paths.md`, release and join). Stacks that
//! went deep are released at once, as before: there is memory to give back.
//! A batch skips the system call for every stack whose coroutine provably
//! touched no new page: the process's page-fault count has not moved since
//! the stack was handed out (`release.rs`), or one page-table scan of the
//! batch finds nothing resident below its top page (`scan.rs`).
//!
//! Fresh slots are carved a batch at a time: reserved under the lock,
//! guarded and labelled outside it (`carve.rs`).
//!
//! A pool that stays idle gives the memory of the stacks on its free lists
//! back, top pages included, and keeps their slots as *bare* ones, handed
//! out before any new slot is carved (`trim.rs`).
//!
//! Slabs are never unmapped while the pool lives; a stack leaked by a coroutine
//! that never finished therefore stays valid memory.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::guard::GuardMode;
use super::slab::{Label, Slab};
use super::trim::TrimClock;
use super::Stack;

/// Most clean stacks a worker keeps before handing half to the global pool.
const LOCAL_MAX: usize = 64;
/// Most finished stacks a worker holds before releasing them in one batch.
pub(crate) const DIRTY_MAX: usize = 32;
/// How many stacks move between the levels at once: also how many fresh
/// slots a worker's cache carves ahead of its coroutines.
pub const BATCH: usize = LOCAL_MAX / 2;
/// Reservation per slab: big enough that 10^6 stacks need only a few thousand
/// slabs, small enough that a tiny runtime does not reserve much.
pub(crate) const SLAB_BYTES: usize = 64 << 20;
/// Fewest slots in a slab (for `stack_max` beyond `SLAB_BYTES / 16`).
const MIN_SLOTS_PER_SLAB: usize = 16;

/// How many slots of `slot_size` bytes one slab holds (each slab is one
/// mapping, which mprotect mode's VMA budget counts).
pub fn slots_per_slab(slot_size: usize) -> usize {
    (SLAB_BYTES / slot_size.max(1)).max(MIN_SLOTS_PER_SLAB)
}

/// Counters read by `Runtime::stats`.
#[derive(Default)]
pub(crate) struct PoolStats {
    /// Slots ever carved: changed only under the `classes` lock, so that
    /// [`StackPool::slots_and_pooled`] reads it with `pooled` as one.
    pub slots: AtomicUsize,
    /// Finished stacks whose deep pages were released with a system call.
    pub released: AtomicUsize,
    /// Finished stacks found clean without a release: by the page-fault
    /// count or by a page-table scan (`scan.rs`).
    pub verified_clean: AtomicUsize,
    /// Of those, the ones a page-table scan found clean.
    pub verified_clean_by_scan: AtomicUsize,
    pub reserved_bytes: AtomicUsize,
}

pub(crate) struct StackPool {
    mode: GuardMode,
    default_size: usize,
    classes: Mutex<Vec<SizeClass>>,
    /// How many stacks each worker's cache holds, published by its owner
    /// with a plain store (no locked instruction on the spawn path), for
    /// [`slots_and_pooled`](Self::slots_and_pooled).
    locals: Mutex<Vec<Arc<AtomicUsize>>>,
    /// Stacks taken from or given back to the free lists, ever: trimming
    /// waits until this stops moving (`trim.rs`).
    pub(super) traffic: AtomicUsize,
    /// A spawn lately found no pooled stack and waited for fresh slots:
    /// idle workers carve some ahead (`carve.rs`).
    pub(super) fresh_wanted: AtomicBool,
    /// The runtime's spawn count when a worker last gave the allocator's
    /// free pages back after a burst (`trim.rs`, `return_heap_after_burst`).
    pub(super) heap_returned_at: AtomicU64,
    pub stats: Arc<PoolStats>,
}

pub(super) struct SizeClass {
    /// Released stacks with their top page resident (LIFO).
    pub(super) free: Vec<Stack>,
    /// Trimmed slots, nothing resident, as (label address, slot top): the
    /// label itself may have been given back (`trim.rs`).
    pub(super) bare: Vec<(usize, usize)>,
    /// Slots were made bare since their labels were last given back.
    pub(super) labels_due: bool,
    /// Finished stacks whose deep pages are not released yet, a worker's
    /// full dirty list each (never handed out before [`verify`]).
    ///
    /// [`verify`]: StackPool::verify
    pub(super) unverified: Vec<Vec<Stack>>,
    /// How many stacks `unverified` holds, for [`StackPool::slots_and_pooled`].
    pub(super) unverified_count: usize,
    /// Stacks taken out of `free` by a trim that has not put them in
    /// `bare` yet, or out of `unverified` by a verification that has not
    /// put them in `free` (or a worker's cache) yet.
    pub(super) trimming: usize,
    /// Fresh slots reserved by a worker carving ahead that has not put them
    /// in `free` yet (`carve.rs`): counted as pooled, like `trimming`, so
    /// that `pooled == slots` holds whenever nothing is live.
    pub(super) carving: usize,
    pub(super) slot_size: usize,
    pub(super) slabs: Vec<Slab>,
    /// Next never-used slot in the last slab.
    pub(super) next_fresh: usize,
}

/// A worker's private stack cache (default slot size only).
pub(crate) struct LocalStacks {
    /// Released stacks, ready to hand out (LIFO: the most recently used top
    /// pages are still warm in cache).
    clean: Vec<Stack>,
    /// Finished stacks whose deep pages are not released yet.
    dirty: Vec<Stack>,
    /// The process's page-fault count when `dirty` was last released:
    /// the mark of every stack handed out since (`u64::MAX`: unknown).
    fault_mark: u64,
    /// The process's page-fault count when `dirty` last filled up
    /// ([`StackPool::dirty_full`]).
    faults_at_full: u64,
    /// `clean.len() + dirty.len()`, for `Runtime::stats` on other threads.
    held: Arc<AtomicUsize>,
    /// When this worker last saw the free lists' traffic (`trim.rs`).
    pub(super) trim: TrimClock,
    /// The spawn count this worker last saw on its way to sleep, and
    /// since when (`trim.rs`, `return_heap_after_burst`).
    pub(super) heap_seen: Option<(u64, std::time::Instant)>,
}

impl LocalStacks {
    /// Publish how many stacks this cache holds (single writer: a store).
    fn publish(&self) {
        self.held
            .store(self.clean.len() + self.dirty.len(), Ordering::Relaxed);
    }
}

impl StackPool {
    pub fn new(default_size: usize, mode: GuardMode) -> StackPool {
        StackPool {
            mode,
            default_size,
            classes: Mutex::new(Vec::new()),
            locals: Mutex::new(Vec::new()),
            traffic: AtomicUsize::new(0),
            fresh_wanted: AtomicBool::new(false),
            heap_returned_at: AtomicU64::new(0),
            stats: Arc::new(PoolStats::default()),
        }
    }

    /// A new per-worker cache, counted in [`slots_and_pooled`](Self::slots_and_pooled).
    pub fn new_local(&self) -> LocalStacks {
        let held = Arc::new(AtomicUsize::new(0));
        self.locals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(held.clone());
        LocalStacks {
            clean: Vec::with_capacity(LOCAL_MAX + 1),
            dirty: Vec::with_capacity(DIRTY_MAX),
            fault_mark: u64::MAX,
            faults_at_full: 0,
            held,
            trim: TrimClock::default(),
            heap_seen: None,
        }
    }

    /// How many slots were ever carved, and how many stacks wait for
    /// reuse: in the global free lists and in every worker's cache (as last
    /// published, so approximate while it runs). Moves between a cache and
    /// the free lists publish the cache's count under the `classes` lock,
    /// which this holds, so a stack in transit is never counted twice or
    /// missed; and slots are carved only under it (`carve.rs`), so a worker
    /// carving ahead cannot make the second figure exceed the first when
    /// nothing is live.
    pub fn slots_and_pooled(&self) -> (usize, usize) {
        let classes = self.lock_classes();
        let slots = self.stats.slots.load(Ordering::Relaxed);
        let global: usize = classes
            .iter()
            .map(|c| c.free.len() + c.unverified_count + c.bare.len() + c.trimming + c.carving)
            .sum();
        let locals = self.locals.lock().unwrap_or_else(|e| e.into_inner());
        let pooled = global
            + locals
                .iter()
                .map(|h| h.load(Ordering::Relaxed))
                .sum::<usize>();
        (slots, pooled)
    }

    /// The second half of [`slots_and_pooled`](Self::slots_and_pooled).
    #[cfg(test)]
    pub fn pooled(&self) -> usize {
        self.slots_and_pooled().1
    }

    pub(super) fn lock_classes(&self) -> MutexGuard<'_, Vec<SizeClass>> {
        self.classes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The free lists' traffic count, if some size class holds more than
    /// `reserve` stacks that could be trimmed.
    pub(super) fn traffic_if_trimmable(&self, reserve: usize) -> Option<usize> {
        let classes = self.lock_classes();
        classes
            .iter()
            .any(|c| c.free.len() > reserve)
            .then(|| self.traffic.load(Ordering::Relaxed))
    }

    /// Is a page-table scan worth it before releasing a batch (`scan.rs`)?
    fn scans(&self) -> bool {
        self.mode == GuardMode::Regions
    }

    pub fn mode(&self) -> GuardMode {
        self.mode
    }

    pub fn default_size(&self) -> usize {
        self.default_size
    }

    /// A stack of `size` bytes (a multiple of the page size).
    pub fn get(&self, local: Option<&mut LocalStacks>, size: usize) -> io::Result<Stack> {
        self.get_noting_reuse(local, size).map(|(stack, _)| stack)
    }

    /// [`get`](Self::get), and whether the stack was handed out before
    /// through a worker's cache, so that its top page is most likely still
    /// resident (a release keeps it: `release.rs`), and a first write there
    /// costs no page fault. A fresh or trimmed slot has no fault mark yet.
    pub fn get_noting_reuse(
        &self,
        local: Option<&mut LocalStacks>,
        size: usize,
    ) -> io::Result<(Stack, bool)> {
        match local {
            Some(local) if size == self.default_size => {
                if local.clean.is_empty() {
                    self.release_dirty(local);
                }
                let mut stack = match local.clean.pop() {
                    Some(stack) => stack,
                    None => {
                        self.refill(local, size)?;
                        local.clean.pop().expect("refill adds at least one stack")
                    }
                };
                let reused = stack.fault_mark() != u64::MAX;
                stack.set_fault_mark(local.fault_mark);
                local.publish();
                Ok((stack, reused))
            }
            _ => {
                let mut one = self.take_batch(size, 1)?;
                let mut stack = one.pop().expect("take_batch returns at least one");
                let reused = stack.fault_mark() != u64::MAX;
                // Not from a worker cache, so no fault count is at hand: the
                // cache that takes it back will release it with a call.
                stack.set_fault_mark(u64::MAX);
                Ok((stack, reused))
            }
        }
    }

    /// Return a stack whose coroutine has finished.
    pub fn put(&self, local: Option<&mut LocalStacks>, stack: Stack) {
        match local {
            Some(local) if stack.size() == self.default_size => {
                local.dirty.push(stack);
                if local.dirty.len() >= DIRTY_MAX {
                    self.dirty_full(local);
                }
                local.publish();
            }
            _ => {
                let mut one = vec![stack];
                super::release::release_all(&self.stats, &mut one, None, self.scans());
                self.give_back(one, None);
            }
        }
    }

    /// Release the deep pages of every dirty stack (one system call) and make
    /// them clean. Workers also call this before they go to sleep.
    pub fn release_dirty(&self, local: &mut LocalStacks) {
        if local.dirty.is_empty() {
            return;
        }
        // Read the count *before* the decision: any fault after this moment
        // is seen by the next batch, whose stacks are marked with it.
        let now = super::release::process_faults();
        super::release::release_all(&self.stats, &mut local.dirty, now, self.scans());
        local.fault_mark = now.unwrap_or(u64::MAX);
        // Stacks that could not be released were dropped from the list and
        // are forgotten: their slots keep their pages but are never reused.
        local.clean.append(&mut local.dirty);
        if local.clean.len() > LOCAL_MAX {
            let spill = local.clean.split_off(LOCAL_MAX - BATCH);
            self.give_back(spill, Some(local));
        }
        local.publish();
    }

    /// A worker's dirty list is full: release it, or if the released
    /// stacks would overflow the cache, defer it (see the module docs).
    /// Out of line, so that `put` stays as short as it was.
    #[inline(never)]
    fn dirty_full(&self, local: &mut LocalStacks) {
        // Deferred only if the process took fewer page faults since the
        // last full list than the list holds stacks: then most of them
        // cannot have touched a new page, and their release would only
        // verify them. Otherwise there is memory to give back now.
        let now = super::release::process_faults();
        let quiet = now.is_some_and(|n| n.wrapping_sub(local.faults_at_full) < DIRTY_MAX as u64);
        local.faults_at_full = now.unwrap_or(0);
        if quiet && local.clean.len() + DIRTY_MAX > LOCAL_MAX {
            self.defer_dirty(local);
        } else {
            self.release_dirty(local);
        }
    }

    /// Hand a worker's full dirty list to the global pool unverified (see
    /// the module docs): released, it would overflow the worker's cache,
    /// so the worker does not need these stacks, and their release is left
    /// to whoever does.
    fn defer_dirty(&self, local: &mut LocalStacks) {
        let batch = std::mem::replace(&mut local.dirty, Vec::with_capacity(DIRTY_MAX));
        let mut classes = self.lock_classes();
        let class = class_for(&mut classes, self.default_size);
        class.unverified_count += batch.len();
        class.unverified.push(batch);
        self.traffic.fetch_add(1, Ordering::Relaxed);
        // Published under the lock, as `give_back` does: never counted twice.
        local.publish();
    }

    /// Release the deep pages of a batch of unverified stacks of slot size
    /// `size`, taken by [`take_unverified`](Self::take_unverified) and
    /// counted in `trimming` (the caller does not hold the lock): they are
    /// clean afterwards. Stacks that could not be released are forgotten
    /// (as in `release_dirty`). Returns the clean ones with the `classes`
    /// lock taken again and the batch uncounted from `trimming`: the
    /// caller puts them somewhere counted before it lets the lock go, so
    /// that no stack is counted twice or missed.
    fn verify(
        &self,
        size: usize,
        mut batch: Vec<Stack>,
    ) -> (MutexGuard<'_, Vec<SizeClass>>, Vec<Stack>) {
        let n = batch.len();
        // A stack whose mark equals the count now took no fault since it
        // was handed out: clean without a look (`release.rs`).
        let now = super::release::process_faults();
        super::release::release_all(&self.stats, &mut batch, now, self.scans());
        let mut classes = self.lock_classes();
        class_for(&mut classes, size).trimming -= n;
        (classes, batch)
    }

    /// Take one unverified batch of `class`, counted in `trimming` while
    /// it is out. The caller holds the `classes` lock.
    fn take_unverified(class: &mut SizeClass) -> Option<Vec<Stack>> {
        let batch = class.unverified.pop()?;
        class.unverified_count -= batch.len();
        class.trimming += batch.len();
        Some(batch)
    }

    /// Verify the global pool's unverified stacks and put them on the free
    /// lists, one batch at a time, while `keep_going` says so (a worker on
    /// its way to sleep, `trim.rs`). Returns whether none is left.
    pub(super) fn verify_deferred(&self, keep_going: &impl Fn() -> bool) -> bool {
        loop {
            let taken = {
                let mut classes = self.lock_classes();
                classes
                    .iter_mut()
                    .find_map(|class| Some((class.slot_size, Self::take_unverified(class)?)))
            };
            let Some((size, batch)) = taken else {
                return true;
            };
            {
                let (mut classes, clean) = self.verify(size, batch);
                class_for(&mut classes, size).free.extend(clean);
                self.traffic.fetch_add(1, Ordering::Relaxed);
            }
            if !keep_going() {
                return false;
            }
        }
    }

    /// Move a worker's cache back to the global pool (worker shutdown).
    pub fn drain_local(&self, local: &mut LocalStacks) {
        self.release_dirty(local);
        let all = std::mem::take(&mut local.clean);
        self.give_back(all, Some(local));
    }

    /// Put `stacks` on the global free list. When they come from a worker's
    /// cache, `local` (already without them) publishes its count before the
    /// lock is released (see [`slots_and_pooled`](Self::slots_and_pooled)).
    pub(super) fn give_back(&self, stacks: Vec<Stack>, local: Option<&LocalStacks>) {
        let mut classes = self.lock_classes();
        if let Some(first) = stacks.first() {
            let class = class_for(&mut classes, first.size());
            class.free.extend(stacks);
            self.traffic.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(local) = local {
            local.publish();
        }
    }

    /// Fill a worker's empty cache with a batch of stacks (fresh slots if the
    /// free lists are empty), publishing its count under the lock when they
    /// come from the free lists (fresh ones were counted nowhere before).
    #[inline(never)]
    fn refill(&self, local: &mut LocalStacks, size: usize) -> io::Result<()> {
        let fresh = {
            let mut classes = self.lock_classes();
            let class = class_for(&mut classes, size);
            if let Some(mut batch) = self.take_free(class, BATCH) {
                local.clean.append(&mut batch);
                local.publish();
                return Ok(());
            }
            if let Some(batch) = Self::take_unverified(class) {
                drop(classes);
                let (mut classes, mut clean) = self.verify(size, batch);
                local.clean.append(&mut clean);
                local.publish();
                if !local.clean.is_empty() {
                    return Ok(());
                }
                // Every release failed (and those slots are forgotten):
                // carve, as below.
                self.fresh_wanted.store(true, Ordering::Relaxed);
                let class = class_for(&mut classes, size);
                self.reserve_fresh(class, BATCH)?
            } else if let Some(mut batch) = self.take_bare(class, BATCH) {
                local.clean.append(&mut batch);
                local.publish();
                return Ok(());
            } else {
                // Spawns are waiting for fresh slots: idle workers may carve
                // some ahead (`carve.rs`).
                self.fresh_wanted.store(true, Ordering::Relaxed);
                self.reserve_fresh(class, BATCH)?
            }
        };
        let mut batch = self.prepare_fresh(fresh)?;
        local.clean.append(&mut batch);
        local.publish();
        Ok(())
    }

    /// Up to `want` pooled stacks, carving fresh slots if none are free.
    fn take_batch(&self, size: usize, want: usize) -> io::Result<Vec<Stack>> {
        loop {
            let fresh = {
                let mut classes = self.lock_classes();
                let class = class_for(&mut classes, size);
                if let Some(batch) = self.take_free(class, want) {
                    return Ok(batch);
                }
                if let Some(batch) = Self::take_unverified(class) {
                    drop(classes);
                    let (mut classes, mut clean) = self.verify(size, batch);
                    let class = class_for(&mut classes, size);
                    // A batch is a whole dirty list, and the caller wants
                    // `want` (often one): the rest go on the free list, as
                    // `verify_deferred` puts them (a dropped `Stack` would
                    // lose its slot for good).
                    let mine = clean.split_off(clean.len().saturating_sub(want));
                    if !clean.is_empty() {
                        class.free.append(&mut clean);
                        self.traffic.fetch_add(1, Ordering::Relaxed);
                    }
                    if !mine.is_empty() {
                        return Ok(mine);
                    }
                    // Every release failed (those slots are forgotten): look
                    // again, with the lock released first.
                    continue;
                }
                if let Some(batch) = self.take_bare(class, want) {
                    return Ok(batch);
                }
                self.reserve_fresh(class, want)?
            };
            return self.prepare_fresh(fresh);
        }
    }

    /// Up to `want` stacks from `class`'s free list; `None` if it is
    /// empty. The caller holds the `classes` lock.
    fn take_free(&self, class: &mut SizeClass, want: usize) -> Option<Vec<Stack>> {
        self.traffic.fetch_add(1, Ordering::Relaxed);
        if class.free.is_empty() {
            return None;
        }
        let at = class.free.len().saturating_sub(want);
        let batch = class.free.split_off(at);
        shrink_if_sparse(&mut class.free);
        Some(batch)
    }

    /// Up to `want` bare slots of `class` (labelled here: a page fault
    /// each, `trim.rs`); `None` if it has none. The caller holds the
    /// `classes` lock.
    fn take_bare(&self, class: &mut SizeClass, want: usize) -> Option<Vec<Stack>> {
        self.traffic.fetch_add(1, Ordering::Relaxed);
        if class.bare.is_empty() {
            return None;
        }
        let at = class.bare.len().saturating_sub(want);
        let taken = class.bare.split_off(at);
        shrink_if_sparse(&mut class.bare);
        Some(
            taken
                .into_iter()
                .map(|(label, top)| {
                    let label = NonNull::new(label as *mut Label).expect("non-null");
                    // SAFETY: a bare slot is a slot of a live slab with its
                    // guard, released whole, described by no Stack (it left
                    // the free list as a label address only), whose top was
                    // recorded with it; its size is its class's.
                    unsafe { Stack::from_trimmed_slot(label, top, class.slot_size) }
                })
                .collect(),
        )
    }

    /// Resident bytes over every slot ever carved, by `mincore(2)`.
    pub fn resident_bytes(&self) -> io::Result<usize> {
        let classes = self.lock_classes();
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

/// Below this capacity a free list is never shrunk: a few pages at most.
/// (Smaller in unit tests, so that a burst that fills a list is a few
/// thousand stacks: under the mprotect fallback each costs two memory
/// maps, and `vm.max_map_count` is 65,530 by default.)
const SHRINK_MIN: usize = if cfg!(test) { 256 } else { 4096 };

/// Give back most of a free list's buffer once it is at most a quarter
/// full: after a burst of 10^6 coroutines the list held 10^6 stacks (8 MB
/// of `Stack`s, or 16 MB of bare slots), and a second burst that takes them
/// all would otherwise keep that buffer, in use but empty, for good. Halving
/// at a quarter keeps the cost amortised: a list that refills grows again
/// by doubling, and shrinks only after it lost three quarters.
fn shrink_if_sparse<T>(list: &mut Vec<T>) {
    if list.capacity() > SHRINK_MIN && list.len() <= list.capacity() / 4 {
        list.shrink_to((list.len() * 2).max(SHRINK_MIN));
    }
}

pub(super) fn class_for(classes: &mut Vec<SizeClass>, slot_size: usize) -> &mut SizeClass {
    let i = match classes.iter().position(|c| c.slot_size == slot_size) {
        Some(i) => i,
        None => {
            classes.push(SizeClass {
                slot_size,
                free: Vec::new(),
                bare: Vec::new(),
                unverified: Vec::new(),
                unverified_count: 0,
                labels_due: false,
                trimming: 0,
                carving: 0,
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
    use crate::stack::guard;
    use crate::stack::page::page_size;

    fn pool() -> StackPool {
        StackPool::new(64 * page_size(), guard::mode().unwrap())
    }

    #[test]
    fn returned_stack_keeps_only_its_top_page() {
        let pool = pool();
        let page = page_size();
        let mut local = pool.new_local();
        let stack = pool.get(Some(&mut local), pool.default_size()).unwrap();
        // Nothing of a fresh slot has been written (the label is in the
        // slab's side table).
        assert_eq!(stack.resident_bytes().unwrap(), 0, "fresh slot");
        // Touch 40 pages from the top down, as a deep recursion would.
        for i in 1..=40 {
            // SAFETY: inside the slot, above the guard (slot has 64 pages).
            unsafe { ((stack.top() - i * page) as *mut u8).write_volatile(1) };
        }
        assert_eq!(stack.resident_bytes().unwrap(), 40 * page);
        let top = stack.top();
        pool.put(Some(&mut local), stack);
        // A dirty stack is never handed out...
        let other = pool.get(Some(&mut local), pool.default_size()).unwrap();
        assert_ne!(other.top(), top, "a dirty stack was handed out");
        // ...until its batch is released; then warm reuse is LIFO.
        pool.release_dirty(&mut local);
        let again = pool.get(Some(&mut local), pool.default_size()).unwrap();
        assert_eq!(again.top(), top, "warm reuse is LIFO");
        assert_eq!(again.resident_bytes().unwrap(), page, "only the top page");
    }

    /// The fault-count shortcut must not hide pages touched by a coroutine
    /// that ran on another thread: the count is process-wide.
    #[test]
    fn deep_pages_touched_on_another_thread_are_released() {
        let pool = pool();
        let page = page_size();
        let mut local = pool.new_local();
        // One warm round so that the cache has a fault mark.
        let s = pool.get(Some(&mut local), pool.default_size()).unwrap();
        pool.put(Some(&mut local), s);
        pool.release_dirty(&mut local);
        let stack = pool.get(Some(&mut local), pool.default_size()).unwrap();
        let top = stack.top();
        let stack = std::thread::spawn(move || {
            for i in 3..=20 {
                // SAFETY: inside the slot, above the guard (slot has 64 pages).
                unsafe { ((top - i * page) as *mut u8).write_volatile(1) };
            }
            stack
        })
        .join()
        .unwrap();
        assert!(stack.resident_bytes().unwrap() > page);
        pool.put(Some(&mut local), stack);
        pool.release_dirty(&mut local);
        let again = pool.get(Some(&mut local), pool.default_size()).unwrap();
        assert_eq!(again.top(), top, "warm reuse is LIFO");
        assert!(again.resident_bytes().unwrap() <= page, "only the top page");
    }

    /// A stack whose user touched no new page comes back clean without a
    /// system call (retried: any stray fault in the test process, such as
    /// the test harness allocating, makes one round take the slow path).
    #[test]
    #[cfg_attr(
        spindle_asan,
        ignore = "ASan's shadow memory takes page faults of its own, so the process's fault count keeps moving"
    )]
    fn untouched_stacks_skip_the_release_call() {
        let pool = pool();
        let mut local = pool.new_local();
        let mut stacks: Vec<Stack> = Vec::with_capacity(4);
        for _ in 0..20 {
            for _ in 0..4 {
                stacks.push(pool.get(Some(&mut local), pool.default_size()).unwrap());
            }
            for s in stacks.drain(..) {
                pool.put(Some(&mut local), s);
            }
            pool.release_dirty(&mut local);
            if pool.stats.verified_clean.load(Ordering::Relaxed) > 0 {
                return;
            }
        }
        panic!("no release was ever skipped");
    }

    #[test]
    fn pooled_and_slot_counters_track_stacks() {
        let pool = pool();
        let a = pool.get(None, pool.default_size()).unwrap();
        let b = pool.get(None, 2 * pool.default_size()).unwrap();
        assert_eq!(pool.stats.slots.load(Ordering::Relaxed), 2);
        assert_eq!(pool.pooled(), 0);
        pool.put(None, a);
        pool.put(None, b);
        assert_eq!(pool.pooled(), 2);
        assert!(pool.stats.reserved_bytes.load(Ordering::Relaxed) >= 3 * pool.default_size());
    }

    /// A worker carving ahead (`carve.rs`) adds slots and pooled stacks
    /// together, under the lock; read together, `pooled <= slots` always
    /// holds. (Read as two separate loads, a carve between them made an
    /// end-to-end test see 192 pooled of 160 slots.)
    #[test]
    fn slots_and_pooled_are_read_as_one_snapshot() {
        let pool = Arc::new(pool());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let carver = {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut held = Vec::new();
                // Bounded: 64 rounds of two batches carved ahead.
                for _ in 0..64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    pool.fresh_wanted.store(true, Ordering::Relaxed);
                    pool.carve_ahead(&|| true);
                    // Take what was carved, so the next round carves again.
                    for _ in 0..super::super::carve::AHEAD / BATCH {
                        held.append(&mut pool.take_batch(pool.default_size(), BATCH).unwrap());
                    }
                }
                held
            })
        };
        let mut bad = None;
        while !carver.is_finished() {
            let (slots, pooled) = pool.slots_and_pooled();
            if pooled > slots {
                bad = Some((slots, pooled));
                stop.store(true, Ordering::Relaxed);
            }
        }
        let held = carver.join().unwrap();
        assert_eq!(bad, None, "(slots, pooled) with pooled > slots");
        assert_eq!(pool.slots_and_pooled(), (held.len(), 0));
        for stack in held {
            pool.put(None, stack);
        }
    }

    /// A single stack taken outside a worker's cache (`get(None, ..)`, as
    /// `Builder::spawn_on` does from a plain thread) when the only pooled
    /// stacks wait unverified: it comes from a verified batch, and the rest
    /// of that batch stays pooled (they were dropped, their slots lost).
    #[test]
    fn one_stack_taken_from_an_unverified_batch_leaves_the_rest_pooled() {
        let pool = pool();
        let size = pool.default_size();
        let batch: Vec<Stack> = (0..DIRTY_MAX)
            .map(|_| pool.get(None, size).unwrap())
            .collect();
        {
            // As `defer_dirty` leaves a worker's full dirty list.
            let mut classes = pool.lock_classes();
            let class = class_for(&mut classes, size);
            class.unverified_count += batch.len();
            class.unverified.push(batch);
        }
        assert_eq!(pool.pooled(), DIRTY_MAX);
        let stack = pool.get(None, size).unwrap();
        assert_eq!(pool.pooled(), DIRTY_MAX - 1, "the rest stay pooled");
        pool.put(None, stack);
        assert_eq!(pool.pooled(), DIRTY_MAX);
        assert_eq!(pool.stats.slots.load(Ordering::Relaxed), DIRTY_MAX);
        let classes = pool.lock_classes();
        assert_eq!((classes[0].unverified_count, classes[0].trimming), (0, 0));
    }

    /// After a burst, the global free list held every stack; once a second
    /// burst has taken them all, its buffer does not stay at the burst's
    /// size (8 bytes per stack of the first burst, in use but empty).
    #[test]
    fn the_free_list_shrinks_once_a_burst_took_its_stacks() {
        let pool = pool();
        let size = pool.default_size();
        let n = 8 * SHRINK_MIN;
        let stacks: Vec<Stack> = (0..n).map(|_| pool.get(None, size).unwrap()).collect();
        for stack in stacks {
            pool.put(None, stack);
        }
        let capacity = |pool: &StackPool| pool.lock_classes()[0].free.capacity();
        assert!(capacity(&pool) >= n);
        let again: Vec<Stack> = (0..n).map(|_| pool.get(None, size).unwrap()).collect();
        assert!(
            capacity(&pool) <= SHRINK_MIN,
            "an empty free list kept room for {} stacks",
            capacity(&pool)
        );
        for stack in again {
            pool.put(None, stack);
        }
    }

    /// A worker whose cache is full hands a full dirty list to the global
    /// pool unverified, deep pages and all, when the process took few page
    /// faults meanwhile; the next taker (a refill) or an idle worker
    /// (`verify_deferred`) releases them before any is handed out, and
    /// `pooled` counts them all along. (The fault count is the process's,
    /// and other tests run in parallel: a try in which their faults made
    /// the pool release at once is tried again.)
    #[test]
    fn a_full_dirty_list_that_would_overflow_the_cache_waits_unverified() {
        for _ in 0..10 {
            if deferral_round() {
                return;
            }
        }
        panic!("no full dirty list was deferred in 10 tries");
    }

    /// One try of the test above; false if nothing was deferred.
    fn deferral_round() -> bool {
        let pool = pool();
        let page = page_size();
        let size = pool.default_size();
        let mut local = pool.new_local();
        let stacks: Vec<Stack> = (0..LOCAL_MAX + 2 * DIRTY_MAX)
            .map(|_| pool.get(Some(&mut local), size).unwrap())
            .collect();
        for stack in &stacks {
            for i in 1..=5 {
                // SAFETY: inside the slot, above its guard (64 pages).
                unsafe { ((stack.top() - i * page) as *mut u8).write_volatile(1) };
            }
        }
        let total = stacks.len();
        let mut stacks = stacks.into_iter();
        // The first full lists are released here: the cache has room.
        for stack in stacks.by_ref().take(LOCAL_MAX) {
            pool.put(Some(&mut local), stack);
        }
        assert_eq!(local.clean.len(), LOCAL_MAX);
        // Now it would not: the next two go to the global pool as they are
        // (no page was touched since).
        let rest: Vec<Stack> = stacks.collect();
        let deferred: Vec<(usize, usize)> = rest
            .iter()
            .map(|s| (s.top() - s.size(), s.size()))
            .collect();
        for stack in rest {
            pool.put(Some(&mut local), stack);
        }
        let unverified = {
            let classes = pool.lock_classes();
            let class = &classes[0];
            assert_eq!(class.unverified_count, class.unverified.len() * DIRTY_MAX);
            class.unverified.len()
        };
        assert_eq!(pool.pooled(), total);
        if unverified == 0 {
            return false;
        }
        let resident =
            |&(base, len): &(usize, usize)| super::super::slot_resident_bytes(base, len).unwrap();
        let still_deep = deferred.iter().filter(|r| resident(r) == 5 * page).count();
        assert_eq!(still_deep, unverified * DIRTY_MAX);
        // A worker with an empty cache verifies one batch before using it.
        let mut other = pool.new_local();
        for _ in 0..DIRTY_MAX {
            let stack = pool.get(Some(&mut other), size).unwrap();
            assert_eq!(stack.resident_bytes().unwrap(), page, "handed out dirty");
            pool.put(None, stack);
        }
        // An idle worker verifies the rest into the free list.
        assert!(pool.verify_deferred(&|| true));
        let classes = pool.lock_classes();
        assert_eq!(classes[0].unverified_count, 0);
        assert_eq!(classes[0].trimming, 0);
        drop(classes);
        for r in &deferred {
            assert_eq!(resident(r), page);
        }
        assert_eq!(pool.pooled(), total);
        true
    }
}
