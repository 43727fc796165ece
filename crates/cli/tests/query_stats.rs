//! Query statistics are what the query really read (head, then segments after a flush),
//! and refused requests are logged for operators with tenant, route, status and reason.

use silt_testkit::{enc, free_port, http, now_ns, Server};

const CONFIG: &str = "
auth_enabled: true
limits:
  ingestion_rate_mb: 0.01
  ingestion_burst_size_mb: 0.01
";

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_silt"))
}

fn push(addr: &str, tenant: &str, lines: &[String], ts0: i64) -> (u16, String) {
    let values: Vec<serde_json::Value> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| serde_json::json!([(ts0 + i as i64).to_string(), l]))
        .collect();
    let body = serde_json::json!({"streams":[{"stream":{"app":"a"},"values":values}]});
    let (s, b) = http(
        addr,
        "POST",
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/json"),
            ("X-Scope-OrgID", tenant),
        ],
        body.to_string().as_bytes(),
    )
    .unwrap();
    (s, String::from_utf8_lossy(&b).into_owned())
}

fn stats(addr: &str, tenant: &str, query: &str) -> serde_json::Value {
    let path = format!(
        "/loki/api/v1/query_range?query={}&limit=1000&since=1h&step=60",
        enc(query)
    );
    let (s, b) = http(addr, "GET", &path, &[("X-Scope-OrgID", tenant)], b"").unwrap();
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    v["data"]["stats"].clone()
}

#[test]
fn stats_count_what_was_read_and_refusals_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(bin(), dir.path(), CONFIG, free_port());
    let a = &s.addr;
    let lines: Vec<String> = (0..100)
        .map(|i| format!("line {i} {}", if i % 2 == 0 { "err" } else { "ok" }))
        .collect();
    let line_bytes: u64 = lines.iter().map(|l| l.len() as u64).sum();
    assert_eq!(push(a, "t1", &lines, now_ns() - 1_000_000_000).0, 204);

    // From the head: every line in range is processed, half pass the filter.
    let st = stats(a, "t1", r#"{app="a"} |= "err""#);
    let sum = &st["summary"];
    assert_eq!(sum["totalLinesProcessed"], 100, "{st}");
    assert_eq!(sum["totalPostFilterLines"], 50, "{st}");
    assert_eq!(sum["totalEntriesReturned"], 50, "{st}");
    let head = &st["ingester"]["store"]["chunk"];
    assert_eq!(head["headChunkLines"], 100, "{st}");
    assert_eq!(head["headChunkBytes"], line_bytes, "{st}");
    // detected_level is structured metadata added at ingest: counted on top of lines.
    assert!(
        sum["totalBytesProcessed"].as_u64().unwrap() > line_bytes,
        "{st}"
    );
    assert!(sum["execTime"].as_f64().unwrap() > 0.0, "{st}");
    assert_eq!(st["querier"]["store"]["chunk"]["decompressedLines"], 0);

    // From a segment after a flush: decoded rows, pages and the segment are counted.
    let (code, _) = http(a, "POST", "/flush", &[], b"").unwrap();
    assert_eq!(code, 204);
    let st = stats(a, "t1", r#"{app="a"} |= "err""#);
    let store = &st["querier"]["store"];
    assert_eq!(store["chunk"]["decompressedLines"], 100, "{st}");
    assert_eq!(store["chunk"]["decompressedBytes"], line_bytes, "{st}");
    assert_eq!(store["chunk"]["postFilterLines"], 50, "{st}");
    assert!(
        store["chunk"]["compressedBytes"].as_u64().unwrap() > 0,
        "{st}"
    );
    assert_eq!(store["segmentsRead"], 1, "{st}");
    assert!(store["pagesRead"].as_u64().unwrap() >= 3, "{st}");
    assert_eq!(store["totalChunksDownloaded"], 1, "{st}");
    assert_eq!(st["ingester"]["store"]["chunk"]["headChunkLines"], 0);
    assert_eq!(st["summary"]["totalLinesProcessed"], 100);
    assert_eq!(store["chunksSkippedByContentIndex"], 0, "{st}");

    // A word no line holds: the content index rules the segment out unread.
    let st = stats(a, "t1", r#"{app="a"} |= " warn ""#);
    let store = &st["querier"]["store"];
    assert_eq!(store["chunksSkippedByContentIndex"], 1, "{st}");
    assert_eq!(store["segmentsRead"], 0, "{st}");
    assert_eq!(st["summary"]["totalLinesProcessed"], 0, "{st}");
    // A word one line holds: read as before.
    let st = stats(a, "t1", r#"{app="a"} |= " 3 ""#);
    assert_eq!(st["querier"]["store"]["chunksSkippedByContentIndex"], 0);
    assert_eq!(st["summary"]["totalPostFilterLines"], 1, "{st}");

    // A metric query counts every sample it kept.
    let st = stats(a, "t1", r#"sum(count_over_time({app="a"}[5m]))"#);
    assert_eq!(st["summary"]["totalLinesProcessed"], 100, "{st}");
    assert_eq!(st["summary"]["totalPostFilterLines"], 100, "{st}");
    // Another tenant reads nothing of t1's.
    let st = stats(a, "t2", r#"{app="a"}"#);
    assert_eq!(st["summary"]["totalLinesProcessed"], 0, "{st}");

    // Refusals: a bad query (400), no tenant (401), over the rate limit (429).
    let (code, _) = http(
        a,
        "GET",
        &format!("/loki/api/v1/query_range?query={}", enc("{app=")),
        &[("X-Scope-OrgID", "t1")],
        b"",
    )
    .unwrap();
    assert_eq!(code, 400);
    let (code, _) = http(a, "GET", "/loki/api/v1/labels", &[], b"").unwrap();
    assert_eq!(code, 401);
    let big: Vec<String> = (0..20)
        .map(|i| format!("{i} {}", "x".repeat(1000)))
        .collect();
    let (code, msg) = push(a, "t3", &big, now_ns());
    assert_eq!(code, 429, "{msg}");
    let log = wait_for(&s, "status=429");
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("request refused"))
        .collect();
    let find = |needle: &str| {
        refused
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no refusal with {needle} in:\n{log}"))
            .to_string()
    };
    let bad = find("status=400");
    assert!(bad.contains("INFO"), "{bad}");
    assert!(bad.contains("tenant=\"t1\""), "{bad}");
    assert!(bad.contains("route=\"/loki/api/v1/query_range\""), "{bad}");
    assert!(bad.contains("parse error"), "{bad}");
    let no_tenant = find("status=401");
    assert!(no_tenant.contains("no org id"), "{no_tenant}");
    let limited = find("status=429");
    assert!(limited.contains("WARN"), "{limited}");
    assert!(limited.contains("tenant=\"t3\""), "{limited}");
    assert!(limited.contains("route=\"/loki/api/v1/push\""), "{limited}");
    assert!(limited.contains("rate limit"), "{limited}");
    // Not written to a terminal: no colour codes.
    assert!(!log.contains('\u{1b}'), "{log}");
}

/// The server's log once it holds `needle` (logging happens after the response is sent).
fn wait_for(s: &Server, needle: &str) -> String {
    for _ in 0..100 {
        let log = s.log();
        if log.contains(needle) {
            return log;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    s.log()
}

#[test]
fn json_log_format() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        bin(),
        dir.path(),
        "server:\n  log_format: json\n",
        free_port(),
    );
    let (code, _) = http(
        &s.addr,
        "GET",
        &format!("/loki/api/v1/query?query={}", enc("{a=")),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(code, 400);
    let log = wait_for(&s, "request refused");
    let line = log
        .lines()
        .find(|l| l.contains("request refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "INFO", "{line}");
    assert_eq!(v["fields"]["status"], 400, "{line}");
    assert_eq!(v["fields"]["tenant"], "fake", "{line}");
    assert_eq!(v["fields"]["route"], "/loki/api/v1/query", "{line}");
    // Every line is JSON, including start-up.
    for l in log.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
}
