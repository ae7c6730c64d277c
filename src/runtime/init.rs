//! Seeded parameter initialisation. Classifier layers match PyTorch's defaults so that training
//! curves are comparable with the PyTorch anchor runs: dense and convolution weights and biases
//! uniform in ±1/sqrt(fan_in) (`nn.Linear`/`nn.Conv2d` reset_parameters). Maps of fermion
//! fields (PTC, complex dense) start as the identity plus small complex Gaussian noise, as in
//! Lehner & Wettig's training, so a freshly initialised preconditioner is close to the identity.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::ir::{Graph, LayerKind, coarse_weight_index, ptc_weight_index};

/// Initial flat parameter vector of `graph` (layout and order of `Graph.params`). The one
/// initialiser of symc, for classifiers and fermion networks alike:
/// - real dense and convolution layers: weights and biases uniform in ±1/sqrt(fan_in);
/// - PTC (global or local) and complex dense layers (maps of fermion fields, trained as
///   preconditioners): 1e-3·N(0,1) on every real and imaginary part, plus the identity on the
///   zero-hop spin matrix (or the diagonal) of every out = in feature pair, so the untrained
///   network is close to the identity map, as in Lehner & Wettig's training; biases zero;
/// - a pooled multigrid level: pooling weights 1/n_paths times the identity plus the same
///   noise, its coarse network initialised by these rules;
/// - a near-null level's coarse layers: 1e-2·N(0,1) plus the identity on the zero
///   displacement (models.md §2.3).
pub fn init_params(graph: &Graph, seed: u64) -> Vec<f32> {
    let mut p = vec![0f32; graph.param_scalars()];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    fn noise(w: &mut [f32], rng: &mut ChaCha8Rng) {
        for v in w.iter_mut() {
            let g: f64 = StandardNormal.sample(rng);
            *v = (1e-3 * g) as f32;
        }
    }
    for layer in &graph.layers {
        let fan_in = match &layer.kind {
            LayerKind::Dense { in_features, complex: false, .. } => *in_features,
            LayerKind::Conv { in_channels, window, .. } => {
                in_channels * window.iter().product::<usize>()
            }
            LayerKind::Ptc { n_in, n_out, paths, local } => {
                let Some(&pid) = layer.params.first() else { continue };
                let prm = graph.param(pid);
                let slot = &mut p[prm.offset..prm.offset + prm.scalar_len()];
                noise(slot, &mut rng);
                let np = paths.len();
                let sites = if *local { prm.count() / (n_out * n_in * np * 16) } else { 1 };
                if let Some(p0) = paths.iter().position(|q| q.is_empty()) {
                    for f in 0..(*n_out).min(*n_in) {
                        for site in 0..sites {
                            let base = (ptc_weight_index(*n_in, np, f, f, p0) * sites + site) * 16;
                            for s in 0..4 {
                                slot[2 * (base + s * 4 + s)] += 1.0;
                            }
                        }
                    }
                }
                continue;
            }
            LayerKind::CoarseLevel(level) => {
                // A pooled level: each w_i(x) starts as 1/n_paths times the identity (so G is
                // the mean of the normalised transports; static pooling is exactly that), with
                // the same small noise; the coarse network as any gauge network, from its own
                // stream, in the slots after the pooling weight.
                // A near-null level's coarse layers (models.md §2.3, "Coarse model"):
                // 1e-2·N(0,1) on every real and imaginary part plus the identity on the
                // zero-displacement matrix (at every site when local), so M_c starts as 1.
                if let (Some(layers), Some(lat)) = (level.coarse_layers(), graph.lattice) {
                    let vc: usize = level.coarse_dims(lat.dims).iter().product();
                    let n = level.coarse_site_dof();
                    for (cl, &pid) in layers.iter().zip(&layer.params) {
                        let prm = graph.param(pid);
                        let w = &mut p[prm.offset..prm.offset + prm.scalar_len()];
                        for v in w.iter_mut() {
                            let g: f64 = StandardNormal.sample(&mut rng);
                            *v = (1e-2 * g) as f32;
                        }
                        for x in 0..if cl.local { vc } else { 1 } {
                            for i in 0..n {
                                w[2 * coarse_weight_index(cl.local, vc, n, 0, x, i, i)] += 1.0;
                            }
                        }
                    }
                    continue;
                }
                let Some(net) = level.coarse_network() else { continue };
                let mut start = layer.params.first().map_or(0, |&id| graph.param(id).offset);
                if let crate::ir::CoarseSpace::Pool { transfer } = &level.space
                    && transfer.weighted
                    && let Some(&pid) = layer.params.first()
                {
                    let prm = graph.param(pid);
                    let w = &mut p[prm.offset..prm.offset + prm.scalar_len()];
                    noise(w, &mut rng);
                    let diag = 1.0 / transfer.terms.len() as f32;
                    for m in w.chunks_exact_mut(32) {
                        for s in 0..4 {
                            m[2 * (s * 4 + s)] += diag;
                        }
                    }
                    start = prm.offset + prm.scalar_len();
                }
                let inner = init_params(net, seed ^ 0x9e37_79b9_7f4a_7c15);
                p[start..start + inner.len()].copy_from_slice(&inner);
                continue;
            }
            LayerKind::Dense { in_features, out_features, complex: true, .. } => {
                let Some(&pid) = layer.params.first() else { continue };
                let prm = graph.param(pid);
                let w = &mut p[prm.offset..prm.offset + prm.scalar_len()];
                noise(w, &mut rng);
                for i in 0..(*in_features).min(*out_features) {
                    w[2 * (i * in_features + i)] += 1.0;
                }
                continue;
            }
            _ => continue,
        };
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        for &pid in &layer.params {
            let prm = graph.param(pid);
            for v in &mut p[prm.offset..prm.offset + prm.scalar_len()] {
                *v = rng.random_range(-bound..bound) as f32;
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Param, Span, Symmetry, ValueType};

    fn dense(inp: usize, out: usize) -> Graph {
        let w = Param { name: "w".into(), shape: vec![out, inp], complex: false, offset: 0 };
        let b = Param { name: "b".into(), shape: vec![out], complex: false, offset: out * inp };
        Graph {
            name: "t".into(),
            symmetry: Symmetry::None,
            lattice: None,
            values: vec![
                ValueType::Real { shape: vec![inp] },
                ValueType::Real { shape: vec![out] },
            ],
            input_name: "x".into(),
            layers: vec![crate::ir::Layer {
                kind: LayerKind::Dense {
                    in_features: inp,
                    out_features: out,
                    bias: true,
                    complex: false,
                },
                inputs: vec![crate::ir::ValueId(0)],
                output: crate::ir::ValueId(1),
                params: vec![crate::ir::ParamId(0), crate::ir::ParamId(1)],
                name: "linear0".into(),
                span: Span::default(),
            }],
            params: vec![w, b],
            output: crate::ir::ValueId(1),
            train: None,
            split_of: None,
        }
    }

    #[test]
    fn dense_init_is_pytorch_uniform_and_seeded() {
        let g = dense(100, 300);
        let p = init_params(&g, 5);
        let bound = 0.1f32;
        assert!(p.iter().all(|v| v.abs() <= bound));
        // Uniform on [-b, b]: mean 0, variance b^2 / 3 (30,300 samples).
        let n = p.len() as f64;
        let mean = p.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = p.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 2e-3, "mean {mean}");
        assert!((var / (0.01 / 3.0) - 1.0).abs() < 0.03, "variance {var}");
        assert_eq!(p, init_params(&g, 5));
        assert_ne!(p, init_params(&g, 6));
    }

    #[test]
    fn ptc_init_is_identity_plus_small_noise() {
        let (n_out, n_in, paths) = (2, 3, 2);
        let prm = Param {
            name: "w".into(),
            shape: vec![n_out, n_in, paths, 4, 4],
            complex: true,
            offset: 0,
        };
        let mut g = dense(1, 1);
        g.params = vec![prm];
        g.layers[0].kind = LayerKind::Ptc { n_in, n_out, paths: vec![vec![]; paths], local: false };
        g.layers[0].params = vec![crate::ir::ParamId(0)];
        let p = init_params(&g, 1);
        for o in 0..n_out {
            for i in 0..n_in {
                for path in 0..paths {
                    for s in 0..4 {
                        for t in 0..4 {
                            let k = 2 * ((((o * n_in + i) * paths + path) * 4 + s) * 4 + t);
                            let want = if o == i && path == 0 && s == t { 1.0 } else { 0.0 };
                            assert!(
                                (p[k] - want).abs() < 6e-3,
                                "re {o} {i} {path} {s} {t}: {}",
                                p[k]
                            );
                            assert!(p[k + 1].abs() < 6e-3 && p[k + 1] != 0.0);
                        }
                    }
                }
            }
        }
    }
}
