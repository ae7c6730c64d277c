//! The architecture map (ARCHITECTURE.md) checked on the source text, so that a broken rule
//! fails CI instead of waiting for a reviewer: which parts may import which, where `unsafe`
//! may appear, and that every module says why it exists.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every source file under `src/` as (path relative to the root, code without comment lines and
/// without its unit tests, which may build their inputs with any part of the crate).
fn sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut out: Vec<(String, String)> = files
        .into_iter()
        .map(|f| {
            let rel =
                f.strip_prefix(root()).expect("under root").to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&f).expect("read");
            let code = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or("")
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            (rel, code)
        })
        .collect();
    out.sort();
    assert!(out.len() > 60, "found only {} source files", out.len());
    out
}

/// The top-level modules (`crate::x`) a file's code names.
fn imports(code: &str) -> Vec<String> {
    let mut v: Vec<String> = code
        .match_indices("crate::")
        .map(|(i, m)| {
            code[i + m.len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Fails with every file of `part` that names one of `forbidden`, and why that is wrong.
fn never(part: &str, forbidden: &[&str], why: &str) {
    let bad: Vec<String> = sources()
        .into_iter()
        .filter(|(rel, _)| rel.starts_with(part))
        .flat_map(|(rel, code)| {
            imports(&code)
                .into_iter()
                .filter(|m| forbidden.contains(&m.as_str()))
                .map(move |m| format!("{rel} -> crate::{m}"))
        })
        .collect();
    assert!(bad.is_empty(), "{why}:\n  {}", bad.join("\n  "));
}

#[test]
fn codegen_emits_and_knows_no_executor_solver_or_trainer() {
    never(
        "src/codegen/",
        &["runtime", "solve", "train", "cli", "inspect", "sema", "syntax"],
        "codegen turns a verified IR into kernels; running them is the runtime's job",
    );
}

#[test]
fn codegen_takes_only_geometry_and_conventions_from_lattice() {
    // The kernels need the scalar trait, the gamma structure and the clover packing; gauge
    // fields, operators and files are the runtime's to turn into tables.
    let allowed =
        ["crate::lattice::Real", "crate::lattice::gamma::", "crate::lattice::wilson::{CloverBlock"];
    for (rel, code) in sources().into_iter().filter(|(r, _)| r.starts_with("src/codegen/")) {
        for (i, _) in code.match_indices("crate::lattice::") {
            assert!(
                allowed.iter().any(|a| code[i..].starts_with(a)),
                "{rel} reaches into lattice beyond geometry and conventions: {}",
                code[i..].lines().next().unwrap_or("")
            );
        }
    }
}

#[test]
fn oracles_share_no_code_with_the_emitters_or_executors() {
    for oracle in ["src/runtime/reference.rs", "src/runtime/lattice_reference.rs"] {
        never(oracle, &["codegen"], "the reference evaluators must stay independent of codegen");
        let (_, code) = sources().into_iter().find(|(r, _)| r == oracle).expect("oracle exists");
        for exec in ["lattice_net", "classifier", "dirac", "transport", "dense_lattice"] {
            assert!(
                !code.contains(&format!("runtime::{exec}"))
                    && !code.contains(&format!("super::{exec}")),
                "{oracle} uses the executor module {exec}"
            );
        }
    }
}

#[test]
fn the_layers_below_do_not_reach_up() {
    never(
        "src/ir/",
        &["syntax", "sema", "codegen", "runtime", "train", "solve", "cli", "inspect"],
        "the IR is the bottom of the compiler",
    );
    never(
        "src/runtime/",
        &["train", "cli", "inspect", "sema", "syntax"],
        "executors know no training loop and no CLI",
    );
    never(
        "src/solve/",
        &["codegen", "runtime", "train", "cli", "inspect"],
        "solvers see vectors through traits",
    );
    never(
        "src/lattice/",
        &["codegen", "runtime", "train", "cli", "inspect", "sema", "syntax"],
        "physics sits below the compiler",
    );
    never(
        "src/syntax/",
        &["sema", "codegen", "runtime", "train", "solve", "cli", "inspect"],
        "the parser emits no code",
    );
}

#[test]
fn the_library_api_is_a_facade_nothing_inside_depends_on() {
    never(
        "src/",
        &["model"],
        "`model` wraps the compiler for library users; the compiler itself must not need it",
    );
}

#[test]
fn unsafe_lives_only_in_the_jit_module() {
    for (rel, code) in sources() {
        if rel == "src/codegen/jit.rs" {
            continue;
        }
        let hit = code
            .lines()
            .find(|l| l.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == "unsafe"));
        assert!(hit.is_none(), "{rel} contains `unsafe`: {}", hit.unwrap_or(""));
    }
}

#[test]
fn every_module_says_why_it_exists() {
    for (rel, _) in sources() {
        let text = std::fs::read_to_string(root().join(&rel)).expect("read");
        assert!(text.starts_with("//!"), "{rel} has no //! module doc");
    }
}

#[test]
fn training_solving_and_the_cli_reach_kernels_only_through_the_runtime() {
    never(
        "src/train/",
        &["codegen", "cli"],
        "training runs networks through the runtime's executors",
    );
    never("src/cli/", &["codegen"], "the CLI parses and prints; executors live in the runtime");
}

#[test]
fn no_source_file_is_a_god_file() {
    // A file a newcomer cannot read in one sitting is a file that does several jobs; split it
    // along the pipeline instead (issue 11).
    let mut big: Vec<String> = sources()
        .into_iter()
        .map(|(rel, code)| (code.lines().count(), rel))
        .filter(|(n, _)| *n > 900)
        .map(|(n, rel)| format!("{rel}: {n} lines"))
        .collect();
    big.sort();
    assert!(big.is_empty(), "source files over 900 lines:\n  {}", big.join("\n  "));
}
