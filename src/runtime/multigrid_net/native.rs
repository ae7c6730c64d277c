//! A multigrid network on the solver's own vectors: f32 buffers in the Dirac kernel's layout
//! (the mixed-precision solver's, and one-process training's). A near-null level's coarse
//! correction (f32 P†, coarse GMRES, P), the residual steps b − D x and the fine layers then
//! never leave the layout, and a training step differentiates through the smoothing steps on
//! the same buffers (through −D† = −γ5 D γ5). Levels with weights (pooled, coarse layers)
//! convert at the level and run the rest natively; networks in f64 go through the reference
//! layout. Split from `multigrid_net.rs`, which keeps the reference-layout passes (the oracle
//! of these).

use super::{Connect, Correction, FineScratch, MultigridNet, sub_dirac_f32};
use crate::codegen::lattice_layout::SiteLayout;
use crate::codegen::simd::{Element, Precision};
use crate::runtime::{RuntimeError, forward_backward_via_reference};
use crate::solve::{LinearOperator, NativeOperator, NativePreconditioner, Preconditioner};
use num_complex::Complex;

/// A buffer of `n` scalars from `spare` (recycled: fresh buffers of this size are
/// page-faulted in on every step), contents arbitrary.
fn take<T: Element>(spare: &mut Vec<Vec<T>>, n: usize) -> Vec<T> {
    let mut v = spare.pop().unwrap_or_default();
    v.resize(n, T::zero());
    v
}

/// An f32 view of a buffer of an f32 network.
fn f32s<T: Element>(v: &mut [T]) -> Result<&mut [f32], RuntimeError> {
    bytemuck::try_cast_slice_mut::<T, f32>(v)
        .map_err(|e| RuntimeError::Shape(format!("multigrid level: {e}")))
}

impl<T: Element> MultigridNet<T> {
    /// The coarse correction on f32 buffers in the kernels' layout (the solver's own vectors):
    /// the multigrid's native cycle (f32 P†, coarse GMRES, P) and, for `correct`, its f32 Dirac
    /// kernel, so nothing leaves the layout or the precision inside an iteration. `x` holds b in
    /// its first field's main part and receives the fine layers' input; `c_out` receives c.
    pub(super) fn correct_native_f32(
        &self,
        main: usize,
        len: usize,
        x: &mut [f32],
        c_out: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let mut guard = self.correction.lock().unwrap_or_else(|e| e.into_inner());
        let Correction { mg, native, .. } = &mut *guard;
        let buf = NativeOperator::buffer_len(mg.dirac32()).max(len);
        let fail = |e: String| RuntimeError::Shape(format!("multigrid level: {e}"));
        let [b, c, dc] = native;
        // Every buffer is written (main part) before it is read; the kernels may use the
        // tails as scratch, so stale contents there never matter.
        b.resize(buf, 0.0);
        let multigrid = mg.multigrid()?;
        c.resize(buf.max(multigrid.native().buffer_len()), 0.0);
        b[..main].copy_from_slice(&x[..main]);
        multigrid.native().apply(c, b).map_err(fail)?;
        match self.level.connect {
            Connect::Concat => x[len..len + main].copy_from_slice(&c[..main]),
            Connect::Correct => {
                // x holds b: it becomes the residual b − D c.
                sub_dirac_f32(mg, dc, c, &mut x[..main])?;
                c_out[..main].copy_from_slice(&c[..main]);
            }
        }
        Ok(())
    }

    /// c = the coarse correction of a level with weights, on buffers of the fine layout (main
    /// parts; `b` is read, `c` written): pooling, the coarse network and unpooling on the pool's
    /// JIT transfer, or the multigrid's JIT P† and P (in the network's precision) around the
    /// coarse layers. Nothing is converted to the reference layout or kept for a backward pass.
    /// The multigrid's layout may want longer buffers than the fine layers' (its kernels use
    /// the tail as scratch): then b and c go through buffers from `spare`.
    fn weighted_correct_native(
        &self,
        params: &[T],
        b: &[T],
        c: &mut [T],
        spare: &mut Vec<Vec<T>>,
    ) -> Result<(), RuntimeError> {
        if let Some(pool) = &self.pool {
            return pool.correct_aosoa(params, b, c);
        }
        let Some(layers) = &self.layers else {
            return Err(RuntimeError::Shape("internal: a coarse solve has no weights".into()));
        };
        let guard = self.correction.lock().unwrap_or_else(|e| e.into_inner());
        let mg = guard.mg.multigrid_ref()?;
        // The transfer in the network's own precision (T is f32 or f64).
        let any: [&dyn std::any::Any; 2] = [mg.transfer32(), mg.transfer64()];
        let t = any
            .iter()
            .find_map(|a| a.downcast_ref::<crate::runtime::coarse::JitBlockTransfer<T>>())
            .ok_or_else(|| RuntimeError::Shape("internal: no transfer of this precision".into()))?;
        let (main, tl) = (self.fine.layout().main_len(), t.layout().field_len());
        let mut chi = vec![Complex::new(T::zero(), T::zero()); layers.len()];
        if b.len() >= tl {
            t.restrict_aosoa(&b[..tl], &mut chi)?;
        } else {
            let mut bt = take(spare, tl);
            bt[..main].copy_from_slice(&b[..main]);
            t.restrict_aosoa(&bt, &mut chi)?;
            spare.push(bt);
        }
        let acts = layers.forward(&params[..self.skip.min(params.len())], &chi)?;
        let y = acts.last().map(|v| &v[..]).unwrap_or(&chi);
        if c.len() >= tl {
            t.prolong_aosoa(y, &mut c[..tl])
        } else {
            let mut ct = take(spare, tl);
            t.prolong_aosoa(y, &mut ct)?;
            c[..main].copy_from_slice(&ct[..main]);
            spare.push(ct);
            Ok(())
        }
    }

    /// x ← x + S(b − D x) on the kernels' layout (main parts; `input` holds b): one further
    /// smoothing step of `connect = correct`. `fine_in` and `y` are scratch of at least one
    /// field.
    pub(super) fn smooth_native(
        &self,
        params: &[T],
        input: &[T],
        output: &mut [T],
        fine_in: &mut [T],
        y: &mut [T],
    ) -> Result<(), RuntimeError> {
        let fl = self.fine.layout();
        let (len, main) = (fl.field_len(), fl.main_len());
        let f32_views = (self.native_f32 && T::PRECISION == Precision::F32)
            .then(|| {
                Some((
                    bytemuck::try_cast_slice::<T, f32>(&output[..main]).ok()?,
                    bytemuck::try_cast_slice_mut::<T, f32>(&mut fine_in[..len]).ok()?,
                ))
            })
            .flatten();
        if let Some((x32, r32)) = f32_views {
            let mut guard = self.correction.lock().unwrap_or_else(|e| e.into_inner());
            let Correction { mg, native, .. } = &mut *guard;
            let [_, c, dc] = native;
            c.resize(NativeOperator::buffer_len(mg.dirac32()).max(len).max(c.len()), 0.0);
            c[..main].copy_from_slice(x32);
            let b32 = bytemuck::try_cast_slice::<T, f32>(&input[..main])
                .map_err(|e| RuntimeError::Shape(format!("multigrid level: {e}")))?;
            r32[..main].copy_from_slice(b32);
            sub_dirac_f32(mg, dc, c, &mut r32[..main])?;
        } else {
            let n = fl.volume() * 12;
            let zero = Complex::new(T::zero(), T::zero());
            let (mut b, mut x, mut r) = (vec![zero; n], vec![zero; n], vec![zero; n]);
            fl.from_aosoa(&input[..len.min(input.len())], &mut b);
            fl.from_aosoa(&output[..len.min(output.len())], &mut x);
            self.residual(&b, &x, &mut r);
            fl.to_aosoa(&r, &mut fine_in[..len]);
        }
        self.fine.forward_aosoa(self.fine_params(params)?, fine_in, y)?;
        output[..main].iter_mut().zip(&y[..main]).for_each(|(o, y)| *o += *y);
        Ok(())
    }

    /// On the solver's vectors: b stays in the kernel layout; only the coarse correction (and,
    /// for `correct`, D c) goes through the reference layout, in f64.
    pub(super) fn forward_native_impl(
        &self,
        params: &[T],
        layout: &SiteLayout,
        input: &mut [T],
        output: &mut [T],
    ) -> Result<(), RuntimeError> {
        let fl = self.fine.layout();
        if !fl.same_sites(layout) {
            return Err(RuntimeError::Shape(format!(
                "network `{}` lays out its sites differently from the solver's vectors",
                self.graph.name
            )));
        }
        let (len, main) = (fl.field_len(), fl.main_len());
        if input.len() < main || output.len() < main {
            return Err(RuntimeError::Shape(format!(
                "network `{}`: buffers of {} and {} scalars, it needs {main}",
                self.graph.name,
                input.len(),
                output.len()
            )));
        }
        let fields = self.level.connect.features();
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let FineScratch { x, c: c_native, y, spare } = &mut *scratch;
        // The second field of `concat` is written in full below; ghost slots are refilled by
        // the fine layers, so stale contents of a reused buffer never matter.
        x.resize(fields * len, T::zero());
        c_native.resize(len, T::zero());
        x[..main].copy_from_slice(&input[..main]);
        let (x, c_native) = (&mut x[..], &mut c_native[..]);
        if self.pool.is_some() || self.layers.is_some() {
            // A weighted correction (pooled, or coarse layers) on the same buffers, then the
            // same native code as for a coarse solve: x = c, then x ← x + S(b − D x) on the
            // f32 Dirac kernel.
            self.weighted_correct_native(params, &x[..len], c_native, spare)?;
            match self.level.connect {
                Connect::Concat => {
                    x[len..len + main].copy_from_slice(&c_native[..main]);
                    self.fine.forward_aosoa(self.fine_params(params)?, x, output)?;
                }
                Connect::Correct => {
                    output[..main].copy_from_slice(&c_native[..main]);
                    y.resize(len, T::zero());
                    for _ in 0..self.level.smoothing {
                        self.smooth_native(params, input, output, x, y)?;
                    }
                }
            }
            return Ok(());
        }
        let f32_views = (self.native_f32 && T::PRECISION == Precision::F32)
            .then(|| {
                Some((
                    bytemuck::try_cast_slice_mut::<T, f32>(&mut *x).ok()?,
                    bytemuck::try_cast_slice_mut::<T, f32>(&mut *c_native).ok()?,
                ))
            })
            .flatten();
        if let Some((x32, c32)) = f32_views {
            self.correct_native_f32(main, len, x32, c32)?;
        } else {
            let mut guard = self.correction.lock().unwrap_or_else(|e| e.into_inner());
            let Correction { mg, b, c, .. } = &mut *guard;
            fl.from_aosoa(&x[..len], b);
            mg.multigrid()?.preconditioner64().apply(c, b);
            match self.level.connect {
                Connect::Concat => fl.to_aosoa(c, &mut x[len..2 * len]),
                Connect::Correct => {
                    let mut dc = std::mem::take(b);
                    mg.dirac64().apply(&mut dc, c);
                    let mut dc_native = vec![T::zero(); len];
                    fl.to_aosoa(&dc, &mut dc_native);
                    fl.to_aosoa(c, c_native);
                    x[..main].iter_mut().zip(&dc_native[..main]).for_each(|(x, d)| *x -= *d);
                    *b = dc;
                }
            }
        }
        self.fine.forward_aosoa(self.fine_params(params)?, x, output)?;
        if self.level.connect == Connect::Correct {
            output[..main].iter_mut().zip(&c_native[..main]).for_each(|(o, c)| *o += *c);
            if self.level.smoothing > 1 {
                y.resize(len, T::zero());
                for _ in 1..self.level.smoothing {
                    self.smooth_native(params, input, output, x, y)?;
                }
            }
        }
        Ok(())
    }

    /// r ← r − D x on f32 buffers of the fine layout (main parts), through the multigrid's
    /// scratch (the operator may use a buffer's tail).
    fn sub_dirac_native(&self, x: &[f32], r: &mut [f32]) -> Result<(), RuntimeError> {
        let mut guard = self.correction.lock().unwrap_or_else(|e| e.into_inner());
        let Correction { mg, native, .. } = &mut *guard;
        let [_, c, dc] = native;
        let main = r.len();
        c.resize(NativeOperator::buffer_len(mg.dirac32()).max(main).max(c.len()), 0.0);
        c[..main].copy_from_slice(&x[..main]);
        sub_dirac_f32(mg, dc, c, r)
    }

    /// h ← h − D† g = h − γ5 D γ5 g on f32 buffers of the fine layout (main parts): the
    /// gradient of a residual r = b − D x with respect to x.
    fn sub_dagger_native(&self, g: &[f32], h: &mut [f32]) -> Result<(), RuntimeError> {
        let mut guard = self.correction.lock().unwrap_or_else(|e| e.into_inner());
        let Correction { mg, native, .. } = &mut *guard;
        let [_, c, dc] = native;
        let main = h.len();
        let d = mg.dirac32();
        c.resize(NativeOperator::buffer_len(d).max(main).max(c.len()), 0.0);
        dc.resize(NativeOperator::buffer_len(d).max(dc.len()), 0.0);
        c[..main].copy_from_slice(&g[..main]);
        let layout = self.fine.layout();
        layout.gamma5_main(&mut c[..main]);
        NativeOperator::apply(d, dc, c)
            .map_err(|e| RuntimeError::Shape(format!("multigrid level: {e}")))?;
        layout.gamma5_main(&mut dc[..main]);
        h.iter_mut().zip(&dc[..main]).for_each(|(h, d)| *h -= *d);
        Ok(())
    }

    /// A training step on the solver's vectors (see [`FermionNet::forward_backward_native`]):
    /// for a near-null level with a coarse solve in f32 (the main job) the same passes as the
    /// reference-layout `forward_backward_seeded`, without leaving the layout; other networks
    /// convert.
    ///
    /// [`FermionNet::forward_backward_native`]: crate::runtime::FermionNet::forward_backward_native
    pub(super) fn forward_backward_native_impl(
        &self,
        params: &[T],
        layout: &SiteLayout,
        input: &mut [T],
        seed: &mut dyn FnMut(&[T], &mut [T]),
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        let fl = self.fine.layout();
        let native = self.pool.is_none()
            && self.layers.is_none()
            && self.native_f32
            && T::PRECISION == Precision::F32
            && fl.same_sites(layout);
        if !native {
            return forward_backward_via_reference(self, params, layout, input, seed, grad_params);
        }
        let (len, main) = (fl.field_len(), fl.main_len());
        if input.len() < main || grad_params.len() < self.skip {
            return Err(RuntimeError::Shape(format!(
                "model `{}`: an input of {} scalars (it needs {main}) and a gradient of {} \
                 (the level alone has {})",
                self.graph.name,
                input.len(),
                grad_params.len(),
                self.skip
            )));
        }
        let (grad_level, grad_fine) = grad_params.split_at_mut(self.skip);
        grad_level.fill(T::zero());
        let fp = self.fine_params(params)?;
        let mut spare = {
            let mut s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut s.spare)
        };
        let fields = self.level.connect.features();
        let mut x = take(&mut spare, fields * len);
        let mut m = take(&mut spare, len);
        x[..main].copy_from_slice(&input[..main]);
        self.correct_native_f32(main, len, f32s(&mut x)?, f32s(&mut m)?)?;
        let mut used = Vec::new();
        match self.level.connect {
            Connect::Concat => {
                let seed_main = |y: &[T], g: &mut [T]| seed(&y[..main], &mut g[..main]);
                self.fine.forward_backward_aosoa(fp, &mut x, seed_main, None, grad_fine)?;
                used.push(x);
            }
            Connect::Correct => {
                // x_0 = c, r_k = b − D x_k, x_{k+1} = x_k + S(r_k), M = x_N; then back from
                // h = ∂L/∂M: step k adds S's weight gradient at (r_k, h), and for k > 0
                // h ← h − D† S^T h (x_k enters x_{k+1} directly and through r_k). c has no
                // weights, so step 0 needs no input gradient.
                let steps = self.level.smoothing;
                let mut rs = vec![x];
                let mut y = take(&mut spare, len);
                for k in 0..steps {
                    if k > 0 {
                        let mut r = take(&mut spare, len);
                        r[..main].copy_from_slice(&input[..main]);
                        self.sub_dirac_native(f32s(&mut m[..main])?, f32s(&mut r[..main])?)?;
                        rs.push(r);
                    }
                    self.fine.forward_aosoa(fp, &mut rs[k], &mut y)?;
                    m[..main].iter_mut().zip(&y[..main]).for_each(|(o, y)| *o += *y);
                }
                let mut h = y;
                seed(&m[..main], &mut h[..main]);
                grad_fine.fill(T::zero());
                let mut step_grad = vec![T::zero(); grad_fine.len()];
                let mut gin = take(&mut spare, len);
                for k in (0..steps).rev() {
                    let gi = (k > 0).then_some(&mut gin[..]);
                    self.fine.backward_partial_aosoa(fp, &mut rs[k], &h, gi, &mut step_grad)?;
                    grad_fine.iter_mut().zip(&step_grad).for_each(|(a, g)| *a += *g);
                    if k > 0 {
                        self.sub_dagger_native(f32s(&mut gin[..main])?, f32s(&mut h[..main])?)?;
                    }
                }
                used.extend(rs);
                used.extend([h, gin]);
            }
        }
        used.push(m);
        spare.extend(used);
        self.scratch.lock().unwrap_or_else(|e| e.into_inner()).spare = spare;
        Ok(())
    }
}
