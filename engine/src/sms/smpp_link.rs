//! One provider's SMPP link: the TCP connection and the sans-IO session on
//! it, reconnecting with a growing pause, and what its events mean for the
//! SMS records.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialhound_smpp::{
    CloseReason, Event, Message, Receipt, ReceiptState, Sender, Session, Settings, SubmitId,
};
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::outbox::LinkHandle;
use super::rate::TokenBucket;
use super::replies;
use super::shared::Shared;
use crate::config::SmsProviderConfig;
use crate::store::sms::{SmsContent, SmsPart, SmsRecord, SmsStatus};

/// The first pause after a failed connect or a lost session; it doubles up
/// to [`MAX_BACKOFF`] while they keep failing.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// After the SMS center refuses the bind: a configuration fault, so wait
/// long and say so.
const BIND_REFUSED_BACKOFF: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most SMS taken from the outbox at once: marked `submitting` with
/// one flush.
const BATCH: usize = 64;

pub(super) fn start(
    provider: SmsProviderConfig,
    shared: Arc<Shared>,
) -> (LinkHandle, tokio::task::JoinHandle<()>) {
    let (submit_tx, submit_rx) = mpsc::channel(provider.window.max(1) * 4);
    let (bound_tx, bound_rx) = watch::channel(false);
    let handle = LinkHandle {
        name: provider.name.clone(),
        submit: submit_tx,
        bound: bound_rx,
    };
    let task = tokio::spawn(run(provider, shared, submit_rx, bound_tx));
    (handle, task)
}

/// A part the SMS center accepted, on its way to the SMS's record.
struct AcceptedPart {
    sms: u64,
    parts: u8,
    message_id: String,
    /// The SMS's last part: it reads `accepted` now.
    all: bool,
}

/// Writes accepted parts to their SMS records, all in one blocking call.
async fn record_accepted(provider: &str, shared: &Arc<Shared>, accepted: Vec<AcceptedPart>) {
    if accepted.is_empty() {
        return;
    }
    let shared = Arc::clone(shared);
    let provider = provider.to_owned();
    let written = tokio::task::spawn_blocking(move || -> Result<(), crate::store::StoreError> {
        let now = Timestamp::now();
        for part in accepted {
            let Some(mut record) = shared.store.sms(part.sms)? else {
                continue;
            };
            record.part_count = part.parts;
            record.parts.push(SmsPart {
                message_id: part.message_id,
                receipt: None,
                error_code: None,
            });
            let settled = part.all && record.status == SmsStatus::Submitting;
            if settled {
                record.set_status(SmsStatus::Accepted, "", now);
            }
            shared.store.put_sms(&record)?;
            if settled {
                shared.metrics.count(&provider, SmsStatus::Accepted);
            }
        }
        Ok(())
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "cannot record accepted SMS parts"),
        Err(error) => tracing::error!(%error, "the SMS record writer panicked"),
    }
}

/// What the link knows of a message its session holds.
struct InFlight {
    sms: u64,
    accepted: u8,
}

async fn run(
    provider: SmsProviderConfig,
    shared: Arc<Shared>,
    mut submits: mpsc::Receiver<u64>,
    bound: watch::Sender<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut bucket = TokenBucket::new(provider.rate, Instant::now());
    loop {
        let pause = match session(&provider, &shared, &mut submits, &bound, &mut bucket).await {
            Ended::Bound => {
                backoff = FIRST_BACKOFF;
                backoff
            }
            Ended::NotBound => {
                let pause = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                pause
            }
            Ended::BindRefused => BIND_REFUSED_BACKOFF,
            Ended::Stopped => return,
        };
        bound.send_replace(false);
        shared.metrics.set_bound(&provider.name, false);
        tokio::time::sleep(pause).await;
    }
}

enum Ended {
    /// The session was bound for a while, then ended.
    Bound,
    /// The connect or the bind failed.
    NotBound,
    BindRefused,
    /// The outbox is gone: the daemon is stopping.
    Stopped,
}

/// One connection and session, to its end.
async fn session(
    provider: &SmsProviderConfig,
    shared: &Arc<Shared>,
    submits: &mut mpsc::Receiver<u64>,
    bound: &watch::Sender<bool>,
    bucket: &mut TokenBucket,
) -> Ended {
    let name = provider.name.as_str();
    let mut stream = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect(&provider.address),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::warn!(provider = name, address = %provider.address, %error, "cannot connect to the SMS center; trying again");
            return Ended::NotBound;
        }
        Err(_) => {
            tracing::warn!(provider = name, address = %provider.address, "the SMS center did not accept the connection in time; trying again");
            return Ended::NotBound;
        }
    };
    let _ = stream.set_nodelay(true);
    let mut settings = Settings::new(provider.system_id.clone(), provider.password.clone());
    settings.system_type = provider.system_type.clone();
    settings.window = provider.window;
    let mut session = match Session::new(settings, Instant::now()) {
        Ok(session) => session,
        Err(error) => {
            tracing::error!(provider = name, %error, "the [[sms_provider]] settings cannot start an SMPP session");
            return Ended::BindRefused;
        }
    };
    let mut in_flight: HashMap<SubmitId, InFlight> = HashMap::new();
    let mut was_bound = false;
    let mut buffer = vec![0u8; 16 * 1024];
    session.handle_timeout(Instant::now());
    loop {
        while let Some(bytes) = session.poll_transmit() {
            if let Err(error) = stream.write_all(&bytes).await {
                tracing::warn!(provider = name, %error, "cannot write to the SMS center");
                session.connection_lost();
                break;
            }
        }
        // Parts the SMS center accepted are written in one go: one
        // blocking round trip for every answer that came in this read.
        let mut accepted = Vec::new();
        while let Some(event) = session.poll_event() {
            match event {
                Event::Submitted {
                    id,
                    parts,
                    message_id,
                    ..
                } => {
                    let Some(message) = in_flight.get_mut(&id) else {
                        continue;
                    };
                    message.accepted += 1;
                    let all = message.accepted >= parts;
                    accepted.push(AcceptedPart {
                        sms: message.sms,
                        parts,
                        message_id,
                        all,
                    });
                    if all {
                        in_flight.remove(&id);
                    }
                }
                Event::Bound { smsc_system_id } => {
                    was_bound = true;
                    bound.send_replace(true);
                    shared.metrics.set_bound(name, true);
                    tracing::info!(provider = name, smsc = %smsc_system_id, "bound to the SMS center");
                }
                Event::BindRefused(status) => {
                    tracing::error!(provider = name, %status, "the SMS center refused the bind: check the [[sms_provider]] system_id and password");
                }
                Event::Closed { reason } => {
                    record_accepted(name, shared, std::mem::take(&mut accepted)).await;
                    let refused = matches!(reason, CloseReason::BindRefused(_));
                    tracing::warn!(provider = name, %reason, "the SMPP session ended");
                    let open: Vec<(u64, bool)> = in_flight
                        .drain()
                        .map(|(_, message)| (message.sms, true))
                        .collect();
                    requeue(shared, open).await;
                    return if refused {
                        Ended::BindRefused
                    } else if was_bound {
                        Ended::Bound
                    } else {
                        Ended::NotBound
                    };
                }
                event => {
                    // What follows may concern a part accepted just now.
                    record_accepted(name, shared, std::mem::take(&mut accepted)).await;
                    handle_event(name, shared, &mut in_flight, event).await;
                }
            }
        }
        record_accepted(name, shared, accepted).await;
        let now = Instant::now();
        let (queued, unanswered) = session.backlog();
        let room = session.is_bound() && queued + unanswered < provider.window * 2;
        let wait_for_token = bucket.wait(now);
        let wake = session
            .poll_timeout()
            .unwrap_or(now + Duration::from_secs(3600));
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => session.connection_lost(),
                Ok(n) => session.handle_input(&buffer[..n], Instant::now()),
            },
            first = submits.recv(), if room && wait_for_token.is_zero() => {
                let Some(first) = first else {
                    session.close();
                    return Ended::Stopped;
                };
                let mut ids = vec![first];
                while ids.len() < BATCH && bucket.wait(Instant::now()).is_zero() {
                    match submits.try_recv() {
                        Ok(id) if !ids.contains(&id) => ids.push(id),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                for _ in &ids {
                    bucket.try_take(Instant::now());
                }
                submit(name, shared, &mut session, &mut in_flight, ids).await;
            },
            _ = tokio::time::sleep(wait_for_token), if room && !wait_for_token.is_zero() => {},
            _ = tokio::time::sleep_until(wake.into()) => {},
        }
        session.handle_timeout(Instant::now());
    }
}

/// Marks the SMS `submitting` (one flush), then queues them on the session.
async fn submit(
    provider: &str,
    shared: &Arc<Shared>,
    session: &mut Session,
    in_flight: &mut HashMap<SubmitId, InFlight>,
    ids: Vec<u64>,
) {
    let marking = {
        let shared = Arc::clone(shared);
        let provider = provider.to_owned();
        tokio::task::spawn_blocking(move || mark_submitting(&shared, &provider, ids))
    };
    let ready = match marking.await {
        Ok(Ok(ready)) => ready,
        Ok(Err(error)) => {
            tracing::error!(provider, %error, "cannot mark SMS as submitting; they stay queued for the next start");
            return;
        }
        Err(error) => {
            tracing::error!(provider, %error, "the SMS marker panicked");
            return;
        }
    };
    let mut back = Vec::new();
    let mut failed = Vec::new();
    for (record, content) in ready {
        let validity = Timestamp::now()
            .duration_until(record.deadline)
            .try_into()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(60));
        let message = Message {
            from: sender(content.sender.as_deref()),
            to: content.phone.clone(),
            keep_whole: content
                .keep_whole
                .iter()
                .map(|&(start, end)| start..end)
                .collect(),
            text: content.text,
            validity: Some(validity),
        };
        match session.submit(message) {
            Ok(id) => {
                in_flight.insert(
                    id,
                    InFlight {
                        sms: record.id,
                        accepted: 0,
                    },
                );
            }
            Err(
                dialhound_smpp::SubmitError::Closed | dialhound_smpp::SubmitError::QueueFull { .. },
            ) => back.push((record.id, false)),
            Err(error) => failed.push((record.id, error.to_string())),
        }
    }
    requeue(shared, back).await;
    for (id, why) in failed {
        update(shared, id, provider, move |record, now| {
            record.set_status(SmsStatus::Failed, why, now);
        })
        .await;
    }
}

fn mark_submitting(
    shared: &Shared,
    provider: &str,
    ids: Vec<u64>,
) -> Result<Vec<(SmsRecord, SmsContent)>, super::shared::SmsError> {
    let now = Timestamp::now();
    let mut ready = Vec::new();
    for id in ids {
        let Some(mut record) = shared.store.sms(id)? else {
            continue;
        };
        if record.status != SmsStatus::Queued {
            continue;
        }
        if now > record.deadline {
            record.set_status(
                SmsStatus::Expired,
                "its deadline passed before it could leave; not sent late",
                now,
            );
            shared.store.put_sms(&record)?;
            shared.metrics.count(provider, SmsStatus::Expired);
            continue;
        }
        let content = match shared.directory.open_sms(id, &record.sealed) {
            Ok(content) => content,
            Err(error) => {
                record.set_status(
                    SmsStatus::Failed,
                    format!("its sealed text cannot be opened: {error}"),
                    now,
                );
                shared.store.put_sms(&record)?;
                continue;
            }
        };
        let (coding, parts) = dialhound_smpp::text::parts(&content.text);
        record.coding = match coding {
            dialhound_smpp::text::Coding::Gsm7 => "gsm7",
            dialhound_smpp::text::Coding::Ucs2 => "ucs2",
        }
        .to_owned();
        record.part_count = u8::try_from(parts).unwrap_or(u8::MAX);
        record.provider = Some(provider.to_owned());
        record.parts.clear();
        record.submissions += 1;
        record.set_status(SmsStatus::Submitting, provider, now);
        shared.store.put_sms(&record)?;
        shared.metrics.count(provider, SmsStatus::Submitting);
        ready.push((record, content));
    }
    shared.store.flush()?;
    Ok(ready)
}

/// A template's sender id as an SMPP source address.
fn sender(id: Option<&str>) -> Sender {
    match id {
        None => Sender::Default,
        Some(id) if id.starts_with('+') => Sender::International(id.to_owned()),
        Some(id) if id.bytes().all(|b| b.is_ascii_digit()) => Sender::Unknown(id.to_owned()),
        Some(id) => Sender::Alphanumeric(id.to_owned()),
    }
}

/// SMS a session gave back: queued again (an in-doubt one says so).
async fn requeue(shared: &Arc<Shared>, ids: Vec<(u64, bool)>) {
    for (id, in_doubt) in ids {
        let detail = if in_doubt {
            "sent again: the session ended before every part was confirmed, so a part may arrive twice"
        } else {
            "queued again: the session could not take it"
        };
        update(shared, id, "", move |record, now| {
            if record.status == SmsStatus::Submitting {
                record.set_status(SmsStatus::Queued, detail, now);
            }
        })
        .await;
        let _ = shared.outbox.send(id);
    }
}

/// Reads, changes and writes one SMS record off the reactor, counting its
/// new status.
async fn update(
    shared: &Arc<Shared>,
    id: u64,
    provider: &str,
    change: impl FnOnce(&mut SmsRecord, Timestamp) + Send + 'static,
) {
    let shared = Arc::clone(shared);
    let provider = provider.to_owned();
    let written = tokio::task::spawn_blocking(move || -> Result<(), crate::store::StoreError> {
        let Some(mut record) = shared.store.sms(id)? else {
            return Ok(());
        };
        let before = record.status;
        change(&mut record, Timestamp::now());
        shared.store.put_sms(&record)?;
        if record.status != before {
            shared.metrics.count(&provider, record.status);
        }
        Ok(())
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(sms = id, %error, "cannot update an SMS record"),
        Err(error) => tracing::error!(sms = id, %error, "the SMS record writer panicked"),
    }
}

async fn handle_event(
    provider: &str,
    shared: &Arc<Shared>,
    in_flight: &mut HashMap<SubmitId, InFlight>,
    event: Event,
) {
    match event {
        Event::SubmitFailed {
            id,
            part,
            status,
            retry_after: None,
        } => {
            if let Some(message) = in_flight.remove(&id) {
                let why = format!("the SMS center refused part {part}: {status}");
                update(shared, message.sms, provider, move |record, now| {
                    record.set_status(SmsStatus::Failed, why, now);
                })
                .await;
            }
        }
        Event::SubmitFailed { .. } => shared.metrics.retry(provider),
        Event::Abandoned { id, in_doubt } => {
            if let Some(message) = in_flight.remove(&id) {
                requeue(shared, vec![(message.sms, in_doubt)]).await;
            }
        }
        Event::Receipt(receipt) => receipt_came(provider, shared, receipt).await,
        Event::MobileOriginated { from, text, .. } => {
            reply_came(provider, shared, &from, &text).await
        }
        Event::MobileOriginatedPart { from, text, .. } => {
            reply_came(provider, shared, &from, &text).await
        }
        Event::Input(error) => {
            tracing::warn!(provider, %error, "the SMS center sent something unusable")
        }
        Event::Submitted { .. }
        | Event::Bound { .. }
        | Event::BindRefused(_)
        | Event::Closed { .. } => {}
    }
}

async fn receipt_came(provider: &str, shared: &Arc<Shared>, receipt: Receipt) {
    let found = {
        let shared = Arc::clone(shared);
        let provider = provider.to_owned();
        let message_id = receipt.message_id.clone();
        tokio::task::spawn_blocking(move || shared.store.sms_by_message_id(&provider, &message_id))
            .await
    };
    let id = match found {
        Ok(Ok(Some(id))) => id,
        Ok(Ok(None)) => {
            tracing::warn!(provider, message_id = %receipt.message_id, "a receipt for a message id no SMS record has");
            return;
        }
        Ok(Err(error)) => {
            tracing::error!(provider, %error, "cannot look a receipt's message id up");
            return;
        }
        Err(_) => return,
    };
    update(shared, id, provider, move |record, now| {
        let state = receipt.state;
        if let Some(part) = record
            .parts
            .iter_mut()
            .find(|part| part.message_id == receipt.message_id)
        {
            part.receipt = Some(state.stat().to_owned());
            part.error_code = receipt.error_code.clone();
        }
        if let Some(status) = settled(record) {
            let detail = receipt
                .error_code
                .map(|code| format!("receipt {} err {code}", state.stat()))
                .unwrap_or_else(|| format!("receipt {}", state.stat()));
            if record.status != status {
                record.set_status(status, detail, now);
            }
        }
    })
    .await;
}

/// The status every part's receipt adds up to, once each part has a final
/// one: delivered when all were, else the first failure's.
fn settled(record: &SmsRecord) -> Option<SmsStatus> {
    if record.parts.len() < usize::from(record.part_count.max(1)) {
        return None;
    }
    let mut status = SmsStatus::Delivered;
    for part in &record.parts {
        let state = ReceiptState::from_stat(part.receipt.as_deref()?);
        match state {
            _ if !state.is_final() || state == ReceiptState::Unknown => return None,
            ReceiptState::Delivered => {}
            ReceiptState::Expired => return Some(SmsStatus::Expired),
            _ => status = SmsStatus::Undeliverable,
        }
    }
    Some(status)
}

async fn reply_came(provider: &str, shared: &Arc<Shared>, from: &str, text: &str) {
    let opt_out = replies::is_opt_out(text, &shared.settings.opt_out_words);
    shared.metrics.reply(provider, opt_out);
    if !opt_out {
        tracing::info!(provider, "an SMS reply that is not an opt-out");
        return;
    }
    let Some(phone) = replies::e164(from) else {
        tracing::warn!(
            provider,
            "an opt-out reply from an address that is not a number"
        );
        return;
    };
    let directory = shared.directory.clone();
    let reason = format!("replied {:?} by SMS", text.trim());
    let blocked = tokio::task::spawn_blocking(move || -> Result<bool, super::shared::SmsError> {
        let added = directory.block(&phone, &reason, Timestamp::now())?;
        directory.store().flush()?;
        Ok(added)
    })
    .await;
    match blocked {
        Ok(Ok(_)) => tracing::info!(provider, "an SMS opt-out put its number on the DNC list"),
        Ok(Err(error)) => {
            tracing::error!(provider, %error, "cannot put an SMS opt-out's number on the DNC list")
        }
        Err(error) => tracing::error!(provider, %error, "the DNC writer panicked"),
    }
}
