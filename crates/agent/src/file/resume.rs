//! Picking up after a restart: files rotated (or rotated and gzipped) while the agent was
//! stopped are finished from their stored offset, `.gz` archives are read through a
//! decompressed copy, and a file's line clock is replayed up to where reading resumes.

use super::positions::FileRecord;
use super::{fingerprint, is_compressed, FileSource, State};
use crate::metrics::metrics;
use crate::now_ns;
use silt_logfile::LineClock;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// Most of a file re-read at start-up to restore its line clock.
const REPLAY_MAX: u64 = 64 << 20;

/// Reads a file from an offset through `read_at` (the tailer's own reads use offsets too).
struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
}

impl std::io::Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The line clock of a file read from `start`: the lines before it (up to 64 MiB) are
/// stamped again, so that after a restart the lines that follow, continuation lines
/// included, get the times an uninterrupted read gave them (and lines sent again after a
/// SIGKILL are exact duplicates the server drops).
pub(super) fn replay_clock(file: &File, start: u64) -> LineClock {
    use std::io::{BufRead, Read};
    let mut clock = LineClock::new(now_ns());
    if start == 0 || start > REPLAY_MAX {
        return clock;
    }
    let mut r = std::io::BufReader::new(ReadAt { file, pos: 0 }.take(start));
    let mut buf = Vec::new();
    while r.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches('\n');
        clock.stamp(line.strip_suffix('\r').unwrap_or(line), now_ns);
        buf.clear();
    }
    clock
}

impl FileSource {
    /// After a restart, files we were still reading may have been renamed out of the glob
    /// (rotation while the agent was down): finish them from their stored offset.
    pub(super) fn resume_rotated(&mut self) {
        'records: for r in std::mem::take(&mut self.restored) {
            // Already tailed; same inode but other content is a reused inode, not this file.
            if r.inode == 0
                || self.tailers.iter().any(|t| {
                    t.dev == r.dev
                        && t.ino == r.inode
                        && fingerprint(&t.file, r.fp_len) == (r.fingerprint, r.fp_len)
                })
            {
                continue;
            }
            let Some(dir) = Path::new(&r.path).parent() else {
                continue;
            };
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                let Ok(md) = std::fs::metadata(&p) else {
                    continue;
                };
                if md.dev() != r.dev || md.ino() != r.inode || !md.is_file() || is_compressed(&p) {
                    continue;
                }
                let Ok(f) = File::open(&p) else { continue };
                if fingerprint(&f, r.fp_len.min(md.len())) != (r.fingerprint, r.fp_len) {
                    continue;
                }
                tracing::info!(path = %p.display(), offset = r.offset, "finishing file rotated while stopped");
                self.add_tailer(
                    &p,
                    f,
                    (md.dev(), md.ino()),
                    r.offset.min(md.len()),
                    State::Draining,
                    false,
                );
                continue 'records;
            }
            // Rotated and then compressed while we were stopped (kubelet gzips older
            // rotations): finish it from the decompressed content.
            if let Err(e) = self.resume_compressed(&r, dir) {
                tracing::warn!(path = %r.path, error = %e, "cannot resume from a compressed rotation");
            }
        }
    }

    /// Finds the `.gz` whose decompressed head matches `r`'s fingerprint and tails the rest
    /// of its content from `r.offset`, through an unlinked temporary copy.
    fn resume_compressed(&mut self, r: &FileRecord, dir: &Path) -> std::io::Result<()> {
        use std::io::Read;
        if r.fp_len == 0 {
            return Ok(());
        }
        for e in std::fs::read_dir(dir)?.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("gz") {
                continue;
            }
            let Ok(f) = File::open(&p) else { continue };
            let mut head = Vec::new();
            let mut gz = flate2::read::MultiGzDecoder::new(f);
            if (&mut gz).take(r.fp_len).read_to_end(&mut head).is_err()
                || head.len() as u64 != r.fp_len
                || xxhash_rust::xxh3::xxh3_64(&head) != r.fingerprint
            {
                continue;
            }
            let (f, size) = self.decompressed_copy(&p)?;
            if r.offset >= size {
                return Ok(());
            }
            let md = f.metadata()?;
            tracing::info!(path = %p.display(), offset = r.offset, "finishing a rotation compressed while stopped");
            metrics().compressed_resumes.inc();
            self.add_tailer(
                &p,
                f,
                (md.dev(), md.ino()),
                r.offset,
                State::Draining,
                false,
            );
            return Ok(());
        }
        Ok(())
    }

    /// The decompressed content of a `.gz` in an unlinked temporary file (the open fd keeps
    /// it readable; nothing is left on disk), and its size.
    fn decompressed_copy(&self, p: &Path) -> std::io::Result<(File, u64)> {
        let tmp_dir = self
            .positions_path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        std::fs::create_dir_all(&tmp_dir)?;
        let tmp = tmp_dir.join(format!(".{}-gz-{}.tmp", self.name, self.next_id));
        let mut out = File::create(&tmp)?;
        let copied = std::io::copy(
            &mut flate2::read::MultiGzDecoder::new(File::open(p)?),
            &mut out,
        );
        let opened = File::open(&tmp);
        let _ = std::fs::remove_file(&tmp);
        Ok((opened?, copied?))
    }

    /// `include_compressed`: a `.gz` is read whole through a decompressed copy, resumed by
    /// its stored offset, and remembered as done once acknowledged (Alloy's decompression).
    pub(super) fn open_archive(&mut self, p: &Path, md: &std::fs::Metadata) {
        let (f, size) = match self.decompressed_copy(p) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e, "cannot decompress, skipping");
                return;
            }
        };
        let rec_pos = self.restored.iter().position(|r| {
            r.dev == md.dev()
                && r.inode == md.ino()
                && fingerprint(&f, r.fp_len.min(size)) == (r.fingerprint, r.fp_len)
        });
        let start = rec_pos.map_or(0, |i| self.restored.swap_remove(i).offset.min(size));
        self.add_tailer(p, f, (md.dev(), md.ino()), start, State::Draining, true);
    }
}
