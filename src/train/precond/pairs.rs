//! Training pairs and the loss a preconditioner minimises. Each step draws its own pair from a
//! counter-based ChaCha stream (seed, step, site), so a resumed run sees exactly the vectors an
//! uninterrupted one would, and a split run the vectors of one process. The pairs and the loss
//! exist twice: on reference vectors (any network, any operator) and on the kernels' own
//! buffers ([`NativePair`]: no layout conversion, what a training step uses unless the filtered
//! loss needs reference vectors). Preconditioner loss (models.md §2.3): M should map b = D v
//! to v for Gaussian v, and the loss is ‖M b − v‖²/‖b‖². Filtered loss (models.md §3.2): v is
//! replaced by ṽ, the result of a few GMRES iterations on D ṽ = 0 from a Gaussian start, which
//! stresses the low modes that dominate the solve.

use crate::ir::LossSpec;
use crate::lattice::Real;
use crate::lattice::fermion::{self, cast_slice};
use crate::runtime::dirac::JitWilsonClover;
use crate::runtime::{FermionNet, RuntimeError, SiteLayout};
use crate::solve::NativeOperator;
use crate::solve::{self, LinearOperator, SolveParams};
use num_complex::Complex;
use rayon::prelude::*;

fn zero<T: Real>() -> Complex<T> {
    Complex::new(T::zero(), T::zero())
}

/// One training pair (input, target) of step `step`: the network should map `input` to
/// `target`. Preconditioner loss: input = D v/‖D v‖, target = v/‖D v‖ for Gaussian v (so that
/// ‖M input − target‖² is the normalised loss). Filtered loss: ṽ from `iterations` GMRES steps
/// on D ṽ = 0 from a Gaussian start, normalised; input = D ṽ, target = ṽ.
pub fn training_pair<T: Real, O: LinearOperator<T> + ?Sized>(
    d: &O,
    dims: [usize; 4],
    loss: &LossSpec,
    seed: u64,
    step: u64,
) -> (Vec<Complex<T>>, Vec<Complex<T>>) {
    training_pair_on(d, dims, None, loss, seed, step)
}

/// [`training_pair`] on a lattice split over processes: `d` is this process's part of D,
/// `sites` the global site of each of its local sites. The Gaussian vector is drawn on the
/// same counter-based stream as one process draws, at the local sites only, and the
/// norms are global ([`LinearOperator::global_sum`]), so every process holds its part of
/// exactly the pair one process would train on.
pub fn training_pair_on<T: Real, O: LinearOperator<T> + ?Sized>(
    d: &O,
    dims: [usize; 4],
    sites: Option<&[usize]>,
    loss: &LossSpec,
    seed: u64,
    step: u64,
) -> (Vec<Complex<T>>, Vec<Complex<T>>) {
    // Counter-based: every process draws only its own sites, and they are the sites one
    // process would draw.
    let n = sites.map_or_else(|| dims.iter().product(), |s| s.len());
    let v = fermion::gaussian_at::<T>(seed, step, n, |i| sites.map_or(i, |s| s[i]));
    let norm = |x: &[Complex<T>]| {
        let mut s = [fermion::norm_sqr(x)];
        d.global_sum(&mut s);
        s[0].sqrt()
    };
    let n = v.len();
    match *loss {
        LossSpec::Filtered { iterations } if iterations > 0 => {
            // GMRES on D x = 0 from x0 = v is GMRES on D e = D v from 0 with x = v − e.
            let mut dv = vec![zero::<T>(); n];
            d.apply(&mut dv, &v);
            let mut e = vec![zero::<T>(); n];
            let params =
                SolveParams { tol: 1e-300, restart: iterations, max_iterations: iterations };
            solve::gmres(d, &dv, &mut e, &params);
            let mut vt = v;
            for (x, ei) in vt.iter_mut().zip(&e) {
                *x -= *ei;
            }
            let s = 1.0 / norm(&vt);
            fermion::scale(Complex::new(T::from(s).unwrap_or(T::one()), T::zero()), &mut vt);
            let mut b = vec![zero::<T>(); n];
            d.apply(&mut b, &vt);
            (b, vt)
        }
        _ => {
            let mut b = vec![zero::<T>(); n];
            d.apply(&mut b, &v);
            let s = Complex::new(T::from(1.0 / norm(&b)).unwrap_or(T::one()), T::zero());
            let mut v = v;
            fermion::scale(s, &mut b);
            fermion::scale(s, &mut v);
            (b, v)
        }
    }
}

/// The loss ‖M input − target‖² (accumulated in f64).
pub fn pair_loss<T: Real, N: FermionNet<T> + ?Sized>(
    net: &N,
    params: &[T],
    input: &[Complex<T>],
    target: &[Complex<T>],
) -> Result<f64, RuntimeError> {
    let mut out = vec![zero::<T>(); target.len()];
    net.forward(params, input, &mut out)?;
    Ok(out
        .iter()
        .zip(target)
        .map(|(o, t)| {
            let d = *o - *t;
            d.re.to_f64().powi(2) + d.im.to_f64().powi(2)
        })
        .sum())
}

/// Loss and its gradient with respect to the (re, im) pairs of the weights: the backward pass
/// is seeded with 2 (M input − target) (models.md §1.8).
pub fn pair_loss_grad<T: Real, N: FermionNet<T> + ?Sized>(
    net: &N,
    params: &[T],
    input: &[Complex<T>],
    target: &[Complex<T>],
    grad: &mut [T],
) -> Result<f64, RuntimeError> {
    let mut loss = 0.0f64;
    let two = T::one() + T::one();
    net.forward_backward_seeded(
        params,
        input,
        &mut |out, g| {
            for ((gi, o), t) in g.iter_mut().zip(out).zip(target) {
                let d = *o - *t;
                loss += d.norm_sqr().to_f64();
                *gi = d * two;
            }
        },
        grad,
    )?;
    Ok(loss)
}

/// Casts a weight vector (f32 storage) to another precision.
pub fn params_as<T: Real>(p: &[f32]) -> Vec<T> {
    p.iter().map(|&x| T::from(x).unwrap_or(T::nan())).collect()
}

/// Casts a fermion vector between precisions (re-exported for tests and benches).
pub fn cast<T: Real, U: Real>(x: &[Complex<T>]) -> Vec<Complex<U>> {
    cast_slice(x)
}

/// D in f32 as the training pairs need it: on reference vectors (the filtered loss's GMRES)
/// and on its own buffers ([`NativePair`]); one process's JIT kernel, or this process's part of
/// D in a split run.
pub trait PairDirac: LinearOperator<f32> + NativeOperator {
    /// The layout of its buffers.
    fn layout(&self) -> &SiteLayout;
}

impl PairDirac for JitWilsonClover<f32> {
    fn layout(&self) -> &SiteLayout {
        JitWilsonClover::layout(self)
    }
}

/// A training pair on the buffers of the JIT kernels (one feature each, in the operator's
/// layout): the same pair as [`training_pair_on`] for the preconditioner loss, without a
/// reference-layout copy, and the loss on the same buffers. The buffers are kept between
/// steps (fresh ones of this size are page-faulted in on every step).
#[derive(Debug, Default)]
pub struct NativePair {
    /// The network's input b = D v / ‖D v‖ (main part; the tail is scratch).
    pub input: Vec<f32>,
    /// The target v / ‖D v‖.
    pub target: Vec<f32>,
}

impl NativePair {
    /// Draws the pair of step `step` for `d` (whose buffers are in `layout`); `sites` gives
    /// the global site of every local site of a sub-lattice operator (`None`: the whole
    /// lattice). `len` is the buffer length the network needs beyond the operator's.
    pub fn draw(
        &mut self,
        d: &dyn NativeOperator,
        layout: &SiteLayout,
        sites: Option<&[usize]>,
        len: usize,
        seed: u64,
        step: u64,
    ) -> Result<(), RuntimeError> {
        let len = len.max(d.buffer_len()).max(layout.field_len());
        self.input.resize(len, 0.0);
        self.target.resize(len, 0.0);
        let g = fermion::GaussianStream::new(seed, step);
        layout.fill_sites(
            &mut self.target,
            || g.clone(),
            |g, x, z| g.site(sites.map_or(x, |s| s[x]), z),
        );
        d.apply(&mut self.input, &mut self.target)
            .map_err(|e| RuntimeError::Shape(format!("training pair: {e}")))?;
        let main = layout.main_len();
        let mut norm = [self.input[..main]
            .par_chunks(4096)
            .map(|c| c.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>())
            .sum::<f64>()];
        d.global_sum(&mut norm);
        let s = (1.0 / norm[0].sqrt()) as f32;
        for buf in [&mut self.input, &mut self.target] {
            buf[..main].par_chunks_mut(4096).for_each(|c| c.iter_mut().for_each(|x| *x *= s));
        }
        Ok(())
    }

    /// The loss ‖M input − target‖² (this process's part, accumulated in f64) and its weight
    /// gradient, as [`pair_loss_grad`], on the pair's buffers in `layout`.
    pub fn loss_grad(
        &mut self,
        net: &dyn FermionNet<f32>,
        params: &[f32],
        layout: &SiteLayout,
        grad: &mut [f32],
    ) -> Result<f64, RuntimeError> {
        let main = layout.main_len();
        if self.target.len() < main || self.input.len() < main {
            return Err(RuntimeError::Shape(format!(
                "training pair: buffers of {} and {} scalars, the layout needs {main} (draw a \
                 pair for this operator first)",
                self.input.len(),
                self.target.len()
            )));
        }
        net.loss_grad_native(params, layout, &mut self.input, &self.target, grad)
    }
}
