//! The shipped gauge models (`models/ptc_*.sym`) compile through `sema` into `LatticeNet`
//! and agree with the reference evaluator (f64 forward and gradients) on a random gauge field.

use num_complex::Complex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use std::path::Path;
use symc::ir::ValueType;
use symc::lattice::gauge::GaugeField;
use symc::runtime::lattice_net::{LatticeNet, LatticeNetOptions};
use symc::runtime::lattice_reference::ReferenceLatticeNet;

fn rel(a: &[Complex<f64>], b: &[Complex<f64>]) -> f64 {
    let n: f64 = a.iter().zip(b).map(|(x, y)| (x - y).norm_sqr()).sum();
    let d: f64 = b.iter().map(|y| y.norm_sqr()).sum();
    (n / d).sqrt()
}

#[test]
fn shipped_gauge_models_match_the_reference() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for name in ["ptc_1h1l.sym", "ptc_smoother.sym", "ptc_precond_4x4.sym"] {
        let g = symc::sema::load_model(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let dims = g.lattice.expect("gauge model").dims;
        let mut r = ChaCha8Rng::seed_from_u64(3);
        let gauge = GaugeField::random(dims, &mut r);
        let feats = |v: symc::ir::ValueId| match g.value(v) {
            ValueType::Fermion { features, .. } => *features,
            _ => unreachable!(),
        };
        let vol = gauge.geom.volume();
        let p: Vec<f64> =
            (0..g.param_scalars()).map(|_| 0.3 * r.sample::<f64, _>(StandardNormal)).collect();
        let x: Vec<Complex<f64>> = (0..feats(symc::ir::ValueId(0)) * vol * 12)
            .map(|_| Complex::new(r.sample(StandardNormal), r.sample(StandardNormal)))
            .collect();
        let n_out = feats(g.output) * vol * 12;
        let net = LatticeNet::<f64>::compile(&g, &gauge, &LatticeNetOptions::default()).unwrap();
        let reference = ReferenceLatticeNet::new(&g, &gauge).unwrap();
        let mut y = vec![Complex::new(0.0, 0.0); n_out];
        let mut want = y.clone();
        net.forward(&p, &x, &mut y).unwrap();
        reference.forward(&p, &x, &mut want).unwrap();
        let e = rel(&y, &want);
        eprintln!("{name}: {} layers, {} params, forward {e:.2e}", g.layers.len(), g.param_count());
        assert!(e < 1e-13, "{name}: forward {e:e}");
        // f32 compiles too (the training precision).
        LatticeNet::<f32>::compile(&g, &gauge, &LatticeNetOptions::default()).unwrap();
    }
}
