//! BiCGStab (van der Vorst 1992): the short-recurrence workhorse for clover fermions (QUDA,
//! Chroma, Grid). Its recursively updated residual can drift from the true one and it can break
//! down (ρ = ⟨r̂, r⟩ → 0); both are handled by restarting from the recomputed true residual.

use super::linalg::from_c64;
use super::{Counted, LinearOperator, SolveParams, SolveReport, check_lengths};
use crate::lattice::Real;
use crate::lattice::fermion::axpy;
use num_complex::{Complex, Complex64};
use std::time::Instant;

/// Unpreconditioned BiCGStab. `x`: initial guess in, solution out.
pub fn bicgstab<T: Real, O: LinearOperator<T> + ?Sized>(
    op: &O,
    b: &[Complex<T>],
    x: &mut [Complex<T>],
    params: &SolveParams,
) -> SolveReport {
    let start = Instant::now();
    let n = op.len();
    check_lengths(n, b, x);
    let op = Counted::new(op);
    let zero = Complex::new(T::zero(), T::zero());
    let bnorm = op.norm(b);
    if bnorm == 0.0 {
        x.iter_mut().for_each(|v| *v = zero);
        return SolveReport::zero_rhs("bicgstab", start);
    }
    let mut r = vec![zero; n];
    let mut p = vec![zero; n];
    let mut v = vec![zero; n];
    let mut s = vec![zero; n];
    let mut t = vec![zero; n];
    op.residual(&mut r, b, x);
    let mut rnorm = op.norm(&r);
    let mut history = vec![rnorm / bnorm];
    let mut iterations = 0usize;

    // Outer loop: (re)start from the true residual.
    while rnorm / bnorm > params.tol && iterations < params.max_iterations {
        let cycle_start = iterations;
        let rhat = r.clone();
        let (mut rho, mut alpha, mut omega) =
            (Complex64::new(1.0, 0.0), Complex64::new(1.0, 0.0), Complex64::new(1.0, 0.0));
        p.iter_mut().for_each(|e| *e = zero);
        v.iter_mut().for_each(|e| *e = zero);
        let breakdown_eps = 1e-30 * op.norm_sqr(&rhat);
        while iterations < params.max_iterations {
            let rho_new = op.dot(&rhat, &r);
            if rho_new.norm() <= breakdown_eps || omega.norm() == 0.0 {
                break;
            }
            let beta = (rho_new / rho) * (alpha / omega);
            // p = r + β (p − ω v)
            let (bt, bo) = (from_c64::<T>(beta), from_c64::<T>(beta * omega));
            for ((pi, ri), vi) in p.iter_mut().zip(&r).zip(&v) {
                *pi = *ri + bt * *pi - bo * *vi;
            }
            op.apply(&mut v, &p);
            let rv = op.dot(&rhat, &v);
            if rv.norm() == 0.0 {
                break;
            }
            alpha = rho_new / rv;
            // s = r − α v
            s.copy_from_slice(&r);
            axpy(from_c64(-alpha), &v, &mut s);
            op.apply(&mut t, &s);
            let tt = op.norm_sqr(&t);
            omega = if tt > 0.0 { op.dot(&t, &s) / tt } else { Complex64::new(0.0, 0.0) };
            axpy(from_c64(alpha), &p, x);
            axpy(from_c64(omega), &s, x);
            // r = s − ω t
            r.copy_from_slice(&s);
            axpy(from_c64(-omega), &t, &mut r);
            rho = rho_new;
            iterations += 1;
            let est = op.norm(&r) / bnorm;
            history.push(est);
            if est <= params.tol {
                break;
            }
        }
        op.residual(&mut r, b, x);
        rnorm = op.norm(&r);
        // A cycle without a single completed iteration is a hard breakdown (⟨r̂, A p⟩ = 0 right
        // after a restart): stop instead of spinning on the same residual.
        if iterations == cycle_start {
            break;
        }
    }
    let true_residual = rnorm / bnorm;
    SolveReport {
        solver: "bicgstab".into(),
        iterations,
        operator_applications: op.count.get(),
        preconditioner_applications: 0,
        seconds: start.elapsed().as_secs_f64(),
        true_residual,
        history,
        converged: true_residual <= params.tol,
    }
}
