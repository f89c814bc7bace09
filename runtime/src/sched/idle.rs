//! Idle workers: who sleeps, who spins, and who gets woken.
//!
//! This is Go's `pidle`/`nmspinning` bookkeeping (runtime/proc.go), reduced
//! to what spindle needs:
//!
//! * A worker with nothing to run first **spins**: it looks for work to steal
//!   for a short while. At most half of the busy workers spin at once
//!   ([`Idle::may_spin`]), so idle CPUs are not burned by a crowd of thieves.
//! * Then it **sleeps** on its own condition variable, after registering in
//!   the sleeper list and checking every queue once more.
//! * Whoever makes stealable work available calls [`Idle::notify_one`]. If a
//!   worker is already spinning, it will find the work; otherwise one
//!   sleeper is woken *and counted as spinning* right away, so a burst of new
//!   work wakes one worker, not all of them.
//! * Work that only one worker may run (a woken coroutine in its home's
//!   inbox) calls [`Idle::notify_worker`] for that worker: it is woken if it
//!   sleeps; if it is awake it checks its inbox before it sleeps again.
//!
//! * One sleeping worker may sleep in `epoll_wait` instead of on its
//!   condition variable (`net/mod.rs`, [`Idle::sleep_polling`]): ringing it
//!   then writes the poller's eventfd ([`Kick`]), and only then.
//!
//! No wake-up is lost: the producer publishes work, then (after a SeqCst
//! fence) reads the counters; the sleeper publishes itself in the counters,
//! then (after a SeqCst fence) reads the queues, its own inbox included. At
//! least one of them sees the other.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use crate::loom_shim::{fence, lock, AtomicUsize, Condvar, Mutex};
use crate::net::poller::Kick;

pub(crate) struct Idle {
    workers: usize,
    num_spinning: AtomicUsize,
    num_sleeping: AtomicUsize,
    /// Indices of sleeping workers.
    sleepers: Mutex<Vec<usize>>,
    beds: Box<[Bed]>,
    kick: Kick,
}

/// Where one worker sleeps.
struct Bed {
    state: Mutex<BedState>,
    cv: Condvar,
}

#[derive(Default)]
struct BedState {
    woken: bool,
    /// The worker sleeps in `epoll_wait`, not on `cv`.
    polling: bool,
}

/// How a sleep ended.
pub(crate) enum Wakeup {
    /// `notify_one` picked this worker: it is now counted as spinning.
    Notified,
    /// Timeout or shutdown: not counted as spinning.
    Other,
}

impl Idle {
    pub fn new(workers: usize, kick: Kick) -> Idle {
        Idle {
            workers,
            num_spinning: AtomicUsize::new(0),
            num_sleeping: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            beds: (0..workers)
                .map(|_| Bed {
                    state: Mutex::new(BedState::default()),
                    cv: Condvar::new(),
                })
                .collect(),
            kick,
        }
    }

    /// May one more worker start spinning? (Go: `2*nmspinning < busy`.)
    pub fn may_spin(&self) -> bool {
        let busy = self.workers.saturating_sub(self.num_sleeping.load(SeqCst));
        2 * self.num_spinning.load(SeqCst) < busy
    }

    pub fn start_spinning(&self) {
        self.num_spinning.fetch_add(1, SeqCst);
    }

    /// Stop spinning. Returns true if this was the last spinning worker.
    pub fn stop_spinning(&self) -> bool {
        self.num_spinning.fetch_sub(1, SeqCst) == 1
    }

    /// Work was just published: make sure someone will look at it.
    pub fn notify_one(&self) {
        fence(SeqCst);
        if self.num_spinning.load(SeqCst) != 0 || self.num_sleeping.load(SeqCst) == 0 {
            return;
        }
        let index = {
            let mut sleepers = lock(&self.sleepers);
            let Some(index) = sleepers.pop() else { return };
            self.num_sleeping.fetch_sub(1, SeqCst);
            self.num_spinning.fetch_add(1, SeqCst);
            index
        };
        self.ring(index);
    }

    /// Work only worker `index` may run was just published (in its inbox):
    /// make sure it will look. If it sleeps, it is woken (and counted as
    /// spinning, as a worker woken by [`notify_one`](Self::notify_one) is);
    /// if it is awake, it re-checks its inbox before sleeping.
    pub fn notify_worker(&self, index: usize) {
        fence(SeqCst);
        if self.num_sleeping.load(SeqCst) == 0 {
            return;
        }
        {
            let mut sleepers = lock(&self.sleepers);
            let Some(pos) = sleepers.iter().position(|&i| i == index) else {
                return;
            };
            sleepers.swap_remove(pos);
            self.num_sleeping.fetch_sub(1, SeqCst);
            self.num_spinning.fetch_add(1, SeqCst);
        }
        self.ring(index);
    }

    /// Wake every sleeper (shutdown).
    pub fn notify_all(&self) {
        let all: Vec<usize> = {
            let mut sleepers = lock(&self.sleepers);
            self.num_sleeping.fetch_sub(sleepers.len(), SeqCst);
            sleepers.drain(..).collect()
        };
        for index in all {
            self.ring(index);
        }
    }

    fn ring(&self, index: usize) {
        let bed = &self.beds[index];
        let mut state = lock(&bed.state);
        state.woken = true;
        if state.polling {
            self.kick.kick();
        }
        drop(state);
        bed.cv.notify_one();
    }

    /// Register `index` as sleeping. The caller must re-check for work
    /// afterwards and call [`cancel_sleep`](Self::cancel_sleep) if it finds some.
    pub fn prepare_sleep(&self, index: usize) {
        {
            // Counted under the lock, as every removal is: the count never
            // falls below the list's length.
            let mut sleepers = lock(&self.sleepers);
            sleepers.push(index);
            self.num_sleeping.fetch_add(1, SeqCst);
        }
        fence(SeqCst);
    }

    /// Undo [`prepare_sleep`](Self::prepare_sleep). Returns `Notified` if a
    /// producer already picked us (we are then counted as spinning).
    pub fn cancel_sleep(&self, index: usize) -> Wakeup {
        let mut sleepers = lock(&self.sleepers);
        match sleepers.iter().position(|&i| i == index) {
            Some(pos) => {
                sleepers.swap_remove(pos);
                self.num_sleeping.fetch_sub(1, SeqCst);
                Wakeup::Other
            }
            None => Wakeup::Notified,
        }
    }

    /// Sleep until rung or until `timeout` passes.
    pub fn sleep(&self, index: usize, timeout: Option<Duration>) -> Wakeup {
        let bed = &self.beds[index];
        {
            let mut state = lock(&bed.state);
            while !state.woken {
                match timeout {
                    None => state = bed.cv.wait(state).unwrap_or_else(|e| e.into_inner()),
                    Some(t) => {
                        let (w, res) = bed
                            .cv
                            .wait_timeout(state, t)
                            .unwrap_or_else(|e| e.into_inner());
                        state = w;
                        if res.timed_out() {
                            break;
                        }
                    }
                }
            }
            state.woken = false;
        }
        self.cancel_sleep(index)
    }

    /// [`sleep`](Self::sleep), but in `wait` (the poller's `epoll_wait`,
    /// which returns on an event, a timeout, or a [`Kick`]) instead of on
    /// the condition variable. A ring before `wait` starts kicks it too:
    /// the eventfd stays readable, so `wait` returns at once.
    pub fn sleep_polling(&self, index: usize, wait: impl FnOnce()) -> Wakeup {
        let bed = &self.beds[index];
        let mut state = lock(&bed.state);
        if !state.woken {
            state.polling = true;
            drop(state);
            wait();
            state = lock(&bed.state);
            state.polling = false;
        }
        state.woken = false;
        drop(state);
        self.cancel_sleep(index)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use std::sync::atomic::Ordering::{Acquire, Release};

    /// The race both models check: a waker on another thread puts a task
    /// in worker 1's inbox and calls `notify_worker(1)` while worker 1 goes
    /// to sleep as `Worker::sleep` does (register, re-check its inbox, then
    /// `sleep`, which it is given). Worker 1 must not sleep through the
    /// notify, and must see the task once awake.
    fn waker_races_worker_1_to_sleep(idle: Arc<Idle>, sleep: impl FnOnce(&Idle)) {
        let inbox = Arc::new(AtomicBool::new(false));
        let (idle2, inbox2) = (idle.clone(), inbox.clone());
        let waker = loom::thread::spawn(move || {
            inbox2.store(true, Release);
            idle2.notify_worker(1);
        });
        idle.prepare_sleep(1);
        if inbox.load(Acquire) {
            idle.cancel_sleep(1);
        } else {
            sleep(&idle);
        }
        assert!(inbox.load(Acquire), "woken without seeing the inbox");
        waker.join().unwrap();
    }

    /// Worker 1 sleeps on its condition variable ([`Idle::sleep`]); a lost
    /// notify leaves it asleep, which loom reports as a deadlock.
    #[test]
    fn loom_targeted_wake_is_not_lost() {
        loom::model(|| {
            let idle = Arc::new(Idle::new(2, Kick::model(None)));
            waker_races_worker_1_to_sleep(idle, |idle| {
                idle.sleep(1, None);
            });
        });
    }

    /// The same race with worker 1 asleep in `epoll_wait`
    /// ([`Idle::sleep_polling`]): the notify must kick it out. The model's
    /// "epoll_wait" returns only once the kick flag is set; a lost kick
    /// leaves it spinning, which loom reports (too many branches).
    /// Mutating `ring` to skip the kick makes it fail.
    #[test]
    fn loom_ring_kicks_a_worker_in_epoll_wait() {
        loom::model(|| {
            let kicked = Arc::new(AtomicBool::new(false));
            let idle = Arc::new(Idle::new(2, Kick::model(Some(kicked.clone()))));
            waker_races_worker_1_to_sleep(idle, |idle| {
                idle.sleep_polling(1, || {
                    while !kicked.load(Acquire) {
                        loom::thread::yield_now();
                    }
                });
            });
        });
    }
}
