//! Presenting timed rows (`switch`, `spawn`, `fanout`): median and spread.

use crate::measure::row::{Row, RowSet};
use crate::present::table::Table;
use crate::present::units::{count, ns};
use crate::present::Render;

pub fn table(set: &RowSet) -> Table {
    let mut t = Table::new(&[set.kind.as_str(), "ops/sample", "median", "min–max"]);
    for r in &set.rows {
        match r {
            Row::Measured(m) => t.row(vec![
                m.op.label.clone(),
                count(m.op.ops),
                ns(m.summary.median_ns),
                m.summary.spread(),
            ]),
            Row::Skipped { what, skipped } => t.skipped(what.label.clone(), skipped),
        };
    }
    t
}

/// `ns per <unit>, median of R runs`.
pub fn caption(set: &RowSet) -> String {
    format!(
        "ns per {}, median of {} run{}",
        set.unit,
        set.repeat,
        if set.repeat == 1 { "" } else { "s" }
    )
}

pub fn render(set: &RowSet) -> String {
    format!("{}: {}\n{}", set.kind, caption(set), table(set).render())
}

/// `switch`, `spawn` and `fanout`.
impl Render for RowSet {
    fn render(&self) -> String {
        render(self)
    }
}
