//! `symc inspect` beyond the layer table: what the compiler made of each kernel, how fast it
//! runs against this machine's roofline, and whether it computes the right thing.
//!
//! - [`roofline`]: CPU detection and the measured 128-bit FMA / memory-bandwidth ceilings.
//! - [`isa_stats`]: instruction classes from cranelift's VCode listing, and the roofline placement
//!   of a kernel from its plan's FLOPs and bytes.

pub mod isa_stats;
pub mod roofline;
pub mod verify;
