//! The multigrid kernels on the shipped 8³×16 β = 6 configuration (m = −0.55, c_sw = 1,
//! blocks 4⁴ → coarse 2×2×2×4, 12 basis vectors): restriction P†, prolongation P and the
//! coarse operator D_c in f32 on the Dirac kernel's buffers and in f64, one two-level cycle as
//! the mixed-precision solver calls it, next to one f32 Dirac application for scale; and the
//! two choices the design rests on: the coarse kernel on one thread vs split over the pool,
//! and the serial coarse GMRES vs the general solver on coarse vectors.
//! Whole solves are measured by `tests/multigrid_measure.rs` (`--ignored`).
//!
//! Run: `cargo bench --bench multigrid`.

use criterion::{Criterion, criterion_group, criterion_main};
use num_complex::{Complex, Complex64};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;
use symc::lattice::fermion;
use symc::lattice::io::read_gauge;
use symc::lattice::wilson::DiracParams;
use symc::runtime::multigrid::{Multigrid, MultigridParams, start_vectors};
use symc::solve::multigrid::CoarseGmres;
use symc::solve::{self, NativeOperator, NativePreconditioner, SolveParams};

fn benches(c: &mut Criterion) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/data/gauge/b6.0_8x8x8x16_s7.nersc");
    let gauge = read_gauge(&path).expect("shipped configuration").field;
    let dirac = DiracParams::periodic(-0.55, 1.0);
    let mut mg = Multigrid::build(&gauge, &dirac, &MultigridParams::reference()).unwrap();
    let dims = gauge.dims();
    let x = start_vectors(dims, 1, 9).remove(0);
    let nc = mg.basis().coarse_len();

    let d32 = mg.dirac32();
    let layout = d32.layout().clone();
    let (mut xn, mut yn) = (vec![0.0f32; layout.field_len()], vec![0.0f32; layout.field_len()]);
    layout.to_aosoa(&x, &mut xn);
    c.bench_function("multigrid/dirac_f32_native", |b| {
        b.iter(|| d32.apply_aosoa(false, &mut yn, &xn).unwrap())
    });
    let t32 = mg.transfer32();
    let mut chi32 = vec![Complex::new(0.0f32, 0.0); nc];
    c.bench_function("multigrid/restrict_f32_native", |b| {
        b.iter(|| t32.restrict_aosoa(&xn, &mut chi32).unwrap())
    });
    c.bench_function("multigrid/prolong_f32_native", |b| {
        b.iter(|| t32.prolong_aosoa(&chi32, &mut yn).unwrap())
    });
    let t64 = mg.transfer64();
    let l64 = mg.dirac64().layout().clone();
    let (mut x64, mut y64) = (vec![0.0f64; l64.field_len()], vec![0.0f64; l64.field_len()]);
    l64.to_aosoa(&x, &mut x64);
    let mut chi64 = vec![Complex64::new(0.0, 0.0); nc];
    c.bench_function("multigrid/restrict_f64_native", |b| {
        b.iter(|| t64.restrict_aosoa(&x64, &mut chi64).unwrap())
    });
    c.bench_function("multigrid/prolong_f64_native", |b| {
        b.iter(|| t64.prolong_aosoa(&chi64, &mut y64).unwrap())
    });

    let mut cout32 = chi32.clone();
    let mut cout64 = chi64.clone();
    for (label, parallel) in [("serial", false), ("parallel", true)] {
        let mut c32 =
            symc::runtime::coarse::JitCoarseOperator::<f32>::new(mg.coarse_operator()).unwrap();
        c32.parallel = parallel;
        c.bench_function(&format!("multigrid/coarse_op_f32/{label}"), |b| {
            b.iter(|| c32.try_apply(false, &mut cout32, &chi32).unwrap())
        });
    }
    let c64 = mg.coarse64();
    c.bench_function("multigrid/coarse_op_f64", |b| {
        b.iter(|| c64.try_apply(false, &mut cout64, &chi64).unwrap())
    });
    c.bench_function("multigrid/coarse_op_reference_f64", |b| {
        b.iter(|| mg.coarse_operator().apply(&mut cout64, &chi64))
    });

    // The coarse solve of the reference cycle (GMRES(25), ≤ 50 iterations; tol 0 so every
    // call does all 50) with the serial workspace solver and with the general GMRES.
    let sp = SolveParams { tol: 0.0, restart: 25, max_iterations: 50 };
    let c32 = mg.coarse32();
    let mut cg = CoarseGmres::<f32>::new(nc, 25);
    let mut y32 = vec![Complex::new(0.0f32, 0.0); nc];
    c.bench_function("multigrid/coarse_gmres50/serial_workspace", |b| {
        b.iter(|| {
            y32.iter_mut().for_each(|z| *z = Complex::new(0.0, 0.0));
            black_box(cg.solve(c32, &chi32, &mut y32, &sp))
        })
    });
    c.bench_function("multigrid/coarse_gmres50/solve_gmres", |b| {
        b.iter(|| {
            y32.iter_mut().for_each(|z| *z = Complex::new(0.0, 0.0));
            black_box(solve::gmres(c32, &chi32, &mut y32, &sp))
        })
    });

    // One reference cycle on the mixed solver's f32 buffers.
    let len = mg.native().buffer_len();
    let (mut inp, mut out) = (vec![0.0f32; len], vec![0.0f32; len]);
    let mut xn64 = x.clone();
    let nrm = fermion::norm(&xn64);
    xn64.iter_mut().for_each(|z| *z /= nrm);
    d32_import(&mg, &xn64, &mut inp);
    let mut native = mg.native();
    c.bench_function("multigrid/cycle_reference_f32_native", |b| {
        b.iter(|| native.apply(&mut out, &mut inp).unwrap())
    });
}

fn d32_import(mg: &Multigrid, x: &[Complex64], buf: &mut [f32]) {
    mg.dirac32().import(x, buf);
}

criterion_group! {
    name = multigrid;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(multigrid);
