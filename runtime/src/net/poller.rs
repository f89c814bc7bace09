//! The poller: one epoll instance per runtime, and the eventfd that wakes a
//! worker blocked in it (Go's runtime/netpoll_epoll.go).
//!
//! * [`register`](Poller::register) adds a socket once, edge-triggered, for
//!   read and write together (`EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLPRI|EPOLLET`;
//!   `EPOLLPRI`, urgent data, only so that `readiness.rs` learns of it), with
//!   its table index and sequence number as the event's data (`table.rs`).
//! * [`poll`](Poller::poll) collects events, without blocking or until a
//!   timeout, and [`dispatch`](Poller::dispatch) hands each to its socket's
//!   [`Readiness`](super::readiness::Readiness), which wakes the waiters
//!   at the back of their home's line (`wake_polled`, see `mod.rs`).
//! * The **kick**: an eventfd registered level-triggered under the data word
//!   [`KICK`]. `Idle::ring` writes it only when the worker it rings is
//!   blocked in `epoll_wait` (Go's `netpollBreak`); only that worker, the
//!   blocker, drains it. At most one worker blocks in `epoll_wait` at a time
//!   ([`try_block`](Poller::try_block)), so a kick always reaches the worker
//!   it was meant for.
//!
//! The epoll fd and the eventfd close when the poller drops: when the
//! runtime is dropped and no socket registered with it is left (a socket
//! keeps the poller alive so that it can deregister, see `socket.rs`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::table::Table;

/// The event data word of the kick eventfd (no socket has it: indices and
/// sequence numbers would both have to be `u32::MAX`).
const KICK: u64 = u64::MAX;
/// Events taken per `epoll_wait` (Go takes 128 too).
pub(crate) const BATCH: usize = 128;

pub(crate) struct Poller {
    epoll: OwnedFd,
    kick: OwnedFd,
    pub table: Table,
    /// Sockets registered now: a worker blocks in epoll only if some are.
    registered: AtomicUsize,
    /// Coroutines parked on a socket now: busy workers poll only if some are.
    waiting: AtomicUsize,
    /// A worker owns the blocking `epoll_wait`.
    blocker: AtomicBool,
    /// Blocking waits begun so far (for tests: proof that the path is taken).
    blocking_waits: AtomicUsize,
}

/// What `Idle` keeps to kick a worker out of `epoll_wait`: the eventfd's
/// number. The runtime's `Scheduler` owns both the `Idle` and (through an
/// `Arc`) the poller, so the fd outlives every use.
#[cfg(not(loom))]
pub(crate) struct Kick(RawFd);

/// Under loom, a flag that the model's "epoll_wait" watches.
#[cfg(loom)]
pub(crate) struct Kick(Option<crate::loom_shim::Arc<crate::loom_shim::AtomicBool>>);

impl Kick {
    /// Make the blocker's `epoll_wait` return.
    #[cfg(not(loom))]
    pub fn kick(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to an eventfd we own; a
        // full counter (EAGAIN) already means "kicked".
        unsafe { libc::write(self.0, (&one as *const u64).cast(), 8) };
    }

    #[cfg(loom)]
    pub fn kick(&self) {
        if let Some(flag) = &self.0 {
            flag.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// A kick that does nothing, or sets `flag` (models of `Idle`).
    #[cfg(loom)]
    pub fn model(flag: Option<crate::loom_shim::Arc<crate::loom_shim::AtomicBool>>) -> Kick {
        Kick(flag)
    }
}

/// The event data word of registration `seq` of table entry `index`.
pub(crate) fn token(index: u32, seq: u32) -> u64 {
    (u64::from(seq) << 32) | u64::from(index)
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An empty event buffer for [`Poller::poll`].
pub(crate) fn events() -> [libc::epoll_event; BATCH] {
    [libc::epoll_event { events: 0, u64: 0 }; BATCH]
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        // SAFETY: plain system calls; each fd is owned at once.
        let epoll = unsafe { OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        // SAFETY: as above.
        let kick = unsafe {
            OwnedFd::from_raw_fd(cvt(libc::eventfd(
                0,
                libc::EFD_NONBLOCK | libc::EFD_CLOEXEC,
            ))?)
        };
        let p = Poller {
            epoll,
            kick,
            table: Table::new(),
            registered: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            blocker: AtomicBool::new(false),
            blocking_waits: AtomicUsize::new(0),
        };
        // Level-triggered: it stays readable until the blocker drains it, so
        // a non-blocking poll that sees it first cannot swallow it.
        p.ctl(
            libc::EPOLL_CTL_ADD,
            p.kick.as_raw_fd(),
            libc::EPOLLIN as u32,
            KICK,
        )?;
        Ok(p)
    }

    pub fn kick_handle(&self) -> Kick {
        #[cfg(not(loom))]
        return Kick(self.kick.as_raw_fd());
        #[cfg(loom)]
        return Kick(None);
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: `ev` is a valid epoll_event for the call's duration.
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    /// Register `fd` (edge-triggered, both directions). Returns its table
    /// index and sequence number. Epoll reports the current readiness at
    /// once, so no edge before this call is lost.
    pub fn register(&self, fd: RawFd) -> io::Result<(u32, u32)> {
        let index = self.table.alloc();
        let seq = self.table.get(index).seq();
        let events =
            (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLPRI | libc::EPOLLET)
                as u32;
        if let Err(e) = self.ctl(libc::EPOLL_CTL_ADD, fd, events, token(index, seq)) {
            self.table.free(index);
            return Err(e);
        }
        self.registered.fetch_add(1, Ordering::Relaxed);
        Ok((index, seq))
    }

    /// Undo [`register`](Self::register), before `fd` is closed (fd numbers
    /// are reused). Waiters still queued are woken and find their
    /// registration closed; events in flight find another `seq`.
    pub fn deregister(&self, fd: RawFd, index: u32, seq: u32) {
        // Fails only if the fd was closed behind our back; nothing to undo then.
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
        self.table.get(index).retire(seq).wake();
        self.table.free(index);
        self.registered.fetch_sub(1, Ordering::Relaxed);
    }

    /// Is any socket registered? (For tests.)
    #[cfg_attr(any(not(test), loom), allow(dead_code))]
    pub fn has_registered(&self) -> bool {
        self.registered.load(Ordering::Relaxed) != 0
    }

    /// Is any coroutine parked on a socket?
    pub fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) != 0
    }

    pub fn add_waiter(&self) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
    }

    pub fn remove_waiter(&self) {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// Become the one worker that may block in `epoll_wait`.
    pub fn try_block(&self) -> bool {
        !self.blocker.load(Ordering::Relaxed)
            && self
                .blocker
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// How many times a worker slept in `epoll_wait`.
    #[cfg_attr(any(not(test), loom), allow(dead_code))]
    pub fn blocking_waits(&self) -> usize {
        self.blocking_waits.load(Ordering::Relaxed)
    }

    pub fn unblock(&self) {
        self.blocker.store(false, Ordering::Release);
    }

    /// Wait for events: `Some(ZERO)` does not block, `None` waits until an
    /// event or a kick. Returns how many of `events` were filled; the
    /// blocker (`drain_kick`) also empties the eventfd if it was kicked.
    pub fn poll(
        &self,
        events: &mut [libc::epoll_event; BATCH],
        timeout: Option<Duration>,
        drain_kick: bool,
    ) -> usize {
        let ms = match timeout {
            None => -1,
            // Round up, so that a worker never wakes before a timer is due
            // and spins until it is.
            Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
        };
        if drain_kick {
            self.blocking_waits.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `events` is a valid buffer of BATCH entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                BATCH as libc::c_int,
                ms,
            )
        };
        // EINTR (a signal) is an early return like any other.
        let n = n.max(0) as usize;
        if drain_kick && events[..n].iter().any(|e| e.u64 == KICK) {
            let mut buf: u64 = 0;
            // SAFETY: reads 8 bytes into a valid u64; EAGAIN (drained) is fine.
            unsafe { libc::read(self.kick.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
        }
        n
    }

    /// Wake the waiters of every socket in `events`. Returns how many
    /// coroutines were woken. `polled_by`: the worker whose loop polled
    /// them; its own home's coroutines are queued locally
    /// (`sched::wake_polled`), the others through their homes' inboxes.
    pub fn dispatch(
        &self,
        events: &[libc::epoll_event],
        polled_by: Option<&crate::sched::worker::Worker>,
    ) -> usize {
        const READ: u32 =
            (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR)
                as u32;
        const WRITE: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;
        // After these a short read may leave data or an end behind with no
        // edge to come (`readiness.rs`, "Skipping a read").
        const FINAL: u32 =
            (libc::EPOLLPRI | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
        let mut woken = 0;
        for e in events {
            // Copies: on x86-64 the struct is packed, so no references.
            let (bits, data) = (e.events, e.u64);
            if data == KICK {
                continue;
            }
            let (index, seq) = (data as u32, (data >> 32) as u32);
            let wakes = self.table.get(index).notify(
                seq,
                bits & READ != 0,
                bits & WRITE != 0,
                bits & FINAL != 0,
            );
            woken += match polled_by {
                Some(worker) => wakes.wake_polled(worker),
                None => wakes.wake(),
            };
        }
        woken
    }
}
