//! Code generation: turns a checked [`crate::ir::Graph`] into native kernels with cranelift.
//!
//! One emitter file per layer kind; [`jit`] owns the JIT module and the only `unsafe` calls.

pub mod jit;
pub mod plan;
