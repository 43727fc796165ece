//! Live tail through the gateway: the client's WebSocket is answered by the gateway and
//! joined to sessions it opens upstream (with the tenant the gateway decided), frames
//! passed both ways until either side closes. In front of separate roles the reader
//! replays the history (its reads include the writers' unflushed lines) and every
//! writer sends what it takes from now on; entries both send are passed down once.

use axum::extract::ws::{Message as AxMsg, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as TMsg};

type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the upstream sessions first (`(node, path)`: writers first, so nothing taken
/// between the reader's replay and their start is missed), so a refusal (bad query, too
/// many tails) reaches the client as the node's own HTTP status and message; then
/// upgrades the client.
pub(super) async fn proxy(
    parts: &mut axum::http::request::Parts,
    nodes: &[(&str, String)],
    tenant: Option<&str>,
) -> Response {
    let upgrade = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let mut upstreams = Vec::new();
    for (node, path) in nodes {
        match open(node, path, tenant).await {
            Ok(u) => upstreams.push(u),
            Err(r) => return r,
        }
    }
    upgrade.on_upgrade(move |client| join(client, upstreams))
}

/// The tail path for writers: the client's, starting now (the reader replays before).
pub(super) fn live_only(path: &str) -> String {
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(q.as_bytes()).filter(|(k, _)| k != "start") {
        out.append_pair(&k, &v);
    }
    out.append_pair("start", &now.to_string());
    format!("{p}?{}", out.finish())
}

async fn open(node: &str, path: &str, tenant: Option<&str>) -> Result<Upstream, Response> {
    let reader = node;
    let Some(host) = reader.strip_prefix("http://") else {
        return Err((
            StatusCode::NOT_IMPLEMENTED,
            "live tail through the gateway needs http:// node URLs\n",
        )
            .into_response());
    };
    let mut req = match format!("ws://{}{path}", host.trim_end_matches('/')).into_client_request() {
        Ok(r) => r,
        Err(e) => return Err((StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response()),
    };
    if let Some(t) = tenant.and_then(|t| t.parse().ok()) {
        req.headers_mut().insert("x-scope-orgid", t);
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(resp)) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((status, body).into_response())
        }
        Err(e) => Err((
            StatusCode::BAD_GATEWAY,
            format!("tail on {reader} failed: {e}\n"),
        )
            .into_response()),
    }
}

async fn join(client: WebSocket, upstreams: Vec<Upstream>) {
    let (mut c_tx, mut c_rx) = client.split();
    let (mut u_txs, u_rxs): (Vec<_>, Vec<_>) = upstreams.into_iter().map(|u| u.split()).unzip();
    let mut u_rx = futures::stream::select_all(u_rxs);
    let mut seen = Seen::default();
    let down = async {
        while let Some(Ok(m)) = u_rx.next().await {
            let m = match m {
                TMsg::Text(t) => match seen.only_new(t.as_str()) {
                    Some(t) => AxMsg::Text(t.into()),
                    None => continue,
                },
                TMsg::Binary(b) => AxMsg::Binary(b),
                TMsg::Ping(b) => AxMsg::Ping(b),
                TMsg::Pong(b) => AxMsg::Pong(b),
                TMsg::Close(f) => AxMsg::Close(f.map(|f| axum::extract::ws::CloseFrame {
                    code: f.code.into(),
                    reason: f.reason.as_str().into(),
                })),
                TMsg::Frame(_) => continue,
            };
            let close = matches!(m, AxMsg::Close(_));
            if c_tx.send(m).await.is_err() || close {
                break;
            }
        }
    };
    let up = async {
        while let Some(Ok(m)) = c_rx.next().await {
            let m = match m {
                AxMsg::Text(t) => TMsg::Text(t.as_str().into()),
                AxMsg::Binary(b) => TMsg::Binary(b),
                AxMsg::Ping(b) => TMsg::Ping(b),
                AxMsg::Pong(b) => TMsg::Pong(b),
                AxMsg::Close(_) => break,
            };
            for u_tx in u_txs.iter_mut() {
                if u_tx.send(m.clone()).await.is_err() {
                    return;
                }
            }
        }
        for u_tx in u_txs.iter_mut() {
            let _ = u_tx.close().await;
        }
    };
    // Either side ending ends the session.
    tokio::select! {
        _ = down => {}
        _ = up => {}
    }
}

/// Identities of the entries passed down lately (the last [`Seen::KEEP`]), so an entry
/// two upstream sessions send reaches the client once.
#[derive(Default)]
struct Seen {
    set: std::collections::HashSet<u64>,
    order: std::collections::VecDeque<u64>,
}

impl Seen {
    const KEEP: usize = 100_000;

    /// The frame without entries already passed down; `None` when nothing is left.
    fn only_new(&mut self, text: &str) -> Option<String> {
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text) else {
            return Some(text.to_string());
        };
        let mut kept = 0;
        if let Some(streams) = v.get_mut("streams").and_then(|s| s.as_array_mut()) {
            for s in streams.iter_mut() {
                let labels = s.get("stream").map(|l| l.to_string()).unwrap_or_default();
                if let Some(values) = s.get_mut("values").and_then(|x| x.as_array_mut()) {
                    values.retain(|e| {
                        let id = xxhash_rust::xxh3::xxh3_64(format!("{labels}\0{e}").as_bytes());
                        if !self.set.insert(id) {
                            return false;
                        }
                        self.order.push_back(id);
                        if self.order.len() > Self::KEEP {
                            if let Some(old) = self.order.pop_front() {
                                self.set.remove(&old);
                            }
                        }
                        true
                    });
                    kept += values.len();
                }
            }
            streams.retain(|s| s["values"].as_array().is_some_and(|v| !v.is_empty()));
        }
        let dropped = v
            .get("dropped_entries")
            .is_some_and(|d| d.as_array().is_some_and(|a| !a.is_empty()));
        (kept > 0 || dropped).then(|| v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_sent_by_two_sessions_pass_once() {
        let frame = |vals: &[(&str, &str)]| {
            let values: Vec<_> = vals
                .iter()
                .map(|(t, l)| serde_json::json!([t, l]))
                .collect();
            serde_json::json!({"streams": [{"stream": {"app": "a"}, "values": values}]}).to_string()
        };
        let mut seen = Seen::default();
        let first = frame(&[("1", "x"), ("2", "y")]);
        assert!(seen.only_new(&first).is_some());
        assert_eq!(seen.only_new(&first), None, "a frame already passed");
        let later = seen.only_new(&frame(&[("2", "y"), ("3", "z")])).unwrap();
        assert_eq!(later, frame(&[("3", "z")]));
        // Same line at another time, or in another stream, is another entry.
        assert!(seen.only_new(&frame(&[("4", "x")])).is_some());
        let other = r#"{"streams":[{"stream":{"app":"b"},"values":[["1","x"]]}]}"#;
        assert!(seen.only_new(other).is_some());
        // Dropped-entry notices always pass.
        let dropped = r#"{"streams":[],"dropped_entries":[{"labels":"{}","timestamp":"1"}]}"#;
        assert!(seen.only_new(dropped).is_some());
        assert_eq!(
            live_only("/loki/api/v1/tail?query=%7Ba%3D%22b%22%7D&start=5&limit=10")
                .split('?')
                .nth(1)
                .map(|q| q.contains("start=5")),
            Some(false)
        );
    }
}
