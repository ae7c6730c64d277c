//! Value types: the input declaration (its type and the lattice it lives on), the memory
//! check every value passes before anything is sized from it, and the way diagnostics spell
//! types and sizes. Sizes written in a program are untrusted: each is checked against the
//! machine's memory here, before any later step multiplies or allocates with it.

use super::Checker;
use super::names::Decls;
use crate::diagnostics::{Code, Problem};
use crate::ir::{Lattice, Span, ValueType};
use crate::syntax::ast;

impl Checker<'_> {
    /// The input declaration and the lattice it may live on: the network's first value.
    /// `None` when there is no input, which leaves nothing to check the layers against.
    pub(super) fn input<'a>(
        &mut self,
        net: &'a ast::Network,
        decls: &Decls<'a>,
    ) -> Option<(&'a ast::Ident, Option<ValueType>)> {
        let (input, lattice) = (decls.input, decls.lattice);
        let lattice_span = lattice.map(|l| l.1);
        if let Some((dims, span)) = lattice {
            self.lattice = self.lattice(dims, span);
        }
        let Some((in_name, in_ty, in_span)) = input else {
            self.err(
                Problem::new(
                    Code::MissingInput,
                    net.name.span,
                    format!("network `{}` has no input", net.name.name),
                    "declared here",
                )
                .help("declare it first in the block, e.g. `input image: real[1, 28, 28]` or `input v: fermion`"),
            );
            return None;
        };
        self.define_name(in_name);
        let in_type = self.input_type(in_ty, lattice_span);
        if let Some(ty) = &in_type
            && let ValueType::Real { .. } = ty
            && let Some(ls) = lattice_span
        {
            self.err(
                Problem::new(
                    Code::MisplacedDecl,
                    ls,
                    "a lattice is only used by fermion inputs",
                    "this lattice is not used",
                )
                .note(in_span, "the input is a real tensor")
                .help("remove the lattice, or declare the input as `fermion`"),
            );
        }
        Some((in_name, in_type))
    }

    pub(super) fn lattice(&mut self, dims: &[(u64, Span)], span: Span) -> Option<Lattice> {
        if dims.len() != 4 {
            self.err(
                Problem::new(
                    Code::BadArgument,
                    span,
                    format!("a lattice has 4 extents (x, y, z, t); this one has {}", dims.len()),
                    "here",
                )
                .help("write e.g. `lattice 8 x 8 x 8 x 16`"),
            );
            return None;
        }
        let mut out = [0usize; 4];
        let mut ok = true;
        for (i, (d, sp)) in dims.iter().enumerate() {
            if *d == 0 {
                self.err(
                    Problem::new(
                        Code::ZeroExtent,
                        *sp,
                        format!("the lattice extent in {} is zero", ["x", "y", "z", "t"][i]),
                        "zero extent",
                    )
                    .help("every extent must be at least 1 (real lattices use even extents such as 4, 8, 16)"),
                );
                ok = false;
            } else if *d > 1 << 20 {
                self.err(
                    Problem::new(
                        Code::SizeOverflow,
                        *sp,
                        format!("the lattice extent {d} is too large"),
                        "too large",
                    )
                    .help("extents above 2^20 sites per direction are not supported"),
                );
                ok = false;
            } else {
                out[i] = *d as usize;
            }
        }
        if !ok {
            return None;
        }
        let volume = out.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
        match volume {
            Some(v)
                if v.checked_mul(24 * 4).is_some_and(|b| (b as u64) <= self.opts.memory_bytes) =>
            {
                Some(Lattice { dims: out })
            }
            _ => {
                self.err(
                    Problem::new(
                        Code::TooMuchMemory,
                        span,
                        "one fermion field on this lattice needs more memory than the machine has",
                        "this lattice",
                    )
                    .help(format!(
                        "a fermion field takes 96 bytes per site; this machine has {}",
                        bytes(self.opts.memory_bytes)
                    )),
                );
                None
            }
        }
    }

    /// The declared input's type; `lattice` is where a lattice was declared, if anywhere.
    pub(super) fn input_type(
        &mut self,
        ty: &ast::TypeExpr,
        lattice: Option<Span>,
    ) -> Option<ValueType> {
        match ty.name.name.as_str() {
            "real" => self.real_input(ty),
            "fermion" => self.fermion_input(ty, lattice),
            other => {
                self.err(
                    Problem::new(
                        Code::UnknownType,
                        ty.name.span,
                        format!("unknown input type `{other}`"),
                        "unknown type",
                    )
                    .help("inputs are `real[...]` tensors (e.g. `real[1, 28, 28]`) or lattice `fermion` fields"),
                );
                None
            }
        }
    }

    /// `real[C, H, W]`: one to four nonzero dimensions.
    fn real_input(&mut self, ty: &ast::TypeExpr) -> Option<ValueType> {
        let Some(dims) = &ty.dims else {
            self.err(
                Problem::new(Code::BadArgument, ty.span, "a real input needs a shape", "no shape")
                    .help("write e.g. `real[1, 28, 28]` (channels, height, width) or `real[784]`"),
            );
            return None;
        };
        if dims.is_empty() || dims.len() > 4 {
            self.err(
                Problem::new(
                    Code::BadArgument,
                    ty.span,
                    format!("a real input has 1 to 4 dimensions; this one has {}", dims.len()),
                    "here",
                )
                .help("write e.g. `real[1, 28, 28]` (channels, height, width) or `real[784]`"),
            );
            return None;
        }
        let mut shape = Vec::new();
        for (d, sp) in dims {
            if *d == 0 {
                self.err(zero_size(*sp, "a dimension of the input"));
                return None;
            }
            shape.push(usize::try_from(*d).unwrap_or(usize::MAX));
        }
        let t = ValueType::Real { shape };
        self.check_value_size(&t, ty.span).then_some(t)
    }

    /// `fermion` or `fermion[N]` on the declared lattice; `lattice` is where it was declared
    /// (`None` if it was not), so a lattice that was declared but rejected is not reported twice.
    fn fermion_input(&mut self, ty: &ast::TypeExpr, lattice: Option<Span>) -> Option<ValueType> {
        let features = match &ty.dims {
            None => 1,
            Some(d) if d.len() == 1 => {
                if d[0].0 == 0 {
                    self.err(zero_size(d[0].1, "the number of fermion fields"));
                    return None;
                }
                usize::try_from(d[0].0).unwrap_or(usize::MAX)
            }
            Some(_) => {
                self.err(
                    Problem::new(
                        Code::BadArgument,
                        ty.span,
                        "a fermion input takes at most one number: how many fields",
                        "here",
                    )
                    .help("write `fermion` for one field or e.g. `fermion[2]` for two; the lattice is declared with `lattice`"),
                );
                return None;
            }
        };
        let Some(lattice) = self.lattice else {
            if lattice.is_none() {
                self.err(
                    Problem::new(
                        Code::MissingLattice,
                        ty.span,
                        "a fermion input needs a lattice",
                        "fermion field on which lattice?",
                    )
                    .help("declare the lattice in the network, e.g. `lattice 8 x 8 x 8 x 16`"),
                );
            }
            return None;
        };
        let t = ValueType::Fermion { features, lattice };
        self.check_value_size(&t, ty.span).then_some(t)
    }

    /// A value that cannot be held in memory (per sample) is rejected before anything
    /// downstream computes sizes from it.
    pub(super) fn check_value_size(&mut self, t: &ValueType, span: Span) -> bool {
        let n = match t {
            ValueType::Real { shape } => shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d)),
            ValueType::Fermion { features, lattice } => {
                lattice.volume().checked_mul(24).and_then(|x| x.checked_mul(*features))
            }
        };
        match n.and_then(|n| n.checked_mul(4)) {
            Some(b) if (b as u64) <= self.opts.memory_bytes => true,
            Some(b) => {
                self.err(
                    Problem::new(
                        Code::TooMuchMemory,
                        span,
                        format!(
                            "this value needs {} per sample, more than the machine has",
                            bytes(b as u64)
                        ),
                        "too large",
                    )
                    .help(format!("this machine has {}", bytes(self.opts.memory_bytes))),
                );
                false
            }
            None => {
                self.err(
                    Problem::new(
                        Code::SizeOverflow,
                        span,
                        "the size of this value overflows 64-bit arithmetic",
                        "too large",
                    )
                    .help("reduce the dimensions"),
                );
                false
            }
        }
    }
}

/// "`what` is zero": every count and extent in a program is at least 1.
pub(super) fn zero_size(span: Span, what: &str) -> Problem {
    Problem::new(Code::ZeroSize, span, format!("{what} is zero"), "zero size")
        .help(format!("{what} must be at least 1"))
}

/// `real[10, 19, 19]`, `2 fermion fields on 8x8x8x16`.
pub(super) fn describe(t: &ValueType) -> String {
    match t {
        ValueType::Real { shape } => {
            format!("real[{}]", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
        }
        ValueType::Fermion { features, lattice } => format!(
            "{features} fermion field{} on {}",
            if *features == 1 { "" } else { "s" },
            lattice.dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
        ),
    }
}

/// `1.5 GiB`
pub(super) fn bytes(b: u64) -> String {
    bytes_u128(b as u128)
}

/// [`bytes`] for sizes past 64 bits (a layer's weight bytes are computed in u128).
pub(super) fn bytes_u128(b: u128) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b} bytes") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// `6,454,860`
pub(super) fn group(n: u128) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
