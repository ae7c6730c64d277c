//! `symc inspect` on every model in `models/`: the kernel plan, a per-kernel opcode summary of
//! the cranelift IR and the instruction counts of the machine code are pinned by snapshots;
//! `--verify` passes on the shipped models and fails on kernels with an injected defect (a
//! perturbed gradient rule, a position-dependent indexing bug, a wrong colour rotation).

use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use symc::codegen::jit::KernelRecord;
use symc::inspect::backend::{self, Fault};
use symc::inspect::roofline::{Cpu, Machine};
use symc::inspect::views::{Style, plan_view, stats_view};

fn models() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("models/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sym"))
        .collect();
    v.sort();
    v
}

fn load(name: &str) -> symc::ir::Graph {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name);
    symc::sema::load_model(&p).expect("shipped models check")
}

/// Opcode histogram per kernel: stable across cranelift's value numbering, readable in review.
fn clif_summary(records: &[KernelRecord]) -> String {
    let mut out = String::new();
    for r in records {
        let mut ops: BTreeMap<String, usize> = BTreeMap::new();
        for line in r.clif.lines().map(|l| l.split(';').next().unwrap_or("").trim()) {
            // Value aliases (`v155 -> v509`), block headers and the signature are not operations.
            if line.contains("->") || line.ends_with(':') || line.ends_with('{') || line == "}" {
                continue;
            }
            let rhs = line.split_once(" = ").map_or(line, |(_, r)| r);
            let op = rhs.split_whitespace().next().unwrap_or("");
            if !op.starts_with(|c: char| c.is_ascii_lowercase()) {
                continue;
            }
            *ops.entry(op.to_string()).or_default() += 1;
        }
        let list: Vec<String> = ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!("{}: {}\n", r.name, list.join(", ")));
    }
    out
}

fn fixed_machine() -> Machine {
    Machine {
        cpu: Cpu { model: "snapshot".into(), cores: 2, vector_isa: vec![], llc_bytes: None },
        native_fma: true,
        ceiling_gflops_core: 64.0,
        effective_ghz: 4.0,
        bandwidth_gbs: 32.0,
        threads: 2,
    }
}

#[test]
fn kernel_views_of_every_model() {
    let native_fma = symc::codegen::jit::Jit::new().unwrap().host.native_fma;
    let mut seen = 0;
    for path in models() {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let graph = symc::sema::load_model(&path).expect("shipped models check");
        match backend::compile(&graph, true, None, 1) {
            Ok(c) => {
                seen += 1;
                insta::assert_snapshot!(
                    format!("{stem}_plan"),
                    plan_view(&c.shown_plans(), Style::default())
                );
                if !native_fma {
                    eprintln!(
                        "SKIPPED: CLIF/asm snapshots of {stem} assume a host with native FMA"
                    );
                    continue;
                }
                let (plans, records) = (c.shown_plans(), c.shown_records());
                insta::assert_snapshot!(format!("{stem}_clif"), clif_summary(&records));
                let stats = stats_view(&plans, &records, &fixed_machine(), Style::default());
                insta::assert_snapshot!(format!("{stem}_stats"), stats);
                let asm = symc::inspect::views::asm_view(&records, Style::default());
                assert!(asm.contains("vfmadd"), "{stem}: no vector FMA in the machine code");
            }
            // A model no JIT back end handles yet must say so, not crash.
            Err(e) => insta::assert_snapshot!(format!("{stem}_unsupported"), e.to_string()),
        }
    }
    assert!(seen >= 4, "at least the digit and PTC models compile");
}

#[test]
fn verify_passes_on_the_shipped_classifier_and_fails_on_injected_defects() {
    let g = load("digits_conv.sym");
    let rep = backend::verify_model(&g, None, 3).unwrap();
    assert!(rep.passed(), "{rep:#?}");
    assert!(rep.checks.iter().filter(|c| c.name.starts_with("translation")).any(|c| !c.skipped));
    // The bias gradient of the first layer off by 1 %: both gradient oracles notice.
    let rep =
        backend::verify_model_with(&g, None, 3, &Fault::ScaleGradient { param: 1, factor: 1.01 })
            .unwrap();
    assert!(!rep.passed());
    let fd = rep.checks.iter().find(|c| c.name.contains("finite differences")).unwrap();
    assert!(!fd.passed && fd.detail.contains("linear1.bias"), "{fd:?}");
    // An indexing bug that depends on the position breaks the declared translation symmetry.
    let rep = backend::verify_model_with(&g, None, 3, &Fault::PositionDependent(1e-3)).unwrap();
    let failed: Vec<_> = rep.checks.iter().filter(|c| !c.passed).map(|c| c.name.as_str()).collect();
    assert!(failed.iter().any(|n| n.starts_with("translation")), "{failed:?}");
}

#[test]
fn verify_passes_on_a_gauge_network_and_fails_when_covariance_is_broken() {
    let g = load("ptc_precond_4x4.sym");
    let rep = backend::verify_model(&g, None, 5).unwrap();
    assert!(rep.passed(), "{rep:#?}");
    let gauge = rep.checks.iter().find(|c| c.name == "gauge covariance (JIT f64)").unwrap();
    assert!(gauge.max_rel < 1e-12, "{gauge:?}");
    let r = symc::lattice::su3::Su3::random(&mut rand_chacha::ChaCha8Rng::seed_from_u64(9));
    let rep = backend::verify_model_with(&g, None, 5, &Fault::RotateColour(r)).unwrap();
    let by = |n: &str| rep.checks.iter().find(|c| c.name == n).unwrap().clone();
    assert!(!by("gauge covariance (JIT f32)").passed && !by("gauge covariance (JIT f64)").passed);
    assert!(by("gauge covariance (JIT f64)").max_rel > 0.1);
    // A global colour rotation commutes with lattice shifts: that check still passes.
    assert!(by("lattice translation (JIT f32)").passed);
    let rep =
        backend::verify_model_with(&g, None, 5, &Fault::ScaleGradient { param: 0, factor: 0.999 })
            .unwrap();
    let fd = rep.checks.iter().find(|c| c.name.contains("finite differences")).unwrap();
    assert!(!fd.passed, "{fd:?}");
}

#[test]
fn cli_verify_and_asm_on_a_small_gauge_model() {
    let bin = env!("CARGO_BIN_EXE_symc");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ptc_precond_4x4.sym");
    let out = std::process::Command::new(bin)
        .arg("inspect")
        .arg(&model)
        .arg("--verify")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("PASS: all") && !text.contains("\x1b["), "{text}");
    let out = std::process::Command::new(bin)
        .arg("inspect")
        .arg(&model)
        .args(["--asm", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["total_params"], 288);
    let kernels = doc["kernels"].as_array().unwrap();
    assert!(kernels.iter().any(|k| k["asm"].as_str().unwrap().contains("vfmadd")));
    assert!(kernels.iter().all(|k| k["stats"]["all"]["total"].as_u64().unwrap() > 0));
    // A gauge file of the wrong lattice is refused with a typed error, exit 1.
    let bad = std::process::Command::new(bin)
        .arg("inspect")
        .arg(&model)
        .args(["--verify", "--gauge", "/nonexistent/conf.lime"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
}
