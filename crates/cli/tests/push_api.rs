//! Push API behaviour over real HTTP: status codes and messages for good and bad input,
//! tenants, and the rate limit.

use silt_model::{Entry, Labels};
use silt_proto::{encode_push_protobuf, PushStream};
use silt_testkit::{enc, free_port, http, now_ns, Server};

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_silt"))
}

fn push(addr: &str, ctype: &str, extra: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut h = vec![("Content-Type", ctype)];
    h.extend_from_slice(extra);
    let (s, b) = http(addr, "POST", "/loki/api/v1/push", &h, body).unwrap();
    (s, String::from_utf8_lossy(&b).into_owned())
}

fn count(addr: &str, query: &str, tenant: Option<&str>) -> usize {
    let path = format!(
        "/loki/api/v1/query_range?query={}&limit=1000&since=1h",
        enc(query)
    );
    let h: Vec<(&str, &str)> = tenant
        .map(|t| vec![("X-Scope-OrgID", t)])
        .unwrap_or_default();
    let (status, body) = http(addr, "GET", &path, &h, b"").unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"].as_array().unwrap().len())
        .sum()
}

#[test]
fn bad_input_gets_loki_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        bin(),
        dir.path(),
        "limits:\n  max_recv_msg_size: 64KiB\n",
        free_port(),
    );
    let a = &s.addr;
    let ts = now_ns();

    let ok = format!(r#"{{"streams":[{{"stream":{{"app":"x"}},"values":[["{ts}","hello"]]}}]}}"#);
    assert_eq!(push(a, "application/json", &[], ok.as_bytes()).0, 204);
    // Malformed bodies.
    assert_eq!(push(a, "application/json", &[], b"{not json").0, 400);
    assert_eq!(
        push(a, "application/x-protobuf", &[], b"\xff\x00garbage").0,
        400
    );
    let (st, msg) = push(
        a,
        "application/json",
        &[("Content-Encoding", "br")],
        ok.as_bytes(),
    );
    assert_eq!((st, msg.contains("not supported")), (400, true), "{msg}");
    // A number where Loki wants a string timestamp.
    let num_ts = format!(r#"{{"streams":[{{"stream":{{"app":"x"}},"values":[[{ts},"hello"]]}}]}}"#);
    assert_eq!(push(a, "application/json", &[], num_ts.as_bytes()).0, 400);
    // Invalid label name in a protobuf label string.
    let bad = encode_push_protobuf(&[PushStream {
        labels: Labels::from_pairs([("k8s.pod", "x")]),
        entries: vec![Entry {
            ts,
            line: "l".into(),
            metadata: Labels::new(),
        }],
    }]);
    let (st, msg) = push(a, "application/x-protobuf", &[], &bad);
    assert_eq!(st, 400, "{msg}");
    // No streams at all.
    assert_eq!(
        push(a, "application/json", &[], br#"{"streams":[]}"#).0,
        422
    );
    // Body over max_recv_msg_size.
    let big = vec![b' '; 100 * 1024];
    assert_eq!(push(a, "application/json", &[], &big).0, 413);
    // Partial acceptance: one good entry, one too old → 400, and the good one is stored.
    let old = ts - 30 * 24 * 3600 * 1_000_000_000;
    let mixed = format!(
        r#"{{"streams":[{{"stream":{{"app":"partial"}},"values":[["{ts}","kept"],["{old}","too old"]]}}]}}"#
    );
    let (st, msg) = push(a, "application/json", &[], mixed.as_bytes());
    assert_eq!(st, 400);
    assert!(msg.contains("too old"), "{msg}");
    assert_eq!(count(a, r#"{app="partial"}"#, None), 1);
    // Line over max_line_size.
    let long = format!(
        r#"{{"streams":[{{"stream":{{"app":"x"}},"values":[["{ts}","{}"]]}}]}}"#,
        "a".repeat(300 * 1024)
    );
    let s2dir = tempfile::tempdir().unwrap();
    let s2 = Server::start(bin(), s2dir.path(), "", free_port());
    let (st, msg) = push(&s2.addr, "application/json", &[], long.as_bytes());
    assert_eq!(st, 400, "{msg}");
    // Bad queries: 400 with Loki's messages (the template one once hung a query thread).
    for (q, want) in [
        (r#"{app="partial"} |= "#, "parse error at line 1"),
        (
            r#"variants(count_over_time({app="partial"}[1m])) of ({app="partial"}[1m])"#,
            "multi variant queries are disabled for this instance",
        ),
        (
            r#"{app="partial"} | line_format "{{.x)}}""#,
            "unexpected right paren",
        ),
        (
            r#"sum(rate({app="partial"} |~ "(" [1m]))"#,
            "invalid line filter regex",
        ),
    ] {
        let path = format!("/loki/api/v1/query_range?query={}&since=1h", enc(q));
        let (st, body) = http(a, "GET", &path, &[], b"").unwrap();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(st, 400, "{q}: {body}");
        assert!(body.contains(want), "{q}: {body}");
    }
    // The server survived all of it.
    assert_eq!(http(a, "GET", "/ready", &[], b"").unwrap().0, 200);
}

#[test]
fn tenants_are_isolated_and_required_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(bin(), dir.path(), "auth_enabled: true\n", free_port());
    let ts = now_ns();
    let body =
        format!(r#"{{"streams":[{{"stream":{{"app":"t"}},"values":[["{ts}","secret"]]}}]}}"#);
    let (st, msg) = push(&s.addr, "application/json", &[], body.as_bytes());
    assert_eq!((st, msg.as_str()), (401, "no org id"));
    assert_eq!(
        push(
            &s.addr,
            "application/json",
            &[("X-Scope-OrgID", "team-a")],
            body.as_bytes()
        )
        .0,
        204
    );
    assert_eq!(count(&s.addr, r#"{app="t"}"#, Some("team-a")), 1);
    assert_eq!(count(&s.addr, r#"{app="t"}"#, Some("team-b")), 0);
    let (st, _) = http(
        &s.addr,
        "GET",
        "/loki/api/v1/labels",
        &[("X-Scope-OrgID", "team-b")],
        b"",
    )
    .unwrap();
    assert_eq!(st, 200);
    let (st, _) = http(&s.addr, "GET", "/loki/api/v1/labels", &[], b"").unwrap();
    assert_eq!(st, 401);
}

#[test]
fn stream_limit_answers_429_and_keeps_the_streams_within_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        bin(),
        dir.path(),
        "limits:\n  max_global_streams_per_user: 2\n",
        free_port(),
    );
    let ts = now_ns();
    let body = format!(
        r#"{{"streams":[{{"stream":{{"app":"s1"}},"values":[["{ts}","a"]]}},{{"stream":{{"app":"s2"}},"values":[["{ts}","b"]]}},{{"stream":{{"app":"s3"}},"values":[["{ts}","c"]]}}]}}"#
    );
    let (st, msg) = push(&s.addr, "application/json", &[], body.as_bytes());
    assert_eq!(st, 429, "{msg}");
    assert!(msg.contains("stream limit"), "{msg}");
    assert_eq!(count(&s.addr, r#"{app=~"s.+"}"#, None), 2);
    // Existing streams keep accepting entries.
    let again = format!(
        r#"{{"streams":[{{"stream":{{"app":"s1"}},"values":[["{}","d"]]}}]}}"#,
        ts + 1
    );
    assert_eq!(
        push(&s.addr, "application/json", &[], again.as_bytes()).0,
        204
    );
}

#[test]
fn rate_limit_answers_429() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        bin(),
        dir.path(),
        "limits:\n  ingestion_rate_mb: 0.01\n  ingestion_burst_size_mb: 0.02\n",
        free_port(),
    );
    let ts = now_ns();
    let line = "x".repeat(8000);
    let body =
        format!(r#"{{"streams":[{{"stream":{{"app":"r"}},"values":[["{ts}","{line}"]]}}]}}"#);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(push(&s.addr, "application/json", &[], body.as_bytes()).0);
    }
    assert_eq!(statuses[0], 204);
    assert!(statuses.contains(&429), "{statuses:?}");
}
