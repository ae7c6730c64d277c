//! The processes of an `mpirun` launch, through rsmpi's safe API: start-up (only under a
//! launcher, so the `mpi` build run by hand behaves exactly as the plain one), the few
//! collectives symc needs, and the one reduction the solvers use.
//!
//! Why the reduction is a reduce to rank 0 and a broadcast, not `MPI_Allreduce`: the MPI
//! standard does not promise that every process gets the bit-identical sum (reduction trees may
//! differ per process), and the solvers branch on these sums (convergence, breakdown, restart).
//! A process that decided differently would wait forever in the next collective. With one sum,
//! made on rank 0 and broadcast, every process holds the same bits, at two O(log P) trees per
//! reduction (the same latency class as an all-reduce).

use mpi::Threading;
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

/// Environment variables a launcher (Open MPI, MPICH/Hydra, PMIx, Slurm) sets in every process
/// it starts; without one of them symc does not initialise MPI at all.
const LAUNCHER_VARS: [&str; 5] =
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS"];

/// Whether this process was started by an MPI launcher.
pub fn launched_by_mpirun() -> bool {
    LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

/// Gives each process of this node its share of the cores as rayon threads (unless
/// `RAYON_NUM_THREADS` says otherwise): N processes with a full-size pool each would put N
/// threads on every core, and a kernel's chunk waiting for a descheduled thread stalls the
/// halo exchange of every neighbour.
fn share_cores() {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        crate::runtime::init_pool(None);
        return;
    }
    let local = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Only if the pool does not exist yet (then it stays as it is).
    crate::runtime::init_pool(Some((cores / local).max(1)));
}

/// MPI for the life of the program: dropping it finalises MPI.
pub struct Launch {
    _universe: Universe,
    world: Comm,
}

impl Drop for Launch {
    /// The registered communicators are freed while MPI still runs (the fields, the universe
    /// among them, drop after this).
    fn drop(&mut self) {
        REGISTERED.with(|r| r.borrow_mut().clear());
        FUNNELED.with(|r| r.borrow_mut().clear());
    }
}

impl Launch {
    /// Initialises MPI when started by a launcher (funneled: only the main thread calls MPI,
    /// the rayon workers only run kernels); `None` otherwise or if MPI was already initialised.
    pub fn from_env() -> Option<Launch> {
        if !launched_by_mpirun() {
            return None;
        }
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled)?;
        share_cores();
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

thread_local! {
    /// The communicators registered by [`Comm::register`], on the thread that registered them.
    static REGISTERED: std::cell::RefCell<Vec<Comm>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A communicator held by the thread that made MPI calls possible (MPI runs funneled: only
/// the main thread calls it). The handle itself is a number, so the structures that keep one
/// (a network, which must be `Send + Sync` like every network) stay safe Rust; a use from any
/// other thread finds no communicator and is refused instead of racing MPI.
#[derive(Clone, Copy, Debug)]
pub struct CommHandle(usize);

impl CommHandle {
    /// Runs `f` with the communicator, or fails off the registering thread.
    pub fn with<R>(self, f: impl FnOnce(&Comm) -> R) -> Result<R, String> {
        REGISTERED.with(|r| {
            r.borrow().get(self.0).map(f).ok_or_else(|| {
                "internal: MPI was called off the thread that initialised it".to_string()
            })
        })
    }
}

type Slot = Option<Rc<RefCell<Box<dyn Any>>>>;

thread_local! {
    /// The objects kept by [`Funneled::new`], on the thread that made them.
    static FUNNELED: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// An object that makes MPI calls itself (an operator with its own communicator, the
/// distributed multigrid) kept on the thread that initialised MPI, behind a handle that is a
/// number: the structure that holds the handle (a network, `Send + Sync` like every network)
/// stays safe Rust, and a use from another thread is refused instead of racing MPI — the
/// same rule as [`CommHandle`], for whole objects. The object is dropped with the handle (on
/// its thread) or, at the latest, when MPI is finalised.
pub struct Funneled<T: 'static> {
    index: usize,
    thread: std::thread::ThreadId,
    _kind: PhantomData<fn() -> T>,
}

impl<T: 'static> Funneled<T> {
    /// Keeps `value` on this thread.
    pub fn new(value: T) -> Self {
        let index = FUNNELED.with(|r| {
            let mut r = r.borrow_mut();
            r.push(Some(Rc::new(RefCell::new(Box::new(value) as Box<dyn Any>))));
            r.len() - 1
        });
        Funneled { index, thread: std::thread::current().id(), _kind: PhantomData }
    }

    /// Runs `f` on the object, or fails off its thread (or when `f` is already running on it:
    /// the object is not re-entrant).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, String> {
        let off = || "internal: an MPI object was used off the thread that made it".to_string();
        if std::thread::current().id() != self.thread {
            return Err(off());
        }
        let cell =
            FUNNELED.with(|r| r.borrow().get(self.index).cloned().flatten()).ok_or_else(off)?;
        let mut guard = cell
            .try_borrow_mut()
            .map_err(|_| "internal: an MPI object was used while in use".to_string())?;
        let value = guard.downcast_mut::<T>().ok_or_else(off)?;
        Ok(f(value))
    }
}

impl<T: 'static> Drop for Funneled<T> {
    fn drop(&mut self) {
        if std::thread::current().id() == self.thread {
            // After MPI's finalisation the registry is gone (or emptied): nothing to free.
            let _ = FUNNELED.try_with(|r| {
                if let Some(slot) = r.borrow_mut().get_mut(self.index) {
                    *slot = None;
                }
            });
        }
    }
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

    /// A duplicate of this communicator kept on this thread, behind a [`CommHandle`].
    pub fn register(&self) -> CommHandle {
        let dup = self.duplicate();
        REGISTERED.with(|r| {
            let mut r = r.borrow_mut();
            r.push(dup);
            CommHandle(r.len() - 1)
        })
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

    /// Sums `partials` over all processes in place, so that every process holds bit-identical
    /// sums (see the module doc).
    pub fn sum_f64(&self, partials: &mut [f64]) {
        if self.size() == 1 || partials.is_empty() {
            return;
        }
        let root = self.inner.process_at_rank(0);
        if self.is_root() {
            let mut sum = vec![0.0f64; partials.len()];
            root.reduce_into_root(&partials[..], &mut sum[..], SystemOperation::sum());
            partials.copy_from_slice(&sum);
        } else {
            root.reduce_into(&partials[..], SystemOperation::sum());
        }
        self.broadcast(partials);
    }

    /// Every process's `v`, in rank order, on every process.
    pub fn gather_u64(&self, v: u64) -> Vec<u64> {
        let mut all = vec![0u64; self.size()];
        self.inner.all_gather_into(&v, &mut all[..]);
        all
    }

    /// Every process's `local` (the same length on every process), concatenated in rank
    /// order, on every process.
    pub fn all_gather<T: Equivalence + Copy + Default>(&self, local: &[T]) -> Vec<T> {
        let mut all = vec![T::default(); local.len() * self.size()];
        if self.size() == 1 {
            all.copy_from_slice(local);
        } else {
            self.inner.all_gather_into(local, &mut all[..]);
        }
        all
    }

    /// The largest of every process's value.
    pub fn max_f64(&self, v: f64) -> f64 {
        let mut all = vec![0.0f64; self.size()];
        self.inner.all_gather_into(&v, &mut all[..]);
        all.into_iter().fold(f64::NEG_INFINITY, f64::max)
    }
}
