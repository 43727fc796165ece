//! One bucket shared by several processes (issue #13): readers and the backend keep their
//! catalog in step with the bucket by listing it, and the backend's maintenance runs only
//! while it holds the lease ([`crate::lease`]).
//!
//! A refresh lists `tenants/`, reads the sidecars it does not know yet, drops segments
//! whose sidecar is gone or which a listed sidecar `replaces`, and reloads the delete
//! requests. Queries in flight keep the segments they planned with: replaced objects are
//! deleted only `delete_delay` after the rewrite that replaced them.

use crate::lease::Lease;
use crate::segment::SegmentMeta;
use crate::{deletes, Catalog, DeleteRequest, Error, Objects, Result, Store};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a refresh changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RefreshReport {
    /// Segments new to the catalog.
    pub added: usize,
    /// Segments gone from it (deleted or replaced).
    pub removed: usize,
}

/// What the bucket holds under `tenants/`: committed segments and delete requests.
pub(crate) struct Listing {
    pub(crate) segments: Vec<Arc<SegmentMeta>>,
    pub(crate) deletes: Vec<Arc<deletes::Compiled>>,
}

impl Listing {
    /// Lists the bucket; sidecars of segments in `known` are not read again, and a sidecar
    /// listed but gone by the time it is read (removed by a rewrite meanwhile) is skipped.
    pub(crate) async fn read(
        objects: &Objects,
        known: &HashMap<(String, String), Arc<SegmentMeta>>,
    ) -> Result<Listing> {
        let mut l = Listing {
            segments: Vec::new(),
            deletes: Vec::new(),
        };
        for path in objects.list("tenants").await? {
            if path.contains("/deletes/") && path.ends_with(".json") {
                if let Some(data) = objects.get_opt(&path).await? {
                    let req: DeleteRequest = serde_json::from_slice(&data)?;
                    l.deletes.push(Arc::new(deletes::Compiled::new(req)?));
                }
                continue;
            }
            let Some((tenant, id)) = sidecar_key(&path) else {
                continue;
            };
            if let Some(m) = known.get(&(tenant.to_string(), id.to_string())) {
                l.segments.push(m.clone());
            } else if let Some(data) = objects.get_opt(&path).await? {
                l.segments
                    .push(Arc::new(serde_json::from_slice::<SegmentMeta>(&data)?));
            }
        }
        Ok(l)
    }

    /// (tenant, id) of the segments a listed segment replaces (a committed rewrite).
    pub(crate) fn replaced(&self) -> HashSet<(String, String)> {
        self.segments
            .iter()
            .flat_map(|m| m.replaces.iter().map(|r| (m.tenant.clone(), r.clone())))
            .collect()
    }
}

/// (tenant, id) of a sidecar path `tenants/<t>/segments/<id>.index.json`.
fn sidecar_key(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("tenants/")?;
    let (tenant, file) = rest.split_once("/segments/")?;
    Some((tenant, file.strip_suffix(".index.json")?))
}

impl Store {
    /// Makes maintenance depend on `lease`: a pass runs only while it is held, and each
    /// commit of a rewrite or deletion checks it again.
    pub fn set_lease(&self, lease: Arc<Lease>) {
        // Leftovers found at start-up may still be read by readers' queries: they wait
        // `delete_delay` like the objects of any rewrite.
        let due = Instant::now() + self.cfg.delete_delay;
        for (t, _) in self.deferred.lock().iter_mut() {
            *t = (*t).max(due);
        }
        let _ = self.lease.set(lease);
    }

    /// The lease maintenance depends on, if any.
    pub fn lease(&self) -> Option<&Arc<Lease>> {
        self.lease.get()
    }

    /// Err when maintenance depends on a lease this process no longer holds.
    pub(crate) fn check_lease(&self) -> Result<()> {
        match self.lease.get() {
            Some(l) if !l.is_held() => Err(Error::LeaseLost),
            _ => Ok(()),
        }
    }

    /// Brings the catalog and the delete requests in line with the bucket.
    pub async fn refresh_catalog(&self) -> Result<RefreshReport> {
        let _guard = self.maint_lock.lock().await;
        let r = self.refresh_locked().await;
        let m = &self.metrics;
        match &r {
            Ok(_) => m.catalog_refreshes.fetch_add(1, Ordering::Relaxed),
            Err(_) => m.catalog_refresh_errors.fetch_add(1, Ordering::Relaxed),
        };
        r
    }

    /// [`Store::refresh_catalog`] with the maintenance lock already held (rewrites change
    /// the catalog under it too).
    pub(crate) async fn refresh_locked(&self) -> Result<RefreshReport> {
        let known: HashMap<(String, String), Arc<SegmentMeta>> = {
            let st = self.state.read();
            st.catalog
                .tenants
                .values()
                .flat_map(|t| t.segments.iter())
                .map(|m| (key(m), m.clone()))
                .collect()
        };
        let listing = Listing::read(&self.objects, &known).await?;
        let replaced = listing.replaced();
        let is_replaced = |m: &SegmentMeta| replaced.contains(&key(m));
        if self.lease.get().is_some() {
            // The lease holder finishes deletions a previous holder left undone.
            self.queue_leftovers(listing.segments.iter().filter(|m| is_replaced(m)));
        }
        let keep: Vec<_> = listing
            .segments
            .into_iter()
            .filter(|m| !is_replaced(m))
            .collect();
        let kept: HashSet<(&str, &str)> = keep
            .iter()
            .map(|m| (m.tenant.as_str(), m.id.as_str()))
            .collect();
        let gone: Vec<&Arc<SegmentMeta>> = known
            .values()
            .filter(|m| !kept.contains(&(m.tenant.as_str(), m.id.as_str())))
            .collect();
        let report = RefreshReport {
            added: keep.iter().filter(|m| !known.contains_key(&key(m))).count(),
            removed: gone.len(),
        };
        if report != RefreshReport::default() {
            let mut catalog = Catalog::default();
            for m in keep {
                catalog.add(m);
            }
            let mut st = self.state.write();
            // WAL coverage is this process's own bookkeeping, not the bucket's.
            for (t, c) in &st.catalog.tenants {
                if let Some(n) = catalog.tenants.get_mut(t) {
                    n.wal_through = n.wal_through.max(c.wal_through);
                }
            }
            st.catalog = catalog;
        }
        for m in gone {
            for p in m.object_paths() {
                self.file_meta.lock().remove(&p);
                self.content.lock().remove(&p);
            }
        }
        *self.deletes.write() = listing.deletes;
        if report != RefreshReport::default() {
            tracing::info!(
                added = report.added,
                removed = report.removed,
                "catalog refreshed"
            );
        }
        Ok(report)
    }

    /// Queues for deletion the objects of replaced segments not queued yet.
    fn queue_leftovers<'a>(&self, replaced: impl Iterator<Item = &'a Arc<SegmentMeta>>) {
        let due = Instant::now() + self.cfg.delete_delay;
        let mut deferred = self.deferred.lock();
        let queued: HashSet<String> = deferred.iter().map(|(_, p)| p.clone()).collect();
        for m in replaced {
            if !queued.contains(&m.index_path()) {
                deferred.extend(m.object_paths().into_iter().map(|p| (due, p)));
            }
        }
    }

    /// Refreshes the catalog every `interval` until the task is aborted.
    pub fn spawn_refresh(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if let Err(e) = store.refresh_catalog().await {
                    tracing::warn!(error = %e, "catalog refresh failed, will retry");
                }
            }
        })
    }
}

fn key(m: &SegmentMeta) -> (String, String) {
    (m.tenant.clone(), m.id.clone())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sidecar_paths_name_tenant_and_id() {
        assert_eq!(
            super::sidecar_key("tenants/t-1/segments/0001-w0-ab.index.json"),
            Some(("t-1", "0001-w0-ab"))
        );
        assert_eq!(
            super::sidecar_key("tenants/t-1/segments/0001.parquet"),
            None
        );
        assert_eq!(super::sidecar_key("tenants/t-1/deletes/x.json"), None);
    }
}
