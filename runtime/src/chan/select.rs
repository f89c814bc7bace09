//! `Select`: wait on several channel operations, complete exactly one.
//!
//! The API is crossbeam-channel's: add operations with [`Select::recv`] and
//! [`Select::send`], pick one with [`Select::select`] (or `try_select`,
//! `select_timeout`, `select_deadline`), then complete it with
//! [`SelectedOperation::recv`] or [`SelectedOperation::send`]. A send's value
//! is given only at completion, so choosing a send *secures* it first: a
//! waiting receiver taken out of its queue, or a reserved buffer slot.
//!
//! One round of the loop in [`Select::run`], as Go's `selectgo`:
//!
//! 1. **poll**: try every operation without blocking, in a fresh random
//!    order (that is the fairness: among ready operations each is equally
//!    likely to be first);
//! 2. **register**: put one shared [`Selection`] in the wait queue of every
//!    operation (`queue.rs`); if an operation turns out ready meanwhile,
//!    claim the selection ourselves (`give_up`) and start over;
//! 3. **wait** until a channel claims the selection and finishes our cell, or
//!    the deadline passes and our own `give_up` wins;
//! 4. **unregister** from every queue, then turn the outcome into the chosen
//!    operation (or start over if a partner gave up: `RETRY`).
//!
//! `docs/notes/select.md` draws the race and explains why one
//! compare-and-swap decides it.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::channel::{deliver, until_finished, SendToken};
use super::error::{
    ReadyTimeoutError, RecvError, SelectTimeoutError, SendError, TryReadyError, TrySelectError,
};
use super::queue::{Party, Selection};
use super::stash::Stash;
use super::{Receiver, Sender};
use crate::loom_shim::Arc;
use crate::park::Caller;
use crate::wait_cell::Outcome;

/// What a chosen operation secured, until it is completed.
pub(crate) enum Token {
    /// A receive: the value (type-erased), or `None`: closed.
    Recv(Option<Stash>),
    Send(SendToken),
}

/// One end of a channel as a select sees it (implemented by `Receiver` for
/// receives and `Sender` for sends).
pub(crate) trait Operation {
    /// Identity of the channel, and whether this is its sending end.
    fn id(&self) -> (usize, bool);
    /// Complete (or secure) the operation if it can go without blocking.
    fn start(&self) -> Option<Token>;
    /// Would it go without blocking? Entries of `me` do not count.
    fn ready(&self, me: Option<&Selection>) -> bool;
    /// Queue `me` as `case`, unless the operation looks ready: then `true`.
    fn register(&self, me: &Arc<Selection>, case: usize) -> bool;
    fn unregister(&self, me: &Selection);
    /// A channel chose `me` for this operation and finished our cell with
    /// `outcome`: what it secured, or `None` if the partner gave up.
    fn accept(&self, me: &Caller, outcome: Outcome) -> Option<Token>;
    /// When a time-driven operation (`after`, `tick`) becomes ready.
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// Give back a slot that a chosen send reserved and never used.
    fn release_slot(&self) {}
}

/// A set of channel operations to wait on (crossbeam's `Select`).
#[derive(Clone, Default)]
pub struct Select<'a> {
    /// (index given to the caller, operation); shuffled before every poll.
    ops: Vec<(usize, &'a dyn Operation)>,
    next_index: usize,
}

/// The operation a select chose. Complete it with [`recv`](Self::recv) or
/// [`send`](Self::send); dropping it instead panics (and gives back what the
/// choice secured, so no partner is left waiting).
#[must_use = "a selected operation must be completed with `recv` or `send`"]
pub struct SelectedOperation<'a> {
    index: usize,
    op: &'a dyn Operation,
    token: Option<Token>,
    /// Not `Send`: it may hold a value whose type it forgot.
    _marker: PhantomData<*const ()>,
}

/// How long a round may wait.
#[derive(Clone, Copy)]
enum Wait {
    Never,
    Until(Instant),
    Forever,
}

impl Wait {
    fn timeout(t: Duration) -> Wait {
        Instant::now()
            .checked_add(t)
            .map_or(Wait::Forever, Wait::Until)
    }
}

impl<'a> Select<'a> {
    pub fn new() -> Select<'a> {
        Select::default()
    }

    /// Add a send on `s`; returns its index.
    pub fn send<T>(&mut self, s: &'a Sender<T>) -> usize {
        self.add(s)
    }

    /// Add a receive on `r`; returns its index.
    pub fn recv<T>(&mut self, r: &'a Receiver<T>) -> usize {
        self.add(r)
    }

    fn add(&mut self, op: &'a dyn Operation) -> usize {
        let index = self.next_index;
        self.next_index += 1;
        self.ops.push((index, op));
        index
    }

    /// Remove the operation with this index.
    ///
    /// # Panics
    /// If there is none (never added, or already removed).
    pub fn remove(&mut self, index: usize) {
        let pos = self
            .ops
            .iter()
            .position(|&(i, _)| i == index)
            .expect("no operation with this index");
        self.ops.swap_remove(pos);
    }

    /// Choose an operation that is ready now, if any.
    pub fn try_select(&mut self) -> Result<SelectedOperation<'a>, TrySelectError> {
        self.choose(Wait::Never).ok_or(TrySelectError)
    }

    /// Wait until an operation is ready, and choose it.
    pub fn select(&mut self) -> SelectedOperation<'a> {
        self.choose(Wait::Forever).expect("waits forever")
    }

    pub fn select_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        self.choose(Wait::timeout(timeout))
            .ok_or(SelectTimeoutError)
    }

    pub fn select_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        self.choose(Wait::Until(deadline)).ok_or(SelectTimeoutError)
    }

    /// The index of an operation that is ready now, without doing it. (It
    /// may no longer be ready when the caller gets to it.)
    pub fn try_ready(&mut self) -> Result<usize, TryReadyError> {
        self.watch(Wait::Never).ok_or(TryReadyError)
    }

    /// Wait until an operation is ready; return its index without doing it.
    pub fn ready(&mut self) -> usize {
        self.watch(Wait::Forever).expect("waits forever")
    }

    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize, ReadyTimeoutError> {
        self.watch(Wait::timeout(timeout)).ok_or(ReadyTimeoutError)
    }

    pub fn ready_deadline(&mut self, deadline: Instant) -> Result<usize, ReadyTimeoutError> {
        self.watch(Wait::Until(deadline)).ok_or(ReadyTimeoutError)
    }

    fn choose(&mut self, wait: Wait) -> Option<SelectedOperation<'a>> {
        let (pos, token) = self.run(wait, false)?;
        let (index, op) = self.ops[pos];
        Some(SelectedOperation {
            index,
            op,
            token,
            _marker: PhantomData,
        })
    }

    fn watch(&mut self, wait: Wait) -> Option<usize> {
        self.run(wait, true).map(|(pos, _)| self.ops[pos].0)
    }

    /// The select loop (module docs). Returns the position in `ops` of the
    /// chosen operation and, unless `watch`ing, what it secured.
    fn run(&mut self, wait: Wait, watch: bool) -> Option<(usize, Option<Token>)> {
        loop {
            shuffle(&mut self.ops);
            // 1. Poll.
            for (pos, &(_, op)) in self.ops.iter().enumerate() {
                if watch {
                    if op.ready(None) {
                        return Some((pos, None));
                    }
                } else if let Some(token) = op.start() {
                    return Some((pos, Some(token)));
                }
            }
            let deadline = match wait {
                Wait::Never => return None,
                Wait::Until(t) if Instant::now() >= t => return None,
                Wait::Until(t) => Some(t),
                Wait::Forever => None,
            };
            let wake_at = self
                .ops
                .iter()
                .filter_map(|(_, op)| op.deadline())
                .chain(deadline)
                .min();
            // 2. Register.
            let me = Caller::get();
            me.cell().prepare();
            let sel = Selection::new(me.to_waiter(), watch);
            let mut registered = 0;
            let mut looks_ready = false;
            for (pos, &(_, op)) in self.ops.iter().enumerate() {
                if op.register(&sel, pos) {
                    looks_ready = true;
                    break;
                }
                registered += 1;
            }
            // 3. Wait.
            let chosen = if looks_ready && sel.give_up() {
                None
            } else {
                let waiting = Waiting {
                    ops: &self.ops[..registered],
                    me: &me,
                    sel: &sel,
                };
                let chosen = wait_chosen(&me, &sel, wake_at);
                std::mem::forget(waiting);
                chosen
            };
            // 4. Unregister, and take what the chosen operation secured.
            for &(_, op) in &self.ops[..registered] {
                op.unregister(&sel);
            }
            if let Some(pos) = chosen {
                if watch {
                    continue; // told that something changed: poll again
                }
                if let Some(token) = self.ops[pos].1.accept(&me, me.cell().outcome()) {
                    return Some((pos, Some(token)));
                }
            }
        }
    }
}

/// A select parked in its queues. Forgotten when the wait returns; dropped
/// only if it unwinds (the runtime cancels the coroutine at shutdown,
/// `sched/shutdown.rs`): then it withdraws like a timed-out select, so no
/// channel, still open through other handles, serves a dead party; if a
/// channel chose us first, what that secured is given back (as by a
/// dropped [`SelectedOperation`]).
struct Waiting<'s, 'a> {
    ops: &'s [(usize, &'a dyn Operation)],
    me: &'s Caller,
    sel: &'s Selection,
}

impl Drop for Waiting<'_, '_> {
    #[cold]
    fn drop(&mut self) {
        let chosen = if self.sel.give_up() {
            None
        } else {
            // A channel chose us; it finishes our cell right after its lock.
            until_finished(self.me);
            self.sel.chosen()
        };
        for &(_, op) in self.ops {
            op.unregister(self.sel);
        }
        let Some(pos) = chosen else {
            return;
        };
        let op = self.ops[pos].1;
        if let Some(token) = op.accept(self.me, self.me.cell().outcome()) {
            give_back(op, token);
        }
    }
}

/// Park until a channel chose `sel` and finished our cell (`Some(case)`), or
/// until `deadline`, when our own claim wins (`None`).
pub(crate) fn wait_chosen(
    me: &Caller,
    sel: &Selection,
    deadline: Option<Instant>,
) -> Option<usize> {
    loop {
        if me.cell().outcome() != Outcome::Waiting {
            return sel.chosen();
        }
        match deadline {
            Some(t) if Instant::now() >= t => {
                if sel.give_up() {
                    return None;
                }
                // A channel chose us just now; it finishes our cell soon.
                me.wait();
                return sel.chosen();
            }
            Some(t) => me.park_until(t),
            None => me.park(),
        }
    }
}

/// Shuffle `ops` uniformly (Fisher-Yates). Not under loom: a model must
/// make the same choices in every run it replays.
#[cfg_attr(loom, allow(unused_variables))]
fn shuffle<T>(ops: &mut [T]) {
    #[cfg(not(loom))]
    for i in (1..ops.len()).rev() {
        ops.swap(i, random_below(i + 1));
    }
}

/// A random number below `n`, from a per-thread xorshift generator. Out of
/// line, like every thread-local access (see `sched/context.rs`).
#[cfg(not(loom))]
#[inline(never)]
fn random_below(n: usize) -> usize {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            // Seed from the address of a fresh allocation and the clock.
            let b = Box::new(0u8);
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            ((&*b as *const u8 as u64) ^ t) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        // Multiply-shift: unbiased enough for n far below 2^32.
        (((x >> 32) * n as u64) >> 32) as usize
    })
}

impl SelectedOperation<'_> {
    /// The index [`Select::send`] or [`Select::recv`] returned for it.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Complete the chosen send with `msg`.
    ///
    /// # Panics
    /// If `s` is not the sender of the chosen operation.
    pub fn send<T>(mut self, s: &Sender<T>, msg: T) -> Result<(), SendError<T>> {
        assert!(
            self.op.id() == (s.addr(), true),
            "passed a sender that wasn't selected"
        );
        let Some(Token::Send(token)) = self.token.take() else {
            unreachable!("a send operation secures a send token")
        };
        match token {
            SendToken::Partner(receiver) => {
                deliver(receiver, msg);
                Ok(())
            }
            SendToken::Slot => s.chan.send_reserved(msg).map_err(SendError),
            SendToken::Closed => Err(SendError(msg)),
        }
    }

    /// Complete the chosen receive.
    ///
    /// # Panics
    /// If `r` is not the receiver of the chosen operation.
    pub fn recv<T>(mut self, r: &Receiver<T>) -> Result<T, RecvError> {
        assert!(
            self.op.id() == (r.addr(), false),
            "passed a receiver that wasn't selected"
        );
        let Some(Token::Recv(value)) = self.token.take() else {
            unreachable!("a receive operation secures a receive token")
        };
        match value {
            // SAFETY: `r` is the selected receiver (same channel, checked
            // above), and it made this stash from a message of its own type.
            Some(stash) => Ok(unsafe { r.unstash(stash) }),
            None => Err(RecvError),
        }
    }
}

impl Drop for SelectedOperation<'_> {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        give_back(self.op, token);
        if !std::thread::panicking() {
            panic!("dropped `SelectedOperation` without completing the operation");
        }
    }
}

/// Give back what a choice of `op` secured and nobody will use: a partner
/// waiting for our value starts over, a reserved slot is freed. A received
/// value is dropped.
fn give_back(op: &dyn Operation, token: Token) {
    match token {
        Token::Send(SendToken::Partner(receiver)) => receiver.finish(Outcome::Retry),
        Token::Send(SendToken::Slot) => op.release_slot(),
        Token::Send(SendToken::Closed) | Token::Recv(_) => {}
    }
}

impl std::fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("Select { .. }")
    }
}

impl std::fmt::Debug for SelectedOperation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("SelectedOperation { .. }")
    }
}

/// Turn what a chosen *send* found in our cell into its token.
pub(crate) fn accept_send(me: &Caller, outcome: Outcome) -> Option<Token> {
    let token = match outcome {
        // SAFETY: PAIRED means the receiver that chose us put its waiter in
        // our cell.
        Outcome::Paired => SendToken::Partner(Party::Plain(unsafe { me.cell().take() })),
        Outcome::Reserved => SendToken::Slot,
        Outcome::Closed => SendToken::Closed,
        _ => return None, // RETRY
    };
    Some(Token::Send(token))
}
