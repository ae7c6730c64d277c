//! The SIMD layout of lattice fields for the JIT kernels, and conversions to and from the
//! reference layout (`site*12 + spin*3 + colour`, complex interleaved).
//!
//! **Virtual nodes (Grid style).** The lattice is cut along one *split direction* into `L`
//! equal sub-lattices (`L` = 4 lanes of f32x4, 2 of f64x2). SIMD lane `k` holds sub-lattice `k`;
//! one vector holds the same *outer site* of every sub-lattice. Site-local algebra (SU(3) times
//! colour vector, 4x4 spin mixing) is then plain vertical SIMD, re/im split, with no shuffles.
//!
//! **Ghost slabs instead of shuffles.** A neighbour `x + Delta` of lane `k` lies in lane `k`
//! unless `Delta` crosses a sub-lattice edge along the split direction; then it lies in lane
//! `k + r` for a rotation `r` that is the same for all lanes of the vector. Rather than rotating
//! lanes in the inner loop, every field buffer carries extra *ghost slots* after the main outer
//! sites: copies of boundary slabs with their lanes pre-rotated ([`SiteLayout::fill_ghosts`]).
//! Neighbour tables then map (path, outer site) to a slot that is always a plain aligned vector
//! load. Only the displacements the network actually uses get ghost slabs.
//!
//! **Buffer layout** (all in units of the scalar `T`):
//! - fermion field, one feature: `[slot][component q = 2*(spin*3+colour) + re/im][lane]`,
//!   24·L scalars per slot, `ext_slots` slots (main outer sites first, then ghosts); `n`
//!   features back to back;
//! - 3x3 transport matrix per path and outer site: `[path][outer][9 entries][re/im][lane]`;
//! - spin weights: global `[w][16][re/im][lane]` (value splatted over lanes so the kernel does
//!   vector loads that fold into FMAs), local `[w][outer][16][re/im][lane]`.

use super::simd::Precision;
use crate::lattice::Real;
use num_complex::Complex;
use rayon::prelude::*;

/// Scalars per slot of a fermion field (12 complex numbers, re/im split) per lane.
pub const FIELD_COMPONENTS: usize = 24;

/// Scalars of one 3x3 matrix per outer site.
pub const MATRIX_COMPONENTS: usize = 18;

/// Why a lattice cannot be laid out for a given lane count.
#[derive(Debug, thiserror::Error)]
#[error(
    "no lattice extent of {dims:?} is a multiple of {lanes} (the SIMD lanes of {ty}); the JIT layout splits one direction into {lanes} sub-lattices"
)]
pub struct LayoutError {
    pub dims: [usize; 4],
    pub lanes: usize,
    pub ty: &'static str,
}

/// The virtual-node layout of one lattice for the SIMD lanes of one precision, with ghost slabs for a set of
/// displacements.
#[derive(Clone, Debug)]
pub struct SiteLayout {
    pub dims: [usize; 4],
    pub lanes: usize,
    /// Direction cut into `lanes` sub-lattices (the last one whose extent divides evenly, so t
    /// for the usual shapes).
    pub split: usize,
    /// Extent of one sub-lattice along `split`.
    pub chunk: usize,
    pub outer_dims: [usize; 4],
    /// Main outer sites (= volume / lanes): the work items of every site kernel.
    pub outer_volume: usize,
    /// Outer sites of one slab (all coordinates but the split one).
    slab: usize,
    /// Extended split coordinates (outside `0..chunk`) that have a ghost slab, in slab order.
    ghost_coords: Vec<i64>,
    /// Main + ghost slots.
    pub ext_slots: usize,
    /// `sites[o * lanes + k]` = global site of lane k of outer site o (conversions use it).
    sites: Vec<u32>,
    /// Inverse of `sites`: `position[site] = o * lanes + k`.
    position: Vec<u32>,
}

impl SiteLayout {
    /// Lay out `dims` for the lanes of `precision` with ghost slabs for every displacement in `disps`.
    pub fn new(
        dims: [usize; 4],
        precision: Precision,
        disps: &[[i64; 4]],
    ) -> Result<Self, LayoutError> {
        // 4 or 2 lanes: a power of two, which the ghost rotation mask relies on.
        let lanes = precision.lanes();
        let split = (0..4).rev().find(|&mu| dims[mu] % lanes == 0).ok_or(LayoutError {
            dims,
            lanes,
            ty: precision.name(),
        })?;
        let chunk = dims[split] / lanes;
        let mut outer_dims = dims;
        outer_dims[split] = chunk;
        let outer_volume: usize = outer_dims.iter().product();
        let slab = outer_volume / chunk;
        let mut ghost_coords = Vec::new();
        for d in disps {
            let l = dims[split] as i64;
            // Shortest representative of the displacement along the split direction.
            let mut ds = d[split].rem_euclid(l);
            if ds > l / 2 {
                ds -= l;
            }
            for c in 0..chunk as i64 {
                let e = c + ds;
                if !(0..chunk as i64).contains(&e) && !ghost_coords.contains(&e) {
                    ghost_coords.push(e);
                }
            }
        }
        ghost_coords.sort_unstable();
        let ext_slots = outer_volume + ghost_coords.len() * slab;
        let mut layout = SiteLayout {
            dims,
            lanes,
            split,
            chunk,
            outer_dims,
            outer_volume,
            slab,
            ghost_coords,
            ext_slots,
            sites: Vec::new(),
            position: Vec::new(),
        };
        layout.sites = (0..outer_volume * lanes)
            .map(|i| layout.site_of(i / lanes, i % lanes) as u32)
            .collect();
        layout.position = vec![0; outer_volume * lanes];
        for (i, &x) in layout.sites.iter().enumerate() {
            layout.position[x as usize] = i as u32;
        }
        Ok(layout)
    }

    pub fn volume(&self) -> usize {
        self.dims.iter().product()
    }

    /// Scalars of the main outer sites of one feature (the field proper, without ghosts).
    pub fn main_len(&self) -> usize {
        self.outer_volume * FIELD_COMPONENTS * self.lanes
    }

    /// Whether `other` puts every site in the same main slot and lane (ghost slabs may
    /// differ): then a buffer's main part means the same field to kernels of both layouts.
    pub fn same_sites(&self, other: &SiteLayout) -> bool {
        self.dims == other.dims && self.lanes == other.lanes && self.split == other.split
    }

    fn outer_index(&self, c: [usize; 4]) -> usize {
        let d = &self.outer_dims;
        c[0] + d[0] * (c[1] + d[1] * (c[2] + d[2] * c[3]))
    }

    fn outer_coords(&self, mut o: usize) -> [usize; 4] {
        let mut c = [0; 4];
        for mu in 0..4 {
            c[mu] = o % self.outer_dims[mu];
            o /= self.outer_dims[mu];
        }
        c
    }

    /// Index of an outer site within its slab (all coordinates but the split one).
    fn slab_index(&self, c: [usize; 4]) -> usize {
        let mut idx = 0;
        let mut stride = 1;
        for mu in 0..4 {
            if mu != self.split {
                idx += c[mu] * stride;
                stride *= self.outer_dims[mu];
            }
        }
        idx
    }

    /// The global lexicographic site held by lane `k` of main outer site `o`.
    #[inline]
    pub fn site(&self, o: usize, k: usize) -> usize {
        self.sites[o * self.lanes + k] as usize
    }

    fn site_of(&self, o: usize, k: usize) -> usize {
        let mut c = self.outer_coords(o);
        c[self.split] += k * self.chunk;
        let d = &self.dims;
        c[0] + d[0] * (c[1] + d[1] * (c[2] + d[2] * c[3]))
    }

    /// (outer site, lane) of a global site.
    pub fn outer_lane(&self, site: usize) -> (usize, usize) {
        let mut s = site;
        let mut c = [0; 4];
        for mu in 0..4 {
            c[mu] = s % self.dims[mu];
            s /= self.dims[mu];
        }
        let k = c[self.split] / self.chunk;
        c[self.split] %= self.chunk;
        (self.outer_index(c), k)
    }

    /// The slot holding the field at `x + disp` for every lane of main outer site `o`.
    /// `None` when the layout has no ghost slab for that displacement (a bug in the caller).
    pub fn neighbour_slot(&self, o: usize, disp: [i64; 4]) -> Option<usize> {
        let mut c = self.outer_coords(o);
        for mu in 0..4 {
            if mu != self.split {
                c[mu] = (c[mu] as i64 + disp[mu]).rem_euclid(self.dims[mu] as i64) as usize;
            }
        }
        let l = self.dims[self.split] as i64;
        let mut ds = disp[self.split].rem_euclid(l);
        if ds > l / 2 {
            ds -= l;
        }
        let e = c[self.split] as i64 + ds;
        if (0..self.chunk as i64).contains(&e) {
            c[self.split] = e as usize;
            return Some(self.outer_index(c));
        }
        let g = self.ghost_coords.iter().position(|&x| x == e)?;
        Some(self.outer_volume + g * self.slab + self.slab_index(c))
    }

    /// For every ghost slot: (ghost slot, main source slot, lane rotation). Lane `k` of the ghost
    /// equals lane `(k + r) mod L` of the source.
    pub fn ghost_sources(&self) -> Vec<(usize, usize, usize)> {
        let mut v = Vec::with_capacity(self.ext_slots - self.outer_volume);
        for (g, &e) in self.ghost_coords.iter().enumerate() {
            let src_c = e.rem_euclid(self.chunk as i64) as usize;
            let rot = e.div_euclid(self.chunk as i64).rem_euclid(self.lanes as i64) as usize;
            for o in 0..self.outer_volume {
                let c = self.outer_coords(o);
                if c[self.split] != 0 {
                    continue;
                }
                let mut sc = c;
                sc[self.split] = src_c;
                v.push((
                    self.outer_volume + g * self.slab + self.slab_index(c),
                    self.outer_index(sc),
                    rot,
                ));
            }
        }
        v
    }

    /// Scalars of one feature's buffer.
    pub fn field_len(&self) -> usize {
        self.ext_slots * FIELD_COMPONENTS * self.lanes
    }

    /// Copy boundary slabs into the ghost slots of every feature in `buf` (`n` features).
    /// `ghosts` must come from [`SiteLayout::ghost_sources`] of this layout.
    pub fn fill_ghosts<T: Copy + Send + Sync>(
        &self,
        ghosts: &[(usize, usize, usize)],
        buf: &mut [T],
    ) {
        let l = self.lanes;
        let slot = FIELD_COMPONENTS * l;
        for feat in buf.chunks_mut(self.field_len()) {
            let (main, ghost) = feat.split_at_mut(self.outer_volume * slot);
            // Lane k of the ghost is lane (k + r) mod L of the source. L is a power of two, so
            // the modulus is a mask (this runs before every kernel; a division or a memmove
            // call per 4 lanes showed up in solver profiles).
            debug_assert!(l.is_power_of_two());
            let mask = l - 1;
            ghost.par_chunks_mut(slot).zip(ghosts.par_iter()).with_min_len(64).for_each(
                |(dst, &(_, s, r))| {
                    let src = &main[s * slot..(s + 1) * slot];
                    if r == 0 {
                        dst.copy_from_slice(src);
                        return;
                    }
                    for (d, q) in dst.chunks_exact_mut(l).zip(src.chunks_exact(l)) {
                        for (k, e) in d.iter_mut().enumerate() {
                            *e = q[(k + r) & mask];
                        }
                    }
                },
            );
        }
    }

    /// Reference layout (`n` features of V*12 complex) to AoSoA buffers (ghosts not filled).
    pub fn to_aosoa<T: Real, U: Real>(&self, src: &[Complex<T>], dst: &mut [U]) {
        let l = self.lanes;
        let vol = self.volume();
        let slot = FIELD_COMPONENTS * l;
        let n = src.len() / (vol * 12);
        for f in 0..n {
            let fs = &src[f * vol * 12..(f + 1) * vol * 12];
            let fd =
                &mut dst[f * self.field_len()..f * self.field_len() + self.outer_volume * slot];
            fd.par_chunks_mut(slot).enumerate().for_each(|(o, d)| {
                for k in 0..l {
                    let x = self.site(o, k);
                    for c in 0..12 {
                        let z = fs[x * 12 + c];
                        d[2 * c * l + k] = U::from_f64(z.re.to_f64());
                        d[(2 * c + 1) * l + k] = U::from_f64(z.im.to_f64());
                    }
                }
            });
        }
    }

    /// AoSoA buffers back to the reference layout.
    pub fn from_aosoa<T: Real, U: Real>(&self, src: &[U], dst: &mut [Complex<T>]) {
        let l = self.lanes;
        let vol = self.volume();
        let n = dst.len() / (vol * 12);
        for f in 0..n {
            let fs = &src[f * self.field_len()..(f + 1) * self.field_len()];
            let fd = &mut dst[f * vol * 12..(f + 1) * vol * 12];
            fd.par_chunks_mut(12).enumerate().for_each(|(x, d)| {
                let p = self.position[x] as usize;
                let (o, k) = (p / l, p % l);
                for (c, z) in d.iter_mut().enumerate() {
                    let re = fs[(o * FIELD_COMPONENTS + 2 * c) * l + k].to_f64();
                    let im = fs[(o * FIELD_COMPONENTS + 2 * c + 1) * l + k].to_f64();
                    *z = Complex::new(T::from_f64(re), T::from_f64(im));
                }
            });
        }
    }
}
