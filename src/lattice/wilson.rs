//! The Wilson-clover Dirac operator D and its adjoint D†, in f32 and f64.
//!
//! This is the operator every solver and every preconditioner in symc is measured against
//! (physics.md §1.1, Grid/GPT conventions):
//!
//! ```text
//! D ψ(x) = A(x) ψ(x) − ½ Σ_μ [ (1 − γ_μ) U_μ(x) ψ(x+μ̂) + (1 + γ_μ) U_μ†(x−μ̂) ψ(x−μ̂) ]
//! A(x)   = (4 + m) − (c_sw / 4) Σ_{μ,ν} ½[γ_μ, γ_ν] F_μν(x),   F_μν = (Q_μν − Q_μν†) / 8
//! ```
//!
//! with Q_μν the four clover leaves and no trace removed (as Grid and GPT). Boundary conditions
//! are a complex phase per direction multiplied into the links of the last slice (so the backward
//! hop across the boundary sees the conjugate phase); the clover term is built from the unphased
//! links. D† = γ5 D γ5 is applied by the same kernel with the projector signs swapped.
//!
//! Speed comes from the standard tricks, not from cleverness: (1 ∓ γ_μ) has rank 2, so each hop
//! multiplies only a half spinor (2 colour vectors) by a link and rebuilds the other half from the
//! γ structure ([`gamma::HOP_TABLE`]); the links carry the boundary phases already; the clover
//! term is precomputed as two packed Hermitian 6×6 blocks per site (72 reals); neighbours come
//! from the [`Geometry`] tables; sites are split over rayon; `apply` allocates nothing.

use super::Real;
use super::gamma::{self, HOP_TABLE};
use super::gauge::GaugeField;
use super::geometry::Geometry;
use super::su3::Su3;
use num_complex::{Complex, Complex64};
use rayon::prelude::*;

/// Flops per site of one application of D, the conventional count (QUDA: 1320 hopping +
/// 504 clover + 48 for the combination), used for every GFLOP/s figure in symc.
pub const FLOPS_PER_SITE: u64 = 1872;

/// Sites per rayon task: large enough to amortise scheduling, small enough to balance 2 cores.
const SITES_PER_TASK: usize = 64;

/// Physical parameters of the Wilson-clover operator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiracParams {
    /// Bare mass m0 (κ = 1 / (2 (m0 + 4))).
    pub mass: f64,
    /// Clover coefficient (1 = tree level; 0 = plain Wilson).
    pub csw: f64,
    /// Phase per direction (x, y, z, t) multiplied into the links of the last slice.
    pub boundary_phases: [Complex64; 4],
}

impl DiracParams {
    /// Periodic in all four directions (the Lehner–Wettig / qcd_ml setting).
    pub fn periodic(mass: f64, csw: f64) -> Self {
        DiracParams { mass, csw, boundary_phases: [Complex64::new(1.0, 0.0); 4] }
    }

    /// Periodic in space, antiperiodic in time (physical fermions).
    pub fn antiperiodic_time(mass: f64, csw: f64) -> Self {
        let mut p = Self::periodic(mass, csw);
        p.boundary_phases[3] = Complex64::new(-1.0, 0.0);
        p
    }
}

/// One Hermitian 6×6 clover block (one chirality), packed: the real diagonal and the 15
/// entries above it, row by row (`(0,1), (0,2), …, (0,5), (1,2), …, (4,5)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CloverBlock<T: Real> {
    pub diag: [T; 6],
    pub upper: [Complex<T>; 15],
}

impl<T: Real> CloverBlock<T> {
    /// Index into `upper` of entry (i, j), i < j.
    #[inline(always)]
    pub fn upper_index(i: usize, j: usize) -> usize {
        debug_assert!(i < j && j < 6);
        // Rows 0..i hold 5 + 4 + … entries: i*(11 - i)/2 before row i.
        i * (11 - i) / 2 + (j - i - 1)
    }

    /// The full 6×6 matrix, row-major.
    pub fn to_dense(&self) -> [[Complex<T>; 6]; 6] {
        let z = Complex::new(T::zero(), T::zero());
        let mut m = [[z; 6]; 6];
        for i in 0..6 {
            m[i][i] = Complex::new(self.diag[i], T::zero());
            for j in (i + 1)..6 {
                let a = self.upper[Self::upper_index(i, j)];
                m[i][j] = a;
                m[j][i] = a.conj();
            }
        }
        m
    }

    /// out = A v.
    #[inline(always)]
    pub fn mul_vec(&self, v: &[Complex<T>; 6]) -> [Complex<T>; 6] {
        let mut o = [Complex::new(T::zero(), T::zero()); 6];
        for i in 0..6 {
            o[i] = v[i].scale(self.diag[i]);
        }
        let mut k = 0;
        for i in 0..6 {
            for j in (i + 1)..6 {
                let a = self.upper[k];
                o[i] += a * v[j];
                o[j] += a.conj() * v[i];
                k += 1;
            }
        }
        o
    }
}

/// The Wilson-clover operator on one gauge configuration, ready to apply.
#[derive(Clone, Debug)]
pub struct WilsonClover<T: Real> {
    geom: Geometry,
    params: DiracParams,
    /// `links[site * 4 + mu]` = U_μ(x) with the boundary phase of μ folded in on the last slice.
    links: Vec<Su3<T>>,
    /// `clover[site * 2 + chirality]`, chirality 0 = spins 0, 1 (γ5 = +1), 1 = spins 2, 3.
    clover: Vec<CloverBlock<T>>,
}

impl<T: Real> WilsonClover<T> {
    /// Builds the operator: phased links in precision `T` and the clover blocks (computed in f64
    /// from the unphased links, then rounded to `T`).
    pub fn new(gauge: &GaugeField, params: &DiracParams) -> Self {
        let geom = gauge.geom.clone();
        let vol = geom.volume();
        let mut links = Vec::with_capacity(vol * 4);
        for s in 0..vol {
            for mu in 0..4 {
                let mut u = *gauge.link(s, mu);
                if geom.on_last_slice(s, mu) {
                    u = u.scale(params.boundary_phases[mu]);
                }
                links.push(u.cast::<T>());
            }
        }
        let clover = (0..vol)
            .into_par_iter()
            .flat_map_iter(|s| {
                let blocks = clover_blocks_f64(gauge, s, params.mass, params.csw);
                blocks.into_iter().map(|b| pack_block::<T>(&b))
            })
            .collect();
        WilsonClover { geom, params: *params, links, clover }
    }

    /// Number of lattice sites.
    pub fn volume(&self) -> usize {
        self.geom.volume()
    }

    /// Length of a fermion vector (12 V).
    pub fn vector_len(&self) -> usize {
        self.volume() * 12
    }

    /// The lattice geometry (neighbour tables) the operator was built on.
    pub fn geometry(&self) -> &Geometry {
        &self.geom
    }

    /// Mass, c_sw and boundary phases.
    pub fn params(&self) -> &DiracParams {
        &self.params
    }

    /// The links with boundary phases folded in, `links()[site * 4 + mu]`. A kernel that hops
    /// forward with `links()[x*4+mu]` and backward with `links()[(x−μ̂)*4+mu]†` reproduces the
    /// boundary conditions of this operator exactly.
    pub fn links(&self) -> &[Su3<T>] {
        &self.links
    }

    /// The packed clover blocks, `clover_packed()[site * 2 + chirality]`; they include the
    /// diagonal 4 + m.
    pub fn clover_packed(&self) -> &[CloverBlock<T>] {
        &self.clover
    }

    /// Clover block of one site and chirality as a dense Hermitian 6×6 matrix acting on the
    /// components `site*12 + chirality*6 .. +6` (index `spin_in_block * 3 + colour`).
    pub fn clover_block(&self, site: usize, chirality: usize) -> [[Complex<T>; 6]; 6] {
        self.clover[site * 2 + chirality].to_dense()
    }

    /// out = D inp (both of length 12 V).
    pub fn apply(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        self.apply_impl::<false>(out, inp)
    }

    /// out = D† inp (= γ5 D γ5 inp).
    pub fn apply_dagger(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        self.apply_impl::<true>(out, inp)
    }

    /// out = A inp: the site-local clover term alone (with its 4 + m diagonal).
    pub fn apply_clover(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        self.check_lengths(out, inp);
        out.par_chunks_mut(12).zip(inp.par_chunks(12)).enumerate().for_each(|(s, (o, i))| {
            for b in 0..2 {
                let v: [Complex<T>; 6] = std::array::from_fn(|k| i[b * 6 + k]);
                o[b * 6..b * 6 + 6].copy_from_slice(&self.clover[s * 2 + b].mul_vec(&v));
            }
        });
    }

    fn check_lengths(&self, out: &[Complex<T>], inp: &[Complex<T>]) {
        let n = self.vector_len();
        assert!(
            out.len() == n && inp.len() == n,
            "Wilson-clover: vectors must have length 12 V = {n} (got out {}, in {})",
            out.len(),
            inp.len()
        );
    }

    fn apply_impl<const DAG: bool>(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        self.check_lengths(out, inp);
        out.par_chunks_mut(12 * SITES_PER_TASK).enumerate().for_each(|(task, chunk)| {
            let first = task * SITES_PER_TASK;
            for (k, o) in chunk.chunks_exact_mut(12).enumerate() {
                self.site::<DAG>(first + k, o, inp);
            }
        });
    }

    /// The hopping sum at one site, without the −½:
    /// `Σ_μ [(1 − γ_μ) U_μ(x) ψ(x+μ̂) + (1 + γ_μ) U_μ†(x−μ̂) ψ(x−μ̂)]` (projector signs swapped
    /// when `dagger`), as 12 numbers `spin * 3 + colour`. `neighbour(n)` returns the 12
    /// components of ψ at full-lattice site `n`. This is what lets the even-odd operators
    /// ([`evenodd`](super::evenodd)) hop between half-lattice vectors with exactly the links,
    /// boundary phases and projectors of [`apply`](Self::apply), so the hopping physics has one
    /// definition. Crate-private because it trusts its caller: `site < V` and `neighbour`
    /// returning at least 12 numbers (it panics otherwise).
    pub(crate) fn hopping_at<'a>(
        &self,
        site: usize,
        dagger: bool,
        neighbour: impl Fn(usize) -> &'a [Complex<T>],
    ) -> [Complex<T>; 12] {
        let acc = if dagger {
            self.hop_sum::<true>(site, neighbour)
        } else {
            self.hop_sum::<false>(site, neighbour)
        };
        std::array::from_fn(|k| acc[k / 3][k % 3])
    }

    /// One hop of D at `site`, without the −½: `(1 − γ_μ) U_μ(x) ψ(x+μ̂)` when `forward`,
    /// `(1 + γ_μ) U_μ†(x−μ̂) ψ(x−μ̂)` otherwise, where `neighbour` holds the 12 components of ψ
    /// at that neighbour. The eight of them sum to [`hopping_at`](Self::hopping_at); the
    /// Galerkin coarse operator (`lattice::coarse`) needs them one by one, because on a coarse
    /// lattice of extent 2 the +μ and −μ neighbours are the same block and only the fine hop
    /// tells the two stencil terms apart. Crate-private for the same reason as `hopping_at`.
    pub(crate) fn hop_term_at(
        &self,
        site: usize,
        mu: usize,
        forward: bool,
        neighbour: &[Complex<T>],
    ) -> [Complex<T>; 12] {
        let z = Complex::new(T::zero(), T::zero());
        let mut acc = [[z; 3]; 4];
        let (minus, u) = if forward {
            (true, self.links[site * 4 + mu])
        } else {
            (false, self.links[self.geom.dn(site, mu) * 4 + mu])
        };
        macro_rules! hop {
            ($mu:literal) => {{
                let h = project::<T, $mu>(neighbour, minus);
                let uh = if forward {
                    [u.mul_vec(&h[0]), u.mul_vec(&h[1])]
                } else {
                    [u.adj_mul_vec(&h[0]), u.adj_mul_vec(&h[1])]
                };
                accumulate::<T, $mu>(&mut acc, &uh, minus);
            }};
        }
        match mu {
            0 => hop!(0),
            1 => hop!(1),
            2 => hop!(2),
            _ => hop!(3),
        }
        std::array::from_fn(|k| acc[k / 3][k % 3])
    }

    /// D: forward hop with (1 − γ), backward with (1 + γ); D† swaps them.
    #[inline(always)]
    fn hop_sum<'a, const DAG: bool>(
        &self,
        s: usize,
        neighbour: impl Fn(usize) -> &'a [Complex<T>],
    ) -> [[Complex<T>; 3]; 4] {
        let z = Complex::new(T::zero(), T::zero());
        let mut acc = [[z; 3]; 4];
        self.hop::<0, DAG>(s, &mut acc, &neighbour);
        self.hop::<1, DAG>(s, &mut acc, &neighbour);
        self.hop::<2, DAG>(s, &mut acc, &neighbour);
        self.hop::<3, DAG>(s, &mut acc, &neighbour);
        acc
    }

    /// D (or D†) at one site.
    #[inline(always)]
    fn site<const DAG: bool>(&self, s: usize, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        let acc = self.hop_sum::<DAG>(s, |n| &inp[n * 12..n * 12 + 12]);
        let psi = &inp[s * 12..s * 12 + 12];
        let half = T::from_f64(0.5);
        for b in 0..2 {
            let v: [Complex<T>; 6] = std::array::from_fn(|k| psi[b * 6 + k]);
            let a = self.clover[s * 2 + b].mul_vec(&v);
            for k in 0..6 {
                let (sp, c) = (2 * b + k / 3, k % 3);
                out[b * 6 + k] = a[k] - acc[sp][c].scale(half);
            }
        }
    }

    /// Adds (1 + σ_f γ_μ) U_μ(x) ψ(x+μ̂) + (1 + σ_b γ_μ) U_μ†(x−μ̂) ψ(x−μ̂) to `acc`, with
    /// σ_f = −1, σ_b = +1 for D and the opposite for D†.
    #[inline(always)]
    fn hop<'a, const MU: usize, const DAG: bool>(
        &self,
        s: usize,
        acc: &mut [[Complex<T>; 3]; 4],
        neighbour: &impl Fn(usize) -> &'a [Complex<T>],
    ) {
        // Forward neighbour.
        let up = self.geom.up(s, MU);
        let h = project::<T, MU>(neighbour(up), !DAG);
        let u = &self.links[s * 4 + MU];
        let uh = [u.mul_vec(&h[0]), u.mul_vec(&h[1])];
        accumulate::<T, MU>(acc, &uh, !DAG);
        // Backward neighbour.
        let dn = self.geom.dn(s, MU);
        let h = project::<T, MU>(neighbour(dn), DAG);
        let u = &self.links[dn * 4 + MU];
        let uh = [u.adj_mul_vec(&h[0]), u.adj_mul_vec(&h[1])];
        accumulate::<T, MU>(acc, &uh, DAG);
    }
}

/// z · phase, phase index 0 = 1, 1 = i, 2 = −1, 3 = −i (no multiplications).
#[inline(always)]
fn times_phase<T: Real>(p: u8, z: Complex<T>) -> Complex<T> {
    match p & 3 {
        0 => z,
        1 => Complex::new(-z.im, z.re),
        2 => -z,
        _ => Complex::new(z.im, -z.re),
    }
}

/// Upper half (spins 0, 1) of (1 + σ γ_μ) ψ, σ = −1 when `minus`.
#[inline(always)]
fn project<T: Real, const MU: usize>(psi: &[Complex<T>], minus: bool) -> [[Complex<T>; 3]; 2] {
    let flip = if minus { 2 } else { 0 };
    std::array::from_fn(|r| {
        let (col, p) = HOP_TABLE[MU][r];
        std::array::from_fn(|c| psi[r * 3 + c] + times_phase(p + flip, psi[col * 3 + c]))
    })
}

/// Adds the full spinor (1 + σ γ_μ)-projected whose upper half is `uh`: the lower half is
/// χ_r = σ (γ_μ χ)_r = σ · phase_r · χ_{col_r} for r = 2, 3, because γ_μ χ = σ χ.
#[inline(always)]
fn accumulate<T: Real, const MU: usize>(
    acc: &mut [[Complex<T>; 3]; 4],
    uh: &[[Complex<T>; 3]; 2],
    minus: bool,
) {
    let flip = if minus { 2 } else { 0 };
    for c in 0..3 {
        acc[0][c] += uh[0][c];
        acc[1][c] += uh[1][c];
    }
    for r in 2..4 {
        let (col, p) = HOP_TABLE[MU][r];
        for c in 0..3 {
            acc[r][c] += times_phase(p + flip, uh[col][c]);
        }
    }
}

/// The clover-leaf sum Q_μν(x): the four plaquettes in the μν plane that start and end at x,
/// all with the orientation μ → ν.
pub fn clover_leaves(gauge: &GaugeField, x: usize, mu: usize, nu: usize) -> Su3<f64> {
    let g = &gauge.geom;
    let u = |s: usize, d: usize| *gauge.link(s, d);
    let xpm = g.up(x, mu);
    let xpn = g.up(x, nu);
    let xmm = g.dn(x, mu);
    let xmn = g.dn(x, nu);
    let xmm_pn = g.up(xmm, nu);
    let xmm_mn = g.dn(xmm, nu);
    let xpm_mn = g.dn(xpm, nu);
    let l1 = u(x, mu) * u(xpm, nu) * u(xpn, mu).adj() * u(x, nu).adj();
    let l2 = u(x, nu) * u(xmm_pn, mu).adj() * u(xmm, nu).adj() * u(xmm, mu);
    let l3 = u(xmm, mu).adj() * u(xmm_mn, nu).adj() * u(xmm_mn, mu) * u(xmn, nu);
    let l4 = u(xmn, nu).adj() * u(xmn, mu) * u(xpm_mn, nu) * u(x, mu).adj();
    l1 + l2 + l3 + l4
}

/// F_μν(x) = (Q_μν − Q_μν†) / 8 (anti-Hermitian, trace kept as in Grid/GPT).
pub fn field_strength(gauge: &GaugeField, x: usize, mu: usize, nu: usize) -> Su3<f64> {
    let q = clover_leaves(gauge, x, mu, nu);
    (q - q.adj()).scale(Complex64::new(0.125, 0.0))
}

/// The two dense 6×6 clover blocks A(x) of one site in f64, including the 4 + m diagonal.
pub fn clover_blocks_f64(
    gauge: &GaugeField,
    x: usize,
    mass: f64,
    csw: f64,
) -> [[[Complex64; 6]; 6]; 2] {
    let mut a = [[[Complex64::new(0.0, 0.0); 6]; 6]; 2];
    for blk in a.iter_mut() {
        for (i, row) in blk.iter_mut().enumerate() {
            row[i] = Complex64::new(4.0 + mass, 0.0);
        }
    }
    if csw == 0.0 {
        return a;
    }
    for mu in 0..4 {
        for nu in (mu + 1)..4 {
            let f = field_strength(gauge, x, mu, nu);
            let sg = gamma::half_commutator(mu, nu);
            // Σ_{μ,ν} counts each plane twice: −(c_sw/4)·2 = −c_sw/2 per μ < ν.
            let coef = -0.5 * csw;
            for (b, blk) in a.iter_mut().enumerate() {
                for s1 in 0..2 {
                    for s2 in 0..2 {
                        let g = sg[2 * b + s1][2 * b + s2];
                        if g == Complex64::new(0.0, 0.0) {
                            continue;
                        }
                        for c1 in 0..3 {
                            for c2 in 0..3 {
                                blk[s1 * 3 + c1][s2 * 3 + c2] += coef * g * f.m[c1][c2];
                            }
                        }
                    }
                }
            }
        }
    }
    a
}

fn pack_block<T: Real>(m: &[[Complex64; 6]; 6]) -> CloverBlock<T> {
    let mut b =
        CloverBlock { diag: [T::zero(); 6], upper: [Complex::new(T::zero(), T::zero()); 15] };
    for i in 0..6 {
        b.diag[i] = T::from_f64(m[i][i].re);
        for j in (i + 1)..6 {
            let z = m[i][j];
            b.upper[CloverBlock::<T>::upper_index(i, j)] =
                Complex::new(T::from_f64(z.re), T::from_f64(z.im));
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_index_enumerates_row_by_row() {
        let mut k = 0;
        for i in 0..6 {
            for j in (i + 1)..6 {
                assert_eq!(CloverBlock::<f64>::upper_index(i, j), k);
                k += 1;
            }
        }
        assert_eq!(k, 15);
    }
}
