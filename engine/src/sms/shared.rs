//! What the sender, the outbox and the provider links share.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::metrics::SmsMetrics;
use crate::config::{LinksConfig, SmsConfig};
use crate::ingest::Directory;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Directory(#[from] crate::ingest::directory::DirectoryError),
    #[error("no free tracked-link token after several draws")]
    NoFreeLink,
}

/// What the sender, the outbox and the links share.
pub(super) struct Shared {
    pub store: Arc<dyn Store>,
    pub directory: Directory,
    pub settings: SmsConfig,
    /// `[links]`: tracked links on, and how texts write them.
    pub links: Option<LinksConfig>,
    /// The providers, in file order; the outbox chooses among them.
    pub provider_names: Vec<String>,
    pub metrics: Arc<SmsMetrics>,
    pub outbox: mpsc::UnboundedSender<u64>,
}
