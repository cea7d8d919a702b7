//! The embedded store on sled.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::encoding::{self, SCHEMA_VERSION};
use super::{CustomerWrite, DncEntry, SealedCustomer, Store, StoreError};
use crate::customer::CustomerId;
use crate::vault::{PhoneKey, Vault};

const SCHEMA_VERSION_KEY: &[u8] = b"schema_version";
const KEY_CHECK_KEY: &[u8] = b"key_check";

/// One sled database per daemon, with the trees the architecture names.
pub struct SledStore {
    db: sled::Db,
    customers: sled::Tree,
    phone_index: sled::Tree,
    dnc: sled::Tree,
    customer_count: AtomicU64,
}

impl SledStore {
    /// Opens (or creates) the database in `dir`, refusing one written by a newer
    /// format or under another key.
    pub fn open(dir: &Path, vault: &Vault) -> Result<SledStore, StoreError> {
        let shown = dir.display().to_string();
        let db = sled::Config::new()
            .path(dir)
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
        for later in ["history", "ledger", "cdr", "campaigns"] {
            db.open_tree(later)?;
        }
        let customers = db.open_tree("customers")?;
        let customer_count = AtomicU64::new(customers.len() as u64);
        Ok(SledStore {
            phone_index: db.open_tree("phone_index")?,
            dnc: db.open_tree("dnc")?,
            customers,
            customer_count,
            db,
        })
    }
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
        let mut index = sled::Batch::default();
        let mut records = sled::Batch::default();
        let mut added = 0u64;
        for write in writes {
            let customer = &write.customer;
            if let Some(previous) = write.previous_phone.filter(|p| *p != customer.phone_key) {
                index.remove(&previous.0);
            }
            index.insert(&customer.phone_key.0, customer.id.as_str().as_bytes());
            records.insert(
                customer.id.as_str().as_bytes(),
                encoding::encode_customer(customer),
            );
            if write.previous_phone.is_none() {
                added += 1;
            }
        }
        self.phone_index.apply_batch(index)?;
        self.customers.apply_batch(records)?;
        self.customer_count.fetch_add(added, Ordering::Relaxed);
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

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::vault::Fingerprint;

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
        let store = SledStore::open(dir.path(), &vault).unwrap();
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
