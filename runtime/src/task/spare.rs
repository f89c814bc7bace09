//! The spare reference: a park/wake cycle with no reference-count traffic.
//!
//! A parked task is woken through a wait queue's reference, so its worker's
//! reference is not needed from the moment the task parks until it waits
//! again, and then a wait queue needs a new one. Instead of dropping the
//! worker's reference at the park and cloning one at the next wait (two
//! locked instructions per park), the task keeps it as its *spare*
//! ([`TaskRef::commit_park`]), and its next wait takes it
//! ([`TaskRef::take_spare`]). A task that finishes with a spare drops it.
//!
//! The `spare` flag is touched only by the task while it runs and by its
//! worker between a switch-out and the park commit, all on the task's home
//! thread (a started task runs nowhere else), so plain (relaxed) loads and
//! stores suffice.

use std::sync::atomic::Ordering;

use super::TaskRef;

impl TaskRef {
    /// Worker side, after the task switched out asking to park: commit the
    /// park ([`SchedState::commit_park`](super::state::SchedState::commit_park)),
    /// keeping this reference as the task's spare. Returns the task if a wake
    /// overtook the park, for the worker to requeue.
    #[inline]
    pub fn commit_park(self) -> Option<TaskRef> {
        let t = self.task();
        if t.spare.load(Ordering::Relaxed) {
            // Already has a spare (it parked again without a new wait):
            // ours is dropped as usual.
            return if t.state.commit_park() {
                None
            } else {
                Some(self)
            };
        }
        t.spare.store(true, Ordering::Relaxed);
        let raw = self.into_raw();
        // SAFETY: the reference just stashed keeps the task alive, and only
        // this worker can take it back before `commit_park` records PARKED
        // (the task is switched out and in no run queue).
        let t = unsafe { raw.as_ref() };
        if t.state.commit_park() {
            // Parked. From here on a waker may queue the task (a remote one
            // through its home's inbox, task/state.rs): do not touch it.
            return None;
        }
        // Overtaken by a wake: still ours. Take the stashed reference back.
        t.spare.store(false, Ordering::Relaxed);
        // SAFETY: it is the reference given up by `into_raw` above.
        Some(unsafe { TaskRef::from_raw(raw) })
    }

    /// Take the task's spare reference, if it has one. Called by the task
    /// itself while it runs (`Caller::to_waiter`), or by its worker once it
    /// has returned.
    #[inline]
    pub fn take_spare(&self) -> Option<TaskRef> {
        let t = self.task();
        if !t.spare.load(Ordering::Relaxed) {
            return None;
        }
        t.spare.store(false, Ordering::Relaxed);
        Some(TaskRef(self.0))
    }
}
