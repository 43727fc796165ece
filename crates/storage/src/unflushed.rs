//! Unflushed data across processes (`target: write` and `read`, issue #13): a writer lends
//! what its heads hold, with the segments it flushed lately; a reader queries that as
//! one more head (an [`Overlay`]) beside the segments it knows from the bucket.

use crate::codec::StreamBatch;
use crate::head::Head;
use crate::Store;
use parking_lot::Mutex;
use silt_model::{Entry, LabelMatcher, Labels, Timestamp};
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How long a writer reports a flushed segment: a reader whose catalog lacks one of them
/// lists the bucket again before answering, so lines leaving a writer's head are never
/// missing from both the head and the reader's catalog.
const RECENT: Duration = Duration::from_secs(600);

/// Other writers' unflushed entries of one tenant, read like a frozen head.
pub struct Overlay {
    pub(crate) head: Mutex<Head>,
}

impl Overlay {
    /// Holds `batches` of `tenant` (exact duplicates dropped, as in any head).
    pub fn new(tenant: &str, batches: Vec<StreamBatch>) -> Self {
        let mut head = Head::default();
        head.append(tenant, batches, 0);
        Overlay {
            head: Mutex::new(head),
        }
    }
}

/// Segments this process flushed lately: (when, tenant, id).
#[derive(Default)]
pub(crate) struct Recent(Mutex<VecDeque<(Instant, String, String)>>);

impl Recent {
    pub(crate) fn add(&self, tenant: &str, id: &str) {
        let mut q = self.0.lock();
        let now = Instant::now();
        while q
            .front()
            .is_some_and(|(t, ..)| now.duration_since(*t) > RECENT)
        {
            q.pop_front();
        }
        q.push_back((now, tenant.to_string(), id.to_string()));
    }
}

impl Store {
    /// What the heads (frozen and active) hold of `tenant`'s streams matching `matchers`
    /// in `[start, end)`, each stream's entries in time order; `entries: false`: the
    /// streams with data in the range only, their entries left empty.
    pub fn unflushed(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        (start, end): (Timestamp, Timestamp),
        entries: bool,
    ) -> Vec<(Labels, Vec<Entry>)> {
        let st = self.state.read();
        let mut out: Vec<(Labels, Vec<Entry>)> = Vec::new();
        self.for_each_head_stream(&st, None, tenant, matchers, (start, end), |labels, hs| {
            if !entries {
                // The head's bounds overlap the range (checked by the walk).
                out.push(((**labels).clone(), Vec::new()));
                return;
            }
            let es = hs.range(start, end);
            if !es.is_empty() {
                out.push(((**labels).clone(), es));
            }
        });
        out
    }

    /// Ids of `tenant`'s segments this process flushed in the last ten minutes. Read
    /// after [`Store::unflushed`], it names every segment that lines missing from that
    /// answer went to: a head is dropped only after its segments are listed here.
    pub fn recent_segments(&self, tenant: &str) -> Vec<String> {
        let now = Instant::now();
        self.recent
            .0
            .lock()
            .iter()
            .filter(|(t, tn, _)| tn == tenant && now.duration_since(*t) <= RECENT)
            .map(|(_, _, id)| id.clone())
            .collect()
    }

    /// Of `ids` (segments of `tenant`), those neither in the catalog nor replaced by a
    /// segment in it.
    pub fn unknown_segments<'a>(&self, tenant: &str, ids: &'a [String]) -> Vec<&'a str> {
        let st = self.state.read();
        let Some(tc) = st.catalog.tenants.get(tenant) else {
            return ids.iter().map(String::as_str).collect();
        };
        let known: HashSet<&str> = tc
            .segments
            .iter()
            .flat_map(|m| {
                std::iter::once(m.id.as_str()).chain(m.replaces.iter().map(String::as_str))
            })
            .collect();
        ids.iter()
            .map(String::as_str)
            .filter(|id| !known.contains(id))
            .collect()
    }
}
