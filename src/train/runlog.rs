//! The human- and tool-readable record of a run: `train.csv` (one row per epoch),
//! `steps.csv` (the mean loss of every mini-batch) and `summary.json`. All are rewritten
//! atomically after every epoch, so a run folder is always consistent with its checkpoint, even
//! after a crash or a divergence.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File names inside a run folder.
pub const CSV_FILE: &str = "train.csv";
pub const SUMMARY_FILE: &str = "summary.json";
pub const STEPS_FILE: &str = "steps.csv";

/// Column order of `steps.csv`.
pub const STEPS_HEADER: &str = "step,epoch,loss,lr";

/// Column order of `train.csv`.
pub const CSV_HEADER: &str =
    "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,lr,eval_seconds";

/// Problems reading or writing the run log.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RunLogError {
    #[error("cannot read {}: {source}", path.display())]
    #[diagnostic(code(symc::run::read), help("pass a run folder written by `symc train`"))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    #[diagnostic(code(symc::run::write))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    #[diagnostic(
        code(symc::run::parse),
        help("the file was not written by `symc train`, or was edited by hand")
    )]
    Parse { path: PathBuf, line: usize, message: String },
}

/// One epoch of a run. Losses are mean NLL per sample; accuracies are fractions in 0..=1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: Option<f64>,
    pub val_acc: Option<f64>,
    pub test_loss: f64,
    pub test_acc: f64,
    /// Wall time of the epoch's training steps (evaluation excluded).
    pub seconds: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Wall time of the validation and test evaluation after the epoch.
    pub eval_seconds: f64,
}

/// One optimiser step: the mean NLL of its mini-batch (before the step) and its learning rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRow {
    pub step: u64,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
}

/// Writes `steps.csv` into `dir` atomically. The losses are written in full (shortest
/// round-trip form): the file is how a step-by-step comparison of two runs reads them.
pub fn write_steps(dir: &Path, rows: &[StepRow]) -> Result<(), RunLogError> {
    let mut s = String::with_capacity(32 * (rows.len() + 1));
    s.push_str(STEPS_HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(&format!("{},{},{:e},{:e}\n", r.step, r.epoch, r.loss, r.lr));
    }
    let path = dir.join(STEPS_FILE);
    super::write_atomic(&path, s.as_bytes()).map_err(|source| RunLogError::Write { path, source })
}

/// Reads `steps.csv` from a run folder; `Ok(None)` when there is none (folders written before
/// the file existed).
pub fn read_steps(dir: &Path) -> Result<Option<Vec<StepRow>>, RunLogError> {
    let path = dir.join(STEPS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RunLogError::Read { path, source }),
    };
    let err =
        |line: usize, message: String| RunLogError::Parse { path: path.clone(), line, message };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim() == STEPS_HEADER => {}
        _ => return Err(err(1, format!("expected the header `{STEPS_HEADER}`"))),
    }
    let mut rows = Vec::new();
    for (i, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = || err(i + 1, format!("`{line}` is not `step,epoch,loss,lr`"));
        if f.len() != 4 {
            return Err(bad());
        }
        rows.push(StepRow {
            step: f[0].parse().map_err(|_| bad())?,
            epoch: f[1].parse().map_err(|_| bad())?,
            loss: f[2].parse().map_err(|_| bad())?,
            lr: f[3].parse().map_err(|_| bad())?,
        });
    }
    Ok(Some(rows))
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.6}")).unwrap_or_default()
}

/// The CSV text for `rows`.
pub fn csv_text(rows: &[EpochRow]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(&format!(
            "{},{:.6},{:.6},{},{},{:.6},{:.6},{:.3},{:e},{:.3}\n",
            r.epoch,
            r.train_loss,
            r.train_acc,
            opt(r.val_loss),
            opt(r.val_acc),
            r.test_loss,
            r.test_acc,
            r.seconds,
            r.lr,
            r.eval_seconds
        ));
    }
    s
}

/// Writes `train.csv` into `dir` atomically.
pub fn write_csv(dir: &Path, rows: &[EpochRow]) -> Result<(), RunLogError> {
    let path = dir.join(CSV_FILE);
    super::write_atomic(&path, csv_text(rows).as_bytes())
        .map_err(|source| RunLogError::Write { path, source })
}

/// Reads `train.csv` from a run folder.
pub fn read_csv(dir: &Path) -> Result<Vec<EpochRow>, RunLogError> {
    let path = dir.join(CSV_FILE);
    // Preconditioner runs (`train::precond`) log per step in `loss.csv` (step, loss, seconds):
    // read them as rows with the step on the x axis and no test loss, so `symc plot` draws them.
    let steps = dir.join("loss.csv");
    if !path.exists() && steps.exists() {
        let text = std::fs::read_to_string(&steps)
            .map_err(|source| RunLogError::Read { path: steps.clone(), source })?;
        let text = text.replacen("step,loss,seconds", "epoch,train_loss,seconds,test_loss", 1);
        let text: String = text
            .lines()
            .enumerate()
            .map(|(i, l)| if i == 0 { format!("{l}\n") } else { format!("{l},\n") })
            .collect();
        return parse_csv_optional_test(&steps, &text);
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|source| RunLogError::Read { path: path.clone(), source })?;
    parse_csv(&path, &text)
}

fn parse_csv_optional_test(path: &Path, text: &str) -> Result<Vec<EpochRow>, RunLogError> {
    parse_csv_with(path, text, false)
}

/// Parses the text of a `train.csv` (columns found by name, so older or extended files work).
pub fn parse_csv(path: &Path, text: &str) -> Result<Vec<EpochRow>, RunLogError> {
    parse_csv_with(path, text, true)
}

/// Parses the text of a `train.csv` (columns found by name, so older or extended files work).
fn parse_csv_with(
    path: &Path,
    text: &str,
    test_required: bool,
) -> Result<Vec<EpochRow>, RunLogError> {
    let err = |line: usize, message: String| RunLogError::Parse {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| err(1, "empty file, expected a header".into()))?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let need = |name: &str| col(name).ok_or_else(|| err(1, format!("column `{name}` missing")));
    let (c_epoch, c_tl, c_test) = (need("epoch")?, need("train_loss")?, need("test_loss")?);
    let mut rows = Vec::new();
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != cols.len() {
            return Err(err(i + 1, format!("{} fields, expected {}", f.len(), cols.len())));
        }
        let num = |c: Option<usize>| -> Result<Option<f64>, RunLogError> {
            match c.map(|c| f[c]) {
                None | Some("") => Ok(None),
                Some(s) => {
                    s.parse().map(Some).map_err(|_| err(i + 1, format!("`{s}` is not a number")))
                }
            }
        };
        let req = |c: usize| -> Result<f64, RunLogError> {
            num(Some(c))?.ok_or_else(|| err(i + 1, format!("column `{}` is empty", cols[c])))
        };
        rows.push(EpochRow {
            epoch: f[c_epoch]
                .parse()
                .map_err(|_| err(i + 1, format!("epoch `{}` is not an integer", f[c_epoch])))?,
            train_loss: req(c_tl)?,
            train_acc: num(col("train_acc"))?.unwrap_or(f64::NAN),
            val_loss: num(col("val_loss"))?,
            val_acc: num(col("val_acc"))?,
            test_loss: if test_required {
                req(c_test)?
            } else {
                num(Some(c_test))?.unwrap_or(f64::NAN)
            },
            test_acc: num(col("test_acc"))?.unwrap_or(f64::NAN),
            seconds: num(col("seconds"))?.unwrap_or(f64::NAN),
            lr: num(col("lr"))?.unwrap_or(f64::NAN),
            eval_seconds: num(col("eval_seconds"))?.unwrap_or(f64::NAN),
        });
    }
    Ok(rows)
}

/// How one layer is executed (from the back end), recorded in the summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerStrategy {
    pub layer: String,
    /// Layer kind (`dense`, `conv`, ...).
    pub kind: String,
    /// `forward`, `backwardinput`, `backwardparams`, or `all`.
    pub pass: String,
    /// `jit`, `gemm` or `reference`.
    pub strategy: String,
    /// Why the code generator chose it.
    pub reason: String,
}

/// `summary.json`: the run's result and everything needed to reproduce or compare it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub model: String,
    /// The `.sym` file the run was started from (a copy is in the run folder as `model.sym`).
    pub model_file: Option<String>,
    pub data_dir: Option<String>,
    /// `running`, `completed` or `diverged`.
    pub status: String,
    /// Why the run stopped early (divergence), if it did.
    pub message: Option<String>,
    /// Test accuracy (fraction) after the last completed epoch.
    pub test_accuracy: Option<f64>,
    pub test_loss: Option<f64>,
    pub best_test_accuracy: Option<f64>,
    pub best_epoch: Option<usize>,
    /// Completed epochs.
    pub epochs: usize,
    pub epochs_planned: usize,
    /// Training wall time of each completed epoch (evaluation excluded).
    pub epoch_seconds: Vec<f64>,
    pub final_train_loss: Option<f64>,
    pub final_train_accuracy: Option<f64>,
    pub final_val_accuracy: Option<f64>,
    /// Trainable parameters (complex weights count once).
    pub params: usize,
    pub steps: u64,
    pub batch: usize,
    pub seed: u64,
    pub threads: usize,
    /// Processes of a data-parallel run (`mpirun -np N`); 1 for one process and in summaries
    /// written before the field existed.
    #[serde(default = "one")]
    pub ranks: usize,
    pub precision: String,
    /// `jit` or `reference`.
    pub backend: String,
    pub optimizer: String,
    pub schedule: String,
    pub validation: f64,
    pub train_samples: usize,
    pub val_samples: usize,
    pub test_samples: usize,
    pub normalisation: String,
    pub strategies: Vec<LayerStrategy>,
}

fn one() -> usize {
    1
}

/// Writes `summary.json` into `dir` atomically.
pub fn write_summary(dir: &Path, s: &Summary) -> Result<(), RunLogError> {
    let path = dir.join(SUMMARY_FILE);
    let mut text = serde_json::to_string_pretty(s)
        .map_err(|e| RunLogError::Write { path: path.clone(), source: std::io::Error::other(e) })?;
    text.push('\n');
    super::write_atomic(&path, text.as_bytes())
        .map_err(|source| RunLogError::Write { path, source })
}

/// Reads `summary.json` from a run folder.
pub fn read_summary(dir: &Path) -> Result<Summary, RunLogError> {
    let path = dir.join(SUMMARY_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|source| RunLogError::Read { path: path.clone(), source })?;
    serde_json::from_str(&text).map_err(|e| RunLogError::Parse {
        path: path.clone(),
        line: e.line(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_with_and_without_validation() {
        let rows = vec![
            EpochRow {
                epoch: 1,
                train_loss: 0.5,
                train_acc: 0.8,
                val_loss: None,
                val_acc: None,
                test_loss: 0.25,
                test_acc: 0.9,
                seconds: 1.5,
                lr: 1e-3,
                eval_seconds: 0.25,
            },
            EpochRow {
                epoch: 2,
                train_loss: 0.125,
                train_acc: 0.95,
                val_loss: Some(0.2),
                val_acc: Some(0.93),
                test_loss: 0.1875,
                test_acc: 0.94,
                seconds: 1.25,
                lr: 5e-4,
                eval_seconds: 0.5,
            },
        ];
        let text = csv_text(&rows);
        assert!(text.starts_with(
            "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,lr"
        ));
        assert_eq!(
            text.lines().nth(1),
            Some("1,0.500000,0.800000,,,0.250000,0.900000,1.500,1e-3,0.250")
        );
        let back = parse_csv(Path::new("t.csv"), &text).unwrap();
        assert_eq!(back, rows);
    }

    #[test]
    fn steps_round_trip_exactly() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_steps(dir.path()).unwrap(), None);
        let rows = vec![
            StepRow { step: 1, epoch: 1, loss: 2.302_585_092_994_046, lr: 1e-3 },
            StepRow { step: 2, epoch: 1, loss: 0.1 + 0.2, lr: 9.999_999e-4 },
        ];
        write_steps(dir.path(), &rows).unwrap();
        assert_eq!(read_steps(dir.path()).unwrap(), Some(rows));
        std::fs::write(dir.path().join(STEPS_FILE), "step,epoch,loss,lr\n1,1,x,1\n").unwrap();
        let e = read_steps(dir.path()).unwrap_err().to_string();
        assert!(e.ends_with("steps.csv:2: `1,1,x,1` is not `step,epoch,loss,lr`"), "{e}");
    }

    #[test]
    fn csv_errors_name_the_line() {
        let e = parse_csv(
            Path::new("x/train.csv"),
            "epoch,train_loss,test_loss\n1,0.5,0.4\n2,zz,0.3\n",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "x/train.csv:3: `zz` is not a number");
        let e = parse_csv(Path::new("t.csv"), "epoch,loss\n").unwrap_err();
        assert_eq!(e.to_string(), "t.csv:1: column `train_loss` missing");
    }
}
