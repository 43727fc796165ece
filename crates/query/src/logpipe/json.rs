//! A small JSON reader for the `json` and `unpack` stages: keeps numbers as written,
//! flattens nested objects, and reports errors instead of panicking.

/// A parsed JSON value; numbers keep their source text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number as written.
    Number(String),
    /// A string, unescaped.
    Str(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, keys in document order.
    Object(Vec<(String, Json)>),
}

/// Parses a whole document.
pub fn parse(s: &str) -> Result<Json, String> {
    let mut p = P {
        b: s.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(format!("unexpected character at offset {}", p.i));
    }
    Ok(v)
}

/// `| json` without parameters: the scalar leaves of a top-level object as
/// `(sanitized_a_b_path, text)` in document order, without building a tree (arrays and
/// nulls are skipped). `None` when `s` is not an object (the caller then reports the
/// error exactly as [`parse`] would); `Some(Err)` when the object is malformed.
pub fn flatten_object(
    s: &str,
    sanitize_into: fn(&mut String, &str),
) -> Option<Result<Vec<(String, String)>, String>> {
    let mut p = P {
        b: s.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.ws();
    if p.b.get(p.i) != Some(&b'{') {
        return None;
    }
    let mut out = Vec::new();
    let mut key = String::new();
    let r = p
        .flat_value(&mut key, sanitize_into, &mut out)
        .and_then(|()| {
            p.ws();
            if p.i != p.b.len() {
                return Err(format!("unexpected character at offset {}", p.i));
            }
            Ok(())
        });
    Some(r.map(|()| out))
}

struct P<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.depth += 1;
        if self.depth > 128 {
            return Err("nesting too deep".into());
        }
        let r = match self.b.get(self.i) {
            None => Err("unexpected end of input".into()),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') => self.lit("true", Json::Bool(true)),
            Some(b'f') => self.lit("false", Json::Bool(false)),
            Some(b'n') => self.lit("null", Json::Null),
            Some(c) if *c == b'-' || c.is_ascii_digit() => self.number(),
            Some(c) => Err(format!(
                "unexpected character '{}' at offset {}",
                *c as char, self.i
            )),
        };
        self.depth -= 1;
        r
    }

    /// Like [`P::value`], emitting scalar leaves under `key` instead of building a tree.
    fn flat_value(
        &mut self,
        key: &mut String,
        sanitize_into: fn(&mut String, &str),
        out: &mut Vec<(String, String)>,
    ) -> Result<(), String> {
        match self.b.get(self.i) {
            Some(b'{') => {}
            Some(b'"') => {
                let v = self.string()?;
                out.push((key.clone(), v));
                return Ok(());
            }
            Some(b't' | b'f') => {
                let v = self.value()?;
                out.push((key.clone(), (v == Json::Bool(true)).to_string()));
                return Ok(());
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                if let Json::Number(n) = self.number()? {
                    out.push((key.clone(), n));
                }
                return Ok(());
            }
            _ => return self.value().map(drop),
        }
        self.depth += 1;
        if self.depth > 128 {
            return Err("nesting too deep".into());
        }
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        let bad = || "Value looks like object, but can't find closing '}' symbol".to_string();
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return Err(bad());
            }
            let k = self.string()?;
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return Err(bad());
            }
            self.i += 1;
            self.ws();
            let len = key.len();
            if len > 0 {
                key.push('_');
            }
            sanitize_into(key, &k);
            self.flat_value(key, sanitize_into, out)?;
            key.truncate(len);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(bad()),
            }
        }
    }

    fn lit(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(format!("invalid literal at offset {}", self.i))
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        while self.i < self.b.len()
            && matches!(
                self.b[self.i],
                b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'
            )
        {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).map_err(|e| e.to_string())?;
        if text.parse::<f64>().is_err() {
            return Err(format!("invalid number {text:?}"));
        }
        Ok(Json::Number(text.to_string()))
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = String::new();
        let mut run = self.i;
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err("unterminated string".into());
            };
            match c {
                b'"' => {
                    out.push_str(
                        std::str::from_utf8(&self.b[run..self.i]).map_err(|e| e.to_string())?,
                    );
                    self.i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(
                        std::str::from_utf8(&self.b[run..self.i]).map_err(|e| e.to_string())?,
                    );
                    let esc = *self.b.get(self.i + 1).ok_or("unterminated escape")?;
                    self.i += 2;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let cp = self.hex4()?;
                            let ch = if (0xD800..0xDC00).contains(&cp)
                                && self.b[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                char::from_u32(
                                    0x10000
                                        + ((cp - 0xD800) << 10)
                                        + (lo.wrapping_sub(0xDC00) & 0x3ff),
                                )
                            } else {
                                char::from_u32(cp)
                            };
                            out.push(ch.unwrap_or('\u{FFFD}'));
                        }
                        _ => return Err("invalid escape".into()),
                    }
                    run = self.i;
                }
                _ => self.i += 1,
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .b
            .get(self.i..self.i + 4)
            .ok_or("short unicode escape")?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).map_err(|e| e.to_string())?, 16)
            .map_err(|e| e.to_string())
    }

    fn array(&mut self) -> Result<Json, String> {
        self.i += 1;
        let mut v = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Json::Array(v));
        }
        loop {
            self.ws();
            v.push(self.value()?);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Json::Array(v));
                }
                _ => return Err("Value is array, but can't find closing ']' symbol".into()),
            }
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        self.i += 1;
        let mut v = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Json::Object(v));
        }
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return Err("Value looks like object, but can't find closing '}' symbol".into());
            }
            let k = self.string()?;
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return Err("Value looks like object, but can't find closing '}' symbol".into());
            }
            self.i += 1;
            self.ws();
            let val = self.value()?;
            v.push((k, val));
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Json::Object(v));
                }
                _ => {
                    return Err("Value looks like object, but can't find closing '}' symbol".into())
                }
            }
        }
    }
}

impl Json {
    /// The compact JSON text of a value (used for object/array results of json paths).
    pub fn to_text(&self) -> String {
        match self {
            Json::Null => "null".into(),
            Json::Bool(b) => b.to_string(),
            Json::Number(n) => n.clone(),
            Json::Str(s) => serde_json::to_string(s).unwrap_or_default(),
            Json::Array(a) => format!(
                "[{}]",
                a.iter().map(Json::to_text).collect::<Vec<_>>().join(",")
            ),
            Json::Object(o) => format!(
                "{{{}}}",
                o.iter()
                    .map(|(k, v)| format!(
                        "{}:{}",
                        serde_json::to_string(k).unwrap_or_default(),
                        v.to_text()
                    ))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_keeps_numbers() {
        let v = parse(r#"{"a":1.50,"b":{"c":"x\"y\u00e9"},"d":[1,2],"e":null,"f":true}"#).unwrap();
        let Json::Object(o) = v else { panic!() };
        assert_eq!(o[0], ("a".into(), Json::Number("1.50".into())));
        assert_eq!(
            o[1].1,
            Json::Object(vec![("c".into(), Json::Str("x\"yé".into()))])
        );
        assert!(parse("{\"a\":").is_err());
        assert!(parse("").is_err());
        assert!(parse("[1,2] x").is_err());
    }
}
