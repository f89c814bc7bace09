//! Presenting `compare`: the side-by-side table, with which side is cheaper
//! named on every line, and spindle's design targets.

use crate::command::compare::Comparison;
use crate::present::table::Table;
use crate::present::units::{bytes, ns, ratio};
use crate::present::Render;

/// "spindle" or "Go wins" from the Go / spindle ratio (less is cheaper).
pub fn cheaper(go_over_spindle: Option<f64>) -> &'static str {
    match go_over_spindle {
        Some(r) if r > 1.0 => "spindle",
        Some(r) if r < 1.0 => "Go wins",
        Some(_) => "even",
        None => "",
    }
}

pub fn table(c: &Comparison) -> Table {
    let mut t = Table::new(&["workload", "spindle", "Go", "Go/spindle", "cheaper"]);
    let fmt = |v: Option<f64>, unit: &str| match v {
        None => "-".to_string(),
        Some(v) if unit == "B" => bytes(v),
        Some(v) => ns(v),
    };
    for l in &c.lines {
        t.row(vec![
            l.what.clone(),
            fmt(l.spindle, &l.unit),
            fmt(l.go, &l.unit),
            l.go_over_spindle.map_or("-".into(), ratio),
            cheaper(l.go_over_spindle).into(),
        ]);
    }
    t
}

pub fn targets_table(c: &Comparison) -> Table {
    let mut t = Table::new(&["spindle's design target", "goal", "this run", "met"]);
    t.text_column(1).text_column(2);
    for x in &c.targets {
        t.row(vec![
            x.what.clone(),
            x.goal.clone(),
            x.measured.clone(),
            match (x.checked, x.met) {
                (false, _) => "not checked here",
                (true, true) => "yes",
                (true, false) => "NO",
            }
            .into(),
        ]);
    }
    t
}

pub fn render(c: &Comparison) -> String {
    let mut out = format!(
        "compare: spindle vs {} ({}); ratio = Go / spindle, above 1× means spindle is cheaper, \
         below 1× Go is\n{}\n{}",
        c.go_version,
        c.go_path,
        table(c).render(),
        targets_table(c).render()
    );
    if let Some(net) = &c.net {
        out.push('\n');
        out.push_str(&super::net::section_text(net));
    }
    out
}

impl Render for Comparison {
    fn render(&self) -> String {
        render(self)
    }
}
