//! The buffer format of a compacted stack: one 3-bit tag per 8-byte word.
//!
//! Most words of a parked stack are zero (padding, locals never written),
//! or share all but their low bytes with many others: pointers into the
//! same stack (saved frame pointers, references to locals) or the same heap
//! blocks (`Arc`s), return addresses into the binary, small integers. So
//! each buffer names up to six *references*, each a prefix and a payload
//! width `w` (1 to 4 bytes): a word `prefix << 8w | low` is stored as its
//! `w` low bytes. The encoder picks them per buffer, greedily: the prefix
//! and width that save the most bytes, then the best for the words left,
//! while one saves more than its header bytes. Each word is stored by its
//! kind:
//!
//! | tag | the word is | stored as |
//! |-----|-------------|-----------|
//! | 0 `ZERO` | zero | nothing |
//! | 1 `FULL` | covered by no reference (the fallback; no address layout assumed) | 8 bytes |
//! | 2 + i    | covered by reference `i` (the narrowest that covers it) | its `w` low bytes |
//!
//! Words go in groups of eight: three tag bytes (word `k` in bits
//! `3k..3k+3`), then the group's payloads, little-endian, in order. Tag
//! bytes of 0 (eight zero words) are followed by a count byte `n`: `n` more
//! all-zero groups follow, with no bytes of their own. The last group may
//! be short (its missing words' tags are 0). The header holds the word
//! count (so the slot's record needs no saved length), the number of
//! references, and each reference as its width and its prefix in the
//! `8 - w` bytes it can have:
//!
//! ```text
//! [words: u32][refs: u8]([w: u8][prefix])* [tags: 3 bytes][payloads] [0 0 0][n] ...
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
/// Words per group: 8 tags of 3 bits fill the group's 3 tag bytes.
const GROUP: usize = 8;
const TAG_BYTES: usize = 3;
/// The decode buffer: small enough for a signal handler's alternate stack
/// (std's is `SIGSTKSZ`, 8 KiB on x86_64, shared with the kernel's frame).
pub(crate) const CHUNK: usize = 512;

const ZERO: u32 = 0;
const FULL: u32 = 1;
/// Tags `REF..REF + REFS` name a reference.
const REF: u32 = 2;
const REFS: usize = 6;

/// A reference: words `prefix << 8 * width | payload` are stored as their
/// `width` low bytes. `width` is 1..=4 when encoding (the decoder accepts
/// 1..=7).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Ref {
    prefix: u64,
    width: u8,
}

impl Ref {
    fn covers(self, w: u64) -> bool {
        w >> (8 * self.width as u32) == self.prefix
    }
}

fn tag(w: u64, refs: &[Ref]) -> u32 {
    if w == 0 {
        return ZERO;
    }
    let mut best = (FULL, 8);
    for (i, r) in refs.iter().enumerate() {
        if r.covers(w) && r.width < best.1 {
            best = (REF + i as u32, r.width);
        }
    }
    best.0
}

/// The reference that saves the most bytes over the non-zero words that
/// no reference in `taken` covers (for each width 1..=4, the most common
/// prefix, weighed by the bytes each of its words saves, minus its bytes
/// in the header), if it saves any.
fn best_ref(words: &[u64], taken: &[Ref]) -> Option<Ref> {
    let mut best: Option<(usize, Ref)> = None;
    let mut prefixes = Vec::with_capacity(words.len());
    for width in 1..=4u8 {
        prefixes.clear();
        prefixes.extend(
            words
                .iter()
                .filter(|&&w| w != 0 && !taken.iter().any(|r| r.covers(w)))
                .map(|&w| w >> (8 * width as u32)),
        );
        prefixes.sort_unstable();
        for run in prefixes.chunk_by(|a, b| a == b) {
            let saves = run.len() * (8 - width as usize);
            let cost = 1 + 8 - width as usize;
            if saves > cost && best.is_none_or(|b| saves - cost > b.0) {
                best = Some((
                    saves - cost,
                    Ref {
                        prefix: run[0],
                        width,
                    },
                ));
            }
        }
    }
    best.map(|b| b.1)
}

/// Up to [`REFS`] references, chosen greedily: the best one, then the best
/// for what the chosen ones leave.
fn choose_refs(words: &[u64]) -> Vec<Ref> {
    let mut refs = Vec::with_capacity(REFS);
    while refs.len() < REFS {
        match best_ref(words, &refs) {
            Some(r) => refs.push(r),
            None => break,
        }
    }
    refs
}

/// Feed the encoding of `words` to `out`: the header, then the groups.
fn emit(words: &[u64], refs: &[Ref], out: &mut impl FnMut(&[u8])) {
    out(&(words.len() as u32).to_le_bytes());
    out(&[refs.len() as u8]);
    for r in refs {
        out(&[r.width]);
        out(&r.prefix.to_le_bytes()[..8 - r.width as usize]);
    }
    let all_zero = |g: &[u64]| g.iter().all(|&w| w == 0);
    let mut i = 0;
    while i < words.len() {
        let group = &words[i..(i + GROUP).min(words.len())];
        let t = group
            .iter()
            .enumerate()
            .fold(0u32, |t, (k, &w)| t | tag(w, refs) << (3 * k));
        out(&t.to_le_bytes()[..TAG_BYTES]);
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
            match tag(w, refs) {
                ZERO => {}
                FULL => out(&w.to_le_bytes()),
                t => out(&w.to_le_bytes()[..refs[(t - REF) as usize].width as usize]),
            }
        }
    }
}

/// Encode a saved range (`bytes`, a multiple of 8 long) into a fresh
/// buffer of exactly its size.
pub(crate) fn encode(bytes: &[u8]) -> Box<[u8]> {
    debug_assert_eq!(bytes.len() % WORD, 0);
    assert!(bytes.len() / WORD <= u32::MAX as usize, "a stack of 32 GiB");
    let words: Vec<u64> = bytes
        .chunks_exact(WORD)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let refs = choose_refs(&words);
    let mut size = 0;
    emit(&words, &refs, &mut |b| size += b.len());
    let mut out = Vec::with_capacity(size);
    emit(&words, &refs, &mut |b| out.extend_from_slice(b));
    debug_assert_eq!(out.len(), size);
    out.into_boxed_slice()
}

/// What a malformed buffer gives (the restore names it and aborts).
const BAD: &str = "decoding the compacted stack";

/// Read `n` (at most 8) little-endian bytes at `*at` as a word, checked.
fn take_le(buf: &[u8], at: &mut usize, n: usize) -> Result<u64, &'static str> {
    let end = at.checked_add(n).ok_or(BAD)?;
    let bytes = buf.get(*at..end).ok_or(BAD)?;
    let mut le = [0u8; 8];
    le.get_mut(..n).ok_or(BAD)?.copy_from_slice(bytes);
    *at = end;
    Ok(u64::from_le_bytes(le))
}

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

/// How many bytes `buf` (made by [`encode`]) decodes to: the length of the
/// saved range. Async-signal-safe.
pub(crate) fn saved_len(buf: &[u8]) -> Result<usize, &'static str> {
    let mut at = 0;
    Ok(u32::from_le_bytes(take(buf, &mut at)?) as usize * WORD)
}

/// Decode `buf` (made by [`encode`]; [`saved_len`] bytes) and call
/// `f(offset, bytes)` for each decoded chunk, in order (offsets from the
/// start of the saved range; long zero runs are left out). Stops at the
/// first `Err`. Async-signal-safe: no allocation, no panic, [`CHUNK`] bytes
/// of stack.
pub(crate) fn decode(
    buf: &[u8],
    f: impl FnMut(usize, &[u8]) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    let (mut at, mut i) = (0usize, 0usize);
    let n = u32::from_le_bytes(take(buf, &mut at)?) as usize;
    // (base, width) of each reference.
    let mut refs = [(0u64, 0usize); REFS];
    let [count] = take::<1>(buf, &mut at)?;
    for r in refs.get_mut(..count as usize).ok_or(BAD)? {
        let [width] = take::<1>(buf, &mut at)?;
        let width = width as usize;
        if !(1..8).contains(&width) {
            return Err(BAD);
        }
        // The prefix is stored in the 8 - width bytes it can have.
        *r = (take_le(buf, &mut at, 8 - width)? << (8 * width), width);
    }
    let mut chunk = [0u8; CHUNK];
    let mut out = Chunks {
        chunk: &mut chunk,
        fill: 0,
        start: 0,
        f,
    };
    while i < n {
        let t = take_le(buf, &mut at, TAG_BYTES)?;
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
            let w = match (t >> (3 * k)) as u32 & 7 {
                ZERO => 0,
                FULL => take_le(buf, &mut at, WORD)?,
                kind => {
                    let (base, width) = *refs.get((kind - REF) as usize).ok_or(BAD)?;
                    if width == 0 {
                        return Err(BAD); // names a reference the header has not
                    }
                    base | take_le(buf, &mut at, width)?
                }
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

    /// A stack's upper half, and a heap's in another 4 GiB window.
    const STACK: u64 = 0x7f3a;
    const HEAP: u64 = 0x5555;

    fn bytes_of(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    /// Decode into zeros (what the released pages read as), checking that
    /// the chunks stay in range and in order.
    fn decode_all(buf: &[u8], len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let mut next = 0;
        assert_eq!(saved_len(buf), Ok(len));
        decode(buf, |off, b| {
            assert!(off >= next && off + b.len() <= len && b.len() <= CHUNK);
            assert!(!b.is_empty() && off % WORD == 0);
            out[off..off + b.len()].copy_from_slice(b);
            next = off + b.len();
            Ok(())
        })
        .unwrap();
        out
    }

    fn round_trip(words: &[u64]) -> usize {
        let bytes = bytes_of(words);
        let enc = encode(&bytes);
        assert_eq!(decode_all(&enc, bytes.len()), bytes, "{words:x?}");
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

    /// A word with the mix of a real parked stack (zeros, pointers into the
    /// stack and the heap, small integers, return addresses, bytes of a
    /// local), plus words on the kinds' boundaries.
    fn word(rng: &mut Rng) -> u64 {
        let low = rng.next() & 0xffff_ffff;
        match rng.below(14) {
            0..=3 => 0,
            4 | 5 => STACK << 32 | low,
            6 | 7 => HEAP << 32 | low,
            8 => rng.below(1 << 12),
            9 => 0x5612_0000_0000 | low,
            10 => rng.next(),
            11 => [
                1,
                u32::MAX as u64,
                1 << 32,
                u64::MAX,
                STACK << 32,
                HEAP << 32,
            ][rng.below(6) as usize],
            _ => (rng.next() >> rng.below(64)) ^ (STACK << 32),
        }
    }

    #[test]
    fn every_tag_round_trips() {
        let words = [
            0,
            STACK << 32 | 8,
            STACK << 32 | 9,
            STACK << 32 | 10,
            u64::MAX,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            HEAP << 32 | 9,
        ];
        let refs = choose_refs(&words);
        // Only the three stack words share a prefix worth its header bytes.
        assert_eq!(
            refs,
            [Ref {
                prefix: STACK << 24,
                width: 1
            }]
        );
        assert_eq!(tag(words[4], &refs), FULL);
        let len = round_trip(&words);
        // header 4 + 1 + 1 + 7; 3 groups of 3 tag bytes, the zero group's
        // count byte; payloads 1 + 1 + 1 + 8, then 8.
        assert_eq!(len, 4 + 1 + 8 + 3 * 3 + 1 + 3 + 8 + 8);
        // Small integers share the prefix 0.
        let small = [7, 9, 0, STACK << 32 | 0x1234, 1 << 32, 3, 4, 5];
        assert_eq!(
            choose_refs(&small),
            [Ref {
                prefix: 0,
                width: 1
            }]
        );
        round_trip(&small);
        // Several references cover a word: the narrowest one stores it.
        let refs = [
            Ref {
                prefix: STACK,
                width: 4,
            },
            Ref {
                prefix: STACK << 16 | 0xabcd,
                width: 2,
            },
        ];
        assert_eq!(tag(STACK << 32 | 0xabcd_0001, &refs), REF + 1);
        assert_eq!(tag(STACK << 32 | 0xabce_0001, &refs), REF);
        // Six references, each over a run of its own.
        let many: Vec<u64> = (0..6u64)
            .flat_map(|r| (0..5).map(move |k| (0x1000 + r) << 40 | k))
            .collect();
        assert_eq!(choose_refs(&many).len(), REFS);
        assert!(round_trip(&many) < many.len() * 4);
    }

    #[test]
    fn odd_lengths_and_empty_round_trip() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for n in 0..40 {
            let words: Vec<u64> = (0..n).map(|_| word(&mut rng)).collect();
            round_trip(&words);
            round_trip(&vec![0; n]);
            round_trip(&vec![u64::MAX; n]);
            round_trip(&vec![STACK << 32; n]);
        }
    }

    #[test]
    fn random_words_round_trip() {
        let mut rng = Rng(42);
        for _ in 0..3000 {
            let n = rng.below(300) as usize;
            let words: Vec<u64> = (0..n).map(|_| word(&mut rng)).collect();
            round_trip(&words);
            // Runs of one kind, and uniformly random words.
            let kind = rng.next();
            let runs: Vec<u64> = (0..n)
                .map(|k| {
                    if (kind >> (k / 16 % 64)) & 1 == 0 {
                        0
                    } else {
                        word(&mut rng)
                    }
                })
                .collect();
            round_trip(&runs);
            let random: Vec<u64> = (0..n).map(|_| rng.next()).collect();
            assert!(round_trip(&random) <= 5 + 8 * REFS + 3 * n.div_ceil(GROUP) + 8 * n);
        }
    }

    #[test]
    fn long_zero_runs_are_short_and_skipped() {
        // A deep stack's dead middle: 8 KiB of zeros between live words.
        let mut words = vec![0u64; 2048];
        words[0] = 5;
        words[1000] = STACK << 32 | 0x40;
        words[2047] = u64::MAX;
        let len = round_trip(&words);
        assert!(len < 60, "{len} bytes");
        let mut calls = 0;
        let mut written = 0;
        decode(&encode(&bytes_of(&words)), |_, b| {
            calls += 1;
            written += b.len();
            Ok(())
        })
        .unwrap();
        assert!(
            calls <= 4 && written <= 3 * CHUNK,
            "{calls} calls, {written} B"
        );
        // 256 all-zero groups are more than one count byte holds.
        assert!(round_trip(&vec![0; 8 * 1024 + 3]) <= 5 + 4 * 5);
    }

    #[test]
    fn a_realistic_stack_shrinks_to_under_half() {
        // The mix of a parked coroutine's live range measured in the
        // `spindle-bench mem` workload (without its 256-byte local): 40 %
        // zero, 25 % into the stack, 20 % into the heap, 15 % other.
        let mut rng = Rng(7);
        let words: Vec<u64> = (0..142)
            .map(|_| match rng.below(20) {
                0..=7 => 0,
                8..=12 => STACK << 32 | rng.below(1 << 32),
                13..=16 => HEAP << 32 | rng.below(1 << 32),
                _ => word(&mut rng),
            })
            .collect();
        let len = round_trip(&words);
        assert!(len * 2 < 142 * 8, "{len} bytes");
    }

    #[test]
    fn malformed_buffers_are_errors_not_panics() {
        let mut rng = Rng(3);
        let words: Vec<u64> = (0..50).map(|_| word(&mut rng)).collect();
        let enc = encode(&bytes_of(&words));
        let ok = |_: usize, _: &[u8]| Ok(());
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut], ok).is_err(), "cut at {cut}");
        }
        let mut longer = enc.to_vec();
        longer.push(0);
        assert!(decode(&longer, ok).is_err());
        // Garbage of any kind: an error or a decode, never a panic.
        for _ in 0..2000 {
            let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            let _ = decode(&junk, ok);
        }
        // The caller's error stops the decode.
        assert_eq!(decode(&enc, |_, _| Err("stop")), Err("stop"));
    }
}
