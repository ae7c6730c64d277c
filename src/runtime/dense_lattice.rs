//! Executor for fermion networks without symmetry: chains of complex dense layers
//! (`LayerKind::Dense { complex: true }`) acting on a whole fermion field as one vector of
//! 12·V complex numbers. This is the brute-force side of the poster's comparison
//! (`models/dense_precond.sym` against its gauge-equivariant twin); it exists so that the
//! symmetric and the unconstrained network can be trained by the same loop.
//!
//! Layer math (weights `[out, in]` complex row-major, then an optional bias `[out]`):
//! y = W x + b. For a real loss L with output gradient g = ∂L/∂Re y + i ∂L/∂Im y, the gradient
//! with respect to the (re, im) pairs of W is the outer product g x^H, of b it is g, and the
//! input gradient is W^H g (the convention of `runtime::lattice_reference`). The matrix-vector
//! products run over both cores (rayon over rows); the sizes involved (a 3072×3072 complex
//! matrix on 4⁴) are memory bound, so plain loops the compiler vectorises suffice.

use super::{FermionNet, RuntimeError};
use crate::ir::{Graph, LayerKind, ValueType};
use crate::lattice::Real;
use num_complex::Complex;
use rayon::prelude::*;

struct DenseLayer {
    n_in: usize,
    n_out: usize,
    /// Offset (in scalars) of the weight and of the bias in the flat parameter vector.
    w_off: usize,
    b_off: Option<usize>,
}

/// A compiled chain of complex dense layers.
pub struct DenseLatticeNet {
    graph: Graph,
    layers: Vec<DenseLayer>,
}

fn c<T: Real>(p: &[T], k: usize) -> Complex<T> {
    Complex::new(p[2 * k], p[2 * k + 1])
}

impl DenseLatticeNet {
    /// Accepts graphs whose layers are all complex dense layers applied in sequence.
    pub fn compile(graph: &Graph) -> Result<Self, RuntimeError> {
        let bad = |m: String| RuntimeError::Shape(format!("dense fermion network: {m}"));
        let mut layers = Vec::new();
        let mut prev = crate::ir::ValueId(0);
        for l in &graph.layers {
            let LayerKind::Dense { in_features, out_features, bias, complex: true } = l.kind else {
                return Err(bad(format!("layer `{}` is not a complex dense layer", l.name)));
            };
            if l.inputs.len() != 1 || l.inputs[0] != prev {
                return Err(bad(format!("layer `{}` is not part of a chain", l.name)));
            }
            let w = l
                .params
                .first()
                .map(|&p| graph.param(p))
                .ok_or_else(|| bad(format!("layer `{}` has no weight", l.name)))?;
            if w.scalar_len() != 2 * in_features * out_features {
                return Err(bad(format!("layer `{}` has a weight of the wrong size", l.name)));
            }
            let b_off = if bias {
                let b = l
                    .params
                    .get(1)
                    .map(|&p| graph.param(p))
                    .ok_or_else(|| bad(format!("layer `{}` has no bias", l.name)))?;
                Some(b.offset)
            } else {
                None
            };
            layers.push(DenseLayer {
                n_in: in_features,
                n_out: out_features,
                w_off: w.offset,
                b_off,
            });
            prev = l.output;
        }
        if prev != graph.output || layers.is_empty() {
            return Err(bad("the output is not the end of the layer chain".into()));
        }
        if !matches!(graph.values.first(), Some(ValueType::Fermion { .. })) {
            return Err(bad("the input is not a fermion field".into()));
        }
        Ok(DenseLatticeNet { graph: graph.clone(), layers })
    }

    /// The graph it was compiled from.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    fn check(&self, params: usize, input: usize) -> Result<(), RuntimeError> {
        if params != self.graph.param_scalars() {
            return Err(RuntimeError::Shape(format!(
                "{params} parameters given, the network has {}",
                self.graph.param_scalars()
            )));
        }
        if input != self.layers[0].n_in {
            return Err(RuntimeError::Shape(format!(
                "input of {input} complex numbers, the network needs {}",
                self.layers[0].n_in
            )));
        }
        Ok(())
    }

    fn layer_forward<T: Real>(l: &DenseLayer, params: &[T], x: &[Complex<T>]) -> Vec<Complex<T>> {
        let w = &params[l.w_off..l.w_off + 2 * l.n_in * l.n_out];
        (0..l.n_out)
            .into_par_iter()
            .map(|i| {
                let row = &w[2 * i * l.n_in..2 * (i + 1) * l.n_in];
                let (mut re, mut im) = (T::zero(), T::zero());
                for (j, xj) in x.iter().enumerate() {
                    let (a, b) = (row[2 * j], row[2 * j + 1]);
                    re += a * xj.re - b * xj.im;
                    im += a * xj.im + b * xj.re;
                }
                let mut y = Complex::new(re, im);
                if let Some(bo) = l.b_off {
                    y += c(params, bo / 2 + i);
                }
                y
            })
            .collect()
    }

    /// y = network(x).
    pub fn forward<T: Real>(
        &self,
        params: &[T],
        input: &[Complex<T>],
        output: &mut [Complex<T>],
    ) -> Result<(), RuntimeError> {
        self.check(params.len(), input.len())?;
        let mut x = input.to_vec();
        for l in &self.layers {
            x = Self::layer_forward(l, params, &x);
        }
        if output.len() != x.len() {
            return Err(RuntimeError::Shape(format!(
                "output of {} complex numbers, the network gives {}",
                output.len(),
                x.len()
            )));
        }
        output.copy_from_slice(&x);
        Ok(())
    }

    /// Forward pass, `seed(output, grad_output)`, then the weight gradients (overwriting
    /// `grad_params`, same layout as the parameters).
    pub fn forward_backward<T: Real>(
        &self,
        params: &[T],
        input: &[Complex<T>],
        seed: impl FnOnce(&[Complex<T>], &mut [Complex<T>]),
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        self.check(params.len(), input.len())?;
        self.check(grad_params.len(), input.len())?;
        let mut acts = vec![input.to_vec()];
        for l in &self.layers {
            let y = Self::layer_forward(l, params, acts.last().map_or(input, |v| v));
            acts.push(y);
        }
        let out = acts.pop().unwrap_or_default();
        let mut g = vec![Complex::new(T::zero(), T::zero()); out.len()];
        seed(&out, &mut g);
        grad_params.iter_mut().for_each(|x| *x = T::zero());
        for (k, l) in self.layers.iter().enumerate().rev() {
            let x = &acts[k];
            // dW = g x^H, row i = g_i conj(x).
            let gw = &mut grad_params[l.w_off..l.w_off + 2 * l.n_in * l.n_out];
            gw.par_chunks_mut(2 * l.n_in).zip(g.par_iter()).for_each(|(row, gi)| {
                for (j, xj) in x.iter().enumerate() {
                    let v = *gi * xj.conj();
                    row[2 * j] = v.re;
                    row[2 * j + 1] = v.im;
                }
            });
            if let Some(bo) = l.b_off {
                for (i, gi) in g.iter().enumerate() {
                    grad_params[bo + 2 * i] = gi.re;
                    grad_params[bo + 2 * i + 1] = gi.im;
                }
            }
            if k > 0 {
                // dx = W^H g: column sums, accumulated per thread over row blocks.
                let w = &params[l.w_off..l.w_off + 2 * l.n_in * l.n_out];
                let n_in = l.n_in;
                let zero = vec![Complex::new(T::zero(), T::zero()); n_in];
                g = (0..l.n_out)
                    .into_par_iter()
                    .fold(
                        || zero.clone(),
                        |mut acc, i| {
                            let row = &w[2 * i * n_in..2 * (i + 1) * n_in];
                            let gi = g[i];
                            for (j, a) in acc.iter_mut().enumerate() {
                                let wc = Complex::new(row[2 * j], -row[2 * j + 1]);
                                *a += wc * gi;
                            }
                            acc
                        },
                    )
                    .reduce(
                        || zero.clone(),
                        |mut a, b| {
                            a.iter_mut().zip(&b).for_each(|(x, y)| *x += *y);
                            a
                        },
                    );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    fn graph() -> Graph {
        let text = "network d {
    lattice 2 x 2 x 2 x 4
    input v: fermion
    symmetry none
    linear(1 -> 1)
    linear(1 -> 1)
    output fermion
}";
        crate::sema::compile_str("d.sym", text).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn loss(net: &DenseLatticeNet, p: &[f64], x: &[Complex<f64>], t: &[Complex<f64>]) -> f64 {
        let mut y = vec![Complex::new(0.0, 0.0); t.len()];
        net.forward(p, x, &mut y).unwrap();
        y.iter().zip(t).map(|(a, b)| (a - b).norm_sqr()).sum()
    }

    #[test]
    fn gradient_matches_finite_differences_f64_with_negative_control() {
        let g = graph();
        let net = DenseLatticeNet::compile(&g).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut r = || -> f64 { StandardNormal.sample(&mut rng) };
        let p: Vec<f64> = (0..g.param_scalars()).map(|_| 0.02 * r()).collect();
        let n = 12 * 32;
        let x: Vec<Complex<f64>> = (0..n).map(|_| Complex::new(r(), r())).collect();
        let t: Vec<Complex<f64>> = (0..n).map(|_| Complex::new(r(), r())).collect();
        let mut grad = vec![0.0; p.len()];
        net.forward_backward(
            &p,
            &x,
            |y, gy| {
                for ((gi, yi), ti) in gy.iter_mut().zip(y).zip(&t) {
                    *gi = (yi - ti) * 2.0;
                }
            },
            &mut grad,
        )
        .unwrap();
        let h = 1e-5;
        let (mut worst, mut worst_conj) = (0.0f64, 0.0f64);
        for k in (0..p.len()).step_by(p.len() / 61) {
            let mut q = p.clone();
            q[k] += h;
            let lp = loss(&net, &q, &x, &t);
            q[k] -= 2.0 * h;
            let lm = loss(&net, &q, &x, &t);
            let fd = (lp - lm) / (2.0 * h);
            let s = fd.abs().max(grad[k].abs()).max(1e-2);
            worst = worst.max((fd - grad[k]).abs() / s);
            // Negative control: the gradient of the conjugate weight (sign of Im flipped).
            let wrong = if k % 2 == 1 { -grad[k] } else { grad[k] };
            worst_conj = worst_conj.max((fd - wrong).abs() / s);
        }
        assert!(worst < 1e-6, "gradient error {worst}");
        assert!(worst_conj > 0.1, "the check cannot see a conjugation error");
    }

    #[test]
    fn forward_matches_a_naive_product() {
        let g = graph();
        let net = DenseLatticeNet::compile(&g).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut r = || -> f64 { StandardNormal.sample(&mut rng) };
        let p: Vec<f64> = (0..g.param_scalars()).map(|_| 0.02 * r()).collect();
        let n = 12 * 32;
        let x: Vec<Complex<f64>> = (0..n).map(|_| Complex::new(r(), r())).collect();
        let mut y = vec![Complex::new(0.0, 0.0); n];
        net.forward(&p, &x, &mut y).unwrap();
        let w = |o: usize, i: usize, j: usize| {
            Complex::new(p[o + 2 * (i * n + j)], p[o + 2 * (i * n + j) + 1])
        };
        let o2 = g.params[1].offset;
        let h: Vec<Complex<f64>> =
            (0..n).map(|i| (0..n).map(|j| w(0, i, j) * x[j]).sum()).collect();
        for i in (0..n).step_by(97) {
            let want: Complex<f64> = (0..n).map(|j| w(o2, i, j) * h[j]).sum();
            assert!((want - y[i]).norm() < 1e-10 * want.norm().max(1.0));
        }
    }
}

impl<T: Real> FermionNet<T> for DenseLatticeNet {
    fn graph(&self) -> &Graph {
        DenseLatticeNet::graph(self)
    }
    fn forward(
        &self,
        params: &[T],
        input: &[Complex<T>],
        output: &mut [Complex<T>],
    ) -> Result<(), RuntimeError> {
        DenseLatticeNet::forward(self, params, input, output)
    }
    fn forward_backward_seeded(
        &self,
        params: &[T],
        input: &[Complex<T>],
        seed: &mut dyn FnMut(&[Complex<T>], &mut [Complex<T>]),
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        DenseLatticeNet::forward_backward(self, params, input, seed, grad_params)
    }
}
