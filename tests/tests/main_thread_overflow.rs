//! Rust's own *main-thread* stack overflow report survives spindle's handler.
//!
//! spindle installs a SIGSEGV/SIGBUS handler over the one Rust's runtime put
//! there, and must chain to it for every fault that is not a coroutine guard
//! hit. Rust's handler recognises the main thread's guard page and prints
//! `thread 'main' has overflowed its stack` before aborting. libtest runs
//! every test on a spawned thread, so this file has its own `main`
//! (`harness = false`): in a child process the main thread starts a runtime
//! (installing spindle's handler) and then recurses without bound.

use spindle::Runtime;
use spindle_tests::{is_child, recurse_forever, run_command, self_command, SIGABRT};

const ROLE: &str = "main-thread-overflow";

/// Rust prints `thread '<name>' has overflowed its stack`, and recent
/// versions add the thread id after the name: `thread 'main' (1234) has ...`.
fn rust_overflow_line(stderr: &str, thread: &str) -> bool {
    stderr.lines().any(|l| {
        l.starts_with(&format!("thread '{thread}'")) && l.ends_with("has overflowed its stack")
    })
}

fn main() {
    if is_child(ROLE) {
        let rt = Runtime::builder().workers(1).build().unwrap();
        assert_eq!(rt.block_on(|| 1), 1); // the handler is installed and live
        recurse_forever(0);
        eprintln!("child: the recursion returned?!");
        return;
    }
    // cargo passes libtest options (--list, filters); this binary has one
    // test and runs it unless asked only to list.
    if std::env::args().any(|a| a == "--list") {
        println!("main_thread_overflow: test");
        return;
    }
    println!("running 1 test");
    let run = run_command(self_command(ROLE));
    assert_eq!(
        run.signal(),
        Some(SIGABRT),
        "Rust's main-thread overflow handling must abort\n{run}"
    );
    assert!(
        rust_overflow_line(&run.stderr, "main"),
        "Rust's main-thread overflow report is missing\n{run}"
    );
    assert!(
        !run.stderr.contains("spindle:"),
        "spindle claimed a main-thread overflow\n{run}"
    );
    println!("test main_thread_overflow ... ok");
}
