//! The IR pass that takes a multigrid network apart: a graph whose first layer is a
//! [`CoarseLevel`](super::LayerKind::CoarseLevel) becomes that [`Level`] and the *fine graph*
//! after it — the smoother, a plain gauge network from two fermion fields `[b, P M_c(P† b)]`
//! to one. The runtime runs the level on the multigrid executor and the fine graph on the
//! lattice network, so neither needs to know the other. Like every pass that rewrites the IR,
//! it verifies its result.

use super::verify::{VerifyError, verify};
use super::{Graph, LayerKind, Level, ValueId};

/// The coarse level of `graph` and the fine graph after it, or `None` for a one-level network.
pub fn split_level(graph: &Graph) -> Result<Option<(Level, Graph)>, VerifyError> {
    let Some(first) = graph.layers.first() else { return Ok(None) };
    let LayerKind::CoarseLevel(level) = &first.kind else { return Ok(None) };
    // The level reads v0 and writes v1; the fine graph starts at v1, so every value id moves
    // down by one. Parameters are untouched (a level has none).
    let shift = |v: ValueId| ValueId(v.0 - 1);
    let layers = graph.layers[1..]
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.inputs = l.inputs.iter().map(|&v| shift(v)).collect();
            l.output = shift(l.output);
            l
        })
        .collect();
    let fine = Graph {
        name: format!("{}.fine", graph.name),
        symmetry: graph.symmetry.clone(),
        lattice: graph.lattice,
        values: graph.values[1..].to_vec(),
        input_name: format!("{}+{}", graph.input_name, level.name),
        layers,
        params: graph.params.clone(),
        output: shift(graph.output),
        train: None,
    };
    verify(&fine)?;
    Ok(Some((level.clone(), fine)))
}

/// The coarse level of `graph`, if it has one.
pub fn level(graph: &Graph) -> Option<&Level> {
    match graph.layers.first().map(|l| &l.kind) {
        Some(LayerKind::CoarseLevel(level)) => Some(level),
        _ => None,
    }
}
