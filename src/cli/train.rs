//! `symc train` (being built; see the open issues).

use super::Failure;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {}

pub fn run(_args: TrainArgs) -> Result<(), Failure> {
    Err(Failure::io(miette::miette!(
        "`symc train` is not available in this build yet"
    )))
}
