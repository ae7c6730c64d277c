//! The `linear` layer. One line of text, `linear(IN -> OUT, ...)`, becomes a different layer
//! kind depending on the declared symmetry and the value it receives, and this is the place
//! that decides it:
//!
//! | value         | symmetry      | layer kind                                  |
//! | ------------- | ------------- | ------------------------------------------- |
//! | vector        | any           | `Dense`                                     |
//! | image         | `translation` | `Conv` (weights shared across positions)    |
//! | image         | none          | `Dense` between the flattened images        |
//! | fermion field | `gauge(SU3)`  | `Ptc` (parallel-transport convolution)      |
//! | fermion field | none          | complex `Dense` over all sites              |
//!
//! It also lays out the parameters: each weight tensor is appended to the parameter vector
//! after a check that it fits in memory, since its size comes from the program.

use super::reach::Reach;
use super::types::{bytes, bytes_u128, describe, group, zero_size};
use super::{Checker, Lowered};
use crate::diagnostics::{Code, Problem};
use crate::ir::{Lattice, LayerKind, Padding, Param, ParamId, Span, Symmetry, ValueType};
use crate::sema::args::{self, ArgSet};
use crate::syntax::ast::{self, Call, ValueKind};

/// The arguments of one `linear` call, read and checked before the value is looked at, so
/// their problems are reported even when the value is unknown.
struct LinearArgs<'a> {
    /// Where `IN -> OUT` is written; a feature mismatch points here.
    features: Span,
    fin: usize,
    fout: usize,
    window: Option<Vec<(usize, Span)>>,
    window_arg: Option<&'a ast::Value>,
    padding: Padding,
    padding_arg: Option<&'a ast::Value>,
    /// `None` when not given: the default depends on the value (real: on, fermion: off).
    bias: Option<bool>,
    bias_arg: Option<&'a ast::Value>,
    reach: Reach,
}

impl Checker<'_> {
    /// `linear(IN -> OUT, ...)`: the layer kind follows from the symmetry and the value.
    pub(super) fn linear(
        &mut self,
        call: &Call,
        name: &str,
        cur: Option<&ValueType>,
    ) -> Option<Lowered> {
        let args = self.linear_args(call)?;
        let cur = cur?;
        let fin = self.received_features(name, &args, cur);
        match cur {
            ValueType::Real { shape } => {
                if let Some(r) = args.reach.span {
                    self.err(
                        Problem::new(
                            Code::BadArgument,
                            r,
                            "paths apply to lattice fermion fields under gauge symmetry",
                            "not for real tensors",
                        )
                        .help("on images, use `window = N` for the receptive field"),
                    );
                }
                self.linear_real(call, name, shape, fin, &args)
            }
            ValueType::Fermion { features: _, lattice } => {
                self.linear_fermion(call, name, fin, *lattice, &args)
            }
        }
    }

    /// Reads every argument of the call; `None` if the features are missing or zero.
    fn linear_args<'a>(&mut self, call: &'a Call) -> Option<LinearArgs<'a>> {
        let a = ArgSet::read(
            call,
            &["features", "window", "padding", "bias", "hops", "paths"],
            &["features"],
            &["long", "local"],
            &mut self.problems,
        );
        if call.args.is_none() {
            self.err(
                Problem::new(
                    Code::MissingArgument,
                    call.span,
                    "`linear` needs its features",
                    "`IN -> OUT` missing",
                )
                .help("write e.g. `linear(1 -> 10, window = 10)` or `linear(784 -> 10)`"),
            );
            return None;
        }
        let feats = a.require("features", "linear(1 -> 10)", &mut self.problems)?;
        let ValueKind::Features(fin, fout) = feats.kind else {
            self.err(args::mistyped(
                feats,
                "the first argument of `linear`",
                "features `IN -> OUT`",
            ));
            return None;
        };
        let mut bad = false;
        for (f, what) in
            [(fin, "the number of input features"), (fout, "the number of output features")]
        {
            if f == 0 {
                self.err(zero_size(feats.span, what));
                bad = true;
            }
        }
        let (fin, fout) = (usize::try_from(fin).ok()?, usize::try_from(fout).ok()?);
        let window_arg = a.get("window");
        let window = window_arg.and_then(|v| self.window(v));
        let padding_arg = a.get("padding");
        let padding = match padding_arg {
            None => Padding::Valid,
            Some(v) => match args::word(v) {
                Some("valid") => Padding::Valid,
                Some("same") => Padding::Same,
                _ => {
                    self.err(args::mistyped(v, "`padding`", "`valid` or `same`"));
                    Padding::Valid
                }
            },
        };
        let bias_arg = a.get("bias");
        let bias = bias_arg.and_then(|v| args::expect_bool(v, "`bias`", &mut self.problems));
        let reach = self.reach(&a);
        if bad {
            return None;
        }
        Some(LinearArgs {
            features: feats.span,
            fin,
            fout,
            window,
            window_arg,
            padding,
            padding_arg,
            bias,
            bias_arg,
            reach,
        })
    }

    /// The number of input features the value really has. A mismatch with `IN` is reported,
    /// and checking carries on with the received count.
    fn received_features(&mut self, name: &str, args: &LinearArgs, cur: &ValueType) -> usize {
        let (fin, fout) = (args.fin, args.fout);
        let in_count = match cur {
            ValueType::Real { shape } => shape[0],
            ValueType::Fermion { features, .. } => *features,
        };
        if in_count != fin {
            let what = match cur {
                ValueType::Real { shape } if shape.len() == 1 => "features",
                ValueType::Real { .. } => "channels",
                ValueType::Fermion { .. } => "fermion fields",
            };
            self.err(
                Problem::new(
                    Code::ShapeMismatch,
                    args.features,
                    format!(
                        "`{name}` expects {fin} input {what}, but it receives {}",
                        describe(cur)
                    ),
                    format!("{fin} here, but the value has {in_count}"),
                )
                .help(format!("write `{in_count} -> {fout}`, or change the layer before it")),
            );
            // Carry on with the declared output so later layers are still checked; sizes are
            // computed from the value actually received (the graph is discarded anyway).
        }
        in_count
    }

    /// `linear` on a real tensor: a vector gets a dense layer; an image a convolution under
    /// translation symmetry, or else a dense layer between the flattened images.
    fn linear_real(
        &mut self,
        call: &Call,
        name: &str,
        shape: &[usize],
        fin: usize,
        args: &LinearArgs,
    ) -> Option<Lowered> {
        let (fout, padding, bias) = (args.fout, args.padding, args.bias.unwrap_or(true));
        let spatial = &shape[1..];
        if spatial.is_empty() {
            return self.linear_vector(call, name, fin, args);
        }
        let win = self.window_extents(call, spatial, args)?;
        let out_sp = self.out_spatial(call, spatial, &win, args)?;
        let mut out_shape = vec![fout];
        out_shape.extend(&out_sp);
        let out = ValueType::Real { shape: out_shape };
        if !self.check_value_size(&out, call.span) {
            return None;
        }
        if let Symmetry::Translation { .. } = self.sym.ir {
            let mut wshape = vec![fout, fin];
            wshape.extend(&win);
            let params = self.weight_and_bias(name, wshape, bias, false, call.span)?;
            Some((
                LayerKind::Conv {
                    in_channels: fin,
                    out_channels: fout,
                    window: win,
                    padding,
                    bias,
                    in_spatial: spatial.to_vec(),
                    out_spatial: out_sp,
                },
                out,
                params,
            ))
        } else {
            // No symmetry: the same text is a dense map between the flattened images.
            let din = fin * spatial.iter().product::<usize>();
            let dout = out.real_len();
            let params = self.weight_and_bias(name, vec![dout, din], bias, false, call.span)?;
            Some((
                LayerKind::Dense { in_features: din, out_features: dout, bias, complex: false },
                out,
                params,
            ))
        }
    }

    /// `linear` on a vector: a dense layer; a window has nothing to slide over.
    fn linear_vector(
        &mut self,
        call: &Call,
        name: &str,
        fin: usize,
        args: &LinearArgs,
    ) -> Option<Lowered> {
        let (fout, bias) = (args.fout, args.bias.unwrap_or(true));
        if let Some(w) = args.window_arg {
            self.err(
                Problem::new(Code::BadArgument, w.span, "`window` needs spatial axes, but the value is a vector", "here")
                    .help("windows slide over images `real[channels, height, width]`; remove `window`, or do not flatten before this layer"),
            );
            return None;
        }
        let params = self.weight_and_bias(name, vec![fout, fin], bias, false, call.span)?;
        Some((
            LayerKind::Dense { in_features: fin, out_features: fout, bias, complex: false },
            ValueType::Real { shape: vec![fout] },
            params,
        ))
    }

    /// The window's extent along each spatial axis: 1 when not given, one extent for all
    /// axes, or one per axis.
    fn window_extents(
        &mut self,
        call: &Call,
        spatial: &[usize],
        args: &LinearArgs,
    ) -> Option<Vec<usize>> {
        match &args.window {
            None => Some(vec![1; spatial.len()]),
            Some(w) if w.len() == 1 => Some(vec![w[0].0; spatial.len()]),
            Some(w) if w.len() == spatial.len() => Some(w.iter().map(|x| x.0).collect()),
            Some(w) => {
                let sp = args.window_arg.map_or(call.span, |v| v.span);
                self.err(
                    Problem::new(
                        Code::ShapeMismatch,
                        sp,
                        format!("the window has {} extents but the image has {} spatial axes", w.len(), spatial.len()),
                        "here",
                    )
                    .help("give one extent for all axes (`window = 3`) or one per axis (`window = [3, 3]`)"),
                );
                None
            }
        }
    }

    /// The output's spatial extents: unchanged with `padding = same`, shrunk by window − 1
    /// with `padding = valid` (where the window must fit).
    fn out_spatial(
        &mut self,
        call: &Call,
        spatial: &[usize],
        win: &[usize],
        args: &LinearArgs,
    ) -> Option<Vec<usize>> {
        let padding = args.padding;
        let mut out_sp = Vec::new();
        for (i, (&s, &w)) in spatial.iter().zip(win).enumerate() {
            if padding == Padding::Valid && w > s {
                let sp = args.window.as_ref().map_or(call.span, |v| v[i.min(v.len() - 1)].1);
                self.err(
                    Problem::new(
                        Code::WindowTooLarge,
                        sp,
                        format!("a window of {w} does not fit in an image axis of extent {s}"),
                        format!("window {w} > extent {s}"),
                    )
                    .help(format!(
                        "with `padding = valid` each axis shrinks by window − 1; use a window of at most {s}, or `padding = same`"
                    )),
                );
                return None;
            }
            out_sp.push(match padding {
                Padding::Valid => s - w + 1,
                Padding::Same => s,
            });
        }
        Some(out_sp)
    }

    /// `linear` on fermion fields: a parallel-transport convolution under gauge symmetry,
    /// otherwise a complex dense layer over all sites. Image arguments are refused.
    fn linear_fermion(
        &mut self,
        call: &Call,
        name: &str,
        fin: usize,
        lattice: Lattice,
        args: &LinearArgs,
    ) -> Option<Lowered> {
        if let Some(w) = args.window_arg {
            self.err(
                Problem::new(Code::BadArgument, w.span, "`window` is for images", "not for fermion fields")
                    .help("on a lattice, the reach of a layer is set with `hops = k`, `paths = [...]` or `long`"),
            );
        }
        if let Some(p) = args.padding_arg {
            self.err(
                Problem::new(
                    Code::BadArgument,
                    p.span,
                    "`padding` is for images",
                    "not for fermion fields",
                )
                .help("remove `padding`; lattice fields are periodic and need none"),
            );
        }
        if self.sym.ir == Symmetry::GaugeSu3 {
            self.linear_ptc(call, name, fin, lattice, args)
        } else {
            self.linear_dense_fermion(call, name, fin, lattice, args)
        }
    }

    /// The gauge-equivariant layer: one 4×4 spin matrix per (out, in, path), and per site
    /// too when the weights are local. It has no bias, which would break the symmetry.
    fn linear_ptc(
        &mut self,
        call: &Call,
        name: &str,
        fin: usize,
        lattice: Lattice,
        args: &LinearArgs,
    ) -> Option<Lowered> {
        let fout = args.fout;
        if args.bias == Some(true)
            && let Some(b) = args.bias_arg
        {
            self.bias_breaks_gauge(b);
            return None;
        }
        let paths = self.path_set(&args.reach, &lattice)?;
        let local = self.sym.local || args.reach.local.is_some();
        let n_paths = paths.len();
        let mut shape = vec![fout, fin, n_paths];
        if local {
            shape.push(lattice.volume());
        }
        shape.extend([4, 4]);
        let p = self.param(format!("{name}.weight"), shape, true, call.span)?;
        let out = ValueType::Fermion { features: fout, lattice };
        Some((LayerKind::Ptc { n_in: fin, n_out: fout, paths, local }, out, vec![p]))
    }

    /// Without symmetry, a complex dense map between whole fields (12 components per site);
    /// path and `local` arguments only mean something under gauge symmetry.
    fn linear_dense_fermion(
        &mut self,
        call: &Call,
        name: &str,
        fin: usize,
        lattice: Lattice,
        args: &LinearArgs,
    ) -> Option<Lowered> {
        let (fout, reach) = (args.fout, &args.reach);
        if let Some(r) = reach.span {
            self.err(
                Problem::new(
                    Code::BadArgument,
                    r,
                    if Some(r) == reach.local {
                        "`local` weights need the gauge symmetry"
                    } else {
                        "paths need the gauge symmetry"
                    },
                    "only defined under `gauge(SU3)`",
                )
                .help(
                    "without symmetry, `linear` on a fermion field is already a dense \
map over all sites (every weight is site dependent and reaches every site); remove this argument, \
or declare `symmetry gauge(SU3), translation`",
                ),
            );
        }
        let v12 = lattice.volume() * 12;
        let (Some(din), Some(dout)) = (v12.checked_mul(fin), v12.checked_mul(fout)) else {
            self.err(
                Problem::new(
                    Code::SizeOverflow,
                    call.span,
                    "the dense layer's size overflows",
                    "here",
                )
                .help("use a smaller lattice or declare `symmetry gauge(SU3), translation`"),
            );
            return None;
        };
        let bias = args.bias.unwrap_or(false);
        let params = self.weight_and_bias(name, vec![dout, din], bias, true, call.span)?;
        let out = ValueType::Fermion { features: fout, lattice };
        Some((
            LayerKind::Dense { in_features: din, out_features: dout, bias, complex: true },
            out,
            params,
        ))
    }

    /// `window = 3` or `window = [3, 3]`: one to three positive extents, each with its span.
    fn window(&mut self, v: &ast::Value) -> Option<Vec<(usize, Span)>> {
        let items: Vec<&ast::Value> = match &v.kind {
            ValueKind::List(items) => items.iter().collect(),
            _ => vec![v],
        };
        if items.is_empty() || items.len() > 3 {
            self.err(args::mistyped(
                v,
                "`window`",
                "a size such as `10` or a list such as `[3, 3]`",
            ));
            return None;
        }
        let mut out = Vec::new();
        for it in items {
            out.push((args::expect_count(it, "the window", &mut self.problems)?, it.span));
        }
        Some(out)
    }

    /// `NAME.weight` of `shape` and, if asked, `NAME.bias` with one entry per output row
    /// (the first axis of the weight).
    fn weight_and_bias(
        &mut self,
        name: &str,
        shape: Vec<usize>,
        bias: bool,
        complex: bool,
        span: Span,
    ) -> Option<Vec<ParamId>> {
        let rows = shape[0];
        let mut params = vec![self.param(format!("{name}.weight"), shape, complex, span)?];
        if bias {
            params.push(self.param(format!("{name}.bias"), vec![rows], complex, span)?);
        }
        Some(params)
    }

    /// Allocate a parameter tensor after the previous ones, refusing tensors that cannot fit.
    pub(super) fn param(
        &mut self,
        name: String,
        shape: Vec<usize>,
        complex: bool,
        span: Span,
    ) -> Option<ParamId> {
        let count = shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
        let scalars = count.and_then(|c| c.checked_mul(if complex { 2 } else { 1 }));
        let Some(scalars) = scalars else {
            self.err(
                Problem::new(
                    Code::SizeOverflow,
                    span,
                    "the number of weights of this layer overflows 64-bit arithmetic",
                    "this layer",
                )
                .help("reduce the sizes"),
            );
            return None;
        };
        let need = (scalars as u128) * 4;
        if need > self.opts.memory_bytes as u128 {
            self.err(
                Problem::new(
                    Code::TooMuchMemory,
                    span,
                    format!(
                        "this layer's weights need {} ({} {}weights in f32), more than this machine's {}",
                        bytes_u128(need),
                        group(count.unwrap_or(0) as u128),
                        if complex { "complex " } else { "" },
                        bytes(self.opts.memory_bytes)
                    ),
                    "too many weights",
                )
                .help("declare the symmetry of the data (e.g. `symmetry translation` or `gauge(SU3), translation`) so weights are shared, or shrink the layer"),
            );
            return None;
        }
        let Some(end) = self.offset.checked_add(scalars) else {
            self.err(
                Problem::new(Code::SizeOverflow, span, "the parameter vector overflows", "here")
                    .help("the network has too many weights in total; shrink its layers"),
            );
            return None;
        };
        let id = ParamId(self.params.len() as u32);
        self.params.push(Param { name, shape, complex, offset: self.offset });
        self.offset = end;
        Some(id)
    }
}
