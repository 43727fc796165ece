//! Runs the Loki conformance kit (../shared/conformance) against a fresh server.
//!
//! Loki v3.7.6's recorded answers are the oracle. The number of passing cases may only
//! go up: it must reach `tests/conformance_baseline.txt`.

use silt_testkit::{conformance_server, shared_dir};
use std::process::Command;

#[test]
fn loki_conformance_kit() {
    let kit = shared_dir().join("conformance");
    let dir = tempfile::tempdir().unwrap();
    let server = conformance_server(bin(), dir.path());

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
