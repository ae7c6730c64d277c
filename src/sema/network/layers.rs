//! The layer words other than `linear` (see `linear.rs`): the dispatch from a layer word
//! to its check, and the layers without weights (activations, `norm_gate`, `flatten`,
//! `log_softmax`, `transport`). Each check takes the value the layer receives (`None` when
//! an earlier mistake made it unknowable) and returns the layer to push, or `None` after
//! reporting why it cannot be built.

use super::types::describe;
use super::{Checker, Lowered};
use crate::diagnostics::{Code, Problem};
use crate::ir::{Activation, LayerKind, Span, Symmetry, ValueId, ValueType};
use crate::sema::args::{self, ArgSet};
use crate::syntax::ast::{self, Call};

/// Every layer word the language knows, for "did you mean" help.
pub(super) const LAYERS: &[&str] = &[
    "linear",
    "relu",
    "tanh",
    "sigmoid",
    "identity",
    "norm_gate",
    "flatten",
    "log_softmax",
    "transport",
];

impl Checker<'_> {
    /// One layer statement: checks it against the current value and, if it can be built,
    /// pushes it and makes its output the current value.
    pub(super) fn op(
        &mut self,
        label: Option<&ast::Ident>,
        call: &Call,
        span: Span,
        cur: &mut Option<ValueType>,
        cur_id: &mut ValueId,
    ) {
        let word = call.name.name.as_str();
        if let Some(l) = label {
            self.define_name(l);
        }
        if !LAYERS.contains(&word) {
            let help = args::suggest_help(word, LAYERS, "layers are");
            self.err(
                Problem::new(
                    Code::UnknownLayer,
                    call.name.span,
                    format!("unknown layer `{word}`"),
                    "unknown layer",
                )
                .help(help),
            );
            *cur = None;
            return;
        }
        let name = match label {
            Some(l) => l.name.clone(),
            None => self.generated_name(word),
        };
        let lowered = match word {
            "linear" => self.linear(call, &name, cur.as_ref()),
            "transport" => self.transport(call, cur.as_ref()),
            "relu" | "tanh" | "sigmoid" | "identity" => {
                self.no_args(call);
                let act = match word {
                    "relu" => Activation::Relu,
                    "tanh" => Activation::Tanh,
                    "sigmoid" => Activation::Sigmoid,
                    _ => Activation::Identity,
                };
                self.activation(call, act, cur.as_ref())
            }
            "norm_gate" => self.norm_gate(call, cur.as_ref()),
            "flatten" => self.flatten(call, cur.as_ref()),
            _ => self.log_softmax(call, cur.as_ref()), // the only word left in LAYERS
        };
        match lowered {
            Some((kind, out, params)) => {
                self.push_layer(kind, vec![*cur_id], out, params, name, span, cur, cur_id)
            }
            None => *cur = None,
        }
    }

    /// `relu`, `tanh`, `sigmoid` act on real values; on fermion fields only `identity` does.
    fn activation(
        &mut self,
        call: &Call,
        act: Activation,
        cur: Option<&ValueType>,
    ) -> Option<Lowered> {
        match cur? {
            t @ ValueType::Real { .. } => Some((LayerKind::Activation(act), t.clone(), vec![])),
            t @ ValueType::Fermion { .. } if act == Activation::Identity => {
                Some((LayerKind::Activation(act), t.clone(), vec![]))
            }
            ValueType::Fermion { .. } if self.sym.ir == Symmetry::GaugeSu3 => {
                self.nonlinearity_breaks_gauge(call);
                None
            }
            t => {
                let w = &call.name.name;
                self.err(
                    Problem::new(
                        Code::NotReal,
                        call.span,
                        format!("`{w}` acts on real values, but it receives {}", describe(t)),
                        "complex values here",
                    )
                    .help("fermion fields are complex; use `norm_gate` (ψ·σ(|ψ|²)) as their nonlinearity"),
                );
                None
            }
        }
    }

    /// `norm_gate`: ψ·σ(|ψ|²), the nonlinearity for fermion fields.
    fn norm_gate(&mut self, call: &Call, cur: Option<&ValueType>) -> Option<Lowered> {
        self.no_args(call);
        match cur {
            Some(t @ ValueType::Fermion { .. }) => Some((LayerKind::NormGate, t.clone(), vec![])),
            Some(t) => {
                self.err(
                    Problem::new(
                        Code::NotFermion,
                        call.span,
                        format!(
                            "`norm_gate` acts on fermion fields, but it receives {}",
                            describe(t)
                        ),
                        "here",
                    )
                    .help("on real values use `relu`, `tanh` or `sigmoid`"),
                );
                None
            }
            None => None,
        }
    }

    /// `flatten`: a real tensor becomes a vector of the same length.
    fn flatten(&mut self, call: &Call, cur: Option<&ValueType>) -> Option<Lowered> {
        self.no_args(call);
        match cur {
            Some(ValueType::Real { shape }) => {
                let n = shape.iter().product();
                Some((LayerKind::Flatten, ValueType::Real { shape: vec![n] }, vec![]))
            }
            Some(t) => {
                self.not_real(call, "flatten", t);
                None
            }
            None => None,
        }
    }

    /// `log_softmax` over a vector.
    fn log_softmax(&mut self, call: &Call, cur: Option<&ValueType>) -> Option<Lowered> {
        self.no_args(call);
        match cur {
            Some(ValueType::Real { shape }) if shape.len() == 1 => {
                Some((LayerKind::LogSoftmax, ValueType::Real { shape: shape.clone() }, vec![]))
            }
            Some(t @ ValueType::Real { .. }) => {
                self.err(
                    Problem::new(
                        Code::ShapeMismatch,
                        call.span,
                        format!("`log_softmax` needs a vector, but it receives {}", describe(t)),
                        "here",
                    )
                    .help("add `flatten` before it"),
                );
                None
            }
            Some(t) => {
                self.not_real(call, "log_softmax", t);
                None
            }
            None => None,
        }
    }

    /// A real-tensor layer given a fermion field.
    fn not_real(&mut self, call: &Call, what: &str, t: &ValueType) {
        self.err(
            Problem::new(
                Code::NotReal,
                call.span,
                format!("`{what}` acts on real tensors, but it receives {}", describe(t)),
                "here",
            )
            .help("fermion fields keep their lattice structure to the output: end with `output fermion`"),
        );
    }

    /// `transport`: moves field k along path k of its path set; it has no weights and is only
    /// defined under gauge symmetry.
    fn transport(&mut self, call: &Call, cur: Option<&ValueType>) -> Option<Lowered> {
        let a = ArgSet::read(call, &["hops", "paths"], &["paths"], &["long"], &mut self.problems);
        let reach = self.reach(&a);
        if self.sym.ir != Symmetry::GaugeSu3 {
            self.err(
                Problem::new(Code::BadSymmetry, call.span, "`transport` needs the gauge symmetry", "parallel transport")
                    .note(self.sym.span, "the network's symmetry")
                    .help("parallel transport moves fermion fields along gauge links: declare `symmetry gauge(SU3), translation`"),
            );
            return None;
        }
        if reach.local.is_some() {
            self.err(
                Problem::new(
                    Code::BadArgument,
                    call.span,
                    "`transport` has no weights, so `local` has no meaning",
                    "here",
                )
                .help("remove `local`"),
            );
        }
        let cur = cur?;
        let ValueType::Fermion { features, lattice } = cur else {
            return None;
        };
        let paths = self.path_set(&reach, lattice)?;
        if paths.len() != *features {
            self.err(
                Problem::new(
                    Code::ShapeMismatch,
                    call.span,
                    format!(
                        "`transport` moves field k along path k: {} paths (the identity included) need {} fields, but it receives {features}",
                        paths.len(),
                        paths.len()
                    ),
                    format!("{} paths", paths.len()),
                )
                .help(format!("make the layer before it produce {} fields, e.g. `linear({features} -> {})`", paths.len(), paths.len())),
            );
            return None;
        }
        Some((LayerKind::Transport { paths }, cur.clone(), vec![]))
    }

    /// A layer word that takes no arguments was given some.
    pub(super) fn no_args(&mut self, call: &Call) {
        if let Some(a) = &call.args {
            let what = &call.name.name;
            let sp = a.first().map_or(call.span, |x| x.span.join(a[a.len() - 1].span));
            self.err(
                Problem::new(
                    Code::UnknownArgument,
                    if a.is_empty() { call.span } else { sp },
                    format!("`{what}` takes no arguments"),
                    "unexpected arguments",
                )
                .help(format!("write just `{what}`")),
            );
        }
    }
}
