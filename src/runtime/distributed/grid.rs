//! The process grid of a domain-decomposed lattice: how N processes tile the 4D lattice, which
//! sub-lattice each one owns, and who its neighbours are.
//!
//! It exists apart from the MPI code because choosing and checking a grid is pure arithmetic on
//! the lattice extents, the process count and the JIT layout's constraints: it is tested without
//! MPI, and a bad `--procs` is rejected before any process waits for another.
//!
//! The one constraint the kernels add: the JIT site layout (`codegen::lattice_layout`) packs
//! sites that are `L/lanes` apart along one *lane direction* (the last direction whose extent is
//! a multiple of the SIMD lanes, so t for the usual shapes) into the lanes of one vector, and
//! rotates lanes in registers for hops along it. A hop across a process boundary along that
//! direction would need single lanes from another process, so the lane direction is never
//! split; the grid splits the outermost of the other directions first (z, then y, then x),
//! which keeps each process's sites contiguous in the outer-site order.

use std::fmt;

/// Why a process grid does not fit a lattice.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    #[error(
        "--procs {procs} has {product} processes, but this run has {ranks} (mpirun -np {ranks})"
    )]
    WrongCount { procs: Procs, product: usize, ranks: usize },
    #[error(
        "--procs {procs} does not tile the {dims} lattice: {extent} sites along {axis} are not \
         divisible by {parts} processes"
    )]
    NoTiling { procs: Procs, dims: Procs, axis: char, extent: usize, parts: usize },
    #[error(
        "--procs {procs} leaves {local} sites along {axis} per process on the {dims} lattice; \
         the Wilson-clover halo has depth 1, and a split direction needs at least {min} sites \
         per process (twice the halo depth)"
    )]
    TooSmall { procs: Procs, dims: Procs, axis: char, local: usize, min: usize },
    #[error(
        "--procs {procs} splits {axis}, the direction the JIT kernels vectorise over \
         ({lanes} SIMD lanes along {axis} on the {local} sub-lattice); split x, y or z instead"
    )]
    LaneDirection { procs: Procs, local: Procs, axis: char, lanes: usize },
    #[error(
        "the {local} sub-lattice has no extent divisible by {lanes} (the SIMD lanes the JIT \
         kernels need)"
    )]
    NoLayout { local: Procs, lanes: usize },
    #[error(
        "{ranks} processes cannot tile the {dims} lattice (splitting only x, y, z, each into \
         parts of at least {min} sites); run with fewer processes or give --procs"
    )]
    NoAutomaticGrid { ranks: usize, dims: Procs, min: usize },
}

/// Four extents written `XxYxZxT` in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Procs(pub [usize; 4]);

impl fmt::Display for Procs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(f, "{}x{}x{}x{}", d[0], d[1], d[2], d[3])
    }
}

const AXES: [char; 4] = ['x', 'y', 'z', 't'];

/// Halo depth of the Wilson-clover operator (nearest-neighbour hops).
pub const HALO_DEPTH: usize = 1;

/// The SIMD lanes of the widest layout the distributed operator builds (f32x4); the f64
/// layout (2 lanes) then vectorises along the same direction or a later one, which is checked
/// too.
const LANES: [usize; 2] = [4, 2];

/// The lane direction of a JIT layout of `local` with `lanes` lanes (mirrors
/// `SiteLayout::new`: the last direction whose extent is a multiple of the lanes).
fn lane_direction(local: [usize; 4], lanes: usize) -> Option<usize> {
    (0..4).rev().find(|&mu| local[mu] % lanes == 0)
}

/// How the lattice is tiled and which tile this process owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessGrid {
    /// Global lattice extents.
    pub dims: [usize; 4],
    /// Processes along each direction.
    pub procs: [usize; 4],
    /// Extents of every process's sub-lattice.
    pub local: [usize; 4],
    /// This process's rank (x fastest over `procs`).
    pub rank: usize,
    /// Its position in the grid.
    pub coords: [usize; 4],
}

impl ProcessGrid {
    /// The grid for `ranks` processes: `procs` as given, or chosen: every prime factor of
    /// `ranks` (largest first) splits the direction with the largest local extent that it
    /// divides, ties going to the outermost; the lane direction is never split.
    pub fn new(
        dims: [usize; 4],
        ranks: usize,
        rank: usize,
        procs: Option<[usize; 4]>,
    ) -> Result<Self, GridError> {
        let procs = match procs {
            Some(p) => p,
            None => Self::choose(dims, ranks)?,
        };
        let product: usize = procs.iter().product();
        if product != ranks {
            return Err(GridError::WrongCount { procs: Procs(procs), product, ranks });
        }
        let min = 2 * HALO_DEPTH;
        let mut local = dims;
        for mu in 0..4 {
            if procs[mu] == 0 || dims[mu] % procs[mu] != 0 {
                return Err(GridError::NoTiling {
                    procs: Procs(procs),
                    dims: Procs(dims),
                    axis: AXES[mu],
                    extent: dims[mu],
                    parts: procs[mu],
                });
            }
            local[mu] = dims[mu] / procs[mu];
            if procs[mu] > 1 && local[mu] < min {
                return Err(GridError::TooSmall {
                    procs: Procs(procs),
                    dims: Procs(dims),
                    axis: AXES[mu],
                    local: local[mu],
                    min,
                });
            }
        }
        for lanes in LANES {
            let lane = lane_direction(local, lanes)
                .ok_or(GridError::NoLayout { local: Procs(local), lanes })?;
            if procs[lane] > 1 {
                return Err(GridError::LaneDirection {
                    procs: Procs(procs),
                    local: Procs(local),
                    axis: AXES[lane],
                    lanes,
                });
            }
        }
        let mut coords = [0; 4];
        let mut r = rank;
        for mu in 0..4 {
            coords[mu] = r % procs[mu];
            r /= procs[mu];
        }
        Ok(ProcessGrid { dims, procs, local, rank, coords })
    }

    /// The automatic grid (see [`ProcessGrid::new`]).
    fn choose(dims: [usize; 4], ranks: usize) -> Result<[usize; 4], GridError> {
        let fail = || GridError::NoAutomaticGrid { ranks, dims: Procs(dims), min: 2 * HALO_DEPTH };
        let lane = lane_direction(dims, LANES[0]).ok_or_else(fail)?;
        let mut factors = Vec::new();
        let (mut n, mut p) = (ranks.max(1), 2);
        while n > 1 {
            while n % p == 0 {
                factors.push(p);
                n /= p;
            }
            p += 1;
        }
        factors.sort_unstable_by(|a, b| b.cmp(a));
        let mut procs = [1usize; 4];
        for f in factors {
            let local = |mu: usize| dims[mu] / procs[mu];
            let best = (0..4)
                .rev()
                .filter(|&mu| mu != lane)
                .filter(|&mu| local(mu) % f == 0 && local(mu) / f >= 2 * HALO_DEPTH)
                .max_by_key(|&mu| (local(mu), mu))
                .ok_or_else(fail)?;
            procs[best] *= f;
        }
        Ok(procs)
    }

    pub fn ranks(&self) -> usize {
        self.procs.iter().product()
    }

    /// The rank at grid position `coords`.
    pub fn rank_at(&self, coords: [usize; 4]) -> usize {
        let p = self.procs;
        coords[0] + p[0] * (coords[1] + p[1] * (coords[2] + p[2] * coords[3]))
    }

    /// The same grid as seen by process `rank` (its coordinates; the same global sites).
    pub fn for_rank(&self, rank: usize) -> ProcessGrid {
        let mut g = self.clone();
        g.rank = rank;
        let mut r = rank;
        for mu in 0..4 {
            g.coords[mu] = r % self.procs[mu];
            r /= self.procs[mu];
        }
        g
    }

    /// The neighbour one step along `mu` (forward or backward, periodic).
    pub fn neighbour(&self, mu: usize, forward: bool) -> usize {
        let mut c = self.coords;
        let p = self.procs[mu];
        c[mu] = if forward { (c[mu] + 1) % p } else { (c[mu] + p - 1) % p };
        self.rank_at(c)
    }

    /// Whether `mu` is split over processes (then its hops across the sub-lattice edge go to
    /// a neighbour; otherwise they wrap around locally as on one process).
    pub fn is_split(&self, mu: usize) -> bool {
        self.procs[mu] > 1
    }

    /// Sites of this process's sub-lattice.
    pub fn local_volume(&self) -> usize {
        self.local.iter().product()
    }

    /// The coordinates of local site `s` within the sub-lattice (x fastest).
    pub fn local_coords(&self, s: usize) -> [usize; 4] {
        let mut r = s;
        self.local.map(|e| {
            let c = r % e;
            r /= e;
            c
        })
    }

    /// The global lexicographic site of local site `s` (x fastest, as `Geometry`).
    pub fn global_site(&self, s: usize) -> usize {
        let mut r = s;
        let mut g = 0;
        let mut stride = 1;
        for mu in 0..4 {
            let c = r % self.local[mu] + self.coords[mu] * self.local[mu];
            r /= self.local[mu];
            g += c * stride;
            stride *= self.dims[mu];
        }
        g
    }

    /// This process's part of a global reference-layout field (`per_site` entries per site).
    pub fn local_part<T: Copy>(&self, global: &[T], per_site: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(self.local_volume() * per_site);
        for s in 0..self.local_volume() {
            let g = self.global_site(s);
            out.extend_from_slice(&global[g * per_site..(g + 1) * per_site]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_grids_split_outer_space_first_and_never_t() {
        let g = |dims, n| ProcessGrid::new(dims, n, 0, None).map(|g| g.procs);
        assert_eq!(g([8, 8, 8, 8], 1), Ok([1, 1, 1, 1]));
        assert_eq!(g([8, 8, 8, 8], 2), Ok([1, 1, 2, 1]));
        assert_eq!(g([8, 8, 8, 8], 4), Ok([1, 2, 2, 1]));
        assert_eq!(g([8, 8, 8, 8], 8), Ok([2, 2, 2, 1]));
        assert_eq!(g([16, 16, 16, 32], 2), Ok([1, 1, 2, 1]));
        assert!(g([8, 8, 8, 16], 3).is_err());
        assert_eq!(g([12, 12, 12, 8], 3), Ok([1, 1, 3, 1]));
    }

    #[test]
    fn bad_grids_are_explained() {
        let e = |procs| ProcessGrid::new([8, 8, 8, 8], 4, 0, Some(procs)).unwrap_err();
        assert!(matches!(e([1, 1, 1, 4]), GridError::LaneDirection { axis: 't', .. }));
        assert!(matches!(e([1, 1, 3, 1]), GridError::WrongCount { .. }));
        assert!(ProcessGrid::new([8, 8, 8, 8], 4, 0, Some([1, 1, 4, 1])).is_ok());
        let too_small = ProcessGrid::new([8, 8, 8, 8], 8, 0, Some([1, 1, 8, 1])).unwrap_err();
        assert!(matches!(too_small, GridError::TooSmall { axis: 'z', local: 1, .. }));
        let no_tile = ProcessGrid::new([8, 8, 6, 8], 4, 0, Some([1, 1, 4, 1])).unwrap_err();
        assert!(matches!(no_tile, GridError::NoTiling { axis: 'z', .. }));
        assert!(no_tile.to_string().contains("does not tile"));
    }

    #[test]
    fn local_sites_map_to_their_global_sites() {
        let g = ProcessGrid::new([4, 4, 4, 8], 4, 3, Some([1, 2, 2, 1])).unwrap();
        assert_eq!(g.coords, [0, 1, 1, 0]);
        assert_eq!(g.local, [4, 2, 2, 8]);
        // Local site 0 is global (0, 2, 2, 0).
        assert_eq!(g.global_site(0), 4 * 2 + 16 * 2);
        assert_eq!(g.neighbour(1, true), 2);
        assert_eq!(g.neighbour(2, false), 1);
        let mut all: Vec<usize> = (0..4)
            .flat_map(|r| {
                let g = ProcessGrid::new([4, 4, 4, 8], 4, r, Some([1, 2, 2, 1])).unwrap();
                (0..g.local_volume()).map(move |s| g.global_site(s)).collect::<Vec<_>>()
            })
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..4 * 4 * 4 * 8).collect::<Vec<_>>());
        for r in 0..4 {
            let direct = ProcessGrid::new([4, 4, 4, 8], 4, r, Some([1, 2, 2, 1])).unwrap();
            assert_eq!(g.for_rank(r), direct);
        }
    }
}
