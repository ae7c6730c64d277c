//! What one layer costs: parameters, the dense-equivalent parameter count, FLOPs and bytes per
//! forward application (one sample). Used by `symc inspect` and by roofline estimates.
//!
//! Conventions (so that numbers are comparable across kinds):
//! - a complex weight counts as one parameter;
//! - the **dense-equivalent** count is the number of weights a dense layer with the same input
//!   and output shapes would have (biases per output element where the layer has a bias), i.e.
//!   what declaring `symmetry none` would cost;
//! - a real multiply-add is 2 FLOPs, a complex multiply-add 8, a complex 3×3 matrix times a
//!   colour vector 66 (9 complex multiplies, 6 complex additions); transcendental functions
//!   (exp in sigmoid, tanh) count as one FLOP;
//! - bytes = inputs read + parameters read + output written, in f32 (8 bytes per complex
//!   number), plus the gauge links a transport reads (4·V SU(3) matrices).

use super::{Activation, CoarseModel, Graph, Layer, LayerKind, ValueType};

/// Cost of one layer for one sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerCost {
    pub params: u64,
    pub dense_equivalent_params: u64,
    pub flops: u64,
    pub bytes: u64,
}

impl std::ops::Add for LayerCost {
    type Output = LayerCost;
    fn add(self, o: LayerCost) -> LayerCost {
        LayerCost {
            params: self.params.saturating_add(o.params),
            dense_equivalent_params: self
                .dense_equivalent_params
                .saturating_add(o.dense_equivalent_params),
            flops: self.flops.saturating_add(o.flops),
            bytes: self.bytes.saturating_add(o.bytes),
        }
    }
}

/// FLOPs of one SU(3) matrix times one colour vector.
pub const SU3_MATVEC_FLOPS: u64 = 66;

fn m(a: u64, b: u64) -> u64 {
    a.saturating_mul(b)
}

fn elems(t: &ValueType) -> u64 {
    t.real_len() as u64
}

/// The cost of `layer` in `graph`.
pub fn layer_cost(graph: &Graph, layer: &Layer) -> LayerCost {
    let params: u64 = layer.params.iter().map(|p| graph.param(*p).count() as u64).sum();
    let param_bytes: u64 =
        layer.params.iter().map(|p| m(graph.param(*p).scalar_len() as u64, 4)).sum();
    let out = graph.value(layer.output);
    let in_bytes: u64 = layer.inputs.iter().map(|v| m(elems(graph.value(*v)), 4)).sum();
    let out_elems = elems(out);
    let mut extra_bytes = 0;
    let (dense_eq, flops) = match &layer.kind {
        LayerKind::Dense { in_features, out_features, bias, complex } => {
            let (i, o) = (*in_features as u64, *out_features as u64);
            let per_mac = if *complex { 8 } else { 2 };
            let bias_flops = if *bias { if *complex { 2 * o } else { o } } else { 0 };
            (params, m(m(i, o), per_mac).saturating_add(bias_flops))
        }
        LayerKind::Conv {
            in_channels,
            out_channels,
            window,
            bias,
            in_spatial,
            out_spatial,
            ..
        } => {
            let in_n = m(*in_channels as u64, in_spatial.iter().map(|&d| d as u64).product());
            let out_n = m(*out_channels as u64, out_spatial.iter().map(|&d| d as u64).product());
            let win: u64 = window.iter().map(|&d| d as u64).product();
            let dense = m(in_n, out_n).saturating_add(if *bias { out_n } else { 0 });
            let macs = m(m(out_n, *in_channels as u64), win);
            (dense, m(macs, 2).saturating_add(if *bias { out_n } else { 0 }))
        }
        LayerKind::Ptc { n_in, n_out, paths, .. } => {
            let v = graph.lattice.map_or(1, |l| l.volume() as u64);
            let (ni, no) = (*n_in as u64, *n_out as u64);
            let dense = m(m(12 * v, ni), m(12 * v, no));
            let hops: u64 = paths.iter().map(|p| p.len() as u64).sum();
            // Transport every input field along every path (4 spins × one SU(3) mat-vec per hop),
            // then one complex 4×4 spin matrix per (out, in, path) on 3 colours.
            let transport = m(m(ni, hops), 4 * SU3_MATVEC_FLOPS);
            let mix = m(m(m(no, ni), paths.len() as u64), 16 * 3 * 8);
            extra_bytes = if hops > 0 { m(m(4 * v, 18), 4) } else { 0 };
            (dense, m(v, transport.saturating_add(mix)))
        }
        LayerKind::Transport { paths } => {
            let v = graph.lattice.map_or(1, |l| l.volume() as u64);
            let hops: u64 = paths.iter().map(|p| p.len() as u64).sum();
            extra_bytes = if hops > 0 { m(m(4 * v, 18), 4) } else { 0 };
            (0, m(v, m(hops, 4 * SU3_MATVEC_FLOPS)))
        }
        LayerKind::Activation(a) => (0, if *a == Activation::Identity { 0 } else { out_elems }),
        // |ψ|² (24 multiply-adds), σ (one), ψ·σ (24 multiplies): 73 per site and field.
        LayerKind::NormGate => (0, m(out_elems / 24, 73)),
        LayerKind::Flatten => (0, 0),
        // max, exp, sum, log, subtract: 4 per element.
        LayerKind::LogSoftmax => (0, m(out_elems, 4)),
        LayerKind::Add => (0, out_elems),
        LayerKind::CoarseLevel(level) => {
            let lat = graph.lattice.map_or([1; 4], |l| l.dims);
            let v: u64 = lat.iter().map(|&d| d as u64).product();
            let vc: u64 = level.coarse_dims(lat).iter().map(|&d| d as u64).product();
            let nb = level.coarse_site_dof() as u64;
            // P† and P (or pool and unpool, whose 12×12 matrix G(x) per site is a basis of 12
            // vectors): one complex multiply-add per fine component and coarse component each.
            let transfer = m(m(12 * v, nb), 2 * 8);
            let coarse_flops = match &level.coarse {
                // Counted at the iteration cap (an upper bound): each GMRES iteration applies
                // the 9-point coarse stencil (nb × nb blocks) and orthogonalises against up to
                // `restart` vectors. The basis is read twice (P†, P) and the coarse matrices
                // once per iteration.
                CoarseModel::Solve { restart, iterations, .. } => {
                    let per_it =
                        m(m(9 * vc, nb * nb), 8).saturating_add(m(m(vc * nb, *restart as u64), 16));
                    extra_bytes = m(m(12 * v, nb), 16)
                        .saturating_add(m(*iterations as u64, m(9 * vc, m(nb * nb, 8))));
                    m(*iterations as u64, per_it)
                }
                // Each coarse layer: one complex n_b × n_b matrix-vector product per
                // displacement and coarse site; P† and P read the basis once each.
                CoarseModel::Layers(layers) => {
                    extra_bytes = m(m(12 * v, nb), 16);
                    layers
                        .iter()
                        .map(|l| m(m(vc * l.offsets.len() as u64, nb * nb), 8))
                        .fold(0, u64::saturating_add)
                }
                // The coarse network's own layers, and G read twice (pool, unpool).
                CoarseModel::Network(net) => {
                    let c = total(net);
                    extra_bytes = m(m(12 * v, nb), 16).saturating_add(c.bytes);
                    c.flops
                }
            };
            // `correct`: one D per smoothing step (r = b − D x), and the fine layers run once
            // more per step beyond the first (counted here; their own rows count one pass).
            let (dirac, repeated) = match level.connect {
                crate::ir::Connect::Concat => (0, 0),
                crate::ir::Connect::Correct => {
                    let fine: u64 = graph
                        .layers
                        .iter()
                        .filter(|l| !matches!(l.kind, LayerKind::CoarseLevel(_)))
                        .map(|l| layer_cost(graph, l).flops)
                        .fold(0, u64::saturating_add);
                    let steps = level.smoothing as u64;
                    (
                        m(m(v, crate::lattice::wilson::FLOPS_PER_SITE), steps),
                        m(fine, steps.saturating_sub(1)),
                    )
                }
            };
            let flops = transfer
                .saturating_add(coarse_flops)
                .saturating_add(dirac)
                .saturating_add(repeated);
            (0, flops)
        }
    };
    LayerCost {
        params,
        dense_equivalent_params: dense_eq,
        flops,
        bytes: in_bytes
            .saturating_add(param_bytes)
            .saturating_add(m(out_elems, 4))
            .saturating_add(extra_bytes),
    }
}

/// Per-layer costs in layer order.
pub fn costs(graph: &Graph) -> Vec<LayerCost> {
    graph.layers.iter().map(|l| layer_cost(graph, l)).collect()
}

/// The sum over all layers.
pub fn total(graph: &Graph) -> LayerCost {
    costs(graph).into_iter().fold(LayerCost::default(), |a, b| a + b)
}
