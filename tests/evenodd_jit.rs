//! The compiled even-odd Schur operator (`runtime::schur::JitSchur`) and the even-odd solve
//! (`runtime::evenodd_solve`) against the plain-Rust reference `lattice::evenodd::Schur`:
//! D̂ and D̂† of every variant to round-off in f64 and f32 (random fields with twisted boundary
//! phases on several shapes, and the real 8⁴ DDalphaAMG configuration), the adjoint identity
//! on the compiled kernels, `prepare`/`reconstruct`, the native (f32 layout) operator, solves
//! whose full-system residual ‖b − D x‖/‖b‖ is recomputed here with `WilsonClover`, a plugged-in
//! preconditioner, and clear errors for lattices the layout cannot handle. The data-backed
//! tests skip loudly without `../shared/data` (or `$SYMC_DATA`).

mod common;

use common::{random_gauge, random_vec, rel_diff, residual, twisted, zeros};
use num_complex::{Complex, Complex64};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use symc::lattice::evenodd::{EvenOdd, EvenOddError, Schur, SchurVariant};
use symc::lattice::fermion::{self, FermionField};
use symc::lattice::gauge::GaugeField;
use symc::lattice::wilson::{DiracParams, WilsonClover};
use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
use symc::runtime::evenodd_solve::{
    EvenOddOptions, EvenOddSolveError, EvenOddSolver, ReducedPreconditioner, ReducedSolver,
    SolvePrecision,
};
use symc::runtime::schur::{JitSchur, JitSchurError};
use symc::solve::{
    self, AdjointOperator, FnPreconditioner, LinearOperator, NativeOperator, NativePreconditioner,
    SolveParams,
};

type C = Complex64;

const VARIANTS: [SchurVariant; 3] =
    [SchurVariant::Plain, SchurVariant::LeftNormalised, SchurVariant::RightNormalised];

/// A normalised random source on the full lattice.
fn source(dims: [usize; 4], seed: u64) -> Vec<C> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut b = FermionField::<f64>::random_gaussian(dims, &mut rng).data;
    let nb = fermion::norm(&b);
    fermion::scale(C::new(1.0 / nb, 0.0), &mut b);
    b
}

fn to32(v: &[C]) -> Vec<Complex<f32>> {
    fermion::cast_slice::<f64, f32>(v)
}

fn to64(v: &[Complex<f32>]) -> Vec<C> {
    fermion::cast_slice::<f32, f64>(v)
}

/// The largest relative error of the compiled D̂ and D̂† (f64 and, where the layout exists,
/// f32) against the reference `Schur<f64>` on one random vector, for every variant; asserts
/// the f64 error below `tol64` and the f32 error below `tol32`.
fn check_against_reference(
    gauge: &GaugeField,
    p: &DiracParams,
    with_f32: bool,
    tol64: f64,
    tol32: f64,
    rng: &mut ChaCha8Rng,
) {
    let dims = gauge.dims();
    let eo = EvenOdd::<f64>::new(gauge, p).unwrap();
    let opts = DiracOptions::default();
    for variant in VARIANTS {
        let reference = Schur::new(eo.clone(), variant);
        let j64 = JitSchur::<f64>::from_reference(&reference, &opts).unwrap();
        let j32 = with_f32.then(|| JitSchur::<f32>::from_reference(&reference, &opts).unwrap());
        let n = reference.half_len();
        assert_eq!(LinearOperator::len(&j64), n);
        let x = random_vec(n, rng);
        for dagger in [false, true] {
            let (mut want, mut got) = (zeros(n), zeros(n));
            if dagger {
                reference.apply_dagger(&mut want, &x);
                j64.apply_dagger(&mut got, &x);
            } else {
                LinearOperator::apply(&reference, &mut want, &x);
                j64.apply(&mut got, &x);
            }
            let e64 = rel_diff(&got, &want);
            let mut line = format!("{dims:?} {variant:?} dagger={dagger}: f64 {e64:.2e}");
            assert!(e64 < tol64, "{line}");
            if let Some(j32) = &j32 {
                let mut g32 = vec![Complex::new(0.0f32, 0.0); n];
                if dagger {
                    j32.apply_dagger(&mut g32, &to32(&x));
                } else {
                    LinearOperator::apply(j32, &mut g32, &to32(&x));
                }
                let e32 = rel_diff(&to64(&g32), &want);
                line += &format!(", f32 {e32:.2e}");
                assert!(e32 < tol32, "{line}");
            }
            eprintln!("{line}");
        }
    }
}

/// Random gauge fields, twisted boundary phases, several shapes: [4,4,4,8] (both precisions
/// split t), [8,2,6,4] (f32 splits x into sub-lattices of extent 2, so every x hop of one
/// parity crosses lanes; f64 splits t), [2,4,2,8] (extents 2), and [4,2,6,4], which has an
/// f64 layout (t split in two) but no f32 one (no extent divisible by 8; see the error test).
#[test]
fn compiled_schur_matches_reference_on_random_fields() {
    for (dims, with_f32) in
        [([4, 4, 4, 8], true), ([8, 2, 6, 4], true), ([2, 4, 2, 8], true), ([4, 2, 6, 4], false)]
    {
        let (gauge, mut rng) = random_gauge(dims, 21);
        check_against_reference(&gauge, &twisted(), with_f32, 1e-13, 1e-6, &mut rng);
    }
}

#[test]
fn compiled_schur_matches_reference_on_the_ddalpha_configuration() {
    let Some((gauge, _)) = common::ddalpha_8x8x8x8("compiled Schur vs reference on 8^4") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    for mass in [-0.5, -0.555] {
        check_against_reference(
            &gauge,
            &DiracParams::periodic(mass, 1.0),
            true,
            1e-13,
            1e-6,
            &mut rng,
        );
    }
}

/// ⟨φ, D̂χ⟩ = conj⟨χ, D̂†φ⟩ on the compiled kernels (f64), with a negative control: D̂ is not
/// Hermitian, so ⟨φ, D̂χ⟩ ≠ conj⟨χ, D̂φ⟩.
#[test]
fn compiled_schur_adjoint_identity() {
    let (gauge, mut rng) = random_gauge([4, 4, 4, 8], 23);
    let p = twisted();
    for variant in VARIANTS {
        let op = JitSchur::<f64>::new(&gauge, &p, variant, &DiracOptions::default()).unwrap();
        let n = op.half_len();
        let (phi, chi) = (random_vec(n, &mut rng), random_vec(n, &mut rng));
        let (mut dchi, mut dphi, mut dphi2) = (zeros(n), zeros(n), zeros(n));
        op.apply(&mut dchi, &chi);
        op.apply_dagger(&mut dphi, &phi);
        op.apply(&mut dphi2, &phi);
        let a = fermion::dot(&phi, &dchi);
        let b = fermion::dot(&chi, &dphi).conj();
        let c = fermion::dot(&chi, &dphi2).conj();
        eprintln!("{variant:?}: <phi, D chi> = {a:.6}, conj<chi, D^dag phi> = {b:.6}");
        assert!((a - b).norm() < 1e-13 * a.norm(), "{variant:?}: {a} vs {b}");
        assert!((a - c).norm() > 1e-3 * a.norm(), "{variant:?}: D̂ looks Hermitian");
    }
}

/// The compiled `prepare` and `reconstruct` against the reference's, and the even-odd identity
/// they exist for: with u the exact reduced solution, reconstruct(u, b) solves D x = b.
#[test]
fn prepare_and_reconstruct_match_the_reference() {
    let dims = [4, 4, 4, 8];
    let (gauge, mut rng) = random_gauge(dims, 24);
    let p = twisted();
    let eo = EvenOdd::<f64>::new(&gauge, &p).unwrap();
    let b = source(dims, 25);
    for variant in VARIANTS {
        let reference = Schur::new(eo.clone(), variant);
        let op = JitSchur::<f64>::from_reference(&reference, &DiracOptions::default()).unwrap();
        let e = rel_diff(&op.prepare(&b).unwrap(), &reference.prepare(&b).unwrap());
        assert!(e < 1e-13, "{variant:?} prepare: {e:e}");
        let u = random_vec(op.half_len(), &mut rng);
        let got = op.reconstruct(&u, &b).unwrap();
        let e = rel_diff(&got, &reference.reconstruct(&u, &b).unwrap());
        assert!(e < 1e-13, "{variant:?} reconstruct: {e:e}");
        // f32 prepare too (the kernels are generic; its tables are the rounded f64 ones).
        let op32 = JitSchur::<f32>::from_reference(&reference, &DiracOptions::default()).unwrap();
        let e = rel_diff(&to64(&op32.prepare(&to32(&b)).unwrap()), &reference.prepare(&b).unwrap());
        assert!(e < 1e-6, "{variant:?} f32 prepare: {e:e}");
    }
}

/// The native operator (f32 buffers in the half layout, what the mixed solvers run) is the
/// reference-layout f32 operator: import, apply, export gives the same vector bit for bit.
#[test]
fn native_operator_is_the_reference_layout_operator() {
    let (gauge, mut rng) = random_gauge([4, 4, 4, 8], 26);
    for variant in VARIANTS {
        let op =
            JitSchur::<f32>::new(&gauge, &twisted(), variant, &DiracOptions::default()).unwrap();
        let n = op.half_len();
        let x = random_vec(n, &mut rng);
        let mut want = vec![Complex::new(0.0f32, 0.0); n];
        LinearOperator::apply(&op, &mut want, &to32(&x));
        let len = NativeOperator::buffer_len(&op);
        let (mut a, mut b) = (vec![0.0f32; len], vec![0.0f32; len]);
        op.import(&x, &mut a);
        NativeOperator::apply(&op, &mut b, &mut a).unwrap();
        let mut got = zeros(n);
        op.export(&b, &mut got);
        assert_eq!(to32(&got), want, "{variant:?}");
        // Too-short buffers are an error, not a panic.
        assert!(NativeOperator::apply(&op, &mut b[..len - 1], &mut a).is_err());
    }
}

fn options(
    variant: SchurVariant,
    solver: ReducedSolver,
    precision: SolvePrecision,
) -> EvenOddOptions {
    EvenOddOptions {
        variant,
        solver,
        precision,
        params: SolveParams { tol: 1e-8, restart: 30, max_iterations: 5000 },
    }
}

/// The issue-15 target setting: mixed-precision even-odd GMRES(30) on the 8⁴ DDalphaAMG
/// configuration at m = −0.555, c_sw = 1, to a full-system residual of 1e-8 recomputed here
/// with the reference `WilsonClover`.
#[test]
fn mixed_evenodd_gmres_on_ddalpha_reaches_the_full_residual() {
    let Some((gauge, _)) = common::ddalpha_8x8x8x8("mixed even-odd GMRES on 8^4") else {
        return;
    };
    let p = DiracParams::periodic(-0.555, 1.0);
    let d = WilsonClover::<f64>::new(&gauge, &p);
    let mut solver = EvenOddSolver::new(&gauge, &p, EvenOddOptions::default()).unwrap();
    for seed in [555, 556] {
        let b = source(gauge.dims(), seed);
        let (x, rep) = solver.solve(&b).unwrap();
        let r = residual(&d, &b, &x);
        eprintln!(
            "8^4 m=-0.555 even-odd {:?} mixed GMRES(30): {} iterations, {:.3} s, full residual \
             {r:.3e} (reported {:.3e})",
            solver.options().variant,
            rep.iterations,
            rep.seconds,
            rep.true_residual
        );
        assert!(rep.converged, "{rep:?}");
        assert!(r < 1e-8, "full-system residual {r:e}");
        assert!((r - rep.true_residual).abs() < 1e-12, "reported {} vs {r}", rep.true_residual);
        // The history is the full residual of the reconstructed iterate: it ends at most at
        // tol (the last entry is the f64 residual of the final restart).
        assert!(rep.history[0] > 0.1 && *rep.history.last().unwrap() <= 1e-8, "{:?}", rep.history);
    }
}

/// Every solver, precision and variant on a small random lattice with twisted phases: the
/// reconstructed x meets the full-system tolerance, recomputed with `WilsonClover`.
#[test]
fn every_solver_precision_and_variant_reaches_the_full_residual() {
    let dims = [4, 4, 4, 8];
    let (gauge, _) = random_gauge(dims, 27);
    let p = twisted();
    let d = WilsonClover::<f64>::new(&gauge, &p);
    let b = source(dims, 28);
    for variant in VARIANTS {
        for precision in [SolvePrecision::Mixed, SolvePrecision::F64] {
            for solver in [
                ReducedSolver::Gmres,
                ReducedSolver::Fgmres,
                ReducedSolver::Bicgstab,
                ReducedSolver::Cgne,
            ] {
                let mut o = options(variant, solver, precision);
                o.params.tol = 1e-10;
                let mut s = EvenOddSolver::new(&gauge, &p, o).unwrap();
                let (x, rep) = s.solve(&b).unwrap();
                let r = residual(&d, &b, &x);
                eprintln!(
                    "{variant:?} {precision:?} {}: {} iterations, full residual {r:.2e}",
                    rep.solver, rep.iterations
                );
                assert!(rep.converged && r < 1e-10, "{variant:?} {precision:?} {solver:?}: {r:e}");
            }
        }
    }
    // b = 0: x = 0 exactly, nothing applied.
    let mut s = EvenOddSolver::new(&gauge, &p, EvenOddOptions::default()).unwrap();
    let (x, rep) = s.solve(&zeros(b.len())).unwrap();
    assert!(x.iter().all(|z| *z == C::new(0.0, 0.0)) && rep.converged && rep.iterations == 0);
}

/// A native preconditioner that copies (M = 1), counting its calls.
struct CountingIdentity {
    len: usize,
    calls: usize,
}

impl NativePreconditioner for CountingIdentity {
    fn buffer_len(&self) -> usize {
        self.len
    }
    fn apply(&mut self, out: &mut [f32], inp: &mut [f32]) -> Result<(), String> {
        self.calls += 1;
        out[..self.len].copy_from_slice(&inp[..self.len]);
        Ok(())
    }
}

/// Preconditioners plug in through the solver traits: an f64 one (a few inner GMRES steps on
/// the reference Schur operator, a flexible preconditioner) cuts the outer FGMRES iterations;
/// a native f32 one runs inside mixed FGMRES (the identity: same iterations as GMRES); a
/// preconditioner of the wrong kind for the precision is an error.
#[test]
fn a_preconditioner_plugs_into_the_evenodd_solve() {
    let dims = [4, 4, 4, 8];
    let (gauge, _) = random_gauge(dims, 29);
    let p = DiracParams::periodic(-0.6, 1.0);
    let d = WilsonClover::<f64>::new(&gauge, &p);
    let b = source(dims, 30);
    let variant = SchurVariant::default();

    let mut plain =
        EvenOddSolver::new(&gauge, &p, options(variant, ReducedSolver::Gmres, SolvePrecision::F64))
            .unwrap();
    let (_, base) = plain.solve(&b).unwrap();
    let inner_op = Schur::new(EvenOdd::<f64>::new(&gauge, &p).unwrap(), variant);
    let inner = SolveParams { tol: 1e-1, restart: 5, max_iterations: 5 };
    let mut prec = FnPreconditioner(|out: &mut [C], inp: &[C]| {
        out.iter_mut().for_each(|z| *z = C::new(0.0, 0.0));
        solve::gmres(&inner_op, inp, out, &inner);
    });
    let mut s = EvenOddSolver::new(
        &gauge,
        &p,
        options(variant, ReducedSolver::Fgmres, SolvePrecision::F64),
    )
    .unwrap();
    let (x, rep) = s.solve_with(ReducedPreconditioner::F64(&mut prec), &b).unwrap();
    let r = residual(&d, &b, &x);
    eprintln!(
        "FGMRES with 5 inner GMRES steps: {} outer iterations ({} preconditioner calls) vs {} \
         unpreconditioned; full residual {r:.2e}",
        rep.iterations, rep.preconditioner_applications, base.iterations
    );
    assert!(rep.converged && r < 1e-8);
    assert!(rep.iterations * 2 < base.iterations, "{} vs {}", rep.iterations, base.iterations);
    assert_eq!(rep.preconditioner_applications, rep.iterations);

    let mut m = EvenOddSolver::new(
        &gauge,
        &p,
        options(variant, ReducedSolver::Fgmres, SolvePrecision::Mixed),
    )
    .unwrap();
    let (_, gm) = m.solve(&b).unwrap();
    let len = NativeOperator::buffer_len(m.schur32().unwrap());
    let mut id = CountingIdentity { len, calls: 0 };
    let (x, rep) = m.solve_with(ReducedPreconditioner::Native(&mut id), &b).unwrap();
    assert!(rep.converged && residual(&d, &b, &x) < 1e-8);
    assert_eq!(rep.iterations, gm.iterations);
    assert_eq!(id.calls, rep.iterations);

    let wrong = m.solve_with(ReducedPreconditioner::F64(&mut prec), &b);
    assert!(matches!(wrong, Err(EvenOddSolveError::Preconditioner { .. })), "{wrong:?}");
    let mut id = CountingIdentity { len, calls: 0 };
    let wrong = plain.solve_with(ReducedPreconditioner::Native(&mut id), &b);
    assert!(matches!(wrong, Err(EvenOddSolveError::Preconditioner { .. })), "{wrong:?}");
}

/// Lattices the layout cannot handle, odd extents and wrong lengths are errors with a clear
/// message, never panics.
#[test]
fn lattices_without_a_layout_are_errors() {
    let opts = DiracOptions::default();
    let v = SchurVariant::default();
    // No extent divisible by 8: no f32 half layout (the f64 one exists: 4 = 2 × 2 lanes).
    let (gauge, _) = random_gauge([4, 2, 6, 4], 31);
    let p = DiracParams::periodic(-0.5, 1.0);
    let e = JitSchur::<f32>::new(&gauge, &p, v, &opts).err().expect("no f32 layout");
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(matches!(e, JitSchurError::Layout(_)) && msg.contains("multiple of 8"), "{msg}");
    assert!(JitSchur::<f64>::new(&gauge, &p, v, &opts).is_ok());
    let mixed = options(v, ReducedSolver::Gmres, SolvePrecision::Mixed);
    let e = EvenOddSolver::new(&gauge, &p, mixed).err().expect("no mixed solver");
    assert!(e.to_string().contains("multiple of 8"), "{e}");
    let f64_only = options(v, ReducedSolver::Gmres, SolvePrecision::F64);
    let mut s = EvenOddSolver::new(&gauge, &p, f64_only).unwrap();
    let (x, rep) = s.solve(&source(gauge.dims(), 32)).unwrap();
    assert!(rep.converged, "{rep:?}");
    assert!(residual(&WilsonClover::new(&gauge, &p), &source(gauge.dims(), 32), &x) < 1e-8);
    // Wrong lengths.
    let e = s.solve(&zeros(12)).err().expect("length");
    assert!(matches!(e, EvenOddSolveError::Length { .. }), "{e}");
    let op = s.schur64();
    let mut out = zeros(op.half_len());
    let e = op.try_apply(false, &mut out, &zeros(5)).err().expect("length");
    assert!(matches!(e, JitSchurError::EvenOdd(EvenOddError::VectorLength { .. })), "{e}");
    assert!(op.reconstruct(&zeros(5), &zeros(12 * 192)).is_err());
    // No extent divisible by 4: no layout in either precision.
    let (gauge, _) = random_gauge([2, 2, 6, 2], 33);
    for e in [
        JitSchur::<f64>::new(&gauge, &p, v, &opts).err().expect("no f64 layout"),
        JitSchur::<f32>::new(&gauge, &p, v, &opts).err().expect("no f32 layout"),
    ] {
        assert!(matches!(e, JitSchurError::Layout(_)), "{e}");
    }
    // Odd extent: no checkerboard at all.
    let (gauge, _) = random_gauge([3, 4, 4, 8], 34);
    let e = JitSchur::<f32>::new(&gauge, &p, v, &opts).err().expect("odd extent");
    assert!(matches!(e, JitSchurError::EvenOdd(EvenOddError::OddExtent { .. })), "{e}");
    assert!(EvenOddSolver::new(&gauge, &p, EvenOddOptions::default()).is_err());
}

/// The median of `v` (which it sorts).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The measurement behind the default Schur variant and the issue-15 numbers, on the 8⁴
/// DDalphaAMG configuration, c_sw = 1. On a shared machine the load drifts, so everything
/// compared is measured in interleaved rounds and reported as the median over rounds (and the
/// median of the per-round ratios, which the drift cancels from):
///
/// 1. kernels (m = −0.555, f32, own layout, both cores): the compiled D against the compiled
///    D̂ of every variant, GFLOP/s at 1872 per site for D and 3720 per even site for D̂;
/// 2. solves at m = −0.5 and −0.555 to a full-system residual of 1e-8 (recomputed with
///    `WilsonClover`), three normalised sources: full mixed GMRES(30) (the `symc solve`
///    default) and full f64 BiCGStab against the even-odd solve of every variant with mixed
///    GMRES(30) and f64 BiCGStab; seconds per solve exclude the one-off set-up (compiling,
///    clover inverse), which is printed separately.
///
/// Run with `cargo test --release --test evenodd_jit -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_full_vs_evenodd_on_ddalpha_8x8x8x8() {
    let Some((gauge, _)) = common::ddalpha_8x8x8x8("even-odd measurement") else {
        return;
    };
    let dims = gauge.dims();
    let opts = DiracOptions::default();

    // 1. Kernels.
    let p = DiracParams::periodic(-0.555, 1.0);
    let d = JitWilsonClover::<f32>::new(&gauge, &p, &opts).unwrap();
    let n = d.layout().field_len();
    let (a, mut o) = (vec![0.1f32; n], vec![0.0f32; n]);
    let schurs: Vec<JitSchur<f32>> =
        VARIANTS.iter().map(|&v| JitSchur::new(&gauge, &p, v, &opts).unwrap()).collect();
    let m = schurs[0].layout().main_len();
    let (mut x, mut y, mut t) = (vec![0.1f32; m], vec![0.0f32; m], vec![0.0f32; m]);
    let (rounds, reps) = (15, 200);
    let mut times = vec![Vec::new(); 1 + 2 * VARIANTS.len()];
    let mut ratios = vec![Vec::new(); times.len()];
    for _ in 0..rounds {
        let t0 = Instant::now();
        for _ in 0..reps {
            d.apply_aosoa(false, &mut o, &a).unwrap();
        }
        let td = t0.elapsed().as_secs_f64() / reps as f64;
        times[0].push(td);
        for (i, s) in schurs.iter().enumerate() {
            for dagger in [false, true] {
                let t0 = Instant::now();
                for _ in 0..reps {
                    s.apply_native(dagger, &mut y, &mut x, &mut t).unwrap();
                }
                let ts = t0.elapsed().as_secs_f64() / reps as f64;
                times[1 + 2 * i + dagger as usize].push(ts);
                ratios[1 + 2 * i + dagger as usize].push(ts / td);
            }
        }
    }
    let vol = gauge.geom.volume() as f64;
    let td = median(&mut times[0]);
    eprintln!(
        "kernel (8^4, f32, 2 threads)   µs/apply   GFLOP/s   time / time(D) (median of rounds)"
    );
    eprintln!("D                              {:8.1}   {:7.1}", td * 1e6, 1872.0 * vol / td / 1e9);
    for (i, s) in schurs.iter().enumerate() {
        for dagger in [false, true] {
            let k = 1 + 2 * i + dagger as usize;
            let ts = median(&mut times[k]);
            let name = format!("D̂ {:?}{}", s.variant(), if dagger { " dagger" } else { "" });
            eprintln!(
                "{name:<30} {:8.1}   {:7.1}   {:.3}",
                ts * 1e6,
                s.flops_per_apply(dagger) as f64 / ts / 1e9,
                median(&mut ratios[k])
            );
        }
    }

    // 2. Solves.
    let params = SolveParams { tol: 1e-8, restart: 30, max_iterations: 20_000 };
    let seeds = [555u64, 556, 557];
    let rounds = 3;
    for mass in [-0.5, -0.555] {
        let p = DiracParams::periodic(mass, 1.0);
        let reference = WilsonClover::<f64>::new(&gauge, &p);
        let rhs: Vec<Vec<C>> = seeds.iter().map(|&s| source(dims, s)).collect();
        let t0 = Instant::now();
        let d64 = JitWilsonClover::<f64>::new(&gauge, &p, &opts).unwrap();
        let d32 = JitWilsonClover::<f32>::new(&gauge, &p, &opts).unwrap();
        let full_setup = t0.elapsed().as_secs_f64();
        let mut ws = solve::MixedWorkspace::new();
        let mut systems: Vec<(String, f64, Option<EvenOddSolver>)> = vec![
            ("full gmres mixed".into(), full_setup, None),
            ("full bicgstab f64".into(), full_setup, None),
        ];
        for variant in VARIANTS {
            for (solver, precision) in [
                (ReducedSolver::Gmres, SolvePrecision::Mixed),
                (ReducedSolver::Bicgstab, SolvePrecision::F64),
            ] {
                let t0 = Instant::now();
                let o = EvenOddOptions { params, ..options(variant, solver, precision) };
                let s = EvenOddSolver::new(&gauge, &p, o).unwrap();
                let prec = if precision == SolvePrecision::Mixed { "mixed" } else { "f64" };
                let name = format!("eo {variant:?} {} {prec}", solver.name());
                systems.push((name, t0.elapsed().as_secs_f64(), Some(s)));
            }
        }
        // Per system: iterations per source, worst residual, per-round seconds per solve.
        let mut iters = vec![vec![0usize; rhs.len()]; systems.len()];
        let mut worst = vec![0.0f64; systems.len()];
        let mut secs = vec![Vec::new(); systems.len()];
        for _ in 0..rounds {
            for (k, (name, _, eo)) in systems.iter_mut().enumerate() {
                let mut total = 0.0;
                for (i, b) in rhs.iter().enumerate() {
                    let mut x = zeros(b.len());
                    let t = Instant::now();
                    let rep = match eo {
                        Some(s) => {
                            let (xe, rep) = s.solve(b).unwrap();
                            x = xe;
                            rep
                        }
                        None if name.contains("gmres") => {
                            solve::gmres_mixed(&mut ws, &d64, &d32, b, &mut x, &params).unwrap()
                        }
                        None => solve::bicgstab(&d64, b, &mut x, &params),
                    };
                    total += t.elapsed().as_secs_f64();
                    assert!(rep.converged, "{name}: {rep:?}");
                    iters[k][i] = rep.iterations;
                    worst[k] = worst[k].max(residual(&reference, b, &x));
                }
                secs[k].push(total / rhs.len() as f64);
            }
        }
        let ratio = |k: usize, secs: &[Vec<f64>]| {
            let mut r: Vec<f64> = secs[0].iter().zip(&secs[k]).map(|(f, e)| f / e).collect();
            median(&mut r)
        };
        eprintln!(
            "m = {mass}: system            iterations (per rhs)   mean   s/solve (median)   \
             full gmres / this   max full residual   set-up s"
        );
        for (k, (name, setup, _)) in systems.iter().enumerate() {
            let mean = iters[k].iter().sum::<usize>() as f64 / iters[k].len() as f64;
            eprintln!(
                "  {name:<28} {:>16}   {mean:6.1}   {:8.3}   {:6.2}   {:.2e}   {setup:.3}",
                format!("{:?}", iters[k]),
                median(&mut secs[k].clone()),
                ratio(k, &secs),
                worst[k]
            );
        }
    }
}
