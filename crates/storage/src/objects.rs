//! Object I/O: every segment and index object goes through `object_store`.
//!
//! Queries read segments by page through the Parquet page index: on the local-filesystem
//! backend from the object itself, on a remote one by byte range into a size-bounded LRU
//! cache directory ([`crate::ranged`]; small objects such as content indexes are cached
//! whole).
//! Every request towards the backend takes a permit (`max_concurrency`) and records
//! whether it succeeded, which is what `/ready` and the metrics report.

use crate::cache::CacheIndex;
use crate::ranged::RangeStats;
use crate::{Error, Result};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};
use parking_lot::{Condvar, Mutex};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Part size of multipart uploads (S3's minimum is 5 MiB).
pub const PART_BYTES: usize = 8 << 20;

/// Where segment and index objects live.
#[derive(Clone, Debug, Default)]
pub enum Backend {
    /// `<data_dir>/objects` on the local disk.
    #[default]
    Local,
    /// An S3-compatible bucket.
    S3(S3Config),
}

/// S3 (or S3-compatible: MinIO, Garage, Ceph, moto…) settings.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Region (S3-compatible servers usually accept any).
    pub region: String,
    /// Endpoint URL for non-AWS servers, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// Key prefix inside the bucket (several clusters can share one bucket).
    pub prefix: String,
    /// Path-style URLs (`endpoint/bucket/key`), needed by most S3-compatible servers.
    pub path_style: bool,
    /// Static credentials; when unset the usual `AWS_*` variables, web identity or
    /// instance metadata are used.
    pub access_key_id: Option<String>,
    /// Secret for `access_key_id`.
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials.
    pub session_token: Option<String>,
    /// Time one request may take before it is abandoned and retried.
    pub request_timeout: Duration,
    /// Retries of one request inside the client (with backoff) before the operation fails.
    pub max_retries: usize,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            region: "us-east-1".into(),
            endpoint: None,
            prefix: String::new(),
            path_style: false,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
        }
    }
}

/// Health of the object store as seen by the last requests.
#[derive(Debug)]
pub struct Health {
    ok: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Requests that succeeded.
    pub requests: AtomicU64,
    /// Requests that failed (after the client's own retries).
    pub errors: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            ok: AtomicBool::new(true),
            last_error: Mutex::new(None),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }
}

impl Health {
    /// `None` while the last request succeeded, else its error.
    pub fn failing(&self) -> Option<String> {
        if self.ok.load(Ordering::Relaxed) {
            None
        } else {
            self.last_error.lock().clone()
        }
    }

    pub(crate) fn record<T>(&self, r: &std::result::Result<T, object_store::Error>) {
        match r {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {
                self.requests.fetch_add(1, Ordering::Relaxed);
                self.ok.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock() = Some(e.to_string());
                self.ok.store(false, Ordering::Relaxed);
            }
        }
    }
}

/// Where objects live.
#[derive(Clone)]
pub struct Objects {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// Root directory when the backend is the local filesystem.
    pub(crate) local_root: Option<PathBuf>,
    pub(crate) cache_dir: PathBuf,
    cache_max_bytes: u64,
    pub(crate) cache: Arc<Mutex<CacheIndex>>,
    /// Signalled when a fetch into the cache ends.
    pub(crate) fetched: Arc<Condvar>,
    permits: Arc<Semaphore>,
    /// What the last requests said about the backend.
    pub health: Arc<Health>,
    /// Whole objects fetched into the cache (misses).
    pub cache_misses: Arc<AtomicU64>,
    /// Byte ranges fetched (segment pages, footers).
    pub ranges: Arc<RangeStats>,
}

impl Objects {
    /// Local-filesystem backend rooted at `root` (created if missing).
    pub fn local(root: &Path, cache_dir: &Path) -> Result<Objects> {
        std::fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let store = LocalFileSystem::new_with_prefix(&root).map_err(Error::from)?;
        let mut o = Objects::remote(Arc::new(store), cache_dir, 0, 64);
        o.local_root = Some(root);
        Ok(o)
    }

    /// An S3 bucket; segments are cached under `cache_dir` (at most `cache_max_bytes`).
    pub fn s3(
        cfg: &S3Config,
        cache_dir: &Path,
        cache_max_bytes: u64,
        max_concurrency: usize,
    ) -> Result<Objects> {
        if cfg.bucket.is_empty() {
            return Err(Error::Config("s3: bucket must be set".into()));
        }
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_virtual_hosted_style_request(!cfg.path_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: cfg.max_retries,
                retry_timeout: cfg.request_timeout * (cfg.max_retries as u32 + 1),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(cfg.request_timeout)
                    .with_connect_timeout(cfg.request_timeout.min(Duration::from_secs(5)))
                    .with_allow_http(
                        cfg.endpoint
                            .as_deref()
                            .is_some_and(|e| e.starts_with("http://")),
                    ),
            );
        if let Some(e) = &cfg.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &cfg.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &cfg.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        if let Some(t) = &cfg.session_token {
            b = b.with_token(t);
        }
        let s3 = b.build().map_err(|e| Error::Config(format!("s3: {e}")))?;
        let store: Arc<dyn ObjectStore> = if cfg.prefix.trim_matches('/').is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, cfg.prefix.trim_matches('/')))
        };
        Ok(Objects::remote(
            store,
            cache_dir,
            cache_max_bytes,
            max_concurrency,
        ))
    }

    /// Any `object_store` backend; segments are cached under `cache_dir` for reading.
    pub fn remote(
        store: Arc<dyn ObjectStore>,
        cache_dir: &Path,
        cache_max_bytes: u64,
        max_concurrency: usize,
    ) -> Objects {
        let o = Objects {
            store,
            local_root: None,
            cache_dir: cache_dir.to_path_buf(),
            cache_max_bytes,
            cache: Arc::default(),
            fetched: Arc::default(),
            permits: Arc::new(Semaphore::new(max_concurrency.max(1))),
            health: Arc::default(),
            cache_misses: Arc::default(),
            ranges: Arc::default(),
        };
        o.scan_cache();
        o
    }

    /// Whether objects are on the local disk (no cache, no network).
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// Registers files left in the cache by a previous run (older than any used since).
    fn scan_cache(&self) {
        let mut stack = vec![self.cache_dir.clone()];
        let blocks = self.cache_dir.join("blocks");
        let mut idx = self.cache.lock();
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                let is_block = || {
                    p.starts_with(&blocks)
                        && p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.parse::<u64>().is_ok())
                };
                match e.metadata() {
                    Ok(m) if m.is_dir() => stack.push(p),
                    Ok(m) if p.extension().is_some_and(|x| x == "parquet") || is_block() => {
                        idx.adopt(p, m.len());
                    }
                    // Leftover temporaries of a crashed fetch.
                    _ => {
                        let _ = std::fs::remove_file(&p);
                    }
                }
            }
        }
    }

    pub(crate) async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.permits
            .acquire()
            .await
            .map_err(|_| Error::Internal("object store closed".into()))
    }

    /// Writes an object (atomically: readers see all of it or nothing).
    pub async fn put(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let _p = self.permit().await?;
        let r = self
            .store
            .put(&ObjPath::from(path), PutPayload::from(data))
            .await;
        self.health.record(&r);
        r?;
        Ok(())
    }

    /// Writes an object from the local file `file`, which it consumes (also when the write
    /// fails, so failed attempts leave nothing behind): moved into place on the local disk,
    /// uploaded in parts of [`PART_BYTES`] elsewhere (atomically as [`Objects::put`]), so
    /// the object is never held in memory whole.
    pub async fn put_file(&self, path: &str, file: &Path) -> Result<()> {
        let r = self.store_file(path, file).await;
        let _ = std::fs::remove_file(file);
        r
    }

    async fn store_file(&self, path: &str, file: &Path) -> Result<()> {
        if let Some(root) = &self.local_root {
            let dest = root.join(path);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if std::fs::rename(file, &dest).is_err() {
                // Another filesystem: copy (the caller drops the original).
                std::fs::copy(file, &dest)?;
            }
            return Ok(());
        }
        let size = std::fs::metadata(file)?.len();
        if size <= PART_BYTES as u64 {
            let data = tokio::fs::read(file).await?;
            return self.put(path, data).await;
        }
        let _p = self.permit().await?;
        let r = self.upload_parts(path, file).await;
        self.health.record(&r);
        Ok(r?)
    }

    async fn upload_parts(&self, path: &str, file: &Path) -> object_store::Result<()> {
        use tokio::io::AsyncReadExt;
        let upload = self.store.put_multipart(&ObjPath::from(path)).await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let io = |e: std::io::Error| object_store::Error::Generic {
            store: "local file",
            source: Box::new(e),
        };
        let sent = async {
            let mut f = tokio::fs::File::open(file).await.map_err(io)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).await.map_err(io)?;
                if n == 0 {
                    return Ok(());
                }
                // At most two parts in flight: memory stays at a few parts.
                w.wait_for_capacity(2).await?;
                w.write(&buf[..n]);
            }
        }
        .await;
        match sent {
            Ok(()) => w.finish().await.map(|_| ()),
            Err(e) => {
                let _ = w.abort().await;
                Err(e)
            }
        }
    }

    /// Reads a whole object.
    pub async fn get(&self, path: &str) -> Result<Bytes> {
        let _p = self.permit().await?;
        let r = match self.store.get(&ObjPath::from(path)).await {
            Ok(g) => g.bytes().await,
            Err(e) => Err(e),
        };
        self.health.record(&r);
        Ok(r?)
    }

    /// Reads an object, `None` when it does not exist.
    pub async fn get_opt(&self, path: &str) -> Result<Option<Bytes>> {
        match self.get(path).await {
            Ok(b) => Ok(Some(b)),
            Err(Error::ObjectStore(object_store::Error::NotFound { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes an object (missing is fine).
    pub async fn delete(&self, path: &str) -> Result<()> {
        let _p = self.permit().await?;
        let r = self.store.delete(&ObjPath::from(path)).await;
        self.health.record(&r);
        match r {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.evict_path(path);
        Ok(())
    }

    /// Paths of all objects under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let _p = self.permit().await?;
        let prefix = ObjPath::from(prefix);
        let r: std::result::Result<Vec<_>, _> = self.store.list(Some(&prefix)).try_collect().await;
        self.health.record(&r);
        Ok(r?.into_iter().map(|m| m.location.to_string()).collect())
    }

    /// A local file holding the object, fetching it into the cache when the backend is remote.
    /// Must be called outside the async runtime's worker threads (it blocks on the fetch).
    pub fn local_file(&self, path: &str, rt: &tokio::runtime::Handle) -> Result<PathBuf> {
        if let Some(root) = &self.local_root {
            return Ok(root.join(path));
        }
        let cached = self.cache_dir.join(path);
        if self.cache.lock().touch(&cached) {
            return Ok(cached);
        }
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
        let data = rt.block_on(self.get(path))?;
        self.cache_file(cached.clone(), &data)?;
        Ok(cached)
    }

    /// Stores `data` as the cache file `cached` and evicts least recently used files past
    /// the cache's bound (an open reader keeps its unlinked file).
    pub(crate) fn cache_file(&self, cached: PathBuf, data: &[u8]) -> Result<()> {
        if let Some(parent) = cached.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Write then rename so a concurrent reader never sees a partial file; the name is
        // unique so two threads fetching the same object do not write into one file.
        static FETCHES: AtomicU64 = AtomicU64::new(0);
        let n = FETCHES.fetch_add(1, Ordering::Relaxed);
        let mut tmp = cached.clone().into_os_string();
        tmp.push(format!(".tmp{}-{n}", std::process::id()));
        std::fs::write(&tmp, data)?;
        std::fs::rename(&tmp, &cached)?;
        let victims = self
            .cache
            .lock()
            .insert(cached, data.len() as u64, self.cache_max_bytes);
        for v in victims {
            let _ = std::fs::remove_file(&v);
        }
        Ok(())
    }

    /// Bytes held in the local cache.
    pub fn cache_bytes(&self) -> u64 {
        self.cache.lock().total()
    }

    /// Drops a cached copy (e.g. evicted under a reader that had not opened it yet).
    pub(crate) fn evict_path(&self, path: &str) {
        if self.local_root.is_some() {
            return;
        }
        let p = self.cache_dir.join(path);
        let blocks = self.cache_dir.join("blocks").join(path);
        let mut idx = self.cache.lock();
        if idx.remove(&p).is_some() {
            let _ = std::fs::remove_file(&p);
        }
        idx.remove_under(&blocks);
        let _ = std::fs::remove_dir_all(&blocks);
    }
}
