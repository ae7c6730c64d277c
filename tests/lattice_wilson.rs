//! Physics tests of the Wilson-clover operator (physics.md §2), each against an independent fact:
//! the free-field momentum-space formula, γ5-hermiticity, the adjoint identity, gauge covariance,
//! a naive full-spin-matrix stencil written here from the textbook formula, Hermiticity and
//! block structure of the clover term, and f32/f64 agreement.

use num_complex::{Complex, Complex64};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use symc::lattice::fermion::{self, FermionField};
use symc::lattice::gamma::{self, SpinMatrix};
use symc::lattice::gauge::GaugeField;
use symc::lattice::su3::Su3;
use symc::lattice::wilson::{DiracParams, WilsonClover};

type C = Complex64;

fn c(re: f64, im: f64) -> C {
    C::new(re, im)
}

fn rel_diff(a: &[C], b: &[C]) -> f64 {
    let mut d = vec![c(0.0, 0.0); a.len()];
    fermion::sub(&mut d, a, b);
    fermion::norm(&d) / fermion::norm(b)
}

fn twisted() -> DiracParams {
    // GPT's boundary-bug catcher: a different complex phase in every direction.
    DiracParams {
        mass: -0.31,
        csw: 1.3,
        boundary_phases: std::array::from_fn(|mu| C::from_polar(1.0, mu as f64 + 1.0)),
    }
}

/// The naive reference: every term of physics.md §1.1 with full 4×4 spin matrices, coordinates
/// recomputed per site, boundary phases applied where a hop wraps, and the clover term from
/// σ_μν = (i/2)[γ_μ,γ_ν] summed over all ordered pairs with leaves built from coordinates.
fn naive_apply(gauge: &GaugeField, p: &DiracParams, psi: &[C]) -> Vec<C> {
    let g = &gauge.geom;
    let dims = g.dims;
    let vol = g.volume();
    let shift = |x: [usize; 4], mu: usize, d: isize| -> ([usize; 4], bool) {
        let mut y = x;
        let l = dims[mu] as isize;
        let v = x[mu] as isize + d;
        y[mu] = v.rem_euclid(l) as usize;
        (y, v < 0 || v >= l)
    };
    let link = |x: [usize; 4], mu: usize| *gauge.link(g.index(x), mu);
    let one = gamma::identity();
    let mut out = vec![c(0.0, 0.0); vol * 12];
    for s in 0..vol {
        let x = g.coords(s);
        let mut o = [c(0.0, 0.0); 12];
        let mut add = |spin: &SpinMatrix, col: &Su3<f64>, v: &[C], coef: C| {
            for a in 0..4 {
                for b in 0..4 {
                    if spin[a][b] == c(0.0, 0.0) {
                        continue;
                    }
                    for i in 0..3 {
                        for j in 0..3 {
                            o[a * 3 + i] += coef * spin[a][b] * col.m[i][j] * v[b * 3 + j];
                        }
                    }
                }
            }
        };
        // Mass term.
        add(&one, &Su3::identity(), &psi[s * 12..s * 12 + 12], c(4.0 + p.mass, 0.0));
        for mu in 0..4 {
            let (xp, wrap_p) = shift(x, mu, 1);
            let (xm, wrap_m) = shift(x, mu, -1);
            let ph_p = if wrap_p { p.boundary_phases[mu] } else { c(1.0, 0.0) };
            let ph_m = if wrap_m { p.boundary_phases[mu].conj() } else { c(1.0, 0.0) };
            let minus = gamma::add_scaled(&one, c(-1.0, 0.0), &gamma::gamma(mu));
            let plus = gamma::add_scaled(&one, c(1.0, 0.0), &gamma::gamma(mu));
            let ip = g.index(xp);
            let im = g.index(xm);
            add(&minus, &link(x, mu), &psi[ip * 12..ip * 12 + 12], -0.5 * ph_p);
            add(&plus, &link(xm, mu).adj(), &psi[im * 12..im * 12 + 12], -0.5 * ph_m);
        }
        if p.csw != 0.0 {
            for mu in 0..4 {
                for nu in 0..4 {
                    if mu == nu {
                        continue;
                    }
                    let f = naive_field_strength(gauge, x, mu, nu, &shift);
                    add(&gamma::sigma(mu, nu), &f, &psi[s * 12..s * 12 + 12], c(0.0, p.csw / 4.0));
                }
            }
        }
        out[s * 12..s * 12 + 12].copy_from_slice(&o);
    }
    out
}

/// F̂_μν(x) = (Q − Q†)/8 with the four leaves written out from coordinates.
fn naive_field_strength(
    gauge: &GaugeField,
    x: [usize; 4],
    mu: usize,
    nu: usize,
    shift: &dyn Fn([usize; 4], usize, isize) -> ([usize; 4], bool),
) -> Su3<f64> {
    let g = &gauge.geom;
    let u = |y: [usize; 4], d: usize| *gauge.link(g.index(y), d);
    // Each leaf as a closed path of steps (direction, ±1) walked from x, counter-clockwise.
    let paths: [[(usize, isize); 4]; 4] = [
        [(mu, 1), (nu, 1), (mu, -1), (nu, -1)],
        [(nu, 1), (mu, -1), (nu, -1), (mu, 1)],
        [(mu, -1), (nu, -1), (mu, 1), (nu, 1)],
        [(nu, -1), (mu, 1), (nu, 1), (mu, -1)],
    ];
    let mut q = Su3::zero();
    for path in paths {
        let mut y = x;
        let mut m = Su3::identity();
        for (d, step) in path {
            if step > 0 {
                m = m * u(y, d);
                y = shift(y, d, 1).0;
            } else {
                let (ym, _) = shift(y, d, -1);
                m = m * u(ym, d).adj();
                y = ym;
            }
        }
        assert_eq!(y, x, "leaf must close");
        q += m;
    }
    (q - q.adj()).scale(c(0.125, 0.0))
}

fn random_setup(dims: [usize; 4], seed: u64) -> (GaugeField, ChaCha8Rng) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gauge = GaugeField::random(dims, &mut rng);
    (gauge, rng)
}

#[test]
fn fast_operator_equals_naive_stencil_with_and_without_clover() {
    let (gauge, mut rng) = random_setup([4, 4, 2, 6], 11);
    let psi = FermionField::<f64>::random_gaussian(gauge.dims(), &mut rng);
    for p in
        [twisted(), DiracParams { csw: 0.0, ..twisted() }, DiracParams::antiperiodic_time(0.2, 1.0)]
    {
        let d = WilsonClover::<f64>::new(&gauge, &p);
        let mut out = vec![c(0.0, 0.0); psi.data.len()];
        d.apply(&mut out, &psi.data);
        let want = naive_apply(&gauge, &p, &psi.data);
        let e = rel_diff(&out, &want);
        assert!(e < 1e-14, "fast vs naive ({p:?}): relative error {e:e}");
    }
}

#[test]
fn csw_zero_is_plain_wilson_and_clover_changes_the_operator() {
    let (gauge, mut rng) = random_setup([4, 4, 4, 4], 12);
    let psi = FermionField::<f64>::random_gaussian(gauge.dims(), &mut rng);
    let wil = DiracParams::periodic(-0.4, 0.0);
    let d0 = WilsonClover::<f64>::new(&gauge, &wil);
    let mut a = vec![c(0.0, 0.0); psi.data.len()];
    d0.apply(&mut a, &psi.data);
    let want = naive_apply(&gauge, &wil, &psi.data);
    assert!(rel_diff(&a, &want) < 1e-14);
    // Every clover block at c_sw = 0 is exactly (4 + m)·1.
    for s in 0..gauge.geom.volume() {
        for b in 0..2 {
            let m = d0.clover_block(s, b);
            for i in 0..6 {
                for j in 0..6 {
                    let want = if i == j { 3.6 } else { 0.0 };
                    assert!((m[i][j] - c(want, 0.0)).norm() < 1e-15);
                }
            }
        }
    }
    // Negative control: on a rough gauge field c_sw = 1 differs at O(1).
    let d1 = WilsonClover::<f64>::new(&gauge, &DiracParams::periodic(-0.4, 1.0));
    let mut b = vec![c(0.0, 0.0); psi.data.len()];
    d1.apply(&mut b, &psi.data);
    assert!(rel_diff(&b, &a) > 0.05);
}

/// Plane wave e^{ip·x} u on the unit gauge field with momenta p_μ = (2π n_μ + θ_μ)/L_μ.
fn plane_wave(dims: [usize; 4], p: [f64; 4], u: &[C; 12]) -> Vec<C> {
    let g = symc::lattice::geometry::Geometry::new(dims);
    let mut v = vec![c(0.0, 0.0); g.volume() * 12];
    for s in 0..g.volume() {
        let x = g.coords(s);
        let phase = C::from_polar(1.0, (0..4).map(|m| p[m] * x[m] as f64).sum());
        for k in 0..12 {
            v[s * 12 + k] = phase * u[k];
        }
    }
    v
}

#[test]
fn free_field_plane_waves_have_the_momentum_space_eigenvalues() {
    let dims = [4, 4, 4, 6];
    let gauge = GaugeField::unit(dims);
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mass = -0.7;
    // θ_μ: periodic, antiperiodic time, and a twisted case.
    let cases: [[f64; 4]; 3] =
        [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, std::f64::consts::PI], [0.3, 1.1, -0.4, 2.0]];
    for theta in cases {
        let mut params = DiracParams::periodic(mass, 1.0);
        for mu in 0..4 {
            params.boundary_phases[mu] = C::from_polar(1.0, theta[mu]);
        }
        let d = WilsonClover::<f64>::new(&gauge, &params);
        for n in [[0, 0, 0, 0], [1, 0, 0, 0], [0, 2, 1, 0], [3, 1, 2, 5], [1, 1, 1, 1]] {
            let p: [f64; 4] = std::array::from_fn(|m| {
                (2.0 * std::f64::consts::PI * n[m] as f64 + theta[m]) / dims[m] as f64
            });
            let u: [C; 12] = std::array::from_fn(|_| {
                let s = FermionField::<f64>::random_gaussian([1, 1, 1, 1], &mut rng);
                s.data[0]
            });
            let psi = plane_wave(dims, p, &u);
            let mut dpsi = vec![c(0.0, 0.0); psi.len()];
            d.apply(&mut dpsi, &psi);
            // D(p) = m + Σ(1 − cos p) + i Σ γ_μ sin p_μ applied to u, on every site.
            let a = mass + p.iter().map(|q| 1.0 - q.cos()).sum::<f64>();
            let mut dp = gamma::add_scaled(&[[c(0.0, 0.0); 4]; 4], c(a, 0.0), &gamma::identity());
            for mu in 0..4 {
                dp = gamma::add_scaled(&dp, c(0.0, p[mu].sin()), &gamma::gamma(mu));
            }
            let mut du = [c(0.0, 0.0); 12];
            for s1 in 0..4 {
                for s2 in 0..4 {
                    for col in 0..3 {
                        du[s1 * 3 + col] += dp[s1][s2] * u[s2 * 3 + col];
                    }
                }
            }
            let want = plane_wave(dims, p, &du);
            let e = rel_diff(&dpsi, &want);
            assert!(e < 1e-13, "θ = {theta:?}, n = {n:?}: error {e:e}");
            // Basis-free form of the same fact: (D − a)² = −Σ sin² p_μ on the plane wave, so
            // the eigenvalues are a ± i·sqrt(Σ sin² p).
            let s2: f64 = p.iter().map(|q| q.sin().powi(2)).sum();
            let mut ddpsi = vec![c(0.0, 0.0); psi.len()];
            d.apply(&mut ddpsi, &dpsi);
            // D²ψ − 2a Dψ + (a² + s²) ψ = 0.
            let mut r = ddpsi.clone();
            fermion::axpy(c(-2.0 * a, 0.0), &dpsi, &mut r);
            fermion::axpy(c(a * a + s2, 0.0), &psi, &mut r);
            let e2 = fermion::norm(&r) / fermion::norm(&psi);
            assert!(e2 < 1e-12, "θ = {theta:?}, n = {n:?}: quadratic identity {e2:e}");
        }
    }
}

#[test]
fn smallest_free_eigenvalue_modulus_periodic_vs_antiperiodic() {
    // With m = 0 and periodic BCs the zero mode p = 0 is in the kernel: D·const = 0. With
    // antiperiodic time the constant is not an eigenvector, and no plane wave has p_t = 0.
    let dims = [2, 2, 2, 4];
    let gauge = GaugeField::unit(dims);
    let u: [C; 12] = std::array::from_fn(|k| c(k as f64 + 1.0, 0.5));
    let psi = plane_wave(dims, [0.0; 4], &u);
    let mut out = vec![c(0.0, 0.0); psi.len()];
    WilsonClover::<f64>::new(&gauge, &DiracParams::periodic(0.0, 1.0)).apply(&mut out, &psi);
    assert!(fermion::norm(&out) < 1e-13);
    WilsonClover::<f64>::new(&gauge, &DiracParams::antiperiodic_time(0.0, 1.0))
        .apply(&mut out, &psi);
    assert!(fermion::norm(&out) > 0.1 * fermion::norm(&psi));
}

#[test]
fn gamma5_hermiticity_and_adjoint_identity() {
    let (gauge, mut rng) = random_setup([4, 2, 4, 4], 14);
    let d = WilsonClover::<f64>::new(&gauge, &twisted());
    let n = d.vector_len();
    let phi = FermionField::<f64>::random_gaussian(gauge.dims(), &mut rng);
    let chi = FermionField::<f64>::random_gaussian(gauge.dims(), &mut rng);
    // D† (explicit kernel) = γ5 D γ5.
    let mut ddag = vec![c(0.0, 0.0); n];
    d.apply_dagger(&mut ddag, &chi.data);
    let mut g5d = vec![c(0.0, 0.0); n];
    d.apply(&mut g5d, &chi.gamma5().data);
    fermion::gamma5_in_place(&mut g5d);
    let e = rel_diff(&ddag, &g5d);
    assert!(e < 1e-14, "γ5-hermiticity: {e:e}");
    // ⟨φ, Dχ⟩ = conj⟨χ, D†φ⟩.
    let mut dchi = vec![c(0.0, 0.0); n];
    d.apply(&mut dchi, &chi.data);
    let mut ddphi = vec![c(0.0, 0.0); n];
    d.apply_dagger(&mut ddphi, &phi.data);
    let lhs = fermion::dot(&phi.data, &dchi);
    let rhs = fermion::dot(&chi.data, &ddphi).conj();
    assert!((lhs - rhs).norm() < 1e-12 * lhs.norm(), "adjoint: {lhs} vs {rhs}");
    // Negative control: D is not Hermitian, so ⟨φ, Dχ⟩ ≠ conj⟨χ, Dφ⟩.
    let mut dphi = vec![c(0.0, 0.0); n];
    d.apply(&mut dphi, &phi.data);
    let wrong = fermion::dot(&chi.data, &dphi).conj();
    assert!((lhs - wrong).norm() > 1e-3 * lhs.norm());
}

#[test]
fn gauge_covariance_to_round_off() {
    let (gauge, mut rng) = random_setup([4, 4, 4, 4], 15);
    let omega = gauge.random_transformation(&mut rng);
    let gauge_t = gauge.gauge_transform(&omega);
    let psi = FermionField::<f64>::random_gaussian(gauge.dims(), &mut rng);
    for p in [twisted(), DiracParams::periodic(-0.55, 1.0)] {
        let d = WilsonClover::<f64>::new(&gauge, &p);
        let dt = WilsonClover::<f64>::new(&gauge_t, &p);
        let mut a = FermionField::<f64>::zeros(gauge.dims());
        d.apply(&mut a.data, &psi.data);
        let want = a.gauge_transform(&omega);
        let mut got = vec![c(0.0, 0.0); a.data.len()];
        dt.apply(&mut got, &psi.gauge_transform(&omega).data);
        let e = rel_diff(&got, &want.data);
        assert!(e < 1e-13, "gauge covariance: {e:e}");
        // Negative control: transforming the field but not the spinor breaks the identity.
        dt.apply(&mut got, &psi.data);
        assert!(rel_diff(&got, &want.data) > 0.1);
    }
}

#[test]
fn clover_term_is_hermitian_and_two_6x6_blocks() {
    let (gauge, _) = random_setup([2, 4, 2, 4], 16);
    let d = WilsonClover::<f64>::new(&gauge, &DiracParams::periodic(-0.5, 1.7));
    let vol = gauge.geom.volume();
    let n = d.vector_len();
    let mut max_offblock: f64 = 0.0;
    let mut max_nonherm: f64 = 0.0;
    let mut max_block_mismatch: f64 = 0.0;
    let mut max_offdiag: f64 = 0.0;
    for s in [0, 5, vol - 1] {
        // Dense 12×12 A(x) from unit vectors through apply_clover.
        let mut a = [[c(0.0, 0.0); 12]; 12];
        for j in 0..12 {
            let mut e = vec![c(0.0, 0.0); n];
            e[s * 12 + j] = c(1.0, 0.0);
            let mut o = vec![c(0.0, 0.0); n];
            d.apply_clover(&mut o, &e);
            for i in 0..12 {
                a[i][j] = o[s * 12 + i];
            }
            // Site-local: nothing leaks to other sites.
            let other: f64 = (0..n).filter(|k| k / 12 != s).map(|k| o[k].norm()).sum();
            assert_eq!(other, 0.0);
        }
        for i in 0..12 {
            for j in 0..12 {
                max_nonherm = max_nonherm.max((a[i][j] - a[j][i].conj()).norm());
                if (i < 6) != (j < 6) {
                    max_offblock = max_offblock.max(a[i][j].norm());
                } else {
                    let blk = d.clover_block(s, i / 6);
                    max_block_mismatch =
                        max_block_mismatch.max((blk[i % 6][j % 6] - a[i][j]).norm());
                    if i != j {
                        max_offdiag = max_offdiag.max(a[i][j].norm());
                    }
                }
            }
        }
        // The same matrix from the naive textbook formula (random field, so F ≠ 0).
        for j in 0..12 {
            let mut e = vec![c(0.0, 0.0); n];
            e[s * 12 + j] = c(1.0, 0.0);
            let p = DiracParams::periodic(-0.5, 1.7);
            let full = naive_apply(&gauge, &p, &e);
            // Subtract the hopping part (naive with csw = 0 minus its diagonal).
            let hop = naive_apply(&gauge, &DiracParams { csw: 0.0, ..p }, &e);
            for i in 0..12 {
                let naive = full[s * 12 + i] - hop[s * 12 + i]
                    + if i == j { c(3.5, 0.0) } else { c(0.0, 0.0) };
                assert!((naive - a[i][j]).norm() < 1e-14, "A[{i}][{j}] at site {s}");
            }
        }
    }
    assert!(max_nonherm < 1e-15, "clover not Hermitian: {max_nonherm:e}");
    assert_eq!(max_offblock, 0.0, "clover couples chiralities");
    assert!(max_block_mismatch < 1e-15);
    assert!(max_offdiag > 1e-2, "the test must see a non-trivial clover term");
}

#[test]
fn f32_agrees_with_f64() {
    let (gauge, mut rng) = random_setup([4, 4, 4, 8], 17);
    let p = twisted();
    let psi = FermionField::<f64>::random_gaussian(gauge.dims(), &mut rng);
    let d64 = WilsonClover::<f64>::new(&gauge, &p);
    let d32 = WilsonClover::<f32>::new(&gauge, &p);
    let mut o64 = vec![c(0.0, 0.0); psi.data.len()];
    d64.apply(&mut o64, &psi.data);
    let psi32: Vec<Complex<f32>> = fermion::cast_slice(&psi.data);
    let mut o32 = vec![Complex::new(0.0f32, 0.0); psi.data.len()];
    d32.apply(&mut o32, &psi32);
    let e = rel_diff(&fermion::cast_slice(&o32), &o64);
    assert!(e < 3e-7 && e > 1e-9, "f32 vs f64: {e:e} (must be f32 round-off, not 0)");
    d32.apply_dagger(&mut o32, &psi32);
    d64.apply_dagger(&mut o64, &psi.data);
    assert!(rel_diff(&fermion::cast_slice(&o32), &o64) < 3e-7);
}

#[test]
fn unit_gauge_field_clover_vanishes() {
    let gauge = GaugeField::unit([2, 2, 4, 4]);
    let d = WilsonClover::<f64>::new(&gauge, &DiracParams::periodic(0.1, 1.9));
    for s in 0..gauge.geom.volume() {
        for b in 0..2 {
            let m = d.clover_block(s, b);
            for i in 0..6 {
                for j in 0..6 {
                    let want = if i == j { 4.1 } else { 0.0 };
                    assert!((m[i][j] - c(want, 0.0)).norm() < 1e-15);
                }
            }
        }
    }
}
