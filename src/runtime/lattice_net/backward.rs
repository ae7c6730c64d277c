//! The backward passes of a compiled gauge network: input and weight gradients on reference
//! vectors and on buffers in the network's layout, and the training loss with the output
//! layer's fused forward + seed + weight-gradient kernel. Split from the forward passes
//! (`runtime::lattice_net`) because training is a second job with its own buffers and
//! invariants: weight gradients are overwritten, never accumulated across calls, and the
//! fused path gives the separate passes' numbers to the bit.

use super::{LatticeNet, LayerExec, Source, StencilLayer, norm_gate_aosoa};
use crate::codegen::jit::{Arg, KernelId};
use crate::codegen::simd::Element;
use crate::ir::ParamId;
use crate::runtime::RuntimeError;
use num_complex::Complex;
use rayon::prelude::*;

impl<T: Element> LatticeNet<T> {
    /// Gradients of a real loss L given `grad_output` = dL/dRe out + i dL/dIm out. Overwrites
    /// `grad_input` and `grad_params` with the gradients of L with respect to the real and
    /// imaginary parts of the input and of every weight (flat (re, im) layout of the params).
    pub fn backward(
        &self,
        params: &[T],
        input: &[Complex<T>],
        grad_output: &[Complex<T>],
        grad_input: &mut [Complex<T>],
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        self.backward_partial(params, input, grad_output, Some(grad_input), grad_params)
    }

    /// [`LatticeNet::backward`] with the input gradient optional (its pass costs as much as
    /// the first layer's forward). Nothing computes the network's output here: the layers
    /// whose value is only the output are not run (for one PTC layer, no forward kernel at
    /// all) — what a caller that already has the output, such as the smoothing steps of a
    /// multigrid network, needs.
    pub fn backward_partial(
        &self,
        params: &[T],
        input: &[Complex<T>],
        grad_output: &[Complex<T>],
        grad_input: Option<&mut [Complex<T>]>,
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        self.check_field("grad_output", grad_output.len(), self.graph.output)?;
        self.forward_backward_impl(
            params,
            input,
            None,
            |_, g| g.copy_from_slice(grad_output),
            grad_input,
            grad_params,
            false,
        )
    }

    /// One forward pass and the backward pass from it (what a training step needs): the output
    /// is written to `output` if given, `seed(output, grad_output)` fills the output gradient
    /// from the output, then the gradients are computed as in [`LatticeNet::backward`].
    pub fn forward_backward(
        &self,
        params: &[T],
        input: &[Complex<T>],
        output: Option<&mut [Complex<T>]>,
        seed: impl FnOnce(&[Complex<T>], &mut [Complex<T>]),
        grad_input: Option<&mut [Complex<T>]>,
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        self.forward_backward_impl(params, input, output, seed, grad_input, grad_params, true)
    }

    /// With `need_output` false the seed receives an empty output and the layers whose value
    /// is only the network's output are skipped.
    #[allow(clippy::too_many_arguments)]
    fn forward_backward_impl(
        &self,
        params: &[T],
        input: &[Complex<T>],
        output: Option<&mut [Complex<T>]>,
        seed: impl FnOnce(&[Complex<T>], &mut [Complex<T>]),
        grad_input: Option<&mut [Complex<T>]>,
        grad_params: &mut [T],
        need_output: bool,
    ) -> Result<(), RuntimeError> {
        self.check_params(params.len())?;
        self.check_params(grad_params.len())?;
        self.check_field("input", input.len(), crate::ir::ValueId(0))?;
        if let Some(g) = &grad_input {
            self.check_field("grad_input", g.len(), crate::ir::ValueId(0))?;
        }
        if let Some(o) = &output {
            self.check_field("output", o.len(), self.graph.output)?;
        }
        let out_len = self.graph.features(self.graph.output) * self.layout.volume() * 12;
        let need_output = need_output || output.is_some();
        let inp = self.import(input)?;
        let zero = Complex::new(T::zero(), T::zero());
        // The seed works on reference vectors: the output goes out of the layout, the output
        // gradient comes back into it.
        let seed_aosoa = |y: &[T], g: &mut [T]| {
            let mut out = Vec::new();
            if need_output {
                out = vec![zero; out_len];
                self.layout.from_aosoa(y, &mut out);
            }
            let mut gout = vec![zero; out_len];
            seed(&out, &mut gout);
            if let Some(o) = output {
                o.copy_from_slice(&out);
            }
            self.layout.to_aosoa(&gout, g);
        };
        let gi = self.backprop(
            params,
            Source::Ready(&inp),
            need_output,
            seed_aosoa,
            grad_input.is_some(),
            grad_params,
        )?;
        if let Some(dst) = grad_input {
            match &gi {
                Some(g) => self.layout.from_aosoa(g, dst),
                None => dst.iter_mut().for_each(|z| *z = zero),
            }
        }
        gi.into_iter().chain([inp]).for_each(|v| self.recycle(v));
        Ok(())
    }

    /// A training step on buffers in this network's layout: `input` holds the input features
    /// (ghost slots refilled here), `seed(output, grad_output)` receives the output's buffer
    /// and fills the main part of every feature of its gradient's, then the weight gradients
    /// (overwritten) and, if asked, the input gradient (main parts) are computed.
    pub fn forward_backward_aosoa(
        &self,
        params: &[T],
        input: &mut [T],
        seed: impl FnOnce(&[T], &mut [T]),
        grad_input: Option<&mut [T]>,
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        self.aosoa_passes(params, input, true, seed, grad_input, grad_params)
    }

    /// [`LatticeNet::backward_partial`] on buffers in this network's layout: `grad_output`'s
    /// main part is the output gradient, the output itself is not computed.
    pub fn backward_partial_aosoa(
        &self,
        params: &[T],
        input: &mut [T],
        grad_output: &[T],
        grad_input: Option<&mut [T]>,
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        let need = self.graph.features(self.graph.output) * self.layout.field_len();
        if grad_output.len() < need {
            return Err(RuntimeError::Shape(format!(
                "backward: an output gradient of {} scalars, model `{}` needs {need}",
                grad_output.len(),
                self.graph.name
            )));
        }
        let seed = |_: &[T], g: &mut [T]| g.copy_from_slice(&grad_output[..g.len()]);
        self.aosoa_passes(params, input, false, seed, grad_input, grad_params)
    }

    /// The network's input features of a training step on buffers in its layout (`input`
    /// cut to them; [`LatticeNet::input_source`] refreshes their ghosts), after checking the
    /// parameter and gradient lengths and that `input` (and an input-gradient buffer of
    /// `grad_input_len`) holds them.
    fn training_input<'a>(
        &self,
        params: &[T],
        grad_params: &[T],
        input: &'a mut [T],
        grad_input_len: Option<usize>,
    ) -> Result<&'a mut [T], RuntimeError> {
        self.check_params(params.len())?;
        self.check_params(grad_params.len())?;
        let fin = self.graph.features(crate::ir::ValueId(0)) * self.layout.field_len();
        if input.len() < fin || grad_input_len.is_some_and(|n| n < fin) {
            return Err(RuntimeError::Shape(format!(
                "model `{}` takes {fin} scalars of input in its layout, got {}",
                self.graph.name,
                input.len()
            )));
        }
        Ok(&mut input[..fin])
    }

    fn aosoa_passes(
        &self,
        params: &[T],
        input: &mut [T],
        need_output: bool,
        seed: impl FnOnce(&[T], &mut [T]),
        grad_input: Option<&mut [T]>,
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        let gi_len = grad_input.as_ref().map(|g| g.len());
        let input = self.training_input(params, grad_params, input, gi_len)?;
        let fin = input.len();
        let input = self.input_source(input)?;
        let want_gi = grad_input.is_some();
        let gi = self.backprop(params, input, need_output, seed, want_gi, grad_params)?;
        if let Some(dst) = grad_input {
            match &gi {
                Some(g) => dst[..fin].copy_from_slice(&g[..fin]),
                None => dst[..fin].fill(T::zero()),
            }
        }
        gi.into_iter().for_each(|v| self.recycle(v));
        Ok(())
    }

    /// The forward pass from `input` (AoSoA, ghosts filled, or on a sub-lattice its halo
    /// pending: the forward pass completes it), `seed(output, grad_output)` on
    /// AoSoA buffers (the output buffer is empty without `need_output`, and then the layers
    /// whose value is only the output are skipped; the seed fills the main part of every
    /// feature of the gradient), and the backward pass: the weight gradients into
    /// `grad_params` (overwritten), the input gradient returned if `want_input_grad`.
    fn backprop(
        &self,
        params: &[T],
        mut input: Source<'_, T>,
        need_output: bool,
        seed: impl FnOnce(&[T], &mut [T]),
        want_input_grad: bool,
        grad_params: &mut [T],
    ) -> Result<Option<Vec<T>>, RuntimeError> {
        let vals = self.run_layers_from(params, &mut input, need_output)?;
        let input = input.get();
        let out_index = self.graph.output.index();
        let mut gout = self.field_buffer(self.graph.features(self.graph.output));
        match (need_output, out_index) {
            (true, 0) => seed(input, &mut gout),
            (true, i) => seed(&vals[i], &mut gout),
            (false, _) => seed(&[], &mut gout),
        }
        self.refresh(&mut gout)?;
        let mut grads: Vec<Option<Vec<T>>> = vec![None; self.graph.values.len()];
        grads[out_index] = Some(gout);
        grad_params.iter_mut().for_each(|g| *g = T::zero());
        self.backward_layers(params, input, vals, grads, want_input_grad, grad_params)
    }

    /// The backward pass from the value gradients `grads` (ghosts filled) down to the input:
    /// every layer whose output has a gradient adds its weight gradients to `grad_params` and
    /// passes its input gradient on; returns the input gradient if `want_input_grad`. `vals`
    /// and `grads` are recycled.
    fn backward_layers(
        &self,
        params: &[T],
        input: &[T],
        vals: Vec<Vec<T>>,
        mut grads: Vec<Option<Vec<T>>>,
        want_input_grad: bool,
        grad_params: &mut [T],
    ) -> Result<Option<Vec<T>>, RuntimeError> {
        /// Accumulate `g` into the gradient of value `v`; returns `g` when it was only added.
        fn add_grad<T: Element>(
            grads: &mut [Option<Vec<T>>],
            v: usize,
            g: Vec<T>,
        ) -> Option<Vec<T>> {
            match &mut grads[v] {
                Some(acc) => {
                    acc.par_iter_mut().zip(g.par_iter()).for_each(|(a, b)| *a += *b);
                    Some(g)
                }
                slot @ None => {
                    *slot = Some(g);
                    None
                }
            }
        }
        for (l, exec) in self.graph.layers.iter().zip(&self.layers).rev() {
            let Some(gout) = grads[l.output.index()].take() else {
                continue;
            };
            let xi = l.inputs[0].index();
            let x = if xi == 0 { input } else { &vals[xi][..] };
            match exec {
                LayerExec::Stencil(s) => {
                    if let (Some(wk), Some(pid)) = (s.kernels.wgrad, s.param) {
                        self.weight_grad(s, wk, x, &gout, pid, grad_params)?;
                    }
                    // The network input's gradient is only computed when asked for: training
                    // needs the weight gradients alone, and this pass costs as much as the
                    // first layer's forward.
                    if xi == 0 && !want_input_grad {
                        self.recycle(gout);
                        continue;
                    }
                    let w = self.weight_buffer(s, self.param_slice(s.param, params), true);
                    let gi = self.run_stencil(
                        s.kernels.bwd,
                        &s.bwd_tab,
                        &gout,
                        s.kernels.n_in,
                        &w,
                        true,
                    )?;
                    self.recycle(gout);
                    if let Some(spent) = add_grad(&mut grads, xi, gi) {
                        self.recycle(spent);
                    }
                }
                LayerExec::Add(_) => {
                    add_grad(&mut grads, xi, gout.clone());
                    add_grad(&mut grads, l.inputs[1].index(), gout);
                }
                LayerExec::NormGate => {
                    let gi = norm_gate_aosoa(x, self.layout.lanes, true, Some(&gout));
                    add_grad(&mut grads, xi, gi);
                }
            }
        }
        let gi = grads[0].take();
        vals.into_iter().chain(grads.into_iter().flatten()).for_each(|v| self.recycle(v));
        Ok(gi)
    }

    fn weight_grad(
        &self,
        s: &StencilLayer<T>,
        kernel: KernelId,
        x: &[T],
        left: &[T],
        pid: ParamId,
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        let d = &s.kernels.fwd_desc;
        let sz = std::mem::size_of::<T>();
        let mut part = self.zeroed(d.grad_bytes() / sz);
        let k = self.kernels.kernel(kernel);
        k.call_parallel(
            &mut [
                Arg::ro(x),
                Arg::ro(left),
                Arg::ro(&s.fwd_tab.matrices),
                Arg::ro(&s.fwd_tab.neighbours),
                Arg::rw(&mut part),
            ],
            1,
        )?;
        self.add_partials(s, pid, &part, grad_params);
        self.recycle(part);
        Ok(())
    }

    /// Adds a weight-gradient kernel's output (`part`: per-chunk partial sums for global
    /// weights, the local weight layout for local ones) to the flat gradient of `pid`.
    fn add_partials(&self, s: &StencilLayer<T>, pid: ParamId, part: &[T], grad_params: &mut [T]) {
        let d = &s.kernels.fwd_desc;
        let p = self.graph.param(pid);
        let g = &mut grad_params[p.offset..p.offset + p.scalar_len()];
        let l = self.layout.lanes;
        let nw = d.n_weights;
        if s.kernels.local {
            let vo = self.layout.outer_volume;
            let vol = self.weight_volume;
            for w in 0..nw {
                for o in 0..vo {
                    for k in 0..l {
                        let x = self.weight_sites[self.layout.site(o, k)];
                        for ab in 0..16 {
                            let src = (((w * vo + o) * 16 + ab) * 2) * l + k;
                            let dst = 2 * ((w * vol + x) * 16 + ab);
                            g[dst] += part[src];
                            g[dst + 1] += part[src + l];
                        }
                    }
                }
            }
        } else {
            // Sum the per-chunk partials lane by lane in f64 (one contiguous, vectorisable
            // sweep), then the lanes of each entry.
            let chunk = nw * 32 * l;
            let mut lanes = vec![0f64; chunk];
            for c in part.chunks_exact(chunk) {
                for (a, v) in lanes.iter_mut().zip(c) {
                    *a += crate::lattice::Real::to_f64(*v);
                }
            }
            // Entry q = (w*16 + ab)*2 + re/im, which is exactly the flat parameter layout.
            for (gq, q) in g.iter_mut().zip(lanes.chunks_exact(l)) {
                *gq += T::from_f64(q.iter().sum::<f64>());
            }
        }
    }

    /// The training loss ‖M input − target‖² over every output feature's main sites (in f64)
    /// and its weight gradient (overwritten), on buffers in this network's layout: `target`
    /// holds the output's features (each [`SiteLayout::field_len`] scalars; the ghosts are not
    /// read). The layers before the output layer run, then (if it has one) the output layer's
    /// fused kernel, which writes the seed 2 (out − target) and that layer's weight gradient in
    /// one sweep, then the backward pass of the layers before it. Without a fused kernel,
    /// [`Self::forward_backward_aosoa`] seeded with [`crate::runtime::mse_seed`]. The same numbers
    /// either way: the fused kernel does the same floating-point operations in the same order.
    pub fn loss_grad_aosoa(
        &self,
        params: &[T],
        input: &mut [T],
        target: &[T],
        grad_params: &mut [T],
    ) -> Result<f64, RuntimeError> {
        let (len, main) = (self.layout.field_len(), self.layout.main_len());
        let n_out = self.graph.features(self.graph.output);
        if target.len() < n_out * len {
            return Err(RuntimeError::Shape(format!(
                "model `{}`: a training target of {} scalars, its {n_out} output feature(s) \
                 need {} in its layout",
                self.graph.name,
                target.len(),
                n_out * len
            )));
        }
        let target = &target[..n_out * len];
        fn mains<T>(v: &[T], len: usize, main: usize) -> impl Iterator<Item = &[T]> {
            v.chunks(len).map(move |f| &f[..main])
        }
        let fused = self.graph.layers.iter().zip(&self.layers).find_map(|(l, e)| match e {
            LayerExec::Stencil(s) => s.kernels.loss_wgrad.map(|k| (l, s, k)),
            _ => None,
        });
        let Some((last, s, kernel)) = fused else {
            let mut loss = 0.0;
            let seed = |out: &[T], g: &mut [T]| {
                for ((o, g), t) in
                    out.chunks(len).zip(g.chunks_mut(len)).zip(mains(target, len, main))
                {
                    loss += crate::runtime::mse_seed(&o[..main], t, &mut g[..main]);
                }
            };
            self.forward_backward_aosoa(params, input, seed, None, grad_params)?;
            return Ok(loss);
        };
        let input = self.training_input(params, grad_params, input, None)?;
        let pid = s.param.expect("a fused loss kernel belongs to a weighted layer");
        let mut input = self.input_source(input)?;
        let vals = self.run_layers_from(params, &mut input, false)?;
        let input = input.get();
        let xi = last.inputs[0].index();
        let x = if xi == 0 { &input[..] } else { &vals[xi][..] };
        let d = &s.kernels.fwd_desc;
        let mut part = self.zeroed(d.grad_bytes() / std::mem::size_of::<T>());
        let mut gout = self.field_buffer(n_out);
        let w = self.weight_buffer(s, self.param_slice(Some(pid), params), false);
        self.kernels.kernel(kernel).call_parallel(
            &mut [
                Arg::ro(x),
                Arg::ro(target),
                Arg::ro(&s.fwd_tab.matrices),
                Arg::ro(&s.fwd_tab.neighbours),
                Arg::ro(&w),
                Arg::rw(&mut part),
                Arg::rw(&mut gout),
            ],
            1,
        )?;
        let loss = mains(&gout, len, main).map(crate::runtime::mse_from_seed).sum();
        grad_params.iter_mut().for_each(|g| *g = T::zero());
        self.add_partials(s, pid, &part, grad_params);
        self.recycle(part);
        if xi == 0 {
            self.recycle(gout);
            vals.into_iter().for_each(|v| self.recycle(v));
            return Ok(loss);
        }
        // The layers below, from the gradient at the output layer's input (the output layer
        // itself has no output gradient in `grads`, so the backward pass passes it by).
        self.refresh(&mut gout)?;
        let wb = self.weight_buffer(s, self.param_slice(Some(pid), params), true);
        let gx = self.run_stencil(s.kernels.bwd, &s.bwd_tab, &gout, s.kernels.n_in, &wb, true)?;
        self.recycle(gout);
        let mut grads: Vec<Option<Vec<T>>> = vec![None; self.graph.values.len()];
        grads[xi] = Some(gx);
        if let Some(g) = self.backward_layers(params, input, vals, grads, false, grad_params)? {
            self.recycle(g);
        }
        Ok(loss)
    }
}
