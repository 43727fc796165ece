//! The ruler's rule store: groups posted through the config API, kept per tenant and
//! namespace in the object store (`rules/<tenant>/<namespace>.yaml`, so a node that
//! starts from the bucket has them), plus read-only files from `ruler.storage.local.
//! directory` (Loki's layout `<directory>/<tenant>/<namespace>.yaml`). Each tenant's
//! alert state lives beside its rules (`state.rs`).

pub(crate) mod api;
pub(crate) mod eval;
pub(crate) mod remote_write;
pub(crate) mod state;

use parking_lot::RwLock;
use silt_ruler::{RuleGroup, RuleGroups};
use silt_storage::Objects;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A tenant's rules: namespace → groups, in file order.
pub(crate) type Namespaces = BTreeMap<String, Vec<RuleGroup>>;

const PREFIX: &str = "rules";

/// Rules of all tenants.
pub(crate) struct Rules {
    objects: Objects,
    /// From the object store, changed through the API.
    stored: RwLock<HashMap<String, Namespaces>>,
    /// From the rules directory, read-only.
    local: RwLock<HashMap<String, Namespaces>>,
    /// One change (or load) at a time, so two posts to one namespace, or a post and a
    /// reload, cannot lose each other.
    write: tokio::sync::Mutex<()>,
    /// Evaluation state of every group evaluated.
    pub(crate) evals: eval::Evals,
    /// Alert state saved before a restart, and what was saved.
    pub(crate) states: state::AlertStates,
}

/// Why a change was refused.
pub(crate) enum Refused {
    /// The namespace or group does not exist.
    NotFound(&'static str),
    /// The namespace comes from the read-only rules directory.
    ReadOnly,
    /// The object store failed.
    Store(String),
}

impl Rules {
    pub(crate) fn new(objects: Objects) -> Self {
        Rules {
            objects,
            stored: Default::default(),
            local: Default::default(),
            write: Default::default(),
            evals: Default::default(),
            states: Default::default(),
        }
    }

    /// Every tenant's namespaces.
    pub(crate) fn all(&self) -> Vec<(String, Namespaces)> {
        let mut tenants: Vec<String> = self.local.read().keys().cloned().collect();
        tenants.extend(self.stored.read().keys().cloned());
        tenants.sort();
        tenants.dedup();
        tenants
            .into_iter()
            .map(|t| {
                let ns = self.tenant(&t);
                (t, ns)
            })
            .collect()
    }

    /// Drops the evaluation state of groups that no longer exist.
    pub(crate) fn forget_removed(&self) {
        let all = self.all();
        let exists = |(t, ns, g): &eval::GroupKey| {
            all.iter().any(|(tt, nss)| {
                tt == t
                    && nss
                        .get(ns)
                        .is_some_and(|gs| gs.iter().any(|x| &x.name == g))
            })
        };
        self.evals.lock().retain(|k, _| exists(k));
        self.states.retain(exists);
    }

    /// Loads the stored rules and the rules directory. A bad file in the directory stops
    /// the start (it was written by hand); a bad stored one is skipped with an error.
    pub(crate) async fn load(&self, dir: Option<&Path>) -> anyhow::Result<()> {
        // Not beside a change: a group set while the bucket is listed would be replaced
        // by the listing's older copy (a backend taking the lease while a group is set).
        let _w = self.write.lock().await;
        if let Some(dir) = dir {
            *self.local.write() = read_dir(dir)?;
        }
        let mut stored: HashMap<String, Namespaces> = HashMap::new();
        for path in self.objects.list(PREFIX).await? {
            if let Some(tenant) = state::state_tenant(&path) {
                self.states.loaded(tenant, &self.objects.get(&path).await?);
                continue;
            }
            let Some((tenant, ns)) = parse_path(&path) else {
                continue;
            };
            let data = self.objects.get(&path).await?;
            match silt_ruler::parse_namespace(&data) {
                Ok(f) => {
                    stored.entry(tenant).or_default().insert(ns, f.groups);
                }
                Err(e) => tracing::error!(object = %path, error = %e, "stored rule file skipped"),
            }
        }
        let n: usize = stored.values().map(|t| t.len()).sum();
        tracing::info!(namespaces = n, "rules loaded");
        *self.stored.write() = stored;
        Ok(())
    }

    /// A tenant's namespaces, the directory's and the stored ones together.
    pub(crate) fn tenant(&self, tenant: &str) -> Namespaces {
        let mut all = self.local.read().get(tenant).cloned().unwrap_or_default();
        if let Some(s) = self.stored.read().get(tenant) {
            for (ns, groups) in s {
                all.entry(ns.clone()).or_insert_with(|| groups.clone());
            }
        }
        all
    }

    fn is_local(&self, tenant: &str, ns: &str) -> bool {
        self.local
            .read()
            .get(tenant)
            .is_some_and(|t| t.contains_key(ns))
    }

    /// Adds `group` to the namespace, or replaces the group of that name.
    pub(crate) async fn set_group(
        &self,
        tenant: &str,
        ns: &str,
        group: RuleGroup,
    ) -> Result<(), Refused> {
        let _w = self.write.lock().await;
        if self.is_local(tenant, ns) {
            return Err(Refused::ReadOnly);
        }
        let mut groups = self.groups(tenant, ns).unwrap_or_default();
        match groups.iter_mut().find(|g| g.name == group.name) {
            Some(g) => *g = group,
            None => groups.push(group),
        }
        self.save(tenant, ns, groups).await
    }

    /// Removes one group (`Some`) or the whole namespace (`None`).
    pub(crate) async fn delete(
        &self,
        tenant: &str,
        ns: &str,
        group: Option<&str>,
    ) -> Result<(), Refused> {
        let _w = self.write.lock().await;
        if self.is_local(tenant, ns) {
            return Err(Refused::ReadOnly);
        }
        let Some(mut groups) = self.groups(tenant, ns) else {
            return Err(Refused::NotFound("no rule groups found"));
        };
        if let Some(name) = group {
            let before = groups.len();
            groups.retain(|g| g.name != name);
            if groups.len() == before {
                return Err(Refused::NotFound("group does not exist"));
            }
        } else {
            groups.clear();
        }
        self.save(tenant, ns, groups).await
    }

    fn groups(&self, tenant: &str, ns: &str) -> Option<Vec<RuleGroup>> {
        self.stored.read().get(tenant)?.get(ns).cloned()
    }

    /// Writes the namespace (or deletes it when empty), then updates the memory copy: a
    /// failed write changes nothing.
    async fn save(&self, tenant: &str, ns: &str, groups: Vec<RuleGroup>) -> Result<(), Refused> {
        let path = object_path(tenant, ns);
        let r = if groups.is_empty() {
            self.objects.delete(&path).await
        } else {
            let file = RuleGroups {
                groups: groups.clone(),
            };
            let yaml = serde_yaml::to_string(&file).map_err(|e| Refused::Store(e.to_string()))?;
            self.objects.put(&path, yaml.into_bytes()).await
        };
        r.map_err(|e| Refused::Store(e.to_string()))?;
        let mut stored = self.stored.write();
        let t = stored.entry(tenant.to_string()).or_default();
        if groups.is_empty() {
            t.remove(ns);
        } else {
            t.insert(ns.to_string(), groups);
        }
        Ok(())
    }
}

/// `rules/<tenant>/<namespace, escaped>.yaml`.
fn object_path(tenant: &str, ns: &str) -> String {
    format!("{PREFIX}/{tenant}/{}.yaml", escape(ns))
}

fn parse_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(PREFIX)?.strip_prefix('/')?;
    let (tenant, file) = rest.split_once('/')?;
    let ns = unescape(file.strip_suffix(".yaml")?)?;
    Some((tenant.to_string(), ns))
}

/// Namespaces are any text in the URL; in object names only `[A-Za-z0-9_-]` stay as they
/// are, every other byte becomes `.XX` (so `..` or `/` cannot leave the prefix; `%` would
/// be escaped again by the object store's path rules).
fn escape(ns: &str) -> String {
    let mut out = String::with_capacity(ns.len());
    for b in ns.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!(".{b:02X}"));
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' {
            out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Reads `<dir>/<tenant>/<namespace>.yaml` (or `.yml`); any invalid file is an error
/// naming it.
fn read_dir(dir: &Path) -> anyhow::Result<HashMap<String, Namespaces>> {
    if !dir.is_dir() {
        anyhow::bail!(
            "ruler.storage.local.directory: {} is not a directory",
            dir.display()
        );
    }
    let mut out: HashMap<String, Namespaces> = HashMap::new();
    for t in std::fs::read_dir(dir)? {
        let t = t?;
        if !t.file_type()?.is_dir() {
            continue;
        }
        let tenant = t.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(t.path())? {
            let path = f?.path();
            let ns = match path.extension().and_then(|e| e.to_str()) {
                Some("yaml" | "yml") => path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                _ => continue,
            };
            let data = std::fs::read(&path)?;
            let file = silt_ruler::parse_namespace(&data)
                .map_err(|e| anyhow::anyhow!("rule file {}: {e}", path.display()))?;
            out.entry(tenant.clone())
                .or_default()
                .insert(ns, file.groups);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_round_trip_through_object_paths() {
        for ns in ["plain", "with space", "../up", "a/b", "ünï", "x%41", "."] {
            let p = object_path("t", ns);
            assert_eq!(p.matches('/').count(), 2, "{p}");
            assert_eq!(parse_path(&p), Some(("t".into(), ns.into())), "{p}");
        }
    }

    #[test]
    fn a_missing_rules_directory_is_named() {
        let e = read_dir(Path::new("/nonexistent/rules")).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
    }
}
