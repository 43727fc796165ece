//! An alerting rule's alerts across evaluations: Prometheus's state machine (inactive →
//! pending for `for` → firing; `keep_firing_for`; resolved alerts kept a while so their
//! resolution is sent), and which alerts to send to Alertmanager when.

use crate::template::expand;
use crate::Rule;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Resolved alerts are kept (and re-sent) this long, as Prometheus does.
const RESOLVED_RETENTION_NS: i64 = 15 * 60 * 1_000_000_000;

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Its condition holds, for less than the rule's `for`.
    Pending,
    /// Its condition held for `for`.
    Firing,
    /// Resolved: its condition no longer holds.
    Inactive,
}

impl AlertState {
    /// Prometheus's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Inactive => "inactive",
        }
    }
}

/// One alert of a rule: one result series.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Series labels, the rule's (templated) labels and `alertname`.
    pub labels: BTreeMap<String, String>,
    /// Templated annotations.
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    /// When its condition first held (ns).
    pub active_at: i64,
    /// When it started firing (ns).
    pub fired_at: Option<i64>,
    /// When it was resolved (ns).
    pub resolved_at: Option<i64>,
    /// Last evaluation whose result had it (ns).
    pub last_seen: i64,
    /// The value of that result.
    pub value: f64,
    /// When it was last sent to Alertmanager (ns).
    pub last_sent: Option<i64>,
}

/// What is kept of an alert across a restart: its clock and when it was sent. Not its
/// value or annotations, which the next evaluation sets, so the saved form only changes
/// when the state does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedAlert {
    pub labels: BTreeMap<String, String>,
    pub state: AlertState,
    pub active_at: i64,
    #[serde(default)]
    pub fired_at: Option<i64>,
    #[serde(default)]
    pub resolved_at: Option<i64>,
    #[serde(default)]
    pub last_sent: Option<i64>,
}

/// The alerts of one alerting rule.
#[derive(Debug, Default, Clone)]
pub struct RuleAlerts {
    alerts: BTreeMap<Vec<(String, String)>, Alert>,
}

impl RuleAlerts {
    /// Applies one evaluation at `now` (ns): `results` are the result series (labels and
    /// value).
    pub fn update(&mut self, rule: &Rule, now: i64, results: Vec<(BTreeMap<String, String>, f64)>) {
        let name = rule.alert.clone().unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        for (series, value) in results {
            let mut labels = series.clone();
            for (k, v) in &rule.labels {
                labels.insert(k.clone(), expand(v, &series, value));
            }
            labels.insert("alertname".into(), name.clone());
            let annotations = rule
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), expand(v, &series, value)))
                .collect();
            let key: Vec<(String, String)> = labels.clone().into_iter().collect();
            seen.insert(key.clone());
            match self.alerts.get_mut(&key) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = value;
                    a.annotations = annotations;
                    a.last_seen = now;
                }
                _ => {
                    self.alerts.insert(
                        key,
                        Alert {
                            labels,
                            annotations,
                            state: AlertState::Pending,
                            active_at: now,
                            fired_at: None,
                            resolved_at: None,
                            last_seen: now,
                            value,
                            last_sent: None,
                        },
                    );
                }
            }
        }
        let (hold, keep) = (rule.for_ns(), rule.keep_firing_for_ns());
        self.alerts.retain(|key, a| {
            if !seen.contains(key) {
                match a.state {
                    AlertState::Pending => return false,
                    AlertState::Firing if now - a.last_seen >= keep => {
                        a.state = AlertState::Inactive;
                        a.resolved_at = Some(now);
                        a.last_sent = None;
                    }
                    AlertState::Inactive => {
                        return a
                            .resolved_at
                            .is_some_and(|r| now - r < RESOLVED_RETENTION_NS)
                    }
                    AlertState::Firing => {}
                }
            } else if a.state == AlertState::Pending && now - a.active_at >= hold {
                a.state = AlertState::Firing;
                a.fired_at = Some(now);
            }
            true
        });
    }

    /// Every alert, in the form kept across a restart.
    pub fn saved(&self) -> Vec<SavedAlert> {
        self.alerts
            .values()
            .map(|a| SavedAlert {
                labels: a.labels.clone(),
                state: a.state,
                active_at: a.active_at,
                fired_at: a.fired_at,
                resolved_at: a.resolved_at,
                last_sent: a.last_sent,
            })
            .collect()
    }

    /// Alerts saved before a restart, as seen at `now` (value and annotations come with
    /// the next evaluation): a pending alert keeps its `for` clock, a firing one its
    /// start and last send.
    pub fn restore(saved: Vec<SavedAlert>, now: i64) -> RuleAlerts {
        let alerts = saved
            .into_iter()
            .map(|s| {
                let key = s.labels.clone().into_iter().collect();
                let a = Alert {
                    labels: s.labels,
                    annotations: BTreeMap::new(),
                    state: s.state,
                    active_at: s.active_at,
                    fired_at: s.fired_at,
                    resolved_at: s.resolved_at,
                    last_seen: now,
                    value: 0.0,
                    last_sent: s.last_sent,
                };
                (key, a)
            })
            .collect();
        RuleAlerts { alerts }
    }

    /// Pending and firing alerts.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .values()
            .filter(|a| a.state != AlertState::Inactive)
    }

    /// The alerts to send now: firing ones not sent for `resend` ns, resolved ones once.
    pub fn due(&mut self, now: i64, resend: i64) -> Vec<Alert> {
        let mut out = Vec::new();
        for a in self.alerts.values_mut() {
            let due = match a.state {
                AlertState::Pending => false,
                AlertState::Firing => a.last_sent.is_none_or(|t| now - t >= resend),
                AlertState::Inactive => a.last_sent.is_none(),
            };
            if due {
                a.last_sent = Some(now);
                out.push(a.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn rule(for_: &str, keep: Option<&str>) -> Rule {
        let yaml = format!(
            "name: g\nrules:\n  - alert: Errors\n    expr: vector(1)\n    for: {for_}\n{}    labels: {{severity: page, app: '{{{{ $labels.app }}}}'}}\n    annotations: {{summary: '{{{{ $labels.app }}}} has {{{{ $value }}}} errors'}}\n",
            keep.map(|k| format!("    keep_firing_for: {k}\n")).unwrap_or_default()
        );
        crate::parse_group(yaml.as_bytes()).unwrap().rules.remove(0)
    }

    fn res(v: f64) -> Vec<(BTreeMap<String, String>, f64)> {
        vec![(BTreeMap::from([("app".to_string(), "api".to_string())]), v)]
    }

    #[test]
    fn pending_firing_resolved_and_sent_once_each() {
        let r = rule("10s", None);
        let mut a = RuleAlerts::default();
        a.update(&r, 0, res(3.0));
        let al = a.active().next().unwrap();
        assert_eq!(al.state, AlertState::Pending);
        assert_eq!(al.labels["alertname"], "Errors");
        assert_eq!(al.annotations["summary"], "api has 3 errors");
        assert!(a.due(0, 60 * S).is_empty(), "pending is not sent");
        a.update(&r, 5 * S, res(4.0));
        assert_eq!(a.active().next().unwrap().state, AlertState::Pending);
        a.update(&r, 10 * S, res(5.0));
        assert_eq!(a.active().next().unwrap().state, AlertState::Firing);
        assert_eq!(a.due(10 * S, 60 * S).len(), 1);
        assert!(
            a.due(20 * S, 60 * S).is_empty(),
            "not again before the resend delay"
        );
        assert_eq!(a.due(70 * S, 60 * S).len(), 1, "resent");
        a.update(&r, 80 * S, vec![]);
        assert_eq!(a.active().count(), 0);
        let sent = a.due(80 * S, 60 * S);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].state, AlertState::Inactive);
        assert_eq!(sent[0].resolved_at, Some(80 * S));
        assert!(a.due(90 * S, 60 * S).is_empty(), "resolution sent once");
    }

    #[test]
    fn restored_alerts_keep_their_clock_and_last_send() {
        let r = rule("10s", None);
        let mut a = RuleAlerts::default();
        a.update(&r, 0, res(1.0));
        let saved = a.saved();
        assert_eq!(saved[0].state, AlertState::Pending);
        // Restarted at 6s: fires at 10s (activeAt 0 + for), not 16s.
        let mut b = RuleAlerts::restore(saved, 6 * S);
        b.update(&r, 7 * S, res(1.0));
        assert_eq!(b.active().next().unwrap().state, AlertState::Pending);
        b.update(&r, 10 * S, res(1.0));
        assert_eq!(b.active().next().unwrap().state, AlertState::Firing);
        assert_eq!(b.due(10 * S, 60 * S).len(), 1);
        // Restarted while firing: same start, not sent again before the resend delay.
        let mut c = RuleAlerts::restore(b.saved(), 20 * S);
        c.update(&r, 21 * S, res(2.0));
        let al = c.active().next().unwrap();
        assert_eq!(
            (al.state, al.active_at, al.fired_at),
            (AlertState::Firing, 0, Some(10 * S))
        );
        assert_eq!(al.annotations["summary"], "api has 2 errors");
        assert!(c.due(21 * S, 60 * S).is_empty());
        assert_eq!(c.due(70 * S, 60 * S).len(), 1);
    }

    #[test]
    fn pending_alert_that_clears_never_fires_and_keep_firing_for_holds() {
        let r = rule("10s", None);
        let mut a = RuleAlerts::default();
        a.update(&r, 0, res(1.0));
        a.update(&r, 5 * S, vec![]);
        assert_eq!(a.active().count(), 0);
        assert!(a.due(5 * S, 60 * S).is_empty());

        let r = rule("0s", Some("30s"));
        let mut a = RuleAlerts::default();
        a.update(&r, 0, res(1.0));
        assert_eq!(a.active().next().unwrap().state, AlertState::Firing);
        a.update(&r, 20 * S, vec![]);
        assert_eq!(a.active().next().unwrap().state, AlertState::Firing);
        a.update(&r, 30 * S, vec![]);
        assert_eq!(a.active().count(), 0);
    }
}
