//! Loop-nest helpers over cranelift's `FunctionBuilder`, so that emitters describe *what* they
//! iterate (constant trip counts, the kernel's work-item range) instead of wiring blocks by hand.
//!
//! Every loop is a header block with the induction variable as a block parameter; bodies may
//! open further loops and define cranelift `Variable`s (SSA construction handles the phis).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value, types};
use cranelift_frontend::FunctionBuilder;

/// `for i in lo..hi` with runtime bounds (i64 values); `body` gets `i`.
pub fn for_range(
    b: &mut FunctionBuilder,
    lo: Value,
    hi: Value,
    body: impl FnOnce(&mut FunctionBuilder, Value),
) {
    let head = b.create_block();
    let block = b.create_block();
    let exit = b.create_block();
    b.append_block_param(head, types::I64);
    b.ins().jump(head, &[lo.into()]);
    b.switch_to_block(head);
    let i = b.block_params(head)[0];
    let c = b.ins().icmp(IntCC::SignedLessThan, i, hi);
    b.ins().brif(c, block, &[], exit, &[]);
    b.switch_to_block(block);
    body(b, i);
    let next = b.ins().iadd_imm_s(i, 1);
    b.ins().jump(head, &[next.into()]);
    b.switch_to_block(exit);
}

/// `for i in 0..count` with a compile-time trip count. A count of 1 emits no loop at all.
pub fn for_count(
    b: &mut FunctionBuilder,
    count: usize,
    body: &mut dyn FnMut(&mut FunctionBuilder, Value),
) {
    if count == 0 {
        return;
    }
    if count == 1 {
        let zero = b.ins().iconst(types::I64, 0);
        body(b, zero);
        return;
    }
    let lo = b.ins().iconst(types::I64, 0);
    let hi = b.ins().iconst(types::I64, count as i64);
    for_range(b, lo, hi, body);
}

/// A perfectly nested loop over `counts` (outermost first); `body` gets one index per level.
pub fn for_nest(
    b: &mut FunctionBuilder,
    counts: &[usize],
    body: &mut dyn FnMut(&mut FunctionBuilder, &[Value]),
) {
    fn go(
        b: &mut FunctionBuilder,
        counts: &[usize],
        idx: &mut Vec<Value>,
        body: &mut dyn FnMut(&mut FunctionBuilder, &[Value]),
    ) {
        match counts.split_first() {
            None => body(b, idx),
            Some((&n, rest)) => for_count(b, n, &mut |b, i| {
                idx.push(i);
                go(b, rest, idx, body);
                idx.pop();
            }),
        }
    }
    go(b, counts, &mut Vec::new(), body)
}

/// `sum_i idx[i] * strides[i]` as an i64 value (zero strides cost nothing).
pub fn linear(b: &mut FunctionBuilder, idx: &[Value], strides: &[i64]) -> Value {
    let mut acc = b.ins().iconst(types::I64, 0);
    for (&i, &s) in idx.iter().zip(strides) {
        if s != 0 {
            let t = b.ins().imul_imm_s(i, s);
            acc = b.ins().iadd(acc, t);
        }
    }
    acc
}

/// Split a flat index into mixed-radix digits (outermost first) for constant `counts`.
pub fn unflatten(b: &mut FunctionBuilder, flat: Value, counts: &[usize]) -> Vec<Value> {
    let mut digits = vec![flat; counts.len()];
    let mut rest = flat;
    for (d, &n) in counts.iter().enumerate().rev() {
        if d == 0 {
            digits[0] = rest;
        } else {
            let q = b.ins().udiv_imm_u(rest, n as i64);
            let qn = b.ins().imul_imm_s(q, n as i64);
            digits[d] = b.ins().isub(rest, qn);
            rest = q;
        }
    }
    digits
}

/// A perfectly nested loop over `counts` (outermost first) that carries pointers instead of
/// indices: level `d` advances pointer `p` by `strides[d][p]` bytes per iteration, so the body
/// gets ready addresses and no index arithmetic is left in the inner loops.
pub fn for_nest_ptrs(
    b: &mut FunctionBuilder,
    counts: &[usize],
    strides: &[Vec<i64>],
    init: &[Value],
    body: &mut dyn FnMut(&mut FunctionBuilder, &[Value]),
) {
    fn go(
        b: &mut FunctionBuilder,
        counts: &[usize],
        strides: &[Vec<i64>],
        cur: &[Value],
        body: &mut dyn FnMut(&mut FunctionBuilder, &[Value]),
    ) {
        let Some((&n, rest)) = counts.split_first() else {
            body(b, cur);
            return;
        };
        if n == 1 {
            go(b, rest, &strides[1..], cur, body);
            return;
        }
        let vars: Vec<_> = cur
            .iter()
            .map(|&p| {
                let v = b.declare_var(types::I64);
                b.def_var(v, p);
                v
            })
            .collect();
        for_count(b, n, &mut |b, _| {
            let here: Vec<Value> = vars.iter().map(|&v| b.use_var(v)).collect();
            go(b, rest, &strides[1..], &here, body);
            for ((&v, &p), &s) in vars.iter().zip(&here).zip(&strides[0]) {
                let next = if s == 0 { p } else { b.ins().iadd_imm_s(p, s) };
                b.def_var(v, next);
            }
        });
    }
    go(b, counts, strides, init, body)
}
