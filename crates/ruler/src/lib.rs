//! The ruler's rules: Prometheus-format rule groups whose expressions are LogQL metric
//! queries, parsed and validated as Loki does (with errors that name the group, the rule
//! and the position), and written back as YAML.

mod alerts;
mod rules;
mod template;

pub use alerts::{Alert, AlertState, RuleAlerts, SavedAlert};
pub use rules::{parse_group, parse_namespace, Rule, RuleError, RuleGroup, RuleGroups};
pub use template::expand;
