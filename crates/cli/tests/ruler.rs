//! The ruler's rule store and APIs against the real binary: the config API round trip
//! under both prefixes, bad input refused with nothing half-saved, tenants kept apart,
//! read-only rule files from a directory, the Prometheus-style lists, and rules that
//! survive a restart (they live in the object store).

use serde_json::Value;
use silt_testkit::{free_port, http, Server};
use std::path::Path;

fn start(dir: &Path, rules_dir: &Path) -> Server {
    let config = format!(
        "auth_enabled: true
storage:
  wal_fsync: false
ruler:
  storage:
    type: local
    local:
      directory: {}
",
        rules_dir.display()
    );
    Server::start(
        Path::new(env!("CARGO_BIN_EXE_silt")),
        dir,
        &config,
        free_port(),
    )
}

fn req(s: &Server, method: &str, tenant: &str, path: &str, body: &str) -> (u16, String) {
    let (code, body) = http(
        &s.addr,
        method,
        path,
        &[
            ("X-Scope-OrgID", tenant),
            ("Content-Type", "application/yaml"),
        ],
        body.as_bytes(),
    )
    .unwrap();
    (code, String::from_utf8_lossy(&body).into_owned())
}

fn yaml(text: &str) -> serde_yaml::Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

const G1: &str = r#"name: g1
interval: 30s
rules:
  - alert: ManyErrors
    expr: sum by (app) (count_over_time({app="api"} |= "error" [5m])) > 10
    for: 2m
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.app }} logs {{ $value }} errors"
"#;

const G2: &str = r#"name: g2
rules:
  - record: app:errors:rate5m
    expr: sum by (app) (rate({app="api"} |= "error" [5m]))
"#;

#[test]
fn rules_api_round_trip_bad_input_tenants_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir_all(rules_dir.join("team-a")).unwrap();
    std::fs::write(
        rules_dir.join("team-a/from-disk.yaml"),
        "groups:\n  - name: disk\n    rules:\n      - record: disk:lines:rate1m\n        expr: sum(rate({app=\"api\"}[1m]))\n",
    )
    .unwrap();
    let mut s = start(&dir.path().join("node"), &rules_dir);

    // The directory's rules are listed; another tenant has none.
    let (code, body) = req(&s, "GET", "team-a", "/loki/api/v1/rules", "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(yaml(&body)["from-disk"][0]["name"], yaml("disk"));
    let (code, body) = req(&s, "GET", "team-b", "/loki/api/v1/rules", "");
    assert_eq!((code, body.trim()), (404, "no rule groups found"));

    // Post, read back under the other prefix (Grafana uses /api/prom/rules).
    let (code, body) = req(&s, "POST", "team-a", "/loki/api/v1/rules/ns%2F1", G1);
    assert_eq!(code, 202, "{body}");
    assert_eq!(yaml(&body)["status"], yaml("success"));
    let (code, body) = req(&s, "GET", "team-a", "/api/prom/rules/ns%2F1/g1", "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(yaml(&body), yaml(G1));

    // Bad input: 400 naming what is wrong; what was stored stays as it was.
    let bad = [
        ("name: g1\nrules: [", "invalid rule YAML"),
        (
            "name: g1\nrules:\n  - alert: A\n    expr: sum(count_over_time({app=\"api\"}[5m])\n",
            "group \"g1\", rule 1 (\"A\"): invalid expr",
        ),
        (
            "name: g1\nrules:\n  - alert: A\n    expr: vector(1)\n    severity: page\n",
            "unknown field `severity`",
        ),
        (
            "name: g1\nrules:\n  - alert: A\n    expr: '{app=\"api\"} |= \"x\"'\n",
            "metric query",
        ),
    ];
    for (text, want) in bad {
        let (code, body) = req(&s, "POST", "team-a", "/loki/api/v1/rules/ns%2F1", text);
        assert_eq!(code, 400, "{text}: {body}");
        assert!(body.contains(want), "{text}: {body}");
    }
    let (_, body) = req(&s, "GET", "team-a", "/loki/api/v1/rules/ns%2F1", "");
    assert_eq!(
        yaml(&body)["ns/1"],
        yaml(&format!("[{}]", serde_json::to_string(&yaml(G1)).unwrap()))
    );

    // The directory's namespaces are read-only.
    let (code, body) = req(&s, "POST", "team-a", "/loki/api/v1/rules/from-disk", G2);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("read-only"), "{body}");

    // A second group is appended, a group of the same name replaced.
    assert_eq!(
        req(&s, "POST", "team-a", "/loki/api/v1/rules/ns%2F1", G2).0,
        202
    );
    let g1b = G1.replace("> 10", "> 20");
    assert_eq!(
        req(&s, "POST", "team-a", "/loki/api/v1/rules/ns%2F1", &g1b).0,
        202
    );
    let (_, body) = req(&s, "GET", "team-a", "/loki/api/v1/rules/ns%2F1", "");
    let groups = &yaml(&body)["ns/1"];
    assert_eq!(groups[0], yaml(&g1b));
    assert_eq!(groups[1], yaml(G2));

    // Another tenant sees none of it and cannot delete it.
    let (code, _) = req(&s, "GET", "team-b", "/loki/api/v1/rules/ns%2F1/g1", "");
    assert_eq!(code, 404);
    let (code, _) = req(&s, "DELETE", "team-b", "/loki/api/v1/rules/ns%2F1", "");
    assert_eq!(code, 404);

    // The Prometheus-style list, with filters.
    let (code, body) = req(&s, "GET", "team-a", "/prometheus/api/v1/rules", "");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<(&str, &str)> = v["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["file"].as_str().unwrap(), g["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [("from-disk", "disk"), ("ns/1", "g1"), ("ns/1", "g2")]
    );
    let alert = &v["data"]["groups"][1]["rules"][0];
    assert_eq!(alert["type"], "alerting");
    assert_eq!(alert["name"], "ManyErrors");
    assert_eq!(alert["duration"], 120.0);
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(v["data"]["groups"][1]["interval"], 30.0);
    let (_, body) = req(
        &s,
        "GET",
        "team-a",
        "/prometheus/api/v1/rules?type=alert",
        "",
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["groups"].as_array().unwrap().len(), 1, "{body}");
    let (_, body) = req(
        &s,
        "GET",
        "team-a",
        "/prometheus/api/v1/rules?rule_group[]=g2&file[]=ns/1",
        "",
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["data"]["groups"][0]["rules"][0]["name"], "app:errors:rate5m",
        "{body}"
    );
    assert_eq!(v["data"]["groups"].as_array().unwrap().len(), 1, "{body}");
    let (code, body) = req(
        &s,
        "GET",
        "team-a",
        "/prometheus/api/v1/rules?type=bogus",
        "",
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["errorType"],
        "bad_data"
    );
    let (code, body) = req(&s, "GET", "team-a", "/prometheus/api/v1/alerts", "");
    assert_eq!(code, 200, "{body}");
    let (_, body) = req(&s, "GET", "team-b", "/prometheus/api/v1/rules", "");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["groups"].as_array().unwrap().len(), 0, "{body}");

    // Deletes: one group, then a missing one.
    assert_eq!(
        req(&s, "DELETE", "team-a", "/loki/api/v1/rules/ns%2F1/g2", "").0,
        202
    );
    assert_eq!(
        req(&s, "DELETE", "team-a", "/loki/api/v1/rules/ns%2F1/g2", "").0,
        404
    );

    // After a SIGKILL and restart the stored rules are back from the object store.
    s.kill();
    let s = start(&dir.path().join("node"), &rules_dir);
    let (code, body) = req(&s, "GET", "team-a", "/api/prom/rules", "");
    assert_eq!(code, 200, "{body}");
    let all = yaml(&body);
    assert_eq!(
        all["ns/1"],
        yaml(&format!(
            "[{}]",
            serde_json::to_string(&yaml(&g1b)).unwrap()
        ))
    );
    assert_eq!(all["from-disk"][0]["name"], yaml("disk"));
    // Deleting the namespace removes it for good.
    assert_eq!(
        req(&s, "DELETE", "team-a", "/loki/api/v1/rules/ns%2F1", "").0,
        202
    );
    let (code, _) = req(&s, "GET", "team-a", "/loki/api/v1/rules/ns%2F1", "");
    assert_eq!(code, 404);
}

#[test]
fn a_bad_rule_file_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir_all(rules_dir.join("fake")).unwrap();
    std::fs::write(
        rules_dir.join("fake/broken.yaml"),
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: 'sum(rate({a=\"b\"}[1m])'\n",
    )
    .unwrap();
    let cfg = dir.path().join("silt.yaml");
    std::fs::write(
        &cfg,
        format!(
            "ruler:\n  storage:\n    type: local\n    local:\n      directory: {}\n",
            rules_dir.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_silt"))
        .args(["server", "--config"])
        .arg(&cfg)
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("broken.yaml") && err.contains("invalid expr"),
        "{err}"
    );
}

/// Debian's `prometheus-alertmanager` on a free port (`.ci/run` installs it).
struct Alertmanager {
    child: std::process::Child,
    addr: String,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alertmanager(dir: &Path) -> Alertmanager {
    let bin = ["/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager"]
        .into_iter()
        .find(|b| Path::new(b).exists())
        .expect("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager; .ci/run does)");
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("am.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: blackhole\n  group_wait: 0s\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let child = std::process::Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--cluster.listen-address=")
        .stdout(std::fs::File::create(dir.join("am.log")).unwrap())
        .stderr(std::fs::File::create(dir.join("am.err")).unwrap())
        .spawn()
        .unwrap();
    let am = Alertmanager { child, addr };
    wait_for("alertmanager ready", || {
        matches!(http(&am.addr, "GET", "/-/ready", &[], b""), Ok((200, _)))
    });
    am
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

/// Active alerts Alertmanager holds.
fn am_alerts(am: &Alertmanager) -> Vec<Value> {
    let (code, body) = http(&am.addr, "GET", "/api/v2/alerts", &[], b"").unwrap();
    assert_eq!(code, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"]["state"] == "active")
        .cloned()
        .collect()
}

#[test]
fn error_lines_fire_an_alert_in_alertmanager_and_it_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let am = alertmanager(&dir.path().join("am"));
    let config = format!(
        "storage:\n  wal_fsync: false\nruler:\n  alertmanager_url: http://{}\n  evaluation_interval: 1s\n  resend_delay: 1m\n",
        am.addr
    );
    let s = Server::start(
        Path::new(env!("CARGO_BIN_EXE_silt")),
        &dir.path().join("node"),
        &config,
        free_port(),
    );
    let group = r#"name: errors
interval: 1s
rules:
  - alert: ApiErrors
    expr: sum by (app) (count_over_time({app="api"} |= "error" [3s])) > 0
    for: 2s
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.app }} logged {{ $value }} errors"
"#;
    assert_eq!(
        req(&s, "POST", "fake", "/loki/api/v1/rules/ops", group).0,
        202
    );

    // Errors keep coming: the alert goes pending, then fires and reaches Alertmanager.
    let push = |line: &str| {
        silt_testkit::push_json(
            &s.addr,
            None,
            &[("app", "api")],
            &[(silt_testkit::now_ns(), line.to_string())],
        )
    };
    let mut got = Vec::new();
    wait_for("the alert in alertmanager", || {
        push("level=error msg=\"upstream timeout\"");
        got = am_alerts(&am);
        !got.is_empty()
    });
    let a = &got[0];
    assert_eq!(a["labels"]["alertname"], "ApiErrors");
    assert_eq!(a["labels"]["app"], "api");
    assert_eq!(a["labels"]["severity"], "page");
    let summary = a["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("api logged ") && summary.ends_with(" errors"),
        "{summary}"
    );
    let (_, body) = req(&s, "GET", "fake", "/prometheus/api/v1/rules", "");
    let v: Value = serde_json::from_str(&body).unwrap();
    let rule = &v["data"]["groups"][0]["rules"][0];
    assert_eq!(rule["health"], "ok", "{body}");
    assert_eq!(rule["state"], "firing", "{body}");
    let (_, body) = req(&s, "GET", "fake", "/prometheus/api/v1/alerts", "");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["alerts"][0]["state"], "firing", "{body}");

    // Lines without errors only: the alert resolves, and Alertmanager hears it (long
    // before the firing alert's own end, 4 resend delays ahead).
    wait_for("the alert to resolve", || {
        push("level=info msg=\"all good\"");
        am_alerts(&am).is_empty()
    });
    let (_, body) = req(&s, "GET", "fake", "/prometheus/api/v1/alerts", "");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["alerts"].as_array().unwrap().len(), 0, "{body}");
    // A group's limit: more result series than it allows fail the rule.
    silt_testkit::push_json(
        &s.addr,
        None,
        &[("app", "web")],
        &[(silt_testkit::now_ns(), "level=info".to_string())],
    );
    let capped = "name: capped\ninterval: 1s\nlimit: 1\nrules:\n  - alert: TooMany\n    expr: sum by (app) (count_over_time({app=~\"api|web\"}[5m]))\n";
    assert_eq!(
        req(&s, "POST", "fake", "/loki/api/v1/rules/ops", capped).0,
        202
    );
    wait_for("the capped rule to fail", || {
        let (_, body) = req(
            &s,
            "GET",
            "fake",
            "/prometheus/api/v1/rules?rule_group[]=capped",
            "",
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        let r = &v["data"]["groups"][0]["rules"][0];
        r["health"] == "err"
            && r["lastError"]
                .as_str()
                .unwrap_or("")
                .contains("exceeded limit of 1 with 2 series")
    });
    let (_, metrics) = http(&s.addr, "GET", "/metrics", &[], b"").unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("silt_ruler_alerts_sent_total"),
        "{metrics}"
    );
}
