//! SMS templates, declared as `sms NAME { sender "ID"  text "TEMPLATE" }`,
//! and the SMS arithmetic the checker and the sender share: which coding a
//! text needs and in how many parts it goes out. The arithmetic is the SMPP
//! client's ([`dialhound_smpp::text`]): the checker counts a template's parts
//! as the client splits them.
//!
//! ```
//! use dialhound_rules::sms::{Coding, parts};
//! assert_eq!(parts("Your cart is waiting"), (Coding::Gsm7, 1));
//! assert_eq!(parts(&"好".repeat(71)), (Coding::Ucs2, 2));
//! ```

use crate::ast::{self, SmsFieldKind, Span};
use crate::diag::Diagnostic;
use crate::record::{Record, Schema};
use crate::script::{self, Part, Template};

pub use dialhound_smpp::text::{Coding, coding, parts};

/// The most parts a template's text may need at its shortest (each field
/// empty, `{link}` as [`LINK_LENGTH`] characters); a longer text is a
/// compile error. This is the language's default: an engine sending the
/// rendered text can hold it to a tighter limit of its own.
pub const MAX_SMS_PARTS: usize = 3;

/// The longest tracked short link the engine writes for `{link}`, in
/// characters: the parts check counts every `{link}` as this long.
pub const LINK_LENGTH: usize = 24;

/// The most characters of an alphanumeric sender id, such as `GOODSHOP`.
pub const MAX_ALPHANUMERIC_SENDER: usize = 11;

/// The most digits of a numeric sender id, such as `10690000` (a leading
/// `+` not counted).
pub const MAX_NUMERIC_SENDER: usize = 20;

/// The coding of `text` and its length in that coding's units: septets
/// (an extension character counts 2), or UTF-16 code units (a character
/// outside the Basic Multilingual Plane, such as most emoji, counts 2).
pub fn length(text: &str) -> (Coding, usize) {
    let coding = coding(text);
    (coding, dialhound_smpp::text::length(coding, text))
}

/// The name of `coding` as people write it: `GSM 7-bit` or `UCS-2`.
pub const fn coding_name(coding: Coding) -> &'static str {
    match coding {
        Coding::Gsm7 => "GSM 7-bit",
        Coding::Ucs2 => "UCS-2",
    }
}

/// The unit a length in `coding` is counted in, for diagnostics.
const fn units_word(coding: Coding) -> &'static str {
    match coding {
        Coding::Gsm7 => "GSM 7-bit septets",
        Coding::Ucs2 => "UCS-2 characters",
    }
}

/// One compiled `sms` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsTemplate {
    pub name: String,
    /// The sender id; `None` means the SMS provider's default sender.
    pub sender: Option<String>,
    /// The text, with `{customer.FIELD}` placeholders resolved to schema
    /// slots and `{link}` for the tracked short link.
    pub text: Template,
}

impl SmsTemplate {
    /// The text for the customer in `record` (with `schema`, the program's
    /// schema): fields rendered as a `say` renders them, every `{link}`
    /// replaced by `link`.
    pub fn render(&self, record: &Record, schema: &Schema, link: &str) -> String {
        self.text.render_with_link(record, schema, link)
    }

    /// The text at its shortest, as the parts check measures it: each field
    /// empty and each `{link}` as [`LINK_LENGTH`] characters.
    pub fn shortest_text(&self) -> String {
        shortest(&self.text)
    }
}

/// `text` with each field empty and each `{link}` as [`LINK_LENGTH`]
/// characters of the GSM alphabet, as a short link is written.
fn shortest(text: &Template) -> String {
    let mut out = String::new();
    for p in &text.parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Field { .. } => {}
            Part::Link => out.push_str(&"x".repeat(LINK_LENGTH)),
        }
    }
    out
}

// ---- lowering ----

/// Checks and compiles the file's `sms` blocks against the schema.
pub(crate) fn lower(
    decls: &[&ast::SmsDecl],
    schema: &Schema,
    errors: &mut Vec<Diagnostic>,
) -> Vec<SmsTemplate> {
    let mut out: Vec<SmsTemplate> = Vec::new();
    for d in decls {
        let name = &d.name.name;
        if out.iter().any(|s| s.name == *name) {
            errors.push(
                Diagnostic::new(
                    d.name.span.clone(),
                    format!("sms `{name}` is declared twice"),
                )
                .with_help("give each sms template its own name"),
            );
            continue;
        }
        let mut sender = None;
        let mut text = None;
        let mut seen: Vec<SmsFieldKind> = Vec::new();
        for f in &d.fields {
            if seen.contains(&f.kind) {
                errors.push(
                    Diagnostic::new(
                        f.span.clone(),
                        format!("sms `{name}` has more than one `{}`", f.kind.word()),
                    )
                    .with_help("keep one of them"),
                );
                continue;
            }
            seen.push(f.kind);
            match f.kind {
                SmsFieldKind::Sender => {
                    check_sender(name, &f.value, &f.value_span, errors);
                    sender = Some(f.value.clone());
                }
                SmsFieldKind::Text => {
                    text = Some(lower_text(name, &f.value, &f.value_span, schema, errors));
                }
            }
        }
        let Some(text) = text else {
            errors.push(
                Diagnostic::new(
                    d.span.start..d.name.span.end,
                    format!("sms `{name}` has no `text`"),
                )
                .with_help(
                    "add the message the customer receives, such as `text \"Your cart is waiting: {link}\"`",
                ),
            );
            continue;
        };
        out.push(SmsTemplate {
            name: name.clone(),
            sender,
            text,
        });
    }
    out
}

/// A sender id is not empty and fits the SMPP source address as carriers
/// use it: up to 11 characters when alphanumeric, up to 20 digits when
/// numeric.
fn check_sender(name: &str, sender: &str, span: &Span, errors: &mut Vec<Diagnostic>) {
    if sender.trim().is_empty() {
        errors.push(
            Diagnostic::new(span.clone(), format!("the sender id of sms `{name}` is empty"))
                .with_help(
                    "write the sender id, such as `sender \"GOODSHOP\"`, or leave the line out to use the SMS provider's default sender",
                ),
        );
        return;
    }
    let digits = sender.strip_prefix('+').unwrap_or(sender);
    let numeric = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
    let (count, max, help) = if numeric {
        let n = digits.chars().count();
        (
            n,
            MAX_NUMERIC_SENDER,
            format!(
                "a numeric sender id has at most {MAX_NUMERIC_SENDER} digits; this one has {n}"
            ),
        )
    } else {
        let n = sender.chars().count();
        (
            n,
            MAX_ALPHANUMERIC_SENDER,
            format!(
                "an alphanumeric sender id has at most {MAX_ALPHANUMERIC_SENDER} characters; this one has {n}"
            ),
        )
    };
    if count > max {
        errors.push(
            Diagnostic::new(span.clone(), format!("sender id `{sender}` is too long"))
                .with_help(help),
        );
    }
}

/// Lowers the text of sms `name` and checks it is not empty and fits
/// [`MAX_SMS_PARTS`] parts at its shortest.
fn lower_text(
    name: &str,
    value: &str,
    span: &Span,
    schema: &Schema,
    errors: &mut Vec<Diagnostic>,
) -> Template {
    if value.trim().is_empty() {
        errors.push(
            Diagnostic::new(span.clone(), format!("the text of sms `{name}` is empty"))
                .with_help(
                    "write the message the customer receives, such as `text \"Your cart is waiting: {link}\"`",
                ),
        );
    }
    let text = script::sms_text(value, span, schema, errors);
    let at_least = shortest(&text);
    let (coding, n) = parts(&at_least);
    if n > MAX_SMS_PARTS {
        let (_, len) = length(&at_least);
        let per = coding.per_part();
        errors.push(
            Diagnostic::new(
                span.clone(),
                format!("the text of sms `{name}` needs {n} parts, more than {MAX_SMS_PARTS}"),
            )
            .with_help(format!(
                "at its shortest (each field empty, `{{link}}` as {LINK_LENGTH} characters) it is {len} {}, and {MAX_SMS_PARTS} parts hold at most {} ({per} each); shorten the text",
                units_word(coding),
                per * MAX_SMS_PARTS,
            )),
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_ucs2_with_70_then_67_a_part() {
        let zh = |n: usize| "好".repeat(n);
        assert_eq!(parts(&zh(1)), (Coding::Ucs2, 1));
        assert_eq!(parts(&zh(70)), (Coding::Ucs2, 1));
        assert_eq!(parts(&zh(71)), (Coding::Ucs2, 2));
        assert_eq!(parts(&zh(134)), (Coding::Ucs2, 2));
        assert_eq!(parts(&zh(135)), (Coding::Ucs2, 3));
        assert_eq!(parts(&zh(201)), (Coding::Ucs2, 3));
        assert_eq!(parts(&zh(202)), (Coding::Ucs2, 4));
        // One Chinese character makes a Latin text UCS-2.
        let mixed = format!("{}好", "a".repeat(69));
        assert_eq!(parts(&mixed), (Coding::Ucs2, 1));
        assert_eq!(parts(&format!("a{mixed}")), (Coding::Ucs2, 2));
    }

    #[test]
    fn gsm_text_is_160_then_153_a_part() {
        let a = |n: usize| "a".repeat(n);
        assert_eq!(parts(""), (Coding::Gsm7, 1));
        assert_eq!(parts(&a(160)), (Coding::Gsm7, 1));
        assert_eq!(parts(&a(161)), (Coding::Gsm7, 2));
        assert_eq!(parts(&a(306)), (Coding::Gsm7, 2));
        assert_eq!(parts(&a(307)), (Coding::Gsm7, 3));
        assert_eq!(
            parts("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà"),
            (Coding::Gsm7, 1)
        );
    }

    #[test]
    fn extension_characters_take_two_septets() {
        assert_eq!(length("€"), (Coding::Gsm7, 2));
        assert_eq!(length("[x]"), (Coding::Gsm7, 5));
        assert_eq!(length("^{}\\~|"), (Coding::Gsm7, 12));
        let euros = |n: usize| "€".repeat(n);
        assert_eq!(parts(&euros(80)), (Coding::Gsm7, 1));
        assert_eq!(parts(&euros(81)), (Coding::Gsm7, 2));
        assert_eq!(parts(&format!("{}[", "a".repeat(159))), (Coding::Gsm7, 2));
        // 306 septets fill two parts exactly, but the `€` does not fit at
        // the end of the first, so it opens the second and a third follows.
        let a = "a".repeat(152);
        assert_eq!(length(&format!("{a}€{a}")), (Coding::Gsm7, 306));
        assert_eq!(parts(&format!("{a}€{a}")), (Coding::Gsm7, 3));
        assert_eq!(parts(&format!("{a}a{a}a")), (Coding::Gsm7, 2));
    }

    #[test]
    fn characters_outside_the_bmp_count_two_utf16_units() {
        assert_eq!(length("😀"), (Coding::Ucs2, 2));
        assert_eq!(length("好😀"), (Coding::Ucs2, 3));
        assert_eq!(parts(&"😀".repeat(35)), (Coding::Ucs2, 1));
        assert_eq!(parts(&"😀".repeat(36)), (Coding::Ucs2, 2));
        // 33 pairs fill 66 units of the first part; the 34th does not split.
        assert_eq!(parts(&"😀".repeat(67)), (Coding::Ucs2, 3));
    }

    #[test]
    fn lowercase_accents_outside_the_alphabet_need_ucs2() {
        // `ç` and `á` have no septet (only `Ç` and `à` do).
        assert_eq!(coding("ç"), Coding::Ucs2);
        assert_eq!(coding("á"), Coding::Ucs2);
        assert_eq!(coding("Ç à"), Coding::Gsm7);
    }
}
