//! Krylov solvers for D x = b: GMRES(m), flexible GMRES(m) with a right preconditioner,
//! BiCGStab, and CG on the normal equations (CGNE).
//!
//! These are the baseline every learned preconditioner is judged against, so they report what
//! a comparison needs: iterations, operator and preconditioner applications, wall time, the
//! relative residual after every iteration, and a *true* residual ‖b − D x‖/‖b‖ recomputed from
//! the returned solution (never the recursively updated estimate).
//!
//! The solvers are generic over the vector precision `T` and the operator; the Hessenberg
//! matrices, Givens rotations and all inner products are f64 regardless. The usual setting is an
//! f64 outer solve ([`fgmres`] on [`WilsonClover<f64>`]) with a preconditioner that may work in f32
//! internally; [`MixedPrecision`] runs an f32 operator inside an f64 solver.
//!
//! Conventions: `x` holds the initial guess on entry and the solution on exit;
//! `history[k]` is the relative residual after `k` iterations (`history[0]` is the start);
//! one GMRES/FGMRES iteration is one Arnoldi step (one operator application), one BiCGStab
//! iteration is two operator applications, one CGNE iteration is one D and one D†.
//!
//! [`batch`] runs many sources through one or more solver set-ups and summarises the reports:
//! `symc solve` and the evaluation of a trained preconditioner both go through it.

pub mod batch;
mod bicgstab;
mod cgne;
mod gmres;
mod linalg;
mod mixed;
pub mod multigrid;
mod simd;

pub use bicgstab::bicgstab;
pub use cgne::cgne;
pub use gmres::{fgmres, gmres};
pub use mixed::{
    MixedError, MixedWorkspace, NativeOperator, NativePreconditioner, fgmres_mixed, gmres_mixed,
};

use crate::lattice::Real;
use crate::lattice::evenodd::Schur;
use crate::lattice::fermion::cast_into;
use crate::lattice::wilson::WilsonClover;
use num_complex::{Complex, Complex64};
use serde::Serialize;
use std::cell::Cell;
use std::sync::Mutex;

/// A linear map on complex vectors of a fixed length.
pub trait LinearOperator<T: Real> {
    /// Vector length (12 V for a Dirac operator).
    fn len(&self) -> usize;
    /// out = A inp.
    fn apply(&self, out: &mut [Complex<T>], inp: &[Complex<T>]);
    /// Sums, in place, partial results (inner products, squared norms) that this process
    /// computed over its part of a vector, so that every process holds the global value. An
    /// operator on whole vectors (one process) does nothing; a domain-decomposed one
    /// (`runtime::distributed`) reduces over its processes. The solvers call it on every
    /// inner product and norm, which is all they need to run distributed.
    fn global_sum(&self, _partials: &mut [f64]) {}
}

/// An operator whose adjoint is available (needed by [`cgne`]).
pub trait AdjointOperator<T: Real>: LinearOperator<T> {
    /// out = A† inp.
    fn apply_dagger(&self, out: &mut [Complex<T>], inp: &[Complex<T>]);
}

/// A right preconditioner M ≈ A⁻¹ for [`fgmres`]. It may change between calls (an inner
/// iterative solve, a neural network in lower precision): FGMRES stores every M v it used.
pub trait Preconditioner<T: Real> {
    /// out = M inp.
    fn apply(&mut self, out: &mut [Complex<T>], inp: &[Complex<T>]);
}

/// M = 1: FGMRES with this preconditioner is mathematically GMRES.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdentityPreconditioner;

impl<T: Real> Preconditioner<T> for IdentityPreconditioner {
    fn apply(&mut self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        out.copy_from_slice(inp);
    }
}

/// Any closure `FnMut(out, inp)` as a preconditioner.
pub struct FnPreconditioner<F>(pub F);

impl<T: Real, F: FnMut(&mut [Complex<T>], &[Complex<T>])> Preconditioner<T>
    for FnPreconditioner<F>
{
    fn apply(&mut self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        (self.0)(out, inp)
    }
}

impl<T: Real> LinearOperator<T> for WilsonClover<T> {
    fn len(&self) -> usize {
        self.vector_len()
    }
    fn apply(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        WilsonClover::apply(self, out, inp)
    }
}

impl<T: Real> AdjointOperator<T> for WilsonClover<T> {
    fn apply_dagger(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        WilsonClover::apply_dagger(self, out, inp)
    }
}

/// The solver interface. The trait cannot return an error, and every solver in
/// this module checks lengths against `len()` before applying; a caller that
/// bypasses that contract gets a panic naming the lengths, as with `WilsonClover`.
impl<T: Real> LinearOperator<T> for Schur<T> {
    fn len(&self) -> usize {
        self.half_len()
    }
    fn apply(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        if let Err(e) = self.try_apply(out, inp) {
            panic!("Schur operator: {e}");
        }
    }
}

impl<T: Real> AdjointOperator<T> for Schur<T> {
    fn apply_dagger(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        if let Err(e) = self.try_apply_dagger(out, inp) {
            panic!("Schur operator: {e}");
        }
    }
}

/// A borrowed operator is the operator (so wrappers such as [`MixedPrecision`] can hold either).
impl<T: Real, O: LinearOperator<T> + ?Sized> LinearOperator<T> for &O {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn apply(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        (**self).apply(out, inp)
    }
    fn global_sum(&self, partials: &mut [f64]) {
        (**self).global_sum(partials)
    }
}

impl<T: Real, O: AdjointOperator<T> + ?Sized> AdjointOperator<T> for &O {
    fn apply_dagger(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        (**self).apply_dagger(out, inp)
    }
}

/// Runs an f32 operator on f64 vectors (rounding the input, widening the output), so that an
/// f64 solver can use the faster f32 operator. Its precision bounds the reachable residual
/// (~1e-6 relative). It owns or borrows the operator (`MixedPrecision::new(&d32)`), so an
/// operator built for a solve can carry its f32 form along.
pub struct MixedPrecision<O: LinearOperator<f32>> {
    op: O,
    scratch: Mutex<(Vec<Complex<f32>>, Vec<Complex<f32>>)>,
}

impl<O: LinearOperator<f32>> MixedPrecision<O> {
    /// Wraps `op` with scratch buffers for one input and one output vector.
    pub fn new(op: O) -> Self {
        let z = Complex::new(0.0f32, 0.0);
        let n = op.len();
        MixedPrecision { op, scratch: Mutex::new((vec![z; n], vec![z; n])) }
    }
}

impl<O: LinearOperator<f32>> LinearOperator<f64> for MixedPrecision<O> {
    fn len(&self) -> usize {
        self.op.len()
    }
    fn apply(&self, out: &mut [Complex<f64>], inp: &[Complex<f64>]) {
        // The lock is uncontended (solvers apply the operator from one thread); a poisoned lock
        // only means an earlier apply panicked, and the buffers are overwritten anyway.
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let (i32, o32) = &mut *guard;
        cast_into(i32, inp);
        self.op.apply(o32, i32);
        cast_into(out, o32);
    }
    fn global_sum(&self, partials: &mut [f64]) {
        self.op.global_sum(partials)
    }
}

impl<O: AdjointOperator<f32>> AdjointOperator<f64> for MixedPrecision<O> {
    fn apply_dagger(&self, out: &mut [Complex<f64>], inp: &[Complex<f64>]) {
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let (i32, o32) = &mut *guard;
        cast_into(i32, inp);
        self.op.apply_dagger(o32, i32);
        cast_into(out, o32);
    }
}

/// Stopping and restart parameters shared by all solvers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SolveParams {
    /// Target relative residual ‖b − A x‖/‖b‖.
    pub tol: f64,
    /// Krylov subspace size m of GMRES(m)/FGMRES(m) (ignored by BiCGStab and CGNE).
    pub restart: usize,
    /// Upper bound on iterations.
    pub max_iterations: usize,
}

impl Default for SolveParams {
    fn default() -> Self {
        SolveParams { tol: 1e-8, restart: 30, max_iterations: 20_000 }
    }
}

/// What a solve did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SolveReport {
    /// Solver name (`gmres`, `fgmres`, `bicgstab`, `cgne`).
    pub solver: String,
    pub iterations: usize,
    /// Applications of the operator, including residual recomputations at restarts and the
    /// final true residual (D and D† both count for CGNE).
    pub operator_applications: usize,
    pub preconditioner_applications: usize,
    /// Wall-clock seconds of the whole solve.
    pub seconds: f64,
    /// ‖b − A x‖/‖b‖ recomputed from the returned x.
    pub true_residual: f64,
    /// Relative residual (the solver's own estimate) after each iteration; `history[0]` is the
    /// initial residual.
    pub history: Vec<f64>,
    /// `true_residual <= tol`.
    pub converged: bool,
}

impl SolveReport {
    /// The exact answer for b = 0 (x = 0, nothing applied), shared by every solver (and the
    /// even-odd solve of `runtime::evenodd_solve`) so that they agree on what a zero
    /// right-hand side reports.
    pub fn zero_rhs(solver: &str, start: std::time::Instant) -> Self {
        SolveReport {
            solver: solver.into(),
            iterations: 0,
            operator_applications: 0,
            preconditioner_applications: 0,
            seconds: start.elapsed().as_secs_f64(),
            true_residual: 0.0,
            history: vec![0.0],
            converged: true,
        }
    }
}

/// Wraps an operator and counts its applications.
struct Counted<'a, T: Real, O: LinearOperator<T> + ?Sized> {
    op: &'a O,
    count: Cell<usize>,
    _t: std::marker::PhantomData<T>,
}

impl<'a, T: Real, O: LinearOperator<T> + ?Sized> Counted<'a, T, O> {
    fn new(op: &'a O) -> Self {
        Counted { op, count: Cell::new(0), _t: std::marker::PhantomData }
    }
    fn apply(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        self.count.set(self.count.get() + 1);
        self.op.apply(out, inp);
    }
    /// The global ‖v‖ of a vector of which this process holds a part.
    fn norm(&self, v: &[Complex<T>]) -> f64 {
        global_norm(self.op, v)
    }
    /// The global ‖v‖².
    fn norm_sqr(&self, v: &[Complex<T>]) -> f64 {
        let mut s = [crate::lattice::fermion::norm_sqr(v)];
        self.op.global_sum(&mut s);
        s[0]
    }
    /// The global ⟨a, b⟩.
    fn dot(&self, a: &[Complex<T>], b: &[Complex<T>]) -> Complex64 {
        let mut d = [crate::lattice::fermion::dot(a, b)];
        self.op.global_sum(bytemuck::cast_slice_mut(&mut d));
        d[0]
    }
    /// Global inner products or squared norms (as the real part) in place.
    fn sums(&self, h: &mut [Complex64]) {
        self.op.global_sum(bytemuck::cast_slice_mut(h))
    }
    /// out = b − A x.
    fn residual(&self, out: &mut [Complex<T>], b: &[Complex<T>], x: &[Complex<T>]) {
        self.apply(out, x);
        for (o, bi) in out.iter_mut().zip(b) {
            *o = *bi - *o;
        }
    }
}

impl<T: Real, O: AdjointOperator<T> + ?Sized> Counted<'_, T, O> {
    fn apply_dagger(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        self.count.set(self.count.get() + 1);
        self.op.apply_dagger(out, inp);
    }
}

/// ‖v‖ over every process's part of `v` (`op`'s [`LinearOperator::global_sum`]); plain ‖v‖
/// on one process.
pub(crate) fn global_norm<T: Real, O: LinearOperator<T> + ?Sized>(op: &O, v: &[Complex<T>]) -> f64 {
    let mut s = [crate::lattice::fermion::norm_sqr(v)];
    op.global_sum(&mut s);
    s[0].sqrt()
}

fn check_lengths<T: Real>(n: usize, b: &[Complex<T>], x: &[Complex<T>]) {
    assert!(
        b.len() == n && x.len() == n,
        "solver: operator length {n}, right-hand side {}, solution {}",
        b.len(),
        x.len()
    );
}
