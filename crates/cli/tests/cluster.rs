//! Beyond one node (issue #13), against real processes on loopback: the gateway
//! (`silt server --target gateway`) in front of a node, with basic auth, bearer tokens,
//! user → tenant mapping, per-tenant request limits and TLS with client certificates;
//! the roles sharing one bucket in `cluster/roles.rs`; the conformance kit through a
//! gateway in front of them in `cluster/kit.rs`; a writer killed during pushes through
//! the gateway in `cluster/kill.rs`; live tail through the gateway in `cluster/tail.rs`.

#[path = "cluster/kill.rs"]
mod kill;
#[path = "cluster/kit.rs"]
mod kit;
#[path = "cluster/roles.rs"]
mod roles;
#[path = "cluster/tail.rs"]
mod tail;

use base64::Engine as _;
use silt_testkit::{enc, free_port, http, now_ns, raw_get, Server};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `storage.object_store` block of the roles: moto's bucket, under `prefix`.
fn object_store(moto: &silt_testkit::moto::Moto, prefix: &str) -> String {
    format!(
        "  object_store:
    backend: s3
    s3:
      bucket: {}
      prefix: {prefix}
      endpoint: http://{}
      region: us-east-1
      force_path_style: true
      access_key_id: test
      secret_access_key: test
",
        silt_testkit::moto::BUCKET,
        moto.addr()
    )
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_silt"))
}

/// A gateway process on a free port, ready when `/ready` answers.
struct Gateway {
    child: Child,
    addr: String,
}

impl Gateway {
    fn start(dir: &Path, config: &str) -> Gateway {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.join(format!("gateway-{port}.yaml"));
        std::fs::write(&cfg, config).unwrap();
        let mut child = Command::new(bin())
            .args(["server", "--target", "gateway", "--config"])
            .arg(&cfg)
            .args(["--listen", &addr])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                panic!("gateway exited: {st}");
            }
            // A TLS listener is polled by the test itself, with its certificates.
            if config.contains("tls:") || http(&addr, "GET", "/ready", &[], b"").is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "gateway not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        Gateway { child, addr }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn basic(user: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

fn push_body(line: &str) -> String {
    serde_json::json!({"streams": [{"stream": {"app": "gw"},
        "values": [[now_ns().to_string(), line]]}]})
    .to_string()
}

fn push(addr: &str, headers: &[(&str, &str)], line: &str) -> (u16, String) {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    let (st, body) = http(
        addr,
        "POST",
        "/loki/api/v1/push",
        &h,
        push_body(line).as_bytes(),
    )
    .unwrap();
    (st, String::from_utf8_lossy(&body).into_owned())
}

/// Lines of `{app="gw"}` over the last hour.
fn lines(addr: &str, headers: &[(&str, &str)]) -> (u16, Vec<String>) {
    let path = format!(
        "/loki/api/v1/query_range?query={}&since=1h&limit=100",
        enc(r#"{app="gw"}"#)
    );
    let (st, body) = http(addr, "GET", &path, headers, b"").unwrap();
    if st != 200 {
        return (st, vec![String::from_utf8_lossy(&body).into_owned()]);
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut out: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .map(|e| e[1].as_str().unwrap().to_string())
        .collect();
    out.sort();
    (st, out)
}

/// Users: alice (team-a), bob (team-b and team-c), carol (no tenant); token `ci-token`
/// belongs to `ci` (team-a).
fn credentials(dir: &Path) -> String {
    let hash = |p: &str| bcrypt::hash(p, 4).unwrap();
    let htpasswd = dir.join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!(
            "# users\nalice:{}\nbob:{}\ncarol:{}\n",
            hash("wonderland"),
            hash("builder"),
            hash("singer")
        ),
    )
    .unwrap();
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "ci:ci-token\n").unwrap();
    format!(
        "  basic_auth_file: {}\n  tokens_file: {}\n  tenants:\n    alice: team-a\n    bob: [team-b, team-c]\n    ci: team-a\n",
        htpasswd.display(),
        tokens.display()
    )
}

/// A node (`auth_enabled`) and a gateway in front of it: `server` goes at the top of the
/// gateway's config, `extra` into its `gateway:` block, before the credentials.
fn node_and_gateway(dir: &Path, server: &str, extra: &str) -> (Server, Gateway) {
    let node = Server::start(
        bin(),
        &dir.join("node"),
        "auth_enabled: true\nstorage:\n  wal_fsync: false\n",
        free_port(),
    );
    let url = node.url();
    let config = format!(
        "{server}gateway:\n  write_urls: [{url}]\n  read_urls: [{url}]\n{extra}{}",
        credentials(dir)
    );
    let gw = Gateway::start(dir, &config);
    (node, gw)
}

#[test]
fn gateway_authenticates_and_maps_users_to_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let (node, gw) = node_and_gateway(dir.path(), "", "");
    let alice = basic("alice", "wonderland");
    let bob = basic("bob", "builder");

    // Pushes and queries through the gateway land in, and read from, the user's tenant.
    assert_eq!(
        push(&gw.addr, &[("Authorization", &alice)], "from alice").0,
        204
    );
    let (st, got) = lines(&gw.addr, &[("Authorization", &alice)]);
    assert_eq!((st, got), (200, vec!["from alice".to_string()]));
    let (_, direct) = lines(&node.addr, &[("X-Scope-OrgID", "team-a")]);
    assert_eq!(direct, vec!["from alice".to_string()]);
    // A bearer token of a user of the same tenant.
    let (st, got) = lines(&gw.addr, &[("Authorization", "Bearer ci-token")]);
    assert_eq!((st, got), (200, vec!["from alice".to_string()]));

    // A client cannot pick another tenant by sending the header itself.
    let (st, body) = push(
        &gw.addr,
        &[("Authorization", &alice), ("X-Scope-OrgID", "team-b")],
        "alice as b",
    );
    assert_eq!(st, 403, "{body}");
    assert!(body.contains("may not act as tenant \"team-b\""), "{body}");
    // A user with several tenants chooses one; without the header it is refused.
    assert_eq!(push(&gw.addr, &[("Authorization", &bob)], "bob").0, 403);
    let h = [("Authorization", bob.as_str()), ("X-Scope-OrgID", "team-c")];
    assert_eq!(push(&gw.addr, &h, "bob in c").0, 204);
    assert_eq!(lines(&gw.addr, &h).1, vec!["bob in c".to_string()]);
    assert_eq!(
        lines(&node.addr, &[("X-Scope-OrgID", "team-b")]).1,
        Vec::<String>::new()
    );

    // Wrong password, unknown user, no credentials, bad token: 401 with a challenge.
    for auth in [
        Some(basic("alice", "nope")),
        Some(basic("mallory", "x")),
        None,
        Some("Bearer nope".to_string()),
        Some("Digest abc".to_string()),
    ] {
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let (st, body) = lines(&gw.addr, &headers);
        assert_eq!(st, 401, "{auth:?}: {body:?}");
    }
    let raw = raw_get(&gw.addr, "/loki/api/v1/labels", &[]);
    assert!(
        raw.contains("www-authenticate: Basic realm=\"silt\""),
        "{raw}"
    );
    // A user mapped to no tenant: 403.
    let (st, body) = lines(&gw.addr, &[("Authorization", &basic("carol", "singer"))]);
    assert_eq!(st, 403, "{body:?}");

    // A changed htpasswd file is picked up without a restart.
    let text = std::fs::read_to_string(dir.path().join("htpasswd")).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("alice:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::thread::sleep(Duration::from_millis(20)); // a different modification time
    std::fs::write(dir.path().join("htpasswd"), kept).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines(&gw.addr, &[("Authorization", &alice)]).0 != 401 {
        assert!(Instant::now() < deadline, "removed user still let in");
        std::thread::sleep(Duration::from_millis(100));
        // Touch again in case both writes fell in one timestamp tick.
        let t = std::fs::read_to_string(dir.path().join("htpasswd")).unwrap();
        std::fs::write(dir.path().join("htpasswd"), t).unwrap();
    }

    // Live tail through the gateway, in the user's tenant.
    let tail_url = format!(
        "ws://{}/loki/api/v1/tail?query={}",
        gw.addr,
        enc(r#"{app="gw"}"#)
    );
    let open = |headers: &[(&'static str, &str)]| {
        use tungstenite::client::IntoClientRequest;
        let mut req = tail_url.as_str().into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(*k, v.parse().unwrap());
        }
        tungstenite::connect(req)
    };
    match open(&[]) {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 401),
        other => panic!("unauthenticated tail: {:?}", other.map(|_| ())),
    }
    let h = [("Authorization", bob.as_str()), ("X-Scope-OrgID", "team-c")];
    let (mut ws, _) = open(&h).expect("tail through the gateway");
    assert_eq!(push(&gw.addr, &h, "tailed in c").0, 204);
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    let got = loop {
        match ws.read().expect("a tail frame within 20 s") {
            tungstenite::Message::Text(t) if t.contains("tailed in c") => break t.to_string(),
            _ => {}
        }
    };
    assert!(!got.contains("from alice"), "{got}");
    drop(ws);

    // The node gone: 502, not a hang.
    drop(node);
    let (st, _) = lines(
        &gw.addr,
        &[("Authorization", &bob), ("X-Scope-OrgID", "team-c")],
    );
    assert_eq!(st, 502);
}

#[test]
fn gateway_limits_requests_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "  requests_per_second: 0.01\n  burst: 3\n";
    let (_node, gw) = node_and_gateway(dir.path(), "", extra);
    let alice = basic("alice", "wonderland");
    let statuses: Vec<u16> = (0..5)
        .map(|_| lines(&gw.addr, &[("Authorization", &alice)]).0)
        .collect();
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    let (st, body) = lines(&gw.addr, &[("Authorization", &alice)]);
    assert_eq!(st, 429);
    assert!(
        body[0].contains("too many requests for tenant \"team-a\""),
        "{body:?}"
    );
    // Another tenant has its own budget.
    let h = [
        ("Authorization", basic("bob", "builder")),
        ("X-Scope-OrgID", "team-b".to_string()),
    ];
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(lines(&gw.addr, &h).0, 200);
}

#[test]
fn gateway_terminates_tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = silt_testkit::pki(&dir.path().join("pki"));
    let tls = format!(
        "server:\n  tls:\n    cert_file: {}\n    key_file: {}\n    client_ca_file: {}\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display()
    );
    let (_node, gw) = node_and_gateway(dir.path(), &tls, "");
    let port = gw.addr.rsplit(':').next().unwrap();
    let curl = |with_cert: bool| {
        let mut c = Command::new("curl");
        c.args(["-s", "-o", "-", "-w", "%{http_code}", "--cacert"])
            .arg(&pki.ca)
            .args(["-u", "alice:wonderland"]);
        if with_cert {
            c.arg("--cert")
                .arg(&pki.client_cert)
                .arg("--key")
                .arg(&pki.client_key);
        }
        c.arg(format!("https://localhost:{port}/loki/api/v1/labels"));
        c.output().expect("run curl")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let ok = loop {
        let out = curl(true);
        if out.status.success() {
            break out;
        }
        assert!(Instant::now() < deadline, "TLS gateway never answered");
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.ends_with("200") && text.contains("\"success\""),
        "{text}"
    );
    // Without a client certificate the handshake fails.
    assert!(!curl(false).status.success());
}
