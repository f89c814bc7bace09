//! The report's charts, drawn as plain SVG (see [`svg`](super::svg)).
//!
//! * `switch_cost.svg`: ns per one-way hand-off for every kind of switch,
//!   as a dot plot on a log axis: a raw coroutine switch and a pipe round
//!   trip between CPUs differ by two orders of magnitude, and on a log axis
//!   only a position means something (a bar from an arbitrary baseline
//!   would not). Rows are grouped by mechanism (spindle, Go, OS threads),
//!   each dot is the median and its whisker the min–max of the R runs.
//! * `mem_per_unit.svg`: what one parked task costs, stacked by where the
//!   bytes are (stack pages, page tables, control block, the rest), for a
//!   spindle coroutine in fresh and reused slots, a Go goroutine the same
//!   two ways, and an OS thread, on one linear axis: stacked lengths add up
//!   only on a linear axis.
//!
//! Under every chart: the date, the machine and the command that measured it.

use super::svg::{Anchor, Svg};
use super::units::{count, ns};
use crate::command::report::Results;
use crate::measure::row::measured;

// The colours of every chart (`net_chart.rs` and `compact_chart.rs` use
// them too): spindle blue (compacted, light blue), Go green, OS threads red.
pub(super) const SPINDLE: &str = "#1f77b4";
pub(super) const SPINDLE_COMPACT: &str = "#6baed6";
pub(super) const GO: &str = "#00897b";
pub(super) const THREADS: &str = "#d62728";
pub(super) const GRID: &str = "#dddddd";
pub(super) const MUTED: &str = "#555555";

const WIDTH: f64 = 1000.0;
/// Left edge of the plot area (labels go to its left).
const PLOT_X: f64 = 380.0;
const PLOT_W: f64 = WIDTH - PLOT_X - 40.0;
const ROW_H: f64 = 26.0;

/// A chart's title and the line under it that says how to read it.
pub(super) fn heading(svg: &mut Svg, title: &str, how_to_read: &str) {
    svg.title(20.0, 30.0, 20.0, title);
    svg.text(20.0, 52.0, 13.0, Anchor::Start, MUTED, how_to_read);
}

/// The name of the x axis, under its labels.
fn axis_title(svg: &mut Svg, axis_y: f64, text: &str) {
    svg.text(
        PLOT_X + PLOT_W / 2.0,
        axis_y + 36.0,
        13.0,
        Anchor::Middle,
        "black",
        text,
    );
}

/// The "date · machine" and "command" lines under every chart.
pub fn footer_lines(r: &Results) -> [String; 2] {
    let h = &r.suite.header;
    [
        format!(
            "{} UTC · {} ({}, {} cores) · {} · page {} B · {}",
            h.date_utc, h.cpu_model, h.arch, h.cores, h.kernel, h.page_size, h.guard_mode
        ),
        format!("command: {}", r.command),
    ]
}

/// The footer lines under a chart, from `y`.
fn footer(svg: &mut Svg, r: &Results, y: f64) {
    footer_at(svg, &footer_lines(r), y);
}

/// `lines` (date, machine, command) under a chart, one every 16 px from `y`.
pub(super) fn footer_at(svg: &mut Svg, lines: &[String], y: f64) {
    for (i, line) in lines.iter().enumerate() {
        svg.text(20.0, y + 16.0 * i as f64, 12.0, Anchor::Start, MUTED, line);
    }
}

/// One dot of the switch chart.
struct Dot {
    label: String,
    median: f64,
    min: f64,
    max: f64,
}

/// (group name, colour, dots) for spindle, Go and OS threads.
fn switch_groups(r: &Results) -> Vec<(&'static str, &'static str, Vec<Dot>)> {
    let dot = |label: &str, s: &crate::measure::stats::Summary| Dot {
        label: label.to_string(),
        median: s.median_ns,
        min: s.min_ns,
        max: s.max_ns,
    };
    let (mut spindle, mut threads) = (Vec::new(), Vec::new());
    for t in measured(&r.suite.switch.rows) {
        let d = dot(&t.op.label, &t.summary);
        if t.op.name.starts_with("thread") {
            threads.push(d);
        } else {
            spindle.push(d);
        }
    }
    let mut go = Vec::new();
    if let Some(g) = &r.go {
        for row in &g.switch.rows {
            let label = match row.name.as_str() {
                "chan_pingpong_procs1" => "channel ping-pong, GOMAXPROCS=1",
                "chan_pingpong_procs2" => "channel ping-pong, GOMAXPROCS=2",
                "gosched_procs1" => "runtime.Gosched, GOMAXPROCS=1",
                other => other,
            };
            go.push(dot(label, &row.summary));
        }
    }
    vec![
        ("spindle coroutines", SPINDLE, spindle),
        ("Go goroutines", GO, go),
        ("OS threads", THREADS, threads),
    ]
}

/// ns per one-way hand-off, by mechanism, as a dot plot on a log axis.
pub fn switch(r: &Results) -> String {
    let groups = switch_groups(r);
    let values = groups
        .iter()
        .flat_map(|g| g.2.iter())
        .flat_map(|d| [d.min, d.max])
        .filter(|v| *v > 0.0);
    let (lo, hi) = decades(values);
    let rows: usize = groups.iter().map(|g| g.2.len() + 1).sum();
    let top = 90.0;
    let axis_y = top + rows as f64 * ROW_H + 10.0;
    let mut svg = Svg::new(WIDTH, axis_y + 100.0);
    heading(
        &mut svg,
        "Switch cost: ns per one-way hand-off (log scale)",
        "dot: median of R runs; whisker: fastest to slowest run; further left is cheaper",
    );
    // Legend.
    let mut lx = PLOT_X;
    for (name, colour, _) in &groups {
        svg.circle(lx + 6.0, 72.0, 6.0, colour);
        svg.text(lx + 16.0, 77.0, 13.0, Anchor::Start, "black", name);
        lx += 190.0;
    }
    let x = |v: f64| PLOT_X + PLOT_W * (v.log10() - lo.log10()) / (hi.log10() - lo.log10());
    // Decade grid; 2 and 5 get labels too while they fit (up to 3 decades).
    let few = hi / lo <= 1000.0;
    let mut decade = lo;
    while decade <= hi * 1.001 {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v > hi * 1.001 {
                break;
            }
            let gx = x(v);
            let major = m == 1.0;
            svg.line(
                (gx, top - 8.0),
                (gx, axis_y),
                GRID,
                if major { 1.0 } else { 0.5 },
            );
            if major || few {
                svg.text(gx, axis_y + 16.0, 12.0, Anchor::Middle, MUTED, &tick(v));
            }
        }
        decade *= 10.0;
    }
    axis_title(&mut svg, axis_y, "ns per one-way hand-off");
    let mut y = top;
    for (name, colour, dots) in &groups {
        svg.title(20.0, y + 17.0, 14.0, name);
        if dots.is_empty() {
            svg.text(
                PLOT_X,
                y + 17.0,
                12.0,
                Anchor::Start,
                MUTED,
                "not measured in this run",
            );
        }
        y += ROW_H;
        for d in dots {
            let cy = y + ROW_H / 2.0;
            svg.text(
                PLOT_X - 10.0,
                cy + 4.0,
                13.0,
                Anchor::End,
                "black",
                &d.label,
            );
            svg.line((PLOT_X, cy), (PLOT_X + PLOT_W, cy), "#f2f2f2", 1.0);
            svg.line((x(d.min), cy), (x(d.max), cy), colour, 2.0);
            svg.circle(x(d.median), cy, 6.0, colour);
            svg.text(
                x(d.max) + 10.0,
                cy + 4.0,
                12.0,
                Anchor::Start,
                colour,
                &ns(d.median),
            );
            y += ROW_H;
        }
    }
    footer(&mut svg, r, axis_y + 62.0);
    svg.finish()
}

/// An axis label: "5", "20", "1 µs", "100 µs", "2 ms".
fn tick(v: f64) -> String {
    let (scaled, unit) = if v >= 1e6 {
        (v / 1e6, " ms")
    } else if v >= 1e3 {
        (v / 1e3, " µs")
    } else {
        (v, "")
    };
    format!("{scaled:.0}{unit}")
}

/// A log-axis range of whole decades around the values.
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !(lo.is_finite() && hi > 0.0) {
        return (1.0, 10.0);
    }
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
    (lo, hi)
}

/// Where one parked task's bytes are.
struct Breakdown {
    label: String,
    colour: &'static str,
    /// stack pages, page tables, control block, other; in bytes.
    parts: [f64; 4],
}

const PARTS: [(&str, &str); 4] = [
    ("stack pages", "#4e79a7"),
    ("page tables", "#f28e2b"),
    (
        "control block (task, waiter; a thread's kernel task + stack)",
        "#59a14f",
    ),
    ("other resident memory", "#bab0ac"),
];

fn breakdowns(r: &Results) -> Vec<Breakdown> {
    let mut out = Vec::new();
    let spindle = |label: String, m: &crate::command::mem::MemResult| {
        let p = &m.per_coroutine;
        Breakdown {
            label,
            colour: SPINDLE,
            parts: [
                p.stack_resident_bytes,
                p.pte_bytes,
                p.heap_bytes,
                p.rss_bytes - p.stack_resident_bytes - p.heap_bytes,
            ],
        }
    };
    let go = |label: String, g: &crate::measure::goref::GoMem| {
        let n = g.count as f64;
        let (stack, pte, heap) = (
            g.stack_inuse_delta_bytes as f64 / n,
            g.pte_delta_bytes as f64 / n,
            g.heap_alloc_delta_bytes as f64 / n,
        );
        Breakdown {
            label,
            colour: GO,
            parts: [stack, pte, heap, g.per_goroutine_bytes - stack - pte - heap],
        }
    };
    let big = measured(&r.suite.mem).next_back();
    if let Some(m) = big {
        out.push(spindle(
            format!("spindle, fresh slots (N = {})", count(m.count)),
            m,
        ));
    }
    if let Some(m) = r.suite.mem_reused.measured() {
        out.push(spindle(
            format!("spindle, reused slots (N = {})", count(m.count)),
            m,
        ));
    }
    if let Some(g) = big.and_then(|m| r.go_mem_at(m.count)) {
        out.push(go(format!("Go goroutine (N = {})", count(g.count)), g));
    }
    if let Some(g) = r.go_reused() {
        out.push(go(
            format!("Go goroutine, reused (N = {})", count(g.count)),
            g,
        ));
    }
    if let Some(t) = measured(&r.threads).next_back() {
        let p = &t.per_thread;
        out.push(Breakdown {
            label: format!("OS thread (N = {})", count(t.count)),
            colour: THREADS,
            parts: [
                p.rss_bytes,
                p.pte_bytes,
                p.kernel_stack_bytes + p.slab_unreclaimable_bytes,
                0.0,
            ],
        });
    }
    for b in &mut out {
        // Deltas at small N can be noise below zero: draw nothing for them.
        b.parts = b.parts.map(|v| v.max(0.0));
    }
    out
}

/// Bytes per parked task, stacked by where they are.
pub fn memory(r: &Results) -> String {
    let bars = breakdowns(r);
    let total = |b: &Breakdown| b.parts.iter().sum::<f64>();
    let max = bars.iter().map(total).fold(1000.0, f64::max);
    let step = nice_step(max / 6.0);
    let axis_max = (max / step).ceil() * step;
    let top = 110.0;
    let bar_h = 30.0;
    let axis_y = top + bars.len().max(1) as f64 * (bar_h + 14.0) + 6.0;
    let mut svg = Svg::new(WIDTH, axis_y + 100.0);
    heading(
        &mut svg,
        "Memory per parked task, by where the bytes are",
        "RSS + page tables per task, for a thread plus its kernel memory; N tasks parked on \
         one channel",
    );
    let mut lx = 20.0;
    for (name, colour) in PARTS {
        svg.rect(lx, 66.0, 14.0, 14.0, colour);
        svg.text(lx + 20.0, 78.0, 13.0, Anchor::Start, "black", name);
        lx += 36.0 + 6.3 * name.len() as f64;
    }
    let x = |v: f64| PLOT_X + PLOT_W * v / axis_max;
    let mut v = 0.0;
    while v <= axis_max * 1.0001 {
        svg.line((x(v), top - 8.0), (x(v), axis_y), GRID, 1.0);
        svg.text(x(v), axis_y + 16.0, 12.0, Anchor::Middle, MUTED, &kb(v));
        v += step;
    }
    axis_title(&mut svg, axis_y, "bytes per parked task (KB = 1000 B)");
    if bars.is_empty() {
        svg.text(
            PLOT_X,
            top + 20.0,
            13.0,
            Anchor::Start,
            MUTED,
            "nothing was measured",
        );
    }
    let mut y = top;
    for b in &bars {
        svg.rect(12.0, y + 6.0, 6.0, bar_h - 12.0, b.colour);
        svg.text(
            PLOT_X - 10.0,
            y + bar_h / 2.0 + 5.0,
            13.0,
            Anchor::End,
            "black",
            &b.label,
        );
        let mut at = 0.0;
        for (part, (_, colour)) in b.parts.iter().zip(PARTS) {
            svg.rect(x(at), y, x(at + part) - x(at), bar_h, colour);
            at += part;
        }
        svg.text(
            x(at) + 8.0,
            y + bar_h / 2.0 + 5.0,
            13.0,
            Anchor::Start,
            "black",
            &kb(at),
        );
        y += bar_h + 14.0;
    }
    footer(&mut svg, r, axis_y + 62.0);
    svg.finish()
}

/// "4.6 KB" for chart labels.
fn kb(b: f64) -> String {
    if b == 0.0 {
        "0".into()
    } else {
        format!("{:.1} KB", b / 1000.0)
    }
}

/// The 1-2-5 step at or above `raw`.
pub(super) fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes() {
        assert_eq!(decades([3.0, 250.0].into_iter()), (1.0, 1000.0));
        assert_eq!(decades(std::iter::empty()), (1.0, 10.0));
        assert_eq!(nice_step(700.0), 1000.0);
        assert_eq!(nice_step(1500.0), 2000.0);
        assert_eq!(tick(20.0), "20");
        assert_eq!(tick(2000.0), "2 µs");
    }
}
