//! Latency samples and their percentiles, and error counts by kind.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Latencies of one kind of operation, in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<u64>);

/// Percentiles of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// How many samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

impl Samples {
    /// Records one latency.
    pub fn add(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u64::MAX as u128) as u64);
    }

    /// Adds another set's samples.
    pub fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// Nearest-rank percentiles; all zero without samples.
    pub fn percentiles(&self) -> Percentiles {
        let mut v = self.0.clone();
        v.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        let rank = |p: f64| {
            if v.is_empty() {
                0
            } else {
                let r = ((p / 100.0) * v.len() as f64).ceil() as usize;
                v[r.clamp(1, v.len()) - 1]
            }
        };
        let mean = if v.is_empty() { 0.0 } else { v.iter().sum::<u64>() as f64 / v.len() as f64 };
        Percentiles {
            count: v.len(),
            p50_ms: ms(rank(50.0)),
            p90_ms: ms(rank(90.0)),
            p99_ms: ms(rank(99.0)),
            max_ms: ms(v.last().copied().unwrap_or(0)),
            mean_ms: mean / 1000.0,
        }
    }
}

/// Counts by a kind key (e.g. `PUT /v1/objects 503`, `PUT /v1/packages transport`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    /// Counts one of `kind`.
    pub fn add(&mut self, kind: impl Into<String>) {
        *self.0.entry(kind.into()).or_insert(0) += 1;
    }

    /// Adds another set's counts.
    pub fn merge(&mut self, other: Counts) {
        for (k, n) in other.0 {
            *self.0.entry(k).or_insert(0) += n;
        }
    }

    /// Sum of all counts.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        for ms in 1..=100 {
            s.add(Duration::from_millis(ms));
        }
        let p = s.percentiles();
        assert_eq!((p.count, p.p50_ms, p.p99_ms, p.max_ms), (100, 50.0, 99.0, 100.0));
        assert_eq!(Samples::default().percentiles().count, 0);
    }
}
