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
//! The code is in three parts: [`command`] (one module per subcommand:
//! arguments to config, run, data), [`measure`] (the tools they share:
//! procfs, allocation counting, child processes, preflight, statistics,
//! the machine header, the Go reference) and [`present`] (tables, units,
//! progress, charts, the HTML page). Reading order for the measurements:
//! `mem`, `switch`, `spawn`, `fanout`, `threads`, `grow`, `compare`; then
//! `report`.

mod args;
mod cli;
mod command;
mod measure;
mod present;

use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use cli::Cli;

#[global_allocator]
static ALLOC: measure::alloc::Counting = measure::alloc::Counting;

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
                cli::one_line(&e.render().to_string())
            );
            return ExitCode::from(2);
        }
    };
    if let Some(msg) = cli::unsupported_combination(&cli) {
        eprintln!("spindle-bench: error: {msg}");
        return ExitCode::from(2);
    }
    let json = cli.json;
    match command::run(cli) {
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
            present::progress::clear();
            eprintln!("spindle-bench: error: {}", msg.replace('\n', " "));
            ExitCode::from(1)
        }
    }
}
