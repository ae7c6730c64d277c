//! Gradients against central finite differences in f64, for the reference evaluator's backward
//! (parameters and input) and for the JIT's f64 backward kernels (parameters), on small networks
//! covering every layer kind; with negative controls showing the check detects a perturbed
//! gradient entry and a wrong derivative rule.

mod classifier_nets;

use classifier_nets::*;
use symc::codegen::simd::Precision;
use symc::ir::{Activation, Graph, Padding};
use symc::runtime::classifier::{CompileOptions, JitClassifier, StrategyChoice};
use symc::runtime::reference;

const H: f64 = 1e-6;
/// |analytic - numeric| allowed, relative to max(1, max |numeric|). Central differences with
/// h = 1e-6 in f64 are good to ~5e-10 here; a wrong rule is off by O(1e-2).
const TOL: f64 = 1e-8;

/// Mean NLL by the reference forward.
fn ref_loss(g: &Graph, p: &[f64], x: &[f64], labels: &[u8]) -> f64 {
    let acts = reference::forward_f64(g, p, x, labels.len()).unwrap();
    reference::nll(&acts[g.output.index()], labels, classes(g)).unwrap().0.loss_sum
        / labels.len() as f64
}

/// Reference gradients (params, input) of the mean NLL.
fn ref_grad(g: &Graph, p: &[f64], x: &[f64], labels: &[u8]) -> (Vec<f64>, Vec<f64>) {
    let acts = reference::forward_f64(g, p, x, labels.len()).unwrap();
    let (_, d) = reference::nll(&acts[g.output.index()], labels, classes(g)).unwrap();
    reference::backward_f64(g, p, &acts, labels.len(), &d).unwrap()
}

fn numeric(v: &[f64], f: &dyn Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut w = v.to_vec();
    (0..v.len())
        .map(|i| {
            w[i] = v[i] + H;
            let up = f(&w);
            w[i] = v[i] - H;
            let down = f(&w);
            w[i] = v[i];
            (up - down) / (2.0 * H)
        })
        .collect()
}

/// Largest error relative to the scale of the numeric gradient.
fn mismatch(analytic: &[f64], numeric: &[f64]) -> f64 {
    let scale = numeric.iter().fold(1f64, |m, v| m.max(v.abs()));
    analytic.iter().zip(numeric).fold(0f64, |m, (a, n)| m.max((a - n).abs())) / scale
}

struct Case {
    g: Graph,
    p: Vec<f64>,
    x: Vec<f64>,
    labels: Vec<u8>,
}

fn case(g: Graph, batch: usize, seed: u64) -> Case {
    let mut r = rng(seed);
    let p = uniform(&mut r, g.param_scalars(), 0.6);
    let x = uniform(&mut r, batch * input_len(&g), 1.0);
    let labels = labels(&mut r, batch, classes(&g));
    Case { g, p, x, labels }
}

fn cases() -> Vec<Case> {
    vec![
        case(
            Net::new("dense_tanh", &[7])
                .dense(5, true)
                .act(Activation::Tanh)
                .dense(3, true)
                .log_softmax(),
            3,
            1,
        ),
        case(
            Net::new("dense_sigmoid_nobias", &[6])
                .dense(5, false)
                .act(Activation::Sigmoid)
                .dense(4, true)
                .log_softmax(),
            2,
            2,
        ),
        case(
            Net::new("conv2d_same", &[2, 5, 6])
                .conv(3, &[3, 2], Padding::Same, true)
                .act(Activation::Tanh)
                .flatten()
                .dense(3, true)
                .log_softmax(),
            2,
            3,
        ),
        case(
            Net::new("conv2d_valid_relu", &[2, 6, 5])
                .conv(3, &[2, 3], Padding::Valid, true)
                .act(Activation::Relu)
                .conv(2, &[3, 2], Padding::Valid, false)
                .flatten()
                .act(Activation::Sigmoid)
                .dense(3, true)
                .log_softmax(),
            2,
            4,
        ),
        case(
            Net::new("conv1d_same", &[2, 9])
                .conv(2, &[4], Padding::Same, true)
                .act(Activation::Sigmoid)
                .flatten()
                .log_softmax(),
            3,
            5,
        ),
        case(
            Net::new("conv3d_valid", &[1, 4, 3, 4])
                .conv(2, &[2, 2, 3], Padding::Valid, true)
                .act(Activation::Tanh)
                .flatten()
                .dense(3, true)
                .log_softmax(),
            2,
            6,
        ),
    ]
}

#[test]
fn reference_backward_matches_finite_differences() {
    for c in cases() {
        let (gp, gx) = ref_grad(&c.g, &c.p, &c.x, &c.labels);
        let np = numeric(&c.p, &|p| ref_loss(&c.g, p, &c.x, &c.labels));
        let nx = numeric(&c.x, &|x| ref_loss(&c.g, &c.p, x, &c.labels));
        let (ep, ex) = (mismatch(&gp, &np), mismatch(&gx, &nx));
        eprintln!("{}: reference param grad error {ep:.2e}, input grad error {ex:.2e}", c.g.name);
        assert!(ep < TOL, "{}: parameter gradient off by {ep:e}", c.g.name);
        assert!(ex < TOL, "{}: input gradient off by {ex:e}", c.g.name);
    }
}

fn jit_f64(g: &Graph, batch: usize, strategy: StrategyChoice) -> JitClassifier {
    let opts = CompileOptions {
        max_batch: batch,
        threads: 2,
        precision: Precision::F64,
        keep_listings: false,
        strategy,
    };
    JitClassifier::compile(g, &opts).unwrap()
}

fn jit_loss_and_grad(jit: &JitClassifier, p: &[f64], x: &[f64], labels: &[u8]) -> (f64, Vec<f64>) {
    let mut grad = vec![0.0; p.len()];
    let s = jit.train_batch_f64(p, x, labels, &mut grad).unwrap();
    (s.loss_sum / labels.len() as f64, grad)
}

#[test]
fn jit_backward_matches_finite_differences_of_jit_forward() {
    for strategy in [StrategyChoice::ForceJit, StrategyChoice::ForceGemm] {
        for c in cases() {
            let jit = jit_f64(&c.g, c.labels.len(), strategy);
            let (_, g) = jit_loss_and_grad(&jit, &c.p, &c.x, &c.labels);
            let n = numeric(&c.p, &|p| jit_loss_and_grad(&jit, p, &c.x, &c.labels).0);
            let e = mismatch(&g, &n);
            eprintln!("{} {strategy:?}: JIT param grad error {e:.2e}", c.g.name);
            assert!(e < TOL, "{} {strategy:?}: JIT gradient off by {e:e}", c.g.name);
        }
    }
}

#[test]
fn negative_control_perturbed_gradient_entry_fails() {
    let c = &cases()[2];
    let jit = jit_f64(&c.g, c.labels.len(), StrategyChoice::ForceJit);
    let (_, mut g) = jit_loss_and_grad(&jit, &c.p, &c.x, &c.labels);
    let n = numeric(&c.p, &|p| jit_loss_and_grad(&jit, p, &c.x, &c.labels).0);
    assert!(mismatch(&g, &n) < TOL);
    // One weight-gradient entry of the convolution off by 1e-5: the check must see it.
    g[4] += 1e-5;
    let e = mismatch(&g, &n);
    assert!(e > TOL, "a perturbed gradient entry went unnoticed ({e:e})");
}

#[test]
fn negative_control_wrong_derivative_rule_fails() {
    // Gradient by the tanh network's backward, differences of the same weights in a network
    // whose activation is sigmoid: the derivative rule no longer matches the function.
    let c = &cases()[0];
    let wrong = Net::new("dense_sigmoid", &[7])
        .dense(5, true)
        .act(Activation::Sigmoid)
        .dense(3, true)
        .log_softmax();
    for g in [
        ref_grad(&c.g, &c.p, &c.x, &c.labels).0,
        jit_loss_and_grad(&jit_f64(&c.g, 3, StrategyChoice::ForceJit), &c.p, &c.x, &c.labels).1,
    ] {
        let n = numeric(&c.p, &|p| ref_loss(&wrong, p, &c.x, &c.labels));
        let e = mismatch(&g, &n);
        assert!(e > 1e3 * TOL, "a wrong derivative rule passed the check ({e:e})");
    }
}
