//! The text views on kernels made here (a hand-written f32x4 axpy with its plan), pinned by
//! snapshots, and the bench harness on the same kernel.

use cranelift_codegen::ir::{InstBuilder, MemFlagsData, condcodes::IntCC, types};
use std::time::Duration;
use symc::codegen::jit::{BufSpec, CompiledKernels, Jit, KernelSpec};
use symc::codegen::plan::{KernelPlan, Pass, Strategy};
use symc::inspect::bench::{BenchOptions, SyntheticArgs, bench_plan};
use symc::inspect::roofline::{Cpu, Machine};
use symc::inspect::verify::{Check, VerifyReport};
use symc::inspect::views::*;

const N: usize = 4096;

/// y[4i..4i+4] += a * x[4i..4i+4] over items i (f32x4, fma when native).
fn axpy() -> CompiledKernels {
    let mut jit = Jit::new().unwrap();
    jit.keep_listings = true;
    let spec = KernelSpec {
        name: "axpy_fwd".into(),
        buffers: vec![
            BufSpec { name: "x".into(), bytes: 4 * N, writable: false },
            BufSpec { name: "y".into(), bytes: 4 * N, writable: true },
        ],
        items: N / 4,
        parallel: true,
    };
    jit.define(spec, |b, [args, start, end], host| {
        let flags = MemFlagsData::trusted();
        let x = b.ins().load(types::I64, flags, args, 0);
        let y = b.ins().load(types::I64, flags, args, 8);
        let a = b.ins().f32const(0.5);
        let a = b.ins().splat(types::F32X4, a);
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
        let off = b.ins().ishl_imm_u(i, 4);
        let px = b.ins().iadd(x, off);
        let py = b.ins().iadd(y, off);
        let vx = b.ins().load(types::F32X4, flags, px, 0);
        let vy = b.ins().load(types::F32X4, flags, py, 0);
        let r = if host.native_fma {
            b.ins().fma(vx, a, vy)
        } else {
            let p = b.ins().fmul(vx, a);
            b.ins().fadd(p, vy)
        };
        b.ins().store(flags, r, py, 0);
        let i1 = b.ins().iadd_imm_s(i, 1);
        b.ins().jump(head, &[i1.into()]);
        b.switch_to_block(exit);
        b.ins().return_(&[]);
    })
    .unwrap();
    jit.finish().unwrap()
}

fn plan() -> KernelPlan {
    KernelPlan {
        layer: "axpy".into(),
        pass: Pass::Forward,
        strategy: Strategy::Jit,
        reason: "elementwise: nothing to gain from a GEMM call".into(),
        loops: vec!["for i in 0..1024 (threads, f32x4)".into()],
        layout: "contiguous, f32x4 lanes over elements".into(),
        fused: vec!["scale".into()],
        flops: 2.0 * N as f64,
        bytes: 12.0 * N as f64,
        kernels: vec!["axpy_fwd".into()],
        compile_time: Duration::from_micros(123),
    }
}

/// A fixed machine, so that the roofline columns of the snapshots do not depend on the host.
fn fixed_machine() -> Machine {
    Machine {
        cpu: Cpu {
            model: "Test CPU".into(),
            cores: 2,
            vector_isa: vec!["avx2".into(), "fma".into()],
            llc_bytes: None,
        },
        native_fma: true,
        ceiling_gflops_core: 64.0,
        effective_ghz: 4.0,
        bandwidth_gbs: 32.0,
        threads: 2,
    }
}

#[test]
fn plan_and_machine_views() {
    insta::assert_snapshot!("plan_view", plan_view(&[plan()], Style::default()));
    insta::assert_snapshot!("machine_view", machine_view(&fixed_machine(), Style::default()));
}

#[test]
fn stats_view_counts_the_axpy_loop() {
    let k = axpy();
    if !Jit::new().unwrap().host.native_fma {
        eprintln!("SKIPPED: the snapshot assumes a host with native FMA");
        return;
    }
    let v = stats_view(&[plan()], &k.records, &fixed_machine(), Style::default());
    // One FMA with a folded load, one vector load, one store per iteration.
    insta::assert_snapshot!("stats_view", v);
    let a = asm_view(&k.records, Style::default());
    assert!(a.contains("vfmadd"), "{a}");
    assert!(clif_view(&k.records, Style::default()).contains("fma.f32x4"));
}

#[test]
fn verify_view_reports_pass_and_fail() {
    let rep = VerifyReport {
        model: "m".into(),
        checks: vec![
            Check::compare(
                "jit-vs-reference forward",
                "2 samples".into(),
                &[1.0, 2.0],
                &[1.0, 2.0000001],
                1e-4,
            ),
            Check::compare("translation", "shifts [1, 0]".into(), &[1.0], &[2.0], 1e-4),
        ],
    };
    let v = verify_view(&rep, Style::default());
    insta::assert_snapshot!("verify_view", v);
    assert!(!rep.passed());
}

#[test]
fn bench_reports_consistent_rates() {
    let k = axpy();
    let kern = &k.kernels()[0];
    let mut args = SyntheticArgs::for_kernel(kern);
    let m = fixed_machine();
    let opts = BenchOptions { min_batch: Duration::from_millis(5), batches: 2 };
    let r = bench_plan(&plan(), || args.run(kern), &m, opts).unwrap();
    assert!(r.seconds > 0.0);
    assert!((r.gflops - r.flops / r.seconds / 1e9).abs() < 1e-9 * r.gflops);
    assert!((r.fraction_of_ceiling - r.gflops / 128.0).abs() < 1e-12);
    // Intensity 1/6 flop/B, attainable 32/6 GFLOP/s on the fixed machine.
    assert!((r.fraction_of_attainable - r.gflops / (32.0 / 6.0)).abs() < 1e-9);
    assert_eq!(r.compile_seconds, 123e-6);
    let v = bench_view(&[r], Style::default());
    assert!(v.contains("axpy") && v.contains("forward"), "{v}");
}
