//! `report`'s page and its early checks.
//!
//! `index.html` must be one self-contained document: well-formed (every tag
//! closed in order, checked by the small parser below), no scripts, and no
//! reference to anything outside the file (no `src`, `href`, `url(...)` or
//! `http(s)://` at all), with the machine header, the tables and every
//! chart inline. And `report --out DIR` must find out that it cannot write
//! into DIR before it measures anything.

mod cli_common;

use cli_common::{command, run, scratch_dir, stderr, stdout};

/// Elements that have no closing tag in HTML.
const VOID: &[&str] = &["meta", "br", "hr", "img", "input", "link", "col", "wbr"];

/// Check that tags nest and close; returns the element names seen.
fn check_well_formed(doc: &str) -> Result<Vec<String>, String> {
    let mut open: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>').ok_or("a '<' without '>'")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue; // <!DOCTYPE html>
        }
        if tag.contains('<') {
            return Err(format!("'<' inside the tag <{tag}>"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim().to_ascii_lowercase();
            match open.pop() {
                Some(top) if top == name => {}
                top => return Err(format!("</{name}> closes {top:?}")),
            }
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() {
            return Err(format!("a tag without a name: <{tag}>"));
        }
        if tag.matches('"').count() & 1 == 1 {
            return Err(format!("unbalanced quotes in <{tag}>"));
        }
        seen.push(name.clone());
        if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
            open.push(name);
        }
    }
    if !open.is_empty() {
        return Err(format!("never closed: {open:?}"));
    }
    Ok(seen)
}

#[test]
fn the_checker_catches_broken_pages() {
    assert!(check_well_formed("<html><body><p>a</p></body></html>").is_ok());
    assert!(check_well_formed("<html><body><p>a</body></html>").is_err());
    assert!(check_well_formed("<html><svg><rect x=\"1\"/></svg>").is_err());
    assert!(check_well_formed("<p a=\"1>b</p>").is_err());
    assert!(check_well_formed("<br><meta charset=\"x\">").is_ok());
}

#[test]
fn report_writes_one_self_contained_page() {
    let dir = scratch_dir("report-html");
    let out_dir = dir.to_str().expect("utf-8 temp dir");
    let mut args = vec!["report", "--out", out_dir, "--quick", "--repeat", "1"];
    let go = cli_common::find_go();
    let go_str = go.as_ref().and_then(|g| g.to_str()).map(str::to_string);
    if let Some(g) = &go_str {
        args.extend(["--go", g]);
    }
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("index.html"), "{}", stdout(&out));

    let page = std::fs::read_to_string(dir.join("index.html")).expect("index.html");
    let tags = check_well_formed(&page).unwrap_or_else(|e| panic!("index.html: {e}"));
    assert!(page.starts_with("<!DOCTYPE html>"));
    let lower = page.to_ascii_lowercase();
    for banned in [
        "<script", "http://", "https://", " src=", " href=", "url(", "@import",
    ] {
        assert!(!lower.contains(banned), "index.html contains {banned:?}");
    }
    let count = |name: &str| tags.iter().filter(|t| *t == name).count();
    // Memory, switch, compaction, and the echo servers' (net at 10^3 with
    // --quick).
    assert_eq!(count("svg"), 4, "every chart inline");
    assert!(count("table") >= 6, "{} tables", count("table"));
    for needle in [
        "page size",
        "guard mode",
        "Memory per parked task",
        "Switch cost",
        "Memory per parked coroutine against wake latency",
        "Network: echo server",
        "memory per idle connection",
        "command:",
    ] {
        assert!(page.contains(needle), "index.html lacks {needle:?}");
    }
    // The charts say when, where and how they were measured.
    for svg in [
        "mem_per_unit.svg",
        "switch_cost.svg",
        "compact.svg",
        "net.svg",
    ] {
        let text = std::fs::read_to_string(dir.join(svg)).expect(svg);
        check_well_formed(&text).unwrap_or_else(|e| panic!("{svg}: {e}"));
        assert!(text.contains("command: ") && text.contains(" UTC"), "{svg}");
    }
    // The compacted row sits beside Go when Go ran; where `build` refuses
    // compaction (the /proc/self/mem probe fails) the row (and the chart's
    // point) is skipped.
    let compact = std::fs::read_to_string(dir.join("compact.svg")).expect("compact.svg");
    if go.is_some() {
        assert!(page.contains("compacted after"), "no compacted row");
        assert!(compact.contains("Go goroutine: "), "{compact}");
        assert!(
            compact.contains("spindle, compacted") || compact.contains("compacted row skipped"),
            "{compact}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A directory no file can be written into, even by root: a directory of
/// /proc. The refusal must come before the first measurement, which would
/// start a child through SPINDLE_CHILD_RUNNER: a script that leaves a mark.
#[test]
fn report_refuses_an_unwritable_dir_before_measuring() {
    let dir = scratch_dir("report-unwritable");
    let mark = dir.join("measured");
    let runner = dir.join("runner.sh");
    std::fs::write(
        &runner,
        format!("#!/bin/sh\ntouch '{}'\nexit 1\n", mark.display()),
    )
    .expect("writing the runner");
    let chmod = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&runner)
        .status()
        .expect("chmod");
    assert!(chmod.success());
    let out = command(&["report", "--quick", "--out", "/proc/self"])
        .env("SPINDLE_CHILD_RUNNER", &runner)
        .output()
        .expect("running spindle-bench");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot write into /proc/self"), "{err}");
    assert!(
        !mark.exists(),
        "report measured before finding out it cannot write"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
