//! The JIT Wilson-clover kernel against the plain reference `lattice::wilson::WilsonClover`:
//! D and D† to round-off in f64 and f32 (twisted boundary phases, c_sw = 1.3), the adjoint
//! identity <phi, D chi> = conj<chi, D† phi>, and gauge covariance D[U^Omega] Omega psi = Omega D[U] psi.

use num_complex::{Complex, Complex64};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use symc::codegen::dirac::LinkStorage;
use symc::lattice::gauge::GaugeField;
use symc::lattice::wilson::{DiracParams, WilsonClover};
use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
use symc::runtime::lattice_reference::gauge_rotate;
use symc::solve::{AdjointOperator, LinearOperator};

fn field(n: usize, r: &mut ChaCha8Rng) -> Vec<Complex64> {
    (0..n).map(|_| Complex::new(r.sample(StandardNormal), r.sample(StandardNormal))).collect()
}

fn rel(a: &[Complex64], b: &[Complex64]) -> f64 {
    let n: f64 = a.iter().zip(b).map(|(x, y)| (x - y).norm_sqr()).sum();
    let d: f64 = b.iter().map(|y| y.norm_sqr()).sum();
    (n / d).sqrt()
}

fn params() -> DiracParams {
    DiracParams {
        mass: -0.3,
        csw: 1.3,
        boundary_phases: [
            Complex64::from_polar(1.0, 1.0),
            Complex64::from_polar(1.0, 2.0),
            Complex64::from_polar(1.0, 3.0),
            Complex64::new(-1.0, 0.0),
        ],
    }
}

/// Both link storages: the full matrices and the two rows + det(U) the kernel rebuilds the
/// third row from (with twisted, complex boundary phases folded into the links).
#[test]
fn jit_matches_reference_f64_and_f32() {
    // [2, 4, 4, 6]: f32 lanes split z (chunk 1, every z hop crosses lanes), f64 splits t.
    for (dims, links) in [[4, 4, 4, 8], [2, 4, 6, 8], [2, 4, 4, 6]]
        .into_iter()
        .flat_map(|d| [(d, LinkStorage::Full), (d, LinkStorage::TwoRows)])
    {
        let mut r = ChaCha8Rng::seed_from_u64(5);
        let gauge = GaugeField::random(dims, &mut r);
        let p = params();
        let reference = WilsonClover::<f64>::new(&gauge, &p);
        let opts = DiracOptions { links: Some(links), ..Default::default() };
        let jit = JitWilsonClover::<f64>::new(&gauge, &p, &opts).unwrap();
        let jit32 = JitWilsonClover::<f32>::new(&gauge, &p, &opts).unwrap();
        let n = reference.vector_len();
        let x = field(n, &mut r);
        for dagger in [false, true] {
            let mut want = vec![Complex64::new(0.0, 0.0); n];
            let mut got = want.clone();
            if dagger {
                reference.apply_dagger(&mut want, &x);
                jit.apply_dagger(&mut got, &x);
            } else {
                LinearOperator::apply(&reference, &mut want, &x);
                jit.apply(&mut got, &x);
            }
            let e = rel(&got, &want);
            eprintln!("{dims:?} {links:?} dagger={dagger} f64 {e:.2e}");
            assert!(e < 1e-14, "f64 {dims:?} {links:?} dagger={dagger}: {e:e}");
            let x32: Vec<Complex<f32>> =
                x.iter().map(|z| Complex::new(z.re as f32, z.im as f32)).collect();
            let mut g32 = vec![Complex::new(0.0f32, 0.0); n];
            if dagger {
                jit32.apply_dagger(&mut g32, &x32);
            } else {
                jit32.apply(&mut g32, &x32);
            }
            let up: Vec<Complex64> =
                g32.iter().map(|z| Complex::new(z.re as f64, z.im as f64)).collect();
            let e = rel(&up, &want);
            eprintln!("{dims:?} {links:?} dagger={dagger} f32 {e:.2e}");
            assert!(e < 1e-6, "f32 {dims:?} {links:?} dagger={dagger}: {e:e}");
        }
    }
}

#[test]
fn adjoint_identity_and_gauge_covariance() {
    let dims = [4, 4, 4, 8];
    let mut r = ChaCha8Rng::seed_from_u64(6);
    let gauge = GaugeField::random(dims, &mut r);
    let p = DiracParams::periodic(-0.5, 1.0);
    let d = JitWilsonClover::<f64>::new(&gauge, &p, &DiracOptions::default()).unwrap();
    let n = d.vector_len();
    let (phi, chi) = (field(n, &mut r), field(n, &mut r));
    let mut dchi = vec![Complex64::new(0.0, 0.0); n];
    let mut dphi = dchi.clone();
    d.apply(&mut dchi, &chi);
    d.apply_dagger(&mut dphi, &phi);
    let a: Complex64 = phi.iter().zip(&dchi).map(|(x, y)| x.conj() * y).sum();
    let b: Complex64 = chi.iter().zip(&dphi).map(|(x, y)| x.conj() * y).sum();
    assert!((a - b.conj()).norm() < 1e-12 * a.norm(), "{a} vs {b}");
    // Negative control: D is not Hermitian, so <phi, D chi> != conj<chi, D phi>.
    let mut dphi2 = dchi.clone();
    d.apply(&mut dphi2, &phi);
    let c: Complex64 = chi.iter().zip(&dphi2).map(|(x, y)| x.conj() * y).sum();
    assert!((a - c.conj()).norm() > 1e-3 * a.norm());

    let omega = gauge.random_transformation(&mut r);
    let dg =
        JitWilsonClover::<f64>::new(&gauge.gauge_transform(&omega), &p, &DiracOptions::default())
            .unwrap();
    let mut lhs = vec![Complex64::new(0.0, 0.0); n];
    dg.apply(&mut lhs, &gauge_rotate(&omega, &chi));
    let e = rel(&lhs, &gauge_rotate(&omega, &dchi));
    assert!(e < 1e-13, "gauge covariance: {e:e}");
}
