//! Diagnostics of the front end: one [`Problem`] per user mistake, collected into
//! [`Diagnostics`] so that a run reports every problem in a file at once.
//!
//! Every problem has a stable code from [`Code`] (the registry below: `symc::syntax::*` for
//! the text, `symc::sema::*` for the meaning), a primary label on the exact span, and usually a
//! help line. Codes are part of the user interface: scripts and tests match on them, so a code
//! is never renamed once released.

use crate::ir::Span;
use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};
use std::fmt;

macro_rules! codes {
    ($($variant:ident => $code:literal, $doc:literal;)*) => {
        /// The registry of diagnostic codes. `as_str` is the stable, user-visible code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Code {
            $(#[doc = $doc] $variant,)*
        }
        impl Code {
            /// The stable code string shown to users, e.g. `symc::sema::shape_mismatch`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }
            /// Every code, for documentation and tests.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];
        }
    };
}

codes! {
    NotUtf8 => "symc::syntax::not_utf8", "The file is not valid UTF-8.";
    NulByte => "symc::syntax::nul_byte", "The file contains a NUL byte.";
    LineTooLong => "symc::syntax::line_too_long", "A line exceeds the length limit.";
    FileTooLarge => "symc::syntax::file_too_large", "The file exceeds the size limit.";
    UnterminatedComment => "symc::syntax::unterminated_comment", "A `/*` comment is never closed.";
    UnterminatedString => "symc::syntax::unterminated_string", "A string literal is not closed on its line.";
    UnclosedBracket => "symc::syntax::unclosed_bracket", "An opening bracket is never closed.";
    MismatchedBracket => "symc::syntax::mismatched_bracket", "A closing bracket does not match the open one.";
    NestingTooDeep => "symc::syntax::nesting_too_deep", "Brackets nest deeper than the limit.";
    Unexpected => "symc::syntax::unexpected", "The parser found something it did not expect.";
    IntegerOverflow => "symc::syntax::integer_overflow", "An integer literal does not fit in 64 bits.";
    BadNumber => "symc::syntax::bad_number", "A number literal is not finite.";
    Empty => "symc::sema::empty", "The file holds no network.";
    DuplicateNetwork => "symc::sema::duplicate_network", "More than one network in one file.";
    UnknownNetwork => "symc::sema::unknown_network", "A train block names a network that does not exist.";
    DuplicateTrain => "symc::sema::duplicate_train", "More than one train block for a network.";
    DuplicateName => "symc::sema::duplicate_name", "Two things share one name.";
    DuplicateDecl => "symc::sema::duplicate_declaration", "A declaration appears twice.";
    MissingInput => "symc::sema::missing_input", "The network has no input.";
    MisplacedDecl => "symc::sema::misplaced_declaration", "A declaration appears in the wrong place.";
    UnknownType => "symc::sema::unknown_type", "An unknown value type.";
    UnknownLayer => "symc::sema::unknown_layer", "An unknown layer or activation.";
    UnknownSymmetry => "symc::sema::unknown_symmetry", "An unknown symmetry.";
    UnknownArgument => "symc::sema::unknown_argument", "An argument the call does not take.";
    MissingArgument => "symc::sema::missing_argument", "A required argument is missing.";
    DuplicateArgument => "symc::sema::duplicate_argument", "An argument is given twice.";
    BadArgument => "symc::sema::bad_argument", "An argument has the wrong kind of value.";
    ZeroSize => "symc::sema::zero_size", "A size, extent or count is zero or negative.";
    SizeOverflow => "symc::sema::size_overflow", "A derived size does not fit in memory arithmetic.";
    ShapeMismatch => "symc::sema::shape_mismatch", "Consecutive layers disagree on a shape.";
    WindowTooLarge => "symc::sema::window_too_large", "A window is larger than the image.";
    TooMuchMemory => "symc::sema::too_much_memory", "A layer needs more memory than the machine has.";
    BadSymmetry => "symc::sema::bad_symmetry", "The declared symmetry does not fit the input.";
    MissingLattice => "symc::sema::missing_lattice", "A fermion input without a lattice.";
    ZeroExtent => "symc::sema::zero_extent", "A lattice extent is zero.";
    HopsTooLong => "symc::sema::hops_too_long", "Paths longer than the lattice allows.";
    TooManyPaths => "symc::sema::too_many_paths", "A path set is too large.";
    BadPath => "symc::sema::bad_path", "A path is malformed for this lattice.";
    BreaksGauge => "symc::sema::breaks_gauge_symmetry", "An operation breaks the declared gauge symmetry.";
    NotReal => "symc::sema::needs_real_value", "An operation needs a real value.";
    NotFermion => "symc::sema::needs_fermion_value", "An operation needs a fermion value.";
    OutputMismatch => "symc::sema::output_mismatch", "The output declaration disagrees with the network.";
    MissingOutput => "symc::sema::missing_output", "The network has no output declaration.";
    AfterOutput => "symc::sema::after_output", "A layer follows the output declaration.";
    ResidualMismatch => "symc::sema::residual_mismatch", "A residual body changes the value's type.";
    BadLevel => "symc::sema::bad_level", "A multigrid level is misplaced or does not fit the network.";
    BadBlocks => "symc::sema::bad_blocks", "Multigrid blocks do not tile the lattice.";
    BasisTooLarge => "symc::sema::basis_too_large", "More basis vectors than a block has degrees of freedom.";
    CoarseModel => "symc::sema::coarse_model", "A level's body is not a coarse model.";
    UnknownSetting => "symc::sema::unknown_setting", "An unknown train setting.";
    DuplicateSetting => "symc::sema::duplicate_setting", "A train setting is given twice.";
    TrainConflict => "symc::sema::train_conflict", "Train settings contradict each other or the network.";
    MissingSetting => "symc::sema::missing_setting", "A train setting the network needs is missing.";
}

impl Code {
    /// The help shown when a problem carries no more specific one, so that every diagnostic
    /// tells the user where to go next.
    pub fn default_help(self) -> &'static str {
        match self {
            Code::DuplicateArgument => "give each argument once",
            Code::DuplicateSetting => "give each setting once; remove one of them",
            Code::DuplicateTrain => "a network has one train block; merge them",
            Code::MismatchedBracket => "brackets close in the reverse order of opening",
            Code::BadArgument | Code::UnknownArgument => {
                "docs/language.md lists the arguments of every layer and setting"
            }
            _ => "docs/language.md summarises the .sym language",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One user mistake: what is wrong, where (primary label, plus optional secondary labels),
/// and what to do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub code: Code,
    pub message: String,
    pub span: Span,
    pub label: String,
    pub help: Option<String>,
    /// Further spans worth pointing at (e.g. the first definition of a duplicate name).
    pub notes: Vec<(Span, String)>,
}

impl Problem {
    pub fn new(
        code: Code,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Problem {
            code,
            message: message.into(),
            span,
            label: label.into(),
            help: None,
            notes: Vec::new(),
        }
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn note(mut self, span: Span, label: impl Into<String>) -> Self {
        self.notes.push((span, label.into()));
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code.as_str()))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match &self.help {
            Some(h) => Some(Box::new(h)),
            None => Some(Box::new(self.code.default_help())),
        }
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = LabeledSpan::new_primary_with_span(Some(self.label.clone()), self.span);
        let notes = self.notes.iter().map(|(s, l)| LabeledSpan::new_with_span(Some(l.clone()), *s));
        Some(Box::new(std::iter::once(primary).chain(notes)))
    }
}

/// All problems found in one source file, rendered as one report.
#[derive(Debug)]
pub struct Diagnostics {
    pub source: NamedSource<String>,
    pub problems: Vec<Problem>,
}

impl Diagnostics {
    pub fn new(name: &str, text: &str, problems: Vec<Problem>) -> Self {
        Diagnostics { source: NamedSource::new(name, text.to_string()), problems }
    }
    /// The codes of all problems, in report order (handy in tests).
    pub fn codes(&self) -> Vec<&'static str> {
        self.problems.iter().map(|p| p.code.as_str()).collect()
    }
    /// With one problem the report is that problem; with several, a summary line with each
    /// problem rendered below it.
    fn single(&self) -> Option<&Problem> {
        match self.problems.as_slice() {
            [p] => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.single() {
            Some(p) => p.fmt(f),
            None => write!(f, "{} problems in {}", self.problems.len(), self.source.name()),
        }
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostic for Diagnostics {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.single().and_then(|p| p.code())
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.single().and_then(|p| p.help())
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.single().and_then(|p| p.labels())
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        match self.single() {
            Some(_) => None,
            None => Some(Box::new(self.problems.iter().map(|p| p as &dyn Diagnostic))),
        }
    }
}

/// Render a diagnostic as plain, colour-free, fixed-width text (snapshot tests, logs).
pub fn render_plain(diagnostic: &dyn Diagnostic) -> String {
    let mut out = String::new();
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100)
            .with_links(false);
    match handler.render_report(&mut out, diagnostic) {
        Ok(()) => out,
        Err(_) => format!("{diagnostic}"),
    }
}
