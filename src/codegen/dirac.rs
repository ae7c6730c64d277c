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
//! are needed. Pass 2 is a loop over the 3 output colours with the 4 spin accumulators of that
//! colour in registers: per hop, one row of `U` (or `U^dagger`) times the two half-spinor colour
//! vectors, the lower spin pair rebuilt from the gamma structure (`HOP_TABLE`, multiplications
//! by ±1, ±i are re/im swaps); the colour's hop sum goes to a stack buffer. Then the site term,
//! a loop over the two chirality blocks: `out = A psi - h/2` row by row. Loops, not unrolled
//! code, to keep the kernel small (14 KB instead of 31 KB; see `hop_sum`).
//! Loads are arranged to fold into the arithmetic (see the comments in `hop_sum`); the
//! benchmark notes are in `benches/results/ptc.md` and BENCHMARKS.md. Flops are counted with
//! the conventional 1872 per site.
//!
//! **Site terms.** The same emitter builds the kernels of the even-odd (Schur) operator
//! (`runtime::schur`): what a kernel does after the hop sum is a [`SiteTerm`] — the full D's
//! `A psi - h/2`, the hop alone followed by a 6x6 block (`c B h`, e.g. A_oo^-1 D_oe), the hop
//! added to the site's own input (`chi + c h`, the fused axpy of `1 - D_eo ...`), or a block on
//! the own input without any hop (`B chi`). The hop input, the own input `chi` and the output
//! are separate buffers, so a kernel can hop from one parity's buffer and add another's; the
//! full D passes its input as both. Neighbour tables decide which sites are read, so the
//! kernels do not know whether a layout is the full lattice or one parity of it.

use super::complex::{Cx, Emit};
use super::jit::{BufSpec, CompiledKernels, HostFeatures, Jit, JitError, KernelId, KernelSpec};
use super::lattice_layout::{FIELD_COMPONENTS, MATRIX_COMPONENTS};
use super::loops::{for_count, for_range};
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

/// What a kernel computes at each output site x from the hop sum
/// `h(x) = sum_mu [(1 -/+ gamma_mu) U_mu(x) psi(x+mu) + (1 +/- gamma_mu) U_mu(x-mu)^dagger psi(x-mu)]`
/// (upper signs for D, lower for D†) over the `input` buffer, the site's own input `chi(x)`
/// (buffer `self`) and its two packed Hermitian 6x6 blocks `B(x)` (buffer `blocks`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SiteTerm {
    /// `B chi + c h`: the full D (B = A, chi = psi, c = -1/2); the even half of the plain Schur
    /// operator A_ee - D_eo A_oo^-1 D_oe (B = A_ee, c = +1/2).
    BlockSelfPlusHop(f64),
    /// `chi + c h`: the fused `x - D_eo u` (c = +1/2).
    SelfPlusHop(f64),
    /// `chi + c B h`: the fused `x - A_ee^-1 D_eo u`.
    SelfPlusBlockHop(f64),
    /// `c B h`: hop then block, e.g. `A_oo^-1 D_oe x` (c = -1/2).
    BlockHop(f64),
    /// `B chi`: the block alone (no hop; `input`, `links` and `neighbours` are not read).
    BlockSelf,
}

impl SiteTerm {
    /// Whether the term reads neighbours (all but the block alone).
    pub fn hops(self) -> bool {
        !matches!(self, SiteTerm::BlockSelf)
    }
    fn reads_self(self) -> bool {
        !matches!(self, SiteTerm::BlockHop(_))
    }
    fn coefficient(self) -> f64 {
        match self {
            SiteTerm::BlockSelfPlusHop(c)
            | SiteTerm::SelfPlusHop(c)
            | SiteTerm::SelfPlusBlockHop(c)
            | SiteTerm::BlockHop(c) => c,
            SiteTerm::BlockSelf => 0.0,
        }
    }
    fn name(self) -> &'static str {
        match self {
            SiteTerm::BlockSelfPlusHop(_) => "block_self_plus_hop",
            SiteTerm::SelfPlusHop(_) => "self_plus_hop",
            SiteTerm::SelfPlusBlockHop(_) => "self_plus_block_hop",
            SiteTerm::BlockHop(_) => "block_hop",
            SiteTerm::BlockSelf => "block_self",
        }
    }
    /// Flops per output site as conventionally counted (physics.md §1.5): 1320 for the hop sum
    /// (8 x (12 projection + 132 SU(3) on a half spinor) + 7 x 24 accumulation), 504 for the two
    /// Hermitian 6x6 blocks, 48 for `c h` fused into an addition (24 FMAs), 24 for a bare scale.
    /// `BlockSelfPlusHop` is the full D's 1872 ([`FLOPS_PER_SITE`], checked at compile time).
    pub const fn flops_per_site(self) -> u64 {
        match self {
            SiteTerm::BlockSelfPlusHop(_) | SiteTerm::SelfPlusBlockHop(_) => 1320 + 504 + 48,
            SiteTerm::SelfPlusHop(_) => 1320 + 48,
            SiteTerm::BlockHop(_) => 1320 + 504 + 24,
            SiteTerm::BlockSelf => 504,
        }
    }
    /// Reals read and written per output site with perfect reuse of nothing: 8 neighbour
    /// spinors and 8 links (`link_reals` each) for the hop, 24 for `chi`, 72 for the blocks,
    /// 24 written.
    fn reals_per_site(self, link_reals: usize) -> f64 {
        let hop = if self.hops() { 8.0 * 24.0 + 8.0 * link_reals as f64 } else { 0.0 };
        let own = if self.reads_self() { 24.0 } else { 0.0 };
        let block = if matches!(self, SiteTerm::SelfPlusHop(_)) { 0.0 } else { 72.0 };
        hop + own + block + 24.0
    }
}

const _: () = assert!(SiteTerm::BlockSelfPlusHop(-0.5).flops_per_site() == FLOPS_PER_SITE);

/// One kernel: a site term, with D's or D†'s projectors in the hop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiteKernel {
    pub term: SiteTerm,
    pub dagger: bool,
}

/// Row `k` (0..6) of chirality block `blk` of the packed Hermitian blocks at `blocks` times
/// the 6 components of that chirality (spins 2 blk and 2 blk + 1, `comp` gives their byte
/// offsets) of the spinor at `src`. Packed rows: the real diagonal, the upper entries, the
/// conjugated lower ones; a barrier after every entry keeps the register pressure low.
fn block_row(
    e: &mut Emit,
    blocks: Value,
    blk: usize,
    k: usize,
    src: Value,
    comp: impl Fn(usize, usize) -> i32,
) -> Cx {
    let vb = e.vbytes;
    let base = (blk * 36) as i32;
    let at = |q: usize| (base + q as i32) * vb;
    let dg = e.load(blocks, at(k));
    let pk = e.load_cx(src, comp(2 * blk + k / 3, k % 3));
    let mut re = e.mul(dg, pk.re);
    let mut im = e.mul(dg, pk.im);
    for k2 in 0..6 {
        if k2 == k {
            continue;
        }
        let (i, j) = if k < k2 { (k, k2) } else { (k2, k) };
        let u = CloverBlock::<f64>::upper_index(i, j);
        let m = e.load_cx(blocks, at(6 + 2 * u));
        let x = e.load_cx(src, comp(2 * blk + k2 / 3, k2 % 3));
        let z = if k < k2 {
            e.cmac(Some(Cx { re, im }), m, x)
        } else {
            e.cmac_conj(Some(Cx { re, im }), m, x)
        };
        let v = e.barrier_cx(&[z]);
        (re, im) = (v[0].re, v[0].im);
    }
    Cx { re, im }
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

/// Everything the Dirac kernels are specialised for: the layout's shape and, per hop, how its
/// lane-crossing neighbours are rotated. The runtime derives it from a
/// [`SiteLayout`](super::lattice_layout::SiteLayout) (the full lattice) or a
/// [`HalfLayout`](super::lattice_layout::HalfLayout) (one parity; `ext_slots` = `outer_volume`)
/// and fills the tables the kernels read (links, neighbour offsets, blocks) to match.
#[derive(Clone, Debug)]
pub struct DiracDesc {
    pub outer_volume: usize,
    /// Per hop (in [`hops`] order): the lane rotation of its lane-crossing neighbours (0: the
    /// hop never crosses).
    pub rotation: [usize; 8],
    /// Slots of every field buffer (`input`, `self`, `output`): main outer sites and ghosts.
    pub ext_slots: usize,
    pub precision: Precision,
    /// How the links are stored in the table the kernels read.
    pub links: LinkStorage,
}

/// How a hop's link is stored in the links table: all 18 reals, or QUDA's "12-reconstruct"
/// (two rows and the determinant; the kernel rebuilds the third row, issue 13's link
/// compression lever). Why the determinant: the boundary phases are folded into the links, so
/// a link is `phi U` with U in SU(3); for any unitary 3x3 matrix the third row is
/// `det(U) conj(r0 x r1)`, so one complex number per link carries every phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkStorage {
    /// 18 reals: the full matrix.
    #[default]
    Full,
    /// 14 reals: rows 0 and 1, then det(U) (re, im).
    TwoRows,
}

impl LinkStorage {
    /// The storage a kernel of precision `p` uses unless told otherwise: two rows in f32,
    /// where it is faster (BENCHMARKS.md, "Two-row links") and the rebuilt row's error (the
    /// links' distance from U(3), at most that of a 32-bit file, ~1e-7) is below f32 rounding;
    /// the full matrix in f64, which must reproduce the reference operator to round-off for
    /// links that are unitary only to the precision of the file they came from (files are
    /// checked, never re-projected, so that they write back byte-identical).
    pub fn for_precision(p: Precision) -> Self {
        match p {
            Precision::F32 => LinkStorage::TwoRows,
            Precision::F64 => LinkStorage::Full,
        }
    }

    /// Reals per stored link.
    pub const fn reals(self) -> usize {
        match self {
            LinkStorage::Full => MATRIX_COMPONENTS,
            LinkStorage::TwoRows => 14,
        }
    }
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
    /// Bytes of one stored link (all lanes).
    fn link_bytes(&self) -> usize {
        self.links.reals() * self.lanes() * self.sz()
    }
    fn clover_bytes(&self) -> usize {
        CLOVER_COMPONENTS * self.lanes() * self.sz()
    }
}

fn define_kernel(
    jit: &mut Jit,
    d: &DiracDesc,
    name: &str,
    kernel: SiteKernel,
) -> Result<KernelId, JitError> {
    let SiteKernel { term, dagger } = kernel;
    let vo = d.outer_volume;
    let field = d.ext_slots * d.slot_bytes();
    // Buffers a term does not read need no size (callers may pass anything there).
    let need = |used: bool, bytes: usize| if used { bytes } else { 0 };
    let spec = KernelSpec {
        name: name.to_string(),
        buffers: vec![
            BufSpec { name: "input".into(), bytes: need(term.hops(), field), writable: false },
            BufSpec { name: "self".into(), bytes: need(term.reads_self(), field), writable: false },
            BufSpec { name: "output".into(), bytes: field, writable: true },
            BufSpec {
                name: "links".into(),
                bytes: need(term.hops(), 8 * vo * d.link_bytes()),
                writable: false,
            },
            BufSpec {
                name: "neighbours".into(),
                bytes: need(term.hops(), vo * 8 * 4),
                writable: false,
            },
            BufSpec {
                name: "blocks".into(),
                bytes: need(!matches!(term, SiteTerm::SelfPlusHop(_)), vo * d.clover_bytes()),
                writable: false,
            },
        ],
        items: vo,
        parallel: true,
    };
    let ptr_ty = jit.ptr_type();
    jit.define(spec, |b, [args, start, end], host: HostFeatures| {
        let a: Vec<Value> = (0..6)
            .map(|k| b.ins().load(types::I64, MemFlagsData::trusted(), args, (k * 8) as i32))
            .collect();
        let (input, own, output, links, nbr, blocks) = (a[0], a[1], a[2], a[3], a[4], a[5]);
        // The 8 projected half spinors (2 spins x 3 colours, re/im vectors) of the current
        // site, followed by a second region of the same size that only the never-taken edges
        // of the barriers point at (see `Emit::barrier_with`), then (for a kernel with a
        // hop) the hop sum of the site, 12 complex in the layout of a spinor slot.
        let half_bytes = 6 * 2 * d.lanes() * d.sz();
        let proj_bytes = 8 * half_bytes;
        let acc_bytes = if term.hops() { d.slot_bytes() } else { 0 };
        // Two-row links: the 8 rebuilt matrices of the site, after the hop sum.
        let rebuilt_bytes =
            if term.hops() && d.links == LinkStorage::TwoRows { 8 * d.matrix_bytes() } else { 0 };
        let ss = b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (2 * proj_bytes + acc_bytes + rebuilt_bytes) as u32,
            4,
        ));
        let stack = b.ins().stack_addr(ptr_ty, ss, 0);
        let decoy = b.ins().stack_addr(ptr_ty, ss, proj_bytes as i32);
        let acc_buf = b.ins().stack_addr(ptr_ty, ss, (2 * proj_bytes) as i32);
        let rebuilt = b.ins().stack_addr(ptr_ty, ss, (2 * proj_bytes + acc_bytes) as i32);
        for_range(b, start, end, |b, o| {
            let mut e = Emit::new(b, d.precision.vector(), host);
            e.opaque_true = Some(e.b.ins().icmp(IntCC::SignedLessThan, o, end));
            let vb = e.vbytes;
            let comp = |s: usize, c: usize| 2 * (s * 3 + c) as i32 * vb;
            let o_slot = e.b.ins().imul_imm_s(o, d.slot_bytes() as i64);
            let chi = e.b.ins().iadd(own, o_slot);
            let out = e.b.ins().iadd(output, o_slot);
            let o_blk = e.b.ins().imul_imm_s(o, d.clover_bytes() as i64);
            let blk = e.b.ins().iadd(blocks, o_blk);
            let coef = {
                let c = term.coefficient();
                let s = if d.lanes() == 4 {
                    e.b.ins().f32const(c as f32)
                } else {
                    e.b.ins().f64const(c)
                };
                e.b.ins().splat(d.precision.vector(), s)
            };
            if term.hops() {
                let scratch = [stack, decoy, rebuilt];
                hop_sum(&mut e, d, dagger, o, [input, links, nbr], scratch, acc_buf);
            }
            // The site term, one chirality block (spins 2j, 2j + 1: 6 components, one
            // Hermitian 6x6 block) per trip: both trips run the same code on pointers moved
            // by the block's offset, which keeps the kernel small (see `hop_sum`).
            let (ty, host, opaque) = (e.ty, e.host, e.opaque_true);
            let half = 6 * 2 * vb as i64;
            let epilogue = |b: &mut cranelift_frontend::FunctionBuilder, j: Value| {
                let mut e = Emit::new(b, ty, host);
                e.opaque_true = opaque;
                let mut at = |base: Value, stride: i64| {
                    let off = e.b.ins().imul_imm_s(j, stride);
                    e.b.ins().iadd(base, off)
                };
                let (blk, chi, h, out) =
                    (at(blk, 36 * vb as i64), at(chi, half), at(acc_buf, half), at(out, half));
                for k in 0..6 {
                    let off = comp(k / 3, k % 3);
                    let v = match term {
                        SiteTerm::BlockSelf => block_row(&mut e, blk, 0, k, chi, comp),
                        SiteTerm::BlockSelfPlusHop(_) => {
                            let h = e.load_cx(h, off);
                            let z = block_row(&mut e, blk, 0, k, chi, comp);
                            Cx { re: e.fma(coef, h.re, z.re), im: e.fma(coef, h.im, z.im) }
                        }
                        SiteTerm::SelfPlusHop(_) => {
                            let h = e.load_cx(h, off);
                            let x = e.load_cx(chi, off);
                            Cx { re: e.fma(coef, h.re, x.re), im: e.fma(coef, h.im, x.im) }
                        }
                        SiteTerm::SelfPlusBlockHop(_) => {
                            let z = block_row(&mut e, blk, 0, k, h, comp);
                            let x = e.load_cx(chi, off);
                            Cx { re: e.fma(coef, z.re, x.re), im: e.fma(coef, z.im, x.im) }
                        }
                        SiteTerm::BlockHop(_) => {
                            let z = block_row(&mut e, blk, 0, k, h, comp);
                            Cx { re: e.mul(coef, z.re), im: e.mul(coef, z.im) }
                        }
                    };
                    e.store_cx(v, out, off);
                }
            };
            for_count(e.b, 2, &mut |b, j| epilogue(b, j));
        });
        b.ins().return_(&[]);
    })
}

/// The 8 full links of one site from their two-row form at `src` ([`LinkStorage::TwoRows`])
/// into `dst` on the stack (8 matrices of 18 reals, the layout of [`LinkStorage::Full`]):
/// rows 0 and 1 copied, row 2 = det(U) conj(r0 x r1), component k being
/// `conj(r0[a] r1[b] - r0[b] r1[a])` with (a, b) = (k + 1, k + 2) mod 3.
fn rebuild_links(e: &mut Emit, d: &DiracDesc, src: Value, dst: Value) {
    let vb = e.vbytes;
    let (sb, db) = (d.link_bytes() as i32, d.matrix_bytes() as i32);
    let at = |idx: usize| 2 * idx as i32 * vb;
    // Unrolled over the 8 hops (+4.7 KB of code): as a loop the kernel ran 8-10 % slower at
    // 8^3 x 16 and gained only 4-5 % of the 10-12 % at 16^3 x 32 (BENCHMARKS.md, "Two-row links").
    for h in 0..8 {
        let (s, t) = (h as i32 * sb, h as i32 * db);
        // The stack is outside the kernel spec's bounds proof: checked here.
        assert!((t + db) as usize <= 8 * d.matrix_bytes(), "rebuilt link outside the stack slot");
        let rows: Vec<Cx> = (0..6).map(|i| e.load_cx(src, s + at(i))).collect();
        for (i, z) in rows.iter().enumerate() {
            e.store_cx(*z, dst, t + at(i));
        }
        let det = e.load_cx(src, s + at(6));
        for k in 0..3 {
            let (a, b) = ((k + 1) % 3, (k + 2) % 3);
            // x = r0[a] r1[b] - r0[b] r1[a]
            let (p, q, r, w) = (rows[a], rows[3 + b], rows[b], rows[3 + a]);
            let re = e.mul(p.re, q.re);
            let re = e.fnma(p.im, q.im, re);
            let re = e.fnma(r.re, w.re, re);
            let re = e.fma(r.im, w.im, re);
            let im = e.mul(p.re, q.im);
            let im = e.fma(p.im, q.re, im);
            let im = e.fnma(r.re, w.im, im);
            let im = e.fnma(r.im, w.re, im);
            // det * conj(x) = (dr xr + di xi) + i (di xr - dr xi)
            let out_re = e.mul(det.re, re);
            let out_re = e.fma(det.im, im, out_re);
            let out_im = e.mul(det.im, re);
            let out_im = e.fnma(det.re, im, out_im);
            e.store_cx(Cx { re: out_re, im: out_im }, dst, t + at(6 + k));
        }
    }
}

/// Byte offset of half-spinor component (hop `h`, spin `r` < 2, colour `c`) in the stack
/// buffer of the 8 projected half spinors. The stack is outside the kernel spec's bounds
/// proof, so every offset is checked here against the buffer's `proj_bytes`.
fn half_spinor_offset(d: &DiracDesc, vb: i32, h: usize, r: usize, c: usize) -> i32 {
    let half_bytes = 6 * 2 * d.lanes() * d.sz();
    let off = (h * half_bytes) as i32 + 2 * (r * 3 + c) as i32 * vb;
    assert!(off as usize + 2 * vb as usize <= 8 * half_bytes, "half spinor outside the stack slot");
    off
}

/// Pass 1 of the hop sum: the 8 projected half spinors of the site whose neighbour-table row
/// is `nbr_row`, into `stack` (`proj_bytes`, checked per offset).
fn project_neighbours(
    e: &mut Emit,
    d: &DiracDesc,
    dagger: bool,
    [input, nbr_row]: [Value; 2],
    stack: Value,
) {
    let vb = e.vbytes;
    let comp = |s: usize, c: usize| 2 * (s * 3 + c) as i32 * vb;
    let hs_off = |h: usize, r: usize, c: usize| half_spinor_offset(d, vb, h, r, c);
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
                project(e, src, 0);
            }
            rot => {
                let flag = e.b.ins().band_imm_s(noff, 1);
                let clean = e.b.ins().band_imm_s(noff, -2);
                let src = e.b.ins().iadd(input, clean);
                let (rotated, plain, merge) =
                    (e.b.create_block(), e.b.create_block(), e.b.create_block());
                e.b.ins().brif(flag, rotated, &[], plain, &[]);
                e.b.switch_to_block(rotated);
                project(e, src, rot);
                e.b.ins().jump(merge, &[]);
                e.b.switch_to_block(plain);
                project(e, src, 0);
                e.b.ins().jump(merge, &[]);
                e.b.switch_to_block(merge);
            }
        }
    }
}

/// The hop sum h of outer site `o` (module doc) from the `[input, links, neighbours]`
/// buffers, written to `acc_buf` (12 complex in the layout of a spinor slot). Pass 2 is a
/// loop over the 3 output colours: the same code serves each, only the link row (column for
/// U^dagger) and the output colour's offset move with the colour.
fn hop_sum(
    e: &mut Emit,
    d: &DiracDesc,
    dagger: bool,
    o: Value,
    [input, links, nbr]: [Value; 3],
    scratch: [Value; 3],
    acc_buf: Value,
) {
    let [stack, decoy, rebuilt] = scratch;
    let vb = e.vbytes;
    let comp = |s: usize, c: usize| 2 * (s * 3 + c) as i32 * vb;
    let hs_off = |h: usize, r: usize, c: usize| half_spinor_offset(d, vb, h, r, c);
    let nbr_row = {
        let off = e.b.ins().imul_imm_s(o, 32);
        e.b.ins().iadd(nbr, off)
    };
    project_neighbours(e, d, dagger, [input, nbr_row], stack);
    let o_mat = e.b.ins().imul_imm_s(o, (8 * d.link_bytes()) as i64);
    let site_links = e.b.ins().iadd(links, o_mat);
    // Pass 2 reads full matrices: the table's own, or the ones rebuilt on the stack.
    let site_links = match d.links {
        LinkStorage::Full => site_links,
        LinkStorage::TwoRows => {
            rebuild_links(e, d, site_links, rebuilt);
            rebuilt
        }
    };
    let (ty, host, opaque) = (e.ty, e.host, e.opaque_true);
    // Pass 2, one output colour per trip of a loop: the 4 spin accumulators (8 vectors) of
    // that colour stay in registers over the 8 hops. Per hop, row `c` of U (or U^dagger)
    // times the two half-spinor colour vectors, one matrix entry at a time (2 vectors live;
    // each half-spinor vector is read straight from the stack by the FMA that uses it, once
    // through each of the two opaque copies `q` of the stack pointer), then the lower spins
    // are rebuilt from the gamma structure (adds only). A barrier after every entry keeps at
    // most acc + partial products + one entry live: 14 vectors.
    //
    // A loop, not three unrolled copies: unrolled, the kernel was 31 KB of machine code, D
    // and D† together twice the 32 KB L1i, crowding out the network kernels that alternate
    // with them in a preconditioned solve (alone, the two forms run at the same speed:
    // BENCHMARKS.md, "The Wilson-clover kernel as loops too"). Colour c reads row c of U
    // (entries 3c..3c+3) on forward hops and column c (entries c, c+3, c+6) on backward
    // ones, and writes component c of each output spin: three pointers that move with c;
    // everything else is an immediate.
    let step_row = 2 * 3 * vb as i64;
    let step_col = 2 * vb as i64;
    for_count(e.b, 3, &mut |b, c| {
        let mut e = Emit::new(b, ty, host);
        e.opaque_true = opaque;
        let zero = e.zero();
        let row = e.b.ins().imul_imm_s(c, step_row);
        let row = e.b.ins().iadd(site_links, row);
        let col = e.b.ins().imul_imm_s(c, step_col);
        let dst = e.b.ins().iadd(acc_buf, col);
        let col = e.b.ins().iadd(site_links, col);
        // The copies are block parameters from the first barrier on, defined inside the
        // loop after pass 1's stores: a pure load through them can neither be hoisted out
        // of the loop nor above those stores (through `stack` itself, a loop-invariant
        // address, it could be).
        let mut q = {
            let v = e.barrier_with(&[stack, stack], &[decoy, decoy]);
            [v[0], v[1]]
        };
        let mut acc: Option<[Cx; 4]> = None;
        for (h, &(mu, fwd)) in hops().iter().enumerate() {
            let mat = if fwd { row } else { col };
            let hop_off = (h * d.matrix_bytes()) as i32;
            let mut t: Option<[Cx; 2]> = None;
            for bb in 0..3 {
                // Backward hops use U_mu(x - mu)^dagger, stored untransposed at x.
                let idx = if fwd { bb } else { bb * 3 } as i32;
                let u = Cx {
                    re: e.load_pure(mat, hop_off + 2 * idx * vb),
                    im: e.load_pure(mat, hop_off + (2 * idx + 1) * vb),
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
                    // Each product term as its own instruction (fma for the u.re term
                    // into the running sum, mul + add/sub for the u.im term): every load
                    // is then elaborated right before the one instruction that reads it
                    // and folds into it, and the non-destructive vmulps needs no register
                    // copy of u.im. conj(u) for U^dagger: the signs of the u.im terms flip.
                    if fwd {
                        Cx { re: e.sub(re, re2), im: e.add(im, im2) }
                    } else {
                        Cx { re: e.add(re, re2), im: e.sub(im, im2) }
                    }
                });
                // Also after the last entry: a partial product with two uses (upper and
                // lower spin) would stop its loads from folding, a block parameter does
                // not. Accumulators first: the elaborator emits the operands in order, so
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
            // The update in a block of its own: folded into the next hop's first block it
            // would overlap that block's products (18 vectors live).
            let vals = [upper[0], upper[1], lower[0], lower[1]];
            let (v, nq) = barrier_state(&mut e, &vals, q, stack, decoy, zero);
            q = nq;
            acc = Some([v[0], v[1], v[2], v[3]]);
        }
        // `dst` = acc_buf + 2c vectors with c < 3: inside the stack slot's spinor region.
        for (s, a) in acc.expect("8 hops").iter().enumerate() {
            e.store_cx(*a, dst, comp(s, 0));
        }
    });
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
    let term = SiteTerm::BlockSelfPlusHop(-0.5);
    let list = [SiteKernel { term, dagger: false }, SiteKernel { term, dagger: true }];
    let SiteKernels { kernels, ids, plans } =
        compile_site_kernels(desc, "wilson_clover", &list, keep_listings)?;
    Ok(DiracKernels { kernels, d: ids[0], ddag: ids[1], plans })
}

/// A set of site kernels of one layout, in the order they were asked for.
pub struct SiteKernels {
    pub kernels: CompiledKernels,
    pub ids: Vec<KernelId>,
    pub plans: Vec<KernelPlan>,
}

/// The name of a site kernel: the full D keeps its historical name (`wilson_clover_f32`,
/// `..._dagger`); other terms are `{layer}_{term}_{precision}[_dagger]`.
fn kernel_name(layer: &str, k: SiteKernel, prec: Precision) -> String {
    let dag = if k.dagger { "_dagger" } else { "" };
    if k.term == SiteTerm::BlockSelfPlusHop(-0.5) && layer == "wilson_clover" {
        format!("wilson_clover_{}{dag}", prec.name())
    } else {
        format!("{layer}_{}_{}{dag}", k.term.name(), prec.name())
    }
}

/// Emit every kernel of `list` for `desc` in one JIT session; `layer` names them and their
/// plans.
pub fn compile_site_kernels(
    desc: &DiracDesc,
    layer: &str,
    list: &[SiteKernel],
    keep_listings: bool,
) -> Result<SiteKernels, JitError> {
    let mut jit = Jit::new()?;
    jit.keep_listings = keep_listings;
    let prec = desc.precision;
    let names: Vec<String> = list.iter().map(|&k| kernel_name(layer, k, prec)).collect();
    let ids = list
        .iter()
        .zip(&names)
        .map(|(&k, name)| define_kernel(&mut jit, desc, name, k))
        .collect::<Result<Vec<_>, _>>()?;
    let kernels = jit.finish()?;
    let (vo, l) = (desc.outer_volume, prec.lanes());
    let vol = (vo * l) as f64;
    let sz = prec.bytes() as f64;
    let plans = list
        .iter()
        .zip(&names)
        .map(|(&k, name)| {
            let mut loops = vec![format!("for outer site in 0..{vo} (rayon, {l} sites per vector)")];
            if k.term.hops() {
                loops.push("  for hop in 0..8: half spinor (1 -/+ gamma_mu) psi(x +/- mu) into stack (lane-crossing: pshufd)".into());
                loops.push("  for colour in 0..3 (loop): for hop in 0..8: U row x 2 half-spinor vectors into 4 spin accumulators (registers), then to stack".into());
            }
            loops.push(format!("  for chirality block in 0..2 (loop): site term {:?}, 6 rows", k.term));
            let mut fused = Vec::new();
            if k.term.hops() {
                fused.extend(["spin projection", "SU(3) on half spinors", "spin reconstruction"]);
            }
            if !matches!(k.term, SiteTerm::SelfPlusHop(_)) {
                fused.push("2x Hermitian 6x6 block");
            }
            if k.term.hops() && k.term.reads_self() {
                fused.push("axpy with the own input");
            }
            KernelPlan {
                layer: layer.into(),
                pass: Pass::Forward,
                strategy: Strategy::Jit,
                reason: format!(
                    "{layer}: {:?}{}",
                    k.term,
                    if k.dagger { " (dagger projectors)" } else { "" }
                ),
                loops,
                layout: format!(
                    "AoSoA-{l} over sites (virtual nodes), re/im split, {}x{l}",
                    prec.name()
                ),
                fused: fused.into_iter().map(String::from).collect(),
                flops: k.term.flops_per_site() as f64 * vol,
                bytes: k.term.reals_per_site(desc.links.reals()) * sz * vol,
                compile_time: kernels
                    .records
                    .iter()
                    .find(|r| &r.name == name)
                    .map(|r| r.compile_time)
                    .unwrap_or_default(),
                kernels: vec![name.clone()],
            }
        })
        .collect();
    Ok(SiteKernels { kernels, ids, plans })
}
