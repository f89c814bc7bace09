//! Progress on stderr for long phases, only when a person is watching.
//!
//! Spawning a million coroutines takes a second or two; a silent terminal
//! for that long looks like a hang. So long loops call [`Progress::tick`],
//! which redraws one line on stderr — but only when stderr is a terminal
//! (`std::io::IsTerminal`). Under a test, CI, or a pipe, stderr stays quiet,
//! so logs hold only results and errors.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A one-line progress display for a loop of `total` steps.
pub struct Progress {
    label: String,
    total: u64,
    enabled: bool,
    last: Instant,
}

impl Progress {
    pub fn new(label: impl Into<String>, total: u64) -> Progress {
        Progress {
            label: label.into(),
            total,
            enabled: std::io::stderr().is_terminal(),
            last: Instant::now(),
        }
    }

    /// Whether progress lines are shown at all.
    pub fn enabled() -> bool {
        std::io::stderr().is_terminal()
    }

    /// Note that `done` steps are finished. Cheap unless it is time to redraw
    /// (call it every few thousand steps, not every step).
    pub fn tick(&mut self, done: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let pct = done as f64 * 100.0 / self.total.max(1) as f64;
        let _ = write!(
            std::io::stderr(),
            "\r{}: {}/{} ({pct:.0}%)\x1b[K",
            self.label,
            super::units::group(done),
            super::units::group(self.total)
        );
    }

    /// Erase the progress line.
    pub fn finish(&mut self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// Announce a phase ("mem at 10^6 ...") on stderr, when it is a terminal.
pub fn phase(text: &str) {
    if Progress::enabled() {
        let _ = write!(std::io::stderr(), "\r{text}\x1b[K");
    }
}

/// Clear a [`phase`] line.
pub fn clear() {
    if Progress::enabled() {
        let _ = write!(std::io::stderr(), "\r\x1b[K");
    }
}
