//! The VMA budget of mprotect guard mode.
//!
//! With `mprotect` guards every stack costs two VMAs (its guard and the rest
//! of its slot become separate mappings), and a process may have at most
//! `vm.max_map_count` of them: 65,530 by default. Past that limit *every*
//! `mmap` fails, the allocator's included, so the pool must stop before it:
//! [`reserve`] is asked before each slab and each guard, and
//! refuses with an error that names the limit ([`check_vma_budget`]).
//! The limit is the process's, so there is one budget per process
//! ([`reserve`]), shared by every runtime's pool: with one budget each, two
//! runtimes together ran into the kernel's limit and got a bare `ENOMEM`.
//! Guard-region mode (`MADV_GUARD_INSTALL`) costs no VMA per stack and never
//! consults this budget.
//!
//! The functions are public (through [`stack::budget`](super::budget)) so
//! that a caller planning a whole run, the benchmark's preflight, checks it
//! against the same limit and the same [`VMA_HEADROOM`].

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// VMAs we leave for everything else in the process (allocator arenas,
/// thread stacks, shared libraries) when budgeting in mprotect mode.
pub const VMA_HEADROOM: usize = 2048;

/// How many VMAs the process has, for mprotect mode's budget check.
///
/// Counting them means reading `/proc/self/maps`, which near the limit has
/// ~65k lines, so we count once and then add what we create ourselves. The
/// estimate is refreshed from the kernel when it says we are close to the
/// limit (it may be stale, in either direction), and whenever our additions
/// reach the last count (or 4096), so other code's maps never drift far out
/// of view while the number of recounts stays logarithmic.
struct VmaBudget {
    counted: usize,
    added: usize,
}

/// The process's budget, for every runtime's pool.
static BUDGET: Mutex<VmaBudget> = Mutex::new(VmaBudget {
    counted: 0,
    added: 0,
});

/// Account for `extra` new maps in this process, or refuse with the error
/// of [`check_vma_budget`] (which names `vm.max_map_count`).
pub(crate) fn reserve(extra: usize) -> io::Result<()> {
    BUDGET
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .reserve(extra)
}

impl VmaBudget {
    const RECOUNT_EVERY: usize = 4096;

    fn reserve(&mut self, extra: usize) -> io::Result<()> {
        if self.counted == 0 || self.added >= Self::RECOUNT_EVERY.max(self.counted) {
            self.recount();
        }
        if check_vma_budget(self.counted + self.added, extra).is_err() {
            self.recount();
            check_vma_budget(self.counted, extra)?;
        }
        self.added += extra;
        Ok(())
    }

    fn recount(&mut self) {
        reread_max_map_count();
        self.counted = current_map_count();
        self.added = 0;
    }
}

/// `vm.max_map_count`: the kernel's cap on VMAs per process. Read once and
/// cached (the budget check runs for every fresh slot); see
/// [`reread_max_map_count`].
pub fn max_map_count() -> usize {
    match MAX_MAP_COUNT.load(Ordering::Relaxed) {
        0 => reread_max_map_count(),
        cached => cached,
    }
}

/// Read `vm.max_map_count` again (an administrator may have raised it).
pub fn reread_max_map_count() -> usize {
    let value = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65530);
    MAX_MAP_COUNT.store(value, Ordering::Relaxed);
    value
}

static MAX_MAP_COUNT: AtomicUsize = AtomicUsize::new(0);

/// How many VMAs this process has right now (lines of `/proc/self/maps`).
pub fn current_map_count() -> usize {
    std::fs::read("/proc/self/maps")
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// Check that `extra` more VMAs fit under `vm.max_map_count` with headroom
/// for the rest of the process, given `in_use` VMAs now. The error (one line)
/// names the limit, its value, the maps in use and needed, and the sysctl
/// that raises it to a value that covers the request.
pub fn check_vma_budget(in_use: usize, extra: usize) -> io::Result<()> {
    let limit = max_map_count();
    let needed = in_use.saturating_add(extra).saturating_add(VMA_HEADROOM);
    if needed <= limit {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "stack guard pages would exceed vm.max_map_count ({limit}): the process has \
             {in_use} memory maps and needs {extra} more for stack slabs and their \
             mprotect guards (2 maps per stack), {needed} with {VMA_HEADROOM} kept for the \
             rest of the process; \
             raise it with `sysctl -w vm.max_map_count={}` or use a kernel with \
             MADV_GUARD_INSTALL (6.13+)",
            suggested_max_map_count(needed, limit)
        ),
    ))
}

/// A `vm.max_map_count` to suggest when `needed` maps do not fit under
/// `limit`. A caller that budgets a whole run at once (the benchmark's
/// preflight) passes everything it will need, so `needed` suffices; the pool
/// asks for one slot at a time, and then the process is at the wall with
/// demand unknown, so suggest at least double the current limit. Rounded up
/// to two significant digits, and capped at the sysctl's maximum (`INT_MAX`).
fn suggested_max_map_count(needed: usize, limit: usize) -> usize {
    let want = needed.max(limit.saturating_mul(2));
    let mut unit = 1usize;
    while want / unit >= 100 {
        unit *= 10;
    }
    want.div_ceil(unit)
        .saturating_mul(unit)
        .min(i32::MAX as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_error_names_the_sysctl() {
        let err = check_vma_budget(max_map_count(), 10).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("vm.max_map_count"), "{msg}");
        assert!(msg.contains("sysctl -w"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(check_vma_budget(0, 10).is_ok());
    }

    /// The suggested value covers the whole request, not a fixed multiple of
    /// the current limit: 10^6 mprotect stacks need about 2 million maps.
    #[test]
    fn suggested_value_covers_the_request() {
        assert_eq!(suggested_max_map_count(2_002_100, 65530), 2_100_000);
        assert_eq!(suggested_max_map_count(65533, 65530), 140_000);
        assert_eq!(suggested_max_map_count(99, 10), 99);
        assert_eq!(
            suggested_max_map_count(usize::MAX, 65530),
            i32::MAX as usize
        );
        for needed in [65531, 70_000, 1_234_567, 2_002_100, 40_000_000] {
            assert!(suggested_max_map_count(needed, 65530) >= needed);
        }
        let limit = max_map_count();
        let extra = 2_000_000;
        let needed = 100 + extra + VMA_HEADROOM;
        if needed > limit {
            let msg = check_vma_budget(100, extra).unwrap_err().to_string();
            let suggested = suggested_max_map_count(needed, limit);
            assert!(suggested >= needed);
            assert!(
                msg.contains(&format!("vm.max_map_count={suggested}`")),
                "{msg}"
            );
            assert!(msg.contains(&format!("({limit})")), "{msg}");
            assert!(msg.contains(&format!("{needed} with")), "{msg}");
        }
    }

    #[test]
    fn current_map_count_sees_our_maps() {
        assert!(current_map_count() > 5);
    }
}
