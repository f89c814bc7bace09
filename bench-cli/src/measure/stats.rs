//! Summarising repeated measurements: median, minimum and maximum.
//!
//! A benchmark run is noisy (other processes, frequency scaling, a page
//! fault at the wrong moment), so each row is measured R times. The median
//! is the headline figure because one unlucky sample cannot move it; min and
//! max show the spread, so a reader can tell a stable number from a shaky one.

use serde::{Deserialize, Serialize};

/// R samples of one measurement, in nanoseconds per operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub samples_ns: Vec<f64>,
    pub median_ns: f64,
    pub min_ns: f64,
    pub max_ns: f64,
}

impl Summary {
    /// Summarise at least one sample.
    pub fn of(samples: Vec<f64>) -> Summary {
        assert!(!samples.is_empty(), "no samples");
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        Summary {
            median_ns: median(&sorted),
            min_ns: sorted[0],
            max_ns: sorted[sorted.len() - 1],
            samples_ns: samples,
        }
    }

    /// "35.2 ns" plus "(34.9–36.0)" when there is a spread.
    pub fn spread(&self) -> String {
        format!(
            "{}–{}",
            crate::present::units::ns(self.min_ns),
            crate::present::units::ns(self.max_ns)
        )
    }
}

/// Median of a sorted, non-empty slice.
pub fn median(sorted: &[f64]) -> f64 {
    let m = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[m]
    } else {
        (sorted[m - 1] + sorted[m]) / 2.0
    }
}

/// Median of unsorted values (empty: NaN).
pub fn median_of(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    median(&v)
}

/// `--repeat R`, the one way: run `sample` R times, stopping at the first
/// error. Results that are one figure each (`mem`, `threads`, `grow`) are
/// listed; timed rows are summarised with [`measure`].
pub fn runs<T, E>(repeat: usize, mut sample: impl FnMut() -> Result<T, E>) -> Result<Vec<T>, E> {
    (0..repeat).map(|_| sample()).collect()
}

/// Run `sample` R times and summarise; `sample` returns ns per operation or
/// an error that stops the row.
pub fn measure<E>(repeat: usize, sample: impl FnMut() -> Result<f64, E>) -> Result<Summary, E> {
    runs(repeat, sample).map(Summary::of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let s = Summary::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.median_ns, s.min_ns, s.max_ns), (2.0, 1.0, 3.0));
        let s = Summary::of(vec![4.0, 1.0, 2.0, 3.0]);
        assert_eq!(s.median_ns, 2.5);
        assert!(median_of(&[]).is_nan());
    }
}
