//! The `--verify` checks on small plain-Rust maps whose properties are known: each check passes
//! on a map that has the property and fails on a copy that breaks it (the negative controls that
//! show `--verify` can fail).

use num_complex::Complex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use symc::inspect::verify::*;
use symc::lattice::gauge::GaugeField;

fn map(i: &[usize], o: &[usize], lo: &[usize], hi: &[usize]) -> ImageMap {
    ImageMap {
        in_shape: i.to_vec(),
        out_shape: o.to_vec(),
        margin_lo: lo.to_vec(),
        margin_hi: hi.to_vec(),
        axes: vec![true; lo.len()],
        up_to_constant: false,
    }
}

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(7)
}

/// L(w, b) = Σ_i tanh(w_i x_i + b)² with x fixed: a weight block and a one-entry bias block.
fn loss(v: &[f64]) -> Result<f64, VerifyError> {
    let n = v.len() - 1;
    Ok((0..n).map(|i| ((v[i] * (i as f64 + 0.5) + v[n]).tanh()).powi(2)).sum())
}

fn grad(v: &[f64]) -> Vec<f64> {
    let n = v.len() - 1;
    let mut g = vec![0.0; v.len()];
    for i in 0..n {
        let x = i as f64 + 0.5;
        let t = (v[i] * x + v[n]).tanh();
        let d = 2.0 * t * (1.0 - t * t);
        g[i] = d * x;
        g[n] += d;
    }
    g
}

#[test]
fn gradient_check_passes_the_true_gradient_and_fails_a_perturbed_bias_rule() {
    let v: Vec<f64> = (0..9).map(|i| 0.1 * (i as f64) - 0.35).collect();
    let blocks = vec![("w".to_string(), 0..8), ("b".to_string(), 8..9)];
    let c = gradient_check(
        "fd",
        &loss,
        &v,
        &grad(&v),
        &blocks,
        2,
        1e-5,
        tol::FINITE_DIFFERENCE,
        &mut rng(),
    )
    .unwrap();
    assert!(c.passed, "{c:?}");
    assert!(c.max_rel < 1e-8, "{c:?}");
    // The bias gradient off by 1 %: small next to the weights, caught by its own block.
    let mut g = grad(&v);
    g[8] *= 1.01;
    let c =
        gradient_check("fd", &loss, &v, &g, &blocks, 2, 1e-5, tol::FINITE_DIFFERENCE, &mut rng())
            .unwrap();
    assert!(!c.passed, "{c:?}");
    assert!(c.detail.contains("worst: b"), "{c:?}");
    assert!((c.max_rel - 0.01 / 1.01).abs() < 1e-4, "{c:?}");
}

#[test]
fn compare_reports_norm_relative_errors_and_fails_on_nan() {
    let c = Check::compare("x", String::new(), &[1.0, 2.0, 4.0001], &[1.0, 2.0, 4.0], 1e-4);
    assert!((c.max_abs - 1e-4).abs() < 1e-12 && (c.max_rel - 2.5e-5).abs() < 1e-9 && c.passed);
    let c = Check::compare("x", String::new(), &[f64::NAN], &[1.0], 1e-4);
    assert!(!c.passed);
    let c = Check::compare("x", String::new(), &[1.0], &[1.0, 2.0], 1e-4);
    assert!(!c.passed);
}

/// A valid 3×3 convolution of a 1-channel 9×11 image, plus `extra(p)` at output position p.
fn conv(x: &[f64], extra: &dyn Fn(usize, usize) -> f64, same: bool) -> Vec<f64> {
    let (h, w) = (9usize, 11usize);
    let k = [[0.3, -0.2, 0.5], [0.1, 0.9, -0.4], [0.25, 0.0, -0.7]];
    let (oh, ow, off) = if same { (h, w, 1isize) } else { (h - 2, w - 2, 0) };
    let mut y = vec![0.0; oh * ow];
    for i in 0..oh {
        for j in 0..ow {
            let mut s = extra(i, j);
            for (a, row) in k.iter().enumerate() {
                for (b, kv) in row.iter().enumerate() {
                    let (ii, jj) = (i as isize + a as isize - off, j as isize + b as isize - off);
                    if ii >= 0 && jj >= 0 && (ii as usize) < h && (jj as usize) < w {
                        s += kv * x[ii as usize * w + jj as usize];
                    }
                }
            }
            y[i * ow + j] = s.max(0.0) + 0.1 * s;
        }
    }
    y
}

#[test]
fn translation_check_passes_convolutions_and_fails_a_position_dependent_term() {
    let x = gaussian(99, &mut rng());
    let ok = |x: &[f64]| Ok(conv(x, &|_, _| 0.2, false));
    let c = translation_check(
        "t",
        &ok,
        &x,
        &map(&[1, 9, 11], &[1, 7, 9], &[0, 0], &[0, 0]),
        4,
        1e-12,
        &mut rng(),
    )
    .unwrap();
    assert!(c.passed && c.max_abs < 1e-14, "{c:?}");
    // Same padding: equivariant only one pixel away from the border.
    let same = |x: &[f64]| Ok(conv(x, &|_, _| 0.0, true));
    let c = translation_check(
        "t",
        &same,
        &x,
        &map(&[1, 9, 11], &[1, 9, 11], &[1, 1], &[1, 1]),
        4,
        1e-12,
        &mut rng(),
    )
    .unwrap();
    assert!(c.passed, "{c:?}");
    // Without the margin the zero padding shows up: the check can see borders.
    let c = translation_check(
        "t",
        &same,
        &x,
        &map(&[1, 9, 11], &[1, 9, 11], &[0, 0], &[0, 0]),
        4,
        1e-12,
        &mut rng(),
    )
    .unwrap();
    assert!(!c.passed, "{c:?}");
    let broken = |x: &[f64]| Ok(conv(x, &|i, j| 0.01 * (i * j) as f64, false));
    let c = translation_check(
        "t",
        &broken,
        &x,
        &map(&[1, 9, 11], &[1, 7, 9], &[0, 0], &[0, 0]),
        4,
        1e-6,
        &mut rng(),
    )
    .unwrap();
    assert!(!c.passed, "{c:?}");
}

#[test]
fn translation_check_skips_outputs_without_room() {
    let x = vec![1.0; 4];
    let f = |x: &[f64]| Ok(vec![x.iter().sum::<f64>()]);
    let c = translation_check(
        "t",
        &f,
        &x,
        &map(&[1, 2, 2], &[1, 1, 1], &[0, 0], &[0, 0]),
        2,
        1e-12,
        &mut rng(),
    )
    .unwrap();
    assert!(c.passed && c.detail.contains("no room"), "{c:?}");
}

/// One-hop covariant Laplacian-like stencil: y(x) = Σ_μ U_μ(x) ψ(x+μ) + U_μ(x−μ)† ψ(x−μ),
/// with `links = false` dropping the links (not gauge covariant), and `site_weight` a
/// site-dependent factor (not translation invariant).
fn hop(u: &GaugeField, psi: &[Complex<f64>], links: bool, site_weight: bool) -> Fermions {
    let g = &u.geom;
    let v = g.volume();
    let mut y = vec![Complex::new(0.0, 0.0); psi.len()];
    for s in 0..v {
        let w = if site_weight { 1.0 + 0.1 * (s % 3) as f64 } else { 1.0 };
        for mu in 0..4 {
            let (up, dn) = (g.up(s, mu), g.dn(s, mu));
            for spin in 0..4 {
                let a = [
                    psi[up * 12 + spin * 3],
                    psi[up * 12 + spin * 3 + 1],
                    psi[up * 12 + spin * 3 + 2],
                ];
                let b = [
                    psi[dn * 12 + spin * 3],
                    psi[dn * 12 + spin * 3 + 1],
                    psi[dn * 12 + spin * 3 + 2],
                ];
                let (ta, tb) = if links {
                    (u.link(s, mu).mul_vec(&a), u.link(dn, mu).adj_mul_vec(&b))
                } else {
                    (a, b)
                };
                for c in 0..3 {
                    y[s * 12 + spin * 3 + c] += (ta[c] + tb[c]) * w;
                }
            }
        }
    }
    y
}

#[test]
fn gauge_and_lattice_checks_pass_a_covariant_stencil_and_fail_broken_ones() {
    let mut r = rng();
    let u = GaugeField::random([4, 4, 2, 6], &mut r);
    let psi: Vec<Complex<f64>> = gaussian(2 * u.geom.volume() * 12, &mut r)
        .chunks(2)
        .map(|c| Complex::new(c[0], c[1]))
        .collect();
    let good = |u: &GaugeField, p: &[Complex<f64>]| Ok(hop(u, p, true, false));
    let c = gauge_check("g", &good, &u, &psi, 2, tol::F64_SYMMETRY, &mut r).unwrap();
    assert!(c.passed && c.max_rel < 1e-13, "{c:?}");
    let c = lattice_translation_check("t", &good, &u, &psi, 3, tol::F64_SYMMETRY, &mut r).unwrap();
    assert!(c.passed && c.max_abs == 0.0, "{c:?}");
    let no_links = |u: &GaugeField, p: &[Complex<f64>]| Ok(hop(u, p, false, false));
    let c = gauge_check("g", &no_links, &u, &psi, 1, tol::F32_SYMMETRY, &mut r).unwrap();
    assert!(!c.passed && c.max_rel > 0.1, "{c:?}");
    let weighted = |u: &GaugeField, p: &[Complex<f64>]| Ok(hop(u, p, true, true));
    let c = gauge_check("g", &weighted, &u, &psi, 1, tol::F64_SYMMETRY, &mut r).unwrap();
    assert!(c.passed, "a site weight keeps gauge covariance: {c:?}");
    let c =
        lattice_translation_check("t", &weighted, &u, &psi, 3, tol::F32_SYMMETRY, &mut r).unwrap();
    assert!(!c.passed, "{c:?}");
}

#[test]
fn shifts_and_transformations_are_exact_inverses_of_themselves() {
    let mut r = rng();
    let u = GaugeField::random([2, 3, 2, 4], &mut r);
    let g = &u.geom;
    let psi: Vec<Complex<f64>> =
        gaussian(g.volume() * 24, &mut r).chunks(2).map(|c| Complex::new(c[0], c[1])).collect();
    let s = [1, 2, 1, 3];
    let back = [1, 1, 1, 1];
    let twice = shift_fermions(&shift_fermions(&psi, g, s), g, back);
    assert_eq!(twice, shift_fermions(&psi, g, [0, 0, 0, 0]));
    assert_eq!(twice, psi, "shifting by s then by dims - s is the identity");
    let omega = u.random_transformation(&mut r);
    let inv: Vec<_> = omega.iter().map(|o| o.adj()).collect();
    let round = gauge_transform_fermions(&gauge_transform_fermions(&psi, &omega), &inv);
    assert!(round.iter().zip(&psi).all(|(a, b)| (a - b).norm() < 1e-13));
    let x: Vec<f64> = (0..12).map(|i| i as f64).collect();
    assert_eq!(
        shift_image(&x, &[1, 3, 4], &[1, -1]),
        vec![0., 0., 0., 0., 1., 2., 3., 0., 5., 6., 7., 0.]
    );
}

/// conv(same, 3x5) → relu → conv(valid, 3x3) → flatten → dense → log_softmax, built by hand.
fn small_net() -> symc::ir::Graph {
    use symc::ir::*;
    let real = |s: &[usize]| ValueType::Real { shape: s.to_vec() };
    let layer = |kind, i: u32, params: Vec<u32>, name: &str| Layer {
        kind,
        inputs: vec![ValueId(i)],
        output: ValueId(i + 1),
        params: params.into_iter().map(ParamId).collect(),
        name: name.into(),
        span: Span::default(),
    };
    let p = |name: &str, shape: &[usize], offset| Param {
        name: name.into(),
        shape: shape.to_vec(),
        complex: false,
        offset,
    };
    Graph {
        name: "small".into(),
        symmetry: Symmetry::Translation { axes: vec![1, 2] },
        lattice: None,
        values: vec![
            real(&[1, 8, 9]),
            real(&[2, 8, 9]),
            real(&[2, 8, 9]),
            real(&[2, 6, 7]),
            real(&[84]),
            real(&[3]),
            real(&[3]),
        ],
        input_name: "x".into(),
        layers: vec![
            layer(
                LayerKind::Conv {
                    in_channels: 1,
                    out_channels: 2,
                    window: vec![3, 5],
                    padding: Padding::Same,
                    bias: true,
                    in_spatial: vec![8, 9],
                    out_spatial: vec![8, 9],
                },
                0,
                vec![0, 1],
                "c1",
            ),
            layer(LayerKind::Activation(Activation::Relu), 1, vec![], "relu1"),
            layer(
                LayerKind::Conv {
                    in_channels: 2,
                    out_channels: 2,
                    window: vec![3, 3],
                    padding: Padding::Valid,
                    bias: false,
                    in_spatial: vec![8, 9],
                    out_spatial: vec![6, 7],
                },
                2,
                vec![2],
                "c2",
            ),
            layer(LayerKind::Flatten, 3, vec![], "flat"),
            layer(
                LayerKind::Dense { in_features: 84, out_features: 3, bias: false, complex: false },
                4,
                vec![3],
                "d",
            ),
            layer(LayerKind::LogSoftmax, 5, vec![], "ls"),
        ],
        params: vec![
            p("c1.w", &[2, 1, 3, 5], 0),
            p("c1.b", &[2], 30),
            p("c2.w", &[2, 2, 3, 3], 32),
            p("d.w", &[3, 84], 68),
        ],
        output: ValueId(6),
        train: None,
        split_of: None,
    }
}

#[test]
fn translation_prefixes_carry_padding_margins_and_stop_at_flatten() {
    let g = small_net();
    let p = translation_prefixes(&g);
    assert_eq!(p.len(), 3);
    assert_eq!(
        (p[0].layers, p[0].margin_lo.clone(), p[0].margin_hi.clone()),
        (1, vec![1, 2], vec![1, 2])
    );
    assert_eq!(p[2].out_shape, vec![2, 6, 7]);
    assert_eq!((p[2].margin_lo.clone(), p[2].margin_hi.clone()), (vec![1, 2], vec![1, 2]));
    let pg = prefix_graph(&g, 3).unwrap();
    assert_eq!(pg.layers.len(), 4);
    assert_eq!(pg.params.len(), 3);
    assert_eq!(pg.param_scalars(), 68);
    assert_eq!(pg.layers[3].kind, symc::ir::LayerKind::LogSoftmax);
    assert_eq!(pg.value(pg.output), &symc::ir::ValueType::Real { shape: vec![2, 6, 7] });
}

#[test]
fn up_to_constant_allows_only_a_common_offset() {
    let x = gaussian(99, &mut rng());
    let mut m = map(&[1, 9, 11], &[1, 7, 9], &[0, 0], &[0, 0]);
    m.up_to_constant = true;
    // A normaliser that depends on the whole input (like log-softmax's log-sum-exp).
    let norm = |x: &[f64]| {
        let y = conv(x, &|_, _| 0.0, false);
        let c = y.iter().map(|v| v.exp()).sum::<f64>().ln();
        Ok(y.iter().map(|v| v - c).collect())
    };
    let c = translation_check("t", &norm, &x, &m, 3, 1e-12, &mut rng()).unwrap();
    assert!(c.passed, "{c:?}");
    m.up_to_constant = false;
    let c = translation_check("t", &norm, &x, &m, 3, 1e-12, &mut rng()).unwrap();
    assert!(!c.passed, "without the allowance the normaliser breaks the check: {c:?}");
}
