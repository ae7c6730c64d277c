//! The Wilson-clover operator of one process's sub-lattice: the same JIT kernel as
//! `runtime::dirac` (built from the same [`hop_tables`] and [`block_table`]), whose neighbour
//! table sends the hops that leave the sub-lattice into ghost slots filled by a halo exchange.
//!
//! One application is one halo exchange overlapped with the sweep over the sites
//! ([`HaloExchange`]): the interior sites run while the faces are in flight, through a copy of
//! the kernel compiled for the main slots alone.
//!
//! To the solvers it is an ordinary operator on this process's part of the vectors: a
//! [`LinearOperator`]/[`AdjointOperator`] on reference-layout f64 vectors of the local sites
//! and a [`NativeOperator`] on f32 vectors in its own layout; its
//! [`LinearOperator::global_sum`] turns their inner products into global ones. Every process
//! must apply it the same number of times (the solvers do: they branch only on global sums).

use super::comm::Comm;
use super::exchange::{HaloExchange, Phase};
use super::grid::ProcessGrid;
use super::halo::Halo;
use crate::codegen::dirac::{self, DiracDesc, DiracKernels, LinkStorage};
use crate::codegen::jit::Arg;
use crate::codegen::lattice_layout::SiteLayout;
use crate::codegen::simd::Element;
use crate::lattice::wilson::WilsonClover;
use crate::runtime::RuntimeError;
use crate::runtime::dirac::{HopTables, block_table, hop_tables};
use crate::solve::{AdjointOperator, LinearOperator, NativeOperator};
use mpi::traits::Equivalence;
use num_complex::{Complex, Complex64};
use std::sync::Mutex;
use std::time::Instant;

/// What the halo exchanges of an operator cost so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct HaloStats {
    /// Operator applications (D and D†).
    pub applications: usize,
    /// Bytes this process sent per application.
    pub bytes_per_application: usize,
    /// Wall time of the applications (pack, kernels, exchange, unpack).
    pub seconds: f64,
    /// Time spent waiting for messages after the interior sites were done: the part of the
    /// communication the interior work did not hide.
    pub wait_seconds: f64,
    /// Packing the faces and copying them into the ghost slots.
    pub copy_seconds: f64,
}

/// What the halo exchange adds to an application ([`DistWilsonClover::bench`]).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct HaloBench {
    pub applications: usize,
    /// With the exchange (pack, messages overlapped with the interior, unpack, boundary).
    pub seconds_per_application: f64,
    /// The same kernel over all sites, no messages.
    pub kernel_seconds_per_application: f64,
    /// with / without − 1.
    pub exchange_overhead: f64,
    pub bytes_per_application: usize,
}

/// D on one process's sub-lattice, in precision `T`.
pub struct DistWilsonClover<T: Element + Equivalence> {
    grid: ProcessGrid,
    layout: SiteLayout,
    exchange: HaloExchange<T>,
    compiled: DiracKernels,
    /// The same kernels for buffers of the main slots only, with `interior_neighbours`: they
    /// run the interior sites while the faces are received into the ghost slots, which they
    /// therefore must not be able to reach.
    interior: DiracKernels,
    /// `neighbours` with every ghost slot replaced by main slot 0
    /// ([`HaloExchange::interior_table`]).
    interior_neighbours: Vec<i32>,
    links: Vec<T>,
    neighbours: Vec<i32>,
    clover: Vec<T>,
    /// Reference-layout applications: AoSoA input and output.
    scratch: Mutex<(Vec<T>, Vec<T>)>,
    stats: Mutex<HaloStats>,
}

impl<T: Element + Equivalence> DistWilsonClover<T> {
    /// The operator of `grid`'s sub-lattice, from the operator of the whole lattice
    /// (`reference`: links with boundary phases, clover blocks), on a duplicate of `comm`.
    pub fn new(
        comm: &Comm,
        grid: &ProcessGrid,
        reference: &WilsonClover<f64>,
    ) -> Result<Self, RuntimeError> {
        let layout = SiteLayout::new(grid.local, T::PRECISION, &[])
            .map_err(|e| RuntimeError::Shape(e.to_string()))?;
        if grid.is_split(layout.split) {
            return Err(RuntimeError::Shape(format!(
                "the process grid splits direction {}, which the {}-lane layout vectorises",
                layout.split, layout.lanes
            )));
        }
        let halo = Halo::new(&layout, grid);
        let (vo, l) = (layout.outer_volume, layout.lanes);
        let site = |o: usize, k: usize| grid.global_site(layout.site(o, k));
        let mut rotation = [0usize; 8];
        let storage = LinkStorage::for_precision(T::PRECISION);
        let HopTables { links, neighbours } = hop_tables(
            reference,
            (vo, l),
            site,
            |o, disp| Ok(halo.neighbour(&layout, o, disp)),
            &mut rotation,
            storage,
        )?;
        let clover = block_table(reference.clover_packed(), (vo, l), site);
        let desc = DiracDesc {
            outer_volume: vo,
            rotation,
            ext_slots: halo.ext_slots,
            precision: T::PRECISION,
            links: storage,
        };
        let compiled = dirac::compile(&desc, false)?;
        let interior = dirac::compile(&DiracDesc { ext_slots: vo, ..desc }, false)?;
        let exchange = HaloExchange::new(comm.duplicate(), halo, vo, l);
        let interior_neighbours = exchange.interior_table(&neighbours);
        let n = exchange.buffer_len();
        let stats = HaloStats { bytes_per_application: exchange.bytes(), ..HaloStats::default() };
        Ok(DistWilsonClover {
            grid: grid.clone(),
            layout,
            exchange,
            compiled,
            interior,
            interior_neighbours,
            links,
            neighbours,
            clover,
            scratch: Mutex::new((vec![T::zero(); n], vec![T::zero(); n])),
            stats: Mutex::new(stats),
        })
    }

    pub fn grid(&self) -> &ProcessGrid {
        &self.grid
    }

    /// The layout of its f32/f64 buffers (main slots; the halo's ghost slots follow).
    pub fn layout(&self) -> &SiteLayout {
        &self.layout
    }

    /// The halo exchanges so far.
    pub fn stats(&self) -> HaloStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Scalars of a field buffer: the sub-lattice's main slots, then the ghost slots.
    pub fn buffer_len(&self) -> usize {
        self.exchange.buffer_len()
    }

    /// Scalars of the main slots (the sub-lattice itself).
    pub fn main_len(&self) -> usize {
        self.layout.main_len()
    }

    /// D (or D†) on AoSoA buffers of [`Self::buffer_len`] scalars; fills the ghost slots of
    /// `inp` from the neighbours. Every process must call it together.
    pub fn apply_aosoa(
        &self,
        dagger: bool,
        out: &mut [T],
        inp: &mut [T],
    ) -> Result<(), RuntimeError> {
        let start = Instant::now();
        let len = self.buffer_len();
        if out.len() < len || inp.len() < len {
            return Err(RuntimeError::Shape(format!(
                "distributed Wilson-clover: buffers of {} and {} scalars, it needs {len}",
                out.len(),
                inp.len()
            )));
        }
        let (c, i) = (&self.compiled, &self.interior);
        let kernel = c.kernels.kernel(if dagger { c.ddag } else { c.d });
        let interior = i.kernels.kernel(if dagger { i.ddag } else { i.d });
        let out = &mut out[..len];
        let timing = self.exchange.sweep(inp, |phase| {
            let (k, input, neighbours, ranges) = match phase {
                Phase::Interior { main, ranges } => {
                    (interior, main, &self.interior_neighbours, ranges)
                }
                Phase::Rest { buffer, ranges } => (kernel, buffer, &self.neighbours, ranges),
            };
            let mut args = [
                Arg::ro(input),
                Arg::ro(input),
                Arg::rw(&mut *out),
                Arg::ro(&self.links),
                Arg::ro(neighbours),
                Arg::ro(&self.clover),
            ];
            Ok(k.call_parallel_ranges(&mut args, ranges, 16)?)
        })?;
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        s.applications += 1;
        s.seconds += start.elapsed().as_secs_f64();
        s.wait_seconds += timing.wait;
        s.copy_seconds += timing.copy;
        Ok(())
    }

    /// Times `reps` applications of D with the halo exchange against `reps` runs of the same
    /// kernel over all sites without it (ghost slots left as they are): what the exchange adds
    /// to an application. Every process must call it together; the times are the slowest
    /// process's. The statistics of [`Self::stats`] are left as they were.
    pub fn bench(&self, reps: usize) -> Result<HaloBench, RuntimeError> {
        let saved = self.stats();
        let len = self.buffer_len();
        let mut inp: Vec<T> = (0..len).map(|i| T::from_f64((i % 7) as f64 * 0.1)).collect();
        let mut out = vec![T::zero(); len];
        self.exchange.comm().barrier();
        let t = Instant::now();
        for _ in 0..reps {
            self.apply_aosoa(false, &mut out, &mut inp)?;
        }
        let with = t.elapsed().as_secs_f64();
        let c = &self.compiled;
        let kernel = c.kernels.kernel(c.d);
        self.exchange.comm().barrier();
        let t = Instant::now();
        for _ in 0..reps {
            kernel.call_parallel(
                &mut [
                    Arg::ro(&inp),
                    Arg::ro(&inp),
                    Arg::rw(&mut out),
                    Arg::ro(&self.links),
                    Arg::ro(&self.neighbours),
                    Arg::ro(&self.clover),
                ],
                16,
            )?;
        }
        let alone = t.elapsed().as_secs_f64();
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = saved;
        let (with, alone) =
            (self.exchange.comm().max_f64(with), self.exchange.comm().max_f64(alone));
        let per = |s: f64| s / reps.max(1) as f64;
        Ok(HaloBench {
            applications: reps,
            seconds_per_application: per(with),
            kernel_seconds_per_application: per(alone),
            exchange_overhead: with / alone - 1.0,
            bytes_per_application: saved.bytes_per_application,
        })
    }

    /// D (or D†) on this process's part of reference-layout vectors.
    fn run(&self, dagger: bool, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        let n = self.grid.local_volume() * 12;
        assert!(
            out.len() == n && inp.len() == n,
            "distributed Wilson-clover: vectors must have length 12 V_local = {n} (got out {}, \
             in {})",
            out.len(),
            inp.len()
        );
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = &mut *guard;
        self.layout.to_aosoa(inp, a);
        // The buffers are sized from the same halo as the kernel spec, so a refusal is a bug.
        if let Err(e) = self.apply_aosoa(dagger, b, a) {
            panic!("distributed Wilson-clover kernel refused its own buffers: {e}");
        }
        self.layout.from_aosoa(b, out);
    }
}

impl<T: Element + Equivalence> LinearOperator<T> for DistWilsonClover<T> {
    fn len(&self) -> usize {
        self.grid.local_volume() * 12
    }
    fn apply(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        self.run(false, out, inp)
    }
    fn global_sum(&self, partials: &mut [f64]) {
        self.exchange.comm().sum_f64(partials)
    }
}

impl<T: Element + Equivalence> AdjointOperator<T> for DistWilsonClover<T> {
    fn apply_dagger(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        self.run(true, out, inp)
    }
}

impl NativeOperator for DistWilsonClover<f32> {
    fn main_len(&self) -> usize {
        DistWilsonClover::main_len(self)
    }
    fn buffer_len(&self) -> usize {
        DistWilsonClover::buffer_len(self)
    }
    fn apply(&self, out: &mut [f32], inp: &mut [f32]) -> Result<(), String> {
        self.apply_aosoa(false, out, inp).map_err(|e| e.to_string())
    }
    fn import(&self, src: &[Complex64], dst: &mut [f32]) {
        self.layout.to_aosoa(src, dst);
    }
    fn export(&self, src: &[f32], dst: &mut [Complex64]) {
        self.layout.from_aosoa(src, dst);
    }
    fn global_sum(&self, partials: &mut [f64]) {
        self.exchange.comm().sum_f64(partials)
    }
}
