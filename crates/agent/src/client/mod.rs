//! The Loki push client: batches by size/time, sends protobuf+snappy, retries 429/5xx and
//! connection errors with jittered exponential backoff (honouring `Retry-After`), drops and
//! counts other 4xx, then reports delivered positions back to the sources.

mod http;

pub use crate::net::Endpoint;

use crate::config::ClientConfig;
use crate::error::Error;
use crate::metrics::{count_dropped, metrics};
use crate::{Ack, Item, Record, TENANT_LABEL};
use silt_model::{Entry, Labels};
use silt_proto::{encode_push_protobuf, PushStream};
use std::collections::{HashMap, VecDeque};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

type StreamKey = (Option<String>, Labels);

#[derive(Default)]
struct Batch {
    streams: Vec<(StreamKey, Vec<Entry>)>,
    index: HashMap<StreamKey, usize>,
    /// Stream of the previous entry: consecutive entries usually share it, and comparing
    /// is cheaper than hashing the label set again.
    last: Option<usize>,
    /// Latest offset per (source, unit): acks arrive in order, so the last one wins.
    acks: HashMap<(usize, u64), u64>,
    bytes: u64,
    entries: u64,
    started: Option<Instant>,
    /// Fan-out: number of the last chunk whose items are all in this batch or earlier ones.
    complete: u64,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.entries == 0 && self.acks.is_empty()
    }
}

/// What became of one request.
enum Outcome {
    Sent,
    Dropped,
    /// Shutdown deadline passed while retrying: nothing is acknowledged.
    Abandoned,
}

/// Where a client reports delivery.
pub enum AckSink {
    /// The only endpoint: positions go straight back to the sources.
    Sources(Vec<std_mpsc::Sender<Ack>>),
    /// One of several endpoints: report delivered chunks; the joiner releases positions
    /// once every endpoint has them.
    Joined {
        endpoint: usize,
        joiner: Arc<Joiner>,
    },
}

/// Releases positions of chunks that every endpoint delivered (fan-out to several
/// endpoints: a position must not pass lines one of them has not acknowledged yet).
pub struct Joiner {
    sources: Vec<std_mpsc::Sender<Ack>>,
    state: Mutex<JoinState>,
}

struct JoinState {
    /// Chunk number and its last position per (source, unit), oldest first.
    pending: VecDeque<(u64, Vec<Ack>)>,
    /// Highest chunk delivered, per endpoint.
    delivered: Vec<u64>,
}

impl Joiner {
    pub fn new(sources: Vec<std_mpsc::Sender<Ack>>, endpoints: usize) -> Joiner {
        Joiner {
            sources,
            state: Mutex::new(JoinState {
                pending: VecDeque::new(),
                delivered: vec![0; endpoints],
            }),
        }
    }

    /// Registers chunk `seq` (numbered from 1, in order) before any endpoint sees it.
    pub fn chunk(&self, seq: u64, items: &[Item]) {
        let mut last: Vec<Ack> = Vec::new();
        for it in items {
            let a = match it {
                Item::Ack(a) => *a,
                Item::Record(r) => match r.ack {
                    Some(a) => a,
                    None => continue,
                },
            };
            match last
                .iter_mut()
                .find(|l| l.source == a.source && l.unit == a.unit)
            {
                Some(l) => *l = a,
                None => last.push(a),
            }
        }
        if let Ok(mut st) = self.state.lock() {
            st.pending.push_back((seq, last));
        }
    }

    fn delivered(&self, endpoint: usize, seq: u64) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if let Some(d) = st.delivered.get_mut(endpoint) {
            *d = (*d).max(seq);
        }
        let all = st.delivered.iter().copied().min().unwrap_or(0);
        while st.pending.front().is_some_and(|(s, _)| *s <= all) {
            let Some((_, acks)) = st.pending.pop_front() else {
                break;
            };
            for a in acks {
                if let Some(tx) = self.sources.get(a.source) {
                    let _ = tx.send(a);
                }
            }
        }
    }
}

/// Sends every chunk from the sources to each endpoint's client, numbering chunks for the
/// joiner. A slow endpoint slows reading for all (the files are the buffer), as in Alloy.
pub async fn fan_out(
    mut rx: mpsc::Receiver<Vec<Item>>,
    joiner: Arc<Joiner>,
    outs: Vec<mpsc::Sender<Vec<Item>>>,
) {
    let mut seq = 0;
    while let Some(items) = rx.recv().await {
        seq += 1;
        joiner.chunk(seq, &items);
        let Some((last, rest)) = outs.split_last() else {
            continue;
        };
        for tx in rest {
            let _ = tx.send(items.clone()).await;
        }
        let _ = last.send(items).await;
    }
}

/// The running client.
pub struct Client {
    cfg: ClientConfig,
    http: http::Conn,
    acks: AckSink,
    /// Chunks received so far (fan-out numbering).
    chunks: u64,
    stop: watch::Receiver<bool>,
    drain: Duration,
    deadline: Option<Instant>,
}

impl Client {
    /// Delivered positions are reported to `acks`.
    pub fn new(
        cfg: ClientConfig,
        acks: AckSink,
        stop: watch::Receiver<bool>,
        drain: Duration,
    ) -> crate::Result<Client> {
        let net = cfg.connector()?;
        Ok(Client {
            http: http::Conn::new(net, cfg.timeout, cfg.headers.clone()),
            cfg,
            acks,
            chunks: 0,
            stop,
            drain,
            deadline: None,
        })
    }

    /// Runs until every sender of `rx` is gone, then flushes the last batch.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Vec<Item>>) {
        let mut batch = Batch::default();
        loop {
            let wait = batch
                .started
                .map(|s| self.cfg.batch_wait.saturating_sub(s.elapsed()))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                got = rx.recv() => match got {
                    Some(items) => {
                        for it in items {
                            self.add(&mut batch, it);
                            if batch.bytes >= self.cfg.batch_size && !self.flush(&mut batch).await {
                                return;
                            }
                        }
                        self.chunks += 1;
                        batch.complete = self.chunks;
                    }
                    None => break,
                },
                _ = tokio::time::sleep(wait), if !batch.is_empty() => {
                    if !self.flush(&mut batch).await {
                        return;
                    }
                }
            }
        }
        self.flush(&mut batch).await;
    }

    fn add(&self, b: &mut Batch, it: Item) {
        b.started.get_or_insert_with(Instant::now);
        let rec: Record = match it {
            Item::Ack(a) => {
                b.acks.insert((a.source, a.unit), a.offset);
                return;
            }
            Item::Record(r) => r,
        };
        if let Some(a) = rec.ack {
            b.acks.insert((a.source, a.unit), a.offset);
        }
        let mut labels = rec.labels;
        let tenant = labels
            .remove(TENANT_LABEL)
            .or_else(|| self.cfg.tenant_id.clone())
            .filter(|t| !t.is_empty());
        crate::strip_internal(&mut labels);
        for (k, v) in &self.cfg.external_labels {
            if !labels.contains(k) {
                labels.set(k, v);
            }
        }
        if labels.is_empty() {
            // Loki rejects streams without labels; dropping here keeps the rest of the batch.
            count_dropped("no_labels", 1, rec.entry.line.len() as u64);
            return;
        }
        b.bytes += rec.entry.line.len() as u64;
        b.entries += 1;
        let key = (tenant, labels);
        let i = match b.last.filter(|&i| b.streams[i].0 == key) {
            Some(i) => i,
            None => *b.index.entry(key.clone()).or_insert_with(|| {
                b.streams.push((key, Vec::new()));
                b.streams.len() - 1
            }),
        };
        b.last = Some(i);
        b.streams[i].1.push(rec.entry);
    }

    /// Sends the batch; false when shutdown abandoned it (the client must stop).
    async fn flush(&mut self, b: &mut Batch) -> bool {
        let complete = b.complete;
        let batch = std::mem::replace(
            b,
            Batch {
                complete,
                ..Batch::default()
            },
        );
        let mut by_tenant: HashMap<Option<String>, Vec<PushStream>> = HashMap::new();
        for ((tenant, labels), entries) in batch.streams {
            by_tenant
                .entry(tenant)
                .or_default()
                .push(PushStream { labels, entries });
        }
        for (tenant, streams) in by_tenant {
            let entries: u64 = streams.iter().map(|s| s.entries.len() as u64).sum();
            let bytes: u64 = streams
                .iter()
                .flat_map(|s| &s.entries)
                .map(|e| e.line.len() as u64)
                .sum();
            let body = encode_push_protobuf(&streams);
            match self
                .send_with_retry(tenant.as_deref(), body, entries, bytes)
                .await
            {
                Outcome::Sent => {
                    metrics().sent_entries.inc_by(entries);
                    metrics().sent_bytes.inc_by(bytes);
                }
                Outcome::Dropped => {}
                Outcome::Abandoned => return false,
            }
        }
        match &self.acks {
            AckSink::Sources(txs) => {
                for ((source, unit), offset) in batch.acks {
                    if let Some(tx) = txs.get(source) {
                        let _ = tx.send(Ack {
                            source,
                            unit,
                            offset,
                        });
                    }
                }
            }
            AckSink::Joined { endpoint, joiner } => joiner.delivered(*endpoint, complete),
        }
        true
    }

    async fn send_with_retry(
        &mut self,
        tenant: Option<&str>,
        body: Vec<u8>,
        entries: u64,
        bytes: u64,
    ) -> Outcome {
        let body = bytes::Bytes::from(body);
        let mut attempt: u32 = 0;
        loop {
            let err = match self.http.post(tenant, body.clone()).await {
                Ok(()) => return Outcome::Sent,
                Err(e) => e,
            };
            if !err.is_retryable() {
                tracing::warn!(error = %err, entries, "push rejected, dropping batch");
                count_dropped("ingestion_error", entries, bytes);
                return Outcome::Dropped;
            }
            attempt += 1;
            if self.cfg.max_retries > 0 && attempt > self.cfg.max_retries {
                let reason = match err {
                    Error::PushStatus { status: 429, .. } => "rate_limited",
                    _ => "ingestion_error",
                };
                tracing::warn!(error = %err, entries, attempt, "push retries exhausted, dropping batch");
                count_dropped(reason, entries, bytes);
                return Outcome::Dropped;
            }
            metrics().batch_retries.inc();
            let delay = backoff(
                self.cfg.min_backoff,
                self.cfg.max_backoff,
                attempt,
                retry_after(&err),
            );
            tracing::warn!(error = %err, attempt, delay_ms = delay.as_millis() as u64, "push failed, retrying");
            if *self.stop.borrow() {
                let deadline = *self
                    .deadline
                    .get_or_insert_with(|| Instant::now() + self.drain);
                if Instant::now() + delay > deadline {
                    tracing::warn!(
                        entries,
                        "shutdown: giving up on unsent batch; it is re-read after restart"
                    );
                    return Outcome::Abandoned;
                }
                tokio::time::sleep(delay).await;
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = self.stop.changed() => {}
                }
            }
        }
    }
}

fn retry_after(e: &Error) -> Option<Duration> {
    match e {
        Error::PushStatus {
            retry_after: Some(s),
            ..
        } => Some(Duration::from_secs(*s)),
        _ => None,
    }
}

/// Exponential backoff with jitter in [d/2, d]; a server's `Retry-After` wins when longer.
pub fn backoff(
    min: Duration,
    max: Duration,
    attempt: u32,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = min.saturating_mul(
        1u32.checked_shl(attempt.saturating_sub(1).min(30))
            .unwrap_or(u32::MAX),
    );
    let d = exp.min(max);
    let jittered = d / 2 + d.mul_f64(fastrand::f64() / 2.0);
    match retry_after {
        Some(ra) if ra > jittered => ra.min(Duration::from_secs(3600)),
        _ => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        for attempt in 1..40 {
            let d = backoff(min, max, attempt, None);
            let cap = (min * 2u32.pow((attempt - 1).min(20))).min(max);
            assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d:?}");
        }
        assert_eq!(
            backoff(min, max, 1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert!(backoff(min, max, 5, Some(Duration::from_millis(1))) >= Duration::from_millis(800));
    }

    #[test]
    fn retry_classes() {
        let s = |status| Error::PushStatus {
            status,
            body: String::new(),
            retry_after: None,
        };
        assert!(s(429).is_retryable());
        assert!(s(503).is_retryable());
        assert!(!s(400).is_retryable());
        assert!(!s(413).is_retryable());
        assert!(Error::PushTransport("refused".into()).is_retryable());
    }
}
