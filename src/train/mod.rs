//! Training: data, optimisers, the classifier loop, checkpoints, run logs and plots.
//!
//! A training run lives in a *run folder*: `train.csv` (one row per epoch), `summary.json`,
//! `checkpoint.safetensors` (everything `--resume` needs), a copy of the model source
//! (`model.sym`) and the loss plot (`loss.svg`, `loss.png`). Every file in it is written
//! atomically (temporary file in the same folder, then rename), so an interrupted run never
//! leaves a half-written checkpoint behind: the previous epoch's stays valid.
//!
//! The loop drives any [`crate::runtime::Classifier`], so the same code trains through the JIT
//! kernels and through the reference evaluator (the oracle).

pub mod checkpoint;
pub mod classify;
pub mod divergence;
pub mod mnist;
pub mod optim;
pub mod plot;
pub mod precond;
pub mod runlog;

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same folder is filled, flushed
/// and renamed over `path`, so readers see either the old or the new file, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
