//! The book's files, for the tests that check it against the tree
//! (`docs_commands.rs`, `docs_links.rs`): every Markdown file under `docs/`,
//! plus the root README and the CLI's README.

use std::path::{Path, PathBuf};

/// The repository root, without `..` in it.
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
}

/// Every `.md` file under `dir`, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("reading a docs directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|x| x == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Each book file as (its path from the repository root, its path, its text).
pub fn book_files() -> Vec<(String, PathBuf, String)> {
    let root = repo_root();
    let mut files = markdown_files(&root.join("docs"));
    assert!(!files.is_empty(), "no Markdown files under docs/");
    files.push(root.join("README.md"));
    files.push(root.join("bench-cli/README.md"));
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            let name = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .display()
                .to_string();
            (name, file, text)
        })
        .collect()
}
