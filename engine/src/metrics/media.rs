//! The media engine's figures, read at each scrape.

use std::sync::{Arc, Mutex};

use prometheus::{GaugeVec, IntGauge};

/// The media engine's figures, read at each scrape.
pub(super) struct MediaMetrics {
    pub(super) engine: Arc<dialhound_media::engine::MediaEngine>,
    pub(super) legs: IntGauge,
    pub(super) realtime_threads: IntGauge,
    pub(super) overload_step_downs: prometheus::IntCounter,
    pub(super) frames_sent: prometheus::IntCounter,
    pub(super) send_failures: prometheus::IntCounter,
    /// Send lateness over the frames sent since the previous scrape.
    pub(super) lateness: GaugeVec,
    /// The engine's totals at the previous scrape.
    pub(super) previous: Mutex<Option<dialhound_media::engine::EngineStats>>,
}

impl MediaMetrics {
    pub(super) fn refresh(&self) {
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
