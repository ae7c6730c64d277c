//! Even-odd (red-black, Schur) preconditioning of the Wilson-clover operator: the plain-Rust
//! reference that the compiled Schur kernels and `symc solve --evenodd` will be checked against.
//!
//! Why: the hopping term only connects sites of opposite parity (sum of coordinates mod 2), so
//! with sites ordered even first
//!
//! ```text
//! D = [ A_ee  D_eo ]      A = 4 + m + clover (site-local),   D_eo, D_oe = −½ · hopping,
//!     [ D_oe  A_oo ]
//! ```
//!
//! and eliminating the odd sites leaves the Schur complement on the even half of the lattice,
//!
//! ```text
//! D̂ = A_ee − D_eo A_oo⁻¹ D_oe,     D̂ x_e = b̂ = b_e − D_eo A_oo⁻¹ b_o,
//! x_o = A_oo⁻¹ (b_o − D_oe x_e).
//! ```
//!
//! Every production code solves this instead of D: the vectors are half as long, one D̂
//! application costs about one D application (two half-lattice hops, two clover blocks), and
//! the Krylov solvers need fewer than half the iterations because D̂ is better conditioned.
//! For A = a·1 this is exact: the hopping term H anticommutes with the parity sign (−1)^Σx, so
//! the eigenvalues of D = a − H/2 pair up as μ and 2a − μ, and D̂ = a − H_eo H_oe / 4a has the
//! eigenvalues μ(2a − μ)/a. The smallest |μ| is doubled while the largest (≈ 2a) folds down
//! to ≈ a: the ratio of the largest to the smallest eigenvalue shrinks about fourfold.
//!
//! # Which Schur operator
//!
//! Three equivalent forms exist ([`SchurVariant`]); they have the same solution and cost but
//! different spectra and residual norms:
//!
//! * [`Plain`](SchurVariant::Plain): D̂ = A_ee − D_eo A_oo⁻¹ D_oe (the "EO2-like" asymmetric
//!   form of issue 15). Its residual b̂ − D̂ x_e is *exactly* the even half of the full residual
//!   b − D x (the odd half vanishes by construction of x_o), so a reduced solve to
//!   tol · ‖b‖/‖b̂‖ guarantees the full-system tolerance. It is γ5-Hermitian like D.
//! * [`LeftNormalised`](SchurVariant::LeftNormalised): 1 − A_ee⁻¹ D_eo A_oo⁻¹ D_oe = A_ee⁻¹ D̂
//!   (GPT's `eo1`). The clover block-Jacobi makes the spectrum cluster around 1, but the solver
//!   now minimises A_ee⁻¹ r, so the full residual is only bounded through ‖A_ee‖ and the
//!   reduced tolerance must be tightened accordingly; it is not γ5-Hermitian.
//! * [`RightNormalised`](SchurVariant::RightNormalised): 1 − D_eo A_oo⁻¹ D_oe A_ee⁻¹ = D̂ A_ee⁻¹
//!   (GPT's `eo2`), for the unknown y = A_ee x_e. Clustered spectrum *and* the exact residual of
//!   `Plain`.
//!
//! The default is `RightNormalised`, by measurement: GMRES(30), BiCGStab and CGNE (f64, to a
//! full-system residual of 1e-8, mean over three random right-hand sides) on the 8⁴ β = 6.0
//! DDalphaAMG configuration at c_sw = 1 need these iterations
//! (`measure_full_vs_evenodd_solvers_on_ddalpha_8x8x8x8` in `tests/lattice_evenodd.rs`):
//!
//! ```text
//!                 m = −0.5                     m = −0.555
//!            full  Plain  Left  Right     full  Plain  Left  Right
//! GMRES(30)   314    139   137    133      541    214   208    201
//! BiCGStab    168     83    80     79      264    117   116    112
//! CGNE        425    152   139    135      456    164   152    145
//! ```
//!
//! Even-odd at least halves the count with any form. The clover-normalised forms beat `Plain`
//! (`RightNormalised` by 4–12 %, `LeftNormalised` by 1–8 %): A_ee⁻¹ removes the site-to-site
//! fluctuation of the clover term, a block-Jacobi step that clusters the spectrum around 1.
//! `RightNormalised` is ahead of `LeftNormalised` in every row, at least partly because
//! it keeps the exact residual while `LeftNormalised` has to over-solve to a tolerance
//! tightened by ‖A_ee‖ (it stops at full residuals near 6e-9). All three cost the same per
//! application. A
//! preconditioner for the reduced system of `RightNormalised` approximates (D̂ A_ee⁻¹)⁻¹ =
//! A_ee D̂⁻¹, not D̂⁻¹; use `Plain` where that matters.
//!
//! # Conventions
//!
//! Half-lattice vectors hold 12 complex numbers per half-site, `k * 12 + spin * 3 + colour`,
//! where half-site k of a parity is the k-th site of that parity in lexicographic
//! ([`Geometry`]) order ([`Checkerboard`]). The checkerboard exists only if every extent is
//! even: with an odd extent the periodic wrap connects two sites of the same parity, and D has
//! no even-odd block structure at all.
//!
//! Everything is built from [`WilsonClover`]: its links (boundary phases folded in), its hop
//! kernel (`WilsonClover::hopping_at`, crate-private) and its clover blocks, plus the
//! [`CloverInverse`] of those blocks. This module only restricts and composes; it defines no
//! physics of its own. Bad input (odd extents, a singular clover block, a vector of the wrong
//! length) is an [`EvenOddError`].

use super::Real;
use super::clover::{CloverError, CloverInverse};
use super::fermion::norm;
use super::gauge::GaugeField;
use super::geometry::Geometry;
use super::wilson::{CloverBlock, DiracParams, WilsonClover};
use num_complex::Complex;
use rayon::prelude::*;
use std::sync::Mutex;

/// Half-sites per rayon task (as in the full operator: amortises scheduling, balances 2 cores).
const SITES_PER_TASK: usize = 64;

/// Everything that can go wrong setting up or applying the even-odd operators.
#[derive(Debug, Clone, PartialEq, thiserror::Error, miette::Diagnostic)]
pub enum EvenOddError {
    #[error(
        "even-odd preconditioning needs even lattice extents, got {}×{}×{}×{}",
        dims[0], dims[1], dims[2], dims[3]
    )]
    #[diagnostic(
        code(symc::evenodd::odd_extent),
        help(
            "with an odd extent the periodic wrap joins two sites of the same parity, so D has \
             no even-odd block structure; solve without even-odd preconditioning"
        )
    )]
    OddExtent { dims: [usize; 4] },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Clover(#[from] CloverError),

    #[error("{what}: expected a vector of length {expected}, got {found}")]
    #[diagnostic(code(symc::evenodd::length))]
    VectorLength { what: &'static str, expected: usize, found: usize },

    #[error("the clover inverse covers {inverse} sites but the operator has {operator}")]
    #[diagnostic(code(symc::evenodd::volume_mismatch))]
    VolumeMismatch { operator: usize, inverse: usize },
}

/// An (even, odd) pair of half-lattice vectors.
pub type Halves<T> = (Vec<Complex<T>>, Vec<Complex<T>>);

/// The parity of a site: the sum of its coordinates mod 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Parity {
    Even = 0,
    Odd = 1,
}

impl Parity {
    /// The opposite parity (where a hop from this one lands).
    pub fn other(self) -> Parity {
        match self {
            Parity::Even => Parity::Odd,
            Parity::Odd => Parity::Even,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The even-odd split of a lattice: which sites are even or odd and where each one sits in its
/// half-lattice vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkerboard {
    dims: [usize; 4],
    /// `sites[parity][k]` = full-lattice index of half-site k, increasing.
    sites: [Vec<u32>; 2],
    /// `half_index[site]` = position of `site` among the sites of its parity.
    half_index: Vec<u32>,
    parity: Vec<Parity>,
}

impl Checkerboard {
    /// The checkerboard of `geom`; an error if any extent is odd.
    pub fn new(geom: &Geometry) -> Result<Self, EvenOddError> {
        let dims = geom.dims;
        if dims.iter().any(|d| d % 2 != 0) {
            return Err(EvenOddError::OddExtent { dims });
        }
        let vol = geom.volume();
        let mut sites = [Vec::with_capacity(vol / 2), Vec::with_capacity(vol / 2)];
        let mut half_index = Vec::with_capacity(vol);
        let mut parity = Vec::with_capacity(vol);
        for s in 0..vol {
            let p = if geom.parity(s) == 0 { Parity::Even } else { Parity::Odd };
            // Geometry caps the volume at u32, so these fit.
            half_index.push(sites[p.index()].len() as u32);
            sites[p.index()].push(s as u32);
            parity.push(p);
        }
        Ok(Checkerboard { dims, sites, half_index, parity })
    }

    /// Lattice extents.
    pub fn dims(&self) -> [usize; 4] {
        self.dims
    }

    /// Number of lattice sites V.
    pub fn volume(&self) -> usize {
        self.parity.len()
    }

    /// Sites of one parity, V / 2.
    pub fn half_volume(&self) -> usize {
        self.sites[0].len()
    }

    /// Length of a half-lattice fermion vector, 12 · V / 2.
    pub fn half_len(&self) -> usize {
        self.half_volume() * 12
    }

    /// The parity of a full-lattice site.
    pub fn parity(&self, site: usize) -> Parity {
        self.parity[site]
    }

    /// Full-lattice indices of the sites of `parity`, in half-site order.
    pub fn sites(&self, parity: Parity) -> &[u32] {
        &self.sites[parity.index()]
    }

    /// The position of a full-lattice site within the half-lattice vector of its parity.
    pub fn half_index(&self, site: usize) -> usize {
        self.half_index[site] as usize
    }

    /// Splits a full-lattice vector (12 V) into its (even, odd) halves.
    pub fn split<T: Real>(&self, full: &[Complex<T>]) -> Result<Halves<T>, EvenOddError> {
        check_len("checkerboard split", self.volume() * 12, full.len())?;
        let half = |p: Parity| {
            self.sites(p)
                .iter()
                .flat_map(|&s| full[s as usize * 12..s as usize * 12 + 12].iter().copied())
                .collect()
        };
        Ok((half(Parity::Even), half(Parity::Odd)))
    }

    /// Joins (even, odd) halves into a full-lattice vector.
    pub fn merge<T: Real>(
        &self,
        even: &[Complex<T>],
        odd: &[Complex<T>],
    ) -> Result<Vec<Complex<T>>, EvenOddError> {
        check_len("checkerboard merge (even half)", self.half_len(), even.len())?;
        check_len("checkerboard merge (odd half)", self.half_len(), odd.len())?;
        let mut full = vec![Complex::new(T::zero(), T::zero()); self.volume() * 12];
        for (s, chunk) in full.chunks_exact_mut(12).enumerate() {
            let k = self.half_index(s) * 12;
            let src = if self.parity(s) == Parity::Even { even } else { odd };
            chunk.copy_from_slice(&src[k..k + 12]);
        }
        Ok(full)
    }
}

fn check_len(what: &'static str, expected: usize, found: usize) -> Result<(), EvenOddError> {
    if expected == found {
        Ok(())
    } else {
        Err(EvenOddError::VectorLength { what, expected, found })
    }
}

/// Both chirality blocks of one site applied to its 12 components.
#[inline(always)]
fn mul_site<T: Real>(blocks: &[CloverBlock<T>], site: usize, v: &[Complex<T>]) -> [Complex<T>; 12] {
    let mut o = [Complex::new(T::zero(), T::zero()); 12];
    for b in 0..2 {
        let half: [Complex<T>; 6] = std::array::from_fn(|k| v[b * 6 + k]);
        o[b * 6..b * 6 + 6].copy_from_slice(&blocks[site * 2 + b].mul_vec(&half));
    }
    o
}

/// The even-odd blocks of D: A_ee, A_oo, their inverses, and D_eo, D_oe (and the blocks of D†),
/// all on half-lattice vectors.
#[derive(Clone, Debug)]
pub struct EvenOdd<T: Real> {
    wilson: WilsonClover<T>,
    inverse: CloverInverse<T>,
    board: Checkerboard,
}

impl<T: Real> EvenOdd<T> {
    /// Builds D in precision `T` and the clover inverse (computed in f64, rounded to `T`).
    /// Checks the extents first, so an odd lattice costs nothing.
    pub fn new(gauge: &GaugeField, params: &DiracParams) -> Result<Self, EvenOddError> {
        let board = Checkerboard::new(&gauge.geom)?;
        let inverse = CloverInverse::new(gauge, params)?;
        let wilson = WilsonClover::new(gauge, params);
        Ok(EvenOdd { wilson, inverse, board })
    }

    /// From an existing operator and the inverse of its clover blocks (e.g. one inverse shared
    /// by an f64 and an f32 operator through [`CloverInverse::cast`]). The inverse must belong
    /// to the same gauge field, mass and c_sw; only the volume can be checked here.
    pub fn from_parts(
        wilson: WilsonClover<T>,
        inverse: CloverInverse<T>,
    ) -> Result<Self, EvenOddError> {
        let board = Checkerboard::new(wilson.geometry())?;
        if inverse.volume() != wilson.volume() {
            return Err(EvenOddError::VolumeMismatch {
                operator: wilson.volume(),
                inverse: inverse.volume(),
            });
        }
        Ok(EvenOdd { wilson, inverse, board })
    }

    /// The full operator D the blocks come from.
    pub fn wilson(&self) -> &WilsonClover<T> {
        &self.wilson
    }

    /// A(x)⁻¹ for every site.
    pub fn clover_inverse(&self) -> &CloverInverse<T> {
        &self.inverse
    }

    /// The site ↔ half-site maps.
    pub fn checkerboard(&self) -> &Checkerboard {
        &self.board
    }

    /// Length of a half-lattice vector (6 V).
    pub fn half_len(&self) -> usize {
        self.board.half_len()
    }

    /// out = A_pp inp (the clover term, with 4 + m, on the sites of `parity`).
    pub fn apply_diagonal(
        &self,
        parity: Parity,
        out: &mut [Complex<T>],
        inp: &[Complex<T>],
    ) -> Result<(), EvenOddError> {
        self.check_pair("diagonal block A_pp", out, inp)?;
        self.site_local(parity, self.wilson.clover_packed(), out, inp);
        Ok(())
    }

    /// out = A_pp⁻¹ inp.
    pub fn apply_diagonal_inverse(
        &self,
        parity: Parity,
        out: &mut [Complex<T>],
        inp: &[Complex<T>],
    ) -> Result<(), EvenOddError> {
        self.check_pair("inverse diagonal block A_pp⁻¹", out, inp)?;
        self.site_local(parity, self.inverse.blocks(), out, inp);
        Ok(())
    }

    /// out = D_{to, other} inp: the hopping term −½ H from the sites of the other parity (`inp`)
    /// to the sites of `to` (`out`). `to = Even` is D_eo, `to = Odd` is D_oe.
    pub fn apply_hopping(
        &self,
        to: Parity,
        out: &mut [Complex<T>],
        inp: &[Complex<T>],
    ) -> Result<(), EvenOddError> {
        self.check_pair("hopping block D_eo/D_oe", out, inp)?;
        self.hop(to, false, out, inp, |_, _, h| h);
        Ok(())
    }

    /// out = (D†)_{to, other} inp, the block of D† = γ5 D γ5; note (D†)_eo = (D_oe)†.
    pub fn apply_hopping_dagger(
        &self,
        to: Parity,
        out: &mut [Complex<T>],
        inp: &[Complex<T>],
    ) -> Result<(), EvenOddError> {
        self.check_pair("hopping block (D†)_eo/(D†)_oe", out, inp)?;
        self.hop(to, true, out, inp, |_, _, h| h);
        Ok(())
    }

    fn check_pair(
        &self,
        what: &'static str,
        out: &[Complex<T>],
        inp: &[Complex<T>],
    ) -> Result<(), EvenOddError> {
        check_len(what, self.half_len(), out.len())?;
        check_len(what, self.half_len(), inp.len())
    }

    /// out[k] = B(s) inp[k] with B = `blocks` at the full site s of half-site k.
    fn site_local(
        &self,
        parity: Parity,
        blocks: &[CloverBlock<T>],
        out: &mut [Complex<T>],
        inp: &[Complex<T>],
    ) {
        let sites = self.board.sites(parity);
        out.par_chunks_mut(12).zip(inp.par_chunks(12)).enumerate().for_each(|(k, (o, i))| {
            o.copy_from_slice(&mul_site(blocks, sites[k] as usize, i));
        });
    }

    /// For every half-site k of parity `to` (full site s): h = −½ (H inp)(s), hopping from the
    /// half-lattice vector `inp` of the other parity (H† when `dagger`), then
    /// out[k] = finish(k, s, h). Lengths are checked by the callers.
    fn hop(
        &self,
        to: Parity,
        dagger: bool,
        out: &mut [Complex<T>],
        inp: &[Complex<T>],
        finish: impl Fn(usize, usize, [Complex<T>; 12]) -> [Complex<T>; 12] + Sync,
    ) {
        let sites = self.board.sites(to);
        let board = &self.board;
        let neighbour = |n: usize| {
            let k = board.half_index(n) * 12;
            &inp[k..k + 12]
        };
        let minus_half = T::from_f64(-0.5);
        out.par_chunks_mut(12 * SITES_PER_TASK).enumerate().for_each(|(task, chunk)| {
            for (j, o) in chunk.chunks_exact_mut(12).enumerate() {
                let k = task * SITES_PER_TASK + j;
                let s = sites[k] as usize;
                let h = self.wilson.hopping_at(s, dagger, neighbour).map(|z| z.scale(minus_half));
                o.copy_from_slice(&finish(k, s, h));
            }
        });
    }

    /// out = K v with K = D_eo A_oo⁻¹ D_oe (or its adjoint (D†)_eo A_oo⁻¹ (D†)_oe when
    /// `dagger`), then out[k] = finish(k, s, (K v)[k]); `odd` is scratch.
    fn coupling(
        &self,
        dagger: bool,
        out: &mut [Complex<T>],
        v: &[Complex<T>],
        odd: &mut [Complex<T>],
        finish: impl Fn(usize, usize, [Complex<T>; 12]) -> [Complex<T>; 12] + Sync,
    ) {
        let inv = self.inverse.blocks();
        self.hop(Parity::Odd, dagger, odd, v, |_, s, h| mul_site(inv, s, &h));
        self.hop(Parity::Even, dagger, out, odd, finish);
    }
}

/// The three algebraically equivalent Schur operators on the even sites (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchurVariant {
    /// D̂ = A_ee − D_eo A_oo⁻¹ D_oe; unknown x_e.
    Plain,
    /// A_ee⁻¹ D̂ = 1 − A_ee⁻¹ D_eo A_oo⁻¹ D_oe (GPT `eo1`); unknown x_e, right-hand side A_ee⁻¹ b̂.
    LeftNormalised,
    /// D̂ A_ee⁻¹ = 1 − D_eo A_oo⁻¹ D_oe A_ee⁻¹ (GPT `eo2`); unknown y = A_ee x_e.
    RightNormalised,
}

impl Default for SchurVariant {
    /// [`RightNormalised`](SchurVariant::RightNormalised): fewest iterations, exact residual
    /// (measurements in the module doc).
    fn default() -> Self {
        SchurVariant::RightNormalised
    }
}

/// The Schur-complement operator on even half-lattice vectors, with the maps between the full
/// system D x = b and the reduced one ([`prepare`](Self::prepare),
/// [`reconstruct`](Self::reconstruct)). Implements [`LinearOperator`] and [`AdjointOperator`]
/// so every solver of `solve` runs on it unchanged.
#[derive(Debug)]
pub struct Schur<T: Real> {
    eo: EvenOdd<T>,
    variant: SchurVariant,
    /// ‖A_ee‖₂ ≤ max over even blocks of the largest row sum (Hermitian: ‖·‖₂ ≤ ‖·‖∞); only
    /// [`SchurVariant::LeftNormalised`] needs it, to bound the full residual by the reduced one.
    a_ee_norm: f64,
    /// (even, odd) half-lattice scratch vectors, so that applying allocates nothing. The lock
    /// is uncontended: solvers apply the operator from one thread.
    scratch: Mutex<Halves<T>>,
}

impl<T: Real> Schur<T> {
    /// Wraps the even-odd blocks as the Schur operator of the given variant.
    pub fn new(eo: EvenOdd<T>, variant: SchurVariant) -> Self {
        let blocks = eo.wilson.clover_packed();
        let a_ee_norm = eo
            .board
            .sites(Parity::Even)
            .iter()
            .flat_map(|&s| [&blocks[s as usize * 2], &blocks[s as usize * 2 + 1]])
            .map(|b| {
                b.to_dense()
                    .iter()
                    .map(|row| row.iter().map(|z| z.norm().to_f64()).sum::<f64>())
                    .fold(0.0, f64::max)
            })
            .fold(0.0, f64::max);
        let z = Complex::new(T::zero(), T::zero());
        let n = eo.half_len();
        Schur { eo, variant, a_ee_norm, scratch: Mutex::new((vec![z; n], vec![z; n])) }
    }

    /// The blocks the operator is made of.
    pub fn even_odd(&self) -> &EvenOdd<T> {
        &self.eo
    }

    /// Which form of the Schur complement this is.
    pub fn variant(&self) -> SchurVariant {
        self.variant
    }

    /// Length of the reduced vectors (6 V).
    pub fn half_len(&self) -> usize {
        self.eo.half_len()
    }

    /// out = D̂ inp (in this variant's form) on even half-lattice vectors.
    pub fn try_apply(
        &self,
        out: &mut [Complex<T>],
        inp: &[Complex<T>],
    ) -> Result<(), EvenOddError> {
        self.apply_impl(false, out, inp)
    }

    /// out = D̂† inp.
    pub fn try_apply_dagger(
        &self,
        out: &mut [Complex<T>],
        inp: &[Complex<T>],
    ) -> Result<(), EvenOddError> {
        self.apply_impl(true, out, inp)
    }

    /// With K = D_eo A_oo⁻¹ D_oe and K† = (D†)_eo A_oo⁻¹ (D†)_oe (A is Hermitian):
    /// Plain A − K, Left 1 − A⁻¹K, Right 1 − K A⁻¹, and the adjoints A − K†, 1 − K† A⁻¹,
    /// 1 − A⁻¹ K†.
    fn apply_impl(
        &self,
        dagger: bool,
        out: &mut [Complex<T>],
        x: &[Complex<T>],
    ) -> Result<(), EvenOddError> {
        self.eo.check_pair("Schur operator", out, x)?;
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let (even, odd) = &mut *guard;
        let a = self.eo.wilson.clover_packed();
        let ainv = self.eo.inverse.blocks();
        // Whether A⁻¹ acts before K (then K sees A⁻¹ x) or after it (on K x).
        let inverse_first = matches!(
            (self.variant, dagger),
            (SchurVariant::RightNormalised, false) | (SchurVariant::LeftNormalised, true)
        );
        let inverse_after = matches!(
            (self.variant, dagger),
            (SchurVariant::LeftNormalised, false) | (SchurVariant::RightNormalised, true)
        );
        let minus = |xk: &[Complex<T>], w: [Complex<T>; 12]| -> [Complex<T>; 12] {
            std::array::from_fn(|i| xk[i] - w[i])
        };
        let xk = |k: usize| &x[k * 12..k * 12 + 12];
        if self.variant == SchurVariant::Plain {
            self.eo.coupling(dagger, out, x, odd, |k, s, kx| minus(&mul_site(a, s, xk(k)), kx));
        } else if inverse_first {
            self.eo.site_local(Parity::Even, ainv, even, x);
            self.eo.coupling(dagger, out, even, odd, |k, _, kx| minus(xk(k), kx));
        } else {
            debug_assert!(inverse_after);
            self.eo.coupling(dagger, out, x, odd, |k, s, kx| minus(xk(k), mul_site(ainv, s, &kx)));
        }
        Ok(())
    }

    /// The reduced right-hand side from a full one b (12 V): b̂ = b_e − D_eo A_oo⁻¹ b_o, times
    /// A_ee⁻¹ for [`SchurVariant::LeftNormalised`].
    pub fn prepare(&self, b: &[Complex<T>]) -> Result<Vec<Complex<T>>, EvenOddError> {
        let (b_e, b_o) = self.eo.board.split(b)?;
        let n = self.half_len();
        let z = Complex::new(T::zero(), T::zero());
        let mut t = vec![z; n];
        self.eo.site_local(Parity::Odd, self.eo.inverse.blocks(), &mut t, &b_o);
        let mut bhat = vec![z; n];
        let ainv = self.eo.inverse.blocks();
        let left = self.variant == SchurVariant::LeftNormalised;
        self.eo.hop(Parity::Even, false, &mut bhat, &t, |k, s, h| {
            let r: [Complex<T>; 12] = std::array::from_fn(|i| b_e[k * 12 + i] - h[i]);
            if left { mul_site(ainv, s, &r) } else { r }
        });
        Ok(bhat)
    }

    /// The reduced unknown corresponding to a full-lattice initial guess x (12 V): x_e, or
    /// A_ee x_e for [`SchurVariant::RightNormalised`].
    pub fn initial_guess(&self, x: &[Complex<T>]) -> Result<Vec<Complex<T>>, EvenOddError> {
        let (x_e, _) = self.eo.board.split(x)?;
        if self.variant != SchurVariant::RightNormalised {
            return Ok(x_e);
        }
        let mut y = vec![Complex::new(T::zero(), T::zero()); x_e.len()];
        self.eo.site_local(Parity::Even, self.eo.wilson.clover_packed(), &mut y, &x_e);
        Ok(y)
    }

    /// The full solution (12 V) from the reduced one `u` and the full right-hand side b:
    /// x_e = u (or A_ee⁻¹ u for [`SchurVariant::RightNormalised`]),
    /// x_o = A_oo⁻¹ (b_o − D_oe x_e).
    pub fn reconstruct(
        &self,
        u: &[Complex<T>],
        b: &[Complex<T>],
    ) -> Result<Vec<Complex<T>>, EvenOddError> {
        check_len("Schur reconstruct (reduced solution)", self.half_len(), u.len())?;
        let (_, b_o) = self.eo.board.split(b)?;
        let ainv = self.eo.inverse.blocks();
        let x_e = if self.variant == SchurVariant::RightNormalised {
            let mut x_e = vec![Complex::new(T::zero(), T::zero()); u.len()];
            self.eo.site_local(Parity::Even, ainv, &mut x_e, u);
            x_e
        } else {
            u.to_vec()
        };
        let mut x_o = vec![Complex::new(T::zero(), T::zero()); u.len()];
        self.eo.hop(Parity::Odd, false, &mut x_o, &x_e, |k, s, h| {
            let r: [Complex<T>; 12] = std::array::from_fn(|i| b_o[k * 12 + i] - h[i]);
            mul_site(ainv, s, &r)
        });
        self.eo.board.merge(&x_e, &x_o)
    }

    /// The relative tolerance for the reduced solve that guarantees ‖b − D x‖/‖b‖ ≤ `tol` for
    /// the reconstructed x (up to rounding in [`reconstruct`](Self::reconstruct)). For `Plain`
    /// and `RightNormalised` the reduced residual is exactly the even half of the full one (the
    /// odd half is zero), so the tolerance is rescaled from ‖b‖ to ‖b̂‖; for `LeftNormalised` the
    /// reduced residual is A_ee⁻¹ times it, so it is divided further by a bound on ‖A_ee‖₂.
    pub fn reduced_tolerance(&self, tol: f64, b: &[Complex<T>], b_hat: &[Complex<T>]) -> f64 {
        let (nb, nbhat) = (norm(b), norm(b_hat));
        if nbhat == 0.0 {
            return tol;
        }
        tol * nb / (nbhat * self.tolerance_scale())
    }

    /// What the reduced tolerance is divided by besides ‖b̂‖/‖b‖: the bound on ‖A_ee‖ for
    /// `LeftNormalised` (whose solver minimises A_ee⁻¹ r), 1 for the exact-residual forms.
    pub fn tolerance_scale(&self) -> f64 {
        match self.variant {
            SchurVariant::LeftNormalised => self.a_ee_norm,
            _ => 1.0,
        }
    }
}
