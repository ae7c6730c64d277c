//! AVX2/FMA versions of the split-complex chunk kernels of `solve::linalg` (inner products,
//! squared norms, w −= Σ h_i v_i), chosen at run time through `pulp` where the host has them.
//!
//! Why: the crate is compiled for baseline x86-64 (SSE2, no FMA), so the portable `wide` f32x4
//! kernels issue separate multiplies and adds on 128-bit registers. One split block (4 real
//! parts, then 4 imaginary parts) is exactly one 256-bit register: with v = [vr | vi] and its
//! halves swapped, ṽ = [vi | vr],
//!   conj(a)·b:  re = Σ (a ⊙ b) over all 8 lanes,  im = Σ_lo (a ⊙ b̃) − Σ_hi (a ⊙ b̃);
//!   w −= h v:   w −= splat(h_re) ⊙ v + [−h_im ×4 | +h_im ×4] ⊙ ṽ,
//! two fused multiply-adds and one lane swap per block, where the f32x4 code needs eight
//! instructions. The results agree with the portable kernels to f32 rounding (not bit for bit:
//! the sums are associated differently); `linalg`'s tests run whichever kernel the host picks.

/// Proof that the host has AVX2 and FMA (x86-64-v3); `None` from [`Avx2::detect`] elsewhere.
#[derive(Clone, Copy)]
pub(super) struct Avx2 {
    #[cfg(target_arch = "x86_64")]
    s: pulp::x86::V3,
}

/// Scalars per split block: one 256-bit register.
const LANES: usize = 8;

impl Avx2 {
    /// The AVX2/FMA kernels if this CPU has them (detected once by `pulp`, then cached).
    #[inline]
    pub(super) fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            pulp::x86::V3::try_new().map(|s| Avx2 { s })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::{Avx2, LANES};
    use num_complex::Complex64;
    use pulp::x86::V3;
    use pulp::{cast, f32x8};

    #[inline(always)]
    fn swap(s: V3, a: f32x8) -> f32x8 {
        cast(s.avx._mm256_permute2f128_ps::<1>(cast(a), cast(a)))
    }

    #[inline(always)]
    fn load(x: &[f32; LANES]) -> f32x8 {
        cast(*x)
    }

    fn widen_sum(a: f32x8) -> (f64, f64) {
        let a: [f32; LANES] = cast(a);
        let lo = a[..4].iter().map(|&e| f64::from(e)).sum::<f64>();
        let hi = a[4..].iter().map(|&e| f64::from(e)).sum::<f64>();
        (lo, hi)
    }

    impl Avx2 {
        /// Σ conj(a) b over whole split blocks (the lengths must be equal multiples of 8).
        pub(in crate::solve) fn dot(self, a: &[f32], b: &[f32]) -> Complex64 {
            let s = self.s;
            let (p, q) = s.vectorize(
                #[inline(always)]
                || {
                    let z = s.splat_f32x8(0.0);
                    let (mut p0, mut q0, mut p1, mut q1) = (z, z, z, z);
                    let (xa, ya) = (a.as_chunks::<LANES>().0, b.as_chunks::<LANES>().0);
                    let (xp, xr) = xa.as_chunks::<2>();
                    let (yp, yr) = ya.as_chunks::<2>();
                    for (x, y) in xp.iter().zip(yp) {
                        let (x0, y0, x1, y1) = (load(&x[0]), load(&y[0]), load(&x[1]), load(&y[1]));
                        p0 = s.mul_add_f32x8(x0, y0, p0);
                        q0 = s.mul_add_f32x8(x0, swap(s, y0), q0);
                        p1 = s.mul_add_f32x8(x1, y1, p1);
                        q1 = s.mul_add_f32x8(x1, swap(s, y1), q1);
                    }
                    for (x, y) in xr.iter().zip(yr) {
                        let (x0, y0) = (load(x), load(y));
                        p0 = s.mul_add_f32x8(x0, y0, p0);
                        q0 = s.mul_add_f32x8(x0, swap(s, y0), q0);
                    }
                    (s.add_f32x8(p0, p1), s.add_f32x8(q0, q1))
                },
            );
            let (plo, phi) = widen_sum(p);
            let (qlo, qhi) = widen_sum(q);
            Complex64::new(plo + phi, qlo - qhi)
        }

        /// Σ |a|² over whole split blocks.
        pub(in crate::solve) fn norm_sqr(self, a: &[f32]) -> f64 {
            let s = self.s;
            let n = s.vectorize(
                #[inline(always)]
                || {
                    let z = s.splat_f32x8(0.0);
                    let (mut n0, mut n1) = (z, z);
                    let (xp, xr) = a.as_chunks::<LANES>().0.as_chunks::<2>();
                    for x in xp {
                        let (x0, x1) = (load(&x[0]), load(&x[1]));
                        n0 = s.mul_add_f32x8(x0, x0, n0);
                        n1 = s.mul_add_f32x8(x1, x1, n1);
                    }
                    for x in xr {
                        let x0 = load(x);
                        n0 = s.mul_add_f32x8(x0, x0, n0);
                    }
                    s.add_f32x8(n0, n1)
                },
            );
            let (lo, hi) = widen_sum(n);
            lo + hi
        }

        /// w −= Σ_i h_i v_i over whole split blocks, two basis vectors per sweep over `w`
        /// (`vs[i]` is the chunk of basis vector i that lines up with `w`).
        pub(in crate::solve) fn sub(self, w: &mut [f32], h: &[Complex64], vs: &[&[f32]]) {
            let s = self.s;
            // −h_re on every lane, and [+h_im ×4 | −h_im ×4] (the negated swap coefficient).
            let coef = |z: &Complex64| {
                let (re, im) = (z.re as f32, z.im as f32);
                let c: f32x8 = cast([-re; LANES]);
                let d: f32x8 = cast([im, im, im, im, -im, -im, -im, -im]);
                (c, d)
            };
            s.vectorize(
                #[inline(always)]
                || {
                    let ws = w.as_chunks_mut::<LANES>().0;
                    let mut i = 0;
                    while i + 1 < h.len() {
                        let ((ca, da), (cb, db)) = (coef(&h[i]), coef(&h[i + 1]));
                        let (va, vb) =
                            (vs[i].as_chunks::<LANES>().0, vs[i + 1].as_chunks::<LANES>().0);
                        for ((wb, a), b) in ws.iter_mut().zip(va).zip(vb) {
                            let (a, b) = (load(a), load(b));
                            let mut acc = load(wb);
                            acc = s.mul_add_f32x8(ca, a, acc);
                            acc = s.mul_add_f32x8(da, swap(s, a), acc);
                            acc = s.mul_add_f32x8(cb, b, acc);
                            acc = s.mul_add_f32x8(db, swap(s, b), acc);
                            *wb = cast(acc);
                        }
                        i += 2;
                    }
                    if i < h.len() {
                        let (ca, da) = coef(&h[i]);
                        for (wb, a) in ws.iter_mut().zip(vs[i].as_chunks::<LANES>().0) {
                            let a = load(a);
                            let mut acc = load(wb);
                            acc = s.mul_add_f32x8(ca, a, acc);
                            acc = s.mul_add_f32x8(da, swap(s, a), acc);
                            *wb = cast(acc);
                        }
                    }
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_complex::Complex64;

    /// Against plain complex arithmetic on the entries (block b, lane k: re at 8b+k, im at
    /// 8b+4+k).
    #[test]
    fn avx2_kernels_match_complex_arithmetic() {
        let Some(k) = Avx2::detect() else {
            eprintln!("no AVX2/FMA on this host: nothing to check");
            return;
        };
        let n = 8 * 37;
        let val = |s: usize, i: usize| ((i * 7919 + s * 104729) % 1000) as f32 / 500.0 - 1.0;
        let a: Vec<f32> = (0..n).map(|i| val(1, i)).collect();
        let b: Vec<f32> = (0..n).map(|i| val(2, i)).collect();
        let c: Vec<f32> = (0..n).map(|i| val(3, i)).collect();
        let e = |v: &[f32], j: usize| {
            Complex64::new(v[8 * (j / 4) + j % 4] as f64, v[8 * (j / 4) + 4 + j % 4] as f64)
        };
        let want: Complex64 = (0..n / 2).map(|j| e(&a, j).conj() * e(&b, j)).sum();
        assert!((k.dot(&a, &b) - want).norm() < 1e-4, "{} vs {want}", k.dot(&a, &b));
        let n2: f64 = (0..n / 2).map(|j| e(&a, j).norm_sqr()).sum();
        assert!((k.norm_sqr(&a) - n2).abs() < 1e-4);
        for m in [1, 2, 3] {
            let h: Vec<Complex64> =
                (0..m).map(|i| Complex64::new(0.3 + i as f64, -0.7 + 0.2 * i as f64)).collect();
            let vs = [&a[..], &b[..], &c[..]];
            let mut w: Vec<f32> = (0..n).map(|i| val(4, i)).collect();
            let w0 = w.clone();
            k.sub(&mut w, &h, &vs[..m]);
            for j in 0..n / 2 {
                let want = e(&w0, j) - (0..m).map(|i| h[i] * e(vs[i], j)).sum::<Complex64>();
                assert!((e(&w, j) - want).norm() < 1e-5, "m={m} entry {j}");
            }
        }
    }
}
