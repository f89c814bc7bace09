//! Running this same binary as a child process.
//!
//! Some measurements must not share a process with anything else:
//!
//! * memory: after one `mem` run, freed heap pages stay in the allocator and
//!   the next run reuses them, so its RSS delta would be too small. Each
//!   `mem` sample in the default suite therefore runs in a fresh process;
//! * a stack overflow aborts the whole process (that is the point), so
//!   `grow --overflow` lets a child do it and reports what the child said.
//!
//! A child must not outlive its parent: a `mem --count 1e6` child holds
//! gigabytes, and `timeout(1)` or a CI runner ends a run with SIGTERM to the
//! process it started, which is the parent. So every child asks the kernel
//! (`PR_SET_PDEATHSIG`) for SIGKILL when the parent dies, and checks that
//! the parent is still there after asking, which closes the race of a
//! parent dying between `fork` and `prctl`. The signal follows the *thread*
//! that forked, so children are started from the main thread only.
//!
//! Under qemu-user without binfmt the binary cannot start itself directly;
//! `SPINDLE_CHILD_RUNNER` (say `qemu-aarch64-static -L /usr/aarch64-linux-gnu`)
//! is then put in front of the command, split at whitespace.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

/// A command that runs this binary with `args`.
pub fn command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<Command, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this executable to run a child: {e}"))?;
    let runner = std::env::var("SPINDLE_CHILD_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut cmd = match words.next() {
        Some(first) => {
            let mut c = Command::new(first);
            c.args(words).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args(args);
    die_with_parent(&mut cmd);
    Ok(cmd)
}

/// Make the process `cmd` starts die when this process does (used for the
/// Go reference program too, whose `mem` run holds as much memory).
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls (prctl, getppid); it allocates
    // nothing (`from_raw_os_error` builds no heap value).
    unsafe {
        cmd.pre_exec(move || kill_me_with(parent));
    }
}

/// In the forked child: SIGKILL when `parent` dies, and fail the spawn if
/// it already has (then our parent is a reaper, not `parent`).
fn kill_me_with(parent: libc::pid_t) -> std::io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; no memory is passed.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Run this binary with `args`, capturing stdout and stderr.
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<Output, String> {
    command(args)?
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start a child spindle-bench: {e}"))
}

/// Run a child that prints one JSON document and parse it. A failing child's
/// last stderr line (its one-line error) becomes the error.
pub fn run_json<T: serde::de::DeserializeOwned, S: AsRef<std::ffi::OsStr>>(
    args: &[S],
) -> Result<T, String> {
    let out = run(args)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.lines().rev().find(|l| !l.trim().is_empty());
        let line = line
            .unwrap_or(
                "the child printed nothing (under qemu-user without binfmt, set \
                 SPINDLE_CHILD_RUNNER, e.g. \"qemu-aarch64-static -L /usr/aarch64-linux-gnu\")",
            )
            .trim();
        let line = line.strip_prefix("spindle-bench: error: ").unwrap_or(line);
        return Err(format!("{line} (child {})", out.status));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cannot parse the child's JSON output: {e}"))
}

/// One sample of subcommand `sub` in a fresh child: `sub --count N
/// --workers W --stack-max S --json --repeat 1 --measuring-child`, plus
/// `extra` flags; returns the child's JSON document. A measuring child
/// skips preflight: its parent has checked.
pub fn one_sample(
    sub: &str,
    (count, workers, stack_max): (u64, usize, usize),
    extra: &[&str],
) -> Result<serde_json::Value, String> {
    let mut args = vec![
        sub.to_string(),
        "--count".into(),
        count.to_string(),
        "--workers".into(),
        workers.to_string(),
        "--stack-max".into(),
        stack_max.to_string(),
        "--json".into(),
        "--repeat".into(),
        "1".into(),
        "--measuring-child".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    run_json(&args)
}
