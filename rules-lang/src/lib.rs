//! dialhound-rules: the `.rules` language.
//!
//! A one-way pipeline, one module per stage: [`parse`] (pest grammar to an
//! AST with spans) → [`check`] (type checking against the schema, lowering
//! to typed [`ir`]) → [`ir::optimise`] → [`vm`] (register bytecode with
//! forward jumps only, verified once at load) → evaluation. [`eval`] holds
//! the reference tree-walker the VM is tested against; [`wake`] computes the
//! next moment a decision can change; [`format`] prints canonical source.
//! [`script`] holds the compiled call flows and their runner, [`sms`] the
//! SMS templates and the arithmetic of SMS parts, [`intent`] the intents a
//! script listens for and the matching of a transcript against them.
//!
//! ```
//! let src = r#"
//! schema customer {
//!   zone timezone = "Asia/Shanghai"
//!   paid bool
//! }
//! policy { calling hours 09:00-21:00 local }
//! rule remind { when not customer.paid  priority 10  script "remind" }
//! "#;
//! let program = dialhound_rules::compile(src, "remind.rules").unwrap();
//! let record = dialhound_rules::Record::from_json(
//!     program.schema(), &serde_json::json!({"paid": false})).unwrap();
//! let history = dialhound_rules::History::new();
//! let now: jiff::Timestamp = "2026-03-09T02:00:00Z".parse().unwrap(); // 10:00 in Shanghai
//! let d = program.decide(&record, &history, now);
//! assert_eq!(d.rule_name, Some("remind"));
//! ```

pub mod ast;
pub mod check;
pub mod diag;
pub mod error;
pub mod eval;
pub mod format;
pub mod intent;
pub mod ir;
pub mod parse;
pub mod record;
pub mod script;
mod sending;
pub mod sms;
pub mod vm;
pub mod wake;

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use crate::check::{Expect, ExpectSms, ScriptTest, SmsTest, TestCase, TestInput};
pub use crate::diag::{Diagnostic, Diagnostics};
pub use crate::error::{EvalError, RecordError, VerifyError};
pub use crate::format::format;
pub use crate::intent::{Intent, IntentMatch, Language};
pub use crate::ir::Fallback;
pub use crate::record::{Field, FieldType, History, Outcome, Record, Schema, Value};
pub use crate::script::{Action, Script, ScriptEvent, ScriptRun, Step, Template, Trigger};
pub use crate::sending::{DEFAULT_SMS_WITHIN, SmsFollowUp, SmsSend};
pub use crate::sms::{Coding, SmsTemplate};
pub use crate::wake::DEFAULT_HORIZON;

use crate::eval::Ctx;
use crate::ir::{Cond, RuleIr};
use crate::record::NONE;
use crate::vm::{Code, SegResult};

/// A compiled, verified rules file.
#[derive(Debug, Clone)]
pub struct Program {
    file_name: String,
    schema: Schema,
    texts: Vec<String>,
    policy: Vec<Cond>,
    /// Rules as written, for the reference evaluator and `explain`.
    rules: Vec<RuleIr>,
    code: Code,
    tests: Vec<TestCase>,
    scripts: Vec<Script>,
    sms: Vec<SmsTemplate>,
    intents: Vec<std::sync::Arc<Intent>>,
    zone_slot: Option<usize>,
    /// The policy conditions and rule expressions that can change with
    /// `now` alone: the only ones the next-wake analysis walks.
    wake_exprs: Vec<ir::Ir>,
}

/// The decision for one customer at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Index of the winning rule in file order; `None` means do not call.
    pub rule: Option<usize>,
    pub rule_name: Option<&'a str>,
    pub priority: i64,
    pub script: Option<&'a str>,
    /// The line tier, such as `premium`.
    pub line: Option<&'a str>,
    pub fallback: Option<&'a Fallback>,
}

impl Decision<'_> {
    pub const NONE: Decision<'static> = Decision {
        rule: None,
        rule_name: None,
        priority: 0,
        script: None,
        line: None,
        fallback: None,
    };

    pub fn eligible(&self) -> bool {
        self.rule.is_some()
    }
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule_name {
            None => f.write_str("do not call"),
            Some(name) => {
                write!(f, "call by rule `{name}` with priority {}", self.priority)?;
                if let Some(s) = self.script {
                    write!(f, ", script \"{s}\"")?;
                }
                if let Some(l) = self.line {
                    write!(f, ", line {l}")?;
                }
                if let Some(fb) = self.fallback {
                    write!(f, ", on {} send sms \"{}\"", fb.outcome.name(), fb.template)?;
                }
                Ok(())
            }
        }
    }
}

/// Parses, type checks, optimises, compiles and verifies a rules file.
/// Every error in the file is reported at once.
pub fn compile(source: &str, file_name: &str) -> Result<Program, Diagnostics> {
    let file = parse::parse_file(source).map_err(|e| Diagnostics::new(file_name, e))?;
    let checked = check::check(&file, source).map_err(|e| Diagnostics::new(file_name, e))?;
    let mut optimised = checked.rules.clone();
    for r in &mut optimised {
        ir::optimise(r);
    }
    let mut policy = checked.policy.clone();
    for c in &mut policy {
        c.ir = ir::fold(std::mem::replace(&mut c.ir, ir::Ir::Const(0)));
    }
    let code = vm::compile(&policy, &optimised).map_err(|msg| {
        Diagnostics::new(
            file_name,
            vec![Diagnostic::new(0..0, msg).with_help("split the rule into simpler `let`s")],
        )
    })?;
    let mut conds = vec![policy.len()];
    conds.extend(optimised.iter().map(|r| r.conds.len()));
    vm::verify(&code, &checked.schema, checked.texts.len(), &conds).map_err(|e| {
        Diagnostics::new(
            file_name,
            vec![Diagnostic::new(0..0, format!("internal error: {e}"))],
        )
    })?;
    let wake_exprs = policy
        .iter()
        .map(|c| &c.ir)
        .chain(optimised.iter().flat_map(|r| {
            r.conds
                .iter()
                .map(|c| &c.ir)
                .chain(std::iter::once(&r.priority))
                .chain(r.script.iter())
                .chain(r.line.iter())
        }))
        .filter(|ir| ir::depends_on_now(ir))
        .cloned()
        .collect();
    Ok(Program {
        wake_exprs,
        zone_slot: checked.schema.zone_slot(),
        file_name: file_name.to_string(),
        schema: checked.schema,
        texts: checked.texts,
        policy,
        rules: checked.rules,
        code,
        tests: checked.tests,
        scripts: checked.scripts,
        sms: checked.sms,
        intents: checked.intents,
    })
}

/// Seconds since the epoch, rounded down: the language's clock resolution.
pub fn seconds(t: Timestamp) -> i64 {
    t.as_second()
}

impl Program {
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The customer schema declared by the file.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// The script declared as `script NAME { ... }`, if any.
    pub fn script(&self, name: &str) -> Option<&Script> {
        self.scripts.iter().find(|s| s.name == name)
    }

    /// The names of the declared scripts, in file order. Empty for a file
    /// without scripts: the engine then uses its default script.
    pub fn script_names(&self) -> Vec<&str> {
        self.scripts.iter().map(|s| s.name.as_str()).collect()
    }

    /// A runner for the script `name` for the customer in `record`.
    pub fn run_script<'a>(&'a self, name: &str, record: &'a Record) -> Option<ScriptRun<'a>> {
        self.script(name)
            .map(|s| ScriptRun::new(s, record, &self.schema))
    }

    /// The intent declared as `intent NAME { ... }`, if any.
    pub fn intent(&self, name: &str) -> Option<&Intent> {
        self.intents
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.as_ref())
    }

    /// The names of the declared intents, in file order.
    pub fn intent_names(&self) -> Vec<&str> {
        self.intents.iter().map(|i| i.name.as_str()).collect()
    }

    /// The SMS template declared as `sms NAME { ... }`, if any.
    pub fn sms_template(&self, name: &str) -> Option<&SmsTemplate> {
        self.sms.iter().find(|s| s.name == name)
    }

    /// The names of the declared SMS templates, in file order.
    pub fn sms_names(&self) -> Vec<&str> {
        self.sms.iter().map(|s| s.name.as_str()).collect()
    }

    /// The text of the SMS template `name` for the customer in `record`,
    /// with `link` for every `{link}`; `None` when no such template is
    /// declared.
    pub fn render_sms(&self, name: &str, record: &Record, link: &str) -> Option<String> {
        self.sms_template(name)
            .map(|s| s.render(record, &self.schema, link))
    }

    /// The test cases declared in the file.
    pub fn tests(&self) -> &[TestCase] {
        &self.tests
    }

    pub(crate) fn ctx<'a>(&'a self, record: &'a Record, history: &'a History, now: i64) -> Ctx<'a> {
        Ctx {
            texts: &self.texts,
            rec: record,
            hist: history,
            zone_slot: self.zone_slot,
            now,
        }
    }

    /// Decides for one customer at `now` with the bytecode VM. Never
    /// allocates, never panics; rules whose evaluation fails do not fire.
    pub fn decide<'a>(
        &'a self,
        record: &'a Record,
        history: &History,
        now: Timestamp,
    ) -> Decision<'a> {
        self.decide_at(record, history, now.as_second())
    }

    pub(crate) fn decide_at<'a>(
        &'a self,
        record: &'a Record,
        history: &History,
        now: i64,
    ) -> Decision<'a> {
        let cx = self.ctx(record, history, now);
        let code = &self.code;
        if let Some(sm) = &code.simple {
            let fail = vm::simple_failures(sm, &record.words, history, now);
            let ok = !fail & ((1u64 << sm.ranked.len()) - 1);
            if (fail >> vm::POLICY_BIT) & 1 != 0 || ok == 0 {
                return Decision::NONE;
            }
            return match sm.ranked.get(ok.trailing_zeros() as usize) {
                Some(&(i, prio, script, line)) => self.decision(record, i, prio, script, line),
                None => Decision::NONE,
            };
        }
        let mut local = vm::Local::new();
        if code.segments.is_empty() {
            return Decision::NONE;
        }
        // Segment 0 is the policy; the others are the rules.
        let mut best: Option<(usize, i64, i64, i64)> = None;
        for (i, (seg, fast)) in code.segments.iter().zip(&code.pre.fast).enumerate() {
            match vm::run_fast(code, seg, fast, &cx, &mut local) {
                SegResult::Failed if i == 0 => return Decision::NONE,
                SegResult::Fired { prio, script, line }
                    if i > 0 && best.is_none_or(|b| prio > b.1) =>
                {
                    best = Some((usize::from(seg.rule.unwrap_or(0)), prio, script, line));
                }
                _ => {}
            }
        }
        match best {
            None => Decision::NONE,
            Some((i, prio, script, line)) => self.decision(record, i, prio, script, line),
        }
    }

    /// Decides for many customers that share one contact history (such as
    /// a freshly imported list nobody has called yet) at the same instant,
    /// calling `each` with the index of each record and its decision, in
    /// order. The same decisions as [`Program::decide`] record by record;
    /// the work that depends only on the history and `now` is done once.
    /// Never allocates, never panics.
    pub fn decide_batch<'a>(
        &'a self,
        records: &'a [Record],
        history: &History,
        now: Timestamp,
        mut each: impl FnMut(usize, Decision<'a>),
    ) {
        let now = now.as_second();
        match self.batch_plan(history, now) {
            Some(plan) if plan.never => {
                for i in 0..records.len() {
                    each(i, Decision::NONE);
                }
            }
            Some(plan) if plan.by_rank && plan.nsegs == 1 => {
                // One rule: it fires exactly when its ranges hold.
                let plain = plan.flat.get(..plan.nplain).unwrap_or_default();
                let other = plan.flat.get(plan.nplain..plan.nflat).unwrap_or_default();
                let inline = vm::inline_slots(plain) && vm::inline_slots(other);
                let d = plan.ranked[0];
                if inline && other.is_empty() {
                    // The ranges copied into a fixed-size array, so that
                    // the test of each record unrolls.
                    let done = match plain.len() {
                        1 => one_rule_batch::<1>(records, plain, d, &mut each),
                        2 => one_rule_batch::<2>(records, plain, d, &mut each),
                        3 => one_rule_batch::<3>(records, plain, d, &mut each),
                        4 => one_rule_batch::<4>(records, plain, d, &mut each),
                        5 => one_rule_batch::<5>(records, plain, d, &mut each),
                        6 => one_rule_batch::<6>(records, plain, d, &mut each),
                        7 => one_rule_batch::<7>(records, plain, d, &mut each),
                        8 => one_rule_batch::<8>(records, plain, d, &mut each),
                        _ => false,
                    };
                    if done {
                        return;
                    }
                }
                for (i, record) in records.iter().enumerate() {
                    let ok = vm::all_hold(plain, other, &record.words, inline);
                    each(i, if ok { d } else { Decision::NONE });
                }
            }
            Some(plan) if plan.by_rank => {
                let plain = plan.flat.get(..plan.nplain).unwrap_or_default();
                let other = plan.flat.get(plan.nplain..plan.nflat).unwrap_or_default();
                let inline = vm::inline_slots(plain) && vm::inline_slots(other);
                let all = (1u64 << plan.nsegs) - 1;
                for (i, record) in records.iter().enumerate() {
                    let ok = !vm::failing_tags_of(plain, other, &record.words, inline) & all;
                    let d = match ok {
                        0 => Decision::NONE,
                        _ => plan
                            .ranked
                            .get(ok.trailing_zeros() as usize)
                            .copied()
                            .unwrap_or(Decision::NONE),
                    };
                    each(i, d);
                }
            }
            Some(plan) => {
                for (i, record) in records.iter().enumerate() {
                    each(i, self.decide_planned(record, history, now, &plan));
                }
            }
            None => {
                for (i, r) in records.iter().enumerate() {
                    each(i, self.decide_at(r, history, now));
                }
            }
        }
    }

    /// What a batch at `now` with `history` needs to check per record: each
    /// segment whose history conditions hold, with its record conditions
    /// as ranges. `None` when the program is too large for the plan.
    fn batch_plan(&self, history: &History, now: i64) -> Option<BatchPlan<'_>> {
        let code = &self.code;
        let pre = &code.pre;
        let mut plan = BatchPlan {
            never: false,
            ranges: [vm::EMPTY_RANGE; BATCH_RANGES],
            nranges: 0,
            flat: [vm::EMPTY_RANGE; BATCH_RANGES],
            nplain: 0,
            nflat: 0,
            by_rank: false,
            ranked: [Decision::NONE; BATCH_SEGS],
            segs: [PlanSeg::default(); BATCH_SEGS],
            nsegs: 0,
            gate: false,
        };
        for (i, (seg, fast)) in code.segments.iter().zip(&pre.fast).enumerate() {
            if !vm::hists_hold(pre.hists(fast), history) {
                if i == 0 {
                    plan.never = true;
                    return Some(plan);
                }
                continue;
            }
            // Plain ranges first, one per slot, then ranges with an
            // excluded word.
            let lo = plan.nranges;
            let all = || {
                let resolved = pre.sinces(fast).iter().filter_map(|s| s.at(now));
                resolved.chain(pre.ranges(fast).iter().copied())
            };
            let mut never = false;
            for r in all().filter(vm::Range::is_plain) {
                let same = plan
                    .ranges
                    .get_mut(lo..plan.nranges)?
                    .iter_mut()
                    .find(|q| q.slot == r.slot);
                match same {
                    Some(q) => *q = q.intersect(&r),
                    None => {
                        *plan.ranges.get_mut(plan.nranges)? = r;
                        plan.nranges += 1;
                    }
                }
            }
            let mid = plan.nranges;
            for r in all().filter(|r| !r.is_plain()) {
                *plan.ranges.get_mut(plan.nranges)? = r;
                plan.nranges += 1;
            }
            let hi = plan.nranges;
            for r in plan.ranges.get(lo..hi)? {
                never |= r.is_empty();
            }
            if never {
                plan.nranges = lo;
                if i == 0 {
                    plan.never = true;
                    return Some(plan);
                }
                continue;
            }
            // Constant outputs from program texts make the same decision
            // for every record.
            let out = fast
                .out
                .filter(|&(_, s, l)| (s == NONE || s >= 0) && (l == NONE || l >= 0));
            if i == 0 {
                if hi == lo && out.is_some() {
                    continue;
                }
                plan.gate = true;
            }
            *plan.segs.get_mut(plan.nsegs)? = PlanSeg {
                seg: i,
                lo,
                mid,
                hi,
                out: out.map(|(prio, script, line)| {
                    let rule = usize::from(seg.rule.unwrap_or(0));
                    (prio, self.decision_with(None, rule, prio, script, line))
                }),
            };
            plan.nsegs += 1;
        }
        // When every segment is a rule with constant outputs, tag them by
        // rank (highest priority first, then file order): the first rank
        // whose ranges all hold wins.
        let segs = plan.segs.get(..plan.nsegs)?;
        let mut rank: [usize; BATCH_SEGS] = std::array::from_fn(|k| k);
        if !plan.gate && segs.iter().all(|ps| ps.out.is_some()) {
            let prio = |k: usize| segs.get(k).and_then(|ps| ps.out).map_or(0, |o| o.0);
            let mut order: [usize; BATCH_SEGS] = std::array::from_fn(|k| k);
            let order = order.get_mut(..plan.nsegs)?;
            vm::sort_by_rank(order, prio);
            for (r, &k) in order.iter().enumerate() {
                *rank.get_mut(k)? = r;
                *plan.ranked.get_mut(r)? = segs.get(k)?.out.map_or(Decision::NONE, |o| o.1);
            }
            plan.by_rank = true;
        }
        // All plain ranges, then all others, each tagged with its segment
        // (or its rank).
        for k in 0..plan.nsegs {
            let ps = *plan.segs.get(k)?;
            let k = if plan.by_rank { *rank.get(k)? } else { k };
            for r in plan.ranges.get(ps.lo..ps.mid)? {
                *plan.flat.get_mut(plan.nplain)? = vm::Range { tag: k as u8, ..*r };
                plan.nplain += 1;
            }
        }
        plan.nflat = plan.nplain;
        for k in 0..plan.nsegs {
            let ps = *plan.segs.get(k)?;
            let k = if plan.by_rank { *rank.get(k)? } else { k };
            for r in plan.ranges.get(ps.mid..ps.hi)? {
                *plan.flat.get_mut(plan.nflat)? = vm::Range { tag: k as u8, ..*r };
                plan.nflat += 1;
            }
        }
        Some(plan)
    }

    /// `decide_at` following a batch plan.
    #[inline(always)]
    fn decide_planned<'a>(
        &'a self,
        record: &'a Record,
        history: &History,
        now: i64,
        plan: &BatchPlan<'a>,
    ) -> Decision<'a> {
        let words = record.words.as_slice();
        let mut local = vm::Local::new();
        let mut best: Option<(i64, Best<'a>)> = None;
        let segs = plan.segs.get(..plan.nsegs).unwrap_or_default();
        let plain = plan.flat.get(..plan.nplain).unwrap_or_default();
        let other = plan.flat.get(plan.nplain..plan.nflat).unwrap_or_default();
        let fail = vm::failing_tags(plain, other, words);
        for (k, ps) in segs.iter().enumerate() {
            let holds = (fail >> k) & 1 == 0;
            let fired = match (holds, &ps.out) {
                (false, _) => None,
                (true, Some((prio, d))) => Some((*prio, Best::Made(*d))),
                (true, None) => {
                    let (Some(seg), Some(fast)) = (
                        self.code.segments.get(ps.seg),
                        self.code.pre.fast.get(ps.seg),
                    ) else {
                        return Decision::NONE;
                    };
                    let cx = self.ctx(record, history, now);
                    match vm::run_rest(&self.code, seg, fast, &cx, &mut local) {
                        SegResult::Failed => None,
                        SegResult::Fired { prio, script, line } => {
                            let rule = usize::from(seg.rule.unwrap_or(0));
                            Some((prio, Best::Outputs(rule, script, line)))
                        }
                    }
                }
            };
            if k == 0 && plan.gate {
                if fired.is_none() {
                    return Decision::NONE;
                }
                continue;
            }
            if let Some((prio, b)) = fired
                && best.as_ref().is_none_or(|(p, _)| prio > *p)
            {
                best = Some((prio, b));
            }
        }
        match best {
            None => Decision::NONE,
            Some((_, Best::Made(d))) => d,
            Some((prio, Best::Outputs(i, script, line))) => {
                self.decision(record, i, prio, script, line)
            }
        }
    }

    #[inline]
    fn decision<'a>(
        &'a self,
        rec: &'a Record,
        i: usize,
        prio: i64,
        script: i64,
        line: i64,
    ) -> Decision<'a> {
        self.decision_with(Some(rec), i, prio, script, line)
    }

    /// The decision for rule `i` with these outputs; text references to a
    /// record need `rec`.
    #[inline]
    fn decision_with<'a>(
        &'a self,
        rec: Option<&'a Record>,
        i: usize,
        prio: i64,
        script: i64,
        line: i64,
    ) -> Decision<'a> {
        let text = |v: i64| {
            if v == NONE {
                None
            } else if v >= 0 {
                usize::try_from(v)
                    .ok()
                    .and_then(|i| self.texts.get(i))
                    .map(String::as_str)
            } else {
                rec.and_then(|r| r.text(-(v + 2)))
            }
        };
        let rule = self.rules.get(i);
        Decision {
            rule: Some(i),
            rule_name: rule.map(|r| r.name.as_str()),
            priority: prio,
            script: text(script),
            line: text(line),
            fallback: rule.and_then(|r| r.fallback.as_ref()),
        }
    }

    /// The same decision by the reference tree-walking evaluator over the
    /// unoptimised IR. Slower; kept as the oracle.
    pub fn decide_reference<'a>(
        &'a self,
        record: &'a Record,
        history: &History,
        now: Timestamp,
    ) -> Decision<'a> {
        let cx = Ctx {
            texts: &self.texts,
            rec: record,
            hist: history,
            zone_slot: self.zone_slot,
            now: now.as_second(),
        };
        for c in &self.policy {
            if !matches!(eval::eval(&c.ir, &cx), Ok(v) if v != 0) {
                return Decision::NONE;
            }
        }
        let mut best: Option<(usize, i64, i64, i64)> = None;
        for (i, r) in self.rules.iter().enumerate() {
            if let Ok((prio, script, line)) = reference_rule(r, &cx)
                && best.is_none_or(|b| prio > b.1)
            {
                best = Some((i, prio, script, line));
            }
        }
        match best {
            None => Decision::NONE,
            Some((i, prio, script, line)) => self.decision(record, i, prio, script, line),
        }
    }

    /// The bytecode, one instruction per line.
    pub fn disasm(&self) -> String {
        let names: Vec<&str> = self.rules.iter().map(|r| r.name.as_str()).collect();
        vm::disasm(&self.code, &self.schema, &self.texts, &names)
    }

    /// Why the decision is what it is: the policy line or the first
    /// condition of each rule that failed, the next moment the decision can
    /// change, and the SMS after a call that ends at `now`: by the rule the
    /// decision calls by, or, when it calls by none, by each rule with an
    /// `on OUTCOME send sms` clause.
    pub fn explain(&self, record: &Record, history: &History, now: Timestamp) -> Explanation {
        let cx = self.ctx(record, history, now.as_second());
        let decision = self.decide(record, history, now);
        let mut policy_failure = None;
        for c in &self.policy {
            match eval::eval(&c.ir, &cx) {
                Ok(v) if v != 0 => {}
                Ok(_) => {
                    policy_failure = Some(format!("policy: `{}` does not hold", c.text));
                    break;
                }
                Err(e) => {
                    policy_failure =
                        Some(format!("policy: `{}` could not be evaluated: {e}", c.text));
                    break;
                }
            }
        }
        let mut rules = Vec::new();
        for r in &self.rules {
            let mut why = None;
            for c in &r.conds {
                match eval::eval(&c.ir, &cx) {
                    Ok(v) if v != 0 => {}
                    Ok(_) => {
                        why = Some(format!("`{}` is false", c.text));
                        break;
                    }
                    Err(e) => {
                        why = Some(format!("`{}` could not be evaluated: {e}", c.text));
                        break;
                    }
                }
            }
            if why.is_none()
                && let Err(e) = reference_rule(r, &cx)
            {
                why = Some(format!("its outputs could not be evaluated: {e}"));
            }
            rules.push((r.name.clone(), why));
        }
        let any_clause = self.rules.iter().any(|r| r.fallback.is_some());
        let sms = self
            .rules
            .iter()
            .filter(|r| match decision.rule_name {
                _ if !any_clause => false,
                Some(name) => r.name == name,
                None => r.fallback.is_some(),
            })
            .map(|r| SmsExplanation {
                rule: r.name.clone(),
                called: decision.rule_name == Some(r.name.as_str()),
                plan: r
                    .fallback
                    .as_ref()
                    .and_then(|fb| self.sms_plan(&r.name, fb.outcome, record, now)),
            })
            .collect();
        Explanation {
            decision: decision.to_string(),
            eligible: decision.eligible(),
            policy_failure,
            rules,
            next_change: self.next_wake(record, history, now),
            sms,
        }
    }

    /// The SMS a call by `rule` that ends at `ended` with `outcome` leads
    /// to, rendered for the customer in `record`.
    fn sms_plan(
        &self,
        rule: &str,
        outcome: Outcome,
        record: &Record,
        ended: Timestamp,
    ) -> Option<SmsPlan> {
        let follow_up = self.sms_after_call(rule, outcome, record, ended)?;
        let template = &follow_up.fallback.template;
        let declared = self.sms_template(template)?;
        let measured = declared.render(record, &self.schema, &"x".repeat(sms::LINK_LENGTH));
        let (coding, parts) = sms::parts(&measured);
        Some(SmsPlan {
            outcome,
            template: template.clone(),
            sender: declared.sender.clone(),
            text: declared.render(record, &self.schema, "{link}"),
            coding,
            parts,
            within: follow_up.fallback.within,
            ended,
            deadline: follow_up.deadline,
            send: follow_up.send,
            zone: script::customer_zone(record, &self.schema),
        })
    }

    /// The earliest instant after `now`, within [`DEFAULT_HORIZON`], at
    /// which the decision can change; `None` when it stays the same.
    pub fn next_wake(
        &self,
        record: &Record,
        history: &History,
        now: Timestamp,
    ) -> Option<Timestamp> {
        wake::next_change(self, record, history, now.as_second(), DEFAULT_HORIZON)
            .and_then(|t| Timestamp::from_second(t).ok())
    }

    /// The intervals `[start, end)` within `[from, from + horizon)` in which
    /// the customer is eligible.
    pub fn eligible_intervals(
        &self,
        record: &Record,
        history: &History,
        from: Timestamp,
        horizon_secs: i64,
    ) -> Vec<(Timestamp, Timestamp)> {
        wake::intervals(self, record, history, from.as_second(), horizon_secs)
            .into_iter()
            .filter_map(|(a, b)| {
                Some((
                    Timestamp::from_second(a).ok()?,
                    Timestamp::from_second(b).ok()?,
                ))
            })
            .collect()
    }

    /// Runs the file's `test` blocks with the VM (and checks the reference
    /// evaluator agrees).
    pub fn run_tests(&self) -> TestReport {
        let mut report = TestReport::default();
        for t in &self.tests {
            let now = Timestamp::from_second(t.now).unwrap_or(Timestamp::UNIX_EPOCH);
            let d = self.decide(&t.record, &t.history, now);
            let r = self.decide_reference(&t.record, &t.history, now);
            let mut problems = Vec::new();
            if (t.expect.is_some() || t.sms.is_some()) && d != r {
                problems.push(format!(
                    "the VM decided `{d}` but the reference evaluator `{r}`"
                ));
            }
            if let Some(run) = &t.run {
                self.run_script_test(run, &t.record, &mut problems);
            }
            if let Some(sms) = &t.sms {
                self.run_sms_test(sms, d.rule_name, &t.record, &mut problems);
            }
            match &t.expect {
                Some(Expect::None) if d.eligible() => {
                    problems.push(format!("expected no call, got: {d}"));
                }
                None | Some(Expect::None) => {}
                Some(Expect::Rule {
                    name,
                    priority,
                    script,
                    line,
                }) => {
                    if d.rule_name != Some(name.as_str()) {
                        problems.push(format!("expected rule `{name}`, got: {d}"));
                    } else {
                        if priority.is_some_and(|p| p != d.priority) {
                            problems.push(format!(
                                "expected priority {}, got {}",
                                priority.unwrap_or_default(),
                                d.priority
                            ));
                        }
                        if script.as_deref().is_some_and(|s| Some(s) != d.script) {
                            problems.push(format!(
                                "expected script \"{}\", got {:?}",
                                script.as_deref().unwrap_or_default(),
                                d.script
                            ));
                        }
                        if line.as_deref().is_some_and(|s| Some(s) != d.line) {
                            problems.push(format!(
                                "expected line {}, got {:?}",
                                line.as_deref().unwrap_or_default(),
                                d.line
                            ));
                        }
                    }
                }
            }
            report.results.push(TestResult {
                name: t.name.clone(),
                line: t.line,
                problems,
            });
        }
        report
    }
}

impl Program {
    /// Checks the SMS after the call of a test's decision (by the rule
    /// `rule`, `None` when the decision is not to call) against what the
    /// test expects.
    fn run_sms_test(
        &self,
        t: &SmsTest,
        rule: Option<&str>,
        record: &Record,
        problems: &mut Vec<String>,
    ) {
        let outcome = t.outcome.name();
        let ended = Timestamp::from_second(t.ended).unwrap_or(Timestamp::UNIX_EPOCH);
        let zone = script::customer_zone(record, &self.schema);
        let time = |at: Timestamp| script::local_time_text(at, &zone);
        let sent = rule.and_then(|r| {
            self.sms_after_call(r, t.outcome, record, ended)
                .map(|f| (r, f))
        });
        match (&t.expect, rule, sent) {
            (ExpectSms::None, _, None) => {}
            (ExpectSms::None, _, Some((_, f))) if f.send.time(ended).is_none() => {}
            (ExpectSms::None, _, Some((r, f))) => problems.push(format!(
                "expected no sms, the rule `{r}` sends `{}` on {outcome} at {}",
                f.fallback.template,
                time(f.send.time(ended).unwrap_or(ended))
            )),
            (ExpectSms::Sent { template, .. }, None, _) => problems.push(format!(
                "expected sms `{template}`, the decision is not to call, so no call ends with {outcome}"
            )),
            (ExpectSms::Sent { template, .. }, Some(r), None) => {
                let other = self
                    .rules
                    .iter()
                    .find(|x| x.name == r)
                    .and_then(|x| x.fallback.as_ref());
                problems.push(match other {
                    Some(fb) => format!(
                        "expected sms `{template}`, the rule `{r}` sends `{}` on {}, not on {outcome}",
                        fb.template,
                        fb.outcome.name()
                    ),
                    None => format!("expected sms `{template}`, the rule `{r}` sends no sms"),
                });
            }
            (ExpectSms::Sent { template, at }, Some(_), Some((r, f))) => {
                if f.fallback.template != *template {
                    problems.push(format!(
                        "expected sms `{template}`, the rule `{r}` sends `{}` on {outcome}",
                        f.fallback.template
                    ));
                    return;
                }
                let want = match at {
                    Some(at) => Timestamp::from_second(*at).unwrap_or(ended),
                    None => ended,
                };
                let expected = match at {
                    Some(_) => format!("expected sms `{template}` at {}", time(want)),
                    None => format!("expected sms `{template}` as the call ends"),
                };
                match &f.send {
                    SmsSend::NotSent { shut } => problems.push(format!(
                        "{expected}, it is not sent: `{shut}` stays shut until its deadline {}",
                        time(f.deadline)
                    )),
                    SmsSend::AtOnce if want != ended => problems.push(format!(
                        "{expected}, it is sent as the call ends, at {}",
                        time(ended)
                    )),
                    SmsSend::Later { at, held_by } if *at != want => problems.push(format!(
                        "{expected}, it is sent at {}: `{held_by}` holds it until then",
                        time(*at)
                    )),
                    SmsSend::AtOnce | SmsSend::Later { .. } => {}
                }
            }
        }
    }

    /// Runs a test's script with transcripts on: each prompt is played to
    /// its end, and each listen gets the test's next input (a transcript
    /// after the start of speech, a key, or a timeout), then a timeout once
    /// the inputs run out.
    fn run_script_test(&self, t: &ScriptTest, record: &Record, problems: &mut Vec<String>) {
        let Some(script) = self.script(&t.script) else {
            problems.push(format!("script `{}` is not declared", t.script));
            return;
        };
        let mut run = ScriptRun::new(script, record, &self.schema);
        run.set_transcripts(true);
        let mut inputs = t.inputs.iter();
        let mut actions = run.start();
        // Every event moves the run forward or uses an input, and a script
        // has no loops, so this ends; the bound is a guard.
        for _ in 0..10_000 {
            if run.is_done() {
                break;
            }
            let prompt = actions
                .iter()
                .any(|a| matches!(a, Action::Say(_) | Action::Play(_)));
            actions = if prompt {
                run.handle(ScriptEvent::PromptDone)
            } else {
                match inputs.next() {
                    Some(TestInput::Hears(text)) => {
                        let mut out = run.handle(ScriptEvent::SpeechStarted);
                        out.extend(run.handle(ScriptEvent::heard(text)));
                        out
                    }
                    Some(TestInput::Presses(c)) => run.handle(ScriptEvent::Digit(*c)),
                    Some(TestInput::Silence) | None => run.handle(ScriptEvent::ListenTimedOut),
                }
            };
        }
        let left: Vec<String> = inputs.map(|i| format!("`{i}`")).collect();
        if !left.is_empty() {
            problems.push(format!(
                "the call ended before the test's {}",
                left.join(", ")
            ));
        }
        let taken: Vec<&str> = run.matched_intents().iter().map(|m| m.name()).collect();
        if let Some(want) = &t.intents
            && *want != taken
        {
            let show = |names: &[&str]| {
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names
                        .iter()
                        .map(|n| format!("\"{n}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            let want: Vec<&str> = want.iter().map(String::as_str).collect();
            let got: Vec<String> = run
                .matched_intents()
                .iter()
                .map(|m| format!("\"{}\" ({:.2})", m.name(), m.confidence))
                .collect();
            problems.push(format!(
                "expected intent {}, got {}",
                show(&want),
                if got.is_empty() {
                    "none".to_string()
                } else {
                    got.join(", ")
                }
            ));
        }
        if let Some(want) = &t.trail {
            let norm = |s: &str| -> Vec<String> {
                s.replace("->", "→")
                    .split(',')
                    .map(|p| {
                        p.split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                            .replace(" →", "→")
                            .replace("→ ", "→")
                    })
                    .filter(|p| !p.is_empty())
                    .collect()
            };
            if norm(want) != norm(&run.trail()) {
                problems.push(format!(
                    "expected trail \"{want}\", got \"{}\"",
                    run.trail()
                ));
            }
        }
    }
}

fn reference_rule(r: &RuleIr, cx: &Ctx) -> Result<(i64, i64, i64), EvalError> {
    for c in &r.conds {
        if eval::eval(&c.ir, cx)? == 0 {
            return Err(NOT_FIRED);
        }
    }
    let prio = eval::eval(&r.priority, cx)?;
    let script = match &r.script {
        Some(s) => eval::eval(s, cx)?,
        None => NONE,
    };
    let line = match &r.line {
        Some(l) => eval::eval(l, cx)?,
        None => NONE,
    };
    Ok((prio, script, line))
}

/// The batch of one rule whose ranges are `N` plain ones, all on slots
/// below [`record::INLINE_WORDS`]: it fires exactly when they hold.
/// `false`, doing nothing, when `plain` does not hold `N` ranges.
#[inline(always)]
fn one_rule_batch<'a, const N: usize>(
    records: &'a [Record],
    plain: &[vm::Range],
    d: Decision<'a>,
    each: &mut impl FnMut(usize, Decision<'a>),
) -> bool {
    let Ok(ranges) = <[vm::Range; N]>::try_from(plain) else {
        return false;
    };
    for (i, record) in records.iter().enumerate() {
        let ok = match record.words.padded() {
            Some(buf) => vm::all_span_inline(&ranges, buf),
            None => vm::all_hold(plain, &[], &record.words, false),
        };
        each(i, if ok { d } else { Decision::NONE });
    }
    true
}

/// Most ranges and segments a batch plan holds; larger programs are
/// decided record by record.
const BATCH_RANGES: usize = 64;
const BATCH_SEGS: usize = 16;

/// The per-record work of a batch: `segs[..nsegs]`, each with its ranges
/// in `ranges[lo..hi]`. When `gate` is set the first is the policy.
struct BatchPlan<'a> {
    /// The policy fails for every record.
    never: bool,
    ranges: [vm::Range; BATCH_RANGES],
    nranges: usize,
    /// The same ranges tagged with their segment's position in `segs`:
    /// the plain ones in `..nplain`, the others in `nplain..nflat`.
    flat: [vm::Range; BATCH_RANGES],
    nplain: usize,
    nflat: usize,
    /// Set when the tags are ranks: `ranked[r]` is the decision of rank `r`.
    by_rank: bool,
    ranked: [Decision<'a>; BATCH_SEGS],
    segs: [PlanSeg<'a>; BATCH_SEGS],
    nsegs: usize,
    gate: bool,
}

#[derive(Clone, Copy, Default)]
struct PlanSeg<'a> {
    /// Index of the segment in the code.
    seg: usize,
    /// Plain ranges in `lo..mid`, ranges with an excluded word in `mid..hi`.
    lo: usize,
    mid: usize,
    hi: usize,
    /// The priority and decision, when the outputs are constant.
    out: Option<(i64, Decision<'a>)>,
}

/// The best rule so far in a batch: a decision made in advance, or rule
/// outputs.
#[derive(Clone, Copy)]
enum Best<'a> {
    Made(Decision<'a>),
    Outputs(usize, i64, i64),
}

/// Marker for "a condition was false" in `reference_rule`.
const NOT_FIRED: EvalError = EvalError::NoneValue;

/// What `explain` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub decision: String,
    pub eligible: bool,
    pub policy_failure: Option<String>,
    /// Each rule, with why it did not fire (`None` when it fired).
    pub rules: Vec<(String, Option<String>)>,
    pub next_change: Option<Timestamp>,
    /// The SMS after a call that ends at the instant explained: by the rule
    /// the decision calls by, or, when it calls by none, by each rule with
    /// an `on OUTCOME send sms` clause. Empty when no rule of the file has
    /// one.
    pub sms: Vec<SmsExplanation>,
}

/// What `explain` says of the SMS after a call by one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsExplanation {
    pub rule: String,
    /// Whether the decision calls by this rule; when it calls by none, every
    /// rule with a clause is shown.
    pub called: bool,
    /// The SMS its clause asks for; `None` when the rule has no `on
    /// OUTCOME send sms` clause.
    pub plan: Option<SmsPlan>,
}

/// The SMS a rule's `on OUTCOME send sms` clause asks for after a call that
/// ends at `ended` with `outcome`, for one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsPlan {
    pub outcome: Outcome,
    pub template: String,
    /// The sender id; `None` means the SMS provider's default sender.
    pub sender: Option<String>,
    /// The text for the customer, `{link}` left as written.
    pub text: String,
    /// The coding and number of parts of the text with every `{link}` as
    /// long as the longest short link ([`sms::LINK_LENGTH`] characters).
    pub coding: Coding,
    pub parts: usize,
    /// The clause's `within`, in seconds; `None` when it has none and
    /// [`DEFAULT_SMS_WITHIN`] applies.
    pub within: Option<i64>,
    pub ended: Timestamp,
    pub deadline: Timestamp,
    pub send: SmsSend,
    /// The customer's time zone, in which the times are shown.
    pub zone: TimeZone,
}

impl fmt::Display for SmsPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |at: Timestamp| script::local_time_text(at, &self.zone);
        match &self.sender {
            Some(sender) => writeln!(f, "  sender: {sender}")?,
            None => writeln!(f, "  sender: the SMS provider's default")?,
        }
        writeln!(f, "  text: {}", self.text)?;
        writeln!(
            f,
            "  coding: {}, {} part{} (`{{link}}` counted as {} characters)",
            sms::coding_name(self.coding),
            self.parts,
            if self.parts == 1 { "" } else { "s" },
            sms::LINK_LENGTH
        )?;
        match self.within {
            Some(within) => writeln!(
                f,
                "  deadline: {} (within {})",
                time(self.deadline),
                parse::duration_str(within)
            )?,
            None => writeln!(
                f,
                "  deadline: {} (within {}, the daemon's default `default_within_seconds`)",
                time(self.deadline),
                parse::duration_str(DEFAULT_SMS_WITHIN)
            )?,
        }
        match &self.send {
            SmsSend::AtOnce => writeln!(f, "  sent at {}, as the call ends", time(self.ended)),
            SmsSend::Later { at, held_by } => writeln!(
                f,
                "  sent at {}: `{held_by}` holds it until then",
                time(*at)
            ),
            SmsSend::NotSent { shut } => {
                writeln!(f, "  not sent: `{shut}` stays shut until its deadline")
            }
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "decision: {}", self.decision)?;
        if let Some(p) = &self.policy_failure {
            writeln!(f, "blocked by {p}")?;
        }
        for (name, why) in &self.rules {
            match why {
                None => writeln!(f, "rule `{name}`: fires")?,
                Some(w) => writeln!(f, "rule `{name}`: does not fire: {w}")?,
            }
        }
        match self.next_change {
            Some(t) => writeln!(f, "next change: {t}")?,
            None => writeln!(
                f,
                "next change: none within {} days",
                DEFAULT_HORIZON / 86_400
            )?,
        }
        for s in &self.sms {
            let Some(plan) = &s.plan else {
                writeln!(
                    f,
                    "sms: rule `{}` has no `on OUTCOME send sms` clause",
                    s.rule
                )?;
                continue;
            };
            let ended = script::local_time_text(plan.ended, &plan.zone);
            let outcome = plan.outcome.name();
            if s.called {
                writeln!(
                    f,
                    "sms: if the call by rule `{}` ends at {ended} with {outcome}, it sends `{}`",
                    s.rule, plan.template
                )?;
            } else {
                writeln!(
                    f,
                    "sms: no call now; if a call by rule `{}` ended at {ended} with {outcome}, it would send `{}`",
                    s.rule, plan.template
                )?;
            }
            write!(f, "{plan}")?;
        }
        if self.sms.iter().any(|s| s.plan.is_some()) {
            writeln!(
                f,
                "sms: the daemon also checks the DNC list and the per-customer SMS cap, which a rules file cannot see"
            )?;
        }
        Ok(())
    }
}

/// One test block's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub name: String,
    pub line: usize,
    /// Empty when the test passed.
    pub problems: Vec<String>,
}

/// The results of `rules test`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestReport {
    pub results: Vec<TestResult>,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.problems.is_empty())
            .count()
    }

    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.results {
            if r.problems.is_empty() {
                writeln!(f, "ok    {} (line {})", r.name, r.line)?;
            } else {
                writeln!(f, "FAIL  {} (line {})", r.name, r.line)?;
                for p in &r.problems {
                    writeln!(f, "      {p}")?;
                }
            }
        }
        writeln!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}

/// Compiles a file and runs its tests; a file that does not compile is
/// reported as diagnostics.
pub fn run_tests(source: &str, file_name: &str) -> Result<TestReport, Diagnostics> {
    Ok(compile(source, file_name)?.run_tests())
}
