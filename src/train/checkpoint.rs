//! Checkpoints in safetensors format: parameters by name and shape, optimiser state, and the
//! loop state as string metadata.
//!
//! Each parameter is stored under its IR name with its logical shape (complex parameters get a
//! trailing axis of 2 for re/im), so other tools (Python `safetensors`, PyTorch) can read the
//! weights directly. Optimiser buffers are stored flat as `optimizer.<buffer>`. Everything else
//! a resumed run needs (epoch, step counters, the shuffling RNG position, the history) goes
//! into the `__metadata__` string map. Files are written atomically.

use crate::ir::Graph;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// File name of the checkpoint inside a run folder.
pub const FILE_NAME: &str = "checkpoint.safetensors";
/// Value of the `format` metadata key.
pub const FORMAT: &str = "symc-checkpoint-1";

/// Problems saving or loading a checkpoint.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CheckpointError {
    #[error("cannot read checkpoint {}: {source}", path.display())]
    #[diagnostic(
        code(symc::checkpoint::io),
        help("`--resume` and `symc eval` need a run folder written by `symc train`")
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write checkpoint {}: {source}", path.display())]
    #[diagnostic(code(symc::checkpoint::write))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid safetensors file: {message}", path.display())]
    #[diagnostic(
        code(symc::checkpoint::format),
        help("the file is damaged or not a symc checkpoint")
    )]
    Format { path: PathBuf, message: String },
    #[error("checkpoint {} does not fit the model: {message}", path.display())]
    #[diagnostic(
        code(symc::checkpoint::mismatch),
        help("a checkpoint can only be loaded into the model it was trained with")
    )]
    Mismatch { path: PathBuf, message: String },
    #[error("cannot warm-start from {}: {message}", path.display())]
    #[diagnostic(
        code(symc::checkpoint::warm_start),
        help(
            "`--init RUN` copies the weights of the layers that have the same name (`linear1`, \
             ...) and shape in RUN's model; give the run of a model whose layers are named like \
             this one's (see `symc inspect`)"
        )
    )]
    WarmStart { path: PathBuf, message: String },
}

/// A loaded checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The flat parameter vector in `Graph.params` order.
    pub params: Vec<f32>,
    /// Optimiser buffers by name (`m`, `v`, `velocity`).
    pub optimizer: HashMap<String, Vec<f32>>,
    pub meta: BTreeMap<String, String>,
}

impl Checkpoint {
    /// A metadata value, or a mismatch error naming the key.
    pub fn meta_str(&self, path: &Path, key: &str) -> Result<&str, CheckpointError> {
        self.meta.get(key).map(String::as_str).ok_or_else(|| CheckpointError::Format {
            path: path.to_path_buf(),
            message: format!("metadata key `{key}` is missing"),
        })
    }
    /// A metadata value parsed as a number (or any `FromStr`).
    pub fn meta_parse<T: std::str::FromStr>(
        &self,
        path: &Path,
        key: &str,
    ) -> Result<T, CheckpointError> {
        let s = self.meta_str(path, key)?;
        s.parse().map_err(|_| CheckpointError::Format {
            path: path.to_path_buf(),
            message: format!("metadata `{key}` = `{s}` is not a valid value"),
        })
    }
}

/// Tensor name of a parameter (unique even if two parameters share a name).
fn param_key(graph: &Graph, i: usize) -> String {
    let name = &graph.params[i].name;
    if graph.params.iter().filter(|p| &p.name == name).count() > 1 {
        format!("p{i}.{name}")
    } else {
        name.clone()
    }
}

fn param_shape(graph: &Graph, i: usize) -> Vec<usize> {
    let p = &graph.params[i];
    let mut s = p.shape.clone();
    if p.complex {
        s.push(2);
    }
    s
}

/// Saves `params` (flat, `Graph.params` order), optimiser buffers and metadata to `path`
/// atomically.
pub fn save(
    path: &Path,
    graph: &Graph,
    params: &[f32],
    optimizer: &[(&str, &[f32])],
    meta: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let format_err = |e: safetensors::SafeTensorError| CheckpointError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if params.len() != graph.param_scalars() {
        return Err(CheckpointError::Mismatch {
            path: path.to_path_buf(),
            message: format!(
                "{} parameters given, the model has {}",
                params.len(),
                graph.param_scalars()
            ),
        });
    }
    let mut views: Vec<(String, TensorView<'_>)> = Vec::new();
    for (i, p) in graph.params.iter().enumerate() {
        let slice = &params[p.offset..p.offset + p.scalar_len()];
        views.push((
            param_key(graph, i),
            TensorView::new(Dtype::F32, param_shape(graph, i), bytemuck::cast_slice(slice))
                .map_err(format_err)?,
        ));
    }
    for (name, buf) in optimizer {
        views.push((
            format!("optimizer.{name}"),
            TensorView::new(Dtype::F32, vec![buf.len()], bytemuck::cast_slice(buf))
                .map_err(format_err)?,
        ));
    }
    let mut info: HashMap<String, String> = meta.clone().into_iter().collect();
    info.insert("format".into(), FORMAT.into());
    info.insert("model".into(), graph.name.clone());
    info.insert("param_scalars".into(), graph.param_scalars().to_string());
    let bytes = safetensors::tensor::serialize(views, Some(info)).map_err(format_err)?;
    super::write_atomic(path, &bytes)
        .map_err(|source| CheckpointError::Write { path: path.to_path_buf(), source })
}

fn to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// What a warm start ([`warm_start`]) took from a trained run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WarmStart {
    /// The checkpoint file read.
    pub from: String,
    /// Parameters loaded whole.
    pub loaded: Vec<String>,
    /// Parameters loaded into their leading block (`name: [2, 1, ...] of [2, 2, ...]`).
    pub embedded: Vec<String>,
    /// Parameters of the model the checkpoint does not have (they keep their initial values).
    pub kept: Vec<String>,
}

/// Warm start: overwrites the parameters of `graph` in `params` with the ones of the same name
/// in the checkpoint at `path` (a run folder or a `.safetensors` file), as Lehner & Wettig
/// start the full multigrid model from its trained pieces. A parameter of the same name and
/// shape is copied; one whose first two axes (output and input features) are smaller and
/// whose other axes agree is copied into its leading block — a layer trained on fewer input
/// features is the same layer seeing zeros in the extra ones (the paper's smoother trained on
/// [b, 0] inside Smoother([b, c])), and its extra outputs start from their initial values. Any
/// other shape is an error, as is a checkpoint that shares no parameter with the model.
pub fn warm_start(
    path: &Path,
    graph: &Graph,
    params: &mut [f32],
) -> Result<WarmStart, CheckpointError> {
    let file = if path.is_dir() { path.join(FILE_NAME) } else { path.to_path_buf() };
    let bytes = std::fs::read(&file)
        .map_err(|source| CheckpointError::Read { path: file.clone(), source })?;
    let format = |message: String| CheckpointError::Format { path: file.clone(), message };
    let mismatch = |message: String| CheckpointError::WarmStart { path: file.clone(), message };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
    let mut report = WarmStart {
        from: file.display().to_string(),
        loaded: Vec::new(),
        embedded: Vec::new(),
        kept: Vec::new(),
    };
    for (i, p) in graph.params.iter().enumerate() {
        let key = param_key(graph, i);
        let Ok(t) = st.tensor(&key) else {
            report.kept.push(key);
            continue;
        };
        let want = param_shape(graph, i);
        let have = t.shape();
        if t.dtype() != Dtype::F32 {
            return Err(mismatch(format!("parameter `{key}` is {:?}, not F32", t.dtype())));
        }
        let dst = &mut params[p.offset..p.offset + p.scalar_len()];
        let src = to_f32(t.data());
        if have == want.as_slice() {
            dst.copy_from_slice(&src);
            report.loaded.push(key);
            continue;
        }
        let embeddable = have.len() == want.len()
            && want.len() >= 2
            && have[2..] == want[2..]
            && have[0] <= want[0]
            && have[1] <= want[1];
        if !embeddable {
            return Err(mismatch(format!(
                "parameter `{key}` is {have:?} there and {want:?} in model `{}`: only the \
                 first two axes (output and input features) may be smaller",
                graph.name
            )));
        }
        let inner: usize = want[2..].iter().product();
        for o in 0..have[0] {
            for j in 0..have[1] {
                let s = (o * have[1] + j) * inner;
                let d = (o * want[1] + j) * inner;
                dst[d..d + inner].copy_from_slice(&src[s..s + inner]);
            }
        }
        report.embedded.push(format!("{key}: {have:?} of {want:?}"));
    }
    if report.loaded.is_empty() && report.embedded.is_empty() {
        let names: Vec<String> = (0..graph.params.len()).map(|i| param_key(graph, i)).collect();
        let theirs: Vec<&str> =
            st.names().into_iter().filter(|n| !n.starts_with("optimizer.")).collect();
        return Err(mismatch(format!(
            "it shares no parameter with model `{}` (the model has {}; the checkpoint has {})",
            graph.name,
            names.join(", "),
            theirs.join(", ")
        )));
    }
    Ok(report)
}

/// The log line of a warm start.
pub fn describe_warm_start(w: &WarmStart) -> String {
    let mut parts = Vec::new();
    if !w.loaded.is_empty() {
        parts.push(format!("loaded {}", w.loaded.join(", ")));
    }
    if !w.embedded.is_empty() {
        parts.push(format!("embedded {}", w.embedded.join(", ")));
    }
    if !w.kept.is_empty() {
        parts.push(format!("kept the initial {}", w.kept.join(", ")));
    }
    format!("warm start from {}: {}", w.from, parts.join("; "))
}

/// Loads a checkpoint and checks that its parameters fit `graph` (names, shapes, dtype).
pub fn load(path: &Path, graph: &Graph) -> Result<Checkpoint, CheckpointError> {
    let bytes = std::fs::read(path)
        .map_err(|source| CheckpointError::Read { path: path.to_path_buf(), source })?;
    let format = |message: String| CheckpointError::Format { path: path.to_path_buf(), message };
    let mismatch =
        |message: String| CheckpointError::Mismatch { path: path.to_path_buf(), message };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format(e.to_string()))?;
    let meta: BTreeMap<String, String> =
        header.metadata().clone().unwrap_or_default().into_iter().collect();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(format(format!("metadata `format` is not `{FORMAT}`")));
    }
    if let Some(model) = meta.get("model")
        && model != &graph.name
    {
        return Err(mismatch(format!("it was trained for model `{model}`, not `{}`", graph.name)));
    }
    let mut params = vec![0.0f32; graph.param_scalars()];
    for (i, p) in graph.params.iter().enumerate() {
        let key = param_key(graph, i);
        let t = st.tensor(&key).map_err(|_| mismatch(format!("parameter `{key}` is missing")))?;
        let want = param_shape(graph, i);
        if t.dtype() != Dtype::F32 || t.shape() != want.as_slice() {
            return Err(mismatch(format!(
                "parameter `{key}` is {:?} {:?}, the model needs F32 {:?}",
                t.dtype(),
                t.shape(),
                want
            )));
        }
        params[p.offset..p.offset + p.scalar_len()].copy_from_slice(&to_f32(t.data()));
    }
    let mut optimizer = HashMap::new();
    for (name, t) in st.iter() {
        if let Some(buf) = name.strip_prefix("optimizer.") {
            if t.dtype() != Dtype::F32 || t.shape() != [params.len()] {
                return Err(mismatch(format!(
                    "optimizer buffer `{buf}` has shape {:?}, expected [{}]",
                    t.shape(),
                    params.len()
                )));
            }
            optimizer.insert(buf.to_string(), to_f32(t.data()));
        }
    }
    Ok(Checkpoint { params, optimizer, meta })
}
