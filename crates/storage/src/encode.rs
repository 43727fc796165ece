//! Writing segments: a [`SegmentWriter`] takes sorted streams one at a time, so a flush
//! encodes a frozen head in place and a compaction streams its inputs through it without
//! holding them whole.

use crate::chunks::{recycle, Unpacked};
use crate::head::{HeadStream, TenantHead};
use crate::segment::{
    split_ts, stream_order, SegmentMeta, SegmentStream, FORMAT_VERSION, REST_COLUMN, TS_NANOS,
    TS_SECONDS,
};
use crate::{Error, Result};
use arrow_array::builder::{Int32Builder, Int64Builder, StringBuilder, UInt32Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use silt_model::Timestamp;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Rows per Arrow batch when writing and reading.
pub(crate) const BATCH_ROWS: usize = 8192;
/// Encoded bytes per page (Parquet's default is 1 MiB): a query decodes whole pages, and
/// one stream's rows, or one content index block, fill only part of a page that large,
/// the rest belonging to streams the query does not want. 64 KiB read least but cost
/// 4.5 % of disk (zstd works per page); 128 KiB kept the disk of 1 MiB pages and most
/// of the speed (BENCHMARKS.md).
const PAGE_BYTES: usize = 128 << 10;
/// Metadata keys beyond this many get no column of their own (kept in `md.__rest` as JSON).
pub(crate) const MAX_MD_COLUMNS: usize = 64;

fn writer_props(level: i32) -> Result<WriterProperties> {
    let zstd = ZstdLevel::try_new(level).map_err(|e| Error::Config(format!("zstd level: {e}")))?;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_data_page_size_limit(PAGE_BYTES)
        // Read whole with any page of its column: ids and trace ids fall back to plain
        // encoding after this much, low-cardinality metadata fits easily.
        .set_dictionary_page_size_limit(PAGE_BYTES)
        // Seconds and nanoseconds apart: seconds delta-encode in a few bits per row, and
        // sub-second parts of millisecond (or coarser) clocks compress to almost nothing,
        // where one column of nanoseconds cost ~34 bits a row (BENCHMARKS.md).
        .set_column_dictionary_enabled(ColumnPath::from(TS_SECONDS), false)
        .set_column_encoding(ColumnPath::from(TS_SECONDS), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from(TS_NANOS), false)
        .set_column_encoding(ColumnPath::from(TS_NANOS), Encoding::BYTE_STREAM_SPLIT)
        .set_column_statistics_enabled(ColumnPath::from(TS_NANOS), EnabledStatistics::None)
        .set_column_dictionary_enabled(ColumnPath::from("line"), false)
        .set_max_row_group_row_count(Some(1 << 20))
        .build())
}

/// Writes the Parquet file `<dir>/<id>.parquet` with `write` (a flush's
/// [`encode_into`], a compaction's merge) and syncs it, so it is moved into place or
/// uploaded in parts, never held in memory whole. `None` from `write` (nothing to keep)
/// or an error removes the file again. Returns what `write` returns beside its output,
/// and the file.
pub(crate) fn encode_file<T>(
    dir: &std::path::Path,
    id: &str,
    write: impl FnOnce(FileOut) -> Result<Option<(T, FileOut)>>,
) -> Result<Option<(T, std::path::PathBuf)>> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join(format!("{id}.parquet"));
    let written = (|| {
        let out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&file)?);
        let Some((t, out)) = write(out)? else {
            return Ok(None);
        };
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(Some(t))
    })();
    match written {
        Ok(Some(t)) => Ok(Some((t, file))),
        other => {
            let _ = std::fs::remove_file(&file);
            other.map(|_| None)
        }
    }
}

/// A segment file being written.
pub(crate) type FileOut = std::io::BufWriter<std::fs::File>;

/// What goes beside a written segment file: its sidecar and its content index.
pub(crate) type Beside = (SegmentMeta, Option<Vec<u8>>);

/// Encodes a tenant's frozen head as a Parquet file into `out`; returns the sidecar,
/// `out` and the content index.
pub(crate) fn encode_into<W: std::io::Write + Send>(
    out: W,
    tenant: &str,
    id: &str,
    head: &mut TenantHead,
    wal_through: u64,
    zstd_level: i32,
    content_index: bool,
) -> Result<(SegmentMeta, W, Option<Vec<u8>>)> {
    for s in head.streams.values_mut() {
        s.sort();
    }
    let mut streams: Vec<&HeadStream> = head.streams.values().filter(|s| !s.is_empty()).collect();
    streams.sort_by(|a, b| stream_order(&a.labels, &b.labels));
    // Column per metadata key, most frequent first. Entries are read in place from the
    // head's arenas, never copied into owned entries; one reader's cache of decompressed
    // chunks serves the whole head (nothing changes it meanwhile).
    let mut u = Unpacked::default();
    let mut key_counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut spare = Vec::new();
    for s in &streams {
        for i in (0..s.len()).filter(|&i| s.has_meta(i)) {
            let mut pairs = recycle(std::mem::take(&mut spare));
            s.read(i, &mut u, &mut pairs);
            for (k, _) in &pairs {
                match key_counts.get_mut(*k) {
                    Some(n) => *n += 1,
                    None => {
                        key_counts.insert(k.to_string(), 1);
                    }
                }
            }
            spare = recycle(pairs);
        }
    }
    let md = MdColumns::by_count(key_counts);
    let mut w = SegmentWriter::to(out, md, zstd_level, content_index)?;
    for s in streams {
        w.push_stream(s, &mut u)?;
    }
    w.close(tenant, id, wal_through)
}

/// The structured-metadata columns of a segment.
pub(crate) struct MdColumns {
    pub(crate) keys: Vec<String>,
    /// Keys past the columns go to `md.__rest`.
    pub(crate) rest: bool,
}

impl MdColumns {
    /// The [`MAX_MD_COLUMNS`] most frequent keys get columns, the rest `md.__rest`.
    pub(crate) fn by_count(counts: BTreeMap<String, u64>) -> Self {
        let mut keys: Vec<(String, u64)> = counts.into_iter().collect();
        keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let rest = keys.len() > MAX_MD_COLUMNS;
        MdColumns {
            keys: keys
                .into_iter()
                .take(MAX_MD_COLUMNS)
                .map(|(k, _)| k)
                .collect(),
            rest,
        }
    }
}

/// Writes one segment from streams given in [`stream_order`], each sorted by time, into
/// memory (a flush) or a file (a compaction).
pub(crate) struct SegmentWriter<W: std::io::Write + Send> {
    writer: ArrowWriter<Counted<W>>,
    schema: Arc<Schema>,
    md_keys: Vec<String>,
    b: Builders,
    content: Option<crate::content::Builder>,
    table: Vec<SegmentStream>,
    row: u64,
    range: (Timestamp, Timestamp),
    raw: u64,
    level: i32,
    /// The most the Parquet writer buffered (the row group being built), for the log.
    buffered: usize,
}

impl<W: std::io::Write + Send> SegmentWriter<W> {
    /// A writer into `out`.
    pub(crate) fn to(out: W, md: MdColumns, level: i32, content_index: bool) -> Result<Self> {
        let mut fields = vec![
            Field::new("stream", DataType::UInt32, false),
            Field::new(TS_SECONDS, DataType::Int64, false),
            Field::new(TS_NANOS, DataType::Int32, false),
            Field::new("line", DataType::Utf8, false),
        ];
        fields.extend(
            md.keys
                .iter()
                .map(|k| Field::new(format!("md.{k}"), DataType::Utf8, true)),
        );
        if md.rest {
            fields.push(Field::new(REST_COLUMN, DataType::Utf8, true));
        }
        let schema = Arc::new(Schema::new(fields));
        let out = Counted { inner: out, n: 0 };
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(writer_props(level)?))?;
        Ok(SegmentWriter {
            writer,
            schema,
            b: Builders::new(md.keys.len(), md.rest),
            md_keys: md.keys,
            content: content_index.then(crate::content::Builder::default),
            table: Vec::new(),
            row: 0,
            range: (Timestamp::MAX, Timestamp::MIN),
            raw: 0,
            level,
            buffered: 0,
        })
    }

    /// Appends a stream, sorted, after the previous one in [`stream_order`].
    pub(crate) fn push_stream(&mut self, s: &HeadStream, u: &mut Unpacked) -> Result<()> {
        if s.is_empty() {
            return Ok(());
        }
        let sidx = self.table.len() as u32;
        self.table.push(SegmentStream {
            labels: s.labels.as_slice().to_vec(),
            first_row: self.row,
            rows: s.len() as u64,
            min_ts: s.min_ts,
            max_ts: s.max_ts,
            bytes: s.bytes as u64,
        });
        self.range = (self.range.0.min(s.min_ts), self.range.1.max(s.max_ts));
        self.raw += s.bytes as u64;
        let mut spare = Vec::new();
        for i in 0..s.len() {
            let mut pairs = recycle(std::mem::take(&mut spare));
            let line = s.read(i, u, &mut pairs);
            if let Some(c) = &mut self.content {
                c.push(sidx, self.row, line.as_bytes());
            }
            self.b.push(sidx, s.ts(i), &line, &pairs, &self.md_keys);
            spare = recycle(pairs);
            self.row += 1;
            if self.b.rows == BATCH_ROWS {
                self.writer.write(&self.b.finish(&self.schema)?)?;
                self.buffered = self.buffered.max(self.writer.memory_size());
            }
        }
        Ok(())
    }

    /// Rows written so far.
    pub(crate) fn rows(&self) -> u64 {
        self.row
    }

    /// Closes the file: the sidecar (with the file's size), the output and the content
    /// index.
    pub(crate) fn close(
        mut self,
        tenant: &str,
        id: &str,
        wal_through: u64,
    ) -> Result<(SegmentMeta, W, Option<Vec<u8>>)> {
        if self.b.rows > 0 {
            self.writer.write(&self.b.finish(&self.schema)?)?;
        }
        let mut meta = SegmentMeta {
            version: FORMAT_VERSION,
            id: id.to_string(),
            tenant: tenant.to_string(),
            min_ts: self.range.0,
            max_ts: self.range.1,
            rows: self.row,
            raw_bytes: self.raw,
            size: 0,
            wal_through,
            streams: self.table,
            replaces: Vec::new(),
            content_size: 0,
            zstd_level: self.level,
            writer: String::new(),
        };
        self.writer.append_key_value_metadata(KeyValue::new(
            "silt.segment".to_string(),
            serde_json::to_string(&meta)?,
        ));
        let out = self.writer.into_inner()?;
        meta.size = out.n;
        let out = out.inner;
        let content = self.content.map(crate::content::Builder::finish);
        meta.content_size = content.as_ref().map_or(0, |c| c.len() as u64);
        tracing::debug!(
            tenant,
            rows = meta.rows,
            raw = meta.raw_bytes,
            buffered = self.buffered,
            size = meta.size,
            "segment encoded"
        );
        Ok((meta, out, content))
    }
}

/// Counts the bytes written through it (the file's size, footer included).
pub(crate) struct Counted<W> {
    inner: W,
    n: u64,
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct Builders {
    stream: UInt32Builder,
    ts_s: Int64Builder,
    ts_ns: Int32Builder,
    line: StringBuilder,
    md: Vec<StringBuilder>,
    rest: Option<StringBuilder>,
    rows: usize,
}

impl Builders {
    fn new(n_md: usize, rest: bool) -> Self {
        Builders {
            stream: UInt32Builder::new(),
            ts_s: Int64Builder::new(),
            ts_ns: Int32Builder::new(),
            line: StringBuilder::new(),
            md: (0..n_md).map(|_| StringBuilder::new()).collect(),
            rest: rest.then(StringBuilder::new),
            rows: 0,
        }
    }

    /// Appends a row; `meta` is sorted by name.
    fn push(
        &mut self,
        stream: u32,
        ts: Timestamp,
        line: &str,
        meta: &[(&str, &str)],
        keys: &[String],
    ) {
        self.stream.append_value(stream);
        let (secs, nanos) = split_ts(ts);
        self.ts_s.append_value(secs);
        self.ts_ns.append_value(nanos);
        self.line.append_value(line);
        let get = |k: &str| {
            meta.binary_search_by(|(n, _)| (*n).cmp(k))
                .ok()
                .map(|i| meta[i].1)
        };
        for (k, b) in keys.iter().zip(self.md.iter_mut()) {
            b.append_option(get(k));
        }
        if let Some(rest) = &mut self.rest {
            let extra: BTreeMap<&str, &str> = meta
                .iter()
                .copied()
                .filter(|(k, _)| !keys.iter().any(|x| x == k))
                .collect();
            if extra.is_empty() {
                rest.append_null();
            } else {
                rest.append_value(serde_json::to_string(&extra).unwrap_or_default());
            }
        }
        self.rows += 1;
    }

    fn finish(&mut self, schema: &Arc<Schema>) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.stream.finish()),
            Arc::new(self.ts_s.finish()),
            Arc::new(self.ts_ns.finish()),
            Arc::new(self.line.finish()),
        ];
        cols.extend(self.md.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        if let Some(rest) = &mut self.rest {
            cols.push(Arc::new(rest.finish()));
        }
        self.rows = 0;
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    }
}
