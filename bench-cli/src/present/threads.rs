//! Presenting the OS-thread baseline: bytes per parked thread, by source.

use crate::command::threads::{ThreadsResult, ThreadsRow};
use crate::measure::row::measured;
use crate::present::table::Table;
use crate::present::units::{self, bytes, bytes_kb, count, ns};
use crate::present::Render;

/// What the columns mean.
pub fn caption(results: &[ThreadsResult]) -> String {
    let stack = match results.first().and_then(|r| r.stack_size) {
        Some(s) => units::binary(s as u64),
        None => "std default, 2 MiB".into(),
    };
    format!(
        "threads: N OS threads parked in recv on one channel (stack {stack}); bytes per \
         thread. KernelStack and SUnreclaim are system-wide deltas\n"
    )
}

pub fn table(results: &[ThreadsResult]) -> Table {
    let mut t = Table::new(&[
        "N",
        "TOTAL/thread",
        "RSS",
        "page tables",
        "kernel stack",
        "unreclaimable slab",
        "start",
        "release+join",
    ]);
    for r in results {
        let p = &r.per_thread;
        t.row(vec![
            count(r.count),
            bytes_kb(p.total_bytes),
            bytes(p.rss_bytes),
            bytes(p.pte_bytes),
            bytes(p.kernel_stack_bytes),
            bytes(p.slab_unreclaimable_bytes),
            ns(r.spawn_ns_per_thread),
            ns(r.release_join_ns_total),
        ]);
    }
    t
}

/// The human table for one or more runs.
pub fn render(results: &[ThreadsResult]) -> String {
    caption(results) + &table(results).render()
}

impl Render for Vec<ThreadsResult> {
    fn render(&self) -> String {
        render(self)
    }
}

/// The caption and table of a series that may have skipped rows.
pub fn series(rows: &[ThreadsRow]) -> (String, Table) {
    let results: Vec<ThreadsResult> = measured(rows).cloned().collect();
    let mut t = table(&results);
    for r in rows {
        if let ThreadsRow::Skipped { what, skipped } = r {
            t.skipped(what.to_string(), skipped);
        }
    }
    (caption(&results), t)
}
