//! Elementwise activation kernels that are not fused into a preceding dense or convolution
//! kernel: the standalone forward (an activation after `flatten` or after another activation)
//! and the backward `g <- g * f'(x)`, which is expressed through the stored *output* `y`
//! (relu' = [y > 0], tanh' = 1 - y^2, sigmoid' = y (1 - y)) so the pre-activation never has to
//! be kept.
//!
//! Data are `rows` rows of `run` contiguous values (features times padded batch); rows are the
//! work items.

use super::contraction::Operand;
use super::jit::{BufSpec, Jit, JitError, KernelId, KernelSpec};
use super::loops::{for_count, for_range};
use super::program::{Buf, Lowering, Step};
use super::simd::{Precision, Target};
use crate::ir::Activation;
use cranelift_codegen::ir::InstBuilder;

fn shape_err(name: &str, run: usize, prec: Precision) -> JitError {
    JitError::Codegen {
        kernel: name.into(),
        message: format!("run {run} not a multiple of {}", prec.lanes()),
    }
}

fn check(
    name: &str,
    bufs: &[BufSpec],
    op: Operand,
    len: usize,
    prec: Precision,
) -> Result<(), JitError> {
    let have = bufs.get(op.buf).map_or(0, |b| b.bytes / prec.bytes());
    if op.base < 0 || op.base as usize + len > have {
        return Err(JitError::Codegen {
            kernel: name.into(),
            message: "operand outside its buffer".into(),
        });
    }
    Ok(())
}

/// `y = f(x)` over `rows x run` values.
#[allow(clippy::too_many_arguments)]
pub fn emit_forward(
    jit: &mut Jit,
    prec: Precision,
    name: &str,
    act: Activation,
    rows: usize,
    run: usize,
    x: Operand,
    y: Operand,
    bufs: Vec<BufSpec>,
) -> Result<KernelId, JitError> {
    emit_map(jit, prec, name, rows, run, x, y, bufs, move |t, b, xv, _| t.activate(b, act, xv))
}

/// `g = g * f'(x)` in place, with `f'` written in terms of the output `y`.
#[allow(clippy::too_many_arguments)]
pub fn emit_backward(
    jit: &mut Jit,
    prec: Precision,
    name: &str,
    act: Activation,
    rows: usize,
    run: usize,
    y: Operand,
    g: Operand,
    bufs: Vec<BufSpec>,
) -> Result<KernelId, JitError> {
    emit_map(jit, prec, name, rows, run, y, g, bufs, move |t, b, yv, gv| {
        t.activate_grad(b, act, yv, gv)
    })
}

/// `out = f(inp, out)` elementwise.
#[allow(clippy::too_many_arguments)]
fn emit_map(
    jit: &mut Jit,
    prec: Precision,
    name: &str,
    rows: usize,
    run: usize,
    inp: Operand,
    out: Operand,
    bufs: Vec<BufSpec>,
    f: impl Fn(
        &Target,
        &mut cranelift_frontend::FunctionBuilder,
        cranelift_codegen::ir::Value,
        cranelift_codegen::ir::Value,
    ) -> cranelift_codegen::ir::Value,
) -> Result<KernelId, JitError> {
    let lanes = prec.lanes();
    if run % lanes != 0 {
        return Err(shape_err(name, run, prec));
    }
    check(name, &bufs, inp, rows * run, prec)?;
    check(name, &bufs, out, rows * run, prec)?;
    if !bufs[out.buf].writable {
        return Err(JitError::Codegen {
            kernel: name.into(),
            message: "output buffer is read-only".into(),
        });
    }
    let spec = KernelSpec { name: name.to_string(), buffers: bufs, items: rows, parallel: true };
    jit.define(spec, |b, [args, start, end], host| {
        let t = Target { prec, host };
        let pi = t.arg_ptr(b, args, inp.buf);
        let pi = t.offset_const(b, pi, inp.base);
        let po = t.arg_ptr(b, args, out.buf);
        let po = t.offset_const(b, po, out.base);
        for_range(b, start, end, |b, row| {
            let roff = b.ins().imul_imm_s(row, run as i64);
            let pir = t.offset(b, pi, roff);
            let por = t.offset(b, po, roff);
            for_count(b, run / lanes, &mut |b, v| {
                let off = b.ins().imul_imm_s(v, lanes as i64);
                let pin = t.offset(b, pir, off);
                let pout = t.offset(b, por, off);
                let x = t.vload(b, pin, 0);
                let o = t.vload(b, pout, 0);
                let r = f(&t, b, x, o);
                t.vstore(b, r, pout, 0);
            });
        });
        b.ins().return_(&[]);
    })
}

/// Emit the in-place activation backward `dy *= f'(y)` over `rows x bp`.
pub fn backward_step(
    lw: &mut Lowering,
    layer: &str,
    act: Activation,
    rows: usize,
    y: Buf,
    dy: Buf,
) -> Result<Option<Step>, JitError> {
    if act == Activation::Identity {
        return Ok(None);
    }
    let args = vec![(y, false), (dy, true)];
    let name = format!("{layer}_act_bwd");
    let op = |b| Operand { buf: b, base: 0 };
    let id =
        emit_backward(lw.jit, lw.prec, &name, act, rows, lw.bp, op(0), op(1), lw.specs(&args))?;
    lw.named(id, &name);
    Ok(Some(Step::Kernel { id, args }))
}
