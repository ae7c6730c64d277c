//! Lattice QCD substrate: geometry, SU(3) algebra, gauge and fermion fields, the Wilson-clover
//! operator (plain reference) with its clover inverse and even-odd (Schur) decomposition, the
//! multigrid coarse space (blocks, near-null basis, Galerkin coarse operator), the quenched
//! heatbath and the gauge-file formats.
//!
//! Everything here is deliberately plain Rust: these are the references the JIT kernels of
//! `codegen` are checked against. Conventions follow Grid/GPT (physics.md): DeGrand–Rossi gamma
//! basis, directions x, y, z, t = 0..4, sites lexicographic with x fastest and t last.

pub mod blocks;
pub mod clover;
pub mod coarse;
pub mod evenodd;
pub mod fermion;
pub mod gamma;
pub mod gauge;
pub mod geometry;
pub mod heatbath;
pub mod io;
pub mod rng;
pub mod su3;
pub mod wilson;

/// The floating-point types the lattice code is generic over (f32 and f64).
pub trait Real:
    num_traits::Float
    + num_traits::FloatConst
    + num_traits::NumAssign
    + std::iter::Sum
    + Send
    + Sync
    + Default
    + std::fmt::Debug
    + std::fmt::Display
    + 'static
{
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
}
impl Real for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}
impl Real for f64 {
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
}
