//! The weight gradient of gauge-equivariant pooling as a JIT kernel (models.md §1.7, §1.8).
//!
//! Pooling and unpooling themselves are the block restriction and prolongation of
//! `codegen::block` with the 12 rows of G(x) as the basis; what they lack is the gradient of
//! the local spin weights w_i(x) of G(x) = Σ_i w_i(x) ⊗ Ĝ_i(x). For pooling (coarse gradient
//! λ, input ψ) and for unpooling (coarse input ζ, output gradient h) it has the same form:
//!
//! ```text
//! grad w_i(x)[s][t] = Σ_a E(X(x))_{s a} · conj(g_i(x)_{t a}),   g_i(x) = Ĝ_i(x) f(x)
//! ```
//!
//! with (E, f) = (λ, ψ) or (ζ, h). The kernel runs on the block kernels' boxes (every lane of a
//! box stays in one block), reads the coarse field lane-expanded `E[box][k][re/im][lane]`
//! (k = 3 s + a), the transports `[box][site in box][path][9][re/im][lane]` and the fine field
//! in the Dirac layout, and writes `[box][site in box][path][16 (s, t)][re/im][lane]`; the
//! runtime scatters that into the parameter layout. Every offset is computed from the
//! compile-time shape constants of [`PoolGradDesc`], so its memory accesses are bounded by the
//! [`KernelSpec`] alone, whatever the `.sym` says.

use super::block::BlockDesc;
use super::complex::{Cx, Emit};
use super::jit::{BufSpec, CompiledKernels, Jit, JitError, KernelId, KernelSpec};
use super::lattice_layout::FIELD_COMPONENTS;
use super::loops::{for_nest_ptrs, for_range, linear, unflatten};
use super::plan::{KernelPlan, Pass, Strategy};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, types};

/// The shapes the pooling weight-gradient kernel is specialised for: the block kernels' boxes
/// and the number of transport paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolGradDesc {
    pub block: BlockDesc,
    pub n_paths: usize,
}

impl PoolGradDesc {
    fn vbytes(&self) -> usize {
        self.block.precision.lanes() * self.block.precision.bytes()
    }
    fn sites(&self) -> usize {
        self.block.n_boxes() * self.block.box_volume()
    }
    /// Scalars of the transport table.
    pub fn transports_len(&self) -> usize {
        self.sites() * self.n_paths * 18 * self.block.precision.lanes()
    }
    /// Scalars of the output.
    pub fn out_len(&self) -> usize {
        self.sites() * self.n_paths * 32 * self.block.precision.lanes()
    }
    /// Flops of one call: per site and path a 3×3 matrix on 4 spins, then 16 × 3 complex
    /// multiply-adds.
    pub fn flops(&self) -> f64 {
        let sites = (self.sites() * self.block.precision.lanes()) as f64;
        sites * self.n_paths as f64 * (4.0 * 66.0 + 16.0 * 3.0 * 8.0)
    }
    /// Bytes of one call: transports, output, one fine field, the expanded coarse field.
    pub fn bytes(&self) -> f64 {
        let sz = self.block.precision.bytes();
        let fine = self.sites() * FIELD_COMPONENTS * self.block.precision.lanes();
        ((self.transports_len() + self.out_len() + fine + self.block.expanded_len()) * sz) as f64
    }
    fn check(&self) -> Result<(), JitError> {
        let b = &self.block;
        let ok = (0..4).all(|mu| b.boxes[mu] > 0 && b.outer_dims[mu].is_multiple_of(b.boxes[mu]));
        if !ok || b.n_basis != 12 || self.n_paths == 0 {
            return Err(JitError::Unsupported(format!(
                "pooling gradient: boxes {:?} on {:?}, {} coarse components, {} paths",
                b.boxes, b.outer_dims, b.n_basis, self.n_paths
            )));
        }
        Ok(())
    }
}

/// The compiled kernel with its plan.
pub struct PoolGradKernels {
    pub kernels: CompiledKernels,
    pub wgrad: KernelId,
    pub plans: Vec<KernelPlan>,
}

/// Emit the weight-gradient kernel for `desc`. Buffers: (fine, transports, expanded coarse,
/// output).
pub fn compile(desc: &PoolGradDesc, keep_listings: bool) -> Result<PoolGradKernels, JitError> {
    desc.check()?;
    let d = &desc.block;
    let mut jit = Jit::new()?;
    jit.keep_listings = keep_listings;
    let sz = d.precision.bytes();
    let name = format!("pool_wgrad_{}", d.precision.name());
    let slot = FIELD_COMPONENTS * d.precision.lanes() * sz;
    let spec = KernelSpec {
        name: name.clone(),
        buffers: vec![
            BufSpec { name: "fine".into(), bytes: d.ext_slots * slot, writable: false },
            BufSpec {
                name: "transports".into(),
                bytes: desc.transports_len() * sz,
                writable: false,
            },
            BufSpec {
                name: "coarse_expanded".into(),
                bytes: d.expanded_len() * sz,
                writable: false,
            },
            BufSpec { name: "grad".into(), bytes: desc.out_len() * sz, writable: true },
        ],
        items: d.n_boxes(),
        parallel: true,
    };
    let np = desc.n_paths;
    let vb = desc.vbytes() as i64;
    let site_tr = np as i64 * 18 * vb;
    let site_out = np as i64 * 32 * vb;
    let ty = d.precision.vector();
    let (bd, od, bo) = (d.box_dims(), d.outer_dims, d.boxes);
    let bvol = d.box_volume() as i64;
    let wgrad = jit.define(spec, |b, [args, start, end], host| {
        let [fine, tr, expanded, out]: [Value; 4] = std::array::from_fn(|k| {
            b.ins().load(types::I64, MemFlagsData::trusted(), args, (k * 8) as i32)
        });
        for_range(b, start, end, |b, bx| {
            // The box's first outer site (as in `codegen::block`) and its table rows.
            let digits = unflatten(b, bx, &[bd[3], bd[2], bd[1], bd[0]]);
            let stride = [1, od[0], od[0] * od[1], od[0] * od[1] * od[2]];
            let strides: Vec<i64> =
                (0..4).rev().map(|mu| (bo[mu] * stride[mu]) as i64 * slot as i64).collect();
            let off = linear(b, &digits, &strides);
            let fine_ptr = b.ins().iadd(fine, off);
            let toff = b.ins().imul_imm_s(bx, bvol * site_tr);
            let tr_ptr = b.ins().iadd(tr, toff);
            let ooff = b.ins().imul_imm_s(bx, bvol * site_out);
            let out_ptr = b.ins().iadd(out, ooff);
            let eoff = b.ins().imul_imm_s(bx, 12 * 2 * vb);
            let eb = b.ins().iadd(expanded, eoff);
            let box_stride = [1, bo[0], bo[0] * bo[1], bo[0] * bo[1] * bo[2]];
            let nest: Vec<Vec<i64>> = (0..4)
                .rev()
                .map(|mu| {
                    let bs = box_stride[mu] as i64;
                    vec![stride[mu] as i64 * slot as i64, bs * site_tr, bs * site_out]
                })
                .collect();
            for_nest_ptrs(
                b,
                &[bo[3], bo[2], bo[1], bo[0]],
                &nest,
                &[fine_ptr, tr_ptr, out_ptr],
                &mut |b, p| {
                    let (psi, tp, op) = (p[0], p[1], p[2]);
                    let mut e = Emit::new(b, ty, host);
                    let vbi = e.vbytes;
                    for t in 0..4 {
                        let f: [Cx; 3] =
                            std::array::from_fn(|c| e.load_cx(psi, 2 * (t * 3 + c) as i32 * vbi));
                        for i in 0..np {
                            let g = e.su3_mul(tp, (i * 18) as i32 * vbi, &f, false);
                            for s in 0..4 {
                                let z = e.zero();
                                let mut acc = Cx { re: z, im: z };
                                for (a, ga) in g.iter().enumerate() {
                                    let ek = e.load_cx(eb, 2 * (s * 3 + a) as i32 * vbi);
                                    acc = e.cmac_rconj(acc, ek, *ga);
                                }
                                let o = 2 * (i * 16 + s * 4 + t) as i32 * vbi;
                                e.store_cx(acc, op, o);
                            }
                        }
                    }
                },
            );
        });
        b.ins().return_(&[]);
    })?;
    let kernels = jit.finish()?;
    let l = d.precision.lanes();
    let plan = KernelPlan {
        layer: "pool".into(),
        pass: Pass::BackwardParams,
        strategy: Strategy::Jit,
        reason: "pooling weights: colour-traced spin outer products E(X) conj(G_i f)".into(),
        loops: vec![
            format!("for box in 0..{} (rayon)", d.n_boxes()),
            format!("  for outer site in box {:?} ({l} sites per vector, one block per lane)", bo),
            format!(
                "    for spin t, path in 0..{np}: G_i f_t (3x3 on a colour triple), then 4 x 3 complex FMAs per s"
            ),
        ],
        layout: format!(
            "fine AoSoA-{l} (Dirac layout), transports [box][site][path][9][re/im][lane], coarse lane-expanded [box][k][re/im][lane], {}x{l}",
            d.precision.name()
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
        kernels: vec![name],
    };
    Ok(PoolGradKernels { kernels, wgrad, plans: vec![plan] })
}
