//! Tailing sources (`file`, `kubernetes_pods`, `airflow`): one reader thread per source polls
//! its files, detects rotation (rename: drain the old fd to EOF, then open the new file at
//! 0), truncation (size below our offset: restart at 0) and deletion (drain, then close),
//! decodes lines, runs the stages and hands entries to the client. Positions are persisted
//! only up to offsets the client acknowledged.

mod dirwatch;
pub mod format;
pub mod paths;
pub mod positions;
mod resume;
#[cfg(test)]
mod tests;

use crate::config::{Format, SourceConfig, TailConfig};
use crate::glob::Glob;
use crate::metrics::{count_process_drop, metrics};
use crate::relabel::Relabeler;
use crate::stages::Pipeline;
use crate::{now_ns, Ack, Item, Record};
use format::{Decoder, Step};
use positions::FileRecord;
use resume::replay_clock;
use silt_logfile::LineClock;
use silt_model::{Entry, Labels};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const FP_MAX: u64 = 1024;
const READ_CHUNK: usize = 256 * 1024;
/// Per file per turn, so one busy file cannot starve the others.
const MAX_READ_PER_TURN: u64 = 1 << 20;

/// Which path layout adds labels.
#[derive(Clone, Debug)]
enum Layout {
    Plain,
    Pods { root: PathBuf, node: Option<String> },
    Airflow,
}

/// Node name for `kubernetes_pods`: config, else env `NODE_NAME`, else `HOSTNAME`.
pub fn node_name(t: &TailConfig) -> Option<String> {
    t.node_name
        .clone()
        .or_else(|| std::env::var("NODE_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// A tailing source, ready to run on its own thread.
pub struct FileSource {
    idx: usize,
    name: String,
    cfg: TailConfig,
    format: Format,
    layout: Layout,
    include: Vec<Glob>,
    exclude: Vec<Glob>,
    relabel: Relabeler,
    pipeline: Pipeline,
    tx: mpsc::Sender<Vec<Item>>,
    acks: std_mpsc::Receiver<Ack>,
    positions_path: PathBuf,
    sync_period: Duration,
    shutdown: Arc<AtomicBool>,
    // Runtime state.
    tailers: Vec<Tailer>,
    committed: HashMap<u64, Committed>,
    next_id: u64,
    first_scan: bool,
    restored: Vec<FileRecord>,
    /// Archives (`.gz`) read and acknowledged to the end; dropped once they are deleted.
    done: Vec<FileRecord>,
    out: Vec<Item>,
    /// A rotation was seen: scan now for the new file instead of at the next period.
    rediscover: bool,
    /// Final positions of closed files, sent once stages hold none of their lines.
    closing: Vec<Ack>,
    /// Directory events that trigger discovery early.
    watch: Option<dirwatch::DirWatch>,
    /// Pod metadata from the Kubernetes API, and the cache version labels were built from.
    pods: Option<Arc<crate::k8s::PodCache>>,
    pods_version: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Live,
    /// Renamed away or deleted: read to EOF, then close.
    Draining,
}

struct Tailer {
    id: u64,
    path: PathBuf,
    file: File,
    dev: u64,
    ino: u64,
    fp: (u64, u64),
    /// Offset just after the last complete line handed on.
    offset: u64,
    /// Bytes after `offset` read but not yet ended by `\n`.
    pending: Vec<u8>,
    /// Discarding the rest of an over-long physical line.
    skipping: bool,
    decoder: Decoder,
    labels: Labels,
    metadata: Labels,
    state: State,
    /// Reading a decompressed copy of a `.gz`: closed at its end whatever the path does.
    archive: bool,
    /// Times read from the lines (`line_timestamps`); `None` = read time.
    clock: Option<LineClock>,
}

/// Time of a decoded line: the record's own (CRI/docker), else the line's, else now.
fn entry_time(ts: Option<i64>, clock: &mut Option<LineClock>, line: &str) -> i64 {
    match (ts, clock) {
        (Some(ts), _) => ts,
        (None, Some(c)) => c.stamp(line, now_ns),
        (None, None) => now_ns(),
    }
}

/// What the positions file will say about one file.
struct Committed {
    path: PathBuf,
    dev: u64,
    ino: u64,
    fp: (u64, u64),
    offset: u64,
    /// Set when the file is closed: the record goes once `offset` reaches it.
    final_offset: Option<u64>,
    /// A decompressed `.gz` (`include_compressed`): kept as done once finished.
    archive: bool,
}

impl Committed {
    fn record(&self, done: bool) -> FileRecord {
        FileRecord {
            path: self.path.to_string_lossy().into_owned(),
            dev: self.dev,
            inode: self.ino,
            fingerprint: self.fp.0,
            fp_len: self.fp.1,
            offset: self.offset,
            done,
        }
    }
}

fn fingerprint(f: &File, size: u64) -> (u64, u64) {
    let n = size.min(FP_MAX);
    let mut buf = vec![0u8; n as usize];
    match f.read_exact_at(&mut buf, 0) {
        Ok(()) => (xxhash_rust::xxh3::xxh3_64(&buf), n),
        Err(_) => (0, 0),
    }
}

fn is_compressed(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("gz" | "bz2" | "zip" | "tmp" | "xz" | "zst")
    )
}

impl FileSource {
    /// Builds a source from a validated config.
    pub fn new(
        idx: usize,
        src: &SourceConfig,
        data_dir: &Path,
        sync_period: Duration,
        tx: mpsc::Sender<Vec<Item>>,
        acks: std_mpsc::Receiver<Ack>,
        shutdown: Arc<AtomicBool>,
    ) -> crate::Result<FileSource> {
        let err = |m: String| crate::Error::Config(m);
        let (cfg, layout, default_format, default_include) = match src {
            SourceConfig::File(t) => (t.clone(), Layout::Plain, Format::Raw, vec![]),
            SourceConfig::KubernetesPods(t) => {
                let root = t.root.clone().unwrap_or_else(|| "/var/log/pods".into());
                let node = node_name(t);
                let inc = vec![format!("{}/*/*/*.log", root.display())];
                (t.clone(), Layout::Pods { root, node }, Format::Auto, inc)
            }
            SourceConfig::Airflow(t) => {
                let root = t.root.clone().unwrap_or_else(|| "/opt/airflow/logs".into());
                let r = root.display();
                let inc = vec![
                    format!("{r}/dag_id=*/run_id=*/task_id=*/attempt=*.log"),
                    format!("{r}/dag_id=*/run_id=*/task_id=*/map_index=*/attempt=*.log"),
                ];
                (t.clone(), Layout::Airflow, Format::Raw, inc)
            }
            SourceConfig::LokiPush(_)
            | SourceConfig::KubernetesEvents(_)
            | SourceConfig::Journal(_) => return Err(err("not a tailing source".into())),
        };
        let include_pats = if cfg.include.is_empty() {
            default_include
        } else {
            cfg.include.clone()
        };
        let include = include_pats
            .iter()
            .map(|g| Glob::new(g).map_err(err))
            .collect::<Result<Vec<_>, _>>()?;
        let exclude = cfg
            .exclude
            .iter()
            .map(|g| Glob::new(g).map_err(err))
            .collect::<Result<Vec<_>, _>>()?;
        let name = src.name();
        let positions_path = data_dir.join("positions").join(format!("{name}.yaml"));
        let restored = positions::load(&positions_path);
        Ok(FileSource {
            idx,
            format: cfg.format.unwrap_or(default_format),
            relabel: Relabeler::new(&cfg.relabel_rules).map_err(err)?,
            pipeline: Pipeline::new(&cfg.stages).map_err(err)?,
            name,
            cfg,
            layout,
            include,
            exclude,
            tx,
            acks,
            positions_path,
            sync_period,
            shutdown,
            tailers: Vec::new(),
            committed: HashMap::new(),
            next_id: 1,
            first_scan: true,
            restored: restored.iter().filter(|r| !r.done).cloned().collect(),
            done: restored.into_iter().filter(|r| r.done).collect(),
            out: Vec::new(),
            rediscover: false,
            closing: Vec::new(),
            watch: dirwatch::DirWatch::new(),
            pods: None,
            pods_version: 0,
        })
    }

    /// Enriches pod targets from this cache (kept up to date by `k8s::watch_pods`).
    pub fn with_pod_cache(mut self, cache: Arc<crate::k8s::PodCache>) -> FileSource {
        self.pods = Some(cache);
        self
    }

    /// Metadata changed: rebuild every open file's labels.
    fn refresh_labels(&mut self) {
        let Some(v) = self.pods.as_ref().map(|c| c.version()) else {
            return;
        };
        if v == self.pods_version {
            return;
        }
        self.pods_version = v;
        for i in 0..self.tailers.len() {
            if let Some((labels, metadata)) = self.target_labels(&self.tailers[i].path) {
                self.tailers[i].labels = labels;
                self.tailers[i].metadata = metadata;
            }
        }
    }

    /// Runs until shutdown; then waits for the client's final acknowledgements and
    /// writes positions one last time.
    pub fn run(mut self) {
        let mut last_discovery: Option<Instant> = None;
        let mut last_sync = Instant::now();
        // The series exists from the start, so dashboards and alerts see 0, not nothing.
        self.report_lag();
        while !self.shutdown.load(Ordering::Relaxed) {
            self.drain_acks();
            if self.watch.as_mut().is_some_and(|w| w.changed()) {
                self.rediscover = true;
            }
            if self.rediscover
                || last_discovery.is_none_or(|t| t.elapsed() >= self.cfg.discovery_period)
            {
                self.rediscover = false;
                self.discover();
                last_discovery = Some(Instant::now());
            }
            let mut read = 0;
            for i in 0..self.tailers.len() {
                read += self.poll(i);
                if !self.send() {
                    return;
                }
            }
            self.close_finished();
            let mut tick = Vec::new();
            self.pipeline.tick(now_ns(), &mut tick);
            self.pipeline.emit(tick, &mut self.out);
            self.release_closed();
            if !self.send() {
                return;
            }
            if last_sync.elapsed() >= self.sync_period {
                self.save_positions();
                self.report_lag();
                last_sync = Instant::now();
            }
            if read == 0 {
                std::thread::sleep(self.cfg.poll_interval);
            }
        }
        // Stages may hold entries (multiline): hand them on before the client's last flush.
        let mut rest = Vec::new();
        self.pipeline.flush(&mut rest);
        self.out.extend(rest.into_iter().map(Item::Record));
        self.release_closed();
        self.send();
        self.finish();
    }

    fn finish(mut self) {
        // Closing our sender lets the client flush and exit; its ack senders drop with it.
        let (dead, _) = mpsc::channel(1);
        self.tx = dead;
        while let Ok(a) = self.acks.recv() {
            self.apply_ack(a);
        }
        self.save_positions();
        tracing::info!(source = %self.name, "file source stopped, positions saved");
    }

    fn send(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let batch = std::mem::take(&mut self.out);
        // Blocks while the client is behind: back-pressure instead of buffering in memory.
        self.tx.blocking_send(batch).is_ok()
    }

    fn drain_acks(&mut self) {
        while let Ok(a) = self.acks.try_recv() {
            self.apply_ack(a);
        }
    }

    fn apply_ack(&mut self, a: Ack) {
        if let Some(c) = self.committed.get_mut(&a.unit) {
            // Acks arrive in send order, so the latest is the resume point (even after a
            // truncation moved offsets back to 0).
            c.offset = a.offset;
            if c.final_offset == Some(c.offset) {
                if let Some(c) = self.committed.remove(&a.unit).filter(|c| c.archive) {
                    self.done.push(c.record(true));
                }
            }
        }
    }

    /// How far acknowledged positions trail the files (a restart re-reads this much, and
    /// a backlog that outgrows rotation loses data).
    fn report_lag(&self) {
        let behind: u64 = self
            .tailers
            .iter()
            .filter_map(|t| {
                let size = t.file.metadata().ok()?.len();
                let acked = self.committed.get(&t.id)?.offset;
                Some(size.saturating_sub(acked))
            })
            .sum();
        metrics()
            .bytes_behind
            .get_or_create(&crate::metrics::SourceLabels {
                source: self.name.clone(),
            })
            .set(behind.min(i64::MAX as u64) as i64);
    }

    fn save_positions(&self) {
        let mut recs: Vec<FileRecord> = self.committed.values().map(|c| c.record(false)).collect();
        recs.extend(self.done.iter().cloned());
        // Records not claimed yet (stopped before the first scan) must survive, or a quick
        // restart would forget every position.
        recs.extend(self.restored.iter().cloned());
        recs.sort_by(|a, b| a.path.cmp(&b.path).then(a.inode.cmp(&b.inode)));
        if let Err(e) = positions::save(&self.positions_path, &recs) {
            tracing::warn!(source = %self.name, error = %e, "writing positions failed");
        }
    }

    fn matched_paths(&mut self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut dirs = Vec::new();
        for g in &self.include {
            g.walk_with_dirs(&mut found, &mut dirs);
        }
        if self.watch.as_mut().is_some_and(|w| w.watch(&dirs)) {
            self.rediscover = true;
        }
        found.sort();
        found.dedup();
        found.retain(|p| {
            !self.exclude.iter().any(|g| g.matches(p))
                && (!is_compressed(p)
                    || (self.cfg.include_compressed && p.extension().is_some_and(|e| e == "gz")))
        });
        found
    }

    fn discover(&mut self) {
        self.refresh_labels();
        self.done.retain(|r| Path::new(&r.path).exists());
        let found = self.matched_paths();
        let found_set: HashSet<&PathBuf> = found.iter().collect();
        // Live files whose path vanished are drained; a changed identity is a rotation.
        for t in self.tailers.iter_mut().filter(|t| t.state == State::Live) {
            if !found_set.contains(&t.path) {
                t.state = State::Draining;
            }
        }
        for p in &found {
            let Ok(md) = std::fs::metadata(p) else {
                continue;
            };
            let (dev, ino) = (md.dev(), md.ino());
            // Archives read to the end (acknowledged, or still waiting for it) stay closed.
            if self.done.iter().any(|r| r.dev == dev && r.inode == ino)
                || self
                    .committed
                    .values()
                    .any(|c| c.archive && c.final_offset.is_some() && (c.dev, c.ino) == (dev, ino))
            {
                continue;
            }
            if let Some(t) = self
                .tailers
                .iter_mut()
                .find(|t| t.dev == dev && t.ino == ino)
            {
                if t.archive {
                    continue;
                }
                // Same file under a (possibly new) matched name: keep tailing it.
                if t.state == State::Draining || t.path != *p {
                    t.path = p.clone();
                    t.state = State::Live;
                    if let Some(c) = self.committed.get_mut(&t.id) {
                        c.path = p.clone();
                    }
                }
                continue;
            }
            for t in self.tailers.iter_mut().filter(|t| t.path == *p) {
                t.state = State::Draining;
                metrics().rotations.inc();
            }
            self.open(p, &md);
        }
        if self.first_scan {
            self.first_scan = false;
            self.resume_rotated();
        }
    }

    /// `line_timestamps`, on by default for Airflow task logs.
    fn line_timestamps(&self) -> bool {
        self.cfg
            .line_timestamps
            .unwrap_or(matches!(self.layout, Layout::Airflow))
    }

    fn target_labels(&self, path: &Path) -> Option<(Labels, Labels)> {
        let mut ls: BTreeMap<String, String> = self.cfg.labels.clone().into_iter().collect();
        let mut md = Vec::new();
        let path_str = path.to_string_lossy().into_owned();
        ls.insert("__path__".into(), path_str.clone());
        match &self.layout {
            Layout::Plain => {
                if self.cfg.filename_label.unwrap_or(true) {
                    ls.insert("filename".into(), path_str);
                } else {
                    md.push(("filename".to_string(), path_str));
                }
            }
            Layout::Pods { root, node } => {
                let info = paths::kubernetes(root, path, node.as_deref())?;
                ls.extend(info.labels);
                let uid = ls
                    .get("__meta_kubernetes_pod_uid")
                    .cloned()
                    .unwrap_or_default();
                if let Some(c) = &self.pods {
                    if let Some(meta) = c.get(&uid) {
                        meta.target_labels(&mut ls);
                    }
                    let ns = ls
                        .get("__meta_kubernetes_namespace")
                        .cloned()
                        .unwrap_or_default();
                    c.context_labels(&ns, &mut ls);
                }
            }
            Layout::Airflow => {
                if self.cfg.filename_label.unwrap_or(false) {
                    ls.insert("filename".into(), path_str);
                } else {
                    md.push(("filename".to_string(), path_str));
                }
                if let Some(info) = paths::airflow(path) {
                    ls.extend(info.labels);
                    md.extend(info.metadata);
                }
            }
        }
        let labels = Labels::from_pairs(ls);
        let mut labels = if self.relabel.is_empty() {
            labels
        } else {
            self.relabel.apply(&labels)?
        };
        // Discovery labels stop here (as in Alloy), so entries do not carry them per line;
        // a tenant chosen by relabeling is kept.
        let tenant = labels.get(crate::TENANT_LABEL).map(str::to_string);
        crate::strip_internal(&mut labels);
        if let Some(t) = tenant {
            labels.set(crate::TENANT_LABEL, &t);
        }
        if labels.is_empty() {
            return None;
        }
        Some((labels, Labels::from_pairs(md)))
    }

    fn open(&mut self, p: &Path, md: &std::fs::Metadata) {
        if let Some(age) = self.cfg.ignore_older_than {
            let old = md
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|e| e > age);
            if old {
                return;
            }
        }
        if p.extension().is_some_and(|e| e == "gz") {
            return self.open_archive(p, md);
        }
        let Ok(f) = File::open(p) else {
            tracing::debug!(path = %p.display(), "cannot open, will retry");
            return;
        };
        let size = md.len();
        // Resume from an acknowledged position if this exact file (inode + content) is known.
        let rec_pos = self.restored.iter().position(|r| {
            if r.inode == 0 {
                r.path == p.to_string_lossy()
            } else {
                r.dev == md.dev()
                    && r.inode == md.ino()
                    && fingerprint(&f, r.fp_len.min(size)) == (r.fingerprint, r.fp_len)
            }
        });
        let start = match rec_pos {
            Some(i) => {
                let r = self.restored.swap_remove(i);
                if r.offset > size {
                    metrics().truncations.inc();
                    0
                } else {
                    r.offset
                }
            }
            None if self.first_scan && self.cfg.tail_from_end => size,
            None => 0,
        };
        self.add_tailer(p, f, (md.dev(), md.ino()), start, State::Live, false);
    }

    /// Tails `f` (identified by `(dev, ino)`, which for archives is the `.gz`'s, not the
    /// decompressed copy's) from `start`.
    fn add_tailer(
        &mut self,
        p: &Path,
        f: File,
        (dev, ino): (u64, u64),
        start: u64,
        state: State,
        archive: bool,
    ) {
        let Some((labels, metadata)) = self.target_labels(p) else {
            tracing::debug!(path = %p.display(), "dropped by relabel rules");
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        let fp = fingerprint(&f, f.metadata().map(|m| m.len()).unwrap_or(0));
        self.committed.insert(
            id,
            Committed {
                path: p.to_path_buf(),
                dev,
                ino,
                fp,
                offset: start,
                final_offset: None,
                archive,
            },
        );
        tracing::info!(source = %self.name, path = %p.display(), offset = start, "tailing");
        metrics().files_active.inc();
        let clock = self.line_timestamps().then(|| replay_clock(&f, start));
        self.tailers.push(Tailer {
            id,
            path: p.to_path_buf(),
            file: f,
            dev,
            ino,
            fp,
            offset: start,
            pending: Vec::new(),
            skipping: false,
            decoder: Decoder::new(
                self.format,
                self.cfg.max_line_size,
                self.cfg.max_line_action,
            ),
            labels,
            metadata,
            state,
            archive,
            clock,
        });
    }

    /// Reads what is new in tailer `i`; returns bytes read.
    fn poll(&mut self, i: usize) -> u64 {
        let Ok(md) = self.tailers[i].file.metadata() else {
            return 0;
        };
        let size = md.len();
        {
            let t = &mut self.tailers[i];
            let pos = t.offset + t.pending.len() as u64;
            // Truncated and written again past our offset between two polls: the size alone
            // cannot tell, the first bytes can (cheap: at most 1 KiB, only when data is new).
            let rewritten = size > pos && t.fp.1 > 0 && fingerprint(&t.file, t.fp.1) != t.fp;
            if size < pos || rewritten {
                tracing::info!(path = %t.path.display(), "file truncated, restarting at 0");
                metrics().truncations.inc();
                t.offset = 0;
                t.pending.clear();
                t.skipping = false;
                t.decoder = Decoder::new(
                    self.format,
                    self.cfg.max_line_size,
                    self.cfg.max_line_action,
                );
                t.fp = (0, 0);
                if let Some(c) = t.clock.as_mut() {
                    *c = LineClock::new(now_ns());
                }
                if let Some(c) = self.committed.get_mut(&t.id) {
                    c.fp = t.fp;
                }
            }
        }
        let mut total = 0;
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let t = &mut self.tailers[i];
            let pos = t.offset + t.pending.len() as u64;
            let n = match t.file.read_at(&mut buf, pos) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            total += n as u64;
            metrics().read_bytes.inc_by(n as u64);
            self.consume(i, &buf[..n]);
            if total >= MAX_READ_PER_TURN {
                break;
            }
        }
        let t = &mut self.tailers[i];
        if t.fp.1 < FP_MAX && t.offset + t.pending.len() as u64 > t.fp.1 {
            t.fp = fingerprint(&t.file, size.max(t.offset));
            if let Some(c) = self.committed.get_mut(&t.id) {
                c.fp = t.fp;
            }
        }
        // At EOF of a live file, check the path still names it: rename-rotation is seen here
        // rather than at the next discovery, so the new file's head is read promptly.
        if total == 0 && t.state == State::Live {
            match std::fs::metadata(&t.path) {
                Ok(m) if m.dev() == t.dev && m.ino() == t.ino => {}
                _ => {
                    t.state = State::Draining;
                    metrics().rotations.inc();
                    self.rediscover = true;
                    // One more read: data written just before the rename.
                    return self.poll(i) + 1;
                }
            }
        }
        total
    }

    fn consume(&mut self, i: usize, mut chunk: &[u8]) {
        let max_phys = self.cfg.max_line_size as usize + 4096;
        while !chunk.is_empty() {
            let t = &mut self.tailers[i];
            match chunk.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let line_end = t.offset + t.pending.len() as u64 + nl as u64 + 1;
                    if t.skipping {
                        t.skipping = false;
                        t.pending.clear();
                        t.offset = line_end;
                        let ack = Ack {
                            source: self.idx,
                            unit: t.id,
                            offset: line_end,
                        };
                        self.push_ack(ack);
                    } else if t.pending.is_empty() {
                        let line = String::from_utf8_lossy(&chunk[..nl]).into_owned();
                        self.emit(i, &line, line_end);
                    } else {
                        let mut p = std::mem::take(&mut self.tailers[i].pending);
                        p.extend_from_slice(&chunk[..nl]);
                        let line = String::from_utf8_lossy(&p).into_owned();
                        self.emit(i, &line, line_end);
                    }
                    chunk = &chunk[nl + 1..];
                }
                None => {
                    if !t.skipping {
                        t.pending.extend_from_slice(chunk);
                        if t.pending.len() > max_phys {
                            // Never buffer a newline-less file without bound: cut the line here
                            // and discard the rest of it up to the next newline.
                            let p = std::mem::take(&mut t.pending);
                            let end = t.offset + p.len() as u64;
                            t.skipping = true;
                            let line = String::from_utf8_lossy(&p).into_owned();
                            self.emit(i, &line, end);
                            self.tailers[i].offset = end;
                        }
                    } else {
                        t.offset += chunk.len() as u64;
                    }
                    return;
                }
            }
        }
    }

    /// One physical line ending at `end` (exclusive).
    fn emit(&mut self, i: usize, raw: &str, end: u64) {
        metrics().read_lines.inc();
        let t = &mut self.tailers[i];
        let start = t.offset;
        t.offset = end;
        // Where re-reading would produce this line again: its first partial chunk, if any.
        let line_start = t.decoder.pending_start().map_or(start, |s| s.min(start));
        let step = t.decoder.push(raw, start);
        let safe = t.decoder.pending_start().map_or(end, |s| s.min(end));
        let ack = Ack {
            source: self.idx,
            unit: t.id,
            offset: safe,
        };
        match step {
            Step::Buffered => {}
            Step::Dropped(reason) => {
                count_process_drop(reason);
                self.push_ack(ack);
            }
            Step::Line(d) => {
                let mut labels = t.labels.clone();
                if let Some(s) = d.stream {
                    labels.set("stream", s);
                }
                let ts = entry_time(d.ts, &mut t.clock, &d.line);
                let rec = Record {
                    labels,
                    entry: Entry {
                        ts,
                        line: d.line,
                        metadata: t.metadata.clone(),
                    },
                    extracted: BTreeMap::new(),
                    ack: Some(ack),
                };
                self.run_pipeline(rec, ack, line_start);
            }
        }
    }

    /// Runs stages on one line that starts at `line_start` of its unit.
    fn run_pipeline(&mut self, rec: Record, ack: Ack, line_start: u64) {
        if self.pipeline.is_empty() {
            self.out.push(Item::Record(rec));
            return;
        }
        if !self.pipeline.run_line(rec, line_start, &mut self.out) {
            self.push_ack(ack);
        }
    }

    /// Queues a position, lowered below lines that stages still hold.
    fn push_ack(&mut self, ack: Ack) {
        self.out.push(Item::Ack(self.pipeline.clamp(ack)));
    }

    /// Final positions of closed files wait until stages released their held lines.
    fn release_closed(&mut self) {
        let mut k = 0;
        while k < self.closing.len() {
            let ack = self.closing[k];
            if self.pipeline.floor(ack.source, ack.unit).is_none() {
                self.out.push(Item::Ack(ack));
                self.closing.swap_remove(k);
            } else {
                k += 1;
            }
        }
    }

    /// Closes drained files at EOF, flushing their unfinished lines.
    fn close_finished(&mut self) {
        let mut k = 0;
        while k < self.tailers.len() {
            let t = &self.tailers[k];
            let at_eof = t
                .file
                .metadata()
                .map(|m| m.len() <= t.offset + t.pending.len() as u64)
                .unwrap_or(true);
            if t.state != State::Draining || !at_eof {
                k += 1;
                continue;
            }
            let mut t = self.tailers.swap_remove(k);
            let end = t.offset + t.pending.len() as u64;
            // Unfinished lines start at the oldest partial chunk (or the trailing bytes).
            let line_start = t.decoder.pending_start().unwrap_or(t.offset);
            let mut lines: Vec<(String, Option<i64>, Option<&'static str>)> = t
                .decoder
                .flush()
                .into_iter()
                .map(|d| (d.line, d.ts, d.stream))
                .collect();
            if !t.pending.is_empty() && !t.skipping {
                lines.push((String::from_utf8_lossy(&t.pending).into_owned(), None, None));
            }
            let ack = Ack {
                source: self.idx,
                unit: t.id,
                offset: end,
            };
            for (line, ts, stream) in lines {
                let mut labels = t.labels.clone();
                if let Some(s) = stream {
                    labels.set("stream", s);
                }
                let ts = entry_time(ts, &mut t.clock, &line);
                let rec = Record {
                    labels,
                    entry: Entry {
                        ts,
                        line,
                        metadata: t.metadata.clone(),
                    },
                    extracted: BTreeMap::new(),
                    ack: Some(ack),
                };
                self.run_pipeline(rec, ack, line_start);
            }
            self.closing.push(ack);
            self.pipeline.forget(self.idx, t.id);
            if let Some(c) = self.committed.get_mut(&t.id) {
                c.final_offset = Some(end);
                if c.offset == end {
                    self.committed.remove(&t.id);
                }
            }
            tracing::info!(source = %self.name, path = %t.path.display(), "closed after EOF");
            metrics().files_active.dec();
        }
    }
}
