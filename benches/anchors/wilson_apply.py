"""qcd_ml anchor: one Wilson-clover application (dirac_wilson_clover, m = -0.55, c_sw = 1) on
8^3 x 16 in complex64 and complex128, median wall time and GFLOP/s (1872 flops/site).

Usage: python wilson_apply.py [--repeats N] [--json]
"""

import argparse
import json

import torch

from common import FLOPS_PER_SITE, THREADS, loadavg, patch_dirac_precision, random_su3, timeit
from qcd_ml.qcd.dirac import dirac_wilson_clover

DIMS = (8, 8, 8, 16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    vol = DIMS[0] * DIMS[1] * DIMS[2] * DIMS[3]
    results = []
    for dtype, name in ((torch.cfloat, "complex64"), (torch.cdouble, "complex128")):
        U = random_su3(DIMS, seed=1, dtype=dtype)
        D = patch_dirac_precision(dirac_wilson_clover(U, -0.55, 1.0), dtype)
        g = torch.Generator().manual_seed(2)
        v = torch.randn((*DIMS, 4, 3), dtype=dtype, generator=g)
        with torch.no_grad():
            med, best, cpu = timeit(lambda: D(v), a.repeats)
        results.append({
            "dtype": name, "median_ms": med * 1e3, "min_ms": best * 1e3, "cpu_ms": cpu * 1e3,
            "gflops_median": FLOPS_PER_SITE * vol / med / 1e9, "repeats": a.repeats,
        })
    out = {"threads": THREADS, "torch": torch.__version__, "loadavg": loadavg(), "results": results}
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        for r in results:
            print(f"qcd_ml wilson_clover 8x8x8x16 {r['dtype']}: {r['median_ms']:.2f} ms median "
                  f"(min {r['min_ms']:.2f}, cpu {r['cpu_ms']:.2f}), {r['gflops_median']:.3f} GFLOP/s")
        print(f"threads {THREADS}, load average {out['loadavg']}")


if __name__ == "__main__":
    main()
