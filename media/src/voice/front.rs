//! The text front end of the Baker voice: Mandarin text to the symbol ids
//! its acoustic model reads.
//!
//! It follows the voice's own front end (TensorFlowTTS's Baker processor):
//! the text is split after `、，。！？` into pieces spoken with 0.2 s of
//! silence between them; each piece is `sil`, then for every Chinese
//! character its initial and its final with the tone number (`n`, `in2`),
//! `#0` between characters, then `sil` and the end-of-sequence id. Readings
//! come from [`mandarin::syllables`] after [`mandarin::normalize`], so
//! numbers, amounts, dates and phone numbers are read out. Where this front
//! end differs from the original:
//!
//! - it also splits after the ASCII and full-width marks `,!?;；`, which the
//!   original passes over;
//! - other punctuation inside a piece (`：`, `…`, dashes, brackets and
//!   quotes) turns the `#0` before the next character into the phrase pause
//!   `#3`, where the original ignores it;
//! - a piece of more than [`MAX_SYLLABLES`] characters is split in two;
//! - readings are the `pinyin` crate's, one per character, where the
//!   original asks pypinyin, which knows phrases: a polyphonic character
//!   (`行` in `银行`) or a neutral tone that only a word has (`先生`) can be
//!   read differently.
//!
//! Latin letters, digits left in Latin words and any other character are
//! skipped, as in the original; a syllable the table does not know is
//! skipped too.

use std::collections::HashMap;

use crate::mandarin;

/// The most characters one piece holds; a longer run without a pause is
/// spoken as several pieces.
pub const MAX_SYLLABLES: usize = 48;

/// Marks a piece ends after.
const PIECE_ENDS: [char; 10] = ['、', '，', '。', '！', '？', '；', ',', '!', '?', ';'];

/// Marks that make a phrase pause inside a piece.
const PHRASE_PAUSES: [char; 20] = [
    '：', ':', '…', '—', '～', '（', '）', '(', ')', '《', '》', '「', '」', '“', '”', '‘', '’',
    '【', '】', '.',
];

/// A symbol table that does not fit the voice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Shape(String),
    #[error("symbol `{0}` is not in the symbol table")]
    MissingSymbol(String),
}

/// Text to symbol ids for the Baker voice.
#[derive(Debug, Clone)]
pub struct FrontEnd {
    symbol_ids: HashMap<String, i32>,
    /// Toneless syllable → (initial, final without tone).
    syllables: HashMap<String, (String, String)>,
    silence: i32,
    word: i32,
    phrase: i32,
    end: i32,
}

impl FrontEnd {
    /// From the voice's `baker_mapper.json` (its `symbol_to_id` object) and
    /// the syllable table, a JSON object of `"syllable": ["initial",
    /// "final"]`.
    pub fn from_json(mapper: &str, syllable_table: &str) -> Result<FrontEnd, TableError> {
        let json = |text: &str| {
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|error| TableError::Json(error.to_string()))
        };
        let mapper = json(mapper)?;
        let symbols = mapper
            .get("symbol_to_id")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| TableError::Shape("no `symbol_to_id` object".into()))?;
        let mut symbol_ids = HashMap::with_capacity(symbols.len());
        for (symbol, id) in symbols {
            let id = id
                .as_i64()
                .and_then(|id| i32::try_from(id).ok())
                .ok_or_else(|| TableError::Shape(format!("symbol `{symbol}` has no integer id")))?;
            symbol_ids.insert(symbol.clone(), id);
        }
        let table = json(syllable_table)?;
        let table = table
            .as_object()
            .ok_or_else(|| TableError::Shape("the syllable table is not an object".into()))?;
        let mut syllables = HashMap::with_capacity(table.len());
        for (syllable, parts) in table {
            let parts = parts.as_array().map(Vec::as_slice);
            let Some(
                [
                    serde_json::Value::String(initial),
                    serde_json::Value::String(last),
                ],
            ) = parts
            else {
                return Err(TableError::Shape(format!(
                    "syllable `{syllable}` is not an [initial, final] pair"
                )));
            };
            syllables.insert(syllable.clone(), (initial.clone(), last.clone()));
        }
        let id = |symbol: &str| {
            symbol_ids
                .get(symbol)
                .copied()
                .ok_or_else(|| TableError::MissingSymbol(symbol.into()))
        };
        Ok(FrontEnd {
            silence: id("sil")?,
            word: id("#0")?,
            phrase: id("#3")?,
            end: id("eos")?,
            symbol_ids,
            syllables,
        })
    }

    /// The symbol ids of each piece of `text`, in order; pieces with no
    /// character to say are left out, so text with no Chinese character
    /// gives none.
    pub fn pieces(&self, text: &str) -> Vec<Vec<i32>> {
        let normalized = mandarin::normalize(text);
        let mut pieces = Vec::new();
        let mut piece = Piece::new(self);
        for (c, reading) in mandarin::syllables(&normalized) {
            if let Some(ids) = reading.as_deref().and_then(|s| self.syllable_ids(s)) {
                if piece.syllables == MAX_SYLLABLES {
                    pieces.extend(piece.finish(self));
                    piece = Piece::new(self);
                }
                piece.push(ids);
            } else if PIECE_ENDS.contains(&c) {
                pieces.extend(piece.finish(self));
                piece = Piece::new(self);
            } else if PHRASE_PAUSES.contains(&c) {
                piece.pause(self.phrase);
            }
        }
        pieces.extend(piece.finish(self));
        pieces
    }

    /// The initial and toned final of a numbered syllable such as `nin2`.
    fn syllable_ids(&self, syllable: &str) -> Option<[i32; 2]> {
        let tone = syllable
            .chars()
            .last()
            .filter(|c| ('1'..='5').contains(c))?;
        let toneless = syllable[..syllable.len() - 1].replace('ü', "v");
        // `嗯` is `n` in pinyin; the voice says it as `en`.
        let toneless = if toneless == "n" {
            "en".to_owned()
        } else {
            toneless
        };
        let (initial, last) = self.syllables.get(&toneless)?;
        let initial = *self.symbol_ids.get(initial)?;
        let last = *self.symbol_ids.get(&format!("{last}{tone}"))?;
        Some([initial, last])
    }
}

/// A piece being built.
struct Piece {
    ids: Vec<i32>,
    syllables: usize,
    /// The pause due before the next character, once there is one.
    pending: Option<i32>,
    word: i32,
}

impl Piece {
    fn new(front: &FrontEnd) -> Piece {
        Piece {
            ids: vec![front.silence],
            syllables: 0,
            pending: None,
            word: front.word,
        }
    }

    fn push(&mut self, [initial, last]: [i32; 2]) {
        if let Some(pause) = self.pending.take() {
            self.ids.push(pause);
        }
        self.ids.extend([initial, last]);
        self.syllables += 1;
        self.pending = Some(self.word);
    }

    fn pause(&mut self, pause: i32) {
        if self.pending.is_some() {
            self.pending = Some(pause);
        }
    }

    fn finish(mut self, front: &FrontEnd) -> Option<Vec<i32>> {
        if self.syllables == 0 {
            return None;
        }
        self.ids.extend([front.silence, front.end]);
        Some(self.ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table with the few symbols the tests use.
    fn front_end() -> FrontEnd {
        let mapper = r##"{"symbol_to_id": {"pad": 0, "sil": 1, "#0": 2, "#3": 5, "^": 6,
            "h": 13, "n": 18, "ao3": 50, "in2": 119, "en5": 72, "v3": 200, "eos": 218}}"##;
        let table = r#"{"hao": ["h", "ao"], "nin": ["n", "in"], "en": ["^", "en"],
            "nv": ["n", "v"]}"#;
        match FrontEnd::from_json(mapper, table) {
            Ok(front) => front,
            Err(error) => panic!("test table: {error}"),
        }
    }

    #[test]
    fn characters_become_initials_and_finals_between_silences() {
        let front = front_end();
        assert_eq!(front.pieces("您好"), [vec![1, 18, 119, 2, 13, 50, 1, 218]]);
        assert_eq!(front.pieces("女"), [vec![1, 18, 200, 1, 218]]);
    }

    #[test]
    fn pieces_end_at_pauses_and_empty_ones_are_dropped() {
        let front = front_end();
        let one = vec![1, 18, 119, 2, 13, 50, 1, 218];
        assert_eq!(front.pieces("您好，您好！"), [one.clone(), one.clone()]);
        assert_eq!(front.pieces("，，您好,"), [one]);
        assert!(front.pieces("VIP abc").is_empty());
        assert!(front.pieces("").is_empty());
    }

    #[test]
    fn other_punctuation_is_a_phrase_pause_and_latin_is_skipped() {
        let front = front_end();
        assert_eq!(
            front.pieces("您：好"),
            [vec![1, 18, 119, 5, 13, 50, 1, 218]]
        );
        assert_eq!(
            front.pieces("您VIP好"),
            [vec![1, 18, 119, 2, 13, 50, 1, 218]]
        );
        assert_eq!(
            front.pieces("您好："),
            [vec![1, 18, 119, 2, 13, 50, 1, 218]]
        );
    }

    #[test]
    fn long_runs_are_split() {
        let front = front_end();
        let text = "您".repeat(MAX_SYLLABLES + 1);
        let pieces = front.pieces(&text);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].len(), 1 + MAX_SYLLABLES * 3 - 1 + 2);
        assert_eq!(pieces[1], [1, 18, 119, 1, 218]);
    }

    #[test]
    fn malformed_tables_are_errors() {
        assert!(matches!(
            FrontEnd::from_json("[", "{}"),
            Err(TableError::Json(_))
        ));
        assert!(matches!(
            FrontEnd::from_json(r#"{"symbol_to_id": {"sil": 1}}"#, "{}"),
            Err(TableError::MissingSymbol(_))
        ));
        assert!(matches!(
            FrontEnd::from_json(r#"{"symbol_to_id": {}}"#, r#"{"a": 1}"#),
            Err(TableError::Shape(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_text_gives_well_formed_pieces(text in "\\PC{0,80}") {
            let front = front_end();
            for piece in front.pieces(&text) {
                proptest::prop_assert_eq!(piece.first(), Some(&1));
                proptest::prop_assert_eq!(&piece[piece.len() - 2..], &[1, 218]);
                proptest::prop_assert!(piece.len() <= 1 + MAX_SYLLABLES * 3 + 2);
            }
        }
    }
}
