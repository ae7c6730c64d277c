//! Multigrid networks (`level` blocks) checked against an independent composition of naive
//! parts: the network's output equals c + S_ref(b − D_ref c) (or S_ref([b, c])) with c = P D_c⁻¹
//! P† b computed from the naive block basis, the naive Galerkin operator and the reference
//! Wilson-clover operator, and S_ref the reference lattice evaluator of the fine graph; its
//! weight gradients match central finite differences in f64. The executor's own P†, P and
//! D_c kernels are checked against the same naive parts in tests/multigrid.rs.

mod common;

use common::zeros;
use num_complex::Complex64;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use symc::ir::levels::split_level;
use symc::lattice::coarse::CoarseOperator;
use symc::lattice::fermion::{self, FermionField};
use symc::lattice::gauge::GaugeField;
use symc::lattice::wilson::{DiracParams, WilsonClover};
use symc::runtime::FermionNet;
use symc::runtime::lattice_reference::ReferenceLatticeNet;
use symc::runtime::multigrid_net::{BasisCache, MultigridNet};
use symc::solve::SolveParams;
use symc::solve::multigrid::CoarseGmres;

type C = Complex64;

/// A two-level network on 4^3 x 8 with 2^4 blocks; the coarse solve is run to 1e-13 so that the
/// network and the oracle invert D_c alike (an approximate GMRES would differ by its rounding).
fn model(connect: &str, fine: &str) -> String {
    format!(
        "network mgt {{
            lattice 4 x 4 x 4 x 8
            input v: fermion
            symmetry gauge(SU3), translation
            level coarse(blocks = [2, 2, 2, 2], basis = 4, connect = {connect},
                         setup = gmres(iterations = 10, restart = 10)) {{
                solve(tol = 1e-13, restart = 64, iterations = 2000)
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

struct Case {
    graph: symc::ir::Graph,
    gauge: GaugeField,
    dirac: DiracParams,
    net: MultigridNet<f64>,
    params: Vec<f64>,
    b: Vec<C>,
}

fn case(connect: &str, fine: &str, seed: u64) -> Case {
    let graph = symc::sema::compile_str("mgt.sym", &model(connect, fine)).expect("model compiles");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gauge = GaugeField::random([4, 4, 4, 8], &mut rng);
    let dirac = DiracParams::periodic(0.1, 1.0);
    let net = MultigridNet::<f64>::compile(&graph, &gauge, &dirac, BasisCache::None).unwrap();
    let params: Vec<f64> = (0..graph.param_scalars())
        .map(|_| {
            rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut rng) * 0.3
        })
        .collect();
    let b = FermionField::<f64>::random_gaussian([4, 4, 4, 8], &mut rng).data;
    Case { graph, gauge, dirac, net, params, b }
}

/// The oracle: c from the naive parts, then the reference evaluator of the fine graph.
fn oracle(k: &Case) -> Vec<C> {
    let basis = k.net.basis().expect("a near-null level");
    let d = WilsonClover::<f64>::new(&k.gauge, &k.dirac);
    let dc = CoarseOperator::galerkin(&d, &basis);
    let n = k.b.len();
    let mut chi = zeros(basis.coarse_len());
    basis.restrict(&k.b, &mut chi);
    let mut y = chi.clone();
    let params = SolveParams { tol: 1e-14, restart: 64, max_iterations: 4000 };
    CoarseGmres::<f64>::new(chi.len(), 64).solve(&dc, &chi, &mut y, &params);
    let mut c = zeros(n);
    basis.prolong(&y, &mut c);
    let (level, fine) = split_level(&k.graph).unwrap().unwrap();
    let s = ReferenceLatticeNet::new(&fine, &k.gauge).unwrap();
    let mut out = zeros(n);
    match level.connect {
        symc::ir::Connect::Correct => {
            // x_0 = c, x_{k+1} = x_k + S(b − D x_k), M(b) = x_smoothing.
            out.copy_from_slice(&c);
            for _ in 0..level.smoothing {
                let mut r = zeros(n);
                d.apply(&mut r, &out);
                let r: Vec<C> = k.b.iter().zip(&r).map(|(b, dx)| b - dx).collect();
                let mut y = zeros(n);
                s.forward(&k.params, &r, &mut y).unwrap();
                out.iter_mut().zip(&y).for_each(|(o, y)| *o += y);
            }
        }
        symc::ir::Connect::Concat => {
            let x: Vec<C> = k.b.iter().chain(&c).copied().collect();
            s.forward(&k.params, &x, &mut out).unwrap();
        }
    }
    out
}

#[test]
fn multigrid_network_matches_the_naive_composition() {
    for (connect, fine) in [
        ("correct", "linear(1 -> 2, hops = 1)\nlinear(2 -> 1, hops = 1)"),
        ("correct, smoothing = 3", "linear(1 -> 2, hops = 1)\nlinear(2 -> 1, hops = 1)"),
        ("concat", "linear(2 -> 1, hops = 1)"),
    ] {
        let k = case(connect, fine, 11);
        let mut out = zeros(k.b.len());
        k.net.forward(&k.params, &k.b, &mut out).unwrap();
        let want = oracle(&k);
        let e = rel(&out, &want);
        assert!(e < 1e-9, "{connect}: network vs naive composition {e:e}");
        // Negative control: weights off by one part in 10^6 are visible at this tolerance.
        let perturbed: Vec<f64> = k.params.iter().map(|p| p * (1.0 + 1e-6)).collect();
        let mut out2 = zeros(k.b.len());
        k.net.forward(&perturbed, &k.b, &mut out2).unwrap();
        assert!(rel(&out2, &want) > 1e-8, "{connect}: the check cannot see a weight change");
    }
}

#[test]
fn multigrid_network_weight_gradients_match_finite_differences() {
    for (connect, fine) in [
        ("correct", "linear(1 -> 1, hops = 1)"),
        ("correct, smoothing = 2", "linear(1 -> 1, hops = 1)"),
        ("correct, smoothing = 3", "linear(1 -> 2, hops = 1)\nlinear(2 -> 1, hops = 1)"),
        ("concat", "linear(2 -> 1, hops = 1)"),
    ] {
        let k = case(connect, fine, 5);
        let n = k.b.len();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let t = FermionField::<f64>::random_gaussian([4, 4, 4, 8], &mut rng).data;
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
        // With one smoothing step the loss is quadratic in the weights (the fine layers are
        // linear in them and the level has none), so central differences have no truncation
        // error and a large step keeps the rounding of L (~1e4 in size) out of the comparison.
        // With s steps M is a polynomial of degree s (S applied to residuals that contain S),
        // so the step is smaller: its O(h²) truncation and the rounding both stay below 1e-6.
        let h = if connect.contains("smoothing") { 1e-5 } else { 1e-3 };
        for i in [0, 1, 7, k.params.len() / 2, k.params.len() - 1] {
            let mut p = k.params.clone();
            p[i] += h;
            let up = loss(&p);
            p[i] -= 2.0 * h;
            let down = loss(&p);
            let fd = (up - down) / (2.0 * h);
            let scale = fd.abs().max(grad[i].abs()).max(1e-3);
            assert!(
                (fd - grad[i]).abs() / scale < 1e-6,
                "{connect}: param {i}: finite differences {fd:e}, gradient {:e}",
                grad[i]
            );
        }
    }
}

/// The f32 network's two paths against the same network in f64 (f64 coarse correction, D and
/// fine layers): the path a mixed-precision solver takes (`forward_native`: f32 buffers in the
/// kernels' layout) and the reference-layout `forward` and weight gradients that training uses
/// (the f32 cycle and f32 D, converted in and out). Equal to f32 rounding, for one and for
/// several smoothing steps; the two smoothing counts differ by far more than that, so the
/// comparison sees the extra steps.
#[test]
fn f32_paths_equal_the_f64_network() {
    let up = |v: &[num_complex::Complex<f32>]| -> Vec<C> {
        v.iter().map(|z| C::new(z.re.into(), z.im.into())).collect()
    };
    let mut outs = Vec::new();
    for connect in ["correct", "correct, smoothing = 3", "concat"] {
        let fine = if connect == "concat" {
            "linear(2 -> 1, hops = 1)"
        } else {
            "linear(1 -> 1, hops = 1)"
        };
        let text = model(connect, fine);
        let graph = symc::sema::compile_str("mgt.sym", &text).expect("model compiles");
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let gauge = GaugeField::random([4, 4, 4, 8], &mut rng);
        let dirac = DiracParams::periodic(0.1, 1.0);
        let net = MultigridNet::<f32>::compile(&graph, &gauge, &dirac, BasisCache::None).unwrap();
        let net64 = MultigridNet::<f64>::compile(&graph, &gauge, &dirac, BasisCache::None).unwrap();
        let params: Vec<f32> = (0..graph.param_scalars())
            .map(|_| rand_distr::Distribution::<f32>::sample(&rand_distr::StandardNormal, &mut rng))
            .map(|w| 0.1 * w)
            .collect();
        let p64: Vec<f64> = params.iter().map(|&w| w.into()).collect();
        let b: Vec<num_complex::Complex<f32>> =
            FermionField::<f32>::random_gaussian([4, 4, 4, 8], &mut rng).data;
        let b64 = up(&b);
        let mut want = vec![C::new(0.0, 0.0); b.len()];
        net64.forward(&p64, &b64, &mut want).unwrap();

        let mut fwd = vec![num_complex::Complex::new(0.0f32, 0.0); b.len()];
        net.forward(&params, &b, &mut fwd).unwrap();
        let layout = net.fine().layout().clone();
        let len = net.native_buffer_len();
        let (mut inp, mut out) = (vec![0.0f32; len], vec![0.0f32; len]);
        layout.to_aosoa(&b, &mut inp);
        net.forward_native(&params, &layout, &mut inp, &mut out).unwrap();
        let mut native = vec![num_complex::Complex::new(0.0f32, 0.0); b.len()];
        layout.from_aosoa(&out, &mut native);
        let (e_native, e_fwd) = (rel(&up(&native), &want), rel(&up(&fwd), &want));

        // Weight gradients of L = ||M b - t||^2 for a fixed target t.
        let t = FermionField::<f64>::random_gaussian([4, 4, 4, 8], &mut rng).data;
        let t32: Vec<num_complex::Complex<f32>> =
            t.iter().map(|z| num_complex::Complex::new(z.re as f32, z.im as f32)).collect();
        let mut g64 = vec![0.0f64; p64.len()];
        net64
            .forward_backward_seeded(
                &p64,
                &b64,
                &mut |o, g| {
                    g.iter_mut().zip(o).zip(&t).for_each(|((g, o), t)| *g = (*o - *t) * 2.0)
                },
                &mut g64,
            )
            .unwrap();
        let mut g32 = vec![0.0f32; params.len()];
        net.forward_backward_seeded(
            &params,
            &b,
            &mut |o, g| g.iter_mut().zip(o).zip(&t32).for_each(|((g, o), t)| *g = (*o - *t) * 2.0),
            &mut g32,
        )
        .unwrap();
        let norm = g64.iter().map(|x| x * x).sum::<f64>().sqrt();
        let e_grad =
            g32.iter().zip(&g64).map(|(a, b)| (f64::from(*a) - b).powi(2)).sum::<f64>().sqrt()
                / norm;
        // The training step on the solver's vectors (one-process `symc train`).
        let main = layout.main_len();
        let mut tn = vec![0.0f32; len];
        layout.to_aosoa(&t32, &mut tn);
        layout.to_aosoa(&b, &mut inp);
        let mut gn = vec![0.0f32; params.len()];
        net.forward_backward_native(
            &params,
            &layout,
            &mut inp,
            &mut |o, g| {
                g.iter_mut().zip(o).zip(&tn[..main]).for_each(|((g, o), t)| *g = 2.0 * (*o - *t))
            },
            &mut gn,
        )
        .unwrap();
        let e_grad_native =
            gn.iter().zip(&g64).map(|(a, b)| (f64::from(*a) - b).powi(2)).sum::<f64>().sqrt()
                / norm;
        eprintln!("{connect}: native training gradient {e_grad_native:.1e}");
        assert!(e_grad_native < 1e-5, "{connect}: native gradient vs f64 {e_grad_native:e}");
        eprintln!("{connect}: native {e_native:.1e}, forward {e_fwd:.1e}, gradient {e_grad:.1e}");
        // f32 rounding through the coarse GMRES, D and the PTC layers (measured 1.8e-7 to
        // 2.7e-7 forward, 7e-8 to 9e-8 for the gradient).
        assert!(e_native < 1e-5, "{connect}: native path vs f64 {e_native:e}");
        assert!(e_fwd < 1e-5, "{connect}: reference-layout forward vs f64 {e_fwd:e}");
        assert!(e_grad < 1e-5, "{connect}: f32 weight gradient vs f64 {e_grad:e}");
        outs.push(want);
    }
    assert!(rel(&outs[1], &outs[0]) > 1e-2, "three smoothing steps look like one");
}
