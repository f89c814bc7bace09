//! Build script: record which Rust compiler built this binary.
//!
//! The machine header printed by `spindle-bench` names the compiler, because
//! a switch that costs 30 ns with one compiler can cost 40 ns with another.
//! Cargo tells a build script which `rustc` it uses (`RUSTC`); we ask it for
//! its version once, at build time, and hand the answer to the crate as the
//! compile-time environment variable `SPINDLE_BENCH_RUSTC`; the profile and
//! optimisation level go into `SPINDLE_BENCH_BUILD`.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SPINDLE_BENCH_RUSTC={version}");
    // The profile and optimisation level this binary is built with, for the
    // header: timings of a debug build mean little.
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    let opt = std::env::var("OPT_LEVEL").unwrap_or_else(|_| "?".into());
    println!("cargo:rustc-env=SPINDLE_BENCH_BUILD={profile} profile, opt-level {opt}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
