//! Pooled multigrid levels (`level ...(pool = FAMILY) { coarse layers }`, models.md §1.7):
//! the JIT pooling and unpooling against the naive twin (`ReferencePool`), unpooling as the
//! adjoint of pooling, the coarse gauge field (SU(3), cold plaquette 1, gauge covariance at the
//! reference points), the whole pooled network against a naive composition, every weight
//! gradient (pooling, coarse layers, fine layers) against central finite differences, and gauge
//! equivariance of pool → coarse PTC/lPTC → unpool (and of the whole network) on the compiled
//! kernels, and the level's JIT backward pass against the naive twin's. All in f64 on 4^4
//! with 2^4 blocks (a 2^4 coarse lattice), plus one f32 native-path check on 4^3 x 8.

mod common;

use common::zeros;
use num_complex::Complex64;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use symc::ir::levels::split_level;
use symc::lattice::fermion::{self, FermionField};
use symc::lattice::gauge::GaugeField;
use symc::lattice::su3::Su3;
use symc::lattice::wilson::{DiracParams, WilsonClover};
use symc::runtime::FermionNet;
use symc::runtime::lattice_reference::{ReferenceLatticeNet, ReferencePool, gauge_rotate};
use symc::runtime::multigrid_net::{BasisCache, MultigridNet};
use symc::runtime::pool::{PoolLevel, coarse_gauge};

type C = Complex64;
const DIMS: [usize; 4] = [4, 4, 4, 4];

fn model(pool: &str, connect: &str, coarse: &str, fine: &str) -> String {
    model_on("4 x 4 x 4 x 4", "[2, 2, 2, 2]", pool, connect, coarse, fine)
}

fn model_on(
    lattice: &str,
    blocks: &str,
    pool: &str,
    connect: &str,
    coarse: &str,
    fine: &str,
) -> String {
    format!(
        "network pooled {{
            lattice {lattice}
            input v: fermion
            symmetry gauge(SU3), translation
            level coarse(blocks = {blocks}, pool = {pool}, connect = {connect}) {{
                {coarse}
            }}
            {fine}
            output fermion
        }}"
    )
}

fn rel(a: &[C], b: &[C]) -> f64 {
    let mut d = zeros(a.len());
    fermion::sub(&mut d, a, b);
    fermion::norm(&d) / fermion::norm(b).max(1e-300)
}

fn dot(a: &[C], b: &[C]) -> C {
    a.iter().zip(b).map(|(x, y)| x.conj() * y).sum()
}

fn gaussian(n: usize, rng: &mut ChaCha8Rng, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, rng) * scale)
        .collect()
}

struct Case {
    graph: symc::ir::Graph,
    gauge: GaugeField,
    dirac: DiracParams,
    net: MultigridNet<f64>,
    params: Vec<f64>,
    b: Vec<C>,
}

/// Random gauge field, weights = identity-like init plus noise of size `noise`.
fn case(text: &str, seed: u64, noise: f64) -> Case {
    let graph = symc::sema::compile_str("pooled.sym", text).expect("model compiles");
    let dims = graph.lattice.expect("a lattice network").dims;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gauge = GaugeField::random(dims, &mut rng);
    let dirac = DiracParams::periodic(0.1, 1.0);
    let net = MultigridNet::<f64>::compile(&graph, &gauge, &dirac, BasisCache::None).unwrap();
    let init = symc::runtime::init::init_params(&graph, seed);
    let params: Vec<f64> = init
        .iter()
        .zip(gaussian(init.len(), &mut rng, noise))
        .map(|(p, n)| *p as f64 + n)
        .collect();
    let b = FermionField::<f64>::random_gaussian(dims, &mut rng).data;
    Case { graph, gauge, dirac, net, params, b }
}

const PTC: &str = "linear(1 -> 1, hops = 1)";

/// Every whole-transfer word, a reference point away from the origin (routes with backward
/// steps), and a list with loop fields.
const FAMILIES: &[&str] = &[
    "static",
    "lexicographic",
    "cyclic",
    "reversed_lexicographic",
    "one_step_lexicographic, reference = [1, 1, 0, 1]",
    "static, reference = [1, 0, 1, 0]",
    "[one_step_reversed_lexicographic, lexicographic(times = clover(x, t)), \
      reversed_lexicographic(times = plaquette(z, y))], reference = [0, 1, 1, 1]",
];

#[test]
fn jit_pooling_and_unpooling_match_the_naive_twin_and_are_adjoint() {
    for family in FAMILIES {
        let k = case(&model(family, "correct", PTC, PTC), 3, 0.3);
        let (level, _) = split_level(&k.graph).unwrap().unwrap();
        let pool = k.net.pool().expect("a pooled level");
        let naive = ReferencePool::new(&level, &k.gauge).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let nc = k.b.len() / 16;
        let mut chi = zeros(nc);
        pool.pool(&k.params, &k.b, &mut chi).unwrap();
        let want = naive.pool(&k.params, &k.b);
        let e = rel(&chi, &want);
        assert!(e < 1e-12, "{family}: JIT pool vs naive {e:e}");
        let x: Vec<C> = FermionField::<f64>::random_gaussian([2, 2, 2, 2], &mut rng).data;
        let mut psi = zeros(k.b.len());
        pool.unpool(&k.params, &x, &mut psi).unwrap();
        let e = rel(&psi, &naive.unpool(&k.params, &x));
        assert!(e < 1e-12, "{family}: JIT unpool vs naive {e:e}");
        // ⟨χ, Pool ψ⟩ = ⟨Unpool χ, ψ⟩.
        let (l, r) = (dot(&x, &chi), dot(&psi, &k.b));
        assert!((l - r).norm() < 1e-12 * l.norm().max(1.0), "{family}: adjoint {l} vs {r}");
        // Negative control: other weights give another pooling, far beyond the tolerance.
        if !family.starts_with("static") {
            let other: Vec<f64> = k.params.iter().map(|p| p * (1.0 + 1e-6)).collect();
            pool.pool(&other, &k.b, &mut chi).unwrap();
            assert!(rel(&chi, &want) > 1e-8, "{family}: the check cannot see a weight change");
        }
    }
}

#[test]
fn static_pooling_is_an_isometry_of_the_coarse_lattice() {
    // Ĝ(x) is unitary and divided by √|block|: Pool ∘ Unpool = 1, from any reference point.
    for text in ["static", "static, reference = [1, 1, 0, 1]"] {
        let k = case(&model(text, "correct", PTC, PTC), 8, 0.0);
        let pool = k.net.pool().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x: Vec<C> = FermionField::<f64>::random_gaussian([2, 2, 2, 2], &mut rng).data;
        let mut psi = zeros(k.b.len());
        pool.unpool(&k.params, &x, &mut psi).unwrap();
        let mut back = zeros(x.len());
        pool.pool(&k.params, &psi, &mut back).unwrap();
        assert!(rel(&back, &x) < 1e-13, "{text}: Pool(Unpool(x)) != x: {:e}", rel(&back, &x));
    }
}

fn su3_dist_to_unitary(u: &Su3<f64>) -> f64 {
    (*u * u.adj()).dist(&Su3::identity()) + (u.det() - C::new(1.0, 0.0)).norm()
}

#[test]
fn the_coarse_gauge_field_is_su3_covariant_and_cold_on_a_cold_field() {
    for (pool, r) in [("lexicographic", [0; 4]), ("cyclic, reference = [1, 0, 1, 1]", [1, 0, 1, 1])]
    {
        let k = case(&model(pool, "correct", PTC, PTC), 5, 0.1);
        let (level, _) = split_level(&k.graph).unwrap().unwrap();
        let blocking = symc::lattice::blocks::Blocking::new(DIMS, level.blocks).unwrap();
        let uc = coarse_gauge(&k.gauge, &blocking, r);
        let naive = ReferencePool::new(&level, &k.gauge).unwrap();
        for (a, b) in uc.links.iter().zip(&naive.coarse_gauge().links) {
            assert!(a.dist(b) < 1e-13, "coarse link differs from the naive walk");
        }
        let worst = uc.links.iter().map(su3_dist_to_unitary).fold(0.0, f64::max);
        assert!(worst < 1e-12, "coarse links are not SU(3): {worst:e}");
        // A random (hot) field gives a coarse field that is not the unit one.
        assert!(uc.plaquette() < 0.5, "coarse plaquette of a hot field {}", uc.plaquette());
        let cold = coarse_gauge(&GaugeField::unit(DIMS), &blocking, r);
        assert!(
            (cold.plaquette() - 1.0).abs() < 1e-14,
            "cold coarse plaquette {}",
            cold.plaquette()
        );
        // U → Ω(x) U_μ(x) Ω(x+μ)†: U^c_μ(X) → Ω(r_X) U^c_μ(X) Ω(r_{X+μ})†.
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let omega = k.gauge.random_transformation(&mut rng);
        let ucr = coarse_gauge(&k.gauge.gauge_transform(&omega), &blocking, r);
        let cg = &uc.geom;
        let g = &k.gauge.geom;
        for xc in 0..cg.volume() {
            let cc = cg.coords(xc);
            let rx = g.index(std::array::from_fn(|mu| cc[mu] * 2 + r[mu]));
            for mu in 0..4 {
                let r2 = g.index(std::array::from_fn(|nu| {
                    (cc[nu] * 2 + r[nu] + if nu == mu { 2 } else { 0 }) % DIMS[nu]
                }));
                let want = omega[rx] * *uc.link(xc, mu) * omega[r2].adj();
                assert!(ucr.link(xc, mu).dist(&want) < 1e-12, "{pool}: coarse link not covariant");
            }
        }
    }
}

/// The oracle: c from the naive twin, then D and the fine graph's reference evaluator.
fn oracle(k: &Case, params: &[f64]) -> Vec<C> {
    let (level, fine) = split_level(&k.graph).unwrap().unwrap();
    let naive = ReferencePool::new(&level, &k.gauge).unwrap();
    let c = naive.forward(params, &k.b).unwrap();
    let skip = symc::ir::levels::level_scalars(&k.graph);
    let fp = &params[skip..];
    let d = WilsonClover::<f64>::new(&k.gauge, &k.dirac);
    let s = ReferenceLatticeNet::new(&fine, &k.gauge).unwrap();
    let n = k.b.len();
    let mut out = zeros(n);
    match level.connect {
        symc::ir::Connect::Correct => {
            out.copy_from_slice(&c);
            for _ in 0..level.smoothing {
                let mut r = zeros(n);
                d.apply(&mut r, &out);
                let r: Vec<C> = k.b.iter().zip(&r).map(|(b, dx)| b - dx).collect();
                let mut y = zeros(n);
                s.forward(fp, &r, &mut y).unwrap();
                out.iter_mut().zip(&y).for_each(|(o, y)| *o += y);
            }
        }
        symc::ir::Connect::Concat => {
            let x: Vec<C> = k.b.iter().chain(&c).copied().collect();
            s.forward(fp, &x, &mut out).unwrap();
        }
    }
    out
}

const CASES: &[(&str, &str, &str, &str)] = &[
    ("lexicographic", "correct", PTC, PTC),
    (
        "[one_step_lexicographic(times = clover(y, t)), reversed_lexicographic], reference = [1, 1, 0, 1]",
        "correct",
        "linear(1 -> 1, hops = 1, local)",
        PTC,
    ),
    ("static", "correct, smoothing = 2", "linear(1 -> 2, hops = 1)\nlinear(2 -> 1, hops = 1)", PTC),
    ("cyclic", "concat", "linear(1 -> 1, hops = 1, local)", "linear(2 -> 1, hops = 1)"),
];

#[test]
fn pooled_network_matches_the_naive_composition() {
    for (pool, connect, coarse, fine) in CASES {
        let k = case(&model(pool, connect, coarse, fine), 11, 0.2);
        let mut out = zeros(k.b.len());
        k.net.forward(&k.params, &k.b, &mut out).unwrap();
        let want = oracle(&k, &k.params);
        let e = rel(&out, &want);
        assert!(e < 1e-10, "{pool}/{connect}: network vs naive composition {e:e}");
        // Negative control: weights off by one part in 10^6 are visible at this tolerance.
        let perturbed: Vec<f64> = k.params.iter().map(|p| p * (1.0 + 1e-6)).collect();
        assert!(rel(&out, &oracle(&k, &perturbed)) > 1e-8, "{pool}: cannot see a weight change");
    }
}

#[test]
fn pooled_network_weight_gradients_match_finite_differences() {
    for (pool, connect, coarse, fine) in CASES {
        let k = case(&model(pool, connect, coarse, fine), 5, 0.2);
        let n = k.b.len();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let t = FermionField::<f64>::random_gaussian(DIMS, &mut rng).data;
        // L = ½‖M(b) − t‖²: dL/d out = out − t.
        let loss = |p: &[f64]| {
            let mut out = zeros(n);
            k.net.forward(p, &k.b, &mut out).unwrap();
            out.iter().zip(&t).map(|(o, t)| (o - t).norm_sqr()).sum::<f64>() / 2.0
        };
        let mut grad = vec![0.0; k.params.len()];
        let mut seed = |y: &[C], g: &mut [C]| {
            g.iter_mut().zip(y.iter().zip(&t)).for_each(|(g, (y, t))| *g = y - t)
        };
        k.net.forward_backward_seeded(&k.params, &k.b, &mut seed, &mut grad).unwrap();
        // Indices into every part: the pooling weight, the coarse network, the fine layers.
        let mut at = Vec::new();
        for p in &k.graph.params {
            let len = p.scalar_len();
            at.extend([p.offset, p.offset + 1, p.offset + len / 3, p.offset + len - 1]);
        }
        // M is polynomial in the weights (degree ≤ 6 here), so the step balances the O(h²)
        // truncation against the rounding of L.
        let h = 1e-5;
        for i in at {
            let mut p = k.params.clone();
            p[i] += h;
            let up = loss(&p);
            p[i] -= 2.0 * h;
            let down = loss(&p);
            let fd = (up - down) / (2.0 * h);
            let scale = fd.abs().max(grad[i].abs()).max(1e-3);
            let name = &k.graph.params.iter().rev().find(|p| p.offset <= i).unwrap().name;
            assert!(
                (fd - grad[i]).abs() / scale < 1e-6,
                "{pool}/{connect}: {name} scalar {i}: finite differences {fd:e}, gradient {:e}",
                grad[i]
            );
        }
        // Negative control: the gradient of another target differs.
        let mut other = vec![0.0; k.params.len()];
        let mut seed2 = |y: &[C], g: &mut [C]| g.iter_mut().zip(y).for_each(|(g, y)| *g = *y);
        k.net.forward_backward_seeded(&k.params, &k.b, &mut seed2, &mut other).unwrap();
        assert!(grad.iter().zip(&other).any(|(a, b)| (a - b).abs() > 1e-3));
    }
}

#[test]
fn pool_coarse_ptc_unpool_is_gauge_equivariant_on_the_compiled_kernels() {
    for (pool, connect, coarse, fine) in CASES {
        let text = model(pool, connect, coarse, fine);
        let k = case(&text, 17, 0.2);
        let mut rng = ChaCha8Rng::seed_from_u64(31);
        let omega = k.gauge.random_transformation(&mut rng);
        let rotated = k.gauge.gauge_transform(&omega);
        let net2 =
            MultigridNet::<f64>::compile(&k.graph, &rotated, &k.dirac, BasisCache::None).unwrap();
        let b2 = gauge_rotate(&omega, &k.b);
        // The level alone: c(Ω b; Ω U) = Ω c(b; U).
        let c1 = k.net.pool().unwrap().forward(&k.params, &k.b).unwrap().c;
        let c2 = net2.pool().unwrap().forward(&k.params, &b2).unwrap().c;
        let e = rel(&c2, &gauge_rotate(&omega, &c1));
        assert!(e < 1e-12, "{pool}: pool -> coarse -> unpool not covariant: {e:e}");
        // The whole network.
        let (mut o1, mut o2) = (zeros(k.b.len()), zeros(k.b.len()));
        k.net.forward(&k.params, &k.b, &mut o1).unwrap();
        net2.forward(&k.params, &b2, &mut o2).unwrap();
        let e = rel(&o2, &gauge_rotate(&omega, &o1));
        assert!(e < 1e-12, "{pool}/{connect}: network not covariant: {e:e}");
        // Negative control: the untransformed input on the transformed field is not covariant.
        net2.forward(&k.params, &k.b, &mut o2).unwrap();
        assert!(rel(&o2, &gauge_rotate(&omega, &o1)) > 1e-3);
    }
}

#[test]
fn pool_level_rejects_wrong_sizes_without_panicking() {
    let k = case(&model("lexicographic", "correct", PTC, PTC), 2, 0.1);
    let pool: &PoolLevel<f64> = k.net.pool().unwrap();
    let mut chi = zeros(16 * 12);
    assert!(pool.pool(&k.params[..10], &k.b, &mut chi).is_err());
    assert!(pool.pool(&k.params, &k.b[..12], &mut chi).is_err());
    let mut out = zeros(k.b.len());
    assert!(k.net.forward(&k.params[..5], &k.b, &mut out).is_err());
}

/// The path a mixed-precision solver takes (`forward_native`: f32 buffers in the kernels'
/// layout; the pooled correction, then the f32 Dirac kernel for every smoothing step) against
/// the reference-layout `forward` of the same f32 network (f64 D): equal to f32 rounding. On
/// 4^3 x 8 with 2^4 blocks the coarse lattice is 2 x 2 x 2 x 4, which the f32 layout (4 lanes)
/// splits along t into sub-lattices one site thick.
#[test]
fn pooled_native_path_equals_the_reference_layout_forward() {
    for connect in ["correct, smoothing = 2", "concat"] {
        let fine = if connect == "concat" { "linear(2 -> 1, hops = 1)" } else { PTC };
        let text = model("lexicographic", connect, "linear(1 -> 1, hops = 1, local)", fine)
            .replace("lattice 4 x 4 x 4 x 4", "lattice 4 x 4 x 4 x 8");
        let graph = symc::sema::compile_str("pooled.sym", &text).expect("model compiles");
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let gauge = GaugeField::random([4, 4, 4, 8], &mut rng);
        let dirac = DiracParams::periodic(0.1, 1.0);
        let net = MultigridNet::<f32>::compile(&graph, &gauge, &dirac, BasisCache::None).unwrap();
        let init = symc::runtime::init::init_params(&graph, 3);
        let params: Vec<f32> = init
            .iter()
            .zip(gaussian(init.len(), &mut rng, 0.1))
            .map(|(p, n)| p + n as f32)
            .collect();
        let b: Vec<num_complex::Complex<f32>> =
            FermionField::<f32>::random_gaussian([4, 4, 4, 8], &mut rng).data;
        let mut want = vec![num_complex::Complex::new(0.0f32, 0.0); b.len()];
        net.forward(&params, &b, &mut want).unwrap();
        let layout = net.fine().layout().clone();
        let len = net.native_buffer_len();
        let (mut inp, mut out) = (vec![0.0f32; len], vec![0.0f32; len]);
        layout.to_aosoa(&b, &mut inp);
        net.forward_native(&params, &layout, &mut inp, &mut out).unwrap();
        let mut got = vec![num_complex::Complex::new(0.0f32, 0.0); b.len()];
        layout.from_aosoa(&out, &mut got);
        let widen = |v: &[num_complex::Complex<f32>]| -> Vec<C> {
            v.iter().map(|z| C::new(z.re.into(), z.im.into())).collect()
        };
        let e = rel(&widen(&got), &widen(&want));
        assert!(e < 1e-5, "{connect}: native path vs reference layout {e:e}");
        // Negative control: without the coarse correction the output differs by far more.
        let zero_level: Vec<f32> = params
            .iter()
            .enumerate()
            .map(|(i, p)| if i < symc::ir::levels::level_scalars(&graph) { 0.0 } else { *p })
            .collect();
        net.forward(&zero_level, &b, &mut got).unwrap();
        assert!(rel(&widen(&got), &widen(&want)) > 1e-3, "{connect}: the level has no effect");
    }
}

#[test]
fn a_pooled_network_is_not_moved_to_another_volume() {
    use symc::ir::retarget::{RetargetError, retarget};
    let g = symc::sema::compile_str("pooled.sym", &model("static", "correct", PTC, PTC)).unwrap();
    let moved = retarget(&g, [4, 4, 4, 8]);
    assert!(matches!(moved, Err(RetargetError::SiteDependent { .. })), "{moved:?}");
    assert!(retarget(&g, DIMS).is_ok(), "the same volume is no move");
}

/// The level's backward pass on the JIT kernels (pooling-weight gradient kernel, coarse
/// network, pooling as unpooling's adjoint) against the naive twin's, for every family.
#[test]
fn pooled_level_gradients_match_the_naive_twin() {
    for (pool, connect, coarse, fine) in CASES {
        let k = case(&model(pool, connect, coarse, fine), 23, 0.2);
        let (level, _) = split_level(&k.graph).unwrap().unwrap();
        let naive = ReferencePool::new(&level, &k.gauge).unwrap();
        let pool_level = k.net.pool().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let h = FermionField::<f64>::random_gaussian(DIMS, &mut rng).data;
        let saved = pool_level.forward(&k.params, &k.b).unwrap();
        let n = pool_level.level_scalars();
        let mut got = vec![0.0; n];
        pool_level.backward(&k.params, &k.b, &saved, &h, &mut got).unwrap();
        let want = naive.backward(&k.params, &k.b, &h).unwrap();
        let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
        let err = got.iter().zip(&want).fold(0.0f64, |m, (a, b)| m.max((a - b).abs())) / scale;
        assert!(err < 1e-10, "{pool}: JIT level gradient vs naive {err:e}");
        // Negative control: the gradient for another h differs far beyond the tolerance.
        let other = naive.backward(&k.params, &k.b, &k.b).unwrap();
        let d = got.iter().zip(&other).fold(0.0f64, |m, (a, b)| m.max((a - b).abs())) / scale;
        assert!(d > 1e-3, "{pool}: the check cannot see another output gradient");
    }
}

/// On blocks longer than two sites the four routes are four different transports (the
/// one-step staircase is not the straight one), each matching the naive twin, and the pooled
/// correction stays gauge covariant with a reference point inside the block.
#[test]
fn the_four_routes_differ_on_long_blocks_and_each_matches_the_twin() {
    let pool = "[lexicographic, reversed_lexicographic, one_step_lexicographic, \
                one_step_reversed_lexicographic], reference = [2, 1, 0, 1]";
    let text = model_on("8 x 8 x 4 x 4", "[4, 4, 2, 2]", pool, "correct", PTC, PTC);
    let k = case(&text, 41, 0.2);
    let (level, _) = split_level(&k.graph).unwrap().unwrap();
    let naive = ReferencePool::new(&level, &k.gauge).unwrap();
    let pool_level = k.net.pool().unwrap();
    let nc = k.b.len() / (4 * 4 * 2 * 2);
    let v = k.gauge.geom.volume();
    // Weights that keep term i alone (w_i = 1, the others 0): χ_i = Pool_i(b).
    let only = |i: usize| {
        let mut p = k.params.clone();
        for j in 0..4 {
            for x in 0..v {
                for s in 0..4 {
                    for t in 0..4 {
                        let at = 2 * symc::ir::pool_weight_index(v, j, x, s, t);
                        p[at] = if j == i && s == t { 1.0 } else { 0.0 };
                        p[at + 1] = 0.0;
                    }
                }
            }
        }
        p
    };
    let mut chis = Vec::new();
    for i in 0..4 {
        let p = only(i);
        let mut chi = zeros(nc);
        pool_level.pool(&p, &k.b, &mut chi).unwrap();
        let e = rel(&chi, &naive.pool(&p, &k.b));
        assert!(e < 1e-12, "route {i}: JIT pool vs naive {e:e}");
        chis.push(chi);
    }
    for i in 0..4 {
        for j in 0..i {
            let d = rel(&chis[i], &chis[j]);
            assert!(d > 1e-2, "routes {i} and {j} pool alike ({d:e}): the routes are not distinct");
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let omega = k.gauge.random_transformation(&mut rng);
    let rotated = k.gauge.gauge_transform(&omega);
    let net2 =
        MultigridNet::<f64>::compile(&k.graph, &rotated, &k.dirac, BasisCache::None).unwrap();
    let c1 = pool_level.forward(&k.params, &k.b).unwrap().c;
    let c2 = net2.pool().unwrap().forward(&k.params, &gauge_rotate(&omega, &k.b)).unwrap().c;
    let e = rel(&c2, &gauge_rotate(&omega, &c1));
    assert!(e < 1e-12, "pool -> coarse -> unpool not covariant: {e:e}");
}
