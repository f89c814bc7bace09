//! Presenting `mem` results: the breakdown table and "how many fit".
//!
//! One run gets a vertical breakdown (what each byte per coroutine is), a
//! series of runs at several N gets one line per N, so a reader can see the
//! per-coroutine cost settle as fixed costs are spread over more coroutines.
//! Both end with the seeds' capacity table computed from the measured total.

use crate::command::mem::{MemResult, MemRow};
use crate::measure::breakdown::{Phase, Snapshot};
use crate::measure::row::{measured, Row};
use crate::measure::stats::median_of;
use crate::present::table::Table;
use crate::present::units::{binary, bytes, bytes_kb, count, group, ns};
use crate::present::Render;

/// One run: the breakdown; several: one line each and the median.
impl Render for Vec<MemRow> {
    fn render(&self) -> String {
        match &self[..] {
            [Row::Measured(r)] => single(r),
            _ => repeated(self),
        }
    }
}

/// The detailed breakdown of one run.
pub fn single(r: &MemResult) -> String {
    let p = &r.per_coroutine;
    let mut out = format!(
        "mem: {} coroutines parked in recv on {} ({} workers, stack_max {}, {})\n",
        count(r.count),
        if r.channel == "shared" {
            "one shared rendezvous channel"
        } else {
            "one rendezvous channel each"
        },
        r.workers,
        binary(r.stack_max as u64),
        r.guard_mode
    );
    let mut t = Table::new(&["per coroutine", "bytes", "how it is measured"]);
    t.text_column(2);
    t.row(vec![
        "RSS delta".into(),
        bytes_kb(p.rss_bytes),
        "/proc/self/statm, after - before".into(),
    ]);
    t.row(vec![
        "page tables".into(),
        bytes_kb(p.pte_bytes),
        "VmPTE delta, /proc/self/status".into(),
    ]);
    t.row(vec![
        "TOTAL".into(),
        bytes_kb(p.total_bytes),
        "RSS + page tables".into(),
    ]);
    t.row(vec![
        "  in RSS: stack pages".into(),
        bytes(p.stack_resident_bytes),
        "mincore over all stack slots".into(),
    ]);
    t.row(vec![
        "  in RSS: runtime heap".into(),
        bytes(p.heap_bytes),
        format!(
            "counting allocator, {:.2} blocks (task, channel)",
            p.heap_blocks
        ),
    ]);
    if let Some(c) = &r.compact {
        t.row(vec![
            "    of which compacted stacks".into(),
            bytes(c.buffer_bytes as f64 / r.count as f64),
            format!(
                "{} of {} stacks compacted after {} parked (one tag per word)",
                count(c.compacted),
                count(r.count),
                ns(c.after_ns as f64)
            ),
        ]);
    }
    out.push_str(&t.render());
    if let Some(c) = &r.compact {
        out.push_str(&format!(
            "  compaction: measured 1 s after the last park; wake latency of one coroutine: {} compacted, {} not (median of 21); {} locals wrong after waking\n",
            ns(c.wake_compacted_ns),
            ns(c.wake_resident_ns),
            c.local_check_failures
        ));
        if let (Some(total), Some(ms)) = (c.settled_total_bytes, c.settled_after_ms) {
            out.push_str(&format!(
                "  not all compacted 1 s after the last park: {} per coroutine (RSS + page tables) once they were, {} after the last park\n",
                bytes_kb(total),
                ns(ms * 1e6)
            ));
        }
    }
    out.push_str(&format!(
        "  spawn until all started: {} per coroutine; release and join all: {} ({} each)\n",
        ns(r.spawn_ns_per_coroutine),
        ns(r.release_join_ns_total),
        ns(r.release_join_ns_per_coroutine)
    ));
    if let Some(phases) = &r.breakdown {
        out.push_str(&breakdown(phases, r.count));
    }
    out.push_str(&fits(r));
    out
}

/// `--breakdown`: memory by kind at the baseline (absolute), and at each
/// later phase the change since the baseline, per coroutine.
pub fn breakdown(phases: &[Phase], n: u64) -> String {
    let Some((base, later)) = phases.split_first() else {
        return String::new();
    };
    let mut head = vec!["memory by kind".to_string(), "baseline".to_string()];
    head.extend(later.iter().map(|p| format!("{}: +/coroutine", p.name)));
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut t = Table::new(&head);
    let rows = base.at.rows();
    for (i, (label, b)) in rows.iter().enumerate() {
        let mut row = vec![label.to_string()];
        let is_count = label.ends_with("(count)");
        row.push(if is_count { group(*b) } else { binary(*b) });
        for p in later {
            let delta = (p.at.rows()[i].1 as f64 - *b as f64) / n as f64;
            row.push(if is_count {
                format!("{delta:+.4}")
            } else {
                format!("{delta:+.1} B")
            });
        }
        t.row(row);
    }
    let rss = |s: &Snapshot| s.stack_slots + s.slot_labels + s.brk_heap + s.other_anon + s.file;
    let mut row = vec![
        "RSS (sum of the five above)".to_string(),
        binary(rss(&base.at)),
    ];
    for p in later {
        row.push(format!(
            "{:+.1} B",
            (rss(&p.at) as f64 - rss(&base.at) as f64) / n as f64
        ));
    }
    t.row(row);
    format!(
        "where the memory is (--breakdown; /proc/self/smaps, mincore over the stack slabs, VmPTE, mallinfo2):\n{}",
        t.render()
    )
}

/// The per-N table.
pub fn series_table(rows: &[MemRow]) -> Table {
    let mut t = Table::new(&[
        "N",
        "TOTAL/coroutine",
        "RSS",
        "page tables",
        "stack pages",
        "heap",
        "spawn",
        "release+join",
    ]);
    for row in rows {
        match row {
            Row::Measured(r) => {
                let p = &r.per_coroutine;
                t.row(vec![
                    count(r.count),
                    bytes_kb(p.total_bytes),
                    bytes(p.rss_bytes),
                    bytes(p.pte_bytes),
                    bytes(p.stack_resident_bytes),
                    bytes(p.heap_bytes),
                    ns(r.spawn_ns_per_coroutine),
                    ns(r.release_join_ns_total),
                ]);
            }
            Row::Skipped { what, skipped } => {
                t.skipped(what.to_string(), skipped);
            }
        }
    }
    t
}

/// The largest N that was measured.
pub fn largest(rows: &[MemRow]) -> Option<&MemResult> {
    measured(rows).next_back()
}

/// What the columns mean.
pub fn series_caption(rows: &[MemRow]) -> String {
    match largest(rows) {
        Some(r) => format!(
            "mem: N coroutines parked in recv on one rendezvous channel ({} workers, \
             stack_max {}); bytes per coroutine, TOTAL = RSS + page tables (stack pages \
             and heap are inside RSS); spawn is per coroutine, release+join for all N\n",
            r.workers,
            binary(r.stack_max as u64)
        ),
        None => "mem: no row could be measured\n".into(),
    }
}

/// One line per N, then the capacity table of the largest N measured.
pub fn series(rows: &[MemRow]) -> String {
    let mut out = series_caption(rows);
    out.push_str(&series_table(rows).render());
    if let Some(r) = largest(rows) {
        out.push_str(&fits(r));
    }
    out
}

/// R runs at the same N: one line each, then the median total.
pub fn repeated(rows: &[MemRow]) -> String {
    let totals: Vec<f64> = measured(rows)
        .map(|r| r.per_coroutine.total_bytes)
        .collect();
    format!(
        "{}median TOTAL over {} runs (each in a fresh process): {}\n",
        series(rows),
        totals.len(),
        bytes_kb(median_of(&totals))
    )
}

/// The reused-slot row: one line saying what it is and what it costs.
pub fn reused(row: &MemRow) -> String {
    match row {
        Row::Measured(r) => format!(
            "mem, reused slots: {} coroutines parked in slots first used by a round of {} \
             coroutines that touched {} of stack each: {} per coroutine (stack pages {}, \
             page tables {}, heap {})\n",
            count(r.count),
            count(r.count),
            binary(r.warmup_touch_bytes as u64),
            bytes_kb(r.per_coroutine.total_bytes),
            bytes(r.per_coroutine.stack_resident_bytes),
            bytes(r.per_coroutine.pte_bytes),
            bytes(r.per_coroutine.heap_bytes),
        ),
        Row::Skipped { what, skipped } => {
            format!("mem, reused slots at {what}: skipped: {skipped}\n")
        }
    }
}

/// The capacity caption for one run.
pub fn fits_caption(r: &MemResult) -> String {
    format!(
        "how many parked coroutines fit, at the {} measured at N = {}:\n",
        bytes_kb(r.per_coroutine.total_bytes),
        count(r.count)
    )
}

/// "How many fit in 1 / 8 / 128 GiB", from the measured total.
pub fn fits_table(r: &MemResult) -> Table {
    let mut t = Table::new(&["memory", "coroutines"]);
    for f in &r.fits {
        t.row(vec![format!("{} GiB", f.memory_gib), group(f.tasks)]);
    }
    t
}

/// Caption and capacity table.
pub fn fits(r: &MemResult) -> String {
    fits_caption(r) + &fits_table(r).render()
}
