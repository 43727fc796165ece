//! Immutable multi-stream Parquet segments.
//!
//! One segment holds one tenant's entries from one head flush (or a compaction),
//! rows sorted by stream then time. Columns: `stream` (u32 index into the segment's
//! stream table), `ts` (i64 ns, delta-encoded), `line` (utf8), and one nullable
//! utf8 column `md.<key>` per structured-metadata key (dictionary-encoded, so
//! low-cardinality keys such as `detected_level` cost almost nothing). The stream
//! table lives in the segment's sidecar index (see [`SegmentMeta`]) and in the
//! Parquet footer's key-value metadata, so a segment also describes itself.

use crate::head::{HeadStream, TenantHead};
use crate::{Error, Result};
use arrow_array::builder::{Int64Builder, StringBuilder, UInt32Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use silt_model::{Labels, Timestamp};
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
const MAX_MD_COLUMNS: usize = 64;
pub(crate) const REST_COLUMN: &str = "md.__rest";

/// One stream's slice of a segment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SegmentStream {
    /// Indexed labels as sorted pairs.
    pub labels: Vec<(String, String)>,
    /// First row of the stream.
    pub first_row: u64,
    /// Number of rows.
    pub rows: u64,
    /// Smallest timestamp.
    pub min_ts: Timestamp,
    /// Largest timestamp.
    pub max_ts: Timestamp,
    /// Raw bytes (lines + metadata).
    pub bytes: u64,
}

/// Sidecar index of a segment: enough to plan a query without opening the Parquet file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Format version of this record.
    pub version: u32,
    /// Unique id (also the file stem).
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Smallest timestamp.
    pub min_ts: Timestamp,
    /// Largest timestamp.
    pub max_ts: Timestamp,
    /// Total rows.
    pub rows: u64,
    /// Raw bytes (lines + metadata) stored.
    pub raw_bytes: u64,
    /// Size of the Parquet object.
    pub size: u64,
    /// Highest WAL file sequence whose data this segment contains (0 for compacted ones).
    pub wal_through: u64,
    /// Streams in [`stream_order`] (any order reads correctly).
    pub streams: Vec<SegmentStream>,
    /// Ids of the segments this one supersedes (compaction, retention, deletes); they are
    /// ignored and removed when found at start-up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
    /// Size of the content index object beside the segment (0: none; segments written
    /// before content indexes, or with them disabled, are read whole).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub content_size: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl SegmentMeta {
    /// Object path of the Parquet file.
    pub fn data_path(&self) -> String {
        segment_path(&self.tenant, &self.id, "parquet")
    }

    /// Object path of this sidecar.
    pub fn index_path(&self) -> String {
        segment_path(&self.tenant, &self.id, "index.json")
    }

    /// Object path of the content index (see [`crate::content`]).
    pub fn content_path(&self) -> String {
        segment_path(&self.tenant, &self.id, "content")
    }

    /// Every object of the segment, in the order they are safely deleted: the sidecar
    /// first (without it the rest is ignored), then the data, then the content index.
    pub fn object_paths(&self) -> Vec<String> {
        let mut out = vec![self.index_path(), self.data_path()];
        if self.content_size > 0 {
            out.push(self.content_path());
        }
        out
    }
}

/// Object path for a tenant's segment file.
pub fn segment_path(tenant: &str, id: &str, ext: &str) -> String {
    format!("tenants/{tenant}/segments/{id}.{ext}")
}

/// Labels that most queries select on: a segment's streams are ordered by them first, so
/// the streams of one service (or namespace) are neighbours and a query on it decodes few
/// pages (with all labels first, `cluster` would interleave every service on every page).
const LOCALITY: [&str; 2] = ["service_name", "namespace"];

/// Order of streams in a segment: by [`LOCALITY`] labels, then by all labels.
pub fn stream_order(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    LOCALITY
        .iter()
        .map(|k| a.get(k).cmp(&b.get(k)))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| a.cmp(b))
}

fn writer_props(level: i32) -> Result<WriterProperties> {
    let zstd = ZstdLevel::try_new(level).map_err(|e| Error::Config(format!("zstd level: {e}")))?;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_data_page_size_limit(PAGE_BYTES)
        // Read whole with any page of its column: ids and trace ids fall back to plain
        // encoding after this much, low-cardinality metadata fits easily.
        .set_dictionary_page_size_limit(PAGE_BYTES)
        .set_column_dictionary_enabled(ColumnPath::from("ts"), false)
        .set_column_encoding(ColumnPath::from("ts"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from("line"), false)
        .set_max_row_group_row_count(Some(1 << 20))
        .build())
}

/// A segment ready to upload.
pub struct Encoded {
    /// The Parquet file.
    pub data: Vec<u8>,
    /// The content index, when asked for.
    pub content: Option<Vec<u8>>,
    /// The sidecar.
    pub meta: SegmentMeta,
}

impl Encoded {
    /// Uploads the objects in commit order: data and content index first, then the
    /// sidecar, whose presence means a complete segment.
    pub(crate) async fn put(self, objects: &crate::objects::Objects) -> Result<SegmentMeta> {
        objects.put(&self.meta.data_path(), self.data).await?;
        if let Some(c) = self.content {
            objects.put(&self.meta.content_path(), c).await?;
        }
        objects
            .put(&self.meta.index_path(), serde_json::to_vec(&self.meta)?)
            .await?;
        Ok(self.meta)
    }
}

/// Encodes a tenant's frozen head as a Parquet file and, with `content_index`, the
/// content index beside it.
pub fn encode(
    tenant: &str,
    id: &str,
    head: &mut TenantHead,
    wal_through: u64,
    zstd_level: i32,
    content_index: bool,
) -> Result<Encoded> {
    // Column per metadata key, most frequent first.
    for s in head.streams.values_mut() {
        s.sort();
    }
    let mut streams: Vec<&HeadStream> = head.streams.values().filter(|s| !s.is_empty()).collect();
    streams.sort_by(|a, b| stream_order(&a.labels, &b.labels));
    // Entries are read in place from the head's arenas, never copied into owned entries.
    let mut pairs = Vec::new();
    let mut key_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &streams {
        for i in 0..s.len() {
            s.meta_pairs(i, &mut pairs);
            for (k, _) in &pairs {
                *key_counts.entry(k).or_default() += 1;
            }
        }
    }
    let mut keys: Vec<(&str, usize)> = key_counts.into_iter().collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let has_rest = keys.len() > MAX_MD_COLUMNS;
    let md_keys: Vec<String> = keys
        .into_iter()
        .take(MAX_MD_COLUMNS)
        .map(|(k, _)| k.to_string())
        .collect();

    let mut fields = vec![
        Field::new("stream", DataType::UInt32, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("line", DataType::Utf8, false),
    ];
    fields.extend(
        md_keys
            .iter()
            .map(|k| Field::new(format!("md.{k}"), DataType::Utf8, true)),
    );
    if has_rest {
        fields.push(Field::new(REST_COLUMN, DataType::Utf8, true));
    }
    let schema = Arc::new(Schema::new(fields));

    let mut out = Out(Vec::new());
    let mut writer =
        ArrowWriter::try_new(&mut out, schema.clone(), Some(writer_props(zstd_level)?))?;
    // The most the Parquet writer buffered (the row group being built), for the log.
    let mut buffered = 0;
    let mut table = Vec::with_capacity(streams.len());
    let mut row = 0u64;
    let (mut min_ts, mut max_ts, mut raw) = (Timestamp::MAX, Timestamp::MIN, 0u64);
    let mut b = Builders::new(md_keys.len(), has_rest);
    let mut content = content_index.then(crate::content::Builder::default);
    for (sidx, s) in streams.iter().enumerate() {
        table.push(SegmentStream {
            labels: s.labels.as_slice().to_vec(),
            first_row: row,
            rows: s.len() as u64,
            min_ts: s.min_ts,
            max_ts: s.max_ts,
            bytes: s.bytes as u64,
        });
        min_ts = min_ts.min(s.min_ts);
        max_ts = max_ts.max(s.max_ts);
        raw += s.bytes as u64;
        for i in 0..s.len() {
            s.meta_pairs(i, &mut pairs);
            let line = s.line_str(i);
            if let Some(c) = &mut content {
                c.push(sidx as u32, row, line.as_bytes());
            }
            b.push(sidx as u32, s.ts(i), &line, &pairs, &md_keys);
            row += 1;
            if b.rows == BATCH_ROWS {
                writer.write(&b.finish(&schema)?)?;
                buffered = buffered.max(writer.memory_size());
            }
        }
    }
    if b.rows > 0 {
        writer.write(&b.finish(&schema)?)?;
    }
    let meta = SegmentMeta {
        version: 1,
        id: id.to_string(),
        tenant: tenant.to_string(),
        min_ts,
        max_ts,
        rows: row,
        raw_bytes: raw,
        size: 0,
        wal_through,
        streams: table,
        replaces: Vec::new(),
        content_size: 0,
    };
    writer.append_key_value_metadata(KeyValue::new(
        "silt.segment".to_string(),
        serde_json::to_string(&meta)?,
    ));
    writer.close()?;
    let out = out.0;
    let content = content.map(crate::content::Builder::finish);
    tracing::debug!(
        tenant,
        rows = row,
        raw,
        buffered,
        size = out.len(),
        capacity = out.capacity(),
        "segment encoded"
    );
    Ok(Encoded {
        meta: SegmentMeta {
            size: out.len() as u64,
            content_size: content.as_ref().map_or(0, |c| c.len() as u64),
            ..meta
        },
        data: out,
        content,
    })
}

/// The Parquet file being written: grows by a quarter, not by doubling, so the encoder
/// holds at most ~25 % more than the file (see docs/architecture.md, "Memory model").
struct Out(Vec<u8>);

impl std::io::Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        crate::head::reserve(&mut self.0, buf.len(), 1 << 20);
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Builders {
    stream: UInt32Builder,
    ts: Int64Builder,
    line: StringBuilder,
    md: Vec<StringBuilder>,
    rest: Option<StringBuilder>,
    rows: usize,
}

impl Builders {
    fn new(n_md: usize, rest: bool) -> Self {
        Builders {
            stream: UInt32Builder::new(),
            ts: Int64Builder::new(),
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
        self.ts.append_value(ts);
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
            Arc::new(self.ts.finish()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::Head;
    use silt_model::Entry;

    #[test]
    fn streams_of_one_service_are_neighbours() {
        let mut head = Head::default();
        let streams = [("a", "web"), ("b", "db"), ("c", "web"), ("d", "db")]
            .iter()
            .map(|(cluster, svc)| {
                let labels = Labels::from_pairs([("cluster", *cluster), ("service_name", *svc)]);
                let entries = vec![Entry {
                    ts: 1,
                    line: format!("{cluster} {svc}"),
                    metadata: Labels::new(),
                }];
                (labels, entries)
            })
            .collect();
        head.append("t", streams, 0);
        let th = head.tenants.get_mut("t").unwrap();
        let meta = encode("t", "s", th, 1, 1, false).unwrap().meta;
        let order: Vec<String> = meta
            .streams
            .iter()
            .map(|s| format!("{}/{}", s.labels[1].1, s.labels[0].1))
            .collect();
        assert_eq!(order, ["db/b", "db/d", "web/a", "web/c"]);
        assert!(meta
            .streams
            .windows(2)
            .all(|w| w[0].first_row < w[1].first_row));
    }
}
