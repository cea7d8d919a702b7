//! A sliding window of tallies over injected time, shared by the trunks'
//! health and the campaigns' pacer: the window is cut into twelve slices, and
//! the slice that time has moved past is cleared and reused.

use std::time::{Duration, Instant};

/// Slices per window.
pub const SLICES: usize = 12;

/// What one slice counts; slices add up to the window's total.
pub trait Tally: Default + Clone {
    fn add(&mut self, other: &Self);
}

#[derive(Debug, Clone)]
pub struct SlidingWindow<T> {
    epoch: Instant,
    slice_length: Duration,
    /// Each slice with the number of the slice of time it holds
    /// (time since `epoch` / `slice_length`).
    slices: [(u64, T); SLICES],
}

impl<T: Tally> SlidingWindow<T> {
    /// A window of `length` starting empty at `now`.
    pub fn new(length: Duration, now: Instant) -> SlidingWindow<T> {
        SlidingWindow {
            epoch: now,
            slice_length: (length / SLICES as u32).max(Duration::from_millis(1)),
            slices: std::array::from_fn(|_| (0, T::default())),
        }
    }

    /// The slice `now` falls in, cleared first if it held an older slice of time.
    pub fn at(&mut self, now: Instant) -> &mut T {
        let number = self.number(now);
        let (held, tally) = &mut self.slices[(number % SLICES as u64) as usize];
        if *held != number {
            *held = number;
            *tally = T::default();
        }
        tally
    }

    /// The tallies of the window ending at `now`, added up.
    pub fn total(&self, now: Instant) -> T {
        let current = self.number(now);
        let mut total = T::default();
        for (_, tally) in self
            .slices
            .iter()
            .filter(|(number, _)| number + SLICES as u64 > current && *number <= current)
        {
            total.add(tally);
        }
        total
    }

    /// Forgets everything counted so far.
    pub fn clear(&mut self) {
        for slice in &mut self.slices {
            *slice = (0, T::default());
        }
    }

    fn number(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch);
        (since.as_nanos() / self.slice_length.as_nanos()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default, PartialEq)]
    struct Count(u32);

    impl Tally for Count {
        fn add(&mut self, other: &Count) {
            self.0 += other.0;
        }
    }

    #[test]
    fn counts_leave_the_window_as_time_moves_on() {
        let t0 = Instant::now();
        let mut window: SlidingWindow<Count> = SlidingWindow::new(Duration::from_secs(12), t0);
        window.at(t0).0 += 2;
        window.at(t0 + Duration::from_secs(5)).0 += 3;
        assert_eq!(window.total(t0 + Duration::from_secs(5)), Count(5));
        // Twelve seconds on, the first slice has left the window.
        assert_eq!(window.total(t0 + Duration::from_secs(12)), Count(3));
        // A slice reused for a later second starts from zero.
        window.at(t0 + Duration::from_secs(17)).0 += 1;
        assert_eq!(window.total(t0 + Duration::from_secs(17)), Count(1));
        window.clear();
        assert_eq!(window.total(t0 + Duration::from_secs(17)), Count(0));
    }
}
