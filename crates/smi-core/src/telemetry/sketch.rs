//! A mergeable latency sketch with 1% relative error: DDSketch's logarithmic mapping
//! (Masson, Rim and Lee, VLDB 2019), with bins fixed in advance.
//!
//! A latency of `v` microseconds falls in bin `ceil(log_γ v)`, `γ = (1 + α) / (1 - α)`, `α = 1%`;
//! every value in a bin is within 1% of the bin's representative value, so every quantile read
//! from the bins is within 1% of the true one. The bins are the same in every process, so
//! sketches merge by adding counts: the control merges instances and windows exactly.
//!
//! Why not the `sketches-ddsketch` crate: its store grows on insert (an allocation on the request
//! path) and cannot be built from counts that a report carries. With bins fixed here, the data
//! path keeps one array of atomic counters per series and a report carries `(bin, count)` pairs.

use std::time::Duration;

/// The guaranteed relative error of a quantile.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// How many bins there are: bin 0 holds everything up to 1 µs; the last holds everything from
/// about 7 hours on.
pub const BINS: usize = 1200;

/// `ln γ`.
fn ln_gamma() -> f64 {
    ((1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln()
}

/// The bin of a latency.
pub fn bin_of(latency: Duration) -> u16 {
    let micros = latency.as_secs_f64() * 1e6;
    if micros <= 1.0 {
        return 0;
    }
    let bin = (micros.ln() / ln_gamma()).ceil();
    // `as` saturates; BINS fits in u16.
    (bin as usize).min(BINS - 1) as u16
}

/// The value that represents a bin, microseconds: within [`RELATIVE_ACCURACY`] of every value
/// in it.
pub fn bin_value_micros(bin: u16) -> f64 {
    if bin == 0 {
        return 1.0;
    }
    let gamma = ln_gamma().exp();
    2.0 * gamma.powi(i32::from(bin)) / (gamma + 1.0)
}

/// Counts per bin, sparse and sorted by bin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencySketch {
    bins: Vec<(u16, u64)>,
    count: u64,
}

/// Why reported bins are not a sketch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SketchError {
    #[error("latency bin {0} does not exist (bins are 0 to {max})", max = BINS - 1)]
    NoSuchBin(u32),
    #[error("{bins} bins and {counts} counts: they must pair up")]
    Unpaired { bins: usize, counts: usize },
}

impl LatencySketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// A sketch from reported `(bin, count)` pairs in any order (repeats add up); bounded by
    /// [`BINS`] pairs after merging, whatever the input's length.
    pub fn from_bins(bins: &[u32], counts: &[u64]) -> Result<Self, SketchError> {
        if bins.len() != counts.len() {
            return Err(SketchError::Unpaired {
                bins: bins.len(),
                counts: counts.len(),
            });
        }
        let mut pairs = Vec::with_capacity(bins.len().min(BINS));
        for (&bin, &count) in bins.iter().zip(counts) {
            let bin = u16::try_from(bin)
                .ok()
                .filter(|b| usize::from(*b) < BINS)
                .ok_or(SketchError::NoSuchBin(bin))?;
            pairs.push((bin, count));
        }
        // Sorted once, then merged in one pass: inserting pair by pair would move the vector
        // on every insert (quadratic in what a peer sends).
        pairs.sort_unstable_by_key(|&(bin, _)| bin);
        let mut sketch = Self::new();
        for (bin, count) in pairs {
            if count == 0 {
                continue;
            }
            match sketch.bins.last_mut() {
                Some((last, n)) if *last == bin => *n = n.saturating_add(count),
                _ => sketch.bins.push((bin, count)),
            }
            sketch.count = sketch.count.saturating_add(count);
        }
        Ok(sketch)
    }

    pub fn record(&mut self, latency: Duration) {
        self.add(bin_of(latency), 1);
    }

    /// Adds `count` observations to `bin` (bins past the last count as the last).
    pub fn add(&mut self, bin: u16, count: u64) {
        if count == 0 {
            return;
        }
        let bin = bin.min((BINS - 1) as u16);
        match self.bins.binary_search_by_key(&bin, |(b, _)| *b) {
            Ok(i) => self.bins[i].1 = self.bins[i].1.saturating_add(count),
            Err(i) => self.bins.insert(i, (bin, count)),
        }
        self.count = self.count.saturating_add(count);
    }

    /// Adds every observation of `other`.
    pub fn merge(&mut self, other: &LatencySketch) {
        let mut merged = Vec::with_capacity(self.bins.len().max(other.bins.len()));
        let (mut a, mut b) = (self.bins.iter().peekable(), other.bins.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&(x, n)), Some(&&(y, m))) if x == y => {
                    a.next();
                    b.next();
                    (x, n.saturating_add(m))
                }
                (Some(&&x), Some(&&y)) if x.0 < y.0 => {
                    a.next();
                    x
                }
                (_, Some(&&y)) => {
                    b.next();
                    y
                }
                (Some(&&x), None) => {
                    a.next();
                    x
                }
                (None, None) => break,
            };
            merged.push(next);
        }
        self.bins = merged;
        self.count = self.count.saturating_add(other.count);
    }

    /// How many observations the sketch holds.
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The non-empty bins, sorted.
    pub fn bins(&self) -> &[(u16, u64)] {
        &self.bins
    }

    /// The `q` quantile (0 to 1), within 1% of the true value; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * (self.count - 1) as f64;
        let mut seen = 0u64;
        for &(bin, count) in &self.bins {
            seen = seen.saturating_add(count);
            if seen as f64 > rank {
                return Some(Duration::from_secs_f64(bin_value_micros(bin) / 1e6));
            }
        }
        let &(last, _) = self.bins.last()?;
        Some(Duration::from_secs_f64(bin_value_micros(last) / 1e6))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn micros(d: Duration) -> f64 {
        d.as_secs_f64() * 1e6
    }

    #[test]
    fn every_value_reads_back_within_one_percent() {
        let mut v = 1.5f64;
        while v < 3.6e9 {
            let read = bin_value_micros(bin_of(Duration::from_secs_f64(v / 1e6)));
            assert!(
                (read - v).abs() <= v * RELATIVE_ACCURACY,
                "{v} read as {read}"
            );
            v *= 1.013;
        }
        assert!(
            usize::from(bin_of(Duration::from_secs(3600))) < BINS - 1,
            "an hour fits"
        );
        assert_eq!(usize::from(bin_of(Duration::from_secs(86_400))), BINS - 1);
    }

    #[test]
    fn quantiles_of_a_known_distribution_are_within_one_percent() {
        let mut sketch = LatencySketch::new();
        for i in 1..=10_000u64 {
            sketch.record(Duration::from_micros(i * 10));
        }
        for (q, exact) in [(0.5, 50_000.0), (0.9, 90_000.0), (0.99, 99_000.0)] {
            let got = micros(sketch.quantile(q).unwrap());
            assert!(
                (got - exact).abs() <= exact * 0.011,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(LatencySketch::new().quantile(0.5), None);
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let (mut a, mut b, mut both) = (
            LatencySketch::new(),
            LatencySketch::new(),
            LatencySketch::new(),
        );
        for i in 0..5_000u64 {
            let latency = Duration::from_micros(100 + i * 37 % 90_000);
            if i % 3 == 0 {
                a.record(latency)
            } else {
                b.record(latency)
            }
            both.record(latency);
        }
        a.merge(&b);
        assert_eq!(a, both);
        assert_eq!(a.count(), 5_000);
    }

    #[test]
    fn reported_bins_are_checked_and_bounded() {
        let sketch = LatencySketch::from_bins(&[5, 3, 5], &[1, 2, 3]).unwrap();
        assert_eq!(sketch.bins(), &[(3, 2), (5, 4)]);
        assert_eq!(
            LatencySketch::from_bins(&[BINS as u32], &[1]),
            Err(SketchError::NoSuchBin(BINS as u32))
        );
        assert!(matches!(
            LatencySketch::from_bins(&[1, 2], &[1]),
            Err(SketchError::Unpaired { .. })
        ));
    }
}
