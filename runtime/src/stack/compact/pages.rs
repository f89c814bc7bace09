//! The system calls of compaction: copy a protected range out and in
//! through `/proc/self/mem`, release it, guard it, open it.
//!
//! Another thread may hold a reference into the stack. While the bytes are
//! copied out it must not write (its write would be lost), and while they
//! are copied in it must not read (it would see a half-restored range):
//!
//! * **compact** = `mprotect(PROT_READ)` (writers now fault and wait),
//!   `memcpy` out, then release: in guard-region mode `MADV_GUARD_INSTALL`
//!   (which drops the pages) and `mprotect(READ|WRITE)` again (the markers
//!   keep the range faulting, and the mapping merges back into one VMA); in
//!   mprotect mode `mprotect(PROT_NONE)` and `MADV_DONTNEED`;
//! * **restore** = (regions: `mprotect(PROT_NONE)`, `MADV_GUARD_REMOVE`),
//!   copy in through `/proc/self/mem`, `mprotect(READ|WRITE)`. Writes
//!   through `/proc/self/mem` take the kernel's "forced" path (the one
//!   debuggers use), which may write private pages that are `PROT_NONE`:
//!   the bytes land while every other thread still faults.
//!
//! In mprotect mode a compacted stack may cost one extra VMA (its range
//! splits from the rest of the slot; it usually merges with the next slot's
//! guard), so compaction asks the process's VMA budget first
//! (`vma_budget.rs`) and leaves the coroutine resident if the budget says
//! no. Everything in [`restore`](SlotPages::restore) is async-signal-safe:
//! system calls and loads, no allocation.
//!
//! [`enable`] opens `/proc/self/mem` once and checks on a scratch mapping
//! that the forced access really works here (a kernel booted with
//! `proc_mem.force_override=never`, or an emulator, may refuse it); if not,
//! `RuntimeBuilder::build` fails with the reason.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use super::table::SlotRecord;
use super::{words, Memory};
use crate::stack::guard::GuardMode;
use crate::stack::page::page_size;

const MADV_GUARD_INSTALL: libc::c_int = 102;
const MADV_GUARD_REMOVE: libc::c_int = 103;
const RW: libc::c_int = libc::PROT_READ | libc::PROT_WRITE;

/// The process's `/proc/self/mem`, open for reading and writing; -1 until
/// [`enable`] succeeds.
static PROC_MEM: AtomicI32 = AtomicI32::new(-1);

/// Open `/proc/self/mem` and check that protected pages can be copied
/// through it (idempotent). The error says what is missing.
pub(crate) fn enable(mode: GuardMode) -> io::Result<()> {
    if PROC_MEM.load(Ordering::Acquire) >= 0 {
        return Ok(());
    }
    if !mode.compacts() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "compact_after: under the mprotect guard fallback compaction is only tested on \
             x86_64 (on aarch64 under qemu-user a compacted echo server crashed, cause not \
             found); it needs guard regions (MADV_GUARD_INSTALL, Linux 6.13+) here",
        ));
    }
    REGIONS.store(mode == GuardMode::Regions, Ordering::Relaxed);
    let fd = open_proc_mem()?;
    if let Err(e) = probe(fd, mode) {
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
        return Err(io::Error::new(
            e.kind(),
            format!(
                "compact_after: this system does not let a process copy its own protected \
                 pages through /proc/self/mem ({e}); compaction needs it \
                 (see docs/notes/compact.md)"
            ),
        ));
    }
    if PROC_MEM
        .compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // SAFETY: our own descriptor; another thread's won.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

fn open_proc_mem() -> io::Result<i32> {
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(c"/proc/self/mem".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("compact_after: cannot open /proc/self/mem: {e}"),
        ));
    }
    Ok(fd)
}

/// Compact and restore two scratch pages the way a stack is, and check the
/// bytes and the faulting in between (by `write(2)`, which gets EFAULT).
fn probe(fd: i32, mode: GuardMode) -> io::Result<()> {
    let page = page_size();
    let map = memmap2::MmapMut::map_anon(4 * page)?;
    let base = map.as_ptr() as usize;
    let lo = base + page + page / 2;
    let top = base + 3 * page;
    for a in lo..top {
        // SAFETY: inside our mapping.
        unsafe { *(a as *mut u8) = a as u8 };
    }
    let mut buf = vec![0u8; top - lo];
    // SAFETY: the range is inside our mapping, which nobody else uses.
    unsafe {
        compact_range(mode, lo, top, buf.as_mut_ptr())?;
    }
    if !faults(lo) || !faults(top - 1) {
        return Err(io::Error::other("the released range did not fault"));
    }
    if buf.iter().enumerate().any(|(i, &b)| b != (lo + i) as u8) {
        return Err(io::Error::other("reading protected pages gave wrong bytes"));
    }
    let enc = words::encode(&buf);
    // SAFETY: as above; `enc` holds the saved bytes.
    unsafe { restore_range(fd, mode, lo, top, &enc).map_err(io::Error::other)? };
    for a in lo..top {
        // SAFETY: inside our mapping, open again.
        if unsafe { *(a as *const u8) } != a as u8 {
            return Err(io::Error::other("writing protected pages lost bytes"));
        }
    }
    Ok(())
}

/// Does a `write(2)` from `addr` fail with EFAULT?
fn faults(addr: usize) -> bool {
    let mut fds = [0; 2];
    // SAFETY: a fresh pipe; write(2) only reads `addr`, or fails.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return false;
        }
        let rc = libc::write(fds[1], addr as *const libc::c_void, 1);
        let errno = io::Error::last_os_error().raw_os_error();
        libc::close(fds[0]);
        libc::close(fds[1]);
        rc == -1 && errno == Some(libc::EFAULT)
    }
}

fn floor_page(a: usize) -> usize {
    a & !(page_size() - 1)
}

fn mprotect(from: usize, to: usize, prot: libc::c_int) -> bool {
    // SAFETY: callers pass page-aligned ranges of stack slots they own.
    unsafe { libc::mprotect(from as *mut libc::c_void, to - from, prot) == 0 }
}

fn madvise(from: usize, to: usize, advice: libc::c_int) -> bool {
    // SAFETY: as for `mprotect`.
    unsafe { libc::madvise(from as *mut libc::c_void, to - from, advice) == 0 }
}

/// Seal `[lo, top)` against writes, copy it to `buf`, release its pages and
/// leave it faulting. On error the range is open again with its bytes.
///
/// # Safety
/// `[floor_page(lo), top)` lies in a stack slot the caller owns whose
/// coroutine is parked; `buf` has room for `top - lo` bytes.
unsafe fn compact_range(mode: GuardMode, lo: usize, top: usize, buf: *mut u8) -> io::Result<()> {
    let from = floor_page(lo);
    if !mprotect(from, top, libc::PROT_READ) {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the range is readable, and nobody can write it now (a write
    // faults and waits for the restore); `buf` has room (caller).
    unsafe { std::ptr::copy_nonoverlapping(lo as *const u8, buf, top - lo) };
    match mode {
        GuardMode::Regions => {
            if !madvise(from, top, MADV_GUARD_INSTALL) {
                let e = io::Error::last_os_error();
                mprotect(from, top, RW);
                return Err(e);
            }
            // The markers keep it faulting; RW lets the VMAs merge again. If
            // this fails the range stays split until the restore.
            mprotect(from, top, RW);
        }
        GuardMode::Mprotect => {
            if !mprotect(from, top, libc::PROT_NONE) {
                let e = io::Error::last_os_error();
                mprotect(from, top, RW);
                return Err(e);
            }
            // A failure only leaves the pages resident.
            madvise(from, top, libc::MADV_DONTNEED);
        }
    }
    Ok(())
}

/// Copy the saved bytes (encoded by `words.rs`) back into `[lo, top)` while
/// it still faults, then open it: decoded a chunk at a time into a small
/// stack buffer, one `pwrite` per chunk. Async-signal-safe; the error names
/// the step that failed.
///
/// # Safety
/// `[lo, top)` was compacted by [`compact_range`], `buf` holds its encoded
/// bytes, and nobody else is restoring it.
unsafe fn restore_range(
    fd: i32,
    mode: GuardMode,
    lo: usize,
    top: usize,
    buf: &[u8],
) -> Result<(), &'static str> {
    let from = floor_page(lo);
    if mode == GuardMode::Regions {
        if !mprotect(from, top, libc::PROT_NONE) {
            return Err("mprotect(PROT_NONE)");
        }
        if !madvise(from, top, MADV_GUARD_REMOVE) {
            return Err("MADV_GUARD_REMOVE");
        }
    }
    if words::saved_len(buf) != Ok(top - lo) {
        return Err("reading the compacted stack's length");
    }
    words::decode(buf, |offset, bytes| {
        // SAFETY: pwrite only reads `bytes`; the file offset is an address
        // in our range (the decoder keeps `offset + len` within it).
        let n = unsafe {
            libc::pwrite(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                lo.wrapping_add(offset) as libc::off_t,
            )
        };
        if n < 0 || n as usize != bytes.len() {
            return Err("pwrite(/proc/self/mem)");
        }
        Ok(())
    })?;
    if !mprotect(from, top, RW) {
        return Err("mprotect(PROT_READ|PROT_WRITE)");
    }
    Ok(())
}

/// One slot's pages and its record: the real [`Memory`] of the protocol.
#[derive(Clone)]
pub(crate) struct SlotPages<'a> {
    pub record: &'a SlotRecord,
    /// The slot top (exclusive).
    pub top: usize,
    /// Lowest live address, for `compact` (the saved stack pointer minus
    /// the margin); restore and free read the record instead.
    pub lo: usize,
    /// The slot's base (its guard page), for batching neighbours; only
    /// `compact_batch` reads it.
    pub slot_base: usize,
    pub mode: GuardMode,
}

impl Memory for SlotPages<'_> {
    fn compact(&self) -> bool {
        let fd = PROC_MEM.load(Ordering::Acquire);
        if fd < 0 || self.lo >= self.top {
            return false;
        }
        if self.mode == GuardMode::Mprotect && crate::stack::vma_budget::reserve(2).is_err() {
            return false;
        }
        let saved = self.top - self.lo;
        let _ = fd;
        with_scratch(saved, |scratch| {
            // SAFETY: the worker owns the parked coroutine's slot; the
            // scratch buffer has `saved` bytes.
            if unsafe { compact_range(self.mode, self.lo, self.top, scratch.as_mut_ptr()) }.is_err()
            {
                return false;
            }
            self.keep(words::encode(scratch));
            true
        })
    }

    fn restore(&self) {
        let fd = PROC_MEM.load(Ordering::Acquire);
        let len = self.record.buf_len.load(Ordering::Relaxed) as usize;
        let buf = self.record.buf.load(Ordering::Relaxed);
        // SAFETY: the protocol made us the one restorer of a COMPACTED slot,
        // whose record holds the buffer `compact` filled, `len` bytes long.
        let result = unsafe {
            let buf = std::slice::from_raw_parts(buf, len);
            match words::saved_len(buf).map(|saved| self.top.checked_sub(saved)) {
                Ok(Some(lo)) => restore_range(fd, self.mode, lo, self.top, buf),
                _ => Err("reading the compacted stack's length"),
            }
        };
        if let Err(step) = result {
            die(step);
        }
    }

    fn free_buffer(&self) {
        let len = self.record.buf_len.load(Ordering::Relaxed) as usize;
        let buf = self
            .record
            .buf
            .swap(std::ptr::null_mut(), Ordering::Relaxed);
        if !buf.is_null() {
            // SAFETY: made by `keep` as a boxed slice of `len` bytes; the
            // protocol says nobody reads it any more.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(buf, len)) });
        }
    }
}

impl SlotPages<'_> {
    /// Publish the encoded buffer in the record (the state word's store that
    /// follows makes it visible to a restorer).
    fn keep(&self, enc: Box<[u8]>) {
        self.record
            .buf_len
            .store(enc.len() as u32, Ordering::Relaxed);
        self.record
            .buf
            .store(Box::into_raw(enc) as *mut u8, Ordering::Relaxed);
    }
}

/// Compact many parked stacks of this worker at once, in guard-region
/// mode; returns which were compacted. The same steps as
/// [`Memory::compact`], with the system calls shared: slots that are
/// neighbours in their slab form one span, sealed and opened with one
/// `mprotect` each (what lies between their live ranges is the dead part of
/// parked stacks of this worker, and their guard pages, which keep their
/// markers), and every range gets its guard markers from one
/// `process_madvise`. Only the copies out are one call per stack.
///
/// # Safety
/// Every slot belongs to a coroutine of this worker that is parked, and
/// its record is `COMPACTING`.
pub(crate) unsafe fn compact_batch(slots: &[SlotPages]) -> Vec<bool> {
    let mut done = vec![false; slots.len()];
    if PROC_MEM.load(Ordering::Acquire) < 0 {
        return done;
    }
    let mut order: Vec<usize> = (0..slots.len())
        .filter(|&i| slots[i].lo < slots[i].top && slots[i].mode == GuardMode::Regions)
        .collect();
    order.sort_by_key(|&i| slots[i].top);
    let mut saved: Vec<Option<Box<[u8]>>> = (0..slots.len()).map(|_| None).collect();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut k = 0;
    while k < order.len() {
        let mut end = k + 1;
        while end < order.len() && slots[order[end]].slot_base == slots[order[end - 1]].top {
            end += 1;
        }
        let (from, to) = (floor_page(slots[order[k]].lo), slots[order[end - 1]].top);
        if mprotect(from, to, libc::PROT_READ) {
            for &i in &order[k..end] {
                let s = &slots[i];
                // SAFETY: readable, and nobody can write it now (a write
                // faults and waits); the caller owns these parked stacks.
                let live = unsafe { std::slice::from_raw_parts(s.lo as *const u8, s.top - s.lo) };
                saved[i] = Some(words::encode(live));
            }
            spans.push((from, to));
        }
        k = end;
    }
    let ranges: Vec<(usize, usize)> = order
        .iter()
        .filter(|&&i| saved[i].is_some())
        .map(|&i| {
            (
                floor_page(slots[i].lo),
                slots[i].top - floor_page(slots[i].lo),
            )
        })
        .collect();
    // SAFETY: sealed live ranges of parked stacks whose bytes are saved.
    if unsafe { crate::stack::guard::install_regions(&ranges) }.is_err() {
        // Which ones failed is unknown: install one by one (harmless twice).
        for &i in &order {
            if saved[i].is_some()
                && !madvise(floor_page(slots[i].lo), slots[i].top, MADV_GUARD_INSTALL)
            {
                saved[i] = None;
            }
        }
    }
    for (from, to) in spans {
        mprotect(from, to, RW);
    }
    for (i, enc) in saved.into_iter().enumerate() {
        if let Some(enc) = enc {
            slots[i].keep(enc);
            done[i] = true;
        }
    }
    done
}

thread_local! {
    /// A worker's copy-out buffer, reused (the buffer kept is sized to fit).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
/// Scratch kept between compactions (a deep stack's is given back).
const SCRATCH_KEEP: usize = 64 << 10;

/// Run `f` on this worker's scratch buffer, `len` bytes long.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        scratch.resize(len, 0);
        let r = f(&mut scratch[..len]);
        scratch.clear();
        scratch.shrink_to(SCRATCH_KEEP);
        r
    })
}

/// A restore that fails cannot be undone soundly (the bytes would be lost):
/// say which step failed, and abort. Async-signal-safe.
fn die(step: &str) -> ! {
    let mut line = [0u8; 160];
    let mut n = 0;
    for part in [
        b"spindle: cannot restore a compacted stack: ".as_slice(),
        step.as_bytes(),
        b" failed\n".as_slice(),
    ] {
        let k = part.len().min(line.len() - n);
        line[n..n + k].copy_from_slice(&part[..k]);
        n += k;
    }
    // SAFETY: write(2) and abort(3) are async-signal-safe.
    unsafe {
        libc::write(2, line.as_ptr().cast(), n);
        libc::abort();
    }
}

/// The guard mode compaction uses: the process's, recorded by [`enable`]
/// so the signal handler reads it with one load.
pub(crate) fn mode() -> GuardMode {
    if REGIONS.load(Ordering::Relaxed) {
        GuardMode::Regions
    } else {
        GuardMode::Mprotect
    }
}

static REGIONS: AtomicBool = AtomicBool::new(false);

#[cfg(test)]
mod tests {
    use super::*;

    /// The guard mode, once compaction is enabled in it; `None` where it
    /// is refused (the mprotect fallback off x86_64), after checking that
    /// the refusal names guard regions.
    fn enabled_mode() -> Option<GuardMode> {
        let mode = crate::stack::guard::mode().unwrap();
        if !mode.compacts() {
            let err = enable(mode).unwrap_err();
            assert!(err.to_string().contains("needs guard regions"), "{err}");
            return None;
        }
        enable(mode).unwrap();
        Some(mode)
    }

    #[test]
    fn probe_works_in_this_guard_mode() {
        let Some(mode) = enabled_mode() else { return };
        assert_eq!(super::mode(), mode, "the mode compaction records");
    }

    /// A compacted range faults for system calls (EFAULT), holds no
    /// memory, and comes back byte for byte at the same addresses.
    #[test]
    fn compact_then_restore_keeps_the_bytes() {
        let Some(mode) = enabled_mode() else { return };
        let fd = PROC_MEM.load(Ordering::Acquire);
        let page = page_size();
        let map = memmap2::MmapMut::map_anon(8 * page).unwrap();
        let base = map.as_ptr() as usize;
        let (lo, top) = (base + 2 * page + 112, base + 6 * page);
        for a in base..base + 8 * page {
            // SAFETY: inside our mapping.
            unsafe { *(a as *mut u8) = (a >> 3) as u8 };
        }
        let mut buf = vec![0u8; top - lo];
        // SAFETY: our own mapping.
        unsafe { compact_range(mode, lo, top, buf.as_mut_ptr()).unwrap() };
        assert!(faults(lo) && faults(top - 1) && faults(floor_page(lo)));
        assert!(!faults(floor_page(lo) - 1) && !faults(top));
        let resident = crate::stack::resident_bytes(base, 8 * page).unwrap();
        assert_eq!(resident, 4 * page, "the compacted pages were not released");
        let enc = words::encode(&buf);
        // SAFETY: as above.
        unsafe { restore_range(fd, mode, lo, top, &enc).unwrap() };
        for a in lo..top {
            // SAFETY: inside our mapping.
            assert_eq!(unsafe { *(a as *const u8) }, (a >> 3) as u8);
        }
    }
}
