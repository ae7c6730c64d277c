//! The even-odd Schur operator D̂ (and D̂†) of the Wilson-clover operator on JIT kernels: the
//! compiled counterpart of the plain-Rust reference [`Schur`] (`lattice::evenodd`), which is its
//! oracle (`tests/evenodd_jit.rs`). Why: an even-odd solve needs about 2.5× fewer iterations
//! on vectors of half the length, but only pays off if one D̂ costs about one D — which takes
//! the same SIMD kernels as D, on a half-lattice layout.
//!
//! **Layout.** [`HalfLayout`]: the virtual-node AoSoA layout of `codegen::lattice_layout`
//! restricted to one parity (lanes over sub-lattices of even extent along one direction, so
//! every vector holds sites of one parity). Even and odd vectors have the same shape; a hop
//! from one parity reads the other parity's buffer through a neighbour table, lane-crossing
//! neighbours rotated in registers as in the full kernel. A lattice without an extent
//! divisible by 2 × lanes (8 for f32, 4 for f64) has no such layout and is an error.
//!
//! **Kernels.** The Wilson-clover emitter's site kernels (`codegen::dirac::SiteTerm`), each
//! one pass over the sites of one parity: the hop sum h = H ψ fused with what follows it —
//! `c B h` (hop + clover block, e.g. A_oo⁻¹ D_oe x), `χ + c h` (hop + axpy, the final
//! `x − D_eo u`), `χ + c B h`, `B χ + c h` — or a block alone (`B χ`). With
//! D_eo, D_oe = −½ H the operators are these passes (`x` the input, `t` odd scratch):
//!
//! ```text
//! Plain   D̂  = A_ee − D_eo A_oo⁻¹ D_oe   t = −½ A_oo⁻¹ H x;   y = A_ee x + ½ H t
//! Left    D̂  = 1 − A_ee⁻¹ D_eo A_oo⁻¹ D_oe   t = −½ A_oo⁻¹ H x;   y = x + ½ A_ee⁻¹ H t
//! Right   D̂  = 1 − D_eo A_oo⁻¹ D_oe A_ee⁻¹   y = A_ee⁻¹ x;  t = −½ A_oo⁻¹ H y;  y = x + ½ H t
//! ```
//!
//! and the adjoints use D†'s projectors (Left† has Right's three passes, Right† Left's two).
//! Every form costs 2 × 1320 + 2 × 504 + 48 + 24 = 3720 flops per even site; `Right` (D̂, not
//! D̂†) and `Left`'s D̂† make one extra pass over memory for the site-local A_ee⁻¹.
//!
//! **Variant: [`SchurVariant::RightNormalised`] (the default), for exactness and speed.**
//! Exactness: its reduced residual *is* the even half of the full residual (the odd half
//! vanishes by construction of x_o), so a reduced solve to `Schur::reduced_tolerance`
//! guarantees the full-system tolerance with no margin, like `Plain`; `LeftNormalised`
//! minimises A_ee⁻¹ r and must over-solve to a tolerance tightened by a bound on ‖A_ee‖ (it
//! stops at full residuals near 6e-9 for a 1e-8 target). Speed: the three forms cost the same
//! 3720 flops per even site, and the compiled D̂ runs at the speed of the compiled D at equal
//! work (`benches/wilson.rs`; `Right`'s extra site-local pass is within the noise of this
//! shared machine), so iterations decide, and `Right` needs the fewest. Mixed-precision
//! GMRES(30) and f64 BiCGStab to a full-system residual of 1e-8 on the 8⁴ DDalphaAMG
//! configuration, c_sw = 1, iterations per right-hand side for three sources
//! (`measure_full_vs_evenodd_on_ddalpha_8x8x8x8` in `tests/evenodd_jit.rs`):
//!
//! ```text
//!                       m = −0.5                         m = −0.555
//!              full   Plain   Left   Right       full   Plain   Left   Right
//! GMRES(30)     314     139    137     133        541     214    208     201
//! BiCGStab        —      83     80      79          —     119    116     112
//! ```
//!
//! (mean over the three sources; the mixed-precision counts equal the all-f64 ones of
//! `lattice::evenodd` to ±1). The wall-clock numbers are in the final report of issue 15 and
//! `benches/solvers.rs`; even-odd mixed GMRES(30) is 3–5× faster than the full-system mixed
//! GMRES(30) on this problem. A preconditioner of the reduced system of `Right` approximates
//! A_ee D̂⁻¹; where that matters, `Plain` is the exact-residual alternative.
//!
//! The tables (links with the boundary phases folded in, neighbour offsets, A⁻¹ and A blocks)
//! are built from [`EvenOdd`] — the same [`WilsonClover`](crate::lattice::wilson::WilsonClover)
//! and [`CloverInverse`](crate::lattice::clover::CloverInverse) the reference uses — so the
//! physics has one definition. Seen by the solvers through their traits: [`LinearOperator`] /
//! [`AdjointOperator`] on reference-layout even half-lattice vectors (as the reference), and
//! [`NativeOperator`] on f32 vectors in the half layout, so `solve::gmres_mixed` /
//! `fgmres_mixed` run on it unchanged. [`JitSchur::prepare`] and [`JitSchur::reconstruct`]
//! map the full system to the reduced one and back with the same kernels.

use super::RuntimeError;
use super::dirac::{DiracOptions, HopTables, block_table, hop_tables};
use crate::codegen::dirac::{self, DiracDesc, LinkStorage, SiteKernel, SiteKernels, SiteTerm};
use crate::codegen::jit::{Arg, CompiledKernels};
use crate::codegen::lattice_layout::{HalfLayout, HalfLayoutError};
use crate::codegen::plan::KernelPlan;
use crate::codegen::simd::Element;
use crate::lattice::evenodd::{Checkerboard, EvenOdd, EvenOddError, Parity, Schur, SchurVariant};
use crate::lattice::gauge::GaugeField;
use crate::lattice::wilson::DiracParams;
use crate::solve::{AdjointOperator, LinearOperator, NativeOperator};
use num_complex::{Complex, Complex64};
use std::sync::Mutex;

const EVEN: usize = Parity::Even as usize;
const ODD: usize = Parity::Odd as usize;

/// Everything that can go wrong building or applying the compiled Schur operator.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum JitSchurError {
    /// Odd extents, a singular clover block, a vector of the wrong length.
    #[error(transparent)]
    #[diagnostic(transparent)]
    EvenOdd(#[from] EvenOddError),

    #[error(transparent)]
    #[diagnostic(
        code(symc::evenodd::layout),
        help(
            "the even-odd JIT kernels need one lattice extent divisible by 8 (f32) or 4 (f64); \
             solve this lattice with the reference even-odd operator or without even-odd \
             preconditioning"
        )
    )]
    Layout(#[from] HalfLayoutError),

    /// A kernel could not be compiled or refused a call.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Runtime(#[from] RuntimeError),
}

/// A buffer of a kernel program: the operator's input `x`, its output `y`, odd scratch `t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Buf {
    X,
    Y,
    T,
}

/// Which 6×6 blocks a step reads: A⁻¹ of its parity, A_ee, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Block {
    Inverse,
    CloverEven,
    None,
}

/// One kernel pass: `to = kernel(hop input = from, own input = own)` on the sites of `parity`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    pub kernel: SiteKernel,
    pub parity: usize,
    pub block: Block,
    pub from: Buf,
    pub own: Buf,
    pub to: Buf,
}

/// The passes of D̂ (or D̂†) of `variant` (module doc). D_oe = −½ H, so "t = A_oo⁻¹ D_oe x" is
/// `BlockHop(−½)` and "y = x − D_eo t" is `SelfPlusHop(+½)`.
pub(crate) fn program(variant: SchurVariant, dagger: bool) -> Vec<Step> {
    use SiteTerm::*;
    let k = |term, dagger| SiteKernel { term, dagger };
    let step = |kernel, parity, block, from, own, to| Step { kernel, parity, block, from, own, to };
    // The site-local A_ee⁻¹ has no hop, so it has no dagger form either.
    let inverse_x = step(k(BlockSelf, false), EVEN, Block::Inverse, Buf::X, Buf::X, Buf::Y);
    match (variant, dagger) {
        (SchurVariant::Plain, d) => vec![
            step(k(BlockHop(-0.5), d), ODD, Block::Inverse, Buf::X, Buf::X, Buf::T),
            step(k(BlockSelfPlusHop(0.5), d), EVEN, Block::CloverEven, Buf::T, Buf::X, Buf::Y),
        ],
        (SchurVariant::LeftNormalised, false) | (SchurVariant::RightNormalised, true) => vec![
            step(k(BlockHop(-0.5), dagger), ODD, Block::Inverse, Buf::X, Buf::X, Buf::T),
            step(k(SelfPlusBlockHop(0.5), dagger), EVEN, Block::Inverse, Buf::T, Buf::X, Buf::Y),
        ],
        (SchurVariant::RightNormalised, false) | (SchurVariant::LeftNormalised, true) => vec![
            inverse_x,
            step(k(BlockHop(-0.5), dagger), ODD, Block::Inverse, Buf::Y, Buf::Y, Buf::T),
            step(k(SelfPlusHop(0.5), dagger), EVEN, Block::None, Buf::T, Buf::X, Buf::Y),
        ],
    }
}

/// Every kernel the operator of `variant` runs: its programs (D̂ and D̂†), then those of
/// `prepare` and `reconstruct`, each once.
pub(crate) fn kernel_list(variant: SchurVariant) -> Vec<SiteKernel> {
    let mut list: Vec<SiteKernel> = Vec::new();
    let needed = [program(variant, false), program(variant, true)].concat();
    for k in needed.iter().map(|s| s.kernel).chain([BLOCK_SELF, SELF_PLUS_HOP]) {
        if !list.contains(&k) {
            list.push(k);
        }
    }
    list
}

/// The kernels [`JitSchur::prepare`] and [`JitSchur::reconstruct`] use besides the programs.
pub(crate) const BLOCK_SELF: SiteKernel = SiteKernel { term: SiteTerm::BlockSelf, dagger: false };
pub(crate) const SELF_PLUS_HOP: SiteKernel =
    SiteKernel { term: SiteTerm::SelfPlusHop(0.5), dagger: false };

/// What runs a Schur program: one kernel pass at a time, on one process ([`JitSchur`]) or on a
/// sub-lattice, where a pass that hops first fills the ghost slots of the buffer it reads
/// (`runtime::distributed::schur`). The programs, `prepare` and `reconstruct` are written once
/// against it ([`run_program`], [`prepare_with`], [`reconstruct_with`]).
pub(crate) trait SchurPasses<T: Element> {
    /// `out = kernel(hops of from, own)` on the sites of `parity`, `own` being `from` itself
    /// when `None`; `from` is mutable so that a sub-lattice pass can receive its ghosts.
    fn pass(
        &self,
        kernel: SiteKernel,
        parity: usize,
        block: Block,
        from: &mut [T],
        own: Option<&[T]>,
        out: &mut [T],
    ) -> Result<(), RuntimeError>;
    fn half_layout(&self) -> &HalfLayout;
    fn checkerboard(&self) -> &Checkerboard;
    fn schur_variant(&self) -> SchurVariant;
    /// A zeroed buffer of the size the passes need (main slots, and ghost slots if any).
    fn zeroed(&self) -> Vec<T>;
}

/// out = D̂ inp (D̂† when `dagger`) through `p`'s passes; `odd` is scratch. Every step writes a
/// buffer it does not read (`program` is written that way; checked here all the same).
pub(crate) fn run_program<T: Element, P: SchurPasses<T> + ?Sized>(
    p: &P,
    dagger: bool,
    out: &mut [T],
    inp: &mut [T],
    odd: &mut [T],
) -> Result<(), RuntimeError> {
    let index = |b: Buf| match b {
        Buf::X => 0,
        Buf::Y => 1,
        Buf::T => 2,
    };
    for st in program(p.schur_variant(), dagger) {
        if st.to == st.from || st.to == st.own || st.to == Buf::X {
            return Err(RuntimeError::Shape(format!("Schur step {st:?} reads what it writes")));
        }
        let mut bufs = [Some(&mut *inp), Some(&mut *out), Some(&mut *odd)];
        let mut take = |b: Buf| bufs[index(b)].take().expect("distinct buffers");
        let to = take(st.to);
        let from = take(st.from);
        let own = if st.own == st.from { None } else { Some(&*take(st.own)) };
        p.pass(st.kernel, st.parity, st.block, from, own, to)?;
    }
    Ok(())
}

/// The reduced right-hand side from a full one b (12 V of `p`'s lattice): b̂ = b_e − D_eo
/// A_oo⁻¹ b_o, times A_ee⁻¹ for [`SchurVariant::LeftNormalised`] (as
/// `lattice::evenodd::Schur::prepare`).
pub(crate) fn prepare_with<T: Element, P: SchurPasses<T> + ?Sized>(
    p: &P,
    b: &[Complex<T>],
) -> Result<Vec<Complex<T>>, JitSchurError> {
    let layout = p.half_layout();
    let (b_e, b_o) = p.checkerboard().split(b)?;
    let (mut be, mut bo) = (p.zeroed(), p.zeroed());
    layout.to_aosoa(EVEN, &b_e, &mut be);
    layout.to_aosoa(ODD, &b_o, &mut bo);
    let (mut t, mut bhat) = (p.zeroed(), p.zeroed());
    // t = A_oo⁻¹ b_o; b̂ = b_e + ½ H t = b_e − D_eo A_oo⁻¹ b_o.
    p.pass(BLOCK_SELF, ODD, Block::Inverse, &mut bo, None, &mut t)?;
    p.pass(SELF_PLUS_HOP, EVEN, Block::None, &mut t, Some(&be), &mut bhat)?;
    if p.schur_variant() == SchurVariant::LeftNormalised {
        p.pass(BLOCK_SELF, EVEN, Block::Inverse, &mut bhat, None, &mut t)?;
        std::mem::swap(&mut t, &mut bhat);
    }
    let mut out = vec![Complex::new(T::zero(), T::zero()); layout.half_len()];
    layout.from_aosoa(EVEN, &bhat, &mut out);
    Ok(out)
}

/// The full solution (12 V) from the reduced one `u` and the full right-hand side b:
/// x_e = u (A_ee⁻¹ u for [`SchurVariant::RightNormalised`]), x_o = A_oo⁻¹ (b_o − D_oe x_e)
/// (as `lattice::evenodd::Schur::reconstruct`).
pub(crate) fn reconstruct_with<T: Element, P: SchurPasses<T> + ?Sized>(
    p: &P,
    u: &[Complex<T>],
    b: &[Complex<T>],
) -> Result<Vec<Complex<T>>, JitSchurError> {
    let layout = p.half_layout();
    if u.len() != layout.half_len() {
        return Err(EvenOddError::VectorLength {
            what: "compiled Schur reconstruct (reduced solution)",
            expected: layout.half_len(),
            found: u.len(),
        }
        .into());
    }
    let board = p.checkerboard();
    let (_, b_o) = board.split(b)?;
    let (mut ue, mut bo) = (p.zeroed(), p.zeroed());
    layout.to_aosoa(EVEN, u, &mut ue);
    layout.to_aosoa(ODD, &b_o, &mut bo);
    let mut xe = if p.schur_variant() == SchurVariant::RightNormalised {
        let mut xe = p.zeroed();
        p.pass(BLOCK_SELF, EVEN, Block::Inverse, &mut ue, None, &mut xe)?;
        xe
    } else {
        ue
    };
    // r_o = b_o + ½ H x_e = b_o − D_oe x_e; x_o = A_oo⁻¹ r_o.
    let mut r = p.zeroed();
    p.pass(SELF_PLUS_HOP, ODD, Block::None, &mut xe, Some(&bo), &mut r)?;
    let mut xo = bo;
    p.pass(BLOCK_SELF, ODD, Block::Inverse, &mut r, None, &mut xo)?;
    let z = Complex::new(T::zero(), T::zero());
    let (mut x_e, mut x_o) = (vec![z; layout.half_len()], vec![z; layout.half_len()]);
    layout.from_aosoa(EVEN, &xe, &mut x_e);
    layout.from_aosoa(ODD, &xo, &mut x_o);
    Ok(board.merge(&x_e, &x_o)?)
}

/// What the Schur kernels read besides the fields, per output parity: links with the boundary
/// phases folded in and neighbour offsets into the other parity's buffer (hop tables), A⁻¹
/// blocks; A_ee for [`SchurVariant::Plain`]; the lane rotation of each hop.
pub(crate) struct SchurTables<T> {
    pub links: [Vec<T>; 2],
    pub neighbours: [Vec<i32>; 2],
    pub inverse: [Vec<T>; 2],
    /// A_ee, for [`SchurVariant::Plain`] only (empty otherwise).
    pub clover_even: Vec<T>,
    pub rotation: [usize; 8],
}

impl<T: Element> SchurTables<T> {
    /// The tables of `layout`'s outer sites from the even-odd blocks `eo`: lane k of outer
    /// site o of parity p is the site `site(p, o, k)` of `eo`'s lattice, and a hop `disp` from
    /// it reads `neighbour(p, o, disp)` (slot of the other parity's buffer, lane rotation) —
    /// the layout's own neighbour on one process, a ghost slot across a process boundary.
    pub fn build(
        eo: &EvenOdd<f64>,
        layout: &HalfLayout,
        variant: SchurVariant,
        storage: LinkStorage,
        site: impl Fn(usize, usize, usize) -> usize,
        neighbour: impl Fn(usize, usize, [i64; 4]) -> Result<(usize, usize), RuntimeError>,
    ) -> Result<Self, RuntimeError> {
        let (vo, l) = (layout.outer_volume, layout.lanes);
        let wilson = eo.wilson();
        let mut rotation = [0usize; 8];
        let [even, odd] = [EVEN, ODD].map(|p| {
            let at = |o: usize, k: usize| site(p, o, k);
            let hop = |o: usize, disp: [i64; 4]| neighbour(p, o, disp);
            let t: HopTables<T> = hop_tables(wilson, (vo, l), at, hop, &mut rotation, storage)?;
            let inv = block_table(eo.clover_inverse().blocks(), (vo, l), at);
            Ok::<_, RuntimeError>((t, inv))
        });
        let ((t0, i0), (t1, i1)) = (even?, odd?);
        let clover_even = if variant == SchurVariant::Plain {
            block_table(wilson.clover_packed(), (vo, l), |o, k| site(EVEN, o, k))
        } else {
            Vec::new()
        };
        Ok(SchurTables {
            links: [t0.links, t1.links],
            neighbours: [t0.neighbours, t1.neighbours],
            inverse: [i0, i1],
            clover_even,
            rotation,
        })
    }

    /// The blocks a step of kind `block` reads on the sites of `parity`.
    pub fn blocks(&self, block: Block, parity: usize) -> &[T] {
        match block {
            Block::Inverse => &self.inverse[parity],
            Block::CloverEven => &self.clover_even,
            Block::None => &[],
        }
    }
}

/// The Schur operator of one gauge field, mass, c_sw and variant, compiled to native code in
/// precision `T`.
pub struct JitSchur<T: Element> {
    layout: HalfLayout,
    board: Checkerboard,
    variant: SchurVariant,
    /// The kernels, in the order of `list`.
    compiled: SiteKernels,
    list: Vec<SiteKernel>,
    tables: SchurTables<T>,
    /// AoSoA scratch: the input and output of a reference-layout application, and the odd
    /// intermediate of every application. The lock is uncontended (solvers apply from one
    /// thread).
    scratch: Mutex<[Vec<T>; 3]>,
}

impl<T: Element> JitSchur<T> {
    /// Builds the even-odd blocks of D for `gauge` and compiles the operator of `variant`.
    pub fn new(
        gauge: &GaugeField,
        params: &DiracParams,
        variant: SchurVariant,
        opts: &DiracOptions,
    ) -> Result<Self, JitSchurError> {
        let eo = EvenOdd::<f64>::new(gauge, params)?;
        Self::from_even_odd(&eo, variant, opts)
    }

    /// Compiles the operator of the reference `schur` (its blocks and variant).
    pub fn from_reference(schur: &Schur<f64>, opts: &DiracOptions) -> Result<Self, JitSchurError> {
        Self::from_even_odd(schur.even_odd(), schur.variant(), opts)
    }

    /// Compiles the operator of `variant` from the even-odd blocks `eo` (tables rounded to `T`).
    pub fn from_even_odd(
        eo: &EvenOdd<f64>,
        variant: SchurVariant,
        opts: &DiracOptions,
    ) -> Result<Self, JitSchurError> {
        let board = eo.checkerboard().clone();
        let sites = [board.sites(Parity::Even), board.sites(Parity::Odd)];
        let layout = HalfLayout::new(board.dims(), T::PRECISION, sites)?;
        let vo = layout.outer_volume;
        let storage = opts.link_storage::<T>();
        let neighbour = |p: usize, o: usize, disp: [i64; 4]| {
            let (q, o2, rot) = layout.neighbour(p, o, disp);
            if q == p {
                // Impossible for a checkerboard: a hop changes the parity.
                return Err(RuntimeError::Shape(format!(
                    "a hop from parity {p} lands on parity {q}"
                )));
            }
            Ok((o2, rot))
        };
        let site = |p: usize, o: usize, k: usize| layout.site(p, o, k);
        let tables = SchurTables::build(eo, &layout, variant, storage, site, neighbour)?;
        let list = kernel_list(variant);
        let desc = DiracDesc {
            outer_volume: vo,
            rotation: tables.rotation,
            ext_slots: vo,
            precision: T::PRECISION,
            links: storage,
        };
        let compiled = dirac::compile_site_kernels(&desc, "schur", &list, opts.keep_listings)
            .map_err(RuntimeError::from)?;
        let n = layout.main_len();
        Ok(JitSchur {
            layout,
            board,
            variant,
            compiled,
            list,
            tables,
            scratch: Mutex::new([vec![T::zero(); n], vec![T::zero(); n], vec![T::zero(); n]]),
        })
    }

    /// The form of the Schur complement this operator is.
    pub fn variant(&self) -> SchurVariant {
        self.variant
    }

    /// The half-lattice SIMD layout of the kernels' buffers.
    pub fn layout(&self) -> &HalfLayout {
        &self.layout
    }

    /// Length of a reference-layout reduced vector (6 V complex).
    pub fn half_len(&self) -> usize {
        self.layout.half_len()
    }

    pub fn plans(&self) -> &[KernelPlan] {
        &self.compiled.plans
    }

    pub fn kernels(&self) -> &CompiledKernels {
        &self.compiled.kernels
    }

    /// Flops of one application of D̂ (or D̂†) as the kernels do them (the conventional counts
    /// of `SiteTerm::flops_per_site`): 3720 per even site for every variant.
    pub fn flops_per_apply(&self, dagger: bool) -> u64 {
        let sites = (self.layout.outer_volume * self.layout.lanes) as u64;
        program(self.variant, dagger).iter().map(|s| s.kernel.term.flops_per_site() * sites).sum()
    }

    /// out = D̂ inp (D̂† when `dagger`) on even AoSoA buffers of [`HalfLayout::main_len`]
    /// scalars; `odd` is scratch of the same size. No layout conversion (`inp` is only read).
    pub fn apply_native(
        &self,
        dagger: bool,
        out: &mut [T],
        inp: &mut [T],
        odd: &mut [T],
    ) -> Result<(), RuntimeError> {
        // All passes from one pool thread: each pass forks and joins over the rayon pool, and
        // from a thread outside the pool each would be a separate injection and wake-up.
        rayon::scope(|_| run_program(self, dagger, out, inp, odd))
    }

    fn check(&self, what: &'static str, expected: usize, found: usize) -> Result<(), EvenOddError> {
        if expected == found {
            Ok(())
        } else {
            Err(EvenOddError::VectorLength { what, expected, found })
        }
    }

    /// The reduced right-hand side from a full one b (12 V): b̂ = b_e − D_eo A_oo⁻¹ b_o,
    /// times A_ee⁻¹ for [`SchurVariant::LeftNormalised`] (as `lattice::evenodd::Schur::prepare`).
    pub fn prepare(&self, b: &[Complex<T>]) -> Result<Vec<Complex<T>>, JitSchurError> {
        prepare_with(self, b)
    }

    /// The full solution (12 V) from the reduced one `u` and the full right-hand side b:
    /// x_e = u (A_ee⁻¹ u for [`SchurVariant::RightNormalised`]), x_o = A_oo⁻¹ (b_o − D_oe x_e)
    /// (as `lattice::evenodd::Schur::reconstruct`).
    pub fn reconstruct(
        &self,
        u: &[Complex<T>],
        b: &[Complex<T>],
    ) -> Result<Vec<Complex<T>>, JitSchurError> {
        reconstruct_with(self, u, b)
    }

    /// D̂ or D̂† on reference-layout vectors, with an error instead of a panic.
    pub fn try_apply(
        &self,
        dagger: bool,
        out: &mut [Complex<T>],
        inp: &[Complex<T>],
    ) -> Result<(), JitSchurError> {
        let n = self.half_len();
        self.check("compiled Schur operator (input)", n, inp.len())?;
        self.check("compiled Schur operator (output)", n, out.len())?;
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let [a, b, odd] = &mut *guard;
        self.layout.to_aosoa(EVEN, inp, a);
        self.apply_native(dagger, b, a, odd)?;
        self.layout.from_aosoa(EVEN, b, out);
        Ok(())
    }
}

impl<T: Element> SchurPasses<T> for JitSchur<T> {
    fn pass(
        &self,
        kernel: SiteKernel,
        parity: usize,
        block: Block,
        from: &mut [T],
        own: Option<&[T]>,
        out: &mut [T],
    ) -> Result<(), RuntimeError> {
        let i = self.list.iter().position(|k| *k == kernel).ok_or_else(|| {
            RuntimeError::Shape(format!("Schur kernel {kernel:?} was not compiled"))
        })?;
        let t = &self.tables;
        let from = &*from;
        let k = self.compiled.kernels.kernel(self.compiled.ids[i]);
        k.call_parallel(
            &mut [
                Arg::ro(from),
                Arg::ro(own.unwrap_or(from)),
                Arg::rw(out),
                Arg::ro(&t.links[parity]),
                Arg::ro(&t.neighbours[parity]),
                Arg::ro(t.blocks(block, parity)),
            ],
            16,
        )?;
        Ok(())
    }
    fn half_layout(&self) -> &HalfLayout {
        &self.layout
    }
    fn checkerboard(&self) -> &Checkerboard {
        &self.board
    }
    fn schur_variant(&self) -> SchurVariant {
        self.variant
    }
    fn zeroed(&self) -> Vec<T> {
        vec![T::zero(); self.layout.main_len()]
    }
}

/// The solver interface, which cannot return errors: every solver checks lengths against
/// `len()` first, and the kernels get buffers sized from their own layout, so a failure here
/// is a bug and panics with its message (as `JitWilsonClover` does).
impl<T: Element> LinearOperator<T> for JitSchur<T> {
    fn len(&self) -> usize {
        self.half_len()
    }
    fn apply(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        if let Err(e) = self.try_apply(false, out, inp) {
            panic!("compiled Schur operator: {e}");
        }
    }
}

impl<T: Element> AdjointOperator<T> for JitSchur<T> {
    fn apply_dagger(&self, out: &mut [Complex<T>], inp: &[Complex<T>]) {
        if let Err(e) = self.try_apply(true, out, inp) {
            panic!("compiled Schur operator: {e}");
        }
    }
}

impl NativeOperator for JitSchur<f32> {
    fn main_len(&self) -> usize {
        self.layout.main_len()
    }
    fn buffer_len(&self) -> usize {
        self.layout.main_len()
    }
    fn apply(&self, out: &mut [f32], inp: &mut [f32]) -> Result<(), String> {
        let len = self.layout.main_len();
        if out.len() < len || inp.len() < len {
            return Err(format!(
                "buffers of {} and {} scalars, the Schur operator needs {len}",
                out.len(),
                inp.len()
            ));
        }
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let odd = &mut guard[2];
        self.apply_native(false, &mut out[..len], &mut inp[..len], odd).map_err(|e| e.to_string())
    }
    fn import(&self, src: &[Complex64], dst: &mut [f32]) {
        self.layout.to_aosoa(EVEN, src, dst);
    }
    fn export(&self, src: &[f32], dst: &mut [Complex64]) {
        self.layout.from_aosoa(EVEN, src, dst);
    }
}
