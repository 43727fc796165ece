//! Live fan-out of acknowledged entries to tail sessions.
//!
//! The ingest thread publishes every committed push here once it is in the WAL and
//! the head. Each subscriber names a tenant and stream matchers; matching streams go
//! into its bounded queue without blocking. A full queue drops the entries and
//! remembers their labels and timestamps (up to [`MAX_DROPPED`]) so the session can
//! report them, as Loki's `dropped_entries` does. With no subscriber, publishing is
//! one atomic load.

use crate::codec::StreamBatch;
use parking_lot::{Mutex, RwLock};
use silt_model::{Entry, LabelMatcher, Labels, Timestamp};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Most dropped entries remembered between two reports (Loki keeps 1000).
pub const MAX_DROPPED: usize = 1000;

/// Entries of one stream from one acknowledged push.
#[derive(Debug)]
pub struct LiveStream {
    /// Indexed labels of the stream.
    pub labels: Arc<Labels>,
    /// Entries in push order.
    pub entries: Vec<Entry>,
    /// When the push was acknowledged.
    pub acked: Instant,
}

/// An entry a subscriber lost: its stream labels and timestamp.
pub type Dropped = (Arc<Labels>, Timestamp);

struct Subscriber {
    id: u64,
    tenant: String,
    matchers: Vec<LabelMatcher>,
    tx: mpsc::Sender<Arc<LiveStream>>,
    dropped: Mutex<Vec<Dropped>>,
}

/// Registry of live subscribers, owned by the store.
#[derive(Default)]
pub struct LiveHub {
    subs: RwLock<Vec<Arc<Subscriber>>>,
    count: AtomicUsize,
    next_id: AtomicU64,
}

impl LiveHub {
    /// Whether anyone listens; checked before building anything to publish.
    pub(crate) fn is_idle(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }

    /// Subscribes to `tenant`'s streams matching all `matchers`; `capacity` pushes
    /// (per stream) may queue before entries are dropped.
    pub fn subscribe(
        self: &Arc<Self>,
        tenant: &str,
        matchers: Vec<LabelMatcher>,
        capacity: usize,
    ) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let sub = Arc::new(Subscriber {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            tenant: tenant.to_string(),
            matchers,
            tx,
            dropped: Mutex::new(Vec::new()),
        });
        let mut subs = self.subs.write();
        subs.push(sub.clone());
        self.count.store(subs.len(), Ordering::Relaxed);
        Subscription {
            rx,
            sub,
            hub: self.clone(),
        }
    }

    /// Subscribers of `tenant`.
    pub fn subscribers(&self, tenant: &str) -> usize {
        self.subs
            .read()
            .iter()
            .filter(|s| s.tenant == tenant)
            .count()
    }

    /// Hands a committed push to every matching subscriber, never blocking.
    pub(crate) fn publish(&self, tenant: &str, streams: &[StreamBatch], acked: Instant) {
        let subs = self.subs.read();
        let mut shared: Vec<Option<Arc<LiveStream>>> = vec![None; streams.len()];
        for sub in subs.iter().filter(|s| s.tenant == tenant) {
            for (i, (labels, entries)) in streams.iter().enumerate() {
                if entries.is_empty() || !sub.matchers.iter().all(|m| m.matches_labels(labels)) {
                    continue;
                }
                // Built once per stream, shared by every subscriber it matches.
                let live = shared[i].get_or_insert_with(|| {
                    Arc::new(LiveStream {
                        labels: Arc::new(labels.clone()),
                        entries: entries.clone(),
                        acked,
                    })
                });
                match sub.tx.try_send(live.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(l)) => {
                        let mut d = sub.dropped.lock();
                        for e in &l.entries {
                            if d.len() >= MAX_DROPPED {
                                break;
                            }
                            d.push((l.labels.clone(), e.ts));
                        }
                    }
                    // The session is going away; its Drop unregisters it.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
    }

    fn remove(&self, id: u64) {
        let mut subs = self.subs.write();
        subs.retain(|s| s.id != id);
        self.count.store(subs.len(), Ordering::Relaxed);
    }
}

/// One subscriber's end: entries arrive in ack order; dropping it unsubscribes.
pub struct Subscription {
    rx: mpsc::Receiver<Arc<LiveStream>>,
    sub: Arc<Subscriber>,
    hub: Arc<LiveHub>,
}

impl Subscription {
    /// The next matching stream batch; `None` once the store shut down.
    pub async fn recv(&mut self) -> Option<Arc<LiveStream>> {
        self.rx.recv().await
    }

    /// Entries dropped because this subscriber's queue was full, since the last call.
    pub fn take_dropped(&self) -> Vec<Dropped> {
        std::mem::take(&mut *self.sub.dropped.lock())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.sub.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(app: &str, n: i64) -> StreamBatch {
        let labels = Labels::from_pairs([("app", app)]);
        let entries = (0..n)
            .map(|ts| Entry {
                ts,
                line: format!("line {ts}"),
                metadata: Labels::new(),
            })
            .collect();
        (labels, entries)
    }

    #[tokio::test]
    async fn routes_by_tenant_and_matchers_and_reports_drops() {
        let hub = Arc::new(LiveHub::default());
        assert!(hub.is_idle());
        let m = vec![LabelMatcher::new("app", silt_model::MatchOp::Eq, "a").unwrap()];
        let mut sub = hub.subscribe("t1", m, 1);
        assert!(!hub.is_idle());
        assert_eq!(hub.subscribers("t1"), 1);
        let now = Instant::now();
        hub.publish("t2", &[batch("a", 1)], now);
        hub.publish("t1", &[batch("b", 1), batch("a", 2)], now);
        // Queue of one: this push is dropped and remembered.
        hub.publish("t1", &[batch("a", 3)], now);
        let got = sub.recv().await.unwrap();
        assert_eq!(got.labels.get("app"), Some("a"));
        assert_eq!(got.entries.len(), 2);
        let dropped = sub.take_dropped();
        assert_eq!(dropped.iter().map(|d| d.1).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(sub.take_dropped().is_empty());
        drop(sub);
        assert!(hub.is_idle());
    }
}
