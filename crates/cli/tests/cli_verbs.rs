//! `silt query | instant-query | labels | series | stats | volume | volume_range` print
//! byte for byte what logcli 3.7.6 prints for the same flags against the same server: raw,
//! jsonl and default output, pages past `--batch`, both directions, metric results, live
//! tail; and the connection flags (tenant, TLS with client certificates). logcli comes from the shared
//! peers directory; without it the test says so and passes.

use silt_testkit::{free_port, logcli, now_ns, push_json, Server};
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(bin: &Path, url: &str, args: &[String]) -> (bool, Vec<u8>) {
    let out = Command::new(bin)
        .args(args)
        .env("LOKI_ADDR", url)
        .env("TZ", "UTC")
        .env_remove("LOKI_ORG_ID")
        .output()
        .expect("run");
    (out.status.success(), out.stdout)
}

#[test]
fn silt_verbs_print_what_logcli_prints() {
    let Some(logcli) = logcli() else {
        return;
    };
    let silt = PathBuf::from(env!("CARGO_BIN_EXE_silt"));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&silt, dir.path(), "", free_port());
    // Three streams interleaved in time, every timestamp distinct (logcli's sort is not
    // stable); lines with spaces to trim, HTML characters, quotes and non-ASCII text.
    let base = now_ns() / 1_000_000_000 * 1_000_000_000 - 600_000_000_000;
    for (k, app) in ["api", "db", "web"].iter().enumerate() {
        let entries: Vec<(i64, String)> = (0..40)
            .map(|i| {
                let ts = base + (i * 3 + k as i64) * 1_000_000_007;
                (
                    ts,
                    format!("  {app} <{i}> & \"q\" é\t{}  ", "x".repeat(i as usize % 7)),
                )
            })
            .collect();
        let region = if k == 2 { "eu" } else { "us" };
        push_json(
            &server.addr,
            None,
            &[("app", app), ("env", "prod"), ("region", region)],
            &entries,
        );
    }
    let from = silt_proto::time::format_rfc3339(base - 1_000_000_000);
    let to = silt_proto::time::format_rfc3339(base + 200_000_000_000);
    let range = [format!("--from={from}"), format!("--to={to}")];
    let mut cases: Vec<Vec<String>> = Vec::new();
    for output in ["raw", "jsonl", "default"] {
        for extra in [
            &["--limit=30"][..],
            &["--limit=100", "--batch=7", "--forward"],
            &["--limit=45", "--batch=10"],
            &["--limit=500", "--no-labels"],
            &["--limit=50", "--exclude-label=region", "--forward"],
        ] {
            let mut c = vec![
                "query".to_string(),
                "-q".into(),
                format!("--output={output}"),
            ];
            c.extend(extra.iter().map(|s| s.to_string()));
            c.extend(range.iter().cloned());
            c.push(r#"{env="prod"}"#.into());
            cases.push(c);
        }
    }
    let metric = r#"sum by (app) (count_over_time({env="prod"} |= "é" [1m]))"#;
    let mut c = vec!["query".to_string(), "-q".into(), "--step=30s".into()];
    c.extend(range.iter().cloned());
    c.push(metric.into());
    cases.push(c);
    let now = silt_proto::time::format_rfc3339(base + 60_000_000_000);
    for q in [
        metric,
        r#"topk(1, sum by (region) (rate({env="prod"}[5m])))"#,
    ] {
        cases.push(vec![
            "instant-query".into(),
            "-q".into(),
            format!("--now={now}"),
            q.into(),
        ]);
    }
    cases.push([&["labels".to_string(), "-q".into()][..], &range].concat());
    cases.push(
        [
            &["labels".to_string(), "-q".into(), "app".into()][..],
            &range,
        ]
        .concat(),
    );
    cases.push(
        [
            &["series".to_string(), "-q".into(), r#"{env="prod"}"#.into()][..],
            &range,
        ]
        .concat(),
    );
    for verb in [
        &["stats"][..],
        &["volume"],
        &["volume", "--aggregateByLabels"],
        &["volume_range", "--step=1m", "--targetLabels=region"],
    ] {
        let mut c: Vec<String> = verb.iter().map(|s| s.to_string()).collect();
        c.push("-q".into());
        c.extend(range.iter().cloned());
        c.push(r#"{env="prod"}"#.into());
        cases.push(c);
    }
    let mut with_data = 0;
    for args in &cases {
        let theirs = run(&logcli, &server.url(), args);
        let ours = run(&silt, &server.url(), args);
        assert!(theirs.0, "logcli {args:?} failed");
        assert_eq!(
            String::from_utf8_lossy(&ours.1),
            String::from_utf8_lossy(&theirs.1),
            "silt {args:?} (left) vs logcli (right)"
        );
        assert!(ours.0, "silt {args:?} failed");
        with_data += usize::from(theirs.1.len() > 10);
    }
    assert_eq!(
        with_data,
        cases.len(),
        "some cases printed (almost) nothing"
    );
}

/// The verbs' connection flags: the tenant header, and HTTPS with a private CA and a
/// client certificate (refused without one).
#[test]
fn silt_verbs_send_the_tenant_and_speak_tls_with_client_certificates() {
    let silt = PathBuf::from(env!("CARGO_BIN_EXE_silt"));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&silt, dir.path(), "auth_enabled: true\n", free_port());
    let ts = now_ns() - 60_000_000_000;
    push_json(
        &server.addr,
        Some("t1"),
        &[("app", "a")],
        &[(ts, "for t1".into())],
    );
    let query = |extra: &[&str]| {
        let mut args: Vec<String> = ["query", "-q", "-o", "raw", "--since=1h", r#"{app="a"}"#]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        run(&silt, &server.url(), &args)
    };
    assert_eq!(query(&["--org-id=t1"]), (true, b"for t1\n".to_vec()));
    assert_eq!(query(&["--org-id=t2"]), (true, Vec::new()));
    assert!(
        !query(&[]).0,
        "no tenant on a multi-tenant server must fail"
    );

    let pki = silt_testkit::pki(&dir.path().join("pki"));
    let port = free_port();
    let cfg = format!(
        "server:\n  tls:\n    cert_file: {}\n    key_file: {}\n    client_ca_file: {}\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display()
    );
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    std::fs::write(tls_dir.join("silt.yaml"), cfg).unwrap();
    let _server = Kill(
        Command::new(&silt)
            .args(["server", "--config"])
            .arg(tls_dir.join("silt.yaml"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(tls_dir.join("data"))
            .spawn()
            .unwrap(),
    );
    let url = format!("https://localhost:{port}");
    let labels = |extra: &[String]| {
        let mut args = vec!["labels".to_string(), "-q".into()];
        args.extend(extra.iter().cloned());
        run(&silt, &url, &args).0
    };
    let (ca, cert, key) = (
        format!("--ca-cert={}", pki.ca.display()),
        format!("--cert={}", pki.client_cert.display()),
        format!("--key={}", pki.client_key.display()),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !labels(&[ca.clone(), cert.clone(), key.clone()]) {
        assert!(std::time::Instant::now() < deadline, "no answer over https");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !labels(std::slice::from_ref(&ca)),
        "no client certificate must fail"
    );
    assert!(
        !labels(&[cert.clone(), key.clone()]),
        "an unknown CA must fail"
    );
    assert!(labels(&[
        "--tls-skip-verify".into(),
        cert.clone(),
        key.clone()
    ]));

    // Live tail over wss with the same certificates: a line pushed (by curl) arrives.
    let args = [
        "query",
        "--tail",
        "-q",
        "-o",
        "raw",
        &ca,
        &cert,
        &key,
        r#"{app="tls"}"#,
    ];
    let mut follower = Follower::start(&silt, &url, &args);
    let body = format!(
        r#"{{"streams":[{{"stream":{{"app":"tls"}},"values":[["{}","over wss"]]}}]}}"#,
        now_ns()
    );
    // Before the session starts it comes with the replay (the last hour), after it live.
    let st = Command::new("curl")
        .args(["-sf", "--cacert"])
        .arg(&pki.ca)
        .arg("--cert")
        .arg(&pki.client_cert)
        .arg("--key")
        .arg(&pki.client_key)
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body,
        ])
        .arg(format!("{url}/loki/api/v1/push"))
        .status()
        .expect("run curl");
    assert!(st.success());
    follower.until(1);
    assert_eq!(follower.seen[0], "over wss");
}

/// Kills the process when dropped (also when an assertion fails).
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `query --tail` process and the lines it printed so far.
struct Follower {
    _child: Kill,
    rx: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Follower {
    fn start(bin: &Path, url: &str, args: &[&str]) -> Follower {
        use std::io::BufRead;
        let mut child = Command::new(bin)
            .args(args)
            .env("LOKI_ADDR", url)
            .env("TZ", "UTC")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start --tail");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower {
            _child: Kill(child),
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits until `n` lines were printed (the deadline only guards against a hang).
    fn until(&mut self, n: usize) -> &[String] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.seen.len() < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("{} of {n} lines: {:?}", self.seen.len(), self.seen),
            }
        }
        &self.seen
    }
}

/// `silt query --tail` prints what `logcli query --tail` prints: the replay (as a set:
/// sessions may cut it into frames differently), then each live push in order.
#[test]
fn silt_tail_prints_what_logcli_tail_prints() {
    let Some(logcli) = logcli() else {
        return;
    };
    let silt = PathBuf::from(env!("CARGO_BIN_EXE_silt"));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&silt, dir.path(), "", free_port());
    let t0 = now_ns() - 60_000_000_000;
    for (k, app) in ["api", "db"].iter().enumerate() {
        let entries: Vec<(i64, String)> = (0..5)
            .map(|i| {
                (
                    t0 + (i * 2 + k as i64) * 1_000_000,
                    format!(" old {app} <{i}> "),
                )
            })
            .collect();
        push_json(&server.addr, None, &[("app", app), ("env", "t")], &entries);
    }
    for output in ["jsonl", "default"] {
        let out = format!("--output={output}");
        let args = [
            "query",
            "--tail",
            "-q",
            &out,
            "--limit=50",
            r#"{env="t"} != "skip""#,
        ];
        let mut theirs = Follower::start(&logcli, &server.url(), &args);
        let mut ours = Follower::start(&silt, &server.url(), &args);
        let mut a = theirs.until(10).to_vec();
        let mut b = ours.until(10).to_vec();
        a.sort();
        b.sort();
        assert_eq!(b, a, "replay, {output}");
        for (n, app) in ["db", "api", "db"].iter().enumerate() {
            let now = now_ns();
            let live: Vec<(i64, String)> = [" new & <1>", "skip", "new \"2\""]
                .iter()
                .enumerate()
                .map(|(i, l)| (now + i as i64, format!("{app} {l} {n}")))
                .collect();
            push_json(&server.addr, None, &[("app", app), ("env", "t")], &live);
            let want = 10 + 2 * (n + 1);
            assert_eq!(ours.until(want)[10..], theirs.until(want)[10..], "{output}");
        }
    }
}
