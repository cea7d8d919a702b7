//! What the SIP agent counts, registered by the daemon's metrics registry.

use prometheus::{IntCounterVec, IntGauge, Opts};

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
    pub(crate) fn new() -> SipMetrics {
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

    pub(crate) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
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
