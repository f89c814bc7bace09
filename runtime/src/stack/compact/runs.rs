//! The buffer format of a compacted stack: zero runs left out.
//!
//! A parked stack is full of zero words: padding, unused locals, the parts
//! of frames a function reserved and never wrote (measured: about half of
//! a shallow coroutine's live bytes). The buffer keeps only the rest:
//!
//! ```text
//! [zeros: u32][literals: u32][literals × 8 bytes] [zeros][literals][...] ...
//! ```
//!
//! counted in 8-byte words (the saved range is 16-byte aligned at the
//! bottom and page-aligned at the top). Only runs of at least two zero words
//! are left out (a lone zero word would cost as much as it saves).
//!
//! Restoring writes the literal words back at their offsets and skips the
//! zero runs: the released range reads as zeros again when it is opened
//! (guard regions and `MADV_DONTNEED` both drop the pages), and if a
//! release failed the pages still hold what was saved, zeros included.
//! [`for_each_literal`] walks the runs without allocating, for the signal
//! handler.

const WORD: usize = 8;
const HEADER: usize = 8;

/// Encode `bytes` (a multiple of 8 long) into a fresh buffer sized to fit.
pub(crate) fn encode(bytes: &[u8]) -> Box<[u8]> {
    debug_assert_eq!(bytes.len() % WORD, 0);
    let words: Vec<u64> = bytes
        .chunks_exact(WORD)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let mut out = Vec::with_capacity(bytes.len() / 2 + HEADER);
    let mut i = 0;
    while i < words.len() {
        let zeros_from = i;
        while i < words.len() && words[i] == 0 {
            i += 1;
        }
        let zeros = i - zeros_from;
        let lits_from = i;
        // A literal run ends where a run of two zero words begins.
        while i < words.len() && !(words[i] == 0 && words.get(i + 1) == Some(&0)) {
            i += 1;
        }
        let lits = i - lits_from;
        out.extend_from_slice(&(zeros as u32).to_ne_bytes());
        out.extend_from_slice(&(lits as u32).to_ne_bytes());
        out.extend_from_slice(&bytes[lits_from * WORD..i * WORD]);
    }
    out.into_boxed_slice()
}

/// Call `f(offset, literal bytes)` for every literal run of an encoded
/// buffer, in order; offsets are from the start of the saved range. Stops
/// at the first `Err`. Async-signal-safe: no allocation.
pub(crate) fn for_each_literal<E>(
    buf: &[u8],
    mut f: impl FnMut(usize, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut at = 0;
    let mut offset = 0;
    while at + HEADER <= buf.len() {
        let zeros = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        let lits = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        at += HEADER;
        offset += zeros * WORD;
        let len = lits * WORD;
        if len > 0 {
            f(offset, &buf[at..at + len])?;
        }
        at += len;
        offset += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(buf: &[u8], len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        for_each_literal::<()>(buf, |off, lits| {
            out[off..off + lits.len()].copy_from_slice(lits);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn round_trips_and_leaves_out_zero_runs() {
        let mut bytes = vec![0u8; 8 * 40];
        for w in [0usize, 3, 4, 10, 12, 39] {
            bytes[w * 8] = w as u8 + 1;
        }
        bytes[13 * 8 + 7] = 9; // a non-zero high byte
        let enc = encode(&bytes);
        assert_eq!(decode(&enc, bytes.len()), bytes);
        assert!(
            enc.len() < bytes.len() / 2,
            "{} of {}",
            enc.len(),
            bytes.len()
        );
        for case in [vec![0u8; 64], vec![7u8; 64], vec![], {
            let mut v = vec![0u8; 24];
            v[8] = 1;
            v
        }] {
            assert_eq!(decode(&encode(&case), case.len()), case);
        }
        assert!(encode(&[0u8; 4096]).len() <= 8);
    }
}
