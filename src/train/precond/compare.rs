//! The run's self-evaluation: FGMRES with the trained network as right preconditioner against
//! plain GMRES on the same random sources ([`compare_solves`]), and the records of it that go
//! into `summary.json` ([`SolveComparison`]). The solves themselves run through
//! `solve::batch`, the code path `symc solve` uses, on the operator `runtime::operator` builds.

use super::PrecondError;
use crate::lattice::fermion::random_sources;
use crate::lattice::gauge::GaugeField;
use crate::lattice::wilson::DiracParams;
use crate::runtime::RuntimeError;
use crate::runtime::operator::DiracOperator;
use crate::runtime::preconditioner::NetPreconditioner;
use crate::solve::batch::{self, BatchError, BatchStats, Setup, SolverKind, System};
use crate::solve::{SolveParams, SolveReport};
use num_complex::Complex64;
use serde::{Deserialize, Serialize};

/// One solve as recorded in `summary.json` (no residual history).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SolveRecord {
    pub iterations: usize,
    pub operator_applications: usize,
    pub preconditioner_applications: usize,
    pub seconds: f64,
    pub true_residual: f64,
    pub converged: bool,
}

/// One side of the comparison: means over the right-hand sides and the per-RHS records.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SolveSide {
    pub solver: String,
    /// Mean iterations over the right-hand sides.
    pub iterations: f64,
    /// Mean wall time per right-hand side (including the network's own cost).
    pub seconds: f64,
    pub operator_applications: f64,
    pub preconditioner_applications: f64,
    pub max_true_residual: f64,
    pub converged: bool,
    pub per_rhs: Vec<SolveRecord>,
}

impl SolveSide {
    /// Summarises `reports` (at least one).
    pub fn from_reports(reports: &[SolveReport]) -> Self {
        let stats = BatchStats::from_reports(reports);
        SolveSide {
            solver: reports.first().map_or_else(String::new, |r| r.solver.clone()),
            iterations: stats.mean_iterations(),
            seconds: stats.mean_seconds(),
            operator_applications: stats.mean_operator_applications(),
            preconditioner_applications: stats.mean_preconditioner_applications(),
            max_true_residual: stats.worst_true_residual,
            converged: stats.converged,
            per_rhs: reports
                .iter()
                .map(|r| SolveRecord {
                    iterations: r.iterations,
                    operator_applications: r.operator_applications,
                    preconditioner_applications: r.preconditioner_applications,
                    seconds: r.seconds,
                    true_residual: r.true_residual,
                    converged: r.converged,
                })
                .collect(),
        }
    }
}

/// The solve comparison of a run (or of `symc solve --precond`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SolveComparison {
    pub tol: f64,
    pub restart: usize,
    pub rhs: usize,
    pub max_iterations: usize,
    pub seed: u64,
    /// `mixed` (f32 cycles in the kernels' layout, f64 restarts) or `f64`.
    #[serde(default = "f64_precision")]
    pub precision: String,
    /// The system solved: `fine` (D x = b) or `coarse` (D_c x = b of a `loss coarse` run).
    #[serde(default = "fine_system")]
    pub system: String,
    pub unpreconditioned: SolveSide,
    pub preconditioned: SolveSide,
    /// unpreconditioned / preconditioned mean iterations.
    pub iteration_ratio: f64,
    /// unpreconditioned / preconditioned mean seconds.
    pub speedup: f64,
}

/// Summaries written before coarse runs existed solved D.
fn fine_system() -> String {
    "fine".into()
}

/// Summaries written before the mixed-precision solver ran everything in f64.
fn f64_precision() -> String {
    "f64".into()
}

/// Solves D x = b for every `rhs` with GMRES (the unpreconditioned baseline: FGMRES with M = 1
/// is mathematically GMRES, and GMRES skips the identity copies) and with FGMRES using the
/// network as right preconditioner, source by source. On a mixed-precision operator both run
/// in mixed precision (f32 cycles on the JIT kernels' layout, f64 restarts, see
/// [`crate::solve::gmres_mixed`]); on an f64 one, in f64. `log` prints one line per solve to
/// stderr.
pub fn compare_solves(
    op: &DiracOperator,
    prec: &mut NetPreconditioner,
    rhs: &[Vec<Complex64>],
    sp: &SolveParams,
    seed: u64,
    log: bool,
) -> Result<SolveComparison, PrecondError> {
    prec.error = None;
    let reports = {
        let mut net = op.preconditioner(prec);
        let mut setups = [
            Setup { solver: SolverKind::Gmres, preconditioner: None },
            Setup { solver: SolverKind::Fgmres, preconditioner: Some(&mut net) },
        ];
        solve_logged(op.system(), &mut setups, rhs, sp, log)?
    };
    if let Some(e) = prec.error.take() {
        return Err(PrecondError::Runtime(RuntimeError::Shape(e)));
    }
    Ok(comparison(&reports, sp, rhs.len(), seed, op.precision(SolverKind::Fgmres)))
}

/// Solves every source with both `setups` (unpreconditioned, preconditioned), one line per
/// solve on stderr with `log`.
pub(super) fn solve_logged(
    system: System<'_>,
    setups: &mut [Setup<'_>],
    rhs: &[Vec<Complex64>],
    sp: &SolveParams,
    log: bool,
) -> Result<Vec<Vec<SolveReport>>, PrecondError> {
    let mut on_solve = |k: usize, side: usize, r: &SolveReport| {
        if log {
            let name = if side == 0 { "unpreconditioned:" } else { "preconditioned:  " };
            eprintln!(
                "rhs {k} {name} {} iterations, {:.2} s, true residual {:.2e}",
                r.iterations, r.seconds, r.true_residual
            );
        }
    };
    batch::solve_batch(system, setups, rhs, sp, &mut on_solve).map_err(batch_error)
}

/// The comparison of the reports of [`solve_logged`] (unpreconditioned, then preconditioned).
pub(super) fn comparison(
    reports: &[Vec<SolveReport>],
    sp: &SolveParams,
    rhs: usize,
    seed: u64,
    precision: &str,
) -> SolveComparison {
    let unpreconditioned = SolveSide::from_reports(&reports[0]);
    let preconditioned = SolveSide::from_reports(&reports[1]);
    SolveComparison {
        tol: sp.tol,
        restart: sp.restart,
        rhs,
        max_iterations: sp.max_iterations,
        seed,
        precision: precision.into(),
        system: fine_system(),
        iteration_ratio: unpreconditioned.iterations / preconditioned.iterations.max(1e-300),
        speedup: unpreconditioned.seconds / preconditioned.seconds.max(1e-300),
        unpreconditioned,
        preconditioned,
    }
}

/// A kernel failure inside a solve is a runtime problem of the run (exit 1).
fn batch_error(e: BatchError) -> PrecondError {
    PrecondError::Runtime(RuntimeError::Shape(e.to_string()))
}

/// What the closing evaluation of a run solves: the `evaluate fgmres(...)` line of the model,
/// with the number of sources possibly overridden (`symc train --rhs`).
pub(super) struct Evaluation {
    pub params: SolveParams,
    pub rhs: usize,
    /// The sources' seed (the training seed shifted, so they are not training vectors).
    pub seed: u64,
}

impl Evaluation {
    /// The evaluation of a run with training seed `train_seed`.
    pub fn new(eval: (f64, usize, usize, usize), rhs: Option<usize>, train_seed: u64) -> Self {
        let (tol, restart, rhs_n, max_iterations) = eval;
        Evaluation {
            params: SolveParams { tol, restart, max_iterations },
            rhs: rhs.unwrap_or(rhs_n),
            seed: train_seed.wrapping_add(1_000_003),
        }
    }
}

/// Runs the comparison at the end of a run on the training gauge field, in mixed precision,
/// with `prec` the trained network.
pub(super) fn evaluate(
    eval: &Evaluation,
    gauge: &GaugeField,
    dirac: &DiracParams,
    prec: &mut NetPreconditioner,
    progress: bool,
) -> Result<SolveComparison, PrecondError> {
    let (sp, rhs_n) = (&eval.params, eval.rhs);
    if progress {
        eprintln!(
            "evaluating: FGMRES({}) to {:e} on {rhs_n} random right-hand sides, m = {}, c_sw = {}",
            sp.restart, sp.tol, dirac.mass, dirac.csw
        );
    }
    let op = DiracOperator::mixed(gauge, dirac)?;
    let rhs = random_sources(gauge.dims(), rhs_n, eval.seed);
    let cmp = compare_solves(&op, prec, &rhs, sp, eval.seed, progress)?;
    if progress {
        eprintln!(
            "solve: {:.1} -> {:.1} iterations ({:.2}x), {:.2} s -> {:.2} s ({:.2}x faster)",
            cmp.unpreconditioned.iterations,
            cmp.preconditioned.iterations,
            cmp.iteration_ratio,
            cmp.unpreconditioned.seconds,
            cmp.preconditioned.seconds,
            cmp.speedup
        );
    }
    Ok(cmp)
}
