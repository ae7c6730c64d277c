//! Dense layers `y = act(W x + b)`: forward, input gradient, weight and bias gradients.
//!
//! In the feature-major layout (`contraction.rs`) the batch is the contiguous inner run, so
//! with `X = [in][batch]`, `Y = [out][batch]`, `W = [out][in]`:
//! - forward `Y = W X` (+ bias, activation fused into the store),
//! - input gradient `dX = W^T dY`,
//! - weight gradient `dW = dY X^T`, bias gradient `db = dY 1`.
//!
//! Two strategies per layer: all-JIT contraction kernels, or the `gemm` crate (AVX-512
//! micro-kernels that cranelift's 128-bit vectors cannot match) with the bias + activation
//! epilogue in JIT code. `Auto` picks by a rule measured on this machine (see [`choose`]).

use std::time::Duration;

use super::activation;
use super::contraction::{Dim, Nn, Nt, Operand, gemm_bias_act};
use super::jit::{JitError, MatView};
use super::plan::{KernelPlan, Pass, Strategy};
use super::program::{Buf, LayerIo, LayerSteps, Lowering, Step, StrategyChoice};
use crate::ir::{Activation, Graph, Layer, LayerKind};

/// Multiply-adds per sample from which the GEMM library is used. Measured at batch 64
/// (benches/results/kernels.md): on the 784x3610 and 3610x1000 layers the gemm path is 2-2.7x
/// faster than the f32x4 JIT kernels (with gemm 0.19's AVX-512 micro-kernels the whole dense
/// step is 28.5 vs 81 ms CPU); for small layers (the 1000x10 head) packing and call overhead
/// dominate and the JIT kernels are used.
pub const GEMM_MIN_MACS: usize = 64 * 1024;

/// The strategy for a layer of `macs` multiply-adds per sample, and why.
pub fn choose(choice: StrategyChoice, macs: usize) -> (Strategy, String) {
    match choice {
        StrategyChoice::ForceJit => (Strategy::Jit, "forced by --strategy jit".into()),
        StrategyChoice::ForceGemm => (Strategy::Gemm, "forced by --strategy gemm".into()),
        StrategyChoice::Auto if macs >= GEMM_MIN_MACS => (
            Strategy::Gemm,
            format!(
                "{macs} multiply-adds/sample >= {GEMM_MIN_MACS}: the gemm crate's AVX-512 kernels measured faster"
            ),
        ),
        StrategyChoice::Auto => (
            Strategy::Jit,
            format!(
                "{macs} multiply-adds/sample < {GEMM_MIN_MACS}: JIT kernels avoid packing and call overhead"
            ),
        ),
    }
}

fn act_name(a: Activation) -> Option<String> {
    (a != Activation::Identity).then(|| format!("{a:?}").to_lowercase())
}

/// Lower one dense layer.
pub fn lower(
    lw: &mut Lowering,
    graph: &Graph,
    layer: &Layer,
    io: &LayerIo,
) -> Result<LayerSteps, JitError> {
    let LayerKind::Dense { in_features: ni, out_features: no, bias, .. } = layer.kind else {
        return Err(JitError::Codegen {
            kernel: layer.name.clone(),
            message: "not a dense layer".into(),
        });
    };
    let bp = lw.bp;
    let w = graph.param(layer.params[0]).offset as i64;
    let bo = bias.then(|| graph.param(layer.params[1]).offset as i64);
    let (strategy, reason) = choose(lw.strategy, ni * no);
    let prec = lw.prec;
    let layout = format!(
        "W [out][in] row-major; X, Y [feature][batch {bp}], {}x{} over samples",
        prec.name(),
        prec.lanes()
    );
    let macs = (ni * no * bp) as f64;
    let eb = prec.bytes() as f64;
    let name = &layer.name;
    let mut steps = LayerSteps::default();
    let plan =
        |pass: Pass, kernels: Vec<String>, loops: Vec<String>, fused: Vec<String>, bytes: f64| {
            KernelPlan {
                layer: name.clone(),
                pass,
                strategy: strategy.clone(),
                reason: reason.clone(),
                loops,
                layout: layout.clone(),
                fused,
                flops: 2.0 * macs,
                bytes,
                kernels,
                compile_time: Duration::ZERO,
            }
        };
    let mut plans = Vec::new();
    let op = |buf, base| Operand { buf, base };

    // Forward.
    let mut fused: Vec<String> =
        bo.map(|_| "bias".to_string()).into_iter().chain(act_name(io.act)).collect();
    let fwd_bytes = ((ni * no) + (ni + no) * bp) as f64 * eb;
    match strategy {
        Strategy::Jit => {
            let kname = format!("{name}_fwd");
            let args = vec![(Buf::Params, false), (io.x, false), (io.y, true)];
            let nn = Nn {
                name: kname.clone(),
                m: no,
                a_m: ni as i64,
                c_m: bp as i64,
                k: vec![Dim::new(ni, 1, bp as i64)],
                n_outer: vec![],
                n_inner: bp,
                a: op(0, w),
                b: op(1, 0),
                c: op(2, 0),
                bias: bo.map(|b| op(0, b)),
                act: io.act,
                accumulate: false,
                k_c: vec![],
            };
            let (br, bv) = nn.block();
            lw.call(&mut steps.forward, &kname, args, |j, p, specs| nn.emit(j, p, specs))?;
            plans.push(plan(
                Pass::Forward,
                vec![kname],
                vec![
                    format!("for o in 0..{no} step {br} (threads)"),
                    format!("for lanes in 0..{bp} step {}", bv * prec.lanes()),
                    format!("for i in 0..{ni}: {br}x{bv} vector FMA block, W broadcast"),
                ],
                fused,
                fwd_bytes,
            ));
        }
        Strategy::Gemm => {
            let gemm = Step::Gemm {
                dst: (io.y, MatView { base: 0, rows: no, cols: bp, rs: bp, cs: 1 }),
                lhs: (Buf::Params, MatView { base: w as usize, rows: no, cols: ni, rs: ni, cs: 1 }),
                rhs: (io.x, MatView { base: 0, rows: ni, cols: bp, rs: bp, cs: 1 }),
                accumulate: false,
            };
            let epilogue =
                gemm_bias_act(lw, &mut steps.forward, name, gemm, no, bp, io.y, bo, io.act)?;
            if epilogue.is_none() {
                fused.clear();
            }
            let kernels: Vec<String> = epilogue.into_iter().collect();
            plans.push(plan(
                Pass::Forward,
                kernels,
                vec![
                    format!("gemm {no}x{bp} = W {no}x{ni} * X {ni}x{bp} (threads)"),
                    format!("JIT epilogue: for o in 0..{no} (threads), lanes in 0..{bp}"),
                ],
                fused,
                fwd_bytes,
            ));
        }
    }

    // Backward: activation, input gradient, weight and bias gradients.
    let mut bw_kernels = Vec::new();
    if let Some(s) = activation::backward_step(lw, name, io.act, no, io.y, io.dy)? {
        bw_kernels.push(format!("{name}_act_bwd"));
        steps.backward.push(s);
    }
    if let Some(dx) = io.dx {
        match strategy {
            Strategy::Jit => {
                let kname = format!("{name}_bwd_in");
                let args = vec![(Buf::Params, false), (io.dy, false), (dx, true)];
                let nn = Nn {
                    name: kname.clone(),
                    m: ni,
                    a_m: 1,
                    c_m: bp as i64,
                    k: vec![Dim::new(no, ni as i64, bp as i64)],
                    n_outer: vec![],
                    n_inner: bp,
                    a: op(0, w),
                    b: op(1, 0),
                    c: op(2, 0),
                    bias: None,
                    act: Activation::Identity,
                    accumulate: false,
                    k_c: vec![],
                };
                let (br, bv) = nn.block();
                lw.call(&mut steps.backward, &kname, args, |j, p, specs| nn.emit(j, p, specs))?;
                let mut ks = bw_kernels.clone();
                ks.push(kname);
                plans.push(plan(
                    Pass::BackwardInput,
                    ks,
                    vec![
                        format!("for i in 0..{ni} step {br} (threads)"),
                        format!("for lanes in 0..{bp} step {}", bv * prec.lanes()),
                        format!("for o in 0..{no}: W^T broadcast"),
                    ],
                    act_name(io.act).map(|a| format!("{a} gradient")).into_iter().collect(),
                    fwd_bytes,
                ));
            }
            Strategy::Gemm => {
                // W^T is read in place as a column-major view. With the 0.18 gemm crate
                // (AVX2 kernels) this packed three times slower than a transposed copy, so W
                // was transposed every step; with 0.19's AVX-512 kernels the copy cost more
                // than it saved (dense step 26 -> 20.5 ms CPU without it, ds_probe A/B).
                steps.backward.push(Step::Gemm {
                    dst: (dx, MatView { base: 0, rows: ni, cols: bp, rs: bp, cs: 1 }),
                    lhs: (
                        Buf::Params,
                        MatView { base: w as usize, rows: ni, cols: no, rs: 1, cs: ni },
                    ),
                    rhs: (io.dy, MatView { base: 0, rows: no, cols: bp, rs: bp, cs: 1 }),
                    accumulate: false,
                });
                plans.push(plan(
                    Pass::BackwardInput,
                    bw_kernels.clone(),
                    vec![format!(
                        "gemm dX {ni}x{bp} = W^T {ni}x{no} (column-major view) * dY {no}x{bp} (threads)"
                    )],
                    act_name(io.act).map(|a| format!("{a} gradient")).into_iter().collect(),
                    fwd_bytes,
                ));
            }
        }
    }
    let mut kernels = Vec::new();
    match strategy {
        Strategy::Jit => {
            let kname = format!("{name}_bwd_w");
            let args = vec![(io.dy, false), (io.x, false), (Buf::Grad, true)];
            let nt = Nt {
                name: kname.clone(),
                m: no,
                a_m: bp as i64,
                c_m: ni as i64,
                k: vec![Dim::new(ni, bp as i64, 1)],
                n_outer: vec![],
                n_inner: bp,
                a: op(0, 0),
                b: op(1, 0),
                c: op(2, w),
                accumulate: false,
                ones: false,
            };
            lw.call(&mut steps.backward, &kname, args, |j, p, specs| nt.emit(j, p, specs))?;
            kernels.push(kname);
        }
        Strategy::Gemm => steps.backward.push(Step::Gemm {
            dst: (Buf::Grad, MatView { base: w as usize, rows: no, cols: ni, rs: ni, cs: 1 }),
            lhs: (io.dy, MatView { base: 0, rows: no, cols: bp, rs: bp, cs: 1 }),
            rhs: (io.x, MatView { base: 0, rows: bp, cols: ni, rs: 1, cs: bp }),
            accumulate: false,
        }),
    }
    if let Some(b) = bo {
        let kname = format!("{name}_bwd_b");
        let args = vec![(io.dy, false), (Buf::Grad, true)];
        let nt = Nt {
            name: kname.clone(),
            m: no,
            a_m: bp as i64,
            c_m: 1,
            k: vec![],
            n_outer: vec![],
            n_inner: bp,
            a: op(0, 0),
            b: op(0, 0),
            c: op(1, b),
            accumulate: false,
            ones: true,
        };
        lw.call(&mut steps.backward, &kname, args, |j, p, specs| nt.emit(j, p, specs))?;
        kernels.push(kname);
    }
    let loops = match strategy {
        Strategy::Jit => vec![
            format!("for o in 0..{no} step 2 (threads)"),
            format!("for i in 0..{ni} step 4"),
            format!("for lanes in 0..{bp}: dot products, horizontal sum"),
        ],
        Strategy::Gemm => vec![
            format!("gemm dW {no}x{ni} = dY {no}x{bp} * X^T {bp}x{ni} (threads)"),
            format!("JIT: db = row sums of dY"),
        ],
    };
    plans.push(plan(Pass::BackwardParams, kernels, loops, vec![], fwd_bytes));
    lw.plans.extend(plans);
    Ok(steps)
}
