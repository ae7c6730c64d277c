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
//!
//! Some codes write nothing but the binary record. Then the extents and precision come from
//! the caller's [`super::LayoutHints`], else from the payload size when it is exactly one
//! hypercubic L^4 lattice at f32 or f64 (never another shape: a volume has many). A layout that
//! was not stated by the file is reported ([`super::Provenance`]), and if its links are not
//! unitary the error says which reading failed and which other one the size allows.

use super::bytes::{decode_floats, push_float};
use super::{
    Check, Ctx, GaugeFile, GaugeFormat, GaugeIoError, Hint, MAX_EXTENT, Precision, Provenance,
    TimestampStyle, WriteOptions, checked_dims, describe_layout, dims_text, field_from_links,
    hex32, su3_from_18, su3_to_18, unitarity_check, utc_timestamp,
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
    // Which record stated them, for a hint that contradicts it.
    let mut dims_by = "ildg-format record";
    let mut prec_by = "ildg-format record";
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
                Some(_) => {}
                None => {
                    dims = Some(d);
                    dims_by = "scidac-private-file-xml record";
                }
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
            if prec_bits.is_none() {
                prec_by = "scidac-private-record-xml record";
            }
            prec_bits = Some(bits);
        }
        if let Some(dt) = xml_tag(&x, "datatype") {
            metadata.push(("scidac datatype".into(), dt));
        }
    }
    let stated_dims = match dims {
        Some(d) => Some(checked_dims(ctx, F, d)?),
        None => None,
    };
    if let (Some(d), Some(h)) = (stated_dims, ctx.hints.dims) {
        ctx.hint_agrees(F, Hint::Dims(h), dims_by, &dims_text(d))?;
    }
    // Validated above: 32 or 64.
    let stated_prec = prec_bits.and_then(Precision::from_bits);
    if let (Some(p), Some(h)) = (stated_prec, ctx.hints.precision) {
        ctx.hint_agrees(F, Hint::Precision(h), prec_by, &format!("f{}", p.bits()))?;
    }
    let layout = settle_layout(ctx, bin, stated_dims, stated_prec)?;
    let (dims, prec) = (layout.dims, layout.precision);
    // Decoded before the checksum: with a guessed layout a wrong site size would otherwise
    // surface as a checksum mismatch, which hides what went wrong.
    let nums = decode_floats(bin.payload, prec, true);
    let field = field_from_links(dims, nums.chunks_exact(18).map(su3_from_18).collect());
    let unitarity = unitarity_check(&field, prec.bits());
    if !unitarity.ok && layout.dims_from != Provenance::Header {
        // The extents (and so the precision) were a guess or a hint: non-unitary links mean the
        // guess is wrong far more often than that the file is damaged. Say which reading failed
        // and what else the payload size allows.
        let what = format!(
            "{}, but the links read that way are not SU(3) matrices (max|UU^dagger-1|, \
             |det U-1| = {}, expected {}): that reading of the `{}` record is wrong",
            layout.describe(),
            unitarity.found,
            unitarity.expected,
            bin.kind
        );
        if ctx.verify {
            return Err(ctx.layout(F, what, other_reading(ctx, bin, prec)));
        }
        metadata.push(("layout warning".into(), what));
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
    ctx.check(F, &mut checks, unitarity)?;
    if layout.dims_from != Provenance::Header || layout.precision_from != Provenance::Header {
        metadata.push(("layout".into(), layout.describe()));
    }
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
        dims_from: layout.dims_from,
        precision_from: layout.precision_from,
    })
}

/// Bytes of one site: four links of 3x3 complex numbers.
fn site_bytes(p: Precision) -> usize {
    4 * 18 * p.bytes()
}

/// `L` when `v = L^4`.
fn fourth_root(v: usize) -> Option<usize> {
    let guess = (v as f64).powf(0.25).round() as usize;
    (guess.saturating_sub(1)..=guess + 1).find(|&l| l > 0 && l.checked_pow(4) == Some(v))
}

/// A plausible lattice of `v` sites for an example command line: L^4 if it is one, else the
/// most cubic L^3 x T with T >= L (512 sites -> 4x4x4x8), else 1x1x1xV. Only an example: any
/// extents with that volume fit the payload equally well.
fn example_dims(v: usize) -> [usize; 4] {
    if let Some(l) = fourth_root(v) {
        return [l; 4];
    }
    let mut l = fourth_root_floor(v);
    while l > 1 {
        let c = l * l * l;
        if v % c == 0 && v / c >= l {
            return [l, l, l, v / c];
        }
        l -= 1;
    }
    [1, 1, 1, v]
}

fn fourth_root_floor(v: usize) -> usize {
    let mut l = (v as f64).powf(0.25) as usize + 1;
    while l > 0 && l.checked_pow(4).is_none_or(|x| x > v) {
        l -= 1;
    }
    l
}

/// The (sites, precision) pairs a payload of `bytes` can hold.
fn site_counts(bytes: usize) -> Vec<(usize, Precision)> {
    [Precision::F32, Precision::F64]
        .into_iter()
        .filter(|&p| bytes > 0 && bytes % site_bytes(p) == 0)
        .map(|p| (bytes / site_bytes(p), p))
        .collect()
}

/// `512 sites at f32 or 256 sites at f64`.
fn counts_text(counts: &[(usize, Precision)]) -> String {
    let parts: Vec<String> =
        counts.iter().map(|(v, p)| format!("{v} sites at f{}", p.bits())).collect();
    parts.join(" or ")
}

/// The lattice extents and precision a binary record is read with, and where each came from.
struct Layout {
    dims: [usize; 4],
    precision: Precision,
    dims_from: Provenance,
    precision_from: Provenance,
}

impl Layout {
    fn describe(&self) -> String {
        describe_layout(self.dims, self.precision.bits(), self.dims_from, self.precision_from)
    }
}

/// Decides the extents and precision of `bin`: what the XML states, else the caller's hints,
/// else the payload size when exactly one answer fits. Only hypercubic L^4 lattices are
/// inferred: a volume such as 512 sites has many shapes (4^3 x 8, 8^3 x 1, 2^3 x 64, ...) and
/// guessing one would silently permute the links.
fn settle_layout(
    ctx: &Ctx,
    bin: &Record,
    stated_dims: Option<[usize; 4]>,
    stated_prec: Option<Precision>,
) -> Result<Layout, GaugeIoError> {
    use Provenance::{Header, Hint as Hinted, PayloadSize};
    let hints = ctx.hints;
    let flags = hints.flags;
    let bytes = bin.payload.len();
    let kind = &bin.kind;
    if let (None, Some(d)) = (stated_dims, hints.dims)
        && (d.iter().any(|&x| x == 0 || x as u64 > MAX_EXTENT)
            || d.iter().map(|&x| x as u128).product::<u128>() > u32::MAX as u128 / 4)
    {
        return Err(ctx.layout(
            F,
            format!("{} {} is not a lattice symc can hold", flags.dims, dims_text(d)),
            format!("give four extents in 1..={MAX_EXTENT} with fewer than 2^30 sites"),
        ));
    }
    let dims = stated_dims.map(|d| (d, Header)).or(hints.dims.map(|d| (d, Hinted)));
    let prec = stated_prec.map(|p| (p, Header)).or(hints.precision.map(|p| (p, Hinted)));
    let counts = site_counts(bytes);
    // What the payload could hold instead, for the help line of a layout that does not fit.
    let fits = || match counts.as_slice() {
        [] => format!(
            "its {bytes} bytes are not a whole number of sites ({} bytes each at f32, {} at \
             f64): the record is truncated or does not hold SU(3) links",
            site_bytes(Precision::F32),
            site_bytes(Precision::F64)
        ),
        [(v, p), ..] => format!(
            "its {bytes} bytes hold {}; e.g. `{}`",
            counts_text(&counts),
            hints.example(example_dims(*v), *p)
        ),
    };
    match (dims, prec) {
        (Some((d, dims_from)), Some((p, precision_from))) => {
            let vol: usize = d.iter().product();
            let need = vol * site_bytes(p);
            if bytes == need {
                return Ok(Layout { dims: d, precision: p, dims_from, precision_from });
            }
            if dims_from == Header && precision_from == Header {
                return Err(ctx.wrong_size(
                    F,
                    &format!("the `{kind}` record ({vol} sites, {}-bit)", p.bits()),
                    need as u64,
                    bytes as u64,
                ));
            }
            let said = Layout { dims: d, precision: p, dims_from, precision_from };
            Err(ctx.layout(
                F,
                format!(
                    "{} needs {need} bytes of links, but the `{kind}` record holds {bytes}",
                    said.describe()
                ),
                format!("check the hint: {}", fits()),
            ))
        }
        (Some((d, dims_from)), None) => {
            let vol: usize = d.iter().product();
            let fitting = [Precision::F32, Precision::F64]
                .into_iter()
                .find(|&p| vol * site_bytes(p) == bytes);
            match (fitting, dims_from) {
                (Some(p), _) => {
                    Ok(Layout { dims: d, precision: p, dims_from, precision_from: PayloadSize })
                }
                // The file states its extents and the payload fits neither precision.
                (None, Header) => Err(ctx.wrong_size(
                    F,
                    &format!("the `{kind}` record ({vol} sites, 64-bit)"),
                    (vol * site_bytes(Precision::F64)) as u64,
                    bytes as u64,
                )),
                (None, _) => Err(ctx.layout(
                    F,
                    format!(
                        "{} {} ({vol} sites) needs {} bytes at f32 or {} at f64, but the \
                         `{kind}` record holds {bytes}",
                        flags.dims,
                        dims_text(d),
                        vol * site_bytes(Precision::F32),
                        vol * site_bytes(Precision::F64)
                    ),
                    format!("check {}: {}", flags.dims, fits()),
                )),
            }
        }
        (None, Some((p, precision_from))) => {
            let by = match precision_from {
                Header => "the file's precision".to_string(),
                _ => format!("{} f{}", flags.precision, p.bits()),
            };
            if bytes == 0 || bytes % site_bytes(p) != 0 {
                return Err(ctx.layout(
                    F,
                    format!(
                        "the `{kind}` record holds {bytes} bytes, not a whole number of f{} \
                         sites ({} bytes each; {by})",
                        p.bits(),
                        site_bytes(p)
                    ),
                    fits(),
                ));
            }
            let vol = bytes / site_bytes(p);
            match fourth_root(vol) {
                Some(l) => Ok(Layout {
                    dims: [l; 4],
                    precision: p,
                    dims_from: PayloadSize,
                    precision_from,
                }),
                None => Err(ctx.layout(
                    F,
                    format!(
                        "no record states the lattice extents, and the `{kind}` record's {bytes} \
                         bytes at f{} ({by}) are {vol} sites, which is no hypercubic L^4 lattice",
                        p.bits()
                    ),
                    format!(
                        "pass the extents, e.g. `{}` (any XxYxZxT with {vol} sites fits)",
                        hints.example(example_dims(vol), p)
                    ),
                )),
            }
        }
        (None, None) => {
            let hyper: Vec<(usize, Precision)> =
                counts.iter().filter_map(|&(v, p)| fourth_root(v).map(|l| (l, p))).collect();
            // L^4 = 2 M^4 has no integer solution, so at most one precision is hypercubic; the
            // general branch below stays for clarity rather than by necessity.
            if let [(l, p)] = hyper.as_slice() {
                return Ok(Layout {
                    dims: [*l; 4],
                    precision: *p,
                    dims_from: PayloadSize,
                    precision_from: PayloadSize,
                });
            }
            let start = format!(
                "the file holds no ildg-format or SciDAC XML record with the lattice extents and \
                 precision, only the `{kind}` record of {bytes} bytes"
            );
            let (why, help) = match (hyper.as_slice(), counts.as_slice()) {
                (_, []) => (
                    format!(
                        "which is not a whole number of sites ({} bytes each at f32, {} at f64)",
                        site_bytes(Precision::F32),
                        site_bytes(Precision::F64)
                    ),
                    "the record is truncated or does not hold SU(3) gauge links; compare the \
                     file with its source"
                        .to_string(),
                ),
                ([], [(v, p), ..]) => (
                    format!(
                        "which holds {} but no hypercubic L^4 lattice, so the extents cannot \
                         be inferred",
                        counts_text(&counts)
                    ),
                    format!(
                        "pass the extents and precision, e.g. `{}` (any XxYxZxT with {v} sites \
                         fits at f{})",
                        hints.example(example_dims(*v), *p),
                        p.bits()
                    ),
                ),
                (several, _) => {
                    let lattices: Vec<String> =
                        several.iter().map(|&(l, p)| format!("{l}^4 at f{}", p.bits())).collect();
                    let lines: Vec<String> = several
                        .iter()
                        .map(|&(l, p)| format!("`{}`", hints.example([l; 4], p)))
                        .collect();
                    (
                        format!("which fits several lattices: {}", lattices.join(", ")),
                        format!("pass the one the file was written with: {}", lines.join(" or ")),
                    )
                }
            };
            Err(ctx.layout(F, format!("{start}, {why}"), help))
        }
    }
}

/// The help line when links read with a guessed or hinted layout are not unitary: the other
/// precision, if the payload holds a whole number of its sites.
fn other_reading(ctx: &Ctx, bin: &Record, tried: Precision) -> String {
    let other = match tried {
        Precision::F32 => Precision::F64,
        Precision::F64 => Precision::F32,
    };
    let bytes = bin.payload.len();
    if bytes % site_bytes(other) == 0 {
        let v = bytes / site_bytes(other);
        format!(
            "try the other precision: the {bytes} bytes are also {v} sites at f{}, e.g. `{}` \
             (any XxYxZxT with {v} sites fits)",
            other.bits(),
            ctx.hints.example(example_dims(v), other)
        )
    } else {
        format!(
            "the {bytes} bytes are no whole number of f{} sites either: check {} against the \
             lattice the file was written for, or the file is damaged or not big-endian \
             (ILDG stores big-endian)",
            other.bits(),
            ctx.hints.flags.dims
        )
    }
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

#[cfg(test)]
mod tests {
    use super::{example_dims, fourth_root};

    #[test]
    fn fourth_roots_are_exact() {
        assert_eq!(fourth_root(256), Some(4));
        assert_eq!(fourth_root(1), Some(1));
        assert_eq!(fourth_root(4096usize.pow(4)), Some(4096));
        for v in [0, 2, 255, 257, 512, 4095usize.pow(4) + 1] {
            assert_eq!(fourth_root(v), None, "{v}");
        }
    }

    #[test]
    fn example_dims_have_the_volume_and_are_near_cubic() {
        for (v, d) in [
            (256, [4, 4, 4, 4]),
            (512, [4, 4, 4, 8]),
            (8192, [8, 8, 8, 16]),
            (96, [2, 2, 2, 12]),
            (7, [1, 1, 1, 7]),
            (1, [1, 1, 1, 1]),
        ] {
            assert_eq!(example_dims(v), d, "{v}");
            assert_eq!(d.iter().product::<usize>(), v);
        }
    }
}
