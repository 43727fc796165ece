//! The rewrite under compaction, retention and deletes: some segments of a tenant in,
//! the rows a predicate keeps out as one segment. It streams: the inputs are read a few
//! streams at a time (`compaction.read_chunk`) in the output's stream order, merged (exact
//! duplicates dropped) and appended to the writer, so memory holds one chunk of rows plus
//! the compressed output, not the inputs whole. The output goes to a file under
//! [`TMP_DIR`], moved or uploaded in parts, so memory does not grow with the merge.

use crate::chunks::Unpacked;
use crate::encode::{encode_file, Beside, FileOut, MdColumns, SegmentWriter};
use crate::head::Head;
use crate::segment::{stream_order, SegmentMeta, REST_COLUMN};
use crate::{Result, Store};
use silt_model::{Entry, Labels, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Directory under the data dir for rewrite outputs not yet stored (emptied at start-up).
pub(crate) const TMP_DIR: &str = "tmp";

/// A rewritten segment: its sidecar, the local Parquet file, the content index.
pub(crate) struct Rewritten {
    pub meta: SegmentMeta,
    pub file: PathBuf,
    pub content: Option<Vec<u8>>,
}

/// Keeps or drops one row.
type Keep<'a> = &'a (dyn Fn(&Labels, &Entry) -> bool + Send + Sync);

/// One output stream: its labels and where it is in each input.
struct Merged {
    labels: Labels,
    /// (input, stream index in that input).
    parts: Vec<(usize, usize)>,
    bytes: u64,
}

impl Store {
    /// Writes the rows of `olds` that `keep` accepts as segment `id` at zstd `level`;
    /// `None` when no row survives. Blocking: reads and encodes on the calling thread.
    pub(crate) fn rewrite(
        &self,
        tenant: &str,
        id: &str,
        olds: &[Arc<SegmentMeta>],
        keep: Keep<'_>,
        level: i32,
    ) -> Result<Option<Rewritten>> {
        let mut index: HashMap<&[(String, String)], usize> = HashMap::new();
        let mut merged: Vec<Merged> = Vec::new();
        for (i, seg) in olds.iter().enumerate() {
            for (j, s) in seg.streams.iter().enumerate() {
                let k = *index.entry(s.labels.as_slice()).or_insert_with(|| {
                    merged.push(Merged {
                        labels: Labels::from_sorted_unchecked(s.labels.clone()),
                        parts: Vec::new(),
                        bytes: 0,
                    });
                    merged.len() - 1
                });
                merged[k].parts.push((i, j));
                merged[k].bytes += s.bytes;
            }
        }
        merged.sort_by(|a, b| stream_order(&a.labels, &b.labels));

        let dir = self.cfg.data_dir.join(TMP_DIR);
        let written = encode_file(&dir, id, |out| {
            self.write_merged(tenant, id, olds, &merged, keep, level, out)
        })?;
        Ok(written.map(|((meta, content), file)| Rewritten {
            meta,
            file,
            content,
        }))
    }

    /// Writes the merge of `olds` into `out`; `None` when no row survives.
    #[allow(clippy::too_many_arguments)]
    fn write_merged(
        &self,
        tenant: &str,
        id: &str,
        olds: &[Arc<SegmentMeta>],
        merged: &[Merged],
        keep: Keep<'_>,
        level: i32,
        out: FileOut,
    ) -> Result<Option<(Beside, FileOut)>> {
        let md = self.md_columns(olds)?;
        let mut w = SegmentWriter::to(out, md, level, self.cfg.content_index)?;
        let mut start = 0;
        while start < merged.len() {
            let mut end = start + 1;
            let mut raw = merged[start].bytes;
            while end < merged.len() && raw + merged[end].bytes <= self.cfg.compaction.read_chunk {
                raw += merged[end].bytes;
                end += 1;
            }
            self.rewrite_chunk(tenant, olds, &merged[start..end], keep, &mut w)?;
            start = end;
        }
        if w.rows() == 0 {
            return Ok(None);
        }
        let wal_through = olds.iter().map(|s| s.wal_through).max().unwrap_or(0);
        let (mut meta, out, content) = w.close(tenant, id, wal_through)?;
        meta.replaces = olds.iter().map(|s| s.id.clone()).collect();
        meta.writer = olds.first().map(|s| s.writer.clone()).unwrap_or_default();
        Ok(Some(((meta, content), out)))
    }

    /// Reads `chunk`'s streams from every input, merges them and appends them to `w`.
    fn rewrite_chunk(
        &self,
        tenant: &str,
        olds: &[Arc<SegmentMeta>],
        chunk: &[Merged],
        keep: Keep<'_>,
        w: &mut SegmentWriter<impl Write + Send>,
    ) -> Result<()> {
        let mut wanted: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
        for (k, m) in chunk.iter().enumerate() {
            for &(i, j) in &m.parts {
                wanted.entry(i).or_default().push((j, k));
            }
        }
        // Written out right away: not worth compressing its chunks.
        let mut head = Head {
            raw_chunks: true,
            ..Head::default()
        };
        let mut u = Unpacked::default();
        for (i, streams) in wanted {
            let idx: Vec<usize> = streams.iter().map(|(j, _)| *j).collect();
            let all = (Timestamp::MIN, Timestamp::MAX);
            let mut rows =
                self.read_segment(&olds[i], &idx, all, true, None, &Default::default())?;
            let mut batch = Vec::with_capacity(streams.len());
            for (j, k) in streams {
                let labels = &chunk[k].labels;
                let kept: Vec<Entry> = rows
                    .remove(&j)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|e| keep(labels, e))
                    .collect();
                if !kept.is_empty() {
                    batch.push((labels.clone(), kept));
                }
            }
            head.append(tenant, batch, 0);
        }
        let Some(th) = head.tenants.get_mut(tenant) else {
            return Ok(());
        };
        for m in chunk {
            if let Some(s) = th.streams.get_mut(&m.labels) {
                s.sort();
                w.push_stream(s, &mut u)?;
            }
        }
        Ok(())
    }

    /// The metadata columns of a merge of `olds`: the keys of their columns, weighted by
    /// the rows of the segments that have them.
    fn md_columns(&self, olds: &[Arc<SegmentMeta>]) -> Result<MdColumns> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut rest = false;
        for seg in olds {
            let (_, fm) = self.open_segment(seg)?;
            for f in fm.schema().fields() {
                if f.name() == REST_COLUMN {
                    rest = true;
                } else if let Some(k) = f.name().strip_prefix("md.") {
                    *counts.entry(k.to_string()).or_default() += seg.rows;
                }
            }
        }
        let mut md = MdColumns::by_count(counts);
        md.rest |= rest;
        Ok(md)
    }
}
