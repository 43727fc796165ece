//! Grafana Logs Drilldown endpoints on the conformance kit's data: volume, detected
//! labels and fields, patterns, drilldown-limits, and logcli's volume/detected-fields.
//!
//! One server is loaded once (about a minute) and every check runs against it.
//! Patterns are compared with golden files in `tests/golden/patterns/<app>.json`;
//! after an intended change of the miner, regenerate them with
//! `SILT_BLESS=1 cargo test -p silt --test drilldown` and review the diff.

use serde_json::{json, Value};
use silt_testkit::{conformance_server, enc, http, Server};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kit's data: 2024-01-01T00:00Z to 06:00Z.
const START: i64 = 1_704_067_200;
const END: i64 = START + 6 * 3600;

const APPS: &[&str] = &[
    "auth-service",
    "cache",
    "database",
    "grafana",
    "kafka",
    "kubernetes",
    "loki",
    "mimir",
    "nginx",
    "prometheus",
    "syslog",
    "tempo",
    "web-server",
];

fn get(addr: &str, path: &str, params: &[(&str, &str)]) -> (u16, Value, String) {
    let mut q = String::new();
    for (k, v) in params {
        q.push(if q.is_empty() { '?' } else { '&' });
        q.push_str(&format!("{k}={}", enc(v)));
    }
    let (status, body) = http(addr, "GET", &format!("{path}{q}"), &[], b"").unwrap();
    let text = String::from_utf8_lossy(&body).to_string();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, v, text)
}

fn ok(addr: &str, path: &str, params: &[(&str, &str)]) -> Value {
    let (status, v, text) = get(addr, path, params);
    assert_eq!(status, 200, "{path} {params:?}: {text}");
    v
}

/// `ok` over the kit's whole time range.
fn ok_in(addr: &str, path: &str, query: &str, extra: &[(&str, &str)]) -> Value {
    let (s, e) = range();
    let mut params = vec![("query", query), ("start", s.as_str()), ("end", e.as_str())];
    params.extend_from_slice(extra);
    ok(addr, path, &params)
}

fn range() -> (String, String) {
    (START.to_string(), END.to_string())
}

#[test]
fn drilldown_endpoints_on_the_kit() {
    let dir = tempfile::tempdir().unwrap();
    let server = conformance_server(Path::new(env!("CARGO_BIN_EXE_silt")), dir.path());
    let addr = server.addr.as_str();

    volume(addr);
    volume_range(addr);
    detected_labels(addr);
    detected_fields(addr);
    patterns(addr);
    limits(addr);
    bad_parameters(addr);
    logcli(&server);
}

fn stats_bytes(addr: &str, query: &str) -> u64 {
    let v = ok_in(addr, "/loki/api/v1/index/stats", query, &[]);
    v["bytes"].as_u64().unwrap()
}

fn volume(addr: &str) {
    let q = r#"{service_name="cache"}"#;
    let v = ok_in(addr, "/loki/api/v1/index/volume", q, &[]);
    assert_eq!(v["data"]["resultType"], "vector");
    let r = v["data"]["result"].as_array().unwrap();
    assert_eq!(r.len(), 1, "{v}");
    assert_eq!(r[0]["metric"], json!({"service_name": "cache"}));
    assert_eq!(r[0]["value"][0], json!(END));
    let bytes: u64 = r[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert_eq!(bytes, stats_bytes(addr, q));

    // Per app, largest first, cut to the limit; all apps add up to the total.
    let all = r#"{service_name=~".+"}"#;
    let v = ok_in(addr, "/loki/api/v1/index/volume", all, &[("limit", "3")]);
    let vals: Vec<u64> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["value"][1].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(vals.len(), 3);
    assert!(vals.windows(2).all(|w| w[0] >= w[1]), "{vals:?}");
    let v = ok_in(addr, "/loki/api/v1/index/volume", all, &[("limit", "0")]);
    let r = v["data"]["result"].as_array().unwrap();
    assert_eq!(r.len(), APPS.len());
    let sum: u64 = r
        .iter()
        .map(|x| x["value"][1].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(sum, stats_bytes(addr, all));

    // By label name: every stream has both labels, so both carry the total.
    let v = ok_in(
        addr,
        "/loki/api/v1/index/volume",
        all,
        &[
            ("aggregateBy", "labels"),
            ("targetLabels", "env,service_name"),
        ],
    );
    let r = v["data"]["result"].as_array().unwrap();
    assert_eq!(r.len(), 2, "{v}");
    assert_eq!(r[0]["metric"], json!({"env": ""}));
    assert_eq!(r[1]["metric"], json!({"service_name": ""}));
    assert_eq!(
        r[0]["value"][1].as_str().unwrap().parse::<u64>().unwrap(),
        sum
    );

    // Target labels name the series.
    let v = ok_in(
        addr,
        "/loki/api/v1/index/volume",
        q,
        &[("targetLabels", "env")],
    );
    let envs: Vec<&str> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["metric"]["env"].as_str().unwrap())
        .collect();
    assert_eq!(envs.len(), 3, "{v}");
}

fn volume_range(addr: &str) {
    let q = r#"{service_name="nginx"}"#;
    let v = ok_in(
        addr,
        "/loki/api/v1/index/volume_range",
        q,
        &[("step", "3600")],
    );
    assert_eq!(v["data"]["resultType"], "matrix");
    let r = v["data"]["result"].as_array().unwrap();
    assert_eq!(r.len(), 1, "{v}");
    let points = r[0]["values"].as_array().unwrap();
    assert_eq!(points.len(), 6, "{v}");
    // Each hour is stamped at its last millisecond.
    assert_eq!(points[0][0], json!(START as f64 + 3599.999));
    let sum: f64 = points
        .iter()
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    let total = stats_bytes(addr, q) as f64;
    // Buckets are rounded one by one.
    assert!((sum - total).abs() <= 6.0, "buckets {sum} vs total {total}");
}

fn detected_labels(addr: &str) {
    let v = ok_in(
        addr,
        "/loki/api/v1/detected_labels",
        r#"{service_name="cache"}"#,
        &[],
    );
    let labels = v["detectedLabels"].as_array().unwrap();
    let get = |n: &str| {
        labels
            .iter()
            .find(|l| l["label"] == n)
            .map(|l| l["cardinality"].clone())
    };
    assert_eq!(get("service_name"), Some(json!(1)));
    assert_eq!(get("env"), Some(json!(3)));
    assert!(get("pod").is_some() && get("cluster").is_some() && get("namespace").is_some());
    let v = ok_in(
        addr,
        "/loki/api/v1/detected_labels",
        r#"{service_name="none"}"#,
        &[],
    );
    assert_eq!(v, json!({}));
}

fn detected_fields(addr: &str) {
    let v = ok_in(
        addr,
        "/loki/api/v1/detected_fields",
        r#"{service_name="cache"}"#,
        &[],
    );
    assert_eq!(v["limit"], 1000);
    let fields = v["fields"].as_array().unwrap();
    let field = |n: &str| {
        fields
            .iter()
            .find(|f| f["label"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no field {n}: {v}"))
    };
    assert_eq!(field("level")["type"], "string");
    assert_eq!(field("level")["parsers"], json!(["json"]));
    assert_eq!(field("level")["jsonPath"], json!(["level"]));
    assert_eq!(field("level")["cardinality"], 4);
    assert_eq!(field("size")["type"], "int");
    assert_eq!(field("duration")["type"], "duration");
    assert_eq!(field("trace_id")["parsers"], Value::Null);
    assert_eq!(field("detected_level")["parsers"], Value::Null);

    // logfmt lines, a pipeline, and the field limit.
    let v = ok_in(
        addr,
        "/loki/api/v1/detected_fields",
        r#"{service_name="grafana"} | logfmt | level="error""#,
        &[("line_limit", "50"), ("field_limit", "3")],
    );
    let fields = v["fields"].as_array().unwrap();
    assert_eq!(v["limit"], 3);
    assert_eq!(fields.len(), 3, "{v}");
    let v = ok_in(
        addr,
        "/loki/api/v1/detected_fields",
        r#"{service_name="grafana"} | logfmt | level="error""#,
        &[],
    );
    let fields = v["fields"].as_array().unwrap();
    let level = fields.iter().find(|f| f["label"] == "level").unwrap();
    assert_eq!(level["parsers"], json!(["logfmt"]));
    assert_eq!(level["cardinality"], 1);
    assert!(level.get("jsonPath").is_none());
    let user = fields.iter().find(|f| f["label"] == "userId").unwrap();
    assert_eq!(user["type"], "int");

    let v = ok_in(
        addr,
        "/loki/api/v1/detected_field/level/values",
        r#"{service_name="cache"}"#,
        &[],
    );
    assert_eq!(
        v,
        json!({"limit": 1000, "values": ["debug", "error", "info", "warn"]})
    );
    let v = ok_in(
        addr,
        "/loki/api/v1/detected_field/nope/values",
        r#"{service_name="cache"}"#,
        &[],
    );
    assert_eq!(v, json!({}));
}

fn golden(app: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/patterns/{app}.json"))
}

fn patterns(addr: &str) {
    let bless = std::env::var_os("SILT_BLESS").is_some();
    let mut failures = Vec::new();
    for app in APPS {
        let q = format!(r#"{{service_name="{app}"}}"#);
        let v = ok_in(addr, "/loki/api/v1/patterns", &q, &[("step", "1h")]);
        assert_eq!(v["status"], "success");
        let mut got = Vec::new();
        for p in v["data"].as_array().unwrap() {
            let samples = p["samples"].as_array().unwrap();
            for smp in samples {
                let t = smp[0].as_i64().expect("integer seconds");
                assert!((START..END).contains(&t) && t % 3600 == 0, "{smp}");
            }
            let total: u64 = samples.iter().map(|s| s[1].as_u64().unwrap()).sum();
            assert!(total >= 30);
            got.push(json!({"pattern": p["pattern"], "level": p["level"], "total": total}));
        }
        let got = Value::Array(got);
        let path = golden(app);
        if bless {
            std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
            continue;
        }
        let want: Value = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| {
                panic!(
                    "missing golden file {} (run with SILT_BLESS=1)",
                    path.display()
                )
            });
        if got != want {
            failures.push(format!(
                "{app}: got {}",
                serde_json::to_string_pretty(&got).unwrap()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "patterns differ from golden files:\n{}",
        failures.join("\n")
    );
    // Same answer twice: mining is deterministic.
    let q = r#"{service_name="syslog"}"#;
    let a = ok_in(addr, "/loki/api/v1/patterns", q, &[]);
    let b = ok_in(addr, "/loki/api/v1/patterns", q, &[]);
    assert_eq!(a, b);
    assert!(!a["data"].as_array().unwrap().is_empty(), "{a}");
}

fn limits(addr: &str) {
    let v = ok(addr, "/loki/api/v1/drilldown-limits", &[]);
    assert_eq!(v["pattern_ingester_enabled"], true);
    assert!(v["version"].is_string());
    assert_eq!(v["limits"]["max_entries_limit_per_query"], 5000);
    assert_eq!(v["limits"]["volume_enabled"], true);
    assert_eq!(v["limits"]["discover_log_levels"], true);
    assert!(v["limits"]["max_query_length"].is_string());
}

fn bad_parameters(addr: &str) {
    let (s, e) = range();
    let q = r#"{service_name="cache"}"#;
    for (path, params) in [
        (
            "/loki/api/v1/index/volume",
            vec![("query", q), ("aggregateBy", "streams")],
        ),
        (
            "/loki/api/v1/index/volume",
            vec![("query", r#"{service_name="cache"} |= "x""#)],
        ),
        (
            "/loki/api/v1/index/volume",
            vec![("start", s.as_str()), ("end", e.as_str())],
        ),
        (
            "/loki/api/v1/index/volume",
            vec![("query", q), ("limit", "ten")],
        ),
        (
            "/loki/api/v1/index/volume_range",
            vec![("query", q), ("step", "-5")],
        ),
        ("/loki/api/v1/detected_fields", vec![("query", "{")]),
        (
            "/loki/api/v1/detected_fields",
            vec![("query", q), ("line_limit", "100000")],
        ),
        (
            "/loki/api/v1/detected_fields",
            vec![("query", r#"count_over_time({service_name="cache"}[1m])"#)],
        ),
        (
            "/loki/api/v1/detected_field/level/values",
            vec![("query", q), ("limit", "x")],
        ),
        (
            "/loki/api/v1/patterns",
            vec![("query", r#"{service_name="cache"} | json"#)],
        ),
        ("/loki/api/v1/patterns", vec![("query", q), ("step", "0")]),
        (
            "/loki/api/v1/detected_labels",
            vec![("query", q), ("start", e.as_str()), ("end", s.as_str())],
        ),
    ] {
        let (status, _, text) = get(addr, path, &params);
        assert_eq!(status, 400, "{path} {params:?}: {text}");
        assert!(!text.trim().is_empty(), "{path}: empty error message");
    }
}

fn logcli(server: &Server) {
    let Some(bin) = silt_testkit::logcli() else {
        return;
    };
    let run = |args: &[&str]| -> String {
        let out = Command::new(&bin)
            .arg(format!("--addr={}", server.url()))
            .args(args)
            .args([
                "--timezone=UTC",
                "--from=2024-01-01T00:00:00Z",
                "--to=2024-01-01T06:00:00Z",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "logcli {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let v: Value = serde_json::from_str(&run(&["volume", r#"{service_name="cache"}"#])).unwrap();
    assert_eq!(v[0]["metric"]["service_name"], "cache", "{v}");
    let v: Value = serde_json::from_str(&run(&[
        "volume_range",
        "--step=1h",
        r#"{service_name="cache"}"#,
    ]))
    .unwrap();
    assert_eq!(v[0]["values"].as_array().map(Vec::len), Some(6), "{v}");
    let out = run(&["detected-fields", r#"{service_name="cache"}"#]);
    assert!(
        out.contains("label: level") && out.contains("type: string"),
        "{out}"
    );
    assert!(
        out.contains("label: duration") && out.contains("type: duration"),
        "{out}"
    );
    let out = run(&["detected-fields", r#"{service_name="cache"}"#, "level"]);
    for l in ["debug", "info", "warn", "error"] {
        assert!(out.lines().any(|x| x.trim() == l), "{out}");
    }
}
