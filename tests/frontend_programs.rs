//! Good programs: every construct of the language compiles to the IR it should.

use symc::ir::{self, Activation, Hop, LayerKind, Padding, Schedule, ValueType};
use symc::sema::{Options, compile_with};

fn compile(text: &str) -> ir::Graph {
    match compile_with("test.sym", text, &Options { memory_bytes: 16 << 30 }) {
        Ok(g) => {
            ir::verify::verify(&g).expect("verified");
            g
        }
        Err(d) => panic!("{}", symc::diagnostics::render_plain(&d)),
    }
}

fn kinds(g: &ir::Graph) -> Vec<&'static str> {
    g.layers.iter().map(|l| ir::print::kind_name(&l.kind)).collect()
}

#[test]
fn gauge_network_with_every_lattice_construct() {
    let g = compile(
        r#"
        /* block comment */ network gauge_all {
            lattice 4x4x4x8                 // no spaces around x
            input v: fermion[2]
            symmetry gauge(SU3), translation
            a = linear(2 -> 3, hops = 2) norm_gate
            linear(3 -> 3, paths = [+x, -t, +x+y, +2z])
            residual {
                linear(3 -> 3, long)
                identity
            }
            linear(3 -> 1)                  // identity path only (gpt `linear`)
            linear(1 -> 9)
            transport(hops = 1)
            linear(9 -> 2, hops = 1, local)
            output out: fermion
        }
        "#,
    );
    assert_eq!(
        kinds(&g),
        [
            "ptc",
            "norm_gate",
            "ptc",
            "ptc",
            "identity",
            "add",
            "ptc",
            "ptc",
            "transport",
            "ptc_local"
        ]
    );
    assert_eq!(g.layers[0].name, "a");
    let LayerKind::Ptc { paths, .. } = &g.layers[0].kind else { panic!() };
    assert_eq!(paths.len(), 1 + 8 + 56, "hops = 2: identity, 8 one-hop, 8*7 two-hop paths");
    let LayerKind::Ptc { paths, .. } = &g.layers[2].kind else { panic!() };
    let f = |mu, forward| Hop { mu, forward };
    assert_eq!(
        paths,
        &vec![
            vec![],
            vec![f(0, true)],
            vec![f(3, false)],
            vec![f(0, true), f(1, true)],
            vec![f(2, true), f(2, true)]
        ]
    );
    let LayerKind::Ptc { paths, .. } = &g.layers[3].kind else { panic!() };
    // long on 4x4x4x8: +-1, +-2 in x, y, z; +-1, +-2, +-4 in t.
    assert_eq!(paths.len(), 1 + 2 * (2 + 2 + 2 + 3));
    // The residual adds the block's input back.
    assert_eq!(g.layers[5].inputs, vec![g.layers[4].output, g.layers[2].output]);
    let LayerKind::Ptc { paths, .. } = &g.layers[6].kind else { panic!() };
    assert_eq!(paths.len(), 1);
    // Local PTC: one spin matrix per site.
    let p = g.param(g.layers[9].params[0]);
    assert_eq!(p.shape, [2, 9, 9, 4 * 4 * 4 * 8, 4, 4]);
    assert_eq!(
        g.value(g.output),
        &ValueType::Fermion { features: 2, lattice: ir::Lattice { dims: [4, 4, 4, 8] } }
    );
}

#[test]
fn gauge_without_translation_makes_local_weights() {
    let g = compile(
        "network l { lattice 2x2x2x2 input v: fermion symmetry gauge(SU3) linear(1 -> 1, hops = 1) output fermion }",
    );
    assert_eq!(kinds(&g), ["ptc_local"]);
    assert_eq!(g.param_count(), 9 * 16 * 16);
}

#[test]
fn image_network_with_padding_flatten_and_dense_head() {
    let g = compile(
        r#"
        network cnn {
            input image: real[3, 32, 32]
            symmetry translation(axes = 1..2)
            c1 = linear(3 -> 8, window = [3, 5], padding = same, bias = false) tanh
            linear(8 -> 8, window = 2) sigmoid
            residual { linear(8 -> 8, window = 3, padding = same) relu }
            flatten
            linear(7688 -> 10)
            output p: log_softmax
        }
        "#,
    );
    assert_eq!(
        kinds(&g),
        [
            "conv",
            "tanh",
            "conv",
            "sigmoid",
            "conv",
            "relu",
            "add",
            "flatten",
            "dense",
            "log_softmax"
        ]
    );
    let LayerKind::Conv { window, padding, bias, out_spatial, .. } = &g.layers[0].kind else {
        panic!()
    };
    assert_eq!(
        (window.as_slice(), *padding, *bias, out_spatial.as_slice()),
        (&[3, 5][..], Padding::Same, false, &[32, 32][..])
    );
    assert_eq!(g.layers[0].params.len(), 1);
    assert_eq!(g.value(g.layers[2].output), &ValueType::Real { shape: vec![8, 31, 31] });
    assert_eq!(8 * 31 * 31, 7688);
    assert_eq!(g.layers[1].kind, LayerKind::Activation(Activation::Tanh));
    assert!(g.train.is_none());
    let g = compile(
        r#"
        network small { input image: real[1, 28, 28] symmetry translation
            linear(1 -> 10, window = 28) output p: log_softmax }
        train small {
            data mnist("/abs/mnist")  optimizer sgd(lr = 0.1, momentum = 0.9)  batch 32
            epochs 2  schedule step(every = 1, gamma = 0.5)  validation 0.1  seed 42
        }"#,
    );
    let t = g.train.as_ref().expect("train");
    assert_eq!(t.schedule, Schedule::Step { every: 1, gamma: 0.5 });
    assert_eq!((t.batch, t.validation, t.seed), (32, 0.1, 42));
    assert_eq!(t.optimizer, ir::OptimizerSpec::Sgd { lr: 0.1, momentum: 0.9 });
    assert_eq!(t.data, Some(ir::DataSource::Mnist { dir: "/abs/mnist".into() }));
}

#[test]
fn flat_input_is_dense_under_any_symmetry_and_numbers_parse() {
    let g = compile(
        "network mlp { input x: real[784] linear(784 -> 100) relu linear(100 -> 10) output y: log_softmax }
         train mlp { data mnist(\"m\") optimizer adam(lr = 3e-4, beta1 = 0.85, eps = 1E-7) schedule cosine(floor = 1e-2) }",
    );
    assert_eq!(kinds(&g), ["dense", "relu", "dense", "log_softmax"]);
    assert_eq!(g.param_count(), 784 * 100 + 100 + 100 * 10 + 10);
    let t = g.train.as_ref().expect("train");
    assert_eq!(
        t.optimizer,
        ir::OptimizerSpec::Adam { lr: 3e-4, beta1: 0.85, beta2: 0.999, eps: 1e-7 }
    );
    assert_eq!(t.schedule, Schedule::Cosine { floor: 0.01 });
    assert_eq!(t.length, ir::TrainLength::Epochs(15), "default length");
}

#[test]
fn preconditioner_train_block_variants() {
    let g = compile(
        r#"network p { lattice 4 x 4 x 4 x 4 input v: fermion symmetry gauge(SU3), translation
             linear(1 -> 1, hops = 1) output fermion }
           train p { gauge load("conf.lime") operator wilson_clover(mass = -0.6, boundary = antiperiodic)
             loss filtered(iterations = 10) steps 50 batch 4
             evaluate fgmres(tol = 1e-6, restart = 20, rhs = 10, max_iterations = 500) }"#,
    );
    let t = g.train.as_ref().expect("train");
    assert_eq!(t.gauge, Some(ir::GaugeSource::Load { path: "conf.lime".into() }));
    let op = t.operator.as_ref().expect("op");
    assert_eq!((op.mass, op.csw, op.boundary), (-0.6, 1.0, [0.0, 0.0, 0.0, 1.0]));
    assert_eq!(t.loss, ir::LossSpec::Filtered { iterations: 10 });
    assert_eq!(
        t.evaluate,
        Some(ir::EvalSpec::Fgmres { tol: 1e-6, restart: 20, rhs: 10, max_iterations: 500 })
    );
    let g = compile(
        "network p { lattice 4x4x4x4 input v: fermion symmetry gauge(SU3), translation linear(1 -> 1) output fermion }
         train p { gauge unit operator wilson_clover(mass = 0.1, csw = 0, boundary = [0, 0, 0, 1]) }",
    );
    let t = g.train.as_ref().expect("train");
    assert_eq!(t.gauge, Some(ir::GaugeSource::Unit));
    assert_eq!(t.loss, ir::LossSpec::Preconditioner, "default loss of a lattice network");
}

#[test]
fn docs_examples_compile() {
    let doc = include_str!("../docs/language.md");
    let mut n = 0;
    for block in doc.split("```sym").skip(1) {
        let code = block.split("```").next().unwrap_or("");
        compile(code);
        n += 1;
    }
    assert!(n >= 2, "docs/language.md has {n} sym examples");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn count(text: &str) -> Result<(u64, u64, Vec<String>), Vec<&'static str>> {
        compile_with("p.sym", text, &Options { memory_bytes: 1 << 40 })
            .map(|g| {
                let t = ir::cost::total(&g);
                let shapes =
                    g.layers.iter().map(|l| ir::print::value_type(g.value(l.output))).collect();
                (t.params, t.dense_equivalent_params, shapes)
            })
            .map_err(|d| d.codes())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

        /// A random stack of convolutions and its `symmetry none` twin: same shapes, and the
        /// conv net's dense-equivalent count is exactly the dense twin's parameter count; the
        /// conv count follows the closed formula; too-large windows fail in both.
        #[test]
        fn conv_and_dense_twins_agree(
            h in 1usize..24, w in 1usize..24,
            layers in proptest::collection::vec((1usize..6, 1usize..8, any::<bool>()), 1..4),
        ) {
            let mut body = String::new();
            let mut cin = 1;
            let (mut hh, mut ww) = (h as i64, w as i64);
            let mut expect: u64 = 0;
            let mut fits = true;
            for (k, cout, bias) in &layers {
                body += &format!("linear({cin} -> {cout}, window = {k}, bias = {bias})\n");
                expect += (cin * cout * k * k + if *bias { *cout } else { 0 }) as u64;
                hh -= *k as i64 - 1;
                ww -= *k as i64 - 1;
                fits &= hh >= 1 && ww >= 1;
                cin = *cout;
            }
            let net = |sym: &str| format!(
                "network t {{ input x: real[1, {h}, {w}] symmetry {sym}\n{body} output y: real }}"
            );
            let conv = count(&net("translation"));
            let dense = count(&net("none"));
            if fits {
                let (cp, ceq, cshapes) = conv.expect("conv compiles");
                let (dp, deq, dshapes) = dense.expect("dense compiles");
                prop_assert_eq!(cp, expect);
                prop_assert_eq!(ceq, dp);
                prop_assert_eq!(deq, dp);
                prop_assert_eq!(cshapes, dshapes);
            } else {
                prop_assert!(conv.unwrap_err().contains(&"symc::sema::window_too_large"));
                prop_assert!(dense.unwrap_err().contains(&"symc::sema::window_too_large"));
            }
        }

        /// PTC counts: 16 complex weights per (out, in, path), with 1 + 8(7^k - 1)/6 paths for
        /// `hops = k`; the gauge net's dense equivalent is (12 V)^2 n_in n_out per layer, which
        /// is the parameter count of its `symmetry none` twin.
        #[test]
        fn ptc_counts_and_dense_twin(
            feats in proptest::collection::vec(1usize..4, 2..5),
            hops in proptest::collection::vec(0usize..3, 4),
        ) {
            let v = 4 * 4 * 4 * 4;
            let (mut gauge, mut none, mut expect) = (String::new(), String::new(), 0u64);
            let mut dense_expect = 0u64;
            for (i, pair) in feats.windows(2).enumerate() {
                let (a, b, k) = (pair[0], pair[1], hops[i]);
                gauge += &format!("linear({a} -> {b}, hops = {k})\n");
                none += &format!("linear({a} -> {b})\n");
                let paths = 1 + 8 * (7usize.pow(k as u32) - 1) / 6;
                expect += (16 * paths * a * b) as u64;
                dense_expect += (12 * v * a * 12 * v * b) as u64;
            }
            let (f0, fl) = (feats[0], feats[feats.len() - 1]);
            let net = |sym: &str, body: &str| format!(
                "network p {{ lattice 4 x 4 x 4 x 4 input v: fermion[{f0}] symmetry {sym}\n{body} output fermion }}"
            );
            let (gp, geq, gshapes) = count(&net("gauge(SU3), translation", &gauge)).expect("gauge");
            let (np, _, nshapes) = count(&net("none", &none)).expect("none");
            prop_assert_eq!(gp, expect);
            prop_assert_eq!(geq, dense_expect);
            prop_assert_eq!(np, dense_expect);
            prop_assert_eq!(gshapes, nshapes);
            prop_assert!(fl >= 1);
        }
    }
}
