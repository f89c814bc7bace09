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
//!    top page, which holds the label. A fresh slot has only that page, and
//!    a finished stack has everything below it released with
//!    `MADV_DONTNEED`, in batches (see `pool.rs` and `release.rs`). The
//!    "8 KiB start" ([`page::start_window`]) is what a coroutine may *use*
//!    without a system call (the pages below the top arrive by page fault),
//!    not what a parked one keeps: a shallow coroutine costs one page,
//!    whether its slot is fresh or reused (figures:
//!    `docs/notes/runtime-figures.md`).
//! 3. Stacks are pooled per worker and globally (`pool.rs`), so a warm spawn
//!    makes no system call.
//! 4. Nothing outside the coroutine keeps a pointer into its stack. The
//!    [`Stack`] value itself only knows where the slot is.
//! 5. A pool that has been idle for a while gives back the memory of the
//!    stacks it holds, top pages included (`pool.rs`, *trimming*).
//!
//! **Architecture differences** (x86_64, aarch64) stay out of this module:
//! register saving, the initial frame and the red zone are corosensei's
//! business behind its `Stack` trait; the page size comes from `sysconf`
//! ([`page`]); the fault address comes from `siginfo_t::si_addr` on every
//! architecture (`overflow.rs`). The one alignment rule we must keep is that
//! the coroutine's stack base is [`STACK_ALIGNMENT`]-aligned, which the
//! label size guarantees (checked at compile time below).

pub(crate) mod asan;
pub(crate) mod compact;
pub mod guard;
pub(crate) mod overflow;
pub mod page;
pub(crate) mod pool;
mod release;
mod slab;
mod trim;
mod vma_budget;

/// What a run of many stacks needs from the system, for a caller planning it
/// (the benchmark's preflight): the same numbers and checks the pool uses.
pub mod budget {
    pub use super::pool::{slots_per_slab, BATCH as CACHE_BATCH};
    pub use super::vma_budget::{check_vma_budget, current_map_count, max_map_count, VMA_HEADROOM};
}

use std::io;
use std::ptr::NonNull;

use corosensei::stack::STACK_ALIGNMENT;
use slab::{Label, LABEL_BYTES};

// The stack base is the slot top (page-aligned) minus the label.
const _: () = assert!(LABEL_BYTES % STACK_ALIGNMENT == 0);

/// One stack slot, owned by exactly one coroutine or pool at a time.
///
/// `top` is the highest address of the slot (exclusive). The slot spans
/// `[top - size, top)`, where `size` is kept in the slot's label, and its
/// lowest page is the guard. One word: the task header stores it.
#[derive(Debug)]
pub struct Stack {
    top: NonNull<u8>,
}

// SAFETY: a Stack is a unique handle to a slot of address space; nothing in it
// is tied to the thread that created it.
unsafe impl Send for Stack {}

impl Stack {
    /// Claim a bare slot (freshly carved, or trimmed to nothing by the
    /// pool) and record its size in its label.
    ///
    /// # Safety
    /// `[top - size, top)` must be a slot of a live slab whose lowest page
    /// is a guard, holding no live data, and no other `Stack` may describe
    /// it.
    pub(crate) unsafe fn from_bare_slot(top: NonNull<u8>, size: usize) -> Stack {
        let stack = Stack { top };
        // SAFETY: the label lies in the slot's top bytes, which are writable
        // and aligned; the slot is ours.
        unsafe {
            (*stack.label()).slot_size = size as u64;
            (*stack.label()).fault_mark = u64::MAX;
        }
        stack
    }

    fn label(&self) -> *mut Label {
        (self.top() - LABEL_BYTES) as *mut Label
    }

    /// The slot size (`stack_max`), guard page included.
    pub fn size(&self) -> usize {
        // SAFETY: the label was written when the slot was carved and stays in
        // the slot's top page, which is never released.
        unsafe { (*self.label()).slot_size as usize }
    }

    pub(crate) fn top(&self) -> usize {
        self.top.as_ptr() as usize
    }

    fn slot_base(&self) -> usize {
        self.top() - self.size()
    }

    /// Record the process's page-fault count at hand-out (`release.rs`).
    pub(crate) fn set_fault_mark(&mut self, mark: u64) {
        // SAFETY: as for `set_label`: the label is ours, writable and aligned.
        unsafe { (*self.label()).fault_mark = mark };
    }

    pub(crate) fn fault_mark(&self) -> u64 {
        // SAFETY: as for `size`: the label stays in the never-released top page.
        unsafe { (*self.label()).fault_mark }
    }

    /// Write the owner's id and name where the overflow handler looks. The
    /// name is stored as the report will print it (`overflow::escape_name`:
    /// control characters escaped, cut on a character boundary), so the
    /// signal handler only copies bytes.
    pub(crate) fn set_label(&mut self, id: u64, name: Option<&str>) {
        // SAFETY: the top LABEL_BYTES of the slot belong to this Stack, are
        // writable (above the guard) and aligned (top is page-aligned).
        let label = unsafe { &mut *self.label() };
        label.id = id;
        label.name_len = match name {
            None => 0,
            Some(name) => overflow::escape_name(name, &mut label.name) as u64,
        };
    }

    /// The pages a finished coroutine may have dirtied below its top page,
    /// as `(address, length)`: everything from just above the guard page up
    /// to the top page, which keeps the label.
    pub(crate) fn deep_range(&self) -> (usize, usize) {
        let page = page::page_size();
        let from = self.slot_base() + page;
        let to = self.top() - page;
        (from, to.saturating_sub(from))
    }

    /// Everything above the guard page, label included, as `(address,
    /// length)`: what trimming a pooled stack releases.
    pub(crate) fn whole_range(&self) -> (usize, usize) {
        let page = page::page_size();
        (self.slot_base() + page, self.size() - page)
    }

    /// Give up the handle, keeping only where the slot ends: after its
    /// memory is released the label is gone, and with it the size.
    pub(crate) fn into_top(self) -> NonNull<u8> {
        self.top
    }

    /// Resident bytes of this slot, by `mincore(2)`.
    pub fn resident_bytes(&self) -> io::Result<usize> {
        slot_resident_bytes(self.slot_base(), self.size())
    }
}

// SAFETY: base() and limit() describe this slot exactly: `base` is the top
// minus the label (16-byte aligned since top is page-aligned and LABEL_BYTES is
// 64), `limit` is the slot base including the guard page, as the trait asks.
// The slot stays mapped while the Stack exists (the pool keeps its slab alive).
unsafe impl corosensei::stack::Stack for Stack {
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.top() - LABEL_BYTES).expect("non-null")
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

/// Resident bytes of the slot at `base`, guard page excluded (a guard page is
/// never resident, and qemu-user refuses `mincore` on `PROT_NONE` pages).
pub(crate) fn slot_resident_bytes(base: usize, size: usize) -> io::Result<usize> {
    let page = page::page_size();
    resident_bytes(base + page, size - page)
}

/// Resident bytes in `[addr, addr + len)` (page-aligned), by `mincore(2)`.
pub fn resident_bytes(addr: usize, len: usize) -> io::Result<usize> {
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
