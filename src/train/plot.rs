//! Loss curves of one or more runs on one chart (the poster's figure): training loss (solid)
//! and test loss (dashed) per epoch, log-scale y, one colour per run, legend with run names.
//! Written as SVG and PNG, both atomically.

use super::runlog::EpochRow;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Problems drawing or writing a plot.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlotError {
    #[error("nothing to plot: {0}")]
    #[diagnostic(code(symc::plot::empty), help("plot runs that completed at least one epoch"))]
    Empty(String),
    #[error("cannot draw {}: {message}", path.display())]
    #[diagnostic(code(symc::plot::draw))]
    Draw { path: PathBuf, message: String },
    #[error("cannot write {}: {source}", path.display())]
    #[diagnostic(code(symc::plot::write))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One run's curves.
#[derive(Clone, Debug)]
pub struct Curve {
    /// Legend name (usually the run folder's name).
    pub name: String,
    pub rows: Vec<EpochRow>,
}

const SIZE: (u32, u32) = (960, 600);

fn colours() -> [RGBColor; 6] {
    [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ]
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    curves: &[Curve],
    title: &str,
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    let finite_pos = |v: f64| v.is_finite() && v > 0.0;
    let values: Vec<f64> = curves
        .iter()
        .flat_map(|c| c.rows.iter().flat_map(|r| [r.train_loss, r.test_loss]))
        .filter(|v| finite_pos(*v))
        .collect();
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(0.0, f64::max);
    let max_epoch = curves.iter().flat_map(|c| c.rows.iter().map(|r| r.epoch)).max().unwrap_or(1);
    // Preconditioner runs log per step and have no test loss.
    let per_step = curves.iter().all(|c| c.rows.iter().all(|r| r.test_loss.is_nan()));
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0.5f64..max_epoch as f64 + 0.5, (lo / 1.3..hi * 1.3).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(if per_step { "training step" } else { "epoch" })
        .y_desc(if per_step { "loss" } else { "loss (mean NLL)" })
        .x_labels(max_epoch.min(16))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| {
            if *y < 0.01 { format!("{y:.0e}") } else { format!("{y:.3}") }
        })
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(e)?;
    for (i, c) in curves.iter().enumerate() {
        let colour = colours()[i % colours().len()];
        let solid = ShapeStyle::from(&colour).stroke_width(2);
        let pts = |f: fn(&EpochRow) -> f64| -> Vec<(f64, f64)> {
            c.rows.iter().map(|r| (r.epoch as f64, f(r))).filter(|(_, y)| finite_pos(*y)).collect()
        };
        chart
            .draw_series(LineSeries::new(pts(|r| r.train_loss), solid).point_size(3))
            .map_err(e)?
            .label(format!("{} train", c.name))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], solid));
        chart
            .draw_series(DashedLineSeries::new(pts(|r| r.test_loss), 8, 5, solid))
            .map_err(e)?
            .label(format!("{} test", c.name))
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (9, 0)], solid)
                    + PathElement::new(vec![(15, 0), (24, 0)], solid)
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Draws `curves` and writes `<stem>.svg` and `<stem>.png`; returns the two paths.
pub fn plot_losses(
    curves: &[Curve],
    stem: &Path,
    title: &str,
) -> Result<(PathBuf, PathBuf), PlotError> {
    if curves.iter().all(|c| c.rows.is_empty()) {
        return Err(PlotError::Empty("no run has a completed epoch".into()));
    }
    write_svg_png(stem, |root| draw(root, curves, title), |root| draw(root, curves, title))
}

/// Draws one figure with `svg` and `png` (the same drawing on the two backends) and writes
/// `<stem>.svg` and `<stem>.png` atomically; returns the two paths.
fn write_svg_png(
    stem: &Path,
    svg_draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
    png_draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<(PathBuf, PathBuf), PlotError> {
    let svg_path = stem.with_extension("svg");
    let png_path = stem.with_extension("png");
    let dir = match stem.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        svg_draw(&root).map_err(|message| PlotError::Draw { path: svg_path.clone(), message })?;
    }
    super::write_atomic(&svg_path, svg.as_bytes())
        .map_err(|source| PlotError::Write { path: svg_path.clone(), source })?;

    // The bitmap backend encodes by file extension, so draw into a temporary `.png` in the
    // target folder and rename it into place.
    let tmp = tempfile::Builder::new()
        .prefix(".plot")
        .suffix(".png")
        .tempfile_in(&dir)
        .map_err(|source| PlotError::Write { path: png_path.clone(), source })?;
    {
        let root = BitMapBackend::new(tmp.path(), SIZE).into_drawing_area();
        png_draw(&root).map_err(|message| PlotError::Draw { path: png_path.clone(), message })?;
    }
    tmp.persist(&png_path)
        .map_err(|e| PlotError::Write { path: png_path.clone(), source: e.error })?;
    Ok((svg_path, png_path))
}

/// One preconditioner's points of a mass scan: (mass, iterations, seconds) per converged solve.
#[derive(Clone, Debug)]
pub struct ScanSeries {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

fn draw_scan<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    series: &[ScanSeries],
    title: &str,
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, ("sans-serif", 24)).map_err(e)?;
    let panels = root.split_evenly((1, 2));
    let masses: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
    let (m_lo, m_hi) =
        masses.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &m| (a.min(m), b.max(m)));
    let pad = ((m_hi - m_lo) * 0.05).max(1e-3);
    for (k, panel) in panels.iter().enumerate() {
        let value = |p: &(f64, f64, f64)| if k == 0 { p.1 } else { p.2 };
        let vals: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(value))
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let lo = vals.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().cloned().fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(panel)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(m_lo - pad..m_hi + pad, (lo / 1.5..hi * 1.5).log_scale())
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("bare mass m")
            .y_desc(if k == 0 { "iterations per solve" } else { "seconds per solve" })
            .x_label_formatter(&|x| format!("{x:.3}"))
            .y_label_formatter(&|y| if k == 0 { format!("{y:.0}") } else { format!("{y:.2}") })
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(e)?;
        for (i, s) in series.iter().enumerate() {
            let colour = colours()[i % colours().len()];
            let style = ShapeStyle::from(&colour).stroke_width(2);
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .map(|p| (p.0, value(p)))
                .filter(|(_, v)| v.is_finite() && *v > 0.0)
                .collect();
            chart
                .draw_series(LineSeries::new(pts, style).point_size(4))
                .map_err(e)?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
        if k == 0 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font(("sans-serif", 14))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(e)?;
        }
    }
    root.present().map_err(e)?;
    Ok(())
}

/// The mass-scan figure: iterations (left) and seconds (right) per solve against the mass, one
/// line per preconditioner, log-scale y; writes `<stem>.svg` and `<stem>.png`.
pub fn plot_scan(
    series: &[ScanSeries],
    stem: &Path,
    title: &str,
) -> Result<(PathBuf, PathBuf), PlotError> {
    if series.iter().all(|s| s.points.is_empty()) {
        return Err(PlotError::Empty("no solve of the scan converged".into()));
    }
    write_svg_png(stem, |r| draw_scan(r, series, title), |r| draw_scan(r, series, title))
}
