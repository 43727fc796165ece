//! Write-ahead log: CRC'd records in numbered files, fsynced before a push is acknowledged.
//!
//! File `wal/<seq>.wal` = magic `SILTWAL1`, then records `[len u32 LE][crc32 u32 LE][payload]`.
//! A torn record at the tail of the newest file (crash mid-write) is cut off on replay;
//! a bad record anywhere else is reported as corruption but the readable rest is kept.

use crate::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SILTWAL1";
/// Largest record accepted on replay; larger lengths mean a corrupt header.
const MAX_RECORD: usize = 1 << 31;

/// Appends records to the current WAL file.
pub struct WalWriter {
    dir: PathBuf,
    seq: u64,
    file: File,
    len: u64,
    fsync: bool,
}

fn file_name(seq: u64) -> String {
    format!("{seq:016}.wal")
}

/// Sequence numbers of the WAL files in `dir`, ascending.
pub fn list(dir: &Path) -> Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for ent in fs::read_dir(dir)? {
        let name = ent?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".wal") {
            if let Ok(seq) = stem.parse::<u64>() {
                seqs.push(seq);
            }
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

impl WalWriter {
    /// Opens a new file with sequence `seq` in `dir`.
    pub fn create(dir: &Path, seq: u64, fsync: bool) -> Result<WalWriter> {
        let path = dir.join(file_name(seq));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        file.write_all(MAGIC)?;
        if fsync {
            file.sync_all()?;
            File::open(dir)?.sync_all()?;
        }
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            seq,
            file,
            len: MAGIC.len() as u64,
            fsync,
        })
    }

    /// Sequence number of the file being written.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Writes framed records (`[len][crc][payload]`, see [`frame`]) and makes them durable
    /// (one fsync for the group). On failure the file is cut back so no partial record stays
    /// behind.
    pub fn append(&mut self, records: &[&[u8]]) -> Result<()> {
        let written: usize = records.iter().map(|r| r.len()).sum();
        let res = records
            .iter()
            .try_for_each(|r| self.file.write_all(r))
            .and_then(|_| {
                if self.fsync {
                    self.file.sync_data()
                } else {
                    Ok(())
                }
            });
        match res {
            Ok(()) => {
                self.len += written as u64;
                Ok(())
            }
            Err(e) => {
                // Also move the cursor back: writing past the cut would leave a zero-filled
                // hole that replays as garbage records.
                let _ = self.file.set_len(self.len);
                let _ = self.file.seek(SeekFrom::Start(self.len));
                Err(Error::Io(e))
            }
        }
    }

    /// Closes the current file and starts the next one; returns the closed file's sequence.
    pub fn rotate(&mut self) -> Result<u64> {
        let next = WalWriter::create(&self.dir, self.seq + 1, self.fsync)?;
        let closed = self.seq;
        *self = next;
        Ok(closed)
    }

    /// Bytes written to the current file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the current file holds no records.
    pub fn is_empty(&self) -> bool {
        self.len <= MAGIC.len() as u64
    }
}

/// A payload framed as a record: `[len u32 LE][crc32 u32 LE][payload]`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(payload.len() + 8);
    r.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    r.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    r.extend_from_slice(payload);
    r
}

/// Total size of the WAL files in `dir`.
pub fn disk_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for seq in list(dir)? {
        total += fs::metadata(dir.join(file_name(seq)))?.len();
    }
    Ok(total)
}

/// Deletes WAL files with sequence `<= through`.
pub fn remove_through(dir: &Path, through: u64) -> Result<()> {
    for seq in list(dir)? {
        if seq <= through {
            fs::remove_file(dir.join(file_name(seq)))?;
        }
    }
    Ok(())
}

/// Outcome of reading one WAL file.
pub struct ReadFile {
    /// Valid records in order.
    pub records: Vec<Vec<u8>>,
    /// Set when the file ended in a torn or corrupt record (bytes after it are ignored).
    pub damaged_at: Option<u64>,
}

/// Reads every valid record of file `seq`.
pub fn read(dir: &Path, seq: u64) -> Result<ReadFile> {
    let mut data = Vec::new();
    File::open(dir.join(file_name(seq)))?.read_to_end(&mut data)?;
    let mut records = Vec::new();
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        return Ok(ReadFile {
            records,
            damaged_at: Some(0),
        });
    }
    let mut pos = MAGIC.len();
    while pos < data.len() {
        let Some(hdr) = data.get(pos..pos + 8) else {
            return Ok(ReadFile {
                records,
                damaged_at: Some(pos as u64),
            });
        };
        let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        let crc = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        let body = if len <= MAX_RECORD {
            data.get(pos + 8..pos + 8 + len)
        } else {
            None
        };
        match body {
            Some(b) if crc32fast::hash(b) == crc => {
                records.push(b.to_vec());
                pos += 8 + len;
            }
            _ => {
                return Ok(ReadFile {
                    records,
                    damaged_at: Some(pos as u64),
                })
            }
        }
    }
    Ok(ReadFile {
        records,
        damaged_at: None,
    })
}

/// Cuts file `seq` at `len` bytes (drops a torn tail before appending continues elsewhere).
pub fn truncate(dir: &Path, seq: u64, len: u64) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(dir.join(file_name(seq)))?;
    f.set_len(len)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_replay_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::create(dir.path(), 7, true).unwrap();
        w.append(&[&frame(b"one"), &frame(b"two")]).unwrap();
        w.append(&[&frame(b"three")]).unwrap();
        let full = w.len();
        drop(w);
        let r = read(dir.path(), 7).unwrap();
        assert_eq!(
            r.records,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        assert!(r.damaged_at.is_none());
        // A crash mid-record leaves a torn tail: earlier records survive.
        truncate(dir.path(), 7, full - 2).unwrap();
        let r = read(dir.path(), 7).unwrap();
        assert_eq!(r.records.len(), 2);
        assert!(r.damaged_at.is_some());
        assert_eq!(list(dir.path()).unwrap(), vec![7]);
    }

    #[test]
    fn flipped_bit_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::create(dir.path(), 1, false).unwrap();
        w.append(&[&frame(b"payload")]).unwrap();
        drop(w);
        let p = dir.path().join(file_name(1));
        let mut data = fs::read(&p).unwrap();
        let last = data.len() - 1;
        data[last] ^= 1;
        fs::write(&p, data).unwrap();
        let r = read(dir.path(), 1).unwrap();
        assert!(r.records.is_empty());
        assert_eq!(r.damaged_at, Some(8));
    }
}
