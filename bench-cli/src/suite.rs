//! The default suite: what `spindle-bench` runs with no subcommand.
//!
//! Header, then `mem` at N = 10^4, 10^5 and 10^6 (each N in a fresh child
//! process, so one run's freed heap cannot flatter the next), then `switch`
//! and `spawn`. Sizes are chosen so the whole suite takes well under a
//! minute on a 2-core machine; `--quick` shrinks them for smoke tests.
//!
//! A row that cannot run here (preflight says the memory or the map budget
//! is not there) becomes a "skipped: <reason>" row; the suite goes on.

use serde::{Deserialize, Serialize};

use crate::header::Header;
use crate::mem::{self, MemConfig, MemRow};
use crate::rows::RowSet;
use crate::spawn::{self, SpawnConfig};
use crate::switch::{self, SwitchConfig};
use crate::{mem_table, preflight, progress, units};

/// The sizes of one suite run.
#[derive(Clone, Debug)]
pub struct Sizes {
    pub mem_counts: Vec<u64>,
    pub switch_n: u64,
    pub thread_n: u64,
    pub spawn_count: u64,
    pub repeat: usize,
}

impl Sizes {
    pub fn new(quick: bool, repeat: Option<usize>) -> Sizes {
        if quick {
            Sizes {
                mem_counts: vec![1_000, 10_000],
                switch_n: 100_000,
                thread_n: 5_000,
                spawn_count: 10_000,
                repeat: repeat.unwrap_or(3),
            }
        } else {
            Sizes {
                mem_counts: vec![10_000, 100_000, 1_000_000],
                switch_n: 1_000_000,
                thread_n: 20_000,
                spawn_count: 100_000,
                repeat: repeat.unwrap_or(3),
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct SuiteConfig {
    pub sizes: Sizes,
    pub workers: usize,
    pub stack_max: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SuiteResult {
    pub header: Header,
    pub mem: Vec<MemRow>,
    pub switch: RowSet,
    pub spawn: RowSet,
}

/// `mem` at each N, each in a fresh process; failures become skipped rows.
pub fn mem_series(counts: &[u64], workers: usize, stack_max: usize) -> Vec<MemRow> {
    counts
        .iter()
        .map(|&count| {
            progress::phase(&format!("mem: parking {} coroutines", units::count(count)));
            let what = format!("mem at N = {}", units::count(count));
            let measured = preflight::coroutines(&what, count, stack_max, workers).and_then(|()| {
                mem::measure_isolated(&MemConfig {
                    count,
                    workers,
                    stack_max,
                    per_coroutine_channel: false,
                })
            });
            progress::clear();
            match measured {
                Ok(r) => MemRow::Measured(r),
                Err(skipped) => MemRow::Skipped { count, skipped },
            }
        })
        .collect()
}

pub fn switch_config(s: &Sizes) -> SwitchConfig {
    SwitchConfig {
        n: s.switch_n,
        thread_n: s.thread_n,
        repeat: s.repeat,
    }
}

pub fn spawn_config(s: &Sizes, stack_max: usize) -> SpawnConfig {
    SpawnConfig {
        count: s.spawn_count,
        workers: 2,
        stack_max,
        repeat: s.repeat,
    }
}

pub fn run(cfg: &SuiteConfig, header: Header) -> Result<SuiteResult, String> {
    let s = &cfg.sizes;
    let mem = mem_series(&s.mem_counts, cfg.workers, cfg.stack_max);
    let switch = switch::run(&switch_config(s))?;
    let spawn = spawn::run(&spawn_config(s, cfg.stack_max))?;
    Ok(SuiteResult {
        header,
        mem,
        switch,
        spawn,
    })
}

pub fn render(r: &SuiteResult) -> String {
    format!(
        "{}\n{}\n{}\n{}",
        r.header.render(),
        mem_table::series(&r.mem),
        r.switch.render(),
        r.spawn.render()
    )
}
