//! SMS: texts written to the store, then sent through SMS centers.
//!
//! Owns: the SMS record's life after a campaign asks for one. [`SmsSender`]
//! checks the compliance that does not depend on the rules (the DNC list,
//! the per-customer cap), writes the record and flushes it before anything
//! leaves; the `outbox` holds each open SMS until its time and hands it to
//! the first provider that is up; each provider's `smpp_link` owns one
//! SMPP session (`dialhound-smpp`) over TCP, marks what it submits, and
//! turns receipts into statuses and opt-out `replies` into DNC entries;
//! `links` makes each text's tracked link and records its clicks.
//!
//! Must not know: rules, scripts or campaigns' pacing. The campaign renders
//! the text and decides when the policy's hours allow it; this stage only
//! keeps the time it is given.
//!
//! Delivery is at least once: an SMS whose submit may have left when a
//! session or the daemon ended (`submitting` in the store) is sent again,
//! and the record counts its submissions.
//!
//! Imports `store` and `ingest`.

mod links;
pub mod metrics;
mod outbox;
mod rate;
pub mod replies;
mod shared;
mod smpp_link;

use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::mpsc;

use crate::config::{LinksConfig, SmsConfig, SmsProviderConfig};
use crate::ingest::Directory;
use crate::store::sms::{SmsContent, SmsRecord, SmsStatus, TrackedLink};
use crate::store::{Store, StoreError};
pub use links::Visit;
use metrics::SmsMetrics;
use shared::Shared;
pub use shared::SmsError;

/// One SMS a campaign asks for.
#[derive(Debug, Clone)]
pub struct SmsRequest {
    pub campaign: String,
    pub customer: String,
    /// The rule whose `on OUTCOME send sms` asked; empty for a script.
    pub rule: String,
    pub template: String,
    /// `no_answer`, `busy`, …, or `script`.
    pub trigger: String,
    pub attempt: Option<u64>,
    pub content: SmsContent,
    /// When the policy's hours let it go, from now; `None` when they stay
    /// shut until `deadline` (it is recorded as skipped).
    pub not_before: Option<Timestamp>,
    pub deadline: Timestamp,
    /// The providers to try, in order; every provider when empty.
    pub providers: Vec<String>,
    /// The tracked link in the text, from [`SmsSender::new_link`].
    pub link: Option<TrackedLink>,
}

/// What campaigns send SMS with. Cheap to clone.
#[derive(Clone)]
pub struct SmsSender {
    shared: Arc<Shared>,
}

impl SmsSender {
    /// Starts the outbox and one link per provider, and sends again what
    /// the store still holds open.
    pub fn start(
        settings: SmsConfig,
        links: Option<LinksConfig>,
        providers: &[SmsProviderConfig],
        store: Arc<dyn Store>,
        directory: Directory,
        metrics: Arc<SmsMetrics>,
    ) -> (SmsSender, Vec<tokio::task::JoinHandle<()>>) {
        let (outbox_tx, outbox_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            store,
            directory,
            settings,
            links,
            provider_names: providers.iter().map(|p| p.name.clone()).collect(),
            metrics,
            outbox: outbox_tx,
        });
        let mut tasks = Vec::new();
        let mut links = Vec::new();
        for provider in providers {
            let (link, task) = smpp_link::start(provider.clone(), Arc::clone(&shared));
            links.push(link);
            tasks.push(task);
        }
        tasks.push(tokio::spawn(outbox::run(
            Arc::clone(&shared),
            outbox_rx,
            links,
        )));
        (SmsSender { shared }, tasks)
    }

    /// Writes the SMS (flushed) and queues it; blocking, so run it off the
    /// reactor. A number on the DNC list, a customer at the day's cap, or
    /// hours that stay shut are recorded as `skipped` and nothing is sent.
    pub fn queue(&self, request: SmsRequest) -> Result<SmsRecord, SmsError> {
        let shared = &self.shared;
        let now = Timestamp::now();
        let skip = if shared.directory.is_blocked(&request.content.phone)? {
            Some("the number is on the DNC list".to_owned())
        } else if self.sent_today(&request.customer, now)? >= shared.settings.per_day as usize {
            Some(format!(
                "the customer had {} SMS in the last 24 hours, the cap",
                shared.settings.per_day
            ))
        } else if request.not_before.is_none() {
            Some("the policy's hours stay shut until its deadline".to_owned())
        } else if shared.provider_names.is_empty() {
            Some("no [[sms_provider]] is configured".to_owned())
        } else {
            None
        };
        let id = shared.store.next_sms_id()?;
        let mut record = SmsRecord {
            id,
            campaign: request.campaign,
            customer: request.customer,
            rule: request.rule,
            template: request.template,
            trigger: request.trigger,
            attempt: request.attempt,
            created_at: now,
            not_before: request.not_before.unwrap_or(now),
            deadline: request.deadline,
            providers: request.providers,
            provider: None,
            part_count: 0,
            coding: String::new(),
            parts: Vec::new(),
            submissions: 0,
            status: SmsStatus::Queued,
            history: Vec::new(),
            sealed: shared.directory.seal_sms(id, &request.content),
            link: request.link,
        };
        match skip {
            Some(reason) => record.set_status(SmsStatus::Skipped, reason, now),
            None => record.set_status(SmsStatus::Queued, "", now),
        }
        shared.store.put_sms(&record)?;
        shared.store.flush()?;
        shared.metrics.count("", record.status);
        if record.status == SmsStatus::Queued {
            let _ = shared.outbox.send(record.id);
        }
        Ok(record)
    }

    fn sent_today(&self, customer: &str, now: Timestamp) -> Result<usize, StoreError> {
        let since = now - jiff::SignedDuration::from_hours(24);
        Ok(self
            .shared
            .store
            .customer_sms_since(customer, since)?
            .iter()
            .filter(|record| record.status.counts_as_sent())
            .count())
    }
}
