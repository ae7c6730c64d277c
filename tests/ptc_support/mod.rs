//! Shared helpers of the PTC tests: hand-built gauge graphs, random fields and weights.
#![allow(dead_code)]

use num_complex::Complex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use symc::ir::{
    Graph, Hop, Lattice, Layer, LayerId, LayerKind, Param, ParamId, Path, Span, Symmetry, ValueId,
    ValueType,
};

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn hop(mu: u8, forward: bool) -> Hop {
    Hop { mu, forward }
}

/// Identity + the 8 one-hop paths.
pub fn one_hop_paths() -> Vec<Path> {
    let mut v = vec![vec![]];
    for mu in 0..4 {
        v.push(vec![hop(mu, true)]);
        v.push(vec![hop(mu, false)]);
    }
    v
}

/// Identity, one hops, a 3-step straight path, a plaquette-shaped loop, an L-shaped path, and
/// long straight paths in t and x (lengths 2 and 4).
pub fn mixed_paths() -> Vec<Path> {
    let mut v = one_hop_paths();
    v.push(vec![hop(1, true); 3]);
    v.push(vec![hop(0, true), hop(3, true), hop(0, false), hop(3, false)]);
    v.push(vec![hop(2, false), hop(3, true), hop(3, true)]);
    v.push(vec![hop(3, false); 4]);
    v.push(vec![hop(3, true); 2]);
    v.push(vec![hop(0, false); 2]);
    v
}

/// Builder of sequential gauge graphs (each layer reads the previous value, or named values).
pub struct GraphBuilder {
    pub g: Graph,
}

impl GraphBuilder {
    pub fn new(dims: [usize; 4], in_features: usize) -> Self {
        let lattice = Lattice { dims };
        GraphBuilder {
            g: Graph {
                name: "test".into(),
                symmetry: Symmetry::GaugeSu3,
                lattice: Some(lattice),
                values: vec![ValueType::Fermion { features: in_features, lattice }],
                input_name: "psi".into(),
                layers: vec![],
                params: vec![],
                output: ValueId(0),
                train: None,
                split_of: None,
            },
        }
    }

    fn lattice(&self) -> Lattice {
        self.g.lattice.unwrap()
    }

    pub fn last(&self) -> ValueId {
        ValueId(self.g.values.len() as u32 - 1)
    }

    fn push(
        &mut self,
        kind: LayerKind,
        inputs: Vec<ValueId>,
        out_features: usize,
        params: Vec<ParamId>,
    ) -> ValueId {
        let lattice = self.lattice();
        self.g.values.push(ValueType::Fermion { features: out_features, lattice });
        let out = self.last();
        let name = format!("layer{}", self.g.layers.len());
        self.g.layers.push(Layer {
            kind,
            inputs,
            output: out,
            params,
            name,
            span: Span::default(),
        });
        let _ = LayerId(0);
        self.g.output = out;
        out
    }

    pub fn ptc(&mut self, from: ValueId, n_out: usize, paths: Vec<Path>, local: bool) -> ValueId {
        let n_in = match self.g.value(from) {
            ValueType::Fermion { features, .. } => *features,
            _ => unreachable!(),
        };
        let vol = self.lattice().volume();
        let shape = if local {
            vec![n_out, n_in, paths.len(), vol, 4, 4]
        } else {
            vec![n_out, n_in, paths.len(), 4, 4]
        };
        let offset = self.g.param_scalars();
        self.g.params.push(Param {
            name: format!("w{}", self.g.params.len()),
            shape,
            complex: true,
            offset,
        });
        let pid = ParamId(self.g.params.len() as u32 - 1);
        self.push(LayerKind::Ptc { n_in, n_out, paths, local }, vec![from], n_out, vec![pid])
    }

    pub fn transport(&mut self, from: ValueId, paths: Vec<Path>) -> ValueId {
        let n = paths.len();
        self.push(LayerKind::Transport { paths }, vec![from], n, vec![])
    }

    pub fn add(&mut self, a: ValueId, b: ValueId) -> ValueId {
        let n = match self.g.value(a) {
            ValueType::Fermion { features, .. } => *features,
            _ => unreachable!(),
        };
        self.push(LayerKind::Add, vec![a, b], n, vec![])
    }

    pub fn norm_gate(&mut self, from: ValueId) -> ValueId {
        let n = match self.g.value(from) {
            ValueType::Fermion { features, .. } => *features,
            _ => unreachable!(),
        };
        self.push(LayerKind::NormGate, vec![from], n, vec![])
    }
}

pub fn random_params<R: Rng>(g: &Graph, rng: &mut R, scale: f64) -> Vec<f64> {
    (0..g.param_scalars()).map(|_| scale * rng.sample::<f64, _>(StandardNormal)).collect()
}

pub fn random_field<R: Rng>(n: usize, rng: &mut R) -> Vec<Complex<f64>> {
    (0..n).map(|_| Complex::new(rng.sample(StandardNormal), rng.sample(StandardNormal))).collect()
}

pub fn to_f32(v: &[Complex<f64>]) -> Vec<Complex<f32>> {
    v.iter().map(|z| Complex::new(z.re as f32, z.im as f32)).collect()
}

/// ||a - b|| / ||b||
pub fn rel_err<T: Into<f64> + Copy>(a: &[Complex<T>], b: &[Complex<T>]) -> f64 {
    let mut num = 0.0;
    let mut den = 0.0;
    for (x, y) in a.iter().zip(b) {
        let (xr, xi, yr, yi) = (x.re.into(), x.im.into(), y.re.into(), y.im.into());
        num += (xr - yr).powi(2) + (xi - yi).powi(2);
        den += yr * yr + yi * yi;
    }
    (num / den).sqrt()
}

pub fn rel_err_real<T: Into<f64> + Copy>(a: &[T], b: &[T]) -> f64 {
    let mut num = 0.0;
    let mut den = 0.0;
    for (x, y) in a.iter().zip(b) {
        let (x, y): (f64, f64) = ((*x).into(), (*y).into());
        num += (x - y).powi(2);
        den += y * y;
    }
    (num / den).sqrt()
}
