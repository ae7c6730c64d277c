//! A batch of solves: every source solved with one or more solver set-ups, and the reports
//! summarised. This is the one code path behind `symc solve` (one set-up: the chosen solver,
//! with or without a trained preconditioner) and behind the evaluation that ends a
//! preconditioner run (two set-ups: GMRES without, FGMRES with the network), so both measure a
//! solve the same way: same dispatch to the mixed-precision or f64 solvers, same workspace
//! reuse, same true residual.
//!
//! Like the rest of `solve`, it sees the operator and the preconditioner only through traits:
//! a [`System`] says which operator the solvers run on (and whether an f32 operator in its own
//! layout makes (F)GMRES run in mixed precision), a [`RightPreconditioner`] gives M on either
//! kind of vector. Building them from a gauge field is the runtime's business.

use super::{
    AdjointOperator, IdentityPreconditioner, LinearOperator, MixedError, MixedWorkspace,
    NativeOperator, NativePreconditioner, Preconditioner, SolveParams, SolveReport,
};
use crate::lattice::fermion;
use num_complex::Complex64;
use thiserror::Error;

/// The Krylov solvers a batch can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolverKind {
    /// Flexible GMRES(m) with a right preconditioner (M = 1 without one).
    Fgmres,
    /// GMRES(m).
    Gmres,
    Bicgstab,
    /// CG on the normal equations.
    Cgne,
}

impl SolverKind {
    /// The name used in reports and summaries (`fgmres`, `gmres`, `bicgstab`, `cgne`).
    pub fn name(self) -> &'static str {
        match self {
            SolverKind::Fgmres => "fgmres",
            SolverKind::Gmres => "gmres",
            SolverKind::Bicgstab => "bicgstab",
            SolverKind::Cgne => "cgne",
        }
    }

    /// Whether it restarts after m iterations (and so takes `SolveParams::restart`), and can
    /// therefore run its restart cycles in f32 (see [`super::gmres_mixed`]).
    pub fn is_restarted(self) -> bool {
        matches!(self, SolverKind::Fgmres | SolverKind::Gmres)
    }
}

/// The operator D of a batch as the solvers see it.
#[derive(Clone, Copy)]
pub struct System<'a> {
    /// D on f64 vectors in the reference layout: the whole solve in f64, BiCGStab and CGNE,
    /// and the f64 residuals at the restarts of a mixed-precision solve.
    pub op: &'a dyn AdjointOperator<f64>,
    /// D on f32 vectors in its own layout: with it GMRES and FGMRES run their restart cycles in
    /// f32 ([`super::gmres_mixed`], [`super::fgmres_mixed`]).
    pub native: Option<&'a dyn NativeOperator>,
    /// The exact f64 operator, when `op` is not (an f32 operator inside the f64 solver): the
    /// true residual and convergence are then recomputed with it, so they measure the real
    /// equation and not the rounded one.
    pub exact: Option<&'a dyn LinearOperator<f64>>,
}

/// A right preconditioner M that FGMRES can apply on the vectors of either kind of solve.
pub trait RightPreconditioner {
    /// M on f64 vectors in the reference layout.
    fn reference(&mut self) -> &mut dyn Preconditioner<f64>;
    /// M on the f32 vectors of the system's native operator (mixed-precision FGMRES), or
    /// `None` if it cannot run there.
    fn native(&mut self) -> Option<Box<dyn NativePreconditioner + '_>>;
}

/// One way of solving every source of a batch.
pub struct Setup<'p> {
    pub solver: SolverKind,
    /// FGMRES's right preconditioner; `None` is M = 1 (other solvers ignore it).
    pub preconditioner: Option<&'p mut dyn RightPreconditioner>,
}

/// Why a batch stopped.
#[derive(Debug, Error)]
pub enum BatchError {
    /// A kernel failed inside a mixed-precision solve.
    #[error(transparent)]
    Mixed(#[from] MixedError),
    /// Mixed-precision FGMRES was asked for with a preconditioner that only works on f64
    /// vectors.
    #[error("the preconditioner cannot run inside a mixed-precision solve")]
    NoNativePreconditioner,
}

/// Solves D x = b for every source with every set-up and returns the reports, one list per
/// set-up in source order. The order is source-major (source 0 with every set-up, then source
/// 1, …) so that set-ups compared with each other run under the same conditions; one f32
/// workspace serves every mixed-precision solve. `on_solve(source, setup, report)` is called
/// after each solve (progress lines).
pub fn solve_batch(
    system: System<'_>,
    setups: &mut [Setup<'_>],
    sources: &[Vec<Complex64>],
    params: &SolveParams,
    on_solve: &mut dyn FnMut(usize, usize, &SolveReport),
) -> Result<Vec<Vec<SolveReport>>, BatchError> {
    let mut ws = MixedWorkspace::new();
    let mut reports: Vec<Vec<SolveReport>> =
        setups.iter().map(|_| Vec::with_capacity(sources.len())).collect();
    for (k, b) in sources.iter().enumerate() {
        for (s, setup) in setups.iter_mut().enumerate() {
            let report = solve_one(system, &mut ws, setup, b, params)?;
            on_solve(k, s, &report);
            reports[s].push(report);
        }
    }
    Ok(reports)
}

/// One solve from x = 0. Mixed precision applies to GMRES and FGMRES (FGMRES with M = 1 is
/// GMRES and runs as such); BiCGStab and CGNE always run on the f64 operator.
fn solve_one(
    system: System<'_>,
    ws: &mut MixedWorkspace,
    setup: &mut Setup<'_>,
    b: &[Complex64],
    params: &SolveParams,
) -> Result<SolveReport, BatchError> {
    let op = system.op;
    let mut x = vec![Complex64::new(0.0, 0.0); LinearOperator::len(op)];
    let mut report = match (setup.solver, system.native, setup.preconditioner.as_deref_mut()) {
        (SolverKind::Fgmres, Some(op32), Some(m)) => {
            let mut native = m.native().ok_or(BatchError::NoNativePreconditioner)?;
            super::fgmres_mixed(ws, op, op32, native.as_mut(), b, &mut x, params)?
        }
        (SolverKind::Fgmres | SolverKind::Gmres, Some(op32), _) => {
            super::gmres_mixed(ws, op, op32, b, &mut x, params)?
        }
        (SolverKind::Fgmres, None, Some(m)) => super::fgmres(op, m.reference(), b, &mut x, params),
        (SolverKind::Fgmres, None, None) => {
            super::fgmres(op, &mut IdentityPreconditioner, b, &mut x, params)
        }
        (SolverKind::Gmres, None, _) => super::gmres(op, b, &mut x, params),
        (SolverKind::Bicgstab, _, _) => super::bicgstab(op, b, &mut x, params),
        (SolverKind::Cgne, _, _) => super::cgne(op, b, &mut x, params),
    };
    if let Some(exact) = system.exact {
        let mut dx = vec![Complex64::new(0.0, 0.0); b.len()];
        exact.apply(&mut dx, &x);
        let mut r = vec![Complex64::new(0.0, 0.0); b.len()];
        fermion::sub(&mut r, b, &dx);
        report.true_residual = super::global_norm(exact, &r) / super::global_norm(exact, b);
        report.converged = report.true_residual <= params.tol;
    }
    Ok(report)
}

/// Totals and extremes over the reports of one set-up; the means divide the totals by the
/// number of solves (at least one).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStats {
    pub solves: usize,
    pub iterations: usize,
    pub operator_applications: usize,
    pub preconditioner_applications: usize,
    /// Wall time of all solves together.
    pub seconds: f64,
    /// The largest true residual (NaN residuals are not counted, but they do not converge).
    pub worst_true_residual: f64,
    /// Every solve converged.
    pub converged: bool,
}

impl BatchStats {
    /// Sums over `reports` (in order, so repeated summaries agree to the last bit).
    pub fn from_reports(reports: &[SolveReport]) -> Self {
        BatchStats {
            solves: reports.len(),
            iterations: reports.iter().map(|r| r.iterations).sum(),
            operator_applications: reports.iter().map(|r| r.operator_applications).sum(),
            preconditioner_applications: reports
                .iter()
                .map(|r| r.preconditioner_applications)
                .sum(),
            seconds: reports.iter().map(|r| r.seconds).sum(),
            worst_true_residual: reports.iter().map(|r| r.true_residual).fold(0.0, f64::max),
            converged: reports.iter().all(|r| r.converged),
        }
    }

    fn per_solve(&self, total: f64) -> f64 {
        total / self.solves.max(1) as f64
    }

    /// Mean iterations per solve.
    pub fn mean_iterations(&self) -> f64 {
        self.per_solve(self.iterations as f64)
    }

    /// Mean operator applications per solve.
    pub fn mean_operator_applications(&self) -> f64 {
        self.per_solve(self.operator_applications as f64)
    }

    /// Mean preconditioner applications per solve.
    pub fn mean_preconditioner_applications(&self) -> f64 {
        self.per_solve(self.preconditioner_applications as f64)
    }

    /// Mean wall time per solve.
    pub fn mean_seconds(&self) -> f64 {
        self.per_solve(self.seconds)
    }
}
