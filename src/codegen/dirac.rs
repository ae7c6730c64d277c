//! The Wilson-clover operator D (and D†) as a JIT kernel, generated with the same layout and
//! emit helpers as the PTC layers: a fixed-weight 8-path stencil with the (1 ∓ γ_μ) projectors
//! on half spinors, plus the site-local clover term as two packed Hermitian 6x6 blocks.
//!
//! ```text
//! D psi(x) = A(x) psi(x) - 1/2 sum_mu [ (1 - gamma_mu) U_mu(x) psi(x+mu) + (1 + gamma_mu) U_mu(x-mu)^dagger psi(x-mu) ]
//! ```
//! (physics.md §1.1; D† swaps the projector signs, D† = gamma5 D gamma5). The links (with the
//! boundary phases folded in) and the clover blocks are taken from the plain reference
//! [`WilsonClover`] so that both share one definition of the physics; the kernel is tested
//! against the reference's `apply` to round-off.
//!
//! **Kernel, per outer site** (4 sites in f32x4 lanes, 2 in f64x2): pass 1 projects the 8
//! neighbours to half spinors `h = P psi` (12 complex) into a stack buffer; a neighbour across
//! the lane boundary is read from its main slot and lane-rotated in registers, so no ghost slabs
//! are needed. Pass 2 runs colour by colour with the 4 spin accumulators of that colour in
//! registers: per hop, one row of `U` (or `U^dagger`) times the two half-spinor colour vectors,
//! the lower spin pair rebuilt from the gamma structure (`HOP_TABLE`, multiplications by ±1, ±i
//! are re/im swaps); then the clover rows of that colour and `out = A psi - acc/2`. Loads are
//! arranged to fold into the arithmetic (see the comments in `define_dirac`); the benchmark
//! notes are in `benches/results/ptc.md`. Flops are counted with the conventional 1872 per site.

use super::complex::{Cx, Emit};
use super::jit::{BufSpec, CompiledKernels, HostFeatures, Jit, JitError, KernelId, KernelSpec};
use super::lattice_layout::{FIELD_COMPONENTS, MATRIX_COMPONENTS};
use super::loops::for_range;
use super::plan::{KernelPlan, Pass, Strategy};
use super::simd::Precision;
use crate::lattice::gamma::HOP_TABLE;
use crate::lattice::wilson::{CloverBlock, FLOPS_PER_SITE};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    ConstantData, Endianness, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value, types,
};

/// Lane `k` of the result is lane `(k + rot) mod lanes` of `v` (a `pshufd`).
fn rotate_lanes(e: &mut Emit, v: Value, lanes: usize, rot: usize) -> Value {
    let lane_bytes = 16 / lanes;
    let mask: Vec<u8> = (0..16)
        .map(|i| (((i / lane_bytes + rot) % lanes) * lane_bytes + i % lane_bytes) as u8)
        .collect();
    let mask = e.b.func.dfg.immediates.push(ConstantData::from(mask));
    let little = MemFlagsData::new().with_endianness(Endianness::Little);
    let bytes = e.b.ins().bitcast(types::I8X16, little, v);
    let r = e.b.ins().shuffle(bytes, bytes, mask);
    e.b.ins().bitcast(e.ty, little, r)
}

/// Passes complex values and the two stack-pointer copies `q` through a barrier; the dead edge
/// gets zeros and the decoy region. Returns the values and the new pointer copies.
fn barrier_state(
    e: &mut Emit,
    vals: &[Cx],
    q: [Value; 2],
    stack: Value,
    decoy: Value,
    zero: Value,
) -> (Vec<Cx>, [Value; 2]) {
    let mut flat: Vec<Value> = vals.iter().flat_map(|z| [z.re, z.im]).collect();
    let mut alt = vec![zero; flat.len()];
    flat.extend(q);
    // The dead edge must pass something other than the live value; both point at owned stack.
    alt.extend(q.map(|p| if p == stack { decoy } else { stack }));
    let out = e.barrier_with(&flat, &alt);
    let n = vals.len();
    let v = out[..2 * n].chunks(2).map(|c| Cx { re: c[0], im: c[1] }).collect();
    (v, [out[2 * n], out[2 * n + 1]])
}

/// Scalars of the packed clover term of one outer site per lane: 2 blocks x (6 + 2*15).
pub const CLOVER_COMPONENTS: usize = 72;

/// The 8 hops in kernel order: (mu, forward).
pub fn hops() -> [(usize, bool); 8] {
    std::array::from_fn(|h| (h / 2, h % 2 == 0))
}

/// `a + phase(p) * b` with phase index 0 = 1, 1 = i, 2 = -1, 3 = -i: adds and subtracts only.
fn add_phase(e: &mut Emit, a: Cx, p: u8, b: Cx) -> Cx {
    match p & 3 {
        0 => Cx { re: e.add(a.re, b.re), im: e.add(a.im, b.im) },
        1 => Cx { re: e.sub(a.re, b.im), im: e.add(a.im, b.re) },
        2 => Cx { re: e.sub(a.re, b.re), im: e.sub(a.im, b.im) },
        _ => Cx { re: e.add(a.re, b.im), im: e.sub(a.im, b.re) },
    }
}

/// Everything the Dirac kernel is specialised for: the layout's shape and, per hop, how its
/// lane-crossing neighbours are rotated. The runtime derives it from a
/// [`SiteLayout`](super::lattice_layout::SiteLayout) and fills
/// the tables the kernel reads (links, neighbour offsets, clover blocks) to match.
#[derive(Clone, Debug)]
pub struct DiracDesc {
    pub outer_volume: usize,
    /// Per hop (in [`hops`] order): the lane rotation of its lane-crossing neighbours (0: the
    /// hop never crosses).
    pub rotation: [usize; 8],
    pub ext_slots: usize,
    pub precision: Precision,
}

impl DiracDesc {
    fn sz(&self) -> usize {
        self.precision.bytes()
    }
    fn lanes(&self) -> usize {
        self.precision.lanes()
    }
    fn slot_bytes(&self) -> usize {
        FIELD_COMPONENTS * self.lanes() * self.sz()
    }
    fn matrix_bytes(&self) -> usize {
        MATRIX_COMPONENTS * self.lanes() * self.sz()
    }
    fn clover_bytes(&self) -> usize {
        CLOVER_COMPONENTS * self.lanes() * self.sz()
    }
}

fn define_dirac(
    jit: &mut Jit,
    d: &DiracDesc,
    name: &str,
    dagger: bool,
) -> Result<KernelId, JitError> {
    let vo = d.outer_volume;
    let spec = KernelSpec {
        name: name.to_string(),
        buffers: vec![
            BufSpec { name: "input".into(), bytes: d.ext_slots * d.slot_bytes(), writable: false },
            BufSpec { name: "output".into(), bytes: d.ext_slots * d.slot_bytes(), writable: true },
            BufSpec { name: "links".into(), bytes: 8 * vo * d.matrix_bytes(), writable: false },
            BufSpec { name: "neighbours".into(), bytes: vo * 8 * 4, writable: false },
            BufSpec { name: "clover".into(), bytes: vo * d.clover_bytes(), writable: false },
        ],
        items: vo,
        parallel: true,
    };
    let ptr_ty = jit.ptr_type();
    jit.define(spec, |b, [args, start, end], host: HostFeatures| {
        let a: Vec<Value> = (0..5)
            .map(|k| b.ins().load(types::I64, MemFlagsData::trusted(), args, (k * 8) as i32))
            .collect();
        let (input, output, links, nbr, clover) = (a[0], a[1], a[2], a[3], a[4]);
        // The 8 projected half spinors (2 spins x 3 colours, re/im vectors) of the current
        // site, followed by a second region of the same size that only the never-taken edges
        // of the barriers point at (see `Emit::barrier_with`).
        let half_bytes = 6 * 2 * d.lanes() * d.sz();
        let proj_bytes = 8 * half_bytes;
        let ss = b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (2 * proj_bytes) as u32,
            4,
        ));
        let stack = b.ins().stack_addr(ptr_ty, ss, 0);
        let decoy = b.ins().stack_addr(ptr_ty, ss, proj_bytes as i32);
        for_range(b, start, end, |b, o| {
            let mut e = Emit::new(b, d.precision.vector(), host);
            e.opaque_true = Some(e.b.ins().icmp(IntCC::SignedLessThan, o, end));
            let vb = e.vbytes;
            let comp = |s: usize, c: usize| 2 * (s * 3 + c) as i32 * vb;
            // Offset of half-spinor component (hop, spin r < 2, colour) in the stack buffer.
            let hs_off = |h: usize, r: usize, c: usize| {
                let off = (h * half_bytes) as i32 + comp(r, c);
                // The stack is outside the kernel spec's bounds proof: check every offset here.
                assert!(
                    off as usize + 2 * vb as usize <= proj_bytes,
                    "half spinor outside the stack slot"
                );
                off
            };
            let nbr_row = {
                let off = e.b.ins().imul_imm_s(o, 32);
                e.b.ins().iadd(nbr, off)
            };
            // Pass 1: half spinors h = (1 -/+ gamma_mu) psi(x +/- mu) of the 8 neighbours.
            // A neighbour across the lane boundary is the main slot of the other sub-lattice
            // with its lanes rotated: the table marks it in bit 0 of the byte offset (offsets
            // are multiples of the slot size), and the rotation is one `pshufd` per loaded
            // vector. No ghost slabs are read, so callers need not refresh them.
            for (h, &(mu, fwd)) in hops().iter().enumerate() {
                // D: forward hop (1 - gamma), backward (1 + gamma); D^dagger the opposite.
                let minus = fwd != dagger;
                let flip = if minus { 2 } else { 0 };
                let noff = e.b.ins().sload32(MemFlagsData::trusted(), nbr_row, (h * 4) as i32);
                let project = |e: &mut Emit, src: Value, rot: usize| {
                    for r in 0..2 {
                        let (col, p) = HOP_TABLE[mu][r];
                        for c in 0..3 {
                            let mut ld = |off: i32| {
                                let v = e.load(src, off);
                                if rot == 0 { v } else { rotate_lanes(e, v, d.lanes(), rot) }
                            };
                            let x = Cx { re: ld(comp(r, c)), im: ld(comp(r, c) + vb) };
                            let y = Cx { re: ld(comp(col, c)), im: ld(comp(col, c) + vb) };
                            let z = add_phase(e, x, p + flip, y);
                            e.store_cx(z, stack, hs_off(h, r, c));
                        }
                    }
                };
                match d.rotation[h] {
                    0 => {
                        let src = e.b.ins().iadd(input, noff);
                        project(&mut e, src, 0);
                    }
                    rot => {
                        let flag = e.b.ins().band_imm_s(noff, 1);
                        let clean = e.b.ins().band_imm_s(noff, -2);
                        let src = e.b.ins().iadd(input, clean);
                        let (rotated, plain, merge) =
                            (e.b.create_block(), e.b.create_block(), e.b.create_block());
                        e.b.ins().brif(flag, rotated, &[], plain, &[]);
                        e.b.switch_to_block(rotated);
                        project(&mut e, src, rot);
                        e.b.ins().jump(merge, &[]);
                        e.b.switch_to_block(plain);
                        project(&mut e, src, 0);
                        e.b.ins().jump(merge, &[]);
                        e.b.switch_to_block(merge);
                    }
                }
            }
            // The 8 links of a site are contiguous: one stream for the prefetcher, not 8.
            let o_mat = e.b.ins().imul_imm_s(o, (8 * d.matrix_bytes()) as i64);
            let o_slot = e.b.ins().imul_imm_s(o, d.slot_bytes() as i64);
            let psi = e.b.ins().iadd(input, o_slot);
            let out = e.b.ins().iadd(output, o_slot);
            let o_clov = e.b.ins().imul_imm_s(o, d.clover_bytes() as i64);
            let clov = e.b.ins().iadd(clover, o_clov);
            let half = {
                let s =
                    if d.lanes() == 4 { e.b.ins().f32const(0.5) } else { e.b.ins().f64const(0.5) };
                e.b.ins().splat(d.precision.vector(), s)
            };
            let zero = e.zero();
            // Pass 2, one output colour at a time: the 4 spin accumulators (8 vectors) stay in
            // registers over the 8 hops. Per hop, row `c` of U (or U^dagger) times the two
            // half-spinor colour vectors, one matrix entry at a time (2 vectors live; each
            // half-spinor vector is read straight from the stack by the FMA that uses it, once
            // through each of the two opaque copies `q` of the stack pointer), then the lower
            // spins are rebuilt from the gamma structure (adds only). A barrier after every
            // entry keeps at most acc + partial products + one entry live: 14 vectors.
            // The copies are block parameters from the first barrier on, defined inside the
            // loop after pass 1's stores: a pure load through them can neither be hoisted out
            // of the loop nor above those stores (through `stack` itself, a loop-invariant
            // address, it could be).
            let mut q = {
                let v = e.barrier_with(&[stack, stack], &[decoy, decoy]);
                [v[0], v[1]]
            };
            for c in 0..3 {
                let mut acc: Option<[Cx; 4]> = None;
                for (h, &(mu, fwd)) in hops().iter().enumerate() {
                    let mat = e.b.ins().iadd_imm_s(links, (h * d.matrix_bytes()) as i64);
                    let mat = e.b.ins().iadd(mat, o_mat);
                    let mut t: Option<[Cx; 2]> = None;
                    for bb in 0..3 {
                        // Backward hops use U_mu(x - mu)^dagger, stored untransposed at x.
                        let idx = if fwd { c * 3 + bb } else { bb * 3 + c } as i32;
                        let u = Cx {
                            re: e.load_pure(mat, 2 * idx * vb),
                            im: e.load_pure(mat, (2 * idx + 1) * vb),
                        };
                        let tt: [Cx; 2] = std::array::from_fn(|r| {
                            let off = hs_off(h, r, bb);
                            // The real part of u*x reads x.re and x.im through q[0], the
                            // imaginary part through q[1]: four single-use loads.
                            let xr0 = e.load_pure(q[0], off);
                            let xi0 = e.load_pure(q[0], off + vb);
                            let xr1 = e.load_pure(q[1], off);
                            let xi1 = e.load_pure(q[1], off + vb);
                            let prev = t.map(|t| t[r]);
                            // Each product term as its own instruction (fma for the u.re term
                            // into the running sum, mul + add/sub for the u.im term): every
                            // load is then elaborated right before the one instruction that
                            // reads it and folds into it, and the non-destructive vmulps needs
                            // no register copy of u.im.
                            let re = match prev {
                                None => e.mul(u.re, xr0),
                                Some(p) => e.fma(u.re, xr0, p.re),
                            };
                            let re2 = e.mul(u.im, xi0);
                            let im = match prev {
                                None => e.mul(u.re, xi1),
                                Some(p) => e.fma(u.re, xi1, p.im),
                            };
                            let im2 = e.mul(u.im, xr1);
                            // conj(u) for U^dagger: the signs of the u.im terms flip.
                            if fwd {
                                Cx { re: e.sub(re, re2), im: e.add(im, im2) }
                            } else {
                                Cx { re: e.add(re, re2), im: e.sub(im, im2) }
                            }
                        });
                        // Also after the last entry: a partial product with two uses (upper
                        // and lower spin) would stop its loads from folding, a block parameter
                        // does not. The accumulator update is emitted in the next block.
                        // Accumulators first: the elaborator emits the operands in order, so
                        // the previous hop's update (freeing its partial products) comes before
                        // this entry's products.
                        let mut vals: Vec<Cx> = acc.iter().flatten().copied().collect();
                        let na = vals.len();
                        vals.extend(tt);
                        let (v, nq) = barrier_state(&mut e, &vals, q, stack, decoy, zero);
                        q = nq;
                        t = Some([v[na], v[na + 1]]);
                        if let Some(a) = acc.as_mut() {
                            a.copy_from_slice(&v[..na]);
                        }
                    }
                    let t = t.expect("3 colour terms");
                    let minus = fwd != dagger;
                    let flip = if minus { 2 } else { 0 };
                    let lower: [Cx; 2] = std::array::from_fn(|k| {
                        let (col, p) = HOP_TABLE[mu][2 + k];
                        let base = acc.map(|a| a[2 + k]).unwrap_or(Cx { re: zero, im: zero });
                        add_phase(&mut e, base, p + flip, t[col])
                    });
                    let upper = match acc {
                        None => t,
                        Some(a) => [e.cadd(a[0], t[0]), e.cadd(a[1], t[1])],
                    };
                    // The update in a block of its own: folded into the next hop's first
                    // block it would overlap that block's products (18 vectors live).
                    let vals = [upper[0], upper[1], lower[0], lower[1]];
                    let (v, nq) = barrier_state(&mut e, &vals, q, stack, decoy, zero);
                    q = nq;
                    acc = Some([v[0], v[1], v[2], v[3]]);
                }
                let acc = acc.expect("8 hops");
                // The clover rows of this colour, then out = A psi - acc/2.
                for (s, &a) in acc.iter().enumerate() {
                    let (blk, sl) = (s / 2, s % 2);
                    let k = sl * 3 + c;
                    let base = (blk * 36) as i32;
                    let at = |q: usize| (base + q as i32) * vb;
                    // Row k of the Hermitian block: diag (real), upper entries, conjugated lower.
                    let dg = e.load(clov, at(k));
                    let pk = e.load_cx(psi, comp(2 * blk + sl, c));
                    let mut re = e.mul(dg, pk.re);
                    let mut im = e.mul(dg, pk.im);
                    for k2 in 0..6 {
                        if k2 == k {
                            continue;
                        }
                        let (i, j) = if k < k2 { (k, k2) } else { (k2, k) };
                        let u = CloverBlock::<f64>::upper_index(i, j);
                        let m = e.load_cx(clov, at(6 + 2 * u));
                        let x = e.load_cx(psi, comp(2 * blk + k2 / 3, k2 % 3));
                        let z = if k < k2 {
                            e.cmac(Some(Cx { re, im }), m, x)
                        } else {
                            e.cmac_conj(Some(Cx { re, im }), m, x)
                        };
                        let v = e.barrier_cx(&[z]);
                        (re, im) = (v[0].re, v[0].im);
                    }
                    let re = e.fnma(half, a.re, re);
                    let im = e.fnma(half, a.im, im);
                    e.store_cx(Cx { re, im }, out, comp(s, c));
                }
            }
        });
        b.ins().return_(&[]);
    })
}

/// The compiled D and D† kernels of one layout, with their plans for `symc inspect`.
pub struct DiracKernels {
    pub kernels: CompiledKernels,
    pub d: KernelId,
    pub ddag: KernelId,
    pub plans: Vec<KernelPlan>,
}

/// Emit D and D† for `desc` (listings kept when `keep_listings`, for `symc inspect --asm`).
pub fn compile(desc: &DiracDesc, keep_listings: bool) -> Result<DiracKernels, JitError> {
    let mut jit = Jit::new()?;
    jit.keep_listings = keep_listings;
    let prec = desc.precision;
    let dn = format!("wilson_clover_{}", prec.name());
    let d = define_dirac(&mut jit, desc, &dn, false)?;
    let ddag = define_dirac(&mut jit, desc, &format!("{dn}_dagger"), true)?;
    let kernels = jit.finish()?;
    let (vo, l) = (desc.outer_volume, prec.lanes());
    let vol = (vo * l) as f64;
    let sz = prec.bytes() as f64;
    let plan = |name: String, what: &str| {
        KernelPlan {
        layer: "wilson_clover".into(),
        pass: Pass::Forward,
        strategy: Strategy::Jit,
        reason: what.into(),
        loops: vec![
            format!("for outer site in 0..{vo} (rayon, {l} sites per vector)"),
            "  for hop in 0..8: half spinor (1 -/+ gamma_mu) psi(x +/- mu) into stack (lane-crossing: pshufd)".into(),
            "  for colour in 0..3: for hop in 0..8: U row x 2 half-spinor vectors into 4 spin accumulators (registers); clover rows; out = A psi - acc/2".into(),
        ],
        layout: format!(
            "AoSoA-{l} over sites (virtual nodes, ghost slabs), re/im split, {}x{l}",
            prec.name()
        ),
        fused: vec![
            "spin projection".into(),
            "SU(3) on half spinors".into(),
            "spin reconstruction".into(),
            "clover 2x Hermitian 6x6".into(),
            "4+m diagonal".into(),
        ],
        flops: FLOPS_PER_SITE as f64 * vol,
        bytes: (8.0 * 24.0 + 8.0 * 18.0 + 72.0 + 24.0) * sz * vol,
        compile_time: kernels
            .records
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.compile_time)
            .unwrap_or_default(),
        kernels: vec![name],
    }
    };
    let plans = vec![
        plan(dn.clone(), "Wilson-clover D"),
        plan(format!("{dn}_dagger"), "Wilson-clover D^dagger"),
    ];
    Ok(DiracKernels { kernels, d, ddag, plans })
}
