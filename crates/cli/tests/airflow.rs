//! Airflow end to end: apache-airflow 2.10.5 (pip-installed with pinned versions into
//! `target/pydeps-airflow` on first run) runs a task through `airflow tasks run --local`,
//! the executor's command, with `silt_airflow.SiltTaskHandler` (integrations/airflow)
//! shipping the log to a Silt server; the log is then read back through the handler as the
//! webserver does and must match the local file line for line, in order. A second test
//! checks the Airflow 3 interface (`REMOTE_TASK_LOG`) with apache-airflow 3.1.8's own
//! config loader and log parser, in `target/pydeps-airflow3`.

use silt_testkit::{free_port, http, pip_target, Server};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// apache-airflow `version` with its pinned dependencies, cached under `target/dir`.
fn pydeps(dir: &str, version: &str) -> PathBuf {
    let constraints = root().join(format!("tests/airflow/constraints-{version}.txt"));
    pip_target(
        &root().join("target").join(dir),
        "import airflow.utils.log.file_task_handler",
        &[
            &format!("apache-airflow=={version}"),
            "-c",
            constraints.to_str().unwrap(),
        ],
    )
}

/// The environment every Airflow process of a test gets.
fn airflow_env(deps: &Path, home: &Path, silt: &str) -> Vec<(String, String)> {
    let pythonpath = format!(
        "{}:{}",
        root().join("integrations/airflow").display(),
        deps.display()
    );
    [
        ("PYTHONPATH", pythonpath.as_str()),
        // No __pycache__ beside the sources (DAGs, the handler).
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("AIRFLOW_HOME", home.to_str().unwrap()),
        (
            "AIRFLOW__CORE__DAGS_FOLDER",
            root().join("tests/airflow/dags").to_str().unwrap(),
        ),
        ("AIRFLOW__CORE__LOAD_EXAMPLES", "False"),
        ("AIRFLOW__LOGGING__LOGGING_LEVEL", "DEBUG"),
        (
            "AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS",
            "silt_airflow.log_config.LOGGING_CONFIG",
        ),
        ("AIRFLOW__SILT__URL", silt),
        ("AIRFLOW__SILT__LABELS", r#"{"job": "airflow-e2e"}"#),
        ("AIRFLOW__SILT__GRAFANA_URL", "http://grafana:3000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

// A small rate limit so that shipping the task log meets 429s and has to retry.
const CONFIG: &str = "
limits:
  ingestion_rate_mb: 0.25
  ingestion_burst_size_mb: 0.5
";

/// Runs python3 with the Airflow environment; returns stdout, panics with the output on failure.
fn python(env: &[(String, String)], args: &[&str]) -> String {
    let out = Command::new("python3")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "python3 {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn last_json(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .expect("JSON line");
    serde_json::from_str(line).unwrap()
}

#[test]
fn airflow_task_log_round_trip() {
    let deps = pydeps("pydeps-airflow", "2.10.5");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        Path::new(env!("CARGO_BIN_EXE_silt")),
        &dir.path().join("silt"),
        CONFIG,
        free_port(),
    );
    let url = server.url();
    let env = airflow_env(&deps, &dir.path().join("home"), &url);
    let tests = root().join("tests/airflow");

    python(&env, &["-m", "airflow", "db", "migrate"]);
    let prepare = tests.join("prepare.py");
    python(
        &env,
        &[prepare.to_str().unwrap(), "mixed_levels", "manual__e2e"],
    );
    let run = [
        "-m",
        "airflow",
        "tasks",
        "run",
        "mixed_levels",
        "chatter",
        "manual__e2e",
        "--local",
    ];
    python(&env, &run);

    let read_back = tests.join("read_back.py");
    let out = python(
        &env,
        &[
            read_back.to_str().unwrap(),
            "mixed_levels",
            "chatter",
            "manual__e2e",
            &url,
        ],
    );
    let facts = last_json(&out);
    println!("{facts}");
    assert_eq!(facts["try_number"], 1);
    assert_eq!(facts["state"], "success");
    assert!(facts["local_lines"].as_u64().unwrap() > 6000, "{facts}");
    // One entry per record (tracebacks and multi-line messages stay whole).
    assert_eq!(facts["entries"], facts["local_records"]);
    assert!(facts["entries"].as_u64().unwrap() > 5000);
    assert_eq!(facts["remote_equals_local"], true, "{facts}");
    assert!(facts["query_requests"].as_u64().unwrap() >= 2, "{facts}");
    assert_eq!(facts["notes"], serde_json::json!([]));
    assert_eq!(facts["ui_equals_stock"], true, "{facts}");
    assert!(facts["ui_lines"].as_u64().unwrap() > 6000);
    assert_eq!(facts["ui_names_silt"], true);
    assert_eq!(facts["end_of_log"], true);
    assert!(facts["grafana"]
        .as_str()
        .unwrap()
        .starts_with("http://grafana:3000/explore?"));
    // Why the merge matters: the server splits the log into one stream per level, so a
    // provider-style read (one page, streams concatenated) is truncated and out of order.
    assert!(facts["streams"].as_u64().unwrap() >= 4, "{facts}");
    for level in ["debug", "error", "info", "warn"] {
        assert!(facts["stream_levels"]
            .as_array()
            .unwrap()
            .contains(&level.into()));
    }
    assert_eq!(facts["provider_entries"], 5000);
    assert_eq!(facts["provider_same_entries"], true);
    assert_eq!(facts["provider_in_order"], false);

    // Shipping met the rate limit and retried.
    let (_, metrics) = http(&server.addr, "GET", "/metrics", &[], b"").unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    let limited: f64 = metrics
        .lines()
        .find(|l| l.starts_with("silt_discarded_entries") && l.contains("rate_limited"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(limited > 0.0, "no push was rate limited:\n{metrics}");

    let edges = tests.join("paging_edges.py");
    let facts = last_json(&python(&env, &[edges.to_str().unwrap(), &url]));
    println!("{facts}");
    assert_eq!(facts["read"], facts["pushed"]);
    assert_eq!(facts["same_entries"], true);
    assert_eq!(facts["times_ascending"], true);
    assert_eq!(facts["groups_in_order"], true);
    assert!(facts["requests"].as_u64().unwrap() >= 10, "{facts}");
    assert_eq!(facts["notes"], serde_json::json!([]));
    assert_eq!(facts["big_page_read"], facts["pushed"]);
}

#[test]
fn airflow3_remote_log_io() {
    let deps = pydeps("pydeps-airflow3", "3.1.8");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        Path::new(env!("CARGO_BIN_EXE_silt")),
        &dir.path().join("silt"),
        "",
        free_port(),
    );
    let env = airflow_env(&deps, &dir.path().join("home"), &server.url());
    let script = root().join("tests/airflow/remote_io_v3.py");
    let out = python(&env, &[script.to_str().unwrap()]);
    let facts = last_json(&out);
    println!("{facts}");
    assert_eq!(facts["airflow"], "3.1.8");
    assert_eq!(facts["remote_type"], "SiltRemoteLogIO");
    assert_eq!(facts["text_equals_local"], true, "{facts}");
    assert_eq!(facts["parsed_equal"], true, "{facts}");
    assert_eq!(facts["parsed_records"], 6000);
}
