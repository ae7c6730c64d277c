//! The kernel plan: what the code generator decided for one layer, in words and numbers.
//!
//! Emitters fill one [`KernelPlan`] per compiled kernel; `symc inspect` prints them and the
//! roofline estimate is computed from `flops` and `bytes`. Keeping the plan as data (not as
//! log lines) lets snapshot tests pin the decisions.

use std::time::Duration;

/// How a layer's arithmetic is executed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Entirely in cranelift-generated code.
    Jit,
    /// Generated glue around a call to an AOT-compiled GEMM (the `gemm` crate's AVX-512 kernels).
    Gemm,
}

/// Which direction of the computation a kernel implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Forward,
    /// Gradient with respect to the layer input.
    BackwardInput,
    /// Gradient with respect to weights and biases.
    BackwardParams,
}

impl Strategy {
    /// The word `symc inspect` shows.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Jit => "JIT",
            Strategy::Gemm => "GEMM",
        }
    }
}

impl Pass {
    /// The word `symc inspect` shows.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Forward => "forward",
            Pass::BackwardInput => "backward-input",
            Pass::BackwardParams => "backward-params",
        }
    }
}

#[derive(Clone, Debug)]
pub struct KernelPlan {
    /// Layer name as in the IR (e.g. `linear2`).
    pub layer: String,
    pub pass: Pass,
    pub strategy: Strategy,
    /// Why this strategy was chosen (e.g. "measured 2.1x faster than the JIT path at batch 64").
    pub reason: String,
    /// The loop nest, outermost first, one loop per line (e.g. `for b in 0..64 (threads)`).
    pub loops: Vec<String>,
    /// Data layout and SIMD lanes (e.g. "AoSoA-4 over sites, re/im split, f32x4").
    pub layout: String,
    /// Operations fused into this kernel (e.g. "bias", "relu").
    pub fused: Vec<String>,
    /// Floating-point operations per application (whole batch / whole lattice).
    pub flops: f64,
    /// Bytes moved per application assuming no cache reuse across calls.
    pub bytes: f64,
    /// Names of the JIT kernels that implement this plan (match `KernelRecord::name`).
    pub kernels: Vec<String>,
    pub compile_time: Duration,
}
