//! Latency summaries from raw per-request samples.
//!
//! Samples are kept as a plain vector of microseconds and sorted once: a 10 s run at 100k
//! req/s is a few megabytes, and exact percentiles beat a histogram's bucket error.

use serde_json::{json, Value};

/// Percentiles of one run's request latencies, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest request.
    pub max_us: u64,
    /// Arithmetic mean.
    pub mean_us: f64,
}

impl LatencySummary {
    /// Summarise `samples_us` (sorted in place). `None` when there are no samples.
    pub fn from_samples(samples_us: &mut [u64]) -> Option<LatencySummary> {
        if samples_us.is_empty() {
            return None;
        }
        samples_us.sort_unstable();
        let sum: u128 = samples_us.iter().map(|&s| u128::from(s)).sum();
        Some(LatencySummary {
            p50_us: percentile(samples_us, 50.0),
            p99_us: percentile(samples_us, 99.0),
            max_us: *samples_us.last().expect("non-empty"),
            mean_us: sum as f64 / samples_us.len() as f64,
        })
    }

    /// The summary as JSON for the results file.
    pub fn to_json(&self) -> Value {
        json!({ "p50_us": self.p50_us, "p99_us": self.p99_us, "max_us": self.max_us, "mean_us": self.mean_us })
    }
}

/// Nearest-rank percentile of sorted samples: the smallest sample with at least `pct` percent
/// of all samples at or below it.
pub fn percentile(sorted: &[u64], pct: f64) -> u64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_pick_real_samples() {
        let mut samples: Vec<u64> = (1..=100).rev().collect();
        let summary = LatencySummary::from_samples(&mut samples).unwrap();
        assert_eq!(summary.p50_us, 50);
        assert_eq!(summary.p99_us, 99);
        assert_eq!(summary.max_us, 100);
        assert!((summary.mean_us - 50.5).abs() < 1e-9);
    }

    #[test]
    fn one_slow_request_in_a_hundred_sets_the_p99_only_above_a_hundred() {
        let mut samples = vec![10u64; 99];
        samples.push(5_000);
        let summary = LatencySummary::from_samples(&mut samples).unwrap();
        assert_eq!(summary.p99_us, 10, "99 of 100 samples are 10 µs");
        assert_eq!(summary.max_us, 5_000);
        let mut samples = vec![10u64; 98];
        samples.extend([5_000, 5_000]);
        assert_eq!(
            LatencySummary::from_samples(&mut samples).unwrap().p99_us,
            5_000
        );
    }

    #[test]
    fn no_samples_no_summary() {
        assert_eq!(LatencySummary::from_samples(&mut []), None);
    }
}
