//! The library API (`symc::model`): its forward and gradients are the executors' and agree with
//! the reference evaluators, every array layout it accepts gives the same numbers, wrong shapes
//! and wrong model kinds are errors that say what was expected, and weights survive a
//! save/load round trip bit for bit.

use miette::Diagnostic;
use ndarray::{Array1, Array4, ArrayView, Axis, Dimension, ShapeBuilder, s};
use num_complex::Complex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use symc::codegen::simd::Precision;
use symc::lattice::gauge::GaugeField;
use symc::runtime::classifier::CompileOptions;
use symc::runtime::lattice_reference::ReferenceLatticeNet;
use symc::runtime::{Classifier, reference};
use symc::{Model, ModelError};

/// Two convolutions (8x8 -> 6x6 -> 1x1), 10 classes.
const CONV: &str = "network conv {
    input image: real[1, 8, 8]
    symmetry translation(axes = 1..2)
    linear(1 -> 4, window = 3) tanh
    linear(4 -> 10, window = 6)
    output logits: log_softmax
}";

/// One PTC layer 1 -> 2 and a second 2 -> 1 with a norm gate between, on 4^4.
const PTC: &str = "network ptc {
    lattice  4 x 4 x 4 x 4
    input    v: fermion
    symmetry gauge(SU3), translation
    linear(1 -> 2, hops = 1) norm_gate
    linear(2 -> 1, hops = 1)
    output fermion
}";

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn normal(r: &mut ChaCha8Rng) -> f64 {
    r.sample(StandardNormal)
}

fn conv_model() -> Model {
    Model::from_str("conv.sym", CONV).expect("the test model compiles")
}

/// Deterministic parameters of moderate size (init_params would do, but keep the test's own).
fn params(model: &Model, seed: u64) -> Array1<f32> {
    let mut r = rng(seed);
    Array1::from_shape_fn(model.param_scalars(), |_| 0.3 * normal(&mut r) as f32)
}

fn images(batch: usize, seed: u64) -> Array4<f32> {
    let mut r = rng(seed);
    Array4::from_shape_fn((batch, 1, 8, 8), |_| normal(&mut r) as f32)
}

fn max_abs_diff<'a>(
    a: impl IntoIterator<Item = &'a f32>,
    b: impl IntoIterator<Item = &'a f32>,
) -> f32 {
    a.into_iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

fn shape_message(e: ModelError) -> String {
    match e {
        ModelError::Shape { .. } => e.to_string(),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn classifier_forward_is_the_executors_and_matches_the_reference() {
    let model = conv_model();
    // A compiled maximum of 2 makes a batch of 5 run in three chunks.
    let opts = CompileOptions { max_batch: 2, ..CompileOptions::default() };
    let net = model.classifier_with(&opts).unwrap();
    assert_eq!((net.input_shape(), net.classes()), (&[1, 8, 8][..], 10));
    let p = params(&model, 1);
    let x = images(5, 2);
    let got = net.forward(p.view(), x.view()).unwrap();
    assert_eq!(got.dim(), (5, 10));

    // The executor itself, called chunk by chunk on the flat buffers: bit for bit the same.
    let flat_x = x.as_slice().unwrap();
    let mut want = vec![0.0f32; 5 * 10];
    for (xs, out) in flat_x.chunks(2 * 64).zip(want.chunks_mut(2 * 10)) {
        net.executor().predict(p.as_slice().unwrap(), xs, out).unwrap();
    }
    assert_eq!(got.as_slice().unwrap(), &want[..]);

    // The oracle, in f64.
    let g = model.graph();
    let p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
    let x64: Vec<f64> = flat_x.iter().map(|&v| v as f64).collect();
    let acts = reference::forward_f64(g, &p64, &x64, 5).unwrap();
    let oracle: Vec<f32> = acts[g.output.index()].iter().map(|&v| v as f32).collect();
    let e = max_abs_diff(got.iter(), oracle.iter());
    assert!(e < 1e-4, "API forward vs reference: {e:e}");
}

#[test]
fn every_accepted_input_layout_gives_the_same_log_probabilities() {
    let model = conv_model();
    let net = model.classifier().unwrap();
    let p = params(&model, 3);
    let x = images(4, 4);
    let want = net.forward(p.view(), x.view()).unwrap();
    // [batch, 8, 8] (the channel axis of length 1 left out) and [batch, 64] (flat).
    let squeezed = x.index_axis(Axis(1), 0);
    let flat = x.to_shape((4, 64)).unwrap();
    // Column-major storage and a strided view: logically the same images.
    let mut fortran = Array4::<f32>::zeros((4, 1, 8, 8).f());
    fortran.assign(&x);
    let wide = Array4::from_shape_fn((4, 1, 8, 16), |(b, c, i, j)| {
        if j % 2 == 0 { x[[b, c, i, j / 2]] } else { f32::NAN }
    });
    let strided = wide.slice(s![.., .., .., ..;2]);
    assert_eq!(net.forward(p.view(), squeezed).unwrap(), want);
    assert_eq!(net.forward(p.view(), flat.view()).unwrap(), want);
    assert_eq!(net.forward(p.view(), fortran.view()).unwrap(), want);
    assert_eq!(net.forward(p.view(), strided).unwrap(), want);
    let empty = net.forward(p.view(), Array4::<f32>::zeros((0, 1, 8, 8)).view()).unwrap();
    assert_eq!(empty.dim(), (0, 10));
}

#[test]
fn loss_and_grad_is_the_mean_over_chunks_and_matches_the_reference() {
    let model = conv_model();
    let p = params(&model, 5);
    let x = images(5, 6);
    let labels = Array1::from(vec![3u8, 0, 9, 9, 4]);
    let whole = model
        .classifier_with(&CompileOptions { max_batch: 8, ..CompileOptions::default() })
        .unwrap()
        .loss_and_grad(p.view(), x.view(), labels.view())
        .unwrap();
    let chunked = model
        .classifier_with(&CompileOptions { max_batch: 2, ..CompileOptions::default() })
        .unwrap()
        .loss_and_grad(p.view(), x.view(), labels.view())
        .unwrap();
    assert_eq!(whole.correct, chunked.correct);
    assert!((whole.loss - chunked.loss).abs() < 1e-5, "{} vs {}", whole.loss, chunked.loss);
    let scale = whole.grad.iter().fold(0f32, |m, v| m.max(v.abs()));
    let e = max_abs_diff(whole.grad.iter(), chunked.grad.iter());
    assert!(e < 1e-5 * scale.max(1.0), "chunked gradient differs by {e:e}");

    let g = model.graph();
    let p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let acts = reference::forward_f64(g, &p64, &x64, 5).unwrap();
    let (stats, dlogp) =
        reference::nll(&acts[g.output.index()], labels.as_slice().unwrap(), 10).unwrap();
    let (dp, _) = reference::backward_f64(g, &p64, &acts, 5, &dlogp).unwrap();
    assert!((whole.loss - stats.loss_sum / 5.0).abs() < 1e-4);
    assert_eq!(whole.correct, stats.correct);
    let dp32: Vec<f32> = dp.iter().map(|&v| v as f32).collect();
    let e = max_abs_diff(whole.grad.iter(), dp32.iter());
    assert!(e < 1e-4 * scale.max(1.0), "API gradient vs reference: {e:e}");
}

#[test]
fn shipped_digit_model_scores_mnist_images_straight_from_the_split() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = Model::load(root.join("models/digits_conv.sym")).unwrap();
    let net = model.classifier().unwrap();
    assert_eq!((net.input_shape(), net.classes()), (&[1, 28, 28][..], 10));
    let test = symc::train::mnist::load_split(&root.join("models/data/mnist"), "t10k").unwrap();
    // The split is an Array3 [count, 28, 28]: a slice of it is a batch.
    let batch = test.images.slice(s![..3, .., ..]);
    let logp = net.forward(model.init_params(0).view(), batch).unwrap();
    assert_eq!(logp.dim(), (3, 10));
    for row in logp.rows() {
        let total: f32 = row.iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-4, "probabilities sum to {total}");
    }
}

fn complex_field<D: Dimension>(
    shape: impl ShapeBuilder<Dim = D>,
    seed: u64,
) -> ndarray::Array<Complex<f64>, D> {
    let mut r = rng(seed);
    ndarray::Array::from_shape_simple_fn(shape, || Complex::new(normal(&mut r), normal(&mut r)))
}

fn ptc_setup() -> (Model, GaugeField, Array1<f64>) {
    let model = Model::from_str("ptc.sym", PTC).unwrap();
    let gauge = GaugeField::random([4, 4, 4, 4], &mut rng(11));
    let mut r = rng(12);
    let p = Array1::from_shape_fn(model.param_scalars(), |_| 0.3 * normal(&mut r));
    (model, gauge, p)
}

#[test]
fn gauge_forward_and_backward_match_the_reference_in_both_layouts() {
    let (model, gauge, p) = ptc_setup();
    let net = model.gauge_net::<f64>(&gauge).unwrap();
    assert_eq!((net.features_in(), net.features_out(), net.volume()), (1, 1, 256));
    let psi = complex_field((1, 256, 4, 3), 13);
    let out4 = net.forward(p.view(), psi.view()).unwrap();
    let psi3 = psi.to_shape((1, 256, 12)).unwrap();
    let out3 = net.forward(p.view(), psi3.view()).unwrap();
    assert_eq!(out3.dim(), (1, 256, 12));
    assert_eq!(out3.as_slice().unwrap(), out4.as_slice().unwrap());

    let oracle = ReferenceLatticeNet::new(model.graph(), &gauge).unwrap();
    let mut want = vec![Complex::new(0.0, 0.0); 256 * 12];
    oracle.forward(p.as_slice().unwrap(), psi.as_slice().unwrap(), &mut want).unwrap();
    let e = out4.iter().zip(&want).fold(0f64, |m, (a, b)| m.max((a - b).norm()));
    assert!(e < 1e-11, "API forward vs reference: {e:e}");

    // The executor, called on the flat buffers: bit for bit the API's result.
    let mut exec = vec![Complex::new(0.0, 0.0); 256 * 12];
    net.executor().forward(p.as_slice().unwrap(), psi.as_slice().unwrap(), &mut exec).unwrap();
    assert_eq!(out4.as_slice().unwrap(), &exec[..]);

    let seed = complex_field((1, 256, 4, 3), 14);
    let grad = net.backward(p.view(), psi.view(), seed.view()).unwrap();
    let mut gin = vec![Complex::new(0.0, 0.0); 256 * 12];
    let mut gp = vec![0.0; p.len()];
    oracle
        .backward(
            p.as_slice().unwrap(),
            psi.as_slice().unwrap(),
            seed.as_slice().unwrap(),
            &mut gin,
            &mut gp,
        )
        .unwrap();
    let scale = gp.iter().fold(0f64, |m, v| m.max(v.abs()));
    let e = grad.iter().zip(&gp).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(e < 1e-11 * scale.max(1.0), "API weight gradient vs reference: {e:e}");
}

#[test]
fn f32_gauge_net_is_close_to_f64() {
    let (model, gauge, p) = ptc_setup();
    let psi = complex_field((1, 256, 4, 3), 15);
    let want = model.gauge_net::<f64>(&gauge).unwrap().forward(p.view(), psi.view()).unwrap();
    let net = model.gauge_net::<f32>(&gauge).unwrap();
    let got = net
        .forward(
            p.mapv(|v| v as f32).view(),
            psi.mapv(|z| Complex::new(z.re as f32, z.im as f32)).view(),
        )
        .unwrap();
    let e = got
        .iter()
        .zip(&want)
        .fold(0f64, |m, (a, b)| m.max((Complex::new(a.re as f64, a.im as f64) - b).norm()));
    assert!(e < 1e-4, "f32 vs f64: {e:e}");
}

#[test]
fn dense_fermion_models_run_on_the_dense_executor() {
    let model = Model::from_str(
        "dense.sym",
        "network dense {
            lattice  2 x 2 x 2 x 2
            input    v: fermion
            symmetry none
            linear(1 -> 1)
            output fermion
        }",
    )
    .unwrap();
    let gauge = GaugeField::unit([2, 2, 2, 2]);
    let net = model.gauge_net::<f64>(&gauge).unwrap();
    let p = model.init_params(4).mapv(f64::from);
    let psi = complex_field((1, 16, 12), 16);
    let got = net.forward(p.view(), psi.view()).unwrap();
    let mut want = vec![Complex::new(0.0, 0.0); 16 * 12];
    net.executor().forward(p.as_slice().unwrap(), psi.as_slice().unwrap(), &mut want).unwrap();
    assert_eq!(got.as_slice().unwrap(), &want[..]);
}

#[test]
fn wrong_shapes_are_errors_that_say_what_was_expected() {
    let model = conv_model();
    let net = model.classifier().unwrap();
    let p = params(&model, 7);
    let m = shape_message(
        net.forward(p.view(), Array4::<f32>::zeros((2, 1, 9, 8)).view()).unwrap_err(),
    );
    assert!(m.contains("[2, 1, 9, 8]") && m.contains("expected [batch, 1, 8, 8]"), "{m}");
    assert!(m.contains("[batch, 64]"), "{m}");
    let m = shape_message(net.forward(p.view(), Array1::<f32>::zeros(64).view()).unwrap_err());
    assert!(m.contains("an input of shape [64]"), "{m}");
    let short = Array1::<f32>::zeros(p.len() - 1);
    let m = shape_message(net.forward(short.view(), images(1, 0).view()).unwrap_err());
    assert!(
        m.contains(&format!("holds {} numbers, the model has {}", p.len() - 1, p.len())),
        "{m}"
    );
    let x = images(3, 8);
    let m = shape_message(
        net.loss_and_grad(p.view(), x.view(), Array1::from(vec![1u8, 2]).view()).unwrap_err(),
    );
    assert!(m.contains("2 labels for a batch of 3"), "{m}");
    let m = shape_message(
        net.loss_and_grad(p.view(), x.view(), Array1::from(vec![1u8, 2, 10]).view()).unwrap_err(),
    );
    assert!(m.contains("label 10, but the model has 10 classes"), "{m}");
    let m = shape_message(
        net.loss_and_grad(p.view(), images(0, 0).view(), Array1::<u8>::zeros(0).view())
            .unwrap_err(),
    );
    assert!(m.contains("empty"), "{m}");

    let (model, gauge, p) = ptc_setup();
    let net = model.gauge_net::<f64>(&gauge).unwrap();
    let check = |got: Result<ndarray::ArrayD<Complex<f64>>, ModelError>, want: &str| {
        let m = shape_message(got.unwrap_err());
        assert!(m.contains(want), "{m}");
    };
    let fwd = |a: ArrayView<Complex<f64>, ndarray::IxDyn>| net.forward(p.view(), a);
    let two = complex_field(ndarray::IxDyn(&[2, 256, 12]), 1);
    check(fwd(two.view()), "expected [1, 256, 12] or [1, 256, 4, 3]");
    let small = complex_field(ndarray::IxDyn(&[1, 81, 4, 3]), 1);
    check(fwd(small.view()), "the input of shape [1, 81, 4, 3]");
    let flat = complex_field(ndarray::IxDyn(&[256 * 12]), 1);
    check(fwd(flat.view()), "the input of shape [3072]");
    let psi = complex_field((1, 256, 4, 3), 2);
    let bad_seed = complex_field((2, 256, 4, 3), 3);
    let m = shape_message(net.backward(p.view(), psi.view(), bad_seed.view()).unwrap_err());
    assert!(m.contains("the output gradient of shape [2, 256, 4, 3]"), "{m}");
    let psi3 = complex_field((1, 256, 12), 2);
    let p_short = Array1::<f64>::zeros(3);
    let m = shape_message(net.forward(p_short.view(), psi3.view()).unwrap_err());
    assert!(m.contains("the parameter vector"), "{m}");

    // A gauge field on another lattice is refused when compiling.
    let other = GaugeField::unit([4, 4, 4, 8]);
    let e = model.gauge_net::<f64>(&other).err().expect("lattice mismatch");
    assert!(e.to_string().contains("[4, 4, 4, 8]"), "{e}");
}

#[test]
fn models_are_run_only_as_what_they_are() {
    let (gauge_model, gauge, _) = ptc_setup();
    let e = gauge_model.classifier().err().expect("a gauge network is no classifier");
    assert!(matches!(e, ModelError::Kind { .. }), "{e:?}");
    assert!(e.to_string().contains("model `ptc` works on fermion fields"), "{e}");
    let e = conv_model().gauge_net::<f32>(&gauge).err().expect("a classifier is no gauge net");
    assert!(e.to_string().contains("model `conv` classifies real tensors"), "{e}");
}

#[test]
fn problems_in_the_text_are_miette_diagnostics_with_spans() {
    let e = Model::from_str("broken.sym", "network broken {\n  input x: real[4\n").unwrap_err();
    assert_eq!(e.code().map(|c| c.to_string()).as_deref(), Some("symc::syntax::unclosed_bracket"));
    assert!(e.source_code().is_some(), "the diagnostic carries the source text");
    let rendered = symc::diagnostics::render_plain(&e);
    assert!(rendered.contains("broken.sym:2:16"), "{rendered}");
    let e = Model::load("/nonexistent/model.sym").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/model.sym"), "{e}");
}

#[test]
fn weights_survive_a_save_load_round_trip_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    for (model, seed) in [(conv_model(), 21), (ptc_setup().0, 22)] {
        let mut r = rng(seed);
        // Values with all 32 bits in use, negative zero and a subnormal included.
        let mut p = Array1::from_shape_fn(model.param_scalars(), |_| normal(&mut r) as f32 * 1e3);
        p[0] = -0.0;
        p[1] = f32::MIN_POSITIVE / 3.0;
        let path = dir.path().join(format!("{}.safetensors", model.name()));
        model.save_params(&path, p.view()).unwrap();
        let back = model.load_params(&path).unwrap();
        let bits = |a: &Array1<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&p), "{}", model.name());
    }
    // Weights of one model do not load into another.
    let e = ptc_setup().0.load_params(dir.path().join("conv.safetensors")).unwrap_err();
    assert!(matches!(e, ModelError::Checkpoint(_)), "{e:?}");
    assert!(e.to_string().contains("model `conv`"), "{e}");
    // A parameter vector of the wrong length is not written.
    let model = conv_model();
    let e =
        model.save_params(dir.path().join("x.safetensors"), Array1::zeros(3).view()).unwrap_err();
    assert!(shape_message(e).contains("holds 3 numbers"));
    assert!(!dir.path().join("x.safetensors").exists());
}

#[test]
fn classifiers_compile_with_the_executors_options() {
    // CompileOptions are the executor's own: f64 kernels are a compile option away.
    let model = conv_model();
    let opts = CompileOptions { precision: Precision::F64, ..CompileOptions::default() };
    let net = model.classifier_with(&opts).unwrap();
    let p = params(&model, 9);
    let x = images(3, 10);
    let a = net.forward(p.view(), x.view()).unwrap();
    let b = model.classifier().unwrap().forward(p.view(), x.view()).unwrap();
    let e = max_abs_diff(a.iter(), b.iter());
    assert!(e < 1e-4, "f64 vs f32 kernels: {e:e}");
}
