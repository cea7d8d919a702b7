//! A token bucket: a provider's messages a second, sans-IO.

use std::time::{Duration, Instant};

/// Holds up to one second's tokens; each message takes one.
#[derive(Debug, Clone)]
pub(super) struct TokenBucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// Full at `now`, refilling at `rate` a second (above 0).
    pub fn new(rate: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: rate.max(1.0),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.at = now;
    }

    /// Takes a token when one is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is there.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_gives_one_seconds_worth_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, start);
        let burst = (0..20).filter(|_| bucket.try_take(start)).count();
        assert_eq!(burst, 10);
        assert_eq!(bucket.wait(start), Duration::from_millis(100));
        let later = start + Duration::from_millis(350);
        let more = (0..20).filter(|_| bucket.try_take(later)).count();
        assert_eq!(more, 3);
    }

    #[test]
    fn a_slow_rate_still_lets_one_through_and_then_waits() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(0.5, start);
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start));
        assert_eq!(bucket.wait(start), Duration::from_secs(2));
        assert!(bucket.try_take(start + Duration::from_secs(2)));
    }
}
