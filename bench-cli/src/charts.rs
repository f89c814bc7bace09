//! SVG charts for `report`, drawn with plotters' SVG backend.
//!
//! * `mem_per_unit.svg`: bytes per parked task against N, for spindle
//!   coroutines, Go goroutines and OS threads, on log-log axes (N spans
//!   three decades, and a thread costs ten times a coroutine).
//! * `switch_cost.svg`: ns per one-way hand-off for every kind of switch, as
//!   horizontal bars on a log axis: a raw coroutine switch and a pipe
//!   round trip between CPUs differ by two orders of magnitude.
//!
//! Text is written as SVG `<text>` elements (no font files are needed); the
//! browser or document viewer renders it.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::mem::MemRow;
use crate::report::{GoMemRow, Results, ThreadsRow};
use crate::units::count;

const SPINDLE: RGBColor = RGBColor(31, 119, 180);
const GO: RGBColor = RGBColor(0, 150, 136);
const THREADS: RGBColor = RGBColor(214, 39, 40);

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing a chart: {e}")
}

fn canvas(
    svg: &mut String,
    size: (u32, u32),
) -> Result<DrawingArea<SVGBackend<'_>, Shift>, String> {
    let root = SVGBackend::with_string(svg, size).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    Ok(root)
}

/// Bytes per parked task against N.
pub fn memory(r: &Results) -> Result<String, String> {
    let spindle: Vec<(f64, f64)> = r
        .mem
        .iter()
        .filter_map(|m| match m {
            MemRow::Measured(m) => Some((m.count as f64, m.per_coroutine.total_bytes)),
            MemRow::Skipped { .. } => None,
        })
        .collect();
    let go: Vec<(f64, f64)> =
        r.go.iter()
            .flat_map(|g| g.mem.iter())
            .filter_map(|m| match m {
                GoMemRow::Measured(m) => Some((m.count as f64, m.per_goroutine_bytes)),
                GoMemRow::Skipped { .. } => None,
            })
            .collect();
    let threads: Vec<(f64, f64)> = r
        .threads
        .iter()
        .filter_map(|t| match t {
            ThreadsRow::Measured(t) => Some((t.count as f64, t.per_thread.total_bytes)),
            ThreadsRow::Skipped { .. } => None,
        })
        .collect();
    let series = [
        ("spindle coroutine", SPINDLE, spindle),
        ("Go goroutine", GO, go),
        ("OS thread", THREADS, threads),
    ];
    // Log axes need positive values; a negative delta (noise at small N) is left out.
    let points = || series.iter().flat_map(|s| s.2.iter()).filter(|p| p.1 > 0.0);
    let (x_lo, x_hi) = bounds(points().map(|p| p.0));
    let (y_lo, y_hi) = decades(points().map(|p| p.1));

    let mut svg = String::new();
    {
        let root = canvas(&mut svg, (900, 540))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Memory per parked task (RSS + page tables, + kernel for threads)",
                ("sans-serif", 20),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("N parked tasks")
            .y_desc("bytes per task (log scale)")
            .light_line_style(RGBColor(240, 240, 240))
            .x_label_formatter(&|x| count(x.round() as u64))
            .y_labels(12)
            .y_label_formatter(&|y| {
                if *y >= 1000.0 {
                    format!("{:.0} KB", y / 1000.0)
                } else {
                    format!("{y:.0} B")
                }
            })
            .draw()
            .map_err(err)?;
        for (name, color, pts) in &series {
            let pts: Vec<(f64, f64)> = pts.iter().copied().filter(|p| p.1 > 0.0).collect();
            if pts.is_empty() {
                continue;
            }
            let color = *color;
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            let font = TextStyle::from(("sans-serif", 13).into_font()).color(&color);
            chart
                .draw_series(pts.iter().map(|&(x, y)| {
                    EmptyElement::at((x, y))
                        + Circle::new((0, 0), 4, color.filled())
                        + Text::new(format!("{:.2} KB", y / 1000.0), (8, -16), font.clone())
                }))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A log-axis range around the values: half the smallest to twice the largest.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo.is_finite() && hi > 0.0 {
        (lo / 2.0, hi * 2.0)
    } else {
        (1.0, 10.0)
    }
}

/// A log-axis range of whole decades around the values (1 KB .. 100 KB),
/// so that the axis gets labels at round numbers.
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = bounds(values);
    let (lo, hi) = (lo * 2.0, hi / 2.0); // undo the margin of `bounds`
    (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil()).max(lo * 10.0),
    )
}

/// ns per one-way hand-off, by kind.
pub fn switch(r: &Results) -> Result<String, String> {
    let mut bars: Vec<(String, f64, RGBColor)> = Vec::new();
    for row in &r.switch.rows {
        if let Some(v) = row.median() {
            let color = if row.name.starts_with("thread") {
                THREADS
            } else {
                SPINDLE
            };
            bars.push((row.label.clone(), v, color));
        }
    }
    if let Some(g) = &r.go {
        for row in &g.switch.rows {
            let label = match row.name.as_str() {
                "chan_pingpong_procs1" => "Go: channel ping-pong, GOMAXPROCS=1",
                "chan_pingpong_procs2" => "Go: channel ping-pong, GOMAXPROCS=2",
                "gosched_procs1" => "Go: runtime.Gosched, GOMAXPROCS=1",
                other => other,
            };
            bars.push((label.to_string(), row.summary.median_ns, GO));
        }
    }
    bars.retain(|b| b.1 > 0.0);
    let k = bars.len().max(1) as i32;
    let (lo, hi) = bounds(bars.iter().map(|b| b.1));
    let (lo, hi) = (lo.min(1.0), hi * 2.0);

    let mut svg = String::new();
    {
        let root = canvas(&mut svg, (1000, 80 + 40 * k as u32))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Switch cost: ns per one-way hand-off (log scale)",
                ("sans-serif", 20),
            )
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(330)
            .build_cartesian_2d((lo..hi).log_scale(), (0..k - 1).into_segmented())
            .map_err(err)?;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        let label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => usize::try_from(k - 1 - i)
                .ok()
                .and_then(|i| names.get(i).cloned())
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(TRANSPARENT)
            .x_desc("ns per one-way hand-off")
            .x_label_formatter(&|x| format!("{x}"))
            .y_label_formatter(&label)
            .y_labels(k as usize)
            .draw()
            .map_err(err)?;
        let font =
            TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        for (i, (_, v, color)) in bars.iter().enumerate() {
            let y = k - 1 - i as i32;
            let mut bar = Rectangle::new(
                [
                    (lo, SegmentValue::Exact(y)),
                    (*v, SegmentValue::Exact(y + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            chart.draw_series(std::iter::once(bar)).map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!(" {}", crate::units::ns(*v)),
                    (*v, SegmentValue::CenterOf(y)),
                    font.clone(),
                )))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}
