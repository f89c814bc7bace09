//! Preflight: refuse a run that cannot fit *before* it starts.
//!
//! Running out of a resource half way is the worst outcome: the OOM killer
//! ends the process with no report, and at `vm.max_map_count` every `mmap`
//! fails (the allocator's too), which usually means an abort. So before
//! anything big we compare what the run needs with what the machine allows,
//! and refuse with one line that names the limit, its value and how to
//! change it:
//!
//! * memory: a conservative estimate against `MemAvailable`;
//! * in strict overcommit mode (`vm.overcommit_memory=2`) the reserved
//!   address space counts too, even with `MAP_NORESERVE`;
//! * in mprotect guard mode: the VMA budget (2 maps per stack);
//! * for OS threads: maps, `kernel.pid_max`, `kernel.threads-max`,
//!   `RLIMIT_NPROC` and the cgroup's `pids.max`.

use crate::{procfs, units};

/// VMAs a Rust std thread costs: stack + guard, plus (on glibc) a share of
/// malloc arenas and the thread's TLS block. Measured on glibc x86_64.
pub const VMAS_PER_THREAD: u64 = 4;

/// VMAs left for everything else in the process.
const VMA_HEADROOM: u64 = 1024;

/// Estimated resident bytes per parked coroutine, rounded up generously:
/// one stack page (the stack of a parked coroutine rarely needs more) plus
/// 4 KiB for the task, page tables and malloc overhead.
pub fn coroutine_estimate() -> u64 {
    spindle::stack::page::page_size() as u64 + 4096
}

/// Estimated bytes per parked OS thread: kernel stack (16 KiB on x86_64),
/// task struct and slab, two touched stack pages, page tables.
pub fn thread_estimate() -> u64 {
    64 << 10
}

/// `needed` bytes against 90 % of MemAvailable.
pub fn memory(what: &str, needed: u64, fix: &str) -> Result<(), String> {
    let available = procfs::meminfo("MemAvailable").map_err(|e| e.to_string())?;
    if needed <= available / 10 * 9 {
        return Ok(());
    }
    Err(format!(
        "{what} needs about {} of memory but MemAvailable is {} (90% usable); {fix}",
        units::gb(needed as f64),
        units::gb(available as f64)
    ))
}

/// Under `vm.overcommit_memory=2` reservations count against CommitLimit.
pub fn address_space(what: &str, reserved: u64, fix: &str) -> Result<(), String> {
    if procfs::sysctl("vm/overcommit_memory") != Some(2) {
        return Ok(());
    }
    let limit = procfs::meminfo("CommitLimit").unwrap_or(0);
    let used = procfs::meminfo("Committed_AS").unwrap_or(0);
    if used + reserved <= limit {
        return Ok(());
    }
    Err(format!(
        "{what} reserves {} of address space, which vm.overcommit_memory=2 counts against \
         CommitLimit ({}, {} committed); {fix}, or `sysctl -w vm.overcommit_memory=0`",
        units::gb(reserved as f64),
        units::gb(limit as f64),
        units::gb(used as f64)
    ))
}

/// Everything `count` coroutines with `stack_max`-byte slots need.
pub fn coroutines(what: &str, count: u64, stack_max: usize) -> Result<(), String> {
    memory(
        what,
        count * coroutine_estimate(),
        "lower --count or free memory",
    )?;
    address_space(
        what,
        count * stack_max as u64,
        "lower --count or --stack-max",
    )?;
    let mode = spindle::stack::guard::mode().map_err(|e| e.to_string())?;
    if mode == spindle::GuardMode::Mprotect {
        use spindle::stack::guard::{check_vma_budget, current_map_count};
        let extra = usize::try_from(2 * count).unwrap_or(usize::MAX);
        check_vma_budget(current_map_count(), extra).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(())
}

/// `RLIMIT_NPROC` soft limit, if finite.
fn nproc_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut lim) };
    (rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Everything `count` more OS threads need.
pub fn threads(count: u64, stack_size: u64) -> Result<(), String> {
    let what = format!("threads --count {}", units::count(count));
    let maps = spindle::stack::guard::current_map_count() as u64;
    let max_maps = spindle::stack::guard::max_map_count() as u64;
    if maps + VMAS_PER_THREAD * count + VMA_HEADROOM > max_maps {
        return Err(format!(
            "{what} needs about {} memory maps ({VMAS_PER_THREAD} per thread, {maps} in use) \
             but vm.max_map_count is {max_maps}; raise it with `sysctl -w vm.max_map_count={}` \
             or lower --count",
            maps + VMAS_PER_THREAD * count,
            (maps + VMAS_PER_THREAD * count + VMA_HEADROOM).max(262_144)
        ));
    }
    let running = procfs::system_threads().unwrap_or(0);
    for (name, file) in [
        ("kernel.pid_max", "kernel/pid_max"),
        ("kernel.threads-max", "kernel/threads-max"),
    ] {
        if let Some(limit) = procfs::sysctl(file) {
            if running + count + 64 > limit {
                return Err(format!(
                    "{what} would exceed {name} ({limit}, {running} threads running); \
                     raise it with `sysctl -w {name}={}` or lower --count",
                    (running + count) * 2
                ));
            }
        }
    }
    // SAFETY: geteuid has no preconditions. Root is exempt from RLIMIT_NPROC.
    let root = unsafe { libc::geteuid() } == 0;
    if let (false, Some(limit)) = (root, nproc_limit()) {
        if count + 64 > limit {
            return Err(format!(
                "{what} would exceed RLIMIT_NPROC ({limit}); raise it with `ulimit -u {}` \
                 or lower --count",
                (count + 64) * 2
            ));
        }
    }
    if let Some((max, current)) = procfs::cgroup_pids() {
        if current + count + 16 > max {
            return Err(format!(
                "{what} would exceed this cgroup's pids.max ({max}, {current} in use); \
                 raise pids.max for the cgroup or lower --count"
            ));
        }
    }
    memory(
        &what,
        count * thread_estimate(),
        "lower --count or free memory",
    )?;
    address_space(&what, count * stack_size, "lower --count or --stack-size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_runs_pass_and_huge_ones_are_refused() {
        assert!(coroutines("mem", 10, 256 << 10).is_ok());
        let err = coroutines("mem --count 10^8", 100_000_000_000, 256 << 10).unwrap_err();
        assert!(err.contains("MemAvailable"), "{err}");
        assert!(threads(10, 2 << 20).is_ok());
        let err = threads(1_000_000, 2 << 20).unwrap_err();
        assert!(err.contains("vm.max_map_count"), "{err}");
    }
}
