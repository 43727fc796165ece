//! Readers see writers' unflushed lines (issue #13): a writer answers
//! `GET /internal/v1/unflushed` with what its heads hold for a selector and time range,
//! and a reader's [`ClusterSource`] asks every writer in `cluster.writer_urls` on each
//! read and queries that beside the bucket's segments. A line is thus visible from its
//! push on, not only once flushed.

use crate::app::{tenant, ApiError, AppState};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use silt_model::{LabelMatcher, Labels, MatchOp, Timestamp};
use silt_proto::{DecodeLimits, PushStream};
use silt_query::{LogSource, SelectRequest, Shards, StreamCursor};
use silt_storage::{Overlay, SliceStats, Store, StoreSource};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// The path writers answer on.
pub(crate) const PATH: &str = "/internal/v1/unflushed";
/// Response header: ids of the tenant's segments the writer flushed lately.
const SEGMENTS: &str = "x-silt-segments";

#[derive(Deserialize)]
pub(crate) struct Params {
    /// JSON `[[name, op, value], ...]`.
    matchers: String,
    start: Timestamp,
    end: Timestamp,
    #[serde(default)]
    what: What,
}

/// What a writer answers.
#[derive(Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum What {
    /// Streams and their entries (queries).
    #[default]
    Entries,
    /// Streams alone (labels and series endpoints).
    Streams,
    /// Each stream's bytes, entries and time span, as JSON (index volume).
    Stats,
}

impl What {
    fn as_str(self) -> &'static str {
        match self {
            What::Entries => "entries",
            What::Streams => "streams",
            What::Stats => "stats",
        }
    }
}

/// One head stream's size, as a writer tells it.
#[derive(serde::Serialize, Deserialize)]
struct StreamStats {
    labels: String,
    bytes: u64,
    entries: u64,
    min_ts: Timestamp,
    max_ts: Timestamp,
}

/// The writer's side: its heads' entries (protobuf + snappy, Loki's push format) and, in
/// [`SEGMENTS`], the segments it flushed lately, read after the heads.
pub(crate) async fn serve(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    let matchers = decode_matchers(&p.matchers).map_err(ApiError::bad_request)?;
    let store = state.store.clone();
    let (body, segments) = tokio::task::spawn_blocking(move || {
        let range = (p.start, p.end);
        let body = if p.what == What::Stats {
            // A writer's slices are its head streams (it keeps no catalog).
            let stats: Vec<StreamStats> = store
                .stream_slices(&tenant, &matchers, p.start, p.end)
                .into_iter()
                .map(|s| StreamStats {
                    labels: s.labels.to_string(),
                    bytes: s.bytes,
                    entries: s.entries,
                    min_ts: s.min_ts,
                    max_ts: s.max_ts,
                })
                .collect();
            serde_json::to_vec(&stats).unwrap_or_default()
        } else {
            let streams: Vec<PushStream> = store
                .unflushed(&tenant, &matchers, range, p.what == What::Entries)
                .into_iter()
                .map(|(labels, entries)| PushStream { labels, entries })
                .collect();
            silt_proto::encode_push_protobuf(&streams)
        };
        // After the heads: a line missing from them is in one of these.
        (body, store.recent_segments(&tenant))
    })
    .await
    .map_err(|e| ApiError::new(500, format!("reading the heads failed: {e}")))?;
    let ct = match p.what {
        What::Stats => "application/json",
        _ => "application/x-protobuf",
    };
    let mut resp = ([("content-type", ct)], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&segments.join(",")) {
        resp.headers_mut().insert(SEGMENTS, v);
    }
    Ok(resp)
}

fn encode_matchers(matchers: &[LabelMatcher]) -> String {
    let v: Vec<[&str; 3]> = matchers
        .iter()
        .map(|m| [m.name.as_str(), m.op.as_str(), m.value.as_str()])
        .collect();
    serde_json::to_string(&v).unwrap_or_default()
}

fn decode_matchers(s: &str) -> Result<Vec<LabelMatcher>, String> {
    let v: Vec<[String; 3]> = serde_json::from_str(s).map_err(|e| format!("matchers: {e}"))?;
    v.into_iter()
        .map(|[name, op, value]| {
            let op = match op.as_str() {
                "=" => MatchOp::Eq,
                "!=" => MatchOp::Neq,
                "=~" => MatchOp::Re,
                "!~" => MatchOp::Nre,
                other => return Err(format!("unknown matcher operator {other:?}")),
            };
            LabelMatcher::new(name, op, value).map_err(|e| e.to_string())
        })
        .collect()
}

/// The writers a reader asks.
pub(crate) struct Writers {
    nodes: Arc<crate::discovery::Nodes>,
    client: reqwest::Client,
    /// The runtime the requests run on (the engine runs on blocking threads).
    rt: tokio::runtime::Handle,
    auth: bool,
}

impl Writers {
    /// Needs a Tokio runtime (the server's).
    pub(crate) fn new(urls: Vec<String>, timeout: Duration, auth: bool) -> Self {
        let nodes = crate::discovery::Nodes::new(urls);
        nodes.spawn_refresh();
        Writers {
            nodes,
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .unwrap_or_default(),
            rt: tokio::runtime::Handle::current(),
            auth,
        }
    }

    /// Every writer's unflushed streams (see [`Writers::ask`]).
    async fn fetch(
        &self,
        store: &Store,
        tenant: &str,
        matchers: &[LabelMatcher],
        range: (Timestamp, Timestamp),
        streams_only: bool,
    ) -> Result<Vec<PushStream>, String> {
        let what = if streams_only {
            What::Streams
        } else {
            What::Entries
        };
        self.ask(store, tenant, matchers, range, what, |body| {
            let limits = DecodeLimits {
                max_recv_msg_size: usize::MAX,
                max_decompressed_size: usize::MAX,
                ..DecodeLimits::default()
            };
            let req =
                silt_proto::decode_push(body, Some("application/x-protobuf"), None, false, &limits)
                    .map_err(|e| e.to_string())?;
            Ok(req.streams)
        })
        .await
    }

    /// Every writer's head streams' sizes (see [`Writers::ask`]).
    async fn fetch_stats(
        &self,
        store: &Store,
        tenant: &str,
        matchers: &[LabelMatcher],
        range: (Timestamp, Timestamp),
    ) -> Result<Vec<SliceStats>, String> {
        self.ask(store, tenant, matchers, range, What::Stats, |body| {
            let stats: Vec<StreamStats> =
                serde_json::from_slice(body).map_err(|e| e.to_string())?;
            stats
                .into_iter()
                .map(|s| {
                    Ok(SliceStats {
                        labels: Arc::new(
                            silt_proto::parse_label_string(&s.labels).map_err(|e| e.to_string())?,
                        ),
                        bytes: s.bytes,
                        entries: s.entries,
                        min_ts: s.min_ts,
                        max_ts: s.max_ts,
                    })
                })
                .collect()
        })
        .await
    }

    /// Asks every writer at once for `what`, each answer decoded by `decode`. Any writer
    /// failing fails the read: an answer without its lines would look complete. Then,
    /// when the writers name segments they flushed lately that `store`'s catalog lacks,
    /// lists the bucket, so a line that left a writer's head since the last refresh is
    /// read from its segment.
    async fn ask<T>(
        &self,
        store: &Store,
        tenant: &str,
        matchers: &[LabelMatcher],
        (start, end): (Timestamp, Timestamp),
        what: What,
        decode: impl Fn(&[u8]) -> Result<Vec<T>, String>,
    ) -> Result<Vec<T>, String> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("matchers", &encode_matchers(matchers))
            .append_pair("start", &start.to_string())
            .append_pair("end", &end.to_string())
            .append_pair("what", what.as_str())
            .finish();
        let decode = &decode;
        let urls = self.nodes.get();
        let calls = urls.iter().map(|url| {
            let mut req = self.client.get(format!("{url}{PATH}?{query}"));
            if self.auth {
                req = req.header("X-Scope-OrgID", tenant);
            }
            async move {
                let fail = |e: String| format!("writer {url}: {e}");
                let resp = req.send().await.map_err(|e| fail(e.to_string()))?;
                if !resp.status().is_success() {
                    return Err(fail(format!("answered {}", resp.status())));
                }
                let segments: Vec<String> = resp
                    .headers()
                    .get(SEGMENTS)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| {
                        v.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                let body = resp.bytes().await.map_err(|e| fail(e.to_string()))?;
                Ok((decode(&body).map_err(fail)?, segments))
            }
        });
        let mut items = Vec::new();
        let mut segments = Vec::new();
        for r in futures::future::join_all(calls).await {
            let (s, g) = r?;
            items.extend(s);
            segments.extend(g);
        }
        if !store.unknown_segments(tenant, &segments).is_empty() {
            store
                .refresh_catalog()
                .await
                .map_err(|e| format!("listing the bucket: {e}"))?;
        }
        Ok(items)
    }
}

/// The streams of `tenant` matching `matchers` with data in `[start, end)`: the store's,
/// and on a reader the writers' unflushed ones (labels and series endpoints).
pub(crate) async fn streams(
    state: &AppState,
    tenant: &str,
    matchers: &[LabelMatcher],
    (start, end): (Timestamp, Timestamp),
) -> Result<Vec<Arc<Labels>>, ApiError> {
    let mut set: BTreeSet<Arc<Labels>> = BTreeSet::new();
    if let Some(w) = &state.writers {
        let streams = w
            .fetch(&state.store, tenant, matchers, (start, end), true)
            .await
            .map_err(|e| ApiError::new(500, e))?;
        set.extend(streams.into_iter().map(|s| Arc::new(s.labels)));
    }
    set.extend(state.store.streams(tenant, matchers, start, end));
    Ok(set.into_iter().collect())
}

/// The slices of `tenant`'s streams matching `matchers` overlapping `[start, end)`: the
/// store's, and on a reader the writers' head streams (index volume endpoints).
pub(crate) async fn slices(
    state: &AppState,
    tenant: &str,
    matchers: &[LabelMatcher],
    (start, end): (Timestamp, Timestamp),
) -> Result<Vec<SliceStats>, ApiError> {
    let mut out = Vec::new();
    if let Some(w) = &state.writers {
        out = w
            .fetch_stats(&state.store, tenant, matchers, (start, end))
            .await
            .map_err(|e| ApiError::new(500, e))?;
    }
    out.extend(state.store.stream_slices(tenant, matchers, start, end));
    Ok(out)
}

/// The store plus the writers' unflushed data: what a reader queries. One per query: the
/// engine asks for counts, shards, then entries of the same read until one answers, so
/// the last fetch is kept for the next call.
pub(crate) struct ClusterSource {
    store: Arc<Store>,
    writers: Arc<Writers>,
    last: parking_lot::Mutex<Option<(ReadKey, Option<Arc<Overlay>>)>>,
}

/// What one fetch from the writers answered: tenant, matchers, range.
type ReadKey = (String, Vec<LabelMatcher>, Timestamp, Timestamp);

impl ClusterSource {
    pub(crate) fn new(store: Arc<Store>, writers: Arc<Writers>) -> Self {
        ClusterSource {
            store,
            writers,
            last: Default::default(),
        }
    }

    fn source(&self) -> StoreSource {
        StoreSource(self.store.clone())
    }

    /// The writers' unflushed entries of the request's streams (`None`: none).
    fn overlay(&self, req: &SelectRequest<'_>) -> silt_query::Result<Option<Arc<Overlay>>> {
        let key = (
            req.tenant.to_string(),
            req.matchers.to_vec(),
            req.start,
            req.end,
        );
        if let Some((k, o)) = &*self.last.lock() {
            if *k == key {
                return Ok(o.clone());
            }
        }
        let range = (req.start, req.end);
        let streams = self
            .writers
            .rt
            .block_on(
                self.writers
                    .fetch(&self.store, req.tenant, req.matchers, range, false),
            )
            .map_err(silt_query::Error::Source)?;
        let overlay = (!streams.is_empty()).then(|| {
            let batches = streams.into_iter().map(|s| (s.labels, s.entries)).collect();
            Arc::new(Overlay::new(req.tenant, batches))
        });
        *self.last.lock() = Some((key, overlay.clone()));
        Ok(overlay)
    }
}

impl LogSource for ClusterSource {
    fn select(&self, req: &SelectRequest<'_>) -> silt_query::Result<Vec<StreamCursor>> {
        let overlay = self.overlay(req)?;
        self.source().select_with(req, overlay.as_deref())
    }

    fn timestamps(
        &self,
        req: &SelectRequest<'_>,
        metadata: &[String],
    ) -> silt_query::Result<Option<Vec<silt_query::source::StreamTimestamps>>> {
        let overlay = self.overlay(req)?;
        self.source()
            .timestamps_with(req, metadata, overlay.as_deref())
    }

    fn shards(
        &self,
        req: &SelectRequest<'_>,
        n: usize,
        metadata: Option<&[String]>,
    ) -> silt_query::Result<Option<Box<dyn Shards>>> {
        let overlay = self.overlay(req)?;
        self.source()
            .shards_with(req, n, metadata, overlay.as_deref())
    }

    fn entries_hint(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Option<u64> {
        self.source().entries_hint(tenant, matchers, start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_survive_the_query_string() {
        let ms = vec![
            LabelMatcher::new("app", MatchOp::Eq, "a\"b\\c ü").unwrap(),
            LabelMatcher::new("env", MatchOp::Nre, "prod|stag.*").unwrap(),
            LabelMatcher::new("x", MatchOp::Neq, "").unwrap(),
            LabelMatcher::new("y", MatchOp::Re, ".+").unwrap(),
        ];
        assert_eq!(decode_matchers(&encode_matchers(&ms)).unwrap(), ms);
        assert!(decode_matchers(r#"[["a","==","b"]]"#).is_err());
        assert!(decode_matchers(r#"[["a","=~","("]]"#).is_err());
    }
}
