//! A [`Store`] in memory: the model the sled store is checked against, and the
//! store for benchmarks that measure everything but the disk.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{CustomerWrite, DncEntry, SealedCustomer, Store, StoreError};
use crate::customer::CustomerId;
use crate::vault::PhoneKey;

/// Holds everything in maps; nothing survives the process.
#[derive(Default)]
pub struct MemoryStore {
    customers: RwLock<BTreeMap<CustomerId, SealedCustomer>>,
    phone_index: RwLock<HashMap<PhoneKey, CustomerId>>,
    dnc: RwLock<BTreeMap<[u8; 32], DncEntry>>,
    /// Wakes as the sled store keys them: milliseconds, then customer id.
    wakes: RwLock<BTreeSet<(i64, CustomerId)>>,
    count: AtomicU64,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

/// A poisoned lock means a writer panicked mid-update; the maps are still whole
/// (every update is a single insert or remove), so reads go on.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store for MemoryStore {
    fn customer(&self, id: &CustomerId) -> Result<Option<SealedCustomer>, StoreError> {
        Ok(read(&self.customers).get(id).cloned())
    }

    fn customer_by_phone(&self, phone: &PhoneKey) -> Result<Option<CustomerId>, StoreError> {
        Ok(read(&self.phone_index).get(phone).cloned())
    }

    fn customer_count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn write_customers(&self, writes: &[CustomerWrite]) -> Result<(), StoreError> {
        let mut index = write(&self.phone_index);
        let mut customers = write(&self.customers);
        for change in writes {
            let customer = &change.customer;
            if let Some(previous) = change.previous_phone.filter(|p| *p != customer.phone_key) {
                index.remove(&previous);
            }
            index.insert(customer.phone_key, customer.id.clone());
            if customers
                .insert(customer.id.clone(), customer.clone())
                .is_none()
            {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn dnc_contains(&self, phone: &PhoneKey) -> Result<bool, StoreError> {
        Ok(read(&self.dnc).contains_key(&phone.0))
    }

    fn dnc_add(&self, entry: &DncEntry) -> Result<bool, StoreError> {
        Ok(write(&self.dnc)
            .insert(entry.phone_key.0, entry.clone())
            .is_none())
    }

    fn dnc_remove(&self, phone: &PhoneKey) -> Result<bool, StoreError> {
        Ok(write(&self.dnc).remove(&phone.0).is_some())
    }

    fn dnc_list(&self) -> Result<Vec<DncEntry>, StoreError> {
        Ok(read(&self.dnc).values().cloned().collect())
    }

    fn set_wake(
        &self,
        customer: &CustomerId,
        at: jiff::Timestamp,
        previous: Option<jiff::Timestamp>,
    ) -> Result<(), StoreError> {
        let mut wakes = write(&self.wakes);
        if let Some(previous) = previous {
            wakes.remove(&(previous.as_millisecond(), customer.clone()));
        }
        wakes.insert((at.as_millisecond(), customer.clone()));
        Ok(())
    }

    fn clear_wake(&self, customer: &CustomerId, at: jiff::Timestamp) -> Result<bool, StoreError> {
        Ok(write(&self.wakes).remove(&(at.as_millisecond(), customer.clone())))
    }

    fn wakes_between(
        &self,
        from: jiff::Timestamp,
        until: jiff::Timestamp,
        limit: usize,
    ) -> Result<Vec<(jiff::Timestamp, CustomerId)>, StoreError> {
        let until = until.as_millisecond();
        read(&self.wakes)
            .iter()
            .skip_while(|(millis, _)| *millis < from.as_millisecond())
            .take_while(|(millis, _)| *millis < until)
            .take(limit)
            .map(|(millis, customer)| {
                jiff::Timestamp::from_millisecond(*millis)
                    .map(|at| (at, customer.clone()))
                    .map_err(|_| StoreError::Damaged {
                        key: "wake".into(),
                        error: super::DecodeError::Invalid,
                    })
            })
            .collect()
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn id(text: &str) -> CustomerId {
        CustomerId::parse(text).unwrap()
    }

    #[test]
    fn wakes_come_back_in_time_order_and_a_replaced_one_once() {
        let store = MemoryStore::new();
        store.set_wake(&id("b"), t(30), None).unwrap();
        store.set_wake(&id("a"), t(10), None).unwrap();
        store.set_wake(&id("c"), t(10), None).unwrap();
        store.set_wake(&id("a"), t(20), Some(t(10))).unwrap();
        assert_eq!(
            store.wakes_until(t(100), 10).unwrap(),
            vec![(t(10), id("c")), (t(20), id("a")), (t(30), id("b"))]
        );
        assert_eq!(
            store.wakes_until(t(30), 10).unwrap(),
            vec![(t(10), id("c")), (t(20), id("a"))]
        );
        assert_eq!(
            store.wakes_until(t(100), 1).unwrap(),
            vec![(t(10), id("c"))]
        );
        assert_eq!(
            store.wakes_between(t(11), t(30), 10).unwrap(),
            vec![(t(20), id("a"))]
        );
        assert!(store.clear_wake(&id("c"), t(10)).unwrap());
        assert!(!store.clear_wake(&id("c"), t(10)).unwrap());
        assert_eq!(
            store.wakes_until(t(25), 10).unwrap(),
            vec![(t(20), id("a"))]
        );
    }
}
