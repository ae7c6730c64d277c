//! A multigrid network end to end through the CLI on a small generated lattice: `symc train`
//! runs the set-up once (reported in `summary.json`, basis cached in the run folder) and the
//! trained network beats the unpreconditioned solve; `symc solve --precond RUN_DIR` at another
//! mass redoes the set-up for that operator (reported as `setup_seconds`), leaves the run
//! folder's basis alone, and converges; `symc scan` writes its table and plot.

use std::path::Path;
use std::process::Command;

fn symc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_symc")).args(args).output().expect("run symc")
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn train_solve_and_scan_a_multigrid_network() {
    let tmp = tempfile::tempdir().unwrap();
    let gauge = tmp.path().join("g.nersc");
    let g = gauge.to_str().unwrap();
    let out = symc(&[
        "gauge", "generate", "--dims", "4x4x4x8", "--beta", "6.0", "--sweeps", "20", "--seed", "3",
        "-o", g,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = tmp.path().join("mg.sym");
    std::fs::write(
        &model,
        format!(
            "network mg {{
                lattice 4 x 4 x 4 x 8
                input v: fermion
                symmetry gauge(SU3), translation
                level coarse(blocks = [2, 2, 2, 4], basis = 6) {{ solve(tol = 5e-2) }}
                linear(1 -> 1, hops = 1)
                output fermion
            }}
            train mg {{
                gauge     load(\"{g}\")
                operator  wilson_clover(mass = -0.3, csw = 1.0)
                loss      preconditioner
                optimizer adam(lr = 1e-2)
                steps     60
                evaluate  fgmres(tol = 1e-8, restart = 30, rhs = 1)
            }}"
        ),
    )
    .unwrap();
    let run = tmp.path().join("run");
    let out = symc(&["train", model.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    assert!(summary["multigrid_setup"]["total_seconds"].as_f64().unwrap() > 0.0);
    let s = &summary["solve"];
    let (u, p) = (&s["unpreconditioned"]["iterations"], &s["preconditioned"]["iterations"]);
    assert!(p.as_f64().unwrap() < u.as_f64().unwrap(), "{s}");
    let basis = run.join("basis.safetensors");
    let before = std::fs::read(&basis).expect("the basis is cached in the run folder");

    // Another mass: the set-up is redone for it; the run folder is not written.
    let r = json(&symc(&[
        "solve",
        "--gauge",
        g,
        "--mass=-0.2",
        "--csw",
        "1",
        "--solver",
        "fgmres",
        "--precond",
        run.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert!(r["true_residual"].as_f64().unwrap() < 1e-8, "{r}");
    assert!(r["setup_seconds"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(r["multigrid_setup"]["source"]["kind"], "regenerated", "{r}");
    assert_eq!(std::fs::read(&basis).unwrap(), before, "solve wrote into the run folder");
    // The training operator: the cached basis is reused.
    let r = json(&symc(&[
        "solve",
        "--gauge",
        g,
        "--mass=-0.3",
        "--csw",
        "1",
        "--solver",
        "fgmres",
        "--precond",
        run.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(r["multigrid_setup"]["source"]["kind"], "cached", "{r}");

    let scan = tmp.path().join("scan");
    let out = symc(&[
        "scan",
        "--gauge",
        g,
        "--masses=-0.2,-0.3",
        "--precond",
        "none",
        "--precond",
        run.to_str().unwrap(),
        "--rhs",
        "1",
        "--out",
        scan.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(scan.join("scan.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    for f in ["scan.md", "scan.svg", "scan.png"] {
        assert!(Path::new(&scan.join(f)).is_file(), "{f} missing");
    }
}
