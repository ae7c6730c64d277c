//! Code generation: turns a checked [`crate::ir::Graph`] into native kernels with cranelift.
//!
//! One emitter file per layer kind; [`jit`] owns the JIT module and the only `unsafe` calls.

pub mod activation;
pub mod block;
pub mod classifier;
pub mod coarse;
pub mod coarse_layer;
pub mod complex;
pub mod contraction;
pub mod conv;
pub mod dense;
pub mod dirac;
pub mod jit;
pub mod lattice_layout;
pub mod lattice_net;
pub mod loops;
pub mod plan;
pub mod pool;
pub mod program;
pub mod ptc;
pub mod simd;
pub mod softmax;
