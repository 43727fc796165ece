//! Rule groups: the YAML model, parsing and validation.

use serde::{Deserialize, Serialize};
use silt_logql::ast::Expr;
use std::collections::BTreeMap;

/// A namespace file: `groups: [...]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroups {
    /// The namespace's groups, in file order.
    pub groups: Vec<RuleGroup>,
}

/// One rule group: evaluated together, on one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    /// Unique within its namespace.
    pub name: String,
    /// Evaluation interval (Prometheus duration); absent: the ruler's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Most alerts or series per rule and evaluation; 0: no limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
    /// The rules, evaluated in order.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// An alerting (`alert`) or recording (`record`) rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Alert name (alerting rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// Metric name of the recorded series (recording rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// A LogQL metric query.
    pub expr: String,
    /// How long a result must persist before the alert fires.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// How long an alert keeps firing after its condition cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<String>,
    /// Labels added to the alert or series (templated for alerts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the alert (templated).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Why a rule file or group was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RuleError {
    /// Not YAML, or not the expected fields (the message has the line and column).
    #[error("invalid rule YAML: {0}")]
    Yaml(String),
    /// A group or rule breaks a rule.
    #[error("group {group:?}{}: {msg}", rule.as_ref().map(|r| format!(", rule {r}")).unwrap_or_default())]
    Invalid {
        /// The group's name.
        group: String,
        /// Which rule: its 1-based position and name.
        rule: Option<String>,
        /// What is wrong.
        msg: String,
    },
}

impl Rule {
    /// The alert or record name.
    pub fn name(&self) -> &str {
        self.alert
            .as_deref()
            .or(self.record.as_deref())
            .unwrap_or("")
    }

    /// The parsed expression (validated: a metric query).
    pub fn parsed_expr(&self) -> Result<Expr, String> {
        let e = silt_logql::parse(&self.expr).map_err(|e| e.to_string())?;
        match e {
            Expr::Metric(_) => Ok(e),
            Expr::Log(_) => Err(
                "a log query cannot be a rule: the expression must be a metric query (e.g. count_over_time)"
                    .into(),
            ),
        }
    }

    /// The `for` duration in nanoseconds (0 when absent).
    pub fn for_ns(&self) -> i64 {
        duration(self.for_.as_deref()).ok().flatten().unwrap_or(0)
    }

    /// The `keep_firing_for` duration in nanoseconds (0 when absent).
    pub fn keep_firing_for_ns(&self) -> i64 {
        duration(self.keep_firing_for.as_deref())
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    fn validate(&self) -> Result<(), String> {
        match (&self.alert, &self.record) {
            (Some(_), Some(_)) => return Err("only one of 'alert' and 'record' may be set".into()),
            (None, None) => return Err("one of 'alert' or 'record' must be set".into()),
            (Some(a), None) if a.trim().is_empty() => return Err("'alert' is empty".into()),
            (None, Some(r)) if !is_metric_name(r) => {
                return Err(format!("invalid recording rule name {r:?}"))
            }
            (None, Some(_)) => {
                if !self.annotations.is_empty() {
                    return Err("a recording rule cannot have annotations".into());
                }
                if self.for_.is_some() || self.keep_firing_for.is_some() {
                    return Err("a recording rule cannot have 'for' or 'keep_firing_for'".into());
                }
            }
            _ => {}
        }
        if self.expr.trim().is_empty() {
            return Err("'expr' is empty".into());
        }
        self.parsed_expr()
            .map_err(|e| format!("invalid expr {:?}: {e}", self.expr))?;
        for (k, v) in [
            ("for", &self.for_),
            ("keep_firing_for", &self.keep_firing_for),
        ] {
            duration(v.as_deref()).map_err(|e| format!("'{k}': {e}"))?;
        }
        for k in self.labels.keys().chain(self.annotations.keys()) {
            if !is_label_name(k) {
                return Err(format!("invalid label or annotation name {k:?}"));
            }
        }
        if self.labels.contains_key("__name__") {
            return Err("'__name__' cannot be set as a label".into());
        }
        Ok(())
    }
}

/// A Prometheus duration, absent allowed.
fn duration(s: Option<&str>) -> Result<Option<i64>, String> {
    match s {
        None => Ok(None),
        Some(s) => silt_logql::units::parse_prom_duration(s)
            .map(Some)
            .ok_or_else(|| format!("invalid duration {s:?} (e.g. 30s, 5m, 1h)")),
    }
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f == '_' || f.is_ascii_alphabetic())
        && c.all(|x| x == '_' || x.is_ascii_alphanumeric())
}

fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f == '_' || f == ':' || f.is_ascii_alphabetic())
        && c.all(|x| x == '_' || x == ':' || x.is_ascii_alphanumeric())
}

impl RuleGroup {
    /// The interval in nanoseconds, or `default` when absent.
    pub fn interval_ns(&self, default: i64) -> i64 {
        duration(self.interval.as_deref())
            .ok()
            .flatten()
            .filter(|&d| d > 0)
            .unwrap_or(default)
    }

    /// Checks the group and each of its rules.
    pub fn validate(&self) -> Result<(), RuleError> {
        let bad = |rule: Option<String>, msg: String| RuleError::Invalid {
            group: self.name.clone(),
            rule,
            msg,
        };
        if self.name.trim().is_empty() {
            return Err(bad(None, "group name must not be empty".into()));
        }
        duration(self.interval.as_deref()).map_err(|e| bad(None, format!("'interval': {e}")))?;
        if self.rules.is_empty() {
            return Err(bad(None, "a group needs at least one rule".into()));
        }
        for (i, r) in self.rules.iter().enumerate() {
            r.validate()
                .map_err(|e| bad(Some(format!("{} ({:?})", i + 1, r.name())), e))?;
        }
        Ok(())
    }
}

/// Parses and validates one rule group (the body of a `POST …/rules/{namespace}`).
pub fn parse_group(yaml: &[u8]) -> Result<RuleGroup, RuleError> {
    let g: RuleGroup = serde_yaml::from_slice(yaml).map_err(|e| RuleError::Yaml(e.to_string()))?;
    g.validate()?;
    Ok(g)
}

/// Parses and validates a namespace file (`groups: [...]`); group names must be unique.
pub fn parse_namespace(yaml: &[u8]) -> Result<RuleGroups, RuleError> {
    let f: RuleGroups = serde_yaml::from_slice(yaml).map_err(|e| RuleError::Yaml(e.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    for g in &f.groups {
        g.validate()?;
        if !seen.insert(g.name.as_str()) {
            return Err(RuleError::Invalid {
                group: g.name.clone(),
                rule: None,
                msg: "group name repeated in the namespace".into(),
            });
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: ingest
interval: 30s
rules:
  - alert: ManyErrors
    expr: sum by (app) (count_over_time({app="api"} |= "error" [5m])) > 10
    for: 2m
    labels: {severity: page}
    annotations: {summary: "{{ $labels.app }} logs {{ $value }} errors"}
  - record: app:errors:rate5m
    expr: sum by (app) (rate({app="api"} |= "error" [5m]))
"#;

    #[test]
    fn good_group_round_trips() {
        let g = parse_group(GOOD.as_bytes()).unwrap();
        assert_eq!(g.rules.len(), 2);
        assert_eq!(g.rules[0].for_ns(), 120_000_000_000);
        assert_eq!(g.interval_ns(60), 30_000_000_000);
        let back = serde_yaml::to_string(&g).unwrap();
        assert_eq!(parse_group(back.as_bytes()).unwrap(), g);
    }

    fn err(yaml: &str) -> String {
        parse_group(yaml.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn bad_groups_name_the_problem() {
        let e =
            err("name: g\nrules:\n  - alert: A\n    expr: sum(count_over_time({a=\"b\"}[5m])\n");
        assert!(
            e.contains("group \"g\", rule 1 (\"A\")") && e.contains("invalid expr"),
            "{e}"
        );
        let e = err("name: g\nrules:\n  - alert: A\n    expr: '{a=\"b\"}'\n");
        assert!(e.contains("metric query"), "{e}");
        let e = err("name: g\nrules:\n  - alert: A\n    exp: 'x'\n");
        assert!(
            e.contains("unknown field `exp`") && e.contains("line 4"),
            "{e}"
        );
        let e = err("name: g\nrules:\n  - record: 'bad name'\n    expr: vector(1)\n");
        assert!(e.contains("invalid recording rule name"), "{e}");
        let e = err("name: g\nrules:\n  - alert: A\n    record: b\n    expr: vector(1)\n");
        assert!(e.contains("only one of"), "{e}");
        let e = err("name: g\nrules:\n  - alert: A\n    expr: vector(1)\n    for: 5 minutes\n");
        assert!(e.contains("'for': invalid duration"), "{e}");
        let e =
            err("name: g\nrules:\n  - record: r\n    expr: vector(1)\n    annotations: {a: b}\n");
        assert!(e.contains("cannot have annotations"), "{e}");
        let e =
            err("name: g\nrules:\n  - alert: A\n    expr: vector(1)\n    labels: {__name__: x}\n");
        assert!(e.contains("__name__"), "{e}");
        assert!(err("name: ''\nrules: []\n").contains("must not be empty"));
        assert!(err("{{{").contains("invalid rule YAML"));
    }

    #[test]
    fn namespace_group_names_are_unique() {
        let one = "  - name: g\n    rules:\n      - record: r\n        expr: vector(1)\n";
        assert!(parse_namespace(format!("groups:\n{one}").as_bytes()).is_ok());
        let e = parse_namespace(format!("groups:\n{one}{one}").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("repeated"), "{e}");
    }
}
