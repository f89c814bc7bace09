//! Compaction: a parked coroutine without a resident stack page.
//!
//! A coroutine parked for longer than `RuntimeBuilder::compact_after` gives
//! its stack's memory back: its home worker copies the *live* part of the
//! stack (from the stack pointer recorded at park, minus a margin, up to the
//! slot top) into a heap buffer sized to fit, and releases the pages. Before
//! the coroutine runs again the bytes are copied back **to the same
//! addresses**, so every pointer into the stack stays valid (Java's
//! freeze/thaw, without moving anything).
//!
//! **Nobody may read zeros.** Safe code can hold a reference into a parked
//! coroutine's stack from another OS thread (`std::thread::scope` inside a
//! coroutine that then parks). So while the bytes are away the range must
//! *fault*, and the fault handler (`overflow.rs`) puts the bytes back and
//! lets the access run again. The moves between "bytes in the pages" and
//! "bytes in the buffer" must themselves be invisible to such a thread:
//!
//! * compacting first makes the range inaccessible (`mprotect(PROT_NONE)`),
//!   then copies it out through `/proc/self/mem` (which may read protected
//!   pages), then releases it and leaves it guarded (`pages.rs`);
//! * restoring copies the bytes in through `/proc/self/mem` while the range
//!   is still inaccessible, and only then opens it.
//!
//! A foreign thread therefore sees either the old bytes or a fault, never a
//! half-copied range, and a foreign write is never lost.
//!
//! **Who restores** is decided by one atomic word per slot (`table.rs`),
//! readable by the signal handler from the fault address alone:
//!
//! ```text
//!            worker's pass                     worker, at resume
//!  RESIDENT ───────────▶ COMPACTING ──────▶ COMPACTED ───────────▶ RESTORING ──▶ RESIDENT
//!     ▲                                        │  (CAS; one winner)              (frees buffer)
//!     │                                        │ faulting thread (handler)
//!     │ worker frees the buffer                ▼
//!     └──────────────────────────── RESTORED ◀── RESTORING
//! ```
//!
//! * Only the home worker leaves `RESIDENT` (it alone compacts) and only it
//!   frees buffers: a signal handler must not call the allocator.
//! * `COMPACTED → RESTORING` is a compare-and-swap: exactly one restorer
//!   (the worker about to resume the coroutine, or a faulting thread) copies
//!   the bytes back. Everyone else who faults waits (`futex`) while the word
//!   is `COMPACTING` or `RESTORING`, then retries the access.
//! * A handler that restored leaves `RESTORED`: the bytes are back but the
//!   buffer is still allocated; the worker frees it before the resume.
//!
//! The protocol is written once, against [`StateWord`] and [`Memory`], and
//! model-checked with loom (`loom_tests.rs`) with the pages and the buffer
//! as atomics; the real [`Memory`] does the system calls (`pages.rs`).
//! Design and figures: `docs/notes/compact.md`.

pub(crate) mod pages;
pub(crate) mod table;
mod words;

#[cfg(all(test, loom))]
mod loom_tests;

/// Not compacted: the stack's bytes are in its pages (no buffer).
pub(crate) const RESIDENT: u32 = 0;
/// The home worker is copying the bytes out; the range faults.
pub(crate) const COMPACTING: u32 = 1;
/// The bytes are in the buffer; the range is released and faults.
pub(crate) const COMPACTED: u32 = 2;
/// One restorer is copying the bytes back; the range faults.
pub(crate) const RESTORING: u32 = 3;
/// A faulting thread restored the bytes; the worker must free the buffer.
pub(crate) const RESTORED: u32 = 4;

/// The per-slot state word: an atomic `u32` that can be waited on.
pub(crate) trait StateWord {
    fn load(&self) -> u32;
    /// `current → new`; `Err(actual)` if the word was not `current`.
    fn cas(&self, current: u32, new: u32) -> Result<u32, u32>;
    fn store(&self, value: u32);
    /// Block (or spin) while the word may still be `value`.
    fn wait(&self, value: u32);
    /// Wake every waiter.
    fn wake_all(&self);
}

/// The pages of one slot and its buffer. `compact` and `restore` are each
/// one indivisible step as seen by other threads: the range faults
/// throughout, and holds the right bytes once it stops faulting.
pub(crate) trait Memory {
    /// Home worker: copy the live range into a fresh buffer and release the
    /// pages, leaving the range faulting. `false` if it could not (then
    /// nothing changed: the range is accessible with its bytes).
    fn compact(&self) -> bool;
    /// Restorer: copy the buffer back and open the range. Must not allocate
    /// or free (it runs in a signal handler).
    fn restore(&self);
    /// Home worker: free the buffer of a restored range.
    fn free_buffer(&self);
}

/// Home worker, in its pass: compact a parked coroutine's stack, if its
/// word is `RESIDENT` (use [`reclaim`] first). Returns whether it is now
/// `COMPACTED`. A word in any other state is left alone and the answer is
/// `false`: compacting a compacted stack again would save the zeros of its
/// released pages over the saved bytes.
pub(crate) fn compact(state: &impl StateWord, mem: &impl Memory) -> bool {
    if state.load() != RESIDENT {
        return false;
    }
    // Published before the range starts to fault, so a thread that faults
    // finds a word that says "wait" (the protection change orders it).
    state.store(COMPACTING);
    let done = mem.compact();
    state.store(if done { COMPACTED } else { RESIDENT });
    state.wake_all();
    done
}

/// Home worker: [`compact`] for many parked coroutines at once, sharing
/// the system calls (`pages::compact_batch`, guard-region mode; one by one
/// otherwise). Each slot goes through the same states as in [`compact`];
/// one that is not `RESIDENT`, or listed twice, is compacted at most once.
pub(crate) fn compact_many(slots: &[pages::SlotPages]) -> Vec<bool> {
    if pages::mode() != crate::stack::guard::GuardMode::Regions {
        return slots.iter().map(|s| compact(&s.record.state, s)).collect();
    }
    // Claim each slot: the first listing of a resident one turns it
    // COMPACTING, so a second listing of it finds it taken.
    let mut claimed = Vec::with_capacity(slots.len());
    for (i, s) in slots.iter().enumerate() {
        if StateWord::load(&s.record.state) == RESIDENT {
            StateWord::store(&s.record.state, COMPACTING);
            claimed.push(i);
        }
    }
    let batch: Vec<pages::SlotPages> = claimed.iter().map(|&i| slots[i].clone()).collect();
    // SAFETY: the caller's slots are its own parked coroutines', and every
    // record in `batch` is COMPACTING (just above), each listed once.
    let compacted = unsafe { pages::compact_batch(&batch) };
    let mut done = vec![false; slots.len()];
    for (&i, ok) in claimed.iter().zip(compacted) {
        let s = &slots[i];
        StateWord::store(&s.record.state, if ok { COMPACTED } else { RESIDENT });
        StateWord::wake_all(&s.record.state);
        done[i] = ok;
    }
    done
}

/// Home worker, before it resumes the coroutine (or unwinds it): make sure
/// the bytes are back and the buffer freed; afterwards the word is
/// `RESIDENT`.
pub(crate) fn restore_for_resume(state: &impl StateWord, mem: &impl Memory) {
    loop {
        match state.load() {
            RESIDENT => return,
            COMPACTED => {
                if state.cas(COMPACTED, RESTORING).is_ok() {
                    mem.restore();
                    mem.free_buffer();
                    state.store(RESIDENT);
                    state.wake_all();
                    return;
                }
            }
            RESTORED => {
                // A faulting thread put the bytes back; only the buffer is left.
                reclaim(state, mem);
                return;
            }
            RESTORING => state.wait(RESTORING),
            other => unreachable!("compaction state {other} at resume"),
        }
    }
}

/// Home worker: free the buffer a faulting thread left behind (`RESTORED →
/// RESIDENT`); no-op in any other state.
pub(crate) fn reclaim(state: &impl StateWord, mem: &impl Memory) {
    if state.load() == RESTORED {
        mem.free_buffer();
        state.store(RESIDENT);
    }
}

/// Any thread that faulted in the slot's range (the signal handler): put
/// the bytes back if nobody else is, or wait for whoever is. On return the
/// faulting access may be retried.
pub(crate) fn on_fault(state: &impl StateWord, mem: &impl Memory) {
    loop {
        match state.load() {
            RESIDENT | RESTORED => return,
            COMPACTED => {
                if state.cas(COMPACTED, RESTORING).is_ok() {
                    mem.restore();
                    state.store(RESTORED);
                    state.wake_all();
                    return;
                }
            }
            busy => state.wait(busy),
        }
    }
}

/// The signal handler's part: if `addr` lies in a compacted (or compacting,
/// or restoring) stack, make it accessible again and return `true`; the
/// faulting access is then retried. Async-signal-safe.
pub(crate) fn restore_on_fault(addr: usize) -> bool {
    use std::cell::Cell;
    thread_local! {
        /// The last address retried because its slot was already resident,
        /// and how often in a row: a fault that a resident slot keeps
        /// raising is not ours (a jump into the stack, say), and must reach
        /// the previous handler rather than loop.
        static RETRIED: Cell<(usize, u32)> = const { Cell::new((0, 0)) };
    }
    let Some((record, top)) = table::find(addr) else {
        return false;
    };
    let mem = pages::SlotPages {
        record,
        top,
        lo: 0,
        slot_base: 0,
        mode: pages::mode(),
    };
    let first = StateWord::load(&record.state);
    if first == RESIDENT || first == RESTORED {
        // Restored between the fault and now, or not a compaction fault.
        return RETRIED.with(|r| {
            let (last, n) = r.get();
            let n = if last == addr { n + 1 } else { 1 };
            r.set((addr, n));
            n <= 64
        });
    }
    RETRIED.with(|r| r.set((0, 0)));
    on_fault(&record.state, &mem);
    true
}

/// The real state word: a futex.
impl StateWord for std::sync::atomic::AtomicU32 {
    fn load(&self) -> u32 {
        self.load(std::sync::atomic::Ordering::Acquire)
    }

    fn cas(&self, current: u32, new: u32) -> Result<u32, u32> {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        self.compare_exchange(current, new, AcqRel, Acquire)
    }

    fn store(&self, value: u32) {
        self.store(value, std::sync::atomic::Ordering::SeqCst)
    }

    fn wait(&self, value: u32) {
        // SAFETY: FUTEX_WAIT only reads the word, which lives in the side
        // table for as long as the slab does; a spurious return is fine.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                value,
                std::ptr::null::<libc::timespec>(),
            );
        }
    }

    fn wake_all(&self) {
        // SAFETY: FUTEX_WAKE on a word we own; async-signal-safe.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
            );
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::atomic::AtomicU32;

    /// Pages that count the copies out and in.
    #[derive(Default)]
    struct Counted {
        out: Cell<u32>,
        back: Cell<u32>,
    }

    impl Memory for Counted {
        fn compact(&self) -> bool {
            self.out.set(self.out.get() + 1);
            true
        }
        fn restore(&self) {
            self.back.set(self.back.get() + 1);
        }
        fn free_buffer(&self) {}
    }

    /// A stack that is already compacted is not compacted again (the copy
    /// out would read its released pages); after a restore it may be.
    #[test]
    fn a_compacted_stack_is_not_compacted_twice() {
        let (state, mem) = (AtomicU32::new(RESIDENT), Counted::default());
        assert!(compact(&state, &mem));
        assert!(!compact(&state, &mem), "compacted twice");
        assert_eq!((StateWord::load(&state), mem.out.get()), (COMPACTED, 1));
        restore_for_resume(&state, &mem);
        assert_eq!((StateWord::load(&state), mem.back.get()), (RESIDENT, 1));
        assert!(compact(&state, &mem));
        assert_eq!(mem.out.get(), 2);
    }
}
