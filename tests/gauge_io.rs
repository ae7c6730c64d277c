//! Gauge file formats against real files from lattice codes (plaquettes recomputed
//! independently, header checksums), corrupted copies of them, and round trips.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use symc::lattice::gauge::GaugeField;
use symc::lattice::io::{
    GaugeFile, GaugeFormat, GaugeIoError, LayoutHints, Precision, Provenance, ReadOptions,
    TimestampStyle, WriteOptions, read_gauge, read_gauge_with, utc_timestamp, write_gauge,
};

/// `../shared/data/gauge` next to the repository (CI layout), or `$SYMC_DATA/gauge` when set
/// (worktrees that live elsewhere).
fn data_dir() -> Option<PathBuf> {
    let root = std::env::var_os("SYMC_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let d = root.join("gauge");
    if d.is_dir() {
        Some(d)
    } else {
        eprintln!("SKIPPED: {} not found; real-file gauge tests did not run", d.display());
        None
    }
}

/// (file, format, bits, dims, P, P_ss, P_st, tolerance, has checksum): the README table
/// ("computed" column, recomputed there by an independent numpy reader).
const TABLE: &[(&str, GaugeFormat, u32, [usize; 4], f64, f64, f64, f64, bool)] = &[
    (
        "ddalphaamg/4x4x4x4b6.0000id3n1",
        GaugeFormat::DdalphaAmg,
        64,
        [4, 4, 4, 4],
        0.5955652897,
        0.5881220,
        0.6030086,
        1e-9,
        false,
    ),
    (
        "ddalphaamg/8x8x8x8b6.0000id3n1",
        GaugeFormat::DdalphaAmg,
        64,
        [8, 8, 8, 8],
        0.5924316992,
        0.5916179,
        0.5932455,
        1e-9,
        false,
    ),
    (
        "milc/lat.sample.l4444",
        GaugeFormat::Milc,
        32,
        [4, 4, 4, 4],
        0.5948502,
        0.5982251,
        0.5914753,
        1e-6,
        true,
    ),
    (
        "milc/lat.sample.l4444.ildg",
        GaugeFormat::Ildg,
        32,
        [4, 4, 4, 4],
        0.5948502,
        0.5982251,
        0.5914753,
        1e-6,
        true,
    ),
    (
        "milc/lat.sample.l4444.scidac",
        GaugeFormat::Ildg,
        32,
        [4, 4, 4, 4],
        0.5948502,
        0.5982251,
        0.5914753,
        1e-6,
        true,
    ),
    (
        "milc/lat.sample.l4448",
        GaugeFormat::Milc,
        32,
        [4, 4, 4, 8],
        0.5690557,
        0.5745828,
        0.5635287,
        1e-6,
        true,
    ),
    (
        "milc/lat.sample.l4448.scidac",
        GaugeFormat::Ildg,
        32,
        [4, 4, 4, 8],
        0.5690557,
        0.5745828,
        0.5635287,
        1e-6,
        true,
    ),
    (
        "milc/lat.sample.l4448.foreign",
        GaugeFormat::Ildg,
        32,
        [4, 4, 4, 8],
        0.5690557,
        0.5745828,
        0.5635287,
        1e-6,
        false,
    ),
    (
        "chroma/t_nersc.cfg",
        GaugeFormat::Nersc,
        32,
        [4, 4, 4, 4],
        0.0382422893,
        0.0441657,
        0.0323189,
        1e-9,
        true,
    ),
    (
        "pyquda/weak_field.lime",
        GaugeFormat::Ildg,
        64,
        [4, 4, 4, 8],
        0.9948041,
        0.9947986,
        0.9948097,
        1e-6,
        true,
    ),
];

#[test]
fn every_shared_file_loads_with_its_reference_plaquette() {
    let Some(dir) = data_dir() else { return };
    for &(name, format, bits, dims, p, ss, st, tol, has_checksum) in TABLE {
        let f = read_gauge(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(f.format, format, "{name}");
        assert_eq!(f.precision_bits, bits, "{name}");
        assert_eq!(f.field.dims(), dims, "{name}");
        let (pp, pss, pst) = f.field.plaquette_parts();
        assert!((pp - p).abs() <= tol, "{name}: plaquette {pp} vs {p}");
        assert!((pss - ss).abs() <= 1e-6, "{name}: spatial {pss} vs {ss}");
        assert!((pst - st).abs() <= 1e-6, "{name}: temporal {pst} vs {st}");
        assert_eq!(f.checksum_ok(), if has_checksum { Some(true) } else { None }, "{name}");
        assert!(f.all_ok() && !f.checks.is_empty(), "{name}: {:?}", f.checks);
    }
}

#[test]
fn header_values_are_the_published_ones() {
    let Some(dir) = data_dir() else { return };
    let n = read_gauge(&dir.join("chroma/t_nersc.cfg")).unwrap();
    assert_eq!(n.header_plaquette, Some(0.0382422893));
    assert_eq!(n.header_link_trace, Some(0.4630322094));
    assert!((n.field.link_trace() - 0.4630322094).abs() < 1e-7);
    let c = n.checks.iter().find(|c| c.name == "NERSC CHECKSUM").unwrap();
    assert_eq!((c.expected.as_str(), c.found.as_str()), ("717938df", "717938df"));
    let m = read_gauge(&dir.join("milc/lat.sample.l4444")).unwrap();
    let found: Vec<&str> =
        m.checks.iter().filter(|c| c.is_checksum()).map(|c| c.found.as_str()).collect();
    assert_eq!(found, ["2352c05", "d137321d"]);
    let m = read_gauge(&dir.join("milc/lat.sample.l4448")).unwrap();
    assert!(m.big_endian);
    let found: Vec<&str> =
        m.checks.iter().filter(|c| c.is_checksum()).map(|c| c.found.as_str()).collect();
    assert_eq!(found, ["13f3b413", "161f7dde"]);
    let d = read_gauge(&dir.join("ddalphaamg/8x8x8x8b6.0000id3n1")).unwrap();
    assert_eq!(d.header_plaquette, Some(1.7772950976129867 / 3.0));
}

fn max_dist(a: &GaugeField, b: &GaugeField) -> f64 {
    assert_eq!(a.dims(), b.dims());
    a.links.iter().zip(&b.links).map(|(x, y)| x.dist(y)).fold(0.0, f64::max)
}

#[test]
fn twin_files_hold_identical_links() {
    let Some(dir) = data_dir() else { return };
    for group in [
        ["milc/lat.sample.l4444", "milc/lat.sample.l4444.ildg", "milc/lat.sample.l4444.scidac"],
        ["milc/lat.sample.l4448", "milc/lat.sample.l4448.scidac", "milc/lat.sample.l4448.foreign"],
    ] {
        let a = read_gauge(&dir.join(group[0])).unwrap().field;
        for other in &group[1..] {
            let b = read_gauge(&dir.join(other)).unwrap().field;
            assert_eq!(max_dist(&a, &b), 0.0, "{} vs {other}", group[0]);
        }
    }
}

#[test]
fn format_is_detected_from_content_not_extension() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("looks_like.nersc");
    std::fs::copy(dir.join("milc/lat.sample.l4444"), &p).unwrap();
    assert_eq!(read_gauge(&p).unwrap().format, GaugeFormat::Milc);
    let p = tmp.path().join("conf.lime");
    std::fs::copy(dir.join("chroma/t_nersc.cfg"), &p).unwrap();
    assert_eq!(read_gauge(&p).unwrap().format, GaugeFormat::Nersc);
}

/// Writes a modified copy of a shared file into `tmp` and reads it.
fn read_modified(
    dir: &Path,
    tmp: &Path,
    name: &str,
    edit: impl FnOnce(&mut Vec<u8>),
) -> Result<GaugeFile, GaugeIoError> {
    let mut bytes = std::fs::read(dir.join(name)).unwrap();
    edit(&mut bytes);
    let p = tmp.join(name.replace('/', "_"));
    std::fs::write(&p, &bytes).unwrap();
    read_gauge(&p)
}

/// The error must name the file (the copy) and, for failed checks, expected and found.
fn assert_names_file(e: &GaugeIoError, name: &str) {
    let msg = e.to_string();
    assert!(msg.contains(&name.replace('/', "_")), "message does not name the file: {msg}");
}

#[test]
fn truncated_copies_are_rejected() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for &(name, ..) in TABLE {
        for cut in [1usize, 100, 5000] {
            let e = read_modified(&dir, tmp.path(), name, |b| b.truncate(b.len() - cut))
                .expect_err(&format!("{name} cut by {cut} was accepted"));
            assert_names_file(&e, name);
            assert!(
                matches!(e, GaugeIoError::Truncated { .. } | GaugeIoError::WrongSize { .. }),
                "{name} cut by {cut}: {e}"
            );
        }
        let e = read_modified(&dir, tmp.path(), name, |b| b.truncate(10)).unwrap_err();
        assert!(!matches!(e, GaugeIoError::Read { .. }), "{name}: {e}");
    }
}

#[test]
fn extended_copies_are_rejected() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for &(name, ..) in TABLE {
        let e = read_modified(&dir, tmp.path(), name, |b| b.extend_from_slice(&[7u8; 72]))
            .expect_err(&format!("{name} with 72 extra bytes was accepted"));
        assert_names_file(&e, name);
    }
}

/// Offset of the middle of the link data (any format: the payload is the file's bulk).
fn mid_payload(len: usize) -> usize {
    len / 2
}

#[test]
fn a_flipped_bit_is_caught_by_the_checksum() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for &(name, _, _, _, _, _, _, _, has_checksum) in TABLE.iter().filter(|t| t.8) {
        assert!(has_checksum);
        // A low mantissa bit: invisible to plaquette and unitarity, visible to any checksum.
        for bit in [0u8, 3] {
            let e = read_modified(&dir, tmp.path(), name, |b| {
                let i = mid_payload(b.len());
                // The last byte of a big-endian word holds the low mantissa bits; for the
                // little-endian MILC file the first byte does. Either way one bit flips.
                b[i] ^= 1 << bit;
            })
            .expect_err(&format!("{name} with a flipped bit was accepted"));
            assert_names_file(&e, name);
            match &e {
                GaugeIoError::CheckFailed { check, expected, found, .. } => {
                    assert!(check.to_lowercase().contains("checksum"), "{name}: {e}");
                    assert_ne!(expected, found);
                }
                _ => panic!("{name}: expected a checksum failure, got {e}"),
            }
        }
    }
}

#[test]
fn formats_without_checksums_catch_damaged_numbers() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // DDalphaAMG (little-endian f64): flip the top exponent bit of a double.
    let name = "ddalphaamg/4x4x4x4b6.0000id3n1";
    let e = read_modified(&dir, tmp.path(), name, |b| b[24 + 8 * 1001 + 7] ^= 0x40).unwrap_err();
    assert!(matches!(e, GaugeIoError::CheckFailed { .. }), "{e}");
    assert_names_file(&e, name);
    // Even a sign flip of one element keeps |U| but breaks the plaquette or unitarity.
    let e = read_modified(&dir, tmp.path(), name, |b| b[24 + 8 * 1001 + 7] ^= 0x80).unwrap_err();
    assert!(matches!(e, GaugeIoError::CheckFailed { .. }), "{e}");
    // ILDG without a scidac-checksum record (big-endian f32): flip an exponent bit.
    let name = "milc/lat.sample.l4448.foreign";
    let e = read_modified(&dir, tmp.path(), name, |b| {
        let i = b.len() - 1000;
        let i = i - (i % 4); // first byte of a big-endian float: sign and exponent
        b[i] ^= 0x20;
    })
    .unwrap_err();
    match &e {
        GaugeIoError::CheckFailed { check, .. } => assert!(check.contains("unitarity"), "{e}"),
        _ => panic!("{e}"),
    }
    // The same damage with verification off is reported, not fatal.
    let mut bytes = std::fs::read(dir.join(name)).unwrap();
    let i = bytes.len() - 1000;
    bytes[i - (i % 4)] ^= 0x20;
    let p = tmp.path().join("lenient");
    std::fs::write(&p, &bytes).unwrap();
    let f = read_gauge_with(&p, &ReadOptions { verify: false, ..Default::default() }).unwrap();
    assert!(!f.all_ok());
}

fn edit_text(b: &mut Vec<u8>, from: &str, to: &str) {
    let pos = b.windows(from.len()).position(|w| w == from.as_bytes()).expect("pattern in file");
    b.splice(pos..pos + from.len(), to.bytes());
}

#[test]
fn bad_headers_are_rejected_with_what_was_expected() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let nersc = "chroma/t_nersc.cfg";
    // Wrong dimensions: the payload no longer matches.
    let e = read_modified(&dir, t, nersc, |b| edit_text(b, "DIMENSION_4 = 4", "DIMENSION_4 = 8"))
        .unwrap_err();
    assert!(matches!(e, GaugeIoError::Truncated { .. }), "{e}");
    let e = read_modified(&dir, t, nersc, |b| edit_text(b, "DIMENSION_4 = 4", "DIMENSION_4 = 2"))
        .unwrap_err();
    assert!(matches!(e, GaugeIoError::WrongSize { .. }), "{e}");
    let e = read_modified(&dir, t, nersc, |b| edit_text(b, "DIMENSION_4 = 4", "DIMENSION_4 = x"))
        .unwrap_err();
    assert!(
        matches!(e, GaugeIoError::BadHeader { .. }) && e.to_string().contains("DIMENSION_4"),
        "{e}"
    );
    let e = read_modified(&dir, t, nersc, |b| edit_text(b, "4D_SU3_GAUGE", "4D_SU2_GAUGE"))
        .unwrap_err();
    assert!(e.to_string().contains("DATATYPE") && e.to_string().contains("4D_SU2_GAUGE"), "{e}");
    let e = read_modified(&dir, t, nersc, |b| edit_text(b, "IEEE32BIG", "IEEE33BIG")).unwrap_err();
    assert!(e.to_string().contains("FLOATING_POINT"), "{e}");
    // Header values that disagree with the data.
    let e = read_modified(&dir, t, nersc, |b| {
        edit_text(b, "CHECKSUM = 717938df", "CHECKSUM = 717938de")
    })
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("CHECKSUM") && msg.contains("717938de") && msg.contains("717938df"),
        "{msg}"
    );
    let e = read_modified(&dir, t, nersc, |b| {
        edit_text(b, "PLAQUETTE = 0.0382422893", "PLAQUETTE = 0.0382622893")
    })
    .unwrap_err();
    assert!(e.to_string().contains("PLAQUETTE"), "{e}");
    // 2e-6 off is inside Grid's 1e-5 tolerance: accepted.
    read_modified(&dir, t, nersc, |b| {
        edit_text(b, "PLAQUETTE = 0.0382422893", "PLAQUETTE = 0.0382442893")
    })
    .unwrap();
    let e = read_modified(&dir, t, nersc, |b| {
        edit_text(b, "LINK_TRACE = 0.4630322094", "LINK_TRACE = 0.4630342094")
    })
    .unwrap_err();
    assert!(e.to_string().contains("LINK_TRACE"), "{e}");
    let e =
        read_modified(&dir, t, nersc, |b| edit_text(b, "END_HEADER", "END_HEADEX")).unwrap_err();
    assert!(matches!(e, GaugeIoError::Truncated { .. } | GaugeIoError::BadHeader { .. }), "{e}");

    // MILC: dimensions and site order.
    let milc = "milc/lat.sample.l4444";
    let e = read_modified(&dir, t, milc, |b| b[4] = 5).unwrap_err();
    assert!(matches!(e, GaugeIoError::WrongSize { .. } | GaugeIoError::Truncated { .. }), "{e}");
    let e = read_modified(&dir, t, milc, |b| b[84] = 1).unwrap_err();
    assert!(matches!(e, GaugeIoError::Unsupported { .. }), "{e}");
    let e = read_modified(&dir, t, milc, |b| b[88] ^= 1).unwrap_err();
    assert!(e.to_string().contains("sum29"), "{e}");
    let e = read_modified(&dir, t, milc, |b| b[0] ^= 0xff).unwrap_err();
    assert!(matches!(e, GaugeIoError::UnknownFormat { .. }), "{e}");

    // LIME: precision and extents in the XML, the checksum record, the record magic.
    let ildg = "milc/lat.sample.l4444.ildg";
    let e = read_modified(&dir, t, ildg, |b| edit_text(b, "<lt>4</lt>", "<lt>8</lt>")).unwrap_err();
    assert!(matches!(e, GaugeIoError::BadHeader { .. } | GaugeIoError::WrongSize { .. }), "{e}");
    let e = read_modified(&dir, t, ildg, |b| edit_text(b, "<precision>32<", "<precision>64<"))
        .unwrap_err();
    assert!(matches!(e, GaugeIoError::BadHeader { .. } | GaugeIoError::WrongSize { .. }), "{e}");
    let e = read_modified(&dir, t, ildg, |b| edit_text(b, "<suma>37affb9c", "<suma>37affb9d"))
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("suma") && msg.contains("37affb9c") && msg.contains("37affb9d"), "{msg}");
    let e = read_modified(&dir, t, ildg, |b| edit_text(b, "su3gauge", "su2gauge")).unwrap_err();
    assert!(e.to_string().contains("su2gauge"), "{e}");
    let e = read_modified(&dir, t, ildg, |b| b[144 + 152] ^= 0x01).unwrap_err();
    assert!(e.to_string().contains("magic"), "{e}");

    // DDalphaAMG: extents and the header plaquette.
    let dd = "ddalphaamg/4x4x4x4b6.0000id3n1";
    let e = read_modified(&dir, t, dd, |b| b[0] = 8).unwrap_err();
    assert!(matches!(e, GaugeIoError::Truncated { .. }), "{e}");
    let e = read_modified(&dir, t, dd, |b| b[21] ^= 0x10).unwrap_err();
    assert!(e.to_string().contains("plaquette"), "{e}");

    // Not a gauge file at all.
    let p = t.join("text.txt");
    std::fs::write(&p, b"hello, this is not a lattice").unwrap();
    assert!(matches!(read_gauge(&p), Err(GaugeIoError::UnknownFormat { .. })));
    let p = t.join("empty");
    std::fs::write(&p, b"").unwrap();
    assert!(matches!(read_gauge(&p), Err(GaugeIoError::UnknownFormat { .. })));
    assert!(matches!(read_gauge(&t.join("missing")), Err(GaugeIoError::Read { .. })));
}

fn random_field(dims: [usize; 4], seed: u64) -> GaugeField {
    GaugeField::random(dims, &mut ChaCha8Rng::seed_from_u64(seed))
}

#[test]
fn round_trips_in_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let field = random_field([4, 2, 2, 6], 3);
    let cases: Vec<(GaugeFormat, Precision, bool, bool)> = vec![
        (GaugeFormat::Nersc, Precision::F64, false, false),
        (GaugeFormat::Nersc, Precision::F64, false, true),
        (GaugeFormat::Nersc, Precision::F32, false, false),
        (GaugeFormat::Nersc, Precision::F32, false, true),
        (GaugeFormat::Nersc, Precision::F64, true, false),
        (GaugeFormat::Nersc, Precision::F32, true, true),
        (GaugeFormat::Ildg, Precision::F64, false, false),
        (GaugeFormat::Ildg, Precision::F32, false, false),
        (GaugeFormat::Milc, Precision::F32, false, false),
        (GaugeFormat::Milc, Precision::F32, false, true),
        (GaugeFormat::DdalphaAmg, Precision::F64, false, false),
    ];
    for (i, &(format, precision, two_rows, little)) in cases.iter().enumerate() {
        let opts = WriteOptions {
            precision,
            nersc_two_rows: two_rows,
            little_endian: little,
            ..Default::default()
        };
        let p = tmp.path().join(format!("rt{i}"));
        write_gauge(&p, &field, format, &opts).unwrap();
        let back = read_gauge(&p).unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(back.format, format, "case {i}");
        assert_eq!(back.precision_bits, precision.bits(), "case {i}");
        let d = max_dist(&field, &back.field);
        let tol = match (precision, two_rows) {
            (Precision::F64, false) => 0.0,
            (Precision::F64, true) => 1e-14,
            (Precision::F32, _) => 1e-6,
        };
        assert!(d <= tol, "case {i} {format:?} {precision:?} two_rows={two_rows}: distance {d}");
        assert!(back.all_ok(), "case {i}");
        // Writing what was read gives the same bytes (except time stamps): compare the field again.
        let p2 = tmp.path().join(format!("rt{i}b"));
        write_gauge(&p2, &back.field, format, &opts).unwrap();
        assert_eq!(max_dist(&back.field, &read_gauge(&p2).unwrap().field), 0.0, "case {i}");
    }
    // Only the files we wrote are left: no temporary files.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2 * cases.len());
}

#[test]
fn formats_reject_precisions_they_cannot_store() {
    let tmp = tempfile::tempdir().unwrap();
    let field = random_field([2, 2, 2, 2], 1);
    let p = tmp.path().join("x");
    let f64o = WriteOptions { precision: Precision::F64, ..Default::default() };
    let f32o = WriteOptions { precision: Precision::F32, ..Default::default() };
    assert!(matches!(
        write_gauge(&p, &field, GaugeFormat::Milc, &f64o),
        Err(GaugeIoError::Unsupported { .. })
    ));
    assert!(matches!(
        write_gauge(&p, &field, GaugeFormat::DdalphaAmg, &f32o),
        Err(GaugeIoError::Unsupported { .. })
    ));
    assert!(!p.exists());
    let e = write_gauge(&tmp.path().join("no/such/dir/x"), &field, GaugeFormat::Nersc, &f64o)
        .unwrap_err();
    assert!(matches!(e, GaugeIoError::Write { .. }), "{e}");
}

#[test]
fn real_file_converts_between_formats_without_loss() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = read_gauge(&dir.join("milc/lat.sample.l4448")).unwrap();
    let f32o = WriteOptions { precision: Precision::F32, ..Default::default() };
    for format in [GaugeFormat::Nersc, GaugeFormat::Ildg, GaugeFormat::Milc] {
        let p = tmp.path().join(format.name());
        write_gauge(&p, &src.field, format, &f32o).unwrap();
        let back = read_gauge(&p).unwrap();
        assert_eq!(max_dist(&src.field, &back.field), 0.0, "{format:?}");
        assert!((back.field.plaquette() - 0.5690557).abs() < 1e-6);
    }
    // Our ILDG writer reproduces MILC's SciDAC checksum of the same links.
    let ildg = read_gauge(&tmp.path().join("ildg")).unwrap();
    let sums: Vec<&str> =
        ildg.checks.iter().filter(|c| c.is_checksum()).map(|c| c.found.as_str()).collect();
    let orig = read_gauge(&dir.join("milc/lat.sample.l4448.scidac")).unwrap();
    let want: Vec<&str> =
        orig.checks.iter().filter(|c| c.is_checksum()).map(|c| c.found.as_str()).collect();
    assert_eq!(sums, want);
}

#[test]
fn unit_field_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("unit.nersc");
    write_gauge(&p, &GaugeField::unit([2, 2, 2, 4]), GaugeFormat::Nersc, &WriteOptions::default())
        .unwrap();
    let f = read_gauge(&p).unwrap();
    assert_eq!(f.header_plaquette, Some(1.0));
    assert_eq!(f.header_link_trace, Some(1.0));
}

/// The header and run-folder time formats, against `date -u` (an independent calendar).
#[test]
fn timestamps_keep_their_formats() {
    use std::time::{Duration, UNIX_EPOCH};
    let cases: [(i64, &str, &str); 6] = [
        (1_796_460_112, "Sat Dec  5 08:41:52 2026 UTC", "20261205-084152"),
        (1_709_251_199, "Thu Feb 29 23:59:59 2024 UTC", "20240229-235959"),
        (951_782_400, "Tue Feb 29 00:00:00 2000 UTC", "20000229-000000"),
        (946_598_407, "Fri Dec 31 00:00:07 1999 UTC", "19991231-000007"),
        (0, "Thu Jan  1 00:00:00 1970 UTC", "19700101-000000"),
        (-86_400, "Wed Dec 31 00:00:00 1969 UTC", "19691231-000000"),
    ];
    for (secs, header, compact) in cases {
        let at = if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        };
        assert_eq!(utc_timestamp(at, TimestampStyle::Header), header);
        assert_eq!(utc_timestamp(at, TimestampStyle::Compact), compact);
    }
    // What the writers put in a header today has the same shape.
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("t.nersc");
    write_gauge(&p, &GaugeField::unit([2, 2, 2, 2]), GaugeFormat::Nersc, &WriteOptions::default())
        .unwrap();
    let f = read_gauge(&p).unwrap();
    let date = &f.metadata.iter().find(|(k, _)| k == "CREATION_DATE").unwrap().1;
    let now = utc_timestamp(std::time::SystemTime::now(), TimestampStyle::Header);
    assert_eq!((date.len(), &date[date.len() - 4..]), (now.len(), " UTC"), "{date}");
}

// ---- LIME files whose only record is the binary data ---------------------------------------

/// The (type, payload) records of a LIME file (144-byte big-endian headers, 8-byte padding).
fn lime_records(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < bytes.len() {
        let h = &bytes[off..off + 144];
        let len = u64::from_be_bytes(h[8..16].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&h[16..]).trim_end_matches('\0').to_string();
        out.push((kind, bytes[off + 144..off + 144 + len].to_vec()));
        off = (off + 144 + len).div_ceil(8) * 8;
    }
    out
}

/// One LIME record (message begin and end set: it is the whole file), payload padded to 8.
fn lime_record(kind: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0x4567_89abu32.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&0xc000u16.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    let mut t = [0u8; 128];
    t[..kind.len()].copy_from_slice(kind.as_bytes());
    out.extend_from_slice(&t);
    out.extend_from_slice(payload);
    out.resize(out.len().div_ceil(8) * 8, 0);
    out
}

/// The binary record of a LIME file (`ildg-binary-data` or `scidac-binary-data`): its type and
/// payload, with every XML record dropped.
fn binary_record(lime: &[u8]) -> (String, Vec<u8>) {
    lime_records(lime)
        .into_iter()
        .find(|(k, _)| k == "ildg-binary-data" || k == "scidac-binary-data")
        .expect("a binary record")
}

/// Writes a copy of `lime` that holds only its binary record (payload edited by `edit`).
fn write_bare(lime: &[u8], path: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let (kind, mut payload) = binary_record(lime);
    edit(&mut payload);
    std::fs::write(path, lime_record(&kind, &payload)).unwrap();
}

fn hinted(dims: Option<[usize; 4]>, precision: Option<Precision>) -> ReadOptions {
    ReadOptions {
        hints: LayoutHints { dims, precision, ..Default::default() },
        ..Default::default()
    }
}

fn help_of(e: &GaugeIoError) -> String {
    use miette::Diagnostic;
    e.help().map(|h| h.to_string()).unwrap_or_default()
}

#[test]
fn bare_lime_of_a_hypercubic_lattice_loads_with_inferred_layout() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for name in ["milc/lat.sample.l4444.ildg", "milc/lat.sample.l4444.scidac"] {
        let full = read_gauge(&dir.join(name)).unwrap();
        let p = tmp.path().join("bare.lime");
        write_bare(&std::fs::read(dir.join(name)).unwrap(), &p, |_| {});
        let f = read_gauge(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((f.field.dims(), f.precision_bits), ([4, 4, 4, 4], 32), "{name}");
        assert!((f.field.plaquette() - 0.5948502).abs() <= 2e-6, "{name}");
        assert_eq!(max_dist(&f.field, &full.field), 0.0, "{name}");
        assert_eq!(
            (f.dims_from, f.precision_from),
            (Provenance::PayloadSize, Provenance::PayloadSize)
        );
        let note = f.layout_note().expect("an inferred layout is reported");
        assert!(
            note.contains("4x4x4x4") && note.contains("inferred from the payload size"),
            "{note}"
        );
        assert!(f.all_ok() && f.checks.iter().any(|c| c.name.contains("unitarity")));
        // Hints that agree with the inference change nothing but the provenance.
        let g = read_gauge_with(&p, &hinted(Some([4, 4, 4, 4]), Some(Precision::F32))).unwrap();
        assert_eq!(max_dist(&g.field, &full.field), 0.0);
        assert_eq!((g.dims_from, g.precision_from), (Provenance::Hint, Provenance::Hint));
    }
    // Files that state their layout say so.
    let f = read_gauge(&dir.join("milc/lat.sample.l4444.ildg")).unwrap();
    assert_eq!(
        (f.dims_from, f.precision_from, f.layout_note()),
        (Provenance::Header, Provenance::Header, None)
    );
}

#[test]
fn bare_lime_of_4x4x4x8_needs_dims_and_says_what_to_pass() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bare4448.lime");
    let full = read_gauge(&dir.join("milc/lat.sample.l4448.scidac")).unwrap();
    write_bare(&std::fs::read(dir.join("milc/lat.sample.l4448.scidac")).unwrap(), &p, |_| {});
    // 147456 bytes are 4^4 sites at f64 (the one hypercubic reading) or 512 sites at f32: the
    // f64 guess gives non-unitary links, and the error says so and what to pass instead.
    let e = read_gauge(&p).unwrap_err();
    let (msg, help) = (e.to_string(), help_of(&e));
    assert!(matches!(e, GaugeIoError::Layout { .. }), "{e}");
    assert!(
        msg.contains("bare4448.lime") && msg.contains("f64") && msg.contains("not SU(3)"),
        "{msg}"
    );
    assert!(
        help.contains("512 sites at f32") && help.contains("`--dims 4x4x4x8 --precision f32`"),
        "{help}"
    );
    // With --no-verify the same reading is returned, flagged.
    let f = read_gauge_with(&p, &ReadOptions { verify: false, ..Default::default() }).unwrap();
    assert!(!f.all_ok());
    assert!(f.metadata.iter().any(|(k, _)| k == "layout warning"));

    // --dims alone settles it (the size leaves only f32), as does --dims with --precision.
    for prec in [None, Some(Precision::F32)] {
        let f = read_gauge_with(&p, &hinted(Some([4, 4, 4, 8]), prec)).unwrap();
        assert_eq!((f.field.dims(), f.precision_bits), ([4, 4, 4, 8], 32));
        assert!((f.field.plaquette() - 0.5690557).abs() <= 2e-6);
        assert_eq!(max_dist(&f.field, &full.field), 0.0);
        assert_eq!(f.dims_from, Provenance::Hint);
        let want = if prec.is_some() { Provenance::Hint } else { Provenance::PayloadSize };
        assert_eq!(f.precision_from, want);
    }
    // --precision alone: 512 sites is no L^4, so the extents must be given.
    let e = read_gauge_with(&p, &hinted(None, Some(Precision::F32))).unwrap_err();
    assert!(matches!(e, GaugeIoError::Layout { .. }), "{e}");
    assert!(e.to_string().contains("512 sites"), "{e}");
    assert!(help_of(&e).contains("`--dims 4x4x4x8 --precision f32`"), "{}", help_of(&e));
    // A wrong precision given by hand is caught the same way as a wrong guess.
    let e = read_gauge_with(&p, &hinted(Some([4, 4, 4, 4]), Some(Precision::F64))).unwrap_err();
    assert!(
        e.to_string().contains("given on the command line") && e.to_string().contains("not SU(3)"),
        "{e}"
    );
    assert!(help_of(&e).contains("f32"), "{}", help_of(&e));
    // Extents that fit neither precision.
    let e = read_gauge_with(&p, &hinted(Some([4, 4, 4, 6]), None)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("--dims 4x4x4x6") && msg.contains("147456"), "{msg}");
    // The flag names in the diagnostics are the calling command's.
    let mut opts = hinted(None, Some(Precision::F32));
    opts.hints.flags =
        symc::lattice::io::HintFlags { dims: "--gauge-dims", precision: "--gauge-precision" };
    let e = read_gauge_with(&p, &opts).unwrap_err();
    assert!(
        help_of(&e).contains("`--gauge-dims 4x4x4x8 --gauge-precision f32`"),
        "{}",
        help_of(&e)
    );
}

#[test]
fn hints_that_contradict_a_file_are_errors() {
    let Some(dir) = data_dir() else { return };
    let ildg = dir.join("milc/lat.sample.l4444.ildg");
    let e = read_gauge_with(&ildg, &hinted(Some([4, 4, 4, 8]), None)).unwrap_err();
    assert!(matches!(e, GaugeIoError::HintConflict { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("--dims 4x4x4x8") && msg.contains("4x4x4x4") && msg.contains("ildg-format"),
        "{msg}"
    );
    let e = read_gauge_with(&ildg, &hinted(None, Some(Precision::F64))).unwrap_err();
    assert!(e.to_string().contains("--precision f64") && e.to_string().contains("f32"), "{e}");
    // SciDAC-only files state theirs in other records; other formats in their headers.
    let e = read_gauge_with(
        &dir.join("milc/lat.sample.l4448.scidac"),
        &hinted(Some([4, 4, 4, 4]), None),
    )
    .unwrap_err();
    assert!(e.to_string().contains("scidac-private-file-xml"), "{e}");
    for name in ["milc/lat.sample.l4444", "chroma/t_nersc.cfg", "ddalphaamg/4x4x4x4b6.0000id3n1"] {
        let e = read_gauge_with(&dir.join(name), &hinted(Some([4, 4, 4, 8]), None)).unwrap_err();
        assert!(matches!(e, GaugeIoError::HintConflict { .. }), "{name}: {e}");
        assert!(e.to_string().contains("header"), "{name}: {e}");
    }
    let e = read_gauge_with(
        &dir.join("ddalphaamg/4x4x4x4b6.0000id3n1"),
        &hinted(None, Some(Precision::F32)),
    )
    .unwrap_err();
    assert!(matches!(e, GaugeIoError::HintConflict { .. }), "{e}");
    // Hints that agree are harmless.
    let f = read_gauge_with(&ildg, &hinted(Some([4, 4, 4, 4]), Some(Precision::F32))).unwrap();
    assert_eq!((f.dims_from, f.precision_from), (Provenance::Header, Provenance::Header));
}

#[test]
fn truncated_bare_lime_is_rejected() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = std::fs::read(dir.join("milc/lat.sample.l4444.ildg")).unwrap();
    let p = tmp.path().join("cut.lime");
    // The file ends before the record header says it does.
    write_bare(&src, &p, |_| {});
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.truncate(bytes.len() - 5000);
    std::fs::write(&p, &bytes).unwrap();
    let e = read_gauge(&p).unwrap_err();
    assert!(matches!(e, GaugeIoError::Truncated { .. }), "{e}");
    assert_names_file(&e, "cut.lime");
    // A record that is consistent but short of a whole site.
    write_bare(&src, &p, |b| b.truncate(b.len() - 100));
    let e = read_gauge(&p).unwrap_err();
    assert!(matches!(e, GaugeIoError::Layout { .. }), "{e}");
    assert!(
        e.to_string().contains("73628 bytes")
            && e.to_string().contains("not a whole number of sites"),
        "{e}"
    );
    assert!(help_of(&e).contains("truncated"), "{}", help_of(&e));
    // One site short: 255 sites at f32 is no L^4 lattice, and hints that fit 256 sites say so.
    write_bare(&src, &p, |b| b.truncate(b.len() - 288));
    let e = read_gauge(&p).unwrap_err();
    assert!(e.to_string().contains("255 sites at f32"), "{e}");
    let e = read_gauge_with(&p, &hinted(Some([4, 4, 4, 4]), Some(Precision::F32))).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("needs 73728 bytes") && msg.contains("73440"), "{msg}");
    // An empty record.
    write_bare(&src, &p, |b| b.clear());
    assert!(matches!(read_gauge(&p), Err(GaugeIoError::Layout { .. })));
}

/// The same without the shared data: symc's own ILDG writer, XML records stripped.
#[test]
fn bare_lime_from_our_writer_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full.lime");
    let bare = tmp.path().join("bare.lime");
    // 3^4 at f64 is inferred (its size is no whole L^4 at f32).
    let field = random_field([3, 3, 3, 3], 21);
    let opts = WriteOptions { precision: Precision::F64, ..Default::default() };
    write_gauge(&full, &field, GaugeFormat::Ildg, &opts).unwrap();
    write_bare(&std::fs::read(&full).unwrap(), &bare, |_| {});
    let f = read_gauge(&bare).unwrap();
    assert_eq!(
        (f.field.dims(), f.precision_bits, f.dims_from),
        ([3; 4], 64, Provenance::PayloadSize)
    );
    assert_eq!(max_dist(&f.field, &field), 0.0);
    // 4x2x2x6 at f32 (96 sites) needs its extents; the example has the right volume.
    let field = random_field([4, 2, 2, 6], 22);
    let opts = WriteOptions { precision: Precision::F32, ..Default::default() };
    write_gauge(&full, &field, GaugeFormat::Ildg, &opts).unwrap();
    write_bare(&std::fs::read(&full).unwrap(), &bare, |_| {});
    let e = read_gauge(&bare).unwrap_err();
    assert!(e.to_string().contains("96 sites at f32 or 48 sites at f64"), "{e}");
    assert!(help_of(&e).contains("`--dims 2x2x2x12 --precision f32`"), "{}", help_of(&e));
    let f = read_gauge_with(&bare, &hinted(Some([4, 2, 2, 6]), None)).unwrap();
    assert_eq!(max_dist(&f.field, &read_gauge(&full).unwrap().field), 0.0);
    // Hints beyond what symc can hold are refused before anything is allocated.
    let e = read_gauge_with(&bare, &hinted(Some([1 << 13, 1, 1, 1]), None)).unwrap_err();
    assert!(matches!(e, GaugeIoError::Layout { .. }), "{e}");
}

// ---- the `symc gauge` command line -------------------------------------------------------

fn symc() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("symc").unwrap()
}

#[test]
fn cli_info_json_reports_the_reference_plaquettes() {
    let Some(dir) = data_dir() else { return };
    for &(name, _, bits, dims, p, _, _, tol, has_checksum) in TABLE {
        let out = symc()
            .args(["gauge", "info"])
            .arg(dir.join(name))
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            (j["plaquette"].as_f64().unwrap() - p).abs() <= tol.max(1e-7),
            "{name}: {}",
            j["plaquette"]
        );
        let d: Vec<usize> =
            j["dims"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(d, dims);
        assert_eq!(j["precision_bits"].as_u64(), Some(bits as u64));
        assert!(j["link_trace"].is_f64());
        assert_eq!(
            j["checksum_ok"].as_bool(),
            if has_checksum { Some(true) } else { None },
            "{name}"
        );
    }
}

#[test]
fn cli_info_exits_2_on_a_corrupt_file() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(dir.join("milc/lat.sample.l4444.ildg")).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    let p = tmp.path().join("bad.lime");
    std::fs::write(&p, &bytes).unwrap();
    let out = symc().args(["gauge", "info"]).arg(&p).args(["--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.lime") && err.contains("SciDAC checksum"), "{err}");
    assert!(!err.contains("panicked"));
    // --no-verify shows the damage instead.
    let out =
        symc().args(["gauge", "info", "--no-verify", "--format", "json"]).arg(&p).output().unwrap();
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["checksum_ok"].as_bool(), Some(false));
}

#[test]
fn cli_convert_and_generate() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("c.nersc");
    let out = symc()
        .args(["gauge", "convert"])
        .arg(dir.join("milc/lat.sample.l4448"))
        .arg(&out_path)
        .args(["--to", "nersc", "--two-rows"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let f = read_gauge(&out_path).unwrap();
    assert_eq!((f.format, f.precision_bits), (GaugeFormat::Nersc, 32));
    assert!((f.field.plaquette() - 0.5690557).abs() < 1e-6);
    // MILC cannot hold 64-bit data: a clear error, exit 2, no file.
    let bad = tmp.path().join("c.milc");
    let out = symc()
        .args(["gauge", "convert"])
        .arg(&out_path)
        .arg(&bad)
        .args(["--to", "milc", "--precision", "64"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!bad.exists());

    let conf = tmp.path().join("g.lime");
    let hist = tmp.path().join("h.csv");
    let out = symc()
        .args([
            "gauge", "generate", "--beta", "6.0", "--dims", "4x4x4x8", "--sweeps", "3", "--seed",
            "5", "--format", "ildg", "-o",
        ])
        .arg(&conf)
        .arg("--history")
        .arg(&hist)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let f = read_gauge(&conf).unwrap();
    assert_eq!(f.field.dims(), [4, 4, 4, 8]);
    let csv = std::fs::read_to_string(&hist).unwrap();
    let last: f64 = csv.lines().last().unwrap().split(',').nth(1).unwrap().parse().unwrap();
    assert_eq!(csv.lines().count(), 4);
    assert!((last - f.field.plaquette()).abs() < 1e-10);
    // The same chain as the library's.
    let (field, _) = symc::lattice::heatbath::generate(
        [4, 4, 4, 8],
        &symc::lattice::heatbath::HeatbathParams::new(6.0, 3, 5),
        |_, _| {},
    );
    assert_eq!(max_dist(&field, &f.field), 0.0);
    // Bad flags are usage errors, not panics.
    let out = symc()
        .args(["gauge", "generate", "--beta", "6", "--dims", "4x4x4", "--sweeps", "1", "-o"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = symc()
        .args(["gauge", "generate", "--beta", "-1", "--dims", "4x4x4x4", "--sweeps", "1", "-o"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `symc gauge info`, `convert`, `solve` and `train` on LIME files that hold only the binary
/// record: the hint flags, what the diagnostics tell the user to pass, exit codes.
#[test]
fn cli_bare_lime_hints() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let b4444 = tmp.path().join("b4444.lime");
    let b4448 = tmp.path().join("b4448.lime");
    write_bare(&std::fs::read(dir.join("milc/lat.sample.l4444.ildg")).unwrap(), &b4444, |_| {});
    write_bare(&std::fs::read(dir.join("milc/lat.sample.l4448.scidac")).unwrap(), &b4448, |_| {});
    let json = |out: &std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let failed = |out: &std::process::Output| -> String {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        err
    };
    // Inferred: loads, and says so in text and JSON.
    let j = json(&symc().args(["gauge", "info", "--format", "json"]).arg(&b4444).output().unwrap());
    assert!((j["plaquette"].as_f64().unwrap() - 0.5948502).abs() <= 2e-6, "{j}");
    assert_eq!(
        (j["dims_from"].as_str(), j["precision_from"].as_str()),
        (Some("payload_size"), Some("payload_size"))
    );
    let out = symc().args(["gauge", "info"]).arg(&b4444).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("inferred from the payload size"), "{text}");
    // 4^3 x 8: exit 2 and the exact flags to pass; then with them.
    let err = failed(&symc().args(["gauge", "info"]).arg(&b4448).output().unwrap());
    assert!(
        err.contains("b4448.lime")
            && err.contains("147456 bytes")
            && err.contains("--dims 4x4x4x8 --precision f32"),
        "{err}"
    );
    let j = json(
        &symc()
            .args(["gauge", "info", "--format", "json", "--dims", "4x4x4x8", "--precision", "f32"])
            .arg(&b4448)
            .output()
            .unwrap(),
    );
    assert!((j["plaquette"].as_f64().unwrap() - 0.5690557).abs() <= 2e-6, "{j}");
    assert_eq!(j["dims"], serde_json::json!([4, 4, 4, 8]));
    assert_eq!(
        (j["dims_from"].as_str(), j["precision_from"].as_str()),
        (Some("hint"), Some("hint"))
    );
    // A contradicting hint, and malformed hints.
    let err = failed(
        &symc()
            .args(["gauge", "info", "--dims", "4x4x4x8"])
            .arg(dir.join("milc/lat.sample.l4444.ildg"))
            .output()
            .unwrap(),
    );
    assert!(err.contains("contradicts") && err.contains("4x4x4x4"), "{err}");
    failed(&symc().args(["gauge", "info", "--dims", "4x4x4"]).arg(&b4448).output().unwrap());
    failed(&symc().args(["gauge", "info", "--precision", "f16"]).arg(&b4448).output().unwrap());
    // A truncated record.
    let cut = tmp.path().join("cut.lime");
    write_bare(&std::fs::read(dir.join("milc/lat.sample.l4444.ildg")).unwrap(), &cut, |b| {
        b.truncate(b.len() - 100)
    });
    let err = failed(&symc().args(["gauge", "info"]).arg(&cut).output().unwrap());
    assert!(err.contains("not a whole number of sites"), "{err}");

    // convert: --dims and --input-precision describe the input, --precision the output.
    let out_path = tmp.path().join("c.lime");
    let err = failed(
        &symc()
            .args(["gauge", "convert"])
            .arg(&b4448)
            .arg(&out_path)
            .args(["--to", "nersc"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("--dims 4x4x4x8 --input-precision f32"), "{err}");
    assert!(!out_path.exists());
    let out = symc()
        .args(["gauge", "convert"])
        .arg(&b4448)
        .arg(&out_path)
        .args([
            "--to",
            "ildg",
            "--dims",
            "4x4x4x8",
            "--input-precision",
            "f32",
            "--precision",
            "32",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The converted file states its layout: no hints needed any more.
    let f = read_gauge(&out_path).unwrap();
    assert_eq!((f.field.dims(), f.precision_bits), ([4, 4, 4, 8], 32));
    assert_eq!((f.dims_from, f.precision_from), (Provenance::Header, Provenance::Header));
    assert!((f.field.plaquette() - 0.5690557).abs() <= 2e-6);

    // solve: --gauge-dims / --gauge-precision (its --precision is the solver's).
    let solve = |extra: &[&str]| {
        symc()
            .args(["solve", "--mass", "-0.5", "--csw", "1", "--format", "json", "--gauge"])
            .arg(&b4448)
            .args(extra)
            .output()
            .unwrap()
    };
    let err = failed(&solve(&[]));
    assert!(err.contains("--gauge-dims 4x4x4x8 --gauge-precision f32"), "{err}");
    let out = solve(&["--gauge-dims", "4x4x4x8"]);
    let j = json(&out);
    assert!((j["plaquette"].as_f64().unwrap() - 0.5690557).abs() <= 2e-6, "{j}");
    assert!(j["true_residual"].as_f64().unwrap() <= 1e-8, "{j}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("given on the command line"));

    // train: a model whose `gauge load(...)` is the bare file.
    let model = tmp.path().join("tiny.sym");
    std::fs::write(
        &model,
        "network tiny {
    lattice  4 x 4 x 4 x 8
    input    v: fermion
    symmetry gauge(SU3), translation
    linear(1 -> 1, hops = 1)
    output fermion
}
train tiny {
    gauge     load(\"b4448.lime\")
    operator  wilson_clover(mass = -0.3, csw = 1.0)
    loss      preconditioner
    optimizer adam(lr = 1e-2)
    steps     2
    evaluate  fgmres(tol = 1e-8, restart = 30, rhs = 1)
}
",
    )
    .unwrap();
    let train = |out: &str, extra: &[&str]| {
        symc()
            .arg("train")
            .arg(&model)
            .arg("--out")
            .arg(tmp.path().join(out))
            .arg("--no-evaluate")
            .args(extra)
            .output()
            .unwrap()
    };
    let err = failed(&train("run0", &[]));
    assert!(err.contains("--gauge-dims 4x4x4x8 --gauge-precision f32"), "{err}");
    let out = train("run1", &["--gauge-dims", "4x4x4x8", "--gauge-precision", "f32"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("run1/summary.json")).unwrap(),
    )
    .unwrap();
    assert!((s["gauge"]["plaquette"].as_f64().unwrap() - 0.5690557).abs() <= 2e-6, "{s}");
    assert!(s["gauge"]["source"].as_str().unwrap().contains("given on the command line"), "{s}");
}
