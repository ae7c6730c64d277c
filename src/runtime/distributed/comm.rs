//! The processes of an `mpirun` launch, through rsmpi's safe API: start-up (only under a
//! launcher, so the `mpi` build run by hand behaves exactly as the plain one), the few
//! collectives symc needs, and the one reduction the solvers use.
//!
//! Why the reduction is an all-gather and not `MPI_Allreduce`: the MPI standard does not
//! promise that every process gets the bit-identical sum (reduction trees may differ per
//! process), and the solvers branch on these sums (convergence, breakdown, restart). A process
//! that decided differently would wait forever in the next collective. Gathering every
//! process's partials and adding them in rank order on each process makes the sums identical
//! everywhere, for the price of `ranks × len` doubles per reduction (a few hundred bytes for a
//! GMRES(30) column).

use mpi::Threading;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// Environment variables a launcher (Open MPI, MPICH/Hydra, PMIx, Slurm) sets in every process
/// it starts; without one of them symc does not initialise MPI at all.
const LAUNCHER_VARS: [&str; 5] =
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS"];

/// Whether this process was started by an MPI launcher.
pub fn launched_by_mpirun() -> bool {
    LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

/// MPI for the life of the program: dropping it finalises MPI.
pub struct Launch {
    _universe: Universe,
    world: Comm,
}

impl Launch {
    /// Initialises MPI when started by a launcher (funneled: only the main thread calls MPI,
    /// the rayon workers only run kernels); `None` otherwise or if MPI was already initialised.
    pub fn from_env() -> Option<Launch> {
        if !launched_by_mpirun() {
            return None;
        }
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled)?;
        let world = Comm { inner: universe.world() };
        Some(Launch { _universe: universe, world })
    }

    pub fn world(&self) -> &Comm {
        &self.world
    }
}

/// A communicator: the world, or a duplicate of it that one operator uses for its halo
/// messages (so two operators' messages can never be confused).
pub struct Comm {
    inner: SimpleCommunicator,
}

/// The largest element count one MPI call moves (its counts are C ints); bigger buffers go in
/// pieces.
const MAX_COUNT: usize = 1 << 28;

impl Comm {
    pub fn rank(&self) -> usize {
        self.inner.rank() as usize
    }

    pub fn size(&self) -> usize {
        self.inner.size() as usize
    }

    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// A communicator of the same processes with its own message space.
    pub fn duplicate(&self) -> Comm {
        Comm { inner: self.inner.duplicate() }
    }

    pub(crate) fn raw(&self) -> &SimpleCommunicator {
        &self.inner
    }

    pub fn barrier(&self) {
        self.inner.barrier();
    }

    /// Rank 0's `buf` into every process's `buf` (same length everywhere).
    pub fn broadcast<T: Equivalence>(&self, buf: &mut [T]) {
        let root = self.inner.process_at_rank(0);
        for piece in buf.chunks_mut(MAX_COUNT) {
            root.broadcast_into(piece);
        }
    }

    /// Rank 0's value into every process.
    pub fn broadcast_u64(&self, v: u64) -> u64 {
        let mut b = [v];
        self.broadcast(&mut b);
        b[0]
    }

    /// Sums `partials` over all processes in place, in rank order on every process, so that
    /// every process holds bit-identical sums (see the module doc).
    pub fn sum_f64(&self, partials: &mut [f64]) {
        let n = self.size();
        if n == 1 || partials.is_empty() {
            return;
        }
        let mut all = vec![0.0f64; n * partials.len()];
        self.inner.all_gather_into(&partials[..], &mut all[..]);
        let len = partials.len();
        for (i, p) in partials.iter_mut().enumerate() {
            *p = (0..n).map(|r| all[r * len + i]).sum();
        }
    }

    /// The largest of every process's value.
    pub fn max_f64(&self, v: f64) -> f64 {
        let mut all = vec![0.0f64; self.size()];
        self.inner.all_gather_into(&v, &mut all[..]);
        all.into_iter().fold(f64::NEG_INFINITY, f64::max)
    }
}
