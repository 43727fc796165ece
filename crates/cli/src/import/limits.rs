//! The server's limits (`GET /silt/api/v1/limits`), checked before anything is sent:
//! entries the server would refuse as too old, or delete by retention, stop the import
//! with the setting to change named.

use crate::remote::Remote;
use serde_json::Value;
use silt_model::Labels;
use std::time::Duration;

const NS: i64 = 1_000_000_000;

/// What the import needs to know about the server.
#[derive(Clone, Debug)]
pub struct Limits {
    raw: Value,
    pub max_line_size: u64,
    pub truncates: bool,
}

impl Limits {
    /// Loki's defaults, for a server that does not say (or a dry run without one).
    pub fn assumed() -> Limits {
        Limits {
            raw: Value::Null,
            max_line_size: 256 * 1024,
            truncates: false,
        }
    }

    fn secs(&self, key: &str) -> u64 {
        self.raw[key].as_u64().unwrap_or(0)
    }
}

/// The tenant's limits; `Ok(None)` when the server has no such endpoint (not Silt).
pub fn fetch(remote: &Remote) -> Result<Option<Limits>, String> {
    let a = remote.get_answer("/silt/api/v1/limits")?;
    match a.status {
        200 => {
            let raw: Value = serde_json::from_slice(&a.body)
                .map_err(|e| format!("invalid limits from server: {e}"))?;
            Ok(Some(Limits {
                max_line_size: raw["max_line_size"].as_u64().unwrap_or(0),
                truncates: raw["max_line_size_truncate"].as_bool().unwrap_or(false),
                raw,
            }))
        }
        404 => Ok(None),
        s => Err(format!("reading the server's limits: {s} {}", a.text())),
    }
}

fn days(d: i64) -> i64 {
    d.div_euclid(86_400 * NS) + 1
}

fn human(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// Retention of `labels`: the highest-priority matching `retention_stream` rule's period
/// (and its selector), else the tenant's period.
fn retention(l: &Limits, labels: &Labels) -> (u64, String) {
    let mut best: Option<(u64, u64, String)> = None;
    for r in l.raw["retention_stream"].as_array().into_iter().flatten() {
        let sel = r["selector"].as_str().unwrap_or_default();
        let Ok(silt_logql::ast::Expr::Log(e)) = silt_logql::parse(sel) else {
            continue;
        };
        if !e.selector.iter().all(|m| m.matches_labels(labels)) {
            continue;
        }
        let prio = r["priority"].as_u64().unwrap_or(0);
        if best.as_ref().is_none_or(|b| prio > b.0) {
            let period = r["period"].as_u64().unwrap_or(0);
            best = Some((prio, period, format!("limits.retention_stream {sel}")));
        }
    }
    match best {
        Some((_, period, key)) => (period, key),
        None if l.raw["retention_period_overridden"].as_bool() == Some(true) => (
            l.secs("retention_period"),
            format!(
                "overrides.{}.retention_period",
                l.raw["tenant"].as_str().unwrap_or("<tenant>")
            ),
        ),
        None => (l.secs("retention_period"), "limits.retention_period".into()),
    }
}

/// Problems with sending streams whose oldest entries are `oldest` at `now`: each names
/// the setting to change.
pub fn check(l: &Limits, oldest: &[(Labels, i64)], now: i64) -> Vec<String> {
    let mut out = Vec::new();
    let Some(min) = oldest.iter().map(|o| o.1).min() else {
        return out;
    };
    let when = silt_proto::time::format_rfc3339(min);
    if l.raw["reject_old_samples"].as_bool() == Some(true) {
        let max_age = l.secs("reject_old_samples_max_age");
        if min < now - max_age as i64 * NS {
            out.push(format!(
                "entries from {when} ({} days old) are older than the server's limits.reject_old_samples_max_age ({}) and would be refused: set limits.reject_old_samples: false (silt server --reject-old-samples=false) or raise limits.reject_old_samples_max_age above {}d",
                days(now - min),
                human(max_age),
                days(now - min)
            ));
        }
    }
    if l.raw["retention_enabled"].as_bool() == Some(true) {
        let mut seen = std::collections::BTreeSet::new();
        for (labels, t) in oldest {
            let (period, key) = retention(l, labels);
            if period == 0 || *t >= now - period as i64 * NS || !seen.insert(key.clone()) {
                continue;
            }
            out.push(format!(
                "entries of {labels} from {} would be deleted by retention after the import ({key} is {}): raise {key} above {}d (0s keeps data forever) or set compactor.retention_enabled: false",
                silt_proto::time::format_rfc3339(*t),
                human(period),
                days(now - t)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_entries_name_the_setting() {
        let l = Limits {
            raw: serde_json::json!({
                "tenant": "t1", "reject_old_samples": true, "reject_old_samples_max_age": 604800,
                "retention_enabled": true, "retention_period": 86400 * 30,
                "retention_period_overridden": false,
                "retention_stream": [{"selector": "{job=\"keep\"}", "priority": 1, "period": 0}],
            }),
            max_line_size: 0,
            truncates: false,
        };
        let now = 1_800_000_000 * NS;
        let old = now - 60 * 86_400 * NS;
        let keep = Labels::from_pairs([("job", "keep")]);
        let other = Labels::from_pairs([("job", "x")]);
        let p = check(&l, &[(keep.clone(), old)], now);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("limits.reject_old_samples: false"), "{p:?}");
        let p = check(&l, &[(keep, now), (other, old)], now);
        assert!(p[1].contains("limits.retention_period is 30days"), "{p:?}");
        assert!(check(&l, &[], now).is_empty());
        let recent = Labels::from_pairs([("job", "x")]);
        assert!(check(&l, &[(recent, now - NS)], now).is_empty());
    }
}
