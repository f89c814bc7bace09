//! The VMA budget of mprotect guard mode.
//!
//! With `mprotect` guards every stack costs two VMAs (its guard and the rest
//! of its slot become separate mappings), and a process may have at most
//! `vm.max_map_count` of them: 65,530 by default. Past that limit *every*
//! `mmap` fails, the allocator's included, so the pool must stop before it:
//! [`VmaBudget::reserve`] is asked before each slab and each guard, and
//! refuses with an error that names the limit (see
//! [`guard::check_vma_budget`]). Guard-region mode (`MADV_GUARD_INSTALL`)
//! costs no VMA per stack and never consults this budget.

use std::io;

use super::guard;

/// How many VMAs the process has, for mprotect mode's budget check.
///
/// Counting them means reading `/proc/self/maps`, which near the limit has
/// ~65k lines, so we count once and then add what we create ourselves. The
/// estimate is refreshed from the kernel when it says we are close to the
/// limit (it may be stale, in either direction), and whenever our additions
/// reach the last count (or 4096), so other code's maps never drift far out
/// of view while the number of recounts stays logarithmic.
#[derive(Default)]
pub(crate) struct VmaBudget {
    counted: usize,
    added: usize,
}

impl VmaBudget {
    const RECOUNT_EVERY: usize = 4096;

    /// Account for `extra` new maps, or refuse with the error of
    /// [`guard::check_vma_budget`] (which names `vm.max_map_count`).
    pub fn reserve(&mut self, extra: usize) -> io::Result<()> {
        if self.counted == 0 || self.added >= Self::RECOUNT_EVERY.max(self.counted) {
            self.recount();
        }
        if guard::check_vma_budget(self.counted + self.added, extra).is_err() {
            self.recount();
            guard::check_vma_budget(self.counted, extra)?;
        }
        self.added += extra;
        Ok(())
    }

    fn recount(&mut self) {
        guard::reread_max_map_count();
        self.counted = guard::current_map_count();
        self.added = 0;
    }
}
