//! Names and declarations. A network's `input`, `lattice`, `symmetry` and `output` are
//! declared once each, at the top level, wherever in the block they appear; every input,
//! layer and output has its own name. Layers the user leaves unnamed get generated names
//! (`linear1`, `relu2`) that never collide with a name written anywhere in the program, so
//! the names in the IR, in checkpoints and in `symc inspect` are unique.

use super::Checker;
use crate::diagnostics::{Code, Problem};
use crate::ir::Span;
use crate::syntax::ast::{self, Call, Stmt};

/// The network's declarations, each from its first occurrence (later ones are reported).
pub(super) struct Decls<'a> {
    pub(super) input: Option<(&'a ast::Ident, &'a ast::TypeExpr, Span)>,
    pub(super) lattice: Option<(&'a [(u64, Span)], Span)>,
    pub(super) symmetry: Option<(&'a [Call], Span)>,
    pub(super) output: Option<(&'a ast::Ident, Option<&'a ast::Ident>, Span)>,
}

impl Checker<'_> {
    /// Finds the declarations among the statements; a second copy of any is reported.
    pub(super) fn declarations<'a>(&mut self, body: &'a [Stmt]) -> Decls<'a> {
        let mut input: Option<(&ast::Ident, &ast::TypeExpr, Span)> = None;
        let mut lattice: Option<(&[(u64, Span)], Span)> = None;
        let mut symmetry: Option<(&[Call], Span)> = None;
        let mut output: Option<(&ast::Ident, Option<&ast::Ident>, Span)> = None;
        for stmt in body {
            match stmt {
                Stmt::Input { name, ty, span } => {
                    if let Some((_, _, first)) = input {
                        self.duplicate_decl("input", *span, first);
                    } else {
                        input = Some((name, ty, *span));
                    }
                }
                Stmt::Lattice { dims, span } => {
                    if let Some((_, first)) = lattice {
                        self.duplicate_decl("lattice", *span, first);
                    } else {
                        lattice = Some((dims, *span));
                    }
                }
                Stmt::Symmetry { items, span } => {
                    if let Some((_, first)) = symmetry {
                        self.duplicate_decl("symmetry", *span, first);
                    } else {
                        symmetry = Some((items, *span));
                    }
                }
                Stmt::Output { name, kind, span } => {
                    if let Some((_, _, first)) = output {
                        self.duplicate_decl("output", *span, first);
                    } else {
                        output = Some((name, kind.as_ref(), *span));
                    }
                }
                Stmt::Residual { .. } | Stmt::Level { .. } | Stmt::Op { .. } => {}
            }
        }
        Decls { input, lattice, symmetry, output }
    }

    fn duplicate_decl(&mut self, what: &str, span: Span, first: Span) {
        self.err(
            Problem::new(
                Code::DuplicateDecl,
                span,
                format!("the network declares `{what}` twice"),
                "second declaration",
            )
            .note(first, "first declared here")
            .help(format!("a network has one `{what}` declaration; remove one of them")),
        );
    }

    /// Reserves every name written in the program (labels, the input, the output, inside
    /// residual blocks too) before any is generated, so a generated `relu1` cannot take the
    /// name of a layer labelled `relu1` further down.
    pub(super) fn collect_user_names(&mut self, body: &[Stmt], output: Option<&ast::Ident>) {
        for s in body {
            match s {
                Stmt::Op { label: Some(l), .. } => {
                    self.taken.insert(l.name.clone(), ());
                }
                Stmt::Residual { body, .. } => self.collect_user_names(body, None),
                Stmt::Level { call, body, .. } => {
                    self.taken.insert(call.name.name.clone(), ());
                    self.collect_user_names(body, None);
                }
                Stmt::Input { name, .. } => {
                    self.taken.insert(name.name.clone(), ());
                }
                _ => {}
            }
        }
        if let Some(o) = output {
            self.taken.insert(o.name.clone(), ());
        }
    }

    /// Declares a user-written name, reporting a second use of it.
    pub(super) fn define_name(&mut self, id: &ast::Ident) {
        if let Some(first) = self.names.get(&id.name) {
            let first = *first;
            self.err(
                Problem::new(
                    Code::DuplicateName,
                    id.span,
                    format!("the name `{}` is used twice", id.name),
                    "used again here",
                )
                .note(first, "first used here")
                .help("give every input, layer and output its own name"),
            );
        } else {
            self.names.insert(id.name.clone(), id.span);
        }
    }

    /// A fresh name for an unlabelled layer: the layer word and a counter, skipping taken names.
    pub(super) fn generated_name(&mut self, word: &str) -> String {
        loop {
            let n = self.counters.entry(word.to_string()).or_insert(0);
            *n += 1;
            let name = format!("{word}{n}");
            if !self.taken.contains_key(&name) {
                self.taken.insert(name.clone(), ());
                return name;
            }
        }
    }

    /// A declaration inside a residual block: declarations belong to the whole network.
    pub(super) fn misplaced(&mut self, what: &str, span: Span) {
        self.err(
            Problem::new(
                Code::MisplacedDecl,
                span,
                format!("`{what}` cannot appear inside a residual block"),
                "inside `residual`",
            )
            .help(format!("declare `{what}` at the top level of the network")),
        );
    }
}
