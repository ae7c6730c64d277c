//! Fermion fields (4 spin × 3 colour complex numbers per site) and the vector algebra on them.
//!
//! The reference layout is shared by every part of symc: a field is a `Vec<Complex<T>>` of
//! length `V * 12`, component `site * 12 + spin * 3 + colour`, sites in
//! [`Geometry`](super::geometry::Geometry) order. In the chiral basis the first six numbers of a
//! site are the γ5 = +1 half and the last six the γ5 = −1 half, which is why the clover term is
//! two 6×6 blocks on contiguous memory.
//!
//! The slice functions ([`dot`], [`norm_sqr`], [`axpy`], …) are what the Krylov solvers run on;
//! they accumulate in f64 whatever `T` is and split long vectors over rayon.

use super::Real;
use super::su3::Su3;
use num_complex::{Complex, Complex64};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// Complex numbers per site: 4 spins × 3 colours.
pub const SITE_LEN: usize = 12;

/// Slices shorter than this are processed on one thread (rayon overhead dominates below).
const PAR_MIN: usize = 1 << 14;

/// A fermion field on a 4D lattice in the reference layout.
#[derive(Clone, Debug, PartialEq)]
pub struct FermionField<T: Real> {
    /// `data[site * 12 + spin * 3 + colour]`.
    pub data: Vec<Complex<T>>,
    /// Lattice extents (x, y, z, t).
    pub dims: [usize; 4],
}

impl<T: Real> FermionField<T> {
    /// The zero field.
    pub fn zeros(dims: [usize; 4]) -> Self {
        let v: usize = dims.iter().product();
        FermionField { data: vec![Complex::new(T::zero(), T::zero()); v * SITE_LEN], dims }
    }

    /// Wraps existing data; `None` if its length is not `12 V`.
    pub fn from_data(dims: [usize; 4], data: Vec<Complex<T>>) -> Option<Self> {
        let v: usize = dims.iter().product();
        (data.len() == v * SITE_LEN).then_some(FermionField { data, dims })
    }

    /// Every real and imaginary part independently N(0, 1/2), so that E|ψ_i|² = 1.
    pub fn random_gaussian<R: Rng + ?Sized>(dims: [usize; 4], rng: &mut R) -> Self {
        let mut f = Self::zeros(dims);
        let s = std::f64::consts::FRAC_1_SQRT_2;
        for z in f.data.iter_mut() {
            let a: f64 = StandardNormal.sample(rng);
            let b: f64 = StandardNormal.sample(rng);
            *z = Complex::new(T::from_f64(s * a), T::from_f64(s * b));
        }
        f
    }

    /// A [`GaussianStream`] at every site: the same distribution as
    /// [`Self::random_gaussian`], drawn counter-based, on both cores.
    pub fn gaussian_counter(dims: [usize; 4], seed: u64, stream: u64) -> Self {
        let v: usize = dims.iter().product();
        FermionField { data: gaussian_at(seed, stream, v, |s| s), dims }
    }

    /// A point source: 1 at (`site`, `spin`, `colour`), 0 elsewhere.
    pub fn point(dims: [usize; 4], site: usize, spin: usize, colour: usize) -> Self {
        let mut f = Self::zeros(dims);
        f.data[site * SITE_LEN + spin * 3 + colour] = Complex::new(T::one(), T::zero());
        f
    }

    /// Number of lattice sites.
    pub fn volume(&self) -> usize {
        self.dims.iter().product()
    }

    /// The 12 components of one site.
    pub fn site(&self, s: usize) -> &[Complex<T>] {
        &self.data[s * SITE_LEN..(s + 1) * SITE_LEN]
    }

    /// ⟨self, other⟩ = Σ conj(self_i) other_i, accumulated in f64.
    pub fn dot(&self, other: &Self) -> Complex64 {
        dot(&self.data, &other.data)
    }

    /// ‖self‖², accumulated in f64.
    pub fn norm_sqr(&self) -> f64 {
        norm_sqr(&self.data)
    }

    /// ‖self‖.
    pub fn norm(&self) -> f64 {
        self.norm_sqr().sqrt()
    }

    /// self += a · x.
    pub fn axpy(&mut self, a: Complex<T>, x: &Self) {
        axpy(a, &x.data, &mut self.data);
    }

    /// self *= a.
    pub fn scale(&mut self, a: Complex<T>) {
        scale(a, &mut self.data);
    }

    /// The same field in another precision.
    pub fn cast<U: Real>(&self) -> FermionField<U> {
        FermionField { data: cast_slice(&self.data), dims: self.dims }
    }

    /// γ5 ψ (chiral basis: flips the sign of spins 2 and 3).
    pub fn gamma5(&self) -> Self {
        let mut r = self.clone();
        gamma5_in_place(&mut r.data);
        r
    }

    /// ψ(x) → Ω(x) ψ(x) on every site and spin, the fermion half of a gauge transformation
    /// (pairs with [`GaugeField::gauge_transform`](super::gauge::GaugeField::gauge_transform)).
    pub fn gauge_transform(&self, omega: &[Su3<f64>]) -> Self {
        let mut r = self.clone();
        for (s, site) in r.data.chunks_exact_mut(SITE_LEN).enumerate() {
            let o: Su3<T> = omega[s].cast();
            for spin in 0..4 {
                let v = [site[spin * 3], site[spin * 3 + 1], site[spin * 3 + 2]];
                let w = o.mul_vec(&v);
                site[spin * 3..spin * 3 + 3].copy_from_slice(&w);
            }
        }
        r
    }
}

/// Random right-hand sides for solves: `n` complex Gaussian fields (see
/// [`FermionField::random_gaussian`]) scaled to unit norm, drawn one after another from a ChaCha8
/// generator seeded with `seed`. The one generator of sources in symc: `symc solve --seed` and
/// the evaluation that ends a preconditioner run both call it, so the same seed gives the same
/// sources (bit for bit) everywhere, and the k-th source of a batch does not depend on `n`.
pub fn random_sources(dims: [usize; 4], n: usize, seed: u64) -> Vec<Vec<Complex64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut b = FermionField::<f64>::random_gaussian(dims, &mut rng).data;
            let s = 1.0 / norm(&b);
            scale(Complex64::new(s, 0.0), &mut b);
            b
        })
        .collect()
}

/// Converts a slice to another precision.
pub fn cast_slice<T: Real, U: Real>(x: &[Complex<T>]) -> Vec<Complex<U>> {
    x.iter().map(|z| Complex::new(U::from_f64(z.re.to_f64()), U::from_f64(z.im.to_f64()))).collect()
}

/// Writes `x` converted to `U` into `out` (same length).
pub fn cast_into<T: Real, U: Real>(out: &mut [Complex<U>], x: &[Complex<T>]) {
    assert_eq!(out.len(), x.len(), "cast_into: length mismatch");
    for (o, z) in out.iter_mut().zip(x) {
        *o = Complex::new(U::from_f64(z.re.to_f64()), U::from_f64(z.im.to_f64()));
    }
}

/// In-place γ5 on a field in the reference layout.
pub fn gamma5_in_place<T: Real>(x: &mut [Complex<T>]) {
    for site in x.chunks_exact_mut(SITE_LEN) {
        for z in site[6..].iter_mut() {
            *z = -*z;
        }
    }
}

/// Words of the ChaCha stream reserved for one site: the 24 normals take about 48 (the
/// ziggurat rarely rejects), so sites never share a word.
const SITE_WORDS_LOG2: u32 = 24;

/// The Gaussian vector `(seed, stream)`, site by site: every real and imaginary part
/// N(0, 1/2). Counter-based: a site reads its own position of one ChaCha8 stream, so a vector
/// drawn site by site, in any order, on any number of threads or processes, is the same
/// vector (what makes the training pairs of a split run those of one process, with each
/// process drawing only its own sites). Clone one per thread.
#[derive(Clone, Debug)]
pub struct GaussianStream(ChaCha8Rng);

impl GaussianStream {
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        GaussianStream(rng)
    }

    /// The 12 components of global site `site` into `out[..12]`.
    pub fn site<T: Real>(&mut self, site: usize, out: &mut [Complex<T>]) {
        self.0.set_word_pos((site as u128) << SITE_WORDS_LOG2);
        let s = std::f64::consts::FRAC_1_SQRT_2;
        for z in out[..SITE_LEN].iter_mut() {
            let a: f64 = StandardNormal.sample(&mut self.0);
            let b: f64 = StandardNormal.sample(&mut self.0);
            *z = Complex::new(T::from_f64(s * a), T::from_f64(s * b));
        }
    }
}

/// The [`GaussianStream`] `(seed, stream)` at `n` sites, the i-th being global site
/// `site(i)` (a sub-lattice's own sites, or every site), drawn on both cores.
pub fn gaussian_at<T: Real>(
    seed: u64,
    stream: u64,
    n: usize,
    site: impl Fn(usize) -> usize + Sync + Send,
) -> Vec<Complex<T>> {
    let mut v = vec![Complex::new(T::zero(), T::zero()); n * SITE_LEN];
    let g = GaussianStream::new(seed, stream);
    v.par_chunks_mut(SITE_LEN)
        .enumerate()
        .with_min_len(64)
        .for_each_init(|| g.clone(), |g, (i, z)| g.site(site(i), z));
    v
}

#[inline]
fn c64<T: Real>(z: Complex<T>) -> Complex64 {
    Complex64::new(z.re.to_f64(), z.im.to_f64())
}

/// ⟨a, b⟩ = Σ conj(a_i) b_i in f64 on one thread, with four independent accumulators: a
/// single running sum is bound by the latency of the floating-point add, four are not.
#[inline]
pub fn dot_serial<T: Real>(a: &[Complex<T>], b: &[Complex<T>]) -> Complex64 {
    let (mut re, mut im) = ([0.0f64; 4], [0.0f64; 4]);
    let split = a.len() / 4 * 4;
    for (x, y) in a[..split].chunks_exact(4).zip(b[..split].chunks_exact(4)) {
        for k in 0..4 {
            let (xr, xi, yr, yi) =
                (x[k].re.to_f64(), x[k].im.to_f64(), y[k].re.to_f64(), y[k].im.to_f64());
            re[k] += xr * yr + xi * yi;
            im[k] += xr * yi - xi * yr;
        }
    }
    let mut s =
        Complex64::new((re[0] + re[1]) + (re[2] + re[3]), (im[0] + im[1]) + (im[2] + im[3]));
    for (x, y) in a[split..].iter().zip(&b[split..]) {
        s += c64(*x).conj() * c64(*y);
    }
    s
}

/// ‖a‖² in f64 on one thread (four accumulators, see [`dot_serial`]).
#[inline]
pub fn norm_sqr_serial<T: Real>(a: &[Complex<T>]) -> f64 {
    let mut acc = [0.0f64; 4];
    let split = a.len() / 4 * 4;
    for x in a[..split].chunks_exact(4) {
        for k in 0..4 {
            let (xr, xi) = (x[k].re.to_f64(), x[k].im.to_f64());
            acc[k] += xr * xr + xi * xi;
        }
    }
    let tail: f64 = a[split..].iter().map(|z| c64(*z).norm_sqr()).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// ⟨a, b⟩ = Σ conj(a_i) b_i in f64.
pub fn dot<T: Real>(a: &[Complex<T>], b: &[Complex<T>]) -> Complex64 {
    assert_eq!(a.len(), b.len(), "dot: length mismatch");
    if a.len() < PAR_MIN {
        dot_serial(a, b)
    } else {
        a.par_chunks(PAR_MIN).zip(b.par_chunks(PAR_MIN)).map(|(x, y)| dot_serial(x, y)).sum()
    }
}

/// ‖a‖² in f64.
pub fn norm_sqr<T: Real>(a: &[Complex<T>]) -> f64 {
    if a.len() < PAR_MIN {
        norm_sqr_serial(a)
    } else {
        a.par_chunks(PAR_MIN).map(norm_sqr_serial).sum()
    }
}

/// ‖a‖ in f64.
pub fn norm<T: Real>(a: &[Complex<T>]) -> f64 {
    norm_sqr(a).sqrt()
}

/// y += a x.
pub fn axpy<T: Real>(a: Complex<T>, x: &[Complex<T>], y: &mut [Complex<T>]) {
    assert_eq!(x.len(), y.len(), "axpy: length mismatch");
    let seq = |x: &[Complex<T>], y: &mut [Complex<T>]| {
        for (yi, xi) in y.iter_mut().zip(x) {
            *yi += a * *xi;
        }
    };
    if x.len() < PAR_MIN {
        seq(x, y)
    } else {
        y.par_chunks_mut(PAR_MIN).zip(x.par_chunks(PAR_MIN)).for_each(|(y, x)| seq(x, y));
    }
}

/// y = x + a y (the "xpay" update of CG-type recurrences).
pub fn xpay<T: Real>(x: &[Complex<T>], a: Complex<T>, y: &mut [Complex<T>]) {
    assert_eq!(x.len(), y.len(), "xpay: length mismatch");
    let seq = |x: &[Complex<T>], y: &mut [Complex<T>]| {
        for (yi, xi) in y.iter_mut().zip(x) {
            *yi = *xi + a * *yi;
        }
    };
    if x.len() < PAR_MIN {
        seq(x, y)
    } else {
        y.par_chunks_mut(PAR_MIN).zip(x.par_chunks(PAR_MIN)).for_each(|(y, x)| seq(x, y));
    }
}

/// x *= a.
pub fn scale<T: Real>(a: Complex<T>, x: &mut [Complex<T>]) {
    let seq = |x: &mut [Complex<T>]| x.iter_mut().for_each(|z| *z *= a);
    if x.len() < PAR_MIN { seq(x) } else { x.par_chunks_mut(PAR_MIN).for_each(seq) }
}

/// out = a − b.
pub fn sub<T: Real>(out: &mut [Complex<T>], a: &[Complex<T>], b: &[Complex<T>]) {
    assert!(out.len() == a.len() && a.len() == b.len(), "sub: length mismatch");
    let seq = |o: &mut [Complex<T>], a: &[Complex<T>], b: &[Complex<T>]| {
        for ((o, x), y) in o.iter_mut().zip(a).zip(b) {
            *o = *x - *y;
        }
    };
    if a.len() < PAR_MIN {
        seq(out, a, b)
    } else {
        out.par_chunks_mut(PAR_MIN)
            .zip(a.par_chunks(PAR_MIN))
            .zip(b.par_chunks(PAR_MIN))
            .for_each(|((o, a), b)| seq(o, a, b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn dot_and_norm_agree_with_naive_sums_on_long_vectors() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let dims = [8, 8, 4, 8];
        let a = FermionField::<f64>::random_gaussian(dims, &mut rng);
        let b = FermionField::<f64>::random_gaussian(dims, &mut rng);
        assert!(a.data.len() > PAR_MIN, "the test must exercise the parallel path");
        let naive: Complex64 = a.data.iter().zip(&b.data).map(|(x, y)| x.conj() * y).sum();
        assert!((a.dot(&b) - naive).norm() < 1e-10 * naive.norm().max(1.0));
        let n2: f64 = a.data.iter().map(|z| z.norm_sqr()).sum();
        assert!((a.norm_sqr() - n2).abs() < 1e-10 * n2);
        // E|ψ_i|² = 1: the mean over 24576 components is within a few percent of 1.
        let mean = n2 / a.data.len() as f64;
        assert!((mean - 1.0).abs() < 0.05, "mean |ψ|² = {mean}");
    }

    #[test]
    fn axpy_xpay_scale_sub() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let dims = [8, 8, 4, 8];
        let x = FermionField::<f64>::random_gaussian(dims, &mut rng);
        let y0 = FermionField::<f64>::random_gaussian(dims, &mut rng);
        let a = Complex64::new(0.3, -1.2);
        let mut y = y0.clone();
        y.axpy(a, &x);
        for i in 0..x.data.len() {
            assert!((y.data[i] - (y0.data[i] + a * x.data[i])).norm() < 1e-14);
        }
        let mut z = y0.data.clone();
        xpay(&x.data, a, &mut z);
        for i in 0..x.data.len() {
            assert!((z[i] - (x.data[i] + a * y0.data[i])).norm() < 1e-14);
        }
        let mut d = vec![Complex64::new(0.0, 0.0); x.data.len()];
        sub(&mut d, &x.data, &y0.data);
        let mut s = x.data.clone();
        scale(a, &mut s);
        for i in 0..x.data.len() {
            assert!((d[i] - (x.data[i] - y0.data[i])).norm() < 1e-15);
            assert!((s[i] - a * x.data[i]).norm() < 1e-15);
        }
    }

    #[test]
    fn random_sources_are_unit_seeded_and_prefix_stable() {
        let dims = [2, 2, 2, 4];
        let a = random_sources(dims, 3, 7);
        assert_eq!(a.len(), 3);
        for b in &a {
            assert_eq!(b.len(), 2 * 2 * 2 * 4 * SITE_LEN);
            assert!((norm(b) - 1.0).abs() < 1e-14);
        }
        // Same seed, same sources; fewer of them are a prefix; another seed differs.
        assert_eq!(random_sources(dims, 2, 7)[..], a[..2]);
        assert_ne!(random_sources(dims, 1, 8)[0], a[0]);
    }

    #[test]
    fn gauge_transform_preserves_local_norms() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let dims = [2, 2, 2, 2];
        let psi = FermionField::<f64>::random_gaussian(dims, &mut rng);
        let omega: Vec<Su3<f64>> = (0..16).map(|_| Su3::random(&mut rng)).collect();
        let t = psi.gauge_transform(&omega);
        for s in 0..16 {
            for spin in 0..4 {
                let n0: f64 =
                    psi.site(s)[spin * 3..spin * 3 + 3].iter().map(|z| z.norm_sqr()).sum();
                let n1: f64 = t.site(s)[spin * 3..spin * 3 + 3].iter().map(|z| z.norm_sqr()).sum();
                assert!((n0 - n1).abs() < 1e-13);
            }
        }
        assert!((t.data[0] - psi.data[0]).norm() > 1e-3, "the transformation must act");
    }
}
