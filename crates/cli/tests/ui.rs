//! The built-in web UI in a real browser: Debian's `chromium`, headless, driven over the
//! DevTools protocol (`.ci/run` installs it). The page is loaded from the real binary,
//! queries run against real data, clicks and keys go through the browser.
//!
//! Screenshots of the explore and status views land in `target/ui-screenshots/` (the
//! ones in `docs/ui/` are copies of them).

use serde_json::{json, Value};
use silt_testkit::{enc, free_port, http, now_ns, push_json, raw_get, Server};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const WAIT: Duration = Duration::from_secs(30);

/// Chromium's process group: killed whole when dropped, so no renderer or GPU process
/// outlives the test (even one that panics half-way through starting it).
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One browser at a time: five Chromiums at once on a 2-core runner starved everything
/// else on the machine (the sandbox's own I/O workers stalled).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A headless Chromium and its one page, over the DevTools protocol.
struct Browser {
    _chromium: Group,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    _profile: tempfile::TempDir,
    /// Dropped last, after Chromium is gone.
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Browser {
    fn launch() -> Browser {
        use std::os::unix::process::CommandExt as _;
        // A test that failed with the lock held must not fail the others.
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1280,800",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromium not found: install Debian's chromium (.ci/run does)");
        let err = child.stderr.take().unwrap();
        let chromium = Group(child);
        // Chromium prints the browser's DevTools address on stderr once it listens; read
        // on a thread so a Chromium that never starts fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut err = BufReader::new(err);
            let mut line = String::new();
            while err.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(at) = line.find("ws://") {
                    let _ = tx.send(line[at..].trim().to_string());
                    let _ = std::io::copy(&mut err, &mut std::io::sink());
                    return;
                }
                line.clear();
            }
        });
        let browser_ws = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromium did not print its DevTools address within 60 s (or exited)");
        let host = browser_ws["ws://".len()..]
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let targets: Vec<Value> = serde_json::from_str(&devtools_get(&host, "/json/list")).unwrap();
        let page = targets
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let url = page["webSocketDebuggerUrl"].as_str().unwrap();
        let (ws, _) = tungstenite::connect(url).expect("DevTools connection");
        // A browser that stops answering fails the call instead of hanging the test.
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        }
        Browser {
            _chromium: chromium,
            ws,
            next: 0,
            _profile: profile,
            _turn: turn,
        }
    }

    /// Sends a command and returns its result (events in between are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let Message::Text(t) = self.ws.read().unwrap() else {
                continue;
            };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until the page says it finished what it was doing (`data-state="done"`).
    fn wait_done(&mut self) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.eval("document.readyState === 'complete' && document.body?.dataset.state")
                == "done"
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("page not done after {WAIT:?}");
    }

    fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        let deadline = Instant::now() + WAIT;
        while self.eval("location.href") != url {
            assert!(
                Instant::now() < deadline,
                "navigation to {url} did not happen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.wait_done();
    }

    /// Runs `action` (JavaScript) and waits for the page to finish what it starts.
    fn act(&mut self, action: &str) {
        self.eval("document.body.dataset.state = 'acting'");
        self.eval(action);
        self.wait_done();
    }

    fn key(&mut self, key: &str, code: &str, vk: u32, modifiers: u32) {
        for kind in ["rawKeyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({"type": kind, "key": key, "code": code,
                       "windowsVirtualKeyCode": vk, "modifiers": modifiers}),
            );
        }
    }

    fn screenshot(&mut self, name: &str) {
        use base64::Engine as _;
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

/// A GET to Chromium's DevTools HTTP endpoint, which keeps the connection open: the body
/// is read by its Content-Length.
fn devtools_get(host: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut len = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots")
}

/// The server, in a temp dir that lives as long as it.
fn start(config: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_silt"));
    let server = Server::start(bin, dir.path(), config, free_port());
    (dir, server)
}

fn page_url(server: &Server, query: &str, extra: &str) -> String {
    format!(
        "{}/?query={}&from=now-1h&to=now{extra}",
        server.url(),
        enc(query)
    )
}

/// Lines of the log view, in order.
fn shown_lines(b: &mut Browser) -> Vec<String> {
    let v = b.eval("[...document.querySelectorAll('#lines .line')].map(e => e.textContent)");
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

fn push_sample(addr: &str, tenant: Option<&str>) {
    let t = now_ns() - 600_000_000_000;
    let s = 1_000_000_000;
    let web: Vec<(i64, String)> = (0..8)
        .map(|i| {
            let line = if i % 3 == 0 {
                format!("level=error msg=\"boom {i}\" user={i}")
            } else {
                format!("level=info msg=ok user={i}")
            };
            (t + i * 30 * s, line)
        })
        .collect();
    push_json(addr, tenant, &[("app", "web"), ("env", "prod")], &web);
    push_json(
        addr,
        tenant,
        &[("app", "db")],
        &[(t, "level=warn msg=slow".to_string())],
    );
}

#[test]
fn explore_view_in_a_browser() {
    let (_dir, server) = start("storage:\n  wal_fsync: false\n");
    push_sample(&server.addr, None);
    let mut b = Browser::launch();

    // A link with a query opens with it run: lines newest first, levels, histogram.
    b.open(&page_url(&server, r#"{app="web"}"#, ""));
    let lines = shown_lines(&mut b);
    assert_eq!(lines.len(), 8, "{lines:?}");
    assert_eq!(lines[0], "level=info msg=ok user=7");
    assert_eq!(lines[1], "level=error msg=\"boom 6\" user=6");
    assert_eq!(
        b.eval("document.getElementById('summary').textContent"),
        "8 lines"
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#lines li.lvl-error').length"),
        3
    );
    let bars = b.eval(
        "[...document.querySelectorAll('svg.histogram rect.bar')]
           .map(r => r.dataset.level + ':' + r.querySelector('title').textContent)",
    );
    let bars: Vec<&str> = bars
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let count = |lvl: &str| -> u64 {
        bars.iter()
            .filter(|b| b.starts_with(&format!("{lvl}:")))
            .map(|b| b.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!((count("error"), count("info")), (3, 5), "{bars:?}");
    assert_eq!(b.eval("document.getElementById('error').hidden"), true);
    b.screenshot("explore.png");

    // Expand a line, filter for its level: the query gains the stage and runs again.
    b.eval("document.querySelector('#lines li.lvl-error .row').click()");
    let filter = b.eval(
        "[...document.querySelectorAll('.details button.filter-for')]
           .map(x => x.title).find(t => t.includes('detected_level'))",
    );
    assert_eq!(filter, r#"Filter for detected_level="error""#);
    b.act(
        "[...document.querySelectorAll('.details button.filter-for')]
           .find(x => x.title.includes('detected_level')).click()",
    );
    assert_eq!(
        b.eval("document.getElementById('query').value"),
        r#"{app="web"} | detected_level="error""#
    );
    assert_eq!(shown_lines(&mut b).len(), 3);
    assert_eq!(
        b.eval("new URLSearchParams(location.search).get('query')"),
        r#"{app="web"} | detected_level="error""#
    );
    // And filter out a parsed field.
    b.open(&page_url(&server, r#"{app="web"} | logfmt"#, ""));
    b.eval("document.querySelector('#lines .row').click()");
    b.act(
        "[...document.querySelectorAll('.details button.filter-out')]
           .find(x => x.title.includes('user=')).click()",
    );
    let q = b.eval("document.getElementById('query').value");
    assert_eq!(q, r#"{app="web"} | logfmt | user!="7""#);
    let lines = shown_lines(&mut b);
    assert_eq!(lines.len(), 7);
    assert!(!lines.iter().any(|l| l.ends_with("user=7")), "{lines:?}");

    // A metric query is drawn as a graph, one path per series.
    b.open(&page_url(
        &server,
        r#"sum by (app) (count_over_time({app=~"web|db"}[5m]))"#,
        "",
    ));
    assert_eq!(
        b.eval("document.querySelectorAll('svg.timeseries path.series').length"),
        2
    );
    let legend = b.eval("document.querySelector('#graph .legend').textContent");
    assert!(
        legend.as_str().unwrap().contains(r#"{app="db"}"#),
        "{legend}"
    );
    assert_eq!(b.eval("document.getElementById('logs').hidden"), true);

    // A syntax error, typed and run from the keyboard, is shown with Loki's message and
    // marked in the editor.
    b.open(&format!("{}/", server.url()));
    b.eval("document.getElementById('query').focus()");
    b.call("Input.insertText", json!({"text": r#"{app="web""#}));
    b.key("Escape", "Escape", 27, 0);
    b.eval("document.body.dataset.state = 'acting'");
    b.key("Enter", "Enter", 13, 2);
    b.wait_done();
    let err = b.eval("document.getElementById('error').textContent");
    assert!(
        err.as_str()
            .unwrap()
            .contains("parse error at line 1, col 11"),
        "{err}"
    );
    assert_eq!(b.eval("document.getElementById('error').hidden"), false);
    assert_eq!(
        b.eval("document.querySelectorAll('#highlight .tok-err').length"),
        1
    );

    // Keyboard only: Tab reaches the editor first, typing and Ctrl+Enter run the query.
    b.open(&format!("{}/", server.url()));
    for _ in 0..4 {
        if b.eval("document.activeElement.id") == "query" {
            break;
        }
        b.key("Tab", "Tab", 9, 0);
    }
    assert_eq!(b.eval("document.activeElement.id"), "query");
    b.call("Input.insertText", json!({"text": r#"{app="db"}"#}));
    b.eval("document.body.dataset.state = 'acting'");
    b.key("Enter", "Enter", 13, 2);
    b.wait_done();
    assert_eq!(shown_lines(&mut b), vec!["level=warn msg=slow".to_string()]);
    // Every control has an accessible name.
    let unnamed = b.eval(
        "[...document.querySelectorAll('input, select, textarea, button')]
           .filter(e => !e.labels?.length && !e.getAttribute('aria-label') && !e.textContent.trim())
           .map(e => e.id)",
    );
    assert_eq!(unnamed, json!([]));

    // Live tail: a line pushed after it opened shows up.
    b.open(&page_url(&server, r#"{app="db"}"#, ""));
    b.eval("document.getElementById('live').click()");
    let deadline = Instant::now() + WAIT;
    while b.eval("document.getElementById('live').getAttribute('aria-pressed')") != "true" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The session is open once the server counts it.
    while !metric_nonzero(&server.addr, "silt_tail_sessions") {
        assert!(Instant::now() < deadline, "tail session never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
    push_json(
        &server.addr,
        None,
        &[("app", "db")],
        &[(now_ns(), "level=info msg=tailed".to_string())],
    );
    while !shown_lines(&mut b).contains(&"level=info msg=tailed".to_string()) {
        assert!(Instant::now() < deadline, "tailed line never shown");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Auto-refresh runs the query again: a line pushed after the page loaded shows up.
    b.open(&page_url(&server, r#"{app="db"}"#, "&refresh=5s"));
    assert_eq!(b.eval("document.getElementById('refresh').value"), "5s");
    push_json(
        &server.addr,
        None,
        &[("app", "db")],
        &[(now_ns(), "level=info msg=refreshed".to_string())],
    );
    let deadline = Instant::now() + WAIT;
    while !shown_lines(&mut b).contains(&"level=info msg=refreshed".to_string()) {
        assert!(
            Instant::now() < deadline,
            "refresh never showed the new line"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Status view.
    b.open(&format!("{}/#status", server.url()));
    let text = b.eval("document.getElementById('status').innerText");
    let text = text.as_str().unwrap();
    for want in [
        "Lines per second",
        "local disk",
        "Retention\t7d",
        "Lines since start\t11",
        "Active streams (in the head)\t2",
    ] {
        assert!(text.contains(want), "{want:?} missing from {text}");
    }
    b.screenshot("status.png");
}

fn metric_nonzero(addr: &str, name: &str) -> bool {
    let (_, body) = http(addr, "GET", "/metrics", &[], b"").unwrap();
    String::from_utf8_lossy(&body).lines().any(|l| {
        l.starts_with(name)
            && l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v > 0.0)
    })
}

#[test]
fn tenant_selector_with_auth() {
    let (_dir, server) = start("auth_enabled: true\nstorage:\n  wal_fsync: false\n");
    push_sample(&server.addr, Some("team-a"));
    push_json(
        &server.addr,
        Some("team-b"),
        &[("app", "web")],
        &[(now_ns() - 60_000_000_000, "secret of b".to_string())],
    );
    let mut b = Browser::launch();
    b.open(&page_url(&server, r#"{app="web"}"#, "&tenant=team-b"));
    assert_eq!(
        b.eval("document.getElementById('tenant-box').hidden"),
        false
    );
    assert_eq!(shown_lines(&mut b), vec!["secret of b".to_string()]);
    // Switching the tenant and running again shows only that tenant's lines.
    b.act(
        "document.getElementById('tenant').value = 'team-a';
         document.getElementById('run').click()",
    );
    let lines = shown_lines(&mut b);
    assert_eq!(lines.len(), 8);
    assert!(!lines.contains(&"secret of b".to_string()));
    assert!(b
        .eval("location.search")
        .as_str()
        .unwrap()
        .contains("tenant=team-a"));
}

#[test]
fn assets_are_compressed_cached_and_local() {
    let (_dir, server) = start("storage:\n  wal_fsync: false\n");
    let (status, page) = http(&server.addr, "GET", "/", &[], b"").unwrap();
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    let raw = raw_get(&server.addr, "/", &[("Accept-Encoding", "gzip")]);
    assert!(raw.contains("content-encoding: gzip"), "{raw}");
    assert!(raw.contains("cache-control: no-cache"), "{raw}");
    let etag = header(&raw, "etag");
    let again = raw_get(&server.addr, "/", &[("If-None-Match", &etag)]);
    assert!(again.starts_with("HTTP/1.1 304"), "{again}");

    // Every asset the page names is versioned by content, cacheable for good, and
    // refers to nothing outside the server.
    let assets: Vec<&str> = page.split('"').filter(|s| s.starts_with("/ui/")).collect();
    assert_eq!(assets.len(), 2, "{page}");
    let mut seen = vec![page.clone()];
    for a in &assets {
        assert!(a.contains("?v="), "{a}");
        let raw = raw_get(&server.addr, a, &[]);
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        assert!(raw.contains("immutable"), "{raw}");
        seen.push(raw);
    }
    for m in [
        "app.js",
        "view.js",
        "chart.js",
        "logql.js",
        "complete.js",
        "status.js",
    ] {
        let (status, body) = http(&server.addr, "GET", &format!("/ui/{m}"), &[], b"").unwrap();
        assert_eq!(status, 200, "{m}");
        seen.push(String::from_utf8(body).unwrap());
    }
    for text in &seen {
        for url in text.split(['"', '\'', '`', '(', ' ']) {
            let external = (url.starts_with("http://") || url.starts_with("https://"))
                && url != "http://www.w3.org/2000/svg";
            assert!(!external, "external reference {url}");
        }
    }
    let (status, _) = http(&server.addr, "GET", "/ui/nope.js", &[], b"").unwrap();
    assert_eq!(status, 404);
}

fn header(raw: &str, name: &str) -> String {
    raw.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap()
        .trim()
        .to_string()
}

/// The completion list's items once it is open.
fn completions(b: &mut Browser) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = b.eval(
            "document.getElementById('completions').hidden ? null :
               [...document.querySelectorAll('#completions li')].map(e => e.textContent)",
        );
        if let Some(items) = v.as_array() {
            return items
                .iter()
                .map(|i| i.as_str().unwrap().to_string())
                .collect();
        }
        assert!(Instant::now() < deadline, "no completions shown");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn completion_in_the_editor() {
    let (_dir, server) = start("storage:\n  wal_fsync: false\n");
    push_sample(&server.addr, None);
    let mut b = Browser::launch();
    b.open(&format!("{}/", server.url()));
    b.eval("document.getElementById('query').focus()");
    let value = |b: &mut Browser| b.eval("document.getElementById('query').value");

    // Label names inside the selector, from the labels API.
    b.call("Input.insertText", json!({"text": "{ap"}));
    assert_eq!(completions(&mut b), vec!["app"]);
    b.key("Enter", "Enter", 13, 0);
    assert_eq!(value(&mut b), "{app");
    assert_eq!(
        b.eval("document.getElementById('completions').hidden"),
        true
    );

    // Values after `name="`; arrows move, Enter takes the value and closes the string.
    b.call("Input.insertText", json!({"text": "=\""}));
    assert_eq!(completions(&mut b), vec!["db", "web"]);
    b.key("ArrowDown", "ArrowDown", 40, 0);
    assert_eq!(
        b.eval("document.getElementById('query').getAttribute('aria-activedescendant')"),
        "completion-1"
    );
    b.key("Enter", "Enter", 13, 0);
    assert_eq!(value(&mut b), r#"{app="web""#);

    // Pipeline stages after `|`, taken with Tab.
    b.call("Input.insertText", json!({"text": "} | lo"}));
    assert_eq!(completions(&mut b), vec!["logfmt"]);
    b.key("Tab", "Tab", 9, 0);
    assert_eq!(value(&mut b), r#"{app="web"} | logfmt"#);

    // Escape closes the list and leaves the text alone.
    b.call("Input.insertText", json!({"text": " | j"}));
    assert_eq!(completions(&mut b), vec!["json"]);
    b.key("Escape", "Escape", 27, 0);
    assert_eq!(
        b.eval("document.getElementById('completions').hidden"),
        true
    );
    assert_eq!(value(&mut b), r#"{app="web"} | logfmt | j"#);

    // Functions at the start of a metric query.
    b.eval("document.getElementById('query').value = ''");
    b.call("Input.insertText", json!({"text": "count_o"}));
    assert_eq!(completions(&mut b), vec!["count_over_time"]);
}

/// The conformance kit's data: what the UI shows is what the API answers.
#[test]
fn kit_data_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        silt_testkit::conformance_server(Path::new(env!("CARGO_BIN_EXE_silt")), dir.path());
    let (from, to) = ("2024-01-01T00:00:00Z", "2024-01-01T06:00:00Z");
    let mut b = Browser::launch();

    let q = r#"{service_name="nginx"} |= "POST" |= "500""#;
    b.open(&format!(
        "{}/?query={}&from={from}&to={to}&limit=50",
        server.url(),
        enc(q)
    ));
    let path = format!(
        "/loki/api/v1/query_range?query={}&start={from}&end={to}&limit=50&direction=backward",
        enc(q)
    );
    let (st, body) = http(&server.addr, "GET", &path, &[], b"").unwrap();
    assert_eq!(st, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let mut want: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .map(|e| {
            (
                e[0].as_str().unwrap().to_string(),
                e[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    want.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(b.0.cmp(&a.0)));
    let want: Vec<String> = want.into_iter().map(|(_, l)| l).collect();
    assert_eq!(want.len(), 50);
    assert_eq!(shown_lines(&mut b), want);
    // The histogram counts every matching line of the range, not just the 50 shown.
    let total = b.eval(
        "[...document.querySelectorAll('svg.histogram rect.bar title')]
           .map(t => Number(t.textContent.split(': ')[1])).reduce((a, b) => a + b, 0)",
    );
    let count_q = format!("sum(count_over_time({q} [6h]))");
    let path = format!("/loki/api/v1/query?query={}&time={to}", enc(&count_q));
    let (_, body) = http(&server.addr, "GET", &path, &[], b"").unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    let n: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total.as_f64().unwrap(), n);

    // A metric query over the kit: one path per series the API returns.
    let m = r#"sum by (level) (count_over_time({service_name="web-server"} | json [5m]))"#;
    b.open(&format!(
        "{}/?query={}&from={from}&to={to}",
        server.url(),
        enc(m)
    ));
    let paths = b.eval("document.querySelectorAll('svg.timeseries path.series').length");
    assert!(paths.as_u64().unwrap() >= 3, "{paths}");
    let legend = b.eval("document.querySelector('#graph .legend').textContent");
    assert!(
        legend.as_str().unwrap().contains(r#"{level="error"}"#),
        "{legend}"
    );
}
