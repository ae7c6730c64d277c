//! Kernel benchmarks for the classifier back end: forward and training step (forward +
//! backward + parameter gradients, no optimiser) per layer kind and per strategy, with
//! GFLOP/s as criterion element throughput (1 element = 1 flop), the training step of both
//! digit networks at batch 64, and whole-model compile time.
//!
//! Run: `cargo bench --bench kernels` (add a filter such as `-- step/` for a subset; the
//! `cpu_time/` lines are printed first on every run).
//! This machine's ceilings (design/cranelift.md): 68 GFLOP/s per core with 128-bit f32
//! vectors, 268 with AVX-512.

#[path = "../tests/classifier_nets/mod.rs"]
mod classifier_nets;

use std::hint::black_box;
use std::time::Duration;

use classifier_nets::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use symc::codegen::simd::Precision;
use symc::ir::{Activation, Graph, LayerKind, Padding};
use symc::runtime::Classifier;
use symc::runtime::classifier::{CompileOptions, JitClassifier, StrategyChoice};
use symc::runtime::init::init_params;

const BATCH: usize = 64;

fn opts(strategy: StrategyChoice) -> CompileOptions {
    CompileOptions {
        max_batch: BATCH,
        threads: 2,
        precision: Precision::F32,
        keep_listings: false,
        strategy,
    }
}

/// Multiply-adds per sample of the dense and convolution layers.
fn macs(g: &Graph) -> (f64, f64) {
    let mut fwd = 0.0;
    let mut first = 0.0;
    for (i, l) in g.layers.iter().enumerate() {
        let m = match &l.kind {
            LayerKind::Dense { in_features, out_features, .. } => {
                (in_features * out_features) as f64
            }
            LayerKind::Conv { in_channels, out_channels, window, out_spatial, .. } => {
                (in_channels
                    * out_channels
                    * window.iter().product::<usize>()
                    * out_spatial.iter().product::<usize>()) as f64
            }
            _ => 0.0,
        };
        if i == 0 || (first == 0.0 && m > 0.0) {
            first += m;
        }
        fwd += m;
    }
    (fwd, first)
}

/// Flops of a forward pass and of a training step (forward, input gradients of all but the
/// first weighted layer, weight gradients) for one batch.
fn flops(g: &Graph) -> (u64, u64) {
    let (fwd, first) = macs(g);
    let b = BATCH as f64;
    ((2.0 * fwd * b) as u64, (2.0 * (3.0 * fwd - first) * b) as u64)
}

struct Data {
    params: Vec<f32>,
    images: Vec<f32>,
    labels: Vec<u8>,
    grad: Vec<f32>,
}

fn data(g: &Graph) -> Data {
    let mut r = rng(1);
    let images: Vec<f32> =
        uniform(&mut r, BATCH * input_len(g), 1.0).iter().map(|&v| v as f32).collect();
    let labels = labels(&mut r, BATCH, classes(g));
    let params = init_params(g, 7);
    let grad = vec![0.0; params.len()];
    Data { params, images, labels, grad }
}

fn bench_net(c: &mut Criterion, group: &str, g: &Graph, strategies: &[StrategyChoice]) {
    let (ff, sf) = flops(g);
    let mut d = data(g);
    let mut logp = vec![0f32; BATCH * classes(g)];
    for &s in strategies {
        let jit = JitClassifier::compile(g, &opts(s)).expect("compile");
        for p in jit.plans().iter().filter(|_| std::env::var_os("SHOW_PLANS").is_some()) {
            eprintln!(
                "  {group}/{s:?}: {} {:?} -> {:?} ({})",
                p.layer, p.pass, p.strategy, p.reason
            );
        }
        let mut grp = c.benchmark_group(format!("{group}/{s:?}"));
        grp.sample_size(20)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(300));
        grp.throughput(Throughput::Elements(ff));
        grp.bench_function("forward", |b| {
            b.iter(|| jit.predict(&d.params, &d.images, &mut logp).unwrap())
        });
        grp.throughput(Throughput::Elements(sf));
        grp.bench_function("train_step", |b| {
            b.iter(|| {
                black_box(jit.train_batch(&d.params, &d.images, &d.labels, &mut d.grad).unwrap())
            })
        });
        grp.finish();
    }
}

fn layers(c: &mut Criterion) {
    let both = [StrategyChoice::ForceJit, StrategyChoice::ForceGemm];
    // Single weighted layers (plus the small log-softmax head), the sizes of the digit nets.
    let g =
        Net::new("dense_784x3610", &[784]).dense(3610, true).act(Activation::Relu).log_softmax();
    bench_net(c, "layer/dense_784x3610", &g, &both);
    let g =
        Net::new("dense_3610x1000", &[3610]).dense(1000, true).act(Activation::Relu).log_softmax();
    bench_net(c, "layer/dense_3610x1000", &g, &both);
    let g = Net::new("conv_10x19x19_w10", &[10, 19, 19])
        .conv(10, &[10, 10], Padding::Valid, true)
        .act(Activation::Relu)
        .flatten()
        .log_softmax();
    bench_net(c, "layer/conv_10x19x19_w10", &g, &both);
    let g = Net::new("conv_1x28x28_w10", &[1, 28, 28])
        .conv(10, &[10, 10], Padding::Valid, true)
        .act(Activation::Relu)
        .flatten()
        .log_softmax();
    bench_net(c, "layer/conv_1x28x28_w10", &g, &both);
    let g = Net::new("conv_same_16x16x16_w3", &[16, 16, 16])
        .conv(16, &[3, 3], Padding::Same, true)
        .act(Activation::Tanh)
        .flatten()
        .log_softmax();
    bench_net(c, "layer/conv_same_16x16x16_w3_tanh", &g, &both);
}

fn networks(c: &mut Criterion) {
    let all = [StrategyChoice::Auto, StrategyChoice::ForceJit, StrategyChoice::ForceGemm];
    bench_net(c, "step/digits_conv", &digits_conv(Activation::Relu), &all);
    bench_net(c, "step/digits_dense", &digits_dense(Activation::Relu), &all);
}

fn compile(c: &mut Criterion) {
    let mut grp = c.benchmark_group("compile");
    grp.sample_size(20).measurement_time(Duration::from_secs(2));
    for (name, g) in [
        ("digits_conv", digits_conv(Activation::Relu)),
        ("digits_dense", digits_dense(Activation::Relu)),
    ] {
        grp.bench_function(name, |b| {
            b.iter(|| JitClassifier::compile(&g, &opts(StrategyChoice::Auto)).unwrap())
        });
    }
    grp.finish();
}

/// Process CPU seconds (user + system) from /proc/self/stat; `None` off Linux.
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let f: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
    Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
}

/// CPU time per training step and per compile, summed over all threads: on a shared, loaded
/// machine wall time measures the neighbours, CPU time measures the work (it still includes
/// cache misses caused by them). Printed, not a criterion measurement.
fn cpu_time(_c: &mut Criterion) {
    let reps = 20;
    for (name, g) in [
        ("digits_conv", digits_conv(Activation::Relu)),
        ("digits_dense", digits_dense(Activation::Relu)),
    ] {
        for s in [StrategyChoice::Auto, StrategyChoice::ForceJit, StrategyChoice::ForceGemm] {
            let mut d = data(&g);
            let (Some(c0), t0) = (cpu_seconds(), std::time::Instant::now()) else {
                return;
            };
            for _ in 0..reps {
                black_box(JitClassifier::compile(&g, &opts(s)).expect("compile"));
            }
            let (Some(c1), t1) = (cpu_seconds(), std::time::Instant::now()) else {
                return;
            };
            let jit = JitClassifier::compile(&g, &opts(s)).expect("compile");
            jit.train_batch(&d.params, &d.images, &d.labels, &mut d.grad).expect("step");
            let (Some(c2), t2) = (cpu_seconds(), std::time::Instant::now()) else {
                return;
            };
            for _ in 0..reps {
                black_box(
                    jit.train_batch(&d.params, &d.images, &d.labels, &mut d.grad).expect("step"),
                );
            }
            let (Some(c3), t3) = (cpu_seconds(), std::time::Instant::now()) else {
                return;
            };
            let ms = |c: f64| c * 1e3 / reps as f64;
            eprintln!(
                "cpu_time/{name}/{s:?}: compile {:.1} ms CPU ({:.1} ms wall); train step {:.1} ms CPU ({:.1} ms wall)",
                ms(c1 - c0),
                ms((t1 - t0).as_secs_f64()),
                ms(c3 - c2),
                ms((t3 - t2).as_secs_f64())
            );
        }
    }
}

criterion_group!(benches, cpu_time, layers, networks, compile);
criterion_main!(benches);
