//! Immutable multi-stream Parquet segments.
//!
//! One segment holds one tenant's entries from one head flush (or a compaction),
//! rows sorted by stream then time. Columns: `stream` (u32 index into the segment's
//! stream table), `ts` (i64 ns, delta-encoded), `line` (utf8), and one nullable
//! utf8 column `md.<key>` per structured-metadata key (dictionary-encoded, so
//! low-cardinality keys such as `detected_level` cost almost nothing). The stream
//! table lives in the segment's sidecar index (see [`SegmentMeta`]) and in the
//! Parquet footer's key-value metadata, so a segment also describes itself.

use crate::head::TenantHead;
use crate::{Error, Result};
use arrow_array::builder::{Int64Builder, StringBuilder, UInt32Builder};
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, PageIndexPolicy};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use silt_model::{Entry, Labels, Timestamp};
use silt_query::LinePredicate;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::sync::Arc;

/// Rows per Arrow batch when writing and reading.
const BATCH_ROWS: usize = 8192;
/// Metadata keys beyond this many get no column of their own (kept in `md.__rest` as JSON).
const MAX_MD_COLUMNS: usize = 64;
const REST_COLUMN: &str = "md.__rest";

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
    /// Streams sorted by labels.
    pub streams: Vec<SegmentStream>,
    /// Ids of the segments this one supersedes (compaction, retention, deletes); they are
    /// ignored and removed when found at start-up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
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
}

/// Object path for a tenant's segment file.
pub fn segment_path(tenant: &str, id: &str, ext: &str) -> String {
    format!("tenants/{tenant}/segments/{id}.{ext}")
}

fn writer_props(level: i32) -> Result<WriterProperties> {
    let zstd = ZstdLevel::try_new(level).map_err(|e| Error::Config(format!("zstd level: {e}")))?;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_column_dictionary_enabled(ColumnPath::from("ts"), false)
        .set_column_encoding(ColumnPath::from("ts"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from("line"), false)
        .set_max_row_group_row_count(Some(1 << 20))
        .build())
}

/// Encodes a tenant's frozen head as a Parquet file; returns the bytes and the sidecar.
pub fn encode(
    tenant: &str,
    id: &str,
    head: &mut TenantHead,
    wal_through: u64,
    zstd_level: i32,
) -> Result<(Vec<u8>, SegmentMeta)> {
    // Column per metadata key, most frequent first.
    let mut key_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut streams: Vec<_> = head
        .streams
        .values_mut()
        .filter(|s| !s.is_empty())
        .collect();
    streams.sort_by(|a, b| a.labels.cmp(&b.labels));
    for s in streams.iter_mut() {
        s.sort();
        for i in 0..s.len() {
            for (k, _) in s.entry(i).metadata.iter() {
                *key_counts.entry(k.to_string()).or_default() += 1;
            }
        }
    }
    let mut keys: Vec<(String, usize)> = key_counts.into_iter().collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let has_rest = keys.len() > MAX_MD_COLUMNS;
    let md_keys: Vec<String> = keys
        .into_iter()
        .take(MAX_MD_COLUMNS)
        .map(|(k, _)| k)
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

    let mut out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut out, schema.clone(), Some(writer_props(zstd_level)?))?;
    let mut table = Vec::with_capacity(streams.len());
    let mut row = 0u64;
    let (mut min_ts, mut max_ts, mut raw) = (Timestamp::MAX, Timestamp::MIN, 0u64);
    let mut b = Builders::new(md_keys.len(), has_rest);
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
            b.push(sidx as u32, &s.entry(i), &md_keys);
            row += 1;
            if b.rows == BATCH_ROWS {
                writer.write(&b.finish(&schema)?)?;
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
    };
    writer.append_key_value_metadata(KeyValue::new(
        "silt.segment".to_string(),
        serde_json::to_string(&meta)?,
    ));
    writer.close()?;
    let size = out.len() as u64;
    Ok((out, SegmentMeta { size, ..meta }))
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

    fn push(&mut self, stream: u32, e: &Entry, keys: &[String]) {
        self.stream.append_value(stream);
        self.ts.append_value(e.ts);
        self.line.append_value(&e.line);
        for (k, b) in keys.iter().zip(self.md.iter_mut()) {
            b.append_option(e.metadata.get(k));
        }
        if let Some(rest) = &mut self.rest {
            let extra: BTreeMap<&str, &str> = e
                .metadata
                .iter()
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

/// Parsed footer of a segment file, cached between reads.
pub type FileMeta = ArrowReaderMetadata;

/// Loads the footer and page index of a local segment file.
pub fn load_meta(file: &File) -> Result<FileMeta> {
    Ok(ArrowReaderMetadata::load(
        file,
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
    )?)
}

/// Row ranges (file-global, sorted, merged) of the `ts` pages whose min/max overlap
/// `[start, end)`; `None` when the file has no usable page index.
fn ts_page_ranges(
    meta: &FileMeta,
    (start, end): (Timestamp, Timestamp),
) -> Option<Vec<(usize, usize)>> {
    let md = meta.metadata();
    let ts_col = md
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().string() == "ts")?;
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut base = 0usize;
    for rg in 0..md.num_row_groups() {
        let rows = md.row_group(rg).num_rows() as usize;
        let pi = md.page_index_for_row_group(rg);
        let (Some(ColumnIndexMetaData::INT64(ci)), Some(oi)) =
            (pi.column_index(ts_col), pi.offset_index(ts_col))
        else {
            return None;
        };
        let locs = oi.page_locations();
        for (i, loc) in locs.iter().enumerate() {
            let first = loc.first_row_index as usize;
            let last = locs.get(i + 1).map_or(rows, |l| l.first_row_index as usize);
            let hit = match (ci.min_value(i), ci.max_value(i)) {
                (Some(&lo), Some(&hi)) => hi >= start && lo < end,
                _ => true,
            };
            if !hit || last <= first {
                continue;
            }
            let (a, b) = (base + first, base + last);
            match out.last_mut() {
                Some(prev) if prev.1 == a => prev.1 = b,
                _ => out.push((a, b)),
            }
        }
        base += rows;
    }
    Some(out)
}

/// Intersection of two sorted lists of disjoint half-open ranges.
fn intersect(a: &[(usize, usize)], b: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if lo < hi {
            out.push((lo, hi));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Reads, in one pass over the file, the rows with `start <= ts < end` of the streams at
/// `wanted` (indexes into the stream table), each in time order. Pages shared by
/// neighbouring streams are decoded once; `lines: false` skips the line column (entries
/// then have empty lines), which metric queries without a pipeline do not need. Rows
/// whose line fails `filter` are skipped before an entry is built.
pub fn read_streams(
    file: File,
    meta: &FileMeta,
    seg: &SegmentMeta,
    wanted: &[usize],
    (start, end): (Timestamp, Timestamp),
    lines: bool,
    filter: Option<&LinePredicate>,
) -> Result<HashMap<usize, Vec<Entry>>> {
    let total = meta.metadata().file_metadata().num_rows() as usize;
    let mut ranges: Vec<(usize, usize)> = wanted
        .iter()
        .filter_map(|&i| seg.streams.get(i))
        .map(|s| (s.first_row as usize, (s.first_row + s.rows) as usize))
        .collect();
    ranges.sort_unstable();
    // Rows are sorted by stream then time: only the ts pages overlapping the time range
    // can hold wanted rows, so a narrow range decodes a few pages, not whole streams.
    if let Some(pages) = ts_page_ranges(meta, (start, end)) {
        ranges = intersect(&ranges, &pages);
    }
    let mut sel = Vec::new();
    let mut pos = 0;
    for (a, b) in ranges {
        let a = a.max(pos);
        if b <= a {
            continue;
        }
        if a > pos {
            sel.push(RowSelector::skip(a - pos));
        }
        sel.push(RowSelector::select(b - a));
        pos = b;
    }
    if total > pos {
        sel.push(RowSelector::skip(total - pos));
    }
    let schema = meta.schema().clone();
    let roots: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| lines || schema.field(i).name() != "line")
        .collect();
    let mask = ProjectionMask::roots(meta.parquet_schema(), roots);
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
        .with_row_selection(RowSelection::from(sel))
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()?;
    let mut out: HashMap<usize, Vec<Entry>> = wanted.iter().map(|&i| (i, Vec::new())).collect();
    for batch in reader {
        let batch = batch?;
        let bs = batch.schema();
        let idx = |name: &str| {
            bs.index_of(name)
                .map_err(|_| Error::Corrupt(format!("segment lacks column {name}")))
        };
        let stream = col::<UInt32Array>(&batch, idx("stream")?)?;
        let ts = col::<Int64Array>(&batch, idx("ts")?)?;
        let line = if lines {
            Some(col::<StringArray>(&batch, idx("line")?)?)
        } else {
            None
        };
        let mds: Vec<(&StringArray, &str)> = bs
            .fields()
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.name().strip_prefix("md.").map(|k| (i, k)))
            .map(|(i, k)| col::<StringArray>(&batch, i).map(|a| (a, k)))
            .collect::<Result<_>>()?;
        for r in 0..batch.num_rows() {
            let t = ts.value(r);
            if t < start || t >= end {
                continue;
            }
            if let (Some(f), Some(l)) = (filter, line) {
                if !f.test(l.value(r)) {
                    continue;
                }
            }
            let Some(dst) = out.get_mut(&(stream.value(r) as usize)) else {
                continue;
            };
            let mut md = Vec::new();
            for (a, k) in &mds {
                if a.is_null(r) {
                    continue;
                }
                if *k == "__rest" {
                    let extra: BTreeMap<String, String> = serde_json::from_str(a.value(r))?;
                    md.extend(extra);
                } else {
                    md.push((k.to_string(), a.value(r).to_string()));
                }
            }
            dst.push(Entry {
                ts: t,
                line: line.map(|l| l.value(r).to_string()).unwrap_or_default(),
                metadata: Labels::from_pairs(md),
            });
        }
    }
    Ok(out)
}

fn col<T: 'static>(batch: &RecordBatch, i: usize) -> Result<&T> {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| Error::Corrupt(format!("segment column {i} has an unexpected type")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::Head;
    use std::io::Write;

    #[test]
    fn write_then_read_each_stream() {
        let mut head = Head::default();
        let a = Labels::from_pairs([("app", "a")]);
        let b = Labels::from_pairs([("app", "b")]);
        let mk = |ts: i64, line: &str, md: &[(&str, &str)]| Entry {
            ts,
            line: line.into(),
            metadata: Labels::from_pairs(md.iter().copied()),
        };
        head.append(
            "t",
            vec![
                (
                    b.clone(),
                    vec![mk(3, "b3", &[("detected_level", "info")]), mk(1, "b1", &[])],
                ),
                (
                    a.clone(),
                    (0..20_000)
                        .map(|i| mk(i, &format!("a{i}"), &[("trace_id", "x")]))
                        .collect(),
                ),
            ],
            0,
        );
        let th = head.tenants.get_mut("t").unwrap();
        let (bytes, meta) = encode("t", "s1", th, 9, 3).unwrap();
        assert_eq!(meta.rows, 20_002);
        assert_eq!(meta.streams[0].labels, a.as_slice());
        assert_eq!((meta.min_ts, meta.max_ts, meta.wal_through), (0, 19_999, 9));
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        let fm = load_meta(f.as_file()).unwrap();
        let got = read_streams(f.reopen().unwrap(), &fm, &meta, &[1], (0, 10), true, None).unwrap();
        assert_eq!(
            got[&1],
            vec![mk(1, "b1", &[]), mk(3, "b3", &[("detected_level", "info")])]
        );
        let got = read_streams(
            f.reopen().unwrap(),
            &fm,
            &meta,
            &[0, 1],
            (2, 105),
            false,
            None,
        )
        .unwrap();
        let ts: Vec<i64> = got[&0].iter().map(|e| e.ts).collect();
        assert_eq!(ts, (2..105).collect::<Vec<_>>());
        assert_eq!(got[&0][0].metadata.get("trace_id"), Some("x"));
        assert_eq!(got[&0][0].line, "", "lines are not read when not asked for");
        assert_eq!(got[&1].len(), 1);
    }

    #[test]
    fn narrow_time_ranges_read_only_what_they_ask_for() {
        let mut head = Head::default();
        let mk = |ts: i64| Entry {
            ts,
            line: format!("l{ts}"),
            metadata: Labels::new(),
        };
        let streams = ["a", "b", "c"]
            .iter()
            .map(|n| {
                (
                    Labels::from_pairs([("app", *n)]),
                    (0..60_000).map(mk).collect(),
                )
            })
            .collect();
        head.append("t", streams, 0);
        let th = head.tenants.get_mut("t").unwrap();
        let (bytes, meta) = encode("t", "s1", th, 1, 1).unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        let fm = load_meta(f.as_file()).unwrap();
        let pruned: usize = ts_page_ranges(&fm, (0, 1))
            .unwrap()
            .iter()
            .map(|(a, b)| b - a)
            .sum();
        assert!(pruned < 90_000, "{pruned} of 180000 rows selected");
        for (lo, hi) in [(0, 1), (19_990, 20_030), (45_000, 45_001), (59_999, 70_000)] {
            let got = read_streams(
                f.reopen().unwrap(),
                &fm,
                &meta,
                &[0, 2],
                (lo, hi),
                true,
                None,
            )
            .unwrap();
            for s in [0, 2] {
                let ts: Vec<i64> = got[&s].iter().map(|e| e.ts).collect();
                assert_eq!(ts, (lo..hi.min(60_000)).collect::<Vec<_>>(), "[{lo},{hi})");
            }
            assert_eq!(got[&2][0].line, format!("l{lo}"));
        }
        let only_7s = LinePredicate(Arc::new(|l: &str| l.ends_with('7')));
        let got = read_streams(
            f.reopen().unwrap(),
            &fm,
            &meta,
            &[1],
            (0, 100),
            true,
            Some(&only_7s),
        )
        .unwrap();
        let ts: Vec<i64> = got[&1].iter().map(|e| e.ts).collect();
        assert_eq!(ts, (0..100).filter(|t| t % 10 == 7).collect::<Vec<_>>());
    }
}
