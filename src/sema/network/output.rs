//! The `output` declaration. It names the network's result and says what kind it is
//! (`fermion`, `real`, `flatten`, `log_softmax`); the last two are a promise sema keeps by
//! appending the layers they imply, so a classifier can end with `output logits: log_softmax`
//! without writing the flatten and softmax itself.

use super::Checker;
use super::types::describe;
use crate::diagnostics::{Code, Problem};
use crate::ir::{LayerKind, Span, ValueId, ValueType};
use crate::sema::args;
use crate::syntax::ast;

/// Every output kind, for "did you mean" help and to tell `output fermion` (a kind, no
/// name) from `output logits` (a name).
const OUTPUT_KINDS: &[&str] = &["flatten", "log_softmax", "real", "fermion"];

impl Checker<'_> {
    /// The `output` declaration, after the last layer: checks the network's value against the
    /// declared kind and appends the `flatten`/`log_softmax` that kind implies.
    pub(super) fn output(
        &mut self,
        name: &ast::Ident,
        kind: Option<&ast::Ident>,
        span: Span,
        cur: &mut Option<ValueType>,
        cur_id: &mut ValueId,
    ) {
        // `output fermion` names no value: the single word is the kind.
        let (name, kind) = match kind {
            None if OUTPUT_KINDS.contains(&name.name.as_str()) => (None, Some(name)),
            k => (Some(name), k),
        };
        if let Some(n) = name {
            self.define_name(n);
        }
        let Some(kind) = kind else { return };
        let Some(t) = cur.clone() else { return };
        let mismatch = |want: &str| {
            Problem::new(
                Code::OutputMismatch,
                kind.span,
                format!(
                    "the output is declared `{}`, but the network produces {}",
                    kind.name,
                    describe(&t)
                ),
                format!("{want} expected"),
            )
        };
        match (kind.name.as_str(), &t) {
            ("fermion", ValueType::Fermion { .. }) | ("real", ValueType::Real { .. }) => {}
            ("fermion", _) => {
                let p = mismatch("fermion")
                    .help("declare the output as `real`, `flatten` or `log_softmax`");
                self.err(p)
            }
            ("real" | "flatten" | "log_softmax", ValueType::Fermion { .. }) => {
                let p =
                    mismatch("a real tensor").help("a lattice network ends with `output fermion`");
                self.err(p)
            }
            ("flatten", ValueType::Real { shape }) | ("log_softmax", ValueType::Real { shape }) => {
                let mut shape = shape.clone();
                if shape.len() > 1 {
                    let n = shape.iter().product();
                    shape = vec![n];
                    let lname = self.generated_name("flatten");
                    self.push_layer(
                        LayerKind::Flatten,
                        vec![*cur_id],
                        ValueType::Real { shape: shape.clone() },
                        vec![],
                        lname,
                        kind.span,
                        cur,
                        cur_id,
                    );
                }
                let already = self.layers.last().is_some_and(|l| l.kind == LayerKind::LogSoftmax);
                if kind.name == "log_softmax" && !already {
                    let lname = self.generated_name("log_softmax");
                    self.push_layer(
                        LayerKind::LogSoftmax,
                        vec![*cur_id],
                        ValueType::Real { shape },
                        vec![],
                        lname,
                        kind.span,
                        cur,
                        cur_id,
                    );
                }
            }
            (other, _) => {
                let help = args::suggest_help(other, OUTPUT_KINDS, "outputs are");
                self.err(
                    Problem::new(
                        Code::UnknownType,
                        kind.span,
                        format!("unknown output kind `{other}`"),
                        "unknown",
                    )
                    .help(help),
                );
            }
        }
        let _ = span;
    }
}
