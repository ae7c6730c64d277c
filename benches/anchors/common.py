"""Shared helpers of the qcd_ml anchor drivers (symc benches/anchors).

qcd_ml itself is the package installed from its published source (see README.md); nothing
of it lives in this repository. These helpers only load gauge files, convert between symc's
reference layout and qcd_ml's tensors, and time things.
"""

import os
import statistics
import time

import numpy as np
import torch

THREADS = int(os.environ.get("ANCHOR_THREADS", "2"))
torch.set_num_threads(THREADS)

# physics.md §1.5: Wilson-clover flops per site (the number symc's benches count).
FLOPS_PER_SITE = 1872


def norm(v):
    """‖v‖ = sqrt(Σ conj(v) v), real, as a 0-dim tensor: the norm qcd_ml's solvers use (their
    default inner product is `(x.conj() * y).sum()`). The published qcd_ml (c9dcb48) has no
    `qcd_ml.util.linear_algebra` module, so the drivers define it here."""
    return (v.conj() * v).sum().real.sqrt()


def load_ddalphaamg(path):
    """DDalphaAMG native file -> qcd_ml gauge tensor U[mu, x, y, z, t, a, b] (complex128).

    File (gauge/README.md): 4 x int32 dims in order T,Z,Y,X; float64 plaquette (= 3P); then per
    site (t, z, y, x; x fastest) 4 links in order T, Z, Y, X, each 3x3 complex row-major as
    18 float64, little endian. qcd_ml orders directions mu = x, y, z, t and lattice axes
    x, y, z, t, so both the link index and the site axes are reversed.
    """
    with open(path, "rb") as f:
        raw = f.read()
    dims_tzyx = np.frombuffer(raw, dtype="<i4", count=4)
    plaq3 = float(np.frombuffer(raw, dtype="<f8", count=1, offset=16)[0])
    T, Z, Y, X = (int(d) for d in dims_tzyx)
    data = np.frombuffer(raw, dtype="<f8", offset=24)
    expected = T * Z * Y * X * 4 * 18
    if data.size != expected:
        raise ValueError(f"{path}: expected {expected} float64 link entries, found {data.size}")
    links = data.view("<c16").reshape(T, Z, Y, X, 4, 3, 3)
    # link slot 0..3 = T, Z, Y, X; qcd_ml mu 0..3 = x, y, z, t
    u = links[:, :, :, :, [3, 2, 1, 0]]
    u = np.transpose(u, (4, 3, 2, 1, 0, 5, 6)).copy()
    return torch.tensor(u, dtype=torch.cdouble), plaq3 / 3.0, (X, Y, Z, T)


def plaquette(U):
    """Average plaquette Re tr / 3 over all 6 planes (an independent check of the axis order)."""
    dims = U.shape[1:5]
    total = 0.0
    for mu in range(4):
        for nu in range(mu + 1, 4):
            a = U[mu]
            b = torch.roll(U[nu], -1, mu)
            c = torch.roll(U[mu], -1, nu).adjoint()
            d = U[nu].adjoint()
            p = a @ b @ c @ d
            total += p.diagonal(dim1=-2, dim2=-1).sum(-1).real.mean().item() / 3.0
    return total / 6.0


def random_su3(dims, seed, dtype=torch.cdouble):
    """Haar-ish random SU(3) field U[mu, x, y, z, t, 3, 3] (QR of a complex Gaussian)."""
    g = torch.Generator().manual_seed(seed)
    shape = (4, *dims, 3, 3)
    m = torch.complex(torch.randn(shape, generator=g, dtype=torch.double),
                      torch.randn(shape, generator=g, dtype=torch.double))
    q, r = torch.linalg.qr(m)
    d = torch.diagonal(r, dim1=-2, dim2=-1)
    q = q * (d / d.abs()).unsqueeze(-2)
    det = torch.linalg.det(q)
    q = q / det.pow(1.0 / 3.0).unsqueeze(-1).unsqueeze(-1)
    return q.to(dtype)


def to_symc_layout(v):
    """qcd_ml v[x, y, z, t, spin, colour] -> flat symc reference layout
    (site*12 + spin*3 + colour, site lexicographic with x fastest)."""
    return v.permute(3, 2, 1, 0, 4, 5).contiguous().reshape(-1)


def from_symc_layout(flat, dims):
    X, Y, Z, T = dims
    return flat.reshape(T, Z, Y, X, 4, 3).permute(3, 2, 1, 0, 4, 5).contiguous()


def patch_dirac_precision(D, dtype):
    """qcd_ml's dirac_wilson_clover keeps gamma and sigma_munu in complex128 and torch.einsum
    refuses mixed precision, so a complex64 operator needs complex64 copies of both. Only the
    storage type changes (the matrices have entries 0, +-1, +-i)."""
    import qcd_ml.qcd.dirac as dirac

    dirac.gamma = [g.to(dtype) for g in dirac.gamma]
    D.gamma = D.gamma.to(dtype)
    D.sigmamunu = D.sigmamunu.to(dtype)
    return D


def timeit(fn, repeats, warmup=2):
    """Median wall time, min wall time and median process CPU time (seconds) per call of fn().
    The CPU time is the less load-sensitive number on a shared machine (it counts both threads)."""
    for _ in range(warmup):
        fn()
    ts, cs = [], []
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return statistics.median(ts), min(ts), statistics.median(cs)


def loadavg():
    return os.getloadavg()
