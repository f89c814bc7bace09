//! Spawning: how a function becomes a queued coroutine, and what the
//! coroutine runs first.
//!
//! [`Scheduler::spawn`] allocates the task (`task/`) and queues it where any
//! worker may take it, since it has not started: on one of this
//! runtime's workers into its spawn slot (`home.rs`; Go's `runnext` for
//! `newproc`), from anywhere else into the injector. Either way an idle
//! worker is woken, so a new coroutine never waits behind a busy one while
//! a worker sleeps. After shutdown has begun, spawning fails.
//!
//! **When the stack is taken.** A default spawn (`spindle::spawn`,
//! `Runtime::spawn`, `Handle::spawn`) takes no stack: the task is
//! *deferred* (`task/start.rs`), and the worker that first runs it takes a
//! stack from its own cache (`Worker::start`) and builds the coroutine
//! with [`start_deferred`]. So a spawner that outruns its children queues
//! only small tasks, and the stacks cycle LIFO through the cache of the
//! worker that runs them: a fan-out of 10^6 on 2 workers carved 212,929
//! slots when every queued child held a stack, and carves about one cache
//! batch per worker now (figures: the `fanout` commit messages, issue #11).
//! `Builder::spawn*` take the stack at spawn, as before, because they
//! promise to return the error (a full address space, `vm.max_map_count`)
//! to the caller, and because the label's name must be written then. But
//! on a fresh slot they too build the coroutine at first run
//! ([`start_carried`]): building it writes the initial frame, the first
//! touch of the stack's top page, which on a fresh slot is a page fault (about 1.6 µs here, the largest
//! part of a cold spawn: `docs/notes/cold-paths.md`). Taken at spawn, that
//! fault serialised a spawning loop on its worker, and the children's first
//! runs (which make their runner their home for good) then crowded onto
//! the other worker, so that waking them all later ran on one worker too.
//!
//! [`coroutine_main`] is the first code that runs on the new stack, the
//! first time a worker resumes the task (which names it this thread's
//! current coroutine, `context.rs`): it records where its yielder is (the
//! task's switch word), runs the user's function (catching a panic), and
//! stores the result in the task's wait cell for `join`; if the join handle
//! is already gone, it drops the result itself, still current, so that the
//! result's destructor runs as part of the coroutine (it may park, and a
//! panic in it is caught), never on the bare worker thread.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::context;
use super::worker::Worker;
use super::Scheduler;
use crate::coroutine::{Coroutine, Yielder};
use crate::stack::Stack;
use crate::task::join_state::Stored;
use crate::task::start::{note_deferred, payload_inline, Start, StartFn};
use crate::task::{TaskPtr, TaskRef};

/// What a spawn asks for beyond the function itself.
#[derive(Default)]
pub(crate) struct SpawnOptions<'a> {
    pub name: Option<&'a str>,
    pub stack_max: Option<usize>,
    /// Take the stack now, so that a failure to get one is returned by the
    /// spawn (`Builder`); otherwise the first run takes it (module docs).
    pub stack_at_spawn: bool,
}

impl SpawnOptions<'_> {
    /// May this spawn leave its stack to the first run?
    fn deferred(&self) -> bool {
        !self.stack_at_spawn && self.name.is_none() && self.stack_max.is_none()
    }
}

impl Scheduler {
    /// Create a task and queue it, from whichever thread calls. Returns the
    /// join handle's reference.
    pub fn spawn<F, T>(self: &Arc<Self>, opts: SpawnOptions<'_>, f: F) -> io::Result<TaskRef>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        context::with_worker(|w| {
            let local = w.filter(|w| Arc::ptr_eq(&w.scheduler, self));
            self.spawn_from(local, opts, f)
        })
    }

    /// Create a task and queue it. From `local`, one of this runtime's
    /// workers, the new task goes to its spawn slot (the task it displaces
    /// to its stealable queue); from anywhere else (`None`) it goes to the
    /// injector. Either way an idle worker is woken.
    fn spawn_from<F, T>(
        self: &Arc<Self>,
        local: Option<&Worker>,
        opts: SpawnOptions<'_>,
        f: F,
    ) -> io::Result<TaskRef>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.shutdown.load(Ordering::Acquire) {
            return Err(shut_down());
        }
        let (run, handle) = if opts.deferred() {
            note_deferred(!payload_inline::<F>());
            TaskRef::new_deferred(start_deferred::<F, T> as StartFn, f)
        } else {
            self.new_with_stack(local, opts, f)?
        };
        self.queue_spawned(local, run, handle)
    }

    /// A task whose stack is taken now (`Builder`, or a name or size).
    fn new_with_stack<F, T>(
        &self,
        local: Option<&Worker>,
        opts: SpawnOptions<'_>,
        f: F,
    ) -> io::Result<(TaskRef, TaskRef)>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let size = match opts.stack_max {
            Some(bytes) => crate::stack_size_for(bytes)?,
            None => self.pool.default_size(),
        };
        let ((mut stack, reused), id) = match local {
            Some(w) => (
                self.pool
                    .get_noting_reuse(Some(&mut w.stacks.borrow_mut()), size)?,
                w.next_id(),
            ),
            None => (
                self.pool.get_noting_reuse(None, size)?,
                self.next_id.fetch_add(1, Ordering::Relaxed),
            ),
        };
        crate::stack::asan::forget_stale_poison(&stack);
        stack.set_label(id, opts.name);
        if reused {
            // The top page is resident: building here costs no fault, and
            // the function goes straight onto the stack, which the parked
            // coroutine pays for anyway (deferred, a function too large for
            // the task's slots would wait in a box while the spawner runs
            // ahead: tens of bytes per coroutine that the allocator keeps).
            return Ok(TaskRef::new(|me| new_coroutine(me, stack, f)));
        }
        let start = start_carried::<F, T> as StartFn;
        note_deferred(!carried_inline::<F>());
        Ok(if carried_inline::<F>() {
            TaskRef::new_deferred(start, (stack, f))
        } else {
            // Only `f` in a box of its own: a smaller block than the pair's.
            TaskRef::new_deferred(start, (stack, Box::new(f)))
        })
    }

    /// Queue `run`, a new task; returns the join handle's reference.
    fn queue_spawned(
        self: &Arc<Self>,
        local: Option<&Worker>,
        run: TaskRef,
        handle: TaskRef,
    ) -> io::Result<TaskRef> {
        match local {
            Some(w) => {
                self.counters.worker(w.index).add_spawned();
                w.push_spawned(run);
            }
            None => {
                self.counters.external_spawned();
                self.injector.push(run);
                if self.shutdown.load(Ordering::SeqCst) {
                    // The workers may have emptied the injector for the last
                    // time before our push: cancel what is left ourselves.
                    self.cancel_injected();
                    return Err(shut_down());
                }
            }
        }
        self.idle.notify_one();
        Ok(handle)
    }
}

pub(crate) fn shut_down() -> io::Error {
    io::Error::other("spindle: cannot spawn: the runtime has shut down")
}

/// Spawn on the runtime of the calling worker (`spindle::spawn`). Returns
/// the join handle's reference.
///
/// # Panics
/// If the caller is not on a spindle worker.
pub(crate) fn spawn_here<F, T>(opts: SpawnOptions<'_>, f: F) -> io::Result<TaskRef>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    context::with_worker(|w| {
        let w = w.expect(
            "spindle::spawn called outside a spindle runtime; use Runtime::spawn or Runtime::block_on",
        );
        // Borrowing the worker's Arc (no clone) is fine: spawn does not suspend.
        w.scheduler.spawn_from(Some(w), opts, f)
    })
}

/// The coroutine of task `me`: [`coroutine_main`] running `f` on `stack`.
fn new_coroutine<F, T>(me: TaskPtr, stack: Stack, f: F) -> Coroutine
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Coroutine::with_stack(stack, move |yielder, ()| coroutine_main(me, yielder, f))
}

/// The [`StartFn`] of a deferred task whose function is an `F`
/// (`task/start.rs`: in the task's slots, boxed if larger than five
/// words): the first run builds the coroutine on the stack its worker took.
///
/// # Safety
/// As [`StartFn`] states: the task's slots hold its `F`, taken once.
unsafe fn start_deferred<F, T>(me: TaskPtr, how: Start) -> Option<Coroutine>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if let Start::Own = how {
        // No stack of our own: the worker gives one (`Start::Run`).
        return None;
    }
    // SAFETY: the caller promises the slots hold our `F`, taken once.
    let f = unsafe { me.take_payload::<F>() };
    match how {
        Start::Run(stack) => return Some(new_coroutine(me, stack, f)),
        Start::Drop => drop(f),
        Start::Own => unreachable!("answered above"),
        Start::Fail(e) => {
            // We are on the bare worker thread: a panicking destructor of
            // `f` must not unwind it.
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(f)));
            let msg = format!("spindle: failed to spawn coroutine: {e}");
            // A detached task has no one to tell: say it here, as a panic
            // would.
            eprintln!("{msg}");
            let result: std::thread::Result<T> = Err(Box::new(msg));
            // SAFETY: the task is alive (the worker holds it), the function
            // just left the slots, and nobody reads a result before STORED.
            unsafe { me.cell().put(result) };
            // SAFETY: (task alive, as above.)
            if unsafe { &*me.as_ptr() }.join.store() == Stored::Detached {
                // SAFETY: the handle was gone at STORED: the result is ours.
                drop(unsafe { me.cell().take::<std::thread::Result<T>>() });
            }
        }
    }
    None
}

/// The [`StartFn`] of a task that took its stack at spawn (`Builder`): its
/// slots hold the stack and the `F` (the `F` boxed if the pair does not
/// fit there, [`carried_inline`]), and the first run builds the
/// coroutine on that stack ([`Start::Own`], which the worker tries before
/// it takes a stack of its own).
///
/// # Safety
/// As [`StartFn`] states: the task's slots hold what `new_with_stack` put
/// there for this `F`, taken once.
unsafe fn start_carried<F, T>(me: TaskPtr, how: Start) -> Option<Coroutine>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (stack, f) = if carried_inline::<F>() {
        // SAFETY: the caller promises the slots hold what `new_with_stack`
        // put there for this `F`, taken once.
        unsafe { me.take_payload::<(Stack, F)>() }
    } else {
        // SAFETY: as above.
        let (stack, f) = unsafe { me.take_payload::<(Stack, Box<F>)>() };
        (stack, *f)
    };
    match how {
        Start::Own => Some(new_coroutine(me, stack, f)),
        // Dropped unstarted (cancelled at shutdown, or its last reference
        // gone): the function is dropped, and the slot is forgotten (a
        // `Stack` is only its label's address), as the slot of a coroutine
        // built at spawn and never run was.
        Start::Drop => {
            drop(f);
            None
        }
        // `Own` always builds for such a task, so the worker never offers
        // a stack or reports a failure to get one.
        Start::Run(_) | Start::Fail(_) => {
            unreachable!("a task that took its stack at spawn starts with Start::Own")
        }
    }
}

/// Does a task that took its stack at spawn keep `(Stack, F)` in its
/// slots without a box (five words, `task/start.rs`: so an `F` of up to
/// four)? If not, it keeps `(Stack, Box<F>)`, which does.
const fn carried_inline<F>() -> bool {
    payload_inline::<(Stack, F)>()
}

/// The first code a new coroutine runs, on its own stack, and its last.
fn coroutine_main<F, T>(me: TaskPtr, yielder: &Yielder, f: F)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: `me` is our own task (alive while we run: its worker holds a
    // reference), and `yielder` ours.
    unsafe { context::start(&*me.as_ptr(), yielder) };
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    // The runtime is cancelling us (sched/shutdown.rs): this is corosensei's
    // forced unwind, not a panic of `f`. Let it reach the coroutine's root;
    // there is no result.
    let result = match result {
        Err(payload) if context::cancelling() => panic::resume_unwind(payload),
        result => result,
    };
    // SAFETY: the task is alive (its worker holds a reference while it
    // runs), it is not waiting on anything, so its hand-off slot is free,
    // and nobody reads the result before STORED is published.
    unsafe { me.cell().put(result) };
    // SAFETY: (task alive, as above.)
    if unsafe { &*me.as_ptr() }.join.store() == Stored::Detached {
        // SAFETY: the handle was gone when we set STORED, so the result is
        // ours alone (task/join_state.rs); taking it frees the hand-off slot
        // for any wait its destructor makes.
        let result = unsafe { me.cell().take::<std::thread::Result<T>>() };
        // Still current: a destructor that blocks parks this coroutine.
        crate::join::drop_detached(result);
    }
    // SAFETY: (task alive, as above.) Our own task, and we return to the
    // worker from here without suspending again.
    unsafe { context::finish(&*me.as_ptr()) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! Deferred tasks keep functions of up to five words (`Builder`: four,
    //! beside the stack) in the task's slots without a box
    //! (`task/start.rs`), and run or drop them exactly once either way.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use crate::task::start::DEFERRED_MADE;
    use crate::{Builder, JoinHandle, Runtime};

    #[derive(Default)]
    struct Counts {
        ran: AtomicUsize,
        dropped: AtomicUsize,
    }

    /// Counts its drops (one word).
    struct Counted(Arc<Counts>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A closure of `N + 1` words: the counter and `N` words of data.
    fn closure<const N: usize>(counts: &Arc<Counts>) -> impl FnOnce() -> usize + Send + 'static {
        let (c, pad) = (Counted(counts.clone()), [3; N]);
        let f = move || {
            c.0.ran.fetch_add(1, Ordering::SeqCst);
            pad.iter().sum()
        };
        assert_eq!(size_of_val(&f), (N + 1) * size_of::<usize>());
        f
    }

    /// Spawn a closure of `N + 1` words on a fresh runtime (with `Builder`
    /// if `builder`), join it, and return (tasks deferred, boxes made) by
    /// the spawn.
    fn run_one<const N: usize>(builder: bool) -> (usize, usize) {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let counts = Arc::new(Counts::default());
        let f = closure::<N>(&counts);
        let before = DEFERRED_MADE.with(|n| n.get());
        let h = if builder {
            // A fresh runtime's first stack is a fresh slot, so the task is
            // deferred with it (a reused slot would build at spawn).
            Builder::new().spawn_on(&rt, f).unwrap()
        } else {
            rt.spawn(f)
        };
        let after = DEFERRED_MADE.with(|n| n.get());
        assert_eq!(h.join().unwrap(), 3 * N, "the function ran, on its data");
        assert_eq!(counts.ran.load(Ordering::SeqCst), 1);
        assert_eq!(counts.dropped.load(Ordering::SeqCst), 1, "dropped once");
        (after.0 - before.0, after.1 - before.1)
    }

    #[test]
    fn plain_spawns_keep_up_to_five_words_unboxed() {
        assert_eq!(run_one::<2>(false), (1, 0), "3 words: deferred, no box");
        assert_eq!(run_one::<3>(false), (1, 0), "4 words: deferred, no box");
        assert_eq!(run_one::<4>(false), (1, 0), "5 words: deferred, no box");
        assert_eq!(run_one::<5>(false), (1, 1), "6 words: deferred, boxed");
    }

    #[test]
    fn builder_spawns_keep_up_to_four_words_unboxed() {
        assert_eq!(run_one::<2>(true), (1, 0), "3 words: deferred, no box");
        assert_eq!(run_one::<3>(true), (1, 0), "4 words: deferred, no box");
        assert_eq!(run_one::<4>(true), (1, 1), "5 words: deferred, boxed");
    }

    /// Unstarted at shutdown, each function is dropped once and never
    /// runs, inline or boxed.
    #[test]
    fn unstarted_functions_of_every_size_are_dropped_once() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let counts = Arc::new(Counts::default());
        let handles: Vec<JoinHandle<usize>> = {
            let counts = counts.clone();
            rt.block_on(move || {
                // One worker, and the spawner never blocks: none of these
                // has started when block_on returns (one that has counts
                // as run).
                let mut hs = Vec::new();
                let b = || Builder::new();
                for _ in 0..10 {
                    hs.push(crate::spawn(closure::<2>(&counts)));
                    hs.push(crate::spawn(closure::<3>(&counts)));
                    hs.push(crate::spawn(closure::<4>(&counts)));
                    hs.push(crate::spawn(closure::<5>(&counts)));
                    hs.push(b().spawn(closure::<2>(&counts)).unwrap());
                    hs.push(b().spawn(closure::<3>(&counts)).unwrap());
                    hs.push(b().spawn(closure::<4>(&counts)).unwrap());
                }
                hs
            })
        };
        drop(rt);
        let n = handles.len();
        let cancelled: usize = handles
            .into_iter()
            .map(|h| usize::from(h.join().is_err()))
            .sum();
        let ran = counts.ran.load(Ordering::SeqCst);
        assert_eq!(ran + cancelled, n, "each ran or was cancelled");
        assert_eq!(
            counts.dropped.load(Ordering::SeqCst),
            n,
            "each dropped once"
        );
    }
}
