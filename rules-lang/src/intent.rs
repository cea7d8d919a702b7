//! Intents: what a callee may say, declared as `intent NAME { zh "…" en "…" }`
//! blocks, and the matching of a transcript against the intents a `listen`
//! offers.
//!
//! Sans IO and without a recognizer: the text comes from whoever turned the
//! callee's speech into words, and this module only decides which intent, if
//! any, the words express.
//!
//! # Normalising
//!
//! A phrase and a transcript are both cut into tokens the same way:
//!
//! - every Han character becomes its toneless pinyin syllable (`退订` and
//!   `退訂` both become `tui ding`; homophones such as `订` and `定` become
//!   the same syllable), using the character's most common reading;
//! - hesitation sounds (`嗯`, `啊`, `呃`, `哦`, `唔`, `噢`, `诶`, `欸`) are
//!   dropped;
//! - runs of ASCII letters and digits become lowercase words (full-width
//!   forms count as ASCII), apostrophes are removed, and the common English
//!   contractions are spelled out (`don't` and `dont` become `do not`, `I'm`
//!   becomes `i am`, `can't` and `cannot` become `can not`);
//! - everything else (punctuation, spaces) only separates tokens.
//!
//! Phrases are normalised once, when the file is compiled; a transcript once
//! per event, however many intents it is matched against.
//!
//! # Scoring
//!
//! A phrase of `m` tokens is looked for anywhere inside the transcript, by
//! an edit distance in which the transcript's tokens before and after the
//! match cost nothing:
//!
//! | edit | cost |
//! | --- | --- |
//! | a token equal to the phrase's | 0 |
//! | a near token: syllables alike but for `zh`/`z`, `ch`/`c`, `sh`/`s`, `n`/`l` or a final `-ng`/`-n` (`shi`/`si`, `ling`/`nin`); words alike but for an ending `-s`, `-es`, `-ed` or `-ing` | 0.4 |
//! | a different token in the phrase's place | 1 |
//! | a phrase token missing from the transcript | 1 |
//! | an extra transcript token inside the match (`不太需要` for `不需要`) | 0.3 |
//!
//! The phrase's score is `1 - cost / m`, at least 0: 1 when the phrase is
//! found whole (`不需要` in `我不需要谢谢`). A missing token is dear, so
//! `需要` ("I need it") does not match `不需要` ("I don't need it"). An
//! intent's score is that of its best phrase, over the phrases of the
//! transcript's language when a language is given, else over all of them.
//! The confidence of a match is the score times the recognizer's own
//! confidence in the transcript (1 when it gives none).
//!
//! The intent with the highest confidence is chosen if that confidence is at
//! least the threshold ([`DEFAULT_THRESHOLD`], 0.75, unless the caller
//! gives another). On a tie the intent offered first wins: in a `listen`,
//! the `on intent` branch written first, as the rule written first wins a
//! tie of priorities. (Within one intent, of two phrases with the same
//! score the longer is reported.)

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use pinyin::ToPinyin;

use crate::ast;
use crate::diag::Diagnostic;

/// The lowest confidence at which an intent is taken, unless the caller
/// sets another.
pub const DEFAULT_THRESHOLD: f32 = 0.75;

/// Costs in tenths of a token.
const NEAR: u32 = 4;
const DIFFERENT: u32 = 10;
const MISSING: u32 = 10;
const EXTRA: u32 = 3;

/// The languages an intent's phrases can be given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    /// Mandarin, written in simplified or traditional characters.
    Zh,
    /// English.
    En,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::Zh, Language::En];

    /// The tag written before the phrases: `zh`, `en`.
    pub fn tag(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.tag() == tag)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// One compiled `intent` block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Intent {
    pub name: String,
    pub phrases: Vec<Phrase>,
}

/// One phrase of an intent, normalised when it was compiled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phrase {
    pub language: Language,
    /// The phrase as written.
    pub text: String,
    tokens: Vec<(Kind, Cow<'static, str>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Syllable,
    Word,
}

impl Phrase {
    pub fn new(language: Language, text: &str) -> Phrase {
        let u = Utterance::new(text);
        let tokens = u
            .src
            .iter()
            .map(|s| match s {
                Src::Static(k, t) => (*k, Cow::Borrowed(*t)),
                Src::Buf(k, r) => (
                    *k,
                    Cow::Owned(u.buf.get(r.clone()).unwrap_or("").to_owned()),
                ),
            })
            .collect();
        Phrase {
            language,
            text: text.to_owned(),
            tokens,
        }
    }

    /// The normalised tokens: pinyin syllables and lowercase words.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.tokens.iter().map(|(_, t)| t.as_ref())
    }

    /// Whether the phrase holds nothing to match (only punctuation, say).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The score of the phrase in `u`, 0 to 1 (see the module docs).
    pub fn score(&self, u: &Utterance) -> f32 {
        let mut row = Vec::new();
        self.score_with(u, &mut row)
    }

    fn score_with(&self, u: &Utterance, row: &mut Vec<u32>) -> f32 {
        let m = self.tokens.len();
        if m == 0 {
            return 0.0;
        }
        let n = u.src.len();
        // One row of the edit distance, over the transcript's tokens; the
        // first row is all zeros, so that the match may start anywhere.
        row.clear();
        row.resize(n + 1, 0);
        for (pk, pt) in &self.tokens {
            let mut diag = row[0];
            row[0] += MISSING;
            for j in 1..=n {
                let (uk, ut) = u.token(j - 1);
                let sub = diag + cost(*pk, pt, uk, ut);
                diag = row[j];
                row[j] = sub.min(row[j] + MISSING).min(row[j - 1] + EXTRA);
            }
        }
        let best = row.iter().copied().min().unwrap_or(u32::MAX);
        let whole = DIFFERENT as f32 * m as f32;
        (1.0 - best as f32 / whole).max(0.0)
    }
}

impl Intent {
    /// An intent of these phrases, each normalised now.
    pub fn new(name: &str, phrases: &[(Language, &str)]) -> Intent {
        Intent {
            name: name.to_owned(),
            phrases: phrases.iter().map(|(l, t)| Phrase::new(*l, t)).collect(),
        }
    }

    /// The intent's best phrase in `u` and its score, over the phrases of
    /// `language` when given.
    pub fn score(&self, u: &Utterance, language: Option<Language>) -> Option<(&Phrase, f32)> {
        let mut row = Vec::new();
        self.score_with(u, language, &mut row)
    }

    fn score_with(
        &self,
        u: &Utterance,
        language: Option<Language>,
        row: &mut Vec<u32>,
    ) -> Option<(&Phrase, f32)> {
        let mut best: Option<(&Phrase, f32)> = None;
        for p in &self.phrases {
            if language.is_some_and(|l| l != p.language) {
                continue;
            }
            let s = p.score_with(u, row);
            let better = match best {
                None => true,
                Some((bp, bs)) => s > bs || (s == bs && p.tokens.len() > bp.tokens.len()),
            };
            if better {
                best = Some((p, s));
            }
        }
        best
    }
}

/// The intent a transcript was taken for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntentMatch<'a> {
    pub intent: &'a Intent,
    /// The phrase that matched best.
    pub phrase: &'a Phrase,
    /// 0 to 1: the phrase's score times the recognizer's confidence.
    pub confidence: f32,
}

impl IntentMatch<'_> {
    pub fn name(&self) -> &str {
        &self.intent.name
    }
}

/// The intent among `intents` that `text` expresses best, if its
/// confidence reaches `threshold`; `recognizer` is the recognizer's own
/// confidence in the transcript, 0 to 1 (give 1 when it has none).
pub fn best<'a>(
    text: &str,
    language: Option<Language>,
    recognizer: f32,
    intents: impl IntoIterator<Item = &'a Intent>,
    threshold: f32,
) -> Option<IntentMatch<'a>> {
    best_in(
        &Utterance::new(text),
        language,
        recognizer,
        intents,
        threshold,
    )
}

/// [`best`] for a transcript already normalised.
pub fn best_in<'a>(
    u: &Utterance,
    language: Option<Language>,
    recognizer: f32,
    intents: impl IntoIterator<Item = &'a Intent>,
    threshold: f32,
) -> Option<IntentMatch<'a>> {
    let recognizer = if recognizer.is_nan() {
        0.0
    } else {
        recognizer.clamp(0.0, 1.0)
    };
    let mut row = Vec::new();
    let mut best: Option<IntentMatch<'a>> = None;
    for intent in intents {
        let Some((phrase, score)) = intent.score_with(u, language, &mut row) else {
            continue;
        };
        let confidence = score * recognizer;
        let better = best.as_ref().is_none_or(|b| confidence > b.confidence);
        if better {
            best = Some(IntentMatch {
                intent,
                phrase,
                confidence,
            });
        }
    }
    best.filter(|b| b.confidence > 0.0 && b.confidence >= threshold)
}

/// A transcript cut into tokens (see the module docs), ready to be matched
/// against any number of intents.
#[derive(Debug, Clone, Default)]
pub struct Utterance {
    /// The lowercase words, one after another.
    buf: String,
    src: Vec<Src>,
}

#[derive(Debug, Clone)]
enum Src {
    Static(Kind, &'static str),
    Buf(Kind, Range<usize>),
}

/// Sounds of hesitation, left out.
const FILLERS: &[char] = &['嗯', '啊', '呃', '哦', '唔', '噢', '诶', '欸'];

/// Contractions and their words, apostrophes already removed.
const CONTRACTIONS: &[(&str, &[&str])] = &[
    ("dont", &["do", "not"]),
    ("doesnt", &["does", "not"]),
    ("didnt", &["did", "not"]),
    ("cant", &["can", "not"]),
    ("cannot", &["can", "not"]),
    ("couldnt", &["could", "not"]),
    ("wont", &["will", "not"]),
    ("wouldnt", &["would", "not"]),
    ("shouldnt", &["should", "not"]),
    ("isnt", &["is", "not"]),
    ("arent", &["are", "not"]),
    ("wasnt", &["was", "not"]),
    ("werent", &["were", "not"]),
    ("havent", &["have", "not"]),
    ("hasnt", &["has", "not"]),
    ("im", &["i", "am"]),
    ("ive", &["i", "have"]),
    ("youre", &["you", "are"]),
    ("youve", &["you", "have"]),
    ("theyre", &["they", "are"]),
    ("its", &["it", "is"]),
    ("thats", &["that", "is"]),
    ("whats", &["what", "is"]),
    ("lets", &["let", "us"]),
];

impl Utterance {
    pub fn new(text: &str) -> Utterance {
        let mut u = Utterance {
            buf: String::with_capacity(text.len()),
            src: Vec::with_capacity(text.len() / 2),
        };
        let mut word: Option<usize> = None;
        for c in text.chars() {
            let c = fold_width(c);
            if c.is_ascii_alphanumeric() {
                if word.is_none() {
                    word = Some(u.buf.len());
                }
                u.buf.push(c.to_ascii_lowercase());
                continue;
            }
            if word.is_some() && matches!(c, '\'' | '\u{2019}') {
                continue;
            }
            if let Some(start) = word.take() {
                u.end_word(start);
            }
            if FILLERS.contains(&c) {
                continue;
            }
            if let Some(p) = c.to_pinyin() {
                u.src.push(Src::Static(Kind::Syllable, p.plain()));
            }
        }
        if let Some(start) = word {
            u.end_word(start);
        }
        u
    }

    fn end_word(&mut self, start: usize) {
        let w = self.buf.get(start..).unwrap_or("");
        if let Some((_, words)) = CONTRACTIONS.iter().find(|(c, _)| *c == w) {
            self.buf.truncate(start);
            for w in *words {
                self.src.push(Src::Static(Kind::Word, w));
            }
        } else {
            self.src.push(Src::Buf(Kind::Word, start..self.buf.len()));
        }
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.src.len()
    }

    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
    }

    /// The tokens, such as `wo bu xu yao` or `stop calling`.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        (0..self.src.len()).map(|i| self.token(i).1)
    }

    fn token(&self, i: usize) -> (Kind, &str) {
        match self.src.get(i) {
            Some(Src::Static(k, t)) => (*k, t),
            Some(Src::Buf(k, r)) => (*k, self.buf.get(r.clone()).unwrap_or("")),
            None => (Kind::Word, ""),
        }
    }
}

/// Full-width ASCII forms (`ＴＤ`, `１`) as ASCII.
fn fold_width(c: char) -> char {
    match u32::from(c) {
        v @ 0xFF01..=0xFF5E => char::from_u32(v - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

fn cost(pk: Kind, pt: &str, uk: Kind, ut: &str) -> u32 {
    if pk != uk {
        DIFFERENT
    } else if pt == ut {
        0
    } else if match pk {
        Kind::Syllable => loose_syllable(pt) == loose_syllable(ut),
        Kind::Word => stem(pt) == stem(ut),
    } {
        NEAR
    } else {
        DIFFERENT
    }
}

/// A syllable with the sounds often confused folded together: `zh`, `ch`,
/// `sh` as `z`, `c`, `s`; `l` as `n`; a final `ng` as `n`.
fn loose_syllable(s: &str) -> (u8, &str) {
    let b = s.as_bytes();
    let (initial, rest) = match b {
        [c @ (b'z' | b'c' | b's'), b'h', ..] => (*c, s.get(2..).unwrap_or("")),
        [b'l', ..] => (b'n', s.get(1..).unwrap_or("")),
        [c, ..] if !matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'v') => {
            (*c, s.get(1..).unwrap_or(""))
        }
        _ => (0, s),
    };
    let rest = match rest.strip_suffix('g') {
        Some(r) if r.ends_with('n') => r,
        _ => rest,
    };
    (initial, rest)
}

/// A word without an ending `-ing`, `-ed`, `-es` or `-s`.
fn stem(w: &str) -> &str {
    for suffix in ["ing", "ed", "es", "s"] {
        if let Some(s) = w.strip_suffix(suffix)
            && s.len() >= 2
        {
            return s;
        }
    }
    w
}

// ---- lowering ----

/// Language tags people write for the two languages, and which one they
/// mean.
const TAG_ALIASES: &[(&str, Language)] = &[
    ("cn", Language::Zh),
    ("zho", Language::Zh),
    ("chi", Language::Zh),
    ("cmn", Language::Zh),
    ("zh_cn", Language::Zh),
    ("zh_tw", Language::Zh),
    ("zh_hans", Language::Zh),
    ("zh_hant", Language::Zh),
    ("chinese", Language::Zh),
    ("mandarin", Language::Zh),
    ("eng", Language::En),
    ("en_us", Language::En),
    ("en_gb", Language::En),
    ("english", Language::En),
];

/// Checks and compiles the file's `intent` blocks: a name declared twice,
/// an unknown language, an empty phrase, an intent without phrases, a
/// phrase two intents share.
pub(crate) fn lower(decls: &[&ast::IntentDecl], errors: &mut Vec<Diagnostic>) -> Vec<Arc<Intent>> {
    let mut out: Vec<Arc<Intent>> = Vec::new();
    for d in decls {
        let name = &d.name.name;
        if out.iter().any(|i| i.name == *name) {
            errors.push(
                Diagnostic::new(
                    d.name.span.clone(),
                    format!("intent `{name}` is declared twice"),
                )
                .with_help("give each intent its own name, or merge their phrases into one block"),
            );
            continue;
        }
        let mut phrases: Vec<Phrase> = Vec::new();
        let mut written = 0;
        for l in &d.langs {
            let Some(language) = Language::from_tag(&l.tag.name) else {
                let tag = l.tag.name.to_lowercase();
                let meant = TAG_ALIASES
                    .iter()
                    .find(|(a, _)| *a == tag)
                    .map(|(_, l)| l.tag())
                    .or_else(|| Language::from_tag(&tag).map(|l| l.tag()));
                let help = match meant {
                    Some(m) => format!(
                        "did you mean `{m}`? phrases are given per language: `zh` (Mandarin) or `en` (English)"
                    ),
                    None => {
                        "phrases are given per language: `zh` (Mandarin) or `en` (English), such as `zh \"退订\"`".to_string()
                    }
                };
                errors.push(
                    Diagnostic::new(
                        l.tag.span.clone(),
                        format!("unknown language `{}`", l.tag.name),
                    )
                    .with_help(help),
                );
                continue;
            };
            for p in &l.phrases {
                written += 1;
                let phrase = Phrase::new(language, &p.text);
                if phrase.is_empty() {
                    let message = if p.text.trim().is_empty() {
                        format!("intent `{name}` has an empty phrase")
                    } else {
                        format!("phrase `{}` of intent `{name}` has no words", p.text)
                    };
                    errors.push(
                        Diagnostic::new(p.span.clone(), message)
                            .with_help("a phrase holds words a callee may say, such as `\"不需要\"` or `\"not interested\"`"),
                    );
                    continue;
                }
                if let Some(other) = out
                    .iter()
                    .find(|i| i.phrases.iter().any(|q| q.tokens == phrase.tokens))
                {
                    errors.push(
                        Diagnostic::new(
                            p.span.clone(),
                            format!(
                                "phrase `{}` of intent `{name}` is already a phrase of intent `{}`",
                                p.text, other.name
                            ),
                        )
                        .with_help(
                            "a phrase can stand for one intent only; keep it in one of them",
                        ),
                    );
                    continue;
                }
                if !phrases.iter().any(|q| q.tokens == phrase.tokens) {
                    phrases.push(phrase);
                }
            }
        }
        if written == 0
            && d.langs
                .iter()
                .all(|l| Language::from_tag(&l.tag.name).is_some())
        {
            errors.push(
                Diagnostic::new(d.name.span.clone(), format!("intent `{name}` has no phrases"))
                    .with_help(format!(
                        "give the words a callee may say, per language, such as `intent {name} {{ zh \"不需要\" en \"not interested\" }}`"
                    )),
            );
        }
        out.push(Arc::new(Intent {
            name: name.clone(),
            phrases,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<String> {
        Utterance::new(text).tokens().map(str::to_owned).collect()
    }

    #[test]
    fn mandarin_becomes_toneless_syllables() {
        assert_eq!(toks("退订"), ["tui", "ding"]);
        assert_eq!(toks("退訂！"), ["tui", "ding"]);
        assert_eq!(toks("嗯，我不需要"), ["wo", "bu", "xu", "yao"]);
        assert_eq!(toks("回复ＴＤ退订"), ["hui", "fu", "td", "tui", "ding"]);
    }

    #[test]
    fn english_becomes_lowercase_words() {
        assert_eq!(toks("Stop calling me!"), ["stop", "calling", "me"]);
        assert_eq!(toks("I don't want it"), ["i", "do", "not", "want", "it"]);
        assert_eq!(toks("I dont want it"), ["i", "do", "not", "want", "it"]);
        assert_eq!(toks("I’m busy"), ["i", "am", "busy"]);
    }

    #[test]
    fn scores() {
        let p = Phrase::new(Language::Zh, "不需要");
        assert_eq!(p.score(&Utterance::new("我不需要谢谢")), 1.0);
        // One extra syllable inside the match.
        let s = p.score(&Utterance::new("我不太需要"));
        assert!((s - 0.9).abs() < 1e-6, "{s}");
        // A missing syllable is dear: "I need it" is not "I don't".
        assert!(p.score(&Utterance::new("需要")) < DEFAULT_THRESHOLD);
        // Near syllables: z for zh.
        let p = Phrase::new(Language::Zh, "转人工");
        assert_eq!(p.score(&Utterance::new("帮我赚人工")), 1.0); // a homophone
        let s = p.score(&Utterance::new("帮我钻人工"));
        assert!(s > 0.85 && s < 1.0, "{s}");
        assert_eq!(
            Phrase::new(Language::En, "").score(&Utterance::new("x")),
            0.0
        );
    }

    #[test]
    fn loose_syllables() {
        assert_eq!(loose_syllable("zhuan"), loose_syllable("zuan"));
        assert_eq!(loose_syllable("ling"), loose_syllable("nin"));
        assert_eq!(loose_syllable("shi"), loose_syllable("si"));
        assert_ne!(loose_syllable("bu"), loose_syllable("pu"));
        assert_ne!(loose_syllable("an"), loose_syllable("en"));
        assert_eq!(loose_syllable("ang"), (0, "an"));
    }
}
