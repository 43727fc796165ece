//! A real S3-compatible server for tests: moto's server from PyPI (`moto[server]==5.*`,
//! installed into `target/pydeps-s3` on first run unless it is importable already), with
//! one bucket. moto 5 honours `If-None-Match: *` and `If-Match` on PutObject, which the
//! backend lease needs.

use crate::{free_port, http, pip_target};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket every [`Moto`] server has.
pub const BUCKET: &str = "silt-test";

fn pydeps() -> PathBuf {
    pip_target(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pydeps-s3"),
        "import moto.server, flask, werkzeug",
        &["moto[server]==5.*"],
    )
}

/// A moto S3 server process with one bucket.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let deps = pydeps();
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .env("PYTHONPATH", &deps)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let m = Moto { child, port };
        let addr = m.addr();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(&addr).is_ok() {
                if let Ok((200, _)) = http(&addr, "PUT", &format!("/{BUCKET}"), &[], b"") {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Freezes the server: connections hang, as with an unreachable endpoint.
    pub fn pause(&self) {
        signal(self.child.id(), "-STOP");
    }

    pub fn resume(&self) {
        signal(self.child.id(), "-CONT");
    }

    /// Object keys in the bucket.
    pub fn keys(&self) -> Vec<String> {
        let (status, body) = http(
            &self.addr(),
            "GET",
            &format!("/{BUCKET}?list-type=2&max-keys=1000"),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!(status, 200);
        let text = String::from_utf8_lossy(&body);
        text.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// An object's content, `None` when it does not exist.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        // moto refuses anonymous reads of objects; it does not check signatures.
        let auth = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, \
                    SignedHeaders=host, Signature=0";
        let path = format!("/{BUCKET}/{key}");
        let (status, body) =
            http(&self.addr(), "GET", &path, &[("Authorization", auth)], b"").unwrap();
        match status {
            200 => Some(body),
            404 => None,
            s => panic!("GET {key}: {s}"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success());
}
