//! Type checking against the schema, and lowering of the AST to typed IR.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ast::{self, BinOp, ClauseKind, Expr, ExprKind, Literal, PolicyKind, TypeKind};
use crate::diag::{Diagnostic, nearest};
use crate::ir::{ArithOp, CmpOp, Cond, Fallback, HistField, Ir, RuleIr, size};
use crate::record::{Field, FieldType, History, NONE, Outcome, Record, Schema, Value, WEEKDAYS};

/// Largest expression accepted after `let`s are expanded, in IR nodes.
pub const MAX_EXPR_NODES: usize = 4096;

/// A test case from a `test` block, ready to run.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub now: i64,
    pub record: Record,
    pub history: History,
    /// The decision expected; `None` for a test that only runs a script.
    pub expect: Option<Expect>,
    /// The script run, for a test that names a script.
    pub run: Option<ScriptTest>,
    /// How the call of the decision ends and the SMS that must follow, for
    /// a test with `outcome` and `expect sms`.
    pub sms: Option<SmsTest>,
    pub line: usize,
}

/// A test's SMS after the call: `outcome OUTCOME [at TIME]` and `expect sms
/// ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsTest {
    /// How the call of the test's decision ends.
    pub outcome: Outcome,
    /// When it ends, in seconds since the epoch: the outcome line's `at`,
    /// else the test's.
    pub ended: i64,
    pub expect: ExpectSms,
}

/// The SMS a test expects after the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectSms {
    /// `expect sms none`: no SMS goes, for want of a clause for the
    /// outcome, of a call, or of open hours before the deadline.
    None,
    /// `expect sms TEMPLATE [at TIME]`: `template` goes at `at` (seconds
    /// since the epoch), or as the call ends when `at` is `None`.
    Sent { template: String, at: Option<i64> },
}

/// A test's script run: `script NAME`, what the callee does, and what the
/// run must have done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptTest {
    pub script: String,
    /// What the callee does at each listen, in order; when they run out,
    /// every further listen times out.
    pub inputs: Vec<TestInput>,
    /// `expect intent "A", "B"`: the intents taken, in order (empty for
    /// `expect intent none`).
    pub intents: Option<Vec<String>>,
    /// `expect trail "..."`: the trail, as `ScriptRun::trail` gives it.
    pub trail: Option<String>,
}

/// What the callee does at a listen in a script test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestInput {
    /// `hears "TEXT"`: speech, and this transcript of it.
    Hears(String),
    /// `presses "1"`.
    Presses(char),
    /// `silence`: the listen times out.
    Silence,
}

impl std::fmt::Display for TestInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestInput::Hears(t) => write!(f, "hears \"{t}\""),
            TestInput::Presses(c) => write!(f, "presses \"{c}\""),
            TestInput::Silence => f.write_str("silence"),
        }
    }
}

/// The decision a test expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    None,
    Rule {
        name: String,
        priority: Option<i64>,
        script: Option<String>,
        line: Option<String>,
    },
}

/// The output of checking: everything the compiler needs.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub schema: Schema,
    pub texts: Vec<String>,
    pub policy: Vec<Cond>,
    pub rules: Vec<RuleIr>,
    pub tests: Vec<TestCase>,
    pub scripts: Vec<crate::script::Script>,
    pub sms: Vec<crate::sms::SmsTemplate>,
    pub intents: Vec<Arc<crate::intent::Intent>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Bool,
    Int,
    Money,
    Text,
    Time,
    Duration,
    TimeOfDay,
    Weekday,
    Zone,
    /// Index into the enum table; 0 is the built-in outcome enum.
    Enum(usize),
    Set,
    /// A bare name not yet given a meaning (an enum value, weekday or line tier).
    Symbol,
}

#[derive(Debug, Clone)]
struct T {
    ir: Ir,
    ty: Base,
    opt: bool,
    /// The symbol's name, or the int literal's value, before coercion.
    sym: Option<String>,
    int_lit: Option<i64>,
    span: ast::Span,
}

impl T {
    fn new(ir: Ir, ty: Base, span: ast::Span) -> T {
        T {
            ir,
            ty,
            opt: false,
            sym: None,
            int_lit: None,
            span,
        }
    }
}

/// Checks a parsed file. Returns every error found.
pub fn check(file: &ast::File, source: &str) -> Result<Checked, Vec<Diagnostic>> {
    let mut c = Checker {
        src: source,
        errors: Vec::new(),
        schema: Schema::default(),
        enums: vec![Outcome::ALL.iter().map(|o| o.name().to_string()).collect()],
        field_enum: HashMap::new(),
        texts: Vec::new(),
        lets: HashMap::new(),
        let_order: Vec::new(),
        facts: Vec::new(),
        tier_ok: false,
    };
    let mut out = Checked::default();
    let mut schema_seen = false;
    for item in &file.items {
        if let ast::Item::Schema(s) = item {
            if schema_seen {
                c.errors.push(
                    Diagnostic::new(
                        s.span.start..s.span.start + 6,
                        "a file may declare only one `schema`",
                    )
                    .with_help("merge the fields into the first `schema customer { ... }` block"),
                );
            } else {
                c.schema_decl(s);
            }
            schema_seen = true;
        }
    }
    for item in &file.items {
        match item {
            ast::Item::Schema(_) => {}
            ast::Item::Policy(p) => {
                let conds = c.policy(p);
                out.policy.extend(conds);
            }
            ast::Item::Let(l) => c.let_decl(l),
            ast::Item::Rule(r) => {
                if out.rules.iter().any(|x| x.name == r.name.name) {
                    c.errors.push(
                        Diagnostic::new(
                            r.name.span.clone(),
                            format!("rule `{}` is declared twice", r.name.name),
                        )
                        .with_help("give each rule its own name"),
                    );
                }
                if let Some(rule) = c.rule(r) {
                    out.rules.push(rule);
                }
            }
            ast::Item::Script(_)
            | ast::Item::Sms(_)
            | ast::Item::Intent(_)
            | ast::Item::Test(_) => {}
        }
    }
    let script_decls: Vec<&ast::ScriptDecl> = file
        .items
        .iter()
        .filter_map(|i| match i {
            ast::Item::Script(s) => Some(s),
            _ => None,
        })
        .collect();
    let intent_decls: Vec<&ast::IntentDecl> = file
        .items
        .iter()
        .filter_map(|i| match i {
            ast::Item::Intent(d) => Some(d),
            _ => None,
        })
        .collect();
    out.intents = crate::intent::lower(&intent_decls, &mut c.errors);
    out.scripts = crate::script::lower(
        &script_decls,
        &c.schema,
        &out.intents,
        source,
        &mut c.errors,
    );
    if !script_decls.is_empty() {
        check_script_names(file, &script_decls, &mut c.errors);
    }
    let sms_decls: Vec<&ast::SmsDecl> = file
        .items
        .iter()
        .filter_map(|i| match i {
            ast::Item::Sms(s) => Some(s),
            _ => None,
        })
        .collect();
    out.sms = crate::sms::lower(&sms_decls, &c.schema, &mut c.errors);
    check_sms_names(file, &sms_decls, &mut c.errors);
    // The opt-out check always applies, policy or not.
    out.policy.insert(
        0,
        Cond {
            ir: Ir::IsNone(Box::new(Ir::Hist(HistField::OptedOut))),
            text: "the customer has not opted out".to_string(),
            span: 0..0,
        },
    );
    let sms_names = declared_sms(&sms_decls);
    for item in &file.items {
        if let ast::Item::Test(t) = item
            && let Some(tc) = c.test(t, &out.rules, &out.scripts, &out.intents, &sms_names)
        {
            out.tests.push(tc);
        }
    }
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    out.schema = c.schema;
    out.texts = c.texts;
    Ok(out)
}

struct Checker<'s> {
    src: &'s str,
    errors: Vec<Diagnostic>,
    schema: Schema,
    enums: Vec<Vec<String>>,
    field_enum: HashMap<usize, usize>,
    texts: Vec<String>,
    lets: HashMap<String, T>,
    let_order: Vec<String>,
    facts: Vec<String>,
    tier_ok: bool,
}

fn type_name(t: Base, enums: &[Vec<String>]) -> String {
    match t {
        Base::Bool => "bool".into(),
        Base::Int => "int".into(),
        Base::Money => "money".into(),
        Base::Text => "text".into(),
        Base::Time => "time".into(),
        Base::Duration => "duration".into(),
        Base::TimeOfDay => "time_of_day".into(),
        Base::Weekday => "weekday".into(),
        Base::Zone => "timezone".into(),
        Base::Enum(0) => "outcome".into(),
        Base::Enum(i) => format!(
            "enum {{ {} }}",
            enums.get(i).map(|v| v.join(", ")).unwrap_or_default()
        ),
        Base::Set => "set<text>".into(),
        Base::Symbol => "name".into(),
    }
}

impl Checker<'_> {
    fn err(&mut self, span: ast::Span, msg: String, help: Option<String>) {
        let d = Diagnostic::new(span, msg);
        self.errors.push(match help {
            Some(h) => d.with_help(h),
            None => d,
        });
    }

    fn text_of(&self, span: &ast::Span) -> String {
        self.src
            .get(span.clone())
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn intern(&mut self, s: &str) -> i64 {
        if let Some(i) = self.texts.iter().position(|t| t == s) {
            return i as i64;
        }
        self.texts.push(s.to_string());
        (self.texts.len() - 1) as i64
    }

    fn tname(&self, t: Base) -> String {
        type_name(t, &self.enums)
    }

    // ---- schema ----

    fn schema_decl(&mut self, s: &ast::SchemaDecl) {
        const TYPES: [&str; 12] = [
            "bool",
            "int",
            "money",
            "decimal",
            "text",
            "phone",
            "time",
            "duration",
            "time_of_day",
            "weekday",
            "timezone",
            "enum",
        ];
        for f in &s.fields {
            if self.schema.field(&f.name.name).is_some() {
                self.err(
                    f.name.span.clone(),
                    format!("field `{}` is declared twice", f.name.name),
                    Some("remove one of them".into()),
                );
                continue;
            }
            let ty = match &f.ty.kind {
                TypeKind::Named(n) => match n.as_str() {
                    "bool" => FieldType::Bool,
                    "int" => FieldType::Int,
                    "money" | "decimal" => FieldType::Money,
                    "text" => FieldType::Text,
                    "phone" => FieldType::Phone,
                    "time" => FieldType::Time,
                    "duration" => FieldType::Duration,
                    "time_of_day" => FieldType::TimeOfDay,
                    "weekday" => FieldType::Weekday,
                    "timezone" => FieldType::TimeZone,
                    other => {
                        let help = match nearest(other, TYPES) {
                            Some(n) => format!("did you mean `{n}`?"),
                            None => format!(
                                "the types are {}",
                                TYPES.map(|t| format!("`{t}`")).join(", ")
                            ),
                        };
                        self.err(
                            f.ty.span.clone(),
                            format!("unknown type `{other}`"),
                            Some(help),
                        );
                        continue;
                    }
                },
                TypeKind::Enum(vs) => {
                    let mut names: Vec<String> = Vec::new();
                    for v in vs {
                        if names.contains(&v.name) {
                            self.err(
                                v.span.clone(),
                                format!("enum value `{}` is listed twice", v.name),
                                None,
                            );
                        }
                        names.push(v.name.clone());
                    }
                    FieldType::Enum(names)
                }
                TypeKind::Set(inner) => {
                    if inner.name != "text" {
                        self.err(
                            inner.span.clone(),
                            format!("sets of `{}` are not supported", inner.name),
                            Some("use `set<text>`".into()),
                        );
                        continue;
                    }
                    FieldType::TextSet
                }
            };
            let default = f.default.as_ref().and_then(|d| self.field_default(&ty, d));
            let idx = self.schema.fields.len();
            if let FieldType::Enum(vs) = &ty {
                self.enums.push(vs.clone());
                self.field_enum.insert(idx, self.enums.len() - 1);
            }
            self.schema.fields.push(Field {
                name: f.name.name.clone(),
                ty,
                optional: f.ty.optional,
                default,
            });
        }
    }

    fn field_default(&mut self, ty: &FieldType, e: &Expr) -> Option<Value> {
        let ExprKind::Lit(lit) = &e.kind else {
            return None;
        };
        let v = lit_value(ty, lit);
        if v.is_none() {
            self.err(
                e.span.clone(),
                format!(
                    "default `{}` does not fit type `{ty}`",
                    self.text_of(&e.span)
                ),
                None,
            );
        }
        if let (FieldType::TimeZone, Some(Value::Zone(z))) = (ty, &v)
            && jiff::tz::TimeZone::get(z).is_err()
        {
            self.err(
                e.span.clone(),
                format!("`{z}` is not a known time zone"),
                Some("use an IANA name such as `Asia/Shanghai`".into()),
            );
            return None;
        }
        v
    }

    fn need_zone(&mut self, span: ast::Span, what: &str) -> bool {
        if self.schema.zone_slot().is_some() {
            return true;
        }
        self.err(
            span,
            format!("{what} needs the customer's time zone"),
            Some("add a field such as `zone timezone = \"Asia/Shanghai\"` to the schema".into()),
        );
        false
    }

    // ---- policy ----

    fn policy(&mut self, p: &ast::PolicyDecl) -> Vec<Cond> {
        let mut out = Vec::new();
        for it in &p.items {
            let text = self.text_of(&it.span);
            let ir = match &it.kind {
                PolicyKind::CallingHours(ws) => {
                    if !self.need_zone(it.span.clone(), "`calling hours`") {
                        continue;
                    }
                    any(ws.iter().map(|w| window(*w)))
                }
                PolicyKind::Avoid(ws) => {
                    if !self.need_zone(it.span.clone(), "`avoid`") {
                        continue;
                    }
                    Ir::Not(Box::new(any(ws.iter().map(|w| window(*w)))))
                }
                PolicyKind::Cap { max, period, gap } => {
                    let counter = match period {
                        ast::CapPeriod::Day => {
                            if !self.need_zone(it.span.clone(), "a per-day cap") {
                                continue;
                            }
                            HistField::CallsToday
                        }
                        ast::CapPeriod::Rolling24h => HistField::Calls24h,
                    };
                    if *max < 0 || *max as usize > crate::record::MAX_RECENT_CALLS {
                        self.err(
                            it.span.clone(),
                            format!("a cap of `{max}` calls is not supported"),
                            Some(format!(
                                "caps go from 0 to {}",
                                crate::record::MAX_RECENT_CALLS
                            )),
                        );
                    }
                    let cap = Ir::Cmp(
                        CmpOp::Lt,
                        Box::new(Ir::Hist(counter)),
                        Box::new(Ir::Const(*max)),
                    );
                    match gap {
                        None => cap,
                        Some(g) => Ir::And(Box::new(cap), Box::new(min_gap(*g))),
                    }
                }
                PolicyKind::Quiet { outcome, duration } => {
                    let Some(o) = self.outcome(outcome) else {
                        continue;
                    };
                    Ir::Or(
                        Box::new(Ir::Cmp(
                            CmpOp::Ne,
                            Box::new(last_outcome()),
                            Box::new(Ir::Const(o.index())),
                        )),
                        Box::new(Ir::Or(
                            Box::new(Ir::IsNone(Box::new(Ir::Hist(HistField::LastOutcomeAt)))),
                            Box::new(Ir::Cmp(
                                CmpOp::Ge,
                                Box::new(Ir::Arith(
                                    ArithOp::Sub,
                                    Box::new(Ir::Now),
                                    Box::new(Ir::Unwrap(Box::new(Ir::Hist(
                                        HistField::LastOutcomeAt,
                                    )))),
                                )),
                                Box::new(Ir::Const(*duration)),
                            )),
                        )),
                    )
                }
                PolicyKind::Never { outcome } => {
                    let Some(o) = self.outcome(outcome) else {
                        continue;
                    };
                    Ir::Cmp(
                        CmpOp::Ne,
                        Box::new(last_outcome()),
                        Box::new(Ir::Const(o.index())),
                    )
                }
            };
            out.push(Cond {
                ir,
                text,
                span: it.span.clone(),
            });
        }
        out
    }

    fn outcome(&mut self, id: &ast::Ident) -> Option<Outcome> {
        let o = Outcome::from_name(&id.name);
        if o.is_none() {
            let help = match nearest(&id.name, Outcome::ALL.map(|o| o.name())) {
                Some(n) => format!("did you mean `{n}`?"),
                None => format!(
                    "outcomes are {}",
                    Outcome::ALL.map(|o| format!("`{}`", o.name())).join(", ")
                ),
            };
            self.err(
                id.span.clone(),
                format!("unknown call outcome `{}`", id.name),
                Some(help),
            );
        }
        o
    }

    // ---- lets and rules ----

    fn let_decl(&mut self, l: &ast::LetDecl) {
        if self.lets.contains_key(&l.name.name) {
            self.err(
                l.name.span.clone(),
                format!("`{}` is already defined", l.name.name),
                Some("choose another name".into()),
            );
            return;
        }
        if let Some(t) = self.expr(&l.value, None) {
            if t.ty == Base::Symbol {
                self.unknown_name(&t);
                return;
            }
            self.lets.insert(l.name.name.clone(), t);
            self.let_order.push(l.name.name.clone());
        }
    }

    fn rule(&mut self, r: &ast::RuleDecl) -> Option<RuleIr> {
        let before = self.errors.len();
        let mut conds = Vec::new();
        let (mut priority, mut script, mut line, mut fallback) = (None, None, None, None);
        let mut seen: Vec<&'static str> = Vec::new();
        self.facts.clear();
        for c in &r.clauses {
            let key = match &c.kind {
                ClauseKind::When(_) => "when",
                ClauseKind::Priority(_) => "priority",
                ClauseKind::Script(_) => "script",
                ClauseKind::Line(_) => "line",
                ClauseKind::Fallback { .. } => "on",
            };
            if seen.contains(&key) {
                let help = if key == "when" {
                    "join the conditions with `and`"
                } else {
                    "keep one of them"
                };
                self.err(
                    c.span.clone(),
                    format!("rule `{}` has more than one `{key}` clause", r.name.name),
                    Some(help.into()),
                );
                continue;
            }
            seen.push(key);
            match &c.kind {
                ClauseKind::When(e) => {
                    let mut parts = Vec::new();
                    conjuncts(e, &mut parts);
                    for p in parts {
                        if let Some(t) = self.expect(p, Base::Bool) {
                            conds.push(Cond {
                                ir: t.ir,
                                text: self.text_of(&p.span),
                                span: p.span.clone(),
                            });
                        }
                        self.facts.extend(set_facts(p));
                    }
                }
                ClauseKind::Priority(e) => priority = self.expect(e, Base::Int).map(|t| t.ir),
                ClauseKind::Script(e) => script = self.expect(e, Base::Text).map(|t| t.ir),
                ClauseKind::Line(e) => {
                    self.tier_ok = true;
                    line = self.expect(e, Base::Text).map(|t| t.ir);
                    self.tier_ok = false;
                }
                ClauseKind::Fallback {
                    outcome,
                    template,
                    within,
                    ..
                } => {
                    if let Some(o) = self.outcome(outcome) {
                        fallback = Some(Fallback {
                            outcome: o,
                            template: template.clone(),
                            within: *within,
                        });
                    }
                }
            }
        }
        self.facts.clear();
        if self.errors.len() > before {
            return None;
        }
        Some(RuleIr {
            name: r.name.name.clone(),
            conds,
            priority: priority.unwrap_or(Ir::Const(0)),
            script,
            line,
            fallback,
            span: r.span.clone(),
        })
    }

    // ---- expressions ----

    fn expect(&mut self, e: &Expr, want: Base) -> Option<T> {
        let t = self.expr(e, Some(want))?;
        let t = self.coerce(t, want)?;
        if t.opt {
            self.maybe_none(&t);
            return None;
        }
        if t.ty != want {
            let msg = format!(
                "expected {}, found `{}` of type `{}`",
                article(&self.tname(want)),
                self.text_of(&t.span),
                self.tname(t.ty)
            );
            let help = match (want, t.ty) {
                (Base::Bool, Base::Time) => {
                    Some("compare it, such as `now - customer.cart_added >= 2h`".to_string())
                }
                (Base::Bool, _) => Some(
                    "a condition is true or false; compare the value with `==`, `>=` or `in`"
                        .to_string(),
                ),
                _ => None,
            };
            self.err(t.span.clone(), msg, help);
            return None;
        }
        Some(t)
    }

    fn maybe_none(&mut self, t: &T) {
        let txt = self.text_of(&t.span);
        self.err(t.span.clone(), format!("`{txt}` may be none"),
            Some(format!("check it first with `{txt} is set and ...`, or give a default with `{txt} ?? VALUE`")));
    }

    fn unknown_name(&mut self, t: &T) {
        let name = t.sym.clone().unwrap_or_default();
        let mut cands: Vec<&str> = vec!["customer", "history", "now", "local_time", "weekday"];
        cands.extend(self.let_order.iter().map(String::as_str));
        let help = match nearest(&name, cands) {
            Some(n) => format!("did you mean `{n}`?"),
            None => "fields are written `customer.FIELD` or `history.FIELD`; `let` names must be defined above their use".to_string(),
        };
        self.err(t.span.clone(), format!("unknown name `{name}`"), Some(help));
    }

    /// Gives a bare name or a number literal its meaning in context.
    fn coerce(&mut self, t: T, want: Base) -> Option<T> {
        if let Some(name) = t.sym.clone()
            && t.ty == Base::Symbol
        {
            let value = match want {
                Base::Enum(i) => {
                    let vs = self.enums.get(i).cloned().unwrap_or_default();
                    match vs.iter().position(|v| *v == name) {
                        Some(k) => k as i64,
                        None => {
                            let help = match nearest(&name, vs.iter().map(String::as_str)) {
                                Some(n) => format!("did you mean `{n}`?"),
                                None => format!(
                                    "the values are {}",
                                    vs.iter()
                                        .map(|v| format!("`{v}`"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            };
                            self.err(
                                t.span.clone(),
                                format!("`{name}` is not a value of `{}`", self.tname(want)),
                                Some(help),
                            );
                            return None;
                        }
                    }
                }
                Base::Weekday => match WEEKDAYS.iter().position(|w| *w == name) {
                    Some(k) => k as i64,
                    None => {
                        self.err(
                            t.span.clone(),
                            format!("`{name}` is not a weekday"),
                            Some(
                                "weekdays are `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`"
                                    .into(),
                            ),
                        );
                        return None;
                    }
                },
                Base::Text if self.tier_ok => self.intern(&name),
                _ => {
                    self.unknown_name(&t);
                    return None;
                }
            };
            return Some(T::new(Ir::Const(value), want, t.span));
        }
        if let (Some(v), Base::Money, Base::Int) = (t.int_lit, want, t.ty) {
            return match v.checked_mul(100) {
                Some(c) => Some(T::new(Ir::Const(c), Base::Money, t.span)),
                None => {
                    self.err(t.span.clone(), format!("amount `{v}` is too large"), None);
                    None
                }
            };
        }
        Some(t)
    }

    fn expr(&mut self, e: &Expr, hint: Option<Base>) -> Option<T> {
        let sp = e.span.clone();
        let t = match &e.kind {
            ExprKind::Paren(inner) => {
                let mut t = self.expr(inner, hint)?;
                t.span = sp.clone();
                t
            }
            ExprKind::Lit(l) => match l {
                Literal::Bool(b) => T::new(Ir::Const(i64::from(*b)), Base::Bool, sp),
                Literal::Int(v) => T {
                    int_lit: Some(*v),
                    ..T::new(Ir::Const(*v), Base::Int, sp)
                },
                Literal::Money(v) => T::new(Ir::Const(*v), Base::Money, sp),
                Literal::Text(s) => {
                    let i = self.intern(s);
                    T::new(Ir::Const(i), Base::Text, sp)
                }
                Literal::Time(v, _) => T::new(Ir::Const(*v), Base::Time, sp),
                Literal::Duration(v) => T::new(Ir::Const(*v), Base::Duration, sp),
                Literal::TimeOfDay(v) => T::new(Ir::Const(*v), Base::TimeOfDay, sp),
            },
            ExprKind::Now => T::new(Ir::Now, Base::Time, sp),
            ExprKind::Path(parts) => self.path(parts, sp)?,
            ExprKind::Not(a) => {
                let a = self.expect(a, Base::Bool)?;
                T::new(Ir::Not(Box::new(a.ir)), Base::Bool, sp)
            }
            ExprKind::Neg(a) => {
                let a = self.value(a, hint)?;
                if !matches!(a.ty, Base::Int | Base::Money | Base::Duration) {
                    self.err(
                        sp,
                        format!(
                            "cannot negate `{}` of type `{}`",
                            self.text_of(&a.span),
                            self.tname(a.ty)
                        ),
                        None,
                    );
                    return None;
                }
                T {
                    int_lit: a.int_lit.and_then(i64::checked_neg),
                    ..T::new(Ir::Neg(Box::new(a.ir)), a.ty, sp)
                }
            }
            ExprKind::IsSet(a, set) => {
                // Test the declared type, not one narrowed by an earlier `is set`.
                let facts = std::mem::take(&mut self.facts);
                let a = self.expr(a, None);
                self.facts = facts;
                let a = a?;
                if a.ty == Base::Symbol {
                    self.unknown_name(&a);
                    return None;
                }
                if !a.opt {
                    let txt = self.text_of(&a.span);
                    self.err(
                        sp,
                        format!("`{txt}` is never none"),
                        Some(format!(
                            "only optional fields (declared with `?`) can be tested with `is {}`",
                            if *set { "set" } else { "none" }
                        )),
                    );
                    return None;
                }
                let is_none = Ir::IsNone(Box::new(a.ir));
                T::new(
                    if *set {
                        Ir::Not(Box::new(is_none))
                    } else {
                        is_none
                    },
                    Base::Bool,
                    sp,
                )
            }
            ExprKind::Cond(c, a, b) => {
                let c = self.expect(c, Base::Bool)?;
                let n = self.facts.len();
                self.facts.extend(set_facts_of(e));
                let a = self.expr(a, hint);
                self.facts.truncate(n);
                let b = self.expr(b, hint.or(a.as_ref().map(|a| a.ty)));
                let (mut a, mut b) = (a?, b?);
                let target = if a.ty == Base::Symbol || a.int_lit.is_some() {
                    hint.unwrap_or(b.ty)
                } else {
                    a.ty
                };
                a = self.coerce(a, target)?;
                b = self.coerce(b, target)?;
                if a.ty != b.ty {
                    self.err(
                        b.span.clone(),
                        format!(
                            "the two branches differ: `{}` is `{}` but `{}` is `{}`",
                            self.text_of(&a.span),
                            self.tname(a.ty),
                            self.text_of(&b.span),
                            self.tname(b.ty)
                        ),
                        Some("both sides of `? :` must have the same type".into()),
                    );
                    return None;
                }
                let opt = a.opt || b.opt;
                T {
                    opt,
                    ..T::new(
                        Ir::Cond(Box::new(c.ir), Box::new(a.ir), Box::new(b.ir)),
                        a.ty,
                        sp,
                    )
                }
            }
            ExprKind::Binary(op, l, r) => self.binary(*op, l, r, sp, hint)?,
        };
        if size(&t.ir) > MAX_EXPR_NODES {
            self.err(
                e.span.clone(),
                "expression is too large".into(),
                Some("split it into several rules or simpler `let`s".into()),
            );
            return None;
        }
        Some(t)
    }

    /// A non-optional, non-symbol value (symbols coerced to the hint).
    fn value(&mut self, e: &Expr, hint: Option<Base>) -> Option<T> {
        let t = self.expr(e, hint)?;
        let t = match hint {
            Some(h) => self.coerce(t, h)?,
            None => t,
        };
        if t.ty == Base::Symbol {
            self.unknown_name(&t);
            return None;
        }
        if t.opt {
            self.maybe_none(&t);
            return None;
        }
        Some(t)
    }

    fn binary(
        &mut self,
        op: BinOp,
        l: &Expr,
        r: &Expr,
        sp: ast::Span,
        hint: Option<Base>,
    ) -> Option<T> {
        match op {
            BinOp::And | BinOp::Or => {
                let a = self.expect(l, Base::Bool);
                let n = self.facts.len();
                if op == BinOp::And {
                    self.facts.extend(set_facts(l));
                }
                let b = self.expect(r, Base::Bool);
                self.facts.truncate(n);
                let (a, b) = (a?, b?);
                let ir = if op == BinOp::And {
                    Ir::And(Box::new(a.ir), Box::new(b.ir))
                } else {
                    Ir::Or(Box::new(a.ir), Box::new(b.ir))
                };
                Some(T::new(ir, Base::Bool, sp))
            }
            BinOp::Default => {
                let facts = std::mem::take(&mut self.facts);
                let a = self.expr(l, hint);
                self.facts = facts;
                let a = a?;
                if a.ty == Base::Symbol {
                    self.unknown_name(&a);
                    return None;
                }
                if !a.opt {
                    self.err(
                        a.span.clone(),
                        format!("`{}` is never none", self.text_of(&a.span)),
                        Some("remove `??` and the default".into()),
                    );
                    return None;
                }
                let b = self.expr(r, Some(a.ty))?;
                let b = self.coerce(b, a.ty)?;
                if b.ty != a.ty {
                    self.mismatch(&sp, "??", &a, &b);
                    return None;
                }
                Some(T {
                    opt: b.opt,
                    ..T::new(Ir::Default(Box::new(a.ir), Box::new(b.ir)), a.ty, sp)
                })
            }
            BinOp::In => {
                let set = self.expr(r, None)?;
                let slot = match (&set.ir, set.ty) {
                    (Ir::Field(s), Base::Set) if !set.opt => *s,
                    _ => {
                        self.err(set.span.clone(), format!("`{}` is not a set field", self.text_of(&set.span)),
                            Some("`in` tests text against a `set<text>` field, such as `\"vip\" in customer.tags`".into()));
                        return None;
                    }
                };
                let a = self.value(l, Some(Base::Text))?;
                if a.ty != Base::Text {
                    self.err(
                        a.span.clone(),
                        format!(
                            "expected text, found `{}` of type `{}`",
                            self.text_of(&a.span),
                            self.tname(a.ty)
                        ),
                        None,
                    );
                    return None;
                }
                Some(T::new(Ir::InSet(Box::new(a.ir), slot), Base::Bool, sp))
            }
            _ => {
                // Check the side that is not a bare name or number first, so
                // the other side can take its type.
                let flexible = |e: &Expr| {
                    matches!(&e.kind, ExprKind::Path(p) if p.len() == 1)
                        || matches!(&e.kind, ExprKind::Lit(Literal::Int(_)))
                };
                let (a, b) = if flexible(l) && !flexible(r) {
                    let b = self.value(r, None);
                    let a = self.value(l, b.as_ref().map(|b| b.ty).filter(|_| !is_arith(op)));
                    (a?, b?)
                } else {
                    let a = self.value(l, None);
                    let b = self.value(r, a.as_ref().map(|a| a.ty).filter(|_| !is_arith(op)));
                    (a?, b?)
                };
                let (a, b) = match (a.int_lit.is_some(), b.int_lit.is_some()) {
                    (true, false) if b.ty == Base::Money && op != BinOp::Mul => {
                        (self.coerce(a, Base::Money)?, b)
                    }
                    (false, true) if a.ty == Base::Money && op != BinOp::Mul => {
                        let b = self.coerce(b, Base::Money)?;
                        (a, b)
                    }
                    _ => (a, b),
                };
                self.typed_binary(op, a, b, sp)
            }
        }
    }

    fn mismatch(&mut self, sp: &ast::Span, op: &str, a: &T, b: &T) {
        self.err(
            sp.clone(),
            format!(
                "cannot use `{op}` on `{}` and `{}`",
                self.tname(a.ty),
                self.tname(b.ty)
            ),
            Some(format!(
                "`{}` is `{}` and `{}` is `{}`; values are never converted implicitly",
                self.text_of(&a.span),
                self.tname(a.ty),
                self.text_of(&b.span),
                self.tname(b.ty)
            )),
        );
    }

    fn typed_binary(&mut self, op: BinOp, a: T, b: T, sp: ast::Span) -> Option<T> {
        use Base::*;
        let cmp = |o| match o {
            BinOp::Eq => Some(CmpOp::Eq),
            BinOp::Ne => Some(CmpOp::Ne),
            BinOp::Lt => Some(CmpOp::Lt),
            BinOp::Le => Some(CmpOp::Le),
            BinOp::Gt => Some(CmpOp::Gt),
            BinOp::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(c) = cmp(op) {
            let ordered = matches!(a.ty, Int | Money | Time | Duration | TimeOfDay | Weekday);
            let equatable = ordered || matches!(a.ty, Bool | Text | Enum(_));
            let ok = a.ty == b.ty
                && if matches!(c, CmpOp::Eq | CmpOp::Ne) {
                    equatable
                } else {
                    ordered
                };
            if !ok {
                self.mismatch(&sp, op.symbol(), &a, &b);
                return None;
            }
            let ir = if a.ty == Text {
                Ir::TextEq(c == CmpOp::Eq, Box::new(a.ir), Box::new(b.ir))
            } else {
                Ir::Cmp(c, Box::new(a.ir), Box::new(b.ir))
            };
            return Some(T::new(ir, Bool, sp));
        }
        let result = match (op, a.ty, b.ty) {
            (BinOp::Add | BinOp::Sub, Int, Int) => Int,
            (BinOp::Add | BinOp::Sub, Money, Money) => Money,
            (BinOp::Add | BinOp::Sub, Duration, Duration) => Duration,
            (BinOp::Add | BinOp::Sub, Time, Duration) => Time,
            (BinOp::Add, Duration, Time) => Time,
            (BinOp::Sub, Time, Time) => Duration,
            (BinOp::Mul, Int, Int) => Int,
            (BinOp::Mul, Duration, Int) | (BinOp::Mul, Int, Duration) => Duration,
            (BinOp::Mul, Money, Int) | (BinOp::Mul, Int, Money) => Money,
            _ => {
                self.mismatch(&sp, op.symbol(), &a, &b);
                return None;
            }
        };
        let aop = match op {
            BinOp::Add => ArithOp::Add,
            BinOp::Sub => ArithOp::Sub,
            _ => ArithOp::Mul,
        };
        Some(T::new(
            Ir::Arith(aop, Box::new(a.ir), Box::new(b.ir)),
            result,
            sp,
        ))
    }

    fn path(&mut self, parts: &[ast::Ident], sp: ast::Span) -> Option<T> {
        let first = &parts[0];
        if parts.len() == 1 {
            let name = first.name.as_str();
            match name {
                "local_time" | "weekday" => {
                    if !self.need_zone(sp.clone(), &format!("`{name}`")) {
                        return None;
                    }
                    return Some(if name == "local_time" {
                        T::new(Ir::LocalTime, Base::TimeOfDay, sp)
                    } else {
                        T::new(Ir::Weekday, Base::Weekday, sp)
                    });
                }
                "customer" | "history" => {
                    self.err(
                        sp,
                        format!(
                            "`{name}` needs a field, such as `{name}.{}`",
                            if name == "customer" {
                                self.schema
                                    .fields
                                    .first()
                                    .map_or("paid", |f| f.name.as_str())
                            } else {
                                "calls_today"
                            }
                        ),
                        None,
                    );
                    return None;
                }
                _ => {}
            }
            if let Some(t) = self.lets.get(name) {
                return Some(T {
                    span: sp,
                    ..t.clone()
                });
            }
            return Some(T {
                sym: Some(name.to_string()),
                ..T::new(Ir::Const(0), Base::Symbol, sp)
            });
        }
        if parts.len() > 2 {
            self.err(
                sp,
                format!(
                    "`{}` has too many parts",
                    self.text_of(&(parts[0].span.start..parts[parts.len() - 1].span.end))
                ),
                Some("fields are written `customer.FIELD` or `history.FIELD`".into()),
            );
            return None;
        }
        let field = &parts[1];
        let key = format!("{}.{}", first.name, field.name);
        let (ir, ty, opt) = match first.name.as_str() {
            "customer" => {
                let Some((slot, f)) = self.schema.field(&field.name) else {
                    let names: Vec<&str> =
                        self.schema.fields.iter().map(|f| f.name.as_str()).collect();
                    let help = match nearest(&field.name, names.iter().copied()) {
                        Some(n) => format!("did you mean `customer.{n}`?"),
                        None => self.schema.declared_fields(),
                    };
                    self.err(
                        field.span.clone(),
                        format!("unknown field `customer.{}`", field.name),
                        Some(help),
                    );
                    return None;
                };
                let slot16 = slot as u16;
                let (ir, ty) = match &f.ty {
                    FieldType::Bool => (Ir::Field(slot16), Base::Bool),
                    FieldType::Int => (Ir::Field(slot16), Base::Int),
                    FieldType::Money => (Ir::Field(slot16), Base::Money),
                    FieldType::Text | FieldType::Phone => (Ir::TextField(slot16), Base::Text),
                    FieldType::Time => (Ir::Field(slot16), Base::Time),
                    FieldType::Duration => (Ir::Field(slot16), Base::Duration),
                    FieldType::TimeOfDay => (Ir::Field(slot16), Base::TimeOfDay),
                    FieldType::Weekday => (Ir::Field(slot16), Base::Weekday),
                    FieldType::TimeZone => (Ir::Field(slot16), Base::Zone),
                    FieldType::Enum(_) => (
                        Ir::Field(slot16),
                        Base::Enum(self.field_enum.get(&slot).copied().unwrap_or(0)),
                    ),
                    FieldType::TextSet => (Ir::Field(slot16), Base::Set),
                };
                (ir, ty, f.optional)
            }
            "history" => {
                let Some(h) = HistField::ALL.into_iter().find(|h| h.name() == field.name) else {
                    let help = match nearest(&field.name, HistField::ALL.map(|h| h.name())) {
                        Some(n) => format!("did you mean `history.{n}`?"),
                        None => format!(
                            "the history has {}",
                            HistField::ALL.map(|h| format!("`{}`", h.name())).join(", ")
                        ),
                    };
                    self.err(
                        field.span.clone(),
                        format!("unknown field `history.{}`", field.name),
                        Some(help),
                    );
                    return None;
                };
                if h == HistField::CallsToday
                    && !self.need_zone(sp.clone(), "`history.calls_today`")
                {
                    return None;
                }
                let (ty, opt) = match h {
                    HistField::CallsToday | HistField::Calls24h | HistField::Attempts => {
                        (Base::Int, false)
                    }
                    HistField::LastCall
                    | HistField::LastOutcomeAt
                    | HistField::OptedOut
                    | HistField::LastSmsClicked => (Base::Time, true),
                    HistField::LastOutcome => (Base::Enum(0), true),
                };
                (Ir::Hist(h), ty, opt)
            }
            other => {
                let help = match nearest(other, ["customer", "history"]) {
                    Some(n) => format!("did you mean `{n}.{}`?", field.name),
                    None => "fields are written `customer.FIELD` or `history.FIELD`".to_string(),
                };
                self.err(
                    first.span.clone(),
                    format!("unknown record `{other}`"),
                    Some(help),
                );
                return None;
            }
        };
        if opt && self.facts.contains(&key) {
            return Some(T::new(Ir::Unwrap(Box::new(ir)), ty, sp));
        }
        Some(T {
            opt,
            ..T::new(ir, ty, sp)
        })
    }

    // ---- tests ----

    fn test(
        &mut self,
        t: &ast::TestDecl,
        rules: &[RuleIr],
        scripts: &[crate::script::Script],
        intents: &[Arc<crate::intent::Intent>],
        sms_names: &[&str],
    ) -> Option<TestCase> {
        let before = self.errors.len();
        let head = t.span.start..t.span.start + 4;
        let run = self.script_test(t, scripts, intents);
        if t.script.is_none() && self.errors.len() > before {
            return None;
        }
        let decides = t.expect.is_some() || t.outcome.is_some() || t.expect_sms.is_some();
        let now = match t.at.clone() {
            Some((now, _)) => now,
            None if t.script.is_some() && !decides => 0,
            None => {
                self.err(
                    head,
                    format!("test `{}` has no time", t.name),
                    Some("add a line such as `at 2026-03-08T10:00:00+08:00`".into()),
                );
                return None;
            }
        };
        let mut values: Vec<(String, Value)> = Vec::new();
        for f in &t.customer {
            let Some((_, field)) = self.schema.field(&f.name.name) else {
                let help = nearest(
                    &f.name.name,
                    self.schema.fields.iter().map(|f| f.name.as_str()),
                )
                .map(|n| format!("did you mean `{n}`?"));
                self.err(
                    f.name.span.clone(),
                    format!("unknown field `{}`", f.name.name),
                    help,
                );
                continue;
            };
            let ty = field.ty.clone();
            let v = match &f.value {
                TestValue::None => continue,
                TestValue::Literal(e) => match &e.kind {
                    ExprKind::Lit(l) => lit_value(&ty, l),
                    _ => None,
                },
                TestValue::Symbol(s) => match &ty {
                    FieldType::Enum(vs) if vs.contains(&s.name) => {
                        Some(Value::Enum(s.name.clone()))
                    }
                    FieldType::Weekday => WEEKDAYS
                        .iter()
                        .position(|w| *w == s.name)
                        .map(|d| Value::Weekday(d as u8)),
                    _ => None,
                },
                TestValue::List(items) => {
                    let strs: Option<Vec<String>> = items
                        .iter()
                        .map(|i| match &i.kind {
                            ExprKind::Lit(Literal::Text(s)) => Some(s.clone()),
                            _ => None,
                        })
                        .collect();
                    strs.filter(|_| ty == FieldType::TextSet).map(Value::Set)
                }
            };
            match v {
                Some(v) => values.push((f.name.name.clone(), v)),
                None => self.err(
                    f.span.clone(),
                    format!(
                        "`{}` does not fit field `{}` of type `{ty}`",
                        self.text_of(&f.span),
                        f.name.name
                    ),
                    None,
                ),
            }
        }
        let mut history = History::new();
        for f in &t.history {
            let ok = match (f.name.name.as_str(), &f.value) {
                ("calls", TestValue::List(items)) => items.iter().all(|i| match &i.kind {
                    ExprKind::Lit(Literal::Time(v, _)) => {
                        history.push_call(*v);
                        true
                    }
                    _ => false,
                }),
                (
                    "attempts",
                    TestValue::Literal(Expr {
                        kind: ExprKind::Lit(Literal::Int(v)),
                        ..
                    }),
                ) => {
                    history.attempts = *v;
                    true
                }
                ("last_outcome", TestValue::Symbol(s)) => match self.outcome(s) {
                    Some(o) => {
                        history.last_outcome = Some(o);
                        true
                    }
                    None => continue,
                },
                (
                    "last_outcome_at" | "opted_out" | "last_sms_clicked",
                    TestValue::Literal(Expr {
                        kind: ExprKind::Lit(Literal::Time(v, _)),
                        ..
                    }),
                ) => {
                    let ts = jiff::Timestamp::from_second(*v).ok();
                    match f.name.name.as_str() {
                        "opted_out" => history.opted_out_at = ts,
                        "last_sms_clicked" => history.last_sms_clicked = ts,
                        _ => history.last_outcome_at = ts,
                    }
                    true
                }
                (_, TestValue::None) => true,
                _ => false,
            };
            if !ok {
                self.err(f.span.clone(), format!("`{}` is not a valid history entry", self.text_of(&f.span)),
                    Some("history entries are `calls: [TIME, ...]`, `attempts: N`, `last_outcome: OUTCOME`, `last_outcome_at: TIME`, `opted_out: TIME`, `last_sms_clicked: TIME`".into()));
            }
        }
        if history.attempts < history.recent_calls().len() as i64 {
            history.attempts = history.recent_calls().len() as i64;
        }
        let sms = self.sms_test(t, now, sms_names);
        let expect = match &t.expect {
            None if t.script.is_some() || t.expect_sms.is_some() => None,
            None => {
                self.err(
                    head,
                    format!("test `{}` expects nothing", t.name),
                    Some("add `expect RULE ...` or `expect none` (and, after `outcome OUTCOME`, `expect sms NAME` or `expect sms none`), or run a script with `script NAME` and `expect intent \"NAME\"` or `expect trail \"...\"`".into()),
                );
                return None;
            }
            Some(ast::Expectation::None) => Some(Expect::None),
            Some(ast::Expectation::Rule {
                name,
                priority,
                script,
                line,
            }) => {
                if !rules.iter().any(|r| r.name == name.name) {
                    let help = nearest(&name.name, rules.iter().map(|r| r.name.as_str()))
                        .map(|n| format!("did you mean `{n}`?"));
                    self.err(
                        name.span.clone(),
                        format!("unknown rule `{}`", name.name),
                        help,
                    );
                }
                Some(Expect::Rule {
                    name: name.name.clone(),
                    priority: *priority,
                    script: script.clone(),
                    line: line.as_ref().map(|l| l.name.clone()),
                })
            }
        };
        if self.errors.len() > before {
            return None;
        }
        let values: Vec<(&str, Value)> = values
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect();
        match Record::from_values(&self.schema, &values) {
            Ok(record) => Some(TestCase {
                name: t.name.clone(),
                now,
                record,
                history,
                expect,
                run,
                sms,
                line: crate::diag::line_col(self.src, t.span.start).0,
            }),
            Err(e) => {
                self.err(
                    head,
                    format!("test `{}`: {e}", t.name),
                    Some("give the field a value in `customer { ... }`".into()),
                );
                None
            }
        }
    }
}

impl Checker<'_> {
    /// The SMS part of a test: `outcome OUTCOME [at TIME]` and `expect sms
    /// ...`, the call ending at `now` (the test's `at`) unless the outcome
    /// says when. Errors for one without the other, an unknown outcome or
    /// template, and a time before the call's end.
    fn sms_test(&mut self, t: &ast::TestDecl, now: i64, sms_names: &[&str]) -> Option<SmsTest> {
        let (line, expected) = match (&t.outcome, &t.expect_sms) {
            (None, None) => return None,
            (Some(o), None) => {
                self.outcome(&o.outcome);
                self.err(
                    o.span.clone(),
                    format!(
                        "test `{}` has `{}` but no `expect sms`",
                        t.name,
                        self.text_of(&o.span)
                    ),
                    Some("say what the call's end sends: `expect sms NAME` (as the call ends), `expect sms NAME at TIME` or `expect sms none`".into()),
                );
                return None;
            }
            (None, Some(e)) => {
                self.err(
                    e.span.clone(),
                    format!(
                        "test `{}` has `{}` but no `outcome`",
                        t.name,
                        self.text_of(&e.span)
                    ),
                    Some("say how the call ends, such as `outcome no_answer` (at the test's `at`) or `outcome no_answer at 2026-03-09T21:00:30+08:00`".into()),
                );
                self.expected_sms(t, e, sms_names);
                return None;
            }
            (Some(o), Some(e)) => (o, e),
        };
        let mut ok = true;
        let ended = match &line.at {
            Some(at) if at.seconds < now => {
                self.err(
                    at.span.clone(),
                    format!(
                        "test `{}` ends its call at `{}`, before the test's `at`",
                        t.name, at.text
                    ),
                    Some("a call ends at the test's `at` or later; without `at TIME` it ends at the test's `at`".into()),
                );
                ok = false;
                now
            }
            Some(at) => at.seconds,
            None => now,
        };
        let outcome = self.outcome(&line.outcome);
        let template = self.expected_sms(t, expected, sms_names);
        if let Some(at) = &expected.at
            && at.seconds < ended
        {
            let end = match (&line.at, &t.at) {
                (Some(at), _) => at.text.clone(),
                (None, Some((_, sp))) => self.text_of(sp),
                (None, None) => String::new(),
            };
            self.err(
                at.span.clone(),
                format!(
                    "test `{}` expects its sms at `{}`, before the call ends at `{end}`",
                    t.name, at.text
                ),
                Some("an SMS after a call goes as the call ends or later; without `at TIME` it is expected as the call ends".into()),
            );
            ok = false;
        }
        let expect = match (&expected.template, template) {
            (None, _) => ExpectSms::None,
            (Some(_), Some(template)) => ExpectSms::Sent {
                template,
                at: expected.at.as_ref().map(|at| at.seconds),
            },
            (Some(_), None) => return None,
        };
        Some(SmsTest {
            outcome: outcome.filter(|_| ok)?,
            ended,
            expect,
        })
    }

    /// The template of `expect sms NAME`, when the file declares it; an
    /// error otherwise. `None` for `expect sms none` too.
    fn expected_sms(
        &mut self,
        t: &ast::TestDecl,
        expected: &ast::SmsExpectation,
        sms_names: &[&str],
    ) -> Option<String> {
        let name = expected.template.as_ref()?;
        if sms_names.contains(&name.name.as_str()) {
            return Some(name.name.clone());
        }
        self.errors.push(undeclared_sms(
            format!("test `{}` expects", t.name),
            &name.name,
            &name.span,
            sms_names,
        ));
        None
    }

    /// The script part of a test: `script NAME`, its inputs and what the
    /// run must do. Errors for an unknown script or intent, a key that is
    /// not one, and inputs or expectations without a script.
    fn script_test(
        &mut self,
        t: &ast::TestDecl,
        scripts: &[crate::script::Script],
        intents: &[Arc<crate::intent::Intent>],
    ) -> Option<ScriptTest> {
        let Some(script) = &t.script else {
            let first = t
                .inputs
                .first()
                .map(|i| i.span.clone())
                .or_else(|| t.expect_intents.as_ref().map(|(_, sp)| sp.clone()))
                .or_else(|| t.expect_trail.as_ref().map(|p| p.span.clone()));
            if let Some(sp) = first {
                let text = self.text_of(&sp);
                self.err(
                    sp,
                    format!("test `{}` has `{text}` but runs no script", t.name),
                    Some("name the script the test runs, such as `script limited_offer`".into()),
                );
            }
            return None;
        };
        let mut ok = true;
        if !scripts.iter().any(|s| s.name == script.name) {
            let names = scripts.iter().map(|s| s.name.as_str());
            let help = match nearest(&script.name, names) {
                Some(n) => format!("did you mean `{n}`?"),
                None if scripts.is_empty() => {
                    "the file declares no script; add `script NAME { ... }`".to_string()
                }
                None => format!(
                    "the file declares {}",
                    scripts
                        .iter()
                        .map(|s| format!("`{}`", s.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            self.err(
                script.span.clone(),
                format!("unknown script `{}`", script.name),
                Some(help),
            );
            ok = false;
        }
        let mut inputs = Vec::new();
        for i in &t.inputs {
            match &i.kind {
                ast::TestInputKind::Hears(text) => inputs.push(TestInput::Hears(text.clone())),
                ast::TestInputKind::Silence => inputs.push(TestInput::Silence),
                ast::TestInputKind::Presses(key) => {
                    let mut chars = key.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) if crate::script::DIGITS.contains(c) => {
                            inputs.push(TestInput::Presses(c))
                        }
                        _ => {
                            self.err(
                                i.span.clone(),
                                format!("`{key}` is not a key on a phone keypad"),
                                Some("a key is one of `0` to `9`, `*`, `#` or `A` to `D`, such as `presses \"1\"`".into()),
                            );
                            ok = false;
                        }
                    }
                }
            }
        }
        let expected = t.expect_intents.as_ref().map(|(names, _)| {
            names
                .iter()
                .map(|n| {
                    if !intents.iter().any(|i| i.name == n.text) {
                        let help = match nearest(&n.text, intents.iter().map(|i| i.name.as_str())) {
                            Some(m) => format!("did you mean `{m}`?"),
                            None => {
                                "name an intent the file declares, or write `expect intent none`"
                                    .to_string()
                            }
                        };
                        self.err(
                            n.span.clone(),
                            format!("unknown intent `{}`", n.text),
                            Some(help),
                        );
                        ok = false;
                    }
                    n.text.clone()
                })
                .collect()
        });
        if t.expect.is_none()
            && t.expect_sms.is_none()
            && expected.is_none()
            && t.expect_trail.is_none()
        {
            self.err(
                t.span.start..t.span.start + 4,
                format!(
                    "test `{}` expects nothing of script `{}`",
                    t.name, script.name
                ),
                Some(
                    "add `expect intent \"NAME\"`, `expect intent none` or `expect trail \"...\"`"
                        .into(),
                ),
            );
            ok = false;
        }
        ok.then(|| ScriptTest {
            script: script.name.clone(),
            inputs,
            intents: expected,
            trail: t.expect_trail.as_ref().map(|p| p.text.clone()),
        })
    }
}

use ast::TestValue;

/// When a file declares scripts, every script name a rule's `script`
/// clause can yield must name one of them. The names are the text literals
/// at the leaves of `? :` and `??` (through `let`s); a name read from a
/// customer field cannot be checked and is an error too.
fn check_script_names(
    file: &ast::File,
    scripts: &[&ast::ScriptDecl],
    errors: &mut Vec<Diagnostic>,
) {
    let mut lets: HashMap<&str, &Expr> = HashMap::new();
    let names: Vec<&str> = scripts.iter().map(|s| s.name.name.as_str()).collect();
    let listing = crate::diag::listing(&names);
    for item in &file.items {
        match item {
            ast::Item::Let(l) => {
                lets.insert(l.name.name.as_str(), &l.value);
            }
            ast::Item::Rule(r) => {
                for c in &r.clauses {
                    let ClauseKind::Script(e) = &c.kind else {
                        continue;
                    };
                    let mut leaves = Vec::new();
                    let mut budget = 10_000;
                    script_leaves(e, &lets, &mut leaves, &mut budget);
                    for (leaf, span, text) in leaves {
                        match leaf {
                            Some(name) if names.contains(&name.as_str()) => {}
                            Some(name) => {
                                let help = match nearest(&name, names.iter().copied()) {
                                    Some(n) => format!("did you mean `{n}`?"),
                                    None => format!(
                                        "the file declares {listing}; add `script {name} {{ ... }}`"
                                    ),
                                };
                                errors.push(
                                    Diagnostic::new(
                                        span,
                                        format!(
                                            "rule `{}` may choose script `{name}`, which is not declared",
                                            r.name.name
                                        ),
                                    )
                                    .with_help(help),
                                );
                            }
                            None => errors.push(
                                Diagnostic::new(
                                    span,
                                    format!(
                                        "rule `{}` reads its script name from `{}`, which may name no script",
                                        r.name.name, text
                                    ),
                                )
                                .with_help(format!(
                                    "choose among the declared scripts ({listing}) with `? :`"
                                )),
                            ),
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// The names of the declared `sms` blocks, in file order, each once.
fn declared_sms<'a>(decls: &[&'a ast::SmsDecl]) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    for d in decls {
        if !names.contains(&d.name.name.as_str()) {
            names.push(d.name.name.as_str());
        }
    }
    names
}

/// The error for `who` (`rule `r` sends`, `test `t` expects`) naming sms
/// `name`, which none of `names` is: the nearest declared name as help, or
/// how to declare one.
fn undeclared_sms(who: String, name: &str, span: &ast::Span, names: &[&str]) -> Diagnostic {
    let listing = crate::diag::listing(names);
    let help = if names.is_empty() {
        format!(
            "the file declares no `sms` block; declare one, such as `sms {name} {{ text \"Your cart is waiting: {{link}}\" }}`"
        )
    } else {
        match nearest(name, names.iter().copied()) {
            Some(n) => format!("did you mean `{n}`? the file declares sms {listing}"),
            None => format!(
                "the file declares sms {listing}; name one of them, or add `sms {name} {{ text \"...\" }}`"
            ),
        }
    };
    Diagnostic::new(
        span.clone(),
        format!("{who} sms `{name}`, which is not declared"),
    )
    .with_help(help)
}

/// Every `on OUTCOME send sms "T"` clause and `send sms "T"` step must name
/// a declared `sms` block.
fn check_sms_names(file: &ast::File, decls: &[&ast::SmsDecl], errors: &mut Vec<Diagnostic>) {
    let names = declared_sms(decls);
    let mut unknown = |who: String, name: &str, span: &ast::Span| {
        if !names.contains(&name) {
            errors.push(undeclared_sms(format!("{who} sends"), name, span, &names));
        }
    };
    for item in &file.items {
        match item {
            ast::Item::Rule(r) => {
                for c in &r.clauses {
                    if let ClauseKind::Fallback {
                        template,
                        template_span,
                        ..
                    } = &c.kind
                    {
                        unknown(format!("rule `{}`", r.name.name), template, template_span);
                    }
                }
            }
            ast::Item::Script(s) => {
                let mut sends = Vec::new();
                sms_steps(&s.steps, &mut sends);
                for (name, span) in sends {
                    unknown(format!("script `{}`", s.name.name), name, span);
                }
            }
            _ => {}
        }
    }
}

/// The `send sms` steps of a script, in order, through every branch.
fn sms_steps<'a>(steps: &'a [ast::StepDecl], out: &mut Vec<(&'a str, &'a ast::Span)>) {
    for s in steps {
        match &s.kind {
            ast::StepKind::SendSms(name, span) => out.push((name.as_str(), span)),
            ast::StepKind::Listen { branches, .. } => {
                for b in branches {
                    sms_steps(&b.steps, out);
                }
            }
            _ => {}
        }
    }
}

/// The possible values of a text expression: `Some(name)` for a literal,
/// `None` for a value known only at run time, each with its span.
fn script_leaves(
    e: &Expr,
    lets: &HashMap<&str, &Expr>,
    out: &mut Vec<(Option<String>, ast::Span, String)>,
    budget: &mut usize,
) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    match &e.kind {
        ExprKind::Lit(Literal::Text(t)) => {
            out.push((Some(t.clone()), e.span.clone(), String::new()))
        }
        ExprKind::Cond(_, a, b) | ExprKind::Binary(BinOp::Default, a, b) => {
            script_leaves(a, lets, out, budget);
            script_leaves(b, lets, out, budget);
        }
        ExprKind::Paren(a) => script_leaves(a, lets, out, budget),
        ExprKind::Path(p) if p.len() == 1 && lets.contains_key(p[0].name.as_str()) => {
            if let Some(v) = lets.get(p[0].name.as_str()) {
                // A let's leaves, reported at the use.
                let mut inner = Vec::new();
                script_leaves(v, lets, &mut inner, budget);
                out.extend(inner.into_iter().map(|(n, sp, text)| match n {
                    Some(n) => (Some(n), e.span.clone(), text),
                    None => (None, sp, text),
                }));
            }
        }
        _ => out.push((None, e.span.clone(), crate::format::print_expr(e))),
    }
}

fn is_arith(op: BinOp) -> bool {
    matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul)
}

fn article(t: &str) -> String {
    if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an `{t}`")
    } else {
        format!("a `{t}`")
    }
}

fn lit_value(ty: &FieldType, lit: &Literal) -> Option<Value> {
    Some(match (ty, lit) {
        (FieldType::Bool, Literal::Bool(b)) => Value::Bool(*b),
        (FieldType::Int, Literal::Int(v)) => Value::Int(*v),
        (FieldType::Money, Literal::Int(v)) => Value::Money(v.checked_mul(100)?),
        (FieldType::Money, Literal::Money(v)) => Value::Money(*v),
        (FieldType::Text | FieldType::Phone, Literal::Text(s)) => Value::Text(s.clone()),
        (FieldType::Enum(vs), Literal::Text(s)) if vs.contains(s) => Value::Enum(s.clone()),
        (FieldType::Time, Literal::Time(v, _)) => Value::Time(*v),
        (FieldType::Duration, Literal::Duration(v)) => Value::Duration(*v),
        (FieldType::TimeOfDay, Literal::TimeOfDay(v)) => Value::TimeOfDay(*v),
        (FieldType::TimeZone, Literal::Text(s)) => Value::Zone(s.clone()),
        _ => return None,
    })
}

fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &e.kind {
        ExprKind::Binary(BinOp::And, a, b) => {
            conjuncts(a, out);
            conjuncts(b, out);
        }
        ExprKind::Paren(inner) if matches!(inner.kind, ExprKind::Binary(BinOp::And, ..)) => {
            conjuncts(inner, out)
        }
        _ => out.push(e),
    }
}

/// Paths known to be set when `e` is true: the `X is set` among its conjuncts.
fn set_facts(e: &Expr) -> Vec<String> {
    let mut parts = Vec::new();
    conjuncts(e, &mut parts);
    let mut out = Vec::new();
    for p in parts {
        let mut p = p;
        while let ExprKind::Paren(inner) = &p.kind {
            p = inner;
        }
        if let ExprKind::IsSet(x, true) = &p.kind
            && let ExprKind::Path(parts) = &x.kind
            && parts.len() == 2
        {
            out.push(format!("{}.{}", parts[0].name, parts[1].name));
        }
    }
    out
}

fn set_facts_of(cond_expr: &Expr) -> Vec<String> {
    match &cond_expr.kind {
        ExprKind::Cond(c, _, _) => set_facts(c),
        _ => Vec::new(),
    }
}

fn last_outcome() -> Ir {
    Ir::Default(
        Box::new(Ir::Hist(HistField::LastOutcome)),
        Box::new(Ir::Const(-1)),
    )
}

fn min_gap(gap: i64) -> Ir {
    Ir::Or(
        Box::new(Ir::IsNone(Box::new(Ir::Hist(HistField::LastCall)))),
        Box::new(Ir::Cmp(
            CmpOp::Ge,
            Box::new(Ir::Arith(
                ArithOp::Sub,
                Box::new(Ir::Now),
                Box::new(Ir::Unwrap(Box::new(Ir::Hist(HistField::LastCall)))),
            )),
            Box::new(Ir::Const(gap)),
        )),
    )
}

/// `local_time` within `[start, end)`; a window past midnight wraps.
fn window(w: ast::Window) -> Ir {
    let ge = Ir::Cmp(
        CmpOp::Ge,
        Box::new(Ir::LocalTime),
        Box::new(Ir::Const(w.start)),
    );
    let lt = Ir::Cmp(
        CmpOp::Lt,
        Box::new(Ir::LocalTime),
        Box::new(Ir::Const(w.end)),
    );
    if w.end >= 86_400 {
        ge
    } else if w.start < w.end {
        Ir::And(Box::new(ge), Box::new(lt))
    } else {
        Ir::Or(Box::new(ge), Box::new(lt))
    }
}

fn any(mut items: impl Iterator<Item = Ir>) -> Ir {
    let first = items.next().unwrap_or(Ir::Const(0));
    items.fold(first, |acc, x| Ir::Or(Box::new(acc), Box::new(x)))
}

#[allow(dead_code)]
fn none_const() -> i64 {
    NONE
}
