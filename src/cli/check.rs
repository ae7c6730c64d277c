//! `symc check` (being built; see the open issues).

use super::Failure;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {}

pub fn run(_args: CheckArgs) -> Result<(), Failure> {
    Err(Failure::io(miette::miette!("`symc check` is not available in this build yet")))
}
