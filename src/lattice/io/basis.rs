//! The cache file of a multigrid near-null basis: safetensors with the basis vectors and, as
//! string metadata, everything the basis depends on (the gauge configuration's fingerprint,
//! mass, c_sw, boundary phases, blocks, n_basis, chirality doubling, seed and the set-up
//! solver's parameters).
//!
//! Why: the set-up (near-null vectors by a few hundred Dirac applications) costs seconds, the
//! basis is 19 MB on 8³×16, and a run folder that trains or benchmarks a multigrid model
//! solves on one configuration many times. The metadata lets a later run reuse the file only
//! when it would compute the same basis, and say exactly why it regenerates otherwise (a
//! different configuration is recognised by its link checksum and plaquette, whatever file or
//! format it was read from). Files are written atomically (temporary file + rename).
//!
//! Layout: tensor `basis`, dtype F64, shape `[n_basis, V, 4, 3, 2]` (basis vector, site in
//! symc's lexicographic order with x fastest, spin, colour, re/im): readable from Python as
//! `safetensors.numpy.load_file(path)["basis"]`. The vectors are stored block-orthonormalised.

use super::super::blocks::{BlockBasis, Blocking, GaugeFingerprint};
use num_complex::Complex64;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Value of the `format` metadata key.
pub const FORMAT: &str = "symc-mg-basis-1";

/// Everything a near-null basis depends on. Two keys that compare equal describe the same
/// basis; [`BasisKey::differences`] names what differs.
#[derive(Clone, Debug, PartialEq)]
pub struct BasisKey {
    pub dims: [usize; 4],
    pub blocks: [usize; 4],
    pub n_basis: usize,
    pub chirality_doubled: bool,
    pub seed: u64,
    pub mass: f64,
    pub csw: f64,
    pub boundary_phases: [Complex64; 4],
    pub gauge: GaugeFingerprint,
    /// A canonical text of the set-up solver's parameters (iterations, restart, tolerance,
    /// precision): a basis made with more iterations is a different basis.
    pub setup: String,
}

fn dims_text(d: &[usize; 4]) -> String {
    d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("x")
}

impl BasisKey {
    /// The metadata entries of this key (numbers in round-trip precision).
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("format".into(), FORMAT.into());
        m.insert("dims".into(), dims_text(&self.dims));
        m.insert("blocks".into(), dims_text(&self.blocks));
        m.insert("n_basis".into(), self.n_basis.to_string());
        m.insert("chirality_doubled".into(), self.chirality_doubled.to_string());
        m.insert("seed".into(), self.seed.to_string());
        m.insert("mass".into(), format!("{:e}", self.mass));
        m.insert("csw".into(), format!("{:e}", self.csw));
        let phases: Vec<String> =
            self.boundary_phases.iter().map(|z| format!("{:e},{:e}", z.re, z.im)).collect();
        m.insert("boundary_phases".into(), phases.join(";"));
        m.insert("gauge_crc32".into(), format!("{:08x}", self.gauge.crc32));
        m.insert("gauge_plaquette".into(), format!("{:e}", self.gauge.plaquette));
        m.insert("setup".into(), self.setup.clone());
        m
    }

    /// The keys whose values differ between `self` (what a run needs) and a file's metadata,
    /// as `name: file has X, this run needs Y`.
    pub fn differences(&self, file: &BTreeMap<String, String>) -> Vec<String> {
        let want = self.to_metadata();
        want.iter()
            .filter(|(k, v)| file.get(*k) != Some(*v))
            .map(|(k, v)| {
                let have = file.get(k).map_or("nothing".to_string(), |s| format!("`{s}`"));
                format!("{k}: the file has {have}, this run needs `{v}`")
            })
            .collect()
    }
}

/// Why a cached basis cannot be read or used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BasisCacheError {
    #[error("cannot read the multigrid basis `{path}`: {source}")]
    #[diagnostic(code(symc::multigrid::cache_read))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write the multigrid basis `{path}`: {source}")]
    #[diagnostic(
        code(symc::multigrid::cache_write),
        help("check that the directory exists, is writable and has free space")
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{path}` is not a symc multigrid basis: {message}")]
    #[diagnostic(code(symc::multigrid::cache_format), help("delete it; it will be regenerated"))]
    Format { path: PathBuf, message: String },

    /// The file is a valid basis for another set-up; the caller regenerates.
    #[error("`{path}` holds a basis for a different set-up: {}", differences.join("; "))]
    #[diagnostic(code(symc::multigrid::cache_stale))]
    Stale { path: PathBuf, differences: Vec<String> },
}

/// Writes `basis` with `key` as metadata to `path`, atomically.
pub fn save(path: &Path, key: &BasisKey, basis: &BlockBasis) -> Result<(), BasisCacheError> {
    let format = |message: String| BasisCacheError::Format { path: path.into(), message };
    let n = basis.n_basis();
    let vol: usize = key.dims.iter().product();
    if basis.blocking().fine_dims() != key.dims || n != key.n_basis {
        return Err(format(format!(
            "the key describes {} vectors on {:?}, the basis has {n} on {:?}",
            key.n_basis,
            key.dims,
            basis.blocking().fine_dims()
        )));
    }
    let mut data = Vec::with_capacity(n * vol * 12 * 16);
    for v in basis.vectors() {
        for z in v {
            data.extend_from_slice(&z.re.to_le_bytes());
            data.extend_from_slice(&z.im.to_le_bytes());
        }
    }
    let view = TensorView::new(Dtype::F64, vec![n, vol, 4, 3, 2], &data)
        .map_err(|e| format(e.to_string()))?;
    let info: HashMap<String, String> = key.to_metadata().into_iter().collect();
    let bytes = safetensors::tensor::serialize([("basis".to_string(), view)], Some(info))
        .map_err(|e| format(e.to_string()))?;
    super::write_atomic(path, &bytes).map_err(|e| match e {
        super::GaugeIoError::Write { source, .. } => {
            BasisCacheError::Write { path: path.into(), source }
        }
        other => BasisCacheError::Write { path: path.into(), source: std::io::Error::other(other) },
    })
}

/// Reads the metadata of a cached basis (cheap: the header only).
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>, BasisCacheError> {
    let bytes = std::fs::read(path)
        .map_err(|source| BasisCacheError::Read { path: path.into(), source })?;
    metadata_of(path, &bytes)
}

fn metadata_of(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, String>, BasisCacheError> {
    let format = |message: String| BasisCacheError::Format { path: path.into(), message };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format(e.to_string()))?;
    let meta: BTreeMap<String, String> =
        header.metadata().clone().unwrap_or_default().into_iter().collect();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(format(format!("metadata `format` is not `{FORMAT}`")));
    }
    Ok(meta)
}

/// Loads the basis at `path` if it was made for exactly `key`; [`BasisCacheError::Stale`]
/// names the differences otherwise.
pub fn load(path: &Path, key: &BasisKey) -> Result<BlockBasis, BasisCacheError> {
    let bytes = std::fs::read(path)
        .map_err(|source| BasisCacheError::Read { path: path.into(), source })?;
    let meta = metadata_of(path, &bytes)?;
    let differences = key.differences(&meta);
    if !differences.is_empty() {
        return Err(BasisCacheError::Stale { path: path.into(), differences });
    }
    let format = |message: String| BasisCacheError::Format { path: path.into(), message };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
    let t = st.tensor("basis").map_err(|_| format("tensor `basis` is missing".into()))?;
    let vol: usize = key.dims.iter().product();
    let want = [key.n_basis, vol, 4, 3, 2];
    if t.dtype() != Dtype::F64 || t.shape() != want {
        return Err(format(format!(
            "tensor `basis` is {:?} {:?}, expected F64 {want:?}",
            t.dtype(),
            t.shape()
        )));
    }
    let vals: Vec<f64> = t
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let vectors: Vec<Vec<Complex64>> = vals
        .chunks_exact(vol * 24)
        .map(|v| v.chunks_exact(2).map(|p| Complex64::new(p[0], p[1])).collect())
        .collect();
    let blocking = Blocking::new(key.dims, key.blocks).map_err(|e| format(e.to_string()))?;
    BlockBasis::from_orthonormal(blocking, vectors, key.chirality_doubled)
        .map_err(|e| format(e.to_string()))
}
