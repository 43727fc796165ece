//! Evaluation: each group on its interval, each rule as an instant query at the
//! evaluation time; alerting rules' alerts kept across evaluations (and restarts:
//! `state.rs`) and sent to Alertmanager (v2 API), recording rules' samples queued for
//! remote write (`remote_write.rs`); never in the way of pushes or queries (its own task,
//! the engine on blocking threads like any query, notifications with a timeout).

use super::remote_write::{record_samples, RemoteWriter};
use crate::app::AppState;
use crate::query::{evaluate, Run};
use serde_json::json;
use silt_query::QueryResult;
use silt_ruler::{Alert, AlertState, RuleAlerts, RuleGroup};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (tenant, namespace, group).
pub(crate) type GroupKey = (String, String, String);

/// What the last evaluation of a rule gave.
#[derive(Default, Clone)]
pub(crate) struct RuleEval {
    /// Empty when it succeeded.
    pub last_error: String,
    /// Wall-clock time of the evaluation (ns); 0: never.
    pub at: i64,
    pub took: Duration,
    pub alerts: RuleAlerts,
}

/// A group's evaluations, rule by rule (by position).
#[derive(Default, Clone)]
pub(crate) struct GroupEval {
    pub next: i64,
    pub at: i64,
    pub took: Duration,
    pub rules: Vec<RuleEval>,
    /// The group's rules when last evaluated: a changed group starts afresh.
    pub seen: Option<RuleGroup>,
}

/// Runs the evaluator until the process ends.
pub(crate) fn spawn(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    tokio::spawn(async move {
        let writer = RemoteWriter::start(&state);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut held = false;
        loop {
            tick.tick().await;
            // A backend evaluates only while it holds the lease (one evaluator per bucket).
            if let Some(lease) = state.store.lease() {
                let now = lease.is_held();
                if now && !held {
                    // Taking over: the rules and alert states as the bucket has them now
                    // (set through another backend since this one started).
                    if let Err(e) = state.rules.load(state.cfg.ruler.local_directory()).await {
                        tracing::error!(error = %e, "rules not reloaded on taking the lease");
                    }
                }
                held = now;
                if !held {
                    continue;
                }
            }
            let default = state.cfg.ruler.evaluation_interval.as_nanos() as i64;
            for (tenant, namespaces) in state.rules.all() {
                for (ns, groups) in namespaces {
                    for g in groups {
                        let key = (tenant.clone(), ns.clone(), g.name.clone());
                        let now = crate::params::now_ns();
                        let due = state
                            .rules
                            .evals
                            .lock()
                            .get(&key)
                            .is_none_or(|e| now >= e.next);
                        if due {
                            let ctx = (&client, writer.as_ref());
                            run_group(&state, ctx, &key, &g, now, default).await;
                        }
                    }
                }
            }
            state.rules.forget_removed();
        }
    })
}

async fn run_group(
    state: &Arc<AppState>,
    (client, writer): (&reqwest::Client, Option<&RemoteWriter>),
    key: &GroupKey,
    g: &RuleGroup,
    now: i64,
    default_interval: i64,
) {
    let interval = g.interval_ns(default_interval);
    let mut ev = state
        .rules
        .evals
        .lock()
        .get(key)
        .cloned()
        .unwrap_or_default();
    if ev.seen.as_ref() != Some(g) {
        ev = GroupEval {
            rules: vec![RuleEval::default(); g.rules.len()],
            seen: Some(g.clone()),
            ..Default::default()
        };
        // First evaluation since the start: alerts saved before it, if the group is the same.
        if let Some(saved) = state.rules.states.take(key, g, now) {
            for (re, alerts) in ev.rules.iter_mut().zip(saved) {
                re.alerts = alerts;
            }
        }
    }
    let started = Instant::now();
    let mut to_send = Vec::new();
    for (rule, re) in g.rules.iter().zip(ev.rules.iter_mut()) {
        let t = Instant::now();
        re.at = now;
        let outcome = instant(state, &key.0, rule, now).await.and_then(|r| {
            // As Prometheus: past the group's limit the rule fails and its alerts go.
            if g.limit > 0 && r.len() as u64 > g.limit {
                re.alerts = RuleAlerts::default();
                return Err(format!(
                    "exceeded limit of {} with {} series",
                    g.limit,
                    r.len()
                ));
            }
            Ok(r)
        });
        // Recording rules: samples to the remote-write queues (appended, never awaited).
        let outcome = match (outcome, &rule.record, writer) {
            (Ok(r), Some(_), Some(w)) => {
                record_samples(rule, &key.0, now / 1_000_000, r).map(|samples| {
                    w.push(&state.metrics, &samples);
                    Vec::new()
                })
            }
            (other, _, _) => other,
        };
        match outcome {
            Ok(results) => {
                re.last_error.clear();
                if rule.alert.is_some() {
                    re.alerts.update(rule, now, results);
                    let resend = state.cfg.ruler.resend_delay.as_nanos() as i64;
                    to_send.extend(re.alerts.due(now, resend));
                }
            }
            Err(e) => {
                state.metrics.ruler_evaluation_failures.inc();
                tracing::warn!(tenant = %key.0, namespace = %key.1, group = %key.2, rule = rule.name(), error = %e, "rule evaluation failed");
                re.last_error = e;
            }
        }
        re.took = t.elapsed();
        state.metrics.ruler_evaluations.inc();
    }
    ev.at = now;
    ev.took = started.elapsed();
    state
        .metrics
        .ruler_group_duration
        .observe(ev.took.as_secs_f64());
    // Aligned to the interval, so evaluations do not drift.
    ev.next = (now / interval + 1) * interval;
    state.rules.evals.lock().insert(key.clone(), ev);
    if !to_send.is_empty() {
        notify(state, client, &key.0, &to_send, interval).await;
    }
    state.rules.save_alert_state(&key.0).await;
}

/// The rule's expression as an instant query at `at`: result series and values.
async fn instant(
    state: &Arc<AppState>,
    tenant: &str,
    rule: &silt_ruler::Rule,
    at: i64,
) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> {
    let expr = rule.parsed_expr()?;
    let run = Run {
        tenant: tenant.to_string(),
        expr,
        start: at,
        end: at,
        step: 0,
        interval: 0,
        limit: 100,
        direction: silt_model::Direction::Backward,
        instant: true,
        categorize: false,
    };
    let done = evaluate(state, "ruler", run).await.map_err(|e| e.message)?;
    match done.result {
        QueryResult::Vector(v) => Ok(v
            .into_iter()
            .map(|s| {
                let labels = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (labels, s.value)
            })
            .collect()),
        QueryResult::Scalar(_, v) => Ok(vec![(BTreeMap::new(), v)]),
        _ => Err("rule result is not a vector or scalar".into()),
    }
}

/// RFC 3339 in UTC with milliseconds (what Alertmanager and Prometheus print).
pub(crate) fn rfc3339(ns: i64) -> String {
    let (secs, ms) = (
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) / 1_000_000,
    );
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Posts alerts to every Alertmanager, as Prometheus does: firing ones with an end
/// 4 intervals (or resend delays) ahead, so they expire if Silt stops sending; resolved
/// ones ending at their resolution.
async fn notify(
    state: &Arc<AppState>,
    client: &reqwest::Client,
    tenant: &str,
    alerts: &[Alert],
    interval: i64,
) {
    let urls = state.cfg.ruler.alertmanager_urls();
    if urls.is_empty() {
        return;
    }
    let resend = state.cfg.ruler.resend_delay.as_nanos() as i64;
    let body: Vec<_> = alerts
        .iter()
        .map(|a| {
            let ends = match a.state {
                AlertState::Inactive => a.resolved_at.unwrap_or(a.last_seen),
                _ => a.last_seen + 4 * interval.max(resend),
            };
            json!({
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.fired_at.unwrap_or(a.active_at)),
                "endsAt": rfc3339(ends),
            })
        })
        .collect();
    for url in urls {
        let mut delay = Duration::from_millis(200);
        for attempt in 0..3 {
            let r = client
                .post(format!("{url}/api/v2/alerts"))
                .header("X-Scope-OrgID", tenant)
                .json(&body)
                .send()
                .await;
            match r {
                Ok(resp) if resp.status().is_success() => {
                    state.metrics.ruler_alerts_sent.inc_by(alerts.len() as u64);
                    break;
                }
                Ok(resp) if attempt == 2 || resp.status().is_client_error() => {
                    tracing::warn!(%url, status = %resp.status(), "alertmanager refused alerts");
                    state.metrics.ruler_notifications_failed.inc();
                    break;
                }
                Err(e) if attempt == 2 => {
                    tracing::warn!(%url, error = %e, "alertmanager unreachable");
                    state.metrics.ruler_notifications_failed.inc();
                    break;
                }
                _ => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }
}

/// A group's rules' evaluation state for the read API, if it was evaluated.
pub(crate) fn snapshot(state: &AppState, key: &GroupKey) -> Option<GroupEval> {
    state.rules.evals.lock().get(key).cloned()
}

/// For the alerts list: every active alert of `tenant`.
pub(crate) fn active_alerts(state: &AppState, tenant: &str) -> Vec<Alert> {
    let evals = state.rules.evals.lock();
    let mut out: Vec<Alert> = evals
        .iter()
        .filter(|(k, _)| k.0 == tenant)
        .flat_map(|(_, g)| g.rules.iter().flat_map(|r| r.alerts.active().cloned()))
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

pub(crate) type Evals = parking_lot::Mutex<HashMap<GroupKey, GroupEval>>;

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339(1_796_291_381_080_981_521),
            "2026-12-03T09:49:41.080Z"
        );
        assert_eq!(
            super::rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
