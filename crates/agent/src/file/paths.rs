//! Labels derived from well-known path layouts.

pub use silt_logfile::{airflow, PathInfo};
use std::path::Path;

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
}
