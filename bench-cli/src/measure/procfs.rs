//! What the kernel says about memory: /proc and sysctls.
//!
//! A coroutine's real cost is whatever the *machine* pays for it, so every
//! memory figure here comes from the kernel, not from the runtime's own
//! bookkeeping:
//!
//! * `/proc/self/statm` field 2: resident pages of this process (RSS);
//! * `/proc/self/status` `VmPTE`: the page tables mapping those pages, which
//!   RSS does not include;
//! * `/proc/meminfo`: `MemAvailable` (for preflight checks), and the
//!   kernel's own per-thread memory, `KernelStack` and `SUnreclaim`
//!   (unreclaimable slab: task structs and friends). These two are
//!   system-wide, so other processes add noise to their deltas;
//! * `/proc/sys/...`: limits such as `vm.max_map_count`;
//! * `/proc/self/status` `VmSize` and `/proc/self/maps`: the address space
//!   this process has mapped, and how high its mappings reach (for the
//!   address-space preflight check).

use std::io;

fn read(path: &str) -> io::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {path}: {e}")))
}

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> io::Result<u64> {
    let statm = read("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::other("unexpected /proc/self/statm format"))?;
    Ok(pages * spindle::stack::page::page_size() as u64)
}

/// Find `key:` in a "Key:   123 kB" file and return the value in bytes.
pub(super) fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, rest) = line.split_once(':')?;
        if k != key {
            return None;
        }
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        Some(match parts.next() {
            Some("kB") => value * 1024,
            _ => value,
        })
    })
}

/// Page-table bytes of this process (`VmPTE`).
pub fn vm_pte_bytes() -> io::Result<u64> {
    kb_field(&read("/proc/self/status")?, "VmPTE")
        .ok_or_else(|| io::Error::other("no VmPTE line in /proc/self/status"))
}

/// Virtual address space this process has mapped now (`VmSize`).
pub fn vm_size_bytes() -> io::Result<u64> {
    kb_field(&read("/proc/self/status")?, "VmSize")
        .ok_or_else(|| io::Error::other("no VmSize line in /proc/self/status"))
}

/// The highest end address of this process's mappings below `ceiling`
/// (mappings above it, such as x86_64's `[vsyscall]` page in the kernel half,
/// are not user address space).
pub fn highest_mapping_end(ceiling: u64) -> Option<u64> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| {
            let (_, end) = l.split_whitespace().next()?.split_once('-')?;
            u64::from_str_radix(end, 16).ok()
        })
        .filter(|&end| end <= ceiling)
        .max()
}

/// One `/proc/meminfo` field, in bytes.
pub fn meminfo(key: &str) -> io::Result<u64> {
    kb_field(&read("/proc/meminfo")?, key)
        .ok_or_else(|| io::Error::other(format!("no {key} line in /proc/meminfo")))
}

/// A numeric sysctl such as `vm/max_map_count`, if readable.
pub fn sysctl(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/{name}"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Threads on the whole system right now (4th field of /proc/loadavg,
/// "running/total").
pub fn system_threads() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

/// This process's cgroup (v2) `pids.max` and `pids.current`, if limited.
pub fn cgroup_pids() -> Option<(u64, u64)> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = format!("/sys/fs/cgroup{}", path.trim_end());
    let max = std::fs::read_to_string(format!("{dir}/pids.max")).ok()?;
    let max: u64 = max.trim().parse().ok()?; // "max" means unlimited: None
    let current = std::fs::read_to_string(format!("{dir}/pids.current"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    Some((max, current))
}

/// A snapshot of the process-side memory figures.
#[derive(Clone, Copy, Debug)]
pub struct ProcMem {
    pub rss: u64,
    pub pte: u64,
}

impl ProcMem {
    pub fn now() -> io::Result<ProcMem> {
        Ok(ProcMem {
            rss: rss_bytes()?,
            pte: vm_pte_bytes()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(rss_bytes().unwrap() > 0);
        assert!(vm_pte_bytes().is_ok());
        assert!(meminfo("MemAvailable").unwrap() > 0);
        assert!(sysctl("vm/max_map_count").unwrap() > 0);
        assert!(vm_size_bytes().unwrap() >= rss_bytes().unwrap());
        let top = highest_mapping_end(1 << 47).unwrap();
        assert!(top > 1 << 32, "{top:#x}");
        assert!(highest_mapping_end(top - 1).unwrap() < top);
        assert_eq!(kb_field("VmPTE:\t  12 kB\n", "VmPTE"), Some(12 * 1024));
    }
}
