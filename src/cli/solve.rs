//! `symc solve` (being built; see the open issues).

use super::Failure;

#[derive(clap::Args, Debug)]
pub struct SolveArgs {}

pub fn run(_args: SolveArgs) -> Result<(), Failure> {
    Err(Failure::io(miette::miette!("`symc solve` is not available in this build yet")))
}
