//! The executor of a pooled multigrid level (models.md §1.7, arXiv 2304.10438): gauge-equivariant
//! pooling to the coarse lattice, a gauge network on the coarse gauge field there, unpooling.
//!
//! ```text
//! G(x) = Σ_i w_i(x) ⊗ Ĝ_i(x)        χ(X) = Σ_{x∈X} G(x) ψ(x)        ψ(x) = G(x)† χ(X(x))
//! ```
//!
//! Ĝ_i(x) is the i-th term of the level's [`PoolTransfer`]: the transport from the block's
//! reference point to x along the term's route, times its loop field if it names one, divided by
//! √|block| so that the static transfer is an isometry (Pool ∘ Unpool = 1 on the coarse
//! lattice, as for the orthonormalised near-null basis; `ir::pool` states the normalisation).
//! w_i(x) are the level's local 4×4 spin weights (identity for `static`).
//!
//! Pooling *is* a block restriction with 12 "basis vectors" per site, the conjugated rows of
//! the 12×12 matrix G(x): χ_k = Σ_x Σ_c G_kc ψ_c = Σ_x u_k(x)† ψ(x), and unpooling is the
//! prolongation Σ_k u_k(x) χ_k = G(x)† χ. So both run on the multigrid's JIT P†/P kernels
//! (`codegen::block`), whose basis buffer is refilled whenever the weights change. The coarse
//! gauge field U^c_μ(X) (fine links along the straight path of blocks[μ] steps from X's
//! reference point) is a genuine SU(3) field, so the coarse network is an ordinary compiled
//! [`LatticeNet`] on it. The weight gradients of G (colour-traced spin outer products, the
//! same form for pooling and unpooling) run on their own JIT kernel (`codegen::pool`).

use super::RuntimeError;
use super::coarse::JitBlockTransfer;
use super::lattice_net::{LatticeNet, LatticeNetOptions};
use super::transport::path_matrix;
use crate::codegen::jit::Arg;
use crate::codegen::lattice_layout::SiteLayout;
use crate::codegen::pool::{PoolGradDesc, PoolGradKernels};
use crate::codegen::simd::Element;
use crate::ir::{
    CoarseSpace, Level, PoolTransfer, levels, pool_coarse_link_path, pool_weight_index,
};
use crate::lattice::blocks::Blocking;
use crate::lattice::gauge::GaugeField;
use crate::lattice::geometry::Geometry;
use crate::lattice::su3::Su3;
use num_complex::{Complex, Complex64};
use rayon::prelude::*;
use std::sync::Mutex;
use std::time::Instant;

/// The pooling transfer with the weights its basis was built from.
struct Transfer<T: Element> {
    jit: JitBlockTransfer<T>,
    /// The pooling weights the basis holds (`None` before the first fill of a weighted level).
    weights: Option<Vec<T>>,
    /// Scratch AoSoA field of the fine layout.
    fine: Vec<T>,
}

/// The pooling weights' gradient on its JIT kernel (`codegen::pool`), with the tables it reads.
struct WeightGrad<T: Element> {
    compiled: PoolGradKernels,
    /// Ĝ_i in the kernel's layout `[box][site in box][path][9][re/im][lane]`.
    transports: Vec<T>,
    /// `position[x]` = (box · box volume + site in box) · lanes + lane of fine site x.
    position: Vec<u32>,
    n_paths: usize,
    lanes: usize,
    /// (fine AoSoA field, lane-expanded coarse field, kernel output).
    scratch: Mutex<(Vec<T>, Vec<T>, Vec<T>)>,
}

impl<T: Element> WeightGrad<T> {
    fn new(
        jit: &JitBlockTransfer<T>,
        transports: &[Su3<f64>],
        n_paths: usize,
    ) -> Result<Self, RuntimeError> {
        let desc = PoolGradDesc { block: jit.desc().clone(), n_paths };
        let compiled = crate::codegen::pool::compile(&desc, false)?;
        let l = jit.layout().lanes;
        let v = jit.layout().volume();
        let sites = jit.box_sites();
        let mut table = vec![T::zero(); desc.transports_len()];
        let mut position = vec![0u32; v];
        for (idx, &x) in sites.iter().enumerate() {
            let (base, lane) = (idx / l, idx % l);
            position[x as usize] = idx as u32;
            for p in 0..n_paths {
                let m = &transports[p * v + x as usize];
                for e in 0..9 {
                    let z = m.m[e / 3][e % 3];
                    table[((base * n_paths + p) * 18 + 2 * e) * l + lane] = T::from_f64(z.re);
                    table[((base * n_paths + p) * 18 + 2 * e + 1) * l + lane] = T::from_f64(z.im);
                }
            }
        }
        let scratch = Mutex::new((
            vec![T::zero(); jit.layout().field_len()],
            vec![T::zero(); jit.desc().expanded_len()],
            vec![T::zero(); desc.out_len()],
        ));
        Ok(WeightGrad { compiled, transports: table, position, n_paths, lanes: l, scratch })
    }
}

/// What the forward pass of a pooled level keeps for its backward pass.
pub struct PoolSaved<T> {
    /// χ = Pool(b).
    pub chi: Vec<Complex<T>>,
    /// ζ = M_c(χ).
    pub zeta: Vec<Complex<T>>,
    /// c = Unpool(ζ), the coarse correction on the fine lattice.
    pub c: Vec<Complex<T>>,
}

/// A pooled level compiled for one gauge field.
pub struct PoolLevel<T: Element> {
    /// The level's name (for plans).
    name: String,
    /// Whether the transfer has pooling weights (all but `static`).
    weighted: bool,
    blocking: Blocking,
    /// Normalised Ĝ_i(x) at `i * V + x`.
    transports: Vec<Su3<f64>>,
    coarse_gauge: GaugeField,
    coarse: LatticeNet<T>,
    transfer: Mutex<Transfer<T>>,
    /// The JIT weight gradient (weighted families only).
    grad: Option<WeightGrad<T>>,
    pool_scalars: usize,
    level_scalars: usize,
    setup_seconds: f64,
}

/// The normalised terms Ĝ_i(x) of `transfer` on `gauge` (`i * V + x`): the transport from x's
/// block's reference point to x along the term's route, times its loop field if it has one,
/// normalised as `ir::pool` states.
fn transports(
    gauge: &GaugeField,
    blocking: &Blocking,
    transfer: &PoolTransfer,
) -> Result<Vec<Su3<f64>>, RuntimeError> {
    let geom = &gauge.geom;
    let v = geom.volume();
    let block = blocking.block_dims();
    let norm = 1.0 / (block.iter().product::<usize>() as f64).sqrt();
    let r = transfer.reference;
    let mut out = vec![Su3::zero(); transfer.terms.len() * v];
    out.par_chunks_mut(v).enumerate().for_each(|(i, g)| {
        let loops = transfer.terms[i].times.map(|f| f.loops()).unwrap_or_default();
        for (x, gx) in g.iter_mut().enumerate() {
            let c = geom.coords(x);
            let offset: [usize; 4] = std::array::from_fn(|mu| c[mu] % block[mu]);
            let start = geom.index(std::array::from_fn(|mu| c[mu] - offset[mu] + r[mu]));
            let (mut m, end) = path_matrix(gauge, &transfer.term_path(i, offset), start);
            debug_assert_eq!(end, x);
            if !loops.is_empty() {
                let mut field = Su3::zero();
                for l in &loops {
                    field += path_matrix(gauge, l, x).0;
                }
                m = m * field;
            }
            *gx = m;
        }
    });
    for (i, g) in out.chunks_mut(v).enumerate() {
        // A unitary term has |Ĝ|² = 3 at every site already; only loop fields are rescaled.
        let scale = if transfer.terms[i].times.is_some() {
            let sq: f64 = g.iter().flat_map(|m| m.m.iter().flatten()).map(|z| z.norm_sqr()).sum();
            if !(sq > 0.0 && sq.is_finite()) {
                return Err(RuntimeError::Shape(format!(
                    "pooling term `{}` vanishes (or overflows) on this gauge field",
                    transfer.terms[i].describe()
                )));
            }
            (3.0 * v as f64 / sq).sqrt() * norm
        } else {
            norm
        };
        g.iter_mut().for_each(|m| *m = m.scale(Complex64::new(scale, 0.0)));
    }
    Ok(out)
}

/// The coarse gauge field: U^c_μ(X) = the fine links along blocks[μ] steps from X's reference
/// point (`reference`, counted from the block's origin).
pub fn coarse_gauge(gauge: &GaugeField, blocking: &Blocking, reference: [usize; 4]) -> GaugeField {
    let coarse = Geometry::new(blocking.coarse_dims());
    let block = blocking.block_dims();
    let mut links = vec![Su3::identity(); coarse.volume() * 4];
    for (i, l) in links.iter_mut().enumerate() {
        let (xc, mu) = (i / 4, i % 4);
        let cc = coarse.coords(xc);
        let start = gauge.geom.index(std::array::from_fn(|nu| cc[nu] * block[nu] + reference[nu]));
        *l = path_matrix(gauge, &pool_coarse_link_path(block, mu), start).0;
    }
    GaugeField { geom: coarse, links }
}

impl<T: Element> PoolLevel<T> {
    /// Builds the transports and the coarse gauge field of `level` on `gauge`, compiles the
    /// pooling kernels on the fine `layout` and the coarse network on the coarse field.
    pub fn new(
        level: &Level,
        gauge: &GaugeField,
        layout: &SiteLayout,
    ) -> Result<Self, RuntimeError> {
        let t = Instant::now();
        let CoarseSpace::Pool { transfer } = &level.space else {
            return Err(RuntimeError::Shape(format!("level `{}` does not pool", level.name)));
        };
        let net = level.coarse_network().ok_or_else(|| {
            RuntimeError::Shape(format!("pooled level `{}` has no coarse network", level.name))
        })?;
        let blocking = Blocking::new(gauge.dims(), level.blocks)
            .map_err(|e| RuntimeError::Shape(format!("level `{}`: {e}", level.name)))?;
        let transports = transports(gauge, &blocking, transfer)
            .map_err(|e| RuntimeError::Shape(format!("level `{}`: {e}", level.name)))?;
        let coarse_gauge = coarse_gauge(gauge, &blocking, transfer.reference);
        let coarse = LatticeNet::<T>::compile(net, &coarse_gauge, &LatticeNetOptions::default())
            .map_err(|e| {
                RuntimeError::Shape(format!(
                    "the coarse network of level `{}` on the {:?} coarse lattice: {e}",
                    level.name,
                    blocking.coarse_dims()
                ))
            })?;
        let v = gauge.geom.volume();
        let pool_scalars = levels::pool_scalars(level, v);
        let level_scalars = pool_scalars + net.param_scalars();
        let static_g = |site: usize, out: &mut [Complex64]| {
            fill_rows(
                &transports,
                v,
                1,
                site,
                |_, s, t| if s == t { 1.0.into() } else { 0.0.into() },
                out,
            )
        };
        let jit = JitBlockTransfer::<T>::with_vectors(&blocking, 12, layout, static_g)?;
        let n_paths = transfer.terms.len();
        let grad = if transfer.weighted {
            Some(WeightGrad::new(&jit, &transports, n_paths)?)
        } else {
            None
        };
        let fine = vec![T::zero(); layout.field_len()];
        Ok(PoolLevel {
            name: level.name.clone(),
            weighted: transfer.weighted,
            blocking,
            transports,
            coarse_gauge,
            coarse,
            transfer: Mutex::new(Transfer { jit, weights: None, fine }),
            grad,
            pool_scalars,
            level_scalars,
            setup_seconds: t.elapsed().as_secs_f64(),
        })
    }

    /// The coarse gauge field the coarse network runs on.
    pub fn coarse_gauge(&self) -> &GaugeField {
        &self.coarse_gauge
    }

    /// The compiled coarse network.
    pub fn coarse_net(&self) -> &LatticeNet<T> {
        &self.coarse
    }

    /// The pooling kernels' plans (for `symc inspect`): the block kernels, named for what
    /// they do here (pooling is also unpooling's input gradient, and the other way round).
    pub fn transfer_plans(&self) -> Vec<crate::codegen::plan::KernelPlan> {
        let mut plans =
            self.transfer.lock().unwrap_or_else(|e| e.into_inner()).jit.plans().to_vec();
        let what = [
            (
                "pool",
                "pooling chi = sum_x G(x) psi(x): restriction on the 12 conjugated rows of G(x) (also unpooling's input gradient)",
            ),
            (
                "unpool",
                "unpooling psi = G^dagger chi: prolongation on the same rows (also pooling's input gradient)",
            ),
        ];
        for (p, (layer, reason)) in plans.iter_mut().zip(what) {
            p.layer = format!("{}.{layer}", self.name);
            p.reason = reason.into();
        }
        if let Some(wg) = &self.grad {
            plans.extend(wg.compiled.plans.iter().cloned().map(|mut p| {
                p.layer = format!("{}.pool", self.name);
                p
            }));
        }
        plans
    }

    /// Scalars of the level's parameters at the start of the flat vector.
    pub fn level_scalars(&self) -> usize {
        self.level_scalars
    }

    /// Seconds the transports, the coarse field and the kernels took (the level's whole set-up).
    pub fn setup_seconds(&self) -> f64 {
        self.setup_seconds
    }

    fn volume(&self) -> usize {
        self.blocking.fine_dims().iter().product()
    }

    fn coarse_len(&self) -> usize {
        self.blocking.coarse_volume() * 12
    }

    /// Refills the basis of the transfer kernels if the pooling weights changed.
    fn refresh<'a>(&'a self, params: &[T]) -> std::sync::MutexGuard<'a, Transfer<T>> {
        let mut guard = self.transfer.lock().unwrap_or_else(|e| e.into_inner());
        if self.weighted {
            let w = &params[..self.pool_scalars];
            if guard.weights.as_deref() != Some(w) {
                let (v, n) = (self.volume(), self.transports.len() / self.volume());
                let weight = |i: usize, site: usize, s: usize, t: usize| {
                    let k = 2 * pool_weight_index(v, i, site, s, t);
                    Complex64::new(w[k].to_f64(), w[k + 1].to_f64())
                };
                guard.jit.set_vectors(|site, out| {
                    fill_rows(&self.transports, v, n, site, |i, s, t| weight(i, site, s, t), out)
                });
                guard.weights = Some(w.to_vec());
            }
        }
        guard
    }

    fn check(&self, params: &[T], fine: usize) -> Result<(), RuntimeError> {
        if params.len() < self.level_scalars || fine != self.volume() * 12 {
            return Err(RuntimeError::Shape(format!(
                "pooled level: {} parameters and a field of {fine} complex numbers given; it needs \
                 at least {} and {}",
                params.len(),
                self.level_scalars,
                self.volume() * 12
            )));
        }
        Ok(())
    }

    /// χ = Pool(ψ) (reference layouts) on the JIT restriction kernel.
    pub fn pool(
        &self,
        params: &[T],
        fine: &[Complex<T>],
        coarse: &mut [Complex<T>],
    ) -> Result<(), RuntimeError> {
        self.check(params, fine.len())?;
        let mut guard = self.refresh(params);
        let Transfer { jit, fine: buf, .. } = &mut *guard;
        jit.layout().to_aosoa(fine, buf);
        jit.restrict_aosoa(buf, coarse)
    }

    /// ψ = Unpool(χ) (reference layouts) on the JIT prolongation kernel.
    pub fn unpool(
        &self,
        params: &[T],
        coarse: &[Complex<T>],
        fine: &mut [Complex<T>],
    ) -> Result<(), RuntimeError> {
        self.check(params, fine.len())?;
        let mut guard = self.refresh(params);
        let Transfer { jit, fine: buf, .. } = &mut *guard;
        jit.prolong_aosoa(coarse, buf)?;
        jit.layout().from_aosoa(buf, fine);
        Ok(())
    }

    /// c = Unpool(M_c(Pool(b))) on fine buffers in the transfer's layout (the fine network's and
    /// the solver's; at least one field each, main parts read and written): what a solver's
    /// preconditioner application runs, with no conversion of the fine fields and nothing kept
    /// for a backward pass.
    pub fn correct_aosoa(&self, params: &[T], b: &[T], c: &mut [T]) -> Result<(), RuntimeError> {
        self.check(params, self.volume() * 12)?;
        let guard = self.refresh(params);
        let len = guard.jit.layout().field_len();
        if b.len() < len || c.len() < len {
            return Err(RuntimeError::Shape(format!(
                "pooled level: fine buffers of {} and {} scalars, it needs {len}",
                b.len(),
                c.len()
            )));
        }
        let zero = Complex::new(T::zero(), T::zero());
        let mut chi = vec![zero; self.coarse_len()];
        guard.jit.restrict_aosoa(&b[..len], &mut chi)?;
        let mut zeta = vec![zero; self.coarse_len()];
        self.coarse.forward(&params[self.pool_scalars..self.level_scalars], &chi, &mut zeta)?;
        guard.jit.prolong_aosoa(&zeta, &mut c[..len])
    }

    /// c = Unpool(M_c(Pool(b))), keeping what the backward pass needs.
    pub fn forward(&self, params: &[T], b: &[Complex<T>]) -> Result<PoolSaved<T>, RuntimeError> {
        self.check(params, b.len())?;
        let zero = Complex::new(T::zero(), T::zero());
        let mut chi = vec![zero; self.coarse_len()];
        self.pool(params, b, &mut chi)?;
        let mut zeta = vec![zero; self.coarse_len()];
        self.coarse.forward(&params[self.pool_scalars..self.level_scalars], &chi, &mut zeta)?;
        let mut c = vec![zero; b.len()];
        self.unpool(params, &zeta, &mut c)?;
        Ok(PoolSaved { chi, zeta, c })
    }

    /// The level's weight gradients (pooling weight, then the coarse network's) written to
    /// `grad[..level_scalars]` from h = ∂L/∂c (same convention as the lattice network: the
    /// real gradient with respect to the (re, im) pairs).
    pub fn backward(
        &self,
        params: &[T],
        b: &[Complex<T>],
        saved: &PoolSaved<T>,
        h: &[Complex<T>],
        grad: &mut [T],
    ) -> Result<(), RuntimeError> {
        self.check(params, b.len())?;
        if grad.len() < self.level_scalars || h.len() != b.len() {
            return Err(RuntimeError::Shape("pooled level: gradient buffers too small".into()));
        }
        let zero = Complex::new(T::zero(), T::zero());
        // Unpooling c = G† ζ: ∂L/∂ζ = G h = Pool(h).
        let mut h_zeta = vec![zero; self.coarse_len()];
        self.pool(params, h, &mut h_zeta)?;
        let mut h_chi = vec![zero; self.coarse_len()];
        let (gw, gc) = grad[..self.level_scalars].split_at_mut(self.pool_scalars);
        self.coarse.forward_backward(
            &params[self.pool_scalars..self.level_scalars],
            &saved.chi,
            None,
            |_, g| g.copy_from_slice(&h_zeta),
            Some(&mut h_chi),
            gc,
        )?;
        if self.weighted {
            gw.iter_mut().for_each(|g| *g = T::zero());
            // Unpooling's and pooling's terms: Σ_a coarse(X)_{s a} conj((Ĝ_i fine)(x)_{t a})
            // with (coarse, fine) = (ζ, h) and (∂L/∂χ, b).
            self.weight_grad(&saved.zeta, h, gw)?;
            self.weight_grad(&h_chi, b, gw)?;
        }
        Ok(())
    }

    /// grad w_i(x)[s][t] += Σ_a coarse(X(x))_{s,a} · conj((Ĝ_i(x) fine(x))_{t,a}), on the JIT
    /// kernel; the result is scattered from the kernel's box-major layout into the weights'.
    fn weight_grad(
        &self,
        coarse: &[Complex<T>],
        fine: &[Complex<T>],
        grad: &mut [T],
    ) -> Result<(), RuntimeError> {
        let Some(wg) = &self.grad else { return Ok(()) };
        let mut scratch = wg.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let (fbuf, ebuf, out) = &mut *scratch;
        {
            let guard = self.transfer.lock().unwrap_or_else(|e| e.into_inner());
            guard.jit.layout().to_aosoa(fine, fbuf);
            guard.jit.expand(coarse, ebuf)?;
        }
        let k = wg.compiled.kernels.kernel(wg.compiled.wgrad);
        k.call_parallel(
            &mut [Arg::ro(fbuf), Arg::ro(&wg.transports), Arg::ro(ebuf), Arg::rw(out)],
            1,
        )?;
        let (v, np, l) = (self.volume(), wg.n_paths, wg.lanes);
        let out = &*out;
        // One (path, site) per chunk of 32 scalars: disjoint, so the sites run in parallel.
        grad.par_chunks_mut(32).enumerate().for_each(|(item, g)| {
            let (p, x) = (item / v, item % v);
            let idx = wg.position[x] as usize;
            let (base, lane) = (idx / l, idx % l);
            for st in 0..16 {
                let o = ((base * np + p) * 16 + st) * 2 * l + lane;
                g[2 * st] += out[o];
                g[2 * st + 1] += out[o + l];
            }
        });
        Ok(())
    }
}

/// The 12 basis vectors of the transfer kernels at `site`: u_k(x)_c = conj(G(x)_{k c}) with
/// G_{(s a),(t b)} = Σ_i w_i(x)[s][t] Ĝ_i(x)[a][b] (`weight(i, s, t)`), written to `out[k * 12 + c]`.
fn fill_rows(
    transports: &[Su3<f64>],
    v: usize,
    n_paths: usize,
    site: usize,
    weight: impl Fn(usize, usize, usize) -> Complex64,
    out: &mut [Complex64],
) {
    out.iter_mut().for_each(|z| *z = Complex64::new(0.0, 0.0));
    for i in 0..n_paths {
        let m = &transports[i * v + site];
        for s in 0..4 {
            for t in 0..4 {
                let w = weight(i, s, t);
                if w == Complex64::new(0.0, 0.0) {
                    continue;
                }
                for a in 0..3 {
                    for bb in 0..3 {
                        out[(s * 3 + a) * 12 + t * 3 + bb] += (w * m.m[a][bb]).conj();
                    }
                }
            }
        }
    }
}
