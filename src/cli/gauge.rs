//! `symc gauge` (being built; see the open issues).

use super::Failure;

#[derive(clap::Subcommand, Debug)]
pub enum GaugeCommand {
    /// Print dims, plaquette, link trace and checksum status of a configuration.
    Info {},
}

pub fn run(_c: GaugeCommand) -> Result<(), Failure> {
    Err(Failure::io(miette::miette!("`symc gauge` is not available in this build yet")))
}
