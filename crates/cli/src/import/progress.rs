//! Progress of `silt import` on stderr: an indicatif bar (bytes, lines/s, ETA) on a
//! terminal, a plain line every few seconds otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Between two plain progress lines.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    start: Instant,
    last: Instant,
    quiet: bool,
}

fn rate(n: u64, d: Duration) -> u64 {
    (n as f64 / d.as_secs_f64().max(1e-3)) as u64
}

impl Progress {
    /// `total` bytes on disk to read; nothing but problems with `quiet`.
    pub fn new(total: u64, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {msg} ETA {eta} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style);
            b
        });
        let now = Instant::now();
        Progress {
            bar,
            total,
            start: now,
            last: now,
            quiet,
        }
    }

    /// `done` bytes of the total read, `lines` lines sent so far.
    pub fn update(&mut self, done: u64, lines: u64) {
        let elapsed = self.start.elapsed();
        if let Some(b) = &self.bar {
            b.set_position(done);
            b.set_message(format!("{lines} lines, {} lines/s", rate(lines, elapsed)));
            return;
        }
        if self.quiet || self.last.elapsed() < PLAIN_EVERY {
            return;
        }
        self.last = Instant::now();
        let pct = done as f64 * 100.0 / self.total.max(1) as f64;
        let eta = if done == 0 {
            "?".to_string()
        } else {
            let left =
                elapsed.as_secs_f64() * (self.total.saturating_sub(done)) as f64 / done as f64;
            format!("{}s", left.round())
        };
        eprintln!(
            "import: {done}/{} bytes ({pct:.1}%), {lines} lines, {} lines/s, ETA {eta}",
            self.total,
            rate(lines, elapsed)
        );
    }

    /// Prints a message above the bar.
    pub fn say(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{msg}")),
            None => eprintln!("{msg}"),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}
