//! log-softmax over the classes together with the NLL loss and its gradient, in one kernel:
//! the classifier's head. Vectorised over samples (classes are rows of the feature-major
//! layout), so each lane handles one sample independently.
//!
//! Inputs are the logits `z[c][n]` and target weights `t[c][n]` (`1/batch` at the label of a
//! real sample, zero elsewhere and in padding lanes). Outputs:
//! `logp = z - max - log(sum exp(z - max))`, per-lane loss `-sum_c t logp`, and the gradient of
//! the weighted NLL, `dz = softmax * sum_c t - t`.

use cranelift_codegen::ir::InstBuilder;
use cranelift_frontend::FunctionBuilder;

use super::jit::{BufSpec, Jit, JitError, KernelId, KernelSpec};
use super::loops::{for_count, for_range};
use super::simd::{Precision, Target};

/// Buffer order of the kernel: logits, targets, log-probabilities, logit gradient, loss.
pub const ARGS: [&str; 5] = ["logits", "targets", "logp", "dlogits", "loss"];

/// Compile the head for `classes` rows of `run` lanes (the padded batch).
pub fn emit(
    jit: &mut Jit,
    prec: Precision,
    name: &str,
    classes: usize,
    run: usize,
) -> Result<KernelId, JitError> {
    let lanes = prec.lanes();
    if run % lanes != 0 || classes == 0 {
        return Err(JitError::Codegen { kernel: name.into(), message: "bad softmax shape".into() });
    }
    let bytes = classes * run * prec.bytes();
    let buf =
        |i: usize, bytes: usize, writable: bool| BufSpec { name: ARGS[i].into(), bytes, writable };
    let bufs = vec![
        buf(0, bytes, false),
        buf(1, bytes, false),
        buf(2, bytes, true),
        buf(3, bytes, true),
        buf(4, run * prec.bytes(), true),
    ];
    let spec =
        KernelSpec { name: name.to_string(), buffers: bufs, items: run / lanes, parallel: true };
    jit.define(spec, |b, [args, start, end], host| {
        let t = Target { prec, host };
        let p: Vec<_> = (0..5).map(|i| t.arg_ptr(b, args, i)).collect();
        let vt = prec.vector();
        for_range(b, start, end, |b, v| {
            let off = b.ins().imul_imm_s(v, lanes as i64);
            let at = |b: &mut FunctionBuilder, ptr, c: cranelift_codegen::ir::Value| {
                let row = b.ins().imul_imm_s(c, run as i64);
                let e = b.ins().iadd(row, off);
                t.offset(b, ptr, e)
            };
            let mx = b.declare_var(vt);
            let z0p = t.offset(b, p[0], off);
            let z0 = t.vload(b, z0p, 0);
            b.def_var(mx, z0);
            for_count(b, classes, &mut |b, c| {
                let z = at(b, p[0], c);
                let z = t.vload(b, z, 0);
                let m = b.use_var(mx);
                let m = b.ins().fmax(m, z);
                b.def_var(mx, m);
            });
            let mxv = b.use_var(mx);
            let sum = b.declare_var(vt);
            let zero = t.vconst(b, 0.0);
            b.def_var(sum, zero);
            for_count(b, classes, &mut |b, c| {
                let z = at(b, p[0], c);
                let z = t.vload(b, z, 0);
                let d = b.ins().fsub(z, mxv);
                let e = t.vexp(b, d);
                let s = b.use_var(sum);
                let s = b.ins().fadd(s, e);
                b.def_var(sum, s);
            });
            let s = b.use_var(sum);
            let ls = t.vlog(b, s);
            let lse = b.ins().fadd(mxv, ls);
            let loss = b.declare_var(vt);
            let wsum = b.declare_var(vt);
            b.def_var(loss, zero);
            b.def_var(wsum, zero);
            for_count(b, classes, &mut |b, c| {
                let zp = at(b, p[0], c);
                let z = t.vload(b, zp, 0);
                let lp = b.ins().fsub(z, lse);
                let lpp = at(b, p[2], c);
                t.vstore(b, lp, lpp, 0);
                let tp = at(b, p[1], c);
                let tv = t.vload(b, tp, 0);
                let l = b.use_var(loss);
                let ntv = b.ins().fneg(tv);
                let l = t.fma(b, ntv, lp, l);
                b.def_var(loss, l);
                let w = b.use_var(wsum);
                let w = b.ins().fadd(w, tv);
                b.def_var(wsum, w);
            });
            let lossp = t.offset(b, p[4], off);
            let l = b.use_var(loss);
            t.vstore(b, l, lossp, 0);
            let w = b.use_var(wsum);
            for_count(b, classes, &mut |b, c| {
                let lpp = at(b, p[2], c);
                let lp = t.vload(b, lpp, 0);
                let sm = t.vexp(b, lp);
                let tp = at(b, p[1], c);
                let tv = t.vload(b, tp, 0);
                let ntv = b.ins().fneg(tv);
                let dz = t.fma(b, sm, w, ntv);
                let dp = at(b, p[3], c);
                t.vstore(b, dz, dp, 0);
            });
        });
        b.ins().return_(&[]);
    })
}
