//! Restarted GMRES(m) and flexible GMRES(m) (Saad 1993) with right preconditioning.
//!
//! One Arnoldi process serves both: GMRES builds the solution from the orthonormal basis V,
//! FGMRES from the stored preconditioned vectors Z = [M v_0, M v_1, …], which is what lets the
//! preconditioner change between iterations (a network, an inner solve). Orthogonalisation is
//! classical Gram–Schmidt with a second pass when the first one cancelled most of the vector
//! ([`gram_schmidt`]; shared with the mixed-precision solver). The small
//! least-squares problem is solved with complex Givens rotations in f64, which also gives the
//! residual norm after every step for free. At every restart the residual is recomputed from scratch, and that recomputed value decides
//! convergence.

use super::linalg::{from_c64, multi_add, multi_dot, multi_sub, multi_sub_dot};
use super::{
    Counted, IdentityPreconditioner, LinearOperator, Preconditioner, SolveParams, SolveReport,
    check_lengths,
};
use crate::lattice::Real;
use crate::lattice::fermion::scale;
use num_complex::{Complex, Complex64};
use std::time::Instant;

/// GMRES(m), m = `params.restart`. `x`: initial guess in, solution out.
pub fn gmres<T: Real, O: LinearOperator<T> + ?Sized>(
    op: &O,
    b: &[Complex<T>],
    x: &mut [Complex<T>],
    params: &SolveParams,
) -> SolveReport {
    arnoldi_solve::<T, O, IdentityPreconditioner>(op, None, b, x, params, "gmres")
}

/// Flexible GMRES(m) with right preconditioner `prec`: solves A M y = b, x = M y, with M
/// allowed to vary between applications.
pub fn fgmres<T: Real, O: LinearOperator<T> + ?Sized, P: Preconditioner<T> + ?Sized>(
    op: &O,
    prec: &mut P,
    b: &[Complex<T>],
    x: &mut [Complex<T>],
    params: &SolveParams,
) -> SolveReport {
    arnoldi_solve(op, Some(prec), b, x, params, "fgmres")
}

/// Givens rotation (c real, s complex) that zeroes `b` under `a`:
/// [c, s; −s̄, c] · [a; b] = [ν·a/|a|; 0].
fn givens(a: Complex64, b: Complex64) -> (f64, Complex64) {
    let na = a.norm();
    let nu = (na * na + b.norm_sqr()).sqrt();
    if nu == 0.0 {
        (1.0, Complex64::new(0.0, 0.0))
    } else if na == 0.0 {
        (0.0, b.conj() / b.norm())
    } else {
        (na / nu, (a / na) * b.conj() / nu)
    }
}

/// One Arnoldi orthogonalisation of `w` against the basis: classical Gram–Schmidt, repeated
/// once when the first pass cancelled most of `w` (the DGKS criterion ‖w_new‖ < ‖w‖/√2: "twice
/// is enough"; as stable as modified GS, but block passes instead of j dependent ones).
/// `dot(w)` returns [⟨v_i, w⟩…, ‖w‖²] in one pass; `sub(w, h)` does w −= Σ h_i v_i and returns
/// the new ‖w‖²; `sub_dot(w, h)` does the same subtraction and returns the projections of the
/// new `w` like `dot` does, from the same sweep. The second pass's projections are therefore
/// always computed (they are nearly free: the basis is still in cache) and used only when the
/// criterion asks for them. Returns the projections (the Hessenberg column) and the final ‖w‖.
pub(super) fn gram_schmidt<W>(
    w: &mut W,
    dot: impl Fn(&W) -> Vec<Complex64>,
    sub: impl Fn(&mut W, &[Complex64]) -> f64,
    sub_dot: impl Fn(&mut W, &[Complex64]) -> Vec<Complex64>,
) -> (Vec<Complex64>, f64) {
    let mut h = dot(w);
    let wnorm = h.pop().map_or(0.0, |z| z.re).sqrt();
    let mut again = sub_dot(w, &h);
    let mut hnext = again.pop().map_or(0.0, |z| z.re).sqrt();
    if hnext < std::f64::consts::FRAC_1_SQRT_2 * wnorm {
        hnext = sub(w, &again).sqrt();
        for (a, c) in h.iter_mut().zip(&again) {
            *a += *c;
        }
    }
    (h, hnext)
}

/// One Arnoldi orthogonalisation by classical Gram–Schmidt with *selective*
/// re-orthogonalisation: one projection pass, then a second one only when the first cancelled
/// all but a fraction `eta` of `w` (‖w_new‖ < η ‖w‖). `dot` and `sub` are as in
/// [`gram_schmidt`]. With η = 1/√2 this is the DGKS test of [`gram_schmidt`]; a smaller η
/// trusts a single pass further: the orthogonality lost in one pass is about the rounding unit
/// times ‖w‖/‖w_new‖ ≤ 1/η, which is what the mixed-precision cycles choose (see
/// `solve::mixed`). Two trips over the basis instead of three or four when no second pass is
/// needed. Returns the projections (the Hessenberg column) and the final ‖w‖.
pub(super) fn gram_schmidt_selective<W>(
    w: &mut W,
    dot: impl Fn(&W) -> Vec<Complex64>,
    sub: impl Fn(&mut W, &[Complex64]) -> f64,
    eta: f64,
) -> (Vec<Complex64>, f64) {
    let mut h = dot(w);
    let wnorm = h.pop().map_or(0.0, |z| z.re).sqrt();
    let mut hnext = sub(w, &h).sqrt();
    if hnext < eta * wnorm {
        let mut again = dot(w);
        again.pop();
        hnext = sub(w, &again).sqrt();
        for (a, c) in h.iter_mut().zip(&again) {
            *a += *c;
        }
    }
    (h, hnext)
}

/// The small least-squares problem of (F)GMRES, min ‖β e_1 − H y‖ over the (k+1)×k Hessenberg
/// matrix H, kept in QR form as columns arrive: each new column gets the previous Givens
/// rotations and one new rotation, which also gives the residual norm after every step.
pub(super) struct LeastSquares {
    /// h[j] is column j of H (rotated in place into R).
    h: Vec<Vec<Complex64>>,
    rot: Vec<(f64, Complex64)>,
    g: Vec<Complex64>,
    /// Columns so far.
    k: usize,
}

impl LeastSquares {
    pub(super) fn new(m: usize) -> Self {
        LeastSquares {
            h: vec![vec![Complex64::new(0.0, 0.0); m + 1]; m],
            rot: vec![(0.0, Complex64::new(0.0, 0.0)); m],
            g: vec![Complex64::new(0.0, 0.0); m + 1],
            k: 0,
        }
    }

    /// Starts a cycle with residual norm `beta`.
    pub(super) fn reset(&mut self, beta: f64) {
        self.g.iter_mut().for_each(|e| *e = Complex64::new(0.0, 0.0));
        self.g[0] = Complex64::new(beta, 0.0);
        self.k = 0;
    }

    /// Appends column j = (h_0j, …, h_jj) with subdiagonal `hnext`; returns the residual norm
    /// of the least-squares problem with the columns so far.
    pub(super) fn push_column(&mut self, hj: &[Complex64], hnext: f64) -> f64 {
        let j = self.k;
        let col = &mut self.h[j];
        col[..=j].copy_from_slice(&hj[..=j]);
        col[j + 1] = Complex64::new(hnext, 0.0);
        for i in 0..j {
            let (c, s) = self.rot[i];
            let (a, b) = (col[i], col[i + 1]);
            col[i] = c * a + s * b;
            col[i + 1] = -s.conj() * a + c * b;
        }
        let (c, s) = givens(col[j], col[j + 1]);
        self.rot[j] = (c, s);
        col[j] = c * col[j] + s * col[j + 1];
        col[j + 1] = Complex64::new(0.0, 0.0);
        self.g[j + 1] = -s.conj() * self.g[j];
        self.g[j] *= c;
        self.k += 1;
        self.g[j + 1].norm()
    }

    /// The minimiser y over the first `k` columns (back substitution R y = g).
    pub(super) fn solve(&self, k: usize) -> Vec<Complex64> {
        let mut y = vec![Complex64::new(0.0, 0.0); k];
        for i in (0..k).rev() {
            let mut s = self.g[i];
            for (l, yl) in y.iter().enumerate().skip(i + 1) {
                s -= self.h[l][i] * yl;
            }
            y[i] = s / self.h[i][i];
        }
        y
    }
}

fn arnoldi_solve<T: Real, O: LinearOperator<T> + ?Sized, P: Preconditioner<T> + ?Sized>(
    op: &O,
    mut prec: Option<&mut P>,
    b: &[Complex<T>],
    x: &mut [Complex<T>],
    params: &SolveParams,
    name: &str,
) -> SolveReport {
    let start = Instant::now();
    let n = op.len();
    check_lengths(n, b, x);
    let m = params.restart.max(1);
    let op = Counted::new(op);
    let mut prec_count = 0usize;
    let zero = Complex::new(T::zero(), T::zero());
    let bnorm = op.norm(b);
    let mut history = Vec::new();
    if bnorm == 0.0 {
        x.iter_mut().for_each(|v| *v = zero);
        return SolveReport::zero_rhs(name, start);
    }

    let mut v: Vec<Vec<Complex<T>>> = (0..=m).map(|_| vec![zero; n]).collect();
    let mut z: Vec<Vec<Complex<T>>> =
        if prec.is_some() { (0..m).map(|_| vec![zero; n]).collect() } else { Vec::new() };
    let mut w = vec![zero; n];
    let mut ls = LeastSquares::new(m);

    let mut r = vec![zero; n];
    op.residual(&mut r, b, x);
    let mut beta = op.norm(&r);
    history.push(beta / bnorm);
    let mut iterations = 0usize;

    while beta / bnorm > params.tol && iterations < params.max_iterations {
        v[0].copy_from_slice(&r);
        scale(from_c64(Complex64::new(1.0 / beta, 0.0)), &mut v[0]);
        ls.reset(beta);
        let mut k = 0;
        while k < m && iterations < params.max_iterations {
            let j = k;
            // w = A M v_j (FGMRES) or A v_j (GMRES).
            match prec.as_deref_mut() {
                Some(p) => {
                    p.apply(&mut z[j], &v[j]);
                    prec_count += 1;
                    op.apply(&mut w, &z[j]);
                }
                None => op.apply(&mut w, &v[j]),
            }
            let (hj, hnext) = gram_schmidt(
                &mut w,
                |w: &Vec<Complex<T>>| summed(&op, multi_dot(&v, j + 1, w)),
                |w: &mut Vec<Complex<T>>, h: &[Complex64]| {
                    let mut n = [multi_sub(w, h, &v)];
                    op.op.global_sum(&mut n);
                    n[0]
                },
                |w: &mut Vec<Complex<T>>, h: &[Complex64]| summed(&op, multi_sub_dot(w, h, &v)),
            );
            if hnext > 0.0 {
                v[j + 1].copy_from_slice(&w);
                scale(from_c64(Complex64::new(1.0 / hnext, 0.0)), &mut v[j + 1]);
            }
            let est = ls.push_column(&hj, hnext) / bnorm;
            iterations += 1;
            k += 1;
            history.push(est);
            // A zero next basis vector ("happy breakdown") means the solution is exact in this
            // subspace.
            if est <= params.tol || hnext == 0.0 {
                break;
            }
        }
        let y = ls.solve(k);
        if prec.is_some() {
            multi_add(x, &y, &z[..k]);
        } else {
            multi_add(x, &y, &v[..k]);
        }
        op.residual(&mut r, b, x);
        beta = op.norm(&r);
    }

    let true_residual = beta / bnorm;
    SolveReport {
        solver: name.into(),
        iterations,
        operator_applications: op.count.get(),
        preconditioner_applications: prec_count,
        seconds: start.elapsed().as_secs_f64(),
        true_residual,
        history,
        converged: true_residual <= params.tol,
    }
}

/// Partial inner products made global (identity on one process).
fn summed<T: Real, O: LinearOperator<T> + ?Sized>(
    op: &Counted<'_, T, O>,
    mut h: Vec<Complex64>,
) -> Vec<Complex64> {
    op.sums(&mut h);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn givens_zeroes_the_lower_entry() {
        for (a, b) in [
            (Complex64::new(1.0, 2.0), Complex64::new(-0.5, 0.3)),
            (Complex64::new(0.0, 0.0), Complex64::new(0.7, -0.1)),
            (Complex64::new(3.0, 0.0), Complex64::new(0.0, 0.0)),
        ] {
            let (c, s) = givens(a, b);
            let top = c * a + s * b;
            let bottom = -s.conj() * a + c * b;
            assert!(bottom.norm() < 1e-15, "{a} {b}: {bottom}");
            assert!((top.norm() - (a.norm_sqr() + b.norm_sqr()).sqrt()).abs() < 1e-14);
            // Unitary: c² + |s|² = 1.
            assert!((c * c + s.norm_sqr() - 1.0).abs() < 1e-15);
        }
    }
}
