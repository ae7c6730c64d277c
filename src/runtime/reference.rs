//! The oracle: a deliberately naive plain-Rust evaluator of the IR for real-valued layers
//! (dense, convolution, activations, flatten, add, log-softmax), forward and backward, generic
//! over the float type.
//!
//! Everything here is written for obviousness, not speed: every buffer is looked at as the
//! ndarray it is (`[batch, channels, spatial...]` for a value, the IR's declared shape for a
//! parameter), one scalar loop per index of the textbook formula, convolution by explicit
//! bounds checks instead of padding buffers, activation derivatives from the *input* (the JIT
//! uses the output). Every JIT kernel is tested against this file, and this file is tested
//! against central finite differences, so it must stay independent of `codegen`.

use ndarray::{
    Array, Array1, Array2, ArrayD, ArrayView, ArrayView1, ArrayView2, ArrayViewD, Axis, Dimension,
    Ix2, IxDyn, ShapeError, Zip, indices,
};
use num_traits::Float;

use super::{BatchStats, Classifier, RuntimeError};
use crate::ir::verify::verify;
use crate::ir::{Activation, Graph, LayerKind, ParamId, ValueId, ValueType};

fn unsupported(kind: &LayerKind, layer: &str) -> RuntimeError {
    RuntimeError::Shape(format!(
        "layer `{layer}` ({kind:?}) is not a real-valued layer the reference evaluator supports"
    ))
}

/// Turns an ndarray shape error into a runtime error that says which buffer was wrong.
fn bad_shape(what: impl std::fmt::Display) -> impl FnOnce(ShapeError) -> RuntimeError {
    move |e| RuntimeError::Shape(format!("{what}: {e}"))
}

/// The declared shape of a real value (one sample).
fn shape_of(graph: &Graph, v: ValueId) -> Result<&[usize], RuntimeError> {
    match graph.value(v) {
        ValueType::Real { shape } => Ok(shape),
        other => Err(RuntimeError::Shape(format!("value {v} is {other:?}, not a real tensor"))),
    }
}

fn real_len(graph: &Graph, v: ValueId) -> Result<usize, RuntimeError> {
    Ok(shape_of(graph, v)?.iter().product())
}

fn c<T: Float>(x: f64) -> T {
    T::from(x).unwrap_or_else(T::nan)
}

/// `data` as an array of shape `dim`. The length must match exactly: ndarray itself only checks
/// that the view fits inside the slice.
fn view<'a, T, D: Dimension>(
    dim: D,
    data: &'a [T],
    what: impl std::fmt::Display,
) -> Result<ArrayView<'a, T, D>, RuntimeError> {
    if dim.size() != data.len() {
        return Err(RuntimeError::Shape(format!(
            "{what}: {} numbers do not fill an array of shape {:?}",
            data.len(),
            dim.slice()
        )));
    }
    ArrayView::from_shape(dim, data).map_err(bad_shape(what))
}

/// A batch of value `v` (`batch` samples back to back) as the array `[batch, shape...]`.
fn batched<'a, T>(
    graph: &Graph,
    v: ValueId,
    batch: usize,
    data: &'a [T],
) -> Result<ArrayViewD<'a, T>, RuntimeError> {
    let dims: Vec<usize> =
        std::iter::once(batch).chain(shape_of(graph, v)?.iter().copied()).collect();
    view(IxDyn(&dims), data, format_args!("value {v}"))
}

/// A batch of value `v` as a matrix `[batch, values per sample]`.
fn rows<'a, T>(
    graph: &Graph,
    v: ValueId,
    batch: usize,
    data: &'a [T],
) -> Result<ArrayView2<'a, T>, RuntimeError> {
    view(Ix2(batch, real_len(graph, v)?), data, format_args!("value {v}"))
}

/// Parameter `id` of the flat vector `params` as an array of its declared shape.
fn param<'a, T>(
    graph: &Graph,
    id: ParamId,
    params: &'a [T],
) -> Result<ArrayViewD<'a, T>, RuntimeError> {
    let p = graph.param(id);
    let data = params.get(p.offset..p.offset + p.scalar_len()).ok_or_else(|| {
        RuntimeError::Shape(format!(
            "parameter `{}` lies outside the {} given",
            p.name,
            params.len()
        ))
    })?;
    view(IxDyn(&p.shape), data, format_args!("parameter `{}`", p.name))
}

/// Parameter `id` as a matrix (a dense layer's weight `[out, in]`).
fn matrix<'a, T>(
    graph: &Graph,
    id: ParamId,
    params: &'a [T],
) -> Result<ArrayView2<'a, T>, RuntimeError> {
    param(graph, id, params)?
        .into_dimensionality::<Ix2>()
        .map_err(bad_shape(format_args!("parameter `{}`", graph.param(id).name)))
}

/// Adds the gradient `g` of parameter `id` (its declared shape) into the flat gradient `dp`.
fn add_param_grad<T: Float, D: Dimension>(
    graph: &Graph,
    id: ParamId,
    dp: &mut [T],
    g: &Array<T, D>,
) {
    let p = graph.param(id);
    for (d, &v) in dp[p.offset..p.offset + p.scalar_len()].iter_mut().zip(g.iter()) {
        *d = *d + v;
    }
}

/// The array's entries in row-major order (the flat layout of every buffer in symc).
fn into_vec<T, D: Dimension>(a: Array<T, D>) -> Vec<T> {
    a.into_iter().collect()
}

/// Input position read by output position `p` through window offset `k`, if inside the input.
fn conv_src(p: &IxDyn, k: &IxDyn, pad: &[usize], in_spatial: &[usize]) -> Option<IxDyn> {
    let mut q = IxDyn::zeros(p.ndim());
    for d in 0..p.ndim() {
        let x = (p[d] + k[d]) as isize - pad[d] as isize;
        if x < 0 || x as usize >= in_spatial[d] {
            return None;
        }
        q[d] = x as usize;
    }
    Some(q)
}

/// Sample `n`, channel `c` of a `[batch, channels, spatial...]` array: the spatial array.
fn plane<'a, T>(a: &ArrayViewD<'a, T>, n: usize, c: usize) -> ArrayViewD<'a, T> {
    a.clone().index_axis_move(Axis(0), n).index_axis_move(Axis(0), c)
}

fn act<T: Float>(a: Activation, x: T) -> T {
    match a {
        Activation::Relu => x.max(T::zero()),
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => T::one() / (T::one() + (-x).exp()),
        Activation::Identity => x,
    }
}

fn act_deriv<T: Float>(a: Activation, x: T) -> T {
    match a {
        Activation::Relu => {
            if x > T::zero() {
                T::one()
            } else {
                T::zero()
            }
        }
        Activation::Tanh => T::one() - x.tanh() * x.tanh(),
        Activation::Sigmoid => {
            let s = T::one() / (T::one() + (-x).exp());
            s * (T::one() - s)
        }
        Activation::Identity => T::one(),
    }
}

/// Forward pass: the activations of every IR value, each `batch * len` long.
pub fn forward<T: Float>(
    graph: &Graph,
    params: &[T],
    input: &[T],
    batch: usize,
) -> Result<Vec<Vec<T>>, RuntimeError> {
    // The verified graph guarantees that every layer's declared sizes match its parameters and
    // values, so the index loops below stay inside their arrays.
    verify(graph)?;
    if params.len() != graph.param_scalars() {
        return Err(RuntimeError::Shape(format!(
            "{} parameters given, the network has {}",
            params.len(),
            graph.param_scalars()
        )));
    }
    let in_len = real_len(graph, ValueId(0))?;
    if input.len() != batch * in_len {
        return Err(RuntimeError::Shape(format!(
            "input holds {} values, expected {batch} x {in_len}",
            input.len()
        )));
    }
    let mut acts: Vec<Vec<T>> = vec![Vec::new(); graph.values.len()];
    acts[0] = input.to_vec();
    for layer in &graph.layers {
        let xv = layer.inputs[0];
        let x = &acts[xv.index()];
        let y: Vec<T> = match &layer.kind {
            LayerKind::Dense { in_features, out_features, bias, complex: false } => {
                // y[n, o] = b[o] + sum_i W[o, i] x[n, i]
                let x = rows(graph, xv, batch, x)?;
                let w = matrix(graph, layer.params[0], params)?;
                let b = if *bias { Some(param(graph, layer.params[1], params)?) } else { None };
                let mut y = Array2::zeros((batch, *out_features));
                for n in 0..batch {
                    for o in 0..*out_features {
                        let mut s = b.as_ref().map_or(T::zero(), |b| b[[o]]);
                        for i in 0..*in_features {
                            s = s + w[[o, i]] * x[[n, i]];
                        }
                        y[[n, o]] = s;
                    }
                }
                into_vec(y)
            }
            LayerKind::Conv {
                in_channels,
                out_channels,
                window,
                padding,
                bias,
                in_spatial,
                out_spatial,
            } => {
                // y[n, co, p] = b[co] + sum_ci sum_k W[co, ci, k] x[n, ci, p + k - pad]
                let x = batched(graph, xv, batch, x)?;
                let w = param(graph, layer.params[0], params)?;
                let b = if *bias { Some(param(graph, layer.params[1], params)?) } else { None };
                let pad: Vec<usize> = window.iter().map(|&k| padding.lo(k)).collect();
                let mut y =
                    ArrayD::zeros(IxDyn(&[&[batch, *out_channels][..], &out_spatial[..]].concat()));
                for n in 0..batch {
                    for co in 0..*out_channels {
                        for p in indices(IxDyn(out_spatial)) {
                            let mut s = b.as_ref().map_or(T::zero(), |b| b[[co]]);
                            for ci in 0..*in_channels {
                                let (image, kernel) = (plane(&x, n, ci), plane(&w, co, ci));
                                for k in indices(IxDyn(window)) {
                                    if let Some(q) = conv_src(&p, &k, &pad, in_spatial) {
                                        s = s + kernel[&k] * image[&q];
                                    }
                                }
                            }
                            y.index_axis_mut(Axis(0), n).index_axis_move(Axis(0), co)[&p] = s;
                        }
                    }
                }
                into_vec(y)
            }
            LayerKind::Activation(a) => x.iter().map(|&v| act(*a, v)).collect(),
            LayerKind::Flatten => x.clone(),
            LayerKind::Add => {
                let x2 = &acts[layer.inputs[1].index()];
                if x2.len() != x.len() {
                    return Err(RuntimeError::Shape(format!(
                        "`{}` adds {} values to {}",
                        layer.name,
                        x2.len(),
                        x.len()
                    )));
                }
                into_vec(&ArrayView1::from(x) + &ArrayView1::from(x2))
            }
            LayerKind::LogSoftmax => {
                // y[n, i] = x[n, i] - log sum_j exp(x[n, j]), shifted by the row maximum
                let x = rows(graph, xv, batch, x)?;
                let mut y = Array2::zeros(x.raw_dim());
                Zip::from(x.rows()).and(y.rows_mut()).for_each(|row, mut out| {
                    let m = row.fold(T::neg_infinity(), |m, &v| m.max(v));
                    let s = row.fold(T::zero(), |s, &v| s + (v - m).exp());
                    let lse = m + s.ln();
                    Zip::from(&mut out).and(&row).for_each(|o, &v| *o = v - lse);
                });
                into_vec(y)
            }
            other => return Err(unsupported(other, &layer.name)),
        };
        acts[layer.output.index()] = y;
    }
    Ok(acts)
}

/// Backward pass from `dout` (gradient of the loss with respect to the graph output) through
/// the activations of [`forward`]. Returns (gradient of the flat parameters, gradient of the
/// network input).
pub fn backward<T: Float>(
    graph: &Graph,
    params: &[T],
    acts: &[Vec<T>],
    batch: usize,
    dout: &[T],
) -> Result<(Vec<T>, Vec<T>), RuntimeError> {
    verify(graph)?;
    if params.len() != graph.param_scalars() {
        return Err(RuntimeError::Shape(format!(
            "{} parameters given, the network has {}",
            params.len(),
            graph.param_scalars()
        )));
    }
    if acts.len() != graph.values.len() {
        return Err(RuntimeError::Shape(format!(
            "{} activations given, the network has {} values",
            acts.len(),
            graph.values.len()
        )));
    }
    for (i, a) in acts.iter().enumerate() {
        let want = batch * real_len(graph, ValueId(i as u32))?;
        if a.len() != want {
            return Err(RuntimeError::Shape(format!(
                "activation of value v{i} holds {} numbers, expected {want}",
                a.len()
            )));
        }
    }
    let mut grads: Vec<Vec<T>> = acts.iter().map(|a| vec![T::zero(); a.len()]).collect();
    if dout.len() != grads[graph.output.index()].len() {
        return Err(RuntimeError::Shape("output gradient has the wrong length".into()));
    }
    grads[graph.output.index()] = dout.to_vec();
    let mut dp = vec![T::zero(); params.len()];
    for layer in graph.layers.iter().rev() {
        let dy = grads[layer.output.index()].clone();
        let xv = layer.inputs[0];
        let x = &acts[xv.index()];
        let y = &acts[layer.output.index()];
        let dx: Vec<T> = match &layer.kind {
            LayerKind::Dense { in_features, out_features, bias, complex: false } => {
                // dW[o, i] = sum_n dy[n, o] x[n, i]; db[o] = sum_n dy[n, o];
                // dx[n, i] = sum_o dy[n, o] W[o, i]
                let x = rows(graph, xv, batch, x)?;
                let dy = rows(graph, layer.output, batch, &dy)?;
                let w = matrix(graph, layer.params[0], params)?;
                let mut dw = Array2::zeros(w.raw_dim());
                let mut db = Array1::zeros(*out_features);
                let mut dx = Array2::zeros(x.raw_dim());
                for n in 0..batch {
                    for o in 0..*out_features {
                        let g = dy[[n, o]];
                        db[o] = db[o] + g;
                        for i in 0..*in_features {
                            dw[[o, i]] = dw[[o, i]] + g * x[[n, i]];
                            dx[[n, i]] = dx[[n, i]] + g * w[[o, i]];
                        }
                    }
                }
                add_param_grad(graph, layer.params[0], &mut dp, &dw);
                if *bias {
                    add_param_grad(graph, layer.params[1], &mut dp, &db);
                }
                into_vec(dx)
            }
            LayerKind::Conv {
                in_channels,
                out_channels,
                window,
                padding,
                bias,
                in_spatial,
                out_spatial,
            } => {
                // With q = p + k - pad inside the input:
                // dW[co, ci, k] = sum_n sum_p dy[n, co, p] x[n, ci, q];  db[co] = sum dy[n, co, p];
                // dx[n, ci, q] = sum_co sum_k dy[n, co, p] W[co, ci, k]
                let x = batched(graph, xv, batch, x)?;
                let dy = batched(graph, layer.output, batch, &dy)?;
                let w = param(graph, layer.params[0], params)?;
                let pad: Vec<usize> = window.iter().map(|&k| padding.lo(k)).collect();
                let mut dw = ArrayD::zeros(w.raw_dim());
                let mut db = Array1::zeros(*out_channels);
                let mut dx = ArrayD::zeros(x.raw_dim());
                for n in 0..batch {
                    for co in 0..*out_channels {
                        for p in indices(IxDyn(out_spatial)) {
                            let g = plane(&dy, n, co)[&p];
                            db[co] = db[co] + g;
                            for ci in 0..*in_channels {
                                let (image, kernel) = (plane(&x, n, ci), plane(&w, co, ci));
                                let mut dkernel =
                                    dw.index_axis_mut(Axis(0), co).index_axis_move(Axis(0), ci);
                                let mut dimage =
                                    dx.index_axis_mut(Axis(0), n).index_axis_move(Axis(0), ci);
                                for k in indices(IxDyn(window)) {
                                    if let Some(q) = conv_src(&p, &k, &pad, in_spatial) {
                                        dkernel[&k] = dkernel[&k] + g * image[&q];
                                        dimage[&q] = dimage[&q] + g * kernel[&k];
                                    }
                                }
                            }
                        }
                    }
                }
                add_param_grad(graph, layer.params[0], &mut dp, &dw);
                if *bias {
                    add_param_grad(graph, layer.params[1], &mut dp, &db);
                }
                into_vec(dx)
            }
            LayerKind::Activation(a) => {
                let mut dx = Array1::zeros(x.len());
                Zip::from(&mut dx)
                    .and(&ArrayView1::from(&dy))
                    .and(&ArrayView1::from(x))
                    .for_each(|d, &g, &v| *d = g * act_deriv(*a, v));
                into_vec(dx)
            }
            LayerKind::Flatten => dy.clone(),
            LayerKind::Add => {
                let x2 = layer.inputs[1].index();
                for (g, &d) in grads[x2].iter_mut().zip(&dy) {
                    *g = *g + d;
                }
                dy.clone()
            }
            LayerKind::LogSoftmax => {
                // dx[n, i] = dy[n, i] - exp(y[n, i]) sum_j dy[n, j]
                let dy = rows(graph, layer.output, batch, &dy)?;
                let y = rows(graph, layer.output, batch, y)?;
                let mut dx = Array2::zeros(dy.raw_dim());
                Zip::from(dx.rows_mut()).and(dy.rows()).and(y.rows()).for_each(|mut d, g, y| {
                    let s = g.sum();
                    Zip::from(&mut d).and(&g).and(&y).for_each(|d, &g, &y| *d = g - y.exp() * s);
                });
                into_vec(dx)
            }
            other => return Err(unsupported(other, &layer.name)),
        };
        for (g, d) in grads[xv.index()].iter_mut().zip(dx) {
            *g = *g + d;
        }
    }
    Ok((dp, std::mem::take(&mut grads[0])))
}

/// Mean NLL of log-probabilities `logp` (`batch x classes`) and its gradient with respect to
/// `logp`; also counts arg-max hits.
pub fn nll<T: Float>(
    logp: &[T],
    labels: &[u8],
    classes: usize,
) -> Result<(BatchStats, Vec<T>), RuntimeError> {
    let batch = labels.len();
    if logp.len() != batch * classes {
        return Err(RuntimeError::Shape("log-probabilities and labels disagree".into()));
    }
    let logp = ArrayView2::from_shape((batch, classes), logp)
        .map_err(|_| RuntimeError::Shape("log-probabilities and labels disagree".into()))?;
    let mut d = Array2::zeros((batch, classes));
    let mut stats = BatchStats { samples: batch, ..Default::default() };
    for (n, (row, &l)) in logp.rows().into_iter().zip(labels).enumerate() {
        let l = l as usize;
        if l >= classes {
            return Err(RuntimeError::Shape(format!(
                "label {l} but the network has {classes} classes"
            )));
        }
        stats.loss_sum -= row[l].to_f64().unwrap_or(f64::NAN);
        let arg = (0..classes).fold(0, |a, i| if row[i] > row[a] { i } else { a });
        stats.correct += usize::from(arg == l);
        d[[n, l]] = c::<T>(-1.0 / batch as f64);
    }
    Ok((stats, into_vec(d)))
}

/// [`forward`] in f64, for gradient checks.
pub fn forward_f64(
    graph: &Graph,
    params: &[f64],
    input: &[f64],
    batch: usize,
) -> Result<Vec<Vec<f64>>, RuntimeError> {
    forward(graph, params, input, batch)
}

/// [`backward`] in f64, for gradient checks.
pub fn backward_f64(
    graph: &Graph,
    params: &[f64],
    acts: &[Vec<f64>],
    batch: usize,
    dout: &[f64],
) -> Result<(Vec<f64>, Vec<f64>), RuntimeError> {
    backward(graph, params, acts, batch, dout)
}

/// The reference evaluator as a [`Classifier`]: f32 in and out, f64 inside.
pub struct ReferenceClassifier {
    graph: Graph,
    classes: usize,
}

impl ReferenceClassifier {
    /// Accepts any graph of real-valued layers whose output is a vector of class scores.
    pub fn new(graph: &Graph) -> Result<ReferenceClassifier, RuntimeError> {
        for layer in &graph.layers {
            match &layer.kind {
                LayerKind::Dense { complex: false, .. }
                | LayerKind::Conv { .. }
                | LayerKind::Activation(_)
                | LayerKind::Flatten
                | LayerKind::Add
                | LayerKind::LogSoftmax => {}
                other => return Err(unsupported(other, &layer.name)),
            }
        }
        let classes = real_len(graph, graph.output)?;
        Ok(ReferenceClassifier { graph: graph.clone(), classes })
    }

    fn batch_of(&self, images: &[f32]) -> Result<usize, RuntimeError> {
        let n = real_len(&self.graph, crate::ir::ValueId(0))?;
        if images.len() % n != 0 {
            return Err(RuntimeError::Shape(format!(
                "{} input values is not a whole number of {n}-value samples",
                images.len()
            )));
        }
        Ok(images.len() / n)
    }
}

fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

impl Classifier for ReferenceClassifier {
    fn graph(&self) -> &Graph {
        &self.graph
    }

    fn train_batch(
        &self,
        params: &[f32],
        images: &[f32],
        labels: &[u8],
        grad: &mut [f32],
    ) -> Result<BatchStats, RuntimeError> {
        let batch = self.batch_of(images)?;
        if batch != labels.len() || grad.len() != params.len() {
            return Err(RuntimeError::Shape("images, labels and gradient disagree".into()));
        }
        let p = widen(params);
        let acts = forward(&self.graph, &p, &widen(images), batch)?;
        let (stats, dlogp) = nll(&acts[self.graph.output.index()], labels, self.classes)?;
        let (dp, _) = backward(&self.graph, &p, &acts, batch, &dlogp)?;
        for (g, d) in grad.iter_mut().zip(dp) {
            *g = d as f32;
        }
        Ok(stats)
    }

    fn predict(
        &self,
        params: &[f32],
        images: &[f32],
        logp: &mut [f32],
    ) -> Result<(), RuntimeError> {
        let batch = self.batch_of(images)?;
        if logp.len() != batch * self.classes {
            return Err(RuntimeError::Shape("output buffer has the wrong length".into()));
        }
        let acts = forward(&self.graph, &widen(params), &widen(images), batch)?;
        for (o, v) in logp.iter_mut().zip(&acts[self.graph.output.index()]) {
            *o = *v as f32;
        }
        Ok(())
    }
}
