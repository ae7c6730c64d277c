//! The Wilson-clover operator of one gauge field, built in the precision a solve asks for and
//! handed to the solvers as a `solve::batch` [`System`]: the plain f64 reference operator, an
//! f32 reference operator inside the f64 solver (with the f64 one to judge the result), or the
//! JIT kernels for mixed-precision (F)GMRES (f32 cycles on the kernel's own layout, f64
//! restarts). `symc solve` and the evaluation of a trained preconditioner build their operator
//! here, so choosing a precision and falling back from it happens in one place.

use super::RuntimeError;
use super::dirac::{DiracOptions, JitWilsonClover};
use super::preconditioner::{BoundNet, NetPreconditioner};
use crate::lattice::gauge::GaugeField;
use crate::lattice::wilson::{DiracParams, WilsonClover};
use crate::solve::MixedPrecision;
use crate::solve::batch::{SolverKind, System};

/// The precision a solve asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// f32 restart cycles on the JIT kernels, f64 residuals at every restart ((F)GMRES; other
    /// solvers run in f64 on the f64 kernel).
    Mixed,
    /// An f32 operator inside the f64 solver (the reachable residual is about 1e-6).
    F32,
    /// f64 throughout on the plain reference operator.
    F64,
}

enum Built {
    F64(WilsonClover<f64>),
    F32 { op: MixedPrecision<WilsonClover<f32>>, exact: WilsonClover<f64> },
    Mixed { d64: Box<JitWilsonClover<f64>>, d32: Box<JitWilsonClover<f32>> },
}

/// D for one gauge field and one set of Dirac parameters, in one precision.
pub struct DiracOperator {
    built: Built,
    /// Why mixed precision was asked for but the operator is f64.
    fallback: Option<String>,
}

impl DiracOperator {
    /// Builds D in `precision`. Mixed precision needs the JIT kernels; where they cannot be
    /// built (no lattice extent divisible by the 4 SIMD lanes) the operator is f64 and
    /// [`DiracOperator::fallback`] says why.
    pub fn new(gauge: &GaugeField, params: &DiracParams, precision: Precision) -> Self {
        let built = match precision {
            Precision::F64 => Built::F64(WilsonClover::new(gauge, params)),
            Precision::F32 => Built::F32 {
                op: MixedPrecision::new(WilsonClover::new(gauge, params)),
                exact: WilsonClover::new(gauge, params),
            },
            Precision::Mixed => match Self::mixed(gauge, params) {
                Ok(op) => return op,
                Err(e) => {
                    let f64 = Built::F64(WilsonClover::new(gauge, params));
                    return DiracOperator { built: f64, fallback: Some(e.to_string()) };
                }
            },
        };
        DiracOperator { built, fallback: None }
    }

    /// The mixed-precision operator (both JIT kernels), or why it cannot be built.
    pub fn mixed(gauge: &GaugeField, params: &DiracParams) -> Result<Self, RuntimeError> {
        let opts = DiracOptions::default();
        let d64 = Box::new(JitWilsonClover::<f64>::new(gauge, params, &opts)?);
        let d32 = Box::new(JitWilsonClover::<f32>::new(gauge, params, &opts)?);
        Ok(DiracOperator { built: Built::Mixed { d64, d32 }, fallback: None })
    }

    /// Why the operator is f64 although mixed precision was asked for.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The operator as the solvers of `solve::batch` take it.
    pub fn system(&self) -> System<'_> {
        match &self.built {
            Built::F64(d) => System { op: d, native: None, exact: None },
            Built::F32 { op, exact } => System { op, native: None, exact: Some(exact) },
            Built::Mixed { d64, d32 } => {
                System { op: d64.as_ref(), native: Some(d32.as_ref()), exact: None }
            }
        }
    }

    /// The precision solves with `solver` actually run in: `mixed`, `f32` or `f64` (mixed
    /// precision applies to the restarted solvers only).
    pub fn precision(&self, solver: SolverKind) -> &'static str {
        match &self.built {
            Built::Mixed { .. } if solver.is_restarted() => "mixed",
            Built::F32 { .. } => "f32",
            _ => "f64",
        }
    }

    /// `net` as the right preconditioner of solves on this operator (on the f32 kernel's
    /// layout in mixed precision).
    pub fn preconditioner<'a>(&'a self, net: &'a mut NetPreconditioner) -> BoundNet<'a> {
        let layout = match &self.built {
            Built::Mixed { d32, .. } => Some(d32.layout()),
            _ => None,
        };
        net.right(layout)
    }
}
