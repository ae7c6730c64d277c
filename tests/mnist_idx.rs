//! The IDX reader: the shipped MNIST files load with the published counts and statistics, and
//! every kind of damage (truncation, trailing bytes, bad magic, wrong rank, count mismatch,
//! corrupt gzip, bad labels, missing files) is a typed error naming the file, never a panic.

use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;
use std::path::{Path, PathBuf};
use symc::train::mnist::{self, MnistError, PIXEL_MEAN, PIXEL_STD};

fn repo_mnist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/data/mnist")
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A small valid data set: `n` 2x3 images with pixel value `i * 10 + j` and labels `i % 10`.
fn write_set(dir: &Path, prefix: &str, n: u32, compress: bool) {
    let pixels: Vec<u8> = (0..n).flat_map(|i| (0..6).map(move |j| (i * 10 + j) as u8)).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let files = [
        (format!("{prefix}-images-idx3-ubyte"), idx(&[n, 2, 3], &pixels)),
        (format!("{prefix}-labels-idx1-ubyte"), idx(&[n], &labels)),
    ];
    for (name, bytes) in files {
        if compress {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

#[test]
fn shipped_mnist_matches_its_readme() {
    let dir = repo_mnist();
    let m = mnist::load(&dir).expect("models/data/mnist loads");
    assert_eq!((m.train.len(), m.test.len()), (60_000, 10_000));
    assert_eq!((m.train.rows(), m.train.cols()), (28, 28));
    assert_eq!(&m.train.labels.to_vec()[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(&m.test.labels.to_vec()[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    let mut counts = [0usize; 10];
    for &l in &m.test.labels {
        counts[l as usize] += 1;
    }
    assert_eq!(counts, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    // Undo the standardisation: the README measures mean 0.13066 / std 0.30811 of x / 255.
    let raw: Vec<f64> =
        m.train.images.iter().map(|&x| (x * PIXEL_STD + PIXEL_MEAN) as f64).collect();
    let mean = raw.iter().sum::<f64>() / raw.len() as f64;
    let var = raw.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / raw.len() as f64;
    assert!((mean - 0.13066).abs() < 5e-5, "mean {mean}");
    assert!((var.sqrt() - 0.30811).abs() < 5e-5, "std {}", var.sqrt());
    let std_mean = m.train.images.iter().map(|&x| x as f64).sum::<f64>() / raw.len() as f64;
    assert!(std_mean.abs() < 1e-3, "standardised mean {std_mean}");
}

#[test]
fn raw_and_gzip_give_the_same_split_and_pixels_are_standardised() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    write_set(a.path(), "train", 7, false);
    write_set(b.path(), "train", 7, true);
    let ra = mnist::load_split(a.path(), "train").unwrap();
    let rb = mnist::load_split(b.path(), "train").unwrap();
    assert_eq!(ra.images, rb.images);
    assert_eq!(ra.labels.to_vec(), vec![0, 1, 2, 3, 4, 5, 6]);
    assert_eq!((ra.rows(), ra.cols(), ra.len()), (2, 3, 7));
    // sample 3, pixel 4 (row 1, column 1 of a 2x3 image) has raw value 34
    let want = (34.0 / 255.0 - 0.1307) / 0.3081;
    assert!((ra.image(3)[[1, 1]] - want).abs() < 1e-6);
}

#[test]
fn gzip_is_detected_by_magic_not_name() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("renamed-without-gz");
    std::fs::write(&p, gz(&idx(&[3], &[1, 2, 3]))).unwrap();
    assert_eq!(mnist::read_idx(&p).unwrap(), mnist::Idx { dims: vec![3], data: vec![1, 2, 3] });
}

fn err_of(bytes: &[u8]) -> (PathBuf, MnistError, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("f-idx");
    std::fs::write(&p, bytes).unwrap();
    let e = mnist::read_idx(&p).unwrap_err();
    (p, e, d)
}

#[test]
fn truncated_file_reports_expected_and_found_bytes() {
    let full = idx(&[4, 2, 3], &[7; 24]);
    let (p, e, _d) = err_of(&full[..30]);
    match &e {
        MnistError::Size { path, expected, found, .. } => {
            assert_eq!(path, &p);
            assert_eq!((*expected, *found), (40, 30));
        }
        other => panic!("wrong error {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains(&p.display().to_string())
            && msg.contains("expected 40 bytes")
            && msg.contains("found 30"),
        "{msg}"
    );
    // the same, gzip-compressed: sizes refer to the decompressed stream
    let (_, e, _d) = err_of(&gz(&full[..30]));
    assert!(matches!(e, MnistError::Size { expected: 40, found: 30, .. }), "{e:?}");
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = idx(&[2], &[1, 2]);
    bytes.extend_from_slice(&[9, 9, 9]);
    let (_, e, _d) = err_of(&bytes);
    assert!(matches!(e, MnistError::Size { expected: 10, found: 13, .. }), "{e:?}");
}

#[test]
fn header_damage_is_named() {
    let (_, e, _d) = err_of(&[0x89, b'P', b'N', b'G', 0, 0]);
    assert!(matches!(&e, MnistError::Header { what, .. } if what.contains("89 50 4e 47")), "{e:?}");
    let (_, e, _d) = err_of(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert!(matches!(&e, MnistError::Header { what, .. } if what.contains("0x0d")), "{e:?}");
    let (_, e, _d) = err_of(&[0, 0]);
    assert!(matches!(e, MnistError::Size { expected: 4, found: 2, .. }), "{e:?}");
    let (_, e, _d) = err_of(&[0, 0, 8, 3, 0, 0, 0, 5]);
    assert!(matches!(e, MnistError::Size { expected: 16, found: 8, .. }), "{e:?}");
    // huge extents: reported as a size problem without allocating terabytes
    let (_, e, _d) = err_of(&idx(&[u32::MAX, 1000, 1], &[1, 2, 3]));
    assert!(matches!(e, MnistError::Size { expected: 4_294_967_295_016, found: 19, .. }), "{e:?}");
    let (_, e, _d) = err_of(&idx(&[u32::MAX, u32::MAX, 16], &[1, 2, 3]));
    assert!(matches!(&e, MnistError::Header { what, .. } if what.contains("overflow")), "{e:?}");
}

#[test]
fn corrupt_gzip_stream() {
    let mut bytes = gz(&idx(&[100], &[3; 100]));
    let n = bytes.len();
    bytes.truncate(n / 2);
    let (p, e, _d) = err_of(&bytes);
    assert!(matches!(&e, MnistError::Gzip { path, .. } if path == &p), "{e:?}");
}

#[test]
fn split_level_checks() {
    let d = tempfile::tempdir().unwrap();
    // missing files
    let e = mnist::load_split(d.path(), "train").unwrap_err();
    assert!(
        matches!(&e, MnistError::Missing { raw, gz } if raw.ends_with("train-images-idx3-ubyte") && gz.ends_with("train-images-idx3-ubyte.gz")),
        "{e:?}"
    );
    // count mismatch
    write_set(d.path(), "train", 5, false);
    std::fs::write(d.path().join("train-labels-idx1-ubyte"), idx(&[4], &[1, 2, 3, 4])).unwrap();
    let e = mnist::load_split(d.path(), "train").unwrap_err();
    assert!(matches!(e, MnistError::Count { images: 5, labels: 4, .. }), "{e:?}");
    // labels that are not digits
    std::fs::write(d.path().join("train-labels-idx1-ubyte"), idx(&[5], &[1, 2, 10, 4, 5])).unwrap();
    let e = mnist::load_split(d.path(), "train").unwrap_err();
    assert!(matches!(e, MnistError::Label { index: 2, value: 10, .. }), "{e:?}");
    // images of the wrong rank
    std::fs::write(d.path().join("train-images-idx3-ubyte"), idx(&[5, 6], &[0; 30])).unwrap();
    let e = mnist::load_split(d.path(), "train").unwrap_err();
    assert!(matches!(&e, MnistError::Header { what, .. } if what.contains("rank 2")), "{e:?}");
}

#[test]
fn raw_file_next_to_gz_takes_precedence() {
    // The acceptance check puts a truncated raw test-image file into a folder of .gz files.
    let d = tempfile::tempdir().unwrap();
    write_set(d.path(), "t10k", 3, true);
    let full = idx(&[3, 2, 3], &[1; 18]);
    std::fs::write(d.path().join("t10k-images-idx3-ubyte"), &full[..20]).unwrap();
    let e = mnist::load_split(d.path(), "t10k").unwrap_err();
    assert!(matches!(e, MnistError::Size { expected: 34, found: 20, .. }), "{e:?}");
}
