//! Fuzzing the front end: random bytes and random mutations of the real models never panic
//! the parser, the checker, the IR verifier, the cost model, the printer or the diagnostic
//! renderer, and every rejection carries a code and a position inside the text.
//!
//! The default run is short (a few thousand cases). The long run is `#[ignore]`d:
//! `SYMC_FUZZ_CASES=1000000 cargo test --release --test frontend_fuzz -- --ignored`.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use symc::sema::{LoadError, Options, compile_bytes};

const MODELS: &[&str] = &[
    include_str!("../models/digits_conv.sym"),
    include_str!("../models/digits_dense.sym"),
    include_str!("../models/ptc_smoother.sym"),
    include_str!("../models/ptc_precond.sym"),
    include_str!("../models/ptc_precond_4x4.sym"),
    include_str!("../models/dense_precond.sym"),
];

/// Tokens that make mutations syntactically interesting rather than mostly noise.
const TOKENS: &[&str] = &[
    "network",
    "train",
    "input",
    "output",
    "lattice",
    "symmetry",
    "residual",
    "linear",
    "relu",
    "tanh",
    "norm_gate",
    "flatten",
    "log_softmax",
    "transport",
    "none",
    "translation",
    "gauge",
    "SU3",
    "fermion",
    "real",
    "window",
    "hops",
    "paths",
    "long",
    "local",
    "bias",
    "true",
    "padding",
    "same",
    "->",
    "..",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    ":",
    "x",
    "+x",
    "-t",
    "+x+y",
    "+9z",
    "0",
    "1",
    "-1",
    "4",
    "16",
    "1e-3",
    "1e400",
    "99999999999999999999",
    "4294967296",
    "\"s\"",
    "\"",
    "/*",
    "*/",
    "//",
    "\n",
    " ",
    "\0",
    "é",
    "mnist(\"d\")",
    "generate(beta = 6.0)",
    "adam",
    "epochs",
    "steps",
    "batch",
    "loss",
    "nll",
    "preconditioner",
    "evaluate",
    "fgmres",
];

fn opts() -> Options {
    Options { memory_bytes: 16 << 30 }
}

/// Everything downstream of a source text must hold up, whatever the text.
fn exercise(bytes: Vec<u8>) {
    let len = bytes.len();
    match compile_bytes("fuzz.sym", bytes, &opts()) {
        Ok(g) => {
            symc::ir::verify::verify(&g).expect("sema output verifies");
            let _ = symc::ir::print::print(&g);
            let t = symc::ir::cost::total(&g);
            assert_eq!(t.params, g.param_count() as u64);
        }
        Err(LoadError::Model(d)) => {
            assert!(!d.problems.is_empty());
            for p in &d.problems {
                // Spans point into the text (the lossy copy for bad UTF-8 can be longer).
                assert!(p.span.start <= p.span.end);
                assert!(p.span.end <= len.max(1) * 3 + 8, "span {:?} beyond text", p.span);
            }
            let r = symc::diagnostics::render_plain(&LoadError::Model(d));
            assert!(r.contains("symc::"));
        }
        Err(LoadError::Io { .. }) => panic!("no I/O in compile_bytes"),
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, usize),
    Duplicate(usize, usize, usize),
    Byte(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..12).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, t)| Mutation::Insert(a, t)),
        (any::<usize>(), 0usize..40, any::<usize>())
            .prop_map(|(a, n, b)| Mutation::Duplicate(a, n, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Mutation::Byte(a, b)),
    ]
}

fn mutate(model: &str, muts: &[Mutation]) -> Vec<u8> {
    let mut b = model.as_bytes().to_vec();
    for m in muts {
        let len = b.len().max(1);
        match *m {
            Mutation::Delete(a, n) => {
                let a = a % len;
                let e = (a + n).min(b.len());
                if a < e {
                    b.drain(a..e);
                }
            }
            Mutation::Insert(a, t) => {
                let a = a % (b.len() + 1);
                b.splice(a..a, TOKENS[t].bytes());
            }
            Mutation::Duplicate(a, n, at) => {
                let a = a % len;
                let e = (a + n).min(b.len());
                let piece: Vec<u8> = b.get(a..e).unwrap_or(&[]).to_vec();
                let at = at % (b.len() + 1);
                b.splice(at..at, piece);
            }
            Mutation::Byte(a, v) => {
                if !b.is_empty() {
                    let i = a % b.len();
                    b[i] = v;
                }
            }
        }
    }
    b
}

fn run(cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases: cases / 2,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..400), |bytes| {
            exercise(bytes);
            Ok(())
        })
        .expect("random bytes");
    let mut runner = TestRunner::new(Config {
        cases: cases / 2,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(0..MODELS.len(), proptest::collection::vec(mutation(), 1..8)), |(m, muts)| {
            exercise(mutate(MODELS[m], &muts));
            Ok(())
        })
        .expect("mutated models");
}

#[test]
fn fuzz_short() {
    run(6000);
}

/// The long run (CI runs only `fuzz_short`):
/// `SYMC_FUZZ_CASES=1000000 cargo test --release --test frontend_fuzz -- --ignored --nocapture`
#[test]
#[ignore]
fn fuzz_long() {
    let cases =
        std::env::var("SYMC_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    run(cases);
    eprintln!("fuzz_long: {cases} cases without a panic");
}

/// Pathological inputs that random mutation rarely reaches.
#[test]
fn pathological_inputs() {
    let deep = format!("network n {{ input x: real[1] {} }}", "residual { ".repeat(10_000));
    exercise(deep.into_bytes());
    exercise(vec![b'('; 1_000_000]);
    exercise(vec![b'/', b'*'].repeat(100_000));
    exercise("a ".repeat(2_000_000).into_bytes()); // larger than the file limit
    exercise(
        format!("network n {{ input x: real[784] {} output y: real }}", "relu\n".repeat(100_000))
            .into_bytes(),
    );
    exercise(b"\xff\xfe\x00network".to_vec());
    let nested_ok = format!(
        "network n {{ lattice 4x4x4x8 input v: fermion symmetry gauge(SU3), translation {} linear(1 -> 1, hops = 1) {} output fermion }}",
        "residual {".repeat(40),
        "}".repeat(40)
    );
    // 40 nested residual blocks are within the depth limit and must compile.
    let g = symc::sema::compile_with("n.sym", &nested_ok, &opts())
        .map_err(|d| symc::diagnostics::render_plain(&d));
    let g = g.expect("40 nested residuals");
    assert_eq!(g.layers.len(), 41);
}

/// Nesting right at the limit runs on a small stack: the lexical depth limit, not the stack
/// size, is what bounds the recursive parser and checker.
#[test]
fn deepest_accepted_nesting_fits_a_small_stack() {
    let depth = symc::syntax::lex::MAX_DEPTH;
    let lists = format!(
        "network n {{ input x: real[784] linear(784 -> 10, window = {}{}) output y: real }}",
        "[".repeat(depth - 2),
        "]".repeat(depth - 2)
    );
    let residuals = format!(
        "network n {{ input x: real[8] {} relu {} output y: real }}",
        "residual { ".repeat(depth - 1),
        "} ".repeat(depth - 1)
    );
    let handle = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            let a = symc::sema::compile_with("a.sym", &lists, &opts());
            let b = symc::sema::compile_with("b.sym", &residuals, &opts());
            (a.map_err(|d| d.codes()), b.map(|g| g.layers.len()).map_err(|d| d.codes()))
        })
        .expect("spawn");
    let (a, b) = handle.join().expect("no stack overflow");
    // A nested list is not a window (and a vector has no window): typed errors, not a crash.
    assert_eq!(a.err(), Some(vec!["symc::sema::bad_argument", "symc::sema::bad_argument"]));
    // 63 nested residual blocks around one relu: 1 relu + 63 adds.
    assert_eq!(b, Ok(1 + (depth - 1)));
}
