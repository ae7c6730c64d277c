//! The models in `models/` through the whole front end: the parameter counts `symc inspect`
//! prints are pinned against the published numbers (poster: 6,454,860 dense and 21,030
//! convolutional; Lehner–Wettig: 144·n_in·n_out complex weights per one-hop PTC layer;
//! (12·V)² complex weights per dense layer on a fermion field), and the IR is checked layer by
//! layer.

use std::path::Path;
use std::process::Command;
use symc::ir::{
    self, EvalSpec, GaugeSource, LayerKind, LossSpec, OptimizerSpec, TrainLength, ValueType,
};

fn symc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_symc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run symc")
}

fn inspect_json(model: &str) -> serde_json::Value {
    let out = symc(&["inspect", model, "--format", "json"]);
    assert!(out.status.success(), "{model}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

fn load(model: &str) -> ir::Graph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(model);
    match symc::sema::load_model(&path) {
        Ok(g) => g,
        Err(e) => panic!("{model}: {}", symc::diagnostics::render_plain(&e)),
    }
}

/// (model, total parameters, parameters per weighted layer)
const COUNTS: &[(&str, u64, &[u64])] = &[
    (
        "models/digits_dense.sym",
        6_454_860,
        &[784 * 3610 + 3610, 3610 * 1000 + 1000, 1000 * 10 + 10],
    ),
    ("models/digits_conv.sym", 21_030, &[1000 + 10, 10_000 + 10, 10_000 + 10]),
    ("models/ptc_smoother.sym", 144 * (2 + 4 + 4 + 2), &[144 * 2, 144 * 4, 144 * 4, 144 * 2]),
    ("models/ptc_precond.sym", 144, &[144]),
    ("models/ptc_1h1l.sym", 144, &[144]),
    ("models/ptc_long.sym", 432, &[432]),
    ("models/ptc_precond_4x4.sym", 288, &[144, 144]),
    ("models/dense_precond.sym", 2 * 3072 * 3072, &[3072 * 3072, 3072 * 3072]),
];

#[test]
fn inspect_json_pins_parameter_counts() {
    for (model, total, per_layer) in COUNTS {
        let j = inspect_json(model);
        assert_eq!(j["total_params"].as_u64(), Some(*total), "{model}");
        let layers = j["layers"].as_array().expect("layers");
        let weighted: Vec<u64> = layers
            .iter()
            .map(|l| l["params"].as_u64().expect("params"))
            .filter(|p| *p > 0)
            .collect();
        assert_eq!(&weighted, per_layer, "{model}");
        for l in layers {
            for key in ["kind", "params", "dense_equivalent_params", "flops"] {
                assert!(!l[key].is_null(), "{model}: layer without {key}");
            }
        }
        let sum: u64 = layers.iter().map(|l| l["params"].as_u64().unwrap_or(0)).sum();
        assert_eq!(sum, *total);
    }
}

#[test]
fn dense_and_conv_digits_differ_only_in_symmetry() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let code = |f: &str| -> Vec<String> {
        std::fs::read_to_string(root.join(f))
            .expect("model")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| l.split("//").next().unwrap_or("").trim_end().to_string())
            .collect()
    };
    let (dense, conv) = (code("models/digits_dense.sym"), code("models/digits_conv.sym"));
    let diff: Vec<_> = dense.iter().zip(&conv).filter(|(a, b)| a != b).collect();
    assert_eq!(dense.len(), conv.len());
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert!(diff[0].0.contains("symmetry none") && diff[0].1.contains("symmetry translation"));

    // The conv net's dense equivalent is exactly the dense net (same activation shapes).
    let (d, c) = (inspect_json("models/digits_dense.sym"), inspect_json("models/digits_conv.sym"));
    assert_eq!(c["total_dense_equivalent_params"], d["total_params"]);
    assert_eq!(d["total_dense_equivalent_params"], d["total_params"]);
    let shapes = |j: &serde_json::Value| -> Vec<String> {
        j["layers"].as_array().unwrap().iter().map(|l| l["output"].to_string()).collect()
    };
    assert_eq!(shapes(&d), shapes(&c));
}

#[test]
fn digits_layers_are_dense_or_conv_with_poster_shapes() {
    let dense = load("models/digits_dense.sym");
    let feats: Vec<(usize, usize)> = dense
        .layers
        .iter()
        .filter_map(|l| match l.kind {
            LayerKind::Dense { in_features, out_features, bias: true, complex: false } => {
                Some((in_features, out_features))
            }
            _ => None,
        })
        .collect();
    assert_eq!(feats, [(784, 3610), (3610, 1000), (1000, 10)]);

    let conv = load("models/digits_conv.sym");
    let convs: Vec<_> = conv
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            LayerKind::Conv {
                in_channels,
                out_channels,
                window,
                in_spatial,
                out_spatial,
                bias: true,
                ..
            } => Some((
                *in_channels,
                *out_channels,
                window.clone(),
                in_spatial.clone(),
                out_spatial.clone(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        convs,
        [
            (1, 10, vec![10, 10], vec![28, 28], vec![19, 19]),
            (10, 10, vec![10, 10], vec![19, 19], vec![10, 10]),
            (10, 10, vec![10, 10], vec![10, 10], vec![1, 1]),
        ]
    );
    // Conv weight [out, in, kh, kw] then bias [out], back to back.
    assert_eq!(conv.params[0].shape, [10, 1, 10, 10]);
    assert_eq!(conv.params[1].shape, [10]);
    assert_eq!(conv.params[1].offset, 1000);
    assert_eq!(conv.param_scalars(), 21_030);
    assert_eq!(conv.layers.last().map(|l| &l.kind), Some(&LayerKind::LogSoftmax));
    assert_eq!(conv.value(conv.output), &ValueType::Real { shape: vec![10] });
    ir::verify::verify(&conv).expect("verified");
    ir::verify::verify(&dense).expect("verified");

    let t = conv.train.as_ref().expect("train block");
    assert_eq!(t.loss, LossSpec::Nll);
    assert_eq!(t.optimizer, OptimizerSpec::Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
    assert_eq!((t.batch, &t.length), (64, &TrainLength::Epochs(15)));
    assert_eq!(t.evaluate, Some(EvalSpec::Accuracy));
    // load_model resolves the data folder against the model file's directory.
    let Some(ir::DataSource::Mnist { dir }) = &t.data else { panic!("no data") };
    assert!(Path::new(dir).ends_with("models/data/mnist"), "{dir}");
}

#[test]
fn ptc_smootheritioner_layers_and_train_block() {
    let g = load("models/ptc_smoother.sym");
    assert_eq!(g.symmetry, ir::Symmetry::GaugeSu3);
    assert_eq!(g.lattice, Some(ir::Lattice { dims: [8, 8, 8, 16] }));
    let io: Vec<(usize, usize)> = g
        .layers
        .iter()
        .map(|l| match &l.kind {
            LayerKind::Ptc { n_in, n_out, paths, local: false } => {
                assert_eq!(paths.len(), 9);
                assert!(paths[0].is_empty(), "path 0 is the identity");
                assert!(paths[1..].iter().all(|p| p.len() == 1));
                (*n_in, *n_out)
            }
            k => panic!("unexpected {k:?}"),
        })
        .collect();
    assert_eq!(io, [(1, 2), (2, 2), (2, 2), (2, 1)]);
    for (l, (ni, no)) in g.layers.iter().zip(&io) {
        let p = g.param(l.params[0]);
        assert_eq!(p.shape, [*no, *ni, 9, 4, 4]);
        assert!(p.complex);
    }
    assert_eq!(g.param_scalars(), 2 * 1728);
    let t = g.train.as_ref().expect("train");
    assert_eq!(t.gauge, Some(GaugeSource::Generate { beta: 6.0, seed: 7, sweeps: 300 }));
    let op = t.operator.as_ref().expect("operator");
    assert_eq!((op.mass, op.csw, op.boundary), (-0.55, 1.0, [0.0; 4]));
    assert_eq!(t.loss, LossSpec::Preconditioner);
    assert_eq!(t.length, TrainLength::Steps(200));
    assert_eq!(
        t.evaluate,
        Some(EvalSpec::Fgmres { tol: 1e-8, restart: 30, rhs: 2, max_iterations: 10_000 })
    );
    assert!(matches!(t.optimizer, OptimizerSpec::Adam { lr, .. } if lr == 1e-2));
}

#[test]
fn dense_preconditioner_is_complex_dense_over_all_sites() {
    let g = load("models/dense_precond.sym");
    for l in &g.layers {
        assert_eq!(
            l.kind,
            LayerKind::Dense { in_features: 3072, out_features: 3072, bias: false, complex: true }
        );
    }
    let j = inspect_json("models/ptc_precond_4x4.sym");
    // The gauge twin's dense equivalent is the dense model.
    assert_eq!(j["total_dense_equivalent_params"].as_u64(), Some(2 * 3072 * 3072));
}

#[test]
fn check_accepts_every_model_and_reports_exit_codes() {
    let models: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
            .expect("models")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "sym"))
            .map(|p| p.display().to_string())
            .collect();
    assert!(models.len() >= 6);
    let mut args = vec!["check"];
    args.extend(models.iter().map(String::as_str));
    let out = symc(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("ok")).count(),
        models.len()
    );

    // A syntax error: exit 1 and a file:line:column.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("broken.sym");
    std::fs::write(&bad, "network broken {\n  input x: real[4\n").expect("write");
    let out = symc(&["check", bad.to_str().expect("utf8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.sym:2:16"), "{err}");
    assert!(err.contains("symc::syntax::unclosed_bracket"), "{err}");
    assert!(!err.contains("panicked"));

    // A missing file: exit 2. A good and a bad file together: exit 1, both reported.
    let out = symc(&["check", "no/such/file.sym"]);
    assert_eq!(out.status.code(), Some(2));
    let out = symc(&["check", "models/ptc_precond.sym", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok   models/ptc_precond.sym"));
    // Usage errors exit 2 (clap).
    let out = symc(&["inspect"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn inspect_table_shows_kinds_counts_and_totals() {
    let out = symc(&["inspect", "models/digits_conv.sym"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("conv"), "{text}");
    assert!(text.contains("21,030"), "{text}");
    assert!(text.contains("6,454,860"), "{text}");
    let out = symc(&["inspect", "models/ptc_smoother.sym"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ptc") && text.contains("1,728"), "{text}");
}

#[test]
fn ir_text_of_every_model() {
    for model in [
        "models/digits_conv.sym",
        "models/digits_dense.sym",
        "models/ptc_smoother.sym",
        "models/ptc_precond.sym",
        "models/ptc_1h1l.sym",
        "models/ptc_precond_4x4.sym",
        "models/dense_precond.sym",
    ] {
        let out = symc(&["inspect", model, "--ir"]);
        assert!(out.status.success());
        let text =
            String::from_utf8_lossy(&out.stdout).replace(env!("CARGO_MANIFEST_DIR"), "$ROOT");
        let name = model.trim_start_matches("models/").trim_end_matches(".sym").to_string();
        insta::assert_snapshot!(format!("ir_{name}"), text);
    }
}
