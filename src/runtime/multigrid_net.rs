//! The executor of a multigrid network (a `.sym` network whose first layer is a `level`):
//! M(b) = c + S(b − D c) (`connect = correct`, repeated as x ← x + S(b − D x) for `smoothing`
//! steps) or M(b) = S([b, c]) (`connect = concat`, the
//! full model of models.md §2.3), with the coarse correction c = P M_c(P† b). The level runs on the two-level
//! [`Multigrid`] executor (near-null set-up, JIT P†, P and the Galerkin coarse operator, the
//! coarse GMRES), configured as a pure coarse correction (no classical smoothing); the fine
//! layers run on a [`LatticeNet`] compiled from the fine graph that `ir::levels` splits off.
//!
//! The level has no weights, so a training step only differentiates the fine network: the
//! coarse correction is computed once per input and fed to it as the second field (or, for
//! several smoothing steps, the gradient runs back through every step: through S and through
//! the residual's −D, as −D† = −γ5 D γ5). The set-up
//! depends on the gauge field and the Dirac operator, so it is redone whenever the network is
//! compiled for another configuration or mass (weights are kept), and its cost is reported
//! apart from the solve ([`MultigridNet::setup_report`]).

use super::coarse_layers::JitCoarseLayers;
use super::dirac::{DiracOptions, JitWilsonClover};
use super::lattice_net::{LatticeNet, LatticeNetOptions};
use super::multigrid::{
    BasisSource, Multigrid, MultigridError, MultigridParams, SetupPrecision, SetupReport,
};
use super::pool::{PoolLevel, PoolSaved};
use super::{FermionNet, RuntimeError};
use crate::codegen::lattice_layout::SiteLayout;
use crate::codegen::simd::{Element, Precision};
use crate::ir::{CoarseModel, CoarseSpace, Connect, Graph, Level, levels};
use crate::lattice::fermion::{cast_into, gamma5_in_place};
use crate::lattice::gauge::GaugeField;
use crate::lattice::wilson::DiracParams;
use crate::solve::multigrid::{
    CoarseGuess, CoarseSpace as Transfer, CycleParams, NearNullParams, Smoother,
};
use crate::solve::{LinearOperator, NativeOperator, Preconditioner, SolveParams};
use num_complex::{Complex, Complex64};
use std::path::Path;
use std::sync::Mutex;

mod native;

/// The two-level parameters a near-null `level` stands for: its blocks, basis and set-up, and
/// a cycle that is only the coarse correction P M_c P† (the network's fine layers are the
/// smoother). `None` for a pooled level, which has no near-null set-up.
pub fn multigrid_params(level: &Level) -> Option<MultigridParams> {
    let CoarseSpace::Basis { basis, setup_iterations, setup_restart, setup_tol, seed } =
        &level.space
    else {
        return None;
    };
    // With coarse layers the network never runs the cycle's coarse GMRES (the layers are the
    // coarse model); the classical defaults stand in for it, and the basis cache does not
    // depend on them.
    let (tol, restart, iterations) = match &level.coarse {
        CoarseModel::Solve { tol, restart, iterations } => (tol, restart, iterations),
        _ => (&5e-2, &25, &50),
    };
    Some(MultigridParams {
        blocks: level.blocks,
        n_basis: *basis,
        chirality_doubled: false,
        setup: NearNullParams {
            iterations: *setup_iterations,
            restart: *setup_restart,
            tol: *setup_tol,
        },
        setup_precision: SetupPrecision::Mixed,
        cycle: CycleParams {
            coarse: SolveParams { tol: *tol, restart: *restart, max_iterations: *iterations },
            coarse_guess: CoarseGuess::Restricted,
            pre: Smoother::None,
            post: Smoother::None,
        },
        seed: *seed,
    })
}

/// Why a network with `level` cannot run split over processes
/// (`runtime::distributed::multigrid_net`), or `None` if it can: a near-null basis with a
/// coarse solve or with coarse layers.
pub fn split_refusal(level: &Level) -> Option<&'static str> {
    if multigrid_params(level).is_none() {
        return Some("a pooled level (its coarse gauge network runs in one process)");
    }
    None
}

/// Where a multigrid network's near-null basis may come from besides a fresh set-up.
#[derive(Clone, Copy, Debug)]
pub enum BasisCache<'a> {
    /// Always run the set-up.
    None,
    /// Reuse the file if it was made for this set-up; otherwise run the set-up and (re)write it.
    ReadWrite(&'a Path),
    /// Reuse the file if it was made for this set-up; otherwise run the set-up, file untouched.
    ReadOnly(&'a Path),
}

/// What makes the coarse correction and owns the Dirac operator the `correct` steps need.
enum Coarse {
    /// A near-null level: the two-level multigrid (its P†, P, coarse GMRES and D).
    Basis(Box<Multigrid>),
    /// A pooled level: the correction is [`PoolLevel`]'s; only D is kept here.
    Pool { d64: Box<JitWilsonClover<f64>>, d32: Box<JitWilsonClover<f32>> },
}

impl Coarse {
    fn dirac64(&self) -> &JitWilsonClover<f64> {
        match self {
            Coarse::Basis(mg) => mg.dirac64(),
            Coarse::Pool { d64, .. } => d64,
        }
    }
    fn dirac32(&self) -> &JitWilsonClover<f32> {
        match self {
            Coarse::Basis(mg) => mg.dirac32(),
            Coarse::Pool { d32, .. } => d32,
        }
    }
    /// The multigrid of a near-null level, shared (P, P† and D_c of coarse layers).
    fn multigrid_ref(&self) -> Result<&Multigrid, RuntimeError> {
        match self {
            Coarse::Basis(mg) => Ok(mg),
            Coarse::Pool { .. } => Err(RuntimeError::Shape(
                "internal: a pooled level has no near-null multigrid".into(),
            )),
        }
    }
    /// The multigrid of a near-null level (the only kind with a coarse solve).
    fn multigrid(&mut self) -> Result<&mut Multigrid, RuntimeError> {
        match self {
            Coarse::Basis(mg) => Ok(mg),
            Coarse::Pool { .. } => Err(RuntimeError::Shape(
                "internal: a pooled level has no near-null multigrid".into(),
            )),
        }
    }
}

/// Scratch of the coarse correction (f64, reference layout).
struct Correction {
    mg: Coarse,
    b: Vec<Complex64>,
    c: Vec<Complex64>,
    /// f32 scratch of the native path (b, c, D c), kept between applications: a fresh
    /// zeroed buffer of this size is a fresh mmap, page-faulted in on every application,
    /// which cost ~8 % of a preconditioned solve.
    native: [Vec<f32>; 3],
    /// f32 reference-layout scratch of an f32 network's residual steps in training.
    b32: Vec<Complex<f32>>,
    c32: Vec<Complex<f32>>,
}

/// r ← r − D x on f32 buffers in the Dirac kernel's layout (`r` the main part; `x` a whole
/// buffer whose scratch tail the operator may overwrite, its main part survives; `dx` scratch,
/// grown as needed): the residual step every `correct` smoothing step shares.
fn sub_dirac_f32(
    mg: &Coarse,
    dx: &mut Vec<f32>,
    x: &mut [f32],
    r: &mut [f32],
) -> Result<(), RuntimeError> {
    let d = mg.dirac32();
    dx.resize(NativeOperator::buffer_len(d).max(dx.len()), 0.0);
    NativeOperator::apply(d, dx, x)
        .map_err(|e| RuntimeError::Shape(format!("multigrid level: {e}")))?;
    let n = r.len();
    r.iter_mut().zip(&dx[..n]).for_each(|(r, d)| *r -= *d);
    Ok(())
}

/// The fine layers' input buffer and the saved correction c of the native path (kept between
/// applications for the same reason as [`Correction::native`]).
#[derive(Default)]
struct FineScratch<T> {
    x: Vec<T>,
    c: Vec<T>,
    /// The fine layers' output of a further smoothing step.
    y: Vec<T>,
    /// Buffers of the native training step, kept between steps.
    spare: Vec<Vec<T>>,
}

/// A compiled multigrid network on one gauge field and Dirac operator.
pub struct MultigridNet<T: Element> {
    graph: Graph,
    level: Level,
    fine: LatticeNet<T>,
    correction: Mutex<Correction>,
    scratch: Mutex<FineScratch<T>>,
    setup: SetupReport,
    /// The fine network and the multigrid's f32 kernels put every site in the same slot, so
    /// the f32 coarse correction can run on the solver's vectors directly.
    native_f32: bool,
    /// A pooled level's executor (pooling, coarse network, unpooling).
    pool: Option<PoolLevel<T>>,
    /// A near-null level's coarse layers (the trained coarse model M_c instead of GMRES).
    layers: Option<JitCoarseLayers<T>>,
    /// Scalars of the level's own parameters at the start of the flat vector (0 for a
    /// near-null level): the fine layers take the rest.
    skip: usize,
}

impl<T: Element> MultigridNet<T> {
    /// Splits `graph` at its level, runs the set-up for `gauge` and `dirac` (or reuses the
    /// basis in `cache`, see [`BasisCache`]) and compiles the fine network.
    pub fn compile(
        graph: &Graph,
        gauge: &GaugeField,
        dirac: &DiracParams,
        cache: BasisCache<'_>,
    ) -> Result<Self, MultigridNetError> {
        let (level, fine_graph) =
            levels::split_level(graph).map_err(RuntimeError::from)?.ok_or_else(|| {
                RuntimeError::Shape(format!("model `{}` has no multigrid level", graph.name))
            })?;
        super::check_graph(&fine_graph, gauge)?;
        let fine = LatticeNet::<T>::compile(&fine_graph, gauge, &LatticeNetOptions::default())?;
        let (mg, pool, setup) = match multigrid_params(&level) {
            Some(params) => {
                let mg = match cache {
                    BasisCache::None => Multigrid::build(gauge, dirac, &params)?,
                    BasisCache::ReadWrite(p) => Multigrid::build_cached(gauge, dirac, &params, p)?,
                    BasisCache::ReadOnly(p) => {
                        Multigrid::build_read_cache(gauge, dirac, &params, p)?
                    }
                };
                let setup = mg.setup_report().clone();
                (Coarse::Basis(Box::new(mg)), None, setup)
            }
            None => {
                // Pooling needs no near-null set-up: its "set-up" is the transports, the
                // coarse gauge field and the kernels, reported as such.
                let t = std::time::Instant::now();
                let opts = DiracOptions::default();
                let d64 = Box::new(JitWilsonClover::<f64>::new(gauge, dirac, &opts)?);
                let d32 = Box::new(JitWilsonClover::<f32>::new(gauge, dirac, &opts)?);
                let compile_dirac_seconds = t.elapsed().as_secs_f64();
                let pool = PoolLevel::<T>::new(&level, gauge, fine.layout())?;
                let setup = SetupReport {
                    compile_coarse_seconds: pool.setup_seconds(),
                    total_seconds: t.elapsed().as_secs_f64(),
                    ..SetupReport::started(BasisSource::Pooling, compile_dirac_seconds)
                };
                (Coarse::Pool { d64, d32 }, Some(pool), setup)
            }
        };
        let skip = levels::level_scalars(graph);
        let layers = JitCoarseLayers::<T>::new(&level, gauge.dims())?;
        let native_f32 = fine.layout().same_sites(mg.dirac32().layout());
        let n = gauge.geom.volume() * 12;
        let zero = Complex64::new(0.0, 0.0);
        Ok(MultigridNet {
            graph: graph.clone(),
            level,
            fine,
            correction: Mutex::new(Correction {
                mg,
                b: vec![zero; n],
                c: vec![zero; n],
                native: Default::default(),
                b32: Vec::new(),
                c32: Vec::new(),
            }),
            scratch: Mutex::new(FineScratch::default()),
            setup,
            native_f32,
            pool,
            layers,
            skip,
        })
    }

    /// A pooled level's executor.
    pub fn pool(&self) -> Option<&PoolLevel<T>> {
        self.pool.as_ref()
    }

    /// A near-null level's coarse layers.
    pub fn coarse_layers(&self) -> Option<&JitCoarseLayers<T>> {
        self.layers.as_ref()
    }

    /// Runs `f` on the near-null level's multigrid (P, P†, D_c; `None` for a pooled level).
    pub fn with_multigrid<R>(&self, f: impl FnOnce(&Multigrid) -> R) -> Option<R> {
        let guard = self.correction.lock().unwrap_or_else(|e| e.into_inner());
        guard.mg.multigrid_ref().ok().map(f)
    }

    /// c = P M_c(P† b) with the coarse layers (P and P† in f64, the layers in T), keeping the
    /// layers' activations for the backward pass.
    fn layered_forward(
        &self,
        layers: &JitCoarseLayers<T>,
        params: &[T],
        b: &[Complex<T>],
    ) -> Result<LevelSaved<T>, RuntimeError> {
        let guard = self.correction.lock().unwrap_or_else(|e| e.into_inner());
        let t = guard.mg.multigrid_ref()?.transfer64();
        let zero = Complex64::new(0.0, 0.0);
        let mut b64 = vec![zero; b.len()];
        cast_into(&mut b64, b);
        let mut chi64 = vec![zero; layers.len()];
        Transfer::restrict(t, &b64, &mut chi64);
        let mut chi = vec![Complex::new(T::zero(), T::zero()); layers.len()];
        cast_into(&mut chi, &chi64);
        let acts = layers.forward(&params[..self.skip.min(params.len())], &chi)?;
        let y = acts.last().map(|v| &v[..]).unwrap_or(&chi);
        cast_into(&mut chi64, y);
        Transfer::prolong(t, &chi64, &mut b64);
        let mut c = vec![Complex::new(T::zero(), T::zero()); b.len()];
        cast_into(&mut c, &b64);
        Ok(LevelSaved::Layers { acts, c })
    }

    /// The coarse correction of a level with weights (pooled, or near-null with coarse
    /// layers) and what its backward pass needs; `None` for a coarse solve.
    fn weighted_forward(
        &self,
        params: &[T],
        b: &[Complex<T>],
    ) -> Result<Option<LevelSaved<T>>, RuntimeError> {
        if let Some(pool) = &self.pool {
            return Ok(Some(LevelSaved::Pool(pool.forward(params, b)?)));
        }
        match &self.layers {
            Some(layers) => self.layered_forward(layers, params, b).map(Some),
            None => Ok(None),
        }
    }

    /// The level's weight gradients into `grad_level` from h = ∂L/∂c.
    fn weighted_backward(
        &self,
        params: &[T],
        input: &[Complex<T>],
        saved: &LevelSaved<T>,
        h: &[Complex<T>],
        grad_level: &mut [T],
    ) -> Result<(), RuntimeError> {
        match (saved, &self.pool, &self.layers) {
            (LevelSaved::Pool(s), Some(pool), _) => pool.backward(params, input, s, h, grad_level),
            (LevelSaved::Layers { acts, .. }, _, Some(layers)) => {
                // c = P y, so ∂L/∂y = P† h.
                let guard = self.correction.lock().unwrap_or_else(|e| e.into_inner());
                let t = guard.mg.multigrid_ref()?.transfer64();
                let zero = Complex64::new(0.0, 0.0);
                let mut h64 = vec![zero; h.len()];
                cast_into(&mut h64, h);
                let mut g64 = vec![zero; layers.len()];
                Transfer::restrict(t, &h64, &mut g64);
                drop(guard);
                let mut g = vec![Complex::new(T::zero(), T::zero()); layers.len()];
                cast_into(&mut g, &g64);
                layers.backward(params, acts, &g, grad_level)?;
                Ok(())
            }
            _ => Err(RuntimeError::Shape("internal: level weights without their executor".into())),
        }
    }

    /// The fine layers' part of the flat parameter vector.
    fn fine_params<'p>(&self, params: &'p [T]) -> Result<&'p [T], RuntimeError> {
        params.get(self.skip..).ok_or_else(|| {
            RuntimeError::Shape(format!(
                "model `{}`: {} parameter scalars, the level alone has {}",
                self.graph.name,
                params.len(),
                self.skip
            ))
        })
    }

    /// The level (coarse space and coarse model).
    pub fn level(&self) -> &Level {
        &self.level
    }

    /// The fine network (the smoother).
    pub fn fine(&self) -> &LatticeNet<T> {
        &self.fine
    }

    /// The block-orthonormal near-null basis the set-up made (P's columns).
    pub fn basis(&self) -> Option<crate::lattice::blocks::BlockBasis> {
        match &self.correction.lock().unwrap_or_else(|e| e.into_inner()).mg {
            Coarse::Basis(mg) => Some(mg.basis().clone()),
            Coarse::Pool { .. } => None,
        }
    }

    /// What the set-up did and how long it took.
    pub fn setup_report(&self) -> &SetupReport {
        &self.setup
    }

    /// r = b − D x in the reference layout (b, x, r in T): the f32 Dirac kernel for an f32
    /// network (training needs no more precision than the network has), the f64 one for an
    /// f64 network (the finite-difference checks).
    fn residual(&self, b: &[Complex<T>], x: &[Complex<T>], r: &mut [Complex<T>]) {
        self.apply_dirac(x, false, |d, i| r[i] = b[i] - d);
    }

    /// g ← g − D† h in the reference layout, with D† = γ5 D γ5 (the Wilson-clover operator is
    /// γ5-hermitian): the gradient of a residual r = b − D x with respect to x is −D† ∂L/∂r.
    fn sub_dagger(&self, g: &mut [Complex<T>], h: &[Complex<T>]) {
        self.apply_dirac(h, true, |d, i| g[i] -= d);
    }

    /// D x (γ5 D γ5 x with `dagger`), each entry handed to `put(value, index)` in T.
    fn apply_dirac(&self, x: &[Complex<T>], dagger: bool, mut put: impl FnMut(Complex<T>, usize)) {
        let mut guard = self.correction.lock().unwrap_or_else(|e| e.into_inner());
        let Correction { mg, b: x64, c: d64, b32: x32, c32: d32, .. } = &mut *guard;
        if T::PRECISION == Precision::F32 {
            x32.resize(x.len(), Complex::new(0.0, 0.0));
            d32.resize(x.len(), Complex::new(0.0, 0.0));
            cast_into(x32, x);
            if dagger {
                gamma5_in_place(x32);
            }
            LinearOperator::apply(mg.dirac32(), d32, x32);
            if dagger {
                gamma5_in_place(d32);
            }
            for (i, d) in d32.iter().enumerate() {
                put(Complex::new(T::from_f64(d.re.into()), T::from_f64(d.im.into())), i);
            }
        } else {
            cast_into(x64, x);
            if dagger {
                gamma5_in_place(x64);
            }
            mg.dirac64().apply(d64, x64);
            if dagger {
                gamma5_in_place(d64);
            }
            for (i, d) in d64.iter().enumerate() {
                put(Complex::new(T::from_f64(d.re), T::from_f64(d.im)), i);
            }
        }
    }

    /// What the fine layers receive for the input `b` (one field, reference layout), and the
    /// coarse correction c (P M_c(P† b), or Unpool(M_c(Pool(b))) with the level's weights in
    /// `params`): `[b, c]` (two fields) for [`Connect::Concat`], the residual b − D c for
    /// [`Connect::Correct`].
    pub fn fine_input(
        &self,
        params: &[T],
        b: &[Complex<T>],
    ) -> Result<(Vec<Complex<T>>, Vec<Complex<T>>), RuntimeError> {
        self.fine_input_saved(params, b).map(|(x, c, _)| (x, c))
    }

    /// [`Self::fine_input`], and what a weighted level's backward pass needs.
    #[allow(clippy::type_complexity)]
    fn fine_input_saved(
        &self,
        params: &[T],
        b: &[Complex<T>],
    ) -> Result<(Vec<Complex<T>>, Vec<Complex<T>>, Option<LevelSaved<T>>), RuntimeError> {
        let n = self.fine.layout().volume() * 12;
        if b.len() != n {
            return Err(RuntimeError::Shape(format!(
                "model `{}` takes one fermion field of {n} complex numbers, got {}",
                self.graph.name,
                b.len()
            )));
        }
        let zero = Complex::new(T::zero(), T::zero());
        let saved = self.weighted_forward(params, b)?;
        let mut c_out = vec![zero; n];
        if saved.is_none() && self.native_f32 && T::PRECISION == Precision::F32 {
            // An f32 network on a near-null level (training): the solver's f32 cycle in the
            // kernels' layout, one conversion in and one out, instead of the f64 cycle in the
            // reference layout.
            let fl = self.fine.layout();
            let (len, main) = (fl.field_len(), fl.main_len());
            let fields = self.level.connect.features();
            let (mut xn, mut cn) = (vec![0.0f32; 2 * len], vec![0.0f32; len]);
            fl.to_aosoa(b, &mut xn[..len]);
            self.correct_native_f32(main, len, &mut xn, &mut cn)?;
            let mut x = vec![zero; fields * n];
            fl.from_aosoa(&xn[..fields * len], &mut x);
            match self.level.connect {
                Connect::Concat => c_out.copy_from_slice(&x[n..]),
                Connect::Correct => fl.from_aosoa(&cn, &mut c_out),
            }
            return Ok((x, c_out, None));
        }
        let mut guard = self.correction.lock().unwrap_or_else(|e| e.into_inner());
        let Correction { mg, b: b64, c, .. } = &mut *guard;
        match &saved {
            Some(s) => {
                c_out.copy_from_slice(s.c());
                cast_into(c, s.c());
            }
            None => {
                cast_into(b64, b);
                mg.multigrid()?.preconditioner64().apply(c, b64);
                cast_into(&mut c_out, c);
            }
        }
        let x = match self.level.connect {
            Connect::Concat => {
                let mut x = vec![zero; 2 * n];
                x[..n].copy_from_slice(b);
                x[n..].copy_from_slice(&c_out);
                x
            }
            Connect::Correct => {
                // r = b − D c, in f64: b64 is no longer needed, so it receives D c.
                let mut dc = std::mem::take(b64);
                dc.resize(n, Complex64::new(0.0, 0.0));
                mg.dirac64().apply(&mut dc, c);
                let mut x = vec![zero; n];
                for ((xi, bi), di) in x.iter_mut().zip(b).zip(&dc) {
                    *xi = *bi - Complex::new(T::from_f64(di.re), T::from_f64(di.im));
                }
                *b64 = dc;
                x
            }
        };
        Ok((x, c_out, saved))
    }
}

impl<T: Element> FermionNet<T> for MultigridNet<T> {
    fn graph(&self) -> &Graph {
        &self.graph
    }

    fn forward(
        &self,
        params: &[T],
        input: &[Complex<T>],
        output: &mut [Complex<T>],
    ) -> Result<(), RuntimeError> {
        let (x, c) = self.fine_input(params, input)?;
        let fp = self.fine_params(params)?;
        self.fine.forward(fp, &x, output)?;
        if self.level.connect == Connect::Correct {
            output.iter_mut().zip(&c).for_each(|(o, c)| *o += *c);
            let (mut r, mut y) = (x, c);
            for _ in 1..self.level.smoothing {
                self.residual(input, output, &mut r);
                self.fine.forward(fp, &r, &mut y)?;
                output.iter_mut().zip(&y).for_each(|(o, y)| *o += *y);
            }
        }
        Ok(())
    }

    fn forward_backward_seeded(
        &self,
        params: &[T],
        input: &[Complex<T>],
        seed: &mut dyn FnMut(&[Complex<T>], &mut [Complex<T>]),
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        let (x, c, saved) = self.fine_input_saved(params, input)?;
        let fp = self.fine_params(params)?;
        if grad_params.len() < self.skip {
            return Err(RuntimeError::Shape(format!(
                "model `{}`: a gradient of {} scalars, the level alone has {}",
                self.graph.name,
                grad_params.len(),
                self.skip
            )));
        }
        let (grad_level, grad_fine) = grad_params.split_at_mut(self.skip);
        let pooled = saved.is_some();
        let zero = Complex::new(T::zero(), T::zero());
        let n = input.len();
        // ∂L/∂c, needed only when c depends on weights (a pooled level).
        let h_c = match self.level.connect {
            Connect::Concat => {
                let mut gin = pooled.then(|| vec![zero; 2 * n]);
                self.fine.forward_backward(fp, &x, None, seed, gin.as_deref_mut(), grad_fine)?;
                gin.map(|g| g[n..].to_vec())
            }
            Connect::Correct if self.level.smoothing == 1 && !pooled => {
                // M(b) = c + S(r): the loss sees the sum; c does not depend on the weights, so
                // the output gradient passes to S unchanged.
                let seed_sum = |y: &[Complex<T>], g: &mut [Complex<T>]| {
                    let m: Vec<Complex<T>> = y.iter().zip(&c).map(|(y, c)| *y + *c).collect();
                    seed(&m, g)
                };
                self.fine.forward_backward(fp, &x, None, seed_sum, None, grad_fine)?;
                None
            }
            Connect::Correct => {
                // x_0 = c, r_k = b − D x_k, x_{k+1} = x_k + S(r_k), M = x_N. Forward, keeping
                // every r_k; then back from h = ∂L/∂M: step k adds S's weight gradient at
                // (r_k, h) and h ← h − D† S^T h (x_k enters x_{k+1} directly and through r_k),
                // for k > 0, and for k = 0 too when c has weights: then h ends as ∂L/∂c.
                let steps = self.level.smoothing;
                let mut m = c;
                let mut rs = vec![x];
                let mut y = vec![zero; n];
                for k in 0..steps {
                    if k > 0 {
                        let mut r = vec![zero; n];
                        self.residual(input, &m, &mut r);
                        rs.push(r);
                    }
                    self.fine.forward(fp, &rs[k], &mut y)?;
                    m.iter_mut().zip(&y).for_each(|(o, y)| *o += *y);
                }
                let mut h = vec![zero; n];
                seed(&m, &mut h);
                grad_fine.iter_mut().for_each(|g| *g = T::zero());
                let mut step_grad = vec![T::zero(); grad_fine.len()];
                let mut gin = vec![zero; n];
                for k in (0..steps).rev() {
                    // S's output at r_k was computed above: only its gradients are needed.
                    let back = k > 0 || pooled;
                    let gi = back.then_some(&mut gin[..]);
                    self.fine.backward_partial(fp, &rs[k], &h, gi, &mut step_grad)?;
                    grad_fine.iter_mut().zip(&step_grad).for_each(|(a, g)| *a += *g);
                    if back {
                        self.sub_dagger(&mut h, &gin);
                    }
                }
                pooled.then_some(h)
            }
        };
        if let (Some(saved), Some(h)) = (&saved, h_c) {
            self.weighted_backward(params, input, saved, &h, grad_level)?;
        }
        Ok(())
    }

    /// On the solver's vectors (`native.rs`).
    fn forward_native(
        &self,
        params: &[T],
        layout: &SiteLayout,
        input: &mut [T],
        output: &mut [T],
    ) -> Result<(), RuntimeError> {
        self.forward_native_impl(params, layout, input, output)
    }

    /// A training step on the solver's vectors (`native.rs`).
    fn forward_backward_native(
        &self,
        params: &[T],
        layout: &SiteLayout,
        input: &mut [T],
        seed: &mut dyn FnMut(&[T], &mut [T]),
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        self.forward_backward_native_impl(params, layout, input, seed, grad_params)
    }

    fn native_buffer_len(&self) -> usize {
        self.fine.layout().field_len()
    }

    fn multigrid_setup(&self) -> Option<&SetupReport> {
        Some(&self.setup)
    }
}

/// What the forward pass of a level with weights keeps for its backward pass.
enum LevelSaved<T> {
    Pool(PoolSaved<T>),
    /// The coarse layers' activations (input of each layer, then the output) and c.
    Layers {
        acts: Vec<Vec<Complex<T>>>,
        c: Vec<Complex<T>>,
    },
}

impl<T> LevelSaved<T> {
    /// The coarse correction on the fine lattice.
    fn c(&self) -> &[Complex<T>] {
        match self {
            LevelSaved::Pool(s) => &s.c,
            LevelSaved::Layers { c, .. } => c,
        }
    }
}

/// Why a multigrid network could not be built.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum MultigridNetError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Multigrid(#[from] MultigridError),
}
