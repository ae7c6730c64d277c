//! Complex arithmetic on re/im-split SIMD vectors for the lattice emitters (PTC, transport,
//! Wilson-clover): loads and stores of complex lanes, multiply-accumulate with and without
//! conjugation, SU(3) times colour vector.
//!
//! Every lane is an independent site, so a complex number is a pair of vectors (re, im) and all
//! algebra is vertical. Multiply-accumulates use `fma` (and `fma(fneg a, b, c)`, which lowers
//! to `vfnmadd`) when the host has native FMA; otherwise mul + add, because cranelift's `fma`
//! fallback is a per-lane libcall.

use super::jit::HostFeatures;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

/// A complex SIMD value: real and imaginary lanes.
#[derive(Clone, Copy, Debug)]
pub struct Cx {
    pub re: Value,
    pub im: Value,
}

/// Emission context: the builder plus the vector type and host facts.
pub struct Emit<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    pub ty: Type,
    pub host: HostFeatures,
    /// Bytes of one vector (16).
    pub vbytes: i32,
    /// An i8 condition that is true at run time but opaque to the optimiser (e.g. `o < end`
    /// inside a loop over `o`); enables [`Emit::barrier`].
    pub opaque_true: Option<Value>,
}

impl<'a, 'b> Emit<'a, 'b> {
    pub fn new(b: &'a mut FunctionBuilder<'b>, ty: Type, host: HostFeatures) -> Self {
        let vbytes = ty.bytes() as i32;
        Emit { b, ty, host, vbytes, opaque_true: None }
    }

    /// Vector load at `ptr + off` bytes (aligned, in bounds by construction).
    pub fn load(&mut self, ptr: Value, off: i32) -> Value {
        self.b.ins().load(self.ty, MemFlagsData::trusted(), ptr, off)
    }

    /// A load the optimiser may treat as a pure value (readonly, notrap, can_move): it is
    /// emitted right before its first use and folds into that use's memory operand, instead
    /// of keeping its program position among the other loads. Identical pure loads are merged
    /// and may be hoisted as far as their address operands allow, so use it only for memory
    /// that nothing writes while the value is live: read-only inputs, or scratch written
    /// strictly before the block that defines `ptr` (see `Emit::barrier_with`).
    pub fn load_pure(&mut self, ptr: Value, off: i32) -> Value {
        let flags = MemFlagsData::trusted().with_readonly().with_can_move();
        self.b.ins().load(self.ty, flags, ptr, off)
    }

    pub fn store(&mut self, v: Value, ptr: Value, off: i32) {
        self.b.ins().store(MemFlagsData::trusted(), v, ptr, off);
    }

    /// Complex value whose re vector is at `off` and im vector right after it.
    pub fn load_cx(&mut self, ptr: Value, off: i32) -> Cx {
        let re = self.load(ptr, off);
        let im = self.load(ptr, off + self.vbytes);
        Cx { re, im }
    }

    pub fn store_cx(&mut self, z: Cx, ptr: Value, off: i32) {
        self.store(z.re, ptr, off);
        self.store(z.im, ptr, off + self.vbytes);
    }

    pub fn zero(&mut self) -> Value {
        let s = if self.ty.lane_type() == cranelift_codegen::ir::types::F32 {
            self.b.ins().f32const(0.0)
        } else {
            self.b.ins().f64const(0.0)
        };
        self.b.ins().splat(self.ty, s)
    }

    /// a*b + c
    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.host.native_fma {
            self.b.ins().fma(a, b, c)
        } else {
            let m = self.b.ins().fmul(a, b);
            self.b.ins().fadd(m, c)
        }
    }

    /// c - a*b
    pub fn fnma(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.host.native_fma {
            let na = self.b.ins().fneg(a);
            self.b.ins().fma(na, b, c)
        } else {
            let m = self.b.ins().fmul(a, b);
            self.b.ins().fsub(c, m)
        }
    }

    pub fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }

    pub fn sub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }

    pub fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }

    pub fn cadd(&mut self, a: Cx, b: Cx) -> Cx {
        Cx { re: self.add(a.re, b.re), im: self.add(a.im, b.im) }
    }

    pub fn csub(&mut self, a: Cx, b: Cx) -> Cx {
        Cx { re: self.sub(a.re, b.re), im: self.sub(a.im, b.im) }
    }

    /// i*a
    pub fn times_i(&mut self, a: Cx) -> Cx {
        let re = self.b.ins().fneg(a.im);
        Cx { re, im: a.re }
    }

    /// acc + a*x (acc = None means 0).
    pub fn cmac(&mut self, acc: Option<Cx>, a: Cx, x: Cx) -> Cx {
        match acc {
            None => {
                let re = self.mul(a.re, x.re);
                let re = self.fnma(a.im, x.im, re);
                let im = self.mul(a.re, x.im);
                let im = self.fma(a.im, x.re, im);
                Cx { re, im }
            }
            Some(c) => {
                let re = self.fma(a.re, x.re, c.re);
                let re = self.fnma(a.im, x.im, re);
                let im = self.fma(a.re, x.im, c.im);
                let im = self.fma(a.im, x.re, im);
                Cx { re, im }
            }
        }
    }

    /// acc + conj(a)*x (acc = None means 0).
    pub fn cmac_conj(&mut self, acc: Option<Cx>, a: Cx, x: Cx) -> Cx {
        match acc {
            None => {
                let re = self.mul(a.re, x.re);
                let re = self.fma(a.im, x.im, re);
                let im = self.mul(a.re, x.im);
                let im = self.fnma(a.im, x.re, im);
                Cx { re, im }
            }
            Some(c) => {
                let re = self.fma(a.re, x.re, c.re);
                let re = self.fma(a.im, x.im, re);
                let im = self.fma(a.re, x.im, c.im);
                let im = self.fnma(a.im, x.re, im);
                Cx { re, im }
            }
        }
    }

    /// acc + a*conj(x): the colour-traced outer product of the weight gradient.
    pub fn cmac_rconj(&mut self, acc: Cx, a: Cx, x: Cx) -> Cx {
        let re = self.fma(a.re, x.re, acc.re);
        let re = self.fma(a.im, x.im, re);
        let im = self.fma(a.im, x.re, acc.im);
        let im = self.fnma(a.re, x.im, im);
        Cx { re, im }
    }

    /// Ends the current block and continues in a new one that receives `vals` as block
    /// parameters, returning them. Cranelift places pure arithmetic right before its first
    /// use, while loads keep their program order relative to stores; without a use in between,
    /// every load up to the next store would be issued first and spilled. Passing the
    /// accumulators through a block boundary forces their arithmetic to be emitted here, so
    /// register pressure stays at one step's loads plus the accumulators. The jump is a
    /// fall-through after block layout, so it costs nothing at run time.
    ///
    /// A block with a single predecessor would have its parameters folded away, so the
    /// boundary is a two-way branch on [`Emit::opaque_true`] (true at run time, unknown to the
    /// optimiser) whose other edge passes zeros: a real phi, one predictable branch.
    pub fn barrier(&mut self, vals: &[Value]) -> Vec<Value> {
        if self.opaque_true.is_none() {
            return vals.to_vec();
        }
        let z = self.zero();
        let zeros = vec![z; vals.len()];
        self.barrier_with(vals, &zeros)
    }

    /// [`Emit::barrier`] with explicit values for the never-taken edge (`alt[k]` must have the
    /// type of `vals[k]` and differ from it, or cranelift folds the parameter away). Besides
    /// vectors this carries pointers: passing one pointer as two parameters gives two values
    /// the optimiser cannot prove equal, so two loads of the same address stay two loads
    /// (each foldable into its one FMA) instead of being merged into one register value.
    /// Pointer `alt`s must point into the same buffers with the same room as `vals`, so that
    /// even the dead edge only addresses memory the kernel owns.
    pub fn barrier_with(&mut self, vals: &[Value], alt: &[Value]) -> Vec<Value> {
        assert_eq!(vals.len(), alt.len(), "barrier: one alternative per value");
        let Some(cond) = self.opaque_true else {
            return vals.to_vec();
        };
        let next = self.b.create_block();
        for v in vals {
            let ty = self.b.func.dfg.value_type(*v);
            self.b.append_block_param(next, ty);
        }
        let args: Vec<cranelift_codegen::ir::BlockArg> = vals.iter().map(|v| (*v).into()).collect();
        let alts: Vec<cranelift_codegen::ir::BlockArg> = alt.iter().map(|v| (*v).into()).collect();
        self.b.ins().brif(cond, next, &args, next, &alts);
        self.b.switch_to_block(next);
        self.b.block_params(next).to_vec()
    }

    /// [`Emit::barrier`] on complex values.
    pub fn barrier_cx(&mut self, vals: &[Cx]) -> Vec<Cx> {
        let flat: Vec<Value> = vals.iter().flat_map(|z| [z.re, z.im]).collect();
        let out = self.barrier(&flat);
        out.chunks(2).map(|c| Cx { re: c[0], im: c[1] }).collect()
    }

    /// Row `a` of a 3x3 complex matrix (loaded from `m + moff`, `[9][re/im]` vectors) times a
    /// colour vector, or of its adjoint when `dagger`.
    pub fn su3_row(&mut self, m: Value, moff: i32, a: usize, v: &[Cx; 3], dagger: bool) -> Cx {
        let mut acc = None;
        for (b, vb) in v.iter().enumerate() {
            let idx = if dagger { b * 3 + a } else { a * 3 + b } as i32;
            let u = self.load_cx(m, moff + 2 * idx * self.vbytes);
            acc = Some(if dagger { self.cmac_conj(acc, u, *vb) } else { self.cmac(acc, u, *vb) });
        }
        acc.expect("3 terms")
    }

    /// 3x3 complex matrix (loaded from `m + moff`, `[9][re/im]` vectors) times colour vector;
    /// `dagger` applies the adjoint instead.
    pub fn su3_mul(&mut self, m: Value, moff: i32, v: &[Cx; 3], dagger: bool) -> [Cx; 3] {
        let mut out = [v[0]; 3];
        for (a, o) in out.iter_mut().enumerate() {
            let mut acc = None;
            for (b, vb) in v.iter().enumerate() {
                let idx = if dagger { b * 3 + a } else { a * 3 + b } as i32;
                let u = self.load_cx(m, moff + 2 * idx * self.vbytes);
                acc =
                    Some(if dagger { self.cmac_conj(acc, u, *vb) } else { self.cmac(acc, u, *vb) });
            }
            *o = acc.expect("3 terms");
        }
        out
    }
}
