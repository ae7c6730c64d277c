//! What a `.sym` model must declare to be trained as a preconditioner, checked once: a network
//! from one fermion field to one fermion field on a declared lattice, and a `train` block with
//! `gauge`, `operator`, a preconditioner loss and a length in `steps` ([`precond_spec`]); and
//! the Dirac parameters its `operator` line stands for ([`dirac_params`]).

use super::PrecondError;
use crate::ir::{
    EvalSpec, GaugeSource, Graph, LossSpec, OperatorSpec, TrainLength, TrainSpec, ValueType,
};
use crate::lattice::wilson::DiracParams;
use num_complex::Complex64;

/// Whether `graph` is a fermion-to-fermion network (what [`super::run`] trains).
pub fn is_fermion_network(graph: &Graph) -> bool {
    matches!(graph.values.first(), Some(ValueType::Fermion { .. }))
}

/// The pieces of a preconditioner `train` block, checked.
#[derive(Clone, Debug)]
pub struct PrecondSpec {
    pub dims: [usize; 4],
    pub gauge: GaugeSource,
    pub operator: OperatorSpec,
    pub loss: LossSpec,
    pub steps: usize,
    pub seed: u64,
    pub train: TrainSpec,
    /// The final comparison: (tol, restart, right-hand sides, max iterations).
    pub eval: (f64, usize, usize, usize),
}

/// Checks that `graph` is a trainable preconditioner and extracts its training parameters.
pub fn precond_spec(graph: &Graph) -> Result<PrecondSpec, PrecondError> {
    let bad = |what: &str| PrecondError::NotPreconditioner {
        model: graph.name.clone(),
        what: what.into(),
    };
    let features = |v: &ValueType| match v {
        ValueType::Fermion { features, .. } => Some(*features),
        ValueType::Real { .. } => None,
    };
    if graph.values.first().and_then(features) != Some(1) {
        return Err(bad("its input is not one fermion field"));
    }
    if features(graph.value(graph.output)) != Some(1) {
        return Err(bad("its output is not one fermion field"));
    }
    let dims = graph.lattice.as_ref().ok_or_else(|| bad("it has no `lattice`"))?.dims;
    let t = graph.train.as_ref().ok_or_else(|| bad("it has no `train` block"))?;
    let gauge = t.gauge.clone().ok_or_else(|| bad("the `train` block has no `gauge` line"))?;
    let operator =
        t.operator.clone().ok_or_else(|| bad("the `train` block has no `operator` line"))?;
    if !t.loss.is_preconditioner() {
        return Err(bad("its loss is not `preconditioner` or `filtered`"));
    }
    let steps = match t.length {
        TrainLength::Steps(s) => s,
        TrainLength::Epochs(_) => return Err(bad("it is trained in `epochs`, not `steps`")),
    };
    let eval = match t.evaluate {
        Some(EvalSpec::Fgmres { tol, restart, rhs, max_iterations }) => {
            (tol, restart, rhs, max_iterations)
        }
        _ => (1e-8, 30, 3, 10_000),
    };
    Ok(PrecondSpec {
        dims,
        gauge,
        operator,
        loss: t.loss.clone(),
        steps,
        seed: t.seed,
        train: t.clone(),
        eval,
    })
}

/// The Dirac parameters of an `operator` line (boundary angles in units of π).
pub fn dirac_params(op: &OperatorSpec) -> DiracParams {
    dirac_params_of(op.mass, op.csw, op.boundary)
}

/// The Dirac parameters of a mass, c_sw and boundary angles in units of π (as a run's
/// summary records them).
pub fn dirac_params_of(mass: f64, csw: f64, boundary: [f64; 4]) -> DiracParams {
    let mut p = DiracParams::periodic(mass, csw);
    for (mu, angle) in boundary.iter().enumerate() {
        p.boundary_phases[mu] = Complex64::from_polar(1.0, std::f64::consts::PI * angle);
    }
    p
}

/// The name a loss has in the run's summary.
pub(super) fn loss_name(l: &LossSpec) -> String {
    l.describe()
}
