//! The body of a near-null (`basis = N`) level when it holds coarse layers instead of a
//! coarse solve: Lehner & Wettig's coarse model lPTC_NG (models.md §2.3), non-gauge layers on
//! the n_basis-component coarse field,
//!
//! ```text
//! level coarse(blocks = [4, 4, 4, 4], basis = 12) {
//!     lptc = linear(1 -> 1, hops = 1, local)   // out(X) = Σ_p W_p(X) in(X + Δ_p)
//! }
//! ```
//!
//! The coarse lattice of a near-null level has no gauge field (P† mixes colour, spin and the
//! sites of a block into n_basis numbers), so a layer there is not a PTC: its weights are
//! complex n_basis × n_basis matrices, one per displacement (and per coarse site with `local`),
//! and a path is only its displacement. Layers that need a gauge field (`transport`,
//! `norm_gate`'s gauge-covariant norm of one spinor, PTC on several fields) are refused here
//! with a pointer to `pool`, whose coarse lattice carries an SU(3) field.

use super::Checker;
use crate::diagnostics::{Code, Problem};
use crate::ir::{CoarseLayer, CoarseModel, Span, coarse_weight_shape};
use crate::sema::args::ArgSet;
use crate::syntax::ast::{Stmt, ValueKind};

impl Checker<'_> {
    /// Whether a near-null level's body is written as coarse layers (any `linear` in it) rather
    /// than as a coarse solve.
    pub(super) fn has_coarse_layers(body: &[Stmt]) -> bool {
        body.iter().any(|s| matches!(s, Stmt::Op { call, .. } if call.name.name == "linear"))
    }

    /// The coarse layers of a near-null level on coarse extents `dims` (`None` when the
    /// lattice is unknown) with `n_basis` components per coarse site; each layer appends its
    /// weight `NAME.weight` to the network's parameters.
    pub(super) fn coarse_layers(
        &mut self,
        level: &str,
        body: &[Stmt],
        dims: Option<[usize; 4]>,
        n_basis: usize,
    ) -> Option<CoarseModel> {
        let mut layers = Vec::new();
        let mut ok = true;
        // Diagnostics about paths name the coarse lattice of this level.
        self.coarse_level = Some(level.to_string());
        let first_layer = body.iter().find_map(|s| match s {
            Stmt::Op { call, span, .. } if call.name.name == "linear" => Some(*span),
            _ => None,
        });
        for stmt in body {
            let Stmt::Op { label, call: c, span } = stmt else {
                self.err(
                    Problem::new(
                        Code::CoarseModel,
                        stmt.span(),
                        "only coarse layers can stand inside this `level`",
                        "not a coarse layer",
                    )
                    .help("declarations and `residual` blocks belong to the fine network; inside a near-null level write e.g. `linear(1 -> 1, hops = 1, local)`"),
                );
                ok = false;
                continue;
            };
            let word = c.name.name.as_str();
            if word == "solve" {
                let mut p = Problem::new(
                    Code::CoarseModel,
                    c.name.span,
                    format!("level `{level}` mixes a coarse solve with coarse layers"),
                    "a coarse solve",
                );
                if let Some(first) = first_layer {
                    p = p.note(first, "a coarse layer");
                }
                self.err(p.help(
                    "a level has one coarse model: either `solve(tol = 5e-2, restart = 25, iterations = 50)` (GMRES on P†DP) or trained layers such as `linear(1 -> 1, hops = 1, local)`; remove one of them",
                ));
                ok = false;
                continue;
            }
            if let Some(l) = label {
                self.define_name(l);
            }
            if word != "linear" {
                self.err(
                    Problem::new(
                        Code::CoarseModel,
                        c.name.span,
                        format!("`{word}` cannot run on the coarse lattice of a near-null level"),
                        "needs a gauge field",
                    )
                    .help(format!(
                        "the coarse lattice of a `basis` level holds {n_basis} coarse components per site and no gauge field, so only `linear(1 -> 1, hops = 1[, local])` layers run there; for gauge layers on a coarse lattice use `pool = lexicographic` instead of `basis`"
                    )),
                );
                ok = false;
                continue;
            }
            let name = match label {
                Some(l) => l.name.clone(),
                None => self.generated_name("linear"),
            };
            match self.coarse_layer(c, *span, name, dims, n_basis) {
                Some(layer) => layers.push(layer),
                None => ok = false,
            }
        }
        self.coarse_level = None;
        (ok && dims.is_some() && !layers.is_empty()).then_some(CoarseModel::Layers(layers))
    }

    /// One `linear(1 -> 1, hops = 1[, local])` on the coarse lattice.
    fn coarse_layer(
        &mut self,
        c: &crate::syntax::ast::Call,
        span: Span,
        name: String,
        dims: Option<[usize; 4]>,
        n_basis: usize,
    ) -> Option<CoarseLayer> {
        let a = ArgSet::read(
            c,
            &["features", "window", "padding", "bias", "hops", "paths"],
            &["features"],
            &["long", "local"],
            &mut self.problems,
        );
        let mut ok = true;
        match a.get("features").map(|v| &v.kind) {
            Some(ValueKind::Features(1, 1)) => {}
            Some(ValueKind::Features(i, o)) => {
                let sp = a.get("features").map_or(c.span, |v| v.span);
                self.err(
                    Problem::new(
                        Code::ShapeMismatch,
                        sp,
                        format!("a coarse layer maps one coarse field to one, not {i} -> {o}"),
                        "must be 1 -> 1",
                    )
                    .help("write `linear(1 -> 1, hops = 1, local)`: P† gives one coarse field and P takes one back; stack several 1 -> 1 layers for depth"),
                );
                ok = false;
            }
            _ => {
                let sp = a.get("features").map_or(c.span, |v| v.span);
                self.err(
                    Problem::new(
                        Code::MissingArgument,
                        sp,
                        "a coarse layer needs its features `1 -> 1`",
                        "features missing",
                    )
                    .help("write `linear(1 -> 1, hops = 1, local)`"),
                );
                ok = false;
            }
        }
        for key in ["window", "padding", "bias"] {
            if let Some(v) = a.get(key) {
                self.err(
                    Problem::new(
                        Code::BadArgument,
                        v.span,
                        format!("`{key}` has no meaning for a coarse layer"),
                        "not on the coarse lattice",
                    )
                    .help(format!(
                        "remove `{key}`: a coarse layer is a linear stencil of `hops`/`paths` displacements with n_basis x n_basis weights (a bias would make the preconditioner affine)"
                    )),
                );
                ok = false;
            }
        }
        let reach = self.reach(&a);
        let dims = dims?;
        let offsets = self.coarse_offsets(&reach, dims)?;
        let local = reach.local.is_some();
        if !ok {
            return None;
        }
        let volume = dims.iter().product();
        let layer = CoarseLayer { name: name.clone(), offsets, local, span };
        let shape = coarse_weight_shape(&layer, volume, n_basis);
        self.param(format!("{name}.weight"), shape, true, c.span)?;
        Some(layer)
    }
}
