//! The customer store: a [`Store`] trait the rest of the daemon talks to, with an
//! embedded sled implementation.
//!
//! The store only ever sees sealed personal data: phone numbers and names are
//! encrypted by the [`Vault`](crate::store::vault::Vault) before they reach it, and the
//! phone index and DNC list are keyed by a keyed hash of the number. A larger
//! deployment can put the same records in a shared database behind this trait.

pub mod attempt;
pub mod customer;
mod encoding;
mod memory;
pub(crate) mod redact;
mod sled_store;
pub mod sms;
pub mod vault;

use std::collections::BTreeMap;

pub use attempt::Cdr;
pub(crate) use encoding::{DecodeError, decode_personal, encode_attributes, encode_personal};
pub use memory::MemoryStore;
pub use sled_store::SledStore;
pub use vault::Vault;

use dialhound_rules::History;

use crate::store::attempt::Attempt;
use crate::store::customer::{AttributeValue, CustomerId};
use crate::store::sms::SmsRecord;
use crate::store::vault::{Fingerprint, PhoneKey};

/// A customer record with its personal fields sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedCustomer {
    pub id: CustomerId,
    pub phone_key: PhoneKey,
    /// Keyed hash of the plain record, to tell an unchanged re-import.
    pub fingerprint: Fingerprint,
    /// Phone and name, sealed with the customer id as context.
    pub sealed_personal: Vec<u8>,
    pub attributes: BTreeMap<String, AttributeValue>,
}

/// One entry of the do-not-call list.
#[derive(Debug, Clone, PartialEq)]
pub struct DncEntry {
    pub phone_key: PhoneKey,
    /// The number, sealed with its phone key as context, so `dnc list` can show it.
    pub sealed_phone: Vec<u8>,
    pub added_at: jiff::Timestamp,
    pub reason: String,
}

/// A write of one customer.
#[derive(Debug, Clone)]
pub struct CustomerWrite {
    pub customer: SealedCustomer,
    /// `None` for a new customer; for an update, the number it had, whose index
    /// entry goes when the number changed.
    pub previous_phone: Option<PhoneKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database in `{path}`: {source}")]
    Open { path: String, source: sled::Error },
    #[error(
        "the database in `{path}` was written by a newer dialhound (format {found}, this build reads up to {supported}); upgrade dialhound or point `data_dir` elsewhere"
    )]
    NewerFormat {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error(
        "the database in `{path}` was written with another key file; start with the key file it was created with"
    )]
    WrongKey { path: String },
    #[error("database error: {0}")]
    Database(#[from] sled::Error),
    #[error("a store writer thread panicked")]
    Panicked,
    #[error("stored {what} is damaged: {error}")]
    DamagedJson {
        what: &'static str,
        error: serde_json::Error,
    },
    #[error("stored record `{key}` is damaged: {error}")]
    Damaged { key: String, error: DecodeError },
}

/// Where customers, the DNC list, each customer's next wake and (later) history,
/// ledger and CDRs live.
///
/// Writes are durable only after [`Store::flush`] returns; nothing is acknowledged
/// to a client before that.
pub trait Store: Send + Sync + 'static {
    fn customer(&self, id: &CustomerId) -> Result<Option<SealedCustomer>, StoreError>;
    fn customer_by_phone(&self, phone: &PhoneKey) -> Result<Option<CustomerId>, StoreError>;
    /// Customers stored, kept as a running count (no scan).
    fn customer_count(&self) -> u64;
    /// Applies writes. Until [`Store::flush`] returns, a crash may keep any part of
    /// them; the importer is idempotent, so importing the file again completes it.
    fn write_customers(&self, writes: &[CustomerWrite]) -> Result<(), StoreError>;
    fn dnc_contains(&self, phone: &PhoneKey) -> Result<bool, StoreError>;
    /// Adds or replaces an entry; true when the number was not listed before.
    fn dnc_add(&self, entry: &DncEntry) -> Result<bool, StoreError>;
    /// True when the number was listed.
    fn dnc_remove(&self, phone: &PhoneKey) -> Result<bool, StoreError>;
    fn dnc_list(&self) -> Result<Vec<DncEntry>, StoreError>;
    /// Sets the customer's next wake in `campaign` to `at`, replacing the
    /// wake it had. Times are kept to the millisecond.
    fn set_wake(
        &self,
        campaign: &str,
        customer: &CustomerId,
        at: jiff::Timestamp,
    ) -> Result<(), StoreError>;
    /// Removes the customer's wake in `campaign`; true when it had one.
    fn clear_wake(&self, campaign: &str, customer: &CustomerId) -> Result<bool, StoreError>;
    /// Up to `limit` wakes before `until`, in time order (ties in customer id order).
    fn wakes_until(
        &self,
        campaign: &str,
        until: jiff::Timestamp,
        limit: usize,
    ) -> Result<Vec<(jiff::Timestamp, CustomerId)>, StoreError> {
        self.wakes_between(campaign, jiff::Timestamp::MIN, until, limit)
    }
    /// Up to `limit` wakes at or after `from` and before `until`, in time order:
    /// the driver refills its wheel from the old horizon to the new one.
    fn wakes_between(
        &self,
        campaign: &str,
        from: jiff::Timestamp,
        until: jiff::Timestamp,
        limit: usize,
    ) -> Result<Vec<(jiff::Timestamp, CustomerId)>, StoreError>;
    /// Up to `limit` customers after `after` (from the first when `None`), in
    /// id order: a campaign's first look at every customer.
    fn customers_after(
        &self,
        after: Option<&CustomerId>,
        limit: usize,
    ) -> Result<Vec<SealedCustomer>, StoreError>;
    /// The customer's contact history, across campaigns.
    fn history(&self, customer: &CustomerId) -> Result<History, StoreError>;
    /// A fresh attempt number, larger than any before, across restarts.
    fn next_attempt_id(&self) -> Result<u64, StoreError>;
    /// Puts attempts in the ledger and counts each as a call in its
    /// customer's history, in one batch. The caller flushes before any of
    /// their INVITEs leave.
    fn begin_attempts(&self, attempts: &[Attempt]) -> Result<(), StoreError>;
    /// Ends an attempt: its CDR is written, its ledger entry goes, and the
    /// customer's history gets the outcome, all at once.
    fn finish_attempt(&self, cdr: &Cdr) -> Result<(), StoreError>;
    /// Attempts begun and not finished: after a crash, the ones that were in
    /// flight.
    fn open_attempts(&self) -> Result<Vec<Attempt>, StoreError>;
    /// Up to `limit` CDRs of `campaign` that ended at or after `since`, in
    /// time order.
    fn cdrs(
        &self,
        campaign: &str,
        since: jiff::Timestamp,
        limit: usize,
    ) -> Result<Vec<Cdr>, StoreError>;
    /// Every campaign's saved state, by name (see `campaign::SavedCampaign`).
    fn campaigns(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    fn save_campaign(&self, name: &str, state: &[u8]) -> Result<(), StoreError>;
    /// A fresh SMS id, larger than any before, across restarts.
    fn next_sms_id(&self) -> Result<u64, StoreError>;
    /// Writes an SMS record, new or changed, with its indexes: the open
    /// SMS, the campaign's and the customer's, and its parts' message ids.
    fn put_sms(&self, record: &SmsRecord) -> Result<(), StoreError>;
    fn sms(&self, id: u64) -> Result<Option<SmsRecord>, StoreError>;
    /// The SMS one of whose parts `provider` named `message_id`.
    fn sms_by_message_id(
        &self,
        provider: &str,
        message_id: &str,
    ) -> Result<Option<u64>, StoreError>;
    /// The SMS still owed a submit (queued, or submitting when the daemon
    /// stopped), in id order.
    fn open_sms(&self) -> Result<Vec<SmsRecord>, StoreError>;
    /// Up to `limit` SMS of `campaign` with ids above `after`, in id order.
    fn campaign_sms(
        &self,
        campaign: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<SmsRecord>, StoreError>;
    /// The SMS whose tracked link has `token`.
    fn sms_by_link(&self, token: &str) -> Result<Option<u64>, StoreError>;
    /// Keeps a click on an SMS's tracked link, and makes it the customer's
    /// `history.last_sms_clicked` when it is the latest.
    fn record_sms_click(
        &self,
        click: &crate::store::sms::SmsClick,
        customer: &CustomerId,
    ) -> Result<(), StoreError>;
    /// The clicks on the SMS's tracked link, oldest first.
    fn sms_clicks(&self, sms: u64) -> Result<Vec<crate::store::sms::SmsClick>, StoreError>;
    /// The customer's SMS, of every campaign, created at or after `since`.
    fn customer_sms_since(
        &self,
        customer: &str,
        since: jiff::Timestamp,
    ) -> Result<Vec<SmsRecord>, StoreError>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;
}
