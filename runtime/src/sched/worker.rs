//! Workers: the OS threads that run coroutines (Go's M with its P).
//!
//! Each worker owns a [`RunQueue`]: a FIFO work-stealing deque plus a
//! `runnext` slot. The loop in [`Worker::run`] is Go's `schedule()`:
//!
//! 1. every 61st round, look at the global injector first, so tasks pushed
//!    from outside are never starved by a busy local queue, and fire due timers;
//! 2. `runnext` (a task woken by this worker: it runs next, so a ping-pong
//!    pair stays on one worker and in cache), at most [`RUNNEXT_LIMIT`] times
//!    in a row so it cannot starve the local queue;
//! 3. the local queue, then the injector;
//! 4. spin: steal half of another worker's queue (bounded number of spinners);
//! 5. sleep until notified or until the next timer is due.
//!
//! Only the owning thread touches `runnext`, the local end of the deque, and
//! the stack cache; other workers only steal through the shared `Stealer`.

use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use corosensei::CoroutineResult;
use crossbeam_deque::{Steal, Worker as Deque};

use super::context;
use super::idle::Wakeup;
use super::Scheduler;
use crate::coroutine::Suspend;
use crate::park::Waiter;
use crate::stack::pool::LocalStacks;
use crate::task::TaskRef;

/// How many times in a row `runnext` may win over the local queue.
const RUNNEXT_LIMIT: u32 = 32;
/// Go checks the global queue every 61 scheduling rounds; so do we.
const GLOBAL_POLL_INTERVAL: u32 = 61;
/// Rounds over all victims before a spinning worker gives up and sleeps.
const STEAL_ROUNDS: usize = 4;
/// Task ids are taken from the shared counter in blocks of this many.
const ID_BLOCK: u64 = 1024;

/// A worker's run queue: the deque other workers steal from, and `runnext`.
pub(crate) struct RunQueue {
    deque: Deque<TaskRef>,
    runnext: Cell<Option<TaskRef>>,
    streak: Cell<u32>,
}

impl RunQueue {
    pub fn new() -> RunQueue {
        RunQueue {
            deque: Deque::new_fifo(),
            runnext: Cell::new(None),
            streak: Cell::new(0),
        }
    }

    pub fn stealer(&self) -> crossbeam_deque::Stealer<TaskRef> {
        self.deque.stealer()
    }
}

pub(crate) struct Worker {
    pub index: usize,
    pub scheduler: Arc<Scheduler>,
    queue: RunQueue,
    pub stacks: RefCell<LocalStacks>,
    tick: Cell<u32>,
    spinning: Cell<bool>,
    rng: Cell<u64>,
    next_id: Cell<u64>,
    id_end: Cell<u64>,
}

impl Worker {
    pub fn new(index: usize, scheduler: Arc<Scheduler>, queue: RunQueue) -> Worker {
        let stacks = scheduler.pool.new_local();
        Worker {
            index,
            scheduler,
            queue,
            stacks: RefCell::new(stacks),
            tick: Cell::new(0),
            spinning: Cell::new(false),
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1)),
            next_id: Cell::new(0),
            id_end: Cell::new(0),
        }
    }

    /// The worker thread's main loop. Returns at shutdown.
    pub fn run(&self) {
        context::set_worker(self);
        loop {
            if self.scheduler.shutdown.load(Ordering::Acquire) {
                break;
            }
            if let Some(task) = self.find_task() {
                // A worker woken to look for work is counted as spinning
                // until it finds some, wherever it finds it.
                self.stop_spinning();
                self.run_task(task);
                continue;
            }
            if let Some(task) = self.spin() {
                self.run_task(task);
                continue;
            }
            self.sleep();
        }
        self.shutdown();
        context::set_worker(ptr::null());
    }

    /// A fresh task id, from this worker's block.
    pub fn next_id(&self) -> u64 {
        if self.next_id.get() == self.id_end.get() {
            let start = self
                .scheduler
                .next_id
                .fetch_add(ID_BLOCK, Ordering::Relaxed);
            self.next_id.set(start);
            self.id_end.set(start + ID_BLOCK);
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Make `task` the next one this worker runs. The task it displaces goes
    /// to the local queue, where idle workers may steal it.
    pub fn push_runnext(&self, task: TaskRef) {
        if let Some(old) = self.queue.runnext.replace(Some(task)) {
            self.queue.deque.push(old);
            self.scheduler.idle.notify_one();
        }
    }

    fn find_task(&self) -> Option<TaskRef> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick % GLOBAL_POLL_INTERVAL == 0 {
            self.scheduler.timers.fire_due();
            if let Some(task) = self.steal_from_injector() {
                return Some(task);
            }
        }
        if let Some(task) = self.queue.runnext.take() {
            let streak = self.queue.streak.get();
            if streak < RUNNEXT_LIMIT {
                self.queue.streak.set(streak + 1);
                return Some(task);
            }
            // Fairness: send it to the back of the line.
            self.queue.deque.push(task);
        }
        self.queue.streak.set(0);
        self.queue
            .deque
            .pop()
            .or_else(|| self.steal_from_injector())
    }

    fn steal_from_injector(&self) -> Option<TaskRef> {
        loop {
            match self
                .scheduler
                .injector
                .steal_batch_and_pop(&self.queue.deque)
            {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Look for work elsewhere for a little while (Go's `findrunnable`).
    fn spin(&self) -> Option<TaskRef> {
        let idle = &self.scheduler.idle;
        if !self.spinning.get() {
            if !idle.may_spin() {
                return None;
            }
            idle.start_spinning();
            self.spinning.set(true);
        }
        let n = self.scheduler.stealers.len();
        for _ in 0..STEAL_ROUNDS {
            if self.scheduler.timers.fire_due() > 0 {
                if let Some(task) = self.queue.runnext.take() {
                    return self.found_work(task);
                }
            }
            let start = self.random() as usize % n;
            for k in 0..n {
                let victim = (start + k) % n;
                if victim == self.index {
                    continue;
                }
                loop {
                    match self.scheduler.stealers[victim].steal_batch_and_pop(&self.queue.deque) {
                        Steal::Success(task) => {
                            self.scheduler.counters.worker(self.index).add_steal();
                            return self.found_work(task);
                        }
                        Steal::Empty => break,
                        Steal::Retry => continue,
                    }
                }
            }
            if let Some(task) = self.steal_from_injector() {
                return self.found_work(task);
            }
            std::hint::spin_loop();
        }
        None
    }

    /// Leave the spinning state with work in hand.
    fn found_work(&self, task: TaskRef) -> Option<TaskRef> {
        self.stop_spinning();
        Some(task)
    }

    /// The last spinner to stop wakes another, so fresh work keeps finding a
    /// thief (Go's `resetspinning`).
    fn stop_spinning(&self) {
        if self.spinning.replace(false) && self.scheduler.idle.stop_spinning() {
            self.scheduler.idle.notify_one();
        }
    }

    fn sleep(&self) {
        let idle = &self.scheduler.idle;
        if self.spinning.replace(false) {
            idle.stop_spinning();
        }
        // Give finished stacks' memory back before going idle.
        self.scheduler
            .pool
            .release_dirty(&mut self.stacks.borrow_mut());
        idle.prepare_sleep(self.index);
        let woke = if self.work_visible() {
            idle.cancel_sleep(self.index)
        } else {
            self.scheduler.counters.worker(self.index).add_sleep();
            idle.sleep(self.index, self.scheduler.timers.until_next())
        };
        if let Wakeup::Notified = woke {
            self.spinning.set(true);
        }
    }

    /// Is there anything for this worker to do? (The re-check before sleeping.)
    fn work_visible(&self) -> bool {
        self.scheduler.shutdown.load(Ordering::Acquire)
            || !self.scheduler.injector.is_empty()
            || self.scheduler.stealers.iter().any(|s| !s.is_empty())
            || self.scheduler.timers.any_due()
    }

    fn run_task(&self, task: TaskRef) {
        task.task().state.start_running();
        // (The coroutine publishes itself as this thread's running task when
        // it is resumed, and withdraws when it switches out: context.rs.)
        // SAFETY: the task came out of our run queue, so (state.rs, rule 1) no
        // other worker holds it, and it is not parked: only we resume it.
        let result = unsafe { task.resume() };
        self.scheduler.counters.worker(self.index).add_switch();
        match result {
            CoroutineResult::Yield(Suspend::Yield) => self.queue.deque.push(task),
            // Parked, unless a wake overtook it: then requeue it as it is.
            // (Once parked, whoever will wake it holds a reference.)
            CoroutineResult::Yield(Suspend::Park) => match task.commit_park() {
                None => self.scheduler.counters.worker(self.index).add_park(),
                Some(task) => self.push_runnext(task),
            },
            CoroutineResult::Return(()) => self.finish(task),
        }
    }

    fn finish(&self, task: TaskRef) {
        // The reference the task kept for its next wait (task/spare.rs) has
        // no wait left to serve.
        drop(task.take_spare());
        // SAFETY: the coroutine returned while we held it (see run_task).
        let stack = unsafe { task.take_stack() };
        self.scheduler
            .pool
            .put(Some(&mut self.stacks.borrow_mut()), stack);
        task.task().state.finish();
        self.scheduler.counters.worker(self.index).add_finished();
        // Publish completion and wake the joiner, if one waits. (A detached
        // result was already dropped by the coroutine: task/join_state.rs.)
        if task.task().join.complete() {
            // SAFETY: we saw JOIN_WAITER, so the joiner's write is visible
            // and it will not touch the slot again.
            if let Some(raw) = unsafe { task.take_joiner() } {
                // SAFETY: the slot holds a word from `Waiter::into_raw`.
                unsafe { Waiter::from_raw(raw) }.wake();
            }
        }
    }

    fn random(&self) -> u64 {
        // xorshift64*: good enough to pick a victim.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn shutdown(&self) {
        drop(self.queue.runnext.take());
        while self.queue.deque.pop().is_some() {}
        self.scheduler
            .pool
            .drain_local(&mut self.stacks.borrow_mut());
    }
}
