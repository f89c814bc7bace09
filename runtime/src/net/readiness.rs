//! The readiness of one registered socket: who waits for it, and the edges
//! that arrived while nobody waited (Go's `pollDesc` with `rg`/`wg` and
//! `pdReady`, runtime/netpoll.go).
//!
//! A socket is registered *edge-triggered*: epoll reports "readable" once,
//! when data arrives, not again while it stays unread. So an edge must not
//! be lost between a coroutine's failed `read` (`EAGAIN`) and its park. For
//! each direction (read, write) the state holds:
//!
//! * `ready`: an edge arrived while nobody waited. The next waiter consumes
//!   it and retries its operation instead of parking;
//! * the waiters parked for that direction (usually one; more when several
//!   coroutines share a `&TcpStream`). An edge takes them all: each retries,
//!   and whoever gets `EAGAIN` again parks again.
//!
//! Go keeps each direction in one atomic word and needs a CAS protocol; here
//! a small mutex per socket makes the rule plain: *check `ready` and enqueue
//! under the lock, and an edge sets `ready` or takes the waiters under the
//! same lock*. An edge is then either before the check (the waiter sees
//! `ready`) or after the enqueue (the edge takes the waiter). The one race
//! left, an edge that wakes the waiter after it enqueued but before its
//! coroutine has switched out, is the scheduler's, and only another
//! thread can be in it (on the home thread the coroutine is not running
//! while anything else is): that wake (`sched::wake_polled` for another
//! home, `sched::wake_queued`) goes through the task's home inbox, which the
//! home worker takes only after the park is committed, and the entry
//! queues the task again (`task/state.rs`). The loom model below checks
//! this file's half, with threads standing in for coroutines; the models
//! in `task/state.rs` check the inbox's.
//!
//! **Skipping a read that would fail.** A stream read that returned fewer
//! bytes than it asked for emptied the socket's receive queue (TCP copies
//! until the queue is empty or the buffer full), and every byte that
//! arrives after it brings an edge. So the next read may skip its first
//! try, which would only give `EAGAIN`, and go straight to
//! [`enqueue`](Readiness::enqueue) (`Socket::read_stream`): the edges of
//! any data that came meanwhile are in `ready`, or will wake the waiter.
//! That holds only if no one else used such an edge up: a `peek` that
//! parked, or another coroutine reading the same stream, takes the edge
//! and leaves data behind. So every read edge is counted
//! (`Readiness::read_edges`), the read notes the count before its `recv`, and
//! the next read skips only if the count has not moved since: then no
//! edge of data that came after that `recv` has been handed out yet.
//! Two exceptions, when a short read leaves data (or an end) behind with
//! no new edge to come: TCP stops at an urgent mark (`EPOLLPRI`), and at a
//! FIN, a reset or an error (`EPOLLRDHUP`, `EPOLLHUP`, `EPOLLERR`). The
//! poller reports those as `final_event`: `notify` remembers it for good
//! (`State::final_event`), and a skipping waiter that finds it retries at once.
//! Go tries every read; tokio's `PollEvented` clears readiness after a
//! short read the same way and keeps its closed bits for the same reason.
//!
//! `seq` names the registration: the entry is reused for another socket
//! once this one is deregistered (`table.rs`), and deregistration bumps
//! `seq`. An epoll event carries the `seq` it was registered with, so an
//! event still in flight for a closed socket finds a different `seq` and
//! touches nothing: it can never wake the next socket's waiters.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::loom_shim::{lock, AtomicU32, Mutex};
use crate::park::Waiter;

/// The per-socket state; lives in the poller's table, never freed while the
/// poller lives (so an event in flight never reads freed memory).
pub(crate) struct Readiness {
    state: Mutex<State>,
    /// Read edges notified so far (wrapping): a read that skips its try
    /// checks that none came since the short read it follows (see the
    /// module docs). Changed only under the lock, but read without it
    /// ([`read_edges`](Self::read_edges): every stream read notes it, and
    /// the lock cost two atomic read-modify-writes there).
    read_edges: AtomicU32,
}

struct State {
    seq: u32,
    /// An event of this registration reported urgent data, a peer's
    /// shutdown, a hang-up or an error: a short read no longer proves the
    /// receive queue empty (see the module docs). Never cleared.
    final_event: bool,
    /// Per direction (indexed by `Direction as usize`: read, write), an
    /// edge that came while nobody waited. Kept here, beside `seq`, and
    /// not in `Dir`: in `Dir` each flag would cost a padded word, and the
    /// entry has to stay small (`per_socket_state_stays_small`).
    ready: [bool; 2],
    /// Indexed by `Direction as usize`: read, write.
    dirs: [Dir; 2],
}

/// The waiters of one direction.
#[derive(Default)]
struct Dir {
    first: Option<Waiter>,
    more: Vec<Waiter>,
}

/// What [`Readiness::enqueue`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// An edge arrived since the last try (now consumed): retry at once.
    Ready,
    /// The waiter is queued: park, then retry.
    Queued,
    /// This registration is gone (the socket was deregistered).
    Closed,
}

/// Waiters taken out under the lock, woken after it is released.
#[derive(Default)]
pub(crate) struct Wakes {
    first: [Option<Waiter>; 2],
    more: [Vec<Waiter>; 2],
}

impl Wakes {
    /// Wake them all at the back of their homes' lines
    /// (`Waiter::wake_queued`). Returns how many.
    pub fn wake(self) -> usize {
        self.wake_with(Waiter::wake_queued)
    }

    /// [`wake`](Self::wake) from the loop of `worker`, which polled the
    /// event: its own home's coroutines are queued locally
    /// (`Waiter::wake_polled`).
    pub fn wake_polled(self, worker: &crate::sched::worker::Worker) -> usize {
        self.wake_with(|w| w.wake_polled(worker))
    }

    fn wake_with(self, mut wake: impl FnMut(Waiter)) -> usize {
        let mut n = 0;
        for w in self.first.into_iter().flatten() {
            wake(w);
            n += 1;
        }
        for list in self.more {
            for w in list {
                wake(w);
                n += 1;
            }
        }
        n
    }
}

impl Readiness {
    pub fn new() -> Readiness {
        Readiness {
            state: Mutex::new(State {
                seq: 0,
                final_event: false,
                ready: [false; 2],
                dirs: Default::default(),
            }),
            read_edges: AtomicU32::new(0),
        }
    }

    /// The sequence number a new registration of this entry uses.
    pub fn seq(&self) -> u32 {
        lock(&self.state).seq
    }

    /// Read edges notified so far (see the field), without the lock.
    /// Acquire: the caller's `recv` comes after this load, as it came
    /// after the lock's acquire before; so the count cannot include the
    /// edge of data that arrived after that `recv` (that edge is counted
    /// by a `notify` that follows the arrival, which follows the `recv`),
    /// and a later [`enqueue`](Self::enqueue) sees that edge as a change.
    /// A stale count only costs a needless try.
    pub fn read_edges(&self) -> u32 {
        self.read_edges.load(Acquire)
    }

    /// Waiter side, after an operation in direction `dir` failed with
    /// `EAGAIN`, or in place of a read that a short read showed would
    /// (`skipped`: the [`read_edges`](Self::read_edges) count noted before
    /// that short read): consume a pending edge, or queue `waiter()`. A
    /// skipping waiter retries at once if a read edge came since its count
    /// (someone else may have used it up) or the socket ever reported a
    /// final event.
    pub fn enqueue(
        &self,
        seq: u32,
        dir: usize,
        skipped: Option<u32>,
        waiter: impl FnOnce() -> Waiter,
    ) -> Check {
        let mut s = lock(&self.state);
        if s.seq != seq {
            return Check::Closed;
        }
        // (Relaxed: the count changes only under the lock we hold.)
        if skipped.is_some_and(|mark| s.final_event || self.read_edges.load(Relaxed) != mark) {
            return Check::Ready;
        }
        if s.ready[dir] {
            s.ready[dir] = false;
            return Check::Ready;
        }
        let d = &mut s.dirs[dir];
        let w = waiter();
        match d.first {
            None => d.first = Some(w),
            Some(_) => d.more.push(w),
        }
        Check::Queued
    }

    /// Waiter side, after the park: take our entry back if no edge took it
    /// (a deadline, a spurious wake-up, or a cancellation). Returns it, to
    /// be dropped after the lock is released.
    pub fn withdraw(&self, dir: usize, me: *const ()) -> Option<Waiter> {
        let mut s = lock(&self.state);
        let d = &mut s.dirs[dir];
        if d.first.as_ref().is_some_and(|w| w.addr() == me) {
            let w = d.first.take();
            if !d.more.is_empty() {
                d.first = Some(d.more.swap_remove(0));
            }
            return w;
        }
        let pos = d.more.iter().position(|w| w.addr() == me)?;
        Some(d.more.swap_remove(pos))
    }

    /// Event side: an edge for registration `seq` in the given directions.
    /// Takes the waiters of each, or remembers the edge if there are none.
    /// `final_event`: the event reported urgent data, a shutdown, a hang-up or
    /// an error (remembered for good). A stale `seq` (the socket was
    /// deregistered) is ignored.
    pub fn notify(&self, seq: u32, read: bool, write: bool, final_event: bool) -> Wakes {
        let mut wakes = Wakes::default();
        let mut s = lock(&self.state);
        if s.seq != seq {
            return wakes;
        }
        s.final_event |= final_event;
        for (i, hit) in [read, write].into_iter().enumerate() {
            if !hit {
                continue;
            }
            if i == 0 {
                // Written only here, under the lock (so a plain load and
                // store make the increment); Release for `read_edges`.
                let edges = self.read_edges.load(Relaxed).wrapping_add(1);
                self.read_edges.store(edges, Release);
            }
            let d = &mut s.dirs[i];
            match d.first.take() {
                None => s.ready[i] = true,
                Some(w) => {
                    wakes.first[i] = Some(w);
                    wakes.more[i] = std::mem::take(&mut d.more);
                }
            }
        }
        wakes
    }

    /// Deregistration: end registration `seq`. Its waiters are returned, to
    /// be woken (they find [`Check::Closed`]); the next registration of this
    /// entry starts clean.
    pub fn retire(&self, seq: u32) -> Wakes {
        let mut wakes = Wakes::default();
        let mut s = lock(&self.state);
        if s.seq != seq {
            return wakes;
        }
        s.seq = seq.wrapping_add(1);
        s.final_event = false;
        s.ready = [false; 2];
        for (i, d) in s.dirs.iter_mut().enumerate() {
            wakes.first[i] = d.first.take();
            wakes.more[i] = std::mem::take(&mut d.more);
        }
        wakes
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::park::Caller;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use std::sync::atomic::Ordering::{Acquire, Release};

    /// A socket entry, its "data available" flag, and a "kernel" thread
    /// that makes data available and then delivers the read edge.
    fn socket_with_kernel() -> (
        Arc<Readiness>,
        Arc<AtomicBool>,
        loom::thread::JoinHandle<()>,
    ) {
        let r = Arc::new(Readiness::new());
        let data = Arc::new(AtomicBool::new(false));
        let (r2, data2) = (r.clone(), data.clone());
        let kernel = loom::thread::spawn(move || {
            data2.store(true, Release);
            r2.notify(0, true, false, false).wake();
        });
        (r, data, kernel)
    }

    /// A reader that finds no data waits as `Socket::io` does (check under
    /// the lock, park, withdraw, retry) while a "kernel" thread makes data
    /// available and delivers the edge. The reader must never sleep through
    /// the edge (loom reports the deadlock) and must see the data.
    #[test]
    fn loom_edge_is_not_lost_between_eagain_and_park() {
        loom::model(|| {
            let (r, data, kernel) = socket_with_kernel();
            loop {
                if data.load(Acquire) {
                    break; // the "read" succeeded
                }
                let me = Caller::get();
                match r.enqueue(0, 0, None, || me.to_waiter()) {
                    Check::Ready => continue,
                    Check::Closed => unreachable!(),
                    Check::Queued => {}
                }
                me.park();
                drop(r.withdraw(0, me.addr()));
            }
            kernel.join().unwrap();
        });
    }

    /// The lock-free read-edge count (`read_edges`) of a read that skips
    /// its first try. A reader notes the count, then "reads" (looks for
    /// the data) and finds nothing, so it waits as a skipping
    /// read does (`enqueue` with the noted count, no try first). Meanwhile
    /// a "kernel" thread makes data available and delivers its edge, and a
    /// peeking thread consumes a pending edge without reading the data (a
    /// `peek` that parks, or another reader). The reader must never sleep
    /// through the data: if its count already includes the edge, its read
    /// must have seen the data. Noting the count after the read instead
    /// makes loom report the deadlock.
    #[test]
    fn loom_skipping_read_does_not_miss_data_behind_a_used_edge() {
        loom::model(|| {
            let (r, data, kernel) = socket_with_kernel();
            let r3 = r.clone();
            let peeker = loom::thread::spawn(move || {
                let me = Caller::get();
                if r3.enqueue(0, 0, None, || me.to_waiter()) == Check::Queued {
                    drop(r3.withdraw(0, me.addr()));
                }
            });
            let mark = r.read_edges();
            if !data.load(Acquire) {
                // The short read found nothing: wait without trying first.
                let mut skipped = Some(mark);
                loop {
                    let me = Caller::get();
                    match r.enqueue(0, 0, skipped.take(), || me.to_waiter()) {
                        Check::Ready => {}
                        Check::Closed => unreachable!(),
                        Check::Queued => {
                            me.park();
                            drop(r.withdraw(0, me.addr()));
                        }
                    }
                    if data.load(Acquire) {
                        break;
                    }
                }
            }
            kernel.join().unwrap();
            peeker.join().unwrap();
        });
    }

    /// Deregistration while a reader waits: the reader is woken and finds
    /// its registration closed; an event for the old registration, arriving
    /// after the entry was reused, wakes nobody and leaves no edge behind.
    #[test]
    fn loom_retire_wakes_and_stale_events_are_ignored() {
        loom::model(|| {
            let r = Arc::new(Readiness::new());
            let r2 = r.clone();
            let closer = loom::thread::spawn(move || {
                r2.retire(0).wake();
            });
            let closed = loop {
                let me = Caller::get();
                match r.enqueue(0, 0, None, || me.to_waiter()) {
                    Check::Closed => break true,
                    Check::Ready => unreachable!("no edge was delivered"),
                    Check::Queued => {}
                }
                me.park();
                drop(r.withdraw(0, me.addr()));
            };
            assert!(closed);
            closer.join().unwrap();
            assert_eq!(r.seq(), 1);
            assert_eq!(r.notify(0, true, true, false).wake(), 0);
            let me = Caller::get();
            assert_eq!(r.enqueue(1, 0, None, || me.to_waiter()), Check::Queued);
            assert!(r.withdraw(0, me.addr()).is_some());
        });
    }
}
