//! Every JIT kernel of `LatticeNet` (PTC, local PTC, linear, transport, add, norm gate; forward,
//! input backward, weight gradients; f32 and f64) against the naive reference evaluator.

mod ptc_support;

use num_complex::Complex;
use ptc_support::*;
use symc::ir::Graph;
use symc::lattice::gauge::GaugeField;
use symc::runtime::lattice_net::{LatticeNet, LatticeNetOptions};
use symc::runtime::lattice_reference::ReferenceLatticeNet;

struct Check {
    fwd: f64,
    gin: f64,
    gparams: f64,
}

/// Compare forward, input gradient and parameter gradient of JIT (f64 and f32) and reference.
fn compare(g: &Graph, seed: u64) -> (Check, Check) {
    let dims = g.lattice.unwrap().dims;
    let mut r = rng(seed);
    let gauge = GaugeField::random(dims, &mut r);
    let params = random_params(g, &mut r, 0.5);
    let vol = gauge.geom.volume();
    let n_in = match &g.values[0] {
        symc::ir::ValueType::Fermion { features, .. } => *features,
        _ => unreachable!(),
    };
    let n_out = match g.value(g.output) {
        symc::ir::ValueType::Fermion { features, .. } => *features,
        _ => unreachable!(),
    };
    let input = random_field(n_in * vol * 12, &mut r);
    let gout = random_field(n_out * vol * 12, &mut r);

    let reference = ReferenceLatticeNet::new(g, &gauge).unwrap();
    let mut want = vec![Complex::new(0.0, 0.0); n_out * vol * 12];
    reference.forward(&params, &input, &mut want).unwrap();
    let mut want_gi = vec![Complex::new(0.0, 0.0); input.len()];
    let mut want_gp = vec![0.0; params.len()];
    reference.backward(&params, &input, &gout, &mut want_gi, &mut want_gp).unwrap();

    let net = LatticeNet::<f64>::compile(g, &gauge, &LatticeNetOptions::default()).unwrap();
    let mut got = vec![Complex::new(0.0, 0.0); want.len()];
    net.forward(&params, &input, &mut got).unwrap();
    let mut gi = vec![Complex::new(0.0, 0.0); input.len()];
    let mut gp = vec![0.0; params.len()];
    net.backward(&params, &input, &gout, &mut gi, &mut gp).unwrap();
    // Without the input gradient the weight gradients are the same numbers.
    let mut gp_only = vec![0.0; params.len()];
    net.backward_partial(&params, &input, &gout, None, &mut gp_only).unwrap();
    assert_eq!(gp_only, gp, "weight gradients depend on whether the input gradient is asked for");
    // The same passes on buffers in the network's layout (one-process training): the same
    // kernels on the same numbers, so the same results to the bit.
    let layout = net.layout().clone();
    let len = layout.field_len();
    let mut x = vec![0.0; n_in * len];
    layout.to_aosoa(&input, &mut x);
    let mut g_native = vec![0.0; n_out * len];
    layout.to_aosoa(&gout, &mut g_native);
    let (mut gi_native, mut gp_native) = (vec![0.0; n_in * len], vec![0.0; params.len()]);
    let mut out_native = Vec::new();
    let seed_out = |y: &[f64], g: &mut [f64]| {
        out_native = y.to_vec();
        g.copy_from_slice(&g_native[..g.len()]);
    };
    net.forward_backward_aosoa(&params, &mut x, seed_out, Some(&mut gi_native), &mut gp_native)
        .unwrap();
    let back = |v: &[f64], n: usize| {
        let mut z = vec![Complex::new(0.0, 0.0); n];
        layout.from_aosoa(v, &mut z);
        z
    };
    assert_eq!(back(&out_native, got.len()), got, "native forward differs");
    assert_eq!(back(&gi_native, gi.len()), gi, "native input gradient differs");
    assert_eq!(gp_native, gp, "native weight gradients differ");
    let mut gp_partial = vec![0.0; params.len()];
    net.backward_partial_aosoa(&params, &mut x, &g_native, None, &mut gp_partial).unwrap();
    assert_eq!(gp_partial, gp, "native weight gradients without the output differ");
    fused_loss_matches_seeded_passes(&net, &params, &input, seed);
    let c64 = Check {
        fwd: rel_err(&got, &want),
        gin: rel_err(&gi, &want_gi),
        gparams: rel_err_real(&gp, &want_gp),
    };

    let net = LatticeNet::<f32>::compile(g, &gauge, &LatticeNetOptions::default()).unwrap();
    let p32: Vec<f32> = params.iter().map(|&x| x as f32).collect();
    let mut got = vec![Complex::new(0.0f32, 0.0); want.len()];
    net.forward(&p32, &to_f32(&input), &mut got).unwrap();
    let mut gi = vec![Complex::new(0.0f32, 0.0); input.len()];
    let mut gp = vec![0.0f32; params.len()];
    net.backward(&p32, &to_f32(&input), &to_f32(&gout), &mut gi, &mut gp).unwrap();
    let up = |v: &[Complex<f32>]| {
        v.iter().map(|z| Complex::new(z.re as f64, z.im as f64)).collect::<Vec<_>>()
    };
    let gp64: Vec<f64> = gp.iter().map(|&x| x as f64).collect();
    fused_loss_matches_seeded_passes(&net, &p32, &input, seed);
    let c32 = Check {
        fwd: rel_err(&up(&got), &want),
        gin: rel_err(&up(&gi), &want_gi),
        gparams: rel_err_real(&gp64, &want_gp),
    };
    (c64, c32)
}

/// The training loss ‖M input − target‖² and its weight gradient from `loss_grad_aosoa` (the
/// output layer's fused forward + seed + weight-gradient kernel, where it has one) against the
/// separate passes seeded by hand with 2 (out − target): the same operations in the same order,
/// so the same gradient to the bit, and the same loss up to the order of the f64 sum.
fn fused_loss_matches_seeded_passes<T: symc::codegen::simd::Element>(
    net: &LatticeNet<T>,
    params: &[T],
    input: &[Complex<f64>],
    seed: u64,
) {
    let g = net.graph();
    let fused = net.plans().iter().any(|p| p.kernels.iter().any(|k| k.ends_with("_loss_wgrad")));
    let last_local = g.layers.iter().any(|l| {
        l.output == g.output && matches!(l.kind, symc::ir::LayerKind::Ptc { local: true, .. })
    });
    let last_weighted = g
        .layers
        .iter()
        .any(|l| l.output == g.output && matches!(l.kind, symc::ir::LayerKind::Ptc { .. }));
    assert_eq!(fused, last_weighted && !last_local, "fused loss kernel where it belongs");
    let layout = net.layout().clone();
    let len = layout.field_len();
    let n_out = g.features(g.output);
    let mut r = rng(seed + 100);
    let target_ref = random_field(n_out * layout.volume() * 12, &mut r);
    let cast = |v: &[Complex<f64>]| -> Vec<Complex<T>> {
        v.iter().map(|z| Complex::new(T::from_f64(z.re), T::from_f64(z.im))).collect()
    };
    let mut target = vec![T::zero(); n_out * len];
    layout.to_aosoa(&cast(&target_ref), &mut target);
    let mut x = vec![T::zero(); g.features(symc::ir::ValueId(0)) * len];
    layout.to_aosoa(&cast(input), &mut x);
    let mut gp_fused = vec![T::zero(); params.len()];
    let loss = net.loss_grad_aosoa(params, &mut x.clone(), &target, &mut gp_fused).unwrap();
    let main = layout.main_len();
    let mut want_loss = 0.0f64;
    let by_hand = |out: &[T], gout: &mut [T]| {
        for f in 0..n_out {
            for k in f * len..f * len + main {
                let d = out[k] - target[k];
                want_loss += d.to_f64() * d.to_f64();
                gout[k] = (T::one() + T::one()) * d;
            }
        }
    };
    let mut gp = vec![T::zero(); params.len()];
    net.forward_backward_aosoa(params, &mut x, by_hand, None, &mut gp).unwrap();
    let differ = gp_fused.iter().zip(&gp).filter(|(a, b)| a != b).count();
    assert_eq!(
        differ,
        0,
        "fused loss gradient: {differ} of {} entries differ from the seeded passes",
        gp.len()
    );
    assert!(
        (loss - want_loss).abs() <= 1e-12 * want_loss && want_loss > 0.0,
        "fused loss {loss} vs {want_loss}"
    );
}

fn assert_close(g: &Graph, seed: u64) {
    let (c64, c32) = compare(g, seed);
    eprintln!(
        "f64: fwd {:.2e} gin {:.2e} gw {:.2e}; f32: fwd {:.2e} gin {:.2e} gw {:.2e}",
        c64.fwd, c64.gin, c64.gparams, c32.fwd, c32.gin, c32.gparams
    );
    for (what, v) in
        [("forward", c64.fwd), ("input gradient", c64.gin), ("weight gradient", c64.gparams)]
    {
        assert!(v < 1e-13, "f64 {what}: relative error {v:e}");
    }
    for (what, v) in
        [("forward", c32.fwd), ("input gradient", c32.gin), ("weight gradient", c32.gparams)]
    {
        assert!(v < 2e-6, "f32 {what}: relative error {v:e}");
    }
}

#[test]
fn ptc_one_hop_1_to_1() {
    let mut b = GraphBuilder::new([4, 4, 4, 8], 1);
    b.ptc(b.last(), 1, one_hop_paths(), false);
    assert_close(&b.g, 1);
}

#[test]
fn ptc_mixed_paths_odd_features_uneven_lattice() {
    let mut b = GraphBuilder::new([2, 4, 6, 8], 3);
    b.ptc(b.last(), 2, mixed_paths(), false);
    assert_close(&b.g, 2);
}

#[test]
fn linear_zero_hop_only() {
    let mut b = GraphBuilder::new([4, 4, 4, 8], 2);
    b.ptc(b.last(), 3, vec![vec![]], false);
    assert_close(&b.g, 3);
}

#[test]
fn local_ptc() {
    let mut b = GraphBuilder::new([2, 4, 2, 4], 2);
    b.ptc(b.last(), 1, mixed_paths(), true);
    assert_close(&b.g, 4);
}

#[test]
fn transport_long_paths() {
    let mut b = GraphBuilder::new([4, 4, 4, 8], 1);
    let x = b.ptc(b.last(), 5, vec![vec![]], false);
    let mut paths = vec![vec![]];
    paths.push(vec![hop(3, true); 4]);
    paths.push(vec![hop(3, false); 2]);
    paths.push(vec![hop(0, true); 2]);
    paths.push(vec![hop(1, false), hop(3, true)]);
    b.transport(x, paths);
    assert_close(&b.g, 5);
}

#[test]
fn residual_and_norm_gate_model() {
    // psi -> ptc 1->2 -> norm_gate -> ptc 2->2 (+ skip) -> ptc 2->1
    let mut b = GraphBuilder::new([4, 4, 4, 8], 1);
    let a = b.ptc(b.last(), 2, one_hop_paths(), false);
    let n = b.norm_gate(a);
    let c = b.ptc(n, 2, one_hop_paths(), false);
    let s = b.add(c, a);
    b.ptc(s, 1, one_hop_paths(), false);
    assert_close(&b.g, 6);
}

#[test]
fn smoother_four_layers() {
    let mut b = GraphBuilder::new([4, 4, 4, 8], 1);
    let x = b.ptc(b.last(), 2, one_hop_paths(), false);
    let x = b.ptc(x, 2, one_hop_paths(), false);
    let x = b.ptc(x, 2, one_hop_paths(), false);
    b.ptc(x, 1, one_hop_paths(), false);
    assert_close(&b.g, 7);
}
