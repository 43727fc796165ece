//! logcli 3.7.6, the real Go client, against the real binary: `query`, `instant-query`,
//! `labels`, `series`, `stats` and `query --tail`. The binary comes from the shared
//! peers directory (unpacked into `target/peers`); without that directory the test
//! says so and passes.

use silt_testkit::{free_port, logcli, now_ns, push_json, Server};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn push(addr: &str, app: &str, entries: &[(i64, String)]) {
    push_json(addr, None, &[("app", app), ("env", "test")], entries);
}

struct Cli {
    bin: PathBuf,
    url: String,
}

impl Cli {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("LOKI_ADDR", &self.url)
            .env_remove("LOKI_ORG_ID");
        c
    }

    /// Runs logcli, requires exit code 0, returns stdout lines.
    fn ok(&self, args: &[&str]) -> Vec<String> {
        let out: Output = self.cmd(args).output().expect("run logcli");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "logcli {args:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout.lines().map(str::to_string).collect()
    }
}

#[test]
fn logcli_against_silt() {
    let Some(bin) = logcli() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        Path::new(env!("CARGO_BIN_EXE_silt")),
        dir.path(),
        "",
        free_port(),
    );
    let cli = Cli {
        bin,
        url: server.url(),
    };
    let base = now_ns() - 120_000_000_000;
    let entries: Vec<(i64, String)> = (0..20)
        .map(|i| (base + i * 1_000_000_000, format!("lc line {i}")))
        .collect();
    push(&server.addr, "lc", &entries);
    let all: Vec<String> = entries.iter().map(|(_, l)| l.clone()).collect();

    // query: forward, all lines; backward with a limit, the newest first.
    let got = cli.ok(&[
        "query",
        "--quiet",
        "--output=raw",
        "--since=1h",
        "--limit=100",
        "--forward",
        r#"{app="lc"}"#,
    ]);
    assert_eq!(got, all);
    let got = cli.ok(&[
        "query",
        "--quiet",
        "--output=raw",
        "--since=1h",
        "--limit=5",
        r#"{app="lc"} |= "line 1""#,
    ]);
    assert_eq!(
        got,
        [
            "lc line 19",
            "lc line 18",
            "lc line 17",
            "lc line 16",
            "lc line 15"
        ]
    );
    // Paging: a limit above logcli's batch size makes it page through the range.
    let got = cli.ok(&[
        "query",
        "--quiet",
        "--output=raw",
        "--since=1h",
        "--limit=20",
        "--batch=3",
        "--forward",
        r#"{app="lc"}"#,
    ]);
    assert_eq!(got, all);

    // instant-query: a metric query, printed as the vector result JSON.
    let got = cli
        .ok(&[
            "instant-query",
            "--quiet",
            r#"sum(count_over_time({app="lc"}[1h]))"#,
        ])
        .join("\n");
    let v: serde_json::Value = serde_json::from_str(&got).unwrap_or_else(|e| panic!("{e}: {got}"));
    assert_eq!(v[0]["value"][1], "20", "{got}");

    // labels and values.
    let names = cli.ok(&["labels", "--quiet", "--since=1h"]);
    assert!(names.iter().any(|n| n == "app"), "{names:?}");
    assert!(names.iter().any(|n| n == "env"), "{names:?}");
    assert_eq!(cli.ok(&["labels", "--quiet", "--since=1h", "app"]), ["lc"]);

    // series (logcli sends `match`, not `match[]`).
    let series = cli.ok(&["series", "--quiet", "--since=1h", r#"{app="lc"}"#]);
    assert_eq!(series.len(), 1, "{series:?}");
    assert!(series[0].contains(r#"app="lc""#), "{series:?}");
    assert!(series[0].contains(r#"env="test""#), "{series:?}");

    // stats from the index.
    let stats = cli
        .ok(&["stats", "--quiet", "--since=1h", r#"{app="lc"}"#])
        .join("\n");
    assert!(stats.contains("streams: 1"), "{stats}");
    assert!(stats.contains("entries: 20"), "{stats}");

    tail(&cli, &server.addr, &all);
}

/// `query --tail`: the replay, then lines pushed after logcli connected.
fn tail(cli: &Cli, addr: &str, existing: &[String]) {
    let mut child = cli
        .cmd(&[
            "query",
            "--tail",
            "--quiet",
            "--output=raw",
            "--limit=50",
            r#"{app="lc"} != "skip""#,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start logcli --tail");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |want: &str, seen: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.iter().any(|l| l == want) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => seen.push(l),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("logcli --tail never printed {want:?}; got {seen:?}");
                }
            }
        }
    };
    // The replay ends with the newest existing line: logcli is connected from here on.
    wait_for(existing.last().unwrap(), &mut seen);
    assert_eq!(seen, existing);
    let now = now_ns();
    let live: Vec<(i64, String)> = ["tail a", "skip me", "tail b"]
        .iter()
        .enumerate()
        .map(|(i, l)| (now + i as i64, l.to_string()))
        .collect();
    push(addr, "lc", &live);
    wait_for("tail b", &mut seen);
    assert_eq!(&seen[existing.len()..], ["tail a", "tail b"]);
    let _ = child.kill();
    let _ = child.wait();
}
