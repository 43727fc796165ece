//! Live tail through the gateway: the client's WebSocket is answered by the gateway and
//! joined to one opened to a reader (with the tenant the gateway decided), frames passed
//! both ways until either side closes.

use axum::extract::ws::{Message as AxMsg, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as TMsg};

/// Opens the reader's tail first, so a refusal (bad query, too many tails) reaches the
/// client as the reader's own HTTP status and message; then upgrades the client.
pub(super) async fn proxy(
    parts: &mut axum::http::request::Parts,
    reader: &str,
    path: &str,
    tenant: Option<&str>,
) -> Response {
    let upgrade = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let Some(host) = reader.strip_prefix("http://") else {
        return (
            StatusCode::NOT_IMPLEMENTED,
            "live tail through the gateway needs http:// read_urls\n",
        )
            .into_response();
    };
    let mut req = match format!("ws://{}{path}", host.trim_end_matches('/')).into_client_request() {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response(),
    };
    if let Some(t) = tenant.and_then(|t| t.parse().ok()) {
        req.headers_mut().insert("x-scope-orgid", t);
    }
    let upstream = match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => ws,
        Err(WsError::Http(resp)) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            return (status, body).into_response();
        }
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("tail on {reader} failed: {e}\n"),
            )
                .into_response()
        }
    };
    upgrade.on_upgrade(move |client| join(client, upstream))
}

async fn join(
    client: WebSocket,
    upstream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) {
    let (mut c_tx, mut c_rx) = client.split();
    let (mut u_tx, mut u_rx) = upstream.split();
    let down = async {
        while let Some(Ok(m)) = u_rx.next().await {
            let m = match m {
                TMsg::Text(t) => AxMsg::Text(t.as_str().into()),
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
            if u_tx.send(m).await.is_err() {
                break;
            }
        }
        let _ = u_tx.close().await;
    };
    // Either side ending ends the session.
    tokio::select! {
        _ = down => {}
        _ = up => {}
    }
}
