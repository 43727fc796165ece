//! `journal`: systemd journal entries (`loki.source.journal`, Promtail `journal`), read from
//! a `journalctl --follow --output=json` child process (Vector's approach: no libsystemd
//! linking, and any journal file version the host's journalctl understands works).
//!
//! Every entry gets a sequence number (the `Ack` offset) and its `__CURSOR` is queued; once
//! the client reports an offset delivered, the cursor of the newest entry at or below it
//! becomes the committed cursor, persisted in `<data_dir>/positions/<source>.yaml`. A restart
//! resumes with `--after-cursor`, so a SIGKILL loses nothing; only entries sent but not yet
//! acknowledged are sent again. Without a cursor, reading starts `max_age` back.
//! If the agent is SIGKILLed, its journalctl exits on the broken pipe at its next entry.

use crate::metrics::metrics;
use crate::relabel::{RelabelConfig, Relabeler};
use crate::stages::{Pipeline, StageConfig};
use crate::units::de_duration;
use crate::{now_ns, Ack, Item, Record, TENANT_LABEL};
use serde::Deserialize;
use serde_json::Value;
use silt_model::{Entry, Labels};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// `journal` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// Name for logs, metrics and the cursor file.
    #[serde(default)]
    pub name: Option<String>,
    /// Journal directory (`journalctl --directory`); unset = the system journal
    /// (`/var/log/journal` and `/run/log/journal`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The `journalctl` binary.
    #[serde(default = "d_journalctl")]
    pub journalctl_path: PathBuf,
    /// Space-separated `FIELD=VALUE` matches, all of which must hold (no OR, like Alloy).
    #[serde(default)]
    pub matches: String,
    /// How far back to start when there is no stored cursor.
    #[serde(default = "d_max_age", deserialize_with = "de_duration")]
    pub max_age: Duration,
    /// Line = the whole entry as a JSON object (default: `MESSAGE`).
    #[serde(default)]
    pub format_as_json: bool,
    /// Static labels (a `job` here replaces the default `loki.source.journal.<name>`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Relabel rules per entry; fields are `__journal_<lowercased field>`.
    #[serde(default)]
    pub relabel_rules: Vec<RelabelConfig>,
    /// Processing stages.
    #[serde(default, deserialize_with = "crate::stages::de_stages")]
    pub stages: Vec<StageConfig>,
}

fn d_journalctl() -> PathBuf {
    "journalctl".into()
}
fn d_max_age() -> Duration {
    Duration::from_secs(7 * 3600)
}

/// Entries whose JSON is longer than this are skipped (counted): bounds memory per entry.
const MAX_ENTRY_BYTES: usize = 16 << 20;
/// Entries handed to the client per channel message.
const CHUNK: usize = 512;

impl JournalConfig {
    /// Parsed `matches`, checked: `FIELD=VALUE` with a journal field name.
    pub fn parsed_matches(&self) -> Result<Vec<String>, String> {
        self.matches
            .split_whitespace()
            .map(|m| {
                if m == "+" {
                    return Err(
                        "matches: OR (`+`) is not supported; use one source per alternative".into(),
                    );
                }
                let Some((f, _)) = m.split_once('=') else {
                    return Err(format!("matches: {m:?} is not FIELD=VALUE"));
                };
                let ok = !f.is_empty()
                    && !f.starts_with(|c: char| c.is_ascii_digit())
                    && f.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if !ok {
                    return Err(format!(
                        "matches: {f:?} is not a journal field name (A-Z, 0-9, _)"
                    ));
                }
                Ok(m.to_string())
            })
            .collect()
    }

    /// Pure checks (the binary and directory are checked when the source starts).
    pub fn validate(&self) -> Result<(), String> {
        self.parsed_matches()?;
        if self.max_age < Duration::from_secs(1) {
            return Err("max_age must be at least 1s".into());
        }
        if self.journalctl_path.as_os_str().is_empty() {
            return Err("journalctl_path must not be empty".into());
        }
        for k in self.labels.keys() {
            if !silt_proto::is_valid_label_name(k) {
                return Err(format!("labels: invalid label name {k:?}"));
            }
        }
        Relabeler::new(&self.relabel_rules).map_err(|e| format!("relabel_rules: {e}"))?;
        Pipeline::new(&self.stages).map_err(|e| format!("stages: {e}"))?;
        Ok(())
    }
}

/// One entry as decoded from journalctl's JSON.
#[derive(Debug, Default, PartialEq)]
pub struct JournalEntry {
    /// Field → value; a field set more than once keeps its last value (as sdjournal does).
    pub fields: BTreeMap<String, String>,
    pub cursor: Option<String>,
    /// `__REALTIME_TIMESTAMP` (µs) in ns.
    pub ts: Option<i64>,
    /// Fields whose value could not be decoded (left out).
    pub bad_fields: usize,
}

/// Bytes (journalctl prints binary or non-UTF-8 values as arrays of numbers).
fn bytes_value(a: &[Value]) -> Option<String> {
    let b: Option<Vec<u8>> = a
        .iter()
        .map(|n| n.as_u64().filter(|&n| n <= 255).map(|n| n as u8))
        .collect();
    Some(String::from_utf8_lossy(&b?).into_owned())
}

fn single_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) if a.iter().all(Value::is_number) => bytes_value(a),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A field's value: a string, a byte array, or an array of those (the field appears more
/// than once; the last wins). `null` (value not shown) and other shapes are `None`.
pub fn field_value(v: &Value) -> Option<String> {
    match v {
        Value::Array(a) if !a.is_empty() && !a.iter().all(Value::is_number) => {
            a.iter().rev().find_map(single_value)
        }
        _ => single_value(v),
    }
}

/// Parses one line of `journalctl --output=json`. `Err` = not a JSON object.
pub fn parse_entry(line: &[u8]) -> Result<JournalEntry, serde_json::Error> {
    let m: serde_json::Map<String, Value> = serde_json::from_slice(line)?;
    let mut e = JournalEntry::default();
    for (k, v) in m {
        match field_value(&v) {
            Some(s) => {
                e.fields.insert(k, s);
            }
            None => e.bad_fields += 1,
        }
    }
    e.cursor = e.fields.get("__CURSOR").cloned();
    e.ts = e
        .fields
        .get("__REALTIME_TIMESTAMP")
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|us| us.checked_mul(1000));
    Ok(e)
}

/// syslog priority → keyword, as Promtail/Alloy (unknown values pass through).
pub fn priority_keyword(p: &str) -> &str {
    match p {
        "0" => "emerg",
        "1" => "alert",
        "2" => "crit",
        "3" => "error",
        "4" => "warning",
        "5" => "notice",
        "6" => "info",
        "7" => "debug",
        _ => p,
    }
}

/// The internal labels relabel rules see: `__journal_<lowercased field>` for every field,
/// plus `__journal_priority_keyword`.
pub fn journal_labels(fields: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(fields.len() + 1);
    for (k, v) in fields {
        if k == "PRIORITY" {
            out.push((
                "__journal_priority_keyword".to_string(),
                priority_keyword(v).to_string(),
            ));
        }
        out.push((format!("__journal_{}", k.to_lowercase()), v.clone()));
    }
    out
}

/// The line: `MESSAGE`, or every field as a JSON object of strings (Promtail's shape).
pub fn entry_line(e: &JournalEntry, as_json: bool) -> Option<String> {
    if as_json {
        let m: serde_json::Map<String, Value> = e
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        return Some(Value::Object(m).to_string());
    }
    e.fields.get("MESSAGE").cloned()
}

fn count_error(kind: &str) {
    metrics()
        .journal_parse_errors
        .get_or_create(&crate::metrics::ErrorLabels {
            error: kind.to_string(),
        })
        .inc();
}

#[derive(Deserialize, serde::Serialize, Default)]
struct CursorFile {
    cursor: Option<String>,
}

fn load_cursor(p: &Path) -> Option<String> {
    let text = std::fs::read_to_string(p).ok()?;
    match serde_yaml::from_str::<CursorFile>(&text) {
        Ok(c) => c.cursor.filter(|c| !c.is_empty()),
        Err(e) => {
            tracing::warn!(path = %p.display(), error = %e, "journal cursor file unreadable, starting max_age back");
            None
        }
    }
}

/// Atomic and durable (temp file, fsync, rename, fsync dir), like the positions files.
fn save_cursor(p: &Path, cursor: &str) -> std::io::Result<()> {
    let text = serde_yaml::to_string(&CursorFile {
        cursor: Some(cursor.to_string()),
    })
    .map_err(std::io::Error::other)?;
    silt_logfile::write_atomic(p, text.as_bytes())
}

/// Reads one `\n`-terminated line into `buf`, keeping at most `max` bytes (the rest of a
/// longer line is consumed and dropped). `None` at EOF; `Some(true)` when cut.
fn read_line_bounded(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut cut = false;
    let mut any = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(any.then_some(cut));
        }
        any = true;
        let (take, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        if take > room {
            cut = true;
        }
        buf.extend_from_slice(&avail[..take.min(room)]);
        r.consume(take);
        if done {
            return Ok(Some(cut));
        }
    }
}

enum Line {
    Entry(Vec<u8>),
    TooLong,
}

/// A running journalctl and the thread feeding its stdout lines into a bounded channel
/// (full channel → the thread stops reading → journalctl blocks: back-pressure).
struct Proc {
    child: Child,
    lines: std_mpsc::Receiver<Line>,
    /// Ends at journalctl's exit with its last stderr line.
    stderr: Option<std::thread::JoinHandle<String>>,
    started: Instant,
    read_any: bool,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reader: one thread owning journalctl, the pipeline and the cursor bookkeeping.
pub struct JournalSource {
    idx: usize,
    name: String,
    cfg: JournalConfig,
    matches: Vec<String>,
    base_labels: Labels,
    relabel: Relabeler,
    pipeline: Pipeline,
    tx: mpsc::Sender<Vec<Item>>,
    acks: std_mpsc::Receiver<Ack>,
    shutdown: Arc<AtomicBool>,
    cursor_path: PathBuf,
    sync_period: Duration,
    /// Sequence number of the last entry read.
    seq: u64,
    /// (seq, cursor) of entries read but not yet acknowledged, oldest first.
    pending: VecDeque<(u64, String)>,
    /// Newest acknowledged cursor, and whether it still needs writing.
    committed: Option<String>,
    dirty: bool,
    /// Cursor of the last entry read: where a restarted journalctl continues.
    read_cursor: Option<String>,
    out: Vec<Item>,
}

impl JournalSource {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        idx: usize,
        c: &JournalConfig,
        name: &str,
        data_dir: &Path,
        sync_period: Duration,
        tx: mpsc::Sender<Vec<Item>>,
        acks: std_mpsc::Receiver<Ack>,
        shutdown: Arc<AtomicBool>,
    ) -> crate::Result<JournalSource> {
        let err = |e: String| crate::Error::Config(format!("{name}: {e}"));
        let matches = c.parsed_matches().map_err(err)?;
        // Fail at start-up, not in a retry loop, when the binary is not there.
        if let Err(e) = Command::new(&c.journalctl_path)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            return Err(err(format!(
                "cannot run journalctl_path {}: {e}",
                c.journalctl_path.display()
            )));
        }
        let mut base = c.labels.clone();
        base.entry("job".into())
            .or_insert_with(|| format!("loki.source.journal.{name}"));
        let cursor_path = data_dir.join("positions").join(format!("{name}.yaml"));
        let committed = load_cursor(&cursor_path);
        Ok(JournalSource {
            idx,
            name: name.to_string(),
            cfg: c.clone(),
            matches,
            base_labels: Labels::from_pairs(base),
            relabel: Relabeler::new(&c.relabel_rules).map_err(err)?,
            pipeline: Pipeline::new(&c.stages).map_err(err)?,
            tx,
            acks,
            shutdown,
            cursor_path,
            sync_period,
            seq: 0,
            pending: VecDeque::new(),
            read_cursor: committed.clone(),
            committed,
            dirty: false,
            out: Vec::new(),
        })
    }

    /// journalctl arguments for the current resume point.
    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "--follow",
            "--all",
            "--show-cursor",
            "--output=json",
            "--no-pager",
            // Without it --follow prints only 10 entries of the backlog after a cursor.
            "--no-tail",
        ]
        .map(String::from)
        .into();
        if let Some(p) = &self.cfg.path {
            a.push(format!("--directory={}", p.display()));
        }
        match &self.read_cursor {
            Some(c) => a.push(format!("--after-cursor={c}")),
            // Absolute, clamped at the epoch: journalctl rejects relative times before it.
            None => {
                let since = (now_ns() / 1_000_000_000)
                    .saturating_sub(self.cfg.max_age.as_secs().min(i64::MAX as u64) as i64)
                    .max(1);
                a.push(format!("--since=@{since}"));
            }
        }
        a.extend(self.matches.iter().cloned());
        a
    }

    fn start(&self) -> std::io::Result<Proc> {
        let mut cmd = Command::new(&self.cfg.journalctl_path);
        cmd.args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("no stderr"))?;
        let (ltx, lrx) = std_mpsc::sync_channel(CHUNK);
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(format!("journalctl-{name}"))
            .spawn(move || {
                let mut r = BufReader::with_capacity(64 << 10, stdout);
                let mut buf = Vec::new();
                while let Ok(Some(cut)) = read_line_bounded(&mut r, &mut buf, MAX_ENTRY_BYTES) {
                    let l = if cut {
                        Line::TooLong
                    } else {
                        Line::Entry(std::mem::take(&mut buf))
                    };
                    if ltx.send(l).is_err() {
                        break;
                    }
                }
            })?;
        let name = self.name.clone();
        let stderr = std::thread::Builder::new()
            .name(format!("journalctl-err-{name}"))
            .spawn(move || {
                let mut last = String::new();
                let mut buf = Vec::new();
                let mut r = BufReader::new(stderr);
                while let Ok(Some(_)) = read_line_bounded(&mut r, &mut buf, 4096) {
                    let l = String::from_utf8_lossy(&buf).trim().to_string();
                    if !l.is_empty() {
                        tracing::warn!(source = %name, "journalctl: {l}");
                        last = l;
                    }
                }
                last
            })?;
        tracing::info!(source = %self.name, args = ?self.args(), "journalctl started");
        Ok(Proc {
            child,
            lines: lrx,
            stderr: Some(stderr),
            started: Instant::now(),
            read_any: false,
        })
    }

    pub fn run(mut self) {
        let mut last_sync = Instant::now();
        let mut delay = Duration::from_secs(1);
        let mut proc: Option<Proc> = None;
        let mut retry_at = Instant::now();
        while !self.shutdown.load(Ordering::Relaxed) {
            self.drain_acks();
            if self.dirty && last_sync.elapsed() >= self.sync_period {
                self.save();
                last_sync = Instant::now();
            }
            if proc.is_none() {
                if Instant::now() < retry_at {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                match self.start() {
                    Ok(p) => proc = Some(p),
                    Err(e) => {
                        tracing::warn!(source = %self.name, error = %e, "starting journalctl failed, retrying");
                        retry_at = Instant::now() + delay;
                        delay = (delay * 2).min(Duration::from_secs(30));
                        continue;
                    }
                }
            }
            let Some(p) = proc.as_mut() else { continue };
            let mut ended = false;
            match p.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => {
                    p.read_any = true;
                    self.line(l);
                    while self.out.len() < CHUNK {
                        match p.lines.try_recv() {
                            Ok(l) => self.line(l),
                            Err(std_mpsc::TryRecvError::Empty) => break,
                            Err(std_mpsc::TryRecvError::Disconnected) => {
                                ended = true;
                                break;
                            }
                        }
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => ended = true,
            }
            let mut tick = Vec::new();
            self.pipeline.tick(now_ns(), &mut tick);
            self.pipeline.emit(tick, &mut self.out);
            if !self.send() {
                // The client is gone: still apply the acks it sent and save.
                break;
            }
            if ended {
                let Some(mut p) = proc.take() else { continue };
                let status = p.child.wait();
                let err = p
                    .stderr
                    .take()
                    .and_then(|t| t.join().ok())
                    .unwrap_or_default();
                tracing::warn!(source = %self.name, status = ?status, "journalctl exited, restarting");
                // A cursor journalctl cannot seek to would fail every restart.
                if !p.read_any && err.contains("cursor") && self.read_cursor.is_some() {
                    tracing::warn!(source = %self.name, "stored journal cursor rejected, starting max_age back");
                    self.read_cursor = None;
                }
                if p.read_any || p.started.elapsed() > Duration::from_secs(10) {
                    delay = Duration::from_secs(1);
                }
                retry_at = Instant::now() + delay;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
        drop(proc);
        // Stages may hold entries (multiline): hand them on before the client's last flush.
        let mut rest = Vec::new();
        self.pipeline.flush(&mut rest);
        self.out.extend(rest.into_iter().map(Item::Record));
        self.send();
        // Closing our sender lets the client flush and exit; its ack senders drop with it.
        let (dead, _) = mpsc::channel(1);
        self.tx = dead;
        while let Ok(a) = self.acks.recv() {
            self.ack(a);
        }
        if self.dirty {
            self.save();
        }
        tracing::info!(source = %self.name, "journal source stopped, cursor saved");
    }

    fn send(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        self.tx.blocking_send(std::mem::take(&mut self.out)).is_ok()
    }

    fn drain_acks(&mut self) {
        while let Ok(a) = self.acks.try_recv() {
            self.ack(a);
        }
    }

    /// Offsets only grow per entry, so everything at or below `a.offset` is delivered.
    fn ack(&mut self, a: Ack) {
        while self.pending.front().is_some_and(|(s, _)| *s <= a.offset) {
            if let Some((_, c)) = self.pending.pop_front() {
                self.committed = Some(c);
                self.dirty = true;
            }
        }
    }

    fn save(&mut self) {
        let Some(c) = &self.committed else { return };
        match save_cursor(&self.cursor_path, c) {
            Ok(()) => self.dirty = false,
            Err(e) => {
                tracing::warn!(source = %self.name, path = %self.cursor_path.display(), error = %e, "writing journal cursor failed")
            }
        }
    }

    fn line(&mut self, l: Line) {
        let bytes = match l {
            Line::TooLong => {
                count_error("too_large");
                return;
            }
            Line::Entry(b) => b,
        };
        let trimmed = bytes.trim_ascii();
        // `--show-cursor` prints `-- cursor: …` when journalctl ends; entries carry theirs.
        if trimmed.is_empty() || trimmed.starts_with(b"-- ") {
            return;
        }
        let e = match parse_entry(trimmed) {
            Ok(e) => e,
            Err(err) => {
                tracing::debug!(source = %self.name, error = %err, "unparsable journal line");
                count_error("invalid_json");
                return;
            }
        };
        if e.bad_fields > 0 {
            count_error("invalid_field");
        }
        metrics().journal_lines.inc();
        self.seq += 1;
        let ack = Ack {
            source: self.idx,
            unit: 0,
            offset: self.seq,
        };
        if let Some(c) = &e.cursor {
            self.read_cursor = Some(c.clone());
            self.pending.push_back((self.seq, c.clone()));
        }
        let Some(line) = entry_line(&e, self.cfg.format_as_json) else {
            count_error("no_message");
            self.out.push(Item::Ack(self.pipeline.clamp(ack)));
            return;
        };
        let Some(labels) = self.labels(&e) else {
            count_error("empty_labels");
            self.out.push(Item::Ack(self.pipeline.clamp(ack)));
            return;
        };
        let rec = Record {
            labels,
            entry: Entry {
                ts: e.ts.unwrap_or_else(now_ns),
                line,
                metadata: Labels::new(),
            },
            extracted: BTreeMap::new(),
            ack: Some(ack),
        };
        if self.pipeline.is_empty() {
            self.out.push(Item::Record(rec));
            return;
        }
        // Re-reading from the previous entry's position produces this one again.
        if !self.pipeline.run_line(rec, self.seq - 1, &mut self.out) {
            self.out.push(Item::Ack(self.pipeline.clamp(ack)));
        }
    }

    /// Static labels, then relabel rules over them plus the journal fields; internal
    /// labels (but the tenant) are removed afterwards. `None` = dropped or left empty.
    fn labels(&self, e: &JournalEntry) -> Option<Labels> {
        if self.relabel.is_empty() {
            return Some(self.base_labels.clone());
        }
        let mut pairs = journal_labels(&e.fields);
        pairs.extend(
            self.base_labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let mut out = self.relabel.apply(&Labels::from_pairs(pairs))?;
        let tenant = out.remove(TENANT_LABEL);
        crate::strip_internal(&mut out);
        if let Some(t) = tenant {
            out.set(TENANT_LABEL, &t);
        }
        (!out.is_empty()).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_strings_binary_and_repeated_fields() {
        let line = br#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1700000000123456","MESSAGE":[104,105,10,255],"_SYSTEMD_UNIT":"web.service","PRIORITY":"3","TAG":["a",[98,99]],"HUGE":null,"ODD":[1,300],"N":5}"#;
        let e = parse_entry(line).unwrap();
        assert_eq!(e.cursor.as_deref(), Some("s=1;i=2"));
        assert_eq!(e.ts, Some(1_700_000_000_123_456_000));
        assert_eq!(e.fields["MESSAGE"], "hi\n\u{fffd}");
        // Repeated field: the last value, itself binary here.
        assert_eq!(e.fields["TAG"], "bc");
        assert_eq!(e.fields["N"], "5");
        // null (not shown) and an out-of-range byte are left out, never a panic.
        assert!(!e.fields.contains_key("HUGE") && !e.fields.contains_key("ODD"));
        assert_eq!(e.bad_fields, 2);
        assert_eq!(entry_line(&e, false).as_deref(), Some("hi\n\u{fffd}"));
        let j: Value = serde_json::from_str(&entry_line(&e, true).unwrap()).unwrap();
        assert_eq!(j["_SYSTEMD_UNIT"], "web.service");
        assert_eq!(j["TAG"], "bc");

        for bad in [&b"not json"[..], b"[1,2]", b"\"x\"", b"{\"a\":", b""] {
            assert!(parse_entry(bad).is_err());
        }
        let e = parse_entry(br#"{"MESSAGE":[],"X":[[]],"Y":[{}]}"#).unwrap();
        assert_eq!(e.fields["MESSAGE"], "");
        assert_eq!(e.fields["X"], "");
        assert!(!e.fields.contains_key("Y"));
        assert_eq!((e.cursor, e.ts), (None, None));
    }

    #[test]
    fn labels_for_relabel_rules() {
        let e = parse_entry(br#"{"_SYSTEMD_UNIT":"web.service","PRIORITY":"4","MESSAGE":"m"}"#)
            .unwrap();
        let l: BTreeMap<String, String> = journal_labels(&e.fields).into_iter().collect();
        assert_eq!(l["__journal__systemd_unit"], "web.service");
        assert_eq!(l["__journal_priority"], "4");
        assert_eq!(l["__journal_priority_keyword"], "warning");
        assert_eq!(l["__journal_message"], "m");
        assert_eq!(priority_keyword("0"), "emerg");
        assert_eq!(priority_keyword("7"), "debug");
        assert_eq!(priority_keyword("x"), "x");
    }

    fn cfg(yaml: &str) -> JournalConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn config_checks_and_journalctl_arguments() {
        let c = cfg("{matches: '_SYSTEMD_UNIT=a.service  PRIORITY=3'}");
        assert_eq!(
            c.parsed_matches().unwrap(),
            ["_SYSTEMD_UNIT=a.service", "PRIORITY=3"]
        );
        assert_eq!(c.max_age, Duration::from_secs(7 * 3600));
        for (bad, why) in [
            ("{matches: 'A=1 + B=2'}", "OR"),
            ("{matches: 'unit=a'}", "journal field name"),
            ("{matches: 'NOEQUALS'}", "FIELD=VALUE"),
            ("{max_age: 0s}", "max_age"),
            ("{labels: {'a-b': x}}", "invalid label name"),
            (
                "{relabel_rules: [{regex: '(', source_labels: [a]}]}",
                "relabel_rules",
            ),
        ] {
            let e = cfg(bad).validate().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(serde_yaml::from_str::<JournalConfig>("{bogus: 1}").is_err());

        let d = tempfile::tempdir().unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let mk = |c: &JournalConfig| {
            JournalSource::new(
                0,
                c,
                "j",
                d.path(),
                Duration::from_secs(1),
                tx.clone(),
                std_mpsc::channel().1,
                Arc::new(AtomicBool::new(false)),
            )
        };
        let c = cfg("{path: /x/journal, matches: 'PRIORITY=3', max_age: 1h}");
        let s = mk(&c).unwrap();
        let args = s.args();
        let since = args[7].clone();
        let secs: i64 = since.strip_prefix("--since=@").unwrap().parse().unwrap();
        assert!(
            (now_ns() / 1_000_000_000 - 3600 - secs).abs() <= 5,
            "{since}"
        );
        assert_eq!(
            args,
            [
                "--follow",
                "--all",
                "--show-cursor",
                "--output=json",
                "--no-pager",
                "--no-tail",
                "--directory=/x/journal",
                since.as_str(),
                "PRIORITY=3"
            ]
        );
        assert_eq!(s.base_labels.get("job"), Some("loki.source.journal.j"));
        save_cursor(&d.path().join("positions/j.yaml"), "s=abc;i=1").unwrap();
        let s = mk(&c).unwrap();
        assert!(s.args().contains(&"--after-cursor=s=abc;i=1".to_string()));
        // A max_age beyond the epoch is clamped, not an argument journalctl rejects.
        std::fs::remove_file(d.path().join("positions/j.yaml")).unwrap();
        let s = mk(&cfg("{max_age: 100000000h}")).unwrap();
        assert!(s.args().contains(&"--since=@1".to_string()));
        let e = mk(&cfg("{journalctl_path: /nonexistent/journalctl}"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("journalctl_path"), "{e}");
    }

    #[test]
    fn acknowledged_offsets_commit_cursors_in_order() {
        let d = tempfile::tempdir().unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let mut s = JournalSource::new(
            0,
            &cfg("{}"),
            "j",
            d.path(),
            Duration::from_secs(1),
            tx,
            std_mpsc::channel().1,
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap();
        for i in 1..=3 {
            s.line(Line::Entry(
                format!(r#"{{"__CURSOR":"c{i}","MESSAGE":"m{i}"}}"#).into_bytes(),
            ));
        }
        s.line(Line::Entry(b"{broken".to_vec()));
        s.line(Line::Entry(b"-- cursor: c3".to_vec()));
        assert_eq!(s.out.len(), 3);
        assert_eq!(s.read_cursor.as_deref(), Some("c3"));
        let ack = |o| Ack {
            source: 0,
            unit: 0,
            offset: o,
        };
        s.ack(ack(2));
        assert_eq!(s.committed.as_deref(), Some("c2"));
        // An older offset (a multiline block flushed late) never moves the cursor back.
        s.ack(ack(1));
        assert_eq!(s.committed.as_deref(), Some("c2"));
        s.save();
        assert_eq!(
            load_cursor(&d.path().join("positions/j.yaml")).as_deref(),
            Some("c2")
        );
    }

    /// Writes `text` as an executable stand-in journalctl at `script` and runs a source on
    /// it: its thread, its output, its ack sender and its stop flag.
    fn run_with(
        dir: &Path,
        script: &Path,
        text: &str,
    ) -> (
        std::thread::JoinHandle<()>,
        mpsc::Receiver<Vec<Item>>,
        std_mpsc::Sender<Ack>,
        Arc<AtomicBool>,
    ) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(script, text).unwrap();
        std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = cfg(&format!("{{journalctl_path: {}}}", script.display()));
        let (tx, rx) = mpsc::channel(8);
        let (atx, arx) = std_mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let s = JournalSource::new(
            0,
            &c,
            "j",
            dir,
            Duration::from_millis(10),
            tx,
            arx,
            stop.clone(),
        )
        .unwrap();
        (std::thread::spawn(move || s.run()), rx, atx, stop)
    }

    /// A stand-in journalctl that prints one entry and a bad line, then fails: the source
    /// restarts it after the last entry read and commits only acknowledged cursors.
    #[test]
    fn journalctl_exits_are_restarted_after_the_last_read_cursor() {
        let d = tempfile::tempdir().unwrap();
        let args = d.path().join("args");
        let script = d.path().join("journalctl");
        let script_text = format!(
            r#"#!/bin/sh
echo "$*" >> {a}
[ "$1" = --version ] && exit 0
n=$(wc -l < {a})
echo '{{"__CURSOR":"c'$n'","MESSAGE":"m'$n'","__REALTIME_TIMESTAMP":"1700000000000000"}}'
echo 'not json'
echo 'boom' >&2
exit 1
"#,
            a = args.display()
        );
        let (t, mut rx, atx, stop) = run_with(d.path(), &script, &script_text);
        let mut lines = Vec::new();
        while lines.len() < 2 {
            for it in rx.blocking_recv().unwrap() {
                if let Item::Record(r) = it {
                    assert_eq!(r.entry.ts, 1_700_000_000_000_000_000);
                    lines.push(r.entry.line);
                }
            }
        }
        assert_eq!(lines, ["m2", "m3"]);
        let a = std::fs::read_to_string(&args).unwrap();
        let runs: Vec<&str> = a.lines().collect();
        assert!(runs[1].contains("--since=@"), "{a}");
        assert!(runs[2].contains("--after-cursor=c2"), "{a}");
        // Only the first entry is acknowledged: its cursor is what a restart resumes after.
        atx.send(Ack {
            source: 0,
            unit: 0,
            offset: 1,
        })
        .unwrap();
        stop.store(true, Ordering::Relaxed);
        drop(atx);
        drop(rx);
        t.join().unwrap();
        assert_eq!(
            load_cursor(&d.path().join("positions/j.yaml")).as_deref(),
            Some("c2")
        );
    }

    /// A stored cursor journalctl rejects would fail every restart: it is dropped.
    #[test]
    fn rejected_cursor_falls_back_to_max_age() {
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("journalctl");
        save_cursor(&d.path().join("positions/j.yaml"), "garbage").unwrap();
        let (t, mut rx, atx, stop) = run_with(
            d.path(),
            &script,
            r#"#!/bin/sh
[ "$1" = --version ] && exit 0
case "$*" in *--after-cursor=*) echo 'Failed to seek to cursor: Invalid argument' >&2; exit 1;; esac
echo '{"__CURSOR":"good","MESSAGE":"fresh"}'
exec sleep 30
"#,
        );
        let got = rx.blocking_recv().unwrap();
        assert!(matches!(&got[0], Item::Record(r) if r.entry.line == "fresh"));
        stop.store(true, Ordering::Relaxed);
        drop(atx);
        // Shutdown kills the still-following stand-in.
        t.join().unwrap();
    }

    #[test]
    fn bounded_line_reader() {
        let mut r = BufReader::with_capacity(4, &b"abc\n0123456789\nxy"[..]);
        let mut b = Vec::new();
        assert_eq!(read_line_bounded(&mut r, &mut b, 8).unwrap(), Some(false));
        assert_eq!(b, b"abc\n");
        assert_eq!(read_line_bounded(&mut r, &mut b, 8).unwrap(), Some(true));
        assert_eq!(read_line_bounded(&mut r, &mut b, 8).unwrap(), Some(false));
        assert_eq!(b, b"xy");
        assert_eq!(read_line_bounded(&mut r, &mut b, 8).unwrap(), None);
    }
}
