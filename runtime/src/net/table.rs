//! The poller's table of [`Readiness`] entries, one per registered socket.
//!
//! An epoll event carries 64 bits of user data chosen at registration. We
//! put an entry's *index* and the registration's *sequence number* there,
//! not a pointer: the event may be read by one worker while another closes
//! the socket, so the data must stay meaningful after the socket is gone.
//! Entries are therefore never freed while the poller lives, only reused
//! (Go's `pollcache` does the same with `pollDesc`s, and its `fdseq` is our
//! `seq`): a stale event reaches a live entry, sees another `seq`, and
//! stops (`readiness.rs`).
//!
//! Entries live in chunks that double in size (64, 128, 256, ...), so
//! lookup is lock-free: one atomic load of the chunk pointer. Chunks are
//! allocated under the free-list lock and published with `Release`; an
//! index is only handed out after its chunk exists.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

use super::readiness::Readiness;
use crate::loom_shim::lock_std as lock;

/// Entries in chunk 0; chunk `k` holds `FIRST << k`.
const FIRST: usize = 64;
/// 64 * (2^26 - 1) entries in all: more than a `u32` index can name.
const CHUNKS: usize = 26;

pub(crate) struct Table {
    chunks: [AtomicPtr<Readiness>; CHUNKS],
    free: Mutex<Free>,
}

struct Free {
    list: Vec<u32>,
    /// Entries ever handed out; the next fresh index.
    next: u32,
}

/// Chunk and offset of `index`.
fn locate(index: u32) -> (usize, usize) {
    let i = index as usize / FIRST + 1;
    let k = (usize::BITS - 1 - i.leading_zeros()) as usize;
    (k, index as usize - FIRST * ((1 << k) - 1))
}

impl Table {
    pub fn new() -> Table {
        Table {
            chunks: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            free: Mutex::new(Free {
                list: Vec::new(),
                next: 0,
            }),
        }
    }

    /// An unused entry's index.
    pub fn alloc(&self) -> u32 {
        let mut free = lock(&self.free);
        if let Some(i) = free.list.pop() {
            return i;
        }
        let index = free.next;
        let (k, offset) = locate(index);
        assert!(k < CHUNKS, "spindle: more than 2^32 sockets registered");
        if offset == 0 {
            let chunk: Box<[Readiness]> = (0..FIRST << k).map(|_| Readiness::new()).collect();
            let raw = Box::into_raw(chunk).cast::<Readiness>();
            self.chunks[k].store(raw, Ordering::Release);
        }
        free.next = index + 1;
        index
    }

    /// Give an entry back (its registration was retired).
    pub fn free(&self, index: u32) {
        lock(&self.free).list.push(index);
    }

    /// The entry at `index`, which [`alloc`](Self::alloc) handed out once.
    pub fn get(&self, index: u32) -> &Readiness {
        let (k, offset) = locate(index);
        let chunk = self.chunks[k].load(Ordering::Acquire);
        assert!(!chunk.is_null(), "poller entry {index} was never allocated");
        // SAFETY: chunk `k` holds `FIRST << k` entries (`offset` is below
        // that by `locate`), was published before any of its indices was
        // handed out, and is freed only when the table drops.
        unsafe { &*chunk.add(offset) }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        for (k, chunk) in self.chunks.iter_mut().enumerate() {
            let raw = *chunk.get_mut();
            if !raw.is_null() {
                // SAFETY: made by `Box::into_raw` of a boxed slice of this
                // length in `alloc`; dropped once, here.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(raw, FIRST << k)) });
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_every_index_once() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
        let mut expect = (0, 0);
        for i in 0..100_000u32 {
            assert_eq!(locate(i), expect, "index {i}");
            expect.1 += 1;
            if expect.1 == FIRST << expect.0 {
                expect = (expect.0 + 1, 0);
            }
        }
        let last = (FIRST * ((1 << CHUNKS) - 1) - 1) as u32;
        assert_eq!(locate(last).0, CHUNKS - 1);
    }

    #[test]
    fn entries_are_reused() {
        let t = Table::new();
        let a: Vec<u32> = (0..200).map(|_| t.alloc()).collect();
        assert_eq!(a, (0..200).collect::<Vec<_>>());
        t.free(7);
        assert_eq!(t.alloc(), 7);
        let _ = t.get(199).seq();
    }
}
