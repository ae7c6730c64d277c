//! Deliberately naive plain-Rust reference of the gauge-equivariant layers (PTC, local PTC,
//! linear, parallel transport, residual add, norm gate): forward, input backward and weight
//! gradients, generic over f32/f64.
//!
//! This is the oracle the JIT kernels of `codegen::ptc` are tested against, so it shares no code
//! with them: paths are applied hop by hop as whole-field shifts (no precomputed path matrices,
//! no SIMD layout, no neighbour tables beyond `Geometry`). A fermion field is the ndarray
//! `[site, spin, colour]` (shape `[V, 4, 3]`), a value of several features `[feature, site,
//! spin, colour]`, and a PTC weight tensor the complex array of its declared shape
//! `[n_out, n_in, path, site, 4, 4]` (the site axis has length 1 for global weights), so every
//! formula below is written with the indices of the physics.
//!
//! **Gradient convention** (models.md §1.8). Every gradient here is the plain gradient of a real
//! loss with respect to the real vector of (re, im) pairs: for a complex quantity z the gradient
//! slot holds `dL/dRe z + i dL/dIm z` (= 2 dL/dz*, gpt's convention once its seed
//! `left = 2(N(psi) - psi_out)` is used). For a layer `out = W chi` this gives
//! `grad W = sum_x tr_colour[grad_out(x) chi(x)^dagger]` and `grad chi = W^dagger grad_out`,
//! with no factor 2 anywhere, so an optimiser on (Re W, Im W) sees the true gradient.

use crate::ir::{Graph, Layer, LayerKind, ParamId, Path, ValueId, inverse_path};
use crate::lattice::Real;
use crate::lattice::gauge::GaugeField;
use crate::lattice::su3::Su3;
use ndarray::{Array3, Array4, Array6, ArrayView3, ArrayView4, ArrayViewMut3, Axis, Ix6, Zip};
use num_complex::Complex;

use super::{RuntimeError, check_graph};

/// Values of a network: `[feature, site, spin, colour]`.
type Fields<T> = Array4<Complex<T>>;

fn zero<T: Real>() -> Complex<T> {
    Complex::new(T::zero(), T::zero())
}

/// One hop applied to a single fermion field `[V, 4, 3]`.
/// Forward mu: out(x) = U_mu(x) psi(x+mu); backward: out(x) = U_mu(x-mu)^dagger psi(x-mu).
fn hop_field<T: Real>(
    gauge: &GaugeField,
    mu: usize,
    forward: bool,
    psi: ArrayView3<Complex<T>>,
) -> Array3<Complex<T>> {
    let g = &gauge.geom;
    let mut out = Array3::zeros(psi.raw_dim());
    for x in 0..g.volume() {
        let (u, src, dagger) = if forward {
            (gauge.link(x, mu).cast::<T>(), g.up(x, mu), false)
        } else {
            let y = g.dn(x, mu);
            (gauge.link(y, mu).cast::<T>(), y, true)
        };
        for s in 0..4 {
            let v = [psi[[src, s, 0]], psi[[src, s, 1]], psi[[src, s, 2]]];
            let w = if dagger { u.adj_mul_vec(&v) } else { u.mul_vec(&v) };
            for c in 0..3 {
                out[[x, s, c]] = w[c];
            }
        }
    }
    out
}

/// T_p psi for a path of hops (gpt semantics: links multiplied left to right, the field read at
/// the end point), i.e. T_{h1} T_{h2} ... T_{hn} psi: the last hop is applied first.
fn transport<T: Real>(
    gauge: &GaugeField,
    path: &Path,
    psi: ArrayView3<Complex<T>>,
) -> Array3<Complex<T>> {
    let mut f = psi.to_owned();
    for h in path.iter().rev() {
        f = hop_field(gauge, h.mu as usize, h.forward, f.view());
    }
    f
}

/// The weights of one PTC layer, `W[i, j, p, x][a, b]` for output feature i, input feature j,
/// path p, site x and spins a, b.
struct PtcWeights<T> {
    /// `[n_out, n_in, path, site, 4, 4]`; the site axis has length 1 for global weights.
    w: Array6<Complex<T>>,
}

impl<T: Real> PtcWeights<T> {
    /// The layer's weights from the flat (re, im) parameter vector, in the declared shape
    /// `[n_out, n_in, n_paths, (V,) 4, 4]` of its parameter.
    fn new(graph: &Graph, id: ParamId, params: &[T]) -> Result<Self, RuntimeError> {
        let p = graph.param(id);
        let flat = params.get(p.offset..p.offset + p.scalar_len()).ok_or_else(|| {
            RuntimeError::Shape(format!(
                "parameter `{}` lies outside the {} given",
                p.name,
                params.len()
            ))
        })?;
        let (pairs, _) = flat.as_chunks::<2>();
        let z: Vec<Complex<T>> = pairs.iter().map(|&[re, im]| Complex::new(re, im)).collect();
        let mut dims = p.shape.clone();
        if dims.len() == 5 {
            dims.insert(3, 1); // a global weight: one "site" shared by all
        }
        let w = ndarray::ArrayD::from_shape_vec(dims, z)
            .and_then(|w| w.into_dimensionality::<Ix6>())
            .map_err(|e| RuntimeError::Shape(format!("parameter `{}`: {e}", p.name)))?;
        Ok(PtcWeights { w })
    }

    fn zeros_like(&self) -> Self {
        PtcWeights { w: Array6::zeros(self.w.raw_dim()) }
    }

    /// Which entry of the site axis holds the weights of site `x`.
    fn site(&self, x: usize) -> usize {
        if self.w.len_of(Axis(3)) == 1 { 0 } else { x }
    }

    fn n_out(&self) -> usize {
        self.w.len_of(Axis(0))
    }

    fn n_in(&self) -> usize {
        self.w.len_of(Axis(1))
    }

    /// W[i, j, p, x][a, b].
    fn at(&self, i: usize, j: usize, p: usize, x: usize, a: usize, b: usize) -> Complex<T> {
        self.w[[i, j, p, self.site(x), a, b]]
    }

    /// The flat (re, im) layout of the parameter vector.
    fn into_flat(self) -> Vec<T> {
        self.w.iter().flat_map(|z| [z.re, z.im]).collect()
    }
}

/// acc(x)[a, c] += sum_b M(x)[a, b] f(x)[b, c] for every site, with M = W_ijp or, when
/// `dagger`, its conjugate transpose.
fn spin_mix<T: Real>(
    w: &PtcWeights<T>,
    (i, j, p): (usize, usize, usize),
    dagger: bool,
    f: ArrayView3<Complex<T>>,
    mut acc: ArrayViewMut3<Complex<T>>,
) {
    for x in 0..f.len_of(Axis(0)) {
        for a in 0..4 {
            for b in 0..4 {
                let m = if dagger { w.at(i, j, p, x, b, a).conj() } else { w.at(i, j, p, x, a, b) };
                for c in 0..3 {
                    acc[[x, a, c]] += m * f[[x, b, c]];
                }
            }
        }
    }
}

/// PTC forward: out_i = sum_j sum_p W_ijp T_p in_j.
fn ptc_forward<T: Real>(
    gauge: &GaugeField,
    paths: &[Path],
    w: &PtcWeights<T>,
    input: ArrayView4<Complex<T>>,
) -> Fields<T> {
    let vol = gauge.geom.volume();
    let mut out = Array4::zeros((w.n_out(), vol, 4, 3));
    for j in 0..w.n_in() {
        for (p, path) in paths.iter().enumerate() {
            let chi = transport(gauge, path, input.index_axis(Axis(0), j));
            for i in 0..w.n_out() {
                spin_mix(w, (i, j, p), false, chi.view(), out.index_axis_mut(Axis(0), i));
            }
        }
    }
    out
}

/// PTC input gradient: grad_in_j = sum_i sum_p T_{p^-1}(W_ijp^dagger grad_out_i).
fn ptc_backward_input<T: Real>(
    gauge: &GaugeField,
    paths: &[Path],
    w: &PtcWeights<T>,
    grad_out: ArrayView4<Complex<T>>,
) -> Fields<T> {
    let vol = gauge.geom.volume();
    let mut gin = Array4::zeros((w.n_in(), vol, 4, 3));
    for j in 0..w.n_in() {
        for (p, path) in paths.iter().enumerate() {
            let mut mixed = Array3::zeros((vol, 4, 3));
            for i in 0..w.n_out() {
                spin_mix(w, (i, j, p), true, grad_out.index_axis(Axis(0), i), mixed.view_mut());
            }
            let back = transport(gauge, &inverse_path(path), mixed.view());
            let mut g = gin.index_axis_mut(Axis(0), j);
            g += &back;
        }
    }
    gin
}

/// PTC weight gradient: grad W_ijp[a][b] = sum_x sum_c grad_out_i(x)[a,c] conj((T_p in_j)(x)[b,c])
/// (no sum over x for local weights), in the weights' shape.
fn ptc_weight_grad<T: Real>(
    gauge: &GaugeField,
    paths: &[Path],
    w: &PtcWeights<T>,
    input: ArrayView4<Complex<T>>,
    grad_out: ArrayView4<Complex<T>>,
) -> PtcWeights<T> {
    let mut g = w.zeros_like();
    for j in 0..w.n_in() {
        for (p, path) in paths.iter().enumerate() {
            let chi = transport(gauge, path, input.index_axis(Axis(0), j));
            for i in 0..w.n_out() {
                let left = grad_out.index_axis(Axis(0), i);
                for x in 0..chi.len_of(Axis(0)) {
                    let sx = g.site(x);
                    for a in 0..4 {
                        for b in 0..4 {
                            for c in 0..3 {
                                g.w[[i, j, p, sx, a, b]] += left[[x, a, c]] * chi[[x, b, c]].conj();
                            }
                        }
                    }
                }
            }
        }
    }
    g
}

/// Weightless parallel transport: out_k = T_{paths[k]} in_k.
fn transport_forward<T: Real>(
    gauge: &GaugeField,
    paths: &[Path],
    input: ArrayView4<Complex<T>>,
) -> Fields<T> {
    let mut out = Array4::zeros(input.raw_dim());
    for (k, p) in paths.iter().enumerate() {
        out.index_axis_mut(Axis(0), k).assign(&transport(gauge, p, input.index_axis(Axis(0), k)));
    }
    out
}

/// Input gradient of the transport layer: grad_in_k = T_{paths[k]^-1} grad_out_k.
fn transport_backward<T: Real>(
    gauge: &GaugeField,
    paths: &[Path],
    grad_out: ArrayView4<Complex<T>>,
) -> Fields<T> {
    let inverse: Vec<Path> = paths.iter().map(inverse_path).collect();
    transport_forward(gauge, &inverse, grad_out)
}

fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

/// The 4x3 spin-colour block of every feature and site: what the norm gate acts on.
const SITE: (usize, usize, usize, usize) = (1, 1, 4, 3);

/// Norm gate: out(x) = psi(x) sigmoid(|psi(x)|^2), per site and feature (|.|^2 over spin and colour).
fn norm_gate_forward<T: Real>(input: ArrayView4<Complex<T>>) -> Fields<T> {
    let mut out = input.to_owned();
    for mut psi in out.exact_chunks_mut(SITE) {
        let n: T = psi.iter().map(|z| z.norm_sqr()).sum();
        let g = sigmoid(n);
        psi.mapv_inplace(|z| z * g);
    }
    out
}

/// Norm gate input gradient: g sigma(n) + 2 sigma'(n) Re<psi, g> psi.
fn norm_gate_backward<T: Real>(
    input: ArrayView4<Complex<T>>,
    grad_out: ArrayView4<Complex<T>>,
) -> Fields<T> {
    let mut out = Array4::zeros(input.raw_dim());
    Zip::from(out.exact_chunks_mut(SITE))
        .and(input.exact_chunks(SITE))
        .and(grad_out.exact_chunks(SITE))
        .for_each(|mut o, psi, g| {
            let n: T = psi.iter().map(|z| z.norm_sqr()).sum();
            let sg = sigmoid(n);
            let d = sg * (T::one() - sg);
            let re: T = psi.iter().zip(g.iter()).map(|(a, b)| a.re * b.re + a.im * b.im).sum();
            let two = T::one() + T::one();
            Zip::from(&mut o)
                .and(&psi)
                .and(&g)
                .for_each(|o, a, b| *o = b * sg + a * (two * d * re));
        });
    out
}

/// A whole gauge network evaluated with the functions above: the oracle for `LatticeNet`.
pub struct ReferenceLatticeNet {
    graph: Graph,
    gauge: GaugeField,
}

impl ReferenceLatticeNet {
    /// Accepts a verified graph of gauge layers on the gauge field's lattice.
    pub fn new(graph: &Graph, gauge: &GaugeField) -> Result<Self, RuntimeError> {
        check_graph(graph, gauge)?;
        crate::ir::verify::verify(graph)?;
        Ok(ReferenceLatticeNet { graph: graph.clone(), gauge: gauge.clone() })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The flat buffer of value `v` (features x sites x 12) as `[feature, site, spin, colour]`.
    fn fields<'a, T: Real>(
        &self,
        v: ValueId,
        what: &str,
        data: &'a [Complex<T>],
    ) -> Result<ArrayView4<'a, Complex<T>>, RuntimeError> {
        let dim = (self.graph.features(v), self.gauge.geom.volume(), 4, 3);
        let want = dim.0 * dim.1 * 12;
        if data.len() != want {
            return Err(RuntimeError::Shape(format!(
                "{what}: expected {want} complex numbers ({} features x {} sites x 12), got {}",
                dim.0,
                dim.1,
                data.len()
            )));
        }
        ArrayView4::from_shape(dim, data).map_err(|e| RuntimeError::Shape(format!("{what}: {e}")))
    }

    fn check_params<T>(&self, what: &str, params: &[T]) -> Result<(), RuntimeError> {
        if params.len() != self.graph.param_scalars() {
            return Err(RuntimeError::Shape(format!(
                "{what}: expected {} parameters, got {}",
                self.graph.param_scalars(),
                params.len()
            )));
        }
        Ok(())
    }

    fn weights<T: Real>(&self, l: &Layer, params: &[T]) -> Result<PtcWeights<T>, RuntimeError> {
        let id = l.params.first().copied().ok_or_else(|| {
            RuntimeError::Shape(format!("layer `{}` has no weight parameter", l.name))
        })?;
        PtcWeights::new(&self.graph, id, params)
    }

    fn run_forward<T: Real>(
        &self,
        params: &[T],
        input: ArrayView4<Complex<T>>,
    ) -> Result<Vec<Fields<T>>, RuntimeError> {
        let mut vals: Vec<Fields<T>> = vec![Array4::zeros((0, 0, 4, 3)); self.graph.values.len()];
        vals[0] = input.to_owned();
        for l in &self.graph.layers {
            let x = vals[l.inputs[0].index()].view();
            let y = match &l.kind {
                LayerKind::Ptc { paths, .. } => {
                    ptc_forward(&self.gauge, paths, &self.weights(l, params)?, x)
                }
                LayerKind::Transport { paths } => transport_forward(&self.gauge, paths, x),
                LayerKind::Add => &x + &vals[l.inputs[1].index()],
                LayerKind::NormGate => norm_gate_forward(x),
                _ => unreachable!("rejected by check_graph"),
            };
            vals[l.output.index()] = y;
        }
        Ok(vals)
    }

    /// Evaluate the network.
    pub fn forward<T: Real>(
        &self,
        params: &[T],
        input: &[Complex<T>],
        output: &mut [Complex<T>],
    ) -> Result<(), RuntimeError> {
        let x = self.fields(ValueId(0), "input", input)?;
        self.fields(self.graph.output, "output", output)?;
        self.check_params("forward", params)?;
        let vals = self.run_forward(params, x)?;
        for (o, y) in output.iter_mut().zip(vals[self.graph.output.index()].iter()) {
            *o = *y;
        }
        Ok(())
    }

    /// Gradients of a real loss given its gradient `grad_output` with respect to the output
    /// (convention in the module doc). Overwrites `grad_input` and `grad_params`.
    pub fn backward<T: Real>(
        &self,
        params: &[T],
        input: &[Complex<T>],
        grad_output: &[Complex<T>],
        grad_input: &mut [Complex<T>],
        grad_params: &mut [T],
    ) -> Result<(), RuntimeError> {
        let x = self.fields(ValueId(0), "input", input)?;
        let gout = self.fields(self.graph.output, "output gradient", grad_output)?;
        self.fields(ValueId(0), "input gradient", grad_input)?;
        self.check_params("backward", params)?;
        self.check_params("parameter gradient", grad_params)?;
        let vals = self.run_forward(params, x)?;
        let mut grads: Vec<Option<Fields<T>>> = vec![None; self.graph.values.len()];
        grads[self.graph.output.index()] = Some(gout.to_owned());
        grad_params.iter_mut().for_each(|g| *g = T::zero());
        let add_grad =
            |grads: &mut Vec<Option<Fields<T>>>, v: ValueId, g: Fields<T>| match &mut grads
                [v.index()]
            {
                Some(acc) => *acc += &g,
                slot @ None => *slot = Some(g),
            };
        for l in self.graph.layers.iter().rev() {
            let Some(gout) = grads[l.output.index()].take() else {
                continue;
            };
            let x = vals[l.inputs[0].index()].view();
            match &l.kind {
                LayerKind::Ptc { paths, .. } => {
                    let w = self.weights(l, params)?;
                    let gw = ptc_weight_grad(&self.gauge, paths, &w, x, gout.view()).into_flat();
                    let p = self.graph.param(l.params[0]);
                    for (a, b) in
                        grad_params[p.offset..p.offset + p.scalar_len()].iter_mut().zip(&gw)
                    {
                        *a += *b;
                    }
                    add_grad(
                        &mut grads,
                        l.inputs[0],
                        ptc_backward_input(&self.gauge, paths, &w, gout.view()),
                    );
                }
                LayerKind::Transport { paths } => {
                    add_grad(
                        &mut grads,
                        l.inputs[0],
                        transport_backward(&self.gauge, paths, gout.view()),
                    );
                }
                LayerKind::Add => {
                    add_grad(&mut grads, l.inputs[0], gout.clone());
                    add_grad(&mut grads, l.inputs[1], gout);
                }
                LayerKind::NormGate => {
                    add_grad(&mut grads, l.inputs[0], norm_gate_backward(x, gout.view()))
                }
                _ => unreachable!("rejected by check_graph"),
            }
        }
        match grads[0].take() {
            Some(g) => grad_input.iter_mut().zip(g.iter()).for_each(|(o, v)| *o = *v),
            None => grad_input.iter_mut().for_each(|g| *g = zero()),
        }
        Ok(())
    }
}

/// Multiply every site's colour vectors by a gauge transformation: psi(x) -> Omega(x) psi(x).
pub fn gauge_rotate<T: Real>(omega: &[Su3<f64>], psi: &[Complex<T>]) -> Vec<Complex<T>> {
    let mut out = psi.to_vec();
    for (k, site) in out.chunks_mut(12).enumerate() {
        let o = omega[k % omega.len()].cast::<T>();
        for s in 0..4 {
            let v = [site[s * 3], site[s * 3 + 1], site[s * 3 + 2]];
            site[s * 3..s * 3 + 3].copy_from_slice(&o.mul_vec(&v));
        }
    }
    out
}

/// The naive twin of a pooled multigrid level (models.md §1.7; the executor is
/// `runtime::pool`): transports walked link by link from each block's origin, G(x) as a dense
/// 12×12 matrix per site, pooling and unpooling as plain sums over the block's sites, and the
/// coarse network on [`ReferenceLatticeNet`] over the coarse gauge field. f64 only: it is a
/// test oracle. Index conventions: ψ(x)_{t b} at `x * 12 + t * 3 + b` (spin t, colour b), the
/// pooling weight w_i(x)[s][t] where `ir::pool_weight_index` puts it.
pub struct ReferencePool {
    blocks: [usize; 4],
    gauge: GaugeField,
    coarse_gauge: GaugeField,
    coarse: ReferenceLatticeNet,
    weighted: bool,
    /// The normalised Ĝ_i(x) per term i, per site.
    transports: Vec<Vec<Su3<f64>>>,
    /// Scalars of the pooling weight (the coarse network's parameters follow).
    pool_scalars: usize,
}

impl ReferencePool {
    pub fn new(level: &crate::ir::Level, gauge: &GaugeField) -> Result<Self, RuntimeError> {
        let crate::ir::CoarseSpace::Pool { transfer } = &level.space else {
            return Err(RuntimeError::Shape("reference pool: not a pooled level".into()));
        };
        let net = level
            .coarse_network()
            .ok_or_else(|| RuntimeError::Shape("reference pool: no coarse network".into()))?;
        let g = &gauge.geom;
        let blocks = level.blocks;
        let r = transfer.reference;
        let bvol: usize = blocks.iter().product();
        // Link by link along a path (U_μ(y) forward, U_μ(y − μ̂)† backward).
        let walk = |start: usize, path: &[crate::ir::Hop]| {
            let (mut m, mut y) = (Su3::<f64>::identity(), start);
            for h in path {
                let mu = h.mu as usize;
                if h.forward {
                    m = m * *gauge.link(y, mu);
                    y = g.up(y, mu);
                } else {
                    y = g.dn(y, mu);
                    m = m * gauge.link(y, mu).adj();
                }
            }
            (m, y)
        };
        let origin_of = |x: usize| {
            let c = g.coords(x);
            let off: [usize; 4] = std::array::from_fn(|mu| c[mu] % blocks[mu]);
            (std::array::from_fn::<usize, 4, _>(|mu| c[mu] - off[mu]), off)
        };
        let mut transports = Vec::new();
        for (i, term) in transfer.terms.iter().enumerate() {
            let loops = term.times.map(|f| f.loops()).unwrap_or_default();
            let mut t: Vec<Su3<f64>> = (0..g.volume())
                .map(|x| {
                    let (o, off) = origin_of(x);
                    let start = g.index(std::array::from_fn(|mu| o[mu] + r[mu]));
                    let (mut m, end) = walk(start, &transfer.term_path(i, off));
                    assert_eq!(end, x, "reference pool: the path must end at its site");
                    if !loops.is_empty() {
                        let v = loops.iter().fold(Su3::zero(), |acc, l| acc + walk(x, l).0);
                        m = m * v;
                    }
                    m
                })
                .collect();
            // Mean |Ĝ|² per site 3 for a loop term (a unitary one has it already), then 1/√|block|.
            let mut scale = 1.0 / (bvol as f64).sqrt();
            if !loops.is_empty() {
                let sq: f64 =
                    t.iter().flat_map(|m| m.m.iter().flatten()).map(|z| z.norm_sqr()).sum();
                scale *= (3.0 * g.volume() as f64 / sq).sqrt();
            }
            t.iter_mut().for_each(|m| *m = m.scale(Complex::new(scale, 0.0)));
            transports.push(t);
        }
        let cdims: [usize; 4] = std::array::from_fn(|mu| gauge.dims()[mu] / blocks[mu]);
        let cg = crate::lattice::geometry::Geometry::new(cdims);
        let mut links = Vec::with_capacity(cg.volume() * 4);
        for xc in 0..cg.volume() {
            let cc = cg.coords(xc);
            let start = g.index(std::array::from_fn(|mu| cc[mu] * blocks[mu] + r[mu]));
            for (mu, &steps) in blocks.iter().enumerate() {
                let straight: Vec<_> =
                    (0..steps).map(|_| crate::ir::Hop { mu: mu as u8, forward: true }).collect();
                links.push(walk(start, &straight).0);
            }
        }
        let coarse_gauge = GaugeField { geom: cg, links };
        let coarse = ReferenceLatticeNet::new(net, &coarse_gauge)?;
        let weighted = transfer.weighted;
        let pool_scalars = if weighted { 32 * transfer.terms.len() * g.volume() } else { 0 };
        Ok(ReferencePool {
            blocks,
            gauge: gauge.clone(),
            coarse_gauge,
            coarse,
            weighted,
            transports,
            pool_scalars,
        })
    }

    /// The coarse gauge field U^c_μ(X).
    pub fn coarse_gauge(&self) -> &GaugeField {
        &self.coarse_gauge
    }

    /// The coarse site (block) of fine site x.
    fn block_of(&self, x: usize) -> usize {
        let c = self.gauge.geom.coords(x);
        let cdims = self.coarse_gauge.geom.dims;
        let cc: [usize; 4] = std::array::from_fn(|mu| c[mu] / self.blocks[mu]);
        cc[0] + cdims[0] * (cc[1] + cdims[1] * (cc[2] + cdims[2] * cc[3]))
    }

    /// G(x) as a dense 12×12 matrix, rows (s, a), columns (t, b).
    pub fn g_matrix(&self, params: &[f64], x: usize) -> [[Complex<f64>; 12]; 12] {
        let v = self.gauge.geom.volume();
        let mut g = [[Complex::new(0.0, 0.0); 12]; 12];
        for (i, tr) in self.transports.iter().enumerate() {
            for s in 0..4 {
                for t in 0..4 {
                    let w = if self.weighted {
                        let k = 2 * crate::ir::pool_weight_index(v, i, x, s, t);
                        Complex::new(params[k], params[k + 1])
                    } else if s == t {
                        Complex::new(1.0, 0.0)
                    } else {
                        Complex::new(0.0, 0.0)
                    };
                    for a in 0..3 {
                        for b in 0..3 {
                            g[s * 3 + a][t * 3 + b] += w * tr[x].m[a][b];
                        }
                    }
                }
            }
        }
        g
    }

    /// χ(X) = Σ_{x∈X} G(x) ψ(x).
    pub fn pool(&self, params: &[f64], psi: &[Complex<f64>]) -> Vec<Complex<f64>> {
        let mut chi = vec![Complex::new(0.0, 0.0); self.coarse_gauge.geom.volume() * 12];
        for x in 0..self.gauge.geom.volume() {
            let g = self.g_matrix(params, x);
            let xc = self.block_of(x);
            for (r, row) in g.iter().enumerate() {
                for (c, gv) in row.iter().enumerate() {
                    chi[xc * 12 + r] += gv * psi[x * 12 + c];
                }
            }
        }
        chi
    }

    /// ψ(x) = G(x)† χ(X(x)).
    pub fn unpool(&self, params: &[f64], chi: &[Complex<f64>]) -> Vec<Complex<f64>> {
        let mut psi = vec![Complex::new(0.0, 0.0); self.gauge.geom.volume() * 12];
        for x in 0..self.gauge.geom.volume() {
            let g = self.g_matrix(params, x);
            let xc = self.block_of(x);
            for (r, row) in g.iter().enumerate() {
                for (c, gv) in row.iter().enumerate() {
                    psi[x * 12 + c] += gv.conj() * chi[xc * 12 + r];
                }
            }
        }
        psi
    }

    /// c = Unpool(M_c(Pool(b))) with the level's parameters (pooling weight, then the coarse
    /// network's) at the start of `params`.
    pub fn forward(
        &self,
        params: &[f64],
        b: &[Complex<f64>],
    ) -> Result<Vec<Complex<f64>>, RuntimeError> {
        let chi = self.pool(params, b);
        let mut zeta = vec![Complex::new(0.0, 0.0); chi.len()];
        let n = self.coarse.graph().param_scalars();
        let cp = params
            .get(self.pool_scalars..self.pool_scalars + n)
            .ok_or_else(|| RuntimeError::Shape("reference pool: too few parameters".into()))?;
        self.coarse.forward(cp, &chi, &mut zeta)?;
        Ok(self.unpool(params, &zeta))
    }

    /// The level's weight gradients (pooling weight, then the coarse network's) for the
    /// gradient `h` of a real loss with respect to c = Unpool(M_c(Pool(b))), naively: unpooling
    /// passes G h back to the coarse network, the coarse network's reference backward passes
    /// λ = ∂L/∂χ on, and each w_i(x)[s][t] collects Σ_a E_{s a} conj((Ĝ_i f)_{t a}) for
    /// (E, f) = (ζ, h) (unpooling) and (λ, b) (pooling).
    pub fn backward(
        &self,
        params: &[f64],
        b: &[Complex<f64>],
        h: &[Complex<f64>],
    ) -> Result<Vec<f64>, RuntimeError> {
        let n = self.coarse.graph().param_scalars();
        let cp = params
            .get(self.pool_scalars..self.pool_scalars + n)
            .ok_or_else(|| RuntimeError::Shape("reference pool: too few parameters".into()))?;
        let chi = self.pool(params, b);
        let mut zeta = vec![Complex::new(0.0, 0.0); chi.len()];
        self.coarse.forward(cp, &chi, &mut zeta)?;
        let h_zeta = self.pool(params, h);
        let mut lambda = vec![Complex::new(0.0, 0.0); chi.len()];
        let mut grad = vec![0.0; self.pool_scalars + n];
        self.coarse.backward(cp, &chi, &h_zeta, &mut lambda, &mut grad[self.pool_scalars..])?;
        if self.weighted {
            let v = self.gauge.geom.volume();
            for (e, f) in [(&zeta, h), (&lambda, b)] {
                for (i, tr) in self.transports.iter().enumerate() {
                    for x in 0..v {
                        let xc = self.block_of(x);
                        for s in 0..4 {
                            for t in 0..4 {
                                let mut z = Complex::new(0.0, 0.0);
                                for a in 0..3 {
                                    let mut g = Complex::new(0.0, 0.0);
                                    for bb in 0..3 {
                                        g += tr[x].m[a][bb] * f[x * 12 + t * 3 + bb];
                                    }
                                    z += e[xc * 12 + s * 3 + a] * g.conj();
                                }
                                let k = 2 * crate::ir::pool_weight_index(v, i, x, s, t);
                                grad[k] += z.re;
                                grad[k + 1] += z.im;
                            }
                        }
                    }
                }
            }
        }
        Ok(grad)
    }
}

/// The naive twin of a near-null level's coarse layers (`runtime::coarse_layers`, models.md
/// §2.3 "Coarse model"): out(X) = Σ_p W_p(X) in(X + Δ_p) on coarse vectors `X * n + i`, the
/// neighbour found by coordinates and `rem_euclid` (no reduced offsets, no packed
/// coefficients), the weight read where `ir::coarse_weight_index` puts it. Backward scatters:
/// ∂L/∂in(X + Δ_p)_j += conj(W_p(X)[i][j]) g_i(X), ∂L/∂W_p(X)[i][j] += g_i(X) conj(in_j(X + Δ_p))
/// (the gradient convention of this module). f64: it is a test oracle.
pub struct ReferenceCoarseLayers {
    dims: [usize; 4],
    n: usize,
    layers: Vec<crate::ir::CoarseLayer>,
}

impl ReferenceCoarseLayers {
    pub fn new(level: &crate::ir::Level, fine_dims: [usize; 4]) -> Result<Self, RuntimeError> {
        let layers = level
            .coarse_layers()
            .ok_or_else(|| {
                RuntimeError::Shape("reference coarse layers: none in this level".into())
            })?
            .to_vec();
        Ok(ReferenceCoarseLayers {
            dims: level.coarse_dims(fine_dims),
            n: level.coarse_site_dof(),
            layers,
        })
    }

    fn volume(&self) -> usize {
        self.dims.iter().product()
    }

    /// The coarse site X + d.
    fn shifted(&self, x: usize, d: &[i64; 4]) -> usize {
        let mut c = [0i64; 4];
        let mut r = x;
        for (cm, &l) in c.iter_mut().zip(&self.dims) {
            *cm = (r % l) as i64;
            r /= l;
        }
        let mut out = 0;
        for mu in (0..4).rev() {
            let l = self.dims[mu] as i64;
            out = out * self.dims[mu] + (c[mu] + d[mu]).rem_euclid(l) as usize;
        }
        out
    }

    /// Scalar offset of layer k's weight in the level's parameters.
    fn offset(&self, k: usize) -> usize {
        self.layers[..k]
            .iter()
            .map(|l| {
                2 * crate::ir::coarse_weight_shape(l, self.volume(), self.n)
                    .iter()
                    .product::<usize>()
            })
            .sum()
    }

    fn weight(
        &self,
        params: &[f64],
        k: usize,
        p: usize,
        x: usize,
        i: usize,
        j: usize,
    ) -> Complex<f64> {
        let l = &self.layers[k];
        let at = self.offset(k)
            + 2 * crate::ir::coarse_weight_index(l.local, self.volume(), self.n, p, x, i, j);
        Complex::new(params[at], params[at + 1])
    }

    /// Every layer's input, then the output.
    pub fn forward(&self, params: &[f64], x: &[Complex<f64>]) -> Vec<Vec<Complex<f64>>> {
        let mut acts = vec![x.to_vec()];
        for (k, l) in self.layers.iter().enumerate() {
            let inp = &acts[k];
            let mut out = vec![zero(); inp.len()];
            for site in 0..self.volume() {
                for (p, d) in l.offsets.iter().enumerate() {
                    let y = self.shifted(site, d);
                    for i in 0..self.n {
                        for j in 0..self.n {
                            out[site * self.n + i] +=
                                self.weight(params, k, p, site, i, j) * inp[y * self.n + j];
                        }
                    }
                }
            }
            acts.push(out);
        }
        acts
    }

    /// ∂L/∂x from g = ∂L/∂out; the weight gradients into `grad` (overwritten).
    pub fn backward(
        &self,
        params: &[f64],
        acts: &[Vec<Complex<f64>>],
        g: &[Complex<f64>],
        grad: &mut [f64],
    ) -> Vec<Complex<f64>> {
        grad.iter_mut().for_each(|v| *v = 0.0);
        let mut h = g.to_vec();
        for (k, l) in self.layers.iter().enumerate().rev() {
            let inp = &acts[k];
            let mut gin = vec![zero(); inp.len()];
            for site in 0..self.volume() {
                for (p, d) in l.offsets.iter().enumerate() {
                    let y = self.shifted(site, d);
                    for i in 0..self.n {
                        for j in 0..self.n {
                            let w = self.weight(params, k, p, site, i, j);
                            gin[y * self.n + j] += w.conj() * h[site * self.n + i];
                            let gw = h[site * self.n + i] * inp[y * self.n + j].conj();
                            let at = self.offset(k)
                                + 2 * crate::ir::coarse_weight_index(
                                    l.local,
                                    self.volume(),
                                    self.n,
                                    p,
                                    site,
                                    i,
                                    j,
                                );
                            grad[at] += gw.re;
                            grad[at + 1] += gw.im;
                        }
                    }
                }
            }
            h = gin;
        }
        h
    }
}
