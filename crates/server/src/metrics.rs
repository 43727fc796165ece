//! `/metrics`: Prometheus text exposition of ingest, storage and query figures.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use silt_storage::Store;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Label set `{status}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// HTTP status code.
    pub status: u16,
}

/// Label set `{endpoint}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    /// Route name.
    pub endpoint: &'static str,
}

/// Label set `{reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why entries were discarded.
    pub reason: &'static str,
}

/// Metrics owned by the HTTP layer.
pub struct Metrics {
    registry: Registry,
    /// Rule evaluations, and those that failed.
    pub ruler_evaluations: Counter,
    pub ruler_evaluation_failures: Counter,
    /// Time to evaluate a rule group.
    pub ruler_group_duration: Histogram,
    /// Alerts sent to Alertmanager, and posts that failed.
    pub ruler_alerts_sent: Counter,
    pub ruler_notifications_failed: Counter,
    /// Recording rules' samples: delivered by remote write, refused by the receiver
    /// (4xx), dropped from a full queue; samples queued now (all receivers).
    pub ruler_rw_sent: Counter,
    pub ruler_rw_failed: Counter,
    pub ruler_rw_dropped: Counter,
    pub ruler_rw_queue: Gauge,
    /// Push requests by answer status.
    pub push_requests: Family<StatusLabel, Counter>,
    /// Entries rejected at push, by reason.
    pub discarded_entries: Family<ReasonLabel, Counter>,
    /// Query latency by endpoint.
    pub query_duration: Family<EndpointLabel, Histogram>,
    /// Failed queries by endpoint.
    pub query_errors: Family<EndpointLabel, Counter>,
    /// Open live tail sessions.
    pub tail_sessions: Gauge,
    /// Entries live tail sessions dropped for slow clients.
    pub tail_dropped_entries: Counter,
}

impl Metrics {
    /// Registers every metric, including the storage collector.
    pub fn new(store: Arc<Store>) -> Self {
        let mut registry = Registry::default();
        let push_requests = Family::<StatusLabel, Counter>::default();
        registry.register(
            "silt_push_requests",
            "Push requests by HTTP status",
            push_requests.clone(),
        );
        let discarded_entries = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "silt_discarded_entries",
            "Entries rejected at push, by reason",
            discarded_entries.clone(),
        );
        let query_duration = Family::<EndpointLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 4.0, 9))
        });
        registry.register(
            "silt_query_duration_seconds",
            "Query latency by endpoint",
            query_duration.clone(),
        );
        let query_errors = Family::<EndpointLabel, Counter>::default();
        registry.register(
            "silt_query_errors",
            "Failed queries by endpoint",
            query_errors.clone(),
        );
        let tail_sessions = Gauge::default();
        registry.register(
            "silt_tail_sessions",
            "Open live tail sessions",
            tail_sessions.clone(),
        );
        let tail_dropped_entries = Counter::default();
        registry.register(
            "silt_tail_dropped_entries",
            "Entries live tail sessions dropped because the client read too slowly",
            tail_dropped_entries.clone(),
        );
        let ruler_evaluations = Counter::default();
        registry.register(
            "silt_ruler_evaluations",
            "Rule evaluations",
            ruler_evaluations.clone(),
        );
        let ruler_evaluation_failures = Counter::default();
        registry.register(
            "silt_ruler_evaluation_failures",
            "Rule evaluations that failed (the rule's health is err)",
            ruler_evaluation_failures.clone(),
        );
        let ruler_group_duration = Histogram::new(exponential_buckets(0.001, 4.0, 9));
        registry.register(
            "silt_ruler_group_evaluation_duration_seconds",
            "Time to evaluate a rule group",
            ruler_group_duration.clone(),
        );
        let ruler_alerts_sent = Counter::default();
        registry.register(
            "silt_ruler_alerts_sent",
            "Alerts sent to Alertmanager (firing, resent and resolved)",
            ruler_alerts_sent.clone(),
        );
        let ruler_notifications_failed = Counter::default();
        registry.register(
            "silt_ruler_notifications_failed",
            "Posts to an Alertmanager that failed after retries",
            ruler_notifications_failed.clone(),
        );
        let ruler_rw_sent = Counter::default();
        registry.register(
            "silt_ruler_remote_write_samples_sent",
            "Recording rule samples delivered by remote write",
            ruler_rw_sent.clone(),
        );
        let ruler_rw_failed = Counter::default();
        registry.register(
            "silt_ruler_remote_write_samples_failed",
            "Recording rule samples a remote-write receiver refused (4xx other than 429); dropped",
            ruler_rw_failed.clone(),
        );
        let ruler_rw_dropped = Counter::default();
        registry.register(
            "silt_ruler_remote_write_samples_dropped",
            "Recording rule samples dropped because the remote-write queue was full",
            ruler_rw_dropped.clone(),
        );
        let ruler_rw_queue = Gauge::default();
        registry.register(
            "silt_ruler_remote_write_queue_samples",
            "Recording rule samples waiting to be sent, all receivers",
            ruler_rw_queue.clone(),
        );
        registry.register_collector(Box::new(StoreCollector(store)));
        Metrics {
            ruler_evaluations,
            ruler_evaluation_failures,
            ruler_group_duration,
            ruler_alerts_sent,
            ruler_notifications_failed,
            ruler_rw_sent,
            ruler_rw_failed,
            ruler_rw_dropped,
            ruler_rw_queue,
            registry,
            push_requests,
            discarded_entries,
            query_duration,
            query_errors,
            tail_sessions,
            tail_dropped_entries,
        }
    }

    /// Text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

struct StoreCollector(Arc<Store>);

impl std::fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreCollector")
    }
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for StoreCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0.metrics;
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut enc,
            "silt_ingested_entries",
            "Entries written (after dedup)",
            ld(&m.entries_appended),
        )?;
        counter(
            &mut enc,
            "silt_ingested_bytes",
            "Raw bytes of lines and metadata written",
            ld(&m.bytes_appended),
        )?;
        counter(
            &mut enc,
            "silt_duplicate_entries",
            "Exact duplicate entries dropped",
            ld(&m.duplicates),
        )?;
        counter(
            &mut enc,
            "silt_wal_syncs",
            "WAL group commits (write + fsync)",
            ld(&m.wal_syncs),
        )?;
        let secs = ConstCounter::new(ld(&m.wal_sync_nanos) as f64 / 1e9);
        secs.encode(enc.encode_descriptor(
            "silt_wal_sync_seconds",
            "Time spent in WAL write + fsync",
            None,
            secs.metric_type(),
        )?)?;
        counter(
            &mut enc,
            "silt_wal_errors",
            "WAL write failures",
            ld(&m.wal_errors),
        )?;
        counter(
            &mut enc,
            "silt_segments_written",
            "Segments written",
            ld(&m.segments_written),
        )?;
        counter(
            &mut enc,
            "silt_flush_errors",
            "Failed flushes",
            ld(&m.flush_errors),
        )?;
        gauge(
            &mut enc,
            "silt_head_bytes",
            "Raw bytes in the in-memory head",
            self.0.head_bytes() as i64,
        )?;
        gauge(
            &mut enc,
            "silt_head_streams",
            "Streams in the active in-memory head, all tenants",
            self.0.head_streams() as i64,
        )?;
        gauge(
            &mut enc,
            "silt_head_memory_bytes",
            "Bytes held by the in-memory heads (active and being flushed), capped by storage.max_head_memory",
            self.0.head_memory() as i64,
        )?;
        let (n, size, raw) = self.0.segment_totals();
        gauge(&mut enc, "silt_segments", "Segments in the index", n as i64)?;
        gauge(
            &mut enc,
            "silt_segment_bytes",
            "Bytes of segment objects",
            size as i64,
        )?;
        gauge(
            &mut enc,
            "silt_segment_raw_bytes",
            "Raw bytes held by segments",
            raw as i64,
        )?;
        let objects = self.0.objects();
        let h = &objects.health;
        gauge(
            &mut enc,
            "silt_object_store_up",
            "1 while the last object store request succeeded, 0 while it is failing",
            i64::from(h.failing().is_none()),
        )?;
        counter(
            &mut enc,
            "silt_object_store_requests",
            "Object store requests that succeeded",
            ld(&h.requests),
        )?;
        counter(
            &mut enc,
            "silt_object_store_errors",
            "Object store requests that failed (after client retries)",
            ld(&h.errors),
        )?;
        gauge(
            &mut enc,
            "silt_flush_failing_attempts",
            "Consecutive failed flush attempts (segments waiting in the WAL)",
            ld(&m.flush_failing_attempts) as i64,
        )?;
        gauge(
            &mut enc,
            "silt_wal_bytes",
            "Bytes in the WAL",
            ld(&m.wal_bytes) as i64,
        )?;
        counter(
            &mut enc,
            "silt_segments_expired",
            "Segments deleted or trimmed by retention and delete requests",
            ld(&m.segments_expired),
        )?;
        counter(
            &mut enc,
            "silt_segments_compacted",
            "Segments merged or recompressed away by compaction",
            ld(&m.segments_compacted),
        )?;
        counter(
            &mut enc,
            "silt_maintenance_passes",
            "Completed maintenance passes (retention, deletes, compaction)",
            ld(&m.maintenance_passes),
        )?;
        counter(
            &mut enc,
            "silt_maintenance_errors",
            "Failed maintenance passes (retention, deletes, compaction)",
            ld(&m.maintenance_errors),
        )?;
        counter(
            &mut enc,
            "silt_wal_full_refusals",
            "Pushes refused because the WAL reached storage.wal_max_size",
            ld(&m.wal_full_refusals),
        )?;
        counter(
            &mut enc,
            "silt_head_full_waits",
            "Pushes that waited because the in-memory heads reached storage.max_head_memory",
            ld(&m.head_full_waits),
        )?;
        counter(
            &mut enc,
            "silt_head_full_refusals",
            "Pushes refused (503) because the in-memory heads stayed at storage.max_head_memory",
            ld(&m.head_full_refusals),
        )?;
        gauge(
            &mut enc,
            "silt_cache_bytes",
            "Bytes of segment blocks and small objects in the local cache of a remote object store",
            objects.cache_bytes() as i64,
        )?;
        counter(
            &mut enc,
            "silt_cache_misses",
            "Whole objects (content indexes) fetched from the object store into the cache",
            ld(&objects.cache_misses),
        )?;
        counter(
            &mut enc,
            "silt_object_store_range_requests",
            "Byte-range reads of segments from a remote object store (cache misses)",
            ld(&objects.ranges.requests),
        )?;
        counter(
            &mut enc,
            "silt_object_store_range_bytes",
            "Bytes of segments read by range from a remote object store",
            ld(&objects.ranges.bytes),
        )?;
        counter(
            &mut enc,
            "silt_catalog_refreshes",
            "Listings of the shared bucket that refreshed the catalog (target read and backend)",
            ld(&m.catalog_refreshes),
        )?;
        counter(
            &mut enc,
            "silt_catalog_refresh_errors",
            "Failed listings of the shared bucket",
            ld(&m.catalog_refresh_errors),
        )?;
        if let Some(lease) = self.0.lease() {
            gauge(
                &mut enc,
                "silt_backend_lease_held",
                "1 while this backend holds the bucket's lease (and runs maintenance)",
                lease.is_held() as i64,
            )?;
            counter(
                &mut enc,
                "silt_backend_lease_acquired",
                "Times this backend took the lease",
                ld(&lease.acquired),
            )?;
        }
        Ok(())
    }
}
