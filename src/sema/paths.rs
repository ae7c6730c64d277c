//! Path sets of parallel-transport layers: what `hops = k`, `long` and explicit path lists
//! mean on a given lattice.
//!
//! - `hops = k`: the identity, then every non-backtracking path of 1..=k hops, shortest
//!   first; hops of one length are ordered +x, +y, +z, +t, -x, -y, -z, -t (the order of the
//!   qcd_ml/gpt one-hop list), so `hops = 1` is the Lehner–Wettig "1h" set of 9 paths and a
//!   path set has 1 + 8·(7^k − 1)/6 entries. `hops = 0` is the identity alone (gpt's `linear`).
//! - `long`: the identity, then for each direction μ = x, y, z, t the straight paths
//!   +n·μ̂ and −n·μ̂ for n = 1, 2, 4, … ≤ L_μ/2 (Pfahler et al., models.md §3.2): 27 paths on
//!   8³×16.
//! - explicit `paths = [+x, -t, +x+y, +2z]`: the identity, then the listed paths in order.
//!
//! Paths use the gpt convention of `ir::Hop`. A path that takes L_μ or more steps along an
//! axis of extent L_μ wraps around the lattice; such paths are rejected.

use crate::ir::{Hop, Lattice, Path};

/// Largest path set accepted in one layer.
pub const MAX_PATHS: usize = 4096;

const ORDER: [Hop; 8] = [
    Hop { mu: 0, forward: true },
    Hop { mu: 1, forward: true },
    Hop { mu: 2, forward: true },
    Hop { mu: 3, forward: true },
    Hop { mu: 0, forward: false },
    Hop { mu: 1, forward: false },
    Hop { mu: 2, forward: false },
    Hop { mu: 3, forward: false },
];

/// Number of paths `hops = k` produces (identity included), or `None` above [`MAX_PATHS`].
pub fn hops_count(k: usize) -> Option<usize> {
    let mut total: usize = 1;
    let mut layer: usize = 8;
    for _ in 0..k {
        total = total.checked_add(layer)?;
        if total > MAX_PATHS {
            return None;
        }
        layer = layer.checked_mul(7)?;
    }
    Some(total)
}

/// The `hops = k` path set; call only after [`hops_count`] accepted `k`.
pub fn hops(k: usize) -> Vec<Path> {
    let mut all: Vec<Path> = vec![Vec::new()];
    let mut frontier: Vec<Path> = vec![Vec::new()];
    for _ in 0..k {
        let mut next = Vec::new();
        for p in &frontier {
            for h in ORDER {
                if let Some(last) = p.last()
                    && last.mu == h.mu
                    && last.forward != h.forward
                {
                    continue; // backtracking: U U† = 1, the same as a shorter path
                }
                let mut q = p.clone();
                q.push(h);
                next.push(q);
            }
        }
        all.extend(next.iter().cloned());
        frontier = next;
    }
    all
}

/// The `long` path set on `lattice`.
pub fn long(lattice: &Lattice) -> Vec<Path> {
    let mut all: Vec<Path> = vec![Vec::new()];
    for mu in 0..4u8 {
        let half = lattice.dims[mu as usize] / 2;
        let mut n = 1;
        while n <= half {
            for forward in [true, false] {
                all.push(vec![Hop { mu, forward }; n]);
            }
            n *= 2;
        }
    }
    all
}

/// Steps taken along each axis (either sign): a path wraps when this reaches the extent.
pub fn steps_per_axis(p: &Path) -> [usize; 4] {
    let mut n = [0; 4];
    for h in p {
        n[h.mu as usize] += 1;
    }
    n
}

/// `+x+y-t`: the source form of a path.
pub fn display(p: &Path) -> String {
    if p.is_empty() {
        return "id".into();
    }
    let mut s = String::new();
    for h in p {
        s.push(if h.forward { '+' } else { '-' });
        s.push(['x', 'y', 'z', 't'][h.mu as usize & 3]);
    }
    s
}

/// Whether a path steps straight back (`+x-x`), which makes it equal a shorter path.
pub fn backtracks(p: &Path) -> bool {
    p.windows(2).any(|w| w[0].mu == w[1].mu && w[0].forward != w[1].forward)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_counts_match_enumeration() {
        for k in 0..4 {
            let set = hops(k);
            assert_eq!(Some(set.len()), hops_count(k));
            assert!(set.iter().all(|p| !backtracks(p)));
            let mut uniq = set.clone();
            uniq.sort_by_key(display);
            uniq.dedup();
            assert_eq!(uniq.len(), set.len());
        }
        assert_eq!(hops_count(1), Some(9));
        assert_eq!(hops_count(2), Some(65));
        assert_eq!(hops_count(5), None);
    }

    #[test]
    fn long_paths_on_8c16_are_27() {
        let l = Lattice { dims: [8, 8, 8, 16] };
        let set = long(&l);
        assert_eq!(set.len(), 27);
        assert_eq!(display(&set[1]), "+x");
        assert_eq!(display(&set[2]), "-x");
        assert_eq!(display(&set[26]), "-t-t-t-t-t-t-t-t");
    }
}
