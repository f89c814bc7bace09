//! A negative value for a flag that takes none is refused by name.
//!
//! clap reads `--repeat -1` as the flag followed by an unknown argument
//! `-1` unless the flag accepts values starting with `-`; its message then
//! ("unexpected argument '-1' found") does not say which flag was wrong.
//! Every numeric flag takes the `-1` and its parser refuses it, naming the
//! flag, on one line, with exit code 2.

mod cli_common;

use cli_common::{run, stderr, stdout};

#[test]
fn negative_values_name_their_flag() {
    for args in [
        &["--repeat", "-1"][..],
        &["--workers", "-2"],
        &["--stack-max", "-1"],
        &["mem", "--count", "-5"],
        &["mem", "--workers", "-1"],
        &["spawn", "--workers", "-1"],
        &["fanout", "--count", "-1"],
        &["threads", "--stack-size", "-64K"],
        &["grow", "--frame-bytes", "-64"],
        &["grow", "--depth", "-3"],
        &["compare", "--fanout-count", "-1"],
        &["switch", "--repeat", "-1"],
    ] {
        let out = run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        let flag = args.iter().rev().nth(1).expect("a flag before the value");
        assert!(err.contains(&format!("'{flag} <")), "{args:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
}
