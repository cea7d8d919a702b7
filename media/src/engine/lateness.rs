//! How late frames leave: a fixed-bucket histogram of send lateness.

use std::time::Duration;

/// Width of one bucket.
const BUCKET: Duration = Duration::from_micros(10);

/// Buckets before the overflow one: 10 µs steps up to 40.96 ms.
const BUCKETS: usize = 4096;

/// Send lateness (when a frame left minus when it was due), in 10 µs buckets
/// up to about 41 ms and one overflow bucket above, with the exact maximum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatenessHistogram {
    counts: Box<[u64]>,
    overflow: u64,
    total: u64,
    max: Duration,
}

impl Default for LatenessHistogram {
    fn default() -> LatenessHistogram {
        LatenessHistogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            overflow: 0,
            total: 0,
            max: Duration::ZERO,
        }
    }
}

impl LatenessHistogram {
    pub fn new() -> LatenessHistogram {
        LatenessHistogram::default()
    }

    pub fn record(&mut self, lateness: Duration) {
        let index = lateness.as_nanos() / BUCKET.as_nanos();
        match self
            .counts
            .get_mut(usize::try_from(index).unwrap_or(usize::MAX))
        {
            Some(count) => *count += 1,
            None => self.overflow += 1,
        }
        self.total += 1;
        self.max = self.max.max(lateness);
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &LatenessHistogram) {
        for (count, more) in self.counts.iter_mut().zip(other.counts.iter()) {
            *count += more;
        }
        self.overflow += other.overflow;
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// What was recorded after `earlier`, an older copy of this histogram:
    /// the counts' difference, with the maximum taken as the upper edge of the
    /// highest bucket that grew (exact only in the overflow bucket).
    pub fn since(&self, earlier: &LatenessHistogram) -> LatenessHistogram {
        let mut difference = LatenessHistogram::new();
        for (index, (count, before)) in self.counts.iter().zip(earlier.counts.iter()).enumerate() {
            let grown = count.saturating_sub(*before);
            difference.counts[index] = grown;
            if grown > 0 {
                difference.max = (BUCKET * (index as u32 + 1)).min(self.max);
            }
        }
        difference.overflow = self.overflow.saturating_sub(earlier.overflow);
        if difference.overflow > 0 {
            difference.max = self.max;
        }
        difference.total = self.total.saturating_sub(earlier.total);
        difference
    }

    /// Frames recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    /// The lateness that a fraction `quantile` (0 to 1) of frames did not
    /// exceed, to the bucket's upper edge (at most the maximum); zero when
    /// nothing was recorded.
    pub fn quantile(&self, quantile: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        // At least one frame, at most all of them.
        let rank = ((quantile.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let upper = BUCKET * (index as u32 + 1);
                return upper.min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn quantiles_are_bucket_upper_edges_capped_by_the_maximum() {
        let mut histogram = LatenessHistogram::new();
        assert_eq!(histogram.quantile(0.99), Duration::ZERO);
        for micros in 0..100u32 {
            histogram.record(micros * 10 * US + 5 * US);
        }
        assert_eq!(histogram.count(), 100);
        assert_eq!(histogram.quantile(0.5), 500 * US);
        assert_eq!(histogram.quantile(0.99), 990 * US);
        assert_eq!(histogram.quantile(1.0), 995 * US);
        assert_eq!(histogram.max(), 995 * US);
    }

    #[test]
    fn very_late_frames_land_in_the_overflow_and_the_maximum() {
        let mut histogram = LatenessHistogram::new();
        histogram.record(3 * US);
        histogram.record(Duration::from_secs(2));
        let mut other = LatenessHistogram::new();
        other.record(Duration::from_secs(5));
        histogram.merge(&other);
        assert_eq!(histogram.count(), 3);
        assert_eq!(histogram.quantile(0.3), 10 * US);
        assert_eq!(histogram.quantile(0.5), Duration::from_secs(5));
        assert_eq!(histogram.max(), Duration::from_secs(5));
    }

    #[test]
    fn since_keeps_only_what_came_later() {
        let mut histogram = LatenessHistogram::new();
        histogram.record(900 * US);
        let earlier = histogram.clone();
        histogram.record(15 * US);
        histogram.record(25 * US);
        let later = histogram.since(&earlier);
        assert_eq!(later.count(), 2);
        assert_eq!(later.quantile(1.0), 30 * US);
        assert_eq!(later.max(), 30 * US);
        histogram.record(Duration::from_secs(1));
        assert_eq!(histogram.since(&earlier).max(), Duration::from_secs(1));
    }
}
