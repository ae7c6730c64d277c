//! MNIST in IDX format: the reader every digit experiment starts from.
//!
//! An IDX file is a 4-byte magic (`0x00 0x00 type ndim`), `ndim` big-endian `u32` extents, then
//! the data. MNIST uses unsigned bytes (`type = 0x08`): images have `ndim = 3`
//! (`count x rows x cols`), labels `ndim = 1`. Files may be raw or gzip-compressed; which one is
//! decided by the gzip magic bytes (`1f 8b`), not by the file name, so a renamed file still
//! loads. A split is handed out as arrays — images `[count, rows, cols]`, labels `[count]` — so
//! that a batch is a view of it, to the training loop and to library users alike.
//!
//! **Guarantees:** every header field is validated (magic, element type, rank, extents), the
//! payload length must equal the product of the extents exactly (a truncated or padded file is
//! an error that names the file with the expected and found byte counts), images and labels must
//! agree in count, labels must be digits 0..=9. Nothing here panics on bad input, and a corrupt
//! header cannot make the reader allocate more than the file actually holds.

use flate2::read::GzDecoder;
use ndarray::{Array1, Array3, ArrayView2, Axis};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Pixel statistics of the MNIST training set after dividing by 255 (the values every MNIST
/// example uses; the shipped README measures 0.13066 / 0.30811).
pub const PIXEL_MEAN: f32 = 0.1307;
/// See [`PIXEL_MEAN`].
pub const PIXEL_STD: f32 = 0.3081;
/// How pixels are normalised, recorded in every run summary.
pub const NORMALISATION: &str = "x / 255, then (x - 0.1307) / 0.3081 (MNIST train mean / std)";

/// Problems reading an IDX data set. Every variant names the file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum MnistError {
    #[error("MNIST file not found: looked for {} and {}", raw.display(), gz.display())]
    #[diagnostic(
        code(symc::data::missing),
        help(
            "the folder must hold train-images-idx3-ubyte, train-labels-idx1-ubyte, \
t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (raw or .gz); point `--data DIR` at such a folder"
        )
    )]
    Missing { raw: PathBuf, gz: PathBuf },

    #[error("cannot read {}: {source}", path.display())]
    #[diagnostic(code(symc::data::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} is not a valid gzip stream: {source}", path.display())]
    #[diagnostic(
        code(symc::data::gzip),
        help("the file starts with the gzip magic bytes but does not decompress; re-download it")
    )]
    Gzip {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} is not an IDX file: {what}", path.display())]
    #[diagnostic(
        code(symc::data::header),
        help("IDX files start with 00 00 08 <rank>; MNIST images have rank 3, labels rank 1")
    )]
    Header { path: PathBuf, what: String },

    #[error("{} is truncated or corrupt: expected {expected} bytes ({what}), found {found}", path.display())]
    #[diagnostic(
        code(symc::data::size),
        help(
            "the header promises more (or less) data than the file holds; the file is damaged, re-download it"
        )
    )]
    Size { path: PathBuf, what: String, expected: u64, found: u64 },

    #[error(
        "{} holds {images} images but {} holds {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    #[diagnostic(
        code(symc::data::count),
        help(
            "images and labels must come from the same split (train-* with train-*, t10k-* with t10k-*)"
        )
    )]
    Count { images_path: PathBuf, labels_path: PathBuf, images: usize, labels: usize },

    #[error("{}: label {value} at index {index} is not a digit 0..=9", path.display())]
    #[diagnostic(code(symc::data::label), help("the label file is corrupt; re-download it"))]
    Label { path: PathBuf, index: usize, value: u8 },
}

/// A decoded IDX file of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// One split of MNIST: standardised images and their labels, as arrays.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Standardised pixels (see [`NORMALISATION`]), shape `[count, rows, cols]`.
    pub images: Array3<f32>,
    /// The digit 0..=9 of every image, shape `[count]`.
    pub labels: Array1<u8>,
    /// Where the images came from (for messages).
    pub images_path: PathBuf,
}

impl Split {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// True when the split holds no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Pixel rows of every image.
    pub fn rows(&self) -> usize {
        self.images.len_of(Axis(1))
    }
    /// Pixel columns of every image.
    pub fn cols(&self) -> usize {
        self.images.len_of(Axis(2))
    }
    /// Scalars per image.
    pub fn image_len(&self) -> usize {
        self.rows() * self.cols()
    }
    /// The standardised pixels of sample `i`, `[rows, cols]`.
    pub fn image(&self, i: usize) -> ArrayView2<'_, f32> {
        self.images.index_axis(Axis(0), i)
    }
}

/// The train and test splits of an MNIST-format folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Mnist {
    pub train: Split,
    pub test: Split,
}

/// Reads an IDX file of unsigned bytes (raw or gzip, detected by the magic bytes) and
/// validates its header and length.
pub fn read_idx(path: &Path) -> Result<Idx, MnistError> {
    let io = |source| MnistError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io)?;
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 2];
    let peeked = read_up_to(&mut reader, &mut magic).map_err(io)?;
    let prefix = &magic[..peeked];
    let gz = prefix == [0x1f, 0x8b];
    // Chain the two peeked bytes back in front of the rest of the stream.
    let raw = std::io::Cursor::new(prefix.to_vec()).chain(reader);
    if gz {
        let err = |source| MnistError::Gzip { path: path.to_path_buf(), source };
        parse_idx(path, GzDecoder::new(raw), err)
    } else {
        parse_idx(path, raw, io)
    }
}

/// Fills `buf` as far as the stream allows; returns how many bytes were read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn parse_idx(
    path: &Path,
    mut r: impl Read,
    stream_err: impl Fn(std::io::Error) -> MnistError,
) -> Result<Idx, MnistError> {
    let header_err = |what: String| MnistError::Header { path: path.to_path_buf(), what };
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut r, &mut magic).map_err(&stream_err)?;
    if got < 4 {
        return Err(MnistError::Size {
            path: path.to_path_buf(),
            what: "the 4-byte IDX magic".into(),
            expected: 4,
            found: got as u64,
        });
    }
    if magic[0] != 0 || magic[1] != 0 {
        return Err(header_err(format!(
            "magic bytes are {:02x} {:02x} {:02x} {:02x}, expected 00 00 08 <rank>",
            magic[0], magic[1], magic[2], magic[3]
        )));
    }
    if magic[2] != 0x08 {
        return Err(header_err(format!(
            "element type code 0x{:02x}, expected 0x08 (unsigned byte)",
            magic[2]
        )));
    }
    let rank = magic[3] as usize;
    if rank == 0 {
        return Err(header_err("rank 0 (no extents)".into()));
    }
    let mut ext = vec![0u8; 4 * rank];
    let got = read_up_to(&mut r, &mut ext).map_err(&stream_err)?;
    if got < ext.len() {
        return Err(MnistError::Size {
            path: path.to_path_buf(),
            what: format!("header with {rank} extents"),
            expected: (4 + ext.len()) as u64,
            found: (4 + got) as u64,
        });
    }
    let dims: Vec<usize> = ext
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let payload = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| header_err(format!("extents {dims:?} overflow")))?;
    let header = 4 + 4 * rank as u64;
    // Read at most one byte more than promised: enough to detect trailing data, and a corrupt
    // header (huge extents) cannot make us allocate more than the stream really holds.
    let mut data = Vec::with_capacity(payload.min(1 << 26) as usize);
    r.by_ref().take(payload + 1).read_to_end(&mut data).map_err(&stream_err)?;
    let found = data.len() as u64;
    if found != payload {
        // Count the whole remainder so that the message states the real file length.
        let mut found_total = found;
        if found > payload {
            let rest = std::io::copy(&mut r, &mut std::io::sink()).map_err(&stream_err)?;
            found_total += rest;
        }
        let shape = dims.iter().map(usize::to_string).collect::<Vec<_>>().join(" x ");
        return Err(MnistError::Size {
            path: path.to_path_buf(),
            what: format!("{header}-byte header + {shape} data"),
            expected: header + payload,
            found: header + found_total,
        });
    }
    Ok(Idx { dims, data })
}

/// The file for `stem` in `dir`: the raw file if present, else `stem.gz`.
pub fn find_idx(dir: &Path, stem: &str) -> Result<PathBuf, MnistError> {
    let raw = dir.join(stem);
    let gz = dir.join(format!("{stem}.gz"));
    if raw.is_file() {
        Ok(raw)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        Err(MnistError::Missing { raw, gz })
    }
}

/// Reads one split (`prefix` is `train` or `t10k`) and standardises its pixels.
pub fn load_split(dir: &Path, prefix: &str) -> Result<Split, MnistError> {
    let images_path = find_idx(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find_idx(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let raw = read_idx(&images_path)?;
    if raw.dims.len() != 3 {
        return Err(MnistError::Header {
            path: images_path,
            what: format!("rank {}, expected 3 (count x rows x cols) for images", raw.dims.len()),
        });
    }
    let labels = read_idx(&labels_path)?;
    if labels.dims.len() != 1 {
        return Err(MnistError::Header {
            path: labels_path,
            what: format!("rank {}, expected 1 (count) for labels", labels.dims.len()),
        });
    }
    let (count, rows, cols) = (raw.dims[0], raw.dims[1], raw.dims[2]);
    if count != labels.dims[0] {
        return Err(MnistError::Count {
            images_path,
            labels_path,
            images: count,
            labels: labels.dims[0],
        });
    }
    if let Some((index, &value)) = labels.data.iter().enumerate().find(|(_, v)| **v > 9) {
        return Err(MnistError::Label { path: labels_path, index, value });
    }
    let pixels = raw.data.iter().map(|&p| (p as f32 / 255.0 - PIXEL_MEAN) / PIXEL_STD).collect();
    // The payload length was checked against the extents, so the shape always fits; the error
    // is mapped all the same rather than trusted.
    let images =
        Array3::from_shape_vec((count, rows, cols), pixels).map_err(|e| MnistError::Header {
            path: images_path.clone(),
            what: format!("extents {:?}: {e}", raw.dims),
        })?;
    Ok(Split { images, labels: Array1::from(labels.data), images_path })
}

/// Loads both splits of an MNIST-format folder.
pub fn load(dir: &Path) -> Result<Mnist, MnistError> {
    let train = load_split(dir, "train")?;
    let test = load_split(dir, "t10k")?;
    if (train.rows(), train.cols()) != (test.rows(), test.cols()) {
        return Err(MnistError::Header {
            path: test.images_path.clone(),
            what: format!(
                "images are {}x{}, but the training images are {}x{}",
                test.rows(),
                test.cols(),
                train.rows(),
                train.cols()
            ),
        });
    }
    Ok(Mnist { train, test })
}
