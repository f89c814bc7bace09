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
//! * address space: every stack slot is reserved up front, so count ×
//!   stack_max (rounded up to whole slabs) must fit in the user virtual
//!   address space and under `RLIMIT_AS` (`ulimit -v`) if one is set;
//! * in mprotect guard mode: the VMA budget (2 maps per stack, 2 per slab
//!   for the slab and its label table, and a margin for worker threads and
//!   the allocator);
//! * for OS threads: maps, `kernel.pid_max`, `kernel.threads-max`,
//!   `RLIMIT_NPROC`, the cgroup's `pids.max` and address space.

use super::procfs;
use crate::present::units;

/// VMAs a Rust std thread costs: stack + guard, plus (on glibc) a share of
/// malloc arenas and the thread's TLS block. Measured on glibc x86_64.
pub const VMAS_PER_THREAD: u64 = 4;

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
pub fn commit_limit(what: &str, reserved: u64, fix: &str) -> Result<(), String> {
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

/// Maps for the rest of a run in mprotect mode: the allocator's arenas and
/// big allocations, the driver coroutine's own slab and stack, timers.
const RUN_MAPS: u64 = 256;

/// Slabs the pool reserves for `count` slots of `slot` bytes, plus one for a
/// second size class (the `mem` driver's stack) or a partly used slab.
fn slabs(count: u64, slot: u64) -> u64 {
    count.div_ceil(per_slab(slot)) + 1
}

/// Slots per slab, as the runtime's pool carves them.
fn per_slab(slot: u64) -> u64 {
    spindle::stack::budget::slots_per_slab(usize::try_from(slot).unwrap_or(usize::MAX)) as u64
}

/// Bytes of address space the pool reserves for `count` stacks: whole slabs.
pub fn stack_reservation(count: u64, stack_max: usize) -> u64 {
    let slot = spindle::stack::page::round_up(stack_max) as u64;
    slabs(count, slot)
        .saturating_mul(per_slab(slot))
        .saturating_mul(slot)
}

/// VMAs a run of `count` mprotect-guarded stacks adds to the process: 2 per
/// stack (guard + stack; the runtime's own budget assumes no merging), two
/// per slab (the slab and its label table), and for each worker its thread plus the stacks its cache carves
/// ahead, and [`RUN_MAPS`] for everything else.
pub fn mprotect_maps(count: u64, stack_max: usize, workers: usize) -> (u64, u64, u64) {
    let slot = spindle::stack::page::round_up(stack_max) as u64;
    let slabs = slabs(count, slot);
    let margin = workers as u64
        * (VMAS_PER_THREAD + 2 * spindle::stack::budget::CACHE_BATCH as u64)
        + RUN_MAPS;
    (2 * count + 2 * slabs + margin, slabs, margin)
}

/// The user virtual address space, conservatively: x86_64 gives user space
/// 2^47 bytes with 4-level page tables (and mmap stays below 2^47 even with
/// 5-level ones unless asked); aarch64 2^48 at most, but 2^39 or 2^42 with
/// kernels built for fewer VA bits. The main stack sits near the top of user
/// space, so the highest mapping of this process, rounded up to a power of
/// two, tells the size actually in use. Returns the size and its bits.
pub fn user_address_space() -> (u64, u32) {
    let arch_max: u64 = if cfg!(target_arch = "aarch64") {
        1 << 48
    } else {
        1 << 47
    };
    let seen = procfs::highest_mapping_end(arch_max)
        .map_or(arch_max, |end| end.next_power_of_two().min(arch_max));
    (seen, seen.trailing_zeros())
}

/// The soft limit of `resource` (`RLIMIT_AS` is `ulimit -v`), if finite.
fn soft_rlimit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    (rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// `reserved` more bytes of address space against the user address space
/// (less what is mapped and a 1/32 margin for layout gaps and randomisation)
/// and against `RLIMIT_AS`.
pub fn virtual_address_space(what: &str, reserved: u64, fix: &str) -> Result<(), String> {
    let mapped = procfs::vm_size_bytes().unwrap_or(0);
    let (space, bits) = user_address_space();
    let usable = space - space / 32;
    if mapped.saturating_add(reserved) > usable {
        return Err(format!(
            "{what} reserves {} of address space for stacks, but the user address space \
             is {} ({bits}-bit virtual addresses on {}; {} already mapped, about {} usable); \
             {fix}",
            units::binary(reserved),
            units::binary(space),
            std::env::consts::ARCH,
            units::binary(mapped),
            units::binary(usable.saturating_sub(mapped)),
        ));
    }
    if let Some(limit) = soft_rlimit(libc::RLIMIT_AS) {
        let needed = mapped.saturating_add(reserved);
        if needed > limit {
            return Err(format!(
                "{what} reserves {} of address space for stacks, but RLIMIT_AS is {} \
                 ({} already mapped); raise it with `ulimit -v unlimited` (or at least \
                 `ulimit -v {}`, in KiB), or {fix}",
                units::binary(reserved),
                units::binary(limit),
                units::binary(mapped),
                (needed + needed / 4).div_ceil(1024)
            ));
        }
    }
    Ok(())
}

/// Everything `count` coroutines with `stack_max`-byte slots on `workers`
/// worker threads need.
pub fn coroutines(what: &str, count: u64, stack_max: usize, workers: usize) -> Result<(), String> {
    memory(
        what,
        count * coroutine_estimate(),
        "lower --count or free memory",
    )?;
    let reserved = stack_reservation(count, stack_max);
    virtual_address_space(what, reserved, "lower --count or --stack-max")?;
    commit_limit(what, reserved, "lower --count or --stack-max")?;
    let mode = spindle::stack::guard::mode().map_err(|e| e.to_string())?;
    if mode == spindle::GuardMode::Mprotect {
        use spindle::stack::budget::{check_vma_budget, current_map_count};
        let (extra, slabs, margin) = mprotect_maps(count, stack_max, workers);
        let extra = usize::try_from(extra).unwrap_or(usize::MAX);
        check_vma_budget(current_map_count(), extra).map_err(|e| {
            format!(
                "{what}: {e}, or lower --count (the estimate counts 2 maps per stack, \
                 {slabs} slabs at 2 maps each and {margin} for {workers} worker{} and the \
                 allocator)",
                if workers == 1 { "" } else { "s" }
            )
        })?;
    }
    Ok(())
}

/// Everything `count` more OS threads need.
pub fn threads(count: u64, stack_size: u64) -> Result<(), String> {
    let what = format!("threads --count {}", units::count(count));
    let maps = spindle::stack::budget::current_map_count() as u64;
    let max_maps = spindle::stack::budget::max_map_count() as u64;
    // The maps left for everything else: the runtime's own margin.
    const VMA_HEADROOM: u64 = spindle::stack::budget::VMA_HEADROOM as u64;
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
    if let (false, Some(limit)) = (root, soft_rlimit(libc::RLIMIT_NPROC)) {
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
    // A thread's stack is one mapping of its size plus a guard page.
    let page = spindle::stack::page::page_size() as u64;
    let reserved = count.saturating_mul(stack_size + page);
    virtual_address_space(&what, reserved, "lower --count or --stack-size")?;
    commit_limit(&what, count * stack_size, "lower --count or --stack-size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_runs_pass_and_huge_ones_are_refused() {
        assert!(coroutines("mem", 10, 256 << 10, 2).is_ok());
        let err = coroutines("mem --count 10^8", 100_000_000_000, 256 << 10, 2).unwrap_err();
        assert!(err.contains("MemAvailable"), "{err}");
        assert!(threads(10, 2 << 20).is_ok());
        let err = threads(1_000_000, 2 << 20).unwrap_err();
        assert!(err.contains("vm.max_map_count"), "{err}");
    }

    /// 3 × 10^5 slots of 1 GiB are 293 TiB: more than any user address space
    /// (128 TiB on x86_64, 256 TiB at most on aarch64).
    #[test]
    fn address_space_is_checked_before_reserving() {
        let (space, bits) = user_address_space();
        assert!(
            space.is_power_of_two() && (36..=48).contains(&bits),
            "{space:#x}"
        );
        let err = coroutines("mem --count 3e5", 300_000, 1 << 30, 2).unwrap_err();
        assert!(err.contains("address space"), "{err}");
        assert!(err.contains("--stack-max"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = virtual_address_space("x", space, "lower it").unwrap_err();
        assert!(err.contains(&format!("{bits}-bit")), "{err}");
        assert!(virtual_address_space("x", 1 << 30, "lower it").is_ok());
    }

    #[test]
    fn reservations_are_whole_slabs() {
        // 256 slots of 256 KiB per 64 MiB slab; 16 slots of 1 GiB.
        assert_eq!(stack_reservation(1, 256 << 10), 2 * (64 << 20));
        assert_eq!(stack_reservation(256, 256 << 10), 2 * (64 << 20));
        assert_eq!(stack_reservation(257, 256 << 10), 3 * (64 << 20));
        assert_eq!(
            stack_reservation(200_000, 1 << 30),
            ((12_500 + 1) * 16) << 30
        );
    }

    /// At the stock vm.max_map_count, 31,723 mprotect stacks fail part-way
    /// (the runtime stops near 31,717): the estimate must refuse them up front.
    #[test]
    fn the_mprotect_estimate_covers_slabs_and_workers() {
        let (extra, slabs, margin) = mprotect_maps(31_723, 256 << 10, 2);
        assert_eq!(slabs, 125);
        assert!(margin >= 2 * VMAS_PER_THREAD + RUN_MAPS);
        // 36 maps in use and the runtime's 2,048 headroom, against 65,530.
        assert!(36 + extra + 2048 > 65_530, "{extra}");
        let (extra, _, _) = mprotect_maps(30_000, 256 << 10, 2);
        assert!(36 + extra + 2048 <= 65_530, "{extra}");
    }
}
