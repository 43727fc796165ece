//! Immutable multi-stream Parquet segments.
//!
//! One segment holds one tenant's entries from one head flush (or a compaction),
//! rows sorted by stream then time. Columns: `stream` (u32 index into the segment's
//! stream table), `ts_s` and `ts_ns` (the time as whole seconds, delta-encoded, and
//! nanoseconds past them; format 1 had one `ts` column of ns), `line` (utf8), and one nullable
//! utf8 column `md.<key>` per structured-metadata key (dictionary-encoded, so
//! low-cardinality keys such as `detected_level` cost almost nothing). The stream
//! table lives in the segment's sidecar index (see [`SegmentMeta`]) and in the
//! Parquet footer's key-value metadata, so a segment also describes itself.

pub(crate) use crate::encode::BATCH_ROWS;
pub(crate) use crate::encode::{encode_file, encode_into};
use serde::{Deserialize, Serialize};
use silt_model::{Labels, Timestamp};

pub(crate) const REST_COLUMN: &str = "md.__rest";
/// Whole seconds of a row's time (floor, so negative times work), format 2 on.
pub(crate) const TS_SECONDS: &str = "ts_s";
/// Nanoseconds past [`TS_SECONDS`], `0..1e9`.
pub(crate) const TS_NANOS: &str = "ts_ns";
/// Format 1's one timestamp column (ns); still read.
pub(crate) const TS_V1: &str = "ts";
/// Format of segments written now (the sidecar's `version`).
pub(crate) const FORMAT_VERSION: u32 = 2;

const NS: i64 = 1_000_000_000;

/// `ts` as ([`TS_SECONDS`], [`TS_NANOS`]).
pub(crate) fn split_ts(ts: Timestamp) -> (i64, i32) {
    (ts.div_euclid(NS), ts.rem_euclid(NS) as i32)
}

/// The time [`split_ts`] split; wrapping, because the seconds of times near `i64::MIN`
/// times 1e9 leave the i64 range on the way back to the (representable) original.
pub(crate) fn join_ts(secs: i64, nanos: i32) -> Timestamp {
    secs.wrapping_mul(NS).wrapping_add(nanos as i64)
}

/// The ns range `[lo, hi]` that rows whose seconds are `secs_lo..=secs_hi` can have.
pub(crate) fn seconds_span(secs_lo: i64, secs_hi: i64) -> (Timestamp, Timestamp) {
    (
        secs_lo.saturating_mul(NS),
        secs_hi.saturating_mul(NS).saturating_add(NS - 1),
    )
}

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
    /// zstd level of its pages (0: unknown, written before levels were recorded).
    /// Compaction rewrites segments below `zstd_level` (flushes write a faster level).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub zstd_level: i32,
    /// The writer whose WAL this segment's rows came from (`target: write`; empty on a
    /// single node). A writer's WAL replay trusts only its own segments' `wal_through`, so
    /// compaction merges the segments of one writer only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub writer: String,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::Head;
    use silt_model::Entry;

    #[test]
    fn split_times_join_back_exactly() {
        for ts in [
            0,
            1,
            -1,
            999_999_999,
            -1_000_000_000,
            1_700_000_000_123_456_789,
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
        ] {
            let (s, n) = split_ts(ts);
            assert!((0..1_000_000_000).contains(&n), "{ts}");
            assert_eq!(join_ts(s, n), ts);
            let (lo, hi) = seconds_span(s, s);
            assert!(lo <= ts && ts <= hi, "{ts}: {lo}..={hi}");
        }
        assert_eq!(split_ts(-1), (-1, 999_999_999));
    }

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
        let (meta, _, _) =
            crate::encode::encode_into(Vec::new(), "t", "s", th, 1, 1, false).unwrap();
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
