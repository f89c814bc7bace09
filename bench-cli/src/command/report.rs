//! `report --out DIR`: run everything and write it down.
//!
//! The default suite ([`suite::run`]), the OS-thread baseline at two N
//! (where the limits allow), and the Go side when Go is installed: Go's
//! `mem` at the suite's N and in reused slots, `switch`, `spawn` and
//! `fanout`, and the [`Comparison`] at the largest N both sides measured
//! (with spindle's compacted `mem` row at that N);
//! then the echo servers of [`net`](super::net) at N = 10^4 (`--net-count`).
//! Written into DIR:
//!
//! * `results.json`: every number, machine-readable;
//! * `results.md`: the exact command line, the date, the machine header and
//!   the tables, with the charts embedded (the docs link to it);
//! * `mem_per_unit.svg`, `switch_cost.svg` and `compact.svg` (see
//!   [`charts`](crate::present::charts)), and `net.svg` when the echo
//!   servers ran ([`net_chart`](crate::present::net_chart));
//! * `index.html`: one self-contained page with all of the above (inline
//!   SVG, no scripts, nothing fetched from anywhere).
//!
//! DIR is checked for writing before anything is measured: a typo in the
//! path should cost a second, not the minutes of a full run.
//! Anything that cannot run here is recorded as skipped, with the reason.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::compare::{compacted_row, go_mem_row, Comparison, GoMemRow, Sides};
use super::mem::{MemConfig, WARM_TOUCH};
use super::net::NetSection;
use super::sizes::Sizes;
use super::suite::{self, SuiteConfig, SuiteResult};
use super::threads::{self, ThreadsRow};
use super::{Global, Measurement};
use crate::cli::ReportArgs;
use crate::measure::goref::{self, GoRows, Goref};
use crate::measure::header::Header;
use crate::measure::row::measured;
use crate::present::{progress, Documents};

#[derive(Clone, Debug)]
pub struct ReportConfig {
    pub out: PathBuf,
    pub go: Option<PathBuf>,
    pub suite: SuiteConfig,
    /// N for the echo servers (`net`).
    pub net_counts: Vec<u64>,
    pub quick: bool,
}

impl ReportConfig {
    pub fn new(a: ReportArgs, g: &Global) -> ReportConfig {
        ReportConfig {
            out: a.out,
            go: a.go,
            suite: SuiteConfig::new(g),
            net_counts: super::net::counts_or_default(&a.net_count, g.quick),
            quick: g.quick,
        }
    }

    fn sizes(&self) -> &Sizes {
        &self.suite.sizes
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoSection {
    pub version: String,
    pub mem: Vec<GoMemRow>,
    pub mem_reused: GoMemRow,
    pub switch: GoRows,
    pub spawn: GoRows,
    pub fanout: GoRows,
    pub comparison: Option<Comparison>,
}

/// Everything `results.json` holds: the suite's results and the rest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub command: String,
    #[serde(flatten)]
    pub suite: SuiteResult,
    pub threads: Vec<ThreadsRow>,
    pub go: Option<GoSection>,
    pub go_skipped: Option<String>,
    /// The echo servers, spindle beside Go (`net`).
    #[serde(default)]
    pub net: Option<NetSection>,
    pub wall_seconds: f64,
}

/// What `report` prints about itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReportSummary {
    pub out: String,
    pub files: Vec<String>,
    pub go: String,
    pub wall_seconds: f64,
}

impl Measurement for ReportConfig {
    type Data = ReportSummary;
    const KEY: &'static str = "report";

    fn runtime(&self) -> (usize, usize) {
        (self.suite.workers, self.suite.stack_max)
    }

    fn run(&self) -> Result<ReportSummary, String> {
        run(self)
    }
}

/// The command line as typed, quoted where a word has spaces.
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Make `dir` and prove a file can be written there, before measuring.
pub fn check_writable(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let probe = dir.join(".spindle-bench-write-check");
    std::fs::write(&probe, b"").map_err(|e| format!("cannot write into {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn go_section(cfg: &ReportConfig, suite: &SuiteResult, go: &Goref) -> Result<GoSection, String> {
    let (s, w) = (cfg.sizes(), cfg.suite.workers);
    let mem: Vec<GoMemRow> = s
        .mem_counts
        .iter()
        .map(|&n| go_mem_row(go, n, w, 0))
        .collect();
    let mem_reused = go_mem_row(go, s.reused_count, w, WARM_TOUCH);
    progress::phase("report: Go switch, spawn and fan-out");
    let switch = go.switch(s.switch_n, s.repeat)?;
    let spawn = go.spawn(s.spawn_count, s.repeat)?;
    let fanout = go.fanout(s.fanout_count, w, s.repeat)?;
    progress::clear();
    // Compare at the largest N measured on both sides.
    let pair = measured(&suite.mem).rev().find_map(|sm| {
        measured(&mem)
            .find(|gm| gm.count == sm.count)
            .map(|gm| (sm.clone(), gm.clone()))
    });
    let comparison = pair.map(|(spindle_mem, go_mem)| {
        let fresh = MemConfig::at(spindle_mem.count, false, w, cfg.suite.stack_max);
        let spindle_compacted = Some(compacted_row(&fresh));
        Comparison::new(
            go,
            Sides {
                spindle_mem,
                go_mem,
                spindle_reused: suite.mem_reused.clone(),
                go_reused: mem_reused.clone(),
                spindle_switch: suite.switch.clone(),
                go_switch: switch.clone(),
                spindle_spawn: suite.spawn.clone(),
                go_spawn: spawn.clone(),
                spindle_fanout: suite.fanout.clone(),
                go_fanout: fanout.clone(),
                spindle_compacted,
            },
        )
    });
    Ok(GoSection {
        version: go.version.clone(),
        mem,
        mem_reused,
        switch,
        spawn,
        fanout,
        comparison,
    })
}

pub fn run(cfg: &ReportConfig) -> Result<ReportSummary, String> {
    check_writable(&cfg.out)?;
    let t0 = Instant::now();
    let header: Header = super::header(cfg.suite.workers, cfg.suite.stack_max);
    let suite = suite::run(&cfg.suite, header)?;
    let threads = threads::series(&cfg.sizes().thread_counts);
    progress::phase("report: building the Go reference program");
    let goref = goref::build(cfg.go.as_deref());
    let (go, go_skipped) = match goref.as_ref().map_err(Clone::clone) {
        Ok(g) => match go_section(cfg, &suite, g) {
            Ok(section) => (Some(section), None),
            Err(why) => (None, Some(why)),
        },
        Err(why) => (None, Some(why)),
    };
    let net = super::net::section(
        cfg.net_counts.clone(),
        cfg.quick,
        goref.as_ref().map_err(Clone::clone),
    );
    let results = Results {
        command: command_line(),
        suite,
        threads,
        go,
        go_skipped,
        net: Some(net),
        wall_seconds: t0.elapsed().as_secs_f64(),
    };

    let write = |name: &str, text: &str| -> Result<String, String> {
        let path = cfg.out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path.display().to_string())
    };
    let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    let mut files = vec![write("results.json", &(json + "\n"))?];
    for (name, text) in results.documents() {
        files.push(write(name, &text)?);
    }
    Ok(ReportSummary {
        out: cfg.out.display().to_string(),
        files,
        go: match (&results.go, &results.go_skipped) {
            (Some(g), _) => g.version.clone(),
            (None, why) => format!("skipped: {}", why.as_deref().unwrap_or("?")),
        },
        wall_seconds: results.wall_seconds,
    })
}

impl Results {
    /// The Go side's fresh-slot `mem` row at `count`, if measured.
    pub fn go_mem_at(&self, count: u64) -> Option<&goref::GoMem> {
        let go = self.go.as_ref()?;
        measured(&go.mem).find(|m| m.count == count)
    }

    /// The Go side's reused-slot row, if measured.
    pub fn go_reused(&self) -> Option<&goref::GoMem> {
        self.go.as_ref().and_then(|g| g.mem_reused.measured())
    }
}
