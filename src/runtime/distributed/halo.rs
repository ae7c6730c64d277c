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
use crate::codegen::lattice_layout::{FIELD_COMPONENTS, HalfLayout, SiteLayout};

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
    /// Per face: the position of every outer site in its `send_slots` (`u32::MAX` when it is
    /// not on that face): where the receiver finds it among the face's ghost slots.
    position: Vec<Vec<u32>>,
    /// Local extents of the sub-lattice.
    local: [usize; 4],
    procs: [usize; 4],
}

impl Halo {
    /// The halo of a full-lattice buffer in the site layout `layout`.
    pub fn new(layout: &SiteLayout, grid: &ProcessGrid) -> Self {
        debug_assert!(!grid.is_split(layout.split), "the grid never splits the lane direction");
        let od = layout.outer_dims;
        let coords = |o: usize| outer_coords(od, o);
        Self::build(grid, layout.outer_volume, coords, coords)
    }

    /// The halo of a half-lattice buffer of parity `q` in `layout` (the local checkerboard's,
    /// which is the global one: the local extents are even), read by the hops of the sites of
    /// the other parity. Every lane of an outer site has the same coordinate along a split
    /// direction (the grid does not split `layout.split`), so faces are whole slots again.
    pub fn for_half(layout: &HalfLayout, grid: &ProcessGrid, q: usize) -> Self {
        debug_assert!(!grid.is_split(layout.split), "the grid never splits the lane direction");
        let coords = |p: usize| move |o: usize| grid.local_coords(layout.site(p, o, 0));
        Self::build(grid, layout.outer_volume, coords(q), coords(1 - q))
    }

    /// The halo of buffers of `vo` outer sites whose coordinates (along the split directions)
    /// are `sent(o)`, read by hops from `vo` outer sites at `read_by(o)`.
    fn build(
        grid: &ProcessGrid,
        vo: usize,
        sent: impl Fn(usize) -> [usize; 4],
        read_by: impl Fn(usize) -> [usize; 4],
    ) -> Self {
        let local = grid.local;
        let mut faces = Vec::new();
        let mut position = Vec::new();
        let mut next = vo;
        for mu in (0..4).filter(|&mu| grid.is_split(mu)) {
            let slice =
                |k: usize| -> Vec<usize> { (0..vo).filter(|&o| sent(o)[mu] == k).collect() };
            let (first, last) = (slice(0), slice(local[mu] - 1));
            let n = first.len();
            let positions = |list: &[usize]| {
                let mut at = vec![u32::MAX; vo];
                for (i, &o) in list.iter().enumerate() {
                    at[o] = i as u32;
                }
                at
            };
            // Forward ghost: the forward neighbour's first slice; so this process sends its
            // first slice backward.
            position.push(positions(&first));
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
            position.push(positions(&last));
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
        let on_edge = |o: usize| {
            let c = read_by(o);
            (0..4).any(|mu| grid.is_split(mu) && (c[mu] == 0 || c[mu] == local[mu] - 1))
        };
        let (mut interior, mut boundary) = (Vec::new(), Vec::new());
        let mut start = 0;
        for o in 1..=vo {
            if o == vo || on_edge(o) != on_edge(start) {
                if on_edge(start) { &mut boundary } else { &mut interior }.push((start, o));
                start = o;
            }
        }
        Halo { faces, ext_slots: next, interior, boundary, position, local, procs: grid.procs }
    }

    /// The slot and lane rotation of `x + disp` (one hop) for outer site `o` of a full-lattice
    /// layout: a ghost slot when the hop leaves the sub-lattice along a split direction, the
    /// layout's own neighbour (wrapping around locally, lanes rotated along the lane direction)
    /// otherwise.
    pub fn neighbour(&self, layout: &SiteLayout, o: usize, disp: [i64; 4]) -> (usize, usize) {
        self.ghost(outer_coords(layout.outer_dims, o), disp, layout.neighbour_lane(o, disp))
    }

    /// Where a hop `disp` from the outer site at coordinates `c` reads, given where it would
    /// read with the sub-lattice wrapped around on itself (`wrapped`: slot and lane rotation):
    /// the wrapped slot is the neighbour's outer site at the same place in its (identical)
    /// layout, so a hop that leaves along a split direction reads its copy among the ghosts.
    pub fn ghost(&self, c: [usize; 4], disp: [i64; 4], wrapped: (usize, usize)) -> (usize, usize) {
        for (face, position) in self.faces.iter().zip(&self.position) {
            let mu = face.mu;
            let leaves = if face.forward {
                disp[mu] == 1 && c[mu] == self.local[mu] - 1
            } else {
                disp[mu] == -1 && c[mu] == 0
            };
            if leaves {
                let i = position[wrapped.0];
                debug_assert!(i != u32::MAX, "the wrapped neighbour lies on the face");
                return (face.ghost_base + i as usize, 0);
            }
        }
        debug_assert!((0..4).all(|mu| self.procs[mu] == 1 || disp[mu].abs() <= 1));
        wrapped
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::simd::Precision;

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

    /// The global site `disp` away from global site `x`.
    fn global_hop(dims: [usize; 4], x: usize, disp: [i64; 4]) -> usize {
        let (mut c, mut s) = ([0usize; 4], x);
        for mu in 0..4 {
            c[mu] = ((s % dims[mu]) as i64 + disp[mu]).rem_euclid(dims[mu] as i64) as usize;
            s /= dims[mu];
        }
        c[0] + dims[0] * (c[1] + dims[1] * (c[2] + dims[2] * c[3]))
    }

    /// Every hop of every lane of every outer site of a half-lattice layout, resolved through
    /// the halo (a main slot of this process or a ghost slot filled from a neighbour's face),
    /// lands on the global neighbour site, for splits along one and two directions.
    #[test]
    fn half_lattice_hops_through_the_halo_reach_the_global_neighbours() {
        use crate::lattice::evenodd::Checkerboard;
        use crate::lattice::geometry::Geometry;
        let dims = [4, 8, 4, 16];
        for (np, procs) in [(2, [1, 1, 2, 1]), (2, [1, 2, 1, 1]), (4, [2, 1, 2, 1])] {
            let grids: Vec<ProcessGrid> =
                (0..np).map(|r| ProcessGrid::new(dims, np, r, Some(procs)).unwrap()).collect();
            let board = Checkerboard::new(&Geometry::new(grids[0].local)).unwrap();
            let sites = [
                board.sites(crate::lattice::evenodd::Parity::Even),
                board.sites(crate::lattice::evenodd::Parity::Odd),
            ];
            let layout = HalfLayout::new(grids[0].local, Precision::F32, sites).unwrap();
            let (vo, l) = (layout.outer_volume, layout.lanes);
            for grid in &grids {
                let halos = [0, 1].map(|q| Halo::for_half(&layout, grid, q));
                for p in 0..2 {
                    let halo = &halos[1 - p];
                    for o in 0..vo {
                        for (mu, forward) in crate::codegen::dirac::hops() {
                            let mut disp = [0i64; 4];
                            disp[mu] = if forward { 1 } else { -1 };
                            let (q, o2, rot) = layout.neighbour(p, o, disp);
                            assert_eq!(q, 1 - p);
                            let c = grid.local_coords(layout.site(p, o, 0));
                            let (slot, rot) = halo.ghost(c, disp, (o2, rot));
                            for k in 0..l {
                                let want =
                                    global_hop(dims, grid.global_site(layout.site(p, o, k)), disp);
                                let got = if slot < vo {
                                    grid.global_site(layout.site(q, slot, (k + rot) % l))
                                } else {
                                    let f = halo
                                        .faces
                                        .iter()
                                        .find(|f| {
                                            (f.ghost_base..f.ghost_base + f.send_slots.len())
                                                .contains(&slot)
                                        })
                                        .expect("a ghost slot of some face");
                                    let from = &grids[f.recv_from];
                                    let sent = f.send_slots[slot - f.ghost_base];
                                    from.global_site(layout.site(q, sent, (k + rot) % l))
                                };
                                assert_eq!(
                                    got, want,
                                    "{procs:?} rank {} p {p} o {o} {disp:?}",
                                    grid.rank
                                );
                            }
                        }
                    }
                }
                let covered: usize =
                    halos[0].interior.iter().chain(&halos[0].boundary).map(|(a, b)| b - a).sum();
                assert_eq!(covered, vo);
            }
        }
    }
}
