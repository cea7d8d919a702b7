//! Personal data in logs: phone numbers and names go through [`Redacted`].

use std::fmt;

/// Shows only the last two characters of a value, so a log line can still be
/// matched to a record by an operator who holds the record.
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.chars().count();
        if count <= 2 {
            return f.write_str("**");
        }
        let tail: String = self.0.chars().skip(count - 2).collect();
        write!(f, "***{tail}")
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_two_characters() {
        assert_eq!(Redacted("+8613800138000").to_string(), "***00");
        assert_eq!(Redacted("张三丰").to_string(), "***三丰");
        assert_eq!(Redacted("ab").to_string(), "**");
    }
}
