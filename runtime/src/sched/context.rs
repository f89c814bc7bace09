//! Thread-local context: "which worker am I on, which coroutine is current?"
//!
//! Each worker thread records two things in thread-locals: its [`Worker`],
//! and the *current* coroutine, the one it is running right now (its task).
//! "Current" means only this, everywhere in the runtime.
//!
//! Who keeps it up to date: the worker. It names the task it is about to
//! resume, and clears the slot when the coroutine switches back or returns,
//! through a handle on its own thread's slot ([`CurrentSlot`], two plain
//! stores per resume, no thread-local lookup). So while a worker runs its
//! own loop, no coroutine is current on that thread, and a coroutine that
//! is being unwound (`shutdown.rs` resumes it without naming it) is not
//! current either. Where a suspending coroutine finds its yielder: in its
//! task's *switch word* (`task/mod.rs`), which holds the yielder's address
//! while the coroutine runs and the shrink word while it is switched out
//! ([`suspend_running`]), so that no field points into a parked stack.
//! A hand-off thus costs one thread-local read on the coroutine's side
//! (`current`, in `Caller::get`) and one on the waker's (`with_worker`);
//! before (2026-12-02) it cost four (figures: `docs/notes/runtime-figures.md`).
//!
//! **Thread-locals and switches.** A started coroutine never changes thread
//! (`worker.rs`: it is pinned to its home worker), so the compiler's
//! assumption that a thread-local's address is constant within a function
//! holds inside coroutines. That is what lets the two reads on the switch
//! path, [`current`] and `worker`, be inlined into their callers (two
//! instructions each, where a call cost six and made its caller spill
//! registers): even if the compiler keeps the thread-local's *address*
//! across a switch, it is the same thread's. Their *values* are reloaded
//! after every switch, because the switch is an `asm!` block that may
//! write any memory. The rarely used ones (`set_worker`, `cancelling`,
//! `in_coroutine`, ...) stay out of line. (The runtime's other
//! thread-locals, `park/thread_parker.rs` and `stack/overflow.rs`, are
//! out-of-line functions too.) Why the runtime does not let started
//! coroutines migrate: `docs/notes/soundness.md`.
//!
//! **The return-address predictor.** A CPU predicts where each `ret` jumps
//! from a small hardware stack of the addresses its `call`s pushed. A
//! coroutine switch changes stacks without returning, so afterwards that
//! predictor holds the *other* side's return addresses, and returning through
//! a frame that was live across the switch is mispredicted, at a cost of
//! several times the switch itself (figures: `docs/notes/runtime-figures.md`).
//! So the whole switch path is inlined into its caller: [`suspend`] and
//! [`suspend_running`], `park`,
//! `Caller::wait` and `Waiter::park`, and the public `yield_now`,
//! `Sender::send`, `Receiver::recv` and `JoinHandle::join`. An out-of-line
//! call that returns *before* the switch (a cold path's) is harmless: its
//! call and return pair up.
//!
//! **Inlined where the user's code is.** A user's crate is built with
//! Cargo's default release profile: no LTO, so a non-generic function of
//! `spindle` is inlined into it only if it is marked `#[inline]`. The
//! switch path above, and the small functions a hand-off calls on the way
//! (`Caller::get`, `to_waiter`, the wait cell, the wait queue, `wake`,
//! `Party::finish` and the two thread-local reads), are marked so; the
//! worker's side (`run_task`, `resume`, `commit_park`) is inlined into its
//! loop. What stays out of line: the cold cases (a thread's parker, a
//! select). `spindle-bench switch --row` and
//! `docs/tools/downstream` count what a user's crate runs (figures:
//! `docs/notes/runtime-figures.md`, *What a user's crate gets*).

use std::cell::Cell;
use std::ptr;

use std::ptr::NonNull;

use super::worker::Worker;
use crate::coroutine::{Suspend, Yielder};
use crate::stack::shrink;
use crate::task::Task;

thread_local! {
    static WORKER: Cell<*const Worker> = const { Cell::new(ptr::null()) };
    static CURRENT: Cell<*const Task> = const { Cell::new(ptr::null()) };
    static CANCELLING: Cell<bool> = const { Cell::new(false) };
}

/// Mark this worker thread as unwinding a cancelled coroutine (or not).
#[inline(never)]
pub(crate) fn set_cancelling(on: bool) {
    CANCELLING.with(|c| c.set(on));
}

/// Is this thread unwinding a cancelled coroutine right now?
#[inline(never)]
pub(crate) fn cancelling() -> bool {
    CANCELLING.with(|c| c.get())
}

/// Mark the calling thread as `worker` (or as no worker, with null).
#[inline(never)]
pub(crate) fn set_worker(worker: *const Worker) {
    WORKER.with(|w| w.set(worker));
}

/// This thread's worker, or null: the thread-local read of
/// [`with_worker`], inlined (see the module docs).
#[inline(always)]
fn worker() -> *const Worker {
    WORKER.with(|w| w.get())
}

/// Run `f` with this thread's worker, if it is one. `f` must not suspend.
///
/// Inlined (the wake of every hand-off runs through here).
#[inline(always)]
pub(crate) fn with_worker<R>(f: impl FnOnce(Option<&Worker>) -> R) -> R {
    let w = worker();
    // SAFETY: the pointer is set by the worker thread to its own Worker, which
    // outlives every call made on that thread while it is set, and `f` runs
    // to completion on this thread (it must not suspend).
    f(unsafe { w.as_ref() })
}

/// The current coroutine's task, without taking a reference: valid for as
/// long as the caller (that coroutine) runs, since its worker holds one.
/// Inlined into every caller (see the module docs).
#[inline(always)]
pub(crate) fn current() -> Option<NonNull<Task>> {
    NonNull::new(CURRENT.with(|c| c.get()) as *mut Task)
}

/// Is the caller running inside a coroutine?
#[inline(never)]
pub(crate) fn in_coroutine() -> bool {
    !CURRENT.with(|c| c.get()).is_null()
}

/// The worker's handle on its own thread's "current coroutine" slot: it
/// names the coroutine it is about to resume, and clears the slot when the
/// coroutine switches back (see the module docs).
///
/// The slot's address is taken once, by the worker's loop, which never
/// leaves its thread; it is a raw pointer, so the handle is neither `Send`
/// nor `Sync`. No coroutine ever holds one.
#[derive(Clone, Copy)]
pub(crate) struct CurrentSlot(*const Cell<*const Task>);

impl CurrentSlot {
    /// A handle that names nothing (before the worker's loop starts).
    pub const NONE: CurrentSlot = CurrentSlot(ptr::null());

    /// The calling thread's slot.
    #[inline(never)]
    pub fn of_this_thread() -> CurrentSlot {
        CurrentSlot(CURRENT.with(ptr::from_ref))
    }

    /// Name `task` as the current coroutine (null: none).
    ///
    /// # Safety
    /// The handle came from [`of_this_thread`](Self::of_this_thread) on the
    /// calling thread.
    #[inline(always)]
    pub unsafe fn set(self, task: *const Task) {
        // SAFETY: the caller's promise: the slot is this thread's own
        // thread-local, which lives as long as the thread (a const-initialised
        // `Cell` of a raw pointer has no destructor).
        unsafe { (*self.0).set(task) };
    }
}

/// The first thing a coroutine does: record where its yielder is, for
/// [`suspend`]. (Its worker has already named it current.)
///
/// # Safety
/// `task` is the calling coroutine's task, and `yielder` its yielder.
#[inline(always)]
pub(crate) unsafe fn start(task: &Task, yielder: &Yielder) {
    // SAFETY: the caller's promise: we are `task`'s coroutine, on its home
    // thread, and this is its live yielder.
    unsafe { task.set_switch_word(ptr::from_ref(yielder) as usize) };
}

/// The last thing a coroutine does before it returns to its worker: its
/// yielder goes away with its stack.
///
/// # Safety
/// `task` is the calling coroutine's task, and the coroutine does not
/// suspend again.
#[inline(always)]
pub(crate) unsafe fn finish(task: &Task) {
    // SAFETY: the caller's promise: our own task, and no `suspend_running`
    // will read the word again.
    unsafe { task.set_switch_word(0) };
}

/// Switch from the running coroutine back to its worker, and return `true`
/// when its home worker resumes it. Returns `false` at once if the caller
/// is not a coroutine (or is one being unwound: not current).
///
/// Always inlined, so that the switch happens in the caller's own frame (see
/// the module docs: *the return-address predictor*).
#[inline(always)]
pub(crate) fn suspend(reason: Suspend) -> bool {
    let Some(me) = current() else {
        return false;
    };
    // SAFETY: `me` is the current coroutine's task, and we are that
    // coroutine; only a normal resume names it (`Worker::resume`), never
    // an unwind.
    unsafe { suspend_running(me.as_ref(), reason) };
    true
}

/// [`suspend`] for a caller that knows its own task (`park::Caller`): no
/// thread-local access at all.
///
/// # Safety
/// `me` is the task of the calling coroutine, which its worker resumed
/// normally (not to unwind it, `sched/shutdown.rs`).
#[inline(always)]
pub(crate) unsafe fn suspend_running(me: &Task, reason: Suspend) {
    // While the coroutine runs, its switch word is its yielder's address
    // (set by `start`, and again below after every resume).
    let yielder = me.switch_word() as *const Yielder;
    debug_assert!(!yielder.is_null(), "suspend of a coroutine with no yielder");
    // While it is switched out, the word is where our frames end, for the
    // shrink pass (stack/shrink.rs): a register read and a plain store. So
    // no field of the task points into a parked stack.
    // SAFETY (both stores): we are `me`'s coroutine on its home thread (the
    // caller's promise); the word holds the shrink word only while we are
    // switched out, and the yielder again before we run on.
    unsafe { me.set_switch_word(shrink::word_for(shrink::stack_pointer())) };
    // SAFETY: the word was our yielder's address (the caller's promise: we
    // were resumed normally, so `start` or the line below set it, and
    // nothing else writes it while we run: the shrink pass and compaction
    // touch only switched-out tasks, on this same thread). The yielder lives
    // at the base of our own stack, which we are running on: valid now.
    unsafe { (*yielder).suspend(reason) };
    // Resumed, on our home worker, which named us current before the
    // switch: only our own word to put back.
    unsafe { me.set_switch_word(yielder as usize) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;

    use crate::{chan, Runtime};

    /// Records, when dropped, whether the thread that drops it has a current
    /// coroutine (1: no, 2: yes).
    struct Probe(Arc<AtomicU8>);

    impl Drop for Probe {
        fn drop(&mut self) {
            let current = super::in_coroutine();
            self.0.store(if current { 2 } else { 1 }, Ordering::SeqCst);
        }
    }

    /// The worker names each coroutine it resumes as current and clears the
    /// slot when it switches back: a coroutine unwound at shutdown (resumed
    /// without being named) has none, so a destructor that blocks there
    /// blocks the thread instead of suspending some other coroutine. (With
    /// the clear left out, the slot still names the last coroutine resumed.)
    #[test]
    fn an_unwound_coroutine_is_not_current() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let seen = Arc::new(AtomicU8::new(0));
        let (_tx, rx) = chan::bounded::<u8>(0);
        let (ready_tx, ready_rx) = chan::bounded::<bool>(1);
        let probe = Probe(seen.clone());
        let _parked = rt.spawn(move || {
            let _probe = probe;
            ready_tx.send(super::in_coroutine()).unwrap();
            rx.recv().ok();
        });
        assert_eq!(ready_rx.recv(), Ok(true), "a running coroutine is current");
        // Another coroutine runs (and parks) after the first one parked.
        let (_tx2, rx2) = chan::bounded::<u8>(0);
        let (ready_tx2, ready_rx2) = chan::bounded::<()>(1);
        let _other = rt.spawn(move || {
            ready_tx2.send(()).unwrap();
            rx2.recv().ok();
        });
        ready_rx2.recv().unwrap();
        drop(rt);
        assert_eq!(seen.load(Ordering::SeqCst), 1, "unwound as no coroutine");
    }

    /// A coroutine stays current across its parks and yields, and finds its
    /// own task each time (the switch word holds its yielder while it runs).
    #[test]
    fn a_coroutine_stays_current_across_switches() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let (tx, rx) = chan::bounded::<u32>(0);
        let a = rt.spawn(move || {
            let me = super::current();
            for i in 0..100 {
                tx.send(i).unwrap();
                crate::yield_now();
                assert_eq!(super::current(), me);
            }
        });
        let b = rt.spawn(move || {
            let me = super::current();
            let sum: u32 = (0..100).map(|_| rx.recv().unwrap()).sum();
            assert_eq!(super::current(), me);
            sum
        });
        a.join().unwrap();
        assert_eq!(b.join().unwrap(), 4950);
    }
}
