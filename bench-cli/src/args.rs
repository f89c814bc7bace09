//! Parsing numbers from the command line, strictly and with one clear error.
//!
//! Benchmarks are run with big counts, and people write big numbers in many
//! ways. `--count` accepts `10000`, `1_000`, `1e4` and `10^4`, and nothing
//! else: no fractions, no negative numbers, no zero, nothing above 10^8.
//! Sizes (`--stack-max`, `--frame-bytes`) accept plain bytes or a binary
//! suffix: `256K`, `256KiB`, `1M`, `1MiB` (K means 1024 here, and the error
//! messages say KiB to make that plain).
//!
//! Each parser returns `Err(String)` with a message clap prints on one line
//! as `invalid value '...' for '--count <N>': <message>`.

/// Largest count any subcommand accepts.
pub const MAX_COUNT: u64 = 100_000_000;
/// Largest `--repeat`.
pub const MAX_REPEAT: usize = 1000;
/// Largest `--workers`.
pub const MAX_WORKERS: usize = 1024;

/// Why a number did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumError {
    /// Not written as a whole number at all.
    Invalid,
    /// Well written, but larger than a `u64`.
    TooLarge,
}

/// Parse a whole number written as `10000`, `1_000`, `1e4` or `10^4`.
pub fn parse_number(text: &str) -> Result<u64, NumError> {
    let s: String = text.trim().chars().filter(|&c| c != '_').collect();
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let int = |t: &str| -> Result<u64, NumError> {
        if !all_digits(t) {
            return Err(NumError::Invalid);
        }
        t.parse().map_err(|_| NumError::TooLarge)
    };
    let power = |base: u64, exp: u64| -> Result<u64, NumError> {
        let exp = u32::try_from(exp).map_err(|_| NumError::TooLarge)?;
        base.checked_pow(exp).ok_or(NumError::TooLarge)
    };
    if let Some((m, e)) = s.split_once(['e', 'E']) {
        let (m, e) = (int(m)?, int(e)?);
        if m == 0 {
            return Ok(0);
        }
        return m.checked_mul(power(10, e)?).ok_or(NumError::TooLarge);
    }
    if let Some((b, e)) = s.split_once('^') {
        let (b, e) = (int(b)?, int(e)?);
        return if b <= 1 {
            Ok(if e == 0 { 1 } else { b })
        } else {
            power(b, e)
        };
    }
    int(&s)
}

fn whole(text: &str) -> Result<u64, String> {
    if text.trim_start().starts_with('-') {
        return Err("must not be negative".into());
    }
    parse_number(text).map_err(|e| match e {
        NumError::Invalid => "expected a whole number such as 10000, 1e4, 10^4 or 10_000".into(),
        NumError::TooLarge => "number too large".into(),
    })
}

/// `--count`: 1 ..= 10^8.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let n = match parse_number(text) {
        Err(NumError::TooLarge) => u64::MAX,
        _ => whole(text)?,
    };
    if n == 0 {
        return Err("must be at least 1".into());
    }
    if n > MAX_COUNT {
        return Err(format!("must be at most 10^8 ({MAX_COUNT})"));
    }
    Ok(n)
}

/// `--repeat`: 1 ..= 1000.
pub fn parse_repeat(text: &str) -> Result<usize, String> {
    let n = whole(text)?;
    match usize::try_from(n) {
        Ok(n) if (1..=MAX_REPEAT).contains(&n) => Ok(n),
        _ => Err(format!("must be between 1 and {MAX_REPEAT}")),
    }
}

/// `--workers`: 1 ..= 1024 worker threads.
pub fn parse_workers(text: &str) -> Result<usize, String> {
    let n = whole(text)?;
    match usize::try_from(n) {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
        _ => Err(format!(
            "a runtime needs between 1 and {MAX_WORKERS} workers"
        )),
    }
}

/// A byte size: `262144`, `256K`, `256KiB`, `1M`, `1MiB`, `1G` (binary).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let s = text.trim();
    let split = s
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let scale: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return None,
    };
    parse_number(num).ok()?.checked_mul(scale)
}

/// A duration: a number and a unit, `10ms`, `1s`, `500us`, `2.5s`
/// (`ns`, `us`, `µs`, `ms`, `s`, `m`); at most a day.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let scale_ns: f64 = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "" => {
            return Err(format!(
                "{text:?} needs a unit: ns, us, ms, s or m (such as 10ms)"
            ))
        }
        _ => return Err(format!("{text:?} is not a duration such as 10ms or 1s")),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 10ms or 1s"))?;
    let ns = value * scale_ns;
    if !(ns.is_finite() && ns <= 86_400e9) {
        return Err(format!("{text:?} is longer than a day"));
    }
    Ok(std::time::Duration::from_nanos(ns as u64))
}

/// `--stack-max`: a slot size spindle accepts (16 KiB ..= 1 GiB).
pub fn parse_stack_max(text: &str) -> Result<usize, String> {
    let (lo, hi) = (spindle::MIN_STACK_MAX, spindle::MAX_STACK_MAX);
    let range = format!("must be between {} KiB and {} MiB", lo >> 10, hi >> 20);
    let n = parse_bytes(text)
        .ok_or_else(|| format!("expected bytes such as 262144 or 256KiB; {range}"))?;
    match usize::try_from(n) {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("{range} (got {n} bytes)")),
    }
}

/// `--stack-size` for OS threads: 16 KiB ..= 1 GiB.
pub fn parse_thread_stack(text: &str) -> Result<usize, String> {
    let n = parse_bytes(text).ok_or_else(|| "expected bytes such as 65536 or 64KiB".to_string())?;
    match usize::try_from(n) {
        Ok(n) if ((16 << 10)..=(1 << 30)).contains(&n) => Ok(n),
        _ => Err(format!(
            "must be between 16 KiB and 1024 MiB (got {n} bytes)"
        )),
    }
}

/// `--frame-bytes`: a power of two from 64 B to 64 KiB. The recursion uses a
/// fixed-size array per frame, compiled for each of these sizes.
pub fn parse_frame_bytes(text: &str) -> Result<usize, String> {
    let n = parse_bytes(text).ok_or_else(|| "expected bytes such as 1024 or 1KiB".to_string())?;
    match usize::try_from(n) {
        Ok(n) if (64..=65536).contains(&n) && n.is_power_of_two() => Ok(n),
        _ => Err(format!(
            "must be a power of two from 64 to 65536 bytes (got {n})"
        )),
    }
}

/// `--depth`: 1 ..= 10^7 frames.
pub fn parse_depth(text: &str) -> Result<u64, String> {
    let n = whole(text)?;
    if (1..=10_000_000).contains(&n) {
        Ok(n)
    } else {
        Err("must be between 1 and 10^7".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_without() {
        use std::time::Duration;
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
        for bad in ["10", "ms", "10 parsecs", "-1s", "1e400s", "2d", ""] {
            let e = parse_duration(bad).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn counts_in_every_spelling() {
        for s in ["10000", "1e4", "1E4", "10^4", "10_000", " 10000 "] {
            assert_eq!(parse_count(s), Ok(10_000), "{s}");
        }
        assert_eq!(parse_count("1e8"), Ok(MAX_COUNT));
        assert_eq!(parse_count("2e3"), Ok(2000));
    }

    #[test]
    fn bad_counts_are_refused() {
        for s in [
            "0", "1e99", "10^99", "abc", "", "-5", "1.5", "1e8x", "1e-3", "^4", "e4", "1e8 1",
        ] {
            assert!(parse_count(s).is_err(), "{s:?} accepted");
        }
        assert!(parse_count("100000001").is_err());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("256K"), Some(256 << 10));
        assert_eq!(parse_bytes("256KiB"), Some(256 << 10));
        assert_eq!(parse_bytes("1M"), Some(1 << 20));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("1e3"), Some(1000));
        assert_eq!(parse_bytes("12XB"), None);
        assert!(parse_stack_max("1").is_err());
        assert!(parse_stack_max("2G").is_err());
        assert!(parse_stack_max("64K").is_ok());
        assert!(parse_frame_bytes("1000").is_err());
        assert_eq!(parse_frame_bytes("1K"), Ok(1024));
        assert!(parse_workers("0").is_err());
        assert_eq!(parse_workers("2"), Ok(2));
    }
}
