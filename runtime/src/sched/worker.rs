//! Workers: the OS threads that run coroutines (Go's M with its P).
//!
//! A coroutine that has started is *pinned*: it runs only on its home
//! worker, the one that first ran it (the crate docs say why). So a worker
//! keeps two kinds of work apart:
//!
//! * **started** tasks, which only it may run: `runnext` (a task woken by
//!   this worker: it runs next, so a ping-pong pair stays in cache), the
//!   `pinned` queue (tasks that yielded, or that `runnext` displaced), and
//!   its home's inbox (tasks woken from other threads, `home.rs`);
//! * **unstarted** tasks, which any worker may run: its home's spawn slot
//!   (the newest spawn), its work-stealing deque, and the global injector.
//!   A default spawn has no stack yet: the worker that first runs it takes
//!   one from its own cache (`Worker::run_first`, `task/start.rs`).
//!
//! The loop in [`Worker::run`] is Go's `schedule()`:
//!
//! 1. every 61st round, check for shutdown, fire due timers, poll the
//!    network, and look at the inbox, the spawn slot, the deque and the
//!    injector first, so that nothing waits forever behind coroutines that
//!    keep yielding;
//! 2. `runnext`, at most [`RUNNEXT_LIMIT`] times in a row;
//! 3. the spawn slot, the deque, the inbox (a few entries at a time, their
//!    stacks prefetched, the rest waiting at the front of the pinned queue:
//!    `Worker::pop_inbox_entries`), the pinned queue, the injector;
//! 4. leave the loop if the runtime is shutting down; poll the network
//!    without blocking, if a coroutine waits on a socket
//!    (`net/mod.rs`; step 1 does too);
//! 5. spin: steal half of another worker's deque, or its spawn slot after a
//!    grace period (bounded number of spinners);
//! 6. sleep until notified or until the next timer is due: in `epoll_wait`
//!    if a coroutine waits on a socket and no other worker does (`net/`).
//!
//! On its way to sleep, and every 61st round, a worker may also give back
//! the dead stack pages of its long-parked coroutines (`stack/shrink.rs`).
//!
//! Only the owning thread touches `runnext`, the pinned queue, the local end
//! of the deque, and the stack cache; other workers reach a worker only
//! through its `Stealer` and its [`Home`].

use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::CoroutineResult;
use crossbeam_deque::{Steal, Worker as Deque};

use super::compact::{self, Compactor};
use super::context;
use super::home::Home;
use super::idle::Wakeup;
use super::pinned::PinnedQueue;
use super::Scheduler;
use crate::coroutine::Suspend;
use crate::park::Waiter;
use crate::stack::pool::LocalStacks;
use crate::stack::shrink::{self, ShrinkPass};
use crate::stats::WorkerCounters;
use crate::task::state::InboxEntry;
use crate::task::TaskRef;

/// How many times in a row `runnext` may win over the other queues.
const RUNNEXT_LIMIT: u32 = 32;
/// Go checks the global queue every 61 scheduling rounds; so do we.
const GLOBAL_POLL_INTERVAL: u32 = 61;
/// Rounds over all victims before a spinning worker gives up and sleeps.
const STEAL_ROUNDS: usize = 4;
/// How long a thief leaves a busy worker's newest spawn to its owner (Go's
/// `runqgrab` waits 3 µs before it takes a running P's `runnext`).
const SPAWN_GRACE: Duration = Duration::from_micros(3);
/// Inbox entries taken ahead of their turn, their stacks prefetched
/// (`Worker::pop_inbox_entries`): at most this many wait at once ...
const INBOX_AHEAD: usize = 16;
/// ... and more are taken only once fewer than this many wait, so that
/// their prefetches are issued together and their page walks overlap.
const INBOX_REFILL: usize = 6;
/// Cache lines prefetched at and above a woken coroutine's stack pointer.
const STACK_AHEAD_LINES: usize = 32;
/// Task ids are taken from the shared counter in blocks of this many.
const ID_BLOCK: u64 = 1024;
/// The registry of started tasks is swept of finished ones when it has
/// doubled since the last sweep, and not below this size.
const REGISTRY_SWEEP_MIN: usize = 64;

/// A worker's run queues (see the module docs).
pub(crate) struct RunQueue {
    /// Unstarted tasks; other workers steal from the far end.
    deque: Deque<TaskRef>,
    runnext: Cell<Option<TaskRef>>,
    pinned: PinnedQueue<TaskRef>,
    streak: Cell<u32>,
}

impl RunQueue {
    pub fn new() -> RunQueue {
        RunQueue {
            deque: Deque::new_fifo(),
            runnext: Cell::new(None),
            pinned: PinnedQueue::new(),
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
    /// `&scheduler.homes[index]` and `scheduler.counters.worker(index)`,
    /// looked up once: every wake and every resume uses them.
    home: *const Home,
    counters: *const WorkerCounters,
    /// This thread's "current coroutine" slot (`context.rs`), taken when
    /// the loop starts: it names each task we resume.
    current: Cell<context::CurrentSlot>,
    queue: RunQueue,
    pub stacks: RefCell<LocalStacks>,
    /// Every task whose home this is and that has suspended at least once:
    /// one reference each, so that shutdown can find and cancel them
    /// (`shutdown.rs`). A started task gets into a queue or a wait list only
    /// by suspending, so this covers every started task shutdown can meet;
    /// one that finishes in its first run (most short tasks) is never
    /// registered, which saves it a reference-count round trip. Finished
    /// ones are swept out lazily.
    registry: RefCell<Vec<TaskRef>>,
    swept_at: Cell<usize>,
    /// Finished tasks still in the registry (at most), since the last sweep.
    stale: Cell<usize>,
    tick: Cell<u32>,
    shrink: RefCell<ShrinkPass>,
    spinning: Cell<bool>,
    rng: Cell<u64>,
    next_id: Cell<u64>,
    id_end: Cell<u64>,
    /// The compaction pass (`compact.rs`), if `compact_after` is set or
    /// sockets are compacted (`compact_idle_sockets`).
    compactor: Option<Compactor>,
    /// How many tasks at the front of the pinned queue came from the inbox
    /// ahead of their turn ([`pop_inbox_entries`](Self::pop_inbox_entries)).
    inbox_ahead: Cell<usize>,
    /// Where `pop_inbox_entries` takes a batch of inbox entries to; empty
    /// between two calls.
    inbox_batch: Deque<TaskRef>,
    /// Inbox entries still to come for tasks that finished after a remote
    /// wake had queued them (`task/state.rs`): their wakers need the
    /// scheduler until the entry arrives, so shutdown waits for them.
    owed: Cell<usize>,
}

impl Worker {
    pub fn new(index: usize, scheduler: Arc<Scheduler>, queue: RunQueue) -> Worker {
        let stacks = scheduler.pool.new_local();
        let compactor = scheduler.compact.map(Compactor::new);
        let home = ptr::from_ref(&scheduler.homes[index]);
        let counters = ptr::from_ref(scheduler.counters.worker(index));
        Worker {
            index,
            scheduler,
            home,
            counters,
            current: Cell::new(context::CurrentSlot::NONE),
            queue,
            stacks: RefCell::new(stacks),
            registry: RefCell::new(Vec::new()),
            swept_at: Cell::new(0),
            stale: Cell::new(0),
            tick: Cell::new(0),
            shrink: RefCell::new(ShrinkPass::new()),
            spinning: Cell::new(false),
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1)),
            next_id: Cell::new(0),
            id_end: Cell::new(0),
            compactor,
            inbox_ahead: Cell::new(0),
            inbox_batch: Deque::new_fifo(),
            owed: Cell::new(0),
        }
    }

    /// What other threads can reach of this worker.
    #[inline(always)]
    pub fn home(&self) -> &Home {
        // SAFETY: it points into `self.scheduler.homes`, which the
        // Scheduler owns, and we hold the Scheduler.
        unsafe { &*self.home }
    }

    /// This worker's counters (`stats.rs`).
    #[inline(always)]
    fn counters(&self) -> &WorkerCounters {
        // SAFETY: as for `home`: they live in the Scheduler we hold.
        unsafe { &*self.counters }
    }

    /// The worker thread's main loop. Returns after shutdown, when every
    /// task of this home has been cancelled.
    pub fn run(&self) {
        context::set_worker(self);
        self.current.set(context::CurrentSlot::of_this_thread());
        loop {
            if let Some(task) = self.find_task() {
                // A worker woken to look for work is counted as spinning
                // until it finds some, wherever it finds it.
                self.stop_spinning();
                if !self.run_task(task) {
                    break;
                }
                continue;
            }
            // Shutdown is looked at here, with nothing ready; every 61st
            // round (`find_task` then returns `None`); and before a task's
            // first run (`run_first`), which it must not get once shutdown
            // has begun. Not on every switch, which it would cost a load
            // and a branch.
            if self.scheduler.shutdown.load(Ordering::Acquire) {
                break;
            }
            if crate::net::poll_ready(self) {
                continue;
            }
            if let Some(task) = self.spin() {
                if !self.run_task(task) {
                    break;
                }
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

    /// Make `task`, a started task of this home, the next one this worker
    /// runs. The task it displaces goes to the pinned queue.
    #[inline(always)]
    pub fn push_runnext(&self, task: TaskRef) {
        if let Some(old) = self.queue.runnext.replace(Some(task)) {
            self.push_pinned(old);
        }
    }

    /// Queue `task`, a started task of this home that this worker's poll
    /// just woke (`sched::wake_polled`), at the back of the pinned queue.
    /// Its task block is prefetched, as `pop_inbox_entries` does for the
    /// entries it takes: it went cold while the coroutine was parked.
    pub fn push_polled(&self, task: TaskRef) {
        let block = ptr::from_ref(task.task()) as usize;
        prefetch_lines([block, block + 64]);
        self.queue.pinned.push_back(task);
    }

    /// The task `push_runnext` displaced: out of line, so that every wake
    /// inlines only the common case (a ping-pong finds `runnext` empty).
    #[inline(never)]
    fn push_pinned(&self, task: TaskRef) {
        self.queue.pinned.push_back(task);
    }

    /// Queue a new, unstarted task: in the spawn slot, where it runs next
    /// here unless an idle worker takes it first. The caller wakes one.
    pub fn push_spawned(&self, task: TaskRef) {
        if let Some(old) = self.home().put_spawned(task) {
            self.queue.deque.push(old);
        }
    }

    /// Is anything besides the running coroutine ready on this worker?
    pub fn has_local_work(&self) -> bool {
        // `runnext` is a Cell: look by taking it out and putting it back.
        let runnext = self.queue.runnext.take();
        let has = runnext.is_some();
        self.queue.runnext.set(runnext);
        has || !self.queue.pinned.is_empty()
            || self.home().has_spawned()
            || !self.home().inbox_is_empty()
            || !self.queue.deque.is_empty()
    }

    fn find_task(&self) -> Option<TaskRef> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick % GLOBAL_POLL_INTERVAL == 0 {
            if self.scheduler.shutdown.load(Ordering::Acquire) {
                return None;
            }
            self.scheduler.timers.fire_due();
            crate::net::poll_ready(self);
            if self.compactor.is_some() {
                self.compact_pass(compact::BUSY_BATCH);
            }
            self.shrink_parked();
            if let Some(task) = self
                .pop_inbox()
                .or_else(|| self.home().take_spawned())
                .or_else(|| self.queue.deque.pop())
                .or_else(|| self.steal_from_injector())
            {
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
            self.queue.pinned.push_back(task);
        }
        self.queue.streak.set(0);
        // A task that yielded (pinned) goes behind everything else that is
        // ready here, unstarted tasks included, as in one FIFO queue.
        self.home()
            .take_spawned()
            // (`is_empty` first: an inlined look, where `pop` is a call.)
            .or_else(|| {
                (!self.queue.deque.is_empty())
                    .then(|| self.queue.deque.pop())
                    .flatten()
            })
            .or_else(|| self.pop_inbox())
            .or_else(|| self.queue.pinned.pop_front())
            .or_else(|| self.steal_from_injector())
    }

    /// A task woken into our inbox from another thread, that is now ours to
    /// run: each entry is a remote wake, applied here to the task's local
    /// state (`task/state.rs`). Entries for a task already queued here (or
    /// finished) are dropped.
    #[inline(always)]
    fn pop_inbox(&self) -> Option<TaskRef> {
        // (An inlined look first: most looks find it empty, and this is on
        // every yield's way to the pinned queue.)
        if self.home().inbox_is_empty() {
            return None;
        }
        self.pop_inbox_entries()
    }

    /// [`pop_inbox`](Self::pop_inbox) when the inbox has entries.
    ///
    /// A woken coroutine's stack has usually gone cold while it was parked,
    /// and resuming it stalls on a TLB miss and a cache miss (most of a
    /// release-and-join: `docs/notes/cold-paths.md`). So the entries are
    /// taken up to [`INBOX_AHEAD`] at a time, each one's stack prefetched
    /// as it is taken, and wait their turn at the front of the pinned queue
    /// (they are runnable and local now, as a task woken here is); the
    /// next calls hand them out first, so their stacks arrive while the
    /// ones before them run. They are taken in bursts, several stacks'
    /// page walks in flight at once, and the prefetch covers the frames
    /// above the recorded stack pointer too, which the resumed coroutine
    /// returns through (figures: `docs/notes/cold-paths.md`, "Release and
    /// join, second round"). A lone entry (the usual wake from another
    /// thread) is returned at once, as before.
    #[inline(never)]
    fn pop_inbox_entries(&self) -> Option<TaskRef> {
        let mut first = None;
        if self.inbox_ahead.get() == 0 {
            let task = self.home().pop_inbox()?;
            if self.home().inbox_is_empty() {
                // The usual case, one wake from another thread: no queue.
                return self.apply_inbox_entry(&task).then_some(task);
            }
            first = Some(task);
        }
        let pinned = &self.queue.pinned;
        // Taken entries sit at the front; if someone else took some from
        // there (the pinned queue's own turn), the count is too high, and
        // at worst a yielded task runs a little early.
        let mut ahead = self.inbox_ahead.get().min(pinned.len());
        // Refill in bursts (see `INBOX_REFILL`): a prefetch that misses the
        // TLB holds up the instructions after it until its page walk is
        // done, so one per call walked one stack at a time; a burst has
        // several walks in flight at once.
        while ahead < INBOX_REFILL {
            // Take the entries first and prefetch their task blocks (cold
            // too), so that their misses overlap; then apply them (each a
            // locked instruction, which waits for the prefetches before
            // it); then prefetch the stacks of those to run, back to back.
            let mut taken: [Option<TaskRef>; INBOX_AHEAD] = Default::default();
            let mut n = 0;
            let want = INBOX_AHEAD - ahead;
            self.home()
                .pop_inbox_batch(&self.inbox_batch, want - usize::from(first.is_some()));
            while n < want {
                let Some(task) = first.take().or_else(|| self.inbox_batch.pop()) else {
                    break;
                };
                let block = ptr::from_ref(task.task()) as usize;
                prefetch_lines([block, block + 64]);
                taken[n] = Some(task);
                n += 1;
            }
            // Every entry the batch moved was taken: none is left behind
            // where nothing would look for it.
            debug_assert!(self.inbox_batch.is_empty());
            if n == 0 {
                break;
            }
            for slot in &mut taken[..n] {
                if !slot.as_ref().is_some_and(|t| self.apply_inbox_entry(t)) {
                    *slot = None;
                }
            }
            for task in taken[..n].iter().flatten() {
                let sp = shrink::stack_pointer_of(task.task().shrink_word());
                if sp >= 256 {
                    prefetch_lines([sp - 64, sp - 128, sp - 192]);
                    // ... and the frames above it, which the coroutine
                    // returns through once resumed (a parked `recv` and
                    // the frames that called it: 2 KiB covers them).
                    prefetch_lines(std::array::from_fn::<_, STACK_AHEAD_LINES, _>(|k| {
                        sp.wrapping_add(64 * k)
                    }));
                }
            }
            for task in taken.into_iter().flatten() {
                pinned.insert(ahead, task);
                ahead += 1;
            }
        }
        let task = if ahead > 0 {
            ahead -= 1;
            pinned.pop_front()
        } else {
            None
        };
        self.inbox_ahead.set(ahead);
        task
    }

    /// Apply an entry taken from our inbox; `true` if the task must run
    /// (it was parked), `false` if the entry is to be dropped.
    pub(super) fn apply_inbox_entry(&self, task: &TaskRef) -> bool {
        match task.task().state.take_inbox_entry() {
            InboxEntry::Run => true,
            InboxEntry::Queued => false,
            InboxEntry::Finished => {
                self.owed.set(self.owed.get() - 1);
                false
            }
        }
    }

    /// A task of this home finished: count the inbox entry a remote wake
    /// still owes us, if `finish` says there is one.
    pub(super) fn finished(&self, owed: bool) {
        self.owed.set(self.owed.get() + usize::from(owed));
    }

    /// Inbox entries still to come for finished tasks (shutdown waits).
    pub(super) fn owed(&self) -> usize {
        self.owed.get()
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

    /// Look for work elsewhere for a little while (Go's `findrunnable`):
    /// unstarted tasks of other workers, and anything woken into our inbox.
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
            if let Some(task) = self.pop_inbox() {
                return self.found_work(task);
            }
            let start = self.random() as usize % n;
            let mut spawn_slot_victim = None;
            for k in 0..n {
                let victim = (start + k) % n;
                if victim == self.index {
                    continue;
                }
                loop {
                    match self.scheduler.stealers[victim].steal_batch_and_pop(&self.queue.deque) {
                        Steal::Success(task) => {
                            self.counters().add_steal();
                            return self.found_work(task);
                        }
                        Steal::Empty => break,
                        Steal::Retry => continue,
                    }
                }
                if self.scheduler.homes[victim].has_spawned() {
                    spawn_slot_victim = Some(victim);
                }
            }
            if let Some(task) = self.steal_from_injector() {
                return self.found_work(task);
            }
            if let Some(victim) = spawn_slot_victim {
                if let Some(task) = self.steal_spawned(victim) {
                    return self.found_work(task);
                }
            }
            std::hint::spin_loop();
        }
        None
    }

    /// Take `victim`'s newest spawn, after leaving it a grace period to take
    /// it itself (it usually does, when the spawner blocks soon after).
    fn steal_spawned(&self, victim: usize) -> Option<TaskRef> {
        let home = &self.scheduler.homes[victim];
        let t0 = Instant::now();
        while t0.elapsed() < SPAWN_GRACE {
            if !home.has_spawned() {
                return None;
            }
            std::hint::spin_loop();
        }
        let task = home.take_spawned()?;
        self.counters().add_steal();
        Some(task)
    }

    /// Leave the spinning state with work in hand.
    fn found_work(&self, task: TaskRef) -> Option<TaskRef> {
        self.stop_spinning();
        Some(task)
    }

    /// The last spinner to stop wakes another, so fresh work keeps finding a
    /// thief (Go's `resetspinning`).
    #[inline(always)]
    fn stop_spinning(&self) {
        // (A look first: on every switch, and almost never spinning.)
        if self.spinning.get() {
            self.stop_spinning_slow();
        }
    }

    #[inline(never)]
    fn stop_spinning_slow(&self) {
        self.spinning.set(false);
        if self.scheduler.idle.stop_spinning() {
            self.scheduler.idle.notify_one();
        }
    }

    fn sleep(&self) {
        let idle = &self.scheduler.idle;
        if self.spinning.replace(false) {
            idle.stop_spinning();
        }
        self.sweep_if_stale();
        // Give finished stacks' memory back before going idle, and come back
        // to trim the pool if it stays idle (stack/trim.rs).
        let trim_in = self
            .scheduler
            .pool
            .before_sleep(&mut self.stacks.borrow_mut(), || !self.work_visible());
        // The same for the task blocks a burst left in the depot (task/cache.rs).
        let depot_in = crate::task::cache::trim_if_idle();
        // And what a burst left free inside malloc's arenas (stack/trim.rs).
        let heap_in = self.scheduler.pool.return_heap_after_burst(
            &mut self.stacks.borrow_mut(),
            self.scheduler.counters.spawned(),
        );
        let shrink_in = self.shrink_parked();
        let compact_in = self.compactor.as_ref().and_then(|_| {
            while self.compact_pass(compact::IDLE_BATCH) && !self.work_visible() {}
            self.compactor.as_ref()?.due_in()
        });
        idle.prepare_sleep(self.index);
        let woke = if self.work_visible() {
            idle.cancel_sleep(self.index)
        } else {
            self.counters().add_sleep();
            let timeout = [
                self.scheduler.timers.until_next(),
                trim_in,
                depot_in,
                heap_in,
                shrink_in,
                compact_in,
            ];
            crate::net::idle_sleep(self, timeout.into_iter().flatten().min())
        };
        if let Wakeup::Notified = woke {
            self.spinning.set(true);
        }
    }

    /// Give back the dead stack pages of this home's long-parked coroutines,
    /// if a pass is due (`stack/shrink.rs`). Returns how long the worker may
    /// sleep before the next pass has work.
    fn shrink_parked(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut pass = self.shrink.borrow_mut();
        if pass.due(now, self.tick.get()) {
            let registry = self.registry.borrow();
            let word = |t: &TaskRef| {
                let t = t.task();
                (!t.state.is_done()).then(|| t.shrink_word())
            };
            // SAFETY: we are the home of every registered task and, in our
            // own loop, run none of them; a finished one (whose stack went
            // back to the pool) is skipped. So each task the pass writes is
            // switched out, on its home thread.
            unsafe {
                pass.run(
                    now,
                    self.tick.get(),
                    &registry,
                    word,
                    |t, w| t.task().set_shrink_word(w),
                    || !self.has_local_work(),
                )
            };
        }
        pass.sleep_for(now)
    }

    /// Is there anything for this worker to do? (The re-check before
    /// sleeping: its own inbox, and every place unstarted work may be.)
    fn work_visible(&self) -> bool {
        let s = &self.scheduler;
        s.shutdown.load(Ordering::Acquire)
            || !self.home().inbox_is_empty()
            || !s.injector.is_empty()
            || s.stealers.iter().any(|st| !st.is_empty())
            || s.homes.iter().any(|h| h.has_spawned())
            || s.timers.any_due()
    }

    /// Run `task` until it switches out; `false` if it was not run
    /// because shutdown has begun (`run_first`).
    #[inline(always)]
    fn run_task(&self, task: TaskRef) -> bool {
        let t = task.task();
        if t.home().is_null() {
            return self.run_first(task);
        }
        t.state.start_running();
        // (No look at `self.compactor` first: only a compactor sets the
        // word's COMPACTED bit, and the look costs as much as the word's.)
        self.restore_if_compacted(&task);
        // SAFETY: the task came out of our run queues, so (state.rs, rule 1)
        // no other worker holds it, it is not parked, and it is ours (its
        // home, or unstarted): only we resume it.
        let result = unsafe { self.resume(&task) };
        self.switched_out(task, result);
        true
    }

    /// [`run_task`](Self::run_task) for a task that has never run: adopt
    /// it, give it a stack if it has none (`task/start.rs`), and register
    /// it if it suspends. Kept apart so that the switch path of a started
    /// task (every hand-off, every yield) carries none of this.
    ///
    /// Once shutdown has begun, no task starts: it goes back to the deque,
    /// where `shutdown` finds and cancels it, and this returns `false`.
    #[inline(never)]
    fn run_first(&self, task: TaskRef) -> bool {
        if self.scheduler.shutdown.load(Ordering::Acquire) {
            self.queue.deque.push(task);
            return false;
        }
        let t = task.task();
        self.adopt(&task);
        if task.is_deferred() && !self.start(&task) {
            t.state.start_running();
            self.finish(task);
            return true;
        }
        t.state.start_running();
        // SAFETY: as in run_task.
        let result = unsafe { self.resume(&task) };
        if !matches!(result, CoroutineResult::Return(())) {
            // Still ours (not yet requeued or parked): register it now.
            self.register(&task);
        }
        self.switched_out(task, result);
        true
    }

    /// Resume `task`, named as this thread's current coroutine while it runs
    /// (`context.rs`).
    ///
    /// # Safety
    /// As for `TaskRef::resume`: the task came out of our run queues.
    #[inline(always)]
    unsafe fn resume(&self, task: &TaskRef) -> CoroutineResult<Suspend, ()> {
        let current = self.current.get();
        // SAFETY: `current` was taken by `run` on this thread, and only
        // `run`'s loop calls us.
        unsafe { current.set(task.task()) };
        // SAFETY: the caller's promise.
        let result = unsafe { task.resume() };
        // SAFETY: as above.
        unsafe { current.set(ptr::null()) };
        result
    }

    /// What follows a resume: requeue, park or finish the task.
    #[inline(always)]
    fn switched_out(&self, task: TaskRef, result: CoroutineResult<Suspend, ()>) {
        let counters = self.counters();
        counters.add_switch();
        match result {
            CoroutineResult::Yield(Suspend::Yield) => self.queue.pinned.push_back(task),
            // Parked, unless a wake overtook it: then requeue it as it is.
            // (Once parked, whoever will wake it holds a reference.)
            CoroutineResult::Yield(Suspend::Park) => {
                let keep = match &self.compactor {
                    Some(c) if c.every_park() => Some(task.clone()),
                    _ => None,
                };
                self.commit_park(task, keep, counters);
            }
            CoroutineResult::Yield(Suspend::ParkOnSocket) => {
                let keep = self.compactor.as_ref().map(|_| task.clone());
                self.commit_park(task, keep, counters);
            }
            CoroutineResult::Return(()) => self.finish(task),
        }
    }

    /// Park a task that suspended with `Park` or `ParkOnSocket`, unless a
    /// wake overtook it: then requeue it as it is. (Once parked, whoever
    /// will wake it holds a reference.) `keep`, a second reference to the
    /// task, queues it for compaction if it parked.
    #[inline(always)]
    fn commit_park(&self, task: TaskRef, keep: Option<TaskRef>, counters: &WorkerCounters) {
        match task.commit_park() {
            None => {
                counters.add_park();
                if let (Some(c), Some(task)) = (&self.compactor, keep) {
                    c.parked(&task);
                }
            }
            Some(task) => self.push_runnext(task),
        }
    }

    /// Compact up to `budget` due coroutines (`compact.rs`); whether more
    /// are due.
    fn compact_pass(&self, budget: usize) -> bool {
        let Some(c) = &self.compactor else {
            return false;
        };
        let (out, more) = c.pass(budget);
        self.scheduler
            .counters
            .worker(self.index)
            .add_compaction(&out);
        more
    }

    /// Put a compacted coroutine's stack back before it runs.
    #[inline(always)]
    fn restore_if_compacted(&self, task: &TaskRef) {
        if let Some(out) = compact::ensure_resident(task) {
            self.scheduler
                .counters
                .worker(self.index)
                .add_compaction(&out);
        }
    }

    /// A task runs for the first time: this worker becomes its home for
    /// good.
    fn adopt(&self, task: &TaskRef) {
        task.task().set_home(ptr::from_ref(self.home()).cast());
    }

    /// A task of this home suspended for the first time: record it for
    /// shutdown (see the `registry` field).
    fn register(&self, task: &TaskRef) {
        let mut registry = self.registry.borrow_mut();
        registry.push(task.clone());
        if registry.len() >= REGISTRY_SWEEP_MIN.max(2 * self.swept_at.get()) {
            registry.retain(|t| !t.task().state.is_done());
            self.swept_at.set(registry.len());
            self.stale.set(0);
        }
    }

    /// First run of a deferred task (`task/start.rs`): take a stack from
    /// this worker's cache (the most recently finished one, LIFO) and build
    /// the coroutine on it. False if no stack could be had: the task has
    /// finished with that error.
    fn start(&self, task: &TaskRef) -> bool {
        // SAFETY: the task came out of our run queues (see run_task) and is
        // deferred. A `Builder` task brought the stack it took at spawn.
        if unsafe { task.start_own() } {
            return true;
        }
        let pool = &self.scheduler.pool;
        let got = pool.get(Some(&mut self.stacks.borrow_mut()), pool.default_size());
        match got {
            Ok(mut stack) => {
                crate::stack::asan::forget_stale_poison(&stack);
                stack.set_label(self.next_id(), None);
                // SAFETY: the task came out of our run queues (see
                // run_task) and is deferred.
                unsafe { task.start(stack) };
                true
            }
            Err(e) => {
                // SAFETY: as above.
                unsafe { task.fail_start(e) };
                false
            }
        }
    }

    fn finish(&self, task: TaskRef) {
        // The reference the task kept for its next wait (task/spare.rs) has
        // no wait left to serve.
        drop(task.take_spare());
        // SAFETY: the coroutine returned while we held it (see run_task).
        if let Some(stack) = unsafe { task.take_stack() } {
            self.scheduler
                .pool
                .put(Some(&mut self.stacks.borrow_mut()), stack);
        }
        self.finished(task.task().state.finish());
        self.unregister_if_last(&task);
        self.counters().add_finished();
        complete(&task, false);
    }

    /// The common case of a short-lived task: it is the newest registered,
    /// so its registration goes now rather than at the next sweep.
    fn unregister_if_last(&self, task: &TaskRef) {
        let mut registry = self.registry.borrow_mut();
        if registry
            .last()
            .is_some_and(|t| ptr::eq(t.task(), task.task()))
        {
            registry.pop();
        } else {
            self.stale.set(self.stale.get() + 1);
        }
    }

    /// On the way to sleep: if most of the registry is finished tasks (a
    /// burst that ended), sweep it now, so that their task blocks go back
    /// to the allocator while the runtime idles (stack/trim.rs returns the
    /// memory). Amortised: a sweep costs at most twice the finishes since
    /// the last one.
    fn sweep_if_stale(&self) {
        let mut registry = self.registry.borrow_mut();
        if self.stale.get() >= REGISTRY_SWEEP_MIN && 2 * self.stale.get() >= registry.len() {
            registry.retain(|t| !t.task().state.is_done());
            let live = registry.len();
            registry.shrink_to(2 * live);
            self.swept_at.set(registry.len());
            self.stale.set(0);
        }
    }

    /// The registry, for shutdown.
    pub(super) fn registry(&self) -> &RefCell<Vec<TaskRef>> {
        &self.registry
    }

    pub(super) fn queue(&self) -> &RunQueue {
        &self.queue
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
}

impl RunQueue {
    /// Everything queued here, unstarted and started, for shutdown.
    pub(super) fn drain(&self) -> Vec<TaskRef> {
        let mut all: Vec<TaskRef> = self.runnext.take().into_iter().collect();
        all.extend(self.pinned.take_all());
        all.extend(std::iter::from_fn(|| self.deque.pop()));
        all
    }
}

/// Publish that `task` is complete (`cancelled`: it has no result) and wake
/// the joiner, if one waits. A detached result was already dropped by the
/// coroutine itself (task/join_state.rs); the worker never runs it.
pub(super) fn complete(task: &TaskRef, cancelled: bool) {
    if task.task().join.complete(cancelled) {
        // SAFETY: we saw JOIN_WAITER, so the joiner's write is visible and it
        // will not touch the slot again.
        if let Some(raw) = unsafe { task.take_joiner() } {
            // SAFETY: the slot holds a word from `Waiter::into_raw`.
            unsafe { Waiter::from_raw(raw) }.wake();
        }
    }
}

/// Ask the CPU to bring these cache lines in: a parked coroutine's task
/// block, or the top of its frames, where its resume reads first (the
/// stack pointer it recorded when it last switched out, `stack/shrink.rs`,
/// and the lines just below it, where the switch saved its registers).
/// Only a hint: a prefetch never faults and reads nothing the program can
/// see, so a stale address (a compacted stack with nothing there) costs
/// nothing, and no pointer into a parked stack is ever dereferenced.
#[inline(always)]
fn prefetch_lines<const N: usize>(lines: [usize; N]) {
    for line in lines {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: PREFETCHT0 is a hint in SSE (baseline on x86_64): it
        // never faults and changes no architectural state.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line as *const i8,
            );
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: PRFM is a hint: it never faults and changes no
        // architectural state.
        unsafe {
            std::arch::asm!("prfm pldl1keep, [{}]", in(reg) line, options(nostack, readonly, preserves_flags));
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let _ = line;
    }
}
