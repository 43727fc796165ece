//! Live tail (`/loki/api/v1/tail`) over a real WebSocket against the real binary.
//!
//! One server with `auth_enabled: true` serves every scenario; each scenario uses its
//! own tenant, so they cannot see each other's data or session slots.

use serde_json::Value;
use silt_testkit::{enc, free_port, http, now_ns, push_json, Server};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const CONFIG: &str = "auth_enabled: true
storage:
  wal_fsync: false
limits:
  ingestion_rate_mb: 1000
  ingestion_burst_size_mb: 1000
  max_concurrent_tail_requests: 3
";

/// Generous wait for anything that should take well under a second.
const WAIT: Duration = Duration::from_secs(20);

fn start(config: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        Path::new(env!("CARGO_BIN_EXE_silt")),
        dir.path(),
        config,
        free_port(),
    );
    (dir, server)
}

fn push(addr: &str, tenant: &str, stream: &[(&str, &str)], entries: &[(i64, String)]) {
    push_json(addr, Some(tenant), stream, entries);
}

struct Tail {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    pings: usize,
}

/// A received entry: its stream labels, timestamp, line and (categorized) label object.
#[derive(Debug, Clone)]
struct Row {
    stream: Value,
    ts: i64,
    line: String,
    extra: Option<Value>,
}

/// Opens a tail session; `Err((status, body))` when the server refuses the upgrade.
fn connect(
    addr: &str,
    tenant: Option<&str>,
    params: &str,
    headers: &[(&str, &str)],
) -> Result<Tail, (u16, String)> {
    let mut req = format!("ws://{addr}/loki/api/v1/tail?{params}")
        .into_client_request()
        .unwrap();
    for (k, v) in tenant.map(|t| ("X-Scope-OrgID", t)).iter().chain(headers) {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            tungstenite::http::HeaderValue::from_str(v).unwrap(),
        );
    }
    match tungstenite::connect(req) {
        Ok((ws, _)) => {
            if let MaybeTlsStream::Plain(s) = ws.get_ref() {
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
            }
            Ok(Tail { ws, pings: 0 })
        }
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("tail connect failed: {e}"),
    }
}

fn query_param(q: &str) -> String {
    format!("query={}", enc(q))
}

/// What one read produced.
enum Read {
    Frame(Value),
    Closed(Option<(u16, String)>),
    Nothing,
}

impl Tail {
    fn read(&mut self) -> Read {
        match self.ws.read() {
            Ok(Message::Text(t)) => Read::Frame(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Message::Ping(_)) => {
                self.pings += 1;
                Read::Nothing
            }
            Ok(Message::Close(f)) => {
                Read::Closed(f.map(|f| (u16::from(f.code), f.reason.to_string())))
            }
            Ok(_) => Read::Nothing,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Read::Nothing
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Read::Closed(None)
            }
            Err(e) => panic!("tail read failed: {e}"),
        }
    }

    /// Reads until the server has pinged once more (rows read meanwhile are left out);
    /// panics after [`WAIT`].
    fn next_ping(&mut self) {
        let deadline = Instant::now() + WAIT;
        let seen = self.pings;
        while self.pings == seen {
            assert!(Instant::now() < deadline, "no ping");
            if let Read::Closed(c) = self.read() {
                panic!("session closed: {c:?}");
            }
        }
    }

    /// Frames until `done(rows so far)` holds; panics after [`WAIT`].
    fn rows_until(
        &mut self,
        mut done: impl FnMut(&[Row], &[Value]) -> bool,
    ) -> (Vec<Row>, Vec<Value>) {
        let deadline = Instant::now() + WAIT;
        let mut rows = Vec::new();
        let mut frames = Vec::new();
        while !done(&rows, &frames) {
            assert!(
                Instant::now() < deadline,
                "timed out; got {} rows, the last: {:?}",
                rows.len(),
                rows.iter()
                    .rev()
                    .take(5)
                    .map(|r: &Row| &r.line)
                    .collect::<Vec<_>>()
            );
            match self.read() {
                Read::Frame(f) => {
                    rows.extend(frame_rows(&f));
                    frames.push(f);
                }
                Read::Closed(c) => panic!("session closed: {c:?}"),
                Read::Nothing => {}
            }
        }
        (rows, frames)
    }

    fn close(mut self) {
        let _ = self.ws.close(None);
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Read::Closed(_) = self.read() {
                return;
            }
        }
    }
}

fn frame_rows(f: &Value) -> Vec<Row> {
    let mut out = Vec::new();
    for s in f["streams"].as_array().expect("streams array") {
        for v in s["values"].as_array().unwrap() {
            out.push(Row {
                stream: s["stream"].clone(),
                ts: v[0].as_str().unwrap().parse().unwrap(),
                line: v[1].as_str().unwrap().to_string(),
                extra: v.get(2).cloned(),
            });
        }
    }
    out
}

fn lines(rows: &[Row]) -> Vec<&str> {
    rows.iter().map(|r| r.line.as_str()).collect()
}

#[test]
fn live_tail() {
    let (_dir, server) = start(CONFIG);
    let addr = server.addr.as_str();
    replay_limit_then_live_in_order(addr);
    pipeline_applies_to_live_entries(addr);
    delay_for_and_refusals(addr);
    tenants_are_isolated(addr);
    sessions_are_capped_and_freed(addr);
    slow_client_gets_dropped_entries(addr);
}

fn replay_limit_then_live_in_order(addr: &str) {
    let t = "t-order";
    let base = now_ns() - 10_000_000_000;
    let old: Vec<(i64, String)> = (0..30).map(|i| (base + i, format!("old {i}"))).collect();
    push(addr, t, &[("app", "a")], &old);
    let mut tail = connect(
        addr,
        Some(t),
        &format!("{}&limit=10", query_param(r#"{app=~"a|b"}"#)),
        &[],
    )
    .unwrap();
    // The replay is the newest `limit` entries, oldest first.
    let (rows, _) = tail.rows_until(|r, _| r.len() >= 10);
    let want: Vec<String> = (20..30).map(|i| format!("old {i}")).collect();
    assert_eq!(lines(&rows), want);

    // Live: two streams, several pushes each; every entry arrives once, in order per stream.
    let now = now_ns();
    for batch in 0..5 {
        for app in ["a", "b"] {
            let entries: Vec<(i64, String)> = (0..10)
                .map(|i| {
                    (
                        now + batch * 10 + i,
                        format!("{app} live {}", batch * 10 + i),
                    )
                })
                .collect();
            push(addr, t, &[("app", app)], &entries);
        }
    }
    let (rows, _) = tail.rows_until(|r, _| r.len() >= 100);
    assert_eq!(rows.len(), 100, "{:?}", lines(&rows));
    for app in ["a", "b"] {
        let got: Vec<&str> = rows
            .iter()
            .filter(|r| r.stream["app"] == app)
            .map(|r| r.line.as_str())
            .collect();
        let want: Vec<String> = (0..50).map(|i| format!("{app} live {i}")).collect();
        assert_eq!(got, want, "stream {app} out of order or incomplete");
        let ts: Vec<i64> = rows
            .iter()
            .filter(|r| r.stream["app"] == app)
            .map(|r| r.ts)
            .collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]));
    }
    tail.close();
}

fn pipeline_applies_to_live_entries(addr: &str) {
    let t = "t-pipe";
    let q = query_param(r#"{app="p"} |= "x" | json | level="error""#);
    let mut plain = connect(addr, Some(t), &q, &[]).unwrap();
    let mut cat = connect(
        addr,
        Some(t),
        &q,
        &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
    )
    .unwrap();
    let now = now_ns();
    let entries: Vec<(i64, String)> = [
        r#"{"level":"error","msg":"x1"}"#,
        r#"{"level":"info","msg":"x2"}"#,
        r#"{"level":"error","msg":"y3"}"#,
        r#"{"level":"error","msg":"x-end"}"#,
    ]
    .iter()
    .enumerate()
    .map(|(i, l)| (now + i as i64, l.to_string()))
    .collect();
    push(addr, t, &[("app", "p")], &entries);
    let (rows, _) = plain.rows_until(|r, _| r.iter().any(|r| r.line.contains("x-end")));
    assert_eq!(
        lines(&rows),
        [
            r#"{"level":"error","msg":"x1"}"#,
            r#"{"level":"error","msg":"x-end"}"#
        ]
    );
    // Without categorization the stream carries parsed labels and values are pairs.
    assert_eq!(rows[0].stream["level"], "error");
    assert_eq!(rows[0].stream["msg"], "x1");
    assert!(rows[0].extra.is_none());

    let (rows, frames) = cat.rows_until(|r, _| r.iter().any(|r| r.line.contains("x-end")));
    assert_eq!(rows.len(), 2);
    // Categorized: indexed labels only (service_name is discovered at push).
    assert_eq!(
        rows[0].stream,
        serde_json::json!({"app": "p", "service_name": "p"})
    );
    let extra = rows[0].extra.as_ref().expect("categorized 3-tuple");
    assert_eq!(extra["parsed"]["level"], "error");
    assert!(frames
        .iter()
        .all(|f| f["encodingFlags"] == serde_json::json!(["categorize-labels"])));
    plain.close();
    cat.close();
}

fn delay_for_and_refusals(addr: &str) {
    let t = "t-delay";
    let q = query_param(r#"{app="d"}"#);
    let mut tail = connect(addr, Some(t), &format!("{q}&delay_for=2"), &[]).unwrap();
    // Past the session's replay (which sends what it finds at once), so the entry below
    // arrives live and is held.
    tail.next_ping();
    push(addr, t, &[("app", "d")], &[(now_ns(), "delayed".into())]);
    let pinged = tail.pings;
    let (rows, _) = tail.rows_until(|r, _| !r.is_empty());
    assert_eq!(lines(&rows), ["delayed"]);
    // Held back about two seconds: the server pinged (every second) in the meantime.
    assert!(
        tail.pings > pinged,
        "no ping received while the entry was held"
    );
    tail.close();

    let refuse = |tenant: Option<&str>, params: &str| match connect(addr, tenant, params, &[]) {
        Ok(_) => panic!("tail with {params} was accepted"),
        Err(e) => e,
    };
    let (status, body) = refuse(Some(t), &format!("{q}&delay_for=6"));
    assert_eq!(status, 400);
    assert!(body.contains("delay_for can't be greater than 5"), "{body}");
    let (status, body) = refuse(Some(t), &query_param(r#"count_over_time({app="d"}[1m])"#));
    assert_eq!(status, 400);
    assert!(body.contains("only log selector is supported"), "{body}");
    let (status, _) = refuse(Some(t), &query_param(r#"{app="d""#));
    assert_eq!(status, 400);
    let (status, _) = refuse(None, &q);
    assert_eq!(status, 401);
    let (status, body) = refuse(Some(t), &format!("{q}&limit=100000"));
    assert_eq!(status, 400);
    assert!(
        body.contains("max entries limit per query exceeded"),
        "{body}"
    );
}

fn tenants_are_isolated(addr: &str) {
    let q = query_param(r#"{app="iso"}"#);
    let mut a = connect(addr, Some("t-iso-a"), &q, &[]).unwrap();
    let now = now_ns();
    push(
        addr,
        "t-iso-b",
        &[("app", "iso")],
        &[(now, "from b".into())],
    );
    push(
        addr,
        "t-iso-a",
        &[("app", "iso")],
        &[(now + 1, "from a".into())],
    );
    let (rows, _) = a.rows_until(|r, _| r.iter().any(|r| r.line == "from a"));
    assert_eq!(lines(&rows), ["from a"]);
    a.close();
}

fn tail_sessions_metric(addr: &str) -> f64 {
    let (_, body) = http(addr, "GET", "/metrics", &[], b"").unwrap();
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("silt_tail_sessions "))
        .expect("silt_tail_sessions in /metrics")
        .trim()
        .parse()
        .unwrap()
}

fn sessions_are_capped_and_freed(addr: &str) {
    let t = "t-slots";
    let q = query_param(r#"{app="s"}"#);
    let mut open: Vec<Tail> = (0..3)
        .map(|_| connect(addr, Some(t), &q, &[]).unwrap())
        .collect();
    assert!(tail_sessions_metric(addr) >= 3.0);
    let (status, body) = match connect(addr, Some(t), &q, &[]) {
        Ok(_) => panic!("fourth session accepted"),
        Err(e) => e,
    };
    assert_eq!(status, 400);
    assert!(
        body.contains("max concurrent tail requests limit exceeded, count > limit (4 > 3)"),
        "{body}"
    );
    // The cap is per tenant.
    connect(addr, Some("t-slots-other"), &q, &[])
        .unwrap()
        .close();
    // Closing one frees its slot (asynchronously, so retry for a while).
    open.pop().unwrap().close();
    let deadline = Instant::now() + WAIT;
    let again = loop {
        match connect(addr, Some(t), &q, &[]) {
            Ok(tail) => break tail,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.0, 400, "{}", e.1);
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("slot never freed: {e:?}"),
        }
    };
    // A client that vanishes without a close handshake frees its slot too.
    drop(again);
    drop(open.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let n: Vec<Tail> = (0..2)
            .filter_map(|_| connect(addr, Some(t), &q, &[]).ok())
            .collect();
        if n.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dropped connections kept their slots"
        );
        drop(n);
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn slow_client_gets_dropped_entries(addr: &str) {
    let t = "t-slow";
    let q = query_param(r#"{app="slow"}"#);
    let mut slow = connect(addr, Some(t), &q, &[]).unwrap();
    // ~24 MB while the client reads nothing: far more than socket buffers and the
    // session's queue hold.
    let pad = "x".repeat(1000);
    let mut ts = now_ns();
    for batch in 0..24 {
        let entries: Vec<(i64, String)> = (0..1000)
            .map(|i| {
                ts += 1;
                (ts, format!("slow {batch}-{i} {pad}"))
            })
            .collect();
        push(addr, t, &[("app", "slow")], &entries);
    }
    // The server stays healthy while the client lags.
    let (status, _) = http(addr, "GET", "/ready", &[], b"").unwrap();
    assert_eq!(status, 200);
    let mut other = connect(addr, Some(t), &query_param(r#"{app="fresh"}"#), &[]).unwrap();
    push(
        addr,
        t,
        &[("app", "fresh")],
        &[(now_ns(), "fresh line".into())],
    );
    other.rows_until(|r, _| !r.is_empty());
    other.close();

    // Now read: some frame reports dropped entries with their labels and timestamps.
    let (_, frames) = slow.rows_until(|_, f| f.iter().any(|f| f.get("dropped_entries").is_some()));
    let dropped: Vec<&Value> = frames
        .iter()
        .filter_map(|f| f.get("dropped_entries"))
        .flat_map(|d| d.as_array().unwrap())
        .collect();
    assert!(!dropped.is_empty());
    assert_eq!(dropped[0]["labels"]["app"], "slow");
    assert!(dropped[0]["timestamp"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .is_ok());
    // And the session goes on: a line pushed now still arrives.
    push(
        addr,
        t,
        &[("app", "slow")],
        &[(now_ns(), "after the flood".into())],
    );
    slow.rows_until(|r, _| r.iter().any(|r| r.line == "after the flood"));
    slow.close();
}

#[test]
fn session_closes_at_tail_max_duration() {
    let (_dir, server) = start("limits:\n  tail_max_duration: 2s\n");
    let mut tail = connect(&server.addr, None, &query_param(r#"{app="m"}"#), &[]).unwrap();
    let deadline = Instant::now() + WAIT;
    let close = loop {
        assert!(Instant::now() < deadline, "session not closed");
        if let Read::Closed(c) = tail.read() {
            break c;
        }
    };
    let (code, reason) = close.expect("close frame with a reason");
    assert_eq!(code, u16::from(CloseCode::Error));
    assert_eq!(reason, "reached tail max duration limit");
}
