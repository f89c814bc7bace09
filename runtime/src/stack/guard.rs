//! Guard pages: how a stack overflow becomes a clean crash instead of silent
//! corruption of the neighbouring stack.
//!
//! Every stack slot has one guard page at its low end. Touching it faults, and
//! the overflow handler (`overflow.rs`) turns the fault into a report. There
//! are two ways to make a page fault on access:
//!
//! * **Guard regions** (`madvise(MADV_GUARD_INSTALL)`, Linux 6.13+). The kernel
//!   marks the page-table entries themselves. The mapping stays one VMA, so a
//!   million guards cost no VMAs at all.
//! * **mprotect** (`PROT_NONE`). Works everywhere, but splits the mapping: each
//!   guarded slot costs two VMAs (guard + stack). Linux caps VMAs per process
//!   at `vm.max_map_count` (65530 by default), which puts a wall near 32.7k
//!   stacks. Past the wall *every* mmap fails, the allocator's included, so we
//!   count VMAs ourselves and refuse with a clear error before we get there
//!   (`vma_budget.rs`).
//!
//! The mode is chosen once per process. Guard regions are *probed*, not
//! trusted: qemu-user returns 0 from the madvise and installs nothing, so we
//! check that a `write(2)` from a guarded page really fails with `EFAULT`.
//! `SPINDLE_GUARD=mprotect` forces the fallback (CI uses this to test it);
//! `SPINDLE_GUARD=regions` insists on guard regions and fails if they do not work.

use std::io;
use std::sync::OnceLock;

use super::page::page_size;

/// `madvise` advice values from the Linux 6.13 uapi; the `libc` crate does not
/// define them yet.
const MADV_GUARD_INSTALL: libc::c_int = 102;
const MADV_GUARD_REMOVE: libc::c_int = 103;

/// How guard pages are made in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardMode {
    /// `MADV_GUARD_INSTALL` guard regions: no VMA per guard.
    Regions,
    /// `mprotect(PROT_NONE)` guard pages: two VMAs per stack slot.
    Mprotect,
}

impl GuardMode {
    /// A short human name, as printed by the benchmark header.
    pub fn name(self) -> &'static str {
        match self {
            GuardMode::Regions => "guard regions (MADV_GUARD_INSTALL)",
            GuardMode::Mprotect => "mprotect guard pages",
        }
    }

    /// Whether `RuntimeBuilder::compact_after` is offered in this mode: with
    /// guard regions everywhere; under the mprotect fallback only on x86_64,
    /// where it is tested (`docs/notes/compact.md`, "mprotect").
    pub fn compacts(self) -> bool {
        self == GuardMode::Regions || cfg!(target_arch = "x86_64")
    }
}

/// The process-wide guard mode, probed on first use.
pub fn mode() -> io::Result<GuardMode> {
    static MODE: OnceLock<Result<GuardMode, String>> = OnceLock::new();
    MODE.get_or_init(choose_mode)
        .clone()
        .map_err(io::Error::other)
}

fn choose_mode() -> Result<GuardMode, String> {
    match std::env::var("SPINDLE_GUARD").as_deref() {
        Ok("mprotect") => Ok(GuardMode::Mprotect),
        Ok("regions") => {
            if guard_regions_work() {
                Ok(GuardMode::Regions)
            } else {
                Err(
                    "SPINDLE_GUARD=regions, but MADV_GUARD_INSTALL does not work here \
                     (needs Linux 6.13+, not qemu-user); unset it to fall back to mprotect"
                        .into(),
                )
            }
        }
        Ok("auto") | Ok("") | Err(_) => Ok(if guard_regions_work() {
            GuardMode::Regions
        } else {
            GuardMode::Mprotect
        }),
        Ok(other) => Err(format!(
            "SPINDLE_GUARD={other:?} is not one of auto, regions, mprotect"
        )),
    }
}

/// Install a guard region on a scratch page and check that the kernel really
/// refuses to read from it. A `write(2)` whose source buffer is unreadable
/// fails with `EFAULT` instead of crashing, which makes it a safe probe.
fn guard_regions_work() -> bool {
    let page = page_size();
    // SAFETY: a fresh private anonymous mapping; we only pass its address to
    // madvise/write and unmap it before returning.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            2 * page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return false;
        }
        let works = libc::madvise(p, page, MADV_GUARD_INSTALL) == 0 && {
            let mut fds = [0; 2];
            if libc::pipe(fds.as_mut_ptr()) != 0 {
                false
            } else {
                let guarded = libc::write(fds[1], p, 1);
                let guarded_errno = io::Error::last_os_error().raw_os_error();
                let open = libc::write(fds[1], (p as *const u8).add(page).cast(), 1);
                libc::close(fds[0]);
                libc::close(fds[1]);
                guarded == -1 && guarded_errno == Some(libc::EFAULT) && open == 1
            }
        };
        libc::munmap(p, 2 * page);
        works
    }
}

/// Make `[addr, addr + len)` fault on any access.
///
/// # Safety
/// The range must be page-aligned, inside a mapping this crate owns, and hold
/// no live data.
pub unsafe fn install(mode: GuardMode, addr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: the caller guarantees the range is ours and unused.
    let rc = unsafe {
        match mode {
            GuardMode::Regions => libc::madvise(addr.cast(), len, MADV_GUARD_INSTALL),
            GuardMode::Mprotect => libc::mprotect(addr.cast(), len, libc::PROT_NONE),
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// [`install`] guard regions on every `(address, length)` range, with one
/// `process_madvise` for up to 64 of them where the kernel takes it (a
/// system call per slot was most of carving a fresh one), one `madvise`
/// per range otherwise (installing a guard twice is harmless).
///
/// # Safety
/// Same as [`install`], for every range.
pub unsafe fn install_regions(ranges: &[(usize, usize)]) -> io::Result<()> {
    use super::release::{advise_all, MAX_BATCH};
    for chunk in ranges.chunks(MAX_BATCH) {
        if advise_all(chunk, MADV_GUARD_INSTALL) {
            continue;
        }
        for &(addr, len) in chunk {
            // SAFETY: the caller's promise, per range.
            unsafe { install(GuardMode::Regions, addr as *mut u8, len)? };
        }
    }
    Ok(())
}

/// Undo [`install`] so the range can be carved differently.
///
/// # Safety
/// Same as [`install`].
pub unsafe fn remove(mode: GuardMode, addr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: the caller guarantees the range is ours and unused.
    let rc = unsafe {
        match mode {
            GuardMode::Regions => libc::madvise(addr.cast(), len, MADV_GUARD_REMOVE),
            GuardMode::Mprotect => {
                libc::mprotect(addr.cast(), len, libc::PROT_READ | libc::PROT_WRITE)
            }
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a guard does, seen from a system call: `write(2)` from a guarded
    /// page fails with EFAULT (no signal), and works again once removed.
    /// spindle itself never needs `remove`: a slot keeps its layout for life
    /// and guard markers survive the `MADV_DONTNEED` of a stack release.
    /// `write(2)` one byte from `addr`: its result and errno.
    fn write_from(addr: *const u8) -> (isize, Option<i32>) {
        let mut fds = [0; 2];
        // SAFETY: a fresh pipe; write(2) only reads `addr` (or fails).
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let rc = libc::write(fds[1], addr.cast(), 1);
            let errno = io::Error::last_os_error().raw_os_error();
            libc::close(fds[0]);
            libc::close(fds[1]);
            (rc, errno)
        }
    }

    /// Guards installed as a batch (`install_regions`) guard every range
    /// and nothing between them.
    #[test]
    fn guard_regions_installed_in_one_batch() {
        if mode().unwrap() != GuardMode::Regions {
            return; // mprotect mode installs one guard at a time
        }
        let page = page_size();
        let map = memmap2::MmapMut::map_anon(200 * page).unwrap();
        let base = map.as_ptr() as usize;
        let ranges: Vec<(usize, usize)> = (0..100).map(|i| (base + 2 * i * page, page)).collect();
        // SAFETY: pages of our own mapping, holding nothing.
        unsafe { install_regions(&ranges).unwrap() };
        for i in 0..100 {
            let guard = (base + 2 * i * page) as *const u8;
            assert_eq!(write_from(guard), (-1, Some(libc::EFAULT)), "range {i}");
            assert_eq!(write_from(guard.wrapping_add(page)).0, 1, "after range {i}");
        }
    }

    #[test]
    fn install_then_remove_a_guard() {
        let page = page_size();
        let mode = mode().unwrap();
        let map = memmap2::MmapMut::map_anon(2 * page).unwrap();
        let p = map.as_ptr() as *mut u8;
        // SAFETY: the first page of our own mapping, holding nothing.
        unsafe { install(mode, p, page).unwrap() };
        assert_eq!(write_from(p), (-1, Some(libc::EFAULT)));
        assert_eq!(write_from(p.wrapping_add(page)).0, 1);
        // A release over the guard (the trim of a run of pooled stacks,
        // `trim.rs`) keeps it.
        // SAFETY: our own mapping, holding nothing we need.
        assert_eq!(
            unsafe { libc::madvise(p.cast(), 2 * page, libc::MADV_DONTNEED) },
            0
        );
        assert_eq!(write_from(p), (-1, Some(libc::EFAULT)));
        assert_eq!(write_from(p.wrapping_add(page)).0, 1);
        // SAFETY: as above.
        unsafe { remove(mode, p, page).unwrap() };
        assert_eq!(write_from(p).0, 1);
    }
}
