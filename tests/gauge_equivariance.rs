//! Symmetries of the compiled gauge networks: gauge equivariance f(Omega psi; U^Omega) =
//! Omega f(psi; U) for every layer kind and a whole model (f64, ~1e-12), translation
//! equivariance (shift field and gauge by one site: the output shifts), and f32/f64 agreement.

mod ptc_support;

use num_complex::Complex;
use ptc_support::*;
use symc::ir::Graph;
use symc::lattice::gauge::GaugeField;
use symc::lattice::geometry::Geometry;
use symc::runtime::lattice_net::{LatticeNet, LatticeNetOptions};
use symc::runtime::lattice_reference::gauge_rotate;

fn feats(g: &Graph, v: symc::ir::ValueId) -> usize {
    match g.value(v) {
        symc::ir::ValueType::Fermion { features, .. } => *features,
        _ => unreachable!(),
    }
}

fn run(g: &Graph, gauge: &GaugeField, p: &[f64], x: &[Complex<f64>]) -> Vec<Complex<f64>> {
    let net = LatticeNet::<f64>::compile(g, gauge, &LatticeNetOptions::default()).unwrap();
    let mut out = vec![Complex::new(0.0, 0.0); feats(g, g.output) * gauge.geom.volume() * 12];
    net.forward(p, x, &mut out).unwrap();
    out
}

fn gauge_check(g: &Graph, seed: u64) -> f64 {
    let dims = g.lattice.unwrap().dims;
    let mut r = rng(seed);
    let gauge = GaugeField::random(dims, &mut r);
    let p = random_params(g, &mut r, 0.5);
    let x = random_field(feats(g, symc::ir::ValueId(0)) * gauge.geom.volume() * 12, &mut r);
    let omega = gauge.random_transformation(&mut r);
    let y = run(g, &gauge, &p, &x);
    let y_rot = run(g, &gauge.gauge_transform(&omega), &p, &gauge_rotate(&omega, &x));
    rel_err(&y_rot, &gauge_rotate(&omega, &y))
}

/// Local PTC weights are site dependent, so translations only hold for global-weight models.
fn translation_check(g: &Graph, seed: u64, mu: usize) -> f64 {
    let dims = g.lattice.unwrap().dims;
    let mut r = rng(seed);
    let gauge = GaugeField::random(dims, &mut r);
    let geom = Geometry::new(dims);
    let vol = geom.volume();
    let p = random_params(g, &mut r, 0.5);
    let x = random_field(feats(g, symc::ir::ValueId(0)) * vol * 12, &mut r);
    // shifted(x) = original(x + mu)
    let shift_field = |f: &[Complex<f64>]| {
        let mut s = f.to_vec();
        for (k, chunk) in s.chunks_mut(12).enumerate() {
            let (feat, site) = (k / vol, k % vol);
            let src = feat * vol + geom.up(site, mu);
            chunk.copy_from_slice(&f[src * 12..src * 12 + 12]);
        }
        s
    };
    let mut sg = gauge.clone();
    for site in 0..vol {
        for nu in 0..4 {
            sg.links[site * 4 + nu] = *gauge.link(geom.up(site, mu), nu);
        }
    }
    let y = run(g, &gauge, &p, &x);
    let y_shift = run(g, &sg, &p, &shift_field(&x));
    rel_err(&y_shift, &shift_field(&y))
}

fn model() -> Graph {
    let mut b = GraphBuilder::new([4, 4, 4, 8], 1);
    let a = b.ptc(b.last(), 2, mixed_paths(), false);
    let t = b.transport(a, vec![vec![hop(3, true); 4], vec![hop(0, false), hop(1, true)]]);
    let n = b.norm_gate(t);
    let c = b.ptc(n, 2, vec![vec![]], false);
    let s = b.add(c, a);
    b.ptc(s, 1, one_hop_paths(), false);
    b.g
}

#[test]
fn each_layer_kind_is_gauge_equivariant() {
    let dims = [2, 4, 6, 8];
    let cases: Vec<(&str, Graph)> = vec![
        ("ptc", {
            let mut b = GraphBuilder::new(dims, 2);
            b.ptc(b.last(), 3, mixed_paths(), false);
            b.g
        }),
        ("local ptc", {
            let mut b = GraphBuilder::new(dims, 1);
            b.ptc(b.last(), 2, mixed_paths(), true);
            b.g
        }),
        ("linear", {
            let mut b = GraphBuilder::new(dims, 2);
            b.ptc(b.last(), 2, vec![vec![]], false);
            b.g
        }),
        ("transport", {
            let mut b = GraphBuilder::new(dims, 3);
            b.transport(
                b.last(),
                vec![
                    vec![hop(3, false); 4],
                    vec![hop(1, true), hop(2, true)],
                    vec![hop(0, true), hop(3, true), hop(0, false), hop(3, false)],
                ],
            );
            b.g
        }),
        ("norm gate", {
            let mut b = GraphBuilder::new(dims, 2);
            b.norm_gate(b.last());
            b.g
        }),
        ("residual", {
            let mut b = GraphBuilder::new(dims, 1);
            let a = b.ptc(b.last(), 1, one_hop_paths(), false);
            b.add(a, symc::ir::ValueId(0));
            b.g
        }),
    ];
    for (k, (name, g)) in cases.iter().enumerate() {
        let e = gauge_check(g, 100 + k as u64);
        eprintln!("{name}: {e:.2e}");
        assert!(e < 1e-12, "{name} is not gauge equivariant: {e:e}");
    }
}

#[test]
fn whole_model_is_gauge_equivariant() {
    let e = gauge_check(&model(), 7);
    assert!(e < 1e-12, "model: {e:e}");
}

#[test]
fn gauge_check_detects_a_non_equivariant_field() {
    // Negative control: rotating the input with a *different* Omega must break the identity.
    let g = model();
    let dims = g.lattice.unwrap().dims;
    let mut r = rng(9);
    let gauge = GaugeField::random(dims, &mut r);
    let p = random_params(&g, &mut r, 0.5);
    let x = random_field(gauge.geom.volume() * 12, &mut r);
    let omega = gauge.random_transformation(&mut r);
    let other = gauge.random_transformation(&mut r);
    let y_rot = run(&g, &gauge.gauge_transform(&omega), &p, &gauge_rotate(&other, &x));
    let y = run(&g, &gauge, &p, &x);
    assert!(rel_err(&y_rot, &gauge_rotate(&omega, &y)) > 1e-2);
}

#[test]
fn model_is_translation_equivariant() {
    for mu in [0, 3] {
        let e = translation_check(&model(), 21 + mu as u64, mu);
        eprintln!("shift along {mu}: {e:.2e}");
        assert!(e < 1e-13, "shift along {mu}: {e:e}");
    }
}

#[test]
fn f32_and_f64_models_agree() {
    let g = model();
    let dims = g.lattice.unwrap().dims;
    let mut r = rng(31);
    let gauge = GaugeField::random(dims, &mut r);
    let p = random_params(&g, &mut r, 0.5);
    let x = random_field(gauge.geom.volume() * 12, &mut r);
    let y64 = run(&g, &gauge, &p, &x);
    let net = LatticeNet::<f32>::compile(&g, &gauge, &LatticeNetOptions::default()).unwrap();
    let p32: Vec<f32> = p.iter().map(|&v| v as f32).collect();
    let mut y32 = vec![Complex::new(0.0f32, 0.0); y64.len()];
    net.forward(&p32, &to_f32(&x), &mut y32).unwrap();
    let up: Vec<Complex<f64>> =
        y32.iter().map(|z| Complex::new(z.re as f64, z.im as f64)).collect();
    let e = rel_err(&up, &y64);
    eprintln!("f32 vs f64: {e:.2e}");
    assert!(e < 1e-5 && e > 0.0, "f32 vs f64: {e:e}");
}
