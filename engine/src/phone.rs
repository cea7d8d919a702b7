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
        let number = phonenumber::parse(Some(region.0), written).map_err(|error| match error {
            phonenumber::ParseError::TooShortAfterIdd
            | phonenumber::ParseError::TooShortNsn
            | phonenumber::ParseError::TooLong
            | phonenumber::ParseError::NoNumber => PhoneError::WrongLength,
            phonenumber::ParseError::InvalidCountryCode
            | phonenumber::ParseError::MalformedInteger(_) => PhoneError::InvalidForRegion,
        })?;
        if number.is_valid() {
            return Ok(E164(
                number.format().mode(phonenumber::Mode::E164).to_string(),
            ));
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

/// Numbers are personal data: `Debug` never shows them.
impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", crate::redact::Redacted(self.as_str()))
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
