//! Per-trunk figures, read from the line pool at each scrape.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dialhound_line_pool::{BreakerState, LinePool};
use prometheus::{GaugeVec, IntCounterVec};

/// Per-trunk figures, read from the line pool at each scrape.
pub(super) struct TrunkMetrics {
    pub(super) pool: Arc<LinePool>,
    pub(super) active_calls: prometheus::IntGaugeVec,
    pub(super) channels: prometheus::IntGaugeVec,
    pub(super) state: prometheus::IntGaugeVec,
    pub(super) failure_ratio: GaugeVec,
    pub(super) attempts: IntCounterVec,
    pub(super) state_changes: IntCounterVec,
    /// Counter values already exported, so each scrape adds only the difference.
    pub(super) exported: Mutex<HashMap<(String, &'static str), u64>>,
}

impl TrunkMetrics {
    pub(super) fn refresh(&self) {
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
