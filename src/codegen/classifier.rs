//! A classifier network compiled to native kernels: lowers an [`ir::Graph`] of real-valued
//! layers (dense, convolution, activation, flatten, log-softmax) to a forward and a backward
//! *program* of kernel calls and GEMM-library calls over a fixed set of buffers, and runs it
//! behind the [`runtime::Classifier`] trait.
//!
//! Buffers hold values in the feature-major, batch-minor layout (`contraction.rs`): the batch
//! is padded to a multiple of 4 lanes, the input is transposed into that layout on entry and
//! the log-probabilities transposed back on exit. Padding lanes carry zeros in the input and a
//! zero target weight in the head, so they never reach the parameter gradients.
//!
//! Lowering decisions (strategy per layer, fusion of bias and activation, which gradients are
//! needed) are recorded as [`KernelPlan`]s for `symc inspect`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::activation;
use super::conv;
use super::dense;
use super::jit::{
    Arg, BufSpec, CompiledKernels, GemmElem, Jit, JitError, KernelId, KernelRecord, MatView,
    bytes_of, bytes_of_mut,
};
use super::plan::KernelPlan;
use super::simd::Precision;
use super::softmax;
use crate::ir::{self, Activation, Graph, LayerKind, ValueId};
use crate::runtime::{BatchStats, Classifier, RuntimeError};

/// How dense and convolution layers are executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrategyChoice {
    /// Per layer, by the measured rule in `dense.rs` / `conv.rs`.
    Auto,
    /// Every layer entirely in cranelift code.
    ForceJit,
    /// Every layer through the `gemm` crate with JIT glue.
    ForceGemm,
}

/// Options of [`JitClassifier::compile`].
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Largest batch a call may pass (smaller batches work too).
    pub max_batch: usize,
    /// Worker threads for kernels and GEMM calls.
    pub threads: usize,
    pub precision: Precision,
    /// Keep CLIF and machine-code listings in the kernel records.
    pub keep_listings: bool,
    pub strategy: StrategyChoice,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            max_batch: 64,
            threads: 2,
            precision: Precision::F32,
            keep_listings: false,
            strategy: StrategyChoice::Auto,
        }
    }
}

/// A buffer of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buf {
    /// The flat parameter vector (read-only).
    Params,
    /// The flat parameter gradient.
    Grad,
    /// Workspace buffer `i` (activations, gradients, padding, im2col).
    Work(usize),
}

/// One step of a program.
#[derive(Clone, Debug)]
pub enum Step {
    /// A JIT kernel over all its items, split across the threads.
    Kernel { id: KernelId, args: Vec<(Buf, bool)> },
    /// `dst (+)= lhs * rhs` through the `gemm` crate.
    Gemm { dst: (Buf, MatView), lhs: (Buf, MatView), rhs: (Buf, MatView), accumulate: bool },
    /// Set a workspace buffer to zero.
    Zero(Buf),
}

/// State while lowering a graph: the JIT session, buffers and the two programs.
pub struct Lowering<'a> {
    pub jit: &'a mut Jit,
    pub prec: Precision,
    /// Padded batch: the lane count of every activation row.
    pub bp: usize,
    pub params: usize,
    pub work: Vec<usize>,
    pub strategy: StrategyChoice,
    pub plans: Vec<KernelPlan>,
    /// Names of kernels defined so far, by id.
    pub names: Vec<String>,
}

impl Lowering<'_> {
    /// A new zero-initialised workspace buffer of `elems` elements.
    pub fn alloc(&mut self, elems: usize) -> Buf {
        self.work.push(elems);
        Buf::Work(self.work.len() - 1)
    }
    pub fn elems(&self, b: Buf) -> usize {
        match b {
            Buf::Params | Buf::Grad => self.params,
            Buf::Work(i) => self.work[i],
        }
    }
    /// Kernel buffer specs for an argument list.
    pub fn specs(&self, args: &[(Buf, bool)]) -> Vec<BufSpec> {
        args.iter()
            .map(|&(b, w)| BufSpec {
                name: match b {
                    Buf::Params => "params".into(),
                    Buf::Grad => "grad".into(),
                    Buf::Work(i) => format!("w{i}"),
                },
                bytes: self.elems(b) * self.prec.bytes(),
                writable: w,
            })
            .collect()
    }
    /// Record a defined kernel's name (for plans).
    pub fn named(&mut self, id: KernelId, name: &str) -> KernelId {
        if self.names.len() <= id.0 {
            self.names.resize(id.0 + 1, String::new());
        }
        self.names[id.0] = name.to_string();
        id
    }
}

/// What a layer lowering needs to know about its neighbourhood.
pub struct LayerIo {
    pub x: Buf,
    pub y: Buf,
    /// Gradient of the input, when some earlier layer needs it.
    pub dx: Option<Buf>,
    pub dy: Buf,
    /// Activation fused into the forward kernel (its backward runs at the start of the layer's
    /// backward).
    pub act: Activation,
}

/// Forward and backward steps of one layer.
#[derive(Default)]
pub struct LayerSteps {
    pub forward: Vec<Step>,
    pub backward: Vec<Step>,
}

/// Emit the in-place activation backward `dy *= f'(y)` over `rows x bp`.
pub fn act_backward(
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
    let op = |b| super::contraction::Operand { buf: b, base: 0 };
    let id = activation::emit_backward(
        lw.jit,
        lw.prec,
        &name,
        act,
        rows,
        lw.bp,
        op(0),
        op(1),
        lw.specs(&args),
    )?;
    lw.named(id, &name);
    Ok(Some(Step::Kernel { id, args }))
}

/// Element type of a compiled network.
pub trait Elem: GemmElem + num_traits::Float + Default {
    const PRECISION: Precision;
}
impl Elem for f32 {
    const PRECISION: Precision = Precision::F32;
}
impl Elem for f64 {
    const PRECISION: Precision = Precision::F64;
}

/// The compiled program for one element type.
struct Engine<T> {
    kernels: CompiledKernels,
    forward: Vec<Step>,
    backward: Vec<Step>,
    head: KernelId,
    input: Buf,
    logits: Buf,
    logp: Buf,
    dlogits: Buf,
    targets: Buf,
    loss: Buf,
    work: Mutex<Vec<Vec<T>>>,
}

enum Engines {
    F32(Engine<f32>),
    F64(Engine<f64>),
}

/// A classifier compiled to JIT kernels; see the module documentation.
pub struct JitClassifier {
    graph: Graph,
    opts: CompileOptions,
    bp: usize,
    in_len: usize,
    classes: usize,
    params: usize,
    plans: Vec<KernelPlan>,
    engine: Engines,
    pool: rayon::ThreadPool,
    compile_time: Duration,
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

impl JitClassifier {
    /// Compile every forward and backward kernel of `graph`.
    pub fn compile(graph: &Graph, opts: &CompileOptions) -> Result<JitClassifier, JitError> {
        let t0 = Instant::now();
        if opts.max_batch == 0 {
            return Err(JitError::Codegen {
                kernel: "<model>".into(),
                message: "max_batch must be positive".into(),
            });
        }
        let bp = opts.max_batch.div_ceil(4) * 4;
        let threads = opts.threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| JitError::Host(format!("thread pool: {e}")))?;
        let mut jit = Jit::new()?;
        jit.keep_listings = opts.keep_listings;
        let mut lw = Lowering {
            jit: &mut jit,
            prec: opts.precision,
            bp,
            params: graph.param_scalars(),
            work: Vec::new(),
            strategy: opts.strategy,
            plans: Vec::new(),
            names: Vec::new(),
        };
        let lowered = lower_graph(graph, &mut lw)?;
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
        let in_len = real_len(graph, ValueId(0))?;
        let classes = real_len(graph, graph.output)?;
        fn make<T: Elem>(kernels: CompiledKernels, l: &Lowered, work: &[usize]) -> Engine<T> {
            Engine {
                kernels,
                forward: l.forward.clone(),
                backward: l.backward.clone(),
                head: l.head,
                input: l.input,
                logits: l.logits,
                logp: l.logp,
                dlogits: l.dlogits,
                targets: l.targets,
                loss: l.loss,
                work: Mutex::new(work.iter().map(|&n| vec![T::zero(); n]).collect()),
            }
        }
        let engine = match opts.precision {
            Precision::F32 => Engines::F32(make(kernels, &lowered, &work)),
            Precision::F64 => Engines::F64(make(kernels, &lowered, &work)),
        };
        Ok(JitClassifier {
            graph: graph.clone(),
            opts: opts.clone(),
            bp,
            in_len,
            classes,
            params: graph.param_scalars(),
            plans,
            engine,
            pool,
            compile_time: t0.elapsed(),
        })
    }

    /// What was decided for every layer and pass.
    pub fn plans(&self) -> &[KernelPlan] {
        &self.plans
    }
    /// Listings and compile times of every kernel.
    pub fn records(&self) -> &[KernelRecord] {
        match &self.engine {
            Engines::F32(e) => &e.kernels.records,
            Engines::F64(e) => &e.kernels.records,
        }
    }
    /// The compiled kernels themselves (`symc inspect --bench` times them one by one).
    pub fn kernels(&self) -> &[super::jit::Kernel] {
        match &self.engine {
            Engines::F32(e) => e.kernels.kernels(),
            Engines::F64(e) => e.kernels.kernels(),
        }
    }
    /// Wall time of [`JitClassifier::compile`] (lowering, cranelift, finalisation).
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }
    pub fn options(&self) -> &CompileOptions {
        &self.opts
    }

    /// [`Classifier::train_batch`] in f64; needs a classifier compiled with `Precision::F64`.
    pub fn train_batch_f64(
        &self,
        params: &[f64],
        images: &[f64],
        labels: &[u8],
        grad: &mut [f64],
    ) -> Result<BatchStats, RuntimeError> {
        match &self.engine {
            Engines::F64(e) => self.run(e, params, images, Some(labels), grad, None),
            Engines::F32(_) => {
                Err(RuntimeError::Shape("this classifier was compiled for f32".into()))
            }
        }
    }

    /// [`Classifier::predict`] in f64; needs a classifier compiled with `Precision::F64`.
    pub fn predict_f64(
        &self,
        params: &[f64],
        images: &[f64],
        logp: &mut [f64],
    ) -> Result<(), RuntimeError> {
        match &self.engine {
            Engines::F64(e) => self.run(e, params, images, None, &mut [], Some(logp)).map(|_| ()),
            Engines::F32(_) => {
                Err(RuntimeError::Shape("this classifier was compiled for f32".into()))
            }
        }
    }

    fn check_batch(&self, params: usize, images: usize) -> Result<usize, RuntimeError> {
        if params != self.params {
            return Err(RuntimeError::Shape(format!(
                "{params} parameters given, the network has {}",
                self.params
            )));
        }
        if images % self.in_len != 0 {
            return Err(RuntimeError::Shape(format!(
                "{images} input values is not a whole number of {}-value samples",
                self.in_len
            )));
        }
        let nb = images / self.in_len;
        if nb > self.opts.max_batch {
            return Err(RuntimeError::Shape(format!(
                "batch of {nb} exceeds the compiled maximum {}",
                self.opts.max_batch
            )));
        }
        Ok(nb)
    }

    /// Forward (and, with labels, backward) of one batch.
    fn run<T: Elem>(
        &self,
        e: &Engine<T>,
        params: &[T],
        images: &[T],
        labels: Option<&[u8]>,
        grad: &mut [T],
        logp_out: Option<&mut [T]>,
    ) -> Result<BatchStats, RuntimeError> {
        let nb = self.check_batch(params.len(), images.len())?;
        let bp = self.bp;
        let (c, n) = (self.classes, self.in_len);
        if let Some(l) = labels {
            if l.len() != nb || grad.len() != self.params {
                return Err(RuntimeError::Shape("images, labels and gradient disagree".into()));
            }
            if let Some(&bad) = l.iter().find(|&&x| x as usize >= c) {
                return Err(RuntimeError::Shape(format!(
                    "label {bad} but the network has {c} classes"
                )));
            }
        }
        let mut ws = e.work.lock().unwrap_or_else(|p| p.into_inner());
        {
            let x = &mut ws[idx(e.input)];
            for i in 0..n {
                let row = &mut x[i * bp..(i + 1) * bp];
                for (b, v) in row.iter_mut().enumerate() {
                    *v = if b < nb { images[b * n + i] } else { T::zero() };
                }
            }
            let t = &mut ws[idx(e.targets)];
            t.fill(T::zero());
            if let Some(l) = labels {
                let w = T::one() / T::from(nb.max(1)).unwrap_or_else(T::one);
                for (b, &lab) in l.iter().enumerate() {
                    t[lab as usize * bp + b] = w;
                }
            }
        }
        let ws_ref: &mut Vec<Vec<T>> = &mut ws;
        self.pool.install(|| -> Result<(), RuntimeError> {
            let ws = ws_ref;
            run_steps(&e.kernels, &e.forward, params, grad, ws, self.opts.threads)?;
            let head = Step::Kernel {
                id: e.head,
                args: vec![
                    (e.logits, false),
                    (e.targets, false),
                    (e.logp, true),
                    (e.dlogits, true),
                    (e.loss, true),
                ],
            };
            run_steps(
                &e.kernels,
                std::slice::from_ref(&head),
                params,
                grad,
                ws,
                self.opts.threads,
            )?;
            if labels.is_some() {
                run_steps(&e.kernels, &e.backward, params, grad, ws, self.opts.threads)?;
            }
            Ok(())
        })?;
        let lp = &ws[idx(e.logp)];
        let mut stats = BatchStats { samples: nb, ..Default::default() };
        if let Some(l) = labels {
            for (b, &lab) in l.iter().enumerate() {
                stats.loss_sum -= lp[lab as usize * bp + b].to_f64().unwrap_or(f64::NAN);
                let arg =
                    (0..c).fold(0, |a, k| if lp[k * bp + b] > lp[a * bp + b] { k } else { a });
                stats.correct += usize::from(arg == lab as usize);
            }
        }
        if let Some(out) = logp_out {
            if out.len() != nb * c {
                return Err(RuntimeError::Shape(format!(
                    "output holds {} values, expected {nb} x {c}",
                    out.len()
                )));
            }
            for b in 0..nb {
                for k in 0..c {
                    out[b * c + k] = lp[k * bp + b];
                }
            }
        }
        Ok(stats)
    }
}

fn idx(b: Buf) -> usize {
    match b {
        Buf::Work(i) => i,
        Buf::Params | Buf::Grad => usize::MAX,
    }
}

/// Execute steps against the parameter vector, the gradient and the workspace.
fn run_steps<T: Elem>(
    kernels: &CompiledKernels,
    steps: &[Step],
    params: &[T],
    grad: &mut [T],
    ws: &mut [Vec<T>],
    threads: usize,
) -> Result<(), RuntimeError> {
    for step in steps {
        match step {
            Step::Zero(b) => match b {
                Buf::Work(i) => ws[*i].fill(T::zero()),
                Buf::Grad => grad.fill(T::zero()),
                Buf::Params => {
                    return Err(RuntimeError::Shape("cannot clear the parameters".into()));
                }
            },
            Step::Kernel { id, args } => {
                // Writable workspace buffers are moved out for the call, so every argument is
                // an independent borrow.
                let mut taken: Vec<(usize, Vec<T>)> = args
                    .iter()
                    .filter_map(|&(b, w)| match b {
                        Buf::Work(i) if w => Some((i, std::mem::take(&mut ws[i]))),
                        _ => None,
                    })
                    .collect();
                let mut grad_slot = Some(&mut *grad);
                {
                    let mut taken_iter = taken.iter_mut();
                    let mut call_args: Vec<Arg> = Vec::with_capacity(args.len());
                    for &(b, w) in args {
                        call_args.push(match (b, w) {
                            (Buf::Params, _) => Arg::Ro(bytes_of(params)),
                            (Buf::Grad, _) => match grad_slot.take() {
                                Some(g) => Arg::Rw(bytes_of_mut(g)),
                                None => {
                                    return Err(RuntimeError::Shape(
                                        "gradient passed twice".into(),
                                    ));
                                }
                            },
                            (Buf::Work(i), false) => Arg::Ro(bytes_of(&ws[i])),
                            (Buf::Work(_), true) => match taken_iter.next() {
                                Some((_, v)) => Arg::Rw(bytes_of_mut(v)),
                                None => {
                                    return Err(RuntimeError::Shape(
                                        "internal: buffer bookkeeping".into(),
                                    ));
                                }
                            },
                        });
                    }
                    kernels.kernel(*id).call_parallel(&mut call_args, 1)?;
                }
                for (i, v) in taken.drain(..) {
                    ws[i] = v;
                }
            }
            Step::Gemm { dst, lhs, rhs, accumulate } => {
                let (Buf::Work(_) | Buf::Grad) = dst.0 else {
                    return Err(RuntimeError::Shape("gemm into the parameters".into()));
                };
                let mut out = match dst.0 {
                    Buf::Work(i) => std::mem::take(&mut ws[i]),
                    _ => Vec::new(),
                };
                let res = {
                    let get = |b: Buf| -> &[T] {
                        match b {
                            Buf::Params => params,
                            Buf::Work(i) => &ws[i],
                            Buf::Grad => &[],
                        }
                    };
                    let d: &mut [T] = if dst.0 == Buf::Grad { &mut *grad } else { &mut out };
                    super::jit::gemm(
                        d,
                        dst.1,
                        get(lhs.0),
                        lhs.1,
                        get(rhs.0),
                        rhs.1,
                        *accumulate,
                        threads,
                    )
                };
                if let Buf::Work(i) = dst.0 {
                    ws[i] = out;
                }
                res?;
            }
        }
    }
    Ok(())
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
                let op = |b| super::contraction::Operand { buf: b, base: 0 };
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
                    if let Some(s) = act_backward(lw, &l.name, *a, rows, y, dy)? {
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
                    pass: super::plan::Pass::Forward,
                    strategy: super::plan::Strategy::Jit,
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
        pass: super::plan::Pass::Forward,
        strategy: super::plan::Strategy::Jit,
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

impl Classifier for JitClassifier {
    fn graph(&self) -> &Graph {
        &self.graph
    }

    fn train_batch(
        &self,
        params: &[f32],
        images: &[f32],
        labels: &[u8],
        grad: &mut [f32],
    ) -> Result<BatchStats, RuntimeError> {
        match &self.engine {
            Engines::F32(e) => self.run(e, params, images, Some(labels), grad, None),
            Engines::F64(e) => {
                let p: Vec<f64> = params.iter().map(|&v| v as f64).collect();
                let x: Vec<f64> = images.iter().map(|&v| v as f64).collect();
                let mut g = vec![0.0; grad.len()];
                let s = self.run(e, &p, &x, Some(labels), &mut g, None)?;
                for (o, v) in grad.iter_mut().zip(g) {
                    *o = v as f32;
                }
                Ok(s)
            }
        }
    }

    fn predict(
        &self,
        params: &[f32],
        images: &[f32],
        logp: &mut [f32],
    ) -> Result<(), RuntimeError> {
        match &self.engine {
            Engines::F32(e) => self.run(e, params, images, None, &mut [], Some(logp)).map(|_| ()),
            Engines::F64(e) => {
                let p: Vec<f64> = params.iter().map(|&v| v as f64).collect();
                let x: Vec<f64> = images.iter().map(|&v| v as f64).collect();
                let mut o = vec![0.0; logp.len()];
                self.run(e, &p, &x, None, &mut [], Some(&mut o))?;
                for (d, v) in logp.iter_mut().zip(o) {
                    *d = v as f32;
                }
                Ok(())
            }
        }
    }
}
