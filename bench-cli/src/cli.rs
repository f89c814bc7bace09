//! The command line, declared with clap's derive API.
//!
//! Every number goes through a parser from [`args`](crate::args), so a bad
//! value is refused by clap with one line before anything runs. `--json`,
//! `--repeat` and `--quick` are global: they may be given before or after
//! the subcommand. Subcommand flags override the top-level `--workers` and
//! `--stack-max`, which configure the default suite.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::args::{
    parse_count, parse_depth, parse_frame_bytes, parse_repeat, parse_stack_max, parse_thread_stack,
    parse_workers,
};

/// Measure what a green thread really costs: spindle coroutines next to Go
/// goroutines and OS threads.
///
/// With no subcommand, runs the default suite: a machine header, `mem` at
/// N = 10^4, 10^5 and 10^6, `switch` and `spawn`.
#[derive(Debug, Parser)]
#[command(name = "spindle-bench", version, about, long_about = None)]
#[command(
    after_help = "Counts accept 10000, 1e4, 10^4 or 10_000 (at most 10^8). \
Sizes accept bytes or a binary suffix: 262144, 256K, 256KiB, 1M."
)]
pub struct Cli {
    /// Print one JSON document on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Run each measurement R times; median and min–max are reported.
    #[arg(long, global = true, value_name = "R", value_parser = parse_repeat)]
    pub repeat: Option<usize>,

    /// Small sizes for a fast smoke run (default suite, compare, report).
    #[arg(long, global = true)]
    pub quick: bool,

    /// Worker threads for the default suite's runtimes (default: all cores).
    #[arg(long, value_name = "W", value_parser = parse_workers)]
    pub workers: Option<usize>,

    /// Stack slot per coroutine for the default suite (default 256 KiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_stack_max)]
    pub stack_max: Option<usize>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Memory per parked coroutine: N coroutines blocked in recv.
    Mem(MemArgs),
    /// ns per one-way hand-off: corosensei, yield, channels, OS threads.
    Switch(SwitchArgs),
    /// ns per spawn+join of short-lived coroutines, warm and cold.
    Spawn(SpawnArgs),
    /// Load balance: CPU-bound coroutines started 8:2 on two workers.
    Balance,
    /// The OS-thread baseline: N threads blocked on a channel.
    Threads(ThreadsArgs),
    /// Watch a coroutine stack grow page by page, and shrink; or overflow.
    Grow(GrowArgs),
    /// The same workloads in Go, side by side with ratios.
    Compare(CompareArgs),
    /// Run everything and write results.json, results.md and SVG charts.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct MemArgs {
    /// Coroutines to park.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count, default_value = "1000000")]
    pub count: u64,
    /// One rendezvous channel per coroutine instead of one shared channel.
    #[arg(long)]
    pub per_coroutine_channel: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "W", value_parser = parse_workers)]
    pub workers: Option<usize>,
    /// Stack slot per coroutine, guard page included (default 256 KiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_stack_max)]
    pub stack_max: Option<usize>,
}

#[derive(Debug, Args)]
pub struct SwitchArgs {
    /// One-way hand-offs per sample for the coroutine rows.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count, default_value = "1000000")]
    pub n: u64,
    /// One-way hand-offs per sample for the OS-thread rows.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count, default_value = "100000")]
    pub thread_n: u64,
}

#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// Coroutines per sample.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count, default_value = "100000")]
    pub count: u64,
    /// Worker threads.
    #[arg(long, value_name = "W", value_parser = parse_workers, default_value = "2")]
    pub workers: usize,
    /// Stack slot per coroutine (default 256 KiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_stack_max)]
    pub stack_max: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ThreadsArgs {
    /// OS threads to park.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count, default_value = "10000")]
    pub count: u64,
    /// Stack reservation per thread (default: std's 2 MiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_thread_stack)]
    pub stack_size: Option<usize>,
}

#[derive(Debug, Args)]
pub struct GrowArgs {
    /// Bytes of local array per frame (a power of two, 64 to 65536).
    #[arg(long, value_name = "B", value_parser = parse_frame_bytes, default_value = "1024")]
    pub frame_bytes: usize,
    /// Recursion depth (default: about 3/4 of the stack).
    #[arg(long, value_name = "D", value_parser = parse_depth)]
    pub depth: Option<u64>,
    /// Stack slot of the coroutine (default 256 KiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_stack_max)]
    pub stack_max: Option<usize>,
    /// Overflow the stack in a child process and show the report line.
    #[arg(long)]
    pub overflow: bool,
    /// Internal: be the overflowing child.
    #[arg(long, hide = true)]
    pub internal_overflow_child: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The `go` binary (default: `go` on PATH).
    #[arg(long, value_name = "PATH")]
    pub go: Option<PathBuf>,
    /// Parked tasks for the memory comparison (default 10^6; --quick 10^4).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count)]
    pub count: Option<u64>,
    /// One-way hand-offs per switch sample (default 10^6; --quick 10^5).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count)]
    pub n: Option<u64>,
    /// Tasks per spawn sample (default 10^5; --quick 10^4).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count)]
    pub spawn_count: Option<u64>,
    /// Worker threads for spindle's memory run (default: all cores, like GOMAXPROCS).
    #[arg(long, value_name = "W", value_parser = parse_workers)]
    pub workers: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Directory for results.json, results.md and the SVG charts.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The `go` binary for the comparison (default: `go` on PATH; skipped if none).
    #[arg(long, value_name = "PATH")]
    pub go: Option<PathBuf>,
}
