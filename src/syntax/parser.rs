//! pest parser for `grammar/sym.pest` and the lowering of its parse tree to the AST: one
//! `lower_<rule>` function per grammar rule. `Pair` and `Rule` never leave this file.

use super::ast::*;
use crate::diagnostics::{Code, Problem};
use crate::ir::Span;
use pest::Parser as _;
use pest::iterators::Pair;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/sym.pest"]
struct SymParser;

/// Parse a whole file. Syntax errors stop at the first one (pest does not recover); literal
/// errors found while lowering (integer overflow, ...) are all collected.
pub fn parse_file(text: &str) -> Result<Model, Vec<Problem>> {
    let mut pairs = SymParser::parse(Rule::file, text).map_err(|e| vec![syntax_error(e, text)])?;
    let mut lower = Lower { problems: Vec::new() };
    let mut model = Model::default();
    if let Some(file) = pairs.next() {
        for item in file.into_inner() {
            match item.as_rule() {
                Rule::network => model.networks.push(lower.network(item)),
                Rule::train => model.trains.push(lower.train(item)),
                _ => {}
            }
        }
    }
    if lower.problems.is_empty() { Ok(model) } else { Err(lower.problems) }
}

fn span(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    Span { start: s.start(), end: s.start() + content_end(s.as_str()) }
}

/// pest includes the whitespace and comments skipped before an optional part that turned
/// out to be absent (`relu` followed by a newline); labels must end at the last real token.
fn content_end(text: &str) -> usize {
    let b = text.as_bytes();
    let (mut i, mut last) = (0, 0);
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            i = text[i..].find('\n').map_or(b.len(), |n| i + n);
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i = text[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
        } else if b[i] == b'"' {
            i = text[i + 1..].find('"').map_or(b.len(), |n| i + 1 + n + 1);
            last = i;
        } else if b[i].is_ascii_whitespace() {
            i += 1;
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            last = i;
        }
    }
    last
}

/// The words users see instead of rule names.
fn phrase(rule: &Rule) -> String {
    match rule {
        Rule::EOI => "end of file",
        Rule::file | Rule::item => "`network` or `train`",
        Rule::network | Rule::kw_network => "`network`",
        Rule::train | Rule::kw_train => "`train`",
        Rule::kw_input | Rule::input_decl => "`input`",
        Rule::kw_output | Rule::output_decl => "`output`",
        Rule::kw_lattice | Rule::lattice_decl => "`lattice`",
        Rule::kw_symmetry | Rule::symmetry_decl => "`symmetry`",
        Rule::kw_residual | Rule::residual => "`residual`",
        Rule::kw_level | Rule::level => "`level`",
        Rule::stmt => "a statement",
        Rule::ident | Rule::label | Rule::ident_char => "a name",
        Rule::type_expr => "a type such as `real[1, 28, 28]` or `fermion`",
        Rule::dims => "dimensions in brackets",
        Rule::lattice_sep => "`x`",
        Rule::op | Rule::call => "a layer such as `linear(...)` or `relu`",
        Rule::args => "an argument list",
        Rule::arg | Rule::named => "an argument",
        Rule::value => "a value",
        Rule::features => "features `IN -> OUT`",
        Rule::range => "a range `A..B`",
        Rule::path | Rule::step => "a path such as `+x` or `-t`",
        Rule::number => "a number",
        Rule::int => "an integer",
        Rule::string | Rule::string_body => "a string",
        Rule::list => "a list `[...]`",
        Rule::setting => "a train setting such as `batch 64`",
        Rule::WHITESPACE | Rule::COMMENT => "whitespace",
    }
    .to_string()
}

fn syntax_error(e: pest::error::Error<Rule>, text: &str) -> Problem {
    let at = match e.location {
        pest::error::InputLocation::Pos(p) => Span::point(p),
        pest::error::InputLocation::Span((s, t)) => Span { start: s, end: t },
    };
    let found = found_at(text, at.start);
    let message = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, negatives } => {
            const VALUES: &[Rule] = &[
                Rule::features,
                Rule::range,
                Rule::path,
                Rule::number,
                Rule::string,
                Rule::list,
                Rule::call,
                Rule::int,
            ];
            let values = positives.iter().filter(|r| VALUES.contains(r)).count();
            let mut pos: Vec<String> = positives
                .iter()
                .filter(|r| values < 3 || !VALUES.contains(r))
                .map(phrase)
                .collect();
            if values >= 3 {
                pos.push("a value (a number, a name, a string, a list, ...)".into());
            }
            pos.sort();
            pos.dedup();
            let neg: Vec<String> = negatives.iter().map(phrase).collect();
            match pos.len() {
                0 if !neg.is_empty() => format!("unexpected {}", neg.join(", ")),
                0 => "unexpected input".to_string(),
                1 => format!("expected {}", pos[0]),
                n => format!("expected {} or {}", pos[..n - 1].join(", "), pos[n - 1]),
            }
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    let help = if message.contains("`network` or `train`") {
        "a .sym file holds a `network NAME { ... }` block and optionally a `train NAME { ... }` block"
    } else if message.contains("`input`") {
        "a network holds declarations (`input`, `lattice`, `symmetry`, `output`), layers such as \
`linear(1 -> 10, window = 3) relu`, `residual { ... }` blocks and multigrid `level NAME(...) { ... }` \
blocks, one after another"
    } else if message.contains("a value") {
        "a value is a number (`64`, `1e-3`), a name (`relu`), a string (`\"data/mnist\"`), a list \
(`[+x, -t]`) or a call (`adam(lr = 1e-3)`); each train setting takes one value, e.g. `batch 64`"
    } else if message.contains("an integer") {
        "sizes are whole numbers: `linear(1 -> 10)`, `real[1, 28, 28]`, `lattice 8 x 8 x 8 x 16`"
    } else {
        "docs/language.md summarises the .sym syntax"
    };
    Problem::new(
        Code::Unexpected,
        Span { start: at.start, end: at.start + found.1 },
        format!("syntax error: {message}"),
        format!("found {}", found.0),
    )
    .help(help)
}

/// What the parser stumbled on: the next word or character, or the end of the file.
fn found_at(text: &str, at: usize) -> (String, usize) {
    let rest = text.get(at..).unwrap_or("");
    let word: String =
        rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect();
    if !word.is_empty() {
        return (format!("`{word}`"), word.len());
    }
    match rest.chars().next() {
        None => ("the end of the file".into(), 0),
        Some('\n') | Some('\r') => ("the end of the line".into(), 0),
        Some(c) => (format!("`{c}`"), c.len_utf8()),
    }
}

struct Lower {
    problems: Vec<Problem>,
}

impl Lower {
    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident { name: pair.as_str().to_string(), span: span(&pair) }
    }

    fn int(&mut self, pair: Pair<Rule>) -> (u64, Span) {
        let sp = span(&pair);
        match pair.as_str().parse::<i64>() {
            Ok(v) => (v as u64, sp),
            Err(_) => {
                self.overflow(sp);
                (0, sp)
            }
        }
    }

    fn overflow(&mut self, sp: Span) {
        self.problems.push(
            Problem::new(
                Code::IntegerOverflow,
                sp,
                "integer literal too large",
                "does not fit in 64 bits",
            )
            .help(format!("integers must lie within ±{}", i64::MAX)),
        );
    }

    fn network(&mut self, pair: Pair<Rule>) -> Network {
        let sp = span(&pair);
        let mut inner = pair.into_inner();
        inner.next(); // kw_network
        let name = inner.next().map(|p| self.ident(p)).unwrap_or_else(|| missing_ident(sp));
        let body = inner.map(|p| self.stmt(p)).collect();
        Network { name, body, span: sp }
    }

    fn stmt(&mut self, pair: Pair<Rule>) -> Stmt {
        let sp = span(&pair);
        match pair.as_rule() {
            Rule::input_decl => {
                let mut inner = pair.into_inner().skip(1);
                let name = inner.next().map(|p| self.ident(p)).unwrap_or_else(|| missing_ident(sp));
                let ty = match inner.next() {
                    Some(p) => self.type_expr(p),
                    None => TypeExpr { name: missing_ident(sp), dims: None, span: sp },
                };
                Stmt::Input { name, ty, span: sp }
            }
            Rule::lattice_decl => {
                let dims = pair.into_inner().skip(1).map(|p| self.int(p)).collect();
                Stmt::Lattice { dims, span: sp }
            }
            Rule::symmetry_decl => {
                let items = pair.into_inner().skip(1).map(|p| self.call(p)).collect();
                Stmt::Symmetry { items, span: sp }
            }
            Rule::output_decl => {
                let mut inner = pair.into_inner().skip(1);
                let name = inner.next().map(|p| self.ident(p)).unwrap_or_else(|| missing_ident(sp));
                let kind = inner.next().map(|p| self.ident(p));
                Stmt::Output { name, kind, span: sp }
            }
            Rule::residual => {
                let body = pair.into_inner().skip(1).map(|p| self.stmt(p)).collect();
                Stmt::Residual { body, span: sp }
            }
            Rule::level => {
                let mut inner = pair.into_inner().skip(1);
                let call = match inner.next() {
                    Some(c) => self.call(c),
                    None => Call { name: missing_ident(sp), args: None, span: sp },
                };
                let body = inner.map(|p| self.stmt(p)).collect();
                Stmt::Level { call, body, span: sp }
            }
            _ => {
                // Rule::op
                let mut label = None;
                let mut call = None;
                for p in pair.into_inner() {
                    match p.as_rule() {
                        Rule::label => label = p.into_inner().next().map(|i| self.ident(i)),
                        _ => call = Some(self.call(p)),
                    }
                }
                let call =
                    call.unwrap_or_else(|| Call { name: missing_ident(sp), args: None, span: sp });
                Stmt::Op { label, call, span: sp }
            }
        }
    }

    fn type_expr(&mut self, pair: Pair<Rule>) -> TypeExpr {
        let sp = span(&pair);
        let mut inner = pair.into_inner();
        let name = inner.next().map(|p| self.ident(p)).unwrap_or_else(|| missing_ident(sp));
        let dims = inner.next().map(|d| d.into_inner().map(|p| self.int(p)).collect());
        TypeExpr { name, dims, span: sp }
    }

    fn call(&mut self, pair: Pair<Rule>) -> Call {
        let sp = span(&pair);
        let mut inner = pair.into_inner();
        let name = inner.next().map(|p| self.ident(p)).unwrap_or_else(|| missing_ident(sp));
        let args = inner.next().map(|a| a.into_inner().map(|p| self.arg(p)).collect());
        Call { name, args, span: sp }
    }

    fn arg(&mut self, pair: Pair<Rule>) -> Arg {
        let sp = span(&pair);
        if pair.as_rule() == Rule::named {
            let mut inner = pair.into_inner();
            let name = inner.next().map(|p| self.ident(p));
            let value = match inner.next() {
                Some(v) => self.value(v),
                None => Value { kind: ValueKind::List(Vec::new()), span: sp },
            };
            Arg { name, value, span: sp }
        } else {
            Arg { name: None, value: self.value(pair), span: sp }
        }
    }

    fn value(&mut self, pair: Pair<Rule>) -> Value {
        let sp = span(&pair);
        let kind = match pair.as_rule() {
            Rule::features | Rule::range => {
                let is_features = pair.as_rule() == Rule::features;
                let mut inner = pair.into_inner();
                let a = inner.next().map_or(0, |p| self.int(p).0);
                let b = inner.next().map_or(0, |p| self.int(p).0);
                if is_features { ValueKind::Features(a, b) } else { ValueKind::Range(a, b) }
            }
            Rule::path => ValueKind::Path(self.path(pair.as_str(), sp)),
            Rule::number => self.number(pair.as_str(), sp),
            Rule::string => ValueKind::Str(
                pair.into_inner().next().map(|p| p.as_str().to_string()).unwrap_or_default(),
            ),
            Rule::list => ValueKind::List(pair.into_inner().map(|p| self.value(p)).collect()),
            _ => ValueKind::Call(self.call(pair)),
        };
        Value { kind, span: sp }
    }

    fn number(&mut self, text: &str, sp: Span) -> ValueKind {
        let integral = !text.contains(['.', 'e', 'E']);
        if integral {
            match text.parse::<i64>() {
                Ok(v) => return ValueKind::Int(v),
                Err(_) => {
                    self.overflow(sp);
                    return ValueKind::Int(0);
                }
            }
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => ValueKind::Float(v),
            _ => {
                self.problems.push(
                    Problem::new(Code::BadNumber, sp, "number out of range", "not a finite number")
                        .help("numbers must lie within ±1.7e308"),
                );
                ValueKind::Float(0.0)
            }
        }
    }

    /// `+x+2y-t` → steps; a count before the axis letter repeats the step.
    fn path(&mut self, text: &str, sp: Span) -> Vec<Step> {
        let mut steps = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let forward = bytes[i] == b'+';
            i += 1;
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let count = if i > start {
                match text[start..i].parse::<u64>() {
                    Ok(c) if c <= 1024 => c as usize,
                    _ => {
                        self.problems.push(
                            Problem::new(
                                Code::IntegerOverflow,
                                sp,
                                "step count in path too large",
                                "this path",
                            )
                            .help("a path step may repeat at most 1024 times"),
                        );
                        0
                    }
                }
            } else {
                1
            };
            let mu = match bytes.get(i) {
                Some(b'x') => 0,
                Some(b'y') => 1,
                Some(b'z') => 2,
                _ => 3,
            };
            i += 1;
            steps.extend(std::iter::repeat_n((mu, forward), count));
        }
        steps
    }

    fn train(&mut self, pair: Pair<Rule>) -> Train {
        let sp = span(&pair);
        let mut inner = pair.into_inner().skip(1);
        let name = inner.next().map(|p| self.ident(p)).unwrap_or_else(|| missing_ident(sp));
        let settings = inner
            .map(|s| {
                let ssp = span(&s);
                let mut kv = s.into_inner();
                let key = kv.next().map(|p| self.ident(p)).unwrap_or_else(|| missing_ident(ssp));
                let value = match kv.next() {
                    Some(v) => self.value(v),
                    None => Value { kind: ValueKind::List(Vec::new()), span: ssp },
                };
                Setting { key, value, span: ssp }
            })
            .collect();
        Train { name, settings, span: sp }
    }
}

/// The grammar guarantees names where `lower_*` looks for them; this keeps lowering total
/// without an `unwrap` should the grammar and the lowering ever drift apart.
fn missing_ident(sp: Span) -> Ident {
    Ident { name: String::new(), span: sp }
}
