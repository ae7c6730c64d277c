//! The kernels of a non-gauge coarse layer on a near-null level (Lehner & Wettig's coarse
//! model lPTC_NG, models.md §2.3): out(X) = Σ_p W_p(X) in(X + Δ_p), W_p complex
//! n_basis × n_basis matrices per displacement (and per coarse site when local).
//!
//! - **forward** and **input gradient** are the coarse stencil of `codegen::coarse` (the
//!   Galerkin operator's emitter, specialised to the layer's displacements and to shared or
//!   per-site coefficients): the input gradient ∂L/∂in(Y) = Σ_p W_p(Y − Δ_p)† g(Y − Δ_p) is
//!   the same stencil with displacements −Δ_p and adjoint coefficients, which the runtime
//!   lays out, exactly as D_c† reuses D_c's kernel;
//! - **weight gradient** (this file's own emitter): ∂L/∂W_p(X)[i][j] = g_i(X) conj(in_j(X +
//!   Δ_p)) per site, written as `[X][p][i][j]` interleaved complex; the runtime sums over X
//!   for shared weights. It is a rank-one update per (site, term), a few thousand complex
//!   multiplies on a 2×2×2×4 lattice, so it runs scalar, one site per work item.

use super::coarse::{CoarseDesc, define_stencil, term_sites};
use super::jit::{BufSpec, CompiledKernels, Jit, JitError, KernelId, KernelSpec};
use super::loops::{for_count, for_range};
use super::plan::{KernelPlan, Pass, Strategy};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, types};

/// Scalars of the per-site weight-gradient buffer `[X][term][i][j]` (interleaved complex).
pub fn weight_grad_len(d: &CoarseDesc) -> usize {
    d.volume() * d.terms() * d.n_basis * d.n_basis * 2
}

fn define_weight_grad(jit: &mut Jit, d: &CoarseDesc, name: &str) -> Result<KernelId, JitError> {
    let (n, sz) = (d.n_basis, d.precision.bytes());
    let spec = KernelSpec {
        name: name.into(),
        buffers: vec![
            BufSpec { name: "g".into(), bytes: d.vector_len() * sz, writable: false },
            BufSpec { name: "x".into(), bytes: d.vector_len() * sz, writable: false },
            BufSpec { name: "dw".into(), bytes: weight_grad_len(d) * sz, writable: true },
        ],
        items: d.volume(),
        parallel: true,
    };
    let (dims, offsets, terms) = (d.dims, d.offsets.clone(), d.terms());
    let st = d.precision.scalar();
    let site_bytes = (n * 2 * sz) as i64;
    jit.define(spec, |b, [args, start, end], _host| {
        let a: Vec<_> = (0..3)
            .map(|k: i32| b.ins().load(types::I64, MemFlagsData::trusted(), args, k * 8))
            .collect();
        let (gbuf, xbuf, wbuf) = (a[0], a[1], a[2]);
        for_range(b, start, end, |b, site| {
            let reads = term_sites(b, site, dims, &offsets);
            let goff = b.ins().imul_imm_s(site, site_bytes);
            let gptr = b.ins().iadd(gbuf, goff);
            let woff = b.ins().imul_imm_s(site, (terms * n * n * 2 * sz) as i64);
            let wsite = b.ins().iadd(wbuf, woff);
            let pure = MemFlagsData::trusted().with_readonly().with_can_move();
            for (t, &r) in reads.iter().enumerate() {
                let xoff = b.ins().imul_imm_s(r, site_bytes);
                let xptr = b.ins().iadd(xbuf, xoff);
                let wterm = b.ins().iadd_imm_s(wsite, (t * n * n * 2 * sz) as i64);
                for_count(b, n, &mut |b, i| {
                    let gi = b.ins().imul_imm_s(i, 2 * sz as i64);
                    let gp = b.ins().iadd(gptr, gi);
                    let gr = b.ins().load(st, pure, gp, 0);
                    let gim = b.ins().load(st, pure, gp, sz as i32);
                    let wi = b.ins().imul_imm_s(i, (n * 2 * sz) as i64);
                    let wrow = b.ins().iadd(wterm, wi);
                    for_count(b, n, &mut |b, j| {
                        let xj = b.ins().imul_imm_s(j, 2 * sz as i64);
                        let xp = b.ins().iadd(xptr, xj);
                        let xr = b.ins().load(st, pure, xp, 0);
                        let xi = b.ins().load(st, pure, xp, sz as i32);
                        // g · conj(x): re = gr xr + gi xi, im = gi xr − gr xi.
                        let a1 = b.ins().fmul(gr, xr);
                        let a2 = b.ins().fmul(gim, xi);
                        let re = b.ins().fadd(a1, a2);
                        let b1 = b.ins().fmul(gim, xr);
                        let b2 = b.ins().fmul(gr, xi);
                        let im = b.ins().fsub(b1, b2);
                        let wp = b.ins().iadd(wrow, xj);
                        b.ins().store(MemFlagsData::trusted(), re, wp, 0);
                        b.ins().store(MemFlagsData::trusted(), im, wp, sz as i32);
                    });
                });
            }
        });
        b.ins().return_(&[]);
    })
}

/// The compiled kernels of one coarse layer: the stencil for the forward pass (`fwd`, the
/// layer's displacements), the stencil for the input gradient (`bwd`, the negated
/// displacements; same coefficient layout), and the weight gradient.
pub struct CoarseLayerKernels {
    pub kernels: CompiledKernels,
    pub forward: KernelId,
    pub backward_input: KernelId,
    pub weight_grad: KernelId,
    pub plans: Vec<KernelPlan>,
}

/// Emits the three kernels of a coarse layer. `fwd` holds the layer's displacements (reduced
/// into `0..dims`), `bwd` the same descriptor with each displacement negated.
pub fn compile(
    layer: &str,
    fwd: &CoarseDesc,
    bwd: &CoarseDesc,
    keep_listings: bool,
) -> Result<CoarseLayerKernels, JitError> {
    let in_range = |d: &CoarseDesc| {
        d.offsets.iter().all(|o| (0..4).all(|mu| o[mu] < d.dims[mu]))
            && d.n_basis > 0
            && !d.dims.contains(&0)
            && !d.offsets.is_empty()
    };
    if !in_range(fwd) || !in_range(bwd) || fwd.terms() != bwd.terms() {
        return Err(JitError::Unsupported(format!(
            "coarse layer `{layer}` on {:?} with {} basis vectors and {} terms",
            fwd.dims,
            fwd.n_basis,
            fwd.terms()
        )));
    }
    let mut jit = Jit::new()?;
    jit.keep_listings = keep_listings;
    let p = fwd.precision.name();
    let names = [
        format!("coarse_layer_fwd_{p}"),
        format!("coarse_layer_bwd_input_{p}"),
        format!("coarse_layer_bwd_weight_{p}"),
    ];
    let forward = define_stencil(&mut jit, fwd, &names[0])?;
    let backward_input = define_stencil(&mut jit, bwd, &names[1])?;
    let weight_grad = define_weight_grad(&mut jit, fwd, &names[2])?;
    let kernels = jit.finish()?;
    let time = |k: usize| kernels.records.get(k).map(|r| r.compile_time).unwrap_or_default();
    let l = fwd.precision.lanes();
    let stencil_loops = |d: &CoarseDesc| {
        vec![
            format!("for coarse site in 0..{} ({} terms, periodic)", d.volume(), d.terms()),
            format!("  for row chunk of <= 4 vectors ({l} rows each, {} rows padded)", d.padded()),
            "    for term: for column j: row accumulators += column(re/im) x broadcast x_j".into(),
        ]
    };
    let layout = format!(
        "weights [{}term][j][re/im][i padded], vectors interleaved complex, {p}x{l} over rows",
        if fwd.local { "site][" } else { "" }
    );
    let plans = vec![
        KernelPlan {
            layer: layer.into(),
            pass: Pass::Forward,
            strategy: Strategy::Jit,
            reason: "coarse stencil emitter (shared with D_c) on the layer's displacements".into(),
            loops: stencil_loops(fwd),
            layout: layout.clone(),
            fused: vec![],
            flops: fwd.flops(),
            bytes: fwd.bytes(),
            compile_time: time(0),
            kernels: vec![names[0].clone()],
        },
        KernelPlan {
            layer: layer.into(),
            pass: Pass::BackwardInput,
            strategy: Strategy::Jit,
            reason: "the same stencil on negated displacements with adjoint weights".into(),
            loops: stencil_loops(bwd),
            layout,
            fused: vec![],
            flops: bwd.flops(),
            bytes: bwd.bytes(),
            compile_time: time(1),
            kernels: vec![names[1].clone()],
        },
        KernelPlan {
            layer: layer.into(),
            pass: Pass::BackwardParams,
            strategy: Strategy::Jit,
            reason: "rank-one update g(X) in(X + d)^dagger per site and term, scalar".into(),
            loops: vec![
                format!("for coarse site in 0..{} (parallel)", fwd.volume()),
                format!(
                    "  for term in 0..{}: for i, j in 0..{}: dw = g_i conj(x_j)",
                    fwd.terms(),
                    fwd.n_basis
                ),
            ],
            layout: "per-site gradient [X][term][i][j] interleaved complex".into(),
            fused: vec![],
            flops: (fwd.volume() * fwd.terms() * fwd.n_basis * fwd.n_basis * 6) as f64,
            bytes: ((2 * fwd.vector_len() + weight_grad_len(fwd)) * fwd.precision.bytes()) as f64,
            compile_time: time(2),
            kernels: vec![names[2].clone()],
        },
    ];
    Ok(CoarseLayerKernels { kernels, forward, backward_input, weight_grad, plans })
}
