//! Network I/O: the netpoller, and the sockets built on it.
//!
//! **What a netpoller is.** A coroutine that calls `read` on a socket with
//! no data must not block its worker thread: the other coroutines of that
//! worker would stop too. So every socket is non-blocking; a `read` that
//! would block fails with `EAGAIN`, and the coroutine *parks*, as on an
//! empty channel. Something must then notice when the socket becomes
//! readable and wake it: the netpoller, one `epoll` instance per runtime
//! that watches every socket a coroutine waits on. The workers ask it
//! "which sockets are ready?" when they look for work, and a worker with
//! nothing to do sleeps *in* `epoll_wait`, so that socket readiness,
//! timers and new work all end the same sleep.
//!
//! **How it maps to Go** (runtime/netpoll.go, netpoll_epoll.go, proc.go):
//!
//! | Go | spindle |
//! |----|---------|
//! | `pollDesc` with `rg`/`wg`, `pdReady`, `fdseq` | [`readiness::Readiness`], its `seq` |
//! | `pollcache` (never freed) | [`table::Table`] |
//! | `netpollinit`, `netpollopen` (`EPOLLET`), `netpollclose` | `Poller::new`, `register`, `deregister` |
//! | `netpoll(delay)` and `netpollready` | `Poller::poll` and `Poller::dispatch` |
//! | `netpollBreak` (an eventfd) | `poller::Kick`, written by `Idle::ring` |
//! | `poll_runtime_pollWait` / `netpollblock` | `Socket::io` / `socket.rs::park` |
//! | `findrunnable`: `netpoll(0)` before stealing | [`poll_ready`], called from `Worker::run` |
//! | `findrunnable`: one M blocks in `netpoll(delay)` | [`idle_sleep`], from `Worker::sleep` |
//! | `sysmon` polls if nobody did for 10 ms | every 61st scheduling round (`find_task`) |
//! | `pollDesc` deadlines (`rd`, `wd`) | the runtime's timers (`Waiter::park_until`) |
//!
//! **Waking.** An event is dispatched on whichever worker polled it, in
//! that worker's own loop, and wakes its waiters at the *back* of their
//! home's line (`sched::wake_polled`): a coroutine of this worker's home
//! goes to the back of its pinned queue through the local word (no
//! coroutine of this home is half-way into a park while its worker is in
//! its loop), one of another home to that worker's inbox, which is rung
//! (started coroutines never move). If that worker is the one blocked in
//! `epoll_wait`, the ring writes the eventfd. Wakes from inside a
//! coroutine (a shutdown, a deregistration) take the inbox either way
//! (`wake_queued`). Not the ordinary
//! `wake`, whose `runnext` slot is for one coroutine handing off to
//! another: through it, each wake of a batch (up to 128) pushed the one
//! before it to the pinned queue, which a worker serves after its inbox, so
//! the sockets a worker polled itself waited behind those the other worker
//! polled for it. Go's `injectglist` queues a batch FIFO too. Figures (the
//! p99 of an echo server with 1000 busy connections fell to Go's; its p50
//! rose) in `docs/notes/netpoll.md`.
//!
//! **The API** mirrors `std::net`: [`TcpListener`], [`TcpStream`] and
//! [`UdpSocket`] (`tcp.rs`, `udp.rs`; what the three share, from
//! `try_clone` to the `std::net` conversions, is written once in
//! `endpoint.rs`), on the thin `libc` wrappers of `sys.rs` and `addr.rs`,
//! with per-handle timeouts in `blocking.rs`. Inside
//! a coroutine their blocking calls park it; on a plain thread they block
//! like `std::net`'s.
//!
//! Files: `readiness.rs` (the waiter/edge protocol of one socket, with its
//! loom model), `table.rs` (where those live, and why events carry an index
//! and a sequence number), `poller.rs` (epoll and the kick), `socket.rs`
//! (the `Socket` the API builds on). The tests are in `tests.rs`. Why one
//! blocker, why a mutex per socket, stale events, and the hot-path figures:
//! `docs/notes/netpoll.md`.

mod addr;
mod blocking;
mod endpoint;
pub(crate) mod poller;
pub(crate) mod readiness;
pub(crate) mod socket;
mod sys;
pub(crate) mod table;
mod tcp;
#[cfg(all(test, not(loom)))]
mod tests;
mod udp;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;

use std::sync::Arc;
use std::time::Duration;

use crate::sched::idle::Wakeup;
use crate::sched::worker::Worker;
use poller::{events, Poller};

/// `f` applied to the poller of the running coroutine's runtime, or `None`
/// outside a coroutine (a plain thread, or a coroutine being cancelled).
/// Lent, not cloned: a park is not worth two atomic read-modify-writes on
/// a count that every worker shares.
fn with_current_poller<R>(f: impl FnOnce(&Arc<Poller>) -> R) -> Option<R> {
    let task = crate::sched::context::current()?;
    // SAFETY: the running task is alive while it runs and has started, so
    // it has a home, and its worker keeps the Scheduler alive meanwhile;
    // `f` runs within that time (it does not park).
    let scheduler = unsafe { &*(*crate::sched::home_of(task.as_ref())).scheduler };
    Some(f(&scheduler.poller))
}

/// A worker out of coroutines polls without blocking (Go's `netpoll(0)` in
/// `findrunnable`), if any coroutine waits on a socket. Returns `true` if
/// that woke someone (this worker should look at its queues again).
pub(crate) fn poll_ready(worker: &Worker) -> bool {
    let poller = &worker.scheduler.poller;
    if !poller.has_waiters() {
        return false;
    }
    let mut buf = events();
    let n = poller.poll(&mut buf, Some(Duration::ZERO), false);
    poller.dispatch(&buf[..n], Some(worker)) > 0
}

/// An idle worker's sleep, registered with `Idle` (`Worker::sleep`): if a
/// coroutine waits on a socket and no other worker blocks in `epoll_wait`,
/// block there until an event, a ring (the kick), or `timeout`; otherwise
/// sleep on the worker's condition variable as before.
pub(crate) fn idle_sleep(worker: &Worker, timeout: Option<Duration>) -> Wakeup {
    let s = &worker.scheduler;
    if !s.poller.has_waiters() || !s.poller.try_block() {
        return s.idle.sleep(worker.index, timeout);
    }
    let mut buf = events();
    let mut n = 0;
    let woke = s.idle.sleep_polling(worker.index, || {
        n = s.poller.poll(&mut buf, timeout, true);
    });
    s.poller.unblock();
    s.poller.dispatch(&buf[..n], Some(worker));
    woke
}
