//! The mixed-precision (F)GMRES (`solve::gmres_mixed`, `solve::fgmres_mixed`): f32 restart
//! cycles on the JIT kernels' own layout, f64 residuals. Oracles: the known solution of
//! b = D x* and the plain f64 reference operator (independent of both JIT kernels), the
//! all-f64 GMRES (iteration counts must agree to first order, since every cycle solves the same
//! correction equation), and the network applied through the reference layout (the native
//! path must give the same preconditioned solve).

mod common;

use common::{residual, zeros};
use num_complex::Complex64;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use symc::lattice::fermion::{self, FermionField};
use symc::lattice::gauge::GaugeField;
use symc::lattice::wilson::{DiracParams, WilsonClover};
use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
use symc::runtime::lattice_net::{LatticeNet, LatticeNetOptions};
use symc::runtime::preconditioner::NetPreconditioner;
use symc::solve::{self, MixedWorkspace, NativeOperator, NativePreconditioner, SolveParams};
use symc::train::precond;

type C = Complex64;

struct Problem {
    gauge: GaugeField,
    reference: WilsonClover<f64>,
    d64: JitWilsonClover<f64>,
    d32: JitWilsonClover<f32>,
    b: Vec<C>,
    xstar: Vec<C>,
}

fn problem(dims: [usize; 4], mass: f64, seed: u64) -> Problem {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gauge = GaugeField::random(dims, &mut rng);
    let p = DiracParams::antiperiodic_time(mass, 1.0);
    let reference = WilsonClover::<f64>::new(&gauge, &p);
    let d64 = JitWilsonClover::<f64>::new(&gauge, &p, &DiracOptions::default()).unwrap();
    let d32 = JitWilsonClover::<f32>::new(&gauge, &p, &DiracOptions::default()).unwrap();
    let xstar = FermionField::<f64>::random_gaussian(dims, &mut rng).data;
    let mut b = zeros(xstar.len());
    reference.apply(&mut b, &xstar);
    Problem { gauge, reference, d64, d32, b, xstar }
}

#[test]
fn mixed_gmres_reaches_double_precision_accuracy() {
    let p = problem([4, 4, 4, 8], -0.2, 1);
    // 1e-11 is four orders below what an f32 operator alone can reach (~1e-6): only the f64
    // residual updates at the restarts can get there.
    let params = SolveParams { tol: 1e-11, restart: 20, max_iterations: 5000 };
    let mut x = zeros(p.b.len());
    let rep = solve::gmres_mixed(&mut MixedWorkspace::new(), &p.d64, &p.d32, &p.b, &mut x, &params)
        .unwrap();
    assert!(rep.converged, "{rep:?}");
    let r = residual(&p.reference, &p.b, &x);
    assert!(r <= 1e-11, "independent residual {r:e}");
    assert!((r - rep.true_residual).abs() <= 1e-3 * 1e-11 + 1e-3 * r, "reported {rep:?}, {r:e}");
    let mut e = zeros(x.len());
    fermion::sub(&mut e, &x, &p.xstar);
    let err = fermion::norm(&e) / fermion::norm(&p.xstar);
    assert!(err < 1e-8, "solution error {err:e}");
    // Bookkeeping: one history entry per iteration plus the start; one f32 application per
    // iteration plus one f64 residual per cycle and the initial one.
    assert_eq!(rep.history.len(), rep.iterations + 1);
    // (A cycle may end early when its f32 estimate claims convergence the f64 residual then
    // denies; that adds a cycle, never removes one.)
    let cycles = rep.iterations.div_ceil(params.restart);
    let residuals = rep.operator_applications - rep.iterations;
    assert!((cycles + 1..=cycles + 3).contains(&residuals), "{residuals} f64 residuals");
}

#[test]
fn mixed_and_f64_gmres_need_the_same_iterations() {
    // Near the critical mass of this random (strong-coupling) field: ~150 iterations, 5 cycles.
    let p = problem([4, 4, 4, 8], -1.45, 2);
    let params = SolveParams { tol: 1e-9, restart: 30, max_iterations: 20_000 };
    let mut x = zeros(p.b.len());
    let f64rep = solve::gmres(&p.reference, &p.b, &mut x, &params);
    let mut x = zeros(p.b.len());
    let mixed =
        solve::gmres_mixed(&mut MixedWorkspace::new(), &p.d64, &p.d32, &p.b, &mut x, &params)
            .unwrap();
    eprintln!("iterations: f64 {} mixed {}", f64rep.iterations, mixed.iterations);
    assert!(f64rep.converged && mixed.converged);
    assert!(f64rep.iterations > 60, "too easy a problem to compare: {}", f64rep.iterations);
    let diff = (f64rep.iterations as f64 - mixed.iterations as f64).abs();
    assert!(
        diff <= 0.03 * f64rep.iterations as f64 + 2.0,
        "mixed precision changed the iteration count: {} vs {}",
        mixed.iterations,
        f64rep.iterations
    );
    assert!(residual(&p.reference, &p.b, &x) <= 1e-9);
}

fn tiny_net(p: &Problem) -> (LatticeNet<f32>, Vec<f32>) {
    let text = "network tiny {
    lattice  4 x 4 x 4 x 8
    input    v: fermion
    symmetry gauge(SU3), translation
    linear(1 -> 2, hops = 1)
    linear(2 -> 1, hops = 1)
    output fermion
}";
    let graph = symc::sema::compile_str("tiny.sym", text).unwrap();
    let net = LatticeNet::<f32>::compile(&graph, &p.gauge, &LatticeNetOptions::default()).unwrap();
    let mut params = symc::runtime::init::init_params(&graph, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for w in params.iter_mut() {
        *w += 0.05 * rand_distr::Distribution::<f32>::sample(&rand_distr::StandardNormal, &mut rng);
    }
    (net, params)
}

#[test]
fn network_on_native_buffers_equals_the_reference_layout_forward() {
    let p = problem([4, 4, 4, 8], -0.3, 3);
    let (net, params) = tiny_net(&p);
    let v: Vec<num_complex::Complex<f32>> = precond::cast(&p.xstar);
    let mut want = vec![num_complex::Complex::new(0.0f32, 0.0); v.len()];
    net.forward(&params, &v, &mut want).unwrap();
    let mut prec = NetPreconditioner::new(Box::new(net), params).unwrap();
    let layout = p.d32.layout().clone();
    let mut native = prec.native(&layout);
    let len = native.buffer_len().max(p.d32.buffer_len());
    let (mut inp, mut out) = (vec![0.0f32; len], vec![0.0f32; len]);
    p.d32.import(&p.xstar, &mut inp);
    native.apply(&mut out, &mut inp).unwrap();
    let mut got = zeros(v.len());
    p.d32.export(&out, &mut got);
    // Same kernels, same f32 arithmetic, same roundings at the boundary: bit for bit equal.
    let w: Vec<C> = precond::cast(&want);
    assert!(got == w, "native and reference-layout forward passes differ");
    assert!(fermion::norm(&w) > 0.1, "a trivial output would make the comparison vacuous");
    assert_eq!(prec.applications, 1);
}

#[test]
fn mixed_fgmres_with_a_network_matches_the_f64_solve() {
    let p = problem([4, 4, 4, 8], -1.45, 4);
    let (net, params) = tiny_net(&p);
    let mut prec = NetPreconditioner::new(Box::new(net), params).unwrap();
    let sp = SolveParams { tol: 1e-10, restart: 30, max_iterations: 20_000 };
    let mut x = zeros(p.b.len());
    let f64rep = solve::fgmres(&p.reference, &mut prec, &p.b, &mut x, &sp);
    let layout = p.d32.layout().clone();
    let mut x = zeros(p.b.len());
    let mixed = solve::fgmres_mixed(
        &mut MixedWorkspace::new(),
        &p.d64,
        &p.d32,
        &mut prec.native(&layout),
        &p.b,
        &mut x,
        &sp,
    )
    .unwrap();
    eprintln!("fgmres iterations: f64 {} mixed {}", f64rep.iterations, mixed.iterations);
    assert!(mixed.converged && f64rep.converged);
    assert!(residual(&p.reference, &p.b, &x) <= 1e-10);
    // The network is linear: one application per iteration plus one per restart cycle for
    // the correction M (V y) (see `NativePreconditioner::is_fixed_linear`).
    let cycles = mixed.iterations.div_ceil(sp.restart);
    assert_eq!(mixed.preconditioner_applications, mixed.iterations + cycles);
    let diff = (f64rep.iterations as f64 - mixed.iterations as f64).abs();
    assert!(diff <= 0.03 * f64rep.iterations as f64 + 2.0, "{mixed:?} vs {f64rep:?}");
}

/// The same network seen as a flexible preconditioner (FGMRES stores every z_j = M v_j)
/// and as a fixed linear one (z_j not stored, the correction is M (V y)): the same iterates
/// up to f32 rounding, so the same iteration count within rounding, and both reach the f64
/// tolerance.
#[test]
fn a_fixed_linear_network_needs_no_stored_z_vectors() {
    struct Flexible<'a, P: NativePreconditioner>(&'a mut P);
    impl<P: NativePreconditioner> NativePreconditioner for Flexible<'_, P> {
        fn buffer_len(&self) -> usize {
            self.0.buffer_len()
        }
        fn apply(&mut self, out: &mut [f32], inp: &mut [f32]) -> Result<(), String> {
            self.0.apply(out, inp)
        }
    }
    let p = problem([4, 4, 4, 8], -1.45, 6);
    let (net, params) = tiny_net(&p);
    let mut prec = NetPreconditioner::new(Box::new(net), params).unwrap();
    let layout = p.d32.layout().clone();
    let sp = SolveParams { tol: 1e-10, restart: 20, max_iterations: 20_000 };
    let mut ws = MixedWorkspace::new();
    let mut x_fixed = zeros(p.b.len());
    let mut native = prec.native(&layout);
    assert!(native.is_fixed_linear(), "a PTC-only network is linear");
    let fixed =
        solve::fgmres_mixed(&mut ws, &p.d64, &p.d32, &mut native, &p.b, &mut x_fixed, &sp).unwrap();
    let mut x_flex = zeros(p.b.len());
    let mut native = prec.native(&layout);
    let mut flex = Flexible(&mut native);
    let flexible =
        solve::fgmres_mixed(&mut ws, &p.d64, &p.d32, &mut flex, &p.b, &mut x_flex, &sp).unwrap();
    eprintln!("iterations: fixed {} flexible {}", fixed.iterations, flexible.iterations);
    assert!(fixed.converged && flexible.converged);
    assert!(fixed.iterations > sp.restart, "too easy a problem to see restarts");
    assert!(residual(&p.reference, &p.b, &x_fixed) <= 1e-10);
    assert!(residual(&p.reference, &p.b, &x_flex) <= 1e-10);
    assert_eq!(flexible.preconditioner_applications, flexible.iterations);
    let diff = (fixed.iterations as f64 - flexible.iterations as f64).abs();
    assert!(diff <= 0.02 * flexible.iterations as f64 + 1.0, "{fixed:?} vs {flexible:?}");
}

/// A workspace reused from earlier solves (other right-hand sides, with and without a network,
/// one of them stopped early) gives bit-identical solves: no buffer is read before it is written.
#[test]
fn a_reused_workspace_gives_identical_solves() {
    let p = problem([4, 4, 4, 8], -1.45, 5);
    let (net, params) = tiny_net(&p);
    let mut prec = NetPreconditioner::new(Box::new(net), params).unwrap();
    let layout = p.d32.layout().clone();
    let sp = SolveParams { tol: 1e-9, restart: 30, max_iterations: 20_000 };
    let solve_both = |ws: &mut MixedWorkspace, prec: &mut NetPreconditioner| {
        let mut x1 = zeros(p.b.len());
        let r1 = solve::gmres_mixed(ws, &p.d64, &p.d32, &p.b, &mut x1, &sp).unwrap();
        let mut x2 = zeros(p.b.len());
        let mut native = prec.native(&layout);
        let r2 = solve::fgmres_mixed(ws, &p.d64, &p.d32, &mut native, &p.b, &mut x2, &sp).unwrap();
        (x1, r1.iterations, x2, r2.iterations)
    };
    let fresh = solve_both(&mut MixedWorkspace::new(), &mut prec);
    // Dirty the workspace: other sources, a truncated solve, then the same solves again.
    let mut ws = MixedWorkspace::new();
    for seed in [11u64, 12] {
        let other = problem([4, 4, 4, 8], -1.45, seed);
        let mut x = zeros(p.b.len());
        let short = SolveParams { tol: 1e-9, restart: 30, max_iterations: 17 };
        solve::gmres_mixed(&mut ws, &p.d64, &p.d32, &other.b, &mut x, &short).unwrap();
        let mut native = prec.native(&layout);
        solve::fgmres_mixed(&mut ws, &p.d64, &p.d32, &mut native, &other.b, &mut x, &sp).unwrap();
    }
    let reused = solve_both(&mut ws, &mut prec);
    assert!(fresh.1 > 30 && fresh.3 > 0, "too easy a problem: {} / {}", fresh.1, fresh.3);
    assert_eq!((fresh.1, fresh.3), (reused.1, reused.3));
    assert!(fresh.0 == reused.0, "GMRES solution differs with a reused workspace");
    assert!(fresh.2 == reused.2, "FGMRES solution differs with a reused workspace");
}

/// A preconditioner that breaks (NaN output) ends the solve unconverged after one cycle
/// instead of looping or returning a wrong "converged" answer.
#[test]
fn a_nan_preconditioner_stops_the_solve_unconverged() {
    struct Broken;
    impl NativePreconditioner for Broken {
        fn buffer_len(&self) -> usize {
            0
        }
        fn apply(&mut self, out: &mut [f32], _inp: &mut [f32]) -> Result<(), String> {
            out.iter_mut().for_each(|o| *o = f32::NAN);
            Ok(())
        }
    }
    let p = problem([4, 4, 4, 8], -0.3, 5);
    let sp = SolveParams { tol: 1e-8, restart: 10, max_iterations: 1000 };
    let mut x = zeros(p.b.len());
    let rep = solve::fgmres_mixed(
        &mut MixedWorkspace::new(),
        &p.d64,
        &p.d32,
        &mut Broken,
        &p.b,
        &mut x,
        &sp,
    )
    .unwrap();
    assert!(!rep.converged);
    assert!(rep.iterations <= sp.restart, "kept iterating on NaN: {}", rep.iterations);
    // A failing kernel is an error, not a result.
    struct Failing;
    impl NativePreconditioner for Failing {
        fn buffer_len(&self) -> usize {
            0
        }
        fn apply(&mut self, _out: &mut [f32], _inp: &mut [f32]) -> Result<(), String> {
            Err("refused".into())
        }
    }
    let mut x = zeros(p.b.len());
    let err = solve::fgmres_mixed(
        &mut MixedWorkspace::new(),
        &p.d64,
        &p.d32,
        &mut Failing,
        &p.b,
        &mut x,
        &sp,
    )
    .unwrap_err();
    assert!(err.to_string().contains("preconditioner") && err.to_string().contains("refused"));
}
