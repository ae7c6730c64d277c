//! Text and JSON renderings of what `symc inspect` knows about the compiled kernels.
//!
//! Text views are terminal tables that fit 100 columns and use colour only when asked (the CLI
//! asks when stdout is a TTY). They are deterministic given their inputs: anything that varies
//! from run to run (timings, compile times, measured ceilings) lives only in the views that are
//! about measurement (`--bench`, the machine line), so the plan, CLIF, machine-code and
//! instruction-count views can be pinned by snapshot tests.

use crate::codegen::jit::KernelRecord;
use crate::codegen::plan::KernelPlan;
use crate::inspect::bench::BenchResult;
use crate::inspect::isa_stats::{Bound, KernelStats, Placement, kernel_stats, place};
use crate::inspect::roofline::Machine;
use crate::inspect::verify::VerifyReport;
use serde::Serialize;
use std::fmt::Write;

/// Terminal styling: ANSI colour only when `color` is set.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("1;32", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
}

/// Lower-case name of a pass, as printed everywhere.

/// `12.3 M`-style number with an SI prefix (decimal), 3 significant digits.
pub fn si(x: f64) -> String {
    let a = x.abs();
    let (v, p) = if a >= 1e12 {
        (x / 1e12, "T")
    } else if a >= 1e9 {
        (x / 1e9, "G")
    } else if a >= 1e6 {
        (x / 1e6, "M")
    } else if a >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let digits = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {p}").trim_end().to_string()
}

/// `si(x)` followed by a unit: `8.19 kflop`, `999 flop`.
pub fn si_unit(x: f64, unit: &str) -> String {
    let s = si(x);
    if s.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{s} {unit}")
    } else {
        format!("{s}{unit}")
    }
}

/// A duration in s/ms/µs/ns with 3 significant digits.
pub fn time(seconds: f64) -> String {
    let (v, u) = if seconds >= 1.0 {
        (seconds, "s")
    } else if seconds >= 1e-3 {
        (seconds * 1e3, "ms")
    } else if seconds >= 1e-6 {
        (seconds * 1e6, "µs")
    } else {
        (seconds * 1e9, "ns")
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {u}")
}

/// Cut `s` to `w` characters, marking the cut with `…`.
fn fit(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Word-wrap `text` to `width` columns; continuation lines start with `indent` spaces.
fn wrap(text: &str, first: usize, width: usize, indent: usize) -> String {
    let mut out = String::new();
    let mut col = first;
    for word in text.split_whitespace() {
        let w = word.chars().count();
        if col > indent && col + 1 + w > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
        } else if !out.is_empty() {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += w;
    }
    out
}

/// The kernel plan of every layer and pass: strategy and why, loop nest, layout, fusion, cost.
pub fn plan_view(plans: &[KernelPlan], st: Style) -> String {
    let mut o = String::new();
    for p in plans {
        let _ =
            writeln!(o, "{} {}  {}", st.bold(&p.layer), p.pass.name(), st.bold(p.strategy.name()));
        if !p.reason.is_empty() {
            let _ = writeln!(o, "  why      {}", wrap(&p.reason, 11, 100, 11));
        }
        let _ = writeln!(o, "  layout   {}", wrap(&p.layout, 11, 100, 11));
        if !p.fused.is_empty() {
            let _ = writeln!(o, "  fused    {}", wrap(&p.fused.join(", "), 11, 100, 11));
        }
        let _ = writeln!(
            o,
            "  cost     {}, {} per application ({:.2} flop/B)",
            si_unit(p.flops, "flop"),
            si_unit(p.bytes, "B"),
            if p.bytes > 0.0 { p.flops / p.bytes } else { 0.0 }
        );
        let _ = writeln!(o, "  kernels  {}", p.kernels.join(", "));
        // Emitters either give one loop per line (indented here by depth) or an already
        // indented nest (kept as it is).
        let pre_indented = p.loops.iter().any(|l| l.starts_with(' '));
        for (depth, l) in p.loops.iter().enumerate() {
            let pad = if pre_indented { 4 } else { 4 + 2 * depth };
            let _ = writeln!(o, "{}{}", " ".repeat(pad), l);
        }
        o.push('\n');
    }
    o
}

/// Cranelift IR of each kernel (before optimisation).
pub fn clif_view(records: &[KernelRecord], st: Style) -> String {
    let mut o = String::new();
    for r in records {
        let lines = r.clif.lines().count();
        let _ = writeln!(o, "{}", st.bold(&format!(";; kernel {} ({lines} CLIF lines)", r.name)));
        o.push_str(&r.clif);
        if !r.clif.ends_with('\n') {
            o.push('\n');
        }
        o.push('\n');
    }
    o
}

/// Machine code of each kernel: cranelift's VCode listing (x86 after register allocation).
pub fn asm_view(records: &[KernelRecord], st: Style) -> String {
    let mut o = String::new();
    for r in records {
        let _ = writeln!(
            o,
            "{}",
            st.bold(&format!(";; kernel {} ({} bytes of machine code)", r.name, r.code_bytes))
        );
        o.push_str(&r.vcode);
        if !r.vcode.ends_with('\n') {
            o.push('\n');
        }
        o.push('\n');
    }
    o
}

/// The measured machine and its roofline in three lines.
pub fn machine_view(m: &Machine, st: Style) -> String {
    let fma = if m.native_fma {
        format!("2 pipes × 4 lanes × 2 flop × {:.2} GHz", m.effective_ghz)
    } else {
        "no native FMA: mul + add".to_string()
    };
    format!(
        "{} {} · {} threads · {}\n{} f32x4 FMA {:.1} GFLOP/s/core, {:.1} on {} threads ({fma})\n\
         {} triad {:.1} GB/s · ridge {:.1} flop/B (below it a kernel is memory bound)\n",
        st.bold("machine "),
        m.cpu.model,
        m.threads,
        m.cpu.vector_isa.join(" "),
        st.bold("compute "),
        m.ceiling_gflops_core,
        m.ceiling_gflops(),
        m.threads,
        st.bold("memory  "),
        m.bandwidth_gbs,
        m.ridge(),
    )
}

/// Instruction counts by class per kernel (inside loops; whole kernel in the last column), then
/// each plan placed on the roofline of `m`.
pub fn stats_view(
    plans: &[KernelPlan],
    records: &[KernelRecord],
    m: &Machine,
    st: Style,
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}",
        st.bold(&format!(
            "{:<24}{:>7}{:>6}{:>6}{:>6}{:>6}{:>6}{:>6}{:>7}{:>6}{:>6}{:>12}",
            "kernel",
            "bytes",
            "loops",
            "vfma",
            "vload",
            "vstor",
            "vmov",
            "valu",
            "scalar",
            "int",
            "br",
            "loop/all"
        ))
    );
    for r in records {
        let s = kernel_stats(&r.name, &r.vcode, r.code_bytes);
        let c = &s.in_loops;
        let _ = writeln!(
            o,
            "{:<24}{:>7}{:>6}{:>6}{:>6}{:>6}{:>6}{:>6}{:>7}{:>6}{:>6}{:>12}",
            fit(&r.name, 23),
            r.code_bytes,
            s.loops,
            c.vector_fma,
            c.vector_load,
            c.vector_store,
            c.vector_move,
            c.vector_arith,
            c.scalar_float,
            c.integer,
            c.branch,
            format!("{}/{}", c.total, s.all.total),
        );
        if s.all.folded_loads > 0 {
            let _ = writeln!(
                o,
                "{}",
                st.dim(&format!(
                    "{:<24}+ {} loads folded into vector arithmetic",
                    "", s.all.folded_loads
                ))
            );
        }
    }
    o.push('\n');
    let _ = writeln!(
        o,
        "{}",
        st.bold(&format!(
            "{:<16}{:<16}{:>10}{:>10}{:>9}{:>14}  {}",
            "layer", "pass", "flop", "bytes", "flop/B", "attainable", "bound"
        ))
    );
    for p in plans {
        let pl = place(p, m);
        let _ = writeln!(
            o,
            "{:<16}{:<16}{:>10}{:>10}{:>9.2}{:>14}  {}",
            fit(&p.layer, 15),
            p.pass.name(),
            si(p.flops),
            si_unit(p.bytes, "B"),
            pl.intensity,
            format!("{:.1} GF/s", pl.attainable_gflops),
            match pl.bound {
                Bound::Memory => "memory",
                Bound::Compute => "compute",
            }
        );
    }
    o
}

/// Measured speed per plan against the ceilings.
pub fn bench_view(results: &[BenchResult], st: Style) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}",
        st.bold(&format!(
            "{:<16}{:<16}{:>11}{:>10}{:>12}{:>10}{:>11}",
            "layer", "pass", "time/app", "GFLOP/s", "of ceiling", "of roof", "compile"
        ))
    );
    for r in results {
        let _ = writeln!(
            o,
            "{:<16}{:<16}{:>11}{:>10.2}{:>11.1}%{:>9.1}%{:>11}",
            fit(&r.layer, 15),
            r.pass,
            time(r.seconds),
            r.gflops,
            100.0 * r.fraction_of_ceiling,
            100.0 * r.fraction_of_attainable,
            time(r.compile_seconds),
        );
    }
    o
}

/// The verdict of `--verify`: one line per check, its detail dimmed below, and a summary.
pub fn verify_view(rep: &VerifyReport, st: Style) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}",
        st.bold(&format!(
            "{:<42}{:>11}{:>11}{:>11}  {}",
            "check", "max abs", "max rel", "tolerance", "verdict"
        ))
    );
    for c in &rep.checks {
        if c.skipped {
            let _ = writeln!(o, "{:<42}{:>35}  {}", fit(&c.name, 41), "", st.dim("skip"));
            let _ = writeln!(o, "  {}", st.dim(&fit(&c.detail, 96)));
            continue;
        }
        let verdict = if c.passed { st.green("PASS") } else { st.red("FAIL") };
        let _ = writeln!(
            o,
            "{:<42}{:>11.2e}{:>11.2e}{:>11.0e}  {verdict}",
            fit(&c.name, 41),
            c.max_abs,
            c.max_rel,
            c.tolerance
        );
        let _ = writeln!(o, "  {}", st.dim(&fit(&c.detail, 96)));
    }
    let failed = rep.checks.iter().filter(|c| !c.passed).count();
    let ran = rep.checks.iter().filter(|c| !c.skipped).count();
    let _ = if failed == 0 {
        writeln!(o, "{}: all {ran} checks that apply passed", st.green("PASS"))
    } else {
        writeln!(o, "{}: {failed} of {ran} checks failed", st.red("FAIL"))
    };
    o
}

/// JSON form of one kernel plan.
#[derive(Clone, Debug, Serialize)]
pub struct PlanJson {
    pub layer: String,
    pub pass: &'static str,
    pub strategy: &'static str,
    pub reason: String,
    pub loops: Vec<String>,
    pub layout: String,
    pub fused: Vec<String>,
    pub flops: f64,
    pub bytes: f64,
    pub intensity: f64,
    pub kernels: Vec<String>,
    pub compile_seconds: f64,
    /// Present when the machine was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roofline: Option<Placement>,
}

impl PlanJson {
    pub fn new(p: &KernelPlan, m: Option<&Machine>) -> Self {
        PlanJson {
            layer: p.layer.clone(),
            pass: p.pass.name(),
            strategy: p.strategy.name(),
            reason: p.reason.clone(),
            loops: p.loops.clone(),
            layout: p.layout.clone(),
            fused: p.fused.clone(),
            flops: p.flops,
            bytes: p.bytes,
            intensity: if p.bytes > 0.0 { p.flops / p.bytes } else { 0.0 },
            kernels: p.kernels.clone(),
            compile_seconds: p.compile_time.as_secs_f64(),
            roofline: m.map(|m| place(p, m)),
        }
    }
}

/// JSON form of one kernel: listings on request, instruction counts always.
#[derive(Clone, Debug, Serialize)]
pub struct KernelJson {
    pub name: String,
    pub code_bytes: usize,
    pub compile_seconds: f64,
    pub stats: KernelStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clif: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asm: Option<String>,
}

impl KernelJson {
    pub fn new(r: &KernelRecord, clif: bool, asm: bool) -> Self {
        KernelJson {
            name: r.name.clone(),
            code_bytes: r.code_bytes,
            compile_seconds: r.compile_time.as_secs_f64(),
            stats: kernel_stats(&r.name, &r.vcode, r.code_bytes),
            clif: clif.then(|| r.clif.clone()),
            asm: asm.then(|| r.vcode.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_printed_with_three_significant_digits() {
        assert_eq!(si(1234.0), "1.23 k");
        assert_eq!(si(36_100_000.0), "36.1 M");
        assert_eq!(si(999.0), "999");
        assert_eq!(si_unit(999.0, "B"), "999 B");
        assert_eq!(si_unit(1500.0, "B"), "1.50 kB");
        assert_eq!(si(2.5e9), "2.50 G");
        assert_eq!(time(0.0123), "12.3 ms");
        assert_eq!(time(4.2e-6), "4.20 µs");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }

    #[test]
    fn long_plan_lines_wrap_under_their_label() {
        let t = wrap("aaa bbb ccc ddd", 11, 20, 11);
        assert_eq!(t, "aaa bbb\n           ccc ddd");
        assert!(t.lines().all(|l| l.chars().count() + 11 <= 20 + 11));
    }

    #[test]
    fn colour_only_when_asked() {
        assert_eq!(Style { color: false }.red("FAIL"), "FAIL");
        assert_eq!(Style { color: true }.red("FAIL"), "\x1b[1;31mFAIL\x1b[0m");
    }
}
