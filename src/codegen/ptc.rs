//! Emitters for the gauge-equivariant stencil layers: PTC (global or site-local spin weights),
//! `linear` (the zero-hop PTC), weightless parallel transport, and the backward passes of all
//! of them.
//!
//! **One stencil form covers forward and input-backward.** Every kernel computes
//! `out_i(x) = sum_terms M_t(x) (x) V_p(x) in_j(x + Delta_p)` with `M_t` a 4x4 complex spin
//! matrix (or the identity for transport) and `V_p` a precomputed 3x3 path transport. The input
//! gradient of such a layer has the same form with inverse paths (`V'_p(y) = V_p(y - Delta)^dagger`,
//! neighbour `y - Delta`), conjugate-transposed weights and the roles of i and j swapped, so the
//! same emitter serves both; only the tables and the weight buffer differ (built by
//! `runtime::lattice_net`). Spin and colour act on different indices, so `M (x) V` commute and the
//! transport can come first.
//!
//! **Per outer site** (4 sites in f32x4 lanes, 2 in f64x2): phase 1 transports each distinct
//! (input feature, path) pair once into a stack buffer (`chi`, one slot per group, L1 resident:
//! phase 2 reads it as FMA memory operands); phase 2 accumulates, per output feature and output
//! spin, the 3 colour components over all terms and input spins, so only 6 accumulators are live
//! (no spills with 16 xmm registers), then stores them. The weight-gradient kernel recomputes
//! `chi` the same way and accumulates the colour-traced outer products `left_i chi^dagger`.
//!
//! **Loops, not unrolling, over paths and groups.** A weighted layer's transports run as a loop
//! over path slots and its phase 2 and outer products as loops over groups, with bodies of a
//! few hundred instructions. Fully unrolled, one 1h1l site was 8,000 instructions (≈ 50 KB):
//! more than the core's micro-op cache and L1 instruction cache, so the kernels ran at the legacy
//! decoders' rate (about 3 instructions per cycle, half the FMA-pipe bound); looped, the hot code
//! stays in the micro-op cache and the same kernels run 1.4–1.9× faster (a training step
//! 1.3–1.7×; BENCHMARKS.md). The products and their
//! order are unchanged, so are the numbers.

use super::complex::{Cx, Emit};
use super::jit::{BufSpec, HostFeatures, Jit, JitError, KernelId, KernelSpec};
use super::lattice_layout::{FIELD_COMPONENTS, MATRIX_COMPONENTS};
use super::loops::{for_count, for_range};
use super::plan::{KernelPlan, Pass, Strategy};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Type, Value, types,
};
use cranelift_frontend::{FunctionBuilder, Variable};

/// One summand of a stencil: output feature, (input feature, path) group, optional weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Term {
    pub out: usize,
    pub group: usize,
    /// Index into the weight buffer; `None` is the identity (weightless transport).
    pub weight: Option<usize>,
}

/// Everything a stencil kernel is specialised for.
#[derive(Clone, Debug)]
pub struct StencilDesc {
    pub name: String,
    pub n_in: usize,
    pub n_out: usize,
    /// Per path slot: true for the zero-hop identity (no table lookup, no matrix).
    pub identity: Vec<bool>,
    /// Distinct (input feature, path slot) pairs, each transported once per site.
    pub groups: Vec<(usize, usize)>,
    pub terms: Vec<Term>,
    pub n_weights: usize,
    /// Site-dependent weights (`[w][outer][16][re/im][lane]`) instead of global ones.
    pub local: bool,
    /// Main outer sites (work items of the forward kernel).
    pub outer_volume: usize,
    /// Slots per feature buffer (main + ghosts).
    pub ext_slots: usize,
    pub lanes: usize,
    pub vector: Type,
}

/// Outer sites per work item of the global weight-gradient kernel (each item owns one partial sum).
pub const GRAD_CHUNK: usize = 32;

impl StencilDesc {
    fn sz(&self) -> usize {
        self.vector.lane_type().bytes() as usize
    }
    pub fn slot_bytes(&self) -> usize {
        FIELD_COMPONENTS * self.lanes * self.sz()
    }
    pub fn feature_bytes(&self) -> usize {
        self.ext_slots * self.slot_bytes()
    }
    pub fn matrix_bytes(&self) -> usize {
        MATRIX_COMPONENTS * self.lanes * self.sz()
    }
    /// Bytes of one 4x4 complex weight (per site for local weights).
    pub fn weight_bytes(&self) -> usize {
        32 * self.lanes * self.sz()
    }
    pub fn weights_total_bytes(&self) -> usize {
        self.n_weights * self.weight_bytes() * if self.local { self.outer_volume } else { 1 }
    }
    pub fn n_paths(&self) -> usize {
        self.identity.len()
    }
    /// Work items of the weight-gradient kernel.
    pub fn grad_items(&self) -> usize {
        if self.local { self.outer_volume } else { self.outer_volume.div_ceil(GRAD_CHUNK) }
    }
    /// Bytes of the weight-gradient output buffer (per-chunk partial sums for global weights).
    pub fn grad_bytes(&self) -> usize {
        if self.local {
            self.weights_total_bytes()
        } else {
            self.grad_items() * self.n_weights * self.weight_bytes()
        }
    }

    fn common_buffers(&self) -> Vec<BufSpec> {
        vec![
            BufSpec {
                name: "input".into(),
                bytes: self.n_in * self.feature_bytes(),
                writable: false,
            },
            BufSpec {
                name: "output".into(),
                bytes: self.n_out * self.feature_bytes(),
                writable: true,
            },
            BufSpec {
                name: "matrices".into(),
                bytes: self.n_paths() * self.outer_volume * self.matrix_bytes(),
                writable: false,
            },
            BufSpec {
                name: "neighbours".into(),
                bytes: self.outer_volume * self.n_paths() * 4,
                writable: false,
            },
        ]
    }

    /// Floating-point operations of one application of the stencil over the lattice.
    pub fn flops(&self) -> f64 {
        let transports = self.groups.iter().filter(|g| !self.identity[g.1]).count() as f64;
        let weighted = self.terms.iter().filter(|t| t.weight.is_some()).count() as f64;
        let plain = self.terms.len() as f64 - weighted;
        let per_outer = transports * 4.0 * 66.0 + weighted * 4.0 * 4.0 * 3.0 * 8.0 + plain * 24.0;
        per_outer * (self.outer_volume * self.lanes) as f64
    }

    pub fn grad_flops(&self) -> f64 {
        let transports = self.groups.iter().filter(|g| !self.identity[g.1]).count() as f64;
        let weighted = self.terms.iter().filter(|t| t.weight.is_some()).count() as f64;
        (transports * 4.0 * 66.0 + weighted * 16.0 * 3.0 * 8.0)
            * (self.outer_volume * self.lanes) as f64
    }

    /// The fused training kernel of the output layer: the forward stencil, the loss seed
    /// (3 flops per real component) and the weight-gradient outer products.
    pub fn loss_grad_flops(&self) -> f64 {
        let weighted = self.terms.iter().filter(|t| t.weight.is_some()).count() as f64;
        let seed = (self.n_out * FIELD_COMPONENTS * 3) as f64;
        self.flops()
            + (weighted * 16.0 * 3.0 * 8.0 + seed) * (self.outer_volume * self.lanes) as f64
    }

    /// Bytes touched per application with no reuse between sites.
    pub fn bytes(&self) -> f64 {
        let v = (self.outer_volume * self.lanes) as f64;
        let sz = self.sz() as f64;
        let paths = self.groups.len() as f64;
        (paths * 24.0 + self.n_out as f64 * 24.0 + self.n_paths() as f64 * 18.0) * sz * v
            + self.weights_total_bytes() as f64
    }
}

/// Byte offset of complex component (spin, colour) within a field slot, relative to its re vector.
fn comp(e: &Emit, s: usize, c: usize) -> i32 {
    2 * (s * 3 + c) as i32 * e.vbytes
}

/// Where the transported field `chi` of one group lives for the current site.
#[derive(Clone, Copy)]
struct ChiRef {
    ptr: Value,
    off: i32,
}

/// Phase 1: transport every group of the site `o` (byte offset `o_slot` of its slot) into the
/// stack buffer; identity groups point straight into the input.
#[allow(clippy::too_many_arguments)]
fn emit_transports(
    e: &mut Emit,
    d: &StencilDesc,
    input: Value,
    mats: Value,
    nbr: Value,
    stack: Value,
    o: Value,
    o_slot: Value,
) -> Vec<ChiRef> {
    let np = d.n_paths();
    let nbr_row = {
        let off = e.b.ins().imul_imm_s(o, (np * 4) as i64);
        e.b.ins().iadd(nbr, off)
    };
    let o_mat = e.b.ins().imul_imm_s(o, d.matrix_bytes() as i64);
    let mat_stride = (d.outer_volume * d.matrix_bytes()) as i64;
    let slot = d.slot_bytes() as i64;
    let mut chis = Vec::with_capacity(d.groups.len());
    // Groups (j, p) in feature-major order: per feature, every run of consecutive transported
    // path slots is one loop (the body transports one path), which keeps the code small (see
    // `emit_phase2_looped`); other group lists are unrolled.
    let by_feature = d.groups.iter().enumerate().all(|(g, &(j, p))| j == g / np && p == g % np);
    let mut g = 0;
    while g < d.groups.len() {
        let (j, ps) = d.groups[g];
        let in_j = e.b.ins().iadd_imm_s(input, (j * d.feature_bytes()) as i64);
        if d.identity[ps] {
            // Copied into its slot, so that every chi lies on the stack, one slot apart: the
            // loops over groups then advance one pointer, and phase 2 reads every chi
            // through the two opaque pointer copies `q` (each load folds into its `vmulps`).
            let src = e.b.ins().iadd(in_j, o_slot);
            let off = (g * d.slot_bytes()) as i32;
            for k in 0..FIELD_COMPONENTS as i32 {
                let v = e.load(src, k * e.vbytes);
                e.store(v, stack, off + k * e.vbytes);
            }
            chis.push(ChiRef { ptr: stack, off });
            g += 1;
            continue;
        }
        let run = if by_feature { (ps..np).take_while(|&p| !d.identity[p]).count() } else { 1 };
        let mat = e.b.ins().iadd_imm_s(mats, ps as i64 * mat_stride);
        let mat = e.b.ins().iadd(mat, o_mat);
        let nbr_p = e.b.ins().iadd_imm_s(nbr_row, (ps * 4) as i64);
        let dst = e.b.ins().iadd_imm_s(stack, g as i64 * slot);
        let (ty, host) = (e.ty, e.host);
        let [mv, nv, dv] = [0; 3].map(|_| e.b.declare_var(types::I64));
        e.b.def_var(mv, mat);
        e.b.def_var(nv, nbr_p);
        e.b.def_var(dv, dst);
        for_count(e.b, run, &mut |b, _| {
            let mut e = Emit::new(b, ty, host);
            let (mat, nbr_p, dst) = (e.b.use_var(mv), e.b.use_var(nv), e.b.use_var(dv));
            let noff = e.b.ins().sload32(MemFlagsData::trusted(), nbr_p, 0);
            let src = e.b.ins().iadd(in_j, noff);
            for s in 0..4 {
                let v = [0, 1, 2].map(|c| {
                    let off = comp(&e, s, c);
                    e.load_cx(src, off)
                });
                // One row at a time, stored at once: keeps 6 matrix vectors live, not 18.
                for c in 0..3 {
                    let z = e.su3_row(mat, 0, c, &v, false);
                    let off = comp(&e, s, c);
                    e.store_cx(z, dst, off);
                }
            }
            let next = e.b.ins().iadd_imm_s(mat, mat_stride);
            e.b.def_var(mv, next);
            let next = e.b.ins().iadd_imm_s(nbr_p, 4);
            e.b.def_var(nv, next);
            let next = e.b.ins().iadd_imm_s(dst, slot);
            e.b.def_var(dv, next);
        });
        for k in 0..run {
            chis.push(ChiRef { ptr: stack, off: ((g + k) * d.slot_bytes()) as i32 });
        }
        g += run;
    }
    chis
}

/// `acc + w * x` with `x` at `off` behind the stack-pointer copies `q`: every product is one
/// `vmulps` with its `x` vector folded in as the memory operand (two pure loads per vector, one
/// through each copy, so they are not merged into one register value) plus an add, so the
/// reused weight needs no register copies.
fn cmac_folded(e: &mut Emit, acc: Option<Cx>, w: Cx, q: [Value; 2], off: i32) -> Cx {
    let vb = e.vbytes;
    let xr0 = e.load_pure(q[0], off);
    let p = e.mul(w.re, xr0);
    let re = match acc {
        Some(a) => e.add(a.re, p),
        None => p,
    };
    let xi0 = e.load_pure(q[0], off + vb);
    let p = e.mul(w.im, xi0);
    let re = e.sub(re, p);
    let xi1 = e.load_pure(q[1], off + vb);
    let p = e.mul(w.re, xi1);
    let im = match acc {
        Some(a) => e.add(a.im, p),
        None => p,
    };
    let xr1 = e.load_pure(q[1], off);
    let p = e.mul(w.im, xr1);
    let im = e.add(im, p);
    Cx { re, im }
}

/// Force the accumulators' arithmetic to be emitted now (see [`Emit::barrier`]) and renew the
/// two stack-pointer copies `q` (the dead edge gets the decoy region, or the stack itself once
/// `q` are already copies).
fn barrier_acc_q(
    e: &mut Emit,
    acc: [Option<Cx>; 3],
    q: [Value; 2],
    stack: Value,
    decoy: Value,
) -> ([Option<Cx>; 3], [Value; 2]) {
    let live: Vec<Cx> = acc.iter().flatten().copied().collect();
    let zero = e.zero();
    let mut vals: Vec<Value> = live.iter().flat_map(|z| [z.re, z.im]).collect();
    let mut alt = vec![zero; vals.len()];
    vals.extend(q);
    alt.extend(q.map(|p| if p == stack { decoy } else { stack }));
    let out = e.barrier_with(&vals, &alt);
    let n = 2 * live.len();
    let mut it = out[..n].chunks(2).map(|c| Cx { re: c[0], im: c[1] });
    let acc = acc.map(|a| a.and_then(|_| it.next()));
    (acc, [out[n], out[n + 1]])
}

/// Bytes of the transported fields on the stack: group g at `g` × slot (an identity group's
/// slot holds its copy). Every stack address a kernel forms is a group's slot plus an offset
/// within the slot, so it stays below this (the stack is outside the kernel spec's bounds
/// proof, which is why it is laid out by group index alone).
fn stack_bytes(d: &StencilDesc) -> u32 {
    (d.groups.len().max(1) * d.slot_bytes()) as u32
}

fn load_args(b: &mut FunctionBuilder, args: Value, n: usize) -> Vec<Value> {
    (0..n)
        .map(|k| b.ins().load(types::I64, MemFlagsData::trusted(), args, (k * 8) as i32))
        .collect()
}

/// The buffers a stencil site reads.
#[derive(Clone, Copy)]
struct StencilBufs {
    input: Value,
    mats: Value,
    nbr: Value,
    weights: Value,
}

/// Where phase 2 puts each output component.
#[derive(Clone, Copy)]
enum Sink {
    /// The layer's output.
    Store { output: Value },
    /// The gradient of the loss ‖out − target‖², 2 (out − target), instead of the output
    /// (which the training step never needs): the seed of the backward pass.
    LossGrad { target: Value, gout: Value },
}

impl Sink {
    /// The sink of output feature `i` at the site whose slot is at byte `o_slot`.
    fn at(self, e: &mut Emit, d: &StencilDesc, i: usize, o_slot: Value) -> Sink {
        let feature = |e: &mut Emit, base: Value| {
            let p = e.b.ins().iadd_imm_s(base, (i * d.feature_bytes()) as i64);
            e.b.ins().iadd(p, o_slot)
        };
        match self {
            Sink::Store { output } => Sink::Store { output: feature(e, output) },
            Sink::LossGrad { target, gout } => {
                Sink::LossGrad { target: feature(e, target), gout: feature(e, gout) }
            }
        }
    }
}

/// Phase 2's result for output spin `so` (the 3 colour accumulators; `None` is 0) into the
/// feature's sink ([`Sink::at`]).
fn emit_sink(e: &mut Emit, sink: Sink, so: usize, acc: [Option<Cx>; 3]) {
    for (c, a) in acc.iter().enumerate() {
        let z = match a {
            Some(z) => *z,
            None => {
                let z = e.zero();
                Cx { re: z, im: z }
            }
        };
        let off = comp(e, so, c);
        match sink {
            Sink::Store { output } => e.store_cx(z, output, off),
            Sink::LossGrad { target, gout } => {
                // 2 (out − target) as d + d: exactly the f32 value the loss seed
                // `2.0 * (o - t)` gives on the host.
                let t = e.load_cx(target, off);
                let dz = e.csub(z, t);
                let g = e.cadd(dz, dz);
                e.store_cx(g, gout, off);
            }
        }
    }
}

/// True when term k reads group k mod G with weight k (so output k / G), G the number of
/// groups: the form of every weighted PTC layer's forward and input-backward stencil
/// (`codegen::lattice_net::stencil_descs`), whose phase 2 then runs as a loop over the groups.
fn regular(d: &StencilDesc) -> bool {
    let g = d.groups.len();
    g > 0
        && d.terms.len() == d.n_out * g
        && d.terms
            .iter()
            .enumerate()
            .all(|(k, t)| t.out == k / g && t.group == k % g && t.weight == Some(k))
}

/// Phase 2 of a [`regular`] stencil as a loop over the G groups per (output feature, output
/// spin): the same products in the same order as the unrolled form, so the same numbers, but
/// a loop body of about a hundred instructions instead of G times that. Unrolled, a PTC
/// site's code (8,000 instructions for 1h1l) is larger than the core's micro-op cache and
/// L1 instruction cache, and the kernel runs at the legacy decoders' rate; looped, the hot
/// code stays in the micro-op cache. The chi vectors are read through two pointer copies
/// (`q`, loop variables advanced separately), so that each load has one use and folds into its
/// `vmulps` (see [`cmac_folded`]).
fn emit_phase2_looped(
    e: &mut Emit,
    d: &StencilDesc,
    weights: Value,
    stack: Value,
    o: Value,
    o_slot: Value,
    sink: Sink,
) {
    let (ty, host) = (e.ty, e.host);
    let n_groups = d.groups.len();
    let slot = d.slot_bytes() as i64;
    // Consecutive terms' weights: the next global weight, or the next tensor's entry at this site.
    let wstride = if d.local { d.outer_volume * d.weight_bytes() } else { d.weight_bytes() } as i64;
    let w_site = d.local.then(|| e.b.ins().imul_imm_s(o, d.weight_bytes() as i64));
    for i in 0..d.n_out {
        let sink_i = sink.at(e, d, i, o_slot);
        let w0 = e.b.ins().iadd_imm_s(weights, (i * n_groups) as i64 * wstride);
        let w0 = match w_site {
            Some(ws) => e.b.ins().iadd(w0, ws),
            None => w0,
        };
        for so in 0..4 {
            let acc_vars: Vec<[Variable; 2]> =
                (0..3).map(|_| [e.b.declare_var(ty), e.b.declare_var(ty)]).collect();
            let [q0, q1, wp] = [0; 3].map(|_| e.b.declare_var(types::I64));
            let zero = e.zero();
            for v in acc_vars.iter().flatten() {
                e.b.def_var(*v, zero);
            }
            e.b.def_var(q0, stack);
            e.b.def_var(q1, stack);
            e.b.def_var(wp, w0);
            for_count(e.b, n_groups, &mut |b, _| {
                let mut e = Emit::new(b, ty, host);
                let q = [e.b.use_var(q0), e.b.use_var(q1)];
                let w_t = e.b.use_var(wp);
                let mut acc: [Option<Cx>; 3] = [0, 1, 2].map(|c| {
                    let [re, im] = acc_vars[c];
                    Some(Cx { re: e.b.use_var(re), im: e.b.use_var(im) })
                });
                for si in 0..4 {
                    let woff = 2 * (so * 4 + si) as i32 * e.vbytes;
                    let w = e.load_cx(w_t, woff);
                    for (c, a) in acc.iter_mut().enumerate() {
                        let off = comp(&e, si, c);
                        *a = Some(cmac_folded(&mut e, *a, w, q, off));
                    }
                }
                for (c, a) in acc.iter().enumerate() {
                    let z = a.expect("accumulated");
                    e.b.def_var(acc_vars[c][0], z.re);
                    e.b.def_var(acc_vars[c][1], z.im);
                }
                let next = [q[0], q[1]].map(|p| e.b.ins().iadd_imm_s(p, slot));
                e.b.def_var(q0, next[0]);
                e.b.def_var(q1, next[1]);
                let wn = e.b.ins().iadd_imm_s(w_t, wstride);
                e.b.def_var(wp, wn);
            });
            let acc = [0, 1, 2].map(|c| {
                let [re, im] = acc_vars[c];
                Some(Cx { re: e.b.use_var(re), im: e.b.use_var(im) })
            });
            emit_sink(e, sink_i, so, acc);
        }
    }
}

/// Both phases of the stencil at outer site `o` (`e.opaque_true` set for this site), the
/// result going to `sink`. Returns where the transported fields lie: all on the stack, where
/// the fused loss kernel's weight-gradient products read them again.
fn emit_stencil_site(
    e: &mut Emit,
    d: &StencilDesc,
    bufs: StencilBufs,
    stack: Value,
    decoy: Value,
    o: Value,
    sink: Sink,
) -> Vec<ChiRef> {
    let StencilBufs { input, mats, nbr, weights } = bufs;
    let o_slot = e.b.ins().imul_imm_s(o, d.slot_bytes() as i64);
    let chis = emit_transports(e, d, input, mats, nbr, stack, o, o_slot);
    if regular(d) {
        emit_phase2_looped(e, d, weights, stack, o, o_slot, sink);
        return chis;
    }
    let mut q = {
        let v = e.barrier_with(&[stack, stack], &[decoy, decoy]);
        [v[0], v[1]]
    };
    let o_w = if d.local { Some(e.b.ins().imul_imm_s(o, d.weight_bytes() as i64)) } else { None };
    for i in 0..d.n_out {
        let sink_i = sink.at(e, d, i, o_slot);
        let terms: Vec<Term> = d.terms.iter().copied().filter(|t| t.out == i).collect();
        // Weight base pointers do not depend on the spin: compute them once per term.
        let wptrs: Vec<Option<Value>> = terms
            .iter()
            .map(|t| {
                t.weight.map(|w| match o_w {
                    Some(ow) => {
                        let p = e
                            .b
                            .ins()
                            .iadd_imm_s(weights, (w * d.outer_volume * d.weight_bytes()) as i64);
                        e.b.ins().iadd(p, ow)
                    }
                    None => e.b.ins().iadd_imm_s(weights, (w * d.weight_bytes()) as i64),
                })
            })
            .collect();
        for so in 0..4 {
            let mut acc: [Option<Cx>; 3] = [None; 3];
            for (t, wp) in terms.iter().zip(&wptrs) {
                let chi = chis[t.group];
                match wp {
                    None => {
                        for (c, a) in acc.iter_mut().enumerate() {
                            let off = chi.off + comp(e, so, c);
                            let x = Cx {
                                re: e.load_pure(q[0], off),
                                im: e.load_pure(q[0], off + e.vbytes),
                            };
                            *a = Some(match *a {
                                None => x,
                                Some(a) => e.cadd(a, x),
                            });
                        }
                        (acc, q) = barrier_acc_q(e, acc, q, stack, decoy);
                    }
                    Some(wp) => {
                        for si in 0..4 {
                            let woff = 2 * (so * 4 + si) as i32 * e.vbytes;
                            let w = e.load_cx(*wp, woff);
                            for (c, a) in acc.iter_mut().enumerate() {
                                let off = chi.off + comp(e, si, c);
                                *a = Some(cmac_folded(e, *a, w, q, off));
                            }
                            (acc, q) = barrier_acc_q(e, acc, q, stack, decoy);
                        }
                    }
                }
            }
            emit_sink(e, sink_i, so, acc);
        }
    }
    chis
}

/// The weight-gradient products of outer site `o`: for every weighted term, the
/// colour-traced outer product `left_i chi^dagger` added to its 4x4 entry under `gbase`
/// (`grad`'s partial sum of this chunk, or the site's own entry for local weights).
fn emit_wgrad_products(
    e: &mut Emit,
    d: &StencilDesc,
    chis: &[ChiRef],
    left: Value,
    o: Value,
    gbase: Value,
) {
    let o_slot = e.b.ins().imul_imm_s(o, d.slot_bytes() as i64);
    // Consecutive weights of a regular desc: the next partial-sum entry, or the next tensor's
    // entry at this site.
    let wstride = if d.local { d.outer_volume * d.weight_bytes() } else { d.weight_bytes() } as i64;
    let gw_base = if d.local {
        let ow = e.b.ins().imul_imm_s(o, d.weight_bytes() as i64);
        e.b.ins().iadd(gbase, ow)
    } else {
        gbase
    };
    // One loop over the groups per output feature when the desc is regular (all chis on the
    // stack one slot apart, weight k for term k); one unrolled block per term otherwise.
    let runs: Vec<(usize, usize)> = if regular(d) {
        let g = d.groups.len();
        (0..d.n_out).map(|i| (i * g, g)).collect()
    } else {
        (0..d.terms.len()).filter(|&k| d.terms[k].weight.is_some()).map(|k| (k, 1)).collect()
    };
    let (ty, host) = (e.ty, e.host);
    let slot = d.slot_bytes() as i64;
    for (k0, count) in runs {
        let t = d.terms[k0];
        let w = t.weight.expect("weighted term");
        let chi = chis[t.group];
        let left_i = e.b.ins().iadd_imm_s(left, (t.out * d.feature_bytes()) as i64);
        let left_i = e.b.ins().iadd(left_i, o_slot);
        let gw = e.b.ins().iadd_imm_s(gw_base, w as i64 * wstride);
        let chi_p = e.b.ins().iadd_imm_s(chi.ptr, chi.off as i64);
        let [gv, cv] = [0; 2].map(|_| e.b.declare_var(types::I64));
        e.b.def_var(gv, gw);
        e.b.def_var(cv, chi_p);
        for_count(e.b, count, &mut |b, _| {
            let mut e = Emit::new(b, ty, host);
            let (gw, chi_p) = (e.b.use_var(gv), e.b.use_var(cv));
            for s in 0..4 {
                let lv = [0, 1, 2].map(|c| {
                    let off = comp(&e, s, c);
                    e.load_cx(left_i, off)
                });
                for s2 in 0..4 {
                    let goff = 2 * (s * 4 + s2) as i32 * e.vbytes;
                    let mut g = if d.local {
                        let z = e.zero();
                        Cx { re: z, im: z }
                    } else {
                        e.load_cx(gw, goff)
                    };
                    for (c, l) in lv.iter().enumerate() {
                        let off = comp(&e, s2, c);
                        let x = e.load_cx(chi_p, off);
                        g = e.cmac_rconj(g, *l, x);
                    }
                    e.store_cx(g, gw, goff);
                }
            }
            let next = e.b.ins().iadd_imm_s(gw, wstride);
            e.b.def_var(gv, next);
            let next = e.b.ins().iadd_imm_s(chi_p, slot);
            e.b.def_var(cv, next);
        });
    }
}

/// The stack slot of a stencil kernel: the phase-2 region, then a decoy region of the same
/// size that only the never-taken barrier edges point at. Returns (stack, decoy).
fn stencil_stack(b: &mut FunctionBuilder, d: &StencilDesc, ptr_ty: Type) -> (Value, Value) {
    let region = stack_bytes(d);
    let ss =
        b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 2 * region, 4));
    let stack = b.ins().stack_addr(ptr_ty, ss, 0);
    let decoy = b.ins().stack_addr(ptr_ty, ss, region as i32);
    (stack, decoy)
}

/// Define the stencil kernel (forward, or input-backward with transformed tables). Buffers:
/// `[input, output, matrices, neighbours, weights]`; items = main outer sites.
pub fn define_stencil(jit: &mut Jit, d: &StencilDesc) -> Result<KernelId, JitError> {
    let mut buffers = d.common_buffers();
    buffers.push(BufSpec {
        name: "weights".into(),
        bytes: d.weights_total_bytes(),
        writable: false,
    });
    let spec = KernelSpec { name: d.name.clone(), buffers, items: d.outer_volume, parallel: true };
    let ptr_ty = jit.ptr_type();
    jit.define(spec, |b, [args, start, end], host: HostFeatures| {
        let a = load_args(b, args, 5);
        let bufs = StencilBufs { input: a[0], mats: a[2], nbr: a[3], weights: a[4] };
        let (stack, decoy) = stencil_stack(b, d, ptr_ty);
        for_range(b, start, end, |b, o| {
            let mut e = Emit::new(b, d.vector, host);
            e.opaque_true = Some(e.b.ins().icmp(IntCC::SignedLessThan, o, end));
            emit_stencil_site(&mut e, d, bufs, stack, decoy, o, Sink::Store { output: a[1] });
        });
        b.ins().return_(&[]);
    })
}

/// The output's main sites and the chunk of outer sites `c` covers (`[lo, hi)`), for the
/// chunked weight-gradient kernels; `gbase` is the chunk's partial sum.
fn chunk_range(b: &mut FunctionBuilder, d: &StencilDesc, grad: Value, c: Value) -> [Value; 3] {
    let part = b.ins().imul_imm_s(c, (d.n_weights * d.weight_bytes()) as i64);
    let gbase = b.ins().iadd(grad, part);
    let lo = b.ins().imul_imm_s(c, GRAD_CHUNK as i64);
    let hi = b.ins().iadd_imm_s(lo, GRAD_CHUNK as i64);
    let vo = b.ins().iconst(types::I64, d.outer_volume as i64);
    let hi = b.ins().smin(hi, vo);
    [gbase, lo, hi]
}

/// Define the weight-gradient kernel. Buffers: `[input, left, matrices, neighbours, grad]`.
/// Global weights: item c sums outer sites `c*GRAD_CHUNK..` into partial sum c
/// (`[c][w][16][re/im][lane]`, zeroed by the caller); local weights: item = outer site, written
/// in the local weight layout.
pub fn define_weight_grad(jit: &mut Jit, d: &StencilDesc) -> Result<KernelId, JitError> {
    let mut buffers = d.common_buffers();
    // The second buffer is the output gradient `left` (read-only) here.
    buffers[1] =
        BufSpec { name: "left".into(), bytes: d.n_out * d.feature_bytes(), writable: false };
    buffers.push(BufSpec { name: "grad".into(), bytes: d.grad_bytes(), writable: true });
    let spec = KernelSpec {
        name: format!("{}_wgrad", d.name),
        buffers,
        items: d.grad_items(),
        parallel: true,
    };
    let ptr_ty = jit.ptr_type();
    jit.define(spec, |b, [args, start, end], host: HostFeatures| {
        let a = load_args(b, args, 5);
        let (input, left, mats, nbr, grad) = (a[0], a[1], a[2], a[3], a[4]);
        let ss = b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            stack_bytes(d),
            4,
        ));
        let stack = b.ins().stack_addr(ptr_ty, ss, 0);
        let site_body = |b: &mut FunctionBuilder, o: Value, gbase: Value| {
            let mut e = Emit::new(b, d.vector, host);
            let o_slot = e.b.ins().imul_imm_s(o, d.slot_bytes() as i64);
            let chis = emit_transports(&mut e, d, input, mats, nbr, stack, o, o_slot);
            emit_wgrad_products(&mut e, d, &chis, left, o, gbase);
        };
        if d.local {
            for_range(b, start, end, |b, o| site_body(b, o, grad));
        } else {
            for_range(b, start, end, |b, c| {
                let [gbase, lo, hi] = chunk_range(b, d, grad, c);
                for_range(b, lo, hi, |b, o| site_body(b, o, gbase));
            });
        }
        b.ins().return_(&[]);
    })
}

/// Define the training step's fused kernel of the network's last layer (global weights): per
/// outer site the forward stencil, the loss seed 2 (out − target) written to `gout` in place of
/// the output, and the weight-gradient products from the transported fields still on the
/// stack, so the step transports the layer's input once instead of twice and never writes
/// its output. Buffers: `[input, target, matrices, neighbours, weights, grad, gout]`; items
/// and partial sums as [`define_weight_grad`]'s (`grad` zeroed by the caller); `gout`'s main
/// sites are written (its ghosts are the caller's).
pub fn define_loss_weight_grad(jit: &mut Jit, d: &StencilDesc) -> Result<KernelId, JitError> {
    assert!(!d.local, "the fused loss kernel sums global weights");
    let mut buffers = d.common_buffers();
    buffers[1] =
        BufSpec { name: "target".into(), bytes: d.n_out * d.feature_bytes(), writable: false };
    buffers.push(BufSpec {
        name: "weights".into(),
        bytes: d.weights_total_bytes(),
        writable: false,
    });
    buffers.push(BufSpec { name: "grad".into(), bytes: d.grad_bytes(), writable: true });
    buffers.push(BufSpec {
        name: "gout".into(),
        bytes: d.n_out * d.feature_bytes(),
        writable: true,
    });
    let spec = KernelSpec {
        name: format!("{}_loss_wgrad", d.name),
        buffers,
        items: d.grad_items(),
        parallel: true,
    };
    let ptr_ty = jit.ptr_type();
    jit.define(spec, |b, [args, start, end], host: HostFeatures| {
        let a = load_args(b, args, 7);
        let bufs = StencilBufs { input: a[0], mats: a[2], nbr: a[3], weights: a[4] };
        let (target, grad, gout) = (a[1], a[5], a[6]);
        let (stack, decoy) = stencil_stack(b, d, ptr_ty);
        for_range(b, start, end, |b, c| {
            let [gbase, lo, hi] = chunk_range(b, d, grad, c);
            for_range(b, lo, hi, |b, o| {
                let mut e = Emit::new(b, d.vector, host);
                e.opaque_true = Some(e.b.ins().icmp(IntCC::SignedLessThan, o, hi));
                let sink = Sink::LossGrad { target, gout };
                let chis = emit_stencil_site(&mut e, d, bufs, stack, decoy, o, sink);
                emit_wgrad_products(&mut e, d, &chis, gout, o, gbase);
            });
        });
        b.ins().return_(&[]);
    })
}

/// The plan record of a stencil kernel for `symc inspect`.
pub fn stencil_plan(
    layer: &str,
    d: &StencilDesc,
    pass: Pass,
    kernel: String,
    what: &str,
) -> KernelPlan {
    let grad = pass == Pass::BackwardParams;
    let loops = if grad && !d.local {
        vec![
            format!("for chunk in 0..{} (rayon, one partial sum per chunk)", d.grad_items()),
            format!("  for outer site in chunk ({GRAD_CHUNK} x {} lanes)", d.lanes),
            format!("    for (feature, path) in {} groups: transport into stack", d.groups.len()),
            format!("    for term in {}: 4x4 spin outer product, colour trace", d.terms.len()),
        ]
    } else {
        vec![
            format!(
                "for outer site in 0..{} (rayon, {} sites per vector)",
                d.outer_volume, d.lanes
            ),
            format!(
                "  for (feature, path) in {} groups: SU(3) transport of 4 spins into stack",
                d.groups.len()
            ),
            format!(
                "  for out feature in 0..{}, out spin in 0..4: sum over {} terms x 4 in spins x 3 colours",
                d.n_out,
                d.terms.len()
            ),
        ]
    };
    KernelPlan {
        layer: layer.to_string(),
        pass,
        strategy: Strategy::Jit,
        reason: what.to_string(),
        loops,
        layout: format!(
            "AoSoA-{} over sites (virtual nodes along one direction, ghost slabs for lane-crossing neighbours), re/im split, {}",
            d.lanes,
            if d.lanes == 4 { "f32x4" } else { "f64x2" }
        ),
        fused: vec![
            "path transport (precomputed link products)".into(),
            "spin mixing W (x) 1_colour".into(),
            "sum over paths and input features".into(),
        ],
        flops: if grad { d.grad_flops() } else { d.flops() },
        bytes: d.bytes(),
        kernels: vec![kernel],
        compile_time: Default::default(),
    }
}

/// The plan record of the fused training kernel ([`define_loss_weight_grad`]).
pub fn loss_grad_plan(layer: &str, d: &StencilDesc, what: &str) -> KernelPlan {
    let mut plan =
        stencil_plan(layer, d, Pass::BackwardParams, format!("{}_loss_wgrad", d.name), what);
    plan.loops = vec![
        format!("for chunk in 0..{} (rayon, one partial sum per chunk)", d.grad_items()),
        format!("  for outer site in chunk ({GRAD_CHUNK} x {} lanes)", d.lanes),
        format!("    for (feature, path) in {} groups: transport into stack", d.groups.len()),
        format!(
            "    for out feature in 0..{}, out spin in 0..4: sum over {} terms, gout = 2 (out - target)",
            d.n_out,
            d.terms.len()
        ),
        format!(
            "    for term in {}: 4x4 spin outer product gout chi^dagger, colour trace",
            d.terms.len()
        ),
    ];
    plan.flops = d.loss_grad_flops();
    plan.fused.push("loss seed 2 (out - target) in place of the output".into());
    plan.fused.push("weight-gradient outer products from the same transports".into());
    plan
}

/// Define the residual-add kernel `out = a + b` over `slots` field slots (all features, ghosts
/// included, so the ghosts of the sum stay valid). Buffers `[a, b, out]`; items = slots.
pub fn define_add(
    jit: &mut Jit,
    name: &str,
    slots: usize,
    lanes: usize,
    vector: Type,
) -> Result<KernelId, JitError> {
    let slot_bytes = FIELD_COMPONENTS * lanes * vector.lane_type().bytes() as usize;
    let bytes = slots * slot_bytes;
    let spec = KernelSpec {
        name: name.to_string(),
        buffers: vec![
            BufSpec { name: "a".into(), bytes, writable: false },
            BufSpec { name: "b".into(), bytes, writable: false },
            BufSpec { name: "out".into(), bytes, writable: true },
        ],
        items: slots,
        parallel: true,
    };
    jit.define(spec, |b, [args, start, end], host: HostFeatures| {
        let a = load_args(b, args, 3);
        for_range(b, start, end, |b, s| {
            let mut e = Emit::new(b, vector, host);
            let off = e.b.ins().imul_imm_s(s, slot_bytes as i64);
            let pa = e.b.ins().iadd(a[0], off);
            let pb = e.b.ins().iadd(a[1], off);
            let po = e.b.ins().iadd(a[2], off);
            for q in 0..FIELD_COMPONENTS as i32 {
                let x = e.load(pa, q * e.vbytes);
                let y = e.load(pb, q * e.vbytes);
                let z = e.add(x, y);
                e.store(z, po, q * e.vbytes);
            }
        });
        b.ins().return_(&[]);
    })
}
