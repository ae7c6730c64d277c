//! The coarse layers of a near-null level (Lehner & Wettig's coarse model lPTC_NG, models.md
//! §2.3) on their JIT kernels (`codegen::coarse_layer`): M_c = L_K ∘ … ∘ L_1 with
//! L_k(in)(X) = Σ_p W_p(X) in(X + Δ_p) on coarse vectors in the coarse solver's layout
//! (`X * n_basis + i`, interleaved complex), forward, input gradient and weight gradient.
//!
//! Why here and not in a lattice network: the coarse field has n_basis components per site
//! and no gauge field, so it is not a fermion value of the IR; the layers are few and tiny
//! (27 648 complex weights for the paper's model), and this executor only lays the weights
//! out for the kernels — W_p(X) by columns for the forward stencil, W_p(Y − Δ_p)† on the
//! negated displacements for the input gradient — and sums the per-site weight gradients of
//! shared weights. The weights are the level's parameters at the start of the network's flat
//! vector, in `ir::coarse_weight_index` order.

use super::RuntimeError;
use crate::codegen::coarse::CoarseDesc;
use crate::codegen::coarse_layer::{self, CoarseLayerKernels, weight_grad_len};
use crate::codegen::jit::Arg;
use crate::codegen::plan::KernelPlan;
use crate::codegen::simd::Element;
use crate::ir::{CoarseLayer, Level, coarse_weight_index, coarse_weight_shape};
use num_complex::Complex;

/// One compiled layer and where its weight sits in the level's parameters.
struct LayerExec {
    layer: CoarseLayer,
    fwd: CoarseDesc,
    bwd: CoarseDesc,
    compiled: CoarseLayerKernels,
    /// Scalar offset of the weight in the level's parameters.
    offset: usize,
    scalars: usize,
}

/// The coarse layers of one level on a coarse lattice, in precision `T`.
pub struct JitCoarseLayers<T: Element> {
    dims: [usize; 4],
    n_basis: usize,
    layers: Vec<LayerExec>,
    _t: std::marker::PhantomData<T>,
}

/// Coarse site index (x fastest) and coordinates.
fn coords(mut x: usize, dims: [usize; 4]) -> [usize; 4] {
    let mut c = [0; 4];
    for mu in 0..4 {
        c[mu] = x % dims[mu];
        x /= dims[mu];
    }
    c
}

fn index(c: [usize; 4], dims: [usize; 4]) -> usize {
    c[0] + dims[0] * (c[1] + dims[1] * (c[2] + dims[2] * c[3]))
}

/// A displacement reduced into `0..dims` per direction (what the kernels take).
fn reduce(d: &[i64; 4], dims: [usize; 4]) -> [usize; 4] {
    std::array::from_fn(|mu| d[mu].rem_euclid(dims[mu] as i64) as usize)
}

impl<T: Element> JitCoarseLayers<T> {
    /// Compiles the coarse layers of `level` for the fine lattice `fine_dims`; `None` when the
    /// level has none (a coarse solve or a pooled level).
    pub fn new(level: &Level, fine_dims: [usize; 4]) -> Result<Option<Self>, RuntimeError> {
        let Some(layers) = level.coarse_layers() else { return Ok(None) };
        let dims = level.coarse_dims(fine_dims);
        let n_basis = level.coarse_site_dof();
        let volume: usize = dims.iter().product();
        let mut offset = 0;
        let mut out = Vec::new();
        for layer in layers {
            let fwd = CoarseDesc {
                dims,
                n_basis,
                precision: T::PRECISION,
                offsets: layer.offsets.iter().map(|d| reduce(d, dims)).collect(),
                local: layer.local,
            };
            let bwd = CoarseDesc {
                offsets: layer.offsets.iter().map(|d| reduce(&d.map(|c| -c), dims)).collect(),
                ..fwd.clone()
            };
            let compiled = coarse_layer::compile(&layer.name, &fwd, &bwd, false)?;
            let scalars = 2 * coarse_weight_shape(layer, volume, n_basis).iter().product::<usize>();
            out.push(LayerExec { layer: layer.clone(), fwd, bwd, compiled, offset, scalars });
            offset += scalars;
        }
        Ok(Some(JitCoarseLayers { dims, n_basis, layers: out, _t: std::marker::PhantomData }))
    }

    /// Scalars of all the layers' weights (the level's share of the flat parameter vector).
    pub fn scalars(&self) -> usize {
        self.layers.iter().map(|l| l.scalars).sum()
    }

    /// Complex numbers of a coarse vector.
    pub fn len(&self) -> usize {
        self.dims.iter().product::<usize>() * self.n_basis
    }

    /// Whether the coarse vectors are empty (never, for a checked level).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kernels' plans, layer by layer.
    pub fn plans(&self) -> Vec<KernelPlan> {
        self.layers.iter().flat_map(|l| l.compiled.plans.clone()).collect()
    }

    fn weights<'p>(&self, l: &LayerExec, params: &'p [T]) -> Result<&'p [T], RuntimeError> {
        params.get(l.offset..l.offset + l.scalars).ok_or_else(|| {
            RuntimeError::Shape(format!(
                "coarse layer `{}`: {} parameter scalars, its weight ends at {}",
                l.layer.name,
                params.len(),
                l.offset + l.scalars
            ))
        })
    }

    /// W_p(X) laid out for the forward stencil (`dagger = false`), or W_p(Y − Δ_p)† at site Y
    /// for the input-gradient stencil on the negated displacements.
    fn pack(&self, l: &LayerExec, w: &[T], dagger: bool) -> Vec<T> {
        let (n, dims) = (self.n_basis, self.dims);
        let volume: usize = dims.iter().product();
        let desc = if dagger { &l.bwd } else { &l.fwd };
        let mut c = vec![T::zero(); desc.coeff_len()];
        let sites = if l.layer.local { volume } else { 1 };
        for y in 0..sites {
            for (p, d) in l.layer.offsets.iter().enumerate() {
                // The site whose weight this term uses: Y itself, or Y − Δ_p for the adjoint.
                let x = if dagger && l.layer.local {
                    let cy = coords(y, dims);
                    let back = reduce(&d.map(|v| -v), dims);
                    index(std::array::from_fn(|mu| (cy[mu] + back[mu]) % dims[mu]), dims)
                } else {
                    y
                };
                for i in 0..n {
                    for j in 0..n {
                        // Entry (i, j) of the term's matrix: W[i][j], or conj(W[j][i]).
                        let (r, s) = if dagger { (j, i) } else { (i, j) };
                        let at = 2 * coarse_weight_index(l.layer.local, volume, n, p, x, r, s);
                        let dst = desc.coeff_index(y, p, i, j);
                        c[dst] = w[at];
                        c[dst + desc.padded()] = if dagger { -w[at + 1] } else { w[at + 1] };
                    }
                }
            }
        }
        c
    }

    fn check_len(&self, what: &str, got: usize) -> Result<(), RuntimeError> {
        if got != self.len() {
            return Err(RuntimeError::Shape(format!(
                "coarse layers: {what} has {got} complex numbers, a coarse vector {}",
                self.len()
            )));
        }
        Ok(())
    }

    /// M_c(x): every layer in order. Returns the inputs of every layer followed by the output
    /// (what [`Self::backward`] needs).
    pub fn forward(
        &self,
        params: &[T],
        x: &[Complex<T>],
    ) -> Result<Vec<Vec<Complex<T>>>, RuntimeError> {
        self.check_len("the input", x.len())?;
        let mut acts = vec![x.to_vec()];
        for l in &self.layers {
            let coeffs = self.pack(l, self.weights(l, params)?, false);
            let mut y = vec![Complex::new(T::zero(), T::zero()); self.len()];
            let k = l.compiled.kernels.kernel(l.compiled.forward);
            let inp = acts.last().map(|v| &v[..]).unwrap_or(x);
            k.call(&mut [Arg::ro(inp), Arg::rw(&mut y), Arg::ro(&coeffs)], 0, l.fwd.volume())?;
            acts.push(y);
        }
        Ok(acts)
    }

    /// M_c(x) alone.
    pub fn apply(&self, params: &[T], x: &[Complex<T>]) -> Result<Vec<Complex<T>>, RuntimeError> {
        Ok(self.forward(params, x)?.pop().unwrap_or_default())
    }

    /// Back from g = ∂L/∂M_c(x) through the layers of a [`Self::forward`] pass `acts`: writes
    /// ∂L/∂W (re, im pairs, the level's weights' layout) into `grad` (overwritten) and returns
    /// ∂L/∂x.
    pub fn backward(
        &self,
        params: &[T],
        acts: &[Vec<Complex<T>>],
        g: &[Complex<T>],
        grad: &mut [T],
    ) -> Result<Vec<Complex<T>>, RuntimeError> {
        self.check_len("the output gradient", g.len())?;
        if acts.len() != self.layers.len() + 1 || grad.len() < self.scalars() {
            return Err(RuntimeError::Shape(format!(
                "coarse layers: {} saved activations and a gradient of {} scalars for {} layers of {} scalars",
                acts.len(),
                grad.len(),
                self.layers.len(),
                self.scalars()
            )));
        }
        let (n, volume) = (self.n_basis, self.dims.iter().product::<usize>());
        let mut h = g.to_vec();
        for (k, l) in self.layers.iter().enumerate().rev() {
            let x = &acts[k];
            // Weight gradient per site and term, then into the weight's layout.
            let mut dw = vec![T::zero(); weight_grad_len(&l.fwd)];
            let kw = l.compiled.kernels.kernel(l.compiled.weight_grad);
            kw.call(&mut [Arg::ro(&h), Arg::ro(x), Arg::rw(&mut dw)], 0, volume)?;
            let gw = &mut grad[l.offset..l.offset + l.scalars];
            gw.iter_mut().for_each(|v| *v = T::zero());
            let terms = l.layer.offsets.len();
            for site in 0..volume {
                for p in 0..terms {
                    for i in 0..n {
                        for j in 0..n {
                            let src = 2 * (((site * terms + p) * n + i) * n + j);
                            let dst =
                                2 * coarse_weight_index(l.layer.local, volume, n, p, site, i, j);
                            gw[dst] += dw[src];
                            gw[dst + 1] += dw[src + 1];
                        }
                    }
                }
            }
            // Input gradient: the adjoint stencil.
            let coeffs = self.pack(l, self.weights(l, params)?, true);
            let mut gin = vec![Complex::new(T::zero(), T::zero()); self.len()];
            let kb = l.compiled.kernels.kernel(l.compiled.backward_input);
            kb.call(&mut [Arg::ro(&h), Arg::rw(&mut gin), Arg::ro(&coeffs)], 0, volume)?;
            h = gin;
        }
        Ok(h)
    }
}
