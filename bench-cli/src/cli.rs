//! The command line, declared with clap's derive API.
//!
//! Every number goes through a parser from [`args`](crate::args), so a bad
//! value is refused by clap with one line before anything runs. `--json`,
//! `--repeat` and `--quick` are global: they may be given before or after
//! the subcommand. Subcommand flags override the top-level `--workers` and
//! `--stack-max`, which configure the default suite.
//!
//! Every flag that takes a number accepts a leading `-` as its value (a
//! size flag any value starting with `-`, since `-64K` is no number to
//! clap), so that `--repeat -1` is refused by the flag's own parser
//! (`invalid value '-1' for '--repeat <R>'`) instead of clap's "unexpected
//! argument '-1'", which does not say which flag was wrong.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::args::{
    parse_count, parse_depth, parse_duration, parse_frame_bytes, parse_repeat, parse_stack_max,
    parse_thread_stack, parse_workers,
};

/// Measure what a green thread really costs: spindle coroutines next to Go
/// goroutines and OS threads.
///
/// With no subcommand, runs the default suite: a machine header, `mem` at
/// N = 10^4, 10^5 and 10^6 and in reused slots, `switch`, `spawn` and
/// `fanout`.
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
    #[arg(long, global = true, value_name = "R", allow_negative_numbers = true, value_parser = parse_repeat)]
    pub repeat: Option<usize>,

    /// Small sizes for a fast smoke run (default suite, compare, report).
    #[arg(long, global = true)]
    pub quick: bool,

    /// Worker threads for the default suite's runtimes (default: all cores).
    #[arg(long, value_name = "W", allow_negative_numbers = true, value_parser = parse_workers)]
    pub workers: Option<usize>,

    /// Stack slot per coroutine for the default suite (default 256 KiB).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true, value_parser = parse_stack_max)]
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
    /// ns per coroutine of a burst: spawn N, wait for all; fresh and warm.
    Fanout(FanoutArgs),
    /// Load balance: CPU-bound coroutines started 8:2 on two workers.
    Balance,
    /// The OS-thread baseline: N threads blocked on a channel.
    Threads(ThreadsArgs),
    /// Watch a coroutine stack grow page by page, and shrink; or overflow.
    Grow(GrowArgs),
    /// The same workloads in Go, side by side with ratios.
    Compare(CompareArgs),
    /// Run everything; write results.json, results.md, SVG charts, index.html.
    Report(ReportArgs),
    /// Echo server, one task per connection: memory per idle connection,
    /// set-up rate, round-trip latency and throughput, spindle beside Go.
    Net(crate::command::net::NetArgs),
    /// Internal: the echo server `net` measures, in a child process.
    #[command(hide = true)]
    NetServer(crate::command::net_server::NetServerArgs),
}

#[derive(Debug, Args)]
pub struct MemArgs {
    /// Coroutines to park.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count, default_value = "1000000")]
    pub count: u64,
    /// One rendezvous channel per coroutine instead of one shared channel.
    #[arg(long)]
    pub per_coroutine_channel: bool,
    /// Park in slots reused after a round of N coroutines that touched 12 KiB
    /// of stack each (the baseline is taken before that round).
    #[arg(long)]
    pub reused: bool,
    /// Also show where the memory is, by kind (stack slots, labels, heap,
    /// page tables, malloc's figures), at the baseline, after the warm-up
    /// and with all parked.
    #[arg(long)]
    pub breakdown: bool,
    /// Internal: a child started by this tool, whose parent ran preflight.
    #[arg(long, hide = true)]
    pub measuring_child: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "W", allow_negative_numbers = true, value_parser = parse_workers)]
    pub workers: Option<usize>,
    /// Stack slot per coroutine, guard page included (default 256 KiB).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true, value_parser = parse_stack_max)]
    pub stack_max: Option<usize>,
    /// Compact coroutines parked longer than this (10ms, 1s): each holds a
    /// 256-byte local it checks after waking, memory is measured 1 s after
    /// the last park, and the wake latency of one compacted coroutine is
    /// measured too.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = parse_duration)]
    pub compact_after: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct SwitchArgs {
    /// One-way hand-offs per sample for the coroutine rows.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count, default_value = "1000000")]
    pub n: u64,
    /// One-way hand-offs per sample for the OS-thread rows.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count, default_value = "100000")]
    pub thread_n: u64,
    /// Run only this row (its JSON name), e.g. to count its instructions
    /// under `valgrind --tool=callgrind`.
    #[arg(long, value_name = "ROW", value_parser = clap::builder::PossibleValuesParser::new(crate::command::switch::ROWS))]
    pub row: Option<String>,
}

#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// Coroutines per sample.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count, default_value = "100000")]
    pub count: u64,
    /// Worker threads.
    #[arg(long, value_name = "W", allow_negative_numbers = true, value_parser = parse_workers, default_value = "2")]
    pub workers: usize,
    /// Stack slot per coroutine (default 256 KiB).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true, value_parser = parse_stack_max)]
    pub stack_max: Option<usize>,
}

#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Coroutines per round.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count, default_value = "1000000")]
    pub count: u64,
    /// Worker threads (and GOMAXPROCS for Go in `compare`).
    #[arg(long, value_name = "W", allow_negative_numbers = true, value_parser = parse_workers, default_value = "2")]
    pub workers: usize,
    /// Internal: a child started by this tool: one sample, no preflight.
    #[arg(long, hide = true)]
    pub measuring_child: bool,
    /// Stack slot per coroutine (default 256 KiB).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true, value_parser = parse_stack_max)]
    pub stack_max: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ThreadsArgs {
    /// OS threads to park.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count, default_value = "10000")]
    pub count: u64,
    /// Stack reservation per thread (default: std's 2 MiB).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true, value_parser = parse_thread_stack)]
    pub stack_size: Option<usize>,
}

#[derive(Debug, Args)]
pub struct GrowArgs {
    /// Bytes of local array per frame (a power of two, 64 to 65536).
    #[arg(long, value_name = "B", allow_hyphen_values = true, value_parser = parse_frame_bytes, default_value = "1024")]
    pub frame_bytes: usize,
    /// Recursion depth (default: about 3/4 of the stack).
    #[arg(long, value_name = "D", allow_negative_numbers = true, value_parser = parse_depth)]
    pub depth: Option<u64>,
    /// Stack slot of the coroutine (default 256 KiB).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true, value_parser = parse_stack_max)]
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
    /// Parked tasks in reused slots (default 10^5; --quick 10^3).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count)]
    pub reused_count: Option<u64>,
    /// Tasks per fan-out round (default 10^6; --quick 10^4).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count)]
    pub fanout_count: Option<u64>,
    /// Worker threads for spindle's memory run (default: all cores, like GOMAXPROCS).
    #[arg(long, value_name = "W", allow_negative_numbers = true, value_parser = parse_workers)]
    pub workers: Option<usize>,
    /// Connections for the echo-server comparison, comma-separated (default 10^4; --quick 10^3).
    #[arg(long, value_name = "N", value_delimiter = ',', allow_negative_numbers = true, value_parser = parse_count)]
    pub net_count: Vec<u64>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Directory for results.json, results.md, the SVG charts and index.html.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The `go` binary for the comparison (default: `go` on PATH; skipped if none).
    #[arg(long, value_name = "PATH")]
    pub go: Option<PathBuf>,
    /// Connections for the echo servers, comma-separated (default 10^4; --quick 10^3;
    /// e.g. 1e4,1e5).
    #[arg(long, value_name = "N", value_delimiter = ',', allow_negative_numbers = true, value_parser = parse_count)]
    pub net_count: Vec<u64>,
}

/// clap's error as one line. clap puts the key facts on the lines after the
/// first: the missing arguments ("the following required arguments were not
/// provided:" then `  --out <DIR>`), the possible values (`  [possible
/// values: ...]`) or a tip. Keep everything before the usage section: a list
/// after a line ending in ':' is joined with ", ", other lines with "; ".
pub fn one_line(rendered: &str) -> String {
    let mut out = String::new();
    let mut listing = false;
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            listing = false;
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        let line = line
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .unwrap_or(line);
        if !out.is_empty() {
            out.push_str(match (out.ends_with(':'), listing) {
                (true, _) => " ",
                (false, true) => ", ",
                (false, false) => "; ",
            });
        }
        out.push_str(line);
        listing |= line.ends_with(':');
    }
    if out.is_empty() {
        out.push_str("invalid arguments");
    }
    out
}

/// Flags that parse but make no sense together, refused like a bad argument.
pub fn unsupported_combination(cli: &Cli) -> Option<String> {
    match (&cli.command, cli.repeat) {
        (Some(Command::Grow(a)), Some(r)) if a.overflow && r > 1 => Some(format!(
            "--repeat {r} cannot be used with 'grow --overflow': the overflow demo runs \
             once (its child aborts the same way every time); drop --repeat"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse_error(args: &[&str]) -> String {
        let argv = std::iter::once("spindle-bench").chain(args.iter().copied());
        one_line(&Cli::try_parse_from(argv).unwrap_err().render().to_string())
    }

    #[test]
    fn clap_errors_keep_their_key_facts_on_one_line() {
        let e = parse_error(&["report"]);
        assert_eq!(
            e,
            "the following required arguments were not provided: --out <DIR>"
        );
        let e = parse_error(&["mem", "--count", "0"]);
        assert!(e.contains("--count <N>") && e.contains("at least 1"), "{e}");
        let e = parse_error(&["mem", "--no-such-flag"]);
        assert!(e.contains("'--no-such-flag'"), "{e}");
        let e = parse_error(&["frobnicate"]);
        assert!(e.contains("'frobnicate'"), "{e}");
        for e in [
            e,
            parse_error(&["--repeat"]),
            parse_error(&["mem", "--count"]),
        ] {
            assert!(!e.contains('\n') && !e.contains("Usage"), "{e}");
        }
        assert_eq!(
            one_line("error: a\n  b\n  c\n\n  tip: d\n\nUsage: x\n"),
            "a; b; c; tip: d"
        );
        assert_eq!(
            one_line("error: missing:\n  --a <A>\n  --b <B>\n\nUsage: x\n"),
            "missing: --a <A>, --b <B>"
        );
        assert_eq!(
            one_line("error: invalid value 'x' for '--f <F>'\n  [possible values: a, b]\n"),
            "invalid value 'x' for '--f <F>'; possible values: a, b"
        );
    }

    #[test]
    fn grow_overflow_refuses_repeat() {
        let cli = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("spindle-bench").chain(args.iter().copied()))
                .unwrap()
        };
        let msg = unsupported_combination(&cli(&["grow", "--overflow", "--repeat", "2"]));
        assert!(msg.is_some_and(|m| m.contains("--repeat") && m.contains("--overflow")));
        assert!(unsupported_combination(&cli(&["--repeat", "3", "grow", "--overflow"])).is_some());
        assert!(unsupported_combination(&cli(&["grow", "--overflow", "--repeat", "1"])).is_none());
        assert!(unsupported_combination(&cli(&["grow", "--repeat", "2"])).is_none());
    }
}
