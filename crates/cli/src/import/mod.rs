//! `silt import PATH…`: backfills log files and directory trees into a running server over
//! the push API (protobuf + snappy), resumable through a checkpoint file. See docs/import.md.

mod checkpoint;
mod limits;
mod progress;
mod source;

use crate::remote::{ConnArgs, Remote};
use checkpoint::{Checkpoint, FilePos};
use clap::Args;
use limits::Limits;
use progress::Progress;
use silt_logfile::LineClock;
use silt_model::{Entry, Labels};
use silt_proto::{encode_push_protobuf, PushStream};
use source::{Layout, Lines, Stream};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Bytes an entry is counted for in a batch besides its line (timestamp, framing).
const ENTRY_OVERHEAD: u64 = 32;
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// `silt import` flags.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Files and directories to import (directories recursively, names starting with `.`
    /// skipped); gzip'd files are read decompressed.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// A label for every stream, `name=value` (repeatable; wins over labels from the path).
    #[arg(long = "label", value_name = "NAME=VALUE")]
    pub labels: Vec<String>,
    /// Labels from the path for other layouts, matched against its last components:
    /// `{name}` a label, `{@name}` structured metadata, `{_}` or `*` ignored, e.g.
    /// `{app}/{@date}/*.log`. Airflow layouts are recognised without it.
    #[arg(long, value_name = "TEMPLATE")]
    pub path_template: Option<String>,
    /// Checkpoint file: per file the offset the server acknowledged.
    #[arg(long, default_value = ".silt-import.checkpoint", value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Neither read nor write a checkpoint (re-sent lines are dropped by the server as
    /// exact duplicates).
    #[arg(long)]
    pub no_checkpoint: bool,
    /// Print the streams and line counts that would be sent; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Send even when the server's limits would refuse or delete old entries.
    #[arg(long)]
    pub force: bool,
    /// Lines per push request, in bytes (`1MiB`, `64KiB`, a number).
    #[arg(long, default_value = "1MiB", value_parser = silt_server::config::parse_bytes)]
    pub batch_size: u64,
    /// Most line bytes sent per second (e.g. `2MB`, to stay under the server's ingestion
    /// rate); unlimited when unset.
    #[arg(long, value_parser = silt_server::config::parse_bytes, value_name = "BYTES")]
    pub rate_limit: Option<u64>,
    /// Retries of a push answered 429/5xx or failing to connect before giving up.
    #[arg(long, default_value_t = 20)]
    pub max_retries: u32,
    /// Cut lines over the server's max_line_size there and send them, instead of
    /// reporting and skipping them.
    #[arg(long)]
    pub truncate_long_lines: bool,
}

/// Line numbers of one kind of problem in one file.
#[derive(Default)]
struct Tally {
    count: u64,
    first: u64,
}

impl Tally {
    fn note(&mut self, line: u64) {
        if self.count == 0 {
            self.first = line;
        }
        self.count += 1;
    }

    fn report(&self, path: &str, what: &str) -> Option<String> {
        (self.count > 0).then(|| {
            format!(
                "{path}: {} line(s) {what} (first at line {})",
                self.count, self.first
            )
        })
    }
}

/// A file to read and where to start.
struct Job {
    path: PathBuf,
    stream: Stream,
    size: u64,
    mtime: i64,
    start: FilePos,
}

#[derive(Default)]
struct Batch {
    streams: Vec<PushStream>,
    index: HashMap<Labels, usize>,
    bytes: u64,
    lines: u64,
    /// Latest position per job.
    acks: BTreeMap<usize, FilePos>,
}

impl Batch {
    fn add(&mut self, labels: &Labels, entry: Entry) {
        self.bytes += entry.line.len() as u64 + ENTRY_OVERHEAD;
        self.lines += 1;
        let i = *self.index.entry(labels.clone()).or_insert_with(|| {
            self.streams.push(PushStream {
                labels: labels.clone(),
                entries: Vec::new(),
            });
            self.streams.len() - 1
        });
        self.streams[i].entries.push(entry);
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
fn truncate(s: &mut String, max: usize) {
    let mut cut = max.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
}

struct Import<'a> {
    args: &'a ImportArgs,
    remote: Option<Remote>,
    limits: Limits,
    ck: Checkpoint,
    jobs: Vec<Job>,
    progress: Progress,
    /// Bytes on disk of the files before the one being read.
    disk_done: u64,
    sent_lines: u64,
    sent_bytes: u64,
    files_done: u64,
    streams: BTreeMap<String, u64>,
    problems: Vec<String>,
    started: Instant,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Runs the import; exit 0 when everything was sent, 1 when some input had problems
/// (each reported), 2 when the import could not run or stopped.
pub fn run(args: &ImportArgs) -> ExitCode {
    let mut problems = Vec::new();
    let mut imp = match Import::prepare(args, &mut problems) {
        Ok(i) => i,
        Err(e) => {
            for p in &problems {
                eprintln!("silt import: {p}");
            }
            eprintln!("silt import: {e}");
            return ExitCode::from(2);
        }
    };
    imp.problems.extend(problems);
    let res = imp.run();
    imp.progress.finish();
    imp.summary();
    match res {
        Err(e) => {
            eprintln!("silt import stopped: {e} (run it again to resume)");
            ExitCode::from(2)
        }
        Ok(()) if imp.problems.is_empty() => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(1),
    }
}

impl<'a> Import<'a> {
    /// Finds the files, reads the checkpoint and the server's limits, and checks them.
    fn prepare(args: &'a ImportArgs, problems: &mut Vec<String>) -> Result<Import<'a>, String> {
        let mut labels = Vec::new();
        for l in &args.labels {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| format!("--label {l:?}: expected name=value"))?;
            labels.push((k.trim().to_string(), v.to_string()));
        }
        let layout = Layout {
            template: args
                .path_template
                .as_deref()
                .map(source::Template::parse)
                .transpose()?,
            labels,
        };
        // A dry run reads the checkpoint (it shows what is left to send) but never writes it.
        let ck_path = (!args.no_checkpoint)
            .then(|| std::path::absolute(&args.checkpoint).unwrap_or(args.checkpoint.clone()));
        let ck = Checkpoint::load(ck_path.clone())?;
        let skip: Vec<PathBuf> = ck_path
            .iter()
            .flat_map(|p| [p.clone(), silt_logfile::atomic_temp(p)])
            .collect();
        let (files, found_problems) = source::collect(&args.paths, &skip);
        problems.extend(found_problems);
        let mut jobs = Vec::new();
        let mut oldest: HashMap<Labels, i64> = HashMap::new();
        let mut total = 0;
        for path in files {
            let md = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            let stream = match layout.stream(&path) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            let (size, mtime) = (md.len(), source::mtime_ns(&md));
            let mut start = ck.get(&path).unwrap_or_default();
            if start.done && start.size == size {
                continue;
            }
            // Offsets of gzip'd files are in the decompressed content.
            let gz = path.extension().is_some_and(|e| e == "gz");
            if start.offset > size && !gz {
                // Replaced by a shorter file: read it again from its start.
                start = FilePos::default();
            }
            start.done = false;
            let first = source::first_time(&path, mtime).unwrap_or(mtime);
            let o = oldest.entry(stream.labels.clone()).or_insert(first);
            *o = (*o).min(first);
            total += size.saturating_sub(if gz { 0 } else { start.offset });
            jobs.push(Job {
                path,
                stream,
                size,
                mtime,
                start,
            });
        }
        let remote = Remote::new(&ConnArgs {
            quiet: true,
            ..args.conn.clone()
        })?;
        let limits = match limits::fetch(&remote) {
            Ok(Some(l)) => {
                let oldest: Vec<(Labels, i64)> = oldest.into_iter().collect();
                let refused = limits::check(&l, &oldest, now_ns());
                if !refused.is_empty() && !args.force && !args.dry_run {
                    for r in &refused {
                        eprintln!("silt import: {r}");
                    }
                    return Err(
                        "the server would refuse or delete these entries; change the settings named above, or pass --force to send anyway".into(),
                    );
                }
                for r in refused {
                    eprintln!("silt import: warning: {r}");
                }
                l
            }
            Ok(None) => {
                eprintln!("silt import: warning: the server does not report its limits (not Silt?); make sure old entries are neither refused (reject_old_samples) nor deleted (retention_period)");
                Limits::assumed()
            }
            Err(e) if args.dry_run => {
                eprintln!("silt import: warning: limits not checked: {e}");
                Limits::assumed()
            }
            Err(e) => return Err(e),
        };
        Ok(Import {
            args,
            remote: (!args.dry_run).then_some(remote),
            limits,
            ck,
            jobs,
            progress: Progress::new(total, args.conn.quiet || args.dry_run),
            disk_done: 0,
            sent_lines: 0,
            sent_bytes: 0,
            files_done: 0,
            streams: BTreeMap::new(),
            problems: Vec::new(),
            started: Instant::now(),
        })
    }

    fn run(&mut self) -> Result<(), String> {
        let mut batch = Batch::default();
        for i in 0..self.jobs.len() {
            self.read_file(i, &mut batch)?;
        }
        self.flush(&mut batch)
    }

    fn read_file(&mut self, i: usize, batch: &mut Batch) -> Result<(), String> {
        let job = &self.jobs[i];
        let (path, size, mtime) = (job.path.clone(), job.size, job.mtime);
        let name = path.display().to_string();
        let mut pos = job.start;
        let mut lines = match Lines::open(&path, pos.offset) {
            Ok(Some(l)) => l,
            Ok(None) => {
                self.problem(format!("{name}: binary file (NUL bytes), skipped"));
                return Ok(());
            }
            Err(e) => {
                self.problem(format!("{name}: {e}"));
                return Ok(());
            }
        };
        let gz_resume = if lines.gzip { 0 } else { pos.offset };
        let mut clock = LineClock::resume(mtime, pos.clock);
        let max = self.limits.max_line_size as usize;
        let (mut utf8, mut long, mut cut) = (Tally::default(), Tally::default(), Tally::default());
        let mut buf = Vec::new();
        loop {
            match lines.next_line(&mut buf) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.problem(format!("{name}: read error after line {}: {e}", pos.line));
                    return Ok(());
                }
            }
            pos.line += 1;
            let mut line = match String::from_utf8(std::mem::take(&mut buf)) {
                Ok(s) => s,
                Err(e) => {
                    utf8.note(pos.line);
                    String::from_utf8_lossy(e.as_bytes()).into_owned()
                }
            };
            let ts = clock.stamp(&line, || mtime);
            pos.offset = lines.offset;
            pos.clock = clock.state();
            if max > 0 && line.len() > max && !self.limits.truncates {
                if self.args.truncate_long_lines {
                    cut.note(pos.line);
                    truncate(&mut line, max);
                } else {
                    long.note(pos.line);
                    batch.acks.insert(i, pos);
                    continue;
                }
            }
            let job = &self.jobs[i];
            let entry = Entry {
                ts,
                line,
                metadata: job.stream.metadata.clone(),
            };
            batch.add(&job.stream.labels, entry);
            batch.acks.insert(i, pos);
            if batch.bytes >= self.args.batch_size {
                self.flush(batch)?;
            }
            if pos.line.is_multiple_of(256) {
                let disk = lines.disk.load(Ordering::Relaxed).saturating_sub(gz_resume);
                self.progress
                    .update(self.disk_done + disk, self.sent_lines + batch.lines);
            }
        }
        pos.done = true;
        pos.size = size;
        batch.acks.insert(i, pos);
        self.disk_done += size.saturating_sub(gz_resume);
        self.progress
            .update(self.disk_done, self.sent_lines + batch.lines);
        for p in [
            utf8.report(&name, "not valid UTF-8, sent with U+FFFD replacing the bad bytes"),
            long.report(
                &name,
                &format!("over the server's max_line_size ({max} bytes), not sent (use --truncate-long-lines, or raise limits.max_line_size)"),
            ),
        ]
        .into_iter()
        .flatten()
        {
            self.problem(p);
        }
        if let Some(w) = cut.report(&name, &format!("cut to {max} bytes")) {
            self.progress.say(&format!("silt import: warning: {w}"));
        }
        Ok(())
    }

    fn problem(&mut self, p: String) {
        self.progress.say(&format!("silt import: {p}"));
        self.problems.push(p);
    }

    /// Sends the batch, then records its positions in the checkpoint.
    fn flush(&mut self, batch: &mut Batch) -> Result<(), String> {
        let b = std::mem::take(batch);
        for s in &b.streams {
            *self.streams.entry(s.labels.to_string()).or_default() += s.entries.len() as u64;
        }
        if !b.streams.is_empty() {
            let refused = match &self.remote {
                Some(remote) => self.push(remote, encode_push_protobuf(&b.streams))?.err(),
                None => None,
            };
            if let Some(msg) = refused {
                let files: Vec<String> = b
                    .acks
                    .keys()
                    .map(|&i| self.jobs[i].path.display().to_string())
                    .collect();
                self.problem(format!(
                    "the server refused part or all of a push of {} lines from {}: {msg}",
                    b.lines,
                    files.join(", ")
                ));
            }
            self.sent_lines += b.lines;
            self.sent_bytes += b.bytes - b.lines * ENTRY_OVERHEAD;
        }
        for (i, pos) in b.acks {
            self.ck.set(&self.jobs[i].path, pos);
            self.files_done += u64::from(pos.done);
        }
        if self.remote.is_none() {
            return Ok(());
        }
        self.ck.save()?;
        if let Some(rate) = self.args.rate_limit.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(self.sent_bytes as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(())
    }

    /// POSTs one body, retrying 429/5xx and connection errors with backoff (a longer
    /// `Retry-After` wins). `Ok(Err(msg))`: refused for its content (not retried).
    fn push(&self, remote: &Remote, body: Vec<u8>) -> Result<Result<(), String>, String> {
        let mut delay = MIN_BACKOFF;
        let mut retries = 0;
        loop {
            let (msg, after) =
                match remote.post("/loki/api/v1/push", "application/x-protobuf", body.clone()) {
                    Ok(a) if (200..300).contains(&a.status) => return Ok(Ok(())),
                    Ok(a) if a.status == 429 || a.status >= 500 => {
                        (format!("{} {}", a.status, a.text()), a.retry_after)
                    }
                    Ok(a) if matches!(a.status, 401 | 403 | 404) => {
                        return Err(format!("push refused: {} {}", a.status, a.text()))
                    }
                    Ok(a) => return Ok(Err(format!("{} {}", a.status, a.text()))),
                    Err(e) => (e, None),
                };
            retries += 1;
            if retries > self.args.max_retries {
                return Err(format!("push failed {retries} times, last: {msg}"));
            }
            let wait = after.map_or(delay, |a| a.min(Duration::from_secs(3600)).max(delay));
            self.progress.say(&format!(
                "silt import: push failed ({msg}), retrying in {wait:?}"
            ));
            std::thread::sleep(wait);
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }

    fn summary(&self) {
        if self.args.dry_run {
            for (labels, n) in &self.streams {
                println!("{labels}\t{n}");
            }
            println!(
                "dry run: {} lines in {} streams from {} files would be sent; nothing was sent",
                self.sent_lines,
                self.streams.len(),
                self.jobs.len()
            );
        }
        let verb = if self.args.dry_run {
            "read"
        } else {
            "imported"
        };
        eprintln!(
            "silt import: {verb} {} lines ({} bytes) in {} streams from {} of {} files in {:.1}s; {} problem(s)",
            self.sent_lines,
            self.sent_bytes,
            self.streams.len(),
            self.files_done,
            self.jobs.len(),
            self.progress.elapsed().as_secs_f64(),
            self.problems.len()
        );
        for p in &self.problems {
            eprintln!("  {p}");
        }
    }
}
