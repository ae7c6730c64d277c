//! A gauge network compiled to native kernels: forward, input gradient and weight gradients of
//! every layer (PTC, local PTC, linear, parallel transport, residual add, norm gate) over a fixed
//! gauge field, in f32 or f64.
//!
//! The gauge field is fixed for a compiled network, so path transports, neighbour tables and the
//! virtual-node layout (`codegen::lattice_layout`) are built once in [`LatticeNet::compile`]. Each
//! call converts the input from the reference layout to AoSoA buffers, runs the layer kernels on
//! both cores (rayon over outer sites), refreshes the ghost slabs after every stencil output
//! (on one process's sub-lattice, the halo is exchanged while the next stencil runs its
//! interior sites: `lattice_net/overlap.rs`), and converts back. Stencil layers and residual
//! adds run as JIT kernels; the norm gate is
//! evaluated in plain Rust over the AoSoA buffers (rayon), because it needs `exp`, for which
//! cranelift has no instruction. Gradients follow the convention of `runtime::lattice_reference` (the real
//! gradient with respect to the (re, im) pairs, no factor 2), which is what Adam on Re/Im needs.
//! [`ReferenceLatticeNet`](super::lattice_reference::ReferenceLatticeNet) is the same API
//! evaluated naively; the tests compare the two. The gradients and the training loss live in
//! `lattice_net/backward.rs`.

use super::transport::{PathTables, path_matrix};
use super::{FermionNet, RuntimeError, check_graph};
use crate::codegen;
use crate::codegen::jit::{Arg, CompiledKernels, KernelId};
use crate::codegen::lattice_layout::{FIELD_COMPONENTS, SiteLayout};
use crate::codegen::lattice_net::{LayerKernels, StencilKernels};
use crate::codegen::plan::KernelPlan;
use crate::codegen::simd::Element;
use crate::ir::{self, Graph, ParamId, inverse_path, ptc_weight_index};
use crate::lattice::gauge::GaugeField;
use num_complex::Complex;
use rayon::prelude::*;

mod backward;
mod overlap;
use overlap::{SiteSplit, Source};

/// Compile options.
#[derive(Clone, Debug, Default)]
pub struct LatticeNetOptions {
    /// Keep CLIF and machine-code listings of every kernel (for `symc inspect --asm`).
    pub keep_listings: bool,
}

/// How one layer runs.
enum LayerExec<T> {
    Stencil(Box<StencilLayer<T>>),
    /// JIT elementwise sum over all slots of the operands.
    Add(KernelId),
    NormGate,
}

/// A stencil layer's kernels with the tables this gauge field gives them.
struct StencilLayer<T> {
    kernels: StencilKernels,
    fwd_tab: PathTables<T>,
    bwd_tab: PathTables<T>,
    /// The weight tensor (weighted layers only).
    param: Option<ParamId>,
    /// Local weights only: `back_site[p][y]` = the global site y - Delta_p (where the backward
    /// pass reads W).
    back_site: Vec<Vec<usize>>,
}

/// The halo of a network compiled for one process's sub-lattice (domain decomposition): the
/// slots after the layout's ghost slabs that hold the neighbours on other processes, and the
/// exchange that fills them. It lives behind a trait so that this module, which every build
/// has, knows nothing of MPI (`runtime::distributed::net` implements it).
pub trait RemoteHalo<T>: Send + Sync {
    /// Slots the halo adds to every feature's buffer.
    fn slots(&self) -> usize;
    /// The global site of local site `s` (where the path transports start).
    fn global_site(&self, s: usize) -> usize;
    /// The slot holding `x + disp` for every lane of outer site `o` if that lies on another
    /// process (a halo slot), `None` if the sub-lattice's own layout holds it.
    fn remote_slot(&self, o: usize, disp: [i64; 4]) -> Option<usize>;
    /// Fills the halo slots of every feature of `buf` (features of `field_len` scalars each)
    /// from the other processes. Collective: every process calls it at the same point.
    fn exchange(&self, buf: &mut [T], field_len: usize) -> Result<(), RuntimeError>;
    /// [`RemoteHalo::exchange`] with `interior` run on `buf` while the messages travel
    /// (`interior` must not read halo slots). Without an implementation of its own, the
    /// exchange completes first.
    fn exchange_overlapped(
        &self,
        buf: &mut [T],
        field_len: usize,
        interior: &mut dyn FnMut(&[T]) -> Result<(), RuntimeError>,
    ) -> Result<(), RuntimeError> {
        self.exchange(buf, field_len)?;
        interior(buf)
    }
}

/// A compiled gauge network.
pub struct LatticeNet<T: Element> {
    graph: Graph,
    layout: SiteLayout,
    ghosts: Vec<(usize, usize, usize)>,
    /// The halo of a sub-lattice network ([`LatticeNet::compile_decomposed`]).
    remote: Option<Box<dyn RemoteHalo<T>>>,
    /// With a halo: the outer sites whose stencils read none of it, and the others.
    split: Option<SiteSplit>,
    /// Site-dependent (`local`) weights: the site of the weight tensor each local site reads
    /// (its global site; the identity on one process), and the tensor's volume (the whole
    /// lattice's: a split view keeps the whole parameter vector, `ir::Graph::split_of`).
    weight_sites: Vec<usize>,
    weight_volume: usize,
    kernels: CompiledKernels,
    layers: Vec<LayerExec<T>>,
    plans: Vec<KernelPlan>,
    /// Recycled AoSoA buffers (see [`LatticeNet::field_buffer`]).
    pool: std::sync::Mutex<Vec<Vec<T>>>,
}

impl<T: Element> LatticeNet<T> {
    /// Compile every layer of `graph` for the gauge field `gauge` (which must match the model's
    /// lattice). Fails on non-gauge layers and on lattices without an extent divisible by the
    /// SIMD lanes (4 for f32, 2 for f64).
    pub fn compile(
        graph: &Graph,
        gauge: &GaugeField,
        opts: &LatticeNetOptions,
    ) -> Result<Self, RuntimeError> {
        check_graph(graph, gauge)?;
        let verified = ir::verify::verify(graph)?;
        let program = codegen::lattice_net::lower(&verified, T::PRECISION, opts.keep_listings)?;
        Self::from_program(graph, gauge, program, None)
    }

    /// Compile `graph`, whose lattice is one process's sub-lattice of `gauge`'s lattice, with
    /// the halo `make_halo` builds for the layout the kernels would have without it and the
    /// displacements the network reads. The network then runs on that process's part of
    /// every field, the halo exchanged before every stencil; weight gradients are this
    /// process's share (the caller sums them over the processes). Site-dependent (`local`)
    /// weights are the whole lattice's (`graph` is a split view, `ir::Graph::split_of`): each
    /// process reads its sites' weights by their global sites and writes the gradient of
    /// those alone.
    pub fn compile_decomposed(
        graph: &Graph,
        gauge: &GaugeField,
        opts: &LatticeNetOptions,
        make_halo: impl FnOnce(&SiteLayout, &[[i64; 4]]) -> Result<Box<dyn RemoteHalo<T>>, RuntimeError>,
    ) -> Result<Self, RuntimeError> {
        let verified = ir::verify::verify(graph)?;
        let base = codegen::lattice_net::layout(graph, T::PRECISION)?;
        let disps = codegen::lattice_net::displacements(graph);
        let halo = make_halo(&base, &disps)?;
        let layout = base.with_remote_slots(halo.slots());
        let split = SiteSplit::new(layout.outer_volume, halo.as_ref(), &disps);
        let program =
            codegen::lattice_net::lower_on(&verified, layout, T::PRECISION, opts.keep_listings)?;
        let mut net = Self::from_program(graph, gauge, program, Some(halo))?;
        net.split = Some(split);
        Ok(net)
    }

    fn from_program(
        graph: &Graph,
        gauge: &GaugeField,
        program: codegen::lattice_net::LatticeProgram,
        remote: Option<Box<dyn RemoteHalo<T>>>,
    ) -> Result<Self, RuntimeError> {
        let layout = program.layout;
        let vol = layout.volume();
        let global = |s: usize| remote.as_ref().map_or(s, |h| h.global_site(s));
        let slot = |o: usize, disp: [i64; 4]| {
            remote
                .as_ref()
                .and_then(|h| h.remote_slot(o, disp))
                .or_else(|| layout.neighbour_slot(o, disp))
                .ok_or_else(|| {
                    RuntimeError::Shape("internal: the layout lacks a ghost slab for a path".into())
                })
        };
        let mut layers = Vec::with_capacity(program.layers.len());
        for (l, k) in graph.layers.iter().zip(program.layers) {
            layers.push(match k {
                LayerKernels::Stencil(s) => {
                    let back_site = if s.local {
                        s.paths
                            .iter()
                            .map(|p| {
                                (0..vol)
                                    .map(|y| path_matrix(gauge, &inverse_path(p), global(y)).1)
                                    .collect()
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    LayerExec::Stencil(Box::new(StencilLayer {
                        fwd_tab: PathTables::mapped(gauge, &layout, &s.paths, false, global, slot)?,
                        bwd_tab: PathTables::mapped(gauge, &layout, &s.paths, true, global, slot)?,
                        param: if s.wgrad.is_some() { l.params.first().copied() } else { None },
                        back_site,
                        kernels: *s,
                    }))
                }
                LayerKernels::Add(k) => LayerExec::Add(k),
                LayerKernels::NormGate => LayerExec::NormGate,
            });
        }
        let weight_sites = (0..vol).map(global).collect();
        Ok(LatticeNet {
            graph: graph.clone(),
            ghosts: layout.ghost_sources(),
            weight_sites,
            weight_volume: gauge.geom.volume(),
            remote,
            split: None,
            layout,
            kernels: program.kernels,
            layers,
            plans: program.plans,
            pool: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The kernel plans (one per kernel) for `symc inspect`.
    pub fn plans(&self) -> &[KernelPlan] {
        &self.plans
    }

    /// The compiled kernels with their listings.
    pub fn kernels(&self) -> &CompiledKernels {
        &self.kernels
    }

    pub fn layout(&self) -> &SiteLayout {
        &self.layout
    }

    /// A buffer for `n` features. Every user overwrites all main slots (kernels write every
    /// outer site, conversions every site) and refreshes the ghosts, so recycled buffers need no
    /// zeroing. Recycling matters: fresh buffers of this size are mmapped and page-faulted in on
    /// every call.
    fn field_buffer(&self, n: usize) -> Vec<T> {
        self.pooled(n * self.layout.field_len())
    }

    /// A zeroed scratch buffer of `len` scalars from the same pool (the weight-gradient kernels
    /// accumulate into theirs).
    fn zeroed(&self, len: usize) -> Vec<T> {
        let mut b = self.pooled(len);
        b.fill(T::zero());
        b
    }

    /// A buffer of exactly `len` scalars, recycled if the pool has one (contents arbitrary).
    fn pooled(&self, len: usize) -> Vec<T> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        match pool.iter().position(|b| b.len() == len) {
            Some(i) => pool.swap_remove(i),
            None => vec![T::zero(); len],
        }
    }

    /// Return a buffer to the pool (bounded, so a long run cannot hoard memory).
    fn recycle(&self, v: Vec<T>) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 64 && !v.is_empty() {
            pool.push(v);
        }
    }

    fn import<U: crate::lattice::Real>(&self, src: &[Complex<U>]) -> Result<Vec<T>, RuntimeError> {
        let n = src.len() / (self.layout.volume() * 12);
        let mut buf = self.field_buffer(n);
        self.layout.to_aosoa(src, &mut buf);
        self.refresh(&mut buf)?;
        Ok(buf)
    }

    /// Fills every ghost slot of `buf` (all features): the lane-rotated copies of the layout's
    /// ghost slabs, and the halo of a sub-lattice network from the other processes.
    fn refresh(&self, buf: &mut [T]) -> Result<(), RuntimeError> {
        self.layout.fill_ghosts(&self.ghosts, buf);
        match &self.remote {
            Some(h) => h.exchange(buf, self.layout.field_len()),
            None => Ok(()),
        }
    }

    fn param_slice<'a>(&self, pid: Option<ParamId>, params: &'a [T]) -> &'a [T] {
        match pid {
            Some(p) => {
                let p = self.graph.param(p);
                &params[p.offset..p.offset + p.scalar_len()]
            }
            None => &[],
        }
    }

    /// The weight buffer of a stencil layer: splatted forward weights, or the W^dagger buffer of
    /// the backward pass (transposed in i, j; for local weights read at y - Delta_p).
    fn weight_buffer(&self, s: &StencilLayer<T>, w: &[T], backward: bool) -> Vec<T> {
        if s.param.is_none() {
            return Vec::new();
        }
        let l = self.layout.lanes;
        let vo = self.layout.outer_volume;
        let vol = self.weight_volume;
        let s_k = &s.kernels;
        let (n_in, n_out, np) = (s_k.n_in, s_k.n_out, s_k.paths.len());
        let nw = n_in * n_out * np;
        let per = 32 * l;
        let mut buf = vec![T::zero(); nw * per * if s_k.local { vo } else { 1 }];
        for i in 0..n_out {
            for j in 0..n_in {
                for p in 0..np {
                    let wf = ptc_weight_index(n_in, np, i, j, p);
                    let wb = if backward { ptc_weight_index(n_out, np, j, i, p) } else { wf };
                    for a in 0..4 {
                        for b in 0..4 {
                            // Backward entry [a][b] is conj(W[b][a]).
                            let (ra, rb) = if backward { (b, a) } else { (a, b) };
                            let sign = if backward { -T::one() } else { T::one() };
                            let dst_ab = a * 4 + b;
                            if s_k.local {
                                for o in 0..vo {
                                    for k in 0..l {
                                        let y = self.layout.site(o, k);
                                        let x = if backward {
                                            s.back_site[p][y]
                                        } else {
                                            self.weight_sites[y]
                                        };
                                        let src = 2 * ((wf * vol + x) * 16 + ra * 4 + rb);
                                        let dst = (((wb * vo + o) * 16 + dst_ab) * 2) * l + k;
                                        buf[dst] = w[src];
                                        buf[dst + l] = sign * w[src + 1];
                                    }
                                }
                            } else {
                                let src = 2 * (wf * 16 + ra * 4 + rb);
                                let dst = ((wb * 16 + dst_ab) * 2) * l;
                                for k in 0..l {
                                    buf[dst + k] = w[src];
                                    buf[dst + l + k] = sign * w[src + 1];
                                }
                            }
                        }
                    }
                }
            }
        }
        buf
    }

    fn run_stencil(
        &self,
        id: KernelId,
        tab: &PathTables<T>,
        input: &[T],
        n_out: usize,
        weights: &[T],
        ghosts: bool,
    ) -> Result<Vec<T>, RuntimeError> {
        let mut out = self.field_buffer(n_out);
        let k = self.kernels.kernel(id);
        k.call_parallel(&mut stencil_args(input, &mut out, tab, weights), 16)?;
        if ghosts {
            self.refresh(&mut out)?;
        }
        Ok(out)
    }

    fn check_params(&self, n: usize) -> Result<(), RuntimeError> {
        if n != self.graph.param_scalars() {
            return Err(RuntimeError::Shape(format!(
                "model `{}` has {} parameter scalars, got {n}",
                self.graph.name,
                self.graph.param_scalars()
            )));
        }
        Ok(())
    }

    fn check_field(
        &self,
        what: &str,
        len: usize,
        v: crate::ir::ValueId,
    ) -> Result<(), RuntimeError> {
        let want = self.graph.features(v) * self.layout.volume() * 12;
        if len != want {
            return Err(RuntimeError::Shape(format!(
                "{what}: expected {want} complex numbers, got {len}"
            )));
        }
        Ok(())
    }

    /// All values of the network in the AoSoA layout.
    fn run_forward(&self, params: &[T], input: &[Complex<T>]) -> Result<Vec<Vec<T>>, RuntimeError> {
        let inp = self.import(input)?;
        let mut vals = self.run_layers(params, &inp)?;
        vals[0] = inp;
        Ok(vals)
    }

    /// The values of every layer output from an AoSoA input with its ghosts filled (value 0 is
    /// read from `input` and left empty in the result).
    fn run_layers(&self, params: &[T], input: &[T]) -> Result<Vec<Vec<T>>, RuntimeError> {
        self.run_layers_until(params, input, true)
    }

    /// [`Self::run_layers`]; without `output`, the layer that produces the network's output
    /// is not run (unless another layer reads it too).
    fn run_layers_until(
        &self,
        params: &[T],
        input: &[T],
        output: bool,
    ) -> Result<Vec<Vec<T>>, RuntimeError> {
        self.run_layers_from(params, &mut Source::Ready(input), output)
    }

    /// The forward pass from `input`. A sub-lattice network leaves each stencil's output
    /// pending and completes its halo in the stencil that reads it, overlapped with that
    /// stencil's interior sites (`lattice_net/overlap.rs`); a `Pending` input is completed the
    /// same way. Every value returned has its halo complete.
    fn run_layers_from(
        &self,
        params: &[T],
        input: &mut Source<'_, T>,
        output: bool,
    ) -> Result<Vec<Vec<T>>, RuntimeError> {
        let n = self.graph.values.len();
        let mut vals: Vec<Vec<T>> = vec![Vec::new(); n];
        // Layer outputs whose halo is still to be exchanged (the input's state is `input`'s).
        let mut pending = vec![false; n];
        // Runs `complete` on value i if its halo is pending, which it then no longer is.
        fn settle<T, R>(
            input: &mut Source<'_, T>,
            vals: &mut [Vec<T>],
            pending: &mut [bool],
            i: usize,
            complete: impl FnOnce(&mut [T]) -> Result<R, RuntimeError>,
        ) -> Option<Result<R, RuntimeError>> {
            if i == 0 {
                input.settle(complete)
            } else {
                std::mem::take(&mut pending[i]).then(|| complete(&mut vals[i]))
            }
        }
        let defer = self.defers_halo();
        for (l, exec) in self.graph.layers.iter().zip(&self.layers) {
            if !output
                && l.output == self.graph.output
                && !self.graph.layers.iter().any(|m| m.inputs.contains(&l.output))
            {
                continue;
            }
            // A residual add or a norm gate works on every slot, halo included: a pending
            // operand is completed first.
            if !matches!(exec, LayerExec::Stencil(_)) {
                for v in &l.inputs {
                    let done =
                        settle(input, &mut vals, &mut pending, v.index(), |b| self.refresh(b));
                    done.transpose()?;
                }
            }
            let xi = l.inputs[0].index();
            let y = match exec {
                LayerExec::Stencil(s) => {
                    let w = self.weight_buffer(s, self.param_slice(s.param, params), false);
                    // The network's output is read by no stencil: its ghosts stay unfilled.
                    let ghosts = l.output != self.graph.output;
                    let (id, tab, n_out) = (s.kernels.fwd, &s.fwd_tab, s.kernels.n_out);
                    let overlapped = settle(input, &mut vals, &mut pending, xi, |x| {
                        self.run_stencil_overlapped(id, tab, x, n_out, &w)
                    });
                    let y = match overlapped {
                        Some(y) => y?,
                        None => {
                            let x = if xi == 0 { input.get() } else { &vals[xi][..] };
                            self.run_stencil(id, tab, x, n_out, &w, ghosts && !defer)?
                        }
                    };
                    pending[l.output.index()] = ghosts && defer;
                    y
                }
                LayerExec::Add(k) => {
                    let get = |i: usize| if i == 0 { input.get() } else { &vals[i][..] };
                    let b = get(l.inputs[1].index());
                    let mut out = self.field_buffer(self.graph.features(l.output));
                    self.kernels.kernel(*k).call_parallel(
                        &mut [Arg::ro(get(xi)), Arg::ro(b), Arg::rw(&mut out)],
                        64,
                    )?;
                    out
                }
                LayerExec::NormGate => {
                    let x = if xi == 0 { input.get() } else { &vals[xi][..] };
                    norm_gate_aosoa(x, self.layout.lanes, false, None)
                }
            };
            vals[l.output.index()] = y;
        }
        // Values no later layer of this pass read (the output layer's input when it was
        // skipped): the backward pass reads them along paths.
        for i in 0..n {
            settle(input, &mut vals, &mut pending, i, |b| self.refresh(b)).transpose()?;
        }
        Ok(vals)
    }

    /// Evaluate the network on buffers in its own AoSoA layout (one feature out, as a
    /// preconditioner gives; `n` features in, one after the other, `n` = 2 for the smoother of a
    /// multigrid network): `input` holds at least `n` × [`SiteLayout::field_len`] scalars, its
    /// ghost slots are refilled here; the main part of `output` receives M input. This is the path a
    /// solver working in the kernels' layout uses: no conversion at all.
    pub fn forward_aosoa(
        &self,
        params: &[T],
        input: &mut [T],
        output: &mut [T],
    ) -> Result<(), RuntimeError> {
        self.check_params(params.len())?;
        let len = self.layout.field_len();
        let main = self.layout.outer_volume * FIELD_COMPONENTS * self.layout.lanes;
        let (fin, fout) =
            (self.graph.features(crate::ir::ValueId(0)), self.graph.features(self.graph.output));
        if fin == 0 || fout != 1 || input.len() < fin * len || output.len() < main {
            return Err(RuntimeError::Shape(format!(
                "forward_aosoa: model `{}` maps {fin} -> {fout} features; buffers of {} and {} \
                 scalars given, one feature needs {len}",
                self.graph.name,
                input.len(),
                output.len()
            )));
        }
        let input = &mut input[..fin * len];
        // A sub-lattice network completes the input's halo in its first stencil, overlapped
        // with that stencil's interior sites.
        let mut input = self.input_source(input)?;
        let vals = self.run_layers_from(params, &mut input, true)?;
        let input = input.get();
        match vals.get(self.graph.output.index()) {
            Some(y) if self.graph.output.index() != 0 => output[..main].copy_from_slice(&y[..main]),
            _ => output[..main].copy_from_slice(&input[..main]),
        }
        vals.into_iter().for_each(|v| self.recycle(v));
        Ok(())
    }

    /// Evaluate the network: `input` and `output` in the reference layout (features × sites × 12).
    pub fn forward(
        &self,
        params: &[T],
        input: &[Complex<T>],
        output: &mut [Complex<T>],
    ) -> Result<(), RuntimeError> {
        self.check_params(params.len())?;
        self.check_field("input", input.len(), crate::ir::ValueId(0))?;
        self.check_field("output", output.len(), self.graph.output)?;
        let vals = self.run_forward(params, input)?;
        self.layout.from_aosoa(&vals[self.graph.output.index()], output);
        vals.into_iter().for_each(|v| self.recycle(v));
        Ok(())
    }
}

impl<T: Element> FermionNet<T> for LatticeNet<T> {
    fn graph(&self) -> &Graph {
        LatticeNet::graph(self)
    }
    fn forward(
        &self,
        params: &[T],
        input: &[Complex<T>],
        output: &mut [Complex<T>],
    ) -> Result<(), RuntimeError> {
        LatticeNet::forward(self, params, input, output)
    }
    fn forward_backward_seeded(
        &self,
        params: &[T],
        input: &[Complex<T>],
        seed: &mut dyn FnMut(&[Complex<T>], &mut [Complex<T>]),
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        LatticeNet::forward_backward(self, params, input, None, seed, None, grad_params)
    }
    fn forward_backward_native(
        &self,
        params: &[T],
        layout: &SiteLayout,
        input: &mut [T],
        seed: &mut dyn FnMut(&[T], &mut [T]),
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        if !self.layout().same_sites(layout) {
            return Err(RuntimeError::Shape(format!(
                "network `{}` lays out its sites differently from the operator's vectors",
                self.graph().name
            )));
        }
        let main = layout.main_len();
        let seed_main = |y: &[T], g: &mut [T]| seed(&y[..main], &mut g[..main]);
        self.forward_backward_aosoa(params, input, seed_main, None, grad_params)
    }
    fn loss_grad_native(
        &self,
        params: &[T],
        layout: &SiteLayout,
        input: &mut [T],
        target: &[T],
        grad_params: &mut [T],
    ) -> Result<f64, RuntimeError> {
        if !self.layout().same_sites(layout) {
            return Err(RuntimeError::Shape(format!(
                "network `{}` lays out its sites differently from the operator's vectors",
                self.graph().name
            )));
        }
        if target.len() >= layout.field_len() {
            return self.loss_grad_aosoa(params, input, target, grad_params);
        }
        let main = layout.main_len();
        let target = super::target_main(self.graph(), target, main)?;
        // Only the main part given: room for the ghosts the layout's features have.
        let mut t = self.field_buffer(1);
        t[..main].copy_from_slice(target);
        let loss = self.loss_grad_aosoa(params, input, &t, grad_params);
        self.recycle(t);
        loss
    }
    fn forward_native(
        &self,
        params: &[T],
        layout: &SiteLayout,
        input: &mut [T],
        output: &mut [T],
    ) -> Result<(), RuntimeError> {
        if !self.layout().same_sites(layout) {
            return Err(RuntimeError::Shape(format!(
                "network `{}` lays out its sites differently from the solver's vectors",
                self.graph().name
            )));
        }
        self.forward_aosoa(params, input, output)
    }
    fn native_buffer_len(&self) -> usize {
        self.layout().field_len()
    }
}

/// Norm gate on AoSoA buffers (ghost slots included, so ghosts stay consistent): forward
/// psi sigmoid(n) or, with `grad`, the input gradient g sigmoid(n) + 2 sigmoid'(n) Re<psi,g> psi.
fn norm_gate_aosoa<T: Element>(
    x: &[T],
    lanes: usize,
    backward: bool,
    grad: Option<&[T]>,
) -> Vec<T> {
    let slot = FIELD_COMPONENTS * lanes;
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(slot).enumerate().for_each(|(si, o)| {
        let xs = &x[si * slot..(si + 1) * slot];
        for k in 0..lanes {
            let n: T = (0..FIELD_COMPONENTS).map(|q| xs[q * lanes + k] * xs[q * lanes + k]).sum();
            let sg = T::one() / (T::one() + (-n).exp());
            if backward {
                let g = &grad.expect("backward has a gradient")[si * slot..(si + 1) * slot];
                let re: T =
                    (0..FIELD_COMPONENTS).map(|q| xs[q * lanes + k] * g[q * lanes + k]).sum();
                let f = (T::one() + T::one()) * sg * (T::one() - sg) * re;
                for q in 0..FIELD_COMPONENTS {
                    o[q * lanes + k] = g[q * lanes + k] * sg + xs[q * lanes + k] * f;
                }
            } else {
                for q in 0..FIELD_COMPONENTS {
                    o[q * lanes + k] = xs[q * lanes + k] * sg;
                }
            }
        }
    });
    out
}

/// The buffers of a stencil kernel call: `[input, output, matrices, neighbours, weights]`.
fn stencil_args<'a, T: Element>(
    input: &'a [T],
    out: &'a mut [T],
    tab: &'a PathTables<T>,
    weights: &'a [T],
) -> [Arg<'a>; 5] {
    [
        Arg::ro(input),
        Arg::rw(out),
        Arg::ro(&tab.matrices),
        Arg::ro(&tab.neighbours),
        Arg::ro(weights),
    ]
}
