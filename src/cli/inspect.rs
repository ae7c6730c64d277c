//! `symc inspect` (being built; see the open issues).

use super::Failure;

#[derive(clap::Args, Debug)]
pub struct InspectArgs {}

pub fn run(_args: InspectArgs) -> Result<(), Failure> {
    Err(Failure::io(miette::miette!("`symc inspect` is not available in this build yet")))
}
