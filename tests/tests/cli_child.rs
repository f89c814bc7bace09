//! A measuring child dies with its parent.
//!
//! `mem --repeat R` measures each run in a child process that may hold
//! gigabytes. When the parent is ended with SIGTERM (as `timeout(1)` and CI
//! runners do), the child must not live on. The child here is stopped with
//! SIGSTOP first, so it cannot finish on its own: only the kernel's
//! parent-death signal can end it.
//!
//! The child is stopped only once it has exec'd (its command line carries
//! `--measuring-child`). Between `fork` and `exec` it is still setting up its
//! parent-death signal; stopped there, it could never finish that set-up, so
//! it would outlive its parent because of the test, not the CLI.

mod cli_common;

use std::time::{Duration, Instant};

use cli_common::command;

/// The pid of a child of `parent`, from /proc/<pid>/stat field 4.
fn child_of(parent: u32) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if ppid_state(pid).is_some_and(|(ppid, _)| ppid == parent) {
            return Some(pid);
        }
    }
    None
}

/// (parent pid, state letter) of `pid`, if it exists.
fn ppid_state(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces, so split after ')'.
    let mut after = stat.rsplit_once(')')?.1.split_whitespace();
    let state = after.next()?.chars().next()?;
    Some((after.next()?.parse().ok()?, state))
}

/// Whether `pid` runs the measuring child's command line (it has exec'd).
fn has_execd(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == b"--measuring-child"))
}

fn signal(sig: &str, pid: u32) -> bool {
    std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_measuring_child_dies_with_its_parent() {
    let mut parent = command(&["mem", "--count", "1e4", "--repeat", "1000", "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting spindle-bench");
    let pid = parent.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let child = loop {
        assert!(Instant::now() < deadline, "no measuring child appeared");
        assert!(
            parent.try_wait().expect("try_wait").is_none(),
            "the parent ended early"
        );
        if let Some(c) = child_of(pid).filter(|&c| has_execd(c)) {
            if signal("-STOP", c) {
                break c;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(signal("-TERM", pid), "SIGTERM to the parent");
    let _ = parent.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    let gone = loop {
        match ppid_state(child) {
            None | Some((_, 'Z')) => break true,
            Some(_) if Instant::now() > deadline => break false,
            Some(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    if !gone {
        signal("-KILL", child);
    }
    assert!(gone, "child {child} outlived its parent {pid}");
}
