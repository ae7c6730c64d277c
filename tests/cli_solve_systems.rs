//! `symc solve --evenodd` and `symc solve --precond mg` end to end on the 8⁴ DDalphaAMG
//! configuration: the JSON says which system and preconditioner ran, every solver and
//! precision reaches the full-system tolerance, the reduced system needs fewer iterations than
//! the full one (the Schur complement is better conditioned), the multigrid far fewer, and the
//! combinations that cannot work are clean errors.

mod common;

use serde_json::Value;
use std::path::Path;

fn solve(gauge: &Path, extra: &[&str]) -> (std::process::Output, Option<Value>) {
    let out = assert_cmd::Command::cargo_bin("symc")
        .expect("binary")
        .args(["solve", "--gauge"])
        .arg(gauge)
        .args(["--mass", "-0.5", "--csw", "1.0", "--rhs", "1", "--format", "json"])
        .args(extra)
        .output()
        .expect("runs");
    let json = serde_json::from_slice(&out.stdout).ok();
    (out, json)
}

fn ok(gauge: &Path, extra: &[&str]) -> Value {
    let (out, json) = solve(gauge, extra);
    assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
    json.expect("JSON on stdout")
}

#[test]
fn evenodd_and_multigrid_from_the_cli() {
    let Some(data) = common::shared_data() else {
        eprintln!("SKIPPED: cli_solve_systems: ../shared/data (or $SYMC_DATA) not found");
        return;
    };
    let gauge = data.join("gauge/ddalphaamg/8x8x8x8b6.0000id3n1");

    for solver in ["gmres", "fgmres", "bicgstab", "cgne"] {
        let full = ok(&gauge, &["--solver", solver]);
        let eo = ok(&gauge, &["--solver", solver, "--evenodd"]);
        assert_eq!(full["system"], "full");
        assert_eq!(eo["system"], "evenodd");
        assert!(eo["schur"].is_string());
        assert!(eo["true_residual"].as_f64().unwrap() <= 1e-8, "{solver}: {eo}");
        let (fi, ei) = (full["iterations"].as_f64().unwrap(), eo["iterations"].as_f64().unwrap());
        assert!(ei < fi, "{solver}: even-odd {ei} iterations, full {fi}");
    }
    // Every precision: f64 reaches 1e-8; an f32 operator in the f64 solver about 1e-6.
    let eo = ok(&gauge, &["--evenodd", "--precision", "f64"]);
    assert_eq!(eo["precision"], "f64");
    assert!(eo["true_residual"].as_f64().unwrap() <= 1e-8);
    let eo = ok(&gauge, &["--evenodd", "--precision", "f32", "--tol", "1e-5"]);
    assert_eq!(eo["precision"], "f32");
    assert!(eo["true_residual"].as_f64().unwrap() <= 1e-5);

    // The classical multigrid: 4⁴ blocks on 8⁴ (16 coarse sites).
    let full = ok(&gauge, &[]);
    let mg = ok(&gauge, &["--precond", "mg", "--mg-blocks", "4x4x4x4", "--mg-basis", "12"]);
    assert_eq!(mg["preconditioner"], "multigrid");
    assert!(mg["true_residual"].as_f64().unwrap() <= 1e-8);
    assert!(mg["multigrid"]["setup_seconds"].as_f64().unwrap() > 0.0);
    assert!(mg["multigrid"]["cycles"]["cycles"].as_u64().unwrap() > 0);
    let (fi, mi) = (full["iterations"].as_f64().unwrap(), mg["iterations"].as_f64().unwrap());
    assert!(5.0 * mi < fi, "multigrid {mi} iterations, unpreconditioned {fi}");

    // What cannot work is a diagnostic with a help line and the documented exit code.
    let (out, _) = solve(&gauge, &["--precond", "mg", "--evenodd"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("solves the reduced system"), "{err}");
    let (out, _) = solve(&gauge, &["--precond", "mg", "--mg-blocks", "3x3x3x3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // A lattice without an even-odd SIMD layout (no extent a multiple of 8) is an error.
    let small = data.join("gauge/ddalphaamg/4x4x4x4b6.0000id3n1");
    let (out, _) = solve(&small, &["--evenodd"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (out, _) = solve(&gauge, &["--precond", "mg", "--solver", "bicgstab"]);
    assert_eq!(out.status.code(), Some(2));
}
