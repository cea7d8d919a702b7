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

/// The call-rate limit as a generic cell rate algorithm: starts are spaced at least
/// `1 s / cps` apart, so no window of one second ever holds more than `cps` starts.
/// Time is nanoseconds on the caller's clock.
#[derive(Debug)]
pub struct CallRate {
    interval_nanos: u64,
    /// The earliest instant the next start may happen.
    next_allowed: AtomicU64,
}

impl CallRate {
    pub fn new(cps: u32) -> CallRate {
        CallRate {
            // Rounded up, so `cps` starts never fit in less than a second.
            interval_nanos: 1_000_000_000u64.div_ceil(u64::from(cps.max(1))),
            next_allowed: AtomicU64::new(0),
        }
    }

    /// Takes the right to start a call at `now`.
    pub fn try_take(&self, now: u64) -> bool {
        self.next_allowed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| {
                (now >= next).then(|| now.saturating_add(self.interval_nanos))
            })
            .is_ok()
    }

    /// When the next start is allowed.
    pub fn next_allowed(&self) -> u64 {
        self.next_allowed.load(Ordering::Acquire)
    }

    pub fn interval_nanos(&self) -> u64 {
        self.interval_nanos
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
