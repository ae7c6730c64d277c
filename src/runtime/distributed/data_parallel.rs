//! [`DataParallel`] over the processes of an MPI launch: `mpirun -np N symc train` of a
//! classifier. The gradient and loss sums go through [`Comm::sum_f64`], a reduce to rank 0
//! and a broadcast, not an all-reduce, for the reason `comm` gives: every process must hold
//! the bit-identical sum, or their optimiser steps (and their weights) would drift apart and
//! a divergence check could stop one process while the others wait in the next sum.

use super::comm::Comm;
use crate::runtime::data_parallel::DataParallel;

/// Every process of `comm` as one data-parallel training group.
pub struct MpiDataParallel<'a> {
    comm: &'a Comm,
}

impl<'a> MpiDataParallel<'a> {
    pub fn new(comm: &'a Comm) -> Self {
        MpiDataParallel { comm }
    }
}

impl DataParallel for MpiDataParallel<'_> {
    fn rank(&self) -> usize {
        self.comm.rank()
    }

    fn size(&self) -> usize {
        self.comm.size()
    }

    fn sum(&self, partials: &mut [f64]) {
        self.comm.sum_f64(partials);
    }

    fn worst(&self, code: u8) -> u8 {
        // Exit codes are small integers, exact in f64; the gathered maximum is the same on all.
        self.comm.max_f64(code as f64) as u8
    }
}
