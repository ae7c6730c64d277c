//! Mixed-precision restarted GMRES(m) / flexible GMRES(m): every restart cycle runs in f32 on
//! vectors in the JIT kernels' own SIMD layout, every restart recomputes the residual in f64.
//!
//! Why: a GMRES(30) iteration on a lattice Dirac operator is memory-bound (each step reads the
//! whole Krylov basis twice for Gram–Schmidt), so f32 vectors halve its cost, and the f32 JIT
//! kernels are twice as fast as the f64 ones. Keeping the vectors in the kernels' layout removes
//! the two layout conversions per operator and per network application, which cost as much as
//! the kernels themselves.
//!
//! Why it still reaches 1e-8 and more: the cycles form an iterative refinement. Cycle c solves
//! the correction equation A e = r_c, where r_c = b − A x_c is computed in f64 from the f64
//! iterate; the correction is added to x in f64. An f32 cycle only has to *reduce* its residual
//! by some factor (a GMRES(30) cycle on these problems reduces it by 0.1–0.5, far above f32
//! round-off), so the iteration count matches the all-f64 solver to first order and the final
//! accuracy is set by the f64 residual, not by f32. Convergence is decided only by that true
//! f64 residual.

use super::gmres::{LeastSquares, gram_schmidt_selective};
use super::linalg::{split_multi_dot, split_multi_sub, split_scaled_copy};
use super::{LinearOperator, SolveParams, SolveReport, check_lengths, global_norm};
use num_complex::Complex64;
use std::time::Instant;
use thiserror::Error;

/// The cycles' Gram–Schmidt takes a second projection pass only when the first one left less
/// than this fraction of A v_j (see [`super::gmres::gram_schmidt_selective`]). The f64 solver's
/// DGKS threshold 1/√2 asked for a second pass in 97 % of the iterations on the 8⁴ DDalphaAMG
/// problem (m = −0.555): the mass term makes v_j itself most of A v_j, a mild cancellation. One
/// f32 pass then loses at most about 6e-8 × 10 of orthogonality, far below what a cycle that
/// only has to cut its residual by 0.1–0.5 notices, and the f64 residual at every restart decides
/// convergence anyway: with 0.1 no second pass was taken there and the iteration counts were
/// identical (538/531/537), at two trips over the basis per iteration instead of four.
const REORTHOGONALISE_BELOW: f64 = 0.1;

/// A linear operator on split-complex f32 vectors in a SIMD layout (blocks of 4 real parts
/// then 4 imaginary parts; site order is the operator's business).
pub trait NativeOperator {
    /// Scalars the field itself occupies: inner products run over these.
    fn main_len(&self) -> usize;
    /// Scalars of a buffer the operator reads or writes (main part plus scratch the operator
    /// may fill before reading, such as ghost slots).
    fn buffer_len(&self) -> usize;
    /// out = A inp on buffers of at least `buffer_len` scalars; the scratch tail of `inp` may
    /// be overwritten.
    fn apply(&self, out: &mut [f32], inp: &mut [f32]) -> Result<(), String>;
    /// A reference-layout vector (12 V complex) into the main part of `dst`, rounded to f32.
    fn import(&self, src: &[Complex64], dst: &mut [f32]);
    /// The main part of `src` to the reference layout.
    fn export(&self, src: &[f32], dst: &mut [Complex64]);
    /// Sums partial inner products over the processes that share the vectors, as
    /// [`LinearOperator::global_sum`](super::LinearOperator::global_sum) (identity on one
    /// process): what a solver that sees only this operator, such as a multigrid smoother,
    /// needs to take the same decisions on every process.
    fn global_sum(&self, _partials: &mut [f64]) {}
}

/// A right preconditioner M on the same vectors as a [`NativeOperator`]; it may change between
/// applications (FGMRES stores every M v it used).
pub trait NativePreconditioner {
    /// Scalars of a buffer it reads or writes (main part plus scratch).
    fn buffer_len(&self) -> usize;
    /// out = M inp; the scratch tail of `inp` may be overwritten.
    fn apply(&mut self, out: &mut [f32], inp: &mut [f32]) -> Result<(), String>;
    /// True when M is one fixed linear map (to rounding), e.g. a trained PTC network without
    /// nonlinearities. FGMRES then need not store the m vectors z_j = M v_j: the cycle's
    /// correction Σ y_j z_j equals M (Σ y_j v_j), one more application per cycle. That is
    /// right-preconditioned GMRES, the same iterates in exact arithmetic, with half the
    /// Krylov memory: on 8³×16 the 30 z_j (24 MB in f32) no longer push the basis out of L3.
    fn is_fixed_linear(&self) -> bool {
        false
    }
}

/// A kernel failed inside a mixed-precision solve.
#[derive(Debug, Error)]
#[error("{what} failed inside the mixed-precision solve: {message}")]
pub struct MixedError {
    pub what: &'static str,
    pub message: String,
}

/// The f32 Krylov vectors of the mixed solvers, kept between solves. A multi-RHS run (the CLI,
/// the evaluation at the end of training) then allocates them once: fresh buffers of this size
/// are page-faulted in on first touch, which cost about 5 % of a solve. Every buffer is written
/// before it is read, so reused contents never matter (tests/solvers_mixed.rs checks that a
/// reused workspace gives bit-identical solves).
#[derive(Default)]
pub struct MixedWorkspace {
    spare: Vec<Vec<f32>>,
}

impl MixedWorkspace {
    pub fn new() -> Self {
        Self::default()
    }

    /// `n` buffers of `len` scalars: spare ones of that length first, then new ones.
    fn take(&mut self, n: usize, len: usize) -> Vec<Vec<f32>> {
        self.spare.retain(|b| b.len() == len);
        let keep = self.spare.len().saturating_sub(n);
        let mut out = self.spare.split_off(keep);
        out.resize_with(n, || vec![0.0; len]);
        out
    }

    fn give(&mut self, bufs: impl IntoIterator<Item = Vec<f32>>) {
        self.spare.extend(bufs);
    }
}

/// GMRES(m) with f32 cycles on `op32` and f64 residuals from `op64` (the same operator in
/// double precision, reference layout). `x`: initial guess in, solution out; `ws` keeps the
/// Krylov vectors for the next solve.
pub fn gmres_mixed(
    ws: &mut MixedWorkspace,
    op64: &dyn LinearOperator<f64>,
    op32: &dyn NativeOperator,
    b: &[Complex64],
    x: &mut [Complex64],
    params: &SolveParams,
) -> Result<SolveReport, MixedError> {
    cycles(ws, op64, op32, None, b, x, params, "gmres")
}

/// Flexible GMRES(m) with right preconditioner `prec`, f32 cycles on `op32`, f64 residuals
/// from `op64`.
pub fn fgmres_mixed(
    ws: &mut MixedWorkspace,
    op64: &dyn LinearOperator<f64>,
    op32: &dyn NativeOperator,
    prec: &mut dyn NativePreconditioner,
    b: &[Complex64],
    x: &mut [Complex64],
    params: &SolveParams,
) -> Result<SolveReport, MixedError> {
    cycles(ws, op64, op32, Some(prec), b, x, params, "fgmres")
}

#[allow(clippy::too_many_arguments)]
fn cycles(
    ws: &mut MixedWorkspace,
    op64: &dyn LinearOperator<f64>,
    op32: &dyn NativeOperator,
    mut prec: Option<&mut dyn NativePreconditioner>,
    b: &[Complex64],
    x: &mut [Complex64],
    params: &SolveParams,
    name: &str,
) -> Result<SolveReport, MixedError> {
    let start = Instant::now();
    let n = op64.len();
    check_lengths(n, b, x);
    let m = params.restart.max(1);
    let zero = Complex64::new(0.0, 0.0);
    let bnorm = global_norm(op64, b);
    if bnorm == 0.0 {
        x.iter_mut().for_each(|v| *v = zero);
        return Ok(SolveReport::zero_rhs(name, start));
    }
    let main = op32.main_len();
    let blen = op32.buffer_len().max(prec.as_ref().map_or(0, |p| p.buffer_len()));
    let mut v = ws.take(m + 1, blen);
    // A fixed linear M needs one scratch z, not one per iteration (see
    // `NativePreconditioner::is_fixed_linear`).
    let fixed = prec.as_ref().is_some_and(|p| p.is_fixed_linear());
    let mut z = match &prec {
        Some(_) => ws.take(if fixed { 1 } else { m }, blen),
        None => Vec::new(),
    };
    let mut w = ws.take(1, blen).remove(0);
    let mut ls = LeastSquares::new(m);
    let (mut ops, mut prec_count) = (0usize, 0usize);
    let op_err = |message: String| MixedError { what: "the f32 operator", message };

    // r = b − A x in f64.
    let mut r = vec![zero; n];
    let mut corr = vec![zero; n];
    let residual = |r: &mut [Complex64], x: &[Complex64], ops: &mut usize| {
        op64.apply(r, x);
        *ops += 1;
        for (ri, bi) in r.iter_mut().zip(b) {
            *ri = *bi - *ri;
        }
        global_norm(op64, r)
    };
    let mut beta = residual(&mut r, x, &mut ops);
    let mut history = vec![beta / bnorm];
    let mut iterations = 0usize;

    while beta / bnorm > params.tol && iterations < params.max_iterations {
        // v_0 = r / β, rounded to f32 in the kernels' layout.
        op32.import(&r, &mut w);
        split_scaled_copy(&mut v[0], 1.0 / beta, &w, main);
        ls.reset(beta);
        let mut k = 0;
        while k < m && iterations < params.max_iterations {
            let j = k;
            match prec.as_deref_mut() {
                Some(p) => {
                    let zj = &mut z[if fixed { 0 } else { j }];
                    p.apply(zj, &mut v[j])
                        .map_err(|message| MixedError { what: "the preconditioner", message })?;
                    prec_count += 1;
                    op32.apply(&mut w, zj).map_err(op_err)?;
                }
                None => op32.apply(&mut w, &mut v[j]).map_err(op_err)?,
            }
            ops += 1;
            let (hj, hnext) = gram_schmidt_selective(
                &mut w,
                |w: &Vec<f32>| summed(op64, split_multi_dot(&v, j + 1, w, main)),
                |w: &mut Vec<f32>, h: &[Complex64]| {
                    let mut n = [split_multi_sub(w, h, &v, main)];
                    op64.global_sum(&mut n);
                    n[0]
                },
                REORTHOGONALISE_BELOW,
            );
            if hnext > 0.0 {
                split_scaled_copy(&mut v[j + 1], 1.0 / hnext, &w, main);
            }
            let est = ls.push_column(&hj, hnext) / bnorm;
            iterations += 1;
            k += 1;
            history.push(est);
            if est <= params.tol || hnext == 0.0 {
                break;
            }
        }
        // The correction Σ y_i z_i (or v_i) in f32, added to x in f64; for a fixed linear M,
        // M (Σ y_i v_i).
        let y = ls.solve(k);
        let neg: Vec<Complex64> = y.iter().map(|c| -*c).collect();
        w[..main].iter_mut().for_each(|e| *e = 0.0);
        let flexible = prec.is_some() && !fixed;
        split_multi_sub(&mut w, &neg, if flexible { &z[..k] } else { &v[..k] }, main);
        match prec.as_deref_mut() {
            Some(p) if fixed => {
                p.apply(&mut z[0], &mut w)
                    .map_err(|message| MixedError { what: "the preconditioner", message })?;
                prec_count += 1;
                op32.export(&z[0], &mut corr);
            }
            _ => op32.export(&w, &mut corr),
        }
        for (xi, ci) in x.iter_mut().zip(&corr) {
            *xi += *ci;
        }
        beta = residual(&mut r, x, &mut ops);
        // A non-finite residual (a NaN from the network, an overflow) cannot recover.
        if !beta.is_finite() {
            break;
        }
    }

    ws.give(v.into_iter().chain(z).chain([w]));
    let true_residual = beta / bnorm;
    Ok(SolveReport {
        solver: name.into(),
        iterations,
        operator_applications: ops,
        preconditioner_applications: prec_count,
        seconds: start.elapsed().as_secs_f64(),
        true_residual,
        history,
        converged: true_residual <= params.tol,
    })
}

/// Partial inner products over this process's part of the vectors made global (identity on
/// one process): the one change a domain-decomposed operator needs here.
fn summed(op64: &dyn LinearOperator<f64>, mut h: Vec<Complex64>) -> Vec<Complex64> {
    op64.global_sum(bytemuck::cast_slice_mut(&mut h));
    h
}
