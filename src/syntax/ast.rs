//! The abstract syntax tree: what the user wrote, with a span on every node.
//!
//! Literals are already parsed (integers, floats, paths); names are still strings, resolved by
//! `sema`. No pest type appears here.

use crate::ir::Span;

/// A name with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A whole file: networks and train blocks in source order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Model {
    pub networks: Vec<Network>,
    pub trains: Vec<Train>,
}

/// `network NAME { ... }`
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub name: Ident,
    pub body: Vec<Stmt>,
    pub span: Span,
}

/// One statement in a network body.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `input NAME: TYPE`
    Input { name: Ident, ty: TypeExpr, span: Span },
    /// `lattice 8 x 8 x 8 x 16`
    Lattice { dims: Vec<(u64, Span)>, span: Span },
    /// `symmetry gauge(SU3), translation`
    Symmetry { items: Vec<Call>, span: Span },
    /// `output NAME` or `output NAME: KIND`
    Output { name: Ident, kind: Option<Ident>, span: Span },
    /// `residual { ... }`: out = body(in) + in.
    Residual { body: Vec<Stmt>, span: Span },
    /// `level NAME(args) { ... }`: a multigrid level and what runs on its coarse lattice.
    Level { call: Call, body: Vec<Stmt>, span: Span },
    /// A layer: `linear(...)`, `relu`, `l1 = linear(...)`.
    Op { label: Option<Ident>, call: Call, span: Span },
}

impl Stmt {
    pub fn span(&self) -> Span {
        match self {
            Stmt::Input { span, .. }
            | Stmt::Lattice { span, .. }
            | Stmt::Symmetry { span, .. }
            | Stmt::Output { span, .. }
            | Stmt::Residual { span, .. }
            | Stmt::Level { span, .. }
            | Stmt::Op { span, .. } => *span,
        }
    }
}

/// A type such as `real[1, 28, 28]` or `fermion[2]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    pub name: Ident,
    pub dims: Option<Vec<(u64, Span)>>,
    pub span: Span,
}

/// `name` or `name(args)`; a bare word is a call without an argument list.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub name: Ident,
    pub args: Option<Vec<Arg>>,
    pub span: Span,
}

/// One argument, positional (`name` is `None`) or named (`lr = 1e-3`).
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Value,
    pub span: Span,
}

/// A literal or nested call.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

/// One signed step of a path literal: `+x` is `(0, true)`; `+2x` is two such steps.
pub type Step = (u8, bool);

#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// An integer literal (may be negative).
    Int(i64),
    /// A literal with a fraction or an exponent.
    Float(f64),
    Str(String),
    /// `IN -> OUT`
    Features(u64, u64),
    /// `A..B` (inclusive)
    Range(u64, u64),
    /// `+x+y-t`
    Path(Vec<Step>),
    List(Vec<Value>),
    /// A bare word (`relu`, `true`, `valid`) or a call (`adam(lr = 1e-3)`).
    Call(Call),
}

impl ValueKind {
    /// How this kind of value is called in messages ("a number", "a list", ...).
    pub fn describe(&self) -> String {
        match self {
            ValueKind::Int(_) => "an integer".into(),
            ValueKind::Float(_) => "a number".into(),
            ValueKind::Str(_) => "a string".into(),
            ValueKind::Features(..) => "a feature map `IN -> OUT`".into(),
            ValueKind::Range(..) => "a range".into(),
            ValueKind::Path(_) => "a path".into(),
            ValueKind::List(_) => "a list".into(),
            ValueKind::Call(c) if c.args.is_none() => format!("the word `{}`", c.name.name),
            ValueKind::Call(c) => format!("a call of `{}`", c.name.name),
        }
    }
}

/// `train NAME { key value ... }`
#[derive(Clone, Debug, PartialEq)]
pub struct Train {
    pub name: Ident,
    pub settings: Vec<Setting>,
    pub span: Span,
}

/// One `key value` pair of a train block.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub key: Ident,
    pub value: Value,
    pub span: Span,
}
