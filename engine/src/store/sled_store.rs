//! The embedded store on sled.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::encoding::{self, SCHEMA_VERSION};
use dialhound_rules::History;
use sled::Transactional;

use super::{CustomerWrite, DncEntry, SealedCustomer, Store, StoreError};
use crate::store::attempt::{Attempt, Cdr};
use crate::store::customer::CustomerId;
use crate::store::sms::{SmsClick, SmsRecord};
use crate::store::vault::{PhoneKey, Vault};

const SCHEMA_VERSION_KEY: &[u8] = b"schema_version";
const KEY_CHECK_KEY: &[u8] = b"key_check";

/// One sled database per daemon, with the trees the architecture names.
pub struct SledStore {
    db: sled::Db,
    customers: sled::Tree,
    phone_index: sled::Tree,
    dnc: sled::Tree,
    history: sled::Tree,
    ledger: sled::Tree,
    cdr: sled::Tree,
    campaigns: sled::Tree,
    /// SMS records by id, and their indexes: the open ones (id), each
    /// campaign's and customer's (name, 0, id) and the parts' message ids
    /// (provider, 0, message id → id).
    sms: sled::Tree,
    sms_open: sled::Tree,
    sms_of_campaign: sled::Tree,
    sms_of_customer: sled::Tree,
    sms_messages: sled::Tree,
    /// Tracked links: token → SMS id.
    sms_links: sled::Tree,
    /// Clicks on tracked links, by SMS id then a fresh id, so one SMS's
    /// clicks scan in the order they came.
    sms_clicks: sled::Tree,
    customer_count: AtomicU64,
}

/// sled's page cache. Its default, 1 GiB, made a 100,000-row import about
/// 40 % slower here than 64 or 256 MiB did (51,700 against 87,000 rows/s),
/// and a daemon has no use for that much memory.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

impl SledStore {
    /// Opens (or creates) the database in `dir`, refusing one written by a newer
    /// format or under another key.
    pub fn open(dir: &Path, vault: &Vault) -> Result<SledStore, StoreError> {
        let shown = dir.display().to_string();
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|source| StoreError::Open {
                path: shown.clone(),
                source,
            })?;
        let meta = db.open_tree("meta")?;
        let check = vault.key_check();
        match meta.get(SCHEMA_VERSION_KEY)? {
            Some(stored) => {
                let found = <[u8; 4]>::try_from(stored.as_ref())
                    .map(u32::from_be_bytes)
                    .unwrap_or(u32::MAX);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerFormat {
                        path: shown,
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                if meta.get(KEY_CHECK_KEY)?.as_deref() != Some(check.as_slice()) {
                    return Err(StoreError::WrongKey { path: shown });
                }
            }
            None => {
                meta.insert(SCHEMA_VERSION_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                meta.insert(KEY_CHECK_KEY, check.as_slice())?;
                db.flush()?;
            }
        }
        let customers = db.open_tree("customers")?;
        let customer_count = AtomicU64::new(customers.len() as u64);
        Ok(SledStore {
            phone_index: db.open_tree("phone_index")?,
            dnc: db.open_tree("dnc")?,
            history: db.open_tree("history")?,
            ledger: db.open_tree("ledger")?,
            cdr: db.open_tree("cdr")?,
            campaigns: db.open_tree("campaigns")?,
            sms: db.open_tree("sms")?,
            sms_open: db.open_tree("sms_open")?,
            sms_of_campaign: db.open_tree("sms_of_campaign")?,
            sms_of_customer: db.open_tree("sms_of_customer")?,
            sms_messages: db.open_tree("sms_messages")?,
            sms_links: db.open_tree("sms_links")?,
            sms_clicks: db.open_tree("sms_clicks")?,
            customers,
            customer_count,
            db,
        })
    }

    /// A campaign's wakes live in a tree of their own, keyed by time, with
    /// an index from customer to its wake's time.
    fn wakes(&self, campaign: &str) -> Result<(sled::Tree, sled::Tree), StoreError> {
        Ok((
            self.db.open_tree(format!("wakes/{campaign}"))?,
            self.db.open_tree(format!("wake_of/{campaign}"))?,
        ))
    }
}

/// Runs `body` as a sled transaction, giving its own errors back as they were.
fn transact<T>(
    result: Result<T, sled::transaction::TransactionError<StoreError>>,
) -> Result<T, StoreError> {
    result.map_err(|error| match error {
        sled::transaction::TransactionError::Abort(error) => error,
        sled::transaction::TransactionError::Storage(error) => StoreError::Database(error),
    })
}

fn wake_time(at: jiff::Timestamp) -> [u8; 8] {
    at.as_millisecond().to_be_bytes()
}

fn decode_wake_time(bytes: &[u8]) -> Result<jiff::Timestamp, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .ok()
        .and_then(|millis| jiff::Timestamp::from_millisecond(i64::from_be_bytes(millis)).ok())
        .ok_or(StoreError::Damaged {
            key: "wake index entry".into(),
            error: encoding::DecodeError::Invalid,
        })
}

/// An index key: a name, a zero byte (names hold none) and the rest.
fn index_key(name: &str, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 1 + rest.len());
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    key.extend_from_slice(rest);
    key
}

fn decode_id(bytes: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Damaged {
            key: "SMS index entry".into(),
            error: encoding::DecodeError::Invalid,
        })
}

/// Reads the customer's contact history inside a transaction, changes it
/// and writes it back.
fn change_history(
    history: &sled::transaction::TransactionalTree,
    customer: &[u8],
    change: impl FnOnce(&mut History),
) -> Result<(), sled::transaction::ConflictableTransactionError<StoreError>> {
    let mut record = match history.get(customer)? {
        Some(bytes) => encoding::decode_history(&bytes).map_err(abort)?,
        None => History::new(),
    };
    change(&mut record);
    history.insert(customer, encoding::encode_history(&record))?;
    Ok(())
}

fn abort(error: StoreError) -> sled::transaction::ConflictableTransactionError<StoreError> {
    sled::transaction::ConflictableTransactionError::Abort(error)
}

impl Store for SledStore {
    fn customer(&self, id: &CustomerId) -> Result<Option<SealedCustomer>, StoreError> {
        let Some(bytes) = self.customers.get(id.as_str())? else {
            return Ok(None);
        };
        encoding::decode_customer(id.as_str().as_bytes(), &bytes)
            .map(Some)
            .map_err(|error| StoreError::Damaged {
                key: id.to_string(),
                error,
            })
    }

    fn customer_by_phone(&self, phone: &PhoneKey) -> Result<Option<CustomerId>, StoreError> {
        let Some(bytes) = self.phone_index.get(phone.0)? else {
            return Ok(None);
        };
        let id = std::str::from_utf8(&bytes)
            .ok()
            .and_then(CustomerId::parse)
            .ok_or_else(|| StoreError::Damaged {
                key: "phone index entry".into(),
                error: encoding::DecodeError::Invalid,
            })?;
        Ok(Some(id))
    }

    fn customer_count(&self) -> u64 {
        self.customer_count.load(Ordering::Relaxed)
    }

    fn write_customers(&self, writes: &[CustomerWrite]) -> Result<(), StoreError> {
        // The index and the records are separate trees: write them on two threads.
        // Durability comes from the caller's flush, so neither side needs a batch.
        // Each side writes in key order: consecutive inserts then walk neighbouring
        // leaves, which sled finds in the CPU's caches. The importer never gives a
        // number to one customer while another gives it up in the same batch, so
        // removing the numbers given up first leaves the same index.
        let index = || -> Result<(), StoreError> {
            for write in writes {
                let customer = &write.customer;
                if let Some(previous) = write.previous_phone.filter(|p| *p != customer.phone_key) {
                    self.phone_index.remove(previous.0)?;
                }
            }
            let mut sorted: Vec<&SealedCustomer> = writes.iter().map(|w| &w.customer).collect();
            sorted.sort_unstable_by_key(|customer| customer.phone_key.0);
            for customer in sorted {
                self.phone_index
                    .insert(customer.phone_key.0, customer.id.as_str().as_bytes())?;
            }
            Ok(())
        };
        let records = || -> Result<(), StoreError> {
            let mut sorted: Vec<&SealedCustomer> = writes.iter().map(|w| &w.customer).collect();
            sorted.sort_unstable_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
            for customer in sorted {
                self.customers.insert(
                    customer.id.as_str().as_bytes(),
                    encoding::encode_customer(customer),
                )?;
            }
            Ok(())
        };
        let (indexed, recorded) = std::thread::scope(|scope| {
            let indexing = scope.spawn(index);
            let recorded = records();
            (indexing.join(), recorded)
        });
        indexed.map_err(|_| StoreError::Panicked)??;
        recorded?;
        let added = writes.iter().filter(|w| w.previous_phone.is_none()).count();
        self.customer_count
            .fetch_add(added as u64, Ordering::Relaxed);
        Ok(())
    }

    fn dnc_contains(&self, phone: &PhoneKey) -> Result<bool, StoreError> {
        Ok(self.dnc.contains_key(phone.0)?)
    }

    fn dnc_add(&self, entry: &DncEntry) -> Result<bool, StoreError> {
        let previous = self
            .dnc
            .insert(entry.phone_key.0, encoding::encode_dnc(entry))?;
        Ok(previous.is_none())
    }

    fn dnc_remove(&self, phone: &PhoneKey) -> Result<bool, StoreError> {
        Ok(self.dnc.remove(phone.0)?.is_some())
    }

    fn dnc_list(&self) -> Result<Vec<DncEntry>, StoreError> {
        self.dnc
            .iter()
            .map(|item| {
                let (key, value) = item?;
                encoding::decode_dnc(&key, &value).map_err(|error| StoreError::Damaged {
                    key: "dnc entry".into(),
                    error,
                })
            })
            .collect()
    }

    fn set_wake(
        &self,
        campaign: &str,
        customer: &CustomerId,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let (wakes, index) = self.wakes(campaign)?;
        // One transaction, so a crash keeps either the old wake or the new one.
        transact((&wakes, &index).transaction(|(wakes, index)| {
            let key = customer.as_str().as_bytes();
            if let Some(previous) = index.insert(key, &wake_time(at))? {
                let previous = decode_wake_time(&previous).map_err(abort)?;
                wakes.remove(encoding::encode_wake_key(previous, customer))?;
            }
            wakes.insert(encoding::encode_wake_key(at, customer), &[])?;
            Ok(())
        }))
    }

    fn clear_wake(&self, campaign: &str, customer: &CustomerId) -> Result<bool, StoreError> {
        let (wakes, index) = self.wakes(campaign)?;
        transact((&wakes, &index).transaction(|(wakes, index)| {
            match index.remove(customer.as_str().as_bytes())? {
                Some(previous) => {
                    let previous = decode_wake_time(&previous).map_err(abort)?;
                    wakes.remove(encoding::encode_wake_key(previous, customer))?;
                    Ok(true)
                }
                None => Ok(false),
            }
        }))
    }

    fn wakes_between(
        &self,
        campaign: &str,
        from: jiff::Timestamp,
        until: jiff::Timestamp,
        limit: usize,
    ) -> Result<Vec<(jiff::Timestamp, CustomerId)>, StoreError> {
        let from = encoding::wake_time_prefix(from);
        let until = encoding::wake_time_prefix(until);
        if from >= until {
            return Ok(Vec::new());
        }
        self.wakes(campaign)?
            .0
            .range(from..until)
            .keys()
            .take(limit)
            .map(|key| {
                let key = key?;
                encoding::decode_wake_key(&key).map_err(|error| StoreError::Damaged {
                    key: "wake".into(),
                    error,
                })
            })
            .collect()
    }

    fn customers_after(
        &self,
        after: Option<&CustomerId>,
        limit: usize,
    ) -> Result<Vec<SealedCustomer>, StoreError> {
        let range = match after {
            Some(after) => self.customers.range::<&[u8], _>((
                std::ops::Bound::Excluded(after.as_str().as_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => self.customers.iter(),
        };
        range
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                encoding::decode_customer(&key, &value).map_err(|error| StoreError::Damaged {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    error,
                })
            })
            .collect()
    }

    fn history(&self, customer: &CustomerId) -> Result<History, StoreError> {
        match self.history.get(customer.as_str())? {
            Some(bytes) => encoding::decode_history(&bytes),
            None => Ok(History::new()),
        }
    }

    fn next_attempt_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()? + 1)
    }

    fn begin_attempts(&self, attempts: &[Attempt]) -> Result<(), StoreError> {
        transact(
            (&self.ledger, &self.history).transaction(|(ledger, history)| {
                for attempt in attempts {
                    ledger.insert(&attempt.id.to_be_bytes(), encoding::encode_json(attempt))?;
                    change_history(history, attempt.customer.as_bytes(), |record| {
                        record.record_call(attempt.started_at)
                    })?;
                }
                Ok(())
            }),
        )
    }

    fn finish_attempt(&self, cdr: &Cdr) -> Result<(), StoreError> {
        transact(
            (&self.ledger, &self.cdr, &self.history).transaction(|(ledger, cdrs, history)| {
                ledger.remove(&cdr.attempt.to_be_bytes())?;
                cdrs.insert(encoding::cdr_key(cdr), encoding::encode_json(cdr))?;
                change_history(history, cdr.customer.as_bytes(), |record| {
                    record.record_outcome(cdr.outcome.for_history(), cdr.ended_at)
                })?;
                Ok(())
            }),
        )
    }

    fn open_attempts(&self) -> Result<Vec<Attempt>, StoreError> {
        self.ledger
            .iter()
            .values()
            .map(|value| encoding::decode_json(&value?, "ledger entry"))
            .collect()
    }

    fn cdrs(
        &self,
        campaign: &str,
        since: jiff::Timestamp,
        limit: usize,
    ) -> Result<Vec<Cdr>, StoreError> {
        let (from, until) = encoding::cdr_range(campaign, since);
        self.cdr
            .range(from..until)
            .values()
            .take(limit)
            .map(|value| encoding::decode_json(&value?, "CDR"))
            .collect()
    }

    fn campaigns(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.campaigns
            .iter()
            .map(|item| {
                let (key, value) = item?;
                Ok((String::from_utf8_lossy(&key).into_owned(), value.to_vec()))
            })
            .collect()
    }

    fn save_campaign(&self, name: &str, state: &[u8]) -> Result<(), StoreError> {
        self.campaigns.insert(name.as_bytes(), state)?;
        Ok(())
    }

    fn next_sms_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()? + 1)
    }

    fn put_sms(&self, record: &SmsRecord) -> Result<(), StoreError> {
        let id = record.id.to_be_bytes();
        let value = encoding::encode_json(record);
        let campaign_key = index_key(&record.campaign, &id);
        let customer_key = index_key(&record.customer, &id);
        let message_keys: Vec<Vec<u8>> = match &record.provider {
            Some(provider) => record
                .parts
                .iter()
                .map(|part| index_key(provider, part.message_id.as_bytes()))
                .collect(),
            None => Vec::new(),
        };
        let token = record.link.as_ref().map(|link| link.token.as_bytes());
        transact(
            (
                &self.sms,
                &self.sms_open,
                &self.sms_of_campaign,
                &self.sms_of_customer,
                &self.sms_messages,
                &self.sms_links,
            )
                .transaction(
                    |(sms, open, of_campaign, of_customer, messages, links)| {
                        sms.insert(&id, value.as_slice())?;
                        if record.status.is_open() {
                            open.insert(&id, &[])?;
                        } else {
                            open.remove(&id)?;
                        }
                        of_campaign.insert(campaign_key.as_slice(), &[])?;
                        of_customer.insert(customer_key.as_slice(), &[])?;
                        for key in &message_keys {
                            messages.insert(key.as_slice(), &id)?;
                        }
                        if let Some(token) = token {
                            links.insert(token, &id)?;
                        }
                        Ok(())
                    },
                ),
        )
    }

    fn sms(&self, id: u64) -> Result<Option<SmsRecord>, StoreError> {
        self.sms
            .get(id.to_be_bytes())?
            .map(|bytes| encoding::decode_json(&bytes, "SMS record"))
            .transpose()
    }

    fn sms_by_message_id(
        &self,
        provider: &str,
        message_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        self.sms_messages
            .get(index_key(provider, message_id.as_bytes()))?
            .map(|bytes| decode_id(&bytes))
            .transpose()
    }

    fn sms_by_link(&self, token: &str) -> Result<Option<u64>, StoreError> {
        self.sms_links
            .get(token.as_bytes())?
            .map(|bytes| decode_id(&bytes))
            .transpose()
    }

    fn record_sms_click(&self, click: &SmsClick, customer: &CustomerId) -> Result<(), StoreError> {
        let mut key = click.sms.to_be_bytes().to_vec();
        key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
        let value = encoding::encode_json(click);
        transact(
            (&self.sms_clicks, &self.history).transaction(|(clicks, history)| {
                clicks.insert(key.as_slice(), value.as_slice())?;
                change_history(history, customer.as_str().as_bytes(), |record| {
                    record.record_sms_click(click.at)
                })?;
                Ok(())
            }),
        )
    }

    fn sms_clicks(&self, sms: u64) -> Result<Vec<SmsClick>, StoreError> {
        self.sms_clicks
            .scan_prefix(sms.to_be_bytes())
            .values()
            .map(|value| encoding::decode_json(&value?, "SMS click"))
            .collect()
    }

    fn open_sms(&self) -> Result<Vec<SmsRecord>, StoreError> {
        let mut records = Vec::new();
        for key in self.sms_open.iter().keys() {
            if let Some(record) = self.sms(decode_id(&key?)?)? {
                records.push(record);
            }
        }
        Ok(records)
    }

    fn campaign_sms(
        &self,
        campaign: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<SmsRecord>, StoreError> {
        let from = index_key(campaign, &after.saturating_add(1).to_be_bytes());
        let until = index_key(campaign, &[0xFF; 9]);
        let mut records = Vec::new();
        for key in self.sms_of_campaign.range(from..until).keys().take(limit) {
            let key = key?;
            let id = decode_id(&key[key.len().saturating_sub(8)..])?;
            if let Some(record) = self.sms(id)? {
                records.push(record);
            }
        }
        Ok(records)
    }

    fn customer_sms_since(
        &self,
        customer: &str,
        since: jiff::Timestamp,
    ) -> Result<Vec<SmsRecord>, StoreError> {
        let mut records = Vec::new();
        for key in self
            .sms_of_customer
            .scan_prefix(index_key(customer, &[]))
            .keys()
        {
            let key = key?;
            let id = decode_id(&key[key.len().saturating_sub(8)..])?;
            if let Some(record) = self.sms(id)?
                && record.created_at >= since
            {
                records.push(record);
            }
        }
        Ok(records)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// Opens the database again right after the previous handle was dropped. Sled's
/// background flusher can hold the file lock for a moment after the drop, so a lock
/// conflict is retried for up to a second.
#[cfg(test)]
fn reopen(dir: &Path, vault: &Vault) -> SledStore {
    for _ in 0..50 {
        match SledStore::open(dir, vault) {
            Ok(store) => return store,
            Err(StoreError::Open { source, .. }) if source.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(error) => panic!("reopen: {error}"),
        }
    }
    panic!("the database lock was not released within a second")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::attempt::{Attempt, Cdr};
    use crate::store::vault::Fingerprint;

    fn customer(id: &str, phone: u8) -> SealedCustomer {
        SealedCustomer {
            id: CustomerId::parse(id).unwrap(),
            phone_key: PhoneKey([phone; 32]),
            fingerprint: Fingerprint([0; 16]),
            sealed_personal: vec![1, 2, 3],
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn an_open_attempt_survives_reopen_and_its_end_writes_cdr_and_history_together() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::from_master_key(&[1; 32]);
        let t = |s: i64| jiff::Timestamp::from_second(1_773_000_000 + s).unwrap();
        let attempt = |id: u64, customer: &str, at: i64| Attempt {
            id,
            campaign: "cart".into(),
            customer: customer.into(),
            rule: "cart_reminder".into(),
            script: Some("limited_offer".into()),
            tier: None,
            started_at: t(at),
        };
        let (first, second);
        {
            let store = SledStore::open(dir.path(), &vault).unwrap();
            first = store.next_attempt_id().unwrap();
            second = store.next_attempt_id().unwrap();
            assert!(second > first);
            store
                .begin_attempts(&[attempt(first, "a", 0), attempt(second, "b", 5)])
                .unwrap();
            let mut cdr = Cdr::interrupted(&attempt(second, "b", 5), t(40));
            cdr.outcome = crate::store::attempt::CallOutcome::OptedOut;
            store.finish_attempt(&cdr).unwrap();
            store.flush().unwrap();
        }
        let store = reopen(dir.path(), &vault);
        assert!(
            store.next_attempt_id().unwrap() > second,
            "ids grow across restarts"
        );
        assert_eq!(store.open_attempts().unwrap(), vec![attempt(first, "a", 0)]);
        let a = store.history(&CustomerId::parse("a").unwrap()).unwrap();
        assert_eq!(
            a.recent_calls(),
            &[t(0).as_second()],
            "an open attempt counts as a call"
        );
        let b = store.history(&CustomerId::parse("b").unwrap()).unwrap();
        assert_eq!(b.attempts, 1);
        assert_eq!(b.opted_out_at, Some(t(40)));
        let cdrs = store.cdrs("cart", t(0), 10).unwrap();
        assert_eq!(cdrs.len(), 1);
        assert_eq!(cdrs[0].attempt, second);
        assert!(
            store.cdrs("cart", t(41), 10).unwrap().is_empty(),
            "since is honoured"
        );
        assert!(
            store.cdrs("car", t(0), 10).unwrap().is_empty(),
            "another campaign's prefix"
        );
    }

    #[test]
    fn customers_survive_reopen_and_are_found_by_phone() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::from_master_key(&[1; 32]);
        {
            let store = SledStore::open(dir.path(), &vault).unwrap();
            let writes = vec![
                CustomerWrite {
                    customer: customer("a", 1),
                    previous_phone: None,
                },
                CustomerWrite {
                    customer: customer("b", 2),
                    previous_phone: None,
                },
            ];
            store.write_customers(&writes).unwrap();
            store.flush().unwrap();
            assert_eq!(store.customer_count(), 2);
        }
        let store = reopen(dir.path(), &vault);
        assert_eq!(store.customer_count(), 2);
        assert_eq!(
            store
                .customer_by_phone(&PhoneKey([2; 32]))
                .unwrap()
                .unwrap()
                .as_str(),
            "b"
        );
        assert_eq!(
            store.customer(&CustomerId::parse("a").unwrap()).unwrap(),
            Some(customer("a", 1))
        );
    }

    #[test]
    fn changed_number_moves_the_index_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), &Vault::from_master_key(&[1; 32])).unwrap();
        store
            .write_customers(&[CustomerWrite {
                customer: customer("a", 1),
                previous_phone: None,
            }])
            .unwrap();
        store
            .write_customers(&[CustomerWrite {
                customer: customer("a", 5),
                previous_phone: Some(PhoneKey([1; 32])),
            }])
            .unwrap();
        assert_eq!(store.customer_by_phone(&PhoneKey([1; 32])).unwrap(), None);
        assert!(
            store
                .customer_by_phone(&PhoneKey([5; 32]))
                .unwrap()
                .is_some()
        );
        assert_eq!(store.customer_count(), 1);
    }

    #[test]
    fn another_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SledStore::open(dir.path(), &Vault::from_master_key(&[1; 32])).unwrap());
        let error = SledStore::open(dir.path(), &Vault::from_master_key(&[2; 32]))
            .err()
            .unwrap();
        assert!(matches!(error, StoreError::WrongKey { .. }), "{error}");
    }

    #[test]
    fn newer_format_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::from_master_key(&[1; 32]);
        {
            let db = sled::open(dir.path()).unwrap();
            let meta = db.open_tree("meta").unwrap();
            meta.insert(SCHEMA_VERSION_KEY, &(SCHEMA_VERSION + 1).to_be_bytes())
                .unwrap();
            meta.insert(KEY_CHECK_KEY, vault.key_check().as_slice())
                .unwrap();
            db.flush().unwrap();
        }
        let error = SledStore::open(dir.path(), &vault).err().unwrap();
        assert!(
            error
                .to_string()
                .contains("written by a newer dialhound (format 2"),
            "{error}"
        );
    }

    #[test]
    fn wakes_come_back_in_time_order_and_survive_reopen() {
        let t = |seconds: i64| jiff::Timestamp::from_second(1_800_000_000 + seconds).unwrap();
        let id = |text: &str| CustomerId::parse(text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::from_master_key(&[1; 32]);
        {
            let store = SledStore::open(dir.path(), &vault).unwrap();
            store.set_wake("cart", &id("b"), t(30)).unwrap();
            store.set_wake("cart", &id("a"), t(10)).unwrap();
            store.set_wake("cart", &id("c"), t(10)).unwrap();
            store.set_wake("cart", &id("early"), t(-90_000)).unwrap();
            store.set_wake("cart", &id("a"), t(20)).unwrap();
            store.flush().unwrap();
        }
        let store = reopen(dir.path(), &vault);
        assert_eq!(
            store.wakes_until("cart", t(100), 10).unwrap(),
            vec![
                (t(-90_000), id("early")),
                (t(10), id("c")),
                (t(20), id("a")),
                (t(30), id("b"))
            ]
        );
        assert_eq!(
            store.wakes_until("cart", t(20), 10).unwrap(),
            vec![(t(-90_000), id("early")), (t(10), id("c"))]
        );
        assert_eq!(store.wakes_until("cart", t(100), 1).unwrap().len(), 1);
        assert_eq!(
            store.wakes_between("cart", t(10), t(30), 10).unwrap(),
            vec![(t(10), id("c")), (t(20), id("a"))]
        );
        assert!(
            store
                .wakes_between("cart", t(30), t(10), 10)
                .unwrap()
                .is_empty()
        );
        assert!(store.clear_wake("cart", &id("c")).unwrap());
        assert!(!store.clear_wake("cart", &id("c")).unwrap());
        assert!(
            store
                .wakes_until("cart", t(15), 10)
                .unwrap()
                .iter()
                .all(|(_, c)| c != &id("a")),
            "a's old wake went with the new one"
        );
    }

    #[test]
    fn dnc_add_remove_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), &Vault::from_master_key(&[1; 32])).unwrap();
        let entry = DncEntry {
            phone_key: PhoneKey([3; 32]),
            sealed_phone: vec![1; 30],
            added_at: jiff::Timestamp::UNIX_EPOCH,
            reason: "asked".into(),
        };
        assert!(store.dnc_add(&entry).unwrap());
        assert!(!store.dnc_add(&entry).unwrap());
        assert!(store.dnc_contains(&PhoneKey([3; 32])).unwrap());
        assert_eq!(store.dnc_list().unwrap(), vec![entry]);
        assert!(store.dnc_remove(&PhoneKey([3; 32])).unwrap());
        assert!(!store.dnc_contains(&PhoneKey([3; 32])).unwrap());
    }
}

/// The sled store against the in-memory model, with restarts in the sequence.
#[cfg(test)]
mod model {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::store::MemoryStore;
    use crate::store::vault::Fingerprint;

    #[derive(Debug, Clone)]
    enum Op {
        Write { id: u8, phone: u8, tag: u8 },
        DncAdd(u8),
        DncRemove(u8),
        Wake { id: u8, second: i8 },
        ClearWake(u8),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..6u8, 0..6u8, any::<u8>()).prop_map(|(id, phone, tag)| Op::Write { id, phone, tag }),
            1 => (0..6u8).prop_map(Op::DncAdd),
            1 => (0..6u8).prop_map(Op::DncRemove),
            2 => (0..6u8, any::<i8>()).prop_map(|(id, second)| Op::Wake { id, second }),
            1 => (0..6u8).prop_map(Op::ClearWake),
            1 => Just(Op::Reopen),
        ]
    }

    fn sealed(id: u8, phone: u8, tag: u8) -> SealedCustomer {
        SealedCustomer {
            id: CustomerId::parse(&format!("c{id}")).unwrap(),
            phone_key: PhoneKey([phone; 32]),
            fingerprint: Fingerprint([tag; 16]),
            sealed_personal: vec![tag; 20],
            attributes: BTreeMap::new(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn sled_store_behaves_like_the_model(ops in proptest::collection::vec(op(), 1..30)) {
            let dir = tempfile::tempdir().unwrap();
            let vault = Vault::from_master_key(&[5; 32]);
            let mut store = SledStore::open(dir.path(), &vault).unwrap();
            let model = MemoryStore::new();
            // Each customer's wake, as the model of the model.
            let mut wakes: BTreeMap<u8, jiff::Timestamp> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Write { id, phone, tag } => {
                        let customer = sealed(id, phone, tag);
                        // The importer never gives one number to two customers.
                        if model.customer_by_phone(&customer.phone_key).unwrap().is_some_and(|owner| owner != customer.id) {
                            continue;
                        }
                        let previous_phone = model.customer(&customer.id).unwrap().map(|c| c.phone_key);
                        let write = CustomerWrite { customer, previous_phone };
                        store.write_customers(std::slice::from_ref(&write)).unwrap();
                        model.write_customers(&[write]).unwrap();
                    }
                    Op::DncAdd(phone) => {
                        let entry = DncEntry {
                            phone_key: PhoneKey([phone; 32]),
                            sealed_phone: vec![phone; 28],
                            added_at: jiff::Timestamp::UNIX_EPOCH,
                            reason: "r".into(),
                        };
                        prop_assert_eq!(store.dnc_add(&entry).unwrap(), model.dnc_add(&entry).unwrap());
                    }
                    Op::DncRemove(phone) => {
                        let key = PhoneKey([phone; 32]);
                        prop_assert_eq!(store.dnc_remove(&key).unwrap(), model.dnc_remove(&key).unwrap());
                    }
                    Op::Wake { id, second } => {
                        let customer = CustomerId::parse(&format!("c{id}")).unwrap();
                        let at = jiff::Timestamp::from_second(i64::from(second)).unwrap();
                        wakes.insert(id, at);
                        store.set_wake("cart", &customer, at).unwrap();
                        model.set_wake("cart", &customer, at).unwrap();
                    }
                    Op::ClearWake(id) => {
                        let customer = CustomerId::parse(&format!("c{id}")).unwrap();
                        let had = wakes.remove(&id).is_some();
                        prop_assert_eq!(store.clear_wake("cart", &customer).unwrap(), had);
                        prop_assert_eq!(model.clear_wake("cart", &customer).unwrap(), had);
                    }
                    Op::Reopen => {
                        store.flush().unwrap();
                        drop(store);
                        store = reopen(dir.path(), &vault);
                    }
                }
                prop_assert_eq!(store.customer_count(), model.customer_count());
                let stored = store.wakes_until("cart", jiff::Timestamp::MAX, 100).unwrap();
                prop_assert_eq!(stored.len(), wakes.len());
                prop_assert_eq!(stored, model.wakes_until("cart", jiff::Timestamp::MAX, 100).unwrap());
                let (from, until) = (jiff::Timestamp::from_second(-20).unwrap(), jiff::Timestamp::from_second(40).unwrap());
                prop_assert_eq!(store.wakes_between("cart", from, until, 3).unwrap(), model.wakes_between("cart", from, until, 3).unwrap());
                for n in 0..6u8 {
                    let id = CustomerId::parse(&format!("c{n}")).unwrap();
                    prop_assert_eq!(store.customer(&id).unwrap(), model.customer(&id).unwrap());
                    let key = PhoneKey([n; 32]);
                    prop_assert_eq!(store.customer_by_phone(&key).unwrap(), model.customer_by_phone(&key).unwrap());
                    prop_assert_eq!(store.dnc_contains(&key).unwrap(), model.dnc_contains(&key).unwrap());
                }
            }
        }
    }
}
