//! Checking a `network` block: declarations, names, shape inference through every layer,
//! symmetry → layer kind, parameter layout, and the rules that keep the declared symmetry
//! honest. Every check records its problems and carries on, so one run reports them all;
//! after a layer whose output cannot be known, later shape checks are skipped rather than
//! reporting consequences of the first mistake.

mod linear;
mod names;
mod reach;
mod symmetry;
mod types;

use super::Options;
use super::args::{self, ArgSet};
use super::paths;
use crate::diagnostics::{Code, Problem};
use crate::ir::{
    Activation, Graph, Lattice, Layer, LayerKind, Param, ParamId, Span, Symmetry, ValueId,
    ValueType,
};
use crate::syntax::ast::{self, Call, Stmt};
use std::collections::HashMap;
use symmetry::Sym;
use types::describe;

/// A layer as checked, before it is pushed: its kind, its output type and its parameters.
type Lowered = (LayerKind, ValueType, Vec<ParamId>);

/// Every layer word the language knows, for "did you mean" help.
const LAYERS: &[&str] = &[
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
const OUTPUT_KINDS: &[&str] = &["flatten", "log_softmax", "real", "fermion"];

pub struct Checker<'o> {
    opts: &'o Options,
    pub problems: Vec<Problem>,
    values: Vec<ValueType>,
    layers: Vec<Layer>,
    params: Vec<Param>,
    offset: usize,
    /// Names given by the user: input, layer labels, output.
    names: HashMap<String, Span>,
    /// Every name in use (user and generated), so generated names never collide.
    taken: HashMap<String, ()>,
    counters: HashMap<String, usize>,
    lattice: Option<Lattice>,
    sym: Sym,
    output_seen: Option<Span>,
}

impl<'o> Checker<'o> {
    pub fn new(opts: &'o Options) -> Self {
        Checker {
            opts,
            problems: Vec::new(),
            values: Vec::new(),
            layers: Vec::new(),
            params: Vec::new(),
            offset: 0,
            names: HashMap::new(),
            taken: HashMap::new(),
            counters: HashMap::new(),
            lattice: None,
            sym: Sym::none(Span::default()),
            output_seen: None,
        }
    }

    fn err(&mut self, p: Problem) {
        self.problems.push(p);
    }

    /// Check one network; returns the graph without its train spec (`None` if any problem).
    pub fn network(mut self, net: &ast::Network) -> (Option<Graph>, Vec<Problem>) {
        // Declarations first, wherever they appear; layers run in order after them.
        let decls = self.declarations(&net.body);
        self.collect_user_names(&net.body, decls.output.map(|o| o.0));
        let Some((in_name, in_type)) = self.input(net, &decls) else {
            return (None, self.problems);
        };
        let before_symmetry = self.problems.len();
        self.sym = match decls.symmetry {
            Some((items, span)) => self.symmetry(items, span, in_type.as_ref()),
            None => Sym::none(net.name.span),
        };
        // With a wrong symmetry, every layer kind would be a guess: check names only.
        let symmetry_ok = self.problems.len() == before_symmetry;

        let mut cur = if symmetry_ok { in_type.clone() } else { None };
        self.values.push(in_type.clone().unwrap_or(ValueType::Real { shape: vec![1] }));
        let mut cur_id = ValueId(0);
        self.body(&net.body, &mut cur, &mut cur_id, true);

        match decls.output {
            Some((name, kind, span)) => self.output(name, kind, span, &mut cur, &mut cur_id),
            None => {
                self.err(
                    Problem::new(
                        Code::MissingOutput,
                        Span::point(net.span.end.saturating_sub(1)),
                        format!("network `{}` has no output", net.name.name),
                        "expected `output` before the end of the block",
                    )
                    .help("end the network with e.g. `output logits: log_softmax` or `output fermion`"),
                );
            }
        }
        if !self.problems.is_empty() {
            return (None, self.problems);
        }
        let graph = Graph {
            name: net.name.name.clone(),
            symmetry: self.sym.ir.clone(),
            lattice: self.lattice,
            values: self.values,
            input_name: in_name.name.clone(),
            layers: self.layers,
            params: self.params,
            output: cur_id,
            train: None,
        };
        (Some(graph), self.problems)
    }

    fn no_args(&mut self, call: &Call) {
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

    /// Walk a statement list; `cur` is the current value type (`None` once unknowable).
    fn body(
        &mut self,
        body: &[Stmt],
        cur: &mut Option<ValueType>,
        cur_id: &mut ValueId,
        top: bool,
    ) {
        for stmt in body {
            if let Some(out) = self.output_seen
                && matches!(stmt, Stmt::Op { .. } | Stmt::Residual { .. })
            {
                self.err(
                    Problem::new(
                        Code::AfterOutput,
                        stmt.span(),
                        "a layer after the output",
                        "this layer",
                    )
                    .note(out, "the output is declared here")
                    .help("`output` ends the network; move it after the last layer"),
                );
                self.output_seen = None; // report once
                return;
            }
            match stmt {
                Stmt::Op { label, call, span } => self.op(label.as_ref(), call, *span, cur, cur_id),
                Stmt::Residual { body, span } => {
                    let before = cur.clone();
                    let in_id = *cur_id;
                    self.body(body, cur, cur_id, false);
                    if body.iter().all(|s| !matches!(s, Stmt::Op { .. } | Stmt::Residual { .. })) {
                        self.err(
                            Problem::new(Code::ResidualMismatch, *span, "this residual block has no layers", "empty")
                                .help("put the layers of the residual branch inside: `residual { linear(2 -> 2, hops = 1) }`"),
                        );
                        continue;
                    }
                    match (&before, &*cur) {
                        (Some(a), Some(b)) if a != b => {
                            self.err(
                                Problem::new(
                                    Code::ResidualMismatch,
                                    *span,
                                    format!(
                                        "a residual block must keep its value's type: it takes {} and gives {}",
                                        describe(a),
                                        describe(b)
                                    ),
                                    "out = body(in) + in needs equal types",
                                )
                                .help("make the last layer inside produce what the block receives"),
                            );
                            *cur = None;
                        }
                        (Some(a), Some(_)) => {
                            let t = a.clone();
                            let name = self.generated_name("residual");
                            self.push_layer(
                                LayerKind::Add,
                                vec![*cur_id, in_id],
                                t,
                                vec![],
                                name,
                                *span,
                                cur,
                                cur_id,
                            );
                        }
                        _ => *cur = None,
                    }
                }
                Stmt::Output { span, .. } => {
                    if top {
                        self.output_seen = Some(*span);
                    } else {
                        self.misplaced("output", *span);
                    }
                }
                Stmt::Input { span, .. } if !top => self.misplaced("input", *span),
                Stmt::Lattice { span, .. } if !top => self.misplaced("lattice", *span),
                Stmt::Symmetry { span, .. } if !top => self.misplaced("symmetry", *span),
                Stmt::Input { .. } | Stmt::Lattice { .. } | Stmt::Symmetry { .. } => {}
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_layer(
        &mut self,
        kind: LayerKind,
        inputs: Vec<ValueId>,
        out: ValueType,
        params: Vec<ParamId>,
        name: String,
        span: Span,
        cur: &mut Option<ValueType>,
        cur_id: &mut ValueId,
    ) {
        let id = ValueId(self.values.len() as u32);
        self.values.push(out.clone());
        self.layers.push(Layer { kind, inputs, output: id, params, name, span });
        *cur = Some(out);
        *cur_id = id;
    }

    fn op(
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
            "norm_gate" => {
                self.no_args(call);
                match cur.as_ref() {
                    Some(t @ ValueType::Fermion { .. }) => {
                        Some((LayerKind::NormGate, t.clone(), vec![]))
                    }
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
            "flatten" => {
                self.no_args(call);
                match cur.as_ref() {
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
            _ => {
                // log_softmax
                self.no_args(call);
                match cur.as_ref() {
                    Some(ValueType::Real { shape }) if shape.len() == 1 => Some((
                        LayerKind::LogSoftmax,
                        ValueType::Real { shape: shape.clone() },
                        vec![],
                    )),
                    Some(t @ ValueType::Real { .. }) => {
                        self.err(
                            Problem::new(
                                Code::ShapeMismatch,
                                call.span,
                                format!(
                                    "`log_softmax` needs a vector, but it receives {}",
                                    describe(t)
                                ),
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
        };
        match lowered {
            Some((kind, out, params)) => {
                self.push_layer(kind, vec![*cur_id], out, params, name, span, cur, cur_id)
            }
            None => *cur = None,
        }
    }

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

    fn output(
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
