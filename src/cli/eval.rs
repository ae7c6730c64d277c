//! `symc eval` (being built; see the open issues).

use super::Failure;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {}

pub fn run(_args: EvalArgs) -> Result<(), Failure> {
    Err(Failure::io(miette::miette!(
        "`symc eval` is not available in this build yet"
    )))
}
