//! Cost of the quenched heatbath on 8³×16 (V = 8192): one heatbath sweep, one
//! overrelaxation sweep, and one compound sweep (1 heatbath + 4 overrelaxation, the default of
//! `symc gauge generate`). Run: `cargo bench --bench heatbath`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::time::Duration;
use symc::lattice::heatbath::{Heatbath, HeatbathParams};

fn bench(c: &mut Criterion) {
    let dims = [8, 8, 8, 16];
    let params = HeatbathParams::new(6.0, 0, 7);
    let mut hb = Heatbath::new(dims, &params);
    // A few sweeps first so the staples look like a β = 6.0 field, not the unit field.
    for _ in 0..5 {
        hb.sweep();
    }
    let mut g = c.benchmark_group("heatbath_8x8x8x16");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(2));
    g.bench_function("heatbath_sweep", |b| b.iter(|| hb.heatbath_sweep()));
    g.bench_function("overrelax_sweep", |b| b.iter(|| hb.overrelax_sweep()));
    g.bench_function("compound_sweep_hb1_or4", |b| b.iter(|| hb.sweep()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
