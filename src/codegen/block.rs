//! Restriction P† and prolongation P of a two-level multigrid as JIT kernels: the weightless
//! block projection onto a block-orthonormal basis (models.md §1.6), on fine fields in the
//! AoSoA layout of the Dirac kernel (`lattice_layout`).
//!
//! ```text
//! (P† psi)_k(X) = sum_{x in X} u_k(x)^dagger psi(x)      (P chi)(x) = sum_k u_k(x) chi_k(X(x))
//! ```
//!
//! **SIMD over sites, no table.** A vector holds the same outer site of every sub-lattice, so
//! its lanes sit in different blocks. The kernels work on *boxes*: rectangular groups of outer
//! sites such that every lane stays in one block over the whole box (the runtime chooses the
//! box: the block extent across the split direction, `gcd(block, sub-lattice extent)` along
//! it). A box is one work item; its result is one "lane-expanded" coarse entry per basis vector
//! and lane, `E[box][k][re/im][lane]`, which the runtime folds into the coarse vector (lanes of
//! the same block summed) or unfolds from it. Box coordinates, outer sites and every offset are
//! computed from compile-time shape constants, so the kernels read no index table and their
//! memory accesses are bounded by the [`KernelSpec`] alone.
//!
//! **Basis layout** `[box][outer site in box, x fastest][k][24 components][lane]`: the kernels
//! stream it once per application.
//!
//! **Register use.** P† runs per outer site and spin: the 3 colour components of psi (6
//! vectors) stay in registers while every `E[box][k]` accumulates 3 conjugated products (pure
//! basis loads placed next to their FMAs). P runs per outer site and spin with 3 colour
//! accumulators; a barrier after each basis vector keeps its coarse entry's loads next to
//! their use (see `Emit::barrier`), so about 10 vectors are live and nothing spills.

use super::complex::{Cx, Emit};
use super::jit::{BufSpec, CompiledKernels, Jit, JitError, KernelId, KernelSpec};
use super::lattice_layout::FIELD_COMPONENTS;
use super::loops::{for_nest_ptrs, for_range, linear, unflatten};
use super::plan::{KernelPlan, Pass, Strategy};
use super::simd::Precision;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, types};

/// The shapes the block-transfer kernels are specialised for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDesc {
    /// Outer lattice of the fine layout (lattice / lanes along the split direction).
    pub outer_dims: [usize; 4],
    /// Box extent in outer sites per direction; must divide `outer_dims`.
    pub boxes: [usize; 4],
    /// Slots of a fine buffer (main + ghosts), for the buffer sizes.
    pub ext_slots: usize,
    pub n_basis: usize,
    pub precision: Precision,
}

impl BlockDesc {
    fn lanes(&self) -> usize {
        self.precision.lanes()
    }
    fn sz(&self) -> usize {
        self.precision.bytes()
    }
    fn slot_bytes(&self) -> usize {
        FIELD_COMPONENTS * self.lanes() * self.sz()
    }
    /// Boxes per direction.
    pub fn box_dims(&self) -> [usize; 4] {
        std::array::from_fn(|mu| self.outer_dims[mu] / self.boxes[mu])
    }
    /// Work items: one per box.
    pub fn n_boxes(&self) -> usize {
        self.box_dims().iter().product()
    }
    /// Outer sites per box.
    pub fn box_volume(&self) -> usize {
        self.boxes.iter().product()
    }
    fn site_basis_bytes(&self) -> usize {
        self.n_basis * self.slot_bytes()
    }
    /// Scalars of the basis buffer.
    pub fn basis_len(&self) -> usize {
        self.n_boxes() * self.box_volume() * self.n_basis * FIELD_COMPONENTS * self.lanes()
    }
    /// Scalars of the lane-expanded coarse buffer `E[box][k][re/im][lane]`.
    pub fn expanded_len(&self) -> usize {
        self.n_boxes() * self.n_basis * 2 * self.lanes()
    }
    fn expanded_box_bytes(&self) -> usize {
        self.n_basis * 2 * self.lanes() * self.sz()
    }
    /// Flops of one application (either direction): 12 complex multiply-adds per site and
    /// basis vector.
    pub fn flops(&self) -> f64 {
        let sites = (self.outer_dims.iter().product::<usize>() * self.lanes()) as f64;
        sites * self.n_basis as f64 * 12.0 * 8.0
    }
    /// Bytes of one application: the basis, one fine field, the expanded coarse field.
    pub fn bytes(&self) -> f64 {
        let sites = self.outer_dims.iter().product::<usize>();
        ((self.basis_len() + self.expanded_len()) * self.sz() + sites * self.slot_bytes()) as f64
    }

    fn check(&self) -> Result<(), JitError> {
        let ok = (0..4).all(|mu| {
            self.boxes[mu] > 0
                && self.outer_dims[mu] > 0
                && self.outer_dims[mu] % self.boxes[mu] == 0
        });
        if !ok || self.n_basis == 0 {
            return Err(JitError::Unsupported(format!(
                "block kernels: boxes {:?} do not tile the outer lattice {:?} (n_basis {})",
                self.boxes, self.outer_dims, self.n_basis
            )));
        }
        Ok(())
    }
}

/// Byte offset of component (spin s, colour c) within a slot: `[24 comps][lane]`.
fn comp(e: &Emit, s: usize, c: usize) -> i32 {
    2 * (s * 3 + c) as i32 * e.vbytes
}

/// For every box in `[start, end)`: the fine and basis pointers of its first outer site, and
/// the box index. Calls `body(b, box, fine_ptr, basis_ptr)` inside the item loop.
fn for_boxes(
    b: &mut cranelift_frontend::FunctionBuilder,
    d: &BlockDesc,
    start: Value,
    end: Value,
    fine: Value,
    basis: Value,
    mut body: impl FnMut(&mut cranelift_frontend::FunctionBuilder, Value, Value, Value),
) {
    let bd = d.box_dims();
    let od = d.outer_dims;
    let slot = d.slot_bytes() as i64;
    for_range(b, start, end, |b, bx| {
        // Box coordinates, outermost (t) first.
        let digits = unflatten(b, bx, &[bd[3], bd[2], bd[1], bd[0]]);
        // Outer index of the box's first site: sum_mu (b_mu * boxes_mu) * stride_mu.
        let stride = [1, od[0], od[0] * od[1], od[0] * od[1] * od[2]];
        let strides: Vec<i64> =
            (0..4).rev().map(|mu| (d.boxes[mu] * stride[mu]) as i64 * slot).collect();
        let off = linear(b, &digits, &strides);
        let fine_ptr = b.ins().iadd(fine, off);
        let boff = b.ins().imul_imm_s(bx, (d.box_volume() * d.site_basis_bytes()) as i64);
        let basis_ptr = b.ins().iadd(basis, boff);
        body(b, bx, fine_ptr, basis_ptr);
    });
}

/// The loop over the outer sites of one box with the fine and basis pointers advanced.
fn for_box_sites(
    b: &mut cranelift_frontend::FunctionBuilder,
    d: &BlockDesc,
    fine_ptr: Value,
    basis_ptr: Value,
    body: &mut dyn FnMut(&mut cranelift_frontend::FunctionBuilder, &[Value]),
) {
    let od = d.outer_dims;
    let bo = d.boxes;
    let slot = d.slot_bytes() as i64;
    let sb = d.site_basis_bytes() as i64;
    let fine_stride = [1, od[0], od[0] * od[1], od[0] * od[1] * od[2]];
    let basis_stride = [1, bo[0], bo[0] * bo[1], bo[0] * bo[1] * bo[2]];
    let strides: Vec<Vec<i64>> = (0..4)
        .rev()
        .map(|mu| vec![fine_stride[mu] as i64 * slot, basis_stride[mu] as i64 * sb])
        .collect();
    for_nest_ptrs(b, &[bo[3], bo[2], bo[1], bo[0]], &strides, &[fine_ptr, basis_ptr], body);
}

fn load_args(b: &mut cranelift_frontend::FunctionBuilder, args: Value) -> [Value; 3] {
    std::array::from_fn(|k| b.ins().load(types::I64, MemFlagsData::trusted(), args, (k * 8) as i32))
}

fn fine_buf(d: &BlockDesc, name: &str, writable: bool) -> BufSpec {
    BufSpec { name: name.into(), bytes: d.ext_slots * d.slot_bytes(), writable }
}

fn basis_buf(d: &BlockDesc) -> BufSpec {
    BufSpec { name: "basis".into(), bytes: d.basis_len() * d.sz(), writable: false }
}

fn expanded_buf(d: &BlockDesc, name: &str, writable: bool) -> BufSpec {
    BufSpec { name: name.into(), bytes: d.expanded_len() * d.sz(), writable }
}

/// P†: buffers (fine input, basis, expanded coarse output).
fn define_restrict(jit: &mut Jit, d: &BlockDesc, name: &str) -> Result<KernelId, JitError> {
    let spec = KernelSpec {
        name: name.into(),
        buffers: vec![
            fine_buf(d, "fine", false),
            basis_buf(d),
            expanded_buf(d, "coarse_expanded", true),
        ],
        items: d.n_boxes(),
        parallel: true,
    };
    let n = d.n_basis;
    let ty = d.precision.vector();
    jit.define(spec, |b, [args, start, end], host| {
        let [fine, basis, expanded] = load_args(b, args);
        for_boxes(b, d, start, end, fine, basis, |b, bx, fine_ptr, basis_ptr| {
            let eoff = b.ins().imul_imm_s(bx, d.expanded_box_bytes() as i64);
            let eb = b.ins().iadd(expanded, eoff);
            {
                let mut e = Emit::new(b, ty, host);
                let z = e.zero();
                for k in 0..n {
                    e.store_cx(Cx { re: z, im: z }, eb, 2 * k as i32 * e.vbytes);
                }
            }
            for_box_sites(b, d, fine_ptr, basis_ptr, &mut |b, p| {
                let (psi, ub) = (p[0], p[1]);
                let mut e = Emit::new(b, ty, host);
                let vb = e.vbytes;
                for s in 0..4 {
                    let x: [Cx; 3] = std::array::from_fn(|c| e.load_cx(psi, comp(&e, s, c)));
                    for k in 0..n {
                        let eo = 2 * k as i32 * vb;
                        let mut acc = e.load_cx(eb, eo);
                        for (c, xc) in x.iter().enumerate() {
                            let uo = (k * FIELD_COMPONENTS) as i32 * vb + comp(&e, s, c);
                            let u = Cx { re: e.load_pure(ub, uo), im: e.load_pure(ub, uo + vb) };
                            acc = e.cmac_conj(Some(acc), u, *xc);
                        }
                        e.store_cx(acc, eb, eo);
                    }
                }
            });
        });
        b.ins().return_(&[]);
    })
}

/// P: buffers (expanded coarse input, basis, fine output).
fn define_prolong(jit: &mut Jit, d: &BlockDesc, name: &str) -> Result<KernelId, JitError> {
    let spec = KernelSpec {
        name: name.into(),
        buffers: vec![
            expanded_buf(d, "coarse_expanded", false),
            basis_buf(d),
            fine_buf(d, "fine", true),
        ],
        items: d.n_boxes(),
        parallel: true,
    };
    let n = d.n_basis;
    let ty = d.precision.vector();
    jit.define(spec, |b, [args, start, end], host| {
        let [expanded, basis, fine] = load_args(b, args);
        for_boxes(b, d, start, end, fine, basis, |b, bx, fine_ptr, basis_ptr| {
            let eoff = b.ins().imul_imm_s(bx, d.expanded_box_bytes() as i64);
            let eb = b.ins().iadd(expanded, eoff);
            // True at run time (bx < end inside the item loop), opaque to the optimiser.
            let live = b.ins().icmp(IntCC::SignedLessThan, bx, end);
            for_box_sites(b, d, fine_ptr, basis_ptr, &mut |b, p| {
                let (psi, ub) = (p[0], p[1]);
                let mut e = Emit::new(b, ty, host);
                e.opaque_true = Some(live);
                let vb = e.vbytes;
                for s in 0..4 {
                    let mut acc: Option<[Cx; 3]> = None;
                    for k in 0..n {
                        let ek = e.load_cx(eb, 2 * k as i32 * vb);
                        let next: [Cx; 3] = std::array::from_fn(|c| {
                            let uo = (k * FIELD_COMPONENTS) as i32 * vb + comp(&e, s, c);
                            let u = Cx { re: e.load_pure(ub, uo), im: e.load_pure(ub, uo + vb) };
                            e.cmac(acc.map(|a| a[c]), u, ek)
                        });
                        let v = e.barrier_cx(&next);
                        acc = Some([v[0], v[1], v[2]]);
                    }
                    let acc = acc.expect("n_basis >= 1");
                    for (c, a) in acc.iter().enumerate() {
                        e.store_cx(*a, psi, comp(&e, s, c));
                    }
                }
            });
        });
        b.ins().return_(&[]);
    })
}

/// The compiled P† and P kernels of one shape, with their plans.
pub struct BlockKernels {
    pub kernels: CompiledKernels,
    pub restrict: KernelId,
    pub prolong: KernelId,
    pub plans: Vec<KernelPlan>,
}

/// Emit P† and P for `desc`.
pub fn compile(desc: &BlockDesc, keep_listings: bool) -> Result<BlockKernels, JitError> {
    desc.check()?;
    let mut jit = Jit::new()?;
    jit.keep_listings = keep_listings;
    let p = desc.precision.name();
    let rn = format!("mg_restrict_{p}");
    let pn = format!("mg_prolong_{p}");
    let restrict = define_restrict(&mut jit, desc, &rn)?;
    let prolong = define_prolong(&mut jit, desc, &pn)?;
    let kernels = jit.finish()?;
    let l = desc.lanes();
    let plan = |name: &str, what: &str, inner: &str| KernelPlan {
        layer: "multigrid".into(),
        pass: Pass::Forward,
        strategy: Strategy::Jit,
        reason: what.into(),
        loops: vec![
            format!("for box in 0..{} (rayon)", desc.n_boxes()),
            format!(
                "  for outer site in box {:?} ({l} sites per vector, one block per lane)",
                desc.boxes
            ),
            format!("    for spin in 0..4: {inner}"),
        ],
        layout: format!(
            "fine AoSoA-{l} (Dirac layout), basis [box][site][k][24][lane], coarse lane-expanded [box][k][re/im][lane], {}x{l}",
            desc.precision.name()
        ),
        fused: vec![],
        flops: desc.flops(),
        bytes: desc.bytes(),
        compile_time: kernels
            .records
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.compile_time)
            .unwrap_or_default(),
        kernels: vec![name.into()],
    };
    let plans = vec![
        plan(
            &rn,
            "restriction P^dagger",
            "psi colour triple in registers; for k: E[k] += u_k^dagger psi",
        ),
        plan(&pn, "prolongation P", "3 colour accumulators; for k: += u_k E[k] (barrier per k)"),
    ];
    Ok(BlockKernels { kernels, restrict, prolong, plans })
}
