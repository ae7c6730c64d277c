//! The two-level multigrid on a lattice split over the processes of an MPI launch
//! (`mpirun -np N symc solve --precond mg`, and the coarse correction of a multigrid network
//! trained split): the same set-up and cycle as `runtime::multigrid`, with every fine-grid
//! step on this process's sub-lattice and the small coarse problem replicated.
//!
//! Why this split: the process grid cuts the lattice along block boundaries (the local
//! extents must be multiples of the blocks, checked first), so every block lies on one
//! process, and P† and P are local: no halo. The coarse system (12 unknowns per 4⁴ block: 384
//! on 8³×16, 6144 on 16³×32) is orders of magnitude smaller than the fine one, so every
//! process holds all of D_c and solves it itself after an all-gather of the restricted
//! vector — one message per cycle instead of a distributed coarse GMRES with a reduction per
//! iteration (DDalphaAMG and Grid distribute it only on far larger lattices).
//!
//! Set-up: the near-null solves run distributed (global sums make their decisions the same on
//! every process; the start vectors are the single-process ones, cut to this sub-lattice), each
//! process orthonormalises its own blocks, and the basis is all-gathered so that every process
//! builds the same Galerkin D_c (O(V) set-up memory per process, as the gauge field already
//! takes; a production run would compute D_c's rows per sub-lattice with a one-site halo of
//! the basis). Rank 0 alone reads and writes the basis cache and sends what it read.

use super::comm::Comm;
use super::grid::ProcessGrid;
use super::operator::DistWilsonClover;
use crate::lattice::blocks::{BlockBasis, Blocking};
use crate::lattice::coarse::CoarseOperator;
use crate::lattice::gauge::GaugeField;
use crate::lattice::io::basis::{self as cache, BasisCacheError};
use crate::lattice::wilson::{DiracParams, WilsonClover};
use crate::runtime::coarse::{JitBlockTransfer, JitCoarseOperator};
use crate::runtime::multigrid::{
    BasisSource, MultigridError, MultigridParams, SetupPrecision, SetupReport, basis_key,
    check_coarse_operator, start_vectors,
};
use crate::runtime::multigrid_net::BasisCache;
use crate::solve::multigrid::near_null_vectors;
use crate::solve::multigrid::{NativeCoarseSpace, NativeTwoLevel, NativeTwoLevelCycle};
use crate::solve::{NativeOperator, NativePreconditioner, Preconditioner};
use num_complex::{Complex, Complex64};
use std::sync::Mutex;
use std::time::Instant;

/// P† and P of this process's blocks, and the all-gather that makes the restricted vector
/// the whole coarse vector on every process.
pub struct DistTransfer {
    comm: Comm,
    local: JitBlockTransfer<f32>,
    /// Entry `g` of the global coarse vector is entry `gathered_at[g]` of the all-gathered one.
    gathered_at: Vec<usize>,
    /// Entry `i` of this process's coarse vector is entry `mine[i]` of the global one.
    mine: Vec<usize>,
    /// (this process's coarse vector, interleaved (re, im) for the all-gather).
    scratch: Mutex<(Vec<Complex<f32>>, Vec<f32>)>,
}

/// The global coarse index of every coarse entry of `grid`'s sub-lattice, in its order
/// (`site * n_basis + k`, sites lexicographic, x fastest).
fn coarse_entries(grid: &ProcessGrid, blocks: [usize; 4], n_basis: usize) -> Vec<usize> {
    let lc: [usize; 4] = std::array::from_fn(|mu| grid.local[mu] / blocks[mu]);
    let gc: [usize; 4] = std::array::from_fn(|mu| grid.dims[mu] / blocks[mu]);
    let volume: usize = lc.iter().product();
    let mut out = Vec::with_capacity(volume * n_basis);
    for s in 0..volume {
        let (mut r, mut g, mut stride) = (s, 0, 1);
        for mu in 0..4 {
            g += (r % lc[mu] + grid.coords[mu] * lc[mu]) * stride;
            r /= lc[mu];
            stride *= gc[mu];
        }
        out.extend((0..n_basis).map(|k| g * n_basis + k));
    }
    out
}

impl DistTransfer {
    fn new(
        comm: &Comm,
        grid: &ProcessGrid,
        blocks: [usize; 4],
        local_basis: &BlockBasis,
        d32: &DistWilsonClover<f32>,
    ) -> Result<Self, MultigridError> {
        let n = local_basis.n_basis();
        let local = JitBlockTransfer::<f32>::new(local_basis, d32.layout())?;
        let mine = coarse_entries(grid, blocks, n);
        let per = mine.len();
        let mut gathered_at = vec![0; per * grid.ranks()];
        for r in 0..grid.ranks() {
            for (i, g) in coarse_entries(&grid.for_rank(r), blocks, n).into_iter().enumerate() {
                gathered_at[g] = r * per + i;
            }
        }
        Ok(DistTransfer {
            comm: comm.duplicate(),
            local,
            gathered_at,
            mine,
            scratch: Mutex::new((vec![Complex::new(0.0, 0.0); per], vec![0.0; 2 * per])),
        })
    }
}

impl NativeCoarseSpace for DistTransfer {
    fn coarse_len(&self) -> usize {
        self.gathered_at.len()
    }

    fn restrict(&self, fine: &[f32], coarse: &mut [Complex<f32>]) -> Result<(), String> {
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let (mine, flat) = &mut *guard;
        self.local.restrict_aosoa(fine, mine).map_err(|e| e.to_string())?;
        for (f, z) in flat.chunks_exact_mut(2).zip(mine.iter()) {
            f[0] = z.re;
            f[1] = z.im;
        }
        let all = self.comm.all_gather(flat);
        for (c, &at) in coarse.iter_mut().zip(&self.gathered_at) {
            *c = Complex::new(all[2 * at], all[2 * at + 1]);
        }
        Ok(())
    }

    fn prolong(&self, coarse: &[Complex<f32>], fine: &mut [f32]) -> Result<(), String> {
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let (mine, _) = &mut *guard;
        for (m, &g) in mine.iter_mut().zip(&self.mine) {
            *m = coarse[g];
        }
        self.local.prolong_aosoa(mine, fine).map_err(|e| e.to_string())
    }
}

/// Every process's part of the fine vectors `local` (reference layout of `grid`'s
/// sub-lattice), assembled into whole-lattice vectors on every process.
fn gather_fields(comm: &Comm, grid: &ProcessGrid, local: &[Vec<Complex64>]) -> Vec<Vec<Complex64>> {
    let sites = grid.local_volume();
    let owners: Vec<Vec<usize>> = (0..grid.ranks())
        .map(|r| {
            let g = grid.for_rank(r);
            (0..sites).map(|s| g.global_site(s)).collect()
        })
        .collect();
    local
        .iter()
        .map(|v| {
            let flat: Vec<f64> = v.iter().flat_map(|z| [z.re, z.im]).collect();
            let all = comm.all_gather(&flat);
            let mut out = vec![Complex64::new(0.0, 0.0); sites * 12 * grid.ranks()];
            for (r, sites_of) in owners.iter().enumerate() {
                let part = &all[r * flat.len()..(r + 1) * flat.len()];
                for (s, &g) in sites_of.iter().enumerate() {
                    for c in 0..12 {
                        let i = 2 * (s * 12 + c);
                        out[g * 12 + c] = Complex64::new(part[i], part[i + 1]);
                    }
                }
            }
            out
        })
        .collect()
}

/// A two-level multigrid on this process's sub-lattice (see the module doc).
pub struct DistMultigrid {
    d32: DistWilsonClover<f32>,
    transfer: DistTransfer,
    c32: JitCoarseOperator<f32>,
    cycle: NativeTwoLevelCycle,
    report: SetupReport,
    /// f32 buffers of the reference-layout path (input, output).
    scratch: (Vec<f32>, Vec<f32>),
}

impl DistMultigrid {
    /// Runs the set-up on `grid`'s sub-lattice of `gauge` (the whole field, on every process),
    /// reusing or writing the basis cache as `cache` says (rank 0 reads and writes it).
    /// Collective: every process calls it, and every process gets the same error.
    pub fn build(
        comm: &Comm,
        grid: &ProcessGrid,
        gauge: &GaugeField,
        dirac: &DiracParams,
        params: &MultigridParams,
        cache: BasisCache<'_>,
    ) -> Result<Self, MultigridError> {
        let t_start = Instant::now();
        let global = Blocking::new(gauge.dims(), params.blocks)?;
        BlockBasis::check_size(&global, params.n_basis, params.chirality_doubled)?;
        if let Some(mu) = (0..4).find(|&mu| grid.local[mu] % params.blocks[mu] != 0) {
            return Err(MultigridError::CutBlocks {
                procs: grid.procs.map(|p| p.to_string()).join("x"),
                local: grid.local[mu],
                axis: ['x', 'y', 'z', 't'][mu],
                block: params.blocks[mu],
                blocks: params.blocks.map(|b| b.to_string()).join("x"),
            });
        }
        let local_blocking = Blocking::new(grid.local, params.blocks)?;
        let key = basis_key(gauge, dirac, params);

        let t = Instant::now();
        let reference = WilsonClover::<f64>::new(gauge, dirac);
        let d64 = DistWilsonClover::<f64>::new(comm, grid, &reference)?;
        let d32 = DistWilsonClover::<f32>::new(comm, grid, &reference)?;
        let mut report = SetupReport::started(BasisSource::Generated, t.elapsed().as_secs_f64());

        // Rank 0 tries the cache: 0 nothing usable, 1 read, 2 failed (an I/O error).
        let (path, write) = match cache {
            BasisCache::None => (None, false),
            BasisCache::ReadWrite(p) => (Some(p), true),
            BasisCache::ReadOnly(p) => (Some(p), false),
        };
        let t = Instant::now();
        let mut read = None;
        let mut failure = None;
        if let (Some(path), true) = (path, comm.is_root()) {
            match cache::load(path, &key) {
                Ok(b) => {
                    read = Some(b);
                    report.source = BasisSource::Cached { path: path.into() };
                }
                Err(BasisCacheError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e @ (BasisCacheError::Stale { .. } | BasisCacheError::Format { .. })) => {
                    report.source =
                        BasisSource::Regenerated { path: path.into(), reason: e.to_string() };
                }
                Err(e) => failure = Some(e),
            }
        }
        let status = comm.broadcast_u64(match (&read, &failure) {
            (_, Some(_)) => 2,
            (Some(_), _) => 1,
            _ => 0,
        });
        if status == 2 {
            return Err(match failure {
                Some(e) => e.into(),
                None => MultigridError::Setup("rank 0 could not read the basis cache".into()),
            });
        }
        let (local_basis, global_basis) = if status == 1 {
            // Rank 0's basis to every process, each keeping its blocks.
            let len = gauge.geom.volume() * 12;
            let vectors: Vec<Vec<Complex64>> = (0..params.n_basis)
                .map(|k| {
                    let mut flat = vec![0.0f64; 2 * len];
                    if let Some(b) = &read {
                        for (f, z) in flat.chunks_exact_mut(2).zip(b.vector(k)) {
                            f[0] = z.re;
                            f[1] = z.im;
                        }
                    }
                    comm.broadcast(&mut flat);
                    flat.chunks_exact(2).map(|p| Complex64::new(p[0], p[1])).collect()
                })
                .collect();
            let local = vectors.iter().map(|v| grid.local_part(v, 12)).collect();
            let local =
                BlockBasis::from_orthonormal(local_blocking, local, params.chirality_doubled)?;
            let global = BlockBasis::from_orthonormal(global, vectors, params.chirality_doubled)?;
            report.cache_seconds = t.elapsed().as_secs_f64();
            (local, global)
        } else {
            let t = Instant::now();
            let count = if params.chirality_doubled { params.n_basis / 2 } else { params.n_basis };
            let starts: Vec<Vec<Complex64>> = start_vectors(gauge.dims(), count, params.seed)
                .iter()
                .map(|v| grid.local_part(v, 12))
                .collect();
            let op32: Option<&dyn NativeOperator> = match params.setup_precision {
                SetupPrecision::Mixed => Some(&d32),
                SetupPrecision::F64 => None,
            };
            let (vectors, reports) = near_null_vectors(&d64, op32, starts, &params.setup)
                .map_err(|e| MultigridError::Setup(e.to_string()))?;
            report.near_null_iterations = reports.iter().map(|r| r.iterations).collect();
            report.near_null_residuals = reports.iter().map(|r| r.true_residual).collect();
            report.near_null_seconds = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let local =
                BlockBasis::orthonormalize(local_blocking, vectors, params.chirality_doubled)?;
            let whole = gather_fields(comm, grid, local.vectors());
            let global = BlockBasis::from_orthonormal(global, whole, params.chirality_doubled)?;
            report.orthonormalize_seconds = t.elapsed().as_secs_f64();
            if let (Some(path), true) = (path, write) {
                let t = Instant::now();
                let saved =
                    if comm.is_root() { cache::save(path, &key, &global).err() } else { None };
                let failed = comm.broadcast_u64(saved.is_some() as u64) == 1;
                report.cache_seconds += t.elapsed().as_secs_f64();
                match saved {
                    Some(e) => return Err(e.into()),
                    None if failed => {
                        return Err(MultigridError::Setup(
                            "rank 0 could not write the basis cache".into(),
                        ));
                    }
                    None => {}
                }
            }
            (local, global)
        };
        drop(d64);

        let t = Instant::now();
        let coarse = CoarseOperator::galerkin(&reference, &global_basis);
        report.galerkin_seconds = t.elapsed().as_secs_f64();
        drop(reference);
        let t = Instant::now();
        // The same D_c on every process, so the same verdict.
        report.coarse_check_iterations = check_coarse_operator(&coarse, params.seed)?;
        report.coarse_check_seconds = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let transfer = DistTransfer::new(comm, grid, params.blocks, &local_basis, &d32)?;
        let c32 = JitCoarseOperator::<f32>::new(&coarse)?;
        report.compile_coarse_seconds = t.elapsed().as_secs_f64();
        let cycle = NativeTwoLevelCycle::new(
            params.cycle,
            d32.main_len(),
            d32.buffer_len(),
            transfer.coarse_len(),
        );
        report.total_seconds = t_start.elapsed().as_secs_f64();
        Ok(DistMultigrid { d32, transfer, c32, cycle, report, scratch: (Vec::new(), Vec::new()) })
    }

    /// Timings and provenance of the set-up.
    pub fn setup_report(&self) -> &SetupReport {
        &self.report
    }

    /// This process's part of D in f32 (the operator the cycle smooths with).
    pub fn dirac32(&self) -> &DistWilsonClover<f32> {
        &self.d32
    }

    /// What the cycles did since the last reset.
    pub fn stats(&self) -> crate::solve::multigrid::CycleStats {
        self.cycle.stats
    }

    pub fn reset_stats(&mut self) {
        self.cycle.stats.reset();
    }

    /// χ = P† fine, the whole coarse vector on every process (all-gathered), from an f32
    /// buffer in [`Self::dirac32`]'s layout (main part read; a whole field of that layout).
    /// Collective.
    pub fn restrict(&self, fine: &[f32], coarse: &mut [Complex<f32>]) -> Result<(), String> {
        NativeCoarseSpace::restrict(&self.transfer, fine, coarse)
    }

    /// fine = P χ on this process's blocks (χ the whole coarse vector), into an f32 buffer in
    /// [`Self::dirac32`]'s layout.
    pub fn prolong(&self, coarse: &[Complex<f32>], fine: &mut [f32]) -> Result<(), String> {
        NativeCoarseSpace::prolong(&self.transfer, coarse, fine)
    }

    /// Complex numbers of the whole coarse vector.
    pub fn coarse_len(&self) -> usize {
        NativeCoarseSpace::coarse_len(&self.transfer)
    }

    /// The cycle on f32 buffers in [`Self::dirac32`]'s layout.
    pub fn native(&mut self) -> NativeTwoLevel<'_> {
        NativeTwoLevel {
            fine: &self.d32,
            space: &self.transfer,
            coarse: &self.c32,
            cycle: &mut self.cycle,
        }
    }

    /// out = M inp on reference-layout vectors of this process's sites, in precision `T`
    /// (through the f32 cycle).
    pub fn apply_reference<T: crate::lattice::Real>(
        &mut self,
        out: &mut [Complex<T>],
        inp: &[Complex<T>],
    ) -> Result<(), String> {
        let n = NativeTwoLevel::buffer_len(&self.native());
        let (mut a, mut b) = std::mem::take(&mut self.scratch);
        a.resize(n, 0.0);
        b.resize(n, 0.0);
        let layout = self.d32.layout().clone();
        layout.to_aosoa(inp, &mut a);
        let r = self.native().apply(&mut b, &mut a);
        layout.from_aosoa(&b, out);
        self.scratch = (a, b);
        r
    }
}

/// The f64 path of FGMRES (`--precision f64`): the f32 cycle, converted in and out (a
/// preconditioner need not be exact; FGMRES keeps every M v it used).
impl Preconditioner<f64> for DistMultigrid {
    fn apply(&mut self, out: &mut [Complex64], inp: &[Complex64]) {
        if let Err(e) = self.apply_reference(out, inp) {
            // Sized from its own layout: a failure is a bug, and a silent zero would be a
            // wrong answer.
            panic!("distributed multigrid: {e}");
        }
    }
}

impl crate::solve::batch::RightPreconditioner for DistMultigrid {
    fn reference(&mut self) -> &mut dyn Preconditioner<f64> {
        self
    }

    fn native(&mut self) -> Option<Box<dyn NativePreconditioner + '_>> {
        Some(Box::new(DistMultigrid::native(self)))
    }
}
