//! Scripts: the call flow after the callee answers, declared as
//! `script NAME { ... }` blocks, and [`ScriptRun`], a sans-IO runner that
//! turns call events into actions for the media engine.
//!
//! A script is a tree of steps without loops, so every run ends: each event
//! either moves forward through the tree or is ignored.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::ast::{self, Span, StepKind, TriggerDecl};
use crate::diag::{Diagnostic, nearest};
use crate::intent::{self, Intent, IntentMatch, Language, Utterance};
use crate::parse::{duration_str, tod_str};
use crate::record::{FieldType, NONE, Record, Schema, WEEKDAYS};

/// The longest `listen` a script may declare.
pub const MAX_LISTEN: Duration = Duration::from_secs(60);

/// The keys a `on digit` branch may name.
pub const DIGITS: &str = "0123456789*#ABCD";

/// One compiled `script` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub name: String,
    pub steps: Vec<Step>,
}

/// One step of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Speak the rendered text.
    Say(Template),
    /// Play an audio file; the path is as written, relative to the rules
    /// file's folder.
    Play(String),
    /// Wait up to `within` for the first event that has a branch.
    Listen {
        within: Duration,
        branches: Vec<(Trigger, Vec<Step>)>,
    },
    /// Put the number on the do-not-call list at once.
    OptOut,
    HangUp,
    /// Ask for the SMS template of this name to be sent to the callee;
    /// the call goes on at once.
    SendSms(String),
}

/// What ends a `listen`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// A DTMF key: `0`-`9`, `*`, `#`, `A`-`D`.
    Digit(char),
    /// The callee started speaking; with intent branches, also what a
    /// transcript matching none of them takes.
    Speech,
    /// Nothing with a branch happened before the listen timed out.
    Silence,
    /// A transcript that expresses this intent (see [`crate::intent`]).
    Intent(Arc<Intent>),
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Digit(d) => write!(f, "digit {d}"),
            Trigger::Speech => f.write_str("speech"),
            Trigger::Silence => f.write_str("silence"),
            Trigger::Intent(i) => write!(f, "intent {}", i.name),
        }
    }
}

/// The text of a `say` or of an `sms` block, with `{customer.FIELD}`
/// placeholders resolved to schema slots at compile time (and, in an SMS
/// text, `{link}` for the tracked short link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The text as written between the quotes.
    pub source: String,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// A customer field: its slot in the schema and its name.
    Field {
        slot: usize,
        name: String,
    },
    /// `{link}`, the tracked short link of an SMS; only in SMS texts.
    Link,
}

impl Template {
    /// A template of plain text, with no placeholder.
    pub fn literal(text: &str) -> Template {
        Template {
            source: text.to_owned(),
            parts: vec![Part::Text(text.to_owned())],
        }
    }

    /// The text when the template names no customer field (and no
    /// `{link}`): the same for every customer.
    pub fn fixed_text(&self) -> Option<String> {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => Some(text.as_str()),
                Part::Field { .. } | Part::Link => None,
            })
            .collect()
    }

    /// The text with every placeholder replaced by the record's value.
    ///
    /// Text, phone: as stored. Int: decimal. Money: two decimals (`80.50`).
    /// Bool: `true`/`false`. Enum: the value's name. Time: ISO 8601 in the
    /// customer's time zone (the schema's first `timezone` field), else UTC,
    /// such as `2026-03-09T10:00:00+08:00`. Duration: `1h30m`. Time of day:
    /// `09:00`. Weekday: `mon`. Time zone: its IANA name. Set: the items
    /// joined with `, `. A field that is none renders as nothing. Never
    /// panics: a record that does not fit the schema renders the field as
    /// nothing. A `{link}`, which only an SMS text can hold, renders as
    /// nothing too; [`Template::render_with_link`] fills it in.
    pub fn render(&self, record: &Record, schema: &Schema) -> String {
        self.render_with_link(record, schema, "")
    }

    /// The text as [`Template::render`] gives it, with every `{link}`
    /// replaced by `link`.
    pub fn render_with_link(&self, record: &Record, schema: &Schema, link: &str) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field { slot, name } => {
                    if let Some(v) = field_text(record, schema, *slot, name) {
                        out.push_str(&v);
                    }
                }
                Part::Link => out.push_str(link),
            }
        }
        out
    }
}

fn field_text(record: &Record, schema: &Schema, slot: usize, name: &str) -> Option<String> {
    let field = schema.fields.get(slot).filter(|f| f.name == name)?;
    let w = *record.words.get(slot)?;
    if w == NONE {
        return None;
    }
    Some(match &field.ty {
        FieldType::Bool => (if w != 0 { "true" } else { "false" }).to_string(),
        FieldType::Int => w.to_string(),
        FieldType::Money => money_str(w),
        FieldType::Text | FieldType::Phone => record.text(w)?.to_string(),
        FieldType::Time => local_time_text(
            Timestamp::from_second(w).ok()?,
            &customer_zone(record, schema),
        ),
        FieldType::Duration => {
            if w < 0 {
                format!("-{}", duration_str(w.checked_neg()?))
            } else {
                duration_str(w)
            }
        }
        FieldType::TimeOfDay => tod_str(w),
        FieldType::Weekday => WEEKDAYS.get(usize::try_from(w).ok()?)?.to_string(),
        FieldType::TimeZone => record.zone(w)?.iana_name().unwrap_or("").to_string(),
        FieldType::Enum(vs) => vs.get(usize::try_from(w).ok()?)?.clone(),
        FieldType::TextSet => record.set(w).join(", "),
    })
}

/// The customer's time zone: the schema's first `timezone` field, else UTC.
pub(crate) fn customer_zone(record: &Record, schema: &Schema) -> TimeZone {
    schema
        .zone_slot()
        .and_then(|z| record.words.get(z))
        .and_then(|zw| record.zone(*zw))
        .cloned()
        .unwrap_or(TimeZone::UTC)
}

/// `at` as ISO 8601 in `zone`, to the second: `2026-03-09T10:00:00+08:00`.
pub(crate) fn local_time_text(at: Timestamp, zone: &TimeZone) -> String {
    at.to_zoned_datetime(zone.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Hundredths as a decimal with two places: `8050` → `80.50`, `-5` → `-0.05`.
fn money_str(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

// ---- lowering ----

/// Checks and compiles the file's `script` blocks against the schema.
pub(crate) fn lower(
    decls: &[&ast::ScriptDecl],
    schema: &Schema,
    intents: &[Arc<Intent>],
    src: &str,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Script> {
    let mut out: Vec<Script> = Vec::new();
    for d in decls {
        if out.iter().any(|s| s.name == d.name.name) {
            errors.push(
                Diagnostic::new(
                    d.name.span.clone(),
                    format!("script `{}` is declared twice", d.name.name),
                )
                .with_help("give each script its own name"),
            );
            continue;
        }
        let mut l = Lowerer {
            schema,
            intents,
            src,
            errors,
        };
        let steps = l.steps(&d.steps);
        out.push(Script {
            name: d.name.name.clone(),
            steps,
        });
    }
    out
}

/// Lowers the text of an `sms` block: placeholders as in a `say`, and
/// `{link}` for the tracked short link. `sp` is the quoted text's span.
pub(crate) fn sms_text(
    text: &str,
    sp: &Span,
    schema: &Schema,
    errors: &mut Vec<Diagnostic>,
) -> Template {
    let mut l = Lowerer {
        schema,
        intents: &[],
        src: "",
        errors,
    };
    l.template(text, sp, Place::Sms)
}

/// Where a template is used, which decides what its placeholders may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A `say`: customer fields.
    Say,
    /// An SMS text: customer fields and `{link}`.
    Sms,
}

struct Lowerer<'a> {
    schema: &'a Schema,
    intents: &'a [Arc<Intent>],
    src: &'a str,
    errors: &'a mut Vec<Diagnostic>,
}

impl Lowerer<'_> {
    fn err(&mut self, span: Span, msg: String, help: impl Into<String>) {
        self.errors.push(Diagnostic::new(span, msg).with_help(help));
    }

    fn steps(&mut self, steps: &[ast::StepDecl]) -> Vec<Step> {
        steps.iter().filter_map(|s| self.step(s)).collect()
    }

    fn step(&mut self, s: &ast::StepDecl) -> Option<Step> {
        Some(match &s.kind {
            StepKind::Say(text, sp) => Step::Say(self.template(text, sp, Place::Say)),
            StepKind::Play(path) => {
                if path.trim().is_empty() {
                    self.err(
                        s.span.clone(),
                        "`play` needs a file".to_string(),
                        "write the path of a WAV file, such as `play \"prompts/offer.wav\"`",
                    );
                }
                Step::Play(path.clone())
            }
            StepKind::Listen {
                within,
                head,
                branches,
            } => {
                let written = self.src.get(head.clone()).unwrap_or("listen").to_string();
                let help = "listen for 1s to 60s, such as `listen 6s`";
                if *within <= 0 {
                    self.err(
                        head.clone(),
                        format!("`{written}` never hears anything"),
                        help,
                    );
                } else if *within > MAX_LISTEN.as_secs() as i64 {
                    self.err(head.clone(), format!("`{written}` is too long"), help);
                }
                let mut out: Vec<(Trigger, Vec<Step>)> = Vec::new();
                for b in branches {
                    let head_text = self.src.get(b.head.clone()).unwrap_or("on").to_string();
                    let trigger = match &b.trigger {
                        TriggerDecl::Speech => Trigger::Speech,
                        TriggerDecl::Silence => Trigger::Silence,
                        TriggerDecl::Intent(id) => {
                            match self.intents.iter().find(|i| i.name == id.name) {
                                Some(i) => Trigger::Intent(Arc::clone(i)),
                                None => {
                                    self.unknown_intent(id);
                                    continue;
                                }
                            }
                        }
                        TriggerDecl::Digit(d) => {
                            let mut chars = d.chars();
                            match (chars.next(), chars.next()) {
                                (Some(c), None) if DIGITS.contains(c) => Trigger::Digit(c),
                                _ => {
                                    self.err(
                                        b.head.clone(),
                                        format!("`{d}` is not a key on a phone keypad"),
                                        "a digit is one key: `0` to `9`, `*`, `#` or `A` to `D`, such as `on digit \"1\"`",
                                    );
                                    continue;
                                }
                            }
                        }
                    };
                    if out.iter().any(|(t, _)| *t == trigger) {
                        self.err(
                            b.head.clone(),
                            format!("`{head_text}` appears twice in one `listen`"),
                            "keep one of the branches",
                        );
                        continue;
                    }
                    let steps = self.steps(&b.steps);
                    out.push((trigger, steps));
                }
                Step::Listen {
                    within: Duration::from_secs(u64::try_from(*within).unwrap_or(0)),
                    branches: out,
                }
            }
            StepKind::OptOut => Step::OptOut,
            StepKind::HangUp => Step::HangUp,
            // Whether the template is declared is checked with the rules'
            // `send sms` clauses, in `check`.
            StepKind::SendSms(name, _) => Step::SendSms(name.clone()),
        })
    }

    fn unknown_intent(&mut self, id: &ast::Ident) {
        let names: Vec<&str> = self.intents.iter().map(|i| i.name.as_str()).collect();
        let listing = crate::diag::listing(&names);
        let help = if names.is_empty() {
            format!(
                "the file declares no intent; declare one, such as `intent {} {{ zh \"不需要\" en \"not interested\" }}`",
                id.name
            )
        } else {
            match nearest(&id.name, names.iter().copied()) {
                Some(n) => format!("did you mean `{n}`? the file declares intents {listing}"),
                None => format!(
                    "the file declares intents {listing}; name one of them, or add `intent {} {{ ... }}`",
                    id.name
                ),
            }
        };
        self.err(
            id.span.clone(),
            format!("intent `{}` is not declared", id.name),
            help,
        );
    }

    /// Splits `text` into literal parts and `{customer.FIELD}` placeholders
    /// (and `{link}` in an SMS text); `{{` and `}}` stand for literal
    /// braces. `sp` is the quoted text's span.
    fn template(&mut self, text: &str, sp: &Span, place: Place) -> Template {
        let base = sp.start + 1;
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text.char_indices().peekable();
        while let Some((i, c)) = rest.next() {
            match c {
                '{' if rest.peek().is_some_and(|(_, n)| *n == '{') => {
                    rest.next();
                    lit.push('{');
                }
                '}' if rest.peek().is_some_and(|(_, n)| *n == '}') => {
                    rest.next();
                    lit.push('}');
                }
                '}' => self.err(
                    base + i..base + i + 1,
                    "`}` closes no placeholder".to_string(),
                    "write `}}` for a brace, or `{customer.name}` for a field",
                ),
                '{' => {
                    let Some(len) = text[i..].find('}') else {
                        self.err(
                            base + i..base + text.len(),
                            format!("placeholder `{}` is not closed", &text[i..]),
                            "close it with `}`, such as `{customer.name}`; write `{{` for a brace",
                        );
                        break;
                    };
                    let inner = &text[i + 1..i + len];
                    let span = base + i..base + i + len + 1;
                    while rest.peek().is_some_and(|(j, _)| *j <= i + len) {
                        rest.next();
                    }
                    if let Some(p) = self.placeholder(inner.trim(), span, place) {
                        if !lit.is_empty() {
                            parts.push(Part::Text(std::mem::take(&mut lit)));
                        }
                        parts.push(p);
                    }
                }
                _ => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Template {
            source: text.to_string(),
            parts,
        }
    }

    fn placeholder(&mut self, inner: &str, span: Span, place: Place) -> Option<Part> {
        let names: Vec<&str> = self.schema.fields.iter().map(|f| f.name.as_str()).collect();
        let listing = || self.schema.declared_fields();
        if inner == "link" {
            if place == Place::Sms {
                return Some(Part::Link);
            }
            self.err(
                span,
                "`{link}` cannot be spoken".to_string(),
                "a link is sent by SMS: put `{link}` in the `text` of an `sms` block and add `send sms \"NAME\"` to the script",
            );
            return None;
        }
        let Some(field) = inner.strip_prefix("customer.") else {
            let (message, also) = match place {
                Place::Say => (format!("`{{{inner}}}` cannot be spoken"), ""),
                Place::Sms => (
                    format!("`{{{inner}}}` cannot be filled in"),
                    ", or is `{link}`",
                ),
            };
            self.err(
                span,
                message,
                format!(
                    "a placeholder names a customer field, such as `{{customer.{}}}`{also}; {}",
                    names.first().copied().unwrap_or("name"),
                    listing()
                ),
            );
            return None;
        };
        match self.schema.field(field) {
            Some((slot, f)) => Some(Part::Field {
                slot,
                name: f.name.clone(),
            }),
            None => {
                let help = match nearest(field, names.iter().copied()) {
                    Some(n) => format!("did you mean `customer.{n}`? {}", listing()),
                    None => listing(),
                };
                self.err(span, format!("unknown field `customer.{field}`"), help);
                None
            }
        }
    }
}

// ---- the runner ----

/// What happened on the call, as the media engine reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScriptEvent<'t> {
    /// The last `Say` or `Play` action finished playing.
    PromptDone,
    /// The callee pressed a key.
    Digit(char),
    /// Voice activity: the callee started speaking.
    SpeechStarted,
    /// The timer armed by the last `Listen` action ran out.
    ListenTimedOut,
    /// A recognizer's transcript of what the callee said. `language` is
    /// the recognizer's language, if it knows it; `confidence`, 0 to 1, its
    /// confidence in the transcript (1 when it gives none).
    Heard {
        text: &'t str,
        language: Option<Language>,
        confidence: f32,
    },
}

impl<'t> ScriptEvent<'t> {
    /// `Heard` with no language given and full confidence.
    pub fn heard(text: &'t str) -> ScriptEvent<'t> {
        ScriptEvent::Heard {
            text,
            language: None,
            confidence: 1.0,
        }
    }
}

/// What the media engine should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Speak this text, then report `PromptDone`.
    Say(String),
    /// Play this file (relative to the rules file's folder), then report
    /// `PromptDone`.
    Play(String),
    /// Arm a timer for this long and report `ListenTimedOut` when it runs
    /// out (unless a digit or speech ends the listen first).
    Listen(Duration),
    /// Put the number on the do-not-call list now.
    OptOut,
    /// Send the callee the SMS template of this name. Nothing is awaited:
    /// the run has already gone on to the next step.
    SendSms(String),
    /// Hang up; the run is over.
    HangUp,
}

#[derive(Debug, Clone, Copy)]
enum State<'a> {
    NotStarted,
    Prompt,
    Listening(&'a [(Trigger, Vec<Step>)]),
    Done,
}

/// Runs one script for one call. Sans IO: it never reads the clock, never
/// sleeps and never touches the network; the engine feeds it
/// [`ScriptEvent`]s and carries out the [`Action`]s it returns.
///
/// - Prompts run one at a time: after a `Say` or `Play` the runner waits
///   for `PromptDone` before the next step, so a `Listen` is emitted (and
///   its timer armed) only when the prompts before it have finished.
/// - Digits pressed while a prompt plays are kept (type-ahead): when the
///   next `listen` starts, the first of them that has a branch answers it at
///   once, without a `Listen` action. The rest are dropped.
/// - In a `listen`, a digit or speech without a branch is ignored and the
///   listen keeps waiting; the timeout runs the `on silence` branch, or,
///   without one, goes on with the step after the `listen`.
/// - A transcript (`Heard`) in a `listen` takes the `on intent` branch
///   whose intent it expresses best (see [`crate::intent`]), if its
///   confidence reaches the threshold; otherwise the `on speech` branch,
///   or, without one, it is ignored like speech without a branch.
/// - When the engine gives transcripts ([`ScriptRun::set_transcripts`]),
///   the start of speech does not end a `listen` that has `on intent`
///   branches: its transcript decides. Without transcripts (the default),
///   the start of speech takes `on speech` as it always has.
/// - Speech and transcripts while a prompt plays are ignored (no
///   barge-in).
/// - After a branch's steps, the run goes on after its `listen`. Running
///   off the end of the script hangs up.
/// - `OptOut` is emitted at most once per run, always before the `HangUp`.
/// - `SendSms` is not a prompt: it comes with the actions of the steps
///   after it, and no event is awaited for it.
/// - After `HangUp` every event is ignored.
#[derive(Debug, Clone)]
pub struct ScriptRun<'a> {
    record: &'a Record,
    schema: &'a Schema,
    frames: Vec<(&'a [Step], usize)>,
    state: State<'a>,
    pending: Vec<char>,
    trail: Vec<String>,
    digits: String,
    opted_out: bool,
    transcripts: bool,
    threshold: f32,
    intents: Vec<IntentMatch<'a>>,
}

impl<'a> ScriptRun<'a> {
    /// A run of `script` for the customer in `record` (rendered with
    /// `schema`, the program's schema).
    pub fn new(script: &'a Script, record: &'a Record, schema: &'a Schema) -> Self {
        ScriptRun {
            record,
            schema,
            frames: vec![(script.steps.as_slice(), 0)],
            state: State::NotStarted,
            pending: Vec::new(),
            trail: Vec::new(),
            digits: String::new(),
            opted_out: false,
            transcripts: false,
            threshold: intent::DEFAULT_THRESHOLD,
            intents: Vec::new(),
        }
    }

    /// Whether the engine sends a `Heard` transcript after the callee
    /// speaks. When it does, `SpeechStarted` no longer ends a `listen`
    /// that has `on intent` branches. Off by default.
    pub fn set_transcripts(&mut self, on: bool) {
        self.transcripts = on;
    }

    /// The lowest confidence at which an intent is taken, 0 to 1;
    /// [`intent::DEFAULT_THRESHOLD`] unless set.
    pub fn set_intent_threshold(&mut self, threshold: f32) {
        self.threshold = if threshold.is_nan() {
            intent::DEFAULT_THRESHOLD
        } else {
            threshold.clamp(0.0, 1.0)
        };
    }

    /// The first actions, when the callee has answered. Later calls return
    /// nothing.
    pub fn start(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if matches!(self.state, State::NotStarted) {
            self.advance(&mut out);
        }
        out
    }

    /// Feeds one event; returns what to do next (often nothing).
    pub fn handle(&mut self, event: ScriptEvent<'_>) -> Vec<Action> {
        let mut out = Vec::new();
        if matches!(self.state, State::Done | State::NotStarted) {
            return out;
        }
        if let ScriptEvent::Digit(c) = event {
            self.digits.push(c);
        }
        match (self.state, event) {
            (State::Prompt, ScriptEvent::PromptDone) => self.advance(&mut out),
            (State::Prompt, ScriptEvent::Digit(c)) => self.pending.push(c),
            (State::Listening(branches), ScriptEvent::Digit(c)) => {
                self.take(branches, &Trigger::Digit(c), &mut out);
            }
            (State::Listening(branches), ScriptEvent::SpeechStarted) => {
                let wait = self.transcripts
                    && branches
                        .iter()
                        .any(|(t, _)| matches!(t, Trigger::Intent(_)));
                if !wait {
                    self.take(branches, &Trigger::Speech, &mut out);
                }
            }
            (
                State::Listening(branches),
                ScriptEvent::Heard {
                    text,
                    language,
                    confidence,
                },
            ) => {
                let offered = branches.iter().filter_map(|(t, _)| match t {
                    Trigger::Intent(i) => Some(i.as_ref()),
                    _ => None,
                });
                let u = Utterance::new(text);
                let found = intent::best_in(&u, language, confidence, offered, self.threshold);
                let taken = found.and_then(|m| {
                    let (t, steps) = branches.iter().find(|(t, _)| match t {
                        Trigger::Intent(i) => std::ptr::eq(i.as_ref(), m.intent),
                        _ => false,
                    })?;
                    Some((m, t, steps))
                });
                match taken {
                    Some((m, t, steps)) => {
                        self.intents.push(m);
                        self.note_outcome(t);
                        self.frames.push((steps.as_slice(), 0));
                        self.advance(&mut out);
                    }
                    None => {
                        self.take(branches, &Trigger::Speech, &mut out);
                    }
                }
            }
            (State::Listening(branches), ScriptEvent::ListenTimedOut) => {
                let taken = self.take(branches, &Trigger::Silence, &mut out);
                if !taken {
                    // No `on silence`: go on after the listen.
                    self.note_outcome(&Trigger::Silence);
                    self.advance(&mut out);
                }
            }
            _ => {}
        }
        out
    }

    /// Whether the run has hung up.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the callee opted out during this run.
    pub fn opted_out(&self) -> bool {
        self.opted_out
    }

    /// Every key the callee pressed during the run, in order.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// Every intent taken during the run, in order, each with the phrase
    /// that matched and its confidence: for call records.
    pub fn matched_intents(&self) -> &[IntentMatch<'a>] {
        &self.intents
    }

    /// The last intent taken, if any.
    pub fn matched_intent(&self) -> Option<&IntentMatch<'a>> {
        self.intents.last()
    }

    /// The path taken, one entry per step: `say`, `play`, `listen→digit 9`,
    /// `listen→intent NAME`, `listen→speech`, `listen→silence`, `opt out`,
    /// `send sms`, `hang up`.
    pub fn trail_steps(&self) -> &[String] {
        &self.trail
    }

    /// The path taken, for call records: `say, listen→digit 9, opt out, say, hang up`.
    pub fn trail(&self) -> String {
        self.trail.join(", ")
    }

    fn note_outcome(&mut self, t: &Trigger) {
        if let Some(last) = self.trail.last_mut() {
            *last = format!("listen→{t}");
        }
    }

    /// Enters the branch for `t`, if the listen has one.
    fn take(
        &mut self,
        branches: &'a [(Trigger, Vec<Step>)],
        t: &Trigger,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some((_, steps)) = branches.iter().find(|(bt, _)| bt == t) else {
            return false;
        };
        self.note_outcome(t);
        self.frames.push((steps.as_slice(), 0));
        self.advance(out);
        true
    }

    /// Runs steps until one waits for an event or the run ends.
    fn advance(&mut self, out: &mut Vec<Action>) {
        loop {
            let Some(frame) = self.frames.last_mut() else {
                self.hang_up(out);
                return;
            };
            let (steps, i) = *frame;
            let Some(step) = steps.get(i) else {
                self.frames.pop();
                continue;
            };
            frame.1 += 1;
            match step {
                Step::Say(t) => {
                    out.push(Action::Say(t.render(self.record, self.schema)));
                    self.trail.push("say".into());
                    self.state = State::Prompt;
                    return;
                }
                Step::Play(p) => {
                    out.push(Action::Play(p.clone()));
                    self.trail.push("play".into());
                    self.state = State::Prompt;
                    return;
                }
                Step::Listen { within, branches } => {
                    self.trail.push("listen".into());
                    let pending = std::mem::take(&mut self.pending);
                    let typed = pending
                        .into_iter()
                        .find_map(|c| branches.iter().find(|(t, _)| *t == Trigger::Digit(c)));
                    if let Some((t, s)) = typed {
                        self.note_outcome(t);
                        self.frames.push((s.as_slice(), 0));
                        continue;
                    }
                    out.push(Action::Listen(*within));
                    self.state = State::Listening(branches);
                    return;
                }
                Step::OptOut => {
                    if !self.opted_out {
                        out.push(Action::OptOut);
                        self.opted_out = true;
                    }
                    self.trail.push("opt out".into());
                }
                Step::SendSms(name) => {
                    out.push(Action::SendSms(name.clone()));
                    self.trail.push("send sms".into());
                }
                Step::HangUp => {
                    self.hang_up(out);
                    return;
                }
            }
        }
    }

    fn hang_up(&mut self, out: &mut Vec<Action>) {
        out.push(Action::HangUp);
        self.trail.push("hang up".into());
        self.frames.clear();
        self.pending.clear();
        self.state = State::Done;
    }
}
