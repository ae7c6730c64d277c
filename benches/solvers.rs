//! Cost per solver iteration on 8³×16 (random gauge field, m = −0.5, c_sw = 1, f64): one
//! GMRES(30)/FGMRES(30) restart cycle, 15 BiCGStab iterations and 15 CGNE iterations, and one
//! GMRES(30) cycle of the mixed-precision solver (f32 cycle on the JIT kernel in its layout,
//! f64 residuals with the f64 JIT kernel) next to the all-f64 cycle on the same JIT kernel.
//! Whole solves to 1e-8 take seconds and are measured in benches/results/lattice.md with
//! `symc solve`.
//!
//! Run: `cargo bench --bench solvers` (criterion "elem/s" = solver iterations per second).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use num_complex::Complex64;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use symc::lattice::fermion::FermionField;
use symc::lattice::gauge::GaugeField;
use symc::lattice::wilson::{DiracParams, WilsonClover};
use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
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

criterion_group!(solvers, benches);
criterion_main!(solvers);
