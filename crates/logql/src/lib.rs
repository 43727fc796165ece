//! LogQL: lexer, parser, AST, pretty-printer and semantic checks.
//!
//! Pure and synchronous. [`parse`] follows Loki v3.7.6 (grammar of `syntax.y`,
//! parse-time checks of `ast.go`/`parser.go`); `Display` on the AST prints canonical
//! single-line LogQL that re-parses to the same AST; [`format_query`] reproduces
//! Loki's `format_query` (multi-line) output.

pub mod ast;
mod check;
mod error;
mod lexer;
mod parser;
pub mod pattern;
mod pipeline;
mod pretty;
mod printer;
pub mod units;

pub use error::ParseError;

/// Whether `query` is a multi-variant query (`variants(…) of (…)`): experimental in
/// Loki 3.7, disabled there by default (400), and not run by Silt.
pub fn is_multi_variant(query: &str) -> bool {
    lexer::lex(query).is_ok_and(|t| {
        matches!(
            t.first().map(|t| &t.tok),
            Some(lexer::Tok::Kw(lexer::Kw::Variants))
        )
    })
}
pub use parser::parse;
pub use pretty::{format_query, format_query_width};
