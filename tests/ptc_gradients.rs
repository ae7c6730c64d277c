//! Gradients of the compiled gauge networks against central finite differences in f64, for
//! every layer kind, with a negative control showing the check rejects a conjugation bug.

mod ptc_support;

use num_complex::Complex;
use ptc_support::*;
use rand::Rng;
use rand_distr::StandardNormal;
use symc::ir::Graph;
use symc::lattice::gauge::GaugeField;
use symc::runtime::lattice_net::{LatticeNet, LatticeNetOptions};

/// L = sum |out - t|^2, so dL/dRe out + i dL/dIm out = 2 (out - t).
fn loss(net: &LatticeNet<f64>, p: &[f64], x: &[Complex<f64>], t: &[Complex<f64>]) -> f64 {
    let mut out = vec![Complex::new(0.0, 0.0); t.len()];
    net.forward(p, x, &mut out).unwrap();
    out.iter().zip(t).map(|(a, b)| (a - b).norm_sqr()).sum()
}

struct Fd {
    /// max over directions of |fd - analytic| / scale
    params: f64,
    input: f64,
    /// same with the imaginary parts of the analytic gradient negated (a conjugation bug)
    params_conj_bug: f64,
}

fn fd_check(g: &Graph, seed: u64) -> Fd {
    let dims = g.lattice.unwrap().dims;
    let mut r = rng(seed);
    let gauge = GaugeField::random(dims, &mut r);
    let vol = gauge.geom.volume();
    let net = LatticeNet::<f64>::compile(g, &gauge, &LatticeNetOptions::default()).unwrap();
    let feats = |v: symc::ir::ValueId| match g.value(v) {
        symc::ir::ValueType::Fermion { features, .. } => *features,
        _ => unreachable!(),
    };
    let p = random_params(g, &mut r, 0.4);
    let x = random_field(feats(symc::ir::ValueId(0)) * vol * 12, &mut r);
    let t = random_field(feats(g.output) * vol * 12, &mut r);
    let mut gi = vec![Complex::new(0.0, 0.0); x.len()];
    let mut gp = vec![0.0; p.len()];
    net.forward_backward(
        &p,
        &x,
        None,
        |out, gout| {
            for ((g, o), t) in gout.iter_mut().zip(out).zip(&t) {
                *g = (o - t) * 2.0;
            }
        },
        Some(&mut gi),
        &mut gp,
    )
    .unwrap();
    let eps = 1e-5;
    let mut res = Fd { params: 0.0, input: 0.0, params_conj_bug: 0.0 };
    for _ in 0..3 {
        let d: Vec<f64> = (0..p.len()).map(|_| r.sample(StandardNormal)).collect();
        let pp: Vec<f64> = p.iter().zip(&d).map(|(a, b)| a + eps * b).collect();
        let pm: Vec<f64> = p.iter().zip(&d).map(|(a, b)| a - eps * b).collect();
        let fd = (loss(&net, &pp, &x, &t) - loss(&net, &pm, &x, &t)) / (2.0 * eps);
        let an: f64 = gp.iter().zip(&d).map(|(a, b)| a * b).sum();
        let bug: f64 = gp
            .iter()
            .zip(&d)
            .enumerate()
            .map(|(k, (a, b))| if k % 2 == 1 { -a * b } else { a * b })
            .sum();
        let scale = fd.abs().max(1e-3);
        res.params = res.params.max((fd - an).abs() / scale);
        res.params_conj_bug = res.params_conj_bug.max((fd - bug).abs() / scale);
        let dx = random_field(x.len(), &mut r);
        let xp: Vec<_> = x.iter().zip(&dx).map(|(a, b)| a + b * eps).collect();
        let xm: Vec<_> = x.iter().zip(&dx).map(|(a, b)| a - b * eps).collect();
        let fd = (loss(&net, &p, &xp, &t) - loss(&net, &p, &xm, &t)) / (2.0 * eps);
        let an: f64 = gi.iter().zip(&dx).map(|(a, b)| a.re * b.re + a.im * b.im).sum();
        res.input = res.input.max((fd - an).abs() / fd.abs().max(1e-3));
    }
    res
}

fn assert_fd(g: &Graph, seed: u64) {
    let r = fd_check(g, seed);
    eprintln!(
        "params {:.2e} input {:.2e} conj-bug control {:.2e}",
        r.params, r.input, r.params_conj_bug
    );
    assert!(r.params < 1e-7, "weight gradient disagrees with finite differences: {:e}", r.params);
    assert!(r.input < 1e-7, "input gradient disagrees with finite differences: {:e}", r.input);
    // Negative control: the same check must reject a gradient with conjugated weights.
    assert!(
        r.params_conj_bug > 1e-3,
        "the finite-difference check cannot see a conjugation bug: {:e}",
        r.params_conj_bug
    );
}

#[test]
fn ptc_gradients_match_finite_differences() {
    let mut b = GraphBuilder::new([2, 2, 2, 4], 2);
    b.ptc(b.last(), 3, mixed_paths(), false);
    assert_fd(&b.g, 11);
}

#[test]
fn local_ptc_gradients_match_finite_differences() {
    let mut b = GraphBuilder::new([2, 2, 2, 4], 1);
    b.ptc(b.last(), 2, one_hop_paths(), true);
    assert_fd(&b.g, 12);
}

#[test]
fn multilayer_model_with_transport_residual_norm_gate() {
    let mut b = GraphBuilder::new([2, 2, 4, 4], 1);
    let a = b.ptc(b.last(), 3, one_hop_paths(), false);
    let t = b.transport(a, vec![vec![], vec![hop(3, true); 2], vec![hop(2, false)]]);
    let n = b.norm_gate(t);
    let c = b.ptc(n, 3, vec![vec![]], false);
    let s = b.add(c, a);
    b.ptc(s, 1, one_hop_paths(), false);
    assert_fd(&b.g, 13);
}
