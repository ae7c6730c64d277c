//! The heatbath over the processes of an MPI launch: every process computes a contiguous share
//! of each (direction, parity) class of links and all of them gather the new links, so every
//! process holds the same field after each class — the field one process would have made, bit
//! for bit (the random numbers are keyed by site, not by process or thread).
//!
//! What it distributes is the work, not the memory: every process keeps the whole field and
//! receives every class's new links (144 bytes per link, eight classes per sweep), which is
//! cheap against a link update on the lattices symc generates, and keeps `lattice::heatbath`
//! free of halos (a staple needs links up to a diagonal step away).

use super::comm::Comm;
use crate::lattice::heatbath::LinkShare;
use crate::lattice::su3::Su3;
use mpi::Count;
use mpi::datatype::PartitionMut;
use mpi::traits::*;
use num_complex::Complex;

/// Reals of one link.
const LINK: usize = 18;

/// [`LinkShare`] over every process of `comm`.
pub struct MpiLinkShare<'a> {
    comm: &'a Comm,
}

impl<'a> MpiLinkShare<'a> {
    pub fn new(comm: &'a Comm) -> Self {
        MpiLinkShare { comm }
    }

    /// The share of `n` sites process `r` computes.
    fn share(&self, n: usize, r: usize) -> std::ops::Range<usize> {
        let p = self.comm.size();
        n * r / p..n * (r + 1) / p
    }
}

impl LinkShare for MpiLinkShare<'_> {
    fn range(&self, n: usize) -> std::ops::Range<usize> {
        self.share(n, self.comm.rank())
    }

    fn gather(&self, mine: &[Su3<f64>], all: &mut Vec<Su3<f64>>, n: usize) {
        let flat: Vec<f64> =
            mine.iter().flat_map(|u| u.m.iter().flatten().flat_map(|z| [z.re, z.im])).collect();
        let counts: Vec<Count> =
            (0..self.comm.size()).map(|r| (self.share(n, r).len() * LINK) as Count).collect();
        let displs: Vec<Count> =
            (0..self.comm.size()).map(|r| (self.share(n, r).start * LINK) as Count).collect();
        let mut buf = vec![0.0f64; n * LINK];
        {
            let mut partition = PartitionMut::new(&mut buf[..], counts, &displs[..]);
            self.comm.raw().all_gather_varcount_into(&flat[..], &mut partition);
        }
        all.clear();
        all.extend(buf.chunks_exact(LINK).map(|c| {
            let mut u = Su3::<f64>::default();
            for (k, z) in u.m.iter_mut().flatten().enumerate() {
                *z = Complex::new(c[2 * k], c[2 * k + 1]);
            }
            u
        }));
    }
}
