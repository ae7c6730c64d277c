//! The even-odd solve of `symc solve --evenodd` on a lattice decomposed over the processes of
//! an MPI launch: the single-process solve (`runtime::evenodd_solve::solve_system`, the same
//! tolerance rescaling, solver dispatch and full-system residual) on the sub-lattice operators
//! — [`DistSchur`] in f64 and f32, [`DistWilsonClover`] in f64 for the residual check. Every
//! norm goes through the operators' global sums, so every process takes the same decisions and
//! ends with the same reports, and the iteration counts are the single process's up to the
//! order of the sums.

use super::comm::Comm;
use super::grid::ProcessGrid;
use super::operator::{DistWilsonClover, HaloBench, HaloStats};
use super::schur::DistSchur;
use crate::lattice::evenodd::{EvenOdd, Schur};
use crate::lattice::gauge::GaugeField;
use crate::lattice::wilson::DiracParams;
use crate::runtime::dirac::DiracOptions;
use crate::runtime::evenodd_solve::{
    EvenOddOptions, EvenOddSolveError, EvenOddSystem, ReducedPreconditioner, solve_system,
};
use crate::runtime::schur::JitSchurError;
use crate::solve::{AdjointOperator, LinearOperator, MixedWorkspace, NativeOperator, SolveReport};
use num_complex::Complex64;

/// The sub-lattice operators of one even-odd solve.
struct Parts {
    d64: DistSchur<f64>,
    d32: Option<DistSchur<f32>>,
    full: DistWilsonClover<f64>,
    /// `Schur::tolerance_scale` of the whole lattice (every process has the same).
    scale: f64,
}

impl EvenOddSystem for Parts {
    fn schur64(&self) -> &dyn AdjointOperator<f64> {
        &self.d64
    }
    fn schur32(&self) -> Option<(&dyn AdjointOperator<f32>, &dyn NativeOperator)> {
        self.d32.as_ref().map(|d| (d as &dyn AdjointOperator<f32>, d as &dyn NativeOperator))
    }
    fn full_len(&self) -> usize {
        self.full.len()
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
        self.scale
    }
}

/// The even-odd solver of one gauge field, mass and c_sw on this process's sub-lattice:
/// build once (every process together), solve for many right-hand sides.
pub struct DistEvenOdd {
    options: EvenOddOptions,
    parts: Parts,
    ws: MixedWorkspace,
}

impl DistEvenOdd {
    /// Builds the even-odd blocks of the whole lattice (every process has the whole gauge
    /// field, as for `DistWilsonClover`), keeps the tables of `grid`'s sub-lattice and
    /// compiles its operators.
    pub fn new(
        comm: &Comm,
        grid: &ProcessGrid,
        gauge: &GaugeField,
        params: &DiracParams,
        options: EvenOddOptions,
    ) -> Result<Self, EvenOddSolveError> {
        let eo = EvenOdd::<f64>::new(gauge, params).map_err(JitSchurError::from)?;
        let opts = DiracOptions::default();
        let d64 = DistSchur::<f64>::new(comm, grid, &eo, options.variant, &opts)?;
        let d32 = if options.needs_f32() {
            Some(DistSchur::<f32>::new(comm, grid, &eo, options.variant, &opts)?)
        } else {
            None
        };
        let full = DistWilsonClover::<f64>::new(comm, grid, eo.wilson())
            .map_err(|e| EvenOddSolveError::FullOperator(e.to_string()))?;
        let scale = Schur::new(eo, options.variant).tolerance_scale();
        let parts = Parts { d64, d32, full, scale };
        Ok(DistEvenOdd { options, parts, ws: MixedWorkspace::new() })
    }

    /// Solves D x = b for this process's part `b` of a global source (local sites, reference
    /// layout); returns this process's part of x and the (global) report.
    pub fn solve(
        &mut self,
        b: &[Complex64],
    ) -> Result<(Vec<Complex64>, SolveReport), EvenOddSolveError> {
        solve_system(&self.parts, &mut self.ws, &self.options, ReducedPreconditioner::Identity, b)
    }

    /// The f64 reduced operator (`--operator-check`).
    pub fn schur64(&self) -> &DistSchur<f64> {
        &self.parts.d64
    }

    /// The halo statistics of the reduced operator the Krylov iterations ran on (f32 when it
    /// exists), and of the f64 one.
    pub fn stats(&self) -> (HaloStats, HaloStats) {
        let f64 = self.parts.d64.stats();
        (self.parts.d32.as_ref().map_or(f64, |d| d.stats()), f64)
    }

    /// [`DistSchur::bench`] of the operator the iterations ran on.
    pub fn bench(&self, reps: usize) -> Result<HaloBench, crate::runtime::RuntimeError> {
        match &self.parts.d32 {
            Some(d) => d.bench(reps),
            None => self.parts.d64.bench(reps),
        }
    }
}
