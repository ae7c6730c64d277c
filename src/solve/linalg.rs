//! Block vector operations for Gram–Schmidt: all inner products ⟨v_i, w⟩ in one pass over `w`,
//! and w −= Σ h_i v_i in one pass (optionally followed, chunk by chunk, by the projections of
//! the updated `w`). One pass instead of j keeps the Arnoldi step memory-bound on
//! a single sweep and makes one rayon fork per step rather than one per basis vector.

use super::simd::Avx2;
use crate::lattice::Real;
use crate::lattice::fermion::{dot_serial, norm_sqr_serial};
use num_complex::{Complex, Complex64};
use rayon::prelude::*;
use wide::f32x4;

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
        .reduce(|| zero.clone(), add_partials)
}

/// w −= Σ_{i<k} h_i v_i (k = `h.len()`); returns the new ‖w‖² from the same pass.
pub(crate) fn multi_sub<T: Real>(
    w: &mut [Complex<T>],
    h: &[Complex64],
    vs: &[Vec<Complex<T>>],
) -> f64 {
    multi_sub_then(w, h, vs, false)[0].re
}

/// w −= Σ_{i<k} h_i v_i, then [⟨v_0, w⟩, …, ⟨v_{k−1}, w⟩, ‖w‖²] of the new `w` in the same
/// sweep: each chunk of `w` is updated and immediately projected while it and the chunks of the
/// basis are still in cache, so the second Gram–Schmidt pass costs no extra trip to memory.
pub(crate) fn multi_sub_dot<T: Real>(
    w: &mut [Complex<T>],
    h: &[Complex64],
    vs: &[Vec<Complex<T>>],
) -> Vec<Complex64> {
    multi_sub_then(w, h, vs, true)
}

/// The shared sweep of [`multi_sub`] and [`multi_sub_dot`]: returns [‖w‖²] or [dots…, ‖w‖²].
fn multi_sub_then<T: Real>(
    w: &mut [Complex<T>],
    h: &[Complex64],
    vs: &[Vec<Complex<T>>],
    dots: bool,
) -> Vec<Complex64> {
    let hs: Vec<Complex<T>> = h.iter().map(|z| from_c64(*z)).collect();
    let k = if dots { hs.len() } else { 0 };
    w.par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(c, wc)| {
            let lo = c * CHUNK;
            let hi = lo + wc.len();
            for (i, hv) in hs.iter().enumerate() {
                for (wj, vj) in wc.iter_mut().zip(&vs[i][lo..hi]) {
                    *wj -= *hv * *vj;
                }
            }
            let mut acc: Vec<Complex64> = (0..k).map(|i| dot_serial(&vs[i][lo..hi], wc)).collect();
            acc.push(Complex64::new(norm_sqr_serial(wc), 0.0));
            acc
        })
        .reduce(|| vec![Complex64::new(0.0, 0.0); k + 1], add_partials)
}

fn add_partials(mut a: Vec<Complex64>, b: Vec<Complex64>) -> Vec<Complex64> {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
    a
}

/// x += Σ_i y_i z_i.
pub(crate) fn multi_add<T: Real>(x: &mut [Complex<T>], y: &[Complex64], zs: &[Vec<Complex<T>>]) {
    let ys: Vec<Complex64> = y.iter().map(|v| -*v).collect();
    multi_sub(x, &ys, zs);
}

// ---------------------------------------------------------------------------------------------
// Split-complex f32 vectors in the JIT kernels' layout (see `codegen::lattice_layout`): blocks
// of `SPLIT_LANES` real parts followed by `SPLIT_LANES` imaginary parts. The inner product of
// two such vectors is the inner product of the fields they hold, whatever the site order, so
// the Krylov solver can stay in the kernels' layout and never convert inside an iteration.

/// Lanes of one split-complex block (f32x4).
pub const SPLIT_LANES: usize = 4;
/// Scalars per split block (re lanes + im lanes).
const BLOCK: usize = 2 * SPLIT_LANES;
/// Scalars per rayon work item: 16 KiB of f32, so that a chunk of `w` stays in L1 while every
/// basis vector streams past it.
const SPLIT_CHUNK: usize = 4096;

/// One split-complex block: 4 real parts, then 4 imaginary parts.
type Block = [[f32; SPLIT_LANES]; 2];

fn blocks(a: &[f32]) -> &[Block] {
    a.as_chunks::<SPLIT_LANES>().0.as_chunks::<2>().0
}

fn blocks_mut(a: &mut [f32]) -> &mut [Block] {
    a.as_chunks_mut::<SPLIT_LANES>().0.as_chunks_mut::<2>().0
}

/// Σ conj(a) b over one chunk, in explicit f32x4 vectors (`wide`): the compiler's own
/// vectorisation of the lane loops interleaved scalar loads and shuffles. Two accumulator sets,
/// one per block of a pair, keep the adds off one dependency chain (named, not indexed: an
/// indexed accumulator array lived on the stack). The chunk result is widened to f64 before
/// chunks are summed, so rounding grows with the chunk length (256 terms per accumulator at
/// most), not with the vector length.
#[inline]
fn split_dot_chunk(a: &[f32], b: &[f32]) -> Complex64 {
    #[inline(always)]
    fn mac(x: &Block, y: &Block, re: f32x4, im: f32x4) -> (f32x4, f32x4) {
        let (xr, xi, yr, yi) =
            (f32x4::new(x[0]), f32x4::new(x[1]), f32x4::new(y[0]), f32x4::new(y[1]));
        (xr.mul_add(yr, xi.mul_add(yi, re)), xr.mul_add(yi, im) - xi * yr)
    }
    let z = f32x4::ZERO;
    let (mut re0, mut im0, mut re1, mut im1) = (z, z, z, z);
    let (xa, ya) = (blocks(a), blocks(b));
    let (xp, xrest) = xa.as_chunks::<2>();
    let (yp, yrest) = ya.as_chunks::<2>();
    for (x, y) in xp.iter().zip(yp) {
        (re0, im0) = mac(&x[0], &y[0], re0, im0);
        (re1, im1) = mac(&x[1], &y[1], re1, im1);
    }
    for (x, y) in xrest.iter().zip(yrest) {
        (re0, im0) = mac(x, y, re0, im0);
    }
    let sum = |u: f32x4, v: f32x4| {
        u.to_array().iter().chain(&v.to_array()).map(|&e| f64::from(e)).sum::<f64>()
    };
    Complex64::new(sum(re0, re1), sum(im0, im1))
}

#[inline]
fn split_norm_sqr_chunk(a: &[f32]) -> f64 {
    let (mut r, mut i) = (f32x4::ZERO, f32x4::ZERO);
    for x in blocks(a) {
        let (xr, xi) = (f32x4::new(x[0]), f32x4::new(x[1]));
        r = xr.mul_add(xr, r);
        i = xi.mul_add(xi, i);
    }
    r.to_array().iter().chain(&i.to_array()).map(|&e| f64::from(e)).sum::<f64>()
}

fn check_split(len: usize) {
    assert!(len % BLOCK == 0, "split-complex vector of {len} scalars is not whole blocks");
}

/// [⟨v_0, w⟩, …, ⟨v_{k−1}, w⟩, ‖w‖²] over the first `len` scalars of split-complex vectors, in
/// one pass over `w` (the squared norm is the last entry, as a real number).
pub(crate) fn split_multi_dot(vs: &[Vec<f32>], k: usize, w: &[f32], len: usize) -> Vec<Complex64> {
    check_split(len);
    let zero = vec![Complex64::new(0.0, 0.0); k + 1];
    let avx2 = Avx2::detect();
    w[..len]
        .par_chunks(SPLIT_CHUNK)
        .enumerate()
        .map(|(c, wc)| {
            let lo = c * SPLIT_CHUNK;
            let mut acc = vec![Complex64::new(0.0, 0.0); k + 1];
            for (i, a) in acc.iter_mut().take(k).enumerate() {
                *a = dot_chunk(avx2, &vs[i][lo..lo + wc.len()], wc);
            }
            acc[k] = Complex64::new(norm_sqr_chunk(avx2, wc), 0.0);
            acc
        })
        .reduce(|| zero.clone(), add_partials)
}

/// w −= Σ_{i<k} h_i v_i (k = `h.len()`) over the first `len` scalars; returns the new ‖w‖².
pub(crate) fn split_multi_sub(w: &mut [f32], h: &[Complex64], vs: &[Vec<f32>], len: usize) -> f64 {
    split_multi_sub_then(w, h, vs, len, false)[0].re
}

/// w −= Σ_{i<k} h_i v_i, then [⟨v_0, w⟩, …, ⟨v_{k−1}, w⟩, ‖w‖²] of the new `w`, in one sweep
/// (see [`multi_sub_dot`]): the basis chunks just read for the update are re-read from L2 for
/// the projections, so a re-orthogonalising Gram–Schmidt makes three trips to memory, not four.
pub(crate) fn split_multi_sub_dot(
    w: &mut [f32],
    h: &[Complex64],
    vs: &[Vec<f32>],
    len: usize,
) -> Vec<Complex64> {
    split_multi_sub_then(w, h, vs, len, true)
}

/// The shared sweep of [`split_multi_sub`] and [`split_multi_sub_dot`]. Two basis vectors per
/// sweep over a chunk halve the loads and stores of `w`.
fn split_multi_sub_then(
    w: &mut [f32],
    h: &[Complex64],
    vs: &[Vec<f32>],
    len: usize,
    dots: bool,
) -> Vec<Complex64> {
    check_split(len);
    let hs: Vec<(f32x4, f32x4)> =
        h.iter().map(|z| (f32x4::splat(z.re as f32), f32x4::splat(z.im as f32))).collect();
    let k = if dots { hs.len() } else { 0 };
    let avx2 = Avx2::detect();
    w[..len]
        .par_chunks_mut(SPLIT_CHUNK)
        .enumerate()
        .map(|(c, wc)| {
            let lo = c * SPLIT_CHUNK;
            let hi = lo + wc.len();
            if let Some(avx2) = avx2 {
                let chunks: Vec<&[f32]> = vs[..h.len()].iter().map(|v| &v[lo..hi]).collect();
                avx2.sub(wc, h, &chunks);
                let mut acc: Vec<Complex64> =
                    (0..k).map(|i| avx2.dot(&vs[i][lo..hi], wc)).collect();
                acc.push(Complex64::new(avx2.norm_sqr(wc), 0.0));
                return acc;
            }
            let ws = blocks_mut(wc);
            // w −= h v with h = a + ib: re −= a vr − b vi, im −= a vi + b vr.
            let sub = |wb: &mut Block, p: &Block, (ar, ai): (f32x4, f32x4)| {
                let (pr, pi) = (f32x4::new(p[0]), f32x4::new(p[1]));
                let (wr, wi) = (f32x4::new(wb[0]), f32x4::new(wb[1]));
                wb[0] = (wr - ar * pr + ai * pi).to_array();
                wb[1] = (wi - ar * pi - ai * pr).to_array();
            };
            let mut i = 0;
            while i + 1 < hs.len() {
                let (ha, hb) = (hs[i], hs[i + 1]);
                let (va, vb) = (blocks(&vs[i][lo..hi]), blocks(&vs[i + 1][lo..hi]));
                for ((wb, p), q) in ws.iter_mut().zip(va).zip(vb) {
                    let (pr, pi) = (f32x4::new(p[0]), f32x4::new(p[1]));
                    let (qr, qi) = (f32x4::new(q[0]), f32x4::new(q[1]));
                    let (wr, wi) = (f32x4::new(wb[0]), f32x4::new(wb[1]));
                    wb[0] = (wr - ha.0 * pr + ha.1 * pi - hb.0 * qr + hb.1 * qi).to_array();
                    wb[1] = (wi - ha.0 * pi - ha.1 * pr - hb.0 * qi - hb.1 * qr).to_array();
                }
                i += 2;
            }
            if i < hs.len() {
                for (wb, p) in ws.iter_mut().zip(blocks(&vs[i][lo..hi])) {
                    sub(wb, p, hs[i]);
                }
            }
            let mut acc: Vec<Complex64> =
                (0..k).map(|i| split_dot_chunk(&vs[i][lo..hi], wc)).collect();
            acc.push(Complex64::new(split_norm_sqr_chunk(wc), 0.0));
            acc
        })
        .reduce(|| vec![Complex64::new(0.0, 0.0); k + 1], add_partials)
}

/// Σ conj(a) b over one chunk: the AVX2/FMA kernel where the host has it.
#[inline]
fn dot_chunk(avx2: Option<Avx2>, a: &[f32], b: &[f32]) -> Complex64 {
    avx2.map_or_else(|| split_dot_chunk(a, b), |k| k.dot(a, b))
}

#[inline]
fn norm_sqr_chunk(avx2: Option<Avx2>, a: &[f32]) -> f64 {
    avx2.map_or_else(|| split_norm_sqr_chunk(a), |k| k.norm_sqr(a))
}

/// out = s · inp over the first `len` scalars (s real).
pub(crate) fn split_scaled_copy(out: &mut [f32], s: f64, inp: &[f32], len: usize) {
    let s = s as f32;
    out[..len]
        .par_chunks_mut(SPLIT_CHUNK)
        .zip(inp[..len].par_chunks(SPLIT_CHUNK))
        .for_each(|(o, i)| o.iter_mut().zip(i).for_each(|(o, i)| *o = s * i));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Complex entry `i` of a split-complex vector (block i/4, lane i%4).
    fn entry(v: &[f32], i: usize) -> Complex64 {
        let (b, k) = (i / SPLIT_LANES, i % SPLIT_LANES);
        Complex64::new(v[b * BLOCK + k] as f64, v[b * BLOCK + SPLIT_LANES + k] as f64)
    }

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// Against a naive f64 complex dot over the entries; lengths that are not whole chunks.
    #[test]
    fn split_products_match_naive_complex_arithmetic() {
        for len in [BLOCK, 3 * BLOCK, SPLIT_CHUNK + 5 * BLOCK, 3 * SPLIT_CHUNK - BLOCK] {
            let vs: Vec<Vec<f32>> = (0..5).map(|s| random(len + 24, s)).collect();
            let w = random(len + 24, 99);
            let got = split_multi_dot(&vs, 5, &w, len);
            let nc = len / 2;
            for (i, v) in vs.iter().enumerate() {
                let want: Complex64 = (0..nc).map(|e| entry(v, e).conj() * entry(&w, e)).sum();
                assert!(
                    (got[i] - want).norm() < 1e-5 * nc as f64,
                    "{len} {i}: {} vs {want}",
                    got[i]
                );
            }
            let n2: f64 = (0..nc).map(|e| entry(&w, e).norm_sqr()).sum();
            assert!((got[5].re - n2).abs() < 1e-5 * n2);

            for k in [1, 2, 5] {
                let h: Vec<Complex64> =
                    (0..k).map(|i| Complex64::new(0.3 + i as f64, -0.7 * i as f64)).collect();
                let mut w2 = w.clone();
                let norm2 = split_multi_sub(&mut w2, &h, &vs, len);
                let mut want_n2 = 0.0;
                for e in 0..nc {
                    let want =
                        entry(&w, e) - (0..k).map(|i| h[i] * entry(&vs[i], e)).sum::<Complex64>();
                    assert!((entry(&w2, e) - want).norm() < 1e-5, "{len} k={k} entry {e}");
                    want_n2 += want.norm_sqr();
                }
                assert!((norm2 - want_n2).abs() < 1e-5 * want_n2);
                // Scalars past `len` are untouched.
                assert_eq!(&w2[len..], &w[len..]);

                // The fused sweep: the same update, then the projections of the result.
                let mut w3 = w.clone();
                let fused = split_multi_sub_dot(&mut w3, &h, &vs, len);
                assert_eq!(w3, w2, "{len} k={k}: fused update differs");
                let want = split_multi_dot(&vs, k, &w2, len);
                assert_eq!(fused.len(), k + 1);
                for (i, (a, b)) in fused.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).norm() < 1e-6 * (1.0 + b.norm()),
                        "{len} k={k} {i}: {a} vs {b}"
                    );
                }
            }
        }
    }

    /// The generic (interleaved complex) fused sweep against its two separate passes, in f64.
    #[test]
    fn fused_sub_dot_matches_sub_then_dot() {
        let n = 2 * CHUNK + 37;
        let c = |s: u64| -> Vec<Complex64> {
            let r = random(2 * n, s);
            r.chunks(2).map(|p| Complex64::new(p[0] as f64, p[1] as f64)).collect()
        };
        let vs: Vec<Vec<Complex64>> = (0..4).map(c).collect();
        let w = c(50);
        let h: Vec<Complex64> = (0..3).map(|i| Complex64::new(0.2 * i as f64, 0.5)).collect();
        let mut w1 = w.clone();
        let n1 = multi_sub(&mut w1, &h, &vs);
        let want = multi_dot(&vs, 3, &w1);
        let mut w2 = w;
        let got = multi_sub_dot(&mut w2, &h, &vs);
        assert_eq!(w1, w2);
        assert_eq!(got.len(), 4);
        assert!((got[3].re - n1).abs() < 1e-12 * n1);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).norm() < 1e-12 * (1.0 + b.norm()), "{a} vs {b}");
        }
    }
}
