//! Presenting `net`: one table per N, a column per server, and a last
//! column that says which of spindle and Go did better on each line (and
//! by how much), Go wins included.

use crate::command::net::{Echo, NetReport, NetSection, NetSettings, Server, ServerRun};
use crate::measure::row::Row;
use crate::present::table::Table;
use crate::present::units::{bytes, count, group, ns};
use crate::present::Render;

/// Which way a line is better.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Lower,
    Higher,
    /// Not a contest (the kernel's share, CPU seconds).
    Neither,
}

/// Reads one figure from a server's run, if it has it.
type Getter<'a> = Box<dyn Fn(&ServerRun) -> Option<f64> + 'a>;

/// One line of a table: label, how to show a value, which way is better,
/// and how to read it from a server's run.
struct Metric<'a> {
    label: String,
    show: fn(f64) -> String,
    better: Better,
    get: Getter<'a>,
}

fn per_second(v: f64) -> String {
    format!("{}/s", group(v.round() as u64))
}

/// "spindle (1.52×)" or "Go wins (1.20×)", from spindle's and Go's values.
pub fn verdict(spindle: f64, go: f64, lower_is_better: bool) -> String {
    if spindle <= 0.0 || go <= 0.0 {
        return "-".into();
    }
    let spindle_better = if lower_is_better {
        spindle < go
    } else {
        spindle > go
    };
    let r = if spindle > go {
        spindle / go
    } else {
        go / spindle
    };
    if (r - 1.0).abs() < 1e-9 {
        "even".into()
    } else if spindle_better {
        format!("spindle ({r:.2}×)")
    } else {
        format!("Go wins ({r:.2}×)")
    }
}

fn echo_at(r: &ServerRun, k: u64) -> Option<&Echo> {
    r.echo.iter().find(|e| e.active == k.min(r.count))
}

fn metrics<'a>(ks: &'a [u64]) -> Vec<Metric<'a>> {
    let m = |label: &str, show: fn(f64) -> String, better, get: Getter<'a>| Metric {
        label: label.into(),
        show,
        better,
        get,
    };
    let mut v = vec![
        m(
            "memory per idle connection (server RSS + page tables)",
            bytes,
            Better::Lower,
            Box::new(|r| Some(r.idle.per_connection_bytes)),
        ),
        m(
            "  of which page tables",
            bytes,
            Better::Neither,
            Box::new(|r| Some(r.idle.pte_per_connection_bytes)),
        ),
        m(
            "  stacks: spindle resident pages, Go StackInuse",
            bytes,
            Better::Neither,
            Box::new(|r| r.idle.stack_per_connection_bytes),
        ),
        m(
            "  heap: spindle counted allocations, Go HeapAlloc",
            bytes,
            Better::Neither,
            Box::new(|r| r.idle.heap_per_connection_bytes),
        ),
        m(
            "kernel per connection, both ends (socket slabs + TCP pages, system-wide)",
            bytes,
            Better::Neither,
            Box::new(|r| r.idle.kernel.per_connection_bytes),
        ),
        m(
            "  of which TCP buffer pages (sockstat mem)",
            bytes,
            Better::Neither,
            Box::new(|r| Some(r.idle.kernel.tcp_mem_delta_bytes as f64 / r.count as f64)),
        ),
        m(
            "connection set-up (connect + first echo)",
            per_second,
            Better::Higher,
            Box::new(|r| Some(r.setup.connections_per_second)),
        ),
    ];
    for &k in ks {
        let kk = count(k);
        v.push(Metric {
            label: format!("echo, K = {kk} active: throughput"),
            show: per_second,
            better: Better::Higher,
            get: Box::new(move |r| echo_at(r, k).map(|e| e.requests_per_second)),
        });
        v.push(Metric {
            label: "  round trip p50".into(),
            show: ns,
            better: Better::Lower,
            get: Box::new(move |r| echo_at(r, k).map(|e| e.p50_ns)),
        });
        v.push(Metric {
            label: "  round trip p99".into(),
            show: ns,
            better: Better::Lower,
            get: Box::new(move |r| echo_at(r, k).map(|e| e.p99_ns)),
        });
        // CPU time per round trip: what the machine paid, whoever else was
        // running (wall-clock rates on a shared machine are not).
        let per_trip = |cpu: f64, e: &Echo| cpu * 1e9 / e.round_trips.max(1) as f64;
        v.push(Metric {
            label: "  server CPU per round trip".into(),
            show: ns,
            better: Better::Lower,
            get: Box::new(move |r| echo_at(r, k).map(|e| per_trip(e.server_cpu_seconds, e))),
        });
        v.push(Metric {
            label: "  client CPU per round trip (same client for all)".into(),
            show: ns,
            better: Better::Neither,
            get: Box::new(move |r| echo_at(r, k).map(|e| per_trip(e.client_cpu_seconds, e))),
        });
    }
    v
}

/// A server's column header: the compacted spindle server says after what.
pub fn server_name(r: &NetReport, s: Server) -> String {
    match (s, r.settings.compact_after_ns) {
        (Server::SpindleCompact, Some(ns)) => {
            format!("spindle, compact_after({})", self::ns(ns as f64))
        }
        _ => s.name().to_string(),
    }
}

/// The table for one N.
pub fn table(r: &NetReport, n: u64) -> Table {
    let runs: Vec<(Server, Option<&ServerRun>)> =
        r.servers.iter().map(|&s| (s, r.get(s, n))).collect();
    let has = |s| r.servers.contains(&s);
    // A verdict column for each spindle server beside Go.
    let verdicts: Vec<Server> = [Server::Spindle, Server::SpindleCompact]
        .into_iter()
        .filter(|&s| has(s) && has(Server::Go))
        .collect();
    let mut headers = vec![format!("N = {}", count(n))];
    headers.extend(runs.iter().map(|(s, _)| server_name(r, *s)));
    for &s in &verdicts {
        headers.push(match s {
            Server::SpindleCompact => "better (compacted vs Go)".into(),
            _ => "better".into(),
        });
    }
    let mut t = Table::new(&headers);
    for i in 0..verdicts.len() {
        t.text_column(headers.len() - 1 - i);
    }
    let ks = r.settings_active();
    for m in metrics(&ks) {
        let mut cells = vec![m.label.clone()];
        for (_, run) in &runs {
            let v = run.and_then(|x| (m.get)(x));
            let mut cell = v.map_or("-".into(), m.show);
            let capped = m.label.contains("throughput")
                && run.is_some_and(|x| x.echo.iter().any(|e| e.capped));
            if capped {
                cell.push_str(" (capped)");
            }
            cells.push(cell);
        }
        for &spindle in &verdicts {
            let get = |s| r.get(s, n).and_then(|x| (m.get)(x));
            cells.push(match (m.better, get(spindle), get(Server::Go)) {
                (Better::Neither, _, _) | (_, None, _) | (_, _, None) => String::new(),
                (b, Some(s), Some(g)) => verdict(s, g, b == Better::Lower),
            });
        }
        t.row(cells);
    }
    let mut extra = vec!["listen backlog (kernel) / accept-queue drops".to_string()];
    for (_, run) in &runs {
        extra.push(run.map_or("-".into(), |x| {
            let opt = |v: Option<u64>| v.map_or("?".into(), group);
            format!(
                "{} / {}",
                opt(x.setup.listen_backlog),
                opt(x.setup.listen_drops)
            )
        }));
    }
    t.row(extra);
    if has(Server::SpindleCompact) {
        let mut c = vec!["stacks compacted when memory was read / after (ms)".to_string()];
        for (_, run) in &runs {
            c.push(run.map_or("-".into(), |x| {
                match (x.idle.compacted, x.idle.compact_wait_ms) {
                    (Some(k), Some(ms)) => format!("{} / {}", group(k), group(ms)),
                    _ => "-".into(),
                }
            }));
        }
        t.row(c);
    }
    for row in r.runs.iter().filter(|x| x.at().count == n) {
        if let Row::Skipped { what, skipped } = row {
            t.skipped(what.to_string(), skipped);
        }
    }
    t
}

impl NetReport {
    /// The K values of the echo passes, as measured.
    pub fn settings_active(&self) -> Vec<u64> {
        let mut ks: Vec<u64> = self
            .runs
            .iter()
            .filter_map(Row::measured)
            .flat_map(|r| r.echo.iter().map(|e| e.active))
            .collect();
        ks.sort_unstable();
        ks.dedup();
        ks
    }
}

/// What the tables measure and how, in one paragraph.
pub fn caption(r: &NetReport) -> String {
    let s = &r.settings;
    let l = &s.limits;
    format!(
        "Echo server, one task per connection, each reading lines through a {} B buffer \
         (Go: bufio.Reader) and writing them back; server in a child process with {} \
         workers (Go: GOMAXPROCS={}); the client is spindle-bench itself, {} threads with \
         epoll, bound to one more source address (127.0.0.2, ...) every {} connections. Each echo pass: {} round trips of \
         {}-byte lines spread over K connections, after a warm-up of a tenth; the rest of the \
         N stay idle. Time cap {} s per phase. RLIMIT_NOFILE {}/{}, somaxconn {}. Memory per \
         connection: (server RSS + page tables with N idle connections - before any) / N. \
         Kernel figures are system-wide (other processes add noise) and count both ends. \
         Wall-clock figures on a shared machine are noisy; CPU time per round trip (user + \
         system, from /proc/<pid>/stat in clock ticks) is steadier, and the client's shows \
         what driving the server cost.",
        s.buffer_bytes,
        s.workers,
        s.workers,
        s.client_threads,
        group(l.ports_per_source),
        group(s.round_trips),
        s.message_bytes,
        s.time_cap_seconds,
        l.nofile_soft,
        l.nofile_hard,
        l.somaxconn.map_or("?".into(), group),
    ) + &caption_spindle(s)
}

/// The spindle servers' settings beyond the defaults, for the caption.
fn caption_spindle(s: &NetSettings) -> String {
    let mut out = format!(
        " spindle server: the default runtime, which compacts a coroutine idle on a socket for {} (compact_idle_sockets; on x86_64 with guard regions only); its memory is read once that is done, as Go's is read after a GC, which shrinks idle goroutines' stacks.",
        self::ns(spindle::DEFAULT_SOCKET_COMPACT_AFTER.as_nanos() as f64)
    );
    if let Some(b) = s.stack_max {
        out.push_str(&format!(" spindle stack_max {}.", bytes(b as f64)));
    }
    if let Some(ns) = s.compact_after_ns {
        out.push_str(&format!(
            " Compacted server: compact_after({}), every park; its memory is read once its stacks are compacted (N of them, or the count steady for 0.5 s).",
            self::ns(ns as f64)
        ));
    }
    out
}

/// `net` inside `compare`: the tables, or why it was skipped.
pub fn section_text(s: &NetSection) -> String {
    match s {
        Row::Measured(r) => render(r),
        Row::Skipped { skipped, .. } => format!("net: skipped: {skipped}\n"),
    }
}

/// The report's section on `net`: caption and one table per N.
pub fn section_parts(s: &NetSection) -> (Vec<String>, Vec<Table>) {
    match s {
        Row::Measured(r) => {
            let mut text = vec![caption(r)];
            if let Some(v) = &r.go_version {
                text.push(format!("Go: {v}."));
            }
            (text, r.counts.iter().map(|&n| table(r, n)).collect())
        }
        Row::Skipped { skipped, .. } => (vec![format!("skipped: {skipped}")], Vec::new()),
    }
}

pub fn render(r: &NetReport) -> String {
    let mut out = format!("net: {}\n", caption(r));
    if let Some(v) = &r.go_version {
        out.push_str(&format!("Go: {v}\n"));
    }
    for &n in &r.counts {
        out.push('\n');
        out.push_str(&table(r, n).render());
    }
    out
}

impl Render for NetReport {
    fn render(&self) -> String {
        render(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_name_the_better_side() {
        assert_eq!(verdict(100.0, 200.0, true), "spindle (2.00×)");
        assert_eq!(verdict(100.0, 200.0, false), "Go wins (2.00×)");
        assert_eq!(verdict(300.0, 100.0, false), "spindle (3.00×)");
        assert_eq!(verdict(0.0, 1.0, true), "-");
    }
}
