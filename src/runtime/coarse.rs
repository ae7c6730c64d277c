//! Executors of the multigrid coarse space on their JIT kernels: restriction P† and
//! prolongation P between fine fields in the Dirac kernel's AoSoA layout and coarse vectors
//! ([`JitBlockTransfer`], kernels from `codegen::block`), and the Galerkin coarse operator D_c
//! and D_c† ([`JitCoarseOperator`], kernel from `codegen::coarse`).
//!
//! They fill what the kernels read — the basis in the kernel's box-major layout, the stencil
//! coefficients split by columns — from the plain references [`BlockBasis`] and
//! [`CoarseOperator`], so both share one definition of the coarse space, and they fold the
//! kernels' lane-expanded coarse output into ordinary coarse vectors (`X * n_basis + k`,
//! interleaved complex). The solvers see them through the `solve` traits: [`CoarseSpace`] and
//! [`NativeCoarseSpace`], [`LinearOperator`] and [`AdjointOperator`].

use super::RuntimeError;
use crate::codegen::block::{self, BlockDesc, BlockKernels};
use crate::codegen::coarse::{self as coarse_kernel, CoarseDesc, CoarseKernels};
use crate::codegen::jit::Arg;
use crate::codegen::lattice_layout::{FIELD_COMPONENTS, SiteLayout};
use crate::codegen::plan::KernelPlan;
use crate::codegen::simd::Element;
use crate::lattice::blocks::BlockBasis;
use crate::lattice::coarse::{CoarseOperator, TERMS};
use crate::solve::multigrid::{CoarseSpace, NativeCoarseSpace};
use crate::solve::{AdjointOperator, LinearOperator};
use num_complex::Complex;
use std::sync::Mutex;

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// P† and P on the JIT kernels for one basis and one fine layout, in precision `T`.
pub struct JitBlockTransfer<T: Element> {
    layout: SiteLayout,
    desc: BlockDesc,
    compiled: BlockKernels,
    /// The basis in the kernels' layout `[box][site in box][k][24][lane]`.
    basis: Vec<T>,
    /// `lane_block[box * lanes + lane]` = the coarse site that lane of that box lies in.
    lane_block: Vec<u32>,
    n_basis: usize,
    coarse_volume: usize,
    /// (lane-expanded coarse buffer, one fine AoSoA buffer for the reference-layout calls).
    scratch: Mutex<(Vec<T>, Vec<T>)>,
}

impl<T: Element> JitBlockTransfer<T> {
    /// Lays out `basis` for the kernels on the fine `layout` (the Dirac operator's, so that
    /// the mixed-precision solver's vectors are used as they are) and compiles P† and P.
    pub fn new(basis: &BlockBasis, layout: &SiteLayout) -> Result<Self, RuntimeError> {
        let n = basis.n_basis();
        Self::with_vectors(basis.blocking(), n, layout, |site, out| {
            for k in 0..n {
                out[k * 12..(k + 1) * 12]
                    .copy_from_slice(&basis.vector(k)[site * 12..site * 12 + 12]);
            }
        })
    }

    /// The same kernels for `n_basis` fine vectors given site by site: `vectors(site, out)`
    /// writes u_k(site) (12 complex numbers) to `out[k * 12..(k + 1) * 12]`. Gauge-equivariant
    /// pooling uses this with the 12 rows of its matrix G(x) (conjugated), which need not be
    /// orthonormal: then P† is the pooling and P the unpooling.
    pub fn with_vectors(
        blocking: &crate::lattice::blocks::Blocking,
        n_basis: usize,
        layout: &SiteLayout,
        vectors: impl Fn(usize, &mut [num_complex::Complex64]) + Sync,
    ) -> Result<Self, RuntimeError> {
        if layout.dims != blocking.fine_dims() || layout.lanes != T::PRECISION.lanes() {
            return Err(RuntimeError::Shape(format!(
                "block transfer: the layout is {:?} with {} lanes, the basis is on {:?} for {}",
                layout.dims,
                layout.lanes,
                blocking.fine_dims(),
                T::PRECISION.name()
            )));
        }
        let (l, split) = (layout.lanes, layout.split);
        let bdims = blocking.block_dims();
        // Every lane must stay in one block over a box: across the split direction a box is a
        // block; along it, the common divisor of the block and the sub-lattice extents.
        let boxes: [usize; 4] =
            std::array::from_fn(
                |mu| if mu == split { gcd(bdims[mu], layout.chunk) } else { bdims[mu] },
            );
        let desc = BlockDesc {
            outer_dims: layout.outer_dims,
            boxes,
            ext_slots: layout.ext_slots,
            n_basis,
            precision: T::PRECISION,
        };
        let mut lane_block = vec![0u32; desc.n_boxes() * l];
        for_box_sites(layout, &desc, |bx, i, _, lane, site| {
            let x = blocking.block_of(site) as u32;
            if i == 0 {
                lane_block[bx * l + lane] = x;
            } else if lane_block[bx * l + lane] != x {
                return Err(RuntimeError::Shape(format!(
                    "internal: box {bx} lane {lane} spans blocks {} and {x}",
                    lane_block[bx * l + lane]
                )));
            }
            Ok(())
        })?;
        let compiled = block::compile(&desc, false)?;
        let scratch =
            Mutex::new((vec![T::zero(); desc.expanded_len()], vec![T::zero(); layout.field_len()]));
        let mut t = JitBlockTransfer {
            layout: layout.clone(),
            desc,
            compiled,
            basis: Vec::new(),
            lane_block,
            n_basis,
            coarse_volume: blocking.coarse_volume(),
            scratch,
        };
        t.set_vectors(vectors);
        Ok(t)
    }

    /// Replaces the basis (same blocking, size and layout; the kernels stay): what pooling
    /// does whenever its weights change.
    pub fn set_vectors(&mut self, vectors: impl Fn(usize, &mut [num_complex::Complex64]) + Sync) {
        let (l, n) = (self.layout.lanes, self.n_basis);
        let site_len = n * FIELD_COMPONENTS * l;
        let bvol = self.desc.box_volume();
        let mut data = std::mem::take(&mut self.basis);
        data.resize(self.desc.basis_len(), T::zero());
        let layout = &self.layout;
        let desc = &self.desc;
        // One box per task: the boxes' slices of the basis are disjoint.
        use rayon::prelude::*;
        data.par_chunks_mut(bvol * site_len).enumerate().for_each(|(bx, chunk)| {
            let mut u = vec![num_complex::Complex64::new(0.0, 0.0); n * 12];
            let _ = for_box_sites_of(layout, desc, bx, |i, lane, site| {
                vectors(site, &mut u);
                let base = i * site_len;
                for k in 0..n {
                    for c in 0..12 {
                        let z = u[k * 12 + c];
                        chunk[base + (k * FIELD_COMPONENTS + 2 * c) * l + lane] = T::from_f64(z.re);
                        chunk[base + (k * FIELD_COMPONENTS + 2 * c + 1) * l + lane] =
                            T::from_f64(z.im);
                    }
                }
                Ok(())
            });
        });
        self.basis = data;
    }

    pub fn plans(&self) -> &[KernelPlan] {
        &self.compiled.plans
    }

    /// The fine layout the kernels read and write.
    pub fn layout(&self) -> &SiteLayout {
        &self.layout
    }

    /// The kernels' shape (boxes, basis size).
    pub fn desc(&self) -> &BlockDesc {
        &self.desc
    }

    /// Complex numbers of a coarse vector.
    pub fn coarse_len(&self) -> usize {
        self.coarse_volume * self.n_basis
    }

    fn check_coarse(&self, len: usize) -> Result<(), RuntimeError> {
        if len != self.coarse_len() {
            return Err(RuntimeError::Shape(format!(
                "coarse vector of {len} complex numbers, the coarse space has {}",
                self.coarse_len()
            )));
        }
        Ok(())
    }

    /// coarse = P† fine, `fine` an AoSoA buffer of the layout (main part read).
    pub fn restrict_aosoa(
        &self,
        fine: &[T],
        coarse: &mut [Complex<T>],
    ) -> Result<(), RuntimeError> {
        self.check_coarse(coarse.len())?;
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let expanded = &mut guard.0;
        let k = self.compiled.kernels.kernel(self.compiled.restrict);
        k.call_parallel(&mut [Arg::ro(fine), Arg::ro(&self.basis), Arg::rw(expanded)], 1)?;
        let (l, n) = (self.layout.lanes, self.n_basis);
        coarse.iter_mut().for_each(|z| *z = Complex::new(T::zero(), T::zero()));
        for (bx, e) in expanded.chunks_exact(n * 2 * l).enumerate() {
            for lane in 0..l {
                let x = self.lane_block[bx * l + lane] as usize;
                for kk in 0..n {
                    coarse[x * n + kk] +=
                        Complex::new(e[2 * kk * l + lane], e[(2 * kk + 1) * l + lane]);
                }
            }
        }
        Ok(())
    }

    /// The coarse vector lane-expanded as the kernels read it, `E[box][k][re/im][lane]`
    /// (`expanded` of [`BlockDesc::expanded_len`] scalars).
    pub fn expand(&self, coarse: &[Complex<T>], expanded: &mut [T]) -> Result<(), RuntimeError> {
        self.check_coarse(coarse.len())?;
        if expanded.len() != self.desc.expanded_len() {
            return Err(RuntimeError::Shape("block transfer: expanded buffer size".into()));
        }
        let (l, n) = (self.layout.lanes, self.n_basis);
        for (bx, e) in expanded.chunks_exact_mut(n * 2 * l).enumerate() {
            for lane in 0..l {
                let x = self.lane_block[bx * l + lane] as usize;
                for kk in 0..n {
                    let z = coarse[x * n + kk];
                    e[2 * kk * l + lane] = z.re;
                    e[(2 * kk + 1) * l + lane] = z.im;
                }
            }
        }
        Ok(())
    }

    /// The fine site of every (box, site in box, lane), in that order: the kernels' box-major
    /// view of the lattice, for tables that follow it.
    pub fn box_sites(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.desc.n_boxes() * self.desc.box_volume() * 4);
        let _ = for_box_sites(&self.layout, &self.desc, |_, _, _, _, site| {
            out.push(site as u32);
            Ok(())
        });
        out
    }

    /// fine = P coarse on the main part of an AoSoA buffer of the layout.
    pub fn prolong_aosoa(&self, coarse: &[Complex<T>], fine: &mut [T]) -> Result<(), RuntimeError> {
        self.check_coarse(coarse.len())?;
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let expanded = &mut guard.0;
        self.expand(coarse, expanded)?;
        let k = self.compiled.kernels.kernel(self.compiled.prolong);
        k.call_parallel(&mut [Arg::ro(expanded), Arg::ro(&self.basis), Arg::rw(fine)], 1)?;
        Ok(())
    }

    fn check_fine(&self, len: usize) {
        let n = self.layout.volume() * 12;
        assert!(len == n, "block transfer: fine vectors must have length 12 V = {n} (got {len})");
    }
}

/// Every (site in box `i`, lane, fine site) of box `bx` of the block kernels' layout.
fn for_box_sites_of(
    layout: &SiteLayout,
    desc: &BlockDesc,
    bx: usize,
    mut f: impl FnMut(usize, usize, usize) -> Result<(), RuntimeError>,
) -> Result<(), RuntimeError> {
    let od = layout.outer_dims;
    let outer_index = |c: [usize; 4]| c[0] + od[0] * (c[1] + od[1] * (c[2] + od[2] * c[3]));
    let bc = unlex(bx, desc.box_dims());
    for i in 0..desc.box_volume() {
        let ic = unlex(i, desc.boxes);
        let o = outer_index(std::array::from_fn(|mu| bc[mu] * desc.boxes[mu] + ic[mu]));
        for lane in 0..layout.lanes {
            f(i, lane, layout.site(o, lane))?;
        }
    }
    Ok(())
}

/// [`for_box_sites_of`] over every box: `f(box, i, outer site, lane, fine site)`.
fn for_box_sites(
    layout: &SiteLayout,
    desc: &BlockDesc,
    mut f: impl FnMut(usize, usize, usize, usize, usize) -> Result<(), RuntimeError>,
) -> Result<(), RuntimeError> {
    for bx in 0..desc.n_boxes() {
        for_box_sites_of(layout, desc, bx, |i, lane, site| f(bx, i, 0, lane, site))?;
    }
    Ok(())
}

/// Lexicographic coordinates (x fastest) of index `i` in a box of extents `dims`.
fn unlex(mut i: usize, dims: [usize; 4]) -> [usize; 4] {
    let mut c = [0; 4];
    for mu in 0..4 {
        c[mu] = i % dims[mu];
        i /= dims[mu];
    }
    c
}

/// On reference-layout vectors (converted to the kernels' layout and back). A kernel refusing
/// buffers sized from its own layout is a bug, hence the panic.
impl<T: Element> CoarseSpace<T> for JitBlockTransfer<T> {
    fn fine_len(&self) -> usize {
        self.layout.volume() * 12
    }
    fn coarse_len(&self) -> usize {
        JitBlockTransfer::coarse_len(self)
    }
    fn restrict(&self, fine: &[Complex<T>], coarse: &mut [Complex<T>]) {
        self.check_fine(fine.len());
        let mut buf = {
            let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut guard.1)
        };
        self.layout.to_aosoa(fine, &mut buf);
        let r = self.restrict_aosoa(&buf, coarse);
        self.scratch.lock().unwrap_or_else(|e| e.into_inner()).1 = buf;
        if let Err(e) = r {
            panic!("block transfer: restriction failed: {e}");
        }
    }
    fn prolong(&self, coarse: &[Complex<T>], fine: &mut [Complex<T>]) {
        self.check_fine(fine.len());
        let mut buf = {
            let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut guard.1)
        };
        let r = self.prolong_aosoa(coarse, &mut buf);
        self.layout.from_aosoa(&buf, fine);
        self.scratch.lock().unwrap_or_else(|e| e.into_inner()).1 = buf;
        if let Err(e) = r {
            panic!("block transfer: prolongation failed: {e}");
        }
    }
}

impl NativeCoarseSpace for JitBlockTransfer<f32> {
    fn coarse_len(&self) -> usize {
        JitBlockTransfer::coarse_len(self)
    }
    fn restrict(&self, fine: &[f32], coarse: &mut [Complex<f32>]) -> Result<(), String> {
        self.restrict_aosoa(fine, coarse).map_err(|e| e.to_string())
    }
    fn prolong(&self, coarse: &[Complex<f32>], fine: &mut [f32]) -> Result<(), String> {
        self.prolong_aosoa(coarse, fine).map_err(|e| e.to_string())
    }
}

/// The coarse operator on its JIT kernel, in precision `T`.
pub struct JitCoarseOperator<T: Element> {
    desc: CoarseDesc,
    compiled: CoarseKernels,
    coeffs: Vec<T>,
    coeffs_dagger: Vec<T>,
    /// Split the coarse sites over the rayon pool (worth it only when a site's work outweighs
    /// the fork; see `benches/multigrid.rs`).
    pub parallel: bool,
}

/// Below this many flops per application the coarse kernel runs on the calling thread: a
/// rayon fork costs a few microseconds, the whole 2x2x2x4, n = 12 operator about 20.
const PARALLEL_MIN_FLOPS: f64 = 4e6;

impl<T: Element> JitCoarseOperator<T> {
    /// Lays out the stencil of `op` (and of its adjoint) for the kernel and compiles it.
    pub fn new(op: &CoarseOperator) -> Result<Self, RuntimeError> {
        let desc = CoarseDesc::galerkin(op.geometry().dims, op.n_basis(), T::PRECISION);
        let n = op.n_basis();
        let fill = |src: &[num_complex::Complex64]| {
            let mut c = vec![T::zero(); desc.coeff_len()];
            for x in 0..desc.volume() {
                for d in 0..TERMS {
                    for i in 0..n {
                        for j in 0..n {
                            let z = src[((x * TERMS + d) * n + i) * n + j];
                            let at = desc.coeff_index(x, d, i, j);
                            c[at] = T::from_f64(z.re);
                            c[at + desc.padded()] = T::from_f64(z.im);
                        }
                    }
                }
            }
            c
        };
        let coeffs = fill(op.coeffs());
        let coeffs_dagger = fill(&op.dagger_coeffs());
        let compiled = coarse_kernel::compile(&desc, false)?;
        let parallel = desc.flops() >= PARALLEL_MIN_FLOPS;
        Ok(JitCoarseOperator { desc, compiled, coeffs, coeffs_dagger, parallel })
    }

    pub fn plans(&self) -> &[KernelPlan] {
        &self.compiled.plans
    }

    pub fn desc(&self) -> &CoarseDesc {
        &self.desc
    }

    /// out = D_c inp (or D_c† inp).
    pub fn try_apply(
        &self,
        dagger: bool,
        out: &mut [Complex<T>],
        inp: &[Complex<T>],
    ) -> Result<(), RuntimeError> {
        let n = self.desc.volume() * self.desc.n_basis;
        if out.len() != n || inp.len() != n {
            return Err(RuntimeError::Shape(format!(
                "coarse operator: vectors must have length {n} (got out {}, in {})",
                out.len(),
                inp.len()
            )));
        }
        let k = self.compiled.kernels.kernel(self.compiled.stencil);
        let c = if dagger { &self.coeffs_dagger } else { &self.coeffs };
        let mut args = [Arg::ro(inp), Arg::rw(out), Arg::ro(c)];
        if self.parallel {
            k.call_parallel(&mut args, 1)?;
        } else {
            k.call(&mut args, 0, self.desc.volume())?;
        }
        Ok(())
    }
}

/// The solver interface cannot return an error; every solver checks lengths against `len()`
/// first, so a failure here is a caller bypassing that contract.
impl<T: Element> LinearOperator<T> for JitCoarseOperator<T> {
    fn len(&self) -> usize {
        self.desc.volume() * self.desc.n_basis
    }
    fn apply(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        if let Err(e) = self.try_apply(false, out, inp) {
            panic!("JIT coarse operator: {e}");
        }
    }
}

impl<T: Element> AdjointOperator<T> for JitCoarseOperator<T> {
    fn apply_dagger(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        if let Err(e) = self.try_apply(true, out, inp) {
            panic!("JIT coarse operator: {e}");
        }
    }
}
