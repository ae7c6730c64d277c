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
