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

/// One line now to stream `{app}` of the default tenant.
fn push_line(s: &Server, app: &str, line: &str) {
    let entry = (silt_testkit::now_ns(), line.to_string());
    silt_testkit::push_json(&s.addr, None, &[("app", app)], &[entry]);
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
    let push = |line: &str| push_line(&s, "api", line);
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
    push_line(&s, "web", "level=info");
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

/// RFC 3339 (UTC, as Silt and Alertmanager print it) to ms since the epoch.
fn rfc3339_ms(s: &str) -> i64 {
    let (date, time) = s.split_once('T').unwrap_or_else(|| panic!("{s}"));
    let n = |t: &str| t.parse::<i64>().unwrap_or_else(|_| panic!("{s}"));
    let d: Vec<i64> = date.split('-').map(n).collect();
    let time = time.trim_end_matches('Z');
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(n).collect();
    let ms = n(&format!("{frac:0<3}")[..3]);
    // Days from civil (H. Hinnant).
    let y = if d[1] <= 2 { d[0] - 1 } else { d[0] };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((d[1] + 9) % 12) + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms
}

fn now_ms() -> i64 {
    silt_testkit::now_ns() / 1_000_000
}

fn json(s: &Server, tenant: &str, path: &str) -> Value {
    let (code, body) = req(s, "GET", tenant, path, "");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn alert_state_survives_restarts_without_renotifying() {
    assert_eq!(rfc3339_ms("1970-01-02T00:00:01.5Z"), 86_401_500);
    let dir = tempfile::tempdir().unwrap();
    let am = alertmanager(&dir.path().join("am"));
    let config = format!(
        "storage:\n  wal_fsync: false\nruler:\n  alertmanager_url: http://{}\n  evaluation_interval: 1s\n  resend_delay: 1m\n",
        am.addr
    );
    let node = dir.path().join("node");
    let start = || {
        Server::start(
            Path::new(env!("CARGO_BIN_EXE_silt")),
            &node,
            &config,
            free_port(),
        )
    };
    let mut s = start();
    let group = "name: errors\ninterval: 1s\nrules:\n  - alert: ApiErrors\n    expr: sum by (app) (count_over_time({app=\"api\"} |= \"error\" [1m])) > 0\n    for: 15s\n    labels: {severity: page}\n";
    assert_eq!(
        req(&s, "POST", "fake", "/loki/api/v1/rules/ops", group).0,
        202
    );
    let push = |s: &Server| push_line(s, "api", "level=error msg=boom");
    let alert =
        |s: &Server| json(s, "fake", "/prometheus/api/v1/alerts")["data"]["alerts"][0].clone();
    let mut active_at = String::new();
    wait_for("a pending alert", || {
        push(&s);
        let a = alert(&s);
        active_at = a["activeAt"].as_str().unwrap_or_default().to_string();
        a["state"] == "pending"
    });
    let a_ms = rfc3339_ms(&active_at);
    // SIGKILL 5s into the 15s `for`, then start again on the same data.
    wait_for("5s into the for", || now_ms() >= a_ms + 5000);
    assert!(am_alerts(&am).is_empty(), "fired early");
    s.kill();
    let killed = now_ms();
    let s = start();
    wait_for("the alert restored", || {
        push(&s);
        alert(&s)["activeAt"] == active_at.as_str()
    });
    let mut got = Vec::new();
    wait_for("the alert in alertmanager", || {
        push(&s);
        got = am_alerts(&am);
        !got.is_empty()
    });
    let starts = got[0]["startsAt"].as_str().unwrap().to_string();
    let s_ms = rfc3339_ms(&starts);
    assert!(
        s_ms >= a_ms + 15_000,
        "{starts} fired before activeAt {active_at} + for"
    );
    // A clock restarted at the restart would fire after killed + 15s.
    assert!(
        s_ms < killed + 15_000,
        "{starts}: the for clock restarted ({active_at})"
    );

    // SIGKILL while firing: after the restart and more than `for`, Alertmanager has the
    // same alert, not sent again (updatedAt), and Silt still counts from activeAt.
    let updated = got[0]["updatedAt"].clone();
    // An evaluation after the firing one: the firing one's state was saved (in order).
    wait_for("an evaluation after firing", || {
        let g = &json(&s, "fake", "/prometheus/api/v1/rules")["data"]["groups"][0];
        g["lastEvaluation"]
            .as_str()
            .is_some_and(|t| rfc3339_ms(t) > s_ms)
    });
    let mut s = s;
    s.kill();
    let s = start();
    let restarted = now_ms();
    wait_for("evaluations 17s past the restart", || {
        push(&s);
        let g = &json(&s, "fake", "/prometheus/api/v1/rules")["data"]["groups"][0];
        g["lastEvaluation"]
            .as_str()
            .is_some_and(|t| rfc3339_ms(t) >= restarted + 17_000)
    });
    let got = am_alerts(&am);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["startsAt"], starts.as_str(), "{got:#?}");
    assert_eq!(
        got[0]["updatedAt"], updated,
        "re-sent after the restart: {got:#?}"
    );
    let a = alert(&s);
    assert_eq!(
        (&a["state"], &a["activeAt"]),
        (&Value::from("firing"), &Value::from(active_at.as_str()))
    );
}

/// Debian's `prometheus` with its remote-write receiver (`.ci/run` installs it).
struct Prometheus(std::process::Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Prometheus on `addr` with its TSDB in `dir` (kept across restarts).
fn prometheus(dir: &Path, addr: &str) -> Prometheus {
    let bin = Path::new("/usr/bin/prometheus");
    assert!(
        bin.exists(),
        "prometheus is not installed (apt-get install prometheus; .ci/run does)"
    );
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 1m\n").unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("prometheus.log"))
        .unwrap();
    let child = std::process::Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let p = Prometheus(child);
    wait_for("prometheus ready", || {
        matches!(http(addr, "GET", "/-/ready", &[], b""), Ok((200, _)))
    });
    p
}

fn prom_query(addr: &str, query: &str) -> Vec<Value> {
    let path = format!("/api/v1/query?query={}", silt_testkit::enc(query));
    let (code, body) = http(addr, "GET", &path, &[], b"").unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, 200, "{v}");
    v["data"]["result"].as_array().unwrap().clone()
}

/// A metric's value in Silt's `/metrics`.
fn silt_metric(s: &Server, name: &str) -> f64 {
    let (_, body) = http(&s.addr, "GET", "/metrics", &[], b"").unwrap();
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn recording_rule_samples_reach_prometheus_and_wait_out_its_restart() {
    let dir = tempfile::tempdir().unwrap();
    let paddr = format!("127.0.0.1:{}", free_port());
    let mut prom = prometheus(&dir.path().join("prom"), &paddr);
    let config = format!(
        "storage:\n  wal_fsync: false\nruler:\n  remote_write:\n    enabled: true\n    client:\n      url: http://{paddr}/api/v1/write\n      queue_config: {{max_backoff: 200ms}}\n"
    );
    let s = Server::start(
        Path::new(env!("CARGO_BIN_EXE_silt")),
        &dir.path().join("node"),
        &config,
        free_port(),
    );
    let lines: Vec<_> = (0..5)
        .map(|i| (silt_testkit::now_ns(), format!("line {i}")))
        .collect();
    silt_testkit::push_json(&s.addr, None, &[("app", "x")], &lines);
    let group = "name: rec\ninterval: 1s\nrules:\n  - record: app:lines:count5m\n    expr: sum by (app) (count_over_time({app=\"x\"}[5m]))\n    labels: {source: silt}\n";
    assert_eq!(
        req(&s, "POST", "fake", "/loki/api/v1/rules/ops", group).0,
        202
    );

    let mut got = Vec::new();
    wait_for("the series in prometheus", || {
        got = prom_query(&paddr, "app:lines:count5m");
        !got.is_empty()
    });
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(
        got[0]["metric"],
        serde_json::json!({"__name__": "app:lines:count5m", "app": "x", "source": "silt"})
    );
    assert_eq!(got[0]["value"][1], "5", "{got:#?}");

    // Prometheus down: evaluations go on, their samples wait in the queue...
    let _ = prom.0.kill();
    let _ = prom.0.wait();
    let down = now_ms();
    wait_for("samples queued", || {
        silt_metric(&s, "silt_ruler_remote_write_queue_samples") >= 3.0
    });
    let up = now_ms();
    // ...and arrive once it is back on the same port and TSDB.
    let _prom = prometheus(&dir.path().join("prom"), &paddr);
    let window = format!("app:lines:count5m[{}s]", (now_ms() - down) / 1000 + 2);
    let mut while_down = 0;
    wait_for("the queued samples in prometheus", || {
        let r = prom_query(&paddr, &window);
        while_down = r
            .first()
            .and_then(|s| s["values"].as_array())
            .map_or(0, |v| {
                v.iter()
                    .filter(|p| {
                        let ms = (p[0].as_f64().unwrap() * 1000.0) as i64;
                        ms > down && ms < up && p[1] == "5"
                    })
                    .count()
            });
        while_down >= 3
    });
    wait_for("the queue drained", || {
        silt_metric(&s, "silt_ruler_remote_write_queue_samples") == 0.0
    });
    assert!(silt_metric(&s, "silt_ruler_remote_write_samples_sent_total") >= 4.0);
    assert_eq!(
        silt_metric(&s, "silt_ruler_remote_write_samples_dropped_total"),
        0.0
    );
}

#[test]
fn deploy_rule_files_load_as_the_ruler_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir_all(rules_dir.join("fake")).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes/base/rules");
    let mut names = Vec::new();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, rules_dir.join("fake").join(f.file_name().unwrap())).unwrap();
        names.push(f.file_stem().unwrap().to_string_lossy().into_owned());
    }
    assert!(names.contains(&"silt-ingest".to_string()), "{names:?}");
    // The start validates every rule (LogQL included); a bad one would stop it.
    let s = start(&dir.path().join("node"), &rules_dir);
    let v = json(&s, "fake", "/prometheus/api/v1/rules");
    let groups = v["data"]["groups"].as_array().unwrap();
    assert!(
        groups
            .iter()
            .all(|g| names.iter().any(|n| g["file"] == n.as_str())),
        "{v}"
    );
    assert!(
        groups.iter().any(|g| g["name"] == "silt-ingest-failures"),
        "{v}"
    );
}
