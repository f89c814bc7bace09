//! Parking: how a blocked party sleeps, is woken, and receives a value.
//!
//! Two kinds of party block in spindle: coroutines (a [`Task`](crate::task))
//! and plain OS threads (a [`ThreadParker`]). A [`Waiter`] is either; channels,
//! joins, timers and wait groups only ever see `Waiter`s, and the [`Caller`]
//! is the party calling right now.
//!
//! Every waiter owns one [`WaitCell`] (`wait_cell.rs`) in *heap* memory: its
//! task, or the thread's parker. A waker that dequeues the waiter (holding the lock of
//! the structure it waited on) may write a value into the cell, then stores
//! the outcome in `state` with `Release`, and finally calls [`Waiter::wake`].
//! The waiter loops on `state` with `Acquire` and sleeps between checks, so a
//! spurious or late wake-up is harmless. Nothing ever points into the stack
//! of a parked coroutine: hand-off values travel through the cell.

mod thread_parker;

use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};

use crate::coroutine::Suspend;
use crate::loom_shim::Arc;
use crate::task::TaskRef;
use crate::wait_cell::{HandOff, Outcome, OutcomeByte, WaitCell};
use thread_parker::thread_parker;
pub(crate) use thread_parker::ThreadParker;

/// Someone who can block: a coroutine or an OS thread. Owns one reference.
///
/// One tagged word, so that wait queues and the join slot stay small: the
/// low bit says which kind it is (both pointees are at least 8-aligned).
pub(crate) struct Waiter(NonNull<u8>);

const THREAD_TAG: usize = 1;

// SAFETY: both variants (TaskRef, Arc<ThreadParker>) are Send.
unsafe impl Send for Waiter {}
// SAFETY: both variants are Sync, and a Waiter is only a tagged pointer to one.
unsafe impl Sync for Waiter {}

/// The two kinds a [`Waiter`] can be, borrowed.
enum Kind<'a> {
    Task(&'a TaskRef),
    Thread(&'a ThreadParker),
}

impl Waiter {
    #[inline]
    pub fn task(task: TaskRef) -> Waiter {
        Waiter(task.into_raw().cast())
    }

    /// Give up the waiter as an opaque word (the task's join slot keeps one).
    #[inline]
    pub fn into_raw(self) -> NonNull<()> {
        ManuallyDrop::new(self).0.cast()
    }

    /// Take back a waiter given up by [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    /// `raw` came from `into_raw` and is used once.
    #[inline]
    pub unsafe fn from_raw(raw: NonNull<()>) -> Waiter {
        Waiter(raw.cast())
    }

    /// A waiter of its own (a fresh thread parker), for unit tests that
    /// need distinct waiters.
    #[cfg(all(test, not(loom)))]
    pub fn for_test() -> Waiter {
        Waiter::thread(Arc::new(ThreadParker::new()))
    }

    fn thread(parker: Arc<ThreadParker>) -> Waiter {
        let raw = Arc::into_raw(parker) as *mut u8;
        Waiter(NonNull::new(raw.wrapping_add(THREAD_TAG)).expect("non-null"))
    }

    #[inline]
    fn kind(&self) -> Kind<'_> {
        let raw = self.0.as_ptr();
        if raw as usize & THREAD_TAG == 0 {
            // SAFETY: untagged words come from `TaskRef::into_raw`, and a
            // TaskRef is a #[repr(transparent)] pointer.
            Kind::Task(unsafe { &*(self as *const Waiter).cast::<TaskRef>() })
        } else {
            // SAFETY: tagged words come from `Arc::into_raw` plus the tag; we
            // hold that reference.
            Kind::Thread(unsafe { &*raw.wrapping_sub(THREAD_TAG).cast::<ThreadParker>() })
        }
    }

    /// The waiter's identity: its task or parker (tag included), the same
    /// for every reference to it.
    #[inline]
    pub fn addr(&self) -> *const () {
        self.0.as_ptr().cast_const().cast()
    }

    #[inline]
    pub fn cell(&self) -> WaitCell<'_> {
        match self.kind() {
            Kind::Task(t) => t.cell(),
            Kind::Thread(p) => p.cell(),
        }
    }

    /// Make the waiter runnable again (it re-checks its condition).
    #[inline(always)]
    pub fn wake(self) {
        let this = ManuallyDrop::new(self);
        if this.0.as_ptr() as usize & THREAD_TAG == 0 {
            // SAFETY: untagged: we own this TaskRef and pass it on.
            crate::sched::wake(unsafe { TaskRef::from_raw(this.0.cast()) });
        } else {
            // SAFETY: tagged: we own this reference and pass it on.
            unsafe { wake_thread(this.0) };
        }
    }

    /// [`wake`](Self::wake), but a coroutine goes to the back of its home's
    /// line (`sched::wake_queued`): the netpoller's wake.
    pub fn wake_queued(self) {
        if let Kind::Task(_) = self.kind() {
            let this = ManuallyDrop::new(self);
            // SAFETY: untagged (a task): we own this TaskRef and pass it on.
            crate::sched::wake_queued(unsafe { TaskRef::from_raw(this.0.cast()) });
        } else {
            self.wake();
        }
    }

    /// [`wake_queued`](Self::wake_queued) from the loop of `worker`, which
    /// polled the event (`sched::wake_polled`): a coroutine of that
    /// worker's own home is queued locally.
    pub fn wake_polled(self, worker: &crate::sched::worker::Worker) {
        if let Kind::Task(_) = self.kind() {
            let this = ManuallyDrop::new(self);
            // SAFETY: untagged (a task): we own this TaskRef and pass it on.
            crate::sched::wake_polled(worker, unsafe { TaskRef::from_raw(this.0.cast()) });
        } else {
            self.wake();
        }
    }

    /// Sleep once; may return spuriously.
    #[inline(always)]
    pub fn park(&self) {
        match self.kind() {
            Kind::Task(_) => crate::sched::park(),
            Kind::Thread(p) => p.park(),
        }
    }

    /// Sleep once, at most until `deadline`; may return early or spuriously.
    /// A coroutine arms a runtime timer for the deadline and takes it back
    /// when it wakes; a thread waits on its condition variable with a timeout.
    pub fn park_until(&self, deadline: std::time::Instant) {
        match self.kind() {
            Kind::Task(t) => {
                let _wake_up = crate::sched::timer::wake_at(t, deadline);
                crate::sched::park();
            }
            Kind::Thread(p) => p.park_until(deadline),
        }
    }

    /// [`park`](Self::park) or [`park_until`](Self::park_until) for a
    /// waiter on a socket: a coroutine tells its worker that this wait may
    /// be long, so that it may be compacted (`sched/compact.rs`).
    pub fn park_on_socket(&self, deadline: Option<std::time::Instant>) {
        match (self.kind(), deadline) {
            (Kind::Task(t), Some(deadline)) => {
                let _wake_up = crate::sched::timer::wake_at(t, deadline);
                crate::sched::park_on_socket();
            }
            (Kind::Task(_), None) => crate::sched::park_on_socket(),
            (Kind::Thread(p), Some(deadline)) => p.park_until(deadline),
            (Kind::Thread(p), None) => p.park(),
        }
    }
}

/// [`Waiter::wake`] for a thread: out of line, so that the task case stays
/// small where it is inlined.
///
/// # Safety
/// `raw` is a tagged word from [`Waiter::thread`], and the caller gives up
/// the reference it stands for.
#[cold]
#[inline(never)]
unsafe fn wake_thread(raw: NonNull<u8>) {
    let parker =
        // SAFETY: tagged: the caller gave us this Arc reference; we release it here.
        unsafe { Arc::from_raw(raw.as_ptr().wrapping_sub(THREAD_TAG).cast::<ThreadParker>()) };
    parker.unpark();
}

impl Clone for Waiter {
    fn clone(&self) -> Self {
        match self.kind() {
            Kind::Task(t) => Waiter::task(t.clone()),
            Kind::Thread(_) => {
                let raw = self
                    .0
                    .as_ptr()
                    .wrapping_sub(THREAD_TAG)
                    .cast::<ThreadParker>();
                // SAFETY: we hold one reference, so the Arc is alive.
                unsafe { Arc::increment_strong_count(raw) };
                Waiter(self.0)
            }
        }
    }
}

impl Drop for Waiter {
    #[inline]
    fn drop(&mut self) {
        let raw = self.0.as_ptr();
        if raw as usize & THREAD_TAG == 0 {
            // SAFETY: untagged: we own this TaskRef.
            drop(unsafe { TaskRef::from_raw(self.0.cast()) });
        } else {
            // SAFETY: tagged: we own this Arc reference.
            drop(unsafe { Arc::from_raw(raw.wrapping_sub(THREAD_TAG).cast::<ThreadParker>()) });
        }
    }
}

/// The calling party, borrowed for the length of one blocking operation:
/// the running coroutine (its worker holds a reference while it runs, on
/// whichever worker that is) or this thread's parker. Taking it costs no
/// reference-count traffic; [`to_waiter`](Self::to_waiter) makes an owned
/// [`Waiter`] for a wait queue.
///
/// The caller's cell is looked up once, here, rather than at every use
/// (each lookup tests the waiter's tag): a blocking channel operation uses
/// it four or five times.
pub(crate) struct Caller {
    waiter: ManuallyDrop<Waiter>,
    /// The waiter's outcome byte and hand-off slot: in the running task, or
    /// in the parker that `waiter` holds a reference to, so they outlive us.
    state: *const OutcomeByte,
    value: *const HandOff,
}

impl Caller {
    #[inline]
    pub fn get() -> Caller {
        let w = match crate::sched::context::current() {
            // SAFETY: the running task is alive while it runs (see above),
            // and ManuallyDrop keeps us from releasing a reference we never took.
            Some(task) => Waiter(task.cast()),
            None => Waiter::thread(thread_parker()),
        };
        let (state, value) = w.cell().parts();
        let (state, value) = (ptr::from_ref(state), ptr::from_ref(value));
        Caller {
            waiter: ManuallyDrop::new(w),
            state,
            value,
        }
    }

    /// The caller's wait cell (the same as `Waiter::cell`, without the lookup).
    #[inline]
    pub fn cell(&self) -> WaitCell<'_> {
        // SAFETY: both point into the running task or into the parker we
        // hold a reference to (see the fields), alive as long as `self`.
        unsafe { WaitCell::new(&*self.state, &*self.value) }
    }

    /// Park until the cell's wait has an outcome, and return it.
    #[inline(always)]
    pub fn wait(&self) -> Outcome {
        loop {
            let outcome = self.cell().outcome();
            if outcome != Outcome::Waiting {
                return outcome;
            }
            match self.kind() {
                // The caller's own task: no need to look up the current
                // coroutine again (`sched::context::suspend_running`).
                // SAFETY: a task `Caller` is made by `get` from the
                // current coroutine, which is the one calling us (a
                // `Caller` is neither `Send` nor kept beyond one blocking
                // operation), resumed normally (during an unwind nothing
                // is current, and `get` makes a thread's `Caller`).
                Kind::Task(t) => unsafe {
                    crate::sched::context::suspend_running(t.task(), Suspend::Park)
                },
                Kind::Thread(p) => p.park(),
            }
        }
    }

    /// An owned waiter for a queue. For a task this is its spare reference
    /// if it has one (`task/spare.rs`), so that a steady park/wake cycle
    /// costs no reference-count traffic; otherwise a new reference.
    #[inline]
    pub fn to_waiter(&self) -> Waiter {
        match self.kind() {
            Kind::Task(t) => Waiter::task(t.take_spare().unwrap_or_else(|| t.clone())),
            Kind::Thread(_) => (*self.waiter).clone(),
        }
    }
}

impl std::ops::Deref for Caller {
    type Target = Waiter;
    #[inline]
    fn deref(&self) -> &Waiter {
        &self.waiter
    }
}

impl Drop for Caller {
    #[inline]
    fn drop(&mut self) {
        // The thread variant did take a reference (thread_parker clones the
        // Arc); the task variant did not.
        if self.waiter.0.as_ptr() as usize & THREAD_TAG != 0 {
            // SAFETY: dropped exactly once, here.
            unsafe { ManuallyDrop::drop(&mut self.waiter) };
        }
    }
}
