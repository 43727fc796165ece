//! Runs the Loki conformance kit (../shared/conformance) against a fresh server.
//!
//! Loki v3.7.6's recorded answers are the oracle. The number of passing cases may only
//! go up: it must reach `tests/conformance_baseline.txt`.

use silt_testkit::{compare_conformance_kit, conformance_server};

#[test]
fn loki_conformance_kit() {
    let dir = tempfile::tempdir().unwrap();
    let server = conformance_server(bin(), dir.path());
    let (passed, failed) = compare_conformance_kit(&server.url());
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
