//! A text as it goes on the air: the coding it needs (GSM 7-bit default
//! alphabet or UCS-2), its bytes in SMPP's `short_message`, and its split into
//! concatenated parts. This module is the workspace's one copy of the GSM
//! 03.38 alphabet and the SMS part arithmetic; it needs no feature of this
//! crate, so the rules language counts a template's parts with it too.
//!
//! GSM 7-bit text is written as unpacked septets, one octet each, as SMPP
//! carries `data_coding` 0; the SMSC packs them for the air. UCS-2 is
//! UTF-16 big-endian (a character outside the Basic Multilingual Plane goes as
//! its surrogate pair, as phones read it).
//!
//! ```
//! use dialhound_smpp::text::{Coding, split};
//! let parts = split(&"好".repeat(150), &[]).unwrap();
//! assert_eq!(parts.coding, Coding::Ucs2);
//! assert_eq!(parts.texts.len(), 3);
//! ```

use std::ops::Range;

/// How a text is encoded in `short_message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// The GSM 03.38 default alphabet (`data_coding` 0), one septet a
    /// character; a character of the extension table takes two (the escape
    /// and the character).
    Gsm7,
    /// UCS-2 (`data_coding` 8), 16 bits a UTF-16 code unit.
    Ucs2,
}

impl Coding {
    /// The `data_coding` value of this coding.
    pub const fn data_coding(self) -> u8 {
        match self {
            Coding::Gsm7 => 0,
            Coding::Ucs2 => 8,
        }
    }

    /// The most units (septets, or UTF-16 code units) one unsplit SMS holds.
    pub const fn single_part(self) -> usize {
        match self {
            Coding::Gsm7 => 160,
            Coding::Ucs2 => 70,
        }
    }

    /// The most units each part of a split SMS holds beside the 6-octet
    /// header that joins the parts.
    pub const fn per_part(self) -> usize {
        match self {
            Coding::Gsm7 => 153,
            Coding::Ucs2 => 67,
        }
    }
}

/// The GSM 03.38 default alphabet in table order, the escape (0x1B) left
/// out: characters before `Æ` have their index as code, the rest index + 1.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The escape to the extension table.
const ESCAPE: u8 = 0x1B;

/// The GSM 03.38 extension table: each character and its code after the
/// escape.
const GSM7_EXTENSION: [(char, u8); 10] = [
    ('\u{c}', 0x0A),
    ('^', 0x14),
    ('{', 0x28),
    ('}', 0x29),
    ('\\', 0x2F),
    ('[', 0x3C),
    ('~', 0x3D),
    (']', 0x3E),
    ('|', 0x40),
    ('€', 0x65),
];

/// The septet code of `c` in the default alphabet.
fn basic_code(c: char) -> Option<u8> {
    let index = GSM7_BASIC.chars().position(|b| b == c)?;
    let code = if index < usize::from(ESCAPE) {
        index
    } else {
        index + 1
    };
    u8::try_from(code).ok()
}

/// The character of septet `code` in the default alphabet.
fn basic_char(code: u8) -> Option<char> {
    let index = match code {
        ESCAPE => return None,
        c if c < ESCAPE => usize::from(c),
        c => usize::from(c) - 1,
    };
    GSM7_BASIC.chars().nth(index)
}

/// The septets `c` takes in GSM 7-bit, or `None` when it has none.
fn gsm7_septets(c: char) -> Option<usize> {
    if basic_code(c).is_some() {
        Some(1)
    } else if GSM7_EXTENSION.iter().any(|&(e, _)| e == c) {
        Some(2)
    } else {
        None
    }
}

/// The coding `text` needs: GSM 7-bit when every character is in the default
/// alphabet or its extension table, else UCS-2.
pub fn coding(text: &str) -> Coding {
    if text.chars().all(|c| gsm7_septets(c).is_some()) {
        Coding::Gsm7
    } else {
        Coding::Ucs2
    }
}

/// The units `c` takes in `coding`.
fn units(coding: Coding, c: char) -> usize {
    match coding {
        Coding::Gsm7 => gsm7_septets(c).unwrap_or(1),
        Coding::Ucs2 => c.len_utf16(),
    }
}

/// `text` as the octets of `short_message` in `coding`. A character GSM
/// 7-bit has no septet for is written as `?` (only reachable when the caller
/// forces GSM 7-bit on a text [`coding`] would send as UCS-2).
pub fn encode(coding: Coding, text: &str) -> Vec<u8> {
    match coding {
        Coding::Gsm7 => {
            let mut out = Vec::with_capacity(text.len());
            for c in text.chars() {
                if let Some(code) = basic_code(c) {
                    out.push(code);
                } else if let Some(&(_, code)) = GSM7_EXTENSION.iter().find(|&&(e, _)| e == c) {
                    out.extend([ESCAPE, code]);
                } else {
                    out.push(b'?');
                }
            }
            out
        }
        Coding::Ucs2 => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
    }
}

/// Decodes unpacked GSM 7-bit septets. An octet above 0x7F (no septet has
/// one; some SMSCs send Latin-1 under `data_coding` 0) is read as Latin-1,
/// an unknown escape as the space the standard says to show.
pub fn decode_gsm7(octets: &[u8]) -> String {
    let mut out = String::with_capacity(octets.len());
    let mut escaped = false;
    for &o in octets {
        if escaped {
            escaped = false;
            match GSM7_EXTENSION.iter().find(|&&(_, code)| code == o) {
                Some(&(c, _)) => out.push(c),
                None => out.push(' '),
            }
        } else if o == ESCAPE {
            escaped = true;
        } else if o > 0x7F {
            out.push(char::from(o));
        } else if let Some(c) = basic_char(o) {
            out.push(c);
        }
    }
    out
}

/// Decodes UCS-2 (UTF-16 big-endian); an unpaired surrogate or a trailing
/// odd octet reads as U+FFFD.
pub fn decode_ucs2(octets: &[u8]) -> String {
    let units: Vec<u16> = octets
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => u16::from_be_bytes([*hi, *lo]),
            _ => 0xFFFD,
        })
        .collect();
    String::from_utf16_lossy(&units)
}

/// Decodes `short_message` octets by `data_coding`: 0 (GSM 7-bit), 1 (IA5,
/// ASCII), 3 (Latin-1) and 8 (UCS-2); `None` for any other coding.
pub fn decode(data_coding: u8, octets: &[u8]) -> Option<String> {
    match data_coding {
        0 => Some(decode_gsm7(octets)),
        1 | 3 => Some(octets.iter().map(|&o| char::from(o)).collect()),
        8 => Some(decode_ucs2(octets)),
        _ => None,
    }
}

/// Why a text cannot be split into parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The caller's range to keep whole does not lie on the text's character
    /// boundaries.
    #[error("the range {start}..{end} to keep whole is not on character boundaries of the text")]
    RangeNotInText { start: usize, end: usize },
    /// The caller's range to keep whole is longer than a part holds.
    #[error(
        "the range {start}..{end} to keep whole is {units} units long, more than the {per_part} one part holds"
    )]
    RangeLongerThanPart {
        start: usize,
        end: usize,
        units: usize,
        per_part: usize,
    },
    /// The text needs more parts than the 8-bit count in the header allows.
    #[error("the text needs {0} parts, more than the 255 a concatenated SMS may have")]
    TooManyParts(usize),
}

/// A text split for sending: its coding and the text of each part, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub coding: Coding,
    /// The parts' texts; one element when the text fits one SMS.
    pub texts: Vec<String>,
}

/// Splits `text` into the parts it is sent in: one when it fits
/// [`Coding::single_part`], else parts of at most [`Coding::per_part`]
/// units. A character never straddles two parts (an extension character keeps
/// its escape, a surrogate pair stays together), and no range of `keep_whole`
/// (byte ranges of `text`, such as a link) is cut: the cut moves before it.
pub fn split(text: &str, keep_whole: &[Range<usize>]) -> Result<Split, SplitError> {
    let coding = coding(text);
    for r in keep_whole {
        if r.start > r.end || !text.is_char_boundary(r.start) || !text.is_char_boundary(r.end) {
            return Err(SplitError::RangeNotInText {
                start: r.start,
                end: r.end,
            });
        }
    }
    let chars = char_units(coding, text);
    if fits_one_part(coding, &chars) {
        return Ok(Split {
            coding,
            texts: vec![text.to_owned()],
        });
    }
    for r in keep_whole {
        let len: usize = chars
            .iter()
            .filter(|&&(at, _)| r.contains(&at))
            .map(|&(_, n)| n)
            .sum();
        if len > coding.per_part() {
            return Err(SplitError::RangeLongerThanPart {
                start: r.start,
                end: r.end,
                units: len,
                per_part: coding.per_part(),
            });
        }
    }
    let texts: Vec<String> = cuts(coding, text.len(), &chars, keep_whole)
        .windows(2)
        .map(|w| text[w[0]..w[1]].to_owned())
        .collect();
    if texts.len() > 255 {
        return Err(SplitError::TooManyParts(texts.len()));
    }
    Ok(Split { coding, texts })
}

/// The coding of `text` and the number of parts it is sent in: the count of
/// [`split`] with no range to keep whole, and with no limit of 255 parts.
/// One up to [`Coding::single_part`] units, else as many parts of at most
/// [`Coding::per_part`] units as it fills; a part may hold a unit less, since
/// a character never straddles two parts. An empty text is one part.
///
/// ```
/// use dialhound_smpp::text::{Coding, parts};
/// assert_eq!(parts(&"a".repeat(160)), (Coding::Gsm7, 1));
/// assert_eq!(parts(&"a".repeat(161)), (Coding::Gsm7, 2));
/// assert_eq!(parts(&"好".repeat(135)), (Coding::Ucs2, 3));
/// ```
pub fn parts(text: &str) -> (Coding, usize) {
    let coding = coding(text);
    let chars = char_units(coding, text);
    if fits_one_part(coding, &chars) {
        return (coding, 1);
    }
    (coding, cuts(coding, text.len(), &chars, &[]).len() - 1)
}

/// Each character of `text` as its byte offset and the units it takes in
/// `coding`.
fn char_units(coding: Coding, text: &str) -> Vec<(usize, usize)> {
    text.char_indices()
        .map(|(at, c)| (at, units(coding, c)))
        .collect()
}

/// Whether the characters of [`char_units`] fit one unsplit SMS.
fn fits_one_part(coding: Coding, chars: &[(usize, usize)]) -> bool {
    chars.iter().map(|&(_, n)| n).sum::<usize>() <= coding.single_part()
}

/// Where a text of `len` bytes, its characters as [`char_units`] gives them,
/// is cut into parts of at most [`Coding::per_part`] units: the byte offset
/// each part starts at, then `len`. No range of `keep_whole` is cut; each is
/// on character boundaries and no longer than a part.
fn cuts(
    coding: Coding,
    len: usize,
    chars: &[(usize, usize)],
    keep_whole: &[Range<usize>],
) -> Vec<usize> {
    let mut cuts = vec![0usize];
    let mut start = 0; // index into `chars` of the part being filled
    while start < chars.len() {
        let mut used = 0;
        let mut end = start;
        while end < chars.len() && used + chars[end].1 <= coding.per_part() {
            used += chars[end].1;
            end += 1;
        }
        if end < chars.len() {
            let cut = chars[end].0;
            // A cut inside a range to keep moves to the range's start, unless
            // the range starts the part (then it is longer than the part,
            // which the caller refused; keep the cut to make progress).
            if let Some(r) = keep_whole.iter().find(|r| r.start < cut && cut < r.end)
                && r.start > chars[start].0
                && let Some(i) = chars.iter().position(|&(at, _)| at == r.start)
            {
                end = i;
            }
        }
        cuts.push(chars.get(end).map_or(len, |&(at, _)| at));
        start = end;
    }
    cuts
}

/// The length of `text` in units of `coding`.
pub fn length(coding: Coding, text: &str) -> usize {
    text.chars().map(|c| units(coding, c)).sum()
}

// A range kept whole is a one-element list in most tests, on purpose.
#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn the_alphabet_has_127_characters_and_every_code_round_trips() {
        assert_eq!(GSM7_BASIC.chars().count(), 127);
        for code in 0u8..=0x7F {
            if code == ESCAPE {
                assert_eq!(basic_char(code), None);
                continue;
            }
            let c = basic_char(code).expect("every septet but the escape is a character");
            assert_eq!(basic_code(c), Some(code), "{c:?}");
        }
        assert_eq!(basic_code('@'), Some(0x00));
        assert_eq!(basic_code('Æ'), Some(0x1C));
        assert_eq!(basic_code(' '), Some(0x20));
        assert_eq!(basic_code('A'), Some(0x41));
        assert_eq!(basic_code('à'), Some(0x7F));
    }

    #[test]
    fn the_extension_table_has_10_characters_none_of_them_basic() {
        assert_eq!(GSM7_EXTENSION.len(), 10);
        assert!(
            GSM7_EXTENSION
                .iter()
                .all(|&(c, _)| basic_code(c).is_none() && gsm7_septets(c) == Some(2))
        );
    }

    #[test]
    fn parts_counts_what_split_cuts() {
        let a = "a".repeat(152);
        let texts = [
            String::new(),
            "a".repeat(160),
            "a".repeat(161),
            "a".repeat(307),
            "好".repeat(70),
            "好".repeat(71),
            "好".repeat(202),
            "€".repeat(81),
            format!("{a}€{a}"),
            "😀".repeat(67),
            format!("{}好", "a".repeat(70)),
        ];
        for text in &texts {
            let split = split(text, &[]).unwrap();
            assert_eq!(parts(text), (split.coding, split.texts.len()), "{text}");
        }
        assert_eq!(parts(&"a".repeat(153 * 256)), (Coding::Gsm7, 256));
    }

    #[test]
    fn gsm_text_is_unpacked_septets_with_escapes() {
        assert_eq!(
            encode(Coding::Gsm7, "A@_€"),
            vec![0x41, 0x00, 0x11, 0x1B, 0x65]
        );
        assert_eq!(decode_gsm7(&[0x41, 0x00, 0x11, 0x1B, 0x65]), "A@_€");
        assert_eq!(decode_gsm7(b"TD"), "TD");
        assert_eq!(decode_gsm7(&[0x1B, 0x01]), " ");
        assert_eq!(decode_gsm7(&[0xE9]), "é");
    }

    #[test]
    fn ucs2_is_utf16_big_endian() {
        assert_eq!(encode(Coding::Ucs2, "退订"), vec![0x90, 0x00, 0x8B, 0xA2]);
        assert_eq!(decode_ucs2(&[0x90, 0x00, 0x8B, 0xA2]), "退订");
        assert_eq!(decode_ucs2(&encode(Coding::Ucs2, "a😀")), "a😀");
        assert_eq!(decode_ucs2(&[0x00]), "\u{fffd}");
        assert_eq!(decode(4, b"x"), None);
    }

    #[test]
    fn one_part_up_to_160_or_70_then_153_or_67() {
        let one = |s: String| split(&s, &[]).unwrap().texts.len();
        assert_eq!(one("a".repeat(160)), 1);
        assert_eq!(one("a".repeat(161)), 2);
        assert_eq!(one("a".repeat(306)), 2);
        assert_eq!(one("a".repeat(307)), 3);
        assert_eq!(one("好".repeat(70)), 1);
        assert_eq!(one("好".repeat(71)), 2);
        assert_eq!(one("好".repeat(134)), 2);
        assert_eq!(one("好".repeat(135)), 3);
        let parts = split(&"a".repeat(161), &[]).unwrap();
        assert_eq!(parts.texts[0].len(), 153);
        assert_eq!(parts.texts[1].len(), 8);
    }

    #[test]
    fn an_escape_pair_or_a_surrogate_pair_never_straddles_parts() {
        let a = "a".repeat(152);
        let parts = split(&format!("{a}€{a}"), &[]).unwrap();
        assert_eq!(parts.texts.len(), 3);
        assert_eq!(parts.texts[0], a);
        assert!(parts.texts[1].starts_with('€'));
        let parts = split(&"😀".repeat(67), &[]).unwrap();
        assert!(parts.texts.iter().all(|t| length(Coding::Ucs2, t) <= 67));
        assert_eq!(length(Coding::Ucs2, &parts.texts[0]), 66);
        assert_eq!(parts.texts.concat(), "😀".repeat(67));
    }

    #[test]
    fn a_range_kept_whole_moves_the_cut_before_it() {
        let link = "https://dh.example/abc";
        let text = format!("{}{link}{}", "a".repeat(140), "b".repeat(30));
        let at = text.find(link).unwrap();
        let parts = split(&text, &[at..at + link.len()]).unwrap();
        assert_eq!(parts.texts.len(), 2);
        assert_eq!(parts.texts[0], "a".repeat(140));
        assert!(parts.texts[1].starts_with(link));
        assert_eq!(parts.texts.concat(), text);
    }

    #[test]
    fn bad_ranges_are_the_callers_error() {
        assert_eq!(
            split("好好", &[1..3]),
            Err(SplitError::RangeNotInText { start: 1, end: 3 })
        );
        let text = "x".repeat(200);
        assert!(matches!(
            split(&text, &[0..154]),
            Err(SplitError::RangeLongerThanPart { units: 154, .. })
        ));
        assert_eq!(
            split(&"a".repeat(153 * 256), &[]),
            Err(SplitError::TooManyParts(256))
        );
    }
}
