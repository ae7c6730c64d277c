//! Throughput of the reference Wilson-clover operator D (and D†) in GFLOP/s, counting 1872 flops
//! per site (physics.md §1.5), on 8³×16 and 16³×32, f32 and f64, random gauge field.
//!
//! Run: `cargo bench --bench wilson` (criterion's throughput is in "elements"; each element is one
//! flop, so criterion's "Gelem/s" column reads directly as GFLOP/s).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use num_complex::Complex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use symc::lattice::Real;
use symc::lattice::fermion::FermionField;
use symc::lattice::gauge::GaugeField;
use symc::lattice::wilson::{DiracParams, FLOPS_PER_SITE, WilsonClover};

fn bench_one<T: Real>(c: &mut Criterion, dims: [usize; 4], name: &str) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let gauge = GaugeField::random(dims, &mut rng);
    let d = WilsonClover::<T>::new(&gauge, &DiracParams::antiperiodic_time(-0.5, 1.0));
    let psi = FermionField::<T>::random_gaussian(dims, &mut rng);
    let mut out = vec![Complex::new(T::zero(), T::zero()); psi.data.len()];
    let mut g = c.benchmark_group(format!("wilson_clover/{name}"));
    g.throughput(Throughput::Elements(FLOPS_PER_SITE * d.volume() as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(20);
    g.bench_function("D", |b| b.iter(|| d.apply(&mut out, &psi.data)));
    g.bench_function("Ddag", |b| b.iter(|| d.apply_dagger(&mut out, &psi.data)));
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_one::<f32>(c, [8, 8, 8, 16], "8x8x8x16/f32");
    bench_one::<f64>(c, [8, 8, 8, 16], "8x8x8x16/f64");
    bench_one::<f32>(c, [16, 16, 16, 32], "16x16x16x32/f32");
    bench_one::<f64>(c, [16, 16, 16, 32], "16x16x16x32/f64");
}

criterion_group!(wilson, benches);
criterion_main!(wilson);
