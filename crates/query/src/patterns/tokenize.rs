//! Line tokenizers of Loki's Drain miner: punctuation (plain text), logfmt, and JSON
//! (the message field only). Each returns tokens plus the state `join` needs.

use super::PARAM;

/// Longest line (or JSON message) that is tokenized; longer ones are skipped.
pub const MAX_LINE_LEN: usize = 3000;

/// JSON fields whose string value is mined, first present wins (Loki's
/// `pattern_ingester_tokenizable_json_fields_default`).
const JSON_MESSAGE_FIELDS: &[&str] = &["log", "message", "msg", "msg_", "_msg", "content"];

/// How a stream's lines are split, guessed from its first line as Loki does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Logfmt,
    Unknown,
}

/// Loki's `DetectLogFormat`: `{…}` is JSON; `k=v k="v v"` throughout is logfmt.
pub fn detect_format(line: &str) -> Format {
    let b = line.as_bytes();
    if b.len() < 2 {
        Format::Unknown
    } else if b[0] == b'{' && b[b.len() - 1] == b'}' {
        Format::Json
    } else if looks_logfmt(line) {
        Format::Logfmt
    } else {
        Format::Unknown
    }
}

/// `^(\w+?=([^"]\S*?|".+?") )*?(\w+?=([^"]\S*?|".+?"))+$` without a regex engine.
fn looks_logfmt(line: &str) -> bool {
    let b = line.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    loop {
        let k = i;
        while i < b.len() && word(b[i]) {
            i += 1;
        }
        if i == k || b.get(i) != Some(&b'=') {
            return false;
        }
        i += 1;
        match b.get(i) {
            None => return false,
            Some(b'"') => {
                // Shortest quoted run followed by a space or the end.
                let mut j = i + 2;
                loop {
                    match b.get(j) {
                        None => return false,
                        Some(b'"') if matches!(b.get(j + 1), None | Some(b' ')) => break,
                        _ => j += 1,
                    }
                }
                i = j + 1;
            }
            Some(_) => {
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
            }
        }
        match b.get(i) {
            None => return true,
            Some(b' ') => i += 1,
            Some(_) => return false,
        }
    }
}

/// Tokens of one line and the tokenizer state needed to join them back.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    pub tokens: Vec<String>,
    /// Punctuation tokenizer: index of the token each space follows (-1: before the first).
    pub spaces_after: Vec<isize>,
}

/// A tokenizer for one stream.
#[derive(Clone, Copy, Debug)]
pub struct Tokenizer(pub Format);

impl Tokenizer {
    /// Tokens of `line`, or `None` when the line is skipped (too long, unparsable).
    pub fn tokenize(&self, line: &str) -> Option<Tokens> {
        match self.0 {
            Format::Unknown => punctuation(line),
            Format::Logfmt => logfmt(line),
            Format::Json => {
                let msg = json_message(line)?;
                punctuation(&msg)
            }
        }
    }

    /// The pattern text of a cluster's tokens.
    pub fn join(&self, t: &Tokens) -> String {
        let s = match self.0 {
            Format::Unknown => join_punctuation(t),
            Format::Logfmt => join_logfmt(&t.tokens),
            Format::Json => format!("{PARAM}{}{PARAM}", join_punctuation(t)),
        };
        dedup_params(&s)
    }
}

/// Go's `unicode.IsPunct` for the characters logs use (Unicode category P).
fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation()
            && !matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~');
    }
    matches!(c as u32,
        0xA1 | 0xA7 | 0xAB | 0xB6 | 0xB7 | 0xBB | 0xBF
        | 0x2010..=0x2027 | 0x2030..=0x205E | 0x3001..=0x3003 | 0x3008..=0x3011 | 0xFF01..=0xFF0F)
}

/// Splits on spaces, `=` and punctuation except `_ - . : /`, which stay inside tokens.
/// Each punctuation mark is a token of its own; spaces are remembered for `join`.
fn punctuation(line: &str) -> Option<Tokens> {
    if line.len() > MAX_LINE_LEN {
        return None;
    }
    let mut t = Tokens::default();
    let mut start = 0;
    for (i, c) in line.char_indices() {
        if t.tokens.len() >= 127 {
            break;
        }
        if c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/') {
            continue;
        }
        if c == ' ' || c == '=' || is_punct(c) {
            if i > start {
                t.tokens.push(line[start..i].to_string());
            }
            if c == ' ' {
                t.spaces_after.push(t.tokens.len() as isize - 1);
            } else {
                t.tokens.push(c.to_string());
            }
            start = i + c.len_utf8();
        }
    }
    if start < line.len() {
        t.tokens.push(line[start..].to_string());
    }
    Some(t)
}

fn join_punctuation(t: &Tokens) -> String {
    let mut out = String::new();
    let mut si = 0;
    for (i, tok) in t.tokens.iter().enumerate() {
        out.push_str(tok);
        // Loki's loop: a leading space (-1) never matches, so it also hides later spaces.
        while si < t.spaces_after.len() && t.spaces_after[si] == i as isize {
            out.push(' ');
            si += 1;
        }
    }
    out
}

/// Keys whose values are always variable: their values become `<_>` at once.
fn is_variable_key(k: &str) -> bool {
    k.eq_ignore_ascii_case("ts")
        || k == "t"
        || k.eq_ignore_ascii_case("traceID")
        || k.eq_ignore_ascii_case("time")
        || k.eq_ignore_ascii_case("timestamp")
}

/// `key value key value …`; a malformed line is skipped.
fn logfmt(line: &str) -> Option<Tokens> {
    if line.len() > MAX_LINE_LEN {
        return None;
    }
    let b = line.as_bytes();
    let mut t = Tokens::default();
    let mut i = 0;
    while i < b.len() {
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
        if i == ks {
            return None;
        }
        let key = &line[ks..i];
        let mut value = String::new();
        if b.get(i) == Some(&b'=') {
            i += 1;
            if b.get(i) == Some(&b'"') {
                i += 1;
                loop {
                    match b.get(i) {
                        None => return None,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let c = *b.get(i + 1)?;
                            value.push(match c {
                                b'n' => '\n',
                                b't' => '\t',
                                b'r' => '\r',
                                c => c as char,
                            });
                            i += 2;
                        }
                        Some(_) => {
                            let c = line[i..].chars().next()?;
                            value.push(c);
                            i += c.len_utf8();
                        }
                    }
                }
            } else {
                let vs = i;
                while i < b.len() && b[i] > b' ' {
                    if b[i] == b'"' || b[i] == b'=' {
                        return None;
                    }
                    i += 1;
                }
                value.push_str(&line[vs..i]);
            }
        }
        t.tokens.push(key.to_string());
        t.tokens.push(if is_variable_key(key) {
            PARAM.to_string()
        } else {
            value
        });
    }
    Some(t)
}

/// go-logfmt's encoder: values with spaces, `=`, `"` or control characters are quoted.
fn join_logfmt(tokens: &[String]) -> String {
    let mut out = String::new();
    for pair in tokens.chunks(2) {
        let k = &pair[0];
        let v = pair.get(1).map(String::as_str).unwrap_or("");
        if k.is_empty() || k.chars().any(|c| c <= ' ' || c == '=' || c == '"') {
            return String::new();
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(k);
        out.push('=');
        if v.chars()
            .any(|c| c <= ' ' || c == '=' || c == '"' || c.is_control())
        {
            out.push('"');
            for c in v.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
        } else {
            out.push_str(v);
        }
    }
    out
}

/// The first message field of a JSON line that holds a string.
fn json_message(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let obj = v.as_object()?;
    let msg = JSON_MESSAGE_FIELDS
        .iter()
        .find_map(|f| obj.get(*f).and_then(|v| v.as_str()))?;
    (msg.len() <= MAX_LINE_LEN).then(|| msg.to_string())
}

/// Runs of `<_><_>…` collapse to one `<_>`.
fn dedup_params(s: &str) -> String {
    let double = format!("{PARAM}{PARAM}");
    if !s.contains(&double) {
        return s.to_string();
    }
    let mut out = s.to_string();
    while out.contains(&double) {
        out = out.replace(&double, PARAM);
    }
    out
}
