//! Semantic analysis: AST → checked [`ir::Graph`].
//!
//! Entry points: [`compile_str`] (text in memory) and [`load_model`] (a file). Both run the
//! whole front end — lexical pre-pass, parse, checks — and return either a graph that passes
//! [`ir::verify`] or every problem found, rendered by miette with file:line:column.
//!
//! **Guarantees:** no input text makes this module panic, recurse without bound or allocate in
//! proportion to a size written in the program (sizes are checked against [`Options`] first).

mod args;
mod network;
pub mod paths;
mod train;

pub use crate::diagnostics::{Code, Diagnostics, Problem};
use crate::ir::{self, DataSource, GaugeSource, Graph, Span};
use std::path::{Path, PathBuf};

/// Limits that depend on the machine.
#[derive(Clone, Debug)]
pub struct Options {
    /// Memory available for one tensor (weights or one sample's value), in bytes.
    pub memory_bytes: u64,
}

impl Options {
    /// The machine's physical memory (`MemTotal` in `/proc/meminfo`), or 16 GiB when unknown.
    pub fn detect() -> Self {
        let from_proc = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map(|kb| kb.saturating_mul(1024))
        });
        Options { memory_bytes: from_proc.unwrap_or(16 << 30) }
    }
}

/// Check a model given as text. `name` is shown in diagnostics (usually the file path).
pub fn compile_str(name: &str, text: &str) -> Result<Graph, Diagnostics> {
    compile_with(name, text, &Options::detect())
}

/// [`compile_str`] with explicit limits (tests use a fixed memory size).
pub fn compile_with(name: &str, text: &str, opts: &Options) -> Result<Graph, Diagnostics> {
    check_text(text, opts).map_err(|problems| diagnostics(name, text, problems))
}

fn diagnostics(name: &str, text: &str, problems: Vec<Problem>) -> Diagnostics {
    // A line too long to show is cut in the copy miette renders, so a report never prints
    // megabytes of source.
    if let Some(i) = problems.iter().position(|p| p.code == Code::LineTooLong) {
        let at = problems[i].span.start.min(text.len());
        let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
        let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n);
        let mut keep = (line_start + 100).min(line_end);
        while !text.is_char_boundary(keep) {
            keep -= 1;
        }
        let shown = format!("{} …{}", &text[..keep], &text[line_end..]);
        let mut problems = problems;
        problems[i].span = Span { start: keep + 1, end: keep + 1 + '…'.len_utf8() };
        return Diagnostics::new(name, &shown, problems);
    }
    Diagnostics::new(name, text, problems)
}

fn check_text(text: &str, opts: &Options) -> Result<Graph, Vec<Problem>> {
    let model = crate::syntax::parse(text)?;
    check(&model, text, opts)
}

/// Check a parsed model.
pub fn check(
    model: &crate::syntax::ast::Model,
    text: &str,
    opts: &Options,
) -> Result<Graph, Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(net) = model.networks.first() else {
        let at = Span::point(0);
        let msg =
            if text.trim().is_empty() { "the file is empty" } else { "the file holds no network" };
        problems.push(Problem::new(Code::Empty, at, msg, "expected `network NAME { ... }`").help(
            "a model file starts with e.g. `network digits { input image: real[1, 28, 28] ... }`",
        ));
        return Err(problems);
    };
    for extra in &model.networks[1..] {
        problems.push(
            Problem::new(
                Code::DuplicateNetwork,
                extra.name.span,
                "a file holds one network",
                "second network",
            )
            .note(net.name.span, "first network")
            .help("put each network in its own .sym file"),
        );
    }
    let (graph, mut net_problems) = network::Checker::new(opts).network(net);
    problems.append(&mut net_problems);
    let mut train_block = None;
    for t in &model.trains {
        if t.name.name != net.name.name {
            problems.push(
                Problem::new(
                    Code::UnknownNetwork,
                    t.name.span,
                    format!("no network is called `{}`", t.name.name),
                    "unknown network",
                )
                .note(net.name.span, format!("the network here is `{}`", net.name.name))
                .help(format!("write `train {} {{ ... }}`", net.name.name)),
            );
        } else if let Some(first) = train_block {
            let first: &crate::syntax::ast::Train = first;
            problems.push(
                Problem::new(
                    Code::DuplicateTrain,
                    t.name.span,
                    format!("network `{}` has two train blocks", t.name.name),
                    "second train block",
                )
                .note(first.name.span, "first train block"),
            );
        } else {
            train_block = Some(t);
        }
    }
    let Some(mut graph) = graph else {
        return Err(problems);
    };
    if let Some(t) = train_block {
        graph.train = train::check(t, &graph, &mut problems);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if let Err(e) = ir::verify::verify(&graph) {
        // A verifier failure on a graph sema accepted is a compiler bug; it is reported, not
        // hidden, and never panics.
        problems.push(
            Problem::new(
                Code::Unexpected,
                net.span,
                format!("internal compiler error: {e}"),
                "while checking this network",
            )
            .help("this is a bug in symc; please report it with this file"),
        );
        return Err(problems);
    }
    Ok(graph)
}

/// Why a model file could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    #[diagnostic(code(symc::io::read), help("check the path and the file's permissions"))]
    Io { path: PathBuf, source: std::io::Error },
    /// The model has problems.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Model(Box<Diagnostics>),
}

impl LoadError {
    /// 2 for I/O problems, 1 for problems in the model.
    pub fn exit_code(&self) -> u8 {
        match self {
            LoadError::Io { .. } => 2,
            LoadError::Model(_) => 1,
        }
    }
}

/// Read, parse and check a `.sym` file. Relative data and gauge paths in its train block are
/// resolved against the file's directory.
pub fn load_model(path: &Path) -> Result<Graph, LoadError> {
    load_model_with(path, &Options::detect())
}

/// [`load_model`] with explicit limits.
pub fn load_model_with(path: &Path, opts: &Options) -> Result<Graph, LoadError> {
    let name = path.display().to_string();
    let bytes =
        read_limited(path).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })?;
    let mut graph = compile_bytes(&name, bytes, opts)?;
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(t) = graph.train.as_mut() {
        if let Some(DataSource::Mnist { dir }) = t.data.as_mut() {
            *dir = resolve(base, dir);
        }
        if let Some(GaugeSource::Load { path }) = t.gauge.as_mut() {
            *path = resolve(base, path);
        }
    }
    Ok(graph)
}

/// Check a model given as raw bytes (the file's content): invalid UTF-8 is reported at the
/// first bad byte like any other problem in the model.
pub fn compile_bytes(name: &str, bytes: Vec<u8>, opts: &Options) -> Result<Graph, LoadError> {
    if bytes.len() > crate::syntax::lex::MAX_FILE {
        let problems = vec![crate::syntax::lex::too_large()];
        return Err(LoadError::Model(Box::new(Diagnostics::new(name, "", problems))));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            // The lossy copy replaces bad bytes with U+FFFD; the valid prefix is identical.
            let end = lossy[at..].chars().next().map_or(at, |c| at + c.len_utf8());
            let p = Problem::new(
                Code::NotUtf8,
                Span { start: at, end },
                "the file is not valid UTF-8",
                "invalid byte sequence here",
            )
            .help("save the file as UTF-8 text; .sym files are plain text");
            return Err(LoadError::Model(Box::new(Diagnostics::new(name, &lossy, vec![p]))));
        }
    };
    compile_with(name, &text, opts).map_err(|d| LoadError::Model(Box::new(d)))
}

fn resolve(base: &Path, p: &str) -> String {
    let p = Path::new(p);
    if p.is_absolute() { p.display().to_string() } else { base.join(p).display().to_string() }
}

/// Read at most a little more than the size limit, so a huge or endless file (a device, a
/// pipe) cannot exhaust memory; the lexical pass then reports it as too large.
fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(crate::syntax::lex::MAX_FILE as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}
