//! Throughput of the reference Wilson-clover operator D (and D†) in GFLOP/s, counting 1872 flops
//! per site (physics.md §1.5), on 8³×16 and 16³×32, f32 and f64, random gauge field; and of the
//! compiled even-odd Schur operator D̂ (`runtime::schur`) next to the compiled full D on 8³×16,
//! both on buffers in their own SIMD layout (no conversion).
//!
//! Schur flops are what its kernels do, counted conventionally: 3720 per even site for every
//! variant (two hop sums 2 × 1320, two 6×6 block pairs 2 × 504, one fused `x + ½ h` 48, one
//! scale by −½ 24), i.e. about the 1872 per site of D; the two operators are compared at equal
//! work. `Right` (the default) and `Left`'s D̂† make one extra pass over memory (the site-local
//! A_ee⁻¹).
//!
//! Run: `cargo bench --bench wilson` (criterion's throughput is in "elements"; each element is one
//! flop, so criterion's "Gelem/s" column reads directly as GFLOP/s).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use num_complex::Complex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use symc::codegen::simd::Element;
use symc::lattice::Real;
use symc::lattice::evenodd::SchurVariant;
use symc::lattice::fermion::FermionField;
use symc::lattice::gauge::GaugeField;
use symc::lattice::wilson::{DiracParams, FLOPS_PER_SITE, WilsonClover};
use symc::runtime::dirac::{DiracOptions, JitWilsonClover};
use symc::runtime::schur::JitSchur;

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

/// The compiled full D and the compiled Schur operator of every variant, on AoSoA buffers.
fn bench_compiled<T: Element>(c: &mut Criterion, dims: [usize; 4], name: &str) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let gauge = GaugeField::random(dims, &mut rng);
    let p = DiracParams::antiperiodic_time(-0.5, 1.0);
    let opts = DiracOptions::default();
    let mut g = c.benchmark_group(format!("wilson_clover_jit/{name}"));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(30);
    let d = JitWilsonClover::<T>::new(&gauge, &p, &opts).expect("compile D");
    let n = d.layout().field_len();
    let (a, mut o) = (vec![T::from_f64(0.1); n], vec![T::zero(); n]);
    g.throughput(Throughput::Elements(FLOPS_PER_SITE * gauge.geom.volume() as u64));
    g.bench_function("D", |b| b.iter(|| d.apply_aosoa(false, &mut o, &a).unwrap()));
    for variant in
        [SchurVariant::RightNormalised, SchurVariant::LeftNormalised, SchurVariant::Plain]
    {
        let s = JitSchur::<T>::new(&gauge, &p, variant, &opts).expect("compile Schur");
        let m = s.layout().main_len();
        let (mut x, mut y, mut t) =
            (vec![T::from_f64(0.1); m], vec![T::zero(); m], vec![T::zero(); m]);
        for dagger in [false, true] {
            g.throughput(Throughput::Elements(s.flops_per_apply(dagger)));
            let label = format!("Schur {variant:?}{}", if dagger { " dagger" } else { "" });
            g.bench_function(label, |b| {
                b.iter(|| s.apply_native(dagger, &mut y, &mut x, &mut t).unwrap())
            });
        }
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_compiled::<f32>(c, [8, 8, 8, 16], "8x8x8x16/f32");
    bench_compiled::<f64>(c, [8, 8, 8, 16], "8x8x8x16/f64");
    bench_one::<f32>(c, [8, 8, 8, 16], "8x8x8x16/f32");
    bench_one::<f64>(c, [8, 8, 8, 16], "8x8x8x16/f64");
    bench_one::<f32>(c, [16, 16, 16, 32], "16x16x16x32/f32");
    bench_one::<f64>(c, [16, 16, 16, 32], "16x16x16x32/f64");
}

criterion_group!(wilson, benches);
criterion_main!(wilson);
