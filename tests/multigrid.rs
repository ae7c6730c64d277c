//! The multigrid coarse space, checked three ways on small lattices: the JIT kernels of P†, P
//! and D_c against the naive references (`lattice::blocks`, `lattice::coarse`), identities
//! (adjointness, P†P = 1, D_c = P† D P against the full fine operator, D_c† against the scatter
//! adjoint), and symmetry (γ5-hermiticity of a chirality-doubled coarse operator, gauge
//! covariance of the whole set-up). Plus the user errors (blocks that do not tile, a basis
//! that does not fit, a singular coarse operator) and the basis cache.

mod common;

use common::zeros;
use num_complex::{Complex, Complex64};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use symc::lattice::blocks::{BlockBasis, BlockError, Blocking};
use symc::lattice::coarse::CoarseOperator;
use symc::lattice::fermion::{self, FermionField};
use symc::lattice::gauge::GaugeField;
use symc::lattice::wilson::{DiracParams, WilsonClover};
use symc::runtime::coarse::{JitBlockTransfer, JitCoarseOperator};
use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
use symc::solve::multigrid::{CoarseSpace, NearNullParams, near_null_vectors};
use symc::solve::{AdjointOperator, LinearOperator};

type C = Complex64;

fn rel(a: &[C], b: &[C]) -> f64 {
    let mut d = zeros(a.len());
    fermion::sub(&mut d, a, b);
    fermion::norm(&d) / fermion::norm(b).max(1e-300)
}

fn random_vec(n: usize, rng: &mut ChaCha8Rng) -> Vec<C> {
    (0..n)
        .map(|_| {
            let re: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
            let im: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
            C::new(re, im)
        })
        .collect()
}

/// A block-orthonormal basis from random vectors (the algebra does not care whether they are
/// near-null, and random ones make every test cheap).
fn random_basis(
    dims: [usize; 4],
    blocks: [usize; 4],
    n: usize,
    doubled: bool,
    seed: u64,
) -> BlockBasis {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vol: usize = dims.iter().product();
    let count = if doubled { n / 2 } else { n };
    let vs = (0..count).map(|_| random_vec(vol * 12, &mut rng)).collect();
    BlockBasis::orthonormalize(Blocking::new(dims, blocks).unwrap(), vs, doubled).unwrap()
}

#[test]
fn blocks_that_do_not_tile_the_lattice_are_an_error() {
    let e = Blocking::new([4, 4, 4, 8], [4, 3, 4, 4]).unwrap_err();
    assert_eq!(e, BlockError::NotTiling { dims: [4, 4, 4, 8], block: [4, 3, 4, 4], direction: 1 });
    assert!(e.to_string().contains("do not tile"), "{e}");
    assert!(matches!(
        Blocking::new([4, 4, 4, 8], [4, 4, 0, 4]),
        Err(BlockError::NotTiling { direction: 2, .. })
    ));
    // Blocks as large as the lattice are allowed (a coarse extent of 1).
    assert_eq!(Blocking::new([4, 4, 4, 8], [4, 4, 4, 8]).unwrap().coarse_dims(), [1, 1, 1, 1]);
}

#[test]
fn a_basis_larger_than_a_block_is_an_error() {
    let b = Blocking::new([4, 4, 4, 4], [1, 1, 1, 2]).unwrap();
    // 2 sites x 12 = 24 degrees of freedom.
    assert!(BlockBasis::check_size(&b, 24, false).is_ok());
    let e = BlockBasis::check_size(&b, 25, false).unwrap_err();
    assert!(matches!(e, BlockError::BasisTooLarge { n_basis: 25, dof: 24, .. }), "{e:?}");
    assert!(e.to_string().contains("at most 12 x 2 = 24"), "{e}");
    assert!(BlockBasis::check_size(&b, 24, true).is_ok());
    assert!(matches!(BlockBasis::check_size(&b, 26, true), Err(BlockError::BasisTooLarge { .. })));
    assert_eq!(BlockBasis::check_size(&b, 7, true), Err(BlockError::OddChiralBasis(7)));
    assert!(matches!(BlockBasis::check_size(&b, 0, false), Err(BlockError::EmptyBasis(_))));
    // The constructor checks too, and wrong vector lengths are named.
    let short = vec![vec![C::new(1.0, 0.0); 10]];
    assert!(matches!(
        BlockBasis::orthonormalize(b.clone(), short, false),
        Err(BlockError::WrongLength { vector: 0, expected: 3072, found: 10 })
    ));
}

#[test]
fn linearly_dependent_start_vectors_are_an_error() {
    let b = Blocking::new([4, 4, 4, 4], [2, 2, 2, 2]).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let v = random_vec(256 * 12, &mut rng);
    let w: Vec<C> = v.iter().map(|z| z * C::new(0.5, -2.0)).collect();
    let e = BlockBasis::orthonormalize(b, vec![v, w], false).unwrap_err();
    assert!(matches!(e, BlockError::Dependent { vector: 1, block: 0, .. }), "{e:?}");
}

/// ⟨u_i, u_j⟩ over every block is δ_ij (per chirality when doubled), P†P = 1, ⟨P†ψ, χ⟩ =
/// ⟨ψ, Pχ⟩, and a chirality-doubled basis commutes with γ5.
#[test]
fn reference_transfer_is_orthonormal_and_adjoint() {
    for (doubled, n) in [(false, 12), (true, 8)] {
        let basis = random_basis([4, 4, 4, 8], [2, 2, 4, 2], n, doubled, 3);
        let bl = basis.blocking();
        let mut worst: f64 = 0.0;
        for x in 0..bl.coarse_volume() {
            for i in 0..n {
                for j in 0..n {
                    let d: C = bl
                        .block_sites(x)
                        .iter()
                        .flat_map(|&s| (0..12).map(move |c| s as usize * 12 + c))
                        .map(|k| basis.vector(i)[k].conj() * basis.vector(j)[k])
                        .sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    worst = worst.max((d - want).norm());
                }
            }
        }
        assert!(worst < 1e-14, "block orthonormality {worst:e}");

        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let chi = random_vec(basis.coarse_len(), &mut rng);
        let psi = random_vec(basis.fine_len(), &mut rng);
        let mut pchi = zeros(basis.fine_len());
        basis.prolong(&chi, &mut pchi);
        let mut back = zeros(chi.len());
        basis.restrict(&pchi, &mut back);
        assert!(rel(&back, &chi) < 1e-14, "P†P = 1: {:e}", rel(&back, &chi));
        let mut rpsi = zeros(chi.len());
        basis.restrict(&psi, &mut rpsi);
        let lhs = fermion::dot(&rpsi, &chi);
        let rhs = fermion::dot(&psi, &pchi);
        assert!((lhs - rhs).norm() < 1e-12 * lhs.norm(), "adjointness {lhs} vs {rhs}");

        // γ5 P χ = P Γ5 χ exactly for a doubled basis; not at all otherwise.
        let mut g5p = pchi.clone();
        fermion::gamma5_in_place(&mut g5p);
        let mut pg5 = zeros(basis.fine_len());
        match basis.gamma5_signs() {
            Some(signs) => {
                let g5chi: Vec<C> = chi.iter().enumerate().map(|(i, z)| z * signs[i % n]).collect();
                basis.prolong(&g5chi, &mut pg5);
                assert!(rel(&pg5, &g5p) < 1e-15, "γ5 P = P Γ5: {:e}", rel(&pg5, &g5p));
            }
            None => assert!(!doubled),
        }
    }
}

fn dirac_pair(dims: [usize; 4], mass: f64, seed: u64, anti: bool) -> (GaugeField, DiracParams) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gauge = GaugeField::random(dims, &mut rng);
    let p = if anti {
        DiracParams::antiperiodic_time(mass, 1.0)
    } else {
        DiracParams::periodic(mass, 1.0)
    };
    (gauge, p)
}

/// D_c v = P† D P v with D the full reference operator, on coarse lattices with extents 1, 2
/// and 4 (extent 2: the +μ and −μ neighbours are one block, two stencil terms; extent 1: every
/// hop stays in the block).
#[test]
fn galerkin_stencil_equals_p_dagger_d_p() {
    for (dims, blocks, n, anti) in [
        ([4, 4, 4, 8], [4, 2, 2, 2], 6, false),
        ([4, 4, 4, 4], [2, 2, 2, 2], 5, true),
        ([4, 4, 4, 8], [2, 4, 4, 2], 12, true),
    ] {
        let (gauge, p) = dirac_pair(dims, -0.3, 5, anti);
        let d = WilsonClover::<f64>::new(&gauge, &p);
        let basis = random_basis(dims, blocks, n, false, 6);
        let dc = CoarseOperator::galerkin(&d, &basis);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let v = random_vec(basis.coarse_len(), &mut rng);
        let mut pv = zeros(basis.fine_len());
        basis.prolong(&v, &mut pv);
        let mut dpv = zeros(basis.fine_len());
        d.apply(&mut dpv, &pv);
        let mut want = zeros(v.len());
        basis.restrict(&dpv, &mut want);
        let mut got = zeros(v.len());
        dc.apply(&mut got, &v);
        assert!(rel(&got, &want) < 1e-13, "{dims:?}/{blocks:?}: {:e}", rel(&got, &want));
        // The same for D†: the scatter adjoint is P† D† P.
        d.apply_dagger(&mut dpv, &pv);
        basis.restrict(&dpv, &mut want);
        dc.apply_dagger(&mut got, &v);
        assert!(rel(&got, &want) < 1e-13, "dagger {dims:?}/{blocks:?}: {:e}", rel(&got, &want));
    }
}

/// The adjoint stencil (what the JIT kernel uses for D_c†) against the scatter adjoint, the
/// inner-product identity, and γ5-hermiticity D_c† = Γ5 D_c Γ5, which holds for a
/// chirality-doubled basis and fails for a plain one (the negative control).
#[test]
fn coarse_adjoint_and_gamma5_hermiticity() {
    let (gauge, p) = dirac_pair([4, 4, 4, 8], -0.4, 8, true);
    let d = WilsonClover::<f64>::new(&gauge, &p);
    for doubled in [true, false] {
        let basis = random_basis([4, 4, 4, 8], [2, 2, 2, 4], 8, doubled, 9);
        let dc = CoarseOperator::galerkin(&d, &basis);
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let x = random_vec(dc.len(), &mut rng);
        let y = random_vec(dc.len(), &mut rng);
        let (mut dx, mut ddy) = (zeros(dc.len()), zeros(dc.len()));
        dc.apply(&mut dx, &x);
        dc.apply_dagger(&mut ddy, &y);
        let lhs = fermion::dot(&y, &dx);
        let rhs = fermion::dot(&ddy, &x);
        assert!((lhs - rhs).norm() < 1e-12 * lhs.norm(), "⟨y, D_c x⟩ {lhs} vs ⟨D_c† y, x⟩ {rhs}");
        let gathered = gather_apply(&dc, &dc.dagger_coeffs(), &y);
        assert!(rel(&gathered, &ddy) < 1e-14, "adjoint stencil {:e}", rel(&gathered, &ddy));

        let n = dc.n_basis();
        let signs = basis
            .gamma5_signs()
            .unwrap_or_else(|| (0..n).map(|k| if k < n / 2 { 1.0 } else { -1.0 }).collect());
        let g5 =
            |v: &[C]| -> Vec<C> { v.iter().enumerate().map(|(i, z)| z * signs[i % n]).collect() };
        let mut t = zeros(dc.len());
        dc.apply(&mut t, &g5(&y));
        let g5dg5 = g5(&t);
        let err = rel(&g5dg5, &ddy);
        if doubled {
            assert!(err < 1e-13, "γ5-hermiticity {err:e}");
            assert_eq!(dc.gamma5_signs(), Some(&signs[..]));
        } else {
            assert!(err > 1e-2, "a plain basis cannot be γ5-hermitian: {err:e}");
        }
    }
}

/// y = Σ_d B_d(X) x(X + d) for stencil coefficients `coeffs` in the reference order.
fn gather_apply(dc: &CoarseOperator, coeffs: &[C], x: &[C]) -> Vec<C> {
    let n = dc.n_basis();
    let g = dc.geometry();
    let mut y = zeros(x.len());
    for s in 0..g.volume() {
        for d in 0..9 {
            let nb = symc::lattice::coarse::neighbour(g, s, d);
            for i in 0..n {
                for j in 0..n {
                    y[s * n + i] += coeffs[((s * 9 + d) * n + i) * n + j] * x[nb * n + j];
                }
            }
        }
    }
    y
}

/// JIT P† and P against the references in f64 (1e-13) and f32 (f32 round-off), on
/// lattice/block shapes where the SIMD lanes of a vector fall into distinct blocks, into
/// pairs of blocks, and where one box spans several outer sites along the split direction.
fn check_transfer<T: symc::codegen::simd::Element>(
    dims: [usize; 4],
    blocks: [usize; 4],
    n: usize,
    tol: f64,
) {
    let (gauge, p) = dirac_pair(dims, -0.3, 11, false);
    let d = JitWilsonClover::<T>::new(&gauge, &p, &DiracOptions::default()).unwrap();
    let basis = random_basis(dims, blocks, n, false, 12);
    let t = JitBlockTransfer::<T>::new(&basis, d.layout()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let psi = random_vec(basis.fine_len(), &mut rng);
    let chi = random_vec(basis.coarse_len(), &mut rng);
    let mut want = zeros(chi.len());
    basis.restrict(&psi, &mut want);
    let psi_t: Vec<Complex<T>> = fermion::cast_slice(&psi);
    let mut got_t = vec![Complex::new(T::zero(), T::zero()); chi.len()];
    CoarseSpace::restrict(&t, &psi_t, &mut got_t);
    let got: Vec<C> = fermion::cast_slice(&got_t);
    let e = rel(&got, &want);
    assert!(
        e < tol,
        "{} restrict {dims:?}/{blocks:?} boxes {:?}: {e:e}",
        T::PRECISION.name(),
        t.desc().boxes
    );
    let mut want = zeros(psi.len());
    basis.prolong(&chi, &mut want);
    let chi_t: Vec<Complex<T>> = fermion::cast_slice(&chi);
    let mut got_t = vec![Complex::new(T::zero(), T::zero()); psi.len()];
    CoarseSpace::prolong(&t, &chi_t, &mut got_t);
    let got: Vec<C> = fermion::cast_slice(&got_t);
    let e = rel(&got, &want);
    assert!(e < tol, "{} prolong {dims:?}/{blocks:?}: {e:e}", T::PRECISION.name());
}

#[test]
fn jit_transfer_matches_the_reference() {
    // f32 splits t into 4 lanes, f64 into 2: chunk 1, 2 and 4 against t-blocks of 2 and 4.
    for (dims, blocks) in [
        ([4, 4, 4, 4], [2, 2, 2, 2]),
        ([4, 4, 4, 8], [2, 2, 2, 2]),
        ([4, 4, 4, 8], [4, 2, 2, 4]),
        ([4, 4, 2, 16], [2, 4, 2, 2]),
    ] {
        check_transfer::<f64>(dims, blocks, 7, 1e-13);
        check_transfer::<f32>(dims, blocks, 12, 3e-6);
    }
}

/// With the JIT f64 kernels: ⟨P†ψ, χ⟩ = ⟨ψ, Pχ⟩ and P†P χ = χ, and the f32 native buffers
/// (the Dirac kernel's layout) give the same as the reference-layout entry points.
#[test]
fn jit_transfer_is_adjoint_and_orthonormal() {
    let dims = [4, 4, 4, 8];
    let (gauge, p) = dirac_pair(dims, -0.3, 14, false);
    let d64 = JitWilsonClover::<f64>::new(&gauge, &p, &DiracOptions::default()).unwrap();
    let basis = random_basis(dims, [2, 2, 2, 4], 12, false, 15);
    let t = JitBlockTransfer::<f64>::new(&basis, d64.layout()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let psi = random_vec(basis.fine_len(), &mut rng);
    let chi = random_vec(basis.coarse_len(), &mut rng);
    let (mut rpsi, mut pchi, mut back) = (zeros(chi.len()), zeros(psi.len()), zeros(chi.len()));
    t.restrict(&psi, &mut rpsi);
    t.prolong(&chi, &mut pchi);
    t.restrict(&pchi, &mut back);
    let lhs = fermion::dot(&rpsi, &chi);
    let rhs = fermion::dot(&psi, &pchi);
    assert!((lhs - rhs).norm() < 1e-13 * lhs.norm(), "{lhs} vs {rhs}");
    assert!(rel(&back, &chi) < 1e-14, "P†P = 1: {:e}", rel(&back, &chi));

    let d32 = JitWilsonClover::<f32>::new(&gauge, &p, &DiracOptions::default()).unwrap();
    let t32 = JitBlockTransfer::<f32>::new(&basis, d32.layout()).unwrap();
    let layout = d32.layout();
    let mut buf = vec![0.0f32; layout.field_len()];
    layout.to_aosoa(&psi, &mut buf);
    let mut native = vec![Complex::new(0.0f32, 0.0); chi.len()];
    t32.restrict_aosoa(&buf, &mut native).unwrap();
    let mut via_ref = vec![Complex::new(0.0f32, 0.0); chi.len()];
    let psi32: Vec<Complex<f32>> = fermion::cast_slice(&psi);
    CoarseSpace::restrict(&t32, &psi32, &mut via_ref);
    assert_eq!(native, via_ref, "native and reference-layout restriction differ");
    // Wrong coarse lengths are errors, not panics.
    assert!(t32.restrict_aosoa(&buf, &mut native[..5]).is_err());
}

/// The JIT coarse stencil (and its adjoint) against the reference, for row counts that are
/// and are not whole vectors and coarse extents 1, 2 and 4.
#[test]
fn jit_coarse_operator_matches_the_reference() {
    for (dims, blocks, n) in [
        ([4, 4, 4, 8], [4, 2, 2, 2], 12),
        ([4, 4, 4, 8], [2, 2, 4, 2], 5),
        ([4, 4, 4, 4], [2, 2, 2, 2], 6),
        ([4, 4, 4, 4], [2, 2, 2, 2], 17),
    ] {
        let (gauge, p) = dirac_pair(dims, -0.3, 17, true);
        let d = WilsonClover::<f64>::new(&gauge, &p);
        let basis = random_basis(dims, blocks, n, false, 18);
        let dc = CoarseOperator::galerkin(&d, &basis);
        let j64 = JitCoarseOperator::<f64>::new(&dc).unwrap();
        let j32 = JitCoarseOperator::<f32>::new(&dc).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(19);
        let x = random_vec(dc.len(), &mut rng);
        for dagger in [false, true] {
            let mut want = zeros(x.len());
            if dagger {
                dc.apply_dagger(&mut want, &x)
            } else {
                dc.apply(&mut want, &x)
            }
            let mut got = zeros(x.len());
            j64.try_apply(dagger, &mut got, &x).unwrap();
            assert!(
                rel(&got, &want) < 1e-14,
                "f64 {dims:?}/{blocks:?} n={n} dagger={dagger}: {:e}",
                rel(&got, &want)
            );
            let x32: Vec<Complex<f32>> = fermion::cast_slice(&x);
            let mut g32 = vec![Complex::new(0.0f32, 0.0); x.len()];
            j32.try_apply(dagger, &mut g32, &x32).unwrap();
            let got: Vec<C> = fermion::cast_slice(&g32);
            assert!(
                rel(&got, &want) < 1e-6,
                "f32 {dims:?} n={n} dagger={dagger}: {:e}",
                rel(&got, &want)
            );
        }
        // Adjoint identity on the kernels themselves.
        let y = random_vec(dc.len(), &mut rng);
        let (mut dx, mut ddy) = (zeros(x.len()), zeros(x.len()));
        LinearOperator::apply(&j64, &mut dx, &x);
        AdjointOperator::apply_dagger(&j64, &mut ddy, &y);
        let (lhs, rhs) = (fermion::dot(&y, &dx), fermion::dot(&ddy, &x));
        assert!((lhs - rhs).norm() < 1e-12 * lhs.norm());
        // The kernel writes whole outputs: a wrong length is an error.
        assert!(j64.try_apply(false, &mut dx[1..], &x[1..]).is_err());
    }
}

/// Gauge covariance of the whole coarse space: the set-up on U' = Ω U Ω† from the transformed
/// starts Ω v gives the basis Ω ū (to the set-up's rounding, see below), the coarse
/// vectors are invariant, P'†(Ωψ) = P†ψ, and the coarse operator is the same matrix.
#[test]
fn the_coarse_space_is_gauge_covariant() {
    let dims = [4, 4, 4, 8];
    let (gauge, p) = dirac_pair(dims, -0.5, 20, false);
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let omega = gauge.random_transformation(&mut rng);
    let gauge2 = gauge.gauge_transform(&omega);
    let starts: Vec<Vec<C>> =
        (0..6).map(|_| FermionField::<f64>::random_gaussian(dims, &mut rng).data).collect();
    let starts2: Vec<Vec<C>> = starts
        .iter()
        .map(|v| FermionField { data: v.clone(), dims }.gauge_transform(&omega).data)
        .collect();
    let setup = NearNullParams { iterations: 30, restart: 20, tol: 1e-7 };
    let d1 = WilsonClover::<f64>::new(&gauge, &p);
    let d2 = WilsonClover::<f64>::new(&gauge2, &p);
    let (u1, r1) = near_null_vectors(&d1, None, starts, &setup).unwrap();
    let (u2, _) = near_null_vectors(&d2, None, starts2, &setup).unwrap();
    assert!(r1.iter().all(|r| r.true_residual < 2e-7), "set-up did not reach its tolerance");
    // u = v − e with ‖v‖ = 1 cancels: the set-up's rounding (ε per step, relative to ‖v‖)
    // reaches u amplified by ‖v‖/‖u‖ (~3e6 here). That, not the algebra, bounds the agreement.
    let smallest = u1.iter().map(|u| fermion::norm(u)).fold(f64::INFINITY, f64::min);
    let bound = 20.0 * f64::EPSILON / smallest;
    let blocks = [2, 2, 2, 4];
    let b1 = BlockBasis::orthonormalize(Blocking::new(dims, blocks).unwrap(), u1, false).unwrap();
    let b2 = BlockBasis::orthonormalize(Blocking::new(dims, blocks).unwrap(), u2, false).unwrap();
    let b1t = b1.gauge_transform(&omega);
    let worst = (0..6).map(|k| rel(b2.vector(k), b1t.vector(k))).fold(0.0f64, f64::max);
    assert!(worst < bound, "set-up on U' vs Ω·(set-up on U): {worst:e} (bound {bound:e})");
    assert!(bound < 1e-7, "the bound must stay meaningful: {bound:e}");

    // P'†(Ωψ) = P†ψ with the transformed basis, on the JIT kernels.
    let psi = random_vec(12 * 512, &mut rng);
    let opsi = FermionField { data: psi.clone(), dims }.gauge_transform(&omega).data;
    let l = JitWilsonClover::<f64>::new(&gauge, &p, &DiracOptions::default()).unwrap();
    let l2 = JitWilsonClover::<f64>::new(&gauge2, &p, &DiracOptions::default()).unwrap();
    let t1 = JitBlockTransfer::<f64>::new(&b1, l.layout()).unwrap();
    let t2 = JitBlockTransfer::<f64>::new(&b1t, l2.layout()).unwrap();
    let (mut c1, mut c2) = (zeros(b1.coarse_len()), zeros(b1.coarse_len()));
    t1.restrict(&psi, &mut c1);
    t2.restrict(&opsi, &mut c2);
    assert!(rel(&c2, &c1) < 1e-12, "P'†(Ωψ) vs P†ψ: {:e}", rel(&c2, &c1));
    // The set-up's own basis on U' gives invariant coarse vectors too, to its precision.
    let mut c3 = zeros(b1.coarse_len());
    b2.restrict(&opsi, &mut c3);
    assert!(rel(&c3, &c1) < bound, "{:e}", rel(&c3, &c1));

    let dc1 = CoarseOperator::galerkin(&d1, &b1);
    let dc2 = CoarseOperator::galerkin(&d2, &b1t);
    assert!(
        rel(dc2.coeffs(), dc1.coeffs()) < 1e-12,
        "D_c' vs D_c: {:e}",
        rel(dc2.coeffs(), dc1.coeffs())
    );
    // Negative control: the untransformed basis on U' is a different coarse space.
    let dc3 = CoarseOperator::galerkin(&d2, &b1);
    assert!(rel(dc3.coeffs(), dc1.coeffs()) > 1e-2);
}
