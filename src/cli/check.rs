//! `symc check FILE...`: parse and check model files, reporting every problem with its
//! source position. Prints one line per good file to stdout; diagnostics go to stderr.

use super::Failure;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  symc check models/*.sym\n  symc check my_model.sym\n\n\
Exit codes: 0 all files are fine, 1 a model has problems, 2 a file could not be read.")]
pub struct CheckArgs {
    /// The .sym files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub fn run(args: CheckArgs) -> Result<(), Failure> {
    let mut worst = 0u8;
    let mut failed = 0usize;
    for file in &args.files {
        match crate::sema::load_model(file) {
            Ok(g) => println!(
                "ok   {}: network `{}`, {} layer{}, {} parameters",
                file.display(),
                g.name,
                g.layers.len(),
                if g.layers.len() == 1 { "" } else { "s" },
                super::inspect::group(g.param_count() as u64)
            ),
            Err(e) => {
                worst = worst.max(e.exit_code());
                failed += 1;
                if args.files.len() == 1 {
                    return Err(Failure { code: e.exit_code(), report: miette::Report::new(e) });
                }
                eprintln!("{:?}", miette::Report::new(e));
            }
        }
    }
    if failed == 0 {
        return Ok(());
    }
    let report = miette::miette!("{failed} of {} files have problems", args.files.len());
    Err(Failure { code: worst, report })
}
