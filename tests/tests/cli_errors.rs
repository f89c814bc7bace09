//! spindle-bench refuses bad input with one clear line, never a panic.
//!
//! Every subcommand's bad-argument paths exit 2 with exactly one stderr line
//! starting `spindle-bench: error:`; preflight refusals (a run that cannot
//! fit this machine) exit 1 with one line naming the limit and how to change
//! it. `--help` and `--version` exit 0.

mod cli_common;

use cli_common::{run, stderr, stdout};

/// This machine's `vm.max_map_count` (`u64::MAX` if it cannot be read, which
/// makes the tests that need the stock limit skip themselves).
fn max_map_count() -> u64 {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX)
}

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
    let line = refused(&["mem", "--no-such-flag"], 2);
    assert!(line.contains("'--no-such-flag'"), "{line}");
    // clap lists the missing argument on its own line: it must survive.
    let line = refused(&["report"], 2);
    assert!(
        line.contains("not provided") && line.contains("--out <DIR>"),
        "{line}"
    );
    let line = refused(&["mem", "--count"], 2);
    assert!(line.contains("--count <N>"), "{line}");
}

#[test]
fn grow_overflow_refuses_repeat() {
    let line = refused(&["grow", "--overflow", "--repeat", "2"], 2);
    assert!(
        line.contains("--repeat") && line.contains("--overflow"),
        "{line}"
    );
    let line = refused(&["--repeat", "3", "grow", "--overflow", "--json"], 2);
    assert!(line.contains("--repeat 3"), "{line}");
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
    let max_maps = max_map_count();
    if max_maps < 400_000 {
        let line = refused(&["threads", "--count", "1e5"], 1);
        assert!(line.contains("vm.max_map_count"), "{line}");
        assert!(line.contains("sysctl -w"), "{line}");
    }
}

/// Every stack slot is reserved up front: 2 × 10^5 slots of 1 GiB (195 TiB)
/// do not fit in x86_64's 128 TiB of user address space, and 3 × 10^5 (293
/// TiB) fit nowhere. Without the check the run failed part-way, at a slab
/// mmap ("cannot reserve 16384 MiB for stacks").
#[test]
fn preflight_refuses_more_address_space_than_there_is() {
    let mut cases = vec!["3e5"];
    if cfg!(target_arch = "x86_64") {
        cases.push("2e5");
    }
    for count in cases {
        let line = refused(&["mem", "--count", count, "--stack-max", "1G"], 1);
        assert!(line.contains("user address space"), "{line}");
        assert!(line.contains("-bit virtual addresses"), "{line}");
        assert!(line.contains("--stack-max"), "{line}");
    }
}

/// `RLIMIT_AS` (`ulimit -v`) counts reserved address space too: 10^5 stacks
/// of 256 KiB reserve 24 GiB, far over a 4 GiB limit.
#[test]
fn preflight_refuses_more_than_rlimit_as() {
    let inner = cli_common::command(&["mem", "--count", "1e5"]);
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 4194304 && exec \"$@\"")
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args())
        .env("RUST_BACKTRACE", "0");
    let out = cmd.output().expect("running spindle-bench under ulimit -v");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("spindle-bench: error: "), "{err}");
    assert!(
        err.contains("RLIMIT_AS") && err.contains("ulimit -v"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("spawning coroutine"),
        "{err}"
    );
}

/// Just past the stock wall: 31,723 mprotect stacks with 2 workers used to
/// pass preflight (2 maps per stack only) and then fail at coroutine 31,717.
/// Slabs, worker threads and the allocator count too, so preflight refuses
/// them before spawning anything.
#[test]
fn mprotect_preflight_counts_slabs_and_workers() {
    let max_maps = max_map_count();
    if max_maps > 65530 {
        eprintln!("note: vm.max_map_count is {max_maps}, not the stock 65530; nothing to refuse");
        return;
    }
    let out = cli_common::command(&["mem", "--count", "31723", "--workers", "2"])
        .env("SPINDLE_GUARD", "mprotect")
        .output()
        .expect("running spindle-bench");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Refused up front by preflight, not by a failed spawn part-way.
    assert!(
        err.starts_with("spindle-bench: error: mem --count 31,723: "),
        "{err}"
    );
    assert!(!err.contains("spawning coroutine"), "{err}");
    assert!(
        err.contains("slabs") && err.contains("lower --count"),
        "{err}"
    );
    assert!(
        err.contains(&format!("vm.max_map_count ({max_maps})")),
        "{err}"
    );
}

#[test]
fn mprotect_mode_checks_the_map_budget() {
    let max_maps = max_map_count();
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
    // The suggested value must cover the request: 10^5 stacks need more
    // than 2 × 10^5 maps (the old message always said 262144 at the stock
    // limit, enough for only 1.3 × 10^5 stacks).
    let suggested: u64 = err
        .split("sysctl -w vm.max_map_count=")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no suggested value in {err}"));
    assert!(suggested > 200_000, "{err}");
    let needed: u64 = err
        .split(" with 2048 kept")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no maps-needed figure in {err}"));
    assert!(suggested >= needed, "{err}");
}
