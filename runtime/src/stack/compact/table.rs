//! The compaction side table: one [`SlotRecord`] per stack slot, found from
//! an address alone, so the fault handler can reach it.
//!
//! A slot's record cannot live in the slot (its pages are what compaction
//! releases), nor only in the task (the handler knows a fault address, not a
//! task). So every registered slab (`slab::registry`) may have a table of
//! records, indexed by slot, held in a static array parallel to the
//! registry. A table is made by a worker the first time it compacts a slot
//! of that slab (a zero-filled `mmap`: a record that was never used costs no
//! memory) and is never freed: a handler may be reading it. Every table has
//! room for the most slots a slab can have ([`TABLE_SLOTS`]), so a registry
//! entry reused by another slab reuses its table (whose records are all
//! `RESIDENT`: a coroutine is restored before it can finish).

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use crate::stack::pool;
use crate::stack::slab::registry::{self, CAPACITY};

/// Where one slot's compacted bytes are, and who may restore them
/// (`mod.rs`). Plain atomics: the signal handler reads it.
#[repr(C)]
pub(crate) struct SlotRecord {
    /// `RESIDENT`, `COMPACTING`, ... (`mod.rs`); a futex word.
    pub state: AtomicU32,
    /// How many bytes below the slot top were saved (the buffer's length).
    pub saved: AtomicUsize,
    /// The buffer, allocated by the home worker; null when `RESIDENT`.
    pub buf: AtomicPtr<u8>,
}

#[allow(clippy::declare_interior_mutable_const)]
const NO_TABLE: AtomicPtr<SlotRecord> = AtomicPtr::new(std::ptr::null_mut());
/// The table of registry entry `i`.
static TABLES: [AtomicPtr<SlotRecord>; CAPACITY] = [NO_TABLE; CAPACITY];

/// Records per table: the most slots a slab can hold (`pool::slots_per_slab`
/// at the smallest `stack_max`).
const TABLE_SLOTS: usize = pool::SLAB_BYTES / crate::MIN_STACK_MAX;

/// The record of the slot holding `addr`, if its slab has a table.
/// Async-signal-safe: atomic loads only.
pub(crate) fn find(addr: usize) -> Option<(&'static SlotRecord, usize)> {
    let slab = registry::find_slab(addr)?;
    let i = slab.slot_index(addr);
    let table = TABLES[slab.index].load(Ordering::Acquire);
    if table.is_null() || i >= TABLE_SLOTS {
        return None;
    }
    let top = slab.base + (i + 1) * slab.slot_size;
    // SAFETY: tables are never freed, and `i` is within this one.
    Some((unsafe { &*table.add(i) }, top))
}

/// The record of the slot whose top is `top`, making its slab's table if
/// needed. For the home worker (it may allocate); `None` if the address is
/// in no registered slab or the table cannot be mapped.
pub(crate) fn get_or_make(top: usize) -> Option<&'static SlotRecord> {
    let slab = registry::find_slab(top - 1)?;
    let i = slab.slot_index(top - 1);
    if i >= TABLE_SLOTS {
        return None;
    }
    let mut table = TABLES[slab.index].load(Ordering::Acquire);
    if table.is_null() {
        table = make(slab.index)?;
    }
    // SAFETY: tables are never freed and hold TABLE_SLOTS records.
    Some(unsafe { &*table.add(i) })
}

fn make(index: usize) -> Option<*mut SlotRecord> {
    let bytes = TABLE_SLOTS * std::mem::size_of::<SlotRecord>();
    // SAFETY: a fresh private anonymous mapping; all-zero bytes are valid
    // records (RESIDENT, nothing saved, no buffer).
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    // Another worker may have made one meanwhile: keep the winner's.
    match TABLES[index].compare_exchange(
        std::ptr::null_mut(),
        p.cast(),
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => Some(p.cast()),
        Err(theirs) => {
            // SAFETY: our own mapping, never published.
            unsafe { libc::munmap(p, bytes) };
            Some(theirs)
        }
    }
}
