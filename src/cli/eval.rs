//! `symc eval RUN_DIR`: evaluate a trained classifier run on the test set: accuracy, loss,
//! confusion matrix and per-class accuracy, as a table or as JSON.

use super::Failure;
use super::train::{EVAL_BATCH, MODEL_COPY, build_classifier, init_threads};
use crate::train::{checkpoint, classify, mnist, runlog};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  symc eval runs/conv\n  symc eval runs/dense --format json\n  \
symc eval runs/conv --data ~/datasets/mnist --reference\n\n\
Reads the run folder's model.sym, checkpoint.safetensors and summary.json (for the data folder), \
and evaluates the checkpoint on the test split. Confusion matrix rows are true digits, columns \
predicted digits."
)]
pub struct EvalArgs {
    /// A run folder written by `symc train`.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Folder with the MNIST IDX files [default: the one the run was trained on].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Evaluate with the reference evaluator instead of the JIT kernels.
    #[arg(long)]
    pub reference: bool,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// The evaluation report (`--format json` prints exactly this).
#[derive(serde::Serialize, Debug)]
pub struct EvalReport {
    pub model: String,
    pub run: String,
    pub epoch: usize,
    pub backend: String,
    pub samples: usize,
    pub test_accuracy: f64,
    pub test_loss: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Fraction of each true digit classified correctly.
    pub per_class_accuracy: Vec<f64>,
}

pub fn run(args: EvalArgs) -> Result<(), Failure> {
    let summary = runlog::read_summary(&args.run).map_err(Failure::io)?;
    let model_path = args.run.join(MODEL_COPY);
    let graph = crate::sema::load_model(&model_path).map_err(|e| {
        let code = e.exit_code();
        Failure { code, report: miette::Report::new(e) }
    })?;
    let ck =
        checkpoint::load(&args.run.join(checkpoint::FILE_NAME), &graph).map_err(|e| match e {
            checkpoint::CheckpointError::Mismatch { .. } => Failure::model(e),
            _ => Failure::io(e),
        })?;
    let data_dir = match (&args.data, &summary.data_dir) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => PathBuf::from(d),
        (None, None) => {
            return Err(Failure::io(miette::miette!(
                help = "pass --data DIR",
                "{} does not record its data folder",
                args.run.display()
            )));
        }
    };
    let test = mnist::load_split(&data_dir, "t10k").map_err(Failure::io)?;
    let threads = init_threads(args.threads);
    let backend = build_classifier(&graph, args.reference, EVAL_BATCH, threads)?;
    let clf = backend.classifier.as_ref();
    classify::check_shapes(clf, &test).map_err(Failure::model)?;
    let pred =
        classify::evaluate(clf, &ck.params, &test, None, EVAL_BATCH).map_err(Failure::model)?;
    let classes = classify::classes(clf).max(10);
    let mut confusion = vec![vec![0usize; classes]; classes];
    for (&truth, &p) in test.labels.iter().zip(&pred.predicted) {
        confusion[truth as usize][p as usize] += 1;
    }
    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let n: usize = row.iter().sum();
            if n == 0 { f64::NAN } else { row[c] as f64 / n as f64 }
        })
        .collect();
    let report = EvalReport {
        model: graph.name.clone(),
        run: args.run.display().to_string(),
        epoch: ck.meta.get("epoch").and_then(|e| e.parse().ok()).unwrap_or(summary.epochs),
        backend: backend.name.into(),
        samples: test.len(),
        test_accuracy: pred.eval.accuracy,
        test_loss: pred.eval.loss,
        confusion,
        per_class_accuracy,
    };
    match args.format {
        Format::Json => {
            let text = serde_json::to_string_pretty(&report)
                .map_err(|e| Failure::io(miette::miette!("cannot encode the report: {e}")))?;
            println!("{text}");
        }
        Format::Text => print!("{}", render_text(&report)),
    }
    Ok(())
}

/// The human-readable report.
pub fn render_text(r: &EvalReport) -> String {
    let mut s = format!(
        "{} ({}, epoch {}, {} backend): test accuracy {:.2}% ({} of {}), test loss {:.4}\n\n",
        r.model,
        r.run,
        r.epoch,
        r.backend,
        100.0 * r.test_accuracy,
        (r.test_accuracy * r.samples as f64).round() as usize,
        r.samples,
        r.test_loss
    );
    s.push_str("confusion matrix (rows: true digit, columns: predicted)\n      ");
    for c in 0..r.confusion.len() {
        s.push_str(&format!("{c:>6}"));
    }
    s.push_str("   accuracy\n");
    for (t, row) in r.confusion.iter().enumerate() {
        s.push_str(&format!("{t:>6}"));
        for v in row {
            s.push_str(&format!("{v:>6}"));
        }
        s.push_str(&format!("   {:>7.2}%\n", 100.0 * r.per_class_accuracy[t]));
    }
    s
}
