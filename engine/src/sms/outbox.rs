//! The outbox: every open SMS, held until its time, then handed to the
//! first of its providers whose session is bound.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};

use super::shared::Shared;
use crate::store::sms::{SmsRecord, SmsStatus};

/// How a link takes SMS from the outbox.
pub(super) struct LinkHandle {
    pub name: String,
    pub submit: mpsc::Sender<u64>,
    pub bound: watch::Receiver<bool>,
}

/// How long an SMS waits before the outbox tries again when no provider
/// of its is bound.
const RETRY: Duration = Duration::from_millis(500);
/// How long when a bound provider's queue is full: it drains at the
/// provider's pace, so soon.
const FULL_RETRY: jiff::SignedDuration = jiff::SignedDuration::from_millis(5);

pub(super) async fn run(
    shared: Arc<Shared>,
    mut incoming: mpsc::UnboundedReceiver<u64>,
    links: Vec<LinkHandle>,
) {
    let mut due: BTreeSet<(Timestamp, u64)> = BTreeSet::new();
    let mut waiting: HashSet<u64> = HashSet::new();
    let store = Arc::clone(&shared.store);
    let reopened = tokio::task::spawn_blocking(move || reopen(store.as_ref())).await;
    match reopened {
        Ok(Ok(records)) => {
            if !records.is_empty() {
                tracing::info!(
                    count = records.len(),
                    "SMS left open by the last run are queued again"
                );
            }
            for record in records {
                if waiting.insert(record.id) {
                    due.insert((record.not_before, record.id));
                }
            }
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot read the open SMS; they stay in the store unsent")
        }
        Err(error) => tracing::error!(%error, "the open-SMS reader panicked"),
    }
    // While a bound provider's queue is full, the outbox waits until then
    // before it hands anything on.
    let mut full_until = Timestamp::UNIX_EPOCH;
    loop {
        let pause = due
            .first()
            .map(|(at, _)| {
                Timestamp::now()
                    .duration_until((*at).max(full_until))
                    .try_into()
                    .unwrap_or(Duration::ZERO)
            })
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            id = incoming.recv() => match id {
                Some(id) => {
                    if let Ok(Some(record)) = shared.store.sms(id)
                        && record.status == SmsStatus::Queued
                        && waiting.insert(id)
                    {
                        due.insert((record.not_before, id));
                    }
                }
                None => return,
            },
            _ = tokio::time::sleep(pause) => {}
        }
        let now = Timestamp::now();
        while let Some(&(at, id)) = due.first() {
            if at > now || now < full_until {
                break;
            }
            match dispatch(&shared, &links, id, now) {
                Dispatch::Done => {
                    due.pop_first();
                    waiting.remove(&id);
                }
                Dispatch::Later(later) => {
                    due.pop_first();
                    due.insert((later, id));
                }
                // It keeps its place; the rest wait with it.
                Dispatch::Full => {
                    full_until = now + FULL_RETRY;
                    break;
                }
            }
        }
    }
}

/// The open SMS of the last run; one that was being submitted may have
/// left, and is sent again (at least once), its history saying so.
fn reopen(store: &dyn crate::store::Store) -> Result<Vec<SmsRecord>, crate::store::StoreError> {
    let mut records = store.open_sms()?;
    let now = Timestamp::now();
    for record in &mut records {
        if record.status == SmsStatus::Submitting {
            record.set_status(
                SmsStatus::Queued,
                "sent again: the daemon stopped while it was being submitted, so it may arrive twice",
                now,
            );
            store.put_sms(record)?;
        }
    }
    store.flush()?;
    Ok(records)
}

/// What became of an SMS the outbox tried to hand on.
enum Dispatch {
    /// A link took it, or it is no longer queued.
    Done,
    /// None of its providers is bound: try again then.
    Later(Timestamp),
    /// Its bound providers' queues are full.
    Full,
}

/// Hands the SMS to a link.
fn dispatch(shared: &Shared, links: &[LinkHandle], id: u64, now: Timestamp) -> Dispatch {
    let mut record = match shared.store.sms(id) {
        Ok(Some(record)) if record.status == SmsStatus::Queued => record,
        Ok(_) => return Dispatch::Done,
        Err(error) => {
            tracing::error!(sms = id, %error, "cannot read a queued SMS; it stays queued until the next start");
            return Dispatch::Done;
        }
    };
    if now > record.deadline {
        record.set_status(
            SmsStatus::Expired,
            "its deadline passed before a provider could take it; not sent late",
            now,
        );
        if let Err(error) = shared.store.put_sms(&record) {
            tracing::error!(sms = id, %error, "cannot record an expired SMS");
        }
        shared.metrics.count("", SmsStatus::Expired);
        return Dispatch::Done;
    }
    let mut candidates: Vec<&LinkHandle> = if record.providers.is_empty() {
        links.iter().collect()
    } else {
        record
            .providers
            .iter()
            .filter_map(|name| links.iter().find(|link| &link.name == name))
            .collect()
    };
    candidates.sort_by_key(|link| !*link.bound.borrow());
    let mut full = false;
    for link in candidates {
        if !*link.bound.borrow() {
            break;
        }
        match link.submit.try_send(id) {
            Ok(()) => return Dispatch::Done,
            Err(_) => full = true,
        }
    }
    if full {
        Dispatch::Full
    } else {
        Dispatch::Later(now + RETRY)
    }
}
