//! The on-disk encoding of store values, version [`SCHEMA_VERSION`].
//!
//! All integers are big-endian. Every value starts with its own format byte, so a
//! later version can read older records.
//!
//! `customers` (key: customer id, UTF-8):
//! ```text
//! u8   format = 1
//! [16] fingerprint
//! [32] phone key (HMAC-SHA256 of the E.164 number)
//! u32  sealed length, then the sealed personal fields (AES-256-GCM: 12-byte nonce,
//!      ciphertext, 16-byte tag; context = the customer id); the plaintext is
//!      u16 phone length, phone (E.164), u8 has-name, name
//! u16  attribute count, then per attribute:
//!      u8 name length, name, u8 tag, value:
//!        1 text      u32 length, UTF-8
//!        2 int       i64
//!        3 money     i64 hundredths
//!        4 bool      u8 0 or 1
//!        5 time      i64 seconds, i32 nanoseconds (UTC)
//!        6 timezone  u16 length, IANA name
//!        7 set       u16 count, then u16 length + UTF-8 per item
//!        8 enum      u16 length, variant name
//! ```
//! `phone_index` (key: phone key): the customer id, UTF-8.
//!
//! `dnc` (key: phone key):
//! ```text
//! u8 format = 1, i64 added at (ms since the Unix epoch), u16 reason length,
//! reason (UTF-8), u32 sealed length, sealed E.164 number (context = phone key)
//! ```
//! `wakes` (key: when the customer is next evaluated, then who; the value is
//! empty):
//! ```text
//! u64  milliseconds since the Unix epoch, as an i64 with its sign bit flipped,
//!      so that byte order is time order (a range scan reads wakes in time order)
//! ..   customer id, UTF-8 (ties in time are in id order)
//! ```
//! One key per customer: writing a new wake removes the previous key.
//!
//! `meta`: `schema_version` → u32; `key_check` → 32 bytes derived from the key.

use std::collections::BTreeMap;

use super::{DncEntry, SealedCustomer};
use crate::store::customer::{AttributeValue, CustomerId, Money};
use crate::store::vault::{Fingerprint, PhoneKey};

/// The store format this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;

const CUSTOMER_FORMAT: u8 = 1;
const DNC_FORMAT: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record ends early")]
    Truncated,
    #[error("unknown record format {0}")]
    UnknownFormat(u8),
    #[error("unknown attribute tag {0}")]
    UnknownTag(u8),
    #[error("text is not UTF-8")]
    NotUtf8,
    #[error("invalid value")]
    Invalid,
    #[error("{0} unexpected bytes after the record")]
    TrailingBytes(usize),
}

pub fn encode_customer(customer: &SealedCustomer) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + customer.sealed_personal.len());
    out.push(CUSTOMER_FORMAT);
    out.extend_from_slice(&customer.fingerprint.0);
    out.extend_from_slice(&customer.phone_key.0);
    put_bytes_u32(&mut out, &customer.sealed_personal);
    out.extend_from_slice(&(customer.attributes.len() as u16).to_be_bytes());
    for (name, value) in &customer.attributes {
        // Attribute names come from the schema and are short; the schema check
        // keeps them under 256 bytes.
        let name = &name.as_bytes()[..name.len().min(255)];
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        encode_value(&mut out, value);
    }
    out
}

pub fn decode_customer(id: &[u8], bytes: &[u8]) -> Result<SealedCustomer, DecodeError> {
    let id = CustomerId::parse(std::str::from_utf8(id).map_err(|_| DecodeError::NotUtf8)?)
        .ok_or(DecodeError::Invalid)?;
    let mut reader = Reader(bytes);
    let format = reader.u8()?;
    if format != CUSTOMER_FORMAT {
        return Err(DecodeError::UnknownFormat(format));
    }
    let fingerprint = Fingerprint(reader.array()?);
    let phone_key = PhoneKey(reader.array()?);
    let sealed_personal = reader.bytes_u32()?.to_vec();
    let count = reader.u16()?;
    let mut attributes = BTreeMap::new();
    for _ in 0..count {
        let name_len = reader.u8()? as usize;
        let name = reader.text(name_len)?.to_owned();
        let value = decode_value(&mut reader)?;
        attributes.insert(name, value);
    }
    reader.finish()?;
    Ok(SealedCustomer {
        id,
        phone_key,
        fingerprint,
        sealed_personal,
        attributes,
    })
}

/// The plaintext sealed into a customer record.
pub fn encode_personal(phone: &str, name: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + phone.len() + name.map_or(0, str::len));
    put_bytes_u16(&mut out, phone.as_bytes());
    match name {
        Some(name) => {
            out.push(1);
            out.extend_from_slice(name.as_bytes());
        }
        None => out.push(0),
    }
    out
}

pub fn decode_personal(bytes: &[u8]) -> Result<(String, Option<String>), DecodeError> {
    let mut reader = Reader(bytes);
    let phone_len = reader.u16()? as usize;
    let phone = reader.text(phone_len)?.to_owned();
    let name = match reader.u8()? {
        0 => None,
        1 => Some(reader.text(reader.0.len())?.to_owned()),
        _ => return Err(DecodeError::Invalid),
    };
    reader.finish()?;
    Ok((phone, name))
}

/// The attribute bytes that feed the fingerprint (the same encoding as on disk).
pub fn encode_attributes(attributes: &BTreeMap<String, AttributeValue>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in attributes {
        put_bytes_u16(&mut out, name.as_bytes());
        encode_value(&mut out, value);
    }
    out
}

pub fn encode_dnc(entry: &DncEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entry.reason.len());
    out.push(DNC_FORMAT);
    out.extend_from_slice(&(entry.added_at.as_millisecond()).to_be_bytes());
    let reason = &entry.reason.as_bytes()[..entry.reason.len().min(u16::MAX as usize)];
    put_bytes_u16(&mut out, reason);
    put_bytes_u32(&mut out, &entry.sealed_phone);
    out
}

pub fn decode_dnc(key: &[u8], bytes: &[u8]) -> Result<DncEntry, DecodeError> {
    let phone_key = PhoneKey(key.try_into().map_err(|_| DecodeError::Invalid)?);
    let mut reader = Reader(bytes);
    let format = reader.u8()?;
    if format != DNC_FORMAT {
        return Err(DecodeError::UnknownFormat(format));
    }
    let added_at =
        jiff::Timestamp::from_millisecond(reader.i64()?).map_err(|_| DecodeError::Invalid)?;
    let reason_len = reader.u16()? as usize;
    let reason = reader.text(reason_len)?.to_owned();
    let sealed_phone = reader.bytes_u32()?.to_vec();
    reader.finish()?;
    Ok(DncEntry {
        phone_key,
        sealed_phone,
        added_at,
        reason,
    })
}

/// The `wakes` key of a customer's wake; times are kept to the millisecond.
pub fn encode_wake_key(at: jiff::Timestamp, customer: &CustomerId) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + customer.as_str().len());
    out.extend_from_slice(&wake_time_prefix(at));
    out.extend_from_slice(customer.as_str().as_bytes());
    out
}

/// The first 8 bytes of every `wakes` key at `at`'s millisecond.
pub fn wake_time_prefix(at: jiff::Timestamp) -> [u8; 8] {
    // Flipping the sign bit maps i64 order onto unsigned byte order.
    ((at.as_millisecond() as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn decode_wake_key(key: &[u8]) -> Result<(jiff::Timestamp, CustomerId), DecodeError> {
    let mut reader = Reader(key);
    let millis = (u64::from_be_bytes(reader.array()?) ^ (1 << 63)) as i64;
    let at = jiff::Timestamp::from_millisecond(millis).map_err(|_| DecodeError::Invalid)?;
    let id = reader.text(reader.0.len())?;
    let customer = CustomerId::parse(id).ok_or(DecodeError::Invalid)?;
    Ok((at, customer))
}

/// JSON for the records written once per call (ledger entries, CDRs): a
/// call costs far more than its record.
pub fn encode_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Our own plain structs, whose serialization cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

pub fn decode_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, super::StoreError> {
    serde_json::from_slice(bytes).map_err(|error| super::StoreError::DamagedJson { what, error })
}

pub fn encode_history(history: &dialhound_rules::History) -> Vec<u8> {
    encode_json(&crate::store::attempt::StoredHistory::from_history(history))
}

pub fn decode_history(bytes: &[u8]) -> Result<dialhound_rules::History, super::StoreError> {
    decode_json::<crate::store::attempt::StoredHistory>(bytes, "contact history")
        .map(|h| h.to_history())
}

/// A CDR's key: its campaign, a zero byte, then the end time and the attempt
/// number, big-endian, so one campaign's CDRs scan in time order.
pub fn cdr_key(cdr: &crate::store::attempt::Cdr) -> Vec<u8> {
    let mut key = Vec::with_capacity(cdr.campaign.len() + 17);
    key.extend_from_slice(cdr.campaign.as_bytes());
    key.push(0);
    key.extend_from_slice(&wake_time_prefix(cdr.ended_at));
    key.extend_from_slice(&cdr.attempt.to_be_bytes());
    key
}

/// The keys of `campaign`'s CDRs that ended at or after `since`.
pub fn cdr_range(campaign: &str, since: jiff::Timestamp) -> (Vec<u8>, Vec<u8>) {
    let mut from = Vec::with_capacity(campaign.len() + 9);
    from.extend_from_slice(campaign.as_bytes());
    from.push(0);
    let mut until = from.clone();
    from.extend_from_slice(&wake_time_prefix(since));
    // Campaign names hold no zero byte, so this ends the campaign's keys.
    if let Some(last) = until.last_mut() {
        *last = 1;
    }
    (from, until)
}

fn encode_value(out: &mut Vec<u8>, value: &AttributeValue) {
    match value {
        AttributeValue::Text(text) => {
            out.push(1);
            put_bytes_u32(out, text.as_bytes());
        }
        AttributeValue::Int(int) => {
            out.push(2);
            out.extend_from_slice(&int.to_be_bytes());
        }
        AttributeValue::Money(Money(hundredths)) => {
            out.push(3);
            out.extend_from_slice(&hundredths.to_be_bytes());
        }
        AttributeValue::Bool(flag) => {
            out.push(4);
            out.push(u8::from(*flag));
        }
        AttributeValue::Time(instant) => {
            out.push(5);
            out.extend_from_slice(&instant.as_second().to_be_bytes());
            out.extend_from_slice(&instant.subsec_nanosecond().to_be_bytes());
        }
        AttributeValue::TimeZone(zone) => {
            out.push(6);
            put_bytes_u16(out, zone.as_bytes());
        }
        AttributeValue::TextSet(items) => {
            out.push(7);
            out.extend_from_slice(&(items.len() as u16).to_be_bytes());
            for item in items {
                put_bytes_u16(out, item.as_bytes());
            }
        }
        AttributeValue::Enum(variant) => {
            out.push(8);
            put_bytes_u16(out, variant.as_bytes());
        }
    }
}

fn decode_value(reader: &mut Reader<'_>) -> Result<AttributeValue, DecodeError> {
    Ok(match reader.u8()? {
        1 => {
            let len = reader.u32()? as usize;
            AttributeValue::Text(reader.text(len)?.to_owned())
        }
        2 => AttributeValue::Int(reader.i64()?),
        3 => AttributeValue::Money(Money(reader.i64()?)),
        4 => AttributeValue::Bool(match reader.u8()? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError::Invalid),
        }),
        5 => {
            let seconds = reader.i64()?;
            let nanos = reader.i32()?;
            AttributeValue::Time(
                jiff::Timestamp::new(seconds, nanos).map_err(|_| DecodeError::Invalid)?,
            )
        }
        6 => {
            let len = reader.u16()? as usize;
            AttributeValue::TimeZone(reader.text(len)?.to_owned())
        }
        7 => {
            let count = reader.u16()?;
            let mut items = Vec::with_capacity(count.min(64) as usize);
            for _ in 0..count {
                let len = reader.u16()? as usize;
                items.push(reader.text(len)?.to_owned());
            }
            AttributeValue::TextSet(items)
        }
        8 => {
            let len = reader.u16()? as usize;
            AttributeValue::Enum(reader.text(len)?.to_owned())
        }
        tag => return Err(DecodeError::UnknownTag(tag)),
    })
}

fn put_bytes_u16(out: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_bytes_u32(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Checked reads over a byte slice: a short or damaged record is an error value.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < len {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.take(N)?.try_into().map_err(|_| DecodeError::Truncated)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn bytes_u32(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn text(&mut self, len: usize) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError::NotUtf8)
    }

    fn finish(self) -> Result<(), DecodeError> {
        match self.0.len() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes(extra)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SealedCustomer {
        let mut attributes = BTreeMap::new();
        attributes.insert("cart_value".into(), AttributeValue::Money(Money(29_950)));
        attributes.insert("paid".into(), AttributeValue::Bool(false));
        attributes.insert(
            "zone".into(),
            AttributeValue::TimeZone("Asia/Shanghai".into()),
        );
        attributes.insert("intent".into(), AttributeValue::Enum("high".into()));
        attributes.insert("visits".into(), AttributeValue::Int(-3));
        attributes.insert("note".into(), AttributeValue::Text("回访".into()));
        attributes.insert(
            "tags".into(),
            AttributeValue::TextSet(vec!["a".into(), "vip".into()]),
        );
        attributes.insert(
            "cart_added".into(),
            AttributeValue::Time(jiff::Timestamp::new(1_700_000_000, 5).unwrap()),
        );
        SealedCustomer {
            id: CustomerId::parse("C-1").unwrap(),
            phone_key: PhoneKey([9; 32]),
            fingerprint: Fingerprint([4; 16]),
            sealed_personal: vec![1, 2, 3],
            attributes,
        }
    }

    #[test]
    fn customer_round_trips() {
        let customer = sample();
        let bytes = encode_customer(&customer);
        assert_eq!(decode_customer(b"C-1", &bytes).unwrap(), customer);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = encode_customer(&sample());
        for len in 0..bytes.len() {
            assert!(
                decode_customer(b"C-1", &bytes[..len]).is_err(),
                "length {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode_customer(b"C-1", &longer),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn unknown_format_is_named() {
        let mut bytes = encode_customer(&sample());
        bytes[0] = 9;
        assert_eq!(
            decode_customer(b"C-1", &bytes),
            Err(DecodeError::UnknownFormat(9))
        );
    }

    #[test]
    fn personal_fields_round_trip() {
        let bytes = encode_personal("+8613800138000", Some("王小明"));
        assert_eq!(
            decode_personal(&bytes).unwrap(),
            ("+8613800138000".into(), Some("王小明".into()))
        );
        let bytes = encode_personal("+8613800138000", None);
        assert_eq!(
            decode_personal(&bytes).unwrap(),
            ("+8613800138000".into(), None)
        );
    }

    #[test]
    fn wake_keys_sort_in_time_order_and_round_trip() {
        let id = CustomerId::parse("C-7").unwrap();
        let times = [-86_400_000i64, -1, 0, 1, 999, 1_700_000_000_000];
        let keys: Vec<Vec<u8>> = times
            .iter()
            .map(|&ms| encode_wake_key(jiff::Timestamp::from_millisecond(ms).unwrap(), &id))
            .collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        for (&ms, key) in times.iter().zip(&keys) {
            let (at, customer) = decode_wake_key(key).unwrap();
            assert_eq!(at.as_millisecond(), ms);
            assert_eq!(customer, id);
        }
        assert_eq!(decode_wake_key(&keys[0][..7]), Err(DecodeError::Truncated));
        assert_eq!(decode_wake_key(&keys[0][..8]), Err(DecodeError::Invalid));
    }

    #[test]
    fn dnc_round_trips() {
        let entry = DncEntry {
            phone_key: PhoneKey([1; 32]),
            sealed_phone: vec![5; 40],
            added_at: jiff::Timestamp::from_millisecond(1_700_000_000_123).unwrap(),
            reason: "customer asked".into(),
        };
        let bytes = encode_dnc(&entry);
        assert_eq!(decode_dnc(&[1; 32], &bytes).unwrap(), entry);
        assert!(decode_dnc(&[1; 31], &bytes).is_err());
    }
}
