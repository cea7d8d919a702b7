//! Text → pest parse tree → AST, with syntax errors translated into words a
//! rules author knows.

use pest::Parser as _;
use pest::iterators::Pair;
use pest_derive::Parser;

use crate::ast::*;
use crate::diag::Diagnostic;

#[derive(Parser)]
#[grammar = "rules.pest"]
struct RulesParser;

/// Largest rules file accepted, in bytes.
pub const MAX_SOURCE_LEN: usize = 1 << 20;
/// Deepest nesting of parentheses and conditionals accepted.
pub const MAX_DEPTH: usize = 64;
/// Longest chain of operators in one expression.
pub const MAX_CHAIN: usize = 512;

/// Parses a whole file. On syntax errors, reports one error per top-level
/// item that fails, so that a file with several mistakes shows them all.
pub fn parse_file(source: &str) -> Result<File, Vec<Diagnostic>> {
    if source.len() > MAX_SOURCE_LEN {
        return Err(vec![
            Diagnostic::new(0..0, format!("file is too large ({} bytes)", source.len())).with_help(
                format!("a rules file may hold at most {MAX_SOURCE_LEN} bytes"),
            ),
        ]);
    }
    if let Some(d) = check_nesting(source) {
        return Err(vec![d]);
    }
    match RulesParser::parse(Rule::file, source) {
        Ok(mut pairs) => {
            let mut b = Builder {
                errors: Vec::new(),
                depth: 0,
            };
            let file = pairs.next().map(|p| b.file(p)).unwrap_or_default();
            if b.errors.is_empty() {
                Ok(file)
            } else {
                Err(b.errors)
            }
        }
        Err(first) => {
            let mut errors = Vec::new();
            for (offset, chunk) in chunks(source) {
                if let Err(e) = RulesParser::parse(Rule::file, chunk) {
                    errors.push(translate(&e, chunk, offset));
                }
            }
            if errors.is_empty() {
                errors.push(translate(&first, source, 0));
            }
            Err(errors)
        }
    }
}

/// Splits the source at lines that start (in column 1) a top-level item.
fn chunks(source: &str) -> Vec<(usize, &str)> {
    let mut starts = vec![0];
    let mut pos = 0;
    for line in source.split_inclusive('\n') {
        if pos > 0 {
            let word: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            if matches!(
                word.as_str(),
                "schema" | "policy" | "let" | "rule" | "script" | "sms" | "intent" | "test"
            ) {
                starts.push(pos);
            }
        }
        pos += line.len();
    }
    starts.push(source.len());
    starts
        .windows(2)
        .map(|w| (w[0], &source[w[0]..w[1]]))
        .collect()
}

/// Rejects nesting deep enough to exhaust the parser's stack, before parsing.
fn check_nesting(source: &str) -> Option<Diagnostic> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut in_comment = false;
    let bytes = source.as_bytes();
    let mut questions = 0usize;
    let mut braces = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' => {
                in_comment = false;
                in_string = false;
            }
            _ if in_comment => {}
            b'"' => in_string = !in_string,
            _ if in_string => {}
            b'#' => in_comment = true,
            b'(' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(
                        Diagnostic::new(i..i + 1, "expression is nested too deeply").with_help(
                            format!(
                                "use at most {MAX_DEPTH} levels of parentheses; split it with `let`"
                            ),
                        ),
                    );
                }
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            b'{' => {
                braces += 1;
                if braces > MAX_DEPTH {
                    return Some(
                        Diagnostic::new(i..i + 1, "blocks are nested too deeply").with_help(
                            format!("use at most {MAX_DEPTH} levels of `{{ }}`; a script's `listen`s nest two levels each"),
                        ),
                    );
                }
            }
            b'}' => braces = braces.saturating_sub(1),
            b'?' => {
                let double = bytes.get(i + 1) == Some(&b'?') || (i > 0 && bytes[i - 1] == b'?');
                if !double {
                    questions += 1;
                    if questions > 4 * MAX_DEPTH {
                        return Some(
                            Diagnostic::new(i..i + 1, "too many `? :` conditionals in one file")
                                .with_help(
                                    "split the choices into several rules or `let` bindings",
                                ),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    None
}

fn describe(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::EOI => "end of file",
        Rule::schema => "`schema`",
        Rule::policy => "`policy`",
        Rule::let_decl => "`let`",
        Rule::rule => "`rule`",
        Rule::test => "`test`",
        Rule::script_decl => "`script NAME { ... }`",
        Rule::say_step | Rule::kw_say => "`say \"TEXT\"`",
        Rule::play_step | Rule::kw_play => "`play \"FILE.wav\"`",
        Rule::listen_step | Rule::kw_listen => "`listen DURATION { ... }`",
        Rule::branch | Rule::kw_on => {
            "`on digit \"1\"`, `on intent NAME`, `on speech` or `on silence`"
        }
        Rule::on_digit | Rule::kw_digit => "`digit \"1\"`",
        Rule::on_intent | Rule::kw_on_intent => "`intent NAME`",
        Rule::intent_decl | Rule::kw_intent => "`intent NAME { ... }`",
        Rule::intent_lang | Rule::lang_tag => "a language and its phrases, such as `zh \"退订\"`",
        Rule::test_script | Rule::kw_script => "`script NAME`",
        Rule::test_hears | Rule::kw_hears => "`hears \"TEXT\"`",
        Rule::test_presses | Rule::kw_presses => "`presses \"1\"`",
        Rule::test_silence => "`silence`",
        Rule::expect_intent | Rule::kw_expect_intent => "`intent \"NAME\"` or `intent none`",
        Rule::expect_trail | Rule::kw_trail => "`trail \"STEPS\"`",
        Rule::expect_sms => "`sms TEMPLATE`, `sms TEMPLATE at TIME` or `sms none`",
        Rule::sms_template => "an sms template's name",
        Rule::sms_none => "`none`",
        Rule::test_outcome | Rule::kw_outcome => "`outcome OUTCOME`",
        Rule::on_speech => "`speech`",
        Rule::on_silence => "`silence`",
        Rule::opt_out_step => "`opt out`",
        Rule::hang_up_step => "`hang up`",
        Rule::send_sms_step | Rule::kw_send_sms => "`send sms \"TEMPLATE\"`",
        Rule::sms_decl | Rule::kw_sms => "`sms NAME { ... }`",
        Rule::sms_sender | Rule::kw_sender => "`sender \"ID\"`",
        Rule::sms_text | Rule::kw_text => "`text \"TEXT\"`",
        Rule::ident | Rule::name | Rule::path => "a name",
        Rule::field_decl => "a field such as `paid bool`",
        Rule::type_expr | Rule::type_name | Rule::enum_type | Rule::set_type => {
            "a type such as `bool`, `int`, `money`, `text`, `time?` or `enum { high, low }`"
        }
        Rule::calling_hours => "`calling hours`",
        Rule::avoid => "`avoid`",
        Rule::cap => "`at most N calls per day`",
        Rule::after_clause => "`after OUTCOME quiet 7d` or `after OUTCOME never`",
        Rule::quiet => "`quiet`",
        Rule::never => "`never`",
        Rule::window => "a window such as `09:00-12:00`",
        Rule::time_of_day => "a time of day such as `09:00`",
        Rule::duration => "a duration such as `2h` or `30m`",
        Rule::int | Rule::signed_int => "a whole number",
        Rule::decimal => "a number",
        Rule::string => "text in double quotes",
        Rule::timestamp => "a time such as `2026-03-08T09:00:00+08:00`",
        Rule::boolean => "`true` or `false`",
        Rule::cap_period => "`day` or `24h`",
        Rule::when_clause => "`when`",
        Rule::priority_clause | Rule::expect_priority => "`priority`",
        Rule::script_clause | Rule::expect_script => "`script`",
        Rule::line_clause | Rule::expect_line => "`line`",
        Rule::fallback_clause => "`on OUTCOME send sms \"TEMPLATE\"`",
        Rule::test_at => "`at`",
        Rule::test_customer => "`customer { ... }`",
        Rule::test_history => "`history { ... }`",
        Rule::test_expect => "`expect`",
        Rule::test_field => "`field: value`",
        Rule::test_value | Rule::list => "a value",
        Rule::expect_none => "`none`",
        Rule::expect_rule => "a rule name",
        Rule::expr
        | Rule::or_expr
        | Rule::and_expr
        | Rule::not_expr
        | Rule::cmp_expr
        | Rule::default_expr
        | Rule::add_expr
        | Rule::mul_expr
        | Rule::unary
        | Rule::paren
        | Rule::kw_now => "a value or expression",
        Rule::or_op | Rule::and_op => "`and` or `or`",
        Rule::cmp_op => "a comparison such as `==` or `>=`",
        Rule::add_op | Rule::mul_op | Rule::default_op => "an operator",
        Rule::is_test => "`is set` or `is none`",
        Rule::kw_set | Rule::kw_none => "`set` or `none`",
        _ => return None,
    })
}

fn translate(e: &pest::error::Error<Rule>, chunk: &str, offset: usize) -> Diagnostic {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let rest = &chunk[pos.min(chunk.len())..];
    let found: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace())
        .take(24)
        .collect();
    let (found_text, len) = if found.is_empty() {
        ("end of file".to_string(), 0)
    } else {
        (format!("`{found}`"), found.len())
    };
    let mut words: Vec<&str> = Vec::new();
    let mut help = None;
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for r in positives {
            if *r == Rule::duration {
                help = Some(
                    "durations are written as a number and a unit: `30s`, `10m`, `2h`, `7d`, `1h30m`",
                );
            }
            if *r == Rule::time_of_day || *r == Rule::window {
                help = Some(
                    "times of day are written `HH:MM` in 24-hour form, windows as `09:00-12:00`",
                );
            }
            if *r == Rule::sms_template {
                help = Some(
                    "an sms is expected by its template's name, unquoted: `expect sms cart_link`, `expect sms cart_link at TIME` or `expect sms none`",
                );
            }
            if *r == Rule::test_outcome && found.starts_with("outcome") {
                help = Some(
                    "write how the call ends on one line: `outcome no_answer`, or `outcome no_answer at TIME`",
                );
            }
            if let Some(w) = describe(*r)
                && !words.contains(&w)
            {
                words.push(w);
            }
        }
    }
    let digits = found.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && found[digits..].starts_with(|c: char| c.is_ascii_alphabetic()) {
        help =
            Some("durations are written as a number and a unit: `30s`, `10m`, `2h`, `7d`, `1h30m`");
    }
    if found.starts_with('"') && !rest[1..].contains('"') {
        help = Some("text must close with `\"` on the same line");
    }
    let expected = match words.len() {
        0 => "something else".to_string(),
        1 => words[0].to_string(),
        _ => {
            let last = words.pop().unwrap_or_default();
            format!("{} or {}", words.join(", "), last)
        }
    };
    let start = offset + pos;
    let d = Diagnostic::new(
        start..start + len,
        format!("expected {expected}, found {found_text}"),
    )
    .with_label("unexpected here");
    match help {
        Some(h) => d.with_help(h),
        None => d,
    }
}

struct Builder {
    errors: Vec<Diagnostic>,
    depth: usize,
}

fn span(p: &Pair<Rule>) -> Span {
    p.as_span().start()..p.as_span().end()
}

fn ident(p: Pair<Rule>) -> Ident {
    Ident {
        name: p.as_str().to_string(),
        span: span(&p),
    }
}

impl Builder {
    fn file(&mut self, p: Pair<Rule>) -> File {
        let mut items = Vec::new();
        for item in p.into_inner() {
            let it = match item.as_rule() {
                Rule::schema => Item::Schema(self.schema(item)),
                Rule::policy => Item::Policy(self.policy(item)),
                Rule::let_decl => {
                    let sp = span(&item);
                    let mut inner = item.into_inner();
                    let (Some(n), Some(v)) = (inner.next(), inner.next()) else {
                        continue;
                    };
                    Item::Let(LetDecl {
                        name: ident(n),
                        value: self.expr(v),
                        span: sp,
                    })
                }
                Rule::rule => Item::Rule(self.rule(item)),
                Rule::script_decl => Item::Script(self.script(item)),
                Rule::sms_decl => Item::Sms(self.sms(item)),
                Rule::intent_decl => Item::Intent(self.intent(item)),
                Rule::test => Item::Test(Box::new(self.test(item))),
                _ => continue,
            };
            items.push(it);
        }
        File { items }
    }

    fn script(&mut self, p: Pair<Rule>) -> ScriptDecl {
        let sp = span(&p);
        let mut inner = p.into_inner();
        let name = inner.next().map(ident).unwrap_or(Ident {
            name: String::new(),
            span: sp.clone(),
        });
        let steps = inner.filter_map(|s| self.step(s)).collect();
        ScriptDecl {
            name,
            steps,
            span: sp,
        }
    }

    fn sms(&mut self, p: Pair<Rule>) -> SmsDecl {
        let sp = span(&p);
        let mut inner = p.into_inner().skip(1);
        let name = inner.next().map(ident).unwrap_or(Ident {
            name: String::new(),
            span: sp.clone(),
        });
        let fields = inner
            .filter_map(|f| {
                let fsp = span(&f);
                let kind = match f.as_rule() {
                    Rule::sms_sender => SmsFieldKind::Sender,
                    Rule::sms_text => SmsFieldKind::Text,
                    _ => return None,
                };
                let value = f.into_inner().nth(1)?;
                Some(SmsField {
                    kind,
                    value: unquote(value.as_str()),
                    value_span: span(&value),
                    span: fsp,
                })
            })
            .collect();
        SmsDecl {
            name,
            fields,
            span: sp,
        }
    }

    fn intent(&mut self, p: Pair<Rule>) -> IntentDecl {
        let sp = span(&p);
        let mut inner = p.into_inner().skip(1);
        let name = inner.next().map(ident).unwrap_or(Ident {
            name: String::new(),
            span: sp.clone(),
        });
        let langs = inner
            .filter(|l| l.as_rule() == Rule::intent_lang)
            .filter_map(|l| {
                let lsp = span(&l);
                let mut parts = l.into_inner();
                let tag = ident(parts.next()?);
                let phrases = parts.map(|s| phrase(&s)).collect();
                Some(IntentLang {
                    tag,
                    phrases,
                    span: lsp,
                })
            })
            .collect();
        IntentDecl {
            name,
            langs,
            span: sp,
        }
    }

    fn step(&mut self, p: Pair<Rule>) -> Option<StepDecl> {
        let sp = span(&p);
        let which = p.as_rule();
        let mut inner = p.into_inner();
        let kind = match which {
            Rule::say_step => {
                let text = inner.nth(1)?;
                StepKind::Say(unquote(text.as_str()), span(&text))
            }
            Rule::play_step => StepKind::Play(unquote(inner.nth(1)?.as_str())),
            Rule::listen_step => {
                let d = inner.nth(1)?;
                let within = self.duration(&d);
                let head = sp.start..span(&d).end;
                let branches = inner.filter_map(|b| self.branch(b)).collect();
                StepKind::Listen {
                    within,
                    head,
                    branches,
                }
            }
            Rule::opt_out_step => StepKind::OptOut,
            Rule::hang_up_step => StepKind::HangUp,
            Rule::send_sms_step => {
                let name = inner.nth(1)?;
                StepKind::SendSms(unquote(name.as_str()), span(&name))
            }
            _ => return None,
        };
        Some(StepDecl { kind, span: sp })
    }

    fn branch(&mut self, p: Pair<Rule>) -> Option<BranchDecl> {
        let sp = span(&p);
        let mut inner = p.into_inner();
        let t = inner.nth(1)?;
        let head = sp.start..span(&t).end;
        let trigger = match t.as_rule() {
            Rule::on_digit => TriggerDecl::Digit(unquote(t.into_inner().nth(1)?.as_str())),
            Rule::on_speech => TriggerDecl::Speech,
            Rule::on_intent => TriggerDecl::Intent(ident(t.into_inner().nth(1)?)),
            _ => TriggerDecl::Silence,
        };
        let steps = inner.filter_map(|s| self.step(s)).collect();
        Some(BranchDecl {
            trigger,
            head,
            steps,
            span: sp,
        })
    }

    fn schema(&mut self, p: Pair<Rule>) -> SchemaDecl {
        let sp = span(&p);
        let mut fields = Vec::new();
        for f in p.into_inner() {
            let fsp = span(&f);
            let mut inner = f.into_inner();
            let (Some(n), Some(t)) = (inner.next(), inner.next()) else {
                continue;
            };
            let ty = self.type_expr(t);
            let default = inner.next().map(|d| self.literal(d));
            fields.push(FieldDecl {
                name: ident(n),
                ty,
                default,
                span: fsp,
            });
        }
        SchemaDecl { fields, span: sp }
    }

    fn type_expr(&mut self, p: Pair<Rule>) -> TypeExpr {
        let sp = span(&p);
        let mut kind = TypeKind::Named(String::new());
        let mut optional = false;
        for part in p.into_inner() {
            match part.as_rule() {
                Rule::type_name => kind = TypeKind::Named(part.as_str().to_string()),
                Rule::enum_type => kind = TypeKind::Enum(part.into_inner().map(ident).collect()),
                Rule::set_type => {
                    if let Some(i) = part.into_inner().next() {
                        kind = TypeKind::Set(ident(i));
                    }
                }
                Rule::optional_mark => optional = true,
                _ => {}
            }
        }
        TypeExpr {
            kind,
            optional,
            span: sp,
        }
    }

    fn policy(&mut self, p: Pair<Rule>) -> PolicyDecl {
        let sp = span(&p);
        let mut items = Vec::new();
        for it in p.into_inner() {
            let isp = span(&it);
            let kind = match it.as_rule() {
                Rule::calling_hours => PolicyKind::CallingHours(self.windows(it)),
                Rule::avoid => PolicyKind::Avoid(self.windows(it)),
                Rule::cap => {
                    let mut max = 0;
                    let mut period = CapPeriod::Day;
                    let mut gap = None;
                    for part in it.into_inner() {
                        match part.as_rule() {
                            Rule::int => max = self.int(&part),
                            Rule::cap_period if part.as_str() == "24h" => {
                                period = CapPeriod::Rolling24h
                            }
                            Rule::duration => gap = Some(self.duration(&part)),
                            _ => {}
                        }
                    }
                    PolicyKind::Cap { max, period, gap }
                }
                Rule::after_clause => {
                    let mut inner = it.into_inner();
                    let (Some(o), Some(tail)) = (inner.next(), inner.next()) else {
                        continue;
                    };
                    let outcome = ident(o);
                    if tail.as_rule() == Rule::quiet {
                        let d = tail
                            .into_inner()
                            .next()
                            .map(|d| self.duration(&d))
                            .unwrap_or(0);
                        PolicyKind::Quiet {
                            outcome,
                            duration: d,
                        }
                    } else {
                        PolicyKind::Never { outcome }
                    }
                }
                _ => continue,
            };
            items.push(PolicyItem { kind, span: isp });
        }
        PolicyDecl { items, span: sp }
    }

    fn windows(&mut self, p: Pair<Rule>) -> Vec<Window> {
        let mut out = Vec::new();
        for w in p.into_inner() {
            let wsp = span(&w);
            let mut inner = w.into_inner();
            let (Some(a), Some(b)) = (inner.next(), inner.next()) else {
                continue;
            };
            let (start, end) = (self.tod(&a), self.tod(&b));
            if start == end {
                self.errors.push(
                    Diagnostic::new(wsp, format!("window `{}` is empty", w_str(start, end)))
                        .with_help("a window needs a start before its end, such as `09:00-12:00`"),
                );
            }
            out.push(Window { start, end });
        }
        out
    }

    fn tod(&mut self, p: &Pair<Rule>) -> i64 {
        let s = p.as_str();
        let h: i64 = s[0..2].parse().unwrap_or(99);
        let m: i64 = s[3..5].parse().unwrap_or(99);
        if h > 24 || m > 59 || (h == 24 && m != 0) {
            self.errors.push(
                Diagnostic::new(span(p), format!("`{s}` is not a time of day"))
                    .with_help("use `HH:MM` from `00:00` to `24:00`"),
            );
            return 0;
        }
        h * 3600 + m * 60
    }

    fn int(&mut self, p: &Pair<Rule>) -> i64 {
        match p.as_str().parse::<i64>() {
            Ok(v) => v,
            Err(_) => {
                self.errors.push(
                    Diagnostic::new(
                        span(p),
                        format!("number `{}` is too large", short(p.as_str())),
                    )
                    .with_help(format!("whole numbers go up to {}", i64::MAX)),
                );
                0
            }
        }
    }

    fn duration(&mut self, p: &Pair<Rule>) -> i64 {
        match parse_duration(p.as_str()) {
            Some(v) => v,
            None => {
                self.errors.push(
                    Diagnostic::new(
                        span(p),
                        format!("duration `{}` is too large", short(p.as_str())),
                    )
                    .with_help("durations go up to about 292 billion years; use a realistic value"),
                );
                0
            }
        }
    }

    fn rule(&mut self, p: Pair<Rule>) -> RuleDecl {
        let sp = span(&p);
        let mut inner = p.into_inner();
        let name = inner.next().map(ident).unwrap_or(Ident {
            name: String::new(),
            span: sp.clone(),
        });
        let mut clauses = Vec::new();
        for c in inner {
            let csp = span(&c);
            let which = c.as_rule();
            let mut parts = c.into_inner();
            let kind = match which {
                Rule::when_clause
                | Rule::priority_clause
                | Rule::script_clause
                | Rule::line_clause => {
                    let Some(e) = parts.next() else { continue };
                    let e = self.expr(e);
                    match which {
                        Rule::when_clause => ClauseKind::When(e),
                        Rule::priority_clause => ClauseKind::Priority(e),
                        Rule::script_clause => ClauseKind::Script(e),
                        _ => ClauseKind::Line(e),
                    }
                }
                Rule::fallback_clause => {
                    let (Some(o), Some(t)) = (parts.next(), parts.next()) else {
                        continue;
                    };
                    let within = parts.next().map(|d| self.duration(&d));
                    ClauseKind::Fallback {
                        outcome: ident(o),
                        template: unquote(t.as_str()),
                        template_span: span(&t),
                        within,
                    }
                }
                _ => continue,
            };
            clauses.push(Clause { kind, span: csp });
        }
        RuleDecl {
            name,
            clauses,
            span: sp,
        }
    }

    fn test(&mut self, p: Pair<Rule>) -> TestDecl {
        let sp = span(&p);
        let mut inner = p.into_inner();
        let name = inner
            .next()
            .map(|s| unquote(s.as_str()))
            .unwrap_or_default();
        let mut t = TestDecl {
            name,
            at: None,
            customer: Vec::new(),
            history: Vec::new(),
            expect: None,
            expect_span: None,
            script: None,
            inputs: Vec::new(),
            expect_intents: None,
            expect_trail: None,
            outcome: None,
            expect_sms: None,
            span: sp,
        };
        for it in inner {
            match it.as_rule() {
                Rule::test_at => {
                    if let Some(ts) = it.into_inner().next() {
                        let s = span(&ts);
                        if let Literal::Time(v, _) = self.timestamp(&ts) {
                            t.at = Some((v, s));
                        }
                    }
                }
                Rule::test_customer | Rule::test_history => {
                    let is_customer = it.as_rule() == Rule::test_customer;
                    let fields: Vec<TestField> =
                        it.into_inner().map(|f| self.test_field(f)).collect();
                    if is_customer {
                        t.customer.extend(fields);
                    } else {
                        t.history.extend(fields);
                    }
                }
                Rule::test_script => {
                    t.script = it.into_inner().nth(1).map(ident);
                }
                Rule::test_hears | Rule::test_presses => {
                    let isp = span(&it);
                    let hears = it.as_rule() == Rule::test_hears;
                    let Some(v) = it.into_inner().nth(1) else {
                        continue;
                    };
                    let v = unquote(v.as_str());
                    t.inputs.push(TestInput {
                        kind: if hears {
                            TestInputKind::Hears(v)
                        } else {
                            TestInputKind::Presses(v)
                        },
                        span: isp,
                    });
                }
                Rule::test_silence => t.inputs.push(TestInput {
                    kind: TestInputKind::Silence,
                    span: span(&it),
                }),
                Rule::test_outcome => {
                    let osp = span(&it);
                    let mut parts = it.into_inner().skip(1);
                    let Some(outcome) = parts.next().map(ident) else {
                        continue;
                    };
                    let at = parts.next().map(|ts| self.test_time(&ts));
                    if t.outcome.is_some() {
                        self.once_per_test(&t.name, "outcome", osp.clone());
                    }
                    t.outcome = Some(TestOutcome {
                        outcome,
                        at,
                        span: osp,
                    });
                }
                Rule::test_expect => {
                    let esp = span(&it);
                    let Some(e) = it.into_inner().next() else {
                        continue;
                    };
                    if e.as_rule() == Rule::expect_sms {
                        let mut parts = e.into_inner().skip(1);
                        let template = parts.next().filter(|n| n.as_rule() == Rule::sms_template);
                        let at = parts.next().map(|ts| self.test_time(&ts));
                        if t.expect_sms.is_some() {
                            self.once_per_test(&t.name, "expect sms", esp.clone());
                        }
                        t.expect_sms = Some(SmsExpectation {
                            template: template.map(ident),
                            at,
                            span: esp,
                        });
                    } else if e.as_rule() == Rule::expect_intent {
                        let names = e
                            .into_inner()
                            .filter(|n| n.as_rule() == Rule::string)
                            .map(|n| phrase(&n))
                            .collect();
                        t.expect_intents = Some((names, esp));
                    } else if e.as_rule() == Rule::expect_trail {
                        t.expect_trail = e.into_inner().nth(1).map(|n| phrase(&n));
                    } else if e.as_rule() == Rule::expect_none {
                        t.expect_span = Some(esp);
                        t.expect = Some(Expectation::None);
                    } else {
                        let mut parts = e.into_inner();
                        let Some(n) = parts.next() else { continue };
                        let (mut priority, mut script, mut line) = (None, None, None);
                        for d in parts {
                            let which = d.as_rule();
                            let Some(v) = d.into_inner().next() else {
                                continue;
                            };
                            match which {
                                Rule::expect_priority => priority = Some(self.int(&v)),
                                Rule::expect_script => script = Some(unquote(v.as_str())),
                                _ => line = Some(ident(v)),
                            }
                        }
                        t.expect_span = Some(esp);
                        t.expect = Some(Expectation::Rule {
                            name: ident(n),
                            priority,
                            script,
                            line,
                        });
                    }
                }
                _ => {}
            }
        }
        t
    }

    /// A time written on a test line.
    fn test_time(&mut self, p: &Pair<Rule>) -> TestTime {
        let seconds = match self.timestamp(p) {
            Literal::Time(v, _) => v,
            _ => 0,
        };
        TestTime {
            seconds,
            text: p.as_str().to_string(),
            span: span(p),
        }
    }

    /// Reports a line that a test may hold once, given again at `span`.
    fn once_per_test(&mut self, test: &str, line: &str, span: Span) {
        self.errors.push(
            Diagnostic::new(
                span,
                format!("test `{test}` has more than one `{line}` line"),
            )
            .with_help("keep one of them"),
        );
    }

    fn test_field(&mut self, p: Pair<Rule>) -> TestField {
        let sp = span(&p);
        let mut inner = p.into_inner();
        let name = inner.next().map(ident).unwrap_or(Ident {
            name: String::new(),
            span: sp.clone(),
        });
        let value = match inner.next().and_then(|v| v.into_inner().next()) {
            None => TestValue::None,
            Some(v) => match v.as_rule() {
                Rule::kw_none => TestValue::None,
                Rule::ident => TestValue::Symbol(ident(v)),
                Rule::list => TestValue::List(v.into_inner().map(|l| self.literal(l)).collect()),
                _ => TestValue::Literal(self.literal(v)),
            },
        };
        TestField {
            name,
            value,
            span: sp,
        }
    }

    fn timestamp(&mut self, p: &Pair<Rule>) -> Literal {
        let s = p.as_str();
        match s.parse::<jiff::Timestamp>() {
            Ok(ts) => Literal::Time(ts.as_second(), s.to_string()),
            Err(_) => {
                self.errors.push(
                    Diagnostic::new(span(p), format!("`{s}` is not a valid time")).with_help(
                        "write times as `2026-03-08T09:00:00+08:00` or `2026-03-08T01:00:00Z`",
                    ),
                );
                Literal::Time(0, s.to_string())
            }
        }
    }

    fn literal(&mut self, p: Pair<Rule>) -> Expr {
        let sp = span(&p);
        let lit = match p.as_rule() {
            Rule::string => Literal::Text(unquote(p.as_str())),
            Rule::timestamp => self.timestamp(&p),
            Rule::time_of_day => Literal::TimeOfDay(self.tod(&p)),
            Rule::duration => Literal::Duration(self.duration(&p)),
            Rule::decimal => {
                let s = p.as_str();
                match parse_money(s) {
                    Some(v) => Literal::Money(v),
                    None => {
                        self.errors.push(
                            Diagnostic::new(
                                sp.clone(),
                                format!("amount `{}` cannot be represented", short(s)),
                            )
                            .with_help("amounts have at most two decimal places, such as `12.50`"),
                        );
                        Literal::Money(0)
                    }
                }
            }
            Rule::int => Literal::Int(self.int(&p)),
            Rule::boolean => Literal::Bool(p.as_str() == "true"),
            _ => Literal::Bool(false),
        };
        Expr {
            kind: ExprKind::Lit(lit),
            span: sp,
        }
    }

    fn expr(&mut self, p: Pair<Rule>) -> Expr {
        self.depth += 1;
        let e = if self.depth > MAX_DEPTH * 2 {
            self.errors.push(
                Diagnostic::new(span(&p), "expression is nested too deeply")
                    .with_help("split it with `let`"),
            );
            Expr {
                kind: ExprKind::Lit(Literal::Bool(false)),
                span: span(&p),
            }
        } else {
            self.expr_inner(p)
        };
        self.depth -= 1;
        e
    }

    fn expr_inner(&mut self, p: Pair<Rule>) -> Expr {
        let sp = span(&p);
        match p.as_rule() {
            Rule::expr => {
                let mut inner = p.into_inner();
                let Some(first) = inner.next() else {
                    return bad(sp);
                };
                let c = self.expr(first);
                match (inner.next(), inner.next()) {
                    (Some(a), Some(b)) => {
                        let (a, b) = (self.expr(a), self.expr(b));
                        Expr {
                            kind: ExprKind::Cond(Box::new(c), Box::new(a), Box::new(b)),
                            span: sp,
                        }
                    }
                    _ => c,
                }
            }
            Rule::or_expr
            | Rule::and_expr
            | Rule::default_expr
            | Rule::add_expr
            | Rule::mul_expr => {
                let mut inner = p.into_inner();
                let Some(first) = inner.next() else {
                    return bad(sp);
                };
                let mut acc = self.expr(first);
                let mut count = 0;
                while let (Some(op), Some(rhs)) = (inner.next(), inner.next()) {
                    count += 1;
                    if count > MAX_CHAIN {
                        self.errors.push(
                            Diagnostic::new(sp.clone(), "expression is too long")
                                .with_help(format!("use at most {MAX_CHAIN} operators in one expression; split it with `let`")),
                        );
                        return bad(sp);
                    }
                    let op = match op.as_str().trim() {
                        "or" => BinOp::Or,
                        "and" => BinOp::And,
                        "??" => BinOp::Default,
                        "+" => BinOp::Add,
                        "-" => BinOp::Sub,
                        _ => BinOp::Mul,
                    };
                    let rhs = self.expr(rhs);
                    let s = acc.span.start..rhs.span.end;
                    acc = Expr {
                        kind: ExprKind::Binary(op, Box::new(acc), Box::new(rhs)),
                        span: s,
                    };
                }
                acc
            }
            Rule::not_expr => {
                let mut nots = Vec::new();
                let mut last = None;
                for part in p.into_inner() {
                    if part.as_rule() == Rule::not_op {
                        nots.push(part.as_span().start());
                    } else {
                        last = Some(self.expr(part));
                    }
                }
                let Some(mut e) = last else { return bad(sp) };
                if nots.len() > MAX_CHAIN {
                    self.errors
                        .push(Diagnostic::new(sp.clone(), "too many `not` in a row"));
                    return bad(sp);
                }
                for start in nots.into_iter().rev() {
                    let s = start..e.span.end;
                    e = Expr {
                        kind: ExprKind::Not(Box::new(e)),
                        span: s,
                    };
                }
                e
            }
            Rule::unary => {
                let mut negs = Vec::new();
                let mut last = None;
                for part in p.into_inner() {
                    if part.as_rule() == Rule::neg_op {
                        negs.push(part.as_span().start());
                    } else {
                        last = Some(self.expr(part));
                    }
                }
                let Some(mut e) = last else { return bad(sp) };
                if negs.len() > MAX_CHAIN {
                    self.errors
                        .push(Diagnostic::new(sp.clone(), "too many `-` in a row"));
                    return bad(sp);
                }
                for start in negs.into_iter().rev() {
                    let s = start..e.span.end;
                    e = Expr {
                        kind: ExprKind::Neg(Box::new(e)),
                        span: s,
                    };
                }
                e
            }
            Rule::cmp_expr => {
                let mut inner = p.into_inner();
                let Some(first) = inner.next() else {
                    return bad(sp);
                };
                let lhs = self.expr(first);
                match inner.next() {
                    None => lhs,
                    Some(t) if t.as_rule() == Rule::is_test => {
                        let set = t
                            .into_inner()
                            .next()
                            .is_some_and(|k| k.as_rule() == Rule::kw_set);
                        Expr {
                            kind: ExprKind::IsSet(Box::new(lhs), set),
                            span: sp,
                        }
                    }
                    Some(op) => {
                        let op = match op.as_str().trim() {
                            "==" => BinOp::Eq,
                            "!=" => BinOp::Ne,
                            "<=" => BinOp::Le,
                            ">=" => BinOp::Ge,
                            "<" => BinOp::Lt,
                            ">" => BinOp::Gt,
                            _ => BinOp::In,
                        };
                        let Some(r) = inner.next() else {
                            return bad(sp);
                        };
                        let rhs = self.expr(r);
                        Expr {
                            kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                            span: sp,
                        }
                    }
                }
            }
            Rule::paren => match p.into_inner().next() {
                Some(e) => Expr {
                    kind: ExprKind::Paren(Box::new(self.expr(e))),
                    span: sp,
                },
                None => bad(sp),
            },
            Rule::kw_now => Expr {
                kind: ExprKind::Now,
                span: sp,
            },
            Rule::path => Expr {
                kind: ExprKind::Path(p.into_inner().map(ident).collect()),
                span: sp,
            },
            _ => self.literal(p),
        }
    }
}

fn bad(span: Span) -> Expr {
    Expr {
        kind: ExprKind::Lit(Literal::Bool(false)),
        span,
    }
}

fn w_str(a: i64, b: i64) -> String {
    format!("{}-{}", tod_str(a), tod_str(b))
}

/// `HH:MM` for seconds since midnight.
pub fn tod_str(s: i64) -> String {
    format!("{:02}:{:02}", s / 3600, (s % 3600) / 60)
}

fn short(s: &str) -> String {
    if s.len() > 24 {
        format!("{}…", &s[..24])
    } else {
        s.to_string()
    }
}

/// A quoted text and its span (quotes included).
fn phrase(p: &Pair<Rule>) -> PhraseDecl {
    PhraseDecl {
        text: unquote(p.as_str()),
        span: span(p),
    }
}

fn unquote(s: &str) -> String {
    s.trim_start_matches('"').trim_end_matches('"').to_string()
}

/// Seconds in a duration literal such as `1h30m`.
pub fn parse_duration(s: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut num: i64 = 0;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = num.checked_mul(10)?.checked_add(i64::from(d))?;
        } else {
            let unit = match c {
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                _ => 1,
            };
            total = total.checked_add(num.checked_mul(unit)?)?;
            num = 0;
        }
    }
    Some(total)
}

/// Hundredths in a decimal literal such as `12.5`.
pub fn parse_money(s: &str) -> Option<i64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 2 {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let mut f: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    if frac.len() == 1 {
        f *= 10;
    }
    whole.checked_mul(100)?.checked_add(f)
}

/// Canonical text of a duration in seconds: `1h30m`, `7d`, `0s`.
pub fn duration_str(mut s: i64) -> String {
    if s == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= n {
            out.push_str(&format!("{}{}", s / n, unit));
            s %= n;
        }
    }
    out
}
