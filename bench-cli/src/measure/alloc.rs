//! A counting global allocator: how many heap bytes does the runtime keep?
//!
//! RSS says how much memory the process holds, but not *why*. To split the
//! cost of a parked coroutine into "stack pages" and "runtime heap" (its task
//! control block, its channel waiter record), this binary installs a thin
//! wrapper around the system allocator that adds every allocation's size to a
//! counter and subtracts every free.
//!
//! Counting is switched on only while `mem` measures ([`start`] .. [`stop`]).
//! Switched off, the wrapper costs one relaxed load of a flag, so the timing
//! benchmarks are not slowed by shared counters. The figure is the *net* heap
//! growth inside the window, in requested bytes: malloc adds its own chunk
//! header (8 to 16 B per block), which shows up in RSS but not here, so the
//! block count is reported too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};

/// The system allocator, plus counters while [`start`]ed.
pub struct Counting;

static ENABLED: AtomicBool = AtomicBool::new(false);
static BYTES: AtomicI64 = AtomicI64::new(0);
static BLOCKS: AtomicI64 = AtomicI64::new(0);

fn count(bytes: isize, blocks: i64) {
    if ENABLED.load(Relaxed) {
        BYTES.fetch_add(bytes as i64, Relaxed);
        BLOCKS.fetch_add(blocks, Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the counters have no effect
// on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract of GlobalAlloc::alloc.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract of GlobalAlloc::alloc_zeroed.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract of GlobalAlloc::dealloc.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract of GlobalAlloc::realloc.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize, 0);
        }
        p
    }
}

/// Net heap change since [`start`].
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapDelta {
    pub bytes: i64,
    pub blocks: i64,
}

/// Reset the counters and start counting.
pub fn start() {
    BYTES.store(0, Relaxed);
    BLOCKS.store(0, Relaxed);
    ENABLED.store(true, Relaxed);
}

/// The net change so far (counting goes on).
pub fn read() -> HeapDelta {
    HeapDelta {
        bytes: BYTES.load(Relaxed),
        blocks: BLOCKS.load(Relaxed),
    }
}

/// Stop counting and return the net change.
pub fn stop() -> HeapDelta {
    let d = read();
    ENABLED.store(false, Relaxed);
    d
}
