#!/usr/bin/env bash
# Scaling of the distributed solve on this machine: 1 rank x 1 thread, 1 rank x 2 threads and
# 2 ranks x 1 thread on the same lattice, RUNS times each, interleaved (so slow phases of a
# shared machine hit every set-up alike). Prints one TSV line per run:
#   lattice  setup  run  iterations  solve_seconds  seconds_per_iteration  halo_json
# Usage: benches/mpi/scaling.sh SYMC_BINARY GAUGE MASS RUNS [extra solve flags]
# (build the binary with `cargo build --release --features mpi`).
set -euo pipefail
bin=$1 gauge=$2 mass=$3 runs=$4; shift 4
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
solve=(solve --gauge "$gauge" --mass="$mass" --csw 1 --solver gmres --format json "$@")
pick() { python3 -c '
import json, sys
d = json.load(sys.stdin)
m = d.get("mpi", {})
print(d["iterations"], "%.4f" % d["seconds"], "%.3e" % (d["seconds"] / d["iterations"]),
      json.dumps({k: m[k] for k in ("procs", "halo", "halo_bench") if k in m}), sep="\t")'; }
for run in $(seq 1 "$runs"); do
    echo -e "$gauge\t1x1\t$run\t$(RAYON_NUM_THREADS=1 "$bin" "${solve[@]}" 2>/dev/null | pick)"
    echo -e "$gauge\t1x2\t$run\t$(RAYON_NUM_THREADS=2 "$bin" "${solve[@]}" 2>/dev/null | pick)"
    echo -e "$gauge\t2x1\t$run\t$(RAYON_NUM_THREADS=1 mpirun -np 2 "$bin" "${solve[@]}" --halo-bench 200 2>/dev/null | pick)"
done
