//! Bad programs in `tests/ui/*.sym` → the rendered diagnostics, pinned as reviewed insta
//! snapshots (colour-free, 100 columns). Every program must be rejected with exit code 1, a
//! stable `symc::` code and a file:line:column position, and must never panic.

use symc::diagnostics::render_plain;
use symc::sema::{LoadError, Options, load_model_with};

/// A fixed memory size, so that "needs more memory than the machine has" renders the same
/// on every machine.
fn opts() -> Options {
    Options { memory_bytes: 16 << 30 }
}

#[test]
fn bad_programs() {
    insta::glob!("ui/*.sym", |path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let rel = Path::new("tests/ui").join(name);
        let err = match load_model_with(&rel, &opts()) {
            Ok(_) => panic!("{name}: a bad program was accepted"),
            Err(e) => e,
        };
        assert_eq!(err.exit_code(), 1, "{name}: model errors exit with 1");
        let LoadError::Model(diags) = &err else { panic!("{name}: not a model error") };
        assert!(!diags.problems.is_empty());
        let rendered = render_plain(&err);
        assert!(rendered.contains("symc::"), "{name}: no diagnostic code:\n{rendered}");
        let pos = format!("{}:", rel.display());
        assert!(rendered.contains(&pos), "{name}: no file:line:column:\n{rendered}");
        assert_eq!(
            rendered.matches("help:").count(),
            diags.problems.len(),
            "{name}: every problem needs a help line:\n{rendered}"
        );
        insta::assert_snapshot!(rendered);
    });
}

/// All codes in the registry are distinct and namespaced.
#[test]
fn codes_are_unique_and_namespaced() {
    let codes: Vec<&str> = symc::diagnostics::Code::ALL.iter().map(|c| c.as_str()).collect();
    let mut sorted = codes.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), codes.len());
    assert!(codes.iter().all(|c| c.starts_with("symc::syntax::") || c.starts_with("symc::sema::")));
}

/// The ui folder covers many distinct codes, not 30 variants of one.
#[test]
fn ui_covers_many_codes() {
    let mut seen = std::collections::BTreeSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir("tests/ui").expect("tests/ui") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("sym") {
            continue;
        }
        files += 1;
        if let Err(LoadError::Model(d)) = load_model_with(&path, &opts()) {
            seen.extend(d.codes());
        }
    }
    assert!(files >= 30, "only {files} bad programs");
    assert!(seen.len() >= 30, "only {} distinct codes: {seen:?}", seen.len());
}
