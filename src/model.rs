//! symc as a Rust library: compile a `.sym` model, run it on ndarray arrays, keep its weights.
//!
//! The command line trains and evaluates; a program that wants to embed a network (call a
//! trained preconditioner from its own solver, score images, check a model against its own
//! reference) needs the same pieces without a run folder. This module is that surface, and only
//! a surface: [`Model`] compiles text with `sema`, [`ClassifierNet`] and [`GaugeNet`] wrap the
//! executors of `runtime` (the JIT classifier, the gauge-equivariant and dense fermion networks),
//! and weights go through `train::checkpoint`, the same safetensors files `symc train` writes.
//! Nothing here computes; everything here checks shapes, so a wrong array is an `Err` that says
//! what was expected, never a panic.
//!
//! Data layouts:
//! - parameters are the flat vector of the model (`Graph.params` order, a complex weight as two
//!   consecutive scalars (re, im)), an [`Array1`];
//! - classifier inputs are `[batch, sample...]` arrays of `f32`, where a sample has the model's
//!   input shape (axes of length 1 may be left out) or is flattened to one axis;
//! - fermion fields are complex arrays `[feature, site, 12]` or `[feature, site, spin, colour]`
//!   (`[f, V, 4, 3]`), sites in [`Geometry`](crate::lattice::geometry::Geometry) order (x
//!   fastest, t last), the component index `spin * 3 + colour`.
//!
//! ```
//! use ndarray::{Array4, array};
//! use symc::Model;
//!
//! # fn main() -> miette::Result<()> {
//! let model = Model::from_str(
//!     "tiny.sym",
//!     "network tiny {
//!          input image: real[1, 8, 8]
//!          symmetry translation(axes = 1..2)
//!          linear(1 -> 4, window = 3) relu    // a 3x3 convolution, because of the symmetry
//!          linear(4 -> 10, window = 6)
//!          output logits: log_softmax
//!      }",
//! )?;
//! let net = model.classifier()?;
//! let params = model.init_params(7);
//! let images = Array4::<f32>::from_elem((2, 1, 8, 8), 0.5); // [batch, 1, 8, 8]
//! let logp = net.forward(params.view(), images.view())?; // [batch, 10] log-probabilities
//! assert_eq!(logp.dim(), (2, 10));
//! let total: f32 = logp.row(0).iter().map(|l| l.exp()).sum();
//! assert!((total - 1.0).abs() < 1e-5);
//!
//! // One training step's worth: the mean NLL of a labelled batch and its gradient.
//! let step = net.loss_and_grad(params.view(), images.view(), array![3u8, 7].view())?;
//! assert_eq!(step.grad.len(), model.param_scalars());
//!
//! // A wrong shape is an error that says what was expected.
//! let wrong = Array4::<f32>::zeros((2, 1, 9, 8));
//! assert!(net.forward(params.view(), wrong.view()).is_err());
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array, Array1, Array2, ArrayView, ArrayView1, Dimension};
use num_complex::Complex;

use crate::codegen::simd::Element;
use crate::ir::{Graph, ValueId, ValueType};
use crate::lattice::gauge::GaugeField;
use crate::runtime::classifier::{CompileOptions, JitClassifier};
use crate::runtime::{Classifier, FermionNet, RuntimeError, compile_fermion_net};
use crate::sema::LoadError;
use crate::train::checkpoint::{self, CheckpointError};

/// Why a model could not be compiled, run or given its weights. Every variant is a
/// [`miette::Diagnostic`]: `?` into a `miette::Result` renders it, with the source snippet for
/// problems in the model text.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ModelError {
    /// The model text has problems (all of them, with spans), or its file cannot be read.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Load(#[from] LoadError),
    /// The model is not of the kind asked for (a classifier run as a gauge network, say).
    #[error("model `{model}` {message}")]
    #[diagnostic(code(symc::model::kind))]
    Kind { model: String, message: String },
    /// An array given to a network does not have the shape the model needs.
    #[error("{what} does not fit model `{model}`: {message}")]
    #[diagnostic(code(symc::model::shape))]
    Shape { model: String, what: String, message: String },
    /// The executor failed (compiling kernels, or a check of its own).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Runtime(#[from] RuntimeError),
    /// Weights could not be saved or loaded.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// A checked model: the result of compiling a `.sym` text. It knows its layers and parameter
/// layout; [`Model::classifier`] and [`Model::gauge_net`] compile it to native kernels.
#[derive(Clone, Debug)]
pub struct Model {
    graph: Graph,
}

impl Model {
    /// Compiles a model given as text; `name` is shown in diagnostics (usually a file name).
    /// Fails with every problem of the text at once.
    pub fn from_str(name: &str, text: &str) -> Result<Model, ModelError> {
        let graph =
            crate::sema::compile_str(name, text).map_err(|d| LoadError::Model(Box::new(d)))?;
        Ok(Model { graph })
    }

    /// Reads and compiles a `.sym` file; relative paths in its `train` block are resolved
    /// against the file's folder, as `symc train` does.
    pub fn load(path: impl AsRef<Path>) -> Result<Model, ModelError> {
        Ok(Model { graph: crate::sema::load_model(path.as_ref())? })
    }

    /// The network's name (`network NAME { ... }`).
    pub fn name(&self) -> &str {
        &self.graph.name
    }

    /// The checked IR: layers, values, parameters (what `symc inspect` prints).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Length of the flat parameter vector (a complex weight counts twice).
    pub fn param_scalars(&self) -> usize {
        self.graph.param_scalars()
    }

    /// The seeded initial parameters `symc train` starts from (PyTorch's defaults for real
    /// layers, identity plus small noise for maps of fermion fields).
    pub fn init_params(&self, seed: u64) -> Array1<f32> {
        Array1::from(crate::runtime::init::init_params(&self.graph, seed))
    }

    /// Compiles the model as an image classifier with the default options (batches of up to 64
    /// per kernel call, two threads).
    pub fn classifier(&self) -> Result<ClassifierNet, ModelError> {
        self.classifier_with(&CompileOptions::default())
    }

    /// [`Model::classifier`] with explicit options. Larger batches than `opts.max_batch` still
    /// work: they run in chunks.
    pub fn classifier_with(&self, opts: &CompileOptions) -> Result<ClassifierNet, ModelError> {
        let g = &self.graph;
        let (Some(ValueType::Real { shape }), ValueType::Real { shape: out }) =
            (g.values.first(), g.value(g.output))
        else {
            return Err(self.kind("works on fermion fields; compile it with `Model::gauge_net`"));
        };
        if out.len() != 1 {
            return Err(self.kind(&format!(
                "outputs a tensor of shape {out:?}, not a vector of class scores"
            )));
        }
        let exec = JitClassifier::compile(g, opts).map_err(RuntimeError::from)?;
        Ok(ClassifierNet {
            model: g.name.clone(),
            exec,
            input_shape: shape.clone(),
            classes: out[0],
            max_batch: opts.max_batch.max(1),
        })
    }

    /// Compiles the model as a network on fermion fields over `gauge`, whose lattice must be the
    /// model's: gauge-equivariant layers run on `runtime::lattice_net`, a chain of complex dense
    /// layers (no symmetry) on `runtime::dense_lattice`. `T` is `f32` or `f64`.
    ///
    /// A gauge field comes from a file with [`read_gauge`](crate::lattice::io::read_gauge)
    /// (NERSC, ILDG/SciDAC LIME, MILC, DDalphaAMG), from the heatbath, or is made up, as here:
    ///
    /// ```
    /// use ndarray::Array4;
    /// use num_complex::Complex;
    /// use rand::SeedableRng;
    /// use symc::Model;
    /// use symc::lattice::gauge::GaugeField;
    ///
    /// # fn main() -> miette::Result<()> {
    /// let model = Model::from_str(
    ///     "ptc.sym",
    ///     "network ptc {
    ///          lattice  4 x 4 x 4 x 4
    ///          input    v: fermion
    ///          symmetry gauge(SU3), translation
    ///          linear(1 -> 1, hops = 1)    // a PTC layer: identity and the 8 one-hop paths
    ///          output   fermion
    ///      }",
    /// )?;
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    /// let gauge = GaugeField::random([4, 4, 4, 4], &mut rng); // Haar-random links
    /// let net = model.gauge_net::<f32>(&gauge)?;
    /// let params = model.init_params(0); // identity plus 1e-3 noise
    /// // One feature on 4^4 = 256 sites: [feature, site, spin, colour].
    /// let psi = Array4::from_elem((1, 256, 4, 3), Complex::new(1.0f32, 0.0));
    /// let out = net.forward(params.view(), psi.view())?;
    /// assert_eq!(out.dim(), (1, 256, 4, 3));
    /// // A freshly initialised PTC layer is close to the identity map.
    /// assert!(out.iter().zip(&psi).all(|(a, b)| (a - b).norm() < 0.1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn gauge_net<T: Element>(&self, gauge: &GaugeField) -> Result<GaugeNet<T>, ModelError> {
        let g = &self.graph;
        if !matches!(g.values.first(), Some(ValueType::Fermion { .. })) {
            return Err(self.kind("classifies real tensors; compile it with `Model::classifier`"));
        }
        let net = compile_fermion_net::<T>(g, gauge)?;
        Ok(GaugeNet {
            model: g.name.clone(),
            net,
            volume: gauge.geom.volume(),
            features_in: g.features(ValueId(0)),
            features_out: g.features(g.output),
        })
    }

    /// Writes `params` to a safetensors file (atomically): every parameter under its name and
    /// logical shape, complex ones with a trailing axis of 2, the format `symc train` writes its
    /// checkpoints in. Python's `safetensors` reads it too.
    ///
    /// ```
    /// use symc::Model;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let model = Model::from_str(
    ///     "mlp.sym",
    ///     "network mlp {
    ///          input x: real[16]
    ///          symmetry none
    ///          linear(16 -> 8) tanh
    ///          linear(8 -> 3)
    ///          output p: log_softmax
    ///      }",
    /// )?;
    /// let params = model.init_params(3);
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("weights.safetensors");
    /// model.save_params(&path, params.view())?;
    /// assert_eq!(model.load_params(&path)?, params); // bit for bit
    /// # Ok(())
    /// # }
    /// ```
    pub fn save_params(
        &self,
        path: impl AsRef<Path>,
        params: ArrayView1<f32>,
    ) -> Result<(), ModelError> {
        let params = self.params(params)?;
        checkpoint::save(path.as_ref(), &self.graph, &params, &[], &BTreeMap::new())?;
        Ok(())
    }

    /// Reads the parameters of this model from a safetensors file written by
    /// [`Model::save_params`] or by `symc train` (`RUN/checkpoint.safetensors`). Fails when the
    /// file's parameters do not have this model's names and shapes.
    pub fn load_params(&self, path: impl AsRef<Path>) -> Result<Array1<f32>, ModelError> {
        Ok(Array1::from(checkpoint::load(path.as_ref(), &self.graph)?.params))
    }

    fn kind(&self, message: &str) -> ModelError {
        ModelError::Kind { model: self.graph.name.clone(), message: message.into() }
    }

    fn params<'a, T: Copy>(&self, p: ArrayView1<'a, T>) -> Result<Cow<'a, [T]>, ModelError> {
        check_params(&self.graph.name, self.graph.param_scalars(), &p)?;
        Ok(contiguous(p))
    }
}

/// The entries of `a` in row-major order, borrowed when the array already lies that way.
fn contiguous<'a, T: Copy, D: Dimension>(a: ArrayView<'a, T, D>) -> Cow<'a, [T]> {
    match a.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}

fn check_params<T>(model: &str, want: usize, p: &ArrayView1<T>) -> Result<(), ModelError> {
    if p.len() != want {
        return Err(ModelError::Shape {
            model: model.into(),
            what: "the parameter vector".into(),
            message: format!("it holds {} numbers, the model has {want}", p.len()),
        });
    }
    Ok(())
}

/// A classifier compiled to native kernels (`runtime::classifier::JitClassifier`), run on
/// ndarray batches.
pub struct ClassifierNet {
    model: String,
    exec: JitClassifier,
    input_shape: Vec<usize>,
    classes: usize,
    max_batch: usize,
}

/// The mean loss of a labelled batch and its gradient ([`ClassifierNet::loss_and_grad`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LossAndGrad {
    /// Mean negative log-likelihood over the batch.
    pub loss: f64,
    /// Samples whose most likely class is their label.
    pub correct: usize,
    /// d(mean loss)/d(params), in the layout of the parameter vector.
    pub grad: Array1<f32>,
}

impl ClassifierNet {
    /// The shape of one input sample, e.g. `[1, 28, 28]`.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Number of classes (length of a row of [`ClassifierNet::forward`]'s result).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The executor itself: kernel plans, listings, compile time, the slice-based
    /// [`Classifier`] interface the training loop uses.
    pub fn executor(&self) -> &JitClassifier {
        &self.exec
    }

    /// Log-probabilities `[batch, classes]` of a batch `[batch, sample...]`.
    pub fn forward<D: Dimension>(
        &self,
        params: ArrayView1<f32>,
        input: ArrayView<f32, D>,
    ) -> Result<Array2<f32>, ModelError> {
        check_params(&self.model, self.exec.graph().param_scalars(), &params)?;
        let (batch, x) = self.samples(input)?;
        let (n, c) = (self.input_len(), self.classes);
        let params = contiguous(params);
        let mut logp = vec![0.0f32; batch * c];
        for (x, out) in x.chunks(self.max_batch * n).zip(logp.chunks_mut(self.max_batch * c)) {
            self.exec.predict(&params, x, out)?;
        }
        Array2::from_shape_vec((batch, c), logp).map_err(|e| self.shape("the result", e))
    }

    /// Mean negative log-likelihood of a labelled batch (`labels[i]` is the class of sample i)
    /// and its gradient with respect to the parameters: what one training step needs. A batch
    /// larger than the compiled maximum runs in chunks whose gradients are averaged by size.
    pub fn loss_and_grad<D: Dimension>(
        &self,
        params: ArrayView1<f32>,
        input: ArrayView<f32, D>,
        labels: ArrayView1<u8>,
    ) -> Result<LossAndGrad, ModelError> {
        check_params(&self.model, self.exec.graph().param_scalars(), &params)?;
        let (batch, x) = self.samples(input)?;
        if labels.len() != batch {
            return Err(ModelError::Shape {
                model: self.model.clone(),
                what: "the labels".into(),
                message: format!("{} labels for a batch of {batch}", labels.len()),
            });
        }
        if batch == 0 {
            return Err(ModelError::Shape {
                model: self.model.clone(),
                what: "the batch".into(),
                message: "it is empty, and an empty batch has no mean loss".into(),
            });
        }
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= self.classes) {
            return Err(ModelError::Shape {
                model: self.model.clone(),
                what: "the labels".into(),
                message: format!("label {bad}, but the model has {} classes", self.classes),
            });
        }
        let params = contiguous(params);
        let labels = contiguous(labels);
        let n = self.input_len();
        let mut grad = Array1::<f32>::zeros(params.len());
        let mut part = vec![0.0f32; params.len()];
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for (x, l) in x.chunks(self.max_batch * n).zip(labels.chunks(self.max_batch)) {
            let stats = self.exec.train_batch(&params, x, l, &mut part)?;
            loss_sum += stats.loss_sum;
            correct += stats.correct;
            // `part` is the gradient of this chunk's mean; weigh it by the chunk's share.
            let w = l.len() as f32 / batch as f32;
            grad.iter_mut().zip(&part).for_each(|(g, p)| *g += w * p);
        }
        Ok(LossAndGrad { loss: loss_sum / batch as f64, correct, grad })
    }

    fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// The batch size and the samples as one row-major slice, after checking that every
    /// sample has the model's input shape (axes of length 1 may be left out) or is flat.
    fn samples<'a, D: Dimension>(
        &self,
        input: ArrayView<'a, f32, D>,
    ) -> Result<(usize, Cow<'a, [f32]>), ModelError> {
        let shape = input.shape();
        let squeeze = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
        let fits = match shape.split_first() {
            Some((_, sample)) => {
                sample == self.input_shape.as_slice()
                    || squeeze(sample) == squeeze(&self.input_shape)
                    || sample == [self.input_len()]
            }
            None => false,
        };
        if !fits {
            return Err(ModelError::Shape {
                model: self.model.clone(),
                what: format!("an input of shape {shape:?}"),
                message: format!(
                    "expected [batch, {}] (axes of length 1 may be left out) or [batch, {}]",
                    self.input_shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", "),
                    self.input_len()
                ),
            });
        }
        Ok((shape[0], contiguous(input)))
    }

    fn shape(&self, what: &str, e: ndarray::ShapeError) -> ModelError {
        ModelError::Shape { model: self.model.clone(), what: what.into(), message: e.to_string() }
    }
}

/// A network on fermion fields compiled for one gauge field (see [`Model::gauge_net`]), run on
/// complex arrays `[feature, site, 12]` or `[feature, site, spin, colour]`.
pub struct GaugeNet<T: Element> {
    model: String,
    net: Box<dyn FermionNet<T>>,
    volume: usize,
    features_in: usize,
    features_out: usize,
}

impl<T: Element> GaugeNet<T> {
    /// Fermion fields the network takes.
    pub fn features_in(&self) -> usize {
        self.features_in
    }

    /// Fermion fields the network returns.
    pub fn features_out(&self) -> usize {
        self.features_out
    }

    /// Lattice sites of every field.
    pub fn volume(&self) -> usize {
        self.volume
    }

    /// The executor behind the network (the slice-based [`FermionNet`] interface).
    pub fn executor(&self) -> &dyn FermionNet<T> {
        self.net.as_ref()
    }

    /// The network applied to `input`; the result has the input's layout with
    /// [`GaugeNet::features_out`] features. `params` is the flat (re, im) vector; for `f64`
    /// networks convert [`Model::init_params`] with `mapv(f64::from)`.
    pub fn forward<D: Dimension>(
        &self,
        params: ArrayView1<T>,
        input: ArrayView<Complex<T>, D>,
    ) -> Result<Array<Complex<T>, D>, ModelError> {
        check_params(&self.model, self.net.graph().param_scalars(), &params)?;
        let dim = self.fields("the input", &input, self.features_in)?;
        let mut out_dim = dim;
        out_dim[0] = self.features_out;
        let mut out = vec![Complex::new(T::zero(), T::zero()); out_dim.size()];
        self.net.forward(&contiguous(params), &contiguous(input), &mut out)?;
        Array::from_shape_vec(out_dim, out).map_err(|e| ModelError::Shape {
            model: self.model.clone(),
            what: "the result".into(),
            message: e.to_string(),
        })
    }

    /// The gradient of a real loss L with respect to the parameters, given
    /// `grad_output` = dL/dRe(out) + i dL/dIm(out) at `out = forward(params, input)`: in the
    /// layout of the parameter vector, for (re, im) pairs, without factors of 2 (the convention
    /// of `runtime::lattice_reference`, what an optimiser on real parameters needs).
    pub fn backward<D: Dimension>(
        &self,
        params: ArrayView1<T>,
        input: ArrayView<Complex<T>, D>,
        grad_output: ArrayView<Complex<T>, D>,
    ) -> Result<Array1<T>, ModelError> {
        check_params(&self.model, self.net.graph().param_scalars(), &params)?;
        let dim = self.fields("the input", &input, self.features_in)?;
        let out_dim = self.fields("the output gradient", &grad_output, self.features_out)?;
        if out_dim.slice()[1..] != dim.slice()[1..] {
            return Err(ModelError::Shape {
                model: self.model.clone(),
                what: "the output gradient".into(),
                message: format!(
                    "its shape {:?} has another layout than the input's {:?}",
                    out_dim.slice(),
                    dim.slice()
                ),
            });
        }
        // Same shape as the output, so the seed's copy below has matching lengths.
        let gout = contiguous(grad_output);
        let mut grad = vec![T::zero(); params.len()];
        self.net.forward_backward_seeded(
            &contiguous(params),
            &contiguous(input),
            &mut |_, seed| seed.copy_from_slice(&gout),
            &mut grad,
        )?;
        Ok(Array1::from(grad))
    }

    /// Checks that `a` holds `features` fields in one of the two layouts; returns its shape.
    fn fields<D: Dimension>(
        &self,
        what: &str,
        a: &ArrayView<Complex<T>, D>,
        features: usize,
    ) -> Result<D, ModelError> {
        let v = self.volume;
        let ok = match a.shape() {
            [f, s, 12] => (*f, *s) == (features, v),
            [f, s, 4, 3] => (*f, *s) == (features, v),
            _ => false,
        };
        if !ok {
            return Err(ModelError::Shape {
                model: self.model.clone(),
                what: format!("{what} of shape {:?}", a.shape()),
                message: format!("expected [{features}, {v}, 12] or [{features}, {v}, 4, 3]"),
            });
        }
        Ok(a.raw_dim())
    }
}
