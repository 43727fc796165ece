//! Parser hints: the labels a metric query can observe once its pipeline has run, so
//! `json` and `logfmt` extract only those (Loki's `pkg/logql/log/parser_hints.go`).
//!
//! Unlike Loki's hints these never change an answer: parsers still read every key and
//! report the same `__error__` and `__error_details__`; only labels nobody reads are
//! left unset. That holds because every stage after a parser reads labels by name (label
//! filters, templates, `label_format`, `drop`/`keep`, `unwrap`), and a `by` grouping
//! keeps only its names plus the error labels. Loki also stops parsing once the hinted
//! keys are found and skips parsers when no label is needed; both can hide a syntax
//! error further on, so Silt does neither.

use super::{Compiled, LabelFmt};
use silt_logql::ast::Grouping;

/// Labels a parser must set; any other parsed label is never read.
#[derive(Clone, Debug, Default)]
pub struct Hints {
    names: Vec<String>,
    /// A word of each name a parser may set (see [`Hints::may_match_line`]); `None` when
    /// some name has no letter or digit.
    words: Option<Vec<memchr::memmem::Finder<'static>>>,
}

impl PartialEq for Hints {
    fn eq(&self, other: &Hints) -> bool {
        self.names == other.names
    }
}

impl Eq for Hints {}

/// Names parsers always set: errors must come out as without hints (a line may even
/// carry a key named `__error__`, which then acts as the error label).
pub(super) const ALWAYS: [&str; 2] = ["__error__", "__error_details__"];

impl Hints {
    /// Hints for exactly these labels.
    pub fn new(mut names: Vec<String>) -> Hints {
        names.retain(|n| !ALWAYS.contains(&n.as_str()));
        names.sort();
        names.dedup();
        let words = names
            .iter()
            .map(|n| n.strip_suffix("_extracted").unwrap_or(n))
            .chain(ALWAYS)
            .map(|n| {
                n.split(|c: char| !c.is_ascii_alphanumeric())
                    .max_by_key(|w| w.len())
                    .filter(|w| !w.is_empty())
                    .map(|w| memchr::memmem::Finder::new(w).into_owned())
            })
            .collect::<Option<Vec<_>>>();
        Hints { names, words }
    }

    /// Whether a line may hold a key that sanitizes to a wanted name. Sanitizing keeps
    /// ASCII letters and digits, so such a key, and the line, contains each word of the
    /// name; a line without any name's longest word yields nothing to set, and a parser
    /// that reports no errors (non-strict `logfmt`) need not read it.
    pub fn may_match_line(&self, line: &str) -> bool {
        match &self.words {
            None => true,
            Some(words) => words.iter().any(|w| w.find(line.as_bytes()).is_some()),
        }
    }

    /// Whether a key sanitized to `name` may be read, as `name` or as
    /// `name_extracted` (the name it takes when it collides with an original label).
    pub fn may_want(&self, name: &str) -> bool {
        ALWAYS.contains(&name)
            || self
                .names
                .iter()
                .any(|n| n == name || n.strip_suffix("_extracted") == Some(name))
    }

    /// The hinted names (error labels left out).
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Hints for a pipeline whose result only matters through `grouping` (a `by` of the
/// range aggregation or of a `sum` pushed down into it) and `unwrap`; `None` when every
/// label can reach the answer (no grouping, or `without`).
pub(super) fn for_grouping(
    stages: &[Compiled],
    grouping: Option<&Grouping>,
    unwrap: Option<&str>,
    post_filters: &[super::LabelFilter],
) -> Option<Hints> {
    let g = grouping.filter(|g| !g.without)?;
    let mut names: Vec<String> = g.labels.clone();
    names.extend(unwrap.map(str::to_string));
    for f in post_filters {
        f.names(&mut names);
    }
    for s in stages {
        read_by(s, &mut names);
    }
    Some(Hints::new(names))
}

/// Adds the labels stage `s` reads by name. A label it only writes or removes (`drop`,
/// `keep`, a `label_format` target) matters only if something reads it, which adds it.
fn read_by(s: &Compiled, out: &mut Vec<String>) {
    match s {
        Compiled::Label(f) => f.names(out),
        Compiled::LineFormat(t) => t.fields(out),
        Compiled::LabelFormat(fs) => {
            for (_, f) in fs {
                match f {
                    LabelFmt::Rename(src) => out.push(src.clone()),
                    LabelFmt::Template(t) => t.fields(out),
                }
            }
        }
        Compiled::Drop(_)
        | Compiled::Keep(_)
        | Compiled::Line(_)
        | Compiled::Json(_)
        | Compiled::Logfmt { .. }
        | Compiled::Regexp(_)
        | Compiled::Pattern(_)
        | Compiled::Unpack
        | Compiled::Decolorize => {}
    }
}
