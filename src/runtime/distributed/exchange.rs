//! One halo exchange overlapped with a kernel sweep: the communication pattern every
//! nearest-neighbour operator on a sub-lattice shares (the Wilson-clover operator of
//! [`super::operator`], each hop pass of the Schur operator of [`super::schur`]).
//!
//! Post non-blocking receives (straight into the ghost slots of the buffer the hops read) and
//! sends of the faces the neighbours need (straight from the buffer, a message per run of
//! consecutive slots, where a face is a few long runs; packed into one message otherwise),
//! then sweep the sites in pieces: while the faces are in flight a piece runs only its interior
//! sites (through a copy of the kernel that sees the main slots alone, so it cannot touch the
//! ghosts being received) and tests the messages; once they are in, the rest of the sweep —
//! the deferred boundary sites and the pieces not yet run — goes in one call, in site order.
//!
//! The kernels themselves stay with the operators: [`HaloExchange::sweep`] hands each phase
//! to a closure with the slice of the buffer it may read and the site ranges to run.

use super::comm::Comm;
use super::halo::{Face, Halo};
use crate::codegen::lattice_layout::FIELD_COMPONENTS;
use crate::codegen::simd::Element;
use crate::runtime::RuntimeError;
use mpi::traits::*;
use rayon::prelude::*;
use std::sync::Mutex;
use std::time::Instant;

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

/// A phase of [`HaloExchange::sweep`]: what the closure runs.
pub(crate) enum Phase<'a, T> {
    /// The faces are in flight: run `ranges` (sites that read no ghost) through the kernel
    /// for main slots alone, reading `main` (the buffer without its ghost slots).
    Interior { main: &'a [T], ranges: &'a [(usize, usize)] },
    /// The ghosts are filled: run `ranges` through the full kernel, reading `buffer`.
    Rest { buffer: &'a [T], ranges: &'a [(usize, usize)] },
}

/// Where the time of one exchange went.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Timing {
    /// Packing the faces that are not sent straight from the buffer.
    pub copy: f64,
    /// Waiting for messages after the interior pieces were done.
    pub wait: f64,
}

/// The halo exchange of one kind of buffer (its faces, ghost slots and sweep pieces) on a
/// communicator of its own.
pub(crate) struct HaloExchange<T: Element + Equivalence> {
    comm: Comm,
    halo: Halo,
    pieces: Vec<Piece>,
    /// Scalars of one slot (all lanes of one outer site).
    slot: usize,
    /// Outer sites of the main part of a buffer.
    vo: usize,
    /// Send buffers of the packed faces (empty for faces sent straight from the buffer).
    send: Mutex<Vec<Vec<T>>>,
}

impl<T: Element + Equivalence> HaloExchange<T> {
    /// The exchange of `halo` for buffers of `vo` outer sites of `lanes` lanes, on `comm`
    /// (which the caller duplicates, so its messages cannot meet anyone else's).
    pub fn new(comm: Comm, halo: Halo, vo: usize, lanes: usize) -> Self {
        let slot = FIELD_COMPONENTS * lanes;
        let send = halo
            .faces
            .iter()
            .map(
                |f| if direct(f) { Vec::new() } else { vec![T::zero(); f.send_slots.len() * slot] },
            )
            .collect();
        HaloExchange {
            comm,
            pieces: sweep_pieces(&halo, vo),
            halo,
            slot,
            vo,
            send: Mutex::new(send),
        }
    }

    pub fn comm(&self) -> &Comm {
        &self.comm
    }

    /// Scalars of a buffer: main slots, then ghost slots.
    pub fn buffer_len(&self) -> usize {
        self.halo.ext_slots * self.slot
    }

    /// Scalars of the main slots.
    pub fn main_len(&self) -> usize {
        self.vo * self.slot
    }

    /// Bytes one exchange sends.
    pub fn bytes(&self) -> usize {
        self.halo.sent_scalars(self.slot / FIELD_COMPONENTS) * std::mem::size_of::<T>()
    }

    /// Main slot offsets in a neighbour table (bytes, the low bit a flag) that point into the
    /// ghost slots, replaced by slot 0: the table of the interior kernel, which runs only
    /// sites that read no ghost and gets buffers of the main slots alone (a boundary site run
    /// through it would read slot 0, still inside the buffer).
    pub fn interior_table(&self, neighbours: &[i32]) -> Vec<i32> {
        let main_bytes = (self.main_len() * std::mem::size_of::<T>()) as i32;
        neighbours.iter().map(|&n| if n & !1 >= main_bytes { 0 } else { n }).collect()
    }

    /// Fills the ghost slots of `buffer` from the neighbours while `run` sweeps the sites
    /// (module doc). Every process must call it together. A refused kernel call still waits
    /// for the messages (an unfinished request aborts the process) and is then returned.
    pub fn sweep(
        &self,
        buffer: &mut [T],
        mut run: impl FnMut(Phase<'_, T>) -> Result<(), RuntimeError>,
    ) -> Result<Timing, RuntimeError> {
        let start = Instant::now();
        let (slot, len) = (self.slot, self.buffer_len());
        if buffer.len() < len {
            return Err(RuntimeError::Shape(format!(
                "halo exchange: a buffer of {} scalars, it needs {len}",
                buffer.len()
            )));
        }
        let mut guard = self.send.lock().unwrap_or_else(|e| e.into_inner());
        let send = &mut *guard;
        // Packing runs on the rayon pool: with many cores per process a serial copy of the
        // faces would cost more than the messages themselves.
        for (face, buf) in self.halo.faces.iter().zip(send.iter_mut()) {
            if direct(face) {
                continue;
            }
            let src = &buffer[..];
            buf.par_chunks_exact_mut(slot)
                .zip(face.send_slots.par_iter())
                .with_min_len(64)
                .for_each(|(dst, &o)| dst.copy_from_slice(&src[o * slot..(o + 1) * slot]));
        }
        let copy = start.elapsed().as_secs_f64();
        let mut wait = 0.0;
        let comm = self.comm.raw();
        // The faces arrive straight in the ghost slots (no unpacking copy): the ghosts are one
        // run after the main slots, face after face in `Halo::faces` order, so they split into
        // one receive buffer per face; the interior phase gets the main slots alone.
        let (main, ghosts) = buffer[..len].split_at_mut(self.vo * slot);
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
            let mut interior = Ok(());
            let mut pending: Vec<_> = requests.into_iter().map(Some).collect();
            for piece in &self.pieces {
                if pending.iter().all(Option::is_none) {
                    break;
                }
                if interior.is_ok() {
                    interior = run(Phase::Interior { main, ranges: &piece.interior });
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
            interior
        })?;
        drop(guard);
        // The deferred boundary sites and the pieces not yet run, in one call (in site order).
        deferred
            .extend(self.pieces[done..].iter().flat_map(|p| p.interior.iter().chain(&p.boundary)));
        run(Phase::Rest { buffer: &buffer[..len], ranges: &deferred })?;
        Ok(Timing { copy, wait })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::lattice_layout::SiteLayout;
    use crate::codegen::simd::Precision;
    use crate::runtime::distributed::grid::ProcessGrid;

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
