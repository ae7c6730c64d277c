//! Checking a `network` block: declarations, names, shape inference through every layer,
//! symmetry → layer kind, parameter layout, and the rules that keep the declared symmetry
//! honest. Every check records its problems and carries on, so one run reports them all;
//! after a layer whose output cannot be known, later shape checks are skipped rather than
//! reporting consequences of the first mistake.
//!
//! This file holds the `Checker` and the driver, in the order a network is checked; each
//! step lives in its own file:
//!
//! - `names.rs`: the declarations (found wherever they are), user and generated names;
//! - `types.rs`: the input and its lattice, memory checks, how types and sizes are spelled;
//! - `symmetry.rs`: the symmetry declaration and the gauge-breaking rules;
//! - `layers.rs`: layer words → checks, and the layers without weights;
//! - `linear.rs`: `linear` → dense, convolution or PTC, and the parameter layout;
//! - `level.rs`: a multigrid `level` → its coarse space and coarse model;
//! - `reach.rs`: `hops`/`paths`/`long`/`local` → the path set of a lattice layer;
//! - `output.rs`: the `output` declaration and the layers it implies.

mod coarse_layers;
mod layers;
mod level;
mod linear;
mod names;
mod output;
mod pool;
mod reach;
mod symmetry;
mod types;

use super::Options;
use crate::diagnostics::{Code, Problem};
use crate::ir::{Graph, Lattice, Layer, LayerKind, Param, ParamId, Span, ValueId, ValueType};
use crate::syntax::ast::{self, Stmt};
use std::collections::HashMap;
use symmetry::Sym;
use types::describe;

/// A layer as checked, before it is pushed: its kind, its output type and its parameters.
type Lowered = (LayerKind, ValueType, Vec<ParamId>);

/// The state of checking one network: the IR built so far and every problem found.
pub(super) struct Checker<'o> {
    opts: &'o Options,
    problems: Vec<Problem>,
    values: Vec<ValueType>,
    layers: Vec<Layer>,
    params: Vec<Param>,
    /// Scalars allocated in the parameter vector so far: where the next tensor starts.
    offset: usize,
    /// Names given by the user: input, layer labels, output.
    names: HashMap<String, Span>,
    /// Every name in use (user and generated), so generated names never collide.
    taken: HashMap<String, ()>,
    /// The last number given to each layer word's generated names (`relu3`).
    counters: HashMap<String, usize>,
    /// The declared lattice, if it was valid.
    lattice: Option<Lattice>,
    sym: Sym,
    /// The `output` statement once the walk has passed it: a layer after it is an error.
    output_seen: Option<Span>,
    /// The pooled level whose body (layers on its coarse lattice) is being checked.
    coarse_level: Option<String>,
}

impl<'o> Checker<'o> {
    pub(super) fn new(opts: &'o Options) -> Self {
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
            coarse_level: None,
        }
    }

    /// Records a problem; checking carries on.
    fn err(&mut self, p: Problem) {
        self.problems.push(p);
    }

    /// Check one network; returns the graph without its train spec (`None` if any problem).
    pub(super) fn network(mut self, net: &ast::Network) -> (Option<Graph>, Vec<Problem>) {
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
            split_of: None,
        };
        (Some(graph), self.problems)
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
                && matches!(stmt, Stmt::Op { .. } | Stmt::Residual { .. } | Stmt::Level { .. })
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
                Stmt::Residual { body, span } => self.residual(body, *span, cur, cur_id),
                Stmt::Level { call, body, span } => self.level(call, body, *span, top, cur, cur_id),
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

    /// `residual { ... }`: out = body(in) + in, so the body must give back the type it takes.
    fn residual(
        &mut self,
        body: &[Stmt],
        span: Span,
        cur: &mut Option<ValueType>,
        cur_id: &mut ValueId,
    ) {
        let before = cur.clone();
        let in_id = *cur_id;
        self.body(body, cur, cur_id, false);
        if body
            .iter()
            .all(|s| !matches!(s, Stmt::Op { .. } | Stmt::Residual { .. } | Stmt::Level { .. }))
        {
            self.err(
                Problem::new(Code::ResidualMismatch, span, "this residual block has no layers", "empty")
                    .help("put the layers of the residual branch inside: `residual { linear(2 -> 2, hops = 1) }`"),
            );
            return;
        }
        match (&before, &*cur) {
            (Some(a), Some(b)) if a != b => {
                self.err(
                    Problem::new(
                        Code::ResidualMismatch,
                        span,
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
                    span,
                    cur,
                    cur_id,
                );
            }
            _ => *cur = None,
        }
    }

    /// Appends a layer and its output value, which becomes the current value.
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
}
