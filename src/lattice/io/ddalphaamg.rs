//! DDalphaAMG native gauge files (`src/io.c: read_conf`): four int32 extents in the order
//! T, Z, Y, X, a float64 plaquette normalised as 3P (3 for the unit field), then per site (x fastest) the links in the order T, Z, Y, X as 3x3 complex float64,
//! row-major, in the writing machine's byte order (little-endian in practice).
//!
//! The format has no magic number and no checksum; detection relies on a plausible header and
//! an exact file size, and the header plaquette (compared to 1e-10, since the data is f64) plus
//! unitarity are the integrity checks.

use super::bytes::{decode_floats, push_float, push_u32, u32_at};
use super::{
    Ctx, GaugeFile, GaugeFormat, GaugeIoError, Precision, Provenance, WriteOptions,
    check_unitarity, checked_dims, field_from_links, su3_from_18, su3_to_18, value_check,
};
use crate::lattice::gauge::GaugeField;
use crate::lattice::su3::Su3;
use std::path::Path;

const F: GaugeFormat = GaugeFormat::DdalphaAmg;
const HEADER: usize = 24;
/// The plaquette is stored and recomputed in double precision.
pub const PLAQUETTE_TOL: f64 = 1e-10;

/// Header fields in one byte order, if they look like a DDalphaAMG header.
fn header(data: &[u8], big: bool) -> Option<([i64; 4], f64)> {
    if data.len() < HEADER {
        return None;
    }
    let tzyx: Vec<i64> = (0..4).map(|i| u32_at(data, 4 * i, big) as i32 as i64).collect();
    if tzyx.iter().any(|&d| d < 1 || d as u64 > super::MAX_EXTENT) {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[16..24]);
    let plaq = if big { f64::from_be_bytes(b) } else { f64::from_le_bytes(b) };
    if !plaq.is_finite() || plaq.abs() > 3.0 + 1e-9 {
        return None;
    }
    Some(([tzyx[3], tzyx[2], tzyx[1], tzyx[0]], plaq))
}

/// True when the first 24 bytes look like a DDalphaAMG header (positive extents and a
/// plaquette in [-3, 3]) in either byte order.
pub(crate) fn plausible_header(data: &[u8]) -> bool {
    header(data, false).is_some() || header(data, true).is_some()
}

pub(crate) fn read(ctx: &Ctx, data: &[u8]) -> Result<GaugeFile, GaugeIoError> {
    // Prefer the byte order whose header predicts the file size exactly.
    let size_of =
        |d: [i64; 4]| HEADER as u64 + d.iter().map(|&x| x as u64).product::<u64>() * 4 * 144;
    let cands: Vec<(bool, [i64; 4], f64)> = [false, true]
        .into_iter()
        .filter_map(|big| header(data, big).map(|(d, p)| (big, d, p)))
        .collect();
    let (big, dims, plaq3) = cands
        .iter()
        .copied()
        .find(|&(_, d, _)| size_of(d) == data.len() as u64)
        .or_else(|| cands.first().copied())
        .ok_or_else(|| ctx.truncated(F, "the 24-byte header", HEADER as u64, data.len() as u64))?;
    let dims = checked_dims(ctx, F, dims)?;
    let vol: usize = dims.iter().product();
    let need = vol * 4 * 144;
    let have = data.len() - HEADER;
    if have < need {
        return Err(ctx.truncated(F, "the link payload", need as u64, have as u64));
    }
    if have > need {
        return Err(ctx.wrong_size(F, "the link payload", need as u64, have as u64));
    }
    let nums = decode_floats(&data[HEADER..], Precision::F64, big);
    let mut links = vec![Su3::zero(); vol * 4];
    for (site, chunk) in nums.chunks_exact(4 * 18).enumerate() {
        // File order T, Z, Y, X = symc mu 3, 2, 1, 0.
        for (k, m) in chunk.chunks_exact(18).enumerate() {
            links[site * 4 + (3 - k)] = su3_from_18(m);
        }
    }
    let field = field_from_links(dims, links);
    let mut checks = Vec::new();
    let p = plaq3 / 3.0;
    ctx.check(
        F,
        &mut checks,
        value_check("DDalphaAMG header plaquette", p, field.plaquette(), PLAQUETTE_TOL),
    )?;
    check_unitarity(ctx, F, &field, 64, &mut checks)?;
    Ok(GaugeFile {
        field,
        format: F,
        variant: format!("DDalphaAMG {}-endian f64", if big { "big" } else { "little" }),
        precision_bits: 64,
        big_endian: big,
        checks,
        header_plaquette: Some(p),
        header_link_trace: None,
        metadata: vec![("header plaquette (3P)".into(), format!("{plaq3:.16}"))],
        dims_from: Provenance::Header,
        precision_from: Provenance::Header,
    })
}

/// Encodes a DDalphaAMG file (little-endian f64, as DDalphaAMG writes on x86).
pub(crate) fn encode(
    path: &Path,
    field: &GaugeField,
    opts: &WriteOptions,
) -> Result<Vec<u8>, GaugeIoError> {
    if opts.precision != Precision::F64 {
        return Err(GaugeIoError::Unsupported {
            path: path.into(),
            format: F,
            what: "DDalphaAMG files store double precision only; write with precision 64".into(),
        });
    }
    let d = field.dims();
    let mut out = Vec::with_capacity(HEADER + field.links.len() * 144);
    for &n in &[d[3], d[2], d[1], d[0]] {
        push_u32(&mut out, n as u32, false);
    }
    push_float(&mut out, 3.0 * field.plaquette(), Precision::F64, false);
    for site in 0..field.geom.volume() {
        for mu in (0..4).rev() {
            for x in su3_to_18(field.link(site, mu)) {
                push_float(&mut out, x, Precision::F64, false);
            }
        }
    }
    Ok(out)
}
