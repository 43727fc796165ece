//! `silt import` against a real `silt server`: a generated Airflow tree (both layouts,
//! runs, tries, mapped tasks, tracebacks, a gzip'd file) read back exactly by query;
//! `--dry-run`; SIGKILL mid-import then resume, and re-runs with and without the
//! checkpoint, all exactly once; bad inputs reported with a non-zero exit while the good
//! files still arrive; old entries refused up front with the setting named.

use silt_testkit::{free_port, query_lines, Server};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const NS: i64 = 1_000_000_000;
/// 2024-05-01T00:00:00Z.
const BASE: i64 = 1_714_521_600 * NS;

/// Takes data from 2024 and keeps it.
const OLD_DATA: &str = "limits:\n  reject_old_samples: false\n  ingestion_rate_mb: 1024\n  ingestion_burst_size_mb: 1024\ncompactor:\n  retention_enabled: false\nstorage:\n  wal_fsync: false\n";

fn silt() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_silt"))
}

fn import(server: &Server, args: &[&str]) -> Output {
    Command::new(silt())
        .arg("import")
        .args(args)
        .env("LOKI_ADDR", server.url())
        .env_remove("LOKI_ORG_ID")
        .output()
        .expect("run silt import")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `2024-05-01T00:00:00.000+0000`, or with `old` Airflow 1.10's `2024-05-01 00:00:00,000`.
fn airflow_time(ns: i64, old: bool) -> String {
    let s = silt_proto::time::format_rfc3339(ns);
    let ms = ns.rem_euclid(NS) / 1_000_000;
    let s = s.trim_end_matches('Z');
    if old {
        format!("{},{ms:03}", s.replace('T', " "))
    } else {
        format!("{s}.{ms:03}+0000")
    }
}

/// Task log lines starting at `start`: one record a second, every fifth an error with a
/// traceback (continuation lines, a blank one), and a repeated line in the same
/// millisecond.
fn task_lines(tag: &str, start: i64, records: usize, old: bool) -> Vec<String> {
    let mut out = vec!["*** log start without a timestamp".to_string()];
    for k in 0..records {
        let t = airflow_time(start + k as i64 * NS, old);
        if k % 5 == 4 {
            out.push(format!(
                "[{t}] {{taskinstance.py:441}} ERROR - {tag} record {k} failed"
            ));
            out.push("Traceback (most recent call last):".into());
            out.push(format!("  File \"/opt/dags/{tag}.py\", line {k}, in run"));
            out.push(String::new());
            out.push("ValueError: boom".into());
        } else {
            out.push(format!(
                "[{t}] {{subprocess.py:93}} INFO - {tag} record {k}"
            ));
        }
        if k == 2 {
            out.push(format!("[{t}] {{subprocess.py:93}} INFO - "));
            out.push(format!("[{t}] {{subprocess.py:93}} INFO - "));
        }
    }
    out
}

/// Writes `lines` (gzip'd for `.gz`) with the mtime `mtime`.
fn write_lines(path: &Path, lines: &[String], mtime: i64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut body = lines.join("\n");
    body.push('\n');
    if path.extension().is_some_and(|e| e == "gz") {
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(path).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(body.as_bytes()).unwrap();
        gz.finish().unwrap();
    } else {
        std::fs::write(path, body).unwrap();
    }
    set_mtime(path, mtime);
}

fn set_mtime(path: &Path, ns: i64) {
    let t = std::time::UNIX_EPOCH + Duration::from_nanos(ns as u64);
    std::fs::File::options()
        .append(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// One generated file: path under the root, stream, metadata filter, lines.
struct Gen {
    rel: String,
    stream: (&'static str, &'static str),
    filter: String,
    lines: Vec<String>,
}

impl Gen {
    /// The lines in time order: the untimed first line has the file's mtime, after the
    /// rest.
    fn by_time(&self) -> Vec<String> {
        let mut v = self.lines[1..].to_vec();
        v.push(self.lines[0].clone());
        v
    }
}

/// An Airflow log tree in `root`; files of a stream cover disjoint hours, in order.
fn airflow_tree(root: &Path) -> Vec<Gen> {
    let r1 = "scheduled__2024-05-01T00:00:00+00:00";
    let r2 = "manual__2024-05-02T10:00:00.123456+00:00";
    let spec: Vec<(String, (&str, &str), String, bool)> = vec![
        (
            format!("dag_id=etl/run_id={r1}/task_id=extract/attempt=1.log"),
            ("etl", "extract"),
            format!("run_id=\"{r1}\", try_number=\"1\""),
            false,
        ),
        (
            format!("dag_id=etl/run_id={r1}/task_id=extract/attempt=2.log"),
            ("etl", "extract"),
            format!("run_id=\"{r1}\", try_number=\"2\""),
            false,
        ),
        (
            format!("dag_id=etl/run_id={r2}/task_id=extract/attempt=1.log.gz"),
            ("etl", "extract"),
            format!("run_id=\"{r2}\", filename=~\".*gz\""),
            false,
        ),
        (
            format!("dag_id=etl/run_id={r1}/task_id=load/attempt=1.log"),
            ("etl", "load"),
            "try_number=\"1\"".into(),
            false,
        ),
        (
            format!("dag_id=etl/run_id={r2}/task_id=fan/map_index=0/attempt=1.log"),
            ("etl", "fan"),
            "map_index=\"0\"".into(),
            false,
        ),
        (
            format!("dag_id=etl/run_id={r2}/task_id=fan/map_index=1/attempt=1.log"),
            ("etl", "fan"),
            "map_index=\"1\"".into(),
            false,
        ),
        (
            format!("dag_id=etl/run_id={r2}/task_id=fan/map_index=2/attempt=3.log"),
            ("etl", "fan"),
            "map_index=\"2\", try_number=\"3\"".into(),
            false,
        ),
        (
            "dag_id=report/run_id=r9/task_id=send/attempt=1.log".into(),
            ("report", "send"),
            "run_id=\"r9\"".into(),
            false,
        ),
        (
            "legacy/move/2024-04-01T00:00:00+00:00/1.log".into(),
            ("legacy", "move"),
            "logical_date=\"2024-04-01T00:00:00+00:00\", try_number=\"1\"".into(),
            true,
        ),
        (
            "legacy/move/2024-04-02T00:00:00+00:00/2.log".into(),
            ("legacy", "move"),
            "logical_date=\"2024-04-02T00:00:00+00:00\", try_number=\"2\"".into(),
            true,
        ),
    ];
    spec.into_iter()
        .enumerate()
        .map(|(j, (rel, stream, filter, old))| {
            let start = BASE + j as i64 * 3600 * NS;
            let lines = task_lines(&format!("f{j}"), start, 12 + j, old);
            write_lines(&root.join(&rel), &lines, start + 1800 * NS);
            Gen {
                rel,
                stream,
                filter,
                lines,
            }
        })
        .collect()
}

fn selector((dag, task): (&str, &str)) -> String {
    format!("{{dag_id=\"{dag}\", task_id=\"{task}\"}}")
}

fn lines_of(server: &Server, q: &str) -> Vec<String> {
    query_lines(&server.addr, q, BASE - 86_400 * NS, BASE + 2 * 86_400 * NS)
}

/// Every stream holds its files' lines exactly once, in file order.
fn assert_tree(server: &Server, gens: &[Gen]) {
    let mut want: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for g in gens {
        want.entry(g.stream).or_default().extend(g.by_time());
    }
    for (stream, lines) in &want {
        let got = lines_of(server, &selector(*stream));
        assert_eq!(got.len(), lines.len(), "line count of {stream:?}");
        assert_eq!(&got, lines, "lines of {stream:?}");
    }
}

#[test]
fn airflow_tree_is_imported_exactly_once_with_labels_and_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&silt(), &tmp.path().join("srv"), OLD_DATA, free_port());
    let root = tmp.path().join("logs");
    let gens = airflow_tree(&root);
    let ck = tmp.path().join("import.ck");
    let (ck_s, root_s) = (ck.to_str().unwrap(), root.to_str().unwrap());

    // A dry run prints each stream's line count and sends nothing.
    let dry = import(&server, &["--dry-run", "--checkpoint", ck_s, root_s]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let out = String::from_utf8_lossy(&dry.stdout);
    let mut per_stream: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for g in &gens {
        *per_stream.entry(g.stream).or_default() += g.lines.len();
    }
    for (stream, n) in &per_stream {
        let line = format!("{}\t{n}", selector(*stream));
        assert!(out.lines().any(|l| l == line), "{line:?} not in\n{out}");
    }
    assert!(!ck.exists(), "a dry run writes no checkpoint");
    for stream in per_stream.keys() {
        assert!(lines_of(&server, &selector(*stream)).is_empty());
    }

    let run = import(
        &server,
        &["--checkpoint", ck_s, "--batch-size", "4KiB", root_s],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("0 problem(s)"), "{}", stderr(&run));
    assert_tree(&server, &gens);
    // Run, try, map index and date are metadata: each file is found by them.
    for g in &gens {
        let q = format!("{} | {}", selector(g.stream), g.filter);
        assert_eq!(lines_of(&server, &q), g.by_time(), "{q} ({})", g.rel);
    }
    // One stream per DAG and task: no run, try or file label.
    let series = silt_testkit::series(
        &server.addr,
        "{dag_id=~\".+\"}",
        &format!(
            "start={}&end={}",
            BASE - 86_400 * NS,
            BASE + 2 * 86_400 * NS
        ),
    );
    assert_eq!(series.len(), per_stream.len(), "{series:?}");
    for s in series {
        for k in s.as_object().unwrap().keys() {
            assert!(
                ["dag_id", "task_id", "service_name"].contains(&k.as_str()),
                "unexpected label {k} in {s}"
            );
        }
    }

    // Again with the checkpoint: nothing is sent.
    let again = import(&server, &["--checkpoint", ck_s, root_s]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("imported 0 lines"),
        "{}",
        stderr(&again)
    );
    // Without it: everything is sent again and the server keeps one copy.
    let dup = import(&server, &["--no-checkpoint", root_s]);
    assert!(dup.status.success(), "{}", stderr(&dup));
    assert!(
        !stderr(&dup).contains("imported 0 lines"),
        "{}",
        stderr(&dup)
    );
    assert_tree(&server, &gens);
}

#[test]
fn sigkill_mid_import_then_resume_imports_every_line_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&silt(), &tmp.path().join("srv"), OLD_DATA, free_port());
    let root = tmp.path().join("logs");
    let mut want: Vec<String> = Vec::new();
    for f in 0..24 {
        let lines = task_lines(&format!("k{f}"), BASE + f * 600 * NS, 60, false);
        let rel = format!("dag_id=big/run_id=r{f:02}/task_id=t/attempt=1.log");
        write_lines(&root.join(rel), &lines, BASE + f * 600 * NS + 300 * NS);
        want.extend(lines);
    }
    let ck = tmp.path().join("import.ck");
    let args = [
        "--checkpoint",
        ck.to_str().unwrap(),
        "--batch-size",
        "2KiB",
        "--rate-limit",
        "40KB",
        root.to_str().unwrap(),
    ];
    let mut child = Command::new(silt())
        .arg("import")
        .args(args)
        .env("LOKI_ADDR", server.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = std::fs::read_to_string(&ck)
            .map(|s| s.matches("\"done\":true").count())
            .unwrap_or(0);
        if done >= 3 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "import ended before the kill"
        );
        assert!(Instant::now() < deadline, "no progress in the checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let ck_text = std::fs::read_to_string(&ck).unwrap();
    assert!(
        ck_text.matches("\"done\":true").count() < 24,
        "killed after the end"
    );
    let sent = lines_of(&server, "{dag_id=\"big\"}").len();
    assert!(sent > 0 && sent < want.len(), "{sent} of {}", want.len());

    let resumed = import(
        &server,
        &args[..4]
            .iter()
            .chain(&[args[6]])
            .copied()
            .collect::<Vec<_>>(),
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let check = || {
        let mut got = lines_of(&server, "{dag_id=\"big\"}");
        let mut w = want.clone();
        got.sort();
        w.sort();
        assert_eq!(got.len(), w.len(), "every line exactly once");
        assert_eq!(got, w);
    };
    check();
    let dup = import(&server, &["--no-checkpoint", root.to_str().unwrap()]);
    assert!(dup.status.success(), "{}", stderr(&dup));
    check();
}

#[test]
fn bad_inputs_are_reported_and_good_files_still_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = OLD_DATA.replace("limits:\n", "limits:\n  max_line_size: 1KB\n");
    let server = Server::start(&silt(), &tmp.path().join("srv"), &cfg, free_port());
    let root = tmp.path().join("logs");
    let task = |t: &str| {
        let p = root.join(format!("dag_id=bad/run_id=r/task_id={t}/attempt=1.log"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    };
    let good = task_lines("good", BASE, 10, false);
    write_lines(&task("good"), &good, BASE + 3600 * NS);
    std::fs::write(
        task("binary"),
        b"[2024-05-01T00:00:00.000+0000] x\n\0\0\x01\x02 elf\n",
    )
    .unwrap();
    let t = airflow_time(BASE, false);
    let mut raw =
        format!("[{t}] {{x.py:1}} INFO - ok\n[{t}] {{x.py:1}} INFO - caf\u{e9} ").into_bytes();
    raw.extend_from_slice(b"\xff\xfe end\n");
    std::fs::write(task("utf8"), raw).unwrap();
    let long = vec![
        format!("[{t}] {{x.py:1}} INFO - short"),
        format!("[{t}] {{x.py:2}} INFO - {}", "x".repeat(2000)),
        format!("[{t}] {{x.py:3}} INFO - short again"),
    ];
    write_lines(&task("long"), &long, BASE);
    std::fs::create_dir_all(task("gone").parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("nowhere"), task("gone")).unwrap();
    let missing = tmp.path().join("missing.log");

    let out = import(
        &server,
        &[
            "--no-checkpoint",
            root.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for (what, path) in [
        ("binary", task("binary")),
        ("UTF-8", task("utf8")),
        ("max_line_size", task("long")),
        ("No such file", task("gone")),
        ("No such file", missing.clone()),
    ] {
        let p = path.display().to_string();
        assert!(
            err.lines().any(|l| l.contains(&p) && l.contains(what)),
            "{what} for {p} not reported:\n{err}"
        );
    }
    assert!(err.contains("5 problem(s)"), "{err}");
    let sel = |t: &str| format!("{{dag_id=\"bad\", task_id=\"{t}\"}}");
    assert_eq!(lines_of(&server, &sel("good")).len(), good.len());
    assert!(lines_of(&server, &sel("binary")).is_empty());
    let utf8 = lines_of(&server, &sel("utf8"));
    assert_eq!(utf8.len(), 2);
    assert!(
        utf8[1].ends_with("caf\u{e9} \u{fffd}\u{fffd} end"),
        "{utf8:?}"
    );
    assert_eq!(
        lines_of(&server, &sel("long")),
        vec![long[0].clone(), long[2].clone()]
    );

    // With --truncate-long-lines the long line is cut and sent, exit 0 for that file.
    let out = import(
        &server,
        &[
            "--no-checkpoint",
            "--truncate-long-lines",
            task("long").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let got = lines_of(&server, &sel("long"));
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().any(|l| l.len() == 1000), "{got:?}");
}

#[test]
fn old_entries_are_refused_up_front_with_the_setting_named() {
    let tmp = tempfile::tempdir().unwrap();
    // Defaults: entries older than 7 days refused, data kept 7 days.
    let server = Server::start(&silt(), &tmp.path().join("srv"), "", free_port());
    let root = tmp.path().join("logs");
    let lines = task_lines("old", BASE, 5, false);
    write_lines(
        &root.join("dag_id=o/run_id=r/task_id=t/attempt=1.log"),
        &lines,
        BASE,
    );
    let out = import(&server, &["--no-checkpoint", root.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("limits.reject_old_samples: false"), "{err}");
    assert!(err.contains("--reject-old-samples=false"), "{err}");
    assert!(err.contains("limits.retention_period"), "{err}");
    assert!(err.contains("--force"), "{err}");
    // --force sends anyway: the server refuses, and that is reported too.
    let out = import(
        &server,
        &["--no-checkpoint", "--force", root.to_str().unwrap()],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn path_template_and_static_labels_name_other_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&silt(), &tmp.path().join("srv"), OLD_DATA, free_port());
    let root = tmp.path().join("old");
    let t = silt_proto::time::format_rfc3339(BASE);
    let access = vec![
        format!("{t} GET /a 200"),
        "10.0.0.1 - - [01/May/2024:02:00:00 +0200] \"GET /b\" 200".to_string(),
    ];
    write_lines(&root.join("web/2024-05-01/access.log"), &access, BASE);
    write_lines(&root.join("web/notes.txt"), &["x".to_string()], BASE);
    let out = import(
        &server,
        &[
            "--no-checkpoint",
            "--path-template",
            "{app}/{@date}/*.log",
            "--label",
            "env=old",
            root.to_str().unwrap(),
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // notes.txt matches neither the template nor Airflow's layouts: --label alone.
    assert_eq!(
        lines_of(&server, r#"{env="old", app=""}"#),
        vec!["x".to_string()]
    );
    let got = lines_of(&server, r#"{app="web", env="old"} | date="2024-05-01""#);
    assert_eq!(got, access);
}
