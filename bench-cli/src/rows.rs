//! Timed rows: one named measurement, its R samples, or why it was skipped.
//!
//! `switch` and `spawn` both produce a list of rows such as "rendezvous
//! channel ping-pong, 1 worker: 35 ns median (34–37)". A row that cannot run
//! on this machine (one CPU for a cross-CPU row, no memory for a cold spawn
//! of 10^7) carries `skipped` with the reason instead of a summary, so the
//! rest of the run still reports.

use serde::{Deserialize, Serialize};

use crate::stats::Summary;
use crate::table::Table;
use crate::units::{count, ns};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    /// Stable identifier, e.g. `chan_pingpong_1worker`.
    pub name: String,
    /// What a person reads.
    pub label: String,
    /// Operations per sample (hand-offs, spawns).
    pub ops: u64,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl Row {
    pub fn measured(name: &str, label: &str, ops: u64, summary: Summary) -> Row {
        Row {
            name: name.into(),
            label: label.into(),
            ops,
            summary: Some(summary),
            skipped: None,
        }
    }

    pub fn skipped(name: &str, label: &str, ops: u64, why: String) -> Row {
        Row {
            name: name.into(),
            label: label.into(),
            ops,
            summary: None,
            skipped: Some(why),
        }
    }

    /// Median ns, if measured.
    pub fn median(&self) -> Option<f64> {
        self.summary.as_ref().map(|s| s.median_ns)
    }
}

/// The rows of one subcommand.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RowSet {
    pub kind: String,
    /// What one "op" is, e.g. "one-way hand-off".
    pub unit: String,
    pub repeat: usize,
    pub rows: Vec<Row>,
}

impl RowSet {
    pub fn get(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new(&[self.kind.as_str(), "ops/sample", "median", "min–max"]);
        for r in &self.rows {
            match (&r.summary, &r.skipped) {
                (Some(s), _) => t.row(vec![
                    r.label.clone(),
                    count(r.ops),
                    ns(s.median_ns),
                    s.spread(),
                ]),
                (None, why) => t.skipped(r.label.clone(), why.as_deref().unwrap_or("?")),
            };
        }
        t
    }

    pub fn render(&self) -> String {
        format!(
            "{}: ns per {}, median of {} run{}\n{}",
            self.kind,
            self.unit,
            self.repeat,
            if self.repeat == 1 { "" } else { "s" },
            self.table().render()
        )
    }
}
