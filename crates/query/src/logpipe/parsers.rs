//! Parser stages `logfmt`, `regexp`, `pattern`, label naming, and json path syntax (the
//! json stages are in `json_stage`).

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

/// logfmt pairs of a line; `Err` at the first malformed pair (for `--strict`).
/// Pairs of a logfmt line, and the first syntax error as (pairs before it, message).
type LogfmtScan<'a> = (Vec<(&'a str, Cow<'a, str>)>, Option<(usize, String)>);

fn logfmt_pairs(line: &str) -> LogfmtScan<'_> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let mut err: Option<(usize, String)> = None;
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
            {
                err.get_or_insert((
                    out.len(),
                    format!(
                        "logfmt syntax error at pos {} : unexpected '{}'",
                        i + 1,
                        b[i] as char
                    ),
                ));
                // Skip the malformed pair; non-strict parsing goes on after it.
                while i < b.len() && b[i] > b' ' {
                    i += 1;
                }
                continue 'pairs;
            }
        }
        if i >= b.len() || b[i] != b'=' {
            if i < b.len() && b[i] == b'"' {
                {
                    err.get_or_insert((
                        out.len(),
                        format!("logfmt syntax error at pos {} : unexpected '\"'", i + 1),
                    ));
                    // Skip the malformed pair; non-strict parsing goes on after it.
                    while i < b.len() && b[i] > b' ' {
                        i += 1;
                    }
                    continue 'pairs;
                }
            }
            out.push((key, Cow::Borrowed("")));
            continue;
        }
        i += 1;
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut val = String::new();
            let mut escaped = false;
            let mut closed = false;
            let (start, mut run) = (i, i);
            while i < b.len() {
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        escaped = true;
                        val.push_str(&line[run..i]);
                        // The escaped character may be multi-byte: step over all of it.
                        let c = line[i + 1..].chars().next().unwrap_or('\\');
                        match c {
                            'n' => val.push('\n'),
                            't' => val.push('\t'),
                            'r' => val.push('\r'),
                            c => val.push(c),
                        }
                        i += 1 + c.len_utf8();
                        run = i;
                    }
                    b'"' => {
                        val.push_str(&line[run..i]);
                        i += 1;
                        closed = true;
                        break;
                    }
                    _ => i += 1,
                }
            }
            if !closed {
                {
                    err.get_or_insert((
                        out.len(),
                        // go-logfmt reports it at the end of the line.
                        format!(
                            "logfmt syntax error at pos {} : unterminated quoted value",
                            b.len() + 1
                        ),
                    ));
                    // Skip the malformed pair; non-strict parsing goes on after it.
                    while i < b.len() && b[i] > b' ' {
                        i += 1;
                    }
                    continue 'pairs;
                }
            }
            // Quoted values without escapes are borrowed from the line.
            out.push((
                key,
                if escaped {
                    Cow::Owned(val)
                } else {
                    Cow::Borrowed(&line[start..i - 1])
                },
            ));
        } else {
            let vs = i;
            while i < b.len() && b[i] > b' ' {
                if b[i] == b'"' || b[i] == b'=' {
                    {
                        err.get_or_insert((
                            out.len(),
                            format!(
                                "logfmt syntax error at pos {} : unexpected '{}'",
                                i + 1,
                                b[i] as char
                            ),
                        ));
                        // Skip the malformed pair; non-strict parsing goes on after it.
                        while i < b.len() && b[i] > b' ' {
                            i += 1;
                        }
                        continue 'pairs;
                    }
                }
                i += 1;
            }
            out.push((key, Cow::Borrowed(&line[vs..i])));
        }
    }
    (out, err)
}

/// `| logfmt [--strict] [--keep-empty] [params]`.
pub fn logfmt(
    line: &str,
    strict: bool,
    keep_empty: bool,
    params: &[(String, String)],
    labels: &mut EntryLabels,
) {
    let (mut pairs, err) = logfmt_pairs(line);
    if strict {
        // Strict mode stops at the first bad pair: what came before it is kept, as in Loki.
        if let Some((n, e)) = &err {
            pairs.truncate(*n);
            labels.set_error("LogfmtParserErr", e);
        }
    }
    for (k, v) in pairs {
        if params.is_empty() {
            if v.is_empty() && !keep_empty {
                continue;
            }
            add_parsed(labels, &sanitize_cow(k), &v);
        } else {
            for (name, key) in params {
                if key == k {
                    add_parsed(labels, name, &v);
                }
            }
        }
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
        logfmt(line, false, false, &[], &mut l);
        assert_eq!(l.parsed.get("msg"), Some("a \"b\""));
        assert_eq!(l.parsed.get("level_extracted"), Some("info"));
        assert!(!l.parsed.contains("flag"));
        let mut l = labels();
        logfmt("a=1 b=\"x", true, false, &[], &mut l);
        assert_eq!(l.parsed.get("__error__"), Some("LogfmtParserErr"));
        let mut l = labels();
        logfmt("a=1 b=\"x", false, false, &[], &mut l);
        assert!(!l.has_error());
        assert_eq!(l.parsed.get("a"), Some("1"));
        // Escapes before multi-byte characters must not split them.
        let mut l = labels();
        logfmt("k=\"a\\é\\\"b\" z=1", false, false, &[], &mut l);
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
            logfmt(line, true, false, &[], &mut l);
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
