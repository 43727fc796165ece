//! Ingest-time enrichment as Loki's distributor does it: `service_name` discovery,
//! `detected_level` detection and structured-metadata name normalisation.

use silt_model::Labels;

/// The stream label added when absent.
pub const SERVICE_NAME_LABEL: &str = "service_name";
/// Value used when no discovery label is present.
pub const SERVICE_UNKNOWN: &str = "unknown_service";
/// The structured-metadata key holding the detected level.
pub const DETECTED_LEVEL: &str = "detected_level";
/// Structured-metadata key set by the OTLP path with the record's severity number.
pub const OTLP_SEVERITY_NUMBER: &str = "severity_number";
/// Marks internal aggregated-metric streams (no enrichment, no label validation).
pub const AGGREGATED_METRIC_LABEL: &str = "__aggregated_metric__";
/// Marks internal pattern streams.
pub const PATTERN_LABEL: &str = "__pattern__";

/// Loki's default `discover_service_name` list, in priority order.
pub const DEFAULT_DISCOVER_SERVICE_NAME: &[&str] = &[
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

/// Loki's default `log_level_fields`, in priority order.
pub const DEFAULT_LOG_LEVEL_FIELDS: &[&str] = &[
    "level",
    "LEVEL",
    "Level",
    "log.level",
    "severity",
    "SEVERITY",
    "Severity",
    "SeverityText",
    "lvl",
    "LVL",
    "Lvl",
    "severity_text",
    "Severity_Text",
    "SEVERITY_TEXT",
];

/// Whether the stream is an internal one (aggregated metrics or patterns).
pub fn is_internal_stream(labels: &Labels) -> bool {
    labels.contains(AGGREGATED_METRIC_LABEL) || labels.contains(PATTERN_LABEL)
}

/// Adds `service_name` if absent: the value of the first present label in `discover`, else
/// `unknown_service`. Nothing is added for internal streams or when `discover` is empty.
/// Returns whether a label was added.
pub fn add_service_name<S: AsRef<str>>(labels: &mut Labels, discover: &[S]) -> bool {
    if discover.is_empty() || labels.contains(SERVICE_NAME_LABEL) || is_internal_stream(labels) {
        return false;
    }
    let value = discover
        .iter()
        .find_map(|n| labels.get(n.as_ref()).filter(|v| !v.is_empty()))
        .unwrap_or(SERVICE_UNKNOWN)
        .to_string();
    labels.set(SERVICE_NAME_LABEL, &value);
    true
}

/// Maps a known level spelling (case-insensitive) to its canonical name.
fn canonical_level(v: &[u8]) -> Option<&'static str> {
    let eq = |s: &str| v.eq_ignore_ascii_case(s.as_bytes());
    Some(if eq("trace") || eq("trc") {
        "trace"
    } else if eq("debug") || eq("dbg") {
        "debug"
    } else if eq("info") || eq("inf") || eq("information") {
        "info"
    } else if eq("warn") || eq("wrn") || eq("warning") {
        "warn"
    } else if eq("error") || eq("err") {
        "error"
    } else if eq("critical") {
        "critical"
    } else if eq("fatal") {
        "fatal"
    } else {
        return None;
    })
}

/// Normalises a level value: known spellings become `trace|debug|info|warn|error|critical|fatal`,
/// anything else is returned unchanged (as Loki does).
pub fn normalize_log_level(level: &str) -> String {
    canonical_level(level.as_bytes())
        .map(str::to_string)
        .unwrap_or_else(|| level.to_string())
}

pub use crate::keywords::detect_level_from_keywords;

/// Level from an OTLP severity number (`severity_number` structured metadata).
fn level_from_severity_number(txt: &str) -> &'static str {
    // Go's strconv.Atoi: optional sign, decimal digits.
    let n: i64 = match txt.parse() {
        Ok(n) => n,
        Err(_) => return "info",
    };
    match n {
        0 => "unknown",
        n if n <= 4 => "trace",
        n if n <= 8 => "debug",
        n if n <= 12 => "info",
        n if n <= 16 => "warn",
        n if n <= 20 => "error",
        n if n <= 24 => "fatal",
        _ => "unknown",
    }
}

/// Whether the line looks like a JSON object (Loki's `isJSON`: first non-space char is `{`,
/// last non-space byte is `}`).
fn is_json(line: &str) -> bool {
    let first = line.chars().find(|c| !c.is_whitespace());
    // Go walks bytes backwards, treating each byte as the Latin-1 rune of that value.
    let last = line
        .bytes()
        .rev()
        .find(|&b| !matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0));
    first == Some('{') && last == Some(b'}')
}

// ---------------------------------------------------------------------------------------------
// Minimal, lenient JSON object walker in document order (mirrors buger/jsonparser.ObjectEach).

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// Given `b[i] == '"'`, returns the index just past the closing quote.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// Returns the index just past the JSON value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

enum Walk<'a> {
    Found(&'a [u8]),
    NotFound,
}

/// Walks the object at `b` looking for a string value under an allowed key; recurses into
/// nested objects while `depth < max_depth` (0 = unlimited).
fn json_find_level<'a, S: AsRef<str>>(
    b: &'a [u8],
    allowed: &[S],
    depth: usize,
    max_depth: usize,
) -> Walk<'a> {
    if max_depth > 0 && depth >= max_depth {
        return Walk::NotFound;
    }
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return Walk::NotFound;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Walk::NotFound;
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return Walk::NotFound;
        }
        let Some(kend) = string_end(b, i) else {
            return Walk::NotFound;
        };
        let raw_key = &b[i + 1..kend - 1];
        let key: std::borrow::Cow<'_, str> = if raw_key.contains(&b'\\') {
            match serde_json::from_slice::<String>(&b[i..kend]) {
                Ok(k) => k.into(),
                Err(_) => return Walk::NotFound,
            }
        } else {
            String::from_utf8_lossy(raw_key)
        };
        i = skip_ws(b, kend);
        if b.get(i) != Some(&b':') {
            return Walk::NotFound;
        }
        i = skip_ws(b, i + 1);
        let Some(vend) = value_end(b, i) else {
            return Walk::NotFound;
        };
        match b[i] {
            b'"' if allowed.iter().any(|a| a.as_ref() == key) => {
                return Walk::Found(&b[i + 1..vend - 1])
            }
            b'{' => {
                if let Walk::Found(v) = json_find_level(&b[i..vend], allowed, depth + 1, max_depth)
                {
                    return Walk::Found(v);
                }
            }
            _ => {}
        }
        i = skip_ws(b, vend);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            _ => return Walk::NotFound,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// logfmt scanning, a port of the state machine of Loki's logfmt decoder.

struct Logfmt<'a> {
    line: &'a [u8],
    pos: usize,
}

enum Kv<'a> {
    /// A key with an optional (possibly unescaped) value.
    Pair(&'a [u8], Option<std::borrow::Cow<'a, [u8]>>),
    /// Key without `=`, or nothing.
    Bare,
    /// Decoding stops (syntax error or end of line).
    Stop,
}

impl<'a> Logfmt<'a> {
    fn eol(&self) -> bool {
        self.pos >= self.line.len()
    }

    fn skip_value(&mut self) -> Kv<'a> {
        while self.pos < self.line.len() && self.line[self.pos] > b' ' {
            self.pos += 1;
        }
        Kv::Stop
    }

    fn scan(&mut self) -> Kv<'a> {
        let line = self.line;
        while self.pos < line.len() && line[self.pos] <= b' ' {
            self.pos += 1;
        }
        if self.pos >= line.len() {
            return Kv::Stop;
        }
        let start = self.pos;
        let key;
        loop {
            if self.pos >= line.len() {
                return Kv::Bare;
            }
            let c = line[self.pos];
            if c == b'=' {
                if self.pos == start {
                    return self.skip_value();
                }
                key = &line[start..self.pos];
                if std::str::from_utf8(key).is_err() {
                    return self.skip_value();
                }
                break;
            } else if c == b'"' {
                return self.skip_value();
            } else if c <= b' ' {
                return Kv::Bare;
            }
            self.pos += 1;
        }
        // equal sign
        self.pos += 1;
        if self.pos >= line.len() || line[self.pos] <= b' ' {
            return Kv::Pair(key, None);
        }
        if line[self.pos] == b'"' {
            let start = self.pos;
            let mut esc = false;
            let mut has_esc = false;
            let mut j = self.pos + 1;
            while j < line.len() {
                let c = line[j];
                if esc {
                    esc = false;
                } else if c == b'\\' {
                    has_esc = true;
                    esc = true;
                } else if c == b'"' {
                    self.pos = j + 1;
                    let quoted = &line[start..self.pos];
                    if has_esc {
                        return match serde_json::from_slice::<String>(quoted) {
                            Ok(s) => Kv::Pair(key, Some(std::borrow::Cow::Owned(s.into_bytes()))),
                            Err(_) => Kv::Stop,
                        };
                    }
                    let inner = &quoted[1..quoted.len() - 1];
                    return Kv::Pair(
                        key,
                        (!inner.is_empty()).then_some(std::borrow::Cow::Borrowed(inner)),
                    );
                }
                j += 1;
            }
            self.pos = line.len();
            return Kv::Stop;
        }
        let vstart = self.pos;
        while self.pos < line.len() {
            let c = line[self.pos];
            if c == b'=' || c == b'"' {
                return self.skip_value();
            }
            if c <= b' ' {
                break;
            }
            self.pos += 1;
        }
        Kv::Pair(
            key,
            Some(std::borrow::Cow::Borrowed(&line[vstart..self.pos])),
        )
    }
}

/// Value of the first hint (by hint priority, key compared case-insensitively) in a logfmt line.
fn logfmt_find<'a, S: AsRef<str>>(
    line: &'a [u8],
    hints: &[S],
) -> Option<std::borrow::Cow<'a, [u8]>> {
    let mut d = Logfmt { line, pos: 0 };
    let mut best = hints.len();
    let mut res = None;
    while !d.eol() {
        match d.scan() {
            Kv::Stop => break,
            Kv::Bare => continue,
            Kv::Pair(k, v) => {
                for (x, hint) in hints.iter().enumerate() {
                    if x < best && k.eq_ignore_ascii_case(hint.as_ref().as_bytes()) {
                        best = x;
                        res = v.clone();
                        if x == 0 {
                            return res;
                        }
                    }
                }
            }
        }
    }
    res
}

/// Settings for level detection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelDetection {
    /// Field names holding a level, in priority order (`log_level_fields`).
    pub fields: Vec<String>,
    /// How deep to look into JSON lines (`log_level_from_json_max_depth`, 0 = unlimited).
    pub json_max_depth: usize,
}

impl Default for LevelDetection {
    fn default() -> Self {
        LevelDetection {
            fields: DEFAULT_LOG_LEVEL_FIELDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            json_max_depth: 2,
        }
    }
}

/// Level read from the line itself: a level field of a JSON object (document order, nested up
/// to the max depth) or of a logfmt line, else keyword heuristics.
pub fn detect_level_from_line(line: &str, cfg: &LevelDetection) -> String {
    let v: Option<std::borrow::Cow<'_, [u8]>> = if is_json(line) {
        match json_find_level(line.as_bytes(), &cfg.fields, 0, cfg.json_max_depth) {
            Walk::Found(v) => Some(v.into()),
            Walk::NotFound => None,
        }
    } else if line.contains('=') {
        logfmt_find(line.as_bytes(), &cfg.fields)
    } else {
        return detect_level_from_keywords(line).to_string();
    };
    match v.as_deref().and_then(canonical_level) {
        Some(l) => l.to_string(),
        None => detect_level_from_keywords(line).to_string(),
    }
}

/// The `detected_level` Loki would attach to an entry, or `None` when the entry already has a
/// `detected_level` (normalise that one with [`normalize_log_level`]).
///
/// Order: a level field among the stream labels, then among the structured metadata
/// (normalised, unknown spellings kept as-is), then OTLP `severity_number`, then the line.
pub fn detect_log_level<M: Fields + ?Sized>(
    stream: &Labels,
    metadata: &M,
    line: &str,
    cfg: &LevelDetection,
) -> Option<String> {
    detect_level_with(stream_level(stream, cfg), metadata, line, cfg)
}

/// The stream label [`detect_log_level`] takes a level from, if any: the same for every
/// entry of a stream, so callers with many entries look it up once.
pub fn stream_level<'l>(stream: &'l Labels, cfg: &LevelDetection) -> Option<&'l str> {
    cfg.fields.iter().find_map(|f| stream.get(f))
}

/// [`detect_log_level`] with the stream's level label already looked up ([`stream_level`]).
pub fn detect_level_with<M: Fields + ?Sized>(
    stream_level: Option<&str>,
    metadata: &M,
    line: &str,
    cfg: &LevelDetection,
) -> Option<String> {
    if metadata.field(DETECTED_LEVEL).is_some() {
        return None;
    }
    if let Some(v) = stream_level {
        return Some(normalize_log_level(v));
    }
    if let Some(v) = cfg.fields.iter().find_map(|f| metadata.field(f)) {
        return Some(normalize_log_level(v));
    }
    if let Some(n) = metadata
        .field(OTLP_SEVERITY_NUMBER)
        .filter(|v| !v.is_empty())
    {
        return Some(level_from_severity_number(n).to_string());
    }
    Some(detect_level_from_line(line, cfg))
}

/// Normalises a structured-metadata name like Prometheus' OTLP label namer: runs of characters
/// outside `[a-zA-Z0-9_]` become one `_` (leading/trailing ones are dropped), a leading digit
/// gets a `key_` prefix. Errors when nothing usable remains.
pub fn normalize_metadata_name(name: &str) -> Result<std::borrow::Cow<'_, str>, String> {
    if name.is_empty() {
        return Err("label name is empty".to_string());
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out: std::borrow::Cow<'_, str> = if name.chars().all(valid) {
        name.into()
    } else {
        name.split(|c: char| !valid(c))
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("_")
            .into()
    };
    if out.is_empty() || out.chars().all(|c| c == '_') {
        return Err(format!(
            "normalization for label name {name:?} resulted in invalid name {out:?}"
        ));
    }
    if out.as_bytes()[0].is_ascii_digit() {
        out = format!("key_{out}").into();
    }
    Ok(out)
}

/// Looks up a structured-metadata value by name.
pub trait Fields {
    /// Value of `name`, if present.
    fn field(&self, name: &str) -> Option<&str>;
}

impl Fields for Labels {
    fn field(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

/// A sorted metadata run of a [`crate::PushView`].
impl Fields for [crate::view::MetaPair<'_>] {
    fn field(&self, name: &str) -> Option<&str> {
        self.binary_search_by(|(k, _)| k.as_ref().cmp(name))
            .ok()
            .map(|i| self[i].1.as_ref())
    }
}

/// Whether [`sanitize_metadata`] would change this pair.
pub fn needs_sanitizing(name: &str, value: &str) -> bool {
    value.contains('\u{FFFD}')
        || normalize_metadata_name(name)
            .map(|n| n != name)
            .unwrap_or(true)
}

/// Normalises structured-metadata names (see [`normalize_metadata_name`]) and strips U+FFFD
/// (what invalid UTF-8 became) from values. Later duplicates after normalisation win.
pub fn sanitize_metadata(metadata: &Labels) -> Result<Labels, String> {
    let needs = metadata.iter().any(|(k, v)| needs_sanitizing(k, v));
    if !needs {
        return Ok(metadata.clone());
    }
    let mut out = Labels::new();
    for (k, v) in metadata.iter() {
        let name = normalize_metadata_name(k)?;
        let value: std::borrow::Cow<'_, str> = if v.contains('\u{FFFD}') {
            v.replace('\u{FFFD}', "").into()
        } else {
            v.into()
        };
        // Keep an existing correctly-named key over a renamed one, as Loki's builder does.
        if name != k && out.contains(&name) {
            continue;
        }
        out.set(&name, &value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lvl(line: &str) -> String {
        detect_level_from_line(line, &LevelDetection::default())
    }

    #[test]
    fn service_name_discovery() {
        let mut l = Labels::from_pairs([("app", "web"), ("job", "j")]);
        assert!(add_service_name(&mut l, DEFAULT_DISCOVER_SERVICE_NAME));
        assert_eq!(l.get("service_name"), Some("web"));
        let mut l = Labels::from_pairs([("foo", "bar")]);
        add_service_name(&mut l, DEFAULT_DISCOVER_SERVICE_NAME);
        assert_eq!(l.get("service_name"), Some("unknown_service"));
        let mut l = Labels::from_pairs([("service_name", "x"), ("app", "y")]);
        assert!(!add_service_name(&mut l, DEFAULT_DISCOVER_SERVICE_NAME));
        let mut l = Labels::from_pairs([("__pattern__", "x")]);
        assert!(!add_service_name(&mut l, DEFAULT_DISCOVER_SERVICE_NAME));
        let mut l = Labels::from_pairs([("app", "x")]);
        assert!(!add_service_name::<&str>(&mut l, &[]));
    }

    #[test]
    fn json_lines() {
        assert_eq!(lvl(r#"{"level":"debug","msg":"x"}"#), "debug");
        assert_eq!(lvl(r#"{"msg":"x","severity":"WARNING"}"#), "warn");
        assert_eq!(lvl(r#"{"a":{"lvl":"ERR"}}"#), "error");
        // depth 2 is not searched: falls back to keywords (none) → unknown
        assert_eq!(lvl(r#"{"a":{"b":{"level":"errorz"}}}"#), "unknown");
        assert_eq!(lvl(r#"{"a":{"b":{"level":"error"}}}"#), "error");
        // non-string values are ignored
        assert_eq!(lvl(r#"{"level":3,"msg":"debug thing"}"#), "debug");
        // unknown value → keyword heuristics on the whole line
        assert_eq!(lvl(r#"{"level":"notice","msg":"some info"}"#), "info");
        assert!(!is_json("{}\u{a0}x"));
        assert!(is_json(" {} \n"));
        // first in document order wins
        assert_eq!(lvl(r#"{"severity":"error","level":"info"}"#), "error");
        assert_eq!(lvl(r#"  {"level":"fatal"}  "#), "fatal");
        // malformed JSON after the level is fine, before it isn't
        assert_eq!(lvl(r#"{"level":"trace", oops}"#), "trace");
    }

    #[test]
    fn logfmt_lines() {
        assert_eq!(lvl("level=info ts=1 msg=\"hello\""), "info");
        assert_eq!(lvl("ts=1 LEVEL=Error msg=x"), "error");
        assert_eq!(lvl("ts=1 severity=warn level=debug"), "debug");
        assert_eq!(lvl("ts=1 lvl=dbg severity=error"), "error");
        assert_eq!(lvl("level=\"warn\" x=y"), "warn");
        // syntax error stops the scan: keywords decide
        assert_eq!(lvl("a=\"b c\" \"oops level=errorx"), "unknown");
        assert_eq!(lvl("GET /x?a=b 200 errorish"), "unknown");
        assert_eq!(lvl("GET /x?a=b 200 error"), "error");
        assert_eq!(lvl("GET /x?a=b 200 [error]"), "error");
    }

    #[test]
    fn keywords() {
        assert_eq!(
            lvl("<19>host-17 systemd[8170]: Starting service..."),
            "unknown"
        );
        assert_eq!(
            lvl("2024-01-01T00:00:01.409448Z info [kubelet] F0612: Volume mounted"),
            "info"
        );
        assert_eq!(
            lvl("2024-01-01T05:59:23Z error [kube-controller-manager] E0612: x"),
            "error"
        );
        assert_eq!(lvl("something WARNING here"), "warn");
        assert_eq!(lvl("critical: disk"), "critical");
        assert_eq!(lvl("Error happened"), "error");
        assert_eq!(lvl("ERR: x"), "error");
        // only the first occurrence of a word counts
        assert_eq!(lvl("information, then info"), "unknown");
        assert_eq!(lvl("info then debug"), "debug");
        assert_eq!(lvl("errors_total warn"), "warn");
        assert_eq!(lvl("\u{fc}berinfo"), "unknown");
        assert_eq!(lvl("\u{2603}info"), "info");
    }

    #[test]
    fn label_and_metadata_sources() {
        let cfg = LevelDetection::default();
        let s = Labels::from_pairs([("level", "WARN")]);
        assert_eq!(
            detect_log_level(&s, &Labels::new(), "error", &cfg).as_deref(),
            Some("warn")
        );
        let s = Labels::from_pairs([("level", "notice")]);
        assert_eq!(
            detect_log_level(&s, &Labels::new(), "", &cfg).as_deref(),
            Some("notice")
        );
        let sm = Labels::from_pairs([("severity_text", "Information")]);
        assert_eq!(
            detect_log_level(&Labels::new(), &sm, "", &cfg).as_deref(),
            Some("info")
        );
        let sm = Labels::from_pairs([("severity_number", "17")]);
        assert_eq!(
            detect_log_level(&Labels::new(), &sm, "info", &cfg).as_deref(),
            Some("error")
        );
        let sm = Labels::from_pairs([("severity_number", "x")]);
        assert_eq!(
            detect_log_level(&Labels::new(), &sm, "", &cfg).as_deref(),
            Some("info")
        );
        let sm = Labels::from_pairs([("detected_level", "x")]);
        assert_eq!(detect_log_level(&Labels::new(), &sm, "", &cfg), None);
    }

    #[test]
    fn metadata_names() {
        assert_eq!(normalize_metadata_name("trace_id").unwrap(), "trace_id");
        assert_eq!(
            normalize_metadata_name("k8s.pod.name").unwrap(),
            "k8s_pod_name"
        );
        assert_eq!(normalize_metadata_name("1abc").unwrap(), "key_1abc");
        assert_eq!(normalize_metadata_name("a..b-").unwrap(), "a_b");
        assert_eq!(normalize_metadata_name("_x").unwrap(), "_x");
        assert!(normalize_metadata_name("...").is_err());
        assert!(normalize_metadata_name("__").is_err());
        let sm = Labels::from_pairs([("http.method", "GET"), ("v", "a\u{FFFD}b")]);
        let s = sanitize_metadata(&sm).unwrap();
        assert_eq!(s.to_string(), r#"{http_method="GET", v="ab"}"#);
    }
}
