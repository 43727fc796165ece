//! Log patterns mined at query time with Loki's Drain miner.
//!
//! Loki mines patterns in a pattern ingester as lines arrive and only answers for recent
//! data; here the same miner runs over the lines a query selects, so any stored range
//! works. Lines are mined per stream and level in time order (each stream's format is
//! guessed from its first line), then identical patterns of all streams are summed.
//! What Loki returns: patterns seen at least [`MIN_CLUSTER_SIZE`] times, the
//! [`MAX_PATTERNS`] most frequent, counts per `step` bucket aligned to the epoch.

mod drain;
mod tokenize;

pub use drain::Config;
pub use tokenize::{detect_format, Format};

use drain::Drain;
use std::collections::{BTreeMap, HashMap};
use tokenize::Tokenizer;

/// The wildcard standing for a variable token.
pub const PARAM: &str = "<_>";
/// Patterns with fewer lines are dropped (Loki's querier `minClusterSize`).
pub const MIN_CLUSTER_SIZE: u64 = 30;
/// Most patterns answered (Loki's querier `maxPatterns`).
pub const MAX_PATTERNS: usize = 300;
/// Loki counts pattern samples at this resolution; coarser steps sum them.
pub const SAMPLE_RESOLUTION_MS: i64 = 10_000;

/// One pattern of one level with its counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternSeries {
    pub pattern: String,
    pub level: String,
    /// `(bucket start in ms, lines)` in time order; buckets between the first and the
    /// last one are present with 0.
    pub samples: Vec<(i64, u64)>,
}

/// Mines patterns from lines fed stream by stream in time order.
#[derive(Debug)]
pub struct Miner {
    cfg: Config,
    step_ms: i64,
    formats: HashMap<usize, Format>,
    drains: HashMap<(usize, String), Drain>,
}

impl Miner {
    /// A miner counting per `step_ms` (raised to the 10 s sample resolution).
    pub fn new(step_ms: i64) -> Miner {
        Miner {
            cfg: Config::default(),
            step_ms: step_ms.max(SAMPLE_RESOLUTION_MS),
            formats: HashMap::new(),
            drains: HashMap::new(),
        }
    }

    /// The bucket width actually used, ms.
    pub fn step_ms(&self) -> i64 {
        self.step_ms
    }

    /// Adds one line of stream `stream` (any id the caller keeps per stream).
    pub fn add(&mut self, stream: usize, level: &str, ts_ns: i64, line: &str) {
        let format = *self
            .formats
            .entry(stream)
            .or_insert_with(|| detect_format(line));
        let ms = ts_ns.div_euclid(1_000_000);
        let sample = ms - ms.rem_euclid(SAMPLE_RESOLUTION_MS);
        let bucket = sample - sample.rem_euclid(self.step_ms);
        let cfg = &self.cfg;
        self.drains
            .entry((stream, level.to_string()))
            .or_insert_with(|| Drain::new(cfg.clone(), Tokenizer(format)))
            .train(line, bucket);
    }

    /// Patterns of all streams merged, pruned and ordered by total count (desc).
    pub fn finish(self) -> Vec<PatternSeries> {
        let mut merged: BTreeMap<(String, String), BTreeMap<i64, u64>> = BTreeMap::new();
        for ((_, level), drain) in &self.drains {
            for (pattern, samples) in drain.patterns() {
                if pattern.is_empty() {
                    continue;
                }
                let m = merged.entry((pattern, level.clone())).or_default();
                for (b, n) in samples {
                    *m.entry(*b).or_default() += n;
                }
            }
        }
        let mut out: Vec<(u64, PatternSeries)> = merged
            .into_iter()
            .map(|((pattern, level), samples)| {
                let total = samples.values().sum();
                (
                    total,
                    PatternSeries {
                        pattern,
                        level,
                        samples: fill(&samples, self.step_ms),
                    },
                )
            })
            .filter(|(total, _)| *total >= MIN_CLUSTER_SIZE)
            .collect();
        // Ties are ordered by pattern and level so answers are stable.
        out.sort_by_key(|p| std::cmp::Reverse(p.0));
        out.truncate(MAX_PATTERNS);
        out.into_iter().map(|(_, s)| s).collect()
    }
}

fn fill(samples: &BTreeMap<i64, u64>, step: i64) -> Vec<(i64, u64)> {
    let (Some(first), Some(last)) = (samples.keys().next(), samples.keys().next_back()) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(((last - first) / step + 1) as usize);
    let mut t = *first;
    while t <= *last {
        out.push((t, samples.get(&t).copied().unwrap_or(0)));
        t += step;
    }
    out
}

#[cfg(test)]
mod tests;
