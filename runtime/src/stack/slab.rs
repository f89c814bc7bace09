//! Slabs: large anonymous reservations carved into stack slots.
//!
//! A slab is one `mmap(MAP_NORESERVE)` of `slots × slot_size` bytes. Nothing
//! is committed up front: the kernel hands out a physical page only when a
//! coroutine first touches it (demand paging). One slot looks like this
//! (addresses grow to the right, the stack grows to the left):
//!
//! ```text
//!  slot base                                                  slot top
//!  | guard |            reserved, untouched            |   touched   |
//!  |<page >|<------------------ stack_max - page ------------------->|
//! ```
//!
//! Every slot has a *label*, kept **outside** the slot, in a side table the
//! slab maps when it is reserved (one [`Label`] of 48 bytes per slot, in an
//! anonymous mapping of its own):
//! where the slot ends, its size, the page-fault mark of its last hand-out
//! (`release.rs`), and the id and name of the coroutine that owns it. The
//! [`Stack`](super::Stack) handle is a pointer to its label, which keeps
//! the handle one word. Nothing the runtime reads lives in the slot itself,
//! so every page of a parked coroutine's stack below its live frames can be
//! released (`shrink.rs`), and a compacted one can release them all. The
//! labels of slots that an idle pool trimmed to nothing go back to the
//! kernel too, a page of labels at a time ([`release_labels`]): a trimmed
//! slot keeps its geometry in the pool's list instead, and gets its label
//! rewritten when it is handed out again.
//!
//! Every slab is also entered in a fixed-size, lock-free [`registry`] with
//! the address of its label table, so that a signal handler can map a fault
//! address to a slot and its label without locks or allocation (see
//! `overflow.rs`). Invariant: a slab is registered for exactly as long as it
//! is mapped and its label table allocated; it leaves the registry *before*
//! either goes away.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::{Advice, MmapMut, MmapOptions};

use super::page::page_size;

/// Longest coroutine name kept in a label (longer names are cut): 16
/// bytes, as Linux keeps 15 characters of a thread's name. Every byte here
/// is paid for by every slot ever carved.
pub const LABEL_NAME_BYTES: usize = 16;

/// What a slot is and who owns it, in a form the signal handler can read:
/// plain bytes at a computable address (the slab's label table, indexed by
/// slot), never inside the slot.
#[repr(C)]
pub struct Label {
    /// The slot's highest address (exclusive), written once when the slab
    /// is reserved.
    pub top: usize,
    /// The slot's size, guard page included (`stack_max`: at most a few
    /// MiB, see `stack_size_for`), written with `top`.
    pub slot_size: u32,
    /// Bytes of `name` in use.
    pub name_len: u32,
    /// The process's page-fault count when the slot was last handed out
    /// (see `release.rs`); `u64::MAX` when unknown.
    pub fault_mark: u64,
    /// The owning coroutine's id and name, rewritten at every hand-out.
    pub id: u64,
    pub name: [u8; LABEL_NAME_BYTES],
}

const _: () = assert!(std::mem::size_of::<Label>() == 48);

/// One reservation of `count` slots of `slot_size` bytes each.
pub struct Slab {
    map: MmapMut,
    /// One label per slot, written only through a [`Stack`](super::Stack)
    /// that owns the slot (and once here, at reservation), through the
    /// mapping's own pointer ([`label`](Self::label)), never through a
    /// slice of it.
    label_map: MmapMut,
    slot_size: usize,
    count: usize,
    registry_index: usize,
}

impl Slab {
    /// Reserve address space for `count` slots of `slot_size` bytes.
    pub fn reserve(slot_size: usize, count: usize) -> io::Result<Slab> {
        assert!(slot_size % page_size() == 0 && count > 0);
        let len = slot_size.checked_mul(count).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "stack slab size overflows")
        })?;
        let map = MmapOptions::new()
            .len(len)
            .no_reserve_swap()
            .map_anon()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot reserve {} MiB for stacks: {e}", len >> 20),
                )
            })?;
        // Stacks must be backed by small pages: with transparent huge pages a
        // single touch could commit 2 MiB, and khugepaged could fill a slot's
        // pages without a fault of ours, which the release shortcut of
        // `release.rs` relies on. If the kernel refuses, that shortcut is
        // turned off for the process; stacks then only cost more memory.
        if map.advise(Advice::NoHugePage).is_err() {
            super::release::distrust_fault_count();
        }
        let base = map.as_ptr() as usize;
        let size32 = u32::try_from(slot_size).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "stack slot size exceeds 4 GiB")
        })?;
        let table_len = (count * std::mem::size_of::<Label>()).next_multiple_of(page_size());
        let mut label_map = MmapOptions::new()
            .len(table_len)
            .map_anon()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot map stack labels: {e}")))?;
        let labels = label_map.as_mut_ptr().cast::<Label>();
        for i in 0..count {
            // SAFETY: slot i's label lies inside the new mapping (table_len
            // covers `count` labels; a page-aligned mapping is aligned for
            // Label), which nothing else uses yet.
            unsafe {
                labels.add(i).write(Label {
                    top: base + (i + 1) * slot_size,
                    slot_size: size32,
                    name_len: 0,
                    fault_mark: u64::MAX,
                    id: 0,
                    name: [0; LABEL_NAME_BYTES],
                })
            };
        }
        let table = labels as usize;
        let registry_index = registry::register(base, len, slot_size, table).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "too many stack slabs (the overflow registry holds {})",
                    registry::CAPACITY
                ),
            )
        })?;
        Ok(Slab {
            map,
            label_map,
            slot_size,
            count,
            registry_index,
        })
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn base(&self) -> *mut u8 {
        self.map.as_ptr() as *mut u8
    }

    /// Lowest address of slot `i`; its guard page starts here.
    pub fn slot_base(&self, i: usize) -> *mut u8 {
        assert!(i < self.count);
        self.base().wrapping_add(i * self.slot_size)
    }

    /// The label of slot `i`, in the side table (module docs).
    pub fn label(&self, i: usize) -> NonNull<Label> {
        assert!(i < self.count);
        // memmap2's pointer is the mapping's own (no reference to its bytes
        // is ever made), so writes through it are allowed.
        let table = self.label_map.as_ptr().cast_mut().cast::<Label>();
        // SAFETY: slot i's label is inside the table (checked above), which
        // is mapped while the slab lives; the pointer is not null.
        unsafe { NonNull::new_unchecked(table.add(i)) }
    }

    /// Bytes reserved by this slab.
    pub fn reserved_bytes(&self) -> usize {
        self.slot_size * self.count
    }
}

/// Give back the pages of the labels `[first, first + count)`, whole pages
/// only (a page shared with a label outside the range is kept). Their labels
/// read as zeros afterwards, until rewritten.
///
/// # Safety
/// The range holds only labels, of live slabs' tables (two tables mapped
/// next to each other may both be in it), and their slots are trimmed (`trim.rs`): no `Stack` describes them and nobody
/// reads their labels until a hand-out rewrites them
/// ([`Stack::from_trimmed_slot`](super::Stack::from_trimmed_slot)). The
/// fault handler may still read one (a wild access into a trimmed slot): it
/// then reads zeros, which is memory of the mapping, not freed memory.
pub(super) unsafe fn release_labels(first: NonNull<Label>, count: usize) -> io::Result<()> {
    let page = page_size();
    let from = (first.as_ptr() as usize).next_multiple_of(page);
    let to = (first.as_ptr() as usize + count * std::mem::size_of::<Label>()) / page * page;
    if to <= from {
        return Ok(());
    }
    // SAFETY: `[from, to)` lies inside the label table of a live slab (the
    // caller's promise) and holds only the labels of trimmed slots, which
    // nobody reads until they are rewritten; MADV_DONTNEED on private
    // anonymous memory makes them read as zeros.
    let rc = unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Slab {
    fn drop(&mut self) {
        // Leave the registry before the memory and the labels go away (see
        // module docs); the fields are dropped after this body.
        registry::unregister(self.registry_index);
    }
}

/// The lock-free slab table read by the overflow handler.
pub mod registry {
    use super::*;

    /// Most slabs that can be mapped at once: far more than 10^6 stacks need.
    pub const CAPACITY: usize = 1 << 15;

    struct Entry {
        /// 0 = free, `usize::MAX` = being claimed, otherwise the length.
        len: AtomicUsize,
        base: AtomicUsize,
        slot_size: AtomicUsize,
        /// Address of the slab's label table (`[Label; slots]`).
        labels: AtomicUsize,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Entry = Entry {
        len: AtomicUsize::new(0),
        base: AtomicUsize::new(0),
        slot_size: AtomicUsize::new(0),
        labels: AtomicUsize::new(0),
    };
    static ENTRIES: [Entry; CAPACITY] = [EMPTY; CAPACITY];
    /// One past the highest entry ever used: the handler scans only this far.
    static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);
    /// Where a free entry probably is: just above the last one claimed, or
    /// the lowest one freed since.
    static FREE_HINT: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn register(
        base: usize,
        len: usize,
        slot_size: usize,
        labels: usize,
    ) -> Option<usize> {
        // Start at the hint, then wrap around: a scan from 0 made reserving
        // the n-th slab cost n failed claims, quadratic over a burst. The
        // hint is only a hint: the claim below decides.
        let from = FREE_HINT.load(Ordering::Relaxed).min(CAPACITY);
        let order = (from..CAPACITY).chain(0..from);
        for i in order {
            let e = &ENTRIES[i];
            if e.len
                .compare_exchange(0, usize::MAX, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                e.base.store(base, Ordering::Relaxed);
                e.slot_size.store(slot_size, Ordering::Relaxed);
                e.labels.store(labels, Ordering::Relaxed);
                e.len.store(len, Ordering::Release);
                HIGH_WATER.fetch_max(i + 1, Ordering::Release);
                FREE_HINT.store(i + 1, Ordering::Relaxed);
                return Some(i);
            }
        }
        None
    }

    pub(super) fn unregister(i: usize) {
        ENTRIES[i].len.store(0, Ordering::Release);
        FREE_HINT.fetch_min(i, Ordering::Relaxed);
    }

    /// Every registered slab as `(base, len, slot_size)`, sorted by base,
    /// into `out` (cleared first). Not for the signal handler (it sorts).
    pub fn snapshot(out: &mut Vec<(usize, usize, usize)>) {
        out.clear();
        let n = HIGH_WATER.load(Ordering::Acquire);
        for e in &ENTRIES[..n] {
            let len = e.len.load(Ordering::Acquire);
            if len == 0 || len == usize::MAX {
                continue;
            }
            let base = e.base.load(Ordering::Relaxed);
            out.push((base, len, e.slot_size.load(Ordering::Relaxed)));
        }
        out.sort_unstable();
    }

    /// Every registered slab as `(base, len, slot_size, label table)`, in
    /// no particular order. Not for the signal handler.
    pub fn regions() -> Vec<(usize, usize, usize, usize)> {
        let n = HIGH_WATER.load(Ordering::Acquire);
        ENTRIES[..n]
            .iter()
            .filter_map(|e| {
                let len = e.len.load(Ordering::Acquire);
                if len == 0 || len == usize::MAX {
                    return None;
                }
                Some((
                    e.base.load(Ordering::Relaxed),
                    len,
                    e.slot_size.load(Ordering::Relaxed),
                    e.labels.load(Ordering::Relaxed),
                ))
            })
            .collect()
    }

    /// The slot containing `addr`, as `(slot_base, slot_size)`.
    /// Async-signal-safe: only atomic loads, no locks, no allocation.
    pub fn find_slot(addr: usize) -> Option<(usize, usize)> {
        find(addr).map(|slot| (slot.base, slot.size))
    }

    /// The top (exclusive) of slot `slot` of registry entry `entry`, if
    /// that entry is a registered slab holding such a slot.
    pub fn slot_top(entry: usize, slot: usize) -> Option<usize> {
        let e = ENTRIES.get(entry)?;
        let len = e.len.load(Ordering::Acquire);
        let size = e.slot_size.load(Ordering::Relaxed);
        let end = slot.checked_add(1)?.checked_mul(size)?;
        if len == usize::MAX || size == 0 || end > len {
            return None;
        }
        Some(e.base.load(Ordering::Relaxed) + end)
    }

    /// A slot found by address: where it is and where its label is.
    #[derive(Clone, Copy)]
    pub struct Found {
        pub base: usize,
        pub size: usize,
        pub label: *const Label,
        /// The slab's registry entry (stable while it is registered) and
        /// the slot's index in the slab: the key of side tables such as
        /// compaction's (`compact/table.rs`).
        pub entry: usize,
        pub slot: usize,
    }

    /// The slot containing `addr`, with its label. Async-signal-safe, as
    /// [`find_slot`]. The label stays valid while the slab is registered.
    pub fn find(addr: usize) -> Option<Found> {
        let n = HIGH_WATER.load(Ordering::Acquire);
        for (entry, e) in ENTRIES[..n].iter().enumerate() {
            let len = e.len.load(Ordering::Acquire);
            if len == 0 || len == usize::MAX {
                continue;
            }
            let base = e.base.load(Ordering::Relaxed);
            if addr >= base && addr - base < len {
                let size = e.slot_size.load(Ordering::Relaxed);
                let index = (addr - base) / size;
                let labels = e.labels.load(Ordering::Relaxed) as *const Label;
                return Some(Found {
                    base: base + index * size,
                    size,
                    label: labels.wrapping_add(index),
                    entry,
                    slot: index,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_maps_addresses_to_slots_until_the_slab_drops() {
        let page = page_size();
        let slab = Slab::reserve(16 * page, 4).unwrap();
        let inside = slab.slot_base(2) as usize + 5 * page + 7;
        assert_eq!(
            registry::find_slot(inside),
            Some((slab.slot_base(2) as usize, 16 * page))
        );
        let end = slab.base() as usize + slab.reserved_bytes();
        assert_eq!(registry::find_slot(end), None);
        let found = registry::find(inside).unwrap();
        assert_eq!(found.label, slab.label(2).as_ptr().cast_const());
        // SAFETY: the slab (and its label table) is alive.
        assert_eq!(unsafe { (*found.label).top }, slab.slot_base(3) as usize);
        drop(slab);
        assert_eq!(registry::find_slot(inside), None);
    }
}
