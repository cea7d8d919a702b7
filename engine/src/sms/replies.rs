//! Replies from phones: which ones ask never to be contacted again.

/// True when `text`, trimmed of spaces and punctuation at either end and
/// compared in any case for Latin letters, is one of `words` (`TD`, `退订`).
/// A longer reply that merely contains such a word is not an opt-out: "T"
/// inside a sentence is not a request.
pub fn is_opt_out(text: &str, words: &[String]) -> bool {
    let trimmed = text.trim_matches(|c: char| {
        c.is_whitespace() || c.is_ascii_punctuation() || "，。！？、「」".contains(c)
    });
    if trimmed.is_empty() {
        return false;
    }
    let reply = trimmed.to_uppercase();
    words.iter().any(|word| word.trim().to_uppercase() == reply)
}

/// An MO's source address as E.164: SMS centers send it with or without
/// the `+`.
pub fn e164(from: &str) -> Option<String> {
    let digits = from.strip_prefix('+').unwrap_or(from);
    (!digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> Vec<String> {
        ["TD", "T", "STOP", "退订"].map(str::to_owned).to_vec()
    }

    #[test]
    fn the_opt_out_words_in_any_case_and_with_punctuation_opt_out() {
        for reply in ["TD", "td", " Td ", "stop!", "退订", "退订。", "t"] {
            assert!(is_opt_out(reply, &words()), "{reply:?}");
        }
    }

    #[test]
    fn other_replies_do_not() {
        for reply in ["", "  ", "好的", "TDD", "what is T", "请不要退订我的会员"] {
            assert!(!is_opt_out(reply, &words()), "{reply:?}");
        }
    }

    #[test]
    fn source_addresses_become_e164() {
        assert_eq!(e164("8613800138000").as_deref(), Some("+8613800138000"));
        assert_eq!(e164("+8613800138000").as_deref(), Some("+8613800138000"));
        assert_eq!(e164("GOODSHOP"), None);
        assert_eq!(e164(""), None);
    }
}
