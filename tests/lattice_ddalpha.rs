//! The operator on a real thermalised configuration (DDalphaAMG 8⁴, β = 6.0): the file is read
//! correctly (its plaquette matches the header and the README), and the structural identities
//! that hold on any gauge field hold here too. Skips loudly without ../shared/data.

mod common;

use num_complex::Complex64;
use rand::SeedableRng;
use symc::lattice::fermion::{self, FermionField};
use symc::lattice::wilson::{DiracParams, WilsonClover};

#[test]
fn ddalpha_config_plaquette_matches_header_and_readme() {
    let Some((gauge, header)) = common::ddalpha_8x8x8x8("ddalpha plaquette") else {
        return;
    };
    let (p, ss, st) = gauge.plaquette_parts();
    assert!((p - header).abs() < 1e-12, "plaquette {p} vs header {header}");
    // Independent numpy values from data/gauge/README.md.
    assert!((p - 0.5924316992).abs() < 1e-9, "{p}");
    assert!((ss - 0.5916179).abs() < 1e-6 && (st - 0.5932455).abs() < 1e-6, "{ss} {st}");
    // Links are unitary to file precision.
    for u in gauge.links.iter().take(100) {
        let uu = *u * u.adj();
        assert!(uu.dist(&symc::lattice::su3::Su3::identity()) < 1e-12);
    }
}

#[test]
fn ddalpha_config_gamma5_hermiticity_and_gauge_covariance() {
    let Some((gauge, _)) = common::ddalpha_8x8x8x8("ddalpha operator identities") else {
        return;
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let params = DiracParams::periodic(-0.555, 1.0);
    let d = WilsonClover::<f64>::new(&gauge, &params);
    let n = d.vector_len();
    let phi = FermionField::<f64>::random_gaussian(gauge.dims(), &mut rng);
    let chi = FermionField::<f64>::random_gaussian(gauge.dims(), &mut rng);
    let mut dchi = vec![Complex64::new(0.0, 0.0); n];
    d.apply(&mut dchi, &chi.data);
    let mut dphi = vec![Complex64::new(0.0, 0.0); n];
    d.apply_dagger(&mut dphi, &phi.data);
    let lhs = fermion::dot(&phi.data, &dchi);
    let rhs = fermion::dot(&chi.data, &dphi).conj();
    assert!((lhs - rhs).norm() < 1e-12 * lhs.norm());

    let omega = gauge.random_transformation(&mut rng);
    let dt = WilsonClover::<f64>::new(&gauge.gauge_transform(&omega), &params);
    let want = FermionField { data: dchi, dims: gauge.dims() }.gauge_transform(&omega);
    let mut got = vec![Complex64::new(0.0, 0.0); n];
    dt.apply(&mut got, &chi.gauge_transform(&omega).data);
    let mut diff = vec![Complex64::new(0.0, 0.0); n];
    fermion::sub(&mut diff, &got, &want.data);
    let e = fermion::norm(&diff) / fermion::norm(&want.data);
    assert!(e < 1e-13, "gauge covariance on the real configuration: {e:e}");
}
