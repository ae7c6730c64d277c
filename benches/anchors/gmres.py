"""qcd_ml anchor: GMRES(30) to 1e-8 (qcd_ml.util.solver.GMRES, relative to |b|) on the 8^4
DDalphaAMG configuration with dirac_wilson_clover, m = -0.555, c_sw = 1, periodic boundaries in
all four directions (qcd_ml has no boundary phases), complex128, x0 = 0, normalised complex
Gaussian sources.

Also checks the gauge loader (plaquette against the file header) and, with --xcheck DIR, writes
a random vector v and qcd_ml's D v (both complex128 little endian in symc's reference layout,
site*12 + spin*3 + colour, x fastest) so that `cargo bench --bench anchors` can compare symc's
operator with qcd_ml's element by element (convention check).

With --precond-steps N it also trains the paper's 1h1l network (v_PTC 1->1, identity + 8 one-hop
paths; train_step.py's model, initialisation and loss) on this configuration for N Adam steps
(lr 1e-2, complex64, random Gaussian v), then solves every seed again with FGMRES(30) and the
trained network as right preconditioner (weights cast to complex128): the issue's anchor for
the preconditioned solve.

Usage: python gmres.py --gauge FILE [--seeds 0,1] [--xcheck DIR]
           [--precond-steps 1000]
"""

import argparse
import json
import os
import time

import numpy as np
import torch

from common import THREADS, load_ddalphaamg, loadavg, norm, plaquette, to_symc_layout
from qcd_ml.qcd.dirac import dirac_wilson_clover
from qcd_ml.util.solver import GMRES


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gauge", required=True)
    ap.add_argument("--mass", type=float, default=-0.555)
    ap.add_argument("--csw", type=float, default=1.0)
    ap.add_argument("--tol", type=float, default=1e-8)
    ap.add_argument("--restart", type=int, default=30)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--xcheck", default=None)
    ap.add_argument("--precond-steps", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    U, plaq_header, dims = load_ddalphaamg(a.gauge)
    plaq = plaquette(U)
    if abs(plaq - plaq_header) > 1e-10:
        raise SystemExit(f"plaquette {plaq} != header {plaq_header}: gauge layout wrong")
    D = dirac_wilson_clover(U, a.mass, a.csw)
    if a.xcheck:
        os.makedirs(a.xcheck, exist_ok=True)
        g = torch.Generator().manual_seed(12345)
        v = torch.randn((*dims, 4, 3), dtype=torch.cdouble, generator=g)
        with torch.no_grad():
            dv = D(v)
        for name, t in (("v", v), ("dv", dv)):
            to_symc_layout(t).numpy().astype("<c16").tofile(os.path.join(a.xcheck, f"{name}.bin"))
        with open(os.path.join(a.xcheck, "meta.json"), "w") as f:
            json.dump({"gauge": os.path.abspath(a.gauge), "mass": a.mass, "csw": a.csw,
                       "dims": dims}, f)
    seeds = [int(s) for s in a.seeds.split(",")]
    runs = solve_all(D, dims, seeds, a, None)
    train = None
    prec_runs = []
    if a.precond_steps > 0:
        model, train = train_1h1l(U, dims, a)
        prec_runs = solve_all(D, dims, seeds, a, model)
    out = {"gauge": a.gauge, "dims_xyzt": dims, "plaquette": plaq, "plaquette_header": plaq_header,
           "mass": a.mass, "csw": a.csw, "tol": a.tol, "restart": a.restart, "threads": THREADS,
           "torch": torch.__version__, "loadavg": loadavg(), "runs": runs,
           "train": train, "preconditioned_runs": prec_runs}
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{a.gauge}: plaquette {plaq:.10f} (header {plaq_header:.10f})")
        for label, rs in (("GMRES", runs), ("FGMRES+1h1l", prec_runs)):
            for r in rs:
                print(f"qcd_ml {label}({a.restart}) seed {r['seed']}: {r['iterations']} iterations, "
                      f"{r['seconds']:.2f} s (cpu {r['cpu_seconds']:.2f}), converged {r['converged']}, "
                      f"true residual {r['true_residual']:.3e}")
        if train:
            print(f"1h1l training: {train['steps']} steps in {train['seconds']:.1f} s, "
                  f"loss {train['first_loss']:.4e} -> {train['last_loss']:.4e}")
        print(f"threads {THREADS}, load average {out['loadavg']}")


def train_1h1l(U, dims, a):
    """The 1h1l network trained as in train_step.py, on this configuration, in complex64."""
    import qcd_ml.qcd.dirac as dirac
    from common import patch_dirac_precision
    from train_step import Chain

    saved = list(dirac.gamma)  # patch_dirac_precision retypes the module's gammas: restore them
    U32 = U.to(torch.cfloat)
    D32 = patch_dirac_precision(dirac_wilson_clover(U32, a.mass, a.csw), torch.cfloat)
    model = Chain([1, 1], U32).to(torch.cfloat)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(3)
    losses = []
    t0 = time.perf_counter()
    for _ in range(a.precond_steps):
        v = torch.randn((*dims, 4, 3), dtype=torch.cfloat, generator=g)
        with torch.no_grad():
            dv = D32(v)
        opt.zero_grad()
        loss = (model(dv) - v).abs().pow(2).sum() / dv.abs().pow(2).sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    secs = time.perf_counter() - t0
    dirac.gamma = saved
    model64 = Chain([1, 1], U).to(torch.cdouble)
    with torch.no_grad():
        for p64, p32 in zip(model64.parameters(), model.parameters()):
            p64.copy_(p32.to(torch.cdouble))
    return model64, {"steps": a.precond_steps, "seconds": secs, "first_loss": losses[0],
                     "last_loss": sum(losses[-100:]) / len(losses[-100:])}


def solve_all(D, dims, seeds, a, model):
    runs = []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        b = torch.randn((*dims, 4, 3), dtype=torch.cdouble, generator=g)
        b = b / norm(b)
        x0 = torch.zeros_like(b)
        with torch.no_grad():
            c0 = time.process_time()
            t0 = time.perf_counter()
            x, info = GMRES(D, b, x0, maxiter=20000, inner_iter=a.restart, eps=a.tol,
                            preconditioner=model)
            secs = time.perf_counter() - t0
            cpu = time.process_time() - c0
            true_res = (norm(b - D(x)) / norm(b)).item()
        runs.append({"seed": seed, "iterations": int(info["k"]), "converged": bool(info["converged"]),
                     "seconds": secs, "cpu_seconds": cpu, "true_residual": true_res})
    return runs


if __name__ == "__main__":
    main()
