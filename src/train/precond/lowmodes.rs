//! The low-mode term of Lehner & Wettig's two-term loss (models.md §2.3,
//! `loss preconditioner(low_modes = w, tol = 1e-5)`): pairs (v₂, D⁻¹ v₂) for random v₂.
//!
//! Why a second term: the one-term loss ‖M(D v) − v‖² over Gaussian v sees the spectrum of D
//! with equal weight everywhere, so the few low modes that make a solve slow hardly enter it.
//! Solving D u = v₂ amplifies exactly those modes (by 1/|λ|), so ‖M v₂ − u‖² is dominated by
//! them. The pair is scaled by 1/‖v₂‖, the normalisation of the first term (whose input D v is
//! scaled to unit norm), so the two terms are the same loss on two distributions of v: Gaussian,
//! and D⁻¹ applied to Gaussian.
//!
//! The solves are what this term costs. They run with the mixed-precision FGMRES preconditioned
//! by the classical two-level multigrid (`runtime::multigrid`, blocks 4⁴ and 12 near-null
//! vectors, the paper's "MG-preconditioned GMRES"; its basis is cached in the run folder as
//! [`LOW_MODE_BASIS_FILE`]), or with plain mixed GMRES(30) on lattices too small for 4⁴ blocks.
//! A run split over processes solves on its sub-lattices ([`LowModeSystem`], implemented by
//! `share.rs` on the distributed operator and multigrid): v₂ is drawn over the whole lattice on
//! every process, so the pairs, and the losses, are those of one process.

use super::PrecondError;
use crate::lattice::fermion::{self, FermionField};
use crate::lattice::gauge::GaugeField;
use crate::lattice::wilson::DiracParams;
use crate::runtime::dirac::{DiracOptions, JitWilsonClover};
use crate::runtime::multigrid::{Multigrid, MultigridParams};
use crate::solve::{self, MixedWorkspace, SolveParams, SolveReport};
use num_complex::{Complex, Complex64};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::time::Instant;

/// The cached near-null basis of the low-mode solves inside a run folder.
pub const LOW_MODE_BASIS_FILE: &str = "lowmode_basis.safetensors";

/// Added to the run's seed for the v₂ of the low-mode term, so that they are independent of
/// the first term's v₁ (both streams are indexed by the step).
const LOW_MODE_SEED_OFFSET: u64 = 0x6c6f_775f_6d6f_6465; // "low_mode"

/// What the low-mode solves have cost so far (recorded in `summary.json`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LowModeStats {
    /// `mg` (two-level multigrid FGMRES) or `gmres`.
    pub solver: String,
    /// Relative residual the solves reach.
    pub tol: f64,
    /// Weight of the term in the loss.
    pub weight: f64,
    pub solves: usize,
    /// Outer iterations of all solves.
    pub iterations: usize,
    /// Seconds of all solves (the multigrid set-up apart).
    pub seconds: f64,
    /// Seconds of the multigrid set-up (0 with a cached basis or without multigrid).
    pub setup_seconds: f64,
}

/// The solves of the low-mode term, D u = v to the loss's tolerance: in one process
/// ([`OneProcess`]), or on this process's sub-lattice of a run split over processes (the
/// distributed operator and multigrid of `share.rs`; there `v` and `u` are this process's parts
/// and every process gets the same, global, report).
pub trait LowModeSystem {
    /// u = D⁻¹ v (u's content on entry is the start vector).
    fn solve(
        &mut self,
        v: &[Complex64],
        u: &mut [Complex64],
        params: &SolveParams,
    ) -> Result<SolveReport, String>;
    /// This process's part of a whole-lattice field (all of it in one process).
    fn local_part(&self, v: &[Complex64]) -> Vec<Complex64>;
    /// `mg` (two-level multigrid FGMRES) or `gmres`.
    fn solver(&self) -> &'static str;
    /// Seconds the multigrid set-up took (0 with a cached basis or without multigrid).
    fn setup_seconds(&self) -> f64;
}

/// Whether the low-mode solves use the two-level multigrid on `dims`: two of its blocks per
/// direction at least, or the coarse lattice has no hops worth the name.
pub fn multigrid_tiles(dims: [usize; 4]) -> bool {
    let blocks = MultigridParams::reference().blocks;
    dims.iter().zip(&blocks).all(|(&d, &b)| d % b == 0 && d >= 2 * b)
}

/// The low-mode solves in one process.
pub struct OneProcess {
    d64: JitWilsonClover<f64>,
    /// The f32 operator of the solver's cycles.
    d32: JitWilsonClover<f32>,
    mg: Option<Multigrid>,
    ws: MixedWorkspace,
    setup_seconds: f64,
}

impl OneProcess {
    /// The operators of `gauge` and `dirac`, and the multigrid if it tiles the lattice, its
    /// basis read from or written to `run_dir`'s [`LOW_MODE_BASIS_FILE`].
    pub fn new(
        gauge: &GaugeField,
        dirac: &DiracParams,
        run_dir: &Path,
    ) -> Result<Self, PrecondError> {
        let d64 = JitWilsonClover::<f64>::new(gauge, dirac, &DiracOptions::default())?;
        let d32 = JitWilsonClover::<f32>::new(gauge, dirac, &DiracOptions::default())?;
        let start = Instant::now();
        let mg = if multigrid_tiles(gauge.dims()) {
            let cache = run_dir.join(LOW_MODE_BASIS_FILE);
            Some(
                Multigrid::build_cached(gauge, dirac, &MultigridParams::reference(), &cache)
                    .map_err(|e| PrecondError::Multigrid(e.into()))?,
            )
        } else {
            None
        };
        let setup_seconds = match &mg {
            Some(m)
                if matches!(
                    m.setup_report().source,
                    crate::runtime::multigrid::BasisSource::Cached { .. }
                ) =>
            {
                0.0
            }
            Some(_) => start.elapsed().as_secs_f64(),
            None => 0.0,
        };
        Ok(OneProcess { d64, d32, mg, ws: MixedWorkspace::new(), setup_seconds })
    }
}

impl LowModeSystem for OneProcess {
    fn solve(
        &mut self,
        v: &[Complex64],
        u: &mut [Complex64],
        params: &SolveParams,
    ) -> Result<SolveReport, String> {
        match &mut self.mg {
            Some(mg) => mg
                .fgmres_mixed(&mut self.ws, &self.d64, &self.d32, v, u, params)
                .map(|s| s.report)
                .map_err(|e| e.to_string()),
            None => solve::gmres_mixed(&mut self.ws, &self.d64, &self.d32, v, u, params)
                .map_err(|e| e.to_string()),
        }
    }

    fn local_part(&self, v: &[Complex64]) -> Vec<Complex64> {
        v.to_vec()
    }

    fn solver(&self) -> &'static str {
        if self.mg.is_some() { "mg" } else { "gmres" }
    }

    fn setup_seconds(&self) -> f64 {
        self.setup_seconds
    }
}

/// Makes the low-mode pairs of a run.
pub struct LowModeSolver {
    system: Box<dyn LowModeSystem>,
    params: SolveParams,
    dims: [usize; 4],
    pub stats: LowModeStats,
}

impl LowModeSolver {
    /// The solver of a one-process run on `gauge` and `dirac`; the multigrid basis is read from
    /// or written to `run_dir`'s [`LOW_MODE_BASIS_FILE`].
    pub fn new(
        gauge: &GaugeField,
        dirac: &DiracParams,
        weight: f64,
        tol: f64,
        run_dir: &Path,
    ) -> Result<Self, PrecondError> {
        let system = OneProcess::new(gauge, dirac, run_dir)?;
        Ok(Self::on(Box::new(system), gauge.dims(), weight, tol))
    }

    /// The solver on `system` for a lattice of extents `dims`.
    pub fn on(system: Box<dyn LowModeSystem>, dims: [usize; 4], weight: f64, tol: f64) -> Self {
        let stats = LowModeStats {
            solver: system.solver().into(),
            tol,
            weight,
            setup_seconds: system.setup_seconds(),
            ..LowModeStats::default()
        };
        let params = SolveParams { tol, restart: 30, max_iterations: 20_000 };
        LowModeSolver { system, params, dims, stats }
    }

    /// The low-mode pair of step `step`: (v₂/‖v₂‖, D⁻¹v₂/‖v₂‖) in f32 (this process's parts),
    /// with v₂ Gaussian from the stream (seed + offset, step) over the whole lattice, so that
    /// the pair does not depend on how the lattice is split.
    pub fn pair(
        &mut self,
        seed: u64,
        step: u64,
    ) -> Result<(Vec<Complex<f32>>, Vec<Complex<f32>>), PrecondError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(LOW_MODE_SEED_OFFSET));
        rng.set_stream(step);
        let whole = FermionField::<f64>::random_gaussian(self.dims, &mut rng).data;
        let s = 1.0 / fermion::norm(&whole);
        let v = self.system.local_part(&whole);
        drop(whole);
        let mut u = vec![Complex64::new(0.0, 0.0); v.len()];
        let report =
            self.system.solve(&v, &mut u, &self.params).map_err(PrecondError::LowModeKernel)?;
        if !report.converged {
            return Err(PrecondError::LowModeSolve {
                step: step + 1,
                residual: report.true_residual,
                tol: self.params.tol,
                iterations: report.iterations,
            });
        }
        self.stats.solves += 1;
        self.stats.iterations += report.iterations;
        self.stats.seconds += report.seconds;
        let scaled = |x: &[Complex64]| -> Vec<Complex<f32>> {
            x.iter().map(|z| Complex::new((z.re * s) as f32, (z.im * s) as f32)).collect()
        };
        Ok((scaled(&v), scaled(&u)))
    }
}
