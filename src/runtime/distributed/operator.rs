//! The Wilson-clover operator of one process's sub-lattice: the same JIT kernel as
//! `runtime::dirac` (built from the same [`hop_tables`] and [`block_table`]), whose neighbour
//! table sends the hops that leave the sub-lattice into ghost slots filled by a halo exchange.
//!
//! One application: post non-blocking receives (straight into the ghost slots of the input
//! buffer) and sends of the faces the neighbours need (straight from the buffer, a message per
//! run of consecutive slots, where a face is a few long runs; packed into one message
//! otherwise), then sweep the sites in pieces: while the faces are in flight a piece runs only
//! its interior sites (through a copy of the kernel that sees the main slots alone, so it cannot
//! touch the ghosts being received) and tests the messages; once they are in, the rest of the
//! sweep — the deferred boundary sites and the pieces not yet run — goes in one call, in site
//! order.
//!
//! To the solvers it is an ordinary operator on this process's part of the vectors: a
//! [`LinearOperator`]/[`AdjointOperator`] on reference-layout f64 vectors of the local sites
//! and a [`NativeOperator`] on f32 vectors in its own layout; its
//! [`LinearOperator::global_sum`] turns their inner products into global ones. Every process
//! must apply it the same number of times (the solvers do: they branch only on global sums).

use super::comm::Comm;
use super::grid::ProcessGrid;
use super::halo::{Face, Halo};
use crate::codegen::dirac::{self, DiracDesc, DiracKernels, LinkStorage};
use crate::codegen::jit::Arg;
use crate::codegen::lattice_layout::{FIELD_COMPONENTS, SiteLayout};
use crate::codegen::simd::Element;
use crate::lattice::wilson::WilsonClover;
use crate::runtime::RuntimeError;
use crate::runtime::dirac::{HopTables, block_table, hop_tables};
use crate::solve::{AdjointOperator, LinearOperator, NativeOperator};
use mpi::traits::*;
use num_complex::{Complex, Complex64};
use rayon::prelude::*;
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

/// How many pieces one sweep over the sites is cut into (a test of the messages after each
/// piece that runs before they have arrived): enough that the faces arrive within the first
/// pieces, few enough that the pieces stay large.
const SWEEP_PIECES: usize = 16;

/// Faces of at most this many runs of consecutive slots are sent straight from the field
/// buffer, a message a run (no packing); others are packed into one message. A face split
/// along z is a few long runs (8 runs of 256 slots at 16^3 x 32 on two processes), one split
/// along x or y many short ones. Few, because every message costs a latency: on one node the
/// saved copy wins (BENCHMARKS.md, "Several processes"), but across a network (≈ 2 µs a
/// message) a face of 24 runs costs more in latency than its packing on a 32-core node (the
/// 48^3 x 96 model, `benches/mpi/model.py`).
const MAX_DIRECT_RUNS: usize = 8;

/// Whether `face` is sent a run a message, straight from the field buffer.
fn direct(face: &Face) -> bool {
    face.runs.len() <= MAX_DIRECT_RUNS
}

/// The tag of run `r` of `face`: distinct from every other face's runs (face tags are 0..8).
fn run_tag(face: &Face, r: usize) -> i32 {
    face.tag + 8 * r as i32
}

/// A piece of the sweep: its sites that read no ghost slot, and the others.
struct Piece {
    interior: Vec<(usize, usize)>,
    boundary: Vec<(usize, usize)>,
}

/// The sweep over `0..vo` in at most [`SWEEP_PIECES`] pieces of equal length (at least 64
/// sites), each split along the halo's interior and boundary runs.
fn sweep_pieces(halo: &Halo, vo: usize) -> Vec<Piece> {
    let clip = |runs: &[(usize, usize)], lo: usize, hi: usize| -> Vec<(usize, usize)> {
        runs.iter().map(|&(a, b)| (a.max(lo), b.min(hi))).filter(|(a, b)| a < b).collect()
    };
    let size = vo.div_ceil(SWEEP_PIECES).max(64);
    (0..vo)
        .step_by(size)
        .map(|lo| (lo, (lo + size).min(vo)))
        .map(|(lo, hi)| Piece {
            interior: clip(&halo.interior, lo, hi),
            boundary: clip(&halo.boundary, lo, hi),
        })
        .collect()
}

/// Send buffers of every face (the faces are received straight into the ghost slots).
struct Buffers<T> {
    send: Vec<Vec<T>>,
}

/// D on one process's sub-lattice, in precision `T`.
pub struct DistWilsonClover<T: Element + Equivalence> {
    comm: Comm,
    grid: ProcessGrid,
    layout: SiteLayout,
    halo: Halo,
    /// One sweep over the sites, in pieces (see `apply_aosoa`).
    pieces: Vec<Piece>,
    compiled: DiracKernels,
    /// The same kernels for buffers of the main slots only, with `interior_neighbours`: they
    /// run the interior sites while the faces are received into the ghost slots, which they
    /// therefore must not be able to reach.
    interior: DiracKernels,
    /// `neighbours` with every ghost slot replaced by main slot 0 (an interior site reads no
    /// ghost; a boundary site run through this table would read slot 0, inside the buffer).
    interior_neighbours: Vec<i32>,
    links: Vec<T>,
    neighbours: Vec<i32>,
    clover: Vec<T>,
    buffers: Mutex<Buffers<T>>,
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
        let slot = FIELD_COMPONENTS * l;
        let main_bytes = (vo * slot * std::mem::size_of::<T>()) as i32;
        let interior_neighbours =
            neighbours.iter().map(|&n| if n & !1 >= main_bytes { 0 } else { n }).collect();
        let buffers = Buffers {
            send: halo
                .faces
                .iter()
                .map(|f| {
                    if direct(f) { Vec::new() } else { vec![T::zero(); f.send_slots.len() * slot] }
                })
                .collect(),
        };
        let n = halo.ext_slots * slot;
        let stats = HaloStats {
            bytes_per_application: halo.sent_scalars(l) * std::mem::size_of::<T>(),
            ..HaloStats::default()
        };
        Ok(DistWilsonClover {
            comm: comm.duplicate(),
            grid: grid.clone(),
            layout,
            pieces: sweep_pieces(&halo, vo),
            halo,
            compiled,
            interior,
            interior_neighbours,
            links,
            neighbours,
            clover,
            buffers: Mutex::new(buffers),
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
        self.halo.ext_slots * FIELD_COMPONENTS * self.layout.lanes
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
        let c = &self.compiled;
        let kernel = c.kernels.kernel(if dagger { c.ddag } else { c.d });
        let len = self.buffer_len();
        if out.len() < len || inp.len() < len {
            return Err(RuntimeError::Shape(format!(
                "distributed Wilson-clover: buffers of {} and {} scalars, it needs {len}",
                out.len(),
                inp.len()
            )));
        }
        let slot = FIELD_COMPONENTS * self.layout.lanes;
        let mut guard = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        let Buffers { send } = &mut *guard;
        // Packing runs on the rayon pool: with many cores per process a serial copy of the
        // faces would cost more than the messages themselves.
        for (face, buf) in self.halo.faces.iter().zip(send.iter_mut()) {
            if direct(face) {
                continue;
            }
            let src = &inp[..];
            buf.par_chunks_exact_mut(slot)
                .zip(face.send_slots.par_iter())
                .with_min_len(64)
                .for_each(|(dst, &o)| dst.copy_from_slice(&src[o * slot..(o + 1) * slot]));
        }
        let copy = start.elapsed().as_secs_f64();
        let mut wait = 0.0;
        let comm = self.comm.raw();
        let vo = self.layout.outer_volume;
        let ik = &self.interior;
        let interior_kernel = ik.kernels.kernel(if dagger { ik.ddag } else { ik.d });
        // The faces arrive straight in the ghost slots (no unpacking copy): the ghosts are one
        // run after the main slots, face after face in `Halo::faces` order, so they split into
        // one receive buffer per face; the interior kernel gets the main slots alone.
        let (main, ghosts) = inp[..len].split_at_mut(vo * slot);
        let main = &*main;
        let mut deferred: Vec<(usize, usize)> = Vec::new();
        let mut done = 0;
        mpi::request::scope(|scope| -> Result<(), RuntimeError> {
            let mut requests = Vec::with_capacity(2 * self.halo.faces.len());
            let mut rest = &mut *ghosts;
            for face in &self.halo.faces {
                debug_assert_eq!(face.ghost_base * slot, len - rest.len());
                let (buf, tail) = rest.split_at_mut(face.send_slots.len() * slot);
                rest = tail;
                let from = comm.process_at_rank(face.recv_from as i32);
                if direct(face) {
                    // One message a run, into the run's place among the face's ghost slots.
                    let mut at = buf;
                    for (r, &(_, n)) in face.runs.iter().enumerate() {
                        let (part, tail) = at.split_at_mut(n * slot);
                        at = tail;
                        let tag = run_tag(face, r);
                        requests.push(from.immediate_receive_into_with_tag(scope, part, tag));
                    }
                } else {
                    requests.push(from.immediate_receive_into_with_tag(scope, buf, face.tag));
                }
            }
            for (face, buf) in self.halo.faces.iter().zip(send.iter()) {
                let to = comm.process_at_rank(face.send_to as i32);
                if direct(face) {
                    for (r, &(first, n)) in face.runs.iter().enumerate() {
                        let part = &main[first * slot..(first + n) * slot];
                        requests.push(to.immediate_send_with_tag(scope, part, run_tag(face, r)));
                    }
                } else {
                    requests.push(to.immediate_send_with_tag(scope, &buf[..], face.tag));
                }
            }
            // The sweep runs in pieces. Until the faces are in, a piece runs only its interior
            // sites (which read no ghost slot), defers its boundary sites, and tests the
            // requests: a face this large goes by rendezvous, and Open MPI moves it only inside
            // MPI calls, so without the tests it would wait for `wait`. Once they are in, the
            // rest of the sweep runs whole, in site order (BENCHMARKS.md, "Several processes").
            // A refused kernel call must still wait for the requests (an unfinished request
            // aborts the process).
            let mut interior = Ok(());
            let mut pending: Vec<_> = requests.into_iter().map(Some).collect();
            for piece in &self.pieces {
                if pending.iter().all(Option::is_none) {
                    break;
                }
                if interior.is_ok() {
                    interior = interior_kernel.call_parallel_ranges(
                        &mut [
                            Arg::ro(main),
                            Arg::ro(main),
                            Arg::rw(&mut out[..len]),
                            Arg::ro(&self.links),
                            Arg::ro(&self.interior_neighbours),
                            Arg::ro(&self.clover),
                        ],
                        &piece.interior,
                        16,
                    );
                }
                deferred.extend_from_slice(&piece.boundary);
                done += 1;
                for slot in pending.iter_mut() {
                    if let Some(r) = slot.take() {
                        *slot = r.test().err();
                    }
                }
            }
            let t = Instant::now();
            for r in pending.into_iter().flatten() {
                r.wait();
            }
            wait = t.elapsed().as_secs_f64();
            interior.map_err(RuntimeError::from)
        })?;
        drop(guard);
        // The deferred boundary sites and the pieces not yet run, in one call (in site order).
        deferred
            .extend(self.pieces[done..].iter().flat_map(|p| p.interior.iter().chain(&p.boundary)));
        kernel.call_parallel_ranges(
            &mut [
                Arg::ro(&inp[..len]),
                Arg::ro(&inp[..len]),
                Arg::rw(&mut out[..len]),
                Arg::ro(&self.links),
                Arg::ro(&self.neighbours),
                Arg::ro(&self.clover),
            ],
            &deferred,
            16,
        )?;
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        s.applications += 1;
        s.seconds += start.elapsed().as_secs_f64();
        s.wait_seconds += wait;
        s.copy_seconds += copy;
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
        self.comm.barrier();
        let t = Instant::now();
        for _ in 0..reps {
            self.apply_aosoa(false, &mut out, &mut inp)?;
        }
        let with = t.elapsed().as_secs_f64();
        let c = &self.compiled;
        let kernel = c.kernels.kernel(c.d);
        self.comm.barrier();
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
        let (with, alone) = (self.comm.max_f64(with), self.comm.max_f64(alone));
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
        self.comm.sum_f64(partials)
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
        self.comm.sum_f64(partials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::simd::Precision;

    /// The pieces of a sweep hold every interior and every boundary site once, in order, and
    /// the faces' runs decide which faces go unpacked.
    #[test]
    fn the_sweep_pieces_cover_every_site_once() {
        for (np, procs) in [(2, [1, 1, 2, 1]), (4, [1, 2, 2, 1]), (2, [2, 1, 1, 1])] {
            let grid = ProcessGrid::new([8, 8, 8, 16], np, 1, Some(procs)).unwrap();
            let layout = SiteLayout::new(grid.local, Precision::F32, &[]).unwrap();
            let halo = Halo::new(&layout, &grid);
            let pieces = sweep_pieces(&halo, layout.outer_volume);
            assert!(pieces.len() <= SWEEP_PIECES);
            let flat = |runs: &[(usize, usize)]| -> Vec<usize> {
                runs.iter().flat_map(|&(a, b)| a..b).collect()
            };
            let interior: Vec<usize> = pieces.iter().flat_map(|p| flat(&p.interior)).collect();
            let boundary: Vec<usize> = pieces.iter().flat_map(|p| flat(&p.boundary)).collect();
            assert_eq!(interior, flat(&halo.interior), "{procs:?}");
            assert_eq!(boundary, flat(&halo.boundary), "{procs:?}");
            // 8^3 x 16 in f32 (lanes along t): a z face is 4 runs (sent unpacked), an x face
            // 256 single slots (packed).
            for f in &halo.faces {
                assert_eq!(direct(f), f.mu >= 2, "{procs:?} face along {}", f.mu);
            }
        }
    }
}
