//! `symc solve`: solve the Wilson-clover Dirac equation D x = b on a gauge configuration with
//! random normalised sources, and report what a preconditioner comparison needs (iterations,
//! operator applications, seconds, recomputed true residual, residual history).
//!
//! This file parses and prints; the work happens in the library, on the path the evaluation of
//! a trained preconditioner also takes: `runtime::operator` builds D in the requested precision,
//! `lattice::fermion::random_sources` draws the sources, `solve::batch` runs the solver (with
//! the network of `--precond RUN`, or the classical multigrid of `--precond mg`
//! (`runtime::multigrid`), as FGMRES's right preconditioner) and summarises the reports.
//! `--evenodd` solves the Schur-reduced system instead (`runtime::evenodd_solve`).

use super::Failure;
use crate::lattice::evenodd::SchurVariant;
use crate::lattice::fermion::random_sources;
use crate::lattice::gauge::GaugeField;
use crate::lattice::io;
use crate::lattice::wilson::DiracParams;
use crate::runtime::evenodd_solve::{EvenOddOptions, EvenOddSolver, ReducedSolver, SolvePrecision};
use crate::runtime::multigrid::{Multigrid, MultigridParams};
use crate::runtime::operator::{DiracOperator, Precision};
use crate::solve::batch::{self, BatchError, BatchStats, RightPreconditioner, Setup};
use crate::solve::{SolveParams, SolveReport};
use miette::Diagnostic;
use num_complex::Complex64;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
symc solve --gauge conf/8x8x8x8b6.0000id3n1 --mass -0.5 --csw 1.0\n  \
symc solve --gauge b6.nersc --mass -0.55 --csw 1 --solver gmres --restart 30 --rhs 4 --format json\n  \
symc solve --gauge b6.nersc --mass -0.58 --csw 1 --history res.csv --plot res.svg\n  \
symc solve --gauge conf/8x8x8x8b6.0000id3n1 --mass -0.555 --csw 1 --restart 30 --precond runs/ptc_precond\n  \
symc solve --gauge conf/8x8x8x8b6.0000id3n1 --mass -0.555 --csw 1 --solver gmres --evenodd\n  \
symc solve --gauge conf/8x8x8x8b6.0000id3n1 --mass -0.555 --csw 1 --precond mg --mg-blocks 4x4x4x4\n  \
symc solve --gauge bare.lime --gauge-dims 4x4x4x8 --gauge-precision f32 --mass -0.5 --csw 1\n\n\
The operator is D = (4+m) - 1/2 sum_mu [(1-g_mu) U_mu(x) d_{x+mu} + (1+g_mu) U_mu(x-mu)^+ d_{x-mu}] \
+ clover (Grid/GPT conventions, DeGrand-Rossi gammas). Sources are complex Gaussian, normalised, \
drawn from --seed. The reported true residual |b - D x|/|b| is recomputed in f64 from the \
returned solution. --precision mixed (the default for gmres and fgmres) runs every restart \
cycle in f32 on the JIT kernels' own layout and recomputes the residual in f64 at every restart \
(iterative refinement): full f64 accuracy at f32 speed. --precision f64 runs the whole solve in \
double precision on the plain reference operator; --precision f32 puts an f32 operator inside \
the f64 solver, which limits the reachable residual to about 1e-6. --evenodd solves the \
even-odd Schur complement on the even sites (clover blocks of the odd sites inverted site by \
site) on compiled kernels and reconstructs the odd sites: about 2.5x fewer iterations on vectors \
of half the length; it is not the default because trained networks and the multigrid \
precondition the full operator, and a solve should measure the system it is compared with.")]
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
    /// Right preconditioner of FGMRES: a run folder written by `symc train` (its model.sym and
    /// checkpoint.safetensors; the network is recompiled for this gauge field's volume), or the
    /// word `mg` for the classical two-level multigrid (near-null vectors, Galerkin coarse
    /// operator; write `./mg` for a run folder named mg).
    #[arg(long, value_name = "RUN_DIR|mg")]
    pub precond: Option<PathBuf>,
    /// Solve the even-odd (Schur) reduced system and reconstruct the full solution; the true
    /// residual is the full system's, recomputed in f64.
    #[arg(long)]
    pub evenodd: bool,
    /// Multigrid blocks XxYxZxT (`--precond mg`); they must tile the lattice.
    #[arg(long, value_name = "XxYxZxT", value_parser = super::gauge::parse_hint_dims, default_value = "4x4x4x4")]
    pub mg_blocks: [usize; 4],
    /// Near-null basis vectors per block (`--precond mg`).
    #[arg(long, value_name = "N", default_value_t = 12)]
    pub mg_basis: usize,
    /// Cache file of the near-null basis (`--precond mg`): reused when it was made for this
    /// configuration, mass and set-up, (re)written otherwise.
    #[arg(long, value_name = "FILE")]
    pub mg_cache: Option<PathBuf>,
    /// Processes along x, y, z, t (`PXxPYxPZxPT`) when run under `mpirun -np N` (build with
    /// `--features mpi`); their product must be N. Default: chosen from N and the lattice
    /// (the outermost of x, y, z first; t, the direction the kernels vectorise, is never split).
    #[arg(long, value_name = "PXxPYxPZxPT", value_parser = super::gauge::parse_hint_dims)]
    pub procs: Option<[usize; 4]>,
    /// Add `operator_check` to the report: norms and site-weighted sums of D b and D† b for the
    /// first source (they must not depend on the number of processes).
    #[arg(long, hide = true)]
    pub operator_check: bool,
    /// Under mpirun: after the solves, time N operator applications with and without the halo
    /// exchange (reported as `mpi.halo_bench`).
    #[arg(long, hide = true, value_name = "N", default_value_t = 0)]
    pub halo_bench: usize,
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

    #[error(
        "--evenodd solves the reduced system, but --precond {what} preconditions the full operator"
    )]
    #[diagnostic(
        code(symc::solve::evenodd_preconditioner),
        help(
            "a trained network (and the multigrid) approximates the inverse of the full \
             Wilson-clover operator, not of the Schur complement; drop --evenodd to use it, or \
             drop --precond for an even-odd solve"
        )
    )]
    EvenOddPreconditioner { what: String },

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

/// The solver of the batch for a `--solver` flag.
pub(super) fn solver_kind(k: SolverKind) -> batch::SolverKind {
    match k {
        SolverKind::Fgmres => batch::SolverKind::Fgmres,
        SolverKind::Gmres => batch::SolverKind::Gmres,
        SolverKind::Bicgstab => batch::SolverKind::Bicgstab,
        SolverKind::Cgne => batch::SolverKind::Cgne,
    }
}

/// The operator precision for a `--precision` flag.
pub(super) fn precision(p: PrecisionArg) -> Precision {
    match p {
        PrecisionArg::Mixed => Precision::Mixed,
        PrecisionArg::F32 => Precision::F32,
        PrecisionArg::F64 => Precision::F64,
    }
}

pub(super) fn check_args(a: &SolveArgs) -> Result<(), SolveCliError> {
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

/// The stderr line of one finished solve.
pub(super) fn log_solve(k: usize, r: &SolveReport) {
    eprintln!(
        "rhs {k}: {} iterations, {} operator applications, {:.3} s, true residual {:.3e}",
        r.iterations, r.operator_applications, r.seconds, r.true_residual
    )
}

/// Solves every source with the chosen solver (and FGMRES's right preconditioner, if given)
/// through `solve::batch`, one stderr line per source.
fn solve_sources(
    op: &DiracOperator,
    kind: batch::SolverKind,
    preconditioner: Option<&mut dyn RightPreconditioner>,
    sources: &[Vec<Complex64>],
    params: &SolveParams,
) -> Result<Vec<SolveReport>, Failure> {
    let mut log = |k: usize, _: usize, r: &SolveReport| log_solve(k, r);
    let setup = Setup { solver: kind, preconditioner };
    let mut reports = batch::solve_batch(op.system(), &mut [setup], sources, params, &mut log)
        .map_err(|e| match e {
            BatchError::Mixed(e) => Failure::model(miette::miette!("{e}")),
            BatchError::NoNativePreconditioner => Failure::io(SolveCliError::Argument {
                flag: "precision",
                expected: "f64 or f32 with this preconditioner",
                found: "mixed".into(),
            }),
        })?;
    Ok(reports.pop().unwrap_or_default())
}

/// Reads `--gauge` with the `--gauge-dims`/`--gauge-precision` hints, noting on stderr when
/// the layout was not stated by the file.
pub(super) fn read_solve_gauge(args: &SolveArgs) -> Result<io::GaugeFile, Failure> {
    let flags = super::gauge::GAUGE_HINT_FLAGS;
    let opts = super::gauge::hinted_read(true, args.gauge_dims, args.gauge_precision, flags);
    let file = io::read_gauge_with(&args.gauge, &opts).map_err(Failure::io)?;
    if let Some(note) = file.layout_note() {
        eprintln!("note: {}: {note}", args.gauge.display());
    }
    Ok(file)
}

/// Whether `--precond` names the classical multigrid rather than a run folder.
fn wants_multigrid(args: &SolveArgs) -> bool {
    args.precond.as_deref() == Some(Path::new("mg"))
}

/// What ran, for the report: the system, the precision, the preconditioner and its extras.
pub(super) struct Ran {
    /// `full` or `evenodd`.
    pub(super) system: &'static str,
    pub(super) precision: &'static str,
    /// `none`, `network` or `multigrid`.
    pub(super) preconditioner: &'static str,
    /// Keys merged into the JSON summary (the Schur variant, the multigrid set-up, ...).
    pub(super) extra: serde_json::Map<String, serde_json::Value>,
}

/// `symc solve`: check the flags, build the operator (`runtime::operator`) or the even-odd
/// solver (`runtime::evenodd_solve`), solve the random sources (`solve::batch`) and print the
/// reports.
pub fn run(args: SolveArgs) -> Result<(), Failure> {
    let multigrid = wants_multigrid(&args);
    // A --precond run folder is loaded before the flags are checked (a damaged folder is
    // reported first), on the configuration the solve uses.
    let mut loaded = None;
    if let Some(dir) = args.precond.as_ref().filter(|_| !multigrid) {
        let gauge = read_solve_gauge(&args)?.field;
        let prec =
            crate::train::precond::preconditioner_from_run(dir, &gauge, &dirac_params(&args))
                .map_err(|e| Failure { code: e.exit_code(), report: e.into() })?;
        loaded = Some((gauge, prec));
    }
    check_args(&args).map_err(Failure::io)?;
    if let Some(p) = args.procs.filter(|p| p.iter().product::<usize>() != 1) {
        return Err(Failure::io(SolveCliError::Argument {
            flag: "procs",
            expected: "1x1x1x1 in a single process (several processes need a build with \
                       --features mpi and mpirun -np N)",
            found: format!("{}x{}x{}x{}", p[0], p[1], p[2], p[3]),
        }));
    }
    if let (true, Some(p)) = (args.evenodd, &args.precond) {
        let what = p.display().to_string();
        return Err(Failure::io(SolveCliError::EvenOddPreconditioner { what }));
    }
    if args.precond.is_some() && args.solver != SolverKind::Fgmres {
        let solver = format!("{:?}", args.solver).to_lowercase();
        return Err(Failure::io(SolveCliError::PreconditionerNeedsFgmres { solver }));
    }
    if multigrid && args.mg_basis == 0 {
        return Err(Failure::io(SolveCliError::Argument {
            flag: "mg-basis",
            expected: "at least 1",
            found: "0".into(),
        }));
    }
    if args.precision == PrecisionArg::F32 && args.tol < 1e-6 {
        eprintln!(
            "warning: an f32 operator limits the true residual to about 1e-6; --tol {:e} is \
             probably unreachable (use --precision f64)",
            args.tol
        );
    }
    let (gauge, mut net) = match loaded {
        Some((gauge, prec)) => (gauge, Some(prec)),
        None => (read_solve_gauge(&args)?.field, None),
    };
    let dims = gauge.dims();
    let plaquette = gauge.plaquette();
    let dirac = dirac_params(&args);
    let kind = solver_kind(args.solver);
    let sources = random_sources(dims, args.rhs, args.seed);
    let params =
        SolveParams { tol: args.tol, restart: args.restart, max_iterations: args.max_iterations };
    let header = |system: &str, precision: &str| {
        eprintln!(
            "{}: {}x{}x{}x{}, plaquette {plaquette:.8}; m = {}, c_sw = {}, {} time, {system}, \
             {precision} operator",
            args.gauge.display(),
            dims[0],
            dims[1],
            dims[2],
            dims[3],
            args.mass,
            args.csw,
            format!("{:?}", args.boundary).to_lowercase(),
        )
    };
    let (reports, ran) = if args.evenodd {
        solve_evenodd(&args, &gauge, &dirac, &sources, &params, &header)?
    } else {
        let operator = DiracOperator::new(&gauge, &dirac, precision(args.precision));
        if let Some(why) = operator.fallback() {
            eprintln!("note: no JIT operator for this lattice ({why}); solving in f64");
        }
        // What actually runs: mixed precision applies to (F)GMRES only, and falls back to f64
        // where no JIT kernel exists for the lattice.
        let precision = operator.precision(kind);
        header("full system", precision);
        let mut extra = serde_json::Map::new();
        if let (true, Some(b)) = (args.operator_check, sources.first()) {
            let check = crate::runtime::distributed::operator_check(operator.system().op, b, |s| s);
            extra.insert("operator_check".into(), serde_json::json!(check));
        }
        let (reports, preconditioner) = if multigrid {
            let mut mg = build_multigrid(&args, &gauge, &dirac)?;
            mg.reset_stats();
            let reports = solve_sources(&operator, kind, Some(&mut mg), &sources, &params)?;
            extra.insert("multigrid".into(), multigrid_json(&mg, precision));
            (reports, "multigrid")
        } else if let Some(net) = net.as_mut() {
            if let Some(r) = net.net().multigrid_setup() {
                extra.insert("setup_seconds".into(), r.total_seconds.into());
                extra.insert(
                    "multigrid_setup".into(),
                    serde_json::to_value(r).unwrap_or(serde_json::Value::Null),
                );
            }
            let mut bound = operator.preconditioner(net);
            (solve_sources(&operator, kind, Some(&mut bound), &sources, &params)?, "network")
        } else {
            (solve_sources(&operator, kind, None, &sources, &params)?, "none")
        };
        (reports, Ran { system: "full", precision, preconditioner, extra })
    };
    write_outputs(&args, &ran, dims, plaquette, &reports)?;
    let failed: Vec<&SolveReport> = reports.iter().filter(|r| !r.converged).collect();
    if !failed.is_empty() {
        let worst = failed.iter().map(|r| r.true_residual).fold(0.0, f64::max);
        return Err(Failure::model(SolveCliError::NotConverged {
            solver: kind.name().into(),
            tol: args.tol,
            failed: failed.len(),
            total: reports.len(),
            worst,
        }));
    }
    Ok(())
}

/// The even-odd solve `args` ask for, and the name of the precision that runs: mixed
/// precision has f32 cycles only in the restarted solvers (as for the full system).
pub(super) fn evenodd_options(
    args: &SolveArgs,
    params: &SolveParams,
) -> (EvenOddOptions, &'static str) {
    let solver = match args.solver {
        SolverKind::Fgmres => ReducedSolver::Fgmres,
        SolverKind::Gmres => ReducedSolver::Gmres,
        SolverKind::Bicgstab => ReducedSolver::Bicgstab,
        SolverKind::Cgne => ReducedSolver::Cgne,
    };
    let (solve_precision, precision) = match args.precision {
        PrecisionArg::Mixed if solver_kind(args.solver).is_restarted() => {
            (SolvePrecision::Mixed, "mixed")
        }
        PrecisionArg::Mixed | PrecisionArg::F64 => (SolvePrecision::F64, "f64"),
        PrecisionArg::F32 => (SolvePrecision::F32, "f32"),
    };
    let variant = SchurVariant::default();
    let options = EvenOddOptions { variant, solver, precision: solve_precision, params: *params };
    (options, precision)
}

/// `--evenodd`: the Schur-reduced solve of every source on compiled kernels, with the
/// full-system true residual.
fn solve_evenodd(
    args: &SolveArgs,
    gauge: &GaugeField,
    dirac: &DiracParams,
    sources: &[Vec<Complex64>],
    params: &SolveParams,
    header: &dyn Fn(&str, &str),
) -> Result<(Vec<SolveReport>, Ran), Failure> {
    let (options, precision) = evenodd_options(args, params);
    let variant = options.variant;
    let t = std::time::Instant::now();
    let mut eo = EvenOddSolver::new(gauge, dirac, options).map_err(Failure::model)?;
    let setup = t.elapsed().as_secs_f64();
    header(&format!("even-odd system ({variant:?} Schur complement)"), precision);
    let mut extra = serde_json::Map::new();
    if let (true, Some(b)) = (args.operator_check, sources.first()) {
        let check = crate::runtime::distributed::schur_check(eo.schur64(), b, gauge.dims(), |s| s)
            .map_err(Failure::model)?;
        extra.insert("operator_check".into(), serde_json::json!(check));
    }
    let mut reports = Vec::with_capacity(sources.len());
    for (k, b) in sources.iter().enumerate() {
        let (_, report) = eo.solve(b).map_err(Failure::model)?;
        log_solve(k, &report);
        reports.push(report);
    }
    extra.insert("schur".into(), format!("{variant:?}").into());
    extra.insert("setup_seconds".into(), setup.into());
    Ok((reports, Ran { system: "evenodd", precision, preconditioner: "none", extra }))
}

/// `--precond mg`: the classical two-level multigrid of `runtime::multigrid` with the
/// reference cycle and the blocks and basis size of the flags; the set-up is reported on
/// stderr.
fn build_multigrid(
    args: &SolveArgs,
    gauge: &GaugeField,
    dirac: &DiracParams,
) -> Result<Multigrid, Failure> {
    let params = multigrid_params(args);
    let mg = match &args.mg_cache {
        Some(path) => Multigrid::build_cached(gauge, dirac, &params, path),
        None => Multigrid::build(gauge, dirac, &params),
    }
    .map_err(Failure::model)?;
    log_multigrid_setup(&params, mg.setup_report());
    Ok(mg)
}

/// The multigrid `--precond mg` builds: the reference cycle with the flags' blocks and basis.
pub(super) fn multigrid_params(args: &SolveArgs) -> MultigridParams {
    MultigridParams {
        blocks: args.mg_blocks,
        n_basis: args.mg_basis,
        ..MultigridParams::reference()
    }
}

/// The multigrid's set-up on stderr.
pub(super) fn log_multigrid_setup(
    params: &MultigridParams,
    r: &crate::runtime::multigrid::SetupReport,
) {
    let its: usize = r.near_null_iterations.iter().sum();
    eprintln!(
        "multigrid: blocks {}x{}x{}x{}, {} basis vectors; set-up {:.3} s ({} near-null \
         iterations, {:.3} s; basis {}; coarse check {} iterations)",
        params.blocks[0],
        params.blocks[1],
        params.blocks[2],
        params.blocks[3],
        params.n_basis,
        r.total_seconds,
        its,
        r.near_null_seconds,
        match &r.source {
            crate::runtime::multigrid::BasisSource::Generated => "generated".to_string(),
            crate::runtime::multigrid::BasisSource::Cached { path } =>
                format!("from {}", path.display()),
            crate::runtime::multigrid::BasisSource::Regenerated { reason, .. } =>
                format!("regenerated: {reason}"),
            crate::runtime::multigrid::BasisSource::Pooling => "none (pooling)".to_string(),
        },
        r.coarse_check_iterations,
    );
}

/// The multigrid's set-up and the work inside its cycles (of the precision that ran).
fn multigrid_json(mg: &Multigrid, precision: &str) -> serde_json::Value {
    let (c64, c32) = mg.stats();
    let cycles = if precision == "mixed" { c32 } else { c64 };
    serde_json::json!({
        "params": mg.params(),
        "setup": mg.setup_report(),
        "setup_seconds": mg.setup_report().total_seconds,
        "cycles": cycles,
    })
}

/// The residual history (`--history`), its plot (`--plot`) and the report on stdout.
pub(super) fn write_outputs(
    args: &SolveArgs,
    ran: &Ran,
    dims: [usize; 4],
    plaquette: f64,
    reports: &[SolveReport],
) -> Result<(), Failure> {
    if let Some(path) = &args.history {
        let mut csv = String::from("rhs,iteration,relative_residual\n");
        for (k, r) in reports.iter().enumerate() {
            for (i, h) in r.history.iter().enumerate() {
                csv.push_str(&format!("{k},{i},{h:e}\n"));
            }
        }
        io::write_atomic(path, csv.as_bytes()).map_err(Failure::io)?;
    }
    if let Some(path) = &args.plot {
        let svg = plot_history(reports, args)
            .map_err(|message| Failure::io(SolveCliError::Plot { path: path.clone(), message }))?;
        io::write_atomic(path, svg.as_bytes()).map_err(Failure::io)?;
    }
    match args.format {
        Style::Json => {
            let summary = summarise(args, ran, dims, plaquette, reports);
            let text = serde_json::to_string_pretty(&summary)
                .map_err(|e| Failure::io(miette::miette!("cannot encode the JSON summary: {e}")))?;
            println!("{text}");
        }
        Style::Text => print_text(args, ran, reports),
    }
    Ok(())
}

/// The JSON document: means over right-hand sides at the top level (integers for a single
/// source), totals, the worst true residual, and every per-source report without its history.
fn summarise(
    args: &SolveArgs,
    ran: &Ran,
    dims: [usize; 4],
    plaquette: f64,
    reports: &[SolveReport],
) -> serde_json::Value {
    let stats = BatchStats::from_reports(reports);
    let mean = |t: usize| -> serde_json::Value {
        if reports.len() == 1 { t.into() } else { (t as f64 / reports.len() as f64).into() }
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
    let mut doc = serde_json::json!({
        "gauge": args.gauge.display().to_string(),
        "dims": dims,
        "plaquette": plaquette,
        "mass": args.mass,
        "csw": args.csw,
        "boundary": format!("{:?}", args.boundary).to_lowercase(),
        "system": ran.system,
        "precision": ran.precision,
        "preconditioner": ran.preconditioner,
        "solver": solver_kind(args.solver).name(),
        "restart": args.restart,
        "tol": args.tol,
        "rhs": reports.len(),
        "seed": args.seed,
        "iterations": mean(stats.iterations),
        "operator_applications": mean(stats.operator_applications),
        "preconditioner_applications": mean(stats.preconditioner_applications),
        "seconds": stats.mean_seconds(),
        "seconds_total": stats.seconds,
        "iterations_total": stats.iterations,
        "operator_applications_total": stats.operator_applications,
        "true_residual": stats.worst_true_residual,
        "converged": stats.converged,
        "per_rhs": per_rhs,
    });
    if let Some(map) = doc.as_object_mut() {
        map.extend(ran.extra.clone());
    }
    doc
}

fn print_text(args: &SolveArgs, ran: &Ran, reports: &[SolveReport]) {
    let kind = solver_kind(args.solver);
    let restart = if kind.is_restarted() { format!("({})", args.restart) } else { String::new() };
    println!("solver               {}{restart}, tol {:e}", kind.name(), args.tol);
    println!(
        "system               {}, {} precision, preconditioner {}",
        ran.system, ran.precision, ran.preconditioner
    );
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
    let stats = BatchStats::from_reports(reports);
    println!("iterations           {:.1} (mean)", stats.mean_iterations());
    println!("operator applications {:.1} (mean)", stats.mean_operator_applications());
    println!("seconds              {:.3} (total)", stats.seconds);
    println!("true residual        {:.3e} (worst)", stats.worst_true_residual);
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
            solver_kind(args.solver).name(),
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
