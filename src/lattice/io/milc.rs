//! MILC version 5 gauge files: a 96-byte header (magic 20103, whose byte order gives the file's
//! endianness; nx ny nz nt; a 64-byte time stamp; site order; the sum29/sum31 checksums), then
//! per site the links x, y, z, t as 3x3 complex single-precision matrices, row-major.
//!
//! Checks: the magic, a natural site order, the exact payload size, both checksums (MILC's
//! `checksum`: word `i` of the payload, in host order, rotated left by `i mod 29` resp.
//! `i mod 31` and XOR-ed), and unitarity.

use super::bytes::{decode_floats, host_words, push_float, push_u32, u32_at};
use super::{
    Check, Ctx, GaugeFile, GaugeFormat, GaugeIoError, Precision, Provenance, TimestampStyle,
    WriteOptions, check_unitarity, checked_dims, field_from_links, hex32, su3_from_18, su3_to_18,
    utc_timestamp,
};
use crate::lattice::gauge::GaugeField;
use std::path::Path;

const F: GaugeFormat = GaugeFormat::Milc;
/// MILC v5 magic number.
pub const MAGIC: u32 = 20103;
const HEADER: usize = 96;

/// MILC's (sum29, sum31) over host-order words.
pub fn checksums(words: &[u32]) -> (u32, u32) {
    let (mut s29, mut s31) = (0u32, 0u32);
    for (i, &w) in words.iter().enumerate() {
        s29 ^= w.rotate_left((i % 29) as u32);
        s31 ^= w.rotate_left((i % 31) as u32);
    }
    (s29, s31)
}

pub(crate) fn read(ctx: &Ctx, data: &[u8]) -> Result<GaugeFile, GaugeIoError> {
    if data.len() < HEADER {
        return Err(ctx.truncated(F, "the 96-byte header", HEADER as u64, data.len() as u64));
    }
    let big = u32_at(data, 0, true) == MAGIC;
    if u32_at(data, 0, big) != MAGIC {
        return Err(ctx.bad_header(
            F,
            "magic number",
            "20103",
            format!("{}", u32_at(data, 0, false)),
        ));
    }
    let mut d = [0i64; 4];
    for (mu, x) in d.iter_mut().enumerate() {
        *x = u32_at(data, 4 + 4 * mu, big) as i32 as i64;
    }
    let dims = checked_dims(ctx, F, d)?;
    let stamp: String =
        String::from_utf8_lossy(&data[20..84]).trim_end_matches('\0').trim().to_string();
    let order = u32_at(data, 84, big) as i32;
    if order != 0 {
        return Err(ctx.unsupported(
            F,
            format!("site order {order} (a site list follows the header); only natural order 0 is supported"),
        ));
    }
    let sum29 = u32_at(data, 88, big);
    let sum31 = u32_at(data, 92, big);
    let vol: usize = dims.iter().product();
    let need = vol * 4 * 18 * 4;
    let have = data.len() - HEADER;
    if have < need {
        return Err(ctx.truncated(F, "the link payload", need as u64, have as u64));
    }
    if have > need {
        return Err(ctx.wrong_size(F, "the link payload", need as u64, have as u64));
    }
    let payload = &data[HEADER..];
    let mut checks = Vec::new();
    let (c29, c31) = checksums(&host_words(payload, Precision::F32, big));
    ctx.check(
        F,
        &mut checks,
        Check::new("MILC checksum sum29", hex32(sum29), hex32(c29), c29 == sum29),
    )?;
    ctx.check(
        F,
        &mut checks,
        Check::new("MILC checksum sum31", hex32(sum31), hex32(c31), c31 == sum31),
    )?;
    let nums = decode_floats(payload, Precision::F32, big);
    let links = nums.chunks_exact(18).map(su3_from_18).collect();
    let field = field_from_links(dims, links);
    check_unitarity(ctx, F, &field, 32, &mut checks)?;
    Ok(GaugeFile {
        field,
        format: F,
        variant: format!("MILC v5 {}-endian f32", if big { "big" } else { "little" }),
        precision_bits: 32,
        big_endian: big,
        checks,
        header_plaquette: None,
        header_link_trace: None,
        metadata: vec![("time_stamp".into(), stamp), ("order".into(), order.to_string())],
        dims_from: Provenance::Header,
        precision_from: Provenance::Header,
    })
}

/// Encodes a MILC v5 file (single precision; big-endian unless `opts.little_endian`).
pub(crate) fn encode(
    path: &Path,
    field: &GaugeField,
    opts: &WriteOptions,
) -> Result<Vec<u8>, GaugeIoError> {
    if opts.precision != Precision::F32 {
        return Err(GaugeIoError::Unsupported {
            path: path.into(),
            format: F,
            what: "MILC v5 files store single precision only; write with precision 32".into(),
        });
    }
    let big = !opts.little_endian;
    let mut payload = Vec::with_capacity(field.links.len() * 72);
    for u in &field.links {
        for x in su3_to_18(u) {
            push_float(&mut payload, x, Precision::F32, big);
        }
    }
    let (s29, s31) = checksums(&host_words(&payload, Precision::F32, big));
    let mut out = Vec::with_capacity(HEADER + payload.len());
    push_u32(&mut out, MAGIC, big);
    for &n in &field.dims() {
        push_u32(&mut out, n as u32, big);
    }
    let mut stamp = [0u8; 64];
    let ts = utc_timestamp(std::time::SystemTime::now(), TimestampStyle::Header);
    let n = ts.len().min(63);
    stamp[..n].copy_from_slice(&ts.as_bytes()[..n]);
    out.extend_from_slice(&stamp);
    push_u32(&mut out, 0, big);
    push_u32(&mut out, s29, big);
    push_u32(&mut out, s31, big);
    out.extend_from_slice(&payload);
    Ok(out)
}
