//! The customer directory: what operators ask of customers and the DNC list, with
//! personal data unsealed only on the way out.

use std::sync::Arc;

use serde::Serialize;

use crate::ingest::import::{
    self, ImportError, ImportJob, ImportProgress, ImportSettings, ImportSummary,
};
use crate::ingest::phone::E164;
use crate::store::customer::{Customer, CustomerId};
use crate::store::sms::SmsContent;
use crate::store::vault::{Vault, VaultError};
use crate::store::{self, DncEntry, SealedCustomer, Store, StoreError};

/// Customers and the DNC list, over any [`Store`].
#[derive(Clone)]
pub struct Directory {
    vault: Vault,
    store: Arc<dyn Store>,
    settings: Arc<ImportSettings>,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("stored personal fields are damaged: {0}")]
    Damaged(#[from] store::DecodeError),
}

/// A DNC entry as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DncListing {
    pub phone: String,
    pub added_at: jiff::Timestamp,
    pub reason: String,
}

impl Directory {
    pub fn new(vault: Vault, store: Arc<dyn Store>, settings: ImportSettings) -> Directory {
        Directory {
            vault,
            store,
            settings: Arc::new(settings),
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn settings(&self) -> &ImportSettings {
        &self.settings
    }

    /// Imports a spreadsheet. Blocking: run it off the async reactor.
    pub fn import(
        &self,
        job: &ImportJob,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportSummary, ImportError> {
        import::run(
            job,
            &self.settings,
            &self.vault,
            self.store.as_ref(),
            progress,
        )
    }

    pub fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, DirectoryError> {
        self.store
            .customer(id)?
            .map(|sealed| self.unseal(sealed))
            .transpose()
    }

    pub fn customer_by_phone(&self, phone: &E164) -> Result<Option<Customer>, DirectoryError> {
        let key = self.vault.phone_key(phone.as_str());
        match self.store.customer_by_phone(&key)? {
            Some(id) => self.customer(&id),
            None => Ok(None),
        }
    }

    /// Puts a number on the DNC list, durably; true when it was not listed before.
    pub fn dnc_add(
        &self,
        phone: &E164,
        reason: &str,
        now: jiff::Timestamp,
    ) -> Result<bool, DirectoryError> {
        let added = self.block(phone.as_str(), reason, now)?;
        self.store.flush()?;
        Ok(added)
    }

    /// Puts a stored customer's number (E.164, as stored) on the DNC list,
    /// at once for every reader; durable with the next flush.
    pub fn block(
        &self,
        phone: &str,
        reason: &str,
        now: jiff::Timestamp,
    ) -> Result<bool, DirectoryError> {
        let phone_key = self.vault.phone_key(phone);
        let entry = DncEntry {
            phone_key,
            sealed_phone: self.vault.seal(phone.as_bytes(), &phone_key.0),
            added_at: now,
            reason: reason.to_owned(),
        };
        Ok(self.store.dnc_add(&entry)?)
    }

    /// Whether a stored customer's number is on the DNC list.
    pub fn is_blocked(&self, phone: &str) -> Result<bool, DirectoryError> {
        Ok(self.store.dnc_contains(&self.vault.phone_key(phone))?)
    }

    /// A stored customer with its personal fields opened.
    pub fn open_customer(&self, sealed: SealedCustomer) -> Result<Customer, DirectoryError> {
        self.unseal(sealed)
    }

    /// Takes a number off the DNC list, durably; true when it was listed.
    pub fn dnc_remove(&self, phone: &E164) -> Result<bool, DirectoryError> {
        let removed = self
            .store
            .dnc_remove(&self.vault.phone_key(phone.as_str()))?;
        self.store.flush()?;
        Ok(removed)
    }

    pub fn dnc_list(&self) -> Result<Vec<DncListing>, DirectoryError> {
        let mut listings = self
            .store
            .dnc_list()?
            .into_iter()
            .map(|entry| {
                let phone = self.vault.unseal(&entry.sealed_phone, &entry.phone_key.0)?;
                Ok(DncListing {
                    phone: String::from_utf8(phone).map_err(|_| store::DecodeError::NotUtf8)?,
                    added_at: entry.added_at,
                    reason: entry.reason,
                })
            })
            .collect::<Result<Vec<_>, DirectoryError>>()?;
        listings.sort_by(|a, b| a.phone.cmp(&b.phone));
        Ok(listings)
    }

    /// Seals an SMS's number, sender and text for its record, with the
    /// SMS's id as context.
    pub fn seal_sms(&self, id: u64, content: &SmsContent) -> Vec<u8> {
        let plain = serde_json::to_vec(content).unwrap_or_default();
        self.vault.seal(&plain, &sms_context(id))
    }

    /// A keyed hash of a visitor's network address (hex): the same address
    /// reads the same, and the address is not kept.
    pub fn visitor_key(&self, address: &str) -> String {
        self.vault
            .fingerprint([b"visitor".as_slice(), address.as_bytes()])
            .0
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Opens what [`Directory::seal_sms`] sealed.
    pub fn open_sms(&self, id: u64, sealed: &[u8]) -> Result<SmsContent, DirectoryError> {
        let plain = self.vault.unseal(sealed, &sms_context(id))?;
        serde_json::from_slice(&plain)
            .map_err(|_| DirectoryError::Damaged(store::DecodeError::Invalid))
    }

    fn unseal(&self, sealed: SealedCustomer) -> Result<Customer, DirectoryError> {
        let personal = self
            .vault
            .unseal(&sealed.sealed_personal, sealed.id.as_str().as_bytes())?;
        let (phone, name) = store::decode_personal(&personal)?;
        Ok(Customer {
            id: sealed.id,
            phone,
            name,
            attributes: sealed.attributes,
        })
    }
}

fn sms_context(id: u64) -> Vec<u8> {
    let mut context = b"sms:".to_vec();
    context.extend_from_slice(&id.to_be_bytes());
    context
}
