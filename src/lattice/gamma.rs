//! Dirac γ matrices in the DeGrand–Rossi (chiral, Grid/GPT) basis, γ5 and σ_μν.
//!
//! Every spin structure in symc (the Wilson hopping projectors, the clover term, γ5-hermiticity
//! tests, the PTC spin weights) is defined from the four matrices here, so that a basis mismatch
//! with GPT/qcd_ml can only happen in one place. Directions are μ = 0..4 = x, y, z, t.
//!
//! The basis is chiral: γ5 = γ_x γ_y γ_z γ_t = diag(1, 1, −1, −1), every γ_μ is off-diagonal
//! in 2×2 spin blocks, and every σ_μν is block-diagonal. The fast Wilson kernel relies on both.

use num_complex::Complex64;

/// A 4×4 complex spin matrix, row-major `m[row][col]`.
pub type SpinMatrix = [[Complex64; 4]; 4];

const O: Complex64 = Complex64::new(0.0, 0.0);
const P1: Complex64 = Complex64::new(1.0, 0.0);
const M1: Complex64 = Complex64::new(-1.0, 0.0);
const PI: Complex64 = Complex64::new(0.0, 1.0);
const MI: Complex64 = Complex64::new(0.0, -1.0);

/// γ_x, γ_y, γ_z, γ_t of the DeGrand–Rossi basis (`lehner/gpt:lib/gpt/core/gamma.py`).
pub const GAMMA: [SpinMatrix; 4] = [
    [[O, O, O, PI], [O, O, PI, O], [O, MI, O, O], [MI, O, O, O]],
    [[O, O, O, M1], [O, O, P1, O], [O, P1, O, O], [M1, O, O, O]],
    [[O, O, PI, O], [O, O, O, MI], [MI, O, O, O], [O, PI, O, O]],
    [[O, O, P1, O], [O, O, O, P1], [P1, O, O, O], [O, P1, O, O]],
];

/// γ_μ (μ = 0..4 = x, y, z, t).
pub fn gamma(mu: usize) -> SpinMatrix {
    GAMMA[mu]
}

/// The 4×4 identity.
pub fn identity() -> SpinMatrix {
    let mut r = [[O; 4]; 4];
    for (i, row) in r.iter_mut().enumerate() {
        row[i] = P1;
    }
    r
}

/// γ5 = γ_x γ_y γ_z γ_t, which is diag(1, 1, −1, −1) in this basis.
pub fn gamma5() -> SpinMatrix {
    matmul(&matmul(&GAMMA[0], &GAMMA[1]), &matmul(&GAMMA[2], &GAMMA[3]))
}

/// The sign of γ5 on spin component `s` (chirality): +1 for s = 0, 1 and −1 for s = 2, 3.
pub fn gamma5_sign(s: usize) -> f64 {
    if s < 2 { 1.0 } else { -1.0 }
}

/// Matrix product `a b`.
pub fn matmul(a: &SpinMatrix, b: &SpinMatrix) -> SpinMatrix {
    let mut r = [[O; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            r[i][j] = (0..4).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    r
}

/// `a + s b`.
pub fn add_scaled(a: &SpinMatrix, s: Complex64, b: &SpinMatrix) -> SpinMatrix {
    let mut r = *a;
    for i in 0..4 {
        for j in 0..4 {
            r[i][j] += s * b[i][j];
        }
    }
    r
}

/// Hermitian conjugate.
pub fn adjoint(a: &SpinMatrix) -> SpinMatrix {
    let mut r = [[O; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            r[i][j] = a[j][i].conj();
        }
    }
    r
}

/// ½[γ_μ, γ_ν]: the anti-Hermitian spin structure that GPT and qcd_ml call σ_μν
/// (no factor i). The clover term is A = (4 + m) − (c_sw/4) Σ_{μ,ν} ½[γ_μ,γ_ν] F_μν.
pub fn half_commutator(mu: usize, nu: usize) -> SpinMatrix {
    let ab = matmul(&GAMMA[mu], &GAMMA[nu]);
    let ba = matmul(&GAMMA[nu], &GAMMA[mu]);
    let mut r = [[O; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            r[i][j] = 0.5 * (ab[i][j] - ba[i][j]);
        }
    }
    r
}

/// The Hermitian σ_μν = (i/2)[γ_μ, γ_ν] (textbook convention; = i · [`half_commutator`]).
pub fn sigma(mu: usize, nu: usize) -> SpinMatrix {
    let h = half_commutator(mu, nu);
    let mut r = [[O; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            r[i][j] = PI * h[i][j];
        }
    }
    r
}

/// Largest absolute entry of `a − b`, for tests.
pub fn max_diff(a: &SpinMatrix, b: &SpinMatrix) -> f64 {
    let mut m: f64 = 0.0;
    for i in 0..4 {
        for j in 0..4 {
            m = m.max((a[i][j] - b[i][j]).norm());
        }
    }
    m
}

/// The structure of `(1 ∓ γ_μ)` that the Wilson kernel hard-codes, as a table: γ_μ maps the
/// upper spin pair to the lower one and back, with exactly one entry of modulus 1 per row.
/// `HOP_TABLE[mu][row] = (col, phase)` with phase index 0 = +1, 1 = +i, 2 = −1, 3 = −i,
/// meaning `(γ_μ ψ)_row = phase · ψ_col`. The test below checks it against [`GAMMA`].
pub const HOP_TABLE: [[(usize, u8); 4]; 4] = [
    [(3, 1), (2, 1), (1, 3), (0, 3)],
    [(3, 2), (2, 0), (1, 0), (0, 2)],
    [(2, 1), (3, 3), (0, 3), (1, 1)],
    [(2, 0), (3, 0), (0, 0), (1, 0)],
];

/// The complex number that a [`HOP_TABLE`] phase index stands for.
pub fn phase_value(p: u8) -> Complex64 {
    match p & 3 {
        0 => P1,
        1 => PI,
        2 => M1,
        _ => MI,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clifford_algebra() {
        for mu in 0..4 {
            for nu in 0..4 {
                let anti = add_scaled(
                    &matmul(&GAMMA[mu], &GAMMA[nu]),
                    P1,
                    &matmul(&GAMMA[nu], &GAMMA[mu]),
                );
                let want = if mu == nu {
                    add_scaled(&[[O; 4]; 4], Complex64::new(2.0, 0.0), &identity())
                } else {
                    [[O; 4]; 4]
                };
                assert!(max_diff(&anti, &want) < 1e-15, "{{γ{mu}, γ{nu}}} != 2δ");
            }
            assert!(max_diff(&adjoint(&GAMMA[mu]), &GAMMA[mu]) < 1e-15, "γ{mu} not Hermitian");
        }
    }

    #[test]
    fn gamma5_is_chiral_diagonal() {
        let g5 = gamma5();
        let mut want = [[O; 4]; 4];
        for (s, row) in want.iter_mut().enumerate() {
            row[s] = Complex64::new(gamma5_sign(s), 0.0);
        }
        assert!(max_diff(&g5, &want) < 1e-15, "γ5 = {g5:?}");
        for mu in 0..4 {
            // γ5 anticommutes with every γ_μ.
            let a = add_scaled(&matmul(&g5, &GAMMA[mu]), P1, &matmul(&GAMMA[mu], &g5));
            assert!(max_diff(&a, &[[O; 4]; 4]) < 1e-15);
        }
    }

    #[test]
    fn sigma_is_hermitian_block_diagonal_and_commutes_with_gamma5() {
        let g5 = gamma5();
        for mu in 0..4 {
            for nu in 0..4 {
                let s = sigma(mu, nu);
                assert!(max_diff(&adjoint(&s), &s) < 1e-15, "σ{mu}{nu} not Hermitian");
                let h = half_commutator(mu, nu);
                let minus_h = add_scaled(&[[O; 4]; 4], M1, &h);
                assert!(max_diff(&adjoint(&h), &minus_h) < 1e-15, "½[γ,γ] not anti-Hermitian");
                for i in 0..4 {
                    for j in 0..4 {
                        if (i < 2) != (j < 2) {
                            assert_eq!(s[i][j], O, "σ{mu}{nu} couples chiralities at {i},{j}");
                        }
                    }
                }
                let c = add_scaled(&matmul(&g5, &s), M1, &matmul(&s, &g5));
                assert!(max_diff(&c, &[[O; 4]; 4]) < 1e-15);
            }
            assert!(max_diff(&sigma(mu, mu), &[[O; 4]; 4]) < 1e-15);
        }
        // A value worked out by hand: γxγy = diag(−i, i, −i, i), so σ_xy = diag(1, −1, 1, −1).
        let mut want = [[O; 4]; 4];
        for (s, d) in [1.0, -1.0, 1.0, -1.0].into_iter().enumerate() {
            want[s][s] = Complex64::new(d, 0.0);
        }
        assert!(max_diff(&sigma(0, 1), &want) < 1e-15);
    }

    #[test]
    fn projectors_have_rank_two() {
        // (1 ∓ γ_μ)/2 are projectors: P² = P, and their trace is 2.
        for mu in 0..4 {
            for sign in [-1.0, 1.0] {
                let p = add_scaled(&identity(), Complex64::new(sign, 0.0), &GAMMA[mu]);
                let half = add_scaled(&[[O; 4]; 4], Complex64::new(0.5, 0.0), &p);
                assert!(max_diff(&matmul(&half, &half), &half) < 1e-15);
                let tr: Complex64 = (0..4).map(|i| half[i][i]).sum();
                assert!((tr - 2.0).norm() < 1e-15);
            }
        }
    }

    #[test]
    fn hop_table_matches_gamma() {
        for mu in 0..4 {
            let mut m = [[O; 4]; 4];
            for (row, &(col, p)) in HOP_TABLE[mu].iter().enumerate() {
                m[row][col] = phase_value(p);
            }
            assert!(max_diff(&m, &GAMMA[mu]) < 1e-15, "HOP_TABLE[{mu}] disagrees with γ{mu}");
        }
    }
}
