//! Loki's JSON response envelopes, written by hand for speed and byte compatibility
//! (Go's encoder HTML-escapes `<`, `>` and `&`, which serde_json does not).

use silt_model::Labels;
use silt_query::{QueryResult, Stats, StreamResult};
use std::fmt::Write;

/// Appends `s` as a JSON string the way Go's `encoding/json` writes it.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let mut last = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '<' => Some("\\u003c"),
            '>' => Some("\\u003e"),
            '&' => Some("\\u0026"),
            '\u{2028}' => Some("\\u2028"),
            '\u{2029}' => Some("\\u2029"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.push_str(&s[last..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        last = i + c.len_utf8();
    }
    out.push_str(&s[last..]);
    out.push('"');
}

/// `{"a":"b",...}`
pub fn write_labels(out: &mut String, l: &Labels) {
    out.push('{');
    for (i, (k, v)) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_str(out, v);
    }
    out.push('}');
}

/// Go `strconv.FormatFloat(v, 'f', -1, 64)`, with Prometheus' spellings of the specials.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust's shortest round-trip Display never uses exponents, like Go's 'f' with -1.
        format!("{v}")
    }
}

/// Unix seconds with up to three decimals, from milliseconds.
fn write_seconds(out: &mut String, ms: i64) {
    let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        let _ = write!(out, "{s}");
    } else {
        let f = format!("{frac:03}");
        let _ = write!(out, "{s}.{}", f.trim_end_matches('0'));
    }
}

/// Loki 3.x reports an instant scalar's time by scaling its nanosecond timestamp a
/// second time (int64 overflow included), so clients comparing answers see a large
/// number there rather than the query time; we answer the same (Grafana ignores it).
fn loki_scalar_time(ms: i64) -> i64 {
    ms.wrapping_mul(1_000_000).wrapping_mul(1000) / 1_000_000 * 1000
}

fn write_point(out: &mut String, ms: i64, v: f64) {
    out.push('[');
    write_seconds(out, ms);
    out.push_str(",\"");
    out.push_str(&format_value(v));
    out.push_str("\"]");
}

/// Execution figures reported in the `stats` object.
#[derive(Default, Debug, Clone)]
pub struct QueryStats {
    /// Time the engine ran, seconds.
    pub exec_time: f64,
    /// Time from the request's arrival until the engine started, seconds.
    pub queue_time: f64,
    /// Entries (log) or samples (metric) returned.
    pub entries_returned: u64,
    /// What the engine and storage read.
    pub read: std::sync::Arc<Stats>,
}

/// Loki's `stats` object: segments count as the querier's store (`decompressed*`), the
/// in-memory head as the ingester's (`headChunk*`); `pagesRead`, `segmentsRead` and
/// `chunksSkippedByContentIndex` are Silt's own (Loki's clients ignore keys they do not know).
fn write_stats(out: &mut String, st: &QueryStats) {
    let r = &*st.read;
    let get = Stats::get;
    let per_second = |n: u64| {
        if st.exec_time > 0.0 {
            (n as f64 / st.exec_time) as u64
        } else {
            0
        }
    };
    let head_chunk = serde_json::json!({
        "headChunkBytes": get(&r.head_bytes), "headChunkLines": get(&r.head_lines),
        "headChunkStructuredMetadataBytes": get(&r.head_metadata_bytes),
        "decompressedBytes": 0, "decompressedLines": 0,
        "decompressedStructuredMetadataBytes": 0, "compressedBytes": 0,
        "totalDuplicates": 0, "postFilterLines": 0,
    });
    let store_chunk = serde_json::json!({
        "headChunkBytes": 0, "headChunkLines": 0, "headChunkStructuredMetadataBytes": 0,
        "decompressedBytes": get(&r.decompressed_bytes),
        "decompressedLines": get(&r.decompressed_lines),
        "decompressedStructuredMetadataBytes": get(&r.decompressed_metadata_bytes),
        "compressedBytes": get(&r.compressed_bytes),
        "totalDuplicates": get(&r.duplicates),
        "postFilterLines": get(&r.post_filter_lines),
    });
    let md = r.metadata_bytes() > 0;
    let splits = get(&r.splits);
    let v = serde_json::json!({
        "summary": {
            "bytesProcessedPerSecond": per_second(r.bytes()),
            "linesProcessedPerSecond": per_second(r.lines()),
            "totalBytesProcessed": r.bytes(),
            "totalLinesProcessed": r.lines(),
            "execTime": st.exec_time,
            "queueTime": st.queue_time,
            "subqueries": splits,
            "totalEntriesReturned": st.entries_returned,
            "splits": splits,
            "shards": u64::from(splits > 0),
            "totalPostFilterLines": get(&r.post_filter_lines),
            "totalStructuredMetadataBytesProcessed": r.metadata_bytes(),
        },
        "querier": {"store": {
            "totalChunksRef": get(&r.chunks_ref),
            "totalChunksDownloaded": get(&r.chunks_downloaded),
            "chunksDownloadTime": get(&r.download_ns),
            "queryReferencedStructuredMetadata": md,
            "segmentsRead": get(&r.segments),
            "pagesRead": get(&r.pages),
            "chunksSkippedByContentIndex": get(&r.content_skipped_chunks),
            "chunk": store_chunk,
        }},
        "ingester": {
            "totalReached": u64::from(get(&r.head_lines) > 0),
            "totalChunksMatched": 0,
            "totalBatches": 0,
            "totalLinesSent": get(&r.head_lines),
            "store": {
                "totalChunksRef": 0, "totalChunksDownloaded": 0, "chunksDownloadTime": 0,
                "queryReferencedStructuredMetadata": md,
                "chunk": head_chunk,
            },
        },
        "cache": {},
        "index": {
            "totalChunks": get(&r.chunks_ref),
            "postFilterChunks": get(&r.chunks_downloaded),
            "shardsDuration": 0,
        },
    });
    let _ = write!(out, "{v}");
}

fn write_streams(out: &mut String, streams: &[StreamResult], categorize: bool) {
    out.push('[');
    for (i, s) in streams.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"stream\":");
        write_labels(out, &s.labels);
        out.push_str(",\"values\":[");
        for (j, r) in s.rows.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "[\"{}\",", r.ts);
            write_str(out, &r.line);
            if categorize {
                out.push_str(",{");
                let mut first = true;
                for (name, l) in [
                    ("structuredMetadata", &r.labels.metadata_out()),
                    ("parsed", &r.labels.parsed),
                ] {
                    if l.is_empty() {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    let _ = write!(out, "\"{name}\":");
                    write_labels(out, l);
                }
                out.push('}');
            }
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push(']');
}

/// The `query`/`query_range` success envelope.
pub fn query_response(result: &QueryResult, categorize: bool, stats: &QueryStats) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("{\"status\":\"success\",\"data\":{\"resultType\":");
    match result {
        QueryResult::Streams(streams) => {
            out.push_str("\"streams\",");
            if categorize {
                out.push_str("\"encodingFlags\":[\"categorize-labels\"],");
            }
            out.push_str("\"result\":");
            write_streams(&mut out, streams, categorize);
        }
        QueryResult::Matrix(series) => {
            out.push_str("\"matrix\",\"result\":[");
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(&mut out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, (ms, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_point(&mut out, *ms, *v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
        QueryResult::Vector(samples) => {
            out.push_str("\"vector\",\"result\":[");
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(&mut out, &s.labels);
                out.push_str(",\"value\":");
                write_point(&mut out, s.ts_ms, s.value);
                out.push('}');
            }
            out.push(']');
        }
        QueryResult::Scalar(ms, v) => {
            out.push_str("\"scalar\",\"result\":");
            write_point(&mut out, loki_scalar_time(*ms), *v);
        }
    }
    out.push_str(",\"stats\":");
    write_stats(&mut out, stats);
    out.push_str("}}");
    out
}

/// `{"status":"success","data":[...]}` for label names/values; `data` omitted when empty, as Loki does.
pub fn string_list(values: &[String]) -> String {
    let mut out = String::from("{\"status\":\"success\"");
    if !values.is_empty() {
        out.push_str(",\"data\":[");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(&mut out, v);
        }
        out.push(']');
    }
    out.push('}');
    out
}

/// `{"status":"success","data":[{labels}...]}` for `/series`.
pub fn series_list(series: &[std::sync::Arc<Labels>]) -> String {
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, l) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_labels(&mut out, l);
    }
    out.push_str("]}");
    out
}

/// One live tail frame: `{"streams":[...],"dropped_entries":[...],"encodingFlags":[...]}`,
/// in Loki's key order; `dropped_entries` only when some were dropped.
pub fn tail_frame(
    streams: &[StreamResult],
    dropped: &[(std::sync::Arc<Labels>, i64)],
    categorize: bool,
) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("{\"streams\":");
    write_streams(&mut out, streams, categorize);
    if !dropped.is_empty() {
        out.push_str(",\"dropped_entries\":[");
        for (i, (labels, ts)) in dropped.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"timestamp\":\"{ts}\",\"labels\":");
            write_labels(&mut out, labels);
            out.push('}');
        }
        out.push(']');
    }
    if categorize {
        out.push_str(",\"encodingFlags\":[\"categorize-labels\"]");
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use silt_query::{Sample, Series};

    #[test]
    fn tail_frames() {
        let labels = std::sync::Arc::new(Labels::from_pairs([("app", "a")]));
        let row = silt_query::LogRow {
            ts: 5,
            line: "x".into(),
            labels: silt_query::EntryLabels::new(labels.clone(), Labels::new()),
        };
        let streams = [StreamResult {
            labels: (*labels).clone(),
            rows: vec![row],
        }];
        assert_eq!(
            tail_frame(&streams, &[], false),
            r#"{"streams":[{"stream":{"app":"a"},"values":[["5","x"]]}]}"#
        );
        assert_eq!(
            tail_frame(&[], &[(labels, 7)], true),
            r#"{"streams":[],"dropped_entries":[{"timestamp":"7","labels":{"app":"a"}}],"encodingFlags":["categorize-labels"]}"#
        );
    }

    #[test]
    fn go_string_escaping() {
        let mut s = String::new();
        write_str(&mut s, "a<b>&\"c\"\\\n\u{1}é");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"c\"\\\n\u0001é""#);
    }

    #[test]
    fn values_and_times() {
        assert_eq!(format_value(2.0), "2");
        assert_eq!(format_value(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        let m = QueryResult::Matrix(vec![Series {
            labels: Labels::from_pairs([("a", "b")]),
            points: vec![(1_704_067_200_500, 1.5)],
        }]);
        let body = query_response(&m, false, &QueryStats::default());
        assert!(
            body.contains(r#""result":[{"metric":{"a":"b"},"values":[[1704067200.5,"1.5"]]}]"#),
            "{body}"
        );
        let v = QueryResult::Vector(vec![Sample {
            labels: Labels::new(),
            ts_ms: 4_000_000_000_000,
            value: 2.0,
        }]);
        let body = query_response(&v, false, &QueryStats::default());
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["data"]["result"][0]["value"][1], "2");
        assert!(parsed["data"]["stats"]["summary"].is_object());
    }

    #[test]
    fn instant_scalar_time_as_loki_reports_it() {
        // Loki 3.7.6 answered `10 % 3` at 2024-01-01T03:00:00Z with this time.
        let body = query_response(
            &QueryResult::Scalar(1_704_078_000_000, 1.0),
            false,
            &QueryStats::default(),
        );
        assert!(body.contains(r#""result":[6977545218721,"1"]"#), "{body}");
    }

    #[test]
    fn empty_label_list_omits_data() {
        assert_eq!(string_list(&[]), r#"{"status":"success"}"#);
        assert_eq!(
            string_list(&["a".into()]),
            r#"{"status":"success","data":["a"]}"#
        );
    }
}
