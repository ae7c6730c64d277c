//! The classifier executor: runs a [`ClassifierProgram`] (`codegen::classifier`) on its
//! buffers behind the [`Classifier`] trait. It transposes each batch into the programs'
//! feature-major, batch-minor layout, executes the forward program, the fused log-softmax + NLL
//! head and (when training) the backward program on its own thread pool, and reads the loss,
//! the accuracy and the log-probabilities back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{BatchStats, Classifier, RuntimeError};
use crate::codegen::classifier::{self, ClassifierProgram, Target};
use crate::codegen::jit::{Arg, CompiledKernels, JitError, Kernel, KernelRecord, gemm};
use crate::codegen::plan::KernelPlan;
pub use crate::codegen::program::StrategyChoice;
use crate::codegen::program::{Buf, Step};
use crate::codegen::simd::{Element, Precision};
use crate::ir::{self, Graph};

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

/// The compiled program for one element type, with its workspace buffers.
struct Engine<T> {
    program: ClassifierProgram,
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
    params: usize,
    engine: Engines,
    pool: rayon::ThreadPool,
    compile_time: Duration,
}

impl JitClassifier {
    /// Compile every forward and backward kernel of `graph`.
    pub fn compile(graph: &Graph, opts: &CompileOptions) -> Result<JitClassifier, JitError> {
        let t0 = Instant::now();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads.max(1))
            .build()
            .map_err(|e| JitError::Host(format!("thread pool: {e}")))?;
        let verified = ir::verify::verify(graph)
            .map_err(|e| JitError::Codegen { kernel: "<model>".into(), message: e.to_string() })?;
        let target = Target {
            max_batch: opts.max_batch,
            precision: opts.precision,
            strategy: opts.strategy,
            keep_listings: opts.keep_listings,
        };
        let program = classifier::lower(&verified, &target)?;
        fn make<T: Element>(program: ClassifierProgram) -> Engine<T> {
            let work = program.work.iter().map(|&n| vec![T::zero(); n]).collect();
            Engine { program, work: Mutex::new(work) }
        }
        let engine = match opts.precision {
            Precision::F32 => Engines::F32(make(program)),
            Precision::F64 => Engines::F64(make(program)),
        };
        Ok(JitClassifier {
            graph: graph.clone(),
            opts: opts.clone(),
            params: graph.param_scalars(),
            engine,
            pool,
            compile_time: t0.elapsed(),
        })
    }

    fn program(&self) -> &ClassifierProgram {
        match &self.engine {
            Engines::F32(e) => &e.program,
            Engines::F64(e) => &e.program,
        }
    }

    /// What was decided for every layer and pass.
    pub fn plans(&self) -> &[KernelPlan] {
        &self.program().plans
    }
    /// Listings and compile times of every kernel.
    pub fn records(&self) -> &[KernelRecord] {
        &self.program().kernels.records
    }
    /// The compiled kernels themselves (`symc inspect --bench` times them one by one).
    pub fn kernels(&self) -> &[Kernel] {
        self.program().kernels.kernels()
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
        let in_len = self.program().in_len;
        if images % in_len != 0 {
            return Err(RuntimeError::Shape(format!(
                "{images} input values is not a whole number of {in_len}-value samples"
            )));
        }
        let nb = images / in_len;
        if nb > self.opts.max_batch {
            return Err(RuntimeError::Shape(format!(
                "batch of {nb} exceeds the compiled maximum {}",
                self.opts.max_batch
            )));
        }
        Ok(nb)
    }

    /// Forward (and, with labels, backward) of one batch.
    fn run<T: Element>(
        &self,
        engine: &Engine<T>,
        params: &[T],
        images: &[T],
        labels: Option<&[u8]>,
        grad: &mut [T],
        logp_out: Option<&mut [T]>,
    ) -> Result<BatchStats, RuntimeError> {
        let nb = self.check_batch(params.len(), images.len())?;
        let e = &engine.program;
        let bp = e.batch_lanes;
        let (c, n) = (e.classes, e.in_len);
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
        let mut ws = engine.work.lock().unwrap_or_else(|p| p.into_inner());
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
                stats.loss_sum -= lp[lab as usize * bp + b].to_f64();
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
fn run_steps<T: Element>(
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
                            (Buf::Params, _) => Arg::ro(params),
                            (Buf::Grad, _) => match grad_slot.take() {
                                Some(g) => Arg::rw(g),
                                None => {
                                    return Err(RuntimeError::Shape(
                                        "gradient passed twice".into(),
                                    ));
                                }
                            },
                            (Buf::Work(i), false) => Arg::ro(&ws[i]),
                            (Buf::Work(_), true) => match taken_iter.next() {
                                Some((_, v)) => Arg::rw(v),
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
                    gemm(d, dst.1, get(lhs.0), lhs.1, get(rhs.0), rhs.1, *accumulate, threads)
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
