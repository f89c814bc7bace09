//! `net.svg`: the echo servers side by side, as small multiples.
//!
//! One panel per question, each with its own linear axis from zero (bars
//! are lengths, so they need a zero): memory per idle connection, echo
//! throughput at each K, and p99 round trip at each K. In each panel one
//! bar per server and N, coloured by server as in the other charts
//! (spindle blue, Go green, OS threads red), its value written at its end.

use super::charts::{footer_at, heading, GO, MUTED, SPINDLE, SPINDLE_COMPACT, THREADS};
use super::svg::{Anchor, Svg};
use super::units::{bytes, count, group, ns};
use crate::command::net::{NetReport, Server, ServerRun};

const WIDTH: f64 = 1000.0;
const PLOT_X: f64 = 300.0;
const PLOT_W: f64 = WIDTH - PLOT_X - 150.0;
const BAR_H: f64 = 18.0;

fn colour(s: Server) -> &'static str {
    match s {
        Server::Spindle => SPINDLE,
        Server::SpindleCompact => SPINDLE_COMPACT,
        Server::Go => GO,
        Server::Threads => THREADS,
    }
}

/// One panel: a title and (label, colour, value, shown) bars.
struct Panel {
    title: String,
    bars: Vec<(String, &'static str, f64, String)>,
}

fn panels(r: &NetReport) -> Vec<Panel> {
    let runs: Vec<&ServerRun> = r.runs.iter().filter_map(|x| x.measured()).collect();
    let label = |x: &ServerRun| format!("{}, N = {}", x.server.name(), count(x.count));
    let mut out = vec![Panel {
        title: "memory per idle connection (server RSS + page tables; less is better)".into(),
        bars: runs
            .iter()
            .map(|x| {
                let v = x.idle.per_connection_bytes;
                (label(x), colour(x.server), v, bytes(v))
            })
            .collect(),
    }];
    for k in r.settings_active() {
        let at = |x: &ServerRun| x.echo.iter().find(|e| e.active == k.min(x.count)).cloned();
        out.push(Panel {
            title: format!("echo throughput, K = {} active (more is better)", count(k)),
            bars: runs
                .iter()
                .filter_map(|x| at(x).map(|e| (x, e)))
                .map(|(x, e)| {
                    let v = e.requests_per_second;
                    (
                        label(x),
                        colour(x.server),
                        v,
                        format!("{}/s", group(v as u64)),
                    )
                })
                .collect(),
        });
        out.push(Panel {
            title: format!("round trip p99, K = {} active (less is better)", count(k)),
            bars: runs
                .iter()
                .filter_map(|x| at(x).map(|e| (x, e)))
                .map(|(x, e)| (label(x), colour(x.server), e.p99_ns, ns(e.p99_ns)))
                .collect(),
        });
    }
    out
}

/// The chart, with `footer` lines (date, machine, command) under it.
pub fn chart(r: &NetReport, footer: &[String]) -> String {
    let panels = panels(r);
    let rows: usize = panels.iter().map(|p| p.bars.len().max(1)).sum();
    let height = 80.0 + panels.len() as f64 * 40.0 + rows as f64 * (BAR_H + 6.0) + 50.0;
    let mut svg = Svg::new(WIDTH, height);
    heading(
        &mut svg,
        "Echo server, one task per connection",
        "Each panel has its own linear axis from zero; bars are medians of one run.",
    );
    let mut y = 80.0;
    for p in &panels {
        svg.title(20.0, y + 14.0, 14.0, &p.title);
        y += 26.0;
        let top = p.bars.iter().map(|b| b.2).fold(0.0, f64::max);
        if p.bars.is_empty() {
            svg.text(PLOT_X, y + 13.0, 12.0, Anchor::Start, MUTED, "not measured");
            y += BAR_H + 6.0;
        }
        for (label, fill, v, shown) in &p.bars {
            let w = if top > 0.0 { v / top * PLOT_W } else { 0.0 };
            svg.text(PLOT_X - 8.0, y + 13.0, 12.0, Anchor::End, "black", label);
            svg.rect(PLOT_X, y, w, BAR_H, fill);
            svg.text(
                PLOT_X + w + 6.0,
                y + 13.0,
                12.0,
                Anchor::Start,
                "black",
                shown,
            );
            y += BAR_H + 6.0;
        }
        y += 14.0;
    }
    footer_at(&mut svg, footer, y + 10.0);
    svg.finish()
}
