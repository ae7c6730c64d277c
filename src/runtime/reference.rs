//! The oracle: a deliberately naive plain-Rust evaluator of the IR for real-valued layers
//! (dense, convolution, activations, flatten, add, log-softmax), forward and backward, generic
//! over the float type.
//!
//! Everything here is written for obviousness, not speed: natural `[batch][value]` layout,
//! one scalar loop per index of the textbook formula, convolution by explicit bounds checks
//! instead of padding buffers, activation derivatives from the *input* (the JIT uses the
//! output). Every JIT kernel is tested against this file, and this file is tested against
//! central finite differences, so it must stay independent of `codegen`.

use num_traits::Float;

use super::{BatchStats, Classifier, RuntimeError};
use crate::ir::{Activation, Graph, LayerKind, ValueType};

fn unsupported(kind: &LayerKind, layer: &str) -> RuntimeError {
    RuntimeError::Shape(format!(
        "layer `{layer}` ({kind:?}) is not a real-valued layer the reference evaluator supports"
    ))
}

fn real_len(graph: &Graph, v: crate::ir::ValueId) -> Result<usize, RuntimeError> {
    match graph.value(v) {
        ValueType::Real { shape } => Ok(shape.iter().product()),
        other => Err(RuntimeError::Shape(format!("value {v} is {other:?}, not a real tensor"))),
    }
}

fn c<T: Float>(x: f64) -> T {
    T::from(x).unwrap_or_else(T::nan)
}

/// Every multi-index of `shape`, row-major (last index fastest).
fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let total: usize = shape.iter().product();
    let mut out = Vec::with_capacity(total);
    for mut flat in 0..total {
        let mut idx = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            idx[d] = flat % shape[d];
            flat /= shape[d];
        }
        out.push(idx);
    }
    out
}

fn flat(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i)
}

/// Input position read by output position `p` through window offset `k`, if inside the input.
fn conv_src(p: &[usize], k: &[usize], pad: &[usize], in_spatial: &[usize]) -> Option<Vec<usize>> {
    let mut q = Vec::with_capacity(p.len());
    for d in 0..p.len() {
        let x = (p[d] + k[d]) as isize - pad[d] as isize;
        if x < 0 || x as usize >= in_spatial[d] {
            return None;
        }
        q.push(x as usize);
    }
    Some(q)
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
    if params.len() != graph.param_scalars() {
        return Err(RuntimeError::Shape(format!(
            "{} parameters given, the network has {}",
            params.len(),
            graph.param_scalars()
        )));
    }
    let in_len = real_len(graph, crate::ir::ValueId(0))?;
    if input.len() != batch * in_len {
        return Err(RuntimeError::Shape(format!(
            "input holds {} values, expected {batch} x {in_len}",
            input.len()
        )));
    }
    let mut acts: Vec<Vec<T>> = vec![Vec::new(); graph.values.len()];
    acts[0] = input.to_vec();
    for layer in &graph.layers {
        let out_len = real_len(graph, layer.output)?;
        let x = &acts[layer.inputs[0].index()];
        let in_len = real_len(graph, layer.inputs[0])?;
        let mut y = vec![T::zero(); batch * out_len];
        match &layer.kind {
            LayerKind::Dense { in_features, out_features, bias, complex: false } => {
                let w = graph.param(layer.params[0]).offset;
                for b in 0..batch {
                    for o in 0..*out_features {
                        let mut s = if *bias {
                            params[graph.param(layer.params[1]).offset + o]
                        } else {
                            T::zero()
                        };
                        for i in 0..*in_features {
                            s = s + params[w + o * in_features + i] * x[b * in_len + i];
                        }
                        y[b * out_len + o] = s;
                    }
                }
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
                let w = graph.param(layer.params[0]).offset;
                let pad: Vec<usize> = window.iter().map(|&k| padding.lo(k)).collect();
                let wsize: usize = window.iter().product();
                let isz: usize = in_spatial.iter().product();
                let osz: usize = out_spatial.iter().product();
                for b in 0..batch {
                    for co in 0..*out_channels {
                        for p in indices(out_spatial) {
                            let mut s = if *bias {
                                params[graph.param(layer.params[1]).offset + co]
                            } else {
                                T::zero()
                            };
                            for ci in 0..*in_channels {
                                for k in indices(window) {
                                    if let Some(q) = conv_src(&p, &k, &pad, in_spatial) {
                                        let wi =
                                            w + (co * in_channels + ci) * wsize + flat(&k, window);
                                        s = s + params[wi]
                                            * x[b * in_len + ci * isz + flat(&q, in_spatial)];
                                    }
                                }
                            }
                            y[b * out_len + co * osz + flat(&p, out_spatial)] = s;
                        }
                    }
                }
            }
            LayerKind::Activation(a) => {
                for (yo, &xi) in y.iter_mut().zip(x) {
                    *yo = act(*a, xi);
                }
            }
            LayerKind::Flatten => y.copy_from_slice(x),
            LayerKind::Add => {
                let x2 = &acts[layer.inputs[1].index()];
                for i in 0..y.len() {
                    y[i] = x[i] + x2[i];
                }
            }
            LayerKind::LogSoftmax => {
                for b in 0..batch {
                    let row = &x[b * in_len..(b + 1) * in_len];
                    let m = row.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
                    let s = row.iter().fold(T::zero(), |s, &v| s + (v - m).exp());
                    let lse = m + s.ln();
                    for (i, &v) in row.iter().enumerate() {
                        y[b * out_len + i] = v - lse;
                    }
                }
            }
            other => return Err(unsupported(other, &layer.name)),
        }
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
    let mut grads: Vec<Vec<T>> = acts.iter().map(|a| vec![T::zero(); a.len()]).collect();
    if dout.len() != grads[graph.output.index()].len() {
        return Err(RuntimeError::Shape("output gradient has the wrong length".into()));
    }
    grads[graph.output.index()] = dout.to_vec();
    let mut dp = vec![T::zero(); params.len()];
    for layer in graph.layers.iter().rev() {
        let dy = grads[layer.output.index()].clone();
        let xin = layer.inputs[0].index();
        let x = &acts[xin];
        let y = &acts[layer.output.index()];
        let in_len = real_len(graph, layer.inputs[0])?;
        let out_len = real_len(graph, layer.output)?;
        let mut dx = vec![T::zero(); x.len()];
        match &layer.kind {
            LayerKind::Dense { in_features, out_features, bias, complex: false } => {
                let w = graph.param(layer.params[0]).offset;
                for b in 0..batch {
                    for o in 0..*out_features {
                        let g = dy[b * out_len + o];
                        if *bias {
                            let bo = graph.param(layer.params[1]).offset + o;
                            dp[bo] = dp[bo] + g;
                        }
                        for i in 0..*in_features {
                            let wi = w + o * in_features + i;
                            dp[wi] = dp[wi] + g * x[b * in_len + i];
                            dx[b * in_len + i] = dx[b * in_len + i] + g * params[wi];
                        }
                    }
                }
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
                let w = graph.param(layer.params[0]).offset;
                let pad: Vec<usize> = window.iter().map(|&k| padding.lo(k)).collect();
                let wsize: usize = window.iter().product();
                let isz: usize = in_spatial.iter().product();
                let osz: usize = out_spatial.iter().product();
                for b in 0..batch {
                    for co in 0..*out_channels {
                        for p in indices(out_spatial) {
                            let g = dy[b * out_len + co * osz + flat(&p, out_spatial)];
                            if *bias {
                                let bo = graph.param(layer.params[1]).offset + co;
                                dp[bo] = dp[bo] + g;
                            }
                            for ci in 0..*in_channels {
                                for k in indices(window) {
                                    if let Some(q) = conv_src(&p, &k, &pad, in_spatial) {
                                        let wi =
                                            w + (co * in_channels + ci) * wsize + flat(&k, window);
                                        let xi = b * in_len + ci * isz + flat(&q, in_spatial);
                                        dp[wi] = dp[wi] + g * x[xi];
                                        dx[xi] = dx[xi] + g * params[wi];
                                    }
                                }
                            }
                        }
                    }
                }
            }
            LayerKind::Activation(a) => {
                for i in 0..dx.len() {
                    dx[i] = dy[i] * act_deriv(*a, x[i]);
                }
            }
            LayerKind::Flatten => dx.copy_from_slice(&dy),
            LayerKind::Add => {
                dx.copy_from_slice(&dy);
                let x2 = layer.inputs[1].index();
                for i in 0..dy.len() {
                    grads[x2][i] = grads[x2][i] + dy[i];
                }
            }
            LayerKind::LogSoftmax => {
                for b in 0..batch {
                    let s = (0..out_len).fold(T::zero(), |s, i| s + dy[b * out_len + i]);
                    for i in 0..out_len {
                        dx[b * in_len + i] = dy[b * out_len + i] - y[b * out_len + i].exp() * s;
                    }
                }
            }
            other => return Err(unsupported(other, &layer.name)),
        }
        for (g, d) in grads[xin].iter_mut().zip(dx) {
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
    let mut d = vec![T::zero(); logp.len()];
    let mut stats = BatchStats { samples: batch, ..Default::default() };
    for (b, &l) in labels.iter().enumerate() {
        let l = l as usize;
        if l >= classes {
            return Err(RuntimeError::Shape(format!(
                "label {l} but the network has {classes} classes"
            )));
        }
        let row = &logp[b * classes..(b + 1) * classes];
        stats.loss_sum -= row[l].to_f64().unwrap_or(f64::NAN);
        let arg = (0..classes).fold(0, |a, i| if row[i] > row[a] { i } else { a });
        stats.correct += usize::from(arg == l);
        d[b * classes + l] = c::<T>(-1.0 / batch as f64);
    }
    Ok((stats, d))
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
