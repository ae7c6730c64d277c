//! Runtime: executing a compiled network on buffers, and the plain-Rust reference evaluator
//! (the oracle every JIT kernel is tested against).

use crate::ir::Graph;

/// Errors while running a network (wrong buffer sizes, kernel call failures).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RuntimeError {
    #[error("shape mismatch: {0}")]
    #[diagnostic(code(symc::runtime::shape))]
    Shape(String),
    #[error(transparent)]
    #[diagnostic(code(symc::runtime::jit))]
    Jit(#[from] crate::codegen::jit::JitError),
}

/// Loss and accuracy of one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchStats {
    /// Sum over the batch of the per-sample NLL.
    pub loss_sum: f64,
    /// Samples whose arg-max prediction equals the label.
    pub correct: usize,
    pub samples: usize,
}

/// A classifier the training loop can drive: the JIT executor and the reference evaluator both
/// implement it, so training can be checked against the oracle end to end.
pub trait Classifier: Send + Sync {
    fn graph(&self) -> &Graph;
    /// Forward and backward of the mean NLL over a batch (`labels.len()` samples, `images` is
    /// `batch * input_len` values). Overwrites `grad` with d(mean loss)/d(params).
    fn train_batch(
        &self,
        params: &[f32],
        images: &[f32],
        labels: &[u8],
        grad: &mut [f32],
    ) -> Result<BatchStats, RuntimeError>;
    /// Log-probabilities (`batch * classes`) for a batch of inputs.
    fn predict(&self, params: &[f32], images: &[f32], logp: &mut [f32])
    -> Result<(), RuntimeError>;
}

pub mod dense_lattice;
pub mod init;
pub mod lattice_net;
pub mod lattice_reference;
pub mod native;
pub mod reference;
