//! Presenting `grow`: the stack's resident pages, depth by depth.

use crate::command::grow::GrowResult;
use crate::command::overflow::OverflowResult;
use crate::present::table::Table;
use crate::present::units::{binary, group, ns};
use crate::present::Render;

pub fn render(r: &GrowResult) -> String {
    let mut out = format!(
        "grow: one coroutine recursing with {} B frames (stack_max {}, page {}, start window {})\n",
        r.frame_bytes,
        binary(r.stack_max as u64),
        binary(r.page_size as u64),
        binary(r.start_window as u64)
    );
    out.push_str(&format!(
        "  resident when the coroutine started: {}\n",
        binary(r.resident_at_start_bytes as u64)
    ));
    let mut t = Table::new(&[
        "depth",
        "stack used",
        "resident (mincore)",
        "pages",
        "elapsed",
    ]);
    for c in &r.checkpoints {
        t.row(vec![
            group(c.depth),
            binary(c.stack_used_bytes as u64),
            binary(c.resident_bytes as u64),
            (c.resident_bytes / r.page_size).to_string(),
            ns(c.elapsed_ns),
        ]);
    }
    out.push_str(&t.render());
    if let Some(why) = &r.stopped_early {
        out.push_str(&format!("  {why}\n"));
    }
    let right_after = binary(r.resident_right_after_join_bytes as u64);
    let after = binary(r.resident_after_return_bytes as u64);
    if r.resident_right_after_join_bytes <= r.start_window {
        out.push_str(&format!(
            "  right after join: {right_after} resident: deep pages already released \
             with MADV_DONTNEED below the top page\n"
        ));
    } else {
        out.push_str(&format!(
            "  right after join: {right_after} resident (the finished stack waits on its \
             worker's list: deep pages are released in batches, one system call for many)\n"
        ));
        out.push_str(&format!(
            "  {} later, once the worker went idle: {after} resident (released with \
             MADV_DONTNEED below the top page)\n",
            ns(r.shrink_after_ns)
        ));
    }
    out.push_str(&format!(
        "  the next coroutine {} and starts with {} resident\n",
        if r.next_coroutine_same_slot {
            "reuses the same slot"
        } else {
            "got another slot"
        },
        binary(r.next_coroutine_resident_bytes as u64)
    ));
    if r.parked_before_shrink_bytes > 0 {
        out.push_str(&format!(
            "  a coroutine that went as deep and then parked: {} resident ({}) when it \
             parked, {} ({}) {} later, after its worker's shrink pass released the \
             pages below its stack pointer\n",
            binary(r.parked_before_shrink_bytes as u64),
            pages(r.parked_before_shrink_bytes / r.page_size),
            binary(r.parked_after_shrink_bytes as u64),
            pages(r.parked_after_shrink_bytes / r.page_size),
            ns(r.parked_shrink_after_ns)
        ));
    }
    out
}

fn pages(n: usize) -> String {
    if n == 1 {
        "1 page".into()
    } else {
        format!("{n} pages")
    }
}

/// One or more `grow` runs.
impl Render for Vec<GrowResult> {
    fn render(&self) -> String {
        let text: Vec<String> = self.iter().map(render).collect();
        text.join("\n")
    }
}

impl Render for OverflowResult {
    fn render(&self) -> String {
        overflow(self)
    }
}

/// `grow --overflow`: what the child said and how it died.
pub fn overflow(r: &OverflowResult) -> String {
    let mut out = format!(
        "grow --overflow: a child process recursed without bound in coroutine \
         \"overflow-demo\" (stack_max {})\n",
        binary(r.stack_max as u64)
    );
    out.push_str(&format!(
        "  child stderr: {}\n",
        r.report_line
            .as_deref()
            .unwrap_or("(no overflow report line)")
    ));
    let status = match (&r.signal_name, r.exit_code) {
        (Some(name), _) => format!("killed by {name}"),
        (None, Some(code)) => format!("exited with code {code}"),
        _ => "unknown".into(),
    };
    out.push_str(&format!(
        "  child status: {status} ({})\n",
        if r.expected {
            "as expected: reported, then aborted"
        } else {
            "NOT the expected report and SIGABRT"
        }
    ));
    out
}
