//! Lock-free capacity accounting: concurrent channels and the call-rate limit.
//!
//! A reservation is two compare-exchange loops on atomics, so it costs nanoseconds
//! and can never exceed a limit, however many threads contend.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Channels in use against a fixed limit.
#[derive(Debug)]
pub struct Channels {
    limit: u32,
    active: AtomicU32,
}

impl Channels {
    pub fn new(limit: u32) -> Channels {
        Channels {
            limit,
            active: AtomicU32::new(0),
        }
    }

    /// Takes a channel when one is free.
    pub fn try_take(&self) -> bool {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < self.limit).then_some(active + 1)
            })
            .is_ok()
    }

    /// Gives a channel back. Never below zero, even if misused.
    pub fn give_back(&self) {
        let _ = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                active.checked_sub(1)
            });
    }

    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }
}

/// The call-rate limit as a generic cell rate algorithm with a burst: no
/// window of one second ever holds more than `cps` starts, and up to a
/// twentieth of them may start back to back (a pacer turn, a timer that woke
/// late) as long as the sustained rate stays at `cps` less that burst.
///
/// With starts spaced `T` apart on average and a tolerance of `b·T`, any `k`
/// starts satisfy `t_k - t_1 >= (k - 1)·T - b·T`; `k` of them inside one
/// second means `k < 1 + 1 s / T + b`, and `T = 1 s / (cps - b)` makes that
/// `k <= cps`. Without the burst, starts that a coarse timer released
/// together were refused one by one and a caller asking for 1,000 calls a
/// second under a limit of 5,000 got fewer than 500.
/// Time is nanoseconds on the caller's clock.
#[derive(Debug)]
pub struct CallRate {
    interval_nanos: u64,
    tolerance_nanos: u64,
    /// When the next start would be due were starts spaced evenly (the
    /// algorithm's theoretical arrival time).
    due: AtomicU64,
}

impl CallRate {
    pub fn new(cps: u32) -> CallRate {
        let cps = u64::from(cps.max(1));
        let burst = cps / 20;
        // Rounded up, so `cps` starts never fit in less than a second.
        let interval_nanos = 1_000_000_000u64.div_ceil(cps - burst);
        CallRate {
            interval_nanos,
            tolerance_nanos: interval_nanos * burst,
            due: AtomicU64::new(0),
        }
    }

    /// Takes the right to start a call at `now`.
    pub fn try_take(&self, now: u64) -> bool {
        self.due
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |due| {
                (now.saturating_add(self.tolerance_nanos) >= due)
                    .then(|| due.max(now).saturating_add(self.interval_nanos))
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_stop_at_the_limit_and_come_back() {
        let channels = Channels::new(2);
        assert!(channels.try_take());
        assert!(channels.try_take());
        assert!(!channels.try_take());
        channels.give_back();
        assert!(channels.try_take());
        channels.give_back();
        channels.give_back();
        channels.give_back();
        assert_eq!(channels.active(), 0);
    }

    /// Every one-second window of the starts a rate grants holds at most
    /// `cps` of them, whatever the callers ask.
    fn most_starts_in_a_second(cps: u32, asks: impl Iterator<Item = u64>) -> (usize, usize) {
        let rate = CallRate::new(cps);
        let granted: Vec<u64> = asks.filter(|&at| rate.try_take(at)).collect();
        let most = granted
            .iter()
            .enumerate()
            .map(|(first, &start)| {
                granted[first..]
                    .iter()
                    .take_while(|&&at| at < start + 1_000_000_000)
                    .count()
            })
            .max()
            .unwrap_or(0);
        (most, granted.len())
    }

    #[test]
    fn no_second_holds_more_than_cps_starts() {
        for cps in [1, 4, 19, 20, 100, 5000] {
            // Asked far too often: every 10 µs for 3 s.
            let (most, _) = most_starts_in_a_second(cps, (0..300_000).map(|i| i * 10_000));
            assert!(
                most <= cps as usize,
                "cps {cps}: {most} starts in one second"
            );
            // Asked in bursts: 5,000 at once every 250 ms.
            let bursts = (0..12u64).flat_map(|turn| std::iter::repeat_n(turn * 250_000_000, 5000));
            let (most, _) = most_starts_in_a_second(cps, bursts);
            assert!(
                most <= cps as usize,
                "cps {cps}: {most} starts in one second"
            );
        }
    }

    #[test]
    fn starts_released_together_by_a_coarse_timer_are_granted() {
        // 1,000 calls a second under a limit of 5,000, released two or three
        // at a time by a timer that wakes every 2.5 ms: all are granted.
        let asks = (0u64..3000).map(|i| (i * 1_000_000) / 2_500_000 * 2_500_000);
        let (_, granted) = most_starts_in_a_second(5000, asks);
        assert_eq!(granted, 3000);
        // A pacer turn every 50 ms asking for 5 calls under a limit of 100.
        let asks = (0u64..40).flat_map(|turn| std::iter::repeat_n(turn * 50_000_000, 5));
        let (_, granted) = most_starts_in_a_second(100, asks);
        assert!(granted >= 190, "{granted} of 200");
    }

    #[test]
    fn call_rate_spaces_starts() {
        let rate = CallRate::new(4); // one start per 250 ms
        assert!(rate.try_take(0));
        assert!(!rate.try_take(100_000_000));
        assert!(rate.try_take(250_000_000));
        assert!(!rate.try_take(499_999_999));
        assert!(rate.try_take(500_000_000));
    }
}
