//! Register bytecode: the compiler from IR, the verifier run once at load,
//! the VM, and the disassembler.
//!
//! Code is split into segments: the policy first, then one per rule. Every
//! jump goes forward and stays inside its segment, so evaluation always
//! ends, after at most one pass over the code.

use std::fmt::Write as _;

use crate::error::{EvalError, VerifyError};
use crate::eval::{Ctx, DAY, arith, hist_constant};
use crate::ir::{ArithOp, CmpOp, Cond, HistField, Ir, RuleIr};
use crate::record::{FieldType, History, INLINE_WORDS, NONE, Schema, Words};

/// Registers per evaluation; register indexes are masked with `NREGS - 1`.
pub const NREGS: usize = 32;
const MASK: u8 = (NREGS - 1) as u8;

/// One instruction. `d` is the destination register; `a`, `b` are sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Const {
        d: u8,
        v: i64,
    },
    Load {
        d: u8,
        slot: u16,
    },
    LoadText {
        d: u8,
        slot: u16,
    },
    Now {
        d: u8,
    },
    LocalTime {
        d: u8,
    },
    Weekday {
        d: u8,
    },
    Hist {
        d: u8,
        f: HistField,
    },
    Not {
        d: u8,
        a: u8,
    },
    Neg {
        d: u8,
        a: u8,
    },
    Arith {
        op: ArithOp,
        d: u8,
        a: u8,
        b: u8,
    },
    Cmp {
        op: CmpOp,
        d: u8,
        a: u8,
        b: u8,
    },
    TextEq {
        eq: bool,
        d: u8,
        a: u8,
        b: u8,
    },
    InSet {
        d: u8,
        a: u8,
        slot: u16,
    },
    IsNone {
        d: u8,
        a: u8,
    },
    Unwrap {
        d: u8,
        a: u8,
    },
    JumpIfFalse {
        c: u8,
        to: u32,
    },
    JumpIfTrue {
        c: u8,
        to: u32,
    },
    JumpIfSet {
        c: u8,
        to: u32,
    },
    Jump {
        to: u32,
    },
    /// Ends the segment unsuccessfully when register `c` is false.
    Require {
        c: u8,
        cond: u16,
    },
    /// Fused `const` + compare: `d = a OP v`.
    CmpConst {
        op: CmpOp,
        d: u8,
        a: u8,
        v: i64,
    },
    /// Fused load + compare + require: fail unless `slot OP v`.
    RequireFieldCmp {
        op: CmpOp,
        slot: u16,
        v: i64,
        cond: u16,
    },
    /// Fused `not` + require: fail unless register `c` is false.
    RequireNot {
        c: u8,
        cond: u16,
    },
    /// Fused compare of a field with a constant: `d = slot OP v`.
    CmpField {
        op: CmpOp,
        d: u8,
        slot: u16,
        v: i64,
    },
    /// Fused `now - slot`: fails when the field is none or on overflow.
    Since {
        d: u8,
        slot: u16,
    },
    /// Fused `require (now - slot) OP v`.
    RequireSince {
        op: CmpOp,
        slot: u16,
        v: i64,
        cond: u16,
    },
    /// Ends a rule segment successfully; `NO_REG` marks an absent output.
    Emit {
        prio: u8,
        script: u8,
        line: u8,
    },
}

pub const NO_REG: u8 = u8::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: u32,
    pub end: u32,
    /// The rule this segment decides, or `None` for the policy.
    pub rule: Option<u16>,
}

/// Compiled, verified bytecode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Code {
    pub ops: Vec<Op>,
    pub segments: Vec<Segment>,
    /// Per segment, the leading conditions that can only hold or not
    /// (never fail otherwise), checked without branching before the rest
    /// of the segment runs. Derived from `ops` by [`prefixes`].
    pub(crate) pre: Prefixes,
    /// Set when the whole program is leading conditions with fixed outputs.
    pub(crate) simple: Option<Simple>,
}

/// A leading condition on a record word: it holds when the word `x` is
/// in `[lo, lo + span]` and is not `ex`. A condition that holds for every
/// word has no `Range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub slot: u16,
    /// Free for the user of the range: a batch plan's segment number.
    pub tag: u8,
    pub lo: i64,
    pub span: u64,
    pub ex: i64,
}

/// A range no word is in.
pub(crate) const EMPTY_RANGE: Range = Range {
    slot: 0,
    tag: 0,
    lo: 0,
    span: 0,
    ex: 0,
};

impl Range {
    /// The words `x` with `x OP v`; `None` when that is every word.
    fn of(slot: u16, op: CmpOp, v: i64) -> Option<Range> {
        Range::between(
            slot,
            op,
            i128::from(v),
            (i128::from(i64::MIN), i128::from(i64::MAX)),
        )
    }

    /// The words `x` within `[bounds.0, bounds.1]` with `x OP v`, all
    /// computed without overflow; `None` when that is every word.
    fn between(slot: u16, op: CmpOp, v: i128, bounds: (i128, i128)) -> Option<Range> {
        let (mut lo, mut hi) = bounds;
        let mut ex = None;
        match op {
            CmpOp::Eq => {
                lo = lo.max(v);
                hi = hi.min(v);
            }
            CmpOp::Ne => ex = Some(v),
            CmpOp::Lt => hi = hi.min(v - 1),
            CmpOp::Le => hi = hi.min(v),
            CmpOp::Gt => lo = lo.max(v + 1),
            CmpOp::Ge => lo = lo.max(v),
        }
        let (min, max) = (i128::from(i64::MIN), i128::from(i64::MAX));
        lo = lo.max(min);
        hi = hi.min(max);
        // An excluded end shrinks the range.
        match ex {
            Some(e) if e == lo => {
                lo += 1;
                ex = None;
            }
            Some(e) if e == hi => {
                hi -= 1;
                ex = None;
            }
            Some(e) if e < lo || e > hi => ex = None,
            _ => {}
        }
        let empty = Range {
            slot,
            ..EMPTY_RANGE
        };
        if lo > hi {
            return Some(empty);
        }
        // Without an exclusion, exclude a word outside the range.
        let ex = match ex {
            Some(e) => e,
            None if lo > min => lo - 1,
            None if hi < max => hi + 1,
            None => return None,
        };
        let (Ok(l), Ok(h), Ok(e)) = (i64::try_from(lo), i64::try_from(hi), i64::try_from(ex))
        else {
            return Some(empty);
        };
        Some(Range {
            slot,
            tag: 0,
            lo: l,
            span: h.wrapping_sub(l) as u64,
            ex: e,
        })
    }

    #[inline(always)]
    pub fn holds(&self, x: i64) -> bool {
        self.spans(x) & (x != self.ex)
    }

    /// Whether `x` is in `[lo, lo + span]`, ignoring the exclusion.
    #[inline(always)]
    pub fn spans(&self, x: i64) -> bool {
        (x.wrapping_sub(self.lo) as u64) <= self.span
    }

    /// Whether no word is in the range.
    pub fn is_empty(&self) -> bool {
        self.span == 0 && self.ex == self.lo
    }

    /// Whether the excluded word is outside `[lo, lo + span]`, so that
    /// [`Range::spans`] decides alone.
    pub fn is_plain(&self) -> bool {
        !self.spans(self.ex)
    }

    /// The intersection of two plain ranges of the same slot, plain or
    /// empty.
    pub fn intersect(&self, other: &Range) -> Range {
        let hi = |r: &Range| i128::from(r.lo) + i128::from(r.span);
        let lo = i128::from(self.lo.max(other.lo));
        let hi = hi(self).min(hi(other));
        let min = i128::from(i64::MIN);
        let max = i128::from(i64::MAX);
        match (i64::try_from(lo), i64::try_from(hi)) {
            (Ok(l), Ok(h)) if l <= h && (lo > min || hi < max) => Range {
                slot: self.slot,
                tag: self.tag,
                lo: l,
                span: h.wrapping_sub(l) as u64,
                ex: if lo > min { l - 1 } else { h + 1 },
            },
            _ => Range {
                slot: self.slot,
                ..EMPTY_RANGE
            },
        }
    }
}

/// A leading condition `now - field OP v`, false when the field is none or
/// on overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Since {
    pub slot: u16,
    pub op: CmpOp,
    pub mask: u8,
    /// Free for the user: the segment's bit in [`Simple`].
    pub tag: u8,
    pub v: i64,
}

impl Since {
    #[inline(always)]
    pub fn holds(&self, now: i64, w: i64) -> bool {
        let (d, o) = now.overflowing_sub(w);
        (w != NONE) & !o & (d != NONE) & test_mask(self.mask, d, self.v)
    }

    /// The same condition at a fixed `now`, as a range of the field;
    /// `None` when it holds for every word.
    pub fn at(&self, now: i64) -> Option<Range> {
        // now - w within [MIN + 1, MAX] and w != NONE; now - w OP v holds
        // exactly when w OP' now - v, with OP' the mirrored comparison.
        let now = i128::from(now);
        let bounds = (
            (now - i128::from(i64::MAX)).max(i128::from(i64::MIN) + 1),
            (now - i128::from(i64::MIN) - 1).min(i128::from(i64::MAX)),
        );
        let mirrored = match self.op {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            op => op,
        };
        Range::between(self.slot, mirrored, now - i128::from(self.v), bounds)
    }
}

/// A leading condition `history.f OP v` on a history field that does not
/// depend on `now`; the bytecode leaves register `reg` set to 1 when it
/// holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistPred {
    pub f: HistField,
    pub mask: u8,
    pub v: i64,
    pub reg: u8,
    /// Free for the user: the segment's bit in [`Simple`].
    pub tag: u8,
}

/// The fast form of one segment: its leading conditions, split by kind
/// (`hists[h.0..h.1]`, `sinces[s.0..s.1]`, `ranges[r.0..r.1]`), hold; then
/// the bytecode from `rest` on runs. When `out` is set, that bytecode only
/// emits these constant outputs (priority, script, line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fast {
    pub h: (u32, u32),
    pub s: (u32, u32),
    pub r: (u32, u32),
    pub rest: u32,
    pub out: Option<(i64, i64, i64)>,
}

/// The leading conditions of all segments.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Prefixes {
    pub fast: Vec<Fast>,
    pub hists: Vec<HistPred>,
    pub sinces: Vec<Since>,
    pub ranges: Vec<Range>,
}

/// The part `r` of `v`, empty when out of bounds.
fn sub<T>(v: &[T], r: (u32, u32)) -> &[T] {
    v.get(r.0 as usize..r.1 as usize).unwrap_or_default()
}

impl Prefixes {
    pub fn hists(&self, f: &Fast) -> &[HistPred] {
        sub(&self.hists, f.h)
    }
    pub fn sinces(&self, f: &Fast) -> &[Since] {
        sub(&self.sinces, f.s)
    }
    pub fn ranges(&self, f: &Fast) -> &[Range] {
        sub(&self.ranges, f.r)
    }
}

/// A program whose every segment is made of leading conditions only, with
/// fixed outputs: it is decided in one pass that sets a failure bit per
/// segment. Bit [`POLICY_BIT`] is the policy; rule segments have bits by
/// rank (highest priority first, then file order), so the lowest clear
/// bit is the winner.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Simple {
    pub hists: Vec<HistPred>,
    pub sinces: Vec<Since>,
    /// Ranges whose excluded word lies outside them, then the others.
    pub plain: Vec<Range>,
    pub other: Vec<Range>,
    /// The rule index and outputs (priority, script, line) of each rank.
    pub ranked: Vec<(usize, i64, i64, i64)>,
    /// Every slot read is below [`INLINE_WORDS`].
    pub inline: bool,
}

pub(crate) const POLICY_BIT: u8 = 63;

fn simple(segments: &[Segment], pre: &Prefixes) -> Option<Simple> {
    if segments.is_empty() || segments.len() > usize::from(POLICY_BIT) {
        return None;
    }
    let outs: Vec<(i64, i64, i64)> = pre.fast.iter().map(|f| f.out).collect::<Option<_>>()?;
    let prio = |k: usize| outs.get(k).map_or(0, |o| o.0);
    let mut order: Vec<usize> = (1..segments.len()).collect();
    sort_by_rank(&mut order, prio);
    let mut tags = vec![POLICY_BIT; segments.len()];
    let mut ranked = Vec::with_capacity(order.len());
    for (r, &k) in order.iter().enumerate() {
        *tags.get_mut(k)? = r as u8;
        let (p, script, line) = *outs.get(k)?;
        let rule = usize::from(segments.get(k)?.rule?);
        ranked.push((rule, p, script, line));
    }
    let mut sm = Simple {
        ranked,
        ..Simple::default()
    };
    for (fast, &tag) in pre.fast.iter().zip(&tags) {
        sm.hists
            .extend(pre.hists(fast).iter().map(|h| HistPred { tag, ..*h }));
        sm.sinces
            .extend(pre.sinces(fast).iter().map(|h| Since { tag, ..*h }));
        for r in pre.ranges(fast) {
            let r = Range { tag, ..*r };
            if r.is_plain() {
                sm.plain.push(r);
            } else {
                sm.other.push(r);
            }
        }
    }
    sm.inline = sm.sinces.iter().all(|p| usize::from(p.slot) < INLINE_WORDS)
        && inline_slots(&sm.plain)
        && inline_slots(&sm.other);
    Some(sm)
}

/// Sorts segment positions by rank: highest priority first, then file
/// order. The keys are distinct, so the unstable sort (which never
/// allocates) gives the one order.
pub(crate) fn sort_by_rank(order: &mut [usize], prio: impl Fn(usize) -> i64) {
    order.sort_unstable_by_key(|&k| (std::cmp::Reverse(prio(k)), k));
}

/// The failure bits of a [`Simple`] program for one record.
#[inline(always)]
pub(crate) fn simple_failures(sm: &Simple, words: &Words, h: &History, now: i64) -> u64 {
    match words.padded() {
        // Every slot read is below the array's length.
        Some(buf) if sm.inline => {
            simple_failures_by(sm, h, now, |s| buf[usize::from(s) % INLINE_WORDS])
        }
        _ => {
            let words = words.as_slice();
            simple_failures_by(sm, h, now, |s| {
                words.get(usize::from(s)).copied().unwrap_or(NONE)
            })
        }
    }
}

#[inline(always)]
fn simple_failures_by(sm: &Simple, h: &History, now: i64, word: impl Fn(u16) -> i64) -> u64 {
    let mut fail = 0u64;
    for p in &sm.hists {
        fail |= u64::from(!test_mask(p.mask, hist_constant(h, p.f), p.v)) << (p.tag & 63);
    }
    for p in &sm.sinces {
        fail |= u64::from(!p.holds(now, word(p.slot))) << (p.tag & 63);
    }
    fail | failing_tags_by(&sm.plain, &sm.other, word)
}

/// The comparison as a mask over (less, equal, greater).
pub(crate) fn cmp_mask(op: CmpOp) -> u8 {
    match op {
        CmpOp::Lt => 0b001,
        CmpOp::Eq => 0b010,
        CmpOp::Gt => 0b100,
        CmpOp::Le => 0b011,
        CmpOp::Ge => 0b110,
        CmpOp::Ne => 0b101,
    }
}

/// `a OP b` for the comparison `mask`, without a branch.
#[inline(always)]
pub(crate) fn test_mask(mask: u8, a: i64, b: i64) -> bool {
    let idx = u32::from(a >= b) + u32::from(a > b);
    (mask >> idx) & 1 != 0
}

/// Whether a history field is the same at every instant.
fn hist_is_constant(f: HistField) -> bool {
    !matches!(f, HistField::CallsToday | HistField::Calls24h)
}

/// The leading conditions of every segment, and constant outputs. The
/// leading conditions have no effect but the registers noted, and cannot
/// fail other than by being false, so they can be checked in any order and
/// without short-circuit.
fn prefixes(ops: &[Op], segments: &[Segment]) -> Prefixes {
    let mut p = Prefixes::default();
    for seg in segments {
        let code = &ops[seg.start as usize..seg.end as usize];
        let (mut hists, mut sinces, mut ranges) = (Vec::new(), Vec::new(), Vec::new());
        let mut pc = 0usize;
        loop {
            match code.get(pc..) {
                Some([Op::RequireFieldCmp { op, slot, v, .. }, ..]) => {
                    ranges.extend(Range::of(*slot, *op, *v));
                    pc += 1;
                }
                Some([Op::RequireSince { op, slot, v, .. }, ..]) => {
                    sinces.push(Since {
                        slot: *slot,
                        op: *op,
                        mask: cmp_mask(*op),
                        tag: 0,
                        v: *v,
                    });
                    pc += 1;
                }
                Some(
                    [
                        Op::Hist { d, f },
                        Op::IsNone { d: d2, a },
                        Op::Require { c, .. },
                        ..,
                    ],
                ) if hist_is_constant(*f) && a == d && d2 == d && c == d => {
                    hists.push(HistPred {
                        f: *f,
                        mask: cmp_mask(CmpOp::Eq),
                        v: NONE,
                        reg: *d,
                        tag: 0,
                    });
                    pc += 3;
                }
                Some(
                    [
                        Op::Hist { d, f },
                        Op::CmpConst { op, d: d2, a, v },
                        Op::Require { c, .. },
                        ..,
                    ],
                ) if hist_is_constant(*f) && a == d && d2 == d && c == d => {
                    hists.push(HistPred {
                        f: *f,
                        mask: cmp_mask(*op),
                        v: *v,
                        reg: *d,
                        tag: 0,
                    });
                    pc += 3;
                }
                _ => break,
            }
        }
        let span = |n: usize, len: usize| ((len - n) as u32, len as u32);
        let h = span(hists.len(), p.hists.len() + hists.len());
        let s = span(sinces.len(), p.sinces.len() + sinces.len());
        let r = span(ranges.len(), p.ranges.len() + ranges.len());
        p.hists.extend(hists);
        p.sinces.extend(sinces);
        p.ranges.extend(ranges);
        p.fast.push(Fast {
            h,
            s,
            r,
            rest: seg.start + pc as u32,
            out: constant_outputs(&code[pc..]),
        });
    }
    p
}

/// The outputs of a tail of `const`s ending in `emit`, when it is one; an
/// empty tail (the end of the policy) passes as `run_segment` does.
fn constant_outputs(tail: &[Op]) -> Option<(i64, i64, i64)> {
    if tail.is_empty() {
        return Some((0, NONE, NONE));
    }
    let (Op::Emit { prio, script, line }, consts) = tail.split_last()? else {
        return None;
    };
    let mut regs = [None; NREGS];
    for op in consts {
        let Op::Const { d, v } = op else {
            return None;
        };
        *regs.get_mut(usize::from(*d))? = Some(*v);
    }
    let get = |x: u8| {
        if x == NO_REG {
            Some(NONE)
        } else {
            regs.get(usize::from(x)).copied().flatten()
        }
    };
    Some((get(*prio)?, get(*script)?, get(*line)?))
}

/// Whether every history condition holds.
#[inline(always)]
pub(crate) fn hists_hold(preds: &[HistPred], h: &History) -> bool {
    let mut ok = true;
    for p in preds {
        ok &= test_mask(p.mask, hist_constant(h, p.f), p.v);
    }
    ok
}

/// Whether every field and since condition holds, evaluated without
/// short-circuit.
#[inline(always)]
pub(crate) fn record_preds_hold(sinces: &[Since], ranges: &[Range], cx: &Ctx) -> bool {
    let words = cx.rec.words.as_slice();
    let word = |s: u16| words.get(usize::from(s)).copied().unwrap_or(NONE);
    let mut ok = true;
    for p in sinces {
        ok &= p.holds(cx.now, word(p.slot));
    }
    for p in ranges {
        ok &= p.holds(word(p.slot));
    }
    ok
}

/// Whether every range reads a slot below [`INLINE_WORDS`], so that a
/// record with inline words can be read without looking at its length.
pub(crate) fn inline_slots(ranges: &[Range]) -> bool {
    ranges.iter().all(|r| usize::from(r.slot) < INLINE_WORDS)
}

/// Whether every range holds for the record `words`; `inline` as given by
/// [`inline_slots`] for the ranges. Plain ranges are checked without their
/// exclusion. Evaluated without short-circuit.
#[inline(always)]
pub(crate) fn all_hold(plain: &[Range], other: &[Range], words: &Words, inline: bool) -> bool {
    match words.padded() {
        // Every slot read is below the array's length.
        Some(buf) if inline => all_hold_by(plain, other, |s| buf[usize::from(s) % INLINE_WORDS]),
        _ => {
            let words = words.as_slice();
            all_hold_by(plain, other, |s| {
                words.get(usize::from(s)).copied().unwrap_or(NONE)
            })
        }
    }
}

/// Whether every plain range, each on a slot below [`INLINE_WORDS`], spans
/// its word of `buf`. Evaluated without short-circuit.
#[inline(always)]
pub(crate) fn all_span_inline<const N: usize>(
    ranges: &[Range; N],
    buf: &[i64; INLINE_WORDS],
) -> bool {
    let mut ok = true;
    for r in ranges {
        ok &= r.spans(buf[usize::from(r.slot) % INLINE_WORDS]);
    }
    ok
}

#[inline(always)]
fn all_hold_by(plain: &[Range], other: &[Range], word: impl Fn(u16) -> i64) -> bool {
    let mut ok = true;
    for p in plain {
        ok &= p.spans(word(p.slot));
    }
    for p in other {
        ok &= p.holds(word(p.slot));
    }
    ok
}

/// [`failing_tags`] for the record `words`; `inline` as given by
/// [`inline_slots`] for the ranges.
#[inline(always)]
pub(crate) fn failing_tags_of(
    plain: &[Range],
    other: &[Range],
    words: &Words,
    inline: bool,
) -> u64 {
    match words.padded() {
        // Every slot read is below the array's length.
        Some(buf) if inline => {
            failing_tags_by(plain, other, |s| buf[usize::from(s) % INLINE_WORDS])
        }
        _ => failing_tags(plain, other, words.as_slice()),
    }
}

/// The tags of the ranges that do not hold, as bits; plain ranges are
/// checked without their exclusion.
#[inline(always)]
pub(crate) fn failing_tags(plain: &[Range], other: &[Range], words: &[i64]) -> u64 {
    failing_tags_by(plain, other, |s| {
        words.get(usize::from(s)).copied().unwrap_or(NONE)
    })
}

#[inline(always)]
fn failing_tags_by(plain: &[Range], other: &[Range], word: impl Fn(u16) -> i64) -> u64 {
    let mut fail = 0u64;
    for p in plain {
        fail |= u64::from(!p.spans(word(p.slot))) << (p.tag & 63);
    }
    for p in other {
        fail |= u64::from(!p.holds(word(p.slot))) << (p.tag & 63);
    }
    fail
}

/// The outcome of running one rule segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegResult {
    Fired { prio: i64, script: i64, line: i64 },
    Failed,
}

/// Compiles the policy and the rules. Fails when an expression needs more
/// registers than the VM has.
pub fn compile(policy: &[Cond], rules: &[RuleIr]) -> Result<Code, String> {
    let mut c = Compiler { ops: Vec::new() };
    let mut segments = Vec::new();
    let start = c.ops.len() as u32;
    for (i, cond) in policy.iter().enumerate() {
        c.expr(&cond.ir, 0)?;
        c.ops.push(Op::Require {
            c: 0,
            cond: i as u16,
        });
    }
    segments.push(Segment {
        start,
        end: c.ops.len() as u32,
        rule: None,
    });
    for (ri, r) in rules.iter().enumerate() {
        let start = c.ops.len() as u32;
        for (i, cond) in r.conds.iter().enumerate() {
            c.expr(&cond.ir, 0)?;
            c.ops.push(Op::Require {
                c: 0,
                cond: i as u16,
            });
        }
        c.expr(&r.priority, 0)?;
        let script = match &r.script {
            Some(s) => {
                c.expr(s, 1)?;
                1
            }
            None => NO_REG,
        };
        let line = match &r.line {
            Some(l) => {
                c.expr(l, 2)?;
                2
            }
            None => NO_REG,
        };
        c.ops.push(Op::Emit {
            prio: 0,
            script,
            line,
        });
        segments.push(Segment {
            start,
            end: c.ops.len() as u32,
            rule: Some(ri as u16),
        });
    }
    let (ops, segments) = peephole(c.ops, segments);
    let c = Compiler { ops };
    let pre = prefixes(&c.ops, &segments);
    let simple = simple(&segments, &pre);
    Ok(Code {
        ops: c.ops,
        segments,
        pre,
        simple,
    })
}

struct Compiler {
    ops: Vec<Op>,
}

fn jump_target(op: &Op) -> Option<u32> {
    match op {
        Op::JumpIfFalse { to, .. }
        | Op::JumpIfTrue { to, .. }
        | Op::JumpIfSet { to, .. }
        | Op::Jump { to } => Some(*to),
        _ => None,
    }
}

/// The superinstruction that replaces the last `n` instructions of `tail`.
fn fuse_tail(tail: &[Op]) -> Option<(Op, usize)> {
    let get = |back: usize| {
        if tail.len() >= back {
            Some(tail[tail.len() - back])
        } else {
            None
        }
    };
    let (p3, p2, p1) = (get(4), get(3), get(2));
    let last = get(1)?;
    if let (
        Some(Op::Now { d: n }),
        Some(Op::Load { d: l, slot }),
        Some(Op::Unwrap { d: u, a }),
        Op::Arith {
            op: ArithOp::Sub,
            d,
            a: x,
            b: y,
        },
    ) = (p3, p2, p1, last)
        && a == l
        && u == l
        && x == n
        && y == u
        && d == n
    {
        return Some((Op::Since { d, slot }, 4));
    }
    if let (
        Some(Op::Since { d, slot }),
        Some(Op::CmpConst { op, d: d2, a, v }),
        Op::Require { c, cond },
    ) = (p2, p1, last)
        && a == d
        && c == d2
    {
        return Some((Op::RequireSince { op, slot, v, cond }, 3));
    }
    Some(match (p1, last) {
        (Some(Op::Const { d: k, v }), Op::Cmp { op, d, a, b }) if b == k && a != k => {
            (Op::CmpConst { op, d, a, v }, 2)
        }
        (Some(Op::Load { d: l, slot }), Op::CmpConst { op, d, a, v }) if a == l => {
            (Op::CmpField { op, d, slot, v }, 2)
        }
        (Some(Op::Load { d: l, slot }), Op::IsNone { d, a }) if a == l => (
            Op::CmpField {
                op: CmpOp::Eq,
                d,
                slot,
                v: NONE,
            },
            2,
        ),
        (Some(Op::CmpField { op, d, slot, v }), Op::Require { c, cond }) if c == d => {
            (Op::RequireFieldCmp { op, slot, v, cond }, 2)
        }
        (Some(Op::CmpField { op, d, slot, v }), Op::RequireNot { c, cond }) if c == d => (
            Op::RequireFieldCmp {
                op: op.negate(),
                slot,
                v,
                cond,
            },
            2,
        ),
        (Some(Op::Load { d: l, slot }), Op::Require { c, cond }) if c == l => (
            Op::RequireFieldCmp {
                op: CmpOp::Ne,
                slot,
                v: 0,
                cond,
            },
            2,
        ),
        (Some(Op::Load { d: l, slot }), Op::RequireNot { c, cond }) if c == l => (
            Op::RequireFieldCmp {
                op: CmpOp::Eq,
                slot,
                v: 0,
                cond,
            },
            2,
        ),
        (Some(Op::Not { d, a }), Op::Require { c, cond }) if c == d => {
            (Op::RequireNot { c: a, cond }, 2)
        }
        _ => return None,
    })
}

/// Fuses common instruction sequences into superinstructions. A sequence
/// is fused only when no jump lands inside it; jump targets are remapped.
fn peephole(ops: Vec<Op>, segments: Vec<Segment>) -> (Vec<Op>, Vec<Segment>) {
    let mut targets = vec![false; ops.len() + 1];
    for op in &ops {
        if let Some(t) = jump_target(op) {
            targets[t as usize] = true;
        }
    }
    let mut seg_ends = vec![false; ops.len() + 1];
    for s in &segments {
        seg_ends[s.start as usize] = true;
    }
    let mut out: Vec<Op> = Vec::with_capacity(ops.len());
    // map[i] = index in `out` of old instruction i (or of what it fused into)
    let mut map = vec![0u32; ops.len() + 1];
    // Index in `out` from which the last instruction may still be fused.
    let mut fusable_from = 0usize;
    for (i, op) in ops.iter().enumerate() {
        if targets[i] || seg_ends[i] {
            fusable_from = out.len();
        }
        map[i] = out.len() as u32;
        map[i] = out.len() as u32;
        out.push(*op);
        // Fuse the tail of `out` as long as a pattern applies.
        while let Some((f, n)) = fuse_tail(&out[fusable_from..]) {
            out.truncate(out.len() - n);
            map[i] = out.len() as u32;
            out.push(f);
        }
    }
    map[ops.len()] = out.len() as u32;
    for op in &mut out {
        match op {
            Op::JumpIfFalse { to, .. }
            | Op::JumpIfTrue { to, .. }
            | Op::JumpIfSet { to, .. }
            | Op::Jump { to } => *to = map[*to as usize],
            _ => {}
        }
    }
    let segments = segments
        .into_iter()
        .map(|s| Segment {
            start: map[s.start as usize],
            end: map[s.end as usize],
            rule: s.rule,
        })
        .collect();
    (out, segments)
}

impl Compiler {
    fn reg(d: usize) -> Result<u8, String> {
        if d >= NREGS - 1 {
            Err("expression is too deeply nested for the VM".to_string())
        } else {
            Ok(d as u8)
        }
    }

    fn here(&self) -> u32 {
        self.ops.len() as u32
    }

    fn patch(&mut self, at: usize) {
        let to = self.here();
        match &mut self.ops[at] {
            Op::JumpIfFalse { to: t, .. }
            | Op::JumpIfTrue { to: t, .. }
            | Op::JumpIfSet { to: t, .. }
            | Op::Jump { to: t } => *t = to,
            _ => {}
        }
    }

    fn expr(&mut self, ir: &Ir, d: usize) -> Result<(), String> {
        let r = Self::reg(d)?;
        match ir {
            Ir::Const(v) => self.ops.push(Op::Const { d: r, v: *v }),
            Ir::Field(s) => self.ops.push(Op::Load { d: r, slot: *s }),
            Ir::TextField(s) => self.ops.push(Op::LoadText { d: r, slot: *s }),
            Ir::Now => self.ops.push(Op::Now { d: r }),
            Ir::LocalTime => self.ops.push(Op::LocalTime { d: r }),
            Ir::Weekday => self.ops.push(Op::Weekday { d: r }),
            Ir::Hist(f) => self.ops.push(Op::Hist { d: r, f: *f }),
            Ir::Not(a) | Ir::Neg(a) | Ir::IsNone(a) | Ir::Unwrap(a) => {
                self.expr(a, d)?;
                self.ops.push(match ir {
                    Ir::Not(_) => Op::Not { d: r, a: r },
                    Ir::Neg(_) => Op::Neg { d: r, a: r },
                    Ir::IsNone(_) => Op::IsNone { d: r, a: r },
                    _ => Op::Unwrap { d: r, a: r },
                });
            }
            Ir::InSet(a, s) => {
                self.expr(a, d)?;
                self.ops.push(Op::InSet {
                    d: r,
                    a: r,
                    slot: *s,
                });
            }
            Ir::Arith(_, a, b) | Ir::Cmp(_, a, b) | Ir::TextEq(_, a, b) => {
                self.expr(a, d)?;
                self.expr(b, d + 1)?;
                let b = Self::reg(d + 1)?;
                self.ops.push(match ir {
                    Ir::Arith(op, ..) => Op::Arith {
                        op: *op,
                        d: r,
                        a: r,
                        b,
                    },
                    Ir::Cmp(op, ..) => Op::Cmp {
                        op: *op,
                        d: r,
                        a: r,
                        b,
                    },
                    _ => Op::TextEq {
                        eq: matches!(ir, Ir::TextEq(true, ..)),
                        d: r,
                        a: r,
                        b,
                    },
                });
            }
            Ir::And(a, b) | Ir::Or(a, b) => {
                self.expr(a, d)?;
                let j = self.ops.len();
                self.ops.push(if matches!(ir, Ir::And(..)) {
                    Op::JumpIfFalse { c: r, to: 0 }
                } else {
                    Op::JumpIfTrue { c: r, to: 0 }
                });
                self.expr(b, d)?;
                self.patch(j);
            }
            Ir::Default(a, b) => {
                self.expr(a, d)?;
                let j = self.ops.len();
                self.ops.push(Op::JumpIfSet { c: r, to: 0 });
                self.expr(b, d)?;
                self.patch(j);
            }
            Ir::Cond(c, a, b) => {
                self.expr(c, d)?;
                let j = self.ops.len();
                self.ops.push(Op::JumpIfFalse { c: r, to: 0 });
                self.expr(a, d)?;
                let k = self.ops.len();
                self.ops.push(Op::Jump { to: 0 });
                self.patch(j);
                self.expr(b, d)?;
                self.patch(k);
            }
        }
        Ok(())
    }
}

/// Checks, once at load, everything the VM relies on: registers in range,
/// jumps forward and inside their segment, slots of the right kind,
/// conditions that exist, and every rule segment ending in `Emit`.
pub fn verify(
    code: &Code,
    schema: &Schema,
    texts: usize,
    conds: &[usize],
) -> Result<(), VerifyError> {
    let fail = |pc: usize, reason: &str| {
        Err(VerifyError {
            pc,
            reason: reason.to_string(),
        })
    };
    let nslots = schema.fields.len();
    let mut expected_start = 0u32;
    for (si, seg) in code.segments.iter().enumerate() {
        if seg.start != expected_start || seg.end < seg.start || seg.end as usize > code.ops.len() {
            return fail(seg.start as usize, "segments do not tile the code");
        }
        expected_start = seg.end;
        if seg.rule.is_some()
            && (seg.end == seg.start || !matches!(code.ops[seg.end as usize - 1], Op::Emit { .. }))
        {
            return fail(seg.end as usize, "rule segment does not end in emit");
        }
        let nconds = conds.get(si).copied().unwrap_or(0);
        for pc in seg.start as usize..seg.end as usize {
            let op = code.ops[pc];
            let regs_ok = |rs: &[u8]| rs.iter().all(|r| usize::from(*r) < NREGS);
            let slot_kind = |s: u16| schema.fields.get(usize::from(s)).map(|f| &f.ty);
            let ok = match op {
                Op::Const { d, .. }
                | Op::Now { d }
                | Op::LocalTime { d }
                | Op::Weekday { d }
                | Op::Hist { d, .. } => regs_ok(&[d]),
                Op::Load { d, slot } => regs_ok(&[d]) && usize::from(slot) < nslots,
                Op::LoadText { d, slot } => {
                    regs_ok(&[d])
                        && matches!(slot_kind(slot), Some(FieldType::Text | FieldType::Phone))
                }
                Op::InSet { d, a, slot } => {
                    regs_ok(&[d, a]) && matches!(slot_kind(slot), Some(FieldType::TextSet))
                }
                Op::Not { d, a } | Op::Neg { d, a } | Op::IsNone { d, a } | Op::Unwrap { d, a } => {
                    regs_ok(&[d, a])
                }
                Op::Arith { d, a, b, .. }
                | Op::Cmp { d, a, b, .. }
                | Op::TextEq { d, a, b, .. } => regs_ok(&[d, a, b]),
                Op::JumpIfFalse { c, to } | Op::JumpIfTrue { c, to } | Op::JumpIfSet { c, to } => {
                    regs_ok(&[c]) && to as usize > pc && to < seg.end
                }
                Op::Jump { to } => to as usize > pc && to < seg.end,
                Op::Require { c, cond } | Op::RequireNot { c, cond } => {
                    regs_ok(&[c]) && usize::from(cond) < nconds
                }
                Op::CmpConst { d, a, .. } => regs_ok(&[d, a]),
                Op::CmpField { d, slot, .. } | Op::Since { d, slot } => {
                    regs_ok(&[d]) && usize::from(slot) < nslots
                }
                Op::RequireSince { slot, cond, .. } => {
                    usize::from(slot) < nslots && usize::from(cond) < nconds
                }
                Op::RequireFieldCmp { slot, cond, .. } => {
                    usize::from(slot) < nslots && usize::from(cond) < nconds
                }
                Op::Emit { prio, script, line } => {
                    seg.rule.is_some()
                        && pc + 1 == seg.end as usize
                        && regs_ok(&[prio])
                        && (script == NO_REG || regs_ok(&[script]))
                        && (line == NO_REG || regs_ok(&[line]))
                }
            };
            if !ok {
                return fail(pc, &format!("invalid instruction {op:?}"));
            }
        }
    }
    if expected_start as usize != code.ops.len() {
        return fail(expected_start as usize, "code after the last segment");
    }
    let _ = texts;
    Ok(())
}

/// The local time at `now`, computed at most once per decision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Local(i64);

/// `Local` not computed yet, and `Local` that could not be computed: no
/// local time is this far from the epoch.
const LOCAL_UNSET: i64 = i64::MIN;
const LOCAL_ERR: i64 = i64::MIN + 1;

impl Local {
    pub(crate) const fn new() -> Local {
        Local(LOCAL_UNSET)
    }

    #[inline(always)]
    fn get(&mut self, cx: &Ctx) -> Result<i64, EvalError> {
        if self.0 == LOCAL_UNSET {
            self.0 = match cx.local_at(cx.now) {
                Ok(v) if v > LOCAL_ERR => v,
                _ => LOCAL_ERR,
            };
        }
        if self.0 == LOCAL_ERR {
            Err(EvalError::Zone)
        } else {
            Ok(self.0)
        }
    }
}

/// Runs one segment: its leading conditions, then the rest of its code.
#[inline(always)]
pub(crate) fn run_fast(
    code: &Code,
    seg: &Segment,
    fast: &Fast,
    cx: &Ctx,
    local: &mut Local,
) -> SegResult {
    let pre = &code.pre;
    let hists = pre.hists(fast);
    if !(hists_hold(hists, cx.hist) & record_preds_hold(pre.sinces(fast), pre.ranges(fast), cx)) {
        return SegResult::Failed;
    }
    match fast.out {
        Some((prio, script, line)) => SegResult::Fired { prio, script, line },
        None => run_rest(code, seg, fast, cx, local),
    }
}

/// The bytecode of a segment after its leading conditions, which hold.
#[inline(never)]
pub(crate) fn run_rest(
    code: &Code,
    seg: &Segment,
    fast: &Fast,
    cx: &Ctx,
    local: &mut Local,
) -> SegResult {
    let mut regs = [0i64; NREGS];
    for p in code.pre.hists(fast) {
        regs[usize::from(p.reg & MASK)] = 1;
    }
    run_segment(code, *seg, fast.rest, cx, local, &mut regs)
}

/// Runs one segment. Never allocates; every jump is forward, so this loop
/// runs at most `end - start` times.
#[inline(always)]
pub(crate) fn run_segment(
    code: &Code,
    seg: Segment,
    from: u32,
    cx: &Ctx,
    local: &mut Local,
    r: &mut [i64; NREGS],
) -> SegResult {
    let ops = code
        .ops
        .get(seg.start as usize..seg.end as usize)
        .unwrap_or_default();
    let base = seg.start as usize;
    let mut pc = (from.saturating_sub(seg.start)) as usize;
    macro_rules! reg {
        ($x:expr) => {
            r[usize::from($x & MASK)]
        };
    }
    macro_rules! tryv {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(_) => return SegResult::Failed,
            }
        };
    }
    while let Some(op) = ops.get(pc) {
        pc += 1;
        match *op {
            Op::Const { d, v } => reg!(d) = v,
            Op::Load { d, slot } => {
                reg!(d) = cx.rec.words.get(usize::from(slot)).copied().unwrap_or(NONE)
            }
            Op::LoadText { d, slot } => {
                reg!(d) = match cx.rec.words.get(usize::from(slot)).copied().unwrap_or(NONE) {
                    NONE => NONE,
                    w => -(w + 2),
                }
            }
            Op::Now { d } => reg!(d) = cx.now,
            Op::LocalTime { d } => {
                let l = local.get(cx);
                reg!(d) = tryv!(l).rem_euclid(DAY);
            }
            Op::Weekday { d } => {
                let l = local.get(cx);
                reg!(d) = (tryv!(l).div_euclid(DAY) + 3).rem_euclid(7);
            }
            Op::Hist {
                d,
                f: HistField::CallsToday,
            } => {
                let l = local.get(cx);
                reg!(d) = tryv!(cx.calls_today(tryv!(l)));
            }
            Op::Hist { d, f } => reg!(d) = tryv!(cx.hist(f)),
            Op::Not { d, a } => reg!(d) = i64::from(reg!(a) == 0),
            Op::Neg { d, a } => reg!(d) = tryv!(reg!(a).checked_neg().ok_or(EvalError::Overflow)),
            Op::Arith { op, d, a, b } => reg!(d) = tryv!(arith(op, reg!(a), reg!(b))),
            Op::Cmp { op, d, a, b } => reg!(d) = i64::from(op.apply(reg!(a), reg!(b))),
            Op::TextEq { eq, d, a, b } => {
                let x = tryv!(cx.text(reg!(a)));
                let y = tryv!(cx.text(reg!(b)));
                reg!(d) = i64::from((x == y) == eq);
            }
            Op::InSet { d, a, slot } => {
                let t = tryv!(cx.text(reg!(a)));
                let w = cx.rec.words.get(usize::from(slot)).copied().unwrap_or(NONE);
                if w == NONE {
                    return SegResult::Failed;
                }
                reg!(d) = i64::from(cx.rec.set(w).iter().any(|x| x == t));
            }
            Op::IsNone { d, a } => reg!(d) = i64::from(reg!(a) == NONE),
            Op::Unwrap { d, a } => {
                if reg!(a) == NONE {
                    return SegResult::Failed;
                }
                reg!(d) = reg!(a);
            }
            Op::JumpIfFalse { c, to } => {
                if reg!(c) == 0 {
                    pc = to as usize - base;
                }
            }
            Op::JumpIfTrue { c, to } => {
                if reg!(c) != 0 {
                    pc = to as usize - base;
                }
            }
            Op::JumpIfSet { c, to } => {
                if reg!(c) != NONE {
                    pc = to as usize - base;
                }
            }
            Op::Jump { to } => pc = to as usize - base,
            Op::Require { c, .. } => {
                if reg!(c) == 0 {
                    return SegResult::Failed;
                }
            }
            Op::RequireNot { c, .. } => {
                if reg!(c) != 0 {
                    return SegResult::Failed;
                }
            }
            Op::CmpConst { op, d, a, v } => reg!(d) = i64::from(op.apply(reg!(a), v)),
            Op::CmpField { op, d, slot, v } => {
                reg!(d) = i64::from(op.apply(
                    cx.rec.words.get(usize::from(slot)).copied().unwrap_or(NONE),
                    v,
                ))
            }
            Op::Since { d, slot } => {
                let w = cx.rec.words.get(usize::from(slot)).copied().unwrap_or(NONE);
                if w == NONE {
                    return SegResult::Failed;
                }
                reg!(d) = tryv!(arith(ArithOp::Sub, cx.now, w));
            }
            Op::RequireSince { op, slot, v, .. } => {
                let w = cx.rec.words.get(usize::from(slot)).copied().unwrap_or(NONE);
                if w == NONE {
                    return SegResult::Failed;
                }
                if !op.apply(tryv!(arith(ArithOp::Sub, cx.now, w)), v) {
                    return SegResult::Failed;
                }
            }
            Op::RequireFieldCmp { op, slot, v, .. } => {
                if !op.apply(
                    cx.rec.words.get(usize::from(slot)).copied().unwrap_or(NONE),
                    v,
                ) {
                    return SegResult::Failed;
                }
            }
            Op::Emit { prio, script, line } => {
                let get = |x: u8| {
                    if x == NO_REG {
                        NONE
                    } else {
                        r[usize::from(x & MASK)]
                    }
                };
                return SegResult::Fired {
                    prio: reg!(prio),
                    script: get(script),
                    line: get(line),
                };
            }
        }
    }
    // The policy segment has no `Emit`: reaching its end means it passed.
    SegResult::Fired {
        prio: 0,
        script: NONE,
        line: NONE,
    }
}

/// Human-readable bytecode, as pinned by the golden tests.
pub fn disasm(code: &Code, schema: &Schema, texts: &[String], rule_names: &[&str]) -> String {
    let mut out = String::new();
    let slot = |s: u16| {
        schema
            .fields
            .get(usize::from(s))
            .map_or_else(|| format!("slot{s}"), |f| format!("customer.{}", f.name))
    };
    let targets: Vec<u32> = code
        .ops
        .iter()
        .filter_map(|o| match o {
            Op::JumpIfFalse { to, .. }
            | Op::JumpIfTrue { to, .. }
            | Op::JumpIfSet { to, .. }
            | Op::Jump { to } => Some(*to),
            _ => None,
        })
        .collect();
    let shown = |v: i64| {
        if v == NONE {
            "none".to_string()
        } else {
            v.to_string()
        }
    };
    for seg in &code.segments {
        match seg.rule {
            None => out.push_str("policy:\n"),
            Some(i) => {
                let _ = writeln!(
                    out,
                    "rule {}:",
                    rule_names.get(usize::from(i)).copied().unwrap_or("?")
                );
            }
        }
        for pc in seg.start..seg.end {
            let op = code.ops[pc as usize];
            let mark = if targets.contains(&pc) { ">" } else { " " };
            let text = match op {
                Op::Const { d, v } => {
                    let shown = if v == NONE {
                        "none".to_string()
                    } else {
                        v.to_string()
                    };
                    let hint = usize::try_from(v)
                        .ok()
                        .and_then(|i| texts.get(i))
                        .map(|t| format!("  ; or \"{t}\""))
                        .unwrap_or_default();
                    format!("const     r{d}, {shown}{hint}")
                }
                Op::Load { d, slot: s } => format!("load      r{d}, {}", slot(s)),
                Op::LoadText { d, slot: s } => format!("loadtext  r{d}, {}", slot(s)),
                Op::Now { d } => format!("now       r{d}"),
                Op::LocalTime { d } => format!("localtime r{d}"),
                Op::Weekday { d } => format!("weekday   r{d}"),
                Op::Hist { d, f } => format!("hist      r{d}, history.{}", f.name()),
                Op::Not { d, a } => format!("not       r{d}, r{a}"),
                Op::Neg { d, a } => format!("neg       r{d}, r{a}"),
                Op::Arith { op, d, a, b } => {
                    let n = match op {
                        ArithOp::Add => "add",
                        ArithOp::Sub => "sub",
                        ArithOp::Mul => "mul",
                    };
                    format!("{n:<9} r{d}, r{a}, r{b}")
                }
                Op::Cmp { op, d, a, b } => format!("{:<9} r{d}, r{a}, r{b}", op.name()),
                Op::TextEq { eq, d, a, b } => format!(
                    "{:<9} r{d}, r{a}, r{b}",
                    if eq { "texteq" } else { "textne" }
                ),
                Op::InSet { d, a, slot: s } => format!("inset     r{d}, r{a}, {}", slot(s)),
                Op::IsNone { d, a } => format!("isnone    r{d}, r{a}"),
                Op::Unwrap { d, a } => format!("unwrap    r{d}, r{a}"),
                Op::JumpIfFalse { c, to } => format!("jfalse    r{c}, {to}"),
                Op::JumpIfTrue { c, to } => format!("jtrue     r{c}, {to}"),
                Op::JumpIfSet { c, to } => format!("jset      r{c}, {to}"),
                Op::Jump { to } => format!("jump      {to}"),
                Op::Require { c, cond } => format!("require   r{c}, #{cond}"),
                Op::RequireNot { c, cond } => format!("requirenot r{c}, #{cond}"),
                Op::CmpField { op, d, slot: s, v } => format!(
                    "{:<9} r{d}, {}, {}",
                    format!("{}f", op.name()),
                    slot(s),
                    shown(v)
                ),
                Op::Since { d, slot: s } => format!("since     r{d}, {}", slot(s)),
                Op::RequireSince {
                    op,
                    slot: s,
                    v,
                    cond,
                } => format!("require   now - {} {} {v}, #{cond}", slot(s), op.name()),
                Op::CmpConst { op, d, a, v } => {
                    format!("{:<9} r{d}, r{a}, {v}", format!("{}k", op.name()))
                }
                Op::RequireFieldCmp {
                    op,
                    slot: s,
                    v,
                    cond,
                } => format!("require   {} {} {}, #{cond}", slot(s), op.name(), shown(v)),
                Op::Emit { prio, script, line } => {
                    let o = |x: u8| {
                        if x == NO_REG {
                            "-".to_string()
                        } else {
                            format!("r{x}")
                        }
                    };
                    format!(
                        "emit      prio={}, script={}, line={}",
                        o(prio),
                        o(script),
                        o(line)
                    )
                }
            };
            let _ = writeln!(out, "{mark}{pc:>4}: {text}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every comparison.
    const OPS: [CmpOp; 6] = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ];

    #[test]
    fn comparison_masks_agree_with_the_comparisons() {
        let vals = [
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            1,
            7200,
            i64::MAX - 1,
            i64::MAX,
        ];
        for op in OPS {
            for a in vals {
                for b in vals {
                    assert_eq!(
                        test_mask(cmp_mask(op), a, b),
                        op.apply(a, b),
                        "{op:?} {a} {b}"
                    );
                    assert_eq!(
                        Range::of(0, op, b).is_none_or(|r| r.holds(a)),
                        op.apply(a, b),
                        "{op:?} {a} {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn intersections_hold_where_both_ranges_do() {
        let vals = [i64::MIN, i64::MIN + 1, -3, 0, 2, 5, i64::MAX - 1, i64::MAX];
        let ranges: Vec<Range> = OPS
            .iter()
            .flat_map(|op| vals.iter().filter_map(|v| Range::of(0, *op, *v)))
            .filter(Range::is_plain)
            .collect();
        for a in &ranges {
            for b in &ranges {
                let c = a.intersect(b);
                assert!(c.is_plain() || c.is_empty());
                for x in vals
                    .iter()
                    .flat_map(|x| [x.saturating_sub(1), *x, x.saturating_add(1)])
                {
                    assert_eq!(
                        !c.is_empty() && c.spans(x),
                        a.holds(x) && b.holds(x),
                        "{a:?} {b:?} {x}"
                    );
                    assert!(!c.is_empty() || !c.holds(x));
                }
            }
        }
    }

    #[test]
    fn since_ranges_agree_with_since() {
        let vals = [
            i64::MIN,
            i64::MIN + 1,
            i64::MIN + 2,
            -7200,
            -1,
            0,
            1,
            7200,
            1_773_000_000,
            i64::MAX - 1,
            i64::MAX,
        ];
        for op in OPS {
            for v in vals {
                let s = Since {
                    slot: 0,
                    op,
                    mask: cmp_mask(op),
                    tag: 0,
                    v,
                };
                for now in vals {
                    let r = s.at(now);
                    let near = now.saturating_sub(v);
                    let nears = [near.saturating_sub(1), near, near.saturating_add(1)];
                    let ws = vals
                        .iter()
                        .chain(&nears)
                        .flat_map(|w| [w.saturating_sub(1), *w, w.saturating_add(1)]);
                    for w in ws {
                        assert_eq!(
                            r.is_none_or(|r| r.holds(w)),
                            s.holds(now, w),
                            "{op:?} v={v} now={now} w={w}"
                        );
                    }
                }
            }
        }
    }
}
