//! Cost per solver iteration on 8³×16 (random gauge field, m = −0.5, c_sw = 1, f64): one
//! GMRES(30)/FGMRES(30) restart cycle, 15 BiCGStab iterations and 15 CGNE iterations, and one
//! GMRES(30) cycle of the mixed-precision solver (f32 cycle on the JIT kernel in its layout,
//! f64 residuals with the f64 JIT kernel) next to the all-f64 cycle on the same JIT kernel.
//! Whole solves to 1e-8 take seconds and are measured in benches/results/lattice.md with
//! `symc solve`.
//!
//! Whole solves, full system against even-odd: mixed-precision GMRES(30) to a full-system
//! residual of 1e-8 on the 8⁴ DDalphaAMG configuration at m = −0.5 and −0.555, c_sw = 1, one
//! normalised random source: the full operator (`symc solve`'s default, f32 cycles on the JIT
//! kernel) against the even-odd solve (`runtime::evenodd_solve`, default Schur variant, f32
//! cycles on the compiled Schur operator, preparation, reconstruction and the full residual
//! included), and even-odd BiCGStab in f64. Operators are built outside the timing. Skipped
//! (with a message) without `../shared/data` or `$SYMC_DATA`.
//!
//! Run: `cargo bench --bench solvers` (criterion "elem/s" = solver iterations per second; for
//! the whole solves, solves per second).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use num_complex::Complex64;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use symc::lattice::fermion::FermionField;
use symc::lattice::gauge::GaugeField;
use symc::lattice::wilson::{DiracParams, WilsonClover};
use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
use symc::runtime::evenodd_solve::{EvenOddOptions, EvenOddSolver, ReducedSolver, SolvePrecision};
use symc::solve::{self, IdentityPreconditioner, SolveParams};

fn benches(c: &mut Criterion) {
    let dims = [8, 8, 8, 16];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let gauge = GaugeField::random(dims, &mut rng);
    let d = WilsonClover::<f64>::new(&gauge, &DiracParams::periodic(-0.5, 1.0));
    let b = FermionField::<f64>::random_gaussian(dims, &mut rng).data;
    let zero = vec![Complex64::new(0.0, 0.0); b.len()];
    // tol = 0 so that every solver runs exactly max_iterations.
    let cycle = SolveParams { tol: 0.0, restart: 30, max_iterations: 30 };
    let short = SolveParams { tol: 0.0, restart: 30, max_iterations: 15 };

    let mut g = c.benchmark_group("solvers/8x8x8x16/f64");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(10);
    g.throughput(Throughput::Elements(30));
    g.bench_function("gmres30_cycle", |bch| {
        bch.iter(|| {
            let mut x = zero.clone();
            solve::gmres(&d, &b, &mut x, &cycle)
        })
    });
    g.bench_function("fgmres30_identity_cycle", |bch| {
        bch.iter(|| {
            let mut x = zero.clone();
            solve::fgmres(&d, &mut IdentityPreconditioner, &b, &mut x, &cycle)
        })
    });
    g.throughput(Throughput::Elements(15));
    g.bench_function("bicgstab_15", |bch| {
        bch.iter(|| {
            let mut x = zero.clone();
            solve::bicgstab(&d, &b, &mut x, &short)
        })
    });
    g.bench_function("cgne_15", |bch| {
        bch.iter(|| {
            let mut x = zero.clone();
            solve::cgne(&d, &b, &mut x, &short)
        })
    });
    g.finish();

    let p = DiracParams::periodic(-0.5, 1.0);
    let d64 = JitWilsonClover::<f64>::new(&gauge, &p, &DiracOptions::default()).unwrap();
    let d32 = JitWilsonClover::<f32>::new(&gauge, &p, &DiracOptions::default()).unwrap();
    let mut g = c.benchmark_group("solvers/8x8x8x16/jit");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(10);
    g.throughput(Throughput::Elements(30));
    g.bench_function("gmres30_cycle_f64", |bch| {
        bch.iter(|| {
            let mut x = zero.clone();
            solve::gmres(&d64, &b, &mut x, &cycle)
        })
    });
    g.bench_function("gmres30_cycle_mixed", |bch| {
        bch.iter(|| {
            let mut x = zero.clone();
            solve::gmres_mixed(&mut solve::MixedWorkspace::new(), &d64, &d32, &b, &mut x, &cycle)
                .unwrap()
        })
    });
    g.finish();
}

/// The 8⁴ DDalphaAMG file from `../shared/data` (or `$SYMC_DATA`), read with the production
/// reader, or `None` with a message.
fn ddalpha_8x8x8x8() -> Option<GaugeField> {
    let data = std::env::var_os("SYMC_DATA").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
    });
    let path = data.join("gauge/ddalphaamg/8x8x8x8b6.0000id3n1");
    match symc::lattice::io::read_gauge(&path) {
        Ok(f) => Some(f.field),
        Err(e) => {
            eprintln!("SKIPPED: full vs even-odd solves: {}: {e}", path.display());
            None
        }
    }
}

fn full_vs_evenodd(c: &mut Criterion) {
    let Some(gauge) = ddalpha_8x8x8x8() else {
        return;
    };
    let dims = gauge.dims();
    let mut rng = ChaCha8Rng::seed_from_u64(555);
    let mut b = FermionField::<f64>::random_gaussian(dims, &mut rng).data;
    let nb = symc::lattice::fermion::norm(&b);
    symc::lattice::fermion::scale(Complex64::new(1.0 / nb, 0.0), &mut b);
    let params = SolveParams { tol: 1e-8, restart: 30, max_iterations: 20_000 };
    for mass in [-0.555, -0.5] {
        let p = DiracParams::periodic(mass, 1.0);
        let opts = DiracOptions::default();
        let d64 = JitWilsonClover::<f64>::new(&gauge, &p, &opts).unwrap();
        let d32 = JitWilsonClover::<f32>::new(&gauge, &p, &opts).unwrap();
        let mut eo =
            EvenOddSolver::new(&gauge, &p, EvenOddOptions { params, ..Default::default() })
                .unwrap();
        let bicg = EvenOddOptions {
            solver: ReducedSolver::Bicgstab,
            precision: SolvePrecision::F64,
            params,
            ..Default::default()
        };
        let mut eo_bicg = EvenOddSolver::new(&gauge, &p, bicg).unwrap();
        let mut ws = solve::MixedWorkspace::new();
        let mut g = c.benchmark_group(format!("solve/ddalpha_8x8x8x8/m{mass}"));
        g.warm_up_time(Duration::from_millis(500));
        g.measurement_time(Duration::from_secs(8));
        g.sample_size(10);
        g.throughput(Throughput::Elements(1));
        g.bench_function("full gmres30 mixed", |bch| {
            bch.iter(|| {
                let mut x = zero_like(&b);
                let rep = solve::gmres_mixed(&mut ws, &d64, &d32, &b, &mut x, &params).unwrap();
                assert!(rep.converged);
            })
        });
        g.bench_function("evenodd gmres30 mixed", |bch| {
            bch.iter(|| assert!(eo.solve(&b).unwrap().1.converged))
        });
        g.bench_function("evenodd bicgstab f64", |bch| {
            bch.iter(|| assert!(eo_bicg.solve(&b).unwrap().1.converged))
        });
        g.finish();
    }
}

fn zero_like(b: &[Complex64]) -> Vec<Complex64> {
    vec![Complex64::new(0.0, 0.0); b.len()]
}

criterion_group!(solvers, benches, full_vs_evenodd);
criterion_main!(solvers);
