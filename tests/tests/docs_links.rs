//! Every file and name the book points at still exists.
//!
//! The book (`docs/**/*.md`, the root README and the CLI's README) sends
//! readers into the source: it links files, quotes paths, and names the
//! function or type to look for in a file. When code moves or is renamed,
//! those pointers rot silently. This test checks three things:
//!
//! 1. every relative Markdown link (`[text](target)`, outside fenced code)
//!    names a file or directory that exists, relative to the page;
//! 2. every `runtime/src/...` or `bench-cli/src/...` path anywhere in the
//!    text (code blocks included) exists, relative to the repository root;
//! 3. every name tied to a source file in one of the forms below occurs in
//!    that file as a whole word (each `::` segment of it):
//!    - `` `file.rs::name` ``;
//!    - a file followed by `, ` and names: `` [`task/mod.rs`](…), `Task` ``
//!      (a list `` `a`, `b` `` after the comma is read to its end);
//!    - a name followed by ` in `, ` (` or `, ` and a file:
//!      `` `SLAB_BYTES` in [`stack/pool.rs`](…) ``,
//!      `` `mprotect_maps` (`bench-cli/src/measure/preflight.rs`) ``.
//!
//!    A file is a link whose target ends in `.rs`, or a quoted
//!    `runtime/src/…` / `bench-cli/src/…` path. A name is a code span that
//!    is a Rust path (`Worker::find_task`, `release_all`, `release_all()`).
//!
//! The parser is deliberately small: it reads one paragraph at a time with
//! line breaks folded into spaces, and ignores anything it does not
//! recognise rather than guessing.

mod docs_common;

use std::path::{Path, PathBuf};

/// A piece of a paragraph.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Text(String),
    Code(String),
    Link { text: String, target: String },
}

/// The text outside fenced code blocks, as paragraphs with line breaks
/// folded into single spaces.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut fenced = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            fenced = !fenced;
        }
        if fenced || trimmed.starts_with("```") || trimmed.is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(trimmed);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Split a paragraph into text, code spans and links.
fn tokens(paragraph: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = paragraph;
    while let Some(c) = rest.chars().next() {
        let taken = match c {
            '`' => rest[1..]
                .find('`')
                .map(|end| (Token::Code(rest[1..1 + end].to_string()), end + 2)),
            '[' => rest.find("](").and_then(|mid| {
                let label = &rest[1..mid];
                let close = rest[mid..].find(')')?;
                // A `[` inside the label means this `[` opens no link.
                (!label.contains('[')).then(|| {
                    let target = rest[mid + 2..mid + close].trim();
                    let target = target.split_whitespace().next().unwrap_or("");
                    let token = Token::Link {
                        text: label.to_string(),
                        target: target.to_string(),
                    };
                    (token, mid + close + 1)
                })
            }),
            _ => None,
        };
        match taken {
            Some((token, len)) => {
                if !text.is_empty() {
                    out.push(Token::Text(std::mem::take(&mut text)));
                }
                out.push(token);
                rest = &rest[len..];
            }
            None => {
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if !text.is_empty() {
        out.push(Token::Text(text));
    }
    out
}

/// A link target that points into this repository: no scheme, not a bare
/// `#fragment`. Returns the path part.
fn local_target(target: &str) -> Option<&str> {
    if target.contains("://") || target.starts_with("mailto:") || target.starts_with('#') {
        return None;
    }
    let path = target.split('#').next().unwrap_or("");
    (!path.is_empty()).then_some(path)
}

/// Every `runtime/src/…` and `bench-cli/src/…` path in `text`.
fn source_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["runtime/src/", "bench-cli/src/"] {
        for (i, _) in text.match_indices(prefix) {
            let path: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
                .collect();
            out.push(path.trim_end_matches(['.', ',']).to_string());
        }
    }
    out
}

/// Is `code` a Rust path such as `Worker::find_task` (an optional `()` at
/// the end)? Returns it without the `()`.
fn rust_name(code: &str) -> Option<&str> {
    let name = code.strip_suffix("()").unwrap_or(code);
    let ok = !name.is_empty()
        && name.split("::").all(|seg| {
            seg.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    ok.then_some(name)
}

/// `path` with `.` and `dir/..` pairs folded away, without touching the
/// file system (so that a missing file still gets a readable name).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The file a token names: a link to a `.rs` file (resolved against the
/// page's directory), or a quoted source path (against the root).
fn source_file(token: &Token, page_dir: &Path, root: &Path) -> Option<PathBuf> {
    match token {
        Token::Link { target, .. } => {
            let path = local_target(target)?;
            path.ends_with(".rs")
                .then(|| normalize(&page_dir.join(path)))
        }
        Token::Code(code) => {
            let quoted = code.starts_with("runtime/src/") || code.starts_with("bench-cli/src/");
            (quoted && code.ends_with(".rs")).then(|| root.join(code))
        }
        Token::Text(_) => None,
    }
}

/// The (file, name) pairs a paragraph ties together (module docs above).
fn name_refs(paragraph: &str, page_dir: &Path, root: &Path) -> Vec<(PathBuf, String)> {
    let toks = tokens(paragraph);
    let mut out = Vec::new();
    let is_text =
        |t: &Token, words: &[&str]| matches!(t, Token::Text(s) if words.contains(&s.trim()));
    for (i, tok) in toks.iter().enumerate() {
        // `file.rs::name`
        if let Token::Code(code) = tok {
            if let Some((file, name)) = code.split_once(".rs::") {
                if let Some(name) = rust_name(name) {
                    let file = format!("{file}.rs");
                    let path = if file.starts_with("runtime/") || file.starts_with("bench-cli/") {
                        root.join(&file)
                    } else {
                        root.join("runtime/src").join(&file)
                    };
                    out.push((path, name.to_string()));
                }
            }
        }
        let Some(file) = source_file(tok, page_dir, root) else {
            continue;
        };
        // file, `a`, `b`
        let mut j = i + 1;
        while j + 1 < toks.len() && is_text(&toks[j], &[","]) {
            let Token::Code(code) = &toks[j + 1] else {
                break;
            };
            let Some(name) = rust_name(code) else { break };
            out.push((file.clone(), name.to_string()));
            j += 2;
        }
        // `name` in file, `name` (file, `name`, file
        if i >= 2 && is_text(&toks[i - 1], &["in", "(", ","]) {
            if let Token::Code(code) = &toks[i - 2] {
                if let Some(name) = rust_name(code) {
                    out.push((file.clone(), name.to_string()));
                }
            }
        }
    }
    out
}

/// Does `word` occur in `source` with no identifier character either side?
fn has_word(source: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    source.match_indices(word).any(|(i, _)| {
        !source[..i].chars().next_back().is_some_and(ident)
            && !source[i + word.len()..].chars().next().is_some_and(ident)
    })
}

/// Everything in one page that does not exist, one line each.
fn problems(name: &str, page: &Path, text: &str, root: &Path) -> Vec<String> {
    let dir = page.parent().expect("a page has a directory");
    let mut out = Vec::new();
    for path in source_paths(text) {
        if !root.join(&path).exists() {
            out.push(format!("{name}: quoted path {path} does not exist"));
        }
    }
    for paragraph in paragraphs(text) {
        for token in tokens(&paragraph) {
            if let Token::Link { target, text } = token {
                if let Some(path) = local_target(&target) {
                    if !dir.join(path).exists() {
                        out.push(format!("{name}: link [{text}]({target}) points at nothing"));
                    }
                }
            }
        }
        for (file, ident) in name_refs(&paragraph, dir, root) {
            let shown = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .display()
                .to_string();
            match std::fs::read_to_string(&file) {
                Err(_) => out.push(format!(
                    "{name}: `{ident}` is tied to {shown}, which cannot be read"
                )),
                Ok(source) => {
                    for seg in ident.split("::").filter(|seg| !has_word(&source, seg)) {
                        out.push(format!("{name}: `{ident}`: no `{seg}` in {shown}"));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_link_path_and_name_in_the_book_exists() {
    let root = docs_common::repo_root();
    let mut all = Vec::new();
    let mut names = 0;
    for (name, page, text) in docs_common::book_files() {
        let dir = page.parent().unwrap().to_path_buf();
        names += paragraphs(&text)
            .iter()
            .map(|p| name_refs(p, &dir, &root).len())
            .sum::<usize>();
        all.extend(problems(&name, &page, &text, &root));
    }
    // The book ties dozens of names to files; finding none means the
    // parser broke, not that the book is clean.
    assert!(names >= 20, "only {names} file-and-name references found");
    assert!(
        all.is_empty(),
        "the book points at things that do not exist:\n{}",
        all.join("\n")
    );
}

#[test]
fn stale_pointers_are_reported() {
    let root = docs_common::repo_root();
    let page = root.join("docs/test-page.md");
    let text = "\
The cell ([`park/cell.rs`](../runtime/src/park/cell.rs), `WaitCell::put`)
and `SchedState::after_park` in [`task/state.rs`](../runtime/src/task/state.rs);
a [`chapter`](no-such-chapter.md#top); `runtime/src/sched/runtime.rs`;
[`sched/mod.rs`](../runtime/src/sched/mod.rs), `park_current`, `wake`.
`stack/vma_budget.rs::check_vma_budget` and `task/mod.rs::new_task`.

```sh
cargo run --manifest-path bench-cli/src/preflight.rs
```
";
    let mut found = problems("page", &page, text, &root);
    found.sort();
    let mut expected = vec![
        "page: quoted path runtime/src/park/cell.rs does not exist",
        "page: quoted path runtime/src/sched/runtime.rs does not exist",
        "page: quoted path bench-cli/src/preflight.rs does not exist",
        "page: link [`park/cell.rs`](../runtime/src/park/cell.rs) points at nothing",
        "page: link [`chapter`](no-such-chapter.md#top) points at nothing",
        "page: `WaitCell::put` is tied to runtime/src/park/cell.rs, which cannot be read",
        "page: `SchedState::after_park`: no `after_park` in runtime/src/task/state.rs",
        "page: `park_current`: no `park_current` in runtime/src/sched/mod.rs",
        "page: `new_task`: no `new_task` in runtime/src/task/mod.rs",
    ];
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn the_tokenizer_reads_code_links_and_text() {
    assert_eq!(
        tokens("`A::b` in [`x.rs`](../x.rs#L3 \"t\"), [no link"),
        vec![
            Token::Code("A::b".into()),
            Token::Text(" in ".into()),
            Token::Link {
                text: "`x.rs`".into(),
                target: "../x.rs#L3".into()
            },
            Token::Text(", [no link".into()),
        ]
    );
    assert_eq!(rust_name("release_all()"), Some("release_all"));
    assert_eq!(rust_name("lock decq"), None);
    assert!(has_word("fn commit_park(self)", "commit_park"));
    assert!(!has_word("fn commit_park_now()", "commit_park"));
}
