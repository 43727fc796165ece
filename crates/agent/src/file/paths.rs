//! Labels derived from well-known path layouts.

use regex::Regex;
use std::path::Path;
use std::sync::OnceLock;

/// Labels and structured metadata learnt from a path.
#[derive(Debug, Default, PartialEq)]
pub struct PathInfo {
    pub labels: Vec<(String, String)>,
    pub metadata: Vec<(String, String)>,
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// `<root>/<ns>_<pod>_<uid>/<container>/<n>.log` → namespace, pod, container, job
/// (`<ns>/<container>`, k8s-monitoring's default), service_name (= container, its fallback
/// without API metadata), node_name; pod_uid and restart count go to `__meta_kubernetes_*`
/// internal labels for relabel rules.
pub fn kubernetes(root: &Path, path: &Path, node: Option<&str>) -> Option<PathInfo> {
    let rel = path.strip_prefix(root).ok()?.to_str()?;
    let mut parts = rel.split('/');
    let (dir, container, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    // Namespaces and pod names cannot contain '_', so split from the right.
    let mut it = dir.rsplitn(3, '_');
    let (uid, pod, ns) = (it.next()?, it.next()?, it.next()?);
    let restart = file.split('.').next().unwrap_or("");
    let mut labels = vec![
        kv("namespace", ns),
        kv("pod", pod),
        kv("container", container),
        kv("job", &format!("{ns}/{container}")),
        kv("service_name", container),
        kv("__meta_kubernetes_namespace", ns),
        kv("__meta_kubernetes_pod_name", pod),
        kv("__meta_kubernetes_pod_uid", uid),
        kv("__meta_kubernetes_pod_container_name", container),
        kv("__meta_kubernetes_pod_container_restart_count", restart),
    ];
    if let Some(n) = node.filter(|n| !n.is_empty()) {
        labels.push(kv("node_name", n));
        labels.push(kv("__meta_kubernetes_pod_node_name", n));
    }
    Some(PathInfo {
        labels,
        metadata: Vec::new(),
    })
}

/// Airflow ≥ 2.3 task log layout: dag_id and task_id become labels (low cardinality);
/// run_id, map_index and try_number become structured metadata.
pub fn airflow(path: &Path) -> Option<PathInfo> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(
            r"(?:^|/)dag_id=([^/]+)/run_id=([^/]+)/task_id=([^/]+)/(?:map_index=(-?\d+)/)?attempt=(\d+)\.log$",
        )
        .expect("static regex")
    });
    let c = re.captures(path.to_str()?)?;
    let mut metadata = vec![kv("run_id", &c[2]), kv("try_number", &c[5])];
    if let Some(m) = c.get(4) {
        metadata.push(kv("map_index", m.as_str()));
    }
    Some(PathInfo {
        labels: vec![kv("dag_id", &c[1]), kv("task_id", &c[3])],
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_path() {
        let i = kubernetes(
            Path::new("/var/log/pods"),
            Path::new("/var/log/pods/kube-system_coredns-5d78c9869d-abcde_0f1e-22/coredns/3.log"),
            Some("node-1"),
        )
        .unwrap();
        let get = |k: &str| {
            i.labels
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("namespace"), Some("kube-system"));
        assert_eq!(get("pod"), Some("coredns-5d78c9869d-abcde"));
        assert_eq!(get("container"), Some("coredns"));
        assert_eq!(get("job"), Some("kube-system/coredns"));
        assert_eq!(get("node_name"), Some("node-1"));
        assert_eq!(get("__meta_kubernetes_pod_uid"), Some("0f1e-22"));
        assert_eq!(
            get("__meta_kubernetes_pod_container_restart_count"),
            Some("3")
        );
        assert!(kubernetes(Path::new("/r"), Path::new("/r/bad/c/0.log"), None).is_none());
        assert!(kubernetes(Path::new("/r"), Path::new("/other/a_b_c/c/0.log"), None).is_none());
    }

    #[test]
    fn airflow_path() {
        let i = airflow(Path::new(
            "/opt/airflow/logs/dag_id=etl.daily/run_id=manual__2024-05-01T10:00:00.123456+00:00/task_id=load-1/map_index=3/attempt=2.log",
        ))
        .unwrap();
        assert_eq!(
            i.labels,
            vec![kv("dag_id", "etl.daily"), kv("task_id", "load-1")]
        );
        assert!(i
            .metadata
            .contains(&kv("run_id", "manual__2024-05-01T10:00:00.123456+00:00")));
        assert!(i.metadata.contains(&kv("map_index", "3")));
        assert!(i.metadata.contains(&kv("try_number", "2")));
        let i = airflow(Path::new("/l/dag_id=d/run_id=r/task_id=t/attempt=1.log")).unwrap();
        assert_eq!(i.metadata, vec![kv("run_id", "r"), kv("try_number", "1")]);
        assert!(airflow(Path::new("/l/scheduler/latest.log")).is_none());
    }
}
