//! Block decomposition of the lattice and the block-orthonormal near-null basis of a two-level
//! multigrid (models.md §1.6, §2.4): restriction P† and prolongation P in plain Rust.
//!
//! Why it exists: the coarse space of every multigrid preconditioner in symc (the classical
//! two-level MG and the neural MG model M(b) = Smoother([b, P M_c(P† b)])) is defined here,
//! once. The lattice is cut into equal blocks (e.g. 4⁴ on 8³×16 gives the 2×2×2×4 coarse
//! lattice); on each block X the basis vectors ū_k restricted to X are orthonormal, so
//!
//! ```text
//! (P† ψ)_k(X) = Σ_{x∈X} ū_k(x)† ψ(x)          (restriction, "project")
//! (P χ)(x)    = Σ_k ū_k(x) χ_k(X(x))           (prolongation, "promote")
//! ```
//!
//! are each other's adjoints and P†P = 1 on the coarse space. A coarse vector is
//! `coarse[X * n_basis + k]`, coarse sites in [`Geometry`] order of the coarse lattice.
//!
//! **Chirality doubling** (DDalphaAMG): each start vector v gives the two vectors
//! (1 ± γ5)/2 v, each orthonormalised with its own chirality. Then γ5 P = P Γ5 with
//! Γ5 = diag(+1 … +1, −1 … −1) on the coarse space, and the Galerkin operator P† D P inherits
//! γ5-hermiticity: D_c† = Γ5 D_c Γ5. The first `n_basis/2` vectors have γ5 = +1 (spins 0, 1 of
//! the chiral basis), the last `n_basis/2` have γ5 = −1.
//!
//! The restriction and prolongation here are deliberately naive: they are the oracle the JIT
//! kernels (`codegen::block`) are tested against and share no code with them.

use super::fermion::SITE_LEN;
use super::gauge::GaugeField;
use super::geometry::Geometry;
use num_complex::Complex64;
use rayon::prelude::*;

/// What is wrong with a block decomposition or a basis. Every variant is a user error (a
/// command-line or model value), reported with the numbers that do not fit.
#[derive(Clone, Debug, PartialEq, thiserror::Error, miette::Diagnostic)]
pub enum BlockError {
    #[error(
        "block extents {block:?} do not tile the lattice {dims:?}: every block extent must be positive and divide the lattice extent in its direction (direction {direction} fails)"
    )]
    #[diagnostic(code(symc::multigrid::blocks))]
    NotTiling { dims: [usize; 4], block: [usize; 4], direction: usize },

    #[error(
        "a basis of {n_basis} vectors does not fit in a block of {sites} sites: a block carries at most 12 x {sites} = {dof} degrees of freedom{per}"
    )]
    #[diagnostic(code(symc::multigrid::basis_size))]
    BasisTooLarge { n_basis: usize, sites: usize, dof: usize, per: &'static str },

    #[error("the basis must have at least one vector{0}")]
    #[diagnostic(code(symc::multigrid::basis_size))]
    EmptyBasis(&'static str),

    #[error("a chirality-doubled basis needs an even number of vectors, got {0}")]
    #[diagnostic(code(symc::multigrid::basis_size))]
    OddChiralBasis(usize),

    #[error("basis vector {vector} has {found} complex components, the lattice needs {expected}")]
    #[diagnostic(code(symc::multigrid::basis_shape))]
    WrongLength { vector: usize, expected: usize, found: usize },

    #[error(
        "basis vector {vector} is linearly dependent on the previous ones in block {block} (its norm fell from {before:.3e} to {after:.3e} under Gram-Schmidt); use fewer basis vectors or larger blocks"
    )]
    #[diagnostic(code(symc::multigrid::basis_dependent))]
    Dependent { vector: usize, block: usize, before: f64, after: f64 },
}

/// A lattice cut into equal rectangular blocks; block X is coarse site X of the coarse lattice.
#[derive(Clone, Debug, PartialEq)]
pub struct Blocking {
    fine: Geometry,
    coarse: Geometry,
    block: [usize; 4],
    /// `block_of[site]` = the coarse site (block) of a fine site.
    block_of: Vec<u32>,
    /// The fine sites of block X are `sites[X * block_volume .. (X + 1) * block_volume]`, in
    /// lexicographic order within the block (x fastest).
    sites: Vec<u32>,
}

impl Blocking {
    /// Cuts `dims` into blocks of extent `block`; every block extent must divide the lattice
    /// extent (periodic blocks across the boundary are not supported).
    pub fn new(dims: [usize; 4], block: [usize; 4]) -> Result<Self, BlockError> {
        for mu in 0..4 {
            if dims[mu] == 0 || block[mu] == 0 || dims[mu] % block[mu] != 0 {
                return Err(BlockError::NotTiling { dims, block, direction: mu });
            }
        }
        let coarse_dims: [usize; 4] = std::array::from_fn(|mu| dims[mu] / block[mu]);
        let fine = Geometry::new(dims);
        let coarse = Geometry::new(coarse_dims);
        let bvol: usize = block.iter().product();
        let block_geom = Geometry::new(block);
        let mut block_of = vec![0u32; fine.volume()];
        let mut sites = vec![0u32; fine.volume()];
        for x in 0..coarse.volume() {
            let cc = coarse.coords(x);
            for i in 0..bvol {
                let bc = block_geom.coords(i);
                let f = fine.index(std::array::from_fn(|mu| cc[mu] * block[mu] + bc[mu]));
                block_of[f] = x as u32;
                sites[x * bvol + i] = f as u32;
            }
        }
        Ok(Blocking { fine, coarse, block, block_of, sites })
    }

    /// Fine lattice extents.
    pub fn fine_dims(&self) -> [usize; 4] {
        self.fine.dims
    }

    /// Block extents.
    pub fn block_dims(&self) -> [usize; 4] {
        self.block
    }

    /// Coarse lattice extents (fine / block).
    pub fn coarse_dims(&self) -> [usize; 4] {
        self.coarse.dims
    }

    /// Sites per block.
    pub fn block_volume(&self) -> usize {
        self.block.iter().product()
    }

    /// Number of blocks = coarse sites.
    pub fn coarse_volume(&self) -> usize {
        self.coarse.volume()
    }

    /// The coarse lattice's geometry (neighbour tables; extent-1 and extent-2 directions are
    /// periodic like any other).
    pub fn coarse_geometry(&self) -> &Geometry {
        &self.coarse
    }

    /// The fine lattice's geometry.
    pub fn fine_geometry(&self) -> &Geometry {
        &self.fine
    }

    /// The block (coarse site) of fine site `site`.
    #[inline]
    pub fn block_of(&self, site: usize) -> usize {
        self.block_of[site] as usize
    }

    /// The fine sites of block `x`, lexicographic within the block.
    pub fn block_sites(&self, x: usize) -> &[u32] {
        let b = self.block_volume();
        &self.sites[x * b..(x + 1) * b]
    }
}

/// A block-orthonormal basis: `n_basis` fine vectors whose restrictions to every block are
/// orthonormal (per chirality when chirality-doubled).
#[derive(Clone, Debug)]
pub struct BlockBasis {
    blocking: Blocking,
    /// `vectors[k]` in the reference fermion layout (`site * 12 + spin * 3 + colour`).
    vectors: Vec<Vec<Complex64>>,
    chirality_doubled: bool,
}

/// Every vector is a fine-lattice fermion field (12 V entries), or which one is not.
fn check_lengths(blocking: &Blocking, vectors: &[Vec<Complex64>]) -> Result<(), BlockError> {
    let expected = blocking.fine.volume() * SITE_LEN;
    match vectors.iter().position(|v| v.len() != expected) {
        Some(vector) => {
            Err(BlockError::WrongLength { vector, expected, found: vectors[vector].len() })
        }
        None => Ok(()),
    }
}

/// Largest basis a blocking admits: 12 components per site, or 6 per chirality.
fn check_size(blocking: &Blocking, n_basis: usize, doubled: bool) -> Result<(), BlockError> {
    let sites = blocking.block_volume();
    let dof = SITE_LEN * sites;
    if n_basis == 0 {
        return Err(BlockError::EmptyBasis(""));
    }
    if doubled {
        if n_basis % 2 != 0 {
            return Err(BlockError::OddChiralBasis(n_basis));
        }
        if n_basis / 2 > dof / 2 {
            return Err(BlockError::BasisTooLarge {
                n_basis,
                sites,
                dof,
                per: " (6 per site and chirality, and a chirality-doubled basis fills both halves equally)",
            });
        }
    } else if n_basis > dof {
        return Err(BlockError::BasisTooLarge { n_basis, sites, dof, per: "" });
    }
    Ok(())
}

impl BlockBasis {
    /// Checks a basis size against a blocking before any expensive set-up work: at most
    /// 12·|block| vectors (6·|block| per chirality when doubled), at least one, even when doubled.
    pub fn check_size(
        blocking: &Blocking,
        n_basis: usize,
        chirality_doubled: bool,
    ) -> Result<(), BlockError> {
        check_size(blocking, n_basis, chirality_doubled)
    }

    /// Builds the basis from raw vectors (e.g. near-null vectors). Without chirality doubling
    /// `vectors` are the `n_basis` basis vectors; with it they are the `n_basis / 2` start
    /// vectors, each split into its γ5 = ±1 halves. Every block is orthonormalised by
    /// Gram–Schmidt, run twice ("twice is enough": the second pass removes what rounding left
    /// of the projections, so the blocks are orthonormal to ~1e-15 even for nearly parallel
    /// near-null vectors).
    pub fn orthonormalize(
        blocking: Blocking,
        vectors: Vec<Vec<Complex64>>,
        chirality_doubled: bool,
    ) -> Result<Self, BlockError> {
        check_lengths(&blocking, &vectors)?;
        let n_basis = if chirality_doubled { 2 * vectors.len() } else { vectors.len() };
        check_size(&blocking, n_basis, chirality_doubled)?;
        let vectors = if chirality_doubled {
            let half = |v: &[Complex64], upper: bool| {
                let mut h = v.to_vec();
                for site in h.chunks_exact_mut(SITE_LEN) {
                    let kill = if upper { &mut site[6..] } else { &mut site[..6] };
                    kill.iter_mut().for_each(|z| *z = Complex64::new(0.0, 0.0));
                }
                h
            };
            let plus: Vec<_> = vectors.iter().map(|v| half(v, true)).collect();
            let minus: Vec<_> = vectors.iter().map(|v| half(v, false)).collect();
            plus.into_iter().chain(minus).collect()
        } else {
            vectors
        };
        // Each block is gathered, orthonormalised and scattered back; blocks are independent.
        let groups: Vec<std::ops::Range<usize>> = if chirality_doubled {
            vec![0..n_basis / 2, n_basis / 2..n_basis]
        } else {
            vec![0..n_basis]
        };
        let local: Vec<Result<Vec<Vec<Complex64>>, BlockError>> = (0..blocking.coarse_volume())
            .into_par_iter()
            .map(|x| {
                let sites = blocking.block_sites(x);
                let mut blk: Vec<Vec<Complex64>> = vectors
                    .iter()
                    .map(|v| {
                        sites
                            .iter()
                            .flat_map(|&s| {
                                v[s as usize * SITE_LEN..(s as usize + 1) * SITE_LEN].iter()
                            })
                            .copied()
                            .collect()
                    })
                    .collect();
                for g in &groups {
                    gram_schmidt_twice(&mut blk, g.clone(), x)?;
                }
                Ok(blk)
            })
            .collect();
        let mut out =
            vec![vec![Complex64::new(0.0, 0.0); blocking.fine.volume() * SITE_LEN]; n_basis];
        for (x, blk) in local.into_iter().enumerate() {
            let blk = blk?;
            let sites = blocking.block_sites(x);
            for (k, bv) in blk.iter().enumerate() {
                for (i, &s) in sites.iter().enumerate() {
                    let s = s as usize;
                    out[k][s * SITE_LEN..(s + 1) * SITE_LEN]
                        .copy_from_slice(&bv[i * SITE_LEN..(i + 1) * SITE_LEN]);
                }
            }
        }
        Ok(BlockBasis { blocking, vectors: out, chirality_doubled })
    }

    /// Wraps vectors that are already block-orthonormal (a cached basis), checking shapes and
    /// sizes but not orthonormality (the cache test does).
    pub fn from_orthonormal(
        blocking: Blocking,
        vectors: Vec<Vec<Complex64>>,
        chirality_doubled: bool,
    ) -> Result<Self, BlockError> {
        check_lengths(&blocking, &vectors)?;
        check_size(&blocking, vectors.len(), chirality_doubled)?;
        Ok(BlockBasis { blocking, vectors, chirality_doubled })
    }

    pub fn blocking(&self) -> &Blocking {
        &self.blocking
    }

    /// Number of basis vectors (coarse degrees of freedom per coarse site).
    pub fn n_basis(&self) -> usize {
        self.vectors.len()
    }

    pub fn chirality_doubled(&self) -> bool {
        self.chirality_doubled
    }

    /// Basis vector `k` in the reference layout.
    pub fn vector(&self, k: usize) -> &[Complex64] {
        &self.vectors[k]
    }

    /// All basis vectors.
    pub fn vectors(&self) -> &[Vec<Complex64>] {
        &self.vectors
    }

    /// Length of a coarse vector: coarse volume × n_basis.
    pub fn coarse_len(&self) -> usize {
        self.blocking.coarse_volume() * self.n_basis()
    }

    /// Length of a fine vector: 12 V.
    pub fn fine_len(&self) -> usize {
        self.blocking.fine.volume() * SITE_LEN
    }

    /// Γ5 on the coarse space, one sign per basis vector: `Some` only for a chirality-doubled
    /// basis, where γ5 P = P Γ5.
    pub fn gamma5_signs(&self) -> Option<Vec<f64>> {
        self.chirality_doubled.then(|| {
            let h = self.n_basis() / 2;
            (0..self.n_basis()).map(|k| if k < h { 1.0 } else { -1.0 }).collect()
        })
    }

    /// The same basis gauge-transformed, ū_k(x) → Ω(x) ū_k(x): the basis a covariant set-up
    /// produces on the transformed field from transformed start vectors.
    pub fn gauge_transform(&self, omega: &[super::su3::Su3<f64>]) -> Self {
        let dims = self.blocking.fine_dims();
        let vectors = self
            .vectors
            .iter()
            .map(|v| {
                let f = super::fermion::FermionField { data: v.clone(), dims };
                f.gauge_transform(omega).data
            })
            .collect();
        BlockBasis {
            blocking: self.blocking.clone(),
            vectors,
            chirality_doubled: self.chirality_doubled,
        }
    }

    /// coarse = P† fine: `coarse[X n + k] = Σ_{x∈X} Σ_c conj(ū_k(x)_c) fine(x)_c`.
    /// Panics on wrong lengths (a caller bug: the lengths are fixed by the basis).
    pub fn restrict(&self, fine: &[Complex64], coarse: &mut [Complex64]) {
        let n = self.n_basis();
        assert_eq!(fine.len(), self.fine_len(), "restrict: fine vector length");
        assert_eq!(coarse.len(), self.coarse_len(), "restrict: coarse vector length");
        for x in 0..self.blocking.coarse_volume() {
            for k in 0..n {
                let u = &self.vectors[k];
                let mut acc = Complex64::new(0.0, 0.0);
                for &s in self.blocking.block_sites(x) {
                    for c in 0..SITE_LEN {
                        let i = s as usize * SITE_LEN + c;
                        acc += u[i].conj() * fine[i];
                    }
                }
                coarse[x * n + k] = acc;
            }
        }
    }

    /// fine = P coarse: `fine(x)_c = Σ_k ū_k(x)_c coarse[X(x) n + k]`.
    pub fn prolong(&self, coarse: &[Complex64], fine: &mut [Complex64]) {
        let n = self.n_basis();
        assert_eq!(fine.len(), self.fine_len(), "prolong: fine vector length");
        assert_eq!(coarse.len(), self.coarse_len(), "prolong: coarse vector length");
        for site in 0..self.blocking.fine.volume() {
            let x = self.blocking.block_of(site);
            for c in 0..SITE_LEN {
                let i = site * SITE_LEN + c;
                let mut acc = Complex64::new(0.0, 0.0);
                for k in 0..n {
                    acc += self.vectors[k][i] * coarse[x * n + k];
                }
                fine[i] = acc;
            }
        }
    }
}

/// Modified Gram–Schmidt over the vectors `range` of one block, two passes per vector, then
/// normalisation. A vector that loses all but 1e-12 of its norm in the first pass is dependent.
fn gram_schmidt_twice(
    blk: &mut [Vec<Complex64>],
    range: std::ops::Range<usize>,
    block: usize,
) -> Result<(), BlockError> {
    let dot = |a: &[Complex64], b: &[Complex64]| -> Complex64 {
        a.iter().zip(b).map(|(x, y)| x.conj() * y).sum()
    };
    let norm = |a: &[Complex64]| a.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
    for k in range.clone() {
        let before = norm(&blk[k]);
        for pass in 0..2 {
            for l in range.start..k {
                let (done, rest) = blk.split_at_mut(k);
                let p = dot(&done[l], &rest[0]);
                for (v, u) in rest[0].iter_mut().zip(&done[l]) {
                    *v -= p * u;
                }
            }
            if pass == 0 {
                let after = norm(&blk[k]);
                if !(after > 1e-12 * before) || before == 0.0 {
                    return Err(BlockError::Dependent { vector: k, block, before, after });
                }
            }
        }
        let nk = norm(&blk[k]);
        blk[k].iter_mut().for_each(|z| *z /= nk);
    }
    Ok(())
}

/// A fingerprint of a gauge configuration that identifies it independently of the file it came
/// from: the CRC-32 of its links (f64, little-endian, `links[site * 4 + mu]` row-major) and its
/// plaquette. A cached multigrid basis records it so that a basis computed on one configuration
/// is never reused on another.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaugeFingerprint {
    pub crc32: u32,
    pub plaquette: f64,
}

impl GaugeFingerprint {
    pub fn of(gauge: &GaugeField) -> Self {
        let mut h = crc32fast::Hasher::new();
        let mut buf = Vec::with_capacity(gauge.links.len() * 18 * 8);
        for u in &gauge.links {
            for row in &u.m {
                for z in row {
                    buf.extend_from_slice(&z.re.to_le_bytes());
                    buf.extend_from_slice(&z.im.to_le_bytes());
                }
            }
        }
        h.update(&buf);
        GaugeFingerprint { crc32: h.finalize(), plaquette: gauge.plaquette() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_lattice_once() {
        let b = Blocking::new([4, 2, 6, 8], [2, 1, 3, 4]).unwrap();
        assert_eq!(b.coarse_dims(), [2, 2, 2, 2]);
        let mut seen = vec![0; 4 * 2 * 6 * 8];
        for x in 0..b.coarse_volume() {
            for &s in b.block_sites(x) {
                seen[s as usize] += 1;
                assert_eq!(b.block_of(s as usize), x);
            }
        }
        assert!(seen.iter().all(|&c| c == 1));
    }
}
