//! Checking a `train` block against its network: every setting known, typed and given once;
//! settings consistent with each other and with what the network is (a classifier of real
//! tensors or a preconditioner of fermion fields); defaults filled in.

use super::args::{self, ArgSet};
use crate::diagnostics::{Code, Problem};
use crate::ir::{
    DataSource, EvalSpec, GaugeSource, Graph, LayerKind, LossSpec, OperatorSpec, OptimizerSpec,
    Schedule, Span, TrainLength, TrainSpec, ValueType,
};
use crate::syntax::ast::{self, Value};

const SETTINGS: &[&str] = &[
    "data",
    "gauge",
    "operator",
    "loss",
    "optimizer",
    "batch",
    "epochs",
    "steps",
    "schedule",
    "validation",
    "seed",
    "evaluate",
];

/// Check `train` against `graph` (already checked); returns the spec or pushes problems.
pub fn check(train: &ast::Train, graph: &Graph, problems: &mut Vec<Problem>) -> Option<TrainSpec> {
    let before = problems.len();
    let mut seen: Vec<(&str, &ast::Setting)> = Vec::new();
    for s in &train.settings {
        let key = s.key.name.as_str();
        if !SETTINGS.contains(&key) {
            problems.push(
                Problem::new(
                    Code::UnknownSetting,
                    s.key.span,
                    format!("unknown train setting `{key}`"),
                    "unknown setting",
                )
                .help(args::suggest_help(key, SETTINGS, "settings are")),
            );
            continue;
        }
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            problems.push(
                Problem::new(
                    Code::DuplicateSetting,
                    s.span,
                    format!("`{key}` is set twice"),
                    "set again here",
                )
                .note(first.span, "first set here"),
            );
            continue;
        }
        seen.push((key, s));
    }
    let get = |k: &str| seen.iter().find(|(key, _)| *key == k).map(|(_, s)| &s.value);
    let setting_span = |k: &str| seen.iter().find(|(key, _)| *key == k).map(|(_, s)| s.span);
    let input_fermion = matches!(graph.values.first(), Some(ValueType::Fermion { .. }));
    let output = graph.value(graph.output).clone();
    let fermion = input_fermion;
    let what = if fermion { "a lattice network" } else { "a classifier of real tensors" };
    let conflict = |sp: Span, msg: String, help: &str| {
        Problem::new(Code::TrainConflict, sp, msg, "does not fit this network")
            .help(help.to_string())
    };

    // data
    let data = match get("data") {
        None => None,
        Some(v) => {
            if fermion {
                problems.push(conflict(
                    v.span,
                    format!("`data` is for classifiers, but `{}` is {what}", graph.name),
                    "a lattice network trains on random vectors and the Dirac operator: give `gauge` and `operator` instead",
                ));
                None
            } else {
                let d = data_source(v, problems);
                if let Some(DataSource::Mnist { .. }) = &d {
                    mnist_fits(graph, v.span, problems);
                }
                d
            }
        }
    };
    // gauge and operator
    let gauge = get("gauge").and_then(|v| {
        if !fermion {
            problems.push(conflict(
                v.span,
                format!("`gauge` is for lattice networks, but `{}` is {what}", graph.name),
                "remove it",
            ));
            return None;
        }
        gauge_source(v, problems)
    });
    let operator = get("operator").and_then(|v| {
        if !fermion {
            problems.push(conflict(
                v.span,
                format!("`operator` is for lattice networks, but `{}` is {what}", graph.name),
                "remove it",
            ));
            return None;
        }
        operator(v, problems)
    });
    if fermion {
        if get("gauge").is_none() {
            problems.push(missing(
                train,
                "gauge",
                "a lattice network trains on a gauge field",
                "gauge generate(beta = 6.0, seed = 7)",
            ));
        }
        if get("operator").is_none() {
            problems.push(missing(
                train,
                "operator",
                "a preconditioner learns to invert a Dirac operator",
                "operator wilson_clover(mass = -0.55, csw = 1.0)",
            ));
        }
    } else if get("data").is_none() {
        problems.push(missing(
            train,
            "data",
            "a classifier needs a data set",
            "data mnist(\"data/mnist\")",
        ));
    }

    // loss
    let loss = match get("loss") {
        None if fermion => LossSpec::Preconditioner,
        None => LossSpec::Nll,
        Some(v) => loss(v, problems).unwrap_or(LossSpec::Mse),
    };
    let loss_span = get("loss").map_or(train.name.span, |v| v.span);
    match &loss {
        LossSpec::Nll => {
            if fermion {
                problems.push(conflict(
                    loss_span,
                    "`nll` is a classification loss, but this is a lattice network".into(),
                    "use `loss preconditioner` or `loss filtered(iterations = 10)`",
                ));
            } else if !graph.layers.last().is_some_and(|l| l.kind == LayerKind::LogSoftmax) {
                problems.push(
                    Problem::new(Code::TrainConflict, loss_span, "`nll` needs log-probabilities, but the network does not end with `log_softmax`", "loss nll")
                        .help("end the network with `output logits: log_softmax`"),
                );
            }
        }
        LossSpec::Preconditioner | LossSpec::Filtered { .. } | LossSpec::LowModes { .. } => {
            if !fermion {
                problems.push(conflict(loss_span, "this loss trains preconditioners of the Dirac operator, but the network is a classifier".into(), "use `loss nll`"));
            } else if &output != graph.value(crate::ir::ValueId(0)) {
                problems.push(
                    Problem::new(Code::TrainConflict, loss_span, "a preconditioner must map a fermion field to a fermion field of the same shape", "preconditioner loss")
                        .help("make the last layer produce as many fields as the input has (e.g. `linear(2 -> 1, hops = 1)`)"),
                );
            }
        }
        LossSpec::Coarse => {
            let level = crate::ir::levels::level(graph);
            if !fermion {
                problems.push(conflict(loss_span, "`loss coarse` trains the coarse layers of a multigrid level, but the network is a classifier".into(), "use `loss nll`"));
            } else if level.and_then(|l| l.coarse_layers()).is_none() {
                let (msg, help) = match level {
                    None => (
                        "`loss coarse` trains the coarse layers of a multigrid `level`, but this network has no level",
                        "start the network with `level coarse(blocks = [4, 4, 4, 4], basis = 12) { linear(1 -> 1, hops = 1, local) }`, or use `loss preconditioner`",
                    ),
                    Some(_) => (
                        "`loss coarse` trains the coarse layers of a near-null level, but this network's level has none",
                        "give the level coarse layers, e.g. `{ linear(1 -> 1, hops = 1, local) }` with `basis = 12`, or use `loss preconditioner` to train the whole network",
                    ),
                };
                problems.push(
                    Problem::new(Code::TrainConflict, loss_span, msg, "loss coarse")
                        .note(
                            graph.layers.first().map_or(train.name.span, |l| l.span),
                            "the network's first layer",
                        )
                        .help(help),
                );
            }
        }
        LossSpec::Mse => {}
    }

    let optimizer = match get("optimizer") {
        None => OptimizerSpec::Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        Some(v) => optimizer(v, problems).unwrap_or(OptimizerSpec::Sgd { lr: 1e-3, momentum: 0.0 }),
    };
    let batch = match get("batch") {
        None => {
            if fermion {
                1
            } else {
                64
            }
        }
        Some(v) => args::expect_count(v, "the batch size", problems).unwrap_or(1),
    };
    let length = match (get("epochs"), get("steps")) {
        (Some(_), Some(s)) => {
            problems.push(
                Problem::new(Code::TrainConflict, setting_span("steps").unwrap_or(s.span), "both `epochs` and `steps` are given", "second length")
                    .note(setting_span("epochs").unwrap_or(s.span), "epochs given here")
                    .help("give the length of training once: `epochs N` (passes over the data) or `steps N` (optimiser steps)"),
            );
            TrainLength::Steps(1)
        }
        (Some(e), None) => {
            if fermion {
                problems.push(conflict(
                    e.span,
                    "a lattice network has no data set to pass over, so `epochs` has no meaning"
                        .into(),
                    "give `steps N` (one fresh random batch per step)",
                ));
            }
            TrainLength::Epochs(
                args::expect_count(e, "the number of epochs", problems).unwrap_or(1),
            )
        }
        (None, Some(s)) => {
            TrainLength::Steps(args::expect_count(s, "the number of steps", problems).unwrap_or(1))
        }
        (None, None) => {
            if fermion {
                TrainLength::Steps(1000)
            } else {
                TrainLength::Epochs(15)
            }
        }
    };
    let schedule = get("schedule")
        .map_or(Some(Schedule::Constant), |v| schedule(v, problems))
        .unwrap_or(Schedule::Constant);
    let validation = match get("validation") {
        None => 0.0,
        Some(v) => match args::expect_f64(v, "the validation fraction", problems) {
            Some(f) if (0.0..1.0).contains(&f) => {
                if fermion && f > 0.0 {
                    problems.push(conflict(
                        v.span,
                        "a lattice network has no data set to hold out".into(),
                        "remove `validation`",
                    ));
                }
                f
            }
            Some(f) => {
                problems.push(
                    Problem::new(
                        Code::BadArgument,
                        v.span,
                        "the validation fraction must be in [0, 1)",
                        format!("this is {f}"),
                    )
                    .help("e.g. `validation 0.1` holds out 10% of the training set"),
                );
                0.0
            }
            None => 0.0,
        },
    };
    let seed =
        get("seed").map_or(Some(0), |v| args::expect_u64(v, "the seed", problems)).unwrap_or(0);
    let evaluate = match get("evaluate") {
        None if fermion => {
            Some(EvalSpec::Fgmres { tol: 1e-8, restart: 30, rhs: 3, max_iterations: 10_000 })
        }
        None => Some(EvalSpec::Accuracy),
        Some(v) => {
            let e = evaluate(v, problems);
            match &e {
                Some(EvalSpec::Accuracy) if fermion => problems.push(conflict(
                    v.span,
                    "`accuracy` evaluates classifiers, but this is a lattice network".into(),
                    "use `evaluate fgmres(tol = 1e-8, restart = 30)`",
                )),
                Some(EvalSpec::Fgmres { .. }) if !fermion => problems.push(conflict(
                    v.span,
                    "`fgmres` evaluates preconditioners, but this network is a classifier".into(),
                    "use `evaluate accuracy`",
                )),
                _ => {}
            }
            e
        }
    };
    if problems.len() > before {
        return None;
    }
    Some(TrainSpec {
        data,
        gauge,
        operator,
        loss,
        optimizer,
        batch,
        length,
        schedule,
        validation,
        seed,
        evaluate,
        span: train.span,
    })
}

/// MNIST is 28x28 grey images in 10 classes: the network must read that and output 10 scores.
fn mnist_fits(graph: &Graph, span: Span, problems: &mut Vec<Problem>) {
    let input = graph.values.first();
    let ok_input = matches!(input, Some(ValueType::Real { shape })
        if shape.as_slice() == [1, 28, 28] || shape.as_slice() == [784] || shape.as_slice() == [28, 28]);
    if !ok_input {
        let found = input.map_or(String::new(), crate::ir::print::value_type);
        problems.push(
            Problem::new(
                Code::TrainConflict,
                span,
                format!("MNIST images are 1x28x28, but the network's input is {found}"),
                "MNIST data",
            )
            .help("declare `input image: real[1, 28, 28]` (or `real[784]`)"),
        );
    }
    let out = graph.value(graph.output);
    if out.real_len() != 10 {
        problems.push(
            Problem::new(
                Code::TrainConflict,
                span,
                format!(
                    "MNIST has 10 classes, but the network's output is {}",
                    crate::ir::print::value_type(out)
                ),
                "MNIST data",
            )
            .help("make the last layer produce 10 values, e.g. `linear(100 -> 10)`"),
        );
    }
}

fn missing(train: &ast::Train, key: &str, why: &str, example: &str) -> Problem {
    Problem::new(
        Code::MissingSetting,
        train.name.span,
        format!("train block `{}` has no `{key}`", train.name.name),
        format!("`{key}` missing"),
    )
    .help(format!("{why}; add e.g. `{example}`"))
}

/// The call a setting's value is, or a diagnostic naming the choices.
fn choice<'v>(
    v: &'v Value,
    what: &str,
    choices: &[&str],
    problems: &mut Vec<Problem>,
) -> Option<&'v ast::Call> {
    match &v.kind {
        ast::ValueKind::Call(c) if choices.contains(&c.name.name.as_str()) => Some(c),
        ast::ValueKind::Call(c) => {
            problems.push(
                Problem::new(
                    Code::UnknownArgument,
                    c.name.span,
                    format!("unknown {what} `{}`", c.name.name),
                    format!("unknown {what}"),
                )
                .help(args::suggest_help(
                    &c.name.name,
                    choices,
                    &format!("{what}s are"),
                )),
            );
            None
        }
        _ => {
            problems.push(args::mistyped(
                v,
                &format!("the {what}"),
                &format!("one of {}", args::list(choices)),
            ));
            None
        }
    }
}

fn data_source(v: &Value, problems: &mut Vec<Problem>) -> Option<DataSource> {
    let c = choice(v, "data source", &["mnist"], problems)?;
    let a = ArgSet::read(c, &["dir"], &["dir"], &[], problems);
    let dir = a.require("dir", "mnist(\"data/mnist\")", problems)?;
    Some(DataSource::Mnist {
        dir: args::expect_str(dir, "the MNIST folder", problems)?.to_string(),
    })
}

fn gauge_source(v: &Value, problems: &mut Vec<Problem>) -> Option<GaugeSource> {
    let c = choice(v, "gauge source", &["generate", "load", "unit"], problems)?;
    match c.name.name.as_str() {
        "generate" => {
            let a = ArgSet::read(c, &["beta", "seed", "sweeps"], &[], &[], problems);
            let beta = a.require("beta", "generate(beta = 6.0, seed = 7)", problems);
            let beta = beta.and_then(|b| args::expect_f64(b, "`beta`", problems));
            if let (Some(b), Some(bv)) = (beta, a.get("beta"))
                && b <= 0.0
            {
                problems.push(
                    Problem::new(
                        Code::BadArgument,
                        bv.span,
                        "`beta` must be positive",
                        format!("this is {b}"),
                    )
                    .help("quenched SU(3) studies use β ≈ 5.7–6.5"),
                );
            }
            let seed = a.get("seed").map_or(Some(0), |s| args::expect_u64(s, "`seed`", problems));
            let sweeps =
                a.get("sweeps").map_or(Some(200), |s| args::expect_count(s, "`sweeps`", problems));
            Some(GaugeSource::Generate { beta: beta?, seed: seed?, sweeps: sweeps? })
        }
        "load" => {
            let a = ArgSet::read(c, &["path"], &["path"], &[], problems);
            let p = a.require("path", "load(\"conf.nersc\")", problems)?;
            Some(GaugeSource::Load {
                path: args::expect_str(p, "the gauge file", problems)?.to_string(),
            })
        }
        _ => {
            if c.args.as_ref().is_some_and(|a| !a.is_empty()) {
                problems.push(Problem::new(
                    Code::UnknownArgument,
                    c.span,
                    "`unit` takes no arguments",
                    "here",
                ));
            }
            Some(GaugeSource::Unit)
        }
    }
}

fn operator(v: &Value, problems: &mut Vec<Problem>) -> Option<OperatorSpec> {
    let c = choice(v, "operator", &["wilson_clover", "wilson"], problems)?;
    let names: &[&str] =
        if c.name.name == "wilson" { &["mass", "boundary"] } else { &["mass", "csw", "boundary"] };
    let a = ArgSet::read(c, names, &[], &[], problems);
    let mass = a.require("mass", "wilson_clover(mass = -0.55, csw = 1.0)", problems);
    let mass = mass.and_then(|m| args::expect_f64(m, "`mass`", problems));
    let csw = a.get("csw").map_or(Some(if c.name.name == "wilson" { 0.0 } else { 1.0 }), |x| {
        args::expect_f64(x, "`csw`", problems)
    });
    let boundary = match a.get("boundary") {
        None => Some([0.0; 4]),
        Some(b) => match (&b.kind, args::word(b)) {
            (_, Some("periodic")) => Some([0.0; 4]),
            (_, Some("antiperiodic")) => Some([0.0, 0.0, 0.0, 1.0]),
            (ast::ValueKind::List(items), _) if items.len() == 4 => {
                let mut out = [0.0; 4];
                let mut ok = true;
                for (o, it) in out.iter_mut().zip(items) {
                    match args::expect_f64(it, "a boundary phase", problems) {
                        Some(x) => *o = x,
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                problems.push(args::mistyped(b, "`boundary`", "`periodic`, `antiperiodic` (in t) or four phases in units of π, e.g. `[0, 0, 0, 1]`"));
                None
            }
        },
    };
    Some(OperatorSpec { mass: mass?, csw: csw?, boundary: boundary? })
}

fn loss(v: &Value, problems: &mut Vec<Problem>) -> Option<LossSpec> {
    let c = choice(v, "loss", &["nll", "preconditioner", "filtered", "coarse", "mse"], problems)?;
    match c.name.name.as_str() {
        "filtered" => {
            let a = ArgSet::read(c, &["iterations"], &["iterations"], &[], problems);
            let it = a
                .get("iterations")
                .map_or(Some(10), |x| args::expect_count(x, "`iterations`", problems))?;
            Some(LossSpec::Filtered { iterations: it })
        }
        // `preconditioner(low_modes = 1, tol = 1e-5)`: the two-term loss of the full
        // multigrid model; plain `preconditioner` is the one-term loss.
        "preconditioner" if c.args.as_ref().is_some_and(|a| !a.is_empty()) => {
            let a = ArgSet::read(c, &["low_modes", "tol"], &["low_modes"], &[], problems);
            let weight = positive(a.get("low_modes"), 1.0, "`low_modes`", problems);
            let tol = positive(a.get("tol"), 1e-5, "`tol`", problems);
            if let (Some(v), Some(t)) = (a.get("tol"), tol)
                && t >= 1.0
            {
                problems.push(
                    Problem::new(
                        Code::BadArgument,
                        v.span,
                        "`tol` is the relative residual of the solves that make D^-1 v2 and must be below 1",
                        format!("this is {t}"),
                    )
                    .help("the paper solves to 1e-5: `tol = 1e-5`"),
                );
                return None;
            }
            Some(LossSpec::LowModes { weight: weight?, tol: tol? })
        }
        other => {
            if c.args.as_ref().is_some_and(|a| !a.is_empty()) {
                problems.push(Problem::new(
                    Code::UnknownArgument,
                    c.span,
                    format!("`{other}` takes no arguments"),
                    "here",
                ));
            }
            Some(match other {
                "nll" => LossSpec::Nll,
                "preconditioner" => LossSpec::Preconditioner,
                "coarse" => LossSpec::Coarse,
                _ => LossSpec::Mse,
            })
        }
    }
}

fn positive(
    v: Option<&Value>,
    default: f64,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Option<f64> {
    let Some(v) = v else { return Some(default) };
    let x = args::expect_f64(v, what, problems)?;
    if x <= 0.0 {
        problems.push(Problem::new(
            Code::BadArgument,
            v.span,
            format!("{what} must be positive"),
            format!("this is {x}"),
        ));
        return None;
    }
    Some(x)
}

fn fraction(
    v: Option<&Value>,
    default: f64,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Option<f64> {
    let Some(v) = v else { return Some(default) };
    let x = args::expect_f64(v, what, problems)?;
    if !(0.0..1.0).contains(&x) {
        problems.push(Problem::new(
            Code::BadArgument,
            v.span,
            format!("{what} must be in [0, 1)"),
            format!("this is {x}"),
        ));
        return None;
    }
    Some(x)
}

fn optimizer(v: &Value, problems: &mut Vec<Problem>) -> Option<OptimizerSpec> {
    let c = choice(v, "optimizer", &["adam", "sgd"], problems)?;
    if c.name.name == "adam" {
        let a = ArgSet::read(c, &["lr", "beta1", "beta2", "eps"], &["lr"], &[], problems);
        let lr = positive(a.get("lr"), 1e-3, "the learning rate", problems);
        let b1 = fraction(a.get("beta1"), 0.9, "`beta1`", problems);
        let b2 = fraction(a.get("beta2"), 0.999, "`beta2`", problems);
        let eps = positive(a.get("eps"), 1e-8, "`eps`", problems);
        Some(OptimizerSpec::Adam { lr: lr?, beta1: b1?, beta2: b2?, eps: eps? })
    } else {
        let a = ArgSet::read(c, &["lr", "momentum"], &["lr"], &[], problems);
        let lr = positive(a.get("lr"), 1e-2, "the learning rate", problems);
        let m = fraction(a.get("momentum"), 0.0, "`momentum`", problems);
        Some(OptimizerSpec::Sgd { lr: lr?, momentum: m? })
    }
}

fn schedule(v: &Value, problems: &mut Vec<Problem>) -> Option<Schedule> {
    let c = choice(v, "schedule", &["constant", "cosine", "step"], problems)?;
    match c.name.name.as_str() {
        "cosine" => {
            let a = ArgSet::read(c, &["floor"], &["floor"], &[], problems);
            let floor = match a.get("floor") {
                None => Some(0.0),
                Some(f) => {
                    let x = args::expect_f64(f, "`floor`", problems)?;
                    if !(0.0..=1.0).contains(&x) {
                        problems.push(Problem::new(
                            Code::BadArgument,
                            f.span,
                            "`floor` is a fraction of the learning rate in [0, 1]",
                            format!("this is {x}"),
                        ));
                        None
                    } else {
                        Some(x)
                    }
                }
            };
            Some(Schedule::Cosine { floor: floor? })
        }
        "step" => {
            let a = ArgSet::read(c, &["every", "gamma"], &[], &[], problems);
            let every = a
                .require("every", "step(every = 5, gamma = 0.5)", problems)
                .and_then(|e| args::expect_count(e, "`every`", problems));
            let gamma = positive(a.get("gamma"), 0.1, "`gamma`", problems);
            Some(Schedule::Step { every: every?, gamma: gamma? })
        }
        _ => Some(Schedule::Constant),
    }
}

fn evaluate(v: &Value, problems: &mut Vec<Problem>) -> Option<EvalSpec> {
    let c = choice(v, "evaluation", &["accuracy", "fgmres"], problems)?;
    if c.name.name == "accuracy" {
        return Some(EvalSpec::Accuracy);
    }
    let a = ArgSet::read(c, &["tol", "restart", "rhs", "max_iterations"], &[], &[], problems);
    let tol = positive(a.get("tol"), 1e-8, "`tol`", problems);
    let restart =
        a.get("restart").map_or(Some(30), |x| args::expect_count(x, "`restart`", problems));
    let rhs = a.get("rhs").map_or(Some(3), |x| args::expect_count(x, "`rhs`", problems));
    let max = a
        .get("max_iterations")
        .map_or(Some(10_000), |x| args::expect_count(x, "`max_iterations`", problems));
    Some(EvalSpec::Fgmres { tol: tol?, restart: restart?, rhs: rhs?, max_iterations: max? })
}
