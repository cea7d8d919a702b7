//! Customers as the daemon stores them: an id, a phone number, a name, and typed
//! attributes declared by the schema.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A customer's id, as the CRM or spreadsheet gave it: 1 to 64 printable characters
/// without spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CustomerId(String);

impl CustomerId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(text: &str) -> Option<CustomerId> {
        let text = text.trim();
        let valid = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text.chars().all(|c| !c.is_whitespace() && !c.is_control());
        valid.then(|| CustomerId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The typed attributes a customer carries beyond id, phone and name.
///
/// Declared once, in the `[schema]` table of the configuration, as
/// `name = "type"`; the type is written as the rules language writes it:
/// `text`, `int`, `money`, `bool`, `time`, `timezone`, `set<text>`,
/// `enum { high, medium, low }`, each optionally followed by `?` when the
/// value may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct AttributeSchema {
    pub attributes: BTreeMap<String, AttributeType>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeType {
    pub kind: AttributeKind,
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeKind {
    Text,
    Int,
    /// Decimal amounts with two fraction digits, held as hundredths.
    Money,
    Bool,
    /// An instant; written with an offset, or as a civil time in the import's zone.
    Time,
    TimeZone,
    TextSet,
    Enum(Vec<String>),
}

/// A typed attribute value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AttributeValue {
    Text(String),
    Int(i64),
    Money(Money),
    Bool(bool),
    Time(jiff::Timestamp),
    TimeZone(String),
    TextSet(Vec<String>),
    Enum(String),
}

/// Hundredths of the currency unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money(pub i64);

impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// Why a cell did not fit its attribute's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AttributeError(pub String);

impl<'de> Deserialize<'de> for AttributeType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        AttributeType::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl AttributeType {
    pub fn parse(text: &str) -> Result<AttributeType, String> {
        let text = text.trim();
        let (body, optional) = match text.strip_suffix('?') {
            Some(body) => (body.trim_end(), true),
            None => (text, false),
        };
        let kind = match body {
            "text" => AttributeKind::Text,
            "int" => AttributeKind::Int,
            "money" => AttributeKind::Money,
            "bool" => AttributeKind::Bool,
            "time" => AttributeKind::Time,
            "timezone" => AttributeKind::TimeZone,
            "set<text>" => AttributeKind::TextSet,
            _ => {
                let variants = body
                    .strip_prefix("enum")
                    .map(str::trim_start)
                    .and_then(|rest| rest.strip_prefix('{'))
                    .and_then(|rest| rest.strip_suffix('}'))
                    .ok_or_else(|| {
                        format!(
                            "unknown attribute type `{body}`; expected one of `text`, `int`, `money`, `bool`, `time`, `timezone`, `set<text>` or `enum {{ a, b }}`"
                        )
                    })?;
                let variants: Vec<String> = variants
                    .split(',')
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .collect();
                if variants.is_empty() {
                    return Err(
                        "an enum needs at least one variant, as in `enum { high, low }`".into(),
                    );
                }
                AttributeKind::Enum(variants)
            }
        };
        Ok(AttributeType { kind, optional })
    }

    /// Reads a spreadsheet cell. `None` means an empty cell on an optional attribute.
    pub fn read_cell(
        &self,
        cell: &str,
        civil_zone: &jiff::tz::TimeZone,
    ) -> Result<Option<AttributeValue>, AttributeError> {
        let cell = cell.trim();
        if cell.is_empty() {
            return if self.optional {
                Ok(None)
            } else {
                Err(AttributeError("empty cell for a required attribute".into()))
            };
        }
        let fail = |expected: &str| AttributeError(format!("`{cell}` is not {expected}"));
        let value = match &self.kind {
            AttributeKind::Text => AttributeValue::Text(cell.to_owned()),
            AttributeKind::Int => {
                AttributeValue::Int(cell.parse().map_err(|_| fail("a whole number"))?)
            }
            AttributeKind::Money => AttributeValue::Money(Money(
                parse_money(cell).ok_or_else(|| fail("an amount such as `299.50`"))?,
            )),
            AttributeKind::Bool => {
                AttributeValue::Bool(parse_bool(cell).ok_or_else(|| fail("yes or no"))?)
            }
            AttributeKind::Time => {
                AttributeValue::Time(parse_time(cell, civil_zone).ok_or_else(|| {
                    fail("a time such as `2026-11-23 14:30` or `2026-11-23T06:30:00Z`")
                })?)
            }
            AttributeKind::TimeZone => {
                jiff::tz::TimeZone::get(cell)
                    .map_err(|_| fail("a time zone such as `Asia/Shanghai`"))?;
                AttributeValue::TimeZone(cell.to_owned())
            }
            AttributeKind::TextSet => {
                let mut items: Vec<String> = cell
                    .split([';', '|'])
                    .map(|item| item.trim().to_owned())
                    .filter(|item| !item.is_empty())
                    .collect();
                items.sort();
                items.dedup();
                AttributeValue::TextSet(items)
            }
            AttributeKind::Enum(variants) => {
                let found = variants
                    .iter()
                    .find(|v| v.eq_ignore_ascii_case(cell))
                    .ok_or_else(|| {
                        AttributeError(format!(
                            "`{cell}` is not one of `{}`",
                            variants.join("`, `")
                        ))
                    })?;
                AttributeValue::Enum(found.clone())
            }
        };
        Ok(Some(value))
    }
}

fn parse_money(text: &str) -> Option<i64> {
    let text = text.trim_start_matches(['¥', '$', '￥']).replace(',', "");
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest.to_owned()),
        None => (false, text),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 2
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let cents: i64 = format!("{fraction:0<2}").parse().ok()?;
    let value = whole.checked_mul(100)?.checked_add(cents)?;
    Some(if negative { -value } else { value })
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "是" => Some(true),
        "false" | "no" | "n" | "0" | "否" => Some(false),
        _ => None,
    }
}

fn parse_time(text: &str, civil_zone: &jiff::tz::TimeZone) -> Option<jiff::Timestamp> {
    if let Ok(instant) = text.parse::<jiff::Timestamp>() {
        return Some(instant);
    }
    let civil: jiff::civil::DateTime = text.parse().ok()?;
    civil_zone.to_ambiguous_timestamp(civil).compatible().ok()
}

/// A customer as the daemon shows it to an operator (decrypted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    pub id: CustomerId,
    pub phone: String,
    pub name: Option<String>,
    pub attributes: BTreeMap<String, AttributeValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()
    }

    #[test]
    fn types_parse_as_the_rules_language_writes_them() {
        assert_eq!(
            AttributeType::parse("money").unwrap().kind,
            AttributeKind::Money
        );
        assert!(AttributeType::parse("time?").unwrap().optional);
        assert_eq!(
            AttributeType::parse("enum { high, medium, low }")
                .unwrap()
                .kind,
            AttributeKind::Enum(vec!["high".into(), "medium".into(), "low".into()])
        );
        assert!(
            AttributeType::parse("float")
                .unwrap_err()
                .contains("unknown attribute type `float`")
        );
        assert!(AttributeType::parse("enum {}").is_err());
    }

    #[test]
    fn money_keeps_two_fraction_digits() {
        assert_eq!(parse_money("299.5"), Some(29_950));
        assert_eq!(parse_money("¥1,299.00"), Some(129_900));
        assert_eq!(parse_money("-3"), Some(-300));
        assert_eq!(parse_money("1.234"), None);
        assert_eq!(parse_money("abc"), None);
        assert_eq!(parse_money("99999999999999999999"), None);
        assert_eq!(Money(29_950).to_string(), "299.50");
        assert_eq!(Money(-5).to_string(), "-0.05");
    }

    #[test]
    fn civil_times_are_read_in_the_import_zone() {
        let kind = AttributeType::parse("time").unwrap();
        let value = kind
            .read_cell("2026-11-23 14:30", &shanghai())
            .unwrap()
            .unwrap();
        assert_eq!(
            value,
            AttributeValue::Time("2026-11-23T06:30:00Z".parse().unwrap())
        );
        let value = kind
            .read_cell("2026-11-23T06:30:00Z", &shanghai())
            .unwrap()
            .unwrap();
        assert_eq!(
            value,
            AttributeValue::Time("2026-11-23T06:30:00Z".parse().unwrap())
        );
    }

    #[test]
    fn empty_cells_follow_optionality() {
        let zone = shanghai();
        assert_eq!(
            AttributeType::parse("int?").unwrap().read_cell(" ", &zone),
            Ok(None)
        );
        assert!(
            AttributeType::parse("int")
                .unwrap()
                .read_cell("", &zone)
                .is_err()
        );
    }

    #[test]
    fn enum_and_set_cells() {
        let zone = shanghai();
        let intent = AttributeType::parse("enum { high, low }").unwrap();
        assert_eq!(
            intent.read_cell("HIGH", &zone).unwrap(),
            Some(AttributeValue::Enum("high".into()))
        );
        let error = intent.read_cell("maybe", &zone).unwrap_err();
        assert_eq!(error.0, "`maybe` is not one of `high`, `low`");
        let tags = AttributeType::parse("set<text>").unwrap();
        assert_eq!(
            tags.read_cell("vip; price_sensitive|vip", &zone).unwrap(),
            Some(AttributeValue::TextSet(vec![
                "price_sensitive".into(),
                "vip".into()
            ]))
        );
    }

    #[test]
    fn customer_ids_are_bounded_and_printable() {
        assert!(CustomerId::parse("C-0001").is_some());
        assert!(CustomerId::parse("has space").is_none());
        assert!(CustomerId::parse("").is_none());
        assert!(CustomerId::parse(&"x".repeat(65)).is_none());
    }
}
