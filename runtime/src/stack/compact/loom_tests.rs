//! Model-checking the compaction protocol (`mod.rs`) with loom: the home
//! worker compacts and later resumes a coroutine, while foreign threads
//! read-modify-write a word of its stack through a reference (as a
//! `std::thread::scope` thread would), faulting whenever it is away.
//!
//! The stack is one atomic word: a value, plus a `SEALED` bit that stands
//! for "this range faults" (`mprotect(PROT_NONE)` or a guard region) and a
//! `READONLY` bit (`mprotect(PROT_READ)`, while the worker copies it out).
//! A foreign access is one instruction: if the word forbids it, it faults
//! (runs the handler's [`on_fault`] and retries), otherwise it is one atomic
//! load or read-modify-write.
//! The buffer is a loom `UnsafeCell`, so a restorer reading it without
//! happening after the copy-out, or a free racing a restore, is a data race
//! loom reports. The checks: no access ever sees the zeros of a released
//! range (or a poisoned buffer), no foreign write is lost, and the worker
//! resumes only with the bytes back, its buffer freed and the word
//! `RESIDENT`.

use super::*;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, AtomicU64};
use loom::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Release, SeqCst};

const SEALED: u64 = 1 << 63;
const READONLY: u64 = 1 << 62;
/// What a released range reads as once it is open again without a restore.
const ZEROS: u64 = 0;
/// A freed buffer.
const POISON: u64 = 0xdead;
/// The stack word's value before anyone touches it.
const START: u64 = 100;

struct Word(AtomicU32);

impl StateWord for Word {
    fn load(&self) -> u32 {
        self.0.load(Acquire)
    }
    fn cas(&self, current: u32, new: u32) -> Result<u32, u32> {
        self.0.compare_exchange(current, new, AcqRel, Acquire)
    }
    fn store(&self, value: u32) {
        self.0.store(value, SeqCst)
    }
    fn wait(&self, _value: u32) {
        loom::thread::yield_now();
    }
    fn wake_all(&self) {}
}

struct Slot {
    state: Word,
    page: AtomicU64,
    buf: UnsafeCell<u64>,
}

impl Memory for Slot {
    fn compact(&self) -> bool {
        // mprotect(PROT_READ): from here on foreign writes fault, so the
        // value the copy-out reads is final.
        let v = self.page.fetch_or(READONLY, AcqRel);
        assert_eq!(v & (SEALED | READONLY), 0, "compacting a sealed range");
        // The copy-out (memcpy) into a fresh buffer.
        let v = self.page.load(Acquire) & !READONLY;
        // SAFETY: a loom cell; loom checks this access against every other
        // one (that is what the model is for).
        self.buf.with_mut(|b| unsafe { *b = v });
        // The release (MADV_GUARD_INSTALL / MADV_DONTNEED): zeros, sealed.
        self.page.store(SEALED | ZEROS, Release);
        true
    }

    fn restore(&self) {
        // SAFETY: a loom cell; loom checks this access against every other
        // one (that is what the model is for).
        let v = self.buf.with(|b| unsafe { *b });
        assert_ne!(v, POISON, "restoring from a freed buffer");
        // Copy in while still sealed (pwrite), then open (mprotect RW).
        self.page.store(SEALED | v, Release);
        self.page.store(v, Release);
    }

    fn free_buffer(&self) {
        // SAFETY: a loom cell; loom checks this access against every other
        // one (that is what the model is for).
        self.buf.with_mut(|b| unsafe { *b = POISON });
    }
}

impl Slot {
    fn new() -> Slot {
        Slot {
            state: Word(AtomicU32::new(RESIDENT)),
            page: AtomicU64::new(START),
            buf: UnsafeCell::new(POISON),
        }
    }

    /// A foreign thread adds 1 to the stack word through its reference;
    /// returns the value it saw.
    fn foreign_add(&self) -> u64 {
        loop {
            let v = self.page.load(Acquire);
            if v & (SEALED | READONLY) != 0 {
                on_fault(&self.state, self); // the SIGSEGV handler
                loom::thread::yield_now(); // then the access runs again
                continue;
            }
            assert!(v >= START, "a foreign thread read released zeros: {v}");
            if self
                .page
                .compare_exchange(v, v + 1, AcqRel, Acquire)
                .is_ok()
            {
                return v;
            }
            loom::thread::yield_now();
        }
    }

    /// A foreign thread reads the stack word through its reference.
    fn foreign_read(&self) -> u64 {
        loop {
            let v = self.page.load(Acquire);
            if v & SEALED == 0 {
                let v = v & !READONLY; // reads are allowed while read-only
                assert!(v >= START, "a foreign thread read released zeros: {v}");
                return v;
            }
            on_fault(&self.state, self);
            loom::thread::yield_now();
        }
    }

    /// The buffer has been freed (and nobody touches it concurrently: loom
    /// checks that).
    fn assert_buffer_freed(&self) {
        // SAFETY: a loom cell; loom checks this access against every other
        // one (that is what the model is for).
        self.buf.with(|b| assert_eq!(unsafe { *b }, POISON));
    }

    /// The worker resumes the coroutine, which reads its own word.
    fn resume(&self) -> u64 {
        restore_for_resume(&self.state, self);
        assert_eq!(self.state.load(), RESIDENT);
        let v = self.page.load(Acquire);
        assert_eq!(v & SEALED, 0, "resumed on a sealed stack");
        assert!(v >= START, "resumed on released zeros: {v}");
        v
    }
}

/// Worker compacts then resumes; one foreign thread touches the stack at
/// any point: before, during or after the compaction, or during the
/// restore.
#[test]
fn loom_compact_resume_and_one_foreign_touch() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        let s2 = slot.clone();
        let foreign = loom::thread::spawn(move || s2.foreign_add());
        assert!(compact(&slot.state, &*slot));
        let seen_by_coroutine = slot.resume();
        let seen_by_foreign = foreign.join().unwrap();
        assert_eq!(seen_by_foreign, START);
        assert!(seen_by_coroutine == START || seen_by_coroutine == START + 1);
        // The foreign write was not lost, and the buffer is freed.
        assert_eq!(slot.page.load(Acquire), START + 1);
        slot.assert_buffer_freed();
    });
}

/// A model that explores the runs with at most `preemptions` preemptions.
fn bounded(preemptions: usize) -> loom::model::Builder {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(preemptions);
    model
}

/// Inside a model: compact, start two foreign threads that each run
/// `foreign` on the stack word (and so fault at once), and resume on the
/// worker meanwhile. Returns the slot, the value the worker resumed with,
/// and what each foreign thread saw.
fn two_foreign_threads_race_the_worker(foreign: fn(&Slot) -> u64) -> (Arc<Slot>, u64, Vec<u64>) {
    let slot = Arc::new(Slot::new());
    assert!(compact(&slot.state, &*slot));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let s = slot.clone();
            loom::thread::spawn(move || foreign(&s))
        })
        .collect();
    let resumed = slot.resume();
    let seen = threads.into_iter().map(|t| t.join().unwrap()).collect();
    (slot, resumed, seen)
}

/// Two foreign threads fault at once: one restores, the other waits for
/// it (or restores after it); the worker resumes concurrently. Three
/// threads: with two of them spinning (`yield_now`) while a preempted third
/// restores, loom can alternate the spinners forever (it has no fairness),
/// so, as in `chan/loom_tests.rs`, the preemptions are bounded to one.
#[test]
fn loom_two_foreign_readers_and_the_worker_race_to_restore() {
    bounded(1).check(|| {
        let (slot, resumed, seen) = two_foreign_threads_race_the_worker(Slot::foreign_read);
        assert_eq!(resumed, START);
        assert_eq!(seen, [START, START]);
        slot.assert_buffer_freed();
    });
}

/// The same race with two foreign writers: no write is lost.
#[test]
fn loom_two_foreign_writers_and_the_worker_race_to_restore() {
    bounded(1).check(|| {
        let (slot, resumed, mut seen) = two_foreign_threads_race_the_worker(Slot::foreign_add);
        assert!((START..=START + 2).contains(&resumed));
        seen.sort();
        assert_eq!(seen, [START, START + 1]);
        assert_eq!(
            slot.page.load(Acquire),
            START + 2,
            "a foreign write was lost"
        );
    });
}

/// Compact, resume, compact again, resume again, with a foreign thread
/// touching twice: a buffer left by a restoring handler is freed by the
/// worker (`RESTORED`), never by the handler, and never while read.
#[test]
fn loom_compacting_again_after_a_foreign_restore() {
    bounded(3).check(|| {
        let slot = Arc::new(Slot::new());
        let s2 = slot.clone();
        let foreign = loom::thread::spawn(move || {
            s2.foreign_add();
            s2.foreign_add();
        });
        for _ in 0..2 {
            assert!(compact(&slot.state, &*slot));
            slot.resume();
        }
        foreign.join().unwrap();
        assert_eq!(slot.page.load(Acquire), START + 2);
        assert_eq!(slot.state.load(), RESIDENT);
    });
}
