//! Code generation: turns a checked [`crate::ir::Graph`] into native kernels with cranelift.
//!
//! One emitter file per layer kind; [`jit`] owns the JIT module and the only `unsafe` calls.

pub mod complex;
pub mod jit;
pub mod lattice_layout;
pub mod plan;
pub mod ptc;
pub mod dirac;
