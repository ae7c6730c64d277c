#!/usr/bin/env python3
"""Paper model of one mixed-precision GMRES(30) iteration of `symc solve` on 48^3 x 96 over
P nodes (BENCHMARKS.md, "Several processes"), for the full system and for the even-odd one
(`--evenodd`: D-hat is two half-lattice hop passes, each exchanging the faces of one parity). Per-site costs are the ones measured on this
machine (benches/mpi/scaling.sh, 16^3 x 32, 2 ranks x 1 thread); the node and network figures
are assumptions, stated below. Run: python3 benches/mpi/model.py"""
import math

# Measured here, per core (f32, 16^3x32 sub-lattice of 65,536 sites per rank; 2026-12-07, quiet,
# two-row links):
D_NS_PER_SITE = 92.0     # one Wilson-clover application, kernel only (halo bench: 5.7-6.2 ms)
GS_NS_PER_SITE = 350.0   # the rest of an iteration (28.4-30.2 ms per iteration, minus D)
SPINOR_BYTES = 96        # what is sent per face site: 24 f32 (full spinor, not projected)
REDUCTIONS = 2.1         # global sums per iteration (Arnoldi dot + fused sub/dot, restarts)
COPY_GBS = 6.0           # packing a face, GB/s per core (0.24-0.26 ms for 2 x 786 KB)
LANES = 4                # f32 SIMD lanes, along t (t is never split)
MAX_DIRECT_RUNS = 8      # a face of at most this many runs of slots is sent unpacked, a run a message
# Even-odd (`--evenodd`, same field and set-up, 2026-12-07 13:51, quiet), per site of the lattice:
DHAT_NS_PER_SITE = 90.0  # one D-hat, both passes, kernels only (halo bench: 5.75-6.04 ms)
EO_REST_NS_PER_SITE = 180.0  # the rest of an iteration on half-length vectors (19.6 ms - D-hat)
EO_ITERATION_RATIO = 127 / 257  # even-odd over full-system iterations at 16^3 x 32, m = -0.45

# Assumed:
CORES = 32               # cores per node, each as fast as one core here (memory bandwidth
                         # scales with them: 32 x ~10 GB/s ~ a dual-socket DDR5 node)
BANDWIDTH = 12.5e9       # bytes/s injection per node (100 Gb/s, InfiniBand HDR100-class)
LATENCY = 2e-6           # s per message and per tree level of a reduction

DIMS = (48, 48, 48, 96)

def grid(p):
    """x, y, z split, largest local extent first (as symc's automatic grid; t is never split)."""
    procs = [1, 1, 1, 1]
    n = p
    f = 2
    factors = []
    while n > 1:
        while n % f == 0:
            factors.append(f); n //= f
        f += 1
    for f in sorted(factors, reverse=True):
        mu = max((m for m in (2, 1, 0) if (DIMS[m] // procs[m]) % f == 0),
                 key=lambda m: (DIMS[m] // procs[m], m))
        procs[mu] *= f
    return procs

def row(p, evenodd):
    """One line of the table: the full system, or (evenodd) the Schur system, whose D-hat runs
    two passes over half the sites, each exchanging the faces of one parity (half the face
    sites, the same runs) while its own interior sites run."""
    g = grid(p)
    local = [DIMS[m] // g[m] for m in range(4)]
    v = math.prod(local)
    faces = sum(2 * v // local[m] for m in range(4) if g[m] > 1)
    halo_bytes = faces * SPINOR_BYTES
    # Outer sites run x fastest; a face along mu is prod(outer[m > mu]) runs of consecutive
    # slots. Few runs: sent straight, a message a run; many: packed into one message.
    outer = local[:3] + [local[3] // LANES]
    runs = {m: math.prod(outer[m + 1:]) for m in range(4)}
    direct = {m: runs[m] <= MAX_DIRECT_RUNS for m in range(4)}
    packed_bytes = sum(2 * v // local[m] * SPINOR_BYTES for m in range(4) if g[m] > 1 and not direct[m])
    passes = 2 if evenodd else 1
    t_d = v * (DHAT_NS_PER_SITE if evenodd else D_NS_PER_SITE) * 1e-9 / CORES
    interior = math.prod(local[m] - 2 if g[m] > 1 else local[m] for m in range(4))
    t_int = t_d * interior / v / passes
    messages = sum(2 * (runs[m] if direct[m] else 1) for m in range(4) if g[m] > 1)
    t_pass = messages * LATENCY + halo_bytes / passes / BANDWIDTH
    t_halo = passes * t_pass
    exposed = passes * max(0.0, t_pass - t_int)
    t_gs = v * (EO_REST_NS_PER_SITE if evenodd else GS_NS_PER_SITE) * 1e-9 / CORES
    t_sum = REDUCTIONS * 2 * math.ceil(math.log2(p)) * LATENCY
    t_copy = packed_bytes / (COPY_GBS * 1e9 * CORES)
    t = t_d + t_copy + exposed + t_gs + t_sum
    eff = (t_d + t_gs) / t
    return g, v, halo_bytes, t_d, t_copy, t_halo, exposed, t_gs, t_sum, t, eff

for evenodd in (False, True):
    name = "D-hat (two passes)" if evenodd else "D"
    print()
    print("even-odd system (`--evenodd`)" if evenodd else "full system")
    print()
    print(f"| nodes | process grid | sites per node | halo MB sent per {name} | {name} (ms) | packing (ms) | messages (ms), exposed | rest of iteration (ms) | global sums (ms) | iteration (ms) | parallel efficiency | time to solution against the full system |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for p in (64, 128, 256, 512):
        g, v, halo_bytes, t_d, t_copy, t_halo, exposed, t_gs, t_sum, t, eff = row(p, evenodd)
        ratio = t * EO_ITERATION_RATIO / row(p, False)[9] if evenodd else 1.0
        print(f"| {p} | {'x'.join(map(str, g))} | {v:,} | {halo_bytes/1e6:.2f} | {t_d*1e3:.3f} | "
              f"{t_copy*1e3:.3f} | {t_halo*1e3:.3f}, {exposed*1e3:.3f} | {t_gs*1e3:.3f} | "
              f"{t_sum*1e3:.3f} | {t*1e3:.3f} | {eff:.0%} | {ratio:.2f} |")
