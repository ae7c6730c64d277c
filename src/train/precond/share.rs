//! A preconditioner run on a lattice split over the processes of an MPI launch
//! (`mpirun -np N symc train models/ptc_1h1l.sym`): what the trainer needs from the launch,
//! as a trait, so that the trainer builds and runs without MPI and the MPI side stays in
//! `runtime::distributed` (the implementation, [`MpiLattice`], exists with the `mpi` feature).
//!
//! Each process holds its sub-lattice of every field: it draws the same global Gaussian
//! vectors and keeps its sites (`pairs::training_pair_on`), applies its part of D and of the
//! network (halo exchanges inside both), and the loss and the weight gradients are summed over
//! the processes, bit-identically, so every process takes the same optimiser step. Rank 0
//! alone writes the run folder and prints.

use super::PrecondError;
use super::compare::SolveComparison;
use super::lowmodes::LowModeSystem;
use super::pairs::PairDirac;
use crate::ir::{Graph, LayerKind, LossSpec};
use crate::lattice::gauge::GaugeField;
use crate::lattice::wilson::DiracParams;
use crate::runtime::data_parallel::DataParallel;
use crate::runtime::distributed::grid::{GridError, ProcessGrid};
use crate::runtime::multigrid_net::{BasisCache, MultigridNetError, split_refusal};
use crate::runtime::preconditioner::NetPreconditioner;
use crate::runtime::{FermionNet, RuntimeError};
use crate::solve::SolveParams;
use num_complex::Complex64;

/// The processes a preconditioner trains on, and the distributed pieces they build.
pub trait LatticeShare {
    /// The processes (rank 0 writes and prints; [`DataParallel::worst`] agrees on failures).
    fn group(&self) -> &dyn DataParallel;
    /// The process grid of this launch for a lattice of extents `dims`.
    fn grid(&self, dims: [usize; 4]) -> Result<ProcessGrid, GridError>;
    /// Rank 0's gauge field (`Some` there) on every process.
    fn broadcast_gauge(&self, gauge: Option<&GaugeField>) -> GaugeField;
    /// This process's part of D in f32 (its `global_sum` reduces over the processes).
    fn dirac_f32(
        &self,
        grid: &ProcessGrid,
        gauge: &GaugeField,
        params: &DiracParams,
    ) -> Result<Box<dyn PairDirac>, RuntimeError>;
    /// `graph` on this process's sub-lattice; its weight gradients are the global ones. A
    /// multigrid network runs its set-up for `dirac` (the basis from `cache` if it was made
    /// for exactly this set-up).
    fn net_f32(
        &self,
        grid: &ProcessGrid,
        graph: &Graph,
        gauge: &GaugeField,
        dirac: &DiracParams,
        cache: BasisCache<'_>,
    ) -> Result<Box<dyn FermionNet<f32>>, MultigridNetError>;
    /// The low-mode solves of the two-term loss on this process's sub-lattice: the distributed
    /// operator, with the distributed two-level multigrid where it tiles the lattice and the
    /// sub-lattices (its basis read from or written to `cache` by rank 0).
    fn low_modes(
        &self,
        grid: &ProcessGrid,
        gauge: &GaugeField,
        dirac: &DiracParams,
        cache: &std::path::Path,
    ) -> Result<Box<dyn LowModeSystem>, PrecondError>;
    /// The run's closing comparison (as `compare::compare_solves`) on this process's part of
    /// the sources `rhs`, with the distributed operator: every process gets the same reports.
    #[allow(clippy::too_many_arguments)]
    fn compare(
        &self,
        grid: &ProcessGrid,
        gauge: &GaugeField,
        dirac: &DiracParams,
        prec: &mut NetPreconditioner,
        rhs: &[Vec<Complex64>],
        sp: &SolveParams,
        seed: u64,
        log: bool,
    ) -> Result<SolveComparison, PrecondError>;
}

/// Why `graph` (with loss `loss`) cannot train split over processes, or `None` if it can: a
/// network of gauge layers (global or site-dependent weights), possibly after a near-null
/// multigrid level (coarse solve or coarse layers), with the one-term, two-term or filtered
/// loss. The others train on rank 0 (the caller says so).
pub fn refusal(graph: &Graph, loss: &LossSpec) -> Option<String> {
    if let LossSpec::Coarse = loss {
        return Some("`loss coarse` (D_c runs in one process)".into());
    }
    for l in &graph.layers {
        match &l.kind {
            LayerKind::CoarseLevel(level) => {
                if let Some(why) = split_refusal(level) {
                    return Some(format!("the multigrid level `{}` is {why}", l.name));
                }
            }
            LayerKind::Ptc { .. }
            | LayerKind::Transport { .. }
            | LayerKind::Add
            | LayerKind::NormGate => {}
            _ => return Some(format!("layer `{}` is not a gauge layer", l.name)),
        }
    }
    None
}

/// The trained network of run folder `dir` as the FGMRES preconditioner of a solve split over
/// `share`'s processes (`mpirun -np N symc solve --precond RUN_DIR`), on `grid`'s sub-lattice
/// of `gauge`. Networks that [`refusal`] names are refused with the reason.
pub fn split_preconditioner(
    dir: &std::path::Path,
    gauge: &GaugeField,
    dirac: &DiracParams,
    share: &dyn LatticeShare,
    grid: &ProcessGrid,
) -> Result<NetPreconditioner, PrecondError> {
    let (graph, params) = super::rundir::load_weights(dir, gauge.dims())?;
    if let Some(why) = refusal(&graph, &LossSpec::Preconditioner) {
        return Err(PrecondError::NotSplit { model: graph.name.clone(), why });
    }
    // A multigrid network reuses the run's basis only if it was made for this configuration
    // and operator; the run folder is never written.
    let cache = dir.join(super::rundir::BASIS_FILE);
    let net = share.net_f32(grid, &graph, gauge, dirac, BasisCache::ReadOnly(&cache))?;
    Ok(NetPreconditioner::new(net, params)?)
}

/// What a split run records in `summary.json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Decomposition {
    pub ranks: usize,
    pub procs: [usize; 4],
    pub local_dims: [usize; 4],
}

#[cfg(feature = "mpi")]
pub use mpi_lattice::MpiLattice;

#[cfg(feature = "mpi")]
mod mpi_lattice {
    use super::super::lowmodes::multigrid_tiles;
    use super::*;
    use crate::lattice::wilson::WilsonClover;
    use crate::runtime::distributed::comm::Comm;
    use crate::runtime::distributed::data_parallel::MpiDataParallel;
    use crate::runtime::distributed::multigrid::DistMultigrid;
    use crate::runtime::distributed::multigrid_net::DistMultigridNet;
    use crate::runtime::distributed::net::DistLatticeNet;
    use crate::runtime::distributed::operator::DistWilsonClover;
    use crate::runtime::distributed::solve::broadcast_gauge;
    use crate::runtime::multigrid::{BasisSource, MultigridParams};
    use crate::solve::batch::{Setup, SolverKind, System};
    use crate::solve::{MixedWorkspace, SolveReport};

    /// The low-mode solves on this process's sub-lattice (see [`LatticeShare::low_modes`]).
    struct SplitLowModes {
        grid: ProcessGrid,
        d64: DistWilsonClover<f64>,
        d32: DistWilsonClover<f32>,
        mg: Option<DistMultigrid>,
        ws: MixedWorkspace,
        setup_seconds: f64,
    }

    impl LowModeSystem for SplitLowModes {
        fn solve(
            &mut self,
            v: &[Complex64],
            u: &mut [Complex64],
            params: &SolveParams,
        ) -> Result<SolveReport, String> {
            let (ws, d64, d32) = (&mut self.ws, &self.d64, &self.d32);
            match &mut self.mg {
                Some(mg) => {
                    crate::solve::fgmres_mixed(ws, d64, d32, &mut mg.native(), v, u, params)
                }
                None => crate::solve::gmres_mixed(ws, d64, d32, v, u, params),
            }
            .map_err(|e| e.to_string())
        }

        fn local_part(&self, v: &[Complex64]) -> Vec<Complex64> {
            self.grid.local_part(v, 12)
        }

        fn solver(&self) -> &'static str {
            if self.mg.is_some() { "mg" } else { "gmres" }
        }

        fn setup_seconds(&self) -> f64 {
            self.setup_seconds
        }
    }

    impl PairDirac for DistWilsonClover<f32> {
        fn layout(&self) -> &crate::runtime::SiteLayout {
            DistWilsonClover::layout(self)
        }
    }

    /// Every process of an MPI launch.
    pub struct MpiLattice<'a> {
        comm: &'a Comm,
        group: MpiDataParallel<'a>,
        procs: Option<[usize; 4]>,
    }

    impl<'a> MpiLattice<'a> {
        /// The processes of `comm`, split as `procs` (`--procs`) or automatically.
        pub fn new(comm: &'a Comm, procs: Option<[usize; 4]>) -> Self {
            MpiLattice { comm, group: MpiDataParallel::new(comm), procs }
        }
    }

    impl LatticeShare for MpiLattice<'_> {
        fn group(&self) -> &dyn DataParallel {
            &self.group
        }

        fn grid(&self, dims: [usize; 4]) -> Result<ProcessGrid, GridError> {
            ProcessGrid::new(dims, self.comm.size(), self.comm.rank(), self.procs)
        }

        fn broadcast_gauge(&self, gauge: Option<&GaugeField>) -> GaugeField {
            broadcast_gauge(self.comm, gauge)
        }

        fn dirac_f32(
            &self,
            grid: &ProcessGrid,
            gauge: &GaugeField,
            params: &DiracParams,
        ) -> Result<Box<dyn PairDirac>, RuntimeError> {
            let reference = WilsonClover::<f64>::new(gauge, params);
            Ok(Box::new(DistWilsonClover::<f32>::new(self.comm, grid, &reference)?))
        }

        fn net_f32(
            &self,
            grid: &ProcessGrid,
            graph: &Graph,
            gauge: &GaugeField,
            dirac: &DiracParams,
            cache: BasisCache<'_>,
        ) -> Result<Box<dyn FermionNet<f32>>, MultigridNetError> {
            if crate::ir::levels::level(graph).is_some() {
                let net = DistMultigridNet::compile(self.comm, grid, graph, gauge, dirac, cache)?;
                return Ok(Box::new(net));
            }
            Ok(Box::new(DistLatticeNet::<f32>::compile(self.comm, grid, graph, gauge)?))
        }

        fn low_modes(
            &self,
            grid: &ProcessGrid,
            gauge: &GaugeField,
            dirac: &DiracParams,
            cache: &std::path::Path,
        ) -> Result<Box<dyn LowModeSystem>, PrecondError> {
            let reference = WilsonClover::<f64>::new(gauge, dirac);
            let d64 = DistWilsonClover::<f64>::new(self.comm, grid, &reference)?;
            let d32 = DistWilsonClover::<f32>::new(self.comm, grid, &reference)?;
            drop(reference);
            let params = MultigridParams::reference();
            // As in one process, and only where every block lies on one process.
            let tiles = multigrid_tiles(gauge.dims())
                && (0..4).all(|mu| grid.local[mu] % params.blocks[mu] == 0);
            let start = std::time::Instant::now();
            let mg = if tiles {
                let cache = BasisCache::ReadWrite(cache);
                Some(
                    DistMultigrid::build(self.comm, grid, gauge, dirac, &params, cache)
                        .map_err(|e| PrecondError::Multigrid(e.into()))?,
                )
            } else {
                None
            };
            let setup_seconds = match &mg {
                Some(m) if matches!(m.setup_report().source, BasisSource::Cached { .. }) => 0.0,
                Some(_) => start.elapsed().as_secs_f64(),
                None => 0.0,
            };
            let grid = grid.clone();
            let ws = MixedWorkspace::new();
            Ok(Box::new(SplitLowModes { grid, d64, d32, mg, ws, setup_seconds }))
        }

        fn compare(
            &self,
            grid: &ProcessGrid,
            gauge: &GaugeField,
            dirac: &DiracParams,
            prec: &mut NetPreconditioner,
            rhs: &[Vec<Complex64>],
            sp: &SolveParams,
            seed: u64,
            log: bool,
        ) -> Result<SolveComparison, PrecondError> {
            let reference = WilsonClover::<f64>::new(gauge, dirac);
            let d64 = DistWilsonClover::<f64>::new(self.comm, grid, &reference)?;
            let d32 = DistWilsonClover::<f32>::new(self.comm, grid, &reference)?;
            drop(reference);
            prec.error = None;
            let reports = {
                let mut net = prec.right(Some(d32.layout()));
                let mut setups = [
                    Setup { solver: SolverKind::Gmres, preconditioner: None },
                    Setup { solver: SolverKind::Fgmres, preconditioner: Some(&mut net) },
                ];
                let system = System { op: &d64, native: Some(&d32), exact: None };
                super::super::compare::solve_logged(system, &mut setups, rhs, sp, log)?
            };
            if let Some(e) = prec.error.take() {
                return Err(PrecondError::Runtime(RuntimeError::Shape(e)));
            }
            Ok(super::super::compare::comparison(&reports, sp, rhs.len(), seed, "mixed"))
        }
    }
}
