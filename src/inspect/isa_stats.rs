//! What the machine code of a kernel is made of, and where the kernel sits on the roofline.
//!
//! The source is cranelift's VCode listing (`KernelRecord::vcode`): real x86 mnemonics after
//! register allocation, in AT&T operand order (`op src, dst`), one instruction per line, blocks
//! introduced by `blockN:` and branch targets written `labelN` (the same N). Reading this text
//! instead of disassembling bytes needs no capstone and sees exactly what cranelift emitted.
//!
//! Instructions are sorted into classes that answer the questions a kernel author asks: are the
//! FMAs vectorised, how many vector loads and stores feed them (and how many loads were folded
//! into arithmetic), how much scalar float work and integer/address overhead is left, and which of
//! it sits inside loops (blocks between a back edge's target and its source).

use crate::codegen::plan::KernelPlan;
use crate::inspect::roofline::Machine;
use serde::Serialize;

/// The class of one machine instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstClass {
    /// Packed fused multiply-add (`vfmadd*ps/pd`, `vfnmadd*`, `vfmsub*`, `vfnmsub*`).
    VectorFma,
    /// Vector move from memory (`vmovups (%rax), %xmm0`, `movdqu`, `vbroadcastss (..)`).
    VectorLoad,
    /// Vector move to memory.
    VectorStore,
    /// Register-to-register vector copy (`movdqa %xmm1, %xmm2`), or GPR↔XMM transfer.
    VectorMove,
    /// Other packed arithmetic, logic and shuffles (`vmulps`, `vaddps`, `pxor`, `pshufd`).
    VectorArith,
    /// Scalar floating point (`*ss`/`*sd`, including scalar FMA and conversions).
    ScalarFloat,
    /// Integer and address arithmetic, GPR moves, stack traffic.
    Integer,
    /// Jumps, calls and returns.
    Branch,
}

/// Instruction counts by class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InstCounts {
    pub vector_fma: usize,
    pub vector_load: usize,
    pub vector_store: usize,
    pub vector_move: usize,
    pub vector_arith: usize,
    pub scalar_float: usize,
    pub integer: usize,
    pub branch: usize,
    /// Non-move vector instructions with a memory operand: loads folded into arithmetic
    /// (e.g. `vfmadd213ps (%rcx), %xmm1, %xmm2`). Also counted in their own class.
    pub folded_loads: usize,
    pub total: usize,
}

impl InstCounts {
    fn add(&mut self, class: InstClass, folded: bool) {
        *match class {
            InstClass::VectorFma => &mut self.vector_fma,
            InstClass::VectorLoad => &mut self.vector_load,
            InstClass::VectorStore => &mut self.vector_store,
            InstClass::VectorMove => &mut self.vector_move,
            InstClass::VectorArith => &mut self.vector_arith,
            InstClass::ScalarFloat => &mut self.scalar_float,
            InstClass::Integer => &mut self.integer,
            InstClass::Branch => &mut self.branch,
        } += 1;
        self.folded_loads += folded as usize;
        self.total += 1;
    }
}

/// One instruction of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inst {
    pub mnemonic: String,
    pub operands: Vec<String>,
    pub class: InstClass,
    /// A non-move vector instruction that reads memory directly.
    pub folded_load: bool,
    /// Index of the block (in listing order) the instruction belongs to.
    pub block: usize,
    /// Branch targets (`labelN` → N), including the fall-through jump printed after `;`.
    pub targets: Vec<usize>,
    /// Control may continue with the next instruction in the listing.
    pub falls_through: bool,
}

/// Counts of a whole kernel and of its loop bodies.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KernelStats {
    pub name: String,
    pub code_bytes: usize,
    pub all: InstCounts,
    /// Instructions inside loops: what runs once per iteration.
    pub in_loops: InstCounts,
    /// Number of distinct back edges (loops).
    pub loops: usize,
}

/// Split an operand list at top-level commas (`(%rax,%rcx,4)` stays one operand).
fn split_operands(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn is_mem(op: &str) -> bool {
    op.contains('(')
}

fn is_vreg(op: &str) -> bool {
    op.contains("%xmm") || op.contains("%ymm") || op.contains("%zmm")
}

/// Whole-register vector moves (the `movss`/`movsd` scalar moves are scalar float).
const VECTOR_MOVES: &[&str] = &[
    "movups",
    "movaps",
    "movupd",
    "movapd",
    "movdqu",
    "movdqa",
    "vmovups",
    "vmovaps",
    "vmovupd",
    "vmovapd",
    "vmovdqu",
    "vmovdqa",
    "vmovdqu32",
    "vmovdqu64",
    "vmovdqa32",
    "vmovdqa64",
    "lddqu",
    "vlddqu",
];

/// Classify one instruction from its mnemonic and operands.
pub fn classify(mnemonic: &str, operands: &[String]) -> (InstClass, bool) {
    let m = mnemonic.to_ascii_lowercase();
    let any_mem = operands.iter().any(|o| is_mem(o));
    let any_vreg = operands.iter().any(|o| is_vreg(o));
    let packed = m.ends_with("ps") || m.ends_with("pd");
    let scalar_fp = m.ends_with("ss")
        || m.ends_with("sd")
        || m.starts_with("ucomis")
        || m.starts_with("comis")
        || m.starts_with("vucomis")
        || m.starts_with("vcomis");
    let fma_family = ["vfmadd", "vfnmadd", "vfmsub", "vfnmsub"].iter().any(|p| m.starts_with(p));
    if fma_family && packed {
        return (InstClass::VectorFma, any_mem);
    }
    if m.starts_with('j') || m.starts_with("call") || m.starts_with("ret") || m == "ud2" {
        return (InstClass::Branch, false);
    }
    if VECTOR_MOVES.contains(&m.as_str())
        || ((m.starts_with("vbroadcast") || m.starts_with("vpbroadcast")) && any_mem)
    {
        let last_mem = operands.last().is_some_and(|o| is_mem(o));
        let class = if last_mem {
            InstClass::VectorStore
        } else if any_mem {
            InstClass::VectorLoad
        } else {
            InstClass::VectorMove
        };
        return (class, false);
    }
    if scalar_fp {
        // Includes `movss`/`movsd` (the string instruction `movsd` is never emitted by cranelift).
        return (InstClass::ScalarFloat, false);
    }
    if matches!(m.as_str(), "movd" | "movq" | "vmovd" | "vmovq") && any_vreg {
        return (InstClass::VectorMove, false);
    }
    if packed || any_vreg {
        let last_mem = operands.last().is_some_and(|o| is_mem(o));
        return (InstClass::VectorArith, any_mem && !last_mem);
    }
    (InstClass::Integer, false)
}

/// Parse a VCode listing into instructions (pseudo-lines such as `unwind ...` are dropped).
pub fn parse_listing(vcode: &str) -> (Vec<Inst>, Vec<usize>) {
    let mut insts = Vec::new();
    // Block numbers in listing order; `block_ids[i]` is the N of the i-th `blockN:`.
    let mut block_ids = Vec::new();
    for raw in vcode.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with("unwind") {
            continue;
        }
        if let Some(n) = line.strip_prefix("block").and_then(|r| r.strip_suffix(':')) {
            if let Ok(n) = n.parse::<usize>() {
                block_ids.push(n);
                continue;
            }
        }
        // A conditional branch prints with its fall-through jump: `jl label3; j label2`.
        let targets: Vec<usize> = line
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .filter_map(|t| t.strip_prefix("label").and_then(|n| n.parse().ok()))
            .collect();
        let two_way = line.contains(';');
        let line = line.split(';').next().unwrap_or(line).trim();
        let (mnemonic, rest) = match line.split_once(char::is_whitespace) {
            Some((m, r)) => (m, r.trim()),
            None => (line, ""),
        };
        let operands = split_operands(rest);
        let (class, folded_load) = classify(mnemonic, &operands);
        let m = mnemonic.to_ascii_lowercase();
        let falls_through =
            !(two_way || m.starts_with("jmp") || m.starts_with("ret") || m == "ud2");
        insts.push(Inst {
            targets,
            falls_through,
            mnemonic: mnemonic.to_string(),
            operands,
            class,
            folded_load,
            // Instructions before the first `blockN:` (the prologue) belong to block 0.
            block: block_ids.len().saturating_sub(1),
        });
    }
    (insts, block_ids)
}

/// Count instructions by class, in total and inside loops.
///
/// Loops are natural loops of back edges: an edge from the block at listing position `i` to a
/// block at position `h <= i` (cranelift lays blocks out in reverse post-order, so these are the
/// back edges); the body is every block that reaches `i` without passing through `h`.
pub fn kernel_stats(name: &str, vcode: &str, code_bytes: usize) -> KernelStats {
    let (insts, block_ids) = parse_listing(vcode);
    let nb = block_ids.len().max(1);
    let pos_of = |id: usize| block_ids.iter().position(|&b| b == id);
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); nb];
    let mut back_edges = Vec::new();
    for (k, inst) in insts.iter().enumerate() {
        for &t in &inst.targets {
            if let Some(j) = pos_of(t) {
                preds[j].push(inst.block);
                if j <= inst.block {
                    back_edges.push((inst.block, j));
                }
            }
        }
        // The last instruction of a block falls into the next block unless it jumps away.
        let last_of_block = insts.get(k + 1).is_none_or(|n| n.block != inst.block);
        if last_of_block && inst.falls_through && inst.block + 1 < nb {
            preds[inst.block + 1].push(inst.block);
        }
    }
    back_edges.sort_unstable();
    back_edges.dedup();
    let mut in_loop = vec![false; nb];
    for &(tail, head) in &back_edges {
        let mut body = vec![false; nb];
        body[head] = true;
        let mut stack = vec![tail];
        while let Some(b) = stack.pop() {
            if !body[b] {
                body[b] = true;
                stack.extend(preds[b].iter().copied());
            }
        }
        for (f, b) in in_loop.iter_mut().zip(body) {
            *f |= b;
        }
    }
    let mut stats = KernelStats {
        name: name.to_string(),
        code_bytes,
        loops: back_edges.len(),
        ..Default::default()
    };
    for i in &insts {
        stats.all.add(i.class, i.folded_load);
        if in_loop.get(i.block).copied().unwrap_or(false) {
            stats.in_loops.add(i.class, i.folded_load);
        }
    }
    stats
}

/// Which roof limits a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Memory,
    Compute,
}

/// A kernel plan placed on this machine's roofline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Placement {
    pub flops: f64,
    pub bytes: f64,
    /// flop per byte.
    pub intensity: f64,
    /// `min(ceiling, intensity × bandwidth)`, GFLOP/s.
    pub attainable_gflops: f64,
    pub bound: Bound,
    /// Intensity at which the roofs meet (flop/byte).
    pub ridge: f64,
}

/// Place a plan's FLOPs and bytes on the roofline of `m`.
pub fn place(plan: &KernelPlan, m: &Machine) -> Placement {
    let intensity = if plan.bytes > 0.0 { plan.flops / plan.bytes } else { f64::INFINITY };
    let ridge = m.ridge();
    Placement {
        flops: plan.flops,
        bytes: plan.bytes,
        intensity,
        attainable_gflops: m.attainable(intensity),
        bound: if intensity < ridge { Bound::Memory } else { Bound::Compute },
        ridge,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn instruction_classes() {
        let c = |m: &str, o: &[&str]| classify(m, &ops(o));
        assert_eq!(
            c("vfmadd213ps", &["%xmm13", "%xmm12", "%xmm11"]),
            (InstClass::VectorFma, false)
        );
        assert_eq!(
            c("vfnmadd132ps", &["(%rax,%rcx,4)", "%xmm1", "%xmm2"]),
            (InstClass::VectorFma, true)
        );
        assert_eq!(c("vfmadd213ss", &["%xmm1", "%xmm2", "%xmm3"]).0, InstClass::ScalarFloat);
        assert_eq!(c("vmovups", &["0x10(%rcx)", "%xmm10"]).0, InstClass::VectorLoad);
        assert_eq!(c("vmovups", &["%xmm10", "0x10(%rax)"]).0, InstClass::VectorStore);
        assert_eq!(c("movdqa", &["%xmm1", "%xmm2"]).0, InstClass::VectorMove);
        assert_eq!(c("vmulps", &["(%rdi)", "%xmm1", "%xmm2"]), (InstClass::VectorArith, true));
        assert_eq!(c("pxor", &["%xmm0", "%xmm0"]), (InstClass::VectorArith, false));
        assert_eq!(c("vmovss", &["(%rax)", "%xmm0"]).0, InstClass::ScalarFloat);
        assert_eq!(c("vaddsd", &["%xmm0", "%xmm1", "%xmm1"]).0, InstClass::ScalarFloat);
        assert_eq!(c("movq", &["%rax", "%xmm0"]).0, InstClass::VectorMove);
        assert_eq!(c("leaq", &["1(%rsi)", "%rsi"]).0, InstClass::Integer);
        assert_eq!(c("jl", &["label3"]).0, InstClass::Branch);
        assert_eq!(c("retq", &[]).0, InstClass::Branch);
    }

    #[test]
    fn loop_bodies_are_found_from_back_edges() {
        let listing = "  pushq %rbp\n  unwind PushFrameRegs { offset_upward_to_caller_sp: 16 }\n\
block0:\n  movq (%rdi), %rcx\n  jmp     label1\nblock1:\n  cmpq %rdx, %rsi\n  jl      label3; j label2\n\
block2:\n  vmovups %xmm0, (%rax)\n  retq\nblock3:\n  leaq 1(%rsi), %rsi\n  vfmadd213ps (%rcx), %xmm12, %xmm0\n  jmp     label1\n";
        let s = kernel_stats("k", listing, 42);
        assert_eq!(s.loops, 1);
        assert_eq!(s.all.total, 10);
        assert_eq!(s.all.vector_fma, 1);
        assert_eq!(s.all.folded_loads, 1);
        assert_eq!(s.all.vector_store, 1);
        // block1 (cmp, jl) and block3 (lea, fma, jmp) are the loop; the exit block2, which
        // lies between them in the listing, is not.
        assert_eq!(s.in_loops.vector_fma, 1);
        assert_eq!(s.in_loops.vector_store, 0);
        assert_eq!(s.in_loops.branch, 2);
        assert_eq!(s.in_loops.integer, 2);
        assert_eq!(s.in_loops.total, 5);
    }
}
