//! The symc side of the qcd_ml anchor comparison (issue 4 / issue 5 part 7): the same problems
//! that `benches/anchors/*.py` time with qcd_ml (the PyTorch port of the paper's code), so that
//! both can run side by side in one session and be compared as ratios.
//!
//! - `anchors/wilson_8x8x8x16/*`: one Wilson-clover application (m = -0.55, c_sw = 1, periodic)
//!   with the plain reference operator and the JIT kernel, f32 and f64. Criterion's element
//!   count is the flop count (1872 per site), so "elem/s" reads as flop/s.
//! - `anchors/train_step_8x8x8x16/*`: one training step as in `train_step.py`: draw v, D v with
//!   the JIT operator, forward + backward of the PTC network (1h1l 1->1, smoother 1->2->2->2->1,
//!   one-hop paths), loss ||M(Dv) - v||^2 / ||Dv||^2, Adam (lr 1e-2), in f32.
//!
//! Convention check first: with `SYMC_ANCHOR_XCHECK=DIR` (written by `gmres.py --xcheck DIR`)
//! the bench applies symc's reference operator to qcd_ml's random vector on the same gauge file
//! and prints the relative difference to qcd_ml's D v (it must be round-off, ~1e-15).
//!
//! Run: `cargo bench --bench anchors` (see benches/anchors/README.md for the Python side).

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use num_complex::Complex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::path::Path;
use std::time::Duration;
use symc::codegen::simd::Element;
use symc::ir::OptimizerSpec;
use symc::lattice::gauge::GaugeField;
use symc::lattice::io::read_gauge;
use symc::lattice::wilson::{DiracParams, FLOPS_PER_SITE, WilsonClover};
use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
use symc::runtime::lattice_net::{LatticeNet, LatticeNetOptions};
use symc::solve::LinearOperator;
use symc::train::optim::Optimizer;

const DIMS: [usize; 4] = [8, 8, 8, 16];
const MASS: f64 = -0.55;
const CSW: f64 = 1.0;

/// Compares symc's reference operator with qcd_ml's output on qcd_ml's vector.
fn convention_check() {
    let Ok(dir) = std::env::var("SYMC_ANCHOR_XCHECK") else {
        eprintln!("SKIPPED: convention check (set SYMC_ANCHOR_XCHECK to gmres.py's --xcheck dir)");
        return;
    };
    let dir = Path::new(&dir);
    let meta: serde_json::Value = match std::fs::read(dir.join("meta.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!("SKIPPED: convention check: {}: {e}", dir.display());
            return;
        }
    };
    let (Some(gauge), Some(mass), Some(csw)) =
        (meta["gauge"].as_str(), meta["mass"].as_f64(), meta["csw"].as_f64())
    else {
        eprintln!("SKIPPED: convention check: meta.json lacks gauge/mass/csw");
        return;
    };
    let read = |name: &str| -> Option<Vec<Complex<f64>>> {
        let b = std::fs::read(dir.join(name)).ok()?;
        Some(
            b.chunks_exact(16)
                .map(|c| {
                    let re = f64::from_le_bytes(c[..8].try_into().unwrap_or_default());
                    let im = f64::from_le_bytes(c[8..].try_into().unwrap_or_default());
                    Complex::new(re, im)
                })
                .collect(),
        )
    };
    let (Some(v), Some(dv_qcdml)) = (read("v.bin"), read("dv.bin")) else {
        eprintln!("SKIPPED: convention check: v.bin / dv.bin missing");
        return;
    };
    let field = match read_gauge(Path::new(gauge)) {
        Ok(f) => f.field,
        Err(e) => {
            eprintln!("SKIPPED: convention check: {e}");
            return;
        }
    };
    let d = WilsonClover::<f64>::new(&field, &DiracParams::periodic(mass, csw));
    if v.len() != d.volume() * 12 || dv_qcdml.len() != v.len() {
        eprintln!("convention check FAILED: vector lengths do not match the gauge field");
        return;
    }
    let mut dv = vec![Complex::new(0.0, 0.0); v.len()];
    d.apply(&mut dv, &v);
    let norm = |x: &[Complex<f64>]| x.iter().map(|c| c.norm_sqr()).sum::<f64>().sqrt();
    let diff: Vec<Complex<f64>> = dv.iter().zip(&dv_qcdml).map(|(a, b)| a - b).collect();
    let max_abs = diff.iter().map(|c| c.norm()).fold(0.0, f64::max);
    let rel = norm(&diff) / norm(&dv_qcdml);
    eprintln!(
        "convention check: symc WilsonClover<f64> vs qcd_ml dirac_wilson_clover on {gauge} \
         (m = {mass}, c_sw = {csw}, periodic): |D_symc v - D_qcdml v| / |D_qcdml v| = {rel:.3e}, \
         max |diff| = {max_abs:.3e} -> {}",
        if rel < 1e-12 { "AGREE" } else { "DISAGREE" }
    );
}

fn wilson<T: Element>(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let gauge = GaugeField::random(DIMS, &mut rng);
    let params = DiracParams::periodic(MASS, CSW);
    let reference = WilsonClover::<T>::new(&gauge, &params);
    let jit = match JitWilsonClover::<T>::new(&gauge, &params, &DiracOptions::default()) {
        Ok(j) => j,
        Err(e) => panic!("JIT Wilson-clover failed to compile: {e}"),
    };
    let n = reference.volume() * 12;
    let normal = |r: &mut ChaCha8Rng| T::from_f64(StandardNormal.sample(r));
    let psi: Vec<Complex<T>> =
        (0..n).map(|_| Complex::new(normal(&mut rng), normal(&mut rng))).collect();
    let mut out = vec![Complex::new(T::zero(), T::zero()); n];
    let mut g = c.benchmark_group("anchors/wilson_8x8x8x16");
    g.throughput(Throughput::Elements(FLOPS_PER_SITE * reference.volume() as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(30);
    g.bench_function(format!("reference_{}", T::PRECISION.name()), |b| {
        b.iter(|| reference.apply(&mut out, &psi))
    });
    g.bench_function(format!("jit_{}", T::PRECISION.name()), |b| {
        b.iter(|| LinearOperator::apply(&jit, &mut out, &psi))
    });
    g.finish();
    cpu_report(&format!("wilson reference_{}", T::PRECISION.name()), 200, || {
        reference.apply(&mut out, &psi)
    });
    cpu_report(&format!("wilson jit_{}", T::PRECISION.name()), 400, || {
        LinearOperator::apply(&jit, &mut out, &psi)
    });
}

/// Process CPU time (user + system, both threads) from /proc/self/stat, in seconds. On this
/// shared machine the wall time depends on how many other processes compete for the cores; the
/// CPU time is the less load-sensitive number and is what the Python drivers print as "cpu".
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // fields after the ")" that closes the command name: state is field 3, utime 14, stime 15
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux x86-64
    Some((utime + stime) / 100.0)
}

/// Runs `f` `iters` times and prints wall and process-CPU milliseconds per call.
fn cpu_report(name: &str, iters: usize, mut f: impl FnMut()) {
    let Some(c0) = process_cpu_seconds() else {
        eprintln!("cpu time {name}: /proc/self/stat unavailable");
        return;
    };
    let t0 = std::time::Instant::now();
    for _ in 0..iters {
        f();
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds().unwrap_or(c0) - c0;
    eprintln!(
        "cpu time {name}: {:.3} ms cpu/call, {:.3} ms wall/call over {iters} calls",
        cpu * 1e3 / iters as f64,
        wall * 1e3 / iters as f64
    );
}

fn train_step(c: &mut Criterion, name: &str, features: &[usize]) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let gauge = GaugeField::random(DIMS, &mut rng);
    let d = match JitWilsonClover::<f32>::new(
        &gauge,
        &DiracParams::periodic(MASS, CSW),
        &DiracOptions::default(),
    ) {
        Ok(d) => d,
        Err(e) => panic!("JIT Wilson-clover failed to compile: {e}"),
    };
    let graph = support::ptc_chain("anchor", DIMS, features);
    let net = match LatticeNet::<f32>::compile(&graph, &gauge, &LatticeNetOptions::default()) {
        Ok(n) => n,
        Err(e) => panic!("LatticeNet failed to compile: {e}"),
    };
    let n = d.vector_len();
    // Same initialisation as train_step.py: 1e-3 N(0,1) + identity on the zero-hop weight
    // (layout [n_out, n_in, path, 4, 4] complex as (re, im) pairs).
    let mut params: Vec<f32> = (0..graph.param_scalars())
        .map(|_| {
            let x: f64 = StandardNormal.sample(&mut rng);
            1e-3 * x as f32
        })
        .collect();
    for p in &graph.params {
        let (n_out, n_in) = (p.shape[0], p.shape[1]);
        for o in 0..n_out {
            for i in 0..n_in {
                for s in 0..4 {
                    let idx = ((((o * n_in + i) * 9) * 4 + s) * 4 + s) * 2;
                    params[p.offset + idx] += 1.0;
                }
            }
        }
    }
    let mut opt = Optimizer::new(
        &OptimizerSpec::Adam { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        params.len(),
    );
    let mut grad = vec![0.0f32; params.len()];
    let mut v = vec![Complex::new(0.0f32, 0.0); n];
    let mut dv = vec![Complex::new(0.0f32, 0.0); n];
    let mut out = vec![Complex::new(0.0f32, 0.0); n];
    let mut g = c.benchmark_group("anchors/train_step_8x8x8x16");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(20);
    let mut last_loss = 0.0f64;
    let mut step = || {
        for x in v.iter_mut() {
            // torch.randn for complex dtypes: variance 1/2 per real component
            let re: f32 = StandardNormal.sample(&mut rng);
            let im: f32 = StandardNormal.sample(&mut rng);
            *x = Complex::new(re, im) * std::f32::consts::FRAC_1_SQRT_2;
        }
        LinearOperator::apply(&d, &mut dv, &v);
        let dnorm2: f64 = dv.iter().map(|c| c.norm_sqr() as f64).sum();
        let scale = (2.0 / dnorm2) as f32;
        let mut loss = 0.0f64;
        let seed = |o: &[Complex<f32>], gr: &mut [Complex<f32>]| {
            for ((gr, o), t) in gr.iter_mut().zip(o).zip(&v) {
                let r = o - t;
                loss += r.norm_sqr() as f64;
                *gr = r * scale;
            }
        };
        if let Err(e) = net.forward_backward(&params, &dv, Some(&mut out), seed, None, &mut grad) {
            panic!("forward_backward failed: {e}");
        }
        last_loss = loss / dnorm2;
        opt.step(&mut params, &grad, 1e-2);
    };
    g.bench_function(format!("{name}_f32"), |b| b.iter(&mut step));
    g.finish();
    cpu_report(&format!("train step {name}_f32"), 30, &mut step);
    eprintln!("train step {name}: last loss {last_loss:.4}");
}

fn benches(c: &mut Criterion) {
    convention_check();
    wilson::<f32>(c);
    wilson::<f64>(c);
    train_step(c, "1h1l", &[1, 1]);
    train_step(c, "smoother", &[1, 2, 2, 2, 1]);
}

criterion_group!(anchors, benches);
criterion_main!(anchors);
