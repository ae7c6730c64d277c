//! The halo exchange of a sub-lattice network overlapped with its interior sites.
//!
//! On one process's sub-lattice ([`LatticeNet::compile_decomposed`]) a stencil reads, at the
//! outer sites next to a cut, neighbours that live on another process: the halo. Filling the
//! halo before the whole stencil runs leaves both cores idle while the messages travel. The
//! sites none of whose paths leave the sub-lattice (the interior, most of them) need no halo,
//! so a forward stencil runs them while the messages are in flight and only the boundary sites
//! after the halo has arrived, as the Wilson-clover operator of `runtime::distributed` does.
//!
//! The forward pass therefore leaves a stencil's output *pending* (main part and local ghost
//! slabs only are valid); the next stencil that reads it completes the halo overlapped with its
//! interior; a layer that reads all slots site by site (residual add, norm gate) completes it
//! first, blocking. What the forward pass returns has every halo complete, as before.

use super::{LatticeNet, RemoteHalo, RuntimeError, stencil_args};
use crate::codegen::jit::KernelId;
use crate::codegen::simd::Element;
use crate::runtime::transport::PathTables;

/// The outer sites of a sub-lattice network, as ranges, split by whether any of the network's
/// displacements reads a halo slot there.
pub(super) struct SiteSplit {
    pub interior: Vec<(usize, usize)>,
    pub boundary: Vec<(usize, usize)>,
}

impl SiteSplit {
    /// The split of `outer_volume` outer sites for the displacements `disps` of `halo`.
    pub fn new<T>(outer_volume: usize, halo: &dyn RemoteHalo<T>, disps: &[[i64; 4]]) -> Self {
        let mut split = SiteSplit { interior: Vec::new(), boundary: Vec::new() };
        let on_boundary = |o: usize| disps.iter().any(|&d| halo.remote_slot(o, d).is_some());
        let mut start = 0;
        while start < outer_volume {
            let edge = on_boundary(start);
            let mut end = start + 1;
            while end < outer_volume && on_boundary(end) == edge {
                end += 1;
            }
            if edge { &mut split.boundary } else { &mut split.interior }.push((start, end));
            start = end;
        }
        split
    }
}

/// Where a forward pass reads its input from: a buffer whose halo is complete, or one whose
/// halo the first stencil that reads it completes (overlapped with its interior).
pub(super) enum Source<'a, T> {
    Ready(&'a [T]),
    Pending(&'a mut [T]),
}

impl<'a, T> Source<'a, T> {
    pub fn get(&self) -> &[T] {
        match self {
            Source::Ready(b) => b,
            Source::Pending(b) => b,
        }
    }

    /// Runs `complete` on the buffer if it is pending (`None` otherwise); the source is ready
    /// afterwards.
    pub fn settle<R>(
        &mut self,
        complete: impl FnOnce(&mut [T]) -> Result<R, RuntimeError>,
    ) -> Option<Result<R, RuntimeError>> {
        match std::mem::replace(self, Source::Ready(&[])) {
            Source::Pending(b) => {
                let r = complete(b);
                *self = Source::Ready(b);
                Some(r)
            }
            ready => {
                *self = ready;
                None
            }
        }
    }
}

impl<T: Element> LatticeNet<T> {
    /// Whether stencil outputs are left pending (a sub-lattice network with a halo).
    pub(super) fn defers_halo(&self) -> bool {
        self.split.is_some()
    }

    /// A forward pass's input buffer (main part and features as the caller filled them): its
    /// ghosts refreshed now, or, on a sub-lattice, left pending for the first stencil that
    /// reads it.
    pub(super) fn input_source<'a>(
        &self,
        input: &'a mut [T],
    ) -> Result<Source<'a, T>, RuntimeError> {
        if self.defers_halo() {
            return Ok(Source::Pending(input));
        }
        self.refresh(input)?;
        Ok(Source::Ready(input))
    }

    /// Stencil `id` over the pending buffer `input`: the local ghost slabs first, then the
    /// halo exchange with the interior sites running while the messages travel, then the
    /// boundary sites. Returns the output (its halo not filled); `input`'s halo is complete.
    pub(super) fn run_stencil_overlapped(
        &self,
        id: KernelId,
        tab: &PathTables<T>,
        input: &mut [T],
        n_out: usize,
        weights: &[T],
    ) -> Result<Vec<T>, RuntimeError> {
        let (Some(halo), Some(split)) = (&self.remote, &self.split) else {
            self.refresh(input)?;
            return self.run_stencil(id, tab, input, n_out, weights, false);
        };
        let mut out = self.field_buffer(n_out);
        let k = self.kernels.kernel(id);
        self.layout.fill_ghosts(&self.ghosts, input);
        let mut interior = |x: &[T]| -> Result<(), RuntimeError> {
            let mut args = stencil_args(x, &mut out, tab, weights);
            Ok(k.call_parallel_ranges(&mut args, &split.interior, 16)?)
        };
        halo.exchange_overlapped(input, self.layout.field_len(), &mut interior)?;
        let mut args = stencil_args(input, &mut out, tab, weights);
        k.call_parallel_ranges(&mut args, &split.boundary, 16)?;
        Ok(out)
    }
}
