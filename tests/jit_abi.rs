//! The kernel ABI of `codegen::jit`: a kernel runs over its range, and calls with buffers smaller
//! than the spec or ranges outside it are refused before any generated code runs.

use cranelift_codegen::ir::{InstBuilder, MemFlagsData, types};
use symc::codegen::jit::{Arg, BufSpec, Jit, KernelSpec};

/// y[i] = 2 * x[i] for i in [start, end), scalar f32.
fn double_kernel(n: usize) -> symc::codegen::jit::CompiledKernels {
    let mut jit = Jit::new().expect("host ISA");
    let spec = KernelSpec {
        name: "double".into(),
        buffers: vec![
            BufSpec { name: "x".into(), bytes: 4 * n, writable: false },
            BufSpec { name: "y".into(), bytes: 4 * n, writable: true },
        ],
        items: n,
        parallel: true,
    };
    jit.define(spec, |b, [args, start, end], _| {
        let flags = MemFlagsData::trusted();
        let x = b.ins().load(types::I64, flags, args, 0);
        let y = b.ins().load(types::I64, flags, args, 8);
        let head = b.create_block();
        let body = b.create_block();
        let exit = b.create_block();
        b.append_block_param(head, types::I64);
        b.ins().jump(head, &[start.into()]);
        b.switch_to_block(head);
        let i = b.block_params(head)[0];
        let c = b.ins().icmp(cranelift_codegen::ir::condcodes::IntCC::SignedLessThan, i, end);
        b.ins().brif(c, body, &[], exit, &[]);
        b.switch_to_block(body);
        let off = b.ins().ishl_imm_u(i, 2);
        let px = b.ins().iadd(x, off);
        let py = b.ins().iadd(y, off);
        let v = b.ins().load(types::F32, flags, px, 0);
        let w = b.ins().fadd(v, v);
        b.ins().store(flags, w, py, 0);
        let i1 = b.ins().iadd_imm_s(i, 1);
        b.ins().jump(head, &[i1.into()]);
        b.switch_to_block(exit);
        b.ins().return_(&[]);
    })
    .expect("define");
    jit.finish().expect("finish")
}

#[test]
fn kernel_runs_over_its_range_serial_and_parallel() {
    let n = 1001;
    let k = double_kernel(n);
    let kern = &k.kernels()[0];
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let mut y = vec![0f32; n];
    kern.call(&mut [Arg::ro(&x), Arg::rw(&mut y)], 10, 20).unwrap();
    for i in 0..n {
        let want = if (10..20).contains(&i) { 2.0 * x[i] } else { 0.0 };
        assert_eq!(y[i], want, "item {i}");
    }
    let mut y = vec![0f32; n];
    kern.call_parallel(&mut [Arg::ro(&x), Arg::rw(&mut y)], 16).unwrap();
    assert!(y.iter().zip(&x).all(|(a, b)| *a == 2.0 * b));
}

#[test]
fn short_buffers_and_bad_ranges_are_refused() {
    let n = 64;
    let k = double_kernel(n);
    let kern = &k.kernels()[0];
    let x = vec![1f32; n - 1];
    let mut y = vec![0f32; n];
    let e = kern.call(&mut [Arg::ro(&x), Arg::rw(&mut y)], 0, 1).unwrap_err().to_string();
    assert!(e.contains("buffer `x` holds 252 bytes, the kernel needs 256"), "{e}");
    let x = vec![1f32; n];
    let e = kern.call(&mut [Arg::ro(&x), Arg::rw(&mut y)], 0, n + 1).unwrap_err().to_string();
    assert!(e.contains("outside 0..64"), "{e}");
    let y2 = vec![0f32; n];
    let e = kern.call(&mut [Arg::ro(&x), Arg::ro(&y2)], 0, 1).unwrap_err().to_string();
    assert!(e.contains("must be writable"), "{e}");
    assert!(y.iter().all(|&v| v == 0.0), "a refused call must not run");
}
