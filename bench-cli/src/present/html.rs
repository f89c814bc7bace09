//! `index.html`: the whole report as one self-contained page.
//!
//! The page must open anywhere, offline, and show the same thing years
//! later: the charts are inlined as SVG, the style is one `<style>` block,
//! and there are no scripts, web fonts, images or links to anything outside
//! the file. It holds the machine header, every table of `results.md` (the
//! same [`sections`]) and the charts.

use super::report::{sections, Chart};
use super::table::escape;
use crate::command::report::Results;

const STYLE: &str = "\
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; \
color: #222; line-height: 1.4; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 14px; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; }
th { background: #f0f0f0; }
td:first-child { white-space: pre; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: #a33; font-size: 13px; margin: 0.2em 0; }
figure { margin: 1em 0; }
svg { max-width: 100%; height: auto; }
";

/// An SVG document as inline markup: the namespace attribute is implied in
/// HTML, so the page names no URL at all.
fn inline_svg(svg: &str) -> String {
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

/// The page; `memory`, `switch`, `compact` and `net` are the charts' SVG text.
pub fn page(r: &Results, [memory, switch, compact]: [&str; 3], net: Option<&str>) -> String {
    let h = &r.suite.header;
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>spindle-bench results, {}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <h1>spindle-bench results</h1>\n\
         <p>Command: <code>{}</code><br>\nDate: {} UTC<br>\nWall time: {:.1} s</p>\n\
         <h2>Machine</h2>\n<pre>{}</pre>\n",
        escape(&h.date_utc),
        escape(&r.command),
        escape(&h.date_utc),
        r.wall_seconds,
        escape(&h.render())
    );
    for s in sections(r) {
        out.push_str(&format!("<h{l}>{}</h{l}>\n", escape(&s.title), l = s.level));
        if let Some(chart) = s.chart {
            let svg = match chart {
                Chart::Memory => memory,
                Chart::Switch => switch,
                Chart::Net => net.unwrap_or_default(),
                Chart::Compact => compact,
            };
            out.push_str(&format!("<figure>\n{}</figure>\n", inline_svg(svg)));
        }
        for t in &s.text {
            out.push_str(&format!("<p>{}</p>\n", escape(t.trim_end())));
        }
        for t in &s.tables {
            out.push_str(&t.html());
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}
