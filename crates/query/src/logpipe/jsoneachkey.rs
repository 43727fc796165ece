//! `EachKey` and `searchKeys` of grafana/jsonparser (parser.go), which Loki's
//! JSONExpressionParser (`| json a="path"`) runs. They scan the line once for all paths
//! and only report errors of values they pick, so most malformed lines give no error.
//! Index arithmetic is signed as in Go; a read out of range ends the scan.

use super::jsonparser::{array_each, block_end, get, next_token, string_end, unescape};
use super::jsonparser::{JsonError, ValueType};
use std::borrow::Cow;

/// Callback: path index, value, type, error (index is `usize::MAX` for errors that
/// belong to no path).
pub type EachKeyFn<'f> = dyn FnMut(usize, &[u8], ValueType, Option<JsonError>) + 'f;

fn at(data: &[u8], i: isize) -> Option<u8> {
    usize::try_from(i).ok().and_then(|i| data.get(i).copied())
}

fn from(data: &[u8], i: isize) -> &[u8] {
    usize::try_from(i)
        .ok()
        .and_then(|i| data.get(i..))
        .unwrap_or(&[])
}

/// A string just scanned: (key bytes unescaped, offset of the next token) or `None`
/// when the scan must stop. `i` points after the opening quote.
fn scan_key(data: &[u8], i: isize) -> Option<(Cow<'_, [u8]>, isize)> {
    let begin = usize::try_from(i).ok()?;
    let (end, escaped) = string_end(data.get(begin..)?);
    let end = begin + end?;
    let next = end + next_token(&data[end..])?;
    let raw = &data[begin..end - 1];
    let key = if escaped {
        unescape(raw)?
    } else {
        Cow::Borrowed(raw)
    };
    Some((key, next as isize))
}

/// `sameTree`: the paths agree on their common prefix.
fn same_tree(p1: &[String], p2: &[Cow<'_, [u8]>]) -> bool {
    p1.iter().zip(p2).all(|(a, b)| a.as_bytes() == &**b)
}

/// The index in `[n]` as `strconv.Atoi` reads it, errors ignored (0).
fn index_of(part: &str) -> i64 {
    part.get(1..part.len().saturating_sub(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn is_index(part: &str) -> bool {
    part.as_bytes().first() == Some(&b'[')
}

/// `searchKeys`: offset just after the `:` of the last key of `keys`, or -1.
pub(super) fn search_keys(data: &[u8], keys: &[String]) -> isize {
    let (mut key_level, mut level, mut i) = (0isize, 0isize, 0isize);
    let ln = data.len() as isize;
    let lk = keys.len() as isize;
    let mut last_matched = true;
    if lk == 0 {
        return 0;
    }
    while i < ln {
        let Some(c) = at(data, i) else { return -1 };
        match c {
            b'"' => {
                let Some((key, next)) = scan_key(data, i + 1) else {
                    return -1;
                };
                i = next;
                if at(data, i) == Some(b':') {
                    if level < 1 {
                        return -1;
                    }
                    if level > lk {
                        return -1;
                    }
                    if keys[(level - 1) as usize].as_bytes() == &*key {
                        last_matched = true;
                        if key_level == level - 1 {
                            key_level += 1;
                            if key_level == lk {
                                return i + 1;
                            }
                        }
                    } else {
                        last_matched = false;
                    }
                } else {
                    i -= 1;
                }
            }
            b'{' => {
                if !last_matched {
                    let Some(end) = block_end(from(data, i), b'{', b'}') else {
                        return -1;
                    };
                    i += end as isize - 1;
                } else {
                    level += 1;
                }
            }
            b'}' => {
                level -= 1;
                if level == key_level {
                    key_level -= 1;
                }
            }
            b'[' => {
                let want = usize::try_from(level)
                    .ok()
                    .filter(|_| key_level == level)
                    .and_then(|l| keys.get(l))
                    .filter(|k| is_index(k));
                if let Some(k) = want {
                    let kb = k.as_bytes();
                    if kb.len() < 3 || kb[kb.len() - 1] != b']' {
                        return -1;
                    }
                    let Ok(a_idx) = k[1..k.len() - 1].parse::<i64>() else {
                        return -1;
                    };
                    let cur_i = i;
                    let mut cur_idx = 0i64;
                    let mut found: Option<(&[u8], isize)> = None;
                    let arr = from(data, i);
                    array_each(arr, &mut |value, t, offset| {
                        if cur_idx == a_idx {
                            found = Some(if t == ValueType::String {
                                let off = offset - 2;
                                let s = usize::try_from(off).unwrap_or(0);
                                (arr.get(s..s + value.len() + 2).unwrap_or(&[]), off)
                            } else {
                                (value, offset)
                            });
                        }
                        cur_idx += 1;
                    });
                    let Some((value, value_offset)) = found else {
                        return -1;
                    };
                    let sub = search_keys(value, &keys[level as usize + 1..]);
                    if sub < 0 {
                        return -1;
                    }
                    return cur_i + value_offset + sub;
                }
                // Keys inside arrays are not searched.
                let Some(skip) = block_end(from(data, i), b'[', b']') else {
                    return -1;
                };
                i += skip as isize - 1;
            }
            b':' => return -1,
            _ => {}
        }
        i += 1;
    }
    -1
}

/// The error EachKey reports for a key or array outside any object.
fn malformed(cb: &mut EachKeyFn<'_>) {
    cb(
        usize::MAX,
        &[],
        ValueType::Unknown,
        Some(JsonError::MalformedJson),
    );
}

/// Reads the value at `data` with `Get` and hands it, or its error, to `cb`.
fn report(cb: &mut EachKeyFn<'_>, pi: usize, data: &[u8]) {
    match get(data) {
        Ok((v, t, _)) => cb(pi, v, t, None),
        Err(e) => cb(pi, &[], ValueType::NotExist, Some(e)),
    }
}

/// `EachKey`: calls `cb` once per path found (first occurrence), with the value `Get`
/// reads after its `:`; stops when every path matched or the scan fails.
pub fn each_key(data: &[u8], paths: &[&[String]], cb: &mut EachKeyFn<'_>) {
    let ln = data.len() as isize;
    let (mut level, mut matched, mut i) = (0isize, 0usize, 0isize);
    let mut flags = vec![false; paths.len()];
    let max_path = paths.iter().map(|p| p.len()).max().unwrap_or(0) as isize;
    let mut buf: Vec<Cow<'_, [u8]>> = vec![Cow::Borrowed(&[][..]); max_path as usize];
    while i < ln {
        let Some(c) = at(data, i) else { return };
        match c {
            b'"' => {
                let Some((key, next)) = scan_key(data, i + 1) else {
                    return;
                };
                i = next;
                if at(data, i) != Some(b':') {
                    // A string value, not a key: go on from the token after it.
                    continue;
                }
                let mut hit = false;
                if max_path >= level {
                    if level < 1 {
                        return malformed(cb);
                    }
                    let l = level as usize;
                    buf[l - 1] = key;
                    for (pi, p) in paths.iter().enumerate() {
                        if p.len() != l
                            || flags[pi]
                            || p[l - 1].as_bytes() != &*buf[l - 1]
                            || !same_tree(p, &buf[..l])
                        {
                            continue;
                        }
                        hit = true;
                        matched += 1;
                        flags[pi] = true;
                        report(cb, pi, from(data, i + 1));
                        if matched == paths.len() {
                            break;
                        }
                    }
                    if matched == paths.len() {
                        return;
                    }
                }
                if !hit {
                    // As in Go: a missing token moves back one (-1), and the block
                    // skip below can never see `{` (dead code kept for fidelity).
                    i += next_token(from(data, i + 1)).map_or(-1, |o| o as isize);
                    if at(data, i) == Some(b'{') {
                        i += block_end(from(data, i), b'{', b'}').map_or(-1, |e| e as isize) + 1;
                    }
                }
                if matches!(at(data, i), Some(b'{' | b'}' | b'[' | b'"')) {
                    i -= 1;
                }
            }
            b'{' => level += 1,
            b'}' | b']' => level -= 1,
            b'[' => {
                if level < 0 {
                    return malformed(cb);
                }
                let l = level as usize;
                let mut wanted = vec![false; paths.len()];
                let mut any = false;
                for (pi, p) in paths.iter().enumerate() {
                    if p.len() < l + 1 || flags[pi] || !is_index(&p[l]) || !same_tree(p, &buf[..l])
                    {
                        continue;
                    }
                    if p[l].len() >= 2 {
                        wanted[pi] = true;
                        any = true;
                    }
                }
                if any {
                    level += 1;
                    let lv = level as usize;
                    let mut cur_idx = 0i64;
                    let (off, _) = array_each(from(data, i), &mut |value, t, _| {
                        for (pi, p) in paths.iter().enumerate() {
                            if !wanted[pi] || index_of(&p[lv - 1]) != cur_idx {
                                continue;
                            }
                            let of = search_keys(value, &p[lv..]);
                            matched += 1;
                            flags[pi] = true;
                            if of == -1 {
                                continue;
                            }
                            let rest = from(value, of);
                            if t == ValueType::String {
                                // The quotes were stripped: the rest is the string.
                                cb(pi, rest, t, None);
                            } else {
                                report(cb, pi, rest);
                            }
                        }
                        cur_idx += 1;
                    });
                    if matched == paths.len() {
                        return;
                    }
                    i += off - 1;
                } else {
                    let Some(skip) = block_end(from(data, i), b'[', b']') else {
                        return;
                    };
                    i += skip as isize - 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
}
