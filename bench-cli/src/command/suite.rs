//! The default suite: what `spindle-bench` runs with no subcommand.
//!
//! Header, then `mem` at N = 10^4, 10^5 and 10^6 (each N in a fresh child
//! process, so one run's freed heap cannot flatter the next) and once more
//! in reused slots, then `switch`, `spawn` and `fanout`. Sizes (see
//! [`sizes`](super::sizes)) are chosen so the whole suite takes about a
//! minute on a 2-core machine; `--quick` shrinks them for smoke tests.
//!
//! A row that cannot run here (preflight says the memory or the map budget
//! is not there) becomes a `skipped: <reason>` row; the suite goes on.

use serde::{Deserialize, Serialize};

use super::fanout::FanoutConfig;
use super::mem::{self, MemConfig, MemRow};
use super::sizes::Sizes;
use super::spawn::{self, SpawnConfig};
use super::switch::{self, SwitchConfig};
use super::{header, to_json, Global, Measurement, Outcome};
use crate::measure::header::Header;
use crate::measure::row::RowSet;
use crate::present::Render;

#[derive(Clone, Debug)]
pub struct SuiteConfig {
    pub sizes: Sizes,
    pub workers: usize,
    pub stack_max: usize,
}

impl SuiteConfig {
    pub fn new(g: &Global) -> SuiteConfig {
        SuiteConfig {
            sizes: g.sizes(),
            workers: g.workers,
            stack_max: g.stack_max,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SuiteResult {
    pub header: Header,
    pub mem: Vec<MemRow>,
    /// `mem --reused` at [`Sizes::reused_count`].
    pub mem_reused: MemRow,
    pub switch: RowSet,
    pub spawn: RowSet,
    pub fanout: RowSet,
}

pub fn run(cfg: &SuiteConfig, header: Header) -> Result<SuiteResult, String> {
    let s = &cfg.sizes;
    let (w, sm) = (cfg.workers, cfg.stack_max);
    let mem = s
        .mem_counts
        .iter()
        .map(|&n| mem::row(&MemConfig::at(n, false, w, sm)))
        .collect();
    let mem_reused = mem::row(&MemConfig::at(s.reused_count, true, w, sm));
    let switch = switch::run(&SwitchConfig {
        n: s.switch_n,
        thread_n: s.thread_n,
        repeat: s.repeat,
        row: None,
    })?;
    let spawn = spawn::run(&SpawnConfig {
        count: s.spawn_count,
        workers: 2,
        stack_max: sm,
        repeat: s.repeat,
    })?;
    let fanout = FanoutConfig::at(s.fanout_count, w, sm, s.repeat).run()?;
    Ok(SuiteResult {
        header,
        mem,
        mem_reused,
        switch,
        spawn,
        fanout,
    })
}

/// The default suite's document: the result itself, header included.
pub fn outcome(cfg: &SuiteConfig) -> Result<Outcome, String> {
    let r = run(cfg, header(cfg.workers, cfg.stack_max))?;
    Ok(Outcome {
        json: to_json(&r)?,
        human: r.render(),
        success: true,
    })
}
