//! The coarse layers of a near-null level (`level ...(basis = N) { linear(1 -> 1, hops = 1,
//! local) }`, Lehner & Wettig's coarse model lPTC_NG, models.md §2.3): the JIT forward, input
//! gradient and weight gradient against the naive twin (`ReferenceCoarseLayers`) in f64, every
//! gradient against central finite differences (with a negative control), coarse translation
//! equivariance of global weights (and its absence for local ones), gauge covariance of the
//! whole network when the basis is transformed with the field, the whole network's weight
//! gradients (through P M_c P†) against finite differences, and f32 against f64.

mod common;

use common::zeros;
use num_complex::Complex64;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use symc::ir::levels;
use symc::lattice::fermion::FermionField;
use symc::lattice::gauge::GaugeField;
use symc::lattice::io::basis::{self as basis_cache, BasisKey};
use symc::lattice::wilson::DiracParams;
use symc::runtime::FermionNet;
use symc::runtime::coarse_layers::JitCoarseLayers;
use symc::runtime::lattice_reference::{ReferenceCoarseLayers, gauge_rotate};
use symc::runtime::multigrid_net::{BasisCache, MultigridNet};

type C = Complex64;
const DIMS: [usize; 4] = [4, 4, 4, 8];

fn model(blocks: &str, basis: usize, connect: &str, coarse: &str, fine: &str) -> String {
    format!(
        "network cl {{
            lattice 4 x 4 x 4 x 8
            input v: fermion
            symmetry gauge(SU3), translation
            level coarse(blocks = [{blocks}], basis = {basis}, connect = {connect},
                         setup = gmres(iterations = 10, restart = 10)) {{
                {coarse}
            }}
            {fine}
            output fermion
        }}"
    )
}

fn graph(src: &str) -> symc::ir::Graph {
    symc::sema::compile_str("cl.sym", src).expect("model compiles")
}

fn gaussian(n: usize, rng: &mut ChaCha8Rng, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| scale * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng))
        .collect()
}

fn cvec(n: usize, rng: &mut ChaCha8Rng) -> Vec<C> {
    let r = gaussian(2 * n, rng, 1.0);
    r.chunks(2).map(|p| C::new(p[0], p[1])).collect()
}

fn rel(a: &[C], b: &[C]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y).norm_sqr()).sum();
    let n: f64 = b.iter().map(|y| y.norm_sqr()).sum();
    (d / n.max(1e-300)).sqrt()
}

fn rel_real(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let n: f64 = b.iter().map(|y| y * y).sum();
    (d / n.max(1e-300)).sqrt()
}

/// Coarse bodies covering local and global weights, hops and listed displacements (a diagonal
/// one, a backward one), a stack of two layers, a basis that is not a whole number of f32
/// vectors, and an extent-1 coarse direction.
const CASES: &[(&str, usize, &str)] = &[
    ("2, 2, 2, 2", 4, "linear(1 -> 1, hops = 1, local)"),
    ("2, 2, 2, 2", 6, "linear(1 -> 1, hops = 1)"),
    (
        "2, 2, 2, 2",
        5,
        "a = linear(1 -> 1, paths = [+x+y, -t, +z], local)\nlinear(1 -> 1, hops = 1)",
    ),
    ("4, 2, 2, 2", 3, "linear(1 -> 1, hops = 1, local)"),
];

struct Layers {
    level: symc::ir::Level,
    n_params: usize,
}

fn layers_of(blocks: &str, basis: usize, coarse: &str) -> Layers {
    let g = graph(&model(blocks, basis, "concat", coarse, "linear(2 -> 1, hops = 1)"));
    let level = levels::level(&g).expect("a level").clone();
    Layers { n_params: levels::level_scalars(&g), level }
}

#[test]
fn jit_coarse_layers_match_the_naive_twin() {
    for &(blocks, basis, coarse) in CASES {
        let l = layers_of(blocks, basis, coarse);
        let jit = JitCoarseLayers::<f64>::new(&l.level, DIMS).unwrap().expect("coarse layers");
        let naive = ReferenceCoarseLayers::new(&l.level, DIMS).unwrap();
        assert_eq!(jit.scalars(), l.n_params);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let params = gaussian(l.n_params, &mut rng, 0.5);
        let x = cvec(jit.len(), &mut rng);
        let g = cvec(jit.len(), &mut rng);
        let acts = jit.forward(&params, &x).unwrap();
        let want = naive.forward(&params, &x);
        let e = rel(acts.last().unwrap(), want.last().unwrap());
        assert!(e <= 1e-12, "{coarse}: forward {e:e}");
        let mut gw = vec![0.0; l.n_params];
        let gx = jit.backward(&params, &acts, &g, &mut gw).unwrap();
        let mut gw_ref = vec![0.0; l.n_params];
        let gx_ref = naive.backward(&params, &want, &g, &mut gw_ref);
        let (ex, ew) = (rel(&gx, &gx_ref), rel_real(&gw, &gw_ref));
        assert!(ex <= 1e-12 && ew <= 1e-12, "{coarse}: input grad {ex:e}, weight grad {ew:e}");
        // Negative control: one weight changed by one part in 10^6 is far above 1e-12.
        let mut p2 = params.clone();
        p2[l.n_params / 3] *= 1.0 + 1e-6;
        let moved = rel(jit.forward(&p2, &x).unwrap().last().unwrap(), want.last().unwrap());
        assert!(moved > 1e-11, "{coarse}: the comparison cannot see a weight change ({moved:e})");
    }
}

#[test]
fn coarse_layer_gradients_match_central_differences() {
    for &(blocks, basis, coarse) in CASES {
        let l = layers_of(blocks, basis, coarse);
        let jit = JitCoarseLayers::<f64>::new(&l.level, DIMS).unwrap().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let params = gaussian(l.n_params, &mut rng, 0.5);
        let x = cvec(jit.len(), &mut rng);
        let t = cvec(jit.len(), &mut rng);
        // L = ‖M_c(x) − t‖²: the seed 2 (M_c(x) − t), the trainer's convention.
        let loss = |p: &[f64], x: &[C]| -> f64 {
            let y = jit.apply(p, x).unwrap();
            y.iter().zip(&t).map(|(y, t)| (y - t).norm_sqr()).sum()
        };
        let acts = jit.forward(&params, &x).unwrap();
        let g: Vec<C> = acts.last().unwrap().iter().zip(&t).map(|(y, t)| 2.0 * (y - t)).collect();
        let mut gw = vec![0.0; l.n_params];
        let gx = jit.backward(&params, &acts, &g, &mut gw).unwrap();
        let h = 1e-5;
        let mut checked = 0;
        for i in (0..l.n_params).step_by((l.n_params / 23).max(1)) {
            let mut p = params.clone();
            p[i] += h;
            let up = loss(&p, &x);
            p[i] -= 2.0 * h;
            let fd = (up - loss(&p, &x)) / (2.0 * h);
            let scale = fd.abs().max(gw[i].abs()).max(1e-2);
            assert!(
                (fd - gw[i]).abs() / scale < 1e-6,
                "{coarse}: weight {i}: fd {fd:e}, grad {:e}",
                gw[i]
            );
            // Negative control: the neighbouring entry's gradient is not this one's.
            let j = (i + 1) % l.n_params;
            if (gw[j] - gw[i]).abs() > 1e-3 * scale {
                assert!((fd - gw[j]).abs() / scale > 1e-6, "{coarse}: weight {i} also matches {j}");
            }
            checked += 1;
        }
        assert!(checked >= 8);
        for k in [0, 1, jit.len() / 2, jit.len() - 1] {
            for (part, dz) in [(0, C::new(h, 0.0)), (1, C::new(0.0, h))] {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[k] += dz;
                xm[k] -= dz;
                let fd = (loss(&params, &xp) - loss(&params, &xm)) / (2.0 * h);
                let an = if part == 0 { gx[k].re } else { gx[k].im };
                let scale = fd.abs().max(an.abs()).max(1e-2);
                assert!(
                    (fd - an).abs() / scale < 1e-6,
                    "{coarse}: input {k}.{part}: fd {fd:e}, grad {an:e}"
                );
            }
        }
    }
}

/// χ shifted by `s` coarse steps per direction: out(X) = χ(X − s).
fn shift(x: &[C], dims: [usize; 4], n: usize, s: [usize; 4]) -> Vec<C> {
    let v: usize = dims.iter().product();
    let mut out = zeros(x.len());
    for site in 0..v {
        let mut c = [0; 4];
        let mut r = site;
        for mu in 0..4 {
            c[mu] = r % dims[mu];
            r /= dims[mu];
        }
        let t: [usize; 4] = std::array::from_fn(|mu| (c[mu] + s[mu]) % dims[mu]);
        let to = t[0] + dims[0] * (t[1] + dims[1] * (t[2] + dims[2] * t[3]));
        out[to * n..to * n + n].copy_from_slice(&x[site * n..site * n + n]);
    }
    out
}

#[test]
fn global_coarse_weights_are_translation_equivariant() {
    let dims = [2, 2, 2, 4];
    for (coarse, local) in [
        ("linear(1 -> 1, hops = 1)\nlinear(1 -> 1, paths = [+x+t, -t])", false),
        ("linear(1 -> 1, hops = 1, local)", true),
    ] {
        let l = layers_of("2, 2, 2, 2", 4, coarse);
        let jit = JitCoarseLayers::<f64>::new(&l.level, DIMS).unwrap().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let params = gaussian(l.n_params, &mut rng, 0.5);
        let x = cvec(jit.len(), &mut rng);
        let s = [1, 0, 1, 3];
        let y_shifted_input = jit.apply(&params, &shift(&x, dims, 4, s)).unwrap();
        let shifted_output = shift(&jit.apply(&params, &x).unwrap(), dims, 4, s);
        let e = rel(&y_shifted_input, &shifted_output);
        if local {
            assert!(e > 1e-3, "local weights should not commute with translations ({e:e})");
        } else {
            assert!(e < 1e-13, "{coarse}: translation equivariance {e:e}");
        }
    }
}

/// A multigrid network with coarse layers on `gauge`, its basis from `cache`.
fn net(g: &symc::ir::Graph, gauge: &GaugeField, cache: BasisCache<'_>) -> MultigridNet<f64> {
    let dirac = DiracParams::periodic(0.1, 1.0);
    MultigridNet::<f64>::compile(g, gauge, &dirac, cache).unwrap()
}

#[test]
fn whole_network_is_gauge_covariant_with_a_covariant_basis() {
    let g = graph(&model(
        "2, 2, 2, 2",
        4,
        "concat",
        "linear(1 -> 1, hops = 1, local)",
        "linear(2 -> 1, hops = 1)",
    ));
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let gauge = GaugeField::random(DIMS, &mut rng);
    let dir = std::env::temp_dir().join(format!("symc_coarse_cov_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (p0, p1) = (dir.join("b0.safetensors"), dir.join("b1.safetensors"));
    let m = net(&g, &gauge, BasisCache::ReadWrite(&p0));
    // The transformed field and the basis Ω u_k, cached under the transformed field's key, so
    // the second network is built on exactly the covariantly transformed coarse space.
    let omega = gauge.random_transformation(&mut rng);
    let gauge2 = gauge.gauge_transform(&omega);
    let key: BasisKey = m.with_multigrid(|mg| mg.key().clone()).unwrap();
    let key2 = BasisKey { gauge: symc::lattice::blocks::GaugeFingerprint::of(&gauge2), ..key };
    let basis2 = m.basis().unwrap().gauge_transform(&omega);
    basis_cache::save(&p1, &key2, &basis2).unwrap();
    let m2 = net(&g, &gauge2, BasisCache::ReadOnly(&p1));
    assert!(matches!(
        m2.setup_report().source,
        symc::runtime::multigrid::BasisSource::Cached { .. }
    ));
    let params = gaussian(g.param_scalars(), &mut rng, 0.3);
    let b = FermionField::<f64>::random_gaussian(DIMS, &mut rng).data;
    let mut y = zeros(b.len());
    m.forward(&params, &b, &mut y).unwrap();
    let mut y2 = zeros(b.len());
    m2.forward(&params, &gauge_rotate(&omega, &b), &mut y2).unwrap();
    let e = rel(&y2, &gauge_rotate(&omega, &y));
    assert!(e < 1e-10, "M(Ω b) vs Ω M(b): {e:e}");
    // Negative control: without rotating the output the comparison fails.
    assert!(rel(&y2, &y) > 1e-2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn whole_network_weight_gradients_match_finite_differences() {
    for (connect, fine) in
        [("concat", "linear(2 -> 1, hops = 1)"), ("correct", "linear(1 -> 1, hops = 1)")]
    {
        let g = graph(&model(
            "2, 2, 2, 2",
            4,
            connect,
            "linear(1 -> 1, hops = 1, local)\nlinear(1 -> 1, hops = 1)",
            fine,
        ));
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let gauge = GaugeField::random(DIMS, &mut rng);
        let m = net(&g, &gauge, BasisCache::None);
        let params = gaussian(g.param_scalars(), &mut rng, 0.3);
        let b = FermionField::<f64>::random_gaussian(DIMS, &mut rng).data;
        let t = FermionField::<f64>::random_gaussian(DIMS, &mut rng).data;
        let n = b.len();
        let loss = |p: &[f64]| {
            let mut out = zeros(n);
            m.forward(p, &b, &mut out).unwrap();
            out.iter().zip(&t).map(|(o, t)| (o - t).norm_sqr()).sum::<f64>() / 2.0
        };
        let mut grad = vec![0.0; params.len()];
        let mut seed = |y: &[C], gr: &mut [C]| {
            gr.iter_mut().zip(y.iter().zip(&t)).for_each(|(gr, (y, t))| *gr = y - t)
        };
        m.forward_backward_seeded(&params, &b, &mut seed, &mut grad).unwrap();
        let nl = levels::level_scalars(&g);
        let h = 1e-4;
        // Entries of both coarse layers (the level's) and of the fine layer.
        for i in [0, 1, 57, nl / 2, nl - 2, nl - 1, nl, params.len() - 1] {
            let mut p = params.clone();
            p[i] += h;
            let up = loss(&p);
            p[i] -= 2.0 * h;
            let fd = (up - loss(&p)) / (2.0 * h);
            let scale = fd.abs().max(grad[i].abs()).max(1e-3);
            assert!(
                (fd - grad[i]).abs() / scale < 1e-6,
                "{connect}: param {i}: fd {fd:e}, grad {:e}",
                grad[i]
            );
        }
        assert!(
            grad[..nl].iter().any(|g| g.abs() > 1e-6),
            "{connect}: the level's weights get no gradient"
        );
    }
}

#[test]
fn f32_coarse_layers_and_network_equal_f64() {
    for &(blocks, basis, coarse) in CASES {
        let l = layers_of(blocks, basis, coarse);
        let j64 = JitCoarseLayers::<f64>::new(&l.level, DIMS).unwrap().unwrap();
        let j32 = JitCoarseLayers::<f32>::new(&l.level, DIMS).unwrap().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let params = gaussian(l.n_params, &mut rng, 0.5);
        let p32: Vec<f32> = params.iter().map(|&p| p as f32).collect();
        let x = cvec(j64.len(), &mut rng);
        let g = cvec(j64.len(), &mut rng);
        let to32 = |v: &[C]| -> Vec<num_complex::Complex<f32>> {
            v.iter().map(|z| num_complex::Complex::new(z.re as f32, z.im as f32)).collect()
        };
        let to64 = |v: &[num_complex::Complex<f32>]| -> Vec<C> {
            v.iter().map(|z| C::new(z.re as f64, z.im as f64)).collect()
        };
        let a64 = j64.forward(&params, &x).unwrap();
        let a32 = j32.forward(&p32, &to32(&x)).unwrap();
        let e = rel(&to64(a32.last().unwrap()), a64.last().unwrap());
        assert!(e < 1e-5, "{coarse}: f32 forward {e:e}");
        let mut gw64 = vec![0.0; l.n_params];
        let gx64 = j64.backward(&params, &a64, &g, &mut gw64).unwrap();
        let mut gw32 = vec![0.0f32; l.n_params];
        let gx32 = j32.backward(&p32, &a32, &to32(&g), &mut gw32).unwrap();
        let gw32: Vec<f64> = gw32.iter().map(|&v| v as f64).collect();
        assert!(
            rel(&to64(&gx32), &gx64) < 1e-5 && rel_real(&gw32, &gw64) < 1e-5,
            "{coarse}: f32 backward"
        );
    }
    // The whole network: f32 (training and the solver's native path) against f64; a fine
    // layer without hops has no ghost slots, so the multigrid's transfer (on the Dirac
    // kernel's layout, which has them) needs longer buffers than the network's.
    for fine in ["linear(2 -> 1)", "linear(2 -> 1, hops = 1)"] {
        native_path_matches_f64(&twins(fine), fine);
    }
    let Twins { g, m64, m32, params, p32, b, b32 } = twins("linear(2 -> 1, hops = 1)");
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    // Weight gradients (coarse layer and fine layer) of L = ‖M b − t‖², f32 against f64.
    let t = FermionField::<f64>::random_gaussian(DIMS, &mut rng).data;
    let t32: Vec<num_complex::Complex<f32>> =
        t.iter().map(|z| num_complex::Complex::new(z.re as f32, z.im as f32)).collect();
    let mut g64 = vec![0.0f64; params.len()];
    m64.forward_backward_seeded(
        &params,
        &b,
        &mut |o, g| g.iter_mut().zip(o).zip(&t).for_each(|((g, o), t)| *g = (*o - *t) * 2.0),
        &mut g64,
    )
    .unwrap();
    let mut g32 = vec![0.0f32; params.len()];
    m32.forward_backward_seeded(
        &p32,
        &b32,
        &mut |o, g| g.iter_mut().zip(o).zip(&t32).for_each(|((g, o), t)| *g = (*o - *t) * 2.0),
        &mut g32,
    )
    .unwrap();
    let g32: Vec<f64> = g32.iter().map(|&v| v as f64).collect();
    let nl = levels::level_scalars(&g);
    let (e_level, e_fine) = (rel_real(&g32[..nl], &g64[..nl]), rel_real(&g32[nl..], &g64[nl..]));
    assert!(e_level < 1e-5 && e_fine < 1e-5, "f32 gradients: level {e_level:e}, fine {e_fine:e}");
}

/// A concat level with a coarse layer and the fine layer `fine`, compiled in f64 and f32 on one
/// random field, with random weights and a random source.
struct Twins {
    g: symc::ir::Graph,
    m64: MultigridNet<f64>,
    m32: MultigridNet<f32>,
    params: Vec<f64>,
    p32: Vec<f32>,
    b: Vec<C>,
    b32: Vec<num_complex::Complex<f32>>,
}

fn twins(fine: &str) -> Twins {
    let g = graph(&model("2, 2, 2, 2", 4, "concat", "linear(1 -> 1, hops = 1, local)", fine));
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let gauge = GaugeField::random(DIMS, &mut rng);
    let dirac = DiracParams::periodic(0.1, 1.0);
    let m64 = MultigridNet::<f64>::compile(&g, &gauge, &dirac, BasisCache::None).unwrap();
    let m32 = MultigridNet::<f32>::compile(&g, &gauge, &dirac, BasisCache::None).unwrap();
    let params = gaussian(g.param_scalars(), &mut rng, 0.3);
    let p32: Vec<f32> = params.iter().map(|&p| p as f32).collect();
    let b = FermionField::<f64>::random_gaussian(DIMS, &mut rng).data;
    let b32 = b.iter().map(|z| num_complex::Complex::new(z.re as f32, z.im as f32)).collect();
    Twins { g, m64, m32, params, p32, b, b32 }
}

/// The f32 network on the reference layout and on the solver's buffers (`forward_native`)
/// against the f64 network.
fn native_path_matches_f64(t: &Twins, fine: &str) {
    let Twins { m64, m32, params, p32, b, b32, .. } = t;
    let mut y64 = zeros(b.len());
    m64.forward(params, b, &mut y64).unwrap();
    let mut y32 = vec![num_complex::Complex::new(0.0f32, 0.0); b.len()];
    m32.forward(p32, b32, &mut y32).unwrap();
    let y32: Vec<C> = y32.iter().map(|z| C::new(z.re as f64, z.im as f64)).collect();
    let e = rel(&y32, &y64);
    assert!(e < 1e-5, "{fine}: f32 network vs f64: {e:e}");
    // The solver's path: f32 buffers in the kernels' layout.
    let layout = m32.fine().layout().clone();
    let len = m32.native_buffer_len();
    let (mut inp, mut out) = (vec![0.0f32; len], vec![0.0f32; len]);
    layout.to_aosoa(b32, &mut inp);
    m32.forward_native(p32, &layout, &mut inp, &mut out).unwrap();
    let mut native = vec![num_complex::Complex::new(0.0f32, 0.0); b.len()];
    layout.from_aosoa(&out, &mut native);
    let native: Vec<C> = native.iter().map(|z| C::new(z.re as f64, z.im as f64)).collect();
    let e = rel(&native, &y64);
    assert!(e < 1e-5, "{fine}: f32 native path vs f64: {e:e}");
}
