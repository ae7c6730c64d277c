//! Measurements, not checks: unpreconditioned vs two-level multigrid FGMRES(30) to 1e-8 on the
//! shipped 8³×16 β = 6 configuration (c_sw = 1, blocks 4⁴ → coarse 2×2×2×4) across masses
//! towards criticality, and on the 8⁴ DDalphaAMG configuration at m = −0.555 (blocks 4⁴ →
//! coarse 2⁴). Prints markdown rows: iterations, fine-operator applications (outer solver +
//! inside the preconditioner), coarse applications, set-up and solve seconds, means over 3
//! random sources. Timings are wall clock on a shared machine: repeat and give ranges.
//!
//! Run: `cargo test --release --test multigrid_measure -- --ignored --nocapture`
//! Environment: `SYMC_MG_MASSES=-0.5,-0.55` (8³×16 masses), `SYMC_MG_VARIANTS=reference,...`
//! (comma-separated, see [`variant`]), `SYMC_MG_MAXIT` (iteration cap of the unpreconditioned solves),
//! `SYMC_MG_SKIP_PLAIN=1` (multigrid only).

mod common;

use num_complex::Complex64;
use std::path::Path;
use std::time::Instant;
use symc::lattice::gauge::GaugeField;
use symc::lattice::io::read_gauge;
use symc::lattice::wilson::{DiracParams, WilsonClover};
use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
use symc::runtime::multigrid::{Multigrid, MultigridParams, start_vectors};
use symc::solve::multigrid::{CoarseGuess, NearNullParams, Smoother};
use symc::solve::{self, MixedWorkspace, SolveParams};

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A multigrid variant: `reference`, or `+`-joined changes to it (`chiral24+post_mr8`):
/// `setupN` (N set-up iterations), `nbN` (N basis vectors), `chiralN` (N chirality-doubled
/// basis vectors), `zero_guess`, `post_gmresMxN` / `pre_gmresMxN` (N GMRES(M) iterations),
/// `post_mrN` / `pre_mrN` (N MR steps), `post_none`, `coarseT` (coarse tolerance T),
/// `coarse_itsN` (coarse iteration cap).
fn variant(name: &str) -> MultigridParams {
    let mut p = MultigridParams::reference();
    for tok in name.split('+').filter(|t| *t != "reference") {
        let num = |prefix: &str| -> Option<usize> { tok.strip_prefix(prefix)?.parse().ok() };
        let gmres = |prefix: &str| -> Option<Smoother> {
            let (m, n) = tok.strip_prefix(prefix)?.split_once('x')?;
            Some(Smoother::Gmres { restart: m.parse().ok()?, iterations: n.parse().ok()? })
        };
        if let Some(n) = num("setup") {
            p.setup = NearNullParams { iterations: n, ..p.setup };
        } else if let Some(n) = num("nb") {
            p.n_basis = n;
            p.chirality_doubled = false;
        } else if let Some(n) = num("chiral") {
            p.n_basis = n;
            p.chirality_doubled = true;
        } else if tok == "zero_guess" {
            p.cycle.coarse_guess = CoarseGuess::Zero;
        } else if tok == "post_none" {
            p.cycle.post = Smoother::None;
        } else if let Some(s) = gmres("post_gmres") {
            p.cycle.post = s;
        } else if let Some(s) = gmres("pre_gmres") {
            p.cycle.pre = s;
        } else if let Some(n) = num("post_mr") {
            p.cycle.post = Smoother::MinRes { iterations: n };
        } else if let Some(n) = num("pre_mr") {
            p.cycle.pre = Smoother::MinRes { iterations: n };
        } else if let Some(n) = num("coarse_its") {
            p.cycle.coarse.max_iterations = n;
        } else if let Some(t) = tok.strip_prefix("coarse").and_then(|t| t.parse::<f64>().ok()) {
            p.cycle.coarse.tol = t;
        } else {
            panic!("unknown variant token `{tok}` in `{name}`");
        }
    }
    p
}

struct Row {
    iterations: f64,
    applications: f64,
    coarse_applications: f64,
    setup_seconds: f64,
    solve_seconds: f64,
    converged: usize,
    worst_residual: f64,
}

fn sources(dims: [usize; 4]) -> Vec<Vec<Complex64>> {
    start_vectors(dims, 3, 4242)
        .into_iter()
        .map(|mut b| {
            let n = symc::lattice::fermion::norm(&b);
            b.iter_mut().for_each(|z| *z /= n);
            b
        })
        .collect()
}

fn plain(gauge: &GaugeField, dirac: &DiracParams, maxit: usize) -> Row {
    let opts = DiracOptions::default();
    let d64 = JitWilsonClover::<f64>::new(gauge, dirac, &opts).unwrap();
    let d32 = JitWilsonClover::<f32>::new(gauge, dirac, &opts).unwrap();
    let reference = WilsonClover::<f64>::new(gauge, dirac);
    let sp = SolveParams { tol: 1e-8, restart: 30, max_iterations: maxit };
    let mut ws = MixedWorkspace::new();
    let srcs = sources(gauge.dims());
    let mut row = Row {
        iterations: 0.0,
        applications: 0.0,
        coarse_applications: 0.0,
        setup_seconds: 0.0,
        solve_seconds: 0.0,
        converged: 0,
        worst_residual: 0.0,
    };
    for b in &srcs {
        let mut x = common::zeros(b.len());
        let t = Instant::now();
        let rep = solve::gmres_mixed(&mut ws, &d64, &d32, b, &mut x, &sp).unwrap();
        row.solve_seconds += t.elapsed().as_secs_f64();
        row.iterations += rep.iterations as f64;
        row.applications += rep.operator_applications as f64;
        let r = common::residual(&reference, b, &x);
        row.converged += usize::from(r <= 1e-8);
        row.worst_residual = row.worst_residual.max(r);
    }
    let k = srcs.len() as f64;
    row.iterations /= k;
    row.applications /= k;
    row.solve_seconds /= k;
    row
}

fn multigrid(gauge: &GaugeField, dirac: &DiracParams, params: &MultigridParams) -> Row {
    let opts = DiracOptions::default();
    let d64 = JitWilsonClover::<f64>::new(gauge, dirac, &opts).unwrap();
    let d32 = JitWilsonClover::<f32>::new(gauge, dirac, &opts).unwrap();
    let reference = WilsonClover::<f64>::new(gauge, dirac);
    let t = Instant::now();
    let mut mg = Multigrid::build(gauge, dirac, params).unwrap();
    let setup_seconds = t.elapsed().as_secs_f64();
    let rep = mg.setup_report().clone();
    eprintln!(
        "  set-up: dirac {:.2} s, near-null {:.2} s (its {:?}), orthonormalise {:.2} s, galerkin {:.2} s, coarse check {:.2} s ({} its), kernels {:.2} s",
        rep.compile_dirac_seconds,
        rep.near_null_seconds,
        rep.near_null_iterations,
        rep.orthonormalize_seconds,
        rep.galerkin_seconds,
        rep.coarse_check_seconds,
        rep.coarse_check_iterations,
        rep.compile_coarse_seconds
    );
    let sp = SolveParams { tol: 1e-8, restart: 30, max_iterations: 2000 };
    let mut ws = MixedWorkspace::new();
    let srcs = sources(gauge.dims());
    let mut row = Row {
        iterations: 0.0,
        applications: 0.0,
        coarse_applications: 0.0,
        setup_seconds,
        solve_seconds: 0.0,
        converged: 0,
        worst_residual: 0.0,
    };
    for b in &srcs {
        let mut x = common::zeros(b.len());
        let t = Instant::now();
        let out = mg.fgmres_mixed(&mut ws, &d64, &d32, b, &mut x, &sp).unwrap();
        row.solve_seconds += t.elapsed().as_secs_f64();
        let (r, s) = (&out.report, out.cycles);
        eprintln!(
            "  rhs: {} its, {} cycles, {} fine + {} coarse inside ({} coarse its); coarse {:.3} s, smoother {:.3} s, total {:.3} s",
            r.iterations,
            s.cycles,
            s.fine_applications,
            s.coarse_applications,
            s.coarse_iterations,
            s.seconds_coarse,
            s.seconds_smoother,
            r.seconds
        );
        row.iterations += r.iterations as f64;
        row.applications += out.fine_applications() as f64;
        row.coarse_applications += s.coarse_applications as f64;
        let res = common::residual(&reference, b, &x);
        row.converged += usize::from(res <= 1e-8);
        row.worst_residual = row.worst_residual.max(res);
    }
    let k = srcs.len() as f64;
    row.iterations /= k;
    row.applications /= k;
    row.coarse_applications /= k;
    row.solve_seconds /= k;
    row
}

fn print(label: &str, mass: f64, method: &str, r: &Row) {
    println!(
        "| {label} | {mass} | {method} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {}/3 | {:.1e} |",
        r.iterations,
        r.applications,
        r.coarse_applications,
        r.setup_seconds,
        r.solve_seconds,
        r.converged,
        r.worst_residual
    );
}

fn header() {
    println!(
        "| lattice | mass | method | iterations | fine applications | coarse applications | set-up s | solve s | converged | worst residual |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
}

#[test]
#[ignore = "measurement: minutes of solves; run with --ignored --nocapture"]
fn measure_8x8x8x16() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/data/gauge/b6.0_8x8x8x16_s7.nersc");
    let gauge = read_gauge(&path).expect("shipped configuration").field;
    let masses: Vec<f64> = env_list("SYMC_MG_MASSES", "-0.5,-0.55,-0.57,-0.58,-0.59")
        .iter()
        .map(|s| s.parse().expect("mass"))
        .collect();
    let variants = env_list("SYMC_MG_VARIANTS", "reference");
    let maxit: usize =
        std::env::var("SYMC_MG_MAXIT").ok().and_then(|s| s.parse().ok()).unwrap_or(6000);
    let skip_plain = std::env::var("SYMC_MG_SKIP_PLAIN").is_ok();
    header();
    for &m in &masses {
        let dirac = DiracParams::periodic(m, 1.0);
        if !skip_plain {
            print("8³×16", m, "unpreconditioned", &plain(&gauge, &dirac, maxit));
        }
        for v in &variants {
            eprintln!("{v} at m = {m}:");
            print("8³×16", m, &format!("MG {v}"), &multigrid(&gauge, &dirac, &variant(v)));
        }
    }
}

#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn measure_ddalphaamg_8x8x8x8() {
    let Some((gauge, _)) = common::ddalpha_8x8x8x8("measure_ddalphaamg_8x8x8x8") else {
        return;
    };
    let maxit: usize =
        std::env::var("SYMC_MG_MAXIT").ok().and_then(|s| s.parse().ok()).unwrap_or(6000);
    let variants = env_list("SYMC_MG_VARIANTS", "reference");
    header();
    let m = -0.555;
    let dirac = DiracParams::periodic(m, 1.0);
    print("8⁴ DDalphaAMG", m, "unpreconditioned", &plain(&gauge, &dirac, maxit));
    for v in &variants {
        eprintln!("{v} at m = {m}:");
        print("8⁴ DDalphaAMG", m, &format!("MG {v}"), &multigrid(&gauge, &dirac, &variant(v)));
    }
}
