//! What the SMS stage counts, registered by the daemon's metrics registry.

use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use crate::store::sms::SmsStatus;

pub struct SmsMetrics {
    statuses: IntCounterVec,
    bound: IntGaugeVec,
    replies: IntCounterVec,
    retries: IntCounterVec,
    link_opens: IntCounterVec,
}

impl Default for SmsMetrics {
    fn default() -> SmsMetrics {
        SmsMetrics::new()
    }
}

impl SmsMetrics {
    pub fn new() -> SmsMetrics {
        SmsMetrics {
            statuses: IntCounterVec::new(
                Opts::new(
                    "dialhound_sms_total",
                    "SMS reaching a status (queued, submitting, accepted, delivered, undeliverable, expired, failed, skipped), by provider (empty before one took it).",
                ),
                &["provider", "status"],
            )
            .expect("static metric definition is valid"),
            bound: IntGaugeVec::new(
                Opts::new(
                    "dialhound_sms_provider_bound",
                    "1 while the provider's SMPP session is bound, else 0.",
                ),
                &["provider"],
            )
            .expect("static metric definition is valid"),
            replies: IntCounterVec::new(
                Opts::new(
                    "dialhound_sms_replies_total",
                    "SMS replies from phones, by provider and kind (opt_out, other).",
                ),
                &["provider", "kind"],
            )
            .expect("static metric definition is valid"),
            retries: IntCounterVec::new(
                Opts::new(
                    "dialhound_sms_retries_total",
                    "Parts the SMS center refused for now (ESME_RTHROTTLED, ESME_RMSGQFUL) and the session sends again after a pause, by provider.",
                ),
                &["provider"],
            )
            .expect("static metric definition is valid"),
            link_opens: IntCounterVec::new(
                Opts::new(
                    "dialhound_sms_link_opens_total",
                    "Tracked SMS links opened, by campaign and kind: click (a person, recorded), preview (a link-preview fetch or a HEAD, not a click), unknown (no such link; the campaign label is empty).",
                ),
                &["campaign", "kind"],
            )
            .expect("static metric definition is valid"),
        }
    }

    pub(crate) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.statuses.clone()),
            Box::new(self.bound.clone()),
            Box::new(self.replies.clone()),
            Box::new(self.retries.clone()),
            Box::new(self.link_opens.clone()),
        ]
    }

    /// How many SMS reached `status` at `provider` so far.
    pub fn counted(&self, provider: &str, status: SmsStatus) -> u64 {
        self.statuses
            .with_label_values(&[provider, status.name()])
            .get()
    }

    /// Whether the provider's session is bound now.
    pub fn is_bound(&self, provider: &str) -> bool {
        self.bound.with_label_values(&[provider]).get() == 1
    }

    pub(crate) fn count(&self, provider: &str, status: SmsStatus) {
        self.statuses
            .with_label_values(&[provider, status.name()])
            .inc();
    }

    pub(crate) fn set_bound(&self, provider: &str, bound: bool) {
        self.bound
            .with_label_values(&[provider])
            .set(i64::from(bound));
    }

    pub(crate) fn retry(&self, provider: &str) {
        self.retries.with_label_values(&[provider]).inc();
    }

    pub(crate) fn reply(&self, provider: &str, opt_out: bool) {
        let kind = if opt_out { "opt_out" } else { "other" };
        self.replies.with_label_values(&[provider, kind]).inc();
    }

    pub(crate) fn link_opened(&self, campaign: &str, kind: &str) {
        self.link_opens.with_label_values(&[campaign, kind]).inc();
    }
}
