//! Every JIT kernel against the plain-Rust reference evaluator (`runtime::reference`), through
//! whole small networks: forward log-probabilities and the mean-NLL parameter gradient, in f64
//! (tight tolerance: only rounding differs) and f32, for both strategies (all-JIT and gemm),
//! on odd sizes, batch 1 and batches that are not a multiple of the vector width.

mod classifier_nets;

use classifier_nets::*;
use symc::codegen::simd::Precision;
use symc::ir::{Activation, Graph, Padding};
use symc::runtime::Classifier;
use symc::runtime::classifier::{CompileOptions, JitClassifier, StrategyChoice};
use symc::runtime::reference::{self, ReferenceClassifier};

/// max |a - b| / max |b|.
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn opts(max_batch: usize, precision: Precision, strategy: StrategyChoice) -> CompileOptions {
    CompileOptions { max_batch, threads: 2, precision, keep_listings: false, strategy }
}

/// Reference log-probabilities, stats and gradient in f64.
fn reference(g: &Graph, p: &[f64], x: &[f64], labels: &[u8]) -> (Vec<f64>, f64, Vec<f64>) {
    let batch = labels.len();
    let acts = reference::forward_f64(g, p, x, batch).unwrap();
    let logp = acts[g.output.index()].clone();
    let (stats, dlogp) = reference::nll(&logp, labels, classes(g)).unwrap();
    let (dp, _) = reference::backward_f64(g, p, &acts, batch, &dlogp).unwrap();
    (logp, stats.loss_sum, dp)
}

/// Compare the JIT (both precisions, given strategy) with the reference on one batch.
fn check(g: &Graph, batch: usize, max_batch: usize, strategy: StrategyChoice, seed: u64) {
    let mut r = rng(seed);
    let p = uniform(&mut r, g.param_scalars(), 0.5);
    let x = uniform(&mut r, batch * input_len(g), 1.0);
    let labels = labels(&mut r, batch, classes(g));
    let (logp_ref, loss_ref, grad_ref) = reference(g, &p, &x, &labels);

    let jit = JitClassifier::compile(g, &opts(max_batch, Precision::F64, strategy)).unwrap();
    let mut grad = vec![0.0; p.len()];
    let stats = jit.train_batch_f64(&p, &x, &labels, &mut grad).unwrap();
    let mut logp = vec![0.0; batch * classes(g)];
    jit.predict_f64(&p, &x, &mut logp).unwrap();
    let ctx = format!("{} batch {batch}/{max_batch} {strategy:?}", g.name);
    assert!(rel_err(&logp, &logp_ref) < 1e-12, "f64 logp {ctx}: {}", rel_err(&logp, &logp_ref));
    assert!((stats.loss_sum - loss_ref).abs() < 1e-10 * loss_ref.abs().max(1.0), "f64 loss {ctx}");
    assert!(rel_err(&grad, &grad_ref) < 1e-11, "f64 grad {ctx}: {}", rel_err(&grad, &grad_ref));

    let jit = JitClassifier::compile(g, &opts(max_batch, Precision::F32, strategy)).unwrap();
    let pf: Vec<f32> = p.iter().map(|&v| v as f32).collect();
    let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let mut gf = vec![0f32; p.len()];
    let sf = jit.train_batch(&pf, &xf, &labels, &mut gf).unwrap();
    let gf: Vec<f64> = gf.iter().map(|&v| v as f64).collect();
    assert!(rel_err(&gf, &grad_ref) < 2e-4, "f32 grad {ctx}: {}", rel_err(&gf, &grad_ref));
    assert!((sf.loss_sum - loss_ref).abs() < 1e-4 * loss_ref.abs().max(1.0), "f32 loss {ctx}");
    let refc = ReferenceClassifier::new(g).unwrap();
    let mut gr = vec![0f32; p.len()];
    let sr = refc.train_batch(&pf, &xf, &labels, &mut gr).unwrap();
    assert_eq!(sr.correct, sf.correct, "accuracy {ctx}");
}

const BOTH: [StrategyChoice; 2] = [StrategyChoice::ForceJit, StrategyChoice::ForceGemm];

#[test]
fn dense_odd_sizes_all_activations() {
    let acts = [Activation::Relu, Activation::Tanh, Activation::Sigmoid, Activation::Identity];
    for (i, &a) in acts.iter().enumerate() {
        for s in BOTH {
            let g =
                Net::new("dense", &[13]).dense(7, true).act(a).dense(5, i % 2 == 0).log_softmax();
            for (batch, max) in [(1, 1), (5, 7), (9, 9)] {
                check(&g, batch, max, s, 10 + i as u64);
            }
        }
    }
}

#[test]
fn dense_wide_layers_and_standalone_activation() {
    for s in BOTH {
        // The activation after flatten cannot be fused: the standalone kernel runs.
        let g = Net::new("dense_wide", &[3, 5, 7])
            .act(Activation::Tanh)
            .flatten()
            .dense(130, true)
            .act(Activation::Relu)
            .act(Activation::Sigmoid)
            .dense(11, true)
            .log_softmax();
        check(&g, 6, 8, s, 3);
    }
}

#[test]
fn conv2d_valid_and_same_odd_and_even_windows() {
    for s in BOTH {
        for pad in [Padding::Valid, Padding::Same] {
            for (w, seed) in [([3, 3], 1), ([2, 4], 2), ([1, 5], 3)] {
                let g = Net::new("conv2d", &[3, 9, 8])
                    .conv(5, &w, pad, true)
                    .act(Activation::Relu)
                    .conv(4, &[3, 2], pad, seed % 2 == 0)
                    .act(Activation::Tanh)
                    .flatten()
                    .dense(6, true)
                    .log_softmax();
                check(&g, 3, 5, s, seed);
                check(&g, 1, 1, s, seed + 7);
            }
        }
    }
}

#[test]
fn conv1d_and_conv3d() {
    for s in BOTH {
        for pad in [Padding::Valid, Padding::Same] {
            let g = Net::new("conv1d", &[2, 17])
                .conv(3, &[4], pad, true)
                .act(Activation::Sigmoid)
                .flatten()
                .dense(4, true)
                .log_softmax();
            check(&g, 5, 6, s, 21);
            let g = Net::new("conv3d", &[2, 5, 6, 4])
                .conv(3, &[3, 2, 3], pad, true)
                .act(Activation::Relu)
                .conv(2, &[2, 3, 2], pad, true)
                .flatten()
                .dense(3, false)
                .log_softmax();
            check(&g, 3, 4, s, 22);
        }
    }
}

#[test]
fn digit_networks_jit_matches_reference() {
    // The poster's networks on a small batch (the dense one is large: 6.45 M parameters).
    for s in [StrategyChoice::Auto, StrategyChoice::ForceJit] {
        check(&digits_conv(Activation::Relu), 5, 8, s, 31);
    }
    check(&digits_dense(Activation::Relu), 3, 4, StrategyChoice::Auto, 32);
}

#[test]
fn digit_models_from_sym_files_match_reference() {
    // The shipped models, through the front end: same structure as the hand-built nets.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let conv = symc::sema::load_model(&dir.join("digits_conv.sym")).unwrap();
    assert_eq!(conv.param_count(), 21_030);
    check(&conv, 4, 8, StrategyChoice::Auto, 41);
    let dense = symc::sema::load_model(&dir.join("digits_dense.sym")).unwrap();
    assert_eq!(dense.param_count(), 6_454_860);
    let jit =
        JitClassifier::compile(&dense, &opts(64, Precision::F32, StrategyChoice::Auto)).unwrap();
    let refc = ReferenceClassifier::new(&dense).unwrap();
    let p = symc::runtime::init::init_params(&dense, 3);
    let mut r = rng(42);
    let x: Vec<f32> = uniform(&mut r, 2 * 784, 1.0).iter().map(|&v| v as f32).collect();
    let (mut a, mut b) = (vec![0f32; 20], vec![0f32; 20]);
    jit.predict(&p, &x, &mut a).unwrap();
    refc.predict(&p, &x, &mut b).unwrap();
    let (a, b): (Vec<f64>, Vec<f64>) =
        (a.iter().map(|&v| v as f64).collect(), b.iter().map(|&v| v as f64).collect());
    assert!(rel_err(&a, &b) < 1e-5, "dense model logp: {}", rel_err(&a, &b));
}

#[test]
fn wrong_shapes_are_errors() {
    let g = Net::new("dense", &[6]).dense(3, true).log_softmax();
    let jit = JitClassifier::compile(&g, &opts(4, Precision::F32, StrategyChoice::Auto)).unwrap();
    let p = vec![0f32; g.param_scalars()];
    let mut grad = vec![0f32; p.len()];
    let e = jit.train_batch(&p, &[0.0; 30], &[0; 5], &mut grad).unwrap_err().to_string();
    assert!(e.contains("batch of 5 exceeds the compiled maximum 4"), "{e}");
    let e = jit.train_batch(&p, &[0.0; 13], &[0; 2], &mut grad).unwrap_err().to_string();
    assert!(e.contains("not a whole number of 6-value samples"), "{e}");
    let e = jit.train_batch(&p, &[0.0; 12], &[0, 3], &mut grad).unwrap_err().to_string();
    assert!(e.contains("label 3 but the network has 3 classes"), "{e}");
    let e = jit.train_batch(&p[1..], &[0.0; 12], &[0, 1], &mut grad).unwrap_err().to_string();
    assert!(e.contains("parameters given"), "{e}");
}
