//! A multigrid `level`: the coarse space (block size; a near-null basis and how it is made, or
//! a gauge-equivariant pooling path family) and the coarse model that runs on it, checked
//! against the network it sits in.
//!
//! ```text
//! level coarse(blocks = [4, 4, 4, 4], basis = 12) {
//!     solve(tol = 5e-2, restart = 25, iterations = 50)
//! }
//! level coarse(blocks = [4, 4, 4, 4], basis = 12) {
//!     linear(1 -> 1, hops = 1, local)   // non-gauge coarse layers (coarse_layers.rs)
//! }
//! level coarse(blocks = [4, 4, 4, 4], pool = lexicographic) {
//!     linear(1 -> 1, hops = 1)        // PTC on the coarse gauge field
//! }                                   // (the pooling transfer: pool.rs)
//! ```
//!
//! The level takes the network's input b and computes the coarse correction c = P M_c(P† b)
//! (near-null basis) or c = Unpool(M_c(Pool(b))) (pooling; the body is a gauge network on the
//! coarse lattice, checked like any other, whose weights belong to the level).
//! `connect = concat` gives `[b, c]` to the fine layers after it (models.md §2.3: M(b) =
//! Smoother([b, P·M_c(P†b)]), so the next layer takes two fields); `connect = correct` (the
//! default) gives them the residual b − D c and adds c to their output, M(b) = c + S(b − D c),
//! a multiplicative two-level cycle with a trained smoother. Either way the level must be the
//! first layer of a gauge network whose input is one fermion field. A near-null basis is made
//! from the Dirac operator of the `train` block (or of `symc solve`), not from weights, so a
//! near-null level with a coarse solve has no parameters; a pooled level has its
//! pooling weights (unless `pool = static`) and its coarse layers' weights; a near-null level
//! with coarse layers (`coarse_layers.rs`) owns their weights.

use super::Checker;
use crate::diagnostics::{Code, Problem};
use crate::ir::{
    CoarseModel, CoarseSpace, Connect, Graph, Lattice, LayerKind, Level, ParamId, Span, Symmetry,
    ValueId, ValueType,
};
use crate::sema::args::{self, ArgSet};
use crate::syntax::ast::{Call, Stmt, Value, ValueKind};

/// What may run on a coarse lattice, for "did you mean" help.
const COARSE_MODELS: &[&str] = &["solve", "linear"];

impl Checker<'_> {
    /// `level NAME(blocks = [..], basis = N | pool = FAMILY, ...) { coarse model }`.
    pub(super) fn level(
        &mut self,
        call: &Call,
        body: &[Stmt],
        span: Span,
        top: bool,
        cur: &mut Option<ValueType>,
        cur_id: &mut ValueId,
    ) {
        let name = call.name.name.clone();
        self.define_name(&call.name);
        let a = ArgSet::read(
            call,
            &["blocks", "basis", "pool", "reference", "setup", "seed", "connect", "smoothing"],
            &[],
            &[],
            &mut self.problems,
        );
        let level_ok = self.level_place(call, span, top, cur.as_ref());
        let lattice = match cur.as_ref() {
            Some(ValueType::Fermion { lattice, .. }) => Some(*lattice),
            _ => None,
        };
        let blocks = a
            .require("blocks", "blocks = [4, 4, 4, 4]", &mut self.problems)
            .and_then(|v| self.blocks(v, lattice.map(|l| l.dims)));
        let space = self.coarse_space(call, &a, blocks);
        let connect = match a.get("connect") {
            None => Some(Connect::Correct),
            Some(v) => match args::word(v) {
                Some("correct") => Some(Connect::Correct),
                Some("concat") => Some(Connect::Concat),
                _ => {
                    self.err(
                        args::mistyped(v, "`connect`", "`correct` or `concat`").help(
                            "`correct`: M(b) = c + S(b - D c); `concat`: M(b) = S([b, c]), with c the coarse correction",
                        ),
                    );
                    None
                }
            },
        };
        let smoothing = match a.get("smoothing") {
            None => Some(1),
            Some(v) => {
                let n = args::expect_count(v, "`smoothing`", &mut self.problems);
                match (n, connect) {
                    (Some(n), Some(Connect::Concat)) if n != 1 => {
                        self.err(
                            Problem::new(
                                Code::BadLevel,
                                v.span,
                                format!(
                                    "`smoothing = {n}` repeats the fine layers as a smoother, \
                                     but with `connect = concat` they take [b, c] once"
                                ),
                                "only with `connect = correct`",
                            )
                            .help(
                                "use `connect = correct` (M(b) = c + S(b - D c), repeated \
                                 `smoothing` times), or drop `smoothing`",
                            ),
                        );
                        None
                    }
                    (n, _) => n,
                }
            }
        };
        let first_param = self.params.len();
        let coarse_lattice = match (lattice, blocks) {
            (Some(l), Some(b)) => {
                Some(Lattice { dims: std::array::from_fn(|mu| l.dims[mu] / b[mu]) })
            }
            _ => None,
        };
        let coarse = match &space {
            Some(CoarseSpace::Pool { transfer }) => {
                // The pooling weight comes first: the runtime finds it at offset 0.
                let weight_ok = match (transfer.weighted, lattice) {
                    (true, Some(l)) => self
                        .param(
                            format!("{name}.pool"),
                            vec![transfer.terms.len(), l.volume(), 4, 4],
                            true,
                            call.span,
                        )
                        .is_some(),
                    _ => true,
                };
                let net = self.coarse_network(call, body, &name, coarse_lattice, first_param);
                net.filter(|_| weight_ok)
            }
            Some(CoarseSpace::Basis { basis, .. }) if Self::has_coarse_layers(body) => {
                self.coarse_layers(&name, body, coarse_lattice.map(|l| l.dims), *basis)
            }
            Some(CoarseSpace::Basis { .. }) => self.coarse_model(call, body),
            None => None,
        };
        let (
            Some(lattice),
            Some(blocks),
            Some(space),
            Some(coarse),
            Some(connect),
            Some(smoothing),
            true,
        ) = (lattice, blocks, space, coarse, connect, smoothing, level_ok)
        else {
            *cur = None;
            return;
        };
        if let CoarseSpace::Basis { basis, .. } = space
            && basis > 12 * blocks.iter().product::<usize>()
        {
            *cur = None;
            return;
        }
        let params = (first_param..self.params.len()).map(|i| ParamId(i as u32)).collect();
        let level = Level { name: name.clone(), blocks, space, coarse, connect, smoothing };
        let out = ValueType::Fermion { features: connect.features(), lattice };
        let input = *cur_id;
        self.push_layer(
            LayerKind::CoarseLevel(level),
            vec![input],
            out,
            params,
            name,
            span,
            cur,
            cur_id,
        );
    }

    /// The coarse space: `basis = N` (near-null vectors, with `setup` and `seed`) or
    /// `pool = FAMILY` (gauge-equivariant pooling, no set-up); exactly one of them.
    fn coarse_space(
        &mut self,
        call: &Call,
        a: &ArgSet<'_>,
        blocks: Option<[usize; 4]>,
    ) -> Option<CoarseSpace> {
        if let Some(pool) = a.get("pool") {
            if let Some(b) = a.get("basis") {
                self.err(
                    Problem::new(
                        Code::BadLevel,
                        pool.span,
                        "a level has one coarse space: `pool` and `basis` exclude each other",
                        "pooling",
                    )
                    .note(b.span, "near-null basis")
                    .help(
                        "keep `basis = 12` (near-null vectors of D; coarse model `solve(...)`) or \
                         `pool = lexicographic` (gauge-equivariant pooling; PTC layers on the \
                         coarse gauge field)",
                    ),
                );
            }
            for key in ["setup", "seed"] {
                if let Some(v) = a.get(key) {
                    self.err(
                        Problem::new(
                            Code::BadLevel,
                            v.span,
                            format!("`{key}` configures the near-null set-up, which a pooled level does not have"),
                            "no set-up with `pool`",
                        )
                        .help(format!("remove `{key}`: pooling needs only the gauge field")),
                    );
                }
            }
            let transfer = self.pool_transfer(pool, a.get("reference"), blocks);
            // Even with the problems above, the body is checked as a pooled level's, so that
            // its own mistakes are reported in the same run (the graph is rejected anyway).
            return transfer.map(|transfer| CoarseSpace::Pool { transfer });
        }
        if let Some(r) = a.get("reference") {
            self.err(
                Problem::new(
                    Code::BadLevel,
                    r.span,
                    "`reference` is the point pooling transports start from, and this level does not pool",
                    "only with `pool`",
                )
                .help("remove `reference`, or pool instead of a near-null basis: `pool = lexicographic`"),
            );
        }
        let basis = a
            .require("basis", "basis = 12", &mut self.problems)
            .and_then(|v| args::expect_count(v, "`basis`", &mut self.problems));
        if let (Some(b), Some(n)) = (blocks, basis) {
            let dof = 12 * b.iter().product::<usize>();
            if n > dof {
                let v = a.get("basis").map_or(call.span, |v| v.span);
                self.err(
                    Problem::new(
                        Code::BasisTooLarge,
                        v,
                        format!(
                            "{n} basis vectors per block, but a {} block holds only {dof} complex \
                             degrees of freedom (12 per site)",
                            b.map(|x| x.to_string()).join("x")
                        ),
                        "too many",
                    )
                    .help(format!(
                        "use at most {dof} basis vectors (Lehner & Wettig use 12 on 4x4x4x4 blocks), or larger blocks"
                    )),
                );
            }
        }
        let (it, restart, tol) = self.setup(a.get("setup"));
        let seed = a.get("seed").and_then(|v| args::expect_u64(v, "`seed`", &mut self.problems));
        basis.map(|basis| CoarseSpace::Basis {
            basis,
            setup_iterations: it,
            setup_restart: restart,
            setup_tol: tol,
            seed: seed.unwrap_or(1),
        })
    }

    /// The body of a pooled level: gauge layers on the coarse lattice (its own values and
    /// layers; its parameters continue the network's after the pooling weight, and are
    /// renumbered from 0 for the coarse graph), from one fermion field to one.
    fn coarse_network(
        &mut self,
        call: &Call,
        body: &[Stmt],
        name: &str,
        lattice: Option<Lattice>,
        first_param: usize,
    ) -> Option<CoarseModel> {
        let mut layers_body = Vec::new();
        let mut bad = false;
        for stmt in body {
            if let Stmt::Op { call: c, .. } = stmt
                && c.name.name == "solve"
            {
                self.err(
                    Problem::new(
                        Code::CoarseModel,
                        c.name.span,
                        "`solve` needs the Galerkin operator of a near-null basis, and a pooled level has none",
                        "not in a pooled level",
                    )
                    .help("write gauge layers for the coarse lattice, e.g. `linear(1 -> 1, hops = 1)`, or use `basis = 12` for a coarse solve"),
                );
                bad = true;
                continue;
            }
            layers_body.push(stmt.clone());
        }
        if !layers_body.iter().any(|s| matches!(s, Stmt::Op { .. } | Stmt::Residual { .. })) {
            if !bad {
                self.err(
                    Problem::new(
                        Code::CoarseModel,
                        call.span,
                        format!("level `{}` has no coarse model", call.name.name),
                        "empty level",
                    )
                    .help("say what runs on the coarse lattice, e.g. `{ linear(1 -> 1, hops = 1) }`: a PTC layer on the coarse gauge field"),
                );
            }
            return None;
        }
        let lattice = lattice?;
        let input = ValueType::Fermion { features: 1, lattice };
        // The coarse layers are checked like any others, into their own value and layer lists.
        let values = std::mem::replace(&mut self.values, vec![input.clone()]);
        let layers = std::mem::take(&mut self.layers);
        let mut cur = Some(input.clone());
        let mut cur_id = ValueId(0);
        self.coarse_level = Some(name.to_string());
        self.body(&layers_body, &mut cur, &mut cur_id, false);
        self.coarse_level = None;
        let coarse_values = std::mem::replace(&mut self.values, values);
        let coarse_layers = std::mem::replace(&mut self.layers, layers);
        match &cur {
            Some(t) if *t == input => {}
            Some(t) => {
                self.err(
                    Problem::new(
                        Code::CoarseModel,
                        call.span,
                        format!(
                            "the coarse network must give back one fermion field, but it gives {}",
                            super::types::describe(t)
                        ),
                        "unpooling takes one field",
                    )
                    .help("end the level's body with a layer that gives one field, e.g. `linear(2 -> 1, hops = 1)`"),
                );
                return None;
            }
            None => return None,
        }
        if bad {
            return None;
        }
        // Renumber: the coarse graph's parameters start at id 0 and offset 0.
        let own: Vec<_> = self.params[first_param..].to_vec();
        let skip = usize::from(!own.is_empty() && own[0].name == format!("{name}.pool"));
        let base = own.get(skip).map_or(0, |p| p.offset);
        let params = own[skip..]
            .iter()
            .map(|p| crate::ir::Param { offset: p.offset - base, ..p.clone() })
            .collect();
        let shift = (first_param + skip) as u32;
        let layers = coarse_layers
            .into_iter()
            .map(|mut l| {
                l.params = l.params.iter().map(|p| ParamId(p.0 - shift)).collect();
                l
            })
            .collect();
        Some(CoarseModel::Network(Box::new(Graph {
            name: format!("{name}.coarse"),
            symmetry: Symmetry::GaugeSu3,
            lattice: Some(lattice),
            values: coarse_values,
            input_name: format!("{name}.pooled"),
            layers,
            params,
            output: cur_id,
            train: None,
            split_of: None,
        })))
    }

    /// A level must be the first layer of a gauge network on one fermion field.
    fn level_place(&mut self, call: &Call, span: Span, top: bool, cur: Option<&ValueType>) -> bool {
        let help_first = "put the `level` block right after the declarations: the layers after it \
                          are the smoother of its coarse correction";
        if self.sym.ir != Symmetry::GaugeSu3 {
            self.err(
                Problem::new(
                    Code::BadSymmetry,
                    call.span,
                    "a multigrid `level` needs the gauge symmetry",
                    "coarse space of the Dirac operator",
                )
                .note(self.sym.span, "the network's symmetry")
                .help("a level restricts fermion fields onto near-null vectors of the Dirac operator: declare `symmetry gauge(SU3), translation`"),
            );
            return false;
        }
        if !top {
            self.err(
                Problem::new(
                    Code::BadLevel,
                    span,
                    "a `level` cannot be nested inside a `residual` or another `level`",
                    "nested here",
                )
                .help(help_first),
            );
            return false;
        }
        if let Some(first) = self.layers.first() {
            let (msg, label) = if matches!(first.kind, LayerKind::CoarseLevel(_)) {
                ("a network has one coarse level (two-level multigrid)", "a second level")
            } else {
                ("a `level` must be the network's first layer", "after other layers")
            };
            self.err(
                Problem::new(Code::BadLevel, span, msg, label)
                    .note(first.span, "the first layer")
                    .help(help_first),
            );
            return false;
        }
        match cur {
            Some(ValueType::Fermion { features: 1, .. }) | None => true,
            Some(t) => {
                self.err(
                    Problem::new(
                        Code::BadLevel,
                        call.span,
                        format!(
                            "a `level` restricts one fermion field, but it receives {}",
                            super::types::describe(t)
                        ),
                        "needs one fermion field",
                    )
                    .help("declare `input v: fermion` (one field): a multigrid network preconditions one vector"),
                );
                false
            }
        }
    }

    /// `blocks = [bx, by, bz, bt]`: four positive extents that divide the lattice.
    fn blocks(&mut self, v: &Value, dims: Option<[usize; 4]>) -> Option<[usize; 4]> {
        let ValueKind::List(items) = &v.kind else {
            self.err(args::mistyped(
                v,
                "`blocks`",
                "a list of four block extents, e.g. `[4, 4, 4, 4]`",
            ));
            return None;
        };
        if items.len() != 4 {
            self.err(
                Problem::new(
                    Code::BadBlocks,
                    v.span,
                    format!(
                        "`blocks` needs one extent per direction (x, y, z, t), found {}",
                        items.len()
                    ),
                    "four extents",
                )
                .help("write e.g. `blocks = [4, 4, 4, 4]`"),
            );
            return None;
        }
        let mut out = [0usize; 4];
        for (mu, item) in items.iter().enumerate() {
            out[mu] = args::expect_count(item, "a block extent", &mut self.problems)?;
        }
        let dims = dims?;
        let mut ok = true;
        for mu in 0..4 {
            if dims[mu] % out[mu] != 0 {
                let dir = ["x", "y", "z", "t"][mu];
                let divisors: Vec<String> =
                    (1..=dims[mu]).filter(|d| dims[mu] % d == 0).map(|d| d.to_string()).collect();
                self.err(
                    Problem::new(
                        Code::BadBlocks,
                        items[mu].span,
                        format!(
                            "blocks of extent {} do not tile the lattice extent {} in {dir}",
                            out[mu], dims[mu]
                        ),
                        format!("does not divide {}", dims[mu]),
                    )
                    .help(format!(
                        "a block extent in {dir} must divide {}: one of {}",
                        dims[mu],
                        divisors.join(", ")
                    )),
                );
                ok = false;
            }
        }
        ok.then_some(out)
    }

    /// `setup = gmres(iterations = 40, restart = 20, tol = 1e-7)`: how the near-null vectors
    /// are made. Defaults are the measured ones of `runtime::multigrid` (40 iterations of
    /// GMRES(20), qcd_ml's tolerance 1e-7).
    fn setup(&mut self, v: Option<&Value>) -> (usize, usize, f64) {
        let mut out = (40, 20, 1e-7);
        let Some(v) = v else { return out };
        let ValueKind::Call(c) = &v.kind else {
            self.err(args::mistyped(
                v,
                "`setup`",
                "`gmres(iterations = 40, restart = 20, tol = 1e-7)`",
            ));
            return out;
        };
        if c.name.name != "gmres" {
            self.err(
                Problem::new(
                    Code::BadArgument,
                    c.name.span,
                    format!("unknown set-up solver `{}`", c.name.name),
                    "unknown",
                )
                .help("the near-null vectors are made by `gmres(iterations = 40, restart = 20, tol = 1e-7)`"),
            );
            return out;
        }
        let a = ArgSet::read(c, &["iterations", "restart", "tol"], &[], &[], &mut self.problems);
        if let Some(n) = a
            .get("iterations")
            .and_then(|v| args::expect_count(v, "`iterations`", &mut self.problems))
        {
            out.0 = n;
        }
        if let Some(n) =
            a.get("restart").and_then(|v| args::expect_count(v, "`restart`", &mut self.problems))
        {
            out.1 = n;
        }
        if let Some(t) = a.get("tol").and_then(|v| self.tolerance(v)) {
            out.2 = t;
        }
        out
    }

    /// A relative tolerance in (0, 1).
    fn tolerance(&mut self, v: &Value) -> Option<f64> {
        let t = args::expect_f64(v, "`tol`", &mut self.problems)?;
        if !(t > 0.0 && t < 1.0) {
            self.err(
                Problem::new(
                    Code::BadArgument,
                    v.span,
                    format!("`tol` must lie between 0 and 1, found {t}"),
                    "out of range",
                )
                .help("a relative residual such as `tol = 5e-2`"),
            );
            return None;
        }
        Some(t)
    }

    /// The body of a level: exactly one coarse model.
    fn coarse_model(&mut self, call: &Call, body: &[Stmt]) -> Option<CoarseModel> {
        let mut model = None;
        let mut seen: Option<Span> = None;
        for stmt in body {
            let Stmt::Op { call: c, span, .. } = stmt else {
                self.err(
                    Problem::new(Code::CoarseModel, stmt.span(), "only a coarse model can stand inside a `level`", "not a coarse model")
                        .help("declarations and `residual` blocks belong to the fine network; inside a level write e.g. `solve(tol = 5e-2, restart = 25, iterations = 50)`"),
                );
                continue;
            };
            if let Some(first) = seen {
                self.err(
                    Problem::new(
                        Code::CoarseModel,
                        *span,
                        "a level has one coarse model",
                        "a second one",
                    )
                    .note(first, "the coarse model")
                    .help("remove one of them"),
                );
                continue;
            }
            seen = Some(*span);
            let word = c.name.name.as_str();
            if !COARSE_MODELS.contains(&word) {
                let help = if super::layers::LAYERS.contains(&word) {
                    "a near-null level's coarse lattice has no gauge field, so gauge layers cannot run there: on it write `solve(tol = 5e-2, restart = 25, iterations = 50)` or coarse layers `linear(1 -> 1, hops = 1, local)` (n_basis x n_basis weights per displacement); for gauge layers use `pool = lexicographic` instead of `basis`; fine-lattice layers go after the level".to_string()
                } else {
                    args::suggest_help(word, COARSE_MODELS, "coarse models are")
                };
                self.err(
                    Problem::new(
                        Code::CoarseModel,
                        c.name.span,
                        format!("`{word}` cannot run on the coarse lattice"),
                        "not a coarse model",
                    )
                    .help(help),
                );
                continue;
            }
            let a =
                ArgSet::read(c, &["tol", "restart", "iterations"], &[], &[], &mut self.problems);
            let tol = a.get("tol").map_or(Some(5e-2), |v| self.tolerance(v));
            let restart = a
                .get("restart")
                .map_or(Some(25), |v| args::expect_count(v, "`restart`", &mut self.problems));
            let iterations = a
                .get("iterations")
                .map_or(Some(50), |v| args::expect_count(v, "`iterations`", &mut self.problems));
            if let (Some(tol), Some(restart), Some(iterations)) = (tol, restart, iterations) {
                model = Some(CoarseModel::Solve { tol, restart, iterations });
            }
        }
        if seen.is_none() {
            self.err(
                Problem::new(
                    Code::CoarseModel,
                    call.span,
                    format!("level `{}` has no coarse model", call.name.name),
                    "empty level",
                )
                .help("say what runs on the coarse lattice, e.g. `{ solve(tol = 5e-2, restart = 25, iterations = 50) }`"),
            );
        }
        model
    }
}
