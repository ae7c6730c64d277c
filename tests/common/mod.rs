//! Test-only helpers shared by the lattice and solver integration tests: locating the shared
//! data directory and a minimal reader for the DDalphaAMG gauge format (the production readers
//! live in `lattice::io`; this one exists so the tests have an independent path to the data).

#![allow(dead_code)]

use num_complex::Complex64;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use symc::lattice::fermion::{self, FermionField};
use symc::lattice::gauge::GaugeField;
use symc::lattice::geometry::Geometry;
use symc::lattice::su3::Su3;
use symc::lattice::wilson::{DiracParams, WilsonClover};

/// A zero fermion vector of `n` complex numbers.
pub fn zeros(n: usize) -> Vec<Complex64> {
    vec![Complex64::new(0.0, 0.0); n]
}

/// ‖a − b‖/‖b‖.
pub fn rel_diff(a: &[Complex64], b: &[Complex64]) -> f64 {
    let mut d = zeros(a.len());
    fermion::sub(&mut d, a, b);
    fermion::norm(&d) / fermion::norm(b)
}

/// A random complex Gaussian vector of `n` complex numbers (n a multiple of 12; a half-lattice
/// vector is a fermion field on a lattice of n/12 sites as far as the generator is concerned).
pub fn random_vec(n: usize, rng: &mut ChaCha8Rng) -> Vec<Complex64> {
    FermionField::<f64>::random_gaussian([n / 12, 1, 1, 1], rng).data
}

/// GPT's boundary-bug catcher: a different complex phase in every direction (and a clover
/// coefficient other than 1).
pub fn twisted() -> DiracParams {
    DiracParams {
        mass: -0.31,
        csw: 1.3,
        boundary_phases: std::array::from_fn(|mu| Complex64::from_polar(1.0, mu as f64 + 1.0)),
    }
}

/// A random (hot) gauge field from `seed`, and the generator to draw more from.
pub fn random_gauge(dims: [usize; 4], seed: u64) -> (GaugeField, ChaCha8Rng) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gauge = GaugeField::random(dims, &mut rng);
    (gauge, rng)
}

/// ‖b − D x‖/‖b‖ with the plain reference operator, computed here and not by any solver.
pub fn residual(d: &WilsonClover<f64>, b: &[Complex64], x: &[Complex64]) -> f64 {
    let mut dx = zeros(b.len());
    d.apply(&mut dx, x);
    let mut r = zeros(b.len());
    fermion::sub(&mut r, b, &dx);
    fermion::norm(&r) / fermion::norm(b)
}

/// `../shared/data` next to the repository (CI layout), or `$SYMC_DATA` when set (worktrees
/// that live elsewhere).
pub fn shared_data() -> Option<PathBuf> {
    let p = std::env::var_os("SYMC_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    p.is_dir().then_some(p)
}

/// The 8⁴ DDalphaAMG configuration, or `None` (after a loud SKIPPED message) if the shared data
/// is absent.
pub fn ddalpha_8x8x8x8(test: &str) -> Option<(GaugeField, f64)> {
    let Some(data) = shared_data() else {
        eprintln!("SKIPPED: {test}: ../shared/data (or $SYMC_DATA) not found");
        return None;
    };
    let path = data.join("gauge/ddalphaamg/8x8x8x8b6.0000id3n1");
    if !path.is_file() {
        eprintln!("SKIPPED: {test}: {} not found", path.display());
        return None;
    }
    Some(read_ddalpha(&std::fs::read(&path).expect("readable DDalphaAMG file")))
}

/// DDalphaAMG format: 4 × i32 dims (T, Z, Y, X), f64 plaquette (= 3P), then per site (x fastest,
/// t slowest) four links in the order T, Z, Y, X, each 3×3 complex row-major f64, little-endian.
/// Returns the field and the header plaquette divided by 3.
pub fn read_ddalpha(bytes: &[u8]) -> (GaugeField, f64) {
    let i32_at = |o: usize| i32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
    let f64_at = |o: usize| f64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let (t, z, y, x) = (i32_at(0), i32_at(4), i32_at(8), i32_at(12));
    let plaq = f64_at(16) / 3.0;
    let geom = Geometry::new([x, y, z, t]);
    let vol = geom.volume();
    assert_eq!(bytes.len(), 24 + vol * 4 * 18 * 8, "DDalphaAMG file size");
    let mut links = vec![Su3::<f64>::identity(); vol * 4];
    let mut off = 24;
    for s in 0..vol {
        for file_dir in 0..4 {
            let mu = 3 - file_dir; // T, Z, Y, X → 3, 2, 1, 0
            let mut m = Su3::zero();
            for r in 0..3 {
                for c in 0..3 {
                    m.m[r][c] = Complex64::new(f64_at(off), f64_at(off + 8));
                    off += 16;
                }
            }
            links[s * 4 + mu] = m;
        }
    }
    (GaugeField { geom, links }, plaq)
}
