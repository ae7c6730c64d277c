//! `symc inspect --bench`: time each compiled kernel (or each plan's set of kernels) on
//! synthetic data and put the speed next to this machine's ceilings.
//!
//! Timing: the work is repeated until one batch lasts `min_batch`, then the best of a few
//! batches is kept (the minimum is the least noisy estimator on a shared machine). GFLOP/s use
//! the plan's FLOP count per application, so the numbers are comparable with the roofline
//! placement of `--stats`.

use crate::codegen::jit::{Arg, JitError, Kernel};
use crate::codegen::plan::KernelPlan;
use crate::inspect::isa_stats::place;
use crate::inspect::roofline::{Machine, best_time_per_call};
use serde::Serialize;
use std::time::Duration;

/// How long one timed batch lasts, and how many batches are taken.
#[derive(Clone, Copy, Debug)]
pub struct BenchOptions {
    pub min_batch: Duration,
    pub batches: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { min_batch: Duration::from_millis(40), batches: 3 }
    }
}

/// Measured speed of one plan (one layer and pass).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BenchResult {
    pub layer: String,
    pub pass: String,
    pub kernels: Vec<String>,
    /// Seconds per application (best batch).
    pub seconds: f64,
    pub flops: f64,
    pub bytes: f64,
    pub gflops: f64,
    /// Of the measured 128-bit FMA ceiling with all kernel threads.
    pub fraction_of_ceiling: f64,
    /// Of `min(ceiling, intensity × bandwidth)`.
    pub fraction_of_attainable: f64,
    /// The plan's compile time (all its kernels), seconds.
    pub compile_seconds: f64,
}

/// Time `run` (one application of `plan`'s kernels) and relate it to the roofline of `m`.
pub fn bench_plan(
    plan: &KernelPlan,
    mut run: impl FnMut() -> Result<(), JitError>,
    m: &Machine,
    opts: BenchOptions,
) -> Result<BenchResult, JitError> {
    // A first call surfaces a refused call before anything is timed.
    run()?;
    let mut err = None;
    let t = best_time_per_call(
        || {
            if let Err(e) = run() {
                err.get_or_insert(e);
            }
        },
        opts.min_batch,
        opts.batches,
    );
    if let Some(e) = err {
        return Err(e);
    }
    let seconds = t.as_secs_f64().max(1e-9);
    let gflops = plan.flops / seconds / 1e9;
    let p = place(plan, m);
    Ok(BenchResult {
        layer: plan.layer.clone(),
        pass: plan.pass.name().to_string(),
        kernels: plan.kernels.clone(),
        seconds,
        flops: plan.flops,
        bytes: plan.bytes,
        gflops,
        fraction_of_ceiling: gflops / m.ceiling_gflops(),
        fraction_of_attainable: gflops / p.attainable_gflops,
        compile_seconds: plan.compile_time.as_secs_f64(),
    })
}

/// Buffers for one kernel filled with synthetic data: every buffer of the spec gets its exact
/// size, read-only buffers hold small finite f32 values (`0.5 + (i mod 7)/16`, no denormals, no
/// overflow after many FMAs), writable ones start at zero.
///
/// By the kernel contract of `codegen::jit` (the generated code stays inside the declared
/// buffer sizes whatever their content), any content is safe to run on.
pub struct SyntheticArgs {
    bufs: Vec<(Vec<f32>, bool)>,
}

impl SyntheticArgs {
    pub fn for_kernel(k: &Kernel) -> Self {
        let bufs = k
            .spec()
            .buffers
            .iter()
            .map(|b| {
                let n = b.bytes.div_ceil(4);
                let v = if b.writable {
                    vec![0f32; n]
                } else {
                    (0..n).map(|i| 0.5 + (i % 7) as f32 / 16.0).collect()
                };
                (v, b.writable)
            })
            .collect();
        SyntheticArgs { bufs }
    }

    /// Run `k` over all its items (range-parallel kernels over the rayon pool).
    pub fn run(&mut self, k: &Kernel) -> Result<(), JitError> {
        let mut args: Vec<Arg<'_>> =
            self.bufs.iter_mut().map(|(v, w)| if *w { Arg::rw(v) } else { Arg::ro(v) }).collect();
        if k.spec().parallel {
            k.call_parallel(&mut args, 1)
        } else {
            k.call(&mut args, 0, k.spec().items)
        }
    }
}
