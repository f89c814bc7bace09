//! `mem --breakdown` follows the memory to its kinds: three snapshots
//! (baseline, after the warm-up, parked), and the parked coroutines' stack
//! pages show up as resident stack slots, at least one page each.

mod cli_common;

use cli_common::{num, run_json};

#[test]
fn the_breakdown_finds_each_parked_coroutine_s_stack_page() {
    let count = 10_000.0;
    let doc = run_json(&["mem", "--count", "1e4", "--reused", "--breakdown", "--json"]);
    let run = &doc["mem"][0];
    let phases = run["breakdown"].as_array().expect("a breakdown");
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["baseline", "after warm-up", "parked"], "{run}");
    let (base, parked) = (&phases[0]["at"], &phases[2]["at"]);
    let slots = num(parked, "stack_slots") - num(base, "stack_slots");
    // 4 KiB is the smallest page there is: a page each, whatever the size.
    assert!(
        slots >= count * 4096.0,
        "{slots} B of resident stack slots for {count} parked coroutines"
    );
    assert!(
        num(parked, "page_tables") > num(base, "page_tables"),
        "{run}"
    );
}

#[test]
fn the_text_report_shows_the_breakdown_table() {
    let out = cli_common::run(&["mem", "--count", "1e4", "--breakdown"]);
    assert!(out.status.success(), "{}", cli_common::stderr(&out));
    let text = cli_common::stdout(&out);
    assert!(text.contains("stack slots (mincore)"), "{text}");
}
