//! A channel's wait queue, and the claim that lets one select wait on many.
//!
//! A party blocked in a plain `send`/`recv` sits in one queue, as a plain
//! [`Waiter`]: whoever dequeues it owns its cell (see `park/`). A party
//! blocked in a *select* sits in the queue of every channel it selects on at
//! once, so dequeuing is not enough: two channels may fire at the same time.
//! All its entries share one [`Selection`], and the channel that dequeues an
//! entry must first *claim* the selection with one compare-and-swap of
//! `chosen` from `UNDECIDED` to its case. Exactly one claim succeeds (Go's
//! `selectDone`); the winner owns the selector's cell for that wait, as if it
//! had dequeued a plain waiter, and every other entry of the selection is now
//! stale: a channel that meets one drops it, and the selector unlinks the rest
//! when it wakes. The selector itself claims `GAVE_UP` when its deadline
//! passes or when it finds an operation ready while registering, and then
//! nobody else can.
//!
//! A *watch* selection (`Select::ready`) wants to hear that an operation may
//! have become ready, not to take part in it: a channel that meets one claims
//! it, wakes it, and goes on looking for a real partner.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::{AcqRel, Acquire};

use crate::loom_shim::{Arc, AtomicUsize};
use crate::park::Waiter;
use crate::wait_cell::{Outcome, WaitCell};

const UNDECIDED: usize = 0;
const GAVE_UP: usize = usize::MAX;

/// One blocked select (or timed wait), shared by its entries in every queue.
pub(crate) struct Selection {
    /// `UNDECIDED`, `case + 1` once a channel claimed it, or `GAVE_UP`.
    chosen: AtomicUsize,
    /// Only wants to be told when an operation may be ready.
    watch: bool,
    waiter: Waiter,
}

impl Selection {
    pub fn new(waiter: Waiter, watch: bool) -> Arc<Selection> {
        Arc::new(Selection {
            chosen: AtomicUsize::new(UNDECIDED),
            watch,
            waiter,
        })
    }

    /// Claim the selection for `case`. `true` for exactly one claimant.
    fn claim(&self, case: usize) -> bool {
        self.chosen
            .compare_exchange(UNDECIDED, case + 1, AcqRel, Acquire)
            .is_ok()
    }

    /// The selector's own claim: nobody may choose it any more. `false` if a
    /// channel got there first (then it owns the cell and will finish it).
    pub fn give_up(&self) -> bool {
        self.chosen
            .compare_exchange(UNDECIDED, GAVE_UP, AcqRel, Acquire)
            .is_ok()
    }

    /// The case a channel chose, if one did.
    pub fn chosen(&self) -> Option<usize> {
        match self.chosen.load(Acquire) {
            UNDECIDED | GAVE_UP => None,
            c => Some(c - 1),
        }
    }

    /// The selection's identity in a queue (for [`WaitQueue::remove`]).
    pub fn addr(&self) -> *const () {
        (self as *const Selection).cast()
    }

    fn undecided(&self) -> bool {
        self.chosen.load(Acquire) == UNDECIDED
    }
}

/// An entry in a wait queue.
pub(crate) enum Entry {
    Plain(Waiter),
    /// The selection and the case it is queued for. A `u32`, so that an
    /// `Option<Entry>` (the queue's head) packs into two words.
    Select(Arc<Selection>, u32),
}

impl Entry {
    /// Who queued this entry: the plain waiter's task or parker, or the
    /// selection (shared by all entries of one select).
    #[inline]
    fn owner(&self) -> *const () {
        match self {
            Entry::Plain(w) => w.addr(),
            Entry::Select(s, _) => Selection::addr(s),
        }
    }
}

/// A waiter taken from a queue; the taker owns its cell for this wait.
pub(crate) enum Party {
    Plain(Waiter),
    Select(Arc<Selection>),
}

impl Party {
    #[inline]
    pub fn cell(&self) -> WaitCell<'_> {
        match self {
            Party::Plain(w) => w.cell(),
            Party::Select(s) => s.waiter.cell(),
        }
    }

    /// Publish `outcome` in the party's cell and wake it. Always inlined: it
    /// is on every hand-off (the select case stays out of line).
    #[inline(always)]
    pub fn finish(self, outcome: Outcome) {
        match self {
            Party::Plain(w) => {
                w.cell().finish(outcome);
                w.wake();
            }
            Party::Select(s) => finish_selection(s, outcome),
        }
    }
}

impl Party {
    /// [`finish`](Self::finish), but a coroutine goes to the back of its
    /// home's line (`Waiter::wake_queued`), even on its home worker: for a
    /// close, which wakes every party at once. Each then waits its turn in
    /// its home's inbox, where the worker prefetches its stack before it
    /// runs (`Worker::pop_inbox_entries`), instead of displacing the one
    /// before it from `runnext`. (A select's party is finished as by
    /// `finish`: its wake goes through `runnext`.)
    pub fn finish_queued(self, outcome: Outcome) {
        match self {
            Party::Plain(w) => {
                w.cell().finish(outcome);
                w.wake_queued();
            }
            Party::Select(s) => finish_selection(s, outcome),
        }
    }
}

/// [`Party::finish`] for a select.
#[inline(never)]
fn finish_selection(s: Arc<Selection>, outcome: Outcome) {
    s.waiter.cell().finish(outcome);
    s.waiter.clone().wake();
}

/// A FIFO of parked parties: a channel's `recvq` or `sendq`.
///
/// The oldest entry sits inline in `head`, the others in `rest`. Most queues
/// hold at most one party (a rendezvous partner), and then a push or a claim
/// is a few instructions instead of the ring buffer's index arithmetic.
/// Invariant: `head` is `None` only if the queue is empty.
#[derive(Default)]
pub(crate) struct WaitQueue {
    head: Option<Entry>,
    rest: VecDeque<Entry>,
}

impl WaitQueue {
    #[inline]
    pub fn push(&mut self, e: Entry) {
        if self.head.is_none() {
            self.head = Some(e);
        } else {
            self.rest.push_back(e);
        }
    }

    #[inline(always)]
    fn pop_front(&mut self) -> Option<Entry> {
        let first = self.head.take()?;
        if !self.rest.is_empty() {
            self.move_up();
        }
        Some(first)
    }

    /// The head was taken: the next entry moves up.
    #[cold]
    fn move_up(&mut self) {
        self.head = self.rest.pop_front();
    }

    /// Take the first party that can be had: a plain waiter, or a selection
    /// this call claims. Watchers met on the way are told and dropped; stale
    /// entries are dropped.
    ///
    /// The head is matched as it comes out: an empty queue (a party that
    /// will park) and a plain head (a rendezvous partner) never reach
    /// `pop_front`'s moves or the slow path. A selecting head goes back
    /// where it was, for the slow path.
    #[inline(always)]
    pub fn claim(&mut self) -> Option<Party> {
        match self.head.take() {
            None => None,
            Some(Entry::Plain(w)) => {
                if !self.rest.is_empty() {
                    self.move_up();
                }
                Some(Party::Plain(w))
            }
            Some(selecting) => {
                self.head = Some(selecting);
                self.claim_slow()
            }
        }
    }

    #[cold]
    fn claim_slow(&mut self) -> Option<Party> {
        while let Some(e) = self.pop_front() {
            match e {
                Entry::Plain(w) => return Some(Party::Plain(w)),
                Entry::Select(s, case) => {
                    if !s.claim(case as usize) {
                        continue; // stale: another channel or the selector won
                    }
                    if !s.watch {
                        return Some(Party::Select(s));
                    }
                    // Woken under the channel lock: rare (only `ready`
                    // waits), and it keeps this loop simple.
                    Party::Select(s).finish(Outcome::Done);
                }
            }
        }
        None
    }

    fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.head.iter().chain(self.rest.iter())
    }

    /// Is a party waiting that [`claim`](Self::claim) might take, other than
    /// `except`'s own entries? A hint (a selecting party may be claimed by
    /// another channel at any time), used while registering a select: its
    /// entries on this queue may already sit here, if it selects on both
    /// ends of the channel.
    pub fn has_party(&self, except: Option<&Selection>) -> bool {
        self.iter().any(|e| match e {
            Entry::Plain(_) => true,
            Entry::Select(s, _) => {
                !except.is_some_and(|me| std::ptr::eq(me, &**s)) && !s.watch && s.undecided()
            }
        })
    }

    /// Unlink every entry of `me` (its wait ended, timed out, or was
    /// cancelled); `true` if there was one. `me` is the waiter's identity:
    /// see [`Entry::owner`].
    ///
    /// A plain waiter is queued once, so the scan stops at its entry, and
    /// `VecDeque::remove` shifts the shorter side. Waits mostly end in the
    /// order they began (a shutdown cancels a home's coroutines in the
    /// order they first parked), so that entry is near the front: 10^5
    /// coroutines parked on one channel are cancelled in linear time, where
    /// a scan of the whole queue per withdrawal made it quadratic (26 s
    /// for 10^5: `docs/notes/runtime-figures.md`). Only a selection, which
    /// may sit here once per case, needs the whole queue looked at.
    pub fn remove(&mut self, me: *const ()) -> bool {
        let Some((at, plain)) = self
            .iter()
            .enumerate()
            .find(|(_, e)| e.owner() == me)
            .map(|(at, e)| (at, matches!(e, Entry::Plain(_))))
        else {
            return false;
        };
        if plain {
            if at == 0 {
                self.head = self.rest.pop_front();
            } else {
                self.rest.remove(at - 1);
            }
            return true;
        }
        self.rest.retain(|e| e.owner() != me);
        if self.head.as_ref().is_some_and(|e| e.owner() == me) {
            // `rest` holds no entry of `me` any more: its front can move up.
            self.head = self.rest.pop_front();
        }
        true
    }

    /// Take every party out (the channel closed), for the caller to finish
    /// once it released the lock; watchers are woken at once.
    pub fn drain(&mut self) -> Vec<Party> {
        // Sized up front: a close may wake a million parties, and growing
        // by doubling copied them several times.
        let mut parties = Vec::with_capacity(usize::from(self.head.is_some()) + self.rest.len());
        parties.extend(std::iter::from_fn(|| self.claim_slow()));
        parties
    }

    #[cfg(all(test, not(loom)))]
    pub fn len(&self) -> usize {
        self.iter().count()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A queue of plain waiters, and their identities in queue order.
    fn plain_queue(n: usize) -> (WaitQueue, Vec<*const ()>) {
        let mut q = WaitQueue::default();
        let mut ids = Vec::new();
        for _ in 0..n {
            let w = Waiter::for_test();
            ids.push(w.addr());
            q.push(Entry::Plain(w));
        }
        (q, ids)
    }

    fn owners(q: &WaitQueue) -> Vec<*const ()> {
        q.iter().map(Entry::owner).collect()
    }

    #[test]
    fn removing_a_plain_waiter_keeps_the_others_in_order() {
        let (mut q, ids) = plain_queue(6);
        assert!(q.remove(ids[3]), "from the middle");
        assert!(q.remove(ids[0]), "the head");
        assert!(q.remove(ids[5]), "the tail");
        assert!(!q.remove(ids[3]), "already gone");
        assert_eq!(owners(&q), [ids[1], ids[2], ids[4]]);
        for id in [ids[1], ids[2], ids[4]] {
            assert!(q.remove(id));
        }
        assert!(q.head.is_none() && q.rest.is_empty());
        assert!(!q.remove(ids[1]));
    }

    #[test]
    fn removing_a_selection_takes_all_its_entries() {
        let (mut q, ids) = plain_queue(2);
        let sel = Selection::new(Waiter::for_test(), false);
        let other = Selection::new(Waiter::for_test(), false);
        q.push(Entry::Select(sel.clone(), 0));
        q.push(Entry::Select(other.clone(), 0));
        q.push(Entry::Select(sel.clone(), 1));
        // The selection at the head, and again behind another entry.
        let (mut front, _) = plain_queue(0);
        front.push(Entry::Select(sel.clone(), 2));
        front.push(Entry::Select(sel.clone(), 3));
        front.push(Entry::Plain(Waiter::for_test()));
        assert!(q.remove(sel.addr()));
        assert_eq!(owners(&q), [ids[0], ids[1], other.addr()]);
        assert!(front.remove(sel.addr()));
        assert_eq!(front.iter().count(), 1);
        assert!(matches!(front.head, Some(Entry::Plain(_))));
        assert!(!q.remove(sel.addr()));
    }
}
