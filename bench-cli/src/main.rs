//! `spindle-bench`: the measuring CLI for the spindle runtime.
//!
//! This file is the front door: it declares the modules, installs the
//! counting allocator, parses the command line and turns every outcome into
//! the right exit code:
//!
//! * results go to stdout, as tables or (with `--json`) one JSON document;
//! * `--help` and `--version` exit 0;
//! * a bad argument is one line, `spindle-bench: error: ...`, exit 2;
//! * a measurement that cannot run (a preflight refusal, a failed spawn) is
//!   one line, exit 1. Nothing here panics on bad input.
//!
//! Reading order for the measurements: `mem`, `switch`, `spawn`, `threads`,
//! `grow`, `compare`; then `report` and `charts` for the written output.

mod alloc;
mod args;
mod balance;
mod charts;
mod child;
mod cli;
mod compare;
mod goref;
mod grow;
mod header;
mod mem;
mod mem_table;
mod overflow;
mod pipes;
mod preflight;
mod procfs;
mod progress;
mod report;
mod rows;
mod spawn;
mod stats;
mod suite;
mod switch;
mod table;
mod threads;
mod units;

use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use serde_json::{json, Value};

use cli::{Cli, Command};
use header::{Header, Settings};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// What a command produced: the JSON document and the human report.
pub struct Outcome {
    pub json: Value,
    pub human: String,
    pub success: bool,
}

impl Outcome {
    fn ok(json: Value, human: String) -> Outcome {
        Outcome {
            json,
            human,
            success: true,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            eprintln!(
                "spindle-bench: error: {}",
                one_line(&e.render().to_string())
            );
            return ExitCode::from(2);
        }
    };
    if let Some(msg) = unsupported_combination(&cli) {
        eprintln!("spindle-bench: error: {msg}");
        return ExitCode::from(2);
    }
    let json = cli.json;
    match run(cli) {
        Ok(out) => {
            let text = if json {
                serde_json::to_string_pretty(&out.json).unwrap_or_default() + "\n"
            } else {
                out.human
            };
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
            if out.success {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(msg) => {
            progress::clear();
            eprintln!("spindle-bench: error: {}", msg.replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

/// clap's error as one line. clap puts the key facts on the lines after the
/// first: the missing arguments ("the following required arguments were not
/// provided:" then `  --out <DIR>`), the possible values (`  [possible
/// values: ...]`) or a tip. Keep everything before the usage section: a list
/// after a line ending in ':' is joined with ", ", other lines with "; ".
fn one_line(rendered: &str) -> String {
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
fn unsupported_combination(cli: &Cli) -> Option<String> {
    match (&cli.command, cli.repeat) {
        (Some(Command::Grow(a)), Some(r)) if a.overflow && r > 1 => Some(format!(
            "--repeat {r} cannot be used with 'grow --overflow': the overflow demo runs \
             once (its child aborts the same way every time); drop --repeat"
        )),
        _ => None,
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn header(workers: usize, stack_max: usize) -> Header {
    Header::collect(Settings {
        workers,
        stack_max: spindle::stack::page::round_up(stack_max),
        start_window: spindle::stack::page::start_window(),
    })
}

fn run(cli: Cli) -> Result<Outcome, String> {
    let workers = cli.workers.unwrap_or_else(default_workers);
    let stack_max = cli.stack_max.unwrap_or(spindle::DEFAULT_STACK_MAX);
    let Some(command) = cli.command else {
        let cfg = suite::SuiteConfig {
            sizes: suite::Sizes::new(cli.quick, cli.repeat),
            workers,
            stack_max,
        };
        let r = suite::run(&cfg, header(workers, stack_max))?;
        let json = serde_json::to_value(&r).map_err(|e| e.to_string())?;
        return Ok(Outcome::ok(json, suite::render(&r)));
    };
    match command {
        Command::Mem(a) => {
            let cfg = mem::MemConfig {
                count: a.count,
                workers: a.workers.unwrap_or(workers),
                stack_max: a.stack_max.unwrap_or(stack_max),
                per_coroutine_channel: a.per_coroutine_channel,
            };
            let h = header(cfg.workers, cfg.stack_max);
            let repeat = cli.repeat.unwrap_or(1);
            let rows: Vec<mem::MemRow> = if repeat == 1 {
                vec![mem::MemRow::Measured(mem::measure(&cfg)?)]
            } else {
                let mut rows = Vec::new();
                for _ in 0..repeat {
                    rows.push(mem::MemRow::Measured(mem::measure_isolated(&cfg)?));
                }
                rows
            };
            let human = match &rows[..] {
                [mem::MemRow::Measured(r)] => mem_table::single(r),
                _ => mem_table::repeated(&rows),
            };
            let json = json!({ "header": to_json(&h)?, "mem": to_json(&rows)? });
            Ok(Outcome::ok(json, format!("{}\n{human}", h.render())))
        }
        Command::Switch(a) => {
            let cfg = switch::SwitchConfig {
                n: a.n,
                thread_n: a.thread_n,
                repeat: cli.repeat.unwrap_or(5),
            };
            // Each row names its own worker count; the header shows the default.
            let h = header(workers, spindle::DEFAULT_STACK_MAX);
            let r = switch::run(&cfg)?;
            let json = json!({ "header": to_json(&h)?, "switch": to_json(&r)? });
            Ok(Outcome::ok(json, format!("{}\n{}", h.render(), r.render())))
        }
        Command::Spawn(a) => {
            let cfg = spawn::SpawnConfig {
                count: a.count,
                workers: a.workers,
                stack_max: a.stack_max.unwrap_or(stack_max),
                repeat: cli.repeat.unwrap_or(5),
            };
            let h = header(cfg.workers, cfg.stack_max);
            let r = spawn::run(&cfg)?;
            let json = json!({ "header": to_json(&h)?, "spawn": to_json(&r)? });
            Ok(Outcome::ok(json, format!("{}\n{}", h.render(), r.render())))
        }
        Command::Balance => {
            let h = header(2, stack_max);
            let r = balance::run(cli.repeat.unwrap_or(5))?;
            let json = json!({ "header": to_json(&h)?, "balance": to_json(&r)? });
            Ok(Outcome::ok(json, format!("{}\n{}", h.render(), r.render())))
        }
        Command::Threads(a) => {
            let h = header(workers, stack_max);
            let mut results = Vec::new();
            for _ in 0..cli.repeat.unwrap_or(1) {
                results.push(threads::measure(a.count, a.stack_size)?);
            }
            let json = json!({ "header": to_json(&h)?, "threads": to_json(&results)? });
            let human = format!("{}\n{}", h.render(), threads::render(&results));
            Ok(Outcome::ok(json, human))
        }
        Command::Grow(a) => {
            let stack_max = a.stack_max.unwrap_or(stack_max);
            if a.internal_overflow_child {
                overflow::child(stack_max)?;
                Err("the overflow child returned without overflowing".into())
            } else if a.overflow {
                let h = header(1, stack_max);
                let r = overflow::run(stack_max)?;
                let json = json!({ "header": to_json(&h)?, "overflow": to_json(&r)? });
                let human = format!("{}\n{}", h.render(), overflow::render(&r));
                Ok(Outcome {
                    success: r.expected,
                    json,
                    human,
                })
            } else {
                let cfg = grow::GrowConfig {
                    frame_bytes: a.frame_bytes,
                    depth: a.depth,
                    stack_max,
                };
                let h = header(1, stack_max);
                let mut results = Vec::new();
                for _ in 0..cli.repeat.unwrap_or(1) {
                    results.push(grow::measure(&cfg)?);
                }
                let human: Vec<String> = results.iter().map(grow::render).collect();
                let json = json!({ "header": to_json(&h)?, "grow": to_json(&results)? });
                Ok(Outcome::ok(
                    json,
                    format!("{}\n{}", h.render(), human.join("\n")),
                ))
            }
        }
        Command::Compare(a) => {
            let q = cli.quick;
            let cfg = compare::CompareConfig {
                go: a.go,
                count: a.count.unwrap_or(if q { 10_000 } else { 1_000_000 }),
                n: a.n.unwrap_or(if q { 100_000 } else { 1_000_000 }),
                spawn_count: a.spawn_count.unwrap_or(if q { 10_000 } else { 100_000 }),
                repeat: cli.repeat.unwrap_or(if q { 3 } else { 5 }),
                workers: a.workers.unwrap_or(workers),
                stack_max,
            };
            let h = header(cfg.workers, cfg.stack_max);
            let r = compare::run(&cfg)?;
            let json = json!({ "header": to_json(&h)?, "compare": to_json(&r)? });
            Ok(Outcome::ok(
                json,
                format!("{}\n{}", h.render(), compare::render(&r)),
            ))
        }
        Command::Report(a) => {
            let cfg = report::ReportConfig {
                out: a.out,
                go: a.go,
                sizes: suite::Sizes::new(cli.quick, cli.repeat),
                quick: cli.quick,
                workers,
                stack_max,
            };
            let h = header(workers, stack_max);
            let r = report::run(&cfg, h.clone())?;
            let json = json!({ "header": to_json(&h)?, "report": to_json(&r)? });
            Ok(Outcome::ok(
                json,
                format!("{}\n{}", h.render(), report::render(&r)),
            ))
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
