//! What campaigns count and what their pacers measure and decide, registered
//! by the daemon's metrics registry.

use prometheus::{GaugeVec, IntCounterVec, Opts};

use crate::campaign::pacer::PacerFigures;
use crate::store::attempt::CallOutcome;

/// What campaigns count and what their pacers measure and decide.
pub struct CampaignMetrics {
    pub attempts: IntCounterVec,
    pacer: GaugeVec,
    ready: prometheus::IntGaugeVec,
}

impl CampaignMetrics {
    pub(crate) fn new() -> CampaignMetrics {
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

    pub(crate) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.attempts.clone()),
            Box::new(self.pacer.clone()),
            Box::new(self.ready.clone()),
        ]
    }

    pub fn count_outcome(&self, campaign: &str, outcome: CallOutcome) {
        self.attempts
            .with_label_values(&[campaign, outcome.name()])
            .inc();
    }

    pub fn observe(&self, campaign: &str, figures: &PacerFigures, ready: usize) {
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
