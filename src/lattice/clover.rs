//! The inverse of the site-local clover term, A(x)⁻¹, as two packed Hermitian 6×6 blocks per site.
//!
//! Even-odd (Schur) preconditioning ([`evenodd`](super::evenodd)) divides by the diagonal blocks
//! A_oo (and A_ee), so A(x)⁻¹ is needed at every site, once per gauge field and (m, c_sw). It
//! has the structure of A (physics.md §1.4): A commutes with γ5, so it is block-diagonal in the
//! two chiralities, and each block is Hermitian; the inverse is stored in the same
//! [`CloverBlock`] packing (72 reals per site) and applied with the same code.
//!
//! The inversion is always done in f64, whatever precision the inverse is wanted in: an f32
//! inverse is the f64 one rounded, not an inverse computed in f32. The method is Gauss–Jordan
//! elimination with partial pivoting on the dense 6×6 block, not Cholesky: A is Hermitian but
//! only positive definite for 4 + m larger than the spread of the clover term; at the strongly
//! negative masses near criticality (or for rough gauge fields) a block can be indefinite, where
//! Cholesky fails although the block is perfectly invertible. The result is made exactly
//! Hermitian by packing (A⁻¹_ij + conj(A⁻¹_ji)) / 2, which only removes rounding noise.
//!
//! A block that is singular, or so ill-conditioned that its inverse is meaningless in f64
//! (1-norm condition number above [`MAX_CONDITION`]), is reported as a [`CloverError`] naming
//! the site and chirality, never returned as infinities or NaNs.

use super::Real;
use super::gauge::GaugeField;
use super::wilson::{CloverBlock, DiracParams, clover_blocks_f64};
use num_complex::{Complex, Complex64};
use rayon::prelude::*;

/// Largest accepted 1-norm condition number ‖A‖₁‖A⁻¹‖₁ of a 6×6 clover block. Beyond it, the
/// inverse has lost at least 12 of f64's 16 digits, which no solve to 1e-8 can survive: the
/// block is numerically singular (the mass sits on an eigenvalue of −clover at that site).
pub const MAX_CONDITION: f64 = 1e12;

/// Why a clover block could not be inverted.
#[derive(Debug, Clone, PartialEq, thiserror::Error, miette::Diagnostic)]
pub enum CloverError {
    #[error(
        "the clover block at site {site}, chirality {chirality} is singular (1-norm condition \
         number {condition:.3e} > {max:.0e}); A(x) = 4 + m + clover has an eigenvalue at 0 there",
        max = MAX_CONDITION
    )]
    #[diagnostic(
        code(symc::clover::singular),
        help(
            "the bare mass is (almost) exactly at minus an eigenvalue of 4 + clover at this site; \
             move the mass slightly, or solve without even-odd preconditioning"
        )
    )]
    Singular {
        site: usize,
        chirality: usize,
        /// The estimated condition number (infinite for an exactly singular block).
        condition: f64,
    },

    #[error("the clover block at site {site}, chirality {chirality} has non-finite entries")]
    #[diagnostic(
        code(symc::clover::not_finite),
        help("the gauge field or the parameters contain NaN or infinity")
    )]
    NotFinite { site: usize, chirality: usize },
}

/// Why a single block could not be inverted (no position; [`CloverInverse`] adds it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BlockError {
    /// Singular or beyond [`MAX_CONDITION`]; the estimated 1-norm condition number.
    Singular(f64),
    /// An input entry is NaN or infinite.
    NotFinite,
}

impl BlockError {
    fn at(self, site: usize, chirality: usize) -> CloverError {
        match self {
            BlockError::Singular(condition) => CloverError::Singular { site, chirality, condition },
            BlockError::NotFinite => CloverError::NotFinite { site, chirality },
        }
    }
}

/// A(x)⁻¹ for every site, `blocks()[site * 2 + chirality]`, in precision `T` (computed in f64).
#[derive(Clone, Debug, PartialEq)]
pub struct CloverInverse<T: Real> {
    blocks: Vec<CloverBlock<T>>,
}

impl<T: Real> CloverInverse<T> {
    /// Builds the clover term of `gauge` at (`params.mass`, `params.csw`) in f64 (the same
    /// [`clover_blocks_f64`] that [`WilsonClover`](super::wilson::WilsonClover) uses) and inverts
    /// every block. The boundary phases do not enter: the clover term is built from unphased
    /// links.
    pub fn new(gauge: &GaugeField, params: &DiracParams) -> Result<Self, CloverError> {
        let vol = gauge.geom.volume();
        let blocks: Result<Vec<CloverBlock<T>>, CloverError> = (0..vol)
            .into_par_iter()
            .flat_map_iter(|s| {
                let dense = clover_blocks_f64(gauge, s, params.mass, params.csw);
                (0..2).map(move |chi| {
                    invert_dense(&dense[chi]).map(|inv| cast_block(&inv)).map_err(|e| e.at(s, chi))
                })
            })
            .collect();
        Ok(CloverInverse { blocks: blocks? })
    }

    /// Inverts packed f64 blocks (`blocks[site * 2 + chirality]`, e.g.
    /// [`WilsonClover::<f64>::clover_packed`](super::wilson::WilsonClover::clover_packed)).
    pub fn from_blocks(blocks: &[CloverBlock<f64>]) -> Result<Self, CloverError> {
        let inv: Result<Vec<CloverBlock<T>>, CloverError> = blocks
            .par_iter()
            .enumerate()
            .map(|(k, b)| invert_block(b).map(|i| cast_block(&i)).map_err(|e| e.at(k / 2, k % 2)))
            .collect();
        Ok(CloverInverse { blocks: inv? })
    }

    /// The inverse blocks, `blocks()[site * 2 + chirality]`.
    pub fn blocks(&self) -> &[CloverBlock<T>] {
        &self.blocks
    }

    /// Number of lattice sites covered.
    pub fn volume(&self) -> usize {
        self.blocks.len() / 2
    }

    /// The same inverse rounded to another precision (the f32 copy of an f64 inverse).
    pub fn cast<U: Real>(&self) -> CloverInverse<U> {
        CloverInverse { blocks: self.blocks.iter().map(cast_block).collect() }
    }

    /// out = A⁻¹ inp on full-lattice vectors (12 V).
    pub fn apply(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) -> Result<(), LengthError> {
        let n = self.volume() * 12;
        if out.len() != n || inp.len() != n {
            return Err(LengthError { expected: n, out: out.len(), inp: inp.len() });
        }
        out.par_chunks_mut(12).zip(inp.par_chunks(12)).enumerate().for_each(|(s, (o, i))| {
            for b in 0..2 {
                let v: [Complex<T>; 6] = std::array::from_fn(|k| i[b * 6 + k]);
                o[b * 6..b * 6 + 6].copy_from_slice(&self.blocks[s * 2 + b].mul_vec(&v));
            }
        });
        Ok(())
    }
}

/// A vector of the wrong length was passed to [`CloverInverse::apply`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("clover inverse: vectors must have length 12 V = {expected} (got out {out}, in {inp})")]
pub struct LengthError {
    pub expected: usize,
    pub out: usize,
    pub inp: usize,
}

/// The inverse of one packed Hermitian block, packed the same way.
pub fn invert_block(b: &CloverBlock<f64>) -> Result<CloverBlock<f64>, BlockError> {
    invert_dense(&b.to_dense())
}

type Dense = [[Complex64; 6]; 6];

/// Gauss–Jordan with partial pivoting on a Hermitian 6×6 matrix, returning the Hermitian part
/// of the computed inverse, packed.
fn invert_dense(a: &Dense) -> Result<CloverBlock<f64>, BlockError> {
    if a.iter().flatten().any(|z| !z.re.is_finite() || !z.im.is_finite()) {
        return Err(BlockError::NotFinite);
    }
    let norm1 = norm_1(a);
    let zero = Complex64::new(0.0, 0.0);
    let mut m = *a;
    let mut inv: Dense = std::array::from_fn(|i| {
        std::array::from_fn(|j| if i == j { Complex64::new(1.0, 0.0) } else { zero })
    });
    for col in 0..6 {
        // Partial pivoting: the largest remaining entry of this column.
        let piv =
            (col..6).max_by(|&i, &j| m[i][col].norm().total_cmp(&m[j][col].norm())).unwrap_or(col);
        if m[piv][col] == zero {
            return Err(BlockError::Singular(f64::INFINITY));
        }
        m.swap(col, piv);
        inv.swap(col, piv);
        let d = Complex64::new(1.0, 0.0) / m[col][col];
        for k in 0..6 {
            m[col][k] *= d;
            inv[col][k] *= d;
        }
        for r in 0..6 {
            if r == col {
                continue;
            }
            let f = m[r][col];
            if f == zero {
                continue;
            }
            for k in 0..6 {
                let (mk, ik) = (m[col][k], inv[col][k]);
                m[r][k] -= f * mk;
                inv[r][k] -= f * ik;
            }
        }
    }
    let condition = norm1 * norm_1(&inv);
    if !condition.is_finite() || condition > MAX_CONDITION {
        return Err(BlockError::Singular(condition));
    }
    let mut out = CloverBlock { diag: [0.0; 6], upper: [zero; 15] };
    for i in 0..6 {
        out.diag[i] = inv[i][i].re;
        for j in (i + 1)..6 {
            out.upper[CloverBlock::<f64>::upper_index(i, j)] = (inv[i][j] + inv[j][i].conj()) * 0.5;
        }
    }
    Ok(out)
}

/// The matrix 1-norm (largest column sum of moduli).
fn norm_1(a: &Dense) -> f64 {
    (0..6).map(|j| (0..6).map(|i| a[i][j].norm()).sum::<f64>()).fold(0.0, f64::max)
}

fn cast_block<T: Real, U: Real>(b: &CloverBlock<T>) -> CloverBlock<U> {
    CloverBlock {
        diag: b.diag.map(|d| U::from_f64(d.to_f64())),
        upper: b
            .upper
            .map(|z| Complex::new(U::from_f64(z.re.to_f64()), U::from_f64(z.im.to_f64()))),
    }
}
