//! A worker's home: the part of a worker that other threads can reach.
//!
//! A coroutine that has started never changes worker (the crate docs say
//! why: thread-locals and `!Send` values held across a switch). Its task
//! records its *home*, the worker that first ran it, and everything that
//! happens to it afterwards happens there. So other threads need two ways
//! into a worker:
//!
//! * the **inbox**, where a waker on another thread (another worker, or a
//!   plain OS thread sending on a channel) puts a woken task of this home,
//!   and then wakes this worker if it sleeps ([`Idle::notify_worker`]);
//! * the **spawn slot**, where this worker's newest spawned coroutine waits
//!   to run first (Go's `runnext` for `newproc`). It has not started, so an
//!   idle worker may take it after a short grace period
//!   ([`take_spawned`](Home::take_spawned)), as Go's `runqgrab` does: the
//!   spawner usually blocks soon and runs the child itself, in cache.
//!
//! [`Idle::notify_worker`]: super::idle::Idle::notify_worker

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use crossbeam_deque::{Injector, Steal};

use super::Scheduler;
use crate::task::{Task, TaskRef};

pub(crate) struct Home {
    pub index: usize,
    /// The scheduler this home belongs to (it lives inside it).
    pub scheduler: *const Scheduler,
    inbox: Injector<TaskRef>,
    /// An unstarted task given up with `TaskRef::into_raw`, or null.
    spawned: AtomicPtr<Task>,
}

// SAFETY: `scheduler` points to the Scheduler that owns this Home, which is
// Sync; the inbox and the spawn slot are thread-safe queues of TaskRefs,
// which are Send.
unsafe impl Send for Home {}
// SAFETY: as above: every field is immutable or synchronised.
unsafe impl Sync for Home {}

impl Home {
    pub fn new(index: usize, scheduler: *const Scheduler) -> Home {
        Home {
            index,
            scheduler,
            inbox: Injector::new(),
            spawned: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// A woken task of this home, from another thread.
    pub fn push_inbox(&self, task: TaskRef) {
        self.inbox.push(task);
    }

    pub fn pop_inbox(&self) -> Option<TaskRef> {
        // `steal` starts with a full fence even on an empty queue; most
        // looks find it empty (a stale "empty" only delays the task: the
        // re-check before sleeping, `Worker::work_visible`, sees it).
        if self.inbox.is_empty() {
            return None;
        }
        loop {
            match self.inbox.steal() {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Move up to `limit` entries (at least one if there are any) from
    /// the inbox to `dest`, with one fence and one compare-and-swap for all
    /// of them, where [`pop_inbox`](Self::pop_inbox) pays both per entry.
    pub fn pop_inbox_batch(&self, dest: &crossbeam_deque::Worker<TaskRef>, limit: usize) {
        if limit == 0 || self.inbox.is_empty() {
            return;
        }
        while let Steal::Retry = self.inbox.steal_batch_with_limit(dest, limit) {}
    }

    pub fn inbox_is_empty(&self) -> bool {
        self.inbox.is_empty()
    }

    /// Put a new, unstarted task in the spawn slot; returns the one it
    /// displaces (for the owner's stealable queue).
    pub fn put_spawned(&self, task: TaskRef) -> Option<TaskRef> {
        let old = self
            .spawned
            .swap(task.into_raw().as_ptr(), Ordering::AcqRel);
        // SAFETY: a non-null slot holds a reference given up by `into_raw`,
        // and the swap made it ours.
        ptr::NonNull::new(old).map(|p| unsafe { TaskRef::from_raw(p) })
    }

    /// Take the task in the spawn slot, if any (its owner, or a thief).
    pub fn take_spawned(&self) -> Option<TaskRef> {
        if self.spawned.load(Ordering::Relaxed).is_null() {
            return None;
        }
        let old = self.spawned.swap(ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: as in `put_spawned`.
        ptr::NonNull::new(old).map(|p| unsafe { TaskRef::from_raw(p) })
    }

    pub fn has_spawned(&self) -> bool {
        !self.spawned.load(Ordering::Acquire).is_null()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        drop(self.take_spawned());
    }
}
