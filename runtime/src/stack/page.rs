//! The machine's page size, read once at run time.
//!
//! Everything about stacks is measured in pages: guard pages, the resident
//! "start" window, slot sizes. x86_64 Linux uses 4 KiB pages, but aarch64
//! machines run with 4, 16 or 64 KiB pages, so the size is never written as a
//! constant in this crate: it comes from `sysconf(_SC_PAGESIZE)`.

use std::sync::atomic::{AtomicUsize, Ordering};

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The size of one virtual-memory page, in bytes (a power of two).
pub fn page_size() -> usize {
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no memory-safety preconditions.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let size = if raw > 0 { raw as usize } else { 4 << 10 };
    assert!(
        size.is_power_of_two(),
        "page size {size} is not a power of two"
    );
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// Round `bytes` up to a whole number of pages.
pub fn round_up(bytes: usize) -> usize {
    let page = page_size();
    bytes.div_ceil(page) * page
}

/// The "8 KiB start": how much of its stack a coroutine may use without a
/// system call (the pool hands out stacks with only their top page
/// resident; the rest of the window arrives by page fault). On 16 or 64 KiB
/// page systems this is one page.
pub fn start_window() -> usize {
    (8 << 10).max(page_size())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_matches_sysconf_and_rounding_works() {
        let page = page_size();
        assert!(page >= 4096 && page.is_power_of_two());
        assert_eq!(round_up(1), page);
        assert_eq!(round_up(page), page);
        assert_eq!(round_up(page + 1), 2 * page);
        assert_eq!(start_window() % page, 0);
        assert!(start_window() >= 8 << 10);
    }
}
