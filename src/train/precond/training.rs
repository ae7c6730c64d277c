//! The training loop of a preconditioner run, as the steps [`super::run`] takes in order:
//! [`set_up`] (model checks, run folder, gauge field, D in f32, the compiled network),
//! [`start`] (fresh weights, or the checkpoint of the run being resumed), [`new_summary`],
//! [`train_steps`] (the step loop with its divergence check and the checkpoints it writes on
//! the way) and [`finish`] (last checkpoint, loss plot, log line). The evaluation that follows
//! lives in `compare.rs`.

use super::coarse::CoarseTrainer;
use super::gauge::{TrainingGauge, recorded_gauge, training_gauge};
use super::lowmodes::LowModeSolver;
use super::pairs::{NativePair, PairDirac, pair_loss_grad, training_pair_on};
use super::rundir::{
    BASIS_FILE, CHECKPOINT_FILE, GaugeRecord, LOSS_FILE, LossRow, MODEL_FILE, PrecondSummary,
    loss_csv, plot_loss, read_loss_csv, write_err, write_file, write_summary,
};
use super::share::{Decomposition, LatticeShare};
use super::spec::{PrecondSpec, dirac_params, loss_name, precond_spec};
use super::{PrecondError, RunOptions};
use crate::ir::{Graph, LossSpec, Schedule};
use crate::lattice::wilson::DiracParams;
use crate::runtime::dirac::{DiracOptions, JitWilsonClover};
use crate::runtime::distributed::grid::ProcessGrid;
use crate::runtime::init::init_params;
use crate::runtime::multigrid_net::BasisCache;
use crate::runtime::{FermionNet, compile_preconditioner_net};
use crate::solve::{LinearOperator, NativeOperator};
use crate::train::checkpoint;
use crate::train::divergence::DivergenceCheck;
use crate::train::optim::{self, Optimizer};
use indicatif::{ProgressBar, ProgressStyle};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// This process's part of a run split over processes.
pub(super) struct Split {
    pub grid: ProcessGrid,
    /// The global site of each local site.
    pub sites: Vec<usize>,
}

/// `r` if it is `Ok` on every process of `share`, else an error on all of them (their own, or
/// [`PrecondError::Elsewhere`]): what a step that only some processes take (rank 0's writes),
/// or that may fail on one alone, must be followed by before the next collective.
pub(super) fn agreed<T>(
    share: Option<&dyn LatticeShare>,
    r: Result<T, PrecondError>,
) -> Result<T, PrecondError> {
    let Some(group) = share.map(|s| s.group()).filter(|g| g.size() > 1) else {
        return r;
    };
    let code = r.as_ref().err().map_or(0, |e| e.exit_code().max(1));
    match group.worst(code) {
        0 => r,
        worst => r.and(Err(PrecondError::Elsewhere { code: worst })),
    }
}

/// What every step of a run uses, built once.
pub(super) struct Setup<'a> {
    pub spec: PrecondSpec,
    /// Steps of the whole run (the `train` block's, or `--steps`).
    pub steps: usize,
    pub gauge: TrainingGauge,
    pub plaquette: f64,
    pub dirac: DiracParams,
    /// D in f32 for the training pairs (the reference operator is the oracle of its
    /// tests): the JIT kernel, or this process's part of it in a split run.
    pub d32: Box<dyn PairDirac>,
    pub net: Box<dyn FermionNet<f32>>,
    /// The low-mode pairs of the two-term loss (`loss preconditioner(low_modes = ...)`).
    pub low_modes: Option<RefCell<LowModeSolver>>,
    /// The processes of a split run (`None`: one process).
    pub share: Option<&'a dyn LatticeShare>,
    pub split: Option<Split>,
    /// Whether this process writes the run folder (rank 0, or the only process).
    pub root: bool,
    /// `loss coarse`: D_c and the level's coarse layers, trained alone.
    pub coarse: Option<CoarseTrainer>,
}

/// Checks the model, creates the run folder (with the model's source as `model.sym`) and
/// builds the gauge field, the operator and the network.
pub(super) fn set_up<'a>(
    graph: &Graph,
    opts: &RunOptions,
    share: Option<&'a dyn LatticeShare>,
) -> Result<Setup<'a>, PrecondError> {
    let spec = precond_spec(graph)?;
    let steps = opts.steps.unwrap_or(spec.steps);
    let root = share.is_none_or(|s| s.group().is_root());
    // Every process finds the same grid, or the same mistake, before anything is written.
    let grid = share.map(|s| s.grid(spec.dims)).transpose()?;
    let made = if root {
        std::fs::create_dir_all(&opts.out).map_err(write_err(&opts.out))
    } else {
        Ok(())
    };
    agreed(share, made)?;
    let gauge = match share {
        None => run_gauge(graph, opts, &spec)?,
        // Rank 0 reads (or generates) the field once and sends it to every process.
        Some(share) => {
            let mine =
                agreed(Some(share), root.then(|| run_gauge(graph, opts, &spec)).transpose())?;
            let field = share.broadcast_gauge(mine.as_ref().map(|g| &g.field));
            mine.unwrap_or(TrainingGauge { field, source: String::new(), file: None })
        }
    };
    let plaquette = gauge.field.plaquette();
    if opts.progress {
        eprintln!(
            "gauge field: {} ({}), plaquette {plaquette:.6}",
            gauge.source,
            gauge.file.as_ref().map_or_else(|| "in memory".into(), |f| f.display().to_string())
        );
    }
    let wrote = match (root, &opts.source) {
        (true, Some(src)) => write_file(&opts.out, MODEL_FILE, src.as_bytes()),
        _ => Ok(()),
    };
    agreed(share, wrote)?;
    let dirac = dirac_params(&spec.operator);
    let (d32, net, split): (Box<dyn PairDirac>, Box<dyn FermionNet<f32>>, _) = match share.zip(grid)
    {
        Some((share, grid)) => {
            let d32 = share.dirac_f32(&grid, &gauge.field, &dirac)?;
            // As in one process, a multigrid network's basis is cached in the run folder
            // (rank 0 writes it), so `--resume` and later solves skip the set-up.
            let basis = opts.out.join(BASIS_FILE);
            let net =
                share.net_f32(&grid, graph, &gauge.field, &dirac, BasisCache::ReadWrite(&basis))?;
            if opts.progress {
                eprintln!(
                    "split over {} processes: grid {}, {} sites each",
                    grid.ranks(),
                    grid.procs.map(|p| p.to_string()).join("x"),
                    grid.local.map(|p| p.to_string()).join("x")
                );
            }
            let sites = (0..grid.local_volume()).map(|s| grid.global_site(s)).collect();
            (d32, net, Some(Split { grid, sites }))
        }
        None => {
            let d32 = JitWilsonClover::<f32>::new(&gauge.field, &dirac, &DiracOptions::default())?;
            // A multigrid network runs its near-null set-up here, once; the basis is cached
            // in the run folder, so `--resume` and later solves on this configuration skip it.
            let basis = opts.out.join(BASIS_FILE);
            let net = compile_preconditioner_net::<f32>(
                graph,
                &gauge.field,
                &dirac,
                BasisCache::ReadWrite(&basis),
            )?;
            (Box::new(d32), net, None)
        }
    };
    if let (true, Some(r)) = (opts.progress, net.multigrid_setup())
        && r.source == crate::runtime::multigrid::BasisSource::Pooling
    {
        eprintln!(
            "pooled level set-up: {:.2} s (no near-null vectors: transports, coarse gauge field, kernels)",
            r.total_seconds
        );
    } else if let (true, Some(r)) = (opts.progress, net.multigrid_setup()) {
        eprintln!(
            "multigrid set-up: {:.2} s ({} near-null vectors, {} set-up iterations, basis {})",
            r.total_seconds,
            r.near_null_iterations.len(),
            r.near_null_iterations.iter().sum::<usize>(),
            match &r.source {
                crate::runtime::multigrid::BasisSource::Cached { .. } => "cached",
                _ => "generated",
            }
        );
    }
    let low_modes = match spec.loss {
        LossSpec::LowModes { weight, tol } => {
            let solver = match share.zip(split.as_ref()) {
                // Split: the distributed operator and multigrid on this process's sites.
                Some((share, split)) => {
                    let cache = opts.out.join(super::LOW_MODE_BASIS_FILE);
                    let system = agreed(
                        Some(share),
                        share.low_modes(&split.grid, &gauge.field, &dirac, &cache),
                    )?;
                    LowModeSolver::on(system, gauge.field.dims(), weight, tol)
                }
                None => LowModeSolver::new(&gauge.field, &dirac, weight, tol, &opts.out)?,
            };
            if opts.progress {
                let st = &solver.stats;
                eprintln!(
                    "low-mode term: weight {weight}, D^-1 v2 by {} to {tol:e}{}",
                    if st.solver == "mg" { "multigrid FGMRES" } else { "GMRES(30)" },
                    if st.setup_seconds > 0.0 {
                        format!(" (multigrid set-up {:.2} s)", st.setup_seconds)
                    } else {
                        String::new()
                    }
                );
            }
            Some(RefCell::new(solver))
        }
        _ => None,
    };
    let coarse = match spec.loss {
        LossSpec::Coarse => {
            Some(CoarseTrainer::new(graph, &gauge.field, &dirac, &opts.out.join(BASIS_FILE))?)
        }
        _ => None,
    };
    Ok(Setup {
        spec,
        steps,
        gauge,
        plaquette,
        dirac,
        d32,
        net,
        low_modes,
        coarse,
        share,
        split,
        root,
    })
}

/// The run's gauge field: on `--resume` the one the run recorded, else the `train` block's
/// (relative to the .sym file's folder); it must have the model's lattice.
fn run_gauge(
    graph: &Graph,
    opts: &RunOptions,
    spec: &PrecondSpec,
) -> Result<TrainingGauge, PrecondError> {
    let model_dir = opts
        .model_file
        .as_ref()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let recorded =
        if opts.resume { recorded_gauge(&opts.out, spec.dims, &opts.gauge_read) } else { None };
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
    Ok(gauge)
}

/// The trainable state of a run and where it stands.
pub(super) struct State {
    pub params: Vec<f32>,
    /// What the warm starts of a fresh run loaded (`--init`).
    pub warm_start: Vec<checkpoint::WarmStart>,
    pub optimizer: Optimizer,
    /// The loss rows so far (a resumed run's rows up to its checkpoint).
    pub rows: Vec<LossRow>,
    /// Steps done before this invocation (0 for a fresh run).
    pub start_step: u64,
    /// Training seconds of those steps.
    pub prior_seconds: f64,
    /// The step whose checkpoint is on disk: the resumed one, then each one written; `None`
    /// before a fresh run's first checkpoint.
    pub saved: Option<u64>,
    /// When this invocation's steps started.
    pub clock: Instant,
}

impl State {
    /// Cumulative training seconds, this invocation included.
    pub fn seconds(&self) -> f64 {
        self.prior_seconds + self.clock.elapsed().as_secs_f64()
    }
}

/// The state a run starts from: the initial weights and a fresh optimiser, or with
/// `opts.resume` the run folder's checkpoint and its loss rows up to that checkpoint (rows a
/// crashed run wrote after it are dropped).
pub(super) fn start(
    graph: &Graph,
    opts: &RunOptions,
    setup: &Setup,
) -> Result<State, PrecondError> {
    let mut optimizer = Optimizer::new(&setup.spec.train.optimizer, graph.param_scalars());
    if !opts.resume {
        let mut params = init_params(graph, setup.spec.seed);
        let mut warm = Vec::new();
        for dir in &opts.init {
            let w = checkpoint::warm_start(dir, graph, &mut params)?;
            if opts.progress {
                eprintln!("{}", checkpoint::describe_warm_start(&w));
            }
            warm.push(w);
        }
        return Ok(State {
            params,
            warm_start: warm,
            optimizer,
            rows: Vec::new(),
            start_step: 0,
            prior_seconds: 0.0,
            saved: None,
            clock: Instant::now(),
        });
    }
    let ckpt_path = opts.out.join(CHECKPOINT_FILE);
    let ck = checkpoint::load(&ckpt_path, graph)?;
    let start_step: u64 = ck.meta_parse(&ckpt_path, "step")?;
    let prior_seconds: f64 = ck.meta_parse(&ckpt_path, "seconds")?;
    let opt_steps: u64 = ck.meta_parse(&ckpt_path, "optimizer_steps")?;
    for (name, buf) in optimizer.buffers_mut() {
        let saved = ck.optimizer.get(name).ok_or_else(|| PrecondError::RunFolder {
            path: ckpt_path.clone(),
            message: format!("optimizer buffer `{name}` is missing"),
        })?;
        buf.clone_from(saved);
    }
    optimizer.set_steps(opt_steps);
    let mut rows = read_loss_csv(&opts.out.join(LOSS_FILE))?;
    rows.retain(|r| r.step <= start_step);
    if opts.progress {
        eprintln!("resuming {} at step {start_step}", opts.out.display());
    }
    // The warm starts are part of the run's history: the resumed summary keeps them.
    let warm_start =
        super::rundir::read_summary(&opts.out).map(|s| s.warm_start).unwrap_or_default();
    Ok(State {
        params: ck.params,
        warm_start,
        optimizer,
        rows,
        start_step,
        prior_seconds,
        saved: Some(start_step),
        clock: Instant::now(),
    })
}

/// The summary of a run about to take its steps (`status: running`).
pub(super) fn new_summary(
    graph: &Graph,
    opts: &RunOptions,
    setup: &Setup,
    state: &State,
) -> PrecondSummary {
    let spec = &setup.spec;
    let gauge = &setup.gauge;
    PrecondSummary {
        model: graph.name.clone(),
        model_file: opts.model_file.as_ref().map(|p| p.display().to_string()),
        status: "running".into(),
        message: None,
        final_loss: None,
        initial_loss: None,
        final_loss_mean: None,
        steps: state.start_step,
        steps_planned: setup.steps,
        train_seconds: state.prior_seconds,
        seconds_per_step: 0.0,
        params: graph.param_count(),
        param_scalars: graph.param_scalars(),
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
            plaquette: setup.plaquette,
        },
        mass: spec.operator.mass,
        csw: spec.operator.csw,
        boundary: spec.operator.boundary,
        multigrid_setup: setup.net.multigrid_setup().and_then(|r| serde_json::to_value(r).ok()),
        low_modes: setup.low_modes.as_ref().map(|l| l.borrow().stats.clone()),
        warm_start: state.warm_start.clone(),
        decomposition: setup.split.as_ref().map(|s| Decomposition {
            ranks: s.grid.ranks(),
            procs: s.grid.procs,
            local_dims: s.grid.local,
        }),
        solve: None,
    }
}

/// Writes the checkpoint of step `step` (weights and optimiser state), then `loss.csv` and
/// the summary, each atomically: whatever is interrupted, the folder stays consistent.
fn save(
    graph: &Graph,
    out: &Path,
    summary: &PrecondSummary,
    state: &State,
    step: u64,
    secs: f64,
) -> Result<(), PrecondError> {
    save_checkpoint(graph, out, &state.params, &state.optimizer, step, secs)?;
    write_file(out, LOSS_FILE, loss_csv(&state.rows).as_bytes())?;
    write_summary(out, summary)
}

fn save_checkpoint(
    graph: &Graph,
    out: &Path,
    params: &[f32],
    optimizer: &Optimizer,
    step: u64,
    secs: f64,
) -> Result<(), PrecondError> {
    let mut meta = BTreeMap::new();
    meta.insert("step".to_string(), step.to_string());
    meta.insert("seconds".to_string(), format!("{secs}"));
    meta.insert("optimizer_steps".to_string(), optimizer.steps().to_string());
    meta.insert("kind".to_string(), "preconditioner".to_string());
    checkpoint::save(&out.join(CHECKPOINT_FILE), graph, params, &optimizer.buffers(), &meta)?;
    Ok(())
}

fn progress_bar(show: bool, steps: u64, position: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(steps);
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
    ) {
        b.set_style(style);
    }
    b.set_position(position);
    b
}

/// Runs the steps from `state.start_step` to the end of the run. Every `opts.checkpoint_every`
/// steps (10 % of the run by default) and after the last step it writes the checkpoint, the
/// loss CSV and the summary. A step whose loss diverges (`train::divergence`), or whose
/// gradient is not finite, stops the run before the weights are updated: see
/// [`stop_diverged`].
pub(super) fn train_steps(
    graph: &Graph,
    opts: &RunOptions,
    setup: &Setup,
    state: &mut State,
    summary: &mut PrecondSummary,
) -> Result<(), PrecondError> {
    let spec = &setup.spec;
    let steps = setup.steps as u64;
    let every = if opts.checkpoint_every > 0 { opts.checkpoint_every } else { setup.steps / 10 };
    let every = every.max(1) as u64;
    let base_lr = optim::base_lr(&spec.train.optimizer);
    let decays = !matches!(spec.train.schedule, Schedule::Constant);
    let bar = progress_bar(opts.progress, steps, state.start_step);
    // The reference loss of the divergence rule is the run's first step, also when resumed.
    let mut divergence = DivergenceCheck::new(state.rows.first().map(|r| r.loss));
    let mut grad = vec![0.0f32; state.params.len()];
    let mut grad2 = if setup.low_modes.is_some() { grad.clone() } else { Vec::new() };
    // Plain pairs: the step runs on the kernels' buffers, no conversion (the filtered loss's
    // GMRES works on reference vectors).
    let native = !matches!(spec.loss, LossSpec::Filtered { iterations } if iterations > 0);
    let mut pair = NativePair::default();
    state.clock = Instant::now();
    let mut rate_mark = (Instant::now(), state.start_step);
    for step in state.start_step..steps {
        let lr = optim::lr_at(base_lr, &spec.train.schedule, step, steps, 0, decays) as f32;
        let mut loss = match &setup.coarse {
            // The coarse layers alone, on D_c: the fine layers' gradient is zero.
            Some(c) => c.loss_grad(&state.params, spec.seed, step, &mut grad)?,
            None if native => {
                let d = setup.d32.as_ref();
                let sites = setup.split.as_ref().map(|s| &s.sites[..]);
                let len = setup.net.native_buffer_len();
                pair.draw(d, d.layout(), sites, len, spec.seed, step)?;
                let local =
                    pair.loss_grad(setup.net.as_ref(), &state.params, d.layout(), &mut grad)?;
                // This process's part of the loss; the gradient is already the global one.
                let mut total = [local];
                NativeOperator::global_sum(d, &mut total);
                total[0]
            }
            None => {
                let sites = setup.split.as_ref().map(|s| &s.sites[..]);
                let d32: &dyn LinearOperator<f32> = setup.d32.as_ref();
                let (inp, tgt) =
                    training_pair_on(d32, spec.dims, sites, &spec.loss, spec.seed, step);
                let local =
                    pair_loss_grad(setup.net.as_ref(), &state.params, &inp, &tgt, &mut grad)?;
                // This process's part of the loss; the gradient is already the global one.
                let mut total = [local];
                d32.global_sum(&mut total);
                total[0]
            }
        };
        if let Some(low) = &setup.low_modes {
            // The second term: the same loss on the pair (v2, D^-1 v2), its gradient added
            // with the term's weight.
            let mut low = low.borrow_mut();
            let (inp, tgt) = low.pair(spec.seed, step)?;
            let w = low.stats.weight;
            let local = pair_loss_grad(setup.net.as_ref(), &state.params, &inp, &tgt, &mut grad2)?;
            // As for the first term: this process's part of the loss, the global gradient.
            let mut total = [local];
            NativeOperator::global_sum(setup.d32.as_ref(), &mut total);
            let l2 = total[0];
            loss += w * l2;
            for (g, g2) in grad.iter_mut().zip(&grad2) {
                *g += w as f32 * *g2;
            }
            summary.low_modes = Some(low.stats.clone());
        }
        let verdict = match divergence.check(loss) {
            Err(d) => Err(d.describe("the loss")),
            Ok(()) if !grad.iter().all(|g| g.is_finite()) => {
                Err("the gradient has NaN or infinite entries".to_string())
            }
            Ok(()) => Ok(()),
        };
        if let Err(what) = verdict {
            bar.abandon();
            return Err(stop_diverged(graph, opts, setup, state, summary, step + 1, loss, what));
        }
        state.optimizer.step(&mut state.params, &grad, lr);
        let secs = state.seconds();
        state.rows.push(LossRow { step: step + 1, loss, seconds: secs });
        bar.set_position(step + 1);
        if (step + 1) % 10 == 0 || step + 1 == steps {
            let dt = rate_mark.0.elapsed().as_secs_f64();
            let rate = (step + 1 - rate_mark.1) as f64 / dt.max(1e-9);
            bar.set_message(format!("loss {loss:.3e}  {rate:.1} steps/s"));
            rate_mark = (Instant::now(), step + 1);
        }
        if (step + 1) % every == 0 || step + 1 == steps {
            summary.record_progress(&state.rows, step + 1, secs);
            let saved = if setup.root {
                save(graph, &opts.out, summary, state, step + 1, secs)
            } else {
                Ok(())
            };
            agreed(setup.share, saved)?;
            state.saved = Some(step + 1);
            // The bar shows the rest; log lines are for non-terminal stderr.
            if opts.progress && bar.is_hidden() {
                eprintln!(
                    "step {}/{steps}: loss {loss:.4e}, {:.1} ms/step",
                    step + 1,
                    1e3 * secs / (step + 1) as f64
                );
            }
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// Stops a diverged run at `step` and says so: the checkpoint on disk stays the last good one
/// — a fresh run that diverges before its first checkpoint writes its start state (initial
/// weights, fresh optimiser, step 0), so the folder always holds finite weights — and the
/// summary says `diverged`, why, and which step was kept. Returns the error to report (or the
/// write error that prevented recording it).
#[allow(clippy::too_many_arguments)]
fn stop_diverged(
    graph: &Graph,
    opts: &RunOptions,
    setup: &Setup,
    state: &State,
    summary: &mut PrecondSummary,
    step: u64,
    loss: f64,
    what: String,
) -> PrecondError {
    let secs = state.seconds();
    if !setup.root {
        // Every process saw the same loss and gradient; rank 0 records the stop.
        let kept = state.saved.unwrap_or(0);
        return PrecondError::Diverged { step, loss, what, kept, dir: opts.out.clone() };
    }
    let kept = match state.saved {
        Some(s) => Ok(s),
        None => {
            let params = init_params(graph, setup.spec.seed);
            let fresh = Optimizer::new(&setup.spec.train.optimizer, params.len());
            save_checkpoint(graph, &opts.out, &params, &fresh, 0, 0.0)
                .and_then(|()| write_file(&opts.out, LOSS_FILE, loss_csv(&[]).as_bytes()))
                .map(|()| 0)
        }
    };
    let recorded = kept.and_then(|kept| {
        let rows: Vec<LossRow> = state.rows.iter().copied().filter(|r| r.step <= kept).collect();
        summary.record_progress(&rows, kept, secs);
        summary.status = "diverged".into();
        summary.message = Some(format!("step {step}: {what}; checkpoint of step {kept} kept"));
        write_summary(&opts.out, summary).map(|()| kept)
    });
    match recorded {
        Ok(kept) => PrecondError::Diverged { step, loss, what, kept, dir: opts.out.clone() },
        Err(e) => e,
    }
}

/// After the last step: the final checkpoint if the cadence did not just write it, the loss
/// plot and the closing log line.
pub(super) fn finish(
    graph: &Graph,
    opts: &RunOptions,
    setup: &Setup,
    state: &State,
    summary: &mut PrecondSummary,
) -> Result<(), PrecondError> {
    let steps = setup.steps as u64;
    let secs = state.seconds();
    summary.record_progress(&state.rows, steps, secs);
    let written = if !setup.root {
        Ok(())
    } else if state.rows.len() as u64 == steps && steps > 0 && state.saved != Some(steps) {
        save(graph, &opts.out, summary, state, steps, secs)
    } else {
        Ok(())
    };
    agreed(setup.share, written)?;
    if setup.root && !state.rows.is_empty() {
        plot_loss(&opts.out, &graph.name, &state.rows)?;
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
    Ok(())
}
