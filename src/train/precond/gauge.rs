//! The gauge field a preconditioner trains on: the unit field, a configuration file the model
//! `load`s, or a heatbath configuration it `generate`s — taken from the one shipped with the
//! repository when its label proves it is the same, else from the cache, else generated and
//! cached. A resumed run instead uses the file its summary recorded ([`recorded_gauge`]), so it
//! trains on exactly the field the interrupted run used.

use super::PrecondError;
use super::rundir::read_summary;
use crate::ir::GaugeSource;
use crate::lattice::gauge::GaugeField;
use crate::lattice::heatbath;
use crate::lattice::io::{ReadOptions, read_gauge, read_gauge_with};
use std::path::{Path, PathBuf};

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

/// The gauge field a run in `dir` was trained on, for `--resume`: the file its summary records,
/// if it still reads with the recorded lattice and plaquette. A resumed run compiles the copy
/// `model.sym` in the run folder, whose relative paths and generate cache would point into the
/// run folder; the recorded file is the field the run actually used.
pub(super) fn recorded_gauge(
    dir: &Path,
    dims: [usize; 4],
    read: &ReadOptions,
) -> Option<TrainingGauge> {
    let rec = read_summary(dir).ok()?.gauge;
    let file = PathBuf::from(rec.file?);
    let f = read_gauge_with(&file, read).ok()?;
    let same = f.field.dims() == dims
        && rec.dims == dims
        && (f.field.plaquette() - rec.plaquette).abs() <= 1e-12;
    same.then_some(TrainingGauge { field: f.field, source: rec.source, file: Some(file) })
}
