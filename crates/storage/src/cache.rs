//! Bookkeeping of the local cache of remote objects: the size and last use of every
//! cached file (whole objects and byte-range blocks alike), evicted least recently used
//! first once the total passes a bound.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Files in the cache directory with their sizes, in order of last use.
#[derive(Default)]
pub(crate) struct CacheIndex {
    files: HashMap<PathBuf, (u64, u64)>,
    by_use: BTreeMap<u64, PathBuf>,
    total: u64,
    clock: u64,
    /// Files some reader is fetching (others wait instead of fetching them again).
    pub(crate) fetching: HashSet<PathBuf>,
}

impl CacheIndex {
    /// Marks `path` used now; `false` when it is not cached.
    pub(crate) fn touch(&mut self, path: &Path) -> bool {
        self.clock += 1;
        let now = self.clock;
        let Some(e) = self.files.get_mut(path) else {
            return false;
        };
        if let Some(p) = self.by_use.remove(&e.1) {
            self.by_use.insert(now, p);
        }
        e.1 = now;
        true
    }

    /// Records a file of `size` bytes as just used and returns the files to delete to get
    /// back under `max` bytes (never `path` itself: a reader is about to open it).
    pub(crate) fn insert(&mut self, path: PathBuf, size: u64, max: u64) -> Vec<PathBuf> {
        self.remove(&path);
        self.clock += 1;
        self.by_use.insert(self.clock, path.clone());
        self.files.insert(path.clone(), (size, self.clock));
        self.total += size;
        let mut victims = Vec::new();
        while self.total > max && self.files.len() > 1 {
            let Some((_, victim)) = self.by_use.pop_first() else {
                break;
            };
            if victim == path {
                // Newest of all, so the only one left in the order.
                self.by_use.insert(self.clock, victim);
                break;
            }
            if let Some((size, _)) = self.files.remove(&victim) {
                self.total -= size;
            }
            victims.push(victim);
        }
        victims
    }

    /// Registers a file found at start-up, older than anything used since.
    pub(crate) fn adopt(&mut self, path: PathBuf, size: u64) {
        self.remove(&path);
        self.clock += 1;
        self.by_use.insert(self.clock, path.clone());
        self.files.insert(path, (size, self.clock));
        self.total += size;
    }

    /// Forgets a file; its size when it was cached.
    pub(crate) fn remove(&mut self, path: &Path) -> Option<u64> {
        let (size, used) = self.files.remove(path)?;
        self.by_use.remove(&used);
        self.total -= size;
        Some(size)
    }

    /// Forgets every file under `dir`.
    pub(crate) fn remove_under(&mut self, dir: &Path) {
        let under: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect();
        for p in under {
            self.remove(&p);
        }
    }

    /// Bytes cached.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_first_and_never_the_new_file() {
        let mut c = CacheIndex::default();
        let p = |s: &str| PathBuf::from(s);
        assert!(c.insert(p("a"), 10, 30).is_empty());
        assert!(c.insert(p("b"), 10, 30).is_empty());
        assert!(c.insert(p("c"), 10, 30).is_empty());
        assert!(c.touch(&p("a")));
        assert!(!c.touch(&p("z")));
        assert_eq!(c.insert(p("d"), 10, 30), vec![p("b")]);
        assert_eq!(c.insert(p("e"), 25, 30), vec![p("c"), p("a"), p("d")]);
        assert_eq!(c.total(), 25);
        // Bigger than the bound alone: kept, the reader needs it.
        assert_eq!(c.insert(p("f"), 40, 30), vec![p("e")]);
        assert_eq!(c.total(), 40);
        c.insert(p("dir/x"), 1, 100);
        c.insert(p("dir/y"), 1, 100);
        c.remove_under(&p("dir"));
        assert_eq!(c.total(), 40);
        assert_eq!(c.remove(&p("f")), Some(40));
        assert_eq!(c.total(), 0);
    }
}
