//! The real `silt-agent` binary against a real `silt server`: real files, rotation,
//! truncation, SIGKILL, server outages. Waits poll with generous limits; nothing asserts
//! on timing.
//!
//! Needs the server binary next to this test's target dir (`cargo build -p silt`;
//! `cargo test --workspace` builds it).

use silt_testkit::{enc, free_port, http, Server};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER_CONFIG: &str = "limits:\n  ingestion_rate_mb: 1024\n  ingestion_burst_size_mb: 1024\n";

fn silt_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/e2e-<hash> → target/<profile>/silt
    let p = exe.parent().unwrap().parent().unwrap().join("silt");
    assert!(
        p.exists(),
        "{} missing: run `cargo build -p silt` first",
        p.display()
    );
    p
}

fn agent_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_silt-agent"))
}

struct Agent {
    child: Child,
    dir: PathBuf,
    listen: String,
    log: PathBuf,
    env: Vec<(String, String)>,
    starts: usize,
}

impl Agent {
    /// Writes `config` (with `{data}` and `{listen}` filled in) and starts the agent.
    fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Agent {
        std::fs::create_dir_all(dir).unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let cfg = config
            .replace("{data}", &dir.join("data").display().to_string())
            .replace("{listen}", &listen);
        std::fs::write(dir.join("agent.yaml"), cfg).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut a = Agent {
            child: Command::new("true").spawn().unwrap(),
            dir: dir.to_path_buf(),
            listen,
            log: dir.join("agent.log"),
            env,
            starts: 0,
        };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Command::new(agent_bin())
            .arg("--config")
            .arg(self.dir.join("agent.yaml"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start silt-agent");
        wait_for(&format!("agent ready ({})", self.log.display()), || {
            matches!(http(&self.listen, "GET", "/ready", &[], b""), Ok((200, _)))
        });
    }

    fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn metric(&self, name: &str) -> f64 {
        let Ok((200, body)) = http(&self.listen, "GET", "/metrics", &[], b"") else {
            return 0.0;
        };
        String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.sigkill();
        if std::thread::panicking() {
            eprintln!(
                "--- agent log ---\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !ok() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One query result entry.
#[derive(Debug, Clone)]
struct Got {
    labels: BTreeMap<String, String>,
    line: String,
    ts: i64,
}

/// A GET against the server under test: plain HTTP or HTTPS.
type Get<'a> = &'a dyn Fn(&str) -> std::io::Result<(u16, Vec<u8>)>;

fn query(addr: &str, q: &str) -> Vec<Got> {
    query_via(&|p| http(addr, "GET", p, &[], b""), q)
}

fn query_via(get: Get, q: &str) -> Vec<Got> {
    let path = format!(
        "/loki/api/v1/query_range?query={}&limit=5000&since=2h&direction=forward",
        enc(q)
    );
    let (status, body) = get(&path).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut out = Vec::new();
    for s in v["data"]["result"].as_array().unwrap() {
        let labels: BTreeMap<String, String> = s["stream"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        for e in s["values"].as_array().unwrap() {
            out.push(Got {
                labels: labels.clone(),
                line: e[1].as_str().unwrap().to_string(),
                ts: e[0].as_str().unwrap().parse().unwrap(),
            });
        }
    }
    out
}

fn counts(got: &[Got]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for g in got {
        *m.entry(g.line.clone()).or_default() += 1;
    }
    m
}

/// Waits until every line in `want` arrived; returns what the query then shows.
fn wait_lines(addr: &str, q: &str, want: &[String]) -> Vec<Got> {
    wait_lines_via(&|p| http(addr, "GET", p, &[], b""), q, want)
}

fn wait_lines_via(get: Get, q: &str, want: &[String]) -> Vec<Got> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = query_via(get, q);
        let c = counts(&got);
        let missing: Vec<&String> = want.iter().filter(|l| !c.contains_key(*l)).collect();
        if missing.is_empty() {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} lines missing for {q}, e.g. {:?}",
            missing.len(),
            want.len(),
            &missing[..missing.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut buf = String::new();
    for l in lines {
        buf.push_str(l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

fn lines(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05} payload")).collect()
}

fn client_cfg(server: &Server) -> String {
    format!(
        "client:\n  url: {}\n  batch_wait: 100ms\n  min_backoff: 50ms\n  max_backoff: 500ms\n",
        server.url()
    )
}

const FAST: &str = "    poll_interval: 50ms\n    discovery_period: 200ms\n";

/// A server with its data under `<tmp>/srv`.
fn start_server(tmp: &Path) -> Server {
    Server::start(&silt_bin(), &tmp.join("srv"), SERVER_CONFIG, free_port())
}

/// A temp dir, a server, a `logs` dir and an agent config with a `file` source over
/// `logs/*.log` labelled `test=<test>`; `top` adds top-level keys.
fn file_setup(test: &str, top: &str) -> (tempfile::TempDir, Server, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_server(tmp.path());
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let cfg = format!(
        "data_dir: {{data}}\nserver: {{listen: '{{listen}}'}}\n{top}{}sources:\n  - type: file\n    include: ['{}/*.log']\n    labels: {{test: {test}}}\n{FAST}",
        client_cfg(&server),
        logs.display()
    );
    (tmp, server, logs, cfg)
}

fn assert_exactly_once(got: &[Got], want: &[String]) {
    let c = counts(got);
    let dups: Vec<(&String, &usize)> = c.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        dups.is_empty(),
        "duplicated lines: {:?}",
        &dups[..dups.len().min(5)]
    );
    assert_eq!(got.len(), want.len(), "unexpected extra lines");
}

#[test]
fn rotation_truncation_and_new_files_arrive_exactly_once() {
    let (tmp, server, logs, cfg) = file_setup("rotation", "");
    let agent = Agent::start(&tmp.path().join("agent"), &cfg, &[]);
    let app = logs.join("app.log");
    let q = r#"{test="rotation"}"#;
    let mut want = Vec::new();

    // Plain appends.
    let l = lines("start", 200);
    append(&app, &l);
    want.extend(l);
    wait_lines(&server.addr, q, &want);

    // Rename rotation: lines written just before the rename are read from the old fd.
    let l = lines("before-rename", 100);
    append(&app, &l);
    want.extend(l);
    std::fs::rename(&app, logs.join("app.log.1")).unwrap();
    let l = lines("after-rename", 100);
    append(&app, &l);
    want.extend(l);
    wait_lines(&server.addr, q, &want);

    // copytruncate: copy then truncate in place, then keep writing.
    std::fs::copy(&app, logs.join("app.log.2")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&app)
        .unwrap()
        .set_len(0)
        .unwrap();
    wait_for("truncation seen", || {
        agent.metric("loki_source_file_truncations") >= 1.0
    });
    let l = lines("after-truncate", 50);
    append(&app, &l);
    want.extend(l);
    wait_lines(&server.addr, q, &want);

    // A new file matching the glob while running, and a line without a trailing newline
    // that is completed later.
    let other = logs.join("other.log");
    let l = lines("new-file", 20);
    append(&other, &l);
    want.extend(l);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&other)
        .unwrap()
        .write_all(b"half a ")
        .unwrap();
    wait_lines(&server.addr, q, &want);
    append(&other, &["line".to_string()]);
    want.push("half a line".into());
    let got = wait_lines(&server.addr, q, &want);

    // Let anything duplicated in flight land, then check exactly once and labels.
    std::thread::sleep(Duration::from_secs(1));
    let got2 = query(&server.addr, q);
    assert!(got2.len() >= got.len());
    assert_exactly_once(&got2, &want);
    for g in &got2 {
        let f = g.labels.get("filename").map(String::as_str).unwrap_or("");
        assert!(
            f.ends_with("/app.log") || f.ends_with("/other.log"),
            "filename {f}"
        );
        assert!(!g.labels.contains_key("__path__"));
    }
    // The agent's own count agrees: nothing beyond the wanted lines was sent.
    assert_eq!(agent.metric("loki_write_sent_entries"), want.len() as f64);
}

#[test]
fn kubernetes_pod_layout_gets_path_labels_and_partial_lines_are_joined() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_server(tmp.path());
    let root = tmp.path().join("pods");
    let cdir = root.join("shop_web-7d9f-x2x_3f2a-11/nginx");
    let ddir = root.join("shop_api-1_99aa/api");
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::create_dir_all(&ddir).unwrap();
    let cfg = format!(
        "data_dir: {{data}}\nserver: {{listen: '{{listen}}'}}\n{}sources:\n  - type: kubernetes_pods\n    root: {}\n{FAST}",
        client_cfg(&server),
        root.display()
    );
    let _agent = Agent::start(&tmp.path().join("agent"), &cfg, &[("NODE_NAME", "node-7")]);
    let ts = rfc3339_now;
    let log0 = cdir.join("0.log");
    // Partial chunks split across writes, with a full stderr line in between.
    append(
        &log0,
        &[
            format!("{} stdout F hello from nginx", ts()),
            format!("{} stdout P first-half ", ts()),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    append(
        &log0,
        &[
            format!("{} stderr F an error", ts()),
            format!("{} stdout P second-half ", ts()),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    append(&log0, &[format!("{} stdout F end", ts())]);
    // Docker json-file format in another container, with a partial record.
    let dj = |log: &str| {
        format!(
            r#"{{"log":{},"stream":"stdout","time":"{}"}}"#,
            serde_json::to_string(log).unwrap(),
            ts()
        )
    };
    append(
        &ddir.join("0.log"),
        &[dj("docker "), dj("joined\n"), dj("plain\n")],
    );

    let want: Vec<String> = [
        "hello from nginx",
        "an error",
        "first-half second-half end",
        "docker joined",
        "plain",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let got = wait_lines(&server.addr, r#"{namespace="shop"}"#, &want);
    assert_exactly_once(&got, &want);
    let by_line: HashMap<&str, &Got> = got.iter().map(|g| (g.line.as_str(), g)).collect();
    let l = &by_line["first-half second-half end"].labels;
    assert_eq!(l.get("pod").map(String::as_str), Some("web-7d9f-x2x"));
    assert_eq!(l.get("container").map(String::as_str), Some("nginx"));
    assert_eq!(l.get("job").map(String::as_str), Some("shop/nginx"));
    assert_eq!(l.get("node_name").map(String::as_str), Some("node-7"));
    assert_eq!(l.get("stream").map(String::as_str), Some("stdout"));
    assert_eq!(
        by_line["an error"].labels.get("stream").map(String::as_str),
        Some("stderr")
    );
    assert_eq!(
        by_line["plain"].labels.get("container").map(String::as_str),
        Some("api")
    );
    assert!(!l.contains_key("filename"));
}

#[test]
fn sigkill_and_restart_loses_nothing() {
    let (tmp, server, logs, cfg) = file_setup("sigkill", "positions: {sync_period: 100ms}\n");
    let mut agent = Agent::start(&tmp.path().join("agent"), &cfg, &[]);
    let app = logs.join("app.log");
    let positions = tmp.path().join("agent/data/positions/file.yaml");
    // Acknowledged offset persisted for the file currently at `app.log` (by inode).
    let persisted = || -> u64 {
        use std::os::unix::fs::MetadataExt;
        let Ok(ino) = std::fs::metadata(&app).map(|m| m.ino()) else {
            return 0;
        };
        let text = std::fs::read_to_string(&positions).unwrap_or_default();
        let v: serde_json::Value = serde_yaml::from_str(&text).unwrap_or_default();
        v["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["inode"].as_u64() == Some(ino))
            .filter_map(|f| f["offset"].as_u64())
            .max()
            .unwrap_or(0)
    };
    let mut want = Vec::new();
    for round in 0..4 {
        let l = lines(&format!("round{round}"), 500);
        append(&app, &l[..250]);
        // Kill once this round's progress is acknowledged and persisted, while more lines
        // are being written.
        let before = persisted();
        wait_for("progress persisted", || persisted() > before);
        append(&app, &l[250..]);
        agent.sigkill();
        want.extend(l);
        // Written while the agent is down, including a rotation.
        if round == 2 {
            std::fs::rename(&app, logs.join("app.log.1")).unwrap();
        }
        let l = lines(&format!("down{round}"), 100);
        append(&app, &l);
        want.extend(l);
        agent.spawn();
    }
    let got = wait_lines(&server.addr, r#"{test="sigkill"}"#, &want);
    // At-least-once: duplicates are possible (what was in flight), loss is not; restarts
    // resume from the persisted position instead of re-reading everything.
    assert!(got.len() >= want.len());
    assert!(
        got.len() < want.len() * 2,
        "{} entries for {} lines: restarts re-read from the start",
        got.len(),
        want.len()
    );
    assert_eq!(agent.starts, 5);
}

#[test]
fn server_outage_is_ridden_out_and_push_receiver_buffers_on_disk() {
    let (tmp, mut server, logs, cfg) = file_setup("outage", "");
    let cfg = format!(
        "{cfg}  - type: loki_push\n    labels: {{via: agent}}\n    use_incoming_timestamp: true\n"
    );
    let port: u16 = server.addr.rsplit(':').next().unwrap().parse().unwrap();
    let srv_dir = tmp.path().join("srv");
    let mut agent = Agent::start(&tmp.path().join("agent"), &cfg, &[]);
    let app = logs.join("app.log");
    let mut want = lines("before", 100);
    append(&app, &want);
    wait_lines(&server.addr, r#"{test="outage"}"#, &want);

    server.kill();
    let l = lines("during", 500);
    append(&app, &l);
    want.extend(l);
    // Pushes to the agent while the server is down are accepted into the disk buffer.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let pushed: Vec<String> = (0..50).map(|i| format!("pushed-{i}")).collect();
    let body = silt_proto::encode_push_protobuf(&[silt_proto::PushStream {
        labels: silt_model::Labels::from_pairs([("test", "outage-push")]),
        entries: pushed
            .iter()
            .enumerate()
            .map(|(i, l)| silt_model::Entry {
                ts: now + i as i64,
                line: l.clone(),
                metadata: silt_model::Labels::new(),
            })
            .collect(),
    }]);
    let (status, _) = http(
        &agent.listen,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &body,
    )
    .unwrap();
    assert_eq!(status, 204);
    wait_for("push retries while the server is down", || {
        agent.metric("loki_write_batch_retries") >= 3.0
    });
    // The agent is killed too while the server is down: the buffer and positions survive.
    agent.sigkill();
    agent.spawn();
    wait_for("retries after agent restart", || {
        agent.metric("loki_write_batch_retries") >= 1.0
    });

    let server = Server::start(&silt_bin(), &srv_dir, SERVER_CONFIG, port);
    wait_lines(&server.addr, r#"{test="outage"}"#, &want);
    let got = wait_lines(&server.addr, r#"{test="outage-push"}"#, &pushed);
    assert!(got
        .iter()
        .all(|g| g.labels.get("via").map(String::as_str) == Some("agent")));
    wait_for("disk buffer emptied", || {
        std::fs::read_dir(tmp.path().join("agent/data/buffer/loki_push"))
            .unwrap()
            .count()
            == 0
    });
}

#[test]
fn sigterm_flushes_pending_batch_and_airflow_paths_get_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_server(tmp.path());
    let root = tmp.path().join("airflow");
    let run = "manual__2024-05-01T10:00:00.123456+00:00";
    let t1 = root.join(format!("dag_id=etl/run_id={run}/task_id=load"));
    let t2 = root.join(format!("dag_id=etl/run_id={run}/task_id=fan/map_index=3"));
    std::fs::create_dir_all(&t1).unwrap();
    std::fs::create_dir_all(&t2).unwrap();
    std::fs::create_dir_all(root.join("scheduler")).unwrap();
    append(
        &root.join("scheduler/latest.log"),
        &["not a task log".to_string()],
    );
    // A long batch_wait: only the shutdown flush can deliver these promptly.
    let cfg = format!(
        "data_dir: {{data}}\nserver: {{listen: '{{listen}}'}}\nclient:\n  url: {}\n  batch_wait: 1h\nsources:\n  - type: airflow\n    root: {}\n{FAST}",
        server.url(),
        root.display()
    );
    let mut agent = Agent::start(&tmp.path().join("agent"), &cfg, &[]);
    append(
        &t1.join("attempt=2.log"),
        &["[2024-05-01] {x.py:1} INFO - loading".to_string()],
    );
    append(&t2.join("attempt=1.log"), &["mapped task line".to_string()]);
    wait_for("lines read", || {
        agent.metric("loki_source_file_read_lines") >= 2.0
    });
    assert_eq!(agent.metric("loki_write_sent_entries"), 0.0);
    let status = agent.sigterm();
    assert!(status.success(), "{status}");
    let want = vec![
        "[2024-05-01] {x.py:1} INFO - loading".to_string(),
        "mapped task line".to_string(),
    ];
    let got = wait_lines(&server.addr, r#"{dag_id="etl"}"#, &want);
    assert_exactly_once(&got, &want);
    let by_line: HashMap<&str, &Got> = got.iter().map(|g| (g.line.as_str(), g)).collect();
    let l = &by_line["mapped task line"].labels;
    assert_eq!(l.get("task_id").map(String::as_str), Some("fan"));
    // Structured metadata comes back merged into the stream labels.
    assert_eq!(l.get("map_index").map(String::as_str), Some("3"));
    assert_eq!(l.get("run_id").map(String::as_str), Some(run));
    assert_eq!(
        by_line[want[0].as_str()]
            .labels
            .get("try_number")
            .map(String::as_str),
        Some("2")
    );
    // Positions were saved at shutdown: a restart sends nothing again.
    let pos =
        std::fs::read_to_string(tmp.path().join("agent/data/positions/airflow.yaml")).unwrap();
    assert!(pos.contains("attempt=2.log"), "{pos}");
}

#[test]
fn airflow_backlog_gets_line_timestamps_and_one_stream_per_task() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_server(tmp.path());
    let root = tmp.path().join("airflow");
    // Written an hour before the agent reads them (a backlog): two tries of one task,
    // with a traceback, and another task.
    let t0 = (silt_testkit::now_ns() - 3600 * 1_000_000_000) / 1_000_000 * 1_000_000;
    let stamp = |ms: i64| {
        let ns = t0 + ms * 1_000_000;
        let s = silt_proto::time::format_rfc3339(ns);
        format!(
            "{}.{:03}+0000",
            s.trim_end_matches('Z'),
            ns.rem_euclid(1_000_000_000) / 1_000_000
        )
    };
    let run = "scheduled__2024-05-01T00:00:00+00:00";
    let dir = |task: &str| root.join(format!("dag_id=etl/run_id={run}/task_id={task}"));
    let try1 = vec![
        format!("[{}] {{taskinstance.py:1}} INFO - starting", stamp(0)),
        format!("[{}] {{taskinstance.py:2}} ERROR - failed", stamp(1500)),
        "Traceback (most recent call last):".to_string(),
        String::new(),
        "ValueError: boom".to_string(),
    ];
    let try2 = vec![
        format!("[{}] {{taskinstance.py:1}} INFO - retrying", stamp(60_000)),
        format!("[{}] {{taskinstance.py:3}} INFO - done", stamp(61_000)),
    ];
    let other = vec![format!("[{}] {{x.py:1}} INFO - other task", stamp(5_000))];
    std::fs::create_dir_all(dir("load")).unwrap();
    std::fs::create_dir_all(dir("report")).unwrap();
    append(&dir("load").join("attempt=1.log"), &try1);
    append(&dir("load").join("attempt=2.log"), &try2);
    append(&dir("report").join("attempt=1.log"), &other);
    let cfg = format!(
        "data_dir: {{data}}\nserver: {{listen: '{{listen}}'}}\n{}sources:\n  - type: airflow\n    root: {}\n{FAST}",
        client_cfg(&server),
        root.display()
    );
    let _agent = Agent::start(&tmp.path().join("agent"), &cfg, &[]);
    let mut want: Vec<String> = try1.iter().chain(&try2).chain(&other).cloned().collect();
    wait_lines(&server.addr, r#"{dag_id="etl"}"#, &want);
    let got = query(&server.addr, r#"{dag_id="etl"}"#);
    assert_eq!(got.len(), want.len());
    let ms = 1_000_000;
    let at: HashMap<&str, i64> = got.iter().map(|g| (g.line.as_str(), g.ts)).collect();
    // The times are the lines', not the read time; the traceback follows its record
    // 1 ns apart, in order.
    assert_eq!(at[try1[0].as_str()], t0);
    assert_eq!(at[try1[1].as_str()], t0 + 1500 * ms);
    assert_eq!(at[try1[2].as_str()], t0 + 1500 * ms + 1);
    assert_eq!(at[""], t0 + 1500 * ms + 2);
    assert_eq!(at[try1[4].as_str()], t0 + 1500 * ms + 3);
    assert_eq!(at[try2[0].as_str()], t0 + 60_000 * ms);
    assert_eq!(at[other[0].as_str()], t0 + 5_000 * ms);
    // One stream per DAG and task: both tries of `load` in one, the file as metadata.
    let streams: std::collections::BTreeSet<(String, String)> = got
        .iter()
        .map(|g| (g.labels["task_id"].clone(), g.labels["filename"].clone()))
        .collect();
    assert_eq!(streams.len(), 3, "{streams:?}");
    let series = silt_testkit::series(&server.addr, r#"{dag_id="etl"}"#, "since=2h");
    assert_eq!(series.len(), 2, "{series:?}");
    assert!(
        series.iter().all(|s| s.get("filename").is_none()),
        "{series:?}"
    );
    let tries = query(
        &server.addr,
        r#"{dag_id="etl", task_id="load"} | try_number="2" | filename=~".*attempt=2.log""#,
    );
    want = try2.clone();
    assert_eq!(tries.into_iter().map(|t| t.line).collect::<Vec<_>>(), want);
}

#[test]
fn bad_config_is_refused_with_the_key_named() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad.yaml");
    // `--check` exits 2 and its message contains every needle.
    let refused = |yaml: &str, needles: &[&str]| {
        std::fs::write(&p, yaml).unwrap();
        let out = Command::new(agent_bin())
            .arg("--config")
            .arg(&p)
            .arg("--check")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(needles.iter().all(|n| err.contains(n)), "{err}");
    };
    refused("data_dir: /tmp/x\nclient: {url: http://h:1}\nsources: [{type: file, include: ['/a/*.log'], max_lin_size: 1}]\n", &["max_lin_size"]);
    refused(
        "data_dir: /tmp/x\nclient: {url: '${SILT_AGENT_TEST_UNSET_VAR}'}\nsources: []\n",
        &["SILT_AGENT_TEST_UNSET_VAR"],
    );
    // TLS/auth problems are found by --check too.
    refused(
        "data_dir: /tmp/x\nclient: {url: 'https://h', tls_config: {ca_file: /nonexistent/ca.pem}}\nsources: [{type: file, include: ['/a/*.log']}]\n",
        &["client.tls_config.ca_file", "/nonexistent/ca.pem"],
    );
    let out = Command::new(agent_bin())
        .args([
            "--url",
            "http://127.0.0.1:1",
            "--path",
            "/tmp/*.log",
            "--label",
            "job=x",
            "--data-dir",
        ])
        .arg(tmp.path())
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small fake Kubernetes API: `GET /api/v1/pods` lists `pods`, `?watch=1` streams the
/// events queued in `events` (chunked, newline-delimited JSON) until the test ends. Over
/// TLS when given a server config; with `token` set, other bearer tokens get 401.
struct FakeApi {
    addr: String,
    events: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<Vec<String>>>,
    /// Watch connections so far; only the newest one is served.
    watches: Arc<std::sync::atomic::AtomicUsize>,
    /// The bearer token accepted (None: anything).
    token: Arc<Mutex<Option<String>>>,
    /// Requests refused for a wrong token.
    refused: Arc<std::sync::atomic::AtomicUsize>,
    /// Other listed objects by path (namespaces, nodes); their watches stay quiet.
    objects: Arc<Mutex<HashMap<String, Vec<serde_json::Value>>>>,
}

use std::sync::{Arc, Mutex};

fn pod_json(
    uid: &str,
    ns: &str,
    name: &str,
    labels: serde_json::Value,
    annotations: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({"metadata": {"uid": uid, "namespace": ns, "name": name, "labels": labels, "annotations": annotations},
        "status": {"phase": "Running", "podIP": "10.1.2.3"}})
}

#[derive(Clone)]
struct FakeState {
    pods: Vec<serde_json::Value>,
    events: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<Vec<String>>>,
    watches: Arc<std::sync::atomic::AtomicUsize>,
    token: Arc<Mutex<Option<String>>>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
    objects: Arc<Mutex<HashMap<String, Vec<serde_json::Value>>>>,
}

impl FakeState {
    fn serve(&self, s: impl std::io::Read + Write) {
        use std::io::{BufRead, BufReader};
        use std::sync::atomic::Ordering::SeqCst;
        let mut r = BufReader::new(s);
        let mut first = String::new();
        if r.read_line(&mut first).is_err() {
            return;
        }
        let mut auth = String::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("authorization") {
                    auth = v.trim().to_string();
                }
            }
        }
        let w = r.get_mut();
        let want = self.token.lock().unwrap().clone();
        if want.is_some_and(|t| auth != format!("Bearer {t}")) {
            self.refused.fetch_add(1, SeqCst);
            let _ = w.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let _ = w.flush();
            return;
        }
        self.requests.lock().unwrap().push(first.clone());
        let path = first
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.split('?').next())
            .unwrap_or("")
            .to_string();
        let other = self.objects.lock().unwrap().get(&path).cloned();
        if let Some(items) = other {
            if first.contains("watch=1") {
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
                let _ = w.flush();
                std::thread::sleep(Duration::from_secs(60));
                return;
            }
            let body = serde_json::json!({"metadata": {"resourceVersion": "7"}, "items": items})
                .to_string();
            let _ = w.write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
            let _ = w.flush();
            return;
        }
        if first.contains("watch=1") {
            let me = self.watches.fetch_add(1, SeqCst) + 1;
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
            let _ = w.flush();
            // A write to a dead peer can succeed, so stale watchers stop serving.
            while self.watches.load(SeqCst) == me {
                let pending: Vec<String> = std::mem::take(&mut *self.events.lock().unwrap());
                for (k, e) in pending.iter().enumerate() {
                    let data = format!("{e}\n");
                    let sent = w
                        .write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
                        .and_then(|_| w.flush());
                    if sent.is_err() {
                        // A dead watcher (agent stopped): leave the rest for the next one.
                        self.events
                            .lock()
                            .unwrap()
                            .splice(0..0, pending[k..].iter().cloned());
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        let body = serde_json::json!({"kind": "PodList", "metadata": {"resourceVersion": "100"}, "items": self.pods}).to_string();
        let _ = w.write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
        let _ = w.flush();
    }
}

impl FakeApi {
    fn start(pods: Vec<serde_json::Value>) -> FakeApi {
        FakeApi::start_tls(pods, None, None)
    }

    fn start_tls(
        pods: Vec<serde_json::Value>,
        tls: Option<Arc<rustls::ServerConfig>>,
        token: Option<&str>,
    ) -> FakeApi {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let st = FakeState {
            pods,
            events: Default::default(),
            requests: Default::default(),
            watches: Default::default(),
            token: Arc::new(Mutex::new(token.map(str::to_string))),
            refused: Default::default(),
            objects: Default::default(),
        };
        let fake = FakeApi {
            addr,
            events: st.events.clone(),
            requests: st.requests.clone(),
            watches: st.watches.clone(),
            token: st.token.clone(),
            refused: st.refused.clone(),
            objects: st.objects.clone(),
        };
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let (st, tls) = (st.clone(), tls.clone());
                std::thread::spawn(move || match tls {
                    Some(cfg) => {
                        let c = rustls::ServerConnection::new(cfg).unwrap();
                        st.serve(rustls::StreamOwned::new(c, conn))
                    }
                    None => st.serve(conn),
                });
            }
        });
        fake
    }

    /// Ends the open watches: the agent re-lists (with a fresh token).
    fn drop_watches(&self) {
        self.watches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn kubernetes_api_metadata_enriches_pod_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_server(tmp.path());
    let api = FakeApi::start(vec![pod_json(
        "uid-1",
        "shop",
        "web-1",
        serde_json::json!({"app.kubernetes.io/name": "shop-web", "team": "payments"}),
        serde_json::json!({}),
    )]);
    {
        let mut o = api.objects.lock().unwrap();
        o.insert(
            "/api/v1/namespaces".into(),
            vec![serde_json::json!({"metadata": {"name": "shop", "labels": {"tier": "gold"}}})],
        );
        o.insert(
            "/api/v1/nodes".into(),
            vec![serde_json::json!({"metadata": {"name": "node-7", "labels": {"topology.kubernetes.io/zone": "eu-1a"}}})],
        );
    }
    let root = tmp.path().join("pods");
    let cfg = format!(
        "data_dir: {{data}}\nserver: {{listen: '{{listen}}'}}\n{}sources:\n  - type: kubernetes_pods\n    root: {}\n    node_name: node-7\n    kubernetes_api: {{url: 'http://{}', attach_metadata: {{namespace: true, node: true}}}}\n    relabel_rules:\n      - {{regex: '__meta_kubernetes_pod_label_(team)', action: labelmap}}\n      - {{source_labels: [__meta_kubernetes_namespace_label_tier], target_label: tier}}\n      - {{source_labels: [__meta_kubernetes_node_label_topology_kubernetes_io_zone], target_label: zone}}\n{FAST}",
        client_cfg(&server),
        root.display(),
        api.addr
    );
    let agent = Agent::start(&tmp.path().join("agent"), &cfg, &[]);
    wait_for("pod listed", || {
        agent.metric("silt_agent_kubernetes_pods_cached") >= 1.0
    });
    // Each watch starts after its list was applied.
    wait_for("namespaces and node listed", || {
        let reqs = api.requests.lock().unwrap();
        ["/api/v1/namespaces", "/api/v1/nodes"]
            .iter()
            .all(|p| reqs.iter().any(|r| r.contains(p) && r.contains("watch=1")))
    });
    let d1 = root.join("shop_web-1_uid-1/nginx");
    std::fs::create_dir_all(&d1).unwrap();
    append(
        &d1.join("0.log"),
        &[format!("{} stdout F listed pod line", rfc3339_now())],
    );
    let got = wait_lines(
        &server.addr,
        r#"{namespace="shop"}"#,
        &["listed pod line".to_string()],
    );
    let l = &got[0].labels;
    assert_eq!(l.get("team").map(String::as_str), Some("payments"));
    assert_eq!(l.get("service_name").map(String::as_str), Some("shop-web"));
    // attach_metadata: the namespace's and the node's labels.
    assert_eq!(l.get("tier").map(String::as_str), Some("gold"));
    assert_eq!(l.get("zone").map(String::as_str), Some("eu-1a"));
    assert_eq!(l.get("job").map(String::as_str), Some("shop/nginx"));

    // A pod created later arrives through the watch stream; returns its line's labels.
    let watched = |pod: serde_json::Value, dir: &str, ns: &str, line: &str, cached: f64| {
        api.events
            .lock()
            .unwrap()
            .push(serde_json::json!({"type": "ADDED", "object": pod}).to_string());
        wait_for("pod watched", || {
            agent.metric("silt_agent_kubernetes_pods_cached") >= cached
        });
        let d = root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        append(
            &d.join("0.log"),
            &[format!("{} stderr F {line}", rfc3339_now())],
        );
        let got = wait_lines(
            &server.addr,
            &format!(r#"{{namespace="{ns}"}}"#),
            &[line.to_string()],
        );
        got[0].labels.clone()
    };
    let l = watched(
        pod_json(
            "uid-2",
            "search",
            "idx-0",
            serde_json::json!({"team": "search"}),
            serde_json::json!({"k8s.grafana.com/logs.job": "search/indexer"}),
        ),
        "search_idx-0_uid-2/indexer",
        "search",
        "watched pod line",
        2.0,
    );
    assert_eq!(l.get("team").map(String::as_str), Some("search"));
    assert_eq!(l.get("job").map(String::as_str), Some("search/indexer"));
    assert_eq!(l.get("service_name").map(String::as_str), Some("indexer"));
    // A static pod: its directory carries the config hash, not the mirror pod's uid.
    let l = watched(
        pod_json(
            "mirror-uid",
            "kube-system",
            "etcd-node-7",
            serde_json::json!({"team": "control-plane"}),
            serde_json::json!({"kubernetes.io/config.hash": "0f3c9a"}),
        ),
        "kube-system_etcd-node-7_0f3c9a/etcd",
        "kube-system",
        "static pod line",
        3.0,
    );
    assert_eq!(
        l.get("team").map(String::as_str),
        Some("control-plane"),
        "{l:?}"
    );
    // Node-scoped list and watch.
    let reqs = api.requests.lock().unwrap().clone();
    assert!(
        reqs.iter()
            .any(|r| r.contains("watch=1") && r.contains("resourceVersion=100")),
        "{reqs:?}"
    );
    assert!(
        reqs.iter()
            .filter(|r| r.contains("/api/v1/pods"))
            .all(|r| r.contains("fieldSelector=spec.nodeName%3Dnode-7")),
        "{reqs:?}"
    );
    assert!(
        reqs.iter()
            .any(|r| r.contains("/api/v1/nodes") && r.contains("metadata.name%3Dnode-7")),
        "{reqs:?}"
    );
}

/// Now as RFC 3339 with nanoseconds (CRI timestamps).
fn rfc3339_now() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let s = silt_proto::time::format_rfc3339(ns);
    format!("{}.{:09}Z", s.trim_end_matches('Z'), ns % 1_000_000_000)
}

#[test]
fn kubernetes_events_are_shipped_and_not_resent_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_server(tmp.path());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let at = |secs_ago: i64| silt_proto::time::format_rfc3339(now - secs_ago * 1_000_000_000);
    let ev = |uid: &str, reason: &str, ts: String| {
        serde_json::json!({"metadata": {"uid": uid, "namespace": "shop", "resourceVersion": uid},
            "involvedObject": {"kind": "Pod", "name": "web-1", "apiVersion": "v1"},
            "reason": reason, "type": "Normal", "message": format!("{reason} happened"),
            "source": {"component": "kubelet"}, "lastTimestamp": ts})
    };
    let api = FakeApi::start(vec![
        ev("e1", "Scheduled", at(30)),
        ev("e2", "Pulled", at(20)),
    ]);
    let cfg = format!(
        "data_dir: {{data}}\nserver: {{listen: '{{listen}}'}}\n{}sources:\n  - type: kubernetes_events\n    url: 'http://{}'\n",
        client_cfg(&server),
        api.addr
    );
    let mut agent = Agent::start(&tmp.path().join("agent"), &cfg, &[]);
    let q = r#"{job="loki.source.kubernetes_events"}"#;
    let line = |uid: &str, reason: &str| {
        format!("name=web-1 kind=Pod objectAPIversion=v1 eventRV={uid} sourcecomponent=kubelet reason={reason} type=Normal msg=\"{reason} happened\"")
    };
    wait_lines(
        &server.addr,
        q,
        &[line("e1", "Scheduled"), line("e2", "Pulled")],
    );
    let watched = serde_json::json!({"type": "ADDED", "object": ev("e3", "Started", at(10))});
    api.events.lock().unwrap().push(watched.to_string());
    let got = wait_lines(&server.addr, q, &[line("e3", "Started")]);
    assert_eq!(
        got[0].labels.get("namespace").map(String::as_str),
        Some("shop")
    );
    assert_eq!(
        got[0].labels.get("instance").map(String::as_str),
        Some("kubernetes_events")
    );

    // Restart: the re-listed old events are behind the persisted cursor.
    assert!(agent.sigterm().success());
    let before = api.watches.load(std::sync::atomic::Ordering::SeqCst);
    agent.spawn();
    wait_for("new watch", || {
        api.watches.load(std::sync::atomic::Ordering::SeqCst) > before
    });
    let killed = serde_json::json!({"type": "ADDED", "object": ev("e4", "Killing", at(0))});
    api.events.lock().unwrap().push(killed.to_string());
    wait_lines(&server.addr, q, &[line("e4", "Killing")]);
    wait_for("acknowledged", || {
        agent.metric("loki_write_sent_entries") >= 1.0
    });
    assert_eq!(
        agent.metric("loki_write_sent_entries"),
        1.0,
        "old events were sent again"
    );
}

#[test]
fn two_endpoints_both_get_everything_and_one_down_holds_positions_back() {
    let tmp = tempfile::tempdir().unwrap();
    let a = start_server(&tmp.path().join("a"));
    let mut b = start_server(&tmp.path().join("b"));
    let b_port: u16 = b.addr.rsplit(':').next().unwrap().parse().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    // Promtail's `clients:` list shape.
    let endpoint = |s: &Server| {
        format!(
            "  - url: {}\n    batch_wait: 100ms\n    min_backoff: 50ms\n    max_backoff: 300ms\n",
            s.url()
        )
    };
    let cfg = format!(
        "data_dir: {{data}}\nserver: {{listen: '{{listen}}'}}\npositions: {{sync_period: 100ms}}\nclients:\n{}{}sources:\n  - type: file\n    include: ['{}/*.log']\n    labels: {{test: fanout}}\n{FAST}",
        endpoint(&a),
        endpoint(&b),
        logs.display()
    );
    let mut agent = Agent::start(&tmp.path().join("agent"), &cfg, &[]);
    let app = logs.join("app.log");
    let q = r#"{test="fanout"}"#;
    let mut want = lines("both", 200);
    append(&app, &want);
    assert_exactly_once(&wait_lines(&a.addr, q, &want), &want);
    assert_exactly_once(&wait_lines(&b.addr, q, &want), &want);

    // B goes down; A keeps receiving, but positions wait for B, so a SIGKILL of the agent
    // while B is down loses nothing for B.
    b.kill();
    let l = lines("bdown", 300);
    append(&app, &l);
    want.extend(l);
    wait_lines(&a.addr, q, &want);
    std::thread::sleep(Duration::from_millis(500));
    agent.sigkill();
    let b = Server::start(
        &silt_bin(),
        &tmp.path().join("b/srv"),
        SERVER_CONFIG,
        b_port,
    );
    agent.spawn();
    let l = lines("after", 100);
    append(&app, &l);
    want.extend(l);
    assert_exactly_once(&wait_lines(&b.addr, q, &want), &want);
    // A saw the B-down lines twice at most (re-read after the restart), never lost any.
    let got_a = wait_lines(&a.addr, q, &want);
    assert!(got_a.len() >= want.len() && got_a.len() <= want.len() + 300);
}

/// `systemd-journal-remote` (Debian package of that name; `.ci/run` installs it).
fn journal_remote() -> PathBuf {
    [
        "/lib/systemd/systemd-journal-remote",
        "/usr/lib/systemd/systemd-journal-remote",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("systemd-journal-remote missing: apt-get install systemd-journal-remote")
}

/// Writes real journal files through `systemd-journal-remote` from the export format.
struct JournalWriter {
    realtime_us: i64,
    monotonic_us: u64,
}

impl JournalWriter {
    fn new() -> JournalWriter {
        JournalWriter {
            realtime_us: 0,
            monotonic_us: 1,
        }
    }

    /// Appends entries (fields besides the timestamps) to `file`, creating it if needed.
    fn write(&mut self, file: &Path, entries: &[Vec<(&str, Vec<u8>)>]) {
        let mut export = Vec::new();
        for fields in entries {
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as i64;
            self.realtime_us = now_us.max(self.realtime_us + 1);
            self.monotonic_us += 1;
            let mut add = |k: &str, v: &[u8]| {
                if v.contains(&b'\n') || std::str::from_utf8(v).is_err() {
                    // Binary form: name, LE64 length, data.
                    export.extend_from_slice(k.as_bytes());
                    export.push(b'\n');
                    export.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    export.extend_from_slice(v);
                } else {
                    export.extend_from_slice(format!("{k}=").as_bytes());
                    export.extend_from_slice(v);
                }
                export.push(b'\n');
            };
            add(
                "__REALTIME_TIMESTAMP",
                self.realtime_us.to_string().as_bytes(),
            );
            add(
                "__MONOTONIC_TIMESTAMP",
                self.monotonic_us.to_string().as_bytes(),
            );
            add("_BOOT_ID", b"0123456789abcdef0123456789abcdef");
            for (k, v) in fields {
                add(k, v);
            }
            export.push(b'\n');
        }
        let mut child = Command::new(journal_remote())
            .arg("-o")
            .arg(file)
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&export).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "journal-remote: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn unit_entry<'a>(unit: &str, prio: usize, msg: &str) -> Vec<(&'a str, Vec<u8>)> {
    vec![
        ("_SYSTEMD_UNIT", unit.as_bytes().to_vec()),
        ("PRIORITY", prio.to_string().into_bytes()),
        ("SYSLOG_IDENTIFIER", b"e2e".to_vec()),
        ("MESSAGE", msg.as_bytes().to_vec()),
    ]
}

/// The newest entry's cursor, as journalctl reports it (optionally for one match).
fn last_cursor(dir: &Path, m: Option<&str>) -> String {
    let out = Command::new("journalctl")
        .arg(format!("--directory={}", dir.display()))
        .args(["--output=json", "-n", "1", "--no-pager"])
        .args(m)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["__CURSOR"].as_str().unwrap().to_string()
}

/// Ends journalctl processes reading `dir` (a SIGKILLed agent's child lingers until its next
/// write fails, and this test's journal gets no more entries), by pid.
struct KillJournalctl(PathBuf);

impl Drop for KillJournalctl {
    fn drop(&mut self) {
        let needle = format!("--directory={}", self.0.display());
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.split('\0').any(|a| a == needle) {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
    }
}

#[test]
fn journal_entries_arrive_with_labels_and_resume_from_cursor_after_sigkill() {
    const KW: [&str; 8] = [
        "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
    ];
    let tmp = tempfile::tempdir().unwrap();
    let server = start_server(tmp.path());
    let jdir = tmp.path().join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let _cleanup = KillJournalctl(jdir.clone());
    let mut w = JournalWriter::new();
    let web = |phase: usize, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("web-{phase}-{i:04}")).collect()
    };
    let db = |phase: usize, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("db-{phase}-{i:04}")).collect()
    };
    let write = |w: &mut JournalWriter, file: &str, web: &[String], db: &[String]| {
        let mut e: Vec<Vec<(&str, Vec<u8>)>> = web
            .iter()
            .enumerate()
            .map(|(i, m)| unit_entry("web.service", i % 8, m))
            .collect();
        e.extend(db.iter().map(|m| unit_entry("db.service", 6, m)));
        w.write(&jdir.join(file), &e);
    };

    // Before the agent starts: read from max_age back. One MESSAGE is not UTF-8 (journalctl
    // prints it as a byte array).
    let (web1, db1) = (web(1, 200), db(1, 40));
    write(&mut w, "a.journal", &web1, &db1);
    w.write(
        &jdir.join("a.journal"),
        &[vec![
            ("_SYSTEMD_UNIT", b"web.service".to_vec()),
            ("MESSAGE", b"binary \xff message".to_vec()),
        ]],
    );
    let cfg = format!(
        "data_dir: {{data}}\nserver: {{listen: '{{listen}}'}}\npositions: {{sync_period: 100ms}}\n{}sources:
  - type: journal
    name: sys
    path: {dir}
    labels: {{test: journal}}
    relabel_rules:
      - {{source_labels: [__journal__systemd_unit], target_label: unit}}
      - {{source_labels: [__journal_priority_keyword], target_label: level}}
  - type: journal
    name: dbonly
    path: {dir}
    matches: _SYSTEMD_UNIT=db.service SYSLOG_IDENTIFIER=e2e
    format_as_json: true
    labels: {{test: journal-db}}
",
        client_cfg(&server),
        dir = jdir.display()
    );
    let mut agent = Agent::start(&tmp.path().join("agent"), &cfg, &[]);
    let q = r#"{test="journal"}"#;
    let qdb = r#"{test="journal-db"}"#;
    let mut want: Vec<String> = web1.iter().chain(&db1).cloned().collect();
    want.push("binary \u{fffd} message".into());
    let got = wait_lines(&server.addr, q, &want);
    let by_line: HashMap<&str, &Got> = got.iter().map(|g| (g.line.as_str(), g)).collect();
    for (i, l) in web1.iter().enumerate() {
        let labels = &by_line[l.as_str()].labels;
        assert_eq!(labels.get("unit").map(String::as_str), Some("web.service"));
        assert_eq!(labels.get("level").map(String::as_str), Some(KW[i % 8]));
        assert_eq!(
            labels.get("job").map(String::as_str),
            Some("loki.source.journal.sys")
        );
        assert!(!labels.keys().any(|k| k.starts_with("__")), "{labels:?}");
    }
    // `matches` + format_as_json: only db.service, the whole entry as JSON.
    let db_json = |got: &[Got]| -> Vec<String> {
        got.iter()
            .map(|g| {
                let v: serde_json::Value = serde_json::from_str(&g.line).unwrap();
                assert_eq!(v["_SYSTEMD_UNIT"], "db.service", "{}", g.line);
                assert!(v["__CURSOR"].is_string());
                v["MESSAGE"].as_str().unwrap().to_string()
            })
            .collect()
    };
    wait_for("db entries", || query(&server.addr, qdb).len() >= db1.len());

    // Everything acknowledged is persisted: a SIGKILL now must not resend anything.
    let cursor_file = |n: &str| {
        std::fs::read_to_string(tmp.path().join(format!("agent/data/positions/{n}.yaml")))
            .unwrap_or_default()
    };
    let (last, last_db) = (
        last_cursor(&jdir, None),
        last_cursor(&jdir, Some("_SYSTEMD_UNIT=db.service")),
    );
    wait_for("cursors persisted", || {
        cursor_file("sys").contains(&last) && cursor_file("dbonly").contains(&last_db)
    });
    agent.sigkill();
    agent.spawn();

    // Appended to the same file while running, then killed mid-way.
    let (web2, db2) = (web(2, 400), db(2, 20));
    write(&mut w, "a.journal", &web2, &db2);
    wait_for("some of phase 2 delivered", || {
        query(&server.addr, q).len() > want.len()
    });
    agent.sigkill();
    want.extend(web2.iter().chain(&db2).cloned());
    // Written while the agent is down, into a second journal file.
    let (web3, db3) = (web(3, 100), db(3, 20));
    write(&mut w, "b.journal", &web3, &db3);
    want.extend(web3.iter().chain(&db3).cloned());
    agent.spawn();

    let got = wait_lines(&server.addr, q, &want);
    let c = counts(&got);
    for l in web1.iter().chain(&db1) {
        assert_eq!(c[l], 1, "{l} resent although acknowledged before the kill");
    }
    // Only what was in flight at the mid-way kill may come twice.
    assert!(
        got.len() - want.len() <= web2.len() + db2.len(),
        "{} entries for {} lines",
        got.len(),
        want.len()
    );
    for l in web3.iter().chain(&db3) {
        assert_eq!(c[l], 1, "{l}");
    }
    let want_db: Vec<String> = db1.iter().chain(&db2).chain(&db3).cloned().collect();
    wait_for("all db entries", || {
        let m: std::collections::HashSet<String> =
            db_json(&query(&server.addr, qdb)).into_iter().collect();
        want_db.iter().all(|l| m.contains(l))
    });
    let got_db = db_json(&query(&server.addr, qdb));
    for l in &db1 {
        assert_eq!(got_db.iter().filter(|g| *g == l).count(), 1, "{l}");
    }
    assert!(got_db.len() <= want_db.len() + db2.len());
    assert!(agent.metric("loki_source_journal_target_lines") >= 1.0);
    assert_eq!(agent.starts, 3);
}

#[test]
fn raw_push_lines_are_buffered_durably_and_arrive() {
    let (tmp, mut server, _logs, cfg) = file_setup("rawfile", "");
    let cfg = format!("{cfg}  - type: loki_push\n    labels: {{test: raw, via: agent}}\n");
    let port: u16 = server.addr.rsplit(':').next().unwrap().parse().unwrap();
    let srv_dir = tmp.path().join("srv");
    let mut agent = Agent::start(&tmp.path().join("agent"), &cfg, &[]);
    let raw = |path: &str, body: &[u8]| {
        http(
            &agent.listen,
            "POST",
            path,
            &[("Content-Type", "text/plain")],
            body,
        )
        .unwrap()
        .0
    };
    assert_eq!(raw("/loki/api/v1/raw", b"raw-1\r\nraw-2\n\nraw-2\n"), 204);
    let got = wait_lines(
        &server.addr,
        r#"{test="raw"}"#,
        &["raw-1".into(), "raw-2".into()],
    );
    assert!(got
        .iter()
        .all(|g| g.labels.get("via").map(String::as_str) == Some("agent")));

    let buffered = || {
        std::fs::read_dir(tmp.path().join("agent/data/buffer/loki_push"))
            .unwrap()
            .count()
    };
    wait_for("first request acknowledged", || buffered() == 0);

    // Accepted while the server is down, survives a SIGKILL of the agent.
    server.kill();
    assert_eq!(raw("/api/v1/raw", b"raw-3\nraw-4"), 204);
    agent.sigkill();
    agent.spawn();
    let server = Server::start(&silt_bin(), &srv_dir, SERVER_CONFIG, port);
    let want: Vec<String> = ["raw-1", "raw-2", "raw-2", "raw-3", "raw-4"]
        .map(String::from)
        .into();
    wait_lines(&server.addr, r#"{test="raw"}"#, &want);
    wait_for("disk buffer emptied", || buffered() == 0);
    let got = query(&server.addr, r#"{test="raw"}"#);
    // The identical "raw-2" lines are kept (distinct receive timestamps).
    assert_eq!(got.len(), want.len(), "{got:?}");
}

// ---- TLS: a throwaway PKI made with the openssl CLI, rustls on the test side ----

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn pem_certs(p: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(p)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn pem_key(p: &Path) -> rustls::pki_types::PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_file(p).unwrap()
}

fn tls_server_config(pki: &silt_testkit::Pki) -> Arc<rustls::ServerConfig> {
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pem_certs(&pki.server_cert), pem_key(&pki.server_key))
        .unwrap();
    Arc::new(cfg)
}

/// Trusts `pki`'s CA and presents its client certificate.
fn tls_client_config(pki: &silt_testkit::Pki) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(&pki.ca) {
        roots.add(c).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(pem_certs(&pki.client_cert), pem_key(&pki.client_key))
        .unwrap();
    Arc::new(cfg)
}

fn https_get(
    addr: &str,
    cfg: &Arc<rustls::ClientConfig>,
    path: &str,
) -> std::io::Result<(u16, Vec<u8>)> {
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(120)))?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(std::io::Error::other)?;
    silt_testkit::http_on(
        rustls::StreamOwned::new(conn, tcp),
        addr,
        "GET",
        path,
        &[],
        b"",
    )
}

/// `silt server` over HTTPS requiring client certificates of `pki`.
struct TlsServer {
    child: Child,
    addr: String,
}

impl TlsServer {
    fn start(dir: &Path, pki: &silt_testkit::Pki) -> TlsServer {
        std::fs::create_dir_all(dir).unwrap();
        let cfg = dir.join("silt.yaml");
        std::fs::write(
            &cfg,
            format!(
                "{SERVER_CONFIG}server:\n  tls:\n    cert_file: {}\n    key_file: {}\n    client_ca_file: {}\n",
                pki.server_cert.display(),
                pki.server_key.display(),
                pki.ca.display()
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(silt_bin())
            .args(["server", "--config"])
            .arg(&cfg)
            .args(["--listen", &addr, "--data-dir"])
            .arg(dir.join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let s = TlsServer { child, addr };
        let client = tls_client_config(pki);
        wait_for("silt server ready over https", || {
            matches!(https_get(&s.addr, &client, "/ready"), Ok((200, _)))
        });
        s
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_push_with_private_ca_and_client_certificate_and_wrong_ca_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = silt_testkit::pki(&tmp.path().join("pki"));
    let other = silt_testkit::pki(&tmp.path().join("other-pki"));
    let server = TlsServer::start(&tmp.path().join("srv"), &pki);
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let cfg = |ca: &Path| {
        format!(
            "data_dir: {{data}}\nserver: {{listen: '{{listen}}'}}\nclient:\n  url: https://localhost:{port}\n  batch_wait: 100ms\n  min_backoff: 50ms\n  max_backoff: 500ms\n  tls_config: {{ca_file: '{}', cert_file: '{}', key_file: '{}'}}\nsources:\n  - type: file\n    include: ['{}/*.log']\n    labels: {{test: https}}\n{FAST}",
            ca.display(),
            pki.client_cert.display(),
            pki.client_key.display(),
            logs.display()
        )
    };
    // First with a CA that did not sign the server certificate.
    let mut agent = Agent::start(&tmp.path().join("agent"), &cfg(&other.ca), &[]);
    let want = lines("tls", 50);
    append(&logs.join("app.log"), &want);
    wait_for("pushes retried", || {
        agent.metric("loki_write_batch_retries") >= 3.0
    });
    let log = std::fs::read_to_string(&agent.log).unwrap();
    assert!(log.contains("invalid peer certificate"), "{log}");
    assert_eq!(agent.metric("loki_write_sent_entries"), 0.0);
    assert_eq!(agent.metric("loki_write_dropped_entries"), 0.0);
    assert!(agent.metric("loki_write_requests") >= 3.0);

    // Fixed config, restart: nothing was acknowledged, so every line arrives.
    let path = agent.dir.join("agent.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            &other.ca.display().to_string(),
            &pki.ca.display().to_string(),
        ),
    )
    .unwrap();
    agent.sigkill();
    agent.spawn();
    let client = tls_client_config(&pki);
    let get = |p: &str| https_get(&server.addr, &client, p);
    let got = wait_lines_via(&get, r#"{test="https"}"#, &want);
    assert_exactly_once(&got, &want);
}

/// A fake Loki over TLS that records the `Authorization` header of each push.
fn fake_loki(pki: &silt_testkit::Pki) -> (String, Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (tls, seen2) = (tls_server_config(pki), seen.clone());
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let (tls, seen) = (tls.clone(), seen2.clone());
            std::thread::spawn(move || {
                let c = rustls::ServerConnection::new(tls).unwrap();
                let mut r = BufReader::new(rustls::StreamOwned::new(c, conn));
                // Keep-alive: one request after another on this connection.
                loop {
                    let mut first = String::new();
                    if r.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    let (mut auth, mut len) = (String::new(), 0usize);
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
                        match k.to_ascii_lowercase().as_str() {
                            "authorization" => auth = v.trim().to_string(),
                            "content-length" => len = v.trim().parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    seen.lock().unwrap().push(auth);
                    let w = r.get_mut();
                    if w.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                        .and_then(|_| w.flush())
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[test]
fn bearer_token_file_rotation_and_basic_auth_reach_an_https_endpoint() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let pki = silt_testkit::pki(&tmp.path().join("pki"));
    let (addr, seen) = fake_loki(&pki);
    let port = addr.rsplit(':').next().unwrap().to_string();
    let token = tmp.path().join("token");
    std::fs::write(&token, "token-one\n").unwrap();
    let pw = tmp.path().join("password");
    std::fs::write(&pw, "pw-1").unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let cfg = |name: &str, auth: String| {
        format!(
            "data_dir: {{data}}\nserver: {{listen: '{{listen}}'}}\nclient:\n  url: https://localhost:{port}\n  batch_wait: 100ms\n  tls_config: {{ca_file: '{}'}}\n{auth}sources:\n  - type: file\n    include: ['{}/{name}.log']\n    labels: {{test: auth}}\n{FAST}",
            pki.ca.display(),
            logs.display()
        )
    };
    let has = |h: &str| seen.lock().unwrap().iter().any(|s| s == h);
    let bearer = Agent::start(
        &tmp.path().join("bearer"),
        &cfg(
            "bearer",
            format!("  bearer_token_file: '{}'\n", token.display()),
        ),
        &[],
    );
    append(&logs.join("bearer.log"), &lines("a", 5));
    wait_for("first token used", || has("Bearer token-one"));
    // Rotated on disk: the next push carries the new token, no restart.
    std::fs::write(&token, "token-two\n").unwrap();
    append(&logs.join("bearer.log"), &lines("b", 5));
    wait_for("rotated token used", || has("Bearer token-two"));
    drop(bearer);

    let _basic = Agent::start(
        &tmp.path().join("basic"),
        &cfg(
            "basic",
            format!(
                "  basic_auth: {{username: silt, password_file: '{}'}}\n",
                pw.display()
            ),
        ),
        &[],
    );
    append(&logs.join("basic.log"), &lines("c", 5));
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("silt:pw-1")
    );
    wait_for("basic auth used", || has(&want));
    assert!(
        seen.lock().unwrap().iter().all(|h| !h.is_empty()),
        "a push without credentials"
    );
}

/// A kubeconfig naming `api` with the CA inline and a bearer token.
fn kubeconfig(pki: &silt_testkit::Pki, api: &str, token: &str) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&pki.ca).unwrap());
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\ncontexts:\n- name: test\n  context: {{cluster: c, user: u}}\nclusters:\n- name: c\n  cluster:\n    server: https://localhost:{}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\n",
        api.rsplit(':').next().unwrap()
    )
}

#[test]
fn kubernetes_api_over_tls_via_kubeconfig_with_token() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = silt_testkit::pki(&tmp.path().join("pki"));
    let server = start_server(tmp.path());
    let api = FakeApi::start_tls(
        vec![pod_json(
            "uid-1",
            "shop",
            "web-1",
            serde_json::json!({"team": "payments"}),
            serde_json::json!({}),
        )],
        Some(tls_server_config(&pki)),
        Some("kc-token"),
    );
    let kc = tmp.path().join("kubeconfig");
    std::fs::write(&kc, kubeconfig(&pki, &api.addr, "kc-token")).unwrap();
    let root = tmp.path().join("pods");
    let cfg = format!(
        "data_dir: {{data}}\nserver: {{listen: '{{listen}}'}}\n{}sources:\n  - type: kubernetes_pods\n    root: {}\n    node_name: node-7\n    kubernetes_api: {{kubeconfig: '{}'}}\n    relabel_rules:\n      - {{regex: '__meta_kubernetes_pod_label_(team)', action: labelmap}}\n{FAST}",
        client_cfg(&server),
        root.display(),
        kc.display()
    );
    let agent = Agent::start(&tmp.path().join("agent"), &cfg, &[]);
    wait_for("pod listed over TLS", || {
        agent.metric("silt_agent_kubernetes_pods_cached") >= 1.0
    });
    let d1 = root.join("shop_web-1_uid-1/nginx");
    std::fs::create_dir_all(&d1).unwrap();
    append(
        &d1.join("0.log"),
        &[format!("{} stdout F tls pod line", rfc3339_now())],
    );
    let got = wait_lines(
        &server.addr,
        r#"{namespace="shop"}"#,
        &["tls pod line".to_string()],
    );
    assert_eq!(
        got[0].labels.get("team").map(String::as_str),
        Some("payments")
    );
    assert_eq!(api.refused.load(std::sync::atomic::Ordering::SeqCst), 0);

    // The same kubeconfig with a wrong token: the fake API refuses, nothing is cached.
    let bad = tmp.path().join("bad-kubeconfig");
    std::fs::write(&bad, kubeconfig(&pki, &api.addr, "wrong")).unwrap();
    let bad_cfg = cfg.replace(&kc.display().to_string(), &bad.display().to_string());
    let bad_agent = Agent::start(&tmp.path().join("bad-agent"), &bad_cfg, &[]);
    wait_for("wrong token refused", || {
        api.refused.load(std::sync::atomic::Ordering::SeqCst) >= 2
    });
    assert_eq!(bad_agent.metric("silt_agent_kubernetes_pods_cached"), 0.0);
}

#[test]
fn kubernetes_events_in_cluster_with_rotated_service_account_token() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = silt_testkit::pki(&tmp.path().join("pki"));
    let server = start_server(tmp.path());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let ev = |uid: &str, reason: &str| {
        serde_json::json!({"metadata": {"uid": uid, "namespace": "ops", "resourceVersion": uid},
            "involvedObject": {"kind": "Pod", "name": "db-0", "apiVersion": "v1"},
            "reason": reason, "type": "Normal", "message": "m",
            "lastTimestamp": silt_proto::time::format_rfc3339(now)})
    };
    let api = FakeApi::start_tls(
        vec![ev("e1", "Scheduled")],
        Some(tls_server_config(&pki)),
        Some("sa-token-1"),
    );
    // The service-account mount, relocated for the test.
    let sa = tmp.path().join("serviceaccount");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::copy(&pki.ca, sa.join("ca.crt")).unwrap();
    std::fs::write(sa.join("token"), "sa-token-1").unwrap();
    let port = api.addr.rsplit(':').next().unwrap().to_string();
    let cfg = format!(
        "data_dir: {{data}}\nserver: {{listen: '{{listen}}'}}\n{}sources:\n  - type: kubernetes_events\n",
        client_cfg(&server)
    );
    let sa_dir = sa.display().to_string();
    let agent = Agent::start(
        &tmp.path().join("agent"),
        &cfg,
        &[
            ("KUBERNETES_SERVICE_HOST", "localhost"),
            ("KUBERNETES_SERVICE_PORT", &port),
            ("SILT_AGENT_SERVICE_ACCOUNT_DIR", &sa_dir),
        ],
    );
    let q = r#"{job="loki.source.kubernetes_events"}"#;
    let line = |uid: &str, reason: &str| {
        format!("name=db-0 kind=Pod objectAPIversion=v1 eventRV={uid} reason={reason} type=Normal msg=m")
    };
    wait_lines(&server.addr, q, &[line("e1", "Scheduled")]);

    // The kubelet rotates the token; the API stops accepting the old one and ends the
    // watch. The agent re-reads the file when it reconnects.
    std::fs::write(sa.join("token"), "sa-token-2").unwrap();
    *api.token.lock().unwrap() = Some("sa-token-2".into());
    let before = api.watches.load(std::sync::atomic::Ordering::SeqCst);
    api.drop_watches();
    wait_for("new watch with the rotated token", || {
        api.watches.load(std::sync::atomic::Ordering::SeqCst) > before + 1
    });
    api.events
        .lock()
        .unwrap()
        .push(serde_json::json!({"type": "ADDED", "object": ev("e2", "Started")}).to_string());
    wait_lines(&server.addr, q, &[line("e2", "Started")]);
    assert_eq!(api.refused.load(std::sync::atomic::Ordering::SeqCst), 0);
    let reqs = api.requests.lock().unwrap().clone();
    assert!(
        reqs.iter().all(|r| r.contains("/api/v1/events")),
        "{reqs:?}"
    );
    drop(agent);
}
