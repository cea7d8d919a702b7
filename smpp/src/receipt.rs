//! Delivery receipts: the `deliver_sm` an SMSC sends with esm_class 0x04,
//! read from its `receipted_message_id` and `message_state` TLVs when present,
//! else from the de-facto text of SMPP 3.4's appendix B:
//!
//! ```text
//! id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...
//! ```
//!
//! Any field may be missing (Jasmin leaves out `sub`, `dlvrd` and `text`),
//! and the dates may carry seconds (`YYMMDDhhmmss`).

/// What became of a message, by the receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptState {
    /// `DELIVRD`: on the phone.
    Delivered,
    /// `UNDELIV`: the network could not deliver it.
    Undeliverable,
    /// `EXPIRED`: the validity period ran out first.
    Expired,
    /// `REJECTD`: the SMSC or the network refused it.
    Rejected,
    /// `DELETED`: deleted before delivery.
    Deleted,
    /// `ACCEPTD`: accepted by an operator or the SMSC, no final outcome yet.
    Accepted,
    /// `ENROUTE`: still on its way (an intermediate notification).
    Enroute,
    /// `UNKNOWN`, or a state the receipt did not name or this reader does
    /// not know.
    Unknown,
}

impl ReceiptState {
    /// The state of a receipt text's `stat:` value.
    pub fn from_stat(stat: &str) -> ReceiptState {
        match stat.to_ascii_uppercase().as_str() {
            "DELIVRD" | "DELIVERED" => ReceiptState::Delivered,
            "UNDELIV" | "UNDELIVERABLE" => ReceiptState::Undeliverable,
            "EXPIRED" => ReceiptState::Expired,
            "REJECTD" | "REJECTED" => ReceiptState::Rejected,
            "DELETED" => ReceiptState::Deleted,
            "ACCEPTD" | "ACCEPTED" => ReceiptState::Accepted,
            "ENROUTE" => ReceiptState::Enroute,
            _ => ReceiptState::Unknown,
        }
    }

    /// The state of a `message_state` TLV value (SMPP 3.4 §5.2.28).
    pub fn from_message_state(value: u8) -> ReceiptState {
        match value {
            1 => ReceiptState::Enroute,
            2 => ReceiptState::Delivered,
            3 => ReceiptState::Expired,
            4 => ReceiptState::Deleted,
            5 => ReceiptState::Undeliverable,
            6 => ReceiptState::Accepted,
            8 => ReceiptState::Rejected,
            _ => ReceiptState::Unknown,
        }
    }

    /// The receipt text's `stat:` word for this state (`DELIVRD`, …).
    pub fn stat(self) -> &'static str {
        match self {
            ReceiptState::Delivered => "DELIVRD",
            ReceiptState::Undeliverable => "UNDELIV",
            ReceiptState::Expired => "EXPIRED",
            ReceiptState::Rejected => "REJECTD",
            ReceiptState::Deleted => "DELETED",
            ReceiptState::Accepted => "ACCEPTD",
            ReceiptState::Enroute => "ENROUTE",
            ReceiptState::Unknown => "UNKNOWN",
        }
    }

    /// Whether the message's fate is settled (nothing more will come).
    pub fn is_final(self) -> bool {
        !matches!(self, ReceiptState::Accepted | ReceiptState::Enroute)
    }
}

/// A date of a receipt text, in the SMSC's local time (the text names no
/// zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SmscTime {
    /// The full year (two digits read as 20YY).
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    /// 0 when the text gives minutes only.
    pub second: u8,
}

impl SmscTime {
    /// Reads `YYMMDDhhmm` or `YYMMDDhhmmss`; `None` for anything else or a
    /// date out of range.
    pub fn parse(text: &str) -> Option<SmscTime> {
        if !(text.len() == 10 || text.len() == 12) || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let two = |at: usize| text.get(at..at + 2).and_then(|s| s.parse::<u8>().ok());
        let time = SmscTime {
            year: 2000 + u16::from(two(0)?),
            month: two(2)?,
            day: two(4)?,
            hour: two(6)?,
            minute: two(8)?,
            second: if text.len() == 12 { two(10)? } else { 0 },
        };
        let valid = (1..=12).contains(&time.month)
            && (1..=31).contains(&time.day)
            && time.hour < 24
            && time.minute < 60
            && time.second < 61;
        valid.then_some(time)
    }
}

/// The fields of a receipt text, each as written when present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiptText {
    pub id: Option<String>,
    pub stat: Option<String>,
    pub err: Option<String>,
    pub submit_date: Option<String>,
    pub done_date: Option<String>,
}

/// The keys of a receipt text, longest first where one ends another.
const KEYS: [&str; 8] = [
    "id:",
    "sub:",
    "dlvrd:",
    "submit date:",
    "done date:",
    "stat:",
    "err:",
    "text:",
];

/// Reads the fields of a receipt text; keys are matched without regard to
/// case, and a field missing from the text is `None`.
pub fn parse_text(text: &str) -> ReceiptText {
    // Where each key's value starts and the key's own start.
    let lower = text.to_ascii_lowercase();
    let mut found: Vec<(usize, usize, &str)> = Vec::new();
    for key in KEYS {
        let mut from = 0;
        while let Some(at) = lower.get(from..).and_then(|rest| rest.find(key)) {
            let start = from + at;
            // A key starts the text or follows a space, so `id:` does not
            // match inside `msgid:` and the `date:` of `done date:` stays its own.
            let starts_word = start == 0 || lower.as_bytes().get(start - 1) == Some(&b' ');
            if starts_word {
                found.push((start, start + key.len(), key));
                break;
            }
            from = start + key.len();
        }
    }
    found.sort();
    let mut out = ReceiptText::default();
    for (i, &(_, value_start, key)) in found.iter().enumerate() {
        let value_end = found.get(i + 1).map_or(text.len(), |&(next, _, _)| next);
        if key == "text:" {
            continue;
        }
        let value = text
            .get(value_start..value_end)
            .unwrap_or_default()
            .trim()
            .to_owned();
        if value.is_empty() {
            continue;
        }
        let slot = match key {
            "id:" => &mut out.id,
            "stat:" => &mut out.stat,
            "err:" => &mut out.err,
            "submit date:" => &mut out.submit_date,
            "done date:" => &mut out.done_date,
            _ => continue,
        };
        *slot = Some(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_reads_back_from_its_stat_word() {
        for state in [
            ReceiptState::Delivered,
            ReceiptState::Undeliverable,
            ReceiptState::Expired,
            ReceiptState::Rejected,
            ReceiptState::Deleted,
            ReceiptState::Accepted,
            ReceiptState::Enroute,
            ReceiptState::Unknown,
        ] {
            assert_eq!(ReceiptState::from_stat(state.stat()), state);
        }
    }

    #[test]
    fn the_appendix_b_text_reads_every_field() {
        let r = parse_text(
            "id:0123456789 sub:001 dlvrd:001 submit date:2501311200 done date:2501311201 stat:DELIVRD err:000 text:hello id:x",
        );
        assert_eq!(r.id.as_deref(), Some("0123456789"));
        assert_eq!(r.stat.as_deref(), Some("DELIVRD"));
        assert_eq!(r.err.as_deref(), Some("000"));
        assert_eq!(r.submit_date.as_deref(), Some("2501311200"));
        assert_eq!(r.done_date.as_deref(), Some("2501311201"));
        assert_eq!(
            SmscTime::parse("2501311201"),
            Some(SmscTime {
                year: 2025,
                month: 1,
                day: 31,
                hour: 12,
                minute: 1,
                second: 0
            })
        );
    }

    #[test]
    fn jasmins_text_without_sub_dlvrd_or_text_reads_too() {
        let r = parse_text(
            "id:5e3f6b2a-1c2d-4e5f-8a9b-0c1d2e3f4a5b submit date:250131120005 done date:250131120006 stat:UNDELIV err:001",
        );
        assert_eq!(
            r.id.as_deref(),
            Some("5e3f6b2a-1c2d-4e5f-8a9b-0c1d2e3f4a5b")
        );
        assert_eq!(
            ReceiptState::from_stat(r.stat.as_deref().unwrap()),
            ReceiptState::Undeliverable
        );
        assert_eq!(r.err.as_deref(), Some("001"));
        assert_eq!(
            SmscTime::parse(r.done_date.as_deref().unwrap())
                .unwrap()
                .second,
            6
        );
    }

    #[test]
    fn missing_and_garbled_fields_are_none() {
        assert_eq!(parse_text(""), ReceiptText::default());
        let r = parse_text("stat:EXPIRED");
        assert_eq!(r.id, None);
        assert_eq!(ReceiptState::from_stat("EXPIRED"), ReceiptState::Expired);
        assert_eq!(ReceiptState::from_stat("WHATEVER"), ReceiptState::Unknown);
        assert_eq!(SmscTime::parse("25013112"), None);
        assert_eq!(SmscTime::parse("2513311200"), None);
        assert_eq!(SmscTime::parse("25013112ab"), None);
        assert_eq!(parse_text("msgid:7 stat:DELIVRD").id, None);
    }

    #[test]
    fn message_state_values_follow_the_spec() {
        assert_eq!(ReceiptState::from_message_state(2), ReceiptState::Delivered);
        assert_eq!(
            ReceiptState::from_message_state(5),
            ReceiptState::Undeliverable
        );
        assert_eq!(ReceiptState::from_message_state(8), ReceiptState::Rejected);
        assert!(!ReceiptState::Accepted.is_final());
    }
}
