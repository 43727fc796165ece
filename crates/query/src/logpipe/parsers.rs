//! Parser stages `logfmt`, `regexp`, `pattern`, label naming, and json path syntax (the
//! json stages are in `json_stage`).

use super::hints::Hints;
use super::EntryLabels;
use regex::Regex;
use silt_logql::pattern::Pattern;
use std::borrow::Cow;

/// Loki's label-name sanitisation: trim, every char outside `[A-Za-z0-9_]` → `_`,
/// a leading digit gets a `_` prefix.
pub fn sanitize(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 1);
    sanitize_into(&mut out, key);
    out
}

/// [`sanitize`], borrowing `key` when it is already a valid label name.
pub fn sanitize_cow(key: &str) -> Cow<'_, str> {
    let b = key.as_bytes();
    let valid = !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if valid {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(sanitize(key))
    }
}

/// [`sanitize`], appending to `out`.
pub fn sanitize_into(out: &mut String, key: &str) {
    let key = key.trim();
    for (i, c) in key.chars().enumerate() {
        if i == 0 && c.is_ascii_digit() {
            out.push('_');
        }
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
}

/// Adds a parsed label: `_extracted` on collision with an original label, first write wins.
pub fn add_parsed(labels: &mut EntryLabels, key: &str, value: &str) {
    if key.is_empty() {
        return;
    }
    if labels.is_original(key) {
        let name = format!("{key}_extracted");
        if !labels.parsed.contains(&name) {
            labels.parsed.set(&name, value);
        }
    } else if !labels.parsed.contains(key) {
        labels.parsed.set(key, value);
    }
}

/// One step of a json path expression.
#[derive(Clone, Debug, PartialEq)]
pub enum PathPart {
    /// `.key` or `["key"]`
    Key(String),
    /// `[0]`
    Index(usize),
}

/// Parses `a.b["c d"][0]`.
pub fn parse_path(expr: &str) -> Result<Vec<PathPart>, String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    let mut cur = String::new();
    while i < b.len() {
        match b[i] {
            b'.' => {
                if !cur.is_empty() {
                    out.push(PathPart::Key(std::mem::take(&mut cur)));
                }
                i += 1;
            }
            b'[' => {
                if !cur.is_empty() {
                    out.push(PathPart::Key(std::mem::take(&mut cur)));
                }
                let end = expr[i..]
                    .find(']')
                    .ok_or_else(|| format!("invalid json path {expr:?}"))?
                    + i;
                let inner = expr[i + 1..end].trim();
                if let Some(q) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    out.push(PathPart::Key(q.to_string()));
                } else {
                    out.push(PathPart::Index(
                        inner
                            .parse()
                            .map_err(|_| format!("invalid json path {expr:?}"))?,
                    ));
                }
                i = end + 1;
            }
            _ => {
                let c = expr[i..].chars().next().unwrap_or(' ');
                cur.push(c);
                i += c.len_utf8();
            }
        }
    }
    if !cur.is_empty() {
        out.push(PathPart::Key(cur));
    }
    if out.is_empty() {
        return Err(format!("invalid json path {expr:?}"));
    }
    Ok(out)
}

/// A path as Loki hands it to jsonparser (`JSONPathToStrings`): keys, and `[n]` for indexes.
pub fn path_strings(path: &[PathPart]) -> Vec<String> {
    path.iter()
        .map(|p| match p {
            PathPart::Key(k) => k.clone(),
            PathPart::Index(i) => format!("[{i}]"),
        })
        .collect()
}

/// A logfmt value as it stands in the line: unquoted, or the inside of quotes, still
/// escaped when `escaped` (decoded only if its label is wanted).
#[derive(Clone, Copy)]
struct RawValue<'a> {
    text: &'a str,
    escaped: bool,
}

impl<'a> RawValue<'a> {
    fn is_empty(self) -> bool {
        self.text.is_empty()
    }

    /// `\n`, `\t`, `\r` as control characters, any other escaped character as itself.
    fn decode(self) -> Cow<'a, str> {
        if !self.escaped {
            return Cow::Borrowed(self.text);
        }
        let mut out = String::with_capacity(self.text.len());
        let mut it = self.text.chars();
        while let Some(c) = it.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            // Inside closed quotes every backslash has a character after it.
            match it.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(c) => out.push(c),
                None => out.push('\\'),
            }
        }
        Cow::Owned(out)
    }
}

/// A malformed pair; its message (go-logfmt's) is built only when someone reads it.
enum SyntaxError {
    /// The byte at this index.
    Unexpected(usize, u8),
    /// A quoted value runs to the end of a line of this length.
    Unterminated(usize),
}

impl SyntaxError {
    fn message(&self) -> String {
        match self {
            SyntaxError::Unexpected(i, c) => format!(
                "logfmt syntax error at pos {} : unexpected '{}'",
                i + 1,
                *c as char
            ),
            // go-logfmt reports it at the end of the line.
            SyntaxError::Unterminated(len) => format!(
                "logfmt syntax error at pos {} : unterminated quoted value",
                len + 1
            ),
        }
    }
}

/// go-logfmt's error for the byte at `i`.
fn unexpected(b: &[u8], i: usize) -> SyntaxError {
    SyntaxError::Unexpected(i, b[i])
}

/// Walks the logfmt pairs of a line: `pair(key, value)` for each well-formed pair, and
/// `error(message)` for each malformed one, which is skipped. Either returns `false` to
/// stop.
fn logfmt_scan<'a>(
    line: &'a str,
    mut pair: impl FnMut(&'a str, RawValue<'a>) -> bool,
    mut error: impl FnMut(SyntaxError) -> bool,
) {
    let b = line.as_bytes();
    let mut i = 0;
    // Skips the rest of a malformed pair; non-strict parsing goes on after it.
    let skip = |i: &mut usize| {
        while *i < b.len() && b[*i] > b' ' {
            *i += 1;
        }
    };
    'pairs: while i < b.len() {
        while i < b.len() && b[i] <= b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &line[ks..i];
        if key.is_empty() {
            if !error(unexpected(b, i)) {
                return;
            }
            skip(&mut i);
            continue 'pairs;
        }
        if i >= b.len() || b[i] != b'=' {
            if i < b.len() && b[i] == b'"' {
                if !error(unexpected(b, i)) {
                    return;
                }
                skip(&mut i);
                continue 'pairs;
            }
            let empty = RawValue {
                text: "",
                escaped: false,
            };
            if !pair(key, empty) {
                return;
            }
            continue;
        }
        i += 1;
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let start = i;
            let mut escaped = false;
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        escaped = true;
                        // The escaped character may be multi-byte: step over all of it.
                        let c = line[i + 1..].chars().next().unwrap_or('\\');
                        i += 1 + c.len_utf8();
                    }
                    b'"' => {
                        i += 1;
                        closed = true;
                        break;
                    }
                    _ => i += 1,
                }
            }
            if !closed {
                if !error(SyntaxError::Unterminated(b.len())) {
                    return;
                }
                skip(&mut i);
                continue 'pairs;
            }
            let text = &line[start..i - 1];
            if !pair(key, RawValue { text, escaped }) {
                return;
            }
        } else {
            let vs = i;
            while i < b.len() && b[i] > b' ' {
                if b[i] == b'"' || b[i] == b'=' {
                    if !error(unexpected(b, i)) {
                        return;
                    }
                    skip(&mut i);
                    continue 'pairs;
                }
                i += 1;
            }
            let text = &line[vs..i];
            if !pair(
                key,
                RawValue {
                    text,
                    escaped: false,
                },
            ) {
                return;
            }
        }
    }
}

/// `| logfmt [--strict] [--keep-empty] [params]`; with `hints`, only wanted labels are
/// set (errors come out the same).
pub fn logfmt(
    line: &str,
    strict: bool,
    keep_empty: bool,
    params: &[(String, String)],
    labels: &mut EntryLabels,
    hints: Option<&Hints>,
) {
    let add = |labels: &mut EntryLabels, k: &str, v: RawValue<'_>| {
        if params.is_empty() {
            if v.is_empty() && !keep_empty {
                return;
            }
            let name = sanitize_cow(k);
            if hints.is_some_and(|h| !h.may_want(&name)) {
                return;
            }
            add_parsed(labels, &name, &v.decode());
        } else {
            for (name, key) in params {
                if key == k {
                    add_parsed(labels, name, &v.decode());
                }
            }
        }
    };
    if !strict {
        if params.is_empty() && hints.is_some_and(|h| !h.may_match_line(line)) {
            return;
        }
        logfmt_scan(
            line,
            |k, v| {
                add(labels, k, v);
                true
            },
            |_| true,
        );
        return;
    }
    // Strict mode stops at the first bad pair: what came before it is kept, as in Loki,
    // and the error is set before those pairs are added (a key may be `__error__`).
    let mut pairs = Vec::new();
    let mut err = None;
    logfmt_scan(
        line,
        |k, v| {
            pairs.push((k, v));
            true
        },
        |e| {
            err = Some(e.message());
            false
        },
    );
    if let Some(e) = &err {
        labels.set_error("LogfmtParserErr", e);
    }
    for (k, v) in pairs {
        add(labels, k, v);
    }
}

/// `| regexp "re"`: named groups become labels; no match extracts nothing.
pub fn regexp(line: &str, re: &Regex, labels: &mut EntryLabels) {
    let Some(caps) = re.captures(line) else {
        return;
    };
    for name in re.capture_names().flatten() {
        if let Some(m) = caps.name(name) {
            add_parsed(labels, &sanitize(name), m.as_str());
        }
    }
}

/// `| pattern`: Loki's matcher; a partial match sets the captures it reached.
pub fn pattern(line: &str, p: &Pattern, labels: &mut EntryLabels) {
    for (n, v) in p.names().iter().zip(p.matches(line)) {
        add_parsed(labels, n, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use silt_model::Labels;
    use std::sync::Arc;

    fn labels() -> EntryLabels {
        EntryLabels::new(
            Arc::new(Labels::from_pairs([("app", "x"), ("level", "i")])),
            Labels::new(),
        )
    }

    #[test]
    fn logfmt_modes() {
        let line = r#"level=info msg="a \"b\"" empty= flag dur=5ms"#;
        let mut l = labels();
        logfmt(line, false, false, &[], &mut l, None);
        assert_eq!(l.parsed.get("msg"), Some("a \"b\""));
        assert_eq!(l.parsed.get("level_extracted"), Some("info"));
        assert!(!l.parsed.contains("flag"));
        let mut l = labels();
        logfmt("a=1 b=\"x", true, false, &[], &mut l, None);
        assert_eq!(l.parsed.get("__error__"), Some("LogfmtParserErr"));
        let mut l = labels();
        logfmt("a=1 b=\"x", false, false, &[], &mut l, None);
        assert!(!l.has_error());
        assert_eq!(l.parsed.get("a"), Some("1"));
        // Escapes before multi-byte characters must not split them.
        let mut l = labels();
        logfmt("k=\"a\\é\\\"b\" z=1", false, false, &[], &mut l, None);
        assert_eq!(l.parsed.get("k"), Some("aé\"b"));
        assert_eq!(l.parsed.get("z"), Some("1"));
    }

    #[test]
    fn logfmt_strict_error_details_match_loki() {
        // (loki) TestLogfmtParser_parse wantStrict; go-logfmt's SyntaxError text.
        for (line, want) in [
            (
                "foobar====wqe=sdad1r",
                "logfmt syntax error at pos 8 : unexpected '='",
            ),
            (
                r#"foo="foo bar" =notkey bar=10ms"#,
                "logfmt syntax error at pos 15 : unexpected '='",
            ),
            (
                r#"foo="foo bar" bu"zz=10ms"#,
                r#"logfmt syntax error at pos 17 : unexpected '"'"#,
            ),
            (
                "bar=bu=zz foo=x",
                "logfmt syntax error at pos 7 : unexpected '='",
            ),
            (
                r#"a=1 b="x"#,
                "logfmt syntax error at pos 9 : unterminated quoted value",
            ),
        ] {
            let mut l = labels();
            logfmt(line, true, false, &[], &mut l, None);
            assert_eq!(l.parsed.get("__error_details__"), Some(want), "{line}");
        }
    }

    #[test]
    fn pattern_captures() {
        let p = Pattern::new(r#"<ip> - <user> [<_>] "<method> <path> <_>" <status>"#).unwrap();
        let mut l = labels();
        pattern(
            r#"1.2.3.4 - - [01/Jan] "GET /x HTTP/1.1" 200 12"#,
            &p,
            &mut l,
        );
        assert_eq!(l.parsed.get("ip"), Some("1.2.3.4"));
        assert_eq!(l.parsed.get("method"), Some("GET"));
        assert_eq!(l.parsed.get("status"), Some("200 12"));
        // Loki keeps what matched before a missing literal.
        let mut l = labels();
        pattern("5.6.7.8 - bob", &p, &mut l);
        assert_eq!(l.parsed.get("ip"), Some("5.6.7.8"));
        assert_eq!(l.parsed.get("user"), Some("bob"));
        assert_eq!(l.parsed.get("method"), None);
    }

    #[test]
    fn sanitizes_keys() {
        assert_eq!(sanitize(" a.b-c "), "a_b_c");
        assert_eq!(sanitize("1x"), "_1x");
    }
}
