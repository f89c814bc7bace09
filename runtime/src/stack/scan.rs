//! Which finished stacks have deep pages to release: one page-table scan
//! for a whole batch instead of one `MADV_DONTNEED` per stack.
//!
//! Releasing a finished stack's deep pages (`release.rs`) costs a system
//! call's worth of kernel work *per range*, even batched and even when
//! nothing is resident there, which is the common case: most coroutines
//! never leave their top page. The kernel can say which pages of a range
//! are resident in one call over the whole range: the `PAGEMAP_SCAN`
//! ioctl on `/proc/self/pagemap` (Linux 6.7+) walks its page tables and
//! returns the runs of pages that are present or swapped. The pool sorts a
//! batch of finished stacks by address, scans the span they cover when it
//! is short enough (so the walk costs less than the releases it saves),
//! and releases only the stacks with a resident page below their top page.
//!
//! Invariants: a stack is reported clean only if the scan covered its
//! whole deep range and found nothing there; any doubt (an error, a result
//! vector that filled up, a kernel without the ioctl) makes it dirty, and a
//! dirty stack is released as before. Skipping a release never affects
//! correctness, only memory (a stack's unused pages are never read before
//! they are written), so a wrong "clean" would cost memory, not safety.
//!
//! The pagemap file describes the address space of the process that
//! opened it, so a child made by `fork` must not use its parent's: the file
//! is opened close-on-exec and reopened after a fork (`pthread_atfork`).
//! The cost figures: `docs/notes/cold-paths.md`.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::Mutex;

use super::page::page_size;

/// `PAGEMAP_SCAN` from `linux/fs.h`: `_IOWR('f', 16, struct pm_scan_arg)`.
const PAGEMAP_SCAN: u64 = (3 << 30) | ((size_of::<PmScanArg>() as u64) << 16) | (0x66 << 8) | 16;
const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_SWAPPED: u64 = 1 << 4;
/// Runs of resident pages one scan can report. A batch of stacks whose top
/// pages are resident reports about two runs per stack (the top page, and
/// on kernels that report guard markers as swapped, the next slot's guard).
const MAX_REGIONS: usize = 256;
/// Scan a span only if it averages at most this many pages per stack: the
/// walk costs about one page-table entry per page, a release about as much
/// as walking a few hundred (figures: `docs/notes/cold-paths.md`).
pub(crate) const SPAN_PAGES_PER_STACK: usize = 128;

#[repr(C)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// Batches still to release without a scan: after a scan that found most
/// stacks dirty (coroutines that use deep stacks), scanning is skipped for
/// a while, since it would only add its cost to the releases.
static SKIP_SCANS: AtomicU32 = AtomicU32::new(0);
/// Batches skipped after a scan found at least three quarters dirty.
const SKIP_AFTER_DIRTY: u32 = 8;

/// Should the next batch be scanned? (No while skipping, see above.)
pub(crate) fn worth_scanning() -> bool {
    let skip = SKIP_SCANS.load(Ordering::Relaxed);
    if skip == 0 {
        return true;
    }
    SKIP_SCANS.store(skip - 1, Ordering::Relaxed);
    false
}

/// Report a scan of `stacks` that found `dirty` of them dirty.
pub(crate) fn scanned(stacks: usize, dirty: usize) {
    if stacks >= 4 && 4 * dirty >= 3 * stacks {
        SKIP_SCANS.store(SKIP_AFTER_DIRTY, Ordering::Relaxed);
    }
}

/// The open pagemap file (-1: not open yet; -2: scanning does not work).
static PAGEMAP: AtomicI32 = AtomicI32::new(-1);
/// Set in a forked child: the inherited file describes the parent.
static FORKED: AtomicBool = AtomicBool::new(false);
/// Serialises opening and reopening the file.
static OPENING: Mutex<()> = Mutex::new(());

extern "C" fn after_fork_in_child() {
    // Async-signal-safe: one atomic store.
    FORKED.store(true, Ordering::Relaxed);
}

/// The pagemap file to scan with, opening it on first use (or after a
/// fork); `None` if this kernel cannot scan.
fn pagemap() -> Option<i32> {
    let fd = PAGEMAP.load(Ordering::Acquire);
    if fd >= 0 && !FORKED.load(Ordering::Relaxed) {
        return Some(fd);
    }
    if fd == -2 {
        return None;
    }
    let _guard = OPENING.lock().unwrap_or_else(|e| e.into_inner());
    let fd = PAGEMAP.load(Ordering::Acquire);
    if FORKED.swap(false, Ordering::Relaxed) && fd >= 0 {
        // SAFETY: our own descriptor, inherited from the parent; nobody
        // else closes it.
        unsafe { libc::close(fd) };
    } else if fd >= 0 {
        return Some(fd);
    } else if fd == -2 {
        return None;
    } else {
        // First open in this process: learn about forks from now on.
        // SAFETY: registering a handler that only stores to an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    }
    // SAFETY: a NUL-terminated path; the descriptor is ours.
    let fd = unsafe {
        libc::open(
            c"/proc/self/pagemap".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    let usable = fd >= 0 && probe(fd);
    if !usable && fd >= 0 {
        // SAFETY: the descriptor we just opened.
        unsafe { libc::close(fd) };
    }
    let fd = if usable { fd } else { -2 };
    PAGEMAP.store(fd, Ordering::Release);
    (fd >= 0).then_some(fd)
}

/// Does `PAGEMAP_SCAN` work here? A scan of a fresh mapping with one
/// touched page must report exactly that page (qemu-user, for one, does
/// not pass the ioctl through).
fn probe(fd: i32) -> bool {
    let page = page_size();
    let Ok(mut map) = memmap2::MmapMut::map_anon(4 * page) else {
        return false;
    };
    map[2 * page] = 1;
    let base = map.as_ptr() as usize;
    let mut regions = [PageRegion::default(); 4];
    matches!(
        scan_raw(fd, base, base + 4 * page, &mut regions),
        Some(1) if regions[0].start as usize == base + 2 * page
            && regions[0].end as usize == base + 3 * page
    )
}

/// One `PAGEMAP_SCAN` of `[start, end)` for present or swapped pages.
/// Returns how many runs it wrote, or `None` if it failed or did not
/// reach `end` (then nothing may be concluded about the rest).
fn scan_raw(fd: i32, start: usize, end: usize, regions: &mut [PageRegion]) -> Option<usize> {
    let mut arg = PmScanArg {
        size: size_of::<PmScanArg>() as u64,
        flags: 0,
        start: start as u64,
        end: end as u64,
        walk_end: 0,
        vec: regions.as_mut_ptr() as u64,
        vec_len: regions.len() as u64,
        max_pages: 0,
        category_inverted: 0,
        category_mask: 0,
        category_anyof_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        return_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
    };
    // SAFETY: `arg` describes `regions`, which the kernel fills (at most
    // `vec_len` entries); the scanned range is only read.
    let rc = unsafe { libc::ioctl(fd, PAGEMAP_SCAN as _, &mut arg) };
    (rc >= 0 && arg.walk_end == end as u64).then_some(rc as usize)
}

/// Can this process scan its page tables? (Opens the file on first use.)
#[cfg(test)]
pub(crate) fn available() -> bool {
    pagemap().is_some()
}

/// Forget that scans were found useless (tests want a scan now).
#[cfg(test)]
pub(crate) fn reset_skipping() {
    SKIP_SCANS.store(0, Ordering::Relaxed);
}

/// For each `(address, length)` range, sorted by address and not
/// overlapping, whether it may hold a resident page. One scan covers them
/// all; if it cannot (no kernel support, too many runs), every range is
/// reported as possibly resident.
pub(crate) fn maybe_resident(ranges: &[(usize, usize)]) -> Vec<bool> {
    let mut dirty = vec![true; ranges.len()];
    let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else {
        return dirty;
    };
    debug_assert!(ranges.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0));
    let Some(fd) = pagemap() else {
        return dirty;
    };
    let (start, end) = (first.0, last.0 + last.1);
    let mut regions = [PageRegion::default(); MAX_REGIONS];
    let Some(found) = scan_raw(fd, start, end, &mut regions) else {
        return dirty;
    };
    if found == MAX_REGIONS {
        // Perhaps more runs than room: the unreported ones could be anywhere.
        return dirty;
    }
    let regions = &regions[..found];
    // Both lists are sorted: walk them together.
    let mut r = 0;
    for (i, &(from, len)) in ranges.iter().enumerate() {
        let to = from + len;
        while r < regions.len() && (regions[r].end as usize) <= from {
            r += 1;
        }
        dirty[i] = r < regions.len() && (regions[r].start as usize) < to;
    }
    dirty
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_reports_exactly_the_ranges_with_resident_pages() {
        let page = page_size();
        let map = memmap2::MmapMut::map_anon(16 * page).unwrap();
        let base = map.as_ptr() as usize;
        for i in [1, 6, 7, 12] {
            // SAFETY: inside our private mapping.
            unsafe { ((base + i * page) as *mut u8).write_volatile(1) };
        }
        let ranges = [
            (base, page),                 // page 0: untouched
            (base + page, page),          // page 1: touched
            (base + 2 * page, 4 * page),  // 2..6: untouched
            (base + 6 * page, 3 * page),  // 6..9: touched
            (base + 13 * page, 3 * page), // 13..16: untouched
        ];
        let got = maybe_resident(&ranges);
        // After a fork the child reopens the file: simulate the handler.
        after_fork_in_child();
        assert_eq!(maybe_resident(&ranges), got, "reopened after a fork");
        if pagemap().is_none() {
            // No PAGEMAP_SCAN here (old kernel, qemu-user): everything
            // must be released, which is the safe answer.
            assert_eq!(got, vec![true; 5]);
        } else {
            assert_eq!(got, vec![false, true, false, true, false]);
        }
    }
}
