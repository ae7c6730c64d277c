//! Stride-1 convolutions of any spatial rank, valid or same padding: forward (bias and
//! activation fused), input gradient, weight and bias gradients.
//!
//! With the batch as the contiguous inner run (`contraction.rs`), a convolution is a
//! contraction whose reduction nest is (input channel, window offsets) and whose output nest is
//! the output positions; the input is addressed directly at `position + offset` (implicit
//! im2col), so the JIT path needs no gather at all:
//! - forward: `y[co, p] = act(b[co] + sum_{ci,k} W[co,ci,k] x[ci, p + k - lo])`; "same"
//!   padding copies the input into a zero-bordered buffer first.
//! - input gradient: the transposed convolution, i.e. a valid convolution of the output
//!   gradient, zero-padded by `window - 1` on each side, with the window flipped (negative
//!   weight strides) and channels swapped; the result is read back cropped for "same".
//! - weight gradient: `dW[co,ci,k] = sum_{p,n} dy[co,p] x[ci,p+k]`, dot products along the
//!   sample run; bias gradient: row sums of `dy`.
//!
//! The GEMM strategy materialises `col[(ci,k)][(p,n)]` (im2col, a JIT copy kernel) and calls
//! the `gemm` crate; its input gradient scatters `W^T dy` back with a JIT col2im kernel.

use std::time::Duration;

use super::activation;
use super::contraction::{Copy, Dim, Nn, Nt, Operand, gemm_bias_act};
use super::jit::{JitError, MatView};
use super::plan::{KernelPlan, Pass, Strategy};
use super::program::{Buf, LayerIo, LayerSteps, Lowering, Step, StrategyChoice};
use crate::ir::{Activation, Graph, Layer, LayerKind, Padding};

/// Multiply-adds per sample from which im2col + gemm is used by `Auto`: never. The direct JIT
/// convolution measured 3x faster than im2col + gemm on every convolution benchmarked
/// (benches/results/kernels.md), and still does with gemm 0.19's AVX-512 micro-kernels
/// (digits_conv step 14.5 vs 46.5 ms CPU): the im2col buffer is 25 MB per batch for the
/// 10x19x19 layer, and with 10 output channels the product is too thin for the micro-kernel.
pub const GEMM_MIN_MACS: usize = usize::MAX;

/// The strategy for a convolution of `macs` multiply-adds per sample, and why.
pub fn choose(choice: StrategyChoice, macs: usize) -> (Strategy, String) {
    match choice {
        StrategyChoice::ForceJit => (Strategy::Jit, "forced by --strategy jit".into()),
        StrategyChoice::ForceGemm => (Strategy::Gemm, "forced by --strategy gemm".into()),
        StrategyChoice::Auto if macs >= GEMM_MIN_MACS => {
            (Strategy::Gemm, format!("{macs} multiply-adds/sample: im2col + gemm measured faster"))
        }
        StrategyChoice::Auto => (
            Strategy::Jit,
            "direct JIT convolution (implicit im2col) measured 3x faster than im2col + gemm (AVX-512) at this size".into(),
        ),
    }
}

/// Row-major strides of `shape`, scaled by `inner`.
fn strides(shape: &[usize], inner: usize) -> Vec<i64> {
    let mut s = vec![0i64; shape.len()];
    let mut acc = inner as i64;
    for d in (0..shape.len()).rev() {
        s[d] = acc;
        acc *= shape[d] as i64;
    }
    s
}

fn prod(v: &[usize]) -> usize {
    v.iter().product()
}

/// Lower one convolution layer.
pub fn lower(
    lw: &mut Lowering,
    graph: &Graph,
    layer: &Layer,
    io: &LayerIo,
) -> Result<LayerSteps, JitError> {
    let LayerKind::Conv {
        in_channels: ci,
        out_channels: co,
        window,
        padding,
        bias,
        in_spatial: s,
        out_spatial: o,
    } = &layer.kind
    else {
        return Err(JitError::Codegen {
            kernel: layer.name.clone(),
            message: "not a convolution".into(),
        });
    };
    let (ci, co) = (*ci, *co);
    let dims = window.len();
    if dims == 0 || s.len() != dims || o.len() != dims {
        return Err(JitError::Codegen {
            kernel: layer.name.clone(),
            message: "spatial ranks disagree".into(),
        });
    }
    let bp = lw.bp;
    let prec = lw.prec;
    let name = &layer.name;
    let wofs = graph.param(layer.params[0]).offset as i64;
    let bo = bias.then(|| graph.param(layer.params[1]).offset as i64);
    let lo: Vec<usize> = window.iter().map(|&k| padding.lo(k)).collect();
    let sp: Vec<usize> = (0..dims).map(|d| o[d] + window[d] - 1).collect();
    let wsz = prod(window);
    let (sst, spst, ost) = (strides(s, bp), strides(&sp, bp), strides(o, bp));
    let wst = strides(window, 1);
    let (plane_s, plane_sp, plane_o) = (prod(s) * bp, prod(&sp) * bp, prod(o) * bp);
    let last = dims - 1;
    let macs_per_sample = co * ci * wsz * prod(o);
    let (strategy, reason) = choose(lw.strategy, macs_per_sample);
    let op = |buf, base| Operand { buf, base };
    let padded = *padding == Padding::Same && sp != *s;
    let layout = format!(
        "W [out][in][window] row-major; activations [channel][position][batch {bp}], {}x{} over samples",
        prec.name(),
        prec.lanes()
    );
    let flops = 2.0 * (macs_per_sample * bp) as f64;
    let eb = prec.bytes() as f64;
    let bytes = ((co * ci * wsz) + (ci * prod(s) + co * prod(o)) * bp) as f64 * eb;
    let plan =
        |pass: Pass, kernels: Vec<String>, loops: Vec<String>, fused: Vec<String>| KernelPlan {
            layer: name.clone(),
            pass,
            strategy: strategy.clone(),
            reason: reason.clone(),
            loops,
            layout: layout.clone(),
            fused,
            flops,
            bytes,
            kernels,
            compile_time: Duration::ZERO,
        };
    let mut steps = LayerSteps::default();
    let mut plans = Vec::new();
    let copy = |lw: &mut Lowering,
                steps: &mut Vec<Step>,
                c: Copy,
                src: Buf,
                dst: Buf|
     -> Result<String, JitError> {
        let args = vec![(src, false), (dst, true)];
        lw.call(steps, &c.name, args, |j, p, specs| c.emit(j, p, specs))?;
        Ok(c.name)
    };

    // Forward: the (padded) source the window reads.
    let mut fwd_kernels = Vec::new();
    let xsrc = if padded {
        let xp = lw.alloc(ci * plane_sp);
        let mut d = vec![Dim::new(ci, plane_s as i64, plane_sp as i64)];
        d.extend((0..last).map(|k| Dim::new(s[k], sst[k], spst[k])));
        let base: i64 = (0..dims).map(|k| lo[k] as i64 * spst[k]).sum();
        let c = Copy {
            name: format!("{name}_pad"),
            dims: d,
            parallel_dims: 1,
            run: s[last] * bp,
            src: op(0, 0),
            dst: op(1, base),
            accumulate: false,
        };
        fwd_kernels.push(copy(lw, &mut steps.forward, c, io.x, xp)?);
        xp
    } else {
        io.x
    };
    let fused: Vec<String> = bo
        .map(|_| "bias".to_string())
        .into_iter()
        .chain((io.act != Activation::Identity).then(|| format!("{:?}", io.act).to_lowercase()))
        .collect();
    // im2col nest: (ci, window..., output positions except the last) with runs of the last.
    let col_n = plane_o;
    let col_dims = |to_col: bool| {
        let mut d = vec![if to_col {
            Dim::new(ci, plane_sp as i64, (wsz * col_n) as i64)
        } else {
            Dim::new(ci, (wsz * col_n) as i64, plane_sp as i64)
        }];
        for k in 0..dims {
            let (a, b) = (spst[k], wst[k] * col_n as i64);
            d.push(if to_col { Dim::new(window[k], a, b) } else { Dim::new(window[k], b, a) });
        }
        for k in 0..last {
            let (a, b) = (spst[k], ost[k]);
            d.push(if to_col { Dim::new(o[k], a, b) } else { Dim::new(o[k], b, a) });
        }
        d
    };
    let col = match strategy {
        Strategy::Jit => {
            let kname = format!("{name}_fwd");
            let args = vec![(Buf::Params, false), (xsrc, false), (io.y, true)];
            let mut k = vec![Dim::new(ci, wsz as i64, plane_sp as i64)];
            k.extend((0..dims).map(|d| Dim::new(window[d], wst[d], spst[d])));
            let nn = Nn {
                name: kname.clone(),
                m: co,
                a_m: (ci * wsz) as i64,
                c_m: plane_o as i64,
                k,
                n_outer: (0..last).map(|d| Dim::new(o[d], spst[d], ost[d])).collect(),
                n_inner: o[last] * bp,
                a: op(0, wofs),
                b: op(1, 0),
                c: op(2, 0),
                bias: bo.map(|b| op(0, b)),
                act: io.act,
                accumulate: false,
                k_c: vec![],
            };
            let (br, bv) = nn.block();
            lw.call(&mut steps.forward, &kname, args, |j, p, specs| nn.emit(j, p, specs))?;
            fwd_kernels.push(kname);
            plans.push(plan(
                Pass::Forward,
                fwd_kernels,
                vec![
                    format!("for (co block of {br}, output rows {:?}) (threads)", &o[..last]),
                    format!(
                        "for lanes in 0..{} step {} (positions x batch)",
                        o[last] * bp,
                        bv * prec.lanes()
                    ),
                    format!(
                        "for ci in 0..{ci}, window {window:?}: {br}x{bv} vector FMA block, W broadcast"
                    ),
                ],
                fused,
            ));
            None
        }
        Strategy::Gemm => {
            let colb = lw.alloc(ci * wsz * col_n);
            let c = Copy {
                name: format!("{name}_im2col"),
                dims: col_dims(true),
                parallel_dims: 1 + dims,
                run: o[last] * bp,
                src: op(0, 0),
                dst: op(1, 0),
                accumulate: false,
            };
            fwd_kernels.push(copy(lw, &mut steps.forward, c, xsrc, colb)?);
            let gemm = Step::Gemm {
                dst: (io.y, MatView { base: 0, rows: co, cols: col_n, rs: col_n, cs: 1 }),
                lhs: (
                    Buf::Params,
                    MatView { base: wofs as usize, rows: co, cols: ci * wsz, rs: ci * wsz, cs: 1 },
                ),
                rhs: (colb, MatView { base: 0, rows: ci * wsz, cols: col_n, rs: col_n, cs: 1 }),
                accumulate: false,
            };
            fwd_kernels.extend(gemm_bias_act(
                lw,
                &mut steps.forward,
                name,
                gemm,
                co,
                col_n,
                io.y,
                bo,
                io.act,
            )?);
            plans.push(plan(
                Pass::Forward,
                fwd_kernels,
                vec![
                    format!("JIT im2col: col[{}][{}] (threads over ci, window)", ci * wsz, col_n),
                    format!("gemm Y {co}x{col_n} = W {co}x{} * col (threads)", ci * wsz),
                    "JIT epilogue: bias, activation".into(),
                ],
                fused,
            ));
            Some(colb)
        }
    };

    // Backward.
    let mut bw_kernels = Vec::new();
    if let Some(s) = activation::backward_step(lw, name, io.act, co * prod(o), io.y, io.dy)? {
        bw_kernels.push(format!("{name}_act_bwd"));
        steps.backward.push(s);
    }
    if let Some(dx) = io.dx {
        let mut kernels = bw_kernels.clone();
        let loops;
        match strategy {
            Strategy::Jit => {
                // Scatter form of the transposed convolution, dx[ci, p + k - lo] +=
                // sum_co W[co, ci, k] dy[co, p]: exactly the forward's multiply-adds (the
                // gather form over a zero-padded dy would do (s + w - 1)^d / o^d times more).
                let target = if padded { lw.alloc(ci * plane_sp) } else { dx };
                steps.backward.push(Step::Zero(target));
                let kname = format!("{name}_bwd_in");
                let args = vec![(Buf::Params, false), (io.dy, false), (target, true)];
                let mut k: Vec<Dim> = (0..dims).map(|d| Dim::new(window[d], wst[d], 0)).collect();
                k.push(Dim::new(co, (ci * wsz) as i64, plane_o as i64));
                let nn = Nn {
                    name: kname.clone(),
                    m: ci,
                    a_m: wsz as i64,
                    c_m: plane_sp as i64,
                    k,
                    n_outer: (0..last).map(|d| Dim::new(o[d], ost[d], spst[d])).collect(),
                    n_inner: o[last] * bp,
                    a: op(0, wofs),
                    b: op(1, 0),
                    c: op(2, 0),
                    bias: None,
                    act: Activation::Identity,
                    accumulate: true,
                    k_c: spst.clone(),
                };
                let (br, bv) = nn.block();
                lw.call(&mut steps.backward, &kname, args, |j, p, specs| nn.emit(j, p, specs))?;
                kernels.push(kname);
                if padded {
                    let mut d = vec![Dim::new(ci, plane_sp as i64, plane_s as i64)];
                    d.extend((0..last).map(|k| Dim::new(s[k], spst[k], sst[k])));
                    let base: i64 = (0..dims).map(|k| lo[k] as i64 * spst[k]).sum();
                    let c = Copy {
                        name: format!("{name}_crop"),
                        dims: d,
                        parallel_dims: 1,
                        run: s[last] * bp,
                        src: op(0, base),
                        dst: op(1, 0),
                        accumulate: false,
                    };
                    kernels.push(copy(lw, &mut steps.backward, c, target, dx)?);
                }
                loops = vec![
                    format!("for ci block of {br} (threads)"),
                    format!(
                        "for output rows {:?}, window offsets {window:?}: dX rows += (L1)",
                        &o[..last]
                    ),
                    format!(
                        "for lanes in 0..{} step {}: for co in 0..{co}: W broadcast",
                        o[last] * bp,
                        bv * prec.lanes()
                    ),
                ];
            }
            Strategy::Gemm => {
                let dcol = lw.alloc(ci * wsz * col_n);
                steps.backward.push(Step::Gemm {
                    dst: (dcol, MatView { base: 0, rows: ci * wsz, cols: col_n, rs: col_n, cs: 1 }),
                    lhs: (
                        Buf::Params,
                        MatView {
                            base: wofs as usize,
                            rows: ci * wsz,
                            cols: co,
                            rs: 1,
                            cs: ci * wsz,
                        },
                    ),
                    rhs: (io.dy, MatView { base: 0, rows: co, cols: col_n, rs: col_n, cs: 1 }),
                    accumulate: false,
                });
                let target = if padded { lw.alloc(ci * plane_sp) } else { dx };
                steps.backward.push(Step::Zero(target));
                let c = Copy {
                    name: format!("{name}_col2im"),
                    dims: col_dims(false),
                    parallel_dims: 1,
                    run: o[last] * bp,
                    src: op(0, 0),
                    dst: op(1, 0),
                    accumulate: true,
                };
                kernels.push(copy(lw, &mut steps.backward, c, dcol, target)?);
                if padded {
                    let mut d = vec![Dim::new(ci, plane_sp as i64, plane_s as i64)];
                    d.extend((0..last).map(|k| Dim::new(s[k], spst[k], sst[k])));
                    let base: i64 = (0..dims).map(|k| lo[k] as i64 * spst[k]).sum();
                    let c = Copy {
                        name: format!("{name}_crop"),
                        dims: d,
                        parallel_dims: 1,
                        run: s[last] * bp,
                        src: op(0, base),
                        dst: op(1, 0),
                        accumulate: false,
                    };
                    kernels.push(copy(lw, &mut steps.backward, c, target, dx)?);
                }
                loops = vec![
                    format!("gemm dcol {}x{col_n} = W^T * dY (threads)", ci * wsz),
                    "JIT col2im scatter-add (threads over ci)".into(),
                ];
            }
        }
        plans.push(plan(Pass::BackwardInput, kernels, loops, vec![]));
    }
    let mut kernels = Vec::new();
    let loops = match (strategy.clone(), col) {
        (Strategy::Gemm, Some(colb)) => {
            steps.backward.push(Step::Gemm {
                dst: (
                    Buf::Grad,
                    MatView { base: wofs as usize, rows: co, cols: ci * wsz, rs: ci * wsz, cs: 1 },
                ),
                lhs: (io.dy, MatView { base: 0, rows: co, cols: col_n, rs: col_n, cs: 1 }),
                rhs: (colb, MatView { base: 0, rows: col_n, cols: ci * wsz, rs: 1, cs: col_n }),
                accumulate: false,
            });
            vec![format!("gemm dW {co}x{} = dY * col^T (threads)", ci * wsz)]
        }
        _ => {
            let kname = format!("{name}_bwd_w");
            let args = vec![(io.dy, false), (xsrc, false), (Buf::Grad, true)];
            let mut k = vec![Dim::new(ci, plane_sp as i64, wsz as i64)];
            k.extend((0..dims).map(|d| Dim::new(window[d], spst[d], wst[d])));
            let nt = Nt {
                name: kname.clone(),
                m: co,
                a_m: plane_o as i64,
                c_m: (ci * wsz) as i64,
                k,
                n_outer: (0..last).map(|d| Dim::new(o[d], ost[d], spst[d])).collect(),
                n_inner: o[last] * bp,
                a: op(0, 0),
                b: op(1, 0),
                c: op(2, wofs),
                accumulate: false,
                ones: false,
            };
            lw.call(&mut steps.backward, &kname, args, |j, p, specs| nt.emit(j, p, specs))?;
            kernels.push(kname);
            vec![
                "for (co block of 2, ci, window rows) (threads)".to_string(),
                format!("for last window offset step 4; output rows {:?}", &o[..last]),
                format!("for lanes in 0..{}: dot products, horizontal sum", o[last] * bp),
            ]
        }
    };
    if let Some(b) = bo {
        let kname = format!("{name}_bwd_b");
        let args = vec![(io.dy, false), (Buf::Grad, true)];
        let nt = Nt {
            name: kname.clone(),
            m: co,
            a_m: plane_o as i64,
            c_m: 1,
            k: vec![],
            n_outer: vec![],
            n_inner: plane_o,
            a: op(0, 0),
            b: op(0, 0),
            c: op(1, b),
            accumulate: false,
            ones: true,
        };
        lw.call(&mut steps.backward, &kname, args, |j, p, specs| nt.emit(j, p, specs))?;
        kernels.push(kname);
    }
    plans.push(plan(Pass::BackwardParams, kernels, loops, vec![]));
    lw.plans.extend(plans);
    Ok(steps)
}
