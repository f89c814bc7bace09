//! Giving a finished stack's deep pages back to the kernel, in batches.
//!
//! `madvise(MADV_DONTNEED)` on a range drops its pages: the next touch gets a
//! fresh zero page. That is how a stack that once recursed deeply stops
//! costing memory. Each call costs a system call plus a page-table walk, a
//! large share of a whole spawn-and-join, so the pool releases many stacks at
//! once with `process_madvise(2)`: one system call for a vector of ranges.
//!
//! `process_madvise` accepts `MADV_DONTNEED` on the calling process only on
//! recent kernels, and `PIDFD_SELF` (naming the caller without opening a
//! pidfd, which would go stale across `fork`) only since Linux 6.14. The
//! first failure switches the process to one `madvise` per range for good.
//!
//! **Skipping releases that cannot matter.** Most coroutines never leave
//! their start window, so most releases would find nothing to drop. Every
//! page a process touches for the first time arrives through a page fault,
//! which the kernel counts (`getrusage`), so the pool marks each stack with
//! that count when it hands it out ([`process_faults`], the label's
//! `fault_mark`); if the count is unchanged at release time, the stack is
//! still clean and needs no system call. Why that is sound, and what lies
//! outside the count: `docs/notes/runtime-figures.md`.

use std::sync::atomic::{AtomicBool, Ordering};

use super::pool::PoolStats;
use super::Stack;

/// `PIDFD_SELF` from the Linux 6.14 uapi; not in the `libc` crate yet.
const PIDFD_SELF: libc::c_int = -10000;
/// Ranges per `process_madvise` call (the kernel accepts up to `IOV_MAX`).
pub(crate) const MAX_BATCH: usize = 64;

static BATCHING_WORKS: AtomicBool = AtomicBool::new(true);
/// Cleared if a slab could not be kept off transparent huge pages.
static FAULT_COUNT_TRUSTED: AtomicBool = AtomicBool::new(true);

/// Stop trusting the page-fault count: every finished stack is released
/// with a system call from now on.
pub(crate) fn distrust_fault_count() {
    FAULT_COUNT_TRUSTED.store(false, Ordering::Relaxed);
}

/// Release the deep pages of `stacks`, keeping only those that are clean
/// afterwards. A stack marked with `faults_now` (the fault count has not
/// moved since it was handed out) is clean already and costs no call; of
/// the others, those a page-table scan finds with nothing resident below
/// their top page (`scan.rs`) cost no release either.
///
/// `scan` says whether scanning can pay: not with `mprotect` guards, where
/// every slot is two mappings and a scan across many of them cost more
/// than the releases it saved (`docs/notes/cold-paths.md`).
pub(crate) fn release_all(
    stats: &PoolStats,
    stacks: &mut Vec<Stack>,
    faults_now: Option<u64>,
    scan: bool,
) {
    let mut suspects: Vec<usize> = (0..stacks.len())
        .filter(|&i| faults_now.is_none_or(|now| stacks[i].fault_mark() != now))
        .collect();
    let by_count = stacks.len() - suspects.len();
    suspects.sort_unstable_by_key(|&i| stacks[i].top());
    let ranges: Vec<(usize, usize)> = suspects.iter().map(|&i| stacks[i].deep_range()).collect();
    let mut needs_call = Vec::with_capacity(suspects.len());
    let mut needs_ranges = Vec::with_capacity(suspects.len());
    let scan = scan && super::scan::worth_scanning();
    for (cluster, at) in clusters(&ranges) {
        let dirty = if scan {
            super::scan::maybe_resident(cluster)
        } else {
            vec![true; cluster.len()]
        };
        for (k, &range) in cluster.iter().enumerate() {
            if dirty[k] {
                needs_call.push(suspects[at + k]);
                needs_ranges.push(range);
            }
        }
    }
    if scan {
        super::scan::scanned(ranges.len(), needs_ranges.len());
    }
    stats
        .verified_clean
        .fetch_add(stacks.len() - needs_call.len(), Ordering::Relaxed);
    stats.verified_clean_by_scan.fetch_add(
        stacks.len() - needs_call.len() - by_count,
        Ordering::Relaxed,
    );
    stats
        .released
        .fetch_add(needs_call.len(), Ordering::Relaxed);
    if let Err(failed) = release_ranges(&needs_ranges) {
        let failed: Vec<usize> = failed.into_iter().map(|k| needs_call[k]).collect();
        let mut i = 0;
        stacks.retain(|_| {
            i += 1;
            !failed.contains(&(i - 1))
        });
    }
}

/// Split `sorted` ranges into clusters worth one scan each: neighbours at
/// most [`SPAN_PAGES_PER_STACK`](super::scan::SPAN_PAGES_PER_STACK) pages
/// apart. Yields each cluster with the index of its first range.
fn clusters(sorted: &[(usize, usize)]) -> impl Iterator<Item = (&[(usize, usize)], usize)> {
    let gap_max = super::scan::SPAN_PAGES_PER_STACK * super::page::page_size();
    let mut at = 0;
    std::iter::from_fn(move || {
        if at == sorted.len() {
            return None;
        }
        let start = at;
        at += 1;
        while at < sorted.len() {
            let (prev, len) = sorted[at - 1];
            if sorted[at].0 - (prev + len) > gap_max {
                break;
            }
            at += 1;
        }
        Some((&sorted[start..at], start))
    })
}

/// Release every `(address, length)` range. On failure, returns the indices
/// of the ranges that could not be released (their pages stay resident).
///
/// Each range must be page-aligned, inside a stack slot we own, and hold no
/// live data (its coroutine has finished).
pub(crate) fn release_ranges(ranges: &[(usize, usize)]) -> Result<(), Vec<usize>> {
    let mut failed = Vec::new();
    for (chunk_index, chunk) in ranges.chunks(MAX_BATCH).enumerate() {
        let base = chunk_index * MAX_BATCH;
        let done = if BATCHING_WORKS.load(Ordering::Relaxed) {
            batch(chunk)
        } else {
            0
        };
        for (i, &(addr, len)) in chunk.iter().enumerate().skip(done) {
            if len != 0 && !release_one(addr, len) {
                failed.push(base + i);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed)
    }
}

/// Try one `process_madvise` for `chunk`; returns how many leading ranges
/// were released (all of them, or 0 after switching batching off).
fn batch(chunk: &[(usize, usize)]) -> usize {
    if advise_all(chunk, libc::MADV_DONTNEED) {
        return chunk.len();
    }
    // Unsupported here (or a partial result, which we do not try to parse):
    // from now on this process releases range by range, which is always
    // correct because releasing a range twice is harmless.
    BATCHING_WORKS.store(false, Ordering::Relaxed);
    0
}

/// Give `advice` for every range of `chunk` (at most [`MAX_BATCH`]) with
/// one `process_madvise` on this process. Returns false if the call failed
/// or did not cover every range; the caller then repeats what it needs
/// range by range (only for advice that is harmless to repeat).
///
/// Each range must be page-aligned and inside a mapping this crate owns
/// that can take `advice` (for `MADV_DONTNEED`: holding no live data).
pub(crate) fn advise_all(chunk: &[(usize, usize)], advice: libc::c_int) -> bool {
    debug_assert!(chunk.len() <= MAX_BATCH);
    let iov: Vec<libc::iovec> = chunk
        .iter()
        .map(|&(addr, len)| libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: len,
        })
        .collect();
    let total: usize = chunk.iter().map(|&(_, len)| len).sum();
    // SAFETY: every iovec names a range the caller guarantees is ours and
    // fit for `advice`; process_madvise only reads the vector.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_process_madvise,
            PIDFD_SELF,
            iov.as_ptr(),
            iov.len(),
            advice,
            0,
        )
    };
    rc >= 0 && rc as usize == total
}

/// Page faults this process has taken so far (minor and major, all threads,
/// the exited ones included), or `None` if the kernel will not say or the
/// count cannot be trusted (see the module docs).
pub(crate) fn process_faults() -> Option<u64> {
    if !FAULT_COUNT_TRUSTED.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: rusage is plain data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into the struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    Some(usage.ru_minflt as u64 + usage.ru_majflt as u64)
}

fn release_one(addr: usize, len: usize) -> bool {
    // SAFETY: the caller guarantees the range is ours and holds no live data.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::page::page_size;
    use crate::stack::resident_bytes;

    #[test]
    fn touching_a_new_page_moves_the_fault_count() {
        let page = page_size();
        let map = memmap2::MmapMut::map_anon(4 * page).unwrap();
        let addr = map.as_ptr() as usize + 2 * page;
        // Another thread touches the page: the count is process-wide. The
        // thread is started before the first reading, so that its own start
        // (stack, TLS) is not what moves the count.
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let toucher = std::thread::spawn(move || {
            wait.recv().unwrap();
            // SAFETY: inside our private mapping, which outlives the thread.
            unsafe { (addr as *mut u8).write_volatile(1) }
        });
        let before = process_faults().expect("getrusage works here");
        go.send(()).unwrap();
        toucher.join().unwrap();
        assert!(process_faults().unwrap() > before);
    }

    /// A batch whose fault marks say nothing (as after a burst, when the
    /// count moved on): the stacks that touched deep pages lose them, and
    /// where `PAGEMAP_SCAN` works the untouched ones cost no release.
    #[test]
    fn a_batch_releases_exactly_the_stacks_with_deep_pages() {
        use crate::stack::guard;
        use crate::stack::pool::StackPool;
        let page = page_size();
        let pool = StackPool::new(16 * page, guard::mode().unwrap());
        let mut stacks: Vec<Stack> = (0..8)
            .map(|_| pool.get(None, pool.default_size()).unwrap())
            .collect();
        // Every stack ran (its top page is resident: labels live in the
        // slab's side table, so a fresh slot has no page); every other one
        // also went four pages deeper.
        for stack in &stacks {
            // SAFETY: the top page of the slot.
            unsafe { ((stack.top() - page) as *mut u8).write_volatile(1) };
        }
        for stack in stacks.iter().step_by(2) {
            for i in 2..=5 {
                // SAFETY: inside the slot, above its guard (16 pages).
                unsafe { ((stack.top() - i * page) as *mut u8).write_volatile(1) };
            }
            assert_eq!(stack.resident_bytes().unwrap(), 5 * page);
        }
        super::super::scan::reset_skipping();
        let scan = pool.mode() == guard::GuardMode::Regions;
        release_all(&pool.stats, &mut stacks, None, scan);
        assert_eq!(stacks.len(), 8, "every release worked");
        for stack in &stacks {
            assert_eq!(stack.resident_bytes().unwrap(), page, "only the top page");
        }
        let released = pool.stats.released.load(Ordering::Relaxed);
        let by_scan = pool.stats.verified_clean_by_scan.load(Ordering::Relaxed);
        assert_eq!(released + by_scan, 8);
        if scan && super::super::scan::available() {
            assert_eq!((released, by_scan), (4, 4));
        }
    }

    #[test]
    fn released_ranges_are_no_longer_resident() {
        let page = page_size();
        let map = memmap2::MmapMut::map_anon(8 * page).unwrap();
        let base = map.as_ptr() as usize;
        for i in 0..8 {
            // SAFETY: inside our private mapping.
            unsafe { ((base + i * page) as *mut u8).write_volatile(1) };
        }
        let ranges = [(base, 2 * page), (base + 4 * page, 3 * page), (base, 0)];
        assert_eq!(release_ranges(&ranges), Ok(()));
        assert_eq!(resident_bytes(base, 8 * page).unwrap(), 3 * page);
    }
}
