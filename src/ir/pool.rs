//! What a pooled level's transfer is made of (models.md §1.7; arXiv 2304.10438 and gpt's
//! `parallel_transport_pooling`), as plain data: the one statement of the pooling paths that
//! sema builds and the runtime and the naive oracle both walk.
//!
//! ```text
//! G(x) = Σ_i w_i(x) Ĝ_i(x)        Ĝ_i(x) = T_i(r_X → x) · V_i(x)
//! ```
//!
//! T_i is the parallel transport from the reference point r_X of x's block X to x along the
//! i-th term's route; V_i, when the term names one, is a field of closed loops at x (a
//! plaquette or the clover leaves), which transforms as Ω(x) V Ω(x)† and so keeps Ĝ_i
//! covariant: Ĝ_i(x) → Ω(r_X) Ĝ_i(x) Ω(x)†. (gpt's triple `(U, path, V)` multiplies by V†; its
//! V is this V†.) Normalisation, shared by runtime and oracle: every Ĝ_i is divided by
//! √|block|, so that a unitary term makes the static transfer an isometry; a term with a loop
//! field is first scaled so that its mean Frobenius norm² per site is 3, that of a unitary
//! matrix (the spec's global norm2 normalisation up to a constant factor the weights absorb).

use super::{Hop, Path};

/// The pooling transfer of a level: its terms, whether they carry trainable weights, and the
/// point every transport starts from.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolTransfer {
    /// The terms Ĝ_i, in the order of the pooling weight's first axis.
    pub terms: Vec<PoolTerm>,
    /// Whether w_i(x) are trainable local 4×4 spin matrices (`false` only for `static`: one
    /// term, w = 1, gpt's `static_transfer`).
    pub weighted: bool,
    /// The reference point of every block, relative to the block's origin (each coordinate
    /// below the block's extent). The coarse links start there too.
    pub reference: [usize; 4],
}

/// One term Ĝ_i: a route from the reference point, optionally times a loop field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolTerm {
    pub route: PoolRoute,
    pub times: Option<LoopField>,
}

/// How a route covers the displacement from the reference point to a site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stepping {
    /// All steps along `order[0]`, then all along `order[1]`, … (gpt's `lexicographic`).
    Straight,
    /// One step along each direction of `order` that still has distance left, round and round
    /// (gpt's `one_step_lexicographic`): a staircase close to the diagonal.
    OneStep,
}

/// A family of routes, one per displacement inside a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolRoute {
    pub stepping: Stepping,
    /// The order the directions are walked in (0..4 = x, y, z, t).
    pub order: [u8; 4],
}

const XYZT: [u8; 4] = [0, 1, 2, 3];
const TZYX: [u8; 4] = [3, 2, 1, 0];

impl PoolRoute {
    /// The routes a source can name, in the order "did you mean" help lists them.
    pub const WORDS: &'static [&'static str] = &[
        "lexicographic",
        "reversed_lexicographic",
        "one_step_lexicographic",
        "one_step_reversed_lexicographic",
    ];

    pub const LEXICOGRAPHIC: PoolRoute = PoolRoute { stepping: Stepping::Straight, order: XYZT };

    pub fn from_word(w: &str) -> Option<Self> {
        let (stepping, order) = match w {
            "lexicographic" => (Stepping::Straight, XYZT),
            "reversed_lexicographic" => (Stepping::Straight, TZYX),
            "one_step_lexicographic" => (Stepping::OneStep, XYZT),
            "one_step_reversed_lexicographic" => (Stepping::OneStep, TZYX),
            _ => return None,
        };
        Some(PoolRoute { stepping, order })
    }

    /// The source word of this route, or (for the orders only `cyclic` makes) the stepping
    /// and the direction order, e.g. `lexicographic(yztx)`.
    pub fn describe(&self) -> String {
        let word = match (self.stepping, self.order) {
            (Stepping::Straight, XYZT) => "lexicographic",
            (Stepping::Straight, TZYX) => "reversed_lexicographic",
            (Stepping::OneStep, XYZT) => "one_step_lexicographic",
            (Stepping::OneStep, TZYX) => "one_step_reversed_lexicographic",
            (s, o) => {
                let dirs: String = o.iter().map(|&mu| b"xyzt"[mu as usize] as char).collect();
                let s = if s == Stepping::Straight { "lexicographic" } else { "one_step" };
                return format!("{s}({dirs})");
            }
        };
        word.into()
    }

    /// The path from a block's reference point to the site `offset` away (signed; forward
    /// steps for positive components, backward for negative ones).
    pub fn path(&self, offset: [isize; 4]) -> Path {
        let hop = |mu: u8, d: isize| Hop { mu, forward: d > 0 };
        match self.stepping {
            Stepping::Straight => self
                .order
                .iter()
                .flat_map(|&mu| {
                    let d = offset[mu as usize];
                    (0..d.unsigned_abs()).map(move |_| hop(mu, d))
                })
                .collect(),
            Stepping::OneStep => {
                let mut left = offset;
                let mut path = Vec::new();
                while left.iter().any(|&d| d != 0) {
                    for &mu in &self.order {
                        let d = left[mu as usize];
                        if d != 0 {
                            path.push(hop(mu, d));
                            left[mu as usize] -= d.signum();
                        }
                    }
                }
                path
            }
        }
    }
}

/// A field of closed loops at each site, V(x) = Σ_loops T_loop(x), that a term multiplies by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopField {
    /// The plaquette U_μ(x) U_ν(x+μ̂) U_μ(x+ν̂)† U_ν(x)†.
    Plaquette { mu: u8, nu: u8 },
    /// The four clover leaves in the μν plane (the sum the clover term's F_μν is made of).
    Clover { mu: u8, nu: u8 },
}

impl LoopField {
    pub const WORDS: &'static [&'static str] = &["plaquette", "clover"];

    /// `plaquette(x, y)` / `clover(z, t)`.
    pub fn describe(&self) -> String {
        let (name, mu, nu) = match *self {
            LoopField::Plaquette { mu, nu } => ("plaquette", mu, nu),
            LoopField::Clover { mu, nu } => ("clover", mu, nu),
        };
        let d = |m: u8| b"xyzt"[m as usize] as char;
        format!("{name}({}, {})", d(mu), d(nu))
    }

    /// The closed paths whose transports sum to V(x), each starting and ending at x.
    pub fn loops(&self) -> Vec<Path> {
        let h = |mu: u8, forward: bool| Hop { mu, forward };
        match *self {
            LoopField::Plaquette { mu, nu } => {
                vec![vec![h(mu, true), h(nu, true), h(mu, false), h(nu, false)]]
            }
            LoopField::Clover { mu, nu } => vec![
                vec![h(mu, true), h(nu, true), h(mu, false), h(nu, false)],
                vec![h(nu, true), h(mu, false), h(nu, false), h(mu, true)],
                vec![h(mu, false), h(nu, false), h(mu, true), h(nu, true)],
                vec![h(nu, false), h(mu, true), h(nu, true), h(mu, false)],
            ],
        }
    }
}

impl PoolTerm {
    pub fn describe(&self) -> String {
        match self.times {
            None => self.route.describe(),
            Some(v) => format!("{}(times = {})", self.route.describe(), v.describe()),
        }
    }
}

impl PoolTransfer {
    /// The whole-value words of `pool = WORD` (a single route, or a family of several).
    pub const FAMILY_WORDS: &'static [&'static str] = &[
        "static",
        "lexicographic",
        "reversed_lexicographic",
        "one_step_lexicographic",
        "one_step_reversed_lexicographic",
        "cyclic",
    ];

    /// The transfer `pool = WORD` names: `static` (one lexicographic route, no weights),
    /// `cyclic` (four straight routes whose direction order is cyclically shifted: xyzt, yztx,
    /// ztxy, txyz), or one weighted route.
    pub fn from_family_word(w: &str, reference: [usize; 4]) -> Option<Self> {
        let plain = |route| PoolTerm { route, times: None };
        let (terms, weighted) = match w {
            "static" => (vec![plain(PoolRoute::LEXICOGRAPHIC)], false),
            "cyclic" => {
                let orders = [[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]];
                let route = |order| plain(PoolRoute { stepping: Stepping::Straight, order });
                (orders.into_iter().map(route).collect(), true)
            }
            w => (vec![plain(PoolRoute::from_word(w)?)], true),
        };
        Some(PoolTransfer { terms, weighted, reference })
    }

    /// How the source would spell it (for plans and `symc inspect`).
    pub fn describe(&self) -> String {
        let family = if !self.weighted {
            "static".to_string()
        } else if Self::from_family_word("cyclic", self.reference).as_ref() == Some(self) {
            "cyclic".to_string()
        } else if let [one] = self.terms.as_slice() {
            one.describe()
        } else {
            let terms: Vec<_> = self.terms.iter().map(PoolTerm::describe).collect();
            format!("[{}]", terms.join(", "))
        };
        if self.reference == [0; 4] {
            family
        } else {
            let r = self.reference.map(|c| c.to_string()).join(", ");
            format!("{family}, reference [{r}]")
        }
    }

    /// The path of term `i` from the reference point of a block to the site `offset` from
    /// the block's origin.
    pub fn term_path(&self, i: usize, offset: [usize; 4]) -> Path {
        let d: [isize; 4] =
            std::array::from_fn(|mu| offset[mu] as isize - self.reference[mu] as isize);
        self.terms[i].route.path(d)
    }
}

/// The coarse link U^c_μ(X): the straight path of `blocks[μ]` forward steps along μ from the
/// reference point of block X, which ends at the reference point of X + μ̂.
pub fn pool_coarse_link_path(blocks: [usize; 4], mu: usize) -> Path {
    (0..blocks[mu]).map(|_| Hop { mu: mu as u8, forward: true }).collect()
}

/// Index of w_i(x)[s][t] in the pooling weight `[n_terms, V, 4, 4]` (complex entries).
pub fn pool_weight_index(volume: usize, i: usize, site: usize, s: usize, t: usize) -> usize {
    ((i * volume + site) * 4 + s) * 4 + t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spell(p: &Path) -> String {
        p.iter()
            .map(|h| {
                format!("{}{}", if h.forward { '+' } else { '-' }, b"xyzt"[h.mu as usize] as char)
            })
            .collect()
    }

    #[test]
    fn routes_walk_as_gpt_spells_them() {
        let r = |w| PoolRoute::from_word(w).unwrap();
        let d = [2, -1, 0, 1];
        assert_eq!(spell(&r("lexicographic").path(d)), "+x+x-y+t");
        assert_eq!(spell(&r("reversed_lexicographic").path(d)), "+t-y+x+x");
        assert_eq!(spell(&r("one_step_lexicographic").path(d)), "+x-y+t+x");
        assert_eq!(spell(&r("one_step_reversed_lexicographic").path(d)), "+t-y+x+x");
        assert_eq!(spell(&r("one_step_reversed_lexicographic").path([3, 1, 0, 2])), "+t+y+x+t+x+x");
        assert!(r("lexicographic").path([0; 4]).is_empty());
    }

    #[test]
    fn every_route_ends_at_its_displacement() {
        for w in PoolRoute::WORDS {
            let route = PoolRoute::from_word(w).unwrap();
            for d in [[3, 0, -2, 1], [-1, -1, -1, -1], [0, 2, 0, 0]] {
                let mut end = [0isize; 4];
                for h in route.path(d) {
                    end[h.mu as usize] += if h.forward { 1 } else { -1 };
                }
                assert_eq!(end, d, "{w}");
                let len: usize = d.iter().map(|c: &isize| c.unsigned_abs()).sum();
                assert_eq!(route.path(d).len(), len, "{w}: a route never doubles back");
            }
        }
    }

    #[test]
    fn loops_close_and_describe_round_trips() {
        for v in [LoopField::Plaquette { mu: 0, nu: 3 }, LoopField::Clover { mu: 1, nu: 2 }] {
            for l in v.loops() {
                let mut end = [0i32; 4];
                l.iter().for_each(|h| end[h.mu as usize] += if h.forward { 1 } else { -1 });
                assert_eq!(end, [0; 4]);
            }
        }
        for w in PoolTransfer::FAMILY_WORDS {
            let t = PoolTransfer::from_family_word(w, [0; 4]).unwrap();
            assert_eq!(t.describe(), *w);
        }
        let t = PoolTransfer::from_family_word("cyclic", [1, 0, 0, 1]).unwrap();
        assert_eq!(t.describe(), "cyclic, reference [1, 0, 0, 1]");
    }
}
