//! The comparison dataset: JSON lines `{ts, labels, line, sm}` from the shared
//! `gen_data.sh`, read once and turned into push bodies as it streams by.

use super::bodies::BodyBuilder;
use super::{run_script, Res};
use silt_model::{Entry, Labels};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// Everything the run needs from the dataset; the rows themselves are only kept as bodies.
pub struct Dataset {
    /// Push bodies per client, in send order (a stream always belongs to one client).
    pub bodies: Vec<Vec<Vec<u8>>>,
    pub lines: usize,
    /// Bytes of log lines (the compression figures divide by this).
    pub line_bytes: usize,
    /// Bytes of structured metadata names and values.
    pub sm_bytes: usize,
    pub streams: usize,
    pub min_ts: i64,
    pub max_ts: i64,
    /// A 32-hex-digit token from a line near the middle of the data (the needle query).
    pub needle: String,
    /// Lines containing `needle` (what the needle query should find).
    pub needle_lines: usize,
}

impl Dataset {
    /// Bytes on the wire (protobuf + snappy) over all bodies.
    pub fn wire_bytes(&self) -> usize {
        self.bodies.iter().flatten().map(Vec::len).sum()
    }

    pub fn requests(&self) -> usize {
        self.bodies.iter().map(Vec::len).sum()
    }
}

/// Runs the shared generator when `path` is missing (the whole 2 M lines, so the file can
/// be reused by runs with any `--lines`).
pub fn ensure(path: &Path, script: &Path) -> Res<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    if script.is_file() {
        eprintln!(
            "generating {} with {} (~1-3 min for 2 M lines)",
            path.display(),
            script.display()
        );
    }
    let tmp = path.with_extension("jsonl.partial");
    let missing = || {
        format!(
            "dataset {} is missing (pass --data or --gen-script)",
            path.display()
        )
    };
    if let Err(e) = run_script(script, &tmp, missing) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("rename {}: {e}", tmp.display()))
}

/// Reads the first `max_lines` lines (all when `None`) into push bodies.
pub fn load(path: &Path, max_lines: Option<usize>, builder: BodyBuilder) -> Res<Dataset> {
    let file = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut builder = builder;
    let mut stream_ids: HashMap<String, usize> = HashMap::new();
    let (mut lines, mut line_bytes, mut sm_bytes) = (0, 0, 0);
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    // Every 1000th line's hex token; the middle one becomes the needle.
    let mut candidates: Vec<String> = Vec::new();
    for (n, raw) in reader.lines().enumerate() {
        if max_lines.is_some_and(|m| lines >= m) {
            break;
        }
        let raw = raw.map_err(|e| format!("read {}: {e}", path.display()))?;
        if raw.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| format!("{}:{}: {what}", path.display(), n + 1);
        let v: serde_json::Value = serde_json::from_str(&raw).map_err(|e| bad(&e.to_string()))?;
        let ts = v["ts"]
            .as_str()
            .and_then(silt_proto::time::parse_rfc3339)
            .ok_or_else(|| bad("`ts` is not an RFC 3339 timestamp"))?;
        let line = v["line"].as_str().ok_or_else(|| bad("no string `line`"))?;
        let labels = v["labels"]
            .as_object()
            .ok_or_else(|| bad("no object `labels`"))?;
        // Key by the labels' JSON text: the generator writes each stream's labels identically.
        let key = v["labels"].to_string();
        let stream = match stream_ids.get(&key) {
            Some(&id) => id,
            None => {
                let pairs = labels
                    .iter()
                    .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("a label value is not a string"))?;
                let id = builder.add_stream(Labels::from_pairs(pairs));
                stream_ids.insert(key, id);
                id
            }
        };
        let metadata = match v.get("sm").and_then(|m| m.as_object()) {
            Some(m) => Labels::from_pairs(
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))),
            ),
            None => Labels::default(),
        };
        if lines % 1000 == 0 {
            if let Some(tok) = hex32(line) {
                candidates.push(tok.to_string());
            }
        }
        lines += 1;
        line_bytes += line.len();
        sm_bytes += metadata.byte_size();
        min_ts = min_ts.min(ts);
        max_ts = max_ts.max(ts);
        builder.push(
            stream,
            Entry {
                ts,
                line: line.to_string(),
                metadata,
            },
        );
    }
    if lines == 0 {
        return Err(format!("{}: no lines", path.display()));
    }
    let needle = candidates
        .get(candidates.len() / 2)
        .cloned()
        .ok_or("no line with a 32-hex-digit token for the needle query")?;
    let streams = stream_ids.len();
    let bodies = builder.finish();
    let needle_lines = count_needle(path, max_lines, &needle)?;
    Ok(Dataset {
        bodies,
        lines,
        line_bytes,
        sm_bytes,
        streams,
        min_ts,
        max_ts,
        needle,
        needle_lines,
    })
}

/// Lines of the first `max_lines` whose `line` contains `needle` (a second, cheap pass:
/// the needle is only known once all candidates are).
fn count_needle(path: &Path, max_lines: Option<usize>, needle: &str) -> Res<usize> {
    let file = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let mut n = 0;
    let mut seen = 0;
    for raw in std::io::BufReader::with_capacity(1 << 20, file).lines() {
        let raw = raw.map_err(|e| format!("read {}: {e}", path.display()))?;
        if raw.trim().is_empty() {
            continue;
        }
        if max_lines.is_some_and(|m| seen >= m) {
            break;
        }
        seen += 1;
        // Hex digits need no JSON escaping, so a raw-text hit outside `line` (in `sm`)
        // is the only false positive: check the parsed line then.
        if raw.contains(needle) {
            let v: serde_json::Value = serde_json::from_str(&raw).map_err(|e| e.to_string())?;
            n += usize::from(v["line"].as_str().is_some_and(|l| l.contains(needle)));
        }
    }
    Ok(n)
}

/// The first run of exactly 32 lowercase hex digits in `s`.
fn hex32(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let is_hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    let mut i = 0;
    while i < b.len() {
        if !is_hex(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_hex(b[i]) {
            i += 1;
        }
        if i - start == 32 {
            return s.get(start..i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_token() {
        let id = "3bee1ceb526c02c9e92e4636e1a097cb";
        assert_eq!(hex32(&format!("request_id={id} x")), Some(id));
        assert_eq!(hex32(&format!("{id}0")), None);
        assert_eq!(hex32("deadbeef"), None);
    }

    #[test]
    fn loads_and_batches() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        let id = "3bee1ceb526c02c9e92e4636e1a097cb";
        let mut text = String::new();
        for i in 0..10 {
            text.push_str(&format!(
                "{{\"ts\":\"2026-12-01T11:48:0{i}.000000000Z\",\"labels\":{{\"app\":\"a{}\"}},\"line\":\"x {id}\",\"sm\":{{\"trace_id\":\"t\"}}}}\n",
                i % 3
            ));
        }
        std::fs::write(&p, text).unwrap();
        let d = load(&p, Some(7), BodyBuilder::new(2, 1 << 20)).unwrap();
        assert_eq!((d.lines, d.streams, d.needle_lines), (7, 3, 7));
        assert_eq!(d.needle, id);
        assert_eq!(d.line_bytes, 7 * (2 + 32));
        assert_eq!(d.bodies.len(), 2);
        assert_eq!(d.max_ts - d.min_ts, 6_000_000_000);
        std::fs::write(&p, "{\"ts\":\"yesterday\"}\n").unwrap();
        let err = load(&p, None, BodyBuilder::new(2, 1 << 20)).err().unwrap();
        assert!(err.contains("d.jsonl:1: `ts`"), "{err}");
    }
}
