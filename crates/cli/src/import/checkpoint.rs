//! The checkpoint of `silt import`: per file, how far the server acknowledged it, so a
//! killed import resumes there and a re-run skips what is done. JSON, rewritten
//! atomically (temporary file, fsync, rename) after every acknowledged push.

use serde_json::{json, Map, Value};
use silt_logfile::ClockState;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where one file stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilePos {
    /// Byte offset (of the decompressed content) after the last acknowledged line.
    pub offset: u64,
    /// Lines before `offset` (for line numbers in reports).
    pub line: u64,
    /// The line clock after that line, so resumed lines get the same times.
    pub clock: ClockState,
    /// Read to the end and acknowledged; `size` was the file's size on disk then.
    pub done: bool,
    pub size: u64,
}

/// Positions by absolute path; `path` is `None` with `--no-checkpoint`.
#[derive(Debug)]
pub struct Checkpoint {
    path: Option<PathBuf>,
    files: BTreeMap<String, FilePos>,
}

fn pair(v: Option<(i64, i64)>) -> Value {
    v.map_or(Value::Null, |(a, b)| json!([a, b]))
}

impl Checkpoint {
    /// Loads `path` (a missing file is an empty checkpoint).
    pub fn load(path: Option<PathBuf>) -> Result<Checkpoint, String> {
        let mut files = BTreeMap::new();
        if let Some(p) = &path {
            match std::fs::read(p) {
                Ok(raw) => {
                    let bad = |e: String| {
                        format!(
                            "checkpoint {}: {e}; delete it to import everything again",
                            p.display()
                        )
                    };
                    let v: Value = serde_json::from_slice(&raw).map_err(|e| bad(e.to_string()))?;
                    let f = v["files"]
                        .as_object()
                        .ok_or_else(|| bad("no \"files\" object".into()))?;
                    for (name, e) in f {
                        files.insert(name.clone(), parse_pos(e).ok_or_else(|| bad(name.clone()))?);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("checkpoint {}: {e}", p.display())),
            }
        }
        Ok(Checkpoint { path, files })
    }

    pub fn get(&self, file: &Path) -> Option<FilePos> {
        self.files.get(&*file.to_string_lossy()).copied()
    }

    pub fn set(&mut self, file: &Path, pos: FilePos) {
        self.files.insert(file.to_string_lossy().into_owned(), pos);
    }

    /// Writes the checkpoint atomically (nothing with `--no-checkpoint`).
    pub fn save(&self) -> Result<(), String> {
        let Some(p) = &self.path else {
            return Ok(());
        };
        let files: Map<String, Value> = self
            .files
            .iter()
            .map(|(k, f)| {
                let v = json!({
                    "offset": f.offset,
                    "line": f.line,
                    "done": f.done,
                    "size": f.size,
                    "record": f.clock.record,
                    "prev": pair(f.clock.prev),
                });
                (k.clone(), v)
            })
            .collect();
        let body = json!({"version": 1, "files": files}).to_string();
        silt_logfile::write_atomic(p, body.as_bytes())
            .map_err(|e| format!("writing checkpoint {}: {e}", p.display()))
    }
}

fn parse_pos(e: &Value) -> Option<FilePos> {
    let prev = match &e["prev"] {
        Value::Null => None,
        v => Some((v[0].as_i64()?, v[1].as_i64()?)),
    };
    Some(FilePos {
        offset: e["offset"].as_u64()?,
        line: e["line"].as_u64()?,
        clock: ClockState {
            record: e["record"].as_i64(),
            prev,
        },
        done: e["done"].as_bool()?,
        size: e["size"].as_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ck");
        let mut c = Checkpoint::load(Some(p.clone())).unwrap();
        let pos = FilePos {
            offset: 10,
            line: 2,
            clock: ClockState {
                record: Some(-5),
                prev: Some((1, 2)),
            },
            done: true,
            size: 10,
        };
        c.set(Path::new("/a/b"), pos);
        c.set(Path::new("/a/c"), FilePos::default());
        c.save().unwrap();
        let c = Checkpoint::load(Some(p.clone())).unwrap();
        assert_eq!(c.get(Path::new("/a/b")), Some(pos));
        assert_eq!(c.get(Path::new("/a/c")), Some(FilePos::default()));
        std::fs::write(&p, "{").unwrap();
        assert!(Checkpoint::load(Some(p)).unwrap_err().contains("delete it"));
    }
}
