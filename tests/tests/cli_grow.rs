//! `grow`, `grow --overflow` and `threads`, end to end.

mod cli_common;

use cli_common::{num, run, run_json, stderr, stdout};

#[test]
fn overflow_in_a_child_is_reported_and_aborts() {
    let out = run(&["grow", "--overflow"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("spindle: coroutine #"), "{text}");
    assert!(
        text.contains("(overflow-demo) overflowed its 256 KiB stack"),
        "{text}"
    );
    assert!(text.contains("SIGABRT"), "{text}");
    assert!(!text.contains("panicked") && !stderr(&out).contains("panicked"));

    let v = run_json(&["grow", "--overflow", "--stack-max", "64K", "--json"]);
    let o = &v["overflow"];
    assert_eq!(o["expected"], true, "{o}");
    assert_eq!(o["signal_name"], "SIGABRT", "{o}");
    assert!(o["report_line"]
        .as_str()
        .is_some_and(|l| l.contains("overflowed its 64 KiB stack")));
}

#[test]
fn grow_shows_pages_growing_and_shrinking() {
    let v = run_json(&["grow", "--json"]);
    let g = &v["grow"][0];
    let page = num(g, "page_size");
    let checkpoints = g["checkpoints"].as_array().expect("checkpoints");
    assert!(checkpoints.len() >= 5, "{g}");
    let first = num(&checkpoints[0], "resident_bytes");
    let last = num(checkpoints.last().unwrap(), "resident_bytes");
    let used = num(checkpoints.last().unwrap(), "stack_used_bytes");
    // Default depth uses about 3/4 of the 256 KiB slot, all of it resident.
    assert!(used >= 150.0 * 1024.0, "{g}");
    assert!(last >= used - page, "{g}");
    assert!(first < last);
    // Back in the pool, only the start window (8 KiB or one page) stays.
    let start_window = num(g, "start_window");
    assert!(num(g, "resident_after_return_bytes") <= start_window, "{g}");
    assert!(
        num(g, "next_coroutine_resident_bytes") <= start_window,
        "{g}"
    );
    // A coroutine as deep that parks instead is shrunk to two pages.
    assert!(num(g, "parked_before_shrink_bytes") >= used - page, "{g}");
    assert!(num(g, "parked_after_shrink_bytes") <= 2.0 * page, "{g}");
}

#[test]
fn grow_with_a_depth_too_deep_stops_before_the_guard() {
    let out = run(&["grow", "--depth", "1e6", "--stack-max", "64K"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("stopped at depth"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn threads_baseline_at_100() {
    let v = run_json(&["threads", "--count", "100", "--json"]);
    let t = &v["threads"][0];
    assert_eq!(num(t, "count"), 100.0);
    let p = &t["per_thread"];
    // Whatever the noise in the system-wide counters, each thread costs
    // at least one resident stack page in this process.
    assert!(num(p, "rss_bytes") > 0.0, "{t}");
    for key in [
        "pte_bytes",
        "kernel_stack_bytes",
        "slab_unreclaimable_bytes",
        "total_bytes",
    ] {
        num(p, key);
    }
    assert!(num(t, "spawn_ns_per_thread") > 0.0);
    // How many threads fit: a neutral field name, not `coroutines`.
    let fits = t["fits"].as_array().expect("fits");
    assert_eq!(fits.len(), 3, "{t}");
    for f in fits {
        num(f, "memory_gib");
        num(f, "tasks");
        assert!(f.get("coroutines").is_none(), "{f}");
    }
}
