//! Real client libraries from PyPI push into the server: python-logging-loki (JSON push)
//! and the OpenTelemetry Python SDK (OTLP/HTTP protobuf). Their dependencies are
//! installed into `target/pydeps` on first run, so `cargo test` needs nothing else.

use silt_testkit::{enc, free_port, http, pip_target, Server};
use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGES: &[&str] = &[
    "python-logging-loki==0.3.1",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
];

fn pydeps() -> PathBuf {
    pip_target(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pydeps"),
        "import logging_loki, opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http",
        PACKAGES,
    )
}

fn query(addr: &str, q: &str) -> serde_json::Value {
    let path = format!(
        "/loki/api/v1/query_range?query={}&limit=1000&since=1h&direction=forward",
        enc(q)
    );
    let (status, body) = http(addr, "GET", &path, &[], b"").unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn lines(v: &serde_json::Value) -> Vec<(serde_json::Value, String)> {
    let mut out = Vec::new();
    for s in v["data"]["result"].as_array().unwrap() {
        for e in s["values"].as_array().unwrap() {
            out.push((s["stream"].clone(), e[1].as_str().unwrap().to_string()));
        }
    }
    out
}

#[test]
fn python_loki_handler_and_otel_sdk() {
    let deps = pydeps();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        Path::new(env!("CARGO_BIN_EXE_silt")),
        dir.path(),
        "",
        free_port(),
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients/push_clients.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(server.url())
        .arg("25")
        .env("PYTHONPATH", &deps)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clients failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let got = lines(&query(&server.addr, r#"{application="pyclient"}"#));
    assert_eq!(got.len(), 25);
    assert_eq!(got[0].1, "pyclient line 0 <&>");
    assert_eq!(got[0].0["service_name"], "pyclient");
    assert_eq!(got[0].0["detected_level"], "error");
    assert_eq!(got[0].0["kind"], "handler");

    let got = lines(&query(&server.addr, r#"{service_name="otel-demo"}"#));
    assert_eq!(got.len(), 25);
    assert!(got.iter().any(|(_, l)| l == "otel line 7"));
    assert_eq!(got[0].0["k8s_namespace_name"], "prod");
    assert_eq!(got[0].0["severity_text"], "WARN");
    assert_eq!(got[0].0["detected_level"], "warn");
    assert!(got
        .iter()
        .all(|(s, _)| s["order_id"].as_str().is_some_and(|v| v.starts_with("o-"))));
}
