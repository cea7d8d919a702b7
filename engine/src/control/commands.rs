//! What each control-socket command does.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dialhound_line_pool::TierFallback;
use dialhound_media::encoded::EncodedPrompt;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::call::dial::{Dial, DialError, Route};
use crate::call::report::CallReport;
use crate::control::protocol::{ErrorBody, Event, Request, Response};
use crate::ingest::ColumnMapping;
use crate::ingest::directory::Directory;
use crate::ingest::import::{ImportJob, ImportSummary};
use crate::ingest::phone::E164;
use crate::metrics::Metrics;
use crate::store::customer::CustomerId;
use crate::store::sms::{SmsListing, SmsRecord};

/// Everything a command may touch, shared by all connections.
pub struct Control {
    pub directory: Directory,
    pub trunks: Arc<dialhound_line_pool::LinePool>,
    pub metrics: Arc<Metrics>,
    pub data_dir: PathBuf,
    pub default_mapping: ColumnMapping,
    pub sip: crate::call::sip_agent::SipAgent,
    /// Speaks the `say` of operator calls.
    pub tts: Arc<dialhound_media::tts::TtsEngine>,
    pub campaigns: Arc<crate::campaign::Campaigns>,
}

#[derive(Serialize)]
struct Status<'a> {
    version: &'a str,
    uptime_seconds: u64,
    customers: u64,
    data_dir: &'a str,
}

impl Control {
    /// Handles one request; `events` receives progress lines for long commands.
    pub async fn handle(
        self: &Arc<Self>,
        request: Request,
        events: mpsc::Sender<Event>,
    ) -> Response {
        let command = request.command();
        let response = match self.dispatch(request, events).await {
            Ok(response) => response,
            Err(error) => Response::failure(error),
        };
        let result = response.error.as_ref().map_or("ok", |e| e.code.as_str());
        self.metrics
            .socket_requests
            .with_label_values(&[command, result])
            .inc();
        response
    }

    async fn dispatch(
        self: &Arc<Self>,
        request: Request,
        events: mpsc::Sender<Event>,
    ) -> Result<Response, ErrorBody> {
        match request {
            Request::Status => Ok(Response::success(Status {
                version: env!("CARGO_PKG_VERSION"),
                uptime_seconds: self.metrics.uptime().as_secs(),
                customers: self.directory.store().customer_count(),
                data_dir: &self.data_dir.display().to_string(),
            })),
            Request::Import {
                path,
                mapping,
                rejects,
                progress,
            } => {
                if !path.is_absolute() {
                    return Err(ErrorBody::new(
                        "invalid_request",
                        format!(
                            "import path `{}` must be absolute: the daemon may run in another directory",
                            path.display()
                        ),
                    ));
                }
                let job = ImportJob {
                    path,
                    mapping: mapping.unwrap_or_else(|| self.default_mapping.clone()),
                    rejects,
                };
                let summary = self
                    .blocking(move |control| {
                        let mut report = |p: crate::ingest::import::ImportProgress| {
                            if progress {
                                let _ = events.try_send(Event::Progress {
                                    rows: p.rows,
                                    fraction: p.fraction,
                                });
                            }
                        };
                        control
                            .directory
                            .import(&job, &mut report)
                            .map_err(|error| ErrorBody::new(error.code(), error.to_string()))
                    })
                    .await?;
                self.count_import(&summary);
                if summary.imported + summary.updated > 0 {
                    self.campaigns.customers_imported().await;
                }
                Ok(Response::success(summary))
            }
            Request::CustomerShow { id } => {
                let id = CustomerId::parse(&id).ok_or_else(|| {
                    ErrorBody::new(
                        "invalid_request",
                        "a customer id is 1 to 64 characters without spaces",
                    )
                })?;
                let shown = id.to_string();
                let customer = self
                    .blocking(move |control| control.directory.customer(&id).map_err(internal))
                    .await?;
                customer.map(Response::success).ok_or_else(|| {
                    ErrorBody::new("not_found", format!("no customer with id `{shown}`"))
                })
            }
            Request::CustomerFind { phone } => {
                let phone = self.parse_phone(&phone)?;
                let customer = self
                    .blocking(move |control| {
                        control
                            .directory
                            .customer_by_phone(&phone)
                            .map_err(internal)
                    })
                    .await?;
                customer
                    .map(Response::success)
                    .ok_or_else(|| ErrorBody::new("not_found", "no customer has this number"))
            }
            Request::DncAdd { phone, reason } => {
                let phone = self.parse_phone(&phone)?;
                let reason = reason.unwrap_or_else(|| "operator".to_owned());
                let shown = phone.as_str().to_owned();
                let added = self
                    .blocking(move |control| {
                        control
                            .directory
                            .dnc_add(&phone, &reason, jiff::Timestamp::now())
                            .map_err(internal)
                    })
                    .await?;
                Ok(Response::success(json!({ "phone": shown, "added": added })))
            }
            Request::DncRemove { phone } => {
                let phone = self.parse_phone(&phone)?;
                let shown = phone.as_str().to_owned();
                let removed = self
                    .blocking(move |control| control.directory.dnc_remove(&phone).map_err(internal))
                    .await?;
                Ok(Response::success(
                    json!({ "phone": shown, "removed": removed }),
                ))
            }
            Request::TrunkList => Ok(Response::success(
                self.trunks.snapshot(std::time::Instant::now()),
            )),
            Request::TrunkDrain { name } => {
                self.trunk_admin(&name, |pool| pool.drain(&name), "drained")
            }
            Request::TrunkEnable { name } => {
                self.trunk_admin(&name, |pool| pool.enable(&name), "enabled")
            }
            Request::Call {
                trunk,
                tier,
                same_tier,
                to,
                hold_seconds,
                ring_timeout_seconds,
                count,
                rate,
                say,
                play,
                no_media,
                record,
                no_barge_in,
            } => {
                let prompts = self.prompts(say, play).await?;
                let dial = Dial {
                    route: self.route(trunk.as_deref(), tier.as_deref(), same_tier)?,
                    to_user: self.parse_phone(&to)?.as_str().to_owned(),
                    hold: seconds(hold_seconds, "hold_seconds")?.unwrap_or_default(),
                    ring_timeout: seconds(ring_timeout_seconds, "ring_timeout_seconds")?,
                    with_media: !no_media,
                    prompts,
                    record,
                    barge_in: !no_barge_in,
                };
                match count {
                    Some(count) if count > 1 && dial.record.is_some() => Err(ErrorBody::new(
                        "invalid_request",
                        "`record` is for one call; a load test records nothing",
                    )),
                    Some(count) if count > 1 => {
                        let rate = rate.unwrap_or(10.0);
                        if !(rate > 0.0 && rate <= 100_000.0) {
                            return Err(ErrorBody::new(
                                "invalid_request",
                                "`rate` must be between 0 and 100000 calls per second",
                            ));
                        }
                        Ok(self.load_test(dial, count, rate).await)
                    }
                    _ => {
                        let report = self.sip.dial(dial).await.map_err(dial_error)?;
                        Ok(Response::success(report))
                    }
                }
            }
            Request::CampaignStart { name } => {
                self.campaigns.start(&name).await.map_err(campaign_error)?;
                self.campaign_shown(&name).await
            }
            Request::CampaignPause { name } => {
                self.campaigns.pause(&name).await.map_err(campaign_error)?;
                self.campaign_shown(&name).await
            }
            Request::CampaignResume { name } => {
                self.campaigns.resume(&name).await.map_err(campaign_error)?;
                self.campaign_shown(&name).await
            }
            Request::CampaignStop { name } => {
                self.campaigns.stop(&name).await.map_err(campaign_error)?;
                self.campaign_shown(&name).await
            }
            Request::CampaignShow { name } => self.campaign_shown(&name).await,
            Request::CampaignList => Ok(Response::success(self.campaigns.list().await)),
            Request::Reload => {
                let reloaded = self.campaigns.reload().await.map_err(campaign_error)?;
                Ok(Response::success(json!({ "reloaded": reloaded })))
            }
            Request::Cdr {
                campaign,
                since,
                limit,
            } => {
                self.campaigns.known(&campaign).map_err(campaign_error)?;
                let since = match since {
                    Some(text) => text.parse::<jiff::Timestamp>().map_err(|error| {
                        ErrorBody::new(
                            "invalid_request",
                            format!("`since` must be an RFC 3339 time such as 2026-11-23T09:00:00+08:00: {error}"),
                        )
                    })?,
                    None => jiff::Timestamp::MIN,
                };
                let limit = limit.unwrap_or(100_000);
                let cdrs = self
                    .blocking(move |control| {
                        control
                            .directory
                            .store()
                            .cdrs(&campaign, since, limit)
                            .map_err(internal)
                    })
                    .await?;
                Ok(Response::success(cdrs))
            }
            Request::Sms {
                campaign,
                after,
                limit,
            } => {
                self.campaigns.known(&campaign).map_err(campaign_error)?;
                let limit = limit.unwrap_or(100_000);
                let listings = self
                    .blocking(move |control| {
                        let store = control.directory.store();
                        let records = store
                            .campaign_sms(&campaign, after.unwrap_or(0), limit)
                            .map_err(internal)?;
                        records
                            .into_iter()
                            .map(|record| {
                                let clicks = if record.link.is_some() {
                                    store.sms_clicks(record.id).map_err(internal)?
                                } else {
                                    Vec::new()
                                };
                                // The sealed number and text stay in the store.
                                let record = SmsRecord {
                                    sealed: Vec::new(),
                                    ..record
                                };
                                Ok(SmsListing { record, clicks })
                            })
                            .collect::<Result<Vec<_>, ErrorBody>>()
                    })
                    .await?;
                Ok(Response::success(listings))
            }
            Request::DncList => {
                let listings = self
                    .blocking(|control| control.directory.dnc_list().map_err(internal))
                    .await?;
                Ok(Response::success(listings))
            }
        }
    }

    async fn campaign_shown(&self, name: &str) -> Result<Response, ErrorBody> {
        let status = self.campaigns.show(name).await.map_err(campaign_error)?;
        Ok(Response::success(status))
    }

    /// The prompts of an operator's call: `say` spoken by espeak-ng, then the
    /// WAV file `play`.
    async fn prompts(
        &self,
        say: Option<String>,
        play: Option<PathBuf>,
    ) -> Result<Vec<EncodedPrompt>, ErrorBody> {
        let tts = Arc::clone(&self.tts);
        tokio::task::spawn_blocking(move || {
            let mut prompts = Vec::new();
            if let Some(text) = say {
                let spoken = tts
                    .speak(&text)
                    .map_err(|error| ErrorBody::new("prompt", error.to_string()))?;
                prompts.push(EncodedPrompt::from_pcm_8k(spoken.samples()));
            }
            if let Some(path) = play {
                let audio = dialhound_media::prompt::load_wav(&path)
                    .map_err(|error| ErrorBody::new("prompt", error.to_string()))?;
                prompts.push(EncodedPrompt::from_pcm_8k(audio.samples()));
            }
            Ok(prompts)
        })
        .await
        .map_err(internal)?
    }

    /// Where an operator's call goes: the named trunk, or the named tier (the
    /// first tier when neither is named) with failover.
    fn route(
        &self,
        trunk: Option<&str>,
        tier: Option<&str>,
        same_tier: bool,
    ) -> Result<Route, ErrorBody> {
        match (trunk, tier) {
            (Some(_), Some(_)) => Err(ErrorBody::new(
                "invalid_request",
                "name a trunk or a tier, not both",
            )),
            (Some(name), None) => self
                .trunks
                .trunk_id(name)
                .map(Route::Trunk)
                .ok_or_else(|| ErrorBody::new("not_found", format!("no trunk named `{name}`"))),
            (None, tier) => {
                let tiers = self.trunks.tiers();
                let tier = match tier {
                    Some(tier) if tiers.iter().any(|known| known == tier) => tier.to_owned(),
                    Some(tier) => {
                        return Err(ErrorBody::new(
                            "not_found",
                            format!(
                                "no trunk has tier `{tier}`; the tiers are: {}",
                                tiers.join(", ")
                            ),
                        ));
                    }
                    None => tiers
                        .first()
                        .cloned()
                        .ok_or_else(|| ErrorBody::new("not_found", "no [[trunk]] is configured"))?,
                };
                Ok(Route::Tier {
                    tier,
                    fallback: if same_tier {
                        TierFallback::SameTierOnly
                    } else {
                        TierFallback::LaterTiers
                    },
                })
            }
        }
    }

    /// Places `count` calls at `rate` per second and sums up their outcomes:
    /// the operator's load test of a trunk or a tier, and the call-rate benchmark.
    async fn load_test(self: &Arc<Self>, dial: Dial, count: u32, rate: f64) -> Response {
        let started = tokio::time::Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        // A call on one trunk without media cannot fail over and has no
        // conversation to drive: the agent alone carries it, no task needed.
        let agent_alone = !dial.with_media && matches!(dial.route, Route::Trunk(_));
        let mut placed = Vec::new();
        let mut refused = 0u64;
        let mut errors = 0u64;
        for index in 0..count {
            tokio::time::sleep_until(started + start_tick(call_due(index, rate))).await;
            // Reserved here, in order: tasks racing for the trunk's call-rate
            // slots would each wake on the timer's millisecond and mostly lose.
            // A call waits for a line no longer than until the next is due, so
            // a trunk that refuses every call (open, drained) does not hold
            // the test a second per call.
            let give_up = line_wait_ends(started, index, rate, tokio::time::Instant::now());
            let reservation = match self.sip.reserve_by(&dial.route, &[], give_up).await {
                Ok(reservation) => reservation,
                Err(_) => {
                    refused += 1;
                    continue;
                }
            };
            if agent_alone {
                match self.sip.place(dial.order(reservation)).await {
                    Ok(call) => placed.push(call),
                    Err(_) => errors += 1,
                }
                continue;
            }
            let sip = self.sip.clone();
            let dial = dial.clone();
            calls.spawn(async move { sip.dial_reserved(dial, Some(reservation)).await });
        }
        let placing_seconds = started.elapsed().as_secs_f64();
        let mut outcomes = BTreeMap::<String, u64>::new();
        let mut by_trunk = BTreeMap::<String, BTreeMap<&'static str, u64>>::new();
        let mut failovers_by_trunk = BTreeMap::<String, u64>::new();
        let mut retransmissions = 0u64;
        let mut tally = |report: Result<CallReport, DialError>| match report {
            Ok(report) => {
                retransmissions += report.retransmissions;
                *outcomes.entry(report.outcome.to_owned()).or_default() += 1;
                *by_trunk
                    .entry(report.trunk.clone())
                    .or_default()
                    .entry(report.outcome)
                    .or_default() += 1;
                for failed in &report.failovers {
                    *failovers_by_trunk.entry(failed.trunk.clone()).or_default() += 1;
                }
            }
            Err(DialError::TrunkUnavailable(_) | DialError::NoTrunk(_)) => refused += 1,
            Err(_) => errors += 1,
        };
        for call in placed {
            tally(call.await.map_err(DialError::from));
        }
        let mut panicked = 0u64;
        while let Some(joined) = calls.join_next().await {
            match joined {
                Ok(report) => tally(report),
                Err(_) => panicked += 1,
            }
        }
        errors += panicked;
        Response::success(json!({
            "calls": count,
            "rate": rate,
            "outcomes": outcomes,
            "by_trunk": by_trunk,
            "failovers": failovers_by_trunk.values().sum::<u64>(),
            "failovers_by_trunk": failovers_by_trunk,
            "refused_by_trunk_limits": refused,
            // Requests sent again for want of an answer, up to each call's
            // outcome: a sign of loss on the way.
            "retransmissions": retransmissions,
            "errors": errors,
            "placing_seconds": placing_seconds,
            "elapsed_seconds": started.elapsed().as_secs_f64(),
        }))
    }

    fn trunk_admin(
        &self,
        name: &str,
        change: impl FnOnce(&dialhound_line_pool::LinePool) -> bool,
        done: &str,
    ) -> Result<Response, ErrorBody> {
        if change(&self.trunks) {
            tracing::info!(trunk = name, "trunk {done} by an operator");
            Ok(Response::success(json!({ "trunk": name, "admin": done })))
        } else {
            Err(ErrorBody::new(
                "not_found",
                format!("no trunk named `{name}`"),
            ))
        }
    }

    fn parse_phone(&self, written: &str) -> Result<E164, ErrorBody> {
        E164::parse(written, self.directory.settings().region)
            .map_err(|error| ErrorBody::new("invalid_phone", format!("`{written}`: {error}")))
    }

    fn count_import(&self, summary: &ImportSummary) {
        let rows = &self.metrics.import_rows;
        rows.with_label_values(&["imported"])
            .inc_by(summary.imported);
        rows.with_label_values(&["updated"]).inc_by(summary.updated);
        rows.with_label_values(&["unchanged"])
            .inc_by(summary.unchanged);
        rows.with_label_values(&["rejected"])
            .inc_by(summary.rejected_total());
        for (reason, count) in &summary.rejected {
            self.metrics
                .import_rejected_rows
                .with_label_values(&[reason])
                .inc_by(*count);
        }
        self.metrics
            .customers
            .set(self.directory.store().customer_count() as i64);
    }

    /// Runs store work off the reactor.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Control) -> Result<T, ErrorBody> + Send + 'static,
    ) -> Result<T, ErrorBody> {
        let control = Arc::clone(self);
        tokio::task::spawn_blocking(move || work(&control))
            .await
            .map_err(|error| ErrorBody::new("internal", format!("the request failed: {error}")))?
    }
}

/// A number of seconds from a request, as a duration of at most a day.
fn seconds(value: Option<f64>, field: &str) -> Result<Option<Duration>, ErrorBody> {
    value
        .map(|seconds| {
            Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|duration| *duration <= Duration::from_secs(86_400))
                .ok_or_else(|| {
                    ErrorBody::new(
                        "invalid_request",
                        format!("`{field}` must be between 0 and 86400 seconds"),
                    )
                })
        })
        .transpose()
}

/// When the load test's call `index` is due, after its start.
fn call_due(index: u32, rate: f64) -> Duration {
    Duration::from_secs_f64(f64::from(index) / rate)
}

/// How often the load test wakes to start calls: the calls due within one
/// tick start together, so a test at 1,000 calls a second wakes 200 times a
/// second, not 1,000, and still keeps its rate.
const LOAD_TEST_TICK: Duration = Duration::from_millis(5);

/// The end of the tick a call due `due` after the start falls in.
fn start_tick(due: Duration) -> Duration {
    let tick = LOAD_TEST_TICK.as_nanos();
    let ticks = due.as_nanos().div_ceil(tick);
    Duration::from_nanos(u64::try_from(ticks * tick).unwrap_or(u64::MAX))
}

/// How long the load test's call `index` may wait for a line: until the
/// next call is due (at least a millisecond from `now`), never the full
/// second a single call may wait, so a trunk that refuses every call
/// cannot hold the test a second per call.
fn line_wait_ends(
    started: tokio::time::Instant,
    index: u32,
    rate: f64,
    now: tokio::time::Instant,
) -> tokio::time::Instant {
    (started + call_due(index.saturating_add(1), rate)).max(now + Duration::from_millis(1))
}

fn campaign_error(error: crate::campaign::CampaignError) -> ErrorBody {
    use crate::campaign::CampaignError;
    let code = match &error {
        CampaignError::Unknown(..) => "not_found",
        CampaignError::NotRunning(_) | CampaignError::AlreadyRunning(_) => "conflict",
        CampaignError::Rules { .. } => "rules",
        CampaignError::Store(..) => "internal",
    };
    ErrorBody::new(code, error.to_string())
}

fn dial_error(error: DialError) -> ErrorBody {
    let code = match &error {
        DialError::Agent(_) => "call_failed",
        DialError::TrunkUnavailable(_) | DialError::NoTrunk(_) => "trunk_unavailable",
    };
    ErrorBody::new(code, error.to_string())
}

fn internal(error: impl std::fmt::Display) -> ErrorBody {
    ErrorBody::new("store", error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_test_call_waits_for_a_line_until_the_next_is_due_and_no_longer() {
        let started = tokio::time::Instant::now();
        // 200 calls a second: call 0 at 0 ms, call 1 at 5 ms.
        assert_eq!(
            line_wait_ends(started, 0, 200.0, started),
            started + Duration::from_millis(5)
        );
        assert_eq!(
            line_wait_ends(started, 39, 200.0, started + Duration::from_millis(195)),
            started + Duration::from_millis(200)
        );
        // Behind schedule: a millisecond's try, not the single call's second.
        let late = started + Duration::from_secs(3);
        assert_eq!(
            line_wait_ends(started, 1, 200.0, late),
            late + Duration::from_millis(1)
        );
    }

    #[test]
    fn load_test_calls_start_at_the_end_of_their_tick() {
        let ms = Duration::from_millis;
        assert_eq!(start_tick(Duration::ZERO), Duration::ZERO);
        assert_eq!(start_tick(ms(1)), ms(5));
        assert_eq!(start_tick(ms(5)), ms(5));
        assert_eq!(start_tick(ms(5) + Duration::from_nanos(1)), ms(10));
        // 1,000 calls a second: five calls to a tick, the rate kept.
        let ticks: Vec<Duration> = (0..10).map(|i| start_tick(call_due(i, 1000.0))).collect();
        assert_eq!(ticks.iter().filter(|&&tick| tick == ms(5)).count(), 5);
        assert_eq!(start_tick(call_due(1000, 1000.0)), Duration::from_secs(1));
    }
}
