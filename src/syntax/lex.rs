//! A lexical pre-pass that runs before the pest grammar.
//!
//! It exists for robustness and for better messages: pest parses recursively, so bracket
//! nesting is bounded here ([`MAX_DEPTH`]) before any recursion can exhaust the stack; and
//! unterminated comments, strings and blocks are reported at the place they *start*, which is
//! where the user must look (pest would only report "unexpected end of input").

use crate::diagnostics::{Code, Problem};
use crate::ir::Span;

/// Deepest bracket nesting accepted. Real models nest two or three levels.
pub const MAX_DEPTH: usize = 64;
/// Longest line accepted, in bytes.
pub const MAX_LINE: usize = 10_000;
/// Largest file accepted, in bytes.
pub const MAX_FILE: usize = 4 << 20;

/// Scan `text`; return every lexical problem found (empty when the text may be parsed).
pub fn scan(text: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    if text.len() > MAX_FILE {
        problems.push(too_large());
        return problems;
    }
    if let Some(at) = text.find('\0') {
        problems.push(
            Problem::new(Code::NulByte, Span { start: at, end: at + 1 }, "the file contains a NUL byte", "NUL byte here")
                .help("a .sym file is plain UTF-8 text; this looks like a binary file or a corrupted copy"),
        );
        return problems;
    }
    let mut line_start = 0;
    for line in text.split('\n') {
        if line.len() > MAX_LINE {
            let start = line_start + floor_char_boundary(line, MAX_LINE);
            problems.push(
                Problem::new(
                    Code::LineTooLong,
                    Span::point(start),
                    format!(
                        "a line of {} bytes is longer than the limit of {MAX_LINE}",
                        line.len()
                    ),
                    "the rest of the line is not shown",
                )
                .help("break the line; .sym statements can span several lines"),
            );
            return problems;
        }
        line_start += line.len() + 1;
    }
    scan_tokens(text, &mut problems);
    problems
}

/// The problem for a file above [`MAX_FILE`] (also used when reading stops at the limit).
pub fn too_large() -> Problem {
    Problem::new(
        Code::FileTooLarge,
        Span::point(0),
        format!("the file is larger than {MAX_FILE} bytes, the limit for model files"),
        "this file",
    )
    .help("a .sym file describes a network in a few dozen lines; is this the right file?")
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn closer(open: u8) -> u8 {
    match open {
        b'(' => b')',
        b'[' => b']',
        _ => b'}',
    }
}

fn scan_tokens(text: &str, problems: &mut Vec<Problem>) {
    let bytes = text.as_bytes();
    let mut stack: Vec<(u8, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => match text[i + 2..].find("*/") {
                Some(end) => i += 2 + end + 2,
                None => {
                    problems.push(
                        Problem::new(
                            Code::UnterminatedComment,
                            Span { start: i, end: i + 2 },
                            "this block comment is never closed",
                            "comment starts here",
                        )
                        .help("close it with `*/` (block comments do not nest)"),
                    );
                    return;
                }
            },
            b'"' => match text[i + 1..].find(['"', '\n']) {
                Some(end) if bytes[i + 1 + end] == b'"' => i += end + 2,
                _ => {
                    problems.push(
                        Problem::new(
                            Code::UnterminatedString,
                            Span { start: i, end: i + 1 },
                            "this string is not closed on its line",
                            "string starts here",
                        )
                        .help("end the string with `\"` before the end of the line"),
                    );
                    return;
                }
            },
            open @ (b'(' | b'[' | b'{') => {
                if stack.len() >= MAX_DEPTH {
                    problems.push(
                        Problem::new(
                            Code::NestingTooDeep,
                            Span { start: i, end: i + 1 },
                            format!("brackets nest deeper than {MAX_DEPTH} levels"),
                            "too deep here",
                        )
                        .help("flatten the structure; real models nest only a few levels"),
                    );
                    return;
                }
                stack.push((open, i));
                i += 1;
            }
            close @ (b')' | b']' | b'}') => {
                match stack.pop() {
                    Some((open, _)) if closer(open) == close => {}
                    Some((open, at)) => {
                        problems.push(
                            Problem::new(
                                Code::MismatchedBracket,
                                Span { start: i, end: i + 1 },
                                format!(
                                    "`{}` does not close the `{}` that is still open",
                                    close as char, open as char
                                ),
                                format!("expected `{}` here", closer(open) as char),
                            )
                            .note(
                                Span { start: at, end: at + 1 },
                                "this is the innermost open bracket",
                            ),
                        );
                        return;
                    }
                    None => {
                        problems.push(
                            Problem::new(
                                Code::MismatchedBracket,
                                Span { start: i, end: i + 1 },
                                format!("`{}` closes nothing", close as char),
                                "no bracket is open here",
                            )
                            .help("remove it, or add the opening bracket it belongs to"),
                        );
                        return;
                    }
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    if let Some(&(open, at)) = stack.last() {
        let what = if open == b'{' { "block" } else { "bracket" };
        problems.push(
            Problem::new(
                Code::UnclosedBracket,
                Span { start: at, end: at + 1 },
                format!("this {what} is never closed"),
                format!("`{}` opened here", open as char),
            )
            .help(format!("add the matching `{}`", closer(open) as char)),
        );
    }
}
