//! Lattice geometry: site indexing (x fastest, t last) and periodic neighbour tables.
//!
//! Every field in symc indexes sites with [`Geometry::index`]; stencils read neighbours from the
//! precomputed tables instead of recomputing coordinates in inner loops.

/// A periodic 4D lattice with precomputed forward/backward neighbour tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub dims: [usize; 4],
    /// `fwd[site * 4 + mu]` = index of `site + mu_hat` (periodic).
    fwd: Vec<u32>,
    /// `bwd[site * 4 + mu]` = index of `site - mu_hat` (periodic).
    bwd: Vec<u32>,
}

impl Geometry {
    /// Builds the tables. Panics only on a zero extent or a volume beyond `u32`, which callers
    /// (sema, file readers) reject with diagnostics first.
    pub fn new(dims: [usize; 4]) -> Self {
        assert!(dims.iter().all(|&d| d > 0), "lattice extents must be positive");
        let vol: usize = dims.iter().product();
        assert!(vol <= u32::MAX as usize, "lattice volume exceeds u32");
        let mut fwd = vec![0u32; vol * 4];
        let mut bwd = vec![0u32; vol * 4];
        let mut g = Geometry { dims, fwd: Vec::new(), bwd: Vec::new() };
        for s in 0..vol {
            let c = g.coords(s);
            for mu in 0..4 {
                let mut up = c;
                up[mu] = (c[mu] + 1) % dims[mu];
                let mut dn = c;
                dn[mu] = (c[mu] + dims[mu] - 1) % dims[mu];
                fwd[s * 4 + mu] = g.index(up) as u32;
                bwd[s * 4 + mu] = g.index(dn) as u32;
            }
        }
        g.fwd = fwd;
        g.bwd = bwd;
        g
    }

    pub fn volume(&self) -> usize {
        self.dims.iter().product()
    }

    /// Lexicographic index, x fastest.
    pub fn index(&self, c: [usize; 4]) -> usize {
        c[0] + self.dims[0] * (c[1] + self.dims[1] * (c[2] + self.dims[2] * c[3]))
    }

    pub fn coords(&self, mut s: usize) -> [usize; 4] {
        let mut c = [0; 4];
        for mu in 0..4 {
            c[mu] = s % self.dims[mu];
            s /= self.dims[mu];
        }
        c
    }

    /// Neighbour `site + mu_hat`.
    #[inline]
    pub fn up(&self, site: usize, mu: usize) -> usize {
        self.fwd[site * 4 + mu] as usize
    }

    /// Neighbour `site - mu_hat`.
    #[inline]
    pub fn dn(&self, site: usize, mu: usize) -> usize {
        self.bwd[site * 4 + mu] as usize
    }

    /// True when `site` sits on the last slice in direction `mu` (where boundary phases apply).
    pub fn on_last_slice(&self, site: usize, mu: usize) -> bool {
        self.coords(site)[mu] == self.dims[mu] - 1
    }

    /// Checkerboard parity (sum of coordinates mod 2).
    pub fn parity(&self, site: usize) -> usize {
        self.coords(site).iter().sum::<usize>() % 2
    }
}
