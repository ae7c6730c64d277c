//! Block vector operations for Gram–Schmidt: all inner products ⟨v_i, w⟩ in one pass over `w`,
//! and w −= Σ h_i v_i in one pass. One pass instead of j keeps the Arnoldi step memory-bound on
//! a single sweep and makes one rayon fork per step rather than one per basis vector.

use crate::lattice::Real;
use crate::lattice::fermion::{dot_serial, norm_sqr_serial};
use num_complex::{Complex, Complex64};
use rayon::prelude::*;

const CHUNK: usize = 4096;

#[inline]
pub(crate) fn from_c64<T: Real>(z: Complex64) -> Complex<T> {
    Complex::new(T::from_f64(z.re), T::from_f64(z.im))
}

/// [⟨v_0, w⟩, …, ⟨v_{k−1}, w⟩, ‖w‖²] for the first `k` vectors of `vs`, in f64, in one pass
/// over `w` (the squared norm is the last entry, as a real number).
pub(crate) fn multi_dot<T: Real>(
    vs: &[Vec<Complex<T>>],
    k: usize,
    w: &[Complex<T>],
) -> Vec<Complex64> {
    let n = w.len();
    let zero = vec![Complex64::new(0.0, 0.0); k + 1];
    (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
            let mut acc = vec![Complex64::new(0.0, 0.0); k + 1];
            for (i, a) in acc.iter_mut().take(k).enumerate() {
                *a = dot_serial(&vs[i][lo..hi], &w[lo..hi]);
            }
            acc[k] = Complex64::new(norm_sqr_serial(&w[lo..hi]), 0.0);
            acc
        })
        .reduce(
            || zero.clone(),
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        )
}

/// w −= Σ_{i<k} h_i v_i (k = `h.len()`); returns the new ‖w‖² from the same pass.
pub(crate) fn multi_sub<T: Real>(
    w: &mut [Complex<T>],
    h: &[Complex64],
    vs: &[Vec<Complex<T>>],
) -> f64 {
    let hs: Vec<Complex<T>> = h.iter().map(|z| from_c64(*z)).collect();
    w.par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(c, wc)| {
            let lo = c * CHUNK;
            for (i, hi) in hs.iter().enumerate() {
                let v = &vs[i][lo..lo + wc.len()];
                for (wj, vj) in wc.iter_mut().zip(v) {
                    *wj -= *hi * *vj;
                }
            }
            norm_sqr_serial(wc)
        })
        .sum()
}

/// x += Σ_i y_i z_i.
pub(crate) fn multi_add<T: Real>(x: &mut [Complex<T>], y: &[Complex64], zs: &[Vec<Complex<T>>]) {
    let ys: Vec<Complex64> = y.iter().map(|v| -*v).collect();
    multi_sub(x, &ys, zs);
}
