//! Training a gauge network as a preconditioner for the Wilson-clover Dirac operator, and the
//! run's self-evaluation (FGMRES with and without the trained network).
//!
//! This is the product's main job (`symc train models/ptc_precond.sym`, a coarse level plus
//! one PTC smoother layer; the single-level networks train the same way). The network M is
//! trained so that M D ≈ 1 on random vectors (models.md §2.3): each step draws a Gaussian v,
//! forms b = D v and minimises ‖M b − v‖²/‖b‖² with Adam (on Re/Im) or SGD. The optional
//! *filtered* loss (models.md §3.2) replaces v by ṽ = N GMRES iterations on D ṽ = 0 from a
//! random start, which stresses the low modes that dominate the solve. The *two-term* loss of
//! the paper's full multigrid model adds ‖M v₂ − D⁻¹ v₂‖² with D⁻¹ v₂ from a multigrid solve
//! (`lowmodes.rs`). `loss coarse` trains a near-null level's coarse layers alone on the
//! Galerkin operator D_c (`coarse.rs`).
//!
//! The pipeline of a run, file by file:
//! - `spec.rs`: what the model must declare ([`precond_spec`]) and its Dirac parameters;
//! - `gauge.rs`: the training gauge field (shipped, cached, generated or loaded);
//! - `pairs.rs`: the training pairs and the loss ([`training_pair`], [`pair_loss_grad`]);
//! - `lowmodes.rs`: the low-mode pairs (v₂, D⁻¹ v₂) of the two-term loss ([`LowModeSolver`]);
//! - `training.rs`: set-up, resume, the step loop with its divergence rule, checkpoints;
//! - `coarse.rs`: `loss coarse` (the coarse model on D_c) and its coarse FGMRES comparison;
//! - `compare.rs`: the closing FGMRES comparison ([`compare_solves`], [`SolveComparison`]);
//! - `share.rs`: the same run split over the processes of an MPI launch ([`share::LatticeShare`]);
//! - `rundir.rs`: the run folder's files ([`LOSS_FILE`], [`read_summary`], [`load_run`]).
//!
//! Every step draws its vectors from its own ChaCha stream (seed, step), so a resumed run sees
//! exactly the vectors an uninterrupted one would, and its loss trajectory is identical. A run
//! whose loss diverges (see `train::divergence`) stops with [`PrecondError::Diverged`], keeps
//! its last good checkpoint and says `"status": "diverged"` in its summary.

mod coarse;
mod compare;
mod gauge;
mod lowmodes;
mod pairs;
mod rundir;
pub mod share;
mod spec;
mod training;

pub use crate::lattice::fermion::random_sources as random_rhs;
pub use compare::{SolveComparison, SolveRecord, SolveSide, compare_solves};
pub use gauge::{TrainingGauge, gauge_cache_dir, shipped_gauge_name, training_gauge};
pub use lowmodes::{LOW_MODE_BASIS_FILE, LowModeSolver, LowModeStats};
pub use pairs::{
    NativePair, cast, pair_loss, pair_loss_grad, params_as, training_pair, training_pair_on,
};
pub use rundir::{
    BASIS_FILE, CHECKPOINT_FILE, GaugeRecord, LOSS_FILE, LoadedRun, LossRow, MODEL_FILE,
    PrecondSummary, SUMMARY_FILE, load_run, load_run_for, loss_csv, loss_row_as_epoch,
    preconditioner_from_run, read_loss_csv, read_summary, retarget,
};
pub use spec::{PrecondSpec, dirac_params, dirac_params_of, is_fermion_network, precond_spec};

use crate::ir::Graph;
use crate::lattice::heatbath::HeatbathError;
use crate::lattice::io::GaugeIoError;
use crate::runtime::RuntimeError;
use crate::runtime::multigrid_net::MultigridNetError;
use crate::runtime::preconditioner::NetPreconditioner;
use crate::train::checkpoint::CheckpointError;
use std::path::PathBuf;

/// Problems of a preconditioner training run or of loading a trained one.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PrecondError {
    #[error("model `{model}` is not a preconditioner: {what}")]
    #[diagnostic(
        code(symc::precond::model),
        help(
            "a preconditioner maps one fermion field to one fermion field and has a `train` \
             block with `gauge`, `operator` and `loss preconditioner` (see models/ptc_precond.sym)"
        )
    )]
    NotPreconditioner { model: String, what: String },

    #[error("gauge field {source_desc} is {found:?}, the model `{model}` needs {expected:?}")]
    #[diagnostic(
        code(symc::precond::gauge_dims),
        help("use a configuration of the model's lattice, or change the `lattice` line")
    )]
    GaugeDims { source_desc: String, model: String, expected: [usize; 4], found: [usize; 4] },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Gauge(#[from] GaugeIoError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Heatbath(#[from] HeatbathError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Runtime(#[from] RuntimeError),

    /// The set-up of a multigrid network failed (a singular coarse operator, a bad cache).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Multigrid(#[from] MultigridNetError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Checkpoint(#[from] CheckpointError),

    #[error("cannot write {}: {source}", path.display())]
    #[diagnostic(code(symc::precond::write), help("check that the run folder is writable"))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot read {}: {message}", path.display())]
    #[diagnostic(
        code(symc::precond::run_folder),
        help("a run folder is written by `symc train MODEL.sym --out DIR`")
    )]
    RunFolder { path: PathBuf, message: String },

    /// The loss diverged at `step` (see `train::divergence`); the checkpoint of step `kept`
    /// is the one on disk.
    #[error(
        "training diverged at step {step}: {what}; stopped, the last good checkpoint (step \
         {kept}) is kept in {}",
        dir.display()
    )]
    #[diagnostic(
        code(symc::precond::diverged),
        help(
            "lower the learning rate in the `optimizer` line (10 times smaller is a good first \
             try), or move the mass away from critical"
        )
    )]
    Diverged { step: u64, loss: f64, what: String, kept: u64, dir: PathBuf },

    /// A solve of the low-mode term did not reach its tolerance.
    #[error(
        "the low-mode solve of step {step} stopped at relative residual {residual:.2e} after \
         {iterations} iterations (the loss asks for {tol:e})"
    )]
    #[diagnostic(
        code(symc::precond::low_modes),
        help(
            "the operator is (nearly) singular at this mass: move the mass away from critical, \
             or loosen `tol` in `loss preconditioner(low_modes = ..., tol = ...)`"
        )
    )]
    LowModeSolve { step: u64, residual: f64, tol: f64, iterations: usize },

    /// A kernel failed inside a low-mode solve.
    #[error("the low-mode solve failed: {0}")]
    #[diagnostic(code(symc::precond::low_modes))]
    LowModeKernel(String),

    #[error("cannot draw the loss plot: {0}")]
    #[diagnostic(code(symc::precond::plot))]
    Plot(String),

    /// The process grid of a split run does not fit the lattice (checked before anything is
    /// written).
    #[error("the process grid does not fit the model's lattice")]
    #[diagnostic(
        code(symc::train::process_grid),
        help(
            "give --procs PXxPYxPZxPT whose product is the number of processes and which divides x, y and z of the lattice (t is never split), or drop --procs"
        )
    )]
    Grid(#[from] crate::runtime::distributed::grid::GridError),

    /// A network that cannot run split over processes (`share::refusal`).
    #[error("the network `{model}` cannot run split over processes yet: {why}")]
    #[diagnostic(
        code(symc::precond::not_split),
        help(
            "run this solve in one process (without mpirun); networks of gauge layers with global weights, alone or after a near-null multigrid level with a coarse solve, run split"
        )
    )]
    NotSplit { model: String, why: String },

    /// Another process of a split run failed (it reports why); this one stops with it.
    #[error("another process of the run failed (exit code {code})")]
    #[diagnostic(code(symc::train::elsewhere))]
    Elsewhere { code: u8 },
}

impl PrecondError {
    /// 1 for a problem of the model or run (divergence, unsuitable model), 2 for I/O.
    pub fn exit_code(&self) -> u8 {
        match self {
            PrecondError::NotPreconditioner { .. }
            | PrecondError::NotSplit { .. }
            | PrecondError::GaugeDims { .. }
            | PrecondError::Diverged { .. }
            | PrecondError::LowModeSolve { .. }
            | PrecondError::LowModeKernel(_)
            | PrecondError::Runtime(_)
            | PrecondError::Multigrid(MultigridNetError::Runtime(_)) => 1,
            PrecondError::Elsewhere { code } => *code,
            PrecondError::Multigrid(MultigridNetError::Multigrid(e)) => match e {
                crate::runtime::multigrid::MultigridError::Cache(_) => 2,
                _ => 1,
            },
            _ => 2,
        }
    }
}

/// Options of [`run`] beyond the model itself.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run folder (created; with `resume` it must hold a previous run of the same model).
    pub out: PathBuf,
    /// Continue the run in `out` from its checkpoint.
    pub resume: bool,
    /// Override the number of steps of the `train` block.
    pub steps: Option<usize>,
    /// The `.sym` file (copied into the run folder; its folder resolves relative paths).
    pub model_file: Option<PathBuf>,
    /// The model source text (written as `model.sym`).
    pub source: Option<String>,
    /// Save the checkpoint, loss CSV and summary every this many steps (0 = 10 % of the run).
    pub checkpoint_every: usize,
    /// Progress bar and log lines on stderr.
    pub progress: bool,
    /// Run the FGMRES comparison at the end.
    pub evaluate: bool,
    /// Override the number of right-hand sides of the evaluation.
    pub rhs: Option<usize>,
    /// How to read a `gauge load(...)` file (layout hints from the command line).
    pub gauge_read: crate::lattice::io::ReadOptions,
    /// Warm start: run folders (or checkpoint files) whose weights of the same name are
    /// copied into the fresh weights, in order (`train::checkpoint::warm_start`).
    pub init: Vec<PathBuf>,
}

impl RunOptions {
    /// Defaults for a run into `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        RunOptions {
            out: out.into(),
            resume: false,
            steps: None,
            model_file: None,
            source: None,
            checkpoint_every: 0,
            progress: false,
            evaluate: true,
            rhs: None,
            gauge_read: crate::lattice::io::ReadOptions::default(),
            init: Vec::new(),
        }
    }
}

/// Trains the preconditioner described by `graph` (a fermion network with a `train` block)
/// into `opts.out`, then evaluates it. Returns the summary (also written to the folder).
pub fn run(graph: &Graph, opts: &RunOptions) -> Result<PrecondSummary, PrecondError> {
    run_split(graph, opts, None)
}

/// [`run`], split over the processes of `share` when given (every process calls it; the
/// network must pass [`share::refusal`]). Rank 0 writes the folder; every process returns
/// the same summary.
pub fn run_split(
    graph: &Graph,
    opts: &RunOptions,
    share: Option<&dyn share::LatticeShare>,
) -> Result<PrecondSummary, PrecondError> {
    let setup = training::set_up(graph, opts, share)?;
    let mut state = training::start(graph, opts, &setup)?;
    let mut summary = training::new_summary(graph, opts, &setup, &state);
    training::train_steps(graph, opts, &setup, &mut state, &mut summary)?;
    training::finish(graph, opts, &setup, &state, &mut summary)?;
    if opts.evaluate {
        let eval = compare::Evaluation::new(setup.spec.eval, opts.rhs, setup.spec.seed);
        if let Some(c) = &setup.coarse {
            // A coarse run is judged on the system it trained on: D_c with and without M_c.
            // The whole network's fine solve is left out: its fine layers are untrained (a
            // coarse run leaves them at their initial values), so it would measure nothing but
            // the initialisation, at the cost of the unpreconditioned solve.
            let cmp = c.compare(&state.params, &eval, opts.progress)?;
            if opts.progress {
                eprintln!(
                    "coarse solve (D_c): {:.1} -> {:.1} iterations ({:.2}x)",
                    cmp.unpreconditioned.iterations,
                    cmp.preconditioned.iterations,
                    cmp.iteration_ratio
                );
            }
            summary.solve = Some(cmp);
        } else {
            let mut prec = NetPreconditioner::new(setup.net, state.params)?;
            let cmp = match (share, &setup.split) {
                (Some(share), Some(split)) => {
                    let (sp, n) = (&eval.params, eval.rhs);
                    if opts.progress {
                        eprintln!(
                            "evaluating: FGMRES({}) to {:e} on {n} random right-hand sides, m = {}, \
                             c_sw = {}, split over {} processes",
                            sp.restart,
                            sp.tol,
                            setup.dirac.mass,
                            setup.dirac.csw,
                            split.grid.ranks()
                        );
                    }
                    let rhs: Vec<_> = random_rhs(setup.gauge.field.dims(), n, eval.seed)
                        .iter()
                        .map(|b| split.grid.local_part(b, 12))
                        .collect();
                    share.compare(
                        &split.grid,
                        &setup.gauge.field,
                        &setup.dirac,
                        &mut prec,
                        &rhs,
                        sp,
                        eval.seed,
                        opts.progress,
                    )?
                }
                _ => compare::evaluate(
                    &eval,
                    &setup.gauge.field,
                    &setup.dirac,
                    &mut prec,
                    opts.progress,
                )?,
            };
            summary.solve = Some(cmp);
        }
        // The set-up of a multigrid network ran once, before training; its cost is reported
        // here, apart from the solves (it is amortised over every right-hand side).
    }
    summary.status = "completed".into();
    if setup.root {
        rundir::write_summary(&opts.out, &summary)?;
    }
    Ok(summary)
}
