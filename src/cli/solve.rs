//! `symc solve`: solve the Wilson-clover Dirac equation D x = b on a gauge configuration with
//! random normalised sources, and report what a preconditioner comparison needs (iterations,
//! operator applications, seconds, recomputed true residual, residual history).
//!
//! The solve is split into three steps so that a preconditioner can be plugged in without
//! touching the rest: [`build_operator`] (gauge file → operator), [`Preconditioning`] (what
//! FGMRES uses as M; today only the identity) and [`run_solves`] (sources, solver, reports).

use super::Failure;
use crate::lattice::fermion::{self, FermionField};
use crate::lattice::gauge::GaugeField;
use crate::lattice::io::{self, read_gauge};
use crate::lattice::wilson::{DiracParams, WilsonClover};
use crate::runtime::dirac::{DiracOptions, JitWilsonClover};
use crate::runtime::preconditioner::NetPreconditioner;
use crate::solve::{
    self, IdentityPreconditioner, LinearOperator, MixedPrecision, Preconditioner, SolveParams,
    SolveReport,
};
use miette::Diagnostic;
use num_complex::Complex64;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
symc solve --gauge conf/8x8x8x8b6.0000id3n1 --mass -0.5 --csw 1.0\n  \
symc solve --gauge b6.nersc --mass -0.55 --csw 1 --solver gmres --restart 30 --rhs 4 --format json\n  \
symc solve --gauge b6.nersc --mass -0.58 --csw 1 --history res.csv --plot res.svg\n  \
symc solve --gauge conf/8x8x8x8b6.0000id3n1 --mass -0.555 --csw 1 --restart 30 --precond runs/ptc_precond\n  \
symc solve --gauge bare.lime --gauge-dims 4x4x4x8 --gauge-precision f32 --mass -0.5 --csw 1\n\n\
The operator is D = (4+m) - 1/2 sum_mu [(1-g_mu) U_mu(x) d_{x+mu} + (1+g_mu) U_mu(x-mu)^+ d_{x-mu}] \
+ clover (Grid/GPT conventions, DeGrand-Rossi gammas). Sources are complex Gaussian, normalised, \
drawn from --seed. The reported true residual |b - D x|/|b| is recomputed in f64 from the \
returned solution. --precision mixed (the default for gmres and fgmres) runs every restart \
cycle in f32 on the JIT kernels' own layout and recomputes the residual in f64 at every restart \
(iterative refinement): full f64 accuracy at f32 speed. --precision f64 runs the whole solve in \
double precision on the plain reference operator; --precision f32 puts an f32 operator inside \
the f64 solver, which limits the reachable residual to about 1e-6.")]
pub struct SolveArgs {
    /// Gauge configuration (NERSC, ILDG/SciDAC LIME, MILC v5 or DDalphaAMG; detected).
    #[arg(long)]
    pub gauge: PathBuf,
    /// Lattice extents XxYxZxT of a --gauge LIME file that does not state them.
    #[arg(long, value_name = "XxYxZxT", value_parser = super::gauge::parse_hint_dims)]
    pub gauge_dims: Option<[usize; 4]>,
    /// Stored precision (f32 or f64) of a --gauge LIME file that does not state it.
    #[arg(long, value_name = "f32|f64", value_parser = super::gauge::parse_hint_precision)]
    pub gauge_precision: Option<io::Precision>,
    /// Bare quark mass m0 (kappa = 1/(2(m0+4))); negative values are usual.
    #[arg(long, allow_negative_numbers = true)]
    pub mass: f64,
    /// Clover coefficient c_sw (0 = plain Wilson, 1 = tree level).
    #[arg(long, allow_negative_numbers = true)]
    pub csw: f64,
    /// Target relative residual |b - D x|/|b|.
    #[arg(long, default_value_t = 1e-8)]
    pub tol: f64,
    /// Krylov space size m of GMRES(m) / FGMRES(m).
    #[arg(long, default_value_t = 30)]
    pub restart: usize,
    /// Iteration budget per right-hand side.
    #[arg(long, default_value_t = 20_000)]
    pub max_iterations: usize,
    /// Krylov solver.
    #[arg(long, value_enum, default_value_t = SolverKind::Fgmres)]
    pub solver: SolverKind,
    /// Number of random right-hand sides.
    #[arg(long, default_value_t = 1)]
    pub rhs: usize,
    /// Seed of the random sources.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fermion boundary condition in time (space is always periodic).
    #[arg(long, value_enum, default_value_t = Boundary::Periodic)]
    pub boundary: Boundary,
    /// Precision: `mixed` = f32 restart cycles on the JIT kernels with f64 restarts (gmres and
    /// fgmres; bicgstab and cgne then run in f64), `f64`, or an f32 operator in an f64 solver.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Mixed)]
    pub precision: PrecisionArg,
    /// Write the residual history as CSV (rhs,iteration,relative_residual).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Plot the residual history (SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Output style on stdout.
    #[arg(long, value_enum, default_value_t = Style::Text)]
    pub format: Style,
    /// Right preconditioner: a run folder written by `symc train` (its model.sym and
    /// checkpoint.safetensors); the network is recompiled for this gauge field's volume.
    #[arg(long, value_name = "RUN_DIR")]
    pub precond: Option<PathBuf>,
}

/// Solvers selectable on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolverKind {
    Fgmres,
    Gmres,
    Bicgstab,
    Cgne,
}

/// Time boundary condition of the fermions.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    Periodic,
    Antiperiodic,
}

/// Operator precision.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrecisionArg {
    Mixed,
    F32,
    F64,
}

/// Output style.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Text,
    Json,
}

/// Problems with the arguments or the solve.
#[derive(Debug, Error, Diagnostic)]
pub enum SolveCliError {
    #[error("invalid --{flag}: expected {expected}, found {found}")]
    #[diagnostic(code(symc::solve::argument), help("see `symc solve --help`"))]
    Argument { flag: &'static str, expected: &'static str, found: String },

    #[error("the preconditioner needs --solver fgmres, found --solver {solver}")]
    #[diagnostic(
        code(symc::solve::preconditioner_solver),
        help("only flexible GMRES accepts a right preconditioner that may vary between calls")
    )]
    PreconditionerNeedsFgmres { solver: String },

    #[error(
        "{solver} did not reach --tol {tol:e} on {failed} of {total} right-hand sides \
         (worst true residual {worst:e})"
    )]
    #[diagnostic(
        code(symc::solve::not_converged),
        help("raise --max-iterations, loosen --tol, or move --mass away from the critical mass")
    )]
    NotConverged { solver: String, tol: f64, failed: usize, total: usize, worst: f64 },

    #[error("cannot render the residual plot `{path}`: {message}")]
    #[diagnostic(code(symc::solve::plot), help("check the output path"))]
    Plot { path: PathBuf, message: String },
}

/// What FGMRES uses as its right preconditioner M.
pub enum Preconditioning {
    /// No preconditioning (FGMRES is then GMRES).
    Identity(IdentityPreconditioner),
    /// A trained network (from a run folder); it also runs inside mixed-precision solves.
    Network(Box<NetPreconditioner>),
    /// Any other right preconditioner (f64 solves only).
    Custom(Box<dyn Preconditioner<f64>>),
}

impl Preconditioning {
    fn as_dyn(&mut self) -> &mut dyn Preconditioner<f64> {
        match self {
            Preconditioning::Identity(p) => p,
            Preconditioning::Network(p) => p.as_mut(),
            Preconditioning::Custom(p) => p.as_mut(),
        }
    }
}

/// The operator in the chosen precision.
pub enum Operator {
    /// Double precision throughout.
    F64(WilsonClover<f64>),
    /// Single-precision operator run through [`MixedPrecision`] inside the f64 solver.
    F32 { op32: WilsonClover<f32> },
    /// f32 restart cycles on the JIT kernel in its own layout, f64 residuals with the f64 JIT
    /// kernel ([`solve::gmres_mixed`]).
    Mixed { d64: Box<JitWilsonClover<f64>>, d32: Box<JitWilsonClover<f32>> },
}

/// Per right-hand side results plus what they were computed with.
pub struct SolveOutcome {
    pub reports: Vec<SolveReport>,
}

fn check_args(a: &SolveArgs) -> Result<(), SolveCliError> {
    let bad =
        |flag, expected, found: String| Err(SolveCliError::Argument { flag, expected, found });
    if !a.mass.is_finite() || a.mass <= -8.0 {
        return bad("mass", "a finite number above -8", a.mass.to_string());
    }
    if !a.csw.is_finite() {
        return bad("csw", "a finite number", a.csw.to_string());
    }
    if !(a.tol.is_finite() && a.tol > 0.0 && a.tol < 1.0) {
        return bad("tol", "a number in (0, 1)", a.tol.to_string());
    }
    if a.restart == 0 {
        return bad("restart", "at least 1", "0".into());
    }
    if a.rhs == 0 {
        return bad("rhs", "at least 1", "0".into());
    }
    if a.max_iterations == 0 {
        return bad("max-iterations", "at least 1", "0".into());
    }
    Ok(())
}

/// The Dirac parameters of the command line.
pub fn dirac_params(a: &SolveArgs) -> DiracParams {
    match a.boundary {
        Boundary::Periodic => DiracParams::periodic(a.mass, a.csw),
        Boundary::Antiperiodic => DiracParams::antiperiodic_time(a.mass, a.csw),
    }
}

/// Builds the operator in the requested precision. Mixed precision needs the JIT kernels; where
/// they cannot be built (no lattice extent divisible by the 4 SIMD lanes) it falls back to f64
/// and says why on stderr.
pub fn build_operator(
    gauge: &GaugeField,
    params: &DiracParams,
    precision: PrecisionArg,
) -> Operator {
    match precision {
        PrecisionArg::F64 => Operator::F64(WilsonClover::new(gauge, params)),
        PrecisionArg::F32 => Operator::F32 { op32: WilsonClover::new(gauge, params) },
        PrecisionArg::Mixed => {
            let opts = DiracOptions::default();
            match (
                JitWilsonClover::<f64>::new(gauge, params, &opts),
                JitWilsonClover::<f32>::new(gauge, params, &opts),
            ) {
                (Ok(d64), Ok(d32)) => Operator::Mixed { d64: Box::new(d64), d32: Box::new(d32) },
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("note: no JIT operator for this lattice ({e}); solving in f64");
                    Operator::F64(WilsonClover::new(gauge, params))
                }
            }
        }
    }
}

/// Random complex Gaussian sources of unit norm, reproducible from `seed`.
pub fn random_sources(dims: [usize; 4], n: usize, seed: u64) -> Vec<Vec<Complex64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut b = FermionField::<f64>::random_gaussian(dims, &mut rng).data;
            let nb = fermion::norm(&b);
            fermion::scale(Complex64::new(1.0 / nb, 0.0), &mut b);
            b
        })
        .collect()
}

fn solve_with<O: solve::AdjointOperator<f64> + ?Sized>(
    op: &O,
    kind: SolverKind,
    prec: &mut Preconditioning,
    b: &[Complex64],
    params: &SolveParams,
) -> (Vec<Complex64>, SolveReport) {
    let mut x = vec![Complex64::new(0.0, 0.0); LinearOperator::len(op)];
    let rep = match kind {
        SolverKind::Fgmres => solve::fgmres(op, prec.as_dyn(), b, &mut x, params),
        SolverKind::Gmres => solve::gmres(op, b, &mut x, params),
        SolverKind::Bicgstab => solve::bicgstab(op, b, &mut x, params),
        SolverKind::Cgne => solve::cgne(op, b, &mut x, params),
    };
    (x, rep)
}

/// Solves D x = b for every source. With an f32 operator the true residual is recomputed with
/// the f64 operator, so that it measures the real Dirac equation. Mixed precision applies to
/// GMRES and FGMRES; BiCGStab and CGNE then run in f64 on the f64 JIT kernel.
pub fn run_solves(
    gauge: &GaugeField,
    dirac: &DiracParams,
    operator: &Operator,
    kind: SolverKind,
    prec: &mut Preconditioning,
    sources: &[Vec<Complex64>],
    params: &SolveParams,
) -> Result<SolveOutcome, Failure> {
    let mut reports = Vec::with_capacity(sources.len());
    let mut ws = solve::MixedWorkspace::new();
    let d64_for_check = match operator {
        Operator::F32 { .. } => Some(WilsonClover::<f64>::new(gauge, dirac)),
        _ => None,
    };
    for (k, b) in sources.iter().enumerate() {
        let (x, mut rep) = match operator {
            Operator::F64(d) => solve_with(d, kind, prec, b, params),
            Operator::F32 { op32 } => solve_with(&MixedPrecision::new(op32), kind, prec, b, params),
            Operator::Mixed { d64, d32 } => {
                let mut x = vec![Complex64::new(0.0, 0.0); b.len()];
                let d64 = d64.as_ref();
                let d32 = d32.as_ref();
                let rep = match (kind, &mut *prec) {
                    (SolverKind::Fgmres, Preconditioning::Network(net)) => {
                        let mut native = net.native(d32.layout());
                        solve::fgmres_mixed(&mut ws, d64, d32, &mut native, b, &mut x, params)
                    }
                    (SolverKind::Fgmres, Preconditioning::Custom(_)) => {
                        return Err(Failure::io(SolveCliError::Argument {
                            flag: "precision",
                            expected: "f64 or f32 with this preconditioner",
                            found: "mixed".into(),
                        }));
                    }
                    (SolverKind::Fgmres | SolverKind::Gmres, _) => {
                        solve::gmres_mixed(&mut ws, d64, d32, b, &mut x, params)
                    }
                    _ => Ok(solve_with(d64, kind, prec, b, params).1),
                };
                match rep {
                    Ok(r) => (x, r),
                    Err(e) => return Err(Failure::model(miette::miette!("{e}"))),
                }
            }
        };
        if let Some(d64) = &d64_for_check {
            let mut r = vec![Complex64::new(0.0, 0.0); b.len()];
            d64.apply(&mut r, &x);
            let mut diff = vec![Complex64::new(0.0, 0.0); b.len()];
            fermion::sub(&mut diff, b, &r);
            rep.true_residual = fermion::norm(&diff) / fermion::norm(b);
            rep.converged = rep.true_residual <= params.tol;
        }
        eprintln!(
            "rhs {k}: {} iterations, {} operator applications, {:.3} s, true residual {:.3e}",
            rep.iterations, rep.operator_applications, rep.seconds, rep.true_residual
        );
        reports.push(rep);
    }
    Ok(SolveOutcome { reports })
}

/// Reads `--gauge` with the `--gauge-dims`/`--gauge-precision` hints, noting on stderr when
/// the layout was not stated by the file.
fn read_solve_gauge(args: &SolveArgs) -> Result<io::GaugeFile, Failure> {
    let flags = super::gauge::GAUGE_HINT_FLAGS;
    let opts = super::gauge::hinted_read(true, args.gauge_dims, args.gauge_precision, flags);
    let file = io::read_gauge_with(&args.gauge, &opts).map_err(Failure::io)?;
    if let Some(note) = file.layout_note() {
        eprintln!("note: {}: {note}", args.gauge.display());
    }
    Ok(file)
}

/// `symc solve` without preconditioner.
pub fn run(args: SolveArgs) -> Result<(), Failure> {
    if let Some(dir) = &args.precond {
        let gauge = read_solve_gauge(&args)?.field;
        let prec = crate::train::precond::preconditioner_from_run(dir, &gauge)
            .map_err(|e| Failure { code: e.exit_code(), report: e.into() })?;
        return run_with(args, Preconditioning::Network(Box::new(prec)));
    }
    run_with(args, Preconditioning::Identity(IdentityPreconditioner))
}

/// `symc solve` with a given preconditioner (the entry point a `--precond` option extends).
pub fn run_with(args: SolveArgs, mut prec: Preconditioning) -> Result<(), Failure> {
    check_args(&args).map_err(Failure::io)?;
    if !matches!(prec, Preconditioning::Identity(_)) && args.solver != SolverKind::Fgmres {
        let solver = format!("{:?}", args.solver).to_lowercase();
        return Err(Failure::io(SolveCliError::PreconditionerNeedsFgmres { solver }));
    }
    if args.precision == PrecisionArg::F32 && args.tol < 1e-6 {
        eprintln!(
            "warning: an f32 operator limits the true residual to about 1e-6; --tol {:e} is \
             probably unreachable (use --precision f64)",
            args.tol
        );
    }
    let file = read_solve_gauge(&args)?;
    let gauge = file.field;
    let dims = gauge.dims();
    let plaquette = gauge.plaquette();
    let dirac = dirac_params(&args);
    let operator = build_operator(&gauge, &dirac, args.precision);
    // What actually runs: mixed precision applies to (F)GMRES only, and falls back to f64 where
    // no JIT kernel exists for the lattice.
    let precision = match (&operator, args.solver) {
        (Operator::Mixed { .. }, SolverKind::Gmres | SolverKind::Fgmres) => "mixed",
        (Operator::F32 { .. }, _) => "f32",
        _ => "f64",
    };
    let sources = random_sources(dims, args.rhs, args.seed);
    let params =
        SolveParams { tol: args.tol, restart: args.restart, max_iterations: args.max_iterations };
    eprintln!(
        "{}: {}x{}x{}x{}, plaquette {plaquette:.8}; m = {}, c_sw = {}, {} time, {} operator",
        args.gauge.display(),
        dims[0],
        dims[1],
        dims[2],
        dims[3],
        args.mass,
        args.csw,
        format!("{:?}", args.boundary).to_lowercase(),
        precision
    );
    let out = run_solves(&gauge, &dirac, &operator, args.solver, &mut prec, &sources, &params)?;

    if let Some(path) = &args.history {
        let mut csv = String::from("rhs,iteration,relative_residual\n");
        for (k, r) in out.reports.iter().enumerate() {
            for (i, h) in r.history.iter().enumerate() {
                csv.push_str(&format!("{k},{i},{h:e}\n"));
            }
        }
        io::write_atomic(path, csv.as_bytes()).map_err(Failure::io)?;
    }
    if let Some(path) = &args.plot {
        let svg = plot_history(&out.reports, &args)
            .map_err(|message| Failure::io(SolveCliError::Plot { path: path.clone(), message }))?;
        io::write_atomic(path, svg.as_bytes()).map_err(Failure::io)?;
    }

    let summary = summarise(&args, precision, dims, plaquette, &out.reports);
    match args.format {
        Style::Json => {
            let text = serde_json::to_string_pretty(&summary)
                .map_err(|e| Failure::io(miette::miette!("cannot encode the JSON summary: {e}")))?;
            println!("{text}");
        }
        Style::Text => print_text(&args, &out.reports),
    }
    let failed: Vec<&SolveReport> = out.reports.iter().filter(|r| !r.converged).collect();
    if !failed.is_empty() {
        let worst = failed.iter().map(|r| r.true_residual).fold(0.0, f64::max);
        return Err(Failure::model(SolveCliError::NotConverged {
            solver: solver_name(args.solver).into(),
            tol: args.tol,
            failed: failed.len(),
            total: out.reports.len(),
            worst,
        }));
    }
    Ok(())
}

fn solver_name(k: SolverKind) -> &'static str {
    match k {
        SolverKind::Fgmres => "fgmres",
        SolverKind::Gmres => "gmres",
        SolverKind::Bicgstab => "bicgstab",
        SolverKind::Cgne => "cgne",
    }
}

/// The JSON document: means over right-hand sides at the top level (integers for a single
/// source), totals, the worst true residual, and every per-source report without its history.
fn summarise(
    args: &SolveArgs,
    precision: &str,
    dims: [usize; 4],
    plaquette: f64,
    reports: &[SolveReport],
) -> serde_json::Value {
    let n = reports.len() as f64;
    let total_it: usize = reports.iter().map(|r| r.iterations).sum();
    let total_ops: usize = reports.iter().map(|r| r.operator_applications).sum();
    let total_prec: usize = reports.iter().map(|r| r.preconditioner_applications).sum();
    let total_s: f64 = reports.iter().map(|r| r.seconds).sum();
    let worst = reports.iter().map(|r| r.true_residual).fold(0.0, f64::max);
    let mean = |t: usize| -> serde_json::Value {
        if reports.len() == 1 { t.into() } else { (t as f64 / n).into() }
    };
    let per_rhs: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "iterations": r.iterations,
                "operator_applications": r.operator_applications,
                "preconditioner_applications": r.preconditioner_applications,
                "seconds": r.seconds,
                "true_residual": r.true_residual,
                "converged": r.converged,
            })
        })
        .collect();
    serde_json::json!({
        "gauge": args.gauge.display().to_string(),
        "dims": dims,
        "plaquette": plaquette,
        "mass": args.mass,
        "csw": args.csw,
        "boundary": format!("{:?}", args.boundary).to_lowercase(),
        "precision": precision,
        "solver": solver_name(args.solver),
        "restart": args.restart,
        "tol": args.tol,
        "rhs": reports.len(),
        "seed": args.seed,
        "iterations": mean(total_it),
        "operator_applications": mean(total_ops),
        "preconditioner_applications": mean(total_prec),
        "seconds": total_s / n,
        "seconds_total": total_s,
        "iterations_total": total_it,
        "operator_applications_total": total_ops,
        "true_residual": worst,
        "converged": reports.iter().all(|r| r.converged),
        "per_rhs": per_rhs,
    })
}

fn print_text(args: &SolveArgs, reports: &[SolveReport]) {
    let name = solver_name(args.solver);
    let restart = match args.solver {
        SolverKind::Fgmres | SolverKind::Gmres => format!("({})", args.restart),
        _ => String::new(),
    };
    println!("solver               {name}{restart}, tol {:e}", args.tol);
    for (k, r) in reports.iter().enumerate() {
        println!(
            "rhs {k:<3}              {} iterations, {} operator applications, {:.3} s, true residual {:.3e}{}",
            r.iterations,
            r.operator_applications,
            r.seconds,
            r.true_residual,
            if r.converged { "" } else { "  (NOT converged)" }
        );
    }
    let n = reports.len() as f64;
    let it: f64 = reports.iter().map(|r| r.iterations as f64).sum::<f64>() / n;
    let ops: f64 = reports.iter().map(|r| r.operator_applications as f64).sum::<f64>() / n;
    let s: f64 = reports.iter().map(|r| r.seconds).sum::<f64>();
    let worst = reports.iter().map(|r| r.true_residual).fold(0.0, f64::max);
    println!("iterations           {it:.1} (mean)");
    println!("operator applications {ops:.1} (mean)");
    println!("seconds              {s:.3} (total)");
    println!("true residual        {worst:.3e} (worst)");
}

/// The residual histories on a log scale, one line per source, as an SVG document.
fn plot_history(reports: &[SolveReport], args: &SolveArgs) -> Result<String, String> {
    use plotters::prelude::*;
    let max_it = reports.iter().map(|r| r.history.len()).max().unwrap_or(1).max(2);
    let lo = reports
        .iter()
        .flat_map(|r| r.history.iter().copied())
        .filter(|h| *h > 0.0)
        .fold(args.tol, f64::min)
        .max(1e-300)
        / 2.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let caption = format!(
            "{} m = {} c_sw = {}: relative residual",
            solver_name(args.solver),
            args.mass,
            args.csw
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0..max_it, (lo..2.0f64).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("iteration")
            .y_desc("|b - D x| / |b|")
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, r) in reports.iter().enumerate() {
            let colour = Palette99::pick(k).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    r.history.iter().enumerate().map(|(i, h)| (i, h.max(lo))),
                    colour,
                ))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Loads a configuration the way `symc solve` does (for callers such as `symc train`).
pub fn load_gauge(path: &Path) -> Result<GaugeField, Failure> {
    read_gauge(path).map(|f| f.field).map_err(Failure::io)
}
