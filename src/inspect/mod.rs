//! `symc inspect` beyond the layer table: what the compiler made of each kernel, how fast it
//! runs against this machine's roofline, and whether it computes the right thing.
//!
//! - [`roofline`]: CPU detection and the measured 128-bit FMA / memory-bandwidth ceilings.
//! - [`isa_stats`]: instruction classes from cranelift's VCode listing, and the roofline placement
//!   of a kernel from its plan's FLOPs and bytes.
//! - [`views`]: text tables (100 columns, colour on a TTY) and JSON structures.
//! - [`bench`]: `--bench`, kernels timed on synthetic data against the ceilings.
//! - [`verify`]: `--verify`, the JIT against the reference evaluator, gradients against finite
//!   differences, and the declared symmetry.

pub mod bench;
pub mod isa_stats;
pub mod roofline;
pub mod verify;
pub mod views;
