//! The halo of one process's sub-lattice in the JIT site layout: which outer sites each
//! neighbour needs, where the received copies live in a field buffer, which hops read them,
//! and which outer sites can be computed before they arrive.
//!
//! Why ghost slots and not an extended lattice: the Dirac kernel reads every neighbour through
//! a per-(site, hop) table of slot offsets, so the received faces can simply be appended after
//! the main slots of the buffer (the "scratch tail" the solver traits allow) and the table of a
//! boundary site points there. The main part of a buffer is then exactly the sub-lattice: inner
//! products run over it unchanged, and no work is spent on halo sites. Because the lane
//! direction is never split ([`super::grid`]), a face is a set of whole slots (every lane of a
//! slot has the same coordinate along a split direction), copied without lane shuffles.
//!
//! What is sent is the full spinor of each face site (24 reals); projecting to half spinors
//! first (as Grid and QUDA do) would halve the bytes but needs a projection kernel per hop.

use super::grid::ProcessGrid;
use crate::codegen::lattice_layout::{FIELD_COMPONENTS, SiteLayout};

/// One face exchange: this process sends `send_slots` to `send_to` and receives the same
/// number of slots from `recv_from` into the ghost slots `ghost_base..`.
#[derive(Clone, Debug)]
pub(crate) struct Face {
    pub mu: usize,
    /// The ghost holds the sites at x + mu of this sub-lattice's last slice (forward) or at
    /// x − mu of its first slice (backward).
    pub forward: bool,
    /// Main slots sent (the first slice along mu for a forward ghost of the neighbour, the
    /// last one for a backward ghost), in outer-site order.
    pub send_slots: Vec<usize>,
    /// `send_slots` as runs of consecutive main slots `(first slot, count)`, in order: a face
    /// of few long runs is sent straight from the field buffer, a run a message, with no
    /// packing (the receiver's face has the same runs: the sub-lattices have one shape).
    pub runs: Vec<(usize, usize)>,
    pub ghost_base: usize,
    pub send_to: usize,
    pub recv_from: usize,
    /// The message tag: distinct for the two directions of mu (with two processes along mu,
    /// both neighbours are the same process).
    pub tag: i32,
}

/// The halo of a sub-lattice for nearest-neighbour hops.
#[derive(Clone, Debug)]
pub(crate) struct Halo {
    pub faces: Vec<Face>,
    /// Main plus ghost slots of a field buffer.
    pub ext_slots: usize,
    /// Runs of outer sites none of whose hops reads a ghost, and the others.
    pub interior: Vec<(usize, usize)>,
    pub boundary: Vec<(usize, usize)>,
    outer_dims: [usize; 4],
    procs: [usize; 4],
}

impl Halo {
    pub fn new(layout: &SiteLayout, grid: &ProcessGrid) -> Self {
        let vo = layout.outer_volume;
        let od = layout.outer_dims;
        let mut faces = Vec::new();
        let mut next = vo;
        for mu in (0..4).filter(|&mu| grid.is_split(mu)) {
            debug_assert!(mu != layout.split, "the grid never splits the lane direction");
            let slice = |k: usize| -> Vec<usize> {
                (0..vo).filter(|&o| outer_coords(od, o)[mu] == k).collect()
            };
            let (first, last) = (slice(0), slice(od[mu] - 1));
            let n = first.len();
            // Forward ghost: the forward neighbour's first slice; so this process sends its
            // first slice backward.
            faces.push(Face {
                mu,
                forward: true,
                runs: runs(&first),
                send_slots: first,
                ghost_base: next,
                send_to: grid.neighbour(mu, false),
                recv_from: grid.neighbour(mu, true),
                tag: 2 * mu as i32,
            });
            next += n;
            faces.push(Face {
                mu,
                forward: false,
                runs: runs(&last),
                send_slots: last,
                ghost_base: next,
                send_to: grid.neighbour(mu, true),
                recv_from: grid.neighbour(mu, false),
                tag: 2 * mu as i32 + 1,
            });
            next += n;
        }
        let mut halo = Halo {
            faces,
            ext_slots: next,
            interior: Vec::new(),
            boundary: Vec::new(),
            outer_dims: od,
            procs: grid.procs,
        };
        let on_edge = |o: usize| {
            let c = outer_coords(od, o);
            (0..4).any(|mu| grid.is_split(mu) && (c[mu] == 0 || c[mu] == od[mu] - 1))
        };
        let (mut interior, mut boundary) = (Vec::new(), Vec::new());
        let mut start = 0;
        for o in 1..=vo {
            if o == vo || on_edge(o) != on_edge(start) {
                if on_edge(start) { &mut boundary } else { &mut interior }.push((start, o));
                start = o;
            }
        }
        halo.interior = interior;
        halo.boundary = boundary;
        halo
    }

    /// The slot and lane rotation of `x + disp` (one hop) for outer site `o`: a ghost slot when
    /// the hop leaves the sub-lattice along a split direction, the layout's own neighbour
    /// (wrapping around locally, lanes rotated along the lane direction) otherwise.
    pub fn neighbour(&self, layout: &SiteLayout, o: usize, disp: [i64; 4]) -> (usize, usize) {
        let c = outer_coords(self.outer_dims, o);
        for face in &self.faces {
            let mu = face.mu;
            let leaves = if face.forward {
                disp[mu] == 1 && c[mu] == self.outer_dims[mu] - 1
            } else {
                disp[mu] == -1 && c[mu] == 0
            };
            if leaves {
                return (face.ghost_base + face_index(self.outer_dims, c, mu), 0);
            }
        }
        debug_assert!((0..4).all(|mu| self.procs[mu] == 1 || disp[mu].abs() <= 1));
        layout.neighbour_lane(o, disp)
    }

    /// Scalars of the halo faces one application sends (all faces, one precision).
    pub fn sent_scalars(&self, lanes: usize) -> usize {
        self.faces.iter().map(|f| f.send_slots.len()).sum::<usize>() * FIELD_COMPONENTS * lanes
    }
}

/// Consecutive runs `(first, count)` of an ascending list of slots.
fn runs(slots: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &o in slots {
        match out.last_mut() {
            Some((first, count)) if *first + *count == o => *count += 1,
            _ => out.push((o, 1)),
        }
    }
    out
}

/// Coordinates of outer site `o` (x fastest, as `SiteLayout`).
fn outer_coords(od: [usize; 4], mut o: usize) -> [usize; 4] {
    let mut c = [0; 4];
    for mu in 0..4 {
        c[mu] = o % od[mu];
        o /= od[mu];
    }
    c
}

/// Position of the outer site with coordinates `c` within its slice along `mu` (the other
/// coordinates, x fastest): the same on the sending and the receiving process, so a face
/// arrives in the order the receiver's neighbour table expects.
fn face_index(od: [usize; 4], c: [usize; 4], mu: usize) -> usize {
    let (mut idx, mut stride) = (0, 1);
    for nu in (0..4).filter(|&nu| nu != mu) {
        idx += c[nu] * stride;
        stride *= od[nu];
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::simd::Precision;

    #[test]
    fn faces_runs_and_ghosts_are_consistent() {
        let grid = ProcessGrid::new([4, 4, 4, 8], 4, 1, Some([1, 2, 2, 1])).unwrap();
        let layout = SiteLayout::new(grid.local, Precision::F32, &[]).unwrap();
        let halo = Halo::new(&layout, &grid);
        assert_eq!(halo.faces.len(), 4);
        // Every face site's position among its slice is its index in the send list, and the
        // runs spell the send list.
        for f in &halo.faces {
            let spelled: Vec<usize> = f.runs.iter().flat_map(|&(a, n)| a..a + n).collect();
            assert_eq!(spelled, f.send_slots);
            for (i, &o) in f.send_slots.iter().enumerate() {
                assert_eq!(
                    face_index(layout.outer_dims, outer_coords(layout.outer_dims, o), f.mu),
                    i
                );
            }
        }
        let covered: usize = halo.interior.iter().chain(&halo.boundary).map(|(a, b)| b - a).sum();
        assert_eq!(covered, layout.outer_volume);
        // Local extents 2 along y and z: every site is on an edge.
        assert!(halo.interior.is_empty());
        assert_eq!(halo.ext_slots, layout.outer_volume * 3);
    }
}
