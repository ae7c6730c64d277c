//! Architecture invariants of the front end, checked on the source text:
//! every front-end module starts with a `//!` doc saying why it exists; pest types never leave
//! `src/syntax`; the IR depends on neither pest, miette nor cranelift.

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

#[test]
fn front_end_modules_start_with_a_module_doc() {
    let mut files = Vec::new();
    for d in ["src/syntax", "src/sema", "src/ir"] {
        rust_files(&root().join(d), &mut files);
    }
    for f in ["src/diagnostics.rs", "src/source.rs", "src/cli/check.rs", "src/cli/inspect.rs"] {
        files.push(root().join(f));
    }
    assert!(files.len() >= 15);
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        assert!(text.starts_with("//!"), "{} has no //! module doc", f.display());
    }
}

#[test]
fn pest_stays_in_syntax_and_the_ir_stays_plain() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for f in files {
        let rel = f.strip_prefix(root()).expect("under root").to_string_lossy().replace('\\', "/");
        // Code only: docs may name the crates an invariant keeps out.
        let text: String = std::fs::read_to_string(&f)
            .expect("read")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        if !rel.starts_with("src/syntax/") {
            for needle in ["pest::", "pest_derive", "Pair<Rule>"] {
                assert!(
                    !text.contains(needle),
                    "{rel} uses {needle}: pest must stay in src/syntax"
                );
            }
        }
        if rel.starts_with("src/ir/") {
            for needle in ["pest", "miette", "cranelift"] {
                assert!(!text.contains(needle), "{rel} mentions {needle}: the IR must stay plain");
            }
        }
    }
}
