//! Test and benchmark support: runs the real `silt` binary and talks HTTP to it
//! without pulling an HTTP client stack into every test build.

pub mod moto;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `silt server` child process on a free loopback port.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `bin server` with `config` (YAML text) and waits for `/ready`.
    pub fn start(bin: &Path, data_dir: &Path, config: &str, port: u16) -> Server {
        Server::start_env(bin, data_dir, config, port, &[])
    }

    /// [`Server::start`] with extra environment variables (e.g. `SILT_FAILPOINT`).
    pub fn start_env(
        bin: &Path,
        data_dir: &Path,
        config: &str,
        port: u16,
        env: &[(&str, &str)],
    ) -> Server {
        let cfg_path = data_dir.join("silt-test.yaml");
        std::fs::create_dir_all(data_dir).unwrap();
        std::fs::write(&cfg_path, config).unwrap();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(bin)
            .args(["server", "--config"])
            .arg(&cfg_path)
            .args(["--listen", &addr, "--data-dir"])
            .arg(data_dir.join("data"))
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            // The server logs to stdout: kept beside the data for tests that read it.
            .stdout(std::fs::File::create(data_dir.join("server.log")).expect("server.log"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start silt server");
        let mut s = Server {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("silt server exited during start-up: {status}");
            }
            if let Ok((200, _)) = http(&self.addr, "GET", "/ready", &[], b"") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("silt server not ready after 60s");
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, no chance to flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Minimal HTTP/1.1 client (one request per connection): returns status and body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    http_on(s, addr, method, path, headers, body)
}

/// [`http`] over an already connected stream (e.g. a TLS session); `addr` is the Host.
pub fn http_on(
    mut s: impl Read + Write,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    s.flush()?;
    let mut raw = Vec::new();
    // TLS peers may close without close_notify; what was read is still the response.
    if let Err(e) = s.read_to_end(&mut raw) {
        if raw.is_empty() || e.kind() != std::io::ErrorKind::UnexpectedEof {
            return Err(e);
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        let Some(chunk) = b.get(eol + 2..eol + 2 + n).filter(|_| n > 0) else {
            break;
        };
        out.extend_from_slice(chunk);
        b = b.get(eol + 2 + n + 2..).unwrap_or_default();
    }
    out
}

/// Percent-encodes a query parameter value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A GET answered as raw text, for tests of headers: the status line, the headers with
/// lower-cased names (values as sent), a blank line, then the body (lossy UTF-8).
pub fn raw_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let head: Vec<String> = head
        .lines()
        .enumerate()
        .map(|(i, l)| match l.split_once(": ") {
            Some((k, v)) if i > 0 => format!("{}: {v}", k.to_lowercase()),
            _ => l.to_string(),
        })
        .collect();
    format!("{}\r\n\r\n{body}", head.join("\r\n"))
}

/// `../shared` beside the checkout.
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// A server config that takes the conformance kit's data (from 2024) as it is;
/// `storage` is more of the `storage:` block (indented lines).
pub fn conformance_config(storage: &str) -> String {
    format!(
        "
limits:
  reject_old_samples: false
  ingestion_rate_mb: 1024
  ingestion_burst_size_mb: 1024
storage:
  wal_fsync: false
{storage}# the kit's data is from 2024: keep it past the default 7-day retention
compactor:
  retention_enabled: false
"
    )
}

/// A `bin server` in `data_dir` holding the conformance kit's data (`load.py`).
pub fn conformance_server(bin: &Path, data_dir: &Path) -> Server {
    let kit = shared_dir().join("conformance");
    assert!(
        kit.join("load.py").is_file(),
        "conformance kit not found at {}",
        kit.display()
    );
    let server = Server::start(bin, data_dir, &conformance_config(""), free_port());
    load_conformance_kit(&server.url());
    server
}

/// Pushes the conformance kit's data to `url` with its `load.py`.
pub fn load_conformance_kit(url: &str) {
    let load = Command::new("python3")
        .arg(shared_dir().join("conformance/load.py"))
        .arg(url)
        .output()
        .expect("run load.py");
    assert!(
        load.status.success(),
        "load.py failed: {}",
        String::from_utf8_lossy(&load.stderr)
    );
}

/// Replays the conformance kit's cases against `url` (`compare.py`): (passed, failed),
/// the failures printed.
pub fn compare_conformance_kit(url: &str) -> (u32, u32) {
    let out = Command::new("python3")
        .arg(shared_dir().join("conformance/compare.py"))
        .arg(url)
        .output()
        .expect("run compare.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let mut nums = last
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap());
    let (Some(passed), Some(failed)) = (nums.next(), nums.next()) else {
        panic!(
            "compare.py gave no count: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for l in stdout
        .lines()
        .filter(|l| l.starts_with("FAIL") || l.starts_with("     "))
    {
        println!("{l}");
    }
    (passed, failed)
}

/// logcli 3.7.6 from `../shared/peers`, unpacked into the workspace's `target/peers`;
/// `None` (said on stderr) when that directory is absent. Unpacked once per process: two
/// tests unpacking while a third runs logcli failed with "Text file busy".
pub fn logcli() -> Option<PathBuf> {
    static ONCE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    ONCE.get_or_init(unpack_logcli).clone()
}

fn unpack_logcli() -> Option<PathBuf> {
    let peers = shared_dir().join("peers");
    if !peers.join("unpack.sh").exists() {
        eprintln!(
            "SKIP logcli checks: {} is absent (it holds the logcli binary)",
            peers.display()
        );
        return None;
    }
    let dest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/peers");
    let out = Command::new("bash")
        .arg(peers.join("unpack.sh"))
        .arg(&dest)
        .output()
        .expect("run unpack.sh");
    assert!(
        out.status.success(),
        "unpack.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dest.join("logcli"))
}

/// Peak resident set size of a process in bytes (Linux `VmHWM`).
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Current time in ns since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Pushes `(ts, line)` entries as JSON to one stream (as `tenant` when given); asserts 204.
pub fn push_json(
    addr: &str,
    tenant: Option<&str>,
    stream: &[(&str, &str)],
    entries: &[(i64, String)],
) {
    let labels: serde_json::Map<String, serde_json::Value> = stream
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let values: Vec<serde_json::Value> = entries
        .iter()
        .map(|(ts, l)| serde_json::json!([ts.to_string(), l]))
        .collect();
    let body = serde_json::json!({"streams": [{"stream": labels, "values": values}]});
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend(tenant.map(|t| ("X-Scope-OrgID", t)));
    let (status, resp) = http(
        addr,
        "POST",
        "/loki/api/v1/push",
        &headers,
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&resp));
}

/// The label sets of the series `matcher` selects; `params` adds query parameters
/// (`since=2h`, `start=…&end=…`).
pub fn series(addr: &str, matcher: &str, params: &str) -> Vec<serde_json::Value> {
    let path = format!("/loki/api/v1/series?match[]={}&{params}", enc(matcher));
    let (status, body) = http(addr, "GET", &path, &[], b"").unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["data"].as_array().cloned().unwrap_or_default()
}

/// Every line `query` returns in `[start, end)`, paging forward 5000 at a time.
pub fn query_lines(addr: &str, query: &str, mut start: i64, end: i64) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let path = format!(
            "/loki/api/v1/query_range?query={}&start={start}&end={end}&limit=5000&direction=forward",
            enc(query)
        );
        let (status, body) = http(addr, "GET", &path, &[], b"").unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut page: Vec<(i64, String)> = Vec::new();
        for s in v["data"]["result"].as_array().unwrap() {
            for e in s["values"].as_array().unwrap() {
                page.push((
                    e[0].as_str().unwrap().parse().unwrap(),
                    e[1].as_str().unwrap().to_string(),
                ));
            }
        }
        page.sort();
        let Some(last) = page.last().map(|p| p.0) else {
            break;
        };
        let n = page.len();
        out.extend(page.into_iter().map(|p| p.1));
        if n < 5000 {
            break;
        }
        start = last + 1;
    }
    out
}

/// The value of metric `name` (or `name_total`) on `/metrics`, NaN when absent.
pub fn metric(addr: &str, name: &str) -> f64 {
    let (_, body) = http(addr, "GET", "/metrics", &[], b"").unwrap();
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name || k == format!("{name}_total")).then(|| v.trim().parse().ok())?
        })
        .unwrap_or(f64::NAN)
}

/// Polls until `cond` holds (the deadline only guards against a hang).
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `dir` with `packages` pip-installed into it (`--target`), unless `import` (a Python
/// statement) already succeeds with it on `PYTHONPATH`.
pub fn pip_target(dir: &Path, import: &str, packages: &[&str]) -> PathBuf {
    let ok = Command::new("python3")
        .args(["-c", import])
        .env("PYTHONPATH", dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let st = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(dir)
            .args(packages)
            .status()
            .expect("run pip");
        assert!(st.success(), "pip install of {packages:?} failed");
    }
    dir.to_path_buf()
}

/// PEM files of a throwaway PKI made with the `openssl` CLI: a CA, a server certificate for
/// `localhost` and `127.0.0.1`, and a client certificate.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// Creates a [`Pki`] in `dir` (created if missing).
pub fn pki(dir: &Path) -> Pki {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (needed to make test certificates)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(key);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=silt test CA",
    ]);
    run(&ca);
    for (name, eku, san) in [
        (
            "server",
            "serverAuth",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        ),
        ("client", "clientAuth", ""),
    ] {
        let (k, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        std::fs::write(
            dir.join(&ext),
            format!("basicConstraints=CA:FALSE\nextendedKeyUsage={eku}\n{san}"),
        )
        .unwrap();
        let mut req = vec!["req"];
        req.extend(key);
        req.extend(["-keyout", &k, "-out", &csr, "-subj"]);
        let subj = format!("/CN=silt test {name}");
        req.push(&subj);
        run(&req);
        let serial = format!(
            "0x{:x}",
            std::process::id() as u64 * 1000 + name.len() as u64
        );
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &serial,
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ]);
    }
    Pki {
        ca: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    }
}
