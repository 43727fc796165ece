//! Alert state across restarts: each tenant's alerts (their `for` clocks, start and last
//! send) in one JSON object beside its rules, `rules/<tenant>/alert-state.json`, written
//! only when it changed, and given back to a group on its first evaluation if the group's
//! definition is the same as when it was saved.

use super::eval::GroupKey;
use super::Rules;
use serde::{Deserialize, Serialize};
use silt_ruler::{RuleAlerts, RuleGroup, SavedAlert};
use std::collections::HashMap;

const FILE: &str = "alert-state.json";

/// A tenant's saved state.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TenantState {
    groups: Vec<SavedGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedGroup {
    namespace: String,
    group: String,
    /// The group as YAML: a changed group starts afresh, as it does without a restart.
    definition: String,
    /// By rule position.
    rules: Vec<Vec<SavedAlert>>,
}

/// Saved state not yet given back, and what was last written per tenant.
#[derive(Default)]
pub(crate) struct AlertStates {
    restored: parking_lot::Mutex<HashMap<GroupKey, SavedGroup>>,
    written: parking_lot::Mutex<HashMap<String, Vec<u8>>>,
}

fn object_path(tenant: &str) -> String {
    format!("{}/{tenant}/{FILE}", super::PREFIX)
}

/// The tenant of a state object's path.
pub(crate) fn state_tenant(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(super::PREFIX)?.strip_prefix('/')?;
    rest.strip_suffix(FILE)?.strip_suffix('/')
}

fn definition(g: &RuleGroup) -> String {
    serde_yaml::to_string(g).unwrap_or_default()
}

impl AlertStates {
    /// Takes a loaded state object.
    pub(crate) fn loaded(&self, tenant: &str, data: &[u8]) {
        match serde_json::from_slice::<TenantState>(data) {
            Ok(s) => {
                self.written.lock().insert(
                    tenant.to_string(),
                    serde_json::to_vec(&s).unwrap_or_default(),
                );
                let mut r = self.restored.lock();
                for g in s.groups {
                    r.insert(
                        (tenant.to_string(), g.namespace.clone(), g.group.clone()),
                        g,
                    );
                }
            }
            Err(e) => {
                tracing::warn!(tenant, error = %e, "saved alert state unreadable; alerts start afresh")
            }
        }
    }

    /// The saved alerts of a group by rule position, if the group is unchanged.
    pub(crate) fn take(&self, key: &GroupKey, g: &RuleGroup, now: i64) -> Option<Vec<RuleAlerts>> {
        let saved = self.restored.lock().remove(key)?;
        if saved.rules.len() != g.rules.len() || saved.definition != definition(g) {
            return None;
        }
        Some(
            saved
                .rules
                .into_iter()
                .map(|a| RuleAlerts::restore(a, now))
                .collect(),
        )
    }

    /// Drops saved state of groups that no longer exist.
    pub(crate) fn retain(&self, keep: impl Fn(&GroupKey) -> bool) {
        self.restored.lock().retain(|k, _| keep(k));
    }
}

impl Rules {
    /// Writes `tenant`'s alert state if it changed since last written.
    pub(crate) async fn save_alert_state(&self, tenant: &str) {
        let mut groups: Vec<SavedGroup> = {
            let evals = self.evals.lock();
            evals
                .iter()
                .filter(|(k, _)| k.0 == tenant)
                .filter_map(|(k, ev)| {
                    let rules: Vec<Vec<SavedAlert>> =
                        ev.rules.iter().map(|r| r.alerts.saved()).collect();
                    let g = ev.seen.as_ref()?;
                    rules.iter().any(|r| !r.is_empty()).then(|| SavedGroup {
                        namespace: k.1.clone(),
                        group: k.2.clone(),
                        definition: definition(g),
                        rules,
                    })
                })
                .collect()
        };
        // Not yet evaluated since the start: kept as loaded.
        groups.extend(
            self.states
                .restored
                .lock()
                .iter()
                .filter(|(k, _)| k.0 == tenant)
                .map(|(_, g)| g.clone()),
        );
        groups.sort_by(|a, b| (&a.namespace, &a.group).cmp(&(&b.namespace, &b.group)));
        let empty = groups.is_empty();
        let bytes = serde_json::to_vec(&TenantState { groups }).unwrap_or_default();
        let before = self.states.written.lock().get(tenant).cloned();
        let unchanged = match &before {
            Some(b) => *b == bytes,
            None => empty,
        };
        if unchanged {
            return;
        }
        let path = object_path(tenant);
        let r = if empty {
            self.objects.delete(&path).await
        } else {
            self.objects.put(&path, bytes.clone()).await
        };
        match r {
            Ok(()) => {
                self.states.written.lock().insert(tenant.to_string(), bytes);
            }
            // Tried again after the next evaluation, as the state still differs.
            Err(e) => tracing::warn!(tenant, error = %e, "alert state not saved"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_paths_name_their_tenant_only() {
        assert_eq!(state_tenant(&object_path("team-a")), Some("team-a"));
        assert_eq!(state_tenant("rules/team-a/ns.yaml"), None);
        assert_eq!(super::super::parse_path(&object_path("team-a")), None);
    }

    #[test]
    fn a_changed_group_gets_no_saved_state() {
        let g = silt_ruler::parse_group(
            b"name: g\nrules:\n  - alert: A\n    expr: vector(1)\n    for: 1m\n",
        )
        .unwrap();
        let r = &g.rules[0];
        let mut alerts = RuleAlerts::default();
        alerts.update(r, 0, vec![(Default::default(), 1.0)]);
        let state = TenantState {
            groups: vec![SavedGroup {
                namespace: "ns".into(),
                group: "g".into(),
                definition: definition(&g),
                rules: vec![alerts.saved()],
            }],
        };
        let data = serde_json::to_vec(&state).unwrap();
        let key: GroupKey = ("t".into(), "ns".into(), "g".into());
        let s = AlertStates::default();
        s.loaded("t", &data);
        let mut changed = g.clone();
        changed.rules[0].for_ = Some("2m".into());
        assert!(s.take(&key, &changed, 5).is_none());
        s.loaded("t", &data);
        let back = s.take(&key, &g, 5).unwrap();
        assert_eq!(back[0].active().next().unwrap().active_at, 0);
        assert!(s.take(&key, &g, 5).is_none(), "given back once");
    }
}
