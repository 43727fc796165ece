//! Faster discovery: one inotify instance per source watches the directories its globs
//! walk, so a new pod directory or log file is opened within one poll instead of one
//! discovery period (short-lived pods are otherwise missed, loki#3458). Polling stays the
//! source of truth: without inotify (or out of watches) discovery runs on its period.

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

pub struct DirWatch {
    ino: Inotify,
    wds: HashMap<WatchDescriptor, PathBuf>,
    dirs: HashSet<PathBuf>,
    buf: Vec<u8>,
    /// Adding a watch failed (e.g. `max_user_watches`): logged once.
    warned: bool,
}

impl DirWatch {
    pub fn new() -> Option<DirWatch> {
        match Inotify::init() {
            Ok(ino) => Some(DirWatch {
                ino,
                wds: HashMap::new(),
                dirs: HashSet::new(),
                buf: vec![0; 16 * 1024],
                warned: false,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable, discovery runs on its period only");
                None
            }
        }
    }

    /// Watches the directories not watched yet. True when one was added: what was created
    /// in it before the watch existed is only seen by another scan.
    pub fn watch(&mut self, dirs: &[PathBuf]) -> bool {
        let mut added = false;
        for d in dirs {
            if self.dirs.contains(d) {
                continue;
            }
            let mask = WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::ONLYDIR;
            match self.ino.watches().add(d, mask) {
                Ok(wd) => {
                    self.wds.insert(wd, d.clone());
                    self.dirs.insert(d.clone());
                    added = true;
                }
                Err(e) if !self.warned => {
                    self.warned = true;
                    tracing::warn!(dir = %d.display(), error = %e, "inotify watch failed, relying on the discovery period there");
                }
                Err(_) => {}
            }
        }
        added
    }

    /// Drains pending events; true when something was created or moved into a watched dir.
    pub fn changed(&mut self) -> bool {
        let mut changed = false;
        loop {
            let events = match self.ino.read_events(&mut self.buf) {
                Ok(ev) => ev,
                Err(_) => return changed,
            };
            let mut any = false;
            for ev in events {
                any = true;
                if ev.mask.contains(EventMask::IGNORED) {
                    // The directory is gone; a new one of the same name needs a new watch.
                    if let Some(d) = self.wds.remove(&ev.wd) {
                        self.dirs.remove(&d);
                    }
                } else {
                    changed = true;
                }
            }
            if !any {
                return changed;
            }
        }
    }
}
