//! The one place where generated machine code meets Rust: JIT module lifecycle, kernel
//! declaration, and the (only) `unsafe` calls into generated code.
//!
//! Every kernel symc emits has the same native signature
//! `extern "C" fn(args: *const *mut u8, start: i64, end: i64)`: an array of buffer pointers and
//! a half-open range of work items (batch samples, sites, output rows — the emitter decides).
//! Alongside the code, each kernel carries a [`KernelSpec`] that states how many bytes every
//! buffer must hold and how many work items exist; these numbers are the compile-time constants
//! the emitter baked into the code. [`Kernel::call`] checks the caller's slices against the spec
//! before it jumps, so a wrong shape becomes an error, never an out-of-bounds access.
//!
//! **Contract with emitters** (what makes the `unsafe` sound): a kernel called with range
//! `[start, end)` and buffers of at least the declared sizes reads and writes only inside those
//! buffers, and writes only to buffers declared `writable`. When a spec is `parallel`, the items
//! of disjoint ranges touch disjoint bytes of every writable buffer, so the range may be split
//! across threads.

use cranelift_codegen::Context;
use cranelift_codegen::ir::{AbiParam, Function, Signature, types};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module};
use std::time::{Duration, Instant};

/// Errors of the JIT back end: a compiler bug, an unsupported host, or a valid model outside
/// what the back end handles ([`JitError::Unsupported`]). User mistakes are rejected in `sema`.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("this CPU is not supported by cranelift: {0}")]
    Host(String),
    #[error("internal compiler error while compiling kernel `{kernel}`: {message}")]
    Codegen { kernel: String, message: String },
    /// A valid model this back end cannot compile as given (e.g. a lattice no SIMD layout fits).
    #[error("{0}")]
    Unsupported(String),
    #[error("kernel `{kernel}`: {message}")]
    BadCall { kernel: String, message: String },
}

/// What a kernel expects of one buffer argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufSpec {
    pub name: String,
    /// Minimum length in bytes.
    pub bytes: usize,
    pub writable: bool,
}

/// The compile-time facts a kernel was specialised for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSpec {
    pub name: String,
    pub buffers: Vec<BufSpec>,
    /// Work items; `call` accepts any `[start, end)` within `0..items`.
    pub items: usize,
    /// Disjoint ranges write disjoint bytes (see the module contract).
    pub parallel: bool,
}

/// Text and numbers about one compiled kernel, for `symc inspect`.
#[derive(Clone, Debug, Default)]
pub struct KernelRecord {
    pub name: String,
    /// Cranelift IR as text (before optimisation).
    pub clif: String,
    /// Machine code as cranelift's VCode listing (x86 mnemonics after register allocation).
    pub vcode: String,
    pub code_bytes: usize,
    pub compile_time: Duration,
}

/// A buffer argument: read-only or writable bytes of a typed slice.
pub enum Arg<'a> {
    Ro(&'a [u8]),
    Rw(&'a mut [u8]),
}

impl<'a> Arg<'a> {
    /// A read-only buffer of plain numeric data.
    pub fn ro<T: Pod>(s: &'a [T]) -> Self {
        Arg::Ro(bytemuck::cast_slice(s))
    }
    /// A writable buffer of plain numeric data.
    pub fn rw<T: Pod>(s: &'a mut [T]) -> Self {
        Arg::Rw(bytemuck::cast_slice_mut(s))
    }
    fn len(&self) -> usize {
        match self {
            Arg::Ro(s) => s.len(),
            Arg::Rw(s) => s.len(),
        }
    }
    fn ptr(&mut self) -> *mut u8 {
        match self {
            Arg::Ro(s) => s.as_ptr() as *mut u8,
            Arg::Rw(s) => s.as_mut_ptr(),
        }
    }
}

/// Plain numeric data whose every bit pattern is valid. `bytemuck::Pod` is an `unsafe trait`,
/// so implementing it is the implementer's promise, not something safe code can get wrong.
pub use bytemuck::Pod;

type RawKernel = unsafe extern "C" fn(*const *mut u8, i64, i64);

/// A compiled kernel: a function pointer plus the spec it was compiled for.
#[derive(Clone)]
pub struct Kernel {
    spec: KernelSpec,
    f: RawKernel,
}

impl Kernel {
    pub fn spec(&self) -> &KernelSpec {
        &self.spec
    }

    fn check(&self, args: &[Arg<'_>], start: usize, end: usize) -> Result<(), JitError> {
        let bad = |message: String| JitError::BadCall { kernel: self.spec.name.clone(), message };
        if args.len() != self.spec.buffers.len() {
            return Err(bad(format!(
                "expected {} buffers, got {}",
                self.spec.buffers.len(),
                args.len()
            )));
        }
        for (a, b) in args.iter().zip(&self.spec.buffers) {
            if a.len() < b.bytes {
                return Err(bad(format!(
                    "buffer `{}` holds {} bytes, the kernel needs {}",
                    b.name,
                    a.len(),
                    b.bytes
                )));
            }
            if b.writable && matches!(a, Arg::Ro(_)) {
                return Err(bad(format!("buffer `{}` must be writable", b.name)));
            }
        }
        if start > end || end > self.spec.items {
            return Err(bad(format!("range {start}..{end} outside 0..{}", self.spec.items)));
        }
        Ok(())
    }

    /// Run items `[start, end)` on the calling thread.
    pub fn call(&self, args: &mut [Arg<'_>], start: usize, end: usize) -> Result<(), JitError> {
        self.check(args, start, end)?;
        let ptrs: Vec<*mut u8> = args.iter_mut().map(Arg::ptr).collect();
        // SAFETY: `check` proved every buffer at least as large as the sizes baked into the code
        // and the range within bounds; by the emitter contract (module doc) the kernel touches
        // nothing else. Writable buffers come from `&mut` slices, so nothing else aliases them.
        unsafe { (self.f)(ptrs.as_ptr(), start as i64, end as i64) };
        Ok(())
    }

    /// Run all items, split into contiguous chunks over the rayon pool. Only for `parallel` specs.
    pub fn call_parallel(&self, args: &mut [Arg<'_>], grain: usize) -> Result<(), JitError> {
        let items = self.spec.items;
        self.check(args, 0, items)?;
        if !self.spec.parallel {
            return Err(JitError::BadCall {
                kernel: self.spec.name.clone(),
                message: "kernel is not range-parallel".into(),
            });
        }
        let ptrs: Vec<usize> = args.iter_mut().map(|a| a.ptr() as usize).collect();
        let threads = rayon::current_num_threads().max(1);
        let chunk = items.div_ceil(threads).max(grain.max(1));
        let f = self.f;
        rayon::scope(|s| {
            let mut lo = 0;
            while lo < items {
                let hi = (lo + chunk).min(items);
                let ptrs = &ptrs;
                s.spawn(move |_| {
                    // SAFETY: as in `call`, plus the `parallel` contract: disjoint ranges write
                    // disjoint bytes, and the slices behind `ptrs` outlive the scope.
                    unsafe { f(ptrs.as_ptr() as *const *mut u8, lo as i64, hi as i64) }
                });
                lo = hi;
            }
        });
        Ok(())
    }
}

impl Kernel {
    /// Run the items of several disjoint ranges over the rayon pool, in chunks of at least
    /// `grain` items: a domain-decomposed operator runs its interior sites while the halo is in
    /// flight, then the boundary sites. Only for `parallel` specs; overlapping ranges (which
    /// would write the same bytes from two threads) are refused.
    pub fn call_parallel_ranges(
        &self,
        args: &mut [Arg<'_>],
        ranges: &[(usize, usize)],
        grain: usize,
    ) -> Result<(), JitError> {
        let bad = |message: String| JitError::BadCall { kernel: self.spec.name.clone(), message };
        if !self.spec.parallel {
            return Err(bad("kernel is not range-parallel".into()));
        }
        let mut sorted: Vec<(usize, usize)> = ranges.to_vec();
        sorted.sort_unstable();
        for w in sorted.windows(2) {
            if w[0].1 > w[1].0 {
                return Err(bad(format!("ranges {:?} and {:?} overlap", w[0], w[1])));
            }
        }
        for &(start, end) in &sorted {
            self.check(args, start, end)?;
        }
        let total: usize = sorted.iter().map(|(s, e)| e - s).sum();
        let threads = rayon::current_num_threads().max(1);
        let chunk = total.div_ceil(threads).max(grain.max(1));
        // Pieces of at most `chunk` items, gathered into tasks of about `chunk` items each.
        let mut tasks: Vec<Vec<(usize, usize)>> = vec![Vec::new()];
        let mut filled = 0;
        for &(start, end) in &sorted {
            let mut lo = start;
            while lo < end {
                let hi = (lo + chunk - filled).min(end);
                if let Some(t) = tasks.last_mut() {
                    t.push((lo, hi));
                }
                filled += hi - lo;
                if filled >= chunk {
                    tasks.push(Vec::new());
                    filled = 0;
                }
                lo = hi;
            }
        }
        let ptrs: Vec<usize> = args.iter_mut().map(|a| a.ptr() as usize).collect();
        let f = self.f;
        rayon::scope(|s| {
            for task in &tasks {
                let ptrs = &ptrs;
                s.spawn(move |_| {
                    for &(lo, hi) in task {
                        // SAFETY: as in `call_parallel`: every range was checked against the
                        // spec, the ranges are disjoint (checked above), so disjoint items write
                        // disjoint bytes, and the slices behind `ptrs` outlive the scope.
                        unsafe { f(ptrs.as_ptr() as *const *mut u8, lo as i64, hi as i64) }
                    }
                });
            }
        });
        Ok(())
    }
}

/// Owns the executable memory of a set of kernels. Kernels must not outlive it, which the
/// owning [`CompiledKernels`] guarantees by keeping both together.
struct CodeMemory(Option<JITModule>);

// SAFETY: after `finalize_definitions` the module is never mutated again until drop; the code
// pages are immutable and the function pointers may be called from any thread.
unsafe impl Send for CodeMemory {}
unsafe impl Sync for CodeMemory {}

impl Drop for CodeMemory {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            // SAFETY: every `Kernel` handed out lives inside the `CompiledKernels` that owns this
            // memory (kernels are only reachable through it), so none can run after this.
            unsafe { m.free_memory() };
        }
    }
}

/// A finalized set of kernels and their inspection records.
pub struct CompiledKernels {
    kernels: Vec<Kernel>,
    pub records: Vec<KernelRecord>,
    _code: CodeMemory,
}

impl CompiledKernels {
    pub fn kernel(&self, id: KernelId) -> &Kernel {
        &self.kernels[id.0]
    }
    pub fn kernels(&self) -> &[Kernel] {
        &self.kernels
    }
}

/// Index of a kernel within one [`Jit`] session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelId(pub usize);

/// Facts about the host that emitters need.
#[derive(Clone, Copy, Debug)]
pub struct HostFeatures {
    /// `fma` lowers to a native instruction (otherwise emit mul + add: the fallback is a libcall).
    pub native_fma: bool,
}

/// A compilation session: declare and define kernels, then [`Jit::finish`].
pub struct Jit {
    module: JITModule,
    fctx: FunctionBuilderContext,
    pending: Vec<(FuncId, KernelSpec)>,
    records: Vec<KernelRecord>,
    pub host: HostFeatures,
    /// Keep CLIF and machine-code listings (costs a little compile time).
    pub keep_listings: bool,
}

/// The host ISA with symc's settings (speed, native features).
pub fn host_isa() -> Result<OwnedTargetIsa, JitError> {
    let mut fb = settings::builder();
    fb.set("opt_level", "speed").map_err(|e| JitError::Host(e.to_string()))?;
    fb.set("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })
        .map_err(|e| JitError::Host(e.to_string()))?;
    let builder = cranelift_native::builder().map_err(|e| JitError::Host(e.to_string()))?;
    builder.finish(settings::Flags::new(fb)).map_err(|e| JitError::Host(e.to_string()))
}

impl Jit {
    pub fn new() -> Result<Jit, JitError> {
        let isa = host_isa()?;
        let native_fma = isa.has_native_fma();
        let jb = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
        Ok(Jit {
            module: JITModule::new(jb),
            fctx: FunctionBuilderContext::new(),
            pending: Vec::new(),
            records: Vec::new(),
            host: HostFeatures { native_fma },
            keep_listings: false,
        })
    }

    /// Pointer-sized integer type of the host.
    pub fn ptr_type(&self) -> cranelift_codegen::ir::Type {
        self.module.target_config().pointer_type()
    }

    /// Define one kernel. `build` receives a builder positioned in the entry block and the
    /// three entry values `(args, start, end)`; it must emit the body including the `return`.
    /// Blocks are sealed and the function finalized here.
    pub fn define(
        &mut self,
        spec: KernelSpec,
        build: impl FnOnce(&mut FunctionBuilder, [cranelift_codegen::ir::Value; 3], HostFeatures),
    ) -> Result<KernelId, JitError> {
        let ptr = self.ptr_type();
        let mut sig: Signature = self.module.make_signature();
        sig.params.push(AbiParam::new(ptr));
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        let err = |message: String| JitError::Codegen { kernel: spec.name.clone(), message };
        let id = self
            .module
            .declare_function(
                &format!("{}_{}", spec.name, self.pending.len()),
                Linkage::Local,
                &sig,
            )
            .map_err(|e| err(e.to_string()))?;
        let mut ctx: Context = self.module.make_context();
        ctx.func = Function::with_name_signature(Default::default(), sig);
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let p = b.block_params(entry);
            let vals = [p[0], p[1], p[2]];
            build(&mut b, vals, self.host);
            b.seal_all_blocks();
            b.finalize(self.module.target_config());
        }
        let clif = if self.keep_listings { ctx.func.display().to_string() } else { String::new() };
        ctx.set_disasm(self.keep_listings);
        let t0 = Instant::now();
        self.module.define_function(id, &mut ctx).map_err(|e| err(format!("{e:?}")))?;
        let compile_time = t0.elapsed();
        let (vcode, code_bytes) = match ctx.compiled_code() {
            Some(cc) => (cc.vcode.clone().unwrap_or_default(), cc.code_info().total_size as usize),
            None => (String::new(), 0),
        };
        self.records.push(KernelRecord {
            name: spec.name.clone(),
            clif,
            vcode,
            code_bytes,
            compile_time,
        });
        self.module.clear_context(&mut ctx);
        self.pending.push((id, spec));
        Ok(KernelId(self.pending.len() - 1))
    }

    /// Finalize all kernels and hand out callable handles.
    pub fn finish(mut self) -> Result<CompiledKernels, JitError> {
        self.module
            .finalize_definitions()
            .map_err(|e| JitError::Codegen { kernel: "<module>".into(), message: e.to_string() })?;
        let kernels = self
            .pending
            .into_iter()
            .map(|(id, spec)| {
                let p = self.module.get_finalized_function(id);
                // SAFETY: every function defined by `define` has the signature built there,
                // (ptr, i64, i64) -> (), in the host's default (SystemV) calling convention.
                let f: RawKernel = unsafe { std::mem::transmute::<*const u8, RawKernel>(p) };
                Kernel { spec, f }
            })
            .collect();
        Ok(CompiledKernels { kernels, records: self.records, _code: CodeMemory(Some(self.module)) })
    }
}

/// A strided matrix view into a slice: element `(i, j)` is `data[base + i*rs + j*cs]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatView {
    pub base: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl MatView {
    /// One past the largest element index the view touches (0 for an empty view).
    fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        self.base + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
    }
}

mod sealed {
    /// Closes [`super::GemmElem`]: the `unsafe` call into the `gemm` crate relies on the
    /// element type being exactly f32 or f64.
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// Element types the `gemm` crate multiplies: f32 and f64, nothing else (sealed).
pub trait GemmElem: sealed::Sealed + Pod + Send + Sync {
    const ZERO: Self;
    const ONE: Self;
}
impl GemmElem for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
}
impl GemmElem for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
}

/// `dst (+)= lhs * rhs` through the `gemm` crate's AVX-512/AVX2 micro-kernels, on `threads`
/// rayon threads of the current pool. Shapes and every view's extent are checked against the
/// slices first, so a wrong plan becomes an error, never an out-of-bounds access.
pub fn gemm<T: GemmElem>(
    dst: &mut [T],
    d: MatView,
    lhs: &[T],
    l: MatView,
    rhs: &[T],
    r: MatView,
    accumulate: bool,
    threads: usize,
) -> Result<(), JitError> {
    let bad = |message: String| JitError::BadCall { kernel: "gemm".into(), message };
    if l.rows != d.rows || r.cols != d.cols || l.cols != r.rows {
        return Err(bad(format!(
            "shapes {}x{} = {}x{} * {}x{}",
            d.rows, d.cols, l.rows, l.cols, r.rows, r.cols
        )));
    }
    for (name, v, len) in [("dst", d, dst.len()), ("lhs", l, lhs.len()), ("rhs", r, rhs.len())] {
        if v.end() > len {
            return Err(bad(format!("{name} view reaches {} of {len} elements", v.end())));
        }
    }
    if d.rows == 0 || d.cols == 0 {
        return Ok(());
    }
    // Distinct output elements must have distinct addresses, or the product would race.
    if d.rows > 1 && d.cols > 1 && (d.rs == 0 || d.cs == 0) {
        return Err(bad("dst view has a zero stride".into()));
    }
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    if l.cols == 0 {
        if !accumulate {
            for i in 0..d.rows {
                for j in 0..d.cols {
                    dst[d.base + i * d.rs + j * d.cs] = T::ZERO;
                }
            }
        }
        return Ok(());
    }
    // SAFETY: every index the product touches lies inside its slice (extents checked above);
    // `dst` is a unique borrow, so it aliases neither input; T is f32 or f64 (GemmElem).
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            l.cols,
            dst.as_mut_ptr().add(d.base),
            d.cs as isize,
            d.rs as isize,
            accumulate,
            lhs.as_ptr().add(l.base),
            l.cs as isize,
            l.rs as isize,
            rhs.as_ptr().add(r.base),
            r.cs as isize,
            r.rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        )
    };
    Ok(())
}
