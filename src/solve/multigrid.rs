//! The two-level multigrid cycle as a right preconditioner, seen through traits only: a fine
//! operator, a coarse space (restriction P†, prolongation P) and a coarse operator D_c. The
//! concrete executors (JIT kernels, the block basis, the Galerkin stencil) live in `lattice`
//! and `runtime`; this module only orchestrates, so the same cycle runs on the plain
//! references (tests), on f64 JIT kernels in the reference layout ([`TwoLevelCycle`]), and on
//! f32 buffers in the Dirac kernel's own layout inside the mixed-precision FGMRES
//! ([`NativeTwoLevelCycle`]), with no layout conversion inside an outer iteration.
//!
//! **The cycle** (models.md §2.3 "Reference classical MG", `lattice_ml_usecase_01`):
//!
//! ```text
//! x = S_pre(b, 0)                       (optional pre-smoothing)
//! x += P · GMRES(D_c, P† (b − D x))     (coarse-grid correction to a loose tolerance)
//! x = S_post(b, x)                      (post-smoothing from x)
//! ```
//!
//! with S a few GMRES(m) iterations or minimal-residual (MR) steps on D x = b from the given
//! start. The coarse solve and a GMRES smoother are inexact and nonlinear, so the outer solver
//! must be flexible (FGMRES).
//!
//! The coarse solver is a serial GMRES on small vectors ([`CoarseGmres`]): coarse vectors have
//! a few hundred entries, where the rayon fork of the general solver's block products costs more
//! than the arithmetic, and a cycle runs up to 50 coarse iterations.
//!
//! **Near-null vectors** ([`near_null_vectors`]): a few GMRES iterations on D u = 0 from random
//! starts (qcd_ml: GMRES eps 1e-7, restart 20), i.e. GMRES on D e = D v from e = 0 and
//! u = v − e, which has the same Krylov space and residual polynomial: what survives in u are
//! the modes GMRES reduces slowest, the low modes.

use super::gmres::{LeastSquares, gram_schmidt};
use super::linalg::{
    from_c64, multi_dot, multi_sub, multi_sub_dot, split_multi_dot, split_multi_sub,
    split_multi_sub_dot, split_scaled_copy,
};
use super::{
    AdjointOperator, LinearOperator, MixedError, MixedWorkspace, NativeOperator,
    NativePreconditioner, Preconditioner, SolveParams, SolveReport,
};
use crate::lattice::Real;
use crate::lattice::blocks::BlockBasis;
use crate::lattice::coarse::CoarseOperator;
use crate::lattice::fermion::{dot_serial, norm, norm_sqr_serial};
use num_complex::{Complex, Complex64};
use serde::Serialize;
use std::time::Instant;
use wide::f32x4;

/// Restriction and prolongation on vectors in the reference layout (fine: 12 V complex;
/// coarse: coarse volume × n_basis complex).
pub trait CoarseSpace<T: Real> {
    fn fine_len(&self) -> usize;
    fn coarse_len(&self) -> usize;
    /// coarse = P† fine.
    fn restrict(&self, fine: &[Complex<T>], coarse: &mut [Complex<T>]);
    /// fine = P coarse.
    fn prolong(&self, coarse: &[Complex<T>], fine: &mut [Complex<T>]);
}

/// Restriction and prolongation between f32 fine buffers in a [`NativeOperator`]'s layout and
/// complex f32 coarse vectors.
pub trait NativeCoarseSpace {
    fn coarse_len(&self) -> usize;
    /// coarse = P† fine (main part of `fine`).
    fn restrict(&self, fine: &[f32], coarse: &mut [Complex<f32>]) -> Result<(), String>;
    /// fine = P coarse (main part of `fine`; the scratch tail is left alone).
    fn prolong(&self, coarse: &[Complex<f32>], fine: &mut [f32]) -> Result<(), String>;
}

impl CoarseSpace<f64> for BlockBasis {
    fn fine_len(&self) -> usize {
        BlockBasis::fine_len(self)
    }
    fn coarse_len(&self) -> usize {
        BlockBasis::coarse_len(self)
    }
    fn restrict(&self, fine: &[Complex64], coarse: &mut [Complex64]) {
        BlockBasis::restrict(self, fine, coarse)
    }
    fn prolong(&self, coarse: &[Complex64], fine: &mut [Complex64]) {
        BlockBasis::prolong(self, coarse, fine)
    }
}

impl LinearOperator<f64> for CoarseOperator {
    fn len(&self) -> usize {
        CoarseOperator::len(self)
    }
    fn apply(&self, out: &mut [Complex64], inp: &[Complex64]) {
        CoarseOperator::apply(self, out, inp)
    }
}

impl AdjointOperator<f64> for CoarseOperator {
    fn apply_dagger(&self, out: &mut [Complex64], inp: &[Complex64]) {
        CoarseOperator::apply_dagger(self, out, inp)
    }
}

/// A smoother: a few iterations on D x = b from the current x.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Smoother {
    /// No smoothing.
    None,
    /// `iterations` GMRES iterations in cycles of `restart` (each cycle recomputes the residual:
    /// `iterations + ceil(iterations / restart)` applications of D).
    Gmres { restart: usize, iterations: usize },
    /// `iterations` minimal-residual steps x += α r, α = ⟨Dr, r⟩/‖Dr‖² (one application each
    /// plus the initial residual).
    MinRes { iterations: usize },
}

impl Smoother {
    fn is_none(&self) -> bool {
        matches!(self, Smoother::None)
            | matches!(self, Smoother::Gmres { iterations: 0, .. })
            | matches!(self, Smoother::MinRes { iterations: 0 })
    }
}

/// Where the coarse solve starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CoarseGuess {
    Zero,
    /// The restricted right-hand side itself (what the qcd_ml reference does).
    Restricted,
}

/// Parameters of one two-level cycle.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CycleParams {
    /// Coarse GMRES: relative tolerance, restart, iteration cap.
    pub coarse: SolveParams,
    pub coarse_guess: CoarseGuess,
    pub pre: Smoother,
    pub post: Smoother,
}

impl CycleParams {
    /// The reference classical MG of models.md §2.3: coarse GMRES(25) to 5e-2 with at most 50
    /// iterations from x0 = P† b, then 8 post-smoothing GMRES(4) iterations.
    pub fn reference() -> Self {
        CycleParams {
            coarse: SolveParams { tol: 5e-2, restart: 25, max_iterations: 50 },
            coarse_guess: CoarseGuess::Restricted,
            pre: Smoother::None,
            post: Smoother::Gmres { restart: 4, iterations: 8 },
        }
    }
}

impl Default for CycleParams {
    fn default() -> Self {
        Self::reference()
    }
}

/// What the cycles of one preconditioner did since it was built (or [`reset`](Self::reset)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CycleStats {
    pub cycles: usize,
    /// Fine-operator applications inside the cycles (smoothers and residuals).
    pub fine_applications: usize,
    /// Coarse-operator applications (coarse GMRES iterations and its residuals).
    pub coarse_applications: usize,
    pub coarse_iterations: usize,
    pub restrictions: usize,
    pub prolongations: usize,
    /// Seconds in restriction + coarse solve + prolongation.
    pub seconds_coarse: f64,
    /// Seconds in the smoothers.
    pub seconds_smoother: f64,
}

impl CycleStats {
    pub fn reset(&mut self) {
        *self = CycleStats::default();
    }
}

// ---------------------------------------------------------------------------------------------
// The coarse solver.

/// Serial, allocation-free restarted GMRES for coarse vectors. It keeps its Krylov vectors
/// between calls. Convergence is relative to ‖b‖ with the estimate of the least-squares
/// problem; at every restart (and at the end) the residual is recomputed.
pub struct CoarseGmres<T: CoarseScalar> {
    v: Vec<Vec<Complex<T>>>,
    w: Vec<Complex<T>>,
    r: Vec<Complex<T>>,
    ls: LeastSquares,
    m: usize,
}

/// Iterations and operator applications of one coarse solve, and its final relative residual.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoarseSolve {
    pub iterations: usize,
    pub applications: usize,
    pub residual: f64,
}

fn czero<T: Real>() -> Complex<T> {
    Complex::new(T::zero(), T::zero())
}

impl<T: CoarseScalar> CoarseGmres<T> {
    /// Workspace for vectors of `n` complex numbers and restart length `restart`.
    pub fn new(n: usize, restart: usize) -> Self {
        let m = restart.max(1);
        CoarseGmres {
            v: (0..=m).map(|_| vec![czero(); n]).collect(),
            w: vec![czero(); n],
            r: vec![czero(); n],
            ls: LeastSquares::new(m),
            m,
        }
    }

    /// Solves `op x = b` from the `x` given, to `params.tol` relative to ‖b‖ or
    /// `params.max_iterations` (the restart length is the workspace's).
    pub fn solve(
        &mut self,
        op: &dyn LinearOperator<T>,
        b: &[Complex<T>],
        x: &mut [Complex<T>],
        params: &SolveParams,
    ) -> CoarseSolve {
        let n = self.w.len();
        assert!(
            op.len() == n && b.len() == n && x.len() == n,
            "coarse GMRES: workspace for {n}, operator {}, b {}, x {}",
            op.len(),
            b.len(),
            x.len()
        );
        let bnorm = T::norm_sqr(b).sqrt();
        let mut out = CoarseSolve { iterations: 0, applications: 0, residual: 0.0 };
        if bnorm == 0.0 {
            x.iter_mut().for_each(|z| *z = czero());
            return out;
        }
        let residual = |r: &mut [Complex<T>], x: &[Complex<T>], apps: &mut usize| {
            op.apply(r, x);
            *apps += 1;
            for (ri, bi) in r.iter_mut().zip(b) {
                *ri = *bi - *ri;
            }
            T::norm_sqr(r).sqrt()
        };
        let mut beta = residual(&mut self.r, x, &mut out.applications);
        while beta / bnorm > params.tol && out.iterations < params.max_iterations {
            let s = from_c64::<T>(Complex64::new(1.0 / beta, 0.0));
            for (v, r) in self.v[0].iter_mut().zip(&self.r) {
                *v = *r * s;
            }
            self.ls.reset(beta);
            let mut k = 0;
            while k < self.m && out.iterations < params.max_iterations {
                op.apply(&mut self.w, &self.v[k]);
                out.applications += 1;
                let v = &self.v;
                let (hj, hnext) = gram_schmidt(
                    &mut self.w,
                    |w: &Vec<Complex<T>>| serial_dots(v, k + 1, w),
                    |w: &mut Vec<Complex<T>>, h: &[Complex64]| serial_sub(w, h, v, false)[0].re,
                    |w: &mut Vec<Complex<T>>, h: &[Complex64]| serial_sub(w, h, v, true),
                );
                if hnext > 0.0 {
                    let s = from_c64::<T>(Complex64::new(1.0 / hnext, 0.0));
                    for (vn, wi) in self.v[k + 1].iter_mut().zip(&self.w) {
                        *vn = *wi * s;
                    }
                }
                let est = self.ls.push_column(&hj, hnext) / bnorm;
                out.iterations += 1;
                k += 1;
                if est <= params.tol || hnext == 0.0 {
                    break;
                }
            }
            let y = self.ls.solve(k);
            for (yi, v) in y.iter().zip(&self.v) {
                T::axpy(x, *yi, v);
            }
            beta = residual(&mut self.r, x, &mut out.applications);
            if !beta.is_finite() {
                break;
            }
        }
        out.residual = beta / bnorm;
        out
    }
}

/// The vector kernels of the coarse GMRES: serial (coarse vectors are a few hundred entries),
/// and for f32 in explicit SIMD on the interleaved complex numbers (two per f32x4). The generic
/// f64-accumulating loop spent two thirds of a coarse iteration here, more than the coarse
/// operator itself (`benches/multigrid.rs`, `coarse_gmres50`).
pub trait CoarseScalar: Real {
    /// ⟨a, b⟩ (f64 result).
    fn dot(a: &[Complex<Self>], b: &[Complex<Self>]) -> Complex64;
    /// ‖a‖².
    fn norm_sqr(a: &[Complex<Self>]) -> f64;
    /// y += c x.
    fn axpy(y: &mut [Complex<Self>], c: Complex64, x: &[Complex<Self>]);
}

impl CoarseScalar for f64 {
    fn dot(a: &[Complex64], b: &[Complex64]) -> Complex64 {
        dot_serial(a, b)
    }
    fn norm_sqr(a: &[Complex64]) -> f64 {
        norm_sqr_serial(a)
    }
    fn axpy(y: &mut [Complex64], c: Complex64, x: &[Complex64]) {
        for (yi, xi) in y.iter_mut().zip(x) {
            *yi += c * xi;
        }
    }
}

/// Lanes (re0, im0, re1, im1) → (im0, re0, im1, re1).
#[inline(always)]
fn swap_pairs(v: &[f32; 4]) -> f32x4 {
    f32x4::new([v[1], v[0], v[3], v[2]])
}

impl CoarseScalar for f32 {
    fn dot(a: &[Complex<f32>], b: &[Complex<f32>]) -> Complex64 {
        let (af, bf): (&[f32], &[f32]) = (bytemuck::cast_slice(a), bytemuck::cast_slice(b));
        let (ac, at) = af.as_chunks::<4>();
        let (bc, bt) = bf.as_chunks::<4>();
        // p accumulates (ar br, ai bi), q (ar bi, ai br): re = Σ p, im = Σ (q_even − q_odd).
        let (mut p, mut q) = (f32x4::ZERO, f32x4::ZERO);
        for (x, y) in ac.iter().zip(bc) {
            let xv = f32x4::new(*x);
            p = xv.mul_add(f32x4::new(*y), p);
            q = xv.mul_add(swap_pairs(y), q);
        }
        let (p, q) = (p.to_array(), q.to_array());
        let mut re = (p[0] as f64 + p[1] as f64) + (p[2] as f64 + p[3] as f64);
        let mut im = (q[0] as f64 - q[1] as f64) + (q[2] as f64 - q[3] as f64);
        for (x, y) in at.chunks_exact(2).zip(bt.chunks_exact(2)) {
            let (ar, ai, br, bi) = (x[0] as f64, x[1] as f64, y[0] as f64, y[1] as f64);
            re += ar * br + ai * bi;
            im += ar * bi - ai * br;
        }
        Complex64::new(re, im)
    }
    fn norm_sqr(a: &[Complex<f32>]) -> f64 {
        let af: &[f32] = bytemuck::cast_slice(a);
        let (ac, at) = af.as_chunks::<4>();
        let mut p = f32x4::ZERO;
        for x in ac {
            let xv = f32x4::new(*x);
            p = xv.mul_add(xv, p);
        }
        let p = p.to_array();
        (p[0] as f64 + p[1] as f64)
            + (p[2] as f64 + p[3] as f64)
            + at.iter().map(|&e| e as f64 * e as f64).sum::<f64>()
    }
    fn axpy(y: &mut [Complex<f32>], c: Complex64, x: &[Complex<f32>]) {
        let (cr, ci) = (c.re as f32, c.im as f32);
        let yf: &mut [f32] = bytemuck::cast_slice_mut(y);
        let xf: &[f32] = bytemuck::cast_slice(x);
        let (yc, yt) = yf.as_chunks_mut::<4>();
        let (xc, xt) = xf.as_chunks::<4>();
        // y += cr x + ci (−xi, xr, …).
        let sr = f32x4::splat(cr);
        let si = f32x4::new([-ci, ci, -ci, ci]);
        for (yv, xv) in yc.iter_mut().zip(xc) {
            let r = f32x4::new(*yv) + sr * f32x4::new(*xv) + si * swap_pairs(xv);
            *yv = r.to_array();
        }
        for (yp, xp) in yt.chunks_exact_mut(2).zip(xt.chunks_exact(2)) {
            yp[0] += cr * xp[0] - ci * xp[1];
            yp[1] += cr * xp[1] + ci * xp[0];
        }
    }
}

/// [⟨v_0, w⟩, …, ⟨v_{k−1}, w⟩, ‖w‖²] on one thread.
fn serial_dots<T: CoarseScalar>(
    vs: &[Vec<Complex<T>>],
    k: usize,
    w: &[Complex<T>],
) -> Vec<Complex64> {
    let mut out: Vec<Complex64> = vs[..k].iter().map(|v| T::dot(v, w)).collect();
    out.push(Complex64::new(T::norm_sqr(w), 0.0));
    out
}

/// w −= Σ h_i v_i on one thread; returns [‖w‖²] or, with `dots`, [⟨v_i, w⟩…, ‖w‖²].
fn serial_sub<T: CoarseScalar>(
    w: &mut [Complex<T>],
    h: &[Complex64],
    vs: &[Vec<Complex<T>>],
    dots: bool,
) -> Vec<Complex64> {
    for (hi, v) in h.iter().zip(vs) {
        T::axpy(w, -*hi, v);
    }
    if dots { serial_dots(vs, h.len(), w) } else { vec![Complex64::new(T::norm_sqr(w), 0.0)] }
}

// ---------------------------------------------------------------------------------------------
// The cycle on vectors in the reference layout.

/// The two-level cycle's state on reference-layout vectors of precision `T`: parameters,
/// statistics and reused buffers. The operators are passed to [`apply`](Self::apply), so that
/// one owner can keep the executors and the cycle side by side.
pub struct TwoLevelCycle<T: CoarseScalar> {
    pub params: CycleParams,
    pub stats: CycleStats,
    coarse_solver: CoarseGmres<T>,
    chi: Vec<Complex<T>>,
    y: Vec<Complex<T>>,
    r: Vec<Complex<T>>,
    e: Vec<Complex<T>>,
    v: Vec<Vec<Complex<T>>>,
    ls: LeastSquares,
}

impl<T: CoarseScalar> TwoLevelCycle<T> {
    pub fn new(params: CycleParams, fine_len: usize, coarse_len: usize) -> Self {
        let m = smoother_restart(&params);
        TwoLevelCycle {
            params,
            stats: CycleStats::default(),
            coarse_solver: CoarseGmres::new(coarse_len, params.coarse.restart),
            chi: vec![czero(); coarse_len],
            y: vec![czero(); coarse_len],
            r: vec![czero(); fine_len],
            e: vec![czero(); fine_len],
            v: (0..=m).map(|_| vec![czero(); fine_len]).collect(),
            ls: LeastSquares::new(m),
        }
    }

    /// out = M inp, one two-level cycle.
    pub fn apply(
        &mut self,
        fine: &dyn LinearOperator<T>,
        space: &dyn CoarseSpace<T>,
        coarse: &dyn LinearOperator<T>,
        out: &mut [Complex<T>],
        inp: &[Complex<T>],
    ) {
        self.stats.cycles += 1;
        let p = self.params;
        let t0 = Instant::now();
        out.iter_mut().for_each(|z| *z = czero());
        let mut have_x = false;
        if !p.pre.is_none() {
            self.smooth(fine, &p.pre, inp, out, false);
            have_x = true;
        }
        let t1 = Instant::now();
        // r = b − D x.
        let r: &[Complex<T>] = if have_x {
            fine.apply(&mut self.r, out);
            self.stats.fine_applications += 1;
            for (ri, bi) in self.r.iter_mut().zip(inp) {
                *ri = *bi - *ri;
            }
            &self.r
        } else {
            inp
        };
        space.restrict(r, &mut self.chi);
        self.stats.restrictions += 1;
        match p.coarse_guess {
            CoarseGuess::Zero => self.y.iter_mut().for_each(|z| *z = czero()),
            CoarseGuess::Restricted => self.y.copy_from_slice(&self.chi),
        }
        let cs = self.coarse_solver.solve(coarse, &self.chi, &mut self.y, &p.coarse);
        self.stats.coarse_applications += cs.applications;
        self.stats.coarse_iterations += cs.iterations;
        space.prolong(&self.y, &mut self.e);
        self.stats.prolongations += 1;
        for (x, e) in out.iter_mut().zip(&self.e) {
            *x += *e;
        }
        let t2 = Instant::now();
        if !p.post.is_none() {
            self.smooth(fine, &p.post, inp, out, true);
        }
        let t3 = Instant::now();
        self.stats.seconds_coarse += (t2 - t1).as_secs_f64();
        self.stats.seconds_smoother += (t1 - t0).as_secs_f64() + (t3 - t2).as_secs_f64();
    }

    /// x = S(b, x); `have_x` false means x = 0 (saves one application).
    fn smooth(
        &mut self,
        fine: &dyn LinearOperator<T>,
        s: &Smoother,
        b: &[Complex<T>],
        x: &mut [Complex<T>],
        have_x: bool,
    ) {
        match *s {
            Smoother::None => {}
            Smoother::Gmres { restart, iterations } => {
                let m = restart.max(1).min(self.v.len() - 1);
                let mut done = 0;
                let mut first = true;
                while done < iterations {
                    if first && !have_x {
                        self.r.copy_from_slice(b);
                    } else {
                        fine.apply(&mut self.r, x);
                        self.stats.fine_applications += 1;
                        for (ri, bi) in self.r.iter_mut().zip(b) {
                            *ri = *bi - *ri;
                        }
                    }
                    first = false;
                    let beta = norm(&self.r);
                    if beta == 0.0 || !beta.is_finite() {
                        break;
                    }
                    let s = from_c64::<T>(Complex64::new(1.0 / beta, 0.0));
                    for (v, r) in self.v[0].iter_mut().zip(&self.r) {
                        *v = *r * s;
                    }
                    self.ls.reset(beta);
                    let mut k = 0;
                    while k < m && done < iterations {
                        fine.apply(&mut self.e, &self.v[k]);
                        self.stats.fine_applications += 1;
                        let v = &self.v;
                        let (hj, hnext) = gram_schmidt(
                            &mut self.e,
                            |w: &Vec<Complex<T>>| multi_dot(v, k + 1, w),
                            |w: &mut Vec<Complex<T>>, h: &[Complex64]| multi_sub(w, h, v),
                            |w: &mut Vec<Complex<T>>, h: &[Complex64]| multi_sub_dot(w, h, v),
                        );
                        if hnext > 0.0 {
                            let s = from_c64::<T>(Complex64::new(1.0 / hnext, 0.0));
                            for (vn, wi) in self.v[k + 1].iter_mut().zip(&self.e) {
                                *vn = *wi * s;
                            }
                        }
                        self.ls.push_column(&hj, hnext);
                        done += 1;
                        k += 1;
                        if hnext == 0.0 {
                            break;
                        }
                    }
                    let y = self.ls.solve(k);
                    let neg: Vec<Complex64> = y.iter().map(|c| -*c).collect();
                    multi_sub(x, &neg, &self.v[..k]);
                    if k < m && done < iterations {
                        // Happy breakdown: x solves the system exactly.
                        break;
                    }
                }
            }
            Smoother::MinRes { iterations } => {
                if have_x {
                    fine.apply(&mut self.r, x);
                    self.stats.fine_applications += 1;
                    for (ri, bi) in self.r.iter_mut().zip(b) {
                        *ri = *bi - *ri;
                    }
                } else {
                    self.r.copy_from_slice(b);
                }
                for _ in 0..iterations {
                    fine.apply(&mut self.e, &self.r);
                    self.stats.fine_applications += 1;
                    let dw = multi_dot(std::slice::from_ref(&self.r), 1, &self.e);
                    if dw[1].re == 0.0 {
                        break;
                    }
                    // α = ⟨Dr, r⟩/‖Dr‖² minimises ‖r − α D r‖.
                    let alpha = dw[0].conj() / dw[1].re;
                    let a = from_c64::<T>(alpha);
                    for ((xi, ri), ei) in x.iter_mut().zip(self.r.iter_mut()).zip(&self.e) {
                        *xi += a * *ri;
                        *ri -= a * *ei;
                    }
                }
            }
        }
    }
}

/// The largest restart a smoother of these parameters needs (the Krylov buffers' count).
fn smoother_restart(p: &CycleParams) -> usize {
    let m = |s: &Smoother| match *s {
        Smoother::Gmres { restart, .. } => restart.max(1),
        _ => 1,
    };
    m(&p.pre).max(m(&p.post))
}

/// A two-level cycle with borrowed operators, as a [`Preconditioner`] for `fgmres`.
pub struct TwoLevel<'a, T: CoarseScalar> {
    pub fine: &'a dyn LinearOperator<T>,
    pub space: &'a dyn CoarseSpace<T>,
    pub coarse: &'a dyn LinearOperator<T>,
    pub cycle: &'a mut TwoLevelCycle<T>,
}

impl<T: CoarseScalar> Preconditioner<T> for TwoLevel<'_, T> {
    fn apply(&mut self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        self.cycle.apply(self.fine, self.space, self.coarse, out, inp)
    }
}

// ---------------------------------------------------------------------------------------------
// The cycle on f32 buffers in the fine operator's layout.

/// The two-level cycle's state on split-complex f32 buffers of a [`NativeOperator`]:
/// parameters, statistics and reused buffers (no allocation per application).
pub struct NativeTwoLevelCycle {
    pub params: CycleParams,
    pub stats: CycleStats,
    coarse_solver: CoarseGmres<f32>,
    chi: Vec<Complex<f32>>,
    y: Vec<Complex<f32>>,
    r: Vec<f32>,
    e: Vec<f32>,
    v: Vec<Vec<f32>>,
    ls: LeastSquares,
    main: usize,
}

impl NativeTwoLevelCycle {
    /// Buffers of `buffer_len` scalars whose first `main_len` hold the field (the fine
    /// operator's [`NativeOperator::main_len`]), coarse vectors of `coarse_len`.
    pub fn new(params: CycleParams, main_len: usize, buffer_len: usize, coarse_len: usize) -> Self {
        let m = smoother_restart(&params);
        NativeTwoLevelCycle {
            params,
            stats: CycleStats::default(),
            coarse_solver: CoarseGmres::new(coarse_len, params.coarse.restart),
            chi: vec![czero(); coarse_len],
            y: vec![czero(); coarse_len],
            r: vec![0.0; buffer_len],
            e: vec![0.0; buffer_len],
            v: (0..=m).map(|_| vec![0.0; buffer_len]).collect(),
            ls: LeastSquares::new(m),
            main: main_len,
        }
    }

    /// Scalars of a buffer this cycle reads or writes.
    pub fn buffer_len(&self) -> usize {
        self.r.len()
    }

    /// out = M inp, one two-level cycle (main parts; the tail of `inp` is not touched).
    pub fn apply(
        &mut self,
        fine: &dyn NativeOperator,
        space: &dyn NativeCoarseSpace,
        coarse: &dyn LinearOperator<f32>,
        out: &mut [f32],
        inp: &[f32],
    ) -> Result<(), String> {
        let main = self.main;
        if out.len() < self.r.len() || inp.len() < main {
            return Err(format!(
                "multigrid cycle: buffers of {} and {} scalars, it needs {} and {main}",
                out.len(),
                inp.len(),
                self.r.len()
            ));
        }
        self.stats.cycles += 1;
        let p = self.params;
        let t0 = Instant::now();
        out[..main].iter_mut().for_each(|z| *z = 0.0);
        let mut have_x = false;
        if !p.pre.is_none() {
            self.smooth(fine, &p.pre, inp, out, false)?;
            have_x = true;
        }
        let t1 = Instant::now();
        if have_x {
            fine.apply(&mut self.r, out)?;
            self.stats.fine_applications += 1;
            sub_from(&mut self.r[..main], &inp[..main]);
            space.restrict(&self.r, &mut self.chi)?;
        } else {
            space.restrict(inp, &mut self.chi)?;
        }
        self.stats.restrictions += 1;
        match p.coarse_guess {
            CoarseGuess::Zero => self.y.iter_mut().for_each(|z| *z = czero()),
            CoarseGuess::Restricted => self.y.copy_from_slice(&self.chi),
        }
        let cs = self.coarse_solver.solve(coarse, &self.chi, &mut self.y, &p.coarse);
        self.stats.coarse_applications += cs.applications;
        self.stats.coarse_iterations += cs.iterations;
        space.prolong(&self.y, &mut self.e)?;
        self.stats.prolongations += 1;
        for (x, e) in out[..main].iter_mut().zip(&self.e[..main]) {
            *x += *e;
        }
        let t2 = Instant::now();
        if !p.post.is_none() {
            self.smooth(fine, &p.post, inp, out, true)?;
        }
        let t3 = Instant::now();
        self.stats.seconds_coarse += (t2 - t1).as_secs_f64();
        self.stats.seconds_smoother += (t1 - t0).as_secs_f64() + (t3 - t2).as_secs_f64();
        Ok(())
    }

    fn smooth(
        &mut self,
        fine: &dyn NativeOperator,
        s: &Smoother,
        b: &[f32],
        x: &mut [f32],
        have_x: bool,
    ) -> Result<(), String> {
        let main = self.main;
        match *s {
            Smoother::None => {}
            Smoother::Gmres { restart, iterations } => {
                let m = restart.max(1).min(self.v.len() - 1);
                let mut done = 0;
                let mut first = true;
                while done < iterations {
                    if first && !have_x {
                        self.r[..main].copy_from_slice(&b[..main]);
                    } else {
                        fine.apply(&mut self.r, x)?;
                        self.stats.fine_applications += 1;
                        sub_from(&mut self.r[..main], &b[..main]);
                    }
                    first = false;
                    let beta =
                        global(fine, split_multi_dot(&self.v, 0, &self.r, main))[0].re.sqrt();
                    if beta == 0.0 || !beta.is_finite() {
                        break;
                    }
                    split_scaled_copy(&mut self.v[0], 1.0 / beta, &self.r, main);
                    self.ls.reset(beta);
                    let mut k = 0;
                    while k < m && done < iterations {
                        {
                            let (head, _) = self.v.split_at_mut(k + 1);
                            fine.apply(&mut self.e, &mut head[k])?;
                        }
                        self.stats.fine_applications += 1;
                        let v = &self.v;
                        let (hj, hnext) = gram_schmidt(
                            &mut self.e,
                            |w: &Vec<f32>| global(fine, split_multi_dot(v, k + 1, w, main)),
                            |w: &mut Vec<f32>, h: &[Complex64]| {
                                let mut n = [split_multi_sub(w, h, v, main)];
                                fine.global_sum(&mut n);
                                n[0]
                            },
                            |w: &mut Vec<f32>, h: &[Complex64]| {
                                global(fine, split_multi_sub_dot(w, h, v, main))
                            },
                        );
                        if hnext > 0.0 {
                            split_scaled_copy(&mut self.v[k + 1], 1.0 / hnext, &self.e, main);
                        }
                        self.ls.push_column(&hj, hnext);
                        done += 1;
                        k += 1;
                        if hnext == 0.0 {
                            break;
                        }
                    }
                    let y = self.ls.solve(k);
                    let neg: Vec<Complex64> = y.iter().map(|c| -*c).collect();
                    split_multi_sub(x, &neg, &self.v[..k], main);
                    if k < m && done < iterations {
                        break;
                    }
                }
            }
            Smoother::MinRes { iterations } => {
                if have_x {
                    fine.apply(&mut self.r, x)?;
                    self.stats.fine_applications += 1;
                    sub_from(&mut self.r[..main], &b[..main]);
                } else {
                    self.r[..main].copy_from_slice(&b[..main]);
                }
                for _ in 0..iterations {
                    fine.apply(&mut self.e, &mut self.r)?;
                    self.stats.fine_applications += 1;
                    let dw = global(
                        fine,
                        split_multi_dot(std::slice::from_ref(&self.r), 1, &self.e, main),
                    );
                    if dw[1].re == 0.0 || !dw[1].re.is_finite() {
                        break;
                    }
                    let alpha = dw[0].conj() / dw[1].re;
                    split_axpy(x, alpha, &self.r, main);
                    split_axpy(&mut self.r, -alpha, &self.e, main);
                }
            }
        }
        Ok(())
    }
}

/// Inner products of this process's part of the vectors made global through the fine
/// operator's [`NativeOperator::global_sum`] (unchanged on one process), so that a smoother
/// on a decomposed lattice decides as the single-process one does.
fn global(fine: &dyn NativeOperator, dots: Vec<Complex64>) -> Vec<Complex64> {
    let mut flat: Vec<f64> = dots.iter().flat_map(|z| [z.re, z.im]).collect();
    fine.global_sum(&mut flat);
    flat.chunks_exact(2).map(|p| Complex64::new(p[0], p[1])).collect()
}

/// r = b − r on the main part.
fn sub_from(r: &mut [f32], b: &[f32]) {
    for (ri, bi) in r.iter_mut().zip(b) {
        *ri = *bi - *ri;
    }
}

/// y += a x on split-complex blocks (4 re, 4 im).
fn split_axpy(y: &mut [f32], a: Complex64, x: &[f32], main: usize) {
    let (ar, ai) = (a.re as f32, a.im as f32);
    for (yb, xb) in y[..main].chunks_exact_mut(8).zip(x[..main].chunks_exact(8)) {
        for l in 0..4 {
            let (xr, xi) = (xb[l], xb[4 + l]);
            yb[l] += ar * xr - ai * xi;
            yb[4 + l] += ar * xi + ai * xr;
        }
    }
}

/// A native two-level cycle with borrowed operators, as a [`NativePreconditioner`] for
/// `fgmres_mixed`.
pub struct NativeTwoLevel<'a> {
    pub fine: &'a dyn NativeOperator,
    pub space: &'a dyn NativeCoarseSpace,
    pub coarse: &'a dyn LinearOperator<f32>,
    pub cycle: &'a mut NativeTwoLevelCycle,
}

impl NativePreconditioner for NativeTwoLevel<'_> {
    fn buffer_len(&self) -> usize {
        self.cycle.buffer_len().max(self.fine.buffer_len())
    }
    fn apply(&mut self, out: &mut [f32], inp: &mut [f32]) -> Result<(), String> {
        self.cycle.apply(self.fine, self.space, self.coarse, out, inp)
    }
}

// ---------------------------------------------------------------------------------------------
// Near-null vectors.

/// The set-up solver of the near-null vectors: GMRES(`restart`) on D u = 0 until the residual
/// has dropped by `tol` or `iterations` are done.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NearNullParams {
    pub iterations: usize,
    pub restart: usize,
    pub tol: f64,
}

impl NearNullParams {
    /// Canonical text (for cache keys).
    pub fn describe(&self) -> String {
        format!("gmres(restart={},iterations={},tol={:e})", self.restart, self.iterations, self.tol)
    }
}

/// Near-null vectors from the `starts`: u = v − e with e from GMRES on D e = D v (see the
/// module doc), for each normalised start v. With `op32` the GMRES cycles run in f32 on the
/// native operator and the residuals in f64 ([`super::gmres_mixed`]); otherwise in f64 on
/// `op64`. Returns the vectors (unnormalised: block orthonormalisation follows) and each
/// solve's report.
pub fn near_null_vectors(
    op64: &dyn LinearOperator<f64>,
    op32: Option<&dyn NativeOperator>,
    starts: Vec<Vec<Complex64>>,
    params: &NearNullParams,
) -> Result<(Vec<Vec<Complex64>>, Vec<SolveReport>), MixedError> {
    let sp =
        SolveParams { tol: params.tol, restart: params.restart, max_iterations: params.iterations };
    let mut ws = MixedWorkspace::new();
    let mut out = Vec::with_capacity(starts.len());
    let mut reports = Vec::with_capacity(starts.len());
    for mut v in starts {
        // The norm over every process's part (on one process the sum is the identity and the
        // local norm is kept exactly).
        let local = norm(&v);
        let mut sq = [local * local];
        op64.global_sum(&mut sq);
        let nv = if sq[0] == local * local { local } else { sq[0].sqrt() };
        if nv > 0.0 {
            v.iter_mut().for_each(|z| *z /= nv);
        }
        let mut b = vec![Complex64::new(0.0, 0.0); v.len()];
        op64.apply(&mut b, &v);
        let mut e = vec![Complex64::new(0.0, 0.0); v.len()];
        let rep = match op32 {
            Some(op32) => super::gmres_mixed(&mut ws, op64, op32, &b, &mut e, &sp)?,
            None => super::gmres(op64, &b, &mut e, &sp),
        };
        for (vi, ei) in v.iter_mut().zip(&e) {
            *vi -= *ei;
        }
        out.push(v);
        reports.push(rep);
    }
    Ok((out, reports))
}
