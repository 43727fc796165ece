use super::*;
use crate::Objects;

/// The local filesystem (Silt's own compare-and-swap under a file lock) and an in-memory
/// `object_store` (its conditional puts, the code path S3 takes).
fn backends(dir: &std::path::Path) -> Vec<Objects> {
    let memory = object_store::memory::InMemory::new();
    vec![
        Objects::local(&dir.join("objects"), &dir.join("cache")).unwrap(),
        Objects::remote(Arc::new(memory), &dir.join("cache-mem"), 0, 8),
    ]
}

fn lease(o: &Objects, holder: &str, ttl: Duration) -> Lease {
    let cfg = LeaseConfig {
        ttl,
        renew_every: ttl / 3,
    };
    Lease::new(o, BACKEND_LEASE, holder.into(), cfg)
}

const LONG: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_free_lease_is_taken_by_one_and_renewed() {
    let dir = tempfile::tempdir().unwrap();
    for o in backends(dir.path()) {
        let (a, b) = (lease(&o, "a", LONG), lease(&o, "b", LONG));
        assert!(a.tick().await.unwrap());
        assert!(!b.tick().await.unwrap());
        assert!(a.tick().await.unwrap(), "renewal");
        assert!(!b.tick().await.unwrap());
        assert!(a.is_held() && !b.is_held());
        assert_eq!(a.acquired.load(Ordering::Relaxed), 1);
    }
}

#[tokio::test]
async fn an_unrenewed_lease_is_taken_over_after_a_whole_ttl_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for o in backends(dir.path()) {
        let a = lease(&o, "a", LONG);
        let b = lease(&o, "b", Duration::from_millis(50));
        assert!(a.tick().await.unwrap());
        assert!(!b.tick().await.unwrap(), "first seen: the clock starts");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.tick().await.unwrap(), "unchanged for a TTL: taken over");
        assert!(
            !a.tick().await.unwrap(),
            "the old holder's renewal is refused"
        );
        assert!(!a.is_held() && b.is_held());
    }
}

#[tokio::test]
async fn a_renewal_restarts_the_contenders_wait() {
    let dir = tempfile::tempdir().unwrap();
    for o in backends(dir.path()) {
        let a = lease(&o, "a", LONG);
        let b = lease(&o, "b", Duration::from_millis(50));
        assert!(a.tick().await.unwrap());
        assert!(!b.tick().await.unwrap());
        std::thread::sleep(Duration::from_millis(60));
        assert!(a.tick().await.unwrap(), "renewed before b came back");
        assert!(!b.tick().await.unwrap(), "a new version: b waits again");
        assert!(a.is_held() && !b.is_held());
    }
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for o in backends(dir.path()) {
        let (a, b) = (lease(&o, "a", LONG), lease(&o, "b", LONG));
        assert!(a.tick().await.unwrap());
        a.release().await.unwrap();
        assert!(!a.is_held());
        assert!(b.tick().await.unwrap());
        assert!(!a.tick().await.unwrap());
    }
}

#[tokio::test]
async fn a_holder_that_does_not_renew_stops_holding() {
    let dir = tempfile::tempdir().unwrap();
    for o in backends(dir.path()) {
        let a = lease(&o, "a", Duration::from_millis(30));
        assert!(a.tick().await.unwrap());
        std::thread::sleep(Duration::from_millis(30));
        assert!(!a.is_held(), "past its TTL without a renewal");
        assert!(a.tick().await.unwrap(), "still its own version: renewed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contenders_at_once_take_it_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    for o in backends(dir.path()) {
        for round in 0..5 {
            let path = format!("cluster/race-{round}");
            let leases: Vec<Arc<Lease>> = (0..8)
                .map(|i| {
                    Arc::new(Lease::new(
                        &o,
                        &path,
                        format!("h{i}"),
                        LeaseConfig::default(),
                    ))
                })
                .collect();
            // A free lease: created by one (If-None-Match).
            assert_eq!(race(&leases).await, 1, "round {round}");
            // Everyone now sees the winner's version; still exactly one holder after a round.
            let mut held = 0;
            for l in &leases {
                held += l.tick().await.unwrap() as usize;
            }
            assert_eq!(held, 1, "round {round}");
            // A released lease: updated by one (If-Match on the released version).
            let holder = leases.iter().position(|l| l.is_held()).unwrap();
            leases[holder].release().await.unwrap();
            assert_eq!(race(&leases).await, 1, "round {round}, after a release");
        }
    }
}

/// Every lease ticks at once; how many hold it afterwards.
async fn race(leases: &[Arc<Lease>]) -> usize {
    let tasks: Vec<_> = leases
        .iter()
        .map(|l| {
            let l = l.clone();
            tokio::spawn(async move { l.tick().await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += t.await.unwrap() as usize;
    }
    won
}

#[tokio::test]
async fn stores_that_write_conditionally_pass_the_check() {
    let dir = tempfile::tempdir().unwrap();
    for o in backends(dir.path()) {
        lease(&o, "a", LONG).check_store().await.unwrap();
    }
}

#[tokio::test]
async fn a_write_against_a_stale_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for o in backends(dir.path()) {
        let cas = lease(&o, "a", LONG).cas;
        assert!(cas.write(b"1".to_vec(), None).await.unwrap().is_some());
        assert!(cas.write(b"x".to_vec(), None).await.unwrap().is_none());
        let (_, v1) = cas.read().await.unwrap().unwrap();
        let v2 = cas.write(b"2".to_vec(), Some(&v1)).await.unwrap().unwrap();
        assert!(cas.write(b"3".to_vec(), Some(&v1)).await.unwrap().is_none());
        assert!(cas.write(b"3".to_vec(), Some(&v2)).await.unwrap().is_some());
        let (data, _) = cas.read().await.unwrap().unwrap();
        assert_eq!(&data[..], b"3");
    }
}
