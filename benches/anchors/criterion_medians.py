"""Print criterion's median (and mean) per benchmark of `cargo bench --bench anchors`, in ms,
plus GFLOP/s for the Wilson-clover group (1872 flops/site on 8^3 x 16).

Usage: python criterion_medians.py [TARGET_DIR]   (default: ../../target)
"""

import json
import os
import sys

root = os.path.join(sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "..", "target"), "criterion")
FLOPS = 1872 * 8 * 8 * 8 * 16
for group in sorted(os.listdir(root)):
    if not group.startswith("anchors_"):
        continue
    for bench in sorted(os.listdir(os.path.join(root, group))):
        est = os.path.join(root, group, bench, "new", "estimates.json")
        if not os.path.exists(est):
            continue
        e = json.load(open(est))
        med = e["median"]["point_estimate"] / 1e6
        mean = e["mean"]["point_estimate"] / 1e6
        extra = f"  {FLOPS / (med * 1e-3) / 1e9:.3f} GFLOP/s" if "wilson" in group else ""
        print(f"{group}/{bench}: median {med:.3f} ms (mean {mean:.3f}){extra}")
