//! The form a lowered classifier takes: a forward and a backward *program* of steps (JIT kernel
//! calls, GEMM-library calls, buffer clears) over a fixed set of numbered buffers. Emitters
//! (`dense.rs`, `conv.rs`, `activation.rs`, `contraction.rs`) append steps through a
//! [`Lowering`]; `classifier.rs` drives them layer by layer; `runtime::classifier` executes the
//! steps. Keeping these types here, apart from the driver, keeps the import graph a tree.

use super::jit::{BufSpec, Jit, JitError, KernelId, MatView};
use super::plan::KernelPlan;
use super::simd::Precision;
use crate::ir::Activation;

/// How dense and convolution layers are executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrategyChoice {
    /// Per layer, by the measured rule in `dense.rs` / `conv.rs`.
    Auto,
    /// Every layer entirely in cranelift code.
    ForceJit,
    /// Every layer through the `gemm` crate with JIT glue.
    ForceGemm,
}

/// A buffer of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buf {
    /// The flat parameter vector (read-only).
    Params,
    /// The flat parameter gradient.
    Grad,
    /// Workspace buffer `i` (activations, gradients, padding, im2col).
    Work(usize),
}

/// One step of a program.
#[derive(Clone, Debug)]
pub enum Step {
    /// A JIT kernel over all its items, split across the threads.
    Kernel { id: KernelId, args: Vec<(Buf, bool)> },
    /// `dst (+)= lhs * rhs` through the `gemm` crate.
    Gemm { dst: (Buf, MatView), lhs: (Buf, MatView), rhs: (Buf, MatView), accumulate: bool },
    /// Set a workspace buffer to zero.
    Zero(Buf),
}

/// State while lowering a graph: the JIT session, buffers and the two programs.
pub struct Lowering<'a> {
    pub jit: &'a mut Jit,
    pub prec: Precision,
    /// Padded batch: the lane count of every activation row.
    pub bp: usize,
    pub params: usize,
    pub work: Vec<usize>,
    pub strategy: StrategyChoice,
    pub plans: Vec<KernelPlan>,
    /// Names of kernels defined so far, by id.
    pub names: Vec<String>,
}

impl Lowering<'_> {
    /// A new zero-initialised workspace buffer of `elems` elements.
    pub fn alloc(&mut self, elems: usize) -> Buf {
        self.work.push(elems);
        Buf::Work(self.work.len() - 1)
    }
    pub fn elems(&self, b: Buf) -> usize {
        match b {
            Buf::Params | Buf::Grad => self.params,
            Buf::Work(i) => self.work[i],
        }
    }
    /// Kernel buffer specs for an argument list.
    pub fn specs(&self, args: &[(Buf, bool)]) -> Vec<BufSpec> {
        args.iter()
            .map(|&(b, w)| BufSpec {
                name: match b {
                    Buf::Params => "params".into(),
                    Buf::Grad => "grad".into(),
                    Buf::Work(i) => format!("w{i}"),
                },
                bytes: self.elems(b) * self.prec.bytes(),
                writable: w,
            })
            .collect()
    }
    /// Define a kernel over `args` with `emit` (given the JIT session, the precision and the
    /// buffer specs of `args`), record its name and append its call to `steps`.
    pub fn call(
        &mut self,
        steps: &mut Vec<Step>,
        name: &str,
        args: Vec<(Buf, bool)>,
        emit: impl FnOnce(&mut Jit, Precision, Vec<BufSpec>) -> Result<KernelId, JitError>,
    ) -> Result<KernelId, JitError> {
        let id = emit(self.jit, self.prec, self.specs(&args))?;
        self.named(id, name);
        steps.push(Step::Kernel { id, args });
        Ok(id)
    }
    /// Record a defined kernel's name (for plans).
    pub fn named(&mut self, id: KernelId, name: &str) -> KernelId {
        if self.names.len() <= id.0 {
            self.names.resize(id.0 + 1, String::new());
        }
        self.names[id.0] = name.to_string();
        id
    }
}

/// What a layer lowering needs to know about its neighbourhood.
pub struct LayerIo {
    pub x: Buf,
    pub y: Buf,
    /// Gradient of the input, when some earlier layer needs it.
    pub dx: Option<Buf>,
    pub dy: Buf,
    /// Activation fused into the forward kernel (its backward runs at the start of the layer's
    /// backward).
    pub act: Activation,
}

/// Forward and backward steps of one layer.
#[derive(Default)]
pub struct LayerSteps {
    pub forward: Vec<Step>,
    pub backward: Vec<Step>,
}
