//! Domain decomposition over MPI processes (`mpirun -np N symc solve ...`, cargo feature `mpi`).
//!
//! Why it lives in the runtime: it is an executor concern — buffers, layouts, the tables a
//! gauge field gives the kernels, and now messages — beside `runtime::dirac`, whose kernel it
//! runs unchanged. Codegen does not know about processes, and `solve` knows only one hook,
//! [`crate::solve::LinearOperator::global_sum`], which a distributed operator implements.
//!
//! - [`grid`]: the process grid (automatic or `--procs`), its checks and the site mapping;
//!   pure arithmetic, compiled and tested in every build;
//! - `comm` (feature `mpi`): start-up under a launcher, collectives, the deterministic sum;
//! - `halo` (feature `mpi`): faces, ghost slots, interior and boundary sites;
//! - `evenodd` (feature `mpi`): `symc solve --evenodd` on the sub-lattice operators;
//! - `exchange` (feature `mpi`): one halo exchange overlapped with a kernel sweep, the pattern
//!   the operators share;
//! - `operator` (feature `mpi`): the sub-lattice Wilson-clover operator with its halo exchange;
//! - `schur` (feature `mpi`): the even-odd Schur operator on the sub-lattice, a halo per parity;
//! - `multigrid` (feature `mpi`): the two-level multigrid with every block on one process,
//!   P† and P local, the small coarse system all-gathered and solved on every process;
//! - `multigrid_net` (feature `mpi`): a near-null multigrid network on the sub-lattice (the
//!   level on `multigrid`, the fine layers on `net`);
//! - `net` (feature `mpi`): a gauge network on the sub-lattice, its halo planned per path
//!   displacement, its weight gradients summed over the processes;
//! - `solve` (feature `mpi`): gauge distribution and a batch of distributed solves;
//! - `heatbath` (feature `mpi`): the heatbath's link updates shared out over the processes;
//! - `data_parallel` (feature `mpi`): the classifier trainer's gradient sums over the
//!   processes (the trait it implements, `runtime::data_parallel`, is in every build).

pub mod grid;

#[cfg(feature = "mpi")]
pub mod comm;
#[cfg(feature = "mpi")]
pub mod data_parallel;
#[cfg(feature = "mpi")]
pub mod evenodd;
#[cfg(feature = "mpi")]
mod exchange;
#[cfg(feature = "mpi")]
mod halo;
#[cfg(feature = "mpi")]
pub mod heatbath;
#[cfg(feature = "mpi")]
pub mod multigrid;
#[cfg(feature = "mpi")]
pub mod multigrid_net;
#[cfg(feature = "mpi")]
pub mod net;
#[cfg(feature = "mpi")]
pub mod operator;
#[cfg(feature = "mpi")]
pub mod schur;
#[cfg(feature = "mpi")]
pub mod solve;

use crate::solve::AdjointOperator;
use num_complex::Complex64;

/// D and D† of one vector, reduced to global numbers that do not depend on how the lattice is
/// split, up to round-off: the check that a distributed operator equals the single-process one
/// (`symc solve --operator-check`). The weighted sums give every global site its own weight
/// (1 + site mod 7), so a field that is right up to a permutation of sites fails them.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct OperatorCheck {
    /// ‖D b‖.
    pub norm_d: f64,
    /// Σ_x w(x) |(D b)(x)|².
    pub weighted_d: f64,
    /// ‖D† b‖.
    pub norm_ddag: f64,
    /// Σ_x w(x) |(D† b)(x)|².
    pub weighted_ddag: f64,
}

/// [`OperatorCheck`] of `op` on `b` (this process's part); `global_site(s)` is the global
/// lexicographic site of local site `s`.
pub fn operator_check(
    op: &dyn AdjointOperator<f64>,
    b: &[Complex64],
    global_site: impl Fn(usize) -> usize,
) -> OperatorCheck {
    let mut y = vec![Complex64::new(0.0, 0.0); b.len()];
    let mut sums = [0.0f64; 4];
    for dagger in [false, true] {
        if dagger {
            op.apply_dagger(&mut y, b);
        } else {
            op.apply(&mut y, b);
        }
        let at = if dagger { 2 } else { 0 };
        for (s, site) in y.chunks_exact(12).enumerate() {
            let n: f64 = site.iter().map(|z| z.norm_sqr()).sum();
            sums[at] += n;
            sums[at + 1] += (1 + global_site(s) % 7) as f64 * n;
        }
    }
    op.global_sum(&mut sums);
    OperatorCheck {
        norm_d: sums[0].sqrt(),
        weighted_d: sums[1],
        norm_ddag: sums[2].sqrt(),
        weighted_ddag: sums[3],
    }
}

/// [`OperatorCheck`] of an even-odd Schur operator `op` on the even half of `b` (this
/// process's part of a full vector on its `local` sub-lattice, whose local checkerboard is
/// the global one): the `--evenodd --operator-check` of D̂, in the same global numbers.
pub fn schur_check(
    op: &dyn AdjointOperator<f64>,
    b: &[Complex64],
    local: [usize; 4],
    global_site: impl Fn(usize) -> usize,
) -> Result<OperatorCheck, crate::lattice::evenodd::EvenOddError> {
    use crate::lattice::evenodd::{Checkerboard, Parity};
    let board = Checkerboard::new(&crate::lattice::geometry::Geometry::new(local))?;
    let (even, _) = board.split(b)?;
    let sites = board.sites(Parity::Even);
    Ok(operator_check(op, &even, |s| global_site(sites[s] as usize)))
}
