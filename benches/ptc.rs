//! Kernel benchmarks of the gauge-equivariant layers on 8^3 x 16: forward and forward+backward
//! (input and weight gradients) of the 1h1l PTC (1->1) and of the 4-layer smoother
//! (1->2, 2->2, 2->2, 2->1), in f32 and f64; the Wilson-clover JIT operator against the
//! plain reference. Throughput is reported in GFLOP/s via criterion's element count = flops.

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use num_complex::Complex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use symc::codegen::simd::Element;
use symc::lattice::gauge::GaugeField;
use symc::runtime::lattice_net::{LatticeNet, LatticeNetOptions};

const DIMS: [usize; 4] = [8, 8, 8, 16];

/// User + system CPU seconds of this process (all threads), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Time `f` by the CPU time it consumes (summed over threads) instead of wall time: on a shared,
/// oversubscribed machine wall time measures the other tenants; CPU time measures the code.
/// Throughput in this mode is GFLOP/s per core-second.
fn cpu_time(iters: u64, mut f: impl FnMut()) -> std::time::Duration {
    let c0 = cpu_seconds();
    for _ in 0..iters {
        f();
    }
    std::time::Duration::from_secs_f64((cpu_seconds() - c0).max(1e-9))
}

fn bench_model<T: Element>(c: &mut Criterion, name: &str, features: &[usize]) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let gauge = GaugeField::random(DIMS, &mut rng);
    let g = support::ptc_chain("bench", DIMS, features);
    let net = LatticeNet::<T>::compile(&g, &gauge, &LatticeNetOptions::default()).expect("compile");
    let vol = gauge.geom.volume();
    let n_in = features[0];
    let n_out = *features.last().unwrap();
    let normal = |r: &mut ChaCha8Rng| T::from_f64(StandardNormal.sample(r));
    let params: Vec<T> =
        (0..g.param_scalars()).map(|_| normal(&mut rng) * T::from_f64(0.1)).collect();
    let input: Vec<Complex<T>> =
        (0..n_in * vol * 12).map(|_| Complex::new(normal(&mut rng), normal(&mut rng))).collect();
    let target = input.clone();
    let fwd_flops: f64 = net
        .plans()
        .iter()
        .filter(|p| p.pass == symc::codegen::plan::Pass::Forward)
        .map(|p| p.flops)
        .sum();
    let all_flops: f64 = net.plans().iter().map(|p| p.flops).sum::<f64>() + fwd_flops;
    let mut out = vec![Complex::new(T::zero(), T::zero()); n_out * vol * 12];
    let mut grp = c.benchmark_group(format!("ptc/{name}/{}", T::PRECISION.name()));
    grp.sample_size(20);
    grp.throughput(Throughput::Elements(fwd_flops as u64));
    grp.bench_function("forward", |b| b.iter(|| net.forward(&params, &input, &mut out).unwrap()));
    grp.bench_function("forward (cpu time)", |b| {
        b.iter_custom(|n| cpu_time(n, || net.forward(&params, &input, &mut out).unwrap()))
    });
    let mut gp = vec![T::zero(); params.len()];
    grp.throughput(Throughput::Elements(all_flops as u64));
    let mut step = || {
        net.forward_backward(
            &params,
            &input,
            None,
            |o, g| {
                for ((g, o), t) in g.iter_mut().zip(o).zip(target.iter().cycle()) {
                    *g = (o - t) * T::from_f64(2.0);
                }
            },
            None,
            &mut gp,
        )
        .unwrap()
    };
    grp.bench_function("forward+backward", |b| b.iter(&mut step));
    grp.bench_function("forward+backward (cpu time)", |b| {
        b.iter_custom(|n| cpu_time(n, &mut step))
    });
    grp.finish();
}

fn ptc_benches(c: &mut Criterion) {
    bench_model::<f32>(c, "1h1l", &[1, 1]);
    bench_model::<f64>(c, "1h1l", &[1, 1]);
    bench_model::<f32>(c, "smoother", &[1, 2, 2, 2, 1]);
    bench_model::<f64>(c, "smoother", &[1, 2, 2, 2, 1]);
}

criterion_group!(benches, ptc_benches);

fn dirac_benches(c: &mut Criterion) {
    use symc::codegen::dirac::LinkStorage;
    use symc::lattice::wilson::{DiracParams, FLOPS_PER_SITE, WilsonClover};
    use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
    use symc::solve::LinearOperator;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let gauge = GaugeField::random(DIMS, &mut rng);
    let p = DiracParams::periodic(-0.55, 1.0);
    let vol = gauge.geom.volume();
    let flops = FLOPS_PER_SITE * vol as u64;
    fn run<T: Element>(
        c: &mut Criterion,
        gauge: &GaugeField,
        p: &DiracParams,
        flops: u64,
        rng: &mut ChaCha8Rng,
    ) {
        let vol = gauge.geom.volume();
        let x: Vec<Complex<T>> = (0..vol * 12)
            .map(|_| {
                Complex::new(
                    T::from_f64(StandardNormal.sample(rng)),
                    T::from_f64(StandardNormal.sample(rng)),
                )
            })
            .collect();
        let mut y = x.clone();
        let mut grp = c.benchmark_group(format!("wilson_clover/{}", T::PRECISION.name()));
        grp.sample_size(30);
        grp.throughput(Throughput::Elements(flops));
        let reference = WilsonClover::<T>::new(gauge, p);
        grp.bench_function("reference", |b| b.iter(|| reference.apply(&mut y, &x)));
        grp.bench_function("reference (cpu time)", |b| {
            b.iter_custom(|n| cpu_time(n, || reference.apply(&mut y, &x)))
        });
        let jit = JitWilsonClover::<T>::new(gauge, p, &DiracOptions::default()).expect("compile");
        grp.bench_function("jit (with layout conversion)", |b| {
            b.iter(|| LinearOperator::apply(&jit, &mut y, &x))
        });
        let n = jit.layout().field_len();
        let mut a = vec![T::zero(); n];
        jit.layout().to_aosoa(&x, &mut a);
        let mut o = vec![T::zero(); n];
        grp.bench_function("jit kernel (AoSoA in/out)", |b| {
            b.iter(|| jit.apply_aosoa(false, &mut o, &mut a).unwrap())
        });
        grp.bench_function("jit kernel (AoSoA in/out, cpu time)", |b| {
            b.iter_custom(|n| cpu_time(n, || jit.apply_aosoa(false, &mut o, &mut a).unwrap()))
        });
        // One thread, kernel + ghost refresh only: the per-core number without rayon's
        // spinning workers or the other tenants' load in the measurement.
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        grp.bench_function("jit kernel (AoSoA in/out, 1 thread)", |b| {
            one.install(|| b.iter(|| jit.apply_aosoa(false, &mut o, &mut a).unwrap()))
        });
        // Issue 13's link-compression lever side by side: the same kernel with the other link
        // storage (f32 reads two rows and det(U) per link by default, f64 the full matrix).
        let other = match DiracOptions::default().link_storage::<T>() {
            LinkStorage::TwoRows => LinkStorage::Full,
            LinkStorage::Full => LinkStorage::TwoRows,
        };
        let opts = DiracOptions { links: Some(other), ..Default::default() };
        let alt = JitWilsonClover::<T>::new(gauge, p, &opts).expect("compile");
        grp.bench_function(format!("jit kernel {other:?} links (AoSoA in/out)"), |b| {
            b.iter(|| alt.apply_aosoa(false, &mut o, &mut a).unwrap())
        });
        grp.bench_function(format!("jit kernel {other:?} links (AoSoA in/out, 1 thread)"), |b| {
            one.install(|| b.iter(|| alt.apply_aosoa(false, &mut o, &mut a).unwrap()))
        });
        grp.bench_function("jit (with layout conversion, cpu time)", |b| {
            b.iter_custom(|n| cpu_time(n, || LinearOperator::apply(&jit, &mut y, &x)))
        });
        grp.finish();
    }
    run::<f32>(c, &gauge, &p, flops, &mut rng);
    run::<f64>(c, &gauge, &p, flops, &mut rng);
}

criterion_group!(dirac, dirac_benches);
criterion_main!(benches, dirac);
