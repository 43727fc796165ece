//! Parser stages: `json`, `logfmt`, `regexp`, `pattern`, `unpack`.

use super::json::{self, Json};
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

fn scalar_text(v: &Json) -> Option<String> {
    match v {
        Json::Str(s) => Some(s.clone()),
        Json::Number(n) => Some(n.clone()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Null | Json::Array(_) | Json::Object(_) => None,
    }
}

/// The tree-based flattening `json::flatten_object` replaces; kept as its test oracle.
#[cfg(test)]
fn flatten(prefix: &str, v: &Json, labels: &mut EntryLabels) {
    match v {
        Json::Object(o) => {
            for (k, v) in o {
                let k = sanitize(k);
                let key = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}_{k}")
                };
                flatten(&key, v, labels);
            }
        }
        other => {
            if let Some(t) = scalar_text(other) {
                add_parsed(labels, prefix, &t);
            }
        }
    }
}

/// What `| json` extracts from a JSON object line, with each field's path of raw keys
/// (for detected fields' `jsonPath`); `None` when the line is not a JSON object.
pub fn json_fields_with_paths(line: &str) -> Option<Vec<(String, String, Vec<String>)>> {
    fn walk(
        v: &Json,
        key: &str,
        path: &mut Vec<String>,
        out: &mut Vec<(String, String, Vec<String>)>,
    ) {
        match v {
            Json::Object(o) => {
                for (k, v) in o {
                    let name = if key.is_empty() {
                        sanitize(k)
                    } else {
                        format!("{key}_{}", sanitize(k))
                    };
                    path.push(k.clone());
                    walk(v, &name, path, out);
                    path.pop();
                }
            }
            other => {
                if let Some(t) = scalar_text(other) {
                    out.push((key.to_string(), t, path.clone()));
                }
            }
        }
    }
    let doc = json::parse(line).ok()?;
    if !matches!(doc, Json::Object(_)) {
        return None;
    }
    let mut out = Vec::new();
    walk(&doc, "", &mut Vec::new(), &mut out);
    Some(out)
}

/// `| json` (all fields) or `| json a="path", …`.
pub fn json_stage(line: &str, params: &[(String, Vec<PathPart>)], labels: &mut EntryLabels) {
    if params.is_empty() {
        match json::flatten_object(line, sanitize_into) {
            Some(Ok(fields)) => {
                for (k, v) in &fields {
                    add_parsed(labels, k, v);
                }
                return;
            }
            Some(Err(e)) => {
                labels.set_error("JSONParserErr", &e);
                return;
            }
            None => {}
        }
    }
    let doc = match json::parse(line) {
        Ok(d @ Json::Object(_)) => d,
        Ok(_) => {
            labels.set_error(
                "JSONParserErr",
                "Value looks like object, but can't find closing '}' symbol",
            );
            return;
        }
        Err(e) => {
            labels.set_error("JSONParserErr", &e);
            return;
        }
    };
    for (name, path) in params {
        if let Some(v) = lookup(&doc, path) {
            let text = match v {
                Json::Object(_) | Json::Array(_) => Some(v.to_text()),
                other => scalar_text(other),
            };
            if let Some(t) = text {
                add_parsed(labels, name, &t);
            }
        }
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

fn lookup<'a>(doc: &'a Json, path: &[PathPart]) -> Option<&'a Json> {
    let mut v = doc;
    for p in path {
        v = match (v, p) {
            (Json::Object(o), PathPart::Key(k)) => &o.iter().find(|(kk, _)| kk == k)?.1,
            (Json::Array(a), PathPart::Index(i)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// `| unpack`: top-level string fields become labels; `_entry` replaces the line.
pub fn unpack(line: &str, labels: &mut EntryLabels) -> Option<String> {
    match json::parse(line) {
        Ok(Json::Object(o)) => {
            // Loki only unpacks objects that carry a packed `_entry`; others pass unchanged.
            let entry = o.iter().find_map(|(k, v)| match v {
                Json::Str(s) if k == "_entry" => Some(s.clone()),
                _ => None,
            })?;
            for (k, v) in o {
                if let Json::Str(s) = v {
                    if k != "_entry" {
                        add_parsed(labels, &sanitize(&k), &s);
                    }
                }
            }
            Some(entry)
        }
        Ok(_) => {
            labels.set_error(
                "JSONParserErr",
                "Value looks like object, but can't find closing '}' symbol",
            );
            None
        }
        Err(e) => {
            labels.set_error("JSONParserErr", &e);
            None
        }
    }
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
                        "logfmt syntax error at pos {}: unexpected '{}'",
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
                        format!("logfmt syntax error at pos {}: unexpected '\"'", i + 1),
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
                        "logfmt syntax error: unterminated quoted value".into(),
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
                                "logfmt syntax error at pos {}: unexpected '{}'",
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
    fn json_flattens_and_marks_collisions() {
        let mut l = labels();
        json_stage(
            r#"{"level":"error","a":{"b-c":1.0,"d":[1]},"n":null,"ok":true}"#,
            &[],
            &mut l,
        );
        assert_eq!(l.parsed.get("level_extracted"), Some("error"));
        assert_eq!(l.parsed.get("a_b_c"), Some("1.0"));
        assert_eq!(l.parsed.get("ok"), Some("true"));
        assert!(l.parsed.get("a_d").is_none());
        let mut l = labels();
        json_stage("", &[], &mut l);
        assert_eq!(l.parsed.get("__error__"), Some("JSONParserErr"));
    }

    #[test]
    fn json_params_and_paths() {
        let mut l = labels();
        let p = vec![
            ("u".to_string(), parse_path("user.name").unwrap()),
            ("f".to_string(), parse_path("list[1]").unwrap()),
        ];
        json_stage(r#"{"user":{"name":"bob"},"list":["a","b"]}"#, &p, &mut l);
        assert_eq!(
            (l.parsed.get("u"), l.parsed.get("f")),
            (Some("bob"), Some("b"))
        );
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
    fn streaming_json_flatten_matches_the_tree_walk() {
        let docs = [
            r#"{"a":1.50,"b":{"c":"x\"y\u00e9","d":{"e":true}},"f":[1,{"g":2}],"h":null,"i":false}"#,
            r#"{" sp ace ":{"1x":"v","a-b":-2e3}, "":{"k":"under empty"}, "app":"collides"}"#,
            r#"{"dup":"first","dup":"second","n":{"dup":"nested"}}"#,
            r#"  {"ok":"y"}  "#,
            r#"{}"#,
            r#"{"a":"unterminated"#,
            r#"{"a":1,}"#,
            r#"{"a":1} trailing"#,
            r#"{"a":tru}"#,
            r#"{"deep":"#,
        ];
        for doc in docs {
            let base =
                || EntryLabels::new(Arc::new(Labels::from_pairs([("app", "x")])), Labels::new());
            let mut streamed = base();
            json_stage(doc, &[], &mut streamed);
            let mut tree = base();
            match json::parse(doc) {
                Ok(d @ Json::Object(_)) => flatten("", &d, &mut tree),
                Ok(_) => unreachable!(),
                Err(e) => tree.set_error("JSONParserErr", &e),
            }
            assert_eq!(streamed.flatten(), tree.flatten(), "{doc}");
        }
    }

    #[test]
    fn sanitizes_keys() {
        assert_eq!(sanitize(" a.b-c "), "a_b_c");
        assert_eq!(sanitize("1x"), "_1x");
    }
}
