//! A `.sym` source file as the front end sees it: a display name and its text.
//!
//! Spans are byte ranges ([`crate::ir::Span`], shared with the IR so that late passes can point
//! at the text); this module converts them to the line/column form miette renders.

use crate::ir::Span;

/// One source text with the name used in diagnostics (usually the path as the user typed it).
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        SourceFile { name: name.into(), text: text.into() }
    }

    /// 1-based line and column (in characters) of a byte offset, for plain-text messages.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        miette::SourceSpan::new(s.start.into(), s.end.saturating_sub(s.start))
    }
}

impl Span {
    /// A span covering both `self` and `other`.
    pub fn join(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
    /// An empty span at `at` (for "expected something here").
    pub fn point(at: usize) -> Span {
        Span { start: at, end: at }
    }
}
