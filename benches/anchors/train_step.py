"""qcd_ml anchor: one training step of a PTC preconditioner on 8^3 x 16 in complex64, including
the D.v application: draw v ~ N(0,1), Dv = D v (dirac_wilson_clover, m = -0.55, c_sw = 1),
loss = ||M(Dv) - v||^2 / ||Dv||^2, backward, Adam (lr 1e-2). Models (one-hop paths, 9 paths):
  1h1l      v_PTC 1->1                        (144 complex weights)
  smoother  v_PTC 1->2, 2->2, 2->2, 2->1      (1728 complex weights, the symc ptc_smoother shape)

Usage: python train_step.py [--repeats N] [--json]
"""

import argparse
import json

import torch

from common import THREADS, loadavg, patch_dirac_precision, random_su3, timeit
from qcd_ml.nn.ptc import v_PTC
from qcd_ml.qcd.dirac import dirac_wilson_clover

DIMS = (8, 8, 8, 16)
PATHS = [[]] + [[(mu, 1)] for mu in range(4)] + [[(mu, -1)] for mu in range(4)]
MODELS = {"1h1l": [1, 1], "smoother": [1, 2, 2, 2, 1]}


class Chain(torch.nn.Module):
    def __init__(self, features, U):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            [v_PTC(a, b, PATHS, U) for a, b in zip(features[:-1], features[1:])])
        # the reproduction scripts' initialisation: 1e-3 N(0,1) + identity on the zero hop
        with torch.no_grad():
            for l in self.layers:
                l.weights.mul_(1e-3)
                l.weights[:, :, 0] += torch.eye(4, dtype=l.weights.dtype)

    def forward(self, v):
        x = v.unsqueeze(0)
        for l in self.layers:
            x = l(x)
        return x[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--models", default="1h1l,smoother")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    dtype = torch.cfloat
    U = random_su3(DIMS, seed=1, dtype=dtype)
    D = patch_dirac_precision(dirac_wilson_clover(U, -0.55, 1.0), dtype)
    g = torch.Generator().manual_seed(3)
    results = []
    for name in a.models.split(","):
        model = Chain(MODELS[name], U).to(dtype)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []

        def step():
            v = torch.randn((*DIMS, 4, 3), dtype=dtype, generator=g)
            with torch.no_grad():
                dv = D(v)
            opt.zero_grad()
            out = model(dv)
            loss = (out - v).abs().pow(2).sum() / dv.abs().pow(2).sum()
            loss.backward()
            opt.step()
            losses.append(loss.item())

        med, best, cpu = timeit(step, a.repeats)
        nw = sum(p.numel() for p in model.parameters())
        results.append({"model": name, "complex_weights": nw, "median_ms": med * 1e3,
                        "min_ms": best * 1e3, "cpu_ms": cpu * 1e3, "repeats": a.repeats,
                        "first_loss": losses[0], "last_loss": losses[-1]})
    out = {"threads": THREADS, "torch": torch.__version__, "loadavg": loadavg(), "results": results}
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        for r in results:
            print(f"qcd_ml train step {r['model']} ({r['complex_weights']} complex weights) "
                  f"complex64: {r['median_ms']:.1f} ms median (min {r['min_ms']:.1f}, "
                  f"cpu {r['cpu_ms']:.1f}); loss {r['first_loss']:.3g} -> {r['last_loss']:.3g}")
        print(f"threads {THREADS}, load average {out['loadavg']}")


if __name__ == "__main__":
    main()
