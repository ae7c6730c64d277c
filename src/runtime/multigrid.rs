//! The classical two-level multigrid preconditioner, built from a gauge field: the library
//! entry point ([`Multigrid::build`], [`Multigrid::build_cached`]) that the CLI
//! (`symc solve --precond mg`) and the neural multigrid model use.
//!
//! Set-up, in order, each step timed ([`SetupReport`]):
//! 1. blocks and basis size checked (before any work: a wrong block or too large a basis is a
//!    user error with the numbers in the message);
//! 2. the JIT Dirac operators (f32 and f64) compiled;
//! 3. near-null vectors: GMRES on D u = 0 from `n_basis` (or `n_basis / 2` chirality-doubled)
//!    random starts drawn from `seed` (`solve::multigrid::near_null_vectors`, f32 cycles with
//!    f64 residuals by default), then block-wise Gram–Schmidt ([`BlockBasis`]); or the basis
//!    read from a cache file made for exactly this set-up (`lattice::io::basis`);
//! 4. the Galerkin coarse operator P† D P ([`CoarseOperator`]) and a check that it is not
//!    singular;
//! 5. the JIT kernels of P†, P and D_c in both precisions.
//!
//! The preconditioner then runs the cycle of `solve::multigrid` on these executors: as
//! [`Preconditioner<f64>`] on reference-layout vectors (f64 kernels), and through
//! [`Multigrid::native`] as a [`NativePreconditioner`](crate::solve::NativePreconditioner) on
//! the f32 Krylov vectors of `solve::fgmres_mixed` in the Dirac kernel's layout, where the
//! smoother runs the f32 JIT Dirac kernel and nothing is converted inside an iteration.
//!
//! Deterministic given the seed, up to the order of parallel floating-point reductions in the
//! set-up solver (different runs agree to round-off, ~1e-13 relative on 8³×16).

use super::RuntimeError;
use super::coarse::{JitBlockTransfer, JitCoarseOperator};
use super::dirac::{DiracOptions, JitWilsonClover};
use crate::lattice::blocks::{BlockBasis, BlockError, Blocking, GaugeFingerprint};
use crate::lattice::coarse::CoarseOperator;
use crate::lattice::fermion::FermionField;
use crate::lattice::gauge::GaugeField;
use crate::lattice::io::basis::{self as cache, BasisCacheError, BasisKey};
use crate::lattice::wilson::{DiracParams, WilsonClover};
use crate::solve::multigrid::{
    CoarseGmres, CycleParams, CycleStats, NativeTwoLevel, NativeTwoLevelCycle, NearNullParams,
    TwoLevel, TwoLevelCycle, near_null_vectors,
};
use crate::solve::{
    self, LinearOperator, MixedError, MixedWorkspace, NativeOperator, Preconditioner, SolveParams,
    SolveReport,
};
use num_complex::{Complex, Complex64};
use rand::SeedableRng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// In which precision the near-null set-up solver runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SetupPrecision {
    /// f32 GMRES cycles on the JIT kernel, f64 residuals (`solve::gmres_mixed`): about twice
    /// as fast; near-null vectors need no more than f32 accuracy.
    Mixed,
    /// All in f64 (exact gauge covariance of the set-up, for tests).
    F64,
}

/// Everything that defines a two-level multigrid preconditioner.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MultigridParams {
    /// Block extents (x, y, z, t); they must divide the lattice.
    pub blocks: [usize; 4],
    /// Basis vectors per block (coarse degrees of freedom per coarse site).
    pub n_basis: usize,
    /// Split every near-null vector into its two chiralities (n_basis / 2 set-up solves).
    pub chirality_doubled: bool,
    pub setup: NearNullParams,
    pub setup_precision: SetupPrecision,
    pub cycle: CycleParams,
    /// Seed of the random start vectors.
    pub seed: u64,
}

impl MultigridParams {
    /// Lehner–Wettig / qcd_ml on 8³×16: blocks 4⁴, 12 basis vectors, the reference cycle
    /// ([`CycleParams::reference`]). The set-up is GMRES(20) with qcd_ml's tolerance 1e-7 but
    /// capped at 40 iterations per vector: measured on the shipped 8³×16 configuration, more
    /// set-up iterations do not pay (see `tests/multigrid_measure.rs`).
    pub fn reference() -> Self {
        MultigridParams {
            blocks: [4, 4, 4, 4],
            n_basis: 12,
            chirality_doubled: false,
            setup: NearNullParams { iterations: 40, restart: 20, tol: 1e-7 },
            setup_precision: SetupPrecision::Mixed,
            cycle: CycleParams::reference(),
            seed: 1,
        }
    }
}

/// Where the basis came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BasisSource {
    Generated,
    Cached {
        path: PathBuf,
    },
    /// A cache file existed but was made for another set-up (or unreadable as a basis).
    Regenerated {
        path: PathBuf,
        reason: String,
    },
    /// No near-null basis at all: a pooled level (gauge-equivariant pooling) builds its
    /// transfer from the gauge field alone.
    Pooling,
}

/// What the set-up did and how long each step took (seconds).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SetupReport {
    pub source: BasisSource,
    /// GMRES iterations of each near-null solve (empty when cached).
    pub near_null_iterations: Vec<usize>,
    /// ‖D u‖/‖D v‖ reached by each near-null solve.
    pub near_null_residuals: Vec<f64>,
    pub compile_dirac_seconds: f64,
    pub near_null_seconds: f64,
    pub orthonormalize_seconds: f64,
    pub cache_seconds: f64,
    pub galerkin_seconds: f64,
    pub coarse_check_seconds: f64,
    pub compile_coarse_seconds: f64,
    /// Coarse GMRES iterations to solve D_c x = b (random b) to 1e-8: a conditioning proxy.
    pub coarse_check_iterations: usize,
    pub total_seconds: f64,
}

impl SetupReport {
    /// A report of a set-up from `source` whose only step so far compiled D
    /// (`compile_dirac_seconds`); the other steps fill in their times as they run.
    pub fn started(source: BasisSource, compile_dirac_seconds: f64) -> Self {
        SetupReport {
            source,
            near_null_iterations: vec![],
            near_null_residuals: vec![],
            compile_dirac_seconds,
            near_null_seconds: 0.0,
            orthonormalize_seconds: 0.0,
            cache_seconds: 0.0,
            galerkin_seconds: 0.0,
            coarse_check_seconds: 0.0,
            compile_coarse_seconds: 0.0,
            coarse_check_iterations: 0,
            total_seconds: 0.0,
        }
    }
}

/// Why a multigrid preconditioner could not be built.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum MultigridError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Blocks(#[from] BlockError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Cache(#[from] BasisCacheError),

    #[error("multigrid needs the JIT kernels: {0}")]
    #[diagnostic(code(symc::multigrid::runtime))]
    Runtime(#[from] RuntimeError),

    #[error(
        "the process grid {procs} cuts the multigrid blocks: each process holds {local} sites along {axis}, which is not a multiple of the block extent {block}"
    )]
    #[diagnostic(
        code(symc::multigrid::cut_blocks),
        help(
            "give --procs so that every process's extents are multiples of the blocks {blocks}, or run in one process"
        )
    )]
    CutBlocks { procs: String, local: usize, axis: char, block: usize, blocks: String },

    #[error("the near-null set-up solve failed: {0}")]
    #[diagnostic(code(symc::multigrid::setup))]
    Setup(String),

    #[error(
        "the coarse operator P^dagger D P is singular to working precision: GMRES reduced a residual only to {residual:.3e} in {iterations} iterations"
    )]
    #[diagnostic(
        code(symc::multigrid::singular),
        help(
            "the basis spans (near-)exact zero modes of D, or the configuration is broken; try another mass, fewer set-up iterations, or more basis vectors"
        )
    )]
    SingularCoarse { residual: f64, iterations: usize },

    #[error(
        "the coarse operator has non-finite entries (the gauge field or the basis holds NaN or infinity)"
    )]
    #[diagnostic(code(symc::multigrid::singular))]
    NonFinite,
}

/// One multigrid-preconditioned solve: the outer solver's report and what the cycles did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MultigridSolve {
    pub report: SolveReport,
    pub cycles: CycleStats,
}

impl MultigridSolve {
    /// Fine-operator applications in total: the outer solver's plus the smoothers' and
    /// residuals' inside the cycles (the cost measure comparable with an unpreconditioned
    /// solve; coarse applications are in `cycles.coarse_applications`).
    pub fn fine_applications(&self) -> usize {
        self.report.operator_applications + self.cycles.fine_applications
    }
}

/// A built two-level multigrid preconditioner with every executor it runs on.
pub struct Multigrid {
    params: MultigridParams,
    dirac: DiracParams,
    key: BasisKey,
    basis: BlockBasis,
    coarse: CoarseOperator,
    d64: JitWilsonClover<f64>,
    d32: JitWilsonClover<f32>,
    t64: JitBlockTransfer<f64>,
    t32: JitBlockTransfer<f32>,
    c64: JitCoarseOperator<f64>,
    c32: JitCoarseOperator<f32>,
    cycle64: TwoLevelCycle<f64>,
    cycle32: NativeTwoLevelCycle,
    report: SetupReport,
}

pub(crate) fn basis_key(gauge: &GaugeField, dirac: &DiracParams, p: &MultigridParams) -> BasisKey {
    let precision = match p.setup_precision {
        SetupPrecision::Mixed => "mixed",
        SetupPrecision::F64 => "f64",
    };
    BasisKey {
        dims: gauge.dims(),
        blocks: p.blocks,
        n_basis: p.n_basis,
        chirality_doubled: p.chirality_doubled,
        seed: p.seed,
        mass: dirac.mass,
        csw: dirac.csw,
        boundary_phases: dirac.boundary_phases,
        gauge: GaugeFingerprint::of(gauge),
        setup: format!("{},{precision}", p.setup.describe()),
    }
}

/// The random start vectors of the set-up: Gaussian fields from a ChaCha8 stream of `seed`.
pub fn start_vectors(dims: [usize; 4], count: usize, seed: u64) -> Vec<Vec<Complex64>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..count).map(|_| FermionField::<f64>::random_gaussian(dims, &mut rng).data).collect()
}

impl Multigrid {
    /// Builds the preconditioner from scratch (no cache).
    pub fn build(
        gauge: &GaugeField,
        dirac: &DiracParams,
        params: &MultigridParams,
    ) -> Result<Self, MultigridError> {
        Self::build_impl(gauge, dirac, params, None)
    }

    /// Builds the preconditioner, reusing the basis in `cache` when it was made for exactly
    /// this configuration and set-up, and (re)writing it otherwise.
    pub fn build_cached(
        gauge: &GaugeField,
        dirac: &DiracParams,
        params: &MultigridParams,
        cache: &Path,
    ) -> Result<Self, MultigridError> {
        Self::build_impl(gauge, dirac, params, Some((cache, true)))
    }

    /// Builds the preconditioner, reusing the basis in `cache` when it was made for exactly
    /// this configuration and set-up, and otherwise generating one without touching the file
    /// (what applying a trained network to another configuration does: the run folder keeps
    /// the basis of the configuration it was trained on).
    pub fn build_read_cache(
        gauge: &GaugeField,
        dirac: &DiracParams,
        params: &MultigridParams,
        cache: &Path,
    ) -> Result<Self, MultigridError> {
        Self::build_impl(gauge, dirac, params, Some((cache, false)))
    }

    fn build_impl(
        gauge: &GaugeField,
        dirac: &DiracParams,
        params: &MultigridParams,
        cache_path: Option<(&Path, bool)>,
    ) -> Result<Self, MultigridError> {
        let t_start = Instant::now();
        let blocking = Blocking::new(gauge.dims(), params.blocks)?;
        BlockBasis::check_size(&blocking, params.n_basis, params.chirality_doubled)?;
        let key = basis_key(gauge, dirac, params);

        let t = Instant::now();
        let opts = DiracOptions::default();
        let d64 = JitWilsonClover::<f64>::new(gauge, dirac, &opts)?;
        let d32 = JitWilsonClover::<f32>::new(gauge, dirac, &opts)?;
        let compile_dirac_seconds = t.elapsed().as_secs_f64();

        let mut report = SetupReport::started(BasisSource::Generated, compile_dirac_seconds);

        let mut cached = None;
        if let Some((path, _)) = cache_path {
            let t = Instant::now();
            match cache::load(path, &key) {
                Ok(b) => {
                    cached = Some(b);
                    report.source = BasisSource::Cached { path: path.into() };
                }
                Err(BasisCacheError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e @ (BasisCacheError::Stale { .. } | BasisCacheError::Format { .. })) => {
                    report.source =
                        BasisSource::Regenerated { path: path.into(), reason: e.to_string() };
                }
                Err(e) => return Err(e.into()),
            }
            report.cache_seconds += t.elapsed().as_secs_f64();
        }
        let basis = match cached {
            Some(b) => b,
            None => {
                let b = Self::near_null_basis(blocking, params, &d64, &d32, &mut report)?;
                if let Some((path, true)) = cache_path {
                    let t = Instant::now();
                    cache::save(path, &key, &b)?;
                    report.cache_seconds += t.elapsed().as_secs_f64();
                }
                b
            }
        };

        let t = Instant::now();
        let reference = WilsonClover::<f64>::new(gauge, dirac);
        let coarse = CoarseOperator::galerkin(&reference, &basis);
        report.galerkin_seconds = t.elapsed().as_secs_f64();

        let t = Instant::now();
        report.coarse_check_iterations = check_coarse_operator(&coarse, params.seed)?;
        report.coarse_check_seconds = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let t64 = JitBlockTransfer::<f64>::new(&basis, d64.layout())?;
        let t32 = JitBlockTransfer::<f32>::new(&basis, d32.layout())?;
        let c64 = JitCoarseOperator::<f64>::new(&coarse)?;
        let c32 = JitCoarseOperator::<f32>::new(&coarse)?;
        report.compile_coarse_seconds = t.elapsed().as_secs_f64();

        let cycle64 = TwoLevelCycle::new(params.cycle, basis.fine_len(), basis.coarse_len());
        let cycle32 = NativeTwoLevelCycle::new(
            params.cycle,
            d32.main_len(),
            d32.buffer_len(),
            basis.coarse_len(),
        );
        report.total_seconds = t_start.elapsed().as_secs_f64();
        Ok(Multigrid {
            params: params.clone(),
            dirac: *dirac,
            key,
            basis,
            coarse,
            d64,
            d32,
            t64,
            t32,
            c64,
            c32,
            cycle64,
            cycle32,
            report,
        })
    }

    fn near_null_basis(
        blocking: Blocking,
        params: &MultigridParams,
        d64: &JitWilsonClover<f64>,
        d32: &JitWilsonClover<f32>,
        report: &mut SetupReport,
    ) -> Result<BlockBasis, MultigridError> {
        let t = Instant::now();
        let count = if params.chirality_doubled { params.n_basis / 2 } else { params.n_basis };
        let starts = start_vectors(blocking.fine_dims(), count, params.seed);
        let op32: Option<&dyn NativeOperator> = match params.setup_precision {
            SetupPrecision::Mixed => Some(d32),
            SetupPrecision::F64 => None,
        };
        let (vectors, reports) = near_null_vectors(d64, op32, starts, &params.setup)
            .map_err(|e| MultigridError::Setup(e.to_string()))?;
        report.near_null_iterations = reports.iter().map(|r| r.iterations).collect();
        report.near_null_residuals = reports.iter().map(|r| r.true_residual).collect();
        report.near_null_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let basis = BlockBasis::orthonormalize(blocking, vectors, params.chirality_doubled)?;
        report.orthonormalize_seconds = t.elapsed().as_secs_f64();
        Ok(basis)
    }

    /// The parameters it was built with.
    pub fn params(&self) -> &MultigridParams {
        &self.params
    }

    /// The Dirac parameters it was built for.
    pub fn dirac(&self) -> &DiracParams {
        &self.dirac
    }

    /// What the basis depends on (the cache key).
    pub fn key(&self) -> &BasisKey {
        &self.key
    }

    /// Timings and provenance of the set-up.
    pub fn setup_report(&self) -> &SetupReport {
        &self.report
    }

    /// The block-orthonormal basis (P's columns).
    pub fn basis(&self) -> &BlockBasis {
        &self.basis
    }

    /// The Galerkin coarse operator (reference).
    pub fn coarse_operator(&self) -> &CoarseOperator {
        &self.coarse
    }

    /// P†, P on the f32 kernels (the layout of [`Multigrid::dirac32`]).
    pub fn transfer32(&self) -> &JitBlockTransfer<f32> {
        &self.t32
    }

    /// P†, P on the f64 kernels.
    pub fn transfer64(&self) -> &JitBlockTransfer<f64> {
        &self.t64
    }

    /// D_c on the f32 kernel.
    pub fn coarse32(&self) -> &JitCoarseOperator<f32> {
        &self.c32
    }

    /// D_c on the f64 kernel.
    pub fn coarse64(&self) -> &JitCoarseOperator<f64> {
        &self.c64
    }

    /// The fine operator the f32 cycle smooths with.
    pub fn dirac32(&self) -> &JitWilsonClover<f32> {
        &self.d32
    }

    /// The fine operator the f64 cycle smooths with.
    pub fn dirac64(&self) -> &JitWilsonClover<f64> {
        &self.d64
    }

    /// Statistics of the f64 cycle ([`Preconditioner<f64>`]) and the f32 cycle
    /// ([`Multigrid::native`]) since the build or the last [`reset_stats`](Self::reset_stats).
    pub fn stats(&self) -> (CycleStats, CycleStats) {
        (self.cycle64.stats, self.cycle32.stats)
    }

    pub fn reset_stats(&mut self) {
        self.cycle64.stats.reset();
        self.cycle32.stats.reset();
    }

    /// Changes the cycle (smoother, coarse tolerance) without a new set-up.
    pub fn set_cycle(&mut self, cycle: CycleParams) {
        self.params.cycle = cycle;
        self.cycle64 = TwoLevelCycle::new(cycle, self.basis.fine_len(), self.basis.coarse_len());
        self.cycle32 = NativeTwoLevelCycle::new(
            cycle,
            self.d32.main_len(),
            self.d32.buffer_len(),
            self.basis.coarse_len(),
        );
    }

    /// Writes the basis to `path` (atomically) with its cache key.
    pub fn save_basis(&self, path: &Path) -> Result<(), MultigridError> {
        Ok(cache::save(path, &self.key, &self.basis)?)
    }

    /// The cycle as a preconditioner of `solve::fgmres_mixed` on f32 vectors in the Dirac
    /// kernel's layout (which must be the layout of the solver's f32 operator: the same
    /// lattice gives the same layout).
    pub fn native(&mut self) -> NativeTwoLevel<'_> {
        NativeTwoLevel {
            fine: &self.d32,
            space: &self.t32,
            coarse: &self.c32,
            cycle: &mut self.cycle32,
        }
    }

    /// One right-hand side with mixed-precision FGMRES preconditioned by this multigrid — the
    /// call `symc solve --precond mg` makes per source. `d64`/`d32` are the solver's operators
    /// (f64 residuals, f32 cycles); `d32` must lay out the same lattice as this multigrid's
    /// operators (checked). The report counts the outer solver's operator applications;
    /// [`MultigridSolve::fine_applications`] adds those inside the preconditioner.
    pub fn fgmres_mixed(
        &mut self,
        ws: &mut MixedWorkspace,
        d64: &dyn LinearOperator<f64>,
        d32: &JitWilsonClover<f32>,
        b: &[Complex64],
        x: &mut [Complex64],
        params: &SolveParams,
    ) -> Result<MultigridSolve, MixedError> {
        if !d32.layout().same_sites(self.d32.layout()) {
            return Err(MixedError {
                what: "the multigrid preconditioner",
                message: format!(
                    "the solver's f32 operator is on {:?}, the multigrid on {:?}",
                    d32.layout().dims,
                    self.d32.layout().dims
                ),
            });
        }
        self.cycle32.stats.reset();
        let report = {
            let mut native = self.native();
            solve::fgmres_mixed(ws, d64, d32, &mut native, b, x, params)?
        };
        Ok(MultigridSolve { report, cycles: self.cycle32.stats })
    }

    /// The f64 cycle as a borrowed [`Preconditioner<f64>`] (what `impl Preconditioner` for
    /// [`Multigrid`] calls).
    pub fn preconditioner64(&mut self) -> TwoLevel<'_, f64> {
        TwoLevel { fine: &self.d64, space: &self.t64, coarse: &self.c64, cycle: &mut self.cycle64 }
    }
}

impl Preconditioner<f64> for Multigrid {
    fn apply(&mut self, out: &mut [Complex<f64>], inp: &[Complex<f64>]) {
        self.cycle64.apply(&self.d64, &self.t64, &self.c64, out, inp)
    }
}

/// Solves D_c x = b for a random b to 1e-8 relative: a coarse operator that cannot be inverted
/// is an error now rather than a silently useless preconditioner. Returns the iterations.
pub fn check_coarse_operator(coarse: &CoarseOperator, seed: u64) -> Result<usize, MultigridError> {
    if coarse.coeffs().iter().any(|z| !z.re.is_finite() || !z.im.is_finite()) {
        return Err(MultigridError::NonFinite);
    }
    let n = coarse.len();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_c0a5);
    let b: Vec<Complex64> = (0..n)
        .map(|_| {
            let re: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
            let im: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
            Complex64::new(re, im)
        })
        .collect();
    let restart = n.min(100);
    let mut gm = CoarseGmres::<f64>::new(n, restart);
    let mut x = vec![Complex64::new(0.0, 0.0); n];
    let params = SolveParams { tol: 1e-8, restart, max_iterations: 20 * n };
    let r = gm.solve(coarse, &b, &mut x, &params);
    // A regular but ill-conditioned D_c still gets there; a singular one stalls far above.
    if !(r.residual <= 1e-6) {
        return Err(MultigridError::SingularCoarse {
            residual: r.residual,
            iterations: r.iterations,
        });
    }
    Ok(r.iterations)
}

/// The multigrid as FGMRES's right preconditioner in a `solve::batch` (`symc solve --precond
/// mg`): the f64 cycle on reference vectors, the f32 cycle on the mixed solver's vectors. The
/// batch's f32 operator is `runtime::operator`'s, built with the same default kernel options on
/// the same lattice as this multigrid's, so the two share one layout.
impl crate::solve::batch::RightPreconditioner for Multigrid {
    fn reference(&mut self) -> &mut dyn Preconditioner<f64> {
        self
    }

    fn native(&mut self) -> Option<Box<dyn solve::NativePreconditioner + '_>> {
        Some(Box::new(Multigrid::native(self)))
    }
}
