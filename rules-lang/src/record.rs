//! The customer schema, fixed-layout customer records, and the built-in
//! contact history.

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::RecordError;

/// Marks an optional slot that holds no value.
pub const NONE: i64 = i64::MIN;

/// The type of one customer field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    Bool,
    Int,
    /// Fixed point with two decimals (`money` and `decimal`).
    Money,
    Text,
    /// A phone number; stored and compared as text.
    Phone,
    Time,
    Duration,
    TimeOfDay,
    Weekday,
    TimeZone,
    Enum(Vec<String>),
    TextSet,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::Bool => f.write_str("bool"),
            FieldType::Int => f.write_str("int"),
            FieldType::Money => f.write_str("money"),
            FieldType::Text => f.write_str("text"),
            FieldType::Phone => f.write_str("phone"),
            FieldType::Time => f.write_str("time"),
            FieldType::Duration => f.write_str("duration"),
            FieldType::TimeOfDay => f.write_str("time_of_day"),
            FieldType::Weekday => f.write_str("weekday"),
            FieldType::TimeZone => f.write_str("timezone"),
            FieldType::Enum(v) => write!(f, "enum {{ {} }}", v.join(", ")),
            FieldType::TextSet => f.write_str("set<text>"),
        }
    }
}

/// A value as written in a test table or read from stored attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    /// Hundredths.
    Money(i64),
    Text(String),
    /// Seconds since the Unix epoch.
    Time(i64),
    /// Seconds.
    Duration(i64),
    /// Seconds since local midnight.
    TimeOfDay(i64),
    /// Monday is 0.
    Weekday(u8),
    Zone(String),
    Enum(String),
    Set(Vec<String>),
}

/// One declared customer field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    pub optional: bool,
    pub default: Option<Value>,
}

/// The customer schema: the `schema customer { ... }` block of a rules file.
/// The importer uses the same definition to type stored attributes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    pub fields: Vec<Field>,
}

impl Schema {
    pub fn field(&self, name: &str) -> Option<(usize, &Field)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    /// The help that lists the customer fields, for an unknown one.
    pub(crate) fn declared_fields(&self) -> String {
        if self.fields.is_empty() {
            return "declare it in `schema customer { ... }`".to_string();
        }
        let names: Vec<String> = self
            .fields
            .iter()
            .map(|field| format!("`{}`", field.name))
            .collect();
        format!("the schema declares {}", names.join(", "))
    }

    /// The field that gives the customer's own time zone: the first field of
    /// type `timezone`.
    pub fn zone_slot(&self) -> Option<usize> {
        self.fields.iter().position(|f| f.ty == FieldType::TimeZone)
    }
}

/// The weekday names, Monday first.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// How many words a record keeps inside itself; the example schemas have
/// five to eight fields. Records of larger schemas keep theirs on the heap.
pub(crate) const INLINE_WORDS: usize = 8;

/// A record's words: inline when they fit, so that reading a record in a
/// batch is one sequential memory stream with no pointer to follow.
#[derive(Debug, Clone)]
pub(crate) enum Words {
    /// The first `len` words; the slots after them hold [`NONE`], which is
    /// what a missing slot reads as, so the whole array can be read with
    /// any slot below [`INLINE_WORDS`].
    Inline {
        len: u8,
        buf: [i64; INLINE_WORDS],
    },
    Heap(Box<[i64]>),
}

impl Words {
    fn new(words: Vec<i64>) -> Words {
        match u8::try_from(words.len()) {
            Ok(len) if words.len() <= INLINE_WORDS => {
                let mut buf = [NONE; INLINE_WORDS];
                for (b, w) in buf.iter_mut().zip(&words) {
                    *b = *w;
                }
                Words::Inline { len, buf }
            }
            _ => Words::Heap(words.into_boxed_slice()),
        }
    }

    #[inline(always)]
    pub(crate) fn as_slice(&self) -> &[i64] {
        match self {
            Words::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or(&[]),
            Words::Heap(words) => words,
        }
    }

    /// All inline slots, those past the record's length holding [`NONE`];
    /// `None` when the words are on the heap.
    #[inline(always)]
    pub(crate) fn padded(&self) -> Option<&[i64; INLINE_WORDS]> {
        match self {
            Words::Inline { buf, .. } => Some(buf),
            Words::Heap(_) => None,
        }
    }
}

impl std::ops::Deref for Words {
    type Target = [i64];

    #[inline(always)]
    fn deref(&self) -> &[i64] {
        self.as_slice()
    }
}

/// The side tables of a record that has text, set or time zone fields.
#[derive(Debug, Clone, Default)]
struct Side {
    texts: Vec<String>,
    sets: Vec<Vec<String>>,
    zones: Vec<TimeZone>,
}

/// A customer as the VM reads it: one 64-bit word per schema field, plus
/// side tables for text, sets and time zones. Built once per customer;
/// evaluating rules against it never allocates.
#[derive(Debug, Clone)]
pub struct Record {
    pub(crate) words: Words,
    side: Option<Box<Side>>,
}

impl Record {
    /// Builds a record from `(field, value)` pairs. Fields not given take
    /// their default, or none when optional.
    pub fn from_values(schema: &Schema, values: &[(&str, Value)]) -> Result<Record, RecordError> {
        for (name, _) in values {
            if schema.field(name).is_none() {
                return Err(RecordError::UnknownField((*name).to_string()));
            }
        }
        let mut words = Vec::with_capacity(schema.fields.len());
        let mut side = Side::default();
        for f in &schema.fields {
            let v = values
                .iter()
                .find(|(n, _)| *n == f.name)
                .map(|(_, v)| v.clone())
                .or_else(|| f.default.clone());
            let word = match v {
                None if f.optional => NONE,
                None => return Err(RecordError::Missing(f.name.clone())),
                Some(v) => side.store(f, v)?,
            };
            words.push(word);
        }
        let empty = side.texts.is_empty() && side.sets.is_empty() && side.zones.is_empty();
        Ok(Record {
            words: Words::new(words),
            side: (!empty).then(|| Box::new(side)),
        })
    }

    /// Builds a record from a JSON object of stored customer attributes.
    /// Times are RFC 3339 text or seconds since the epoch; money is a number
    /// or decimal text; durations are `2h`-style text or seconds.
    pub fn from_json(schema: &Schema, json: &serde_json::Value) -> Result<Record, RecordError> {
        let obj = json.as_object().ok_or(RecordError::NotAnObject)?;
        let mut values = Vec::new();
        for f in &schema.fields {
            match obj.get(&f.name) {
                None | Some(serde_json::Value::Null) => {}
                Some(j) => values.push((f.name.as_str(), json_value(f, j)?)),
            }
        }
        Record::from_values(schema, &values)
    }

    pub(crate) fn text(&self, idx: i64) -> Option<&str> {
        let side = self.side.as_deref()?;
        usize::try_from(idx)
            .ok()
            .and_then(|i| side.texts.get(i))
            .map(String::as_str)
    }

    pub(crate) fn set(&self, idx: i64) -> &[String] {
        let Some(side) = self.side.as_deref() else {
            return &[];
        };
        usize::try_from(idx)
            .ok()
            .and_then(|i| side.sets.get(i))
            .map_or(&[], Vec::as_slice)
    }

    pub(crate) fn zone(&self, idx: i64) -> Option<&TimeZone> {
        let side = self.side.as_deref()?;
        usize::try_from(idx).ok().and_then(|i| side.zones.get(i))
    }

    /// Number of slots, one per schema field.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

impl Side {
    /// The word for value `v` of field `f`, keeping text, sets and zones
    /// in the side tables.
    fn store(&mut self, f: &Field, v: Value) -> Result<i64, RecordError> {
        let bad = || RecordError::Type {
            field: f.name.clone(),
            expected: f.ty.to_string(),
        };
        Ok(match (&f.ty, v) {
            (FieldType::Bool, Value::Bool(b)) => i64::from(b),
            (FieldType::Int, Value::Int(i)) if i != NONE => i,
            (FieldType::Money, Value::Money(i)) if i != NONE => i,
            (FieldType::Money, Value::Int(i)) => i.checked_mul(100).ok_or_else(bad)?,
            (FieldType::Text | FieldType::Phone, Value::Text(s)) => {
                self.texts.push(s);
                (self.texts.len() - 1) as i64
            }
            (FieldType::Time, Value::Time(t)) => {
                Timestamp::from_second(t).map_err(|_| bad())?;
                t
            }
            (FieldType::Duration, Value::Duration(d)) if d != NONE => d,
            (FieldType::TimeOfDay, Value::TimeOfDay(t)) if (0..=86_400).contains(&t) => t,
            (FieldType::Weekday, Value::Weekday(d)) if d < 7 => i64::from(d),
            (FieldType::TimeZone, Value::Zone(z)) => {
                let tz = TimeZone::get(&z).map_err(|_| RecordError::UnknownZone(z.clone()))?;
                self.zones.push(tz);
                (self.zones.len() - 1) as i64
            }
            (FieldType::Enum(vs), Value::Enum(s) | Value::Text(s)) => {
                match vs.iter().position(|v| *v == s) {
                    Some(i) => i as i64,
                    None => {
                        return Err(RecordError::Variant {
                            field: f.name.clone(),
                            value: s,
                        });
                    }
                }
            }
            (FieldType::TextSet, Value::Set(items)) => {
                self.sets.push(items);
                (self.sets.len() - 1) as i64
            }
            _ => return Err(bad()),
        })
    }
}

fn json_value(f: &Field, j: &serde_json::Value) -> Result<Value, RecordError> {
    use serde_json::Value as J;
    let bad = || RecordError::Type {
        field: f.name.clone(),
        expected: f.ty.to_string(),
    };
    Ok(match (&f.ty, j) {
        (FieldType::Bool, J::Bool(b)) => Value::Bool(*b),
        (FieldType::Int, J::Number(n)) => Value::Int(n.as_i64().ok_or_else(bad)?),
        (FieldType::Money, J::Number(n)) => match n.as_i64() {
            Some(i) => Value::Money(i.checked_mul(100).ok_or_else(bad)?),
            None => {
                let x = n.as_f64().ok_or_else(bad)? * 100.0;
                if !x.is_finite() || x.abs() > 9.0e18 {
                    return Err(bad());
                }
                Value::Money(x.round() as i64)
            }
        },
        (FieldType::Money, J::String(s)) => {
            Value::Money(crate::parse::parse_money(s.trim()).ok_or_else(bad)?)
        }
        (FieldType::Text | FieldType::Phone | FieldType::Enum(_), J::String(s)) => {
            Value::Text(s.clone())
        }
        (FieldType::Time, J::String(s)) => {
            Value::Time(s.parse::<Timestamp>().map_err(|_| bad())?.as_second())
        }
        (FieldType::Time, J::Number(n)) => Value::Time(n.as_i64().ok_or_else(bad)?),
        (FieldType::Duration, J::Number(n)) => Value::Duration(n.as_i64().ok_or_else(bad)?),
        (FieldType::Duration, J::String(s)) => Value::Duration(
            if s.chars().all(|c| c.is_ascii_alphanumeric()) && !s.is_empty() {
                crate::parse::parse_duration(s)
            } else {
                None
            }
            .ok_or_else(bad)?,
        ),
        (FieldType::TimeOfDay, J::String(s)) => {
            let (h, m) = s.split_once(':').ok_or_else(bad)?;
            let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if !(0..=24).contains(&h) || !(0..60).contains(&m) {
                return Err(bad());
            }
            Value::TimeOfDay(h * 3600 + m * 60)
        }
        (FieldType::Weekday, J::String(s)) => {
            let lower = s.to_ascii_lowercase();
            let d = WEEKDAYS
                .iter()
                .position(|w| lower.starts_with(w))
                .ok_or_else(bad)?;
            Value::Weekday(d as u8)
        }
        (FieldType::TimeZone, J::String(s)) => Value::Zone(s.clone()),
        (FieldType::TextSet, J::Array(items)) => Value::Set(
            items
                .iter()
                .map(|i| i.as_str().map(str::to_string).ok_or_else(bad))
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(bad()),
    })
}

/// How a call attempt ended, as the history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Answered,
    NoAnswer,
    Busy,
    Refused,
    Unsubscribed,
    Failed,
    Voicemail,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Answered,
        Outcome::NoAnswer,
        Outcome::Busy,
        Outcome::Refused,
        Outcome::Unsubscribed,
        Outcome::Failed,
        Outcome::Voicemail,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::NoAnswer => "no_answer",
            Outcome::Busy => "busy",
            Outcome::Refused => "refused",
            Outcome::Unsubscribed => "unsubscribed",
            Outcome::Failed => "failed",
            Outcome::Voicemail => "voicemail",
        }
    }

    pub fn from_name(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.name() == s)
    }

    /// The position in [`Outcome::ALL`].
    pub fn index(self) -> i64 {
        match self {
            Outcome::Answered => 0,
            Outcome::NoAnswer => 1,
            Outcome::Busy => 2,
            Outcome::Refused => 3,
            Outcome::Unsubscribed => 4,
            Outcome::Failed => 5,
            Outcome::Voicemail => 6,
        }
    }
}

/// `at` in whole seconds since the epoch, rounded up.
fn ceil_second(at: Timestamp) -> i64 {
    let whole = at.as_second();
    if at.subsec_nanosecond() > 0 {
        whole.saturating_add(1)
    } else {
        whole
    }
}

/// How many recent call times the history keeps; enough for any per-day or
/// rolling cap a rule can state below this number.
pub const MAX_RECENT_CALLS: usize = 16;

/// The built-in contact history the rules read as `history.*`.
///
/// It keeps the times of the most recent calls, so that `calls_today` and
/// `calls_24h` are exact functions of `now` and the next-wake analysis can
/// see when a cap frees up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    calls: [i64; MAX_RECENT_CALLS],
    len: usize,
    /// Attempts in total, including ones older than the recent window.
    pub attempts: i64,
    pub last_outcome: Option<Outcome>,
    pub last_outcome_at: Option<Timestamp>,
    pub opted_out_at: Option<Timestamp>,
    /// When the customer last opened the tracked link of one of their SMS.
    pub last_sms_clicked: Option<Timestamp>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    /// Records a call placed at `at`, counting it as an attempt. The time is
    /// kept to the second, rounded up, so that caps such as `20s apart` hold
    /// for the real gap between calls.
    pub fn record_call(&mut self, at: Timestamp) {
        self.push_call(ceil_second(at));
        self.attempts = self.attempts.saturating_add(1);
    }

    /// Records an opening of an SMS's tracked link at `at`; the latest one
    /// is kept.
    pub fn record_sms_click(&mut self, at: Timestamp) {
        if self.last_sms_clicked.is_none_or(|last| at > last) {
            self.last_sms_clicked = Some(at);
        }
    }

    /// Records how the last call ended.
    pub fn record_outcome(&mut self, outcome: Outcome, at: Timestamp) {
        self.last_outcome = Some(outcome);
        self.last_outcome_at = Some(at);
        if outcome == Outcome::Unsubscribed && self.opted_out_at.is_none() {
            self.opted_out_at = Some(at);
        }
    }

    /// Restores a recent call time from storage without counting an
    /// attempt (set `attempts` separately).
    pub fn add_recent_call(&mut self, at: Timestamp) {
        self.push_call(ceil_second(at));
    }

    pub(crate) fn push_call(&mut self, at: i64) {
        if self.len == MAX_RECENT_CALLS {
            // Drop the oldest call time.
            self.calls.copy_within(1.., 0);
            self.len -= 1;
        }
        let pos = self.calls[..self.len].partition_point(|c| *c <= at);
        self.calls.copy_within(pos..self.len, pos + 1);
        self.calls[pos] = at;
        self.len += 1;
    }

    /// Times of the most recent calls, in seconds since the epoch, oldest first.
    pub fn recent_calls(&self) -> &[i64] {
        &self.calls[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(n: usize) -> Schema {
        Schema {
            fields: (0..n)
                .map(|i| Field {
                    name: format!("f{i}"),
                    ty: FieldType::Int,
                    optional: true,
                    default: None,
                })
                .collect(),
        }
    }

    #[test]
    fn words_stay_inline_up_to_the_inline_length() {
        for n in [0, 1, INLINE_WORDS, INLINE_WORDS + 1, 20] {
            let s = schema(n);
            let rec = Record::from_values(&s, &[("f0", Value::Int(7))]).unwrap_or_else(|_| {
                Record::from_values(&s, &[]).expect("an empty schema takes no values")
            });
            assert_eq!(rec.len(), n);
            assert_eq!(rec.words.first().copied(), (n > 0).then_some(7));
            assert!(rec.words.iter().skip(1).all(|w| *w == NONE));
            match rec.words.padded() {
                Some(buf) => {
                    assert!(n <= INLINE_WORDS);
                    assert_eq!(buf.get(..n), Some(rec.words.as_slice()));
                    assert!(buf.iter().skip(n).all(|w| *w == NONE));
                }
                None => assert!(n > INLINE_WORDS),
            }
        }
    }
}
