//! The roofline probe and the instruction statistics, checked on kernels whose content is known:
//! the FMA probe computes exactly what plain Rust computes, and its listing holds exactly the
//! vector FMAs that were emitted, all inside the loop.

use cranelift_codegen::ir::{InstBuilder, MemFlagsData, condcodes::IntCC, types};
use symc::codegen::jit::{Arg, BufSpec, Jit, KernelSpec};
use symc::inspect::isa_stats::kernel_stats;
use symc::inspect::roofline::*;

#[test]
fn fma_probe_matches_plain_rust_bit_for_bit() {
    let p = fma_probe(false).unwrap();
    let native = Jit::new().unwrap().host.native_fma;
    let seed: Vec<f32> = (0..FMA_CHAINS * LANES).map(|i| 0.25 + i as f32 * 0.03).collect();
    for items in [0, 1, 7, 1000] {
        let mut out = vec![0f32; seed.len()];
        p.kernels()[0].call(&mut [Arg::ro(&seed), Arg::rw(&mut out)], 0, items).unwrap();
        let want = fma_probe_reference(&seed, items, native);
        assert_eq!(out, want, "items {items}");
    }
    // A negative control: the unfused rounding differs somewhere, so the comparison has teeth.
    let mut out = vec![0f32; seed.len()];
    p.kernels()[0].call(&mut [Arg::ro(&seed), Arg::rw(&mut out)], 0, 1000).unwrap();
    assert_ne!(out, fma_probe_reference(&seed, 1000, !native));
}

#[test]
fn probe_listing_has_the_emitted_fmas_in_its_loop() {
    let p = fma_probe(true).unwrap();
    let r = &p.records[0];
    let s = kernel_stats(&r.name, &r.vcode, r.code_bytes);
    assert_eq!(s.loops, 1, "{}", r.vcode);
    if Jit::new().unwrap().host.native_fma {
        assert_eq!(s.all.vector_fma, FMA_CHAINS * FMA_UNROLL, "{}", r.vcode);
        assert_eq!(s.in_loops.vector_fma, FMA_CHAINS * FMA_UNROLL);
    }
    // 12 seed loads before the loop, 12 stores after it.
    assert_eq!(s.all.vector_store, FMA_CHAINS);
    assert_eq!(s.in_loops.vector_store, 0);
    assert!(s.all.vector_load >= FMA_CHAINS);
    assert_eq!(s.all.scalar_float, 0);
    assert!(s.code_bytes > 0);
}

/// y[i] = x[i] * x[i] + y[i], scalar f32: no vector FMA may be reported.
#[test]
fn scalar_kernel_has_no_vector_fma() {
    let n = 64;
    let mut jit = Jit::new().unwrap();
    jit.keep_listings = true;
    let spec = KernelSpec {
        name: "sq".into(),
        buffers: vec![
            BufSpec { name: "x".into(), bytes: 4 * n, writable: false },
            BufSpec { name: "y".into(), bytes: 4 * n, writable: true },
        ],
        items: n,
        parallel: true,
    };
    jit.define(spec, |b, [args, start, end], host| {
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
        let c = b.ins().icmp(IntCC::SignedLessThan, i, end);
        b.ins().brif(c, body, &[], exit, &[]);
        b.switch_to_block(body);
        let off = b.ins().ishl_imm_u(i, 2);
        let px = b.ins().iadd(x, off);
        let py = b.ins().iadd(y, off);
        let v = b.ins().load(types::F32, flags, px, 0);
        let w = b.ins().load(types::F32, flags, py, 0);
        let r = if host.native_fma {
            b.ins().fma(v, v, w)
        } else {
            let p = b.ins().fmul(v, v);
            b.ins().fadd(p, w)
        };
        b.ins().store(flags, r, py, 0);
        let i1 = b.ins().iadd_imm_s(i, 1);
        b.ins().jump(head, &[i1.into()]);
        b.switch_to_block(exit);
        b.ins().return_(&[]);
    })
    .unwrap();
    let k = jit.finish().unwrap();
    let r = &k.records[0];
    let s = kernel_stats(&r.name, &r.vcode, r.code_bytes);
    assert_eq!(s.all.vector_fma, 0, "{}", r.vcode);
    assert_eq!(s.loops, 1);
    assert!(s.in_loops.scalar_float >= 2, "{}", r.vcode);
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut y = vec![1f32; n];
    k.kernels()[0].call(&mut [Arg::ro(&x), Arg::rw(&mut y)], 0, n).unwrap();
    assert!(y.iter().enumerate().all(|(i, &v)| v == (i * i) as f32 + 1.0));
}

/// The measured machine is plausible: a 128-bit FMA ceiling between a slow scalar core and far
/// beyond any current CPU, bandwidth likewise, and a consistent roofline.
#[test]
fn measured_machine_is_plausible() {
    let m = machine().unwrap();
    assert!(m.ceiling_gflops_core > 1.0 && m.ceiling_gflops_core < 1000.0, "{m:?}");
    assert!(m.bandwidth_gbs > 0.5 && m.bandwidth_gbs < 2000.0, "{m:?}");
    assert!(m.cpu.cores >= 1);
    assert!((m.attainable(m.ridge()) - m.ceiling_gflops()).abs() < 1e-9 * m.ceiling_gflops());
    // Cached: the second call is the same measurement.
    assert!(std::ptr::eq(m, machine().unwrap()));
}
