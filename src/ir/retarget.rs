//! The IR pass that moves a network to another lattice volume: a translation-equivariant gauge
//! network (global weights only) means the same map on any lattice, so applying a trained
//! preconditioner to another gauge field is a rewrite of the value types, not a retraining.
//! Like every pass that rewrites the IR, it verifies its result before handing it on.

use super::verify::{VerifyError, verify};
use super::{Graph, LayerKind, ValueType};

/// Why a graph cannot be moved to another lattice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetargetError {
    /// A layer whose weights depend on the site (local PTC, dense maps of whole fields).
    #[error(
        "layer `{layer}` has site-dependent weights, so it cannot be applied to another volume"
    )]
    SiteDependent { layer: String },
    /// A multigrid level whose blocks do not tile the new lattice.
    #[error(
        "level `{level}` has blocks {blocks:?}, which do not tile a {dims:?} lattice; train a network with blocks that divide it"
    )]
    Blocks { level: String, blocks: [usize; 4], dims: [usize; 4] },
    /// The rewritten graph broke an IR invariant: a bug in this pass.
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// `graph` as one process of a run split over processes sees it, `dims` its sub-lattice: the
/// fine values on the sub-lattice. A near-null level's coarse layers keep the whole lattice's
/// coarse grid and weights, since every process runs them on the all-gathered coarse vector;
/// such a view is not a network of its own (its coarse weights do not fit the sub-lattice's
/// coarse grid), so it is not verified as one: it carries the sizes a caller reads (vector
/// lengths, the parameter vector). Any other graph is moved as [`retarget`] moves it, except
/// that site-dependent (`local`) PTC layers are allowed: their weights keep the whole
/// lattice's shape ([`Graph::split_of`]), since every process holds the whole parameter vector
/// and the runtime reads each site's weights by its global site.
pub fn split_view(graph: &Graph, dims: [usize; 4]) -> Result<Graph, RetargetError> {
    let Some(level) = super::levels::level(graph).filter(|l| l.coarse_layers().is_some()) else {
        return moved(graph, dims, true);
    };
    if (0..4).any(|mu| dims[mu] % level.blocks[mu] != 0) {
        return Err(RetargetError::Blocks {
            level: level.name.clone(),
            blocks: level.blocks,
            dims,
        });
    }
    if let Some(l) = graph
        .layers
        .iter()
        .find(|l| matches!(l.kind, LayerKind::Ptc { local: true, .. } | LayerKind::Dense { .. }))
    {
        return Err(RetargetError::SiteDependent { layer: l.name.clone() });
    }
    let mut g = graph.clone();
    set_dims(&mut g, dims);
    Ok(g)
}

/// `graph` on a lattice of extents `dims` (unchanged if it already is).
pub fn retarget(graph: &Graph, dims: [usize; 4]) -> Result<Graph, RetargetError> {
    moved(graph, dims, false)
}

/// `graph` on `dims`, as a network of its own or (`split`) as one process's view of it.
fn moved(graph: &Graph, dims: [usize; 4], split: bool) -> Result<Graph, RetargetError> {
    let mut g = graph.clone();
    if g.lattice.as_ref().map(|l| l.dims) == Some(dims) {
        return Ok(g);
    }
    let site_dependent = |kind: &LayerKind| match kind {
        LayerKind::Dense { .. } => true,
        LayerKind::Ptc { local, .. } => *local && !split,
        _ => false,
    };
    if let Some(l) = g.layers.iter().find(|l| site_dependent(&l.kind)) {
        return Err(RetargetError::SiteDependent { layer: l.name.clone() });
    }
    // A pooled level's coarse network lives on the coarse lattice of this volume (and its
    // pooling weights are site-dependent), as do a near-null level's coarse layers (their
    // displacements are deduplicated on these coarse extents): they mean nothing on another
    // volume.
    if let Some(level) = super::levels::level(&g)
        && (level.coarse_network().is_some() || level.coarse_layers().is_some())
    {
        return Err(RetargetError::SiteDependent { layer: level.name.clone() });
    }
    if let Some(level) = super::levels::level(&g)
        && (0..4).any(|mu| dims[mu] % level.blocks[mu] != 0)
    {
        return Err(RetargetError::Blocks {
            level: level.name.clone(),
            blocks: level.blocks,
            dims,
        });
    }
    if split {
        g.split_of = g.lattice;
    }
    set_dims(&mut g, dims);
    verify(&g)?;
    Ok(g)
}

/// The lattice of `g` and of its fermion values set to `dims`.
fn set_dims(g: &mut Graph, dims: [usize; 4]) {
    if let Some(l) = g.lattice.as_mut() {
        l.dims = dims;
    }
    for v in &mut g.values {
        if let ValueType::Fermion { lattice, .. } = v {
            lattice.dims = dims;
        }
    }
}
