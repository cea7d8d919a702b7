//! Next-wake analysis: the time residual of a program.
//!
//! With `now` left free, every condition is a step function of time whose
//! steps sit at instants computable from the record: a comparison of a
//! time expression crosses at a solvable instant, local time of day wraps at
//! local midnight and jumps at a daylight-saving transition, and call counts
//! change when a call leaves the day or the rolling 24 hours. Between two
//! consecutive such instants the decision is constant. The analysis walks
//! from one instant to the next, re-deciding only there.

use crate::eval::{self, Breaks, Ctx};
use crate::{History, Program, Record};

/// How far ahead the analysis looks: 14 days, in seconds.
pub const DEFAULT_HORIZON: i64 = 14 * 86_400;

/// The earliest instant in `(now, limit]` at which one of the program's
/// conditions can step, or `None`.
fn next_breakpoint(
    p: &Program,
    record: &Record,
    history: &History,
    now: i64,
    limit: i64,
) -> Option<i64> {
    let mut found = Breaks::new(now, limit);
    let bps = &mut found;
    let cx: Ctx = p.ctx(record, history, now);
    // Expressions that do not read `now`, the local time or a call count
    // have no breakpoints: only the others are walked.
    for ir in &p.wake_exprs {
        let _ = eval::breakpoints(ir, &cx, bps);
    }
    found.best
}

/// The first instant in `(now, now + horizon]` at which the decision
/// differs from the decision at `now`.
pub fn next_change(
    p: &Program,
    record: &Record,
    history: &History,
    now: i64,
    horizon: i64,
) -> Option<i64> {
    let first = p.decide_at(record, history, now);
    let limit = now.saturating_add(horizon);
    let mut t = now;
    // Each step moves strictly forward to a breakpoint; bound the walk so
    // a pathological record cannot spin for long.
    for _ in 0..4096 {
        let next = next_breakpoint(p, record, history, t, limit)?;
        if p.decide_at(record, history, next) != first {
            return Some(next);
        }
        t = next;
    }
    None
}

/// Eligible intervals `[start, end)` within `[from, from + horizon)`.
pub fn intervals(
    p: &Program,
    record: &Record,
    history: &History,
    from: i64,
    horizon: i64,
) -> Vec<(i64, i64)> {
    let limit = from.saturating_add(horizon);
    let mut out = Vec::new();
    let mut t = from;
    let mut open = p
        .decide_at(record, history, from)
        .eligible()
        .then_some(from);
    for _ in 0..100_000 {
        let Some(next) = next_breakpoint(p, record, history, t, limit) else {
            break;
        };
        let eligible = p.decide_at(record, history, next).eligible();
        match (open, eligible) {
            (Some(s), false) => {
                out.push((s, next));
                open = None;
            }
            (None, true) => open = Some(next),
            _ => {}
        }
        t = next;
    }
    if let Some(s) = open {
        out.push((s, limit));
    }
    out
}
