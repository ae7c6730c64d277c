//! Hand-built `ir::Graph`s of classifier networks for the kernel tests (the front end is not
//! needed to exercise code generation), plus seeded random data.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use symc::ir::{
    Activation, Graph, Layer, LayerId, LayerKind, Padding, Param, ParamId, Span, Symmetry, ValueId,
    ValueType,
};

/// Builds a chain of layers, tracking shapes and parameter offsets like `sema` does.
pub struct Net {
    g: Graph,
    cur: ValueId,
}

impl Net {
    pub fn new(name: &str, input: &[usize]) -> Net {
        let g = Graph {
            name: name.into(),
            symmetry: Symmetry::None,
            lattice: None,
            values: vec![ValueType::Real { shape: input.to_vec() }],
            input_name: "x".into(),
            layers: vec![],
            params: vec![],
            output: ValueId(0),
            train: None,
            split_of: None,
        };
        Net { g, cur: ValueId(0) }
    }
    fn shape(&self) -> Vec<usize> {
        match self.g.value(self.cur) {
            ValueType::Real { shape } => shape.clone(),
            _ => unreachable!("real-valued test nets only"),
        }
    }
    fn param(&mut self, name: String, shape: Vec<usize>) -> ParamId {
        let offset = self.g.param_scalars();
        self.g.params.push(Param { name, shape, complex: false, offset });
        ParamId(self.g.params.len() as u32 - 1)
    }
    fn push(mut self, kind: LayerKind, out: Vec<usize>, params: Vec<ParamId>, name: String) -> Net {
        self.g.values.push(ValueType::Real { shape: out });
        let output = ValueId(self.g.values.len() as u32 - 1);
        self.g.layers.push(Layer {
            kind,
            inputs: vec![self.cur],
            output,
            params,
            name,
            span: Span::default(),
        });
        self.cur = output;
        self.g.output = output;
        let _ = LayerId(0);
        self
    }
    pub fn dense(mut self, out: usize, bias: bool) -> Net {
        let n = self.g.layers.len();
        let inp: usize = self.shape().iter().product();
        let mut ps = vec![self.param(format!("linear{n}.weight"), vec![out, inp])];
        if bias {
            ps.push(self.param(format!("linear{n}.bias"), vec![out]));
        }
        let kind = LayerKind::Dense { in_features: inp, out_features: out, bias, complex: false };
        self.push(kind, vec![out], ps, format!("linear{n}"))
    }
    pub fn conv(mut self, out: usize, window: &[usize], padding: Padding, bias: bool) -> Net {
        let n = self.g.layers.len();
        let sh = self.shape();
        let (cin, spatial) = (sh[0], sh[1..].to_vec());
        let out_spatial: Vec<usize> = match padding {
            Padding::Valid => spatial.iter().zip(window).map(|(s, w)| s - w + 1).collect(),
            Padding::Same => spatial.clone(),
        };
        let mut wshape = vec![out, cin];
        wshape.extend(window);
        let mut ps = vec![self.param(format!("conv{n}.weight"), wshape)];
        if bias {
            ps.push(self.param(format!("conv{n}.bias"), vec![out]));
        }
        let kind = LayerKind::Conv {
            in_channels: cin,
            out_channels: out,
            window: window.to_vec(),
            padding,
            bias,
            in_spatial: spatial,
            out_spatial: out_spatial.clone(),
        };
        let mut oshape = vec![out];
        oshape.extend(out_spatial);
        self.g.symmetry = Symmetry::Translation { axes: (1..=window.len()).collect() };
        self.push(kind, oshape, ps, format!("conv{n}"))
    }
    pub fn act(self, a: Activation) -> Net {
        let n = self.g.layers.len();
        let sh = self.shape();
        self.push(LayerKind::Activation(a), sh, vec![], format!("act{n}"))
    }
    pub fn flatten(self) -> Net {
        let n = self.g.layers.len();
        let len = self.shape().iter().product();
        self.push(LayerKind::Flatten, vec![len], vec![], format!("flatten{n}"))
    }
    pub fn log_softmax(self) -> Graph {
        let n = self.g.layers.len();
        let sh = self.shape();
        let g = self.push(LayerKind::LogSoftmax, sh, vec![], format!("log_softmax{n}")).g;
        g
    }
}

/// The poster's dense digit network: 784 -> 3610 -> 1000 -> 10.
pub fn digits_dense(act: Activation) -> Graph {
    Net::new("digits_dense", &[1, 28, 28])
        .flatten()
        .dense(3610, true)
        .act(act)
        .dense(1000, true)
        .act(act)
        .dense(10, true)
        .log_softmax()
}

/// The poster's convolutional digit network: three valid 10x10 convolutions.
pub fn digits_conv(act: Activation) -> Graph {
    Net::new("digits_conv", &[1, 28, 28])
        .conv(10, &[10, 10], Padding::Valid, true)
        .act(act)
        .conv(10, &[10, 10], Padding::Valid, true)
        .act(act)
        .conv(10, &[10, 10], Padding::Valid, true)
        .flatten()
        .log_softmax()
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn uniform(r: &mut ChaCha8Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| r.random_range(-scale..scale)).collect()
}

pub fn labels(r: &mut ChaCha8Rng, n: usize, classes: usize) -> Vec<u8> {
    (0..n).map(|_| r.random_range(0..classes) as u8).collect()
}

pub fn input_len(g: &Graph) -> usize {
    g.values[0].real_len()
}

pub fn classes(g: &Graph) -> usize {
    g.value(g.output).real_len()
}
