//! Optimisers (SGD with momentum, Adam) and learning-rate schedules.
//!
//! The update rules are PyTorch's (`torch.optim.SGD` with `dampening = 0`, `torch.optim.Adam`
//! without weight decay), so that runs can be compared with the PyTorch anchor step for step.
//! The state is plain `Vec<f32>` buffers so that checkpoints can save and restore it exactly.
//!
//! The update is the only pass over all parameters per step, so it also checks the gradient for
//! NaN/inf on the way (free: the loop is memory bound); the training loop stops on a non-finite
//! gradient instead of writing garbage into the weights of the next checkpoint.

use crate::ir::{OptimizerSpec, Schedule};
use rayon::prelude::*;

/// Parameters per rayon task: large enough to amortise scheduling, small enough to split the
/// 6.45M-parameter dense net over both cores.
const CHUNK: usize = 1 << 15;

/// An optimiser with its state.
#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    /// `v <- momentum * v + g; p <- p - lr * v`.
    Sgd { momentum: f32, velocity: Vec<f32> },
    /// Adam (Kingma & Ba) with PyTorch's bias correction and epsilon placement:
    /// `m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
    ///  p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
    Adam { beta1: f32, beta2: f32, eps: f32, m: Vec<f32>, v: Vec<f32>, t: u64 },
}

/// Result of one update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepCheck {
    /// False when some gradient entry was NaN or infinite (the parameters are then invalid).
    pub finite: bool,
}

impl Optimizer {
    /// A fresh optimiser for `n` parameters.
    pub fn new(spec: &OptimizerSpec, n: usize) -> Self {
        match *spec {
            OptimizerSpec::Sgd { momentum, .. } => {
                Optimizer::Sgd { momentum: momentum as f32, velocity: vec![0.0; n] }
            }
            OptimizerSpec::Adam { beta1, beta2, eps, .. } => Optimizer::Adam {
                beta1: beta1 as f32,
                beta2: beta2 as f32,
                eps: eps as f32,
                m: vec![0.0; n],
                v: vec![0.0; n],
                t: 0,
            },
        }
    }

    /// Short name for logs and summaries.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "sgd",
            Optimizer::Adam { .. } => "adam",
        }
    }

    /// Named state buffers (for checkpoints), in a fixed order.
    pub fn buffers(&self) -> Vec<(&'static str, &[f32])> {
        match self {
            Optimizer::Sgd { velocity, .. } => vec![("velocity", velocity)],
            Optimizer::Adam { m, v, .. } => vec![("m", m), ("v", v)],
        }
    }

    /// Mutable access to the state buffers, same order as [`Optimizer::buffers`].
    pub fn buffers_mut(&mut self) -> Vec<(&'static str, &mut Vec<f32>)> {
        match self {
            Optimizer::Sgd { velocity, .. } => vec![("velocity", velocity)],
            Optimizer::Adam { m, v, .. } => vec![("m", m), ("v", v)],
        }
    }

    /// Steps taken (Adam's `t`; SGD keeps no counter and reports 0).
    pub fn steps(&self) -> u64 {
        match self {
            Optimizer::Sgd { .. } => 0,
            Optimizer::Adam { t, .. } => *t,
        }
    }

    /// Restores the step counter (after loading the buffers from a checkpoint).
    pub fn set_steps(&mut self, steps: u64) {
        if let Optimizer::Adam { t, .. } = self {
            *t = steps;
        }
    }

    /// One update of `params` with gradient `grad` at learning rate `lr`.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32], lr: f32) -> StepCheck {
        assert_eq!(params.len(), grad.len(), "parameter and gradient lengths differ");
        let finite = match self {
            Optimizer::Sgd { momentum, velocity } => {
                let mu = *momentum;
                params
                    .par_chunks_mut(CHUNK)
                    .zip(velocity.par_chunks_mut(CHUNK))
                    .zip(grad.par_chunks(CHUNK))
                    .map(|((p, v), g)| {
                        let mut ok = true;
                        for i in 0..p.len() {
                            // `g - g == 0` is false exactly for NaN and +-inf, and vectorises.
                            ok &= g[i] - g[i] == 0.0;
                            v[i] = mu * v[i] + g[i];
                            p[i] -= lr * v[i];
                        }
                        ok
                    })
                    .reduce(|| true, |a, b| a & b)
            }
            Optimizer::Adam { beta1, beta2, eps, m, v, t } => {
                *t += 1;
                let (b1, b2, eps) = (*beta1, *beta2, *eps);
                // Bias corrections in f64: b^t for large t underflows gracefully there.
                let bc1 = 1.0 - (b1 as f64).powf(*t as f64);
                let bc2 = 1.0 - (b2 as f64).powf(*t as f64);
                let step_size = (lr as f64 / bc1) as f32;
                let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
                params
                    .par_chunks_mut(CHUNK)
                    .zip(m.par_chunks_mut(CHUNK))
                    .zip(v.par_chunks_mut(CHUNK))
                    .zip(grad.par_chunks(CHUNK))
                    .map(|(((p, m), v), g)| {
                        adam_chunk(p, m, v, g, [b1, b2, eps, step_size, inv_sqrt_bc2])
                    })
                    .reduce(|| true, |a, b| a & b)
            }
        };
        StepCheck { finite }
    }
}

/// Gradients below this in magnitude count as zero in the Adam update: (1 − β₂) g² stays a
/// normal f32 for β₂ ≤ 0.99994 (2⁻⁵⁶ ≈ 1.4e-17).
pub const TINY_GRAD: f32 = 1.0 / (1u64 << 56) as f32;

/// Adam's m and v below this in magnitude are stored as zero, so that β·m, β·v, √v and the
/// step's `lr/(1 − β₁ᵗ) · m` stay normal (2⁻¹⁰⁰ ≈ 7.9e-31; the last for learning rates above
/// ~1e-6).
pub const TINY_STATE: f32 = TINY_GRAD * TINY_GRAD * (1u64 << 12) as f32;

/// One Adam update over a chunk; returns whether every gradient was finite. With 6.5 M
/// parameters the update is a third of a dense training step and bound by its square roots and
/// divisions, so it runs at the widest SIMD width the host has (`pulp` picks AVX-512 or AVX2 at
/// run time). Every lane computes exactly the scalar formula (IEEE sqrt and division, no fused
/// multiply-add), so results do not depend on the width.
///
/// **Subnormals.** A gradient below [`TINY_GRAD`] in magnitude counts as zero, and m and v
/// below [`TINY_STATE`] are stored as zero, so that no operation of the update reads or produces
/// a subnormal number: an x86 core takes a microcode assist of about a hundred cycles for each,
/// and the dense digit network's real gradients made its update 4× slower (8.7 ms instead of
/// 2.1 ms; BENCHMARKS.md, "Digit networks against PyTorch"). The same trade as
/// `torch.set_flush_denormal(True)` and TensorFlow's default. Bound: m then differs from
/// PyTorch's by at most 1.4e-17 (an average of flushed gradients), which moves a step
/// `lr/(1 − β₁ᵗ) · m/(√v̂ + ε)` by at most lr · 1.4e-9/(1 − β₁ᵗ) ≤ 1.4e-8 · lr (ε = 1e-8,
/// β₁ = 0.9); a flushed v (below 7.9e-31, so √v̂ ≤ 2.8e-14 against ε) changes a step that is
/// itself at most lr · 2.8e-5 by a relative 2.8e-6. Each step of a weight differs from
/// PyTorch's by less than 1.5e-8 · lr.
fn adam_chunk(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: [f32; 5]) -> bool {
    pulp::Arch::new().dispatch(AdamChunk { p, m, v, g, c })
}

struct AdamChunk<'a> {
    p: &'a mut [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
    g: &'a [f32],
    /// beta1, beta2, eps, step size, 1/sqrt(bias correction 2).
    c: [f32; 5],
}

impl pulp::WithSimd for AdamChunk<'_> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> bool {
        let [b1, b2, eps, step_size, inv_sqrt_bc2] = self.c;
        let flush = |x: f32, below: f32| if x.abs() < below { 0.0 } else { x };
        let scalar = |p: &mut f32, m: &mut f32, v: &mut f32, gi: f32| {
            let g = flush(gi, TINY_GRAD);
            *m = flush(b1 * *m + (1.0 - b1) * g, TINY_STATE);
            *v = flush(b2 * *v + (1.0 - b2) * g * g, TINY_STATE);
            let denom = v.sqrt() * inv_sqrt_bc2 + eps;
            *p -= step_size * *m / denom;
            // `g - g == 0` is false exactly for NaN and +-inf.
            gi - gi == 0.0
        };
        let (pv, pt) = S::as_mut_simd_f32s(self.p);
        let (mv, mt) = S::as_mut_simd_f32s(self.m);
        let (vv, vt) = S::as_mut_simd_f32s(self.v);
        let (gv, gt) = S::as_simd_f32s(self.g);
        let (b1x, b2x) = (simd.splat_f32s(b1), simd.splat_f32s(b2));
        let (c1, c2) = (simd.splat_f32s(1.0 - b1), simd.splat_f32s(1.0 - b2));
        let (epsx, sx, ix) =
            (simd.splat_f32s(eps), simd.splat_f32s(step_size), simd.splat_f32s(inv_sqrt_bc2));
        let (tiny_g, tiny_s, zero) =
            (simd.splat_f32s(TINY_GRAD), simd.splat_f32s(TINY_STATE), simd.splat_f32s(0.0));
        // `x` with |x| < `below` replaced by 0: a compare and a blend, no subnormal arithmetic.
        let flush =
            |x, below| simd.select_f32s(simd.less_than_f32s(simd.abs_f32s(x), below), zero, x);
        // g - g is 0 for finite g and NaN otherwise; NaN propagates through the sum.
        let mut bad = simd.splat_f32s(0.0);
        for (((p, m), v), &gi) in pv.iter_mut().zip(mv).zip(vv).zip(gv) {
            bad = simd.add_f32s(bad, simd.sub_f32s(gi, gi));
            let gi = flush(gi, tiny_g);
            let mi = flush(simd.add_f32s(simd.mul_f32s(b1x, *m), simd.mul_f32s(c1, gi)), tiny_s);
            let vi =
                simd.add_f32s(simd.mul_f32s(b2x, *v), simd.mul_f32s(simd.mul_f32s(c2, gi), gi));
            let vi = flush(vi, tiny_s);
            let denom = simd.add_f32s(simd.mul_f32s(simd.sqrt_f32s(vi), ix), epsx);
            *p = simd.sub_f32s(*p, simd.div_f32s(simd.mul_f32s(sx, mi), denom));
            *m = mi;
            *v = vi;
        }
        let mut ok = simd.reduce_sum_f32s(bad) == 0.0;
        for (((p, m), v), &gi) in pt.iter_mut().zip(mt).zip(vt).zip(gt) {
            ok &= scalar(p, m, v, gi);
        }
        ok
    }
}

/// The base learning rate of an optimiser spec.
pub fn base_lr(spec: &OptimizerSpec) -> f64 {
    match *spec {
        OptimizerSpec::Sgd { lr, .. } | OptimizerSpec::Adam { lr, .. } => lr,
    }
}

/// Learning rate for global step `step` (0-based) of `total_steps`, in epoch `epoch` (0-based).
///
/// Cosine decays per step (smooth over the run: `floor*lr + (1-floor)*lr*(1+cos(pi*s/S))/2`);
/// `Step { every, gamma }` multiplies by `gamma` every `every` epochs, or every `every` steps
/// when the run is measured in steps (`per_step = true`).
pub fn lr_at(
    base: f64,
    schedule: &Schedule,
    step: u64,
    total_steps: u64,
    epoch: usize,
    per_step: bool,
) -> f64 {
    match *schedule {
        Schedule::Constant => base,
        Schedule::Cosine { floor } => {
            let progress = if total_steps == 0 { 0.0 } else { step as f64 / total_steps as f64 };
            let progress = progress.clamp(0.0, 1.0);
            base * (floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
        }
        Schedule::Step { every, gamma } => {
            let unit = if per_step { step as usize } else { epoch };
            let k = unit.checked_div(every).unwrap_or(0);
            base * gamma.powi(k as i32)
        }
    }
}

/// Human-readable schedule (summaries).
pub fn describe_schedule(schedule: &Schedule) -> String {
    match *schedule {
        Schedule::Constant => "constant".into(),
        Schedule::Cosine { floor } => format!("cosine(floor = {floor})"),
        Schedule::Step { every, gamma } => format!("step(every = {every}, gamma = {gamma})"),
    }
}

/// Human-readable optimiser spec (summaries).
pub fn describe_optimizer(spec: &OptimizerSpec) -> String {
    match *spec {
        OptimizerSpec::Sgd { lr, momentum } => format!("sgd(lr = {lr}, momentum = {momentum})"),
        OptimizerSpec::Adam { lr, beta1, beta2, eps } => {
            format!("adam(lr = {lr}, beta1 = {beta1}, beta2 = {beta2}, eps = {eps})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f(x) = 1/2 sum a_i (x_i - c_i)^2, gradient a_i (x_i - c_i).
    fn quad_grad(x: &[f32], a: &[f32], c: &[f32]) -> Vec<f32> {
        x.iter().zip(a).zip(c).map(|((x, a), c)| a * (x - c)).collect()
    }

    #[test]
    fn sgd_without_momentum_follows_geometric_decay() {
        // e_k = (1 - lr a)^k e_0 exactly in exact arithmetic.
        let (a, c, lr) = (vec![2.0f32, 0.5], vec![1.0f32, -3.0], 0.1f32);
        let mut x = vec![4.0f32, 5.0];
        let e0: Vec<f64> = x.iter().zip(&c).map(|(x, c)| (x - c) as f64).collect();
        let mut opt = Optimizer::new(&OptimizerSpec::Sgd { lr: 0.1, momentum: 0.0 }, 2);
        for k in 1..=30 {
            let g = quad_grad(&x, &a, &c);
            assert!(opt.step(&mut x, &g, lr).finite);
            for i in 0..2 {
                let want = c[i] as f64 + (1.0 - lr as f64 * a[i] as f64).powi(k) * e0[i];
                assert!(
                    (x[i] as f64 - want).abs() < 1e-5,
                    "step {k} coord {i}: {} vs {want}",
                    x[i]
                );
            }
        }
    }

    #[test]
    fn sgd_momentum_matches_heavy_ball_closed_form() {
        // Heavy ball on a = 2 with lr 0.1, mu 0.3: characteristic roots 0.6 and 0.5, and with
        // v_0 = 0 the error is e_k = e_0 (3 * 0.6^k - 2 * 0.5^k).
        let (a, c) = (vec![2.0f32], vec![0.25f32]);
        let mut x = vec![1.25f32];
        let e0 = 1.0f64;
        let mut opt = Optimizer::new(&OptimizerSpec::Sgd { lr: 0.1, momentum: 0.3 }, 1);
        for k in 1..=40 {
            let g = quad_grad(&x, &a, &c);
            opt.step(&mut x, &g, 0.1);
            let want = 0.25 + e0 * (3.0 * 0.6f64.powi(k) - 2.0 * 0.5f64.powi(k));
            assert!((x[0] as f64 - want).abs() < 1e-6, "step {k}: {} vs {want}", x[0]);
        }
    }

    #[test]
    fn adam_on_a_linear_function_moves_lr_per_step() {
        // For a constant gradient g, m_hat = g and v_hat = g^2 at every t, so each step moves
        // by lr * |g| / (|g| + eps) against the sign of g: x_k = x_0 - k lr g / (|g| + eps).
        let g = vec![0.5f32, -2.0, 1e-3];
        let (lr, eps) = (0.01f32, 1e-8f64);
        let spec = OptimizerSpec::Adam { lr: lr as f64, beta1: 0.9, beta2: 0.999, eps };
        let mut opt = Optimizer::new(&spec, 3);
        let mut x = vec![0.0f32; 3];
        for k in 1..=50 {
            opt.step(&mut x, &g, lr);
            for i in 0..3 {
                let gi = g[i] as f64;
                let want = -(k as f64) * lr as f64 * gi / (gi.abs() + eps);
                assert!(
                    (x[i] as f64 - want).abs() < 2e-5 * k as f64,
                    "t={k} i={i}: {} vs {want}",
                    x[i]
                );
            }
        }
        assert_eq!(opt.steps(), 50);
    }

    #[test]
    fn adam_matches_the_textbook_recurrence_in_f64() {
        // x = (1, -2, 3), f = sum(a x^2 / 2) with a = (1, 10, 0.1), Adam(lr = 0.1), 3 steps. The
        // first step moves every coordinate by exactly lr (m_hat / sqrt(v_hat) = sign(g)); the
        // later ones follow Kingma & Ba's bias-corrected recurrences, written out here in f64
        // (PyTorch's rearranged formula is algebraically the same).
        let a = [1.0f64, 10.0, 0.1];
        let mut x = [1.0f64, -2.0, 3.0];
        let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
        let mut xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let spec = OptimizerSpec::Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
        let mut opt = Optimizer::new(&spec, 3);
        for t in 1..=3 {
            let gf: Vec<f32> = xf.iter().zip(&a).map(|(x, a)| *x * *a as f32).collect();
            opt.step(&mut xf, &gf, 0.1);
            for i in 0..3 {
                let g = a[i] * x[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                x[i] -= 0.1 * mh / (vh.sqrt() + 1e-8);
            }
            if t == 1 {
                assert!(
                    (x[0] - 0.9).abs() < 1e-7
                        && (x[1] + 1.9).abs() < 1e-7
                        && (x[2] - 2.9).abs() < 1e-7
                );
            }
            for i in 0..3 {
                assert!((xf[i] as f64 - x[i]).abs() < 1e-5, "t={t} i={i}: {} vs {}", xf[i], x[i]);
            }
        }
    }

    /// The thresholds are the powers of two their docs name.
    #[test]
    fn the_flush_thresholds_are_2_to_the_minus_56_and_minus_100() {
        assert_eq!(TINY_GRAD, 2f32.powi(-56));
        assert_eq!(TINY_STATE, 2f32.powi(-100));
    }

    /// Tiny and subnormal gradients: the state never holds a subnormal number, and every
    /// weight follows the textbook f64 recurrence (which keeps every tiny value) to within the
    /// bound of the module doc, 1.5e-8 · lr per step, plus f32 rounding of the weight. Long
    /// enough (3000 steps) for m of a once-large gradient to decay past 2^-100. Vector body and
    /// scalar tail alike (37 parameters).
    #[test]
    fn tiny_gradients_leave_no_subnormal_state_and_follow_the_recurrence() {
        let n = 37;
        let lr = 1e-3f64;
        let spec = OptimizerSpec::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
        let mut opt = Optimizer::new(&spec, n);
        let init: Vec<f64> =
            (0..n).map(|i| if i % 4 == 0 { 0.0 } else { 0.5 + i as f64 }).collect();
        let mut p: Vec<f32> = init.iter().map(|&x| x as f32).collect();
        let mut x = init.clone();
        let (mut m, mut v) = (vec![0.0f64; n], vec![0.0f64; n]);
        let steps = 3000;
        for t in 1..=steps {
            // Gradient kinds by index: ordinary, 1e-20 (its square underflows), subnormal
            // 1e-40, exactly zero, and one that is large once and zero afterwards.
            let g: Vec<f32> = (0..n)
                .map(|i| match i % 5 {
                    0 => 0.3 * ((i + t) as f32).sin(),
                    1 => 1e-20,
                    2 => 1e-40,
                    3 => 0.0,
                    _ if t == 1 => 1.0,
                    _ => 0.0,
                })
                .collect();
            assert!(opt.step(&mut p, &g, lr as f32).finite);
            let (bc1, bc2) = (1.0 - 0.9f64.powi(t as i32), 1.0 - 0.999f64.powi(t as i32));
            for i in 0..n {
                let gi = g[i] as f64;
                m[i] = 0.9 * m[i] + 0.1 * gi;
                v[i] = 0.999 * v[i] + 0.001 * gi * gi;
                x[i] -= lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + 1e-8);
            }
        }
        let Optimizer::Adam { m: ms, v: vs, .. } = &opt else { unreachable!() };
        for (k, s) in ms.iter().chain(vs).enumerate() {
            assert!(*s == 0.0 || s.abs() >= f32::MIN_POSITIVE, "state {k} is subnormal: {s:e}");
        }
        for i in 0..n {
            // f32 rounding of every step (half an ulp of the weight each) plus the flush bound.
            let ulp = (x[i].abs().max(1e-30) as f32).to_bits();
            let half_ulp = (f32::from_bits(ulp + 1) - f32::from_bits(ulp)) as f64 / 2.0;
            let tol = steps as f64 * (half_ulp + 1.5e-8 * lr) + 1e-6 * (x[i] - init[i]).abs();
            assert!(
                (p[i] as f64 - x[i]).abs() <= tol,
                "weight {i}: {} vs the recurrence's {} (tolerance {tol:e})",
                p[i],
                x[i]
            );
        }
    }

    /// Trajectories recorded with torch 2.15.0 (float32, CPU): x = (1, -2, 3),
    /// f = sum(a x^2 / 2) with a = (1, 10, 0.1), five steps of
    /// `torch.optim.Adam([x], lr=0.1)` and of `torch.optim.SGD([x], lr=0.05, momentum=0.9)`.
    #[test]
    fn trajectories_match_pytorch() {
        let adam_torch = [
            [0.9000000357627869, -1.899999976158142, 2.9000000953674316],
            [0.8004122376441956, -1.8001664876937866, 2.800102710723877],
            [0.7015863060951233, -1.7006233930587769, 2.7003815174102783],
            [0.6039391160011292, -1.601504921913147, 2.6009135246276855],
            [0.5079637169837952, -1.5029557943344116, 2.501779556274414],
        ];
        let sgd_torch = [
            [0.949999988079071, -1.0, 2.984999895095825],
            [0.8575000166893005, 0.40000003576278687, 2.9565749168395996],
            [0.7313750386238098, 1.4600000381469727, 2.9162094593048096],
            [0.5812938213348389, 1.6839998960494995, 2.8652994632720947],
            [0.41715601086616516, 1.0435998439788818, 2.8051540851593018],
        ];
        let a = [1.0f32, 10.0, 0.1];
        let cases = [
            (
                OptimizerSpec::Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
                0.1f32,
                adam_torch,
            ),
            (OptimizerSpec::Sgd { lr: 0.05, momentum: 0.9 }, 0.05, sgd_torch),
        ];
        for (spec, lr, want) in cases {
            let mut x = vec![1.0f32, -2.0, 3.0];
            let mut opt = Optimizer::new(&spec, 3);
            for (t, row) in want.iter().enumerate() {
                let g: Vec<f32> = x.iter().zip(&a).map(|(x, a)| x * a).collect();
                opt.step(&mut x, &g, lr);
                for i in 0..3 {
                    assert!(
                        (x[i] as f64 - row[i]).abs() < 2e-6,
                        "{} step {} coord {i}: {} vs torch {}",
                        opt.name(),
                        t + 1,
                        x[i],
                        row[i]
                    );
                }
            }
        }
    }

    #[test]
    fn adam_reaches_the_minimum_of_a_quadratic() {
        let n = 100_000; // several rayon chunks
        let a: Vec<f32> = (0..n).map(|i| 0.5 + (i % 7) as f32).collect();
        let c: Vec<f32> = (0..n).map(|i| ((i % 13) as f32 - 6.0) * 0.3).collect();
        let mut x = vec![0.0f32; n];
        let spec = OptimizerSpec::Adam { lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
        let mut opt = Optimizer::new(&spec, n);
        for s in 0..2000u64 {
            let g = quad_grad(&x, &a, &c);
            let lr = lr_at(0.05, &Schedule::Cosine { floor: 0.0 }, s, 2000, 0, true);
            assert!(opt.step(&mut x, &g, lr as f32).finite);
        }
        let err = x.iter().zip(&c).map(|(x, c)| (x - c).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-3, "max distance to the minimum {err}");
    }

    #[test]
    fn non_finite_gradients_are_reported() {
        for spec in [
            OptimizerSpec::Sgd { lr: 0.1, momentum: 0.9 },
            OptimizerSpec::Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        ] {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let n = 3 * CHUNK + 5;
                let mut opt = Optimizer::new(&spec, n);
                let mut x = vec![1.0f32; n];
                let mut g = vec![0.5f32; n];
                assert!(opt.step(&mut x, &g, 0.1).finite);
                g[2 * CHUNK + 3] = bad;
                assert!(!opt.step(&mut x, &g, 0.1).finite, "{spec:?} with {bad}");
            }
        }
    }

    #[test]
    fn schedules() {
        let c = Schedule::Cosine { floor: 0.1 };
        assert!((lr_at(1.0, &c, 0, 100, 0, true) - 1.0).abs() < 1e-12);
        assert!((lr_at(1.0, &c, 50, 100, 0, true) - 0.55).abs() < 1e-12);
        assert!((lr_at(1.0, &c, 100, 100, 0, true) - 0.1).abs() < 1e-12);
        let s = Schedule::Step { every: 5, gamma: 0.5 };
        assert_eq!(lr_at(2.0, &s, 999, 0, 4, false), 2.0);
        assert_eq!(lr_at(2.0, &s, 999, 0, 5, false), 1.0);
        assert_eq!(lr_at(2.0, &s, 999, 0, 14, false), 0.5);
        assert_eq!(lr_at(2.0, &s, 10, 0, 0, true), 0.5);
        assert_eq!(lr_at(3.0, &Schedule::Constant, 7, 9, 2, false), 3.0);
    }
}
