//! This machine's roofline, detected and measured at run time.
//!
//! `symc inspect` places every kernel against two ceilings: the 128-bit FMA throughput (cranelift
//! emits f32x4 vectors only, cranelift.md §1) and main-memory bandwidth. Tables of CPU models are
//! wrong on VMs, under frequency scaling and on the next machine, so both are *measured*:
//! - the compute ceiling by a JIT kernel made by the same code generator as every symc kernel: 12
//!   independent f32x4 FMA chains (2 pipes × 4-cycle latency needs ≥ 8 in flight), unrolled 4×;
//! - the bandwidth by a STREAM-style triad `a = b + s·c` on arrays larger than the last-level
//!   cache, counted the STREAM way (3 × 8 bytes per element, no write-allocate).
//!
//! The measurement takes about a second, so it runs once per process ([`machine`]).

use crate::codegen::jit::{Arg, BufSpec, CompiledKernels, Jit, JitError, KernelSpec};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{BlockArg, InstBuilder, MemFlagsData, types};
use rayon::prelude::*;
use serde::Serialize;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Independent accumulators of the FMA probe: enough to cover latency × pipes on any current x86.
pub const FMA_CHAINS: usize = 12;
/// Copies of the 12 FMAs per loop iteration (amortises the loop counter and branch).
pub const FMA_UNROLL: usize = 4;
/// Multiplier and addend of every chain step: `acc ← acc·M + A` has the fixed point `A/(1−M)`
/// = 1, so values stay normal and finite for any number of iterations.
pub const FMA_M: f32 = 0.999_999;
pub const FMA_A: f32 = 1.0e-6;
/// f32 lanes of the widest vector cranelift emits.
pub const LANES: usize = 4;
/// FMA pipes assumed when the effective clock is derived from the measured ceiling.
pub const FMA_PIPES: usize = 2;

/// The CPU as the operating system reports it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Cpu {
    pub model: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// Vector-ISA features relevant to symc's code generator, in a fixed order.
    pub vector_isa: Vec<String>,
    /// Last-level cache size in bytes, when the OS reports it.
    pub llc_bytes: Option<usize>,
}

/// Measured ceilings of this machine.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Machine {
    pub cpu: Cpu,
    /// Whether the probe (and every symc kernel) uses a native FMA instruction.
    pub native_fma: bool,
    /// Measured f32x4 FMA throughput of one core, GFLOP/s.
    pub ceiling_gflops_core: f64,
    /// `ceiling_gflops_core / (pipes × lanes × 2)`: the clock that throughput implies.
    pub effective_ghz: f64,
    /// Measured triad bandwidth of one core, GB/s (a second core adds little on most
    /// machines, and nothing reliable on a shared VM).
    pub bandwidth_gbs: f64,
    /// Threads the kernels run on (rayon's pool); the compute ceiling scales with them.
    pub threads: usize,
}

impl Machine {
    /// Compute ceiling with all kernel threads, GFLOP/s.
    pub fn ceiling_gflops(&self) -> f64 {
        self.ceiling_gflops_core * self.threads as f64
    }
    /// Arithmetic intensity (flop/byte) where the memory and compute roofs meet.
    pub fn ridge(&self) -> f64 {
        self.ceiling_gflops() / self.bandwidth_gbs
    }
    /// `min(ceiling, intensity × bandwidth)`: the best a kernel of this intensity can do.
    pub fn attainable(&self, intensity: f64) -> f64 {
        self.ceiling_gflops().min(intensity * self.bandwidth_gbs)
    }
}

/// Read the CPU description: `/proc/cpuinfo` for the model name, the runtime feature detection
/// of `std` for the ISA (what the process may actually execute, which can differ from the flags
/// line inside a VM), sysfs for the last-level cache.
pub fn detect_cpu() -> Cpu {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| cpuinfo_model(&t))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    Cpu { model, cores, vector_isa: vector_isa(), llc_bytes: llc_bytes() }
}

/// The `model name` line of a `/proc/cpuinfo` text.
pub fn cpuinfo_model(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name").then(|| v.trim().to_string())
    })
}

#[cfg(target_arch = "x86_64")]
fn vector_isa() -> Vec<String> {
    let mut v = Vec::new();
    macro_rules! probe {
        ($($f:tt),*) => {$(
            if std::arch::is_x86_feature_detected!($f) {
                v.push($f.to_string());
            }
        )*};
    }
    probe!("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512vl", "avx512bw", "avx512dq");
    v
}

#[cfg(not(target_arch = "x86_64"))]
fn vector_isa() -> Vec<String> {
    Vec::new()
}

/// Size of the highest-level data or unified cache of CPU 0 (sysfs, e.g. `32768K`).
fn llc_bytes() -> Option<usize> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let mut best: Option<(u32, usize)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).ok().map(|s| s.trim().to_string());
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        if kind == "Instruction" {
            continue;
        }
        let (Ok(level), Some(bytes)) = (level.parse::<u32>(), parse_cache_size(&size)) else {
            continue;
        };
        if best.is_none_or(|(l, _)| level > l) {
            best = Some((level, bytes));
        }
    }
    best.map(|(_, b)| b)
}

/// Parse a sysfs cache size such as `48K`, `2048K` or `32M`.
pub fn parse_cache_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mul) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok().map(|n| n * mul)
}

/// The FMA probe kernel: buffer `seed` (12 f32x4 start values), buffer `out` (the 12
/// accumulators after the run). Each work item performs `FMA_UNROLL × FMA_CHAINS` steps
/// `acc ← fma(acc, M, A)`, i.e. `FMA_UNROLL × FMA_CHAINS × 4 × 2` flops.
pub fn fma_probe(keep_listings: bool) -> Result<CompiledKernels, JitError> {
    let mut jit = Jit::new()?;
    jit.keep_listings = keep_listings;
    let bytes = FMA_CHAINS * LANES * 4;
    let spec = KernelSpec {
        name: "fma_probe".into(),
        buffers: vec![
            BufSpec { name: "seed".into(), bytes, writable: false },
            BufSpec { name: "out".into(), bytes, writable: true },
        ],
        // The kernel touches only the two fixed buffers, whatever the range.
        items: 1 << 40,
        parallel: false,
    };
    jit.define(spec, |b, [args, start, end], host| {
        let flags = MemFlagsData::trusted();
        let seed = b.ins().load(types::I64, flags, args, 0);
        let out = b.ins().load(types::I64, flags, args, 8);
        let m = b.ins().f32const(FMA_M);
        let m = b.ins().splat(types::F32X4, m);
        let a = b.ins().f32const(FMA_A);
        let a = b.ins().splat(types::F32X4, a);
        let head = b.create_block();
        let body = b.create_block();
        let exit = b.create_block();
        b.append_block_param(head, types::I64);
        let mut init: Vec<BlockArg> = vec![start.into()];
        for k in 0..FMA_CHAINS {
            b.append_block_param(head, types::F32X4);
            init.push(b.ins().load(types::F32X4, flags, seed, (16 * k) as i32).into());
        }
        b.ins().jump(head, &init);
        b.switch_to_block(head);
        let params = b.block_params(head).to_vec();
        let c = b.ins().icmp(IntCC::SignedLessThan, params[0], end);
        let accs: Vec<BlockArg> = params[1..].iter().map(|&v| v.into()).collect();
        b.ins().brif(c, body, &[], exit, &accs);
        b.switch_to_block(body);
        let mut acc: Vec<_> = params[1..].to_vec();
        for _ in 0..FMA_UNROLL {
            for v in acc.iter_mut() {
                *v = if host.native_fma {
                    b.ins().fma(*v, m, a)
                } else {
                    let p = b.ins().fmul(*v, m);
                    b.ins().fadd(p, a)
                };
            }
        }
        let next = b.ins().iadd_imm_s(params[0], 1);
        let mut back: Vec<BlockArg> = vec![next.into()];
        back.extend(acc.iter().map(|&v| BlockArg::from(v)));
        b.ins().jump(head, &back);
        b.switch_to_block(exit);
        for _ in 0..FMA_CHAINS {
            b.append_block_param(exit, types::F32X4);
        }
        let res = b.block_params(exit).to_vec();
        for (k, v) in res.into_iter().enumerate() {
            b.ins().store(flags, v, out, (16 * k) as i32);
        }
        b.ins().return_(&[]);
    })?;
    jit.finish()
}

/// What the probe computes, in plain Rust: `items` rounds of `FMA_UNROLL` steps per chain
/// (with a fused multiply-add exactly when the kernel uses one).
pub fn fma_probe_reference(seed: &[f32], items: usize, fused: bool) -> Vec<f32> {
    seed.iter()
        .map(|&x| {
            let mut v = x;
            for _ in 0..items * FMA_UNROLL {
                v = if fused { v.mul_add(FMA_M, FMA_A) } else { v * FMA_M + FMA_A };
            }
            v
        })
        .collect()
}

/// Flops of one work item of the probe.
pub const FMA_FLOPS_PER_ITEM: f64 = (FMA_UNROLL * FMA_CHAINS * LANES * 2) as f64;

/// Run `f` (which does `work` units per call) repeatedly: grow the repetition count until a
/// batch lasts `min_batch`, then return the best time per call over `batches` batches.
pub fn best_time_per_call(mut f: impl FnMut(), min_batch: Duration, batches: usize) -> Duration {
    f();
    let mut reps = 1usize;
    loop {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        let e = t.elapsed();
        if e >= min_batch || reps >= 1 << 24 {
            break;
        }
        reps *= 2;
    }
    let mut best = Duration::MAX;
    for _ in 0..batches.max(1) {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed() / reps as u32);
    }
    best
}

/// Measure the single-core f32x4 FMA ceiling with the JIT probe, GFLOP/s.
pub fn measure_fma_ceiling() -> Result<(f64, bool), JitError> {
    let native = Jit::new()?.host.native_fma;
    let probe = fma_probe(false)?;
    let k = &probe.kernels()[0];
    let seed: Vec<f32> = (0..FMA_CHAINS * LANES).map(|i| 0.5 + i as f32 * 0.01).collect();
    let mut out = vec![0f32; seed.len()];
    // 20k items ≈ 7.7 Mflop ≈ 0.1 ms at 68 GFLOP/s: long enough to hide the call, short
    // enough that the fastest of 400 calls ran without losing its time slice on a busy machine.
    let items = 20_000;
    k.call(&mut [Arg::ro(&seed), Arg::rw(&mut out)], 0, items)?;
    let mut t = Duration::MAX;
    for _ in 0..400 {
        let t0 = Instant::now();
        k.call(&mut [Arg::ro(&seed), Arg::rw(&mut out)], 0, items)?;
        t = t.min(t0.elapsed());
    }
    Ok((FMA_FLOPS_PER_ITEM * items as f64 / t.as_secs_f64() / 1e9, native))
}

/// Triad `a[i] = b[i] + s·c[i]` over f64 arrays on one core; STREAM counting.
///
/// On a shared machine a pass over hundreds of MiB is almost always interrupted, so each
/// 1 MiB chunk is timed on its own and the fastest of 8 passes is kept per chunk: every chunk
/// still streams from memory (the arrays exceed the last-level cache, and each pass evicts the
/// previous one), but time slices lost to other processes drop out.
pub fn measure_bandwidth(array_bytes: usize) -> f64 {
    const CHUNK: usize = 1 << 17;
    let n = (array_bytes / 8).max(4 * CHUNK) / CHUNK * CHUNK;
    let b: Vec<f64> = (0..n).into_par_iter().map(|i| i as f64).collect();
    let c: Vec<f64> = (0..n).into_par_iter().map(|i| 1.0 / (1.0 + i as f64)).collect();
    let mut a = vec![0.0f64; n];
    a.par_chunks_mut(1 << 16).for_each(|ch| ch.fill(0.0));
    let s = 3.0;
    let mut best = vec![f64::INFINITY; n / CHUNK];
    for _ in 0..8 {
        for (k, ((a, b), c)) in
            a.chunks_mut(CHUNK).zip(b.chunks(CHUNK)).zip(c.chunks(CHUNK)).enumerate()
        {
            let t = Instant::now();
            for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
                *a = b + s * c;
            }
            std::hint::black_box(&a);
            best[k] = best[k].min(t.elapsed().as_secs_f64());
        }
    }
    (3 * 8 * n) as f64 / best.iter().sum::<f64>() / 1e9
}

/// Triad array size: large enough to leave the last-level cache (1.5 × LLC over the three
/// arrays), at least 32 MiB, at most 256 MiB per array so the probe stays cheap.
pub fn triad_array_bytes(llc: Option<usize>) -> usize {
    llc.map_or(64 << 20, |l| l / 2).clamp(32 << 20, 256 << 20)
}

/// Detect and measure once; later calls in the same process return the cached result.
pub fn machine() -> Result<&'static Machine, JitError> {
    static CACHE: OnceLock<Machine> = OnceLock::new();
    if let Some(m) = CACHE.get() {
        return Ok(m);
    }
    let cpu = detect_cpu();
    let (ceiling, native_fma) = measure_fma_ceiling()?;
    let bandwidth_gbs = measure_bandwidth(triad_array_bytes(cpu.llc_bytes));
    let m = Machine {
        effective_ghz: ceiling / (FMA_PIPES * LANES * 2) as f64,
        cpu,
        native_fma,
        ceiling_gflops_core: ceiling,
        bandwidth_gbs,
        threads: rayon::current_num_threads().max(1),
    };
    Ok(CACHE.get_or_init(|| m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_model_is_read_from_its_line() {
        let t =
            "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B45\nflags\t: fpu";
        assert_eq!(cpuinfo_model(t).as_deref(), Some("AMD EPYC 9B45"));
        assert_eq!(cpuinfo_model("processor : 0\n"), None);
    }

    #[test]
    fn cache_sizes_parse_with_units() {
        assert_eq!(parse_cache_size("48K"), Some(48 << 10));
        assert_eq!(parse_cache_size("32M\n"), Some(32 << 20));
        assert_eq!(parse_cache_size("4096"), Some(4096));
        assert_eq!(parse_cache_size("lots"), None);
    }

    #[test]
    fn roofline_meets_at_the_ridge() {
        let m = Machine {
            cpu: Cpu { model: "x".into(), cores: 2, vector_isa: vec![], llc_bytes: None },
            native_fma: true,
            ceiling_gflops_core: 64.0,
            effective_ghz: 4.0,
            bandwidth_gbs: 32.0,
            threads: 2,
        };
        assert_eq!(m.ceiling_gflops(), 128.0);
        assert_eq!(m.ridge(), 4.0);
        assert_eq!(m.attainable(1.0), 32.0);
        assert_eq!(m.attainable(100.0), 128.0);
    }
}
