//! The two tensor-contraction kernel shapes every dense and convolution pass reduces to, plus
//! the data-movement kernels around them (copy/pad/im2col runs, bias + activation epilogue,
//! row sums).
//!
//! All activations live in a **feature-major, batch-minor** layout `[features...][batch]` with
//! the batch padded to a multiple of the vector width: SIMD lanes are samples, so every layer
//! vectorises without shuffles whatever its shape (odd channel counts, 1x1 outputs), and the
//! whole batch of one feature is a contiguous run that a GEMM library can read with plain
//! strides.
//!
//! - [`Nn`]: `C[m, n] = act(sum_k A[m, k] B[k, n] + bias[m])`, vectorised along the contiguous
//!   inner `n` run (samples), `A` broadcast. Forward passes and input gradients. `k` and the
//!   outer `n` may be nests with arbitrary constant strides, which expresses a convolution
//!   directly (implicit im2col) and flipped weights (negative strides).
//! - [`Nt`]: `C[m, k] = sum_n A[m, n] B[k, n]`, dot products along the sample run. Weight
//!   gradients (and, with `ones`, bias gradients).
//!
//! Both register-block the output (several rows times several vectors) with independent
//! accumulators. Before emitting, every operand's address range is computed from the constant
//! strides and checked against the buffer sizes in the kernel spec: the spec is the proof that
//! the code stays in bounds (see `jit.rs`).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::{FunctionBuilder, Variable};

use super::jit::{BufSpec, Jit, JitError, KernelId, KernelSpec};
use super::loops::{for_count, for_nest, for_nest_ptrs, for_range, linear, unflatten};
use super::program::{Buf, Lowering, Step};
use super::simd::{Precision, Target};
use crate::ir::Activation;

/// A buffer argument and the element offset where the operand starts.
#[derive(Clone, Copy, Debug)]
pub struct Operand {
    /// Index into the kernel's buffer list.
    pub buf: usize,
    /// Element offset of the operand inside the buffer.
    pub base: i64,
}

/// One loop of a nest: trip count and the element stride it adds to two operands.
#[derive(Clone, Copy, Debug)]
pub struct Dim {
    pub count: usize,
    /// Stride in the first operand named by the context (`A` for Nn-k, `B` for Nn-n, ...).
    pub s0: i64,
    /// Stride in the second operand.
    pub s1: i64,
}

impl Dim {
    pub fn new(count: usize, s0: i64, s1: i64) -> Dim {
        Dim { count, s0, s1 }
    }
}

/// `C[m, n] = act(sum_k A[m, k] B[k, n] (+ C) + bias[m])`.
#[derive(Clone, Debug)]
pub struct Nn {
    pub name: String,
    pub m: usize,
    /// Row strides of `A` and `C`.
    pub a_m: i64,
    pub c_m: i64,
    /// Reduction nest; `s0` = stride in `A`, `s1` = stride in `B`.
    pub k: Vec<Dim>,
    /// Outer output nest; `s0` = stride in `B`, `s1` = stride in `C`.
    pub n_outer: Vec<Dim>,
    /// Contiguous run (elements, a multiple of the vector width) in `B` and `C`.
    pub n_inner: usize,
    pub a: Operand,
    pub b: Operand,
    pub c: Operand,
    /// Per-row bias added before the activation.
    pub bias: Option<Operand>,
    pub act: Activation,
    /// Add to the existing `C` instead of overwriting it.
    pub accumulate: bool,
    /// Per reduction level, a stride in `C` (empty = none): a *scatter* contraction
    /// `C[m, n + shift(k)] += ...`, used for transposed convolutions. Only the outer levels may
    /// shift `C`; it then requires `accumulate`, and the work items are the row blocks alone
    /// (shifted writes of different output rows overlap).
    pub k_c: Vec<i64>,
}

/// `C[m, k] (+)= sum_n A[m, n] B[k, n]` (or `sum_n A[m, n]` with `ones`).
#[derive(Clone, Debug)]
pub struct Nt {
    pub name: String,
    pub m: usize,
    pub a_m: i64,
    pub c_m: i64,
    /// Output nest over `B` rows; `s0` = stride in `B`, `s1` = stride in `C`. Empty with `ones`.
    pub k: Vec<Dim>,
    /// Outer reduction nest; `s0` = stride in `A`, `s1` = stride in `B`.
    pub n_outer: Vec<Dim>,
    /// Contiguous run (elements, multiple of the vector width) in `A` and `B`.
    pub n_inner: usize,
    pub a: Operand,
    pub b: Operand,
    pub c: Operand,
    pub accumulate: bool,
    /// `B` is all ones: row sums of `A` (bias gradients).
    pub ones: bool,
}

/// `dst[nest] (+)= src[nest]` over runs of `run` contiguous elements: padding, cropping, im2col
/// and col2im. The first `parallel_dims` loops are the work items (they must write disjoint
/// bytes); the rest run inside each item.
#[derive(Clone, Debug)]
pub struct Copy {
    pub name: String,
    /// `s0` = stride in `src`, `s1` = stride in `dst`.
    pub dims: Vec<Dim>,
    pub parallel_dims: usize,
    pub run: usize,
    pub src: Operand,
    pub dst: Operand,
    pub accumulate: bool,
}

/// Rows of the register block in [`Nn`] and [`Nt`] kernels.
const NN_ROWS: usize = 4;
const NN_VECS: usize = 3;
const NT_ROWS: usize = 2;
const NT_COLS: usize = 4;

fn codegen_err(kernel: &str, message: String) -> JitError {
    JitError::Codegen { kernel: kernel.to_string(), message }
}

/// Smallest and largest element offset reached by `base + sum idx_d * stride_d` plus a run.
fn span(base: i64, dims: &[(usize, i64)], run: usize) -> (i64, i64) {
    let (mut lo, mut hi) = (base, base);
    for &(count, stride) in dims {
        let reach = (count as i64 - 1) * stride;
        if reach > 0 { hi += reach } else { lo += reach }
    }
    (lo, hi + run as i64 - 1)
}

/// Prove an operand stays inside its buffer.
fn check_bounds(
    kernel: &str,
    bufs: &[BufSpec],
    prec: Precision,
    what: &str,
    op: Operand,
    dims: &[(usize, i64)],
    run: usize,
    write: bool,
) -> Result<(), JitError> {
    let buf = bufs
        .get(op.buf)
        .ok_or_else(|| codegen_err(kernel, format!("{what}: no buffer {}", op.buf)))?;
    let (lo, hi) = span(op.base, dims, run);
    let len = (buf.bytes / prec.bytes()) as i64;
    if lo < 0 || hi >= len {
        return Err(codegen_err(
            kernel,
            format!(
                "{what} reaches elements {lo}..={hi} of buffer `{}` ({len} elements)",
                buf.name
            ),
        ));
    }
    if write && !buf.writable {
        return Err(codegen_err(kernel, format!("{what} writes read-only buffer `{}`", buf.name)));
    }
    Ok(())
}

fn zero_vars(b: &mut FunctionBuilder, t: &Target, n: usize) -> Vec<Variable> {
    (0..n)
        .map(|_| {
            let v = b.declare_var(t.prec.vector());
            let z = t.vconst(b, 0.0);
            b.def_var(v, z);
            v
        })
        .collect()
}

/// Emit `body(rows)` for the block at `mb`, where every block has `full` rows except a final
/// partial block of `m % full` rows.
fn row_blocks(
    b: &mut FunctionBuilder,
    m: usize,
    full: usize,
    mb: Value,
    body: &mut dyn FnMut(&mut FunctionBuilder, usize),
) {
    let rem = m % full;
    if rem == 0 {
        body(b, full);
        return;
    }
    if m < full {
        body(b, rem);
        return;
    }
    let fullb = b.create_block();
    let partb = b.create_block();
    let done = b.create_block();
    let c = b.ins().icmp_imm_s(IntCC::SignedLessThan, mb, (m / full) as i64);
    b.ins().brif(c, fullb, &[], partb, &[]);
    b.switch_to_block(fullb);
    body(b, full);
    b.ins().jump(done, &[]);
    b.switch_to_block(partb);
    body(b, rem);
    b.ins().jump(done, &[]);
    b.switch_to_block(done);
}

fn count(dims: &[Dim]) -> usize {
    dims.iter().map(|d| d.count).product()
}

impl Nn {
    /// Work items: row blocks times the outer output nest.
    pub fn items(&self) -> usize {
        let (rows, _) = self.block();
        if self.scatter() {
            self.m.div_ceil(rows)
        } else {
            self.m.div_ceil(rows) * count(&self.n_outer)
        }
    }

    fn scatter(&self) -> bool {
        self.k_c.iter().any(|&s| s != 0)
    }

    /// Register block (rows, vectors). The rows must divide `m` where possible: a ragged last
    /// block (4 + 4 + 2 rows for the digit networks' 10 channels) leaves the thread that owns
    /// it idle while the other finishes, and scatter kernels, whose work items are the row
    /// blocks alone, also want an even number of blocks for two threads (2-row blocks gave
    /// 5 items, a 3:2 split). Measured on digits_conv: train step 15.5 -> 13.5 ms CPU. At most
    /// 12 accumulators, so that with the shared operands everything stays in the 16 xmm registers.
    pub fn block(&self) -> (usize, usize) {
        let cands: &[(usize, usize)] = if self.scatter() {
            &[(2, 6), (5, 2), (4, 3), (3, 3), (1, 8)]
        } else {
            &[(NN_ROWS, NN_VECS), (5, 2), (3, 3), (2, 6)]
        };
        let even = |r: usize| !self.scatter() || (self.m / r) % 2 == 0;
        cands
            .iter()
            .find(|&&(r, _)| self.m % r == 0 && even(r))
            .or_else(|| cands.iter().find(|&&(r, _)| self.m % r == 0))
            .copied()
            .unwrap_or(cands[0])
    }

    /// Compile into `jit`; `bufs` are the kernel's buffers (sizes in bytes).
    pub fn emit(
        &self,
        jit: &mut Jit,
        prec: Precision,
        bufs: Vec<BufSpec>,
    ) -> Result<KernelId, JitError> {
        let lanes = prec.lanes();
        if self.n_inner % lanes != 0 || self.m == 0 || self.n_inner == 0 {
            return Err(codegen_err(
                &self.name,
                format!("run {} not a multiple of {lanes}", self.n_inner),
            ));
        }
        let ka: Vec<(usize, i64)> = self.k.iter().map(|d| (d.count, d.s0)).collect();
        let kb: Vec<(usize, i64)> = self.k.iter().map(|d| (d.count, d.s1)).collect();
        let nb: Vec<(usize, i64)> = self.n_outer.iter().map(|d| (d.count, d.s0)).collect();
        let nc: Vec<(usize, i64)> = self.n_outer.iter().map(|d| (d.count, d.s1)).collect();
        let mut adims = ka.clone();
        adims.push((self.m, self.a_m));
        check_bounds(&self.name, &bufs, prec, "A", self.a, &adims, 1, false)?;
        let mut bdims = kb.clone();
        bdims.extend(&nb);
        check_bounds(&self.name, &bufs, prec, "B", self.b, &bdims, self.n_inner, false)?;
        let mut cdims = nc.clone();
        cdims.push((self.m, self.c_m));
        check_bounds(&self.name, &bufs, prec, "C", self.c, &cdims, self.n_inner, true)?;
        if let Some(bias) = self.bias {
            check_bounds(&self.name, &bufs, prec, "bias", bias, &[(self.m, 1)], 1, false)?;
        }
        let spec = KernelSpec {
            name: self.name.clone(),
            buffers: bufs,
            items: self.items(),
            parallel: true,
        };
        jit.define(spec, |b, [args, start, end], host| {
            let t = Target { prec, host };
            let eb = prec.bytes() as i64;
            let pa = t.arg_ptr(b, args, self.a.buf);
            let pb = t.arg_ptr(b, args, self.b.buf);
            let pc = t.arg_ptr(b, args, self.c.buf);
            let pbias = self.bias.map(|o| {
                let p = t.arg_ptr(b, args, o.buf);
                t.offset_const(b, p, o.base)
            });
            let (nn_rows, nn_vecs) = self.block();
            let scatter = self.scatter();
            let mut radix = vec![self.m.div_ceil(nn_rows)];
            if !scatter {
                radix.extend(self.n_outer.iter().map(|d| d.count));
            }
            let sb: Vec<i64> = self.n_outer.iter().map(|d| d.s0).collect();
            let sc: Vec<i64> = self.n_outer.iter().map(|d| d.s1).collect();
            let k_c: Vec<i64> =
                (0..self.k.len()).map(|i| self.k_c.get(i).copied().unwrap_or(0) * eb).collect();
            // With a nested reduction (convolutions), only the innermost level runs in
            // registers; the outer levels accumulate through C, whose row block stays in L1
            // while the input rows it needs are streamed once per outer step.
            let split = self.k.len() >= 2;
            let (k_mem, k_reg) =
                if split { self.k.split_at(self.k.len() - 1) } else { (&self.k[..0], &self.k[..]) };
            let counts = |d: &[Dim]| d.iter().map(|d| d.count).collect::<Vec<_>>();
            let ab_strides =
                |d: &[Dim]| d.iter().map(|d| vec![d.s0 * eb, d.s1 * eb]).collect::<Vec<_>>();
            let nvec = self.n_inner / lanes;
            let chunks = nvec / nn_vecs;
            let rem = nvec % nn_vecs;
            let step = (nn_vecs * lanes) as i64 * eb;
            for_range(b, start, end, |b, item| {
                let digits = unflatten(b, item, &radix);
                let mb = digits[0];
                let boff = linear(b, &digits[1..], &sb);
                let coff = linear(b, &digits[1..], &sc);
                let m0 = b.ins().imul_imm_s(mb, nn_rows as i64);
                let arow = b.ins().imul_imm_s(m0, self.a_m);
                let a0 = t.offset(b, pa, arow);
                let a0 = t.offset_const(b, a0, self.a.base);
                let b0 = t.offset(b, pb, boff);
                let b0 = t.offset_const(b, b0, self.b.base);
                let crow = b.ins().imul_imm_s(m0, self.c_m);
                let crow = b.ins().iadd(crow, coff);
                let c0 = t.offset(b, pc, crow);
                let c0 = t.offset_const(b, c0, self.c.base);
                let biasrow = pbias.map(|p| t.offset(b, p, m0));
                row_blocks(b, self.m, nn_rows, mb, &mut |b, rows| {
                    // One register block: rows x vecs accumulators over the k_reg nest.
                    let block = |b: &mut FunctionBuilder,
                                 vecs: usize,
                                 ak: Value,
                                 bn: Value,
                                 cn: Value,
                                 through_c: bool| {
                        let acc: Vec<Variable> = (0..rows * vecs)
                            .map(|i| {
                                let v = b.declare_var(prec.vector());
                                let init = if through_c {
                                    t.vload(
                                        b,
                                        cn,
                                        (i / vecs) as i64 * self.c_m + ((i % vecs) * lanes) as i64,
                                    )
                                } else {
                                    t.vconst(b, 0.0)
                                };
                                b.def_var(v, init);
                                v
                            })
                            .collect();
                        // The reduction stays a loop: its back edge carries the accumulators,
                        // so cranelift keeps the FMAs of one step independent (a fully unrolled
                        // window row was elaborated into serial per-accumulator chains with the
                        // broadcasts hoisted and spilled, measured 3x slower).
                        let mut kc = counts(k_reg);
                        let mut ks = ab_strides(k_reg);
                        // Two reduction steps per iteration halve the loop control and the moves
                        // on the back edge (each FMA result lands in a copied factor's register,
                        // not the accumulator's): conv step 14.1 -> 12.8 ms CPU. Unrolling by 5
                        // or 10 measured slower (13.3, 13.9 ms).
                        let (unroll, u0, u1) = match k_reg.last() {
                            Some(d) if d.count % 2 == 0 => (2usize, d.s0, d.s1),
                            _ => (1, 0, 0),
                        };
                        if let (Some(c), Some(st)) = (kc.last_mut(), ks.last_mut()) {
                            *c /= unroll;
                            for s in st.iter_mut() {
                                *s *= unroll as i64;
                            }
                        }
                        for_nest_ptrs(b, &kc, &ks, &[ak, bn], &mut |b, p| {
                            for u in 0..unroll as i64 {
                                let xs: Vec<Value> = (0..vecs)
                                    .map(|v| t.vload_ro(b, p[1], u * u1 + (v * lanes) as i64))
                                    .collect();
                                for r in 0..rows {
                                    let w = t.splat_load_ro(b, p[0], u * u0 + r as i64 * self.a_m);
                                    for (v, &x) in xs.iter().enumerate() {
                                        let var = acc[r * vecs + v];
                                        let old = b.use_var(var);
                                        // cranelift's x64 FMA overwrites its first
                                        // factor, so that one is copied unless this is
                                        // its last use: pass the operand shared by fewer
                                        // FMAs (W, by `vecs`; x is shared by `rows`).
                                        let new = t.fma(b, w, x, old);
                                        b.def_var(var, new);
                                    }
                                }
                            }
                        });
                        for r in 0..rows {
                            let bias = if through_c {
                                None
                            } else {
                                biasrow.map(|p| t.splat_load(b, p, r as i64))
                            };
                            for v in 0..vecs {
                                let off = r as i64 * self.c_m + (v * lanes) as i64;
                                let mut val = b.use_var(acc[r * vecs + v]);
                                if !through_c {
                                    if self.accumulate {
                                        let old = t.vload(b, cn, off);
                                        val = b.ins().fadd(val, old);
                                    }
                                    if let Some(bias) = bias {
                                        val = b.ins().fadd(val, bias);
                                    }
                                    val = t.activate(b, self.act, val);
                                }
                                t.vstore(b, val, cn, off);
                            }
                        }
                    };
                    // All register blocks of the row block's n run, for one k_mem step.
                    let sweep = |b: &mut FunctionBuilder,
                                 ak: Value,
                                 bk: Value,
                                 ck: Value,
                                 through_c: bool| {
                        for_nest_ptrs(b, &[chunks], &[vec![step, step]], &[bk, ck], &mut |b, p| {
                            block(b, nn_vecs, ak, p[0], p[1], through_c)
                        });
                        if rem > 0 {
                            let off = chunks as i64 * step;
                            let bn = b.ins().iadd_imm_s(bk, off);
                            let cn = b.ins().iadd_imm_s(ck, off);
                            block(b, rem, ak, bn, cn, through_c);
                        }
                    };
                    if !split {
                        sweep(b, a0, b0, c0, false);
                        return;
                    }
                    if scatter {
                        // Every (output row, shift) step adds into C; the caller zeroed it.
                        // Output rows outermost: the C rows one row receives (a window's height)
                        // and its B row stay in L1 while the shifts run.
                        let mut strides = ab_strides(k_mem);
                        for (s, &c) in strides.iter_mut().zip(&k_c) {
                            s.push(c);
                        }
                        let ns: Vec<Vec<i64>> =
                            self.n_outer.iter().map(|d| vec![d.s0 * eb, d.s1 * eb]).collect();
                        for_nest_ptrs(b, &counts(&self.n_outer), &ns, &[b0, c0], &mut |b, q| {
                            for_nest_ptrs(
                                b,
                                &counts(k_mem),
                                &strides,
                                &[a0, q[0], q[1]],
                                &mut |b, p| sweep(b, p[0], p[1], p[2], true),
                            );
                        });
                        return;
                    }
                    // Start value of C: bias (or zero), unless accumulating into it.
                    let lane_step = lanes as i64 * eb;
                    if !self.accumulate {
                        for r in 0..rows {
                            let init = match biasrow {
                                Some(p) => t.splat_load(b, p, r as i64),
                                None => t.vconst(b, 0.0),
                            };
                            let cr = b.ins().iadd_imm_s(c0, r as i64 * self.c_m * eb);
                            for_nest_ptrs(b, &[nvec], &[vec![lane_step]], &[cr], &mut |b, pv| {
                                t.vstore(b, init, pv[0], 0)
                            });
                        }
                    }
                    for_nest_ptrs(b, &counts(k_mem), &ab_strides(k_mem), &[a0, b0], &mut |b, p| {
                        sweep(b, p[0], p[1], c0, true)
                    });
                    if self.act != Activation::Identity {
                        for_nest_ptrs(
                            b,
                            &[rows, nvec],
                            &[vec![self.c_m * eb], vec![lane_step]],
                            &[c0],
                            &mut |b, pv| {
                                let x = t.vload(b, pv[0], 0);
                                let y = t.activate(b, self.act, x);
                                t.vstore(b, y, pv[0], 0);
                            },
                        );
                    }
                });
            });
            b.ins().return_(&[]);
        })
    }
}

impl Nt {
    fn k_inner(&self) -> (usize, i64, i64) {
        self.k.last().map_or((1, 0, 0), |d| (d.count, d.s0, d.s1))
    }
    fn k_outer(&self) -> &[Dim] {
        if self.k.is_empty() { &[] } else { &self.k[..self.k.len() - 1] }
    }

    /// Work items: row blocks times all but the innermost output nest level.
    pub fn items(&self) -> usize {
        self.m.div_ceil(NT_ROWS) * count(self.k_outer())
    }

    pub fn emit(
        &self,
        jit: &mut Jit,
        prec: Precision,
        bufs: Vec<BufSpec>,
    ) -> Result<KernelId, JitError> {
        let lanes = prec.lanes();
        if self.n_inner % lanes != 0
            || self.m == 0
            || self.n_inner == 0
            || (self.ones && !self.k.is_empty())
        {
            return Err(codegen_err(&self.name, "malformed contraction".into()));
        }
        let na: Vec<(usize, i64)> = self.n_outer.iter().map(|d| (d.count, d.s0)).collect();
        let nb: Vec<(usize, i64)> = self.n_outer.iter().map(|d| (d.count, d.s1)).collect();
        let mut adims = na.clone();
        adims.push((self.m, self.a_m));
        check_bounds(&self.name, &bufs, prec, "A", self.a, &adims, self.n_inner, false)?;
        if !self.ones {
            let mut bdims: Vec<(usize, i64)> = self.k.iter().map(|d| (d.count, d.s0)).collect();
            bdims.extend(&nb);
            check_bounds(&self.name, &bufs, prec, "B", self.b, &bdims, self.n_inner, false)?;
        }
        let mut cdims: Vec<(usize, i64)> = self.k.iter().map(|d| (d.count, d.s1)).collect();
        cdims.push((self.m, self.c_m));
        check_bounds(&self.name, &bufs, prec, "C", self.c, &cdims, 1, true)?;

        let spec = KernelSpec {
            name: self.name.clone(),
            buffers: bufs,
            items: self.items(),
            parallel: true,
        };
        jit.define(spec, |b, [args, start, end], host| {
            let t = Target { prec, host };
            let eb = prec.bytes() as i64;
            let pa = t.arg_ptr(b, args, self.a.buf);
            let pb = if self.ones { pa } else { t.arg_ptr(b, args, self.b.buf) };
            let pc = t.arg_ptr(b, args, self.c.buf);
            let mut radix = vec![self.m.div_ceil(NT_ROWS)];
            radix.extend(self.k_outer().iter().map(|d| d.count));
            let kob: Vec<i64> = self.k_outer().iter().map(|d| d.s0).collect();
            let koc: Vec<i64> = self.k_outer().iter().map(|d| d.s1).collect();
            let (kin, kin_b, kin_c) = self.k_inner();
            let mut ncounts: Vec<usize> = self.n_outer.iter().map(|d| d.count).collect();
            ncounts.push(self.n_inner / lanes);
            let mut nstrides: Vec<Vec<i64>> =
                self.n_outer.iter().map(|d| vec![d.s0 * eb, d.s1 * eb]).collect();
            // Two vectors of the sample run per iteration when the run allows it, for the same
            // reason as in `Nn` (loop control, back-edge moves): conv step 12.9 -> 11.9 ms CPU.
            let nun = if (self.n_inner / lanes) % 2 == 0 { 2 } else { 1 };
            if let Some(c) = ncounts.last_mut() {
                *c /= nun;
            }
            nstrides.push(vec![(nun * lanes) as i64 * eb, (nun * lanes) as i64 * eb]);
            let cols_full = if self.ones { 1 } else { NT_COLS };
            let chunks = kin / cols_full;
            let rem = kin % cols_full;
            for_range(b, start, end, |b, item| {
                let digits = unflatten(b, item, &radix);
                let mb = digits[0];
                let bko = linear(b, &digits[1..], &kob);
                let cko = linear(b, &digits[1..], &koc);
                let m0 = b.ins().imul_imm_s(mb, NT_ROWS as i64);
                let arow = b.ins().imul_imm_s(m0, self.a_m);
                let a0 = t.offset(b, pa, arow);
                let a0 = t.offset_const(b, a0, self.a.base);
                let b0 = t.offset(b, pb, bko);
                let b0 = t.offset_const(b, b0, if self.ones { 0 } else { self.b.base });
                let crow = b.ins().imul_imm_s(m0, self.c_m);
                let crow = b.ins().iadd(crow, cko);
                let c0 = t.offset(b, pc, crow);
                let c0 = t.offset_const(b, c0, self.c.base);
                row_blocks(b, self.m, NT_ROWS, mb, &mut |b, rows| {
                    let block = |b: &mut FunctionBuilder, cols: usize, bk: Value, ck: Value| {
                        let acc = zero_vars(b, &t, rows * cols);
                        for_nest_ptrs(b, &ncounts, &nstrides, &[a0, bk], &mut |b, p| {
                            for u in 0..nun as i64 {
                                let uo = u * lanes as i64;
                                let xs: Vec<Value> = (0..rows)
                                    .map(|r| t.vload_ro(b, p[0], uo + r as i64 * self.a_m))
                                    .collect();
                                for j in 0..cols {
                                    let y = if self.ones {
                                        None
                                    } else {
                                        Some(t.vload_ro(b, p[1], uo + j as i64 * kin_b))
                                    };
                                    for (r, &x) in xs.iter().enumerate() {
                                        let var = acc[r * cols + j];
                                        let old = b.use_var(var);
                                        let new = match y {
                                            // The first factor is the one cranelift
                                            // copies (see `Nn`): y is shared by `rows`
                                            // FMAs, x by `cols`.
                                            Some(y) => t.fma(b, y, x, old),
                                            None => b.ins().fadd(x, old),
                                        };
                                        b.def_var(var, new);
                                    }
                                }
                            }
                        });
                        for r in 0..rows {
                            for j in 0..cols {
                                let v = b.use_var(acc[r * cols + j]);
                                let mut s = t.hsum(b, v);
                                let off = r as i64 * self.c_m + j as i64 * kin_c;
                                if self.accumulate {
                                    let old = t.sload(b, ck, off);
                                    s = b.ins().fadd(s, old);
                                }
                                t.sstore(b, s, ck, off);
                            }
                        }
                    };
                    let (sb, sc) =
                        ((cols_full as i64) * kin_b * eb, (cols_full as i64) * kin_c * eb);
                    for_nest_ptrs(b, &[chunks], &[vec![sb, sc]], &[b0, c0], &mut |b, p| {
                        block(b, cols_full, p[0], p[1])
                    });
                    if rem > 0 {
                        let bk = b.ins().iadd_imm_s(b0, chunks as i64 * sb);
                        let ck = b.ins().iadd_imm_s(c0, chunks as i64 * sc);
                        block(b, rem, bk, ck);
                    }
                });
            });
            b.ins().return_(&[]);
        })
    }
}

impl Copy {
    pub fn items(&self) -> usize {
        count(&self.dims[..self.parallel_dims])
    }

    pub fn emit(
        &self,
        jit: &mut Jit,
        prec: Precision,
        bufs: Vec<BufSpec>,
    ) -> Result<KernelId, JitError> {
        let lanes = prec.lanes();
        if self.run % lanes != 0 || self.parallel_dims > self.dims.len() {
            return Err(codegen_err(&self.name, "malformed copy".into()));
        }
        let sd: Vec<(usize, i64)> = self.dims.iter().map(|d| (d.count, d.s0)).collect();
        let dd: Vec<(usize, i64)> = self.dims.iter().map(|d| (d.count, d.s1)).collect();
        check_bounds(&self.name, &bufs, prec, "src", self.src, &sd, self.run, false)?;
        check_bounds(&self.name, &bufs, prec, "dst", self.dst, &dd, self.run, true)?;
        let spec = KernelSpec {
            name: self.name.clone(),
            buffers: bufs,
            items: self.items(),
            parallel: true,
        };
        jit.define(spec, |b, [args, start, end], host| {
            let t = Target { prec, host };
            let ps = t.arg_ptr(b, args, self.src.buf);
            let pd = t.arg_ptr(b, args, self.dst.buf);
            let ps = t.offset_const(b, ps, self.src.base);
            let pd = t.offset_const(b, pd, self.dst.base);
            let (outer, inner) = self.dims.split_at(self.parallel_dims);
            let radix: Vec<usize> = outer.iter().map(|d| d.count).collect();
            let os: Vec<i64> = outer.iter().map(|d| d.s0).collect();
            let od: Vec<i64> = outer.iter().map(|d| d.s1).collect();
            let ic: Vec<usize> = inner.iter().map(|d| d.count).collect();
            let is: Vec<i64> = inner.iter().map(|d| d.s0).collect();
            let id: Vec<i64> = inner.iter().map(|d| d.s1).collect();
            for_range(b, start, end, |b, item| {
                let digits = if radix.is_empty() { vec![] } else { unflatten(b, item, &radix) };
                let so = linear(b, &digits, &os);
                let dof = linear(b, &digits, &od);
                let ps = t.offset(b, ps, so);
                let pd = t.offset(b, pd, dof);
                for_nest(b, &ic, &mut |b, idx| {
                    let si = linear(b, idx, &is);
                    let di = linear(b, idx, &id);
                    let ps = t.offset(b, ps, si);
                    let pd = t.offset(b, pd, di);
                    for_count(b, self.run / lanes, &mut |b, v| {
                        let off = b.ins().imul_imm_s(v, lanes as i64);
                        let s = t.offset(b, ps, off);
                        let d = t.offset(b, pd, off);
                        let mut x = t.vload(b, s, 0);
                        if self.accumulate {
                            let old = t.vload(b, d, 0);
                            x = b.ins().fadd(x, old);
                        }
                        t.vstore(b, x, d, 0);
                    });
                });
            });
            b.ins().return_(&[]);
        })
    }
}

/// A GEMM-library product `y = lhs * rhs` (the `gemm` step) followed by its JIT epilogue
/// `y = act(y + bias)` over the `rows x cols` result, as both dense layers and im2col
/// convolutions emit it. Pushes the steps onto `steps`; returns the epilogue kernel's name, or
/// `None` when there is nothing to fuse (no bias, identity activation).
#[allow(clippy::too_many_arguments)]
pub fn gemm_bias_act(
    lw: &mut Lowering,
    steps: &mut Vec<Step>,
    name: &str,
    gemm: Step,
    rows: usize,
    cols: usize,
    y: Buf,
    bias: Option<i64>,
    act: Activation,
) -> Result<Option<String>, JitError> {
    steps.push(gemm);
    if bias.is_none() && act == Activation::Identity {
        return Ok(None);
    }
    let kname = format!("{name}_bias_act");
    let args = vec![(Buf::Params, false), (y, true)];
    lw.call(steps, &kname, args, |j, p, specs| {
        let c = Operand { buf: 1, base: 0 };
        emit_bias_act(
            j,
            p,
            &kname,
            rows,
            cols,
            c,
            bias.map(|b| Operand { buf: 0, base: b }),
            act,
            specs,
        )
    })?;
    Ok(Some(kname))
}

/// `C[m][n] = act(C[m][n] + bias[m])` in place over an `m x n` block (`n` contiguous): the
/// epilogue fused after a GEMM-library product.
pub fn emit_bias_act(
    jit: &mut Jit,
    prec: Precision,
    name: &str,
    m: usize,
    n: usize,
    c: Operand,
    bias: Option<Operand>,
    act: Activation,
    bufs: Vec<BufSpec>,
) -> Result<KernelId, JitError> {
    let lanes = prec.lanes();
    if n % lanes != 0 {
        return Err(codegen_err(name, format!("run {n} not a multiple of {lanes}")));
    }
    check_bounds(name, &bufs, prec, "C", c, &[(m, n as i64)], n, true)?;
    if let Some(o) = bias {
        check_bounds(name, &bufs, prec, "bias", o, &[(m, 1)], 1, false)?;
    }
    let spec = KernelSpec { name: name.to_string(), buffers: bufs, items: m, parallel: true };
    jit.define(spec, |b, [args, start, end], host| {
        let t = Target { prec, host };
        let pc = t.arg_ptr(b, args, c.buf);
        let pc = t.offset_const(b, pc, c.base);
        let pbias = bias.map(|o| {
            let p = t.arg_ptr(b, args, o.buf);
            t.offset_const(b, p, o.base)
        });
        for_range(b, start, end, |b, row| {
            let bv = pbias.map(|p| {
                let p = t.offset(b, p, row);
                t.splat_load(b, p, 0)
            });
            let roff = b.ins().imul_imm_s(row, n as i64);
            let pr = t.offset(b, pc, roff);
            for_count(b, n / lanes, &mut |b, v| {
                let off = b.ins().imul_imm_s(v, lanes as i64);
                let p = t.offset(b, pr, off);
                let mut x = t.vload(b, p, 0);
                if let Some(bv) = bv {
                    x = b.ins().fadd(x, bv);
                }
                let y = t.activate(b, act, x);
                t.vstore(b, y, p, 0);
            });
        });
        b.ins().return_(&[]);
    })
}
