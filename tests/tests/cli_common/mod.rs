//! Helpers for the end-to-end tests of the `spindle-bench` binary.
//!
//! The tests package cannot name another package's binary with
//! `CARGO_BIN_EXE_*`, so the binary is found where Cargo puts it: next to
//! the test executable's `deps/` directory. It is (re)built once per test
//! binary with `cargo build -p spindle-bench` in the same profile (and for
//! the same `--target`, when cross-compiling), which is a no-op when it is
//! up to date. `SPINDLE_CHILD_RUNNER` (e.g. `qemu-aarch64-static -L
//! /usr/aarch64-linux-gnu`) is put in front of every run, for qemu-user.

#![allow(dead_code)] // each cli_* test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `spindle-bench` executable, built if needed.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        // target/[<triple>/]<profile>/deps/<test>-<hash>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in <profile>/deps");
        let bin = profile_dir.join("spindle-bench");
        if std::env::var_os("SPINDLE_BENCH_NO_BUILD").is_none() {
            build(profile_dir);
        }
        assert!(bin.is_file(), "{} does not exist", bin.display());
        bin
    })
}

fn build(profile_dir: &Path) {
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "spindle-bench"]);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    // target/<triple>/<profile>: cross-compiled, build for the same triple.
    if let Some(triple) = profile_dir
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .filter(|n| n.matches('-').count() >= 2)
    {
        cmd.args(["--target", triple]);
    }
    let status = cmd.status().expect("running cargo build -p spindle-bench");
    assert!(status.success(), "cargo build -p spindle-bench failed");
}

/// A command running spindle-bench with `args`, through the runner if set.
pub fn command(args: &[&str]) -> Command {
    let runner = std::env::var("SPINDLE_CHILD_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut cmd = match words.next() {
        Some(first) => {
            let mut c = Command::new(first);
            c.args(words).arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    cmd.args(args).env("RUST_BACKTRACE", "0");
    cmd
}

/// Run spindle-bench with `args` to completion.
pub fn run(args: &[&str]) -> Output {
    command(args).output().expect("running spindle-bench")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run with `--json` expected to succeed, and parse stdout.
pub fn run_json(args: &[&str]) -> serde_json::Value {
    let out = run(args);
    let err = stderr(&out);
    assert!(out.status.success(), "spindle-bench {args:?} failed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("spindle-bench {args:?}: bad JSON ({e}): {}", stdout(&out)))
}

/// The Go toolchain: `go` on PATH, or the machine's /opt/gobin/bin/go.
pub fn find_go() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("go"))
        .chain([PathBuf::from("/opt/gobin/bin/go")])
        .find(|p| p.is_file())
}

/// A number at `v[key]`, or a panic naming the key.
pub fn num(v: &serde_json::Value, key: &str) -> f64 {
    v.get(key)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spindle-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch dir");
    dir
}
