//! A multigrid network (a `.sym` network whose first layer is a near-null `level` with a
//! coarse solve, as the main job `models/ptc_precond.sym`) on one process's sub-lattice: the
//! level's coarse correction c = P D_c⁻¹ P† b on [`DistMultigrid`], the fine layers on
//! [`DistLatticeNet`], the residuals b − D x on the sub-lattice operator. The same formulas as
//! `runtime::multigrid_net` (M(b) = c + S(b − D c), repeated for `smoothing` steps, or
//! S([b, c])), so a split run follows the single-process one to round-off.
//!
//! A level with coarse layers (the paper's trained coarse model instead of the coarse solve)
//! runs them on the whole coarse vector on every process, as the coarse solve does: P† b is
//! all-gathered, every process applies the same layers to the same vector, and P is local.
//! Their weight gradient comes from P† of ∂L/∂c, all-gathered too, so it is the same on every
//! process and is not summed; the fine layers' gradients are accumulated over the smoothing
//! steps on this process's sites and summed over the processes once per step. The pieces that
//! make MPI calls (the multigrid and its operator) are kept on the main thread behind a
//! [`Funneled`] handle, so the network is `Send + Sync` like every network.

use super::comm::{Comm, Funneled};
use super::grid::ProcessGrid;
use super::multigrid::DistMultigrid;
use super::net::DistLatticeNet;
use crate::codegen::lattice_layout::SiteLayout;
use crate::ir::{Connect, Graph, Level, levels, retarget};
use crate::lattice::fermion::gamma5_in_place;
use crate::lattice::gauge::GaugeField;
use crate::lattice::wilson::DiracParams;
use crate::runtime::coarse_layers::JitCoarseLayers;
use crate::runtime::multigrid::SetupReport;
use crate::runtime::multigrid_net::{
    BasisCache, MultigridNetError, multigrid_params, split_refusal,
};
use crate::runtime::{FermionNet, RuntimeError, forward_backward_via_reference};
use crate::solve::{LinearOperator, NativeOperator, NativePreconditioner};
use num_complex::Complex;
use std::sync::Mutex;

type C32 = Complex<f32>;
/// The coarse layers' activations of one forward pass (`None` for a coarse solve).
type Acts = Option<Vec<Vec<C32>>>;

/// A near-null multigrid network on this process's part of the lattice.
pub struct DistMultigridNet {
    /// The model on this process's sub-lattice.
    graph: Graph,
    level: Level,
    fine: DistLatticeNet<f32>,
    mg: Funneled<DistMultigrid>,
    /// The level's coarse layers, on the whole coarse lattice (`None`: a coarse solve).
    layers: Option<JitCoarseLayers<f32>>,
    setup: SetupReport,
    /// f32 buffers of the native path (b, x, r, S(r)), kept between applications.
    scratch: Mutex<[Vec<f32>; 4]>,
    /// Buffers of the native training step, kept between steps.
    spare: Mutex<Vec<Vec<f32>>>,
}

impl DistMultigridNet {
    /// `graph` split at its level: the set-up on `grid`'s sub-lattice of `gauge` for `dirac`
    /// (the basis from `cache` if it was made for this set-up; rank 0 reads and writes it), the
    /// fine layers compiled for the sub-lattice. Collective.
    pub fn compile(
        comm: &Comm,
        grid: &ProcessGrid,
        graph: &Graph,
        gauge: &GaugeField,
        dirac: &DiracParams,
        cache: BasisCache<'_>,
    ) -> Result<Self, MultigridNetError> {
        let (level, fine_graph) =
            levels::split_level(graph).map_err(RuntimeError::from)?.ok_or_else(|| {
                RuntimeError::Shape(format!("model `{}` has no multigrid level", graph.name))
            })?;
        let params = match (split_refusal(&level), multigrid_params(&level)) {
            (None, Some(p)) => p,
            (why, _) => {
                return Err(RuntimeError::Shape(format!(
                    "model `{}` cannot run split over processes: {}",
                    graph.name,
                    why.unwrap_or("no near-null level")
                ))
                .into());
            }
        };
        crate::runtime::check_graph(&fine_graph, gauge)?;
        let fine = DistLatticeNet::<f32>::compile(comm, grid, &fine_graph, gauge)?;
        let mg = DistMultigrid::build(comm, grid, gauge, dirac, &params, cache)?;
        let setup = mg.setup_report().clone();
        let layers = JitCoarseLayers::<f32>::new(&level, gauge.dims())?;
        // What callers size their vectors by: this process's sub-lattice, as the fine net's.
        let graph = retarget::split_view(graph, grid.local).map_err(|e| {
            RuntimeError::Shape(format!("splitting `{}` over processes: {e}", graph.name))
        })?;
        Ok(DistMultigridNet {
            graph,
            level,
            fine,
            mg: Funneled::new(mg),
            layers,
            setup,
            scratch: Mutex::new(Default::default()),
            spare: Mutex::new(Vec::new()),
        })
    }

    /// Scalars of a buffer of the native paths: what the multigrid cycle, the operator and
    /// the fine layers each need of it.
    fn native_len(&self, layout: &SiteLayout) -> Result<usize, RuntimeError> {
        let mg = self.with_mg(|m| {
            NativePreconditioner::buffer_len(&m.native()).max(m.dirac32().buffer_len())
        })?;
        Ok(mg.max(self.fine.native_buffer_len()).max(layout.field_len()))
    }

    fn with_mg<R>(&self, f: impl FnOnce(&mut DistMultigrid) -> R) -> Result<R, RuntimeError> {
        self.mg.with(f).map_err(RuntimeError::Shape)
    }

    /// c = P D_c⁻¹ P† b, or c = P M_c(P† b) with coarse layers (the level's coarse
    /// correction), on this process's sites; with coarse layers also their activations (what
    /// [`Self::layers_backward`] needs).
    fn correction(&self, params: &[f32], b: &[C32]) -> Result<(Vec<C32>, Acts), RuntimeError> {
        let mut c = vec![C32::new(0.0, 0.0); b.len()];
        let Some(layers) = &self.layers else {
            self.with_mg(|m| m.apply_reference(&mut c, b))?
                .map_err(|e| RuntimeError::Shape(format!("multigrid level: {e}")))?;
            return Ok((c, None));
        };
        let chi = self.restrict_reference(b)?;
        let acts = layers.forward(self.level_params(params), &chi)?;
        let y = acts.last().map(|v| &v[..]).unwrap_or(&chi);
        self.with_mg(|m| -> Result<(), String> {
            let layout = m.dirac32().layout().clone();
            let mut buf = vec![0.0f32; layout.field_len()];
            m.prolong(y, &mut buf)?;
            layout.from_aosoa(&buf, &mut c);
            Ok(())
        })?
        .map_err(|e| RuntimeError::Shape(format!("multigrid level: {e}")))?;
        Ok((c, Some(acts)))
    }

    /// P† v, all-gathered: the whole coarse vector of this process's part `v` (reference
    /// layout).
    fn restrict_reference(&self, v: &[C32]) -> Result<Vec<C32>, RuntimeError> {
        self.with_mg(|m| -> Result<Vec<C32>, String> {
            let layout = m.dirac32().layout().clone();
            let mut buf = vec![0.0f32; layout.field_len()];
            layout.to_aosoa(v, &mut buf);
            let mut chi = vec![C32::new(0.0, 0.0); m.coarse_len()];
            m.restrict(&buf, &mut chi)?;
            Ok(chi)
        })?
        .map_err(|e| RuntimeError::Shape(format!("multigrid level: {e}")))
    }

    /// The coarse layers' weight gradient from h = ∂L/∂c (this process's part): ∂L/∂y = P† h,
    /// the same on every process, through the layers' backward pass into `grad_level`.
    fn layers_backward(
        &self,
        params: &[f32],
        acts: &[Vec<C32>],
        h: &[C32],
        grad_level: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let Some(layers) = &self.layers else { return Ok(()) };
        let g = self.restrict_reference(h)?;
        layers.backward(self.level_params(params), acts, &g, grad_level)?;
        Ok(())
    }

    /// The level's part of the flat parameter vector (its coarse layers' weights).
    fn level_params<'p>(&self, params: &'p [f32]) -> &'p [f32] {
        &params[..levels::level_scalars(&self.graph).min(params.len())]
    }

    /// D x, or D† x = γ5 D γ5 x with `dagger`.
    fn dirac(&self, x: &[C32], dagger: bool) -> Result<Vec<C32>, RuntimeError> {
        let mut inp = x.to_vec();
        if dagger {
            gamma5_in_place(&mut inp);
        }
        let mut out = vec![C32::new(0.0, 0.0); x.len()];
        self.with_mg(|m| LinearOperator::apply(m.dirac32(), &mut out, &inp))?;
        if dagger {
            gamma5_in_place(&mut out);
        }
        Ok(out)
    }

    /// r = b − D x.
    fn residual(&self, b: &[C32], x: &[C32]) -> Result<Vec<C32>, RuntimeError> {
        let mut r = self.dirac(x, false)?;
        r.iter_mut().zip(b).for_each(|(r, b)| *r = *b - *r);
        Ok(r)
    }

    /// What the fine layers receive first, c, and the coarse layers' activations: `[b, c]`
    /// for `concat`, b − D c for `correct`.
    fn fine_input(
        &self,
        params: &[f32],
        b: &[C32],
    ) -> Result<(Vec<C32>, Vec<C32>, Acts), RuntimeError> {
        let n = self.fine.local().layout().volume() * 12;
        if b.len() != n {
            return Err(RuntimeError::Shape(format!(
                "model `{}` takes one fermion field of {n} complex numbers on this process, got {}",
                self.graph.name,
                b.len()
            )));
        }
        let (c, acts) = self.correction(params, b)?;
        let x = match self.level.connect {
            Connect::Concat => [b, &c[..]].concat(),
            Connect::Correct => self.residual(b, &c)?,
        };
        Ok((x, c, acts))
    }

    /// The fine layers' part of the flat parameter vector (after the level's).
    fn fine_params<'p>(&self, params: &'p [f32]) -> &'p [f32] {
        &params[levels::level_scalars(&self.graph).min(params.len())..]
    }
}

impl FermionNet<f32> for DistMultigridNet {
    fn graph(&self) -> &Graph {
        &self.graph
    }

    fn forward(
        &self,
        params: &[f32],
        input: &[C32],
        output: &mut [C32],
    ) -> Result<(), RuntimeError> {
        let (x, c, _) = self.fine_input(params, input)?;
        let fp = self.fine_params(params);
        let net = self.fine.local();
        net.forward(fp, &x, output)?;
        if self.level.connect == Connect::Correct {
            output.iter_mut().zip(&c).for_each(|(o, c)| *o += *c);
            let mut y = c;
            for _ in 1..self.level.smoothing {
                let r = self.residual(input, output)?;
                net.forward(fp, &r, &mut y)?;
                output.iter_mut().zip(&y).for_each(|(o, y)| *o += *y);
            }
        }
        Ok(())
    }

    fn forward_backward_seeded(
        &self,
        params: &[f32],
        input: &[C32],
        seed: &mut dyn FnMut(&[C32], &mut [C32]),
        grad_params: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let (x, c, acts) = self.fine_input(params, input)?;
        let skip = levels::level_scalars(&self.graph).min(grad_params.len());
        let (grad_level, grad) = grad_params.split_at_mut(skip);
        let fp = self.fine_params(params);
        let net = self.fine.local();
        let n = input.len();
        // h = ∂L/∂c, what the coarse layers' gradient needs (only computed with them).
        let mut h_c = None;
        match self.level.connect {
            Connect::Concat => {
                let mut gin = acts.as_ref().map(|_| vec![C32::new(0.0, 0.0); 2 * n]);
                net.forward_backward(fp, &x, None, |y, g| seed(y, g), gin.as_deref_mut(), grad)?;
                h_c = gin.map(|g| g[n..].to_vec());
            }
            Connect::Correct if self.level.smoothing == 1 && acts.is_none() => {
                // M(b) = c + S(r); c has no weights, so ∂L/∂M passes to S unchanged.
                let seed_sum = |y: &[C32], g: &mut [C32]| {
                    let m: Vec<C32> = y.iter().zip(&c).map(|(y, c)| *y + *c).collect();
                    seed(&m, g)
                };
                net.forward_backward(fp, &x, None, seed_sum, None, grad)?;
            }
            Connect::Correct => {
                // x_0 = c, r_k = b − D x_k, x_{k+1} = x_k + S(r_k); back from h = ∂L/∂M:
                // each step adds S's weight gradient at (r_k, h), and h ← h − D† Sᵀ h takes
                // it to ∂L/∂x_k (as `runtime::multigrid_net`), down to ∂L/∂c with coarse
                // layers.
                let steps = self.level.smoothing;
                let mut m = c;
                let mut rs = vec![x];
                let mut y = vec![C32::new(0.0, 0.0); n];
                for k in 0..steps {
                    if k > 0 {
                        rs.push(self.residual(input, &m)?);
                    }
                    net.forward(fp, &rs[k], &mut y)?;
                    m.iter_mut().zip(&y).for_each(|(o, y)| *o += *y);
                }
                let mut h = vec![C32::new(0.0, 0.0); n];
                seed(&m, &mut h);
                grad.iter_mut().for_each(|g| *g = 0.0);
                let mut step = vec![0.0f32; grad.len()];
                let mut gin = vec![C32::new(0.0, 0.0); n];
                let last = usize::from(acts.is_none());
                for k in (0..steps).rev() {
                    let gi = (k >= last).then_some(&mut gin[..]);
                    net.backward_partial(fp, &rs[k], &h, gi, &mut step)?;
                    grad.iter_mut().zip(&step).for_each(|(a, g)| *a += *g);
                    if k >= last {
                        let d = self.dirac(&gin, true)?;
                        h.iter_mut().zip(&d).for_each(|(h, d)| *h -= *d);
                    }
                }
                if acts.is_some() {
                    h_c = Some(h);
                }
            }
        }
        if let (Some(acts), Some(h)) = (&acts, &h_c) {
            self.layers_backward(params, acts, h, grad_level)?;
        }
        self.fine.sum_over_processes(grad)
    }

    /// On the solver's f32 vectors (`correct`): the coarse correction, the residuals and the
    /// smoothing steps all on the Dirac kernel's layout, which the fine layers share, so nothing
    /// is converted inside an iteration (`concat`, or another layout, takes the default path).
    fn forward_native(
        &self,
        params: &[f32],
        layout: &SiteLayout,
        input: &mut [f32],
        output: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let same = self.with_mg(|m| m.dirac32().layout().same_sites(layout))?;
        if self.level.connect != Connect::Correct || !same {
            let n = layout.volume() * 12;
            let (mut a, mut b) = (vec![C32::new(0.0, 0.0); n], vec![C32::new(0.0, 0.0); n]);
            layout.from_aosoa(input, &mut a);
            self.forward(params, &a, &mut b)?;
            layout.to_aosoa(&b, output);
            return Ok(());
        }
        let main = layout.main_len();
        if input.len() < main || output.len() < main {
            return Err(RuntimeError::Shape(format!(
                "network `{}`: buffers of {} and {} scalars, it needs {main}",
                self.graph.name,
                input.len(),
                output.len()
            )));
        }
        let fp = self.fine_params(params);
        let fail = |e: String| RuntimeError::Shape(format!("multigrid level: {e}"));
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let [b, x, r, y] = &mut *guard;
        let len = self.native_len(layout)?;
        for v in [&mut *b, &mut *x, &mut *r, &mut *y] {
            v.resize(len, 0.0);
        }
        b[..main].copy_from_slice(&input[..main]);
        // x = c = P D_c⁻¹ P† b, or P M_c(P† b) with coarse layers (on every process, on the
        // all-gathered coarse vector).
        match &self.layers {
            None => self.with_mg(|m| m.native().apply(x, b))?.map_err(fail)?,
            Some(layers) => {
                let chi = self
                    .with_mg(|m| {
                        let mut chi = vec![C32::new(0.0, 0.0); m.coarse_len()];
                        let fl = m.dirac32().layout().field_len();
                        m.restrict(&b[..fl], &mut chi).map(|()| chi)
                    })?
                    .map_err(fail)?;
                let y = layers.apply(self.level_params(params), &chi)?;
                self.with_mg(|m| m.prolong(&y, &mut x[..m.dirac32().layout().field_len()]))?
                    .map_err(fail)?;
            }
        }
        for _ in 0..self.level.smoothing {
            // r = b − D x, then x ← x + S(r).
            self.with_mg(|m| NativeOperator::apply(m.dirac32(), r, x))?.map_err(fail)?;
            r[..main].iter_mut().zip(&input[..main]).for_each(|(r, b)| *r = *b - *r);
            self.fine.forward_native(fp, layout, r, y)?;
            x[..main].iter_mut().zip(&y[..main]).for_each(|(x, y)| *x += *y);
        }
        output[..main].copy_from_slice(&x[..main]);
        Ok(())
    }

    /// A training step on the operator's f32 buffers (`correct`): the passes of
    /// [`Self::forward_backward_seeded`] without leaving the layout, −D† as −γ5 D γ5 on the
    /// sub-lattice operator (`concat`, or another layout, converts).
    fn forward_backward_native(
        &self,
        params: &[f32],
        layout: &SiteLayout,
        input: &mut [f32],
        seed: &mut dyn FnMut(&[f32], &mut [f32]),
        grad_params: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let same = self.with_mg(|m| m.dirac32().layout().same_sites(layout))?
            && self.fine.local().layout().same_sites(layout);
        let main = layout.main_len();
        // Coarse layers need ∂L/∂c, which the reference-layout pass computes.
        if self.level.connect != Connect::Correct
            || !same
            || input.len() < main
            || self.layers.is_some()
        {
            return forward_backward_via_reference(self, params, layout, input, seed, grad_params);
        }
        let skip = levels::level_scalars(&self.graph).min(grad_params.len());
        let (_, grad) = grad_params.split_at_mut(skip);
        let fp = self.fine_params(params);
        let net = self.fine.local();
        let fail = |e: String| RuntimeError::Shape(format!("multigrid level: {e}"));
        let len = self.native_len(layout)?;
        let mut spare = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|e| e.into_inner()));
        let mut fresh = || {
            let mut v = spare.pop().unwrap_or_default();
            v.resize(len, 0.0);
            v
        };
        let (mut x, mut b, mut y) = (fresh(), fresh(), fresh());
        b[..main].copy_from_slice(&input[..main]);
        // x_0 = c = P D_c⁻¹ P† b, r_k = b − D x_k, x_{k+1} = x_k + S(r_k); back from
        // h = ∂L/∂M as in `forward_backward_seeded`.
        self.with_mg(|m| m.native().apply(&mut x, &mut b))?.map_err(fail)?;
        let steps = self.level.smoothing;
        let mut rs = Vec::with_capacity(steps);
        for k in 0..steps {
            let mut r = fresh();
            self.with_mg(|m| NativeOperator::apply(m.dirac32(), &mut r, &mut x))?.map_err(fail)?;
            r[..main].iter_mut().zip(&input[..main]).for_each(|(r, b)| *r = *b - *r);
            rs.push(r);
            net.forward_aosoa(fp, &mut rs[k], &mut y)?;
            x[..main].iter_mut().zip(&y[..main]).for_each(|(x, y)| *x += *y);
        }
        let mut h = y;
        seed(&x[..main], &mut h[..main]);
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut step = vec![0.0f32; grad.len()];
        let (mut gin, mut dg) = (fresh(), fresh());
        for k in (0..steps).rev() {
            let gi = (k > 0).then_some(&mut gin[..]);
            net.backward_partial_aosoa(fp, &mut rs[k], &h, gi, &mut step)?;
            grad.iter_mut().zip(&step).for_each(|(a, g)| *a += *g);
            if k > 0 {
                layout.gamma5_main(&mut gin);
                self.with_mg(|m| NativeOperator::apply(m.dirac32(), &mut dg, &mut gin))?
                    .map_err(fail)?;
                layout.gamma5_main(&mut dg);
                h[..main].iter_mut().zip(&dg[..main]).for_each(|(h, d)| *h -= *d);
            }
        }
        let used = rs.into_iter().chain([x, b, h, gin, dg]);
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).extend(used);
        self.fine.sum_over_processes(grad)
    }

    fn native_buffer_len(&self) -> usize {
        self.fine.native_buffer_len()
    }

    fn multigrid_setup(&self) -> Option<&SetupReport> {
        Some(&self.setup)
    }
}
