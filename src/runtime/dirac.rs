//! The Wilson-clover operator D (and D†) running on its JIT kernel (`codegen::dirac`): this
//! executor builds what the kernel reads — links with the boundary phases folded in, neighbour
//! offsets, packed clover blocks — in the kernel's SIMD layout from the plain reference
//! [`WilsonClover`], so that both share one definition of the physics, and runs the kernel on
//! both cores.
//!
//! It is seen by the solvers through their traits only: [`LinearOperator`]/[`AdjointOperator`]
//! on vectors in the reference layout (`site*12 + spin*3 + colour`), and [`NativeOperator`] on
//! f32 vectors in its own layout, so a mixed-precision solver iteration runs the kernel with no
//! layout conversion and touches the f64 reference layout only once per restart.

use super::RuntimeError;
use super::transport::neighbour_offset;
use crate::codegen::dirac::{self, CLOVER_COMPONENTS, DiracDesc, DiracKernels, LinkStorage, hops};
use crate::codegen::jit::{Arg, CompiledKernels};
use crate::codegen::lattice_layout::{FIELD_COMPONENTS, SiteLayout};
use crate::codegen::plan::KernelPlan;
use crate::codegen::simd::Element;
use crate::lattice::gauge::GaugeField;
use crate::lattice::wilson::{CloverBlock, DiracParams, WilsonClover};
use crate::solve::{AdjointOperator, LinearOperator, NativeOperator};
use num_complex::{Complex, Complex64};
use std::sync::Mutex;

/// Compile options of the Dirac operator.
#[derive(Clone, Debug, Default)]
pub struct DiracOptions {
    /// Keep CLIF and machine-code listings (for `symc inspect --asm`).
    pub keep_listings: bool,
    /// How the kernels read the links; `None`: [`LinkStorage::for_precision`].
    pub links: Option<LinkStorage>,
}

impl DiracOptions {
    /// The link storage of kernels in precision `T`.
    pub fn link_storage<T: Element>(&self) -> LinkStorage {
        self.links.unwrap_or(LinkStorage::for_precision(T::PRECISION))
    }
}

/// The Wilson-clover operator compiled to native code for one gauge field, in precision `T`.
pub struct JitWilsonClover<T: Element> {
    layout: SiteLayout,
    compiled: DiracKernels,
    links: Vec<T>,
    neighbours: Vec<i32>,
    clover: Vec<T>,
    /// Reused AoSoA buffers (input, output), so `apply` does not allocate.
    scratch: Mutex<(Vec<T>, Vec<T>)>,
}

impl<T: Element> JitWilsonClover<T> {
    /// Build links, neighbour tables and clover blocks and compile D and D†.
    pub fn new(
        gauge: &GaugeField,
        params: &DiracParams,
        opts: &DiracOptions,
    ) -> Result<Self, RuntimeError> {
        let reference = WilsonClover::<f64>::new(gauge, params);
        // Ghost slabs for the 8 hops: the kernel does not read them (it rotates lanes in
        // registers), but callers that share this layout with networks (which do) get them.
        let disps: Vec<[i64; 4]> = (0..8).map(hop_displacement).collect();
        let layout = SiteLayout::new(gauge.dims(), T::PRECISION, &disps)
            .map_err(|e| RuntimeError::Shape(e.to_string()))?;
        let (l, vo) = (layout.lanes, layout.outer_volume);
        let mut rotation = [0usize; 8];
        let storage = opts.link_storage::<T>();
        let site = |o: usize, k: usize| layout.site(o, k);
        let HopTables { links, neighbours } = hop_tables(
            &reference,
            (vo, l),
            site,
            |o, disp| Ok(layout.neighbour_lane(o, disp)),
            &mut rotation,
            storage,
        )?;
        let clover = block_table(reference.clover_packed(), (vo, l), site);
        let desc = DiracDesc {
            outer_volume: vo,
            rotation,
            ext_slots: layout.ext_slots,
            precision: T::PRECISION,
            links: storage,
        };
        let compiled = dirac::compile(&desc, opts.keep_listings)?;
        let n = layout.field_len();
        Ok(JitWilsonClover {
            layout,
            compiled,
            links,
            neighbours,
            clover,
            scratch: Mutex::new((vec![T::zero(); n], vec![T::zero(); n])),
        })
    }

    pub fn plans(&self) -> &[KernelPlan] {
        &self.compiled.plans
    }

    pub fn kernels(&self) -> &CompiledKernels {
        &self.compiled.kernels
    }

    /// Vector length 12 V.
    pub fn vector_len(&self) -> usize {
        self.layout.volume() * 12
    }

    /// The AoSoA layout the kernel works in (for callers that keep vectors in it).
    pub fn layout(&self) -> &SiteLayout {
        &self.layout
    }

    /// D (or D†) directly on AoSoA buffers of [`SiteLayout::field_len`] scalars, on both
    /// cores. No layout conversion; the kernel reads only the main slots of `inp` (lane-crossing
    /// neighbours are rotated in registers), so its ghost slabs need not be filled.
    pub fn apply_aosoa(&self, dagger: bool, out: &mut [T], inp: &[T]) -> Result<(), RuntimeError> {
        let c = &self.compiled;
        let k = c.kernels.kernel(if dagger { c.ddag } else { c.d });
        k.call_parallel(
            &mut [
                Arg::ro(inp),
                Arg::ro(inp),
                Arg::rw(out),
                Arg::ro(&self.links),
                Arg::ro(&self.neighbours),
                Arg::ro(&self.clover),
            ],
            16,
        )?;
        Ok(())
    }

    fn run(&self, dagger: bool, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        let n = self.vector_len();
        assert!(
            out.len() == n && inp.len() == n,
            "JIT Wilson-clover: vectors must have length 12 V = {n} (got out {}, in {})",
            out.len(),
            inp.len()
        );
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = &mut *guard;
        self.layout.to_aosoa(inp, a);
        // The buffers are sized from the same layout as the kernel spec, so a refusal is a bug.
        if let Err(e) = self.apply_aosoa(dagger, b, a) {
            panic!("JIT Wilson-clover kernel refused its own buffers: {e}");
        }
        self.layout.from_aosoa(b, out);
    }
}

/// The displacement of hop `h` (in [`hops`] order).
pub(crate) fn hop_displacement(h: usize) -> [i64; 4] {
    let (mu, fwd) = hops()[h];
    let mut d = [0i64; 4];
    d[mu] = if fwd { 1 } else { -1 };
    d
}

/// What the site kernels read about the hops of a layout's output sites.
pub(crate) struct HopTables<T> {
    /// `[outer][hop][9 entries][re/im][lane]`, boundary phases folded in: U_mu(x) for a
    /// forward hop, U_mu(x - mu) untransposed for a backward one (the kernel conjugates).
    /// [`LinkStorage::TwoRows`]: the first 6 entries, then det(U) as a seventh.
    pub links: Vec<T>,
    /// `[outer][hop]` byte offset of the neighbour slot in the input buffer, bit 0 set when
    /// the neighbour's lanes must be rotated.
    pub neighbours: Vec<i32>,
}

/// Hop tables for the `(outer volume, lanes)` output sites `site(o, k)` (global sites) of a
/// layout whose `neighbour(o, disp)` gives the main slot and lane rotation of `x + disp`.
/// Every hop crosses lanes with one rotation, whatever the site (the kernels bake it in):
/// `rotation` collects it, and may already hold the rotations of another layout (the other
/// parity) that the same kernels serve; a contradiction is an error.
pub(crate) fn hop_tables<T: Element>(
    reference: &WilsonClover<f64>,
    (vo, l): (usize, usize),
    site: impl Fn(usize, usize) -> usize,
    neighbour: impl Fn(usize, [i64; 4]) -> Result<(usize, usize), RuntimeError>,
    rotation: &mut [usize; 8],
    storage: LinkStorage,
) -> Result<HopTables<T>, RuntimeError> {
    let geom = reference.geometry();
    let slot_bytes = FIELD_COMPONENTS * l * std::mem::size_of::<T>();
    let per = storage.reals();
    let mut links = vec![T::zero(); 8 * vo * per * l];
    let mut neighbours = vec![0i32; vo * 8];
    for o in 0..vo {
        for (h, &(mu, fwd)) in hops().iter().enumerate() {
            let (main, rot) = neighbour(o, hop_displacement(h))?;
            // A rotated neighbour: point at its main slot, flag bit 0, let the kernel rotate.
            let flag = if rot == 0 {
                0
            } else {
                if rotation[h] != 0 && rotation[h] != rot {
                    return Err(RuntimeError::Shape(format!(
                        "hop {h} crosses lanes with two rotations ({} and {rot})",
                        rotation[h]
                    )));
                }
                rotation[h] = rot;
                1
            };
            neighbours[o * 8 + h] = neighbour_offset(main, slot_bytes)? | flag;
            for k in 0..l {
                let x = site(o, k);
                let u = if fwd {
                    reference.links()[x * 4 + mu]
                } else {
                    reference.links()[geom.dn(x, mu) * 4 + mu]
                };
                let mut put = |idx: usize, z: Complex64| {
                    let base = ((o * 8 + h) * per + 2 * idx) * l + k;
                    links[base] = T::from_f64(z.re);
                    links[base + l] = T::from_f64(z.im);
                };
                let rows = match storage {
                    LinkStorage::Full => 3,
                    LinkStorage::TwoRows => 2,
                };
                for a in 0..rows {
                    for b in 0..3 {
                        put(a * 3 + b, u.m[a][b]);
                    }
                }
                if storage == LinkStorage::TwoRows {
                    // det(U) = phi^3 for a link phi U with U in SU(3).
                    put(6, u.det());
                }
            }
        }
    }
    Ok(HopTables { links, neighbours })
}

/// Both packed Hermitian 6x6 blocks (`blocks[site * 2 + chirality]`: the clover term or its
/// inverse) of the `(outer volume, lanes)` sites `site(o, k)`, `[outer][2][36][lane]`.
pub(crate) fn block_table<T: Element>(
    blocks: &[CloverBlock<f64>],
    (vo, l): (usize, usize),
    site: impl Fn(usize, usize) -> usize,
) -> Vec<T> {
    let mut out = vec![T::zero(); vo * CLOVER_COMPONENTS * l];
    for o in 0..vo {
        for k in 0..l {
            let x = site(o, k);
            for blk in 0..2 {
                let cb = &blocks[x * 2 + blk];
                let base = o * CLOVER_COMPONENTS * l + blk * 36 * l;
                for i in 0..6 {
                    out[base + i * l + k] = T::from_f64(cb.diag[i]);
                }
                for u in 0..15 {
                    out[base + (6 + 2 * u) * l + k] = T::from_f64(cb.upper[u].re);
                    out[base + (7 + 2 * u) * l + k] = T::from_f64(cb.upper[u].im);
                }
            }
        }
    }
    out
}

impl<T: Element> LinearOperator<T> for JitWilsonClover<T> {
    fn len(&self) -> usize {
        self.vector_len()
    }
    fn apply(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        self.run(false, out, inp)
    }
}

impl<T: Element> AdjointOperator<T> for JitWilsonClover<T> {
    fn apply_dagger(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        self.run(true, out, inp)
    }
}

impl NativeOperator for JitWilsonClover<f32> {
    fn main_len(&self) -> usize {
        self.layout.main_len()
    }
    fn buffer_len(&self) -> usize {
        self.layout.field_len()
    }
    fn apply(&self, out: &mut [f32], inp: &mut [f32]) -> Result<(), String> {
        let len = self.layout.field_len();
        if out.len() < len || inp.len() < len {
            return Err(format!(
                "buffers of {} and {} scalars, the operator needs {len}",
                out.len(),
                inp.len()
            ));
        }
        self.apply_aosoa(false, &mut out[..len], &inp[..len]).map_err(|e| e.to_string())
    }
    fn import(&self, src: &[Complex64], dst: &mut [f32]) {
        self.layout.to_aosoa(src, dst);
    }
    fn export(&self, src: &[f32], dst: &mut [Complex64]) {
        self.layout.from_aosoa(src, dst);
    }
}
