//! Runs the Loki conformance kit (../shared/conformance) against a fresh server.
//!
//! Loki v3.7.6's recorded answers are the oracle. The number of passing cases may only
//! go up: it must reach `tests/conformance_baseline.txt`.

use silt_testkit::{free_port, shared_dir, Server};
use std::process::Command;

const CONFIG: &str = "
limits:
  reject_old_samples: false
  ingestion_rate_mb: 1024
  ingestion_burst_size_mb: 1024
storage:
  wal_fsync: false
# the kit's data is from 2024: keep it past the default 7-day retention
compactor:
  retention_enabled: false
";

#[test]
fn loki_conformance_kit() {
    let kit = shared_dir().join("conformance");
    assert!(
        kit.join("compare.py").is_file(),
        "conformance kit not found at {}",
        kit.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(bin(), dir.path(), CONFIG, free_port());

    let load = Command::new("python3")
        .arg(kit.join("load.py"))
        .arg(server.url())
        .output()
        .expect("run load.py");
    assert!(
        load.status.success(),
        "load.py failed: {}",
        String::from_utf8_lossy(&load.stderr)
    );

    let out = Command::new("python3")
        .arg(kit.join("compare.py"))
        .arg(server.url())
        .output()
        .expect("run compare.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let mut nums = last
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap());
    let (passed, failed) = (
        nums.next().expect("pass count"),
        nums.next().expect("fail count"),
    );
    for l in stdout
        .lines()
        .filter(|l| l.starts_with("FAIL") || l.starts_with("     "))
    {
        println!("{l}");
    }
    // Phrased so CI does not mistake it for the test runner's own summary.
    println!(
        "conformance kit: {passed} of {} Loki cases answered identically",
        passed + failed
    );
    let baseline: u32 = include_str!("conformance_baseline.txt")
        .trim()
        .parse()
        .unwrap();
    assert!(
        passed >= baseline,
        "conformance regressed: {passed} cases pass, baseline is {baseline}"
    );
}

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_silt"))
}
