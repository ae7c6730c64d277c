//! A batch of unpreconditioned solves on a lattice decomposed over the processes of an MPI
//! launch: distribute the gauge field, build the sub-lattice operators, run `solve::batch` on
//! this process's part of every source.
//!
//! The solvers are the single-process ones: they see the distributed operator through the
//! `solve` traits, and its `global_sum` makes their inner products global, so every process
//! takes the same decisions and ends with the same reports (global residuals).

use super::comm::Comm;
use super::evenodd::DistEvenOdd;
use super::grid::{GridError, ProcessGrid};
use super::multigrid::DistMultigrid;
use super::operator::{DistWilsonClover, HaloBench, HaloStats};
use super::{OperatorCheck, operator_check, schur_check};
use crate::lattice::gauge::GaugeField;
use crate::lattice::geometry::Geometry;
use crate::lattice::su3::Su3;
use crate::lattice::wilson::{DiracParams, WilsonClover};
use crate::runtime::RuntimeError;
use crate::runtime::evenodd_solve::{EvenOddOptions, EvenOddSolveError, SolvePrecision};
use crate::runtime::multigrid::{MultigridError, MultigridParams, SetupReport};
use crate::runtime::multigrid_net::BasisCache;
use crate::runtime::operator::Precision;
use crate::runtime::preconditioner::NetPreconditioner;
use crate::solve::batch::{self, BatchError, RightPreconditioner, Setup, SolverKind, System};
use crate::solve::multigrid::CycleStats;
use crate::solve::{MixedPrecision, SolveParams, SolveReport};
use num_complex::{Complex, Complex64};

/// Why a distributed solve could not run.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    #[error(transparent)]
    Grid(#[from] GridError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Multigrid(#[from] MultigridError),
    #[error(transparent)]
    EvenOdd(#[from] EvenOddSolveError),
}

/// Rank 0's gauge field on every process. The links go as flat f64 (18 per link); every process
/// then builds the whole-lattice operator once and keeps only its sub-lattice's tables (set-up
/// memory O(V) per process; the solve itself holds only the sub-lattice).
pub fn broadcast_gauge(comm: &Comm, gauge: Option<&GaugeField>) -> GaugeField {
    let mut dims = [0u64; 4];
    if let Some(g) = gauge {
        for (d, &e) in dims.iter_mut().zip(&g.dims()) {
            *d = e as u64;
        }
    }
    comm.broadcast(&mut dims);
    let dims = dims.map(|d| d as usize);
    let geom = Geometry::new(dims);
    let n = geom.volume() * 4;
    let mut flat = vec![0.0f64; n * 18];
    if let Some(g) = gauge {
        for (chunk, u) in flat.chunks_exact_mut(18).zip(&g.links) {
            for (k, z) in u.m.iter().flatten().enumerate() {
                chunk[2 * k] = z.re;
                chunk[2 * k + 1] = z.im;
            }
        }
    }
    comm.broadcast(&mut flat);
    let links = flat
        .chunks_exact(18)
        .map(|c| {
            let mut u = Su3::<f64>::default();
            for (k, z) in u.m.iter_mut().flatten().enumerate() {
                *z = Complex::new(c[2 * k], c[2 * k + 1]);
            }
            u
        })
        .collect();
    GaugeField { geom, links }
}

/// What the distributed solve reports beyond the solver reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DistributedRun {
    pub ranks: usize,
    pub procs: [usize; 4],
    pub local_dims: [usize; 4],
    /// Halo traffic and timing of the operator the Krylov iterations ran on (f32 in mixed
    /// precision), on rank 0.
    pub halo: HaloStats,
    /// Of the f64 operator (restart residuals; every iteration in f64 solves).
    pub halo_f64: HaloStats,
    /// The slowest process's operator time per application (seconds).
    pub max_seconds_per_application: f64,
    /// `--operator-check`: D and D† of the first source, as global sums.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_check: Option<OperatorCheck>,
    /// `--halo-bench N`: N applications of the f32 operator (f64 with `--precision f64`) with
    /// and without the exchange, after the solves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halo_bench: Option<HaloBench>,
    /// `--precond mg`: the distributed set-up, and what the cycles did over all solves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multigrid: Option<MultigridRun>,
}

impl DistributedRun {
    /// The run of `grid` whose Krylov iterations ran on an operator with halo statistics
    /// `halo` (and `halo_f64` for the f64 one), `busy` being the one that did the work (its
    /// slowest process's time per application is reported); no check, bench or multigrid.
    fn new(
        comm: &Comm,
        grid: &ProcessGrid,
        halo: HaloStats,
        halo_f64: HaloStats,
        busy: HaloStats,
    ) -> Self {
        let mine = busy.seconds / busy.applications.max(1) as f64;
        DistributedRun {
            ranks: grid.ranks(),
            procs: grid.procs,
            local_dims: grid.local,
            halo,
            halo_f64,
            max_seconds_per_application: comm.max_f64(mine),
            operator_check: None,
            halo_bench: None,
            multigrid: None,
        }
    }
}

/// The multigrid preconditioner of a distributed batch.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MultigridRun {
    pub setup: SetupReport,
    pub cycles: CycleStats,
}

/// What a distributed batch needs to know.
pub struct DistributedSolve<'a> {
    pub params: &'a DiracParams,
    pub procs: Option<[usize; 4]>,
    pub solver: SolverKind,
    pub precision: Precision,
    pub solve: SolveParams,
    pub operator_check: bool,
    /// Applications of [`DistWilsonClover::bench`] after the solves (0: none).
    pub halo_bench: usize,
    /// `--precond mg`: the classical two-level multigrid ([`DistMultigrid`]) as FGMRES's
    /// preconditioner (instead of a network).
    pub multigrid: Option<MultigridParams>,
    /// `--mg-cache`: the basis file rank 0 reads (if made for this set-up) or writes.
    pub multigrid_cache: Option<&'a std::path::Path>,
    /// `--evenodd`: solve the Schur-reduced system ([`DistEvenOdd`]) with these options
    /// (`solver` and `precision` above are then unused).
    pub evenodd: Option<EvenOddOptions>,
}

impl DistributedSolve<'_> {
    /// The process grid of this launch for `dims` (the same on every process).
    pub fn grid(&self, comm: &Comm, dims: [usize; 4]) -> Result<ProcessGrid, GridError> {
        ProcessGrid::new(dims, comm.size(), comm.rank(), self.procs)
    }

    /// Builds the sub-lattice operators and solves every (global) source; every process gets
    /// the same reports. `on_setup` is called once a multigrid preconditioner is built, before
    /// the solves, and `on_solve` after each solve (both on every process).
    pub fn run(
        &self,
        comm: &Comm,
        grid: &ProcessGrid,
        gauge: &GaugeField,
        sources: &[Vec<Complex64>],
        precond: Option<&mut NetPreconditioner>,
        on_setup: &mut dyn FnMut(&SetupReport),
        on_solve: &mut dyn FnMut(usize, &SolveReport),
    ) -> Result<(Vec<SolveReport>, &'static str, DistributedRun), DistributedError> {
        if let Some(options) = self.evenodd {
            return self.run_evenodd(comm, grid, gauge, sources, options, on_solve);
        }
        let reference = WilsonClover::<f64>::new(gauge, self.params);
        let d64 = DistWilsonClover::<f64>::new(comm, grid, &reference)?;
        let d32 = match self.precision {
            Precision::F64 => None,
            _ => Some(DistWilsonClover::<f32>::new(comm, grid, &reference)?),
        };
        drop(reference);
        let local: Vec<Vec<Complex64>> = sources.iter().map(|b| grid.local_part(b, 12)).collect();
        let check = match (self.operator_check, local.first()) {
            (true, Some(b)) => Some(operator_check(&d64, b, |s| grid.global_site(s))),
            _ => None,
        };
        let wrapped = d32.as_ref().map(MixedPrecision::new);
        let (system, precision) = match (&self.precision, &d32, &wrapped) {
            (Precision::Mixed, Some(d32), _) => {
                let mixed = self.solver.is_restarted();
                let system = System { op: &d64, native: Some(d32), exact: None };
                (system, if mixed { "mixed" } else { "f64" })
            }
            (Precision::F32, _, Some(w)) => {
                (System { op: w, native: None, exact: Some(&d64) }, "f32")
            }
            _ => (System { op: &d64, native: None, exact: None }, "f64"),
        };
        let mut log = |k: usize, _: usize, r: &SolveReport| on_solve(k, r);
        // A trained network runs on the f32 operator's layout in mixed precision (its
        // sub-lattice network shares the main slots of the operator's buffers).
        let layout = if precision == "mixed" { d32.as_ref().map(|d| d.layout()) } else { None };
        let mut bound = precond.map(|p| p.right(layout));
        let mut mg = match &self.multigrid {
            Some(p) => {
                let cache = self.multigrid_cache.map_or(BasisCache::None, BasisCache::ReadWrite);
                let mg = DistMultigrid::build(comm, grid, gauge, self.params, p, cache)?;
                on_setup(mg.setup_report());
                Some(mg)
            }
            None => None,
        };
        let preconditioner = match (&mut bound, &mut mg) {
            (Some(b), _) => Some(b as &mut dyn RightPreconditioner),
            (None, Some(m)) => Some(m as &mut dyn RightPreconditioner),
            (None, None) => None,
        };
        let setup = Setup { solver: self.solver, preconditioner };
        let mut reports = batch::solve_batch(system, &mut [setup], &local, &self.solve, &mut log)?;
        let multigrid =
            mg.map(|m| MultigridRun { setup: m.setup_report().clone(), cycles: m.stats() });
        let halo_f64 = d64.stats();
        let halo = d32.as_ref().map_or(halo_f64, |d| d.stats());
        let busy = if precision == "f64" { halo_f64 } else { halo };
        let bench = match (self.halo_bench, &d32) {
            (0, _) => None,
            (n, Some(d)) if precision != "f64" => Some(d.bench(n)?),
            (n, _) => Some(d64.bench(n)?),
        };
        let run = DistributedRun {
            operator_check: check,
            halo_bench: bench,
            multigrid,
            ..DistributedRun::new(comm, grid, halo, halo_f64, busy)
        };
        Ok((reports.pop().unwrap_or_default(), precision, run))
    }

    /// `--evenodd`: every source through [`DistEvenOdd`] (the operators built once).
    fn run_evenodd(
        &self,
        comm: &Comm,
        grid: &ProcessGrid,
        gauge: &GaugeField,
        sources: &[Vec<Complex64>],
        options: EvenOddOptions,
        on_solve: &mut dyn FnMut(usize, &SolveReport),
    ) -> Result<(Vec<SolveReport>, &'static str, DistributedRun), DistributedError> {
        let mut eo = DistEvenOdd::new(comm, grid, gauge, self.params, options)?;
        let local: Vec<Vec<Complex64>> = sources.iter().map(|b| grid.local_part(b, 12)).collect();
        let check = match (self.operator_check, local.first()) {
            (true, Some(b)) => Some(
                schur_check(eo.schur64(), b, grid.local, |s| grid.global_site(s))
                    .map_err(|e| EvenOddSolveError::Setup(e.into()))?,
            ),
            _ => None,
        };
        let mut reports = Vec::with_capacity(local.len());
        for (k, b) in local.iter().enumerate() {
            let (_, report) = eo.solve(b)?;
            on_solve(k, &report);
            reports.push(report);
        }
        let (halo, halo_f64) = eo.stats();
        let halo_bench = match self.halo_bench {
            0 => None,
            n => Some(eo.bench(n)?),
        };
        let precision = match (options.precision, options.needs_f32()) {
            (SolvePrecision::Mixed, true) => "mixed",
            (SolvePrecision::F32, _) => "f32",
            _ => "f64",
        };
        let run = DistributedRun {
            operator_check: check,
            halo_bench,
            ..DistributedRun::new(comm, grid, halo, halo_f64, halo)
        };
        Ok((reports, precision, run))
    }
}
