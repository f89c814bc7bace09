//! `report --out DIR`: run everything and write it down.
//!
//! The suite (`mem` at three N, `switch`, `spawn`), the OS-thread baseline
//! at two N (where the limits allow), and the Go side when Go is installed.
//! Written into DIR:
//!
//! * `results.json`: every number, machine-readable;
//! * `results.md`: the exact command line, the date, the machine header and
//!   the tables, with the charts embedded (the docs link to it);
//! * `mem_per_unit.svg` and `switch_cost.svg` (see [`charts`](crate::charts)).
//!
//! Anything that cannot run here is recorded as skipped, with the reason.

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::compare::{self, Comparison};
use crate::goref::{self, GoMem, GoRows};
use crate::header::Header;
use crate::mem::MemRow;
use crate::rows::RowSet;
use crate::suite::{self, Sizes};
use crate::table::Table;
use crate::threads::{self, ThreadsResult};
use crate::units::{bytes, bytes_kb, count};
use crate::{charts, mem_table, preflight, progress, spawn, switch};

#[derive(Clone, Debug)]
pub struct ReportConfig {
    pub out: PathBuf,
    pub go: Option<PathBuf>,
    pub sizes: Sizes,
    pub quick: bool,
    pub workers: usize,
    pub stack_max: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ThreadsRow {
    Measured(ThreadsResult),
    Skipped { count: u64, skipped: String },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GoMemRow {
    Measured(GoMem),
    Skipped { count: u64, skipped: String },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoSection {
    pub version: String,
    pub mem: Vec<GoMemRow>,
    pub switch: GoRows,
    pub spawn: GoRows,
    pub comparison: Option<Comparison>,
}

/// Everything `results.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub command: String,
    pub header: Header,
    pub mem: Vec<MemRow>,
    pub switch: RowSet,
    pub spawn: RowSet,
    pub threads: Vec<ThreadsRow>,
    pub go: Option<GoSection>,
    pub go_skipped: Option<String>,
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

fn thread_series(counts: &[u64]) -> Vec<ThreadsRow> {
    counts
        .iter()
        .map(|&n| {
            progress::phase(&format!("threads: starting {} threads", count(n)));
            let r = threads::measure(n, None);
            progress::clear();
            match r {
                Ok(r) => ThreadsRow::Measured(r),
                Err(skipped) => ThreadsRow::Skipped { count: n, skipped },
            }
        })
        .collect()
}

fn go_section(cfg: &ReportConfig, results: &Results) -> Result<GoSection, String> {
    progress::phase("report: building the Go reference program");
    let go = goref::build(cfg.go.as_deref())?;
    let s = &cfg.sizes;
    let mem: Vec<GoMemRow> = s
        .mem_counts
        .iter()
        .map(|&n| {
            progress::phase(&format!("report: Go mem at N = {}", count(n)));
            let what = format!("Go mem at N = {}", count(n));
            let r = preflight::memory(&what, n * preflight::coroutine_estimate(), "lower N")
                .and_then(|()| go.mem(n));
            match r {
                Ok(m) => GoMemRow::Measured(m),
                Err(skipped) => GoMemRow::Skipped { count: n, skipped },
            }
        })
        .collect();
    progress::phase("report: Go switch and spawn");
    let switch = go.switch(s.switch_n, s.repeat)?;
    let spawn = go.spawn(s.spawn_count, s.repeat)?;
    progress::clear();
    // Compare at the largest N measured on both sides.
    let pair = results.mem.iter().rev().find_map(|row| {
        let MemRow::Measured(sm) = row else {
            return None;
        };
        mem.iter().find_map(|g| match g {
            GoMemRow::Measured(gm) if gm.count == sm.count => Some((sm.clone(), gm.clone())),
            _ => None,
        })
    });
    let comparison = pair.map(|(spindle_mem, go_mem)| {
        compare::finish(Comparison {
            go_version: go.version.clone(),
            go_path: go.go.display().to_string(),
            spindle_mem,
            go_mem,
            spindle_switch: results.switch.clone(),
            go_switch: switch.clone(),
            spindle_spawn: results.spawn.clone(),
            go_spawn: spawn.clone(),
            lines: Vec::new(),
            targets: Vec::new(),
        })
    });
    Ok(GoSection {
        version: go.version.clone(),
        mem,
        switch,
        spawn,
        comparison,
    })
}

pub fn run(cfg: &ReportConfig, header: Header) -> Result<ReportSummary, String> {
    let t0 = Instant::now();
    std::fs::create_dir_all(&cfg.out)
        .map_err(|e| format!("cannot create {}: {e}", cfg.out.display()))?;
    let s = &cfg.sizes;
    let mem = suite::mem_series(&s.mem_counts, cfg.workers, cfg.stack_max);
    let switch = switch::run(&suite::switch_config(s))?;
    let spawn = spawn::run(&suite::spawn_config(s, cfg.stack_max))?;
    let thread_counts: &[u64] = if cfg.quick {
        &[100, 1000]
    } else {
        &[1000, 10_000]
    };
    let threads = thread_series(thread_counts);
    let mut results = Results {
        command: command_line(),
        header,
        mem,
        switch,
        spawn,
        threads,
        go: None,
        go_skipped: None,
        wall_seconds: 0.0,
    };
    match go_section(cfg, &results) {
        Ok(g) => results.go = Some(g),
        Err(why) => results.go_skipped = Some(why),
    }
    results.wall_seconds = t0.elapsed().as_secs_f64();

    let write = |name: &str, text: &str| -> Result<String, String> {
        let path = cfg.out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path.display().to_string())
    };
    let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    let mut files = vec![write("results.json", &(json + "\n"))?];
    files.push(write("mem_per_unit.svg", &charts::memory(&results)?)?);
    files.push(write("switch_cost.svg", &charts::switch(&results)?)?);
    files.push(write("results.md", &markdown(&results))?);
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

fn threads_table(rows: &[ThreadsRow]) -> (String, Table) {
    let measured: Vec<ThreadsResult> = rows
        .iter()
        .filter_map(|r| match r {
            ThreadsRow::Measured(r) => Some(r.clone()),
            ThreadsRow::Skipped { .. } => None,
        })
        .collect();
    let mut t = threads::table(&measured);
    for r in rows {
        if let ThreadsRow::Skipped { count: n, skipped } = r {
            t.skipped(format!("N = {}", count(*n)), skipped);
        }
    }
    (threads::caption(&measured), t)
}

fn go_mem_table(rows: &[GoMemRow]) -> Table {
    let mut t = Table::new(&[
        "N",
        "RSS + page tables/goroutine",
        "MemStats.Sys/goroutine",
        "MemStats.StackInuse/goroutine",
    ]);
    for r in rows {
        match r {
            GoMemRow::Measured(m) => t.row(vec![
                count(m.count),
                bytes_kb(m.per_goroutine_bytes),
                bytes(m.sys_per_goroutine_bytes),
                bytes(m.stack_inuse_delta_bytes as f64 / m.count as f64),
            ]),
            GoMemRow::Skipped { count: n, skipped } => {
                t.skipped(format!("N = {}", count(*n)), skipped)
            }
        };
    }
    t
}

fn markdown(r: &Results) -> String {
    let mut md = format!(
        "# spindle-bench results\n\nCommand: `{}`  \nDate: {} UTC  \nWall time: {:.1} s\n\n\
         ## Machine\n\n```text\n{}```\n\n",
        r.command,
        r.header.date_utc,
        r.wall_seconds,
        r.header.render()
    );
    md.push_str("## Memory per parked task\n\n![memory per parked task](mem_per_unit.svg)\n\n");
    md.push_str(&format!(
        "### spindle coroutines\n\n{}\n",
        mem_table::series_caption(&r.mem)
    ));
    md.push_str(&mem_table::series_table(&r.mem).markdown());
    if let Some(big) = mem_table::largest(&r.mem) {
        md.push_str(&format!("\n{}\n", mem_table::fits_caption(big)));
        md.push_str(&mem_table::fits_table(big).markdown());
    }
    let (caption, table) = threads_table(&r.threads);
    md.push_str(&format!(
        "\n### OS threads\n\n{caption}\n{}",
        table.markdown()
    ));
    match (&r.go, &r.go_skipped) {
        (Some(g), _) => {
            md.push_str(&format!("\n### Go goroutines ({})\n\n", g.version));
            md.push_str(&go_mem_table(&g.mem).markdown());
        }
        (None, why) => md.push_str(&format!(
            "\n### Go goroutines\n\nskipped: {}\n",
            why.as_deref().unwrap_or("?")
        )),
    }
    md.push_str("\n## Switch cost\n\n![switch cost by kind](switch_cost.svg)\n\n");
    md.push_str(&format!(
        "ns per {}, median of {} runs\n\n{}",
        r.switch.unit,
        r.switch.repeat,
        r.switch.table().markdown()
    ));
    md.push_str(&format!(
        "\n## Spawn\n\nns per {}, median of {} runs\n\n{}",
        r.spawn.unit,
        r.spawn.repeat,
        r.spawn.table().markdown()
    ));
    if let Some(c) = r.go.as_ref().and_then(|g| g.comparison.as_ref()) {
        md.push_str(&format!(
            "\n## spindle vs Go\n\nRatio = Go / spindle: above 1× means spindle is cheaper.\n\n{}\n{}",
            compare::table(c).markdown(),
            compare::targets_table(c).markdown()
        ));
    }
    md
}

pub fn render(s: &ReportSummary) -> String {
    let mut out = format!(
        "report: wrote {} files to {} in {:.1} s (Go: {})\n",
        s.files.len(),
        s.out,
        s.wall_seconds,
        s.go
    );
    for f in &s.files {
        out.push_str(&format!("  {f}\n"));
    }
    out
}
