//! The six comparison queries (LogQL for Silt and Loki, LogsQL for VictoriaLogs, as in
//! the shared peers README) and a summary of an answer to compare systems by.

use super::Res;
use silt_proto::time::format_rfc3339;
use silt_testkit::enc;

pub struct Query {
    pub name: &'static str,
    pub logql: String,
    pub logsql: String,
    /// `Some(step seconds)` for a metric query, else a log query.
    pub step_s: Option<u64>,
    /// Log queries: LogQL `limit` (and LogsQL `limit` when `vl_limit`).
    pub limit: usize,
    pub vl_limit: bool,
}

/// The six queries; `needle` is the 32-hex-digit token of `needle_all`.
pub fn six(needle: &str) -> Vec<Query> {
    let log = |name, logql: &str, logsql: &str, limit, vl_limit| Query {
        name,
        logql: logql.to_string(),
        logsql: logsql.to_string(),
        step_s: None,
        limit,
        vl_limit,
    };
    let metric = |name, logql: &str, logsql: &str, step| Query {
        name,
        logql: logql.to_string(),
        logsql: logsql.to_string(),
        step_s: Some(step),
        limit: 0,
        vl_limit: false,
    };
    vec![
        log(
            "log_filter",
            r#"{service_name="auth-service"} |= "Session expired""#,
            r#"{service_name="auth-service"} "Session expired""#,
            1000,
            true,
        ),
        log(
            "needle_all",
            &format!(r#"{{cluster=~".+"}} |= "{needle}""#),
            &format!(r#""{needle}""#),
            100,
            false,
        ),
        metric(
            "count_by_svc",
            r#"sum by (service_name) (count_over_time({cluster=~".+"}[5m]))"#,
            "* | stats by (service_name) count()",
            300,
        ),
        metric(
            "json_level",
            r#"sum by (level) (count_over_time({service_name="auth-service"} | json | level="error" [5m]))"#,
            r#"{service_name="auth-service"} | unpack_json | level:=error | stats by (level) count()"#,
            300,
        ),
        metric(
            "regex_rate_topk",
            r#"topk(5, sum by (pod) (rate({env="prod"} |~ "(?i)timeout" [5m])))"#,
            r#"{env="prod"} ~"(?i)timeout" | stats by (pod) count()"#,
            300,
        ),
        metric(
            "logfmt_all",
            r#"sum(count_over_time({cluster=~".+"} | logfmt | __error__="" [1h]))"#,
            "* | unpack_logfmt | stats count()",
            3600,
        ),
    ]
}

/// Which API a request goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Loki's HTTP API (Loki and Silt).
    Loki,
    /// VictoriaLogs' LogsQL API.
    LogsQl,
}

impl Query {
    /// Request path over `[start, end]` (ns).
    pub fn path(&self, api: Api, start: i64, end: i64) -> String {
        match (api, self.step_s) {
            (Api::Loki, Some(step)) => format!(
                "/loki/api/v1/query_range?query={}&start={start}&end={end}&step={step}",
                enc(&self.logql)
            ),
            (Api::Loki, None) => format!(
                "/loki/api/v1/query_range?query={}&start={start}&end={end}&limit={}",
                enc(&self.logql),
                self.limit
            ),
            (Api::LogsQl, Some(step)) => format!(
                "/select/logsql/stats_query_range?query={}&start={}&end={}&step={step}s",
                enc(&self.logsql),
                format_rfc3339(start),
                format_rfc3339(end)
            ),
            (Api::LogsQl, None) => {
                let mut p = format!(
                    "/select/logsql/query?query={}&start={}&end={}",
                    enc(&self.logsql),
                    format_rfc3339(start),
                    format_rfc3339(end)
                );
                if self.vl_limit {
                    p.push_str(&format!("&limit={}", self.limit));
                }
                p
            }
        }
    }
}

/// What an answer is compared by: result series (streams), rows (log lines or points),
/// and the sum of sample values (metric queries; the row count for log queries).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Answer {
    pub series: usize,
    pub rows: usize,
    pub sum: f64,
}

impl Answer {
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Same series and rows, sums equal to 1e-9 relative.
    pub fn agrees(&self, o: &Answer) -> bool {
        let tol = 1e-9 * self.sum.abs().max(o.sum.abs()).max(1.0);
        self.series == o.series && self.rows == o.rows && (self.sum - o.sum).abs() <= tol
    }
}

/// Summarises a response body of `api` for a query of `kind`.
pub fn answer(api: Api, metric: bool, body: &[u8]) -> Res<Answer> {
    if api == Api::LogsQl && !metric {
        // JSON lines, one per log entry.
        let rows = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .count();
        return Ok(Answer {
            series: 0,
            rows,
            sum: rows as f64,
        });
    }
    // Loki's JSON (streams or matrix), which VictoriaLogs' stats_query_range also uses.
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "response is not JSON ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )
    })?;
    let result = v["data"]["result"]
        .as_array()
        .ok_or("response has no data.result array")?;
    let mut a = Answer {
        series: result.len(),
        ..Answer::default()
    };
    for s in result {
        let values = s["values"].as_array().ok_or("a series has no values")?;
        a.rows += values.len();
        for p in values {
            a.sum += if v["data"]["resultType"] == "streams" {
                1.0
            } else {
                p[1].as_str()
                    .and_then(|x| x.parse::<f64>().ok())
                    .ok_or("a sample value is not a number string")?
            };
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let streams = br#"{"status":"success","data":{"resultType":"streams","result":[
            {"stream":{"a":"b"},"values":[["1","x"],["2","y"]]},{"stream":{},"values":[["3","z"]]}]}}"#;
        let a = answer(Api::Loki, false, streams).unwrap();
        assert_eq!((a.series, a.rows, a.sum), (2, 3, 3.0));
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1,"2.5"],[2,"1"]]}]}}"#;
        let m = answer(Api::LogsQl, true, matrix).unwrap();
        assert_eq!((m.series, m.rows, m.sum), (1, 2, 3.5));
        assert!(m.agrees(&Answer {
            sum: 3.5 + 1e-12,
            ..m
        }));
        assert!(!m.agrees(&Answer { rows: 3, ..m }));
        let lines = answer(Api::LogsQl, false, b"{\"_msg\":\"a\"}\n{\"_msg\":\"b\"}\n").unwrap();
        assert_eq!(lines.rows, 2);
        assert!(answer(Api::Loki, true, b"oops").is_err());
    }

    #[test]
    fn paths() {
        let q = six("0123456789abcdef0123456789abcdef");
        assert_eq!(q.len(), 6);
        let p = q[2].path(Api::LogsQl, 0, 3_600_000_000_000);
        assert!(p.contains("start=1970-01-01T00:00:00Z"), "{p}");
        assert!(p.ends_with("step=300s"), "{p}");
        assert!(q[0]
            .path(Api::Loki, 1, 2)
            .ends_with("&start=1&end=2&limit=1000"));
        assert!(!q[1].path(Api::LogsQl, 1, 2).contains("limit"));
    }
}
