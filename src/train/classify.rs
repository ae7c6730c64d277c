//! The classifier training loop: seeded shuffling, mini-batches, validation split, optimiser
//! steps with a learning-rate schedule, per-epoch evaluation, checkpoints and the run log.
//!
//! **Determinism.** The validation split comes from its own ChaCha8 stream of the seed, the
//! shuffling from another; each epoch shuffles the sorted training indices afresh, so the RNG's
//! word position (saved in the checkpoint) is all a resumed run needs to draw exactly the batches
//! the uninterrupted run would have drawn. With a deterministic classifier, `--resume` therefore
//! reproduces the uninterrupted run bit for bit.
//!
//! **Divergence.** A non-finite batch loss or gradient (or test loss), or a mean batch loss that
//! has grown past `train::divergence`'s limit (10⁴ times the first batch's), stops the run at
//! once with [`TrainError::Diverged`]; the checkpoint of the last completed epoch is left
//! untouched (a fresh run that diverges in its first epoch writes its start state, so the folder
//! always holds finite weights) and the summary says `"status": "diverged"` with the reason.
//!
//! **Data parallelism.** [`train_parallel`] runs the same loop in every member of a
//! [`DataParallel`] group (`mpirun -np N symc train`): every member draws the same split and
//! the same shuffled batches from the seed, computes the loss and gradient of its contiguous
//! share of each batch, and the partial sums are added up over the group, so every member takes
//! the identical optimiser step with the gradient of the whole batch. Only member 0 shows
//! progress, evaluates and writes the run folder; whether the run goes on after a failure
//! anywhere is agreed in a collective, so no member waits for one that has stopped.

use super::checkpoint::{self, CheckpointError};
use super::divergence::DivergenceCheck;
use super::mnist::{Mnist, NORMALISATION, Split};
use super::optim::{self, Optimizer};
use super::runlog::{self, EpochRow, LayerStrategy, RunLogError, StepRow, Summary};
use crate::ir::{OptimizerSpec, Schedule};
use crate::runtime::data_parallel::{DataParallel, SingleProcess};
use crate::runtime::{BatchStats, Classifier, RuntimeError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// ChaCha stream ids: one for the validation split, one for shuffling.
const SPLIT_STREAM: u64 = 1;
const SHUFFLE_STREAM: u64 = 2;

/// Errors of a training run.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TrainError {
    #[error("training diverged in epoch {epoch}, step {step}: {what}")]
    #[diagnostic(
        code(symc::train::diverged),
        help(
            "lower the learning rate in the `optimizer` line (10 times smaller is a good first \
try) or add a schedule; the checkpoint of the last completed epoch ({completed} so far; 0 = the \
initial weights) is kept in the run folder"
        )
    )]
    Diverged { epoch: usize, step: u64, what: String, completed: usize },

    #[error("the model does not fit the data: {message}")]
    #[diagnostic(
        code(symc::train::shape),
        help("an MNIST classifier takes real[1, 28, 28] images and outputs 10 classes")
    )]
    Shape { message: String },

    #[error("invalid training setting: {message}")]
    #[diagnostic(code(symc::train::setting))]
    Setting { message: String },

    #[error("cannot resume from {}: {message}", path.display())]
    #[diagnostic(
        code(symc::train::resume),
        help("`--resume DIR` needs a run folder of the same model written by `symc train`")
    )]
    Resume { path: PathBuf, message: String },

    #[error("cannot create the run folder {}: {source}", path.display())]
    #[diagnostic(code(symc::train::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Runtime(#[from] RuntimeError),

    /// A data-parallel run stopped because another member failed (that member reports why).
    #[error("another process of this data-parallel run failed (exit code {code})")]
    #[diagnostic(code(symc::train::elsewhere))]
    Elsewhere { code: u8 },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Checkpoint(#[from] CheckpointError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    RunLog(#[from] RunLogError),
}

impl TrainError {
    /// Process exit code: 1 for problems of the model or run (divergence, shapes), 2 for I/O.
    pub fn exit_code(&self) -> u8 {
        match self {
            TrainError::Diverged { .. } | TrainError::Shape { .. } | TrainError::Runtime(_) => 1,
            TrainError::Setting { .. } => 2,
            TrainError::Elsewhere { code } => *code,
            TrainError::Resume { .. } | TrainError::Io { .. } => 2,
            TrainError::Checkpoint(CheckpointError::Mismatch { .. }) => 1,
            TrainError::Checkpoint(_) | TrainError::RunLog(_) => 2,
        }
    }
}

/// Everything a classifier run needs besides the classifier and the data.
#[derive(Clone, Debug)]
pub struct ClassifyOptions {
    /// Total epochs (a resumed run continues up to this number).
    pub epochs: usize,
    pub batch: usize,
    /// Batch size for evaluation (validation and test); must not exceed what the classifier
    /// was compiled for.
    pub eval_batch: usize,
    pub optimizer: OptimizerSpec,
    pub schedule: Schedule,
    /// Fraction of the training set held out for validation.
    pub validation: f64,
    pub seed: u64,
    pub out_dir: PathBuf,
    /// Show the indicatif progress bar (it hides itself anyway when stderr is not a terminal).
    pub progress: bool,
    /// Recorded in the summary.
    pub info: RunInfo,
}

/// Descriptive facts recorded in `summary.json`.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    pub model_file: Option<String>,
    pub data_dir: Option<String>,
    pub threads: usize,
    /// Processes of a data-parallel run (the summary's `ranks`; 0 is read as 1).
    pub ranks: usize,
    pub precision: String,
    pub backend: String,
    pub strategies: Vec<LayerStrategy>,
}

/// Loss and accuracy over a set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
}

/// Result of [`evaluate`] with the per-sample predictions.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    pub eval: Evaluation,
    /// Arg-max class of every evaluated sample, in order.
    pub predicted: Vec<u8>,
}

/// Number of classes the classifier outputs.
pub fn classes(clf: &dyn Classifier) -> usize {
    let g = clf.graph();
    g.value(g.output).real_len()
}

/// Checks that `clf` takes images of `split`'s size and outputs at least as many classes as
/// there are label values.
pub fn check_shapes(clf: &dyn Classifier, split: &Split) -> Result<(), TrainError> {
    let g = clf.graph();
    let input = g.values.first().map(|v| v.real_len()).unwrap_or(0);
    if input != split.image_len() {
        return Err(TrainError::Shape {
            message: format!(
                "model `{}` takes {input} values per sample, the images have {}x{} = {}",
                g.name,
                split.rows(),
                split.cols(),
                split.image_len()
            ),
        });
    }
    let c = classes(clf);
    if c < 10 {
        return Err(TrainError::Shape {
            message: format!("model `{}` outputs {c} classes, the labels are digits 0..=9", g.name),
        });
    }
    Ok(())
}

/// Mean NLL and accuracy of `clf` on the samples `indices` of `split` (all when `None`).
pub fn evaluate(
    clf: &dyn Classifier,
    params: &[f32],
    split: &Split,
    indices: Option<&[usize]>,
    batch: usize,
) -> Result<Predictions, TrainError> {
    let all: Vec<usize>;
    let idx = match indices {
        Some(i) => i,
        None => {
            all = (0..split.len()).collect();
            &all
        }
    };
    let c = classes(clf);
    let n_in = split.image_len();
    let batch = batch.max(1);
    let mut images = Vec::with_capacity(batch * n_in);
    let mut logp = vec![0.0f32; batch * c];
    let (mut loss, mut correct) = (0.0f64, 0usize);
    let mut predicted = Vec::with_capacity(idx.len());
    for chunk in idx.chunks(batch) {
        images.clear();
        for &i in chunk {
            images.extend(split.image(i));
        }
        let out = &mut logp[..chunk.len() * c];
        clf.predict(params, &images, out)?;
        for (k, &i) in chunk.iter().enumerate() {
            let row = &out[k * c..(k + 1) * c];
            let label = split.labels[i] as usize;
            loss -= row[label] as f64;
            let arg = argmax(row);
            correct += (arg == label) as usize;
            predicted.push(arg as u8);
        }
    }
    let n = idx.len().max(1) as f64;
    Ok(Predictions { eval: Evaluation { loss: loss / n, accuracy: correct as f64 / n }, predicted })
}

/// Index of the largest entry (first one on ties; NaN never wins).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || row[best].is_nan() {
            best = i;
        }
    }
    best
}

/// The seeded validation split: (training indices sorted, validation indices sorted).
pub fn split_indices(n: usize, validation: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let n_val = ((n as f64) * validation).round() as usize;
    let mut perm: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(SPLIT_STREAM);
    perm.shuffle(&mut rng);
    let mut val = perm[..n_val.min(n)].to_vec();
    let mut train = perm[n_val.min(n)..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

/// State carried from epoch to epoch (and through checkpoints).
struct LoopState {
    params: Vec<f32>,
    opt: Optimizer,
    rng: ChaCha8Rng,
    epochs_done: usize,
    global_step: u64,
    history: Vec<EpochRow>,
    /// The mean loss of every step so far (`steps.csv`).
    steps: Vec<StepRow>,
    /// The divergence rule with the run's reference loss (kept in the checkpoint).
    divergence: DivergenceCheck,
}

/// The state of a fresh run with weights `params`.
fn fresh_state(opts: &ClassifyOptions, params: Vec<f32>) -> LoopState {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    rng.set_stream(SHUFFLE_STREAM);
    LoopState {
        opt: Optimizer::new(&opts.optimizer, params.len()),
        params,
        rng,
        epochs_done: 0,
        global_step: 0,
        history: Vec::new(),
        steps: Vec::new(),
        divergence: DivergenceCheck::default(),
    }
}

fn resume_state(
    clf: &dyn Classifier,
    opts: &ClassifyOptions,
    dir: &Path,
) -> Result<LoopState, TrainError> {
    let path = dir.join(checkpoint::FILE_NAME);
    let ck = checkpoint::load(&path, clf.graph())?;
    let bad = |message: String| TrainError::Resume { path: path.clone(), message };
    let mut opt = Optimizer::new(&opts.optimizer, ck.params.len());
    let kind = ck.meta_str(&path, "optimizer")?;
    if kind != opt.name() {
        return Err(bad(format!(
            "the checkpoint holds `{kind}` state, the model trains with `{}`",
            opt.name()
        )));
    }
    for (name, buf) in opt.buffers_mut() {
        *buf = ck
            .optimizer
            .get(name)
            .cloned()
            .ok_or_else(|| bad(format!("optimizer buffer `{name}` is missing")))?;
    }
    opt.set_steps(ck.meta_parse(&path, "optimizer_steps")?);
    let seed: u64 = ck.meta_parse(&path, "seed")?;
    if seed != opts.seed {
        return Err(bad(format!("the run used seed {seed}, not {}", opts.seed)));
    }
    let batch: usize = ck.meta_parse(&path, "batch")?;
    if batch != opts.batch {
        return Err(bad(format!("the run used batch {batch}, not {}", opts.batch)));
    }
    let validation: f64 = ck.meta_parse(&path, "validation")?;
    if validation != opts.validation {
        return Err(bad(format!(
            "the run held out {validation} for validation, not {}",
            opts.validation
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(SHUFFLE_STREAM);
    rng.set_word_pos(ck.meta_parse(&path, "rng_word_pos")?);
    let history: Vec<EpochRow> = serde_json::from_str(ck.meta_str(&path, "history")?)
        .map_err(|e| bad(format!("metadata `history` is invalid: {e}")))?;
    let epochs_done: usize = ck.meta_parse(&path, "epoch")?;
    if history.len() != epochs_done {
        return Err(bad(format!("{} history rows for {epochs_done} epochs", history.len())));
    }
    let global_step = ck.meta_parse(&path, "global_step")?;
    // The steps of the checkpointed epochs (a crash may have come after a later write);
    // a folder from before `steps.csv` existed continues the file from here.
    let mut steps = runlog::read_steps(dir)?.unwrap_or_default();
    steps.retain(|r| r.step <= global_step);
    // Absent in checkpoints written before the growth rule: the resumed run's first batch
    // then becomes the reference.
    let reference = ck.meta.get("reference_loss").and_then(|r| r.parse().ok());
    let divergence = DivergenceCheck::new(reference);
    Ok(LoopState {
        params: ck.params,
        opt,
        rng,
        epochs_done,
        global_step,
        history,
        steps,
        divergence,
    })
}

fn save_checkpoint(
    clf: &dyn Classifier,
    opts: &ClassifyOptions,
    st: &LoopState,
) -> Result<(), TrainError> {
    let mut meta = BTreeMap::new();
    meta.insert("epoch".to_string(), st.epochs_done.to_string());
    meta.insert("global_step".to_string(), st.global_step.to_string());
    meta.insert("optimizer".to_string(), st.opt.name().to_string());
    meta.insert("optimizer_steps".to_string(), st.opt.steps().to_string());
    meta.insert("seed".to_string(), opts.seed.to_string());
    meta.insert("batch".to_string(), opts.batch.to_string());
    meta.insert("validation".to_string(), opts.validation.to_string());
    meta.insert("rng_word_pos".to_string(), st.rng.get_word_pos().to_string());
    if let Some(r) = st.divergence.reference() {
        meta.insert("reference_loss".to_string(), format!("{r:e}"));
    }
    meta.insert(
        "history".to_string(),
        serde_json::to_string(&st.history)
            .map_err(|e| TrainError::Setting { message: e.to_string() })?,
    );
    let path = opts.out_dir.join(checkpoint::FILE_NAME);
    checkpoint::save(&path, clf.graph(), &st.params, &st.opt.buffers(), &meta)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn summary(
    clf: &dyn Classifier,
    opts: &ClassifyOptions,
    st: &LoopState,
    status: &str,
    message: Option<String>,
    n_train: usize,
    n_val: usize,
    n_test: usize,
) -> Summary {
    let last = st.history.last();
    let best = st.history.iter().fold(None::<&EpochRow>, |b, r| match b {
        Some(b) if b.test_acc >= r.test_acc => Some(b),
        _ => Some(r),
    });
    Summary {
        model: clf.graph().name.clone(),
        model_file: opts.info.model_file.clone(),
        data_dir: opts.info.data_dir.clone(),
        status: status.to_string(),
        message,
        test_accuracy: last.map(|r| r.test_acc),
        test_loss: last.map(|r| r.test_loss),
        best_test_accuracy: best.map(|r| r.test_acc),
        best_epoch: best.map(|r| r.epoch),
        epochs: st.history.len(),
        epochs_planned: opts.epochs,
        epoch_seconds: st.history.iter().map(|r| r.seconds).collect(),
        final_train_loss: last.map(|r| r.train_loss),
        final_train_accuracy: last.map(|r| r.train_acc),
        final_val_accuracy: last.and_then(|r| r.val_acc),
        params: clf.graph().param_count(),
        steps: st.global_step,
        batch: opts.batch,
        seed: opts.seed,
        threads: opts.info.threads,
        ranks: opts.info.ranks.max(1),
        precision: opts.info.precision.clone(),
        backend: opts.info.backend.clone(),
        optimizer: optim::describe_optimizer(&opts.optimizer),
        schedule: optim::describe_schedule(&opts.schedule),
        validation: opts.validation,
        train_samples: n_train,
        val_samples: n_val,
        test_samples: n_test,
        normalisation: NORMALISATION.to_string(),
        strategies: opts.info.strategies.clone(),
    }
}

/// Trains `clf` on `data` in this process alone; see [`train_parallel`].
pub fn train(
    clf: &dyn Classifier,
    data: &Mnist,
    opts: &ClassifyOptions,
    init: Vec<f32>,
    resume: Option<&Path>,
) -> Result<Summary, TrainError> {
    train_parallel(clf, data, opts, init, resume, &SingleProcess)
}

/// The checks every member makes and the state it starts from: (state, training indices,
/// validation indices). Only the root creates the run folder.
fn prepare(
    clf: &dyn Classifier,
    data: &Mnist,
    opts: &ClassifyOptions,
    init: Vec<f32>,
    resume: Option<&Path>,
    root: bool,
) -> Result<(LoopState, Vec<usize>, Vec<usize>), TrainError> {
    if opts.batch == 0 {
        return Err(TrainError::Setting { message: "batch size must be at least 1".into() });
    }
    if !(0.0..1.0).contains(&opts.validation) {
        return Err(TrainError::Setting {
            message: format!("validation fraction {} must be in [0, 1)", opts.validation),
        });
    }
    check_shapes(clf, &data.train)?;
    check_shapes(clf, &data.test)?;
    let n_scalars = clf.graph().param_scalars();
    if root {
        std::fs::create_dir_all(&opts.out_dir)
            .map_err(|source| TrainError::Io { path: opts.out_dir.clone(), source })?;
    }
    let st = match resume {
        Some(dir) => resume_state(clf, opts, dir)?,
        None => {
            if init.len() != n_scalars {
                return Err(TrainError::Shape {
                    message: format!(
                        "{} initial parameters, the model has {n_scalars}",
                        init.len()
                    ),
                });
            }
            fresh_state(opts, init)
        }
    };
    let (train_idx, val_idx) = split_indices(data.train.len(), opts.validation, opts.seed);
    if train_idx.is_empty() {
        return Err(TrainError::Setting { message: "the training set is empty".into() });
    }
    Ok((st, train_idx, val_idx))
}

/// `result` if every member of `group` got `Ok`; otherwise an error on every member: its own,
/// or [`TrainError::Elsewhere`] with the worst exit code. One collective, made by all members.
fn agreed<T>(group: &dyn DataParallel, result: Result<T, TrainError>) -> Result<T, TrainError> {
    if group.size() == 1 {
        return result;
    }
    let code = result.as_ref().err().map_or(0, |e| e.exit_code().max(1));
    match group.worst(code) {
        0 => result,
        worst => result.and(Err(TrainError::Elsewhere { code: worst })),
    }
}

/// One step's statistics and gradient of the whole batch of `n` samples, from this member's
/// share (`images`, `labels`) and the other members'. The kernels give the mean over the
/// share; times the share's size that is its partial sum, and the group's sum over `n` is the
/// batch mean. The sums are taken in f64, so with one member the gradient comes back exactly.
/// A member's failure travels in the same sum, so every member stops at the same step.
#[allow(clippy::too_many_arguments)]
fn sum_step(
    clf: &dyn Classifier,
    group: &dyn DataParallel,
    params: &[f32],
    images: &[f32],
    labels: &[u8],
    n: usize,
    grad: &mut [f32],
    partial: &mut Vec<f64>,
) -> Result<BatchStats, TrainError> {
    let local = if labels.is_empty() {
        Ok(BatchStats::default())
    } else {
        clf.train_batch(params, images, labels, grad)
    };
    let m = labels.len() as f64;
    partial.clear();
    match &local {
        Ok(_) if !labels.is_empty() => partial.extend(grad.iter().map(|&g| g as f64 * m)),
        _ => partial.resize(grad.len(), 0.0),
    }
    let s = local.as_ref().copied().unwrap_or_default();
    let failed = f64::from(u8::from(local.is_err()));
    partial.extend([s.loss_sum, s.correct as f64, s.samples as f64, failed]);
    group.sum(partial);
    let (sums, totals) = partial.split_at(grad.len());
    if totals[3] != 0.0 {
        return Err(match local {
            Err(e) => e.into(),
            Ok(_) => TrainError::Elsewhere { code: 1 },
        });
    }
    let n = n.max(1) as f64;
    for (g, &v) in grad.iter_mut().zip(sums) {
        *g = (v / n) as f32;
    }
    Ok(BatchStats { loss_sum: totals[0], correct: totals[1] as usize, samples: totals[2] as usize })
}

/// Trains `clf` on `data`, starting from `init` parameters or from the checkpoint in `resume`,
/// as one member of `group` (see the module doc): every member must call it with the same
/// classifier, data and options. Member 0 writes the run folder `opts.out_dir` (created if
/// needed); every member returns the final summary, but only member 0's has evaluations.
pub fn train_parallel(
    clf: &dyn Classifier,
    data: &Mnist,
    opts: &ClassifyOptions,
    init: Vec<f32>,
    resume: Option<&Path>,
    group: &dyn DataParallel,
) -> Result<Summary, TrainError> {
    let root = group.is_root();
    let parallel = group.size() > 1;
    let (mut st, train_idx, val_idx) = agreed(group, prepare(clf, data, opts, init, resume, root))?;
    // The weights a fresh run starts from: what it keeps if it diverges before its first
    // checkpoint.
    let start = resume.is_none().then(|| st.params.clone());

    let (n_train, n_val, n_test) = (train_idx.len(), val_idx.len(), data.test.len());
    let steps_per_epoch = n_train.div_ceil(opts.batch) as u64;
    let total_steps = steps_per_epoch * opts.epochs as u64;
    let base_lr = optim::base_lr(&opts.optimizer);
    let n_in = data.train.image_len();
    let mut grad = vec![0.0f32; st.params.len()];
    let mut partial = Vec::new();
    let mut images = Vec::with_capacity(opts.batch * n_in);
    let mut labels = Vec::with_capacity(opts.batch);

    let bar = if opts.progress && root {
        ProgressBar::with_draw_target(Some(steps_per_epoch), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let log = |line: String| {
        // The bar is hidden on every member but the root.
        if !bar.is_hidden() {
            bar.println(line);
        } else if root {
            eprintln!("{line}");
        }
    };
    let write_logs =
        |st: &LoopState, status: &str, message: Option<String>| -> Result<(), TrainError> {
            runlog::write_csv(&opts.out_dir, &st.history)?;
            runlog::write_steps(&opts.out_dir, &st.steps)?;
            runlog::write_summary(
                &opts.out_dir,
                &summary(clf, opts, st, status, message, n_train, n_val, n_test),
            )?;
            Ok(())
        };
    // Records a divergence and returns the error to report: the summary says why, and the
    // checkpoint on disk stays the last good one. Only the root writes.
    let stop = |st: &LoopState, e: TrainError| -> TrainError {
        if !root {
            return e;
        }
        let kept = match &start {
            Some(p) if st.epochs_done == 0 => {
                let mut first = fresh_state(opts, p.clone());
                first.divergence = st.divergence.clone();
                save_checkpoint(clf, opts, &first)
            }
            _ => Ok(()),
        };
        match kept.and_then(|()| write_logs(st, "diverged", Some(e.to_string()))) {
            Ok(()) => e,
            Err(w) => w,
        }
    };

    while st.epochs_done < opts.epochs {
        let epoch = st.epochs_done + 1;
        bar.reset();
        bar.set_prefix(format!("epoch {epoch}/{}", opts.epochs));
        let mut order = train_idx.clone();
        order.shuffle(&mut st.rng);
        let t0 = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = base_lr;
        for (k, chunk) in order.chunks(opts.batch).enumerate() {
            images.clear();
            labels.clear();
            for &i in &chunk[group.share(chunk.len())] {
                images.extend(data.train.image(i));
                labels.push(data.train.labels[i]);
            }
            lr = optim::lr_at(
                base_lr,
                &opts.schedule,
                st.global_step,
                total_steps,
                epoch - 1,
                false,
            );
            let stats = if parallel {
                let (p, n) = (&st.params, chunk.len());
                sum_step(clf, group, p, &images, &labels, n, &mut grad, &mut partial)?
            } else {
                clf.train_batch(&st.params, &images, &labels, &mut grad)?
            };
            let step = st.global_step + 1;
            let diverged = |what: String| TrainError::Diverged {
                epoch,
                step,
                what,
                completed: st.epochs_done,
            };
            // Every decision from here on is made on sums every member holds bit for bit.
            if !stats.loss_sum.is_finite() {
                return Err(stop(&st, diverged(format!("the batch loss is {}", stats.loss_sum))));
            }
            let mean = stats.loss_sum / stats.samples.max(1) as f64;
            if let Err(d) = st.divergence.check(mean) {
                return Err(stop(&st, diverged(d.describe("the mean batch loss"))));
            }
            if !st.opt.step(&mut st.params, &grad, lr as f32).finite {
                return Err(stop(&st, diverged("the gradient has NaN or infinite entries".into())));
            }
            st.global_step = step;
            st.steps.push(StepRow { step, epoch, loss: mean, lr });
            loss_sum += stats.loss_sum;
            correct += stats.correct;
            seen += stats.samples;
            if k % 16 == 0 || k + 1 == steps_per_epoch as usize {
                let secs = t0.elapsed().as_secs_f64().max(1e-9);
                bar.set_position(k as u64 + 1);
                bar.set_message(format!(
                    "loss {:.4} acc {:.2}% {:.0} samples/s",
                    loss_sum / seen.max(1) as f64,
                    100.0 * correct as f64 / seen.max(1) as f64,
                    seen as f64 / secs
                ));
            }
        }
        let seconds = t0.elapsed().as_secs_f64();
        // Evaluation, checkpoint and logs: the root's alone; the others learn whether they
        // worked before going on.
        let mut end_epoch = || -> Result<(), TrainError> {
            let t1 = Instant::now();
            let val = if val_idx.is_empty() {
                None
            } else {
                Some(evaluate(clf, &st.params, &data.train, Some(&val_idx), opts.eval_batch)?.eval)
            };
            let test = evaluate(clf, &st.params, &data.test, None, opts.eval_batch)?.eval;
            let eval_seconds = t1.elapsed().as_secs_f64();
            if !test.loss.is_finite() {
                let e = TrainError::Diverged {
                    epoch,
                    step: st.global_step,
                    what: format!("the test loss is {}", test.loss),
                    completed: st.epochs_done,
                };
                return Err(stop(&st, e));
            }
            let row = EpochRow {
                epoch,
                train_loss: loss_sum / seen.max(1) as f64,
                train_acc: correct as f64 / seen.max(1) as f64,
                val_loss: val.map(|v| v.loss),
                val_acc: val.map(|v| v.accuracy),
                test_loss: test.loss,
                test_acc: test.accuracy,
                seconds,
                lr,
                eval_seconds,
            };
            log(format!(
                "epoch {epoch:>3}/{}: train loss {:.4} acc {:.2}%{}  test loss {:.4} acc {:.2}%  {:.1} s ({:.0} samples/s)  lr {:.2e}",
                opts.epochs,
                row.train_loss,
                100.0 * row.train_acc,
                val.map(|v| format!("  val loss {:.4} acc {:.2}%", v.loss, 100.0 * v.accuracy))
                    .unwrap_or_default(),
                row.test_loss,
                100.0 * row.test_acc,
                seconds,
                seen as f64 / seconds.max(1e-9),
                lr
            ));
            st.history.push(row);
            st.epochs_done = epoch;
            save_checkpoint(clf, opts, &st)?;
            let status = if st.epochs_done == opts.epochs { "completed" } else { "running" };
            write_logs(&st, status, None)
        };
        agreed(group, if root { end_epoch() } else { Ok(()) })?;
        st.epochs_done = epoch;
    }
    bar.finish_and_clear();
    if st.history.is_empty() && root {
        // Nothing trained (epochs = 0, or resumed at the end): still leave a consistent folder.
        write_logs(&st, "completed", None)?;
    }
    Ok(summary(clf, opts, &st, "completed", None, n_train, n_val, n_test))
}
