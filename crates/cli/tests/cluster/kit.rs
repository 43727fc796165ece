//! The conformance kit (`../shared/conformance`) through a gateway in front of 3 writers,
//! 2 readers and a backend on one bucket (moto's S3 server) gives the answers of one
//! node: pushes are split by stream over the writers, and the readers merge the writers'
//! unflushed lines with the segments of those that flushed. Writers are listed as `dns+`
//! URLs, as a headless Service would be.

use super::{bin, Gateway};
use silt_testkit::moto::Moto;
use silt_testkit::{
    compare_conformance_kit, conformance_config, free_port, http, load_conformance_kit, metric,
    Server,
};

fn config(moto: &Moto, target: &str, cluster: &str) -> String {
    let store = super::object_store(moto, "kit");
    format!(
        "target: {target}\n{}cluster:\n  catalog_refresh_interval: 200ms\n{cluster}\n",
        conformance_config(&format!("  flush_max_age: 1h\n{store}"))
    )
}

#[test]
fn the_conformance_kit_through_a_gateway_answers_like_one_node() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let start =
        |name: &str, cfg: String| Server::start(bin(), &dir.path().join(name), &cfg, free_port());
    let writers: Vec<Server> = (0..3)
        .map(|i| {
            let id = format!("w{i}");
            start(&id, config(&moto, "write", &format!("  writer_id: {id}")))
        })
        .collect();
    // As found through DNS (`dns+`: every address of the name; here an IP literal).
    let urls: Vec<String> = writers.iter().map(|w| format!("dns+{}", w.url())).collect();
    let asks = format!("  writer_urls: [{}]", urls.join(", "));
    let readers: Vec<Server> = (0..2)
        .map(|i| start(&format!("r{i}"), config(&moto, "read", &asks)))
        .collect();
    let backend = start("backend", config(&moto, "backend", &asks));
    let list = |s: &[Server]| s.iter().map(Server::url).collect::<Vec<_>>().join(", ");
    let gw = Gateway::start(
        dir.path(),
        &format!(
            "gateway:\n  write_urls: [{}]\n  read_urls: [{}]\n  backend_urls: [{}]\n",
            urls.join(", "),
            list(&readers),
            backend.url()
        ),
    );
    let gw_url = format!("http://{}", gw.addr);
    load_conformance_kit(&gw_url);
    // Every writer took a share of the streams.
    for w in &writers {
        let n = metric(&w.addr, "silt_ingested_entries");
        assert!(n > 50_000.0, "{}: {n} entries", w.url());
    }
    // One writer's lines in segments, the others' in their heads.
    let (st, _) = http(&writers[0].addr, "POST", "/flush", &[], b"").unwrap();
    assert_eq!(st, 204);

    let (passed, failed) = compare_conformance_kit(&gw_url);
    println!("through the gateway: {passed} passed, {failed} failed");
    let baseline: u32 = include_str!("../conformance_baseline.txt")
        .trim()
        .parse()
        .unwrap();
    assert_eq!((passed, failed), (baseline, 0));
}
