//! `loss coarse`: the coarse layers of a near-null level trained alone on the Galerkin
//! operator D_c = P† D P (Lehner & Wettig's coarse model, models.md §2.3): each step draws a
//! Gaussian coarse vector v from the ChaCha stream (seed, step) (the convention of `pairs.rs`),
//! forms b = D_c v and minimises ‖M_c(b/‖b‖) − v/‖b‖‖² over the level's weights only; the fine
//! layers' gradient is zero, so Adam leaves them at their initial values and the checkpoint
//! saves them unchanged (a later `--init` run copies only the coarse layers from here).
//!
//! The run's evaluation is FGMRES on D_c itself, unpreconditioned against right-preconditioned
//! by M_c, in f64 ([`CoarseTrainer::compare`]): what the trained coarse model does for the
//! system it was trained on. D_c, P and P† come from the multigrid the network's compile
//! built (its basis is read back from the run folder's cache, so the set-up runs once).

use super::PrecondError;
use super::compare::{Evaluation, SolveComparison, SolveSide};
use crate::ir::{Graph, levels};
use crate::lattice::gauge::GaugeField;
use crate::lattice::wilson::DiracParams;
use crate::runtime::RuntimeError;
use crate::runtime::coarse_layers::JitCoarseLayers;
use crate::runtime::multigrid::Multigrid;
use crate::runtime::multigrid_net::multigrid_params;
use crate::solve::{self, LinearOperator, Preconditioner, SolveReport};
use num_complex::{Complex, Complex64};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::path::Path;

/// D_c and the coarse layers of a `loss coarse` run.
pub struct CoarseTrainer {
    mg: Multigrid,
    layers32: JitCoarseLayers<f32>,
    layers64: JitCoarseLayers<f64>,
}

/// A Gaussian coarse vector of step `step` (complex entries of variance 1, as the fine
/// training vectors).
pub fn coarse_vector(len: usize, seed: u64, step: u64) -> Vec<Complex64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step);
    let s = std::f64::consts::FRAC_1_SQRT_2;
    (0..len)
        .map(|_| {
            let a: f64 = StandardNormal.sample(&mut rng);
            let b: f64 = StandardNormal.sample(&mut rng);
            Complex64::new(s * a, s * b)
        })
        .collect()
}

fn not_coarse(graph: &Graph) -> PrecondError {
    PrecondError::NotPreconditioner {
        model: graph.name.clone(),
        what: "`loss coarse` needs a near-null level with coarse layers".into(),
    }
}

impl CoarseTrainer {
    /// The multigrid of `graph`'s level (basis from `basis_cache` when it matches, else a
    /// fresh set-up) and its coarse layers in f32 (training) and f64 (evaluation).
    pub fn new(
        graph: &Graph,
        gauge: &GaugeField,
        dirac: &DiracParams,
        basis_cache: &Path,
    ) -> Result<Self, PrecondError> {
        let level = levels::level(graph).ok_or_else(|| not_coarse(graph))?;
        let params = multigrid_params(level).ok_or_else(|| not_coarse(graph))?;
        let mg = Multigrid::build_read_cache(gauge, dirac, &params, basis_cache)
            .map_err(|e| PrecondError::Multigrid(e.into()))?;
        let dims = gauge.dims();
        let layers32 = JitCoarseLayers::new(level, dims)?.ok_or_else(|| not_coarse(graph))?;
        let layers64 = JitCoarseLayers::new(level, dims)?.ok_or_else(|| not_coarse(graph))?;
        Ok(CoarseTrainer { mg, layers32, layers64 })
    }

    /// Complex numbers of a coarse vector.
    fn coarse_len(&self) -> usize {
        self.layers32.len()
    }

    /// The loss of step `step` and its gradient (the level's weights; every other entry of
    /// `grad` zero).
    pub fn loss_grad(
        &self,
        params: &[f32],
        seed: u64,
        step: u64,
        grad: &mut [f32],
    ) -> Result<f64, RuntimeError> {
        let v = coarse_vector(self.coarse_len(), seed, step);
        let mut b = vec![Complex64::new(0.0, 0.0); v.len()];
        self.mg.coarse64().apply(&mut b, &v);
        let s = 1.0 / b.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
        let to32 = |z: &Complex64| Complex::new((z.re * s) as f32, (z.im * s) as f32);
        let input: Vec<Complex<f32>> = b.iter().map(to32).collect();
        let target: Vec<Complex<f32>> = v.iter().map(to32).collect();
        let acts = self.layers32.forward(params, &input)?;
        let out = acts.last().map(|a| &a[..]).unwrap_or(&input);
        let mut loss = 0.0f64;
        // Seed 2 (M_c b − v), the gradient convention of `pairs.rs`.
        let g: Vec<Complex<f32>> = out
            .iter()
            .zip(&target)
            .map(|(o, t)| {
                let d = *o - *t;
                loss += d.norm_sqr() as f64;
                d * 2.0
            })
            .collect();
        grad.iter_mut().for_each(|x| *x = 0.0);
        self.layers32.backward(params, &acts, &g, grad)?;
        Ok(loss)
    }

    /// FGMRES on D_c x = b for `eval.rhs` random normalised coarse sources, unpreconditioned
    /// (GMRES) and right-preconditioned by M_c, all in f64.
    pub fn compare(
        &self,
        params: &[f32],
        eval: &Evaluation,
        progress: bool,
    ) -> Result<SolveComparison, PrecondError> {
        let p64: Vec<f64> = params.iter().map(|&x| x as f64).collect();
        let sp = &eval.params;
        let op = self.mg.coarse64();
        let mut prec = CoarsePrec { layers: &self.layers64, params: &p64, error: None };
        let (mut plain, mut pre) = (Vec::new(), Vec::new());
        for k in 0..eval.rhs {
            let mut b = coarse_vector(self.coarse_len(), eval.seed, k as u64);
            let nb = b.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
            b.iter_mut().for_each(|z| *z /= nb);
            let mut x = vec![Complex64::new(0.0, 0.0); b.len()];
            let r0: SolveReport = solve::gmres(op, &b, &mut x, sp);
            x.iter_mut().for_each(|z| *z = Complex64::new(0.0, 0.0));
            let r1: SolveReport = solve::fgmres(op, &mut prec, &b, &mut x, sp);
            if let Some(e) = prec.error.take() {
                return Err(PrecondError::Runtime(e));
            }
            if progress {
                eprintln!(
                    "coarse rhs {k}: {} iterations unpreconditioned, {} with M_c (true residual {:.2e})",
                    r0.iterations, r1.iterations, r1.true_residual
                );
            }
            plain.push(r0);
            pre.push(r1);
        }
        let unpreconditioned = SolveSide::from_reports(&plain);
        let preconditioned = SolveSide::from_reports(&pre);
        Ok(SolveComparison {
            tol: sp.tol,
            restart: sp.restart,
            rhs: eval.rhs,
            max_iterations: sp.max_iterations,
            seed: eval.seed,
            precision: "f64".into(),
            system: "coarse".into(),
            iteration_ratio: unpreconditioned.iterations / preconditioned.iterations.max(1e-300),
            speedup: unpreconditioned.seconds / preconditioned.seconds.max(1e-300),
            unpreconditioned,
            preconditioned,
        })
    }
}

/// M_c as a right preconditioner of the coarse solve (a kernel failure is kept and reported
/// after the solve; the trait cannot return it).
struct CoarsePrec<'a> {
    layers: &'a JitCoarseLayers<f64>,
    params: &'a [f64],
    error: Option<RuntimeError>,
}

impl Preconditioner<f64> for CoarsePrec<'_> {
    fn apply(&mut self, out: &mut [Complex64], inp: &[Complex64]) {
        match self.layers.apply(self.params, inp) {
            Ok(y) => out.copy_from_slice(&y),
            Err(e) => {
                out.copy_from_slice(inp);
                self.error.get_or_insert(e);
            }
        }
    }
}
