//! Syntax: `.sym` text → [`ast::Model`]. The only module where pest lives.
//!
//! [`parse`] first runs the lexical pre-pass ([`lex`]: NUL bytes, line and file limits,
//! unterminated comments/strings/blocks, nesting depth) so that the recursive pest parser only
//! ever sees text it can handle without exhausting the stack, then parses with
//! `grammar/sym.pest` and lowers the parse tree to the AST.

pub mod ast;
pub mod lex;
mod parser;

use crate::diagnostics::Problem;

/// Parse a source text into the AST, or return the problems found.
pub fn parse(text: &str) -> Result<ast::Model, Vec<Problem>> {
    let problems = lex::scan(text);
    if !problems.is_empty() {
        return Err(problems);
    }
    parser::parse_file(text)
}

#[cfg(test)]
mod tests {
    use super::ast::{Stmt, ValueKind};
    use super::*;

    fn first_op_args(src: &str) -> Vec<ValueKind> {
        let m = parse(src).unwrap_or_else(|p| panic!("{p:?}"));
        let net = &m.networks[0];
        let Some(Stmt::Op { call, .. }) = net.body.iter().find(|s| matches!(s, Stmt::Op { .. }))
        else {
            panic!("no op")
        };
        call.args.iter().flatten().map(|a| a.value.kind.clone()).collect()
    }

    #[test]
    fn literals_are_parsed_in_the_lexer() {
        let args = first_op_args(
            "network n { f(1 -> 10, 1..2, -3, 1e-3, 6.0E+2, \"s p\", [+x, -2t, +x+y], w) }",
        );
        assert_eq!(args[0], ValueKind::Features(1, 10));
        assert_eq!(args[1], ValueKind::Range(1, 2));
        assert_eq!(args[2], ValueKind::Int(-3));
        assert_eq!(args[3], ValueKind::Float(1e-3));
        assert_eq!(args[4], ValueKind::Float(600.0));
        assert_eq!(args[5], ValueKind::Str("s p".into()));
        let ValueKind::List(paths) = &args[6] else { panic!() };
        let steps: Vec<_> = paths
            .iter()
            .map(|p| match &p.kind {
                ValueKind::Path(s) => s.clone(),
                k => panic!("{k:?}"),
            })
            .collect();
        assert_eq!(
            steps,
            [vec![(0, true)], vec![(3, false), (3, false)], vec![(0, true), (1, true)]]
        );
        assert!(matches!(&args[7], ValueKind::Call(c) if c.name.name == "w" && c.args.is_none()));
    }

    #[test]
    fn spans_end_at_the_last_token_not_at_trailing_comments() {
        let src = "network n {\n  relu // gate\n  linear(1 -> 2)\n}";
        let m = parse(src).expect("parses");
        let spans: Vec<&str> =
            m.networks[0].body.iter().map(|s| &src[s.span().start..s.span().end]).collect();
        assert_eq!(spans, ["relu", "linear(1 -> 2)"]);
    }

    #[test]
    fn lattice_separators_and_keywords_need_boundaries() {
        let m = parse("network n { lattice 8x8 X 8 * 16 inputs = relu }").expect("parses");
        let Stmt::Lattice { dims, .. } = &m.networks[0].body[0] else { panic!() };
        assert_eq!(dims.iter().map(|d| d.0).collect::<Vec<_>>(), [8, 8, 8, 16]);
        // `inputs` is a layer label, not the `input` keyword.
        assert!(
            matches!(&m.networks[0].body[1], Stmt::Op { label: Some(l), .. } if l.name == "inputs")
        );
    }
}
