//! Reading the arguments of a call (`linear(1 -> 10, window = 10)`, `adam(lr = 1e-3)`)
//! against the list of arguments that call takes, with a diagnostic for every unknown,
//! duplicate or mistyped argument.

use crate::diagnostics::{Code, Problem};
use crate::ir::Span;
use crate::syntax::ast::{Call, Value, ValueKind};

/// The arguments of one call, matched by name. Positional arguments take the names in
/// `positional` in order; bare words listed in `flags` may appear anywhere positionally.
pub struct ArgSet<'a> {
    pub call: &'a Call,
    named: Vec<(&'static str, &'a Value)>,
    flags: Vec<(&'static str, Span)>,
}

impl<'a> ArgSet<'a> {
    pub fn read(
        call: &'a Call,
        names: &[&'static str],
        positional: &[&'static str],
        flags: &[&'static str],
        problems: &mut Vec<Problem>,
    ) -> ArgSet<'a> {
        let mut set = ArgSet { call, named: Vec::new(), flags: Vec::new() };
        let what = &call.name.name;
        let mut next_pos = 0;
        for arg in call.args.iter().flatten() {
            let key: &'static str = match &arg.name {
                Some(n) => match names.iter().find(|k| **k == n.name) {
                    Some(k) => k,
                    None => {
                        let mut p = Problem::new(
                            Code::UnknownArgument,
                            n.span,
                            format!("`{what}` has no argument `{}`", n.name),
                            "unknown argument",
                        );
                        p = p.help(suggest_help(&n.name, names, "its arguments are"));
                        problems.push(p);
                        continue;
                    }
                },
                None => {
                    if let ValueKind::Call(c) = &arg.value.kind
                        && c.args.is_none()
                        && let Some(f) = flags.iter().find(|f| **f == c.name.name)
                    {
                        if set.flags.iter().any(|(g, _)| g == f) {
                            problems.push(Problem::new(
                                Code::DuplicateArgument,
                                arg.span,
                                format!("`{f}` is given twice"),
                                "repeated here",
                            ));
                        }
                        set.flags.push((f, arg.span));
                        continue;
                    }
                    match positional.get(next_pos) {
                        Some(k) => {
                            next_pos += 1;
                            k
                        }
                        None => {
                            let help = if names.is_empty() {
                                format!("`{what}` takes no arguments")
                            } else {
                                format!(
                                    "name the argument, e.g. `{} = ...`; `{what}` takes {}",
                                    names[0],
                                    list(names)
                                )
                            };
                            problems.push(
                                Problem::new(
                                    Code::UnknownArgument,
                                    arg.span,
                                    format!("unexpected argument to `{what}`"),
                                    "not expected here",
                                )
                                .help(help),
                            );
                            continue;
                        }
                    }
                }
            };
            if let Some((_, first)) = set.named.iter().find(|(k, _)| *k == key) {
                problems.push(
                    Problem::new(
                        Code::DuplicateArgument,
                        arg.span,
                        format!("argument `{key}` is given twice"),
                        "given again here",
                    )
                    .note(first.span, "first given here"),
                );
                continue;
            }
            set.named.push((key, &arg.value));
        }
        set
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.named.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    pub fn flag(&self, key: &str) -> Option<Span> {
        self.flags.iter().find(|(k, _)| *k == key).map(|(_, s)| *s)
    }

    /// A required argument: reports its absence at the call.
    pub fn require(
        &self,
        key: &str,
        example: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<&'a Value> {
        let v = self.get(key);
        if v.is_none() {
            problems.push(
                Problem::new(
                    Code::MissingArgument,
                    self.call.span,
                    format!("`{}` needs the argument `{key}`", self.call.name.name),
                    format!("`{key}` missing"),
                )
                .help(format!("write e.g. `{example}`")),
            );
        }
        v
    }
}

/// `a`, `b` and `c`
pub fn list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        0 => "nothing".into(),
        1 => quoted[0].clone(),
        n => format!("{} and {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

/// "did you mean `x`?" when a close name exists, else the full list.
pub fn suggest_help(found: &str, names: &[&str], intro: &str) -> String {
    match closest(found, names) {
        Some(best) => format!("did you mean `{best}`? ({intro} {})", list(names)),
        None => format!("{intro} {}", list(names)),
    }
}

/// The candidate within edit distance 2 (or a third of the length) of `found`, if any.
pub fn closest<'n>(found: &str, names: &[&'n str]) -> Option<&'n str> {
    // `softmax` for `log_softmax`: a name contained in a candidate is a likely slip.
    if found.len() >= 4
        && let Some(n) = names.iter().find(|n| n.contains(found) || found.contains(**n))
    {
        return Some(n);
    }
    let limit = (found.chars().count() / 3).max(2);
    names
        .iter()
        .map(|n| (edit_distance(found, n), *n))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(!ca.eq_ignore_ascii_case(cb));
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Typed readers for argument values; each reports a mistyped value.
pub fn expect_int(v: &Value, what: &str, problems: &mut Vec<Problem>) -> Option<i64> {
    match v.kind {
        ValueKind::Int(i) => Some(i),
        _ => {
            problems.push(mistyped(v, what, "an integer"));
            None
        }
    }
}

/// A positive count (≥ 1) that fits in `usize`.
pub fn expect_count(v: &Value, what: &str, problems: &mut Vec<Problem>) -> Option<usize> {
    let i = expect_int(v, what, problems)?;
    if i <= 0 {
        problems.push(
            Problem::new(
                Code::ZeroSize,
                v.span,
                format!("{what} must be at least 1"),
                format!("this is {i}"),
            )
            .help(format!("give {what} as a positive integer")),
        );
        return None;
    }
    usize::try_from(i).ok()
}

/// A non-negative integer (seeds).
pub fn expect_u64(v: &Value, what: &str, problems: &mut Vec<Problem>) -> Option<u64> {
    let i = expect_int(v, what, problems)?;
    match u64::try_from(i) {
        Ok(u) => Some(u),
        Err(_) => {
            problems.push(Problem::new(
                Code::BadArgument,
                v.span,
                format!("{what} must not be negative"),
                format!("this is {i}"),
            ));
            None
        }
    }
}

pub fn expect_f64(v: &Value, what: &str, problems: &mut Vec<Problem>) -> Option<f64> {
    match v.kind {
        ValueKind::Int(i) => Some(i as f64),
        ValueKind::Float(f) => Some(f),
        _ => {
            problems.push(mistyped(v, what, "a number"));
            None
        }
    }
}

pub fn expect_bool(v: &Value, what: &str, problems: &mut Vec<Problem>) -> Option<bool> {
    match word(v) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => {
            problems.push(mistyped(v, what, "`true` or `false`"));
            None
        }
    }
}

pub fn expect_str<'v>(v: &'v Value, what: &str, problems: &mut Vec<Problem>) -> Option<&'v str> {
    match &v.kind {
        ValueKind::Str(s) => Some(s),
        _ => {
            problems.push(mistyped(v, what, "a string in double quotes"));
            None
        }
    }
}

/// The bare word of a value (`relu`, `valid`), if it is one.
pub fn word(v: &Value) -> Option<&str> {
    match &v.kind {
        ValueKind::Call(c) if c.args.is_none() => Some(&c.name.name),
        _ => None,
    }
}

pub fn mistyped(v: &Value, what: &str, expected: &str) -> Problem {
    Problem::new(
        Code::BadArgument,
        v.span,
        format!("{what} must be {expected}"),
        format!("found {}", v.kind.describe()),
    )
}
