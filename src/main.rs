//! The `symc` binary: parse arguments, run the subcommand, map failures to exit codes.
//! All rendering of reports happens here; the library returns typed errors.

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = symc::cli::Cli::parse();
    match symc::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{:?}", failure.report);
            ExitCode::from(failure.code)
        }
    }
}
