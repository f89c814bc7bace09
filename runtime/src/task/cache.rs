//! The task-block cache: freed task blocks are kept for the next spawn
//! instead of going back to `malloc`.
//!
//! Every spawn needs one [`Task`] block (88 bytes) and every finished task
//! gives one back. In a fan-out the two happen on different threads: the
//! spawner's worker allocates, the worker that ran the child frees, and a
//! `free` of memory that another thread allocated is glibc's slow path (the
//! chunk goes back to the allocating thread's arena, under its lock). Go
//! keeps dead goroutines' `g` structs for reuse instead (`gfput` and
//! `gfget` in `runtime/proc.go`: a free list per P, and the global
//! `sched.gFree`); this is the same idea for task blocks:
//!
//! * each thread keeps a **local** list of free blocks, at most two
//!   batches of [`BATCH`] ([`Local`]); a spawn pops from it and a task
//!   freed on this thread pushes onto it, with no lock and no atomic;
//! * when the local list is full, one whole batch moves to the **depot**,
//!   a global `Mutex<Vec<batch>>` ([`Depot`]); when it is empty, a spawn
//!   takes a whole batch from there. So blocks freed on worker B reach a
//!   spawner on worker A, one lock per [`BATCH`] blocks;
//! * the depot keeps what a burst frees, so that the next burst (or the
//!   rest of this one: a spawner runs ahead of the children it starts)
//!   reuses it, up to [`DEPOT_BATCHES`] batches; when the depot has seen
//!   no traffic for the stack pool's `TRIM_AFTER`, a worker on its way to
//!   sleep gives all but [`DEPOT_RESERVE`] batches back to the allocator
//!   ([`trim_if_idle`], beside the stack pool's trim), so a burst of a
//!   million tasks does not keep a million blocks (Go never frees its
//!   `g`s);
//! * a thread that exits (a worker at shutdown, a plain thread that called
//!   `block_on` or dropped a `JoinHandle`) gives its full batches to the
//!   depot and frees the rest, from a thread-local destructor. A task freed
//!   after that, by a later destructor of the same thread, goes straight to
//!   the allocator.
//!
//! The local list is managed like Bonwick's *magazines*: it is two lists,
//! `cur` (0 to [`BATCH`] blocks, pushed and popped) and `spare` (empty or
//! exactly one full batch). A batch is moved whole, as one pointer, and
//! never walked, so moving one costs a lock and nothing per block.
//!
//! **Invariants.** A block in the cache holds no live `Task`: the last
//! reference dropped the task in place before [`free`] (so the task's
//! destructor ran exactly as before, on the thread that dropped it), and
//! [`alloc`] hands out uninitialised memory that the caller fills with
//! `ptr::write`. Every block was allocated with `Layout::new::<Task>()`
//! from the global allocator and is owned by exactly one list (or one
//! live task). A free block's first word is its list link ([`Free`]).
//!
//! **Bypassed** (every block straight from and to the allocator) under
//! `cfg(loom)`, whose models do not need it, and under `cfg(spindle_asan)`,
//! so that AddressSanitizer still reports a use of a freed task instead of
//! seeing a block that the cache still owns.
//!
//! The thread-local is read behind the two `#[inline(never)]` functions
//! [`alloc`] and [`free`], which do not suspend (the crate's rule for its
//! thread-locals, `sched/context.rs`).

#![cfg_attr(any(loom, spindle_asan), allow(dead_code))]

use std::alloc::Layout;
use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Task;

/// Blocks moved to or from the depot at once (Go keeps 32 to 64 free `g`s
/// per P and moves the excess, or a refill, to or from `sched.gFree`).
pub(crate) const BATCH: usize = 32;

/// The depot's bound, in batches: 2^15 × 32 blocks of 96 bytes (88 rounded
/// up to a malloc chunk) is 96 MiB at most, the blocks of a million tasks
/// alive at once, held only while the runtime is busy ([`trim_if_idle`]).
/// A smaller bound saves nothing in a fan-out: with 10^6 children about
/// 700,000 are alive at the peak, and a bound of a few thousand blocks let
/// only a quarter of the spawns reuse one (`docs/notes/cold-paths.md`).
pub(crate) const DEPOT_BATCHES: usize = 1 << 15;

/// Batches an idle depot keeps: a refill for a few threads.
pub(crate) const DEPOT_RESERVE: usize = 4;

/// The layout of every block.
const LAYOUT: Layout = Layout::new::<Task>();

// A free block stores its link in its first word.
const _: () = assert!(LAYOUT.size() >= size_of::<Free>() && LAYOUT.align() >= align_of::<Free>());

/// A block on a free list: its first word links to the next one; the rest
/// is unused memory.
struct Free {
    next: Option<NonNull<Free>>,
}

/// A singly linked list of free blocks, owned by whoever holds the list.
struct List {
    head: Option<NonNull<Free>>,
    len: usize,
}

// SAFETY: a list owns its blocks exclusively (module invariant): nothing
// else points to them, so the list may move to another thread (the depot
// moves whole batches between threads under its mutex).
unsafe impl Send for List {}

impl List {
    const EMPTY: List = List { head: None, len: 0 };

    /// Add `block` to the list.
    ///
    /// # Safety
    /// `block` is a block of [`LAYOUT`] from the global allocator, holding no
    /// live value, owned by the caller, which gives it to the list.
    unsafe fn push(&mut self, block: NonNull<Free>) {
        // SAFETY: the block is at least a `Free` in size and alignment (the
        // assertion above) and nobody else uses it.
        unsafe { block.as_ptr().write(Free { next: self.head }) };
        self.head = Some(block);
        self.len += 1;
    }

    /// Take a block off the list: the caller owns it now.
    fn pop(&mut self) -> Option<NonNull<Free>> {
        let block = self.head?;
        // SAFETY: a block on the list was written by `push` and is owned by
        // the list, which we borrow mutably.
        self.head = unsafe { block.as_ref().next };
        self.len -= 1;
        Some(block)
    }

    /// Give every block back to the allocator.
    fn free_all(mut self) {
        while let Some(block) = self.pop() {
            // SAFETY: the block came from `std::alloc::alloc(LAYOUT)` (module
            // invariant) and is ours now; it is freed once.
            unsafe { std::alloc::dealloc(block.as_ptr().cast(), LAYOUT) };
        }
    }
}

/// The global list of full batches.
pub(crate) struct Depot {
    /// Each list holds exactly [`BATCH`] blocks.
    batches: std::sync::Mutex<Batches>,
    /// `batches.len()`, written under the lock and read without it: a
    /// spawner whose list is empty checks it before it takes the lock, so
    /// that while the depot is empty (a spawner running ahead of the
    /// workers that free) each spawn does not lock and unlock for nothing.
    /// Only a hint: the lock decides.
    len: AtomicUsize,
    /// At most this many batches.
    cap: usize,
}

/// The depot's lists, and when a batch last came or went.
struct Batches {
    lists: Vec<List>,
    /// The last `put` or `take`; `None` before the first.
    moved: Option<Instant>,
}

impl Depot {
    pub(crate) const fn new(cap: usize) -> Depot {
        Depot {
            batches: std::sync::Mutex::new(Batches {
                lists: Vec::new(),
                moved: None,
            }),
            len: AtomicUsize::new(0),
            cap,
        }
    }

    /// Keep a full batch, or free it if the depot is full.
    fn put(&self, batch: List) {
        debug_assert_eq!(batch.len, BATCH);
        if self.len.load(Ordering::Relaxed) < self.cap {
            let mut batches = crate::loom_shim::lock_std(&self.batches);
            if batches.lists.len() < self.cap {
                batches.lists.push(batch);
                batches.moved = Some(Instant::now());
                self.len.store(batches.lists.len(), Ordering::Relaxed);
                return;
            }
        }
        batch.free_all();
    }

    /// A full batch, if the depot has one.
    fn take(&self) -> Option<List> {
        if self.len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut batches = crate::loom_shim::lock_std(&self.batches);
        let batch = batches.lists.pop();
        batches.moved = Some(Instant::now());
        self.len.store(batches.lists.len(), Ordering::Relaxed);
        batch
    }

    /// Free all but `reserve` batches if no batch came or went for `quiet`.
    /// Returns the batches freed, or how long until the depot is due
    /// (`Err(None)`: at most `reserve` batches, nothing to do).
    fn trim_if_idle(&self, reserve: usize, quiet: Duration) -> Result<usize, Option<Duration>> {
        if self.len.load(Ordering::Relaxed) <= reserve {
            return Err(None);
        }
        let extra = {
            let mut batches = crate::loom_shim::lock_std(&self.batches);
            if batches.lists.len() <= reserve {
                return Err(None);
            }
            let since = batches.moved.map_or(quiet, |t| t.elapsed());
            if since < quiet {
                return Err(Some(quiet - since));
            }
            let extra = batches.lists.split_off(reserve);
            self.len.store(reserve, Ordering::Relaxed);
            extra
        };
        // Freed outside the lock: a spawner that needs a batch never waits
        // for these `free`s.
        let n = extra.len();
        extra.into_iter().for_each(List::free_all);
        Ok(n)
    }

    /// Blocks held (tests).
    #[cfg(test)]
    fn blocks(&self) -> usize {
        crate::loom_shim::lock_std(&self.batches).lists.len() * BATCH
    }
}

/// One thread's free blocks: `cur` is pushed and popped, `spare` is empty
/// or one full batch (module docs).
pub(crate) struct Local {
    cur: List,
    spare: List,
}

impl Local {
    pub(crate) const EMPTY: Local = Local {
        cur: List::EMPTY,
        spare: List::EMPTY,
    };

    /// A free block from this list, refilled from `depot` if empty; `None`
    /// if both are empty.
    #[inline]
    fn alloc(&mut self, depot: &Depot) -> Option<NonNull<Free>> {
        match self.cur.pop() {
            Some(block) => Some(block),
            None => self.refill(depot),
        }
    }

    /// `cur` is empty: take the spare batch, or one from the depot.
    #[cold]
    fn refill(&mut self, depot: &Depot) -> Option<NonNull<Free>> {
        self.cur = if self.spare.len != 0 {
            std::mem::replace(&mut self.spare, List::EMPTY)
        } else {
            depot.take()?
        };
        self.cur.pop()
    }

    /// Keep `block`; a full batch moves to `depot`.
    ///
    /// # Safety
    /// As for [`List::push`].
    #[inline]
    unsafe fn free(&mut self, depot: &Depot, block: NonNull<Free>) {
        if self.cur.len == BATCH {
            self.spill(depot);
        }
        // SAFETY: as the caller promises.
        unsafe { self.cur.push(block) };
    }

    /// `cur` is full: it becomes the spare batch, and the old spare, if
    /// any, goes to the depot.
    #[cold]
    fn spill(&mut self, depot: &Depot) {
        let full = std::mem::replace(&mut self.cur, List::EMPTY);
        let spare = std::mem::replace(&mut self.spare, full);
        if spare.len != 0 {
            depot.put(spare);
        }
    }

    /// Give full batches to `depot` and free the rest (a thread's exit).
    fn flush(&mut self, depot: &Depot) {
        for list in [
            std::mem::replace(&mut self.cur, List::EMPTY),
            std::mem::replace(&mut self.spare, List::EMPTY),
        ] {
            if list.len == BATCH {
                depot.put(list);
            } else {
                list.free_all();
            }
        }
    }

    /// Blocks held (tests).
    #[cfg(test)]
    fn blocks(&self) -> usize {
        self.cur.len + self.spare.len
    }
}

/// A thread's [`Local`] and the depot it flushes to when the thread exits.
pub(crate) struct ThreadCache {
    local: RefCell<Local>,
    depot: &'static Depot,
}

impl ThreadCache {
    pub(crate) const fn new(depot: &'static Depot) -> ThreadCache {
        ThreadCache {
            local: RefCell::new(Local::EMPTY),
            depot,
        }
    }

    /// A cached block, if this thread or the depot has one.
    fn take(&self) -> Option<NonNull<Free>> {
        self.local.try_borrow_mut().ok()?.alloc(self.depot)
    }

    /// Keep `block`; `false` if the list is busy (never, unless a bug
    /// reenters) and the caller must free it.
    ///
    /// # Safety
    /// As for [`List::push`].
    unsafe fn keep(&self, block: NonNull<Free>) -> bool {
        let Ok(mut local) = self.local.try_borrow_mut() else {
            return false;
        };
        // SAFETY: as the caller promises.
        unsafe { local.free(self.depot, block) };
        true
    }
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        self.local.get_mut().flush(self.depot);
    }
}

/// The process's depot, shared by every runtime (a block is plain heap
/// memory, tied to no runtime: dropping a runtime leaves the cache valid).
static DEPOT: Depot = Depot::new(DEPOT_BATCHES);

thread_local! {
    static LOCAL: ThreadCache = const { ThreadCache::new(&DEPOT) };
}

/// Uninitialised memory for one [`Task`], to be filled with `ptr::write`:
/// a cached block if this thread or the depot has one, else a new one.
#[inline(never)]
pub(crate) fn alloc() -> NonNull<Task> {
    // `try_with` fails only during this thread's exit, after its list was
    // flushed: then the allocator serves.
    #[cfg(not(any(loom, spindle_asan)))]
    if let Ok(Some(block)) = LOCAL.try_with(ThreadCache::take) {
        return block.cast();
    }
    // SAFETY: LAYOUT has a non-zero size (a Task is not empty).
    let raw = unsafe { std::alloc::alloc(LAYOUT) };
    match NonNull::new(raw) {
        Some(block) => block.cast(),
        None => std::alloc::handle_alloc_error(LAYOUT),
    }
}

/// Give back a block from [`alloc`].
///
/// # Safety
/// `block` came from [`alloc`], holds no live `Task` (it was dropped in
/// place, or never written), and nothing uses it any more.
#[inline(never)]
pub(crate) unsafe fn free(block: NonNull<Task>) {
    // During this thread's exit (`try_with` fails) the block goes straight
    // to the allocator.
    #[cfg(not(any(loom, spindle_asan)))]
    // SAFETY: as the caller promises: an unused block of LAYOUT from the
    // global allocator (module invariant), given to the list.
    if let Ok(true) = LOCAL.try_with(|l| unsafe { l.keep(block.cast()) }) {
        return;
    }
    // SAFETY: the block came from `std::alloc::alloc(LAYOUT)` (both paths
    // of `alloc`) and the caller gives it up, once.
    unsafe { std::alloc::dealloc(block.as_ptr().cast(), LAYOUT) };
}

/// A worker on its way to sleep: if the depot has seen no traffic for the
/// stack pool's `TRIM_AFTER`, give all but [`DEPOT_RESERVE`] of its batches
/// back to the allocator, and the allocator's free pages to the kernel.
/// Returns how long until the depot may be due (`None`: nothing to trim).
pub(crate) fn trim_if_idle() -> Option<Duration> {
    match DEPOT.trim_if_idle(DEPOT_RESERVE, crate::stack::TRIM_AFTER) {
        Ok(_) => {
            crate::stack::return_heap();
            None
        }
        Err(due) => due,
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A fresh block, as `alloc` makes one without a cache.
    fn new_block() -> NonNull<Free> {
        // SAFETY: LAYOUT is not zero-sized.
        NonNull::new(unsafe { std::alloc::alloc(LAYOUT) })
            .expect("test allocation")
            .cast()
    }

    fn free_n(local: &mut Local, depot: &Depot, n: usize) -> Vec<NonNull<Free>> {
        let blocks: Vec<_> = (0..n).map(|_| new_block()).collect();
        for &b in &blocks {
            // SAFETY: a fresh block of LAYOUT, unused, given to the list.
            unsafe { local.free(depot, b) };
        }
        blocks
    }

    #[test]
    fn a_freed_block_is_reused_lifo() {
        let depot = Depot::new(4);
        let mut local = Local::EMPTY;
        assert!(local.alloc(&depot).is_none());
        let blocks = free_n(&mut local, &depot, 3);
        let (b2, b1) = (local.alloc(&depot), local.alloc(&depot));
        assert_eq!((b2, b1), (Some(blocks[2]), Some(blocks[1])));
        assert_eq!(local.blocks(), 1);
        local.flush(&depot);
        assert_eq!((local.blocks(), depot.blocks()), (0, 0));
        for b in [b2, b1].into_iter().flatten() {
            // SAFETY: from `new_block`, taken back from the list, freed once.
            unsafe { std::alloc::dealloc(b.as_ptr().cast(), LAYOUT) };
        }
    }

    #[test]
    fn overflow_moves_whole_batches_to_the_depot() {
        let depot = Depot::new(4);
        let mut local = Local::EMPTY;
        free_n(&mut local, &depot, 2 * BATCH);
        assert_eq!((local.blocks(), depot.blocks()), (2 * BATCH, 0));
        free_n(&mut local, &depot, 1);
        assert_eq!((local.blocks(), depot.blocks()), (BATCH + 1, BATCH));
        local.flush(&depot);
        // The full spare batch joined the depot; the one left in `cur` was
        // freed.
        assert_eq!((local.blocks(), depot.blocks()), (0, 2 * BATCH));
        while let Some(batch) = depot.take() {
            batch.free_all();
        }
    }

    #[test]
    fn an_idle_depot_is_trimmed_to_its_reserve() {
        let depot = Depot::new(8);
        let mut local = Local::EMPTY;
        assert_eq!(depot.trim_if_idle(1, Duration::ZERO), Err(None));
        free_n(&mut local, &depot, 5 * BATCH);
        // Three batches spilled, and the flush gave the two full ones left.
        local.flush(&depot);
        assert_eq!(depot.blocks(), 5 * BATCH);
        // Traffic just now: not idle yet, and it says when to come back.
        let hour = Duration::from_secs(3600);
        match depot.trim_if_idle(1, hour) {
            Err(Some(due)) => assert!(due <= hour),
            other => panic!("a busy depot was trimmed: {other:?}"),
        }
        assert_eq!(depot.blocks(), 5 * BATCH);
        // Idle long enough: all but the reserve go back to the allocator.
        assert_eq!(depot.trim_if_idle(1, Duration::ZERO), Ok(4));
        assert_eq!(depot.blocks(), BATCH);
        assert_eq!(depot.trim_if_idle(1, Duration::ZERO), Err(None));
        while let Some(batch) = depot.take() {
            batch.free_all();
        }
    }

    #[test]
    fn batches_freed_on_one_thread_serve_another() {
        let depot = Depot::new(4);
        // A "runner" thread frees 3 batches and exits (flushing).
        let freed: Vec<usize> = std::thread::scope(|s| {
            s.spawn(|| {
                let mut local = Local::EMPTY;
                let blocks = free_n(&mut local, &depot, 3 * BATCH);
                local.flush(&depot);
                blocks.iter().map(|b| b.as_ptr() as usize).collect()
            })
            .join()
            .unwrap()
        });
        assert_eq!(depot.blocks(), 3 * BATCH);
        // A "spawner" thread gets every one of them back, and then none.
        let got: Vec<usize> = std::thread::scope(|s| {
            s.spawn(|| {
                let mut local = Local::EMPTY;
                let got: Vec<_> = std::iter::from_fn(|| local.alloc(&depot)).collect();
                got.into_iter().map(|b| b.as_ptr() as usize).collect()
            })
            .join()
            .unwrap()
        });
        let (mut freed, mut got) = (freed, got);
        freed.sort_unstable();
        got.sort_unstable();
        assert_eq!(freed, got);
        assert_eq!(depot.blocks(), 0);
        for b in got {
            // SAFETY: each block came from `new_block` and is freed once.
            unsafe { std::alloc::dealloc(b as *mut u8, LAYOUT) };
        }
    }

    #[test]
    fn the_depot_cap_holds() {
        let depot = Depot::new(2);
        let mut local = Local::EMPTY;
        // Two batches stay local; each further batch goes to the depot,
        // which keeps two and frees the rest.
        free_n(&mut local, &depot, 10 * BATCH);
        assert_eq!(depot.blocks(), 2 * BATCH);
        assert_eq!(local.blocks(), 2 * BATCH);
        local.flush(&depot);
        assert_eq!(depot.blocks(), 2 * BATCH);
        while let Some(batch) = depot.take() {
            batch.free_all();
        }
    }

    /// The thread-local path: a task block freed on this thread is the next
    /// one allocated here (unless the cache is bypassed).
    #[test]
    fn the_thread_cache_reuses_a_freed_block() {
        let a = alloc();
        // SAFETY: fresh from `alloc`, never written, unused.
        unsafe { free(a) };
        let b = alloc();
        #[cfg(not(spindle_asan))]
        assert_eq!(a, b);
        // SAFETY: as above.
        unsafe { free(b) };
    }

    /// A thread's list goes to its depot when the thread exits: full
    /// batches are kept, the rest freed.
    #[test]
    fn an_exiting_thread_gives_its_batches_back() {
        static TEST_DEPOT: Depot = Depot::new(4);
        thread_local! {
            static TEST_LOCAL: ThreadCache = const { ThreadCache::new(&TEST_DEPOT) };
        }
        let freed: Vec<usize> = std::thread::spawn(|| {
            let blocks: Vec<_> = (0..2 * BATCH + 5).map(|_| new_block()).collect();
            for &b in &blocks {
                // SAFETY: a fresh block of LAYOUT, unused, given to the list.
                assert!(TEST_LOCAL.with(|l| unsafe { l.keep(b) }));
            }
            // The first full batch, now in `spare`.
            blocks[..BATCH]
                .iter()
                .map(|b| b.as_ptr() as usize)
                .collect()
        })
        .join()
        .unwrap();
        // Two full batches reached the depot; the 5 in `cur` were freed.
        assert_eq!(TEST_DEPOT.blocks(), 2 * BATCH);
        let back = TEST_LOCAL.with(|l| {
            let got: Vec<_> = std::iter::from_fn(|| l.take()).collect();
            got.iter().map(|b| b.as_ptr() as usize).collect::<Vec<_>>()
        });
        assert_eq!(back.len(), 2 * BATCH);
        assert!(freed.iter().all(|b| back.contains(b)));
        for b in back {
            // SAFETY: each block came from `new_block` and is freed once.
            unsafe { std::alloc::dealloc(b as *mut u8, LAYOUT) };
        }
    }
}
