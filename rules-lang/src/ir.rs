//! The typed intermediate representation, and the optimiser over it.
//!
//! Every value is one 64-bit word: booleans are 0 and 1, money is in
//! hundredths, times are seconds since the epoch, durations and times of day
//! are seconds, enums and weekdays are indexes, text is a reference to a
//! program constant (`>= 0`) or to a record's text (`<= -2`), and `NONE`
//! marks a missing optional.

use crate::ast::Span;
use crate::record::Outcome;

/// Fields of the built-in `history` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistField {
    CallsToday,
    Calls24h,
    LastCall,
    LastOutcome,
    LastOutcomeAt,
    Attempts,
    OptedOut,
    /// When the customer last opened the tracked link of an SMS.
    LastSmsClicked,
}

impl HistField {
    pub const ALL: [HistField; 8] = [
        HistField::CallsToday,
        HistField::Calls24h,
        HistField::LastCall,
        HistField::LastOutcome,
        HistField::LastOutcomeAt,
        HistField::Attempts,
        HistField::OptedOut,
        HistField::LastSmsClicked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HistField::CallsToday => "calls_today",
            HistField::Calls24h => "calls_24h",
            HistField::LastCall => "last_call",
            HistField::LastOutcome => "last_outcome",
            HistField::LastOutcomeAt => "last_outcome_at",
            HistField::Attempts => "attempts",
            HistField::OptedOut => "opted_out",
            HistField::LastSmsClicked => "last_sms_clicked",
        }
    }

    pub fn code(self) -> u8 {
        HistField::ALL.iter().position(|h| *h == self).unwrap_or(0) as u8
    }

    pub fn from_code(c: u8) -> Option<HistField> {
        HistField::ALL.get(usize::from(c)).copied()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn apply(self, a: i64, b: i64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }

    /// The comparison that holds exactly when this one does not.
    pub fn negate(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Ne,
            CmpOp::Ne => CmpOp::Eq,
            CmpOp::Lt => CmpOp::Ge,
            CmpOp::Le => CmpOp::Gt,
            CmpOp::Gt => CmpOp::Le,
            CmpOp::Ge => CmpOp::Lt,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
}

impl ArithOp {
    pub fn apply(self, a: i64, b: i64) -> Option<i64> {
        match self {
            ArithOp::Add => a.checked_add(b),
            ArithOp::Sub => a.checked_sub(b),
            ArithOp::Mul => a.checked_mul(b),
        }
    }
}

/// A typed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Ir {
    Const(i64),
    /// A word of the record (not text: see `TextField`).
    Field(u16),
    /// A text field, as a text reference.
    TextField(u16),
    Now,
    /// Seconds since local midnight in the customer's zone.
    LocalTime,
    /// Weekday in the customer's zone, Monday = 0.
    Weekday,
    Hist(HistField),
    Not(Box<Ir>),
    Neg(Box<Ir>),
    And(Box<Ir>, Box<Ir>),
    Or(Box<Ir>, Box<Ir>),
    Cmp(CmpOp, Box<Ir>, Box<Ir>),
    /// Text equality (`true`) or inequality.
    TextEq(bool, Box<Ir>, Box<Ir>),
    /// Text in a set field.
    InSet(Box<Ir>, u16),
    Arith(ArithOp, Box<Ir>, Box<Ir>),
    IsNone(Box<Ir>),
    /// The value, or an evaluation error when it is none.
    Unwrap(Box<Ir>),
    Default(Box<Ir>, Box<Ir>),
    Cond(Box<Ir>, Box<Ir>, Box<Ir>),
}

/// One condition that must hold: a conjunct of a rule's `when`, or one line
/// of the policy. `text` is what `explain` shows when it fails.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    pub ir: Ir,
    pub text: String,
    pub span: Span,
}

/// What to do when a call ends a certain way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub outcome: Outcome,
    pub template: String,
    /// Seconds after the call ends.
    pub within: Option<i64>,
}

/// One compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleIr {
    pub name: String,
    pub conds: Vec<Cond>,
    pub priority: Ir,
    pub script: Option<Ir>,
    pub line: Option<Ir>,
    pub fallback: Option<Fallback>,
    pub span: Span,
}

/// Number of nodes in an expression.
pub fn size(ir: &Ir) -> usize {
    1 + match ir {
        Ir::Const(_)
        | Ir::Field(_)
        | Ir::TextField(_)
        | Ir::Now
        | Ir::LocalTime
        | Ir::Weekday
        | Ir::Hist(_) => 0,
        Ir::Not(a) | Ir::Neg(a) | Ir::IsNone(a) | Ir::Unwrap(a) | Ir::InSet(a, _) => size(a),
        Ir::And(a, b)
        | Ir::Or(a, b)
        | Ir::Cmp(_, a, b)
        | Ir::TextEq(_, a, b)
        | Ir::Arith(_, a, b)
        | Ir::Default(a, b) => size(a) + size(b),
        Ir::Cond(c, a, b) => size(c) + size(a) + size(b),
    }
}

/// Estimated cost of evaluating an expression, used to put cheap conditions
/// first. Reading the local time or counting calls costs a zone lookup.
pub fn cost(ir: &Ir) -> usize {
    match ir {
        Ir::Const(_) => 0,
        Ir::Field(_) | Ir::TextField(_) | Ir::Now => 1,
        Ir::LocalTime | Ir::Weekday => 10,
        Ir::Hist(HistField::CallsToday) => 20,
        Ir::Hist(HistField::Calls24h) => 6,
        Ir::Hist(_) => 2,
        Ir::InSet(a, _) => 6 + cost(a),
        Ir::TextEq(_, a, b) => 4 + cost(a) + cost(b),
        Ir::Not(a) | Ir::Neg(a) | Ir::IsNone(a) | Ir::Unwrap(a) => 1 + cost(a),
        Ir::And(a, b)
        | Ir::Or(a, b)
        | Ir::Cmp(_, a, b)
        | Ir::Arith(_, a, b)
        | Ir::Default(a, b) => 1 + cost(a) + cost(b),
        Ir::Cond(c, a, b) => 1 + cost(c) + cost(a).max(cost(b)),
    }
}

/// Constant folding and simplification. Folding never hides an evaluation
/// error: an overflowing constant expression is left for run time.
pub fn fold(ir: Ir) -> Ir {
    use Ir::*;
    match ir {
        Not(a) => match fold(*a) {
            Const(v) => Const(i64::from(v == 0)),
            Not(inner) => *inner,
            a => Not(Box::new(a)),
        },
        Neg(a) => match fold(*a) {
            Const(v) if v != i64::MIN => Const(-v),
            a => Neg(Box::new(a)),
        },
        And(a, b) => match (fold(*a), fold(*b)) {
            (Const(0), _) => Const(0),
            (Const(_), b) => b,
            (a, b) => And(Box::new(a), Box::new(b)),
        },
        Or(a, b) => match (fold(*a), fold(*b)) {
            (Const(0), b) => b,
            (Const(_), _) => Const(1),
            (a, b) => Or(Box::new(a), Box::new(b)),
        },
        Cmp(op, a, b) => match (fold(*a), fold(*b)) {
            (Const(x), Const(y)) => Const(i64::from(op.apply(x, y))),
            (a, b) => Cmp(op, Box::new(a), Box::new(b)),
        },
        TextEq(eq, a, b) => match (fold(*a), fold(*b)) {
            (Const(x), Const(y)) if x >= 0 && y >= 0 => Const(i64::from((x == y) == eq)),
            (a, b) => TextEq(eq, Box::new(a), Box::new(b)),
        },
        Arith(op, a, b) => match (fold(*a), fold(*b)) {
            (Const(x), Const(y)) => match op.apply(x, y) {
                Some(v) => Const(v),
                None => Arith(op, Box::new(Const(x)), Box::new(Const(y))),
            },
            (a, b) => Arith(op, Box::new(a), Box::new(b)),
        },
        IsNone(a) => match fold(*a) {
            Const(v) => Const(i64::from(v == crate::record::NONE)),
            a => IsNone(Box::new(a)),
        },
        Unwrap(a) => match fold(*a) {
            Const(v) if v != crate::record::NONE => Const(v),
            a => Unwrap(Box::new(a)),
        },
        Default(a, b) => match (fold(*a), fold(*b)) {
            (Const(v), b) => {
                if v == crate::record::NONE {
                    b
                } else {
                    Const(v)
                }
            }
            (a, b) => Default(Box::new(a), Box::new(b)),
        },
        Cond(c, a, b) => match fold(*c) {
            Const(0) => fold(*b),
            Const(_) => fold(*a),
            c => Cond(Box::new(c), Box::new(fold(*a)), Box::new(fold(*b))),
        },
        InSet(a, s) => InSet(Box::new(fold(*a)), s),
        other => other,
    }
}

/// Folds every condition and expression of a rule, drops conditions that
/// are always true, and orders the remaining conditions cheapest first.
pub fn optimise(rule: &mut RuleIr) {
    for c in &mut rule.conds {
        c.ir = fold(std::mem::replace(&mut c.ir, Ir::Const(0)));
    }
    rule.conds
        .retain(|c| !matches!(c.ir, Ir::Const(v) if v != 0));
    rule.conds.sort_by_key(|c| cost(&c.ir));
    rule.priority = fold(std::mem::replace(&mut rule.priority, Ir::Const(0)));
    rule.script = rule.script.take().map(fold);
    rule.line = rule.line.take().map(fold);
}

/// Whether the expression's value can change with `now` alone: it reads
/// `now`, the local time or weekday, or a call count. An expression that
/// does not has no breakpoints.
pub fn depends_on_now(ir: &Ir) -> bool {
    any_leaf(ir, &|leaf| {
        matches!(
            leaf,
            Ir::Now
                | Ir::LocalTime
                | Ir::Weekday
                | Ir::Hist(HistField::CallsToday | HistField::Calls24h)
        )
    })
}

/// Whether `leaf` holds for some leaf of the expression: a constant, a
/// field, `now`, the local time or weekday, or a history field.
fn any_leaf(ir: &Ir, leaf: &impl Fn(&Ir) -> bool) -> bool {
    match ir {
        Ir::Const(_)
        | Ir::Field(_)
        | Ir::TextField(_)
        | Ir::Now
        | Ir::LocalTime
        | Ir::Weekday
        | Ir::Hist(_) => leaf(ir),
        Ir::Not(a) | Ir::Neg(a) | Ir::IsNone(a) | Ir::Unwrap(a) | Ir::InSet(a, _) => {
            any_leaf(a, leaf)
        }
        Ir::And(a, b)
        | Ir::Or(a, b)
        | Ir::Cmp(_, a, b)
        | Ir::TextEq(_, a, b)
        | Ir::Arith(_, a, b)
        | Ir::Default(a, b) => any_leaf(a, leaf) || any_leaf(b, leaf),
        Ir::Cond(c, a, b) => any_leaf(c, leaf) || any_leaf(a, leaf) || any_leaf(b, leaf),
    }
}
