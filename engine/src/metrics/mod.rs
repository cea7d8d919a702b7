//! Metrics: the daemon's Prometheus registry. It gathers each stage's own
//! counters (the SIP agent's, the campaigns'), counts what the control socket
//! and imports do, and reads the line pool's and the media engine's figures
//! at each scrape; `http` serves what it renders.
//!
//! Owns: the registry and its rendering, the trunk ([`trunks`]) and media
//! ([`media`]) figures read at scrape time.
//!
//! Imports the stages whose counters it registers (`call`, `campaign`,
//! `sms`). No
//! stage below the control socket imports it: a stage counts into its own
//! metrics struct, which this registry holds.

mod media;
mod trunks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dialhound_line_pool::LinePool;

use prometheus::{Encoder, Gauge, GaugeVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::call::metrics::SipMetrics;
use crate::campaign::metrics::CampaignMetrics;
use crate::sms::metrics::SmsMetrics;
use media::MediaMetrics;
use trunks::TrunkMetrics;

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
    pub sms: Arc<SmsMetrics>,
    trunks: Option<TrunkMetrics>,
    media: Option<MediaMetrics>,
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
        let sms = Arc::new(SmsMetrics::new());
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
        .chain(sms.collectors())
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
            sms,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
