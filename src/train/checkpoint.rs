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
