//! Lowering of a gauge network (PTC, local PTC, linear, parallel transport, residual add, norm
//! gate) to stencil kernels: the [`SiteLayout`] its paths need, and per layer the forward,
//! input-backward and weight-gradient kernels (`ptc.rs`) with their plans. The result is a
//! [`LatticeProgram`]: kernels and the facts the runtime needs to feed them
//! (`runtime::lattice_net` fills the path tables from a gauge field and runs the program).

use super::jit::{CompiledKernels, Jit, JitError, KernelId};
use super::lattice_layout::SiteLayout;
use super::plan::{KernelPlan, Pass, Strategy};
use super::ptc::{
    StencilDesc, Term, define_add, define_loss_weight_grad, define_stencil, define_weight_grad,
    loss_grad_plan, stencil_plan,
};
use super::simd::Precision;
use crate::ir::verify::Verified;
use crate::ir::{Graph, LayerKind, Path, displacement, ptc_weight_index};

/// The kernels of one stencil layer (PTC family or parallel transport).
pub struct StencilKernels {
    pub fwd: KernelId,
    /// Input gradient: the same stencil over inverse paths with W^dagger.
    pub bwd: KernelId,
    /// Weight gradient (weighted layers only).
    pub wgrad: Option<KernelId>,
    /// The training step's fused forward + loss seed + weight gradient
    /// (`ptc::define_loss_weight_grad`): only for a layer with global weights whose output is
    /// the network's and read by no other layer.
    pub loss_wgrad: Option<KernelId>,
    /// The forward kernel's specialisation (the weight-gradient kernel shares it).
    pub fwd_desc: StencilDesc,
    pub paths: Vec<Path>,
    pub n_in: usize,
    pub n_out: usize,
    pub local: bool,
}

/// How one layer runs.
pub enum LayerKernels {
    Stencil(Box<StencilKernels>),
    /// Elementwise sum over all slots of the two operands.
    Add(KernelId),
    /// Evaluated by the runtime in plain Rust: it needs `exp`, which cranelift lacks.
    NormGate,
}

/// A gauge network lowered for one lattice and precision.
pub struct LatticeProgram {
    pub layout: SiteLayout,
    pub kernels: CompiledKernels,
    /// One entry per IR layer, in order.
    pub layers: Vec<LayerKernels>,
    pub plans: Vec<KernelPlan>,
}

fn stencil_descs(
    name: &str,
    n_in: usize,
    n_out: usize,
    paths: &[Path],
    weighted: bool,
    local: bool,
    layout: &SiteLayout,
    precision: Precision,
) -> (StencilDesc, StencilDesc) {
    let np = paths.len();
    let identity: Vec<bool> = paths.iter().map(|p| p.is_empty()).collect();
    let base = |name: String, n_in, n_out, groups, terms, n_weights| StencilDesc {
        name,
        n_in,
        n_out,
        identity: identity.clone(),
        groups,
        terms,
        n_weights,
        local,
        outer_volume: layout.outer_volume,
        ext_slots: layout.ext_slots,
        lanes: layout.lanes,
        vector: precision.vector(),
    };
    if weighted {
        // Forward: groups (j, p), terms (i, j, p) with weight (i*n_in + j)*P + p.
        let groups: Vec<(usize, usize)> =
            (0..n_in).flat_map(|j| (0..np).map(move |p| (j, p))).collect();
        let terms = (0..n_out)
            .flat_map(|i| {
                (0..n_in).flat_map(move |j| {
                    (0..np).map(move |p| Term {
                        out: i,
                        group: j * np + p,
                        weight: Some(ptc_weight_index(n_in, np, i, j, p)),
                    })
                })
            })
            .collect();
        let fwd = base(format!("{name}_fwd"), n_in, n_out, groups, terms, n_out * n_in * np);
        // Backward: groups (i, p) over the output gradient, terms (j, i, p) with weight
        // (j*n_out + i)*P + p holding W_ijp^dagger.
        let groups: Vec<(usize, usize)> =
            (0..n_out).flat_map(|i| (0..np).map(move |p| (i, p))).collect();
        let terms = (0..n_in)
            .flat_map(|j| {
                (0..n_out).flat_map(move |i| {
                    (0..np).map(move |p| Term {
                        out: j,
                        group: i * np + p,
                        weight: Some(ptc_weight_index(n_out, np, j, i, p)),
                    })
                })
            })
            .collect();
        let bwd = base(format!("{name}_bwd"), n_out, n_in, groups, terms, n_out * n_in * np);
        (fwd, bwd)
    } else {
        let groups: Vec<(usize, usize)> = (0..np).map(|k| (k, k)).collect();
        let terms: Vec<Term> = (0..np).map(|k| Term { out: k, group: k, weight: None }).collect();
        let fwd = base(format!("{name}_fwd"), np, np, groups.clone(), terms.clone(), 0);
        let bwd = base(format!("{name}_bwd"), np, np, groups, terms, 0);
        (fwd, bwd)
    }
}

/// Lower every layer of a verified gauge network. Fails on non-gauge layers and on lattices
/// without an extent divisible by the SIMD lanes of `precision` (4 for f32, 2 for f64).
pub fn lower(
    graph: &Verified<'_>,
    precision: Precision,
    keep_listings: bool,
) -> Result<LatticeProgram, JitError> {
    let layout = layout(graph, precision)?;
    lower_on(graph, layout, precision, keep_listings)
}

/// Every displacement a stencil layer of `graph` reads (each path's and its inverse's).
pub fn displacements(graph: &Graph) -> Vec<[i64; 4]> {
    let mut disps = Vec::new();
    for l in &graph.layers {
        if let LayerKind::Ptc { paths, .. } | LayerKind::Transport { paths } = &l.kind {
            for p in paths {
                let d = displacement(p);
                disps.push(d);
                disps.push(d.map(|x| -x));
            }
        }
    }
    disps
}

/// The site layout [`lower`] uses for `graph`: its lattice in the lanes of `precision`, with
/// ghost slabs for [`displacements`].
pub fn layout(graph: &Graph, precision: Precision) -> Result<SiteLayout, JitError> {
    let unsupported = |message: String| JitError::Unsupported(message);
    let lattice = graph
        .lattice
        .ok_or_else(|| unsupported(format!("model `{}` declares no lattice", graph.name)))?;
    SiteLayout::new(lattice.dims, precision, &displacements(graph))
        .map_err(|e| unsupported(e.to_string()))
}

/// [`lower`] on a given layout: [`layout`]'s, possibly with slots added after its ghost slabs
/// ([`SiteLayout::with_remote_slots`], the halo of a sub-lattice under domain decomposition),
/// which every kernel then treats as part of a feature's buffer.
pub fn lower_on(
    graph: &Verified<'_>,
    layout: SiteLayout,
    precision: Precision,
    keep_listings: bool,
) -> Result<LatticeProgram, JitError> {
    let unsupported = |message: String| JitError::Unsupported(message);
    let mut jit = Jit::new()?;
    jit.keep_listings = keep_listings;
    let mut layers = Vec::new();
    let mut plans = Vec::new();
    let pname = precision.name();
    for l in &graph.layers {
        let exec = match &l.kind {
            LayerKind::Ptc { n_in, n_out, paths, local } => {
                let (f, b) = stencil_descs(
                    &format!("{}_{pname}", l.name),
                    *n_in,
                    *n_out,
                    paths,
                    true,
                    *local,
                    &layout,
                    precision,
                );
                let fwd = define_stencil(&mut jit, &f)?;
                let bwd = define_stencil(&mut jit, &b)?;
                let wgrad = define_weight_grad(&mut jit, &f)?;
                let last = l.output == graph.output
                    && !graph.layers.iter().any(|m| m.inputs.contains(&l.output));
                let loss_wgrad = if last && !*local {
                    Some(define_loss_weight_grad(&mut jit, &f)?)
                } else {
                    None
                };
                let what = if *local {
                    "local PTC"
                } else if paths.len() == 1 {
                    "linear (zero-hop PTC)"
                } else {
                    "PTC"
                };
                plans.push(stencil_plan(&l.name, &f, Pass::Forward, f.name.clone(), what));
                plans.push(stencil_plan(
                    &l.name,
                    &b,
                    Pass::BackwardInput,
                    b.name.clone(),
                    &format!("{what}: inverse paths, W^dagger"),
                ));
                plans.push(stencil_plan(
                    &l.name,
                    &f,
                    Pass::BackwardParams,
                    format!("{}_wgrad", f.name),
                    &format!("{what}: colour-traced outer products"),
                ));
                if loss_wgrad.is_some() {
                    plans.push(loss_grad_plan(
                        &l.name,
                        &f,
                        &format!("{what}: the output layer of a training step in one sweep"),
                    ));
                }
                LayerKernels::Stencil(Box::new(StencilKernels {
                    fwd,
                    bwd,
                    wgrad: Some(wgrad),
                    loss_wgrad,
                    fwd_desc: f,
                    paths: paths.clone(),
                    n_in: *n_in,
                    n_out: *n_out,
                    local: *local,
                }))
            }
            LayerKind::Transport { paths } => {
                let n = paths.len();
                let (f, b) = stencil_descs(
                    &format!("{}_{pname}", l.name),
                    n,
                    n,
                    paths,
                    false,
                    false,
                    &layout,
                    precision,
                );
                let fwd = define_stencil(&mut jit, &f)?;
                let bwd = define_stencil(&mut jit, &b)?;
                plans.push(stencil_plan(
                    &l.name,
                    &f,
                    Pass::Forward,
                    f.name.clone(),
                    "parallel transport",
                ));
                plans.push(stencil_plan(
                    &l.name,
                    &b,
                    Pass::BackwardInput,
                    b.name.clone(),
                    "parallel transport along inverse paths",
                ));
                LayerKernels::Stencil(Box::new(StencilKernels {
                    fwd,
                    bwd,
                    wgrad: None,
                    loss_wgrad: None,
                    fwd_desc: f,
                    paths: paths.clone(),
                    n_in: n,
                    n_out: n,
                    local: false,
                }))
            }
            LayerKind::Add => {
                let n = graph.features(l.output);
                let name = format!("{}_{pname}_add", l.name);
                let k = define_add(
                    &mut jit,
                    &name,
                    n * layout.ext_slots,
                    layout.lanes,
                    precision.vector(),
                )?;
                let len = (n * layout.field_len()) as f64;
                plans.push(KernelPlan {
                    layer: l.name.clone(),
                    pass: Pass::Forward,
                    strategy: Strategy::Jit,
                    reason:
                        "residual connection (the backward pass passes the gradient to both inputs)"
                            .into(),
                    loops: vec![format!(
                        "for slot in 0..{} (rayon): 24 vector adds",
                        n * layout.ext_slots
                    )],
                    layout: format!("AoSoA-{} over sites incl. ghost slabs", layout.lanes),
                    fused: vec![],
                    flops: (n * layout.volume() * 24) as f64,
                    bytes: 3.0 * len * precision.bytes() as f64,
                    kernels: vec![name],
                    compile_time: Default::default(),
                });
                LayerKernels::Add(k)
            }
            LayerKind::NormGate => LayerKernels::NormGate,
            other => {
                return Err(unsupported(format!(
                    "layer `{}` ({other:?}) is not a gauge layer",
                    l.name
                )));
            }
        };
        layers.push(exec);
    }
    let kernels = jit.finish()?;
    for p in plans.iter_mut() {
        if let Some(r) = kernels.records.iter().find(|r| p.kernels.contains(&r.name)) {
            p.compile_time = r.compile_time;
        }
    }
    Ok(LatticeProgram { layout, kernels, layers, plans })
}
