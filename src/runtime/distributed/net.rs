//! A gauge network on one process's sub-lattice: the compiled [`LatticeNet`] of the
//! sub-lattice, whose stencils read the neighbours on other processes from halo slots that a
//! message exchange fills before every stencil, and whose weight gradients are summed over the
//! processes. To the trainer and the solvers it is an ordinary [`FermionNet`] on this
//! process's part of the fields.
//!
//! Why a halo of its own and not the Dirac operator's faces: a PTC path reaches
//! x + Δ for any Δ the `.sym` file names (several hops, diagonal, longer than a sub-lattice),
//! so the halo is planned per displacement, not per face. Every process computes every
//! other process's needs itself (the decomposition is the same arithmetic everywhere), so
//! nothing is negotiated at start-up: a process sends a peer exactly the sites the peer's
//! plan reads from it, in the peer's order. A slot of the halo holds, for each lane, the site
//! `x_k + Δ` of that lane; the lane direction is never split ([`super::grid`]), so every lane
//! of a slot lives on the same process, and packing gathers the lanes from wherever they sit
//! in that process's layout (lane rotations included). A neighbour that wraps round onto the
//! process itself (a path longer than the sub-lattice) is copied locally.

use super::comm::{Comm, CommHandle};
use super::grid::ProcessGrid;
use crate::codegen::lattice_layout::{FIELD_COMPONENTS, SiteLayout};
use crate::codegen::simd::Element;
use crate::ir::{Graph, retarget};
use crate::lattice::Real;
use crate::lattice::gauge::GaugeField;
use crate::runtime::lattice_net::{LatticeNet, LatticeNetOptions, RemoteHalo};
use crate::runtime::{FermionNet, RuntimeError};
use crate::runtime::{forward_backward_via_reference, loss_grad_seeded};
use mpi::traits::*;
use num_complex::Complex;
use std::collections::HashMap;
use std::sync::Mutex;

/// One halo slot of a process's plan: the global site each lane reads.
struct Entry {
    targets: Vec<usize>,
}

/// The halo slot (counted from the first) of every (outer site, displacement) whose
/// neighbour lies on another process.
type SlotMap = HashMap<(usize, [i64; 4]), usize>;

/// The halo slots a process with grid `grid` and layout `layout` reads for `disps`, in slot
/// order, and the slot of every (outer site, displacement) that leaves its sub-lattice.
fn plan(grid: &ProcessGrid, layout: &SiteLayout, disps: &[[i64; 4]]) -> (Vec<Entry>, SlotMap) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut by_target: HashMap<usize, usize> = HashMap::new();
    let mut slots = HashMap::new();
    let local = grid.local;
    for &d in disps {
        for o in 0..layout.outer_volume {
            let c = coords(layout.site(o, 0), local);
            // Lanes differ only along the lane direction, which is never split: whether the
            // neighbour leaves the sub-lattice is the same for every lane.
            let leaves = (0..4).any(|mu| {
                grid.is_split(mu) && !(0..local[mu] as i64).contains(&(c[mu] as i64 + d[mu]))
            });
            if !leaves || slots.contains_key(&(o, d)) {
                continue;
            }
            let targets: Vec<usize> = (0..layout.lanes)
                .map(|k| shift(grid.global_site(layout.site(o, k)), d, grid.dims))
                .collect();
            let e = *by_target.entry(targets[0]).or_insert_with(|| {
                entries.push(Entry { targets });
                entries.len() - 1
            });
            slots.insert((o, d), e);
        }
    }
    (entries, slots)
}

/// Coordinates of lexicographic site `s` (x fastest) of a lattice with extents `dims`.
fn coords(mut s: usize, dims: [usize; 4]) -> [usize; 4] {
    let mut c = [0; 4];
    for mu in 0..4 {
        c[mu] = s % dims[mu];
        s /= dims[mu];
    }
    c
}

fn site(c: [usize; 4], dims: [usize; 4]) -> usize {
    c[0] + dims[0] * (c[1] + dims[1] * (c[2] + dims[2] * c[3]))
}

/// Global site `g` moved by `d` (periodic).
fn shift(g: usize, d: [i64; 4], dims: [usize; 4]) -> usize {
    let mut c = coords(g, dims);
    for mu in 0..4 {
        c[mu] = (c[mu] as i64 + d[mu]).rem_euclid(dims[mu] as i64) as usize;
    }
    site(c, dims)
}

/// The process owning global site `g`, and its local site there.
fn owner(grid: &ProcessGrid, g: usize) -> (usize, usize) {
    let c = coords(g, grid.dims);
    let mut pc = [0; 4];
    let mut lc = [0; 4];
    for mu in 0..4 {
        pc[mu] = c[mu] / grid.local[mu];
        lc[mu] = c[mu] % grid.local[mu];
    }
    (grid.rank_at(pc), site(lc, grid.local))
}

/// What this process exchanges with one other process.
struct Peer {
    rank: usize,
    /// For every slot the peer reads from here, lane by lane: (outer site, lane) in this
    /// process's layout.
    send: Vec<(usize, usize)>,
    /// The halo slots this process reads from the peer, in the peer's packing order.
    recv: Vec<usize>,
}

/// The send and the receive buffer of every peer, in peer order.
type PeerBuffers<T> = (Vec<Vec<T>>, Vec<Vec<T>>);

/// The halo of a sub-lattice network ([`RemoteHalo`] over MPI).
pub struct NetHalo<T> {
    comm: CommHandle,
    lanes: usize,
    /// The first halo slot (the layout's slots before the halo).
    base: usize,
    slots: usize,
    remote: SlotMap,
    global: Vec<usize>,
    peers: Vec<Peer>,
    /// Halo slots whose lanes live on this process (a path longer than the sub-lattice).
    own: Vec<(usize, Vec<(usize, usize)>)>,
    /// Send and receive buffers of every peer.
    buffers: Mutex<PeerBuffers<T>>,
}

impl<T: Element + Equivalence> NetHalo<T> {
    /// The halo of this process (`grid`) for a network on `layout` reading `disps`.
    pub fn new(comm: &Comm, grid: &ProcessGrid, layout: &SiteLayout, disps: &[[i64; 4]]) -> Self {
        let lane_of = |s: usize| layout.outer_lane(s);
        let me = grid.rank;
        let (mine, remote) = plan(grid, layout, disps);
        let base = layout.ext_slots;
        let mut own = Vec::new();
        let mut recv: HashMap<usize, Vec<usize>> = HashMap::new();
        for (e, entry) in mine.iter().enumerate() {
            let (r, _) = owner(grid, entry.targets[0]);
            if r == me {
                own.push((
                    base + e,
                    entry.targets.iter().map(|&t| lane_of(owner(grid, t).1)).collect(),
                ));
            } else {
                recv.entry(r).or_default().push(base + e);
            }
        }
        let mut peers = Vec::new();
        for r in (0..grid.ranks()).filter(|&r| r != me) {
            let other = ProcessGrid { rank: r, coords: coords(r, grid.procs), ..grid.clone() };
            let (theirs, _) = plan(&other, layout, disps);
            let mut send = Vec::new();
            for entry in &theirs {
                if owner(grid, entry.targets[0]).0 == me {
                    send.extend(entry.targets.iter().map(|&t| lane_of(owner(grid, t).1)));
                }
            }
            let recv = recv.remove(&r).unwrap_or_default();
            if !send.is_empty() || !recv.is_empty() {
                peers.push(Peer { rank: r, send, recv });
            }
        }
        let buffers = (vec![Vec::new(); peers.len()], vec![Vec::new(); peers.len()]);
        NetHalo {
            comm: comm.register(),
            lanes: layout.lanes,
            base,
            slots: mine.len(),
            remote,
            global: (0..grid.local_volume()).map(|s| grid.global_site(s)).collect(),
            peers,
            own,
            buffers: Mutex::new(buffers),
        }
    }
}

impl<T: Element + Equivalence> RemoteHalo<T> for NetHalo<T> {
    fn slots(&self) -> usize {
        self.slots
    }

    fn global_site(&self, s: usize) -> usize {
        self.global[s]
    }

    fn remote_slot(&self, o: usize, disp: [i64; 4]) -> Option<usize> {
        self.remote.get(&(o, disp)).map(|&e| self.base + e)
    }

    fn exchange(&self, buf: &mut [T], field_len: usize) -> Result<(), RuntimeError> {
        self.exchange_overlapped(buf, field_len, &mut |_| Ok(()))
    }

    /// Packs what the peers need from `buf` and fills the halo slots that live on this
    /// process, posts the messages, runs `interior` on `buf` while they travel, waits, and
    /// writes the received slots. A failing `interior` still waits for every request (an
    /// unfinished one would abort the process) and then reports its error.
    fn exchange_overlapped(
        &self,
        buf: &mut [T],
        field_len: usize,
        interior: &mut dyn FnMut(&[T]) -> Result<(), RuntimeError>,
    ) -> Result<(), RuntimeError> {
        let l = self.lanes;
        let slot = FIELD_COMPONENTS * l;
        if field_len == 0 || !buf.len().is_multiple_of(field_len) {
            return Err(RuntimeError::Shape(format!(
                "halo exchange: a buffer of {} scalars is not whole features of {field_len}",
                buf.len()
            )));
        }
        let features = buf.len() / field_len;
        // Lane k of a slot read from (outer o, lane j): component q at (o * 24 + q) * L + j.
        let gather = |src: &[T], lanes: &[(usize, usize)], dst: &mut [T]| {
            for (e, chunk) in lanes.chunks_exact(l).enumerate() {
                for q in 0..FIELD_COMPONENTS {
                    for (k, &(o, j)) in chunk.iter().enumerate() {
                        dst[e * slot + q * l + k] = src[(o * FIELD_COMPONENTS + q) * l + j];
                    }
                }
            }
        };
        for (at, lanes) in &self.own {
            let mut tmp = vec![T::zero(); slot];
            for f in 0..features {
                let feat = &mut buf[f * field_len..(f + 1) * field_len];
                gather(feat, lanes, &mut tmp);
                feat[at * slot..(at + 1) * slot].copy_from_slice(&tmp);
            }
        }
        if self.peers.is_empty() {
            return interior(buf);
        }
        let mut guard = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        let (sends, recvs) = &mut *guard;
        for ((peer, send), recv) in self.peers.iter().zip(sends.iter_mut()).zip(recvs.iter_mut()) {
            let n_send = peer.send.len() / l;
            send.resize(features * n_send * slot, T::zero());
            recv.resize(features * peer.recv.len() * slot, T::zero());
            for f in 0..features {
                let feat = &buf[f * field_len..(f + 1) * field_len];
                gather(feat, &peer.send, &mut send[f * n_send * slot..(f + 1) * n_send * slot]);
            }
        }
        let view: &[T] = buf;
        let done = self
            .comm
            .with(|comm| {
                let comm = comm.raw();
                mpi::request::scope(|scope| {
                    let mut requests = Vec::with_capacity(2 * self.peers.len());
                    for (peer, recv) in self.peers.iter().zip(recvs.iter_mut()) {
                        if !recv.is_empty() {
                            let from = comm.process_at_rank(peer.rank as i32);
                            requests.push(from.immediate_receive_into(scope, &mut recv[..]));
                        }
                    }
                    for (peer, send) in self.peers.iter().zip(sends.iter()) {
                        if !send.is_empty() {
                            let to = comm.process_at_rank(peer.rank as i32);
                            requests.push(to.immediate_send(scope, &send[..]));
                        }
                    }
                    // The interior reads no halo slot: it runs while the messages travel.
                    let done = interior(view);
                    for r in requests {
                        r.wait();
                    }
                    done
                })
            })
            .map_err(RuntimeError::Shape)?;
        done?;
        for (peer, recv) in self.peers.iter().zip(recvs.iter()) {
            let n = peer.recv.len();
            for f in 0..features {
                let feat = &mut buf[f * field_len..(f + 1) * field_len];
                for (i, &at) in peer.recv.iter().enumerate() {
                    let src = &recv[(f * n + i) * slot..(f * n + i + 1) * slot];
                    feat[at * slot..(at + 1) * slot].copy_from_slice(src);
                }
            }
        }
        Ok(())
    }
}

/// A gauge network on this process's part of the lattice ([`FermionNet`] on local fields).
pub struct DistLatticeNet<T: Element> {
    net: LatticeNet<T>,
    comm: CommHandle,
}

impl<T: Element + Equivalence> DistLatticeNet<T> {
    /// `graph` (on the whole lattice) compiled for `grid`'s sub-lattice of `gauge` (the whole
    /// field, which every process holds).
    pub fn compile(
        comm: &Comm,
        grid: &ProcessGrid,
        graph: &Graph,
        gauge: &GaugeField,
    ) -> Result<Self, RuntimeError> {
        let local = retarget::split_view(graph, grid.local).map_err(|e| {
            RuntimeError::Shape(format!("splitting `{}` over processes: {e}", graph.name))
        })?;
        let net = LatticeNet::compile_decomposed(
            &local,
            gauge,
            &LatticeNetOptions::default(),
            |layout, disps| Ok(Box::new(NetHalo::<T>::new(comm, grid, layout, disps))),
        )?;
        Ok(DistLatticeNet { net, comm: comm.register() })
    }

    /// The sub-lattice network itself: its passes exchange halos, but its weight gradients
    /// are this process's share (for callers that accumulate several passes before one
    /// [`Self::sum_over_processes`], as a multigrid network's smoothing steps do).
    pub fn local(&self) -> &LatticeNet<T> {
        &self.net
    }

    /// Sums weight gradients over the processes, bit-identically on every process (so their
    /// optimiser steps stay in lockstep).
    pub fn sum_over_processes(&self, grad_params: &mut [T]) -> Result<(), RuntimeError> {
        let mut sums: Vec<f64> = grad_params.iter().map(|&g| Real::to_f64(g)).collect();
        self.comm.with(|c| c.sum_f64(&mut sums)).map_err(RuntimeError::Shape)?;
        for (g, s) in grad_params.iter_mut().zip(&sums) {
            *g = T::from_f64(*s);
        }
        Ok(())
    }
}

impl<T: Element + Equivalence> FermionNet<T> for DistLatticeNet<T> {
    fn graph(&self) -> &Graph {
        self.net.graph()
    }

    fn forward(
        &self,
        params: &[T],
        input: &[Complex<T>],
        output: &mut [Complex<T>],
    ) -> Result<(), RuntimeError> {
        self.net.forward(params, input, output)
    }

    /// The gradient of the global loss: `seed` gives this process's part of the output
    /// gradient, and the weight gradients are summed over the processes (bit-identical on
    /// every process, so their optimiser steps stay in lockstep).
    fn forward_backward_seeded(
        &self,
        params: &[T],
        input: &[Complex<T>],
        seed: &mut dyn FnMut(&[Complex<T>], &mut [Complex<T>]),
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        self.net.forward_backward(params, input, None, seed, None, grad_params)?;
        self.sum_over_processes(grad_params)
    }

    fn forward_native(
        &self,
        params: &[T],
        layout: &SiteLayout,
        input: &mut [T],
        output: &mut [T],
    ) -> Result<(), RuntimeError> {
        FermionNet::forward_native(&self.net, params, layout, input, output)
    }

    /// As [`Self::forward_backward_seeded`], on the operator's buffers when the sub-lattice
    /// network lays out its sites as they do (through the reference layout otherwise).
    fn forward_backward_native(
        &self,
        params: &[T],
        layout: &SiteLayout,
        input: &mut [T],
        seed: &mut dyn FnMut(&[T], &mut [T]),
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        if !self.net.layout().same_sites(layout) {
            return forward_backward_via_reference(self, params, layout, input, seed, grad_params);
        }
        self.net.forward_backward_native(params, layout, input, seed, grad_params)?;
        self.sum_over_processes(grad_params)
    }

    /// As [`FermionNet::loss_grad_native`] (this process's part of the loss), with the fused
    /// output-layer kernel when the layouts agree; the weight gradients summed over processes.
    fn loss_grad_native(
        &self,
        params: &[T],
        layout: &SiteLayout,
        input: &mut [T],
        target: &[T],
        grad_params: &mut [T],
    ) -> Result<f64, RuntimeError> {
        if !self.net.layout().same_sites(layout) {
            return loss_grad_seeded(self, params, layout, input, target, grad_params);
        }
        let loss = self.net.loss_grad_native(params, layout, input, target, grad_params)?;
        self.sum_over_processes(grad_params)?;
        Ok(loss)
    }

    fn native_buffer_len(&self) -> usize {
        FermionNet::native_buffer_len(&self.net)
    }
}
