//! The pinned queue: started tasks that only this worker may run, in the
//! order they became ready (a yield, a wake that `runnext` displaced, an
//! inbox entry taken ahead of its turn). FIFO, so a coroutine that keeps
//! yielding goes behind every other ready one.
//!
//! Every yield passes through it twice (a push at the back, a pop at the
//! front), so it is a ring of a power-of-two capacity, indexed with a
//! mask, instead of a `RefCell<VecDeque>`: no borrow flag to check, set
//! and clear, and no wrap-around compare on each index (about 16
//! instructions less per yield, `docs/notes/runtime-figures.md`).
//!
//! Invariants: `len <= slots.len()`; `slots.len()` is a power of two (or
//! zero before the first push); the `len` slots from `head` (modulo the
//! capacity) are `Some`, every other slot is `None`. The queue belongs to
//! one thread (it is `!Sync`), and no method calls code that could reach
//! the same queue while it holds the `&mut` it takes from the cell.

use std::cell::UnsafeCell;

/// The capacity the first push allocates.
const FIRST_CAPACITY: usize = 16;

pub(crate) struct PinnedQueue<T> {
    ring: UnsafeCell<Ring<T>>,
}

struct Ring<T> {
    slots: Box<[Option<T>]>,
    /// Index of the front slot, always below the capacity.
    head: usize,
    len: usize,
}

impl<T> PinnedQueue<T> {
    pub fn new() -> PinnedQueue<T> {
        PinnedQueue {
            ring: UnsafeCell::new(Ring {
                slots: Box::new([]),
                head: 0,
                len: 0,
            }),
        }
    }

    /// Run `f` on the ring. (Its unsafe siblings below index the ring
    /// without a bounds check, relying on the invariants above.)
    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(&mut Ring<T>) -> R) -> R {
        // SAFETY: `PinnedQueue` is `!Sync` (it holds an `UnsafeCell`), so
        // only this thread reaches the ring, and every `f` below only moves
        // `T`s in and out: it drops none and calls no code that could come
        // back here, so this `&mut` is the only reference while it lives.
        f(unsafe { &mut *self.ring.get() })
    }

    pub fn len(&self) -> usize {
        self.with(|r| r.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    pub fn push_back(&self, item: T) {
        self.with(|r| {
            if r.len == r.slots.len() {
                r.grow();
            }
            let mask = r.slots.len() - 1;
            let at = (r.head + r.len) & mask;
            // SAFETY: `at` is masked by the capacity, a power of two.
            let slot = unsafe { r.slots.get_unchecked_mut(at) };
            debug_assert!(slot.is_none());
            // The slot is empty (invariant): nothing to drop.
            std::mem::forget(slot.replace(item));
            r.len += 1;
        })
    }

    #[inline(always)]
    pub fn pop_front(&self) -> Option<T> {
        self.with(|r| {
            if r.len == 0 {
                return None;
            }
            // SAFETY: `head` is below the capacity (invariant).
            let item = unsafe { r.slots.get_unchecked_mut(r.head) }.take();
            r.head = (r.head + 1) & (r.slots.len() - 1);
            r.len -= 1;
            // SAFETY: the front slot of a non-empty queue holds an item
            // (invariant).
            Some(unsafe { item.unwrap_unchecked() })
        })
    }

    /// Put `item` at position `index` from the front (at most `len`),
    /// moving the `index` items before it one place towards the front.
    /// Used for the few inbox entries taken ahead of their turn, so
    /// `index` is small.
    pub fn insert(&self, index: usize, item: T) {
        self.with(|r| {
            assert!(index <= r.len, "insert at {index} into {}", r.len);
            if r.len == r.slots.len() {
                r.grow();
            }
            let mask = r.slots.len() - 1;
            r.head = (r.head + mask) & mask;
            for i in 0..index {
                let next = r.slots[(r.head + i + 1) & mask].take();
                r.slots[(r.head + i) & mask] = next;
            }
            std::mem::forget(r.slots[(r.head + index) & mask].replace(item));
            r.len += 1;
        })
    }

    /// Everything queued, front first.
    pub fn take_all(&self) -> Vec<T> {
        let mut all = Vec::with_capacity(self.len());
        while let Some(item) = self.pop_front() {
            all.push(item);
        }
        all
    }
}

impl<T> Ring<T> {
    /// Double the capacity (or allocate the first), front at index 0.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let capacity = (2 * self.slots.len()).max(FIRST_CAPACITY);
        let mut slots: Vec<Option<T>> = Vec::with_capacity(capacity);
        let mask = self.slots.len().wrapping_sub(1);
        for i in 0..self.len {
            slots.push(self.slots[(self.head + i) & mask].take());
        }
        slots.resize_with(capacity, || None);
        self.slots = slots.into_boxed_slice();
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(q: &PinnedQueue<u32>) -> Vec<u32> {
        let all = q.take_all();
        for &x in &all {
            q.push_back(x);
        }
        all
    }

    #[test]
    fn fifo_across_wrap_and_growth() {
        let q = PinnedQueue::new();
        let mut next = 0;
        let mut expect = 0;
        // Push 3, pop 2, many times: the ring wraps and grows.
        for _ in 0..100 {
            for _ in 0..3 {
                q.push_back(next);
                next += 1;
            }
            for _ in 0..2 {
                assert_eq!(q.pop_front(), Some(expect));
                expect += 1;
            }
        }
        assert_eq!(q.len(), 100);
        while let Some(x) = q.pop_front() {
            assert_eq!(x, expect);
            expect += 1;
        }
        assert_eq!(expect, next);
        assert!(q.is_empty());
        assert_eq!(q.pop_front(), None);
    }

    #[test]
    fn insert_puts_an_item_at_its_position() {
        let q = PinnedQueue::new();
        q.insert(0, 10);
        for x in [20, 30] {
            q.push_back(x);
        }
        q.insert(1, 11);
        q.insert(2, 12);
        assert_eq!(contents(&q), [10, 11, 12, 20, 30]);
        q.insert(5, 40);
        assert_eq!(contents(&q), [10, 11, 12, 20, 30, 40]);
        // Wrapped: the front is near the end of the ring.
        for _ in 0..6 {
            q.pop_front();
        }
        for x in 0..14 {
            q.push_back(x);
        }
        q.insert(3, 99);
        assert_eq!(
            contents(&q),
            [0, 1, 2, 99, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
        );
        // Full ring: insert grows it.
        q.push_back(14);
        q.insert(1, 98);
        assert_eq!(q.len(), 17);
        assert_eq!(q.take_all()[..4], [0, 98, 1, 2]);
    }

    #[test]
    fn dropping_the_queue_drops_what_it_holds() {
        let item = std::rc::Rc::new(());
        let q = PinnedQueue::new();
        for _ in 0..20 {
            q.push_back(item.clone());
        }
        q.pop_front();
        assert_eq!(std::rc::Rc::strong_count(&item), 20);
        drop(q);
        assert_eq!(std::rc::Rc::strong_count(&item), 1);
    }
}
