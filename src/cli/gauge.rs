//! `symc gauge`: generate quenched configurations with the heatbath, inspect configuration
//! files (dims, plaquette, link trace, checksum status) and convert between formats.

use super::Failure;
use crate::lattice::heatbath::{self, HeatbathParams, Start, chain_estimate};
use crate::lattice::io::{
    self, GaugeFile, GaugeFormat, HintFlags, LayoutHints, Precision, Provenance, ReadOptions,
    WriteOptions, read_gauge_with,
};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub enum GaugeCommand {
    /// Generate a quenched SU(3) configuration (Wilson action, heatbath + overrelaxation).
    #[command(after_help = "Examples:\n  \
symc gauge generate --beta 6.0 --dims 8x8x8x16 --sweeps 200 --seed 7 -o b6.nersc\n  \
symc gauge generate --beta 5.7 --dims 8x8x8x8 --sweeps 100 --hot --format ildg -o conf.lime --history plaq.csv\n\n\
One compound sweep is one heatbath sweep followed by --overrelax overrelaxation sweeps. The chain \
depends only on (β, dims, seed, start, overrelax, reunitarize-every), not on the number of threads.")]
    Generate(GenerateArgs),
    /// Print dims, format, precision, plaquette, link trace and checksum status of a file.
    #[command(after_help = "Examples:\n  symc gauge info conf.nersc\n  \
symc gauge info conf.lime --format json\n  symc gauge info damaged.cfg --no-verify\n  \
symc gauge info bare.lime --dims 4x4x4x8 --precision f32\n\n\
The format is detected from the content (NERSC, ILDG/SciDAC LIME, MILC v5, DDalphaAMG). A file \
that fails a check (checksum, header plaquette, size, unitarity) exits with status 2. A LIME file \
whose only record is the binary data states neither extents nor precision: a hypercubic L^4 \
lattice is inferred from the payload size (and reported as inferred), any other needs --dims \
(and --precision where the size leaves both open). A hint that contradicts a file is an error.")]
    Info(InfoArgs),
    /// Convert a configuration to another format or precision.
    #[command(
        after_help = "Examples:\n  symc gauge convert lat.sample.l4444 conf.nersc --to nersc\n  \
symc gauge convert conf.nersc conf.lime --to ildg --precision 32\n  \
symc gauge convert bare.lime conf.nersc --to nersc --dims 4x4x4x8 --input-precision f32\n\n\
--precision is the precision written; --dims and --input-precision describe an input LIME file \
that states neither (see `symc gauge info --help`)."
    )]
    Convert(ConvertArgs),
}

/// Output file formats on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatArg {
    Nersc,
    Ildg,
    Milc,
    Ddalphaamg,
}

impl From<FormatArg> for GaugeFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Nersc => GaugeFormat::Nersc,
            FormatArg::Ildg => GaugeFormat::Ildg,
            FormatArg::Milc => GaugeFormat::Milc,
            FormatArg::Ddalphaamg => GaugeFormat::DdalphaAmg,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Inverse coupling β = 6/g².
    #[arg(long)]
    pub beta: f64,
    /// Lattice extents x·y·z·t, e.g. 8x8x8x16.
    #[arg(long, value_parser = parse_dims)]
    pub dims: [usize; 4],
    /// Number of compound sweeps.
    #[arg(long)]
    pub sweeps: usize,
    /// Random seed (the chain is reproducible from it).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Overrelaxation sweeps per heatbath sweep.
    #[arg(long, default_value_t = 4)]
    pub overrelax: usize,
    /// Start from Haar-random links instead of the unit field.
    #[arg(long)]
    pub hot: bool,
    /// Re-project links onto SU(3) every this many sweeps (0 = never).
    #[arg(long, default_value_t = 10)]
    pub reunitarize_every: usize,
    /// Output file.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Nersc)]
    pub format: FormatArg,
    /// Stored precision in bits (default 64; MILC stores 32).
    #[arg(long, value_parser = parse_precision)]
    pub precision: Option<u32>,
    /// NERSC: store two rows (`4D_SU3_GAUGE`) instead of the full matrix.
    #[arg(long)]
    pub two_rows: bool,
    /// Write the plaquette after every sweep to this CSV file (columns sweep,plaquette).
    #[arg(long)]
    pub history: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStyle {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// The configuration file (format detected from its content).
    pub file: PathBuf,
    /// Output style.
    #[arg(long, value_enum, default_value_t = OutputStyle::Text)]
    pub format: OutputStyle,
    /// Report failed checks instead of refusing the file.
    #[arg(long)]
    pub no_verify: bool,
    /// Lattice extents XxYxZxT of a LIME file that does not state them.
    #[arg(long, value_name = "XxYxZxT", value_parser = parse_hint_dims)]
    pub dims: Option<[usize; 4]>,
    /// Stored precision (f32 or f64) of a LIME file that does not state it.
    #[arg(long, value_name = "f32|f64", value_parser = parse_hint_precision)]
    pub precision: Option<Precision>,
}

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// Input configuration (any supported format).
    pub input: PathBuf,
    /// Output file.
    pub output: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub to: FormatArg,
    /// Stored precision in bits (default: the input's; MILC stores 32, DDalphaAMG 64).
    #[arg(long, value_parser = parse_precision)]
    pub precision: Option<u32>,
    /// NERSC: store two rows (`4D_SU3_GAUGE`) instead of the full matrix.
    #[arg(long)]
    pub two_rows: bool,
    /// NERSC and MILC: write little-endian instead of big-endian.
    #[arg(long)]
    pub little_endian: bool,
    /// Lattice extents XxYxZxT of an input LIME file that does not state them.
    #[arg(long, value_name = "XxYxZxT", value_parser = parse_hint_dims)]
    pub dims: Option<[usize; 4]>,
    /// Stored precision (f32 or f64) of an input LIME file that does not state it (--precision
    /// is the output's).
    #[arg(long, value_name = "f32|f64", value_parser = parse_hint_precision)]
    pub input_precision: Option<Precision>,
}

/// Parses `8x8x8x16` into four extents.
fn parse_dims(s: &str) -> Result<[usize; 4], String> {
    let parts: Vec<&str> = s.split(['x', 'X']).collect();
    if parts.len() != 4 {
        return Err(format!("expected four extents like 8x8x8x16, found `{s}`"));
    }
    let mut d = [0usize; 4];
    for (i, p) in parts.iter().enumerate() {
        d[i] = p.trim().parse().map_err(|_| format!("`{p}` in `{s}` is not a positive integer"))?;
        if d[i] < 2 {
            return Err(format!("extent {} in `{s}` must be at least 2", d[i]));
        }
    }
    Ok(d)
}

/// Parses a layout hint `4x4x4x8`. Unlike `generate --dims`, extents of 1 are allowed: a file
/// may hold a lower-dimensional slice, and the reader bounds the rest.
pub(crate) fn parse_hint_dims(s: &str) -> Result<[usize; 4], String> {
    let parts: Vec<&str> = s.split(['x', 'X']).collect();
    if parts.len() != 4 {
        return Err(format!("expected four extents XxYxZxT like 4x4x4x8, found `{s}`"));
    }
    let mut d = [0usize; 4];
    for (i, p) in parts.iter().enumerate() {
        d[i] = match p.trim().parse() {
            Ok(n) if n >= 1 => n,
            _ => return Err(format!("`{p}` in `{s}` is not a positive integer")),
        };
    }
    Ok(d)
}

/// Parses a precision hint: `f32` or `f64` (`32` and `64` are accepted too, as `--precision`
/// of `convert` and `generate` spell it).
pub(crate) fn parse_hint_precision(s: &str) -> Result<Precision, String> {
    match s.to_ascii_lowercase().as_str() {
        "f32" | "32" => Ok(Precision::F32),
        "f64" | "64" => Ok(Precision::F64),
        _ => Err(format!("expected f32 or f64, found `{s}`")),
    }
}

/// The hint flags of `symc solve` and `symc train`, where `--dims`/`--precision` would read as
/// the solve's or the model's own settings.
pub(crate) const GAUGE_HINT_FLAGS: HintFlags =
    HintFlags { dims: "--gauge-dims", precision: "--gauge-precision" };

/// The read options of a command whose layout-hint flags are spelled as `flags` says.
pub(crate) fn hinted_read(
    verify: bool,
    dims: Option<[usize; 4]>,
    precision: Option<Precision>,
    flags: HintFlags,
) -> ReadOptions {
    ReadOptions { verify, hints: LayoutHints { dims, precision, flags } }
}

/// `lattice ...` / `precision ...` suffix for `gauge info` when the file did not state it.
fn provenance_suffix(p: Provenance) -> String {
    match p {
        Provenance::Header => String::new(),
        other => format!(", {}", other.describe()),
    }
}

fn parse_precision(s: &str) -> Result<u32, String> {
    match s {
        "32" => Ok(32),
        "64" => Ok(64),
        _ => Err(format!("precision must be 32 or 64, found `{s}`")),
    }
}

/// The precision to write: the explicit choice, else what the format can store, else `default`.
fn output_precision(format: GaugeFormat, explicit: Option<u32>, default: u32) -> Precision {
    let bits = explicit.unwrap_or(match format {
        GaugeFormat::Milc => 32,
        GaugeFormat::DdalphaAmg => 64,
        _ => default,
    });
    if bits == 32 { Precision::F32 } else { Precision::F64 }
}

pub fn run(c: GaugeCommand) -> Result<(), Failure> {
    match c {
        GaugeCommand::Generate(a) => generate(a),
        GaugeCommand::Info(a) => info(a),
        GaugeCommand::Convert(a) => convert(a),
    }
}

fn generate(a: GenerateArgs) -> Result<(), Failure> {
    generate_shared(a, &heatbath::Alone, true)
}

/// `gauge generate` with the link updates shared out by `share` (several processes); only the
/// process with `root` shows progress, writes the file and prints.
pub(super) fn generate_shared(
    a: GenerateArgs,
    share: &dyn heatbath::LinkShare,
    root: bool,
) -> Result<(), Failure> {
    let params = HeatbathParams {
        beta: a.beta,
        sweeps: a.sweeps,
        overrelax_per_sweep: a.overrelax,
        seed: a.seed,
        start: if a.hot { Start::Hot } else { Start::Cold },
        reunitarize_every: a.reunitarize_every,
    };
    heatbath::validate(a.dims, &params).map_err(Failure::io)?;
    let format = GaugeFormat::from(a.format);
    let opts = WriteOptions {
        precision: output_precision(format, a.precision, 64),
        nersc_two_rows: a.two_rows,
        label: format!(
            "symc heatbath beta={} dims={}x{}x{}x{} seed={} sweeps={} overrelax={} start={}",
            a.beta,
            a.dims[0],
            a.dims[1],
            a.dims[2],
            a.dims[3],
            a.seed,
            a.sweeps,
            a.overrelax,
            if a.hot { "hot" } else { "cold" }
        ),
        ..WriteOptions::default()
    };
    // Fail on an impossible format/precision before spending minutes on the chain.
    let probe = crate::lattice::gauge::GaugeField::unit([2, 2, 2, 2]);
    io::encode(&a.output, &probe, format, &opts).map_err(Failure::io)?;

    let target = if root {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(a.sweeps as u64), target);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} sweep {pos}/{len} [{bar:30}] {elapsed_precise} eta {eta} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let start = std::time::Instant::now();
    let (field, history) = heatbath::generate_shared(a.dims, &params, share, |n, p| {
        bar.set_position(n as u64);
        bar.set_message(format!("plaquette {p:.6}"));
    });
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    if !root {
        return Ok(());
    }

    io::write_gauge(&a.output, &field, format, &opts).map_err(Failure::io)?;
    if let Some(h) = &a.history {
        let mut csv = String::from("sweep,plaquette\n");
        for (i, p) in history.iter().enumerate() {
            csv.push_str(&format!("{},{p:.12}\n", i + 1));
        }
        io::write_atomic(h, csv.as_bytes()).map_err(Failure::io)?;
    }
    let (p, ps, pt) = heatbath::plaquette_parts(&field);
    println!("wrote {} ({}, {}-bit)", a.output.display(), format, opts.precision.bits());
    println!(
        "lattice {}x{}x{}x{}, beta {}, {} sweeps (1 heatbath + {} overrelaxation each), seed {}, {} start",
        a.dims[0],
        a.dims[1],
        a.dims[2],
        a.dims[3],
        a.beta,
        a.sweeps,
        a.overrelax,
        a.seed,
        if a.hot { "hot" } else { "cold" }
    );
    println!("plaquette {p:.8} (spatial {ps:.8}, temporal {pt:.8})");
    if history.len() >= 20 {
        // The second half as a rough equilibrium estimate (the first half is thermalisation).
        let e = chain_estimate(&history[history.len() / 2..]);
        println!(
            "mean plaquette over sweeps {}..{}: {:.6} ± {:.6} (tau_int {:.1} sweeps)",
            history.len() / 2 + 1,
            history.len(),
            e.mean,
            e.error,
            e.tau_int
        );
    }
    println!(
        "{:.2} s, {:.1} ms per compound sweep, {} threads",
        secs,
        1e3 * secs / a.sweeps.max(1) as f64,
        rayon::current_num_threads()
    );
    Ok(())
}

/// The JSON/text summary of a configuration file.
#[derive(serde::Serialize)]
struct Info<'a> {
    file: String,
    format: &'static str,
    variant: &'a str,
    dims: [usize; 4],
    volume: usize,
    precision_bits: u32,
    big_endian: bool,
    plaquette: f64,
    plaquette_spatial: f64,
    plaquette_temporal: f64,
    link_trace: f64,
    header_plaquette: Option<f64>,
    header_link_trace: Option<f64>,
    /// true/false when the file carries checksums, null when it has none.
    checksum_ok: Option<bool>,
    /// `verified`, `FAILED` or `absent`.
    checksum: &'static str,
    all_checks_ok: bool,
    checks: &'a [io::Check],
    metadata: serde_json::Map<String, serde_json::Value>,
    /// `header`, `payload_size` (inferred) or `hint` (--dims).
    dims_from: Provenance,
    /// `header`, `payload_size` (inferred) or `hint` (--precision).
    precision_from: Provenance,
}

fn summarize<'a>(path: &Path, f: &'a GaugeFile) -> Info<'a> {
    let (p, ps, pt) = heatbath::plaquette_parts(&f.field);
    let checksum_ok = f.checksum_ok();
    Info {
        file: path.display().to_string(),
        format: f.format.name(),
        variant: &f.variant,
        dims: f.field.dims(),
        volume: f.field.geom.volume(),
        precision_bits: f.precision_bits,
        big_endian: f.big_endian,
        plaquette: p,
        plaquette_spatial: ps,
        plaquette_temporal: pt,
        link_trace: f.field.link_trace(),
        header_plaquette: f.header_plaquette,
        header_link_trace: f.header_link_trace,
        checksum_ok,
        checksum: match checksum_ok {
            Some(true) => "verified",
            Some(false) => "FAILED",
            None => "absent",
        },
        all_checks_ok: f.all_ok(),
        checks: &f.checks,
        metadata: f
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
        dims_from: f.dims_from,
        precision_from: f.precision_from,
    }
}

fn info(a: InfoArgs) -> Result<(), Failure> {
    let opts = hinted_read(!a.no_verify, a.dims, a.precision, HintFlags::default());
    let f = read_gauge_with(&a.file, &opts).map_err(Failure::io)?;
    let s = summarize(&a.file, &f);
    match a.format {
        OutputStyle::Json => {
            let text = serde_json::to_string_pretty(&s)
                .map_err(|e| Failure::io(miette::miette!("cannot encode JSON: {e}")))?;
            println!("{text}");
        }
        OutputStyle::Text => {
            println!("file        {}", s.file);
            println!("format      {} ({})", s.format, s.variant);
            println!(
                "lattice     {}x{}x{}x{} ({} sites){}",
                s.dims[0],
                s.dims[1],
                s.dims[2],
                s.dims[3],
                s.volume,
                provenance_suffix(s.dims_from)
            );
            println!("precision   {}-bit{}", s.precision_bits, provenance_suffix(s.precision_from));
            println!(
                "plaquette   {:.10} (spatial {:.10}, temporal {:.10})",
                s.plaquette, s.plaquette_spatial, s.plaquette_temporal
            );
            println!("link trace  {:.10}", s.link_trace);
            println!("checksum    {}", s.checksum);
            for c in s.checks {
                println!(
                    "  [{}] {}: expected {}, found {}",
                    if c.ok { "ok" } else { "FAILED" },
                    c.name,
                    c.expected,
                    c.found
                );
            }
            if !f.metadata.is_empty() {
                println!("header");
            }
            for (k, v) in &f.metadata {
                println!("  {k} = {v}");
            }
        }
    }
    Ok(())
}

fn convert(a: ConvertArgs) -> Result<(), Failure> {
    let flags = HintFlags { precision: "--input-precision", ..HintFlags::default() };
    let opts = hinted_read(true, a.dims, a.input_precision, flags);
    let src = read_gauge_with(&a.input, &opts).map_err(Failure::io)?;
    if let Some(note) = src.layout_note() {
        eprintln!("note: {}: {note}", a.input.display());
    }
    let format = GaugeFormat::from(a.to);
    let precision = output_precision(format, a.precision, src.precision_bits);
    if precision.bits() < src.precision_bits {
        eprintln!(
            "note: storing {}-bit data as {}-bit loses precision",
            src.precision_bits,
            precision.bits()
        );
    }
    let opts = WriteOptions {
        precision,
        nersc_two_rows: a.two_rows,
        little_endian: a.little_endian,
        label: format!("converted by symc from {}", src.variant),
    };
    io::write_gauge(&a.output, &src.field, format, &opts).map_err(Failure::io)?;
    // Read the result back: every check of the new format must pass and the physics must agree.
    let back = io::read_gauge(&a.output).map_err(Failure::io)?;
    let (p0, p1) = (heatbath::plaquette(&src.field), heatbath::plaquette(&back.field));
    let tol = if precision == Precision::F32 { 1e-6 } else { 1e-12 };
    if (p0 - p1).abs() > tol {
        return Err(Failure::io(miette::miette!(
            "conversion check failed: plaquette of `{}` is {p1:.12}, expected {p0:.12} from `{}`",
            a.output.display(),
            a.input.display()
        )));
    }
    println!(
        "converted {} ({}) -> {} ({}); plaquette {p1:.10}, {} checks passed",
        a.input.display(),
        src.variant,
        a.output.display(),
        back.variant,
        back.checks.len()
    );
    Ok(())
}
