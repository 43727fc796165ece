//! Silt storage: durable ingest and the data a query reads.
//!
//! Owns the WAL, the in-memory head, immutable Parquet segments, the label/stream
//! index and all object-store I/O. Implements [`silt_query::LogSource`].
//! Must not: parse LogQL or know about HTTP.
//!
//! ```text
//! push ─► ingest thread: WAL append + fsync (group commit) ─► head ─► ack
//!                                   │ rotate (size/age)
//!                                   ▼
//!                         frozen head ─► Parquet segment + index.json ─► object store
//!                                   │ committed
//!                                   ▼
//!                         WAL files covered by the segment deleted
//! ```

pub mod batch;
mod cache;
mod catalog;
mod chunks;
pub mod codec;
pub mod content;
mod count;
mod deletes;
mod encode;
mod error;
pub mod head;
mod ingest;
pub mod lease;
mod lifecycle;
pub mod live;
mod objects;
pub mod ranged;
mod read;
mod rewrite;
pub mod scan;
pub mod segment;
mod shared;
mod unflushed;
mod visit;
pub mod wal;

pub use batch::{BatchEncoder, EncodedBatch};
pub use catalog::{Bounds, Catalog};
pub use deletes::{DeleteFilter, DeleteRequest, DeleteStatus, LineOp};
pub use error::{Error, Result};
pub use head::AppendStats;
pub use lifecycle::{Compaction, PassReport, Retention, StreamRule, TenantRetention};
pub use objects::{Backend, Health, Objects, S3Config, PART_BYTES};
pub use read::{IndexStats, SliceStats, StoreSource};
pub use shared::RefreshReport;
pub use unflushed::Overlay;

use head::Head;
use parking_lot::{Mutex, RwLock};
use scan::FileMeta;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Memory for parsed content indexes: about 4 % of the segment bytes they describe.
const CONTENT_CACHE_BYTES: usize = 32 << 20;

/// Storage settings.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Directory for the WAL, the local object store and the segment cache.
    pub data_dir: PathBuf,
    /// fsync the WAL before acknowledging (disable only for throwaway data).
    pub wal_fsync: bool,
    /// Flush the head into segments once it holds this many raw bytes.
    pub flush_max_bytes: usize,
    /// Flush the head once its oldest unflushed data arrived this long ago.
    pub flush_max_age: Duration,
    /// How often the flush trigger is checked.
    pub flush_check_interval: Duration,
    /// zstd level of segments at rest: compaction rewrites flushed segments at it.
    pub zstd_level: i32,
    /// zstd level of segments written by a flush: fast, so ingest is not held up by
    /// compression (compaction recompresses them at `zstd_level`).
    pub flush_zstd_level: i32,
    /// Write a content index beside each segment (line filters skip blocks by it).
    pub content_index: bool,
    /// Where segments live.
    pub backend: Backend,
    /// Largest size of the local segment cache (remote backends).
    pub cache_max_bytes: u64,
    /// Most concurrent requests towards the object store.
    pub upload_concurrency: usize,
    /// Refuse pushes once the WAL holds this many bytes (0: no cap). The WAL grows when
    /// segments cannot be uploaded; the cap keeps the disk from filling up.
    pub wal_max_bytes: u64,
    /// Most bytes the active and frozen heads may hold together (see [`head::Head::mem`]),
    /// 0: no cap. Above it pushes wait for a flush, then get [`Error::HeadFull`]; the active
    /// head is written out once it holds half of it, so one head can fill while the
    /// previous one is written.
    pub max_head_memory: usize,
    /// How long a push waits for memory before [`Error::HeadFull`].
    pub head_full_wait: Duration,
    /// Longest wait between flush retries after a failure (backoff doubles up to it).
    pub max_retry_backoff: Duration,
    /// Retention rules.
    pub retention: Retention,
    /// Compaction of small segments.
    pub compaction: Compaction,
    /// How long replaced objects stay readable for queries already in flight.
    pub delete_delay: Duration,
    /// Delete requests can be cancelled this long; then they are applied to segments.
    pub delete_cancel_period: Duration,
    /// This writer's id when several write into one bucket (`target: write`): part of its
    /// segment ids and recorded in their sidecars. Empty on a single node.
    pub writer: String,
}

impl StoreConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            wal_fsync: true,
            flush_max_bytes: 64 << 20,
            flush_max_age: Duration::from_secs(15 * 60),
            flush_check_interval: Duration::from_secs(5),
            zstd_level: 15,
            flush_zstd_level: 1,
            content_index: true,
            backend: Backend::Local,
            cache_max_bytes: 10 << 30,
            upload_concurrency: 8,
            wal_max_bytes: 0,
            max_head_memory: 128 << 20,
            head_full_wait: Duration::from_secs(5),
            max_retry_backoff: Duration::from_secs(60),
            retention: Retention::default(),
            compaction: Compaction::default(),
            delete_delay: Duration::from_secs(120),
            delete_cancel_period: Duration::from_secs(24 * 3600),
            writer: String::new(),
        }
    }
}

/// A head that stopped taking writes and is being written out as segments.
pub(crate) struct Frozen {
    head: Mutex<Head>,
    /// Highest WAL file whose records are all in this head (or older ones).
    wal_through: u64,
    /// The head's memory when it was frozen (its arenas no longer grow).
    mem: usize,
    /// Tenants already written out, so a retried flush does not upload them twice.
    persisted: Mutex<HashSet<String>>,
}

/// What queries see: frozen heads and committed segments, swapped atomically.
#[derive(Default)]
pub(crate) struct State {
    frozen: Vec<Arc<Frozen>>,
    catalog: Catalog,
}

/// Counters exported as metrics.
#[derive(Default, Debug)]
pub struct StoreMetrics {
    /// Entries appended (after dedup).
    pub entries_appended: AtomicU64,
    /// Raw bytes appended.
    pub bytes_appended: AtomicU64,
    /// Exact duplicates dropped.
    pub duplicates: AtomicU64,
    /// WAL group commits.
    pub wal_syncs: AtomicU64,
    /// Total time spent writing + fsyncing the WAL, ns.
    pub wal_sync_nanos: AtomicU64,
    /// WAL write failures.
    pub wal_errors: AtomicU64,
    /// Segments written.
    pub segments_written: AtomicU64,
    /// Segment flush failures.
    pub flush_errors: AtomicU64,
    /// Bytes in the WAL directory.
    pub wal_bytes: AtomicU64,
    /// Pushes refused because the WAL reached `wal_max_bytes`.
    pub wal_full_refusals: AtomicU64,
    /// Bytes held by the active and frozen heads (see [`head::Head::mem`]).
    pub head_memory: AtomicU64,
    /// Pushes that waited for the heads to fall under `max_head_memory`.
    pub head_full_waits: AtomicU64,
    /// Pushes refused because the heads stayed at `max_head_memory`.
    pub head_full_refusals: AtomicU64,
    /// Consecutive failed flush attempts (0 when the last one succeeded).
    pub flush_failing_attempts: AtomicU64,
    /// Segments deleted whole or trimmed by retention and delete requests.
    pub segments_expired: AtomicU64,
    /// Segments merged away by compaction.
    pub segments_compacted: AtomicU64,
    /// Failed maintenance passes.
    pub maintenance_errors: AtomicU64,
    /// Completed maintenance passes.
    pub maintenance_passes: AtomicU64,
    /// Catalog refreshes from the bucket (`target: read` and `backend`).
    pub catalog_refreshes: AtomicU64,
    /// Failed catalog refreshes.
    pub catalog_refresh_errors: AtomicU64,
}

/// The storage engine.
pub struct Store {
    cfg: StoreConfig,
    objects: Objects,
    rt: tokio::runtime::Handle,
    ingest: ingest::IngestHandle,
    active: Arc<Mutex<Head>>,
    state: Arc<RwLock<State>>,
    file_meta: Mutex<HashMap<String, FileMeta>>,
    /// Parsed content indexes (see [`content`]).
    content: Mutex<content::Cache>,
    flush_lock: tokio::sync::Mutex<()>,
    flush_wakeup: tokio::sync::Notify,
    /// Signalled whenever a frozen head is dropped (pushes waiting for memory re-check).
    head_freed: tokio::sync::Notify,
    maint_lock: tokio::sync::Mutex<()>,
    /// Replaced objects to delete once no query can still be reading them.
    deferred: Mutex<Vec<(Instant, String)>>,
    /// Delete requests of every tenant, applied at query time until cancelled.
    deletes: RwLock<Vec<Arc<deletes::Compiled>>>,
    /// The backend lease when maintenance must hold it (`target: backend`).
    lease: std::sync::OnceLock<Arc<lease::Lease>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<StoreMetrics>,
    /// Acknowledged entries for live tail sessions.
    pub live: Arc<live::LiveHub>,
    /// Segments flushed lately, for readers (see [`Store::recent_segments`]).
    recent: unflushed::Recent,
}

impl Store {
    /// Opens (or creates) the store: loads the index, replays the WAL, starts the ingest thread.
    pub async fn open(cfg: StoreConfig) -> Result<Arc<Store>> {
        let cache = cfg.data_dir.join("cache");
        let objects = match &cfg.backend {
            Backend::Local => Objects::local(&cfg.data_dir.join("objects"), &cache)?,
            Backend::S3(s3) => {
                Objects::s3(s3, &cache, cfg.cache_max_bytes, cfg.upload_concurrency)?
            }
        };
        Store::open_with(cfg, objects).await
    }

    /// Opens the store on an explicit object backend.
    pub async fn open_with(cfg: StoreConfig, objects: Objects) -> Result<Arc<Store>> {
        let wal_dir = cfg.data_dir.join("wal");
        std::fs::create_dir_all(&wal_dir)?;
        // Rewrites in progress when the process stopped: never committed, so never read.
        let _ = std::fs::remove_dir_all(cfg.data_dir.join(rewrite::TMP_DIR));
        let mut listing = shared::Listing::read(&objects, &HashMap::new()).await?;
        // A writer sharing the bucket keeps only its own segments: their `wal_through` is
        // what its WAL replay may skip.
        listing
            .segments
            .retain(|m| cfg.writer.is_empty() || m.writer == cfg.writer);
        // Segments superseded by a committed rewrite: skip them and finish their deletion.
        let replaced = listing.replaced();
        let mut catalog = Catalog::default();
        let mut leftovers = Vec::new();
        for meta in listing.segments {
            if replaced.contains(&(meta.tenant.clone(), meta.id.clone())) {
                leftovers.extend(meta.object_paths().into_iter().map(|p| (Instant::now(), p)));
            } else {
                catalog.add(meta);
            }
        }
        let delete_reqs = listing.deletes;
        let metrics = Arc::new(StoreMetrics::default());
        metrics
            .wal_bytes
            .store(wal::disk_bytes(&wal_dir)?, Ordering::Relaxed);
        let active = Arc::new(Mutex::new(Head::default()));
        let replay = {
            let covered: HashMap<String, u64> = catalog
                .tenants
                .iter()
                .map(|(t, c)| (t.clone(), c.wal_through))
                .collect();
            let active = active.clone();
            let dir = wal_dir.clone();
            tokio::task::spawn_blocking(move || ingest::replay(&dir, &covered, &mut active.lock()))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??
        };
        if !cfg.writer.is_empty() {
            // A writer serves no reads: its segments were needed for the replay only, and
            // holding every one it ever flushed would grow without bound.
            catalog = Catalog::default();
        }
        tracing::info!(
            segments = catalog.totals().0,
            wal_files = replay.files,
            entries = replay.entries,
            "storage opened"
        );
        let state = Arc::new(RwLock::new(State {
            frozen: Vec::new(),
            catalog,
        }));
        let live = Arc::new(live::LiveHub::default());
        let ingest = ingest::start(
            &wal_dir,
            replay.next_seq,
            cfg.wal_fsync,
            active.clone(),
            state.clone(),
            metrics.clone(),
            live.clone(),
        )?;
        Ok(Arc::new(Store {
            cfg,
            objects,
            rt: tokio::runtime::Handle::current(),
            ingest,
            active,
            state,
            file_meta: Mutex::new(HashMap::new()),
            content: Mutex::new(content::Cache::new(CONTENT_CACHE_BYTES)),
            flush_lock: tokio::sync::Mutex::new(()),
            flush_wakeup: tokio::sync::Notify::new(),
            head_freed: tokio::sync::Notify::new(),
            maint_lock: tokio::sync::Mutex::new(()),
            deferred: Mutex::new(leftovers),
            deletes: RwLock::new(delete_reqs),
            lease: Default::default(),
            metrics,
            live,
            recent: Default::default(),
        }))
    }

    /// Appends a tenant's streams; returns once they are durable in the WAL and visible to queries.
    pub async fn append(
        &self,
        tenant: &str,
        streams: Vec<codec::StreamBatch>,
    ) -> Result<AppendStats> {
        self.append_encoded(batch::encode_streams(tenant, &streams)?)
            .await
    }

    /// Appends a batch encoded by the caller (see [`BatchEncoder`]); returns once it is
    /// durable in the WAL and visible to queries.
    pub async fn append_encoded(&self, batch: EncodedBatch) -> Result<AppendStats> {
        let cap = self.cfg.wal_max_bytes;
        let used = self.metrics.wal_bytes.load(Ordering::Relaxed);
        if cap > 0 && used >= cap {
            self.metrics
                .wal_full_refusals
                .fetch_add(1, Ordering::Relaxed);
            let cause = self
                .objects
                .health
                .failing()
                .unwrap_or_else(|| "flushes are failing or behind".into());
            return Err(Error::WalFull { used, cap, cause });
        }
        self.wait_for_head_memory().await?;
        let stats = self.ingest.append(batch).await?;
        // Wake the flusher as soon as the head is full rather than at its next tick, so a
        // fast ingest cannot grow the head far past `flush_max_bytes` between checks.
        if self.head_due() {
            self.flush_wakeup.notify_one();
        }
        Ok(stats)
    }

    /// Bytes held by the active and frozen heads.
    pub fn head_memory(&self) -> usize {
        let frozen: usize = self.state.read().frozen.iter().map(|f| f.mem).sum();
        let held = frozen + self.active.lock().mem;
        self.metrics
            .head_memory
            .store(held as u64, Ordering::Relaxed);
        held
    }

    /// Whether the active head should be written out for its size.
    fn head_due(&self) -> bool {
        let h = self.active.lock();
        let cap = self.cfg.max_head_memory;
        h.bytes >= self.cfg.flush_max_bytes || (cap > 0 && h.mem >= cap / 2)
    }

    /// Backpressure: while the heads hold `max_head_memory`, a push waits (up to
    /// `head_full_wait`) for a flush to free some, then is refused. Nothing is written
    /// before this returns, so a refused push is not in the WAL and the client retries it.
    async fn wait_for_head_memory(&self) -> Result<()> {
        let cap = self.cfg.max_head_memory;
        if cap == 0 || self.head_memory() < cap {
            return Ok(());
        }
        self.metrics.head_full_waits.fetch_add(1, Ordering::Relaxed);
        // Once, not per re-check: waiting pushes must not defeat the flusher's retry backoff
        // while uploads fail.
        self.flush_wakeup.notify_one();
        let deadline = tokio::time::Instant::now() + self.cfg.head_full_wait;
        loop {
            let freed = self.head_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let held = self.head_memory();
            if held < cap {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                self.metrics
                    .head_full_refusals
                    .fetch_add(1, Ordering::Relaxed);
                let cause = match self.objects.health.failing() {
                    Some(e) => format!("segment uploads are failing: {e}"),
                    None => "ingest is faster than segments are written".into(),
                };
                return Err(Error::HeadFull { held, cap, cause });
            }
            // Also re-check now and then: a frozen head may be freed between checks.
            let _ =
                tokio::time::timeout((deadline - now).min(Duration::from_millis(100)), freed).await;
        }
    }

    /// Streams of `tenant` held in memory (active and frozen heads), and which of `labels`
    /// are not among them: what Loki's active-stream limit counts.
    pub fn active_streams<'a>(
        &self,
        tenant: &str,
        labels: impl Iterator<Item = &'a silt_model::Labels>,
    ) -> (usize, Vec<bool>) {
        let st = self.state.read();
        let active = self.active.lock();
        let frozen: Vec<_> = st.frozen.iter().map(|f| f.head.lock()).collect();
        let heads = || {
            std::iter::once(&*active)
                .chain(frozen.iter().map(|h| &**h))
                .filter_map(|h| h.tenants.get(tenant))
        };
        let count = heads().map(|t| t.streams.len()).max().unwrap_or(0);
        let new = labels
            .map(|l| !heads().any(|t| t.streams.contains_key(l)))
            .collect();
        (count, new)
    }

    /// Streams in the active head, all tenants (Loki's "memory streams").
    pub fn head_streams(&self) -> usize {
        self.active
            .lock()
            .tenants
            .values()
            .map(|t| t.streams.len())
            .sum()
    }

    /// Raw bytes in the active head.
    pub fn head_bytes(&self) -> usize {
        self.active.lock().bytes
    }

    /// Number of segments, their total size and the raw bytes they hold.
    pub fn segment_totals(&self) -> (usize, u64, u64) {
        self.state.read().catalog.totals()
    }

    /// The object store's last error while it is failing.
    pub fn object_store_failing(&self) -> Option<String> {
        self.objects.health.failing()
    }

    /// The object backend (health counters, cache size).
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// Whether the WAL reached its cap (pushes are refused).
    pub fn wal_full(&self) -> bool {
        self.cfg.wal_max_bytes > 0
            && self.metrics.wal_bytes.load(Ordering::Relaxed) >= self.cfg.wal_max_bytes
    }

    /// Runs the flush loop until the process ends. A failed flush is retried with
    /// exponential backoff (from the check interval up to `max_retry_backoff`); the data
    /// stays in the WAL and in memory meanwhile.
    pub fn spawn_background(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut wait = store.cfg.flush_check_interval;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = store.flush_wakeup.notified() => {}
                }
                match store.maybe_flush(start).await {
                    Ok(()) => {
                        wait = store.cfg.flush_check_interval;
                        store
                            .metrics
                            .flush_failing_attempts
                            .store(0, Ordering::Relaxed);
                    }
                    Err(e) => {
                        store.metrics.flush_errors.fetch_add(1, Ordering::Relaxed);
                        let n = store
                            .metrics
                            .flush_failing_attempts
                            .fetch_add(1, Ordering::Relaxed);
                        wait = (store.cfg.flush_check_interval
                            * 2u32.saturating_pow(n.min(16) as u32 + 1))
                        .min(
                            store
                                .cfg
                                .max_retry_backoff
                                .max(store.cfg.flush_check_interval),
                        );
                        tracing::error!(error = %e, retry_in = ?wait, "flush failed, data stays in the WAL");
                    }
                }
            }
        })
    }

    async fn maybe_flush(&self, _start: Instant) -> Result<()> {
        let (bytes, first) = {
            let h = self.active.lock();
            (h.bytes, h.first_append)
        };
        self.head_memory();
        let age_due =
            first.is_some_and(|t| now_ns() - t >= self.cfg.flush_max_age.as_nanos() as i64);
        let pending = !self.state.read().frozen.is_empty();
        if bytes > 0 && (self.head_due() || age_due) || pending {
            self.flush().await?;
        }
        Ok(())
    }

    /// Freezes the head (if it holds data) and writes every frozen head out as segments.
    pub async fn flush(&self) -> Result<()> {
        let _guard = self.flush_lock.lock().await;
        if !self.active.lock().is_empty() {
            self.ingest.rotate().await?;
        }
        loop {
            // A head that filled up while the previous one was written goes next, so
            // segments stay near `flush_max_bytes` and pushes do not wait for a whole cycle.
            if self.head_due() {
                self.ingest.rotate().await?;
            }
            let next = self.state.read().frozen.first().cloned();
            let Some(frozen) = next else { return Ok(()) };
            self.persist(&frozen).await?;
            {
                let mut st = self.state.write();
                st.frozen.retain(|f| !Arc::ptr_eq(f, &frozen));
            }
            let through = frozen.wal_through;
            self.head_memory();
            self.head_freed.notify_waiters();
            // Older frozen heads are all persisted (we go oldest first), so their WAL can go.
            let dir = self.cfg.data_dir.join("wal");
            let bytes = tokio::task::spawn_blocking(move || {
                wal::remove_through(&dir, through)?;
                wal::disk_bytes(&dir)
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
            self.metrics.wal_bytes.store(bytes, Ordering::Relaxed);
        }
    }

    async fn persist(&self, frozen: &Arc<Frozen>) -> Result<()> {
        let tenants: Vec<String> = frozen.head.lock().tenants.keys().cloned().collect();
        for tenant in tenants {
            if frozen.persisted.lock().contains(&tenant) {
                continue;
            }
            let f = frozen.clone();
            let (level, content) = (self.cfg.flush_zstd_level, self.cfg.content_index);
            let id = new_segment_id(&self.cfg.writer);
            let t = tenant.clone();
            let tmp = self.cfg.data_dir.join(rewrite::TMP_DIR);
            let encoded = tokio::task::spawn_blocking(move || {
                let mut head = f.head.lock();
                match head.tenants.get_mut(&t) {
                    Some(th) if th.entries > 0 => segment::encode_file(&tmp, &id, |out| {
                        let (meta, out, content) =
                            segment::encode_into(out, &t, &id, th, f.wal_through, level, content)?;
                        Ok(Some(((meta, content), out)))
                    }),
                    _ => Ok(None),
                }
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
            let Some(((mut meta, content), file)) = encoded else {
                frozen.persisted.lock().insert(tenant);
                continue;
            };
            meta.writer = self.cfg.writer.clone();
            // Data and content index first, then the sidecar: its presence means a
            // complete segment.
            self.objects.put_file(&meta.data_path(), &file).await?;
            if let Some(c) = content {
                self.objects.put(&meta.content_path(), c).await?;
            }
            self.objects
                .put(&meta.index_path(), serde_json::to_vec(&meta)?)
                .await?;
            self.metrics
                .segments_written
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(tenant = %meta.tenant, segment = %meta.id, rows = meta.rows, size = meta.size, "segment written");
            let meta = Arc::new(meta);
            frozen.persisted.lock().insert(tenant);
            self.recent.add(&meta.tenant, &meta.id);
            let mut st = self.state.write();
            if self.cfg.writer.is_empty() {
                st.catalog.add(meta);
            }
            // The frozen head keeps serving this tenant until the whole head is persisted;
            // read-time dedup hides the overlap.
        }
        Ok(())
    }

    /// Stores a delete request; from now on queries no longer return what it matches.
    pub async fn add_delete(&self, req: DeleteRequest) -> Result<()> {
        let compiled = Arc::new(deletes::Compiled::new(req)?);
        self.objects
            .put(&compiled.req.path(), serde_json::to_vec(&compiled.req)?)
            .await?;
        self.deletes.write().push(compiled);
        Ok(())
    }

    /// Delete requests of `tenant`, oldest first.
    pub fn list_deletes(&self, tenant: &str) -> Vec<DeleteRequest> {
        let mut v: Vec<_> = self
            .deletes
            .read()
            .iter()
            .filter(|d| d.req.user_id == tenant)
            .map(|d| d.req.clone())
            .collect();
        v.sort_by_key(|d| d.created_at);
        v
    }

    /// Cancels a request not yet processed: `Ok(None)` if unknown, `Ok(Some(false))` if
    /// it was already applied to segments (too late), `Ok(Some(true))` when cancelled.
    pub async fn cancel_delete(&self, tenant: &str, id: &str) -> Result<Option<bool>> {
        let _guard = self.maint_lock.lock().await;
        let found = self
            .deletes
            .read()
            .iter()
            .find(|d| d.req.user_id == tenant && d.req.request_id == id)
            .cloned();
        let Some(d) = found else { return Ok(None) };
        if d.req.status != DeleteStatus::Received {
            return Ok(Some(false));
        }
        self.objects.delete(&d.req.path()).await?;
        self.deletes.write().retain(|x| !Arc::ptr_eq(x, &d));
        Ok(Some(true))
    }

    /// Delete requests of `tenant` (for the read path).
    pub(crate) fn tenant_deletes(&self, tenant: &str) -> Vec<Arc<deletes::Compiled>> {
        self.deletes
            .read()
            .iter()
            .filter(|d| d.req.user_id == tenant)
            .cloned()
            .collect()
    }

    /// Stops the ingest thread without flushing (unflushed data stays in the WAL).
    pub fn shutdown_ingest_only(&self) {
        self.ingest.stop();
    }

    /// Flushes what is pending and stops the ingest thread.
    pub async fn shutdown(&self) -> Result<()> {
        let r = self.flush().await;
        self.ingest.stop();
        r
    }
}

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A new segment id: creation time first (ids sort by age), then the writer's id if any
/// (writers sharing a bucket never collide), then a salt.
pub(crate) fn new_segment_id(writer: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let salt = xxhash_rust::xxh3::xxh3_64(
        &[
            now_ns().to_le_bytes(),
            (std::process::id() as i64).to_le_bytes(),
            (n as i64).to_le_bytes(),
        ]
        .concat(),
    );
    if writer.is_empty() {
        format!("{:019}-{:016x}", now_ns(), salt)
    } else {
        format!("{:019}-{writer}-{:016x}", now_ns(), salt)
    }
}
