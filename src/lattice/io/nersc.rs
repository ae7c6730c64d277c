//! NERSC gauge files: an ASCII `KEY = VALUE` header between `BEGIN_HEADER` and `END_HEADER`,
//! then the links (sites x fastest, mu = x,y,z,t, row-major complex), either all three rows
//! (`4D_SU3_GAUGE_3x3`) or the first two (`4D_SU3_GAUGE`, row 2 = conj(row0 x row1)).
//!
//! Checks, as Grid's `NerscIO` asserts them: CHECKSUM (uint32 sum of the stored 32-bit words in
//! host order, exact), PLAQUETTE (1e-5) and LINK_TRACE (1e-6); plus unitarity of every link.

use super::bytes::{decode_floats, host_words, push_float};
use super::{
    Check, Ctx, GaugeFile, GaugeFormat, GaugeIoError, Precision, Provenance, TimestampStyle,
    WriteOptions, as_stored, check_unitarity, checked_dims, field_from_links, hex32, su3_from_12,
    su3_from_18, su3_to_18, utc_timestamp, value_check,
};
use crate::lattice::gauge::GaugeField;

const F: GaugeFormat = GaugeFormat::Nersc;
/// Headers longer than this are not NERSC headers (protects the scan for `END_HEADER`).
const MAX_HEADER: usize = 1 << 16;
/// Grid's tolerances.
pub const PLAQUETTE_TOL: f64 = 1e-5;
pub const LINK_TRACE_TOL: f64 = 1e-6;

/// Parses the header: returns (key/value pairs in order, offset of the payload).
fn parse_header(ctx: &Ctx, data: &[u8]) -> Result<(Vec<(String, String)>, usize), GaugeIoError> {
    let scan = &data[..data.len().min(MAX_HEADER)];
    let marker = b"END_HEADER";
    let pos = scan.windows(marker.len()).position(|w| w == marker).ok_or_else(|| {
        if data.len() < MAX_HEADER {
            ctx.truncated(
                F,
                "the header (no END_HEADER line)",
                data.len() as u64 + 1,
                data.len() as u64,
            )
        } else {
            ctx.bad_header(F, "header terminator", "END_HEADER", "none in the first 64 KiB")
        }
    })?;
    // The payload starts after the newline that ends the END_HEADER line.
    let mut off = pos + marker.len();
    while off < data.len() && data[off] != b'\n' {
        off += 1;
    }
    if off >= data.len() {
        return Err(ctx.truncated(
            F,
            "the header line END_HEADER",
            off as u64 + 1,
            data.len() as u64,
        ));
    }
    off += 1;
    let text = String::from_utf8_lossy(&data[..pos]);
    let mut kv = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line == "BEGIN_HEADER" {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            kv.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((kv, off))
}

fn get<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
}

/// Byte order and precision from `FLOATING_POINT` (Grid: `IEEE32`/`IEEE64` are little-endian).
fn floating_point(ctx: &Ctx, v: &str) -> Result<(Precision, bool), GaugeIoError> {
    match v.to_ascii_uppercase().as_str() {
        "IEEE32BIG" => Ok((Precision::F32, true)),
        "IEEE32" | "IEEE32LITTLE" => Ok((Precision::F32, false)),
        "IEEE64BIG" => Ok((Precision::F64, true)),
        "IEEE64" | "IEEE64LITTLE" => Ok((Precision::F64, false)),
        _ => Err(ctx.bad_header(
            F,
            "FLOATING_POINT",
            "IEEE32BIG, IEEE32LITTLE, IEEE64BIG or IEEE64LITTLE",
            v,
        )),
    }
}

pub(crate) fn read(ctx: &Ctx, data: &[u8]) -> Result<GaugeFile, GaugeIoError> {
    let (kv, off) = parse_header(ctx, data)?;
    let mut dims = [0i64; 4];
    for (mu, d) in dims.iter_mut().enumerate() {
        let key = format!("DIMENSION_{}", mu + 1);
        let v = get(&kv, &key).ok_or_else(|| ctx.bad_header(F, &key, "an integer", "missing"))?;
        *d = v.parse().map_err(|_| ctx.bad_header(F, &key, "an integer", v))?;
    }
    let dims = checked_dims(ctx, F, dims)?;
    let datatype = get(&kv, "DATATYPE").ok_or_else(|| {
        ctx.bad_header(F, "DATATYPE", "4D_SU3_GAUGE or 4D_SU3_GAUGE_3x3", "missing")
    })?;
    let two_rows = match datatype.to_ascii_uppercase().as_str() {
        "4D_SU3_GAUGE" => true,
        "4D_SU3_GAUGE_3X3" => false,
        _ => {
            return Err(ctx.bad_header(
                F,
                "DATATYPE",
                "4D_SU3_GAUGE or 4D_SU3_GAUGE_3x3",
                datatype,
            ));
        }
    };
    let fp = get(&kv, "FLOATING_POINT").ok_or_else(|| {
        ctx.bad_header(F, "FLOATING_POINT", "IEEE32BIG, IEEE32, IEEE64BIG or IEEE64", "missing")
    })?;
    let (prec, big) = floating_point(ctx, fp)?;

    let vol: usize = dims.iter().product();
    let per_link = if two_rows { 12 } else { 18 };
    let need = vol * 4 * per_link * prec.bytes();
    let have = data.len() - off;
    if have < need {
        return Err(ctx.truncated(F, "the link payload", need as u64, have as u64));
    }
    if have > need {
        return Err(ctx.wrong_size(F, "the link payload", need as u64, have as u64));
    }
    let payload = &data[off..];
    let nums = decode_floats(payload, prec, big);
    let links = nums
        .chunks_exact(per_link)
        .map(|v| if two_rows { su3_from_12(v) } else { su3_from_18(v) })
        .collect();
    let field = field_from_links(dims, links);

    let mut checks = Vec::new();
    if let Some(cs) = get(&kv, "CHECKSUM") {
        let want = u32::from_str_radix(cs.trim_start_matches("0x").trim_start_matches("0X"), 16)
            .map_err(|_| ctx.bad_header(F, "CHECKSUM", "a hexadecimal uint32", cs))?;
        let got = host_words(payload, prec, big).iter().fold(0u32, |a, &w| a.wrapping_add(w));
        ctx.check(
            F,
            &mut checks,
            Check::new("NERSC CHECKSUM", hex32(want), hex32(got), want == got),
        )?;
    }
    let header_plaquette = parse_opt_f64(ctx, &kv, "PLAQUETTE")?;
    let header_link_trace = parse_opt_f64(ctx, &kv, "LINK_TRACE")?;
    if let Some(p) = header_plaquette {
        ctx.check(
            F,
            &mut checks,
            value_check("NERSC PLAQUETTE", p, field.plaquette(), PLAQUETTE_TOL),
        )?;
    }
    if let Some(t) = header_link_trace {
        ctx.check(
            F,
            &mut checks,
            value_check("NERSC LINK_TRACE", t, field.link_trace(), LINK_TRACE_TOL),
        )?;
    }
    check_unitarity(ctx, F, &field, prec.bits(), &mut checks)?;

    Ok(GaugeFile {
        field,
        format: F,
        variant: format!("NERSC {datatype} {fp}"),
        precision_bits: prec.bits(),
        big_endian: big,
        checks,
        header_plaquette,
        header_link_trace,
        metadata: kv,
        dims_from: Provenance::Header,
        precision_from: Provenance::Header,
    })
}

fn parse_opt_f64(
    ctx: &Ctx,
    kv: &[(String, String)],
    key: &str,
) -> Result<Option<f64>, GaugeIoError> {
    match get(kv, key) {
        None => Ok(None),
        Some(v) => v.parse::<f64>().map(Some).map_err(|_| ctx.bad_header(F, key, "a number", v)),
    }
}

/// Encodes a NERSC file with a Grid-style header.
pub(crate) fn encode(field: &GaugeField, opts: &WriteOptions) -> Vec<u8> {
    let prec = opts.precision;
    let big = !opts.little_endian;
    let two = opts.nersc_two_rows;
    let per_link = if two { 12 } else { 18 };
    let mut payload = Vec::with_capacity(field.links.len() * per_link * prec.bytes());
    for u in &field.links {
        for &x in &su3_to_18(u)[..per_link] {
            push_float(&mut payload, x, prec, big);
        }
    }
    let checksum = host_words(&payload, prec, big).iter().fold(0u32, |a, &w| a.wrapping_add(w));
    let stored = as_stored(field, prec, two);
    let d = field.dims();
    let fp = match (prec, big) {
        (Precision::F32, true) => "IEEE32BIG",
        (Precision::F32, false) => "IEEE32LITTLE",
        (Precision::F64, true) => "IEEE64BIG",
        (Precision::F64, false) => "IEEE64LITTLE",
    };
    let label: String = opts.label.chars().filter(|c| !c.is_control()).collect();
    let now = utc_timestamp(std::time::SystemTime::now(), TimestampStyle::Header);
    let mut h = String::new();
    h.push_str("BEGIN_HEADER\n");
    h.push_str("HDR_VERSION = 1.0\n");
    h.push_str(&format!("DATATYPE = {}\n", if two { "4D_SU3_GAUGE" } else { "4D_SU3_GAUGE_3x3" }));
    h.push_str("STORAGE_FORMAT = 1.0\n");
    for (mu, n) in d.iter().enumerate() {
        h.push_str(&format!("DIMENSION_{} = {}\n", mu + 1, n));
    }
    h.push_str(&format!("LINK_TRACE = {:.12}\n", stored.link_trace()));
    h.push_str(&format!("PLAQUETTE = {:.12}\n", stored.plaquette()));
    for mu in 1..=4 {
        h.push_str(&format!("BOUNDARY_{mu} = PERIODIC\n"));
    }
    h.push_str(&format!("CHECKSUM = {checksum:08x}\n"));
    h.push_str("ENSEMBLE_ID = symc\n");
    h.push_str(&format!("ENSEMBLE_LABEL = {label}\n"));
    h.push_str("SEQUENCE_NUMBER = 0\n");
    h.push_str(&format!("CREATOR = symc {}\n", env!("CARGO_PKG_VERSION")));
    h.push_str(&format!("CREATOR_HARDWARE = {}\n", std::env::consts::ARCH));
    h.push_str(&format!("CREATION_DATE = {now}\n"));
    h.push_str(&format!("ARCHIVE_DATE = {now}\n"));
    h.push_str(&format!("FLOATING_POINT = {fp}\n"));
    h.push_str("END_HEADER\n");
    let mut out = h.into_bytes();
    out.extend_from_slice(&payload);
    out
}
