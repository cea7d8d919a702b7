//! Diagnostics: what went wrong, where, and how to fix it.

use std::fmt;

use ariadne::{Config, IndexType, Label, Report, ReportKind, Source};

use crate::ast::Span;

/// One error in a rules file: a lowercase message with user text in
/// backticks, the span it points at, and an optional help line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub span: Span,
    pub label: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            label: None,
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
}

/// Every error found in one file, in source order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics {
    pub file_name: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file_name: &str, mut items: Vec<Diagnostic>) -> Self {
        items.sort_by_key(|d| (d.span.start, d.span.end));
        items.dedup();
        Diagnostics {
            file_name: file_name.to_string(),
            items,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Renders every diagnostic with the source excerpt, in the style of
    /// `error: message` followed by `╭─[ FILE:LINE:COL ]`.
    pub fn render(&self, source: &str, color: bool) -> String {
        let mut out = Vec::new();
        let name = self.file_name.clone();
        for d in &self.items {
            let start = d.span.start.min(source.len());
            let end = d.span.end.clamp(start, source.len());
            let mut report = Report::build(ReportKind::Error, (name.clone(), start..end))
                .with_config(
                    Config::default()
                        .with_color(color)
                        .with_index_type(IndexType::Byte),
                )
                .with_message(&d.message)
                .with_label(
                    Label::new((name.clone(), start..end))
                        .with_message(d.label.clone().unwrap_or_else(|| "here".to_string())),
                );
            if let Some(help) = &d.help {
                report = report.with_help(help);
            }
            // Writing into a Vec cannot fail.
            let _ = report
                .finish()
                .write((name.clone(), Source::from(source)), &mut out);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// One line per error: `FILE:LINE:COL: error: message`.
    pub fn render_short(&self, source: &str) -> String {
        let mut out = String::new();
        for d in &self.items {
            let (line, col) = line_col(source, d.span.start);
            out.push_str(&format!(
                "{}:{}:{}: error: {}\n",
                self.file_name, line, col, d.message
            ));
            if let Some(help) = &d.help {
                out.push_str(&format!("  help: {help}\n"));
            }
        }
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            writeln!(
                f,
                "{}: error: {} (at byte {})",
                self.file_name, d.message, d.span.start
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let mut line = 1;
    let mut col = 1;
    for (i, c) in source.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// The candidate closest to `word` by edit distance, if close enough to be a
/// plausible typo.
/// Names listed for a help line: `` `a`, `b` ``.
pub fn listing(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(word, c);
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let limit = (word.chars().count() / 3).max(2);
    best.filter(|(d, _)| *d <= limit).map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
