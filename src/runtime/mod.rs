//! Runtime: the executors. Code generation (`codegen`) turns a verified IR into kernels; this
//! module runs them — buffers, threads, data layouts, the tables a gauge field gives the kernels
//! — behind small traits the rest of symc uses: [`Classifier`] for image classifiers,
//! [`FermionNet`] for networks on fermion fields, and the solver traits of `solve` for the Dirac
//! operator and trained preconditioners. The plain-Rust reference evaluators (`reference.rs`,
//! `lattice_reference.rs`), the oracles every kernel is tested against, implement the same
//! traits and share no code with codegen.

/// The layout of the executors' lattice buffers (what the native paths of solvers and
/// training hand them), re-exported so that callers need not reach into code generation.
pub use crate::codegen::lattice_layout::SiteLayout;
use crate::codegen::simd::Element;
use crate::ir::{Graph, LayerKind, ValueType};
use crate::lattice::Real;
use crate::lattice::gauge::GaugeField;
use num_complex::Complex;
use rayon::prelude::*;

/// Builds rayon's global pool once per process, with the calling thread (the program's main
/// thread) as worker 0, and returns the threads in use. `threads` (a `--threads` flag) fixes
/// the size; otherwise `RAYON_NUM_THREADS` or the number of cores.
///
/// Why the main thread joins the pool: every kernel, Gram–Schmidt sweep and layout conversion
/// is a parallel pass started from it. Outside the pool each pass is injected into the pool and
/// the main thread sleeps until a worker wakes it (three threads on two cores, and a wake-up
/// per pass, five passes per solver iteration); as worker 0 it runs its share of the pass in
/// place. Measured side by side on the 8⁴ GMRES of BENCHMARKS.md: 0.54 s against 0.58 s per
/// solve (median of 8 interleaved runs each, load ≈ 4). A second call (a pool already built)
/// changes nothing.
pub fn init_pool(threads: Option<usize>) -> usize {
    let mut b = rayon::ThreadPoolBuilder::new().use_current_thread();
    if let Some(t) = threads.filter(|&t| t > 0) {
        b = b.num_threads(t);
    }
    let _ = b.build_global();
    rayon::current_num_threads()
}

/// Errors while running a network (wrong buffer sizes, kernel call failures).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RuntimeError {
    #[error("shape mismatch: {0}")]
    #[diagnostic(code(symc::runtime::shape))]
    Shape(String),
    #[error(transparent)]
    #[diagnostic(code(symc::runtime::jit))]
    Jit(#[from] crate::codegen::jit::JitError),
    /// A graph that fails the IR verifier reached an executor: a bug in whatever built it.
    #[error("internal compiler error: {0}")]
    #[diagnostic(code(symc::runtime::verify))]
    Verify(#[from] crate::ir::verify::VerifyError),
}

/// Loss and accuracy of one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchStats {
    /// Sum over the batch of the per-sample NLL.
    pub loss_sum: f64,
    /// Samples whose arg-max prediction equals the label.
    pub correct: usize,
    pub samples: usize,
}

/// A classifier the training loop can drive: the JIT executor and the reference evaluator both
/// implement it, so training can be checked against the oracle end to end.
pub trait Classifier: Send + Sync {
    fn graph(&self) -> &Graph;
    /// Forward and backward of the mean NLL over a batch (`labels.len()` samples, `images` is
    /// `batch * input_len` values). Overwrites `grad` with d(mean loss)/d(params).
    fn train_batch(
        &self,
        params: &[f32],
        images: &[f32],
        labels: &[u8],
        grad: &mut [f32],
    ) -> Result<BatchStats, RuntimeError>;
    /// Log-probabilities (`batch * classes`) for a batch of inputs.
    fn predict(&self, params: &[f32], images: &[f32], logp: &mut [f32])
    -> Result<(), RuntimeError>;
}

/// What the trainer and the preconditioner wrapper need from a network on fermion fields: the
/// gauge-equivariant JIT network ([`lattice_net::LatticeNet`]) and the unconstrained complex dense chain
/// ([`dense_lattice::DenseLatticeNet`]) both provide it.
pub trait FermionNet<T: Real>: Send + Sync {
    fn graph(&self) -> &Graph;
    /// output = M input (reference layout).
    fn forward(
        &self,
        params: &[T],
        input: &[Complex<T>],
        output: &mut [Complex<T>],
    ) -> Result<(), RuntimeError>;
    /// Forward pass, `seed(output, grad_output)`, then the weight gradients (overwritten) with
    /// respect to the (re, im) pairs.
    fn forward_backward_seeded(
        &self,
        params: &[T],
        input: &[Complex<T>],
        seed: &mut dyn FnMut(&[Complex<T>], &mut [Complex<T>]),
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError>;
    /// output = M input on one-feature buffers in the JIT layout `layout` (main part; the tail
    /// is scratch). The default converts through the reference layout; the JIT network
    /// overrides it to run on the buffers directly.
    fn forward_native(
        &self,
        params: &[T],
        layout: &SiteLayout,
        input: &mut [T],
        output: &mut [T],
    ) -> Result<(), RuntimeError> {
        let n = layout.volume() * 12;
        let zero = Complex::new(T::zero(), T::zero());
        let mut a = vec![zero; n];
        let mut b = vec![zero; n];
        layout.from_aosoa(input, &mut a);
        self.forward(params, &a, &mut b)?;
        layout.to_aosoa(&b, output);
        Ok(())
    }
    /// A training step's passes on one-feature buffers in the JIT layout `layout`: M input,
    /// `seed(output, grad_output)` with the main parts of the output and of its gradient (the
    /// loss is elementwise, so it needs no reference layout), then the weight gradients
    /// (overwritten). `input`'s tail is scratch. The default converts through the reference
    /// layout ([`forward_backward_via_reference`]); the JIT networks run on the buffers.
    fn forward_backward_native(
        &self,
        params: &[T],
        layout: &SiteLayout,
        input: &mut [T],
        seed: &mut dyn FnMut(&[T], &mut [T]),
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        forward_backward_via_reference(self, params, layout, input, seed, grad_params)
    }
    /// The training loss ‖M input − target‖² (this process's part, accumulated in f64) and its
    /// weight gradient (overwritten), on one-feature buffers in `layout` (`input`'s tail is
    /// scratch; `target`'s main part is read). The default seeds
    /// [`FermionNet::forward_backward_native`] with 2 (M input − target) ([`mse_seed`]); the
    /// JIT network runs its output layer's forward pass, the seed and that layer's weight
    /// gradient in one fused sweep.
    fn loss_grad_native(
        &self,
        params: &[T],
        layout: &SiteLayout,
        input: &mut [T],
        target: &[T],
        grad_params: &mut [T],
    ) -> Result<f64, RuntimeError> {
        loss_grad_seeded(self, params, layout, input, target, grad_params)
    }
    /// Scalars a buffer needs for [`FermionNet::forward_native`] beyond `layout`'s own.
    fn native_buffer_len(&self) -> usize {
        0
    }
    /// The near-null set-up of a multigrid network (what it did, how long it took).
    fn multigrid_setup(&self) -> Option<&multigrid::SetupReport> {
        None
    }
}

/// [`FermionNet::loss_grad_native`] through [`FermionNet::forward_backward_native`] seeded
/// with [`mse_seed`].
pub fn loss_grad_seeded<T: Real, N: FermionNet<T> + ?Sized>(
    net: &N,
    params: &[T],
    layout: &SiteLayout,
    input: &mut [T],
    target: &[T],
    grad_params: &mut [T],
) -> Result<f64, RuntimeError> {
    let main = layout.main_len();
    let target = target_main(net.graph(), target, main)?;
    let mut loss = 0.0f64;
    net.forward_backward_native(
        params,
        layout,
        input,
        &mut |out, g| loss = mse_seed(&out[..main], target, &mut g[..main]),
        grad_params,
    )?;
    Ok(loss)
}

/// The main part (`main` scalars) of a training target, or a shape error.
pub(crate) fn target_main<'a, T>(
    graph: &Graph,
    target: &'a [T],
    main: usize,
) -> Result<&'a [T], RuntimeError> {
    target.get(..main).ok_or_else(|| {
        RuntimeError::Shape(format!(
            "network `{}`: a training target of {} scalars, the layout's sites need {main}",
            graph.name,
            target.len()
        ))
    })
}

/// Chunks of the elementwise loss sums: fixed, so the sum is the same whatever the threads.
const LOSS_CHUNK: usize = 4096;

/// The seed of the training loss ‖out − target‖²: `g` = 2 (out − target) elementwise, and the
/// loss (accumulated in f64 per chunk of [`LOSS_CHUNK`] scalars, the chunk sums added in order).
pub fn mse_seed<T: Real>(out: &[T], target: &[T], g: &mut [T]) -> f64 {
    let two = T::one() + T::one();
    let sums: Vec<f64> = g
        .par_chunks_mut(LOSS_CHUNK)
        .zip(out.par_chunks(LOSS_CHUNK))
        .zip(target.par_chunks(LOSS_CHUNK))
        .map(|((g, o), t)| {
            let mut l = 0.0f64;
            for ((g, o), t) in g.iter_mut().zip(o).zip(t) {
                let d = *o - *t;
                l += Real::to_f64(d) * Real::to_f64(d);
                *g = two * d;
            }
            l
        })
        .collect();
    sums.iter().sum()
}

/// The loss [`mse_seed`] returns, from the seed `g` = 2 (out − target) alone (halving is
/// exact, so this is the same number to the bit): for kernels that write the seed in place of
/// the output.
pub fn mse_from_seed<T: Real>(g: &[T]) -> f64 {
    let sums: Vec<f64> = g
        .par_chunks(LOSS_CHUNK)
        .map(|g| {
            g.iter().fold(0.0f64, |l, g| {
                let d = Real::to_f64(*g) * 0.5;
                l + d * d
            })
        })
        .collect();
    sums.iter().sum()
}

/// [`FermionNet::forward_backward_native`] through the reference layout: the input converted
/// out of `layout`, the output into it for `seed`, the output gradient back out of it.
pub fn forward_backward_via_reference<T: Real, N: FermionNet<T> + ?Sized>(
    net: &N,
    params: &[T],
    layout: &SiteLayout,
    input: &[T],
    seed: &mut dyn FnMut(&[T], &mut [T]),
    grad_params: &mut [T],
) -> Result<(), RuntimeError> {
    let (len, main) = (layout.field_len(), layout.main_len());
    if input.len() < len {
        return Err(RuntimeError::Shape(format!(
            "network `{}`: an input buffer of {} scalars, the layout needs {len}",
            net.graph().name,
            input.len()
        )));
    }
    let zero = Complex::new(T::zero(), T::zero());
    let mut b = vec![zero; layout.volume() * 12];
    layout.from_aosoa(&input[..len], &mut b);
    let (mut out, mut gout) = (vec![T::zero(); len], vec![T::zero(); len]);
    net.forward_backward_seeded(
        params,
        &b,
        &mut |o, g| {
            layout.to_aosoa(o, &mut out);
            seed(&out[..main], &mut gout[..main]);
            layout.from_aosoa(&gout, g);
        },
        grad_params,
    )
}

/// Compiles `graph` for `gauge`: networks made only of complex dense layers (no symmetry) run
/// on [`dense_lattice::DenseLatticeNet`], everything else on the gauge-equivariant [`lattice_net::LatticeNet`].
pub fn compile_fermion_net<T: Element>(
    graph: &Graph,
    gauge: &GaugeField,
) -> Result<Box<dyn FermionNet<T>>, RuntimeError> {
    let dense = !graph.layers.is_empty()
        && graph.layers.iter().all(|l| matches!(l.kind, LayerKind::Dense { complex: true, .. }));
    if dense {
        Ok(Box::new(dense_lattice::DenseLatticeNet::compile(graph)?))
    } else {
        Ok(Box::new(lattice_net::LatticeNet::<T>::compile(
            graph,
            gauge,
            &lattice_net::LatticeNetOptions::default(),
        )?))
    }
}

/// Compiles a preconditioner network for `gauge` and the Dirac operator `dirac`: a multigrid
/// network (first layer a `level`) runs its set-up for them on [`multigrid_net::MultigridNet`]
/// (the basis possibly from `cache`); any other network is
/// [`compile_fermion_net`]'s.
pub fn compile_preconditioner_net<T: Element>(
    graph: &Graph,
    gauge: &GaugeField,
    dirac: &crate::lattice::wilson::DiracParams,
    cache: multigrid_net::BasisCache<'_>,
) -> Result<Box<dyn FermionNet<T>>, multigrid_net::MultigridNetError> {
    if crate::ir::levels::level(graph).is_some() {
        Ok(Box::new(multigrid_net::MultigridNet::<T>::compile(graph, gauge, dirac, cache)?))
    } else {
        Ok(compile_fermion_net(graph, gauge)?)
    }
}

/// Checks that a graph only uses layers the lattice runtimes support and that its lattice
/// matches the gauge field; shared by the reference and the JIT network.
pub fn check_graph(graph: &Graph, gauge: &GaugeField) -> Result<(), RuntimeError> {
    let lat = graph.lattice.ok_or_else(|| {
        RuntimeError::Shape(format!("model `{}` declares no lattice", graph.name))
    })?;
    if lat.dims != gauge.dims() {
        return Err(RuntimeError::Shape(format!(
            "model `{}` is declared on a {:?} lattice but the gauge field is {:?}",
            graph.name,
            lat.dims,
            gauge.dims()
        )));
    }
    for v in &graph.values {
        if !matches!(v, ValueType::Fermion { .. }) {
            return Err(RuntimeError::Shape(format!(
                "model `{}` has a non-fermion value; lattice networks take fermion fields only",
                graph.name
            )));
        }
    }
    for l in &graph.layers {
        match &l.kind {
            LayerKind::Ptc { paths, .. } | LayerKind::Transport { paths } => {
                if paths.iter().any(|p| p.iter().any(|h| h.mu > 3)) {
                    return Err(RuntimeError::Shape(format!(
                        "layer `{}`: path direction out of range",
                        l.name
                    )));
                }
            }
            LayerKind::Add | LayerKind::NormGate => {}
            LayerKind::CoarseLevel(_) => {
                return Err(RuntimeError::Shape(format!(
                    "layer `{}` is a multigrid level: it needs the Dirac operator and runs on \
                     the multigrid network executor (runtime::multigrid_net), not in a lattice net",
                    l.name
                )));
            }
            other => {
                return Err(RuntimeError::Shape(format!(
                    "layer `{}` ({other:?}) is not a gauge layer",
                    l.name
                )));
            }
        }
    }
    Ok(())
}

pub mod classifier;
pub mod coarse;
pub mod coarse_layers;
pub mod data_parallel;
pub mod dense_lattice;
pub mod dirac;
pub mod distributed;
pub mod evenodd_solve;
pub mod init;
pub mod lattice_net;
pub mod lattice_reference;
pub mod multigrid;
pub mod multigrid_net;
pub mod operator;
pub mod pool;
pub mod preconditioner;
pub mod reference;
pub mod schur;
pub mod transport;
