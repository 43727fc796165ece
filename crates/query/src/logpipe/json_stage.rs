//! `| json`, `| json a="path"` and `| unpack` as Loki's pkg/logql/log/parser.go runs them
//! (JSONParser, JSONExpressionParser, UnpackParser) on the ported scanner: the same
//! labels before an error, the same errors, the same leniency.

use super::hints::Hints;
use super::jsonparser::{self as jp, JsonError, ObjectIter, ValueType};
use super::parsers::{add_parsed, sanitize_into};
use super::EntryLabels;
use std::borrow::Cow;

const JSON_ERR: &str = "JSONParserErr";
/// errUnexpectedJSONObject, built from jsoniter.ObjectValue (6).
const NOT_AN_OBJECT: &str = "expecting json object(6), but it is not";

/// `unescapeJSONString`: an invalid escape gives "", U+FFFD becomes a space (Prometheus
/// rejects it).
fn json_string(raw: &[u8]) -> Cow<'_, str> {
    let Some(bytes) = jp::unescape(raw) else {
        return Cow::Borrowed("");
    };
    let s = match bytes {
        Cow::Borrowed(b) => String::from_utf8_lossy(b),
        Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
    };
    if s.contains('\u{FFFD}') {
        Cow::Owned(s.replace('\u{FFFD}', " "))
    } else {
        s
    }
}

fn lossy(b: &[u8]) -> Cow<'_, str> {
    // `from_utf8` checks ASCII a word at a time; the lossy walk only when needed.
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// `appendSanitized`: joins a non-blank key part to a flattened name; a leading digit
/// gets `_` only at the start of the name.
fn append_part(out: &mut String, part: &str) {
    let b = part.as_bytes();
    // The usual key (letters, digits and `_`) is its own sanitized form.
    let plain = b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if plain && !b.is_empty() && !(out.is_empty() && b[0].is_ascii_digit()) {
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(part);
        return;
    }
    let part = part.trim();
    if part.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push('_');
        for c in part.chars() {
            out.push(if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            });
        }
    } else {
        sanitize_into(out, part);
    }
}

/// A scalar leaf's value as Loki reads it (strings unescaped).
fn leaf_value(raw: &[u8], t: ValueType) -> Cow<'_, str> {
    match t {
        ValueType::String => json_string(raw),
        _ => lossy(raw),
    }
}

/// Walks the scalar leaves of a JSON object as `| json` does, nested objects without
/// recursion: `leaf(name, keys, raw value, type)` with the sanitized flattened name and
/// the raw keys from the top (the value is read with [`leaf_value`] only where needed).
/// Stops at the first syntax error, after the leaves before it.
fn walk_leaves<'a>(
    line: &'a str,
    mut leaf: impl FnMut(&str, &[Cow<'a, [u8]>], &'a [u8], ValueType),
) -> Result<(), JsonError> {
    // Per open object: its parent's cursor and the name length before its key.
    let mut stack: Vec<(ObjectIter<'a>, usize)> = Vec::new();
    let mut keys: Vec<Cow<'a, [u8]>> = Vec::new();
    let mut name = String::new();
    let mut cur = ObjectIter::new(line.as_bytes());
    loop {
        match cur.next_entry()? {
            Some((key, value, t)) => match t {
                ValueType::String | ValueType::Number | ValueType::Boolean => {
                    let len = name.len();
                    append_part(&mut name, &lossy(&key));
                    keys.push(key);
                    leaf(&name, &keys, value, t);
                    keys.pop();
                    name.truncate(len);
                }
                ValueType::Object => {
                    let len = name.len();
                    append_part(&mut name, &lossy(&key));
                    keys.push(key);
                    let parent = std::mem::replace(&mut cur, ObjectIter::new(value));
                    stack.push((parent, len));
                }
                _ => {}
            },
            None => match stack.pop() {
                Some((parent, len)) => {
                    cur = parent;
                    keys.pop();
                    name.truncate(len);
                }
                None => return Ok(()),
            },
        }
    }
}

/// `| json` without parameters: scalar leaves of nested objects become labels named by
/// their sanitized path. Labels found before a syntax error are kept, as in Loki. With
/// `hints`, only wanted labels are set; the whole line is still checked.
pub fn json_all(line: &str, labels: &mut EntryLabels, hints: Option<&Hints>) {
    let r = walk_leaves(line, |name, _, raw, t| {
        if hints.is_none_or(|h| h.may_want(name)) {
            add_parsed(labels, name, &leaf_value(raw, t));
        }
    });
    if let Err(e) = r {
        labels.set_error(JSON_ERR, e.message());
    }
}

/// What `| json` extracts from a JSON object line as `(name, value, raw key path)` (for
/// detected fields' `jsonPath`); `None` when the line is not a well-formed object.
pub fn json_fields_with_paths(line: &str) -> Option<Vec<(String, String, Vec<String>)>> {
    let mut out = Vec::new();
    walk_leaves(line, |name, keys, raw, t| {
        let path = keys.iter().map(|k| lossy(k).into_owned()).collect();
        out.push((name.to_string(), leaf_value(raw, t).into_owned(), path));
    })
    .ok()?;
    Some(out)
}

/// `| json a="path", …` (paths in the library's form: keys, and `[n]` for indexes).
/// Lines not starting with `{`, `[` or `"` get the error without details; an empty line
/// is left alone; a path that is not found gives no label (Loki sets "", which Silt's
/// labels treat as absent).
pub fn json_expr(line: &str, params: &[(String, Vec<String>)], labels: &mut EntryLabels) {
    let Some(first) = line.as_bytes().first() else {
        return;
    };
    if !matches!(first, b'"' | b'{' | b'[') {
        labels.set_error(JSON_ERR, "");
        return;
    }
    let paths: Vec<&[String]> = params.iter().map(|(_, p)| p.as_slice()).collect();
    let mut last_err: Option<JsonError> = None;
    super::jsoneachkey::each_key(line.as_bytes(), &paths, &mut |idx, data, t, err| {
        if let Some(e) = err {
            // Every error overwrites the details in Loki: the last one stays.
            last_err = Some(e);
            return;
        }
        let Some((id, _)) = params.get(idx) else {
            return;
        };
        let v = match t {
            ValueType::Null => Cow::Borrowed(""),
            ValueType::Object => lossy(data),
            _ => json_string(data),
        };
        add_parsed(labels, id, &v);
    });
    if let Some(e) = last_err {
        labels.set_error(JSON_ERR, e.message());
    }
}

/// `| unpack`: string fields of a packed object become labels and `_entry` the line.
/// Objects without `_entry` pass unchanged and add nothing; on an error nothing is added.
pub fn unpack(line: &str, labels: &mut EntryLabels) -> Option<String> {
    let first = *line.as_bytes().first()?;
    if first != b'{' {
        labels.set_error(JSON_ERR, NOT_AN_OBJECT);
        return None;
    }
    let mut entry = None;
    let mut found: Vec<(String, String)> = Vec::new();
    let mut it = ObjectIter::new(line.as_bytes());
    loop {
        match it.next_entry() {
            Ok(Some((key, value, ValueType::String))) => {
                if &*key == b"_entry" {
                    let Some(e) = jp::unescape(value) else {
                        labels.set_error(JSON_ERR, JsonError::MalformedStringEscape.message());
                        return None;
                    };
                    entry = Some(lossy(&e).into_owned());
                    continue;
                }
                // Loki adds `_extracted` before sanitizing the key.
                let raw = lossy(&key);
                let mut name = String::new();
                if labels.is_original(&raw) {
                    sanitize_into(&mut name, &format!("{raw}_extracted"));
                } else {
                    sanitize_into(&mut name, &raw);
                }
                found.push((name, json_string(value).into_owned()));
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                labels.set_error(JSON_ERR, e.message());
                return None;
            }
        }
    }
    let entry = entry?;
    for (k, v) in found {
        if !k.is_empty() && !labels.parsed.contains(&k) {
            labels.parsed.set(&k, &v);
        }
    }
    Some(entry)
}
