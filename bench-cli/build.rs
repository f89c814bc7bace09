//! Build script: record which Rust compiler built this binary.
//!
//! The machine header printed by `spindle-bench` names the compiler, because
//! a switch that costs 30 ns with one compiler can cost 40 ns with another.
//! Cargo tells a build script which `rustc` it uses (`RUSTC`); we ask it for
//! its version once, at build time, and hand the answer to the crate as the
//! compile-time environment variable `SPINDLE_BENCH_RUSTC`.

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
    println!("cargo:rerun-if-env-changed=RUSTC");
}
