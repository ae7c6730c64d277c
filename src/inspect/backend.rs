//! The executors `symc inspect` drives: the classifier JIT (dense/conv) and the lattice-network
//! JIT (PTC, with the Wilson-clover kernels of the operator its `train` block names), each with
//! its plain-Rust reference, behind one enum so the views, the benchmarks and the checks do not
//! care which kind of network they look at.
//!
//! The kind follows from the network's input: a real tensor is a classifier, a fermion field a
//! lattice network. Gauge networks are compiled for one gauge field; by default a seeded
//! Haar-random ("hot") SU(3) field on the model's lattice, which is the hardest case for the
//! gauge checks (every link far from the identity).

use crate::codegen::jit::{JitError, KernelRecord};
use crate::codegen::plan::{KernelPlan, Pass, Strategy};
use crate::codegen::simd::Precision;
use crate::inspect::bench::{BenchOptions, BenchResult, SyntheticArgs, bench_plan};
use crate::inspect::roofline::Machine;
use crate::inspect::verify::{self, Check, ImageMap, VerifyError, VerifyReport, tol};
use crate::ir::{Graph, ValueType};
use crate::lattice::gauge::GaugeField;
use crate::lattice::wilson::DiracParams;
use crate::runtime::Classifier;
use crate::runtime::classifier::{CompileOptions, JitClassifier};
use crate::runtime::dirac::{DiracOptions, JitWilsonClover};
use crate::runtime::lattice_net::{LatticeNet, LatticeNetOptions};
use crate::runtime::lattice_reference::ReferenceLatticeNet;
use crate::runtime::reference;
use num_complex::Complex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// A compiled network, ready to be inspected.
pub enum Compiled {
    Classifier(Box<JitClassifier>),
    /// A gauge network; for a multigrid network `net` is its fine graph (the smoother) and
    /// `plans` adds the level's kernels (P†, P, the coarse stencil). `operator` is the
    /// Wilson-clover operator the `train` block names (D and D†, the kernels every training
    /// step and every solve with the network also run), shown next to the network's kernels.
    Lattice {
        net: Box<LatticeNet<f32>>,
        gauge: GaugeField,
        plans: Vec<KernelPlan>,
        operator: Option<Box<JitWilsonClover<f32>>>,
    },
}

/// Why a model could not be compiled for inspection.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot compile `{model}` to kernels: {message}")]
#[diagnostic(
    code(symc::inspect::compile),
    help("`symc inspect` without kernel flags still shows the layer table and `--ir`")
)]
pub struct CompileError {
    pub model: String,
    pub message: String,
}

fn compile_error(graph: &Graph, e: impl ToString) -> CompileError {
    CompileError { model: graph.name.clone(), message: e.to_string() }
}

/// Batch the classifier kernels are specialised for: the `train` block's batch, else 64.
pub fn classifier_batch(graph: &Graph) -> usize {
    graph.train.as_ref().map_or(64, |t| t.batch.max(1))
}

fn classifier_options(graph: &Graph, precision: Precision, keep_listings: bool) -> CompileOptions {
    CompileOptions {
        max_batch: classifier_batch(graph),
        threads: rayon::current_num_threads().max(1),
        precision,
        keep_listings,
        ..CompileOptions::default()
    }
}

/// A seeded Haar-random SU(3) gauge field on the model's lattice.
pub fn hot_gauge(graph: &Graph, seed: u64) -> Result<GaugeField, CompileError> {
    let lat =
        graph.lattice.ok_or_else(|| compile_error(graph, "a fermion network without a lattice"))?;
    Ok(GaugeField::random(lat.dims, &mut ChaCha8Rng::seed_from_u64(seed)))
}

fn is_lattice(graph: &Graph) -> bool {
    matches!(graph.values.first(), Some(ValueType::Fermion { .. }))
}

/// Compile `graph` the way training does (f32), keeping listings when asked.
pub fn compile(
    graph: &Graph,
    keep_listings: bool,
    gauge: Option<&GaugeField>,
    seed: u64,
) -> Result<Compiled, CompileError> {
    if is_lattice(graph) {
        let gauge = match gauge {
            Some(g) => g.clone(),
            None => hot_gauge(graph, seed)?,
        };
        let split = crate::ir::levels::split_level(graph).map_err(|e| compile_error(graph, e))?;
        let fine = split.as_ref().map_or(graph, |(_, g)| g);
        let net = LatticeNet::<f32>::compile(fine, &gauge, &LatticeNetOptions { keep_listings })
            .map_err(|e| compile_error(graph, e))?;
        let mut plans = net.plans().to_vec();
        if let Some((level, _)) = &split {
            plans.extend(level_plans(graph, level, &gauge, net.layout(), seed)?);
        }
        // The operator's kernels depend only on the lattice (mass, c_sw and boundary phases are
        // in the tables), so periodic boundaries do for inspecting them.
        let operator = match graph.train.as_ref().and_then(|t| t.operator.as_ref()) {
            Some(o) => {
                let params = DiracParams::periodic(o.mass, o.csw);
                let opts = DiracOptions { keep_listings, ..Default::default() };
                let d = JitWilsonClover::<f32>::new(&gauge, &params, &opts)
                    .map_err(|e| compile_error(graph, e))?;
                Some(Box::new(d))
            }
            None => None,
        };
        Ok(Compiled::Lattice { net: Box::new(net), gauge, plans, operator })
    } else {
        let opts = classifier_options(graph, Precision::F32, keep_listings);
        let jit = JitClassifier::compile(graph, &opts).map_err(|e| compile_error(graph, e))?;
        Ok(Compiled::Classifier(Box::new(jit)))
    }
}

/// The kernels of a multigrid level, compiled as a set-up would, but on a block-orthonormalised
/// *random* basis: their code depends only on the shapes (blocks, basis size), so inspecting
/// them needs no near-null solve.
fn level_plans(
    graph: &Graph,
    level: &crate::ir::Level,
    gauge: &GaugeField,
    layout: &crate::codegen::lattice_layout::SiteLayout,
    seed: u64,
) -> Result<Vec<KernelPlan>, CompileError> {
    use crate::lattice::blocks::{BlockBasis, Blocking};
    use crate::lattice::coarse::CoarseOperator;
    use crate::lattice::wilson::{DiracParams, WilsonClover};
    use crate::runtime::coarse::{JitBlockTransfer, JitCoarseOperator};
    let err = |e: &dyn std::fmt::Display| compile_error(graph, e);
    let crate::ir::CoarseSpace::Basis { basis: n_basis, .. } = level.space else {
        // A pooled level: its pooling kernels (P†/P on the 12 rows of G) and the coarse
        // network's kernels, compiled on the coarse gauge field.
        let pool = crate::runtime::pool::PoolLevel::<f32>::new(level, gauge, layout)
            .map_err(|e| err(&e))?;
        let mut plans = pool.transfer_plans();
        plans.extend(pool.coarse_net().plans().iter().cloned());
        return Ok(plans);
    };
    let blocking = Blocking::new(gauge.dims(), level.blocks).map_err(|e| err(&e))?;
    let vectors = crate::runtime::multigrid::start_vectors(gauge.dims(), n_basis, seed);
    let basis = BlockBasis::orthonormalize(blocking, vectors, false).map_err(|e| err(&e))?;
    let (mass, csw) = graph
        .train
        .as_ref()
        .and_then(|t| t.operator.as_ref())
        .map_or((0.0, 1.0), |o| (o.mass, o.csw));
    let d = WilsonClover::<f64>::new(gauge, &DiracParams::periodic(mass, csw));
    let coarse = CoarseOperator::galerkin(&d, &basis);
    let t = JitBlockTransfer::<f32>::new(&basis, layout).map_err(|e| err(&e))?;
    let c = JitCoarseOperator::<f32>::new(&coarse).map_err(|e| err(&e))?;
    let mut plans: Vec<KernelPlan> = t.plans().iter().chain(c.plans()).cloned().collect();
    // Coarse layers (the trained coarse model): their forward, input- and weight-gradient
    // kernels.
    if let Some(layers) =
        crate::runtime::coarse_layers::JitCoarseLayers::<f32>::new(level, gauge.dims())
            .map_err(|e| err(&e))?
    {
        plans.extend(layers.plans());
    }
    Ok(plans)
}

impl Compiled {
    /// The network's kernel plans (what `--bench` times as the network's passes).
    pub fn plans(&self) -> &[KernelPlan] {
        match self {
            Compiled::Classifier(c) => c.plans(),
            Compiled::Lattice { plans, .. } => plans,
        }
    }
    /// The network's kernels.
    pub fn records(&self) -> &[KernelRecord] {
        match self {
            Compiled::Classifier(c) => c.records(),
            Compiled::Lattice { net, .. } => &net.kernels().records,
        }
    }
    /// The plans to show: the network's, then the training operator's.
    pub fn shown_plans(&self) -> Vec<KernelPlan> {
        let mut all = self.plans().to_vec();
        if let Compiled::Lattice { operator: Some(d), .. } = self {
            all.extend(d.plans().iter().cloned());
        }
        all
    }
    /// The kernels to show: the network's, then the training operator's.
    pub fn shown_records(&self) -> Vec<KernelRecord> {
        let mut all = self.records().to_vec();
        if let Compiled::Lattice { operator: Some(d), .. } = self {
            all.extend(d.kernels().records.iter().cloned());
        }
        all
    }
}

/// Random parameters: N(0, σ²) with σ = 1/√(fan-in) per tensor (the scale training starts
/// from), so activations stay O(1) through every layer.
pub fn random_params<R: Rng + ?Sized>(graph: &Graph, rng: &mut R) -> Vec<f64> {
    let mut p = vec![0.0; graph.param_scalars()];
    for t in &graph.params {
        let fan_in: usize = t.shape.iter().skip(1).product::<usize>().max(1);
        let s = 1.0 / (fan_in as f64).sqrt();
        for (v, g) in p[t.offset..t.offset + t.scalar_len()]
            .iter_mut()
            .zip(verify::gaussian(t.scalar_len(), rng))
        {
            *v = s * g;
        }
    }
    p
}

fn to_f32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

fn backend(what: &str) -> impl Fn(crate::runtime::RuntimeError) -> VerifyError + '_ {
    move |e| VerifyError::new(what, e)
}

/// Named parameter blocks of the flat vector, for the finite-difference directions.
fn param_blocks(graph: &Graph) -> Vec<(String, std::ops::Range<usize>)> {
    graph.params.iter().map(|p| (p.name.clone(), p.offset..p.offset + p.scalar_len())).collect()
}

/// Time each JIT plan's kernels on synthetic data and each whole pass on random data.
pub fn bench(c: &Compiled, m: &Machine, opts: BenchOptions) -> Result<Vec<BenchResult>, JitError> {
    let mut out = Vec::new();
    let plans = c.plans();
    let pass_plan = |name: &str, passes: &[Pass]| KernelPlan {
        layer: "network".into(),
        pass: Pass::Forward,
        strategy: Strategy::Jit,
        reason: name.into(),
        loops: vec![],
        layout: String::new(),
        fused: vec![],
        flops: plans.iter().filter(|p| passes.contains(&p.pass)).map(|p| p.flops).sum(),
        bytes: plans.iter().filter(|p| passes.contains(&p.pass)).map(|p| p.bytes).sum(),
        kernels: vec![],
        compile_time: plans
            .iter()
            .filter(|p| passes.contains(&p.pass))
            .map(|p| p.compile_time)
            .sum::<Duration>(),
    };
    let all = [Pass::Forward, Pass::BackwardInput, Pass::BackwardParams];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    match c {
        Compiled::Classifier(jit) => {
            for p in plans.iter().filter(|p| p.strategy == Strategy::Jit && p.flops > 0.0) {
                let ks: Vec<_> =
                    jit.kernels().iter().filter(|k| p.kernels.contains(&k.spec().name)).collect();
                if ks.is_empty() {
                    continue;
                }
                let mut args: Vec<SyntheticArgs> =
                    ks.iter().map(|k| SyntheticArgs::for_kernel(k)).collect();
                out.push(bench_plan(
                    p,
                    || {
                        for (k, a) in ks.iter().zip(args.iter_mut()) {
                            a.run(k)?;
                        }
                        Ok(())
                    },
                    m,
                    opts,
                )?);
            }
            let g = jit.graph();
            let b = classifier_batch(g);
            let n = g.value(crate::ir::ValueId(0)).real_len();
            let classes = g.value(g.output).real_len();
            let params = to_f32(&random_params(g, &mut rng));
            let x = to_f32(&verify::gaussian(b * n, &mut rng));
            let labels: Vec<u8> = (0..b).map(|i| (i % classes.clamp(1, 256)) as u8).collect();
            let mut logp = vec![0f32; b * classes];
            let mut grad = vec![0f32; params.len()];
            let err = |e: crate::runtime::RuntimeError| JitError::BadCall {
                kernel: "network".into(),
                message: e.to_string(),
            };
            let mut r = bench_plan(
                &pass_plan(&format!("forward, batch {b}"), &[Pass::Forward]),
                || jit.predict(&params, &x, &mut logp).map_err(err),
                m,
                opts,
            )?;
            r.pass = format!("forward ×{b}");
            out.push(r);
            let mut r = bench_plan(
                &pass_plan(&format!("training step, batch {b}"), &all),
                || jit.train_batch(&params, &x, &labels, &mut grad).map(|_| ()).map_err(err),
                m,
                opts,
            )?;
            r.pass = format!("train step ×{b}");
            out.push(r);
        }
        Compiled::Lattice { net, .. } => {
            let g = net.graph();
            let params = to_f32(&random_params(g, &mut rng));
            let nin = g.value(crate::ir::ValueId(0)).real_len() / 2;
            let nout = g.value(g.output).real_len() / 2;
            let raw = verify::gaussian(2 * nin, &mut rng);
            let x: Vec<Complex<f32>> =
                raw.chunks(2).map(|c| Complex::new(c[0] as f32, c[1] as f32)).collect();
            let mut y = vec![Complex::new(0f32, 0f32); nout];
            let mut gx = vec![Complex::new(0f32, 0f32); nin];
            let mut gp = vec![0f32; params.len()];
            let err = |e: crate::runtime::RuntimeError| JitError::BadCall {
                kernel: "network".into(),
                message: e.to_string(),
            };
            let mut r = bench_plan(
                &pass_plan("forward", &[Pass::Forward]),
                || net.forward(&params, &x, &mut y).map_err(err),
                m,
                opts,
            )?;
            r.pass = "forward".into();
            out.push(r);
            let mut r = bench_plan(
                &pass_plan("forward + backward", &all),
                || {
                    net.forward_backward(
                        &params,
                        &x,
                        None,
                        |o, go| go.copy_from_slice(o),
                        Some(&mut gx),
                        &mut gp,
                    )
                    .map_err(err)
                },
                m,
                opts,
            )?;
            r.pass = "forward+backward".into();
            out.push(r);
        }
    }
    Ok(out)
}

/// A deliberate defect injected into the JIT results, so that tests can show that `--verify`
/// fails on a compiler whose kernels are wrong (each one models a plausible code-generation bug).
#[derive(Clone, Debug, Default)]
pub enum Fault {
    /// The kernels as compiled.
    #[default]
    None,
    /// The gradient rule of parameter tensor `param` is off by `factor` (JIT f32 and f64).
    ScaleGradient { param: usize, factor: f64 },
    /// The JIT output of a gauge network is multiplied by a fixed colour matrix at every site
    /// (a wrong link in a transport): breaks gauge covariance, keeps translations.
    RotateColour(crate::lattice::su3::Su3<f64>),
    /// The JIT output of an image network gets `ε · (i² mod 97)` added at flat position `i` (an indexing bug that
    /// depends on where in the image a value is): breaks translation equivariance.
    PositionDependent(f64),
}

impl Fault {
    fn gradient(&self, graph: &Graph, grad: &mut [f64]) {
        if let Fault::ScaleGradient { param, factor } = self {
            if let Some(p) = graph.params.get(*param) {
                grad[p.offset..p.offset + p.scalar_len()].iter_mut().for_each(|g| *g *= factor);
            }
        }
    }
    fn image(&self, y: &mut [f64]) {
        if let Fault::PositionDependent(eps) = self {
            // Not affine in the position: a shift cannot turn it into a constant offset.
            y.iter_mut().enumerate().for_each(|(i, v)| *v += eps * ((i * i) % 97) as f64);
        }
    }
    fn fermions(&self, y: &mut [Complex<f64>]) {
        if let Fault::RotateColour(r) = self {
            for c in y.chunks_mut(3) {
                let v = r.mul_vec(&[c[0], c[1], c[2]]);
                c.copy_from_slice(&v);
            }
        }
    }
}

/// Run every self-check for `graph` (see `verify`'s module documentation).
pub fn verify_model(
    graph: &Graph,
    gauge: Option<&GaugeField>,
    seed: u64,
) -> Result<VerifyReport, VerifyError> {
    verify_model_with(graph, gauge, seed, &Fault::None)
}

/// [`verify_model`] with a [`Fault`] injected into the JIT results.
pub fn verify_model_with(
    graph: &Graph,
    gauge: Option<&GaugeField>,
    seed: u64,
    fault: &Fault,
) -> Result<VerifyReport, VerifyError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // A multigrid network is checked through its fine graph (the smoother, with its own
    // reference, gradient and covariance checks); the level's P†, P and coarse-stencil kernels
    // are checked against the naive coarse space by tests/multigrid.rs.
    // A pooled level has weights and kernels of its own: they get a check against the naive
    // twin and a gauge-covariance check of pool → coarse network → unpool.
    let split = crate::ir::levels::split_level(graph).map_err(|e| VerifyError::new("levels", e))?;
    let whole = graph;
    let graph = split.as_ref().map_or(graph, |(_, g)| g);
    let checks = if is_lattice(graph) {
        let gauge = match gauge {
            Some(g) => g.clone(),
            None => hot_gauge(graph, seed).map_err(|e| VerifyError::new("gauge", e))?,
        };
        let mut checks = Vec::new();
        if let Some((level, _)) = &split
            && level.coarse_network().is_some()
        {
            checks.extend(verify_pooled_level(whole, level, &gauge, fault, &mut rng)?);
        }
        if let Some((level, _)) = &split
            && level.coarse_layers().is_some()
        {
            checks.extend(verify_coarse_layers(whole, level, fault, &mut rng)?);
        }
        checks.extend(verify_lattice(graph, &gauge, fault, &mut rng)?);
        checks
    } else {
        verify_classifier(graph, fault, &mut rng)?
    };
    Ok(VerifyReport { model: graph.name.clone(), checks })
}

/// A pooled level's correction c = Unpool(M_c(Pool(b))) on the compiled kernels (f64): against
/// the naive twin (`ReferencePool`), and its gauge covariance (the transports, the coarse gauge
/// field and the coarse network recompiled for every transformed field).
fn verify_pooled_level(
    whole: &Graph,
    level: &crate::ir::Level,
    gauge: &GaugeField,
    fault: &Fault,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Check>, VerifyError> {
    use crate::runtime::lattice_reference::ReferencePool;
    use crate::runtime::pool::PoolLevel;
    let rt = |what: &'static str| move |e: crate::runtime::RuntimeError| VerifyError::new(what, e);
    let n = crate::ir::levels::level_scalars(whole);
    // The initial weights (identity-like pooling) with noise, so every weight matters.
    let params: Vec<f64> = crate::runtime::init::init_params(whole, 1)[..n]
        .iter()
        .map(|&p| p as f64 + 0.1 * (rng.random::<f64>() - 0.5))
        .collect();
    let layout = crate::codegen::lattice_layout::SiteLayout::new(gauge.dims(), Precision::F64, &[])
        .map_err(|e| VerifyError::new("layout", e))?;
    let x = crate::lattice::fermion::FermionField::<f64>::random_gaussian(gauge.dims(), rng).data;
    let jit = |u: &GaugeField, psi: &[Complex<f64>]| -> Result<Vec<Complex<f64>>, VerifyError> {
        let pool = PoolLevel::<f64>::new(level, u, &layout).map_err(rt("compile pooled level"))?;
        let mut c = pool.forward(&params, psi).map_err(rt("pooled level forward"))?.c;
        fault.fermions(&mut c);
        Ok(c)
    };
    let got = jit(gauge, &x)?;
    let want = ReferencePool::new(level, gauge)
        .and_then(|r| r.forward(&params, &x))
        .map_err(rt("naive pooled level"))?;
    let flat = |v: &[Complex<f64>]| v.iter().flat_map(|z| [z.re, z.im]).collect::<Vec<f64>>();
    let detail = format!(
        "level `{}`: pool -> coarse network -> unpool, random input and weights",
        level.name
    );
    Ok(vec![
        Check::compare(
            "pooled level: JIT f64 vs naive twin",
            detail,
            &flat(&got),
            &flat(&want),
            tol::F64,
        ),
        verify::gauge_check(
            "pooled level: gauge covariance (JIT f64)",
            &jit,
            gauge,
            &x,
            1,
            tol::F64_SYMMETRY,
            rng,
        )?,
    ])
}

/// A near-null level's coarse layers on their JIT kernels (f64) against the naive twin
/// (`ReferenceCoarseLayers`): M_c of a random coarse vector, and the input and weight
/// gradients of a random output gradient, with random weights.
fn verify_coarse_layers(
    whole: &Graph,
    level: &crate::ir::Level,
    fault: &Fault,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Check>, VerifyError> {
    use crate::runtime::coarse_layers::JitCoarseLayers;
    use crate::runtime::lattice_reference::ReferenceCoarseLayers;
    let rt = |what: &'static str| move |e: crate::runtime::RuntimeError| VerifyError::new(what, e);
    let dims = whole.lattice.map_or([1; 4], |l| l.dims);
    let jit = JitCoarseLayers::<f64>::new(level, dims)
        .map_err(rt("compile coarse layers"))?
        .ok_or_else(|| VerifyError::new("coarse layers", "the level has none"))?;
    let naive = ReferenceCoarseLayers::new(level, dims).map_err(rt("naive coarse layers"))?;
    let n = crate::ir::levels::level_scalars(whole);
    let params = verify::gaussian(n, rng);
    let cx = |rng: &mut ChaCha8Rng| -> Vec<Complex<f64>> {
        verify::gaussian(2 * jit.len(), rng).chunks(2).map(|p| Complex::new(p[0], p[1])).collect()
    };
    let (x, g) = (cx(rng), cx(rng));
    let acts = jit.forward(&params, &x).map_err(rt("coarse layers forward"))?;
    let mut y = acts.last().cloned().unwrap_or_default();
    fault.fermions(&mut y);
    let want = naive.forward(&params, &x);
    let mut gw = vec![0.0; n];
    let gx = jit.backward(&params, &acts, &g, &mut gw).map_err(rt("coarse layers backward"))?;
    let mut gw_ref = vec![0.0; n];
    let gx_ref = naive.backward(&params, &want, &g, &mut gw_ref);
    let flat = |v: &[Complex<f64>]| v.iter().flat_map(|z| [z.re, z.im]).collect::<Vec<f64>>();
    let detail = format!(
        "level `{}`: {} coarse layer(s) on {} complex numbers, random input and weights",
        level.name,
        level.coarse_layers().map_or(0, |l| l.len()),
        jit.len()
    );
    let want_y = want.last().cloned().unwrap_or_default();
    Ok(vec![
        Check::compare(
            "coarse layers: JIT f64 vs naive twin",
            detail.clone(),
            &flat(&y),
            &flat(&want_y),
            tol::F64,
        ),
        Check::compare(
            "coarse layers: input gradient vs naive twin",
            detail.clone(),
            &flat(&gx),
            &flat(&gx_ref),
            tol::F64,
        ),
        Check::compare(
            "coarse layers: weight gradient vs naive twin",
            detail,
            &gw,
            &gw_ref,
            tol::F64,
        ),
    ])
}

/// Samples in the verification batch: a few, not a multiple of the 4 SIMD lanes.
const VERIFY_SAMPLES: usize = 3;

fn verify_classifier(
    graph: &Graph,
    fault: &Fault,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Check>, VerifyError> {
    let c = |e: JitError| VerifyError::new("compile", e);
    let jit32 = JitClassifier::compile(graph, &classifier_options(graph, Precision::F32, false))
        .map_err(c)?;
    let jit64 = JitClassifier::compile(graph, &classifier_options(graph, Precision::F64, false))
        .map_err(c)?;
    let n = graph.value(crate::ir::ValueId(0)).real_len();
    let classes = graph.value(graph.output).real_len();
    let b = VERIFY_SAMPLES.min(classifier_batch(graph));
    let params = random_params(graph, rng);
    let x: Vec<f64> = verify::gaussian(b * n, rng);
    let labels: Vec<u8> =
        (0..b).map(|_| rng.random_range(0..classes.clamp(1, 256)) as u8).collect();
    let mut checks = Vec::new();

    // 1. Forward and gradient: JIT f32 and f64 against the f64 reference.
    let acts =
        reference::forward_f64(graph, &params, &x, b).map_err(backend("reference forward"))?;
    let ref_logp = acts[graph.output.index()].clone();
    let (_, dout) =
        reference::nll(&ref_logp, &labels, classes).map_err(backend("reference nll"))?;
    let (ref_grad, _) = reference::backward_f64(graph, &params, &acts, b, &dout)
        .map_err(backend("reference backward"))?;
    let mut logp32 = vec![0f32; b * classes];
    jit32.predict(&to_f32(&params), &to_f32(&x), &mut logp32).map_err(backend("JIT forward"))?;
    let detail = format!("{b} random inputs, random weights (σ = 1/√fan-in), log-probabilities");
    checks.push(Check::compare(
        "forward: JIT f32 vs reference",
        detail.clone(),
        &widen(&logp32),
        &ref_logp,
        tol::F32_OUTPUT,
    ));
    let mut logp64 = vec![0f64; b * classes];
    jit64.predict_f64(&params, &x, &mut logp64).map_err(backend("JIT f64 forward"))?;
    checks.push(Check::compare(
        "forward: JIT f64 vs reference",
        detail,
        &logp64,
        &ref_logp,
        tol::F64,
    ));
    let mut g32 = vec![0f32; params.len()];
    jit32
        .train_batch(&to_f32(&params), &to_f32(&x), &labels, &mut g32)
        .map_err(backend("JIT backward"))?;
    let gd = format!("d(mean NLL)/d(params), {} parameters, {b} samples", params.len());
    let mut g32 = widen(&g32);
    fault.gradient(graph, &mut g32);
    checks.push(Check::compare(
        "gradient: JIT f32 vs reference",
        gd.clone(),
        &g32,
        &ref_grad,
        tol::F32_GRADIENT,
    ));
    let mut g64 = vec![0f64; params.len()];
    jit64.train_batch_f64(&params, &x, &labels, &mut g64).map_err(backend("JIT f64 backward"))?;
    fault.gradient(graph, &mut g64);
    checks.push(Check::compare("gradient: JIT f64 vs reference", gd, &g64, &ref_grad, tol::F64));

    // 2. The JIT f64 gradient against central differences of the JIT f64 loss.
    let loss = |p: &[f64]| -> Result<f64, VerifyError> {
        let mut g = vec![0f64; p.len()];
        let s = jit64.train_batch_f64(p, &x, &labels, &mut g).map_err(backend("JIT f64 loss"))?;
        Ok(s.loss_sum / s.samples.max(1) as f64)
    };
    checks.push(verify::gradient_check(
        "gradient: JIT f64 vs finite differences",
        &loss,
        &params,
        &g64,
        &param_blocks(graph),
        2,
        1e-5,
        tol::FINITE_DIFFERENCE,
        rng,
    )?);

    // 3. The declared symmetry, on the compiled kernels of every convolution prefix.
    match &graph.symmetry {
        crate::ir::Symmetry::Translation { axes } => {
            let prefixes = verify::translation_prefixes(graph);
            if prefixes.is_empty() {
                checks.push(Check::skipped("translation", "no convolution layers".into()));
            }
            // A convolution and the activation after it are checked together.
            let ends = |pre: &&verify::ImagePrefix| {
                !matches!(
                    graph.layers.get(pre.layers).map(|l| &l.kind),
                    Some(crate::ir::LayerKind::Activation(_))
                )
            };
            for pre in prefixes.iter().filter(ends) {
                let name =
                    format!("translation up to {} (JIT f32)", graph.layers[pre.layers - 1].name);
                let Some(sub) = verify::prefix_graph(graph, pre.layers) else {
                    checks.push(Check::skipped(&name, "parameters not in layer order".into()));
                    continue;
                };
                let mut o = classifier_options(&sub, Precision::F32, false);
                o.max_batch = 1;
                let jp = JitClassifier::compile(&sub, &o).map_err(c)?;
                let sp = to_f32(&params[..sub.param_scalars()]);
                let out_len = sub.value(sub.output).real_len();
                let f = |img: &[f64]| -> Result<Vec<f64>, VerifyError> {
                    let mut y = vec![0f32; out_len];
                    jp.predict(&sp, &to_f32(img), &mut y).map_err(backend("JIT prefix"))?;
                    let mut y = widen(&y);
                    fault.image(&mut y);
                    Ok(y)
                };
                let ValueType::Real { shape } = graph.value(crate::ir::ValueId(0)) else {
                    continue;
                };
                let map = ImageMap {
                    in_shape: shape.clone(),
                    out_shape: pre.out_shape.clone(),
                    margin_lo: pre.margin_lo.clone(),
                    margin_hi: pre.margin_hi.clone(),
                    axes: (1..shape.len()).map(|a| axes.contains(&a)).collect(),
                    up_to_constant: true,
                };
                checks.push(verify::translation_check(
                    &name,
                    &f,
                    &x[..n],
                    &map,
                    3,
                    tol::F32_SYMMETRY,
                    rng,
                )?);
            }
        }
        _ => checks.push(Check::skipped("symmetry", "none declared: nothing to check".into())),
    }
    Ok(checks)
}

fn complex_gaussian<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Vec<Complex<f64>> {
    verify::gaussian(2 * n, rng).chunks(2).map(|c| Complex::new(c[0], c[1])).collect()
}

fn c32(x: &[Complex<f64>]) -> Vec<Complex<f32>> {
    x.iter().map(|c| Complex::new(c.re as f32, c.im as f32)).collect()
}

fn c64(x: &[Complex<f32>]) -> Vec<f64> {
    x.iter().flat_map(|c| [c.re as f64, c.im as f64]).collect()
}

fn flat(x: &[Complex<f64>]) -> Vec<f64> {
    x.iter().flat_map(|c| [c.re, c.im]).collect()
}

fn verify_lattice(
    graph: &Graph,
    gauge: &GaugeField,
    fault: &Fault,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Check>, VerifyError> {
    let rt = |what: &'static str| backend(what);
    let nin = graph.value(crate::ir::ValueId(0)).real_len() / 2;
    let nout = graph.value(graph.output).real_len() / 2;
    let params = random_params(graph, rng);
    let x = complex_gaussian(nin, rng);
    let seed_out = complex_gaussian(nout, rng);
    let reference = ReferenceLatticeNet::new(graph, gauge).map_err(rt("reference"))?;
    let jit32 = LatticeNet::<f32>::compile(graph, gauge, &LatticeNetOptions::default())
        .map_err(rt("compile f32"))?;
    let jit64 = LatticeNet::<f64>::compile(graph, gauge, &LatticeNetOptions::default())
        .map_err(rt("compile f64"))?;
    let zero = Complex::new(0.0, 0.0);
    let mut checks = Vec::new();
    let dims = gauge.dims();

    // 1. Forward and gradients against the reference.
    let mut y_ref = vec![zero; nout];
    reference.forward(&params, &x, &mut y_ref).map_err(rt("reference forward"))?;
    let mut gx_ref = vec![zero; nin];
    let mut gp_ref = vec![0.0; params.len()];
    reference
        .backward(&params, &x, &seed_out, &mut gx_ref, &mut gp_ref)
        .map_err(rt("reference backward"))?;
    let (p32, x32, s32) = (to_f32(&params), c32(&x), c32(&seed_out));
    let mut y32 = vec![Complex::new(0f32, 0f32); nout];
    jit32.forward(&p32, &x32, &mut y32).map_err(rt("JIT forward"))?;
    let mut y32: Vec<Complex<f64>> =
        y32.iter().map(|c| Complex::new(c.re as f64, c.im as f64)).collect();
    fault.fermions(&mut y32);
    let detail =
        format!("random input and weights on the {dims:?} lattice, random (hot) gauge field");
    checks.push(Check::compare(
        "forward: JIT f32 vs reference",
        detail.clone(),
        &flat(&y32),
        &flat(&y_ref),
        tol::F32_OUTPUT,
    ));
    let mut y64 = vec![zero; nout];
    jit64.forward(&params, &x, &mut y64).map_err(rt("JIT f64 forward"))?;
    checks.push(Check::compare(
        "forward: JIT f64 vs reference",
        detail,
        &flat(&y64),
        &flat(&y_ref),
        tol::F64,
    ));
    let mut gx32 = vec![Complex::new(0f32, 0f32); nin];
    let mut gp32 = vec![0f32; params.len()];
    jit32.backward(&p32, &x32, &s32, &mut gx32, &mut gp32).map_err(rt("JIT backward"))?;
    let mut got = widen(&gp32);
    fault.gradient(graph, &mut got);
    got.extend(c64(&gx32));
    let mut want = gp_ref.clone();
    want.extend(flat(&gx_ref));
    let gd = "weights and input, for a random output gradient".to_string();
    checks.push(Check::compare(
        "gradient: JIT f32 vs reference",
        gd.clone(),
        &got,
        &want,
        tol::F32_GRADIENT,
    ));
    let mut gx64 = vec![zero; nin];
    let mut gp64 = vec![0.0; params.len()];
    jit64.backward(&params, &x, &seed_out, &mut gx64, &mut gp64).map_err(rt("JIT f64 backward"))?;
    let mut got64 = gp64.clone();
    fault.gradient(graph, &mut got64);
    got64.extend(flat(&gx64));
    checks.push(Check::compare("gradient: JIT f64 vs reference", gd, &got64, &want, tol::F64));

    // 2. Finite differences of L = Re⟨c, f(x; θ)⟩ over (θ, Re x, Im x) with the JIT in f64.
    let np = params.len();
    let loss = |v: &[f64]| -> Result<f64, VerifyError> {
        let xi: Vec<Complex<f64>> = v[np..].chunks(2).map(|c| Complex::new(c[0], c[1])).collect();
        let mut y = vec![zero; nout];
        jit64.forward(&v[..np], &xi, &mut y).map_err(rt("JIT f64 loss"))?;
        Ok(y.iter().zip(&seed_out).map(|(a, c)| a.re * c.re + a.im * c.im).sum())
    };
    let mut v0 = params.clone();
    v0.extend(flat(&x));
    let mut blocks = param_blocks(graph);
    blocks.push(("input".into(), np..v0.len()));
    checks.push(verify::gradient_check(
        "gradient: JIT f64 vs finite differences",
        &loss,
        &v0,
        &got64,
        &blocks,
        2,
        1e-5,
        tol::FINITE_DIFFERENCE,
        rng,
    )?);

    // 3. Gauge covariance and lattice translations of the compiled network (recompiled for
    //    every transformed gauge field, since the field is baked into the tables).
    let f32_net =
        |u: &GaugeField, psi: &[Complex<f64>]| -> Result<Vec<Complex<f64>>, VerifyError> {
            let net = LatticeNet::<f32>::compile(graph, u, &LatticeNetOptions::default())
                .map_err(rt("compile"))?;
            let mut y = vec![Complex::new(0f32, 0f32); nout];
            net.forward(&p32, &c32(psi), &mut y).map_err(rt("JIT forward"))?;
            let mut y: Vec<Complex<f64>> =
                y.iter().map(|c| Complex::new(c.re as f64, c.im as f64)).collect();
            fault.fermions(&mut y);
            Ok(y)
        };
    let f64_net =
        |u: &GaugeField, psi: &[Complex<f64>]| -> Result<Vec<Complex<f64>>, VerifyError> {
            let net = LatticeNet::<f64>::compile(graph, u, &LatticeNetOptions::default())
                .map_err(rt("compile"))?;
            let mut y = vec![zero; nout];
            net.forward(&params, psi, &mut y).map_err(rt("JIT f64 forward"))?;
            fault.fermions(&mut y);
            Ok(y)
        };
    checks.push(verify::gauge_check(
        "gauge covariance (JIT f32)",
        &f32_net,
        gauge,
        &x,
        1,
        tol::F32_SYMMETRY,
        rng,
    )?);
    checks.push(verify::gauge_check(
        "gauge covariance (JIT f64)",
        &f64_net,
        gauge,
        &x,
        1,
        tol::F64_SYMMETRY,
        rng,
    )?);
    checks.push(verify::lattice_translation_check(
        "lattice translation (JIT f32)",
        &f32_net,
        gauge,
        &x,
        2,
        tol::F32_SYMMETRY,
        rng,
    )?);
    Ok(checks)
}
