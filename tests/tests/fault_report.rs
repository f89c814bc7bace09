//! What the fault handler prints, checked in child processes (issue #9 §6):
//!
//! * a coroutine's name is printed escaped, so a name with a newline cannot
//!   forge a second report line, and cut on a character boundary;
//! * a wild write into another coroutine's guard page is not that
//!   coroutine's overflow: the line says "hit the guard page of coroutine
//!   #N" and names the culprit (a coroutine, or a thread outside any).
//!
//! Each test re-runs this binary on itself with `SPINDLE_TEST_CHILD` naming
//! the crash, and asserts on the child's exit signal and stderr.

use spindle::stack::StackInfo;
use spindle::{chan, Builder, Runtime, DEFAULT_STACK_MAX};
use spindle_tests::{is_child, recurse_forever, run_child, ChildRun, SIGABRT};

/// The child's lines that start with `spindle:`.
fn spindle_lines(run: &ChildRun) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("spindle:"))
        .collect()
}

/// The child overflows a coroutine named `name`; returns its one report line.
fn overflow_named(test: &str, role: &str, name: &str) -> String {
    if is_child(role) {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let h = Builder::new()
            .name(name)
            .spawn_on(&rt, || recurse_forever(0))
            .unwrap();
        let _ = h.join();
        unreachable!("the recursion returned");
    }
    let run = run_child(test, role, &[]);
    run.assert_ran_one_test();
    assert_eq!(run.signal(), Some(SIGABRT), "\n{run}");
    let lines = spindle_lines(&run);
    assert_eq!(lines.len(), 1, "exactly one spindle line\n{run}");
    assert!(!run.stderr.contains('\u{FFFD}'), "invalid UTF-8\n{run}");
    lines[0].to_string()
}

#[test]
fn a_newline_in_the_name_cannot_forge_a_report_line() {
    let line = overflow_named(
        "a_newline_in_the_name_cannot_forge_a_report_line",
        "forged-name",
        "a\nspindle: coroutine #0 (forged) overflowed its 1 KiB stack",
    );
    // Escaped, then cut to the label's 16 bytes.
    let expected_name = r"a\nspindle: coro";
    assert!(
        line.starts_with("spindle: coroutine #")
            && line.ends_with(&format!(
                " ({expected_name}) overflowed its {} KiB stack",
                DEFAULT_STACK_MAX >> 10
            )),
        "{line}"
    );
}

#[test]
fn a_long_name_is_cut_on_a_character_boundary() {
    let name = format!("x{}", "é".repeat(20));
    let line = overflow_named(
        "a_long_name_is_cut_on_a_character_boundary",
        "utf8-name",
        &name,
    );
    // 1 + 7 * 2 bytes fit in the label's 16; half an 'é' must not.
    let cut = format!("x{}", "é".repeat(7));
    assert!(
        line.ends_with(&format!(
            " ({cut}) overflowed its {} KiB stack",
            DEFAULT_STACK_MAX >> 10
        )),
        "{line}"
    );
}

/// Park a coroutine named "victim" and return where its stack slot is (and
/// the sender that keeps it parked).
fn park_victim(rt: &Runtime) -> (StackInfo, chan::Sender<()>) {
    let (info_tx, info_rx) = chan::bounded(1);
    let (hold_tx, hold_rx) = chan::bounded::<()>(0);
    let victim = Builder::new()
        .name("victim")
        .spawn_on(rt, move || {
            info_tx.send(StackInfo::current().unwrap()).unwrap();
            let _ = hold_rx.recv();
        })
        .unwrap();
    drop(victim);
    (info_rx.recv().unwrap(), hold_tx)
}

/// A write to the lowest byte of a slot: its guard page.
fn write_guard(info: StackInfo) {
    let p = std::ptr::without_provenance_mut::<u8>(info.base);
    // SAFETY: deliberately unsound: the test wants the fault.
    unsafe { p.write_volatile(1) };
}

fn assert_guard_hit(run: &ChildRun, culprit: &str) {
    run.assert_ran_one_test();
    assert_eq!(run.signal(), Some(SIGABRT), "\n{run}");
    let lines = spindle_lines(run);
    assert_eq!(lines.len(), 1, "exactly one spindle line\n{run}");
    let line = lines[0];
    let rest = line
        .strip_prefix(&format!("spindle: {culprit}"))
        .unwrap_or_else(|| panic!("the line does not start with the culprit\n{run}"));
    let victim = rest
        .strip_prefix(" hit the guard page of coroutine #")
        .unwrap_or_else(|| panic!("not a guard-hit line\n{run}"));
    let (id, name) = victim.split_once(' ').expect("id and name");
    assert!(id.parse::<u64>().is_ok(), "\n{run}");
    assert_eq!(name, "(victim)", "\n{run}");
    assert!(!run.stderr.contains("overflowed"), "\n{run}");
}

#[test]
fn a_wild_write_from_a_coroutine_names_both_coroutines() {
    const ROLE: &str = "wild-coroutine";
    if is_child(ROLE) {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let (info, _hold) = park_victim(&rt);
        let h = Builder::new()
            .name("attacker")
            .spawn_on(&rt, move || write_guard(info))
            .unwrap();
        let _ = h.join();
        unreachable!("the write went through");
    }
    let run = run_child(
        "a_wild_write_from_a_coroutine_names_both_coroutines",
        ROLE,
        &[],
    );
    let line = spindle_lines(&run)
        .first()
        .copied()
        .unwrap_or("")
        .to_string();
    let culprit = line
        .strip_prefix("spindle: ")
        .and_then(|l| l.split_once(" hit "))
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    assert!(
        culprit.starts_with("coroutine #") && culprit.ends_with(" (attacker)"),
        "the culprit is not the attacking coroutine\n{run}"
    );
    assert_guard_hit(&run, &culprit);
}

#[test]
fn a_wild_write_from_a_thread_says_so() {
    const ROLE: &str = "wild-thread";
    if is_child(ROLE) {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let (info, _hold) = park_victim(&rt);
        write_guard(info);
        unreachable!("the write went through");
    }
    let run = run_child("a_wild_write_from_a_thread_says_so", ROLE, &[]);
    assert_guard_hit(&run, "a thread outside any coroutine");
}
