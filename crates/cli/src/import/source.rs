//! What `silt import` reads: the files under the given paths, their labels (Airflow
//! layouts, `--path-template`, `--label`) and their lines (gzip'd or not).

use regex::Regex;
use silt_model::Labels;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Every regular file named by `paths` or under them (directories walked in name order,
/// names starting with `.` skipped there), absolute, each once; `skip` (the checkpoint)
/// never. Paths that do not exist or cannot be listed are returned as problems.
pub fn collect(paths: &[PathBuf], skip: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
        match std::fs::metadata(&abs) {
            Ok(m) if m.is_dir() => walk(&abs, &mut files, &mut problems),
            Ok(_) => files.push(abs),
            Err(e) => problems.push(format!("{}: {e}", p.display())),
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| !skip.contains(f) && seen.insert(f.clone()));
    (files, problems)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<String>) {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => return problems.push(format!("{}: {e}", dir.display())),
    };
    let mut entries: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => walk(&p, files, problems),
            Ok(m) if m.is_file() => files.push(p),
            Ok(_) => {}
            Err(e) => problems.push(format!("{}: {e}", p.display())),
        }
    }
}

/// One piece of a `--path-template` capture.
#[derive(Clone, Debug)]
enum Capture {
    Label(String),
    Metadata(String),
    Ignored,
}

/// A `--path-template`: `/`-separated components matched against the end of each path;
/// `{name}` captures a label, `{@name}` structured metadata, `{_}` or `*` anything within
/// one component; other text is literal.
#[derive(Clone, Debug)]
pub struct Template {
    re: Regex,
    captures: Vec<Capture>,
}

fn valid_name(n: &str) -> bool {
    let mut b = n.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

impl Template {
    pub fn parse(t: &str) -> Result<Template, String> {
        let mut re = String::from("(?:^|/)");
        let mut captures = Vec::new();
        let mut rest = t.trim_start_matches('/');
        if rest.is_empty() {
            return Err("empty --path-template".into());
        }
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('{') {
                let end = r
                    .find('}')
                    .ok_or_else(|| format!("--path-template {t:?}: unclosed {{"))?;
                let name = &r[..end];
                let cap = match name.strip_prefix('@') {
                    _ if name == "_" => Capture::Ignored,
                    Some(m) if valid_name(m) => Capture::Metadata(m.to_string()),
                    None if valid_name(name) => Capture::Label(name.to_string()),
                    _ => return Err(format!("--path-template {t:?}: bad name {{{name}}}")),
                };
                captures.push(cap);
                re.push_str("([^/]+?)");
                rest = &r[end + 1..];
            } else if let Some(r) = rest.strip_prefix('*') {
                re.push_str("[^/]*?");
                rest = r;
            } else {
                let end = rest.find(['{', '*']).unwrap_or(rest.len());
                re.push_str(&regex::escape(&rest[..end]));
                rest = &rest[end..];
            }
        }
        re.push('$');
        let re = Regex::new(&re).map_err(|e| format!("--path-template {t:?}: {e}"))?;
        Ok(Template { re, captures })
    }

    /// Labels and metadata when the path matches.
    fn apply(&self, path: &str) -> Option<silt_logfile::PathInfo> {
        let c = self.re.captures(path)?;
        let mut info = silt_logfile::PathInfo::default();
        for (i, cap) in self.captures.iter().enumerate() {
            let v = c.get(i + 1)?.as_str().to_string();
            match cap {
                Capture::Label(n) => info.labels.push((n.clone(), v)),
                Capture::Metadata(n) => info.metadata.push((n.clone(), v)),
                Capture::Ignored => {}
            }
        }
        Some(info)
    }
}

/// How files get their streams.
pub struct Layout {
    pub template: Option<Template>,
    pub labels: Vec<(String, String)>,
}

/// A file's stream labels and the structured metadata of each of its entries.
pub struct Stream {
    pub labels: Labels,
    pub metadata: Labels,
}

impl Layout {
    /// The template's captures, else the Airflow layout's, then `--label`s (which win);
    /// the path is the `filename` metadata. A file left without labels is an error.
    pub fn stream(&self, path: &Path) -> Result<Stream, String> {
        let s = path.to_string_lossy();
        let info = self
            .template
            .as_ref()
            .and_then(|t| t.apply(&s))
            .or_else(|| silt_logfile::airflow(path))
            .unwrap_or_default();
        let mut labels = info.labels;
        labels.extend(self.labels.iter().cloned());
        let labels = Labels::from_pairs(labels);
        if labels.is_empty() {
            return Err(format!(
                "{s}: no labels (not an Airflow task log): give --label k=v or --path-template"
            ));
        }
        let mut metadata = info.metadata;
        metadata.push(("filename".into(), s.into_owned()));
        Ok(Stream {
            labels,
            metadata: Labels::from_pairs(metadata),
        })
    }
}

/// Counts the bytes read from the file on disk (compressed bytes for `.gz`).
struct Counting {
    inner: File,
    read: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// How much of a binary file's start is looked at for NUL bytes.
const SNIFF: usize = 8192;

/// Lines of one file, from a byte offset of its (decompressed) content.
pub struct Lines {
    reader: Box<dyn BufRead>,
    /// Offset just after the last line returned.
    pub offset: u64,
    /// Bytes read from disk so far.
    pub disk: Arc<AtomicU64>,
    pub gzip: bool,
}

impl Lines {
    /// Opens `path` at `offset`; `Ok(None)` for a binary file (a NUL byte in its first
    /// 8 KiB).
    pub fn open(path: &Path, offset: u64) -> std::io::Result<Option<Lines>> {
        let mut f = File::open(path)?;
        let mut magic = [0u8; 2];
        let gzip = f.read(&mut magic)? == 2 && magic == [0x1f, 0x8b];
        f.seek(SeekFrom::Start(0))?;
        let disk = Arc::new(AtomicU64::new(0));
        let counting = Counting {
            inner: f,
            read: disk.clone(),
        };
        let mut content: Box<dyn Read> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(counting)))
        } else {
            Box::new(counting)
        };
        let mut head = Vec::with_capacity(SNIFF);
        (&mut content).take(SNIFF as u64).read_to_end(&mut head)?;
        if head.contains(&0) {
            return Ok(None);
        }
        let mut reader: Box<dyn BufRead> = Box::new(BufReader::with_capacity(
            256 * 1024,
            std::io::Cursor::new(head).chain(content),
        ));
        let skipped = std::io::copy(&mut (&mut reader).take(offset), &mut std::io::sink())?;
        Ok(Some(Lines {
            reader,
            offset: skipped,
            disk,
            gzip,
        }))
    }

    /// The next line without its `\n` (and `\r`) into `buf`; false at the end.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<bool> {
        buf.clear();
        let n = self.reader.read_until(b'\n', buf)?;
        if n == 0 {
            return Ok(false);
        }
        self.offset += n as u64;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        Ok(true)
    }
}

/// The time of the first line of `path` that has one, among its first 64 KiB.
pub fn first_time(path: &Path, hint: i64) -> Option<i64> {
    let mut lines = Lines::open(path, 0).ok()??;
    let mut buf = Vec::new();
    while lines.offset < 64 * 1024 && lines.next_line(&mut buf).ok()? {
        if let Some(t) = silt_logfile::parse_line_time(&String::from_utf8_lossy(&buf), hint) {
            return Some(t);
        }
    }
    None
}

/// A file's mtime in ns since the epoch (0 when unknown).
pub fn mtime_ns(md: &std::fs::Metadata) -> i64 {
    md.modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn path_template() {
        let t = Template::parse("{app}/{@date}/{_}-{n}.log").unwrap();
        let i = t.apply("/old/web/2024-05-01/x-y-3.log").unwrap();
        assert_eq!(i.labels, pairs(&[("app", "web"), ("n", "y-3")]));
        assert_eq!(i.metadata, pairs(&[("date", "2024-05-01")]));
        assert!(t.apply("/old/web/2024-05-01/x.txt").is_none());
        let t = Template::parse("{job}/*.log").unwrap();
        let i = t.apply("logs/api/a.b.log").unwrap();
        assert_eq!(i.labels, pairs(&[("job", "api")]));
        assert!(Template::parse("{a").is_err());
        assert!(Template::parse("{1a}/x").is_err());
        assert!(Template::parse("").is_err());
    }

    #[test]
    fn streams_from_layouts() {
        let l = Layout {
            template: None,
            labels: pairs(&[("job", "airflow")]),
        };
        let s = l
            .stream(Path::new("/l/dag_id=d/run_id=r/task_id=t/attempt=2.log"))
            .unwrap();
        assert_eq!(
            s.labels.to_string(),
            r#"{dag_id="d", job="airflow", task_id="t"}"#
        );
        assert_eq!(s.metadata.get("try_number"), Some("2"));
        assert_eq!(
            s.metadata.get("filename"),
            Some("/l/dag_id=d/run_id=r/task_id=t/attempt=2.log")
        );
        let bare = Layout {
            template: None,
            labels: Vec::new(),
        };
        assert!(bare.stream(Path::new("/var/log/x.log")).is_err());
    }
}
