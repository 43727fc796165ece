//! Airflow task log paths.

use std::path::Path;

/// Labels and structured metadata learnt from a path.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PathInfo {
    pub labels: Vec<(String, String)>,
    pub metadata: Vec<(String, String)>,
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// `attempt=2.log` → `2` (also `.log.gz`, as archived logs are often compressed).
fn number_log<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    let n = name.strip_prefix(prefix)?.strip_suffix(".log")?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(n)
}

fn value<'a>(component: &'a str, key: &str) -> Option<&'a str> {
    let v = component.strip_prefix(key)?.strip_prefix('=')?;
    (!v.is_empty()).then_some(v)
}

/// Airflow task logs: dag_id and task_id become labels (low cardinality, so a DAG's task
/// is one stream); the run, the try and the map index become structured metadata.
///
/// * Airflow ≥ 2.3: `…/dag_id=D/run_id=R/task_id=T/[map_index=M/]attempt=N.log` →
///   labels `dag_id`, `task_id`; metadata `run_id`, `try_number`, `map_index` (mapped
///   tasks only).
/// * Airflow 1.10–2.2: `…/D/T/<logical date>/N.log` (the date an ISO 8601 time, as
///   `{{ ts }}` renders it) → labels `dag_id`, `task_id`; metadata `logical_date`,
///   `try_number` (these versions had no run id in the path).
///
/// A trailing `.gz` is ignored. Anything else is `None`.
pub fn airflow(path: &Path) -> Option<PathInfo> {
    let s = path.to_str()?;
    let mut parts = s.rsplit('/').filter(|c| !c.is_empty());
    let file = parts.next()?;
    if let Some(try_number) = number_log(file, "attempt=") {
        let mut c = parts.next()?;
        let map_index = match c.strip_prefix("map_index=") {
            Some(m) => {
                let digits = m.strip_prefix('-').unwrap_or(m);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                c = parts.next()?;
                Some(m)
            }
            None => None,
        };
        let task = value(c, "task_id")?;
        let run = value(parts.next()?, "run_id")?;
        let dag = value(parts.next()?, "dag_id")?;
        let mut metadata = vec![kv("run_id", run), kv("try_number", try_number)];
        if let Some(m) = map_index {
            metadata.push(kv("map_index", m));
        }
        return Some(PathInfo {
            labels: vec![kv("dag_id", dag), kv("task_id", task)],
            metadata,
        });
    }
    let try_number = number_log(file, "")?;
    let date = parts.next()?;
    crate::timestamp::parse_iso(date.as_bytes())?;
    let task = parts.next()?;
    let dag = parts.next()?;
    if task.contains('=') || dag.contains('=') {
        return None;
    }
    Some(PathInfo {
        labels: vec![kv("dag_id", dag), kv("task_id", task)],
        metadata: vec![kv("logical_date", date), kv("try_number", try_number)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_layout() {
        let i = airflow(Path::new(
            "/opt/airflow/logs/dag_id=etl.daily/run_id=manual__2024-05-01T10:00:00.123456+00:00/task_id=load-1/map_index=3/attempt=2.log",
        ))
        .unwrap();
        assert_eq!(
            i.labels,
            vec![kv("dag_id", "etl.daily"), kv("task_id", "load-1")]
        );
        assert_eq!(
            i.metadata,
            vec![
                kv("run_id", "manual__2024-05-01T10:00:00.123456+00:00"),
                kv("try_number", "2"),
                kv("map_index", "3")
            ]
        );
        let i = airflow(Path::new("/l/dag_id=d/run_id=r/task_id=t/attempt=1.log")).unwrap();
        assert_eq!(i.metadata, vec![kv("run_id", "r"), kv("try_number", "1")]);
        let i = airflow(Path::new("dag_id=d/run_id=r/task_id=t/attempt=12.log.gz")).unwrap();
        assert_eq!(i.metadata, vec![kv("run_id", "r"), kv("try_number", "12")]);
        let i = airflow(Path::new(
            "x/dag_id=d/run_id=r/task_id=t/map_index=-1/attempt=1.log",
        ))
        .unwrap();
        assert!(i.metadata.contains(&kv("map_index", "-1")));
        for bad in [
            "/l/scheduler/latest.log",
            "/l/dag_id=d/run_id=r/task_id=t/attempt=x.log",
            "/l/dag_id=d/run_id=r/task_id=t/attempt=1.txt",
            "/l/dag_id=d/run_id=r/task_id=t/map_index=a/attempt=1.log",
            "/l/dag_id=d/run_id=r/map_index=1/attempt=1.log",
            "/l/dag_id=/run_id=r/task_id=t/attempt=1.log",
            "/l/run_id=r/task_id=t/attempt=1.log",
        ] {
            assert!(airflow(Path::new(bad)).is_none(), "{bad}");
        }
    }

    #[test]
    fn old_layout() {
        let i = airflow(Path::new(
            "/pvc/logs/etl/load/2024-05-01T10:00:00+00:00/3.log",
        ))
        .unwrap();
        assert_eq!(i.labels, vec![kv("dag_id", "etl"), kv("task_id", "load")]);
        assert_eq!(
            i.metadata,
            vec![
                kv("logical_date", "2024-05-01T10:00:00+00:00"),
                kv("try_number", "3")
            ]
        );
        assert!(airflow(Path::new("etl/load/2024-05-01T10:00:00+00:00/1.log.gz")).is_some());
        for bad in [
            "/l/scheduler/2024-05-01/dag.py.log",
            "/l/etl/load/not-a-date/1.log",
            "/l/etl/load/2024-05-01/1.log",
            "/l/etl/task_id=x/2024-05-01T10:00:00+00:00/1.log",
            "2024-05-01T10:00:00+00:00/1.log",
        ] {
            assert!(airflow(Path::new(bad)).is_none(), "{bad}");
        }
    }
}
