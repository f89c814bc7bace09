//! `grow --overflow`: a stack overflow, safely, in a child process.
//!
//! A coroutine that recurses without bound eventually touches the guard page
//! at the bottom of its slot. The runtime's SIGSEGV handler (running on an
//! alternate signal stack, since the faulting stack is full) finds the slot
//! by the fault address, prints
//! `spindle: coroutine #<id> (<name>) overflowed its <N> KiB stack` and
//! aborts the process — as Go does with "goroutine stack exceeds limit".
//!
//! Since that kills the process, we run it in a child (this same binary with
//! a hidden flag), capture its stderr, and show the report line and how the
//! child died. Success means: the line is there and the child was killed by
//! SIGABRT.

use std::os::unix::process::ExitStatusExt;

use serde::{Deserialize, Serialize};
use spindle::Runtime;

use super::Measurement;
use crate::measure::child;

/// `grow --overflow`: the slot size of the overflowing coroutine.
#[derive(Clone, Debug)]
pub struct OverflowConfig {
    pub stack_max: usize,
}

impl Measurement for OverflowConfig {
    type Data = OverflowResult;
    const KEY: &'static str = "overflow";

    fn runtime(&self) -> (usize, usize) {
        (1, self.stack_max)
    }

    fn run(&self) -> Result<OverflowResult, String> {
        run(self.stack_max)
    }

    /// Exit 1 unless the child reported the overflow and aborted.
    fn success(r: &OverflowResult) -> bool {
        r.expected
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OverflowResult {
    pub stack_max: usize,
    pub report_line: Option<String>,
    pub signal: Option<i32>,
    pub signal_name: Option<String>,
    pub exit_code: Option<i32>,
    pub expected: bool,
    pub child_stderr: String,
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGKILL => "SIGKILL".into(),
        other => format!("signal {other}"),
    }
}

/// The parent side: run the child and judge what it did.
pub fn run(stack_max: usize) -> Result<OverflowResult, String> {
    let args = [
        "grow".to_string(),
        "--internal-overflow-child".into(),
        "--stack-max".into(),
        stack_max.to_string(),
    ];
    let out = child::run(&args)?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report_line = stderr
        .lines()
        .find(|l| l.starts_with("spindle: coroutine #") && l.contains("overflowed its"))
        .map(str::to_string);
    let signal = out.status.signal();
    Ok(OverflowResult {
        stack_max,
        expected: report_line.is_some() && signal == Some(libc::SIGABRT),
        report_line,
        signal,
        signal_name: signal.map(signal_name),
        exit_code: out.status.code(),
        child_stderr: stderr,
    })
}

#[inline(never)]
fn bottomless(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth as u8; 1024]);
    if depth == u64::MAX {
        return 0; // never: a 1 KiB frame per level overflows long before
    }
    let below = bottomless(depth + 1);
    std::hint::black_box(&frame);
    below + frame[0] as u64
}

/// The child side: overflow on purpose. Returns only if the runtime failed
/// to start; an overflow never returns.
pub fn child(stack_max: usize) -> Result<(), String> {
    let rt = Runtime::builder()
        .workers(1)
        .stack_max(stack_max)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let h = spindle::Builder::new()
        .name("overflow-demo")
        .spawn_on(&rt, || bottomless(0))
        .map_err(|e| format!("cannot spawn: {e}"))?;
    let _ = h.join();
    Err("the bottomless recursion returned: no overflow was detected".into())
}
