//! "The life of a coroutine" at the top of `runtime/src/lib.rs` names each
//! step as `file::function`. This test reads that section and checks that
//! every named function is defined in the named file, so the map cannot rot
//! when code moves.

use std::path::{Path, PathBuf};

fn runtime_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/src")
}

/// The `` `path.rs::name` `` references in the section of `lib_rs` that
/// starts at "## The life of a coroutine" and ends at the next heading.
fn steps(lib_rs: &str) -> Vec<(String, String)> {
    let start = lib_rs
        .find("## The life of a coroutine")
        .expect("lib.rs has a 'The life of a coroutine' section");
    let rest = &lib_rs[start + 2..];
    let section = &rest[..rest.find("\n//! ## ").unwrap_or(rest.len())];
    // Join the doc lines so that a reference broken across lines is whole.
    let text: String = section
        .lines()
        .map(|l| l.trim_start().trim_start_matches("//!").trim())
        .collect::<Vec<_>>()
        .join(" ");
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|code| {
            let (file, function) = code.split_once("::")?;
            file.ends_with(".rs")
                .then(|| (file.to_string(), function.to_string()))
        })
        .collect()
}

/// Is `function` defined (`fn function(` or `fn function<`) in `source`?
fn defines(source: &str, function: &str) -> bool {
    let needle = format!("fn {function}");
    source.match_indices(&needle).any(|(i, _)| {
        matches!(
            source[i + needle.len()..].chars().next(),
            Some('(') | Some('<')
        )
    })
}

/// The steps of `lib_rs` whose function is not defined in its file.
fn missing(lib_rs: &str, src: &Path) -> Vec<String> {
    steps(lib_rs)
        .into_iter()
        .filter(|(file, function)| {
            let source = std::fs::read_to_string(src.join(file)).unwrap_or_default();
            !defines(&source, function)
        })
        .map(|(file, function)| format!("{file}::{function}"))
        .collect()
}

#[test]
fn every_step_of_the_life_map_exists() {
    let src = runtime_src();
    let lib_rs = std::fs::read_to_string(src.join("lib.rs")).expect("read runtime/src/lib.rs");
    let steps = steps(&lib_rs);
    assert!(
        steps.len() >= 15,
        "expected the whole path from spawn to finish, found {steps:?}"
    );
    let missing = missing(&lib_rs, &src);
    assert!(
        missing.is_empty(),
        "lib.rs names functions that are not in the named files: {missing:?}"
    );
}

/// The checker itself catches a renamed function and a moved file.
#[test]
fn the_checker_reports_a_stale_step() {
    let doc = "//! ## The life of a coroutine\n\
               //! 1. `sched/mod.rs::wake` then `sched/mod.rs::no_such_function`\n\
               //!    and `no/such/file.rs::wake`.\n\
               //! ## Next\n\
               //! `sched/mod.rs::also_not_checked`\n";
    assert_eq!(
        missing(doc, &runtime_src()),
        ["sched/mod.rs::no_such_function", "no/such/file.rs::wake"]
    );
    assert!(defines("pub(crate) fn wake(task: TaskRef)", "wake"));
    assert!(defines("fn spawn_from<F, T>(", "spawn_from"));
    assert!(!defines("fn wake_all(", "wake"));
}
