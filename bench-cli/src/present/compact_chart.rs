//! `compact.svg`: memory per parked coroutine against wake latency (#12).
//!
//! Compaction trades memory for wake latency: a compacted coroutine's stack
//! is copied out to a heap buffer, so it costs fewer bytes while parked and
//! more nanoseconds to wake (the stack is copied back first). The chart
//! shows that trade as two points on linear axes from zero: x is bytes per
//! parked coroutine (RSS + page tables), y the median wake latency of one
//! coroutine (send to the woken coroutine running). Both points come from
//! `report`'s comparison at one N: spindle by default (its `mem` row's
//! bytes; the wake of a parked but not compacted coroutine, measured in the
//! compacted run) and spindle compacted. Go's memory per goroutine at the
//! same N is a vertical reference line: Go's wake latency is not measured.

use super::charts::{footer_at, heading, nice_step, GO, GRID, MUTED, SPINDLE, SPINDLE_COMPACT};
use super::svg::{Anchor, Svg};
use super::units::{bytes, count, ns};
use crate::command::report::Results;
use crate::measure::row::Row;

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 520.0;
const PLOT_X: f64 = 120.0;
const PLOT_W: f64 = WIDTH - PLOT_X - 260.0;
const TOP: f64 = 80.0;
const PLOT_H: f64 = 320.0;

/// What the chart draws: (label, colour, bytes, wake ns) points, Go's
/// bytes per goroutine, and why something is missing.
struct Data {
    points: Vec<(String, &'static str, f64, f64)>,
    go_bytes: Option<f64>,
    missing: Vec<String>,
}

fn data(r: &Results) -> Data {
    let mut d = Data {
        points: Vec::new(),
        go_bytes: None,
        missing: Vec::new(),
    };
    let Some(c) = r.go.as_ref().and_then(|g| g.comparison.as_ref()) else {
        let why = match &r.go_skipped {
            Some(why) => format!("Go skipped: {why}"),
            None => "no N measured by both spindle and Go".into(),
        };
        d.missing
            .push(format!("not measured (the comparison did not run; {why})"));
        return d;
    };
    let s = &c.sides;
    d.go_bytes = Some(s.go_mem.per_goroutine_bytes);
    let n = count(s.spindle_mem.count);
    match &s.spindle_compacted {
        Some(Row::Measured(m)) => match &m.compact {
            Some(f) => {
                d.points.push((
                    format!("spindle, default (N = {n})"),
                    SPINDLE,
                    s.spindle_mem.per_coroutine.total_bytes,
                    f.wake_resident_ns,
                ));
                d.points.push((
                    format!("spindle, compacted (N = {n})"),
                    SPINDLE_COMPACT,
                    m.per_coroutine.total_bytes,
                    f.wake_compacted_ns,
                ));
            }
            None => d.missing.push("compacted row has no wake figures".into()),
        },
        Some(Row::Skipped { skipped, .. }) => {
            d.missing.push(format!("compacted row skipped: {skipped}"))
        }
        None => d.missing.push("compacted row not measured".into()),
    }
    d
}

/// `text` in lines of at most about `width` characters, split at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match out.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => out.push(word.to_string()),
        }
    }
    out
}

/// An axis from zero to a whole number of 1-2-5 steps above `max`.
fn axis(max: f64) -> (f64, f64) {
    let step = nice_step(max.max(1.0) / 5.0);
    (step, (max.max(1.0) / step).ceil() * step)
}

/// The chart, with `footer` lines (date, machine, command) under it.
pub fn chart(r: &Results, footer: &[String]) -> String {
    let d = data(r);
    let mut svg = Svg::new(WIDTH, HEIGHT);
    heading(
        &mut svg,
        "Memory per parked coroutine against wake latency",
        "x: RSS + page tables per parked coroutine; y: median wake latency of one coroutine; \
         further down-left is cheaper",
    );
    let max_x = d
        .points
        .iter()
        .map(|p| p.2)
        .chain(d.go_bytes)
        .fold(1000.0, f64::max);
    let max_y = d.points.iter().map(|p| p.3).fold(100.0, f64::max);
    let ((sx, ax), (sy, ay)) = (axis(max_x * 1.1), axis(max_y * 1.1));
    let x = |v: f64| PLOT_X + PLOT_W * v / ax;
    let y = |v: f64| TOP + PLOT_H - PLOT_H * v / ay;
    let bottom = TOP + PLOT_H;
    let mut v = 0.0;
    while v <= ax * 1.0001 {
        svg.line((x(v), TOP), (x(v), bottom), GRID, 1.0);
        svg.text(x(v), bottom + 16.0, 12.0, Anchor::Middle, MUTED, &bytes(v));
        v += sx;
    }
    let mut v = 0.0;
    while v <= ay * 1.0001 {
        svg.line((PLOT_X, y(v)), (PLOT_X + PLOT_W, y(v)), GRID, 1.0);
        svg.text(PLOT_X - 8.0, y(v) + 4.0, 12.0, Anchor::End, MUTED, &ns(v));
        v += sy;
    }
    svg.text(
        PLOT_X + PLOT_W / 2.0,
        bottom + 36.0,
        13.0,
        Anchor::Middle,
        "black",
        "bytes per parked coroutine / goroutine",
    );
    svg.text(
        20.0,
        TOP - 10.0,
        13.0,
        Anchor::Start,
        "black",
        "wake latency",
    );
    if let Some(g) = d.go_bytes {
        svg.line((x(g), TOP), (x(g), bottom), GO, 2.0);
        svg.text(
            x(g) + 6.0,
            TOP + PLOT_H / 2.0,
            12.0,
            Anchor::Start,
            GO,
            &format!("Go goroutine: {}", bytes(g)),
        );
        svg.text(
            x(g) + 6.0,
            TOP + PLOT_H / 2.0 + 16.0,
            12.0,
            Anchor::Start,
            GO,
            "(Go's wake latency not measured)",
        );
    }
    for (label, colour, b, w) in &d.points {
        svg.circle(x(*b), y(*w), 7.0, colour);
        svg.text(
            x(*b) + 10.0,
            y(*w) - 6.0,
            12.0,
            Anchor::Start,
            "black",
            &format!("{label}: {}, wake {}", bytes(*b), ns(*w)),
        );
    }
    let lines = d.missing.iter().flat_map(|why| wrap(why, 100));
    for (i, why) in lines.enumerate() {
        svg.text(
            PLOT_X + 10.0,
            TOP + 20.0 + 16.0 * i as f64,
            12.0,
            Anchor::Start,
            MUTED,
            &why,
        );
    }
    footer_at(&mut svg, footer, bottom + 70.0);
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_spaces() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("long", 2), ["long"]);
        assert_eq!(axis(950.0), (200.0, 1000.0));
    }
}
