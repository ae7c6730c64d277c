//! The `symc` binary: parse arguments, run the subcommand, map failures to exit codes.
//! All rendering of reports happens here; the library returns typed errors.

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = symc::cli::Cli::parse();
    // Under `mpirun` (feature `mpi`): decomposed solves, rank 0 alone prints (cli/mpi.rs).
    #[cfg(feature = "mpi")]
    let code = symc::cli::mpi::main(cli);
    #[cfg(not(feature = "mpi"))]
    let code = match symc::cli::run(cli) {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("{:?}", failure.report);
            failure.code
        }
    };
    ExitCode::from(code)
}
