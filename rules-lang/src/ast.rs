//! The abstract syntax tree. Every node carries the byte span it came from.

use std::ops::Range;

/// A byte range in the source text.
pub type Span = Range<usize>;

/// A parsed `.rules` file.
#[derive(Debug, Clone, Default)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub enum Item {
    Schema(SchemaDecl),
    Policy(PolicyDecl),
    Let(LetDecl),
    Rule(RuleDecl),
    Script(ScriptDecl),
    Sms(SmsDecl),
    Intent(IntentDecl),
    Test(Box<TestDecl>),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Schema(s) => s.span.clone(),
            Item::Policy(p) => p.span.clone(),
            Item::Let(l) => l.span.clone(),
            Item::Rule(r) => r.span.clone(),
            Item::Script(s) => s.span.clone(),
            Item::Sms(s) => s.span.clone(),
            Item::Intent(i) => i.span.clone(),
            Item::Test(t) => t.span.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct SchemaDecl {
    pub fields: Vec<FieldDecl>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct FieldDecl {
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum TypeKind {
    Named(String),
    Enum(Vec<Ident>),
    Set(Ident),
}

#[derive(Debug, Clone)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub optional: bool,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct PolicyDecl {
    pub items: Vec<PolicyItem>,
    pub span: Span,
}

/// A window of local time, in seconds since local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapPeriod {
    Day,
    Rolling24h,
}

#[derive(Debug, Clone)]
pub enum PolicyKind {
    CallingHours(Vec<Window>),
    Avoid(Vec<Window>),
    Cap {
        max: i64,
        period: CapPeriod,
        gap: Option<i64>,
    },
    Quiet {
        outcome: Ident,
        duration: i64,
    },
    Never {
        outcome: Ident,
    },
}

#[derive(Debug, Clone)]
pub struct PolicyItem {
    pub kind: PolicyKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct LetDecl {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct RuleDecl {
    pub name: Ident,
    pub clauses: Vec<Clause>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum ClauseKind {
    When(Expr),
    Priority(Expr),
    Script(Expr),
    Line(Expr),
    /// `on OUTCOME send sms "TEMPLATE" [within DURATION]`; `template_span`
    /// is the quoted name's.
    Fallback {
        outcome: Ident,
        template: String,
        template_span: Span,
        within: Option<i64>,
    },
}

#[derive(Debug, Clone)]
pub struct Clause {
    pub kind: ClauseKind,
    pub span: Span,
}

/// `script NAME { STEP... }`: the call flow after the callee answers.
#[derive(Debug, Clone)]
pub struct ScriptDecl {
    pub name: Ident,
    pub steps: Vec<StepDecl>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    /// `say "TEMPLATE"`; the span is the quoted text's.
    Say(String, Span),
    /// `play "FILE.wav"`.
    Play(String),
    /// `listen DURATION { on ... }`; `head` spans `listen DURATION`.
    Listen {
        within: i64,
        head: Span,
        branches: Vec<BranchDecl>,
    },
    OptOut,
    HangUp,
    /// `send sms "TEMPLATE"`; the span is the quoted name's.
    SendSms(String, Span),
}

#[derive(Debug, Clone)]
pub struct StepDecl {
    pub kind: StepKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerDecl {
    /// The digit as written between the quotes.
    Digit(String),
    Speech,
    Silence,
    /// `on intent NAME`.
    Intent(Ident),
}

/// `on TRIGGER { STEP... }` inside a `listen`.
#[derive(Debug, Clone)]
pub struct BranchDecl {
    pub trigger: TriggerDecl,
    /// Spans `on TRIGGER`.
    pub head: Span,
    pub steps: Vec<StepDecl>,
    pub span: Span,
}

/// `sms NAME { sender "ID"  text "TEMPLATE" }`: an SMS template. The
/// fields are kept as written, so that one given twice can be reported.
#[derive(Debug, Clone)]
pub struct SmsDecl {
    pub name: Ident,
    pub fields: Vec<SmsField>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsFieldKind {
    Sender,
    Text,
}

impl SmsFieldKind {
    /// The word that introduces the field.
    pub fn word(self) -> &'static str {
        match self {
            SmsFieldKind::Sender => "sender",
            SmsFieldKind::Text => "text",
        }
    }
}

/// `sender "ID"` or `text "TEMPLATE"` in an `sms` block.
#[derive(Debug, Clone)]
pub struct SmsField {
    pub kind: SmsFieldKind,
    /// The text as written between the quotes.
    pub value: String,
    /// The quoted text's span.
    pub value_span: Span,
    pub span: Span,
}

/// `intent NAME { zh "退订", "不要再打了"  en "unsubscribe" }`: what a
/// callee may say, per language.
#[derive(Debug, Clone)]
pub struct IntentDecl {
    pub name: Ident,
    /// The language lines as written, a tag given twice included.
    pub langs: Vec<IntentLang>,
    pub span: Span,
}

/// One language's phrases in an `intent` block: `zh "退订", "不要再打了"`.
#[derive(Debug, Clone)]
pub struct IntentLang {
    pub tag: Ident,
    pub phrases: Vec<PhraseDecl>,
    pub span: Span,
}

/// A phrase as written between the quotes, with the quoted text's span.
#[derive(Debug, Clone)]
pub struct PhraseDecl {
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct TestDecl {
    pub name: String,
    pub at: Option<(i64, Span)>,
    pub customer: Vec<TestField>,
    pub history: Vec<TestField>,
    pub expect: Option<Expectation>,
    /// The span of the `expect` line of the decision.
    pub expect_span: Option<Span>,
    /// `script NAME`: the test runs that script.
    pub script: Option<Ident>,
    /// What the callee does at each listen, in order.
    pub inputs: Vec<TestInput>,
    /// `expect intent "A", "B"` (empty for `expect intent none`), with the
    /// span of the whole line.
    pub expect_intents: Option<(Vec<PhraseDecl>, Span)>,
    /// `expect trail "..."`.
    pub expect_trail: Option<PhraseDecl>,
    /// `outcome OUTCOME [at TIME]`: how the call of the decision ends.
    pub outcome: Option<TestOutcome>,
    /// `expect sms TEMPLATE [at TIME]` or `expect sms none`.
    pub expect_sms: Option<SmsExpectation>,
    pub span: Span,
}

/// A time written on a test line, such as the `at TIME` of `outcome
/// no_answer at TIME`: seconds since the epoch and the text as written.
#[derive(Debug, Clone)]
pub struct TestTime {
    pub seconds: i64,
    pub text: String,
    pub span: Span,
}

/// `outcome OUTCOME [at TIME]` in a test: the call of the test's decision
/// ends with `outcome`, at `at` or else at the test's `at`.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub outcome: Ident,
    pub at: Option<TestTime>,
    /// The whole line's span.
    pub span: Span,
}

/// `expect sms TEMPLATE [at TIME]` (`template` set) or `expect sms none`.
#[derive(Debug, Clone)]
pub struct SmsExpectation {
    pub template: Option<Ident>,
    /// When the SMS goes; without it, as the call ends.
    pub at: Option<TestTime>,
    /// The whole line's span, `expect` included.
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestInputKind {
    /// `hears "TEXT"`: the callee says this (a transcript).
    Hears(String),
    /// `presses "1"`: the callee presses this key, as written.
    Presses(String),
    /// `silence`: the listen times out.
    Silence,
}

#[derive(Debug, Clone)]
pub struct TestInput {
    pub kind: TestInputKind,
    /// The whole input's span (`hears "..."`).
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct TestField {
    pub name: Ident,
    pub value: TestValue,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum TestValue {
    Literal(Expr),
    Symbol(Ident),
    None,
    List(Vec<Expr>),
}

#[derive(Debug, Clone)]
pub enum Expectation {
    None,
    Rule {
        name: Ident,
        priority: Option<i64>,
        script: Option<String>,
        line: Option<Ident>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Default,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Default => "??",
        }
    }

    /// Binding strength; higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::In => 4,
            BinOp::Default => 5,
            BinOp::Add | BinOp::Sub => 6,
            BinOp::Mul => 7,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Bool(bool),
    Int(i64),
    /// Money in hundredths (cents, fen).
    Money(i64),
    Text(String),
    /// Seconds since the Unix epoch; the text is kept for printing.
    Time(i64, String),
    /// Seconds.
    Duration(i64),
    /// Seconds since local midnight.
    TimeOfDay(i64),
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Lit(Literal),
    Now,
    /// `customer.cart_value`, `history.calls_today`, `vip`, `high`.
    Path(Vec<Ident>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    IsSet(Box<Expr>, bool),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    Paren(Box<Expr>),
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}
