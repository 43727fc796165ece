//! The rules config API (`/loki/api/v1/rules`, `/api/prom/rules`: YAML in and out) and
//! the Prometheus-style read API Grafana lists rules and alerts with
//! (`/prometheus/api/v1/rules`, `/prometheus/api/v1/alerts`).

use super::Refused;
use crate::app::{json, tenant, ApiError, AppState};
use crate::params::Params;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json as j, Value};
use silt_ruler::{Alert, AlertState};
use std::sync::Arc;

fn yaml<T: serde::Serialize>(v: &T) -> Result<Response, ApiError> {
    let body = serde_yaml::to_string(v).map_err(|e| ApiError::new(500, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/yaml")], body).into_response())
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        json(r#"{"status":"success","data":null,"errorType":"","error":""}"#.into()),
    )
        .into_response()
}

fn refused(r: Refused) -> ApiError {
    match r {
        Refused::NotFound(m) => ApiError::new(404, m),
        Refused::ReadOnly => ApiError::bad_request(
            "this namespace comes from the read-only rules directory (ruler.storage.local.directory)",
        ),
        Refused::Store(e) => ApiError::new(500, format!("storing the rules failed: {e}")),
    }
}

/// `GET /loki/api/v1/rules`: every namespace of the tenant.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let all = state.rules.tenant(&tenant(&state, &headers)?);
    if all.is_empty() {
        return Err(ApiError::new(404, "no rule groups found"));
    }
    yaml(&all)
}

/// `GET …/rules/{namespace}`.
pub(crate) async fn get_namespace(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    let mut all = state.rules.tenant(&tenant(&state, &headers)?);
    let Some(groups) = all.remove(&ns) else {
        return Err(ApiError::new(404, "no rule groups found"));
    };
    yaml(&std::collections::BTreeMap::from([(ns, groups)]))
}

/// `POST …/rules/{namespace}`: one group in YAML, added or replacing the group of its name.
pub(crate) async fn set_group(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    let group = silt_ruler::parse_group(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    state
        .rules
        .set_group(&tenant, &ns, group)
        .await
        .map_err(refused)?;
    Ok(accepted())
}

/// `DELETE …/rules/{namespace}`.
pub(crate) async fn delete_namespace(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    state
        .rules
        .delete(&tenant, &ns, None)
        .await
        .map_err(refused)?;
    Ok(accepted())
}

/// `GET …/rules/{namespace}/{group}`.
pub(crate) async fn get_group(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let all = state.rules.tenant(&tenant(&state, &headers)?);
    let group = all
        .get(&ns)
        .and_then(|gs| gs.iter().find(|g| g.name == name))
        .ok_or_else(|| ApiError::new(404, "group does not exist"))?;
    yaml(group)
}

/// `DELETE …/rules/{namespace}/{group}`.
pub(crate) async fn delete_group(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    state
        .rules
        .delete(&tenant, &ns, Some(&name))
        .await
        .map_err(refused)?;
    Ok(accepted())
}

fn prom_error(status: u16, kind: &str, msg: &str) -> Response {
    let body = j!({"status": "error", "errorType": kind, "error": msg}).to_string();
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (code, json(body)).into_response()
}

/// Values of a repeated parameter, written `name` or `name[]`.
fn all(p: &Params, name: &str) -> Vec<String> {
    [name.to_string(), format!("{name}[]")]
        .iter()
        .filter_map(|k| p.get(k))
        .flatten()
        .cloned()
        .collect()
}

/// `GET /prometheus/api/v1/rules`: groups and rules as Prometheus lists them, with the
/// `type`, `file`, `rule_group` and `rule_name` filters, with each rule's last
/// evaluation and alerts.
pub(crate) async fn prom_rules(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let tenant = match tenant(&state, &headers) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let p = crate::query::collect_params(q, &Bytes::new());
    let kind = all(&p, "type").pop().unwrap_or_default();
    let want_alerts = match kind.as_str() {
        "" => None,
        "alert" => Some(true),
        "record" => Some(false),
        other => {
            return prom_error(
                400,
                "bad_data",
                &format!("unsupported rule type {other:?}: use alert or record"),
            )
        }
    };
    let (files, groups, names) = (all(&p, "file"), all(&p, "rule_group"), all(&p, "rule_name"));
    let never = "0001-01-01T00:00:00Z".to_string();
    let when = |ns: i64| {
        if ns == 0 {
            never.clone()
        } else {
            super::eval::rfc3339(ns)
        }
    };
    let mut out = Vec::new();
    for (ns, gs) in state.rules.tenant(&tenant) {
        if !files.is_empty() && !files.contains(&ns) {
            continue;
        }
        for g in gs {
            if !groups.is_empty() && !groups.contains(&g.name) {
                continue;
            }
            let key = (tenant.clone(), ns.clone(), g.name.clone());
            let ev = super::eval::snapshot(&state, &key).filter(|e| e.seen.as_ref() == Some(&g));
            let rules: Vec<Value> = g
                .rules
                .iter()
                .enumerate()
                .filter(|(_, r)| want_alerts.is_none_or(|a| a == r.alert.is_some()))
                .filter(|(_, r)| names.is_empty() || names.iter().any(|n| n == r.name()))
                .map(|(i, r)| {
                    let re = ev
                        .as_ref()
                        .and_then(|e| e.rules.get(i))
                        .cloned()
                        .unwrap_or_default();
                    let health = match (re.at, re.last_error.is_empty()) {
                        (0, _) => "unknown",
                        (_, true) => "ok",
                        _ => "err",
                    };
                    let common = (
                        health,
                        re.last_error.clone(),
                        when(re.at),
                        re.took.as_secs_f64(),
                    );
                    match &r.alert {
                        Some(name) => {
                            let alerts: Vec<Value> = re.alerts.active().map(alert_json).collect();
                            let firing = re.alerts.active().any(|a| a.state == AlertState::Firing);
                            let pending = re.alerts.active().next().is_some();
                            let st = if firing {
                                "firing"
                            } else if pending {
                                "pending"
                            } else {
                                "inactive"
                            };
                            j!({
                                "state": st, "name": name, "query": r.expr,
                                "duration": r.for_ns() as f64 / 1e9,
                                "keepFiringFor": r.keep_firing_for_ns() as f64 / 1e9,
                                "labels": r.labels, "annotations": r.annotations, "alerts": alerts,
                                "health": common.0, "lastError": common.1, "type": "alerting",
                                "lastEvaluation": common.2, "evaluationTime": common.3,
                            })
                        }
                        None => j!({
                            "name": r.record, "query": r.expr, "labels": r.labels,
                            "health": common.0, "lastError": common.1, "type": "recording",
                            "lastEvaluation": common.2, "evaluationTime": common.3,
                        }),
                    }
                })
                .collect();
            if rules.is_empty() && (want_alerts.is_some() || !names.is_empty()) {
                continue;
            }
            let interval =
                g.interval_ns(state.cfg.ruler.evaluation_interval.as_nanos() as i64) as f64 / 1e9;
            let (at, took) = ev.map(|e| (e.at, e.took.as_secs_f64())).unwrap_or((0, 0.0));
            out.push(j!({
                "name": g.name, "file": ns, "rules": rules, "interval": interval,
                "limit": g.limit, "lastEvaluation": when(at), "evaluationTime": took,
            }));
        }
    }
    let body = j!({"status": "success", "data": {"groups": out}, "errorType": "", "error": ""});
    json(body.to_string())
}

/// Prometheus's JSON of one alert.
fn alert_json(a: &Alert) -> Value {
    j!({
        "labels": a.labels, "annotations": a.annotations, "state": a.state.as_str(),
        "activeAt": super::eval::rfc3339(a.active_at), "value": format!("{:e}", a.value),
    })
}

/// `GET /prometheus/api/v1/alerts`: the tenant's pending and firing alerts.
pub(crate) async fn prom_alerts(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    let tenant = match tenant(&state, &headers) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let alerts: Vec<Value> = super::eval::active_alerts(&state, &tenant)
        .iter()
        .map(alert_json)
        .collect();
    let body = j!({"status": "success", "data": {"alerts": alerts}, "errorType": "", "error": ""});
    json(body.to_string())
}
