//! One training step at batch 64 for both digit networks, as the PyTorch anchor measures it
//! (`../shared/anchors/pytorch_mnist/bench.py`): forward + NLL + backward + Adam update, on real
//! MNIST images, 2 threads. Also the parts: forward/backward alone, the Adam update alone, and
//! inference at batch 1000.
//!
//! Run: `cargo bench --bench train_step` (add `-- conv` to select). Epoch times come from real
//! runs (`summary.json` → `epoch_seconds`); see benches/results/train.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::path::Path;
use std::time::Duration;
use symc::ir::OptimizerSpec;
use symc::runtime::Classifier;
use symc::runtime::classifier::{CompileOptions, JitClassifier};
use symc::train::mnist;
use symc::train::optim::Optimizer;

const BATCH: usize = 64;
const INFER_BATCH: usize = 1000;

fn bench(c: &mut Criterion) {
    let threads = 2;
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = match mnist::load_split(&root.join("models/data/mnist"), "train") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED: MNIST not loadable: {e}");
            return;
        }
    };
    let images = &data.images.as_slice().expect("a loaded split is one contiguous array")
        [..INFER_BATCH * 784];
    let labels = &data.labels.as_slice().expect("a loaded split is one contiguous array")[..BATCH];
    for model in ["conv", "dense"] {
        let graph = symc::sema::load_model(&root.join(format!("models/digits_{model}.sym")))
            .expect("the shipped models load");
        // Kernels compute every lane of their compiled batch, so training is measured with a
        // classifier compiled for the training batch and inference with one for INFER_BATCH.
        let train_opts = CompileOptions { max_batch: BATCH, threads, ..CompileOptions::default() };
        let clf_train =
            JitClassifier::compile(&graph, &train_opts).expect("the digit networks compile");
        let opts = CompileOptions { max_batch: INFER_BATCH, threads, ..CompileOptions::default() };
        let clf = JitClassifier::compile(&graph, &opts).expect("the digit networks compile");
        let mut params = symc::runtime::init::init_params(&graph, 0);
        let mut grad = vec![0.0f32; params.len()];
        let spec = OptimizerSpec::Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
        let mut opt = Optimizer::new(&spec, params.len());
        let x = &images[..BATCH * 784];

        let mut g = c.benchmark_group(format!("digits_{model}"));
        g.sample_size(if model == "dense" { 30 } else { 60 });
        g.measurement_time(Duration::from_secs(4));
        g.warm_up_time(Duration::from_secs(1));
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function("train_step_b64_adam", |b| {
            b.iter(|| {
                clf_train.train_batch(&params, x, labels, &mut grad).unwrap();
                opt.step(&mut params, &grad, 1e-3);
            })
        });
        g.bench_function("forward_backward_b64", |b| {
            b.iter(|| clf_train.train_batch(&params, x, labels, &mut grad).unwrap())
        });
        g.bench_function("adam_update", |b| b.iter(|| opt.step(&mut params, &grad, 1e-3)));
        g.throughput(Throughput::Elements(INFER_BATCH as u64));
        let mut logp = vec![0.0f32; INFER_BATCH * 10];
        g.bench_function("predict_b1000", |b| {
            b.iter(|| clf.predict(&params, images, &mut logp).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
