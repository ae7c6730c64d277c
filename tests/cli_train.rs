//! End to end through the binary: `symc train` on a small MNIST subset (JIT and reference
//! back ends agree), `--resume`, refusing to overwrite a run, damaged data rejected with exit 2
//! and a message naming the file, `symc eval` (JSON and text), `symc plot`, and a diverging run
//! stopped with exit 1 and finite weights kept.

use assert_cmd::Command;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn symc() -> Command {
    let mut c = Command::cargo_bin("symc").unwrap();
    c.current_dir(root());
    c
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut out).unwrap();
    out
}

/// The first `n` samples of an MNIST IDX file, with the count in the header rewritten.
fn head(bytes: &[u8], n: usize, sample_bytes: usize, header: usize) -> Vec<u8> {
    let mut v = bytes[..header + n * sample_bytes].to_vec();
    v[4..8].copy_from_slice(&(n as u32).to_be_bytes());
    v
}

/// A raw (uncompressed) MNIST folder with `n_train` training and `n_test` test samples.
fn subset(dir: &Path, n_train: usize, n_test: usize) {
    let src = root().join("models/data/mnist");
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let img = gunzip(&src.join(format!("{prefix}-images-idx3-ubyte.gz")));
        let lab = gunzip(&src.join(format!("{prefix}-labels-idx1-ubyte.gz")));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), head(&img, n, 784, 16))
            .unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), head(&lab, n, 1, 8))
            .unwrap();
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn train_resume_eval_plot_on_a_subset() {
    let data = tempfile::tempdir().unwrap();
    subset(data.path(), 800, 300);
    let runs = tempfile::tempdir().unwrap();
    let run = runs.path().join("conv");
    let d = data.path().to_str().unwrap();
    let r = run.to_str().unwrap();
    symc()
        .args([
            "train",
            "models/digits_conv.sym",
            "--epochs",
            "1",
            "--data",
            d,
            "--out",
            r,
            "--batch",
            "32",
        ])
        .assert()
        .success();
    let s = json(&run.join("summary.json"));
    assert_eq!(s["epochs"], 1);
    assert_eq!(s["params"], 21030);
    assert_eq!(s["backend"], "jit");
    assert_eq!(s["train_samples"], 800);
    assert_eq!(s["epoch_seconds"].as_array().unwrap().len(), 1);
    assert!(s["final_train_loss"].as_f64().unwrap() < 2.3, "{s}");
    assert!(!s["strategies"].as_array().unwrap().is_empty());
    for f in ["train.csv", "checkpoint.safetensors", "model.sym", "loss.svg", "loss.png"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }

    // The same folder again without --resume is refused.
    let out = symc()
        .args(["train", "models/digits_conv.sym", "--epochs", "1", "--data", d, "--out", r])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a training run"));

    // Resume to 3 epochs (batch and seed come from the run; the model from its copy).
    symc().args(["train", "--resume", r, "--epochs", "3"]).assert().success();
    let s = json(&run.join("summary.json"));
    assert_eq!(s["epochs"], 3);
    assert_eq!(s["batch"], 32);
    let csv = std::fs::read_to_string(run.join("train.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let acc = s["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.5, "test accuracy after 3 small epochs {acc}");

    // eval reproduces the logged test accuracy from the checkpoint.
    let out = symc().args(["eval", r, "--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["samples"], 300);
    assert!((e["test_accuracy"].as_f64().unwrap() - acc).abs() < 1e-9);
    let conf = e["confusion"].as_array().unwrap();
    assert_eq!(conf.len(), 10);
    let total: u64 =
        conf.iter().flat_map(|r| r.as_array().unwrap()).map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, 300);
    let diag: u64 = (0..10).map(|i| conf[i][i].as_u64().unwrap()).sum();
    assert!((diag as f64 / 300.0 - acc).abs() < 1e-9);
    let text = symc().args(["eval", r]).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("confusion matrix"));

    // plot two runs into one chart
    let other = runs.path().join("conv2");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(run.join("train.csv"), other.join("train.csv")).unwrap();
    let stem = runs.path().join("fig");
    symc()
        .args(["plot", r, other.to_str().unwrap(), "-o", stem.to_str().unwrap()])
        .assert()
        .success();
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(svg.contains("conv train") && svg.contains("conv2 test"), "legend missing");
    assert!(std::fs::metadata(stem.with_extension("png")).unwrap().len() > 10_000);
}

#[test]
fn jit_and_reference_backends_train_alike() {
    // Same seed, data and order: three Adam steps through the JIT kernels and through the
    // naive reference evaluator must give the same losses up to f32 rounding.
    let data = tempfile::tempdir().unwrap();
    subset(data.path(), 48, 16); // the reference evaluator is slow: keep this tiny
    let runs = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let mut losses = Vec::new();
    for (name, extra) in [("jit", None), ("ref", Some("--reference"))] {
        let out = runs.path().join(name);
        let mut c = symc();
        c.args(["train", "models/digits_conv.sym", "--epochs", "1", "--batch", "16", "--data", d]);
        c.args(["--out", out.to_str().unwrap()]);
        if let Some(x) = extra {
            c.arg(x);
        }
        c.assert().success();
        let s = json(&out.join("summary.json"));
        losses.push((s["final_train_loss"].as_f64().unwrap(), s["test_loss"].as_f64().unwrap()));
    }
    let (a, b) = (losses[0], losses[1]);
    assert!(
        (a.0 - b.0).abs() < 1e-3 * a.0.abs().max(1.0),
        "train loss jit {} vs reference {}",
        a.0,
        b.0
    );
    assert!(
        (a.1 - b.1).abs() < 1e-3 * a.1.abs().max(1.0),
        "test loss jit {} vs reference {}",
        a.1,
        b.1
    );
}

#[test]
fn damaged_data_is_rejected_cleanly() {
    // As in the acceptance check: a truncated raw test-image file next to good files.
    let data = tempfile::tempdir().unwrap();
    subset(data.path(), 100, 100);
    let bad = data.path().join("t10k-images-idx3-ubyte");
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..50_000]).unwrap();
    let runs = tempfile::tempdir().unwrap();
    let out = symc()
        .args([
            "train",
            "models/digits_conv.sym",
            "--epochs",
            "1",
            "--data",
            data.path().to_str().unwrap(),
        ])
        .args(["--out", runs.path().join("bad").to_str().unwrap()])
        .output()
        .unwrap();
    // miette wraps long lines: compare with the frame characters and line breaks removed.
    let err = String::from_utf8_lossy(&out.stderr).replace('│', " ");
    let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("t10k-images-idx3-ubyte") && err.contains("expected 78416 bytes"),
        "{err}"
    );
    assert!(err.contains("found 50000"), "{err}");

    // A folder without MNIST files.
    let empty = tempfile::tempdir().unwrap();
    let out = symc()
        .args(["train", "models/digits_conv.sym", "--data", empty.path().to_str().unwrap()])
        .args(["--out", runs.path().join("none").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MNIST file not found"));
}

#[test]
fn usage_errors() {
    let out = symc().args(["train"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model given"));
    let out = symc().args(["train", "models/does_not_exist.sym"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = symc().args(["eval", "/nonexistent/run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("summary.json"));
    let out = symc().args(["plot", "/nonexistent/run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// miette wraps long lines: stderr with the frame characters and line breaks removed.
fn flat(stderr: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr).replace('│', " ");
    err.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Issue 11 (item 7): a classifier run whose loss explodes (Adam with lr = 1e4 once ended with
/// exit 0 at a loss of 7.9e14) stops at the step where the loss passes 1e4 times the first
/// batch's, with exit 1, a message naming epoch, step and loss and suggesting a smaller learning
/// rate, `"status": "diverged"` in the summary, and finite weights on disk: diverging in the
/// first epoch, the checkpoint is the start state.
#[test]
fn issue11_a_diverging_classifier_run_stops_and_keeps_finite_weights() {
    let data = tempfile::tempdir().unwrap();
    subset(data.path(), 256, 64);
    let runs = tempfile::tempdir().unwrap();
    let model = runs.path().join("digits_lr1e4.sym");
    let text = std::fs::read_to_string(root().join("models/digits_conv.sym")).unwrap();
    assert!(text.contains("adam(lr = 1e-3)"), "the model's optimizer line changed");
    std::fs::write(&model, text.replace("adam(lr = 1e-3)", "adam(lr = 1e4)")).unwrap();
    let run = runs.path().join("run");
    let out = symc()
        .arg("train")
        .arg(&model)
        .args(["--epochs", "1", "--batch", "32", "--data", data.path().to_str().unwrap()])
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    let err = flat(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("training diverged in epoch 1, step 2: the mean batch loss"), "{err}");
    assert!(err.contains("is more than 1e4 times the first step's"), "{err}");
    assert!(err.contains("lower the learning rate"), "{err}");
    assert!(out.stdout.is_empty(), "no result on stdout: {}", String::from_utf8_lossy(&out.stdout));

    let s = json(&run.join("summary.json"));
    assert_eq!(s["status"], "diverged");
    assert_eq!(s["epochs"], 0);
    assert!(s["message"].as_str().unwrap().contains("epoch 1, step 2"), "{s}");

    let graph = symc::sema::load_model(&run.join("model.sym")).unwrap();
    let ck = symc::train::checkpoint::load(&run.join("checkpoint.safetensors"), &graph).unwrap();
    assert_eq!(ck.meta["epoch"], "0");
    assert!(ck.params.iter().all(|p| p.is_finite()));
    let seed = graph.train.as_ref().unwrap().seed;
    assert_eq!(ck.params, symc::runtime::init::init_params(&graph, seed), "not the start state");
}
