//! `compare`: spindle and Go, same workloads, same method, side by side.
//!
//! Both sides are measured the same way: memory as the RSS + VmPTE delta of
//! a fresh process with N tasks parked on a channel, switches as ns per
//! one-way channel hand-off, spawns as ns per spawn+join. The ratio column
//! is Go / spindle, so above 1× means spindle is cheaper.
//!
//! Go's own accounting is shown too: `MemStats.Sys` and `StackInuse` deltas
//! per goroutine. Older benchmarks quote those, and they can be reproduced
//! from this table. They differ from RSS because Go counts address space it
//! has *asked for*, while RSS counts pages the kernel has *handed out*.
//! Go's stacks start at 2 KiB inside shared spans, which is why a goroutine
//! can cost less than one 4 KiB page; a spindle stack is a slot of its own,
//! so its cost starts at one page plus page tables.
//!
//! Next to each favourable row stands the row a real program sees, measured
//! the same way on both sides: memory in slots reused after a warm-up round
//! whose coroutines touched 12 KiB of stack, and fan-out (spawn N, wait for
//! all) on a fresh runtime and warm. The table says which side is cheaper,
//! Go included.
//!
//! The echo servers of [`net`](super::net) (memory per idle connection,
//! set-up rate, latency, throughput) run last, at N = 10^4 (`--net-count`).
//!
//! [`Comparison::new`] is the one place a comparison is assembled from
//! the two sides' measurements; `compare` and `report` both call it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::mem::{self, MemConfig, MemResult, MemRow, WARM_TOUCH};
use super::net::NetSection;
use super::switch::SwitchConfig;
use super::{fanout::FanoutConfig, spawn::SpawnConfig, Global, Measurement};
use crate::cli::CompareArgs;
use crate::measure::goref::{self, GoMem, GoRows, Goref};
use crate::measure::preflight;
use crate::measure::row::{Count, Row, RowSet};
use crate::present::{progress, units::count};

#[derive(Clone, Debug)]
pub struct CompareConfig {
    pub go: Option<PathBuf>,
    pub count: u64,
    pub reused_count: u64,
    pub n: u64,
    pub spawn_count: u64,
    pub fanout_count: u64,
    pub repeat: usize,
    pub workers: usize,
    pub stack_max: usize,
    /// N for `net` (spindle and Go echo servers).
    pub net_counts: Vec<u64>,
    pub quick: bool,
}

impl CompareConfig {
    pub fn new(a: &CompareArgs, g: &Global) -> CompareConfig {
        let s = g.sizes();
        CompareConfig {
            go: a.go.clone(),
            count: a.count.unwrap_or(s.mem_count()),
            reused_count: a.reused_count.unwrap_or(s.reused_count),
            n: a.n.unwrap_or(s.switch_n),
            spawn_count: a.spawn_count.unwrap_or(s.spawn_count),
            fanout_count: a.fanout_count.unwrap_or(s.fanout_count),
            repeat: s.compare_repeat,
            workers: a.workers.unwrap_or(g.workers),
            stack_max: g.stack_max,
            net_counts: super::net::counts_or_default(&a.net_count, g.quick),
            quick: g.quick,
        }
    }
}

/// A parked-goroutine row of the Go side.
pub type GoMemRow = Row<GoMem>;

/// Go's `mem` at `count` (reused slots if `touch` > 0), or why not.
pub fn go_mem_row(go: &Goref, count_: u64, procs: usize, touch: usize) -> GoMemRow {
    let label = if touch > 0 {
        "Go mem, reused"
    } else {
        "Go mem"
    };
    progress::phase(&format!("{label} at N = {}", count(count_)));
    let what = format!("{label} at N = {}", count(count_));
    let per = preflight::coroutine_estimate() + touch as u64;
    let r = preflight::memory(&what, count_ * per, "lower N")
        .and_then(|()| go.mem(count_, procs, touch));
    progress::clear();
    Row::of(Count { count: count_ }, r)
}

/// One line of the side-by-side table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Line {
    pub what: String,
    pub unit: String,
    pub spindle: Option<f64>,
    pub go: Option<f64>,
    /// Go / spindle.
    pub go_over_spindle: Option<f64>,
}

/// One of the goals the project set spindle against Go (a one-way hand-off
/// 3× cheaper, warm spawn+join 1.6× cheaper, at most 4.7 KB per parked
/// coroutine at 10^6), checked against this run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Target {
    pub what: String,
    pub goal: String,
    pub measured: String,
    pub met: bool,
    /// `false` when this run cannot decide it (the memory target is set at
    /// N = 10^6, and `--quick` measures less); `met` is then `false` too.
    #[serde(default = "checked_by_default")]
    pub checked: bool,
}

fn checked_by_default() -> bool {
    true
}

/// What both sides measured, the same way, in the same run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sides {
    pub spindle_mem: MemResult,
    pub go_mem: GoMem,
    pub spindle_reused: MemRow,
    pub go_reused: GoMemRow,
    pub spindle_switch: RowSet,
    pub go_switch: GoRows,
    pub spindle_spawn: RowSet,
    pub go_spawn: GoRows,
    pub spindle_fanout: RowSet,
    pub go_fanout: GoRows,
    /// spindle's `mem` with `--compact-after 10ms` (issue #12), at the same
    /// N as `spindle_mem`; absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spindle_compacted: Option<MemRow>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Comparison {
    pub go_version: String,
    pub go_path: String,
    #[serde(flatten)]
    pub sides: Sides,
    pub lines: Vec<Line>,
    pub targets: Vec<Target>,
    /// The echo servers (`net`), in `compare`; `report` keeps its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<NetSection>,
}

impl Comparison {
    /// The side-by-side lines and the target checks of `sides`.
    pub fn new(go: &Goref, sides: Sides) -> Comparison {
        let lines = lines(&sides);
        let targets = targets(&sides, &lines);
        Comparison {
            go_version: go.version.clone(),
            go_path: go.go.display().to_string(),
            sides,
            lines,
            targets,
            net: None,
        }
    }
}

impl Measurement for CompareConfig {
    type Data = Comparison;
    const KEY: &'static str = "compare";

    fn runtime(&self) -> (usize, usize) {
        (self.workers, self.stack_max)
    }

    fn run(&self) -> Result<Comparison, String> {
        run(self)
    }
}

pub fn run(cfg: &CompareConfig) -> Result<Comparison, String> {
    progress::phase("compare: building the Go reference program");
    let go = goref::build(cfg.go.as_deref())?;
    let (w, sm) = (cfg.workers, cfg.stack_max);
    let fresh = MemConfig::at(cfg.count, false, w, sm);
    fresh.preflight()?;

    progress::phase(&format!("compare: spindle mem at N = {}", count(cfg.count)));
    let spindle_mem = mem::measure_isolated(&fresh)?;
    progress::phase(&format!("compare: Go mem at N = {}", count(cfg.count)));
    let go_mem = go.mem(cfg.count, w, 0)?;
    let spindle_reused = mem::row(&MemConfig::at(cfg.reused_count, true, w, sm));
    let go_reused = go_mem_row(&go, cfg.reused_count, w, WARM_TOUCH);
    let spindle_compacted = compacted_row(&fresh);

    let spindle_switch = super::switch::run_coroutine_rows(&SwitchConfig {
        n: cfg.n,
        thread_n: 0,
        repeat: cfg.repeat,
        row: None,
    })?;
    progress::phase("compare: Go switch");
    let go_switch = go.switch(cfg.n, cfg.repeat)?;

    let spindle_spawn = super::spawn::run(&SpawnConfig {
        count: cfg.spawn_count,
        workers: 2,
        stack_max: sm,
        repeat: cfg.repeat,
    })?;
    progress::phase("compare: Go spawn");
    let go_spawn = go.spawn(cfg.spawn_count, cfg.repeat)?;
    let spindle_fanout = FanoutConfig::at(cfg.fanout_count, w, sm, cfg.repeat).run()?;
    progress::phase("compare: Go fan-out");
    let go_fanout = go.fanout(cfg.fanout_count, w, cfg.repeat)?;
    let net = super::net::section(cfg.net_counts.clone(), cfg.quick, Ok(&go));
    progress::clear();

    let mut c = Comparison::new(
        &go,
        Sides {
            spindle_mem,
            go_mem,
            spindle_reused,
            go_reused,
            spindle_switch,
            go_switch,
            spindle_spawn,
            go_spawn,
            spindle_fanout,
            go_fanout,
            spindle_compacted: Some(spindle_compacted),
        },
    );
    c.net = Some(net);
    Ok(c)
}

/// `fresh` with compaction on: the compacted row of `compare` and `report`,
/// skipped with the reason if `build` refuses compaction (`docs/notes/compact.md`).
pub fn compacted_row(fresh: &MemConfig) -> MemRow {
    mem::row(&MemConfig {
        compact_after: Some(COMPACT_AFTER),
        ..fresh.clone()
    })
}

/// The compacted row's `--compact-after` (the setting).
pub const COMPACT_AFTER: std::time::Duration = std::time::Duration::from_millis(10);

fn line(what: &str, unit: &str, spindle: Option<f64>, go: Option<f64>) -> Line {
    let go_over_spindle = match (spindle, go) {
        (Some(s), Some(g)) if s > 0.0 => Some(g / s),
        _ => None,
    };
    Line {
        what: what.into(),
        unit: unit.into(),
        spindle,
        go,
        go_over_spindle,
    }
}

fn lines(c: &Sides) -> Vec<Line> {
    let (s, g) = (&c.spindle_mem, &c.go_mem);
    let n = g.count as f64;
    let mem = format!("N = {}", count(s.count));
    let reused_n = match &c.spindle_reused {
        Row::Measured(r) => r.count,
        Row::Skipped { what, .. } => what.count,
    };
    let fan_n = c.spindle_fanout.rows.first().map_or(0, |r| r.op().ops);
    let w = s.workers;
    let spindle_ns = |name: &str| {
        [&c.spindle_switch, &c.spindle_spawn, &c.spindle_fanout]
            .into_iter()
            .find_map(|set| set.median(name))
    };
    let go_ns = |name: &str| {
        [&c.go_switch, &c.go_spawn, &c.go_fanout]
            .into_iter()
            .find_map(|set| set.median(name))
    };
    let timed =
        |what: &str, spindle: &str, go: &str| line(what, "ns", spindle_ns(spindle), go_ns(go));
    let mut lines = vec![
        line(
            &format!("memory per parked task, RSS + page tables ({mem})"),
            "B",
            Some(s.per_coroutine.total_bytes),
            Some(g.per_goroutine_bytes),
        ),
        line(
            "  of which page tables (VmPTE)",
            "B",
            Some(s.per_coroutine.pte_bytes),
            Some(g.pte_delta_bytes as f64 / n),
        ),
        line(
            "  stacks: spindle resident pages (mincore), Go MemStats.StackInuse",
            "B",
            Some(s.per_coroutine.stack_resident_bytes),
            Some(g.stack_inuse_delta_bytes as f64 / n),
        ),
        line(
            "  heap: spindle runtime heap, Go MemStats.HeapAlloc",
            "B",
            Some(s.per_coroutine.heap_bytes),
            Some(g.heap_alloc_delta_bytes as f64 / n),
        ),
        line(
            "  Go MemStats.Sys delta (Go's own accounting)",
            "B",
            None,
            Some(g.sys_per_goroutine_bytes),
        ),
        line(
            &format!(
                "memory per parked task in reused slots (after a round that touched \
                 {} KiB; N = {})",
                WARM_TOUCH >> 10,
                count(reused_n)
            ),
            "B",
            c.spindle_reused
                .measured()
                .map(|r| r.per_coroutine.total_bytes),
            c.go_reused.measured().map(|g| g.per_goroutine_bytes),
        ),
        line(
            &format!(
                "memory per parked task, compacted after {} ms, each holding a 256-byte \
                 local ({mem})",
                COMPACT_AFTER.as_millis()
            ),
            "B",
            c.spindle_compacted
                .as_ref()
                .and_then(|r| r.measured())
                .map(|r| r.per_coroutine.total_bytes),
            Some(g.per_goroutine_bytes),
        ),
        line(
            "spawn while parking N (until all started)",
            "ns",
            Some(s.spawn_ns_per_coroutine),
            Some(g.spawn_ns_per_goroutine),
        ),
        line(
            "release and join N, per task",
            "ns",
            Some(s.release_join_ns_per_coroutine),
            Some(g.release_join_ns_per_goroutine),
        ),
    ];
    let fresh = format!(
        "fan-out of {}, first round on a fresh runtime / process ({w} workers / GOMAXPROCS={w})",
        count(fan_n)
    );
    let warm = format!("fan-out of {}, second round (warm)", count(fan_n));
    for (what, spindle, go) in [
        (
            "channel hand-off, 1 worker / GOMAXPROCS=1",
            "chan_pingpong_1worker",
            "chan_pingpong_procs1",
        ),
        (
            "channel hand-off, 2 workers / GOMAXPROCS=2",
            "chan_pingpong_2workers",
            "chan_pingpong_procs2",
        ),
        (
            "yield_now / runtime.Gosched, 1 worker",
            "yield_pingpong",
            "gosched_procs1",
        ),
        (
            "spawn+join, warm (2 workers / GOMAXPROCS=2)",
            "spawn_join_warm",
            "spawn_join",
        ),
        ("spawn batch, warm", "spawn_batch_warm", "spawn_batch"),
        (&fresh, "fanout_fresh", "fanout_fresh"),
        (&warm, "fanout_warm", "fanout_warm"),
    ] {
        lines.push(timed(what, spindle, go));
    }
    lines
}

/// spindle's design targets, checked in this run.
fn targets(c: &Sides, lines: &[Line]) -> Vec<Target> {
    let find = |prefix: &str| lines.iter().find(|l| l.what.starts_with(prefix));
    let speedup = |prefix: &str, what: &str, goal: f64| {
        let r = find(prefix).and_then(|l| l.go_over_spindle);
        Target {
            what: what.into(),
            goal: format!("at least {goal}× faster than Go"),
            measured: match r {
                None => "not measured".into(),
                Some(r) if r >= 1.0 => format!("{r:.2}× faster than Go"),
                Some(r) => format!("{:.2}× slower than Go", 1.0 / r),
            },
            met: r.is_some_and(|r| r >= goal),
            checked: r.is_some(),
        }
    };
    let total = c.spindle_mem.per_coroutine.total_bytes;
    vec![
        speedup(
            "channel hand-off, 1 worker",
            "one-way channel hand-off",
            3.0,
        ),
        speedup("spawn+join, warm", "warm spawn+join", 1.6),
        Target {
            what: format!(
                "memory per parked coroutine at N = {}",
                count(c.spindle_mem.count)
            ),
            goal: "at most 4.7 KB (at N = 10^6)".into(),
            measured: format!(
                "{:.2} KB (Go: {:.2} KB)",
                total / 1e3,
                c.go_mem.per_goroutine_bytes / 1e3
            ),
            met: total <= 4700.0 && c.spindle_mem.count >= 1_000_000,
            checked: c.spindle_mem.count >= 1_000_000,
        },
    ]
}
