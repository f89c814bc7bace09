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
//! 2. A [`Stack`] handed to a coroutine has at most [`page::start_window`]
//!    bytes resident (the "8 KiB start"): fresh slots have none, and a stack
//!    returned to the pool has everything below its top window released with
//!    `MADV_DONTNEED` (see [`Stack::release_deep_pages`]).
//! 3. Stacks are pooled per worker and globally (`pool.rs`), so a warm spawn
//!    makes no system call.
//! 4. Nothing outside the coroutine keeps a pointer into its stack. The
//!    [`Stack`] value itself only knows where the slot is.

pub mod guard;
pub(crate) mod overflow;
pub mod page;
pub(crate) mod pool;
pub mod slab;

use std::io;
use std::ptr::NonNull;

use slab::{Label, LABEL_BYTES, LABEL_NAME_BYTES};

/// One stack slot, owned by exactly one coroutine or pool at a time.
///
/// `top` is the highest address of the slot (exclusive); the slot spans
/// `[top - size, top)` and its lowest page is the guard.
#[derive(Debug)]
pub struct Stack {
    top: NonNull<u8>,
    size: usize,
}

// SAFETY: a Stack is a unique handle to a slot of address space; nothing in it
// is tied to the thread that created it.
unsafe impl Send for Stack {}

impl Stack {
    /// # Safety
    /// `[top - size, top)` must be a slot of a live slab whose lowest page is a
    /// guard, and no other `Stack` may describe it.
    pub(crate) unsafe fn from_raw(top: NonNull<u8>, size: usize) -> Stack {
        Stack { top, size }
    }

    /// The slot size (`stack_max`), guard page included.
    pub fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn top(&self) -> usize {
        self.top.as_ptr() as usize
    }

    fn slot_base(&self) -> usize {
        self.top() - self.size
    }

    /// Write the owner's id and name where the overflow handler looks.
    pub(crate) fn set_label(&mut self, id: u64, name: Option<&str>) {
        let name = name.unwrap_or("").as_bytes();
        let len = name.len().min(LABEL_NAME_BYTES);
        let mut label = Label {
            id,
            name_len: len as u64,
            name: [0; LABEL_NAME_BYTES],
        };
        label.name[..len].copy_from_slice(&name[..len]);
        let at = (self.top() - LABEL_BYTES) as *mut Label;
        // SAFETY: the top LABEL_BYTES of the slot belong to this Stack, are
        // writable (above the guard) and aligned (top is page-aligned).
        unsafe { at.write(label) };
    }

    /// Give back to the kernel every page below the top start window, so a
    /// coroutine that once recursed deeply does not pin that memory in the
    /// pool. One `madvise` call; pages not resident cost nothing to drop.
    pub(crate) fn release_deep_pages(&self) -> io::Result<()> {
        let page = page::page_size();
        let from = self.slot_base() + page;
        let to = self.top() - page::start_window();
        if to <= from {
            return Ok(());
        }
        // SAFETY: the range is inside this Stack's slot, above the guard, and
        // the coroutine that used it has finished: no live data is there.
        let rc = unsafe { libc::madvise(from as *mut _, to - from, libc::MADV_DONTNEED) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Resident bytes of this slot, by `mincore(2)`.
    pub fn resident_bytes(&self) -> io::Result<usize> {
        resident_bytes(self.slot_base(), self.size)
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
