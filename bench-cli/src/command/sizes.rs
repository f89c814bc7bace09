//! The sizes a run picks when none are given, and their `--quick` forms.
//!
//! The default suite, `compare` and `report` measure the same workloads at
//! the same sizes, chosen so that the default suite takes about a minute on
//! a 2-core machine; `--quick` shrinks everything for smoke tests (CI runs
//! it under qemu-user, where every instruction is emulated). Subcommands
//! given explicit sizes (`mem --count`, `switch --n`) use those instead.

/// Every size of one run.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// `mem` in fresh slots, one row per N.
    pub mem_counts: Vec<u64>,
    /// `mem --reused`: N parked in slots reused after a warm-up round.
    pub reused_count: u64,
    /// One-way hand-offs per `switch` sample, coroutine rows.
    pub switch_n: u64,
    /// One-way hand-offs per `switch` sample, OS-thread rows.
    pub thread_n: u64,
    /// Coroutines per `spawn` sample.
    pub spawn_count: u64,
    /// Coroutines per `fanout` round.
    pub fanout_count: u64,
    /// OS threads parked by `report`'s baseline, one row per N.
    pub thread_counts: Vec<u64>,
    /// Samples per timed row (`--repeat`).
    pub repeat: usize,
    /// Samples per timed row for `compare` (`--repeat`).
    pub compare_repeat: usize,
}

impl Sizes {
    pub fn new(quick: bool, repeat: Option<usize>) -> Sizes {
        if quick {
            Sizes {
                mem_counts: vec![1_000, 10_000],
                reused_count: 1_000,
                switch_n: 100_000,
                thread_n: 5_000,
                spawn_count: 10_000,
                fanout_count: 10_000,
                thread_counts: vec![100, 1000],
                repeat: repeat.unwrap_or(3),
                compare_repeat: repeat.unwrap_or(3),
            }
        } else {
            Sizes {
                mem_counts: vec![10_000, 100_000, 1_000_000],
                reused_count: 100_000,
                switch_n: 1_000_000,
                thread_n: 20_000,
                spawn_count: 100_000,
                fanout_count: 1_000_000,
                thread_counts: vec![1000, 10_000],
                repeat: repeat.unwrap_or(3),
                compare_repeat: repeat.unwrap_or(5),
            }
        }
    }

    /// The largest fresh-slot `mem` N (what `compare` measures).
    pub fn mem_count(&self) -> u64 {
        self.mem_counts.last().copied().unwrap_or(1)
    }
}
