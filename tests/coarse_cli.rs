//! `loss coarse` end to end through the CLI on a small generated lattice: the level's coarse
//! layers train alone on D_c (the loss falls, the fine layer is saved unchanged, the summary's
//! solve is the coarse system with M_c needing fewer iterations than plain GMRES); a full model
//! warm-started from that run (`symc train --init`) copies the coarse layer and reports it; and
//! `symc inspect --verify` passes on the shipped paper models.

use std::path::Path;
use std::process::Command;

fn symc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_symc")).args(args).output().expect("run symc")
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn model(g: &str, connect: &str, fine: &str, train: &str) -> String {
    format!(
        "network mg {{
            lattice 4 x 4 x 4 x 8
            input v: fermion
            symmetry gauge(SU3), translation
            level coarse(blocks = [2, 2, 2, 2], basis = 6, connect = {connect},
                         setup = gmres(iterations = 20, restart = 10)) {{
                lptc_ng = linear(1 -> 1, hops = 1, local)
            }}
            {fine}
            output fermion
        }}
        train mg {{
            gauge     load(\"{g}\")
            operator  wilson_clover(mass = -0.3, csw = 1.0)
            {train}
            evaluate  fgmres(tol = 1e-8, restart = 20, rhs = 2)
        }}"
    )
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap()
}

fn tensor(run: &Path, name: &str) -> Vec<u8> {
    let bytes = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name).unwrap().data().to_vec()
}

#[test]
fn coarse_loss_trains_the_level_alone_and_warm_starts_the_full_model() {
    let tmp = tempfile::tempdir().unwrap();
    let gauge = tmp.path().join("g.nersc");
    let g = gauge.to_str().unwrap();
    ok(&symc(&[
        "gauge", "generate", "--dims", "4x4x4x8", "--beta", "6.0", "--sweeps", "20", "--seed", "3",
        "-o", g,
    ]));
    let coarse = tmp.path().join("coarse.sym");
    std::fs::write(
        &coarse,
        model(
            g,
            "concat",
            "readout = linear(2 -> 1)",
            "loss coarse\noptimizer adam(lr = 1e-3)\nsteps 400",
        ),
    )
    .unwrap();
    let run = tmp.path().join("coarse_run");
    ok(&symc(&["train", coarse.to_str().unwrap(), "--out", run.to_str().unwrap()]));
    let s = summary(&run);
    assert_eq!(s["loss"], "coarse");
    let (first, last) =
        (s["initial_loss"].as_f64().unwrap(), s["final_loss_mean"].as_f64().unwrap());
    assert!(last < 0.7 * first, "the coarse loss should fall: {first} -> {last}");
    let solve = &s["solve"];
    assert_eq!(solve["system"], "coarse", "{solve}");
    let (u, p) = (
        solve["unpreconditioned"]["iterations"].as_f64().unwrap(),
        solve["preconditioned"]["iterations"].as_f64().unwrap(),
    );
    assert!(p < u, "M_c should cut the coarse iterations: {u} -> {p}");
    assert!(solve["preconditioned"]["max_true_residual"].as_f64().unwrap() < 1e-8);

    // The fine layer did not train: its saved weights equal those of a one-step run (the
    // initial ones: a zero gradient leaves Adam's update at zero); the coarse layer's differ.
    let fresh = tmp.path().join("fresh_run");
    ok(&symc(&[
        "train",
        coarse.to_str().unwrap(),
        "--out",
        fresh.to_str().unwrap(),
        "--steps",
        "1",
        "--no-evaluate",
    ]));
    assert_eq!(tensor(&run, "readout.weight"), tensor(&fresh, "readout.weight"));
    assert_ne!(tensor(&run, "lptc_ng.weight"), tensor(&fresh, "lptc_ng.weight"));

    // The full model starts from the trained coarse layer (same name and shape) and says so.
    let full = tmp.path().join("full.sym");
    std::fs::write(
        &full,
        model(
            g,
            "concat",
            "linear(2 -> 2, hops = 1)\nlinear(2 -> 1, hops = 1)",
            "loss preconditioner(low_modes = 1.0, tol = 1e-5)\noptimizer adam(lr = 1e-3)\nsteps 2",
        ),
    )
    .unwrap();
    let run2 = tmp.path().join("full_run");
    let log = ok(&symc(&[
        "train",
        full.to_str().unwrap(),
        "--out",
        run2.to_str().unwrap(),
        "--init",
        run.to_str().unwrap(),
        "--steps",
        "1",
        "--no-evaluate",
    ]));
    assert!(log.contains("loaded lptc_ng.weight"), "{log}");
    let ws = &summary(&run2)["warm_start"][0]["loaded"];
    assert_eq!(ws[0], "lptc_ng.weight", "{ws}");
}

#[test]
fn inspect_verify_passes_on_the_paper_models() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for m in ["models/ptc_coarse.sym", "models/ptc_mg_paper.sym"] {
        let out = symc(&["inspect", root.join(m).to_str().unwrap(), "--verify"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{m}: {text}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("coarse layers: JIT f64 vs naive twin"), "{m}: {text}");
    }
}
