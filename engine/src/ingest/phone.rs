//! Phone numbers: parsed once into E.164, or rejected with a reason an operator can act on.

use std::fmt;

use phonenumber::country;

/// A region (ISO 3166 alpha-2) whose numbering plan reads numbers written without `+`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(country::Id);

impl Region {
    pub fn parse(code: &str) -> Option<Region> {
        code.trim()
            .to_ascii_uppercase()
            .parse::<country::Id>()
            .ok()
            .map(Region)
    }
}

/// A valid phone number in E.164 form (`+8613800138000`). It exists only if it
/// parsed and is valid for its region.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

/// Why a written number is not a callable E.164 number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PhoneError {
    /// Empty cell.
    Missing,
    /// Letters or symbols other than digits, spaces, `+`, `-`, `.`, `(` and `)`.
    SpecialCharacters,
    /// Too few or too many digits for the region's numbering plan.
    WrongLength,
    /// The right length, but no number of that shape is assigned in the region.
    InvalidForRegion,
}

impl PhoneError {
    /// Stable reason code, used in rejects files, metrics and the socket protocol.
    pub fn code(self) -> &'static str {
        match self {
            PhoneError::Missing => "missing_phone",
            PhoneError::SpecialCharacters => "special_characters",
            PhoneError::WrongLength => "wrong_length",
            PhoneError::InvalidForRegion => "invalid_number",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            PhoneError::Missing => "no phone number",
            PhoneError::SpecialCharacters => {
                "the number contains characters other than digits, spaces, `+`, `-`, `.` and parentheses"
            }
            PhoneError::WrongLength => "the number has the wrong number of digits for its region",
            PhoneError::InvalidForRegion => "the number is not a valid number in its region",
        }
    }
}

impl fmt::Display for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl E164 {
    /// Parses a number as people write it; `region` applies when it has no `+` prefix.
    pub fn parse(written: &str, region: Region) -> Result<E164, PhoneError> {
        let written = written.trim();
        if written.is_empty() {
            return Err(PhoneError::Missing);
        }
        let allowed =
            |c: char| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '.' | '(' | ')');
        if !written.chars().all(allowed) || written.rfind('+').is_some_and(|at| at > 0) {
            return Err(PhoneError::SpecialCharacters);
        }
        if let Some(number) = plan::fast_valid(written, region.0) {
            return Ok(number);
        }
        Self::parse_with_library(written, region)
    }

    /// The library's full parser: national and international prefixes, carrier
    /// codes, every numbering-plan rule.
    fn parse_with_library(written: &str, region: Region) -> Result<E164, PhoneError> {
        let number = phonenumber::parse(Some(region.0), written).map_err(|error| match error {
            phonenumber::ParseError::TooShortAfterIdd
            | phonenumber::ParseError::TooShortNsn
            | phonenumber::ParseError::TooLong
            | phonenumber::ParseError::NoNumber => PhoneError::WrongLength,
            phonenumber::ParseError::InvalidCountryCode
            | phonenumber::ParseError::MalformedInteger(_) => PhoneError::InvalidForRegion,
        })?;
        if number.is_valid() {
            // E.164 is `+`, the country code and the national number (leading zeros kept).
            return Ok(E164(format!(
                "+{}{}",
                number.code().value(),
                number.national()
            )));
        }
        if has_wrong_length(&number) {
            Err(PhoneError::WrongLength)
        } else {
            Err(PhoneError::InvalidForRegion)
        }
    }

    /// Rebuilds a number that was stored in E.164 form by this module.
    pub fn from_stored(stored: &str) -> Option<E164> {
        let digits = stored.strip_prefix('+')?;
        (!digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| E164(stored.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether no number type of the region (fixed line, mobile, toll free, ...) has
/// this many national digits.
fn has_wrong_length(number: &phonenumber::PhoneNumber) -> bool {
    use phonenumber::Type;
    let Some(metadata) = number.metadata(&phonenumber::metadata::DATABASE) else {
        return false;
    };
    let digits = number.national().to_string().len() as u16;
    let descriptors = metadata.descriptors();
    let mut any_known = false;
    for kind in [
        Type::FixedLine,
        Type::Mobile,
        Type::TollFree,
        Type::PremiumRate,
        Type::SharedCost,
        Type::PersonalNumber,
        Type::Voip,
        Type::Pager,
        Type::Uan,
        Type::Voicemail,
    ] {
        if let Some(descriptor) = descriptors.get(kind) {
            any_known |= !descriptor.possible_length().is_empty();
            if descriptor.possible_length().contains(&digits) {
                return false;
            }
        }
    }
    any_known
}

/// A fast path over the phone library's own numbering-plan metadata.
///
/// The library keeps its compiled patterns in one process-wide LRU cache behind a
/// mutex, which costs about 20 µs per number and serialises import threads. Here the
/// same metadata patterns are compiled once per region, anchored as libphonenumber
/// specifies, and tried on the plain digits. Only a number that is valid as written
/// (no national or international prefix to strip) is accepted here; everything else
/// goes to the library's full parser, so a result never differs from the library's.
mod plan {
    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock, RwLock};

    use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
    use phonenumber::{Type, country};
    use regex::Regex;

    use super::E164;

    /// One region's patterns.
    pub(super) struct Plan {
        /// The country code in decimal.
        code_text: String,
        national_prefix: Option<String>,
        /// Carrier codes and prefixes the library strips, even after `+CC`.
        prefix_for_parsing: Option<Regex>,
        general: Pattern,
        types: Vec<Pattern>,
    }

    struct Pattern {
        regex: Regex,
        lengths: Vec<u16>,
    }

    impl Pattern {
        fn new(descriptor: &Descriptor) -> Option<Pattern> {
            Some(Pattern {
                regex: compile(&format!("^(?:{})$", descriptor.national_number().as_str()))?,
                lengths: descriptor.possible_length().to_vec(),
            })
        }

        fn matches(&self, national: &str) -> bool {
            (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
                && self.regex.is_match(national)
        }
    }

    fn compile(source: &str) -> Option<Regex> {
        regex::RegexBuilder::new(source)
            // The metadata writes its patterns across lines.
            .ignore_whitespace(true)
            .size_limit(1 << 26)
            .build()
            .ok()
    }

    impl Plan {
        fn new(metadata: &Metadata) -> Option<Plan> {
            let descriptors = metadata.descriptors();
            // Any one type matching is enough, so the common ones go first: a mobile
            // number is then never tried against the long fixed-line pattern.
            let types = [
                Type::Mobile,
                Type::FixedLine,
                Type::TollFree,
                Type::PremiumRate,
                Type::SharedCost,
                Type::Voip,
                Type::PersonalNumber,
                Type::Pager,
                Type::Uan,
                Type::Voicemail,
            ]
            .into_iter()
            .filter_map(|kind| descriptors.get(kind).and_then(Pattern::new))
            .collect();
            Some(Plan {
                code_text: metadata.country_code().to_string(),
                national_prefix: metadata.national_prefix().map(str::to_owned),
                prefix_for_parsing: match metadata.national_prefix_for_parsing() {
                    Some(pattern) => Some(compile(&format!("^(?:{})", pattern.as_str()))?),
                    None => None,
                },
                general: Pattern::new(descriptors.general())?,
                types,
            })
        }

        /// Whether the library would strip a prefix from this national number.
        fn strips_prefix(&self, national: &str) -> bool {
            self.prefix_for_parsing
                .as_ref()
                .is_some_and(|p| p.is_match(national))
                || self
                    .national_prefix
                    .as_deref()
                    .is_some_and(|p| national.starts_with(p))
        }

        fn is_valid(&self, national: &str) -> bool {
            !self.strips_prefix(national)
                && self.general.matches(national)
                && self.types.iter().any(|t| t.matches(national))
        }
    }

    fn plan_for(region: &str) -> Option<Arc<Plan>> {
        static PLANS: OnceLock<RwLock<HashMap<String, Option<Arc<Plan>>>>> = OnceLock::new();
        let plans = PLANS.get_or_init(Default::default);
        if let Some(plan) = plans.read().ok()?.get(region) {
            return plan.clone();
        }
        let plan = DATABASE.by_id(region).and_then(Plan::new).map(Arc::new);
        plans.write().ok()?.insert(region.to_owned(), plan.clone());
        plan
    }

    /// The number, if it is valid exactly as written.
    pub(super) fn fast_valid(written: &str, region: country::Id) -> Option<E164> {
        let international = written.starts_with('+');
        // At most 17 digits, gathered without allocating.
        let mut buffer = [0u8; 17];
        let mut len = 0;
        for digit in written.bytes().filter(u8::is_ascii_digit) {
            *buffer.get_mut(len)? = digit;
            len += 1;
        }
        let digits = std::str::from_utf8(&buffer[..len]).ok()?;
        if international {
            if digits.starts_with('0') {
                return None;
            }
            // Country codes are prefix-free: at most one of 1, 2 or 3 digits is one.
            for split in 1..=3.min(digits.len()) {
                let Ok(code) = digits[..split].parse::<u16>() else {
                    continue;
                };
                let Some(regions) = DATABASE.region(&code) else {
                    continue;
                };
                // Codes shared by several regions need the library's region choice.
                // Non-geographic codes ("001") too.
                let [only] = regions.as_slice() else {
                    return None;
                };
                if *only == "001" {
                    return None;
                }
                let plan = plan_for(only)?;
                let national = &digits[split..];
                // The library applies the default region's prefix rules here too.
                let default = plan_for(region.as_ref())?;
                let valid = plan.is_valid(national) && !default.strips_prefix(national);
                return valid.then(|| {
                    let mut number = String::with_capacity(1 + digits.len());
                    number.push('+');
                    number.push_str(digits);
                    E164(number)
                });
            }
            return None;
        }
        let plan = plan_for(region.as_ref())?;
        // The library may read a leading country code into a national number.
        if digits.starts_with(plan.code_text.as_str()) {
            return None;
        }
        plan.is_valid(digits).then(|| {
            let mut number = String::with_capacity(1 + plan.code_text.len() + digits.len());
            number.push('+');
            number.push_str(&plan.code_text);
            number.push_str(digits);
            E164(number)
        })
    }
}

/// Numbers are personal data: `Debug` never shows them.
impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", crate::store::redact::Redacted(self.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cn() -> Region {
        Region::parse("CN").unwrap()
    }

    #[test]
    fn mobile_written_many_ways_is_one_number() {
        for written in [
            "13800138000",
            "138 0013 8000",
            "138-0013-8000",
            "+86 138 0013 8000",
            "+8613800138000",
            "(138) 0013-8000",
        ] {
            let number = E164::parse(written, cn()).unwrap();
            assert_eq!(number.as_str(), "+8613800138000", "{written}");
        }
    }

    #[test]
    fn landline_with_trunk_prefix() {
        let number = E164::parse("010 6552 9988", cn()).unwrap();
        assert_eq!(number.as_str(), "+861065529988");
    }

    #[test]
    fn letters_are_special_characters() {
        assert_eq!(
            E164::parse("1380013800O", cn()),
            Err(PhoneError::SpecialCharacters)
        );
        assert_eq!(
            E164::parse("138#0013", cn()),
            Err(PhoneError::SpecialCharacters)
        );
        assert_eq!(
            E164::parse("86+13800138000", cn()),
            Err(PhoneError::SpecialCharacters)
        );
    }

    #[test]
    fn short_and_long_numbers_are_wrong_length() {
        assert_eq!(E164::parse("138001", cn()), Err(PhoneError::WrongLength));
        assert_eq!(
            E164::parse("1380013800012345", cn()),
            Err(PhoneError::WrongLength)
        );
    }

    #[test]
    fn unassigned_prefix_is_invalid_for_region() {
        // Eleven digits like a mobile number, but no CN mobile range starts 140 or 160.
        assert_eq!(
            E164::parse("14012345678", cn()),
            Err(PhoneError::InvalidForRegion)
        );
        assert_eq!(
            E164::parse("16012345678", cn()),
            Err(PhoneError::InvalidForRegion)
        );
    }

    #[test]
    fn empty_is_missing() {
        assert_eq!(E164::parse("  ", cn()), Err(PhoneError::Missing));
    }

    /// A small, seeded pseudo-random sequence, the same on every run.
    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// The fast path and the library agree on every number the fast path accepts,
    /// across regions, prefixes and lengths.
    #[test]
    fn fast_path_agrees_with_the_library() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut accepted = 0;
        for region_code in [
            "CN", "US", "GB", "DE", "IT", "HK", "SG", "JP", "IN", "FR", "BR",
        ] {
            let region = Region::parse(region_code).unwrap();
            let metadata = phonenumber::metadata::DATABASE.by_id(region_code).unwrap();
            let examples: Vec<String> = [
                phonenumber::Type::Mobile,
                phonenumber::Type::FixedLine,
                phonenumber::Type::TollFree,
            ]
            .into_iter()
            .filter_map(|kind| {
                metadata
                    .descriptors()
                    .get(kind)?
                    .example()
                    .map(str::to_owned)
            })
            .collect();
            for _ in 0..1_500 {
                // Start from a real example and change a few digits, or make random digits.
                let mut digits: Vec<u8> = if next().is_multiple_of(4) {
                    (0..6 + next() % 8)
                        .map(|_| b'0' + (next() % 10) as u8)
                        .collect()
                } else {
                    examples[(next() % examples.len() as u64) as usize]
                        .clone()
                        .into_bytes()
                };
                for _ in 0..(next() % 4) {
                    let at = (next() % digits.len() as u64) as usize;
                    digits[at] = b'0' + (next() % 10) as u8;
                }
                let digits = String::from_utf8(digits).unwrap();
                let written = match next() % 4 {
                    0 => digits.clone(),
                    1 => format!("+{} {digits}", metadata.country_code()),
                    2 => format!("0{digits}"),
                    _ => format!("+{digits}"),
                };
                if let Some(fast) = plan::fast_valid(&written, region.0) {
                    accepted += 1;
                    assert_eq!(
                        Ok(fast),
                        E164::parse_with_library(&written, region),
                        "{written} in {region_code}"
                    );
                }
            }
        }
        assert!(accepted > 500, "the fast path took only {accepted} numbers");
    }

    /// Chinese mobile numbers in the styles spreadsheets hold, and near misses:
    /// the whole parse (fast path or library) answers exactly as the library does.
    #[test]
    fn cn_mobile_shapes_agree_with_the_library() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let region = cn();
        for _ in 0..20_000 {
            // Every second digit after the leading 1, lengths around eleven.
            let second = next() % 10;
            let len = [10, 11, 11, 11, 11, 12][(next() % 6) as usize];
            let mut digits = format!("1{second}");
            while digits.len() < len {
                digits.push(char::from(b'0' + (next() % 10) as u8));
            }
            let written = match next() % 6 {
                0 => digits.clone(),
                1 => format!("+86 {} {} {}", &digits[..3], &digits[3..7], &digits[7..]),
                2 => format!("{}-{}-{}", &digits[..3], &digits[3..7], &digits[7..]),
                3 => format!("+86{digits}"),
                4 => format!("86{digits}"),
                _ => format!("0{digits}"),
            };
            assert_eq!(
                E164::parse(&written, region),
                E164::parse_with_library(&written, region),
                "{written}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_number() {
        let number = E164::parse("13800138000", cn()).unwrap();
        assert!(!format!("{number:?}").contains("13800138000"));
    }

    #[test]
    fn stored_form_round_trips() {
        assert!(E164::from_stored("+8613800138000").is_some());
        assert!(E164::from_stored("8613800138000").is_none());
        assert!(E164::from_stored("+86abc").is_none());
    }
}
