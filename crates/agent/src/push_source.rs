//! `loki_push`: a Loki push receiver (`loki.source.api`). Each accepted request is written
//! to a disk buffer (`<data_dir>/buffer/<source>/<seq>.push`, fsynced) before the 204, then
//! a reader thread feeds it through relabel rules and stages to the client; the file is
//! deleted once the client acknowledged it. At the size cap the oldest files are dropped and
//! counted (`loki_write_dropped_entries_total{reason="buffer_full"}`).

use crate::config::PushSourceConfig;
use crate::metrics::{count_dropped, metrics};
use crate::relabel::Relabeler;
use crate::stages::Pipeline;
use crate::{now_ns, Ack, Item, Record, TENANT_LABEL};
use silt_model::{Entry, Labels};
use silt_proto::{decode_push, encode_push_protobuf, DecodeLimits, PushStream};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Files read ahead of acknowledgement, bounding memory.
const MAX_IN_FLIGHT: usize = 8;

/// Shared between the HTTP handler and the reader thread.
pub struct Buffer {
    dir: PathBuf,
    max_bytes: u64,
    next_seq: AtomicU64,
    /// Serialises writers with the cap enforcement.
    lock: Mutex<()>,
    use_incoming_timestamp: bool,
    /// Raw lines carry no labels of their own: without these they would all be dropped.
    labels_configured: bool,
}

/// Why a push was refused.
#[derive(Debug)]
pub enum PushReject {
    Bad(u16, String),
    Io(String),
}

fn seq_of(p: &Path) -> Option<u64> {
    if p.extension()? != "push" {
        return None;
    }
    p.file_stem()?.to_str()?.parse().ok()
}

fn list(dir: &Path) -> Vec<(u64, PathBuf, u64)> {
    let mut v: Vec<(u64, PathBuf, u64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let s = seq_of(&p)?;
            let len = e.metadata().ok()?.len();
            Some((s, p, len))
        })
        .collect();
    v.sort();
    v
}

impl Buffer {
    pub fn open(dir: PathBuf, c: &PushSourceConfig) -> std::io::Result<Buffer> {
        std::fs::create_dir_all(&dir)?;
        let files = list(&dir);
        let next = files.last().map_or(1, |f| f.0 + 1);
        metrics()
            .buffer_bytes
            .set(files.iter().map(|f| f.2 as i64).sum());
        Ok(Buffer {
            dir,
            max_bytes: c.max_buffer_size,
            next_seq: AtomicU64::new(next),
            lock: Mutex::new(()),
            use_incoming_timestamp: c.use_incoming_timestamp,
            labels_configured: !c.labels.is_empty() || !c.relabel_rules.is_empty(),
        })
    }

    /// Decodes and durably buffers one push body.
    pub fn accept(
        &self,
        body: &[u8],
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        tenant: Option<&str>,
    ) -> Result<usize, PushReject> {
        let req = decode_push(
            body,
            content_type,
            content_encoding,
            false,
            &DecodeLimits::default(),
        )
        .map_err(|e| PushReject::Bad(e.status(), e.message().to_string()))?;
        let now = now_ns();
        let mut streams = req.streams;
        if !self.use_incoming_timestamp {
            for s in &mut streams {
                for e in &mut s.entries {
                    e.ts = now;
                }
            }
        }
        self.store(streams, tenant)
    }

    /// `/loki/api/v1/raw`: one entry per non-empty line (`\n` or `\r\n`), receive-time
    /// timestamps (1 ns apart, keeping order and identical lines), labels from the source.
    pub fn accept_raw(&self, body: &[u8], tenant: Option<&str>) -> Result<usize, PushReject> {
        if !self.labels_configured {
            return Err(PushReject::Bad(
                400,
                "raw pushes need `labels` (or relabel_rules) on the loki_push source".into(),
            ));
        }
        let now = now_ns();
        let entries: Vec<Entry> = body
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, l)| Entry {
                ts: now + i as i64,
                line: String::from_utf8_lossy(l).into_owned(),
                metadata: Labels::new(),
            })
            .collect();
        if entries.is_empty() {
            return Ok(0);
        }
        let streams = vec![PushStream {
            labels: Labels::new(),
            entries,
        }];
        self.store(streams, tenant)
    }

    /// Durably buffers decoded streams (fsync before returning).
    fn store(&self, streams: Vec<PushStream>, tenant: Option<&str>) -> Result<usize, PushReject> {
        let n: usize = streams.iter().map(|s| s.entries.len()).sum();
        metrics().push_received_entries.inc_by(n as u64);
        let pb = encode_push_protobuf(&streams);
        let t = tenant.unwrap_or("").as_bytes();
        let mut data = Vec::with_capacity(4 + t.len() + pb.len());
        data.extend_from_slice(&(t.len() as u32).to_le_bytes());
        data.extend_from_slice(t);
        data.extend_from_slice(&pb);
        if data.len() as u64 > self.max_bytes {
            return Err(PushReject::Bad(
                413,
                "request larger than the agent's buffer".into(),
            ));
        }
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut files = list(&self.dir);
        let mut total: u64 = files.iter().map(|f| f.2).sum();
        // Oldest dropped only at the cap.
        while total + data.len() as u64 > self.max_bytes && !files.is_empty() {
            let (_, p, len) = files.remove(0);
            let dropped = read_file(&p)
                .map(|(_, s)| s.iter().map(|s| s.entries.len()).sum())
                .unwrap_or(0);
            if std::fs::remove_file(&p).is_ok() {
                count_dropped("buffer_full", dropped as u64, len);
                total -= len;
            }
        }
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(format!("{seq:020}.push"));
        silt_logfile::write_atomic(&path, &data).map_err(|e| PushReject::Io(e.to_string()))?;
        metrics()
            .buffer_bytes
            .set((total + data.len() as u64) as i64);
        Ok(n)
    }
}

fn read_file(p: &Path) -> Option<(String, Vec<PushStream>)> {
    let data = std::fs::read(p).ok()?;
    let tl = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let tenant = String::from_utf8(data.get(4..4 + tl)?.to_vec()).ok()?;
    let req = decode_push(
        data.get(4 + tl..)?,
        Some("application/x-protobuf"),
        None,
        false,
        &DecodeLimits::default(),
    )
    .ok()?;
    Some((tenant, req.streams))
}

/// The reader side: buffer files → records.
pub struct PushSource {
    idx: usize,
    name: String,
    buffer: Arc<Buffer>,
    labels: BTreeMap<String, String>,
    relabel: Relabeler,
    pipeline: Pipeline,
    /// Buffer files acknowledged once stages release the lines they hold.
    closing: Vec<Ack>,
    tx: mpsc::Sender<Vec<Item>>,
    acks: std_mpsc::Receiver<Ack>,
    shutdown: Arc<AtomicBool>,
}

impl PushSource {
    pub fn new(
        idx: usize,
        c: &PushSourceConfig,
        name: String,
        buffer: Arc<Buffer>,
        tx: mpsc::Sender<Vec<Item>>,
        acks: std_mpsc::Receiver<Ack>,
        shutdown: Arc<AtomicBool>,
    ) -> crate::Result<PushSource> {
        let err = crate::Error::Config;
        Ok(PushSource {
            idx,
            name,
            buffer,
            labels: c.labels.clone(),
            relabel: Relabeler::new(&c.relabel_rules).map_err(err)?,
            pipeline: Pipeline::new(&c.stages).map_err(err)?,
            closing: Vec::new(),
            tx,
            acks,
            shutdown,
        })
    }

    pub fn run(mut self) {
        let mut in_flight: BTreeSet<u64> = BTreeSet::new();
        let mut done_upto = 0u64;
        while !self.shutdown.load(Ordering::Relaxed) {
            while let Ok(a) = self.acks.try_recv() {
                self.acked(a, &mut in_flight);
            }
            // Time-based stages (multiline) emit; files whose lines they held are released.
            let mut items = Vec::new();
            let mut tick = Vec::new();
            self.pipeline.tick(crate::now_ns(), &mut tick);
            self.pipeline.emit(tick, &mut items);
            self.release_closing(&mut items);
            if !items.is_empty() && self.tx.blocking_send(items).is_err() {
                return;
            }
            let mut sent = false;
            for (seq, path, _) in list(&self.buffer.dir) {
                if in_flight.len() >= MAX_IN_FLIGHT {
                    break;
                }
                if seq <= done_upto || in_flight.contains(&seq) {
                    continue;
                }
                done_upto = seq;
                let Some((tenant, streams)) = read_file(&path) else {
                    tracing::warn!(path = %path.display(), "unreadable buffer file, removing");
                    let _ = std::fs::remove_file(&path);
                    continue;
                };
                in_flight.insert(seq);
                let items = self.records(seq, &tenant, streams);
                if self.tx.blocking_send(items).is_err() {
                    return;
                }
                sent = true;
            }
            if !sent {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let mut rest = Vec::new();
        self.pipeline.flush(&mut rest);
        let mut items: Vec<Item> = rest.into_iter().map(Item::Record).collect();
        self.release_closing(&mut items);
        let _ = self.tx.blocking_send(items);
        let (dead, _) = mpsc::channel(1);
        self.tx = dead;
        while let Ok(a) = self.acks.recv() {
            self.acked(a, &mut in_flight);
        }
        tracing::info!(source = %self.name, "push source stopped");
    }

    /// Final acknowledgements of buffer files, once no stage holds a line of them.
    fn release_closing(&mut self, items: &mut Vec<Item>) {
        let pipeline = &self.pipeline;
        self.closing.retain(|a| {
            if pipeline.floor(a.source, a.unit).is_some() {
                return true;
            }
            items.push(Item::Ack(*a));
            false
        });
    }

    fn acked(&self, a: Ack, in_flight: &mut BTreeSet<u64>) {
        // Offset 0: a stage still holds lines of this file; its final ack comes later.
        if a.offset == 0 {
            return;
        }
        if in_flight.remove(&a.unit) {
            let p = self.buffer.dir.join(format!("{:020}.push", a.unit));
            let _ = std::fs::remove_file(p);
            let total: u64 = list(&self.buffer.dir).iter().map(|f| f.2).sum();
            metrics().buffer_bytes.set(total as i64);
        }
    }

    fn records(&mut self, seq: u64, tenant: &str, streams: Vec<PushStream>) -> Vec<Item> {
        let ack = Ack {
            source: self.idx,
            unit: seq,
            offset: 1,
        };
        let mut items = Vec::new();
        for s in streams {
            let mut ls: Labels = s.labels.clone();
            // Incoming internal labels are not trusted (Alloy drops them too).
            crate::strip_internal(&mut ls);
            for (k, v) in &self.labels {
                ls.set(k, v);
            }
            if !tenant.is_empty() {
                ls.set(TENANT_LABEL, tenant);
            }
            let Some(ls) = (if self.relabel.is_empty() {
                Some(ls)
            } else {
                self.relabel.apply(&ls)
            }) else {
                continue;
            };
            for e in s.entries {
                let rec = Record {
                    labels: ls.clone(),
                    entry: e,
                    extracted: BTreeMap::new(),
                    // Offset 0 = "file not done": only the final ack (offset 1) deletes it.
                    ack: Some(Ack { offset: 0, ..ack }),
                };
                // Re-reading the file (offset 0) produces every entry again.
                self.pipeline.run_line(rec, 0, &mut items);
            }
        }
        // The whole file is acknowledged once, after all its entries, unless a stage holds
        // some of them: then once it let them go.
        if self.pipeline.floor(ack.source, ack.unit).is_some() {
            self.closing.push(ack);
        } else {
            items.push(Item::Ack(ack));
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: &str) -> PushSourceConfig {
        serde_yaml::from_str(&format!(
            "{{max_buffer_size: {max}, use_incoming_timestamp: true}}"
        ))
        .unwrap()
    }

    fn body(n: usize) -> Vec<u8> {
        encode_push_protobuf(&[PushStream {
            labels: Labels::from_pairs([("app", "a")]),
            entries: (0..n)
                .map(|i| Entry {
                    ts: i as i64,
                    line: format!(
                        "line {i} {:032x}{:032x}",
                        fastrand::u128(..),
                        fastrand::u128(..)
                    ),
                    metadata: Labels::new(),
                })
                .collect(),
        }])
    }

    #[test]
    fn buffers_and_drops_oldest_at_cap() {
        let d = tempfile::tempdir().unwrap();
        let b = Buffer::open(d.path().join("b"), &cfg("3000")).unwrap();
        assert_eq!(
            b.accept(&body(5), Some("application/x-protobuf"), None, Some("t1"))
                .unwrap(),
            5
        );
        let (tenant, streams) = read_file(&list(&b.dir)[0].1).unwrap();
        assert_eq!((tenant.as_str(), streams[0].entries.len()), ("t1", 5));
        for _ in 0..10 {
            b.accept(&body(5), Some("application/x-protobuf"), None, None)
                .unwrap();
        }
        let total: u64 = list(&b.dir).iter().map(|f| f.2).sum();
        assert!(total <= 3000, "{total}");
        assert!(list(&b.dir).len() < 11);
        // Garbage is refused with the decoder's status.
        assert!(matches!(
            b.accept(b"junk", Some("application/x-protobuf"), None, None),
            Err(PushReject::Bad(400, _))
        ));
        // A restart continues the sequence.
        let b2 = Buffer::open(d.path().join("b"), &cfg("3000")).unwrap();
        assert!(b2.next_seq.load(Ordering::SeqCst) > list(&b.dir).last().unwrap().0);
    }

    #[test]
    fn raw_lines_are_buffered_with_receive_time() {
        let d = tempfile::tempdir().unwrap();
        let c: PushSourceConfig = serde_yaml::from_str("{labels: {job: raw}}").unwrap();
        let b = Buffer::open(d.path().join("b"), &c).unwrap();
        let before = now_ns();
        let n = b
            .accept_raw(
                b"first\r\n\nsecond\nsecond\n{\"k\": 1}\nno newline \xff",
                Some("t"),
            )
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(b.accept_raw(b"\n\r\n", None).unwrap(), 0);
        let files = list(&b.dir);
        assert_eq!(files.len(), 1);
        let (tenant, streams) = read_file(&files[0].1).unwrap();
        assert_eq!(tenant, "t");
        let e = &streams[0].entries;
        let lines: Vec<&str> = e.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(
            lines,
            [
                "first",
                "second",
                "second",
                "{\"k\": 1}",
                "no newline \u{fffd}"
            ]
        );
        assert!(e[0].ts >= before && e.windows(2).all(|w| w[0].ts < w[1].ts));
        // Without labels every raw line would be dropped as unlabelled: refused instead.
        let c: PushSourceConfig = serde_yaml::from_str("{}").unwrap();
        let b = Buffer::open(d.path().join("c"), &c).unwrap();
        assert!(matches!(
            b.accept_raw(b"x", None),
            Err(PushReject::Bad(400, _))
        ));
    }

    #[test]
    fn a_buffer_file_is_acknowledged_only_after_its_held_lines() {
        let c: PushSourceConfig = serde_yaml::from_str(
            "{labels: {job: p}, stages: [{multiline: {firstline: '^start', max_wait_time: 1h}}]}",
        )
        .unwrap();
        let d = tempfile::tempdir().unwrap();
        let buf = Arc::new(Buffer::open(d.path().join("b"), &c).unwrap());
        let (tx, _rx) = mpsc::channel(1);
        let (_atx, arx) = std_mpsc::channel();
        let mut src = PushSource::new(
            0,
            &c,
            "p".into(),
            buf,
            tx,
            arx,
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap();
        let stream = |lines: &[&str]| PushStream {
            labels: Labels::from_pairs([("app", "a")]),
            entries: lines
                .iter()
                .enumerate()
                .map(|(i, l)| Entry {
                    ts: i as i64,
                    line: l.to_string(),
                    metadata: Labels::new(),
                })
                .collect(),
        };
        let final_acks = |items: &[Item]| -> Vec<u64> {
            items
                .iter()
                .filter_map(|it| match it {
                    Item::Ack(a) if a.offset == 1 => Some(a.unit),
                    Item::Record(r) => r.ack.filter(|a| a.offset == 1).map(|a| a.unit),
                    _ => None,
                })
                .collect()
        };
        // File 1 opens a block that file 2 continues: neither file may be deleted yet.
        let items = src.records(1, "", vec![stream(&["start a", "more"])]);
        assert!(final_acks(&items).is_empty(), "{items:?}");
        let items = src.records(2, "", vec![stream(&["more 2"])]);
        assert!(final_acks(&items).is_empty(), "{items:?}");
        // The next block's first line releases the first block: both files are done.
        let items = src.records(3, "", vec![stream(&["start b"])]);
        let mut rest = Vec::new();
        src.release_closing(&mut rest);
        let mut done = final_acks(&items);
        done.extend(final_acks(&rest));
        done.sort();
        assert_eq!(done, vec![1, 2], "file 3's line is still held");
    }
}
