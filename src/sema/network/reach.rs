//! How far a lattice layer reaches: the `hops = k`, `paths = [...]` and `long` arguments
//! (and the `local` flag) of `linear` and `transport`, read into a [`Reach`] and then, once
//! the lattice is known, turned into the layer's path set. Every path must fit on the
//! lattice without wrapping to its start, must not step straight back, and is listed once,
//! because each path gets its own weights.

use super::Checker;
use crate::diagnostics::{Code, Problem};
use crate::ir::{self, Lattice, Path, Span};
use crate::sema::args::{self, ArgSet};
use crate::sema::paths;
use crate::syntax::ast::{self, ValueKind};

/// The reach arguments of one layer call, read but not yet checked against a lattice.
pub(super) struct Reach {
    kind: ReachKind,
    /// Where the path set was given (for "not allowed here" errors).
    pub(super) span: Option<Span>,
    /// Where the `local` flag was given.
    pub(super) local: Option<Span>,
}

enum ReachKind {
    /// No reach argument: the identity path alone.
    Identity,
    Hops(u64, Span),
    Paths(Vec<(Path, Span)>, Span),
    Long,
    /// Already reported; there is no path set to build.
    Invalid,
}

impl Checker<'_> {
    /// Reads `hops`, `paths` and the `long`/`local` flags (shared by `linear` and `transport`).
    pub(super) fn reach(&mut self, a: &ArgSet) -> Reach {
        let hops = a.get("hops");
        let paths = a.get("paths");
        let long = a
            .flag("long")
            .or_else(|| paths.filter(|p| args::word(p) == Some("long")).map(|p| p.span));
        let paths = paths.filter(|p| args::word(p) != Some("long"));
        let given: Vec<Span> =
            [hops.map(|h| h.span), paths.map(|p| p.span), long].into_iter().flatten().collect();
        if given.len() > 1 {
            self.err(
                Problem::new(
                    Code::DuplicateArgument,
                    given[1],
                    "give only one of `hops`, `paths` and `long`",
                    "second path set",
                )
                .note(given[0], "first path set")
                .help("they each define the whole path set of the layer"),
            );
        }
        let span = given.first().copied().or(a.flag("local"));
        let kind = if let Some(h) = hops {
            self.hops_reach(h)
        } else if let Some(p) = paths {
            self.listed_reach(p)
        } else if long.is_some() {
            ReachKind::Long
        } else {
            ReachKind::Identity
        };
        Reach { kind, span, local: a.flag("local") }
    }

    /// `hops = k` with k ≥ 0.
    fn hops_reach(&mut self, h: &ast::Value) -> ReachKind {
        let k = args::expect_int(h, "`hops`", &mut self.problems);
        match k {
            Some(k) if k < 0 => {
                self.err(
                    Problem::new(
                        Code::ZeroSize,
                        h.span,
                        "`hops` must not be negative",
                        format!("this is {k}"),
                    )
                    .help("`hops = 0` is the identity alone, `hops = 1` adds the 8 one-hop paths"),
                );
                ReachKind::Invalid
            }
            Some(k) => ReachKind::Hops(k as u64, h.span),
            None => ReachKind::Invalid,
        }
    }

    /// `paths = [+x, -t, +x+y]`: each item a path of signed steps.
    fn listed_reach(&mut self, p: &ast::Value) -> ReachKind {
        match &p.kind {
            ValueKind::List(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for it in items {
                    match &it.kind {
                        ValueKind::Path(steps) => out.push((
                            steps.iter().map(|(mu, f)| ir::Hop { mu: *mu, forward: *f }).collect(),
                            it.span,
                        )),
                        _ => {
                            self.err(args::mistyped(
                                it,
                                "a path",
                                "signed steps such as `+x`, `-t` or `+x+y`",
                            ));
                            ok = false;
                        }
                    }
                }
                if ok { ReachKind::Paths(out, p.span) } else { ReachKind::Invalid }
            }
            _ => {
                self.err(args::mistyped(
                    p,
                    "`paths`",
                    "a list such as `[+x, -x, +t]` or the word `long`",
                ));
                ReachKind::Invalid
            }
        }
    }

    /// The layer's path set on `lattice`, the identity path first; `None` if it is invalid
    /// (reported).
    pub(super) fn path_set(&mut self, reach: &Reach, lattice: &Lattice) -> Option<Vec<Path>> {
        match &reach.kind {
            ReachKind::Invalid => None,
            ReachKind::Identity => Some(vec![Vec::new()]),
            ReachKind::Long => Some(paths::long(lattice)),
            ReachKind::Hops(k, sp) => self.hops_path_set(*k as usize, *sp, lattice),
            ReachKind::Paths(list, sp) => self.listed_path_set(list, *sp, lattice),
        }
    }

    /// Every non-backtracking path of up to `k` hops; shorter than the lattice's smallest
    /// extent, and not so many that the weights explode.
    fn hops_path_set(&mut self, k: usize, sp: Span, lattice: &Lattice) -> Option<Vec<Path>> {
        let min_extent = lattice.dims.iter().copied().min().unwrap_or(1);
        if k > 0 && k >= min_extent {
            let mu = lattice.dims.iter().position(|d| *d == min_extent).unwrap_or(0);
            self.err(
                Problem::new(
                    Code::HopsTooLong,
                    sp,
                    format!(
                        "paths of {k} hops are longer than the {}: the {} extent is {min_extent}",
                        self.lattice_words(lattice),
                        ["x", "y", "z", "t"][mu]
                    ),
                    format!("{k} hops"),
                )
                .help(format!(
                    "a path of {min_extent} steps along {} wraps around the lattice to its start; use `hops` of at most {}",
                    ["x", "y", "z", "t"][mu],
                    min_extent.saturating_sub(1)
                )),
            );
            return None;
        }
        match paths::hops_count(k) {
            Some(_) => Some(paths::hops(k)),
            None => {
                self.err(
                    Problem::new(
                        Code::TooManyPaths,
                        sp,
                        format!("`hops = {k}` gives more than {} paths", paths::MAX_PATHS),
                        "too many paths",
                    )
                    .help("the number of non-backtracking paths grows as 8·7^(k−1); use `hops` ≤ 4, `long`, or an explicit `paths` list"),
                );
                None
            }
        }
    }

    /// The identity and the listed paths, each checked on its own so all bad paths are reported.
    fn listed_path_set(
        &mut self,
        list: &[(Path, Span)],
        sp: Span,
        lattice: &Lattice,
    ) -> Option<Vec<Path>> {
        if list.len() >= paths::MAX_PATHS {
            self.err(
                Problem::new(
                    Code::TooManyPaths,
                    sp,
                    format!("more than {} paths", paths::MAX_PATHS),
                    "too many paths",
                )
                .help("list fewer paths, or use `hops = k` or `long`"),
            );
            return None;
        }
        let mut out: Vec<Path> = vec![Vec::new()];
        let mut ok = true;
        for (p, psp) in list {
            if paths::backtracks(p) {
                self.err(
                    Problem::new(
                        Code::BadPath,
                        *psp,
                        format!("the path `{}` steps straight back", paths::display(p)),
                        "backtracking path",
                    )
                    .help(
                        "a step followed by its reverse cancels (U·U† = 1); write the shorter path",
                    ),
                );
                ok = false;
                continue;
            }
            let steps = paths::steps_per_axis(p);
            if let Some(mu) = (0..4).find(|&m| steps[m] >= lattice.dims[m]) {
                self.err(
                    Problem::new(
                        Code::HopsTooLong,
                        *psp,
                        format!(
                            "the path `{}` takes {} steps along {}, whose extent{} is {}",
                            paths::display(p),
                            steps[mu],
                            ["x", "y", "z", "t"][mu],
                            match self.coarse_level {
                                Some(_) => format!(" on the {}", self.lattice_words(lattice)),
                                None => String::new(),
                            },
                            lattice.dims[mu]
                        ),
                        "wraps around the lattice",
                    )
                    .help(format!(
                        "use fewer than {} steps along {}",
                        lattice.dims[mu],
                        ["x", "y", "z", "t"][mu]
                    )),
                );
                ok = false;
                continue;
            }
            if out.contains(p) {
                self.err(
                    Problem::new(
                        Code::BadPath,
                        *psp,
                        format!("the path `{}` is listed twice", paths::display(p)),
                        "duplicate path",
                    )
                    .help("each path gets its own weights; list it once"),
                );
                ok = false;
                continue;
            }
            out.push(p.clone());
        }
        ok.then_some(out)
    }

    /// The displacements of a non-gauge coarse layer on a near-null level's coarse lattice
    /// `dims` (no gauge field: a path is only where it ends), the identity first, each once
    /// modulo the extents (`ir::coarse_hop_offsets`); `None` if invalid (reported).
    pub(super) fn coarse_offsets(
        &mut self,
        reach: &Reach,
        dims: [usize; 4],
    ) -> Option<Vec<[i64; 4]>> {
        let lattice = Lattice { dims };
        match &reach.kind {
            ReachKind::Invalid => None,
            ReachKind::Identity => Some(vec![[0; 4]]),
            ReachKind::Long => {
                let sp = reach.span.unwrap_or_default();
                self.err(
                    Problem::new(
                        Code::BadArgument,
                        sp,
                        "`long` paths are not defined on a near-null level's coarse lattice",
                        "not on the coarse lattice",
                    )
                    .help("use `hops = 1` (the identity and the nearest coarse neighbours) or list displacements with `paths = [+x, -t]`"),
                );
                None
            }
            ReachKind::Hops(k, sp) => {
                // Displacements that coincide modulo an extent are one neighbour (kept once),
                // so a short direction is no problem; but `hops` at least the largest extent
                // adds nothing but wrapped copies.
                let k = usize::try_from(*k).unwrap_or(usize::MAX);
                let max_extent = dims.iter().copied().max().unwrap_or(1);
                if k > 0 && k >= max_extent {
                    let mu = dims.iter().position(|d| *d == max_extent).unwrap_or(0);
                    let dir = ["x", "y", "z", "t"][mu];
                    self.err(
                        Problem::new(
                            Code::HopsTooLong,
                            *sp,
                            format!(
                                "paths of {k} hops are longer than the {}, whose largest extent is {max_extent} (along {dir})",
                                self.lattice_words(&lattice)
                            ),
                            format!("{k} hops"),
                        )
                        .help(format!(
                            "{max_extent} steps along {dir} wrap around the coarse lattice to the start; use `hops` of at most {}",
                            max_extent.saturating_sub(1)
                        )),
                    );
                    return None;
                }
                let offsets = ir::coarse_hop_offsets(dims, k, paths::MAX_PATHS);
                if offsets.len() > paths::MAX_PATHS {
                    self.err(
                        Problem::new(
                            Code::TooManyPaths,
                            *sp,
                            format!("`hops = {k}` reaches more than {} coarse neighbours", paths::MAX_PATHS),
                            "too many displacements",
                        )
                        .help("each displacement gets its own n_basis x n_basis weights; use `hops = 1` or list a few with `paths = [...]`"),
                    );
                    return None;
                }
                Some(offsets)
            }
            ReachKind::Paths(list, sp) => {
                if list.len() >= paths::MAX_PATHS {
                    self.err(
                        Problem::new(
                            Code::TooManyPaths,
                            *sp,
                            format!("more than {} paths", paths::MAX_PATHS),
                            "too many paths",
                        )
                        .help("list fewer paths, or use `hops = 1`"),
                    );
                    return None;
                }
                let key = |d: &[i64; 4]| -> [i64; 4] {
                    std::array::from_fn(|mu| d[mu].rem_euclid(dims[mu] as i64))
                };
                let mut out = vec![[0i64; 4]];
                let mut firsts: Vec<Option<Span>> = vec![None];
                let mut ok = true;
                for (p, psp) in list {
                    let d = ir::displacement(p);
                    if let Some(mu) = (0..4).find(|&m| d[m].unsigned_abs() as usize >= dims[m]) {
                        let dir = ["x", "y", "z", "t"][mu];
                        self.err(
                            Problem::new(
                                Code::HopsTooLong,
                                *psp,
                                format!(
                                    "the path `{}` moves {} steps along {dir}, but the {} has extent {} there",
                                    paths::display(p),
                                    d[mu].unsigned_abs(),
                                    self.lattice_words(&lattice),
                                    dims[mu]
                                ),
                                "longer than the coarse lattice",
                            )
                            .help(format!(
                                "a displacement of {} along {dir} wraps around to the start; use fewer than {} steps",
                                dims[mu], dims[mu]
                            )),
                        );
                        ok = false;
                        continue;
                    }
                    if let Some(i) = out.iter().position(|e| key(e) == key(&d)) {
                        let mut problem = Problem::new(
                            Code::BadPath,
                            *psp,
                            format!(
                                "the path `{}` reaches the same coarse neighbour as {}",
                                paths::display(p),
                                if i == 0 { "the identity".to_string() } else { "an earlier path".to_string() }
                            ),
                            "same neighbour",
                        )
                        .help("on a coarse lattice without a gauge field a path is only its displacement (modulo the extents: on extent 2, +x and -x coincide); each neighbour gets one weight matrix, so list it once");
                        if let Some(first) = firsts[i] {
                            problem = problem.note(first, "this one");
                        }
                        self.err(problem);
                        ok = false;
                        continue;
                    }
                    out.push(d);
                    firsts.push(Some(*psp));
                }
                ok.then_some(out)
            }
        }
    }

    /// How a diagnostic names `lattice`: "lattice", or, inside a pooled level's body, "coarse
    /// lattice 2 x 2 x 2 x 4 of level `coarse`" (its extents are the fine ones over the blocks).
    fn lattice_words(&self, lattice: &Lattice) -> String {
        match &self.coarse_level {
            Some(name) => format!(
                "coarse lattice {} of level `{name}`",
                lattice.dims.map(|d| d.to_string()).join(" x ")
            ),
            None => "lattice".into(),
        }
    }
}
