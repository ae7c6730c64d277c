//! The group of processes a classifier trains in, data-parallel: each member computes the
//! loss and the gradient of its contiguous share of every mini-batch, the partial sums are
//! added up over the group, and every member takes the identical optimiser step.
//!
//! Why a trait here and not MPI in the training loop: `train::classify` must build and run
//! without MPI (the default build has no MPI types at all). It sees only [`DataParallel`];
//! [`SingleProcess`] is the trivial group of the plain build, and the MPI group lives in
//! `runtime::distributed::data_parallel` (feature `mpi`). It sits in the runtime beside the
//! other executor concerns, so `train` keeps depending only downwards.

use std::ops::Range;

/// The members of a data-parallel run and the two collectives its loop needs.
///
/// Every member must call [`DataParallel::sum`] and [`DataParallel::worst`] the same number
/// of times in the same order; the loop makes every decision that decides whether another
/// collective follows from numbers these calls made identical on all members.
pub trait DataParallel {
    /// This member's index, 0 ..< [`DataParallel::size`]; member 0 alone prints and writes.
    fn rank(&self) -> usize;
    /// The number of members.
    fn size(&self) -> usize;
    /// Sums `partials` over all members in place; every member gets bit-identical sums (the
    /// optimiser steps, and the divergence checks that may end the run, depend on them).
    fn sum(&self, partials: &mut [f64]);
    /// The largest of every member's exit code (0 = fine): whether the run goes on, agreed.
    fn worst(&self, code: u8) -> u8;

    fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// This member's rows of a batch of `n`.
    fn share(&self, n: usize) -> Range<usize> {
        share(n, self.rank(), self.size())
    }
}

/// Rows `[r n / p, (r + 1) n / p)` of a batch of `n` for member `r` of `p`: contiguous, in
/// rank order, covering the batch exactly once; sizes differ by at most one (a member may get
/// none when `n < p`).
pub fn share(n: usize, rank: usize, size: usize) -> Range<usize> {
    let p = size.max(1);
    let r = rank.min(p);
    // u128: n * p cannot overflow.
    let at = |k: usize| ((n as u128 * k as u128) / p as u128) as usize;
    at(r)..at((r + 1).min(p))
}

/// The largest share of a batch of `n` over `size` members: the batch width each member's
/// classifier is compiled for.
pub fn max_share(n: usize, size: usize) -> usize {
    n.div_ceil(size.max(1))
}

/// One process training alone: the sums are the partial sums themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl DataParallel for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum(&self, _partials: &mut [f64]) {}
    fn worst(&self, code: u8) -> u8 {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_once_in_rank_order() {
        for n in [0usize, 1, 3, 7, 64, 65, 1000] {
            for p in 1..=9 {
                let mut next = 0;
                for r in 0..p {
                    let s = share(n, r, p);
                    assert_eq!(s.start, next, "n {n} p {p} r {r}");
                    // The brief's formula, written out independently.
                    assert_eq!(s, (r * n / p)..((r + 1) * n / p));
                    assert!(s.len() <= max_share(n, p));
                    next = s.end;
                }
                assert_eq!(next, n);
            }
        }
        assert_eq!(share(64, 1, 3), 21..42);
        assert_eq!(max_share(64, 3), 22);
        assert_eq!(SingleProcess.share(10), 0..10);
    }
}
