//! `symc inspect --verify`: numerical self-checks of a compiled network, from the command line.
//!
//! Three independent oracles, each reported as a maximum error against a tolerance:
//! 1. **JIT against the reference evaluator** — the plain-Rust f64 evaluator of the same IR;
//!    outputs and gradients, errors relative to the largest reference value.
//! 2. **Gradient against central finite differences in f64** — along random directions, one
//!    group per parameter tensor (and the input), so a wrong rule for a small tensor (a bias)
//!    is not hidden behind a large one.
//! 3. **The declared symmetry** — random translations of the input for translation networks
//!    (compared away from the borders, where zero padding breaks the symmetry), random SU(3)
//!    gauge transformations and random periodic lattice shifts for gauge networks:
//!    `f(Ωψ; U^Ω) = Ω f(ψ; U)` and `f(Tψ; TU) = T f(ψ; U)`.
//!
//! The checks are written against closures, not against a particular executor, so the dense/conv
//! classifier and the lattice network (and test doubles that break one property on purpose)
//! plug into the same code. A failed check is a failed command: the CLI exits non-zero.

use crate::lattice::gauge::GaugeField;
use crate::lattice::geometry::Geometry;
use crate::lattice::su3::Su3;
use num_complex::Complex;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use std::ops::Range;

/// A backend failed while a check was running (a kernel refused a call, a shape did not fit).
/// This is an internal error, never a verdict on the model.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("while verifying ({what}): {message}")]
#[diagnostic(
    code(symc::inspect::verify_backend),
    help(
        "this is a bug in symc's executors, not in the model; please report it with the .sym file"
    )
)]
pub struct VerifyError {
    pub what: String,
    pub message: String,
}

impl VerifyError {
    pub fn new(what: impl Into<String>, message: impl ToString) -> Self {
        VerifyError { what: what.into(), message: message.to_string() }
    }
}

/// Tolerances, stated once per precision (relative to the largest magnitude of the oracle).
pub mod tol {
    /// f32 kernel output against the f64 reference: sums of up to ~10⁴ f32 terms.
    pub const F32_OUTPUT: f64 = 1e-4;
    /// f32 kernel gradient against the f64 reference gradient (longer accumulation chains).
    pub const F32_GRADIENT: f64 = 1e-3;
    /// f64 kernels against the f64 reference.
    pub const F64: f64 = 1e-10;
    /// Central differences in f64 with a step of ~1e-5: truncation ~1e-10, round-off ~1e-11.
    pub const FINITE_DIFFERENCE: f64 = 1e-6;
    /// Symmetry of f32 kernels (two f32 evaluations compared with each other).
    pub const F32_SYMMETRY: f64 = 1e-4;
    /// Symmetry of f64 evaluations.
    pub const F64_SYMMETRY: f64 = 1e-10;
}

/// One line of the verdict.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Check {
    /// Short name, e.g. `jit-vs-reference forward`.
    pub name: String,
    /// What exactly was compared (sizes, seeds, shifts).
    pub detail: String,
    pub max_abs: f64,
    /// `max_abs` divided by the scale of the oracle values.
    pub max_rel: f64,
    pub tolerance: f64,
    pub passed: bool,
    /// The check did not apply to this model (`detail` says why); it counts as passed.
    pub skipped: bool,
}

impl Check {
    fn new(name: &str, detail: String, max_abs: f64, scale: f64, tolerance: f64) -> Check {
        let max_rel = if scale > 0.0 { max_abs / scale } else { max_abs };
        // NaN anywhere fails: `!(x <= tol)` is true for NaN.
        let passed = max_rel <= tolerance && max_abs.is_finite();
        Check { name: name.into(), detail, max_abs, max_rel, tolerance, passed, skipped: false }
    }

    /// Elementwise comparison of `got` against the oracle `want`; the relative error is taken
    /// against the largest |want| (a norm-wise measure that is meaningful near zeros).
    pub fn compare(name: &str, detail: String, got: &[f64], want: &[f64], tolerance: f64) -> Check {
        if got.len() != want.len() {
            let d = format!("{detail}: length {} against {}", got.len(), want.len());
            return Check::new(name, d, f64::INFINITY, 1.0, tolerance);
        }
        let (abs, scale) = max_diff(got.iter().copied().zip(want.iter().copied()));
        Check::new(name, detail, abs, scale, tolerance)
    }

    /// A check that could not run on this model, reported as passed with the reason (e.g. a
    /// 1×1 output admits no non-trivial shift).
    pub fn skipped(name: &str, reason: String) -> Check {
        Check {
            name: name.into(),
            detail: reason,
            max_abs: 0.0,
            max_rel: 0.0,
            tolerance: 0.0,
            passed: true,
            skipped: true,
        }
    }
}

/// Max |a − b| and max |b| over pairs; NaN propagates into the maximum.
fn max_diff(pairs: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
    let mut abs = 0.0f64;
    let mut scale = 0.0f64;
    for (a, b) in pairs {
        let d = (a - b).abs();
        abs = if d.is_nan() || abs.is_nan() { f64::NAN } else { abs.max(d) };
        scale = scale.max(b.abs());
    }
    (abs, scale)
}

/// The verdict for one model.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VerifyReport {
    pub model: String,
    pub checks: Vec<Check>,
}

impl VerifyReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// Gaussian vector.
pub fn gaussian<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Vec<f64> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

/// Central finite differences of `loss` at `x0` along `per_block` directions for every named
/// block of coordinates, against `grad · d`.
///
/// Directions are `normalise(ĝ + r̂)` with ĝ the block's unit gradient and r̂ a random unit
/// vector: the directional derivative is then of the order of `‖g_block‖`, far above the
/// round-off of the loss (a purely random direction in a block of 10⁵ inputs has a derivative
/// ~300× smaller and drowns in it), while the random part still probes every coordinate. The
/// error of a direction is relative to `max(|fd|, |g·d|)`; for a block whose gradient is exactly
/// zero it is relative to the norm of the whole gradient. The step is `h · (1 + rms(x0))`.
#[allow(clippy::too_many_arguments)]
pub fn gradient_check<R: Rng + ?Sized>(
    name: &str,
    loss: &dyn Fn(&[f64]) -> Result<f64, VerifyError>,
    x0: &[f64],
    grad: &[f64],
    blocks: &[(String, Range<usize>)],
    per_block: usize,
    h: f64,
    tolerance: f64,
    rng: &mut R,
) -> Result<Check, VerifyError> {
    if grad.len() != x0.len() {
        let d = format!("gradient has {} entries for {} variables", grad.len(), x0.len());
        return Ok(Check::new(name, d, f64::INFINITY, 1.0, tolerance));
    }
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let g_all = norm(grad);
    let mut worst_abs = 0.0f64;
    let mut worst_rel = 0.0f64;
    let mut worst_block = String::new();
    let mut x = x0.to_vec();
    for (bname, range) in blocks {
        let n = range.len();
        if n == 0 {
            continue;
        }
        let rms = (x0[range.clone()].iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt();
        let step = h * (1.0 + rms);
        let g = &grad[range.clone()];
        let gn = norm(g);
        for _ in 0..per_block {
            let mut d = gaussian(n, rng);
            let rn = norm(&d);
            d.iter_mut().for_each(|v| *v /= rn);
            if gn > 0.0 {
                // Orient r̂ along ĝ so that ‖ĝ + r̂‖ ≥ √2 (never a cancellation).
                let sign =
                    if d.iter().zip(g).map(|(a, b)| a * b).sum::<f64>() < 0.0 { -1.0 } else { 1.0 };
                d.iter_mut().zip(g).for_each(|(v, gk)| *v = sign * *v + gk / gn);
                let dn = norm(&d);
                d.iter_mut().for_each(|v| *v /= dn);
            }
            for (k, i) in range.clone().enumerate() {
                x[i] = x0[i] + step * d[k];
            }
            let lp = loss(&x)?;
            for (k, i) in range.clone().enumerate() {
                x[i] = x0[i] - step * d[k];
            }
            let lm = loss(&x)?;
            x[range.clone()].copy_from_slice(&x0[range.clone()]);
            let fd = (lp - lm) / (2.0 * step);
            let an: f64 = g.iter().zip(&d).map(|(gk, dk)| gk * dk).sum();
            let abs = (fd - an).abs();
            let scale = if gn > 0.0 { fd.abs().max(an.abs()) } else { g_all };
            let rel = abs / scale.max(f64::MIN_POSITIVE);
            if rel > worst_rel || rel.is_nan() || abs.is_nan() {
                worst_rel = if rel.is_nan() { f64::NAN } else { rel };
                worst_abs = abs;
                worst_block = bname.clone();
            }
        }
    }
    let detail = format!(
        "{per_block} directions (gradient + random) in each of {} blocks, step {h:.0e}; worst: {}",
        blocks.len(),
        if worst_block.is_empty() { "-" } else { &worst_block }
    );
    let passed = worst_rel <= tolerance && worst_abs.is_finite();
    Ok(Check {
        name: name.into(),
        detail,
        max_abs: worst_abs,
        max_rel: worst_rel,
        tolerance,
        passed,
        skipped: false,
    })
}

/// Shape of one image sample: `[channels, spatial...]`.
pub type ImageShape = Vec<usize>;

/// Translate every channel of an image by `shift` (one entry per spatial axis), filling with
/// zeros: `out[c, p] = x[c, p − shift]`.
pub fn shift_image(x: &[f64], shape: &[usize], shift: &[isize]) -> Vec<f64> {
    let spatial = &shape[1..];
    let per_channel: usize = spatial.iter().product();
    let mut out = vec![0.0; x.len()];
    let mut coord = vec![0usize; spatial.len()];
    for p in 0..per_channel {
        // Decompose p (row-major, last axis fastest).
        let mut r = p;
        for a in (0..spatial.len()).rev() {
            coord[a] = r % spatial[a];
            r /= spatial[a];
        }
        let mut src = 0usize;
        let mut inside = true;
        for a in 0..spatial.len() {
            let c = coord[a] as isize - shift[a];
            if c < 0 || c >= spatial[a] as isize {
                inside = false;
                break;
            }
            src = src * spatial[a] + c as usize;
        }
        if inside {
            for ch in 0..shape[0] {
                out[ch * per_channel + p] = x[ch * per_channel + src];
            }
        }
    }
    out
}

/// Compare `y_shifted[c, p]` with `y[c, p − shift]` for the positions `p` where both `p` and
/// `p − shift` lie inside `[margin_lo, extent − margin_hi)` on every axis: the region that no
/// zero-filled or padded value can reach. With `up_to_constant`, one common offset is allowed
/// (the mean difference is removed first): a map followed by a log-softmax over all positions is
/// equivariant only up to the per-sample normaliser. Returns (max abs error, max |y|, count).
pub fn translation_error(
    y: &[f64],
    y_shifted: &[f64],
    shape: &[usize],
    shift: &[isize],
    margin_lo: &[usize],
    margin_hi: &[usize],
    up_to_constant: bool,
) -> (f64, f64, usize) {
    let spatial = &shape[1..];
    let per_channel: usize = spatial.iter().product();
    let mut coord = vec![0usize; spatial.len()];
    let mut pairs = Vec::new();
    for p in 0..per_channel {
        let mut r = p;
        for a in (0..spatial.len()).rev() {
            coord[a] = r % spatial[a];
            r /= spatial[a];
        }
        let mut src = 0usize;
        let mut ok = true;
        for a in 0..spatial.len() {
            let lo = margin_lo[a] as isize;
            let hi = spatial[a] as isize - margin_hi[a] as isize;
            let c = coord[a] as isize;
            let s = c - shift[a];
            if c < lo || c >= hi || s < lo || s >= hi {
                ok = false;
                break;
            }
            src = src * spatial[a] + s as usize;
        }
        if ok {
            for ch in 0..shape[0] {
                pairs.push((y_shifted[ch * per_channel + p], y[ch * per_channel + src]));
            }
        }
    }
    let n = pairs.len();
    let offset = if up_to_constant && n > 0 {
        pairs.iter().map(|(a, b)| a - b).sum::<f64>() / n as f64
    } else {
        0.0
    };
    let (abs, scale) = max_diff(pairs.into_iter().map(|(a, b)| (a - offset, b)));
    (abs, scale, n)
}

/// Where an image map lives: input/output shapes `[channels, spatial...]`, the output margins
/// that padding can reach, the spatial axes the symmetry is declared for, and whether the map
/// ends in a normaliser over all positions (log-softmax) that makes it equivariant only up to a
/// per-sample constant.
#[derive(Clone, Debug)]
pub struct ImageMap {
    pub in_shape: Vec<usize>,
    pub out_shape: Vec<usize>,
    pub margin_lo: Vec<usize>,
    pub margin_hi: Vec<usize>,
    pub axes: Vec<bool>,
    pub up_to_constant: bool,
}

/// Translation equivariance of an image map `f` (one sample in, one sample out): `shifts`
/// random shifts of up to 3 per declared axis (fewer where the output is small), compared away
/// from the borders.
pub fn translation_check<R: Rng + ?Sized>(
    name: &str,
    f: &dyn Fn(&[f64]) -> Result<Vec<f64>, VerifyError>,
    input: &[f64],
    map: &ImageMap,
    shifts: usize,
    tolerance: f64,
    rng: &mut R,
) -> Result<Check, VerifyError> {
    let ImageMap { in_shape, out_shape, margin_lo, margin_hi, axes: axes_mask, up_to_constant } =
        map;
    let up_to_constant = *up_to_constant;
    let axes = in_shape.len() - 1;
    // The largest shift that leaves a comparison region on every axis.
    let room: Vec<isize> = (0..axes)
        .map(|a| {
            let free = out_shape[a + 1] as isize - (margin_lo[a] + margin_hi[a]) as isize;
            if axes_mask.get(a).copied().unwrap_or(false) { (free - 1).min(3) } else { 0 }
        })
        .collect();
    if room.iter().all(|&r| r <= 0) {
        return Ok(Check::skipped(
            name,
            format!("output {out_shape:?} leaves no room for a shift away from the borders"),
        ));
    }
    let y = f(input)?;
    let mut worst = (0.0f64, 0.0f64);
    let mut done = Vec::new();
    let mut compared = 0;
    for _ in 0..shifts {
        let s: Vec<isize> = room
            .iter()
            .map(|&r| if r <= 0 { 0 } else { rng.random_range(-(r as i64)..=r as i64) as isize })
            .collect();
        // A zero shift tests nothing: push it to +1 on the first axis with room.
        let s = if s.iter().all(|&v| v == 0) {
            let mut s = s;
            if let Some(a) = room.iter().position(|&r| r > 0) {
                s[a] = 1;
            }
            s
        } else {
            s
        };
        let ys = f(&shift_image(input, in_shape, &s))?;
        let (abs, scale, n) =
            translation_error(&y, &ys, out_shape, &s, margin_lo, margin_hi, up_to_constant);
        compared += n;
        worst.0 = if abs.is_nan() { f64::NAN } else { worst.0.max(abs) };
        worst.1 = worst.1.max(scale);
        done.push(format!("{s:?}"));
    }
    let detail = format!(
        "shifts {} of input {in_shape:?}; {compared} output values compared away from the borders",
        done.join(" ")
    );
    Ok(Check::new(name, detail, worst.0, worst.1, tolerance))
}

/// A list of `features` fermion fields in the reference layout (`site*12 + spin*3 + colour`,
/// fields back to back).
pub type Fermions = Vec<Complex<f64>>;

/// `ψ(x) → Ω(x) ψ(x)` for every spin and feature.
pub fn gauge_transform_fermions(psi: &[Complex<f64>], omega: &[Su3<f64>]) -> Fermions {
    let v = omega.len();
    let features = psi.len() / (v * 12);
    let mut out = psi.to_vec();
    for f in 0..features {
        for s in 0..v {
            for spin in 0..4 {
                let at = f * v * 12 + s * 12 + spin * 3;
                let c = [psi[at], psi[at + 1], psi[at + 2]];
                out[at..at + 3].copy_from_slice(&omega[s].mul_vec(&c));
            }
        }
    }
    out
}

/// The site `x − shift` (periodic).
fn site_minus(g: &Geometry, site: usize, shift: [usize; 4]) -> usize {
    let c = g.coords(site);
    let mut d = [0; 4];
    for mu in 0..4 {
        d[mu] = (c[mu] + g.dims[mu] - shift[mu] % g.dims[mu]) % g.dims[mu];
    }
    g.index(d)
}

/// Periodic lattice translation of fermion fields: `ψ'(x) = ψ(x − shift)`.
pub fn shift_fermions(psi: &[Complex<f64>], g: &Geometry, shift: [usize; 4]) -> Fermions {
    let v = g.volume();
    let mut out = psi.to_vec();
    for s in 0..v {
        let src = site_minus(g, s, shift);
        for f in 0..psi.len() / (v * 12) {
            let (a, b) = (f * v * 12 + s * 12, f * v * 12 + src * 12);
            out[a..a + 12].copy_from_slice(&psi[b..b + 12]);
        }
    }
    out
}

/// Periodic lattice translation of a gauge field: `U'_μ(x) = U_μ(x − shift)`.
pub fn shift_gauge(u: &GaugeField, shift: [usize; 4]) -> GaugeField {
    let g = &u.geom;
    let mut out = u.clone();
    for s in 0..g.volume() {
        let src = site_minus(g, s, shift);
        for mu in 0..4 {
            out.links[s * 4 + mu] = *u.link(src, mu);
        }
    }
    out
}

fn complex_diff(got: &[Complex<f64>], want: &[Complex<f64>]) -> (f64, f64) {
    if got.len() != want.len() {
        return (f64::INFINITY, 1.0);
    }
    let (mut abs, mut scale) = (0.0f64, 0.0f64);
    for (a, b) in got.iter().zip(want) {
        let d = (a - b).norm();
        abs = if d.is_nan() || abs.is_nan() { f64::NAN } else { abs.max(d) };
        scale = scale.max(b.norm());
    }
    (abs, scale)
}

/// Gauge covariance of a lattice map: `f(Ωψ; U^Ω)` against `Ω f(ψ; U)` for `trials` random
/// Haar gauge transformations Ω.
pub fn gauge_check<R: Rng + ?Sized>(
    name: &str,
    f: &dyn Fn(&GaugeField, &[Complex<f64>]) -> Result<Fermions, VerifyError>,
    gauge: &GaugeField,
    input: &[Complex<f64>],
    trials: usize,
    tolerance: f64,
    rng: &mut R,
) -> Result<Check, VerifyError> {
    let y = f(gauge, input)?;
    let (mut abs, mut scale) = (0.0f64, 0.0f64);
    for _ in 0..trials {
        let omega = gauge.random_transformation(rng);
        let u2 = gauge.gauge_transform(&omega);
        let y2 = f(&u2, &gauge_transform_fermions(input, &omega))?;
        let want = gauge_transform_fermions(&y, &omega);
        let (a, s) = complex_diff(&y2, &want);
        abs = if a.is_nan() { f64::NAN } else { abs.max(a) };
        scale = scale.max(s);
    }
    let detail = format!(
        "{trials} random SU(3) gauge transformations on {:?}; |f(Ωψ;U^Ω) − Ω f(ψ;U)|",
        gauge.dims()
    );
    Ok(Check::new(name, detail, abs, scale, tolerance))
}

/// Lattice translation equivariance: `f(Tψ; TU)` against `T f(ψ; U)` for random periodic shifts.
pub fn lattice_translation_check<R: Rng + ?Sized>(
    name: &str,
    f: &dyn Fn(&GaugeField, &[Complex<f64>]) -> Result<Fermions, VerifyError>,
    gauge: &GaugeField,
    input: &[Complex<f64>],
    trials: usize,
    tolerance: f64,
    rng: &mut R,
) -> Result<Check, VerifyError> {
    let g = &gauge.geom;
    let y = f(gauge, input)?;
    let (mut abs, mut scale) = (0.0f64, 0.0f64);
    let mut shifts = Vec::new();
    for _ in 0..trials {
        let mut s = [0usize; 4];
        for mu in 0..4 {
            s[mu] = rng.random_range(0..g.dims[mu]);
        }
        if s == [0; 4] {
            s[0] = 1 % g.dims[0];
        }
        let y2 = f(&shift_gauge(gauge, s), &shift_fermions(input, g, s))?;
        let (a, sc) = complex_diff(&y2, &shift_fermions(&y, g, s));
        abs = if a.is_nan() { f64::NAN } else { abs.max(a) };
        scale = scale.max(sc);
        shifts.push(format!("{s:?}"));
    }
    let detail = format!("periodic shifts {} of the lattice and the input", shifts.join(" "));
    Ok(Check::new(name, detail, abs, scale, tolerance))
}

/// A prefix of a translation network whose output is still an image, with the output margins
/// (per spatial axis) that zero padding can reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePrefix {
    /// Number of layers in the prefix.
    pub layers: usize,
    pub out_shape: Vec<usize>,
    pub margin_lo: Vec<usize>,
    pub margin_hi: Vec<usize>,
}

/// Every prefix of a chain of convolutions and activations, in order. A `same` convolution
/// with window k makes the outer `(k−1)/2` (low side) and `k−1−(k−1)/2` (high side) positions
/// read padding; a `valid` one keeps the margins of its input (its output is already cut).
/// The walk stops at the first layer that is not translation-equivariant (flatten, dense,
/// log-softmax) or does not continue the chain.
pub fn translation_prefixes(graph: &crate::ir::Graph) -> Vec<ImagePrefix> {
    use crate::ir::{LayerKind, Padding, ValueType};
    let mut out = Vec::new();
    let mut cur = crate::ir::ValueId(0);
    let ValueType::Real { shape } = graph.value(cur) else {
        return out;
    };
    let axes = shape.len().saturating_sub(1);
    let (mut lo, mut hi) = (vec![0usize; axes], vec![0usize; axes]);
    for (i, l) in graph.layers.iter().enumerate() {
        if l.inputs.len() != 1 || l.inputs[0] != cur {
            break;
        }
        match &l.kind {
            LayerKind::Conv { window, padding, .. } => {
                if window.len() != axes {
                    break;
                }
                if *padding == Padding::Same {
                    for a in 0..axes {
                        let k = window[a];
                        lo[a] += (k - 1) / 2;
                        hi[a] += k - 1 - (k - 1) / 2;
                    }
                }
            }
            LayerKind::Activation(_) => {}
            _ => break,
        }
        cur = l.output;
        let ValueType::Real { shape } = graph.value(cur) else {
            break;
        };
        out.push(ImagePrefix {
            layers: i + 1,
            out_shape: shape.clone(),
            margin_lo: lo.clone(),
            margin_hi: hi.clone(),
        });
    }
    out
}

/// The first `layers` layers of `graph` followed by a log-softmax over the whole prefix
/// output, so that a classifier executor (which always ends in its log-softmax head) can run
/// the prefix. `None` when the prefix's parameters are not the leading parameters of the
/// graph (then the flat parameter vector cannot simply be truncated).
pub fn prefix_graph(graph: &crate::ir::Graph, layers: usize) -> Option<crate::ir::Graph> {
    use crate::ir::{Layer, LayerKind, ValueId};
    let kept = &graph.layers[..layers.min(graph.layers.len())];
    let last = kept.last()?;
    let mut used: Vec<usize> =
        kept.iter().flat_map(|l| l.params.iter().map(|p| p.index())).collect();
    used.sort_unstable();
    if used.iter().enumerate().any(|(i, &p)| i != p) {
        return None;
    }
    let params = graph.params[..used.len()].to_vec();
    let max_value = kept.iter().map(|l| l.output.index()).max()?;
    let mut values = graph.values[..=max_value].to_vec();
    values.push(graph.value(last.output).clone());
    let out = ValueId((values.len() - 1) as u32);
    let mut layers_v = kept.to_vec();
    layers_v.push(Layer {
        kind: LayerKind::LogSoftmax,
        inputs: vec![last.output],
        output: out,
        params: vec![],
        name: "verify_head".into(),
        span: last.span,
    });
    Some(crate::ir::Graph {
        name: format!("{}[..{layers}]", graph.name),
        symmetry: graph.symmetry.clone(),
        lattice: graph.lattice,
        values,
        input_name: graph.input_name.clone(),
        layers: layers_v,
        params,
        output: out,
        train: None,
        split_of: None,
    })
}
