//! The machine header: what was measured *on*.
//!
//! A number without its machine is useless: a context switch costs 30 ns on
//! one CPU and 80 ns on another, and a parked coroutine costs one page, whose
//! size depends on the kernel. Every report therefore starts with the
//! architecture, CPU model, core count, kernel, page size, the guard mode the
//! runtime chose, `vm.max_map_count`, the runtime settings, the compiler and
//! the build profile (a hand-off inlined by LTO costs less than the one a
//! user's crate gets, so the header says how this binary was built).
//!
//! It also says when the numbers are *meaningless*: under qemu-user (how the
//! aarch64 build is tested on an x86_64 machine) every instruction is
//! translated, so timings measure the emulator. We detect that when
//! `/proc/cpuinfo` (which older qemu-user passes through from the host)
//! describes a different architecture than the one this binary was compiled
//! for; when guard regions do not work on a kernel that has them (qemu-user
//! accepts `MADV_GUARD_INSTALL` and installs nothing, see
//! `runtime/src/stack/guard.rs`), which still holds when qemu emulates
//! `/proc/cpuinfo` (as it does for aarch64 since 8.2); or when qemu's own
//! environment variables (`QEMU_*`) are set.

use serde::{Deserialize, Serialize};

use super::procfs;
use crate::present::units;

/// Runtime settings used by the measurements.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    pub workers: usize,
    pub stack_max: usize,
    pub start_window: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    pub date_utc: String,
    pub arch: String,
    pub cpu_model: String,
    pub cores: usize,
    pub online_cpus: usize,
    pub kernel: String,
    pub page_size: usize,
    pub guard_mode: String,
    pub vm_max_map_count: u64,
    pub mem_total_bytes: u64,
    pub mem_available_bytes: u64,
    pub runtime: Settings,
    pub rust_version: String,
    /// Profile and opt-level of this binary, e.g. "release profile, opt-level 3".
    #[serde(default)]
    pub build: String,
    pub spindle_bench_version: String,
    /// Why we think we run under an emulator (timings are then meaningless).
    pub emulated: Option<String>,
}

impl Header {
    pub fn collect(settings: Settings) -> Header {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        };
        let release = read("/proc/sys/kernel/osrelease");
        let mode = spindle::stack::guard::mode();
        Header {
            date_utc: utc_now(),
            arch: std::env::consts::ARCH.into(),
            cpu_model: cpu_model(&cpuinfo),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            online_cpus: cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count(),
            kernel: format!("{} {release}", read("/proc/sys/kernel/ostype")),
            page_size: spindle::stack::page::page_size(),
            emulated: emulation(&cpuinfo, &release, guard_probe_failed(&mode)),
            guard_mode: match mode {
                Ok(m) => m.name().into(),
                Err(e) => format!("unavailable: {e}"),
            },
            vm_max_map_count: spindle::stack::budget::max_map_count() as u64,
            mem_total_bytes: procfs::meminfo("MemTotal").unwrap_or(0),
            mem_available_bytes: procfs::meminfo("MemAvailable").unwrap_or(0),
            runtime: settings,
            rust_version: env!("SPINDLE_BENCH_RUSTC").into(),
            build: env!("SPINDLE_BENCH_BUILD").into(),
            spindle_bench_version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// The human form: one "key: value" line each.
    pub fn render(&self) -> String {
        let mut out = String::from("spindle-bench: what a parked task really costs\n");
        let cores = if self.online_cpus > 0 && self.online_cpus != self.cores {
            format!("{} usable ({} online)", self.cores, self.online_cpus)
        } else {
            self.cores.to_string()
        };
        let rows = [
            ("date", format!("{} UTC", self.date_utc)),
            ("arch", self.arch.clone()),
            ("cpu", self.cpu_model.clone()),
            ("cores", cores),
            ("kernel", self.kernel.clone()),
            ("page size", units::binary(self.page_size as u64)),
            ("guard mode", self.guard_mode.clone()),
            ("vm.max_map_count", units::group(self.vm_max_map_count)),
            (
                "memory",
                format!(
                    "{} total, {} available",
                    units::gb(self.mem_total_bytes as f64),
                    units::gb(self.mem_available_bytes as f64)
                ),
            ),
            (
                "runtime",
                format!(
                    "{} worker{}, stack_max {}, start window {}",
                    self.runtime.workers,
                    if self.runtime.workers == 1 { "" } else { "s" },
                    units::binary(self.runtime.stack_max as u64),
                    units::binary(self.runtime.start_window as u64)
                ),
            ),
            ("rust", self.rust_version.clone()),
            ("build", build_note(&self.build)),
        ];
        for (k, v) in rows {
            out.push_str(&format!("  {k:<17} {v}\n"));
        }
        if let Some(why) = &self.emulated {
            out.push_str(&format!(
                "  WARNING: running under an emulator ({why}): timings are meaningless, \
                 memory figures are the emulator's\n"
            ));
        }
        out
    }
}

/// What the build means for the timings. The workspace has no release
/// profile of its own (see the root Cargo.toml), so a release build is what
/// a crate depending on spindle gets: no LTO, Cargo's default codegen units.
fn build_note(build: &str) -> String {
    if build.starts_with("release") {
        format!("{build}, Cargo's default release profile: spindle as a user's crate gets it")
    } else {
        format!("{build}: not a release build, timings are not what a user's build sees")
    }
}

/// CPU model from /proc/cpuinfo: "model name" on x86, "Model" on some boards,
/// "CPU implementer"/"CPU part" on aarch64 (which has no model name).
fn cpu_model(cpuinfo: &str) -> String {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    if let Some(m) = field("model name").or_else(|| field("Model")) {
        return m;
    }
    match (field("CPU implementer"), field("CPU part")) {
        (Some(i), Some(p)) => format!("CPU implementer {i}, part {p}"),
        (None, Some(p)) => format!("CPU part {p}"),
        _ => "unknown".into(),
    }
}

/// Whether the runtime probed for guard regions and found they do not work
/// (not merely told to use mprotect by `SPINDLE_GUARD=mprotect`).
fn guard_probe_failed(mode: &std::io::Result<spindle::GuardMode>) -> bool {
    match (std::env::var("SPINDLE_GUARD").as_deref(), mode) {
        (Ok("mprotect"), _) => false,
        (_, Ok(m)) => *m == spindle::GuardMode::Mprotect,
        (Ok("regions"), Err(_)) => true,
        _ => false,
    }
}

/// `(major, minor)` of a kernel release such as "6.18.44-fc-v769".
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Why we believe this process runs under qemu-user, if we do.
fn emulation(cpuinfo: &str, kernel_release: &str, guard_probe_failed: bool) -> Option<String> {
    let arch = std::env::consts::ARCH;
    let x86_host = cpuinfo.contains("vendor_id") && cpuinfo.contains("flags");
    let arm_host = cpuinfo.contains("CPU implementer");
    let is_x86 = arch == "x86_64" || arch == "x86";
    if !cpuinfo.is_empty() && ((!is_x86 && x86_host) || (is_x86 && arm_host)) {
        return Some(format!(
            "this {arch} binary sees a {} /proc/cpuinfo",
            if x86_host { "x86" } else { "arm" }
        ));
    }
    // Second signal, independent of /proc/cpuinfo: Linux 6.13+ always has
    // MADV_GUARD_INSTALL (no config option), and qemu-user passes the host's
    // kernel release through but ignores the advice, so the runtime's probe
    // fails there. A seccomp filter that rejects the advice would trip this
    // too; that is rare, and the warning names what was seen.
    if guard_probe_failed && kernel_version(kernel_release).is_some_and(|v| v >= (6, 13)) {
        return Some(format!(
            "MADV_GUARD_INSTALL has no effect on Linux {kernel_release}, which supports it; \
             qemu-user ignores it"
        ));
    }
    let qemu_var = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .find(|k| k.starts_with("QEMU_"));
    qemu_var.map(|k| format!("{k} is set"))
}

/// Now, as "YYYY-MM-DD HH:MM:SS" in UTC (civil-from-days, H. Hinnant).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_models() {
        assert_eq!(cpu_model("model name\t: AMD EPYC\n"), "AMD EPYC");
        assert_eq!(
            cpu_model("CPU implementer\t: 0x41\nCPU part\t: 0xd0c\n"),
            "CPU implementer 0x41, part 0xd0c"
        );
        assert_eq!(cpu_model(""), "unknown");
    }

    #[test]
    fn emulation_signals() {
        let foreign = if cfg!(target_arch = "x86_64") {
            "CPU implementer\t: 0x41\n"
        } else {
            "vendor_id\t: GenuineIntel\nflags\t: fpu\n"
        };
        assert!(emulation(foreign, "6.1.0", false).is_some_and(|w| w.contains("/proc/cpuinfo")));
        // qemu emulating /proc/cpuinfo: the failed guard probe still shows.
        let w = emulation("", "6.18.44-fc-v769", true).unwrap();
        assert!(w.contains("6.18.44") && w.contains("qemu"), "{w}");
        assert!(emulation("", "6.13.0", true).is_some());
        // Before 6.13 the probe fails natively; and a working probe is no sign.
        if std::env::vars_os().all(|(k, _)| !k.to_string_lossy().starts_with("QEMU_")) {
            assert_eq!(emulation("", "6.12.9", true), None);
            assert_eq!(emulation("", "5.15.0-91-generic", true), None);
            assert_eq!(emulation("", "6.18.44", false), None);
        }
        assert_eq!(kernel_version("6.18.44-fc-v769"), Some((6, 18)));
        assert_eq!(kernel_version("unknown"), None);
    }

    #[test]
    fn date_is_plausible() {
        let d = utc_now();
        assert_eq!(d.len(), 19);
        assert!(d.starts_with("20"), "{d}");
    }
}
