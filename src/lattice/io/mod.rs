//! Reading and writing SU(3) gauge configurations in the formats lattice codes exchange:
//! NERSC, ILDG/SciDAC LIME, MILC v5 and DDalphaAMG.
//!
//! The format is detected from the file's content, never from its extension. Every reader runs
//! every check its format offers (checksums, header plaquette and link trace, sizes, unitarity of
//! the links) and either returns the checks it ran in [`GaugeFile::checks`] or, when one fails,
//! a [`GaugeIoError`] naming the file, the check, and the expected and found values. Writers
//! compute the same header values from the field exactly as a reader will see it (after rounding
//! to the stored precision), and replace the output file atomically.

pub mod basis;
mod bytes;
pub mod ddalphaamg;
pub mod lime;
pub mod milc;
pub mod nersc;

use super::gauge::GaugeField;
use super::geometry::Geometry;
use super::su3::Su3;
use num_complex::Complex;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The on-disk formats symc understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GaugeFormat {
    /// NERSC ASCII header + binary payload (2-row `4D_SU3_GAUGE` or `4D_SU3_GAUGE_3x3`).
    Nersc,
    /// A SciDAC LIME container with `ildg-binary-data` or `scidac-binary-data`.
    Ildg,
    /// MILC version 5 binary (magic 20103), single precision.
    Milc,
    /// DDalphaAMG native (T,Z,Y,X header, plaquette, links in T,Z,Y,X order), f64.
    DdalphaAmg,
}

impl GaugeFormat {
    /// The lower-case name used on the command line and in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            GaugeFormat::Nersc => "nersc",
            GaugeFormat::Ildg => "ildg",
            GaugeFormat::Milc => "milc",
            GaugeFormat::DdalphaAmg => "ddalphaamg",
        }
    }

    /// Parses a command-line name (`nersc`, `ildg`/`lime`/`scidac`, `milc`, `ddalphaamg`).
    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "nersc" => Some(GaugeFormat::Nersc),
            "ildg" | "lime" | "scidac" => Some(GaugeFormat::Ildg),
            "milc" => Some(GaugeFormat::Milc),
            "ddalphaamg" | "dd-alpha-amg" | "ddalpha" => Some(GaugeFormat::DdalphaAmg),
            _ => None,
        }
    }
}

impl fmt::Display for GaugeFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One verification a reader performed.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Check {
    /// What was checked, e.g. `NERSC CHECKSUM` or `SciDAC checksum suma`.
    pub name: String,
    /// The value the file claims (or the format requires).
    pub expected: String,
    /// The value computed from the data.
    pub found: String,
    pub ok: bool,
}

impl Check {
    fn new(name: &str, expected: impl Into<String>, found: impl Into<String>, ok: bool) -> Self {
        Check { name: name.to_string(), expected: expected.into(), found: found.into(), ok }
    }

    /// True for checks that verify a checksum (as opposed to physics values or sizes).
    pub fn is_checksum(&self) -> bool {
        self.name.to_ascii_lowercase().contains("checksum")
    }
}

/// A configuration as read from disk, with everything the file told us about itself.
#[derive(Clone, Debug)]
pub struct GaugeFile {
    pub field: GaugeField,
    pub format: GaugeFormat,
    /// A human-readable variant, e.g. `NERSC 4D_SU3_GAUGE IEEE32BIG`.
    pub variant: String,
    /// 32 or 64: the precision of the stored numbers.
    pub precision_bits: u32,
    /// Whether the payload is big-endian.
    pub big_endian: bool,
    /// Every check the reader ran, in order.
    pub checks: Vec<Check>,
    /// The plaquette the header states, converted to symc's normalisation (1 for the unit field).
    pub header_plaquette: Option<f64>,
    /// The link trace the header states (NERSC only), symc's normalisation.
    pub header_link_trace: Option<f64>,
    /// Header key/value pairs or XML records worth showing (`symc gauge info`).
    pub metadata: Vec<(String, String)>,
    /// Where the lattice extents came from (the file itself, unless it does not state them).
    pub dims_from: Provenance,
    /// Where the stored precision came from.
    pub precision_from: Provenance,
}

/// Where a reader learnt a file's lattice extents or precision. Most files state both; an
/// ILDG/SciDAC LIME file may hold nothing but its binary record, and then symc infers them from
/// the payload size or takes them from the user ([`LayoutHints`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// The file's header or metadata records.
    Header,
    /// The only layout the payload size allows (hypercubic L^4 lattice, or the one precision
    /// that fits given extents).
    PayloadSize,
    /// A hint from the caller (`--dims`, `--precision` and their variants on the command line).
    Hint,
}

impl Provenance {
    /// How `symc gauge info` and the loaders' notes say it.
    pub fn describe(self) -> &'static str {
        match self {
            Provenance::Header => "stated by the file",
            Provenance::PayloadSize => "inferred from the payload size",
            Provenance::Hint => "given on the command line",
        }
    }
}

impl GaugeFile {
    /// `Some(true)` when the file carries checksums and all verified, `Some(false)` when one
    /// failed (only possible with [`ReadOptions::verify`] off), `None` when the format or this
    /// file has no checksum.
    pub fn checksum_ok(&self) -> Option<bool> {
        let mut any = false;
        let mut ok = true;
        for c in self.checks.iter().filter(|c| c.is_checksum()) {
            any = true;
            ok &= c.ok;
        }
        any.then_some(ok)
    }

    /// True when every check passed.
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// A line for the user when the extents or the precision were not stated by the file, e.g.
    /// `lattice 4x4x4x4 and precision f32 inferred from the payload size`; `None` otherwise.
    /// Whoever loads a file reports it, so that a guess never passes unnoticed.
    pub fn layout_note(&self) -> Option<String> {
        if self.dims_from == Provenance::Header && self.precision_from == Provenance::Header {
            return None;
        }
        Some(describe_layout(
            self.field.dims(),
            self.precision_bits,
            self.dims_from,
            self.precision_from,
        ))
    }
}

/// `lattice 4x4x4x4 and precision f64 inferred from the payload size`, or with two sources
/// `lattice 4x4x4x8 given on the command line, precision f32 inferred from the payload size`.
pub(crate) fn describe_layout(
    dims: [usize; 4],
    bits: u32,
    dims_from: Provenance,
    precision_from: Provenance,
) -> String {
    let d = format!("lattice {}", dims_text(dims));
    if dims_from == precision_from {
        format!("{d} and precision f{bits} {}", dims_from.describe())
    } else {
        format!("{d} {}, precision f{bits} {}", dims_from.describe(), precision_from.describe())
    }
}

/// How strictly to read, and what to assume where a file is silent.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Fail on the first failed check (the default). With `false`, failed checks are recorded
    /// in [`GaugeFile::checks`] and the data is returned anyway; structural problems (truncation,
    /// unparsable headers) still fail.
    pub verify: bool,
    /// Lattice extents and precision for files that do not state them.
    pub hints: LayoutHints,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { verify: true, hints: LayoutHints::default() }
    }
}

/// The caller's word on a file's layout, for LIME files whose only record is the binary data.
/// A hint never overrides what a file states: one that contradicts the file's own header is an
/// error ([`GaugeIoError::HintConflict`]), so a stale flag cannot silently misread a file.
#[derive(Clone, Copy, Debug, Default)]
pub struct LayoutHints {
    /// Lattice extents x, y, z, t.
    pub dims: Option<[usize; 4]>,
    /// Stored precision.
    pub precision: Option<Precision>,
    /// The command-line flags that set the hints: the diagnostics name them.
    pub flags: HintFlags,
}

/// The names of the flags that carry [`LayoutHints`] on the command that is reading. A reader's
/// diagnostic has to say exactly what to pass, and the commands spell the flags differently
/// (`symc solve` already has a `--precision` of its own, so it takes `--gauge-precision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HintFlags {
    pub dims: &'static str,
    pub precision: &'static str,
}

impl Default for HintFlags {
    fn default() -> Self {
        HintFlags { dims: "--dims", precision: "--precision" }
    }
}

impl LayoutHints {
    /// `--dims 4x4x4x8 --precision f32` with this command's flag names.
    pub fn example(&self, dims: [usize; 4], precision: Precision) -> String {
        format!(
            "{} {} {} f{}",
            self.flags.dims,
            dims_text(dims),
            self.flags.precision,
            precision.bits()
        )
    }
}

/// `4x4x4x8`.
pub fn dims_text(d: [usize; 4]) -> String {
    format!("{}x{}x{}x{}", d[0], d[1], d[2], d[3])
}

/// Stored precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F64,
}

impl Precision {
    pub fn bits(self) -> u32 {
        match self {
            Precision::F32 => 32,
            Precision::F64 => 64,
        }
    }
    pub fn bytes(self) -> usize {
        self.bits() as usize / 8
    }
    /// 32 or 64 → a precision.
    pub fn from_bits(bits: u32) -> Option<Self> {
        match bits {
            32 => Some(Precision::F32),
            64 => Some(Precision::F64),
            _ => None,
        }
    }
}

/// Options for [`write_gauge`]. Formats ignore what they cannot express and reject what they
/// cannot store (MILC v5 is single precision only; DDalphaAMG is double precision only).
#[derive(Clone, Debug)]
pub struct WriteOptions {
    pub precision: Precision,
    /// NERSC: store only the first two rows (`4D_SU3_GAUGE`) instead of `4D_SU3_GAUGE_3x3`.
    pub nersc_two_rows: bool,
    /// NERSC and MILC: write little-endian instead of big-endian.
    pub little_endian: bool,
    /// Free text stored where the format has room (NERSC `ENSEMBLE_LABEL`, ILDG/SciDAC XML).
    pub label: String,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            precision: Precision::F64,
            nersc_two_rows: false,
            little_endian: false,
            label: "symc".to_string(),
        }
    }
}

/// Everything that can go wrong reading or writing a configuration.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum GaugeIoError {
    #[error("cannot read `{path}`: {source}")]
    #[diagnostic(code(symc::gauge::read), help("check that the path exists and is readable"))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write `{path}`: {source}")]
    #[diagnostic(
        code(symc::gauge::write),
        help("check that the directory exists, is writable and has free space")
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "`{path}` is not a gauge configuration symc recognises (found {found}); expected a NERSC \
         header, a LIME record, MILC magic 20103, or a DDalphaAMG header"
    )]
    #[diagnostic(
        code(symc::gauge::unknown_format),
        help(
            "symc reads NERSC, ILDG/SciDAC LIME, MILC v5 and DDalphaAMG files, detected by content"
        )
    )]
    UnknownFormat { path: PathBuf, found: String },

    #[error("`{path}` ({format}) is truncated: {what} needs {expected} bytes, found {found}")]
    #[diagnostic(
        code(symc::gauge::truncated),
        help("the file was cut short (interrupted copy or write?); fetch or regenerate it")
    )]
    Truncated { path: PathBuf, format: GaugeFormat, what: String, expected: u64, found: u64 },

    #[error(
        "`{path}` ({format}) has the wrong size for {what}: expected {expected} bytes, found {found}"
    )]
    #[diagnostic(
        code(symc::gauge::wrong_size),
        help(
            "the header and the payload disagree; the file is damaged or not what its header says"
        )
    )]
    WrongSize { path: PathBuf, format: GaugeFormat, what: String, expected: u64, found: u64 },

    #[error("`{path}` ({format}) has a bad header: {what}: expected {expected}, found {found}")]
    #[diagnostic(
        code(symc::gauge::bad_header),
        help("the header is damaged or written by a tool that does not follow the format")
    )]
    BadHeader { path: PathBuf, format: GaugeFormat, what: String, expected: String, found: String },

    #[error("`{path}` ({format}): {check} check failed: expected {expected}, found {found}")]
    #[diagnostic(
        code(symc::gauge::check_failed),
        help("the data does not match what the file says about itself: it is corrupt")
    )]
    CheckFailed {
        path: PathBuf,
        format: GaugeFormat,
        check: String,
        expected: String,
        found: String,
    },

    #[error(
        "`{path}` ({format}): {flag} {hint} contradicts the file, whose {stated_by} says {found}"
    )]
    #[diagnostic(
        code(symc::gauge::hint_conflict),
        help(
            "drop {flag}: this file states its own layout; hints are for LIME files that hold \
             nothing but the binary record"
        )
    )]
    HintConflict {
        path: PathBuf,
        format: GaugeFormat,
        flag: String,
        hint: String,
        stated_by: String,
        found: String,
    },

    /// The extents or precision of a file that does not state them could not be settled, or
    /// the settled layout does not fit the data; `help` says what to pass.
    #[error("`{path}` ({format}): {what}")]
    #[diagnostic(code(symc::gauge::layout), help("{help}"))]
    Layout { path: PathBuf, format: GaugeFormat, what: String, help: String },

    #[error("`{path}` ({format}): {what}")]
    #[diagnostic(
        code(symc::gauge::unsupported),
        help("convert the file with the tool that wrote it, or choose another output format")
    )]
    Unsupported { path: PathBuf, format: GaugeFormat, what: String },
}

/// Reads a configuration, detecting the format from the content and verifying every check.
pub fn read_gauge(path: &Path) -> Result<GaugeFile, GaugeIoError> {
    read_gauge_with(path, &ReadOptions::default())
}

/// [`read_gauge`] with options (e.g. to inspect a file whose checksum fails).
pub fn read_gauge_with(path: &Path, opts: &ReadOptions) -> Result<GaugeFile, GaugeIoError> {
    let data =
        std::fs::read(path).map_err(|source| GaugeIoError::Read { path: path.into(), source })?;
    let ctx = Ctx { path, verify: opts.verify, hints: opts.hints };
    let file = match detect(&data) {
        Some(GaugeFormat::Nersc) => nersc::read(&ctx, &data),
        Some(GaugeFormat::Ildg) => lime::read(&ctx, &data),
        Some(GaugeFormat::Milc) => milc::read(&ctx, &data),
        Some(GaugeFormat::DdalphaAmg) => ddalphaamg::read(&ctx, &data),
        None => {
            Err(GaugeIoError::UnknownFormat { path: path.into(), found: describe_start(&data) })
        }
    }?;
    // The LIME reader compares hints with its XML records as it parses them; for every other
    // format the header is the whole truth, compared here.
    if file.dims_from == Provenance::Header
        && let Some(d) = opts.hints.dims
    {
        ctx.hint_agrees(file.format, Hint::Dims(d), "header", &dims_text(file.field.dims()))?;
    }
    if file.precision_from == Provenance::Header
        && let Some(p) = opts.hints.precision
    {
        ctx.hint_agrees(
            file.format,
            Hint::Precision(p),
            "header",
            &format!("f{}", file.precision_bits),
        )?;
    }
    Ok(file)
}

/// Detects the format from the first bytes (and, for DDalphaAMG, which has no magic number,
/// from a plausible header).
pub fn detect(data: &[u8]) -> Option<GaugeFormat> {
    let start = &data[..data.len().min(64)];
    let text = String::from_utf8_lossy(start);
    if text.trim_start().starts_with("BEGIN_HEADER") {
        return Some(GaugeFormat::Nersc);
    }
    if data.len() >= 4 && data[..4] == lime::MAGIC.to_be_bytes() {
        return Some(GaugeFormat::Ildg);
    }
    if data.len() >= 4 {
        let w = [data[0], data[1], data[2], data[3]];
        if u32::from_le_bytes(w) == milc::MAGIC || u32::from_be_bytes(w) == milc::MAGIC {
            return Some(GaugeFormat::Milc);
        }
    }
    if ddalphaamg::plausible_header(data) {
        return Some(GaugeFormat::DdalphaAmg);
    }
    None
}

fn describe_start(data: &[u8]) -> String {
    if data.is_empty() {
        return "an empty file".to_string();
    }
    let hex: Vec<String> = data.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{} bytes starting with {}", data.len(), hex.join(" "))
}

/// Writes `field` in `format`, atomically (temporary file in the same directory + rename).
pub fn write_gauge(
    path: &Path,
    field: &GaugeField,
    format: GaugeFormat,
    opts: &WriteOptions,
) -> Result<(), GaugeIoError> {
    let bytes = encode(path, field, format, opts)?;
    write_atomic(path, &bytes)
}

/// The bytes [`write_gauge`] would write (used by tests and by `write_gauge`).
pub fn encode(
    path: &Path,
    field: &GaugeField,
    format: GaugeFormat,
    opts: &WriteOptions,
) -> Result<Vec<u8>, GaugeIoError> {
    match format {
        GaugeFormat::Nersc => Ok(nersc::encode(field, opts)),
        GaugeFormat::Ildg => Ok(lime::encode(field, opts)),
        GaugeFormat::Milc => milc::encode(path, field, opts),
        GaugeFormat::DdalphaAmg => ddalphaamg::encode(path, field, opts),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so readers never
/// see a half-written configuration.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), GaugeIoError> {
    let werr = |source| GaugeIoError::Write { path: path.into(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(werr)?;
    tmp.write_all(bytes).map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    // Temporary files are created private (0600); a configuration is ordinary shared data.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::Permissions::from_mode(0o644);
        tmp.as_file().set_permissions(mode).map_err(werr)?;
    }
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(())
}

/// Per-read context: the path for error messages, whether failed checks abort, and the
/// caller's layout hints.
pub(crate) struct Ctx<'a> {
    pub path: &'a Path,
    pub verify: bool,
    pub hints: LayoutHints,
}

/// One layout hint, for comparing it with what a file states.
pub(crate) enum Hint {
    Dims([usize; 4]),
    Precision(Precision),
}

impl Ctx<'_> {
    /// Fails with [`GaugeIoError::HintConflict`] unless `hint` says what the file's `stated_by`
    /// (`header`, `ildg-format record`, ...) says (`found`, formatted as the hint would be).
    pub fn hint_agrees(
        &self,
        format: GaugeFormat,
        hint: Hint,
        stated_by: &str,
        found: &str,
    ) -> Result<(), GaugeIoError> {
        let (flag, text) = match hint {
            Hint::Dims(d) => (self.hints.flags.dims, dims_text(d)),
            Hint::Precision(p) => (self.hints.flags.precision, format!("f{}", p.bits())),
        };
        if text == found {
            return Ok(());
        }
        Err(GaugeIoError::HintConflict {
            path: self.path.into(),
            format,
            flag: flag.into(),
            hint: text,
            stated_by: stated_by.into(),
            found: found.into(),
        })
    }

    pub fn layout(
        &self,
        format: GaugeFormat,
        what: impl Into<String>,
        help: impl Into<String>,
    ) -> GaugeIoError {
        GaugeIoError::Layout {
            path: self.path.into(),
            format,
            what: what.into(),
            help: help.into(),
        }
    }

    /// Records a check; with verification on, a failed check becomes an error.
    pub fn check(
        &self,
        format: GaugeFormat,
        checks: &mut Vec<Check>,
        c: Check,
    ) -> Result<(), GaugeIoError> {
        if !c.ok && self.verify {
            return Err(GaugeIoError::CheckFailed {
                path: self.path.into(),
                format,
                check: c.name,
                expected: c.expected,
                found: c.found,
            });
        }
        checks.push(c);
        Ok(())
    }

    pub fn truncated(
        &self,
        format: GaugeFormat,
        what: &str,
        expected: u64,
        found: u64,
    ) -> GaugeIoError {
        GaugeIoError::Truncated {
            path: self.path.into(),
            format,
            what: what.into(),
            expected,
            found,
        }
    }

    pub fn wrong_size(
        &self,
        format: GaugeFormat,
        what: &str,
        expected: u64,
        found: u64,
    ) -> GaugeIoError {
        GaugeIoError::WrongSize {
            path: self.path.into(),
            format,
            what: what.into(),
            expected,
            found,
        }
    }

    pub fn bad_header(
        &self,
        format: GaugeFormat,
        what: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> GaugeIoError {
        GaugeIoError::BadHeader {
            path: self.path.into(),
            format,
            what: what.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub fn unsupported(&self, format: GaugeFormat, what: impl Into<String>) -> GaugeIoError {
        GaugeIoError::Unsupported { path: self.path.into(), format, what: what.into() }
    }
}

/// The largest extent we accept per direction: protects against allocating absurd amounts of
/// memory for a corrupt header before the size check can run.
pub(crate) const MAX_EXTENT: u64 = 1 << 12;

/// Validates header dimensions and turns them into a geometry.
pub(crate) fn checked_dims(
    ctx: &Ctx,
    format: GaugeFormat,
    dims: [i64; 4],
) -> Result<[usize; 4], GaugeIoError> {
    if dims.iter().any(|&d| d < 1 || d as u64 > MAX_EXTENT) {
        return Err(ctx.bad_header(
            format,
            "lattice dimensions",
            format!("four extents in 1..={MAX_EXTENT}"),
            format!("{} {} {} {}", dims[0], dims[1], dims[2], dims[3]),
        ));
    }
    let d = [dims[0] as usize, dims[1] as usize, dims[2] as usize, dims[3] as usize];
    let vol: u128 = d.iter().map(|&x| x as u128).product();
    if vol > u32::MAX as u128 / 4 {
        return Err(ctx.bad_header(
            format,
            "lattice volume",
            "a volume below 2^30 sites",
            format!("{vol}"),
        ));
    }
    Ok(d)
}

/// Builds a field from links in symc's order (`links[site*4+mu]`).
pub(crate) fn field_from_links(dims: [usize; 4], links: Vec<Su3<f64>>) -> GaugeField {
    GaugeField { geom: Geometry::new(dims), links }
}

/// Decodes a row-major 3x3 complex matrix from 18 numbers.
pub(crate) fn su3_from_18(v: &[f64]) -> Su3<f64> {
    let mut u = Su3::zero();
    for r in 0..3 {
        for c in 0..3 {
            u.m[r][c] = Complex::new(v[6 * r + 2 * c], v[6 * r + 2 * c + 1]);
        }
    }
    u
}

/// Decodes a 2-row matrix (12 numbers) and rebuilds row 2 = conj(row0 x row1).
pub(crate) fn su3_from_12(v: &[f64]) -> Su3<f64> {
    let mut u = Su3::zero();
    for r in 0..2 {
        for c in 0..3 {
            u.m[r][c] = Complex::new(v[6 * r + 2 * c], v[6 * r + 2 * c + 1]);
        }
    }
    u.m[2] = super::su3::third_row(&u.m[0], &u.m[1]);
    u
}

/// The 18 numbers of a matrix, row-major (re, im).
pub(crate) fn su3_to_18(u: &Su3<f64>) -> [f64; 18] {
    let mut v = [0.0; 18];
    for r in 0..3 {
        for c in 0..3 {
            v[6 * r + 2 * c] = u.m[r][c].re;
            v[6 * r + 2 * c + 1] = u.m[r][c].im;
        }
    }
    v
}

/// The field as a reader will see it after storing at `precision` (and, for 2-row storage,
/// rebuilding the third row): writers compute header plaquettes from this.
pub(crate) fn as_stored(field: &GaugeField, precision: Precision, two_rows: bool) -> GaugeField {
    let mut out = field.clone();
    for u in out.links.iter_mut() {
        let mut v = su3_to_18(u);
        if precision == Precision::F32 {
            for x in v.iter_mut() {
                *x = *x as f32 as f64;
            }
        }
        *u = if two_rows { su3_from_12(&v[..12]) } else { su3_from_18(&v) };
    }
    out
}

/// Largest element of |U U^dagger - 1| and |det U - 1| over the field: a flipped bit in an
/// exponent or sign shows up here even in formats without checksums.
pub(crate) fn unitarity_violation(field: &GaugeField) -> f64 {
    let mut worst: f64 = 0.0;
    for u in &field.links {
        let p = *u * u.adj();
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                let d = (p.m[i][j] - Complex::new(want, 0.0)).norm();
                worst = worst.max(if d.is_nan() { f64::INFINITY } else { d });
            }
        }
        let dd = (u.det() - Complex::new(1.0, 0.0)).norm();
        worst = worst.max(if dd.is_nan() { f64::INFINITY } else { dd });
    }
    worst
}

/// The unitarity tolerance for data stored at `bits` precision. Real files written in single
/// precision carry a few ulps of drift per element; 2e-5 is ~100 ulp of f32.
pub(crate) fn unitarity_tolerance(bits: u32) -> f64 {
    if bits == 32 { 2e-5 } else { 1e-9 }
}

/// The unitarity check of a field stored at `bits` precision (not yet recorded).
pub(crate) fn unitarity_check(field: &GaugeField, bits: u32) -> Check {
    let tol = unitarity_tolerance(bits);
    let worst = unitarity_violation(field);
    Check::new(
        "SU(3) unitarity max|UU^dagger-1|, |det U-1|",
        format!("<= {tol:.0e}"),
        format!("{worst:.3e}"),
        worst <= tol,
    )
}

/// Runs the unitarity check and records it.
pub(crate) fn check_unitarity(
    ctx: &Ctx,
    format: GaugeFormat,
    field: &GaugeField,
    bits: u32,
    checks: &mut Vec<Check>,
) -> Result<(), GaugeIoError> {
    ctx.check(format, checks, unitarity_check(field, bits))
}

/// A plaquette comparison check: `|expected - found| <= tol`.
pub(crate) fn value_check(name: &str, expected: f64, found: f64, tol: f64) -> Check {
    let ok = (expected - found).abs() <= tol;
    Check::new(name, format!("{expected:.10} (tolerance {tol:.0e})"), format!("{found:.10}"), ok)
}

/// Formats a u32 checksum as lower-case hex, as the headers do.
pub(crate) fn hex32(x: u32) -> String {
    format!("{x:x}")
}

/// The two ways symc writes a UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampStyle {
    /// `Sat Dec  5 08:41:52 2026 UTC`: C's `asctime` layout (day padded with a space) plus the
    /// zone, as NERSC `CREATION_DATE`, MILC's 64-byte time stamp and SciDAC `<date>` carry it.
    Header,
    /// `20261205-084152`: sorts by time and is safe in a file name (default run folders).
    Compact,
}

/// `at` in UTC, formatted in `style`. The one place symc turns a clock into a calendar date,
/// through the `time` crate rather than hand-written civil-date arithmetic. Times the crate
/// cannot represent (before 1970 is fine; beyond year 9999 is not) print as the Unix epoch:
/// a header date is informational and must never make a write fail.
pub fn utc_timestamp(at: std::time::SystemTime, style: TimestampStyle) -> String {
    use time::macros::format_description;
    let secs = match at.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let formatted = match style {
        TimestampStyle::Header => t.format(format_description!(
            "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year] UTC"
        )),
        TimestampStyle::Compact => {
            t.format(format_description!("[year][month][day]-[hour][minute][second]"))
        }
    };
    // Formatting an OffsetDateTime into a String has every component it needs and cannot fail.
    formatted.unwrap_or_default()
}
