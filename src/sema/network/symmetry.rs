//! The `symmetry` declaration, and the rules that keep it honest. The declared symmetry
//! decides what every `linear` becomes (none → dense, translation → convolution, gauge(SU3) →
//! parallel-transport convolution; see `linear.rs`), so it is checked against the input
//! first. A layer that would break the symmetry is refused with the reason, here in one
//! place, rather than compiled into a network that is silently not equivariant.

use super::Checker;
use crate::diagnostics::{Code, Problem};
use crate::ir::{Span, Symmetry, ValueType};
use crate::sema::args::{self, ArgSet};
use crate::syntax::ast::{self, Call, ValueKind};

/// The symmetry as sema uses it: the IR symmetry plus whether weights are site-local.
pub(super) struct Sym {
    pub(super) ir: Symmetry,
    /// `gauge(SU3)` without `translation`: weights may depend on the site.
    pub(super) local: bool,
    /// Where the symmetry was declared, for notes on the layers that break it.
    pub(super) span: Span,
}

impl Sym {
    /// No symmetry; `span` is the declaration (or the network's name when there is none).
    pub(super) fn none(span: Span) -> Sym {
        Sym { ir: Symmetry::None, local: false, span }
    }
}

/// The symmetries a declaration lists, before they are checked against the input.
struct Listed {
    /// `translation`, with its axes if they were given and readable.
    translation: Option<(Option<Vec<usize>>, Span)>,
    gauge: Option<Span>,
}

impl Checker<'_> {
    /// The declared symmetry, checked against the input it acts on.
    pub(super) fn symmetry(
        &mut self,
        items: &[Call],
        span: Span,
        input: Option<&ValueType>,
    ) -> Sym {
        let Listed { translation, gauge } = self.listed_symmetries(items);
        let Some(input) = input else {
            return Sym::none(span);
        };
        match (gauge, translation, input) {
            (Some(g), _, ValueType::Real { .. }) => {
                self.err(
                    Problem::new(
                        Code::BadSymmetry,
                        g,
                        "gauge symmetry needs a fermion input",
                        "gauge symmetry declared here",
                    )
                    .help("gauge transformations act on lattice fermion fields: declare `input v: fermion` and a `lattice`, or use `symmetry translation` for images"),
                );
                Sym::none(span)
            }
            (Some(_), t, ValueType::Fermion { .. }) => {
                if let Some((Some(_), tsp)) = &t {
                    self.err(
                        Problem::new(
                            Code::BadSymmetry,
                            *tsp,
                            "on a lattice, translations act on all four axes",
                            "axes given here",
                        )
                        .help("write `translation` without axes next to `gauge(SU3)`"),
                    );
                }
                Sym { ir: Symmetry::GaugeSu3, local: t.is_none(), span }
            }
            (None, Some((_, tsp)), ValueType::Fermion { .. }) => {
                self.err(
                    Problem::new(
                        Code::BadSymmetry,
                        tsp,
                        "translation symmetry alone on a fermion field is not supported",
                        "here",
                    )
                    .help("lattice networks are either gauge equivariant (`symmetry gauge(SU3), translation`) or unconstrained (`symmetry none`)"),
                );
                Sym::none(span)
            }
            (None, Some((axes, tsp)), ValueType::Real { shape }) => {
                self.image_translation(axes, tsp, shape, span)
            }
            (None, None, _) => Sym::none(span),
        }
    }

    /// Reads each listed symmetry and its arguments; `none` must stand alone.
    fn listed_symmetries(&mut self, items: &[Call]) -> Listed {
        let mut none = None;
        let mut translation: Option<(Option<Vec<usize>>, Span)> = None;
        let mut gauge = None;
        for item in items {
            match item.name.name.as_str() {
                "none" => {
                    self.no_args(item);
                    none = Some(item.span);
                }
                "translation" => {
                    let a = ArgSet::read(item, &["axes"], &["axes"], &[], &mut self.problems);
                    let axes = a.get("axes").and_then(|v| self.axes(v));
                    translation = Some((axes, item.span));
                }
                "gauge" => {
                    let a = ArgSet::read(item, &["group"], &["group"], &[], &mut self.problems);
                    if let Some(g) = a.get("group")
                        && !matches!(args::word(g), Some("SU3" | "su3"))
                    {
                        self.err(
                            Problem::new(
                                Code::UnknownSymmetry,
                                g.span,
                                "only the gauge group SU(3) is supported",
                                format!("found {}", g.kind.describe()),
                            )
                            .help("write `gauge(SU3)`"),
                        );
                    }
                    gauge = Some(item.span);
                }
                other => {
                    let help = args::suggest_help(
                        other,
                        &["none", "translation", "gauge"],
                        "symmetries are",
                    );
                    self.err(
                        Problem::new(
                            Code::UnknownSymmetry,
                            item.name.span,
                            format!("unknown symmetry `{other}`"),
                            "unknown symmetry",
                        )
                        .help(help),
                    );
                }
            }
        }
        if let Some(n) = none
            && items.len() > 1
        {
            self.err(
                Problem::new(
                    Code::BadSymmetry,
                    n,
                    "`none` cannot be combined with other symmetries",
                    "here",
                )
                .help("declare either `symmetry none` or the symmetries the data has"),
            );
        }
        Listed { translation, gauge }
    }

    /// Translations of an image act on every spatial axis (axis 0 holds the channels).
    fn image_translation(
        &mut self,
        axes: Option<Vec<usize>>,
        tsp: Span,
        shape: &[usize],
        span: Span,
    ) -> Sym {
        let spatial: Vec<usize> = (1..shape.len()).collect();
        if spatial.is_empty() {
            self.err(
                Problem::new(
                    Code::BadSymmetry,
                    tsp,
                    format!("the input `real[{}]` has no spatial axes to translate", shape[0]),
                    "translation declared here",
                )
                .help(
                    "an image input is `real[channels, height, width]`; axis 0 is the channel axis",
                ),
            );
            return Sym::none(span);
        }
        let axes = axes.unwrap_or_else(|| spatial.clone());
        if axes != spatial {
            self.err(
                Problem::new(
                    Code::BadSymmetry,
                    tsp,
                    format!(
                        "translations must act on all spatial axes of the input ({}..{})",
                        1,
                        shape.len() - 1
                    ),
                    "axes given here",
                )
                .help(format!(
                    "axis 0 is the channel axis; write `translation(axes = 1..{})`",
                    shape.len() - 1
                )),
            );
        }
        Sym { ir: Symmetry::Translation { axes }, local: false, span }
    }

    /// `axes = 1..2`, `axes = 1` or `axes = [1, 2]`; axis numbers are below 8.
    fn axes(&mut self, v: &ast::Value) -> Option<Vec<usize>> {
        match &v.kind {
            ValueKind::Range(a, b) if a <= b && *b < 8 => {
                Some((*a as usize..=*b as usize).collect())
            }
            ValueKind::Int(i) if (0..8).contains(i) => Some(vec![*i as usize]),
            ValueKind::List(items) => {
                let mut out = Vec::new();
                for it in items {
                    match it.kind {
                        ValueKind::Int(i) if (0..8).contains(&i) => out.push(i as usize),
                        _ => {
                            self.err(args::mistyped(it, "an axis", "an axis number such as 1"));
                            return None;
                        }
                    }
                }
                Some(out)
            }
            _ => {
                self.err(args::mistyped(v, "`axes`", "an axis range such as `1..2`"));
                None
            }
        }
    }

    /// A componentwise nonlinearity on a fermion field under gauge symmetry: it does not
    /// commute with the colour rotation, so the network would not be equivariant.
    pub(super) fn nonlinearity_breaks_gauge(&mut self, call: &Call) {
        let w = &call.name.name;
        self.err(
            Problem::new(
                Code::BreaksGauge,
                call.span,
                format!("`{w}` on a fermion field breaks the declared gauge symmetry"),
                "componentwise nonlinearity",
            )
            .note(self.sym.span, "gauge symmetry declared here")
            .help(format!(
                "a gauge transformation rotates the colour components of ψ(x) by a site-dependent \
SU(3) matrix Ω(x); applying `{w}` to each component separately does not commute with that rotation, so \
the network would no longer be gauge equivariant. Use `norm_gate`, which computes ψ·σ(|ψ|²): |ψ|² is gauge \
invariant, so the gate keeps the symmetry"
            )),
        );
    }

    /// A bias on a fermion field under gauge symmetry: a constant cannot rotate with the field.
    pub(super) fn bias_breaks_gauge(&mut self, b: &ast::Value) {
        self.err(
            Problem::new(
                Code::BreaksGauge,
                b.span,
                "a bias on a fermion field breaks the declared gauge symmetry",
                "bias requested here",
            )
            .note(self.sym.span, "gauge symmetry declared here")
            .help(
                "a gauge transformation maps ψ(x) to Ω(x)ψ(x); a constant added to every site \
would have to rotate with Ω(x), which no fixed bias can do. Gauge-equivariant layers are linear in ψ: \
remove the bias (use `norm_gate`, ψ·σ(|ψ|²), for a nonlinearity)",
            ),
        );
    }
}
