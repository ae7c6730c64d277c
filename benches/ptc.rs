//! Kernel benchmarks of the gauge-equivariant layers on 8^3 x 16: forward and forward+backward
//! (input and weight gradients) of the 1h1l PTC (1->1) and of the 4-layer smoother
//! (1->2, 2->2, 2->2, 2->1), in f32 and f64; the Wilson-clover JIT operator against the
//! plain reference. Throughput is reported in GFLOP/s via criterion's element count = flops.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use num_complex::Complex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use symc::codegen::lattice_layout::SimdReal;
use symc::ir::{
    Graph, Hop, Lattice, Layer, LayerKind, Param, ParamId, Path, Span, Symmetry, ValueId, ValueType,
};
use symc::lattice::gauge::GaugeField;
use symc::runtime::lattice_net::{LatticeNet, LatticeNetOptions};

const DIMS: [usize; 4] = [8, 8, 8, 16];

fn one_hop() -> Vec<Path> {
    let mut v = vec![vec![]];
    for mu in 0..4 {
        v.push(vec![Hop { mu, forward: true }]);
        v.push(vec![Hop { mu, forward: false }]);
    }
    v
}

/// A chain of global-weight 1h PTC layers with the given feature counts.
fn chain(features: &[usize]) -> Graph {
    let lattice = Lattice { dims: DIMS };
    let mut g = Graph {
        name: "bench".into(),
        symmetry: Symmetry::GaugeSu3,
        lattice: Some(lattice),
        values: vec![ValueType::Fermion {
            features: features[0],
            lattice,
        }],
        input_name: "psi".into(),
        layers: vec![],
        params: vec![],
        output: ValueId(0),
        train: None,
    };
    for (k, w) in features.windows(2).enumerate() {
        let offset = g.param_scalars();
        g.params.push(Param {
            name: format!("w{k}"),
            shape: vec![w[1], w[0], 9, 4, 4],
            complex: true,
            offset,
        });
        g.values.push(ValueType::Fermion {
            features: w[1],
            lattice,
        });
        g.layers.push(Layer {
            kind: LayerKind::Ptc {
                n_in: w[0],
                n_out: w[1],
                paths: one_hop(),
                local: false,
            },
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

fn bench_model<T: SimdReal>(c: &mut Criterion, name: &str, features: &[usize]) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let gauge = GaugeField::random(DIMS, &mut rng);
    let g = chain(features);
    let net = LatticeNet::<T>::compile(&g, &gauge, &LatticeNetOptions::default()).expect("compile");
    let vol = gauge.geom.volume();
    let n_in = features[0];
    let n_out = *features.last().unwrap();
    let normal = |r: &mut ChaCha8Rng| T::from_f64(StandardNormal.sample(r));
    let params: Vec<T> = (0..g.param_scalars())
        .map(|_| normal(&mut rng) * T::from_f64(0.1))
        .collect();
    let input: Vec<Complex<T>> = (0..n_in * vol * 12)
        .map(|_| Complex::new(normal(&mut rng), normal(&mut rng)))
        .collect();
    let target = input.clone();
    let fwd_flops: f64 = net
        .plans()
        .iter()
        .filter(|p| p.pass == symc::codegen::plan::Pass::Forward)
        .map(|p| p.flops)
        .sum();
    let all_flops: f64 = net.plans().iter().map(|p| p.flops).sum::<f64>() + fwd_flops;
    let mut out = vec![Complex::new(T::zero(), T::zero()); n_out * vol * 12];
    let mut grp = c.benchmark_group(format!("ptc/{name}/{}", T::NAME));
    grp.sample_size(20);
    grp.throughput(Throughput::Elements(fwd_flops as u64));
    grp.bench_function("forward", |b| {
        b.iter(|| net.forward(&params, &input, &mut out).unwrap())
    });
    let mut gp = vec![T::zero(); params.len()];
    grp.throughput(Throughput::Elements(all_flops as u64));
    grp.bench_function("forward+backward", |b| {
        b.iter(|| {
            net.forward_backward(
                &params,
                &input,
                None,
                |o, g| {
                    for ((g, o), t) in g.iter_mut().zip(o).zip(target.iter().cycle()) {
                        *g = (o - t) * T::from_f64(2.0);
                    }
                },
                None,
                &mut gp,
            )
            .unwrap()
        })
    });
    grp.finish();
}

fn ptc_benches(c: &mut Criterion) {
    bench_model::<f32>(c, "1h1l", &[1, 1]);
    bench_model::<f64>(c, "1h1l", &[1, 1]);
    bench_model::<f32>(c, "smoother", &[1, 2, 2, 2, 1]);
    bench_model::<f64>(c, "smoother", &[1, 2, 2, 2, 1]);
}

criterion_group!(benches, ptc_benches);
criterion_main!(benches);
