//! The checked network: the single data structure between the front end and everything after it.
//!
//! `sema` produces a [`Graph`]; code generation, the reference evaluator, `symc inspect` and the
//! training runtime consume it. The IR knows nothing of pest, miette or cranelift: it is plain
//! data with typed ids, so that the reference evaluator (the oracle) and the JIT read the same
//! description of a network.
//!
//! **Invariants** (checked by [`verify`]): layers are in topological order; every layer's input
//! values exist before it; every shape is fully known and non-zero; parameter offsets tile the
//! flat parameter vector without gaps or overlap.

pub mod cost;
pub mod levels;
pub mod pool;
pub mod print;
pub mod retarget;
pub mod verify;

pub use pool::{
    LoopField, PoolRoute, PoolTerm, PoolTransfer, Stepping, pool_coarse_link_path,
    pool_weight_index,
};

use std::fmt;

/// A byte range into the `.sym` source, kept so that late passes can still point at the text.
/// It is a plain pair of offsets: the IR does not depend on the parser or the renderer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

macro_rules! id_type {
    ($name:ident, $prefix:literal) => {
        #[doc = concat!("Typed index; prints as `", $prefix, "N` in the IR text dump.")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}
id_type!(ValueId, "v");
id_type!(LayerId, "l");
id_type!(ParamId, "p");

/// The declared symmetry of a network; it decides what a `linear` map becomes.
#[derive(Clone, Debug, PartialEq)]
pub enum Symmetry {
    /// No symmetry: `linear` is a dense layer.
    None,
    /// Translations along the given axes of an image value (axis 0 is the channel axis, so
    /// spatial axes are numbered from 1): `linear` is a convolution over those axes.
    Translation { axes: Vec<usize> },
    /// SU(3) lattice gauge symmetry together with lattice translations: `linear` is a
    /// parallel-transport convolution (PTC).
    GaugeSu3,
}

/// The 4D lattice a gauge network lives on. Extents in the order x, y, z, t (x fastest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lattice {
    pub dims: [usize; 4],
}

impl Lattice {
    pub fn volume(&self) -> usize {
        self.dims.iter().product()
    }
}

/// The type of a value flowing between layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// A real tensor per sample. For images the shape is `[channels, h, w, ...]`; after
    /// `flatten` it is `[n]`.
    Real { shape: Vec<usize> },
    /// `features` lattice fermion fields: per site 4 spin x 3 colour complex numbers.
    Fermion { features: usize, lattice: Lattice },
}

impl ValueType {
    /// Number of scalar (real) components per sample; complex numbers count as two.
    pub fn real_len(&self) -> usize {
        match self {
            ValueType::Real { shape } => shape.iter().product(),
            ValueType::Fermion { features, lattice } => features * lattice.volume() * 24,
        }
    }
}

/// Elementwise activations on real values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
    Identity,
}

/// Zero padding of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: each spatial extent shrinks by `window - 1`.
    Valid,
    /// Pad so that the output has the input's extent (odd windows centre; even windows put the
    /// extra row/column after, as PyTorch's `padding="same"` does).
    Same,
}

impl Padding {
    /// Zero rows before the first element along an axis with window `window` (PyTorch "same":
    /// an even window puts the extra row after). Emitters and the oracle both read the padding
    /// from here, so they cannot disagree about it.
    pub fn lo(self, window: usize) -> usize {
        match self {
            Padding::Valid => 0,
            Padding::Same => (window - 1) / 2,
        }
    }
}

/// One step of a lattice path: direction `mu` in 0..4 (x, y, z, t) and a sign.
///
/// gpt convention (models.md §1.2): a `+mu` step reads the field at `x + mu` through
/// `U_mu(x)`; a `-mu` step reads it at `x - mu` through `U_mu(x - mu)^dagger`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hop {
    pub mu: u8,
    pub forward: bool,
}

/// A path as a sequence of hops, applied left to right; the empty path is the identity.
pub type Path = Vec<Hop>;

/// The inverse path: steps reversed, signs flipped, so that T_{p^-1} = T_p^dagger.
pub fn inverse_path(path: &Path) -> Path {
    path.iter().rev().map(|h| Hop { mu: h.mu, forward: !h.forward }).collect()
}

/// Net displacement of a path (sum of its hops), one integer per direction.
pub fn displacement(path: &Path) -> [i64; 4] {
    let mut d = [0i64; 4];
    for h in path {
        d[h.mu as usize] += if h.forward { 1 } else { -1 };
    }
    d
}

/// Index of the spin matrix W_{i,j,p} among the `n_out * n_in * n_paths` matrices of a PTC
/// layer's weight tensor `[n_out, n_in, n_paths, (V,) 4, 4]` (output feature i, input feature j,
/// path p). Local weights repeat each matrix per site right after this index (`index * V + x`).
/// The one statement of the parameter layout that sema, emitters and runtime share; the oracle
/// (`runtime::lattice_reference`) reads the same row-major layout from the declared shape.
pub fn ptc_weight_index(n_in: usize, n_paths: usize, i: usize, j: usize, p: usize) -> usize {
    (i * n_in + j) * n_paths + p
}

/// What a layer computes. Closed: every pass matches exhaustively.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerKind {
    /// y = W x (+ b). `complex` is set for a dense map on fermion fields (no symmetry), whose
    /// `in_features`/`out_features` count complex components (12 per site per feature).
    Dense { in_features: usize, out_features: usize, bias: bool, complex: bool },
    /// A stride-1 convolution over the spatial axes of a `[channels, spatial...]` value.
    Conv {
        in_channels: usize,
        out_channels: usize,
        window: Vec<usize>,
        padding: Padding,
        bias: bool,
        in_spatial: Vec<usize>,
        out_spatial: Vec<usize>,
    },
    /// Elementwise activation on a real value.
    Activation(Activation),
    /// Gauge-covariant gate psi * sigmoid(|psi(x)|^2) per site and feature: the activation
    /// that keeps gauge equivariance (norms are gauge invariant).
    NormGate,
    /// Reshape a real tensor to a vector (no data movement).
    Flatten,
    /// log-softmax over a real vector; the classifier's output (trained with NLL).
    LogSoftmax,
    /// Parallel-transport convolution (models.md §1.3/§1.4): out_i = sum_j sum_p W_ijp T_p in_j,
    /// W a complex 4x4 spin matrix acting as W (x) 1_colour; path 0 (identity) is always present
    /// and is the first entry of `paths`. `local` makes the weights site dependent.
    Ptc { n_in: usize, n_out: usize, paths: Vec<Path>, local: bool },
    /// Weightless parallel transport (models.md §1.5): output feature k = T_{paths[k]} input k.
    Transport { paths: Vec<Path> },
    /// Elementwise sum of two values of the same type (residual connection).
    Add,
    /// A coarse level of a multigrid network (models.md §1.6, §1.7, §2.3): the input fermion
    /// field b (one feature) is taken to the coarse lattice (restricted onto near-null vectors
    /// of D, or pooled along gauge transports), the coarse model acts there, and the result
    /// c is brought back (prolongated or unpooled). How the fine layers after it (the smoother
    /// S) see it is the level's [`Connect`]. A near-null level is weightless (its basis depends
    /// on the gauge field *and* the Dirac operator); a pooled level owns its pooling weights and
    /// the coarse network's. Either way it runs on the multigrid executor, not inside a
    /// lattice net.
    CoarseLevel(Level),
}

/// A multigrid level: the coarse space and the model that runs on it.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    /// The level's name in the source (`level coarse(...)`).
    pub name: String,
    /// Block extents (x, y, z, t); each divides the lattice extent.
    pub blocks: [usize; 4],
    /// How fine fields reach the coarse lattice and back.
    pub space: CoarseSpace,
    pub coarse: CoarseModel,
    pub connect: Connect,
    /// Smoothing steps of [`Connect::Correct`]: x_0 = c, x_{k+1} = x_k + S(b − D x_k), and
    /// M(b) = x_N. One step is the plain cycle c + S(b − D c); each further step costs one D
    /// and one pass of the fine layers and reuses the same trained S (what the classical cycle
    /// does with its several smoothing iterations). Always 1 for [`Connect::Concat`].
    pub smoothing: usize,
}

/// The two coarse spaces of Lehner & Wettig: near-null vectors of D (models.md §1.6) or
/// gauge-equivariant pooling (§1.7, arXiv 2304.10438).
#[derive(Clone, Debug, PartialEq)]
pub enum CoarseSpace {
    /// P† restricts onto `basis` block-orthonormalised near-null vectors per block, made by
    /// GMRES(`setup_restart`) on D u = 0 from random starts (seed `seed`), stopped after
    /// `setup_iterations` or at relative residual `setup_tol`. Weightless; the coarse lattice
    /// carries `basis` complex numbers per site and no gauge field.
    Basis { basis: usize, setup_iterations: usize, setup_restart: usize, setup_tol: f64, seed: u64 },
    /// Pool χ(X) = Σ_{x∈X} G(x) ψ(x), unpool ψ(x) = G(x)† χ(X(x)), with
    /// G(x) = Σ_i w_i(x) Ĝ_i(x): Ĝ_i the `i`-th term of the [`PoolTransfer`] (a transport from
    /// the block's reference point to x, maybe times a loop field), w_i(x) local 4×4 spin
    /// matrices (the level's first parameter, `[n_terms, V, 4, 4]` complex) unless the transfer
    /// is static. The coarse lattice carries one fermion field (12 per site) and the coarse
    /// gauge field of [`pool_coarse_link_path`], so PTC layers run there.
    Pool { transfer: PoolTransfer },
}

/// How a coarse level hands its correction c to the fine layers S.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connect {
    /// M(b) = S([b, c]): the level's output is two fields (Lehner & Wettig's full model).
    Concat,
    /// M(b) = c + S(b − D c): the fine layers smooth the residual the coarse correction leaves
    /// (a multiplicative two-level cycle with a trained post-smoother); the level's output is
    /// one field, b − D c, and the network adds c to the fine layers' output.
    Correct,
}

impl Connect {
    /// Fields the level gives to the fine layers.
    pub fn features(self) -> usize {
        match self {
            Connect::Concat => 2,
            Connect::Correct => 1,
        }
    }
    /// The word in the source.
    pub fn word(self) -> &'static str {
        match self {
            Connect::Concat => "concat",
            Connect::Correct => "correct",
        }
    }
}

/// What acts on the coarse lattice.
#[derive(Clone, Debug, PartialEq)]
pub enum CoarseModel {
    /// The Galerkin coarse operator P† D P, solved approximately by GMRES(restart) to relative
    /// residual `tol` or `iterations` iterations (a [`CoarseSpace::Basis`] level).
    Solve { tol: f64, restart: usize, iterations: usize },
    /// A gauge network of PTC / local PTC / linear layers on the coarse lattice and its coarse
    /// gauge field (a [`CoarseSpace::Pool`] level), one fermion field in and out. Its
    /// parameters are its own (ids and offsets from 0); in the whole network they follow the
    /// pooling weight, in the same order, as the level layer's parameters.
    Network(Box<Graph>),
    /// Non-gauge coarse layers on a near-null level (Lehner & Wettig's coarse model lPTC_NG,
    /// models.md §2.3), applied in order to the n_basis-component coarse field; layer k owns
    /// the level's k-th parameter (see [`coarse_weight_shape`]).
    Layers(Vec<CoarseLayer>),
}

/// One non-gauge coarse layer, one coarse field in and one out:
/// out(X) = Σ_p W_p(X) in(X + Δ_p), W_p complex n_basis × n_basis matrices (the same at every
/// site unless `local`). The coarse lattice of a near-null level has no gauge field, so a
/// "path" is only its displacement Δ_p.
#[derive(Clone, Debug, PartialEq)]
pub struct CoarseLayer {
    /// The name in the source (`linear1` unless named): the parameter is `NAME.weight`.
    pub name: String,
    /// Displacements Δ_p; the first is zero (the identity). No two coincide modulo the
    /// coarse extents (on an extent-2 direction +μ̂ and −μ̂ are one neighbour), and each
    /// component is smaller in magnitude than its extent.
    pub offsets: Vec<[i64; 4]>,
    pub local: bool,
    pub span: Span,
}

/// The weight shape of a coarse layer, complex: `[n_paths, V_c, n_b, n_b]` when local,
/// `[n_paths, n_b, n_b]` otherwise (models.md §2.3: 6·32·144 = 27 648 on 2×2×2×4, n_b = 12).
pub fn coarse_weight_shape(
    layer: &CoarseLayer,
    coarse_volume: usize,
    n_basis: usize,
) -> Vec<usize> {
    if layer.local {
        vec![layer.offsets.len(), coarse_volume, n_basis, n_basis]
    } else {
        vec![layer.offsets.len(), n_basis, n_basis]
    }
}

/// Index of W_p(X)[i][j] (complex entries) in a coarse layer's weight of
/// [`coarse_weight_shape`]; `x` is ignored for global weights. The one statement of the layout
/// that sema, the emitter's packing, the runtime and the oracle share.
pub fn coarse_weight_index(
    local: bool,
    coarse_volume: usize,
    n_basis: usize,
    p: usize,
    x: usize,
    i: usize,
    j: usize,
) -> usize {
    let m = if local { p * coarse_volume + x } else { p };
    (m * n_basis + i) * n_basis + j
}

/// Coarse displacements of `hops = k` on coarse extents `dims`: the identity, then every
/// displacement reached by k or fewer steps, fewest first, steps ordered +x, +y, +z, +t, −x,
/// −y, −z, −t (the PTC order), each kept once modulo the extents: on an extent-2 direction ±μ̂
/// is one neighbour, on an extent-1 direction the site itself (models.md §2.3: 6 paths for
/// `hops = 1` on 2×2×2×4). Stops once it holds more than `cap` displacements (the caller
/// refuses such a set), so its work is bounded whatever `hops` says.
pub fn coarse_hop_offsets(dims: [usize; 4], hops: usize, cap: usize) -> Vec<[i64; 4]> {
    let key = |d: &[i64; 4]| -> [i64; 4] {
        std::array::from_fn(|mu| d[mu].rem_euclid(dims[mu].max(1) as i64))
    };
    let mut out = vec![[0i64; 4]];
    let mut seen = vec![key(&[0; 4])];
    let mut frontier = vec![[0i64; 4]];
    for _ in 0..hops {
        let mut next = Vec::new();
        for d in &frontier {
            for step in 0..8 {
                let mut e = *d;
                e[step % 4] += if step < 4 { 1 } else { -1 };
                let k = key(&e);
                if !seen.contains(&k) {
                    seen.push(k);
                    out.push(e);
                    next.push(e);
                    if out.len() > cap {
                        return out;
                    }
                }
            }
        }
        frontier = next;
    }
    out
}

impl Level {
    /// Coarse lattice extents.
    pub fn coarse_dims(&self, fine: [usize; 4]) -> [usize; 4] {
        std::array::from_fn(|mu| fine[mu] / self.blocks[mu].max(1))
    }
    /// Complex degrees of freedom of one block (12 per site).
    pub fn block_dof(&self) -> usize {
        12 * self.blocks.iter().product::<usize>()
    }
    /// Complex numbers per coarse site: the basis size, or 12 (one fermion) for pooling.
    pub fn coarse_site_dof(&self) -> usize {
        match self.space {
            CoarseSpace::Basis { basis, .. } => basis,
            CoarseSpace::Pool { .. } => 12,
        }
    }
    /// The coarse network of a pooled level.
    pub fn coarse_network(&self) -> Option<&Graph> {
        match &self.coarse {
            CoarseModel::Network(g) => Some(g),
            CoarseModel::Solve { .. } | CoarseModel::Layers(_) => None,
        }
    }
    /// The non-gauge coarse layers of a near-null level.
    pub fn coarse_layers(&self) -> Option<&[CoarseLayer]> {
        match &self.coarse {
            CoarseModel::Layers(l) => Some(l),
            _ => None,
        }
    }
}

/// A trainable parameter tensor, stored contiguously in the flat parameter vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    /// Logical shape, e.g. `[out, in]` for a dense weight, `[out, in, kh, kw]` for a
    /// convolution, `[n_out, n_in, n_paths, 4, 4]` (complex) for a PTC layer.
    pub shape: Vec<usize>,
    pub complex: bool,
    /// Offset into the flat parameter vector, in scalars (a complex number is two scalars).
    pub offset: usize,
}

impl Param {
    /// Number of scalar slots (complex entries count twice).
    pub fn scalar_len(&self) -> usize {
        self.shape.iter().product::<usize>() * if self.complex { 2 } else { 1 }
    }
    /// Number of parameters as a user counts them (a complex weight counts once).
    pub fn count(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub kind: LayerKind,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
    pub params: Vec<ParamId>,
    /// Name given in the source (or generated, e.g. `linear2`), used in tables and diagnostics.
    pub name: String,
    pub span: Span,
}

/// The whole checked network.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub name: String,
    pub symmetry: Symmetry,
    pub lattice: Option<Lattice>,
    /// `values[0]` is the network input.
    pub values: Vec<ValueType>,
    pub input_name: String,
    pub layers: Vec<Layer>,
    pub params: Vec<Param>,
    pub output: ValueId,
    pub train: Option<TrainSpec>,
    /// `Some(whole)` for one process's view of a network split over processes
    /// (`retarget::split_view`): `lattice` is its sub-lattice, and site-dependent (`local`) PTC
    /// weights keep the shape of the `whole` lattice, so every process holds the same parameter
    /// vector as one process would (each reads and writes its own sites' weights).
    pub split_of: Option<Lattice>,
}

impl Graph {
    pub fn value(&self, id: ValueId) -> &ValueType {
        &self.values[id.index()]
    }
    pub fn param(&self, id: ParamId) -> &Param {
        &self.params[id.index()]
    }
    /// Total scalar slots of the flat parameter vector.
    /// Feature count of a fermion value (0 for a real tensor).
    pub fn features(&self, id: ValueId) -> usize {
        match self.value(id) {
            ValueType::Fermion { features, .. } => *features,
            ValueType::Real { .. } => 0,
        }
    }
    pub fn param_scalars(&self) -> usize {
        self.params.iter().map(Param::scalar_len).sum()
    }
    /// Total parameter count as users count it (complex weights count once).
    pub fn param_count(&self) -> usize {
        self.params.iter().map(Param::count).sum()
    }

    /// True when the network is a fixed linear map of its input for fixed weights: only
    /// bias-free dense/conv maps, PTC, transport, sums and reshapes. A solver may then treat it
    /// as an ordinary right preconditioner (M applied to a combination of vectors equals the
    /// combination of the M v), which FGMRES does not need to store. Activations, the norm gate
    /// and a near-null level (an approximate inner solve stopped at a tolerance) are not linear.
    pub fn is_linear(&self) -> bool {
        self.layers.iter().all(|l| match &l.kind {
            LayerKind::Dense { bias, .. } | LayerKind::Conv { bias, .. } => !bias,
            LayerKind::Ptc { .. } | LayerKind::Transport { .. } | LayerKind::Add => true,
            LayerKind::Flatten => true,
            // Pooling, a coarse network of linear layers and unpooling are linear; an
            // approximate inner solve is not.
            LayerKind::CoarseLevel(level) => match &level.coarse {
                CoarseModel::Network(net) => net.is_linear(),
                CoarseModel::Layers(_) => true,
                CoarseModel::Solve { .. } => false,
            },
            LayerKind::Activation(_) | LayerKind::NormGate | LayerKind::LogSoftmax => false,
        })
    }
}

/// A `train` block, checked and with defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSpec {
    pub data: Option<DataSource>,
    pub gauge: Option<GaugeSource>,
    pub operator: Option<OperatorSpec>,
    pub loss: LossSpec,
    pub optimizer: OptimizerSpec,
    pub batch: usize,
    pub length: TrainLength,
    pub schedule: Schedule,
    /// Fraction of the training set held out for validation (classifiers).
    pub validation: f64,
    pub seed: u64,
    pub evaluate: Option<EvalSpec>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    /// A folder with the four MNIST IDX files (raw or gzip), relative to the `.sym` file.
    Mnist { dir: String },
}

#[derive(Clone, Debug, PartialEq)]
pub enum GaugeSource {
    /// Quenched Wilson-action heatbath configuration, made on first use and cached.
    Generate { beta: f64, seed: u64, sweeps: usize },
    /// A configuration file in any supported format (path relative to the `.sym` file).
    Load { path: String },
    /// The unit gauge field (free theory).
    Unit,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OperatorSpec {
    pub mass: f64,
    pub csw: f64,
    /// Boundary phase per direction as an angle in units of pi (0 = periodic, 1 = antiperiodic).
    pub boundary: [f64; 4],
}

#[derive(Clone, Debug, PartialEq)]
pub enum LossSpec {
    /// Negative log-likelihood of the labels under the log-softmax output.
    Nll,
    /// || M(D v) - v ||^2 / || D v ||^2 over random v (models.md §2.3).
    Preconditioner,
    /// || M D v~ - v~ ||^2 with v~ from `iterations` GMRES steps on D v = 0 (models.md §3.2).
    Filtered { iterations: usize },
    /// Lehner & Wettig's two-term loss of the full multigrid model (models.md §2.3):
    /// || M(D v1) - v1 ||^2 / || D v1 ||^2 + weight · || M(v2) - D^-1 v2 ||^2 / || v2 ||^2, with
    /// D^-1 v2 from a multigrid-preconditioned solve to relative residual `tol`. The second
    /// term weights the low modes of D, which random v1 hardly contain.
    LowModes { weight: f64, tol: f64 },
    /// The coarse layers of a near-null level trained alone on the Galerkin operator D_c
    /// (models.md §2.3 "Coarse model"): || M_c(D_c v) − v ||² / || D_c v ||² over random
    /// coarse v; the fine layers keep their initial weights.
    Coarse,
    /// Mean squared error against a target (generic regression).
    Mse,
}

impl LossSpec {
    /// The loss as the `.sym` language writes it (printed by `symc check`, recorded in a run's
    /// summary).
    pub fn describe(&self) -> String {
        match self {
            LossSpec::Nll => "nll".to_string(),
            LossSpec::Preconditioner => "preconditioner".to_string(),
            LossSpec::Filtered { iterations } => format!("filtered(iterations = {iterations})"),
            LossSpec::LowModes { weight, tol } => {
                format!("preconditioner(low_modes = {weight}, tol = {tol:e})")
            }
            LossSpec::Coarse => "coarse".to_string(),
            LossSpec::Mse => "mse".to_string(),
        }
    }

    /// Whether this loss trains a preconditioner of the Dirac operator.
    pub fn is_preconditioner(&self) -> bool {
        matches!(
            self,
            LossSpec::Preconditioner
                | LossSpec::Filtered { .. }
                | LossSpec::LowModes { .. }
                | LossSpec::Coarse
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum OptimizerSpec {
    Sgd { lr: f64, momentum: f64 },
    Adam { lr: f64, beta1: f64, beta2: f64, eps: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum TrainLength {
    Epochs(usize),
    Steps(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Cosine decay from lr to lr * `floor` over the run.
    Cosine {
        floor: f64,
    },
    /// Multiply lr by `gamma` every `every` epochs (or steps).
    Step {
        every: usize,
        gamma: f64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum EvalSpec {
    /// Classifier: accuracy on the test set.
    Accuracy,
    /// Preconditioner: FGMRES with and without the network.
    Fgmres { tol: f64, restart: usize, rhs: usize, max_iterations: usize },
}
