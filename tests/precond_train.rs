//! Preconditioner training (`train::precond`) on a 4^4 lattice: the loss falls, the trainer's
//! gradient is the finite-difference gradient of its loss (f64), the network as a solver
//! preconditioner is linear and equals the forward pass, a resumed run repeats the
//! uninterrupted one exactly, divergence stops cleanly, and damaged run folders are clean errors.

use num_complex::Complex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use symc::ir::{Graph, LossSpec};
use symc::lattice::gauge::GaugeField;
use symc::lattice::wilson::WilsonClover;
use symc::runtime::lattice_net::{LatticeNet, LatticeNetOptions};
use symc::solve::Preconditioner;
use symc::train::precond::{self, PrecondError, RunOptions};

fn model_text(steps: usize, lr: f64, loss: &str) -> String {
    format!(
        "network tiny {{
    lattice  4 x 4 x 4 x 4
    input    v: fermion
    symmetry gauge(SU3), translation
    linear(1 -> 2, hops = 1)
    linear(2 -> 1, hops = 1)
    output fermion
}}
train tiny {{
    gauge     generate(beta = 6.0, seed = 3, sweeps = 10)
    operator  wilson_clover(mass = -0.4, csw = 1.0)
    loss      {loss}
    optimizer adam(lr = {lr:e})
    steps     {steps}
    evaluate  fgmres(tol = 1e-8, restart = 30, rhs = 1)
}}
"
    )
}

/// Writes the model into `dir` (so the gauge cache lands there too) and compiles it.
fn setup(dir: &std::path::Path, text: &str) -> (Graph, RunOptions) {
    let file = dir.join("tiny.sym");
    std::fs::write(&file, text).unwrap();
    let graph = symc::sema::load_model(&file).unwrap();
    let mut opts = RunOptions::new(dir.join("run"));
    opts.model_file = Some(file);
    opts.source = Some(text.to_string());
    opts.evaluate = false;
    (graph, opts)
}

fn random_gauge(dims: [usize; 4], seed: u64) -> GaugeField {
    GaugeField::random(dims, &mut ChaCha8Rng::seed_from_u64(seed))
}

#[test]
fn short_training_reduces_the_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let (graph, opts) = setup(tmp.path(), &model_text(150, 1e-2, "preconditioner"));
    let s = precond::run(&graph, &opts).unwrap();
    assert_eq!(s.status, "completed");
    assert_eq!(s.steps, 150);
    let rows = precond::read_loss_csv(&opts.out.join(precond::LOSS_FILE)).unwrap();
    assert_eq!(rows.len(), 150);
    let mean = |r: &[precond::LossRow]| r.iter().map(|x| x.loss).sum::<f64>() / r.len() as f64;
    let (first, last) = (mean(&rows[..5]), mean(&rows[135..]));
    eprintln!("loss {first:.4e} -> {last:.4e}");
    // The near-identity start has loss ~ ||b - v||^2/||b||^2 = O(1); a trained network is
    // far better on fresh vectors (each step draws a new v, so this is generalisation).
    assert!(first > 0.1, "initial loss {first}");
    assert!(last < first / 10.0, "loss {first} -> {last}: no real reduction");
    for f in
        ["checkpoint.safetensors", "loss.csv", "summary.json", "model.sym", "loss.svg", "loss.png"]
    {
        assert!(opts.out.join(f).is_file(), "{f} missing from the run folder");
    }
}

/// Central differences of the f64 loss against the gradient the trainer uses, on every weight
/// of both layers; a gradient off by the factor 2 of the complex convention must fail.
fn check_gradient(loss: LossSpec) {
    let dims = [4, 4, 4, 4];
    let graph =
        symc::sema::compile_str("tiny.sym", &model_text(1, 1e-2, "preconditioner")).unwrap();
    let gauge = random_gauge(dims, 11);
    let net = LatticeNet::<f64>::compile(&graph, &gauge, &LatticeNetOptions::default()).unwrap();
    let d = WilsonClover::<f64>::new(
        &gauge,
        &precond::dirac_params(&graph.train.as_ref().unwrap().operator.clone().unwrap()),
    );
    let mut params: Vec<f64> = precond::params_as(&symc::runtime::init::init_params(&graph, 5));
    // Move away from the near-identity start so that every weight matters.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for p in params.iter_mut() {
        *p += 0.05 * rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut rng);
    }
    let (inp, tgt) = precond::training_pair(&d, dims, &loss, 2, 7);
    let mut grad = vec![0.0; params.len()];
    let l0 = precond::pair_loss_grad(&net, &params, &inp, &tgt, &mut grad).unwrap();
    let l1 = precond::pair_loss(&net, &params, &inp, &tgt).unwrap();
    assert!((l0 - l1).abs() <= 1e-12 * l0.abs(), "{l0} vs {l1}");
    let h = 1e-5;
    let mut worst = 0.0f64;
    let mut worst_half = 0.0f64;
    let step = (params.len() / 97).max(1);
    for k in (0..params.len()).step_by(step) {
        let mut p = params.clone();
        p[k] += h;
        let lp = precond::pair_loss(&net, &p, &inp, &tgt).unwrap();
        p[k] -= 2.0 * h;
        let lm = precond::pair_loss(&net, &p, &inp, &tgt).unwrap();
        let fd = (lp - lm) / (2.0 * h);
        let scale = fd.abs().max(grad[k].abs()).max(1e-3);
        worst = worst.max((fd - grad[k]).abs() / scale);
        worst_half = worst_half.max((fd - 0.5 * grad[k]).abs() / scale);
    }
    eprintln!("{loss:?}: worst relative error {worst:.2e} (negative control {worst_half:.2e})");
    assert!(worst < 1e-6, "gradient differs from finite differences: {worst}");
    assert!(worst_half > 0.1, "the check cannot tell a wrong factor 2: {worst_half}");
}

#[test]
fn trainer_gradient_matches_finite_differences_f64() {
    check_gradient(LossSpec::Preconditioner);
}

#[test]
fn filtered_loss_gradient_matches_finite_differences_f64() {
    check_gradient(LossSpec::Filtered { iterations: 5 });
}

#[test]
fn filtered_vectors_are_low_modes() {
    let gauge = random_gauge([4, 4, 4, 4], 12);
    let d =
        WilsonClover::<f64>::new(&gauge, &symc::lattice::wilson::DiracParams::periodic(-0.4, 1.0));
    // Preconditioner pair: target v/|Dv|, input Dv/|Dv| (so |input| = 1).
    let (b, v) = precond::training_pair(&d, [4; 4], &LossSpec::Preconditioner, 1, 0);
    let nb = symc::lattice::fermion::norm(&b);
    assert!((nb - 1.0).abs() < 1e-12);
    let plain = 1.0 / symc::lattice::fermion::norm(&v); // |D v|/|v| for Gaussian v
    // Filtered pair: target normalised, input D v~; GMRES from the same start lowers |D v|/|v|.
    let (b, v) = precond::training_pair(&d, [4; 4], &LossSpec::Filtered { iterations: 10 }, 1, 0);
    assert!((symc::lattice::fermion::norm(&v) - 1.0).abs() < 1e-12);
    let filtered = symc::lattice::fermion::norm(&b);
    eprintln!("|Dv|/|v|: random {plain:.4}, filtered {filtered:.4}");
    assert!(filtered < 0.5 * plain, "filtering did not suppress high modes: {filtered} vs {plain}");
}

#[test]
fn preconditioner_wrapper_is_linear_and_equals_the_forward_pass() {
    let dims = [4, 4, 4, 4];
    let graph =
        symc::sema::compile_str("tiny.sym", &model_text(1, 1e-2, "preconditioner")).unwrap();
    let gauge = random_gauge(dims, 13);
    let net = LatticeNet::<f32>::compile(&graph, &gauge, &LatticeNetOptions::default()).unwrap();
    let mut params = symc::runtime::init::init_params(&graph, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for p in params.iter_mut() {
        *p += 0.1 * rand_distr::Distribution::<f32>::sample(&rand_distr::StandardNormal, &mut rng);
    }
    let mut m =
        symc::runtime::preconditioner::NetPreconditioner::new(Box::new(net), params.clone())
            .unwrap();
    let rhs = precond::random_rhs(dims, 2, 8);
    let n = rhs[0].len();
    let z = Complex::new(0.0, 0.0);
    let (mut ya, mut yb, mut yc) = (vec![z; n], vec![z; n], vec![z; n]);
    m.apply(&mut ya, &rhs[0]);
    m.apply(&mut yb, &rhs[1]);
    let (al, be) = (Complex::new(0.7, -1.3), Complex::new(-0.4, 0.9));
    let comb: Vec<_> = rhs[0].iter().zip(&rhs[1]).map(|(a, b)| al * a + be * b).collect();
    m.apply(&mut yc, &comb);
    let diff: Vec<_> = (0..n).map(|i| yc[i] - (al * ya[i] + be * yb[i])).collect();
    let rel = symc::lattice::fermion::norm(&diff) / symc::lattice::fermion::norm(&yc);
    assert!(rel < 1e-5, "not linear: {rel}");
    // The same as the network's forward pass on the rounded input.
    let x32: Vec<Complex<f32>> = precond::cast(&rhs[0]);
    let mut y32 = vec![Complex::new(0.0f32, 0.0); n];
    m.net().forward(m.params(), &x32, &mut y32).unwrap();
    let y: Vec<Complex<f64>> = precond::cast(&y32);
    assert_eq!(y, ya);
    assert_eq!(m.applications, 3);
    // A nontrivial map (not the identity), so the comparisons above mean something.
    let d: Vec<_> = (0..n).map(|i| ya[i] - rhs[0][i]).collect();
    assert!(symc::lattice::fermion::norm(&d) > 0.1);
}

#[test]
fn resume_repeats_the_uninterrupted_run_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let text = model_text(40, 1e-2, "filtered(iterations = 3)");
    let (graph, mut opts) = setup(tmp.path(), &text);
    opts.checkpoint_every = 10;
    opts.out = tmp.path().join("whole");
    precond::run(&graph, &opts).unwrap();
    // Interrupted after 20 steps (as if killed after the checkpoint), then resumed to 40.
    let mut part = opts.clone();
    part.out = tmp.path().join("part");
    part.steps = Some(20);
    precond::run(&graph, &part).unwrap();
    // Rows written after the checkpoint of a crashed run are discarded on resume.
    let lp = part.out.join(precond::LOSS_FILE);
    let mut text_csv = std::fs::read_to_string(&lp).unwrap();
    text_csv.push_str("21,0.5,1.0\n");
    std::fs::write(&lp, text_csv).unwrap();
    part.steps = None;
    part.resume = true;
    precond::run(&graph, &part).unwrap();
    let a = precond::read_loss_csv(&opts.out.join(precond::LOSS_FILE)).unwrap();
    let b = precond::read_loss_csv(&part.out.join(precond::LOSS_FILE)).unwrap();
    assert_eq!(a.len(), 40);
    assert_eq!(b.len(), 40);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.step, x.loss.to_bits()), (y.step, y.loss.to_bits()));
    }
    let ca =
        symc::train::checkpoint::load(&opts.out.join(precond::CHECKPOINT_FILE), &graph).unwrap();
    let cb =
        symc::train::checkpoint::load(&part.out.join(precond::CHECKPOINT_FILE), &graph).unwrap();
    assert_eq!(ca.params, cb.params);
    assert_eq!(ca.optimizer, cb.optimizer);
}

#[test]
fn divergence_stops_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (graph, mut opts) = setup(tmp.path(), &model_text(50, 1e30, "preconditioner"));
    opts.checkpoint_every = 1;
    let e = precond::run(&graph, &opts).unwrap_err();
    let PrecondError::Diverged { step, .. } = e else {
        panic!("expected divergence, got {e:?}");
    };
    assert_eq!(e.exit_code(), 1);
    assert!(step < 50);
    let s = precond::read_summary(&opts.out).unwrap();
    assert_eq!(s.status, "diverged");
    let ck =
        symc::train::checkpoint::load(&opts.out.join(precond::CHECKPOINT_FILE), &graph).unwrap();
    assert_eq!(ck.meta["step"], (step - 1).to_string());
    assert!(ck.params.iter().all(|p| p.is_finite()));
}

#[test]
fn damaged_run_folders_are_clean_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (graph, mut opts) = setup(tmp.path(), &model_text(3, 1e-2, "preconditioner"));
    opts.checkpoint_every = 1;
    precond::run(&graph, &opts).unwrap();
    let gauge = random_gauge([4, 4, 4, 4], 1);
    assert!(precond::load_run(&opts.out, &gauge).is_ok());
    // Another volume: global weights transfer.
    let big = random_gauge([4, 4, 4, 8], 2);
    let run = precond::load_run(&opts.out, &big).unwrap();
    assert_eq!(run.graph.lattice.as_ref().unwrap().dims, [4, 4, 4, 8]);
    // Truncated weights.
    let ck = opts.out.join(precond::CHECKPOINT_FILE);
    let bytes = std::fs::read(&ck).unwrap();
    std::fs::write(&ck, &bytes[..bytes.len() / 2]).unwrap();
    let e = precond::load_run(&opts.out, &gauge).err().expect("truncated file accepted");
    assert!(matches!(e, PrecondError::Checkpoint(_)), "{e:?}");
    assert_eq!(e.exit_code(), 2);
    // Garbage.
    std::fs::write(&ck, b"not a safetensors file at all").unwrap();
    assert!(matches!(precond::load_run(&opts.out, &gauge), Err(PrecondError::Checkpoint(_))));
    // Missing folder.
    assert!(precond::load_run(&tmp.path().join("nope"), &gauge).is_err());
}

/// ‖D u − v‖/‖v‖ with the plain-Rust reference operator (the oracle of the JIT kernels).
fn reference_residual(
    gauge: &GaugeField,
    mass: f64,
    inp: &[Complex<f32>],
    tgt: &[Complex<f32>],
) -> f64 {
    let d =
        WilsonClover::<f64>::new(gauge, &symc::lattice::wilson::DiracParams::periodic(mass, 1.0));
    let u: Vec<Complex<f64>> = tgt.iter().map(|z| Complex::new(z.re as f64, z.im as f64)).collect();
    let mut du = vec![Complex::new(0.0, 0.0); u.len()];
    symc::solve::LinearOperator::apply(&d, &mut du, &u);
    let (mut r, mut n) = (0.0f64, 0.0f64);
    for (a, b) in du.iter().zip(inp) {
        let b = Complex::new(b.re as f64, b.im as f64);
        r += (a - b).norm_sqr();
        n += b.norm_sqr();
    }
    (r / n).sqrt()
}

/// The low-mode pairs of the two-term loss solve the Dirac equation: D (target) = input, to the
/// loss's tolerance, checked with the reference operator; the input has unit norm; the two
/// solver paths (plain GMRES on 4⁴, multigrid FGMRES on 8⁴, where 4⁴ blocks tile) agree with it.
#[test]
fn low_mode_pairs_solve_the_dirac_equation() {
    let tmp = tempfile::tempdir().unwrap();
    for (dims, mass, solver) in [([4, 4, 4, 4], -0.4, "gmres"), ([8, 8, 8, 8], -0.45, "mg")] {
        let gauge = random_gauge(dims, 21);
        let dirac = symc::lattice::wilson::DiracParams::periodic(mass, 1.0);
        let mut low = precond::LowModeSolver::new(&gauge, &dirac, 1.0, 1e-4, tmp.path()).unwrap();
        assert_eq!(low.stats.solver, solver);
        for step in 0..2 {
            let (inp, tgt) = low.pair(3, step).unwrap();
            let norm: f64 = inp.iter().map(|z| (z.norm_sqr()) as f64).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "input norm {norm}");
            let res = reference_residual(&gauge, mass, &inp, &tgt);
            // The target is rounded to f32 after the f64 solve: 1e-4 plus a little.
            assert!(res < 2e-4, "{solver} step {step}: ‖D u − v‖/‖v‖ = {res:.2e}");
            // Negative control: the input itself is no solution.
            assert!(reference_residual(&gauge, mass, &inp, &inp) > 0.1);
        }
        assert_eq!(low.stats.solves, 2);
        assert!(low.stats.iterations > 0);
    }
}

/// The two-term loss: the first logged loss is L1 + w·L2 of the initial weights, recomputed
/// here from the pairs (the trainer's sum and weight are what is checked), and the summary
/// records one low-mode solve per step.
#[test]
fn the_two_term_loss_adds_the_weighted_low_mode_term() {
    use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
    let tmp = tempfile::tempdir().unwrap();
    let (graph, opts) =
        setup(tmp.path(), &model_text(4, 1e-2, "preconditioner(low_modes = 0.5, tol = 1e-6)"));
    let s = precond::run(&graph, &opts).unwrap();
    let low = s.low_modes.as_ref().expect("the summary records the low-mode solves");
    assert_eq!((low.solves, low.weight, low.solver.as_str()), (4, 0.5, "gmres"));
    assert!(s.loss.contains("low_modes = 0.5"), "{}", s.loss);
    let rows = precond::read_loss_csv(&opts.out.join(precond::LOSS_FILE)).unwrap();

    let gauge = precond::training_gauge(
        &graph.train.as_ref().unwrap().gauge.clone().unwrap(),
        [4, 4, 4, 4],
        tmp.path(),
        false,
        &Default::default(),
    )
    .unwrap()
    .field;
    let dirac = precond::dirac_params(&graph.train.as_ref().unwrap().operator.clone().unwrap());
    let d32 = JitWilsonClover::<f32>::new(&gauge, &dirac, &DiracOptions::default()).unwrap();
    let seed = graph.train.as_ref().unwrap().seed;
    let net = symc::runtime::compile_fermion_net::<f32>(&graph, &gauge).unwrap();
    let params = symc::runtime::init::init_params(&graph, seed);
    let (i1, t1) = precond::training_pair(&d32, [4, 4, 4, 4], &LossSpec::Preconditioner, seed, 0);
    let l1 = precond::pair_loss(net.as_ref(), &params, &i1, &t1).unwrap();
    let mut low = precond::LowModeSolver::new(&gauge, &dirac, 0.5, 1e-6, tmp.path()).unwrap();
    let (i2, t2) = low.pair(seed, 0).unwrap();
    let l2 = precond::pair_loss(net.as_ref(), &params, &i2, &t2).unwrap();
    let want = l1 + 0.5 * l2;
    eprintln!("step 1: logged {:.6e}, L1 {l1:.4e} + 0.5 L2 {l2:.4e} = {want:.6e}", rows[0].loss);
    assert!((rows[0].loss - want).abs() <= 1e-6 * want, "{} vs {want}", rows[0].loss);
    assert!(l2 > 0.05 * l1, "the low-mode term is negligible: {l2} vs {l1}");
}

/// `--init`: layers of the same name and shape are copied, smaller first two axes are embedded
/// into the leading block, absent layers keep their initial values, any other shape and a run
/// that shares no layer are errors.
#[test]
fn warm_start_copies_embeds_and_refuses_what_does_not_fit() {
    use symc::train::checkpoint;
    let tmp = tempfile::tempdir().unwrap();
    let net = |name: &str, layers: &str| {
        let text = format!(
            "network {name} {{
    lattice  4 x 4 x 4 x 4
    input    v: fermion
    symmetry gauge(SU3), translation
{layers}
    output fermion
}}
"
        );
        symc::sema::compile_str(&format!("{name}.sym"), &text).unwrap()
    };
    let a = net("a", "    linear(1 -> 2, hops = 1)\n    linear(2 -> 1, hops = 1)");
    let b = net(
        "b",
        "    linear(1 -> 2, hops = 1)\n    linear(2 -> 2, hops = 1)\n    linear(2 -> 1, hops = 1)",
    );
    // Distinct values everywhere, so a copy from the wrong place shows.
    let pa: Vec<f32> = (0..a.param_scalars()).map(|i| 1.0 + i as f32).collect();
    let file = tmp.path().join("a.safetensors");
    checkpoint::save(&file, &a, &pa, &[], &Default::default()).unwrap();

    let init = symc::runtime::init::init_params(&b, 1);
    let mut pb = init.clone();
    let w = checkpoint::warm_start(&file, &b, &mut pb).unwrap();
    assert_eq!(w.loaded, ["linear1.weight"]);
    assert_eq!(w.embedded.len(), 1, "{:?}", w.embedded);
    assert_eq!(w.kept, ["linear3.weight"]);
    let (pa1, pb1) = (&a.params[0], &b.params[0]);
    assert_eq!(
        pb[pb1.offset..pb1.offset + pb1.scalar_len()],
        pa[pa1.offset..pa1.offset + pa1.scalar_len()]
    );
    // a's linear2 is [1, 2, 9, 4, 4] (complex): it fills output row 0 of b's [2, 2, 9, 4, 4].
    let (pa2, pb2) = (&a.params[1], &b.params[1]);
    let row = pa2.scalar_len();
    assert_eq!(pb[pb2.offset..pb2.offset + row], pa[pa2.offset..pa2.offset + row]);
    assert_eq!(
        pb[pb2.offset + row..pb2.offset + 2 * row],
        init[pb2.offset + row..pb2.offset + 2 * row]
    );
    let pb3 = &b.params[2];
    assert_eq!(pb[pb3.offset..], init[pb3.offset..]);

    // More paths (hops = 2) is not an embedding: an error naming the layer.
    let c = net("c", "    linear(1 -> 2, hops = 2)");
    let mut pc = symc::runtime::init::init_params(&c, 1);
    let e = checkpoint::warm_start(&file, &c, &mut pc).unwrap_err();
    assert!(
        matches!(e, checkpoint::CheckpointError::WarmStart { .. })
            && e.to_string().contains("linear1"),
        "{e}"
    );
    // Nothing in common: an error, not a silent no-op.
    let d = net("d", "    smooth = linear(1 -> 1, hops = 1)");
    let mut pd = symc::runtime::init::init_params(&d, 1);
    let e = checkpoint::warm_start(&file, &d, &mut pd).unwrap_err();
    assert!(e.to_string().contains("shares no parameter"), "{e}");
}

/// The one-process training step runs on the Dirac kernel's buffers (`NativePair`): its pair
/// is the reference pair (the same counter-based Gaussian vector, b = D v / ‖D v‖), and its
/// loss and weight gradient are those of `pair_loss_grad` on the reference pair (the layer
/// kinds on native buffers are checked one by one in tests/ptc_reference.rs).
#[test]
fn native_training_steps_equal_the_reference_layout_ones() {
    use symc::lattice::wilson::DiracParams;
    use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
    let dims = [4, 4, 4, 8];
    let text = "network deep {
        lattice  4 x 4 x 4 x 8
        input    v: fermion
        symmetry gauge(SU3), translation
        linear(1 -> 2, hops = 1)
        linear(2 -> 1, hops = 1)
        output fermion
    }";
    let graph = symc::sema::compile_str("deep.sym", text).expect("model compiles");
    let gauge = random_gauge(dims, 13);
    let d = JitWilsonClover::<f32>::new(
        &gauge,
        &DiracParams::periodic(-0.3, 1.0),
        &DiracOptions::default(),
    )
    .unwrap();
    let net = symc::runtime::compile_fermion_net::<f32>(&graph, &gauge).unwrap();
    let params = symc::runtime::init::init_params(&graph, 4);
    let layout = d.layout();
    let rel = |a: &[Complex<f32>], b: &[Complex<f32>]| {
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for (x, y) in a.iter().zip(b) {
            num += f64::from((x - y).norm_sqr());
            den += f64::from(y.norm_sqr());
        }
        (num / den).sqrt()
    };
    let mut pair = precond::NativePair::default();
    let mut g = vec![0.0f32; params.len()];
    assert!(
        pair.loss_grad(net.as_ref(), &params, layout, &mut g).is_err(),
        "a loss before any pair was drawn must be an error, not a panic"
    );
    for step in [0u64, 5] {
        let (inp, tgt) = precond::training_pair(&d, dims, &LossSpec::Preconditioner, 3, step);
        pair.draw(&d, layout, None, net.native_buffer_len(), 3, step).unwrap();
        let mut back = vec![Complex::new(0.0f32, 0.0); inp.len()];
        layout.from_aosoa(&pair.input, &mut back);
        let e_in = rel(&back, &inp);
        layout.from_aosoa(&pair.target, &mut back);
        let e_tgt = rel(&back, &tgt);
        let mut g_ref = vec![0.0f32; params.len()];
        let l_ref = precond::pair_loss_grad(net.as_ref(), &params, &inp, &tgt, &mut g_ref).unwrap();
        let mut g = vec![0.0f32; params.len()];
        let l = pair.loss_grad(net.as_ref(), &params, layout, &mut g).unwrap();
        let norm = g_ref.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let e_grad =
            g.iter().zip(&g_ref).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>().sqrt() / norm;
        eprintln!(
            "step {step}: input {e_in:.1e}, target {e_tgt:.1e}, loss {l:.6e} vs {l_ref:.6e}, \
             gradient {e_grad:.1e}"
        );
        assert!(e_in < 1e-6 && e_tgt < 1e-6, "the native pair is not the reference pair");
        assert!((l - l_ref).abs() < 1e-5 * l_ref, "loss {l} vs {l_ref}");
        assert!(e_grad < 1e-5, "native gradient vs reference-layout gradient {e_grad:e}");
        assert!(norm > 0.0 && l_ref > 1e-3, "a check on nothing");
    }
}

/// The training vectors are counter-based: drawn site by site in any order (here reversed,
/// one thread) they are the parallel draw, a split run's sites are the same numbers, other
/// steps give other vectors, and the components are N(0, 1/2).
#[test]
fn training_vectors_do_not_depend_on_the_order_of_the_sites() {
    use symc::lattice::fermion::{FermionField, GaussianStream};
    let dims = [4, 4, 4, 8];
    let whole = FermionField::<f64>::gaussian_counter(dims, 3, 17).data;
    let mut g = GaussianStream::new(3, 17);
    let mut reversed = vec![Complex::new(0.0, 0.0); whole.len()];
    for s in (0..whole.len() / 12).rev() {
        g.site(s, &mut reversed[12 * s..12 * s + 12]);
    }
    assert_eq!(whole, reversed);
    let other = FermionField::<f64>::gaussian_counter(dims, 3, 18).data;
    assert!(whole.iter().zip(&other).all(|(a, b)| a != b), "steps share numbers");
    let xs: Vec<f64> = whole.iter().flat_map(|z| [z.re, z.im]).collect();
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    // 12288 samples: the mean's standard error is 0.0064, the variance's 0.0064.
    assert!(mean.abs() < 0.03, "mean {mean}");
    assert!((var - 0.5).abs() < 0.03, "variance {var}");
}
