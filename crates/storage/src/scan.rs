//! Reading segments: the footer and page index, row selection by stream and time, and
//! the decoded rows (as entries, or timestamps alone for counts).

use crate::ranged::SegmentFile;
use crate::segment::{join_ts, seconds_span, SegmentMeta, BATCH_ROWS, TS_NANOS, TS_SECONDS, TS_V1};
use crate::{Error, Result};
use arrow_array::{Array, Int32Array, Int64Array, RecordBatch, StringArray, UInt32Array};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use silt_model::{Entry, Labels, Timestamp};
use silt_query::stats::{self, Stats};
use silt_query::LinePredicate;
use std::collections::{BTreeMap, HashMap};

/// Parsed footer of a segment file, cached between reads.
pub type FileMeta = ArrowReaderMetadata;

/// Loads the footer and page index of a segment file.
pub fn load_meta(file: &SegmentFile) -> Result<FileMeta> {
    Ok(ArrowReaderMetadata::load(
        file,
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
    )?)
}

/// Row ranges (file-global, sorted, merged) of the `ts` pages whose min/max overlap
/// `[start, end)`, and whether some of them reach outside it; `None` when the file has
/// no usable page index.
fn ts_page_ranges(
    meta: &FileMeta,
    (start, end): (Timestamp, Timestamp),
) -> Option<(Vec<(usize, usize)>, bool)> {
    let md = meta.metadata();
    let columns = md.file_metadata().schema_descr().columns();
    // Format 2 keeps page statistics on whole seconds: a page spans up to the end of its
    // last second.
    let (ts_col, seconds) = match columns.iter().position(|c| c.path().string() == TS_V1) {
        Some(c) => (c, false),
        None => (
            columns
                .iter()
                .position(|c| c.path().string() == TS_SECONDS)?,
            true,
        ),
    };
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut partial = false;
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
            let span = match (ci.min_value(i), ci.max_value(i)) {
                (Some(&lo), Some(&hi)) if seconds => Some(seconds_span(lo, hi)),
                (Some(&lo), Some(&hi)) => Some((lo, hi)),
                _ => None,
            };
            let (hit, inside) = match span {
                Some((lo, hi)) => (hi >= start && lo < end, lo >= start && hi < end),
                _ => (true, false),
            };
            if !hit || last <= first {
                continue;
            }
            partial |= !inside;
            let (a, b) = (base + first, base + last);
            match out.last_mut() {
                Some(prev) if prev.1 == a => prev.1 = b,
                _ => out.push((a, b)),
            }
        }
        base += rows;
    }
    Some((out, partial))
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

/// What to read of a segment: some of its streams, within a time range.
#[derive(Clone, Copy)]
pub struct Slices<'a> {
    /// The segment.
    pub seg: &'a SegmentMeta,
    /// Indexes into its stream table.
    pub wanted: &'a [usize],
    /// `[start, end)`, ns.
    pub range: (Timestamp, Timestamp),
    /// When known, the only rows (segment-global, sorted ranges) that may matter, e.g.
    /// the blocks a content index could not rule out.
    pub only: Option<&'a [(usize, usize)]>,
}

/// The rows of the wanted streams in the `ts` pages that overlap the range (file-global,
/// sorted), and whether those pages also hold rows outside it.
fn candidate_rows(meta: &FileMeta, slices: &Slices<'_>) -> (Vec<(usize, usize)>, bool) {
    let Slices {
        seg,
        wanted,
        range,
        only,
    } = *slices;
    let mut ranges: Vec<(usize, usize)> = wanted
        .iter()
        .filter_map(|&i| seg.streams.get(i))
        .map(|s| (s.first_row as usize, (s.first_row + s.rows) as usize))
        .collect();
    ranges.sort_unstable();
    // Rows are sorted by stream then time: only the ts pages overlapping the time range
    // can hold wanted rows, so a narrow range decodes a few pages, not whole streams.
    let mut partial = true;
    if let Some((pages, p)) = ts_page_ranges(meta, range) {
        ranges = intersect(&ranges, &pages);
        partial = p;
    }
    if let Some(only) = only {
        ranges = intersect(&ranges, only);
    }
    (ranges, partial)
}

/// `ranges` (sorted, disjoint) as a Parquet selection over a file of `total` rows.
fn selection(ranges: &[(usize, usize)], total: usize) -> RowSelection {
    let mut sel = Vec::new();
    let mut pos = 0;
    for &(a, b) in ranges {
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
    RowSelection::from(sel)
}

/// A reader of the `ranges` rows of the columns that `keep` names, their pages fetched
/// ahead (remote backends) and counted.
fn reader(
    file: SegmentFile,
    meta: &FileMeta,
    ranges: &[(usize, usize)],
    keep: impl Fn(&str) -> bool,
    stats: &Stats,
) -> Result<ParquetRecordBatchReader> {
    file.prefetch(&pages_to_read(meta, ranges, &keep, stats))?;
    let schema = meta.schema();
    let roots: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| keep(schema.field(i).name()))
        .collect();
    let mask = ProjectionMask::roots(meta.parquet_schema(), roots);
    let total = meta.metadata().file_metadata().num_rows() as usize;
    Ok(
        ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
            .with_row_selection(selection(ranges, total))
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()?,
    )
}

/// `ranges` narrowed to the rows with `start <= ts < end`, from the `ts` column alone: a
/// `ts` page spans more rows than a page of lines, so a narrow time range then reads the
/// line pages of its own rows, not those of the whole `ts` page.
fn rows_in_range(
    file: &SegmentFile,
    meta: &FileMeta,
    ranges: &[(usize, usize)],
    (start, end): (Timestamp, Timestamp),
    stats: &Stats,
) -> Result<Vec<(usize, usize)>> {
    let mut rows = ranges.iter().flat_map(|&(a, b)| a..b);
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut ts = Vec::new();
    for batch in reader(file.try_clone()?, meta, ranges, is_ts, stats)? {
        timestamps(&batch?, &mut ts)?;
        for &t in &ts {
            let row = rows
                .next()
                .ok_or_else(|| Error::Corrupt("segment returned more rows than selected".into()))?;
            if t < start || t >= end {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.1 == row => last.1 = row + 1,
                _ => out.push((row, row + 1)),
            }
        }
    }
    Ok(out)
}

/// A reader of the selected rows' columns that `keep` names; counts the pages it reads.
fn open_reader(
    file: SegmentFile,
    meta: &FileMeta,
    slices: &Slices<'_>,
    keep: impl Fn(&str) -> bool,
    stats: &Stats,
) -> Result<ParquetRecordBatchReader> {
    let (mut ranges, partial) = candidate_rows(meta, slices);
    // Worth a pass over `ts` when other columns are read and the range cuts pages.
    let others = meta
        .schema()
        .fields()
        .iter()
        .any(|f| !is_ts(f.name()) && f.name() != "stream" && keep(f.name()));
    if partial && others && !ranges.is_empty() {
        ranges = rows_in_range(&file, meta, &ranges, slices.range, stats)?;
    }
    reader(file, meta, &ranges, keep, stats)
}

/// Timestamps alone of the rows with `start <= ts < end` of the `wanted` streams, each
/// ascending: only the `stream` and `ts` columns are decoded (pipeline-less counts).
pub fn read_timestamps(
    file: SegmentFile,
    meta: &FileMeta,
    slices: Slices<'_>,
    stats: &Stats,
) -> Result<HashMap<usize, Vec<Timestamp>>> {
    let (start, end) = slices.range;
    let reader = open_reader(file, meta, &slices, |c| c == "stream" || is_ts(c), stats)?;
    // By stream index: rows come grouped by stream, so no per-row hashing.
    let mut by_index: Vec<Option<Vec<Timestamp>>> = vec![None; slices.seg.streams.len()];
    for &i in slices.wanted {
        by_index[i] = Some(Vec::new());
    }
    let mut n = 0u64;
    let mut ts = Vec::new();
    for batch in reader {
        let batch = batch?;
        let stream = named::<UInt32Array>(&batch, "stream")?;
        timestamps(&batch, &mut ts)?;
        for (s, t) in stream.values().iter().zip(ts.iter()) {
            if *t < start || *t >= end {
                continue;
            }
            if let Some(Some(dst)) = by_index.get_mut(*s as usize) {
                dst.push(*t);
                n += 1;
            }
        }
    }
    stats::add(&stats.decompressed_lines, n);
    Ok(by_index
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i, v?)))
        .collect())
}

/// Reads, in one pass over the file, the rows with `start <= ts < end` of the streams at
/// `wanted` (indexes into the stream table), each in time order. Pages shared by
/// neighbouring streams are decoded once; `lines: false` skips the line column (entries
/// then have empty lines), which metric queries without a pipeline do not need. Rows
/// whose line fails `filter` are skipped before an entry is built.
pub fn read_streams(
    file: SegmentFile,
    meta: &FileMeta,
    slices: Slices<'_>,
    lines: bool,
    filter: Option<&LinePredicate>,
    stats: &Stats,
) -> Result<HashMap<usize, Vec<Entry>>> {
    let mut out: HashMap<usize, Vec<Entry>> =
        slices.wanted.iter().map(|&i| (i, Vec::new())).collect();
    let push = |s: usize, ts: Timestamp, line: &str, metadata: Labels| {
        if let Some(dst) = out.get_mut(&s) {
            dst.push(Entry {
                ts,
                line: line.to_string(),
                metadata,
            });
        }
        true
    };
    visit_rows(file, meta, slices, (lines, filter), None, stats, push)?;
    Ok(out)
}

/// Lends `f` each row with `start <= ts < end` of the `wanted` streams whose line passes
/// `filter`: `(stream index, ts, line, metadata)`, one stream's rows in time order,
/// without building entries. Only the metadata columns `metadata` names are decoded
/// (`None`: all); `lines: false` skips the line column. `f` returns `false` to stop.
pub fn visit_rows(
    file: SegmentFile,
    meta: &FileMeta,
    slices: Slices<'_>,
    (lines, filter): (bool, Option<&LinePredicate>),
    metadata: Option<&[String]>,
    stats: &Stats,
    mut f: impl FnMut(usize, Timestamp, &str, Labels) -> bool,
) -> Result<()> {
    let (start, end) = slices.range;
    let wanted_md = |k: &str| k == "__rest" || metadata.is_none_or(|m| m.iter().any(|n| n == k));
    let keep = |c: &str| match c.strip_prefix("md.") {
        Some(k) => wanted_md(k),
        None => lines || c != "line",
    };
    let reader = open_reader(file, meta, &slices, keep, stats)?;
    let mut wanted = vec![false; slices.seg.streams.len()];
    for &i in slices.wanted {
        if let Some(w) = wanted.get_mut(i) {
            *w = true;
        }
    }
    let (mut lines_read, mut line_bytes, mut md_bytes) = (0u64, 0u64, 0u64);
    let mut ts = Vec::new();
    let result = (|| {
        for batch in reader {
            let batch = batch?;
            let bs = batch.schema();
            let stream = named::<UInt32Array>(&batch, "stream")?;
            timestamps(&batch, &mut ts)?;
            let line = if lines {
                Some(named::<StringArray>(&batch, "line")?)
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
            for (r, &t) in ts.iter().enumerate() {
                let s = stream.value(r) as usize;
                if t < start || t >= end || !wanted.get(s).copied().unwrap_or(false) {
                    continue;
                }
                lines_read += 1;
                let text = line.map_or("", |l| l.value(r));
                line_bytes += text.len() as u64;
                if filter.is_some_and(|f| lines && !f.test(text)) {
                    continue;
                }
                let mut md = Vec::new();
                for (a, k) in &mds {
                    if a.is_null(r) {
                        continue;
                    }
                    md_bytes += a.value_length(r) as u64;
                    if *k == "__rest" {
                        let extra: BTreeMap<String, String> = serde_json::from_str(a.value(r))?;
                        md.extend(extra.into_iter().filter(|(k, _)| wanted_md(k)));
                    } else {
                        md_bytes += k.len() as u64;
                        md.push((k.to_string(), a.value(r).to_string()));
                    }
                }
                let md = if md.is_empty() {
                    Labels::new()
                } else {
                    Labels::from_pairs(md)
                };
                if !f(s, t, text, md) {
                    return Ok(());
                }
            }
        }
        Ok(())
    })();
    stats::add(&stats.decompressed_lines, lines_read);
    stats::add(&stats.decompressed_bytes, line_bytes);
    stats::add(&stats.decompressed_metadata_bytes, md_bytes);
    result
}

/// The byte ranges of every page (and dictionary page) of the projected columns that
/// the selected row ranges touch, from the offset index; counts them in `stats`.
fn pages_to_read(
    meta: &FileMeta,
    ranges: &[(usize, usize)],
    read: &impl Fn(&str) -> bool,
    stats: &Stats,
) -> Vec<std::ops::Range<u64>> {
    let md = meta.metadata();
    let columns: Vec<usize> = md
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, c)| read(&c.path().string()))
        .map(|(i, _)| i)
        .collect();
    let (mut pages, mut bytes, mut out) = (0u64, 0u64, Vec::new());
    let mut base = 0usize;
    for rg in 0..md.num_row_groups() {
        let rows = md.row_group(rg).num_rows() as usize;
        let pi = md.page_index_for_row_group(rg);
        for &c in &columns {
            let Some(oi) = pi.offset_index(c) else {
                continue;
            };
            let locs = oi.page_locations();
            let mut any = false;
            for (i, loc) in locs.iter().enumerate() {
                let first = base + loc.first_row_index as usize;
                let last = base + locs.get(i + 1).map_or(rows, |l| l.first_row_index as usize);
                if ranges.iter().any(|&(a, b)| a < last && first < b) {
                    pages += 1;
                    bytes += loc.compressed_page_size as u64;
                    let at = loc.offset as u64;
                    out.push(at..at + loc.compressed_page_size as u64);
                    any = true;
                }
            }
            // A dictionary page sits before the first data page of its column chunk.
            let cc = md.row_group(rg).column(c);
            if let (true, Some(dict), Some(first)) =
                (any, cc.dictionary_page_offset(), locs.first())
            {
                out.push(dict as u64..first.offset as u64);
            }
        }
        base += rows;
    }
    stats::add(&stats.pages, pages);
    stats::add(&stats.compressed_bytes, bytes);
    out
}

/// The column called `name` of a batch.
/// Whether `c` holds row times (format 1's `ts`, format 2's seconds and nanoseconds).
fn is_ts(c: &str) -> bool {
    c == TS_V1 || c == TS_SECONDS || c == TS_NANOS
}

/// The row times (ns) of a batch read with the [`is_ts`] columns, into `out`.
fn timestamps(batch: &RecordBatch, out: &mut Vec<Timestamp>) -> Result<()> {
    out.clear();
    if batch.schema().index_of(TS_V1).is_ok() {
        out.extend_from_slice(named::<Int64Array>(batch, TS_V1)?.values());
    } else {
        let secs = named::<Int64Array>(batch, TS_SECONDS)?.values();
        let nanos = named::<Int32Array>(batch, TS_NANOS)?.values();
        out.extend(secs.iter().zip(nanos.iter()).map(|(&s, &n)| join_ts(s, n)));
    }
    Ok(())
}

fn named<'b, T: 'static>(batch: &'b RecordBatch, name: &str) -> Result<&'b T> {
    let i = batch
        .schema()
        .index_of(name)
        .map_err(|_| Error::Corrupt(format!("segment lacks column {name}")))?;
    col(batch, i)
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
    use crate::encode::encode_into;
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
        let (meta, bytes, _) = encode_into(Vec::new(), "t", "s1", th, 9, 3, false).unwrap();
        assert_eq!(meta.rows, 20_002);
        assert_eq!(meta.streams[0].labels, a.as_slice());
        assert_eq!((meta.min_ts, meta.max_ts, meta.wal_through), (0, 19_999, 9));
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        let fm = load_meta(&SegmentFile::Local(f.reopen().unwrap())).unwrap();
        let got = read_streams(
            SegmentFile::Local(f.reopen().unwrap()),
            &fm,
            Slices {
                seg: &meta,
                wanted: &[1],
                range: (0, 10),
                only: None,
            },
            true,
            None,
            &Stats::default(),
        )
        .unwrap();
        assert_eq!(
            got[&1],
            vec![mk(1, "b1", &[]), mk(3, "b3", &[("detected_level", "info")])]
        );
        let got = read_streams(
            SegmentFile::Local(f.reopen().unwrap()),
            &fm,
            Slices {
                seg: &meta,
                wanted: &[0, 1],
                range: (2, 105),
                only: None,
            },
            false,
            None,
            &Stats::default(),
        )
        .unwrap();
        let ts: Vec<i64> = got[&0].iter().map(|e| e.ts).collect();
        assert_eq!(ts, (2..105).collect::<Vec<_>>());
        assert_eq!(got[&0][0].metadata.get("trace_id"), Some("x"));
        assert_eq!(got[&0][0].line, "", "lines are not read when not asked for");
        assert_eq!(got[&1].len(), 1);
    }

    #[test]
    fn a_small_stream_beside_a_large_one_reads_small_pages() {
        // Incompressible lines, so compressed bytes follow raw ones.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut line = || {
            (0..200)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b'!' + (x % 90) as u8)
                })
                .collect::<String>()
        };
        let mk = |ts: i64, line: String| Entry {
            ts,
            line,
            metadata: Labels::from_pairs([("trace_id", format!("{ts:032x}"))]),
        };
        let small = (0..50).map(|i| mk(i, line())).collect();
        let large = (0..10_000).map(|i| mk(i, line())).collect();
        let mut head = Head::default();
        head.append(
            "t",
            vec![
                (Labels::from_pairs([("app", "a")]), small),
                (Labels::from_pairs([("app", "b")]), large),
            ],
            0,
        );
        let th = head.tenants.get_mut("t").unwrap();
        let (meta, bytes, _) = encode_into(Vec::new(), "t", "s1", th, 1, 3, false).unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        let fm = load_meta(&SegmentFile::Local(f.reopen().unwrap())).unwrap();
        let stats = Stats::default();
        let slices = Slices {
            seg: &meta,
            wanted: &[0],
            range: (0, i64::MAX),
            only: None,
        };
        let file = SegmentFile::Local(f.reopen().unwrap());
        let got = read_streams(file, &fm, slices, true, None, &stats).unwrap();
        assert_eq!(got[&0].len(), 50);
        // 10 kB of wanted lines; with 1 MiB pages the neighbour's first MiB came along.
        let read = Stats::get(&stats.compressed_bytes);
        assert!(
            read < 300_000,
            "{read} compressed bytes read for 10 kB of lines"
        );
    }

    #[test]
    fn narrow_time_ranges_read_only_what_they_ask_for() {
        // One row a millisecond: pages are pruned by their seconds.
        const MS: i64 = 1_000_000;
        let mut head = Head::default();
        let mk = |i: i64| Entry {
            ts: i * MS,
            line: format!("l{i}"),
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
        let (meta, bytes, _) = encode_into(Vec::new(), "t", "s1", th, 1, 1, false).unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        let fm = load_meta(&SegmentFile::Local(f.reopen().unwrap())).unwrap();
        let (pages, partial) = ts_page_ranges(&fm, (0, MS)).unwrap();
        assert!(partial);
        let pruned: usize = pages.iter().map(|(a, b)| b - a).sum();
        assert!(pruned < 90_000, "{pruned} of 180000 rows selected");
        for (lo, hi) in [(0, 1), (19_990, 20_030), (45_000, 45_001), (59_999, 70_000)] {
            let got = read_streams(
                SegmentFile::Local(f.reopen().unwrap()),
                &fm,
                Slices {
                    seg: &meta,
                    wanted: &[0, 2],
                    range: (lo * MS, hi * MS),
                    only: None,
                },
                true,
                None,
                &Stats::default(),
            )
            .unwrap();
            for s in [0, 2] {
                let ts: Vec<i64> = got[&s].iter().map(|e| e.ts).collect();
                let want: Vec<i64> = (lo..hi.min(60_000)).map(|i| i * MS).collect();
                assert_eq!(ts, want, "[{lo},{hi})");
            }
            assert_eq!(got[&2][0].line, format!("l{lo}"));
        }
        let stats = Stats::default();
        let only_7s = LinePredicate::new(|l: &str| l.ends_with('7'));
        let got = read_streams(
            SegmentFile::Local(f.reopen().unwrap()),
            &fm,
            Slices {
                seg: &meta,
                wanted: &[1],
                range: (0, 100 * MS),
                only: None,
            },
            true,
            Some(&only_7s),
            &stats,
        )
        .unwrap();
        let ts: Vec<i64> = got[&1].iter().map(|e| e.ts).collect();
        let want: Vec<i64> = (0..100).filter(|t| t % 10 == 7).map(|i| i * MS).collect();
        assert_eq!(ts, want);
        // Every row in range is processed, whether or not the filter keeps it; only the
        // pages holding those rows are read.
        assert_eq!(Stats::get(&stats.decompressed_lines), 100);
        let bytes: usize = (0..100).map(|t| format!("l{t}").len()).sum();
        assert_eq!(Stats::get(&stats.decompressed_bytes), bytes as u64);
        let pages = Stats::get(&stats.pages);
        assert!((3..20).contains(&pages), "{pages} pages read for 100 rows");
        assert!(Stats::get(&stats.compressed_bytes) > 0);
    }
}
