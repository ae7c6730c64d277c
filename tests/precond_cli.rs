//! End to end: `symc train` on a tiny gauge model (4^4, few steps) writes a complete run folder
//! with the summary keys the acceptance script reads, and `symc solve --precond` applies the
//! trained network to another configuration and rejects a damaged weights file cleanly; a run
//! whose loss explodes stops with exit 1 and keeps finite weights.

use assert_cmd::Command;

const MODEL: &str = "network tiny {
    lattice  4 x 4 x 4 x 4
    input    v: fermion
    symmetry gauge(SU3), translation
    linear(1 -> 1, hops = 1)
    output fermion
}
train tiny {
    gauge     generate(beta = 6.0, seed = 5, sweeps = 10)
    operator  wilson_clover(mass = -0.3, csw = 1.0)
    loss      preconditioner
    optimizer adam(lr = 1e-2)
    steps     100
    evaluate  fgmres(tol = 1e-8, restart = 30, rhs = 2)
}
";

#[test]
fn train_writes_a_complete_run_folder_and_solve_uses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny.sym");
    std::fs::write(&model, MODEL).unwrap();
    let run = tmp.path().join("run");
    let out = Command::cargo_bin("symc")
        .unwrap()
        .arg("train")
        .arg(&model)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "symc train failed: {}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["status"], "completed");
    assert_eq!(s["steps"], 100);
    assert!(s["final_loss"].as_f64().unwrap() > 0.0);
    assert!(s["gauge"]["plaquette"].as_f64().unwrap() > 0.3);
    for side in ["unpreconditioned", "preconditioned"] {
        let v = &s["solve"][side];
        assert!(v["iterations"].as_f64().unwrap() >= 1.0, "{side}: {v}");
        assert!(v["seconds"].as_f64().unwrap() > 0.0);
        assert_eq!(v["per_rhs"].as_array().unwrap().len(), 2);
        assert!(v["max_true_residual"].as_f64().unwrap() <= 1e-8, "{side}: {v}");
    }
    // 100 steps of 1h1l cut the iterations on a 4^4 lattice (30 steps are too few: the
    // half-trained network makes FGMRES(30) stagnate).
    assert!(
        s["solve"]["preconditioned"]["iterations"].as_f64().unwrap()
            < s["solve"]["unpreconditioned"]["iterations"].as_f64().unwrap()
    );
    for f in ["checkpoint.safetensors", "loss.csv", "loss.svg", "loss.png", "model.sym"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }

    // Transfer: another configuration of another volume (4^3 x 8).
    let conf = tmp.path().join("other.nersc");
    let g = Command::cargo_bin("symc")
        .unwrap()
        .args(["gauge", "generate", "--beta", "6.0", "--dims", "4x4x4x8", "--sweeps", "5"])
        .args(["--seed", "9", "-o"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
    let solve = |precond: bool| {
        let mut c = Command::cargo_bin("symc").unwrap();
        c.args(["solve", "--mass", "-0.3", "--csw", "1", "--format", "json", "--gauge"]).arg(&conf);
        if precond {
            c.arg("--precond").arg(&run);
        }
        c.output().unwrap()
    };
    let plain = solve(false);
    let with = solve(true);
    assert!(with.status.success(), "{}", String::from_utf8_lossy(&with.stderr));
    let its = |o: &std::process::Output| -> f64 {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["iterations"].as_f64().unwrap()
    };
    assert!(its(&with) < its(&plain), "{} vs {}", its(&with), its(&plain));

    // A damaged weights file is a clean error (exit 2, a message naming the file, no panic).
    let ck = run.join("checkpoint.safetensors");
    let bytes = std::fs::read(&ck).unwrap();
    std::fs::write(&ck, &bytes[..bytes.len() - 100]).unwrap();
    let bad = solve(true);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("checkpoint.safetensors"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A `load` path is relative to the .sym file, also when the model itself is named by a
/// relative path (it was once resolved twice: `models/models/…`), and `--resume` from another
/// working directory trains on the recorded file, not on a path relative to the run folder.
#[test]
fn relative_load_paths_resolve_once_and_resume_finds_the_field() {
    use rand::SeedableRng;
    use symc::lattice::gauge::GaugeField;
    use symc::lattice::io::{GaugeFormat, WriteOptions, write_gauge};
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("models")).unwrap();
    std::fs::create_dir_all(tmp.path().join("conf")).unwrap();
    let field = GaugeField::random([4, 4, 4, 4], &mut rand_chacha::ChaCha8Rng::seed_from_u64(9));
    write_gauge(
        &tmp.path().join("conf/g.nersc"),
        &field,
        GaugeFormat::Nersc,
        &WriteOptions::default(),
    )
    .unwrap();
    let text =
        MODEL.replace("generate(beta = 6.0, seed = 5, sweeps = 10)", "load(\"../conf/g.nersc\")");
    std::fs::write(tmp.path().join("models/tiny.sym"), text).unwrap();
    let train = |cwd: &std::path::Path, args: &[&str]| {
        Command::cargo_bin("symc").unwrap().current_dir(cwd).args(args).output().unwrap()
    };
    let out = train(
        tmp.path(),
        &["train", "models/tiny.sym", "--out", "run", "--steps", "4", "--no-evaluate"],
    );
    assert!(out.status.success(), "symc train failed: {}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("run/summary.json")).unwrap(),
    )
    .unwrap();
    let recorded = s["gauge"]["file"].as_str().unwrap();
    assert!(std::path::Path::new(recorded).is_absolute(), "{recorded}");
    assert!((s["gauge"]["plaquette"].as_f64().unwrap() - field.plaquette()).abs() < 1e-12);
    // Resume from the run folder itself: `../conf/g.nersc` relative to it does not exist.
    let run = tmp.path().join("run");
    let out = train(&run, &["train", "--resume", ".", "--steps", "8", "--no-evaluate"]);
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["steps"], 8);
    assert_eq!(s["gauge"]["file"].as_str().unwrap(), recorded);
}

/// Issue 11 (item 7), for a preconditioner: with lr = 1e4 the loss of step 2 is about 1e10
/// times the first step's. The run stops there with exit 1 and a message naming the step and
/// the loss and suggesting a smaller learning rate; the summary says `diverged`; the checkpoint
/// on disk holds finite weights (the start state: no checkpoint was due yet) and can be loaded.
#[test]
fn issue11_a_diverging_preconditioner_run_stops_and_keeps_finite_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny.sym");
    assert!(MODEL.contains("adam(lr = 1e-2)"));
    std::fs::write(&model, MODEL.replace("adam(lr = 1e-2)", "adam(lr = 1e4)")).unwrap();
    let run = tmp.path().join("run");
    let out = Command::cargo_bin("symc")
        .unwrap()
        .arg("train")
        .arg(&model)
        .args(["--steps", "20", "--no-evaluate", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    // miette wraps long lines: compare with the frame characters and line breaks removed.
    let err = String::from_utf8_lossy(&out.stderr).replace('│', " ");
    let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("training diverged at step 2: the loss"), "{err}");
    assert!(err.contains("is more than 1e4 times the first step's"), "{err}");
    assert!(err.contains("the last good checkpoint (step 0) is kept"), "{err}");
    assert!(err.contains("lower the learning rate"), "{err}");

    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["status"], "diverged");
    assert_eq!(s["steps"], 0);
    assert!(s["message"].as_str().unwrap().starts_with("step 2: the loss"), "{s}");

    let graph = symc::sema::load_model(&run.join("model.sym")).unwrap();
    let ck = symc::train::checkpoint::load(&run.join("checkpoint.safetensors"), &graph).unwrap();
    assert_eq!(ck.meta["step"], "0");
    assert!(ck.params.iter().all(|p| p.is_finite()));
    let seed = graph.train.as_ref().unwrap().seed;
    assert_eq!(ck.params, symc::runtime::init::init_params(&graph, seed), "not the start state");
    // The folder still loads as a preconditioner.
    let gauge = symc::lattice::gauge::GaugeField::unit([4, 4, 4, 4]);
    assert!(symc::train::precond::load_run(&run, &gauge).is_ok());
}

/// `--init RUN` starts from a trained run: the summary records what was loaded, the first
/// loss of the warm-started run is far below a fresh run's; a run folder without a checkpoint
/// and `--init` together with `--resume` are clean usage errors (exit 2).
#[test]
fn init_warm_starts_from_a_trained_run_and_rejects_what_it_cannot_use() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny.sym");
    std::fs::write(&model, MODEL).unwrap();
    let train = |extra: &[&str], out: &str| {
        Command::cargo_bin("symc")
            .unwrap()
            .arg("train")
            .arg(&model)
            .args(["--out", out, "--no-evaluate"])
            .args(extra)
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    let first_loss = |run: &str| -> f64 {
        let csv = std::fs::read_to_string(tmp.path().join(run).join("loss.csv")).unwrap();
        csv.lines().nth(1).unwrap().split(',').nth(1).unwrap().parse().unwrap()
    };
    let out = train(&["--steps", "60"], "trained");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = train(&["--steps", "2", "--init", "trained"], "warm");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warm start from") && err.contains("loaded linear1.weight"), "{err}");
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("warm/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["warm_start"][0]["loaded"][0], "linear1.weight", "{s}");
    let out = train(&["--steps", "2"], "fresh");
    assert!(out.status.success());
    let (warm, fresh) = (first_loss("warm"), first_loss("fresh"));
    assert!(warm < 0.5 * fresh, "warm start {warm} vs fresh {fresh}");

    std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
    let out = train(&["--steps", "2", "--init", "empty"], "bad");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checkpoint.safetensors"), "{err}");
    let out = train(&["--resume", "warm", "--init", "trained"], "x");
    assert_eq!(out.status.code(), Some(2));
}
