//! The markdown report: one comparison table, then details, answers and warnings.

use super::dataset::Dataset;
use super::queries::{Answer, Query};
use super::systems::{System, ALL};
use super::{Measured, Res};
use silt_proto::time::format_rfc3339;
use std::fmt::Write;

pub struct Context<'a> {
    pub ds: &'a Dataset,
    pub queries: &'a [Query],
    pub results: &'a [(System, Res<Measured>)],
    pub warnings: &'a [String],
    pub runs: usize,
    pub clients: usize,
    pub batch_bytes: usize,
    pub range: (i64, i64),
}

impl Context<'_> {
    fn get(&self, sys: System) -> Option<&Measured> {
        self.results
            .iter()
            .find(|r| r.0 == sys)
            .and_then(|r| r.1.as_ref().ok())
    }

    /// Cells for the Silt, Loki and VL columns (`–` where not run or failed).
    fn cells(&self, f: impl Fn(&Measured) -> String) -> [String; 3] {
        ALL.map(|s| self.get(s).map_or_else(|| "–".into(), &f))
    }

    /// Silt/Loki and Silt/VL, oriented so > 1 means Silt is better.
    fn ratios(&self, value: impl Fn(&Measured) -> f64, higher_is_better: bool) -> [String; 2] {
        let silt = self.get(System::Silt).map(&value);
        [System::Loki, System::Vl].map(|peer| match (silt, self.get(peer).map(&value)) {
            (Some(s), Some(p)) if s > 0.0 && p > 0.0 => {
                format!("{:.2}x", if higher_is_better { s / p } else { p / s })
            }
            _ => "–".into(),
        })
    }
}

fn mb(b: u64) -> String {
    format!("{:.1}", b as f64 / 1e6)
}

/// Warnings: empty answers, lines missing from the count, Silt and Loki disagreeing.
pub fn check_answers(
    ds: &Dataset,
    queries: &[Query],
    results: &[(System, Res<Measured>)],
) -> Vec<String> {
    let mut w = Vec::new();
    let ok: Vec<(System, &Measured)> = results
        .iter()
        .filter_map(|(s, r)| Some((*s, r.as_ref().ok()?)))
        .collect();
    for (i, q) in queries.iter().enumerate() {
        let empty: Vec<System> = ok
            .iter()
            .filter(|m| m.1.queries[i].answer.is_empty())
            .map(|m| m.0)
            .collect();
        if empty.len() == ok.len() && ok.len() > 1 {
            // E.g. `(?i)timeout` never occurs in the generated data: still a full scan.
            w.push(format!(
                "`{}` is empty in every system (no match in this data): it times a scan that keeps nothing",
                q.name
            ));
        } else {
            for sys in empty {
                w.push(format!("{}: `{}` answered nothing", sys.title(), q.name));
            }
        }
    }
    for (sys, m) in &ok {
        for (q, r) in queries.iter().zip(&m.queries) {
            // Counts over whole-hour-aligned steps see every line exactly once.
            if q.name == "count_by_svc" && r.answer.sum != ds.lines as f64 {
                w.push(format!(
                    "{}: count_by_svc counts {} lines, {} were pushed",
                    sys.title(),
                    r.answer.sum,
                    ds.lines
                ));
            }
            if q.name == "needle_all" {
                let want = if *sys == System::Vl {
                    ds.needle_lines
                } else {
                    ds.needle_lines.min(q.limit)
                };
                if r.answer.rows != want {
                    w.push(format!(
                        "{}: needle_all found {} lines, the data has {want}",
                        sys.title(),
                        r.answer.rows
                    ));
                }
            }
        }
    }
    let find = |s| ok.iter().find(|m| m.0 == s).map(|m| m.1);
    if let (Some(silt), Some(loki)) = (find(System::Silt), find(System::Loki)) {
        for (q, (a, b)) in queries.iter().zip(silt.queries.iter().zip(&loki.queries)) {
            if !a.answer.agrees(&b.answer) {
                w.push(format!(
                    "Silt and Loki disagree on `{}`: Silt {}, Loki {}",
                    q.name,
                    show(&a.answer),
                    show(&b.answer)
                ));
            }
        }
    }
    w
}

fn show(a: &Answer) -> String {
    format!("{} series / {} rows / sum {}", a.series, a.rows, a.sum)
}

pub fn render(c: &Context) -> String {
    let ds = c.ds;
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(
        o,
        "## Silt vs Loki 3.7.6 vs VictoriaLogs 1.26 (`silt-bench peers`)\n"
    );
    let loads: Vec<String> = c
        .results
        .iter()
        .map(|(s, r)| {
            let l = r.as_ref().ok().and_then(|m| m.load_before);
            format!(
                "{} {}",
                s.key(),
                l.map_or("?".into(), |l| format!("{l:.2}"))
            )
        })
        .collect();
    let _ = writeln!(
        o,
        "Dataset: {} lines, {} MB of lines (+{} MB structured metadata), {} streams, {:.1} h of \
         data. Pushed as {} protobuf+snappy requests (~{} KiB of raw lines each, {} MB on the \
         wire) from {} stream-affine clients; queries over [{}, {}], best of {} runs (first \
         run in brackets). Machine: {} cores; 1-min load average before each system: {}.\n",
        ds.lines,
        mb(ds.line_bytes as u64),
        mb(ds.sm_bytes as u64),
        ds.streams,
        (ds.max_ts - ds.min_ts) as f64 / 3.6e12,
        ds.requests(),
        c.batch_bytes / 1024,
        mb(ds.wire_bytes() as u64),
        c.clients,
        format_rfc3339(c.range.0),
        format_rfc3339(c.range.1),
        c.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loads.join(", ")
    );
    let _ = writeln!(
        o,
        "Ratio columns: > 1 means Silt is better (more lines/s; fewer MB, bytes or ms; a \
         higher compression ratio).\n"
    );
    let _ = writeln!(
        o,
        "| figure | {} | {} | {} | Silt/Loki | Silt/VL |\n| --- | --- | --- | --- | --- | --- |",
        ALL[0].title(),
        ALL[1].title(),
        ALL[2].title()
    );
    let mut row = |name: &str, cells: [String; 3], ratios: [String; 2]| {
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} | {} | {} |",
            cells[0], cells[1], cells[2], ratios[0], ratios[1]
        );
    };
    let lines = ds.lines as f64;
    let line_mb = ds.line_bytes as f64 / 1e6;
    let rate = |m: &Measured| lines / m.push_s;
    row(
        &format!("ingest, lines/s ({} clients)", c.clients),
        c.cells(|m| format!("{:.0}", rate(m))),
        c.ratios(rate, true),
    );
    row(
        "ingest, MB/s of lines",
        c.cells(|m| format!("{:.1}", line_mb / m.push_s)),
        c.ratios(rate, true),
    );
    type Figure = fn(&Measured) -> u64;
    let mem_rows: [(&str, Figure); 3] = [
        ("peak RSS while ingesting (VmHWM), MB", |m| m.hwm_ingest),
        ("peak RSS incl. queries (VmHWM), MB", |m| m.hwm_total),
        ("RSS after queries (VmRSS), MB", |m| m.rss_after),
    ];
    for (name, f) in mem_rows {
        row(
            name,
            c.cells(|m| mb(f(m))),
            c.ratios(|m| f(m) as f64, false),
        );
    }
    row(
        "data dir after flush + stop, MB",
        c.cells(|m| mb(m.disk.apparent)),
        c.ratios(|m| m.disk.apparent as f64, false),
    );
    row(
        "data dir without WAL, MB",
        c.cells(|m| mb(m.disk.without_wal())),
        c.ratios(|m| m.disk.without_wal() as f64, false),
    );
    let ratio = |m: &Measured| ds.line_bytes as f64 / m.disk.without_wal().max(1) as f64;
    row(
        "compression (line bytes / data dir without WAL)",
        c.cells(|m| format!("{:.2}x", ratio(m))),
        c.ratios(ratio, true),
    );
    // Silt's compaction rewrites flushed segments at the rest level; the peers have no
    // such pass, so their figure is the one after the stop.
    let at_rest = |m: &Measured| m.rest.as_ref().map_or(&m.disk, |r| &r.0).without_wal();
    row(
        "data dir at rest without WAL, MB (Silt: after a compaction pass)",
        c.cells(|m| mb(at_rest(m))),
        c.ratios(|m| at_rest(m) as f64, false),
    );
    let ratio = |m: &Measured| ds.line_bytes as f64 / at_rest(m).max(1) as f64;
    row(
        "compression at rest (line bytes / data dir without WAL)",
        c.cells(|m| format!("{:.2}x", ratio(m))),
        c.ratios(ratio, true),
    );
    for (i, q) in c.queries.iter().enumerate() {
        row(
            &format!("`{}`, ms", q.name),
            c.cells(|m| {
                let r = &m.queries[i];
                format!("{:.0} ({:.0})", r.best_ms, r.first_ms)
            }),
            c.ratios(|m| m.queries[i].best_ms, false),
        );
    }
    details(o, c);
    out
}

/// Start-up, flush and stop times, disk breakdown, answers, warnings, failures.
fn details(o: &mut String, c: &Context) {
    let _ = writeln!(
        o,
        "\n### Details\n\n| figure | {} | {} | {} |\n| --- | --- | --- | --- |",
        ALL[0].title(),
        ALL[1].title(),
        ALL[2].title()
    );
    let mut row = |name: &str, cells: [String; 3]| {
        let _ = writeln!(o, "| {name} | {} | {} | {} |", cells[0], cells[1], cells[2]);
    };
    row(
        "ready after start, s",
        c.cells(|m| format!("{:.1}", m.ready_s)),
    );
    row("push, s", c.cells(|m| format!("{:.2}", m.push_s)));
    row("flush, s", c.cells(|m| format!("{:.2}", m.flush_s)));
    row(
        "compaction pass at rest (Silt), s",
        c.cells(|m| {
            m.rest
                .as_ref()
                .map_or("–".into(), |r| format!("{:.1}", r.1))
        }),
    );
    row(
        "stop (SIGTERM to exit), s",
        c.cells(|m| format!("{:.1}", m.stop_s)),
    );
    row(
        "data dir allocated (blocks), MB",
        c.cells(|m| mb(m.disk.allocated)),
    );
    row("data dir files", c.cells(|m| m.disk.files.to_string()));
    row(
        "data dir by top-level entry, MB",
        c.cells(|m| {
            let mut parts: Vec<_> = m.disk.by_top.iter().collect();
            parts.sort_by_key(|p| std::cmp::Reverse(p.1 .0));
            parts
                .iter()
                .map(|(k, v)| format!("{k} {}", mb(v.0)))
                .collect::<Vec<_>>()
                .join(", ")
        }),
    );
    for (i, q) in c.queries.iter().enumerate() {
        row(
            &format!("`{}` answer: series / rows / sum", q.name),
            c.cells(|m| {
                let a = &m.queries[i].answer;
                format!("{} / {} / {}", a.series, a.rows, a.sum)
            }),
        );
    }
    let _ = writeln!(
        o,
        "\nVictoriaLogs answers log queries with JSON lines, so its series count shows 0. \
         Queries (LogQL for Silt and Loki; LogsQL for VictoriaLogs):\n"
    );
    for q in c.queries {
        let step = q
            .step_s
            .map_or(format!("limit {}", q.limit), |s| format!("step {s}s"));
        let _ = writeln!(o, "- `{}`: `{}` ({step}); `{}`", q.name, q.logql, q.logsql);
    }
    for (s, r) in c.results {
        if let Err(e) = r {
            let _ = writeln!(o, "\n**{} failed:** {e}", s.title());
        }
    }
    if !c.warnings.is_empty() {
        let _ = writeln!(o, "\nChecks that did not pass (or notes on them):\n");
        for w in c.warnings {
            let _ = writeln!(o, "- {w}");
        }
    }
}
