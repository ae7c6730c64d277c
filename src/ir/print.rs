//! Stable text form of the IR, used by `symc inspect --ir` and snapshot tests.
//!
//! One line per entity, ids as in `Display` (`v3`, `l2`, `p1`). The format is stable: change
//! it only together with the snapshots that pin it.
//!
//! ```text
//! network digits_conv
//!   symmetry translation(axes = 1..2)
//!   v0 = input image: real[1, 28, 28]
//!   l0 linear1: v1 = conv(v0; 1 -> 10, window [10, 10], valid, bias) : real[10, 19, 19]  [p0, p1]
//!   p0 linear1.weight: real[10, 1, 10, 10] @ 0
//!   output v7
//! ```

use super::{
    Activation, EvalSpec, GaugeSource, Graph, LayerKind, OptimizerSpec, Padding, Schedule,
    Symmetry, TrainLength, ValueType,
};
use std::fmt::{self, Write as _};

fn dims(d: &[usize]) -> String {
    d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

/// `real[1, 28, 28]`, `fermion[2] @ 8x8x8x16`.
pub fn value_type(t: &ValueType) -> String {
    match t {
        ValueType::Real { shape } => format!("real[{}]", dims(shape)),
        ValueType::Fermion { features, lattice } => format!(
            "fermion[{features}] @ {}",
            lattice.dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
        ),
    }
}

fn path(p: &[super::Hop]) -> String {
    if p.is_empty() {
        return "id".into();
    }
    p.iter()
        .map(|h| {
            format!(
                "{}{}",
                if h.forward { '+' } else { '-' },
                ['x', 'y', 'z', 't'][h.mu as usize & 3]
            )
        })
        .collect()
}

/// The short name of a layer kind (`dense`, `conv`, `ptc`, ...), as shown in tables.
pub fn kind_name(k: &LayerKind) -> &'static str {
    match k {
        LayerKind::Dense { complex: false, .. } => "dense",
        LayerKind::Dense { complex: true, .. } => "dense_complex",
        LayerKind::Conv { .. } => "conv",
        LayerKind::Activation(Activation::Relu) => "relu",
        LayerKind::Activation(Activation::Tanh) => "tanh",
        LayerKind::Activation(Activation::Sigmoid) => "sigmoid",
        LayerKind::Activation(Activation::Identity) => "identity",
        LayerKind::NormGate => "norm_gate",
        LayerKind::Flatten => "flatten",
        LayerKind::LogSoftmax => "log_softmax",
        LayerKind::Ptc { local: false, .. } => "ptc",
        LayerKind::Ptc { local: true, .. } => "ptc_local",
        LayerKind::Transport { .. } => "transport",
        LayerKind::Add => "add",
        LayerKind::CoarseLevel(_) => "coarse_level",
    }
}

/// The attributes of a layer kind, e.g. `1 -> 10, window [10, 10], valid, bias`.
pub fn kind_detail(k: &LayerKind) -> String {
    match k {
        LayerKind::Dense { in_features, out_features, bias, .. } => {
            format!("{in_features} -> {out_features}{}", if *bias { ", bias" } else { "" })
        }
        LayerKind::Conv { in_channels, out_channels, window, padding, bias, .. } => format!(
            "{in_channels} -> {out_channels}, window [{}], {}{}",
            dims(window),
            match padding {
                Padding::Valid => "valid",
                Padding::Same => "same",
            },
            if *bias { ", bias" } else { "" }
        ),
        LayerKind::Ptc { n_in, n_out, paths, .. } => format!(
            "{n_in} -> {n_out}, paths [{}]",
            paths.iter().map(|p| path(p)).collect::<Vec<_>>().join(", ")
        ),
        LayerKind::Transport { paths } => {
            format!("paths [{}]", paths.iter().map(|p| path(p)).collect::<Vec<_>>().join(", "))
        }
        LayerKind::CoarseLevel(l) => {
            // Printed only when it is not the default, so that one-step models read as before.
            let smoothing =
                if l.smoothing == 1 { String::new() } else { format!(" x {}", l.smoothing) };
            let head = format!(
                "{}: {}{smoothing}, blocks [{}]",
                l.name,
                l.connect.word(),
                dims(&l.blocks)
            );
            match (&l.space, &l.coarse) {
                (
                    crate::ir::CoarseSpace::Basis {
                        basis,
                        setup_iterations,
                        setup_restart,
                        setup_tol,
                        seed,
                    },
                    crate::ir::CoarseModel::Solve { tol, restart, iterations },
                ) => format!(
                    "{head}, basis {basis}, setup gmres({setup_iterations} its, restart {setup_restart}, tol {setup_tol:e}, seed {seed}), coarse solve(tol {tol:e}, restart {restart}, {iterations} its)"
                ),
                (crate::ir::CoarseSpace::Pool { transfer }, coarse) => {
                    let n = transfer.terms.len();
                    let what = match coarse {
                        crate::ir::CoarseModel::Network(net) => {
                            format!("coarse network {} ({} layers)", net.name, net.layers.len())
                        }
                        crate::ir::CoarseModel::Solve { .. } => "coarse solve".into(),
                        crate::ir::CoarseModel::Layers(_) => "coarse layers".into(),
                    };
                    format!(
                        "{head}, pool {} ({n} path{}{}), {what}",
                        transfer.describe(),
                        if n == 1 { "" } else { "s" },
                        if transfer.weighted { ", local spin weights" } else { ", no weights" }
                    )
                }
                (
                    crate::ir::CoarseSpace::Basis {
                        basis,
                        setup_iterations,
                        setup_restart,
                        setup_tol,
                        seed,
                    },
                    crate::ir::CoarseModel::Layers(layers),
                ) => {
                    let ls: Vec<String> = layers
                        .iter()
                        .map(|c| {
                            format!(
                                "{} ({} displacement{}{})",
                                c.name,
                                c.offsets.len(),
                                if c.offsets.len() == 1 { "" } else { "s" },
                                if c.local { ", local" } else { "" }
                            )
                        })
                        .collect();
                    format!(
                        "{head}, basis {basis}, setup gmres({setup_iterations} its, restart {setup_restart}, tol {setup_tol:e}, seed {seed}), coarse layers [{}]",
                        ls.join(", ")
                    )
                }
                (crate::ir::CoarseSpace::Basis { basis, .. }, _) => {
                    format!("{head}, basis {basis}, coarse network")
                }
            }
        }
        _ => String::new(),
    }
}

/// The whole graph as stable text.
pub fn print(g: &Graph) -> String {
    let mut s = String::new();
    let _ = write_graph(&mut s, g);
    s
}

fn write_graph(s: &mut String, g: &Graph) -> fmt::Result {
    writeln!(s, "network {}", g.name)?;
    let sym = match &g.symmetry {
        Symmetry::None => "none".to_string(),
        Symmetry::Translation { axes } => format!("translation(axes = [{}])", dims(axes)),
        Symmetry::GaugeSu3 => "gauge(SU3), translation".to_string(),
    };
    writeln!(s, "  symmetry {sym}")?;
    if let Some(l) = g.lattice {
        writeln!(
            s,
            "  lattice {}",
            l.dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" x ")
        )?;
    }
    writeln!(s, "  v0 = input {}: {}", g.input_name, value_type(&g.values[0]))?;
    for (i, l) in g.layers.iter().enumerate() {
        let ins = l.inputs.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ");
        let detail = kind_detail(&l.kind);
        let args = if detail.is_empty() { ins } else { format!("{ins}; {detail}") };
        let params = if l.params.is_empty() {
            String::new()
        } else {
            format!("  [{}]", l.params.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "))
        };
        writeln!(
            s,
            "  l{i} {}: {} = {}({args}) : {}{params}",
            l.name,
            l.output,
            kind_name(&l.kind),
            value_type(g.value(l.output))
        )?;
        // A pooled level's coarse network, indented under it.
        if let LayerKind::CoarseLevel(level) = &l.kind
            && let Some(net) = level.coarse_network()
        {
            let mut inner = String::new();
            write_graph(&mut inner, net)?;
            for line in inner.lines() {
                writeln!(s, "    | {line}")?;
            }
        }
    }
    for (i, p) in g.params.iter().enumerate() {
        writeln!(
            s,
            "  p{i} {}: {}[{}] @ {}",
            p.name,
            if p.complex { "complex" } else { "real" },
            dims(&p.shape),
            p.offset
        )?;
    }
    writeln!(s, "  output {}", g.output)?;
    if let Some(t) = &g.train {
        writeln!(s, "train {}", g.name)?;
        if let Some(super::DataSource::Mnist { dir }) = &t.data {
            writeln!(s, "  data mnist({dir:?})")?;
        }
        match &t.gauge {
            Some(GaugeSource::Generate { beta, seed, sweeps }) => {
                writeln!(s, "  gauge generate(beta = {beta}, seed = {seed}, sweeps = {sweeps})")?
            }
            Some(GaugeSource::Load { path }) => writeln!(s, "  gauge load({path:?})")?,
            Some(GaugeSource::Unit) => writeln!(s, "  gauge unit")?,
            None => {}
        }
        if let Some(o) = &t.operator {
            writeln!(
                s,
                "  operator wilson_clover(mass = {}, csw = {}, boundary = {:?})",
                o.mass, o.csw, o.boundary
            )?;
        }
        writeln!(s, "  loss {}", t.loss.describe())?;
        match &t.optimizer {
            OptimizerSpec::Adam { lr, beta1, beta2, eps } => writeln!(
                s,
                "  optimizer adam(lr = {lr}, beta1 = {beta1}, beta2 = {beta2}, eps = {eps:e})"
            )?,
            OptimizerSpec::Sgd { lr, momentum } => {
                writeln!(s, "  optimizer sgd(lr = {lr}, momentum = {momentum})")?
            }
        }
        writeln!(s, "  batch {}", t.batch)?;
        match t.length {
            TrainLength::Epochs(n) => writeln!(s, "  epochs {n}")?,
            TrainLength::Steps(n) => writeln!(s, "  steps {n}")?,
        }
        match &t.schedule {
            Schedule::Constant => writeln!(s, "  schedule constant")?,
            Schedule::Cosine { floor } => writeln!(s, "  schedule cosine(floor = {floor})")?,
            Schedule::Step { every, gamma } => {
                writeln!(s, "  schedule step(every = {every}, gamma = {gamma})")?
            }
        }
        writeln!(s, "  validation {}", t.validation)?;
        writeln!(s, "  seed {}", t.seed)?;
        match &t.evaluate {
            Some(EvalSpec::Accuracy) => writeln!(s, "  evaluate accuracy")?,
            Some(EvalSpec::Fgmres { tol, restart, rhs, max_iterations }) => writeln!(
                s,
                "  evaluate fgmres(tol = {tol:e}, restart = {restart}, rhs = {rhs}, max_iterations = {max_iterations})"
            )?,
            None => {}
        }
    }
    Ok(())
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print(self))
    }
}
