//! `symc train FILE`: compile a model and train it from its `train` block, writing a run folder.
//!
//! The command dispatches on what the model is: a classifier (NLL loss on real images) goes to
//! [`crate::train::classify`]; a fermion/gauge network (preconditioner losses) goes to the
//! preconditioner trainer. This file only resolves options (flags over the `train` block over
//! defaults), loads data and picks the back end; the loop itself lives in `train/`.
//!
//! Under `mpirun` ([`run_in`] with the processes as a [`DataParallel`] group) a classifier
//! trains data-parallel on every process, a preconditioner split over them (or on rank 0
//! alone, with a note, when `train::precond::share::refusal` names a reason); every process
//! makes the same checks, their outcome is agreed before training starts, and only rank 0
//! prints and writes.

use super::Failure;
use crate::ir::{DataSource, Graph, LossSpec, TrainLength};
use crate::lattice::io::{TimestampStyle, utc_timestamp};
use crate::runtime::Classifier;
use crate::runtime::classifier::{CompileOptions, JitClassifier};
use crate::runtime::data_parallel::{self, DataParallel, SingleProcess};
use crate::runtime::reference::ReferenceClassifier;
use crate::train::classify::{self, ClassifyOptions, RunInfo, TrainError};
use crate::train::precond::share::LatticeShare;
use crate::train::precond::{self, RunOptions};
use crate::train::runlog::{self, LayerStrategy};
use crate::train::{checkpoint, mnist, plot};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Batch size of `symc eval` (a classifier compiled just for inference).
pub const EVAL_BATCH: usize = 1000;
/// Name of the model source copy inside a run folder.
pub const MODEL_COPY: &str = "model.sym";

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  symc train models/digits_conv.sym\n  \
symc train models/digits_conv.sym --epochs 15 --out runs/conv\n  \
symc train models/digits_dense.sym --epochs 15 --out runs/dense --threads 2\n  \
symc train models/digits_conv.sym --data ~/datasets/mnist --seed 3\n  \
symc train --resume runs/conv --epochs 20        # continue a run (the folder keeps model.sym)\n  \
symc train models/ptc_mg_full.sym --init runs/ptc_smoother   # warm start from trained pieces\n  \
symc train models/digits_conv.sym --reference --epochs 1 --batch 16   # the slow oracle\n\n\
The run folder holds train.csv (one row per epoch), summary.json, checkpoint.safetensors \
(written atomically after every epoch), model.sym (a copy of the model) and loss.svg/loss.png. \
Flags override the model's train block. Exit codes: 0 done, 1 model problem or diverged run, \
2 usage or I/O error.")]
pub struct TrainArgs {
    /// The .sym model to train (optional with --resume: the run folder keeps a copy).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Total number of epochs (a resumed run continues up to this number).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Run folder [default: runs/<model>-<UTC timestamp>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed for initialisation, validation split and shuffling [default: the train block's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Folder with the MNIST IDX files (raw or .gz); overrides the train block's `data`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint (results are written into DIR).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Warm start: copy the weights of the layers of the same name from the run in DIR (or a
    /// checkpoint file) before training; repeat to combine several trained pieces (later ones
    /// win). Layers the run does not have keep their initial values.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub init: Vec<PathBuf>,
    /// Mini-batch size [default: the train block's].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Run on the plain-Rust reference evaluator instead of the JIT kernels (slow; the oracle).
    #[arg(long)]
    pub reference: bool,
    /// Preconditioners: override the number of training steps of the `train` block.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Preconditioners: override the number of random right-hand sides of the final solve.
    #[arg(long)]
    pub rhs: Option<usize>,
    /// Preconditioners: skip the final FGMRES comparison.
    #[arg(long)]
    pub no_evaluate: bool,
    /// Preconditioners: lattice extents XxYxZxT of the `gauge load(...)` file, for a LIME file
    /// that does not state them.
    #[arg(long, value_name = "XxYxZxT", value_parser = super::gauge::parse_hint_dims)]
    pub gauge_dims: Option<[usize; 4]>,
    /// Preconditioners: stored precision (f32 or f64) of the `gauge load(...)` file.
    #[arg(long, value_name = "f32|f64", value_parser = super::gauge::parse_hint_precision)]
    pub gauge_precision: Option<crate::lattice::io::Precision>,
    /// Preconditioners under `mpirun -np N` (build with `--features mpi`): processes along
    /// x, y, z, t (`PXxPYxPZxPT`, product N) the lattice is split over. Default: chosen from N
    /// and the lattice (t, the direction the kernels vectorise, is never split).
    #[arg(long, value_name = "PXxPYxPZxPT", value_parser = super::gauge::parse_hint_dims)]
    pub procs: Option<[usize; 4]>,
}

/// A compiled classifier and how each layer is executed.
pub struct Backend {
    pub classifier: Box<dyn Classifier>,
    pub name: &'static str,
    pub strategies: Vec<LayerStrategy>,
}

/// Builds the JIT classifier (or the reference evaluator) for `graph`.
pub fn build_classifier(
    graph: &Graph,
    reference: bool,
    max_batch: usize,
    threads: usize,
) -> Result<Backend, Failure> {
    if reference {
        let clf = ReferenceClassifier::new(graph).map_err(Failure::model)?;
        let strategies = graph
            .layers
            .iter()
            .map(|l| LayerStrategy {
                layer: l.name.clone(),
                kind: layer_kind_name(&l.kind).into(),
                pass: "all".into(),
                strategy: "reference".into(),
                reason: "--reference: the naive plain-Rust evaluator (the oracle)".into(),
            })
            .collect();
        return Ok(Backend { classifier: Box::new(clf), name: "reference", strategies });
    }
    let opts = CompileOptions { max_batch, threads, ..CompileOptions::default() };
    let clf = JitClassifier::compile(graph, &opts)
        .map_err(|e| Failure::model(crate::runtime::RuntimeError::from(e)))?;
    let kind_of = |name: &str| {
        graph.layers.iter().find(|l| l.name == name).map_or("", |l| layer_kind_name(&l.kind))
    };
    let strategies = clf
        .plans()
        .iter()
        .map(|p| LayerStrategy {
            layer: p.layer.clone(),
            kind: kind_of(&p.layer).into(),
            pass: format!("{:?}", p.pass).to_lowercase(),
            strategy: format!("{:?}", p.strategy).to_lowercase(),
            reason: p.reason.clone(),
        })
        .collect();
    Ok(Backend { classifier: Box::new(clf), name: "jit", strategies })
}

/// Short name of a layer kind for summaries.
pub fn layer_kind_name(kind: &crate::ir::LayerKind) -> &'static str {
    use crate::ir::LayerKind as K;
    match kind {
        K::Dense { .. } => "dense",
        K::Conv { .. } => "conv",
        K::Activation(_) => "activation",
        K::NormGate => "norm_gate",
        K::Flatten => "flatten",
        K::LogSoftmax => "log_softmax",
        K::Ptc { .. } => "ptc",
        K::Transport { .. } => "transport",
        K::Add => "add",
        K::CoarseLevel(_) => "coarse_level",
    }
}

/// Sets the size of rayon's global pool (once per process, `runtime::init_pool`; `cli::run`
/// has already built it with this command's `--threads`) and returns the threads in use.
pub fn init_threads(threads: Option<usize>) -> usize {
    crate::runtime::init_pool(threads)
}

/// What a previous run recorded, for `--resume`.
struct Previous {
    summary: runlog::Summary,
}

pub fn run(args: TrainArgs) -> Result<(), Failure> {
    if let Some(p) = args.procs.filter(|p| p.iter().product::<usize>() != 1) {
        return Err(Failure::io(miette::miette!(
            code = "symc::cli::usage",
            help = "several processes need a build with --features mpi and `mpirun -np N symc train ...`",
            "--procs {}x{}x{}x{} splits the lattice over {} processes, but this is one process",
            p[0],
            p[1],
            p[2],
            p[3],
            p.iter().product::<usize>()
        )));
    }
    run_in(args, &SingleProcess, None)
}

/// `result` if every member of `group` got `Ok`; otherwise a failure on every member: its
/// own, or "another process failed" with the worst exit code (`cli::mpi` prints only the
/// first real failure). One collective, made by all members.
fn agree<T>(group: &dyn DataParallel, result: Result<T, Failure>) -> Result<T, Failure> {
    if group.size() == 1 {
        return result;
    }
    let code = result.as_ref().err().map_or(0, |f| f.code.max(1));
    match group.worst(code) {
        0 => result,
        worst => result.and(Err(Failure {
            code: worst,
            report: miette::Report::new(TrainError::Elsewhere { code: worst }),
        })),
    }
}

/// `symc train` as one member of `group`: see the module doc. `run` is the one-process case.
/// `lattice` is the launch's processes for a preconditioner split over them (`None`: a
/// preconditioner trains on rank 0 alone).
pub fn run_in(
    args: TrainArgs,
    group: &dyn DataParallel,
    lattice: Option<&dyn LatticeShare>,
) -> Result<(), Failure> {
    let (model_path, graph, spec) = agree(group, load(&args))?;
    let root = group.is_root();
    match spec.loss {
        LossSpec::Nll => {
            if root && (args.gauge_dims.is_some() || args.gauge_precision.is_some()) {
                eprintln!(
                    "warning: --gauge-dims/--gauge-precision describe the gauge file of a \
                     preconditioner model; the classifier `{}` loads none, so they are ignored",
                    graph.name
                );
            }
            let previous = match &args.resume {
                Some(dir) => Some(runlog::read_summary(dir).map_err(Failure::io)),
                None => None,
            }
            .transpose()
            .map(|s| s.map(|summary| Previous { summary }));
            let previous = agree(group, previous)?;
            train_classifier(args, previous, &model_path, graph, group)
        }
        // A network of global-weight gauge layers trains split over the processes (each its
        // sub-lattice); the others train on rank 0, and `cli::mpi` makes the rest wait for
        // its exit code.
        LossSpec::Preconditioner
        | LossSpec::Filtered { .. }
        | LossSpec::LowModes { .. }
        | LossSpec::Coarse => {
            let refusal = precond::share::refusal(&graph, &spec.loss);
            match (lattice.filter(|l| l.group().size() > 1), refusal) {
                (Some(l), None) => train_preconditioner(&args, &model_path, &graph, Some(l)),
                (Some(_), Some(why)) if root => {
                    eprintln!(
                        "note: `{}` trains on rank 0 alone: {why} cannot be split over processes yet",
                        graph.name
                    );
                    train_preconditioner(&args, &model_path, &graph, None)
                }
                (None, _) if root => train_preconditioner(&args, &model_path, &graph, None),
                _ => Ok(()),
            }
        }
        LossSpec::Mse => Err(Failure::model(miette::miette!(
            code = "symc::train::loss",
            help = "symc trains classifiers (loss nll) and Dirac preconditioners (loss preconditioner / filtered)",
            "`loss mse` has no training data source in this build (model `{}`)",
            graph.name
        ))),
    }
}

/// The model file, its checked graph and its train block.
fn load(args: &TrainArgs) -> Result<(PathBuf, Graph, crate::ir::TrainSpec), Failure> {
    let model_path = match (&args.file, &args.resume) {
        (Some(f), _) => f.clone(),
        (None, Some(dir)) => dir.join(MODEL_COPY),
        (None, None) => {
            return Err(Failure::io(miette::miette!(
                code = "symc::cli::usage",
                help =
                    "e.g. `symc train models/digits_conv.sym`, or `symc train --resume runs/conv`",
                "no model given: pass a .sym FILE or --resume DIR"
            )));
        }
    };
    let graph = crate::sema::load_model(&model_path).map_err(|e| {
        let code = e.exit_code();
        Failure { code, report: miette::Report::new(e) }
    })?;
    let Some(spec) = graph.train.clone() else {
        return Err(Failure::model(miette::miette!(
            code = "symc::train::no_train_block",
            help = "add a `train <model> { ... }` block (see models/digits_conv.sym)",
            "{} has no train block for network `{}`",
            model_path.display(),
            graph.name
        )));
    };
    Ok((model_path, graph, spec))
}

/// Fermion networks (gauge-equivariant or dense preconditioners): trained by
/// [`crate::train::precond`], which ends with an FGMRES comparison with and without the network.
fn train_preconditioner(
    args: &TrainArgs,
    model_path: &Path,
    graph: &Graph,
    share: Option<&dyn LatticeShare>,
) -> Result<(), Failure> {
    let root = share.is_none_or(|s| s.group().is_root());
    let source = std::fs::read_to_string(model_path)
        .map_err(|e| Failure::io(miette::miette!("cannot read {}: {e}", model_path.display())))?;
    let (out, resume) = match (&args.resume, &args.out) {
        (Some(dir), _) => (dir.clone(), true),
        (None, Some(dir)) => (dir.clone(), false),
        (None, None) => (PathBuf::from("runs").join(&graph.name), false),
    };
    init_threads(args.threads);
    let mut opts = RunOptions::new(&out);
    opts.resume = resume;
    opts.steps = args.steps;
    opts.rhs = args.rhs;
    opts.evaluate = !args.no_evaluate;
    opts.model_file = Some(model_path.to_path_buf());
    opts.source = Some(source);
    opts.progress = root;
    opts.init = args.init.clone();
    let flags = super::gauge::GAUGE_HINT_FLAGS;
    opts.gauge_read = super::gauge::hinted_read(true, args.gauge_dims, args.gauge_precision, flags);
    let summary = precond::run_split(graph, &opts, share)
        .map_err(|e| Failure { code: e.exit_code(), report: e.into() })?;
    if !root {
        return Ok(());
    }
    println!("run folder: {}", out.display());
    if let Some(l) = summary.final_loss_mean {
        println!("final loss (mean of the last 10 % of steps): {l:.4e}");
    }
    if let Some(s) = &summary.solve {
        let what = if s.system == "coarse" { "coarse system D_c, M_c alone: " } else { "" };
        println!(
            "{what}FGMRES({}) to {:e}: {:.1} iterations / {:.3} s unpreconditioned, {:.1} iterations / \
             {:.3} s preconditioned ({:.2}x fewer iterations, {:.2}x faster)",
            s.restart,
            s.tol,
            s.unpreconditioned.iterations,
            s.unpreconditioned.seconds,
            s.preconditioned.iterations,
            s.preconditioned.seconds,
            s.iteration_ratio,
            s.speedup
        );
    }
    Ok(())
}

/// What every member of a classifier run has before the loop starts.
struct Setup {
    data: mnist::Mnist,
    backend: Backend,
    init: Vec<f32>,
    opts: ClassifyOptions,
}

fn train_classifier(
    args: TrainArgs,
    previous: Option<Previous>,
    model_path: &Path,
    graph: Graph,
    group: &dyn DataParallel,
) -> Result<(), Failure> {
    let root = group.is_root();
    let Setup { data, backend, init, opts } =
        agree(group, setup_classifier(&args, previous, model_path, &graph, group))?;
    let out_dir = opts.out_dir.clone();
    let result = classify::train_parallel(
        backend.classifier.as_ref(),
        &data,
        &opts,
        init,
        args.resume.as_deref(),
        group,
    );
    if !root {
        return result.map(|_| ()).map_err(|e| Failure { code: e.exit_code(), report: e.into() });
    }
    // The loss plot is drawn whatever happened, as long as an epoch completed.
    if let Ok(rows) = runlog::read_csv(&out_dir)
        && !rows.is_empty()
    {
        let curve = plot::Curve { name: graph.name.clone(), rows };
        if let Err(e) =
            plot::plot_losses(&[curve], &out_dir.join("loss"), &format!("{}: loss", graph.name))
        {
            eprintln!("warning: could not draw the loss plot: {e}");
        }
    }
    let summary =
        result.map_err(|e| Failure { code: e.exit_code(), report: miette::Report::new(e) })?;
    match (summary.test_accuracy, summary.best_test_accuracy, summary.best_epoch) {
        (Some(acc), Some(best), Some(be)) => println!(
            "{}: test accuracy {:.2}% after {} epochs (best {:.2}% at epoch {be}); final train loss {:.4}; run folder {}",
            graph.name,
            100.0 * acc,
            summary.epochs,
            100.0 * best,
            summary.final_train_loss.unwrap_or(f64::NAN),
            out_dir.display()
        ),
        _ => println!("{}: no epochs trained; run folder {}", graph.name, out_dir.display()),
    }
    Ok(())
}

/// Resolves the options, loads the data, compiles the classifier and (on the root) creates
/// the run folder with its copy of the model.
fn setup_classifier(
    args: &TrainArgs,
    previous: Option<Previous>,
    model_path: &Path,
    graph: &Graph,
    group: &dyn DataParallel,
) -> Result<Setup, Failure> {
    let root = group.is_root();
    let spec =
        graph.train.clone().ok_or_else(|| Failure::model(miette::miette!("no train block")))?;
    let prev = previous.as_ref().map(|p| &p.summary);

    // Data folder: --data, else the previous run's, else the train block's (relative to the
    // .sym file).
    let data_dir = match (&args.data, prev.and_then(|s| s.data_dir.clone()), &spec.data) {
        (Some(d), _, _) => d.clone(),
        (None, Some(d), _) => PathBuf::from(d),
        // `sema::load_model` has already resolved it against the .sym file's folder.
        (None, None, Some(DataSource::Mnist { dir })) => PathBuf::from(dir),
        (None, None, None) => {
            return Err(Failure::model(miette::miette!(
                code = "symc::train::no_data",
                help = "add `data mnist(\"data/mnist\")` to the train block or pass --data DIR",
                "the train block of `{}` names no data set",
                graph.name
            )));
        }
    };
    let data_dir = data_dir.canonicalize().unwrap_or(data_dir);
    if root {
        eprintln!("loading MNIST from {}", data_dir.display());
    }
    let data = mnist::load(&data_dir).map_err(Failure::io)?;

    let seed = args.seed.or(prev.map(|s| s.seed)).unwrap_or(spec.seed);
    let batch = args.batch.or(prev.map(|s| s.batch)).unwrap_or(spec.batch);
    if batch == 0 {
        return Err(Failure::io(miette::miette!("--batch must be at least 1")));
    }
    let n_train = data.train.len() - ((data.train.len() as f64) * spec.validation).round() as usize;
    let epochs = match (args.epochs, prev) {
        (Some(e), _) => e,
        (None, Some(s)) => s.epochs_planned,
        (None, None) => match spec.length {
            TrainLength::Epochs(e) => e,
            // A step budget becomes whole epochs: the loop evaluates and checkpoints per epoch.
            TrainLength::Steps(s) => s.saturating_mul(batch).div_ceil(n_train.max(1)).max(1),
        },
    };
    let out_dir = match (&args.resume, &args.out) {
        (Some(dir), _) => dir.clone(),
        (None, Some(o)) => o.clone(),
        (None, None) => {
            // Only the root's name is used: the other members write nothing.
            let stem = model_path.file_stem().map(|s| s.to_string_lossy().into_owned());
            let name = stem.unwrap_or_else(|| graph.name.clone());
            let now = utc_timestamp(std::time::SystemTime::now(), TimestampStyle::Compact);
            PathBuf::from("runs").join(format!("{name}-{now}"))
        }
    };
    if args.resume.is_none() && out_dir.join(checkpoint::FILE_NAME).exists() {
        return Err(Failure::io(miette::miette!(
            code = "symc::train::exists",
            help = format!(
                "continue it with `symc train --resume {}`, or choose another --out",
                out_dir.display()
            ),
            "{} already holds a training run",
            out_dir.display()
        )));
    }
    let threads = init_threads(args.threads);
    // Compiled for this member's share of the training batch: the JIT kernels work on the
    // whole compiled batch width, so a larger maximum would slow every training step (and a
    // member compiled for the whole batch would not divide the work). Evaluation uses the
    // same width.
    let width = data_parallel::max_share(batch, group.size());
    let backend = build_classifier(graph, args.reference, width, threads)?;
    let init = if args.resume.is_some() {
        Vec::new()
    } else {
        let mut p = crate::runtime::init::init_params(graph, seed);
        for dir in &args.init {
            // A run that does not fit is a usage error (exit 2), like an unreadable one.
            let w = checkpoint::warm_start(dir, graph, &mut p)
                .map_err(|e| Failure { code: 2, report: e.into() })?;
            if root {
                eprintln!("{}", crate::train::checkpoint::describe_warm_start(&w));
            }
        }
        p
    };

    if root {
        std::fs::create_dir_all(&out_dir).map_err(|e| {
            Failure::io(miette::miette!("cannot create {}: {e}", out_dir.display()))
        })?;
        let source = std::fs::read(model_path).map_err(|e| {
            Failure::io(miette::miette!("cannot read {}: {e}", model_path.display()))
        })?;
        if args.resume.is_none() || !out_dir.join(MODEL_COPY).exists() {
            crate::train::write_atomic(&out_dir.join(MODEL_COPY), &source).map_err(|e| {
                let path = out_dir.join(MODEL_COPY);
                Failure::io(miette::miette!("cannot write {}: {e}", path.display()))
            })?;
        }
    }
    let model_file =
        prev.and_then(|s| s.model_file.clone()).filter(|_| args.file.is_none()).unwrap_or_else(
            || model_path.canonicalize().unwrap_or(model_path.to_path_buf()).display().to_string(),
        );

    let opts = ClassifyOptions {
        epochs,
        batch,
        eval_batch: width,
        optimizer: spec.optimizer.clone(),
        schedule: spec.schedule.clone(),
        validation: spec.validation,
        seed,
        out_dir: out_dir.clone(),
        progress: root && std::io::stderr().is_terminal(),
        info: RunInfo {
            model_file: Some(model_file),
            data_dir: Some(data_dir.display().to_string()),
            threads,
            ranks: group.size(),
            precision: "f32".into(),
            backend: backend.name.into(),
            strategies: backend.strategies.clone(),
        },
    };
    if root {
        let ranks = match group.size() {
            1 => String::new(),
            n => format!(" on {n} processes (data-parallel, up to {width} samples of each batch)"),
        };
        eprintln!(
            "training `{}` ({} parameters) on {} with {} thread(s){ranks}: {} epochs, batch {batch}, {}, {} schedule, seed {seed} -> {}",
            graph.name,
            graph.param_count(),
            backend.name,
            threads,
            epochs,
            crate::train::optim::describe_optimizer(&spec.optimizer),
            crate::train::optim::describe_schedule(&spec.schedule),
            out_dir.display()
        );
    }
    Ok(Setup { data, backend, init, opts })
}
