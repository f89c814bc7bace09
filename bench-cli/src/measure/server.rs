//! A server under test, in a child process, and the pipe that controls it.
//!
//! `net` starts each echo server (spindle's `net-server`, Go's `goref net`)
//! as a child with stdin, stdout and stderr piped, and speaks the protocol
//! of [`net_server`](crate::command::net_server): the child prints its port
//! on a line; each `gc` line sent is answered with `ok` and, where the
//! server can tell, ` stack=B heap=B` ([`Figures`]); closing stdin ends it.
//! Every wait for an answer is bounded ([`ANSWER_WITHIN`]); the child's last
//! stderr lines are kept, so an error can say what the server said; and a
//! child still running when its [`ServerProcess`] is dropped is killed (it
//! also dies with this process, `PR_SET_PDEATHSIG`).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::sockets::{self, PidMem};

/// What a server says about its own memory when asked (see
/// [`net_server`](crate::command::net_server)): resident stack bytes and heap bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Figures {
    pub stack: Option<i64>,
    pub heap: Option<i64>,
}

/// A server child: its port, its control pipe, its last words on stderr.
pub struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    pub port: u16,
    pid: u32,
}

/// How long a server may take to start, or to answer `gc`.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(20);

impl ServerProcess {
    pub fn start(name: &str, mut cmd: Command) -> Result<ServerProcess, String> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the {name} server: {e}"))?;
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (mut err, keep) = (child.stderr.take().expect("piped stderr"), stderr.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(k) = err.read(&mut buf) {
                if k == 0 {
                    break;
                }
                let mut s = keep.lock().unwrap_or_else(|p| p.into_inner());
                s.push_str(&String::from_utf8_lossy(&buf[..k]));
                let mut cut = s.len().saturating_sub(4096);
                while !s.is_char_boundary(cut) {
                    cut += 1;
                }
                s.drain(..cut);
            }
        });
        let pid = child.id();
        let mut p = ServerProcess {
            child,
            stdin: None,
            lines,
            stderr,
            port: 0,
            pid,
        };
        p.stdin = p.child.stdin.take();
        let first = p.answer("its port")?;
        p.port = first
            .trim()
            .parse()
            .map_err(|_| p.explain(format!("the server printed {first:?}, not a port")))?;
        Ok(p)
    }

    /// The next line from the server, within [`ANSWER_WITHIN`].
    pub fn answer(&self, what: &str) -> Result<String, String> {
        self.lines
            .recv_timeout(ANSWER_WITHIN)
            .map_err(|_| self.explain(format!("the server did not send {what}")))
    }

    /// `e`, with the server's last stderr line if it has died or spoken.
    pub fn explain(&self, e: String) -> String {
        std::thread::sleep(Duration::from_millis(50));
        let s = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        match s.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => {
                let last = last.trim();
                let last = last.strip_prefix("spindle-bench: error: ").unwrap_or(last);
                format!("{e} (server: {last})")
            }
            None => e,
        }
    }

    /// Ask for `gc` and wait for `ok`: the server is quiet and collected;
    /// returns the figures it added (see [`Figures`]).
    pub fn ready(&mut self) -> Result<Figures, String> {
        let sent = self
            .stdin
            .as_mut()
            .map(|i| writeln!(i, "gc").and_then(|()| i.flush()));
        if !matches!(sent, Some(Ok(()))) {
            return Err(self.explain("the server's control pipe is closed".into()));
        }
        let line = self.answer("ok")?;
        let mut words = line.split_whitespace();
        if words.next() != Some("ok") {
            return Err(self.explain(format!("the server answered {line:?}, not ok")));
        }
        let mut f = Figures::default();
        for w in words {
            match w.split_once('=').map(|(k, v)| (k, v.parse::<i64>().ok())) {
                Some(("stack", v)) => f.stack = v,
                Some(("heap", v)) => f.heap = v,
                _ => {}
            }
        }
        Ok(f)
    }

    pub fn mem(&self) -> Result<PidMem, String> {
        sockets::pid_mem(self.pid).map_err(|e| self.explain(e))
    }

    pub fn cpu(&self) -> Result<f64, String> {
        sockets::pid_cpu_seconds(self.pid).map_err(|e| self.explain(e))
    }

    /// Close stdin (the server exits) and reap it; kill it if it lingers.
    pub fn stop(&mut self) {
        self.stdin = None;
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
