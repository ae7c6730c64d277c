//! Preconditioner training and application on 8³×16 (random gauge field, m = −0.55,
//! c_sw = 1): one training step (Gaussian v, b = D v with the JIT Dirac kernel, network forward
//! and backward, Adam) of the 1h1l model and of the 4-layer smoother (`ptc_smoother`, 2016
//! complex weights) in f32 and f64, and one application of each trained-network
//! preconditioner (f64 vectors in and out, and f32 buffers in the kernels' layout as the
//! mixed-precision solver uses them) next to one Dirac operator application.
//! Whole solves are measured by `symc train` / `symc solve --precond` (benches/results/precond.md).
//!
//! Run: `cargo bench --bench precond`.

use criterion::{Criterion, criterion_group, criterion_main};
use num_complex::Complex64;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use symc::codegen::simd::Element;
use symc::ir::{Graph, LossSpec, OptimizerSpec};
use symc::lattice::gauge::GaugeField;
use symc::lattice::wilson::DiracParams;
use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
use symc::solve::{LinearOperator, NativePreconditioner, Preconditioner};
use symc::train::optim::Optimizer;
use symc::train::precond;

fn model(name: &str) -> Graph {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name);
    symc::sema::load_model(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn step_bench<T: Element>(c: &mut Criterion, label: &str, graph: &Graph, gauge: &GaugeField) {
    let dirac = DiracParams::periodic(-0.55, 1.0);
    let d = JitWilsonClover::<T>::new(gauge, &dirac, &DiracOptions::default()).unwrap();
    let net = symc::runtime::compile_fermion_net::<T>(graph, gauge).unwrap();
    let mut p32 = symc::runtime::init::init_params(graph, 1);
    let mut params: Vec<T> = precond::params_as(&p32);
    let mut grad = vec![T::zero(); params.len()];
    let mut g32 = vec![0.0f32; params.len()];
    let spec = OptimizerSpec::Adam { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let mut opt = Optimizer::new(&spec, params.len());
    let mut step = 0u64;
    // f32 steps on reference vectors are what a split run does; one process trains on the
    // kernels' buffers (`native_step_bench`).
    let name = match T::PRECISION.name() {
        "f32" => "f32-reference".to_string(),
        other => other.to_string(),
    };
    c.bench_function(&format!("precond/train_step/{label}/{name}"), |b| {
        b.iter(|| {
            let (inp, tgt) =
                precond::training_pair(&d, gauge.dims(), &LossSpec::Preconditioner, 3, step);
            step += 1;
            let l = precond::pair_loss_grad(net.as_ref(), &params, &inp, &tgt, &mut grad).unwrap();
            // The optimiser state is f32 (as in training); f64 runs round the gradient.
            for (g, x) in g32.iter_mut().zip(&grad) {
                *g = x.to_f32().unwrap_or(f32::NAN);
            }
            opt.step(&mut p32, &g32, 1e-2);
            params = precond::params_as(&p32);
            l
        })
    });
}

/// One training step as `symc train` runs it on one process: the pair drawn into the Dirac
/// kernel's buffers, b = D v there, the network's passes on the same buffers, Adam.
fn native_step_bench(c: &mut Criterion, label: &str, graph: &Graph, gauge: &GaugeField) {
    let dirac = DiracParams::periodic(-0.55, 1.0);
    let d = JitWilsonClover::<f32>::new(gauge, &dirac, &DiracOptions::default()).unwrap();
    let net = symc::runtime::compile_fermion_net::<f32>(graph, gauge).unwrap();
    let mut params = symc::runtime::init::init_params(graph, 1);
    let mut grad = vec![0.0f32; params.len()];
    let spec = OptimizerSpec::Adam { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let mut opt = Optimizer::new(&spec, params.len());
    let mut pair = precond::NativePair::default();
    let mut step = 0u64;
    c.bench_function(&format!("precond/train_step/{label}/f32"), |b| {
        b.iter(|| {
            pair.draw(&d, d.layout(), None, net.native_buffer_len(), 3, step).unwrap();
            step += 1;
            let l = pair.loss_grad(net.as_ref(), &params, d.layout(), &mut grad).unwrap();
            opt.step(&mut params, &grad, 1e-2);
            l
        })
    });
}

fn benches(c: &mut Criterion) {
    symc::runtime::init_pool(None);
    let dims = [8, 8, 8, 16];
    let gauge = GaugeField::random(dims, &mut ChaCha8Rng::seed_from_u64(7));
    let small = model("ptc_1h1l.sym");
    let smoother = model("ptc_smoother.sym");
    native_step_bench(c, "1h1l", &small, &gauge);
    native_step_bench(c, "smoother", &smoother, &gauge);
    step_bench::<f32>(c, "1h1l", &small, &gauge);
    step_bench::<f64>(c, "1h1l", &small, &gauge);
    step_bench::<f32>(c, "smoother", &smoother, &gauge);
    step_bench::<f64>(c, "smoother", &smoother, &gauge);

    let dirac = DiracParams::periodic(-0.55, 1.0);
    let d64 = JitWilsonClover::<f64>::new(&gauge, &dirac, &DiracOptions::default()).unwrap();
    let x = precond::random_rhs(dims, 1, 5).remove(0);
    let mut y = vec![Complex64::new(0.0, 0.0); x.len()];
    c.bench_function("precond/apply/dirac_jit/f64", |b| b.iter(|| d64.apply(&mut y, &x)));
    // What one mixed-precision solver iteration pays: the f32 kernels on buffers in their own
    // layout, no conversion.
    let d32 = JitWilsonClover::<f32>::new(&gauge, &dirac, &DiracOptions::default()).unwrap();
    let layout = d32.layout().clone();
    let (mut xn, mut yn) = (vec![0.0f32; layout.field_len()], vec![0.0f32; layout.field_len()]);
    layout.to_aosoa(&x, &mut xn);
    c.bench_function("precond/apply/dirac_jit/f32-native", |b| {
        b.iter(|| d32.apply_aosoa(false, &mut yn, &mut xn).unwrap())
    });
    for (label, g) in [("1h1l", &small), ("smoother", &smoother)] {
        let net = symc::runtime::compile_fermion_net::<f32>(g, &gauge).unwrap();
        let mut m = symc::runtime::preconditioner::NetPreconditioner::new(
            net,
            symc::runtime::init::init_params(g, 1),
        )
        .unwrap();
        c.bench_function(&format!("precond/apply/{label}/f32-in-f64"), |b| {
            b.iter(|| m.apply(&mut y, &x))
        });
        let mut native = m.native(&layout);
        let len = native.buffer_len().max(layout.field_len());
        let (mut xi, mut yo) = (vec![0.0f32; len], vec![0.0f32; len]);
        layout.to_aosoa(&x, &mut xi);
        c.bench_function(&format!("precond/apply/{label}/f32-native"), |b| {
            b.iter(|| native.apply(&mut yo, &mut xi).unwrap())
        });
    }
    // Multigrid networks whose level has weights (pooling; coarse layers around the near-null
    // P†/P, after its set-up), applied as a solver applies them.
    for name in ["ptc_pool.sym", "ptc_mg_paper.sym"] {
        let g = model(name);
        let net = symc::runtime::compile_preconditioner_net::<f32>(
            &g,
            &gauge,
            &dirac,
            symc::runtime::multigrid_net::BasisCache::None,
        )
        .unwrap();
        let mut m = symc::runtime::preconditioner::NetPreconditioner::new(
            net,
            symc::runtime::init::init_params(&g, 1),
        )
        .unwrap();
        let mut native = m.native(&layout);
        let len = native.buffer_len().max(layout.field_len());
        let (mut xi, mut yo) = (vec![0.0f32; len], vec![0.0f32; len]);
        layout.to_aosoa(&x, &mut xi);
        let label = name.trim_end_matches(".sym");
        c.bench_function(&format!("precond/apply/{label}/f32-native"), |b| {
            b.iter(|| native.apply(&mut yo, &mut xi).unwrap())
        });
    }
}

criterion_group! {
    name = precond_benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(precond_benches);
