//! What an engine sending SMS asks of a program: a rule's `on OUTCOME send
//! sms` clause, and whether the policy's hours let a text go now.
//!
//! Texts keep the policy's hours (`calling hours`, `avoid`) in the
//! customer's own time zone, but not its call caps or the quiet time after
//! an outcome: those count calls. The policy is evaluated with an empty
//! contact history, so only the lines that depend on the clock and the
//! customer's fields can fail.

use jiff::Timestamp;

use crate::ir::Fallback;
use crate::record::{History, Outcome, Record};
use crate::{Program, eval};

/// How far apart [`Program::next_sms_time`] tries instants.
const STEP_SECONDS: i64 = 60;

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
