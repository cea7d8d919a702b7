//! Call attempts as the store keeps them: the ledger entry written (and
//! flushed) before an INVITE leaves, the call detail record written when the
//! attempt ends, and the contact history the rules read.

use dialhound_rules::{History, Outcome};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// An attempt on a customer, in the ledger from before its INVITE leaves
/// until its CDR is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Unique and increasing across restarts.
    pub id: u64,
    pub campaign: String,
    pub customer: String,
    pub rule: String,
    pub script: Option<String>,
    /// The line tier the rule chose.
    pub tier: Option<String>,
    pub started_at: Timestamp,
}

/// How an attempt ended, as the CDR says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Answered, and the script ran.
    Answered,
    /// Answered, and the customer asked never to be called again.
    OptedOut,
    /// Answered while the campaign had no free capacity: an apology, then
    /// hang up.
    Abandoned,
    Busy,
    NoAnswer,
    /// The trunks or the network failed the call.
    Failed,
    /// The number is on the do-not-call list; no call was placed.
    Blocked,
    /// The daemon stopped while the attempt was in flight.
    Interrupted,
}

impl CallOutcome {
    pub fn name(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::OptedOut => "opted_out",
            CallOutcome::Abandoned => "abandoned",
            CallOutcome::Busy => "busy",
            CallOutcome::NoAnswer => "no_answer",
            CallOutcome::Failed => "failed",
            CallOutcome::Blocked => "blocked",
            CallOutcome::Interrupted => "interrupted",
        }
    }

    /// What the rules see as `history.last_outcome`. An abandoned or
    /// interrupted call reached nobody's script: it reads as a failure, and
    /// the call still counts toward the caps.
    pub fn for_history(self) -> Outcome {
        match self {
            CallOutcome::Answered => Outcome::Answered,
            CallOutcome::OptedOut => Outcome::Unsubscribed,
            CallOutcome::Busy => Outcome::Busy,
            CallOutcome::NoAnswer => Outcome::NoAnswer,
            CallOutcome::Abandoned
            | CallOutcome::Failed
            | CallOutcome::Blocked
            | CallOutcome::Interrupted => Outcome::Failed,
        }
    }
}

/// A call detail record: one per attempt, written when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cdr {
    pub attempt: u64,
    pub campaign: String,
    pub customer: String,
    pub rule: String,
    pub script: Option<String>,
    pub trunk: Option<String>,
    pub call_id: Option<String>,
    pub started_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Timestamp,
    pub sip_status: Option<u16>,
    pub outcome: CallOutcome,
    /// Keys pressed, in order.
    pub dtmf: String,
    /// The script's steps as they ran, such as `say, listen, digit 9, opt out`.
    pub script_path: String,
    pub barge_in_ms: Option<u64>,
    pub mos: Option<f64>,
    pub recording: Option<String>,
    /// Why it ended, in words (the SIP reason or the failure).
    pub reason: String,
}

impl Cdr {
    /// The CDR of an attempt that ended at `at` with no call to tell of:
    /// no trunk, no answer, no keys.
    pub fn ended(attempt: &Attempt, outcome: CallOutcome, reason: String, at: Timestamp) -> Cdr {
        Cdr {
            attempt: attempt.id,
            campaign: attempt.campaign.clone(),
            customer: attempt.customer.clone(),
            rule: attempt.rule.clone(),
            script: attempt.script.clone(),
            trunk: None,
            call_id: None,
            started_at: attempt.started_at,
            answered_at: None,
            ended_at: at,
            sip_status: None,
            outcome,
            dtmf: String::new(),
            script_path: String::new(),
            barge_in_ms: None,
            mos: None,
            recording: None,
            reason,
        }
    }

    /// What the CDR says for an attempt the daemon lost to a crash.
    pub fn interrupted(attempt: &Attempt, at: Timestamp) -> Cdr {
        Cdr::ended(
            attempt,
            CallOutcome::Interrupted,
            "the daemon stopped during the call".into(),
            at,
        )
    }

    pub const CSV_HEADER: &'static str = "attempt,campaign,customer,rule,script,trunk,call_id,started_at,answered_at,ended_at,sip_status,outcome,dtmf,script_path,barge_in_ms,mos,recording,reason";

    /// One CSV row (RFC 4180 quoting), in [`Cdr::CSV_HEADER`]'s order.
    pub fn csv_row(&self) -> String {
        let fields = [
            self.attempt.to_string(),
            self.campaign.clone(),
            self.customer.clone(),
            self.rule.clone(),
            self.script.clone().unwrap_or_default(),
            self.trunk.clone().unwrap_or_default(),
            self.call_id.clone().unwrap_or_default(),
            self.started_at.to_string(),
            self.answered_at.map(|t| t.to_string()).unwrap_or_default(),
            self.ended_at.to_string(),
            self.sip_status.map(|s| s.to_string()).unwrap_or_default(),
            self.outcome.name().to_owned(),
            self.dtmf.clone(),
            self.script_path.clone(),
            self.barge_in_ms
                .map(|ms| ms.to_string())
                .unwrap_or_default(),
            self.mos.map(|mos| format!("{mos:.2}")).unwrap_or_default(),
            self.recording.clone().unwrap_or_default(),
            self.reason.clone(),
        ];
        csv_line(&fields)
    }
}

/// Fields joined into one CSV line, each quoted as RFC 4180 needs.
pub(crate) fn csv_line(fields: &[String]) -> String {
    fields
        .iter()
        .map(|field| csv_field(field))
        .collect::<Vec<_>>()
        .join(",")
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// The contact history as stored: [`History`] keeps its call times private,
/// so they go through its accessors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredHistory {
    /// Seconds since the epoch, oldest first.
    pub calls: Vec<i64>,
    pub attempts: i64,
    pub last_outcome: Option<String>,
    pub last_outcome_at: Option<Timestamp>,
    pub opted_out_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sms_clicked: Option<Timestamp>,
}

impl StoredHistory {
    pub fn from_history(history: &History) -> StoredHistory {
        StoredHistory {
            calls: history.recent_calls().to_vec(),
            attempts: history.attempts,
            last_outcome: history.last_outcome.map(|o| o.name().to_owned()),
            last_outcome_at: history.last_outcome_at,
            opted_out_at: history.opted_out_at,
            last_sms_clicked: history.last_sms_clicked,
        }
    }

    pub fn to_history(&self) -> History {
        let mut history = History::new();
        for &call in &self.calls {
            if let Ok(at) = Timestamp::from_second(call) {
                history.add_recent_call(at);
            }
        }
        history.attempts = self.attempts;
        history.last_outcome = self.last_outcome.as_deref().and_then(Outcome::from_name);
        history.last_outcome_at = self.last_outcome_at;
        history.opted_out_at = self.opted_out_at;
        history.last_sms_clicked = self.last_sms_clicked;
        history
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_round_trips_through_its_stored_form() {
        let mut history = History::new();
        let t = |s: i64| Timestamp::from_second(1_773_000_000 + s).unwrap();
        history.record_call(t(0));
        history.record_call(t(3600));
        history.record_outcome(Outcome::Unsubscribed, t(3700));
        let stored = StoredHistory::from_history(&history);
        let json = serde_json::to_vec(&stored).unwrap();
        let back: StoredHistory = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.to_history(), history);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let attempt = Attempt {
            id: 7,
            campaign: "cart".into(),
            customer: "C1".into(),
            rule: "cart_reminder".into(),
            script: None,
            tier: None,
            started_at: Timestamp::from_second(1_773_000_000).unwrap(),
        };
        let mut cdr = Cdr::interrupted(&attempt, attempt.started_at);
        cdr.reason = "said \"no\", then hung up".into();
        let row = cdr.csv_row();
        assert!(row.starts_with("7,cart,C1,cart_reminder,,"), "{row}");
        assert!(row.ends_with(",\"said \"\"no\"\", then hung up\""), "{row}");
        assert_eq!(
            row.matches(',').count() - 1,
            Cdr::CSV_HEADER.matches(',').count(),
            "one comma is inside the quoted reason"
        );
    }
}
