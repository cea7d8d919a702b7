//! Prometheus metrics and the `GET /metrics` listener.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dialhound_line_pool::{BreakerState, LinePool};

use prometheus::{Encoder, Gauge, GaugeVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The daemon's metrics, registered once.
pub struct Metrics {
    registry: Registry,
    started: Instant,
    uptime: Gauge,
    pub customers: IntGauge,
    pub import_rows: IntCounterVec,
    pub import_rejected_rows: IntCounterVec,
    pub socket_requests: IntCounterVec,
    pub sip: Arc<SipMetrics>,
    pub campaigns: Arc<CampaignMetrics>,
    trunks: Option<TrunkMetrics>,
    media: Option<MediaMetrics>,
}

/// The media engine's figures, read at each scrape.
struct MediaMetrics {
    engine: Arc<dialhound_media::engine::MediaEngine>,
    legs: IntGauge,
    realtime_threads: IntGauge,
    overload_step_downs: prometheus::IntCounter,
    frames_sent: prometheus::IntCounter,
    send_failures: prometheus::IntCounter,
    /// Send lateness over the frames sent since the previous scrape.
    lateness: GaugeVec,
    /// The engine's totals at the previous scrape.
    previous: Mutex<Option<dialhound_media::engine::EngineStats>>,
}

impl MediaMetrics {
    fn refresh(&self) {
        let stats = self.engine.stats();
        let mut previous = self
            .previous
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (frames_before, failures_before, recent) = match previous.as_ref() {
            Some(before) => (
                before.frames_sent,
                before.send_failures,
                stats.lateness.since(&before.lateness),
            ),
            None => (0, 0, stats.lateness.clone()),
        };
        self.legs.set(i64::try_from(stats.legs).unwrap_or(i64::MAX));
        self.realtime_threads
            .set(i64::try_from(self.engine.realtime_workers()).unwrap_or(i64::MAX));
        let step_downs = self.engine.overload_step_downs();
        self.overload_step_downs
            .inc_by(step_downs.saturating_sub(self.overload_step_downs.get()));
        self.frames_sent
            .inc_by(stats.frames_sent.saturating_sub(frames_before));
        self.send_failures
            .inc_by(stats.send_failures.saturating_sub(failures_before));
        for (label, quantile) in [("50", 0.5), ("99", 0.99), ("100", 1.0)] {
            self.lateness
                .with_label_values(&[label])
                .set(recent.quantile(quantile).as_secs_f64());
        }
        *previous = Some(stats);
    }
}

/// What the SIP agent counts.
pub struct SipMetrics {
    pub calls_started: prometheus::IntCounter,
    pub calls: IntCounterVec,
    pub responses: IntCounterVec,
    /// `responses` for 1xx to 6xx, looked up once.
    responses_by_class: [prometheus::IntCounter; 6],
    pub retransmissions: prometheus::IntCounter,
    pub malformed: prometheus::IntCounter,
    pub active_dialogs: IntGauge,
    pub keepalives: IntCounterVec,
}

/// The status classes `dialhound_sip_responses_total` counts, 1xx to 6xx.
const RESPONSE_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

impl SipMetrics {
    fn new() -> SipMetrics {
        let counter = |name: &str, help: &str| {
            prometheus::IntCounter::new(name, help).expect("static metric definition is valid")
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
                .expect("static metric definition is valid")
        };
        let responses = counter_vec(
            "dialhound_sip_responses_total",
            "SIP responses received, by status class.",
            &["class"],
        );
        let responses_by_class =
            RESPONSE_CLASSES.map(|class| responses.with_label_values(&[class]));
        SipMetrics {
            calls_started: counter(
                "dialhound_calls_started_total",
                "Calls whose INVITE was sent.",
            ),
            calls: counter_vec(
                "dialhound_calls_total",
                "Finished calls, by trunk and outcome.",
                &["trunk", "outcome"],
            ),
            responses,
            responses_by_class,
            retransmissions: counter(
                "dialhound_sip_retransmissions_total",
                "SIP requests and responses sent again because no answer came in time.",
            ),
            malformed: counter(
                "dialhound_sip_malformed_messages_total",
                "Datagrams dropped because they were not a usable SIP message.",
            ),
            active_dialogs: IntGauge::new(
                "dialhound_sip_active_dialogs",
                "Answered calls not yet hung up.",
            )
            .expect("static metric definition is valid"),
            keepalives: counter_vec(
                "dialhound_sip_keepalives_total",
                "OPTIONS keepalives to trunks, by trunk and result (ok, timeout).",
                &["trunk", "result"],
            ),
        }
    }

    /// Counts a response we received by its status class.
    pub fn count_response(&self, status: u16) {
        match self
            .responses_by_class
            .get(usize::from(status / 100).wrapping_sub(1))
        {
            Some(counter) => counter.inc(),
            None => self.responses.with_label_values(&["other"]).inc(),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.calls_started.clone()),
            Box::new(self.calls.clone()),
            Box::new(self.responses.clone()),
            Box::new(self.retransmissions.clone()),
            Box::new(self.malformed.clone()),
            Box::new(self.active_dialogs.clone()),
            Box::new(self.keepalives.clone()),
        ]
    }
}

/// What campaigns count and what their pacers measure and decide.
pub struct CampaignMetrics {
    pub attempts: IntCounterVec,
    pacer: GaugeVec,
    ready: prometheus::IntGaugeVec,
}

impl CampaignMetrics {
    fn new() -> CampaignMetrics {
        CampaignMetrics {
            attempts: IntCounterVec::new(
                Opts::new(
                    "dialhound_campaign_attempts_total",
                    "Campaign call attempts ended, by campaign and outcome.",
                ),
                &["campaign", "outcome"],
            )
            .expect("static metric definition is valid"),
            pacer: GaugeVec::new(
                Opts::new(
                    "dialhound_campaign_pacer",
                    "The pacer's measured figures and its decision, by campaign and figure (ringing, connected, answer_rate, abandon_rate, mean_ring_to_answer_seconds, mean_talk_seconds, dial).",
                ),
                &["campaign", "figure"],
            )
            .expect("static metric definition is valid"),
            ready: prometheus::IntGaugeVec::new(
                Opts::new(
                    "dialhound_campaign_ready_customers",
                    "Customers eligible now and waiting for a line, by campaign.",
                ),
                &["campaign"],
            )
            .expect("static metric definition is valid"),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.attempts.clone()),
            Box::new(self.pacer.clone()),
            Box::new(self.ready.clone()),
        ]
    }

    pub fn count_outcome(&self, campaign: &str, outcome: crate::attempt::CallOutcome) {
        self.attempts
            .with_label_values(&[campaign, outcome.name()])
            .inc();
    }

    pub fn observe(&self, campaign: &str, figures: &crate::pacer::PacerFigures, ready: usize) {
        let seconds = |ms: Option<u64>| ms.map_or(0.0, |ms| ms as f64 / 1000.0);
        for (figure, value) in [
            ("ringing", f64::from(figures.ringing)),
            ("connected", f64::from(figures.connected)),
            ("answer_rate", figures.answer_rate),
            ("abandon_rate", figures.abandon_rate),
            (
                "mean_ring_to_answer_seconds",
                seconds(figures.mean_ring_to_answer_ms),
            ),
            ("mean_talk_seconds", seconds(figures.mean_talk_ms)),
            ("dial", f64::from(figures.dial)),
        ] {
            self.pacer.with_label_values(&[campaign, figure]).set(value);
        }
        self.ready
            .with_label_values(&[campaign])
            .set(i64::try_from(ready).unwrap_or(i64::MAX));
    }
}

/// Per-trunk figures, read from the line pool at each scrape.
struct TrunkMetrics {
    pool: Arc<LinePool>,
    active_calls: prometheus::IntGaugeVec,
    channels: prometheus::IntGaugeVec,
    state: prometheus::IntGaugeVec,
    failure_ratio: GaugeVec,
    attempts: IntCounterVec,
    state_changes: IntCounterVec,
    /// Counter values already exported, so each scrape adds only the difference.
    exported: Mutex<HashMap<(String, &'static str), u64>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let build_info = GaugeVec::new(
            Opts::new(
                "dialhound_build_info",
                "Build of the running daemon; the value is always 1.",
            ),
            &["version"],
        )
        .expect("static metric definition is valid");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        let uptime = Gauge::new(
            "dialhound_uptime_seconds",
            "Seconds since the daemon started.",
        )
        .expect("static metric definition is valid");
        let customers = IntGauge::new("dialhound_customers", "Customers in the store.")
            .expect("static metric definition is valid");
        let import_rows = IntCounterVec::new(
            Opts::new(
                "dialhound_import_rows_total",
                "Spreadsheet rows imported, by result (imported, updated, unchanged, rejected).",
            ),
            &["result"],
        )
        .expect("static metric definition is valid");
        let import_rejected_rows = IntCounterVec::new(
            Opts::new(
                "dialhound_import_rejected_rows_total",
                "Spreadsheet rows rejected, by reason.",
            ),
            &["reason"],
        )
        .expect("static metric definition is valid");
        let socket_requests = IntCounterVec::new(
            Opts::new(
                "dialhound_socket_requests_total",
                "Control socket requests, by command and result (ok or an error code).",
            ),
            &["command", "result"],
        )
        .expect("static metric definition is valid");
        let sip = Arc::new(SipMetrics::new());
        let campaigns = Arc::new(CampaignMetrics::new());
        for collector in [
            Box::new(build_info) as Box<dyn prometheus::core::Collector>,
            Box::new(uptime.clone()),
            Box::new(customers.clone()),
            Box::new(import_rows.clone()),
            Box::new(import_rejected_rows.clone()),
            Box::new(socket_requests.clone()),
        ]
        .into_iter()
        .chain(sip.collectors())
        .chain(campaigns.collectors())
        {
            registry
                .register(collector)
                .expect("each metric is registered once");
        }
        Metrics {
            registry,
            started: Instant::now(),
            uptime,
            customers,
            import_rows,
            import_rejected_rows,
            socket_requests,
            sip,
            campaigns,
            trunks: None,
            media: None,
        }
    }

    /// Exports per-trunk figures from `pool` at each scrape.
    pub fn watch_trunks(&mut self, pool: Arc<LinePool>) {
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            prometheus::IntGaugeVec::new(Opts::new(name, help), labels)
                .expect("static metric definition is valid")
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
                .expect("static metric definition is valid")
        };
        let trunks = TrunkMetrics {
            pool,
            active_calls: gauge(
                "dialhound_trunk_active_calls",
                "Calls in progress on a trunk.",
                &["trunk"],
            ),
            channels: gauge(
                "dialhound_trunk_channels",
                "Concurrent calls a trunk allows.",
                &["trunk"],
            ),
            state: gauge(
                "dialhound_trunk_state",
                "1 for a trunk's current health state (closed, half_open, open), 0 otherwise.",
                &["trunk", "state"],
            ),
            failure_ratio: GaugeVec::new(
                Opts::new(
                    "dialhound_trunk_failure_ratio",
                    "Share of trunk-side failures over the trunk's health window.",
                ),
                &["trunk"],
            )
            .expect("static metric definition is valid"),
            attempts: counter(
                "dialhound_trunk_attempts_total",
                "Call attempts on a trunk, by result.",
                &["trunk", "result"],
            ),
            state_changes: counter(
                "dialhound_trunk_state_changes_total",
                "Health state changes of a trunk.",
                &["trunk"],
            ),
            exported: Mutex::new(HashMap::new()),
        };
        for collector in [
            Box::new(trunks.active_calls.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(trunks.channels.clone()),
            Box::new(trunks.state.clone()),
            Box::new(trunks.failure_ratio.clone()),
            Box::new(trunks.attempts.clone()),
            Box::new(trunks.state_changes.clone()),
        ] {
            self.registry
                .register(collector)
                .expect("each metric is registered once");
        }
        self.trunks = Some(trunks);
    }

    /// Exports the media engine's legs, frames and send lateness at each
    /// scrape.
    pub fn watch_media(&mut self, engine: Arc<dialhound_media::engine::MediaEngine>) {
        let media = MediaMetrics {
            engine,
            legs: IntGauge::new("dialhound_media_legs", "RTP legs open (one per call with media).")
                .expect("static metric definition is valid"),
            realtime_threads: IntGauge::new(
                "dialhound_media_realtime_threads",
                "Media threads running with real-time scheduling (SCHED_FIFO) now, out of [media] workers.",
            )
            .expect("static metric definition is valid"),
            overload_step_downs: prometheus::IntCounter::new(
                "dialhound_media_overload_step_downs_total",
                "Times a media thread left real-time scheduling because it kept a core over 93 % busy for a second (it goes back under 75 %).",
            )
            .expect("static metric definition is valid"),
            frames_sent: prometheus::IntCounter::new(
                "dialhound_media_frames_sent_total",
                "RTP frames sent by the media threads.",
            )
            .expect("static metric definition is valid"),
            send_failures: prometheus::IntCounter::new(
                "dialhound_media_send_failures_total",
                "RTP frames the sockets refused or failed to send.",
            )
            .expect("static metric definition is valid"),
            lateness: GaugeVec::new(
                Opts::new(
                    "dialhound_media_send_lateness_seconds",
                    "How late RTP frames left against their schedule, over the frames sent since the previous scrape, by percentile (50, 99, and 100 for the maximum).",
                ),
                &["percentile"],
            )
            .expect("static metric definition is valid"),
            previous: Mutex::new(None),
        };
        for collector in [
            Box::new(media.legs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(media.realtime_threads.clone()),
            Box::new(media.overload_step_downs.clone()),
            Box::new(media.frames_sent.clone()),
            Box::new(media.send_failures.clone()),
            Box::new(media.lateness.clone()),
        ] {
            self.registry
                .register(collector)
                .expect("each metric is registered once");
        }
        self.media = Some(media);
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The exposition text, in Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        self.uptime.set(self.started.elapsed().as_secs_f64());
        if let Some(trunks) = &self.trunks {
            trunks.refresh();
        }
        if let Some(media) = &self.media {
            media.refresh();
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding of gathered metrics does not fail");
        String::from_utf8(out).expect("the text encoder writes UTF-8")
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl TrunkMetrics {
    fn refresh(&self) {
        let mut exported = self
            .exported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut add = |counter: prometheus::IntCounter, key: (String, &'static str), value: u64| {
            let last = exported.entry(key).or_insert(0);
            counter.inc_by(value.saturating_sub(*last));
            *last = value;
        };
        for trunk in self.pool.snapshot(Instant::now()) {
            let name = trunk.name.as_str();
            self.active_calls
                .with_label_values(&[name])
                .set(i64::from(trunk.active_calls));
            self.channels
                .with_label_values(&[name])
                .set(i64::from(trunk.channels));
            for state in [
                BreakerState::Closed,
                BreakerState::HalfOpen,
                BreakerState::Open,
            ] {
                self.state
                    .with_label_values(&[name, state.name()])
                    .set(i64::from(trunk.state == state));
            }
            self.failure_ratio
                .with_label_values(&[name])
                .set(trunk.window.failure_rate);
            for (result, count) in &trunk.attempts_by_result {
                add(
                    self.attempts.with_label_values(&[name, result]),
                    (trunk.name.clone(), result),
                    *count,
                );
            }
            add(
                self.state_changes.with_label_values(&[name]),
                (trunk.name.clone(), "state_changes"),
                trunk.state_changes,
            );
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves `GET /metrics` until the task is dropped. This is a scrape endpoint only:
/// one small request per connection, answered and closed.
pub async fn serve(
    listener: TcpListener,
    render: impl Fn() -> String + Send + Sync + Clone + 'static,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut request = [0u8; 2048];
            let mut read = 0;
            // Read until the end of the request head, a full buffer, or EOF.
            while read < request.len() {
                match stream.read(&mut request[read..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
                if request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&request[..read]);
            let (status, content_type, body) =
                match head.split_whitespace().take(2).collect::<Vec<_>>()[..] {
                    ["GET", "/metrics"] => (
                        "200 OK",
                        "text/plain; version=0.0.4; charset=utf-8",
                        render(),
                    ),
                    ["GET", _] => (
                        "404 Not Found",
                        "text/plain",
                        "only /metrics is served here\n".to_owned(),
                    ),
                    _ => (
                        "400 Bad Request",
                        "text/plain",
                        "expected GET /metrics\n".to_owned(),
                    ),
                };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_by_class() {
        let metrics = SipMetrics::new();
        for status in [100, 180, 200, 486, 503, 603, 99, 700] {
            metrics.count_response(status);
        }
        let count = |class: &str| metrics.responses.with_label_values(&[class]).get();
        assert_eq!(
            ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "other"].map(count),
            [2, 1, 0, 1, 1, 1, 2]
        );
    }
}
