//! The IR pass that takes a multigrid network apart: a graph whose first layer is a
//! [`CoarseLevel`](super::LayerKind::CoarseLevel) becomes that [`Level`] and the *fine graph*
//! after it — the smoother, a plain gauge network from the fields the level gives (`[b, c]`
//! or the residual b − D c) to one. The runtime runs the level on the multigrid executor and the fine graph on the
//! lattice network, so neither needs to know the other. Like every pass that rewrites the IR,
//! it verifies its result.

use super::verify::{VerifyError, verify};
use super::{CoarseSpace, Graph, LayerKind, Level, Param, ParamId, ValueId};

/// The coarse level of `graph` and the fine graph after it, or `None` for a one-level network.
///
/// The level's parameters (a pooled level's pooling weight and coarse network) come first in
/// the flat parameter vector; the fine graph's parameters are renumbered from 0 and its offsets
/// start at [`level_scalars`], so the runtime hands it `params[level_scalars(graph)..]`.
pub fn split_level(graph: &Graph) -> Result<Option<(Level, Graph)>, VerifyError> {
    let Some(first) = graph.layers.first() else { return Ok(None) };
    let LayerKind::CoarseLevel(level) = &first.kind else { return Ok(None) };
    // The level reads v0 and writes v1; the fine graph starts at v1, so every value id moves
    // down by one, and every parameter id by the level's parameter count.
    let shift = |v: ValueId| ValueId(v.0 - 1);
    let n_level = first.params.len() as u32;
    let skip = level_scalars(graph);
    let layers = graph.layers[1..]
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.inputs = l.inputs.iter().map(|&v| shift(v)).collect();
            l.output = shift(l.output);
            l.params = l.params.iter().map(|p| ParamId(p.0 - n_level)).collect();
            l
        })
        .collect();
    let params = graph.params[n_level as usize..]
        .iter()
        .map(|p| Param { offset: p.offset - skip, ..p.clone() })
        .collect();
    let fine = Graph {
        name: format!("{}.fine", graph.name),
        symmetry: graph.symmetry.clone(),
        lattice: graph.lattice,
        values: graph.values[1..].to_vec(),
        input_name: format!("{}+{}", graph.input_name, level.name),
        layers,
        params,
        output: shift(graph.output),
        train: None,
        split_of: graph.split_of,
    };
    verify(&fine)?;
    Ok(Some((level.clone(), fine)))
}

/// Scalars of the level's parameters at the start of the flat vector (0 without a level or
/// for a near-null level).
pub fn level_scalars(graph: &Graph) -> usize {
    match graph.layers.first() {
        Some(l) if matches!(l.kind, LayerKind::CoarseLevel(_)) => {
            l.params.iter().map(|&p| graph.param(p).scalar_len()).sum()
        }
        _ => 0,
    }
}

/// Scalars of a pooled level's pooling weight (0 for a static transfer or a near-null level):
/// the coarse network's parameters follow it.
pub fn pool_scalars(level: &Level, fine_volume: usize) -> usize {
    match &level.space {
        CoarseSpace::Pool { transfer } if transfer.weighted => {
            2 * 16 * transfer.terms.len() * fine_volume
        }
        _ => 0,
    }
}

/// The coarse level of `graph`, if it has one.
pub fn level(graph: &Graph) -> Option<&Level> {
    match graph.layers.first().map(|l| &l.kind) {
        Some(LayerKind::CoarseLevel(level)) => Some(level),
        _ => None,
    }
}
