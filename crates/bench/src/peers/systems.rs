//! One driver per system: how to start it on a fresh data dir, where it is ready, where
//! pushes go, how to flush it, and how to query it.

use super::proc::Proc;
use super::queries::{answer, Answer, Api, Query};
use super::Res;
use silt_testkit::{free_port, http};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    Silt,
    Loki,
    Vl,
}

pub const ALL: [System; 3] = [System::Silt, System::Loki, System::Vl];

impl System {
    pub fn parse(s: &str) -> Res<System> {
        match s.trim().to_ascii_lowercase().as_str() {
            "silt" => Ok(System::Silt),
            "loki" => Ok(System::Loki),
            "vl" | "victorialogs" | "victoria-logs" => Ok(System::Vl),
            o => Err(format!("unknown system {o:?} (silt, loki, vl)")),
        }
    }

    /// Short name: directories, logs.
    pub fn key(self) -> &'static str {
        match self {
            System::Silt => "silt",
            System::Loki => "loki",
            System::Vl => "vl",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            System::Silt => "Silt",
            System::Loki => "Loki 3.7.6",
            System::Vl => "VictoriaLogs 1.26",
        }
    }

    pub fn api(self) -> Api {
        match self {
            System::Vl => Api::LogsQl,
            _ => Api::Loki,
        }
    }

    fn push_path(self) -> &'static str {
        match self {
            // Without the parameter VictoriaLogs splits JSON lines into fields.
            System::Vl => "/insert/loki/api/v1/push?disable_message_parsing=1",
            _ => "/loki/api/v1/push",
        }
    }
}

/// Where the binaries and Loki's config template are.
pub struct Bins {
    pub silt: PathBuf,
    pub loki: PathBuf,
    pub vl: PathBuf,
    pub loki_yaml: PathBuf,
}

impl Bins {
    /// Clear errors for what `systems` need and is missing.
    pub fn check(&self, systems: &[System]) -> Res<()> {
        for &s in systems {
            let (what, p) = match s {
                System::Silt => (
                    "silt binary (cargo build --release -p silt, or --silt)",
                    &self.silt,
                ),
                System::Loki => ("loki binary (--peers-dir)", &self.loki),
                System::Vl => ("victoria-logs binary (--peers-dir)", &self.vl),
            };
            if !p.is_file() {
                return Err(format!("{what} not found at {}", p.display()));
            }
            if s == System::Loki && !self.loki_yaml.is_file() {
                return Err(format!(
                    "Loki config template not found at {} (--loki-config)",
                    self.loki_yaml.display()
                ));
            }
        }
        Ok(())
    }
}

/// Silt as a peer would be run for this data: old samples accepted, ingestion limits
/// out of the way, no retention (the data may be days old by the time it is pushed).
const SILT_CONFIG: &str = "auth_enabled: false
compactor:
  retention_enabled: false
limits:
  reject_old_samples: false
  ingestion_rate_mb: 100000
  ingestion_burst_size_mb: 100000
  retention_period: 0s
";

pub struct Running {
    pub sys: System,
    pub proc: Proc,
    /// The data dir measured after the stop.
    pub data_dir: PathBuf,
    /// Seconds from spawn to ready.
    pub ready_s: f64,
}

/// Starts `sys` on a fresh data dir under `work/<key>` and waits until it is ready.
pub fn start(sys: System, bins: &Bins, work: &Path) -> Res<Running> {
    let dir = work.join(sys.key());
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("clear {}: {e}", dir.display()))?;
    }
    launch(sys, bins, &dir, SILT_CONFIG)
}

/// Starts Silt again on the data dir `start` made, with a maintenance pass every second
/// that deletes what it replaced at once (no query is in flight).
pub fn restart_silt_compacting(bins: &Bins, work: &Path) -> Res<Running> {
    let cfg = SILT_CONFIG.replace(
        "compactor:\n",
        "compactor:\n  compaction_interval: 1s\n  retention_delete_delay: 0s\n",
    );
    launch(System::Silt, bins, &work.join(System::Silt.key()), &cfg)
}

fn launch(sys: System, bins: &Bins, dir: &Path, silt_config: &str) -> Res<Running> {
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let data_abs = std::fs::canonicalize(&data_dir).map_err(|e| e.to_string())?;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let write = |name: &str, text: &str| -> Res<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("write {}: {e}", p.display()))?;
        Ok(p)
    };
    let (cmd, ready_path) = match sys {
        System::Silt => {
            let cfg = write("silt.yaml", silt_config)?;
            let mut c = Command::new(&bins.silt);
            c.arg("server")
                .arg("--config")
                .arg(cfg)
                .args(["--listen", &addr, "--data-dir"])
                .arg(&data_abs)
                .env("RUST_LOG", "warn");
            (c, "/ready")
        }
        System::Loki => {
            let cfg = write("loki.yaml", &loki_config(bins, &data_abs, port)?)?;
            let mut c = Command::new(&bins.loki);
            c.arg(format!("-config.file={}", cfg.display()));
            (c, "/ready")
        }
        System::Vl => {
            let mut c = Command::new(&bins.vl);
            c.arg(format!("-storageDataPath={}", data_abs.display()))
                .arg(format!("-httpListenAddr={addr}"))
                // The default (7d) would drop entries older than a week at ingest.
                .arg("-retentionPeriod=100y");
            (c, "/health")
        }
    };
    let log = dir.join(format!("{}.log", sys.key()));
    let log = match log.exists() {
        true => dir.join(format!("{}.restart.log", sys.key())),
        false => log,
    };
    let mut proc = Proc::spawn(sys.title(), cmd, addr, &log)?;
    let ready_s = proc.wait_ready(ready_path, Duration::from_secs(180))?;
    Ok(Running {
        sys,
        proc,
        data_dir: data_abs,
        ready_s,
    })
}

/// The shared loki.yaml with its data dir and free ports filled in (so a Loki another
/// developer runs on 3100 does not collide).
fn loki_config(bins: &Bins, data: &Path, http_port: u16) -> Res<String> {
    let text = std::fs::read_to_string(&bins.loki_yaml)
        .map_err(|e| format!("read {}: {e}", bins.loki_yaml.display()))?;
    let mut out = text.replace("__DATA_DIR__", &data.display().to_string());
    for (key, port) in [
        ("http_listen_port: 3100", http_port),
        ("grpc_listen_port: 9095", free_port()),
    ] {
        let name = key.split(':').next().unwrap_or(key);
        if !out.contains(key) {
            return Err(format!(
                "{} has no `{key}` to replace with a free port",
                bins.loki_yaml.display()
            ));
        }
        out = out.replace(key, &format!("{name}: {port}"));
    }
    // Loki's server drops a response after 30 s by default; a slow machine's full
    // logfmt scan can take longer, and a dropped answer fails the whole run.
    if !out.contains("http_server_write_timeout") {
        out = out.replacen(
            "\nserver:\n",
            "\nserver:\n  http_server_write_timeout: 10m\n",
            1,
        );
    }
    Ok(out)
}

impl Running {
    /// Sends every client's bodies in order, clients concurrently; seconds for all.
    pub fn push(&self, bodies: &[Vec<Vec<u8>>]) -> Res<f64> {
        push_bodies(&self.proc.addr, self.sys.push_path(), bodies)
    }

    /// Waits until Silt completed a maintenance pass (retention, deletes, compaction);
    /// seconds until then.
    pub fn wait_maintenance_pass(&self) -> Res<f64> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(1800) {
            std::thread::sleep(Duration::from_millis(200));
            let (_, body) = http(&self.proc.addr, "GET", "/metrics", &[], b"")
                .map_err(|e| format!("Silt /metrics: {e}"))?;
            let text = String::from_utf8_lossy(&body);
            if metric_sum(&text, "silt_maintenance_passes_total") >= 1.0 {
                return Ok(t.elapsed().as_secs_f64());
            }
        }
        Err("Silt: no maintenance pass completed in 30 minutes".into())
    }

    /// Makes everything pushed durable and searchable; seconds until done.
    pub fn flush(&self) -> Res<f64> {
        let t = Instant::now();
        let (method, path) = match self.sys {
            System::Vl => ("GET", "/internal/force_flush"),
            _ => ("POST", "/flush"),
        };
        let (st, body) =
            http(&self.proc.addr, method, path, &[], b"").map_err(|e| format!("{path}: {e}"))?;
        if !(200..300).contains(&st) {
            return Err(format!(
                "{} {path} answered {st}: {}",
                self.sys.title(),
                String::from_utf8_lossy(&body)
            ));
        }
        if self.sys == System::Loki {
            // Loki's /flush only queues the chunks; the flush loops write them later.
            self.wait_loki_flushed()?;
        }
        Ok(t.elapsed().as_secs_f64())
    }

    /// Until the flush queues are empty and no chunk was flushed for a second.
    fn wait_loki_flushed(&self) -> Res<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut last = f64::NAN;
        for polls in 1.. {
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            let (_, body) = http(&self.proc.addr, "GET", "/metrics", &[], b"")
                .map_err(|e| format!("Loki /metrics: {e}"))?;
            let text = String::from_utf8_lossy(&body);
            let queued = metric_sum(&text, "loki_ingester_flush_queue_length");
            let flushed = metric_sum(&text, "loki_ingester_chunks_flushed_total");
            if queued == 0.0 && flushed == last {
                return Ok(());
            }
            if polls % 10 == 0 {
                eprintln!("Loki flushing: {queued} chunks queued, {flushed} flushed");
            }
            last = flushed;
        }
        Err("Loki still flushing after 600 s".into())
    }

    /// Runs `q` once over `[start, end]` ns: milliseconds and the answer's summary.
    pub fn query(&self, q: &Query, start: i64, end: i64) -> Res<(f64, Answer)> {
        let path = q.path(self.sys.api(), start, end);
        // Keep Loki's results cache (if any) out of the repeated runs.
        let headers = [("Cache-Control", "no-cache")];
        let t = Instant::now();
        let (st, body) = http(&self.proc.addr, "GET", &path, &headers, b"")
            .map_err(|e| format!("{} {}: {e}", self.sys.title(), q.name))?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if st != 200 {
            return Err(format!(
                "{} {} answered {st}: {}",
                self.sys.title(),
                q.name,
                String::from_utf8_lossy(&body[..body.len().min(500)])
            ));
        }
        let a = answer(self.sys.api(), q.step_s.is_some(), &body)
            .map_err(|e| format!("{} {}: {e}", self.sys.title(), q.name))?;
        Ok((ms, a))
    }
}

/// Sum of a Prometheus text metric over all its label sets (0 when absent).
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends every client's bodies (protobuf) to `path` on `addr` in order, clients
/// concurrently; seconds for all.
pub fn push_bodies(addr: &str, path: &str, bodies: &[Vec<Vec<u8>>]) -> Res<f64> {
    let t = Instant::now();
    let retries = &AtomicU64::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|mine| {
                s.spawn(move || -> Res<()> {
                    let headers = [("Content-Type", "application/x-protobuf")];
                    for b in mine {
                        let mut tries = 0;
                        let (st, body) = loop {
                            let (st, body) = http(addr, "POST", path, &headers, b)
                                .map_err(|e| format!("push to {addr}: {e}"))?;
                            // Backpressure: retry 503 as Loki clients do (Promtail
                            // waits 0.5 s first), at most 20 times.
                            if st != 503 || tries == 20 {
                                break (st, body);
                            }
                            tries += 1;
                            retries.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(500));
                        };
                        if !(200..300).contains(&st) {
                            return Err(format!(
                                "push answered {st}: {}",
                                String::from_utf8_lossy(&body[..body.len().min(500)])
                            ));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "a push thread panicked".to_string())?)
    })?;
    let retries = retries.load(Ordering::Relaxed);
    if retries > 0 {
        eprintln!("{retries} pushes answered 503 (backpressure) and were retried");
    }
    Ok(t.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums() {
        let t = "# HELP x\nx_total 3\nx{a=\"1\"} 2\nx 1.5\nxy 9\n";
        assert_eq!(metric_sum(t, "x"), 3.5);
        assert_eq!(metric_sum(t, "nope"), 0.0);
    }

    #[test]
    fn loki_config_gets_dir_and_ports() {
        let d = tempfile::tempdir().unwrap();
        let tpl = d.path().join("loki.yaml");
        std::fs::write(
            &tpl,
            "p: __DATA_DIR__/x\nhttp_listen_port: 3100\ngrpc_listen_port: 9095\n",
        )
        .unwrap();
        let bins = Bins {
            silt: d.path().into(),
            loki: d.path().into(),
            vl: d.path().into(),
            loki_yaml: tpl.clone(),
        };
        let c = loki_config(&bins, Path::new("/data"), 1234).unwrap();
        assert!(c.contains("p: /data/x\nhttp_listen_port: 1234\n"), "{c}");
        assert!(!c.contains("9095"));
        std::fs::write(&tpl, "nothing").unwrap();
        assert!(loki_config(&bins, Path::new("/d"), 1).is_err());
        assert!(bins.check(&[System::Silt]).is_err());
        assert!(System::parse("VictoriaLogs").is_ok() && System::parse("es").is_err());
    }
}
