//! Stack overflow and other crashes, each checked in a child process.
//!
//! A coroutine that runs into its guard page must die like Go's
//! `fatal error: stack overflow`: exactly one line on stderr,
//! `spindle: coroutine #<id> (<name>) overflowed its <N> KiB stack`, then
//! `abort()` (SIGABRT). The handler finds the slot by fault address, so the
//! report must also come out after the coroutine has migrated between
//! workers, and `<N>` must be that coroutine's own `stack_max`.
//!
//! Faults that are not guard hits must be passed on unchanged (the handler
//! chains): a plain null-ish write still dies by SIGSEGV with no spindle
//! line, from a thread and from a coroutine, and Rust's own "has overflowed
//! its stack" report still appears for an OS thread's overflow. (The
//! main-thread case lives in `main_thread_overflow.rs`, which needs its own
//! `main`.)
//!
//! Each test re-runs this binary on itself with `SPINDLE_TEST_CHILD` naming
//! the crash to perform, and asserts on the child's exit signal and stderr.
//! The named-coroutine overflow also runs once with `SPINDLE_GUARD=mprotect`.

use spindle::stack::page::page_size;
use spindle::{chan, Builder, Runtime, DEFAULT_STACK_MAX};
use spindle_tests::{is_child, recurse_forever, run_child, ChildRun, SIGABRT, SIGSEGV};

/// A write to address 16: not mapped, and not anyone's guard page.
fn write_near_null() {
    let p = std::ptr::without_provenance_mut::<u8>(16);
    // SAFETY: deliberately unsound: the test wants the SIGSEGV.
    unsafe { p.write_volatile(1) };
}

/// Parse `spindle: coroutine #<id> (<name>) overflowed its <N> KiB stack`.
fn parse_report(line: &str) -> Option<(u64, String, u64)> {
    let rest = line.strip_prefix("spindle: coroutine #")?;
    let (id, rest) = rest.split_once(" (")?;
    let (name, rest) = rest.rsplit_once(") overflowed its ")?;
    let kib = rest.strip_suffix(" KiB stack")?;
    Some((id.parse().ok()?, name.to_string(), kib.parse().ok()?))
}

/// The spindle report lines in the child's stderr, parsed as (id, name, KiB).
fn reports(run: &ChildRun) -> Vec<(u64, String, u64)> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("spindle:"))
        .map(|line| {
            parse_report(line)
                .unwrap_or_else(|| panic!("malformed overflow report {line:?}\n{run}"))
        })
        .collect()
}

fn assert_overflow_report(run: &ChildRun, name: &str, kib: usize) {
    run.assert_ran_one_test();
    assert_eq!(
        run.signal(),
        Some(SIGABRT),
        "an overflow must abort the process\n{run}"
    );
    let found = reports(run);
    assert_eq!(found.len(), 1, "expected exactly one report line\n{run}");
    let (_, got_name, got_kib) = &found[0];
    assert_eq!(got_name, name, "\n{run}");
    assert_eq!(*got_kib, kib as u64, "\n{run}");
    let expected_line = format!(
        "spindle: coroutine #{} ({name}) overflowed its {kib} KiB stack",
        found[0].0
    );
    assert!(
        run.stderr.lines().any(|l| l == expected_line),
        "the report is not a line of its own\n{run}"
    );
    assert!(
        !run.stderr.contains("has overflowed its stack"),
        "Rust's thread-overflow handler claimed a coroutine overflow\n{run}"
    );
}

#[test]
fn overflow_in_a_named_coroutine_reports_and_aborts() {
    const ROLE: &str = "overflow-named";
    if is_child(ROLE) {
        let rt = Runtime::builder().workers(2).build().unwrap();
        eprintln!("child: guard mode {:?}", rt.stats().guard_mode);
        let h = Builder::new()
            .name("deep")
            .spawn_on(&rt, || recurse_forever(0))
            .unwrap();
        let _ = h.join();
        eprintln!("child: the recursion returned?!");
        return;
    }
    let run = run_child(
        "overflow_in_a_named_coroutine_reports_and_aborts",
        ROLE,
        &[],
    );
    assert_overflow_report(&run, "deep", DEFAULT_STACK_MAX >> 10);
}

/// The same report with mprotect guard pages (forced in the child), so the
/// fallback's guards are covered even where guard regions work.
#[test]
fn overflow_with_mprotect_guards_reports_and_aborts() {
    let run = run_child(
        "overflow_in_a_named_coroutine_reports_and_aborts",
        "overflow-named",
        &[("SPINDLE_GUARD", "mprotect")],
    );
    assert_overflow_report(&run, "deep", DEFAULT_STACK_MAX >> 10);
    assert!(
        run.stderr.contains("child: guard mode Mprotect"),
        "the child did not use mprotect guards\n{run}"
    );
}

/// The coroutine parks many times, woken from an OS thread through the
/// injector, so it resumes on either worker before it overflows; its stack
/// is a per-spawn size. The report must name it and its own size.
#[test]
fn overflow_after_migrating_reports_the_per_spawn_size() {
    const ROLE: &str = "overflow-migrant";
    let size = (128 << 10).max(4 * page_size());
    if is_child(ROLE) {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let (tx, rx) = chan::bounded::<u32>(0);
        let h = Builder::new()
            .name("migrant")
            .stack_max(size)
            .spawn_on(&rt, move || {
                let mut sum = 0;
                for v in rx.iter() {
                    sum += v;
                }
                recurse_forever(u64::from(sum))
            })
            .unwrap();
        for v in 0..200 {
            tx.send(v).unwrap();
        }
        drop(tx);
        let _ = h.join();
        eprintln!("child: the recursion returned?!");
        return;
    }
    let run = run_child(
        "overflow_after_migrating_reports_the_per_spawn_size",
        ROLE,
        &[],
    );
    assert_overflow_report(&run, "migrant", size >> 10);
}

/// An unnamed coroutine spawned from inside another: still one well-formed
/// line, with some placeholder name.
#[test]
fn overflow_in_an_unnamed_coroutine_reports_and_aborts() {
    const ROLE: &str = "overflow-unnamed";
    if is_child(ROLE) {
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            let _ = spindle::spawn(|| recurse_forever(0)).join();
        });
        eprintln!("child: the recursion returned?!");
        return;
    }
    let run = run_child(
        "overflow_in_an_unnamed_coroutine_reports_and_aborts",
        ROLE,
        &[],
    );
    run.assert_ran_one_test();
    assert_eq!(run.signal(), Some(SIGABRT), "\n{run}");
    let found = reports(&run);
    assert_eq!(found.len(), 1, "\n{run}");
    assert!(!found[0].1.is_empty(), "empty name in the report\n{run}");
    assert_eq!(found[0].2, (DEFAULT_STACK_MAX >> 10) as u64, "\n{run}");
}

fn assert_plain_segfault(run: &ChildRun) {
    run.assert_ran_one_test();
    assert_eq!(
        run.signal(),
        Some(SIGSEGV),
        "a fault that is not a guard hit must keep its default action\n{run}"
    );
    assert!(
        reports(run).is_empty() && !run.stderr.contains("overflowed"),
        "a plain segfault was reported as an overflow\n{run}"
    );
}

#[test]
fn a_plain_segfault_in_a_thread_still_kills_by_sigsegv() {
    const ROLE: &str = "segv-thread";
    if is_child(ROLE) {
        // The runtime installs its handler; the fault happens elsewhere.
        let _rt = Runtime::builder().workers(1).build().unwrap();
        let _ = std::thread::spawn(write_near_null).join();
        eprintln!("child: survived a write to address 16?!");
        return;
    }
    let run = run_child(
        "a_plain_segfault_in_a_thread_still_kills_by_sigsegv",
        ROLE,
        &[],
    );
    assert_plain_segfault(&run);
}

#[test]
fn a_plain_segfault_in_a_coroutine_still_kills_by_sigsegv() {
    const ROLE: &str = "segv-coroutine";
    if is_child(ROLE) {
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(write_near_null);
        eprintln!("child: survived a write to address 16?!");
        return;
    }
    let run = run_child(
        "a_plain_segfault_in_a_coroutine_still_kills_by_sigsegv",
        ROLE,
        &[],
    );
    assert_plain_segfault(&run);
}

/// An OS thread (not a coroutine) overflows its own stack after a runtime
/// installed its handler: Rust's report must still appear, not ours.
#[test]
fn rust_thread_overflow_report_still_appears() {
    const ROLE: &str = "thread-overflow";
    if is_child(ROLE) {
        let _rt = Runtime::builder().workers(1).build().unwrap();
        let t = std::thread::Builder::new()
            .name("plain-thread".into())
            .stack_size(256 << 10)
            .spawn(|| recurse_forever(0))
            .unwrap();
        let _ = t.join();
        eprintln!("child: the recursion returned?!");
        return;
    }
    let run = run_child("rust_thread_overflow_report_still_appears", ROLE, &[]);
    run.assert_ran_one_test();
    assert_eq!(run.signal(), Some(SIGABRT), "\n{run}");
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("thread 'plain-thread'")
                && l.ends_with("has overflowed its stack")),
        "Rust's own overflow report is missing\n{run}"
    );
    assert!(reports(&run).is_empty(), "\n{run}");
}
