//! The run folder of a preconditioner run, file by file: `loss.csv` (step, loss, seconds),
//! `summary.json` ([`PrecondSummary`], with the solve comparison under `solve`), the loss plot,
//! the model copy `model.sym` and `checkpoint.safetensors` (written by the training loop). Every
//! file is written atomically. Reading a folder back is here too: [`load_run`] rebuilds the
//! trained network for any gauge field or volume (`symc solve --precond RUN_DIR`).

use super::PrecondError;
use super::compare::SolveComparison;
use crate::ir::Graph;
use crate::lattice::gauge::GaugeField;
use crate::lattice::wilson::DiracParams;
use crate::runtime::multigrid_net::BasisCache;
use crate::runtime::preconditioner::NetPreconditioner;
use crate::runtime::{FermionNet, compile_fermion_net, compile_preconditioner_net};
use crate::train::checkpoint;
use crate::train::plot::{self, Curve};
use crate::train::runlog::EpochRow;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File names inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const LOSS_FILE: &str = "loss.csv";
pub const SUMMARY_FILE: &str = "summary.json";
pub const MODEL_FILE: &str = "model.sym";
/// The near-null basis of a multigrid network (a cache: deleting it only costs a set-up).
pub const BASIS_FILE: &str = "basis.safetensors";

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
    /// The near-null set-up of a multigrid network (`runtime::multigrid::SetupReport`): what
    /// it did and how many seconds each step took, apart from the solves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multigrid_setup: Option<serde_json::Value>,
    /// The low-mode solves of the two-term loss (`loss preconditioner(low_modes = ...)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_modes: Option<super::LowModeStats>,
    /// The trained runs a fresh run started from (`--init`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warm_start: Vec<crate::train::checkpoint::WarmStart>,
    /// How a run split over MPI processes was split (`mpirun -np N symc train`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decomposition: Option<super::share::Decomposition>,
    /// The closing comparison; for a `loss coarse` run, on the coarse system D_c
    /// (`system: "coarse"`) with and without M_c.
    pub solve: Option<SolveComparison>,
}

impl PrecondSummary {
    /// Brings the progress fields up to `step` completed steps with loss rows `rows` after
    /// `secs` seconds of training.
    pub fn record_progress(&mut self, rows: &[LossRow], step: u64, secs: f64) {
        self.steps = step;
        self.train_seconds = secs;
        self.seconds_per_step = if step > 0 { secs / step as f64 } else { 0.0 };
        self.initial_loss = rows.first().map(|r| r.loss);
        self.final_loss = rows.last().map(|r| r.loss);
        let tail = (rows.len() / 10).max(1).min(rows.len());
        self.final_loss_mean = (tail > 0)
            .then(|| rows[rows.len() - tail..].iter().map(|r| r.loss).sum::<f64>() / tail as f64);
    }
}

/// The error of a failed write to `path`.
pub(super) fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> PrecondError + '_ {
    move |source| PrecondError::Write { path: path.to_path_buf(), source }
}

/// Writes `bytes` to `dir/name` atomically.
pub(super) fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), PrecondError> {
    let path = dir.join(name);
    crate::train::write_atomic(&path, bytes).map_err(write_err(&path))
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

/// Writes `summary.json` into `dir`.
pub(super) fn write_summary(dir: &Path, s: &PrecondSummary) -> Result<(), PrecondError> {
    let mut t =
        serde_json::to_string_pretty(s).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    t.push('\n');
    write_file(dir, SUMMARY_FILE, t.as_bytes())
}

/// Reads the `summary.json` of a preconditioner run.
pub fn read_summary(dir: &Path) -> Result<PrecondSummary, PrecondError> {
    let path = dir.join(SUMMARY_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| PrecondError::RunFolder { path: path.clone(), message: e.to_string() })?;
    serde_json::from_str(&text)
        .map_err(|e| PrecondError::RunFolder { path, message: e.to_string() })
}

/// Draws the loss curve into `<dir>/loss.svg` and `.png` through `train::plot`.
pub(super) fn plot_loss(dir: &Path, name: &str, rows: &[LossRow]) -> Result<(), PrecondError> {
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
/// network for `gauge` (any volume for global-weight networks); a multigrid network is set up
/// for the Dirac operator the run was trained with.
pub fn load_run(dir: &Path, gauge: &GaugeField) -> Result<LoadedRun, PrecondError> {
    load_run_for(dir, gauge, None)
}

/// [`load_run`] for the Dirac operator `dirac` (default: the run's own). A multigrid network
/// redoes its near-null set-up for this configuration and operator (the weights are kept),
/// unless the run folder's basis was made for exactly them; the folder is never written.
pub fn load_run_for(
    dir: &Path,
    gauge: &GaugeField,
    dirac: Option<&DiracParams>,
) -> Result<LoadedRun, PrecondError> {
    let (graph, params) = load_weights(dir, gauge.dims())?;
    let summary = read_summary(dir).ok();
    let net = if crate::ir::levels::level(&graph).is_some() {
        let own = match (&summary, dirac) {
            (_, Some(d)) => *d,
            (Some(s), None) => super::spec::dirac_params_of(s.mass, s.csw, s.boundary),
            (None, None) => {
                return Err(PrecondError::RunFolder {
                    path: dir.join(SUMMARY_FILE),
                    message: "a multigrid network needs the Dirac operator it was trained for, \
                              and the summary that records it is unreadable"
                        .into(),
                });
            }
        };
        let cache = dir.join(BASIS_FILE);
        compile_preconditioner_net::<f32>(&graph, gauge, &own, BasisCache::ReadOnly(&cache))?
    } else {
        compile_fermion_net::<f32>(&graph, gauge)?
    };
    Ok(LoadedRun { graph, net, params, summary })
}

/// The model of run folder `dir`, moved to a lattice of extents `dims`, and its trained
/// weights (checked finite).
pub(super) fn load_weights(
    dir: &Path,
    dims: [usize; 4],
) -> Result<(Graph, Vec<f32>), PrecondError> {
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
    Ok((retarget(&graph, dims)?, ck.params))
}

/// The trained network of the run folder `dir` as an FGMRES preconditioner on `gauge` and the
/// Dirac operator `dirac` (`symc solve --precond RUN_DIR`).
pub fn preconditioner_from_run(
    dir: &Path,
    gauge: &GaugeField,
    dirac: &DiracParams,
) -> Result<NetPreconditioner, PrecondError> {
    let run = load_run_for(dir, gauge, Some(dirac))?;
    Ok(NetPreconditioner::new(run.net, run.params)?)
}
