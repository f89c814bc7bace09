//! Slabs: large anonymous reservations carved into stack slots.
//!
//! A slab is one `mmap(MAP_NORESERVE)` of `slots × slot_size` bytes. Nothing
//! is committed up front: the kernel hands out a physical page only when a
//! coroutine first touches it (demand paging). One slot looks like this
//! (addresses grow to the right, the stack grows to the left):
//!
//! ```text
//!  slot base                                                    slot top
//!  | guard |            reserved, untouched            | touched | label |
//!  |<page >|<------------- stack_max - page - label ---------------->|
//! ```
//!
//! The *label* is the top 64 bytes of the slot: the slot size, the page-fault
//! mark of its last hand-out (`release.rs`), and the id and name of the
//! coroutine that owns it. The overflow handler reads it after
//! finding the slot from the fault address (see `overflow.rs`), and the
//! [`Stack`](super::Stack) handle reads its size from it, which keeps the
//! handle one word.
//!
//! Every slab is also entered in a fixed-size, lock-free [`registry`] so that
//! a signal handler can map a fault address to a slot without locks or
//! allocation. Invariant: a slab is registered for exactly as long as it is
//! mapped; it leaves the registry *before* `munmap`.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::{Advice, MmapMut, MmapOptions};

use super::page::page_size;

/// Bytes at the top of every slot reserved for its [`Label`].
pub const LABEL_BYTES: usize = 64;
/// Longest coroutine name kept in a label (longer names are cut).
pub const LABEL_NAME_BYTES: usize = LABEL_BYTES - 32;

/// What a slot is and who owns it, in a form the signal handler can read:
/// plain bytes at a computable address, the top [`LABEL_BYTES`] of the slot.
#[repr(C)]
pub struct Label {
    /// The slot's size, written once when the slot is carved.
    pub slot_size: u64,
    /// The process's page-fault count when the slot was last handed out
    /// (see `release.rs`); `u64::MAX` when unknown.
    pub fault_mark: u64,
    /// The owning coroutine's id and name, rewritten at every hand-out.
    pub id: u64,
    pub name_len: u64,
    pub name: [u8; LABEL_NAME_BYTES],
}

/// One reservation of `count` slots of `slot_size` bytes each.
pub struct Slab {
    map: MmapMut,
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
        let registry_index = registry::register(base, len, slot_size).ok_or_else(|| {
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

    /// Bytes reserved by this slab.
    pub fn reserved_bytes(&self) -> usize {
        self.slot_size * self.count
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        // Leave the registry before the memory goes away (see module docs).
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
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Entry = Entry {
        len: AtomicUsize::new(0),
        base: AtomicUsize::new(0),
        slot_size: AtomicUsize::new(0),
    };
    static ENTRIES: [Entry; CAPACITY] = [EMPTY; CAPACITY];
    /// One past the highest entry ever used: the handler scans only this far.
    static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn register(base: usize, len: usize, slot_size: usize) -> Option<usize> {
        for (i, e) in ENTRIES.iter().enumerate() {
            if e.len
                .compare_exchange(0, usize::MAX, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                e.base.store(base, Ordering::Relaxed);
                e.slot_size.store(slot_size, Ordering::Relaxed);
                e.len.store(len, Ordering::Release);
                HIGH_WATER.fetch_max(i + 1, Ordering::Release);
                return Some(i);
            }
        }
        None
    }

    pub(super) fn unregister(i: usize) {
        ENTRIES[i].len.store(0, Ordering::Release);
    }

    /// The slot containing `addr`, as `(slot_base, slot_size)`.
    /// Async-signal-safe: only atomic loads, no locks, no allocation.
    pub fn find_slot(addr: usize) -> Option<(usize, usize)> {
        find_slab(addr).map(|s| (s.slot_base(addr), s.slot_size))
    }

    /// A registered slab, as found from an address inside it.
    #[derive(Clone, Copy, Debug)]
    pub struct Found {
        /// The registry entry: stable while the slab is mapped.
        pub index: usize,
        pub base: usize,
        /// Bytes reserved by the slab.
        pub len: usize,
        pub slot_size: usize,
    }

    impl Found {
        /// Index of the slot holding `addr` within its slab.
        pub fn slot_index(&self, addr: usize) -> usize {
            (addr - self.base) / self.slot_size
        }

        fn slot_base(&self, addr: usize) -> usize {
            self.base + self.slot_index(addr) * self.slot_size
        }
    }

    /// The slab containing `addr`. Async-signal-safe, like [`find_slot`].
    pub fn find_slab(addr: usize) -> Option<Found> {
        let n = HIGH_WATER.load(Ordering::Acquire);
        for (index, e) in ENTRIES[..n].iter().enumerate() {
            let len = e.len.load(Ordering::Acquire);
            if len == 0 || len == usize::MAX {
                continue;
            }
            let base = e.base.load(Ordering::Relaxed);
            if addr >= base && addr - base < len {
                let slot_size = e.slot_size.load(Ordering::Relaxed);
                return Some(Found {
                    index,
                    base,
                    len,
                    slot_size,
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
        drop(slab);
        assert_eq!(registry::find_slot(inside), None);
    }
}
