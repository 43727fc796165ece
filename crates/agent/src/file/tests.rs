//! Model-based test of the tailer: random writes (split at random byte boundaries),
//! rename rotations, copytruncates and graceful restarts, checked against the model
//! "every line written is delivered exactly once, in order".

use super::*;
use crate::config::SourceConfig;
use std::io::Write;

struct Harness {
    dir: PathBuf,
    cfg: SourceConfig,
    shutdown: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    client: Option<std::thread::JoinHandle<()>>,
    got: Arc<std::sync::Mutex<Vec<String>>>,
    /// Entry times, beside `got`.
    times: Arc<std::sync::Mutex<Vec<i64>>>,
}

impl Harness {
    fn start(&mut self) {
        let (tx, mut rx) = mpsc::channel::<Vec<Item>>(4);
        let (atx, arx) = std_mpsc::channel();
        self.shutdown = Arc::new(AtomicBool::new(false));
        let src = FileSource::new(
            0,
            &self.cfg,
            &self.dir.join("data"),
            Duration::from_millis(20),
            tx,
            arx,
            self.shutdown.clone(),
        )
        .unwrap();
        self.thread = Some(std::thread::spawn(move || src.run()));
        let got = self.got.clone();
        let times = self.times.clone();
        // A client that acknowledges everything it receives, in order.
        self.client = Some(std::thread::spawn(move || {
            while let Some(items) = rx.blocking_recv() {
                for it in items {
                    let ack = match it {
                        Item::Record(r) => {
                            got.lock().unwrap().push(r.entry.line);
                            times.lock().unwrap().push(r.entry.ts);
                            r.ack
                        }
                        Item::Ack(a) => Some(a),
                    };
                    if let Some(a) = ack {
                        let _ = atx.send(a);
                    }
                }
            }
        }));
    }

    fn stop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        if let Some(c) = self.client.take() {
            c.join().unwrap();
        }
    }

    /// Waits for `n` lines, lets anything extra (a duplicate) arrive too, then stops.
    fn finish(&mut self, n: usize) {
        self.wait_received(n);
        std::thread::sleep(Duration::from_millis(200));
        self.stop();
    }

    fn wait_received(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.got.lock().unwrap().len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} lines arrived",
                self.got.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn model_random_writes_rotations_truncations_and_restarts_deliver_exactly_once() {
    // More seeds: SILT_AGENT_MODEL_SEEDS=100 cargo test -p silt-agent model
    let seeds: u64 = std::env::var("SILT_AGENT_MODEL_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    for seed in 0..seeds {
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let yaml = format!(
            "type: file\ninclude: ['{}/*.log']\npoll_interval: 5ms\ndiscovery_period: 20ms\nmax_line_size: 64KiB\n",
            logs.display()
        );
        let mut h = Harness {
            dir: tmp.path().to_path_buf(),
            cfg: serde_yaml::from_str(&yaml).unwrap(),
            shutdown: Arc::new(AtomicBool::new(false)),
            thread: None,
            client: None,
            got: Default::default(),
            times: Default::default(),
        };
        h.start();
        let mut rng = fastrand::Rng::with_seed(seed);
        let app = logs.join("app.log");
        let mut want: Vec<String> = Vec::new();
        let mut rotations = 0;
        let mut ops = Vec::new();
        for step in 0..40 {
            let op = rng.u8(0..10);
            ops.push(op.min(3));
            match op {
                // Rename rotation once everything so far arrived (a file renamed before the
                // agent ever opened it is out of reach, by design).
                0 => {
                    h.wait_received(want.len());
                    if app.exists() {
                        rotations += 1;
                        std::fs::rename(&app, logs.join(format!("app.log.{rotations}"))).unwrap();
                    }
                }
                // copytruncate, same precondition.
                1 => {
                    h.wait_received(want.len());
                    if app.exists() {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(&app)
                            .unwrap()
                            .set_len(0)
                            .unwrap();
                    }
                }
                // Graceful restart: positions carry over.
                2 => {
                    h.wait_received(want.len());
                    h.stop();
                    h.start();
                }
                // Lines written in random pieces, cutting through lines.
                _ => {
                    let lines: Vec<String> = (0..rng.usize(1..200))
                        .map(|i| format!("s{seed}-{step}-{i}-{}", "x".repeat(rng.usize(0..300))))
                        .collect();
                    let mut bytes = Vec::new();
                    for l in &lines {
                        bytes.extend_from_slice(l.as_bytes());
                        bytes.push(b'\n');
                    }
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&app)
                        .unwrap();
                    let mut rest = &bytes[..];
                    while !rest.is_empty() {
                        let n = rng.usize(1..=rest.len().min(4096));
                        f.write_all(&rest[..n]).unwrap();
                        f.flush().unwrap();
                        rest = &rest[n..];
                        if rng.bool() {
                            std::thread::sleep(Duration::from_millis(rng.u64(0..3)));
                        }
                    }
                    want.extend(lines);
                }
            }
        }
        h.wait_received(want.len());
        std::thread::sleep(Duration::from_millis(100));
        h.stop();
        let got = h.got.lock().unwrap().clone();
        if got.len() != want.len() {
            let mut seen = std::collections::HashMap::<&String, usize>::new();
            for g in &got {
                *seen.entry(g).or_default() += 1;
            }
            let dups: Vec<String> = seen
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(l, n)| format!("{}x{n}", &l[..l.len().min(20)]))
                .collect();
            panic!(
                "seed {seed}: {} lines for {} written; repeated: {:?}; ops: {ops:?}",
                got.len(),
                want.len(),
                &dups[..dups.len().min(10)]
            );
        }
        assert_eq!(got, want, "seed {seed}: order or content differs");
    }
}

fn harness(tmp: &Path, extra: &str) -> (Harness, PathBuf) {
    harness_glob(tmp, "*.log", &format!("discovery_period: 20ms\n{extra}"))
}

/// A `file` source over `<tmp>/logs/<glob>`.
fn harness_glob(tmp: &Path, glob: &str, extra: &str) -> (Harness, PathBuf) {
    let logs = tmp.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let yaml = format!(
        "type: file\ninclude: ['{}/{glob}']\npoll_interval: 5ms\n{extra}",
        logs.display()
    );
    let h = Harness {
        dir: tmp.to_path_buf(),
        cfg: serde_yaml::from_str(&yaml).unwrap(),
        shutdown: Arc::new(AtomicBool::new(false)),
        thread: None,
        client: None,
        got: Default::default(),
        times: Default::default(),
    };
    (h, logs)
}

fn append_lines(p: &Path, lines: &[&str]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

#[test]
fn tail_from_end_skips_old_content_but_reads_new_files_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, logs) = harness(tmp.path(), "tail_from_end: true\n");
    append_lines(&logs.join("old.log"), &["old-1", "old-2"]);
    h.start();
    // Lines appended after start-up are read; the existing ones are not.
    std::thread::sleep(Duration::from_millis(100));
    append_lines(&logs.join("old.log"), &["old-3"]);
    // A file appearing while running is read from its start.
    append_lines(&logs.join("new.log"), &["new-1", "new-2"]);
    h.wait_received(3);
    h.stop();
    let mut got = h.got.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, vec!["new-1", "new-2", "old-3"]);
    // A restart resumes from the stored position instead of the end.
    append_lines(&logs.join("old.log"), &["old-4"]);
    h.got.lock().unwrap().clear();
    h.start();
    h.finish(1);
    assert_eq!(*h.got.lock().unwrap(), vec!["old-4"]);
}

#[test]
fn over_long_lines_are_cut_and_the_next_line_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, logs) = harness(tmp.path(), "max_line_size: 1KiB\n");
    h.start();
    let long = "y".repeat(300 * 1024);
    append_lines(&logs.join("a.log"), &["short", &long, "after"]);
    h.wait_received(3);
    h.stop();
    let got = h.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], "short");
    assert_eq!(got[1], "y".repeat(1024));
    assert_eq!(got[2], "after");
    let (mut h, logs) = harness(
        &tmp.path().join("drop"),
        "max_line_size: 1KiB\nmax_line_action: drop\n",
    );
    h.start();
    append_lines(&logs.join("a.log"), &[&long, "kept"]);
    h.finish(1);
    assert_eq!(*h.got.lock().unwrap(), vec!["kept"]);
}

#[test]
fn positions_stay_below_a_held_multiline_block() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, logs) = harness(
        tmp.path(),
        "format: cri\nstages:\n- multiline: {firstline: '^\\[', max_wait_time: 1h}\n",
    );
    let app = logs.join("app.log");
    let ts = "2024-01-01T00:00:00.000000000Z";
    // A stderr block opens; stdout blocks after it are emitted and acknowledged while the
    // stderr one is still held.
    append_lines(&app, &[&format!("{ts} stdout F [0] first")]);
    let block_start = std::fs::metadata(&app).unwrap().len();
    append_lines(
        &app,
        &[
            &format!("{ts} stderr F [1] boom"),
            &format!("{ts} stderr F   at x"),
        ],
    );
    for i in 2..6 {
        append_lines(&app, &[&format!("{ts} stdout F [{i}] ok")]);
    }
    h.start();
    h.wait_received(4); // [0], [2], [3], [4]; [1] and [5] are held
    let positions = tmp.path().join("data/positions/file.yaml");
    let deadline = Instant::now() + Duration::from_secs(10);
    let offset = loop {
        std::thread::sleep(Duration::from_millis(50));
        let recs = positions::load(&positions);
        if let Some(r) = recs.first().filter(|r| r.offset > 0) {
            break r.offset;
        }
        assert!(Instant::now() < deadline, "no position was written");
    };
    // A SIGKILL now must re-read the held stderr block: the position may not pass its start.
    assert!(
        offset <= block_start,
        "position {offset} passed the held block at {block_start}"
    );
    let snapshot = std::fs::read(&positions).unwrap();
    h.stop();
    assert!(h
        .got
        .lock()
        .unwrap()
        .contains(&"[1] boom\n  at x".to_string()));
    // Restart from the position a SIGKILL would have left: the block comes again.
    std::fs::write(&positions, snapshot).unwrap();
    h.got.lock().unwrap().clear();
    h.start();
    h.finish(1);
    assert!(h
        .got
        .lock()
        .unwrap()
        .contains(&"[1] boom\n  at x".to_string()));
}

#[test]
fn a_rotation_gzipped_while_stopped_is_finished_from_the_gz() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, logs) = harness(tmp.path(), "");
    let app = logs.join("0.log");
    append_lines(&app, &["one", "two", "three"]);
    h.start();
    h.wait_received(3);
    h.stop();
    // While stopped: more lines, then kubelet-style rotation and compression.
    append_lines(&app, &["four", "five"]);
    let rotated = logs.join("0.log.20240705-010753");
    std::fs::rename(&app, &rotated).unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        File::create(logs.join("0.log.20240705-010753.gz")).unwrap(),
        flate2::Compression::default(),
    );
    std::io::copy(&mut File::open(&rotated).unwrap(), &mut gz).unwrap();
    gz.finish().unwrap();
    std::fs::remove_file(&rotated).unwrap();
    append_lines(&app, &["six"]);
    h.got.lock().unwrap().clear();
    h.start();
    h.finish(3);
    let mut got = h.got.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, vec!["five", "four", "six"]);
    // Finished: the next restart neither re-reads the archive nor the new file.
    h.got.lock().unwrap().clear();
    h.start();
    std::thread::sleep(Duration::from_millis(300));
    h.stop();
    assert!(h.got.lock().unwrap().is_empty());
}

#[test]
fn new_directories_and_files_are_found_without_waiting_for_discovery() {
    let tmp = tempfile::tempdir().unwrap();
    // The pods layout, with a discovery period no test would wait for.
    let (mut h, logs) = harness_glob(tmp.path(), "*/*/*.log", "discovery_period: 1h\n");
    h.start();
    std::thread::sleep(Duration::from_millis(100));
    // A short-lived pod: directory, container directory and log appear after start-up.
    let dir = logs.join("ns_pod_uid1/c");
    std::fs::create_dir_all(&dir).unwrap();
    append_lines(&dir.join("0.log"), &["hello", "bye"]);
    h.wait_received(2);
    let dir = logs.join("ns_pod_uid2/c");
    std::fs::create_dir_all(&dir).unwrap();
    append_lines(&dir.join("0.log"), &["again"]);
    h.wait_received(3);
    h.stop();
}

#[test]
fn include_compressed_reads_gz_archives_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, logs) = harness_glob(
        tmp.path(),
        "*.gz",
        "discovery_period: 20ms\ninclude_compressed: true\n",
    );
    let gz = |name: &str, lines: &[&str]| {
        let mut w = flate2::write::GzEncoder::new(
            File::create(logs.join(name)).unwrap(),
            flate2::Compression::default(),
        );
        for l in lines {
            writeln!(w, "{l}").unwrap();
        }
        w.finish().unwrap();
    };
    gz("a.log.1.gz", &["one", "two", "three"]);
    h.start();
    h.finish(3);
    assert_eq!(*h.got.lock().unwrap(), vec!["one", "two", "three"]);
    // Done archives are remembered across restarts; new ones are read.
    h.got.lock().unwrap().clear();
    gz("a.log.2.gz", &["four"]);
    h.start();
    h.finish(1);
    assert_eq!(*h.got.lock().unwrap(), vec!["four"]);
    let positions = tmp.path().join("data/positions/file.yaml");
    assert_eq!(
        positions::load(&positions)
            .iter()
            .filter(|r| r.done)
            .count(),
        2
    );
    // Deleted archives leave the positions file.
    std::fs::remove_file(logs.join("a.log.1.gz")).unwrap();
    h.start();
    std::thread::sleep(Duration::from_millis(300));
    h.stop();
    assert_eq!(
        positions::load(&positions)
            .iter()
            .filter(|r| r.done)
            .count(),
        1
    );
    assert_eq!(*h.got.lock().unwrap(), vec!["four"]);
}

#[test]
fn line_times_survive_a_restart_in_the_middle_of_a_record() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, logs) = harness(tmp.path(), "line_timestamps: true\n");
    let app = logs.join("task.log");
    append_lines(
        &app,
        &[
            "[2024-05-01T10:00:00.000+0000] {x.py:1} ERROR - failed",
            "Traceback (most recent call last):",
        ],
    );
    h.start();
    h.wait_received(2);
    h.stop();
    // Restarted between two lines of the traceback: the rest keeps the record's time.
    append_lines(
        &app,
        &[
            "ValueError: boom",
            "[2024-05-01T10:00:01.000+0000] {x.py:2} INFO - next",
        ],
    );
    h.start();
    h.finish(4);
    let t = 1_714_557_600_000_000_000;
    assert_eq!(
        *h.times.lock().unwrap(),
        vec![t, t + 1, t + 2, t + 1_000_000_000]
    );
}
