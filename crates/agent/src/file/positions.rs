//! Durable per-source positions: `<data_dir>/positions/<source>.yaml`, written whole to a
//! temp file and renamed, so a crash leaves the old or the new version, never a torn one.
//! Offsets are only ever the acknowledged ones (see `crate::Ack`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One file's resume point and identity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    pub path: String,
    pub dev: u64,
    pub inode: u64,
    /// xxh3 of the first `fp_len` bytes (≤ 1 KiB); guards against inode reuse.
    pub fingerprint: u64,
    pub fp_len: u64,
    pub offset: u64,
    /// A `.gz` read to its end and acknowledged: skipped while it exists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PositionsFile {
    version: u32,
    files: Vec<FileRecord>,
}

/// Promtail / agent-static layout `positions: {path: "offset"}`, and Alloy's, whose keys
/// are `{path, labels}` maps. Non-numeric values (journal/event cursors) are skipped.
#[derive(Deserialize)]
struct LegacyFile {
    positions: serde_yaml::Mapping,
}

fn legacy_records(l: LegacyFile) -> Vec<FileRecord> {
    use serde_yaml::Value;
    let mut by_path: BTreeMap<String, u64> = BTreeMap::new();
    for (k, v) in l.positions {
        let path = match &k {
            Value::String(p) => p.clone(),
            Value::Mapping(m) => match m.get("path") {
                Some(Value::String(p)) => p.clone(),
                _ => continue,
            },
            _ => continue,
        };
        let offset = match &v {
            Value::String(o) => o.trim().parse().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        };
        // Alloy keeps one entry per (path, labels): the smallest offset re-reads, never skips.
        if let Some(o) = offset {
            by_path
                .entry(path)
                .and_modify(|x| *x = (*x).min(o))
                .or_insert(o);
        }
    }
    by_path
        .into_iter()
        .map(|(path, offset)| FileRecord {
            path,
            // No identity in these formats: inode 0 means "match by path" on open.
            dev: 0,
            inode: 0,
            fingerprint: 0,
            fp_len: 0,
            offset,
            done: false,
        })
        .collect()
}

/// Loads records; a missing file is empty. A corrupt file is moved aside and treated as
/// empty (re-reading means duplicates, refusing to start means an outage: loki#1457).
pub fn load(path: &Path) -> Vec<FileRecord> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "positions unreadable, starting fresh");
            return Vec::new();
        }
    };
    if let Ok(f) = serde_yaml::from_str::<PositionsFile>(&text) {
        return f.files;
    }
    if let Ok(l) = serde_yaml::from_str::<LegacyFile>(&text) {
        return legacy_records(l);
    }
    let aside = path.with_extension("corrupt");
    tracing::warn!(path = %path.display(), moved_to = %aside.display(), "positions file corrupt, starting fresh");
    let _ = std::fs::rename(path, &aside);
    Vec::new()
}

/// Writes records atomically (temp file, fsync, rename, fsync dir).
pub fn save(path: &Path, files: &[FileRecord]) -> std::io::Result<()> {
    let text = serde_yaml::to_string(&PositionsFile {
        version: 1,
        files: files.to_vec(),
    })
    .map_err(std::io::Error::other)?;
    silt_logfile::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_legacy_and_corrupt() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("positions/a.yaml");
        assert!(load(&p).is_empty());
        let r = FileRecord {
            path: "/x/0.log".into(),
            dev: 1,
            inode: 2,
            fingerprint: 3,
            fp_len: 4,
            offset: 5,
            done: false,
        };
        save(&p, std::slice::from_ref(&r)).unwrap();
        assert_eq!(load(&p), vec![r]);
        std::fs::write(&p, "positions:\n  /var/log/a.log: \"42\"\n").unwrap();
        let l = load(&p);
        assert_eq!(
            (l[0].path.as_str(), l[0].offset, l[0].inode),
            ("/var/log/a.log", 42, 0)
        );
        // Alloy: `{path, labels}` keys, cursors beside offsets.
        std::fs::write(
            &p,
            "positions:\n  ? path: /var/log/b.log\n    labels: '{job=\"b\"}'\n  : \"77\"\n  ? path: /var/log/b.log\n    labels: '{job=\"c\"}'\n  : \"70\"\n  cursor-journal: \"s=abc;i=1\"\n",
        )
        .unwrap();
        let l = load(&p);
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].path.as_str(), l[0].offset), ("/var/log/b.log", 70));
        std::fs::write(&p, "\0\0\0garbage: [").unwrap();
        assert!(load(&p).is_empty());
        assert!(p.with_extension("corrupt").exists());
    }
}
