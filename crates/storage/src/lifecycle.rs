//! Data lifecycle: retention and compaction, both built on one crash-safe rewrite.
//!
//! A rewrite reads some segments of a tenant, keeps the rows a predicate accepts, and
//! commits the result as one new segment whose sidecar lists the ids it `replaces`:
//!
//! 1. put the new Parquet object, 2. put its sidecar (the commit point),
//! 3. swap the catalog in memory, 4. after `delete_delay` (queries in flight may still
//!    read the old objects) delete the old sidecars, then the old data.
//!
//! A crash before 2 leaves an unreferenced Parquet object and the old segments intact;
//! after 2, start-up skips (and deletes) every segment some sidecar replaces. So no entry
//! is ever lost or served twice. Segments whose every row is dropped are deleted outright
//! (sidecar first), which is safe at any point since their data is meant to go.

use crate::deletes::DeleteStatus;
use crate::segment::SegmentMeta;
use crate::{now_ns, Error, Result, Store};
use silt_model::{Entry, LabelMatcher, Labels, Timestamp};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One `retention_stream` rule: streams matching `matchers` are kept for `period`.
#[derive(Clone, Debug)]
pub struct StreamRule {
    /// Stream selector.
    pub matchers: Vec<LabelMatcher>,
    /// Highest priority among matching rules wins.
    pub priority: u32,
    /// Retention (zero keeps forever).
    pub period: Duration,
}

/// A tenant's retention overrides; `None` inherits the global setting.
#[derive(Clone, Debug, Default)]
pub struct TenantRetention {
    /// Overrides the global `retention_period`.
    pub period: Option<Duration>,
    /// Replaces the global `retention_stream` rules.
    pub streams: Option<Vec<StreamRule>>,
}

/// Retention settings (Loki's resolution order).
#[derive(Clone, Debug, Default)]
pub struct Retention {
    /// Apply retention at all.
    pub enabled: bool,
    /// Global `retention_period` (zero keeps forever).
    pub period: Duration,
    /// Global `retention_stream` rules.
    pub streams: Vec<StreamRule>,
    /// Per-tenant overrides.
    pub tenants: HashMap<String, TenantRetention>,
}

impl Retention {
    /// How long a stream is kept; `None` is forever. Tenant rules (if the tenant has any,
    /// the global ones are ignored), highest priority first, ties to the shorter period;
    /// then the tenant's period; then the global period.
    pub fn period(&self, tenant: &str, labels: &Labels) -> Option<Duration> {
        let t = self.tenants.get(tenant);
        let rules = t.and_then(|t| t.streams.as_ref()).unwrap_or(&self.streams);
        let best = rules
            .iter()
            .filter(|r| r.matchers.iter().all(|m| m.matches_labels(labels)))
            .max_by(|a, b| a.priority.cmp(&b.priority).then(b.period.cmp(&a.period)));
        let p = match best {
            Some(r) => r.period,
            None => t.and_then(|t| t.period).unwrap_or(self.period),
        };
        (!p.is_zero()).then_some(p)
    }
}

/// Compaction settings.
#[derive(Clone, Debug)]
pub struct Compaction {
    /// Merge small segments at all.
    pub enabled: bool,
    /// Segments at least this large are left alone; merged outputs stop growing near it.
    pub target_size: u64,
    /// Most raw bytes one merge rewrites (bounds its time and its temporary file; its
    /// memory is bounded by `read_chunk`).
    pub max_merge_raw: u64,
    /// Raw bytes of rows a rewrite reads from its inputs at once (whole streams; one
    /// larger stream is read alone).
    pub read_chunk: u64,
}

impl Default for Compaction {
    fn default() -> Self {
        Compaction {
            enabled: true,
            target_size: 128 << 20,
            max_merge_raw: 512 << 20,
            read_chunk: 8 << 20,
        }
    }
}

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    /// Segments deleted whole (retention).
    pub segments_deleted: usize,
    /// Segments rewritten without their expired rows.
    pub segments_trimmed: usize,
    /// Segments merged by compaction.
    pub segments_merged: usize,
    /// Segments produced.
    pub segments_written: usize,
    /// Old objects physically deleted.
    pub objects_deleted: usize,
}

/// Keeps or drops one row.
type Keep = Arc<dyn Fn(&Labels, &Entry) -> bool + Send + Sync>;

/// Nanoseconds per day (compaction groups segments by the UTC day of their first entry).
const DAY_NS: i64 = 86_400_000_000_000;

/// Crash-test hook: the process aborts at the step named by `SILT_FAILPOINT`.
fn failpoint(name: &str) {
    if std::env::var("SILT_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("silt: failpoint {name} reached, aborting");
        std::process::abort();
    }
}

impl Store {
    /// One maintenance pass: retention, then compaction, then due physical deletions.
    pub async fn run_maintenance(self: &Arc<Self>) -> Result<PassReport> {
        let _guard = self.maint_lock.lock().await;
        let mut report = PassReport::default();
        if let Some(lease) = self.lease.get() {
            // Only the lease holder rewrites, and it starts from what the bucket holds now
            // (writers add segments; a previous holder may have compacted).
            if !lease.is_held() {
                return Ok(report);
            }
            self.refresh_locked().await?;
        }
        if self.cfg.retention.enabled {
            self.apply_retention(now_ns(), &mut report).await?;
        }
        self.apply_deletes(now_ns(), &mut report).await?;
        if self.cfg.compaction.enabled {
            self.compact(&mut report).await?;
        }
        report.objects_deleted += self.delete_due(false).await?;
        let m = &self.metrics;
        m.segments_expired.fetch_add(
            (report.segments_deleted + report.segments_trimmed) as u64,
            Ordering::Relaxed,
        );
        m.segments_compacted
            .fetch_add(report.segments_merged as u64, Ordering::Relaxed);
        m.maintenance_passes.fetch_add(1, Ordering::Relaxed);
        Ok(report)
    }

    /// Deletes or trims every segment holding rows past their stream's retention at `now`.
    async fn apply_retention(
        self: &Arc<Self>,
        now: Timestamp,
        report: &mut PassReport,
    ) -> Result<()> {
        let segments = self.all_segments();
        for seg in segments {
            let cutoffs: Vec<Option<Timestamp>> = seg
                .streams
                .iter()
                .map(|s| {
                    let labels = Labels::from_sorted_unchecked(s.labels.clone());
                    self.cfg
                        .retention
                        .period(&seg.tenant, &labels)
                        .map(|p| now - p.as_nanos() as i64)
                })
                .collect();
            let expired = |i: usize| cutoffs[i].is_some_and(|c| seg.streams[i].max_ts < c);
            let partly = |i: usize| cutoffs[i].is_some_and(|c| seg.streams[i].min_ts < c);
            let n = seg.streams.len();
            if (0..n).all(expired) {
                self.replace(&seg.tenant, std::slice::from_ref(&seg), None)
                    .await?;
                report.segments_deleted += 1;
            } else if (0..n).any(partly) {
                let by_labels: HashMap<Vec<(String, String)>, Option<Timestamp>> = seg
                    .streams
                    .iter()
                    .zip(&cutoffs)
                    .map(|(s, c)| (s.labels.clone(), *c))
                    .collect();
                let keep = move |l: &Labels, e: &Entry| match by_labels.get(l.as_slice()) {
                    Some(Some(c)) => e.ts >= *c,
                    _ => true,
                };
                self.replace(
                    &seg.tenant,
                    std::slice::from_ref(&seg),
                    Some(Arc::new(keep)),
                )
                .await?;
                report.segments_trimmed += 1;
                report.segments_written += 1;
            }
        }
        Ok(())
    }

    /// Rewrites segments without the rows of delete requests past their cancel period.
    async fn apply_deletes(
        self: &Arc<Self>,
        now: Timestamp,
        report: &mut PassReport,
    ) -> Result<()> {
        let due: Vec<_> = self
            .deletes
            .read()
            .iter()
            .filter(|d| {
                d.req.status == DeleteStatus::Received
                    && d.req.created_at + self.cfg.delete_cancel_period.as_nanos() as i64 <= now
            })
            .cloned()
            .collect();
        for d in due {
            for seg in self.all_segments() {
                if seg.tenant != d.req.user_id {
                    continue;
                }
                let hit = seg.streams.iter().any(|s| {
                    let labels = Labels::from_sorted_unchecked(s.labels.clone());
                    d.touches(&labels, s.min_ts, s.max_ts)
                });
                if !hit {
                    continue;
                }
                let d2 = d.clone();
                let keep =
                    move |l: &Labels, e: &Entry| !(d2.touches(l, e.ts, e.ts) && d2.deletes(e));
                self.replace(
                    &seg.tenant,
                    std::slice::from_ref(&seg),
                    Some(Arc::new(keep)),
                )
                .await?;
                report.segments_trimmed += 1;
            }
            let mut req = d.req.clone();
            req.status = DeleteStatus::Processed;
            self.check_lease()?;
            self.objects
                .put(&req.path(), serde_json::to_vec(&req)?)
                .await?;
            let compiled = Arc::new(crate::deletes::Compiled::new(req)?);
            let mut all = self.deletes.write();
            for x in all.iter_mut() {
                if Arc::ptr_eq(x, &d) {
                    *x = compiled.clone();
                }
            }
        }
        Ok(())
    }

    /// Merges small segments of the same tenant, day and writer into segments near `target_size`,
    /// and rewrites segments flushed at a lower zstd level than `zstd_level`.
    async fn compact(self: &Arc<Self>, report: &mut PassReport) -> Result<()> {
        let target = self.cfg.compaction.target_size;
        let max_raw = self.cfg.compaction.max_merge_raw.max(1);
        let level = self.cfg.zstd_level;
        // Flushes write a faster level than segments at rest.
        let recompress = |s: &SegmentMeta| s.zstd_level != 0 && s.zstd_level < level;
        // One writer's segments per group: a writer's WAL replay trusts the `wal_through` of
        // its own segments, which a merge across writers would mix up.
        let mut groups: HashMap<(String, i64, String), Vec<Arc<SegmentMeta>>> = HashMap::new();
        for seg in self.all_segments() {
            if seg.size < target / 2 || recompress(&seg) {
                let day = seg.min_ts.div_euclid(DAY_NS);
                groups
                    .entry((seg.tenant.clone(), day, seg.writer.clone()))
                    .or_default()
                    .push(seg);
            }
        }
        let mut keys: Vec<_> = groups.keys().cloned().collect();
        keys.sort();
        for key in keys {
            // Batches of small segments (oldest first) up to the target size.
            let mut batches = vec![Vec::new()];
            let (mut size, mut raw) = (0, 0);
            for seg in &groups[&key] {
                let cur = batches.last_mut().expect("never empty");
                if !cur.is_empty() && (size + seg.size > target || raw + seg.raw_bytes > max_raw) {
                    batches.push(Vec::new());
                    (size, raw) = (0, 0);
                }
                size += seg.size;
                raw += seg.raw_bytes;
                batches.last_mut().expect("never empty").push(seg.clone());
            }
            for batch in batches
                .into_iter()
                .filter(|b| b.len() > 1 || b.iter().any(|s| recompress(s)))
            {
                self.replace(&key.0, &batch, Some(Arc::new(|_, _| true)))
                    .await?;
                report.segments_merged += batch.len();
                report.segments_written += 1;
            }
        }
        Ok(())
    }

    /// Committed segments, oldest first.
    fn all_segments(&self) -> Vec<Arc<SegmentMeta>> {
        let st = self.state.read();
        let mut v: Vec<_> = st
            .catalog
            .tenants
            .values()
            .flat_map(|t| t.segments.iter().cloned())
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Replaces `olds` by one segment of the rows `keep` accepts (`None`: drop them all).
    pub(crate) async fn replace(
        self: &Arc<Self>,
        tenant: &str,
        olds: &[Arc<SegmentMeta>],
        keep: Option<Keep>,
    ) -> Result<()> {
        let mut new = None;
        if let Some(keep) = keep {
            let (store, t, olds2) = (self.clone(), tenant.to_string(), olds.to_vec());
            // Rows keep their writer (compaction merges one writer's segments only).
            let writer = olds.first().map(|s| s.writer.clone()).unwrap_or_default();
            let id = crate::new_segment_id(&writer);
            let level = self.cfg.zstd_level;
            let enc =
                tokio::task::spawn_blocking(move || store.rewrite(&t, &id, &olds2, &*keep, level))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))??;
            if let Some(enc) = enc {
                let meta = &enc.meta;
                self.objects.put_file(&meta.data_path(), &enc.file).await?;
                failpoint("rewrite-after-data");
                if let Some(c) = enc.content {
                    self.objects.put(&meta.content_path(), c).await?;
                }
                // The commit point: never by a process that lost the lease.
                self.check_lease()?;
                self.objects
                    .put(&meta.index_path(), serde_json::to_vec(&meta)?)
                    .await?;
                failpoint("rewrite-after-index");
                let meta = enc.meta;
                self.metrics
                    .segments_written
                    .fetch_add(1, Ordering::Relaxed);
                new = Some(Arc::new(meta));
            }
        }
        if new.is_none() {
            // Nothing survives: remove the sidecars now so a restart cannot resurrect them.
            self.check_lease()?;
            for seg in olds {
                self.objects.delete(&seg.index_path()).await?;
            }
        }
        {
            let mut st = self.state.write();
            let ids: Vec<&str> = olds.iter().map(|s| s.id.as_str()).collect();
            st.catalog.remove(tenant, &ids);
            if let Some(meta) = new {
                st.catalog.add(meta);
            }
        }
        failpoint("rewrite-after-swap");
        let due = Instant::now() + self.cfg.delete_delay;
        let mut deferred = self.deferred.lock();
        for seg in olds {
            deferred.extend(seg.object_paths().into_iter().map(|p| (due, p)));
        }
        Ok(())
    }

    /// Deletes the objects whose delay has passed (all of them with `all`); returns how many.
    pub(crate) async fn delete_due(&self, all: bool) -> Result<usize> {
        let now = Instant::now();
        let due: Vec<String> = {
            let mut d = self.deferred.lock();
            let (due, keep): (Vec<_>, Vec<_>) = d.drain(..).partition(|(t, _)| all || *t <= now);
            *d = keep;
            due.into_iter().map(|(_, p)| p).collect()
        };
        // Queued sidecar first, then its data, so a crash never leaves a sidecar pointing
        // at deleted data.
        let mut n = 0;
        for (i, path) in due.iter().enumerate() {
            let deleted = match self.check_lease() {
                Ok(()) => self.objects.delete(path).await,
                Err(e) => Err(e),
            };
            if let Err(e) = deleted {
                // Back at the front: the queue order is the safe deletion order.
                let mut d = self.deferred.lock();
                let rest: Vec<_> = due[i..].iter().map(|p| (now, p.clone())).collect();
                d.splice(0..0, rest);
                return Err(e);
            }
            self.file_meta.lock().remove(path);
            self.content.lock().remove(path);
            n += 1;
            failpoint("delete-after-first");
        }
        Ok(n)
    }

    /// Runs maintenance every `interval` until the process ends.
    pub fn spawn_maintenance(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                match store.run_maintenance().await {
                    Ok(r) if r != PassReport::default() => {
                        tracing::info!(report = ?r, "maintenance pass")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        store
                            .metrics
                            .maintenance_errors
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "maintenance pass failed, will retry")
                    }
                }
            }
        })
    }
}
