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

pub mod cli;
pub mod codegen;
pub mod diagnostics;
pub mod inspect;
pub mod ir;
pub mod lattice;
pub mod runtime;
pub mod sema;
pub mod solve;
pub mod source;
pub mod syntax;
pub mod train;
