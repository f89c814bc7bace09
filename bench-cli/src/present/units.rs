//! Writing numbers for people: bytes, times and counts, with honest units.
//!
//! Two byte units are in use and they differ by 2.4 %: a KB is 1000 bytes,
//! a KiB is 1024. Per-coroutine costs are printed as bytes and KB (that is how
//! the Go and spindle figures are quoted); sizes that are powers of two, such
//! as stack slots and page sizes, are printed in KiB/MiB. Capacities ("how
//! many fit in 8 GiB") use GiB because that is how memory is sold.

/// `4612` -> `"4,612"`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A signed byte count with thousands separators: `-1,234 B`.
pub fn bytes(b: f64) -> String {
    let sign = if b < 0.0 { "-" } else { "" };
    format!("{sign}{} B", group(b.abs().round() as u64))
}

/// Bytes per unit as "4,612 B (4.61 KB)" (KB = 1000 B).
pub fn bytes_kb(b: f64) -> String {
    format!("{} ({:.2} KB)", bytes(b), b / 1000.0)
}

/// A power-of-two size: "256 KiB", "2 MiB", "4 KiB", "1.5 MiB", "128 TiB".
pub fn binary(b: u64) -> String {
    let units = [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (scale, unit) in units {
        if b >= scale {
            let v = b as f64 / scale as f64;
            return if b % scale == 0 {
                format!("{} {unit}", b / scale)
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{b} B")
}

/// Large memory amounts: "2.74 GB" (decimal) for totals.
pub fn gb(b: f64) -> String {
    if b.abs() >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b.abs() >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.1} KB", b / 1e3)
    }
}

/// A duration in nanoseconds with a sensible unit: "35.2 ns", "1.23 µs".
pub fn ns(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} s", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1} µs", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.2} µs", v / 1e3)
    } else {
        format!("{v:.1} ns")
    }
}

/// A count as "10^6" when it is an exact power of ten, else "123,456".
pub fn count(n: u64) -> String {
    let mut p = 0;
    let mut m = n;
    while m >= 10 && m % 10 == 0 {
        m /= 10;
        p += 1;
    }
    if m == 1 && p >= 3 {
        format!("10^{p}")
    } else {
        group(n)
    }
}

/// A ratio such as "3.4×".
pub fn ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}×")
    } else {
        "n/a".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(12), "12");
        assert_eq!(bytes_kb(4612.0), "4,612 B (4.61 KB)");
        assert_eq!(bytes(-1234.0), "-1,234 B");
        assert_eq!(binary(256 << 10), "256 KiB");
        assert_eq!(binary(4096), "4 KiB");
        assert_eq!(binary(1 << 47), "128 TiB");
        assert_eq!(binary(3 << 39), "1.5 TiB");
        assert_eq!(count(1_000_000), "10^6");
        assert_eq!(count(1234), "1,234");
        assert_eq!(ns(35.24), "35.2 ns");
        assert_eq!(ns(1234.0), "1.23 µs");
    }
}
