//! One row of results: measured, or skipped with the reason.
//!
//! Every table this tool prints is a list of rows such as "mem at N = 10^6:
//! 4.6 KB per coroutine" or "rendezvous channel ping-pong, 1 worker: 35 ns".
//! A row that cannot run on this machine (not enough memory for 10^6 parked
//! threads, one CPU for a cross-CPU row) is still a row: it names what was
//! asked and says why it was skipped, so the rest of the run still reports.
//!
//! [`Row<T, K>`] is that one idea for every kind of result: `T` is the
//! measurement, `K` names what was asked ([`Count`] for "N tasks", [`Op`]
//! for a timed operation). In JSON a measured row is `T` itself and a
//! skipped one is `K` plus `"skipped": "<reason>"`.
//!
//! Timed rows (`switch`, `spawn`, `fanout`) are [`Timing`]s: an [`Op`] and
//! the [`Summary`] of its R samples, collected in a [`RowSet`].

use std::fmt;

use serde::{Deserialize, Serialize};

use super::stats::Summary;
use crate::present::units;

/// A result, or what was asked and why it could not be measured here.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Row<T, K = Count> {
    Measured(T),
    Skipped {
        #[serde(flatten)]
        what: K,
        skipped: String,
    },
}

impl<T, K> Row<T, K> {
    /// `Ok` becomes a measured row, `Err(why)` a skipped one.
    pub fn of(what: K, result: Result<T, String>) -> Row<T, K> {
        match result {
            Ok(t) => Row::Measured(t),
            Err(skipped) => Row::Skipped { what, skipped },
        }
    }

    pub fn measured(&self) -> Option<&T> {
        match self {
            Row::Measured(t) => Some(t),
            Row::Skipped { .. } => None,
        }
    }
}

/// The measured results among `rows`.
pub fn measured<T, K>(rows: &[Row<T, K>]) -> impl DoubleEndedIterator<Item = &T> {
    rows.iter().filter_map(Row::measured)
}

/// "N tasks": what a memory row measures.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Count {
    pub count: u64,
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "N = {}", units::count(self.count))
    }
}

/// A timed operation: its stable name, what a person reads, ops per sample.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Op {
    /// Stable identifier, e.g. `chan_pingpong_1worker`.
    pub name: String,
    /// What a person reads.
    pub label: String,
    /// Operations per sample (hand-offs, spawns).
    pub ops: u64,
}

impl Op {
    pub fn new(name: &str, label: &str, ops: u64) -> Op {
        Op {
            name: name.into(),
            label: label.into(),
            ops,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// An operation and the summary of its samples.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Timing {
    #[serde(flatten)]
    pub op: Op,
    #[serde(flatten)]
    pub summary: Summary,
}

/// A timed row: measured, or skipped.
pub type Timed = Row<Timing, Op>;

impl Timed {
    /// `summary` (or why there is none) for `op`.
    pub fn timed(op: Op, summary: Result<Summary, String>) -> Timed {
        match summary {
            Ok(summary) => Row::Measured(Timing { op, summary }),
            Err(skipped) => Row::Skipped { what: op, skipped },
        }
    }

    pub fn op(&self) -> &Op {
        match self {
            Row::Measured(t) => &t.op,
            Row::Skipped { what, .. } => what,
        }
    }

    /// Median ns, if measured.
    pub fn median(&self) -> Option<f64> {
        self.measured().map(|t| t.summary.median_ns)
    }
}

/// The timed rows of one subcommand.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RowSet {
    pub kind: String,
    /// What one "op" is, e.g. "one-way hand-off".
    pub unit: String,
    pub repeat: usize,
    pub rows: Vec<Timed>,
}

impl RowSet {
    pub fn new(kind: &str, unit: &str, repeat: usize, rows: Vec<Timed>) -> RowSet {
        RowSet {
            kind: kind.into(),
            unit: unit.into(),
            repeat,
            rows,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Timed> {
        self.rows.iter().find(|r| r.op().name == name)
    }

    /// Median ns of the row called `name`, if it was measured.
    pub fn median(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(Timed::median)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shapes_of_measured_and_skipped_rows() {
        let measured = Timed::timed(Op::new("a", "A", 10), Ok(Summary::of(vec![2.0])));
        let v = serde_json::to_value(&measured).unwrap();
        assert_eq!(
            (v["name"].as_str(), v["median_ns"].as_f64()),
            (Some("a"), Some(2.0))
        );
        let skipped = Timed::timed(Op::new("b", "B", 10), Err("why".into()));
        let v = serde_json::to_value(&skipped).unwrap();
        assert_eq!(
            (v["label"].as_str(), v["skipped"].as_str()),
            (Some("B"), Some("why"))
        );
        let back: Timed = serde_json::from_value(v).unwrap();
        assert!(back.median().is_none() && back.op().name == "b");
        let row: Row<u64> = Row::of(Count { count: 5 }, Err("no".into()));
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"{"count":5,"skipped":"no"}"#
        );
    }
}
