//! logcli's verbs against a running server: `query` (paged past the server's limit per
//! request), `instant-query`, `labels` and `series`, with logcli's flags and output.

use crate::gofmt;
use crate::remote::{ConnArgs, Remote};
use clap::{Args, ValueEnum};
use serde_json::Value;
use silt_gotime::Location;
use std::io::{IsTerminal, Write};

/// How log lines are printed.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Timestamp, labels (those not common to all streams) and line.
    Default,
    /// The line alone.
    Raw,
    /// One JSON object per line: labels, line, timestamp.
    Jsonl,
}

/// How results are shown.
#[derive(Args, Clone, Debug)]
pub struct OutArgs {
    /// Output format of log lines.
    #[arg(long, short = 'o', value_enum, default_value = "default")]
    pub output: Output,
    /// Time zone of printed timestamps: Local or UTC (or an IANA name).
    #[arg(long, short = 'z', default_value = "Local")]
    pub timezone: String,
    /// Do not print labels (default output) or the labels field (jsonl).
    #[arg(long)]
    pub no_labels: bool,
    /// Labels never printed (repeatable).
    #[arg(long)]
    pub exclude_label: Vec<String>,
    /// The only labels printed (repeatable).
    #[arg(long)]
    pub include_label: Vec<String>,
    /// Pad labels to at least this many characters.
    #[arg(long, default_value_t = 0)]
    pub labels_length: usize,
    /// Colour timestamps and labels even when stdout is not a terminal.
    #[arg(long)]
    pub colored_output: bool,
}

/// Time range flags: `--since` back from `--to` (now), or `--from`.
#[derive(Args, Clone, Debug)]
pub struct RangeArgs {
    /// How far back to look from --to.
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// Start (RFC3339; without an offset it is read in --timezone).
    #[arg(long)]
    pub from: Option<String>,
    /// End, exclusive (RFC3339), default now.
    #[arg(long)]
    pub to: Option<String>,
}

/// What `query` and `instant-query` share.
#[derive(Args, Debug)]
pub struct Common {
    /// LogQL query.
    pub query: String,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub out: OutArgs,
    /// Most lines to print.
    #[arg(long, default_value_t = 30)]
    pub limit: usize,
    /// Oldest lines first.
    #[arg(long)]
    pub forward: bool,
}

impl Common {
    fn direction(&self) -> String {
        if self.forward { "FORWARD" } else { "BACKWARD" }.to_string()
    }
}

/// `silt query`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Lines per request; more are fetched page by page.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Step of metric queries (e.g. 30s).
    #[arg(long)]
    pub step: Option<String>,
    /// Smallest gap between returned lines of a stream.
    #[arg(long)]
    pub interval: Option<String>,
    /// Follow new lines as they arrive (live tail over a WebSocket), after the last
    /// --limit lines of --since.
    #[arg(long, short = 't')]
    pub tail: bool,
    /// With --tail: seconds the server waits for late entries before sending.
    #[arg(long, default_value_t = 0)]
    pub delay_for: u64,
}

/// `silt instant-query`.
#[derive(Args, Debug)]
pub struct InstantArgs {
    #[command(flatten)]
    pub common: Common,
    /// Evaluation time (RFC3339), default now.
    #[arg(long)]
    pub now: Option<String>,
}

/// Server and time range of the index verbs (`labels`, `series`, `stats`, `volume`).
#[derive(Args, Debug)]
pub struct Scope {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Time zone of --from/--to without an offset.
    #[arg(long, short = 'z', default_value = "Local")]
    pub timezone: String,
}

impl Scope {
    /// The connection and `[start, end)`.
    fn open(&self) -> Result<(Remote, i64, i64), String> {
        let (start, end) = self.range.resolve(&location(&self.timezone)?)?;
        Ok((Remote::new(&self.conn)?, start, end))
    }
}

/// `silt labels`.
#[derive(Args, Debug)]
pub struct LabelsArgs {
    /// A label name: print its values instead of the names.
    pub label: Option<String>,
    #[command(flatten)]
    pub scope: Scope,
}

/// `silt series`.
#[derive(Args, Debug)]
pub struct SeriesArgs {
    /// Stream selector, e.g. '{app="api"}'.
    pub matcher: String,
    #[command(flatten)]
    pub scope: Scope,
}

fn location(name: &str) -> Result<Location, String> {
    match name {
        "Local" => Ok(Location::Zone(jiff::tz::TimeZone::system())),
        n => Location::load(n).ok_or_else(|| format!("unknown time zone {n:?}")),
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// RFC3339 with or without an offset (then in `loc`), or Unix nanoseconds.
fn parse_time(s: &str, loc: &Location) -> Result<i64, String> {
    if let Ok(ns) = s.parse::<i64>() {
        return Ok(ns);
    }
    for layout in [gofmt::RFC3339_NANO, "2006-01-02T15:04:05.999999999"] {
        if let Ok(t) = silt_gotime::parse(layout, s, loc, 0) {
            return Ok(t.unix_nanos());
        }
    }
    Err(format!(
        "invalid time {s:?}: use RFC3339, e.g. 2024-01-02T15:04:05Z"
    ))
}

fn duration_ns(s: &str) -> Result<i64, String> {
    humantime::parse_duration(s)
        .map(|d| d.as_nanos() as i64)
        .map_err(|e| format!("invalid duration {s:?}: {e}"))
}

impl RangeArgs {
    fn resolve(&self, loc: &Location) -> Result<(i64, i64), String> {
        let end = match &self.to {
            Some(t) => parse_time(t, loc)?,
            None => now_ns(),
        };
        let start = match &self.from {
            Some(f) => parse_time(f, loc)?,
            None => end - duration_ns(&self.since)?,
        };
        Ok((start, end))
    }
}

/// Labels as name/value pairs.
type Pairs = Vec<(String, String)>;

/// One entry of a streams result, with the labels it is printed with.
struct Row {
    ts: i64,
    line: String,
    labels: Pairs,
}

/// A JSON object of string values (a stream's or a series' labels) as pairs.
fn pairs(o: &Value) -> Pairs {
    o.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// Labels as Prometheus prints them.
fn label_text(labels: &[(String, String)]) -> String {
    gofmt::label_set(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// A result stream's labels and entries `(ts, line)`.
fn parse_stream(s: &Value) -> Result<(Pairs, Vec<(i64, String)>), String> {
    let values = s["values"]
        .as_array()
        .ok_or("streams result without values")?;
    let entries = values
        .iter()
        .map(|v| {
            let ts = v[0]
                .as_str()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or("entry without a timestamp")?;
            Ok((ts, v[1].as_str().unwrap_or_default().to_string()))
        })
        .collect::<Result<_, String>>()?;
    Ok((pairs(&s["stream"]), entries))
}

/// Prints log entries as logcli does.
struct Printer<'a> {
    out: &'a OutArgs,
    loc: Location,
    quiet: bool,
    color: bool,
    stdout: std::io::StdoutLock<'static>,
}

impl Printer<'_> {
    fn new(out: &OutArgs, quiet: bool) -> Result<Printer<'_>, String> {
        let stdout = std::io::stdout();
        let color =
            out.colored_output || (stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none());
        Ok(Printer {
            out,
            loc: location(&out.timezone)?,
            quiet,
            color,
            stdout: stdout.lock(),
        })
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Prints a streams result in time order, skipping entries already printed at the
    /// previous page's last timestamp; returns how many it printed and the entries at
    /// its own last timestamp.
    fn streams(
        &mut self,
        result: &[Value],
        forward: bool,
        last: &[(i64, String)],
    ) -> Result<(usize, Vec<(i64, String)>), String> {
        let streams = result
            .iter()
            .map(parse_stream)
            .collect::<Result<Vec<_>, _>>()?;
        // Labels every stream has with the same value are said once, on stderr.
        let mut common: Vec<(String, String)> =
            streams.first().map(|s| s.0.clone()).unwrap_or_default();
        for (labels, _) in &streams[1.min(streams.len())..] {
            common.retain(|c| labels.contains(c));
        }
        if !self.out.include_label.is_empty() {
            common.retain(|(k, _)| !self.out.include_label.contains(k));
        }
        if !common.is_empty() && !self.quiet {
            eprintln!("Common labels: {}", self.paint("31", &label_text(&common)));
        }
        let mut rows = Vec::new();
        let mut width = self.out.labels_length;
        for (labels, entries) in streams {
            let shown: Pairs = labels
                .into_iter()
                .filter(|l| !common.contains(l))
                .filter(|(k, _)| self.shows(k))
                .collect();
            width = width.max(label_text(&shown).len());
            for (ts, line) in entries {
                rows.push(Row {
                    ts,
                    line,
                    labels: shown.clone(),
                });
            }
        }
        if rows.is_empty() {
            return Ok((0, Vec::new()));
        }
        if forward {
            rows.sort_by_key(|r| r.ts);
        } else {
            rows.sort_by_key(|r| std::cmp::Reverse(r.ts));
        }
        let mut printed = 0;
        for r in &rows {
            if last.iter().any(|(ts, line)| *ts == r.ts && *line == r.line) {
                continue;
            }
            self.row(r, width)?;
            printed += 1;
        }
        let end = rows[rows.len() - 1].ts;
        let at_end = rows
            .iter()
            .filter(|r| r.ts == end)
            .map(|r| (r.ts, r.line.clone()))
            .collect();
        Ok((printed, at_end))
    }

    /// Prints a live tail frame: each stream's entries as they came, with the stream's own
    /// labels (no common ones taken out, no padding); dropped entries are said on stderr.
    fn tail_frame(&mut self, frame: &Value) -> Result<(), String> {
        for s in frame["streams"].as_array().into_iter().flatten() {
            let (labels, entries) = parse_stream(s)?;
            let labels: Pairs = labels.into_iter().filter(|(k, _)| self.shows(k)).collect();
            for (ts, line) in entries {
                let row = Row {
                    ts,
                    line,
                    labels: labels.clone(),
                };
                self.row(&row, 0)?;
            }
        }
        self.stdout.flush().map_err(|e| e.to_string())?;
        if let Some(dropped) = frame["dropped_entries"]
            .as_array()
            .filter(|d| !d.is_empty())
        {
            eprintln!("Server dropped following entries due to slow client");
            for d in dropped {
                eprintln!("{} {}", d["timestamp"], d["labels"]);
            }
        }
        Ok(())
    }

    /// Whether `--include-label` / `--exclude-label` let label `k` be printed.
    fn shows(&self, k: &String) -> bool {
        (self.out.include_label.is_empty() || self.out.include_label.contains(k))
            && !self.out.exclude_label.contains(k)
    }

    fn row(&mut self, r: &Row, width: usize) -> Result<(), String> {
        let text = match self.out.output {
            Output::Raw => r.line.clone(),
            Output::Jsonl => {
                let mut o = serde_json::Map::new();
                o.insert("line".into(), Value::String(r.line.clone()));
                let ts = gofmt::time(r.ts, &self.loc, gofmt::RFC3339_NANO);
                o.insert("timestamp".into(), Value::String(ts));
                if !self.out.no_labels {
                    let l = r
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())));
                    o.insert("labels".into(), Value::Object(l.collect()));
                }
                gofmt::json(&Value::Object(o), None)
            }
            Output::Default => {
                let ts = self.paint("34", &gofmt::time(r.ts, &self.loc, gofmt::RFC3339));
                let line = r.line.trim();
                if self.out.no_labels {
                    format!("{ts} {line}")
                } else {
                    let l = label_text(&r.labels);
                    let pad = " ".repeat(width.saturating_sub(l.len()));
                    format!("{ts} {}{pad} {line}", self.paint("31", &l))
                }
            }
        };
        writeln!(self.stdout, "{text}").map_err(|e| e.to_string())
    }

    /// A matrix, vector or scalar as logcli prints it: indented JSON, no final newline.
    fn json(&mut self, result: &Value) -> Result<(), String> {
        write!(self.stdout, "{}", gofmt::json(result, Some("  "))).map_err(|e| e.to_string())
    }
}

/// `silt query`: a range query, paged `--batch` lines at a time up to `--limit`.
pub fn query(a: &QueryArgs) -> Result<(), String> {
    let c = &a.common;
    let remote = Remote::new(&c.conn)?;
    let mut p = Printer::new(&c.out, c.conn.quiet)?;
    let (mut start, mut end) = a.range.resolve(&p.loc)?;
    if a.tail {
        let params = [
            ("query", c.query.clone()),
            ("limit", c.limit.to_string()),
            ("start", start.to_string()),
            ("delay_for", a.delay_for.to_string()),
        ];
        let mut socket = remote.websocket("/loki/api/v1/tail", &params)?;
        loop {
            match socket.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    let frame: Value =
                        serde_json::from_str(&t).map_err(|e| format!("invalid tail frame: {e}"))?;
                    p.tail_frame(&frame)?;
                }
                Ok(tungstenite::Message::Close(_)) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("Error reading stream: {e}")),
            }
        }
    }
    let batch = a.batch.min(c.limit).max(1);
    let (mut total, mut last) = (0usize, Vec::new());
    while total < c.limit {
        // The page boundary is inclusive: entries at the last timestamp come again and
        // are skipped, so ask for that many more.
        let size = if c.limit - total < batch {
            c.limit - total + last.len()
        } else {
            batch
        };
        let mut params = vec![
            ("query", c.query.clone()),
            ("limit", size.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("direction", c.direction()),
        ];
        if let Some(s) = &a.step {
            params.push(("step", s.clone()));
        }
        if let Some(i) = &a.interval {
            params.push(("interval", i.clone()));
        }
        let resp = remote.get("/loki/api/v1/query_range", &params)?;
        let data = &resp["data"];
        if data["resultType"] != "streams" {
            return p.json(&data["result"]);
        }
        let result = data["result"].as_array().cloned().unwrap_or_default();
        let (printed, at_end) = p.streams(&result, c.forward, &last)?;
        if printed == 0 || at_end.is_empty() || printed == c.limit {
            break;
        }
        if at_end.len() >= batch {
            return Err(format!(
                "{} entries share the timestamp that ends a page of {batch}: raise --batch above {}",
                at_end.len(),
                at_end.len()
            ));
        }
        total += printed;
        if c.forward {
            start = at_end[0].0;
        } else {
            end = at_end[0].0 + 1;
        }
        last = at_end;
    }
    Ok(())
}

/// `silt instant-query`.
pub fn instant(a: &InstantArgs) -> Result<(), String> {
    let c = &a.common;
    let remote = Remote::new(&c.conn)?;
    let mut p = Printer::new(&c.out, c.conn.quiet)?;
    let time = match &a.now {
        Some(t) => parse_time(t, &p.loc)?,
        None => now_ns(),
    };
    let params = [
        ("query", c.query.clone()),
        ("limit", c.limit.to_string()),
        ("time", time.to_string()),
        ("direction", c.direction()),
    ];
    let resp = remote.get("/loki/api/v1/query", &params)?;
    let data = &resp["data"];
    if data["resultType"] == "streams" {
        let result = data["result"].as_array().cloned().unwrap_or_default();
        p.streams(&result, c.forward, &[])?;
        Ok(())
    } else {
        p.json(&data["result"])
    }
}

/// `silt labels [name]`.
pub fn labels(a: &LabelsArgs) -> Result<(), String> {
    let (remote, start, end) = a.scope.open()?;
    let path = match &a.label {
        Some(name) => format!("/loki/api/v1/label/{name}/values"),
        None => "/loki/api/v1/labels".to_string(),
    };
    let params = [("start", start.to_string()), ("end", end.to_string())];
    let resp = remote.get(&path, &params)?;
    let mut out = std::io::stdout().lock();
    for v in resp["data"].as_array().into_iter().flatten() {
        writeln!(out, "{}", v.as_str().unwrap_or_default()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `silt series <matcher>`.
pub fn series(a: &SeriesArgs) -> Result<(), String> {
    let (remote, start, end) = a.scope.open()?;
    let params = [
        ("match[]", a.matcher.clone()),
        ("start", start.to_string()),
        ("end", end.to_string()),
    ];
    let resp = remote.get("/loki/api/v1/series", &params)?;
    let mut out = std::io::stdout().lock();
    for s in resp["data"].as_array().into_iter().flatten() {
        writeln!(out, "{}", label_text(&pairs(s))).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `silt stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Stream selector.
    pub query: String,
    #[command(flatten)]
    pub scope: Scope,
}

/// `silt volume` and `silt volume_range`.
#[derive(Args, Debug)]
pub struct VolumeArgs {
    /// Stream selector.
    pub query: String,
    #[command(flatten)]
    pub scope: Scope,
    /// Most series to return volumes for.
    #[arg(long, default_value_t = 30)]
    pub limit: usize,
    /// Aggregate by these labels (repeatable).
    #[arg(long = "targetLabels")]
    pub target_labels: Vec<String>,
    /// Aggregate by label names only.
    #[arg(long = "aggregateByLabels")]
    pub aggregate_by_labels: bool,
    /// Step of `volume_range`.
    #[arg(long, default_value = "1h")]
    pub step: String,
}

/// `silt stats <selector>`: streams, chunks, bytes and entries the index holds.
pub fn stats(a: &StatsArgs) -> Result<(), String> {
    let (remote, start, end) = a.scope.open()?;
    let params = [
        ("query", a.query.clone()),
        ("start", start.to_string()),
        ("end", end.to_string()),
    ];
    let r = remote.get("/loki/api/v1/index/stats", &params)?;
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    println!(
        "{{\n  bytes: {}\n  chunks: {}\n  streams: {}\n  entries: {}\n}}",
        silt_logql::units::humanize_bytes(n("bytes")),
        n("chunks"),
        n("streams"),
        n("entries")
    );
    Ok(())
}

/// `silt volume <selector>` (`range: false`) or `silt volume_range <selector>`.
pub fn volume(a: &VolumeArgs, range: bool) -> Result<(), String> {
    let (remote, start, end) = a.scope.open()?;
    let mut params = vec![
        ("query", a.query.clone()),
        ("start", start.to_string()),
        ("end", end.to_string()),
        ("limit", a.limit.to_string()),
        (
            "aggregateBy",
            if a.aggregate_by_labels {
                "labels"
            } else {
                "series"
            }
            .to_string(),
        ),
    ];
    if !a.target_labels.is_empty() {
        params.push(("targetLabels", a.target_labels.join(",")));
    }
    let path = if range {
        params.push(("step", a.step.clone()));
        "/loki/api/v1/index/volume_range"
    } else {
        "/loki/api/v1/index/volume"
    };
    let r = remote.get(path, &params)?;
    print!("{}", gofmt::json(&r["data"]["result"], Some("  ")));
    Ok(())
}
