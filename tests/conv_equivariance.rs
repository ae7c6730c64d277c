//! Translation equivariance of the JIT convolutions: shifting the input image shifts the
//! convolution output by the same amount, away from the borders (where padding or the image
//! edge breaks the symmetry). Observed through a network `conv -> act -> conv -> flatten ->
//! log_softmax`: log-softmax subtracts one constant per sample, so *differences* of outputs
//! at interior positions are exactly differences of the convolution outputs.

mod classifier_nets;

use classifier_nets::*;
use symc::codegen::simd::Precision;
use symc::ir::{Activation, Padding};
use symc::runtime::classifier::{CompileOptions, JitClassifier, StrategyChoice};
use symc::runtime::reference;

const C: usize = 2;
const H: usize = 20;
const W: usize = 19;

/// Input shifted by (dy, dx): out[y][x] = in[y - dy][x - dx], zero where that is outside.
fn shift(img: &[f64], dy: usize, dx: usize) -> Vec<f64> {
    let mut out = vec![0.0; img.len()];
    for c in 0..C {
        for y in dy..H {
            for x in dx..W {
                out[(c * H + y) * W + x] = img[(c * H + y - dy) * W + x - dx];
            }
        }
    }
    out
}

#[test]
fn shifted_input_gives_shifted_output_away_from_borders() {
    for (pad, strategy) in [
        (Padding::Same, StrategyChoice::ForceJit),
        (Padding::Valid, StrategyChoice::ForceJit),
        (Padding::Same, StrategyChoice::ForceGemm),
    ] {
        let g = Net::new("equivariance", &[C, H, W])
            .conv(3, &[3, 3], pad, true)
            .act(Activation::Tanh)
            .conv(2, &[2, 3], pad, true)
            .flatten()
            .log_softmax();
        let (oc, oh, ow) = match pad {
            Padding::Same => (2, H, W),
            Padding::Valid => (2, H - 3, W - 4),
        };
        let mut r = rng(5);
        let p = uniform(&mut r, g.param_scalars(), 0.5);
        let img = uniform(&mut r, C * H * W, 1.0);
        let (dy, dx) = (2, 3);
        let batch = [img.clone(), shift(&img, dy, dx)].concat();
        let opts = CompileOptions {
            max_batch: 2,
            threads: 2,
            precision: Precision::F64,
            keep_listings: false,
            strategy,
        };
        let jit = JitClassifier::compile(&g, &opts).unwrap();
        let mut out = vec![0.0; 2 * oc * oh * ow];
        jit.predict_f64(&p, &batch, &mut out).unwrap();
        let refo = reference::forward_f64(&g, &p, &batch, 2).unwrap();
        // Positions whose receptive field (two windows, the padding margin) stays inside the
        // original image both before and after the shift.
        let margin = 4;
        let at = |s: usize, c: usize, y: usize, x: usize| s * oc * oh * ow + (c * oh + y) * ow + x;
        let (y0, x0) = (margin, margin);
        let mut checked = 0;
        let mut worst = 0f64;
        for c in 0..oc {
            for y in margin..oh.saturating_sub(margin + dy) {
                for x in margin..ow.saturating_sub(margin + dx) {
                    for o in [&out, &refo[g.output.index()]] {
                        let before = o[at(0, c, y, x)] - o[at(0, 0, y0, x0)];
                        let after = o[at(1, c, y + dy, x + dx)] - o[at(1, 0, y0 + dy, x0 + dx)];
                        worst = worst.max((before - after).abs());
                    }
                    checked += 1;
                }
            }
        }
        eprintln!("{pad:?} {strategy:?}: {checked} interior positions, max deviation {worst:.2e}");
        assert!(checked >= 2, "the test must look at some interior positions");
        assert!(
            worst < 1e-12,
            "{pad:?} {strategy:?}: translation equivariance broken by {worst:e}"
        );
        // Control: without the shift of the comparison position, outputs do differ.
        let off = (out[at(1, 0, y0, x0 + 1)] - out[at(0, 0, y0, x0 + 1)]).abs();
        assert!(off > 1e-6, "the shifted input must actually change unshifted positions");
    }
}
