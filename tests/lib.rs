//! Shared helpers for the spindle stress and end-to-end tests in `tests/`.
//!
//! * **Child processes.** Crash tests (stack overflow, segfault) and the
//!   forced-mprotect run re-execute the test binary itself on one test, with an
//!   environment variable ([`CHILD_ENV`]) that tells that test to do the
//!   dangerous part. `SPINDLE_CHILD_RUNNER` (for example
//!   `qemu-aarch64-static -L /usr/aarch64-linux-gnu`) is put in front of the
//!   command, because qemu-user without binfmt cannot exec a foreign binary.
//! * **Sizing.** Stress counts shrink in mprotect guard mode (2 VMAs per stack,
//!   about 32k stacks per process; also the mode qemu-user ends up in, where
//!   everything is 10-50x slower).
//! * **Hang detection.** A lost wake-up shows up as a hang. [`watchdog`] turns
//!   a stall (no progress reported for a long while) into a test failure
//!   instead of a stuck `cargo test`. It never asserts on speed: the limit is
//!   only a deadlock detector and can be raised with `SPINDLE_TEST_STALL_SECS`.
//! * **AddressSanitizer.** `.ci/run` runs the stress tests instrumented, with
//!   `SPINDLE_ASAN=1`; the few tests whose subject ASan changes skip
//!   themselves through [`under_asan`], saying why.

use std::ffi::OsString;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub use spindle::GuardMode;

/// Environment variable that puts a re-executed test binary in "child" mode.
/// Its value names the role the child test should play.
pub const CHILD_ENV: &str = "SPINDLE_TEST_CHILD";

/// Environment variable with a command prefix for child processes.
pub const CHILD_RUNNER_ENV: &str = "SPINDLE_CHILD_RUNNER";

/// The role this process was started with, if it is a child.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ENV).ok().filter(|s| !s.is_empty())
}

/// Is this process a child started to play `role`?
pub fn is_child(role: &str) -> bool {
    child_role().as_deref() == Some(role)
}

/// A command that runs this test binary again, prefixed by
/// `SPINDLE_CHILD_RUNNER` if set, with [`CHILD_ENV`] set to `role`.
pub fn self_command(role: &str) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let runner: Vec<OsString> = std::env::var(CHILD_RUNNER_ENV)
        .map(|r| r.split_whitespace().map(OsString::from).collect())
        .unwrap_or_default();
    let mut cmd = match runner.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.env(CHILD_ENV, role)
        // A backtrace would only add lines to the stderr we inspect.
        .env("RUST_BACKTRACE", "0");
    cmd
}

/// A command that re-runs this (libtest) test binary on exactly one test,
/// `test`, with [`CHILD_ENV`] set to `role`.
pub fn child_command(test: &str, role: &str) -> Command {
    let mut cmd = self_command(role);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    cmd
}

/// What a child process did.
#[derive(Debug)]
pub struct ChildRun {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ChildRun {
    /// The signal that killed the child, if one did.
    pub fn signal(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.status.signal()
    }

    /// Panic with the child's output unless libtest in the child really
    /// started the one test we asked for (a misspelt name runs 0 tests and
    /// exits 0, which must not pass for anything).
    pub fn assert_ran_one_test(&self) {
        assert!(
            self.stdout.contains("running 1 test"),
            "child did not run exactly one test\n{self}"
        );
    }

    /// Panic with the child's output unless it exited 0 after passing its test.
    pub fn assert_passed(&self) {
        self.assert_ran_one_test();
        assert!(
            self.status.success() && self.stdout.contains("1 passed"),
            "child failed\n{self}"
        );
    }
}

impl std::fmt::Display for ChildRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- status: {:?} (signal {:?})\n--- stdout:\n{}\n--- stderr:\n{}",
            self.status,
            self.signal(),
            self.stdout,
            self.stderr
        )
    }
}

/// Run `test` of this binary in a child as `role`, with extra environment.
pub fn run_child(test: &str, role: &str, env: &[(&str, &str)]) -> ChildRun {
    let mut cmd = child_command(test, role);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_command(cmd)
}

/// Run `cmd` to completion and capture what it did.
pub fn run_command(mut cmd: Command) -> ChildRun {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start child {cmd:?}: {e}"));
    ChildRun {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Signal numbers the crash tests expect (the same on x86_64 and aarch64
/// Linux; the test package does not depend on `libc`).
pub const SIGABRT: i32 = 6;
pub const SIGSEGV: i32 = 11;

/// The process-wide guard mode (panics if the runtime cannot choose one).
pub fn guard_mode() -> GuardMode {
    spindle::stack::guard::mode().expect("spindle guard mode")
}

/// `RuntimeBuilder::compact_after` is refused here (the mprotect fallback
/// off x86_64, as under qemu-user: `GuardMode::compacts`).
pub fn compaction_refused() -> bool {
    !guard_mode().compacts()
}

/// Pick a stress count by guard mode: `regions` with guard regions,
/// `mprotect` with mprotect guards (VMA-limited, and what qemu-user runs).
pub fn by_mode(regions: usize, mprotect: usize) -> usize {
    match guard_mode() {
        GuardMode::Regions => regions,
        GuardMode::Mprotect => mprotect,
    }
}

/// A progress counter shared between a test body and its [`watchdog`].
#[derive(Clone, Debug, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// Report that the test moved forward.
    pub fn tick(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// How long a test may go without reporting progress before [`watchdog`]
/// declares it hung (`SPINDLE_TEST_STALL_SECS`, default 120).
pub fn stall_limit() -> Duration {
    let secs = std::env::var("SPINDLE_TEST_STALL_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}

/// Run `body` on its own thread and return its result. If `body` reports no
/// [`Progress`] for [`stall_limit`], fail the test: a lost wake-up or a
/// deadlock (the stuck thread is left behind). A panic in `body` is resumed.
pub fn watchdog<T, F>(what: &str, body: F) -> T
where
    F: FnOnce(Progress) -> T + Send + 'static,
    T: Send + 'static,
{
    let progress = Progress::default();
    let (done_tx, done_rx) = mpsc::channel();
    let p = progress.clone();
    std::thread::Builder::new()
        .name(format!("watched: {what}"))
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(p)));
            let _ = done_tx.send(r);
        })
        .expect("spawn watched thread");
    let limit = stall_limit();
    let mut last = progress.get();
    let mut since = Instant::now();
    loop {
        match done_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(v)) => return v,
            Ok(Err(payload)) => std::panic::resume_unwind(payload),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("{what}: watched thread vanished")
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = progress.get();
                if now != last {
                    last = now;
                    since = Instant::now();
                } else if since.elapsed() > limit {
                    panic!(
                        "{what}: no progress for {limit:?} (progress counter stuck at {now}): \
                         a lost wake-up or a deadlock"
                    );
                }
            }
        }
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// Coroutines parked with [`park_until_refused`], and the channel that
/// releases them.
pub struct Parked {
    pub handles: Vec<spindle::JoinHandle<bool>>,
    pub release: spindle::chan::Sender<()>,
}

/// For the mprotect tests: park coroutines (each returns `true` when woken
/// by the channel's close), spawning the `i`th on `runtimes[i % len]`, until
/// a spawn fails. Returns them and the error, and checks on the way that no
/// more fit than `vm.max_map_count` allows (2 VMAs per stack).
pub fn park_until_refused(
    runtimes: &[&spindle::Runtime],
    progress: &Progress,
) -> (Parked, std::io::Error) {
    let limit = spindle::stack::budget::max_map_count();
    let (release, rx) = spindle::chan::bounded::<()>(0);
    let mut handles = Vec::new();
    let err = loop {
        let rt = runtimes[handles.len() % runtimes.len()];
        let rx = rx.clone();
        match spindle::Builder::new().spawn_on(rt, move || rx.recv().is_err()) {
            Ok(h) => handles.push(h),
            Err(e) => break e,
        }
        assert!(
            handles.len() <= limit / 2,
            "{} stacks with 2 VMAs each cannot fit under vm.max_map_count = {limit}",
            handles.len()
        );
        if handles.len() % 1024 == 0 {
            progress.tick();
        }
    };
    (Parked { handles, release }, err)
}

/// Environment variable that `.ci/run` sets when it runs the tests under
/// AddressSanitizer.
pub const ASAN_ENV: &str = "SPINDLE_ASAN";

/// Is this run instrumented by AddressSanitizer (`SPINDLE_ASAN=1`)? If so,
/// say on stderr that the calling test is skipped, and why: for tests whose
/// subject ASan changes (frame sizes, address-space limits).
pub fn under_asan(why_skipped: &str) -> bool {
    let asan = std::env::var_os(ASAN_ENV).is_some_and(|v| v == "1");
    if asan {
        eprintln!("skipped under AddressSanitizer: {why_skipped}");
    }
    asan
}

/// Recurse forever with 1 KiB frames (smaller than any page, so no frame can
/// step over a guard page): the crash tests' stack overflow.
#[inline(never)]
pub fn recurse_forever(depth: u64) -> u64 {
    let mut frame = [0u8; 1024];
    std::hint::black_box(&mut frame);
    frame[0] = depth as u8;
    if std::hint::black_box(true) {
        recurse_forever(depth + 1) + u64::from(std::hint::black_box(frame[1]))
    } else {
        depth
    }
}
