//! Substrings that every line kept by a pipeline's leading line filters must contain,
//! handed to sources as data so a content index can rule out whole blocks of lines.
//!
//! The result is a conjunction of clauses; a clause is a disjunction of needles. Needles
//! are bytes compared ignoring ASCII case: a weaker requirement than the filters' own
//! (which the engine still applies), so an index may lower-case what it stores.

use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Class, Hir, HirKind};
use silt_logql::ast::{LineFilter, LineFilterOp, LineFilterValue};

/// One clause: a kept line contains at least one of these (ASCII case ignored).
pub type Clause = Vec<Vec<u8>>;

/// The clauses implied by leading line filters; filters that imply nothing (negations,
/// `ip()`, regexes without required literals) add no clause.
pub fn required(filters: &[&LineFilter]) -> Vec<Clause> {
    let mut out = Vec::new();
    for f in filters {
        match f.op {
            LineFilterOp::Contains | LineFilterOp::Match => {
                let mut clause = Clause::new();
                let all = f.values.iter().all(|v| match v {
                    LineFilterValue::Str(s) if f.op == LineFilterOp::Contains => {
                        clause.push(lower(s.as_bytes()));
                        !s.is_empty()
                    }
                    LineFilterValue::Str(s) => match regex_literals(s) {
                        Some(lits) => {
                            clause.extend(lits);
                            true
                        }
                        None => false,
                    },
                    LineFilterValue::Ip(_) => false,
                });
                if all {
                    clause.sort();
                    clause.dedup();
                    out.push(clause);
                }
            }
            // Every literal of a matching pattern occurs in the line.
            LineFilterOp::Pattern => {
                if let [LineFilterValue::Str(s)] = f.values.as_slice() {
                    out.extend(
                        s.split("<_>")
                            .filter(|l| !l.is_empty())
                            .map(|l| vec![lower(l.as_bytes())]),
                    );
                }
            }
            LineFilterOp::NotContains | LineFilterOp::NotMatch | LineFilterOp::NotPattern => {}
        }
    }
    out
}

fn lower(b: &[u8]) -> Vec<u8> {
    b.to_ascii_lowercase()
}

/// Literals one of which every match of `re` contains (lower-cased), or `None` when the
/// regex does not pin any down.
fn regex_literals(re: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::Parser::new().parse(re).ok()?;
    // `(?i)` turns each letter into a class of its two cases; as one lower-case letter
    // the extractor keeps whole words instead of giving up on 2^n case variants.
    let hir = fold_case_pairs(&hir);
    for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
        let seq = Extractor::new().kind(kind).extract(&hir);
        // A finite set: every match starts (ends) with one of them.
        let Some(lits) = seq.literals() else {
            continue;
        };
        if lits.is_empty() || lits.iter().any(|l| l.as_bytes().is_empty()) {
            continue;
        }
        let mut out: Vec<Vec<u8>> = lits.iter().map(|l| lower(l.as_bytes())).collect();
        out.sort();
        out.dedup();
        return Some(out);
    }
    None
}

/// `hir` with classes that hold exactly an ASCII letter's two cases replaced by the
/// lower-case letter (sound here: needles are compared ignoring ASCII case).
fn fold_case_pairs(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Class(c) => match case_pair(c) {
            Some(b) => Hir::literal([b]),
            None => hir.clone(),
        },
        HirKind::Repetition(r) => {
            let mut r = r.clone();
            r.sub = Box::new(fold_case_pairs(&r.sub));
            Hir::repetition(r)
        }
        HirKind::Capture(c) => {
            let mut c = c.clone();
            c.sub = Box::new(fold_case_pairs(&c.sub));
            Hir::capture(c)
        }
        HirKind::Concat(v) => Hir::concat(v.iter().map(fold_case_pairs).collect()),
        HirKind::Alternation(v) => Hir::alternation(v.iter().map(fold_case_pairs).collect()),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Look(_) => hir.clone(),
    }
}

fn case_pair(c: &Class) -> Option<u8> {
    let chars: Vec<u32> = match c {
        Class::Unicode(u) => u
            .ranges()
            .iter()
            .flat_map(|r| r.start() as u32..=r.end() as u32)
            .take(3)
            .collect(),
        Class::Bytes(b) => b
            .ranges()
            .iter()
            .flat_map(|r| r.start() as u32..=r.end() as u32)
            .take(3)
            .collect(),
    };
    match chars.as_slice() {
        [a, b] if a.abs_diff(*b) == 32 => {
            let (a, b) = (u8::try_from(*a).ok()?, u8::try_from(*b).ok()?);
            (a.is_ascii_alphabetic() && a.eq_ignore_ascii_case(&b)).then(|| a.to_ascii_lowercase())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(q: &str) -> Vec<Vec<String>> {
        let e = silt_logql::parse(&format!("{{a=\"b\"}} {q}")).unwrap();
        let silt_logql::ast::Expr::Log(l) = e else {
            panic!("not a log query")
        };
        let filters: Vec<&LineFilter> = l
            .pipeline
            .iter()
            .map_while(|s| match s {
                silt_logql::ast::Stage::LineFilter(f) => Some(f),
                _ => None,
            })
            .collect();
        required(&filters)
            .into_iter()
            .map(|c| {
                c.into_iter()
                    .map(|n| String::from_utf8(n).unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn substrings_and_alternatives() {
        assert_eq!(req(r#"|= "Session expired""#), [["session expired"]]);
        assert_eq!(req(r#"|= "a" or "B" |= "c""#), [vec!["a", "b"], vec!["c"]]);
        // An empty operand keeps every line, so its clause says nothing.
        assert!(req(r#"|= "" or "x""#).is_empty());
        assert!(req(r#"!= "x" !~ "y" |= ip("10.0.0.0/8")"#).is_empty());
        assert_eq!(
            req(r#"|> "<_> GET <_> 200""#),
            [vec![" get "], vec![" 200"]]
        );
    }

    #[test]
    fn regex_literals_are_required_words() {
        assert_eq!(req(r#"|~ "(?i)timeout""#), [["timeout"]]);
        // `s` folds to long s too: both spellings stay alternatives.
        assert_eq!(
            req(r#"|~ "(?i)connection refused by peer""#),
            [[
                "connection refused by peer",
                "connection refu\u{17f}ed by peer"
            ]]
        );
        assert_eq!(req(r#"|~ "error|warn""#), [["error", "warn"]]);
        assert_eq!(
            req(r#"|~ "no-such-(text|thing)""#),
            [["no-such-text", "no-such-thing"]]
        );
        // No prefix, but every match ends with the literal.
        assert_eq!(req(r#"|~ "\\d+ refused""#), [[" refused"]]);
        // Nothing required at all.
        assert!(req(r#"|~ ".*""#).is_empty());
        assert!(req(r#"|~ "a|.*""#).is_empty());
        // Kelvin sign and long s are case variants of k and s: kept as alternatives.
        let k = req(r#"|~ "(?i)k""#);
        assert_eq!(k.len(), 1);
        assert!(k[0].contains(&"k".to_string()) && k[0].contains(&"\u{212a}".to_string()));
    }
}
