//! `switch --row` runs one row and nothing else (what `count.sh` in
//! `docs/tools/downstream` relies on to count one row's instructions), and
//! an unknown row is refused on one line that lists the known ones.

mod cli_common;

use cli_common::{run, run_json, stderr, stdout};

#[test]
fn row_runs_only_that_row() {
    for row in [
        "yield_pingpong",
        "chan_pingpong_1worker",
        "thread_pipe_same_cpu",
    ] {
        let v = run_json(&[
            "switch",
            "--row",
            row,
            "--n",
            "1000",
            "--thread-n",
            "100",
            "--repeat",
            "1",
            "--json",
        ]);
        let rows = v["switch"]["rows"].as_array().expect("switch.rows");
        let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
        assert_eq!(names, [row], "{v}");
    }
}

#[test]
fn unknown_row_is_refused_on_one_line() {
    let out = run(&["switch", "--row", "no_such_row"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("'no_such_row'") && err.contains("chan_pingpong_1worker"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}
