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
//!
//! **Half lattice** ([`HalfLayout`], for the even-odd Schur kernels): the same virtual nodes,
//! restricted to the sites of one parity. It needs the split translation to map every site to
//! a site of the same parity, i.e. an *even* sub-lattice extent along the split direction, so
//! an extent divisible by 2 × lanes. Then all lanes of an outer site share the parity and,
//! for every hop, the same neighbour structure; neighbours sit in the other parity's buffer,
//! in one outer slot, lane-rotated when the hop crosses a sub-lattice edge (rotated in
//! registers by the kernels, so half-lattice buffers have no ghost slots). The order of the
//! outer sites within a parity is arbitrary (the kernels go through neighbour tables), so it
//! is simply lexicographic in sub-lattice 0; Grid's "compress x by 2" is one such order.

use super::simd::Precision;
use crate::lattice::Real;
use num_complex::{Complex, Complex64};
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
    /// Global site of every lane of every main outer site, and back (conversions use it).
    map: LaneMap,
}

/// Which reference-layout site (full lattice: the global site; half lattice: the position in
/// the half-lattice vector) every lane of every outer site holds, and back: the one place that
/// converts between reference vectors and AoSoA buffers, for both layouts.
#[derive(Clone, Debug)]
struct LaneMap {
    lanes: usize,
    /// `sites[o * lanes + k]` = reference index held by lane k of outer site o.
    sites: Vec<u32>,
    /// Inverse of `sites`: `position[index] = o * lanes + k`.
    position: Vec<u32>,
}

impl LaneMap {
    fn new(lanes: usize, sites: Vec<u32>) -> Self {
        let mut position = vec![0; sites.len()];
        for (i, &x) in sites.iter().enumerate() {
            position[x as usize] = i as u32;
        }
        LaneMap { lanes, sites, position }
    }

    /// One reference vector (12 complex per site) into the main slots of `dst`.
    fn scatter<T: Real, U: Real>(&self, src: &[Complex<T>], dst: &mut [U]) {
        self.fill(
            dst,
            || (),
            |_, x, z| {
                for (z, s) in z.iter_mut().zip(&src[x * 12..x * 12 + 12]) {
                    *z = Complex64::new(s.re.to_f64(), s.im.to_f64());
                }
            },
        );
    }

    /// The main slots of `dst` from `f(state, index, z)`, which writes the 12 components of
    /// the reference index `index` into `z`: the one loop that puts a site into its lanes
    /// (for a reference vector, and for a vector drawn site by site without a reference copy);
    /// every thread gets its own `init()` state.
    fn fill<U: Real, S>(
        &self,
        dst: &mut [U],
        init: impl Fn() -> S + Sync + Send,
        f: impl Fn(&mut S, usize, &mut [Complex64]) + Sync + Send,
    ) {
        let l = self.lanes;
        let slot = FIELD_COMPONENTS * l;
        dst[..self.sites.len() * FIELD_COMPONENTS]
            .par_chunks_mut(slot)
            .enumerate()
            .with_min_len(16)
            .for_each_init(init, |st, (o, d)| {
                let mut z = [Complex64::new(0.0, 0.0); 12];
                for k in 0..l {
                    f(st, self.sites[o * l + k] as usize, &mut z);
                    for (c, z) in z.iter().enumerate() {
                        d[2 * c * l + k] = U::from_f64(z.re);
                        d[(2 * c + 1) * l + k] = U::from_f64(z.im);
                    }
                }
            });
    }

    /// The main slots of `src` back into one reference vector.
    fn gather<T: Real, U: Real>(&self, src: &[U], dst: &mut [Complex<T>]) {
        let l = self.lanes;
        dst[..self.sites.len() * 12].par_chunks_mut(12).enumerate().for_each(|(x, d)| {
            let p = self.position[x] as usize;
            let (o, k) = (p / l, p % l);
            for (c, z) in d.iter_mut().enumerate() {
                let re = src[(o * FIELD_COMPONENTS + 2 * c) * l + k].to_f64();
                let im = src[(o * FIELD_COMPONENTS + 2 * c + 1) * l + k].to_f64();
                *z = Complex::new(T::from_f64(re), T::from_f64(im));
            }
        });
    }
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
            map: LaneMap::new(lanes, Vec::new()),
        };
        let sites = (0..outer_volume * lanes)
            .map(|i| layout.site_of(i / lanes, i % lanes) as u32)
            .collect();
        layout.map = LaneMap::new(lanes, sites);
        Ok(layout)
    }

    pub fn volume(&self) -> usize {
        self.dims.iter().product()
    }

    /// The same layout with `n` more slots per feature after the ghost slabs: the halo of a
    /// sub-lattice under domain decomposition, filled by a message exchange rather than by
    /// [`SiteLayout::fill_ghosts`] (which leaves them alone). Its slots are `ext_slots..` of
    /// the layout this is called on.
    pub fn with_remote_slots(mut self, n: usize) -> Self {
        self.ext_slots += n;
        self
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
        self.map.sites[o * self.lanes + k] as usize
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
        let vol = self.volume();
        let n = src.len() / (vol * 12);
        for f in 0..n {
            let at = f * self.field_len();
            let fd = &mut dst[at..at + self.main_len()];
            self.map.scatter(&src[f * vol * 12..(f + 1) * vol * 12], fd);
        }
    }

    /// The main part of one feature of `dst`, site by site: `f(state, site, z)` writes the 12
    /// components of `site` into `z` (in parallel, in no particular order; each thread
    /// with its own `init()` state).
    pub fn fill_sites<U: Real, S>(
        &self,
        dst: &mut [U],
        init: impl Fn() -> S + Sync + Send,
        f: impl Fn(&mut S, usize, &mut [Complex64]) + Sync + Send,
    ) {
        self.map.fill(&mut dst[..self.main_len()], init, f);
    }

    /// γ5 on the main part of one feature of `buf`, in place: in the chiral basis
    /// diag(1, 1, −1, −1) in spin, i.e. the second half of every site slot (spins 2 and 3)
    /// negated. What a backward pass through D† = γ5 D γ5 needs on the kernels' buffers.
    pub fn gamma5_main<U: Real>(&self, buf: &mut [U]) {
        let slot = FIELD_COMPONENTS * self.lanes;
        buf[..self.main_len()].par_chunks_mut(slot).with_min_len(64).for_each(|s| {
            s[slot / 2..].iter_mut().for_each(|x| *x = -*x);
        });
    }

    /// AoSoA buffers back to the reference layout.
    pub fn from_aosoa<T: Real, U: Real>(&self, src: &[U], dst: &mut [Complex<T>]) {
        let vol = self.volume();
        let n = dst.len() / (vol * 12);
        for f in 0..n {
            let fs = &src[f * self.field_len()..(f + 1) * self.field_len()];
            self.map.gather(fs, &mut dst[f * vol * 12..(f + 1) * vol * 12]);
        }
    }

    /// The main slot and lane rotation holding `x + disp` for every lane of main outer site
    /// `o`: lane k's neighbour is lane `(k + rot) mod lanes` of that slot. This is what a
    /// kernel that rotates lanes in registers (instead of reading ghost slabs) needs; it works
    /// without ghost slabs for any displacement.
    pub fn neighbour_lane(&self, o: usize, disp: [i64; 4]) -> (usize, usize) {
        let mut c = self.outer_coords(o);
        let mut rot = 0;
        for mu in 0..4 {
            let l = self.dims[mu] as i64;
            let y = (c[mu] as i64 + disp[mu]).rem_euclid(l) as usize;
            if mu == self.split {
                rot = y / self.chunk;
                c[mu] = y % self.chunk;
            } else {
                c[mu] = y;
            }
        }
        (self.outer_index(c), rot)
    }
}

/// Why a lattice has no half-lattice (checkerboarded) SIMD layout.
#[derive(Debug, thiserror::Error)]
pub enum HalfLayoutError {
    #[error(
        "no lattice extent of {}x{}x{}x{} is a multiple of {} (2 x the {lanes} SIMD lanes of {ty}); \
         the even-odd JIT layout splits one direction into {lanes} sub-lattices of even extent, \
         so that all lanes of a vector hold sites of one parity",
        dims[0], dims[1], dims[2], dims[3], 2 * lanes
    )]
    NoSplit { dims: [usize; 4], lanes: usize, ty: &'static str },
    #[error("the two parities do not partition the {volume} sites of the lattice: {what}")]
    NotAPartition { volume: usize, what: String },
}

/// The virtual-node layout of the two parities of a lattice (module doc): outer site `o` of
/// parity `p` holds `lanes` sites of parity `p`, one per sub-lattice. Buffers of both parities
/// have the same size, [`HalfLayout::main_len`] scalars (no ghost slots).
#[derive(Clone, Debug)]
pub struct HalfLayout {
    pub dims: [usize; 4],
    pub lanes: usize,
    /// Direction cut into `lanes` sub-lattices of even extent (the last one that allows it).
    pub split: usize,
    /// Extent of one sub-lattice along `split` (even).
    pub chunk: usize,
    /// Outer sites of one parity (V / (2 lanes)): the work items of every half-lattice kernel.
    pub outer_volume: usize,
    /// Per parity: the global site of lane k of outer site o at `[o * lanes + k]`.
    sites: [Vec<u32>; 2],
    /// Per parity: position in the reference half-lattice vector of each lane, and back.
    maps: [LaneMap; 2],
    /// Parity and outer index of every global site of sub-lattice 0 (`None` elsewhere).
    outer_of: Vec<Option<(u8, u32)>>,
}

impl HalfLayout {
    /// Lays out the two parities for the lanes of `precision`. `parity_sites[p]` lists the
    /// global sites of parity `p` in the order of the reference half-lattice vectors (the
    /// checkerboard's; the layout takes the partition and its order from the caller instead
    /// of defining its own).
    pub fn new(
        dims: [usize; 4],
        precision: Precision,
        parity_sites: [&[u32]; 2],
    ) -> Result<Self, HalfLayoutError> {
        let lanes = precision.lanes();
        let volume: usize = dims.iter().product();
        let split = (0..4)
            .rev()
            .find(|&mu| dims[mu] % (2 * lanes) == 0)
            .ok_or(HalfLayoutError::NoSplit { dims, lanes, ty: precision.name() })?;
        let bad = |what: String| HalfLayoutError::NotAPartition { volume, what };
        // member[x] = (parity, position in its half-lattice vector).
        let mut member: Vec<Option<(u8, u32)>> = vec![None; volume];
        for (p, list) in parity_sites.iter().enumerate() {
            if list.len() * 2 != volume {
                return Err(bad(format!("parity {p} has {} sites", list.len())));
            }
            for (i, &x) in list.iter().enumerate() {
                let slot = member.get_mut(x as usize).ok_or_else(|| bad(format!("site {x}")))?;
                if slot.is_some() {
                    return Err(bad(format!("site {x} is listed twice")));
                }
                *slot = Some((p as u8, i as u32));
            }
        }
        let chunk = dims[split] / lanes;
        let step: usize = dims[..split].iter().product::<usize>() * chunk;
        let mut sites: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
        let mut refs: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
        let mut outer_of = vec![None; volume];
        for x in 0..volume {
            let xs = (x / dims[..split].iter().product::<usize>()) % dims[split];
            if xs >= chunk {
                continue;
            }
            let (p, _) = member[x].ok_or_else(|| bad(format!("site {x} has no parity")))?;
            outer_of[x] = Some((p, (sites[p as usize].len() / lanes) as u32));
            for k in 0..lanes {
                // Lane k: the same site translated by k sub-lattice extents along `split`.
                let y = x + k * step;
                match member[y] {
                    Some((q, i)) if q == p => {
                        sites[p as usize].push(y as u32);
                        refs[p as usize].push(i);
                    }
                    _ => return Err(bad(format!("sites {x} and {y} share a vector"))),
                }
            }
        }
        if sites[0].len() != sites[1].len() {
            return Err(bad("the parities split sub-lattice 0 unevenly".into()));
        }
        let outer_volume = sites[0].len() / lanes;
        let [r0, r1] = refs;
        Ok(HalfLayout {
            dims,
            lanes,
            split,
            chunk,
            outer_volume,
            sites,
            maps: [LaneMap::new(lanes, r0), LaneMap::new(lanes, r1)],
            outer_of,
        })
    }

    pub fn volume(&self) -> usize {
        self.dims.iter().product()
    }

    /// Scalars of one half-lattice buffer (main slots only; there are no ghosts).
    pub fn main_len(&self) -> usize {
        self.outer_volume * FIELD_COMPONENTS * self.lanes
    }

    /// Complex numbers of a reference half-lattice vector (12 V / 2).
    pub fn half_len(&self) -> usize {
        self.volume() * 6
    }

    /// The global site held by lane `k` of outer site `o` of parity `p`.
    #[inline]
    pub fn site(&self, p: usize, o: usize, k: usize) -> usize {
        self.sites[p][o * self.lanes + k] as usize
    }

    /// Where `x + disp` lies for every lane of outer site `o` of parity `p`: (its parity,
    /// outer site, lane rotation); lane k's neighbour is lane `(k + rot) mod lanes`.
    pub fn neighbour(&self, p: usize, o: usize, disp: [i64; 4]) -> (usize, usize, usize) {
        let x = self.site(p, o, 0);
        let mut c = [0usize; 4];
        let mut s = x;
        for mu in 0..4 {
            c[mu] = s % self.dims[mu];
            s /= self.dims[mu];
        }
        let mut rot = 0;
        for mu in 0..4 {
            let y = (c[mu] as i64 + disp[mu]).rem_euclid(self.dims[mu] as i64) as usize;
            if mu == self.split {
                rot = y / self.chunk;
                c[mu] = y % self.chunk;
            } else {
                c[mu] = y;
            }
        }
        let d = &self.dims;
        let y0 = c[0] + d[0] * (c[1] + d[1] * (c[2] + d[2] * c[3]));
        // Every site of sub-lattice 0 has an entry (`new` visited them all).
        let (q, o2) = self.outer_of[y0].expect("sub-lattice 0 site");
        (q as usize, o2 as usize, rot)
    }

    /// A reference half-lattice vector of parity `p` into the AoSoA buffer `dst`.
    pub fn to_aosoa<T: Real, U: Real>(&self, p: usize, src: &[Complex<T>], dst: &mut [U]) {
        self.maps[p].scatter(src, dst);
    }

    /// An AoSoA buffer of parity `p` back to a reference half-lattice vector.
    pub fn from_aosoa<T: Real, U: Real>(&self, p: usize, src: &[U], dst: &mut [Complex<T>]) {
        self.maps[p].gather(src, dst);
    }
}
