//! The near-term customer wake-ups: a single-level timer wheel, sans-IO.
//!
//! A customer is evaluated when its record changes and when the compiled rule
//! says the answer can next change. That next time is kept in the store's `wakes`
//! tree; the wheel holds the ones before [`WakeWheel::horizon_end`], and the driver
//! asks [`WakeWheel::poll_due`] at each of its ticks what came due. Wakes further out are refused by the wheel and stay only in the store;
//! as time moves on and the horizon with it, the driver reads them back from the
//! store (`Store::wakes_between` the old and the new horizon end) and hands them
//! over with [`WakeWheel::load`]. After a restart the wheel
//! starts empty and is filled the same way, so no wake is lost.
//!
//! Every customer has at most one wake: scheduling again replaces the earlier one.
//! The wheel never reads the clock; `now` is passed in.
//!
//! Each slot covers one tick. A wake goes in the slot of its tick; cancelling or
//! replacing it only marks the slot entry stale (each schedule gets a fresh
//! generation number), so schedule and cancel are O(1). Stale entries are dropped
//! as their slot is drained, or all at once when they outnumber the live ones.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::store::customer::CustomerId;

/// Where [`WakeWheel::schedule`] put a wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Placed {
    /// The wheel holds it; [`WakeWheel::poll_due`] returns it when it comes due.
    Held,
    /// It is at or after [`WakeWheel::horizon_end`]: the wheel does not hold it
    /// (and dropped the customer's earlier wake, which it replaces). The store
    /// keeps it until the horizon reaches it.
    BeyondHorizon,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: Timestamp,
    generation: u64,
}

#[derive(Debug, Clone)]
struct Slotted {
    customer: CustomerId,
    generation: u64,
}

/// Wakes before the horizon, one per customer, in slots of one tick each.
#[derive(Debug)]
pub struct WakeWheel {
    tick_ms: i64,
    /// `slots[t mod len]` holds the wakes in tick `t`, for `current <= t < current + len`.
    slots: Vec<Vec<Slotted>>,
    /// The tick of the latest `now` seen.
    current: i64,
    entries: HashMap<CustomerId, Entry>,
    next_generation: u64,
    /// Slot entries no longer in `entries` with their generation.
    stale: usize,
}

/// Stale slot entries tolerated beyond the live ones before a sweep.
const STALE_SLACK: usize = 1024;

impl WakeWheel {
    /// A wheel whose slots are `tick` long (at least 1 ms) and which holds wakes
    /// up to `horizon` (at least one tick) after `now`.
    pub fn new(now: Timestamp, tick: Duration, horizon: Duration) -> WakeWheel {
        let tick_ms = i64::try_from(tick.as_millis()).unwrap_or(i64::MAX).max(1);
        let horizon_ms = i64::try_from(horizon.as_millis()).unwrap_or(i64::MAX);
        // Ceiling division; at least one slot, and few enough to allocate.
        let slot_count = (horizon_ms.saturating_add(tick_ms - 1) / tick_ms).clamp(1, 1 << 24);
        let slot_count = usize::try_from(slot_count).unwrap_or(1);
        WakeWheel {
            tick_ms,
            slots: vec![Vec::new(); slot_count],
            current: tick_of(now, tick_ms),
            entries: HashMap::new(),
            next_generation: 0,
            stale: 0,
        }
    }

    /// Wakes held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first instant the wheel does not hold: wakes at or after it are refused.
    /// It moves forward as [`WakeWheel::poll_due`] is called with a later `now`.
    pub fn horizon_end(&self) -> Timestamp {
        let end_tick = self.current.saturating_add(self.slot_count());
        Timestamp::from_millisecond(end_tick.saturating_mul(self.tick_ms)).unwrap_or(Timestamp::MAX)
    }

    /// The customer's wake, if the wheel holds one.
    pub fn wake_of(&self, customer: &CustomerId) -> Option<Timestamp> {
        self.entries.get(customer).map(|entry| entry.at)
    }

    /// Sets the customer's wake to `at`, replacing any earlier one. A time already
    /// past comes due at the next [`WakeWheel::poll_due`].
    pub fn schedule(&mut self, customer: CustomerId, at: Timestamp) -> Placed {
        let tick = tick_of(at, self.tick_ms);
        if tick >= self.current.saturating_add(self.slot_count()) {
            self.cancel(&customer);
            return Placed::BeyondHorizon;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        if self
            .entries
            .insert(customer.clone(), Entry { at, generation })
            .is_some()
        {
            self.stale += 1;
        }
        let slot = self.slot_index(tick.max(self.current));
        self.slots[slot].push(Slotted {
            customer,
            generation,
        });
        self.sweep_if_stale();
        Placed::Held
    }

    /// Hands over a wake read back from the store as the horizon reached it. The
    /// same wake loaded twice is held once; a different time replaces the held one,
    /// as with [`WakeWheel::schedule`].
    pub fn load(&mut self, customer: CustomerId, at: Timestamp) -> Placed {
        if self.wake_of(&customer) == Some(at) {
            return Placed::Held;
        }
        self.schedule(customer, at)
    }

    /// Drops the customer's wake; returns its time if the wheel held one.
    pub fn cancel(&mut self, customer: &CustomerId) -> Option<Timestamp> {
        let entry = self.entries.remove(customer)?;
        self.stale += 1;
        self.sweep_if_stale();
        Some(entry.at)
    }

    /// The earliest wake held.
    #[cfg(test)]
    pub fn next_deadline(&self) -> Option<Timestamp> {
        if self.entries.is_empty() {
            return None;
        }
        (0..self.slot_count()).find_map(|offset| {
            let slot = &self.slots[self.slot_index(self.current + offset)];
            slot.iter().filter_map(|slotted| self.live(slotted)).min()
        })
    }

    /// Removes and returns every wake at or before `now`, in time order (ties by
    /// customer id), each once. Moves the horizon forward to `now`; the driver then
    /// loads the store's wakes before the new [`WakeWheel::horizon_end`].
    pub fn poll_due(&mut self, now: Timestamp) -> Vec<(Timestamp, CustomerId)> {
        let now_tick = tick_of(now, self.tick_ms);
        // After a sleep longer than the horizon every slot is due; visit each once.
        // A clock gone back still visits the current slot, which may hold past wakes.
        let last = now_tick
            .min(self.current.saturating_add(self.slot_count() - 1))
            .max(self.current);
        let mut due = Vec::new();
        let mut tick = self.current;
        while tick <= last {
            let index = self.slot_index(tick);
            let slot = std::mem::take(&mut self.slots[index]);
            let mut kept = Vec::new();
            for slotted in slot {
                match self.entries.get(&slotted.customer) {
                    Some(entry) if entry.generation == slotted.generation => {
                        if entry.at <= now {
                            due.push((entry.at, slotted.customer.clone()));
                            self.entries.remove(&slotted.customer);
                        } else {
                            kept.push(slotted);
                        }
                    }
                    _ => self.stale = self.stale.saturating_sub(1),
                }
            }
            self.slots[index] = kept;
            tick += 1;
        }
        self.current = self.current.max(now_tick);
        due.sort_unstable();
        due
    }

    fn slot_count(&self) -> i64 {
        self.slots.len() as i64
    }

    fn slot_index(&self, tick: i64) -> usize {
        // rem_euclid of a positive length is in 0..len, which fits a usize.
        tick.rem_euclid(self.slot_count()) as usize
    }

    #[cfg(test)]
    fn live(&self, slotted: &Slotted) -> Option<Timestamp> {
        self.entries
            .get(&slotted.customer)
            .filter(|entry| entry.generation == slotted.generation)
            .map(|entry| entry.at)
    }

    /// Drops stale slot entries once they outnumber the live ones, so memory stays
    /// proportional to the wakes held; the sweep is paid for by the operations
    /// that made the entries stale.
    fn sweep_if_stale(&mut self) {
        if self.stale <= self.entries.len() + STALE_SLACK {
            return;
        }
        let entries = &self.entries;
        for slot in &mut self.slots {
            slot.retain(|slotted| {
                entries
                    .get(&slotted.customer)
                    .is_some_and(|entry| entry.generation == slotted.generation)
            });
        }
        self.stale = 0;
    }
}

fn tick_of(at: Timestamp, tick_ms: i64) -> i64 {
    at.as_millisecond().div_euclid(tick_ms)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const TICK: Duration = Duration::from_millis(100);
    const HORIZON: Duration = Duration::from_secs(600);

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
    }

    fn id(n: u32) -> CustomerId {
        CustomerId::parse(&format!("c{n}")).unwrap()
    }

    fn wheel() -> WakeWheel {
        WakeWheel::new(t(0), TICK, HORIZON)
    }

    #[test]
    fn wakes_come_due_in_time_order() {
        let mut wheel = wheel();
        assert_eq!(wheel.schedule(id(1), t(5_000)), Placed::Held);
        assert_eq!(wheel.schedule(id(2), t(1_050)), Placed::Held);
        assert_eq!(wheel.schedule(id(3), t(1_020)), Placed::Held);
        assert_eq!(wheel.next_deadline(), Some(t(1_020)));
        assert!(wheel.poll_due(t(1_000)).is_empty());
        // Same tick, but only the wake at or before now is due.
        assert_eq!(wheel.poll_due(t(1_030)), vec![(t(1_020), id(3))]);
        assert_eq!(wheel.next_deadline(), Some(t(1_050)));
        assert_eq!(
            wheel.poll_due(t(10_000)),
            vec![(t(1_050), id(2)), (t(5_000), id(1))]
        );
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn scheduling_again_replaces_the_earlier_wake() {
        let mut wheel = wheel();
        let _ = wheel.schedule(id(1), t(1_000));
        let _ = wheel.schedule(id(1), t(3_000));
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.next_deadline(), Some(t(3_000)));
        assert!(wheel.poll_due(t(2_000)).is_empty());
        assert_eq!(wheel.poll_due(t(3_000)), vec![(t(3_000), id(1))]);
        assert!(wheel.poll_due(t(9_000)).is_empty());
    }

    #[test]
    fn cancel_drops_the_wake() {
        let mut wheel = wheel();
        let _ = wheel.schedule(id(1), t(1_000));
        let _ = wheel.schedule(id(2), t(1_000));
        assert_eq!(wheel.cancel(&id(1)), Some(t(1_000)));
        assert_eq!(wheel.cancel(&id(1)), None);
        assert_eq!(wheel.poll_due(t(2_000)), vec![(t(1_000), id(2))]);
    }

    #[test]
    fn rescheduling_to_the_same_time_after_cancel_wakes_once() {
        let mut wheel = wheel();
        let _ = wheel.schedule(id(1), t(1_000));
        wheel.cancel(&id(1));
        let _ = wheel.schedule(id(1), t(1_000));
        assert_eq!(wheel.load(id(1), t(1_000)), Placed::Held);
        assert_eq!(wheel.poll_due(t(1_000)), vec![(t(1_000), id(1))]);
    }

    #[test]
    fn many_wakes_in_one_tick() {
        let mut wheel = wheel();
        for n in (0..1_000).rev() {
            let _ = wheel.schedule(id(n), t(700 + i64::from(n % 7)));
        }
        let due = wheel.poll_due(t(800));
        assert_eq!(due.len(), 1_000);
        assert!(due.windows(2).all(|pair| pair[0] <= pair[1]));
    }

    #[test]
    fn wakes_past_the_horizon_are_refused() {
        let mut wheel = wheel();
        assert_eq!(wheel.horizon_end(), t(600_000));
        let _ = wheel.schedule(id(1), t(1_000));
        assert_eq!(wheel.schedule(id(2), t(600_000)), Placed::BeyondHorizon);
        assert_eq!(wheel.schedule(id(3), t(599_999)), Placed::Held);
        // Replacing a held wake with one beyond the horizon drops the held one.
        assert_eq!(wheel.schedule(id(1), t(900_000)), Placed::BeyondHorizon);
        assert_eq!(wheel.wake_of(&id(1)), None);
        assert_eq!(wheel.len(), 1);
        // The horizon moves with time; the driver loads what it now covers.
        assert!(wheel.poll_due(t(400_000)).is_empty());
        assert_eq!(wheel.horizon_end(), t(1_000_000));
        assert_eq!(wheel.load(id(1), t(900_000)), Placed::Held);
        assert_eq!(wheel.next_deadline(), Some(t(599_999)));
    }

    #[test]
    fn a_long_sleep_returns_every_due_wake() {
        let mut wheel = wheel();
        let _ = wheel.schedule(id(1), t(599_000));
        let _ = wheel.schedule(id(2), t(-5_000));
        let _ = wheel.schedule(id(3), t(100));
        let due = wheel.poll_due(t(3_600_000));
        assert_eq!(
            due,
            vec![(t(-5_000), id(2)), (t(100), id(3)), (t(599_000), id(1))]
        );
        assert_eq!(wheel.horizon_end(), t(4_200_000));
        let _ = wheel.schedule(id(4), t(3_600_050));
        assert_eq!(wheel.poll_due(t(3_600_050)), vec![(t(3_600_050), id(4))]);
    }

    #[test]
    fn a_clock_going_back_loses_nothing() {
        let mut wheel = wheel();
        assert!(wheel.poll_due(t(10_000)).is_empty());
        let _ = wheel.schedule(id(1), t(10_050));
        assert!(wheel.poll_due(t(9_000)).is_empty());
        assert_eq!(wheel.poll_due(t(10_050)), vec![(t(10_050), id(1))]);
    }

    #[test]
    fn stale_entries_are_swept() {
        let mut wheel = wheel();
        for round in 0..10_000 {
            let _ = wheel.schedule(id(round % 3), t(1_000 + i64::from(round)));
        }
        let stored: usize = wheel.slots.iter().map(Vec::len).sum();
        assert!(stored <= 3 + STALE_SLACK + 3, "{stored} slot entries");
        assert_eq!(wheel.len(), 3);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Schedule(u32, i64),
        Cancel(u32),
        Advance(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..20u32, -2_000..20_000i64).prop_map(|(c, ms)| Op::Schedule(c, ms)),
            1 => (0..20u32).prop_map(Op::Cancel),
            2 => (-500..8_000i64).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #[test]
        fn no_wake_is_lost_or_duplicated(ops in proptest::collection::vec(op(), 1..200)) {
            // A small wheel so that the horizon, wrap-around and long sleeps all occur.
            let mut wheel = WakeWheel::new(t(0), Duration::from_millis(100), Duration::from_secs(5));
            // The model: the wheel's wakes, and those only the store holds.
            let mut model: BTreeMap<CustomerId, Timestamp> = BTreeMap::new();
            let mut now = 0i64;
            for op in ops {
                match op {
                    Op::Schedule(c, offset) => {
                        let at = t(now + offset);
                        let placed = wheel.schedule(id(c), at);
                        let expected = if at < wheel.horizon_end() { Placed::Held } else { Placed::BeyondHorizon };
                        prop_assert_eq!(placed, expected);
                        model.insert(id(c), at);
                    }
                    Op::Cancel(c) => {
                        let held = wheel.cancel(&id(c));
                        let modelled = model.remove(&id(c));
                        match held {
                            Some(at) => prop_assert_eq!(Some(at), modelled),
                            None => prop_assert!(modelled.is_none_or(|at| at >= wheel.horizon_end())),
                        }
                    }
                    Op::Advance(step) => {
                        now += step;
                        let mut expected: Vec<(Timestamp, CustomerId)> = model
                            .iter()
                            .filter(|(_, at)| **at <= t(now))
                            .map(|(c, at)| (*at, c.clone()))
                            .collect();
                        expected.sort();
                        // The driver's order: take what is due, refill from the store
                        // up to the new horizon, and take what the refill made due.
                        let mut all = wheel.poll_due(t(now));
                        for (_, customer) in &all {
                            model.remove(customer);
                        }
                        let end = wheel.horizon_end();
                        for (customer, at) in &model {
                            if *at < end {
                                prop_assert_eq!(wheel.load(customer.clone(), *at), Placed::Held);
                            }
                        }
                        let more = wheel.poll_due(t(now));
                        for (_, customer) in &more {
                            model.remove(customer);
                        }
                        all.extend(more);
                        all.sort();
                        prop_assert_eq!(&all, &expected);
                    }
                }
                let held_deadline = wheel.next_deadline();
                let end = wheel.horizon_end();
                let expected_deadline = model.values().filter(|at| **at < end).min().copied();
                prop_assert_eq!(held_deadline, expected_deadline);
            }
        }
    }
}
