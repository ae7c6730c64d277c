//! The even-odd Schur operator D̂ of one process's sub-lattice: the kernel passes of
//! `runtime::schur` (the same programs, site kernels and tables) on half-lattice buffers with
//! ghost slots, every pass that hops preceded by a halo exchange of the buffer it reads.
//!
//! Why it works on a sub-lattice: with even local extents every process's origin has even
//! coordinates, so the local checkerboard *is* the global one, and a hop that leaves the
//! sub-lattice lands on a site of the other parity of the neighbour, at the same place in its
//! (identical) half layout. Each parity's buffers get their own halo ([`Halo::for_half`]):
//! the faces of parity q are what the hops of the sites of parity 1 − q read. One D̂ is two
//! hop passes, so two exchanges of half the bytes of one exchange of D — the same bytes as D
//! for half the work: the overlap matters more here (BENCHMARKS.md, "Several processes").
//!
//! To the solvers it is an ordinary operator on this process's part of the reduced vectors
//! (the even sites of its sub-lattice in local checkerboard order), with a
//! [`LinearOperator::global_sum`]; [`DistSchur::prepare`] and [`DistSchur::reconstruct`] map
//! this process's part of a full vector to the reduced one and back. Every process must call
//! every method together.

use super::comm::Comm;
use super::exchange::{HaloExchange, Phase, Timing};
use super::grid::ProcessGrid;
use super::halo::Halo;
use super::operator::{HaloBench, HaloStats};
use crate::codegen::dirac::{self, DiracDesc, SiteKernel, SiteKernels};
use crate::codegen::jit::Arg;
use crate::codegen::lattice_layout::HalfLayout;
use crate::codegen::simd::Element;
use crate::lattice::evenodd::{Checkerboard, EvenOdd, Parity, SchurVariant};
use crate::lattice::geometry::Geometry;
use crate::runtime::RuntimeError;
use crate::runtime::dirac::DiracOptions;
use crate::runtime::schur::{
    Block, JitSchurError, SchurPasses, SchurTables, kernel_list, prepare_with, program,
    reconstruct_with, run_program,
};
use crate::solve::{AdjointOperator, LinearOperator, NativeOperator};
use mpi::traits::Equivalence;
use num_complex::{Complex, Complex64};
use std::cell::Cell;
use std::sync::Mutex;
use std::time::Instant;

const EVEN: usize = Parity::Even as usize;
const ODD: usize = Parity::Odd as usize;

/// D̂ on one process's sub-lattice, in precision `T`.
pub struct DistSchur<T: Element + Equivalence> {
    grid: ProcessGrid,
    layout: HalfLayout,
    /// The local checkerboard (the global one restricted: the local extents are even).
    board: Checkerboard,
    variant: SchurVariant,
    compiled: SiteKernels,
    /// The same kernels for buffers of the main slots only (the interior sites of a pass,
    /// run while the faces are received into the ghost slots).
    interior: SiteKernels,
    list: Vec<SiteKernel>,
    /// Per buffer parity q: the exchange of its faces.
    exchange: [HaloExchange<T>; 2],
    tables: SchurTables<T>,
    /// Per output parity: the neighbour table for the interior kernels.
    interior_neighbours: [Vec<i32>; 2],
    /// Reference-layout applications: input, output and odd scratch (buffers with ghosts).
    scratch: Mutex<[Vec<T>; 3]>,
    stats: Mutex<HaloStats>,
}

/// A sub-lattice that cannot carry the even-odd operator, as an error of the set-up.
fn shape(message: String) -> JitSchurError {
    JitSchurError::Runtime(RuntimeError::Shape(message))
}

impl<T: Element + Equivalence> DistSchur<T> {
    /// The operator of `variant` on `grid`'s sub-lattice, from the even-odd blocks of the whole
    /// lattice `eo` (the tables of the local sites are taken from it), on duplicates of `comm`.
    pub fn new(
        comm: &Comm,
        grid: &ProcessGrid,
        eo: &EvenOdd<f64>,
        variant: SchurVariant,
        opts: &DiracOptions,
    ) -> Result<Self, JitSchurError> {
        let local = grid.local;
        if local.iter().any(|&e| e % 2 == 1) {
            return Err(shape(format!(
                "the {}x{}x{}x{} sub-lattice of each process has an odd extent, so its sites do \
                 not split into even and odd halves; choose --procs so that every local extent \
                 is even",
                local[0], local[1], local[2], local[3]
            )));
        }
        let board = Checkerboard::new(&Geometry::new(local))?;
        let sites = [board.sites(Parity::Even), board.sites(Parity::Odd)];
        let layout = HalfLayout::new(local, T::PRECISION, sites)?;
        if grid.is_split(layout.split) {
            return Err(shape(format!(
                "the process grid splits direction {}, which the even-odd {}-lane layout \
                 vectorises (the last local extent divisible by {}); give --procs that leaves \
                 it whole",
                ['x', 'y', 'z', 't'][layout.split],
                layout.lanes,
                2 * layout.lanes
            )));
        }
        let (vo, l) = (layout.outer_volume, layout.lanes);
        let halos = [EVEN, ODD].map(|q| Halo::for_half(&layout, grid, q));
        let coords = |p: usize, o: usize| grid.local_coords(layout.site(p, o, 0));
        let storage = opts.link_storage::<T>();
        // Output parity p's hops read the buffers of parity 1 − p, through that halo.
        let neighbour = |p: usize, o: usize, disp: [i64; 4]| {
            let (q, o2, rot) = layout.neighbour(p, o, disp);
            if q == p {
                return Err(RuntimeError::Shape(format!(
                    "a hop from parity {p} lands on parity {q}"
                )));
            }
            Ok(halos[q].ghost(coords(p, o), disp, (o2, rot)))
        };
        let site = |p: usize, o: usize, k: usize| grid.global_site(layout.site(p, o, k));
        let tables = SchurTables::build(eo, &layout, variant, storage, site, neighbour)?;
        // Both parities' faces have the same size (a slice holds as many sites of either).
        let ext_slots = halos[0].ext_slots.max(halos[1].ext_slots);
        let list = kernel_list(variant);
        let desc = DiracDesc {
            outer_volume: vo,
            rotation: tables.rotation,
            ext_slots,
            precision: T::PRECISION,
            links: storage,
        };
        let compiled = dirac::compile_site_kernels(&desc, "schur", &list, opts.keep_listings)
            .map_err(RuntimeError::from)?;
        let interior = dirac::compile_site_kernels(
            &DiracDesc { ext_slots: vo, ..desc },
            "schur_interior",
            &list,
            false,
        )
        .map_err(RuntimeError::from)?;
        let exchange = halos.map(|h| HaloExchange::new(comm.duplicate(), h, vo, l));
        // Tables of output parity p point into buffers of parity 1 − p.
        let interior_neighbours = [
            exchange[ODD].interior_table(&tables.neighbours[EVEN]),
            exchange[EVEN].interior_table(&tables.neighbours[ODD]),
        ];
        let bytes = program(variant, false)
            .iter()
            .filter(|s| s.kernel.term.hops())
            .map(|s| exchange[1 - s.parity].bytes())
            .sum();
        let n = exchange[EVEN].buffer_len().max(exchange[ODD].buffer_len());
        Ok(DistSchur {
            grid: grid.clone(),
            layout,
            board,
            variant,
            compiled,
            interior,
            list,
            exchange,
            tables,
            interior_neighbours,
            scratch: Mutex::new([vec![T::zero(); n], vec![T::zero(); n], vec![T::zero(); n]]),
            stats: Mutex::new(HaloStats { bytes_per_application: bytes, ..HaloStats::default() }),
        })
    }

    pub fn variant(&self) -> SchurVariant {
        self.variant
    }

    pub fn grid(&self) -> &ProcessGrid {
        &self.grid
    }

    /// The halo exchanges of the applications of D̂ and D̂† so far.
    pub fn stats(&self) -> HaloStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Scalars of a half-lattice buffer: main slots, then ghost slots.
    pub fn buffer_len(&self) -> usize {
        self.exchange[EVEN].buffer_len().max(self.exchange[ODD].buffer_len())
    }

    /// Length of this process's part of a reduced vector (6 V_local complex).
    pub fn half_len(&self) -> usize {
        self.layout.half_len()
    }

    /// One kernel pass on the sites of `parity` (`SchurPasses::pass`); a pass that hops first
    /// fills the ghost slots of `from` (unless `exchange` is false: the halo benchmark's
    /// kernel-alone runs).
    #[allow(clippy::too_many_arguments)]
    fn pass(
        &self,
        kernel: SiteKernel,
        parity: usize,
        block: Block,
        from: &mut [T],
        own: Option<&[T]>,
        out: &mut [T],
        exchange: bool,
    ) -> Result<Timing, RuntimeError> {
        let i = self.list.iter().position(|k| *k == kernel).ok_or_else(|| {
            RuntimeError::Shape(format!("Schur kernel {kernel:?} was not compiled"))
        })?;
        let blocks = self.tables.blocks(block, parity);
        let full = self.compiled.kernels.kernel(self.compiled.ids[i]);
        let links = &self.tables.links[parity];
        if !(exchange && kernel.term.hops()) {
            let from = &*from;
            let mut args = [
                Arg::ro(from),
                Arg::ro(own.unwrap_or(from)),
                Arg::rw(out),
                Arg::ro(links),
                Arg::ro(&self.tables.neighbours[parity]),
                Arg::ro(blocks),
            ];
            full.call_parallel(&mut args, 16)?;
            return Ok(Timing::default());
        }
        let interior = self.interior.kernels.kernel(self.interior.ids[i]);
        self.exchange[1 - parity].sweep(from, |phase| {
            let (k, input, neighbours, ranges) = match phase {
                Phase::Interior { main, ranges } => {
                    (interior, main, &self.interior_neighbours[parity], ranges)
                }
                Phase::Rest { buffer, ranges } => {
                    (full, buffer, &self.tables.neighbours[parity], ranges)
                }
            };
            let mut args = [
                Arg::ro(input),
                Arg::ro(own.unwrap_or(input)),
                Arg::rw(&mut *out),
                Arg::ro(links),
                Arg::ro(neighbours),
                Arg::ro(blocks),
            ];
            Ok(k.call_parallel_ranges(&mut args, ranges, 16)?)
        })
    }

    /// out = D̂ inp (D̂† when `dagger`) on even buffers of [`Self::buffer_len`] scalars; `odd` is
    /// scratch of the same size, and the ghost slots of all three are overwritten.
    pub fn apply_native(
        &self,
        dagger: bool,
        out: &mut [T],
        inp: &mut [T],
        odd: &mut [T],
    ) -> Result<(), RuntimeError> {
        self.run_program(dagger, out, inp, odd, true)
    }

    fn run_program(
        &self,
        dagger: bool,
        out: &mut [T],
        inp: &mut [T],
        odd: &mut [T],
        exchange: bool,
    ) -> Result<(), RuntimeError> {
        let start = Instant::now();
        let len = self.buffer_len();
        if out.len() < len || inp.len() < len || odd.len() < len {
            return Err(RuntimeError::Shape(format!(
                "distributed Schur operator: buffers of {}, {} and {} scalars, it needs {len}",
                out.len(),
                inp.len(),
                odd.len()
            )));
        }
        let passes = Passes { op: self, exchange, timing: Cell::new(Timing::default()) };
        run_program(&passes, dagger, out, inp, odd)?;
        if exchange {
            let timing = passes.timing.get();
            let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            s.applications += 1;
            s.seconds += start.elapsed().as_secs_f64();
            s.wait_seconds += timing.wait;
            s.copy_seconds += timing.copy;
        }
        Ok(())
    }

    /// This process's part of the reduced right-hand side from its part of a full one b
    /// (12 V_local): b̂ = b_e − D_eo A_oo⁻¹ b_o (times A_ee⁻¹ for `LeftNormalised`).
    pub fn prepare(&self, b: &[Complex<T>]) -> Result<Vec<Complex<T>>, JitSchurError> {
        prepare_with(&self.passes(), b)
    }

    /// This process's part of the full solution from its part of the reduced one `u` and of
    /// the full right-hand side b: x_e = u (A_ee⁻¹ u for `RightNormalised`),
    /// x_o = A_oo⁻¹ (b_o − D_oe x_e).
    pub fn reconstruct(
        &self,
        u: &[Complex<T>],
        b: &[Complex<T>],
    ) -> Result<Vec<Complex<T>>, JitSchurError> {
        reconstruct_with(&self.passes(), u, b)
    }

    /// The passes with their halo exchanges.
    fn passes(&self) -> Passes<'_, T> {
        Passes { op: self, exchange: true, timing: Cell::new(Timing::default()) }
    }

    /// Times `reps` applications of D̂ with the halo exchanges against `reps` runs of the same
    /// passes without them (ghost slots left as they are), as `DistWilsonClover::bench`.
    pub fn bench(&self, reps: usize) -> Result<HaloBench, RuntimeError> {
        let saved = self.stats();
        let comm = self.exchange[EVEN].comm();
        let mut inp: Vec<T> =
            (0..self.buffer_len()).map(|i| T::from_f64((i % 7) as f64 * 0.1)).collect();
        let (mut out, mut odd) = (self.passes().zeroed(), self.passes().zeroed());
        let mut time = |exchange: bool| -> Result<f64, RuntimeError> {
            comm.barrier();
            let t = Instant::now();
            for _ in 0..reps {
                self.run_program(false, &mut out, &mut inp, &mut odd, exchange)?;
            }
            Ok(comm.max_f64(t.elapsed().as_secs_f64()))
        };
        let with = time(true)?;
        let alone = time(false)?;
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = saved;
        let per = |s: f64| s / reps.max(1) as f64;
        Ok(HaloBench {
            applications: reps,
            seconds_per_application: per(with),
            kernel_seconds_per_application: per(alone),
            exchange_overhead: with / alone - 1.0,
            bytes_per_application: saved.bytes_per_application,
        })
    }

    /// D̂ or D̂† on this process's part of reference-layout reduced vectors.
    fn run(&self, dagger: bool, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        let n = self.half_len();
        assert!(
            out.len() == n && inp.len() == n,
            "distributed Schur operator: vectors must have length 6 V_local = {n} (got out {}, \
             in {})",
            out.len(),
            inp.len()
        );
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let [a, b, odd] = &mut *guard;
        self.layout.to_aosoa(EVEN, inp, a);
        // The buffers are sized from the same halos as the kernels, so a refusal is a bug.
        if let Err(e) = self.apply_native(dagger, b, a, odd) {
            panic!("distributed Schur operator refused its own buffers: {e}");
        }
        self.layout.from_aosoa(EVEN, b, out);
    }
}

/// [`DistSchur`]'s passes as the shared Schur programs see them, with or without the halo
/// exchanges, adding up where the exchanges' time went.
struct Passes<'a, T: Element + Equivalence> {
    op: &'a DistSchur<T>,
    exchange: bool,
    timing: Cell<Timing>,
}

impl<T: Element + Equivalence> SchurPasses<T> for Passes<'_, T> {
    fn pass(
        &self,
        kernel: SiteKernel,
        parity: usize,
        block: Block,
        from: &mut [T],
        own: Option<&[T]>,
        out: &mut [T],
    ) -> Result<(), RuntimeError> {
        let t = self.op.pass(kernel, parity, block, from, own, out, self.exchange)?;
        let mut sum = self.timing.get();
        sum.copy += t.copy;
        sum.wait += t.wait;
        self.timing.set(sum);
        Ok(())
    }
    fn half_layout(&self) -> &HalfLayout {
        &self.op.layout
    }
    fn checkerboard(&self) -> &Checkerboard {
        &self.op.board
    }
    fn schur_variant(&self) -> SchurVariant {
        self.op.variant
    }
    fn zeroed(&self) -> Vec<T> {
        vec![T::zero(); self.op.buffer_len()]
    }
}

impl<T: Element + Equivalence> LinearOperator<T> for DistSchur<T> {
    fn len(&self) -> usize {
        self.half_len()
    }
    fn apply(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        self.run(false, out, inp)
    }
    fn global_sum(&self, partials: &mut [f64]) {
        self.exchange[EVEN].comm().sum_f64(partials)
    }
}

impl<T: Element + Equivalence> AdjointOperator<T> for DistSchur<T> {
    fn apply_dagger(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        self.run(true, out, inp)
    }
}

impl NativeOperator for DistSchur<f32> {
    fn main_len(&self) -> usize {
        self.layout.main_len()
    }
    fn buffer_len(&self) -> usize {
        DistSchur::buffer_len(self)
    }
    fn apply(&self, out: &mut [f32], inp: &mut [f32]) -> Result<(), String> {
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let odd = &mut guard[2];
        self.apply_native(false, out, inp, odd).map_err(|e| e.to_string())
    }
    fn import(&self, src: &[Complex64], dst: &mut [f32]) {
        self.layout.to_aosoa(EVEN, src, dst);
    }
    fn export(&self, src: &[f32], dst: &mut [Complex64]) {
        self.layout.from_aosoa(EVEN, src, dst);
    }
    fn global_sum(&self, partials: &mut [f64]) {
        self.exchange[EVEN].comm().sum_f64(partials)
    }
}
