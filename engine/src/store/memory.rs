//! A [`Store`] in memory: the model the sled store is checked against, and the
//! store for benchmarks that measure everything but the disk.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use dialhound_rules::History;

use super::{CustomerWrite, DncEntry, SealedCustomer, Store, StoreError};
use crate::store::attempt::{Attempt, Cdr};
use crate::store::customer::CustomerId;
use crate::store::sms::{SmsClick, SmsRecord};
use crate::store::vault::PhoneKey;

/// Holds everything in maps; nothing survives the process.
#[derive(Default)]
pub struct MemoryStore {
    customers: RwLock<BTreeMap<CustomerId, SealedCustomer>>,
    phone_index: RwLock<HashMap<PhoneKey, CustomerId>>,
    dnc: RwLock<BTreeMap<[u8; 32], DncEntry>>,
    /// Wakes as the sled store keys them: campaign, milliseconds, customer id.
    wakes: RwLock<BTreeSet<(String, i64, CustomerId)>>,
    history: RwLock<HashMap<String, History>>,
    ledger: RwLock<BTreeMap<u64, Attempt>>,
    /// By campaign, end time in milliseconds and attempt.
    cdrs: RwLock<BTreeMap<(String, i64, u64), Cdr>>,
    campaigns: RwLock<BTreeMap<String, Vec<u8>>>,
    sms: RwLock<BTreeMap<u64, SmsRecord>>,
    /// By provider and message id.
    sms_messages: RwLock<HashMap<(String, String), u64>>,
    sms_links: RwLock<HashMap<String, u64>>,
    sms_clicks: RwLock<Vec<SmsClick>>,
    attempt_ids: AtomicU64,
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
        campaign: &str,
        customer: &CustomerId,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let mut wakes = write(&self.wakes);
        wakes.retain(|(name, _, who)| !(name == campaign && who == customer));
        wakes.insert((campaign.to_owned(), at.as_millisecond(), customer.clone()));
        Ok(())
    }

    fn clear_wake(&self, campaign: &str, customer: &CustomerId) -> Result<bool, StoreError> {
        let mut wakes = write(&self.wakes);
        let before = wakes.len();
        wakes.retain(|(name, _, who)| !(name == campaign && who == customer));
        Ok(wakes.len() < before)
    }

    fn wakes_between(
        &self,
        campaign: &str,
        from: jiff::Timestamp,
        until: jiff::Timestamp,
        limit: usize,
    ) -> Result<Vec<(jiff::Timestamp, CustomerId)>, StoreError> {
        let until = until.as_millisecond();
        read(&self.wakes)
            .iter()
            .filter(|(name, _, _)| name == campaign)
            .skip_while(|(_, millis, _)| *millis < from.as_millisecond())
            .take_while(|(_, millis, _)| *millis < until)
            .take(limit)
            .map(|(_, millis, customer)| {
                jiff::Timestamp::from_millisecond(*millis)
                    .map(|at| (at, customer.clone()))
                    .map_err(|_| StoreError::Damaged {
                        key: "wake".into(),
                        error: super::DecodeError::Invalid,
                    })
            })
            .collect()
    }

    fn customers_after(
        &self,
        after: Option<&CustomerId>,
        limit: usize,
    ) -> Result<Vec<SealedCustomer>, StoreError> {
        let customers = read(&self.customers);
        let range = match after {
            Some(after) => customers.range::<CustomerId, _>((
                std::ops::Bound::Excluded(after),
                std::ops::Bound::Unbounded,
            )),
            None => customers.range::<CustomerId, _>(..),
        };
        Ok(range.take(limit).map(|(_, c)| c.clone()).collect())
    }

    fn history(&self, customer: &CustomerId) -> Result<History, StoreError> {
        Ok(read(&self.history)
            .get(customer.as_str())
            .cloned()
            .unwrap_or_default())
    }

    fn next_attempt_id(&self) -> Result<u64, StoreError> {
        Ok(self.attempt_ids.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn next_sms_id(&self) -> Result<u64, StoreError> {
        self.next_attempt_id()
    }

    fn put_sms(&self, record: &SmsRecord) -> Result<(), StoreError> {
        if let Some(provider) = &record.provider {
            let mut messages = write(&self.sms_messages);
            for part in &record.parts {
                messages.insert((provider.clone(), part.message_id.clone()), record.id);
            }
        }
        if let Some(link) = &record.link {
            write(&self.sms_links).insert(link.token.clone(), record.id);
        }
        write(&self.sms).insert(record.id, record.clone());
        Ok(())
    }

    fn sms_by_link(&self, token: &str) -> Result<Option<u64>, StoreError> {
        Ok(read(&self.sms_links).get(token).copied())
    }

    fn record_sms_click(&self, click: &SmsClick, customer: &CustomerId) -> Result<(), StoreError> {
        write(&self.sms_clicks).push(click.clone());
        write(&self.history)
            .entry(customer.as_str().to_owned())
            .or_default()
            .record_sms_click(click.at);
        Ok(())
    }

    fn sms_clicks(&self, sms: u64) -> Result<Vec<SmsClick>, StoreError> {
        Ok(read(&self.sms_clicks)
            .iter()
            .filter(|click| click.sms == sms)
            .cloned()
            .collect())
    }

    fn sms(&self, id: u64) -> Result<Option<SmsRecord>, StoreError> {
        Ok(read(&self.sms).get(&id).cloned())
    }

    fn sms_by_message_id(
        &self,
        provider: &str,
        message_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        Ok(read(&self.sms_messages)
            .get(&(provider.to_owned(), message_id.to_owned()))
            .copied())
    }

    fn open_sms(&self) -> Result<Vec<SmsRecord>, StoreError> {
        Ok(read(&self.sms)
            .values()
            .filter(|record| record.status.is_open())
            .cloned()
            .collect())
    }

    fn campaign_sms(
        &self,
        campaign: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<SmsRecord>, StoreError> {
        Ok(read(&self.sms)
            .range(after.saturating_add(1)..)
            .map(|(_, record)| record)
            .filter(|record| record.campaign == campaign)
            .take(limit)
            .cloned()
            .collect())
    }

    fn customer_sms_since(
        &self,
        customer: &str,
        since: jiff::Timestamp,
    ) -> Result<Vec<SmsRecord>, StoreError> {
        Ok(read(&self.sms)
            .values()
            .filter(|record| record.customer == customer && record.created_at >= since)
            .cloned()
            .collect())
    }

    fn begin_attempts(&self, attempts: &[Attempt]) -> Result<(), StoreError> {
        let mut ledger = write(&self.ledger);
        let mut history = write(&self.history);
        for attempt in attempts {
            ledger.insert(attempt.id, attempt.clone());
            history
                .entry(attempt.customer.clone())
                .or_default()
                .record_call(attempt.started_at);
        }
        Ok(())
    }

    fn finish_attempt(&self, cdr: &Cdr) -> Result<(), StoreError> {
        let mut ledger = write(&self.ledger);
        let mut cdrs = write(&self.cdrs);
        let mut history = write(&self.history);
        ledger.remove(&cdr.attempt);
        cdrs.insert(
            (
                cdr.campaign.clone(),
                cdr.ended_at.as_millisecond(),
                cdr.attempt,
            ),
            cdr.clone(),
        );
        history
            .entry(cdr.customer.clone())
            .or_default()
            .record_outcome(cdr.outcome.for_history(), cdr.ended_at);
        Ok(())
    }

    fn open_attempts(&self) -> Result<Vec<Attempt>, StoreError> {
        Ok(read(&self.ledger).values().cloned().collect())
    }

    fn cdrs(
        &self,
        campaign: &str,
        since: jiff::Timestamp,
        limit: usize,
    ) -> Result<Vec<Cdr>, StoreError> {
        Ok(read(&self.cdrs)
            .range((campaign.to_owned(), since.as_millisecond(), 0)..)
            .take_while(|((name, _, _), _)| name == campaign)
            .take(limit)
            .map(|(_, cdr)| cdr.clone())
            .collect())
    }

    fn campaigns(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(read(&self.campaigns)
            .iter()
            .map(|(name, state)| (name.clone(), state.clone()))
            .collect())
    }

    fn save_campaign(&self, name: &str, state: &[u8]) -> Result<(), StoreError> {
        write(&self.campaigns).insert(name.to_owned(), state.to_vec());
        Ok(())
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
        store.set_wake("cart", &id("b"), t(30)).unwrap();
        store.set_wake("cart", &id("a"), t(10)).unwrap();
        store.set_wake("cart", &id("c"), t(10)).unwrap();
        store.set_wake("cart", &id("a"), t(20)).unwrap();
        assert_eq!(
            store.wakes_until("cart", t(100), 10).unwrap(),
            vec![(t(10), id("c")), (t(20), id("a")), (t(30), id("b"))]
        );
        assert_eq!(
            store.wakes_until("cart", t(30), 10).unwrap(),
            vec![(t(10), id("c")), (t(20), id("a"))]
        );
        assert_eq!(
            store.wakes_until("cart", t(100), 1).unwrap(),
            vec![(t(10), id("c"))]
        );
        assert_eq!(
            store.wakes_between("cart", t(11), t(30), 10).unwrap(),
            vec![(t(20), id("a"))]
        );
        assert!(store.clear_wake("cart", &id("c")).unwrap());
        assert!(!store.clear_wake("cart", &id("c")).unwrap());
        assert_eq!(
            store.wakes_until("cart", t(25), 10).unwrap(),
            vec![(t(20), id("a"))]
        );
    }
}
