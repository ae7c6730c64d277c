//! `symc scan`: the mass scan — the same solve with several preconditioners across masses
//! towards the critical one, as a table (CSV and Markdown) and a plot of iterations and time
//! against the mass. Each point is one `symc solve --format json` run of this very binary, so
//! the scan measures exactly what a user's solve does (set-up included in its own column).

use super::Failure;
use crate::train::plot::{ScanSeries, plot_scan};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::Command;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
symc train models/ptc_1h1l.sym --out runs/1h1l\n  \
symc train models/ptc_smoother.sym --out runs/smoother\n  \
symc train models/ptc_mg.sym --out runs/mg\n  \
symc scan --precond none --precond mg --precond runs/1h1l --precond runs/smoother --precond runs/mg --out runs/scan\n\n\
Each --precond is `none` (GMRES), `mg` (the classical two-level multigrid of `symc solve --precond mg`) \
or a run folder of `symc train` (FGMRES with the trained network; a multigrid network redoes its \
near-null set-up for every mass, reported as setup_seconds). Writes scan.csv, scan.md, scan.svg and \
scan.png into --out. Iterations, operator applications and seconds are means per right-hand side; \
operator applications count D in the outer solver plus, for `mg`, the smoother's and residuals' D \
inside the cycles.")]
pub struct ScanArgs {
    /// Gauge configuration (default: the shipped 8^3 x 16 field).
    #[arg(long, value_name = "FILE", default_value = "models/data/gauge/b6.0_8x8x8x16_s7.nersc")]
    pub gauge: PathBuf,
    /// Masses, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        default_value = "-0.50,-0.52,-0.54,-0.55,-0.56,-0.565,-0.57"
    )]
    pub masses: Vec<f64>,
    /// Clover coefficient.
    #[arg(long, default_value_t = 1.0)]
    pub csw: f64,
    /// Preconditioners: `none`, `mg` or a run folder (repeat the flag).
    #[arg(long = "precond", value_name = "none|mg|RUN_DIR", default_values_t = ["none".to_string(), "mg".to_string()])]
    pub precond: Vec<String>,
    /// Right-hand sides per point.
    #[arg(long, default_value_t = 2)]
    pub rhs: usize,
    /// Relative residual to reach.
    #[arg(long, default_value_t = 1e-8)]
    pub tol: f64,
    /// GMRES restart length.
    #[arg(long, default_value_t = 30)]
    pub restart: usize,
    /// Iteration cap per solve.
    #[arg(long, default_value_t = 20_000)]
    pub max_iterations: usize,
    /// Folder for scan.csv, scan.md, scan.svg and scan.png.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ScanError {
    #[error("`symc solve` failed at m = {mass} with --precond {precond}: {message}")]
    #[diagnostic(
        code(symc::scan::solve),
        help(
            "run that solve on its own (`symc solve --gauge ... --mass ... --precond ...`) to see the full diagnostic"
        )
    )]
    Solve { mass: f64, precond: String, message: String },
    #[error("cannot write {}: {source}", path.display())]
    #[diagnostic(code(symc::scan::write), help("check that the output folder is writable"))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    #[diagnostic(code(symc::scan::args), help("see `symc scan --help`"))]
    Args(String),
}

/// One point of the scan.
#[derive(Clone, Debug)]
struct Point {
    precond: String,
    mass: f64,
    iterations: f64,
    applications: f64,
    seconds: f64,
    setup_seconds: f64,
    converged: bool,
}

fn label(spec: &str) -> String {
    match spec {
        "none" | "mg" => spec.to_string(),
        dir => std::path::Path::new(dir)
            .file_name()
            .map_or_else(|| dir.to_string(), |n| n.to_string_lossy().into_owned()),
    }
}

fn solve_point(args: &ScanArgs, spec: &str, mass: f64) -> Result<Point, ScanError> {
    let exe = std::env::current_exe().map_err(|e| ScanError::Args(e.to_string()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("solve")
        .arg("--gauge")
        .arg(&args.gauge)
        .arg(format!("--mass={mass}"))
        .arg(format!("--csw={}", args.csw))
        .args(["--rhs", &args.rhs.to_string(), "--tol", &args.tol.to_string()])
        .args(["--restart", &args.restart.to_string()])
        .args(["--max-iterations", &args.max_iterations.to_string(), "--format", "json"]);
    if spec != "none" {
        cmd.args(["--solver", "fgmres", "--precond", spec]);
    }
    let fail = |message: String| ScanError::Solve { mass, precond: spec.into(), message };
    let out = cmd.output().map_err(|e| fail(e.to_string()))?;
    // A solve that did not converge exits 1 but still prints its JSON: it is a data point.
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        let err = String::from_utf8_lossy(&out.stderr);
        fail(err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim().into())
    })?;
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let rhs = args.rhs.max(1) as f64;
    let mut applications = num(&json["operator_applications"]);
    let mut setup_seconds = num(&json["setup_seconds"]);
    if let Some(mg) = json.get("multigrid") {
        applications += num(&mg["cycles"]["fine_applications"]) / rhs;
        setup_seconds = num(&mg["setup_seconds"]);
    }
    Ok(Point {
        precond: label(spec),
        mass,
        iterations: num(&json["iterations"]),
        applications,
        seconds: num(&json["seconds"]),
        setup_seconds: if setup_seconds.is_finite() { setup_seconds } else { 0.0 },
        converged: json["converged"].as_bool().unwrap_or(false),
    })
}

fn write(path: PathBuf, text: &str) -> Result<PathBuf, ScanError> {
    crate::train::write_atomic(&path, text.as_bytes())
        .map_err(|source| ScanError::Write { path: path.clone(), source })?;
    Ok(path)
}

pub fn run(args: ScanArgs) -> Result<(), Failure> {
    if args.masses.is_empty() || args.precond.is_empty() || args.rhs == 0 {
        return Err(Failure::io(ScanError::Args(
            "give at least one mass, one --precond and one right-hand side".into(),
        )));
    }
    if !args.gauge.is_file() {
        return Err(Failure::io(ScanError::Args(format!(
            "no gauge file at {} (run from the project folder, or give --gauge)",
            args.gauge.display()
        ))));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|source| Failure::io(ScanError::Write { path: args.out.clone(), source }))?;
    let total = (args.masses.len() * args.precond.len()) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} solves  {msg}  [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut points = Vec::new();
    for &mass in &args.masses {
        for spec in &args.precond {
            bar.set_message(format!("m = {mass}, {}", label(spec)));
            let p = solve_point(&args, spec, mass).map_err(Failure::io)?;
            bar.println(format!(
                "m = {mass:<7} {:<14} {:>8.1} iterations {:>9.1} D {:>8.3} s{}",
                p.precond,
                p.iterations,
                p.applications,
                p.seconds,
                if p.converged { "" } else { "  NOT CONVERGED" }
            ));
            points.push(p);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    let mut csv = String::from(
        "preconditioner,mass,iterations,operator_applications,seconds,setup_seconds,converged\n",
    );
    for p in &points {
        csv += &format!(
            "{},{},{},{},{},{},{}\n",
            p.precond,
            p.mass,
            p.iterations,
            p.applications,
            p.seconds,
            p.setup_seconds,
            p.converged
        );
    }
    let labels: Vec<String> = args.precond.iter().map(|s| label(s)).collect();
    let mut md = format!(
        "Mass scan on {} (c_sw = {}, FGMRES({}) to {:e}, {} right-hand sides; means per \
         right-hand side; set-up seconds apart).\n\n| m |",
        args.gauge.display(),
        args.csw,
        args.restart,
        args.tol,
        args.rhs
    );
    for l in &labels {
        md += &format!(" {l}: its / D / s |");
    }
    md += "\n|---|";
    md += &"---|".repeat(labels.len());
    md += "\n";
    for &mass in &args.masses {
        md += &format!("| {mass} |");
        for l in &labels {
            match points.iter().find(|p| p.mass == mass && &p.precond == l) {
                Some(p) => {
                    md += &format!(
                        " {:.0} / {:.0} / {:.3}{}{} |",
                        p.iterations,
                        p.applications,
                        p.seconds,
                        if p.setup_seconds > 0.0 {
                            format!(" (+{:.2} set-up)", p.setup_seconds)
                        } else {
                            String::new()
                        },
                        if p.converged { "" } else { " ✗" }
                    )
                }
                None => md += " – |",
            }
        }
        md += "\n";
    }
    let w = |name: &str, text: &str| write(args.out.join(name), text).map_err(Failure::io);
    w("scan.csv", &csv)?;
    w("scan.md", &md)?;
    let series: Vec<ScanSeries> = labels
        .iter()
        .map(|l| ScanSeries {
            name: l.clone(),
            points: points
                .iter()
                .filter(|p| &p.precond == l && p.converged)
                .map(|p| (p.mass, p.iterations, p.seconds))
                .collect(),
        })
        .collect();
    let title = format!("FGMRES({}) to {:e} against the mass", args.restart, args.tol);
    let (svg, png) = plot_scan(&series, &args.out.join("scan"), &title)
        .map_err(|e| Failure::io(miette::Report::new(e)))?;
    print!("{md}");
    eprintln!(
        "wrote {}, {}, {} and {}",
        args.out.join("scan.csv").display(),
        args.out.join("scan.md").display(),
        svg.display(),
        png.display()
    );
    Ok(())
}
