//! Coroutine stacks: reserved big, committed small, guarded, pooled.
//!
//! A coroutine needs a real machine stack: its frames live there while it is
//! parked. spindle gives every coroutine a *slot* of `stack_max` bytes carved
//! out of a large `MAP_NORESERVE` slab (`slab.rs`). The kernel commits a
//! physical page only when it is first touched, so a stack *grows on demand*
//! without any copying, and costs only what it touches.
//!
//! Invariants, in the order a slot lives them:
//!
//! 1. A slot's lowest page is a guard (`guard.rs`). Running into it is a stack
//!    overflow, reported and aborted by `overflow.rs`.
//! 2. A [`Stack`] handed to a coroutine has at most one page resident: its
//!    top page. A fresh slot has none, and a finished stack has everything
//!    below its top page released with `MADV_DONTNEED`, in batches (see
//!    `pool.rs` and `release.rs`), unless a page-table scan finds nothing
//!    resident there (`scan.rs`). The
//!    "8 KiB start" ([`page::start_window`]) is what a coroutine may *use*
//!    without a system call (the pages below the top arrive by page fault),
//!    not what a parked one keeps: a shallow coroutine costs one page,
//!    whether its slot is fresh or reused (figures:
//!    `docs/notes/runtime-figures.md`).
//! 3. Stacks are pooled per worker and globally (`pool.rs`), so a warm spawn
//!    makes no system call. Fresh slots are carved in batches, outside the
//!    pool's lock, and ahead of time by idle workers (`carve.rs`).
//! 4. Nothing outside the coroutine keeps a pointer into its stack, and
//!    nothing the runtime reads lives in it: the slot's *label* (where it
//!    is, its size, its owner's id and name for the overflow report) sits
//!    in a side table of its slab (`slab.rs`), and the [`Stack`] value is a
//!    pointer to that label. So the pages below a parked coroutine's live
//!    frames can be given back while it waits (`shrink.rs`).
//! 5. A pool that has been idle for a while gives back the memory of the
//!    stacks it holds, top pages included (`pool.rs`, *trimming*).
//!
//! **Architecture differences** (x86_64, aarch64) stay out of this module:
//! register saving, the initial frame and the red zone are corosensei's
//! business behind its `Stack` trait; the page size comes from `sysconf`
//! ([`page`]); the fault address comes from `siginfo_t::si_addr` on every
//! architecture (`overflow.rs`). The one alignment rule we must keep is that
//! the coroutine's stack base is [`STACK_ALIGNMENT`]-aligned: it is the slot
//! top, which is page-aligned. The one place that knows the register layout
//! of a switch is `shrink.rs` (the margin below a parked stack pointer).

pub(crate) mod asan;
mod carve;
pub(crate) mod compact;
pub mod guard;
pub(crate) mod overflow;
pub mod page;
pub(crate) mod pool;
mod release;
mod scan;
pub(crate) mod shrink;
mod slab;
mod trim;
pub(crate) use trim::{return_heap, TRIM_AFTER};
mod vma_budget;

/// What a run of many stacks needs from the system, for a caller planning it
/// (the benchmark's preflight): the same numbers and checks the pool uses.
pub mod budget {
    pub use super::carve::AHEAD as CARVE_AHEAD;
    pub use super::pool::{slots_per_slab, BATCH as CACHE_BATCH};
    pub use super::vma_budget::{check_vma_budget, current_map_count, max_map_count, VMA_HEADROOM};
}

use std::io;
use std::ptr::NonNull;

use corosensei::stack::STACK_ALIGNMENT;
use slab::Label;

// The stack base is the slot top, which is page-aligned.
const _: () = assert!(4096 % STACK_ALIGNMENT == 0);

/// One stack slot, owned by exactly one coroutine or pool at a time.
///
/// A pointer to the slot's label in its slab's side table (`slab.rs`),
/// which says where the slot ends (`top`, exclusive) and its size: the slot
/// spans `[top - size, top)`, and its lowest page is the guard. One word:
/// the task header stores it.
#[derive(Debug)]
pub struct Stack {
    label: NonNull<Label>,
}

// SAFETY: a Stack is a unique handle to a slot of address space and to its
// label; nothing in it is tied to the thread that created it.
unsafe impl Send for Stack {}

impl Stack {
    /// Claim a bare slot (freshly carved, or trimmed to nothing by the
    /// pool), given its label.
    ///
    /// # Safety
    /// `label` must be the label of a slot of a live slab whose lowest page
    /// is a guard, holding no live data, and no other `Stack` may describe
    /// it.
    pub(crate) unsafe fn from_bare_slot(label: NonNull<Label>) -> Stack {
        let stack = Stack { label };
        // SAFETY: the label is in the slab's side table and the slot is ours.
        unsafe { (*stack.label()).fault_mark = u64::MAX };
        stack
    }

    /// Claim a slot trimmed by the pool, whose label may have been given
    /// back (`slab::release_labels`): its geometry is written again first.
    ///
    /// # Safety
    /// As for [`from_bare_slot`](Self::from_bare_slot), and `top` and
    /// `slot_size` are the slot's, as they were recorded when it was trimmed.
    pub(crate) unsafe fn from_trimmed_slot(
        label: NonNull<Label>,
        top: usize,
        slot_size: usize,
    ) -> Stack {
        // SAFETY: the label is in the slab's side table and the slot is ours.
        unsafe {
            let l = label.as_ptr();
            (*l).top = top;
            (*l).slot_size = slot_size as u32;
            (*l).id = 0;
            (*l).name_len = 0;
        }
        // SAFETY: as the caller promises.
        unsafe { Stack::from_bare_slot(label) }
    }

    fn label(&self) -> *mut Label {
        self.label.as_ptr()
    }

    /// The slot size (`stack_max`), guard page included.
    pub fn size(&self) -> usize {
        // SAFETY: the label lives in the slab's side table as long as the
        // slab, which outlives every Stack of it (`pool.rs`).
        unsafe { (*self.label()).slot_size as usize }
    }

    pub(crate) fn top(&self) -> usize {
        // SAFETY: as for `size`.
        unsafe { (*self.label()).top }
    }

    fn slot_base(&self) -> usize {
        self.top() - self.size()
    }

    /// Record the process's page-fault count at hand-out (`release.rs`).
    pub(crate) fn set_fault_mark(&mut self, mark: u64) {
        // SAFETY: the label is ours (this Stack owns the slot) and lives as
        // long as the slab; nothing else writes it meanwhile.
        unsafe { (*self.label()).fault_mark = mark };
    }

    pub(crate) fn fault_mark(&self) -> u64 {
        // SAFETY: as for `size`.
        unsafe { (*self.label()).fault_mark }
    }

    /// Write the owner's id and name where the overflow handler looks. The
    /// name is stored as the report will print it (`overflow::escape_name`:
    /// control characters escaped, cut on a character boundary), so the
    /// signal handler only copies bytes.
    pub(crate) fn set_label(&mut self, id: u64, name: Option<&str>) {
        // SAFETY: as for `set_fault_mark`. (The signal handler may read the
        // label while we write it only if this slot faults meanwhile, which
        // cannot happen: its coroutine has not started.)
        let label = unsafe { &mut *self.label() };
        label.id = id;
        label.name_len = match name {
            None => 0,
            Some(name) => overflow::escape_name(name, &mut label.name) as u32,
        };
    }

    /// The pages a finished coroutine may have dirtied below its top page,
    /// as `(address, length)`: everything from just above the guard page up
    /// to the top page, which stays warm for the next coroutine.
    pub(crate) fn deep_range(&self) -> (usize, usize) {
        let page = page::page_size();
        let from = self.slot_base() + page;
        let to = self.top() - page;
        (from, to.saturating_sub(from))
    }

    /// Everything above the guard page, as `(address, length)`: what
    /// trimming a pooled stack releases.
    pub(crate) fn whole_range(&self) -> (usize, usize) {
        let page = page::page_size();
        (self.slot_base() + page, self.size() - page)
    }

    /// Give up the handle, keeping only its label (to make it a Stack again
    /// with [`from_bare_slot`](Self::from_bare_slot)).
    pub(crate) fn into_label(self) -> NonNull<Label> {
        self.label
    }

    /// Resident bytes of this slot, by `mincore(2)`.
    pub fn resident_bytes(&self) -> io::Result<usize> {
        slot_resident_bytes(self.slot_base(), self.size())
    }
}

// SAFETY: base() and limit() describe this slot exactly: `base` is the top
// (16-byte aligned since it is page-aligned), `limit` is the slot base
// including the guard page, as the trait asks.
// The slot stays mapped while the Stack exists (the pool keeps its slab alive).
unsafe impl corosensei::stack::Stack for Stack {
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.top()).expect("non-null")
    }

    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.slot_base()).expect("non-null")
    }
}

/// Where a coroutine's stack slot is, for measuring it from the outside.
///
/// This is a plain description (two numbers), not a handle: it stays valid to
/// query after the coroutine finished, because slots are never unmapped while
/// their runtime lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackInfo {
    /// Lowest address of the slot (the guard page starts here).
    pub base: usize,
    /// Slot size in bytes (`stack_max`), guard page included.
    pub size: usize,
}

impl StackInfo {
    /// The slot of the calling coroutine, found from the address of a local
    /// variable. `None` on a thread's own stack.
    #[inline(never)]
    pub fn current() -> Option<StackInfo> {
        let marker = 0u8;
        let addr = std::hint::black_box(&marker) as *const u8 as usize;
        slab::registry::find_slot(addr).map(|(base, size)| StackInfo { base, size })
    }

    /// Highest address of the slot (exclusive): the stack grows down from here.
    pub fn top(&self) -> usize {
        self.base + self.size
    }

    /// Bytes of this slot resident in memory right now, by `mincore(2)`.
    pub fn resident_bytes(&self) -> io::Result<usize> {
        slot_resident_bytes(self.base, self.size)
    }
}

/// Where this process's stack memory is, for a tool that splits resident
/// memory by mapping (`spindle-bench mem --breakdown`): one entry per live
/// slab, of every runtime in the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabRegion {
    /// The slots, guard pages included, as `(address, length)`.
    pub slots: (usize, usize),
    /// The slab's side table of labels (`slab.rs`), as `(address, length)`,
    /// whole pages.
    pub labels: (usize, usize),
}

/// Every live slab's [`SlabRegion`], sorted by address.
pub fn slab_regions() -> Vec<SlabRegion> {
    let label = std::mem::size_of::<Label>();
    let mut out: Vec<SlabRegion> = slab::registry::regions()
        .into_iter()
        .map(|(base, len, slot_size, labels)| SlabRegion {
            slots: (base, len),
            labels: (
                labels,
                (len / slot_size * label).next_multiple_of(page::page_size()),
            ),
        })
        .collect();
    out.sort_unstable_by_key(|r| r.slots.0);
    out
}

/// Resident bytes of the slot at `base`, guard page excluded (a guard page is
/// never resident, and qemu-user refuses `mincore` on `PROT_NONE` pages).
pub(crate) fn slot_resident_bytes(base: usize, size: usize) -> io::Result<usize> {
    let page = page::page_size();
    resident_bytes(base + page, size - page)
}

/// Resident bytes in `[addr, addr + len)` (page-aligned), by `mincore(2)`.
///
/// qemu-user refuses `mincore` (`ENOMEM`) on a range with a `PROT_NONE`
/// page in it, which under the mprotect fallback a compacted range is: then
/// each page is asked alone, and a page it refuses counts as not resident
/// (here such a page is a guard page, or a compacted range, whose memory was
/// released before it was protected).
pub fn resident_bytes(addr: usize, len: usize) -> io::Result<usize> {
    let page = page::page_size();
    match mincore(addr, len) {
        Err(e) if e.raw_os_error() == Some(libc::ENOMEM) && len > page => (0..len / page)
            .map(|i| match mincore(addr + i * page, page) {
                Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => Ok(0),
                r => r,
            })
            .sum(),
        r => r,
    }
}

fn mincore(addr: usize, len: usize) -> io::Result<usize> {
    let page = page::page_size();
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: the range is page-aligned and mapped (callers pass slots or
    // slabs they own); `vec` has one byte per page as mincore requires.
    let rc = unsafe { libc::mincore(addr as *mut _, len, vec.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(vec.iter().filter(|&&b| b & 1 != 0).count() * page)
}
