//! A lease object in the bucket: at most one holder at a time (the `backend` role, which
//! rewrites segments), without a consensus system. Every change to the lease is a
//! conditional write: taking a free lease creates the object only if it does not exist
//! (S3 `If-None-Match: *`), renewing or taking over writes it only if it is still the
//! version last read (S3 `If-Match: <etag>`). Two contenders cannot both succeed.
//!
//! Expiry uses no shared clock. The holder counts its lease from the moment it *sent* its
//! last successful write and holds it for `ttl - ttl/3` after that; a contender must see
//! the same version unchanged for a full `ttl` of its own time before taking it over. The
//! contender saw the version after it was written, so its wait ends at least `ttl/3` after
//! the holder stopped considering itself the holder (clocks may differ; their rates must
//! not, by much).
//!
//! The local filesystem backend of `object_store` can create conditionally but not update
//! conditionally, so there the compare-and-swap runs under an exclusive file lock.

use crate::{Error, Objects, Result};
use bytes::Bytes;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Object path of the backend lease (outside `tenants/`, so no catalog listing sees it).
pub const BACKEND_LEASE: &str = "cluster/backend.lease";

/// How long a lease lasts and how often its holder renews it.
#[derive(Clone, Copy, Debug)]
pub struct LeaseConfig {
    /// A lease not renewed for this long may be taken over.
    pub ttl: Duration,
    /// Time between renewals (and between attempts to take it).
    pub renew_every: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl: Duration::from_secs(30),
            renew_every: Duration::from_secs(10),
        }
    }
}

/// What the lease object holds (JSON). Times are informative only (see the module doc).
#[derive(Serialize, Deserialize, Debug)]
struct Record {
    holder: String,
    /// Wall-clock milliseconds of the write.
    written_at_ms: i64,
    ttl_ms: u64,
    /// Set when the holder gave the lease up: it may be taken at once.
    #[serde(default)]
    released: bool,
    /// Makes every write's content (hence its S3 ETag, an MD5) distinct.
    seq: u64,
}

/// The version a conditional update must match.
#[derive(Clone, Debug, PartialEq)]
enum Version {
    Object(Option<String>, Option<String>),
    /// Hash of the file's content (local disk).
    Local(u64),
}

/// Compare-and-swap on one object.
enum Cas {
    Object(Arc<dyn ObjectStore>, ObjPath),
    /// The lease file and the lock file serialising changes to it.
    Local(PathBuf, PathBuf),
}

impl Cas {
    async fn read(&self) -> Result<Option<(Bytes, Version)>> {
        match self {
            Cas::Object(store, path) => match store.get_opts(path, Default::default()).await {
                Ok(g) => {
                    let v = Version::Object(g.meta.e_tag.clone(), g.meta.version.clone());
                    Ok(Some((g.bytes().await?, v)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Cas::Local(file, lock) => {
                let (file, lock) = (file.clone(), lock.clone());
                blocking(move || {
                    let _l = lock_file(&lock)?;
                    Ok(read_local(&file)?.map(|d| {
                        let v = Version::Local(xxhash_rust::xxh3::xxh3_64(&d));
                        (Bytes::from(d), v)
                    }))
                })
                .await
            }
        }
    }

    /// Writes `data` if the object is absent (`expected` None) or still at `expected`;
    /// `None` when it was not (someone else wrote first).
    async fn write(&self, data: Vec<u8>, expected: Option<&Version>) -> Result<Option<Version>> {
        match self {
            Cas::Object(store, path) => {
                let mode = match expected {
                    None => PutMode::Create,
                    Some(Version::Object(e_tag, version)) => PutMode::Update(UpdateVersion {
                        e_tag: e_tag.clone(),
                        version: version.clone(),
                    }),
                    Some(Version::Local(_)) => {
                        return Err(Error::Internal("local version on an object store".into()))
                    }
                };
                let opts = PutOptions::from(mode);
                match store.put_opts(path, PutPayload::from(data), opts).await {
                    Ok(r) => Ok(Some(Version::Object(r.e_tag, r.version))),
                    Err(
                        object_store::Error::AlreadyExists { .. }
                        | object_store::Error::Precondition { .. }
                        | object_store::Error::NotFound { .. },
                    ) => Ok(None),
                    Err(e @ object_store::Error::NotImplemented { .. }) => Err(Error::Config(
                        format!("the object store cannot write conditionally, which the backend lease needs: {e}"),
                    )),
                    Err(e) => Err(e.into()),
                }
            }
            Cas::Local(file, lock) => {
                let (file, lock, expected) = (file.clone(), lock.clone(), expected.cloned());
                blocking(move || {
                    let _l = lock_file(&lock)?;
                    let current = read_local(&file)?.map(|d| xxhash_rust::xxh3::xxh3_64(&d));
                    let ok = match (&expected, current) {
                        (None, None) => true,
                        (Some(Version::Local(want)), Some(have)) => *want == have,
                        _ => false,
                    };
                    if !ok {
                        return Ok(None);
                    }
                    let tmp = file.with_extension("lease.tmp");
                    std::fs::write(&tmp, &data)?;
                    std::fs::rename(&tmp, &file)?;
                    Ok(Some(Version::Local(xxhash_rust::xxh3::xxh3_64(&data))))
                })
                .await
            }
        }
    }

    async fn delete(&self) -> Result<()> {
        match self {
            Cas::Object(store, path) => match store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Cas::Local(file, lock) => {
                let (file, lock) = (file.clone(), lock.clone());
                blocking(move || {
                    let _l = lock_file(&lock)?;
                    match std::fs::remove_file(&file) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                        _ => Ok(()),
                    }
                })
                .await
            }
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

fn read_local(file: &std::path::Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(file) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// An exclusive lock held until the file is dropped (released by the OS if the process dies).
fn lock_file(path: &std::path::Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    f.lock()?;
    Ok(f)
}

/// What this process knows of the lease.
#[derive(Default)]
struct Known {
    /// Until when we hold it (we wrote the current version).
    held_until: Option<Instant>,
    /// The version last seen and when it was first seen.
    seen: Option<(Version, Instant)>,
}

/// One process's side of a lease.
pub struct Lease {
    cas: Cas,
    holder: String,
    cfg: LeaseConfig,
    known: Mutex<Known>,
    seq: AtomicU64,
    /// Times this process took the lease (metrics, tests).
    pub acquired: AtomicU64,
}

impl Lease {
    /// The lease at `path` in `objects`, for the holder named `holder` (unique per process).
    pub fn new(objects: &Objects, path: &str, holder: String, cfg: LeaseConfig) -> Lease {
        let cas = match &objects.local_root {
            Some(root) => {
                let file = root.join(path);
                let lock = file.with_extension("lock");
                Cas::Local(file, lock)
            }
            None => Cas::Object(objects.store.clone(), ObjPath::from(path)),
        };
        Lease {
            cas,
            holder,
            cfg,
            known: Mutex::new(Known::default()),
            seq: AtomicU64::new(0),
            acquired: AtomicU64::new(0),
        }
    }

    /// This process's holder id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this process holds the lease now (with time to spare for one write).
    pub fn is_held(&self) -> bool {
        self.known
            .lock()
            .held_until
            .is_some_and(|t| Instant::now() < t)
    }

    /// Fails with a configuration error when the store does not honour conditional writes
    /// (some S3-compatible servers ignore `If-None-Match` / `If-Match`): the lease would then
    /// not exclude anyone.
    pub async fn check_store(&self) -> Result<()> {
        let probe = match &self.cas {
            Cas::Object(store, path) => Cas::Object(
                store.clone(),
                ObjPath::from(format!("{path}.probe-{}", self.holder)),
            ),
            // Our own compare-and-swap: nothing to find out.
            Cas::Local(..) => return Ok(()),
        };
        let unsafe_store = |what: &str| {
            Err(Error::Config(format!(
                "the object store ignores {what} on writes; the backend lease needs conditional writes (S3 If-None-Match / If-Match)"
            )))
        };
        probe.delete().await?;
        let first = probe.write(b"1".to_vec(), None).await?;
        let second = probe.write(b"2".to_vec(), None).await?;
        // Not an ETag any store hands out (in-memory stores count from "0").
        let stale = Version::Object(Some("\"silt-lease-probe-stale\"".into()), None);
        let third = probe.write(b"3".to_vec(), Some(&stale)).await?;
        probe.delete().await?;
        match (first, second, third) {
            (Some(_), None, None) => Ok(()),
            (None, ..) => unsafe_store("a missing object"),
            (_, Some(_), _) => unsafe_store("If-None-Match"),
            (.., Some(_)) => unsafe_store("If-Match"),
        }
    }

    fn record(&self, released: bool) -> Result<Vec<u8>> {
        let now_ms = crate::now_ns() / 1_000_000;
        Ok(serde_json::to_vec(&Record {
            holder: self.holder.clone(),
            written_at_ms: now_ms,
            ttl_ms: self.cfg.ttl.as_millis() as u64,
            released,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        })?)
    }

    /// One round: renews the lease if ours, takes it if free, released, or unchanged for a
    /// whole TTL; returns whether we hold it. An error leaves the lease to expire on our side.
    pub async fn tick(&self) -> Result<bool> {
        let sent = Instant::now();
        let current = match self.cas.read().await {
            Ok(c) => c,
            Err(e) => {
                self.lost();
                return Err(e);
            }
        };
        let (expected, take) = match &current {
            None => (None, true),
            Some((data, v)) => {
                let rec: Option<Record> = serde_json::from_slice(data).ok();
                let ours = rec.as_ref().is_some_and(|r| r.holder == self.holder);
                let released = rec.as_ref().is_some_and(|r| r.released);
                let mut k = self.known.lock();
                let first_seen = match &k.seen {
                    Some((seen, at)) if seen == v => *at,
                    _ => {
                        k.seen = Some((v.clone(), sent));
                        sent
                    }
                };
                let expired = sent.duration_since(first_seen) >= self.cfg.ttl;
                (Some(v.clone()), ours || released || expired)
            }
        };
        if !take {
            self.lost();
            return Ok(false);
        }
        let was_held = self.is_held();
        let data = match self.record(false) {
            Ok(d) => d,
            Err(e) => {
                self.lost();
                return Err(e);
            }
        };
        match self.cas.write(data, expected.as_ref()).await {
            Ok(Some(v)) => {
                let mut k = self.known.lock();
                k.held_until = Some(sent + self.cfg.ttl - self.cfg.ttl / 3);
                k.seen = Some((v, sent));
                drop(k);
                if !was_held {
                    self.acquired.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(holder = %self.holder, "lease taken");
                }
                Ok(true)
            }
            Ok(None) => {
                if was_held {
                    tracing::warn!(holder = %self.holder, "lease lost to another holder");
                }
                self.lost();
                Ok(false)
            }
            Err(e) => {
                self.lost();
                Err(e)
            }
        }
    }

    /// Forget that we hold it (the next [`Lease::tick`] tries again).
    fn lost(&self) {
        self.known.lock().held_until = None;
    }

    /// Gives the lease up (on shutdown) so another holder can take it without waiting.
    pub async fn release(&self) -> Result<()> {
        if !self.is_held() {
            return Ok(());
        }
        let expected = self.known.lock().seen.as_ref().map(|(v, _)| v.clone());
        self.lost();
        if expected.is_some() {
            self.cas
                .write(self.record(true)?, expected.as_ref())
                .await?;
        }
        Ok(())
    }

    /// Renews or tries to take the lease every `renew_every` until the task is aborted.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let lease = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = lease.tick().await {
                    tracing::warn!(holder = %lease.holder, error = %e, "lease round failed");
                }
                tokio::time::sleep(lease.cfg.renew_every).await;
            }
        })
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
