//! The classifier training loop, driven through the `Classifier` trait by a plainly written
//! multinomial logistic regression (its gradient checked here against finite differences):
//! learning on separable data and on an MNIST subset, exact resume, divergence handling,
//! the validation split, the run folder's files, checkpoint round trips, and data-parallel
//! training over members in threads (an in-process stand-in for MPI ranks: the same loop, the
//! same collectives, against the one-process run).

use ndarray::{Array1, Array3, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use symc::ir::{
    Graph, Layer, LayerId, LayerKind, OptimizerSpec, Param, ParamId, Schedule, Span, Symmetry,
    ValueId, ValueType,
};
use symc::runtime::data_parallel::DataParallel;
use symc::runtime::{BatchStats, Classifier, RuntimeError};
use symc::train::checkpoint::{self, CheckpointError};
use symc::train::classify::{self, ClassifyOptions, RunInfo, TrainError};
use symc::train::mnist::{self, Mnist, Split};
use symc::train::runlog;

const CLASSES: usize = 10;

/// flatten -> dense(n -> 10) -> log-softmax, as an IR graph.
fn logreg_graph(rows: usize, cols: usize) -> Graph {
    let n = rows * cols;
    let _ = LayerId(0);
    Graph {
        name: "logreg".into(),
        symmetry: Symmetry::None,
        lattice: None,
        values: vec![
            ValueType::Real { shape: vec![1, rows, cols] },
            ValueType::Real { shape: vec![n] },
            ValueType::Real { shape: vec![CLASSES] },
            ValueType::Real { shape: vec![CLASSES] },
        ],
        input_name: "image".into(),
        layers: vec![
            Layer {
                kind: LayerKind::Flatten,
                inputs: vec![ValueId(0)],
                output: ValueId(1),
                params: vec![],
                name: "flatten".into(),
                span: Span::default(),
            },
            Layer {
                kind: LayerKind::Dense {
                    in_features: n,
                    out_features: CLASSES,
                    bias: true,
                    complex: false,
                },
                inputs: vec![ValueId(1)],
                output: ValueId(2),
                params: vec![ParamId(0), ParamId(1)],
                name: "linear1".into(),
                span: Span::default(),
            },
            Layer {
                kind: LayerKind::LogSoftmax,
                inputs: vec![ValueId(2)],
                output: ValueId(3),
                params: vec![],
                name: "logits".into(),
                span: Span::default(),
            },
        ],
        params: vec![
            Param {
                name: "linear1.weight".into(),
                shape: vec![CLASSES, n],
                complex: false,
                offset: 0,
            },
            Param {
                name: "linear1.bias".into(),
                shape: vec![CLASSES],
                complex: false,
                offset: CLASSES * n,
            },
        ],
        output: ValueId(3),
        train: None,
        split_of: None,
    }
}

/// Multinomial logistic regression, written plainly: the test double for the JIT classifier.
struct LogReg {
    graph: Graph,
    n: usize,
}

impl LogReg {
    fn new(rows: usize, cols: usize) -> Self {
        LogReg { graph: logreg_graph(rows, cols), n: rows * cols }
    }
    fn logp(&self, params: &[f32], x: &[f32]) -> [f64; CLASSES] {
        let (w, b) = params.split_at(CLASSES * self.n);
        let mut z = [0.0f64; CLASSES];
        for c in 0..CLASSES {
            z[c] = b[c] as f64
                + (0..self.n).map(|i| w[c * self.n + i] as f64 * x[i] as f64).sum::<f64>();
        }
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        z.map(|v| v - lse)
    }
}

impl Classifier for LogReg {
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
        let bsz = labels.len();
        if images.len() != bsz * self.n || grad.len() != params.len() {
            return Err(RuntimeError::Shape("logreg buffers".into()));
        }
        grad.fill(0.0);
        let mut stats = BatchStats { samples: bsz, ..Default::default() };
        for (s, &label) in labels.iter().enumerate() {
            let x = &images[s * self.n..(s + 1) * self.n];
            let lp = self.logp(params, x);
            stats.loss_sum -= lp[label as usize];
            let arg = (0..CLASSES).fold(0, |b, c| if lp[c] > lp[b] { c } else { b });
            stats.correct += (arg == label as usize) as usize;
            for c in 0..CLASSES {
                let d = (lp[c].exp() - (c == label as usize) as u8 as f64) / bsz as f64;
                for i in 0..self.n {
                    grad[c * self.n + i] += (d * x[i] as f64) as f32;
                }
                grad[CLASSES * self.n + c] += d as f32;
            }
        }
        Ok(stats)
    }
    fn predict(
        &self,
        params: &[f32],
        images: &[f32],
        logp: &mut [f32],
    ) -> Result<(), RuntimeError> {
        for (s, out) in logp.chunks_mut(CLASSES).enumerate() {
            let lp = self.logp(params, &images[s * self.n..(s + 1) * self.n]);
            for c in 0..CLASSES {
                out[c] = lp[c] as f32;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    InfGradient,
    NanLoss,
    /// The process "dies": the loop gets an error, as when a run is killed mid-epoch.
    Crash,
}

/// Wraps a classifier and injects a fault at a given training step (1-based).
struct Faulty {
    inner: LogReg,
    step: AtomicUsize,
    at: usize,
    fault: Fault,
}

impl Classifier for Faulty {
    fn graph(&self) -> &Graph {
        self.inner.graph()
    }
    fn train_batch(
        &self,
        p: &[f32],
        x: &[f32],
        y: &[u8],
        g: &mut [f32],
    ) -> Result<BatchStats, RuntimeError> {
        let mut s = self.inner.train_batch(p, x, y, g)?;
        if self.step.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            match self.fault {
                Fault::NanLoss => s.loss_sum = f64::NAN,
                Fault::InfGradient => g[3] = f32::INFINITY,
                Fault::Crash => return Err(RuntimeError::Shape("simulated crash".into())),
            }
        }
        Ok(s)
    }
    fn predict(&self, p: &[f32], x: &[f32], out: &mut [f32]) -> Result<(), RuntimeError> {
        self.inner.predict(p, x, out)
    }
}

/// Ten noisy class prototypes on a 4x4 grid: linearly separable with a margin.
fn synthetic(n_train: usize, n_test: usize, seed: u64) -> Mnist {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let protos: Vec<Vec<f32>> =
        (0..CLASSES).map(|_| (0..16).map(|_| rng.random_range(-1.0f32..1.0)).collect()).collect();
    let mut make = |n: usize| {
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = i % CLASSES;
            labels.push(c as u8);
            images.extend(protos[c].iter().map(|p| p + rng.random_range(-0.15f32..0.15)));
        }
        let images = Array3::from_shape_vec((n, 4, 4), images).unwrap();
        Split { images, labels: Array1::from(labels), images_path: "synthetic".into() }
    };
    Mnist { train: make(n_train), test: make(n_test) }
}

fn options(dir: &Path, epochs: usize, optimizer: OptimizerSpec) -> ClassifyOptions {
    ClassifyOptions {
        epochs,
        batch: 16,
        eval_batch: 64,
        optimizer,
        schedule: Schedule::Constant,
        validation: 0.0,
        seed: 11,
        out_dir: dir.to_path_buf(),
        progress: false,
        info: RunInfo {
            threads: 1,
            precision: "f32".into(),
            backend: "test".into(),
            ..Default::default()
        },
    }
}

fn adam(lr: f64) -> OptimizerSpec {
    OptimizerSpec::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
}

#[test]
fn test_classifier_gradient_matches_finite_differences() {
    // The fixture must itself be right, or the loop tests prove nothing.
    let clf = LogReg::new(2, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let params: Vec<f32> = (0..50).map(|_| rng.random_range(-0.5f32..0.5)).collect();
    let images: Vec<f32> = (0..12).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let labels = [3u8, 7, 0];
    let mut grad = vec![0.0f32; 50];
    clf.train_batch(&params, &images, &labels, &mut grad).unwrap();
    let loss = |p: &[f32]| {
        (0..3).map(|s| -clf.logp(p, &images[s * 4..s * 4 + 4])[labels[s] as usize]).sum::<f64>()
            / 3.0
    };
    for k in [0, 13, 29, 41, 47] {
        let h = 1e-2f32;
        let (mut a, mut b) = (params.clone(), params.clone());
        a[k] += h;
        b[k] -= h;
        let fd = (loss(&a) - loss(&b)) / (2.0 * h as f64);
        assert!((fd - grad[k] as f64).abs() < 1e-4, "param {k}: fd {fd} vs {}", grad[k]);
    }
}

#[test]
fn learns_separable_data_and_writes_the_run_folder() {
    let data = synthetic(400, 100, 1);
    let clf = LogReg::new(4, 4);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 3, OptimizerSpec::Sgd { lr: 0.1, momentum: 0.9 });
    opts.schedule = Schedule::Step { every: 2, gamma: 0.5 };
    let s = classify::train(&clf, &data, &opts, vec![0.0; 170], None).unwrap();
    assert_eq!(s.status, "completed");
    assert_eq!(s.epochs, 3);
    assert_eq!(s.epoch_seconds.len(), 3);
    assert_eq!(s.test_accuracy, Some(1.0));
    assert_eq!(s.params, 170);
    assert_eq!(s.steps, 3 * 25);
    let rows = runlog::read_csv(dir.path()).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].train_loss > rows[2].train_loss, "{rows:?}");
    assert!(rows[2].test_loss < 0.1);
    assert_eq!(rows.iter().map(|r| r.lr).collect::<Vec<_>>(), vec![0.1, 0.1, 0.05]);
    // the summary on disk is the returned one, and carries the required keys
    let on_disk = runlog::read_summary(dir.path()).unwrap();
    assert_eq!(on_disk, s);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    for key in [
        "test_accuracy",
        "epochs",
        "epoch_seconds",
        "final_train_loss",
        "params",
        "best_test_accuracy",
    ] {
        assert!(!json[key].is_null(), "summary.json lacks {key}");
    }
    // the checkpoint holds the final parameters, which reproduce the logged test loss
    let ck = checkpoint::load(&dir.path().join(checkpoint::FILE_NAME), clf.graph()).unwrap();
    let ev = classify::evaluate(&clf, &ck.params, &data.test, None, 7).unwrap();
    assert!((ev.eval.loss - rows[2].test_loss).abs() < 1e-6);
    assert_eq!(ck.meta["epoch"], "3");
    // no temporary files are left behind
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".tmp")), "{names:?}");
}

#[test]
fn resume_after_a_crash_continues_exactly() {
    let data = synthetic(300, 50, 2); // 240 training samples: 15 steps per epoch
    let clf = LogReg::new(4, 4);
    let init: Vec<f32> = (0..170).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.01).collect();
    let whole = tempfile::tempdir().unwrap();
    let mut o = options(whole.path(), 4, adam(0.02));
    o.validation = 0.2;
    o.schedule = Schedule::Cosine { floor: 0.1 };
    let full = classify::train(&clf, &data, &o, init.clone(), None).unwrap();

    // The same run, killed in the middle of epoch 3, then resumed.
    let part = tempfile::tempdir().unwrap();
    let mut o2 = o.clone();
    o2.out_dir = part.path().to_path_buf();
    let crashing =
        Faulty { inner: LogReg::new(4, 4), step: AtomicUsize::new(0), at: 37, fault: Fault::Crash };
    let e = classify::train(&crashing, &data, &o2, init.clone(), None).unwrap_err();
    assert!(matches!(e, TrainError::Runtime(_)), "{e:?}");
    assert_eq!(runlog::read_csv(part.path()).unwrap().len(), 2);
    let resumed = classify::train(&clf, &data, &o2, Vec::new(), Some(part.path())).unwrap();

    let a = checkpoint::load(&whole.path().join(checkpoint::FILE_NAME), clf.graph()).unwrap();
    let b = checkpoint::load(&part.path().join(checkpoint::FILE_NAME), clf.graph()).unwrap();
    assert_eq!(a.params, b.params, "parameters differ after resume");
    assert_eq!(a.optimizer, b.optimizer);
    assert_eq!(a.meta["rng_word_pos"], b.meta["rng_word_pos"]);
    let strip = |rows: Vec<runlog::EpochRow>| {
        rows.into_iter()
            .map(|r| (r.epoch, r.train_loss, r.val_loss, r.test_loss, r.lr))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(runlog::read_csv(whole.path()).unwrap()),
        strip(runlog::read_csv(part.path()).unwrap())
    );
    // steps.csv too: the resumed run drops the crashed epoch's steps and redoes them.
    let steps = runlog::read_steps(whole.path()).unwrap().unwrap();
    assert_eq!(steps.len(), 60);
    assert_eq!(Some(steps), runlog::read_steps(part.path()).unwrap());
    assert_eq!(full.test_accuracy, resumed.test_accuracy);
    assert_eq!(resumed.steps, 60);
    assert_eq!((resumed.train_samples, resumed.val_samples), (240, 60));

    // A resume with another seed is refused, naming the reason.
    let mut o3 = o2.clone();
    o3.seed = 12;
    let e = classify::train(&clf, &data, &o3, Vec::new(), Some(part.path())).unwrap_err();
    assert!(
        matches!(&e, TrainError::Resume { message, .. } if message.contains("seed 11")),
        "{e:?}"
    );
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn extending_a_constant_lr_run_equals_the_longer_run() {
    // With a constant schedule, `--epochs 2` then `--resume --epochs 3` is the 3-epoch run.
    let data = synthetic(200, 20, 5);
    let clf = LogReg::new(4, 4);
    let (x, y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let o = options(x.path(), 3, OptimizerSpec::Sgd { lr: 0.05, momentum: 0.9 });
    classify::train(&clf, &data, &o, vec![0.0; 170], None).unwrap();
    let mut o2 = options(y.path(), 2, OptimizerSpec::Sgd { lr: 0.05, momentum: 0.9 });
    classify::train(&clf, &data, &o2, vec![0.0; 170], None).unwrap();
    o2.epochs = 3;
    classify::train(&clf, &data, &o2, Vec::new(), Some(y.path())).unwrap();
    let a = checkpoint::load(&x.path().join(checkpoint::FILE_NAME), clf.graph()).unwrap();
    let b = checkpoint::load(&y.path().join(checkpoint::FILE_NAME), clf.graph()).unwrap();
    assert_eq!(a.params, b.params);
    assert_eq!(a.optimizer["velocity"], b.optimizer["velocity"]);
}

#[test]
fn divergence_stops_and_keeps_the_last_good_checkpoint() {
    let data = synthetic(160, 40, 3); // 10 steps per epoch at batch 16
    for poison_loss in [false, true] {
        let good = tempfile::tempdir().unwrap();
        let clf = LogReg::new(4, 4);
        classify::train(&clf, &data, &options(good.path(), 1, adam(0.01)), vec![0.0; 170], None)
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let fault = if poison_loss { Fault::NanLoss } else { Fault::InfGradient };
        let faulty = Faulty { inner: LogReg::new(4, 4), step: AtomicUsize::new(0), at: 14, fault };
        let e = classify::train(
            &faulty,
            &data,
            &options(dir.path(), 3, adam(0.01)),
            vec![0.0; 170],
            None,
        )
        .unwrap_err();
        match &e {
            TrainError::Diverged { epoch: 2, step: 14, completed: 1, what } => {
                let want = if poison_loss { "loss is NaN" } else { "gradient" };
                assert!(what.contains(want), "{what}");
            }
            other => panic!("expected divergence in epoch 2 step 14, got {other:?}"),
        }
        assert_eq!(e.exit_code(), 1);
        let kept = checkpoint::load(&dir.path().join(checkpoint::FILE_NAME), clf.graph()).unwrap();
        let reference =
            checkpoint::load(&good.path().join(checkpoint::FILE_NAME), clf.graph()).unwrap();
        assert_eq!(kept.params, reference.params, "the kept checkpoint is not epoch 1's");
        assert_eq!(kept.meta["epoch"], "1");
        let s = runlog::read_summary(dir.path()).unwrap();
        assert_eq!(s.status, "diverged");
        assert!(s.message.unwrap().contains("epoch 2, step 14"));
        assert_eq!(runlog::read_csv(dir.path()).unwrap().len(), 1);
    }
}

#[test]
fn validation_split_is_seeded_and_disjoint() {
    let (t, v) = classify::split_indices(1000, 0.1, 5);
    assert_eq!((t.len(), v.len()), (900, 100));
    let mut all: Vec<usize> = t.iter().chain(&v).cloned().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert_eq!(classify::split_indices(1000, 0.1, 5), (t.clone(), v.clone()));
    assert_ne!(classify::split_indices(1000, 0.1, 6).1, v);
    assert_eq!(classify::split_indices(10, 0.0, 5).1, Vec::<usize>::new());
}

#[test]
fn shape_and_setting_errors() {
    let data = synthetic(50, 10, 4);
    let dir = tempfile::tempdir().unwrap();
    let clf = LogReg::new(5, 5);
    let e = classify::train(&clf, &data, &options(dir.path(), 1, adam(0.01)), vec![0.0; 260], None)
        .unwrap_err();
    assert!(
        matches!(&e, TrainError::Shape { message } if message.contains("25 values") && message.contains("4x4 = 16")),
        "{e}"
    );
    assert_eq!(e.exit_code(), 1);
    let clf = LogReg::new(4, 4);
    let mut o = options(dir.path(), 1, adam(0.01));
    o.validation = 1.0;
    assert!(matches!(
        classify::train(&clf, &data, &o, vec![0.0; 170], None),
        Err(TrainError::Setting { .. })
    ));
}

#[test]
fn checkpoint_round_trip_and_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let g = logreg_graph(4, 4);
    let params: Vec<f32> = (0..170).map(|i| i as f32 * 0.5 - 3.0).collect();
    let m: Vec<f32> = (0..170).map(|i| i as f32).collect();
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("epoch".to_string(), "7".to_string());
    checkpoint::save(&path, &g, &params, &[("m", &m)], &meta).unwrap();
    let ck = checkpoint::load(&path, &g).unwrap();
    assert_eq!(ck.params, params);
    assert_eq!(ck.optimizer["m"], m);
    assert_eq!(ck.meta["epoch"], "7");
    assert_eq!(ck.meta["model"], "logreg");
    // Named, shaped tensors that other tools can read.
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("linear1.weight").unwrap().shape(), &[10, 16]);
    assert_eq!(st.tensor("linear1.bias").unwrap().shape(), &[10]);

    // Another model's shapes are refused.
    let other = logreg_graph(5, 5);
    let e = checkpoint::load(&path, &other).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Mismatch { message, .. } if message.contains("linear1.weight")),
        "{e}"
    );
    // A damaged file is a format error, not a panic.
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(checkpoint::load(&path, &g), Err(CheckpointError::Format { .. })));
    assert!(matches!(
        checkpoint::load(&dir.path().join("none"), &g),
        Err(CheckpointError::Read { .. })
    ));
}

#[test]
fn logistic_regression_learns_an_mnist_subset() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/data/mnist");
    let full = mnist::load(&dir).unwrap();
    let take = |s: &Split, n: usize| Split {
        images: s.images.slice(s![..n, .., ..]).to_owned(),
        labels: s.labels.slice(s![..n]).to_owned(),
        images_path: s.images_path.clone(),
    };
    let data = Mnist { train: take(&full.train, 3000), test: take(&full.test, 1000) };
    let clf = LogReg::new(28, 28);
    let out = tempfile::tempdir().unwrap();
    let mut o = options(out.path(), 2, adam(1e-3));
    o.batch = 32;
    o.validation = 0.1;
    let s = classify::train(&clf, &data, &o, vec![0.0; 7850], None).unwrap();
    // Logistic regression reaches ~92% on full MNIST; on 2700 samples after 2 epochs, > 85%.
    let acc = s.test_accuracy.unwrap();
    assert!(acc > 0.85, "test accuracy {acc}");
    assert!(s.final_val_accuracy.unwrap() > 0.8);
    assert_eq!((s.train_samples, s.val_samples, s.test_samples), (2700, 300, 1000));
}

/// Members of a data-parallel group as threads of this process. The sums are made in rank
/// order from every member's posted partials, so all members get the same bits (what
/// `Comm::sum_f64` promises over MPI).
struct ThreadGroup {
    rank: usize,
    size: usize,
    barrier: Arc<Barrier>,
    posted: Arc<Mutex<Vec<Vec<f64>>>>,
    sums: Arc<AtomicUsize>,
}

impl ThreadGroup {
    fn members(size: usize) -> Vec<ThreadGroup> {
        let barrier = Arc::new(Barrier::new(size));
        let posted = Arc::new(Mutex::new(vec![Vec::new(); size]));
        let sums = Arc::new(AtomicUsize::new(0));
        (0..size)
            .map(|rank| ThreadGroup {
                rank,
                size,
                barrier: barrier.clone(),
                posted: posted.clone(),
                sums: sums.clone(),
            })
            .collect()
    }
}

impl DataParallel for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum(&self, partials: &mut [f64]) {
        self.posted.lock().unwrap()[self.rank] = partials.to_vec();
        self.barrier.wait();
        {
            let all = self.posted.lock().unwrap();
            assert!(all.iter().all(|p| p.len() == partials.len()), "members disagree on a sum");
            for (i, out) in partials.iter_mut().enumerate() {
                *out = all.iter().map(|p| p[i]).sum();
            }
        }
        if self.rank == 0 {
            self.sums.fetch_add(1, Ordering::SeqCst);
        }
        self.barrier.wait();
    }
    fn worst(&self, code: u8) -> u8 {
        let mut v = [code as f64];
        self.posted.lock().unwrap()[self.rank] = v.to_vec();
        self.barrier.wait();
        v[0] = self.posted.lock().unwrap().iter().map(|p| p[0]).fold(0.0, f64::max);
        self.barrier.wait();
        v[0] as u8
    }
}

/// Runs `train_parallel` on `size` thread members, member r with classifier `clfs[r]`; the
/// root writes into `root_dir`, the others are pointed at `other_dir`.
fn train_in_threads(
    clfs: &[&dyn Classifier],
    data: &Mnist,
    opts: &ClassifyOptions,
    init: &[f32],
    other_dir: &Path,
) -> (Vec<Result<runlog::Summary, TrainError>>, usize) {
    let members = ThreadGroup::members(clfs.len());
    let sums = members[0].sums.clone();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .into_iter()
            .zip(clfs)
            .map(|(m, &clf)| {
                let mut o = opts.clone();
                if m.rank != 0 {
                    o.out_dir = other_dir.to_path_buf();
                }
                let init = init.to_vec();
                scope.spawn(move || classify::train_parallel(clf, data, &o, init, None, &m))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (results, sums.load(Ordering::SeqCst))
}

#[test]
fn data_parallel_members_take_the_one_process_steps() {
    // 240 training samples at batch 16 and 35: 3 members get uneven shares (5, 5, 6 and
    // 11, 12, 12), and the last batch of an epoch (240 = 6 x 35 + 30) is shorter.
    let data = synthetic(300, 60, 4);
    let clf = LogReg::new(4, 4);
    let init: Vec<f32> = (0..170).map(|i| ((i * 29 % 13) as f32 - 6.0) * 0.01).collect();
    for batch in [16, 35] {
        let one = tempfile::tempdir().unwrap();
        let mut o = options(one.path(), 2, adam(0.02));
        o.batch = batch;
        o.validation = 0.2;
        o.schedule = Schedule::Cosine { floor: 0.1 };
        let single = classify::train(&clf, &data, &o, init.clone(), None).unwrap();

        let many = tempfile::tempdir().unwrap();
        let others = tempfile::tempdir().unwrap();
        let mut om = o.clone();
        om.out_dir = many.path().to_path_buf();
        om.info.ranks = 3;
        let (results, sums) =
            train_in_threads(&[&clf, &clf, &clf], &data, &om, &init, others.path());
        let summaries: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        // One sum per step (gradient, loss and failure flag together) and one agreement per
        // epoch besides: the shares are summed, not computed everywhere.
        assert_eq!(sums as u64, single.steps, "batch {batch}");
        assert_eq!(summaries[0].steps, single.steps);
        assert_eq!(summaries[0].ranks, 3);
        assert_eq!(single.ranks, 1);

        let a = runlog::read_steps(one.path()).unwrap().unwrap();
        let b = runlog::read_steps(many.path()).unwrap().unwrap();
        assert_eq!(a.len() as u64, single.steps);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((x.step, x.epoch, x.lr), (y.step, y.epoch, y.lr));
            let rel = (x.loss - y.loss).abs() / x.loss.abs();
            assert!(
                rel < 1e-6,
                "batch {batch} step {}: {} vs {} ({rel:e})",
                x.step,
                x.loss,
                y.loss
            );
        }
        let pa = checkpoint::load(&one.path().join(checkpoint::FILE_NAME), clf.graph()).unwrap();
        let pb = checkpoint::load(&many.path().join(checkpoint::FILE_NAME), clf.graph()).unwrap();
        let worst =
            pa.params.iter().zip(&pb.params).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-5, "batch {batch}: weights differ by {worst}");
        assert_eq!(runlog::read_csv(many.path()).unwrap().len(), 2);
        // The other members wrote nothing.
        assert_eq!(std::fs::read_dir(others.path()).unwrap().count(), 0);
    }
}

#[test]
fn a_failing_data_parallel_member_stops_every_member() {
    let data = synthetic(300, 60, 5);
    let good = LogReg::new(4, 4);
    let init = vec![0.0f32; 170];
    let root_dir = tempfile::tempdir().unwrap();
    let others = tempfile::tempdir().unwrap();
    let opts = options(root_dir.path(), 3, adam(0.02));
    // Member 2 fails in its 20th step (epoch 2 of 19-step epochs): nobody may wait for it.
    let crashing =
        Faulty { inner: LogReg::new(4, 4), step: AtomicUsize::new(0), at: 20, fault: Fault::Crash };
    let (results, _) =
        train_in_threads(&[&good, &good, &crashing], &data, &opts, &init, others.path());
    match &results[2] {
        Err(TrainError::Runtime(e)) => assert!(e.to_string().contains("simulated crash")),
        other => panic!("member 2: {other:?}"),
    }
    for r in &results[..2] {
        match r {
            Err(e @ TrainError::Elsewhere { .. }) => assert_eq!(e.exit_code(), 1),
            other => panic!("expected the other members to stop, got {other:?}"),
        }
    }
    // The root's folder holds the first epoch, as after a crash of a one-process run.
    assert_eq!(runlog::read_csv(root_dir.path()).unwrap().len(), 1);
    assert_eq!(std::fs::read_dir(others.path()).unwrap().count(), 0);

    // A NaN loss on one member reaches every member through the sum: all diverge alike.
    let nan = Faulty {
        inner: LogReg::new(4, 4),
        step: AtomicUsize::new(0),
        at: 5,
        fault: Fault::NanLoss,
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), 2, adam(0.02));
    let (results, _) = train_in_threads(&[&good, &nan], &data, &opts, &init, others.path());
    for r in &results {
        assert!(matches!(r, Err(TrainError::Diverged { step: 5, .. })), "{r:?}");
    }
    assert_eq!(runlog::read_summary(dir.path()).unwrap().status, "diverged");
}
