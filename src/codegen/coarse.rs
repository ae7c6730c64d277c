//! The Galerkin coarse operator D_c = P† D P of a two-level multigrid as a JIT kernel: a
//! 9-point stencil on the coarse lattice with a dense complex n_basis × n_basis matrix per
//! term and coarse site (models.md §1.6, §2.3),
//!
//! ```text
//! y(X) = A_0(X) x(X) + sum_mu [ A_{+mu}(X) x(X + mu) + A_{-mu}(X) x(X - mu) ]
//! ```
//!
//! D_c† is the same kernel on the adjoint coefficients (term d of site X holds
//! `A_{-d}(X + d)^dagger`, built by the runtime), so there is one emitter for both.
//!
//! **SIMD over the output rows, not over sites.** A coarse lattice has tens of sites (2x2x2x4
//! on 8^3x16), too few and too irregular for lane-parallel sites (every direction of extent 2
//! or 4 would cross lanes), but every site does 9 n^2 complex multiply-adds. Each matrix is
//! stored by columns with the real and imaginary parts of a column split and zero-padded to
//! whole vectors (`[X][term][j][re/im][i]`), so a column times one broadcast input component
//! is plain vertical SIMD into the row accumulators, no horizontal sums. Coarse vectors are
//! interleaved complex (`[X][j]` (re, im)), the layout the coarse Krylov solver works in; the
//! accumulators are interleaved by two lane shuffles before each store, and a row count that is
//! not a whole number of vectors stores its last complex number on its own.
//!
//! **No neighbour table.** A work item is one coarse site; the sites its terms read (periodic;
//! on extent 2 the +mu and -mu neighbours are the same site and still two terms of D_c; on
//! extent 1 a site is its own neighbour) are computed from the compile-time extents and
//! displacements, so every access is bounded by the [`KernelSpec`].
//!
//! **One emitter, several stencils.** The terms are a list of displacements and the
//! coefficients may be per site or shared, so the same kernel is the Galerkin operator (9
//! terms, per site) and the forward and input-gradient passes of a coarse layer
//! (`codegen::coarse_layer`: its own displacements, local or global weights).

use super::complex::Emit;
use super::jit::{BufSpec, CompiledKernels, Jit, JitError, KernelId, KernelSpec};
use super::loops::{for_count, for_range, unflatten};
use super::plan::{KernelPlan, Pass, Strategy};
use super::simd::Precision;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{ConstantData, Endianness, InstBuilder, MemFlagsData, Value, types};

/// What a coarse stencil kernel is specialised for: the Galerkin operator's 9 terms, or a
/// coarse layer's displacements (`codegen::coarse_layer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoarseDesc {
    /// Coarse lattice extents.
    pub dims: [usize; 4],
    pub n_basis: usize,
    pub precision: Precision,
    /// Displacement of each term, every component in `0..dims[mu]` (periodic; a backward
    /// step is `dims[mu] - 1`).
    pub offsets: Vec<[usize; 4]>,
    /// One coefficient set per coarse site (`true`) or one shared by every site.
    pub local: bool,
}

impl CoarseDesc {
    /// The Galerkin operator's stencil: term d = 0 the site itself, d = 1 + 2μ the forward and
    /// d = 2 + 2μ the backward neighbour along μ (the order of `lattice::coarse`), per-site
    /// coefficients.
    pub fn galerkin(dims: [usize; 4], n_basis: usize, precision: Precision) -> Self {
        let mut offsets = vec![[0; 4]];
        for mu in 0..4 {
            for back in [false, true] {
                let mut o = [0; 4];
                o[mu] = if back { dims[mu].max(1) - 1 } else { 1 % dims[mu].max(1) };
                offsets.push(o);
            }
        }
        CoarseDesc { dims, n_basis, precision, offsets, local: true }
    }
    fn lanes(&self) -> usize {
        self.precision.lanes()
    }
    fn sz(&self) -> usize {
        self.precision.bytes()
    }
    pub fn volume(&self) -> usize {
        self.dims.iter().product()
    }
    /// Stencil terms per site.
    pub fn terms(&self) -> usize {
        self.offsets.len()
    }
    /// Coefficient sets: one per site, or one.
    fn coeff_sites(&self) -> usize {
        if self.local { self.volume() } else { 1 }
    }
    /// Rows padded to whole vectors.
    pub fn padded(&self) -> usize {
        self.n_basis.div_ceil(self.lanes()) * self.lanes()
    }
    /// Scalars of a coarse vector (interleaved complex).
    pub fn vector_len(&self) -> usize {
        self.volume() * self.n_basis * 2
    }
    /// Scalars of the coefficient buffer `[X][term][j][re/im][i padded]` (X only when local).
    pub fn coeff_len(&self) -> usize {
        self.coeff_sites() * self.terms() * self.n_basis * 2 * self.padded()
    }
    /// Flops of one application (unpadded complex multiply-adds).
    pub fn flops(&self) -> f64 {
        (self.volume() * self.terms() * self.n_basis * self.n_basis * 8) as f64
    }
    /// Bytes of one application: coefficients and the two vectors.
    pub fn bytes(&self) -> f64 {
        ((self.coeff_len() + 2 * self.vector_len()) * self.sz()) as f64
    }
    /// Index into the coefficient buffer of the real part of A_d(X)[i][j] (the imaginary part
    /// is `padded()` further); `x` is ignored for shared coefficients.
    pub fn coeff_index(&self, x: usize, d: usize, i: usize, j: usize) -> usize {
        let x = if self.local { x } else { 0 };
        (((x * self.terms() + d) * self.n_basis + j) * 2) * self.padded() + i
    }
    /// Whether every offset lies in the lattice (what the kernel's address arithmetic needs).
    fn offsets_in_range(&self) -> bool {
        self.offsets.iter().all(|o| (0..4).all(|mu| o[mu] < self.dims[mu]))
    }
}

/// The coarse sites the terms of `site` read: site + offset, periodic, computed from the
/// compile-time extents (a component c + r ≥ L wraps to c + r − L), so every address is bounded
/// by the vector's size.
pub(super) fn term_sites(
    b: &mut cranelift_frontend::FunctionBuilder,
    site: Value,
    dims: [usize; 4],
    offsets: &[[usize; 4]],
) -> Vec<Value> {
    let c = unflatten(b, site, &[dims[3], dims[2], dims[1], dims[0]]);
    let stride = [1, dims[0], dims[0] * dims[1], dims[0] * dims[1] * dims[2]];
    offsets
        .iter()
        .map(|o| {
            let mut r = site;
            for mu in 0..4 {
                if o[mu] == 0 {
                    continue;
                }
                let (cm, lm, s, om) = (c[3 - mu], dims[mu] as i64, stride[mu] as i64, o[mu] as i64);
                let wraps = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, cm, lm - om);
                let fwd = b.ins().iadd_imm_s(r, om * s);
                let wrap = b.ins().iadd_imm_s(r, (om - lm) * s);
                r = b.ins().select(wraps, wrap, fwd);
            }
            r
        })
        .collect()
}

/// Lane shuffle of two vectors as bytes: `mask[i] < 16` picks byte i of `a`, else of `b`.
fn shuffle_bytes(e: &mut Emit, a: Value, b: Value, mask: [u8; 16]) -> Value {
    let m = e.b.func.dfg.immediates.push(ConstantData::from(mask.to_vec()));
    let little = MemFlagsData::new().with_endianness(Endianness::Little);
    let ab = e.b.ins().bitcast(types::I8X16, little, a);
    let bb = e.b.ins().bitcast(types::I8X16, little, b);
    let r = e.b.ins().shuffle(ab, bb, m);
    e.b.ins().bitcast(e.ty, little, r)
}

/// The interleaving masks (low half, high half) of (re, im) vectors for lanes of `bytes` each.
fn interleave_masks(lane_bytes: usize) -> ([u8; 16], [u8; 16]) {
    let lanes = 16 / lane_bytes;
    let mk = |first_lane: usize| {
        std::array::from_fn(|i| {
            let (pair, within) = (i / (2 * lane_bytes), i % (2 * lane_bytes));
            let (src, byte) = (within / lane_bytes, within % lane_bytes);
            ((src * 16) + (first_lane + pair) * lane_bytes + byte) as u8
        })
    };
    (mk(0), mk(lanes / 2))
}

/// The stencil y(X) = Σ_d A_d(X) x(X + offset_d) (the one emitter of D_c, D_c† and the coarse
/// layers' forward and input-gradient passes).
pub(super) fn define_stencil(
    jit: &mut Jit,
    d: &CoarseDesc,
    name: &str,
) -> Result<KernelId, JitError> {
    let vol = d.volume();
    let (n, l, sz) = (d.n_basis, d.lanes(), d.sz());
    let np = d.padded();
    let nv = np / l;
    let spec = KernelSpec {
        name: name.into(),
        buffers: vec![
            BufSpec { name: "x".into(), bytes: d.vector_len() * sz, writable: false },
            BufSpec { name: "y".into(), bytes: d.vector_len() * sz, writable: true },
            BufSpec { name: "coeffs".into(), bytes: d.coeff_len() * sz, writable: false },
        ],
        items: vol,
        parallel: true,
    };
    // Row vectors per pass: at most 4 (8 accumulators, 2 broadcasts, 2 coefficients: 12 of
    // the 16 xmm registers), split evenly.
    let passes = nv.div_ceil(4);
    let chunks: Vec<std::ops::Range<usize>> =
        (0..passes).map(|p| (p * nv / passes)..((p + 1) * nv / passes)).collect();
    let ty = d.precision.vector();
    let dims = d.dims;
    let site_bytes = (n * 2 * sz) as i64;
    let col_bytes = (2 * np * sz) as i64;
    let site_coeff_bytes = if d.local { (d.terms() * n) as i64 * col_bytes } else { 0 };
    let offsets = d.offsets.clone();
    jit.define(spec, |b, [args, start, end], host| {
        let a: Vec<Value> = (0..3)
            .map(|k| b.ins().load(types::I64, MemFlagsData::trusted(), args, (k * 8) as i32))
            .collect();
        let (xbuf, ybuf, cbuf) = (a[0], a[1], a[2]);
        for_range(b, start, end, |b, site| {
            let reads = term_sites(b, site, dims, &offsets);
            let xptrs: Vec<Value> = reads
                .iter()
                .map(|&r| {
                    let off = b.ins().imul_imm_s(r, site_bytes);
                    b.ins().iadd(xbuf, off)
                })
                .collect();
            let coff = b.ins().imul_imm_s(site, site_coeff_bytes);
            let cbase = b.ins().iadd(cbuf, coff);
            let yoff = b.ins().imul_imm_s(site, site_bytes);
            let yptr = b.ins().iadd(ybuf, yoff);
            for chunk in &chunks {
                let zero = Emit::new(b, ty, host).zero();
                // Accumulators re/im per row vector, carried through the column loops.
                let vars: Vec<[cranelift_frontend::Variable; 2]> = chunk
                    .clone()
                    .map(|_| {
                        let re = b.declare_var(ty);
                        let im = b.declare_var(ty);
                        b.def_var(re, zero);
                        b.def_var(im, zero);
                        [re, im]
                    })
                    .collect();
                for (t, &xp) in xptrs.iter().enumerate() {
                    let tbase = b.ins().iadd_imm_s(cbase, t as i64 * n as i64 * col_bytes);
                    for_count(b, n, &mut |b, j| {
                        let xo = b.ins().imul_imm_s(j, 2 * sz as i64);
                        let xj = b.ins().iadd(xp, xo);
                        let co = b.ins().imul_imm_s(j, col_bytes);
                        let col = b.ins().iadd(tbase, co);
                        let mut e = Emit::new(b, ty, host);
                        let pure = MemFlagsData::trusted().with_readonly().with_can_move();
                        let st = d.precision.scalar();
                        let xr = e.b.ins().load(st, pure, xj, 0);
                        let xi = e.b.ins().load(st, pure, xj, sz as i32);
                        let xr = e.b.ins().splat(ty, xr);
                        let xi = e.b.ins().splat(ty, xi);
                        for (k, iv) in chunk.clone().enumerate() {
                            let re_off = (iv * l * sz) as i32;
                            let im_off = ((np + iv * l) * sz) as i32;
                            let ar = e.load_pure(col, re_off);
                            let ai = e.load_pure(col, im_off);
                            let accr = e.b.use_var(vars[k][0]);
                            let acci = e.b.use_var(vars[k][1]);
                            // (ar + i ai)(xr + i xi): re += ar xr - ai xi, im += ar xi + ai xr.
                            let r = e.fma(ar, xr, accr);
                            let r = e.fnma(ai, xi, r);
                            let i = e.fma(ar, xi, acci);
                            let i = e.fma(ai, xr, i);
                            e.b.def_var(vars[k][0], r);
                            e.b.def_var(vars[k][1], i);
                        }
                    });
                }
                // Interleave and store rows chunk.start * l .. chunk.end * l.
                let mut e = Emit::new(b, ty, host);
                let (lo_mask, hi_mask) = interleave_masks(sz);
                let half = l / 2;
                for (k, iv) in chunk.clone().enumerate() {
                    let re = e.b.use_var(vars[k][0]);
                    let im = e.b.use_var(vars[k][1]);
                    for (h, mask) in [lo_mask, hi_mask].into_iter().enumerate() {
                        let first = iv * l + h * half;
                        if first >= n {
                            continue;
                        }
                        let v = shuffle_bytes(&mut e, re, im, mask);
                        let off = (first * 2 * sz) as i32;
                        if first + half <= n {
                            e.store(v, yptr, off);
                        } else {
                            // One complex f32 of a pair: the low 8 bytes.
                            let little = MemFlagsData::new().with_endianness(Endianness::Little);
                            let as64 = e.b.ins().bitcast(types::F64X2, little, v);
                            let low = e.b.ins().extractlane(as64, 0u8);
                            e.b.ins().store(MemFlagsData::trusted(), low, yptr, off);
                        }
                    }
                }
            }
        });
        b.ins().return_(&[]);
    })
}

/// The compiled coarse-operator kernel and its plan.
pub struct CoarseKernels {
    pub kernels: CompiledKernels,
    pub stencil: KernelId,
    pub plans: Vec<KernelPlan>,
}

/// Emit the coarse stencil for `desc` (D_c and D_c† share it; the coefficients differ).
pub fn compile(desc: &CoarseDesc, keep_listings: bool) -> Result<CoarseKernels, JitError> {
    if desc.n_basis == 0 || desc.dims.contains(&0) || !desc.offsets_in_range() {
        return Err(JitError::Unsupported(format!(
            "coarse operator on {:?} with {} basis vectors",
            desc.dims, desc.n_basis
        )));
    }
    let mut jit = Jit::new()?;
    jit.keep_listings = keep_listings;
    let name = format!("mg_coarse_{}", desc.precision.name());
    let stencil = define_stencil(&mut jit, desc, &name)?;
    let kernels = jit.finish()?;
    let l = desc.lanes();
    let plans = vec![KernelPlan {
        layer: "multigrid".into(),
        pass: Pass::Forward,
        strategy: Strategy::Jit,
        reason:
            "Galerkin coarse operator D_c = P^dagger D P (and D_c^dagger with adjoint coefficients)"
                .into(),
        loops: vec![
            format!(
                "for coarse site in 0..{} ({} terms, neighbours computed, periodic)",
                desc.volume(),
                desc.terms()
            ),
            format!(
                "  for row chunk of <= 4 vectors ({l} rows each, {} rows padded)",
                desc.padded()
            ),
            format!(
                "    for term in 0..{}: for column j in 0..n: row accumulators += column(re/im) x broadcast x_j",
                desc.terms()
            ),
            "  interleave (re, im) by lane shuffles, store".into(),
        ],
        layout: format!(
            "coefficients [site][term][j][re/im][i padded], vectors interleaved complex, {}x{l} over rows",
            desc.precision.name()
        ),
        fused: vec![],
        flops: desc.flops(),
        bytes: desc.bytes(),
        compile_time: kernels.records.first().map(|r| r.compile_time).unwrap_or_default(),
        kernels: vec![name],
    }];
    Ok(CoarseKernels { kernels, stencil, plans })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_masks_pair_re_and_im() {
        // f32: lo = (re0, im0, re1, im1), hi = (re2, im2, re3, im3).
        let (lo, hi) = interleave_masks(4);
        assert_eq!(lo, [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23]);
        assert_eq!(hi, [8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31]);
        // f64: lo = (re0, im0), hi = (re1, im1).
        let (lo, hi) = interleave_masks(8);
        assert_eq!(lo, [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]);
        assert_eq!(hi, [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31]);
    }
}
