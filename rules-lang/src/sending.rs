//! What an engine sending SMS asks of a program: a rule's `on OUTCOME send
//! sms` clause, whether the policy's hours let a text go now, and, for
//! `rules test` and `rules explain`, the SMS a call's end leads to.
//!
//! Texts keep the policy's hours (`calling hours`, `avoid`) in the
//! customer's own time zone, but not its call caps or the quiet time after
//! an outcome: those count calls. The policy is evaluated with an empty
//! contact history, so only the lines that depend on the clock and the
//! customer's fields can fail.

use jiff::{SignedDuration, Timestamp};

use crate::ir::Fallback;
use crate::record::{History, Outcome, Record};
use crate::{Program, eval};

/// How far apart [`Program::next_sms_time`] tries instants.
const STEP_SECONDS: i64 = 60;

/// How long, in seconds, [`Program::sms_after_call`] lets the SMS of a
/// clause without `within` wait: one hour, the daemon's default for `[sms]
/// default_within_seconds` (a daemon configured otherwise waits that long).
pub const DEFAULT_SMS_WITHIN: i64 = 3600;

/// The SMS a rule's `on OUTCOME send sms` clause asks for when its call
/// ends, and when the policy's hours let it go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsFollowUp<'a> {
    pub fallback: &'a Fallback,
    /// When the call ended.
    pub ended: Timestamp,
    /// The clause's `within` (or [`DEFAULT_SMS_WITHIN`]) after `ended`:
    /// the text goes before it or not at all.
    pub deadline: Timestamp,
    pub send: SmsSend,
}

/// When the SMS after a call goes, by the policy's hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsSend {
    /// As the call ends.
    AtOnce,
    /// At `at`, the first minute the hours allow: `held_by` is the policy
    /// line, as written, that is shut when the call ends.
    Later { at: Timestamp, held_by: String },
    /// Not at all: `shut` is the policy line, as written, that is shut when
    /// the call ends, and the hours stay shut until the deadline.
    NotSent { shut: String },
}

impl SmsSend {
    /// When the SMS goes after a call that ended at `ended`; `None` when it
    /// does not.
    pub fn time(&self, ended: Timestamp) -> Option<Timestamp> {
        match self {
            SmsSend::AtOnce => Some(ended),
            SmsSend::Later { at, .. } => Some(*at),
            SmsSend::NotSent { .. } => None,
        }
    }
}

impl Program {
    /// The `on OUTCOME send sms` clause of the rule `rule` when it is for
    /// `outcome`.
    pub fn fallback_for(&self, rule: &str, outcome: Outcome) -> Option<&Fallback> {
        self.rules
            .iter()
            .find(|r| r.name == rule)
            .and_then(|r| r.fallback.as_ref())
            .filter(|fallback| fallback.outcome == outcome)
    }

    /// The SMS asked for when a call by the rule `rule` ends at `ended` with
    /// `outcome`, as the daemon schedules it: the clause's template, its
    /// deadline `within` after `ended` ([`DEFAULT_SMS_WITHIN`] without
    /// `within`), and the first minute before it that the policy's hours
    /// allow. `None` when the rule has no clause for `outcome`. What the
    /// daemon checks beside (the DNC list, the per-customer SMS cap) is not
    /// seen here.
    pub fn sms_after_call(
        &self,
        rule: &str,
        outcome: Outcome,
        record: &Record,
        ended: Timestamp,
    ) -> Option<SmsFollowUp<'_>> {
        let fallback = self.fallback_for(rule, outcome)?;
        let within = SignedDuration::from_secs(fallback.within.unwrap_or(DEFAULT_SMS_WITHIN));
        let deadline = ended.checked_add(within).unwrap_or(Timestamp::MAX);
        let send = match self.sms_allowed(record, ended) {
            Ok(()) => SmsSend::AtOnce,
            Err(shut) => match self.next_sms_time(record, ended, deadline) {
                Some(at) => SmsSend::Later { at, held_by: shut },
                None => SmsSend::NotSent { shut },
            },
        };
        Some(SmsFollowUp {
            fallback,
            ended,
            deadline,
            send,
        })
    }

    /// `Ok` when the policy's hours let a text reach the customer at `now`;
    /// else the policy line that forbids it, as written.
    pub fn sms_allowed(&self, record: &Record, now: Timestamp) -> Result<(), String> {
        let history = History::new();
        let cx = self.ctx(record, &history, now.as_second());
        for cond in &self.policy {
            match eval::eval(&cond.ir, &cx) {
                Ok(0) | Err(_) => return Err(cond.text.clone()),
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// The first instant from `from` (then on whole minutes after it) and
    /// before `until` at which [`Program::sms_allowed`] holds; `None` when
    /// the policy's hours stay shut until then.
    pub fn next_sms_time(
        &self,
        record: &Record,
        from: Timestamp,
        until: Timestamp,
    ) -> Option<Timestamp> {
        if self.sms_allowed(record, from).is_ok() {
            return Some(from);
        }
        let mut at = (from.as_second().div_euclid(STEP_SECONDS) + 1) * STEP_SECONDS;
        while at < until.as_second() {
            let instant = Timestamp::from_second(at).ok()?;
            if self.sms_allowed(record, instant).is_ok() {
                return Some(instant);
            }
            at += STEP_SECONDS;
        }
        None
    }
}
