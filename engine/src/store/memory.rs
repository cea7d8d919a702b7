//! A [`Store`] in memory: the model the sled store is checked against, and the
//! store for benchmarks that measure everything but the disk.

use std::collections::{BTreeMap, HashMap};
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

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
