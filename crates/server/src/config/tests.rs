use super::*;

#[test]
fn example_config_parses_with_every_section() {
    let text = include_str!("../../../../config/server.example.yaml");
    let cfg = Config::from_yaml(text).unwrap();
    assert_eq!(cfg.server.listen, "0.0.0.0:3100");
    assert_eq!(cfg.limits.max_line_size, 256 * 1000);
    assert_eq!(cfg.storage.flush_max_bytes, 64 << 20);
    assert_eq!(cfg.storage.max_head_memory, 128 << 20);
    assert!(cfg.ruler.enable_api);
}

#[test]
fn ruler_storage_is_checked() {
    let err = Config::from_yaml(
        "ruler:
  storage:
    type: local
",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("ruler.storage.local.directory"), "{err}");
    let err = Config::from_yaml(
        "ruler:
  storage:
    type: s3
",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("ruler.storage.type"), "{err}");
}

#[test]
fn unknown_key_is_named() {
    let err = Config::from_yaml("limits:\n  max_line_sise: 10\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_line_sise"), "{err}");
}

#[test]
fn bad_value_is_named() {
    let err = Config::from_yaml("storage:\n  zstd_level: 40\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("storage.zstd_level"), "{err}");
    let err = Config::from_yaml("storage:\n  max_head_memory: 1MiB\n").unwrap_err();
    assert!(err.to_string().contains("storage.max_head_memory"), "{err}");
    assert!(Config::from_yaml("storage:\n  max_head_memory: 0\n").is_ok());
    let err = Config::from_yaml("limits:\n  query_timeout: soon\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("query_timeout"), "{err}");
}

#[test]
fn env_expansion() {
    std::env::set_var("SILT_TEST_DIR", "/tmp/x");
    let cfg = Config::from_yaml(
        "storage:\n  data_dir: ${SILT_TEST_DIR}\n  zstd_level: ${SILT_UNSET_LEVEL:-5}\n",
    )
    .unwrap();
    assert_eq!(cfg.storage.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(cfg.storage.zstd_level, 5);
    assert!(Config::from_yaml("version: ${SILT_SURELY_UNSET}\n").is_err());
}

#[test]
fn object_store_and_retention_are_validated() {
    let err = Config::from_yaml("storage:\n  object_store:\n    backend: s3\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("storage.object_store.s3.bucket"), "{err}");
    let err = Config::from_yaml("storage:\n  object_store:\n    backend: gcs\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("backend"), "{err}");
    let err = Config::from_yaml(
        "limits:\n  retention_stream:\n    - {selector: '{a=\"b\"} | json', period: 1h}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("limits.retention_stream"), "{err}");
    let cfg = Config::from_yaml(concat!(
        "storage:\n  object_store:\n    backend: s3\n    s3:\n      bucket: b\n",
        "      endpoint: http://127.0.0.1:9000\n      force_path_style: true\n",
        "overrides:\n  t1:\n    retention_period: 24h\n",
        "    retention_stream: [{selector: '{env=\"dev\"}', priority: 2, period: 1h}]\n",
    ))
    .unwrap();
    match cfg.storage.backend().unwrap() {
        silt_storage::Backend::S3(s3) => {
            assert!(s3.path_style);
            assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        }
        silt_storage::Backend::Local => panic!("expected s3"),
    }
    let r = cfg.retention().unwrap();
    let dev = silt_model::Labels::from_pairs([("env", "dev")]);
    assert_eq!(r.period("t1", &dev), Some(Duration::from_secs(3600)));
    assert_eq!(
        r.period("t1", &silt_model::Labels::new()),
        Some(Duration::from_secs(24 * 3600))
    );
    assert_eq!(r.period("t2", &dev), Some(Duration::from_secs(168 * 3600)));
}

#[test]
fn sizes_and_durations() {
    assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
    assert_eq!(parse_bytes("256KB").unwrap(), 256_000);
    assert_eq!(parse_bytes("1024").unwrap(), 1024);
    assert_eq!(
        parse_duration("168h").unwrap(),
        Duration::from_secs(168 * 3600)
    );
    assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
    assert!(parse_bytes("12XB").is_err());
}

#[test]
fn gateway_is_checked_only_as_the_target() {
    let err = |y: &str| Config::from_yaml(y).unwrap_err().to_string();
    assert!(Config::from_yaml("gateway:\n  requests_per_second: 5\n").is_ok());
    let e = err("target: gateway\n");
    assert!(e.contains("gateway.write_urls"), "{e}");
    let e =
        err("target: gateway\ngateway:\n  write_urls: [http://w:3100]\n  read_urls: [w:3100]\n");
    assert!(
        e.contains("gateway.read_urls") && e.contains("not an http"),
        "{e}"
    );
    let urls =
        "target: gateway\ngateway:\n  write_urls: [http://w:3100]\n  read_urls: [http://r:3100]\n";
    assert!(Config::from_yaml(urls).is_ok());
    let e = err(&format!("{urls}  tenants: {{alice: team-a}}\n"));
    assert!(
        e.contains("gateway.tenants") && e.contains("basic_auth_file"),
        "{e}"
    );
    let e = err(&format!("{urls}  basic_auth_file: /nonexistent/htpasswd\n"));
    assert!(e.contains("gateway.basic_auth_file"), "{e}");
    let e = err("target: nodes\n");
    assert!(e.contains("target"), "{e}");
}

#[test]
fn roles_sharing_a_bucket_are_checked() {
    let s3 = "storage:\n  object_store:\n    backend: s3\n    s3: {bucket: b}\n";
    let err = |yaml: &str| Config::from_yaml(yaml).unwrap_err().to_string();
    let e = err(&format!("target: write\n{s3}"));
    assert!(e.contains("cluster.writer_id"), "{e}");
    let e = err(&format!(
        "target: write\n{s3}cluster: {{writer_id: 'a/b'}}\n"
    ));
    assert!(e.contains("cluster.writer_id"), "{e}");
    let e = err("target: read\n");
    assert!(e.contains("storage.object_store.backend"), "{e}");
    let e = err(&format!(
        "target: backend\n{s3}cluster: {{lease_ttl: 3s, lease_renew_interval: 2s}}\n"
    ));
    assert!(e.contains("cluster.lease_renew_interval"), "{e}");
    let e = err(&format!(
        "target: read\n{s3}cluster: {{writer_urls: [silt-write-0:3100]}}\n"
    ));
    assert!(e.contains("cluster.writer_urls"), "{e}");
    Config::from_yaml(&format!(
        "target: read\n{s3}cluster: {{writer_urls: ['http://silt-write-0:3100']}}\n"
    ))
    .unwrap();
    let ok = Config::from_yaml(&format!(
        "target: write\n{s3}cluster: {{writer_id: silt-write-0}}\n"
    ))
    .unwrap();
    assert_eq!(ok.target, Target::Write);
    Config::from_yaml(&format!(
        "target: backend\n{s3}cluster: {{lease_ttl: 3s}}\n"
    ))
    .unwrap();
    assert_eq!("read".parse::<Target>(), Ok(Target::Read));
}
