//! Where the process's memory is, split by kind: `mem --breakdown`.
//!
//! The headline figure of `mem` is RSS plus page tables; this module says
//! which mappings that RSS lives in and what the allocator holds, so that a
//! reader can follow every byte per coroutine to its source:
//!
//! * **stack slots**: resident pages of every stack slab (`mincore` over
//!   the ranges the runtime registered, [`spindle::stack::slab_regions`]);
//! * **slot labels**: resident pages of the slabs' side tables of labels;
//! * **brk heap**: `[heap]` in `/proc/self/smaps`, the main malloc arena;
//! * **other anonymous**: every other anonymous mapping (malloc's
//!   `mmap`ed blocks and thread arenas, thread stacks), i.e. anonymous RSS
//!   minus slots and labels;
//! * **file-backed**: the binary, libraries, locale files;
//! * **page tables**: `VmPTE` from `/proc/self/status`;
//! * **malloc in use / free**: `mallinfo2(3)`: bytes in allocated chunks
//!   (headers included, `mmap`ed blocks included), and bytes free inside
//!   the arenas, which malloc keeps and which are resident if touched.
//!
//! A snapshot reads `/proc/self/smaps` and calls `mincore` over every slab
//! (tens of milliseconds at 10^6 slots), so `mem` takes one only with
//! `--breakdown`: just before its baseline reading, after the `--reused`
//! warm-up, and just after its final reading. The headline figures are
//! read exactly as without it; what a snapshot allocates is freed before
//! the next reading.

use std::io::{self, BufRead};

use serde::{Deserialize, Serialize};

/// One snapshot, in bytes (absolute, not deltas).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub stack_slots: u64,
    pub slot_labels: u64,
    pub brk_heap: u64,
    pub other_anon: u64,
    pub file: u64,
    pub page_tables: u64,
    pub malloc_in_use: u64,
    pub malloc_free: u64,
    /// Lines (mappings) in `/proc/self/maps`.
    pub mappings: u64,
}

/// A snapshot at one point of a `mem` run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub at: Snapshot,
}

impl Snapshot {
    pub fn now() -> io::Result<Snapshot> {
        // Read line by line through a small buffer: with the mprotect guard
        // fallback the file has two mappings per stack, and reading it
        // whole would put tens of MB into the very heap being measured.
        let mut smaps = io::BufReader::new(std::fs::File::open("/proc/self/smaps")?);
        let (mut anon, mut brk_heap, mut file, mut mappings) = (0u64, 0u64, 0u64, 0u64);
        let mut kind = Kind::Anon;
        let mut line = String::new();
        loop {
            line.clear();
            if smaps.read_line(&mut line)? == 0 {
                break;
            }
            let line = line.trim_end();
            if let Some(k) = header_kind(line) {
                kind = k;
                mappings += 1;
                continue;
            }
            let Some(bytes) = super::procfs::kb_field(line, "Rss") else {
                continue;
            };
            match kind {
                Kind::Anon => anon += bytes,
                Kind::Brk => brk_heap += bytes,
                Kind::File => file += bytes,
            }
        }
        let (mut stack_slots, mut slot_labels) = (0u64, 0u64);
        for r in spindle::stack::slab_regions() {
            stack_slots += spindle::stack::resident_bytes(r.slots.0, r.slots.1)? as u64;
            slot_labels += spindle::stack::resident_bytes(r.labels.0, r.labels.1)? as u64;
        }
        let (malloc_in_use, malloc_free) = malloc_figures();
        Ok(Snapshot {
            stack_slots,
            slot_labels,
            brk_heap,
            other_anon: anon.saturating_sub(stack_slots + slot_labels),
            file,
            page_tables: super::procfs::vm_pte_bytes()?,
            malloc_in_use,
            malloc_free,
            mappings,
        })
    }

    /// The rows of a breakdown table: label and value, in a fixed order.
    pub fn rows(&self) -> [(&'static str, u64); 9] {
        [
            ("stack slots (mincore)", self.stack_slots),
            ("slot labels (mincore)", self.slot_labels),
            ("brk heap ([heap] Rss)", self.brk_heap),
            ("other anonymous Rss", self.other_anon),
            ("file-backed Rss", self.file),
            ("page tables (VmPTE)", self.page_tables),
            ("malloc in use (mallinfo2)", self.malloc_in_use),
            ("malloc free, kept (mallinfo2)", self.malloc_free),
            ("mappings (count)", self.mappings),
        ]
    }
}

enum Kind {
    /// No path, or `[stack]`, `[vdso]` and the like.
    Anon,
    Brk,
    File,
}

/// The kind of a `/proc/self/smaps` mapping header line, or `None` if the
/// line is a field ("Rss:   4 kB"). A header is "start-end perms offset
/// dev inode [path]".
fn header_kind(line: &str) -> Option<Kind> {
    let mut parts = line.split_whitespace();
    let range = parts.next()?;
    let (a, b) = range.split_once('-')?;
    if !a.bytes().all(|c| c.is_ascii_hexdigit()) || !b.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let path = parts.nth(4);
    Some(match path {
        None => Kind::Anon,
        Some("[heap]") => Kind::Brk,
        Some(p) if p.starts_with('/') => Kind::File,
        Some(_) => Kind::Anon,
    })
}

/// glibc's `mallinfo2`: (bytes in use, bytes free inside the arenas).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_figures() -> (u64, u64) {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let m = unsafe { libc::mallinfo2() };
    ((m.uordblks + m.hblkhd) as u64, m.fordblks as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn malloc_figures() -> (u64, u64) {
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_this_process() {
        let s = Snapshot::now().unwrap();
        assert!(s.file > 0 && s.mappings > 0);
        assert!(matches!(
            header_kind("7f00-7f10 rw-p 00000000 00:00 0 "),
            Some(Kind::Anon)
        ));
        assert!(matches!(
            header_kind("5500-5510 rw-p 00000000 00:00 0    [heap]"),
            Some(Kind::Brk)
        ));
        assert!(header_kind("Rss:                   4 kB").is_none());
    }
}
