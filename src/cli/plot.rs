//! `symc plot` (being built; see the open issues).

use super::Failure;

#[derive(clap::Args, Debug)]
pub struct PlotArgs {}

pub fn run(_args: PlotArgs) -> Result<(), Failure> {
    Err(Failure::io(miette::miette!(
        "`symc plot` is not available in this build yet"
    )))
}
