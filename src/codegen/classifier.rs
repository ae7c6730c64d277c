//! Lowering of a classifier network (dense, convolution, activation, flatten, log-softmax) to
//! a forward and a backward program of kernel calls and GEMM-library calls over a fixed set of
//! buffers ([`ClassifierProgram`]; the step types are in `program.rs`); `runtime::classifier`
//! runs it.
//!
//! Buffers hold values in the feature-major, batch-minor layout (`contraction.rs`): the batch
//! is padded to a multiple of 4 lanes, the input is transposed into that layout on entry and
//! the log-probabilities transposed back on exit. Padding lanes carry zeros in the input and a
//! zero target weight in the head, so they never reach the parameter gradients.
//!
//! Lowering decisions (strategy per layer, fusion of bias and activation, which gradients are
//! needed) are recorded as [`KernelPlan`]s for `symc inspect`.

use std::time::Duration;

use super::activation;
use super::contraction::Operand;
use super::conv;
use super::dense;
use super::jit::{CompiledKernels, Jit, JitError, KernelId};
use super::plan::{KernelPlan, Pass, Strategy};
use super::program::{Buf, LayerIo, Lowering, Step, StrategyChoice};
use super::simd::Precision;
use super::softmax;
use crate::ir::verify::Verified;
use crate::ir::{self, Activation, Graph, LayerKind, ValueId};

/// What a classifier is compiled for.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// Largest batch a call may pass; buffers hold it rounded up to whole vectors.
    pub max_batch: usize,
    pub precision: Precision,
    pub strategy: StrategyChoice,
    /// Keep CLIF and machine-code listings in the kernel records.
    pub keep_listings: bool,
}

/// A classifier lowered to kernels and programs.
pub struct ClassifierProgram {
    pub kernels: CompiledKernels,
    pub forward: Vec<Step>,
    pub backward: Vec<Step>,
    /// The fused log-softmax + NLL kernel: (logits, targets) -> (logp, dlogits, loss).
    pub head: KernelId,
    pub input: Buf,
    pub logits: Buf,
    pub logp: Buf,
    pub dlogits: Buf,
    pub targets: Buf,
    pub loss: Buf,
    /// Element count of every workspace buffer (`Buf::Work(i)` has `work[i]`).
    pub work: Vec<usize>,
    /// What was decided for every layer and pass.
    pub plans: Vec<KernelPlan>,
    /// Padded batch: the lane count of every activation row.
    pub batch_lanes: usize,
    /// Values per input sample and classes of the output.
    pub in_len: usize,
    pub classes: usize,
}

/// Lower every forward and backward kernel of a verified classifier.
pub fn lower(graph: &Verified<'_>, target: &Target) -> Result<ClassifierProgram, JitError> {
    if target.max_batch == 0 {
        return Err(JitError::Codegen {
            kernel: "<model>".into(),
            message: "max_batch must be positive".into(),
        });
    }
    let bp = target.max_batch.div_ceil(4) * 4;
    let mut jit = Jit::new()?;
    jit.keep_listings = target.keep_listings;
    let mut lw = Lowering {
        jit: &mut jit,
        prec: target.precision,
        bp,
        params: graph.param_scalars(),
        work: Vec::new(),
        strategy: target.strategy,
        plans: Vec::new(),
        names: Vec::new(),
    };
    let l = lower_graph(graph, &mut lw)?;
    let mut plans = std::mem::take(&mut lw.plans);
    let work = std::mem::take(&mut lw.work);
    let kernels = jit.finish()?;
    for p in &mut plans {
        p.compile_time = kernels
            .records
            .iter()
            .filter(|r| p.kernels.contains(&r.name))
            .map(|r| r.compile_time)
            .sum();
    }
    Ok(ClassifierProgram {
        kernels,
        forward: l.forward,
        backward: l.backward,
        head: l.head,
        input: l.input,
        logits: l.logits,
        logp: l.logp,
        dlogits: l.dlogits,
        targets: l.targets,
        loss: l.loss,
        work,
        plans,
        batch_lanes: bp,
        in_len: real_len(graph, ValueId(0))?,
        classes: real_len(graph, graph.output)?,
    })
}

fn unsupported(layer: &ir::Layer, what: &str) -> JitError {
    JitError::Codegen {
        kernel: layer.name.clone(),
        message: format!("{what} is not supported by the classifier back end"),
    }
}

fn real_len(graph: &Graph, v: ValueId) -> Result<usize, JitError> {
    match graph.value(v) {
        ir::ValueType::Real { shape } => Ok(shape.iter().product()),
        other => Err(JitError::Codegen {
            kernel: format!("{v}"),
            message: format!("{other:?} is not a real tensor"),
        }),
    }
}

/// The lowered programs and the buffers the executor fills and reads.
struct Lowered {
    forward: Vec<Step>,
    backward: Vec<Step>,
    head: KernelId,
    input: Buf,
    logits: Buf,
    logp: Buf,
    dlogits: Buf,
    targets: Buf,
    loss: Buf,
}

fn lower_graph(graph: &Graph, lw: &mut Lowering) -> Result<Lowered, JitError> {
    let nv = graph.values.len();
    let last = graph.layers.last().ok_or_else(|| JitError::Codegen {
        kernel: "<model>".into(),
        message: "the network has no layers".into(),
    })?;
    if last.kind != LayerKind::LogSoftmax || last.output != graph.output {
        return Err(unsupported(last, "a classifier must end in log_softmax; this output"));
    }
    // Each value may feed at most one layer: gradients are then written, never accumulated.
    let mut uses = vec![0usize; nv];
    for l in &graph.layers {
        for v in &l.inputs {
            uses[v.index()] += 1;
        }
    }
    if let Some(l) = graph.layers.iter().find(|l| l.inputs.iter().any(|v| uses[v.index()] > 1)) {
        return Err(unsupported(l, "a value used by several layers"));
    }
    // Which layers' activations are fused into the preceding dense/conv kernel.
    let mut fused_into = vec![None; graph.layers.len()];
    let mut fused_act = vec![Activation::Identity; graph.layers.len()];
    for (i, l) in graph.layers.iter().enumerate() {
        if let LayerKind::Activation(a) = l.kind
            && i > 0
        {
            let prev = &graph.layers[i - 1];
            if matches!(prev.kind, LayerKind::Dense { .. } | LayerKind::Conv { .. })
                && prev.output == l.inputs[0]
                && fused_into[i - 1].is_none()
            {
                fused_into[i] = Some(i - 1);
                fused_act[i - 1] = a;
            }
        }
    }
    // Which values need a gradient.
    let mut needs = vec![false; nv];
    for l in &graph.layers {
        let n = !l.params.is_empty() || l.inputs.iter().any(|v| needs[v.index()]);
        needs[l.output.index()] = n;
    }
    let bp = lw.bp;
    let mut val: Vec<Option<Buf>> = vec![None; nv];
    val[0] = Some(lw.alloc(real_len(graph, ValueId(0))? * bp));
    for (i, l) in graph.layers.iter().enumerate() {
        let len = real_len(graph, l.output)?;
        let x =
            val[l.inputs[0].index()].ok_or_else(|| unsupported(l, "an input computed later"))?;
        val[l.output.index()] = Some(match (&l.kind, fused_into[i]) {
            (LayerKind::Flatten, _) => x,
            (LayerKind::Activation(_), Some(_)) => x,
            _ => lw.alloc(len * bp),
        });
    }
    let mut grad: Vec<Option<Buf>> = vec![None; nv];
    for (i, l) in graph.layers.iter().enumerate().rev() {
        let xin = l.inputs[0].index();
        if !needs[xin] {
            continue;
        }
        grad[xin] = Some(match (&l.kind, fused_into[i]) {
            (LayerKind::Flatten, _) | (LayerKind::Activation(_), _) => grad[l.output.index()]
                .ok_or_else(|| unsupported(l, "a layer whose output gradient is unknown"))?,
            _ => lw.alloc(real_len(graph, l.inputs[0])? * bp),
        });
    }
    let mut forward = Vec::new();
    let mut backward_by_layer: Vec<Vec<Step>> = Vec::new();
    let mut head = None;
    let logits = val[last.inputs[0].index()].ok_or_else(|| unsupported(last, "missing logits"))?;
    let dlogits = grad[last.inputs[0].index()]
        .ok_or_else(|| unsupported(last, "logits without a gradient"))?;
    let classes = real_len(graph, graph.output)?;
    for (i, l) in graph.layers.iter().enumerate() {
        let x = val[l.inputs[0].index()].ok_or_else(|| unsupported(l, "missing input"))?;
        let y = val[l.output.index()].ok_or_else(|| unsupported(l, "missing output"))?;
        let dx = grad[l.inputs[0].index()];
        match &l.kind {
            LayerKind::Dense { complex: false, .. } | LayerKind::Conv { .. } => {
                // A fused activation shares its gradient buffer with the layer output
                // (activations alias gradients), so the layer's own output gradient is it.
                let dy = grad[l.output.index()]
                    .ok_or_else(|| unsupported(l, "an output without a gradient"))?;
                let io = LayerIo { x, y, dx, dy, act: fused_act[i] };
                let steps = match &l.kind {
                    LayerKind::Dense { .. } => dense::lower(lw, graph, l, &io)?,
                    _ => conv::lower(lw, graph, l, &io)?,
                };
                forward.extend(steps.forward);
                backward_by_layer.push(steps.backward);
            }
            LayerKind::Activation(a) => {
                if fused_into[i].is_some() {
                    continue;
                }
                let rows = real_len(graph, l.output)?;
                let name = format!("{}_fwd", l.name);
                let args = vec![(x, false), (y, true)];
                let op = |b| Operand { buf: b, base: 0 };
                let id = activation::emit_forward(
                    lw.jit,
                    lw.prec,
                    &name,
                    *a,
                    rows,
                    bp,
                    op(0),
                    op(1),
                    lw.specs(&args),
                )?;
                lw.named(id, &name);
                forward.push(Step::Kernel { id, args });
                let mut bw = Vec::new();
                let mut kernels = vec![name];
                if let Some(dy) = grad[l.output.index()] {
                    if let Some(s) = activation::backward_step(lw, &l.name, *a, rows, y, dy)? {
                        kernels.push(format!("{}_act_bwd", l.name));
                        bw.push(s);
                    }
                }
                backward_by_layer.push(bw);
                lw.plans.push(elementwise_plan(l, rows, bp, lw.prec, *a, kernels));
            }
            LayerKind::Flatten => {}
            LayerKind::LogSoftmax => {
                let name = format!("{}_nll", l.name);
                let id = softmax::emit(lw.jit, lw.prec, &name, classes, bp)?;
                lw.named(id, &name);
                head = Some(id);
                lw.plans.push(KernelPlan {
                    layer: l.name.clone(),
                    pass: Pass::Forward,
                    strategy: Strategy::Jit,
                    reason: "tiny (classes x batch); fused with the NLL loss and its gradient"
                        .into(),
                    loops: vec![
                        format!("for lanes in 0..{bp} step {} (threads)", lw.prec.lanes()),
                        format!("for c in 0..{classes} (3 passes: max, sum exp, write)"),
                    ],
                    layout: format!(
                        "[class][batch], {}x{} over samples",
                        lw.prec.name(),
                        lw.prec.lanes()
                    ),
                    fused: vec!["log_softmax".into(), "nll".into(), "nll gradient".into()],
                    flops: (classes * bp * 30) as f64,
                    bytes: (classes * bp * 4 * lw.prec.bytes()) as f64,
                    kernels: vec![name],
                    compile_time: Duration::ZERO,
                });
            }
            other => return Err(unsupported(l, &format!("{other:?}"))),
        }
    }
    let head = head.ok_or_else(|| unsupported(last, "missing head"))?;
    let targets = lw.alloc(classes * bp);
    let loss = lw.alloc(bp);
    let backward = backward_by_layer.into_iter().rev().flatten().collect();
    Ok(Lowered {
        forward,
        backward,
        head,
        input: val[0].ok_or_else(|| unsupported(last, "input"))?,
        logits,
        logp: val[graph.output.index()].ok_or_else(|| unsupported(last, "output"))?,
        dlogits,
        targets,
        loss,
    })
}

fn elementwise_plan(
    l: &ir::Layer,
    rows: usize,
    bp: usize,
    prec: Precision,
    a: Activation,
    kernels: Vec<String>,
) -> KernelPlan {
    KernelPlan {
        layer: l.name.clone(),
        pass: Pass::Forward,
        strategy: Strategy::Jit,
        reason: "elementwise; not fusable into a preceding dense/conv kernel".into(),
        loops: vec![
            format!("for row in 0..{rows} (threads)"),
            format!("for lane in 0..{bp} step {}", prec.lanes()),
        ],
        layout: format!("[feature][batch], {}x{}", prec.name(), prec.lanes()),
        fused: vec![format!("{a:?}").to_lowercase()],
        flops: (rows * bp * 20) as f64,
        bytes: (2 * rows * bp * prec.bytes()) as f64,
        kernels,
        compile_time: Duration::ZERO,
    }
}
