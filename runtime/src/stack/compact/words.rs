//! The buffer format of a compacted stack: one 2-bit tag per 8-byte word.
//!
//! Most words of a parked stack are zero (padding, locals never written),
//! pointers into the same stack (saved frame pointers, references to
//! locals), or small integers. So each word is stored by its kind:
//!
//! | tag | the word is | stored as |
//! |-----|-------------|-----------|
//! | 0 `ZERO`  | zero | nothing |
//! | 1 `NEAR`  | `hi << 32 \| low`, `hi` = upper half of the slot top | `low`, 4 bytes |
//! | 2 `SMALL` | `< 2^32` | 4 bytes |
//! | 3 `FULL`  | anything else (the fallback; no address layout assumed) | 8 bytes |
//!
//! Words go in groups of four: one tag byte (word `k` in bits `2k..2k+2`),
//! then the group's payloads, little-endian, in order. A tag byte of 0
//! (four zero words) is followed by a count byte `n`: `n` more all-zero
//! groups follow, with no bytes of their own. The last group may be short
//! (its missing words' tags are 0); the word count comes from the saved
//! length, which the record keeps.
//!
//! ```text
//! [tag][payloads...] [0][n] [tag][payloads...] ...
//! ```
//!
//! Decoding ([`decode`]) is for the signal handler too: no allocation, no
//! panic (checked access only; a malformed buffer is an `Err`), the words
//! are rebuilt into a small buffer on the caller's stack ([`CHUNK`] bytes)
//! and handed out chunk by chunk with their offsets. A zero run of at least
//! a chunk's length is skipped, not handed out: the restored range reads as
//! zeros there (its pages were dropped, or, if the release failed, still
//! hold the saved zeros). Measured figures: `docs/notes/compact.md`.

const WORD: usize = 8;
const GROUP: usize = 4;
/// The decode buffer: small enough for a signal handler's alternate stack
/// (std's is `SIGSTKSZ`, 8 KiB on x86_64, shared with the kernel's frame).
pub(crate) const CHUNK: usize = 512;

const ZERO: u8 = 0;
const NEAR: u8 = 1;
const SMALL: u8 = 2;
const FULL: u8 = 3;

/// The upper half that `NEAR` words share: the slot top's (its last byte's).
fn high(top: usize) -> u64 {
    (top as u64).wrapping_sub(1) >> 32
}

fn tag(w: u64, hi: u64) -> u8 {
    if w == 0 {
        ZERO
    } else if w >> 32 == 0 {
        SMALL
    } else if w >> 32 == hi {
        NEAR
    } else {
        FULL
    }
}

/// Feed the encoding of `words` (upper half `hi` for `NEAR`) to `out`.
fn emit(words: &[u64], hi: u64, out: &mut impl FnMut(&[u8])) {
    let all_zero = |g: &[u64]| g.iter().all(|&w| w == 0);
    let mut i = 0;
    while i < words.len() {
        let group = &words[i..(i + GROUP).min(words.len())];
        let t = group
            .iter()
            .enumerate()
            .fold(0u8, |t, (k, &w)| t | tag(w, hi) << (2 * k));
        out(&[t]);
        i += GROUP;
        if t == 0 {
            let mut extra = 0u8;
            while extra < u8::MAX
                && i < words.len()
                && all_zero(&words[i..(i + GROUP).min(words.len())])
            {
                extra += 1;
                i += GROUP;
            }
            out(&[extra]);
            continue;
        }
        for &w in group {
            match tag(w, hi) {
                ZERO => {}
                NEAR | SMALL => out(&(w as u32).to_le_bytes()),
                _ => out(&w.to_le_bytes()),
            }
        }
    }
}

/// Encode a saved range (`bytes`, a multiple of 8 long, ending at or below
/// the slot top `top`) into a fresh buffer of exactly its size.
pub(crate) fn encode(bytes: &[u8], top: usize) -> Box<[u8]> {
    debug_assert_eq!(bytes.len() % WORD, 0);
    let words: Vec<u64> = bytes
        .chunks_exact(WORD)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let hi = high(top);
    let mut size = 0;
    emit(&words, hi, &mut |b| size += b.len());
    let mut out = Vec::with_capacity(size);
    emit(&words, hi, &mut |b| out.extend_from_slice(b));
    debug_assert_eq!(out.len(), size);
    out.into_boxed_slice()
}

/// What a malformed buffer gives (the restore names it and aborts).
const BAD: &str = "decoding the compacted stack";

/// Read `N` little-endian bytes at `*at`, checked.
fn take<const N: usize>(buf: &[u8], at: &mut usize) -> Result<[u8; N], &'static str> {
    let end = at.checked_add(N).ok_or(BAD)?;
    let bytes: [u8; N] = buf.get(*at..end).ok_or(BAD)?.try_into().map_err(|_| BAD)?;
    *at = end;
    Ok(bytes)
}

/// The decode buffer and where its bytes go.
struct Chunks<'a, F> {
    chunk: &'a mut [u8; CHUNK],
    /// Bytes filled.
    fill: usize,
    /// Offset (in the saved range) of `chunk[0]`.
    start: usize,
    f: F,
}

impl<F: FnMut(usize, &[u8]) -> Result<(), &'static str>> Chunks<'_, F> {
    fn flush(&mut self) -> Result<(), &'static str> {
        if self.fill > 0 {
            (self.f)(self.start, self.chunk.get(..self.fill).ok_or(BAD)?)?;
            self.start = self.start.checked_add(self.fill).ok_or(BAD)?;
            self.fill = 0;
        }
        Ok(())
    }

    fn put(&mut self, w: u64) -> Result<(), &'static str> {
        if self.fill + WORD > CHUNK {
            self.flush()?;
        }
        let dst = self.chunk.get_mut(self.fill..self.fill + WORD).ok_or(BAD)?;
        dst.copy_from_slice(&w.to_ne_bytes());
        self.fill += WORD;
        Ok(())
    }

    /// Leave out `words` zero words: the next chunk starts after them.
    fn skip(&mut self, words: usize) -> Result<(), &'static str> {
        self.flush()?;
        self.start = self.start.checked_add(words * WORD).ok_or(BAD)?;
        Ok(())
    }
}

/// Decode `buf` (made by [`encode`] from `len` bytes below `top`) and call
/// `f(offset, bytes)` for each decoded chunk, in order (offsets from the
/// start of the saved range; long zero runs are left out). Stops at the
/// first `Err`. Async-signal-safe: no allocation, no panic, [`CHUNK`] bytes
/// of stack.
pub(crate) fn decode(
    buf: &[u8],
    len: usize,
    top: usize,
    f: impl FnMut(usize, &[u8]) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    let hi = high(top);
    let n = len / WORD;
    let mut chunk = [0u8; CHUNK];
    let mut out = Chunks {
        chunk: &mut chunk,
        fill: 0,
        start: 0,
        f,
    };
    let (mut at, mut i) = (0usize, 0usize);
    while i < n {
        let [t] = take::<1>(buf, &mut at)?;
        let in_group = GROUP.min(n - i);
        if t == 0 {
            let [extra] = take::<1>(buf, &mut at)?;
            let zeros = ((1 + extra as usize) * GROUP).min(n - i);
            if zeros * WORD >= CHUNK {
                out.skip(zeros)?;
            } else {
                for _ in 0..zeros {
                    out.put(0)?;
                }
            }
            i += zeros;
            continue;
        }
        for k in 0..in_group {
            let w = match (t >> (2 * k)) & 3 {
                ZERO => 0,
                NEAR => hi << 32 | u32::from_le_bytes(take(buf, &mut at)?) as u64,
                SMALL => u32::from_le_bytes(take(buf, &mut at)?) as u64,
                _ => u64::from_le_bytes(take(buf, &mut at)?),
            };
            out.put(w)?;
        }
        i += in_group;
    }
    out.flush()?;
    if at != buf.len() {
        return Err(BAD);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: usize = 0x7f3a_1234_0000;

    fn bytes_of(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    /// Decode into zeros (what the released pages read as), checking that
    /// the chunks stay in range and in order.
    fn decode_all(buf: &[u8], len: usize, top: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let mut next = 0;
        decode(buf, len, top, |off, b| {
            assert!(off >= next && off + b.len() <= len && b.len() <= CHUNK);
            assert!(!b.is_empty() && off % WORD == 0);
            out[off..off + b.len()].copy_from_slice(b);
            next = off + b.len();
            Ok(())
        })
        .unwrap();
        out
    }

    fn round_trip(words: &[u64], top: usize) -> usize {
        let bytes = bytes_of(words);
        let enc = encode(&bytes, top);
        assert_eq!(decode_all(&enc, bytes.len(), top), bytes, "{words:x?}");
        enc.len()
    }

    /// xorshift64*: a reproducible stream without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A word of each kind, drawn with the weights of a real parked stack
    /// (zeros, pointers into the stack, small integers), plus words that
    /// sit on the kinds' boundaries.
    fn word(rng: &mut Rng, top: usize) -> u64 {
        let hi = high(top);
        match rng.below(12) {
            0..=3 => 0,
            4..=6 => hi << 32 | rng.next() & 0xffff_ffff,
            7 | 8 => rng.below(1 << 32),
            9 => rng.next(),
            10 => [1, u32::MAX as u64, 1 << 32, u64::MAX, hi << 32, (hi + 1) << 32][rng.below(6) as usize],
            _ => 0x5555_0000_0000 | rng.next() & 0xffff_ffff, // a heap pointer
        }
    }

    #[test]
    fn every_tag_round_trips() {
        let hi = high(TOP);
        let words = [0, hi << 32 | 8, 7, u64::MAX, 0, 0, 0, 0, hi << 32, 1 << 32];
        let len = round_trip(&words, TOP);
        // 3 tag bytes, the zero group's count byte; payloads 4 + 4 + 8, 4 + 8.
        assert_eq!(len, 3 + 1 + 16 + 12);
    }

    #[test]
    fn odd_lengths_and_empty_round_trip() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for n in 0..40 {
            let words: Vec<u64> = (0..n).map(|_| word(&mut rng, TOP)).collect();
            round_trip(&words, TOP);
            round_trip(&vec![0; n], TOP);
        }
    }

    #[test]
    fn random_words_round_trip_at_any_top() {
        let mut rng = Rng(42);
        for _ in 0..2000 {
            // Tops below 4 GiB (NEAR and SMALL overlap), at a 4 GiB boundary,
            // and high in a 48- or 57-bit address space.
            let top = [0x10_0000, 1 << 32, TOP, 0x00ff_ffff_f000_0000][rng.below(4) as usize];
            let n = rng.below(300) as usize;
            let words: Vec<u64> = (0..n).map(|_| word(&mut rng, top)).collect();
            round_trip(&words, top);
        }
    }

    #[test]
    fn long_zero_runs_are_short_and_skipped() {
        // A deep stack's dead middle: 8 KiB of zeros between live words.
        let mut words = vec![0u64; 2048];
        words[0] = 5;
        words[1000] = high(TOP) << 32 | 0x40;
        words[2047] = u64::MAX;
        let len = round_trip(&words, TOP);
        assert!(len < 40, "{len} bytes");
        let mut calls = 0;
        let mut written = 0;
        decode(&encode(&bytes_of(&words), TOP), 2048 * 8, TOP, |_, b| {
            calls += 1;
            written += b.len();
            Ok(())
        })
        .unwrap();
        assert!(calls <= 4 && written <= 3 * CHUNK, "{calls} calls, {written} B");
        // 256 all-zero groups is more than one count byte holds.
        assert!(round_trip(&vec![0; 8 * 1024 + 3], TOP) <= 2 * 10);
    }

    #[test]
    fn a_realistic_stack_shrinks_to_under_half() {
        let mut rng = Rng(7);
        let words: Vec<u64> = (0..142).map(|_| word(&mut rng, TOP)).collect();
        let len = round_trip(&words, TOP);
        assert!(len * 2 < 142 * 8, "{len} bytes");
    }

    #[test]
    fn malformed_buffers_are_errors_not_panics() {
        let mut rng = Rng(3);
        let words: Vec<u64> = (0..50).map(|_| word(&mut rng, TOP)).collect();
        let enc = encode(&bytes_of(&words), TOP);
        let ok = |_: usize, _: &[u8]| Ok(());
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut], 50 * 8, TOP, ok).is_err(), "cut at {cut}");
        }
        let mut longer = enc.to_vec();
        longer.push(0);
        assert!(decode(&longer, 50 * 8, TOP, ok).is_err());
        // Garbage of any kind: an error or a decode, never a panic.
        for _ in 0..2000 {
            let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            let _ = decode(&junk, rng.below(1 << 12) as usize, TOP, ok);
        }
        // The caller's error stops the decode.
        assert_eq!(decode(&enc, 50 * 8, TOP, |_, _| Err("stop")), Err("stop"));
    }
}
