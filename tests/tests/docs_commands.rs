//! Every `spindle-bench` command quoted in `docs/` still parses.
//!
//! The book in `docs/` quotes each command the way a reader runs it from the
//! repository root: `cargo run --release -p spindle-bench -- <args>`, or
//! without `-- <args>` for the default suite, in code blocks and in inline
//! code, sometimes after environment variables (`SPINDLE_GUARD=mprotect`).
//! This test finds every such command in `docs/**/*.md` and runs the built
//! binary with the same arguments plus `--help`. clap checks every argument
//! that comes before `--help` (an unknown subcommand or flag, or a bad count
//! or size, exits 2) and `--help` keeps each run instant, so a command the
//! CLI no longer accepts fails here and the docs cannot drift from the CLI.

mod cli_common;
mod docs_common;

use cli_common::{run, stderr};

/// How the docs quote a command (the one convention they use).
const PREFIX: &str = "cargo run --release -p spindle-bench";

/// One quoted command: where it is, and the arguments after `--`.
#[derive(Debug, Clone, PartialEq)]
struct Quoted {
    place: String,
    args: Vec<String>,
}

/// Split a command tail into words the way a POSIX shell would for the
/// simple commands in the docs (spaces, single and double quotes), stopping
/// at the first shell operator or comment.
fn shell_words(tail: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = tail.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        if matches!(first, '#' | '|' | '&' | ';' | '>' | '<' | '(' | ')') {
            break;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            match c {
                c if c.is_whitespace() => break,
                '|' | '&' | ';' | '>' | '<' => break,
                '\'' | '"' => {
                    chars.next();
                    let mut closed = false;
                    for q in chars.by_ref() {
                        if q == c {
                            closed = true;
                            break;
                        }
                        word.push(q);
                    }
                    if !closed {
                        return Err(format!("unclosed quote in `{tail}`"));
                    }
                }
                '$' | '`' | '\\' | '*' | '?' => {
                    return Err(format!("cannot check a command with `{c}` in it: `{tail}`"));
                }
                _ => {
                    word.push(c);
                    chars.next();
                }
            }
        }
        words.push(word);
    }
    Ok(words)
}

/// The arguments of every command quoted in `text`; `name` labels errors.
/// A command inside inline code ends at the closing backtick (which may be
/// on a later line); elsewhere (fenced blocks) it ends with the line.
fn quoted_commands(name: &str, text: &str) -> Result<Vec<Quoted>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let mut from = 0;
        while let Some(pos) = line[from..].find(PREFIX) {
            let at = from + pos;
            from = at + PREFIX.len();
            let place = format!("{name}:{}", i + 1);
            let rest = &line[from..];
            // `spindle-bench-foo` or `spindle-bench2` is not our command.
            if rest
                .chars()
                .next()
                .is_some_and(|c| !c.is_whitespace() && c != '`')
            {
                continue;
            }
            let in_inline_code = line[..at].matches('`').count() % 2 == 1;
            let tail = if in_inline_code {
                let mut tail = String::new();
                let mut pieces = std::iter::once(rest).chain(lines[i + 1..].iter().copied());
                loop {
                    let Some(piece) = pieces.next() else {
                        return Err(format!("{place}: inline code never closes"));
                    };
                    if let Some(end) = piece.find('`') {
                        tail.push_str(&piece[..end]);
                        break;
                    }
                    tail.push_str(piece);
                    tail.push(' ');
                }
                tail
            } else {
                rest.to_string()
            };
            let words = shell_words(&tail).map_err(|e| format!("{place}: {e}"))?;
            let args = match words.split_first() {
                None => Vec::new(),
                Some((dashes, args)) if dashes == "--" => args.to_vec(),
                Some(_) => {
                    return Err(format!(
                        "{place}: `{PREFIX}{tail}` is not in the form `{PREFIX} -- <args>`"
                    ))
                }
            };
            out.push(Quoted { place, args });
        }
    }
    Ok(out)
}

/// Every command quoted anywhere in docs/, and in the two READMEs.
fn all_quoted() -> Vec<Quoted> {
    let mut all = Vec::new();
    for (name, _, text) in docs_common::book_files() {
        match quoted_commands(&name, &text) {
            Ok(found) => all.extend(found),
            Err(e) => panic!("{e}"),
        }
    }
    all
}

#[test]
fn every_command_quoted_in_the_docs_still_parses() {
    let quoted = all_quoted();
    assert!(
        !quoted.is_empty(),
        "found no `{PREFIX}` command in docs/: the docs or this test changed convention"
    );
    let mut seen = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for q in &quoted {
        if !seen.insert(q.args.clone()) {
            continue;
        }
        let mut args: Vec<&str> = q.args.iter().map(String::as_str).collect();
        args.push("--help");
        let out = run(&args);
        if !out.status.success() {
            failures.push(format!(
                "docs/{}: `spindle-bench {}` no longer parses ({}): {}",
                q.place,
                q.args.join(" "),
                out.status,
                stderr(&out).trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} distinct docs commands fail:\n{}",
        failures.len(),
        seen.len(),
        failures.join("\n")
    );
}

/// The check above is only worth something if `--help` does not hide a bad
/// argument before it.
#[test]
fn help_does_not_hide_a_bad_argument() {
    for bad in [
        &["mem", "--count", "lots", "--help"][..],
        &["mem", "--no-such-flag", "--help"],
        &["no-such-subcommand", "--help"],
        &["grow", "--frame-bytes", "1000", "--help"],
    ] {
        let out = run(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?} was accepted");
    }
    let out = run(&["mem", "--count", "1e5", "--stack-max", "128K", "--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_extractor_reads_both_quoting_styles() {
    let text = "Run `cargo run --release -p spindle-bench -- mem --count 1e5` now.\n\
                ```sh\n\
                SPINDLE_GUARD=mprotect cargo run --release -p spindle-bench -- mem --count 2e4  # slow\n\
                cargo run --release -p spindle-bench            # default suite\n\
                cargo run --release -p spindle-bench -- grow | tail -3\n\
                ```\n\
                Split `cargo run --release -p spindle-bench -- switch\n\
                --n 1e5` over two lines, and `cargo run --release -p spindle-bench-x` is not ours.\n";
    let args: Vec<Vec<String>> = quoted_commands("t.md", text)
        .unwrap()
        .into_iter()
        .map(|q| q.args)
        .collect();
    let want: Vec<Vec<&str>> = vec![
        vec!["mem", "--count", "1e5"],
        vec!["mem", "--count", "2e4"],
        vec![],
        vec!["grow"],
        vec!["switch", "--n", "1e5"],
    ];
    assert_eq!(args, want);
    assert!(quoted_commands("t.md", "`cargo run --release -p spindle-bench mem`").is_err());
    assert!(quoted_commands("t.md", "`cargo run --release -p spindle-bench -- mem $N`").is_err());
}
