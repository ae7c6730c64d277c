//! `symc` under `mpirun -np N` (feature `mpi`): which process does what, and who prints.
//!
//! Without a launcher (or with one process) this is the plain CLI. With several processes,
//! `symc solve` runs decomposed over all of them (`runtime::distributed`), `gauge generate`
//! shares the link updates of every heatbath class out over them (the same field, bit for bit),
//! `symc train` of a classifier trains data-parallel (each process the gradient of its share of
//! every batch, `train::classify::train_parallel`), a preconditioner split over them (each its
//! sub-lattice, `train::precond::share`, near-null multigrid networks (coarse solve or coarse
//! layers), site-dependent (`local`) weights and the two-term loss included; pooled levels and
//! `loss coarse` on rank 0), and
//! `solve --precond mg` runs
//! the distributed multigrid (`runtime::distributed::multigrid`);
//! every other command runs on rank 0 alone (so `gauge info/convert` print and write exactly what
//! one process would) while the other ranks wait for its exit code. Rank 0 alone prints results,
//! logs and diagnostics and writes files; all processes exit with the same code, and a check
//! every process makes identically (flags, the process grid) fails on all of them at once, so
//! no process is left waiting for another.

use super::gauge::GaugeCommand;
use super::solve::{self as cli_solve, Ran, SolveArgs};
use super::{Cli, Command, Failure};
use crate::lattice::fermion::random_sources;
use crate::runtime::distributed::comm::{Comm, Launch};
use crate::runtime::distributed::data_parallel::MpiDataParallel;
use crate::runtime::distributed::heatbath::MpiLinkShare;
use crate::runtime::distributed::solve::{DistributedSolve, broadcast_gauge};
use crate::train::precond::share::{MpiLattice, split_preconditioner};

/// Runs `cli`, under MPI when launched by `mpirun`; returns the exit code.
pub fn main(cli: Cli) -> u8 {
    let Some(launch) = Launch::from_env() else {
        return report(super::run(cli), true);
    };
    let world = launch.world();
    if world.size() == 1 {
        return report(super::run(cli), true);
    }
    match cli.command {
        Command::Solve(args) => solve(world, args),
        // Every process updates its share of the links; rank 0 writes and prints.
        Command::Gauge(GaugeCommand::Generate(args)) => {
            let share = MpiLinkShare::new(world);
            let code = report(
                super::gauge::generate_shared(args, &share, world.is_root()),
                world.is_root(),
            );
            world.broadcast_u64(code as u64) as u8
        }
        Command::Train(args) => {
            let lattice = MpiLattice::new(world, args.procs);
            let result = super::train::run_in(args, &MpiDataParallel::new(world), Some(&lattice));
            agreed_exit(world, result)
        }
        command => {
            let code = if world.is_root() { report(super::run(Cli { command }), true) } else { 0 };
            world.broadcast_u64(code as u64) as u8
        }
    }
}

/// Prints a failure (when `print`) and gives its exit code.
fn report(result: Result<(), Failure>, print: bool) -> u8 {
    match result {
        Ok(()) => 0,
        Err(failure) => {
            if print {
                eprintln!("{:?}", failure.report);
            }
            failure.code
        }
    }
}

/// The worst exit code of every process's `result`, the same on all. The first process with a
/// failure of its own prints it; a process that stopped only because another one failed
/// (`symc::train::elsewhere`) prints nothing, so one failure is reported once.
fn agreed_exit(world: &Comm, result: Result<(), Failure>) -> u8 {
    let (code, own) = match &result {
        Ok(()) => (0u8, false),
        Err(f) => {
            let elsewhere =
                f.report.code().is_some_and(|c| c.to_string() == "symc::train::elsewhere");
            (f.code.max(1), !elsewhere)
        }
    };
    let all = world.gather_u64((u64::from(code) << 1) | u64::from(own));
    let first_own = all.iter().position(|v| v & 1 == 1);
    let first_failed = all.iter().position(|v| v >> 1 != 0);
    if let Err(f) = result
        && first_own.or(first_failed) == Some(world.rank())
    {
        eprintln!("{:?}", f.report);
    }
    all.iter().map(|v| (v >> 1) as u8).max().unwrap_or(0)
}

/// `symc solve` decomposed over every process of the launch.
fn solve(world: &Comm, args: SolveArgs) -> u8 {
    let root = world.is_root();
    // Checks every process makes alike: each fails (and only rank 0 prints) together.
    let wants_mg = args.precond.as_deref() == Some(std::path::Path::new("mg"));
    let checked =
        cli_solve::check_args(&args).map_err(Failure::io).and_then(|()| match &args.precond {
            Some(p) if args.evenodd => {
                let what = p.display().to_string();
                Err(Failure::io(cli_solve::SolveCliError::EvenOddPreconditioner { what }))
            }
            Some(_) if args.solver != cli_solve::SolverKind::Fgmres => {
                let solver = format!("{:?}", args.solver).to_lowercase();
                Err(Failure::io(cli_solve::SolveCliError::PreconditionerNeedsFgmres { solver }))
            }
            _ => Ok(()),
        });
    if let Err(f) = checked {
        return report(Err(f), root);
    }
    // Rank 0 reads and checks the file; the others learn whether it worked.
    let file = if root { Some(cli_solve::read_solve_gauge(&args)) } else { None };
    let code = match &file {
        Some(Err(f)) => f.code,
        _ => 0,
    };
    let status = world.broadcast_u64(code as u64) as u8;
    if status != 0 {
        return match file {
            Some(Err(f)) => report(Err(f), true),
            _ => status,
        };
    }
    let field = file.and_then(Result::ok).map(|f| f.field);
    let plaquette = field.as_ref().map_or(0.0, |g| g.plaquette());
    let gauge = broadcast_gauge(world, field.as_ref());
    drop(field);
    let dims = gauge.dims();
    let kind = cli_solve::solver_kind(args.solver);
    let solve_params = crate::solve::SolveParams {
        tol: args.tol,
        restart: args.restart,
        max_iterations: args.max_iterations,
    };
    let evenodd = args.evenodd.then(|| cli_solve::evenodd_options(&args, &solve_params).0);
    let dist = DistributedSolve {
        params: &cli_solve::dirac_params(&args),
        procs: args.procs,
        solver: kind,
        precision: cli_solve::precision(args.precision),
        solve: solve_params,
        evenodd,
        operator_check: args.operator_check,
        halo_bench: args.halo_bench,
        multigrid: wants_mg.then(|| cli_solve::multigrid_params(&args)),
        multigrid_cache: args.mg_cache.as_deref().filter(|_| wants_mg),
    };
    let grid = match dist.grid(world, dims) {
        Ok(g) => g,
        Err(e) => {
            let f = Failure::io(miette::miette!(
                code = "symc::solve::process_grid",
                help = "give --procs PXxPYxPZxPT whose product is the number of processes and \
                        which divides x, y and z of the lattice",
                "{e}"
            ));
            return report(Err(f), root);
        }
    };
    // A trained network (`--precond RUN_DIR`), split like the operator; every process loads
    // it and they agree on whether that worked before the solves start.
    let lattice = MpiLattice::new(world, args.procs);
    let mut precond = None;
    if let Some(dir) = args.precond.as_ref().filter(|_| !wants_mg) {
        let loaded = split_preconditioner(dir, &gauge, dist.params, &lattice, &grid)
            .map_err(|e| Failure { code: e.exit_code(), report: e.into() });
        let code = loaded.as_ref().err().map_or(0, |f| f.code.max(1));
        let all = world.gather_u64(code as u64);
        let worst = all.iter().copied().max().unwrap_or(0) as u8;
        // The first process that failed says why; the others exit with its code.
        let first = all.iter().position(|&c| c != 0);
        match loaded {
            Ok(p) if worst == 0 => precond = Some(p),
            Ok(_) => return worst,
            Err(f) => {
                report(Err(f), first == Some(world.rank()));
                return worst;
            }
        }
    }
    let sources = random_sources(dims, args.rhs, args.seed);
    if root {
        let p = grid.procs;
        let l = grid.local;
        eprintln!(
            "{}: {}x{}x{}x{}, plaquette {plaquette:.8}; m = {}, c_sw = {}, {} time; {} processes \
             ({}x{}x{}x{}), {}x{}x{}x{} sites each",
            args.gauge.display(),
            dims[0],
            dims[1],
            dims[2],
            dims[3],
            args.mass,
            args.csw,
            format!("{:?}", args.boundary).to_lowercase(),
            grid.ranks(),
            p[0],
            p[1],
            p[2],
            p[3],
            l[0],
            l[1],
            l[2],
            l[3],
        );
    }
    let mut setup_log = |r: &crate::runtime::multigrid::SetupReport| {
        if let (true, Some(params)) = (root, &dist.multigrid) {
            cli_solve::log_multigrid_setup(params, r);
        }
    };
    let mut log = |k: usize, r: &crate::solve::SolveReport| {
        if root {
            cli_solve::log_solve(k, r)
        }
    };
    let (reports, precision, run) = match dist.run(
        world,
        &grid,
        &gauge,
        &sources,
        precond.as_mut(),
        &mut setup_log,
        &mut log,
    ) {
        Ok(r) => r,
        Err(e) => return report(Err(Failure::model(miette::miette!("{e}"))), root),
    };
    let mut extra = serde_json::Map::new();
    if let Some(check) = run.operator_check {
        extra.insert("operator_check".into(), serde_json::json!(check));
    }
    if let (Some(mg), Some(params)) = (&run.multigrid, &dist.multigrid) {
        extra.insert(
            "multigrid".into(),
            serde_json::json!({
                "params": params,
                "setup": mg.setup,
                "setup_seconds": mg.setup.total_seconds,
                "cycles": mg.cycles,
            }),
        );
    }
    extra.insert("mpi".into(), serde_json::json!(run));
    let preconditioner = match (&precond, wants_mg) {
        (Some(_), _) => "network",
        (None, true) => "mg",
        (None, false) => "none",
    };
    if let Some(o) = &dist.evenodd {
        extra.insert("schur".into(), format!("{:?}", o.variant).into());
    }
    let system = if dist.evenodd.is_some() { "evenodd" } else { "full" };
    let ran = Ran { system, precision, preconditioner, extra };
    let mut code = 0;
    if root {
        if let Err(f) = cli_solve::write_outputs(&args, &ran, dims, plaquette, &reports) {
            code = report(Err(f), true);
        }
        if args.format == cli_solve::Style::Text {
            let h = &run.halo;
            println!(
                "processes            {} ({}x{}x{}x{}), halo {} bytes per application, {:.1} us \
                 per application ({:.1} us waiting)",
                run.ranks,
                run.procs[0],
                run.procs[1],
                run.procs[2],
                run.procs[3],
                h.bytes_per_application,
                1e6 * h.seconds / h.applications.max(1) as f64,
                1e6 * h.wait_seconds / h.applications.max(1) as f64,
            );
        }
    }
    let failed = reports.iter().filter(|r| !r.converged).count();
    if code == 0 && failed > 0 {
        let worst = reports.iter().map(|r| r.true_residual).fold(0.0, f64::max);
        let e = cli_solve::SolveCliError::NotConverged {
            solver: kind.name().into(),
            tol: args.tol,
            failed,
            total: reports.len(),
            worst,
        };
        code = report(Err(Failure::model(e)), root);
    }
    code
}
