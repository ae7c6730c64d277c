//! SIMD building blocks shared by every emitter: the element type (f32 for training, f64 for
//! checks), vector loads and stores, FMA that falls back to mul + add when the ISA has no native
//! FMA (cranelift's fallback is a libcall), horizontal sums, and the transcendental functions
//! (exp, log, tanh, sigmoid) that cranelift does not provide.
//!
//! Vectors are 128 bits wide (f32x4 / f64x2): cranelift 0.135 lowers nothing wider on x86-64
//! (see `design/cranelift.md` §1). exp and log are range reduction plus polynomials accurate to
//! about one ulp of the element type, so the f64 kernels can be checked against the reference at
//! 1e-12 and the f32 kernels at 1e-5.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::FunctionBuilder;

use super::jit::{GemmElem, HostFeatures};
use crate::ir::Activation;

/// Element type of a compiled network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Single precision: the training type.
    F32,
    /// Double precision: for gradient checks against finite differences.
    F64,
}

impl Precision {
    /// Scalar CLIF type.
    pub fn scalar(self) -> Type {
        match self {
            Precision::F32 => types::F32,
            Precision::F64 => types::F64,
        }
    }
    /// 128-bit vector CLIF type.
    pub fn vector(self) -> Type {
        match self {
            Precision::F32 => types::F32X4,
            Precision::F64 => types::F64X2,
        }
    }
    /// Integer vector type of the same shape (for bit manipulation).
    pub fn int_vector(self) -> Type {
        match self {
            Precision::F32 => types::I32X4,
            Precision::F64 => types::I64X2,
        }
    }
    /// Lanes per vector.
    pub fn lanes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 2,
        }
    }
    /// Bytes per scalar.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }
}

/// A Rust scalar type kernels are generated for: f32 or f64. The one bridge from a type
/// parameter to its [`Precision`], which holds every fact about it (lanes, CLIF types, name), so
/// generic runtime code and emitters agree by construction.
pub trait Element: crate::lattice::Real + GemmElem {
    const PRECISION: Precision;
}
impl Element for f32 {
    const PRECISION: Precision = Precision::F32;
}
impl Element for f64 {
    const PRECISION: Precision = Precision::F64;
}

/// What every emitter needs to know about the target and the element type.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub prec: Precision,
    pub host: HostFeatures,
}

/// Loads through pointers the kernel spec proved valid: `trusted` lets cranelift fold loads into
/// FMA memory operands.
pub fn flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Flags for loads from memory that no store of the same kernel can reach: in-bounds (the
/// kernel spec proves it), never written while the kernel runs, so free to move or merge.
pub fn ro_flags() -> MemFlagsData {
    MemFlagsData::trusted().with_readonly().with_can_move()
}

impl Target {
    /// Load buffer pointer number `idx` from the kernel's argument array.
    pub fn arg_ptr(&self, b: &mut FunctionBuilder, args: Value, idx: usize) -> Value {
        b.ins().load(types::I64, flags(), args, (8 * idx) as i32)
    }
    /// `ptr + elements * sizeof(elem)` for a runtime element offset (i64).
    pub fn offset(&self, b: &mut FunctionBuilder, ptr: Value, elements: Value) -> Value {
        let bytes = b.ins().imul_imm_s(elements, self.prec.bytes() as i64);
        b.ins().iadd(ptr, bytes)
    }
    /// `ptr + elements * sizeof(elem)` for a compile-time element offset.
    pub fn offset_const(&self, b: &mut FunctionBuilder, ptr: Value, elements: i64) -> Value {
        if elements == 0 {
            ptr
        } else {
            b.ins().iadd_imm_s(ptr, elements * self.prec.bytes() as i64)
        }
    }
    pub fn vload(&self, b: &mut FunctionBuilder, ptr: Value, elem_off: i64) -> Value {
        b.ins().load(self.prec.vector(), flags(), ptr, self.byte_off(elem_off))
    }
    pub fn vstore(&self, b: &mut FunctionBuilder, v: Value, ptr: Value, elem_off: i64) {
        b.ins().store(flags(), v, ptr, self.byte_off(elem_off));
    }
    pub fn sload(&self, b: &mut FunctionBuilder, ptr: Value, elem_off: i64) -> Value {
        b.ins().load(self.prec.scalar(), flags(), ptr, self.byte_off(elem_off))
    }
    pub fn sstore(&self, b: &mut FunctionBuilder, v: Value, ptr: Value, elem_off: i64) {
        b.ins().store(flags(), v, ptr, self.byte_off(elem_off));
    }
    /// Vector load from a buffer the kernel never writes. Such loads are marked `readonly` and
    /// `can_move`, which makes them pure for cranelift's egraph: it places each one next to its
    /// use instead of at the top of the block (where the register pressure of a whole
    /// register block forced spills), merges duplicates, and can fold a single-use load into
    /// the instruction that consumes it (`vbroadcastss m32`, FMA memory operands).
    pub fn vload_ro(&self, b: &mut FunctionBuilder, ptr: Value, elem_off: i64) -> Value {
        b.ins().load(self.prec.vector(), ro_flags(), ptr, self.byte_off(elem_off))
    }
    /// [`Target::splat_load`] from a buffer the kernel never writes (see [`Target::vload_ro`]).
    pub fn splat_load_ro(&self, b: &mut FunctionBuilder, ptr: Value, elem_off: i64) -> Value {
        let s = b.ins().load(self.prec.scalar(), ro_flags(), ptr, self.byte_off(elem_off));
        b.ins().splat(self.prec.vector(), s)
    }
    /// A scalar loaded from memory and broadcast to every lane.
    pub fn splat_load(&self, b: &mut FunctionBuilder, ptr: Value, elem_off: i64) -> Value {
        let s = self.sload(b, ptr, elem_off);
        b.ins().splat(self.prec.vector(), s)
    }
    fn byte_off(&self, elem_off: i64) -> i32 {
        let bytes = elem_off * self.prec.bytes() as i64;
        i32::try_from(bytes).expect("buffer offsets fit in 2 GiB (checked by the kernel spec)")
    }
    /// Scalar constant.
    pub fn sconst(&self, b: &mut FunctionBuilder, x: f64) -> Value {
        match self.prec {
            Precision::F32 => b.ins().f32const(x as f32),
            Precision::F64 => b.ins().f64const(x),
        }
    }
    /// Vector constant (every lane `x`).
    pub fn vconst(&self, b: &mut FunctionBuilder, x: f64) -> Value {
        let s = self.sconst(b, x);
        b.ins().splat(self.prec.vector(), s)
    }
    /// Integer vector constant (every lane `x`), same shape as the float vector.
    fn iconst_v(&self, b: &mut FunctionBuilder, x: i64) -> Value {
        let (st, vt) = match self.prec {
            Precision::F32 => (types::I32, types::I32X4),
            Precision::F64 => (types::I64, types::I64X2),
        };
        let s = b.ins().iconst(st, x);
        b.ins().splat(vt, s)
    }
    fn to_int(&self, b: &mut FunctionBuilder, v: Value) -> Value {
        b.ins().bitcast(self.prec.int_vector(), MemFlagsData::new(), v)
    }
    fn to_float(&self, b: &mut FunctionBuilder, v: Value) -> Value {
        b.ins().bitcast(self.prec.vector(), MemFlagsData::new(), v)
    }

    /// `x * y + z`, fused where the ISA has a native FMA.
    pub fn fma(&self, b: &mut FunctionBuilder, x: Value, y: Value, z: Value) -> Value {
        if self.host.native_fma {
            b.ins().fma(x, y, z)
        } else {
            let p = b.ins().fmul(x, y);
            b.ins().fadd(p, z)
        }
    }

    /// Sum of the lanes of a vector, as a scalar.
    pub fn hsum(&self, b: &mut FunctionBuilder, v: Value) -> Value {
        let mut acc = b.ins().extractlane(v, 0u8);
        for lane in 1..self.prec.lanes() {
            let x = b.ins().extractlane(v, lane as u8);
            acc = b.ins().fadd(acc, x);
        }
        acc
    }

    /// Horner evaluation of `sum_i coeffs[i] * x^i` on vectors.
    fn poly(&self, b: &mut FunctionBuilder, x: Value, coeffs: &[f64]) -> Value {
        let mut acc = self.vconst(b, *coeffs.last().expect("non-empty polynomial"));
        for &c in coeffs.iter().rev().skip(1) {
            let cv = self.vconst(b, c);
            acc = self.fma(b, acc, x, cv);
        }
        acc
    }

    /// e^x on vectors: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor polynomial (degree 7
    /// for f32, 12 for f64: truncation below half an ulp), 2^n built in the exponent bits.
    /// Inputs are clamped to the normal range, so the result is finite and positive.
    pub fn vexp(&self, b: &mut FunctionBuilder, x: Value) -> Value {
        let (lo, hi, degree, ln2_hi, ln2_lo, magic, shift) = match self.prec {
            Precision::F32 => {
                (-87.0, 88.0, 7, 0.693359375, -2.121_944_4e-4, 8_388_608.0 + 127.0, 23)
            }
            Precision::F64 => (
                -707.0,
                709.0,
                12,
                6.931_471_803_691_238e-1,
                1.908_214_929_270_587_7e-10,
                4_503_599_627_370_496.0 + 1023.0,
                52,
            ),
        };
        let lo = self.vconst(b, lo);
        let hi = self.vconst(b, hi);
        let x = b.ins().fmax(x, lo);
        let x = b.ins().fmin(x, hi);
        let log2e = self.vconst(b, std::f64::consts::LOG2_E);
        let t = b.ins().fmul(x, log2e);
        let n = b.ins().nearest(t);
        let nhi = self.vconst(b, -ln2_hi);
        let nlo = self.vconst(b, -ln2_lo);
        let r = self.fma(b, n, nhi, x);
        let r = self.fma(b, n, nlo, r);
        let mut coeffs = vec![1.0f64];
        for k in 1..=degree {
            let prev = coeffs[k - 1];
            coeffs.push(prev / k as f64);
        }
        let p = self.poly(b, r, &coeffs);
        // 2^n: n + magic puts the biased exponent n + bias in the low mantissa bits; shifting
        // it into the exponent field drops the magic's own exponent bits off the top.
        let m = self.vconst(b, magic);
        let biased = b.ins().fadd(n, m);
        let bits = self.to_int(b, biased);
        let bits = b.ins().ishl_imm_u(bits, shift);
        let scale = self.to_float(b, bits);
        b.ins().fmul(p, scale)
    }

    /// Natural log on vectors of positive normal numbers: x = 2^e m with m in [sqrt(1/2),
    /// sqrt(2)), log m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172, by its odd series.
    pub fn vlog(&self, b: &mut FunctionBuilder, x: Value) -> Value {
        let (shift, mant_mask, one_bits, magic_bits, magic, bias, terms) = match self.prec {
            Precision::F32 => {
                (23i64, 0x007F_FFFFi64, 0x3F80_0000i64, 0x4B00_0000i64, 8_388_608.0, 127.0, 5)
            }
            Precision::F64 => (
                52,
                0x000F_FFFF_FFFF_FFFF,
                0x3FF0_0000_0000_0000,
                0x4330_0000_0000_0000,
                4_503_599_627_370_496.0,
                1023.0,
                11,
            ),
        };
        let bits = self.to_int(b, x);
        let ebits = b.ins().ushr_imm_u(bits, shift);
        let mbits = self.iconst_v(b, magic_bits);
        let ebits = b.ins().bor(ebits, mbits);
        let ef = self.to_float(b, ebits);
        let off = self.vconst(b, magic + bias);
        let e = b.ins().fsub(ef, off);
        let mm = self.iconst_v(b, mant_mask);
        let ob = self.iconst_v(b, one_bits);
        let mb = b.ins().band(bits, mm);
        let mb = b.ins().bor(mb, ob);
        let m = self.to_float(b, mb);
        let sqrt2 = self.vconst(b, std::f64::consts::SQRT_2);
        let big = b.ins().fcmp(FloatCC::GreaterThan, m, sqrt2);
        let big = self.to_float(b, big);
        let half = self.vconst(b, 0.5);
        let mh = b.ins().fmul(m, half);
        let m = b.ins().bitselect(big, mh, m);
        let one = self.vconst(b, 1.0);
        let e1 = b.ins().fadd(e, one);
        let e = b.ins().bitselect(big, e1, e);
        let num = b.ins().fsub(m, one);
        let den = b.ins().fadd(m, one);
        let s = b.ins().fdiv(num, den);
        let z = b.ins().fmul(s, s);
        let coeffs: Vec<f64> = (0..terms).map(|i| 2.0 / (2 * i + 1) as f64).collect();
        let p = self.poly(b, z, &coeffs);
        let lm = b.ins().fmul(p, s);
        let ln2 = self.vconst(b, std::f64::consts::LN_2);
        self.fma(b, e, ln2, lm)
    }

    /// 1 / (1 + e^-x).
    pub fn vsigmoid(&self, b: &mut FunctionBuilder, x: Value) -> Value {
        let nx = b.ins().fneg(x);
        let e = self.vexp(b, nx);
        let one = self.vconst(b, 1.0);
        let d = b.ins().fadd(one, e);
        b.ins().fdiv(one, d)
    }

    /// tanh x = sign(x) (1 - e^{-2|x|}) / (1 + e^{-2|x|}): no cancellation for large |x|, and
    /// for small |x| the relative error stays at a few ulp of 1 (absolute), as the reference
    /// comparison expects.
    pub fn vtanh(&self, b: &mut FunctionBuilder, x: Value) -> Value {
        let ax = b.ins().fabs(x);
        let m2 = self.vconst(b, -2.0);
        let t = b.ins().fmul(ax, m2);
        let e = self.vexp(b, t);
        let one = self.vconst(b, 1.0);
        let num = b.ins().fsub(one, e);
        let den = b.ins().fadd(one, e);
        let r = b.ins().fdiv(num, den);
        // r >= 0, so or-ing in the sign bit of x is copysign (which x64 lacks for vectors).
        let signbit = self.vconst(b, -0.0);
        let sign = b.ins().band(x, signbit);
        b.ins().bor(r, sign)
    }

    /// The activation applied to a vector.
    pub fn activate(&self, b: &mut FunctionBuilder, act: Activation, v: Value) -> Value {
        match act {
            Activation::Identity => v,
            Activation::Relu => {
                let z = self.vconst(b, 0.0);
                b.ins().fmax(v, z)
            }
            Activation::Tanh => self.vtanh(b, v),
            Activation::Sigmoid => self.vsigmoid(b, v),
        }
    }

    /// Gradient through an activation, expressed in its output `y`: `g * f'(x)` with
    /// relu' = [y > 0], tanh' = 1 - y^2, sigmoid' = y (1 - y).
    pub fn activate_grad(
        &self,
        b: &mut FunctionBuilder,
        act: Activation,
        y: Value,
        g: Value,
    ) -> Value {
        match act {
            Activation::Identity => g,
            Activation::Relu => {
                let z = self.vconst(b, 0.0);
                let pos = b.ins().fcmp(FloatCC::GreaterThan, y, z);
                let pos = self.to_float(b, pos);
                b.ins().band(pos, g)
            }
            Activation::Tanh => {
                let one = self.vconst(b, 1.0);
                let yy = b.ins().fmul(y, y);
                let d = b.ins().fsub(one, yy);
                b.ins().fmul(g, d)
            }
            Activation::Sigmoid => {
                let one = self.vconst(b, 1.0);
                let om = b.ins().fsub(one, y);
                let d = b.ins().fmul(y, om);
                b.ins().fmul(g, d)
            }
        }
    }
}
