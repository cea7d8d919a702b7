//! The customers a campaign may call now, highest priority first.
//!
//! A lock-free ordered map (crossbeam's skip list), so that whoever finds a
//! customer eligible (the campaign's driver on a wake, an import, an API
//! change) can queue it without waiting on the dialer that takes from the
//! front. Equal priorities leave in the order they came.

use std::cmp::Reverse;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_skiplist::SkipMap;

use crate::store::customer::CustomerId;

/// A customer waiting to be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub customer: CustomerId,
    pub priority: i64,
}

#[derive(Default)]
pub struct ReadyQueue {
    /// Keyed by (highest priority first, arrival).
    entries: SkipMap<(Reverse<i64>, u64), CustomerId>,
    /// Who is queued, with the arrival that queued it, so a customer waits
    /// once however often it is found eligible.
    queued: SkipMap<CustomerId, u64>,
    arrivals: AtomicU64,
}

impl ReadyQueue {
    pub fn new() -> ReadyQueue {
        ReadyQueue::default()
    }

    /// Queues the customer; false when it was queued already.
    pub fn push(&self, customer: CustomerId, priority: i64) -> bool {
        if self.queued.contains_key(&customer) {
            return false;
        }
        // Two pushers of one customer can both pass the check: the one
        // whose arrival the map keeps queues it.
        let arrival = self.arrivals.fetch_add(1, Ordering::Relaxed);
        if *self.queued.get_or_insert(customer.clone(), arrival).value() != arrival {
            return false;
        }
        self.entries.insert((Reverse(priority), arrival), customer);
        true
    }

    /// The waiting customer with the highest priority. Until this returns,
    /// pushing the same customer again is refused: it is being taken.
    pub fn pop(&self) -> Option<Ready> {
        let entry = self.entries.pop_front()?;
        let customer = entry.value().clone();
        self.queued.remove(&customer);
        Some(Ready {
            customer,
            priority: entry.key().0.0,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> CustomerId {
        CustomerId::parse(text).unwrap()
    }

    #[test]
    fn highest_priority_first_then_arrival_order() {
        let queue = ReadyQueue::new();
        assert!(queue.push(id("low"), 10));
        assert!(queue.push(id("vip-1"), 100));
        assert!(queue.push(id("mid"), 50));
        assert!(queue.push(id("vip-2"), 100));
        let order: Vec<_> = std::iter::from_fn(|| queue.pop())
            .map(|ready| ready.customer.as_str().to_owned())
            .collect();
        assert_eq!(order, ["vip-1", "vip-2", "mid", "low"]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_customer_waits_once_and_can_come_back_after_leaving() {
        let queue = ReadyQueue::new();
        assert!(queue.push(id("a"), 10));
        assert!(!queue.push(id("a"), 90), "already waiting");
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.pop().map(|r| r.priority), Some(10));
        assert!(queue.is_empty());
        assert!(queue.push(id("a"), 90));
    }

    #[test]
    fn pushers_on_several_threads_lose_nobody_and_queue_nobody_twice() {
        let queue = ReadyQueue::new();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let queue = &queue;
                scope.spawn(move || {
                    for n in 0..500 {
                        // Every thread pushes the same 500 customers.
                        queue.push(id(&format!("c{n}")), (n % 7 + thread) as i64);
                    }
                });
            }
        });
        let mut seen = std::collections::HashSet::new();
        while let Some(ready) = queue.pop() {
            assert!(seen.insert(ready.customer), "popped twice");
        }
        assert_eq!(seen.len(), 500);
    }
}
