//! A port of the scanner Loki's `json` and `unpack` stages run: grafana/jsonparser
//! (Loki's fork of buger/jsonparser, `parser.go` and `escape.go`). It is lenient where
//! that library is lenient (numbers are not checked, text after the closing brace is
//! ignored) and reports its exact error texts, so `__error_details__` matches Loki.
//! Offsets follow the Go code; where Go would index out of range, the scan ends instead.

use std::borrow::Cow;

/// The library's error values; [`JsonError::message`] is their `Error()` text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonError {
    /// `UnknownValueTypeError`
    UnknownValueType,
    /// `MalformedJsonError`
    MalformedJson,
    /// `MalformedStringError`
    MalformedString,
    /// `MalformedArrayError`
    MalformedArray,
    /// `MalformedObjectError`
    MalformedObject,
    /// `MalformedStringEscapeError`
    MalformedStringEscape,
}

impl JsonError {
    /// The text Loki puts in `__error_details__`.
    pub fn message(self) -> &'static str {
        match self {
            JsonError::UnknownValueType => "Unknown value type",
            JsonError::MalformedJson => "Malformed JSON error",
            JsonError::MalformedString => "Value is string, but can't find closing '\"' symbol",
            JsonError::MalformedArray => "Value is array, but can't find closing ']' symbol",
            JsonError::MalformedObject => {
                "Value looks like object, but can't find closing '}' symbol"
            }
            JsonError::MalformedStringEscape => {
                "Encountered an invalid escape sequence in a string"
            }
        }
    }
}

/// The library's `ValueType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// `NotExist`
    NotExist,
    /// `String` (the value excludes the quotes and is still escaped)
    String,
    /// `Number` (anything starting with a digit or `-`, unchecked)
    Number,
    /// `Object` (raw text including braces)
    Object,
    /// `Array` (raw text including brackets)
    Array,
    /// `Boolean`
    Boolean,
    /// `Null`
    Null,
    /// `Unknown`
    Unknown,
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t')
}

/// `nextToken`: index of the first non-whitespace byte.
pub(super) fn next_token(data: &[u8]) -> Option<usize> {
    data.iter().position(|c| !is_ws(*c))
}

/// `tokenEnd`: end of a number/boolean/null token.
fn token_end(data: &[u8]) -> usize {
    data.iter()
        .position(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t' | b',' | b'}' | b']'))
        .unwrap_or(data.len())
}

/// `stringEnd`: index after the closing quote (data starts after the opening one), and
/// whether a backslash was seen.
pub(super) fn string_end(data: &[u8]) -> (Option<usize>, bool) {
    let mut escaped = false;
    for (i, &c) in data.iter().enumerate() {
        if c == b'"' {
            if !escaped {
                return (Some(i + 1), false);
            }
            // Even number of backslashes before the quote: it closes the string.
            let run = data[..i].iter().rev().take_while(|b| **b == b'\\').count();
            if run % 2 == 0 {
                return (Some(i + 1), true);
            }
        } else if c == b'\\' {
            escaped = true;
        }
    }
    (None, escaped)
}

/// `blockEnd`: index after the bracket closing the block at `data[0]`; only strings
/// and the bracket pair itself are looked at.
pub(super) fn block_end(data: &[u8], open: u8, close: u8) -> Option<usize> {
    let mut level = 0i64;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'"' => i += string_end(&data[i + 1..]).0?,
            c if c == open => level += 1,
            c if c == close => {
                level -= 1;
                if level == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `getType`: the value starting at `data[offset]` and the offset after it.
fn get_type(data: &[u8], offset: usize) -> Result<(&[u8], ValueType, usize), JsonError> {
    let rest = &data[offset..];
    let (t, end) = match rest[0] {
        b'"' => match string_end(&rest[1..]).0 {
            Some(e) => (ValueType::String, offset + e + 1),
            None => return Err(JsonError::MalformedString),
        },
        b'[' => match block_end(rest, b'[', b']') {
            Some(e) => (ValueType::Array, offset + e),
            None => return Err(JsonError::MalformedArray),
        },
        b'{' => match block_end(rest, b'{', b'}') {
            Some(e) => (ValueType::Object, offset + e),
            None => return Err(JsonError::MalformedObject),
        },
        c => {
            let end = token_end(rest);
            let v = &rest[..end];
            let t = match c {
                b't' | b'f' if v == b"true" || v == b"false" => ValueType::Boolean,
                b'u' | b'n' if v == b"null" => ValueType::Null,
                b'0'..=b'9' | b'-' => ValueType::Number,
                _ => return Err(JsonError::UnknownValueType),
            };
            (t, offset + end)
        }
    };
    Ok((&data[offset..end], t, end))
}

/// `Get` without keys: the first value of `data` (string quotes stripped) and the
/// offset after it.
pub fn get(data: &[u8]) -> Result<(&[u8], ValueType, usize), JsonError> {
    let start = next_token(data).ok_or(JsonError::MalformedJson)?;
    let (v, t, end) = get_type(data, start)?;
    let v = if t == ValueType::String {
        &v[1..v.len() - 1]
    } else {
        v
    };
    Ok((v, t, end))
}

/// One key of an object; unescaped only when it had escapes.
pub type Key<'a> = Cow<'a, [u8]>;

/// One object entry (key, value, type), `None` at the closing brace.
pub type Entry<'a> = Result<Option<(Key<'a>, &'a [u8], ValueType)>, JsonError>;

/// `ObjectEach`, as a cursor so nested objects can be walked without recursion. Call
/// [`ObjectIter::next_entry`] until it returns `Ok(None)` (closing brace) or an error.
pub struct ObjectIter<'a> {
    data: &'a [u8],
    offset: usize,
    last_comma: Option<usize>,
    started: bool,
    done: bool,
}

impl<'a> ObjectIter<'a> {
    /// A cursor over the object `data` should start with.
    pub fn new(data: &'a [u8]) -> Self {
        ObjectIter {
            data,
            offset: 0,
            last_comma: None,
            started: false,
            done: false,
        }
    }

    fn byte(&self) -> u8 {
        self.data[self.offset]
    }

    /// Skips whitespace; `err` when the data ends first.
    fn skip(&mut self, err: JsonError) -> Result<(), JsonError> {
        let off = next_token(&self.data[self.offset..]).ok_or(err)?;
        self.offset += off;
        Ok(())
    }

    /// The next key, value and type; `Ok(None)` at the end of the object.
    pub fn next_entry(&mut self) -> Entry<'a> {
        let r = self.step();
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r
    }

    fn step(&mut self) -> Entry<'a> {
        if self.done {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            // Validate and skip past the opening brace.
            self.skip(JsonError::MalformedObject)?;
            if self.byte() != b'{' {
                return Err(JsonError::MalformedObject);
            }
            self.offset += 1;
            self.skip(JsonError::MalformedJson)?;
            if self.byte() == b'}' {
                return Ok(None);
            }
        } else {
            // After an entry: a comma (then the next token) or the closing brace.
            self.skip(JsonError::MalformedArray)?;
            match self.byte() {
                b'}' => return Ok(None),
                b',' => {
                    self.last_comma = Some(self.offset);
                    self.offset += 1;
                }
                _ => return Err(JsonError::MalformedObject),
            }
            let off = next_token(&self.data[self.offset..]).ok_or(JsonError::MalformedArray)?;
            // The library moves its comma mark by `off - 1`, so only `,}` is refused.
            if off > 0 {
                self.last_comma = self.last_comma.map(|c| c + off - 1);
            }
            self.offset += off;
        }
        match self.byte() {
            b'"' => self.offset += 1,
            b'}' => {
                return match self.last_comma {
                    Some(c) if c + 1 == self.offset => Err(JsonError::MalformedObject),
                    _ => Ok(None),
                }
            }
            _ => return Err(JsonError::MalformedObject),
        }
        let (end, escaped) = string_end(&self.data[self.offset..]);
        let end = end.ok_or(JsonError::MalformedJson)?;
        let raw = &self.data[self.offset..self.offset + end - 1];
        self.offset += end;
        let key = if escaped {
            unescape(raw).ok_or(JsonError::MalformedStringEscape)?
        } else {
            Cow::Borrowed(raw)
        };
        self.skip(JsonError::MalformedJson)?;
        if self.byte() != b':' {
            return Err(JsonError::MalformedJson);
        }
        self.offset += 1;
        let (value, t, off) = get(&self.data[self.offset..])?;
        self.offset += off;
        Ok(Some((key, value, t)))
    }
}

/// `ArrayEach` without keys: calls `cb(value, type, offset)` per element; returns the
/// offset reached and the error that stopped it, if any.
pub(super) fn array_each<'a>(
    data: &'a [u8],
    cb: &mut dyn FnMut(&'a [u8], ValueType, isize),
) -> (isize, Option<JsonError>) {
    if data.is_empty() {
        return (-1, Some(JsonError::MalformedObject));
    }
    let Some(nt) = next_token(data) else {
        return (-1, Some(JsonError::MalformedJson));
    };
    let mut offset = nt + 1;
    let Some(no) = data.get(offset..).and_then(next_token) else {
        return (offset as isize, Some(JsonError::MalformedJson));
    };
    offset += no;
    if data[offset] == b']' {
        return (offset as isize, None);
    }
    loop {
        let (v, t, o) = match get(&data[offset..]) {
            Ok(x) => x,
            Err(e) => return (offset as isize, Some(e)),
        };
        if o == 0 {
            break;
        }
        if t != ValueType::NotExist {
            cb(v, t, (offset + o) as isize - v.len() as isize);
        }
        offset += o;
        let Some(skip) = next_token(&data[offset..]) else {
            return (offset as isize, Some(JsonError::MalformedArray));
        };
        offset += skip;
        if data[offset] == b']' {
            break;
        }
        if data[offset] != b',' {
            return (offset as isize, Some(JsonError::MalformedArray));
        }
        offset += 1;
    }
    (offset as isize, None)
}

/// Decodes the hex digits of `\uXXXX` at the start of `esc`.
fn hex4(esc: &[u8]) -> Option<u32> {
    let h = esc.get(2..6)?;
    h.iter()
        .try_fold(0u32, |acc, c| Some(acc * 16 + char::from(*c).to_digit(16)?))
}

/// `decodeUnicodeEscape` (the version Loki's fork carries): the code point and the
/// bytes used. A high surrogate takes the hex digits 8..12 bytes on as its pair
/// without checking they follow a `\u`, as the Go code does.
fn decode_unicode(esc: &[u8]) -> Option<(u32, usize)> {
    let r = hex4(esc)?;
    if !(0xD800..=0xDFFF).contains(&r) {
        return Some((r, 6));
    }
    let r2 = hex4(esc.get(6..)?)?;
    if r2 < 0xDC00 {
        return None;
    }
    Some((0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00), 12))
}

/// `Unescape`: `None` on an invalid escape. Borrows when there is nothing to unescape.
pub fn unescape(input: &[u8]) -> Option<Cow<'_, [u8]>> {
    let Some(first) = input.iter().position(|c| *c == b'\\') else {
        return Some(Cow::Borrowed(input));
    };
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..first]);
    let mut i = first;
    while i < input.len() {
        if input[i] != b'\\' {
            let next = input[i..]
                .iter()
                .position(|c| *c == b'\\')
                .map_or(input.len(), |p| i + p);
            out.extend_from_slice(&input[i..next]);
            i = next;
            continue;
        }
        let c = *input.get(i + 1)?;
        let simple = match c {
            b'"' | b'\\' | b'/' => Some(c),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return None,
        };
        if let Some(b) = simple {
            out.push(b);
            i += 2;
            continue;
        }
        let (cp, used) = decode_unicode(&input[i..])?;
        // Go encodes an out-of-range code point as U+FFFD.
        let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
        out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
        i += used;
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(s: &str) -> (Vec<(String, String, ValueType)>, Option<JsonError>) {
        let mut it = ObjectIter::new(s.as_bytes());
        let mut out = Vec::new();
        loop {
            match it.next_entry() {
                Ok(Some((k, v, t))) => out.push((
                    String::from_utf8_lossy(&k).into(),
                    String::from_utf8_lossy(v).into(),
                    t,
                )),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn object_each_matches_the_library_tests() {
        // grafana/jsonparser parser_test.go objectEachTests.
        let ok = entries(
            r#"{"key1": null, "key2": true, "key3": 1.23, "key5": [1,2,3], "key6": {"a":"b"}}"#,
        );
        assert_eq!(ok.1, None);
        let types: Vec<_> = ok.0.iter().map(|e| e.2).collect();
        use ValueType::*;
        assert_eq!(types, [Null, Boolean, Number, Array, Object]);
        assert_eq!(ok.0[4].1, r#"{"a":"b"}"#);
        for bad in [
            " \t\n\r",
            "{",
            "}",
            "}{}",
            r#"{123: "value"}"#,
            r#"{"key: 123}"#,
            r#"{"key":}"#,
            r#"{"key": notavalue}"#,
            r#"{"key" "value"}"#,
            r#"{"key": "value" "key2": "value2"}"#,
            r#"{"key": "value",, "key2": "value2"}"#,
        ] {
            assert!(entries(bad).1.is_some(), "{bad}");
        }
        let esc = entries(r#"{"key\"\\\/\b\f\n\r\t\u00B0": "value"}"#);
        assert_eq!(esc.0[0].0, "key\"\\/\u{8}\u{c}\n\r\t\u{B0}");
    }

    #[test]
    fn unescape_like_go() {
        let u = |s: &str| unescape(s.as_bytes()).map(|c| String::from_utf8_lossy(&c).into_owned());
        assert_eq!(u(r"a\u00e9\n"), Some("a\u{e9}\n".into()));
        assert_eq!(u(r"\uD83D\uDE03"), Some("\u{1F603}".into()));
        assert_eq!(u(r"\uD83D"), None);
        assert_eq!(u(r"\uD83Dxx1234"), None);
        assert_eq!(u(r"\x"), None);
        assert_eq!(u(r"\u12"), None);
        assert_eq!(u("tail\\"), None);
    }
}
