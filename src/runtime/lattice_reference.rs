//! Deliberately naive plain-Rust reference of the gauge-equivariant layers (PTC, local PTC,
//! linear, parallel transport, residual add, norm gate): forward, input backward and weight
//! gradients, generic over f32/f64.
//!
//! This is the oracle the JIT kernels of `codegen::ptc` are tested against, so it shares no code
//! with them: paths are applied hop by hop as whole-field shifts (no precomputed path matrices,
//! no SIMD layout, no neighbour tables beyond `Geometry`), fields are in the reference layout
//! `site*12 + spin*3 + colour`, features back to back.
//!
//! **Gradient convention** (models.md §1.8). Every gradient here is the plain gradient of a real
//! loss with respect to the real vector of (re, im) pairs: for a complex quantity z the gradient
//! slot holds `dL/dRe z + i dL/dIm z` (= 2 dL/dz*, gpt's convention once its seed
//! `left = 2(N(psi) - psi_out)` is used). For a layer `out = W chi` this gives
//! `grad W = sum_x tr_colour[grad_out(x) chi(x)^dagger]` and `grad chi = W^dagger grad_out`,
//! with no factor 2 anywhere, so an optimiser on (Re W, Im W) sees the true gradient.

use crate::ir::{Graph, LayerKind, Path, inverse_path, ptc_weight_index};
use crate::lattice::Real;
use crate::lattice::gauge::GaugeField;
use crate::lattice::su3::Su3;
use num_complex::Complex;

use super::{RuntimeError, check_graph};

fn zero<T: Real>() -> Complex<T> {
    Complex::new(T::zero(), T::zero())
}

/// Apply one hop to a single fermion field (V*12 complex numbers).
/// Forward mu: out(x) = U_mu(x) psi(x+mu); backward: out(x) = U_mu(x-mu)^dagger psi(x-mu).
pub fn hop_field<T: Real>(
    gauge: &GaugeField,
    mu: usize,
    forward: bool,
    psi: &[Complex<T>],
) -> Vec<Complex<T>> {
    let g = &gauge.geom;
    let vol = g.volume();
    let mut out = vec![zero::<T>(); vol * 12];
    for x in 0..vol {
        let (u, src, dagger) = if forward {
            (gauge.link(x, mu).cast::<T>(), g.up(x, mu), false)
        } else {
            let y = g.dn(x, mu);
            (gauge.link(y, mu).cast::<T>(), y, true)
        };
        for s in 0..4 {
            let v = [psi[src * 12 + s * 3], psi[src * 12 + s * 3 + 1], psi[src * 12 + s * 3 + 2]];
            let w = if dagger { u.adj_mul_vec(&v) } else { u.mul_vec(&v) };
            out[x * 12 + s * 3..x * 12 + s * 3 + 3].copy_from_slice(&w);
        }
    }
    out
}

/// T_p psi for a path of hops (gpt semantics: links multiplied left to right, the field read at
/// the end point), i.e. T_{h1} T_{h2} ... T_{hn} psi: the last hop is applied first.
pub fn transport<T: Real>(gauge: &GaugeField, path: &Path, psi: &[Complex<T>]) -> Vec<Complex<T>> {
    let mut f = psi.to_vec();
    for h in path.iter().rev() {
        f = hop_field(gauge, h.mu as usize, h.forward, &f);
    }
    f
}

/// Apply a complex 4x4 spin matrix (row-major, 16 entries) to every site of a field.
fn spin_mix<T: Real>(
    w: impl Fn(usize, usize, usize) -> Complex<T>,
    dagger: bool,
    f: &[Complex<T>],
    acc: &mut [Complex<T>],
) {
    let vol = f.len() / 12;
    for x in 0..vol {
        for so in 0..4 {
            for si in 0..4 {
                let m = if dagger { w(x, si, so).conj() } else { w(x, so, si) };
                for c in 0..3 {
                    acc[x * 12 + so * 3 + c] += m * f[x * 12 + si * 3 + c];
                }
            }
        }
    }
}

/// Shape of a PTC layer for the reference functions.
#[derive(Clone, Debug)]
pub struct PtcShape<'a> {
    pub n_in: usize,
    pub n_out: usize,
    /// Path 0 must be the identity (empty path), as in the IR.
    pub paths: &'a [Path],
    pub local: bool,
}

impl PtcShape<'_> {
    /// Number of real scalars of the layer's weights.
    pub fn weight_scalars(&self, vol: usize) -> usize {
        self.n_out * self.n_in * self.paths.len() * 16 * 2 * if self.local { vol } else { 1 }
    }
    /// Index of the real part of W_{i,j,p}(x)[a][b] in the flat weight slice.
    fn widx(
        &self,
        vol: usize,
        i: usize,
        j: usize,
        p: usize,
        x: usize,
        a: usize,
        b: usize,
    ) -> usize {
        let ijp = ptc_weight_index(self.n_in, self.paths.len(), i, j, p);
        let site = if self.local { ijp * vol + x } else { ijp };
        2 * (site * 16 + a * 4 + b)
    }
}

fn weight<T: Real>(
    shape: &PtcShape,
    w: &[T],
    vol: usize,
    i: usize,
    j: usize,
    p: usize,
) -> impl Fn(usize, usize, usize) -> Complex<T> {
    move |x, a, b| {
        let k = shape.widx(vol, i, j, p, x, a, b);
        Complex::new(w[k], w[k + 1])
    }
}

/// PTC forward: out_i = sum_j sum_p W_ijp T_p in_j.
pub fn ptc_forward<T: Real>(
    gauge: &GaugeField,
    shape: &PtcShape,
    w: &[T],
    input: &[Complex<T>],
) -> Vec<Complex<T>> {
    let vol = gauge.geom.volume();
    let n = vol * 12;
    let mut out = vec![zero::<T>(); shape.n_out * n];
    for j in 0..shape.n_in {
        for (p, path) in shape.paths.iter().enumerate() {
            let chi = transport(gauge, path, &input[j * n..(j + 1) * n]);
            for i in 0..shape.n_out {
                spin_mix(weight(shape, w, vol, i, j, p), false, &chi, &mut out[i * n..(i + 1) * n]);
            }
        }
    }
    out
}

/// PTC input gradient: grad_in_j = sum_i sum_p T_{p^-1}(W_ijp^dagger grad_out_i).
pub fn ptc_backward_input<T: Real>(
    gauge: &GaugeField,
    shape: &PtcShape,
    w: &[T],
    grad_out: &[Complex<T>],
) -> Vec<Complex<T>> {
    let vol = gauge.geom.volume();
    let n = vol * 12;
    let mut gin = vec![zero::<T>(); shape.n_in * n];
    for j in 0..shape.n_in {
        for (p, path) in shape.paths.iter().enumerate() {
            let mut mixed = vec![zero::<T>(); n];
            for i in 0..shape.n_out {
                spin_mix(
                    weight(shape, w, vol, i, j, p),
                    true,
                    &grad_out[i * n..(i + 1) * n],
                    &mut mixed,
                );
            }
            let back = transport(gauge, &inverse_path(path), &mixed);
            for (a, b) in gin[j * n..(j + 1) * n].iter_mut().zip(&back) {
                *a += *b;
            }
        }
    }
    gin
}

/// PTC weight gradient: grad W_ijp[a][b] = sum_x sum_c grad_out_i(x)[a,c] conj((T_p in_j)(x)[b,c])
/// (no sum over x for local weights). Same flat layout as the weights.
pub fn ptc_weight_grad<T: Real>(
    gauge: &GaugeField,
    shape: &PtcShape,
    input: &[Complex<T>],
    grad_out: &[Complex<T>],
) -> Vec<T> {
    let vol = gauge.geom.volume();
    let n = vol * 12;
    let mut g = vec![T::zero(); shape.weight_scalars(vol)];
    for j in 0..shape.n_in {
        for (p, path) in shape.paths.iter().enumerate() {
            let chi = transport(gauge, path, &input[j * n..(j + 1) * n]);
            for i in 0..shape.n_out {
                let left = &grad_out[i * n..(i + 1) * n];
                for x in 0..vol {
                    for a in 0..4 {
                        for b in 0..4 {
                            let mut z = zero::<T>();
                            for c in 0..3 {
                                z += left[x * 12 + a * 3 + c] * chi[x * 12 + b * 3 + c].conj();
                            }
                            let k = shape.widx(vol, i, j, p, x, a, b);
                            g[k] += z.re;
                            g[k + 1] += z.im;
                        }
                    }
                }
            }
        }
    }
    g
}

/// Weightless parallel transport: out_k = T_{paths[k]} in_k.
pub fn transport_forward<T: Real>(
    gauge: &GaugeField,
    paths: &[Path],
    input: &[Complex<T>],
) -> Vec<Complex<T>> {
    let n = gauge.geom.volume() * 12;
    paths
        .iter()
        .enumerate()
        .flat_map(|(k, p)| transport(gauge, p, &input[k * n..(k + 1) * n]))
        .collect()
}

/// Input gradient of the transport layer: grad_in_k = T_{paths[k]^-1} grad_out_k.
pub fn transport_backward<T: Real>(
    gauge: &GaugeField,
    paths: &[Path],
    grad_out: &[Complex<T>],
) -> Vec<Complex<T>> {
    let n = gauge.geom.volume() * 12;
    paths
        .iter()
        .enumerate()
        .flat_map(|(k, p)| transport(gauge, &inverse_path(p), &grad_out[k * n..(k + 1) * n]))
        .collect()
}

fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

/// Norm gate: out(x) = psi(x) sigmoid(|psi(x)|^2), per site and feature (|.|^2 over spin and colour).
pub fn norm_gate_forward<T: Real>(input: &[Complex<T>]) -> Vec<Complex<T>> {
    input
        .chunks(12)
        .flat_map(|s| {
            let n: T = s.iter().map(|z| z.norm_sqr()).sum();
            let g = sigmoid(n);
            s.iter().map(move |z| z * g).collect::<Vec<_>>()
        })
        .collect()
}

/// Norm gate input gradient: g sigma(n) + 2 sigma'(n) Re<psi, g> psi.
pub fn norm_gate_backward<T: Real>(
    input: &[Complex<T>],
    grad_out: &[Complex<T>],
) -> Vec<Complex<T>> {
    let mut out = Vec::with_capacity(input.len());
    for (s, g) in input.chunks(12).zip(grad_out.chunks(12)) {
        let n: T = s.iter().map(|z| z.norm_sqr()).sum();
        let sg = sigmoid(n);
        let d = sg * (T::one() - sg);
        let re: T = s.iter().zip(g).map(|(a, b)| a.re * b.re + a.im * b.im).sum();
        let two = T::one() + T::one();
        for (a, b) in s.iter().zip(g) {
            out.push(b * sg + a * (two * d * re));
        }
    }
    out
}

/// A whole gauge network evaluated with the functions above: the oracle for `LatticeNet`.
pub struct ReferenceLatticeNet {
    graph: Graph,
    gauge: GaugeField,
}

impl ReferenceLatticeNet {
    pub fn new(graph: &Graph, gauge: &GaugeField) -> Result<Self, RuntimeError> {
        check_graph(graph, gauge)?;
        Ok(ReferenceLatticeNet { graph: graph.clone(), gauge: gauge.clone() })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    fn layer_weights<'a, T: Real>(&self, l: &crate::ir::Layer, params: &'a [T]) -> &'a [T] {
        match l.params.first() {
            Some(&p) => {
                let p = self.graph.param(p);
                &params[p.offset..p.offset + p.scalar_len()]
            }
            None => &[],
        }
    }

    fn run_forward<T: Real>(&self, params: &[T], input: &[Complex<T>]) -> Vec<Vec<Complex<T>>> {
        let mut vals: Vec<Vec<Complex<T>>> = vec![Vec::new(); self.graph.values.len()];
        vals[0] = input.to_vec();
        for l in &self.graph.layers {
            let x = &vals[l.inputs[0].index()];
            let y = match &l.kind {
                LayerKind::Ptc { n_in, n_out, paths, local } => {
                    let shape = PtcShape { n_in: *n_in, n_out: *n_out, paths, local: *local };
                    ptc_forward(&self.gauge, &shape, self.layer_weights(l, params), x)
                }
                LayerKind::Transport { paths } => transport_forward(&self.gauge, paths, x),
                LayerKind::Add => {
                    let b = &vals[l.inputs[1].index()];
                    x.iter().zip(b).map(|(a, b)| a + b).collect()
                }
                LayerKind::NormGate => norm_gate_forward(x),
                _ => unreachable!("rejected by check_graph"),
            };
            vals[l.output.index()] = y;
        }
        vals
    }

    fn check_io(
        &self,
        input: usize,
        output: usize,
        out_v: crate::ir::ValueId,
    ) -> Result<(), RuntimeError> {
        let vol = self.gauge.geom.volume() * 12;
        let want_in = self.graph.features(crate::ir::ValueId(0)) * vol;
        let want_out = self.graph.features(out_v) * vol;
        if input != want_in || output != want_out {
            return Err(RuntimeError::Shape(format!(
                "expected input of {want_in} and output of {want_out} complex numbers, got {input} and {output}"
            )));
        }
        Ok(())
    }

    /// Evaluate the network.
    pub fn forward<T: Real>(
        &self,
        params: &[T],
        input: &[Complex<T>],
        output: &mut [Complex<T>],
    ) -> Result<(), RuntimeError> {
        self.check_io(input.len(), output.len(), self.graph.output)?;
        if params.len() != self.graph.param_scalars() {
            return Err(RuntimeError::Shape(format!(
                "expected {} parameters, got {}",
                self.graph.param_scalars(),
                params.len()
            )));
        }
        let vals = self.run_forward(params, input);
        output.copy_from_slice(&vals[self.graph.output.index()]);
        Ok(())
    }

    /// Gradients of a real loss given its gradient `grad_output` with respect to the output
    /// (convention in the module doc). Overwrites `grad_input` and `grad_params`.
    pub fn backward<T: Real>(
        &self,
        params: &[T],
        input: &[Complex<T>],
        grad_output: &[Complex<T>],
        grad_input: &mut [Complex<T>],
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        self.check_io(input.len(), grad_output.len(), self.graph.output)?;
        if grad_input.len() != input.len()
            || params.len() != self.graph.param_scalars()
            || grad_params.len() != params.len()
        {
            return Err(RuntimeError::Shape(
                "gradient buffers do not match the input and parameter sizes".into(),
            ));
        }
        let vals = self.run_forward(params, input);
        let mut grads: Vec<Option<Vec<Complex<T>>>> = vec![None; self.graph.values.len()];
        grads[self.graph.output.index()] = Some(grad_output.to_vec());
        grad_params.iter_mut().for_each(|g| *g = T::zero());
        let add_grad = |grads: &mut Vec<Option<Vec<Complex<T>>>>, v: usize, g: Vec<Complex<T>>| {
            match &mut grads[v] {
                Some(acc) => acc.iter_mut().zip(&g).for_each(|(a, b)| *a += b),
                slot @ None => *slot = Some(g),
            }
        };
        for l in self.graph.layers.iter().rev() {
            let Some(gout) = grads[l.output.index()].take() else {
                continue;
            };
            let x = &vals[l.inputs[0].index()];
            match &l.kind {
                LayerKind::Ptc { n_in, n_out, paths, local } => {
                    let shape = PtcShape { n_in: *n_in, n_out: *n_out, paths, local: *local };
                    let w = self.layer_weights(l, params);
                    let gw = ptc_weight_grad(&self.gauge, &shape, x, &gout);
                    let p = self.graph.param(l.params[0]);
                    for (a, b) in
                        grad_params[p.offset..p.offset + p.scalar_len()].iter_mut().zip(&gw)
                    {
                        *a += *b;
                    }
                    let gi = ptc_backward_input(&self.gauge, &shape, w, &gout);
                    add_grad(&mut grads, l.inputs[0].index(), gi);
                }
                LayerKind::Transport { paths } => {
                    add_grad(
                        &mut grads,
                        l.inputs[0].index(),
                        transport_backward(&self.gauge, paths, &gout),
                    );
                }
                LayerKind::Add => {
                    add_grad(&mut grads, l.inputs[0].index(), gout.clone());
                    add_grad(&mut grads, l.inputs[1].index(), gout);
                }
                LayerKind::NormGate => {
                    add_grad(&mut grads, l.inputs[0].index(), norm_gate_backward(x, &gout))
                }
                _ => unreachable!("rejected by check_graph"),
            }
        }
        match grads[0].take() {
            Some(g) => grad_input.copy_from_slice(&g),
            None => grad_input.iter_mut().for_each(|g| *g = zero()),
        }
        Ok(())
    }
}

/// Multiply every site's colour vectors by a gauge transformation: psi(x) -> Omega(x) psi(x).
pub fn gauge_rotate<T: Real>(omega: &[Su3<f64>], psi: &[Complex<T>]) -> Vec<Complex<T>> {
    let mut out = psi.to_vec();
    for (k, site) in out.chunks_mut(12).enumerate() {
        let o = omega[k % omega.len()].cast::<T>();
        for s in 0..4 {
            let v = [site[s * 3], site[s * 3 + 1], site[s * 3 + 2]];
            site[s * 3..s * 3 + 3].copy_from_slice(&o.mul_vec(&v));
        }
    }
    out
}
