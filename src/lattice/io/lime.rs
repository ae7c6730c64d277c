//! ILDG and SciDAC gauge files in the LIME container (c-lime): a sequence of records, each a
//! 144-byte big-endian header (magic 0x456789ab, version 1, message-begin/end flags, payload
//! length, 128-byte NUL-padded type) followed by the payload padded to a multiple of 8 bytes.
//!
//! The links are in an `ildg-binary-data` record (ILDG; precision and extents in the
//! `ildg-format` XML) or a `scidac-binary-data` record (SciDAC; extents in
//! `scidac-private-file-xml`, precision in `scidac-private-record-xml`): big-endian, sites x
//! fastest, mu = x,y,z,t, 3x3 complex row-major. Checks: record structure, the payload size,
//! the SciDAC checksum (per site crc32 c, global site index g: suma ^= rotl(c, g mod 29),
//! sumb ^= rotl(c, g mod 31)) when a `scidac-checksum` record is present, and unitarity.

use super::bytes::{decode_floats, push_float};
use super::{
    Check, Ctx, GaugeFile, GaugeFormat, GaugeIoError, Precision, TimestampStyle, WriteOptions,
    check_unitarity, checked_dims, field_from_links, hex32, su3_from_18, su3_to_18, utc_timestamp,
};
use crate::lattice::gauge::GaugeField;

const F: GaugeFormat = GaugeFormat::Ildg;
/// LIME record magic number.
pub const MAGIC: u32 = 0x4567_89ab;
const RECORD_HEADER: usize = 144;
const FLAG_MB: u16 = 0x8000;
const FLAG_ME: u16 = 0x4000;

/// One LIME record: its type, flags and payload (without padding).
#[derive(Clone, Debug)]
pub struct Record<'a> {
    pub kind: String,
    pub flags: u16,
    pub offset: usize,
    pub payload: &'a [u8],
}

/// Splits a LIME file into records, checking magic, version and lengths.
pub(crate) fn records<'a>(ctx: &Ctx, data: &'a [u8]) -> Result<Vec<Record<'a>>, GaugeIoError> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < data.len() {
        let what = format!("the LIME record header at byte {off}");
        if data.len() - off < RECORD_HEADER {
            return Err(ctx.truncated(F, &what, RECORD_HEADER as u64, (data.len() - off) as u64));
        }
        let h = &data[off..off + RECORD_HEADER];
        let magic = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        if magic != MAGIC {
            return Err(ctx.bad_header(
                F,
                &format!("LIME magic at byte {off}"),
                "456789ab",
                format!("{magic:08x}"),
            ));
        }
        let version = u16::from_be_bytes([h[4], h[5]]);
        if version != 1 {
            return Err(ctx.bad_header(
                F,
                &format!("LIME version at byte {off}"),
                "1",
                version.to_string(),
            ));
        }
        let flags = u16::from_be_bytes([h[6], h[7]]);
        let mut lb = [0u8; 8];
        lb.copy_from_slice(&h[8..16]);
        let len = u64::from_be_bytes(lb);
        let kind = String::from_utf8_lossy(&h[16..]).trim_end_matches('\0').to_string();
        let start = off + RECORD_HEADER;
        let avail = (data.len() - start) as u64;
        if len > avail {
            return Err(ctx.truncated(
                F,
                &format!("the payload of LIME record `{kind}`"),
                len,
                avail,
            ));
        }
        let len = len as usize;
        out.push(Record { kind, flags, offset: off, payload: &data[start..start + len] });
        // Payloads are padded to 8 bytes; a missing pad after the last record is tolerated.
        off = (start + len).div_ceil(8) * 8;
    }
    Ok(out)
}

/// The trimmed text between `<tag>` and `</tag>`, if present. The XML in real files is small
/// and sometimes malformed (MILC's "foreign" test file misses a quote), so a tolerant scan
/// beats a strict parser.
fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let a = xml.find(&open)? + open.len();
    let b = xml[a..].find(&close)? + a;
    Some(xml[a..b].trim().to_string())
}

fn text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).trim_end_matches('\0').to_string()
}

/// SciDAC (suma, sumb) over `site_bytes`-sized sites, as stored.
pub fn scidac_checksum(payload: &[u8], site_bytes: usize) -> (u32, u32) {
    let (mut a, mut b) = (0u32, 0u32);
    for (g, site) in payload.chunks_exact(site_bytes).enumerate() {
        let c = crc32fast::hash(site);
        a ^= c.rotate_left((g % 29) as u32);
        b ^= c.rotate_left((g % 31) as u32);
    }
    (a, b)
}

fn parse_int(ctx: &Ctx, what: &str, v: &str) -> Result<i64, GaugeIoError> {
    v.trim().parse().map_err(|_| ctx.bad_header(F, what, "an integer", v))
}

pub(crate) fn read(ctx: &Ctx, data: &[u8]) -> Result<GaugeFile, GaugeIoError> {
    let recs = records(ctx, data)?;
    let find = |k: &str| recs.iter().find(|r| r.kind == k);
    let (bin, variant) = match (find("ildg-binary-data"), find("scidac-binary-data")) {
        (Some(r), _) => (r, "ILDG/LIME ildg-binary-data"),
        (None, Some(r)) => (r, "SciDAC/LIME scidac-binary-data"),
        (None, None) => {
            let kinds: Vec<&str> = recs.iter().map(|r| r.kind.as_str()).collect();
            return Err(ctx.bad_header(
                F,
                "binary data record",
                "an ildg-binary-data or scidac-binary-data record",
                format!("records [{}]", kinds.join(", ")),
            ));
        }
    };
    let mut metadata: Vec<(String, String)> = Vec::new();
    // Extents and precision from the ILDG format record, else from the SciDAC private XML.
    let mut dims: Option<[i64; 4]> = None;
    let mut prec_bits: Option<u32> = None;
    if let Some(r) = find("ildg-format") {
        let x = text(r.payload);
        if let Some(field) = xml_tag(&x, "field") {
            if field != "su3gauge" {
                return Err(ctx.bad_header(F, "ildg-format <field>", "su3gauge", field));
            }
        }
        let mut d = [0i64; 4];
        let mut all = true;
        for (i, t) in ["lx", "ly", "lz", "lt"].iter().enumerate() {
            match xml_tag(&x, t) {
                Some(v) => d[i] = parse_int(ctx, &format!("ildg-format <{t}>"), &v)?,
                None => all = false,
            }
        }
        if all {
            dims = Some(d);
        }
        if let Some(p) = xml_tag(&x, "precision") {
            let bits = parse_int(ctx, "ildg-format <precision>", &p)?;
            if bits != 32 && bits != 64 {
                return Err(ctx.bad_header(F, "ildg-format <precision>", "32 or 64", p));
            }
            prec_bits = Some(bits as u32);
        }
    }
    if let Some(r) = find("scidac-private-file-xml") {
        let x = text(r.payload);
        if let Some(v) = xml_tag(&x, "dims") {
            let parts: Vec<&str> = v.split_whitespace().collect();
            if parts.len() != 4 {
                return Err(ctx.bad_header(F, "scidac-private-file-xml <dims>", "four extents", v));
            }
            let mut d = [0i64; 4];
            for (i, p) in parts.iter().enumerate() {
                d[i] = parse_int(ctx, "scidac-private-file-xml <dims>", p)?;
            }
            match dims {
                Some(prev) if prev != d => {
                    return Err(ctx.bad_header(
                        F,
                        "scidac <dims> against ildg-format extents",
                        format!("{prev:?}"),
                        format!("{d:?}"),
                    ));
                }
                _ => dims = Some(d),
            }
        }
    }
    if let Some(r) = find("scidac-private-record-xml") {
        let x = text(r.payload);
        if let Some(p) = xml_tag(&x, "precision") {
            let bits = match p.as_str() {
                "F" => 32,
                "D" => 64,
                _ => {
                    return Err(ctx.bad_header(
                        F,
                        "scidac-private-record-xml <precision>",
                        "F or D",
                        p,
                    ));
                }
            };
            if let Some(prev) = prec_bits {
                if prev != bits {
                    return Err(ctx.bad_header(
                        F,
                        "scidac precision against ildg-format precision",
                        prev.to_string(),
                        bits.to_string(),
                    ));
                }
            }
            prec_bits = Some(bits);
        }
        if let Some(dt) = xml_tag(&x, "datatype") {
            metadata.push(("scidac datatype".into(), dt));
        }
    }
    let dims = dims.ok_or_else(|| {
        ctx.bad_header(
            F,
            "lattice extents",
            "an ildg-format or scidac-private-file-xml record",
            "neither",
        )
    })?;
    let dims = checked_dims(ctx, F, dims)?;
    let vol: usize = dims.iter().product();
    let links_n = vol * 4 * 18;
    let prec = match prec_bits {
        Some(b) => Precision::from_bits(b).unwrap_or(Precision::F64),
        // No metadata: the size decides (4 or 8 bytes per number).
        None if bin.payload.len() == links_n * 4 => Precision::F32,
        None => Precision::F64,
    };
    let need = links_n * prec.bytes();
    if bin.payload.len() != need {
        return Err(ctx.wrong_size(
            F,
            &format!("the `{}` record ({vol} sites, {}-bit)", bin.kind, prec.bits()),
            need as u64,
            bin.payload.len() as u64,
        ));
    }
    let mut checks = Vec::new();
    match find("scidac-checksum") {
        Some(r) => {
            let x = text(r.payload);
            let (ca, cb) = scidac_checksum(bin.payload, 4 * 18 * prec.bytes());
            for (tag, got) in [("suma", ca), ("sumb", cb)] {
                let v = xml_tag(&x, tag).ok_or_else(|| {
                    ctx.bad_header(
                        F,
                        &format!("scidac-checksum <{tag}>"),
                        "a hex number",
                        "missing",
                    )
                })?;
                let want = u32::from_str_radix(v.trim_start_matches("0x"), 16).map_err(|_| {
                    ctx.bad_header(F, &format!("scidac-checksum <{tag}>"), "a hex number", &v)
                })?;
                ctx.check(
                    F,
                    &mut checks,
                    Check::new(
                        &format!("SciDAC checksum {tag}"),
                        hex32(want),
                        hex32(got),
                        want == got,
                    ),
                )?;
            }
        }
        None => metadata.push(("scidac-checksum".into(), "absent (nothing to verify)".into())),
    }
    let nums = decode_floats(bin.payload, prec, true);
    let field = field_from_links(dims, nums.chunks_exact(18).map(su3_from_18).collect());
    check_unitarity(ctx, F, &field, prec.bits(), &mut checks)?;
    for r in &recs {
        if r.kind == "ildg-data-lfn" {
            metadata.push(("ildg-data-lfn".into(), text(r.payload)));
        }
    }
    metadata.push((
        "records".into(),
        recs.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>().join(", "),
    ));
    Ok(GaugeFile {
        field,
        format: F,
        variant: format!("{variant} big-endian f{}", prec.bits()),
        precision_bits: prec.bits(),
        big_endian: true,
        checks,
        header_plaquette: None,
        header_link_trace: None,
        metadata,
    })
}

fn push_record(out: &mut Vec<u8>, kind: &str, flags: u16, payload: &[u8]) {
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    let mut t = [0u8; 128];
    let n = kind.len().min(127);
    t[..n].copy_from_slice(&kind.as_bytes()[..n]);
    out.extend_from_slice(&t);
    out.extend_from_slice(payload);
    out.resize(out.len().div_ceil(8) * 8, 0);
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Encodes an ILDG file with the SciDAC records and checksum (as MILC and Chroma write them).
pub(crate) fn encode(field: &GaugeField, opts: &WriteOptions) -> Vec<u8> {
    let prec = opts.precision;
    let d = field.dims();
    let mut bin = Vec::with_capacity(field.links.len() * 18 * prec.bytes());
    for u in &field.links {
        for x in su3_to_18(u) {
            push_float(&mut bin, x, prec, true);
        }
    }
    let (sa, sb) = scidac_checksum(&bin, 4 * 18 * prec.bytes());
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
    let label = xml_escape(&opts.label);
    let (p, ts) = if prec == Precision::F32 { ("F", 72) } else { ("D", 144) };
    let mut out = Vec::new();
    let with_nul = |s: String| {
        let mut b = s.into_bytes();
        b.push(0);
        b
    };
    push_record(
        &mut out,
        "scidac-private-file-xml",
        FLAG_MB,
        &with_nul(format!(
            "{xml}<scidacFile><version>1.1</version><spacetime>4</spacetime><dims>{} {} {} {} </dims><volfmt>0</volfmt></scidacFile>",
            d[0], d[1], d[2], d[3]
        )),
    );
    push_record(
        &mut out,
        "scidac-file-xml",
        FLAG_ME,
        &with_nul(format!("{xml}<title>{label}</title>")),
    );
    push_record(
        &mut out,
        "scidac-private-record-xml",
        FLAG_MB,
        &with_nul(format!(
            "{xml}<scidacRecord><version>1.0</version><date>{}</date><globaldata>0</globaldata><datatype>QDP_{p}3_ColorMatrix</datatype><precision>{p}</precision><colors>3</colors><typesize>{ts}</typesize><datacount>4</datacount></scidacRecord>",
            utc_timestamp(std::time::SystemTime::now(), TimestampStyle::Header)
        )),
    );
    push_record(&mut out, "scidac-record-xml", 0, &with_nul(format!("{xml}<info>{label}</info>")));
    push_record(
        &mut out,
        "ildg-format",
        0,
        &with_nul(format!(
            "{xml}<ildgFormat xmlns=\"http://www.lqcd.org/ildg\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://www.lqcd.org/ildg/filefmt.xsd\"><version>1.0</version><field>su3gauge</field><precision>{}</precision><lx>{}</lx><ly>{}</ly><lz>{}</lz><lt>{}</lt></ildgFormat>",
            prec.bits(),
            d[0],
            d[1],
            d[2],
            d[3]
        )),
    );
    push_record(&mut out, "ildg-data-lfn", 0, &with_nul(format!("lfn://symc/{label}")));
    push_record(&mut out, "ildg-binary-data", 0, &bin);
    push_record(
        &mut out,
        "scidac-checksum",
        FLAG_ME,
        &with_nul(format!(
            "{xml}<scidacChecksum><version>1.0</version><suma>{sa:08x}</suma><sumb>{sb:08x}</sumb></scidacChecksum>"
        )),
    );
    out
}
