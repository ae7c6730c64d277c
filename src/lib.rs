//! symc: a compiler for neural networks described by the symmetry of their data.
//!
//! Pipeline (each stage turns one type into the next; see README "Architecture"):
//!
//! ```text
//! .sym text ─syntax─▶ ast::Model ─sema─▶ ir::Graph ─codegen─▶ native kernels ─runtime/train─▶ results
//!                                            └────────── runtime::reference (the oracle) ───────┘
//! ```
//!
//! - [`syntax`]: pest grammar (`grammar/sym.pest`) → AST with spans. The only place pest lives.
//! - [`sema`]: names, shapes, symmetry → layer kind, parameter layout, diagnostics → [`ir::Graph`].
//! - [`ir`]: the checked network; knows nothing of pest, miette or cranelift.
//! - [`codegen`]: cranelift JIT kernels, one emitter per layer kind; `codegen::jit` holds the
//!   only `unsafe` calls into generated code.
//! - [`runtime`]: buffers, the plain-Rust reference evaluator, the model executors.
//! - [`lattice`]: SU(3), gauge fields, Wilson-clover, heatbath, gauge file formats.
//! - [`solve`]: Krylov solvers (GMRES, FGMRES, BiCGStab, CGNE).
//! - [`train`]: training loops, optimisers, data, checkpoints, plots.
//! - [`cli`]: one file per subcommand; no compiler logic.
//! - [`model`]: symc as a library — [`Model`] compiles a `.sym` text, [`ClassifierNet`] and
//!   [`GaugeNet`] run it on ndarray arrays, weights load and save as safetensors. It wraps the
//!   executors and the checkpoint code; nothing inside the compiler depends on it.
//!
//! ```
//! use ndarray::Array2;
//! use symc::Model;
//!
//! # fn main() -> miette::Result<()> {
//! let model = Model::from_str(
//!     "mlp.sym",
//!     "network mlp {
//!          input x: real[16]
//!          symmetry none
//!          linear(16 -> 8) tanh
//!          linear(8 -> 3)
//!          output p: log_softmax
//!      }",
//! )?;
//! let net = model.classifier()?;
//! let logp = net.forward(model.init_params(0).view(), Array2::<f32>::zeros((5, 16)).view())?;
//! assert_eq!(logp.dim(), (5, 3));
//! # Ok(())
//! # }
//! ```

pub mod cli;
pub mod codegen;
pub mod diagnostics;
pub mod inspect;
pub mod ir;
pub mod lattice;
pub mod model;
pub mod runtime;
pub mod sema;
pub mod solve;
pub mod source;
pub mod syntax;
pub mod train;

pub use model::{ClassifierNet, GaugeNet, LossAndGrad, Model, ModelError};

// The README's Rust examples run as doctests, so the front page cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
