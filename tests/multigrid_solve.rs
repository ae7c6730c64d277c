//! The two-level multigrid preconditioner end to end on a small thermalised lattice (4³×8,
//! β = 6): it cuts FGMRES iterations, its f32 cycle on the Dirac kernel's layout agrees with
//! the f64 cycle, every smoother variant converges, the set-up is reproducible from its seed,
//! the basis cache is reused only for the same set-up, and a singular coarse operator is an
//! error. Solutions are checked with an independent residual of the plain reference operator.

mod common;

use common::{residual, zeros};
use num_complex::Complex64;
use symc::lattice::blocks::{BlockBasis, Blocking};
use symc::lattice::coarse::CoarseOperator;
use symc::lattice::fermion;
use symc::lattice::gauge::GaugeField;
use symc::lattice::heatbath::{HeatbathParams, generate};
use symc::lattice::wilson::{DiracParams, WilsonClover};
use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
use symc::runtime::multigrid::{
    BasisSource, Multigrid, MultigridError, MultigridParams, SetupPrecision, check_coarse_operator,
    start_vectors,
};
use symc::solve::multigrid::{CoarseGuess, CycleParams, NearNullParams, Smoother};
use symc::solve::{self, MixedWorkspace, NativeOperator, NativePreconditioner, SolveParams};

type C = Complex64;

const DIMS: [usize; 4] = [4, 4, 4, 8];
/// Near the critical mass of this configuration: ~300 unpreconditioned GMRES(30) iterations.
const MASS: f64 = -0.75;

fn thermalised() -> GaugeField {
    generate(DIMS, &HeatbathParams::new(6.0, 20, 3), |_, _| {}).0
}

fn params() -> MultigridParams {
    MultigridParams {
        blocks: [2, 2, 2, 4],
        n_basis: 8,
        setup: NearNullParams { iterations: 40, restart: 20, tol: 1e-7 },
        ..MultigridParams::reference()
    }
}

fn source(seed: u64) -> Vec<C> {
    let mut b = start_vectors(DIMS, 1, seed).remove(0);
    let n = fermion::norm(&b);
    b.iter_mut().for_each(|z| *z /= n);
    b
}

#[test]
fn multigrid_cuts_fgmres_iterations() {
    let gauge = thermalised();
    let dirac = DiracParams::periodic(MASS, 1.0);
    let d = WilsonClover::<f64>::new(&gauge, &dirac);
    let b = source(100);
    let sp = SolveParams { tol: 1e-10, restart: 30, max_iterations: 5000 };
    let mut x = zeros(b.len());
    let plain = solve::gmres(&d, &b, &mut x, &sp);
    assert!(plain.converged && residual(&d, &b, &x) <= 1e-10);

    let mut mg = Multigrid::build(&gauge, &dirac, &params()).unwrap();
    let mut x = zeros(b.len());
    let rep = solve::fgmres(&d, &mut mg, &b, &mut x, &sp);
    let r = residual(&d, &b, &x);
    let (s64, _) = mg.stats();
    eprintln!(
        "unpreconditioned {} its; MG {} its, {} fine + {} coarse applications inside; set-up {:.3} s",
        plain.iterations,
        rep.iterations,
        s64.fine_applications,
        s64.coarse_applications,
        mg.setup_report().total_seconds
    );
    assert!(rep.converged && r <= 1e-10, "{rep:?} residual {r:e}");
    assert!(plain.iterations > 150, "too easy a problem: {}", plain.iterations);
    assert!(
        rep.iterations * 6 < plain.iterations,
        "MG {} vs unpreconditioned {}",
        rep.iterations,
        plain.iterations
    );
    assert_eq!(s64.cycles, rep.preconditioner_applications);
    // Reference cycle: 8 GMRES(4) iterations = 8 + 2 residuals per cycle.
    assert_eq!(s64.fine_applications, 10 * s64.cycles);
}

/// One cycle in f64 on the reference layout and in f32 on the Dirac kernel's buffers: the same
/// map to f32 accuracy (fixed iteration counts, so no stopping decision can differ).
#[test]
fn native_and_f64_cycles_agree() {
    let gauge = thermalised();
    let dirac = DiracParams::periodic(MASS, 1.0);
    let mut mg = Multigrid::build(&gauge, &dirac, &params()).unwrap();
    for cycle in [
        CycleParams {
            coarse: SolveParams { tol: 0.0, restart: 10, max_iterations: 20 },
            ..CycleParams::reference()
        },
        CycleParams {
            coarse: SolveParams { tol: 0.0, restart: 25, max_iterations: 25 },
            coarse_guess: CoarseGuess::Zero,
            pre: Smoother::MinRes { iterations: 2 },
            post: Smoother::MinRes { iterations: 3 },
        },
    ] {
        mg.set_cycle(cycle);
        let b = source(101);
        let mut want = zeros(b.len());
        solve::Preconditioner::apply(&mut mg, &mut want, &b);
        let d32 = JitWilsonClover::<f32>::new(&gauge, &dirac, &DiracOptions::default()).unwrap();
        let mut native = mg.native();
        let len = native.buffer_len();
        let (mut inp, mut out) = (vec![0.0f32; len], vec![0.0f32; len]);
        d32.import(&b, &mut inp);
        native.apply(&mut out, &mut inp).unwrap();
        let mut got = zeros(b.len());
        d32.export(&out, &mut got);
        let mut diff = zeros(b.len());
        fermion::sub(&mut diff, &got, &want);
        let e = fermion::norm(&diff) / fermion::norm(&want);
        assert!(e < 2e-5, "{cycle:?}: f32 vs f64 cycle {e:e}");
        let (s64, s32) = mg.stats();
        assert_eq!(s64.fine_applications, s32.fine_applications);
        assert_eq!(s64.coarse_applications, s32.coarse_applications);
        mg.reset_stats();
    }
}

#[test]
fn mixed_fgmres_with_multigrid_reaches_double_precision() {
    let gauge = thermalised();
    let dirac = DiracParams::periodic(MASS, 1.0);
    let d = WilsonClover::<f64>::new(&gauge, &dirac);
    let d64 = JitWilsonClover::<f64>::new(&gauge, &dirac, &DiracOptions::default()).unwrap();
    let d32 = JitWilsonClover::<f32>::new(&gauge, &dirac, &DiracOptions::default()).unwrap();
    let mut mg = Multigrid::build(&gauge, &dirac, &params()).unwrap();
    assert!(mg.dirac32().layout().same_sites(d32.layout()));
    let sp = SolveParams { tol: 1e-11, restart: 30, max_iterations: 2000 };
    let mut ws = MixedWorkspace::new();
    for seed in [102, 103] {
        let b = source(seed);
        let mut x = zeros(b.len());
        let rep = {
            let mut native = mg.native();
            solve::fgmres_mixed(&mut ws, &d64, &d32, &mut native, &b, &mut x, &sp).unwrap()
        };
        let r = residual(&d, &b, &x);
        assert!(rep.converged && r <= 1e-11, "{rep:?} {r:e}");
        assert!(rep.iterations < 60, "{}", rep.iterations);
    }
}

/// Every smoother (GMRES, MR; pre, post, both) and both coarse starts make a converging
/// preconditioner. (Without any smoother the cycle is P D_c⁻¹ P†, of rank n_basis per block:
/// a singular preconditioner no outer solver can converge with, so it is not listed.)
#[test]
fn every_cycle_variant_converges() {
    let gauge = thermalised();
    let dirac = DiracParams::periodic(MASS, 1.0);
    let d = WilsonClover::<f64>::new(&gauge, &dirac);
    let mut mg = Multigrid::build(&gauge, &dirac, &params()).unwrap();
    let b = source(104);
    let sp = SolveParams { tol: 1e-10, restart: 30, max_iterations: 3000 };
    let coarse = SolveParams { tol: 5e-2, restart: 25, max_iterations: 50 };
    for (pre, post, guess) in [
        (Smoother::Gmres { restart: 4, iterations: 8 }, Smoother::None, CoarseGuess::Restricted),
        (Smoother::None, Smoother::MinRes { iterations: 4 }, CoarseGuess::Zero),
        (
            Smoother::Gmres { restart: 4, iterations: 4 },
            Smoother::Gmres { restart: 4, iterations: 4 },
            CoarseGuess::Zero,
        ),
        (
            Smoother::MinRes { iterations: 3 },
            Smoother::Gmres { restart: 3, iterations: 6 },
            CoarseGuess::Restricted,
        ),
    ] {
        mg.set_cycle(CycleParams { coarse, coarse_guess: guess, pre, post });
        let mut x = zeros(b.len());
        let rep = solve::fgmres(&d, &mut mg, &b, &mut x, &sp);
        let r = residual(&d, &b, &x);
        assert!(rep.converged && r <= 1e-10, "{pre:?}/{post:?}: {} its, {r:e}", rep.iterations);
    }
}

#[test]
fn the_setup_is_reproducible_from_its_seed() {
    let gauge = thermalised();
    let dirac = DiracParams::periodic(MASS, 1.0);
    let p = MultigridParams { setup_precision: SetupPrecision::F64, ..params() };
    let a = Multigrid::build(&gauge, &dirac, &p).unwrap();
    let b = Multigrid::build(&gauge, &dirac, &p).unwrap();
    let c = Multigrid::build(&gauge, &dirac, &MultigridParams { seed: 2, ..p.clone() }).unwrap();
    let diff = |x: &Multigrid, y: &Multigrid| {
        (0..x.basis().n_basis())
            .map(|k| {
                let mut d = zeros(x.basis().fine_len());
                fermion::sub(&mut d, x.basis().vector(k), y.basis().vector(k));
                fermion::norm(&d)
            })
            .fold(0.0f64, f64::max)
    };
    // Equal up to the summation order of parallel reductions in the set-up GMRES.
    assert!(diff(&a, &b) < 1e-12, "same seed: {:e}", diff(&a, &b));
    assert!(diff(&a, &c) > 0.1, "another seed must give another basis");
}

#[test]
fn the_basis_cache_is_reused_only_for_the_same_setup() {
    let gauge = thermalised();
    let dirac = DiracParams::periodic(MASS, 1.0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mg_basis.safetensors");
    let first = Multigrid::build_cached(&gauge, &dirac, &params(), &path).unwrap();
    assert_eq!(first.setup_report().source, BasisSource::Generated);
    assert!(!first.setup_report().near_null_iterations.is_empty());
    let meta = symc::lattice::io::basis::read_metadata(&path).unwrap();
    for key in ["gauge_crc32", "gauge_plaquette", "mass", "csw", "blocks", "n_basis", "seed"] {
        assert!(meta.contains_key(key), "metadata lacks {key}: {meta:?}");
    }

    let again = Multigrid::build_cached(&gauge, &dirac, &params(), &path).unwrap();
    assert_eq!(again.setup_report().source, BasisSource::Cached { path: path.clone() });
    assert!(again.setup_report().near_null_iterations.is_empty());
    for k in 0..first.basis().n_basis() {
        assert_eq!(first.basis().vector(k), again.basis().vector(k), "cached basis differs");
    }
    assert_eq!(first.coarse_operator().coeffs(), again.coarse_operator().coeffs());

    // Another mass: regenerated, with the reason, and the file now holds the new key.
    let other = DiracParams::periodic(MASS + 0.05, 1.0);
    let re = Multigrid::build_cached(&gauge, &other, &params(), &path).unwrap();
    match &re.setup_report().source {
        BasisSource::Regenerated { reason, .. } => assert!(reason.contains("mass"), "{reason}"),
        s => panic!("expected a regeneration, got {s:?}"),
    }
    // Another configuration (one link changed) is recognised by its fingerprint.
    let mut g2 = gauge.clone();
    g2.links[5] = g2.links[6];
    let re = Multigrid::build_cached(&g2, &other, &params(), &path).unwrap();
    match &re.setup_report().source {
        BasisSource::Regenerated { reason, .. } => {
            assert!(reason.contains("gauge_crc32"), "{reason}")
        }
        s => panic!("expected a regeneration, got {s:?}"),
    }
    // A damaged file is regenerated, not fatal.
    std::fs::write(&path, b"not a basis").unwrap();
    let re = Multigrid::build_cached(&g2, &other, &params(), &path).unwrap();
    assert!(matches!(re.setup_report().source, BasisSource::Regenerated { .. }));
}

#[test]
fn user_errors_come_back_as_errors() {
    let gauge = thermalised();
    let dirac = DiracParams::periodic(MASS, 1.0);
    let bad_blocks = MultigridParams { blocks: [3, 2, 2, 4], ..params() };
    let e = Multigrid::build(&gauge, &dirac, &bad_blocks).err().expect("blocks 3 on extent 4");
    assert!(matches!(e, MultigridError::Blocks(_)), "{e}");
    let too_many = MultigridParams { blocks: [1, 1, 1, 1], n_basis: 13, ..params() };
    let e = Multigrid::build(&gauge, &dirac, &too_many).err().expect("13 > 12 dof");
    assert!(e.to_string().contains("degrees of freedom"), "{e}");
}

/// Free field at m = 0: the 12 constant spinors are exact zero modes of D, and a basis that
/// spans them makes P† D P singular.
#[test]
fn a_singular_coarse_operator_is_an_error() {
    let dims = [4, 4, 4, 4];
    let gauge = GaugeField::unit(dims);
    let d = WilsonClover::<f64>::new(&gauge, &DiracParams::periodic(0.0, 1.0));
    let constants: Vec<Vec<C>> = (0..12)
        .map(|c| {
            let mut v = zeros(256 * 12);
            v.iter_mut().skip(c).step_by(12).for_each(|z| *z = C::new(1.0, 0.0));
            v
        })
        .collect();
    let basis =
        BlockBasis::orthonormalize(Blocking::new(dims, [2, 2, 2, 2]).unwrap(), constants, false)
            .unwrap();
    let dc = CoarseOperator::galerkin(&d, &basis);
    match check_coarse_operator(&dc, 1) {
        Err(e @ MultigridError::SingularCoarse { .. }) => {
            assert!(e.to_string().contains("singular"), "{e}")
        }
        other => panic!("expected a singular coarse operator, got {other:?}"),
    }
    // At m = 0.1 the same basis gives a regular one.
    let d = WilsonClover::<f64>::new(&gauge, &DiracParams::periodic(0.1, 1.0));
    assert!(check_coarse_operator(&CoarseOperator::galerkin(&d, &basis), 1).is_ok());
}
