//! `symc train MODEL.sym`: compile a model and train it from its `train` block into a run
//! folder. Fermion networks (gauge-equivariant or dense preconditioners) are trained by
//! `train::precond`; classifiers by the classifier runtime.

use super::Failure;
use crate::train::precond::{self, RunOptions};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  symc train models/ptc_precond.sym\n  \
symc train models/ptc_1h1l.sym --out runs/1h1l\n  symc train models/ptc_precond.sym --resume runs/ptc_precond\n\n\
A preconditioner run trains M so that M D ~ 1 on random vectors, then solves D x = b with FGMRES \
with and without M; the run folder holds checkpoint.safetensors, loss.csv, loss.svg/png, model.sym \
and summary.json (keys final_loss and solve.{unpreconditioned,preconditioned}.{iterations,seconds}).")]
pub struct TrainArgs {
    /// The model file (.sym) with a `train` block.
    pub model: PathBuf,
    /// Run folder (default: runs/<model name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Override the number of training steps of the `train` block.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Override the number of random right-hand sides of the final solve comparison.
    #[arg(long)]
    pub rhs: Option<usize>,
    /// Skip the final solve comparison.
    #[arg(long)]
    pub no_evaluate: bool,
}

pub fn run(args: TrainArgs) -> Result<(), Failure> {
    let graph = crate::sema::load_model(&args.model).map_err(|e| {
        let code = e.exit_code();
        Failure {
            code,
            report: e.into(),
        }
    })?;
    if !precond::is_fermion_network(&graph) {
        return Err(Failure::io(miette::miette!(
            "`symc train` for classifiers is not available in this build yet"
        )));
    }
    let source = std::fs::read_to_string(&args.model)
        .map_err(|e| Failure::io(miette::miette!("cannot read {}: {e}", args.model.display())))?;
    let (out, resume) = match (&args.resume, &args.out) {
        (Some(dir), _) => (dir.clone(), true),
        (None, Some(dir)) => (dir.clone(), false),
        (None, None) => (PathBuf::from("runs").join(&graph.name), false),
    };
    let mut opts = RunOptions::new(&out);
    opts.resume = resume;
    opts.steps = args.steps;
    opts.rhs = args.rhs;
    opts.evaluate = !args.no_evaluate;
    opts.model_file = Some(args.model.clone());
    opts.source = Some(source);
    opts.progress = true;
    let summary = precond::run(&graph, &opts).map_err(|e| Failure {
        code: e.exit_code(),
        report: e.into(),
    })?;
    println!("run folder: {}", out.display());
    if let Some(l) = summary.final_loss_mean {
        println!("final loss (mean of the last 10 % of steps): {l:.4e}");
    }
    if let Some(s) = &summary.solve {
        println!(
            "FGMRES({}) to {:e}: {:.1} iterations / {:.3} s unpreconditioned, {:.1} iterations / \
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
