//! The subcommands: each turns its arguments into a config, runs, and
//! returns data.
//!
//! A subcommand is a [`Measurement`]: a config that names the runtime it
//! uses (for the machine header) and a `run` that returns serialisable
//! data; [`present`](crate::present) renders that data ([`Render`]), and
//! no module here knows how (the dependency goes one way: `present` reads
//! the data types defined here). [`run`] builds the config from the command line and wraps the
//! data into an [`Outcome`]: `{"header": ..., "<key>": ...}` for `--json`,
//! the header and the tables otherwise. The default suite and `report`
//! write their own documents.
//!
//! `--repeat` means one thing everywhere: R runs of each measurement
//! ([`stats::runs`](crate::measure::stats::runs)); the sizes a subcommand
//! picks when none are given, and their `--quick` forms, are in [`sizes`].

pub mod balance;
pub mod compare;
pub mod fanout;
pub mod grow;
pub mod mem;
pub mod net;
pub mod net_server;
pub mod overflow;
pub mod report;
pub mod sizes;
pub mod spawn;
pub mod suite;
pub mod switch;
pub mod threads;

use serde::Serialize;
use serde_json::{json, Value};

use crate::cli::{Cli, Command};
use crate::measure::header::{Header, Settings};
use crate::present::Render;
use sizes::Sizes;

/// What a command produced: the JSON document and the human report.
pub struct Outcome {
    pub json: Value,
    pub human: String,
    pub success: bool,
}

/// A subcommand's config: what it measures and how it is shown.
pub trait Measurement {
    type Data: Serialize;
    /// The data's key in the JSON document.
    const KEY: &'static str;
    /// Workers and stack slot size, for the machine header.
    fn runtime(&self) -> (usize, usize);
    fn run(&self) -> Result<Self::Data, String>;
    /// Whether the data says the run did what it should (exit 0).
    fn success(_data: &Self::Data) -> bool {
        true
    }
}

/// Run `m` and wrap its data with the machine header.
fn outcome<M: Measurement>(m: M) -> Result<Outcome, String>
where
    M::Data: Render,
{
    let (workers, stack_max) = m.runtime();
    let h = header(workers, stack_max);
    let data = m.run()?;
    Ok(Outcome {
        json: json!({ "header": to_json(&h)?, M::KEY: to_json(&data)? }),
        human: format!("{}\n{}", h.render(), data.render()),
        success: M::success(&data),
    })
}

/// The options every subcommand shares, with their defaults filled in.
#[derive(Clone, Debug)]
pub struct Global {
    pub repeat: Option<usize>,
    pub quick: bool,
    pub workers: usize,
    pub stack_max: usize,
}

impl Global {
    pub fn sizes(&self) -> Sizes {
        Sizes::new(self.quick, self.repeat)
    }
}

/// The machine header for a run with this runtime.
pub fn header(workers: usize, stack_max: usize) -> Header {
    Header::collect(Settings {
        workers,
        stack_max: spindle::stack::page::round_up(stack_max),
        start_window: spindle::stack::page::start_window(),
    })
}

pub fn to_json<T: Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

/// Build the config the command line asks for and run it.
pub fn run(cli: Cli) -> Result<Outcome, String> {
    let g = Global {
        repeat: cli.repeat,
        quick: cli.quick,
        workers: cli
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        stack_max: cli.stack_max.unwrap_or(spindle::DEFAULT_STACK_MAX),
    };
    let Some(command) = cli.command else {
        return suite::outcome(&suite::SuiteConfig::new(&g));
    };
    match command {
        Command::Mem(a) => outcome(mem::MemConfig::new(&a, &g)),
        Command::Switch(a) => outcome(switch::SwitchConfig::new(&a, &g)),
        Command::Spawn(a) => outcome(spawn::SpawnConfig::new(&a, &g)),
        Command::Fanout(a) => outcome(fanout::FanoutConfig::new(&a, &g)),
        Command::Balance => outcome(balance::BalanceConfig::new(&g)),
        Command::Threads(a) => outcome(threads::ThreadsConfig::new(&a, &g)),
        Command::Grow(a) => grow::dispatch(&a, &g),
        Command::Compare(a) => outcome(compare::CompareConfig::new(&a, &g)),
        Command::Report(a) => outcome(report::ReportConfig::new(a, &g)),
        Command::Net(a) => outcome(net::NetConfig::new(&a, &g)),
        Command::NetServer(a) => net_server::run(&a).map(|()| Outcome {
            json: Value::Null,
            human: String::new(),
            success: true,
        }),
    }
}
