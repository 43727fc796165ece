//! The ingest thread: the single writer of the WAL and the active head.
//!
//! Pushes queue up while an fsync is in flight and are committed together (group
//! commit): one write + one fsync for the whole group, then the entries go into the
//! head and every waiter is acknowledged. Because WAL order and head order are the
//! same thread's order, rotating the WAL and freezing the head is one atomic step.

use crate::batch::EncodedBatch;
use crate::codec;
use crate::head::{AppendStats, Head};
use crate::live::LiveHub;
use crate::wal::{self, WalWriter};
use crate::{now_ns, Error, Frozen, Result, State, StoreMetrics};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// Most pushes committed in one group.
const MAX_GROUP: usize = 256;

enum Cmd {
    Append {
        batch: EncodedBatch,
        done: oneshot::Sender<Result<AppendStats>>,
    },
    Rotate {
        done: oneshot::Sender<Result<()>>,
    },
    Stop,
}

/// Sends work to the ingest thread.
pub(crate) struct IngestHandle {
    tx: Mutex<mpsc::Sender<Cmd>>,
}

impl IngestHandle {
    pub(crate) async fn append(&self, batch: EncodedBatch) -> Result<AppendStats> {
        let (done, rx) = oneshot::channel();
        self.send(Cmd::Append { batch, done })?;
        rx.await.map_err(|_| Error::ShuttingDown)?
    }

    pub(crate) async fn rotate(&self) -> Result<()> {
        let (done, rx) = oneshot::channel();
        self.send(Cmd::Rotate { done })?;
        rx.await.map_err(|_| Error::ShuttingDown)?
    }

    pub(crate) fn stop(&self) {
        let _ = self.send(Cmd::Stop);
    }

    fn send(&self, cmd: Cmd) -> Result<()> {
        self.tx.lock().send(cmd).map_err(|_| Error::ShuttingDown)
    }
}

pub(crate) fn start(
    dir: &Path,
    seq: u64,
    fsync: bool,
    active: Arc<Mutex<Head>>,
    state: Arc<RwLock<State>>,
    metrics: Arc<StoreMetrics>,
    live: Arc<LiveHub>,
) -> Result<IngestHandle> {
    let mut wal = WalWriter::create(dir, seq, fsync)?;
    let (tx, rx) = mpsc::channel::<Cmd>();
    std::thread::Builder::new()
        .name("silt-ingest".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(c) => group.push(c),
                        Err(_) => break,
                    }
                }
                let mut appends = Vec::new();
                for cmd in group {
                    match cmd {
                        Cmd::Append { batch, done } => appends.push((batch, done)),
                        Cmd::Rotate { done } => {
                            commit(&mut wal, &mut appends, &active, &metrics, &live);
                            let _ = done.send(rotate(&mut wal, &active, &state));
                        }
                        Cmd::Stop => {
                            commit(&mut wal, &mut appends, &active, &metrics, &live);
                            return;
                        }
                    }
                }
                commit(&mut wal, &mut appends, &active, &metrics, &live);
            }
        })?;
    Ok(IngestHandle { tx: Mutex::new(tx) })
}

type Pending = (EncodedBatch, oneshot::Sender<Result<AppendStats>>);

fn commit(
    wal: &mut WalWriter,
    appends: &mut Vec<Pending>,
    active: &Mutex<Head>,
    metrics: &StoreMetrics,
    live: &LiveHub,
) {
    if appends.is_empty() {
        return;
    }
    let records: Vec<&[u8]> = appends.iter().map(|(b, _)| b.record.as_slice()).collect();
    let t0 = Instant::now();
    let res = wal.append(&records);
    metrics
        .wal_sync_nanos
        .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    metrics.wal_syncs.fetch_add(1, Ordering::Relaxed);
    if res.is_ok() {
        let written: usize = records.iter().map(|r| r.len()).sum();
        metrics
            .wal_bytes
            .fetch_add(written as u64, Ordering::Relaxed);
    }
    if let Err(e) = res {
        metrics.wal_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, "wal write failed, rejecting pushes");
        let msg = e.to_string();
        // Keep the kind so the HTTP layer can tell a full disk from other failures.
        let kind = match &e {
            Error::Io(io) => io.kind(),
            _ => std::io::ErrorKind::Other,
        };
        for (_, done) in appends.drain(..) {
            let _ = done.send(Err(Error::Io(std::io::Error::new(kind, msg.clone()))));
        }
        return;
    }
    let now = now_ns();
    // Copies for live tail sessions, only of tenants someone tails.
    let mut live_copies = Vec::new();
    let mut head = active.lock();
    let mut done_batches = Vec::with_capacity(appends.len());
    for (batch, done) in appends.drain(..) {
        if !live.is_idle() && live.subscribers(&batch.tenant) > 0 {
            if let Ok(decoded) = codec::decode_batch(batch.payload()) {
                live_copies.push(decoded);
            }
        }
        let res = head.append_record(batch.payload(), now);
        if let Ok(stats) = &res {
            metrics
                .entries_appended
                .fetch_add(stats.added as u64, Ordering::Relaxed);
            metrics
                .duplicates
                .fetch_add(stats.duplicates as u64, Ordering::Relaxed);
            metrics
                .bytes_appended
                .fetch_add(batch.bytes as u64, Ordering::Relaxed);
        }
        let _ = done.send(res);
        done_batches.push(batch);
    }
    drop(head);
    let acked = Instant::now();
    for (tenant, streams) in &live_copies {
        live.publish(tenant, streams, acked);
    }
    // Freed after the head lock is released; the pushers are already answered.
    drop(done_batches);
}

fn rotate(wal: &mut WalWriter, active: &Mutex<Head>, state: &RwLock<State>) -> Result<()> {
    let closed = wal.rotate()?;
    // Same lock order as readers (state, then head) so queries see the data in exactly one place.
    let mut st = state.write();
    let old = std::mem::take(&mut *active.lock());
    tracing::debug!(
        raw = old.bytes,
        mem = old.mem,
        frozen = st.frozen.len(),
        "head frozen"
    );
    st.frozen.push(Arc::new(Frozen {
        mem: old.mem,
        head: Mutex::new(old),
        wal_through: closed,
        persisted: Default::default(),
    }));
    Ok(())
}

/// What replay found.
pub(crate) struct Replay {
    pub files: usize,
    pub entries: usize,
    pub next_seq: u64,
}

/// Loads WAL records not yet covered by segments into `head`.
pub(crate) fn replay(
    dir: &Path,
    covered: &HashMap<String, u64>,
    head: &mut Head,
) -> Result<Replay> {
    let seqs = wal::list(dir)?;
    let mut entries = 0;
    let now = now_ns();
    for (i, &seq) in seqs.iter().enumerate() {
        let file = wal::read(dir, seq)?;
        for rec in &file.records {
            let tenant = codec::Reader::new(rec).string()?;
            if covered.get(&tenant).is_some_and(|&c| seq <= c) {
                continue;
            }
            entries += head.append_record(rec, now)?.added;
        }
        if let Some(at) = file.damaged_at {
            if i + 1 == seqs.len() {
                // A torn tail from a crash mid-write: those pushes were never acknowledged.
                tracing::warn!(seq, offset = at, "wal ends in a torn record, truncating");
                wal::truncate(dir, seq, at)?;
            } else {
                tracing::error!(
                    seq,
                    offset = at,
                    "wal file damaged; records after the damage are skipped"
                );
            }
        }
    }
    Ok(Replay {
        files: seqs.len(),
        entries,
        next_seq: seqs.last().map_or(1, |s| s + 1),
    })
}
