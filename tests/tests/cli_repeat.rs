//! `--repeat R` reaches every measurement: R samples, or R rows.
//!
//! Each subcommand runs with `--json --repeat 2` at a tiny size (so the whole
//! file takes about a second) and the JSON must show two of everything: two
//! `mem` rows (each from its own child process), `repeat: 2` and two samples
//! per timed `switch` and `spawn` row, two `threads` and `grow` results.

mod cli_common;

use cli_common::{num, run_json};
use serde_json::Value;

/// A timed row set: `repeat` is 2 and every measured row has 2 samples.
fn check_two_samples(set: &Value, kind: &str) {
    assert_eq!(set["kind"], kind, "{set}");
    assert_eq!(num(set, "repeat"), 2.0, "{set}");
    let rows = set["rows"].as_array().expect("rows");
    assert!(!rows.is_empty(), "{set}");
    let mut measured = 0;
    for row in rows {
        if row.get("skipped").is_some() {
            continue;
        }
        measured += 1;
        assert_eq!(row["samples_ns"].as_array().map(Vec::len), Some(2), "{row}");
    }
    assert!(measured > 0, "every {kind} row was skipped: {set}");
}

#[test]
fn mem_repeat_2_gives_two_rows() {
    let v = run_json(&["mem", "--count", "100", "--json", "--repeat", "2"]);
    let rows = v["mem"].as_array().expect("mem is an array");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in rows {
        assert_eq!(num(row, "count"), 100.0, "{row}");
        assert!(num(&row["per_coroutine"], "total_bytes") > 0.0, "{row}");
    }
}

#[test]
fn switch_repeat_2_gives_two_samples() {
    let v = run_json(&[
        "switch",
        "--n",
        "1000",
        "--thread-n",
        "100",
        "--json",
        "--repeat",
        "2",
    ]);
    check_two_samples(&v["switch"], "switch");
}

#[test]
fn spawn_repeat_2_gives_two_samples() {
    let v = run_json(&["spawn", "--count", "100", "--json", "--repeat", "2"]);
    check_two_samples(&v["spawn"], "spawn");
}

#[test]
fn threads_and_grow_repeat_2_give_two_results() {
    let v = run_json(&["threads", "--count", "10", "--json", "--repeat", "2"]);
    assert_eq!(v["threads"].as_array().map(Vec::len), Some(2), "{v}");
    let v = run_json(&["grow", "--depth", "10", "--json", "--repeat", "2"]);
    assert_eq!(v["grow"].as_array().map(Vec::len), Some(2), "{v}");
}
