//! spindle-bench refuses bad input with one clear line, never a panic.
//!
//! Every subcommand's bad-argument paths exit 2 with exactly one stderr line
//! starting `spindle-bench: error:`; preflight refusals (a run that cannot
//! fit this machine) exit 1 with one line naming the limit and how to change
//! it. `--help` and `--version` exit 0.

mod cli_common;

use cli_common::{run, stderr, stdout};

/// Assert one clean error line and the exit code.
fn refused(args: &[&str], code: i32) -> String {
    let out = run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: want one stderr line, got {err:?}"
    );
    assert!(
        lines[0].starts_with("spindle-bench: error: "),
        "{args:?}: {err:?}"
    );
    assert!(stdout(&out).is_empty(), "{args:?} printed to stdout");
    lines[0].to_string()
}

#[test]
fn bad_counts_for_every_subcommand() {
    for sub in ["mem", "spawn", "threads", "compare"] {
        for bad in ["0", "1e99", "abc", "-3", "1.5", ""] {
            let line = refused(&[sub, "--count", bad], 2);
            assert!(line.contains("--count"), "{line}");
        }
    }
    let line = refused(&["mem", "--count", "1e99"], 2);
    assert!(line.contains("10^8"), "{line}");
    refused(&["switch", "--n", "0"], 2);
    refused(&["switch", "--thread-n", "1e9"], 2);
    refused(&["compare", "--spawn-count", "zero"], 2);
}

#[test]
fn bad_workers_and_stack_sizes() {
    for args in [
        &["--workers", "0"][..],
        &["mem", "--workers", "0"],
        &["spawn", "--workers", "0"],
        &["compare", "--workers", "0"],
        &["mem", "--workers", "many"],
        &["--stack-max", "1"],
        &["mem", "--stack-max", "1"],
        &["spawn", "--stack-max", "1"],
        &["grow", "--stack-max", "1"],
        &["mem", "--stack-max", "4GiB"],
        &["threads", "--stack-size", "1"],
        &["grow", "--frame-bytes", "1000"],
        &["grow", "--depth", "0"],
    ] {
        refused(args, 2);
    }
}

#[test]
fn bad_global_flags_and_unknown_things() {
    refused(&["--repeat", "0"], 2);
    refused(&["switch", "--repeat", "1e9"], 2);
    refused(&["frobnicate"], 2);
    refused(&["mem", "--no-such-flag"], 2);
    refused(&["report"], 2); // --out is required
}

#[test]
fn help_and_version_exit_zero() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("Usage"), "{}", stdout(&out));
    let out = run(&["mem", "--help"]);
    assert!(out.status.success());
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert!(stdout(&out).starts_with("spindle-bench "));
}

#[test]
fn preflight_refuses_what_does_not_fit() {
    // 10^8 parked coroutines need far more memory than any test machine has.
    let line = refused(&["mem", "--count", "1e8"], 1);
    assert!(line.contains("MemAvailable"), "{line}");
    assert!(line.contains("--count"), "{line}");

    // 10^5 threads need 4 maps each: far over the stock vm.max_map_count.
    let max_maps: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    if max_maps < 400_000 {
        let line = refused(&["threads", "--count", "1e5"], 1);
        assert!(line.contains("vm.max_map_count"), "{line}");
        assert!(line.contains("sysctl -w"), "{line}");
    }
}

#[test]
fn mprotect_mode_checks_the_map_budget() {
    let max_maps: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    if max_maps >= 200_000 {
        eprintln!(
            "note: vm.max_map_count is {max_maps}; 10^5 mprotect stacks fit, nothing to refuse"
        );
        return;
    }
    let out = cli_common::command(&["mem", "--count", "1e5"])
        .env("SPINDLE_GUARD", "mprotect")
        .output()
        .expect("running spindle-bench");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("vm.max_map_count") && err.contains("sysctl -w"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
