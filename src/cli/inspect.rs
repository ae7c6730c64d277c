//! `symc inspect FILE`: what the compiler makes of a model.
//!
//! The default view is the layer table (kind chosen from the symmetry, shapes, parameters,
//! dense-equivalent parameters, FLOPs and bytes per application, totals); `--ir` prints the
//! stable IR text. Each view is one function taking the checked graph, so further views
//! (kernel plan, CLIF, machine code, benchmarks, self-checks) are added as flags and
//! functions next to these without touching the others.

use super::Failure;
use crate::ir::{self, Graph, cost};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Output format of a view.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Tables for people.
    #[default]
    Text,
    /// JSON for scripts.
    Json,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  symc inspect models/digits_conv.sym\n  \
symc inspect models/digits_dense.sym --format json\n  symc inspect models/ptc_smoother.sym --ir\n  \
symc inspect models/ptc_smoother.sym --plan --stats\n  \
symc inspect models/ptc_smoother.sym --asm | grep vfmadd\n  \
symc inspect models/digits_conv.sym --bench\n  symc inspect models/digits_conv.sym --verify\n  \
symc inspect models/ptc_smoother.sym --verify --gauge conf.lime\n\n\
Flags combine; without flags the layer table is shown. --verify exits 1 when a check fails.")]
pub struct InspectArgs {
    /// The .sym file to inspect.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print the checked IR (every value, layer and parameter with its id).
    #[arg(long)]
    pub ir: bool,
    /// Print the kernel plan per layer: loop nest, layout and SIMD lanes, strategy and why.
    #[arg(long)]
    pub plan: bool,
    /// Print the cranelift IR of every forward and backward kernel.
    #[arg(long)]
    pub clif: bool,
    /// Print the machine code of every kernel (cranelift's listing after register allocation).
    #[arg(long)]
    pub asm: bool,
    /// Count instructions by class per kernel and place each plan on this machine's roofline.
    #[arg(long)]
    pub stats: bool,
    /// Time every kernel and pass on synthetic data against the measured ceilings.
    #[arg(long)]
    pub bench: bool,
    /// Check the JIT against the reference, gradients against finite differences and the
    /// declared symmetry; exit 1 if any check fails.
    #[arg(long)]
    pub verify: bool,
    /// Gauge configuration for gauge networks (any supported format); default: a random
    /// (hot) SU(3) field on the model's lattice.
    #[arg(long, value_name = "FILE")]
    pub gauge: Option<PathBuf>,
    /// Seed of the random data, weights and gauge field used by --bench and --verify.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl InspectArgs {
    /// The kernel views requested (`crate::inspect`).
    pub fn kernel_request(&self) -> crate::inspect::Request {
        crate::inspect::Request {
            plan: self.plan,
            clif: self.clif,
            asm: self.asm,
            stats: self.stats,
            bench: self.bench,
            verify: self.verify,
            gauge: self.gauge.clone(),
            seed: self.seed,
        }
    }
}

pub fn run(args: InspectArgs) -> Result<(), Failure> {
    let graph = load(&args.file)?;
    let req = args.kernel_request();
    if req.any() {
        return kernel_views(&graph, &args, &req);
    }
    let out = if args.ir { view_ir(&graph, args.format) } else { view_layers(&graph, args.format) };
    print!("{out}");
    Ok(())
}

/// The kernel views of `crate::inspect` (after the IR when `--ir` is given too). Colour only
/// when stdout is a terminal; a failed `--verify` prints its table, then exits 1.
fn kernel_views(
    graph: &Graph,
    args: &InspectArgs,
    req: &crate::inspect::Request,
) -> Result<(), Failure> {
    use std::io::IsTerminal;
    let style = crate::inspect::views::Style {
        color: args.format == Format::Text && std::io::stdout().is_terminal(),
    };
    let fail = |e: crate::inspect::InspectError| Failure {
        code: e.exit_code(),
        report: miette::Report::new(e),
    };
    let ins = crate::inspect::inspect(graph, req, style).map_err(fail)?;
    match args.format {
        Format::Text => {
            if args.ir {
                print!("{}\n", ir::print::print(graph));
            }
            print!("{}", ins.text);
        }
        Format::Json => {
            let mut doc = layers_json(graph);
            if let Some(obj) = doc.as_object_mut() {
                if args.ir {
                    obj.insert("ir".into(), json!(ir::print::print(graph)));
                }
                obj.extend(ins.json);
            }
            println!("{doc}");
        }
    }
    match ins.verify {
        Some(rep) if !rep.passed() => Err(fail(crate::inspect::InspectError::VerifyFailed {
            model: graph.name.clone(),
            failed: rep.checks.iter().filter(|c| !c.passed).count(),
            total: rep.checks.len(),
        })),
        _ => Ok(()),
    }
}

/// Load and check a model, mapping problems to the CLI's exit codes.
pub fn load(path: &Path) -> Result<Graph, Failure> {
    crate::sema::load_model(path)
        .map_err(|e| Failure { code: e.exit_code(), report: miette::Report::new(e) })
}

/// `--ir`: the stable IR text (in JSON, under the key `ir`).
pub fn view_ir(graph: &Graph, format: Format) -> String {
    let text = ir::print::print(graph);
    match format {
        Format::Text => text,
        Format::Json => format!("{}\n", json!({ "network": graph.name, "ir": text })),
    }
}

/// The layer table, or its JSON form.
pub fn view_layers(graph: &Graph, format: Format) -> String {
    match format {
        Format::Text => layer_table(graph),
        Format::Json => format!("{}\n", layers_json(graph)),
    }
}

fn symmetry(graph: &Graph) -> String {
    match &graph.symmetry {
        ir::Symmetry::None => "none".into(),
        ir::Symmetry::Translation { axes } => format!(
            "translation(axes = {})",
            axes.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
        ),
        ir::Symmetry::GaugeSu3 => "gauge(SU3), translation".into(),
    }
}

/// The JSON document of the layer table (`total_params`, `layers[].kind/params/...`).
pub fn layers_json(graph: &Graph) -> serde_json::Value {
    let costs = cost::costs(graph);
    let total = cost::total(graph);
    let layers: Vec<_> = graph
        .layers
        .iter()
        .zip(&costs)
        .enumerate()
        .map(|(i, (l, c))| {
            json!({
                "id": format!("l{i}"),
                "name": l.name,
                "kind": ir::print::kind_name(&l.kind),
                "detail": ir::print::kind_detail(&l.kind),
                "inputs": l.inputs.iter().map(|v| ir::print::value_type(graph.value(*v))).collect::<Vec<_>>(),
                "output": ir::print::value_type(graph.value(l.output)),
                "params": c.params,
                "dense_equivalent_params": c.dense_equivalent_params,
                "flops": c.flops,
                "bytes": c.bytes,
            })
        })
        .collect();
    json!({
        "network": graph.name,
        "symmetry": symmetry(graph),
        "lattice": graph.lattice.map(|l| l.dims.to_vec()),
        "input": ir::print::value_type(&graph.values[0]),
        "output": ir::print::value_type(graph.value(graph.output)),
        "total_params": total.params,
        "total_dense_equivalent_params": total.dense_equivalent_params,
        "total_flops": total.flops,
        "total_bytes": total.bytes,
        "param_scalars": graph.param_scalars(),
        "layers": layers,
    })
}

/// Thousands separators for counts in tables: `6,454,860`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The human table: one row per layer and a totals row.
pub fn layer_table(graph: &Graph) -> String {
    let costs = cost::costs(graph);
    let total = cost::total(graph);
    let header =
        ["#", "layer", "kind", "input", "output", "params", "dense-equiv", "FLOPs", "bytes"];
    let row = |id: String, name: String, g: &Graph, l: &ir::Layer, c: &cost::LayerCost| {
        [
            id,
            name,
            ir::print::kind_name(&l.kind).to_string(),
            ir::print::value_type(g.value(l.inputs[0])),
            ir::print::value_type(g.value(l.output)),
            group(c.params),
            group(c.dense_equivalent_params),
            group(c.flops),
            group(c.bytes),
        ]
    };
    let mut rows: Vec<[String; 9]> = Vec::new();
    for (i, (l, c)) in graph.layers.iter().zip(&costs).enumerate() {
        rows.push(row(format!("l{i}"), l.name.clone(), graph, l, c));
        // A pooled level's coarse network, one row per layer on the coarse lattice (already
        // counted in the level's row and in the totals).
        if let ir::LayerKind::CoarseLevel(level) = &l.kind
            && let Some(net) = level.coarse_network()
        {
            for (j, (cl, cc)) in net.layers.iter().zip(cost::costs(net)).enumerate() {
                rows.push(row(format!("l{i}.{j}"), format!(" > {}", cl.name), net, cl, &cc));
            }
        }
        // A near-null level's coarse layers (counted in the level's row and the totals too):
        // n_b x n_b complex weights per displacement (and coarse site when local).
        if let ir::LayerKind::CoarseLevel(level) = &l.kind
            && let (Some(layers), Some(lat)) = (level.coarse_layers(), graph.lattice)
        {
            let dims = level.coarse_dims(lat.dims);
            let vc: u64 = dims.iter().map(|&d| d as u64).product();
            let nb = level.coarse_site_dof() as u64;
            let field = format!(
                "coarse[{}; {nb}]",
                dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
            );
            for (j, (cl, &p)) in layers.iter().zip(&l.params).enumerate() {
                let params = graph.param(p).count() as u64;
                let flops = vc * cl.offsets.len() as u64 * nb * nb * 8;
                let bytes = 4 * graph.param(p).scalar_len() as u64 + 2 * vc * nb * 8;
                rows.push([
                    format!("l{i}.{j}"),
                    format!(" > {}", cl.name),
                    if cl.local { "coarse_lptc_ng" } else { "coarse_ptc_ng" }.to_string(),
                    field.clone(),
                    field.clone(),
                    group(params),
                    group((vc * nb) * (vc * nb)),
                    group(flops),
                    group(bytes),
                ]);
            }
        }
    }
    rows.push([
        String::new(),
        "total".into(),
        String::new(),
        String::new(),
        String::new(),
        group(total.params),
        group(total.dense_equivalent_params),
        group(total.flops),
        group(total.bytes),
    ]);
    let mut width = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            let pad = w - c.chars().count();
            if i >= 5 {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
            if i + 1 < cells.len() {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = format!("network {}   symmetry {}", graph.name, symmetry(graph));
    if let Some(l) = graph.lattice {
        out.push_str(&format!(
            "   lattice {}",
            l.dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
        ));
    }
    out.push('\n');
    out.push_str(&line(&header.map(String::from)));
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    let n = rows.len();
    for (i, r) in rows.iter().enumerate() {
        if i + 1 == n {
            out.push_str(&line(&rule));
        }
        out.push_str(&line(r));
    }
    let ratio = match total.params {
        0 => "no weights".to_string(),
        p => {
            let r = total.dense_equivalent_params as f64 / p as f64;
            if r >= 100.0 { format!("{}x", group(r.round() as u64)) } else { format!("{r:.1}x") }
        }
    };
    out.push_str(&format!(
        "\n{} parameters ({} scalars in the flat vector); a dense network with the same shapes \
would have {} ({ratio})\n",
        group(total.params),
        group(graph.param_scalars() as u64),
        group(total.dense_equivalent_params),
    ));
    out.push_str("FLOPs and bytes per forward application of one sample (f32; a complex weight counts as one parameter)\n");
    out
}
