//! The default suite and `report`, end to end, with their output checked.
//!
//! `spindle-bench --quick --json` must print one JSON document with the
//! machine header and every row measured (or skipped with a reason), and
//! `report --quick` must write results.json, results.md and two SVG charts.

mod cli_common;

use cli_common::{num, run, run_json, scratch_dir, stderr};
use serde_json::Value;

fn check_header(h: &Value) {
    for key in [
        "arch",
        "cpu_model",
        "kernel",
        "guard_mode",
        "rust_version",
        "date_utc",
    ] {
        let s = h[key]
            .as_str()
            .unwrap_or_else(|| panic!("header.{key}: {h}"));
        assert!(!s.is_empty(), "header.{key} is empty");
    }
    assert!(num(h, "cores") >= 1.0);
    let page = num(h, "page_size") as u64;
    assert!(page >= 4096 && page.is_power_of_two(), "page size {page}");
    assert!(num(h, "vm_max_map_count") > 0.0);
    assert!(num(&h["runtime"], "workers") >= 1.0);
    assert!(num(&h["runtime"], "stack_max") >= 16384.0);
}

/// A timed row: either measured (samples, median within min..max) or skipped.
fn check_rows(set: &Value, kind: &str, names: &[&str], may_skip: &[&str]) {
    assert_eq!(set["kind"], kind);
    let repeat = num(set, "repeat") as usize;
    let rows = set["rows"].as_array().expect("rows");
    for name in names {
        let row = rows
            .iter()
            .find(|r| r["name"] == *name)
            .unwrap_or_else(|| panic!("{kind}: no row {name}"));
        assert!(row["label"].as_str().is_some_and(|l| !l.is_empty()));
        assert!(num(row, "ops") >= 1.0);
        if let Some(why) = row.get("skipped") {
            assert!(may_skip.contains(name), "{name} skipped: {why}");
            assert!(why.as_str().is_some_and(|w| !w.is_empty()));
            continue;
        }
        let (med, min, max) = (
            num(row, "median_ns"),
            num(row, "min_ns"),
            num(row, "max_ns"),
        );
        assert!(med > 0.0 && min > 0.0 && min <= med && med <= max, "{row}");
        assert_eq!(
            row["samples_ns"].as_array().map(Vec::len),
            Some(repeat),
            "{row}"
        );
    }
}

fn check_mem_row(row: &Value, count: u64) {
    assert_eq!(num(row, "count") as u64, count, "{row}");
    assert!(
        row.get("skipped").is_none(),
        "mem at {count} skipped: {row}"
    );
    let p = &row["per_coroutine"];
    assert!(num(p, "total_bytes") > 0.0, "{row}");
    assert!(num(p, "rss_bytes") > 0.0, "{row}");
    assert!(num(p, "stack_resident_bytes") > 0.0, "{row}");
    for key in ["pte_bytes", "heap_bytes", "heap_blocks"] {
        num(p, key);
    }
    assert!(num(row, "spawn_ns_per_coroutine") > 0.0);
    assert!(num(row, "release_join_ns_total") > 0.0);
    let fits = row["fits"].as_array().expect("fits");
    assert_eq!(fits.len(), 3);
    assert!(fits.iter().all(|f| num(f, "tasks") > 0.0), "{row}");
    assert!(fits.iter().all(|f| f.get("coroutines").is_none()), "{row}");
}

#[test]
fn default_suite_quick_json_has_the_documented_schema() {
    let v = run_json(&["--quick", "--json"]);
    check_header(&v["header"]);
    let mem = v["mem"].as_array().expect("mem is an array");
    assert_eq!(mem.len(), 2, "{mem:?}");
    check_mem_row(&mem[0], 1_000);
    check_mem_row(&mem[1], 10_000);
    check_rows(
        &v["switch"],
        "switch",
        &[
            "raw_resume_suspend",
            "yield_pingpong",
            "chan_pingpong_1worker",
            "chan_pingpong_2workers",
            "select_pingpong_1worker",
            "thread_pipe_same_cpu",
            "thread_pipe_cross_cpu",
        ],
        &["thread_pipe_cross_cpu"],
    );
    check_rows(
        &v["spawn"],
        "spawn",
        &["spawn_join_warm", "spawn_batch_warm", "spawn_batch_cold"],
        &[],
    );
}

#[test]
fn default_suite_quick_human_report() {
    let out = run(&["--quick", "--repeat", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "page size",
        "guard mode",
        "vm.max_map_count",
        "TOTAL",
        "GiB",
        "switch",
        "spawn",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    // Progress goes to stderr only when it is a terminal: here it is a pipe.
    assert!(stderr(&out).is_empty(), "stderr: {}", stderr(&out));
}

#[test]
fn report_writes_json_markdown_and_charts() {
    let dir = scratch_dir("report");
    let out_dir = dir.to_str().expect("utf-8 temp dir");
    let mut args = vec!["report", "--out", out_dir, "--quick", "--repeat", "1"];
    let go = cli_common::find_go();
    let go_str = go.as_ref().and_then(|g| g.to_str()).map(str::to_string);
    if let Some(g) = &go_str {
        args.extend(["--go", g]);
    }
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));

    let json = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
    let v: Value = serde_json::from_str(&json).expect("results.json is JSON");
    check_header(&v["header"]);
    assert!(v["command"].as_str().is_some_and(|c| c.contains("report")));
    assert_eq!(v["mem"].as_array().map(Vec::len), Some(2));
    assert!(v["threads"].as_array().is_some_and(|t| !t.is_empty()));
    if go.is_some() {
        assert!(
            v["go"]["mem"].as_array().is_some_and(|m| m.len() == 2),
            "{}",
            v["go"]
        );
    }

    let md = std::fs::read_to_string(dir.join("results.md")).expect("results.md");
    assert!(md.starts_with("# spindle-bench results"));
    for needle in [
        "Command: `",
        "## Machine",
        "mem_per_unit.svg",
        "switch_cost.svg",
        "| N |",
    ] {
        assert!(md.contains(needle), "results.md lacks {needle:?}");
    }
    for svg in ["mem_per_unit.svg", "switch_cost.svg"] {
        let text = std::fs::read_to_string(dir.join(svg)).expect(svg);
        assert!(
            text.contains("<svg") && text.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        assert!(text.contains("<text"), "{svg} has no labels");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
