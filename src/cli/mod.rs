//! Command-line interface: clap definitions and dispatch, one file per subcommand.
//!
//! Exit codes: 0 success, 1 a problem in the user's model (a `.sym` diagnostic, a training run
//! that diverged), 2 usage and I/O errors (missing or corrupt files, bad flags).

use clap::{Parser, Subcommand};

pub mod check;
pub mod eval;
pub mod gauge;
pub mod inspect;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod plot;
pub mod scan;
pub mod solve;
pub mod train;

/// A failed command: the report to print and the exit code.
pub struct Failure {
    pub code: u8,
    pub report: miette::Report,
}

impl Failure {
    /// A problem in the user's model or run (exit 1).
    pub fn model(report: impl Into<miette::Report>) -> Self {
        Failure { code: 1, report: report.into() }
    }
    /// A usage or I/O problem (exit 2).
    pub fn io(report: impl Into<miette::Report>) -> Self {
        Failure { code: 2, report: report.into() }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "symc",
    version,
    about = "Compile neural networks from the symmetry of their data, and train them",
    long_about = "symc reads a .sym file that describes a network by its symmetry (none, translation, \
or SU(3) lattice gauge symmetry), derives the layers (dense, convolution, parallel-transport \
convolution), compiles forward and backward kernels to native SIMD code with cranelift, and trains.",
    after_help = "Examples:\n  symc check models/*.sym\n  symc inspect models/digits_conv.sym\n  \
symc train models/ptc_precond.sym\n  symc train models/digits_conv.sym --epochs 15 --out runs/conv\n  \
symc gauge info conf.lime\n  symc solve --gauge conf.nersc --mass -0.55 --csw 1.0"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and check .sym files; report every problem with its source location.
    Check(check::CheckArgs),
    /// Show what the compiler makes of a model: layers, parameters, FLOPs, kernels.
    Inspect(inspect::InspectArgs),
    /// Compile and train a model from its `train` block; writes a run folder.
    Train(train::TrainArgs),
    /// Evaluate a trained classifier run (test accuracy, confusion matrix).
    Eval(eval::EvalArgs),
    /// Plot the loss curves of one or more runs on one chart (SVG and PNG).
    Plot(plot::PlotArgs),
    /// Solve the Wilson-clover Dirac equation on a gauge configuration.
    Solve(solve::SolveArgs),
    /// Mass scan: solves with several preconditioners across masses (table and plot).
    Scan(scan::ScanArgs),
    /// Generate, inspect and convert SU(3) gauge configurations.
    #[command(subcommand)]
    Gauge(gauge::GaugeCommand),
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    // Before any parallel work: the pool's size is fixed once it exists.
    let threads = match &cli.command {
        Command::Train(a) => a.threads,
        Command::Eval(a) => a.threads,
        _ => None,
    };
    crate::runtime::init_pool(threads);
    match cli.command {
        Command::Check(a) => check::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Solve(a) => solve::run(a),
        Command::Scan(a) => scan::run(a),
        Command::Gauge(c) => gauge::run(c),
    }
}
