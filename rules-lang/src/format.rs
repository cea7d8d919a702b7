//! The canonical formatter: two-space indents, one clause per line, `and`
//! chains of a `when` one per line, aligned schema fields, and comments kept
//! where they were (a comment at the end of a line stays at the end of the
//! printed line; a comment on its own line stays above what follows it).

use crate::ast::*;
use crate::diag::{Diagnostics, line_col};
use crate::parse::{duration_str, parse_file, tod_str};

/// Formats a rules file canonically. Fails only on syntax errors.
pub fn format(source: &str) -> Result<String, Diagnostics> {
    let file = parse_file(source).map_err(|e| Diagnostics::new("<input>", e))?;
    Ok(Printer::new(source).file(&file))
}

/// Prints an AST without comments.
pub fn print_file(file: &File) -> String {
    Printer::new("").file(file)
}

/// Prints one expression.
pub fn print_expr(e: &Expr) -> String {
    let mut s = String::new();
    expr(e, &mut s);
    s
}

struct Comment {
    pos: usize,
    line: usize,
    text: String,
    own_line: bool,
    blank_after: bool,
    done: bool,
}

struct Printer<'s> {
    src: &'s str,
    comments: Vec<Comment>,
    out: String,
}

impl<'s> Printer<'s> {
    fn new(src: &'s str) -> Self {
        Printer {
            src,
            comments: find_comments(src),
            out: String::new(),
        }
    }

    fn flush_before(&mut self, pos: usize, indent: usize) {
        for c in &mut self.comments {
            if !c.done && c.pos < pos {
                c.done = true;
                if !c.own_line && self.out.ends_with('\n') {
                    // A trailing comment whose line was not printed as such.
                    self.out.pop();
                    self.out.push_str("  ");
                    self.out.push_str(&c.text);
                    self.out.push('\n');
                    continue;
                }
                self.out.push_str(&"  ".repeat(indent));
                self.out.push_str(&c.text);
                self.out.push('\n');
                if c.blank_after {
                    self.out.push('\n');
                }
            }
        }
    }

    /// Writes one line for source `span`, with comments before it and a
    /// trailing comment on the same source line.
    fn line(&mut self, indent: usize, text: &str, span: Span) {
        self.flush_before(span.start, indent);
        self.out.push_str(&"  ".repeat(indent));
        self.out.push_str(text);
        if !self.src.is_empty() {
            let end_line = line_col(self.src, span.end.saturating_sub(1).max(span.start)).0;
            for c in &mut self.comments {
                if !c.done && !c.own_line && c.line == end_line && c.pos >= span.start {
                    c.done = true;
                    self.out.push_str("  ");
                    self.out.push_str(&c.text);
                }
            }
        }
        self.out.push('\n');
    }

    fn close(&mut self, indent: usize, span: &Span) {
        let brace = span.end.saturating_sub(1);
        self.flush_before(brace, indent + 1);
        self.line(indent, "}", brace..span.end);
    }

    fn file(mut self, f: &File) -> String {
        let mut prev_let = false;
        for (i, item) in f.items.iter().enumerate() {
            let is_let = matches!(item, Item::Let(_));
            if i > 0 && !(is_let && prev_let) {
                self.out.push('\n');
            }
            prev_let = is_let;
            match item {
                Item::Schema(s) => self.schema(s),
                Item::Policy(p) => self.policy(p),
                Item::Let(l) => {
                    let t = format!("let {} = {}", l.name.name, print_expr(&l.value));
                    self.line(0, &t, l.span.clone());
                }
                Item::Rule(r) => self.rule(r),
                Item::Script(s) => self.script(s),
                Item::Sms(s) => self.sms(s),
                Item::Intent(i) => self.intent(i),
                Item::Test(t) => self.test(t),
            }
        }
        self.flush_before(usize::MAX, 0);
        while self.out.ends_with("\n\n") {
            self.out.pop();
        }
        self.out
    }

    fn schema(&mut self, s: &SchemaDecl) {
        self.line(0, "schema customer {", s.span.start..s.span.start + 6);
        let width = s
            .fields
            .iter()
            .map(|f| f.name.name.len())
            .max()
            .unwrap_or(0);
        for f in &s.fields {
            let mut t = format!("{:<width$}  {}", f.name.name, type_str(&f.ty));
            if let Some(d) = &f.default {
                t.push_str(" = ");
                t.push_str(&print_expr(d));
            }
            self.line(1, &t, f.span.clone());
        }
        self.close(0, &s.span);
    }

    fn policy(&mut self, p: &PolicyDecl) {
        self.line(0, "policy {", p.span.start..p.span.start + 6);
        for it in &p.items {
            let windows = |ws: &[Window]| {
                ws.iter()
                    .map(|w| format!("{}-{}", tod_str(w.start), tod_str(w.end)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let t = match &it.kind {
                PolicyKind::CallingHours(ws) => format!("calling hours {} local", windows(ws)),
                PolicyKind::Avoid(ws) => format!("avoid {} local", windows(ws)),
                PolicyKind::Cap { max, period, gap } => {
                    let mut t = format!(
                        "at most {max} {} per {}",
                        if *max == 1 { "call" } else { "calls" },
                        match period {
                            CapPeriod::Day => "day",
                            CapPeriod::Rolling24h => "24h",
                        }
                    );
                    if let Some(g) = gap {
                        t.push_str(&format!(", {} apart", duration_str(*g)));
                    }
                    t
                }
                PolicyKind::Quiet { outcome, duration } => {
                    format!("after {} quiet {}", outcome.name, duration_str(*duration))
                }
                PolicyKind::Never { outcome } => format!("after {} never", outcome.name),
            };
            self.line(1, &t, it.span.clone());
        }
        self.close(0, &p.span);
    }

    fn rule(&mut self, r: &RuleDecl) {
        self.line(
            0,
            &format!("rule {} {{", r.name.name),
            r.span.start..r.name.span.end,
        );
        for c in &r.clauses {
            match &c.kind {
                ClauseKind::When(e) => {
                    let mut parts = Vec::new();
                    and_chain(e, &mut parts);
                    for (i, p) in parts.iter().enumerate() {
                        let (indent, t) = if i == 0 {
                            (1, format!("when {}", print_expr(p)))
                        } else {
                            (2, format!("and {}", print_expr(p)))
                        };
                        let sp = if i == 0 {
                            c.span.start..p.span.end
                        } else {
                            p.span.clone()
                        };
                        self.line(indent, &t, sp);
                    }
                }
                ClauseKind::Priority(e) => {
                    self.line(1, &format!("priority {}", print_expr(e)), c.span.clone())
                }
                ClauseKind::Script(e) => {
                    self.line(1, &format!("script {}", print_expr(e)), c.span.clone())
                }
                ClauseKind::Line(e) => {
                    self.line(1, &format!("line {}", print_expr(e)), c.span.clone())
                }
                ClauseKind::Fallback {
                    outcome,
                    template,
                    within,
                    ..
                } => {
                    let mut t = format!("on {} send sms \"{template}\"", outcome.name);
                    if let Some(w) = within {
                        t.push_str(&format!(" within {}", duration_str(*w)));
                    }
                    self.line(1, &t, c.span.clone());
                }
            }
        }
        self.close(0, &r.span);
    }

    fn script(&mut self, s: &ScriptDecl) {
        self.line(
            0,
            &format!("script {} {{", s.name.name),
            s.span.start..s.name.span.end,
        );
        self.steps(1, &s.steps);
        self.close(0, &s.span);
    }

    fn sms(&mut self, s: &SmsDecl) {
        self.line(
            0,
            &format!("sms {} {{", s.name.name),
            s.span.start..s.name.span.end,
        );
        for f in &s.fields {
            let t = format!("{} \"{}\"", f.kind.word(), f.value);
            self.line(1, &t, f.span.clone());
        }
        self.close(0, &s.span);
    }

    fn intent(&mut self, d: &IntentDecl) {
        self.line(
            0,
            &format!("intent {} {{", d.name.name),
            d.span.start..d.name.span.end,
        );
        for l in &d.langs {
            let mut t = l.tag.name.clone();
            for (i, p) in l.phrases.iter().enumerate() {
                t.push_str(if i == 0 { " " } else { ", " });
                t.push_str(&format!("\"{}\"", p.text));
            }
            self.line(1, &t, l.span.clone());
        }
        self.close(0, &d.span);
    }

    fn steps(&mut self, indent: usize, steps: &[StepDecl]) {
        for st in steps {
            match &st.kind {
                StepKind::Say(t, _) => self.line(indent, &format!("say \"{t}\""), st.span.clone()),
                StepKind::Play(p) => self.line(indent, &format!("play \"{p}\""), st.span.clone()),
                StepKind::OptOut => self.line(indent, "opt out", st.span.clone()),
                StepKind::HangUp => self.line(indent, "hang up", st.span.clone()),
                StepKind::SendSms(name, _) => {
                    self.line(indent, &format!("send sms \"{name}\""), st.span.clone())
                }
                StepKind::Listen {
                    within,
                    head,
                    branches,
                } => {
                    self.line(
                        indent,
                        &format!("listen {} {{", duration_str(*within)),
                        head.clone(),
                    );
                    for b in branches {
                        let trigger = match &b.trigger {
                            TriggerDecl::Digit(d) => format!("digit \"{d}\""),
                            TriggerDecl::Speech => "speech".to_string(),
                            TriggerDecl::Silence => "silence".to_string(),
                            TriggerDecl::Intent(i) => format!("intent {}", i.name),
                        };
                        self.line(indent + 1, &format!("on {trigger} {{"), b.head.clone());
                        self.steps(indent + 2, &b.steps);
                        self.close(indent + 1, &b.span);
                    }
                    self.close(indent, &st.span);
                }
            }
        }
    }

    fn test(&mut self, t: &TestDecl) {
        self.line(
            0,
            &format!("test \"{}\" {{", t.name),
            t.span.start..t.span.start + 4,
        );
        if let Some((_, sp)) = &t.at {
            let text = self.src.get(sp.clone()).map(str::to_string);
            let text = text.filter(|s| !s.is_empty()).unwrap_or_else(|| {
                jiff::Timestamp::from_second(t.at.as_ref().map_or(0, |a| a.0))
                    .map(|ts| ts.to_string())
                    .unwrap_or_default()
            });
            self.line(1, &format!("at {text}"), sp.clone());
        }
        for (label, fields) in [("customer", &t.customer), ("history", &t.history)] {
            if fields.is_empty() {
                continue;
            }
            let items: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.name.name, test_value(&f.value)))
                .collect();
            let one = format!("{label} {{ {} }}", items.join(", "));
            let first = fields[0].span.start;
            if one.len() <= 96 {
                self.line(1, &one, first..fields[fields.len() - 1].span.end);
            } else {
                self.flush_before(first, 1);
                self.out.push_str(&format!("  {label} {{\n"));
                for (f, s) in fields.iter().zip(items) {
                    self.line(2, &format!("{s},"), f.span.clone());
                }
                self.out.push_str("  }\n");
            }
        }
        if let Some(s) = &t.script {
            self.line(1, &format!("script {}", s.name), s.span.clone());
        }
        for i in &t.inputs {
            let text = match &i.kind {
                TestInputKind::Hears(h) => format!("hears \"{h}\""),
                TestInputKind::Presses(k) => format!("presses \"{k}\""),
                TestInputKind::Silence => "silence".to_string(),
            };
            self.line(1, &text, i.span.clone());
        }
        if let Some(o) = &t.outcome {
            let text = format!("outcome {}{}", o.outcome.name, line_at(&o.at));
            self.line(1, &text, o.span.clone());
        }
        if let Some(e) = &t.expect {
            let text = match e {
                Expectation::None => "expect none".to_string(),
                Expectation::Rule {
                    name,
                    priority,
                    script,
                    line,
                } => {
                    let mut s = format!("expect {}", name.name);
                    if let Some(p) = priority {
                        s.push_str(&format!(" priority {p}"));
                    }
                    if let Some(sc) = script {
                        s.push_str(&format!(" script \"{sc}\""));
                    }
                    if let Some(l) = line {
                        s.push_str(&format!(" line {}", l.name));
                    }
                    s
                }
            };
            let pos = t.span.end.saturating_sub(1);
            let sp = t
                .expect_span
                .clone()
                .or_else(|| self.expect_span(t))
                .unwrap_or(pos..pos);
            self.line(1, &text, sp);
        }
        if let Some(e) = &t.expect_sms {
            let text = match &e.template {
                Some(name) => format!("expect sms {}{}", name.name, line_at(&e.at)),
                None => "expect sms none".to_string(),
            };
            self.line(1, &text, e.span.clone());
        }
        if let Some((names, sp)) = &t.expect_intents {
            let text = if names.is_empty() {
                "expect intent none".to_string()
            } else {
                let names: Vec<String> = names.iter().map(|n| format!("\"{}\"", n.text)).collect();
                format!("expect intent {}", names.join(", "))
            };
            self.line(1, &text, sp.clone());
        }
        if let Some(trail) = &t.expect_trail {
            self.line(
                1,
                &format!("expect trail \"{}\"", trail.text),
                trail.span.clone(),
            );
        }
        self.close(0, &t.span);
    }

    fn expect_span(&self, t: &TestDecl) -> Option<Span> {
        let body = self.src.get(t.span.clone())?;
        let at = body.rfind("expect")?;
        let end = body[at..]
            .find('\n')
            .map_or(t.span.end - 1, |n| t.span.start + at + n);
        Some(t.span.start + at..end.min(t.span.end - 1).max(t.span.start + at + 1))
    }
}

fn find_comments(src: &str) -> Vec<Comment> {
    let mut out = Vec::new();
    let mut pos = 0;
    let lines: Vec<&str> = src.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let mut in_string = false;
        for (j, ch) in line.char_indices() {
            match ch {
                '"' => in_string = !in_string,
                '#' if !in_string => {
                    let own_line = line[..j].trim().is_empty();
                    let blank_after =
                        own_line && lines.get(i + 1).is_some_and(|l| l.trim().is_empty());
                    out.push(Comment {
                        pos: pos + j,
                        line: i + 1,
                        text: line[j..].trim_end().to_string(),
                        own_line,
                        blank_after,
                        done: false,
                    });
                    break;
                }
                _ => {}
            }
        }
        pos += line.len();
    }
    out
}

fn and_chain<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &e.kind {
        ExprKind::Binary(BinOp::And, a, b) => {
            and_chain(a, out);
            out.push(b);
        }
        _ => out.push(e),
    }
}

fn type_str(t: &TypeExpr) -> String {
    let base = match &t.kind {
        TypeKind::Named(n) => n.clone(),
        TypeKind::Enum(vs) => format!(
            "enum {{ {} }}",
            vs.iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        TypeKind::Set(i) => format!("set<{}>", i.name),
    };
    if t.optional { format!("{base}?") } else { base }
}

/// ` at TIME`, as written, for a test line that gives a time.
fn line_at(at: &Option<TestTime>) -> String {
    at.as_ref()
        .map_or_else(String::new, |at| format!(" at {}", at.text))
}

fn test_value(v: &TestValue) -> String {
    match v {
        TestValue::Literal(e) => print_expr(e),
        TestValue::Symbol(s) => s.name.clone(),
        TestValue::None => "none".to_string(),
        TestValue::List(items) => format!(
            "[{}]",
            items.iter().map(print_expr).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn literal(l: &Literal, out: &mut String) {
    match l {
        Literal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Literal::Int(v) => out.push_str(&v.to_string()),
        Literal::Money(v) => out.push_str(&format!("{}.{:02}", v / 100, v % 100)),
        Literal::Text(s) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        Literal::Time(_, text) => out.push_str(text),
        Literal::Duration(d) => out.push_str(&duration_str(*d)),
        Literal::TimeOfDay(t) => out.push_str(&tod_str(*t)),
    }
}

fn expr(e: &Expr, out: &mut String) {
    match &e.kind {
        ExprKind::Lit(l) => literal(l, out),
        ExprKind::Now => out.push_str("now"),
        ExprKind::Path(parts) => out.push_str(
            &parts
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join("."),
        ),
        ExprKind::Not(a) => {
            out.push_str("not ");
            expr(a, out);
        }
        ExprKind::Neg(a) => {
            out.push('-');
            expr(a, out);
        }
        ExprKind::Binary(op, a, b) => {
            expr(a, out);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            expr(b, out);
        }
        ExprKind::IsSet(a, set) => {
            expr(a, out);
            out.push_str(if *set { " is set" } else { " is none" });
        }
        ExprKind::Cond(c, a, b) => {
            expr(c, out);
            out.push_str(" ? ");
            expr(a, out);
            out.push_str(" : ");
            expr(b, out);
        }
        ExprKind::Paren(a) => {
            out.push('(');
            expr(a, out);
            out.push(')');
        }
    }
}
