//! A server child process and what is measured from outside it: readiness, memory from
//! `/proc`, a graceful stop, and bytes on disk.

use super::Res;
use silt_testkit::http;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server; killed on drop if not stopped before (no orphans after an error).
pub struct Proc {
    child: Child,
    pub name: String,
    pub addr: String,
    /// stdout and stderr of the child.
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, addr: String, log: &Path) -> Res<Proc> {
        let out =
            std::fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start {name} ({:?}): {e}", cmd.get_program()))?;
        Ok(Proc {
            child,
            name: name.to_string(),
            addr,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `GET path` until 200; seconds it took.
    pub fn wait_ready(&mut self, path: &str, timeout: Duration) -> Res<f64> {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited during start-up ({st}); end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log)
                ));
            }
            if let Ok((200, _)) = http(&self.addr, "GET", path, &[], b"") {
                return Ok(t.elapsed().as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "{} not ready at {path} after {timeout:?}; end of {}:\n{}",
            self.name,
            self.log.display(),
            log_tail(&self.log)
        ))
    }

    /// SIGTERM, then waits up to `timeout` (SIGKILL after it); seconds to exit.
    pub fn stop(&mut self, timeout: Duration) -> Res<f64> {
        let t = Instant::now();
        // std has no SIGTERM and the workspace forbids unsafe (libc::kill): use kill(1).
        let st = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(|e| format!("run kill: {e}"))?;
        if !st.success() {
            return Err(format!("kill -TERM {} failed: {st}", self.pid()));
        }
        while t.elapsed() < timeout {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(t.elapsed().as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(format!(
            "{} did not exit within {timeout:?} of SIGTERM (killed)",
            self.name
        ))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn log_tail(p: &Path) -> String {
    let text = std::fs::read(p).unwrap_or_default();
    String::from_utf8_lossy(&text[text.len().saturating_sub(2000)..]).into_owned()
}

/// `(VmHWM, VmRSS)` of a process in bytes: peak and current resident set.
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    Some((kb("VmHWM:")?, kb("VmRSS:")?))
}

/// Bytes under a directory: apparent (file lengths) and allocated (blocks), also per
/// top-level entry so a WAL can be told from the store.
#[derive(Default, Clone)]
pub struct DiskUsage {
    pub apparent: u64,
    pub allocated: u64,
    pub files: u64,
    pub by_top: BTreeMap<String, (u64, u64)>,
}

impl DiskUsage {
    /// Apparent bytes outside a top-level `wal` directory (Silt's and Loki's WALs).
    pub fn without_wal(&self) -> u64 {
        self.apparent - self.by_top.get("wal").map_or(0, |w| w.0)
    }
}

pub fn disk_usage(dir: &Path) -> Res<DiskUsage> {
    let mut du = DiskUsage::default();
    let rd = std::fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    for e in rd {
        let e = e.map_err(|e| e.to_string())?;
        let (mut a, mut b, mut n) = (0, 0, 0);
        walk(&e.path(), &mut a, &mut b, &mut n)?;
        du.apparent += a;
        du.allocated += b;
        du.files += n;
        du.by_top
            .insert(e.file_name().to_string_lossy().into_owned(), (a, b));
    }
    Ok(du)
}

fn walk(p: &Path, apparent: &mut u64, allocated: &mut u64, files: &mut u64) -> Res<()> {
    // symlink_metadata: count links themselves, never follow them out of the dir.
    let m = std::fs::symlink_metadata(p).map_err(|e| format!("stat {}: {e}", p.display()))?;
    if m.is_dir() {
        let rd = std::fs::read_dir(p).map_err(|e| format!("read {}: {e}", p.display()))?;
        for e in rd {
            walk(
                &e.map_err(|e| e.to_string())?.path(),
                apparent,
                allocated,
                files,
            )?;
        }
    } else {
        *apparent += m.len();
        *allocated += m.blocks() * 512;
        *files += 1;
    }
    Ok(())
}

/// The 1-minute load average, to warn when the machine is not idle.
pub fn load_avg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_memory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("wal/x")).unwrap();
        std::fs::write(d.path().join("wal/x/a"), [0u8; 100]).unwrap();
        std::fs::write(d.path().join("seg"), [0u8; 5000]).unwrap();
        let du = disk_usage(d.path()).unwrap();
        assert_eq!((du.apparent, du.files, du.without_wal()), (5100, 2, 5000));
        let (hwm, rss) = memory(std::process::id()).unwrap();
        assert!(hwm >= rss && rss > 0);
        assert!(disk_usage(&d.path().join("missing")).is_err());
    }
}
