//! Seeded parameter initialisation, matching PyTorch's defaults so that training curves are
//! comparable with the PyTorch anchor runs: dense and convolution weights and biases uniform in
//! ±1/sqrt(fan_in) (`nn.Linear`/`nn.Conv2d` reset_parameters); PTC spin matrices small complex
//! Gaussian noise plus the identity on the zero-hop path of each diagonal (out == in) feature
//! pair, so a freshly initialised PTC layer starts close to the identity map.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::ir::{Graph, LayerKind};

/// Initial flat parameter vector of `graph` (layout and order of `Graph.params`).
pub fn init_params(graph: &Graph, seed: u64) -> Vec<f32> {
    let mut p = vec![0f32; graph.param_scalars()];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for layer in &graph.layers {
        let fan_in = match &layer.kind {
            LayerKind::Dense { in_features, .. } => *in_features,
            LayerKind::Conv {
                in_channels,
                window,
                ..
            } => in_channels * window.iter().product::<usize>(),
            LayerKind::Ptc {
                n_in,
                n_out,
                paths,
                local,
            } => {
                for &pid in &layer.params {
                    let prm = graph.param(pid);
                    let slot = &mut p[prm.offset..prm.offset + prm.scalar_len()];
                    for v in slot.iter_mut() {
                        let g: f64 = StandardNormal.sample(&mut rng);
                        *v = (1e-3 * g) as f32;
                    }
                    // Layout [n_out, n_in, n_paths, (V,) 4, 4] complex interleaved.
                    let sites = if *local {
                        prm.count() / (n_out * n_in * paths.len() * 16)
                    } else {
                        1
                    };
                    for f in 0..(*n_out).min(*n_in) {
                        for site in 0..sites {
                            let base = (((f * n_in + f) * paths.len()) * sites + site) * 16;
                            for s in 0..4 {
                                slot[2 * (base + s * 4 + s)] += 1.0;
                            }
                        }
                    }
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
