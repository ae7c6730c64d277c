//! Set-up shared by the lattice benchmarks (`ptc`, `anchors`): the PTC networks they time are
//! built directly as IR graphs, so that a benchmark's shape does not depend on a `.sym` file
//! that might change.

use symc::ir::{
    Graph, Hop, Lattice, Layer, LayerKind, Param, ParamId, Path, Span, Symmetry, ValueId, ValueType,
};

/// The identity and the 8 one-hop paths (the "1h" path set of Lehner & Wettig).
pub fn one_hop() -> Vec<Path> {
    let mut v = vec![vec![]];
    for mu in 0..4 {
        v.push(vec![Hop { mu, forward: true }]);
        v.push(vec![Hop { mu, forward: false }]);
    }
    v
}

/// A chain of global-weight one-hop PTC layers on `dims` with the given feature counts
/// (`[1, 1]` is 1h1l, `[1, 2, 2, 2, 1]` the 4-layer smoother).
pub fn ptc_chain(name: &str, dims: [usize; 4], features: &[usize]) -> Graph {
    let lattice = Lattice { dims };
    let mut g = Graph {
        name: name.into(),
        symmetry: Symmetry::GaugeSu3,
        lattice: Some(lattice),
        values: vec![ValueType::Fermion { features: features[0], lattice }],
        input_name: "v".into(),
        layers: vec![],
        params: vec![],
        output: ValueId(0),
        train: None,
        split_of: None,
    };
    for (k, w) in features.windows(2).enumerate() {
        let offset = g.param_scalars();
        g.params.push(Param {
            name: format!("w{k}"),
            shape: vec![w[1], w[0], 9, 4, 4],
            complex: true,
            offset,
        });
        g.values.push(ValueType::Fermion { features: w[1], lattice });
        g.layers.push(Layer {
            kind: LayerKind::Ptc { n_in: w[0], n_out: w[1], paths: one_hop(), local: false },
            inputs: vec![ValueId(k as u32)],
            output: ValueId(k as u32 + 1),
            params: vec![ParamId(k as u32)],
            name: format!("ptc{k}"),
            span: Span::default(),
        });
        g.output = ValueId(k as u32 + 1);
    }
    g
}
