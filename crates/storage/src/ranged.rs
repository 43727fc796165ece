//! Segments on a remote backend, read by byte range.
//!
//! A query needs a segment's footer and page index, then the pages of the columns and
//! rows it decodes: a few percent of the object for a narrow query. Those bytes are
//! fetched as fixed-size, aligned blocks into the local cache (`blocks/<object path>/<n>`),
//! so a later query over the same pages reads the disk, and a cold one downloads what it
//! decodes plus at most a block's slack at each end of a run.

use crate::objects::Objects;
use crate::{Error, Result};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::ObjectStoreExt;
use parquet::file::reader::{ChunkReader, Length};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Size of a cached block: pages are ~0.1–1 MB compressed, so a block rarely holds much
/// that was not asked for, and a run of them is one request.
pub const BLOCK: u64 = 256 << 10;

/// Blocks fetched by one request at most, so a long run is fetched in parallel.
const RUN_BLOCKS: u64 = 32;

/// Requests in flight for one prefetch.
const PREFETCH_CONCURRENCY: usize = 8;

/// A segment's Parquet file: the object itself on the local backend, or its blocks
/// fetched on demand on a remote one.
pub enum SegmentFile {
    /// Local filesystem backend.
    Local(File),
    /// Remote backend.
    Remote(Arc<RemoteObject>),
}

/// A remote object read through the block cache.
pub struct RemoteObject {
    objects: Objects,
    path: String,
    len: u64,
    rt: tokio::runtime::Handle,
}

impl SegmentFile {
    /// Another handle on the same file.
    pub fn try_clone(&self) -> Result<SegmentFile> {
        Ok(match self {
            SegmentFile::Local(f) => SegmentFile::Local(f.try_clone()?),
            SegmentFile::Remote(o) => SegmentFile::Remote(o.clone()),
        })
    }

    /// Fetches, in parallel, the blocks holding `ranges` that the cache lacks: the pages a
    /// reader is about to ask for one by one. A no-op on the local backend.
    pub fn prefetch(&self, ranges: &[Range<u64>]) -> Result<()> {
        match self {
            SegmentFile::Local(_) => Ok(()),
            SegmentFile::Remote(o) => o.ensure(ranges),
        }
    }
}

impl Objects {
    /// `path` (an object of `len` bytes) for reading by range: opened directly on the local
    /// backend, through the block cache on a remote one. Fetches nothing yet.
    pub fn segment_file(
        &self,
        path: &str,
        len: u64,
        rt: &tokio::runtime::Handle,
    ) -> Result<SegmentFile> {
        if let Some(root) = &self.local_root {
            return Ok(SegmentFile::Local(File::open(root.join(path))?));
        }
        let len = if len > 0 {
            len
        } else {
            rt.block_on(self.head_size(path))?
        };
        Ok(SegmentFile::Remote(Arc::new(RemoteObject {
            objects: self.clone(),
            path: path.to_string(),
            len,
            rt: rt.clone(),
        })))
    }

    fn block_path(&self, path: &str, block: u64) -> PathBuf {
        self.cache_dir
            .join("blocks")
            .join(path)
            .join(block.to_string())
    }
}

impl RemoteObject {
    fn blocks(&self, r: &Range<u64>) -> Range<u64> {
        let end = r.end.min(self.len);
        if end <= r.start {
            return 0..0;
        }
        r.start / BLOCK..end.div_ceil(BLOCK)
    }

    /// Makes sure every block of `ranges` is in the cache, as far as it can hold them:
    /// fetches the missing ones, and waits for those another reader is fetching.
    fn ensure(&self, ranges: &[Range<u64>]) -> Result<()> {
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        {
            let mut idx = self.objects.cache.lock();
            for r in ranges {
                for b in self.blocks(r) {
                    let path = self.objects.block_path(&self.path, b);
                    if idx.touch(&path) {
                        continue;
                    }
                    if idx.fetching.insert(path.clone()) {
                        mine.push(b);
                    } else {
                        theirs.push(path);
                    }
                }
            }
        }
        mine.sort_unstable();
        mine.dedup();
        let mut runs: Vec<Range<u64>> = Vec::new();
        for &b in &mine {
            match runs.last_mut() {
                Some(r) if r.end == b && r.end - r.start < RUN_BLOCKS => r.end += 1,
                _ => runs.push(b..b + 1),
            }
        }
        let fetch = futures::stream::iter(runs)
            .map(|run| self.fetch_run(run))
            .buffer_unordered(PREFETCH_CONCURRENCY)
            .try_collect::<Vec<()>>();
        let fetched = if mine.is_empty() {
            Ok(Vec::new())
        } else {
            self.rt.block_on(fetch)
        };
        let mut idx = self.objects.cache.lock();
        for b in mine {
            idx.fetching.remove(&self.objects.block_path(&self.path, b));
        }
        self.objects.fetched.notify_all();
        // A block another reader failed to fetch is simply missing: read() goes around.
        for path in theirs {
            while idx.fetching.contains(&path) {
                self.objects.fetched.wait(&mut idx);
            }
        }
        fetched.map(drop)
    }

    /// Downloads blocks `run` with one request and stores each in the cache.
    async fn fetch_run(&self, run: Range<u64>) -> Result<()> {
        let bytes = run.start * BLOCK..(run.end * BLOCK).min(self.len);
        let data = self.objects.get_range(&self.path, bytes.clone()).await?;
        if data.len() as u64 != bytes.end - bytes.start {
            return Err(Error::Internal(format!(
                "{}: asked for bytes {bytes:?}, got {}",
                self.path,
                data.len()
            )));
        }
        for b in run.clone() {
            let at = ((b - run.start) * BLOCK) as usize;
            let end = (at + BLOCK as usize).min(data.len());
            self.objects
                .cache_file(self.objects.block_path(&self.path, b), &data[at..end])?;
        }
        Ok(())
    }

    /// `len` bytes from `start`, from the cache (fetching what is missing).
    fn read(&self, start: u64, len: usize) -> Result<Bytes> {
        let range = start..start + len as u64;
        if range.end > self.len {
            return Err(Error::Internal(format!(
                "{}: read past the end ({range:?} of {} bytes)",
                self.path, self.len
            )));
        }
        let mut out = vec![0u8; len];
        self.ensure(std::slice::from_ref(&range))?;
        match self.copy_out(&range, &mut out) {
            Ok(()) => Ok(out.into()),
            // Evicted before it was read (a cache smaller than what one read needs).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(self
                .rt
                .block_on(self.objects.get_range(&self.path, range))?),
            Err(e) => Err(e.into()),
        }
    }

    fn copy_out(&self, range: &Range<u64>, out: &mut [u8]) -> std::io::Result<()> {
        for b in self.blocks(range) {
            let path = self.objects.block_path(&self.path, b);
            let file = File::open(&path).inspect_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    self.objects.cache.lock().remove(&path);
                }
            })?;
            let from = range.start.max(b * BLOCK);
            let to = range.end.min((b + 1) * BLOCK);
            let dst = &mut out[(from - range.start) as usize..(to - range.start) as usize];
            file.read_exact_at(dst, from - b * BLOCK)?;
        }
        Ok(())
    }
}

impl Length for SegmentFile {
    fn len(&self) -> u64 {
        match self {
            SegmentFile::Local(f) => f.len(),
            SegmentFile::Remote(o) => o.len,
        }
    }
}

impl ChunkReader for SegmentFile {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        match self {
            SegmentFile::Local(f) => {
                let mut f = f.try_clone()?;
                f.seek(SeekFrom::Start(start))?;
                Ok(Box::new(BufReader::new(f)))
            }
            SegmentFile::Remote(o) => Ok(Box::new(BufReader::with_capacity(
                64 << 10,
                BlockReader {
                    obj: o.clone(),
                    pos: start,
                },
            ))),
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        match self {
            SegmentFile::Local(f) => f.get_bytes(start, length),
            SegmentFile::Remote(o) => o
                .read(start, length)
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e))),
        }
    }
}

/// Sequential reads of a remote object, a block at a time (page headers, the footer).
struct BlockReader {
    obj: Arc<RemoteObject>,
    pos: u64,
}

impl Read for BlockReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let block_end = (self.pos / BLOCK + 1) * BLOCK;
        let n =
            (buf.len() as u64).min(block_end.min(self.obj.len).saturating_sub(self.pos)) as usize;
        if n == 0 {
            return Ok(0);
        }
        let data = self.obj.read(self.pos, n).map_err(std::io::Error::other)?;
        buf[..n].copy_from_slice(&data);
        self.pos += n as u64;
        Ok(n)
    }
}

/// Bytes of objects fetched by range, for `/metrics` and the benchmark.
#[derive(Default)]
pub struct RangeStats {
    /// Range requests sent.
    pub requests: AtomicU64,
    /// Bytes they returned.
    pub bytes: AtomicU64,
}

impl Objects {
    /// One range of an object.
    pub async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        let _p = self.permit().await?;
        let r = self
            .store
            .get_range(&ObjPath::from(path), range.clone())
            .await;
        self.health.record(&r);
        let data = r?;
        self.ranges.requests.fetch_add(1, Ordering::Relaxed);
        self.ranges
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data)
    }

    async fn head_size(&self, path: &str) -> Result<u64> {
        let _p = self.permit().await?;
        let r = self.store.head(&ObjPath::from(path)).await;
        self.health.record(&r);
        Ok(r?.size)
    }
}
