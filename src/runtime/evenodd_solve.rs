//! An even-odd preconditioned solve of D x = b as one library call, for `symc solve --evenodd`
//! and for anything else that wants D⁻¹ b faster: prepare the reduced right-hand side, solve
//! the Schur system on the compiled operator ([`JitSchur`]), reconstruct the odd sites, and
//! report like the full solve — the same [`SolveReport`], with the *full-system* true residual
//! ‖b − D x‖/‖b‖ recomputed in f64 from the returned x.
//!
//! Why a separate entry point and not just an operator: the reduced system has its own
//! right-hand side, tolerance and unknown (for [`SchurVariant::RightNormalised`] the unknown is
//! A_ee x_e), and getting any of them wrong still "converges" — to the wrong thing. Here they
//! are done once, tested against the reference (`tests/evenodd_jit.rs`).
//!
//! **Tolerance.** The reduced solve runs to `lattice::evenodd::Schur::reduced_tolerance`: for
//! `Plain` and `RightNormalised` the reduced residual *is* the even half of the full residual
//! (the odd half vanishes by construction of x_o), so the tolerance is only rescaled from ‖b‖
//! to ‖b̂‖ and the full-system residual meets `tol` exactly (up to rounding in the
//! reconstruction); `LeftNormalised` minimises A_ee⁻¹ r and is tightened by a bound on ‖A_ee‖.
//!
//! **Precision.** [`SolvePrecision::Mixed`] runs (F)GMRES with f32 restart cycles on the f32
//! kernels in their own layout and f64 residuals on the f64 kernels (`solve::gmres_mixed`);
//! BiCGStab and CGNE then run in f64 on the f64 kernels (as the full `symc solve` does).
//! [`SolvePrecision::F64`] runs every solver in f64; [`SolvePrecision::F32`] runs every solver
//! in f64 on the f32 kernels (an f32 operator inside an f64 solver: about 1e-6 at best).
//!
//! **Report.** `iterations` and the applications are the reduced solver's (one application of
//! D̂ costs about one of D), plus one application of D for the full-system residual;
//! `seconds` is the wall time of the whole call (preparation, solve, reconstruction, check);
//! `history` is rescaled from ‖b̂‖ to ‖b‖, so for `Plain` and `RightNormalised` it is the full
//! relative residual of the reconstructed iterate (for `LeftNormalised`, ‖A_ee⁻¹ r_e‖/‖b‖).
//!
//! **Preconditioning.** A right preconditioner of the reduced system plugs in through the
//! solver traits ([`ReducedPreconditioner`]): `solve::Preconditioner<f64>` on reference-layout
//! even half-lattice vectors for f64 FGMRES, `solve::NativePreconditioner` on the f32 layout of
//! [`EvenOddSolver::schur32`] for mixed FGMRES. It must approximate the inverse of the reduced
//! operator of the chosen variant (for `RightNormalised`, (D̂ A_ee⁻¹)⁻¹ = A_ee D̂⁻¹).

use super::dirac::{DiracOptions, JitWilsonClover};
use super::schur::{JitSchur, JitSchurError};
use crate::lattice::evenodd::{EvenOdd, Schur, SchurVariant};
use crate::lattice::gauge::GaugeField;
use crate::lattice::wilson::DiracParams;
use crate::solve::{
    self, AdjointOperator, IdentityPreconditioner, LinearOperator, MixedPrecision, MixedWorkspace,
    NativeOperator, NativePreconditioner, Preconditioner, SolveParams, SolveReport, global_norm,
};
use num_complex::Complex64;
use std::time::Instant;

/// The Krylov solver of the reduced system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReducedSolver {
    Gmres,
    Fgmres,
    Bicgstab,
    Cgne,
}

impl ReducedSolver {
    /// The solver's name in reports (as the full solve's).
    pub fn name(self) -> &'static str {
        match self {
            ReducedSolver::Gmres => "gmres",
            ReducedSolver::Fgmres => "fgmres",
            ReducedSolver::Bicgstab => "bicgstab",
            ReducedSolver::Cgne => "cgne",
        }
    }
}

/// The precision of the reduced solve (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolvePrecision {
    /// f32 (F)GMRES cycles with f64 residuals; BiCGStab and CGNE in f64.
    Mixed,
    /// Everything in f64.
    F64,
    /// The f32 kernels inside the f64 solvers (every solver; the reachable full-system
    /// residual is about 1e-6, as for the full system's `--precision f32`).
    F32,
}

/// How to solve: Schur variant, solver, precision, and the full-system stopping parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvenOddOptions {
    pub variant: SchurVariant,
    pub solver: ReducedSolver,
    pub precision: SolvePrecision,
    /// `tol` is the target of the *full-system* relative residual ‖b − D x‖/‖b‖.
    pub params: SolveParams,
}

impl Default for EvenOddOptions {
    /// The fastest combination measured (module doc of `runtime::schur`): mixed-precision
    /// GMRES(30) on the default Schur variant, to 1e-8.
    fn default() -> Self {
        EvenOddOptions {
            variant: SchurVariant::default(),
            solver: ReducedSolver::Gmres,
            precision: SolvePrecision::Mixed,
            params: SolveParams::default(),
        }
    }
}

/// A right preconditioner of the reduced system (module doc).
pub enum ReducedPreconditioner<'a> {
    /// None (FGMRES is then GMRES).
    Identity,
    /// On reference-layout even half-lattice vectors; f64 FGMRES only.
    F64(&'a mut dyn Preconditioner<f64>),
    /// On f32 buffers in the layout of [`EvenOddSolver::schur32`]; mixed FGMRES only.
    Native(&'a mut dyn NativePreconditioner),
}

impl ReducedPreconditioner<'_> {
    fn kind(&self) -> &'static str {
        match self {
            ReducedPreconditioner::Identity => "no",
            ReducedPreconditioner::F64(_) => "an f64",
            ReducedPreconditioner::Native(_) => "a native f32",
        }
    }
}

/// Everything that can go wrong in an even-odd solve.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EvenOddSolveError {
    /// The lattice has no even-odd structure or JIT layout, a clover block is singular, or a
    /// kernel failed to compile.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Setup(#[from] JitSchurError),

    #[error("the full Wilson-clover operator for the residual check: {0}")]
    #[diagnostic(code(symc::evenodd::full_operator))]
    FullOperator(String),

    #[error("{0}")]
    #[diagnostic(code(symc::evenodd::kernel))]
    Kernel(String),

    #[error("{kind} preconditioner cannot be used with {precision:?} {solver}")]
    #[diagnostic(
        code(symc::evenodd::preconditioner),
        help(
            "a right preconditioner needs FGMRES: an f64 one (solve::Preconditioner) with \
             SolvePrecision::F64, a native f32 one (solve::NativePreconditioner) with \
             SolvePrecision::Mixed"
        )
    )]
    Preconditioner { kind: &'static str, solver: &'static str, precision: SolvePrecision },

    #[error("right-hand side of length {found}, the lattice needs 12 V = {expected}")]
    #[diagnostic(code(symc::evenodd::length))]
    Length { expected: usize, found: usize },
}

/// What an even-odd solve needs of its operators, on one process ([`EvenOddSolver`]) or split
/// over several (`runtime::distributed::evenodd`): [`solve_system`] is written once against
/// it. Vectors are this process's part (all of them on one process); the operators'
/// `global_sum` makes every norm global, so every process takes the same decisions.
pub trait EvenOddSystem {
    /// D̂ in f64 on reference-layout even half-lattice vectors.
    fn schur64(&self) -> &dyn AdjointOperator<f64>;
    /// The f32 D̂ of mixed (F)GMRES cycles and [`SolvePrecision::F32`], as an operator on
    /// reference-layout vectors and on f32 buffers in its own layout.
    fn schur32(&self) -> Option<(&dyn AdjointOperator<f32>, &dyn NativeOperator)>;
    /// Length of a full-system vector (12 V).
    fn full_len(&self) -> usize;
    /// b̂ from b (`lattice::evenodd::Schur::prepare`).
    fn prepare(&self, b: &[Complex64]) -> Result<Vec<Complex64>, EvenOddSolveError>;
    /// x from the reduced solution and b (`lattice::evenodd::Schur::reconstruct`).
    fn reconstruct(
        &self,
        u: &[Complex64],
        b: &[Complex64],
    ) -> Result<Vec<Complex64>, EvenOddSolveError>;
    /// out = D x in f64, for the full-system residual.
    fn full_apply(&self, out: &mut [Complex64], x: &[Complex64]);
    /// [`Schur::tolerance_scale`] of the variant.
    fn tolerance_scale(&self) -> f64;
}

/// The operators of an even-odd solve on one process.
struct Local {
    /// The reference Schur operator: the reduced tolerance (its bound on ‖A_ee‖).
    reference: Schur<f64>,
    d64: JitSchur<f64>,
    /// The f32 operator of mixed solves.
    d32: Option<JitSchur<f32>>,
    /// D in f64 for the full-system residual.
    full: JitWilsonClover<f64>,
}

impl EvenOddSystem for Local {
    fn schur64(&self) -> &dyn AdjointOperator<f64> {
        &self.d64
    }
    fn schur32(&self) -> Option<(&dyn AdjointOperator<f32>, &dyn NativeOperator)> {
        self.d32.as_ref().map(|d| (d as &dyn AdjointOperator<f32>, d as &dyn NativeOperator))
    }
    fn full_len(&self) -> usize {
        self.full.vector_len()
    }
    fn prepare(&self, b: &[Complex64]) -> Result<Vec<Complex64>, EvenOddSolveError> {
        Ok(self.d64.prepare(b)?)
    }
    fn reconstruct(
        &self,
        u: &[Complex64],
        b: &[Complex64],
    ) -> Result<Vec<Complex64>, EvenOddSolveError> {
        Ok(self.d64.reconstruct(u, b)?)
    }
    fn full_apply(&self, out: &mut [Complex64], x: &[Complex64]) {
        self.full.apply(out, x)
    }
    fn tolerance_scale(&self) -> f64 {
        self.reference.tolerance_scale()
    }
}

/// The compiled even-odd solver of one gauge field, mass and c_sw: build once, solve for many
/// right-hand sides (the f32 Krylov vectors are kept between solves).
pub struct EvenOddSolver {
    options: EvenOddOptions,
    parts: Local,
    ws: MixedWorkspace,
}

impl EvenOddSolver {
    /// Builds the even-odd blocks and compiles the operators. Errors (no panics) for odd
    /// extents, lattices without a half-lattice SIMD layout and singular clover blocks.
    pub fn new(
        gauge: &GaugeField,
        params: &DiracParams,
        options: EvenOddOptions,
    ) -> Result<Self, EvenOddSolveError> {
        let eo = EvenOdd::<f64>::new(gauge, params).map_err(JitSchurError::from)?;
        let opts = DiracOptions::default();
        let d64 = JitSchur::<f64>::from_even_odd(&eo, options.variant, &opts)?;
        let d32 = if options.needs_f32() {
            Some(JitSchur::<f32>::from_even_odd(&eo, options.variant, &opts)?)
        } else {
            None
        };
        let full = JitWilsonClover::<f64>::new(gauge, params, &opts)
            .map_err(|e| EvenOddSolveError::FullOperator(e.to_string()))?;
        let reference = Schur::new(eo, options.variant);
        let parts = Local { reference, d64, d32, full };
        Ok(EvenOddSolver { options, parts, ws: MixedWorkspace::new() })
    }

    pub fn options(&self) -> &EvenOddOptions {
        &self.options
    }

    /// The f64 Schur operator (reference-layout vectors).
    pub fn schur64(&self) -> &JitSchur<f64> {
        &self.parts.d64
    }

    /// The f32 Schur operator of mixed (F)GMRES, whose layout a native preconditioner works in.
    pub fn schur32(&self) -> Option<&JitSchur<f32>> {
        self.parts.d32.as_ref()
    }

    /// Solves D x = b (12 V, reference layout) from x = 0; returns x and the report.
    pub fn solve(
        &mut self,
        b: &[Complex64],
    ) -> Result<(Vec<Complex64>, SolveReport), EvenOddSolveError> {
        self.solve_with(ReducedPreconditioner::Identity, b)
    }

    /// [`solve`](Self::solve) with a right preconditioner of the reduced system.
    pub fn solve_with(
        &mut self,
        prec: ReducedPreconditioner<'_>,
        b: &[Complex64],
    ) -> Result<(Vec<Complex64>, SolveReport), EvenOddSolveError> {
        solve_system(&self.parts, &mut self.ws, &self.options, prec, b)
    }
}

impl EvenOddOptions {
    /// Whether the solve runs the f32 operator: f32 cycles of mixed (F)GMRES (mixed BiCGStab
    /// and CGNE run in f64), or every solver with [`SolvePrecision::F32`].
    pub fn needs_f32(&self) -> bool {
        let cycles = matches!(self.solver, ReducedSolver::Gmres | ReducedSolver::Fgmres);
        match self.precision {
            SolvePrecision::Mixed => cycles,
            SolvePrecision::F32 => true,
            SolvePrecision::F64 => false,
        }
    }
}

/// Solves D x = b (this process's part of b, reference layout) from x = 0 on the operators of
/// `sys`, with `options` and a right preconditioner of the reduced system; returns x and the
/// report (module doc), the same on every process.
pub fn solve_system(
    sys: &dyn EvenOddSystem,
    ws: &mut MixedWorkspace,
    options: &EvenOddOptions,
    prec: ReducedPreconditioner<'_>,
    b: &[Complex64],
) -> Result<(Vec<Complex64>, SolveReport), EvenOddSolveError> {
    let start = Instant::now();
    let EvenOddOptions { solver, precision, params, .. } = *options;
    let n = sys.full_len();
    if b.len() != n {
        return Err(EvenOddSolveError::Length { expected: n, found: b.len() });
    }
    let mismatch = |prec: &ReducedPreconditioner<'_>| EvenOddSolveError::Preconditioner {
        kind: prec.kind(),
        solver: solver.name(),
        precision,
    };
    let fits = match (&prec, solver, precision) {
        (ReducedPreconditioner::Identity, _, _) => true,
        (
            ReducedPreconditioner::F64(_),
            ReducedSolver::Fgmres,
            SolvePrecision::F64 | SolvePrecision::F32,
        ) => true,
        (ReducedPreconditioner::Native(_), ReducedSolver::Fgmres, SolvePrecision::Mixed) => true,
        _ => false,
    };
    if !fits {
        return Err(mismatch(&prec));
    }
    let d64 = sys.schur64();
    let zero = Complex64::new(0.0, 0.0);
    let bnorm = global_norm(d64, b);
    if bnorm == 0.0 {
        let rep = SolveReport::zero_rhs(solver.name(), start);
        return Ok((vec![zero; n], rep));
    }
    let bhat = sys.prepare(b)?;
    let bhat_norm = global_norm(d64, &bhat);
    // As `lattice::evenodd::Schur::reduced_tolerance`, with global norms.
    let tol = if bhat_norm == 0.0 {
        params.tol
    } else {
        params.tol * bnorm / (bhat_norm * sys.tolerance_scale())
    };
    let reduced = SolveParams { tol, ..params };
    // x = 0 is u = 0 in every variant (u = A_ee x_e for RightNormalised).
    let mut u = vec![zero; bhat.len()];
    let kernel = |e: solve::MixedError| EvenOddSolveError::Kernel(e.to_string());
    let rep = match (solver, sys.schur32(), prec) {
        (_, Some((d32, _)), prec) if precision == SolvePrecision::F32 => {
            let op = MixedPrecision::new(d32);
            match (solver, prec) {
                (ReducedSolver::Gmres, _) => solve::gmres(&op, &bhat, &mut u, &reduced),
                (ReducedSolver::Fgmres, ReducedPreconditioner::F64(p)) => {
                    solve::fgmres(&op, p, &bhat, &mut u, &reduced)
                }
                (ReducedSolver::Fgmres, _) => {
                    solve::fgmres(&op, &mut IdentityPreconditioner, &bhat, &mut u, &reduced)
                }
                (ReducedSolver::Bicgstab, _) => solve::bicgstab(&op, &bhat, &mut u, &reduced),
                (ReducedSolver::Cgne, _) => solve::cgne(&op, &bhat, &mut u, &reduced),
            }
        }
        (ReducedSolver::Gmres | ReducedSolver::Fgmres, Some((_, d32)), prec) => match prec {
            ReducedPreconditioner::Native(p) => {
                solve::fgmres_mixed(ws, d64, d32, p, &bhat, &mut u, &reduced).map_err(kernel)?
            }
            _ => solve::gmres_mixed(ws, d64, d32, &bhat, &mut u, &reduced).map_err(kernel)?,
        },
        (ReducedSolver::Gmres, None, _) => solve::gmres(d64, &bhat, &mut u, &reduced),
        (ReducedSolver::Fgmres, None, ReducedPreconditioner::F64(p)) => {
            solve::fgmres(d64, p, &bhat, &mut u, &reduced)
        }
        (ReducedSolver::Fgmres, None, _) => {
            solve::fgmres(d64, &mut IdentityPreconditioner, &bhat, &mut u, &reduced)
        }
        (ReducedSolver::Bicgstab, _, _) => solve::bicgstab(d64, &bhat, &mut u, &reduced),
        (ReducedSolver::Cgne, _, _) => solve::cgne(d64, &bhat, &mut u, &reduced),
    };
    let x = sys.reconstruct(&u, b)?;
    let mut r = vec![zero; n];
    sys.full_apply(&mut r, &x);
    for (ri, bi) in r.iter_mut().zip(b) {
        *ri = *bi - *ri;
    }
    let true_residual = global_norm(d64, &r) / bnorm;
    let scale = bhat_norm / bnorm;
    let report = SolveReport {
        solver: solver.name().into(),
        iterations: rep.iterations,
        operator_applications: rep.operator_applications + 1,
        preconditioner_applications: rep.preconditioner_applications,
        seconds: start.elapsed().as_secs_f64(),
        true_residual,
        history: rep.history.iter().map(|h| h * scale).collect(),
        converged: true_residual <= params.tol,
    };
    Ok((x, report))
}

/// Solves D x = b for every source with the even-odd solver: the operators are built once.
/// Returns (x, report) per source.
pub fn solve_evenodd(
    gauge: &GaugeField,
    params: &DiracParams,
    sources: &[Vec<Complex64>],
    options: EvenOddOptions,
) -> Result<Vec<(Vec<Complex64>, SolveReport)>, EvenOddSolveError> {
    let mut solver = EvenOddSolver::new(gauge, params, options)?;
    sources.iter().map(|b| solver.solve(b)).collect()
}
