//! How results are shown: text tables, units, progress, charts and pages.
//!
//! * [`units`]: bytes, times and counts with honest units;
//! * [`table`]: aligned text tables (and their Markdown and HTML forms);
//! * [`progress`]: the progress line on a terminal's stderr;
//! * one module per kind of result ([`mem`], [`timed`], [`threads`],
//!   [`grow`], [`compare`], [`net`]) that turns it into tables and captions;
//! * [`report`]: `results.md` and the summary `report` prints;
//! * [`svg`], [`charts`], [`net_chart`] and [`compact_chart`]: the
//!   report's charts, as plain SVG text;
//! * [`html`]: `index.html`, one self-contained page with everything.
//!
//! Nothing here measures: every function takes results and returns text.
//! The data types come from [`command`](crate::command); nothing there
//! calls into this module except through the two traits below (and the
//! leaf helpers [`units`] and [`progress`]).

pub mod charts;
pub mod compact_chart;
pub mod compare;
pub mod grow;
pub mod html;
pub mod mem;
pub mod net;
pub mod net_chart;
pub mod progress;
pub mod report;
pub mod svg;
pub mod table;
pub mod threads;
pub mod timed;
pub mod units;

/// Results shown as text: what a subcommand prints without `--json`.
pub trait Render {
    fn render(&self) -> String;
}

/// Results written as files: `report`'s charts, `results.md` and
/// `index.html`, as (file name, contents).
pub trait Documents {
    fn documents(&self) -> Vec<(&'static str, String)>;
}
