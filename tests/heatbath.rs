//! The quenched heatbath against physics: strong-coupling expansion, the β = 6.0 literature
//! plaquette (with an autocorrelation-aware error), gauge invariance, exact action
//! conservation of overrelaxation, and thread-count independence of the chain.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use symc::lattice::gauge::GaugeField;
use symc::lattice::heatbath::{
    Heatbath, HeatbathParams, Start, cached_config, chain_estimate, generate, plaquette,
};
use symc::lattice::io::{GaugeFormat, WriteOptions, read_gauge, write_gauge};

/// Runs `therm + meas` compound sweeps and returns the estimate over the last `meas`.
fn measure(dims: [usize; 4], params: &HeatbathParams, therm: usize) -> (f64, f64, f64) {
    let (_, hist) = generate(dims, params, |_, _| {});
    let e = chain_estimate(&hist[therm..]);
    eprintln!(
        "dims {dims:?} beta {} sweeps {} (therm {therm}): P = {:.6} ± {:.6}, tau_int {:.2}",
        params.beta, params.sweeps, e.mean, e.error, e.tau_int
    );
    (e.mean, e.error, e.tau_int)
}

#[test]
fn unit_field_has_plaquette_one_and_cold_start_is_unit() {
    let mut p = HeatbathParams::new(6.0, 0, 1);
    p.start = Start::Cold;
    let hb = Heatbath::new([4, 4, 4, 4], &p);
    assert_eq!(plaquette(hb.field()), 1.0);
    assert_eq!(GaugeField::unit([2, 3, 4, 5]).plaquette(), 1.0);
}

#[test]
fn hot_start_is_disordered_and_su3() {
    let mut p = HeatbathParams::new(6.0, 0, 1);
    p.start = Start::Hot;
    let hb = Heatbath::new([6, 6, 6, 6], &p);
    let f = hb.field();
    // Haar average of Re tr U_p / 3 is 0; 7776 plaquettes give σ ≈ 0.003.
    assert!(plaquette(f).abs() < 0.015, "{}", plaquette(f));
    for u in &f.links {
        assert!((*u * u.adj()).dist(&symc::lattice::su3::Su3::identity()) < 1e-12);
    }
}

#[test]
fn strong_coupling_plaquette() {
    // ⟨P⟩ = β/18 + β²/216 + O(β³) (character expansion of the single plaquette; other
    // plaquettes enter at O(β⁵)). At β = 0.5 the O(β³) remainder is below 3e-4.
    let mut p = HeatbathParams::new(0.5, 330, 2);
    p.overrelax_per_sweep = 1;
    p.start = Start::Hot;
    let (mean, err, _) = measure([6, 6, 6, 6], &p, 30);
    let want = 0.5 / 18.0 + 0.25 / 216.0;
    assert!((mean - want).abs() < 3.0 * err + 3e-4, "{mean} ± {err} vs {want}");
}

#[test]
fn plaquette_is_gauge_invariant_on_a_heatbath_field() {
    let (field, _) = generate([4, 4, 4, 8], &HeatbathParams::new(6.0, 5, 3), |_, _| {});
    let omega = field.random_transformation(&mut ChaCha8Rng::seed_from_u64(4));
    let g = field.gauge_transform(&omega);
    assert!(field.links.iter().zip(&g.links).any(|(a, b)| a.dist(b) > 0.1));
    assert!((plaquette(&field) - plaquette(&g)).abs() < 1e-13);
    let (a, b) = (field.plaquette_parts(), g.plaquette_parts());
    assert!((a.1 - b.1).abs() < 1e-13 && (a.2 - b.2).abs() < 1e-13);
    // The parallel plaquette agrees with the serial reference.
    assert!((plaquette(&field) - field.plaquette()).abs() < 1e-13);
}

#[test]
fn overrelaxation_sweep_conserves_the_action() {
    let (field, _) = generate([4, 4, 4, 4], &HeatbathParams::new(6.0, 3, 5), |_, _| {});
    let mut hb = Heatbath::from_field(field.clone(), &HeatbathParams::new(6.0, 0, 5), 3);
    let before = plaquette(hb.field());
    hb.overrelax_sweep();
    let after = plaquette(hb.field());
    assert!((before - after).abs() < 1e-12, "{before} vs {after}");
    assert!(hb.field().links.iter().zip(&field.links).all(|(a, b)| a.dist(b) > 1e-6));
    // A heatbath sweep does change it (negative control).
    hb.heatbath_sweep();
    assert!((plaquette(hb.field()) - after).abs() > 1e-4);
}

fn run_with_threads(threads: usize, params: &HeatbathParams) -> (GaugeField, Vec<f64>) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| generate([4, 4, 4, 8], params, |_, _| {}))
}

#[test]
fn invalid_parameters_are_rejected_and_odd_extents_work() {
    use symc::lattice::heatbath::{HeatbathError, validate};
    let ok = HeatbathParams::new(6.0, 1, 1);
    assert!(validate([4, 4, 4, 4], &ok).is_ok());
    assert!(matches!(validate([4, 1, 4, 4], &ok), Err(HeatbathError::Params { .. })));
    assert!(matches!(
        validate([4, 4, 4, 4], &HeatbathParams::new(-1.0, 1, 1)),
        Err(HeatbathError::Params { .. })
    ));
    assert!(matches!(
        validate([4, 4, 4, 4], &HeatbathParams::new(f64::NAN, 1, 1)),
        Err(HeatbathError::Params { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    assert!(cached_config([4, 4, 0, 4], 6.0, 1, 1, dir.path()).is_err());
    // Odd extents fall back to in-place sequential updates: still thread-independent.
    let p = HeatbathParams::new(6.0, 3, 1);
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| generate([3, 4, 4, 5], &p, |_, _| {}))
    };
    let (a, ha) = run(1);
    let (b, hb) = run(2);
    assert_eq!(ha, hb);
    assert!(a.links.iter().zip(&b.links).all(|(x, y)| x == y));
    assert!(ha[2] < 0.9 && ha[2] > 0.5, "{ha:?}");
}

#[test]
fn chain_is_identical_on_one_and_two_threads() {
    let mut p = HeatbathParams::new(5.7, 6, 77);
    p.start = Start::Hot;
    p.reunitarize_every = 2;
    let (a, ha) = run_with_threads(1, &p);
    let (b, hb) = run_with_threads(2, &p);
    assert_eq!(ha, hb);
    assert!(a.links.iter().zip(&b.links).all(|(x, y)| x == y));
    // A different seed gives a different chain (negative control).
    p.seed = 78;
    let (_, hc) = run_with_threads(2, &p);
    assert_ne!(ha, hc);
}

#[test]
fn continuing_a_chain_equals_an_uninterrupted_run() {
    let p = HeatbathParams::new(6.0, 6, 21);
    let (full, _) = generate([4, 4, 4, 4], &p, |_, _| {});
    let (half, _) = generate([4, 4, 4, 4], &HeatbathParams { sweeps: 3, ..p.clone() }, |_, _| {});
    // Through a file, as a user resuming a run would.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("half.nersc");
    write_gauge(&path, &half, GaugeFormat::Nersc, &WriteOptions::default()).unwrap();
    let mut hb = Heatbath::from_field(read_gauge(&path).unwrap().field, &p, 3);
    for _ in 0..3 {
        hb.sweep();
    }
    assert!(hb.field().links.iter().zip(&full.links).all(|(a, b)| a == b));
}

#[test]
fn cached_config_is_reused_and_survives_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let dims = [4, 4, 4, 4];
    let a = cached_config(dims, 6.0, 9, 4, dir.path()).unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    let path = &files[0];
    // Reused: a second call reads the file (same links, file untouched).
    let stamp = std::fs::metadata(path).unwrap().modified().unwrap();
    let b = cached_config(dims, 6.0, 9, 4, dir.path()).unwrap();
    assert!(a.links.iter().zip(&b.links).all(|(x, y)| x == y));
    assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), stamp);
    // Corrupt (one flipped bit, then truncation): regenerated, identical to the original.
    let mut bytes = std::fs::read(path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 4;
    std::fs::write(path, &bytes).unwrap();
    let c = cached_config(dims, 6.0, 9, 4, dir.path()).unwrap();
    assert!(a.links.iter().zip(&c.links).all(|(x, y)| x == y));
    assert!(read_gauge(path).is_ok());
    std::fs::write(path, &bytes[..1000]).unwrap();
    let d = cached_config(dims, 6.0, 9, 4, dir.path()).unwrap();
    assert!(a.links.iter().zip(&d.links).all(|(x, y)| x == y));
}

/// β = 6.0 on 8⁴ in the default suite (about 15 s in release on 2 cores).
#[test]
fn beta6_plaquette_on_8_4() {
    let mut p = HeatbathParams::new(6.0, 130, 1);
    p.start = Start::Hot;
    let (mean, err, _) = measure([8, 8, 8, 8], &p, 30);
    // physics.md §4.2: literature 0.5937; finite volume ≤ ~1e-3 → 2e-3 + 3σ.
    assert!((mean - 0.5937).abs() < 2e-3 + 3.0 * err, "{mean} ± {err}");
}

/// The full thermalisation check on 8³×16 (400 compound sweeps, ≈ 1 min on an idle 2-core machine). CI runs it explicitly:
/// `cargo test --release --test heatbath -- --ignored beta6_plaquette_on_8_8_8_16`.
#[test]
#[ignore]
fn beta6_plaquette_on_8_8_8_16() {
    let p = HeatbathParams::new(6.0, 400, 7);
    let (mean, err, _) = measure([8, 8, 8, 16], &p, 100);
    assert!((mean - 0.5937).abs() < 2e-3 + 3.0 * err, "{mean} ± {err}");
    assert!(err < 5e-4, "statistical error {err} too large to test anything");
}

/// Seeded regression (the pattern of GPT's heatbath test): the chain is a pure function of
/// (seed, β, dims, start, schedule), so these numbers change only if the algorithm or the
/// random-number keying changes — which would also change every cached configuration.
/// (Recorded with this implementation; GPT's own pin, P = 0.559646 after 5 sweeps, uses a
/// different RNG and update order and is not comparable digit by digit.)
#[test]
fn seeded_chain_is_pinned() {
    let mut p = HeatbathParams::new(5.5, 5, 1);
    p.overrelax_per_sweep = 0;
    let (_, hist) = generate([8, 8, 8, 8], &p, |_, _| {});
    let want = [0.659347092286, 0.593131855809, 0.570057779891, 0.561774700994, 0.550660951424];
    for (i, (h, w)) in hist.iter().zip(want).enumerate() {
        assert!((h - w).abs() < 1e-11, "sweep {}: {h:.12} vs {w:.12}", i + 1);
    }
}
