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
    /// The buffer's length (`runs.rs`: zero runs left out).
    pub buf_len: AtomicU32,
    /// How many bytes below the slot top were saved.
    pub saved: AtomicUsize,
    /// The slot's top (exclusive), written with the buffer.
    pub top: AtomicUsize,
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

/// A slot's key in the tables: its slab's registry entry and its index
/// there, packed into 27 bits (so a task can keep it in a `u32`).
pub(crate) type Key = u32;

const SLOT_BITS: u32 = TABLE_SLOTS.trailing_zeros();
const _: () = assert!(TABLE_SLOTS.is_power_of_two());
const _: () = assert!(CAPACITY.trailing_zeros() + SLOT_BITS < 31);

/// The record of the slot holding `addr`, with the slot's top, if its slab
/// has a table. Async-signal-safe: atomic loads only.
pub(crate) fn find(addr: usize) -> Option<(&'static SlotRecord, usize)> {
    let slot = registry::find(addr)?;
    let table = TABLES[slot.entry].load(Ordering::Acquire);
    if table.is_null() || slot.slot >= TABLE_SLOTS {
        return None;
    }
    // SAFETY: tables are never freed, and `slot.slot` is within this one.
    Some((unsafe { &*table.add(slot.slot) }, slot.base + slot.size))
}

/// The key of the slot holding `top - 1`, and the slot's base, making its
/// slab's table if needed. For the home worker (it may allocate); `None` if
/// the address is in no registered slab or the table cannot be mapped.
pub(crate) fn key_for(top: usize) -> Option<(Key, usize)> {
    let slot = registry::find(top - 1)?;
    if slot.slot >= TABLE_SLOTS {
        return None;
    }
    if TABLES[slot.entry].load(Ordering::Acquire).is_null() {
        make(slot.entry)?;
    }
    Some((
        ((slot.entry as u32) << SLOT_BITS) | slot.slot as u32,
        slot.base,
    ))
}

/// [`key_for`] with a memory of the slabs already seen: the registry is a
/// list (a scan costs microseconds at 10^6 stacks), so each compacting
/// worker keeps the slabs of its own stacks sorted by address. An entry
/// stays valid while its runtime lives: its slabs are unmapped only when
/// its pool is dropped, and a worker only asks about its own tasks.
#[derive(Default)]
pub(crate) struct SlabCache {
    /// `(slab base, slab end, registry entry, slot size)`, sorted by base.
    slabs: Vec<(usize, usize, usize, usize)>,
}

impl SlabCache {
    /// The key, base and top of the slot holding `addr` (see [`key_for`]).
    pub fn locate(&mut self, addr: usize) -> Option<(Key, usize, usize)> {
        let i = self.slabs.partition_point(|s| s.0 <= addr);
        if let Some(&(base, end, entry, size)) = i.checked_sub(1).map(|i| &self.slabs[i]) {
            if addr < end {
                let slot = (addr - base) / size;
                if slot < TABLE_SLOTS && !TABLES[entry].load(Ordering::Acquire).is_null() {
                    return Some((
                        ((entry as u32) << SLOT_BITS) | slot as u32,
                        base + slot * size,
                        base + (slot + 1) * size,
                    ));
                }
            }
        }
        let (key, slot_base) = key_for(addr + 1)?;
        let slot = registry::find(addr)?;
        let base = slot.base - slot.slot * slot.size;
        let end = base + pool::slots_per_slab(slot.size) * slot.size;
        let i = self.slabs.partition_point(|s| s.0 < base);
        if self.slabs.get(i).is_none_or(|s| s.0 != base) {
            self.slabs.insert(i, (base, end, slot.entry, slot.size));
        }
        Some((key, slot_base, slot_base + slot.size))
    }
}

/// The record a [`key_for`] key names.
pub(crate) fn record(key: Key) -> &'static SlotRecord {
    let entry = (key >> SLOT_BITS) as usize;
    let slot = (key & ((1 << SLOT_BITS) - 1)) as usize;
    let table = TABLES[entry].load(Ordering::Acquire);
    assert!(!table.is_null(), "compaction key without a table");
    // SAFETY: tables are never freed; `slot` < TABLE_SLOTS by construction.
    unsafe { &*table.add(slot) }
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
