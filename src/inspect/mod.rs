//! `symc inspect` beyond the layer table: what the compiler made of each kernel, how fast it
//! runs against this machine's roofline, and whether it computes the right thing.
//!
//! - [`roofline`]: CPU detection and the measured 128-bit FMA / memory-bandwidth ceilings.
//! - [`isa_stats`]: instruction classes from cranelift's VCode listing, and the roofline placement
//!   of a kernel from its plan's FLOPs and bytes.
//! - [`views`]: text tables (100 columns, colour on a TTY) and JSON structures.
//! - [`bench`]: `--bench`, kernels timed on synthetic data against the ceilings.
//! - [`verify`]: `--verify`, the JIT against the reference evaluator, gradients against finite
//!   differences, and the declared symmetry.

pub mod backend;
pub mod bench;
pub mod isa_stats;
pub mod roofline;
pub mod verify;
pub mod views;

use crate::codegen::jit::JitError;
use crate::inspect::bench::BenchOptions;
use crate::inspect::views::{KernelJson, PlanJson, Style};
use crate::ir::Graph;
use crate::lattice::gauge::GaugeField;
use serde_json::{Value, json};
use std::path::PathBuf;

/// Which kernel views `symc inspect` was asked for.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub plan: bool,
    pub clif: bool,
    pub asm: bool,
    pub stats: bool,
    pub bench: bool,
    pub verify: bool,
    /// A gauge configuration for gauge networks (default: a seeded hot field).
    pub gauge: Option<PathBuf>,
    pub seed: u64,
}

impl Request {
    /// Whether anything beyond the layer table and the IR was asked for.
    pub fn any(&self) -> bool {
        self.plan || self.clif || self.asm || self.stats || self.bench || self.verify
    }
}

/// What can stop the kernel views.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum InspectError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Compile(#[from] backend::CompileError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    GaugeFile(#[from] crate::lattice::io::GaugeIoError),
    #[error("the gauge field in `{path}` is {found:?}, but model `{model}` lives on {expected:?}")]
    #[diagnostic(
        code(symc::inspect::gauge_lattice),
        help("pass a configuration with the model's lattice extents (x, y, z, t)")
    )]
    GaugeShape { path: PathBuf, model: String, found: [usize; 4], expected: [usize; 4] },
    #[error("--gauge is only meaningful for gauge networks; `{model}` takes no gauge field")]
    #[diagnostic(code(symc::inspect::gauge_unused), help("drop --gauge for this model"))]
    GaugeUnused { model: String },
    #[error("while measuring: {0}")]
    #[diagnostic(code(symc::inspect::bench))]
    Bench(#[from] JitError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Verify(#[from] verify::VerifyError),
    #[error("`{model}` failed verification: {failed} of {total} checks")]
    #[diagnostic(
        code(symc::inspect::verify_failed),
        help("the table above shows which check failed and by how much")
    )]
    VerifyFailed { model: String, failed: usize, total: usize },
}

impl InspectError {
    /// 2 for unreadable input files, 1 for everything about the model and its kernels.
    pub fn exit_code(&self) -> u8 {
        match self {
            InspectError::GaugeFile(_) => 2,
            _ => 1,
        }
    }
}

/// The rendered kernel views, and the verdict of `--verify` if it ran.
pub struct Inspection {
    pub text: String,
    /// Keys to add to the JSON document (`plans`, `kernels`, `machine`, `bench`, `verify`).
    pub json: serde_json::Map<String, Value>,
    pub verify: Option<verify::VerifyReport>,
}

fn load_gauge(graph: &Graph, req: &Request) -> Result<Option<GaugeField>, InspectError> {
    let Some(path) = &req.gauge else {
        return Ok(None);
    };
    let Some(lat) = graph.lattice else {
        return Err(InspectError::GaugeUnused { model: graph.name.clone() });
    };
    let field = crate::lattice::io::read_gauge(path)?.field;
    if field.dims() != lat.dims {
        return Err(InspectError::GaugeShape {
            path: path.clone(),
            model: graph.name.clone(),
            found: field.dims(),
            expected: lat.dims,
        });
    }
    Ok(Some(field))
}

fn section(text: &mut String, title: &str, style: Style) {
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&style.bold(&format!("── {title} ")));
    text.push_str(&style.bold(&"─".repeat(96usize.saturating_sub(title.chars().count()))));
    text.push('\n');
}

/// Compile `graph`, then render every view `req` asks for (progress goes to stderr).
pub fn inspect(graph: &Graph, req: &Request, style: Style) -> Result<Inspection, InspectError> {
    let gauge = load_gauge(graph, req)?;
    let mut text = String::new();
    let mut json = serde_json::Map::new();
    let listings = req.clif || req.asm || req.stats;
    let needs_compile = req.plan || listings || req.bench;
    let compiled = if needs_compile {
        eprintln!("compiling {} …", graph.name);
        Some(backend::compile(graph, listings, gauge.as_ref(), req.seed)?)
    } else {
        None
    };
    let machine = if req.stats || req.bench {
        eprintln!("measuring this machine (FMA ceiling, memory bandwidth) …");
        Some(roofline::machine()?)
    } else {
        None
    };
    if let Some(c) = &compiled {
        let (shown_plans, shown_records) = (c.shown_plans(), c.shown_records());
        let (plans, records) = (&shown_plans[..], &shown_records[..]);
        if req.plan {
            section(&mut text, &format!("kernel plan ({} plans)", plans.len()), style);
            text.push_str(&views::plan_view(plans, style));
        }
        if req.clif {
            section(&mut text, &format!("cranelift IR ({} kernels)", records.len()), style);
            text.push_str(&views::clif_view(records, style));
        }
        if req.asm {
            section(&mut text, &format!("machine code ({} kernels)", records.len()), style);
            text.push_str(&views::asm_view(records, style));
        }
        if let (true, Some(m)) = (req.stats, machine) {
            section(&mut text, "instructions and roofline", style);
            text.push_str(&views::machine_view(m, style));
            text.push('\n');
            text.push_str(&views::stats_view(plans, records, m, style));
        }
        json.insert(
            "plans".into(),
            json!(plans.iter().map(|p| PlanJson::new(p, machine)).collect::<Vec<_>>()),
        );
        if listings {
            json.insert(
                "kernels".into(),
                json!(
                    records
                        .iter()
                        .map(|r| KernelJson::new(r, req.clif, req.asm))
                        .collect::<Vec<_>>()
                ),
            );
        }
        if let (true, Some(m)) = (req.bench, machine) {
            eprintln!("benchmarking {} plans …", c.plans().len());
            let results = backend::bench(c, m, BenchOptions::default())?;
            section(&mut text, "measured speed", style);
            if !req.stats {
                text.push_str(&views::machine_view(m, style));
                text.push('\n');
            }
            text.push_str(&views::bench_view(&results, style));
            json.insert("bench".into(), json!(results));
        }
    }
    if let Some(m) = machine {
        json.insert("machine".into(), json!(m));
    }
    let mut verdict = None;
    if req.verify {
        eprintln!("verifying {} …", graph.name);
        let rep = backend::verify_model(graph, gauge.as_ref(), req.seed)?;
        section(&mut text, "verification", style);
        text.push_str(&views::verify_view(&rep, style));
        json.insert("verify".into(), json!({ "passed": rep.passed(), "checks": rep.checks }));
        verdict = Some(rep);
    }
    Ok(Inspection { text, json, verify: verdict })
}
