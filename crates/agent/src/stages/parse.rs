//! Parsing stages: cri, docker, json, logfmt, regex, pattern, replace.

use super::template::Template;
use super::{source_value, MapStage};
use crate::Record;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use silt_proto::time::parse_rfc3339;
use std::collections::BTreeMap;

/// `cri`: parses a CRI line (line → message; `stream` label; extracted stream/flags/time;
/// timestamp). Partial lines are reassembled by the file source (`format: cri`), which is
/// where per-file state lives.
pub struct Cri;

impl MapStage for Cri {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let mut it = rec.entry.line.splitn(4, ' ');
        let (Some(ts), Some(stream), Some(flags)) = (it.next(), it.next(), it.next()) else {
            return true;
        };
        let Some(t) = parse_rfc3339(ts) else {
            return true;
        };
        if !matches!(stream, "stdout" | "stderr") {
            return true;
        }
        let msg = it.next().unwrap_or("").to_string();
        rec.extracted.insert("time".into(), ts.to_string());
        rec.extracted.insert("stream".into(), stream.to_string());
        rec.extracted.insert("flags".into(), flags.to_string());
        rec.labels.set("stream", stream);
        rec.entry.ts = t;
        rec.entry.line = msg;
        true
    }
}

/// `docker`: parses a json-file record (keeps log/stream/time only, like Alloy).
pub struct Docker;

impl MapStage for Docker {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&rec.entry.line) else {
            return true;
        };
        let Some(Value::String(log)) = m.get("log") else {
            return true;
        };
        let log = log.strip_suffix('\n').unwrap_or(log).to_string();
        if let Some(Value::String(s)) = m.get("stream") {
            rec.labels.set("stream", s);
            rec.extracted.insert("stream".into(), s.clone());
        }
        if let Some(Value::String(t)) = m.get("time") {
            if let Some(ts) = parse_rfc3339(t) {
                rec.entry.ts = ts;
            }
            rec.extracted.insert("time".into(), t.clone());
        }
        rec.entry.line = log;
        true
    }
}

/// `json` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonConfig {
    /// extracted name → path (`a.b`, `a[0]`, `"key-with-dash"`); empty = the name itself.
    /// A JMESPath subset: field access and indexes, no functions or projections.
    #[serde(default)]
    pub expressions: BTreeMap<String, Option<String>>,
    /// Extracted key to parse instead of the line.
    #[serde(default)]
    pub source: Option<String>,
    /// Drop lines that are not JSON objects.
    #[serde(default)]
    pub drop_malformed: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn parse_path(p: &str) -> Result<Vec<Seg>, String> {
    let mut segs = Vec::new();
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => i += 1,
            b'"' => {
                let end = p[i + 1..]
                    .find('"')
                    .ok_or_else(|| format!("unclosed quote in {p:?}"))?;
                segs.push(Seg::Key(p[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            b'[' => {
                let end = p[i..]
                    .find(']')
                    .ok_or_else(|| format!("unclosed [ in {p:?}"))?;
                let inner = p[i + 1..i + end].trim();
                if let Some(q) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    segs.push(Seg::Key(q.to_string()));
                } else {
                    let n = inner
                        .parse()
                        .map_err(|_| format!("bad index {inner:?} in {p:?}"))?;
                    segs.push(Seg::Index(n));
                }
                i += end + 1;
            }
            _ => {
                let end = p[i..].find(['.', '[']).map_or(p.len(), |e| i + e);
                let key = &p[i..end];
                if key.contains(['(', ')', '*', '|', '@', '&']) {
                    return Err(format!("unsupported JMESPath expression {p:?}"));
                }
                segs.push(Seg::Key(key.to_string()));
                i = end;
            }
        }
    }
    if segs.is_empty() {
        return Err("empty JSON path".into());
    }
    Ok(segs)
}

fn lookup<'a>(mut v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    for s in path {
        v = match s {
            Seg::Key(k) => v.get(k)?,
            Seg::Index(n) => v.get(n)?,
        };
    }
    Some(v)
}

/// A JSON value as an extracted string: strings raw, null empty, others as JSON.
fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub struct Json {
    exprs: Vec<(String, Vec<Seg>)>,
    source: Option<String>,
    drop_malformed: bool,
}

impl Json {
    pub fn new(c: &JsonConfig) -> Result<Json, String> {
        let exprs = c
            .expressions
            .iter()
            .map(|(name, p)| {
                let p = p.as_deref().filter(|p| !p.is_empty()).unwrap_or(name);
                Ok((name.clone(), parse_path(p)?))
            })
            .collect::<Result<_, String>>()?;
        Ok(Json {
            exprs,
            source: c.source.clone(),
            drop_malformed: c.drop_malformed,
        })
    }
}

impl MapStage for Json {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let Some(text) = source_value(rec, self.source.as_deref()) else {
            return true;
        };
        let v = match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                if self.drop_malformed {
                    crate::metrics::count_process_drop("malformed_json");
                }
                return !self.drop_malformed;
            }
        };
        if self.exprs.is_empty() {
            if let Value::Object(m) = &v {
                for (k, x) in m {
                    rec.extracted.insert(k.clone(), value_string(x));
                }
            }
        }
        for (name, path) in &self.exprs {
            if let Some(x) = lookup(&v, path) {
                rec.extracted.insert(name.clone(), value_string(x));
            }
        }
        true
    }
}

/// `logfmt` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogfmtConfig {
    /// extracted name → logfmt key (empty = same); no mapping extracts every key.
    #[serde(default)]
    pub mapping: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub source: Option<String>,
}

pub struct Logfmt(LogfmtConfig);

impl Logfmt {
    pub fn new(c: &LogfmtConfig) -> Logfmt {
        Logfmt(c.clone())
    }
}

/// Parses logfmt pairs leniently (bare keys have empty values, bad pairs are skipped).
pub fn parse_logfmt(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        let key = &s[ks..i];
        let mut val = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            if i < b.len() && b[i] == b'"' {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                        val.push(match b[i] {
                            b'n' => '\n',
                            b't' => '\t',
                            c => c as char,
                        });
                        i += 1;
                        continue;
                    }
                    let ch_end = (i + 1..=b.len())
                        .find(|&e| s.is_char_boundary(e))
                        .unwrap_or(b.len());
                    val.push_str(&s[i..ch_end]);
                    i = ch_end;
                }
                i += 1;
            } else {
                let vs = i;
                while i < b.len() && b[i] != b' ' {
                    i += 1;
                }
                val = s[vs..i].to_string();
            }
        }
        if !key.is_empty() {
            out.push((key.to_string(), val));
        }
    }
    out
}

impl MapStage for Logfmt {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let Some(text) = source_value(rec, self.0.source.as_deref()) else {
            return true;
        };
        let pairs = parse_logfmt(&text);
        if self.0.mapping.is_empty() {
            rec.extracted.extend(pairs);
            return true;
        }
        for (name, key) in &self.0.mapping {
            let key = key.as_deref().filter(|k| !k.is_empty()).unwrap_or(name);
            if let Some((_, v)) = pairs.iter().find(|(k, _)| k == key) {
                rec.extracted.insert(name.clone(), v.clone());
            }
        }
        true
    }
}

/// `regex` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexConfig {
    /// Regex with named groups (`(?P<name>...)`); groups go to extracted values.
    pub expression: String,
    #[serde(default)]
    pub source: Option<String>,
    /// Also set each named group as a label.
    #[serde(default)]
    pub labels_from_groups: bool,
}

pub struct RegexStage {
    re: Regex,
    source: Option<String>,
    labels: bool,
}

impl RegexStage {
    pub fn new(c: &RegexConfig) -> Result<RegexStage, String> {
        let re = Regex::new(&c.expression).map_err(|e| format!("invalid regex: {e}"))?;
        if re.capture_names().flatten().next().is_none() {
            return Err("regex needs at least one named group".into());
        }
        Ok(RegexStage {
            re,
            source: c.source.clone(),
            labels: c.labels_from_groups,
        })
    }
}

impl MapStage for RegexStage {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let Some(text) = source_value(rec, self.source.as_deref()) else {
            return true;
        };
        let Some(c) = self.re.captures(&text) else {
            return true;
        };
        for name in self.re.capture_names().flatten() {
            if let Some(m) = c.name(name) {
                rec.extracted
                    .insert(name.to_string(), m.as_str().to_string());
                if self.labels && silt_proto::is_valid_label_name(name) {
                    rec.labels.set(name, m.as_str());
                }
            }
        }
        true
    }
}

/// `pattern` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternConfig {
    /// LogQL pattern: `<name>` captures, `<_>` skips.
    pub pattern: String,
    #[serde(default)]
    pub source: Option<String>,
    /// Also set each capture as a label.
    #[serde(default)]
    pub labels_from_groups: bool,
}

/// `pattern`: LogQL's matcher (a partial match extracts the captures it reached, as Loki).
pub struct PatternStage {
    pattern: silt_logql::pattern::Pattern,
    source: Option<String>,
    labels: bool,
}

impl PatternStage {
    pub fn new(c: &PatternConfig) -> Result<PatternStage, String> {
        if c.source.as_deref() == Some("") {
            return Err("empty source".into());
        }
        let pattern = silt_logql::pattern::Pattern::new(&c.pattern)
            .map_err(|e| format!("failed to parse pattern: {e}"))?;
        Ok(PatternStage {
            pattern,
            source: c.source.clone(),
            labels: c.labels_from_groups,
        })
    }
}

impl MapStage for PatternStage {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let Some(text) = source_value(rec, self.source.as_deref()) else {
            return true;
        };
        for (name, v) in self.pattern.names().iter().zip(self.pattern.matches(&text)) {
            rec.extracted.insert(name.clone(), v.to_string());
            if self.labels {
                rec.labels.set(name, v);
            }
        }
        true
    }
}

/// `replace` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceConfig {
    /// Every capture group of every match is replaced by `replace`.
    pub expression: String,
    #[serde(default)]
    pub source: Option<String>,
    /// Template; `{{ .Value }}` is the captured text. Empty deletes the capture.
    #[serde(default)]
    pub replace: String,
}

pub struct Replace {
    re: Regex,
    source: Option<String>,
    tpl: Template,
}

impl Replace {
    pub fn new(c: &ReplaceConfig) -> Result<Replace, String> {
        Ok(Replace {
            re: Regex::new(&c.expression).map_err(|e| format!("invalid regex: {e}"))?,
            source: c.source.clone(),
            tpl: Template::parse(&c.replace)?,
        })
    }
}

impl MapStage for Replace {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let Some(text) = source_value(rec, self.source.as_deref()) else {
            return true;
        };
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for c in self.re.captures_iter(&text) {
            for name in self.re.capture_names().flatten() {
                if let Some(m) = c.name(name) {
                    rec.extracted
                        .insert(name.to_string(), m.as_str().to_string());
                }
            }
            for g in c.iter().skip(1).flatten() {
                if g.start() < last {
                    continue;
                }
                out.push_str(&text[last..g.start()]);
                out.push_str(&self.tpl.render(rec, g.as_str()));
                last = g.end();
            }
        }
        out.push_str(&text[last..]);
        match &self.source {
            None => rec.entry.line = out,
            Some(s) => {
                rec.extracted.insert(s.clone(), out);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn cri_and_docker() {
        let r = one("[{cri: {}}]", "2024-01-01T00:00:00Z stderr F boom");
        assert_eq!(
            (r.entry.line.as_str(), r.labels.get("stream")),
            ("boom", Some("stderr"))
        );
        assert_eq!(r.entry.ts, 1_704_067_200_000_000_000);
        assert_eq!(r.extracted["flags"], "F");
        let r = one("[{cri: {}}]", "not cri");
        assert_eq!(r.entry.line, "not cri");
        let r = one(
            "[{docker: {}}]",
            r#"{"log":"hi\n","stream":"stdout","time":"2024-01-01T00:00:00Z"}"#,
        );
        assert_eq!(
            (r.entry.line.as_str(), r.labels.get("stream")),
            ("hi", Some("stdout"))
        );
    }

    #[test]
    fn json_paths() {
        let r = one(
            r#"[{json: {expressions: {a: 'x.y', b: 'arr[1]', c: '"k-1"', d: '', e: 'missing', o: x}}}]"#,
            r#"{"x":{"y":5},"arr":["p","q"],"k-1":"dash","d":true}"#,
        );
        assert_eq!(r.extracted["a"], "5");
        assert_eq!(r.extracted["b"], "q");
        assert_eq!(r.extracted["c"], "dash");
        assert_eq!(r.extracted["d"], "true");
        assert_eq!(r.extracted["o"], r#"{"y":5}"#);
        assert!(!r.extracted.contains_key("e"));
        assert_eq!(
            run(
                "[{json: {expressions: {a: a}, drop_malformed: true}}]",
                "nope"
            )
            .len(),
            0
        );
        assert_eq!(run("[{json: {expressions: {a: a}}}]", "nope").len(), 1);
        assert!(
            Json::new(&serde_yaml::from_str("{expressions: {a: 'length(x)'}}").unwrap()).is_err()
        );
        // Source chaining: parse a nested JSON string.
        let r = one(
            "- json: {expressions: {inner: ''}}\n- json: {expressions: {z: z}, source: inner}\n",
            r#"{"inner":"{\"z\":\"deep\"}"}"#,
        );
        assert_eq!(r.extracted["z"], "deep");
    }

    #[test]
    fn logfmt_parse() {
        let r = one(
            "[{logfmt: {mapping: {lvl: level, msg: ''}}}]",
            r#"level=info msg="hello \"w\" é" bare"#,
        );
        assert_eq!(r.extracted["lvl"], "info");
        assert_eq!(r.extracted["msg"], "hello \"w\" é");
        let r = one("[{logfmt: {}}]", "a=1 b= c");
        assert_eq!(
            (
                r.extracted["a"].as_str(),
                r.extracted["b"].as_str(),
                r.extracted["c"].as_str()
            ),
            ("1", "", "")
        );
    }

    #[test]
    fn regex_and_replace() {
        let r = one(
            "[{regex: {expression: '^(?P<ip>\\S+) (?P<code>\\d+)', labels_from_groups: true}}]",
            "1.2.3.4 500 GET",
        );
        assert_eq!(r.extracted["ip"], "1.2.3.4");
        assert_eq!(r.labels.get("code"), Some("500"));
        assert!(RegexStage::new(&serde_yaml::from_str("{expression: 'a+'}").unwrap()).is_err());
        let r = one(
            "[{replace: {expression: 'password=(\\S+)', replace: '****'}}]",
            "user=a password=secret x=1",
        );
        assert_eq!(r.entry.line, "user=a password=**** x=1");
        let r = one(
            "[{replace: {expression: '(\\d+)', replace: '<{{ .Value }}>'}}]",
            "a1b22",
        );
        assert_eq!(r.entry.line, "a<1>b<22>");
        let r = one("[{replace: {expression: '( debug)'}}]", "x debug y");
        assert_eq!(r.entry.line, "x y");
    }

    #[test]
    fn pattern_stage() {
        let r = one(
            "- pattern: {pattern: '<ip> - <_> \"<method> <path>\" <status>', labels_from_groups: true}\n",
            r#"10.0.0.1 - - "GET /a" 200"#,
        );
        assert_eq!(r.extracted.get("ip").map(String::as_str), Some("10.0.0.1"));
        assert_eq!(r.extracted.get("status").map(String::as_str), Some("200"));
        assert_eq!(r.labels.get("method"), Some("GET"));
        // source, and a partial match keeps the captures before the missing literal
        let r = one(
            "- regex: {expression: '^(?P<msg>.*)$'}\n- pattern: {source: msg, pattern: '<a>,<b>;<c>'}\n",
            "x,y",
        );
        assert_eq!(r.extracted.get("a").map(String::as_str), Some("x"));
        assert_eq!(r.extracted.get("b").map(String::as_str), Some("y"));
        assert_eq!(r.extracted.get("c"), None);
        assert!(PatternStage::new(&serde_yaml::from_str("{pattern: '<a><b>'}").unwrap()).is_err());
        assert!(
            PatternStage::new(&serde_yaml::from_str("{pattern: '<a>', source: ''}").unwrap())
                .is_err()
        );
    }
}
