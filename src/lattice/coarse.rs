//! The Galerkin coarse operator D_c = P† D P of a two-level multigrid as a 9-point stencil on
//! the coarse lattice, and its naive application (the oracle of the JIT kernel in
//! `codegen::coarse`).
//!
//! Why a stencil: D couples only nearest neighbours and P, P† act block by block, so
//! P† D P couples a block only to itself and its 8 neighbouring blocks:
//!
//! ```text
//! (D_c χ)(X) = A_0(X) χ(X) + Σ_μ [ A_{+μ}(X) χ(X+μ̂) + A_{−μ}(X) χ(X−μ̂) ]
//! ```
//!
//! with A_d(X) complex n_basis × n_basis matrices: 9 n_b² numbers per coarse site instead of
//! an application of D per coarse matrix-vector product.
//!
//! **Construction** (block-wise, no unit vectors): for every basis vector j and fine site x in
//! block X, the clover term A(x) ū_j(x) and every hop of D at x whose neighbour lies in X go
//! to the self term A_0(X)[·][j]; a hop that leaves X in direction d goes to A_d(X)[·][j]; the
//! row i is ū_i(x)† times that. The term is chosen by the *fine hop*, never by comparing coarse
//! sites, because on a coarse lattice of extent 2 the blocks X+μ̂ and X−μ̂ coincide: the +μ and
//! −μ terms then act on the same neighbour but stay separate matrices (their sum is what that
//! neighbour sees), which keeps the stencil and its adjoint uniform for every extent. On
//! extent 1 every hop stays in the block and lands in the self term.
//!
//! Directions are numbered d = 0 (self) and d = 1 + 2μ + (0 forward, 1 backward) for the
//! neighbours X ± μ̂, the hop order of the Wilson kernel.

use super::blocks::BlockBasis;
use super::fermion::SITE_LEN;
use super::geometry::Geometry;
use super::wilson::WilsonClover;
use num_complex::Complex64;
use rayon::prelude::*;

/// Stencil terms per coarse site: self + 8 neighbours.
pub const TERMS: usize = 9;

/// The coarse site that term `d` of site `x` reads (d = 0 self, 1 + 2μ forward, 2 + 2μ backward).
pub fn neighbour(geom: &Geometry, x: usize, d: usize) -> usize {
    match d {
        0 => x,
        _ => {
            let h = d - 1;
            if h % 2 == 0 { geom.up(x, h / 2) } else { geom.dn(x, h / 2) }
        }
    }
}

/// The term that reads the same pair of sites the other way round: +μ ↔ −μ, self ↔ self.
pub fn opposite(d: usize) -> usize {
    match d {
        0 => 0,
        _ => {
            let h = d - 1;
            1 + (h ^ 1)
        }
    }
}

/// D_c = P† D P as stencil matrices.
#[derive(Clone, Debug)]
pub struct CoarseOperator {
    geom: Geometry,
    n: usize,
    /// `coeffs[((X * 9 + d) * n + i) * n + j]` = A_d(X)[i][j].
    coeffs: Vec<Complex64>,
    gamma5: Option<Vec<f64>>,
}

impl CoarseOperator {
    /// Builds P† D P from the fine operator and the basis. Panics only if the operator and
    /// the basis were built for different lattices (a caller bug the runtime checks first).
    pub fn galerkin(d: &WilsonClover<f64>, basis: &BlockBasis) -> Self {
        let blocking = basis.blocking();
        assert_eq!(
            d.geometry().dims,
            blocking.fine_dims(),
            "Galerkin coarse operator: operator and basis are on different lattices"
        );
        let fine = d.geometry();
        let n = basis.n_basis();
        let cvol = blocking.coarse_volume();
        let zero = Complex64::new(0.0, 0.0);
        let per_site: Vec<Vec<Complex64>> = (0..cvol)
            .into_par_iter()
            .map(|x| {
                let mut a = vec![zero; TERMS * n * n];
                // terms[d] for one (x, j): the fine 12-vector that row i projects with ū_i(x)†.
                let mut terms = [[zero; SITE_LEN]; TERMS];
                for &s in blocking.block_sites(x) {
                    let s = s as usize;
                    for j in 0..n {
                        let u = basis.vector(j);
                        let mut used = [false; TERMS];
                        terms[0] = clover_times(d, s, &u[s * SITE_LEN..(s + 1) * SITE_LEN]);
                        used[0] = true;
                        for (mu, fwd) in (0..8).map(|h| (h / 2, h % 2 == 0)) {
                            let nb = if fwd { fine.up(s, mu) } else { fine.dn(s, mu) };
                            let h =
                                d.hop_term_at(s, mu, fwd, &u[nb * SITE_LEN..(nb + 1) * SITE_LEN]);
                            let t = if blocking.block_of(nb) == x {
                                0
                            } else {
                                1 + 2 * mu + usize::from(!fwd)
                            };
                            if !used[t] {
                                terms[t] = [zero; SITE_LEN];
                                used[t] = true;
                            }
                            // D = A − ½ Σ hops.
                            for (o, hv) in terms[t].iter_mut().zip(&h) {
                                *o -= 0.5 * hv;
                            }
                        }
                        for (t, term) in terms.iter().enumerate() {
                            if !used[t] {
                                continue;
                            }
                            for i in 0..n {
                                let ui = &basis.vector(i)[s * SITE_LEN..(s + 1) * SITE_LEN];
                                let p: Complex64 =
                                    ui.iter().zip(term).map(|(a, b)| a.conj() * b).sum();
                                a[(t * n + i) * n + j] += p;
                            }
                        }
                    }
                }
                a
            })
            .collect();
        CoarseOperator {
            geom: blocking.coarse_geometry().clone(),
            n,
            coeffs: per_site.concat(),
            gamma5: basis.gamma5_signs(),
        }
    }

    /// Coarse lattice geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geom
    }

    /// Basis vectors per coarse site.
    pub fn n_basis(&self) -> usize {
        self.n
    }

    /// Coarse vector length (coarse volume × n_basis).
    pub fn len(&self) -> usize {
        self.geom.volume() * self.n
    }

    /// Always false: a coarse lattice has at least one site and a basis at least one vector.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Γ5 signs of a chirality-doubled basis (then D_c† = Γ5 D_c Γ5).
    pub fn gamma5_signs(&self) -> Option<&[f64]> {
        self.gamma5.as_deref()
    }

    /// A_d(x) as a row-major n × n slice.
    pub fn term(&self, x: usize, d: usize) -> &[Complex64] {
        let nn = self.n * self.n;
        &self.coeffs[(x * TERMS + d) * nn..(x * TERMS + d + 1) * nn]
    }

    /// The stencil of D_c† in the same form: term d of site X is A_{opp(d)}(X + d)†, because
    /// D_c couples X to Y = X + d through A_d(X), so D_c† couples Y back to X.
    pub fn dagger_coeffs(&self) -> Vec<Complex64> {
        let n = self.n;
        let mut out = vec![Complex64::new(0.0, 0.0); self.coeffs.len()];
        for x in 0..self.geom.volume() {
            for d in 0..TERMS {
                let y = neighbour(&self.geom, x, d);
                let src = self.term(y, opposite(d));
                let dst = &mut out[(x * TERMS + d) * n * n..(x * TERMS + d + 1) * n * n];
                for i in 0..n {
                    for j in 0..n {
                        dst[i * n + j] = src[j * n + i].conj();
                    }
                }
            }
        }
        out
    }

    /// All coefficients, `[X][d][i][j]`.
    pub fn coeffs(&self) -> &[Complex64] {
        &self.coeffs
    }

    fn check(&self, out: &[Complex64], inp: &[Complex64]) {
        assert!(
            out.len() == self.len() && inp.len() == self.len(),
            "coarse operator: vectors must have length {} (got out {}, in {})",
            self.len(),
            out.len(),
            inp.len()
        );
    }

    /// out = D_c inp, gathering each term from its neighbour.
    pub fn apply(&self, out: &mut [Complex64], inp: &[Complex64]) {
        self.check(out, inp);
        let n = self.n;
        for x in 0..self.geom.volume() {
            for i in 0..n {
                let mut acc = Complex64::new(0.0, 0.0);
                for d in 0..TERMS {
                    let y = neighbour(&self.geom, x, d);
                    let a = self.term(x, d);
                    for j in 0..n {
                        acc += a[i * n + j] * inp[y * n + j];
                    }
                }
                out[x * n + i] = acc;
            }
        }
    }

    /// out = D_c† inp by scattering: every coupling A_d(X)[i][j] from (Y, j) to (X, i)
    /// contributes conj(A_d(X)[i][j]) inp(X, i) to out(Y, j). Independent of
    /// [`dagger_coeffs`](Self::dagger_coeffs), which the JIT kernel uses.
    pub fn apply_dagger(&self, out: &mut [Complex64], inp: &[Complex64]) {
        self.check(out, inp);
        let n = self.n;
        out.iter_mut().for_each(|z| *z = Complex64::new(0.0, 0.0));
        for x in 0..self.geom.volume() {
            for d in 0..TERMS {
                let y = neighbour(&self.geom, x, d);
                let a = self.term(x, d);
                for i in 0..n {
                    for j in 0..n {
                        out[y * n + j] += a[i * n + j].conj() * inp[x * n + i];
                    }
                }
            }
        }
    }
}

/// A(x) ψ(x) with the operator's packed clover blocks (including 4 + m).
fn clover_times(d: &WilsonClover<f64>, s: usize, psi: &[Complex64]) -> [Complex64; SITE_LEN] {
    let mut out = [Complex64::new(0.0, 0.0); SITE_LEN];
    for b in 0..2 {
        let v: [Complex64; 6] = std::array::from_fn(|k| psi[b * 6 + k]);
        out[b * 6..b * 6 + 6].copy_from_slice(&d.clover_packed()[s * 2 + b].mul_vec(&v));
    }
    out
}
