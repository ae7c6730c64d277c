//! The IR verifier catches broken graphs (negative controls: each mutation of a good graph
//! must be rejected), and the cost model matches hand-derived counts.

use symc::ir::{self, LayerKind, cost};
use symc::sema::{Options, compile_with};

fn compile(text: &str) -> ir::Graph {
    compile_with("t.sym", text, &Options { memory_bytes: 16 << 30 })
        .unwrap_or_else(|d| panic!("{}", symc::diagnostics::render_plain(&d)))
}

fn conv() -> ir::Graph {
    compile(include_str!("../models/digits_conv.sym"))
}

fn ptc() -> ir::Graph {
    compile(include_str!("../models/ptc_smoother.sym"))
}

#[test]
fn verifier_accepts_models_and_rejects_each_broken_invariant() {
    ir::verify::verify(&conv()).expect("good graph");
    ir::verify::verify(&ptc()).expect("good graph");

    let mut g = conv();
    g.params[1].offset += 1; // gap in the flat vector
    assert!(ir::verify::verify(&g).unwrap_err().what.contains("offset"));

    let mut g = conv();
    g.layers.swap(0, 1); // not topological
    assert!(ir::verify::verify(&g).is_err());

    let mut g = conv();
    g.params[0].shape = vec![10, 1, 10, 9];
    assert!(ir::verify::verify(&g).is_err());

    let mut g = conv();
    g.values[1] = ir::ValueType::Real { shape: vec![10, 19, 18] };
    assert!(ir::verify::verify(&g).is_err());

    let mut g = conv();
    g.layers[2].params = vec![ir::ParamId(0), ir::ParamId(1)]; // shared parameters
    assert!(ir::verify::verify(&g).is_err());

    let mut g = ptc();
    if let LayerKind::Ptc { paths, .. } = &mut g.layers[0].kind {
        paths.swap(0, 1); // path 0 must be the identity
    }
    assert!(ir::verify::verify(&g).unwrap_err().what.contains("identity"));

    let mut g = ptc();
    g.output = ir::ValueId(99);
    assert!(ir::verify::verify(&g).is_err());
}

#[test]
fn cost_of_conv_dense_and_ptc_layers_by_hand() {
    let g = conv();
    let c = cost::costs(&g);
    // Layer 1: 10 outputs x 19x19 sites x (1 channel x 10x10 window) multiply-adds, plus biases.
    assert_eq!(c[0].flops, 2 * 10 * 361 * 100 + 3610);
    assert_eq!(c[0].params, 1010);
    assert_eq!(c[0].dense_equivalent_params, 784 * 3610 + 3610);
    // bytes: 784 inputs + 1010 params + 3610 outputs, f32
    assert_eq!(c[0].bytes, 4 * (784 + 1010 + 3610));
    assert_eq!(c[1].flops, 3610); // relu: one per element

    let g = ptc();
    let c = cost::costs(&g);
    let v = 8 * 8 * 8 * 16u64;
    // 1 -> 2 with 9 paths: transport 8 hops x 4 spins x 66 per input field, then 2*1*9 complex
    // 4x4 spin matrices on 3 colours (16*3 complex multiply-adds of 8 flops each).
    assert_eq!(c[0].flops, v * (8 * 4 * 66 + 2 * 9 * 16 * 3 * 8));
    assert_eq!(c[0].params, 288);
    assert_eq!(c[0].dense_equivalent_params, (12 * v) * (12 * v * 2));

    let g = compile(include_str!("../models/dense_precond.sym"));
    let c = cost::costs(&g);
    assert_eq!(c[0].params, 3072 * 3072);
    assert_eq!(c[0].flops, 8 * 3072 * 3072); // complex multiply-add = 8 real flops
}
