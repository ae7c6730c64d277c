//! IR invariants; a failure here is a compiler bug, not a user error.
//!
//! [`verify`] checks what every consumer of a [`Graph`] relies on:
//! 1. value ids are in range and layers are in topological order (inputs before outputs);
//! 2. each value except the input is produced by exactly one layer, in order;
//! 3. every shape is non-empty and non-zero, and each layer kind agrees with its input and
//!    output types (feature counts, spatial extents, path counts);
//! 4. PTC path 0 is the identity; parameters have the shapes their layer kind prescribes;
//! 5. parameter offsets tile the flat vector in order, without gaps or overlap, and every
//!    parameter belongs to exactly one layer.

use super::{Graph, LayerKind, ValueType};
use std::fmt;

/// A broken invariant: always a bug in whatever produced the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    /// The layer (name) or entity concerned.
    pub at: String,
    pub what: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IR invariant broken at {}: {}", self.at, self.what)
    }
}

impl std::error::Error for VerifyError {}

fn fail<T>(at: impl Into<String>, what: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError { at: at.into(), what: what.into() })
}

/// Proof that a graph passed [`verify`]: the only way to obtain one, and what code generation
/// requires, so no kernel is ever emitted from an unchecked graph. It borrows the graph, so the
/// graph cannot change while the proof is held; a pass that rewrites a graph must verify its
/// result again to get a new proof.
#[derive(Clone, Copy, Debug)]
pub struct Verified<'g>(&'g Graph);

impl<'g> Verified<'g> {
    /// The verified graph.
    pub fn graph(self) -> &'g Graph {
        self.0
    }
}

impl std::ops::Deref for Verified<'_> {
    type Target = Graph;
    fn deref(&self) -> &Graph {
        self.0
    }
}

/// Check every invariant listed in the module doc; on success, the proof codegen needs.
pub fn verify(g: &Graph) -> Result<Verified<'_>, VerifyError> {
    check(g)?;
    Ok(Verified(g))
}

fn check(g: &Graph) -> Result<(), VerifyError> {
    if g.values.is_empty() {
        return fail("graph", "no values (values[0] must be the input)");
    }
    for (i, v) in g.values.iter().enumerate() {
        match v {
            ValueType::Real { shape } if shape.is_empty() || shape.contains(&0) => {
                return fail(format!("v{i}"), format!("bad shape {shape:?}"));
            }
            ValueType::Fermion { features, lattice }
                if *features == 0 || lattice.dims.contains(&0) =>
            {
                return fail(format!("v{i}"), "zero features or lattice extent");
            }
            _ => {}
        }
    }
    if g.output.index() >= g.values.len() {
        return fail("graph", format!("output {} out of range", g.output));
    }
    let mut owner = vec![false; g.params.len()];
    for (li, l) in g.layers.iter().enumerate() {
        let at = format!("l{li} ({})", l.name);
        if l.output.index() != li + 1 {
            return fail(
                at,
                format!("produces {} but layer {li} must produce v{}", l.output, li + 1),
            );
        }
        if l.inputs.is_empty() || l.inputs.iter().any(|v| v.index() > li) {
            return fail(at, "an input is not defined before the layer");
        }
        for p in &l.params {
            match owner.get_mut(p.index()) {
                Some(o) if !*o => *o = true,
                Some(_) => return fail(at, format!("parameter {p} is shared by two layers")),
                None => return fail(at, format!("parameter {p} out of range")),
            }
        }
        let inp = g.value(l.inputs[0]);
        let out = g.value(l.output);
        let pshape =
            |k: usize| l.params.get(k).map(|p| (g.param(*p).shape.clone(), g.param(*p).complex));
        match &l.kind {
            LayerKind::Dense { in_features, out_features, bias, complex } => {
                let div = if *complex { 2 } else { 1 };
                if inp.real_len() != in_features * div || out.real_len() != out_features * div {
                    return fail(at, "dense feature counts disagree with the value types");
                }
                if pshape(0) != Some((vec![*out_features, *in_features], *complex)) {
                    return fail(at, "dense weight shape must be [out, in]");
                }
                let want = if *bias { Some((vec![*out_features], *complex)) } else { None };
                if pshape(1) != want || l.params.len() != 1 + usize::from(*bias) {
                    return fail(at, "dense bias parameter disagrees with `bias`");
                }
            }
            LayerKind::Conv {
                in_channels,
                out_channels,
                window,
                bias,
                in_spatial,
                out_spatial,
                ..
            } => {
                let mut ins = vec![*in_channels];
                ins.extend(in_spatial);
                let mut outs = vec![*out_channels];
                outs.extend(out_spatial);
                if *inp != (ValueType::Real { shape: ins })
                    || *out != (ValueType::Real { shape: outs })
                {
                    return fail(at, "conv shapes disagree with the value types");
                }
                if window.len() != in_spatial.len() || window.contains(&0) {
                    return fail(at, "conv window rank differs from the spatial rank");
                }
                let mut w = vec![*out_channels, *in_channels];
                w.extend(window);
                if pshape(0) != Some((w, false)) {
                    return fail(at, "conv weight shape must be [out, in, window...]");
                }
                let want = if *bias { Some((vec![*out_channels], false)) } else { None };
                if pshape(1) != want || l.params.len() != 1 + usize::from(*bias) {
                    return fail(at, "conv bias parameter disagrees with `bias`");
                }
            }
            LayerKind::Ptc { n_in, n_out, paths, local } => {
                let (
                    ValueType::Fermion { features: fi, lattice },
                    ValueType::Fermion { features: fo, .. },
                ) = (inp, out)
                else {
                    return fail(at, "PTC needs fermion values");
                };
                if fi != n_in || fo != n_out {
                    return fail(at, "PTC feature counts disagree with the value types");
                }
                if paths.first().is_none_or(|p| !p.is_empty()) {
                    return fail(at, "PTC path 0 must be the identity");
                }
                let mut s = vec![*n_out, *n_in, paths.len()];
                if *local {
                    // A split view keeps the whole lattice's weights (`Graph::split_of`).
                    s.push(g.split_of.unwrap_or(*lattice).volume());
                }
                s.extend([4, 4]);
                if pshape(0) != Some((s, true)) || l.params.len() != 1 {
                    return fail(
                        at,
                        "PTC weight shape must be [n_out, n_in, n_paths, (V,) 4, 4] complex",
                    );
                }
            }
            LayerKind::Transport { paths } => match inp {
                ValueType::Fermion { features, .. } if *features == paths.len() && inp == out => {}
                _ => return fail(at, "transport needs one fermion field per path"),
            },
            LayerKind::CoarseLevel(level) => {
                let ValueType::Fermion { features: 1, lattice } = inp else {
                    return fail(at, "a coarse level takes one fermion field");
                };
                let want =
                    ValueType::Fermion { features: level.connect.features(), lattice: *lattice };
                if *out != want || li != 0 {
                    return fail(
                        at,
                        "a coarse level is the first layer and gives the fields its connection says",
                    );
                }
                let tiles = (0..4)
                    .all(|mu| level.blocks[mu] > 0 && lattice.dims[mu] % level.blocks[mu] == 0);
                if !tiles {
                    return fail(at, "coarse level blocks must tile the lattice");
                }
                check_level(g, l, level, *lattice)
                    .map_err(|what| VerifyError { at: at.clone(), what })?;
            }
            LayerKind::Add => {
                if l.inputs.len() != 2 || g.value(l.inputs[1]) != inp || inp != out {
                    return fail(at, "add needs two inputs of the output's type");
                }
            }
            LayerKind::Flatten => {
                if inp.real_len() != out.real_len()
                    || !matches!(out, ValueType::Real { shape } if shape.len() == 1)
                {
                    return fail(at, "flatten must produce a vector of the same length");
                }
            }
            LayerKind::Activation(_) | LayerKind::NormGate | LayerKind::LogSoftmax => {
                if inp != out {
                    return fail(at, "an elementwise layer must keep its value type");
                }
            }
        }
        if !matches!(
            l.kind,
            LayerKind::Dense { .. }
                | LayerKind::Conv { .. }
                | LayerKind::Ptc { .. }
                | LayerKind::CoarseLevel(_)
        ) && !l.params.is_empty()
        {
            return fail(at, "a weightless layer has parameters");
        }
    }
    if g.layers.len() + 1 != g.values.len() {
        return fail("graph", "every value but the input must be produced by one layer");
    }
    if let Some(i) = owner.iter().position(|o| !o) {
        return fail(format!("p{i}"), "parameter not used by any layer");
    }
    let mut offset = 0usize;
    for (i, p) in g.params.iter().enumerate() {
        if p.offset != offset {
            return fail(
                format!("p{i} ({})", p.name),
                format!("offset {} but expected {offset}", p.offset),
            );
        }
        offset = match offset.checked_add(p.scalar_len()) {
            Some(o) => o,
            None => return fail(format!("p{i}"), "offset overflow"),
        };
    }
    Ok(())
}

/// The coarse space, coarse model and parameters of a level agree: a near-null level has a
/// basis its blocks hold, a GMRES coarse model and no weights; a pooled level has the pooling
/// weight its family asks for, then exactly the parameters of its coarse network (a verified
/// gauge network from one fermion field on the coarse lattice to one), in order and shape.
fn check_level(
    g: &Graph,
    l: &super::Layer,
    level: &super::Level,
    lattice: super::Lattice,
) -> Result<(), String> {
    use super::{CoarseModel, CoarseSpace};
    match (&level.space, &level.coarse) {
        (CoarseSpace::Basis { basis, .. }, CoarseModel::Solve { .. }) => {
            if *basis == 0 || *basis > level.block_dof() {
                return Err("the blocks must hold the basis".into());
            }
            if !l.params.is_empty() {
                return Err("a near-null level has no weights".into());
            }
            Ok(())
        }
        (CoarseSpace::Basis { basis, .. }, CoarseModel::Layers(layers)) => {
            if *basis == 0 || *basis > level.block_dof() {
                return Err("the blocks must hold the basis".into());
            }
            let dims = level.coarse_dims(lattice.dims);
            let vc: usize = dims.iter().product();
            if layers.is_empty() || l.params.len() != layers.len() {
                return Err("a near-null level's coarse layers own one weight each".into());
            }
            let key = |d: &[i64; 4]| -> [i64; 4] {
                std::array::from_fn(|mu| d[mu].rem_euclid(dims[mu].max(1) as i64))
            };
            for (layer, &p) in layers.iter().zip(&l.params) {
                let p = g.param(p);
                if p.shape != super::coarse_weight_shape(layer, vc, *basis) || !p.complex {
                    return Err(format!(
                        "coarse layer `{}`: weight shape {:?}",
                        layer.name, p.shape
                    ));
                }
                if layer.offsets.first() != Some(&[0; 4]) {
                    return Err(format!("coarse layer `{}`: the identity comes first", layer.name));
                }
                for (i, d) in layer.offsets.iter().enumerate() {
                    if (0..4)
                        .any(|mu| d[mu].unsigned_abs() as usize >= dims[mu].max(1) && d[mu] != 0)
                    {
                        return Err(format!(
                            "coarse layer `{}`: displacement {d:?} wraps",
                            layer.name
                        ));
                    }
                    if layer.offsets[..i].iter().any(|e| key(e) == key(d)) {
                        return Err(format!(
                            "coarse layer `{}`: displacement {d:?} coincides with an earlier one",
                            layer.name
                        ));
                    }
                }
            }
            Ok(())
        }
        (CoarseSpace::Pool { transfer }, CoarseModel::Network(net)) => {
            if transfer.terms.is_empty() || (!transfer.weighted && transfer.terms.len() != 1) {
                return Err("a pooling transfer has terms (exactly one when static)".into());
            }
            if (0..4).any(|mu| transfer.reference[mu] >= level.blocks[mu]) {
                return Err(format!(
                    "pooling reference point {:?} outside the {:?} block",
                    transfer.reference, level.blocks
                ));
            }
            let plane = |v: &crate::ir::LoopField| match *v {
                crate::ir::LoopField::Plaquette { mu, nu }
                | crate::ir::LoopField::Clover { mu, nu } => mu < 4 && nu < 4 && mu != nu,
            };
            if transfer.terms.iter().filter_map(|t| t.times.as_ref()).any(|v| !plane(v)) {
                return Err("a pooling loop field needs two different directions".into());
            }
            let coarse = super::Lattice { dims: level.coarse_dims(lattice.dims) };
            check(net).map_err(|e| format!("coarse network: {e}"))?;
            let one = ValueType::Fermion { features: 1, lattice: coarse };
            if net.lattice != Some(coarse) || net.values[0] != one || *net.value(net.output) != one
            {
                return Err(
                    "the coarse network maps one fermion field on the coarse lattice to one".into(),
                );
            }
            let mut own = l.params.iter().map(|&p| g.param(p));
            if transfer.weighted {
                let n = transfer.terms.len();
                let want = vec![n, lattice.volume(), 4, 4];
                match own.next() {
                    Some(p) if p.shape == want && p.complex => {}
                    _ => return Err(format!("pooling weight must be {want:?} complex")),
                }
            }
            let rest: Vec<_> = own.collect();
            let same = rest.len() == net.params.len()
                && rest
                    .iter()
                    .zip(&net.params)
                    .all(|(a, b)| a.shape == b.shape && a.complex == b.complex);
            if !same {
                return Err(
                    "the level's parameters after the pooling weight must be the coarse network's"
                        .into(),
                );
            }
            Ok(())
        }
        _ => {
            Err("a near-null level solves on the coarse lattice, a pooled level runs a network"
                .into())
        }
    }
}
