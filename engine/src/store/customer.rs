//! Customers as the daemon stores them: an id, a phone number, a name, and typed
//! attributes declared by the schema.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

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
/// There is one schema: the `schema customer { ... }` block of the rules file that
/// the configuration names in `import.schema`. Its `phone` and `name` fields are the
/// built-in ones (sealed at rest); every other field is an attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeSchema {
    pub attributes: BTreeMap<String, AttributeType>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeType {
    pub kind: AttributeKind,
    /// An empty cell is allowed: the field is optional (`time?`) or has a default.
    pub optional: bool,
}

impl AttributeSchema {
    /// The attributes of a rules file's customer schema.
    pub fn from_rules(schema: &dialhound_rules::Schema) -> Result<AttributeSchema, String> {
        use dialhound_rules::FieldType;
        let mut attributes = BTreeMap::new();
        for field in &schema.fields {
            let kind = match (&field.ty, field.name.as_str()) {
                (FieldType::Phone, "phone") | (FieldType::Text, "name") => continue,
                (FieldType::Phone, other) => {
                    return Err(format!(
                        "field `{other}` has type `phone`; only the `phone` field can hold a number, which is encrypted at rest"
                    ));
                }
                (_, "phone") => return Err("field `phone` must have type `phone`".into()),
                (FieldType::Text, _) => AttributeKind::Text,
                (FieldType::Int, _) => AttributeKind::Int,
                (FieldType::Money, _) => AttributeKind::Money,
                (FieldType::Bool, _) => AttributeKind::Bool,
                (FieldType::Time, _) => AttributeKind::Time,
                (FieldType::TimeZone, _) => AttributeKind::TimeZone,
                (FieldType::TextSet, _) => AttributeKind::TextSet,
                (FieldType::Enum(variants), _) => AttributeKind::Enum(variants.clone()),
                (other, name) => {
                    return Err(format!(
                        "field `{name}` has type `{other}`, which spreadsheets cannot fill yet; use `text`, `int`, `money`, `bool`, `time`, `timezone`, `set<text>` or an enum"
                    ));
                }
            };
            let optional =
                field.optional || field.default.is_some() || kind == AttributeKind::TextSet;
            attributes.insert(field.name.clone(), AttributeType { kind, optional });
        }
        Ok(AttributeSchema { attributes })
    }
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

impl AttributeType {
    /// Reads a spreadsheet cell. `None` means an empty cell on an optional attribute.
    pub fn read_cell(
        &self,
        cell: &str,
        civil_zone: &jiff::tz::TimeZone,
    ) -> Result<Option<AttributeValue>, AttributeError> {
        let cell = cell.trim();
        if cell.is_empty() && self.kind == AttributeKind::TextSet {
            return Ok(Some(AttributeValue::TextSet(Vec::new())));
        }
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

impl Customer {
    /// The customer as the rules read it: the attributes with `phone` and
    /// `name` beside them, as JSON (see `dialhound_rules::Record::from_json`).
    pub fn rules_json(&self) -> serde_json::Value {
        let mut record = match serde_json::to_value(&self.attributes) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        record.insert("phone".into(), self.phone.clone().into());
        if let Some(name) = &self.name {
            record.insert("name".into(), name.clone().into());
        }
        serde_json::Value::Object(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()
    }

    fn kind(kind: AttributeKind, optional: bool) -> AttributeType {
        AttributeType { kind, optional }
    }

    #[test]
    fn schema_comes_from_a_rules_file() {
        let source = "schema customer {\n  phone phone\n  name text\n  zone timezone = \"Asia/Shanghai\"\n  intent enum { high, low }\n  cart_value money\n  cart_added time?\n  tags set<text>\n}\n";
        let program = dialhound_rules::compile(source, "s.rules").unwrap();
        let schema = AttributeSchema::from_rules(program.schema()).unwrap();
        let names: Vec<&str> = schema.attributes.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["cart_added", "cart_value", "intent", "tags", "zone"]
        );
        assert_eq!(
            schema.attributes["cart_value"],
            kind(AttributeKind::Money, false)
        );
        assert!(schema.attributes["cart_added"].optional);
        assert!(
            schema.attributes["zone"].optional,
            "a default makes a cell optional"
        );
        assert_eq!(
            schema.attributes["intent"].kind,
            AttributeKind::Enum(vec!["high".into(), "low".into()])
        );
    }

    #[test]
    fn schema_fields_spreadsheets_cannot_fill_are_refused() {
        let source = "schema customer {\n  phone phone\n  backup phone\n}\n";
        let program = dialhound_rules::compile(source, "s.rules").unwrap();
        let error = AttributeSchema::from_rules(program.schema()).unwrap_err();
        assert!(error.contains("field `backup` has type `phone`"), "{error}");
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
        let kind = kind(AttributeKind::Time, false);
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
            kind(AttributeKind::Int, true).read_cell(" ", &zone),
            Ok(None)
        );
        assert!(
            kind(AttributeKind::Int, false)
                .read_cell("", &zone)
                .is_err()
        );
    }

    #[test]
    fn enum_and_set_cells() {
        let zone = shanghai();
        let intent = kind(
            AttributeKind::Enum(vec!["high".into(), "low".into()]),
            false,
        );
        assert_eq!(
            intent.read_cell("HIGH", &zone).unwrap(),
            Some(AttributeValue::Enum("high".into()))
        );
        let error = intent.read_cell("maybe", &zone).unwrap_err();
        assert_eq!(error.0, "`maybe` is not one of `high`, `low`");
        let tags = kind(AttributeKind::TextSet, true);
        assert_eq!(
            tags.read_cell("", &zone).unwrap(),
            Some(AttributeValue::TextSet(vec![]))
        );
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
