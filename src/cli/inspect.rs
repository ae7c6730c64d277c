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
symc inspect models/digits_dense.sym --format json\n  symc inspect models/ptc_precond.sym --ir")]
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
}

pub fn run(args: InspectArgs) -> Result<(), Failure> {
    let graph = load(&args.file)?;
    let out = if args.ir { view_ir(&graph, args.format) } else { view_layers(&graph, args.format) };
    print!("{out}");
    Ok(())
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
    let mut rows: Vec<[String; 9]> = graph
        .layers
        .iter()
        .zip(&costs)
        .enumerate()
        .map(|(i, (l, c))| {
            [
                format!("l{i}"),
                l.name.clone(),
                ir::print::kind_name(&l.kind).to_string(),
                ir::print::value_type(graph.value(l.inputs[0])),
                ir::print::value_type(graph.value(l.output)),
                group(c.params),
                group(c.dense_equivalent_params),
                group(c.flops),
                group(c.bytes),
            ]
        })
        .collect();
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
