//! `symc plot RUN_DIR... [-o FILE_STEM]`: training and test loss of several runs over epochs on
//! one chart (log-scale y), written as SVG and PNG. `symc plot runs/dense runs/conv` redraws the
//! poster's figure.

use super::Failure;
use crate::train::plot::{self, Curve};
use crate::train::runlog;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  symc plot runs/dense runs/conv\n  \
symc plot runs/dense runs/conv -o docs/mnist-loss\n  symc plot runs/conv --title \"conv, 15 epochs\"\n\n\
Each RUN_DIR is a folder written by `symc train` (its train.csv is read). Solid lines: training \
loss (mean over the epoch's batches); dashed: test loss after the epoch. Writes FILE_STEM.svg and \
FILE_STEM.png; the default stem is `loss` next to the runs (in their common parent folder).")]
pub struct PlotArgs {
    /// Run folders to draw (one colour each; the legend uses the folder names).
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Output path without extension: FILE_STEM.svg and FILE_STEM.png are written.
    #[arg(short = 'o', long = "output", value_name = "FILE_STEM")]
    pub output: Option<PathBuf>,
    /// Chart title.
    #[arg(long, default_value = "MNIST: training (solid) and test (dashed) loss")]
    pub title: String,
}

fn run_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// The parent folder shared by all runs, if there is one.
fn common_parent(runs: &[PathBuf]) -> Option<PathBuf> {
    let first = runs.first()?.parent()?.to_path_buf();
    runs.iter().all(|r| r.parent() == Some(first.as_path())).then_some(first)
}

pub fn run(args: PlotArgs) -> Result<(), Failure> {
    let mut curves = Vec::new();
    for dir in &args.runs {
        let rows = runlog::read_csv(dir).map_err(Failure::io)?;
        curves.push(Curve { name: run_name(dir), rows });
    }
    let stem = args.output.unwrap_or_else(|| match common_parent(&args.runs) {
        Some(p) if !p.as_os_str().is_empty() => p.join("loss"),
        _ => PathBuf::from("loss"),
    });
    if let Some(parent) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::io(miette::miette!("cannot create {}: {e}", parent.display())))?;
    }
    let (svg, png) = plot::plot_losses(&curves, &stem, &args.title).map_err(Failure::io)?;
    println!("{}", svg.display());
    println!("{}", png.display());
    Ok(())
}
