//! Presenting the default suite and `report`: the suite's text, the
//! sections of `results.md` (shared with `index.html`), and the summary
//! `report` prints.

use crate::command::compare::GoMemRow;
use crate::command::report::{ReportSummary, Results};
use crate::command::suite::SuiteResult;
use crate::measure::row::Row;
use crate::present::table::Table;
use crate::present::units::{bytes, bytes_kb, count};
use crate::present::{
    charts, compact_chart, compare, html, mem, net_chart, threads, timed, Documents, Render,
};

/// The default suite as text.
impl Render for SuiteResult {
    fn render(&self) -> String {
        suite(self)
    }
}

impl Render for ReportSummary {
    fn render(&self) -> String {
        summary(self)
    }
}

/// The charts, `results.md` and `index.html`.
impl Documents for Results {
    fn documents(&self) -> Vec<(&'static str, String)> {
        let memory = charts::memory(self);
        let switch = charts::switch(self);
        let net = net_report(self).map(|n| net_chart::chart(n, &charts::footer_lines(self)));
        let compact = compact_chart::chart(self, &charts::footer_lines(self));
        let page = html::page(self, [&memory, &switch, &compact], net.as_deref());
        let mut docs = vec![
            (Chart::Memory.file(), memory),
            (Chart::Switch.file(), switch),
            (Chart::Compact.file(), compact),
        ];
        docs.extend(net.map(|n| (Chart::Net.file(), n)));
        docs.push(("results.md", markdown(self)));
        docs.push(("index.html", page));
        docs
    }
}

fn suite(r: &SuiteResult) -> String {
    format!(
        "{}\n{}{}\n{}\n{}\n{}",
        r.header.render(),
        mem::series(&r.mem),
        mem::reused(&r.mem_reused),
        timed::render(&r.switch),
        timed::render(&r.spawn),
        timed::render(&r.fanout)
    )
}

/// What `report` prints about itself.
fn summary(s: &ReportSummary) -> String {
    let mut out = format!(
        "report: wrote {} files to {} in {:.1} s (Go: {})\n",
        s.files.len(),
        s.out,
        s.wall_seconds,
        s.go
    );
    for f in &s.files {
        out.push_str(&format!("  {f}\n"));
    }
    out
}

/// Go's parked goroutines, one line per (label, row).
pub fn go_mem_table(rows: &[(String, &GoMemRow)]) -> Table {
    let mut t = Table::new(&[
        "N",
        "RSS + page tables/goroutine",
        "MemStats.Sys/goroutine",
        "MemStats.StackInuse/goroutine",
    ]);
    for (label, r) in rows {
        match r {
            Row::Measured(m) => t.row(vec![
                label.clone(),
                bytes_kb(m.per_goroutine_bytes),
                bytes(m.sys_per_goroutine_bytes),
                bytes(m.stack_inuse_delta_bytes as f64 / m.count as f64),
            ]),
            Row::Skipped { skipped, .. } => t.skipped(label.clone(), skipped),
        };
    }
    t
}

/// "10^4", or "10^3, reused slots", for a row of Go's table.
fn go_label(row: &GoMemRow, reused: bool) -> String {
    let n = match row {
        Row::Measured(m) => m.count,
        Row::Skipped { what, .. } => what.count,
    };
    if reused {
        format!("{}, reused slots", count(n))
    } else {
        count(n)
    }
}

/// The report's charts (`Net` only when the echo servers were measured).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chart {
    Memory,
    Switch,
    Net,
    /// Memory against wake latency, with and without compaction.
    Compact,
}

/// The echo servers' results, if measured.
fn net_report(r: &Results) -> Option<&crate::command::net::NetReport> {
    r.net.as_ref().and_then(Row::measured)
}

impl Chart {
    /// The file `report` writes the chart to.
    pub fn file(self) -> &'static str {
        match self {
            Chart::Memory => "mem_per_unit.svg",
            Chart::Switch => "switch_cost.svg",
            Chart::Net => "net.svg",
            Chart::Compact => "compact.svg",
        }
    }
}

/// One part of the report: a heading level, title, text and tables.
pub struct Section {
    pub level: usize,
    pub title: String,
    /// Paragraphs (plain text) before the tables.
    pub text: Vec<String>,
    pub tables: Vec<Table>,
    /// The chart shown under the heading, if any.
    pub chart: Option<Chart>,
}

fn section(level: usize, title: &str, text: Vec<String>, tables: Vec<Table>) -> Section {
    Section {
        level,
        title: title.into(),
        text,
        tables,
        chart: None,
    }
}

/// The report's sections, in order; `results.md` and `index.html` both
/// render these.
pub fn sections(r: &Results) -> Vec<Section> {
    let s = &r.suite;
    let mut out = Vec::new();
    let mut memory = section(2, "Memory per parked task", Vec::new(), Vec::new());
    memory.chart = Some(Chart::Memory);
    out.push(memory);
    let mut tables = vec![mem::series_table(&s.mem)];
    let mut text = vec![mem::series_caption(&s.mem)];
    if let Some(big) = mem::largest(&s.mem) {
        text.push(mem::fits_caption(big));
        tables.push(mem::fits_table(big));
    }
    out.push(section(3, "spindle coroutines", text, tables));
    out.push(section(
        3,
        "spindle coroutines in reused slots",
        vec![mem::reused(&s.mem_reused)],
        vec![mem::series_table(std::slice::from_ref(&s.mem_reused))],
    ));
    let mut compact = section(
        3,
        "Compaction: memory against wake latency",
        vec![format!(
            "Compacted: `mem --compact-after {}ms` at the N of the spindle vs Go comparison; \
             see that section's table for the figures beside Go.",
            crate::command::compare::COMPACT_AFTER.as_millis()
        )],
        Vec::new(),
    );
    compact.chart = Some(Chart::Compact);
    out.push(compact);
    let (caption, table) = threads::series(&r.threads);
    out.push(section(3, "OS threads", vec![caption], vec![table]));
    match (&r.go, &r.go_skipped) {
        (Some(g), _) => {
            let mut rows: Vec<(String, &GoMemRow)> =
                g.mem.iter().map(|r| (go_label(r, false), r)).collect();
            rows.push((go_label(&g.mem_reused, true), &g.mem_reused));
            out.push(section(
                3,
                &format!("Go goroutines ({})", g.version),
                vec![
                    "Reused slots: N goroutines parked after a warm-up round of N that touched \
                     12 KiB of stack each, baseline before the warm-up, as for spindle."
                        .into(),
                ],
                vec![go_mem_table(&rows)],
            ));
        }
        (None, why) => out.push(section(
            3,
            "Go goroutines",
            vec![format!("skipped: {}", why.as_deref().unwrap_or("?"))],
            Vec::new(),
        )),
    }
    let mut switch = section(
        2,
        "Switch cost",
        vec![timed::caption(&s.switch)],
        vec![timed::table(&s.switch)],
    );
    switch.chart = Some(Chart::Switch);
    out.push(switch);
    out.push(section(
        2,
        "Spawn",
        vec![timed::caption(&s.spawn)],
        vec![timed::table(&s.spawn)],
    ));
    out.push(section(
        2,
        "Fan-out",
        vec![
            "Spawn N, then wait for all on a WaitGroup; each sample is a fresh runtime \
             (first round) and its second round (warm)."
                .into(),
            timed::caption(&s.fanout),
        ],
        vec![timed::table(&s.fanout)],
    ));
    if let Some(net) = &r.net {
        let (text, tables) = super::net::section_parts(net);
        let mut s = section(
            2,
            "Network: echo server, one task per connection",
            text,
            tables,
        );
        s.chart = net_report(r).map(|_| Chart::Net);
        out.push(s);
    }
    if let Some(c) = r.go.as_ref().and_then(|g| g.comparison.as_ref()) {
        out.push(section(
            2,
            "spindle vs Go",
            vec![
                "Ratio = Go / spindle: above 1× spindle is cheaper, below 1× Go is (the last \
                 column names the cheaper side)."
                    .into(),
            ],
            vec![compare::table(c), compare::targets_table(c)],
        ));
    }
    out
}

/// `results.md`.
pub fn markdown(r: &Results) -> String {
    let mut md = format!(
        "# spindle-bench results\n\nCommand: `{}`  \nDate: {} UTC  \nWall time: {:.1} s\n\n\
         ## Machine\n\n```text\n{}```\n",
        r.command,
        r.suite.header.date_utc,
        r.wall_seconds,
        r.suite.header.render()
    );
    for s in sections(r) {
        md.push_str(&format!("\n{} {}\n\n", "#".repeat(s.level), s.title));
        if let Some(chart) = s.chart {
            md.push_str(&format!(
                "![{}]({})\n\n",
                s.title.to_lowercase(),
                chart.file()
            ));
        }
        for t in &s.text {
            md.push_str(t.trim_end());
            md.push_str("\n\n");
        }
        for (i, t) in s.tables.iter().enumerate() {
            if i > 0 {
                md.push('\n');
            }
            md.push_str(&t.markdown());
        }
    }
    md
}
