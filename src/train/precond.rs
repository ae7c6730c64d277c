//! Training a gauge network as a preconditioner for the Wilson-clover Dirac operator, and the
//! run's self-evaluation (FGMRES with and without the trained network).
//!
//! This is the product's main job (`symc train models/ptc_precond.sym`). The network M is
//! trained so that M D ≈ 1 on random vectors (models.md §2.3): each step draws a Gaussian v,
//! forms b = D v and minimises ‖M b − v‖²/‖b‖² with Adam (on Re/Im) or SGD. The optional
//! *filtered* loss (models.md §3.2) replaces v by ṽ = N GMRES iterations on D ṽ = 0 from a
//! random start, which stresses the low modes that dominate the solve.
//!
//! Every step draws its vectors from its own ChaCha stream (seed, step), so a resumed run sees
//! exactly the vectors an uninterrupted one would, and its loss trajectory is identical.
//!
//! The run folder holds `checkpoint.safetensors` (weights + optimiser state, written atomically
//! every few steps and at the end), `loss.csv` (step, loss, seconds), the loss plot, a copy of
//! the model source (`model.sym`) and `summary.json` with the solve comparison under `solve`.
//! [`load_run`] rebuilds the trained network from such a folder for any other gauge field or
//! volume (`symc solve --precond RUN_DIR`).

use crate::ir::{
    EvalSpec, GaugeSource, Graph, LossSpec, OperatorSpec, Schedule, TrainLength, TrainSpec,
    ValueType,
};
use crate::lattice::Real;
use crate::lattice::fermion::{self, FermionField, cast_slice};
use crate::lattice::gauge::GaugeField;
use crate::lattice::heatbath::{self, HeatbathError};
use crate::lattice::io::{GaugeIoError, ReadOptions, read_gauge, read_gauge_with};
use crate::lattice::wilson::DiracParams;
use crate::runtime::dirac::{DiracOptions, JitWilsonClover};
use crate::runtime::init::init_params;
use crate::runtime::preconditioner::NetPreconditioner;
use crate::runtime::{FermionNet, RuntimeError, compile_fermion_net};
use crate::solve::{self, LinearOperator, SolveParams, SolveReport};
use crate::train::checkpoint::{self, CheckpointError};
use crate::train::optim::{self, Optimizer};
use crate::train::plot::{self, Curve};
use crate::train::runlog::EpochRow;
use num_complex::{Complex, Complex64};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// File names inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const LOSS_FILE: &str = "loss.csv";
pub const SUMMARY_FILE: &str = "summary.json";
pub const MODEL_FILE: &str = "model.sym";

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

    #[error(
        "training diverged at step {step}: the loss is {loss} (non-finite loss or gradient); \
         stopped, the last good checkpoint is kept in {}",
        dir.display()
    )]
    #[diagnostic(
        code(symc::precond::diverged),
        help(
            "lower the learning rate in the `optimizer` line, or move the mass away from critical"
        )
    )]
    Diverged { step: u64, loss: f64, dir: PathBuf },

    #[error("cannot draw the loss plot: {0}")]
    #[diagnostic(code(symc::precond::plot))]
    Plot(String),
}

impl PrecondError {
    /// 1 for a problem of the model or run (divergence, unsuitable model), 2 for I/O.
    pub fn exit_code(&self) -> u8 {
        match self {
            PrecondError::NotPreconditioner { .. }
            | PrecondError::GaugeDims { .. }
            | PrecondError::Diverged { .. }
            | PrecondError::Runtime(_) => 1,
            _ => 2,
        }
    }
}

/// Whether `graph` is a fermion-to-fermion network (what [`run`] trains).
pub fn is_fermion_network(graph: &Graph) -> bool {
    matches!(graph.values.first(), Some(ValueType::Fermion { .. }))
}

/// The pieces of a preconditioner `train` block, checked.
#[derive(Clone, Debug)]
pub struct PrecondSpec {
    pub dims: [usize; 4],
    pub gauge: GaugeSource,
    pub operator: OperatorSpec,
    pub loss: LossSpec,
    pub steps: usize,
    pub seed: u64,
    pub train: TrainSpec,
    pub eval: (f64, usize, usize, usize),
}

/// Checks that `graph` is a trainable preconditioner and extracts its training parameters.
pub fn precond_spec(graph: &Graph) -> Result<PrecondSpec, PrecondError> {
    let bad = |what: &str| PrecondError::NotPreconditioner {
        model: graph.name.clone(),
        what: what.into(),
    };
    let features = |v: &ValueType| match v {
        ValueType::Fermion { features, .. } => Some(*features),
        ValueType::Real { .. } => None,
    };
    if graph.values.first().and_then(features) != Some(1) {
        return Err(bad("its input is not one fermion field"));
    }
    if features(graph.value(graph.output)) != Some(1) {
        return Err(bad("its output is not one fermion field"));
    }
    let dims = graph.lattice.as_ref().ok_or_else(|| bad("it has no `lattice`"))?.dims;
    let t = graph.train.as_ref().ok_or_else(|| bad("it has no `train` block"))?;
    let gauge = t.gauge.clone().ok_or_else(|| bad("the `train` block has no `gauge` line"))?;
    let operator =
        t.operator.clone().ok_or_else(|| bad("the `train` block has no `operator` line"))?;
    match t.loss {
        LossSpec::Preconditioner | LossSpec::Filtered { .. } => {}
        _ => return Err(bad("its loss is not `preconditioner` or `filtered`")),
    }
    let steps = match t.length {
        TrainLength::Steps(s) => s,
        TrainLength::Epochs(_) => return Err(bad("it is trained in `epochs`, not `steps`")),
    };
    let eval = match t.evaluate {
        Some(EvalSpec::Fgmres { tol, restart, rhs, max_iterations }) => {
            (tol, restart, rhs, max_iterations)
        }
        _ => (1e-8, 30, 3, 10_000),
    };
    Ok(PrecondSpec {
        dims,
        gauge,
        operator,
        loss: t.loss.clone(),
        steps,
        seed: t.seed,
        train: t.clone(),
        eval,
    })
}

/// The Dirac parameters of an `operator` line (boundary angles in units of π).
pub fn dirac_params(op: &OperatorSpec) -> DiracParams {
    let mut p = DiracParams::periodic(op.mass, op.csw);
    for (mu, angle) in op.boundary.iter().enumerate() {
        p.boundary_phases[mu] = Complex64::from_polar(1.0, std::f64::consts::PI * angle);
    }
    p
}

/// Where a `generate(...)` configuration is cached: `<model dir>/data/gauge/cache`, or the
/// user cache folder (`$XDG_CACHE_HOME/symc`, `~/.cache/symc`) when that is not writable.
pub fn gauge_cache_dir(model_dir: &Path) -> PathBuf {
    let local = model_dir.join("data").join("gauge").join("cache");
    if std::fs::create_dir_all(&local).is_ok() && tempfile::NamedTempFile::new_in(&local).is_ok() {
        return local;
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("symc")
}

/// The name of the configuration shipped with the repository for `generate(beta, seed)`.
pub fn shipped_gauge_name(dims: [usize; 4], beta: f64, seed: u64) -> String {
    format!("b{beta:.1}_{}x{}x{}x{}_s{seed}.nersc", dims[0], dims[1], dims[2], dims[3])
}

/// Whether the NERSC header of `path` was written by symc's heatbath with these parameters
/// (`ENSEMBLE_LABEL = symc heatbath beta=6 ... seed=7 sweeps=300 ...`). A file without such a
/// label (made by another program) is not trusted to be the configuration the model asks for.
fn label_matches(path: &Path, beta: f64, seed: u64, sweeps: usize) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    let Some(label) = head.lines().find_map(|l| l.trim().strip_prefix("ENSEMBLE_LABEL")) else {
        return false;
    };
    let words: Vec<&str> = label.split_whitespace().collect();
    let has = |w: String| words.contains(&w.as_str());
    has(format!("beta={beta}")) && has(format!("seed={seed}")) && has(format!("sweeps={sweeps}"))
}

/// A gauge field for training, and how it was obtained.
pub struct TrainingGauge {
    pub field: GaugeField,
    /// Human-readable source (`generate(beta = 6, seed = 7, sweeps = 200)`, a path, `unit`).
    pub source: String,
    /// The file it was read from or cached in, if any.
    pub file: Option<PathBuf>,
}

/// Loads or generates the gauge field of a `train` block. A `load` path is used as it stands:
/// `sema::load_model` has already resolved it against the .sym file's folder, and is read with
/// `read` (its layout hints, for a LIME file that does not state its extents). `model_dir`
/// holds the shipped configurations (`data/gauge/`) and the cache (`data/gauge/cache/`).
pub fn training_gauge(
    spec: &GaugeSource,
    dims: [usize; 4],
    model_dir: &Path,
    progress: bool,
    read: &ReadOptions,
) -> Result<TrainingGauge, PrecondError> {
    let hinted = read.hints.dims.is_some() || read.hints.precision.is_some();
    if hinted && !matches!(spec, GaugeSource::Load { .. }) {
        eprintln!(
            "warning: {}/{} describe a `gauge load(...)` file; this model's gauge field is not \
             loaded from a file, so they are ignored",
            read.hints.flags.dims, read.hints.flags.precision
        );
    }
    match spec {
        GaugeSource::Unit => {
            Ok(TrainingGauge { field: GaugeField::unit(dims), source: "unit".into(), file: None })
        }
        GaugeSource::Load { path } => {
            let p = PathBuf::from(path);
            let f = read_gauge_with(&p, read)?;
            // A layout the file does not state is recorded with the source (summary.json).
            let source = match f.layout_note() {
                Some(note) => format!("load({path}); {note}"),
                None => format!("load({path})"),
            };
            Ok(TrainingGauge { field: f.field, source, file: Some(p) })
        }
        &GaugeSource::Generate { beta, seed, sweeps } => {
            let source = format!("generate(beta = {beta}, seed = {seed}, sweeps = {sweeps})");
            // The configuration shipped with the repository for the default model, if its
            // lattice matches (a different file under that name is ignored, not trusted).
            let shipped =
                model_dir.join("data").join("gauge").join(shipped_gauge_name(dims, beta, seed));
            if let Ok(f) = read_gauge(&shipped)
                && f.field.dims() == dims
                && label_matches(&shipped, beta, seed, sweeps)
            {
                return Ok(TrainingGauge { field: f.field, source, file: Some(shipped) });
            }
            let dir = gauge_cache_dir(model_dir);
            let file = dir.join(heatbath::cache_file_name(dims, beta, seed, sweeps));
            if progress && read_gauge(&file).is_err() {
                eprintln!(
                    "generating the beta = {beta} {}x{}x{}x{} configuration ({sweeps} heatbath \
                     sweeps, seed {seed}); cached in {} for later runs",
                    dims[0],
                    dims[1],
                    dims[2],
                    dims[3],
                    dir.display()
                );
            }
            let field = heatbath::cached_config(dims, beta, seed, sweeps, &dir)?;
            Ok(TrainingGauge { field, source, file: Some(file) })
        }
    }
}

fn zero<T: Real>() -> Complex<T> {
    Complex::new(T::zero(), T::zero())
}

/// One training pair (input, target) of step `step`: the network should map `input` to
/// `target`. Preconditioner loss: input = D v/‖D v‖, target = v/‖D v‖ for Gaussian v (so that
/// ‖M input − target‖² is the normalised loss). Filtered loss: ṽ from `iterations` GMRES steps
/// on D ṽ = 0 from a Gaussian start, normalised; input = D ṽ, target = ṽ.
pub fn training_pair<T: Real, O: LinearOperator<T> + ?Sized>(
    d: &O,
    dims: [usize; 4],
    loss: &LossSpec,
    seed: u64,
    step: u64,
) -> (Vec<Complex<T>>, Vec<Complex<T>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step);
    let v = FermionField::<T>::random_gaussian(dims, &mut rng).data;
    let n = v.len();
    match *loss {
        LossSpec::Filtered { iterations } if iterations > 0 => {
            // GMRES on D x = 0 from x0 = v is GMRES on D e = D v from 0 with x = v − e.
            let mut dv = vec![zero::<T>(); n];
            d.apply(&mut dv, &v);
            let mut e = vec![zero::<T>(); n];
            let params =
                SolveParams { tol: 1e-300, restart: iterations, max_iterations: iterations };
            solve::gmres(d, &dv, &mut e, &params);
            let mut vt = v;
            for (x, ei) in vt.iter_mut().zip(&e) {
                *x -= *ei;
            }
            let s = 1.0 / fermion::norm(&vt);
            fermion::scale(Complex::new(T::from(s).unwrap_or(T::one()), T::zero()), &mut vt);
            let mut b = vec![zero::<T>(); n];
            d.apply(&mut b, &vt);
            (b, vt)
        }
        _ => {
            let mut b = vec![zero::<T>(); n];
            d.apply(&mut b, &v);
            let s = Complex::new(T::from(1.0 / fermion::norm(&b)).unwrap_or(T::one()), T::zero());
            let mut v = v;
            fermion::scale(s, &mut b);
            fermion::scale(s, &mut v);
            (b, v)
        }
    }
}

/// The loss ‖M input − target‖² (accumulated in f64).
pub fn pair_loss<T: Real, N: FermionNet<T> + ?Sized>(
    net: &N,
    params: &[T],
    input: &[Complex<T>],
    target: &[Complex<T>],
) -> Result<f64, RuntimeError> {
    let mut out = vec![zero::<T>(); target.len()];
    net.forward(params, input, &mut out)?;
    Ok(out
        .iter()
        .zip(target)
        .map(|(o, t)| {
            let d = *o - *t;
            d.re.to_f64().powi(2) + d.im.to_f64().powi(2)
        })
        .sum())
}

/// Loss and its gradient with respect to the (re, im) pairs of the weights: the backward pass
/// is seeded with 2 (M input − target) (models.md §1.8).
pub fn pair_loss_grad<T: Real, N: FermionNet<T> + ?Sized>(
    net: &N,
    params: &[T],
    input: &[Complex<T>],
    target: &[Complex<T>],
    grad: &mut [T],
) -> Result<f64, RuntimeError> {
    let mut loss = 0.0f64;
    let two = T::one() + T::one();
    net.forward_backward_seeded(
        params,
        input,
        &mut |out, g| {
            for ((gi, o), t) in g.iter_mut().zip(out).zip(target) {
                let d = *o - *t;
                loss += d.norm_sqr().to_f64();
                *gi = d * two;
            }
        },
        grad,
    )?;
    Ok(loss)
}

/// One solve as recorded in `summary.json` (no residual history).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SolveRecord {
    pub iterations: usize,
    pub operator_applications: usize,
    pub preconditioner_applications: usize,
    pub seconds: f64,
    pub true_residual: f64,
    pub converged: bool,
}

/// One side of the comparison: means over the right-hand sides and the per-RHS records.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SolveSide {
    pub solver: String,
    /// Mean iterations over the right-hand sides.
    pub iterations: f64,
    /// Mean wall time per right-hand side (including the network's own cost).
    pub seconds: f64,
    pub operator_applications: f64,
    pub preconditioner_applications: f64,
    pub max_true_residual: f64,
    pub converged: bool,
    pub per_rhs: Vec<SolveRecord>,
}

impl SolveSide {
    /// Summarises `reports` (at least one).
    pub fn from_reports(reports: &[SolveReport]) -> Self {
        let n = reports.len().max(1) as f64;
        let mean = |f: fn(&SolveReport) -> f64| reports.iter().map(f).sum::<f64>() / n;
        SolveSide {
            solver: reports.first().map_or_else(String::new, |r| r.solver.clone()),
            iterations: mean(|r| r.iterations as f64),
            seconds: mean(|r| r.seconds),
            operator_applications: mean(|r| r.operator_applications as f64),
            preconditioner_applications: mean(|r| r.preconditioner_applications as f64),
            max_true_residual: reports.iter().map(|r| r.true_residual).fold(0.0, f64::max),
            converged: reports.iter().all(|r| r.converged),
            per_rhs: reports
                .iter()
                .map(|r| SolveRecord {
                    iterations: r.iterations,
                    operator_applications: r.operator_applications,
                    preconditioner_applications: r.preconditioner_applications,
                    seconds: r.seconds,
                    true_residual: r.true_residual,
                    converged: r.converged,
                })
                .collect(),
        }
    }
}

/// The solve comparison of a run (or of `symc solve --precond`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SolveComparison {
    pub tol: f64,
    pub restart: usize,
    pub rhs: usize,
    pub max_iterations: usize,
    pub seed: u64,
    /// `mixed` (f32 cycles in the kernels' layout, f64 restarts) or `f64`.
    #[serde(default = "f64_precision")]
    pub precision: String,
    pub unpreconditioned: SolveSide,
    pub preconditioned: SolveSide,
    /// unpreconditioned / preconditioned mean iterations.
    pub iteration_ratio: f64,
    /// unpreconditioned / preconditioned mean seconds.
    pub speedup: f64,
}

/// Summaries written before the mixed-precision solver ran everything in f64.
fn f64_precision() -> String {
    "f64".into()
}

/// Random complex Gaussian right-hand sides of unit norm from `seed`.
pub fn random_rhs(dims: [usize; 4], n: usize, seed: u64) -> Vec<Vec<Complex64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut b = FermionField::<f64>::random_gaussian(dims, &mut rng).data;
            let s = 1.0 / fermion::norm(&b);
            fermion::scale(Complex64::new(s, 0.0), &mut b);
            b
        })
        .collect()
}

/// Solves D x = b for every `rhs` with GMRES (the unpreconditioned baseline: FGMRES with M = 1
/// is mathematically GMRES, and GMRES skips the identity copies) and with FGMRES using the
/// network as right preconditioner. With `d32` both run in mixed precision (f32 cycles on the
/// JIT kernels' layout, f64 restarts with `d`, see [`solve::gmres_mixed`]); without, all in f64
/// on `d`. `log` prints one line per solve to stderr.
pub fn compare_solves<O: LinearOperator<f64>>(
    d: &O,
    d32: Option<&JitWilsonClover<f32>>,
    prec: &mut NetPreconditioner,
    rhs: &[Vec<Complex64>],
    sp: &SolveParams,
    seed: u64,
    log: bool,
) -> Result<SolveComparison, PrecondError> {
    prec.error = None;
    let mut plain = Vec::new();
    let mut with = Vec::new();
    let mixed_err =
        |e: solve::MixedError| PrecondError::Runtime(RuntimeError::Shape(e.to_string()));
    let mut ws = solve::MixedWorkspace::new();
    for (k, b) in rhs.iter().enumerate() {
        let mut x = vec![Complex64::new(0.0, 0.0); d.len()];
        let r = match d32 {
            Some(d32) => solve::gmres_mixed(&mut ws, d, d32, b, &mut x, sp).map_err(mixed_err)?,
            None => solve::gmres(d, b, &mut x, sp),
        };
        if log {
            eprintln!(
                "rhs {k} unpreconditioned: {} iterations, {:.2} s, true residual {:.2e}",
                r.iterations, r.seconds, r.true_residual
            );
        }
        plain.push(r);
        let mut x = vec![Complex64::new(0.0, 0.0); d.len()];
        let r = match d32 {
            Some(d32) => {
                let mut native = prec.native(d32.layout());
                solve::fgmres_mixed(&mut ws, d, d32, &mut native, b, &mut x, sp)
                    .map_err(mixed_err)?
            }
            None => solve::fgmres(d, prec, b, &mut x, sp),
        };
        if log {
            eprintln!(
                "rhs {k} preconditioned:   {} iterations, {:.2} s, true residual {:.2e}",
                r.iterations, r.seconds, r.true_residual
            );
        }
        with.push(r);
    }
    if let Some(e) = prec.error.take() {
        return Err(PrecondError::Runtime(RuntimeError::Shape(e)));
    }
    let unpreconditioned = SolveSide::from_reports(&plain);
    let preconditioned = SolveSide::from_reports(&with);
    Ok(SolveComparison {
        tol: sp.tol,
        restart: sp.restart,
        rhs: rhs.len(),
        max_iterations: sp.max_iterations,
        seed,
        precision: if d32.is_some() { "mixed" } else { "f64" }.into(),
        iteration_ratio: unpreconditioned.iterations / preconditioned.iterations.max(1e-300),
        speedup: unpreconditioned.seconds / preconditioned.seconds.max(1e-300),
        unpreconditioned,
        preconditioned,
    })
}

/// The gauge field a run was trained on, as recorded in its summary.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GaugeRecord {
    pub source: String,
    pub file: Option<String>,
    pub dims: [usize; 4],
    pub plaquette: f64,
}

/// `summary.json` of a preconditioner run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PrecondSummary {
    pub model: String,
    pub model_file: Option<String>,
    /// `running`, `completed` or `diverged`.
    pub status: String,
    pub message: Option<String>,
    pub final_loss: Option<f64>,
    pub initial_loss: Option<f64>,
    /// Mean loss over the last 10 % of the steps (the per-step loss is noisy: one vector).
    pub final_loss_mean: Option<f64>,
    pub steps: u64,
    pub steps_planned: usize,
    pub train_seconds: f64,
    pub seconds_per_step: f64,
    /// Trainable parameters (complex weights count once).
    pub params: usize,
    pub param_scalars: usize,
    pub loss: String,
    pub optimizer: String,
    pub schedule: String,
    pub seed: u64,
    pub threads: usize,
    pub precision: String,
    pub backend: String,
    pub gauge: GaugeRecord,
    pub mass: f64,
    pub csw: f64,
    pub boundary: [f64; 4],
    pub solve: Option<SolveComparison>,
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
    pub gauge_read: ReadOptions,
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
            gauge_read: ReadOptions::default(),
        }
    }
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> PrecondError + '_ {
    move |source| PrecondError::Write { path: path.to_path_buf(), source }
}

/// One row of `loss.csv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossRow {
    /// Completed steps (1-based): the loss was measured at the start of this step.
    pub step: u64,
    pub loss: f64,
    /// Cumulative training seconds.
    pub seconds: f64,
}

/// The text of `loss.csv` (full f64 precision, so a resumed run can be compared bit for bit).
pub fn loss_csv(rows: &[LossRow]) -> String {
    let mut s = String::from("step,loss,seconds\n");
    for r in rows {
        s.push_str(&format!("{},{:e},{:.6}\n", r.step, r.loss, r.seconds));
    }
    s
}

/// Parses `loss.csv`.
pub fn read_loss_csv(path: &Path) -> Result<Vec<LossRow>, PrecondError> {
    let bad = |message: String| PrecondError::RunFolder { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let parse = |k: usize| -> Option<f64> { f.get(k)?.parse().ok() };
        match (f.first().and_then(|s| s.parse().ok()), parse(1), parse(2)) {
            (Some(step), Some(loss), Some(seconds)) if f.len() == 3 => {
                rows.push(LossRow { step, loss, seconds })
            }
            _ => return Err(bad(format!("line {}: expected `step,loss,seconds`", i + 1))),
        }
    }
    Ok(rows)
}

fn summary_json(s: &PrecondSummary) -> String {
    let mut t =
        serde_json::to_string_pretty(s).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    t.push('\n');
    t
}

/// Reads the `summary.json` of a preconditioner run.
pub fn read_summary(dir: &Path) -> Result<PrecondSummary, PrecondError> {
    let path = dir.join(SUMMARY_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| PrecondError::RunFolder { path: path.clone(), message: e.to_string() })?;
    serde_json::from_str(&text)
        .map_err(|e| PrecondError::RunFolder { path, message: e.to_string() })
}

fn loss_name(l: &LossSpec) -> String {
    match l {
        LossSpec::Filtered { iterations } => format!("filtered(iterations = {iterations})"),
        _ => "preconditioner".into(),
    }
}

/// Draws the loss curve into `<dir>/loss.svg` and `.png` through `train::plot`.
fn plot_loss(dir: &Path, name: &str, rows: &[LossRow]) -> Result<(), PrecondError> {
    let curve = Curve { name: name.into(), rows: rows.iter().map(loss_row_as_epoch).collect() };
    plot::plot_losses(&[curve], &dir.join("loss"), &format!("{name}: training loss"))
        .map_err(|e| PrecondError::Plot(e.to_string()))?;
    Ok(())
}

/// A `loss.csv` row in the classifier plot's row type (step on the x axis, no test loss).
pub fn loss_row_as_epoch(r: &LossRow) -> EpochRow {
    EpochRow {
        epoch: r.step as usize,
        train_loss: r.loss,
        train_acc: f64::NAN,
        val_loss: None,
        val_acc: None,
        test_loss: f64::NAN,
        test_acc: f64::NAN,
        seconds: r.seconds,
        lr: f64::NAN,
        eval_seconds: 0.0,
    }
}

/// The gauge field a run in `dir` was trained on, for `--resume`: the file its summary records,
/// if it still reads with the recorded lattice and plaquette. A resumed run compiles the copy
/// `model.sym` in the run folder, whose relative paths and generate cache would point into the
/// run folder; the recorded file is the field the run actually used.
fn recorded_gauge(dir: &Path, dims: [usize; 4], read: &ReadOptions) -> Option<TrainingGauge> {
    let rec = read_summary(dir).ok()?.gauge;
    let file = PathBuf::from(rec.file?);
    let f = read_gauge_with(&file, read).ok()?;
    let same = f.field.dims() == dims
        && rec.dims == dims
        && (f.field.plaquette() - rec.plaquette).abs() <= 1e-12;
    same.then_some(TrainingGauge { field: f.field, source: rec.source, file: Some(file) })
}

/// Trains the preconditioner described by `graph` (a fermion network with a `train` block)
/// into `opts.out`, then evaluates it. Returns the summary (also written to the folder).
pub fn run(graph: &Graph, opts: &RunOptions) -> Result<PrecondSummary, PrecondError> {
    let spec = precond_spec(graph)?;
    let steps = opts.steps.unwrap_or(spec.steps);
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(write_err(out))?;
    let model_dir = opts
        .model_file
        .as_ref()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let recorded =
        if opts.resume { recorded_gauge(out, spec.dims, &opts.gauge_read) } else { None };
    let gauge = match recorded {
        Some(g) => g,
        None => {
            training_gauge(&spec.gauge, spec.dims, &model_dir, opts.progress, &opts.gauge_read)?
        }
    };
    if gauge.field.dims() != spec.dims {
        return Err(PrecondError::GaugeDims {
            source_desc: gauge.source.clone(),
            model: graph.name.clone(),
            expected: spec.dims,
            found: gauge.field.dims(),
        });
    }
    let plaquette = gauge.field.plaquette();
    if opts.progress {
        eprintln!(
            "gauge field: {} ({}), plaquette {plaquette:.6}",
            gauge.source,
            gauge.file.as_ref().map_or_else(|| "in memory".into(), |f| f.display().to_string())
        );
    }
    if let Some(src) = &opts.source {
        let p = out.join(MODEL_FILE);
        crate::train::write_atomic(&p, src.as_bytes()).map_err(write_err(&p))?;
    }
    let dirac = dirac_params(&spec.operator);
    // D in f32 for the training pairs: the JIT kernel (the reference operator is the oracle of
    // its tests).
    let d32 = JitWilsonClover::<f32>::new(&gauge.field, &dirac, &DiracOptions::default())?;
    let net = compile_fermion_net::<f32>(graph, &gauge.field)?;
    let n = graph.param_scalars();
    let ckpt_path = out.join(CHECKPOINT_FILE);
    let loss_path = out.join(LOSS_FILE);

    let mut optimizer = Optimizer::new(&spec.train.optimizer, n);
    let mut params;
    let mut rows: Vec<LossRow>;
    let mut start_step = 0u64;
    let mut prior_seconds = 0.0;
    if opts.resume {
        let ck = checkpoint::load(&ckpt_path, graph)?;
        start_step = ck.meta_parse(&ckpt_path, "step")?;
        prior_seconds = ck.meta_parse(&ckpt_path, "seconds")?;
        let opt_steps: u64 = ck.meta_parse(&ckpt_path, "optimizer_steps")?;
        params = ck.params;
        for (name, buf) in optimizer.buffers_mut() {
            let saved = ck.optimizer.get(name).ok_or_else(|| PrecondError::RunFolder {
                path: ckpt_path.clone(),
                message: format!("optimizer buffer `{name}` is missing"),
            })?;
            buf.clone_from(saved);
        }
        optimizer.set_steps(opt_steps);
        rows = read_loss_csv(&loss_path)?;
        rows.retain(|r| r.step <= start_step);
        if opts.progress {
            eprintln!("resuming {} at step {start_step}", out.display());
        }
    } else {
        params = init_params(graph, spec.seed);
        rows = Vec::new();
    }

    let base_lr = optim::base_lr(&spec.train.optimizer);
    let every =
        if opts.checkpoint_every > 0 { opts.checkpoint_every } else { (steps / 10).max(1) } as u64;
    let mut summary = PrecondSummary {
        model: graph.name.clone(),
        model_file: opts.model_file.as_ref().map(|p| p.display().to_string()),
        status: "running".into(),
        message: None,
        final_loss: None,
        initial_loss: None,
        final_loss_mean: None,
        steps: start_step,
        steps_planned: steps,
        train_seconds: prior_seconds,
        seconds_per_step: 0.0,
        params: graph.param_count(),
        param_scalars: n,
        loss: loss_name(&spec.loss),
        optimizer: optim::describe_optimizer(&spec.train.optimizer),
        schedule: optim::describe_schedule(&spec.train.schedule),
        seed: spec.seed,
        threads: rayon::current_num_threads(),
        precision: "f32".into(),
        backend: "jit".into(),
        gauge: GaugeRecord {
            source: gauge.source.clone(),
            // Absolute, so that `--resume` finds it from any working directory.
            file: gauge
                .file
                .as_ref()
                .map(|f| f.canonicalize().unwrap_or(f.clone()).display().to_string()),
            dims: spec.dims,
            plaquette,
        },
        mass: spec.operator.mass,
        csw: spec.operator.csw,
        boundary: spec.operator.boundary,
        solve: None,
    };
    let fill = |s: &mut PrecondSummary, rows: &[LossRow], step: u64, secs: f64| {
        s.steps = step;
        s.train_seconds = secs;
        s.seconds_per_step = if step > 0 { secs / step as f64 } else { 0.0 };
        s.initial_loss = rows.first().map(|r| r.loss);
        s.final_loss = rows.last().map(|r| r.loss);
        let tail = (rows.len() / 10).max(1).min(rows.len());
        s.final_loss_mean = (tail > 0)
            .then(|| rows[rows.len() - tail..].iter().map(|r| r.loss).sum::<f64>() / tail as f64);
    };
    let save_all = |s: &PrecondSummary,
                    rows: &[LossRow],
                    params: &[f32],
                    optimizer: &Optimizer,
                    step: u64,
                    secs: f64|
     -> Result<(), PrecondError> {
        let mut meta = BTreeMap::new();
        meta.insert("step".to_string(), step.to_string());
        meta.insert("seconds".to_string(), format!("{secs}"));
        meta.insert("optimizer_steps".to_string(), optimizer.steps().to_string());
        meta.insert("kind".to_string(), "preconditioner".to_string());
        checkpoint::save(&ckpt_path, graph, params, &optimizer.buffers(), &meta)?;
        crate::train::write_atomic(&loss_path, loss_csv(rows).as_bytes())
            .map_err(write_err(&loss_path))?;
        let sp = out.join(SUMMARY_FILE);
        crate::train::write_atomic(&sp, summary_json(s).as_bytes()).map_err(write_err(&sp))?;
        Ok(())
    };

    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(steps as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
        ) {
            b.set_style(style);
        }
        b.set_position(start_step);
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut grad = vec![0.0f32; n];
    let t0 = Instant::now();
    let mut rate_mark = (Instant::now(), start_step);
    let mut last_saved = start_step;
    for step in start_step..steps as u64 {
        let lr = optim::lr_at(
            base_lr,
            &spec.train.schedule,
            step,
            steps as u64,
            0,
            !matches!(spec.train.schedule, Schedule::Constant),
        ) as f32;
        let (inp, tgt) = training_pair(&d32, spec.dims, &spec.loss, spec.seed, step);
        let loss = pair_loss_grad(net.as_ref(), &params, &inp, &tgt, &mut grad)?;
        let finite = loss.is_finite() && grad.iter().all(|g| g.is_finite());
        if !finite {
            bar.abandon();
            let secs = prior_seconds + t0.elapsed().as_secs_f64();
            let saved_rows: Vec<LossRow> =
                rows.iter().copied().filter(|r| r.step <= last_saved).collect();
            fill(&mut summary, &saved_rows, last_saved, secs);
            summary.status = "diverged".into();
            summary.message = Some(format!(
                "non-finite loss or gradient at step {} (loss {loss}); checkpoint of step \
                 {last_saved} kept",
                step + 1
            ));
            let sp = out.join(SUMMARY_FILE);
            crate::train::write_atomic(&sp, summary_json(&summary).as_bytes())
                .map_err(write_err(&sp))?;
            return Err(PrecondError::Diverged { step: step + 1, loss, dir: out.clone() });
        }
        optimizer.step(&mut params, &grad, lr);
        let secs = prior_seconds + t0.elapsed().as_secs_f64();
        rows.push(LossRow { step: step + 1, loss, seconds: secs });
        bar.set_position(step + 1);
        if (step + 1) % 10 == 0 || step + 1 == steps as u64 {
            let dt = rate_mark.0.elapsed().as_secs_f64();
            let rate = (step + 1 - rate_mark.1) as f64 / dt.max(1e-9);
            bar.set_message(format!("loss {loss:.3e}  {rate:.1} steps/s"));
            rate_mark = (Instant::now(), step + 1);
        }
        if (step + 1) % every == 0 || step + 1 == steps as u64 {
            fill(&mut summary, &rows, step + 1, secs);
            save_all(&summary, &rows, &params, &optimizer, step + 1, secs)?;
            last_saved = step + 1;
            if opts.progress && !bar.is_hidden() {
                // The bar shows the rest; log lines are for non-terminal stderr.
            } else if opts.progress {
                eprintln!(
                    "step {}/{steps}: loss {loss:.4e}, {:.1} ms/step",
                    step + 1,
                    1e3 * secs / (step + 1) as f64
                );
            }
        }
    }
    bar.finish_and_clear();
    let secs = prior_seconds + t0.elapsed().as_secs_f64();
    fill(&mut summary, &rows, steps as u64, secs);
    if rows.len() as u64 == steps as u64 && steps > 0 && last_saved != steps as u64 {
        save_all(&summary, &rows, &params, &optimizer, steps as u64, secs)?;
    }
    if !rows.is_empty() {
        plot_loss(out, &graph.name, &rows)?;
    }
    if opts.progress {
        eprintln!(
            "trained {} steps in {:.1} s ({:.1} ms/step); loss {:.3e} -> {:.3e} (mean of the \
             last 10 %: {:.3e})",
            summary.steps,
            summary.train_seconds,
            1e3 * summary.seconds_per_step,
            summary.initial_loss.unwrap_or(f64::NAN),
            summary.final_loss.unwrap_or(f64::NAN),
            summary.final_loss_mean.unwrap_or(f64::NAN)
        );
    }

    if opts.evaluate {
        let (tol, restart, rhs_n, max_iterations) = spec.eval;
        let rhs_n = opts.rhs.unwrap_or(rhs_n);
        let sp = SolveParams { tol, restart, max_iterations };
        if opts.progress {
            eprintln!(
                "evaluating: FGMRES({restart}) to {tol:e} on {rhs_n} random right-hand sides, \
                 m = {}, c_sw = {}",
                spec.operator.mass, spec.operator.csw
            );
        }
        let d64 = JitWilsonClover::<f64>::new(&gauge.field, &dirac, &DiracOptions::default())?;
        let d32 = JitWilsonClover::<f32>::new(&gauge.field, &dirac, &DiracOptions::default())?;
        let seed = spec.seed.wrapping_add(1_000_003);
        let rhs = random_rhs(spec.dims, rhs_n, seed);
        let mut prec = NetPreconditioner::new(net, params)?;
        let cmp = compare_solves(&d64, Some(&d32), &mut prec, &rhs, &sp, seed, opts.progress)?;
        if opts.progress {
            eprintln!(
                "solve: {:.1} -> {:.1} iterations ({:.2}x), {:.2} s -> {:.2} s ({:.2}x faster)",
                cmp.unpreconditioned.iterations,
                cmp.preconditioned.iterations,
                cmp.iteration_ratio,
                cmp.unpreconditioned.seconds,
                cmp.preconditioned.seconds,
                cmp.speedup
            );
        }
        summary.solve = Some(cmp);
    }
    summary.status = "completed".into();
    let sp = out.join(SUMMARY_FILE);
    crate::train::write_atomic(&sp, summary_json(&summary).as_bytes()).map_err(write_err(&sp))?;
    Ok(summary)
}

/// Replaces the lattice of every fermion value of `graph` by `dims` (weights of global PTC
/// layers do not depend on the volume). Fails for site-dependent (local) weights.
pub fn retarget(graph: &Graph, dims: [usize; 4]) -> Result<Graph, PrecondError> {
    crate::ir::retarget::retarget(graph, dims).map_err(|e| PrecondError::NotPreconditioner {
        model: graph.name.clone(),
        what: e.to_string(),
    })
}

/// A trained network loaded from a run folder, compiled for a given gauge field.
pub struct LoadedRun {
    pub graph: Graph,
    pub net: Box<dyn FermionNet<f32>>,
    pub params: Vec<f32>,
    pub summary: Option<PrecondSummary>,
}

/// Loads the run in `dir` (its `model.sym` and `checkpoint.safetensors`) and compiles the
/// network for `gauge` (any volume for global-weight networks).
pub fn load_run(dir: &Path, gauge: &GaugeField) -> Result<LoadedRun, PrecondError> {
    let model = dir.join(MODEL_FILE);
    let graph = crate::sema::load_model(&model)
        .map_err(|e| PrecondError::RunFolder { path: model.clone(), message: format!("{e}") })?;
    let ck = checkpoint::load(&dir.join(CHECKPOINT_FILE), &graph)?;
    if let Some(bad) = ck.params.iter().position(|p| !p.is_finite()) {
        return Err(PrecondError::RunFolder {
            path: dir.join(CHECKPOINT_FILE),
            message: format!("weight {bad} is not finite"),
        });
    }
    let graph = retarget(&graph, gauge.dims())?;
    let net = compile_fermion_net::<f32>(&graph, gauge)?;
    Ok(LoadedRun { graph, net, params: ck.params, summary: read_summary(dir).ok() })
}

/// The trained network of the run folder `dir` as an FGMRES preconditioner on `gauge`
/// (`symc solve --precond RUN_DIR`).
pub fn preconditioner_from_run(
    dir: &Path,
    gauge: &GaugeField,
) -> Result<NetPreconditioner, PrecondError> {
    let run = load_run(dir, gauge)?;
    Ok(NetPreconditioner::new(run.net, run.params)?)
}

/// Casts a weight vector (f32 storage) to another precision.
pub fn params_as<T: Real>(p: &[f32]) -> Vec<T> {
    p.iter().map(|&x| T::from(x).unwrap_or(T::nan())).collect()
}

/// Casts a fermion vector between precisions (re-exported for tests and benches).
pub fn cast<T: Real, U: Real>(x: &[Complex<T>]) -> Vec<Complex<U>> {
    cast_slice(x)
}
