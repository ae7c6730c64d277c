//! The pooling transfer of a pooled `level` (models.md §1.7): which routes from each block's
//! reference point make the terms Ĝ_i, what loop field a term multiplies by, and where the
//! reference point sits, checked into an [`ir::PoolTransfer`](crate::ir::PoolTransfer).
//!
//! ```text
//! level coarse(blocks = [4, 4, 4, 4], pool = lexicographic) { ... }
//! level coarse(blocks = [4, 4, 4, 4], pool = cyclic, reference = [2, 2, 2, 2]) { ... }
//! level coarse(blocks = [4, 4, 4, 4],
//!              pool = [lexicographic, one_step_reversed_lexicographic,
//!                      lexicographic(times = clover(x, y))]) { ... }
//! ```
//!
//! A single word names a whole transfer (`static`: one route, no weights; `cyclic`: four
//! routes; any route word: that route with weights); a list names one weighted term per entry.

use super::Checker;
use crate::diagnostics::{Code, Problem};
use crate::ir::{LoopField, PoolRoute, PoolTerm, PoolTransfer};
use crate::sema::args::{self, ArgSet};
use crate::syntax::ast::{Value, ValueKind};

const DIRECTIONS: [&str; 4] = ["x", "y", "z", "t"];

impl Checker<'_> {
    /// `pool = WORD | ROUTE(times = FIELD) | [TERM, ...]` and `reference = [..]`.
    pub(super) fn pool_transfer(
        &mut self,
        pool: &Value,
        reference: Option<&Value>,
        blocks: Option<[usize; 4]>,
    ) -> Option<PoolTransfer> {
        let reference = match reference {
            None => Some([0; 4]),
            Some(r) => self.pool_reference(r, blocks),
        };
        let transfer = match &pool.kind {
            ValueKind::Call(c) if c.args.is_none() => {
                let w = c.name.name.as_str();
                let t = PoolTransfer::from_family_word(w, [0; 4]);
                if t.is_none() {
                    self.err(
                        Problem::new(
                            Code::BadLevel,
                            pool.span,
                            format!("unknown pooling path family `{w}`"),
                            "unknown family",
                        )
                        .help(args::suggest_help(
                            w,
                            PoolTransfer::FAMILY_WORDS,
                            "pooling path families are",
                        )),
                    );
                }
                t
            }
            ValueKind::Call(_) => self.pool_term(pool).map(|t| PoolTransfer {
                terms: vec![t],
                weighted: true,
                reference: [0; 4],
            }),
            ValueKind::List(items) => self.pool_terms(pool, items),
            _ => {
                self.err(args::mistyped(
                    pool,
                    "`pool`",
                    "a path family (`static`, `lexicographic`, `cyclic`, ...) or a list of routes",
                ).help("write e.g. `pool = lexicographic` or `pool = [lexicographic, reversed_lexicographic]`"));
                None
            }
        };
        let (mut transfer, reference) = (transfer?, reference?);
        transfer.reference = reference;
        Some(transfer)
    }

    /// `[TERM, ...]`: one weighted term per entry, no two alike.
    fn pool_terms(&mut self, pool: &Value, items: &[Value]) -> Option<PoolTransfer> {
        if items.is_empty() {
            self.err(
                Problem::new(Code::BadLevel, pool.span, "`pool = []` has no terms", "empty")
                    .help("name at least one route, e.g. `pool = [lexicographic]`"),
            );
            return None;
        }
        let mut terms: Vec<(PoolTerm, &Value)> = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(term) = self.pool_term(item) else {
                ok = false;
                continue;
            };
            if let Some((_, first)) = terms.iter().find(|(t, _)| *t == term) {
                self.err(
                    Problem::new(
                        Code::BadLevel,
                        item.span,
                        format!("the pooling term `{}` is listed twice", term.describe()),
                        "repeated here",
                    )
                    .note(first.span, "first here")
                    .help("its weights would only add to the first one's: remove it, or use another route or loop field"),
                );
                ok = false;
                continue;
            }
            terms.push((term, item));
        }
        let terms = terms.into_iter().map(|(t, _)| t).collect();
        ok.then_some(PoolTransfer { terms, weighted: true, reference: [0; 4] })
    }

    /// One term: `ROUTE` or `ROUTE(times = FIELD)`.
    fn pool_term(&mut self, v: &Value) -> Option<PoolTerm> {
        let ValueKind::Call(call) = &v.kind else {
            self.err(args::mistyped(v, "a pooling term", "a route such as `lexicographic`"));
            return None;
        };
        let w = call.name.name.as_str();
        let Some(route) = PoolRoute::from_word(w) else {
            let p = if matches!(w, "static" | "cyclic") {
                Problem::new(
                    Code::BadLevel,
                    call.name.span,
                    format!("`{w}` names a whole pooling transfer, not one of its routes"),
                    "not a route",
                )
                .help(format!(
                    "write `pool = {w}` on its own, or list routes: {}",
                    args::list(PoolRoute::WORDS)
                ))
            } else {
                Problem::new(
                    Code::BadLevel,
                    call.name.span,
                    format!("unknown pooling route `{w}`"),
                    "unknown route",
                )
                .help(args::suggest_help(
                    w,
                    PoolRoute::WORDS,
                    "pooling routes are",
                ))
            };
            self.err(p);
            return None;
        };
        if call.args.is_none() {
            return Some(PoolTerm { route, times: None });
        }
        let a = ArgSet::read(call, &["times"], &[], &[], &mut self.problems);
        let field = a.require("times", "times = clover(x, y)", &mut self.problems)?;
        let times = self.loop_field(field)?;
        Some(PoolTerm { route, times: Some(times) })
    }

    /// `plaquette(MU, NU)` or `clover(MU, NU)` with two different directions.
    fn loop_field(&mut self, v: &Value) -> Option<LoopField> {
        let help = "a loop field: `plaquette(x, y)` (one plaquette at the site) or `clover(x, y)` \
                    (its four clover leaves), in a plane of two different directions";
        let ValueKind::Call(call) = &v.kind else {
            self.err(args::mistyped(v, "`times`", "a loop field").help(help));
            return None;
        };
        let name = call.name.name.as_str();
        if !LoopField::WORDS.contains(&name) {
            self.err(
                Problem::new(
                    Code::BadLevel,
                    call.name.span,
                    format!("unknown loop field `{name}`"),
                    "unknown field",
                )
                .help(args::suggest_help(
                    name,
                    LoopField::WORDS,
                    "loop fields are",
                )),
            );
            return None;
        }
        let a = ArgSet::read(call, &["mu", "nu"], &["mu", "nu"], &[], &mut self.problems);
        let (Some(m), Some(n)) = (a.get("mu"), a.get("nu")) else {
            self.err(
                Problem::new(
                    Code::BadLevel,
                    v.span,
                    format!("`{name}` needs the two directions of its plane"),
                    "plane missing",
                )
                .help(format!("write e.g. `{name}(x, y)`")),
            );
            return None;
        };
        let dir = |this: &mut Self, d: &Value| {
            let i = args::word(d).and_then(|w| DIRECTIONS.iter().position(|x| *x == w));
            if i.is_none() {
                this.err(args::mistyped(d, "a direction", "one of `x`, `y`, `z`, `t`"));
            }
            i.map(|i| i as u8)
        };
        let (mu, nu) = (dir(self, m), dir(self, n));
        let (mu, nu) = (mu?, nu?);
        if mu == nu {
            self.err(
                Problem::new(
                    Code::BadLevel,
                    n.span,
                    format!(
                        "`{name}` needs a plane, but both directions are `{}`",
                        DIRECTIONS[mu as usize]
                    ),
                    "same direction",
                )
                .help(format!("write two different directions, e.g. `{name}(x, y)`")),
            );
            return None;
        }
        Some(match name {
            "plaquette" => LoopField::Plaquette { mu, nu },
            _ => LoopField::Clover { mu, nu },
        })
    }

    /// `reference = [rx, ry, rz, rt]`, each inside the block.
    fn pool_reference(&mut self, v: &Value, blocks: Option<[usize; 4]>) -> Option<[usize; 4]> {
        let ValueKind::List(items) = &v.kind else {
            self.err(args::mistyped(
                v,
                "`reference`",
                "a point of the block, one coordinate per direction, e.g. `[2, 2, 2, 2]`",
            ));
            return None;
        };
        if items.len() != 4 {
            self.err(
                Problem::new(
                    Code::BadLevel,
                    v.span,
                    format!(
                        "`reference` needs one coordinate per direction (x, y, z, t), found {}",
                        items.len()
                    ),
                    "four coordinates",
                )
                .help("write e.g. `reference = [2, 2, 2, 2]` (from the block's origin)"),
            );
            return None;
        }
        let mut out = [0usize; 4];
        let mut ok = true;
        for (mu, item) in items.iter().enumerate() {
            let Some(c) = args::expect_int(item, "a coordinate", &mut self.problems) else {
                ok = false;
                continue;
            };
            let extent = blocks.map(|b| b[mu]);
            if c < 0 || extent.is_some_and(|b| c as usize >= b) {
                let dir = DIRECTIONS[mu];
                let range = extent.map_or("a non-negative coordinate".to_string(), |b| {
                    format!(
                        "a coordinate from 0 to {} (the block is {b} sites long in {dir})",
                        b - 1
                    )
                });
                self.err(
                    Problem::new(
                        Code::BadLevel,
                        item.span,
                        format!("the reference point lies outside its block in {dir}"),
                        "outside the block",
                    )
                    .help(format!(
                        "the reference point is counted from the block's origin: use {range}"
                    )),
                );
                ok = false;
                continue;
            }
            out[mu] = c as usize;
        }
        ok.then_some(out)
    }
}
