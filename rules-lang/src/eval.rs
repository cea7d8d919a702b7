//! The reference tree-walking evaluator: the oracle the VM and the
//! next-wake analysis are tested against. It also finds the instants at
//! which a condition can change (`breakpoints`).

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::EvalError;
use crate::ir::{ArithOp, HistField, Ir};
use crate::record::{History, NONE, Record};

pub(crate) const DAY: i64 = 86_400;

/// What an evaluation reads: the program's text constants, the record, the
/// history, the customer's zone slot and `now` in seconds.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub texts: &'a [String],
    pub rec: &'a Record,
    pub hist: &'a History,
    pub zone_slot: Option<usize>,
    pub now: i64,
}

impl<'a> Ctx<'a> {
    pub fn zone(&self) -> Result<&'a TimeZone, EvalError> {
        let slot = self.zone_slot.ok_or(EvalError::Zone)?;
        let idx = *self.rec.words.get(slot).ok_or(EvalError::Zone)?;
        if idx == NONE {
            return Err(EvalError::Zone);
        }
        self.rec.zone(idx).ok_or(EvalError::Zone)
    }

    /// Local wall-clock seconds (since the local epoch) at `t`.
    pub fn local_at(&self, t: i64) -> Result<i64, EvalError> {
        let tz = self.zone()?;
        local_seconds(tz, t)
    }

    pub fn text(&self, v: i64) -> Result<&'a str, EvalError> {
        if v >= 0 {
            usize::try_from(v)
                .ok()
                .and_then(|i| self.texts.get(i))
                .map(String::as_str)
                .ok_or(EvalError::NoneValue)
        } else if v <= -2 && v != NONE {
            self.rec.text(-(v + 2)).ok_or(EvalError::NoneValue)
        } else {
            Err(EvalError::NoneValue)
        }
    }

    /// Calls placed on the local day of `now`, given the local time at
    /// `now`.
    pub fn calls_today(&self, local_now: i64) -> Result<i64, EvalError> {
        let tz = self.zone()?;
        let day = local_now.div_euclid(DAY);
        let mut n = 0;
        for &c in self.hist.recent_calls() {
            if c <= self.now && local_seconds(tz, c)?.div_euclid(DAY) == day {
                n += 1;
            }
        }
        Ok(n)
    }

    pub fn hist(&self, f: HistField) -> Result<i64, EvalError> {
        let h = self.hist;
        let now = self.now;
        Ok(match f {
            HistField::CallsToday => self.calls_today(self.local_at(now)?)?,
            HistField::Calls24h => h
                .recent_calls()
                .iter()
                .filter(|&&c| c <= now && c > now.saturating_sub(DAY))
                .count() as i64,
            HistField::LastCall
            | HistField::LastOutcome
            | HistField::LastOutcomeAt
            | HistField::Attempts
            | HistField::OptedOut
            | HistField::LastSmsClicked => hist_constant(h, f),
        })
    }
}

/// A history field that does not depend on `now` (the time-dependent
/// counts read as none here; use [`Ctx::hist`] for those).
#[inline(always)]
pub(crate) fn hist_constant(h: &History, f: HistField) -> i64 {
    match f {
        HistField::LastCall => h.recent_calls().last().copied().unwrap_or(NONE),
        HistField::LastOutcome => h.last_outcome.map_or(NONE, |o| o.index()),
        HistField::LastOutcomeAt => h.last_outcome_at.map_or(NONE, |t| t.as_second()),
        HistField::Attempts => h.attempts,
        HistField::OptedOut => h.opted_out_at.map_or(NONE, |t| t.as_second()),
        HistField::LastSmsClicked => h.last_sms_clicked.map_or(NONE, |t| t.as_second()),
        HistField::CallsToday | HistField::Calls24h => NONE,
    }
}

pub(crate) fn local_seconds(tz: &TimeZone, t: i64) -> Result<i64, EvalError> {
    let ts = Timestamp::from_second(t).map_err(|_| EvalError::Zone)?;
    Ok(t + i64::from(tz.to_offset(ts).seconds()))
}

/// Evaluates an expression to its word.
pub(crate) fn eval(ir: &Ir, cx: &Ctx) -> Result<i64, EvalError> {
    Ok(match ir {
        Ir::Const(v) => *v,
        Ir::Field(s) => cx.rec.words.get(usize::from(*s)).copied().unwrap_or(NONE),
        Ir::TextField(s) => match cx.rec.words.get(usize::from(*s)).copied().unwrap_or(NONE) {
            NONE => NONE,
            w => -(w + 2),
        },
        Ir::Now => cx.now,
        Ir::LocalTime => cx.local_at(cx.now)?.rem_euclid(DAY),
        Ir::Weekday => (cx.local_at(cx.now)?.div_euclid(DAY) + 3).rem_euclid(7),
        Ir::Hist(f) => cx.hist(*f)?,
        Ir::Not(a) => i64::from(eval(a, cx)? == 0),
        Ir::Neg(a) => eval(a, cx)?.checked_neg().ok_or(EvalError::Overflow)?,
        Ir::And(a, b) => {
            if eval(a, cx)? == 0 {
                0
            } else {
                i64::from(eval(b, cx)? != 0)
            }
        }
        Ir::Or(a, b) => {
            if eval(a, cx)? != 0 {
                1
            } else {
                i64::from(eval(b, cx)? != 0)
            }
        }
        Ir::Cmp(op, a, b) => {
            let (x, y) = (eval(a, cx)?, eval(b, cx)?);
            i64::from(op.apply(x, y))
        }
        Ir::TextEq(eq, a, b) => {
            let (x, y) = (eval(a, cx)?, eval(b, cx)?);
            i64::from((cx.text(x)? == cx.text(y)?) == *eq)
        }
        Ir::InSet(a, s) => {
            let t = cx.text(eval(a, cx)?)?;
            let w = cx.rec.words.get(usize::from(*s)).copied().unwrap_or(NONE);
            if w == NONE {
                return Err(EvalError::NoneValue);
            }
            i64::from(cx.rec.set(w).iter().any(|x| x == t))
        }
        Ir::Arith(op, a, b) => {
            let (x, y) = (eval(a, cx)?, eval(b, cx)?);
            arith(*op, x, y)?
        }
        Ir::IsNone(a) => i64::from(eval(a, cx)? == NONE),
        Ir::Unwrap(a) => match eval(a, cx)? {
            NONE => return Err(EvalError::NoneValue),
            v => v,
        },
        Ir::Default(a, b) => match eval(a, cx)? {
            NONE => eval(b, cx)?,
            v => v,
        },
        Ir::Cond(c, a, b) => {
            if eval(c, cx)? != 0 {
                eval(a, cx)?
            } else {
                eval(b, cx)?
            }
        }
    })
}

/// Checked arithmetic; `NONE` is never a valid result.
pub(crate) fn arith(op: ArithOp, x: i64, y: i64) -> Result<i64, EvalError> {
    match op.apply(x, y) {
        Some(NONE) | None => Err(EvalError::Overflow),
        Some(v) => Ok(v),
    }
}

/// The earliest breakpoint seen in `(after, limit]`; keeps no list, so
/// collecting breakpoints never allocates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Breaks {
    pub after: i64,
    pub limit: i64,
    pub best: Option<i64>,
    /// The local time at `after`, once the local marks (next midnight,
    /// next zone transition) have been pushed.
    local: Option<Result<i64, EvalError>>,
}

impl Breaks {
    pub fn new(after: i64, limit: i64) -> Breaks {
        Breaks {
            after,
            limit,
            best: None,
            local: None,
        }
    }

    pub fn push(&mut self, t: i64) {
        if t > self.after && t <= self.limit && self.best.is_none_or(|b| t < b) {
            self.best = Some(t);
        }
    }

    pub fn extend(&mut self, ts: impl IntoIterator<Item = i64>) {
        for t in ts {
            self.push(t);
        }
    }
}

/// Evaluates with `now` as a free variable: returns the value, its rate of
/// change with `now`, and pushes onto `bps` every instant after `now` at
/// which this expression's value can change (a superset).
pub(crate) fn breakpoints(ir: &Ir, cx: &Ctx, bps: &mut Breaks) -> Result<(i64, i64), EvalError> {
    let now = cx.now;
    // Pushes the next local midnight and zone transition, once per `now`.
    let local_marks = |bps: &mut Breaks| -> Result<i64, EvalError> {
        if bps.after == now
            && let Some(l) = bps.local
        {
            return l;
        }
        let marks = |bps: &mut Breaks| {
            let tz = cx.zone()?;
            let local = local_seconds(tz, now)?;
            bps.push(now + (DAY - local.rem_euclid(DAY)));
            if let Ok(ts) = Timestamp::from_second(now)
                && let Some(tr) = tz.following(ts).next()
            {
                bps.push(tr.timestamp().as_second());
            }
            Ok(local)
        };
        let l = marks(bps);
        if bps.after == now {
            bps.local = Some(l);
        }
        l
    };
    Ok(match ir {
        Ir::Now => (now, 1),
        Ir::LocalTime => (local_marks(bps)?.rem_euclid(DAY), 1),
        Ir::Weekday => ((local_marks(bps)?.div_euclid(DAY) + 3).rem_euclid(7), 0),
        Ir::Hist(f) => {
            match f {
                HistField::CallsToday => {
                    let local = local_marks(bps)?;
                    bps.extend(cx.hist.recent_calls().iter().copied().filter(|&c| c > now));
                    return Ok((cx.calls_today(local)?, 0));
                }
                HistField::Calls24h => {
                    for &c in cx.hist.recent_calls() {
                        bps.push(c);
                        bps.push(c.saturating_add(DAY));
                    }
                }
                _ => {}
            }
            (cx.hist(*f)?, 0)
        }
        Ir::Neg(a) => {
            let (v, k) = breakpoints(a, cx, bps)?;
            (v.checked_neg().ok_or(EvalError::Overflow)?, -k)
        }
        Ir::Arith(op, a, b) => {
            let ra = breakpoints(a, cx, bps);
            let rb = breakpoints(b, cx, bps);
            let ((x, kx), (y, ky)) = (ra?, rb?);
            let v = arith(*op, x, y)?;
            let k = match op {
                ArithOp::Add => kx + ky,
                ArithOp::Sub => kx - ky,
                ArithOp::Mul => x.saturating_mul(ky).saturating_add(y.saturating_mul(kx)),
            };
            if k != 0 {
                // The value hits the overflow bounds at some instant.
                let k = i128::from(k);
                for bound in [i128::from(i64::MAX), i128::from(i64::MIN) + 1] {
                    push_near(bps, now, bound - i128::from(v), k);
                }
            }
            (v, k)
        }
        Ir::Cmp(op, a, b) => {
            let ra = breakpoints(a, cx, bps);
            let rb = breakpoints(b, cx, bps);
            let ((x, kx), (y, ky)) = (ra?, rb?);
            let dk = i128::from(kx) - i128::from(ky);
            if dk != 0 {
                // x - y + dk * (t - now) == 0
                push_near(bps, now, i128::from(y) - i128::from(x), dk);
            }
            (i64::from(op.apply(x, y)), 0)
        }
        Ir::And(a, b) | Ir::Or(a, b) => {
            let ra = breakpoints(a, cx, bps);
            let rb = breakpoints(b, cx, bps);
            let is_and = matches!(ir, Ir::And(..));
            let x = ra?.0;
            if is_and && x == 0 {
                (0, 0)
            } else if !is_and && x != 0 {
                (1, 0)
            } else {
                (i64::from(rb?.0 != 0), 0)
            }
        }
        Ir::Cond(c, a, b) => {
            let rc = breakpoints(c, cx, bps);
            let ra = breakpoints(a, cx, bps);
            let rb = breakpoints(b, cx, bps);
            if rc?.0 != 0 { ra? } else { rb? }
        }
        Ir::Default(a, b) => {
            let ra = breakpoints(a, cx, bps);
            let rb = breakpoints(b, cx, bps);
            match ra? {
                (NONE, _) => rb?,
                v => v,
            }
        }
        Ir::Unwrap(a) => match breakpoints(a, cx, bps)? {
            (NONE, _) => return Err(EvalError::NoneValue),
            v => v,
        },
        // The value found on the way is the one `eval` computes.
        Ir::Not(a) => (i64::from(breakpoints(a, cx, bps)?.0 == 0), 0),
        Ir::IsNone(a) => (i64::from(breakpoints(a, cx, bps)?.0 == NONE), 0),
        Ir::InSet(a, _) => {
            breakpoints(a, cx, bps)?;
            (eval(ir, cx)?, 0)
        }
        Ir::TextEq(_, a, b) => {
            let ra = breakpoints(a, cx, bps);
            let rb = breakpoints(b, cx, bps);
            ra?;
            rb?;
            (eval(ir, cx)?, 0)
        }
        Ir::Const(_) | Ir::Field(_) | Ir::TextField(_) => (eval(ir, cx)?, 0),
    })
}

/// Pushes the instants around `now + num / den` at which a comparison of
/// values with slope difference `den` can change: exactly the crossing and
/// the second after it when `den` is ±1, a margin either side otherwise.
fn push_near(bps: &mut Breaks, now: i64, num: i128, den: i128) {
    let (dt, candidates) = if den == 1 || den == -1 {
        (num * den, [0, 1, 1, 1])
    } else {
        (num / den, [-1, 0, 1, 2])
    };
    // Every candidate is after the limit or not after `now`.
    if dt - 1 > i128::from(bps.limit) - i128::from(now) || dt + 2 <= 0 {
        return;
    }
    for d in candidates.map(|c| dt + c) {
        if d > 0
            && let Ok(t) = i64::try_from(i128::from(now) + d)
        {
            bps.push(t);
        }
    }
}
